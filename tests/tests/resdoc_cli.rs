//! Residence certificates from the CLI as real processes (docs/resdoc.md): `jpki net init
//! --organisation`, `jpki net issue --document-signing` with the municipality's key generated on
//! a SoftHSM2 token through PKCS#11 (and, second, in a key file), `jpki resdoc issue` signing with
//! it; every PDF validated by `pyhanko sign validate` against the organisation root, with the CRL
//! fetched from `python3 -m http.server` on loopback. A record the font cannot show fails with
//! a message naming the field and no personal data, and writes no file.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a panic is a failed test

mod common;

use std::process::{Child, Command, Output, Stdio};

use common::{jpki_bin, text};

const CA_PASS: &str = "cli organisation CA passphrase";
const KEY_PASS: &str = "cli document key passphrase";
const PIN: &str = "87654321";

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn record(name: &str) -> String {
    serde_json::json!({
        "name": name,
        "address": "大阪府大阪市北区中之島一丁目3番20号",
        "date_of_birth": "1992-11-03",
        "sex": 2,
        "issue_date": "2026-12-06",
        "municipality": "大阪府大阪市",
    })
    .to_string()
}

#[test]
fn a_municipality_signs_residence_certificates_with_a_pkcs11_key_and_pyhanko_validates_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = |f: &str| dir.path().join(f).display().to_string();
    let (module, conf) = common::softhsm_token(dir.path(), "osaka", PIN);
    let module = module.as_str();
    let jpki = |args: &[&str]| -> Output {
        Command::new(jpki_bin())
            .args(args)
            .env_remove("JPKI_NET_DIR")
            .env("JPKI_NET_CA_PASSPHRASE", CA_PASS)
            .env("JPKI_NET_KEY_PASSPHRASE", KEY_PASS)
            .env("JPKI_RESDOC_KEY_PASSPHRASE", KEY_PASS)
            .env("JPKI_RESDOC_PIN", PIN)
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .unwrap()
    };
    let ok = |o: Output| {
        assert!(o.status.success(), "{}", text(&o));
        text(&o)
    };

    let org = d("org");
    let out = ok(jpki(&["net", "init", "--dir", &org, "--organisation"]));
    assert!(out.contains("Organisation CA for Local Governments"), "{out}");
    // The CRL is published where the certificates say: a static server on loopback.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _server = Server(
        Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory", &org, &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let crl_url = format!("http://127.0.0.1:{port}/crl.der");
    let p11 = ["--pkcs11-module", module, "--pkcs11-token", "osaka", "--pkcs11-label", "osaka-doc"];
    let mut issue = vec!["net", "issue", "--dir", &org, "--party", "municipality:271004", "--document-signing"];
    issue.extend(["--name", "Osaka-shi", "--crl-url", &crl_url]);
    let on_token = d("osaka-token");
    let out = ok(jpki(&[&issue[..], &["--out", &on_token], &p11[..]].concat()));
    assert!(out.contains("(key on the token)"), "{out}");
    assert!(!std::path::Path::new(&d("osaka-token.key")).exists(), "the key stays on the token");
    let in_file = d("osaka-file");
    ok(jpki(&[&issue[..], &["--out", &in_file]].concat()));
    let list = ok(jpki(&["net", "list", "--dir", &org]));
    assert_eq!(list.matches("document-signing").count(), 2, "{list}");

    std::fs::write(d("record.json"), record("大阪 花子")).unwrap();
    let chain_token = format!("{on_token}.pem");
    let chain_file = format!("{in_file}.pem");
    let key_file = format!("{in_file}.key");
    let signed = [
        ("token.pdf", [&["--chain", chain_token.as_str()][..], &p11[..]].concat()),
        ("file.pdf", vec!["--chain", chain_file.as_str(), "--key", key_file.as_str()]),
    ];
    for (pdf, how) in &signed {
        let out = ok(jpki(&[&["resdoc", "issue", "--record", &d("record.json"), "--out", &d(pdf)][..], how].concat()));
        assert!(!out.contains("花子"), "no personal data in the output: {out}");
        let o = Command::new("pyhanko")
            .args(["sign", "validate", "--pretty-print", "--force-revinfo", "--trust", &format!("{org}/ca.pem")])
            .args(["--trust-replace", &d(pdf)])
            .output()
            .expect("pyhanko is installed (cargo xtask ci installs it)");
        assert!(o.status.success() && text(&o).contains("judged VALID"), "{pdf}: {}", text(&o));
        let o = Command::new("pdftotext").args([&d(pdf), "-"]).output().unwrap();
        assert!(String::from_utf8_lossy(&o.stdout).contains("大阪 花子"), "{}", text(&o));
    }
    // The same file is never overwritten.
    let o = jpki(&[
        "resdoc",
        "issue",
        "--record",
        &d("record.json"),
        "--out",
        &d("file.pdf"),
        "--chain",
        &chain_file,
        "--key",
        &key_file,
    ]);
    assert!(!o.status.success() && text(&o).contains("never overwritten"), "{}", text(&o));

    // A name the font cannot show: a clear error naming the field, no value, no file.
    std::fs::write(d("bad.json"), record("大阪 😀子")).unwrap();
    let o = jpki(&[
        "resdoc",
        "issue",
        "--record",
        &d("bad.json"),
        "--out",
        &d("bad.pdf"),
        "--chain",
        &chain_file,
        "--key",
        &key_file,
    ]);
    let t = text(&o);
    assert!(!o.status.success() && t.contains("name") && t.contains("U+1F600"), "{t}");
    assert!(!t.contains("大阪"), "no personal data in the error: {t}");
    assert!(!std::path::Path::new(&d("bad.pdf")).exists());
    // A record file that is not a record: the position, not the content.
    std::fs::write(d("junk.json"), r#"{"name": "大阪 花子", "colour": "blue"}"#).unwrap();
    let o = jpki(&[
        "resdoc",
        "issue",
        "--record",
        &d("junk.json"),
        "--out",
        &d("junk.pdf"),
        "--chain",
        &chain_file,
        "--key",
        &key_file,
    ]);
    let t = text(&o);
    assert!(!o.status.success() && t.contains("not a residence record") && !t.contains("花子"), "{t}");
}
