//! Residence certificates checked by independent tools: pyHanko (`pyhanko sign validate`, our
//! organisation root as the only trust anchor, revocation fetched from the CRL the organisation
//! CA publishes, served here on loopback) says VALID, INVALID after a byte of the signed range
//! changes, and INVALID once the municipality's document-signing certificate is revoked;
//! poppler's pdftotext shows the record (the resident code only when asked for), pdffonts shows
//! the font embedded, subset and with a ToUnicode map, pdftoppm renders the page. A record the
//! font cannot show is refused with a clear error, and nothing is built.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ca::crl::Reason;
use ca::key::SoftKey;
use ca::network::{FileCaKind, NetworkCa, SubjectKey};
use der::Decode;
use identity::person::Sex;
use net::secret::Secret;
use resdoc::{Error, Font, IssueOptions, KeySigner, ResidenceRecord};
use time::macros::date;
use x509_cert::Certificate;

fn secret(s: &str) -> Secret {
    Secret::new(s.as_bytes().to_vec())
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Serves `dir/crl.der` at any path over HTTP/1.0 on loopback (read at each request, so a new
/// CRL is seen at once); counts the requests.
fn serve_crl(dir: PathBuf) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            counter.fetch_add(1, Ordering::SeqCst);
            let body = std::fs::read(dir.join("crl.der")).unwrap_or_default();
            let head = format!(
                "HTTP/1.0 200 OK\r\nContent-Type: application/pkix-crl\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    (port, hits)
}

struct World {
    dir: tempfile::TempDir,
    ca: NetworkCa,
    key: SoftKey,
    chain: Vec<Certificate>,
    serial: String,
    font: Font,
    hits: Arc<AtomicUsize>,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("org");
    let ca = NetworkCa::init_kind(FileCaKind::Organisation, &ca_dir, &secret("organisation CA pass"), now()).unwrap();
    let (port, hits) = serve_crl(ca_dir.clone());
    let url = format!("http://127.0.0.1:{port}/org/crl.der");
    let issued = ca
        .issue_document_signer(
            &"131016".parse().unwrap(),
            "Chiyoda-ku",
            &url,
            30,
            now(),
            &dir.path().join("chiyoda"),
            SubjectKey::Generate(&secret("document key pass")),
        )
        .unwrap();
    let key = SoftKey::load(issued.key.as_deref().unwrap(), &secret("document key pass")).unwrap();
    let text = std::fs::read_to_string(&issued.chain).unwrap();
    let chain = text
        .split_inclusive("-----END CERTIFICATE-----\n")
        .map(|b| Certificate::from_der(&der::pem::decode_vec(b.as_bytes()).unwrap().1).unwrap())
        .collect();
    std::fs::copy(ca_dir.join("ca.pem"), dir.path().join("root.pem")).unwrap();
    World { dir, ca, key, chain, serial: issued.serial, font: Font::load_default().unwrap(), hits }
}

fn record() -> ResidenceRecord {
    ResidenceRecord {
        name: "山田 太郎".into(),
        address: "東京都千代田区千代田一丁目1番1号 霞が関ハイツ101号室".into(),
        date_of_birth: date!(1980 - 04 - 01),
        sex: Sex::Male,
        resident_code: Some(
            "12345678901"
                .parse()
                .unwrap_or_else(|_| identity::ids::ResidentCode::from_body([1, 2, 3, 4, 5, 6, 7, 8, 9, 0]).unwrap()),
        ),
        issue_date: date!(2026 - 12 - 06),
        municipality: "東京都千代田区".into(),
    }
}

impl World {
    fn issue(&self, record: &ResidenceRecord, show_code: bool) -> Vec<u8> {
        let opts = IssueOptions { font: &self.font, show_resident_code: show_code, signing_time: now() };
        resdoc::issue(record, &opts, &KeySigner(&self.key), &self.chain).unwrap()
    }

    fn write(&self, name: &str, pdf: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, pdf).unwrap();
        p
    }

    /// `pyhanko sign validate` with our root as the only anchor and revocation required.
    fn pyhanko(&self, pdf: &Path) -> (bool, String) {
        let out = Command::new("pyhanko")
            .args(["sign", "validate", "--pretty-print", "--force-revinfo", "--trust"])
            .arg(self.dir.path().join("root.pem"))
            .arg("--trust-replace")
            .arg(pdf)
            .output()
            .expect("pyhanko is installed (cargo xtask ci installs it)");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }
}

/// A poppler-utils tool's standard output; it must succeed unless `may_fail`.
fn poppler(cmd: &str, args: &[&str], file: &Path, after: &[&str], may_fail: bool) -> String {
    let out = Command::new(cmd).args(args).arg(file).args(after).output().expect("poppler-utils is installed");
    assert!(may_fail || out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn tool(cmd: &str, args: &[&str], file: &Path, after: &[&str]) -> String {
    poppler(cmd, args, file, after, false)
}

#[test]
fn pyhanko_validates_with_revocation_and_refuses_a_changed_byte_and_a_revoked_signer() {
    let w = world();
    let pdf = w.issue(&record(), false);
    let good = w.write("good.pdf", &pdf);
    let (ok, out) = w.pyhanko(&good);
    assert!(ok && out.contains("The signature is judged VALID"), "{out}");
    // poppler's pdfsig, a second validator (its NSS store does not know our root, so only the
    // signature itself is judged): PAdES's SubFilter, the whole file signed, the signature valid.
    let sig = poppler("pdfsig", &[], &good, &[], true);
    for want in
        ["Signature Type: ETSI.CAdES.detached", "Total document signed", "Signature Validation: Signature is Valid."]
    {
        assert!(sig.contains(want), "{want:?} not in\n{sig}");
    }
    assert!(w.hits.load(Ordering::SeqCst) > 0, "pyHanko fetched our CRL");

    // A byte of the signed range (in /Producer, so the file still parses) changed.
    let at = pdf.windows(11).position(|x| x == b"jpki resdoc").unwrap();
    let mut flipped = pdf.clone();
    flipped[at] ^= 0x20;
    let (ok, out) = w.pyhanko(&w.write("flipped.pdf", &flipped));
    assert!(!ok && out.contains("INVALID"), "{out}");
    let sig = poppler("pdfsig", &[], &w.dir.path().join("flipped.pdf"), &[], true);
    assert!(!sig.contains("Signature is Valid"), "{sig}");
    // A byte of the page's compressed content stream changed.
    let content = pdf.windows(6).position(|x| x == b"stream").unwrap() + 200;
    let mut flipped = pdf.clone();
    flipped[content] ^= 0x01;
    let (ok, out) = w.pyhanko(&w.write("flipped2.pdf", &flipped));
    assert!(!ok && out.contains("INVALID"), "{out}");

    // The municipality's document-signing certificate revoked: the same PDF is refused.
    w.ca.revoke(&w.serial, Reason::KeyCompromise, now()).unwrap();
    w.ca.crl(now(), 24).unwrap();
    let (ok, out) = w.pyhanko(&good);
    assert!(!ok && out.contains("revoked"), "{out}");
}

#[test]
fn poppler_extracts_the_record_and_renders_the_page_with_a_subset_embedded_font() {
    let w = world();
    let r = record();
    let code = r.resident_code.clone().unwrap();
    let without = w.write("without.pdf", &w.issue(&r, false));
    let text = tool("pdftotext", &["-layout"], &without, &["-"]);
    for want in [
        "住民票の写し",
        "山田 太郎",
        "東京都千代田区千代田一丁目1番1号",
        "昭和55年4月1日生",
        "男",
        "東京都千代田区長",
        "令和8年12月6日",
    ] {
        assert!(text.contains(want), "{want:?} not in\n{text}");
    }
    assert!(!text.contains(code.as_str()) && !text.contains("住民票コード"), "the code only when asked:\n{text}");
    let with = w.write("with.pdf", &w.issue(&r, true));
    let text = tool("pdftotext", &["-layout"], &with, &["-"]);
    assert!(text.contains("住民票コード") && text.contains(code.as_str()), "{text}");

    // pdffonts: one CID TrueType font, embedded, subset, with a ToUnicode map.
    let fonts = tool("pdffonts", &[], &without, &[]);
    let line = fonts.lines().find(|l| l.contains("IPAexGothic")).unwrap_or_else(|| panic!("{fonts}"));
    assert!(line.contains("CID TrueType") && line.contains("Identity-H"), "{line}");
    assert!(
        line.split_whitespace().rev().take(5).collect::<Vec<_>>()[2..5] == ["yes", "yes", "yes"],
        "emb sub uni: {line}"
    );
    let size = std::fs::metadata(&without).unwrap().len();
    let full = std::fs::metadata(resdoc::DEFAULT_FONT).unwrap().len();
    assert!(size * 20 < full, "a subset: {size} bytes against the font's {full}");

    // pdftoppm: an A4 page at 72 dpi (595 × 842), with ink on it.
    let out = Command::new("pdftoppm")
        .args(["-gray", "-r", "72", "-singlefile"])
        .arg(&without)
        .arg(w.dir.path().join("page"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pgm = std::fs::read(w.dir.path().join("page.pgm")).unwrap();
    let header: Vec<&[u8]> = pgm.splitn(5, |b| b.is_ascii_whitespace()).collect();
    assert_eq!(header[0], b"P5");
    assert_eq!((header[1], header[2]), (&b"595"[..], &b"842"[..]));
    if let Ok(dir) = std::env::var("RESDOC_RENDER_TO") {
        // The page shown in docs/resdoc.md: `RESDOC_RENDER_TO=docs/img cargo test -p resdoc`.
        let status = Command::new("pdftoppm")
            .args(["-png", "-r", "80", "-singlefile"])
            .arg(&with)
            .arg(Path::new(&dir).join("residence-certificate"))
            .status()
            .unwrap();
        assert!(status.success());
    }
    let pixels = header[4];
    let dark = pixels.iter().filter(|p| **p < 128).count();
    assert!(dark > 2_000, "text and rules are drawn: {dark} dark pixels");
}

#[test]
fn a_record_the_font_cannot_show_or_a_bad_record_is_refused_clearly() {
    let w = world();
    let opts = IssueOptions::new(&w.font, now());
    let signer = KeySigner(&w.key);
    let cases: Vec<(ResidenceRecord, &str)> = vec![
        (ResidenceRecord { name: "山田 😀".into(), ..record() }, "unrenderable name 4"),
        (ResidenceRecord { address: "東京都\u{E000}".into(), ..record() }, "unrenderable address 4"),
        (ResidenceRecord { name: "山田\n太郎".into(), ..record() }, "invalid name"),
        (ResidenceRecord { name: "山田\u{202E}太郎".into(), ..record() }, "invalid name"),
        (ResidenceRecord { name: String::new(), ..record() }, "invalid name"),
        (ResidenceRecord { address: "あ".repeat(resdoc::MAX_ADDRESS + 1), ..record() }, "invalid address"),
        (ResidenceRecord { date_of_birth: date!(2027 - 01 - 01), ..record() }, "invalid date of birth"),
    ];
    for (r, want) in cases {
        let e = resdoc::issue(&r, &opts, &signer, &w.chain).unwrap_err();
        let got = match &e {
            Error::Unrenderable { field, position, .. } => format!("unrenderable {field} {position}"),
            Error::Invalid { field, .. } => format!("invalid {field}"),
            other => format!("{other}"),
        };
        assert_eq!(got, want, "{e}");
        // The message names the field, never the value.
        let msg = e.to_string();
        assert!(!msg.contains("山田") && !msg.contains("東京都"), "{msg}");
    }
    // Asked for the code, but the record has none.
    let r = ResidenceRecord { resident_code: None, ..record() };
    let e = resdoc::issue(&r, &IssueOptions { show_resident_code: true, ..opts }, &signer, &w.chain).unwrap_err();
    assert!(matches!(e, Error::Invalid { field: "resident code", .. }), "{e}");
    // A key that is not the certificate's, and no chain.
    let other = SoftKey::ephemeral(ca::key::KeyAlgorithm::EcP384).unwrap();
    let e = resdoc::issue(&record(), &opts, &KeySigner(&other), &w.chain).unwrap_err();
    assert!(matches!(e, Error::Chain(_)), "{e}");
    let e = resdoc::issue(&record(), &opts, &signer, &[]).unwrap_err();
    assert!(matches!(e, Error::Chain(_)), "{e}");
}
