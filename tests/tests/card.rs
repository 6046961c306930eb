//! Cards through the real PC/SC stack: `pcscd` with vsmartcard's `vpcd`, our virtual card
//! (`jpki card-sim`) behind it, our writer (`jpki card …`) in front, and OpenSC reading and
//! signing as any third-party software would. Needs pcscd running with the vpcd readers
//! (`cargo xtask ci` and `cargo xtask pcsc up` start it).
//!
//! The writer runs as a window process that holds no CA secret: its environment has only the
//! window's own credential, the clerk's key, the CA service's URL and the resident's PINs —
//! no CA passphrase or PIN, no card issuer key, no key directory — and, when the tests run as
//! root (CI), it runs as `nobody` and provably cannot read the CA's files.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a panic is a failed test

mod common;

use std::process::{Command, Output};
use std::time::Instant;
use tokio::sync::Mutex;

use card::apdu::Status;
use card::jpki::{KeyRef, Lifecycle};
use card::reader::{Jpki, Reader};
use common::{
    AUTH_PIN, ISSUER_KEY, Network, READER0, READER1, SIGN_PIN, card_sim, jpki_bin, opensc as tool, pem_to_der,
    require_pcsc_stack, text, wait_removed,
};

/// The window of these tests: its own credential and its clerk's key (copied into a directory
/// of their own, owned by the window's user), and the CA service it talks to.
struct Window {
    dir: tempfile::TempDir,
    ca_url: String,
    /// Runs as `nobody` (uid 65534) when the tests run as root.
    as_nobody: bool,
}

impl Window {
    /// Sets up window `window:131016:W01` with clerk `clerk:131016:C1` for the CA service at
    /// `ca_url`.
    fn new(net: &Network, ca_url: &str) -> Window {
        net.pki.issue("window", "window:131016:W01", false);
        net.pki.clerk_key("clerk", "clerk:131016:C1");
        let dir = tempfile::tempdir().unwrap();
        let as_nobody = Command::new("id").arg("-u").output().map(|o| text(&o).trim() == "0").unwrap_or(false);
        let mut files: Vec<(std::path::PathBuf, &str)> = Vec::new();
        for name in ["window", "clerk"] {
            for ext in ["pem", "key"] {
                files.push((net.pki.prefix(name).with_extension(ext), name));
            }
        }
        files.push((net.pki.ca_pem(), "network-ca"));
        files.push((net.pki.crl_pem(), "network-crl"));
        for (from, name) in files {
            let ext = from.extension().unwrap().to_str().unwrap().to_owned();
            let ext = if name.starts_with("network") { "pem".to_owned() } else { ext };
            let to = dir.path().join(format!("{name}.{ext}"));
            std::fs::copy(&from, &to).unwrap();
            if as_nobody {
                std::os::unix::fs::chown(&to, Some(65534), Some(65534)).unwrap();
            }
        }
        if as_nobody {
            std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
            // The CA's files are out of the window's reach: they live in a directory of the
            // CA's user (root here), mode 0700.
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&net.dir, std::fs::Permissions::from_mode(0o700)).unwrap();
            for f in ["ca.db", "keys"] {
                let o = Command::new("setpriv")
                    .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
                    .arg(net.dir.join(f))
                    .output()
                    .unwrap();
                assert!(!o.status.success(), "the window user can read the CA's {f}");
            }
        }
        Window { dir, ca_url: ca_url.to_owned(), as_nobody }
    }

    /// Runs `jpki ARGS` as the window, with only the window's environment plus `extra` (the
    /// resident's PINs).
    fn run(&self, args: &[&str], extra: &[(&str, &str)]) -> Output {
        let f = |n: &str| self.dir.path().join(n).display().to_string();
        let mut c = if self.as_nobody {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(jpki_bin());
            c
        } else {
            Command::new(jpki_bin())
        };
        c.args(args).env_clear().current_dir(self.dir.path());
        for k in ["PATH", "RUST_LOG"] {
            if let Some(v) = std::env::var_os(k) {
                c.env(k, v);
            }
        }
        c.env("JPKI_CREDENTIAL", f("window"))
            .env("JPKI_NETWORK_CA", f("network-ca.pem"))
            .env("JPKI_NETWORK_CRL", f("network-crl.pem"))
            .env("JPKI_CREDENTIAL_PASSPHRASE", common::NetPki::PASSPHRASE)
            .env("JPKI_CLERK", f("clerk"))
            .env("JPKI_CLERK_PASSPHRASE", common::NetPki::PASSPHRASE)
            .env("JPKI_CA_URL", &self.ca_url);
        for (k, v) in extra {
            c.env(k, v);
        }
        c.output().unwrap()
    }
}

/// Both tests use the two vpcd readers and OpenSC sees every card: one at a time.
static READERS: Mutex<()> = Mutex::const_new(());

/// The resident's PINs (typed on the window's PIN pad).
fn card_env() -> Vec<(&'static str, &'static str)> {
    vec![("JPKI_CARD_AUTH_PIN", AUTH_PIN), ("JPKI_CARD_SIGN_PIN", SIGN_PIN)]
}

fn issue_args<'a>(reader: &'a str, resident: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["card", "issue", "--reader", reader, "--resident", resident, "--card-expiry", "2035-12-31"];
    v.extend_from_slice(extra);
    v
}

/// Serials of the certificates a `card issue` wrote, as it printed them.
fn written(out: &str, kind: &str) -> String {
    out.lines()
        .find(|l| l.trim_start().starts_with(&format!("{kind} certificate")) && l.contains("written"))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or_else(|| panic!("no {kind} certificate in: {out}"))
        .to_owned()
}

/// Review finding C1, APDU by APDU through pcscd: whoever holds the issuer master and the card
/// authenticates as the issuer, but OPEN PERSONALISATION on the issued card is refused without
/// the resident's PINs and COMPUTE SIGNATURE without VERIFY answers `69 82`. The master itself
/// is not the card's key (each card has its own, derived from the master and its serial).
fn issuer_session_reaches_no_resident_key(reader: &str) {
    let master: Vec<u8> =
        (0..ISSUER_KEY.len()).step_by(2).map(|i| u8::from_str_radix(&ISSUER_KEY[i..i + 2], 16).unwrap()).collect();
    let r = Reader::open(reader).unwrap();
    let conn = r.connect().unwrap();
    let mut j = Jpki::new(&conn);
    j.select_ap().unwrap();
    let st = j.status().unwrap();
    assert_eq!(st.lifecycle, Lifecycle::Issued);
    let mut issuer_auth = |key: &[u8]| {
        let challenge = j.get_challenge().unwrap();
        j.external_authenticate(&card::applet::issuer_mac(key, &challenge, &st.serial).unwrap())
    };
    let e = issuer_auth(&master).unwrap_err();
    assert!(matches!(e, card::Error::IssuerAuth(9)), "the master is no card key: {e}");
    issuer_auth(&card::applet::card_issuer_key(&master, &st.serial).unwrap()).unwrap();
    let refused = |e: card::Error| matches!(e, card::Error::Card { status: Status::SecurityNotSatisfied, .. });
    let e = j.open_personalisation().unwrap_err();
    assert!(refused(e), "OPEN PERSONALISATION without the PINs");
    let di = [card::reader::SHA256_DIGEST_INFO_PREFIX.as_slice(), &[0x11; 32]].concat();
    for k in [KeyRef::Sign, KeyRef::Auth] {
        let e = j.sign(k, &di).unwrap_err();
        assert!(refused(e), "COMPUTE SIGNATURE with the {} key without VERIFY", k.name());
    }
    let st = j.status().unwrap();
    assert_eq!((st.lifecycle, st.issuer_tries), (Lifecycle::Issued, 10));
    assert!(st.auth_key.is_some() && st.sign_key.is_some(), "the keys are untouched");
    conn.finish().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn writer_issues_a_card_that_opensc_reads_and_signs_with() {
    let _g = READERS.lock().await;
    require_pcsc_stack();
    let dir = tempfile::tempdir().unwrap();
    let net = Network::start(dir.path()).await;
    let resident = net.resident("山田　花子", "1980-02-29").await;
    let env = card_env();
    let (_ca, ca_url) = net.serve_ca(ISSUER_KEY).await;
    let w = Window::new(&net, &ca_url);
    // Bad input before any card: an unknown reader, an empty reader.
    let o = w.run(&issue_args("No Such Reader", &resident, &[]), &env);
    assert!(!o.status.success() && text(&o).contains("no reader named \"No Such Reader\""), "{}", text(&o));
    let o = w.run(&issue_args(READER1, &resident, &["--wait", "1"]), &env);
    assert!(!o.status.success() && text(&o).contains("no card in reader"), "{}", text(&o));

    let _card = card_sim(&dir.path().join("card.json"), 35963, None);
    // A resident the network does not know: refused, and the card stays re-issuable.
    let o = w.run(&issue_args(READER0, "12345678903", &[]), &env);
    assert!(!o.status.success() && text(&o).contains("refused (resident_unknown)"), "{}", text(&o));
    let o = net.jpki(&["card", "status", "--reader", READER0]);
    assert!(text(&o).contains("(blank)"), "{}", text(&o));
    // Regression: a typo in the card expiry is caught before the card is touched (it used to
    // leave the card personalising, its keys regenerated).
    let mut typo = issue_args(READER0, &resident, &[]);
    let at = typo.iter().position(|a| *a == "--card-expiry").unwrap() + 1;
    typo[at] = "2035-13-31";
    let o = w.run(&typo, &env);
    assert!(!o.status.success() && text(&o).contains("invalid card_expiry"), "{}", text(&o));
    let o = net.jpki(&["card", "status", "--reader", READER0]);
    assert!(text(&o).contains("(blank)") && text(&o).contains("keys: authentication none"), "{}", text(&o));
    // The window holds no issuer key: without the CA service's answer the card stays blank.
    let mut away = issue_args(READER0, &resident, &[]);
    away.extend_from_slice(&["--ca", "https://127.0.0.1:9"]);
    let o = w.run(&away, &env);
    assert!(!o.status.success() && text(&o).contains("unreachable"), "{}", text(&o));
    let o = net.jpki(&["card", "status", "--reader", READER0]);
    assert!(text(&o).contains("(blank)"), "{}", text(&o));

    let t = Instant::now();
    let o = w.run(&issue_args(READER0, &resident, &[]), &env);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    eprintln!("issuance took {:?}: {out}", t.elapsed());
    let (auth_serial, sign_serial) = (written(&out, "authentication"), written(&out, "signature"));
    // Issued once: a second issuance is refused.
    let o = w.run(&issue_args(READER0, &resident, &[]), &env);
    assert!(!o.status.success() && text(&o).contains("already issued"), "{}", text(&o));
    // The card-sim state file holds private keys: mode 0600.
    let mode = std::os::unix::fs::PermissionsExt::mode(&dir.path().join("card.json").metadata().unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "card state file mode {mode:o}");
    issuer_session_reaches_no_resident_key(READER0);

    // OpenSC: the driver, the four certificates, byte-identical to what the CA issued.
    let o = tool("opensc-tool", &["--reader", "0", "-n"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "jpki", "{}", text(&o));
    let o = tool("pkcs15-tool", &["--reader", "0", "--list-certificates"]);
    assert_eq!(text(&o).matches("X.509 Certificate [").count(), 4, "{}", text(&o));
    let ca_pem = |serial: &str| net.jpki(&["ca", "show", "--actor", "op-1", "--pem", serial]).stdout;
    let read = |id: &str, pin: bool| {
        let mut a = vec!["--reader", "0", "--read-certificate", id];
        if pin {
            a.extend_from_slice(&["--auth-id", "02", "--pin", SIGN_PIN, "--verify-pin"]);
        }
        let o = tool("pkcs15-tool", &a);
        assert!(o.status.success(), "{}", text(&o));
        o.stdout
    };
    assert_eq!(pem_to_der(&read("01", false)), pem_to_der(&ca_pem(&auth_serial)));
    assert_eq!(pem_to_der(&read("02", true)), pem_to_der(&ca_pem(&sign_serial)));
    let ca_cert = |slug: &str| net.jpki(&["ca", "cert", "--actor", "op-1", slug]).stdout;
    assert_eq!(pem_to_der(&read("03", false)), pem_to_der(&ca_cert("auth-13")));
    assert_eq!(pem_to_der(&read("04", false)), pem_to_der(&ca_cert("sign-13")));

    // pkcs11-tool signs with each key; openssl verifies against the issued certificates.
    let d = |f: &str| dir.path().join(f).display().to_string();
    std::fs::write(d("msg"), b"a document the resident signs").unwrap();
    for (label, pin, id, serial) in [
        ("JPKI (User Authentication PIN)", AUTH_PIN, "01", &auth_serial),
        ("JPKI (Digital Signature PIN)", SIGN_PIN, "02", &sign_serial),
    ] {
        std::fs::write(d("cert.pem"), ca_pem(serial)).unwrap();
        let o = Command::new("openssl").args(["x509", "-in", &d("cert.pem"), "-pubkey", "-noout"]).output().unwrap();
        std::fs::write(d("pub.pem"), &o.stdout).unwrap();
        let o = tool(
            "pkcs11-tool",
            &[
                "--token-label",
                label,
                "--login",
                "--pin",
                pin,
                "--sign",
                "--id",
                id,
                "-m",
                "SHA256-RSA-PKCS",
                "-i",
                &d("msg"),
                "-o",
                &d("sig"),
            ],
        );
        assert!(o.status.success(), "pkcs11-tool {label}: {}", text(&o));
        let o = Command::new("openssl")
            .args(["dgst", "-sha256", "-verify", &d("pub.pem"), "-signature", &d("sig"), &d("msg")])
            .output()
            .unwrap();
        assert!(text(&o).contains("Verified OK"), "{label}: {}", text(&o));
    }

    // A wrong PIN: CKR_PIN_INCORRECT, and the tries left drop from 3 to 2.
    let o = tool(
        "pkcs11-tool",
        &[
            "--token-label",
            "JPKI (User Authentication PIN)",
            "--login",
            "--pin",
            "9999",
            "--sign",
            "--id",
            "01",
            "-m",
            "SHA256-RSA-PKCS",
            "-i",
            &d("msg"),
            "-o",
            &d("sig"),
        ],
    );
    assert!(!o.status.success() && text(&o).contains("CKR_PIN_INCORRECT"), "{}", text(&o));
    let o = net.jpki(&["card", "status", "--reader", READER0]);
    assert!(text(&o).contains("authentication PIN: 2/3 tries left"), "{}", text(&o));
    // Our writer says the same; two more wrong PINs block; the clerk resets it.
    let o =
        net.jpki_env(&["card", "verify-pin", "--reader", READER0, "--pin", "auth"], &[("JPKI_CARD_AUTH_PIN", "1111")]);
    assert!(!o.status.success() && text(&o).contains("wrong authentication PIN: 1 tries left"), "{}", text(&o));
    let o =
        net.jpki_env(&["card", "verify-pin", "--reader", READER0, "--pin", "auth"], &[("JPKI_CARD_AUTH_PIN", "1111")]);
    assert!(!o.status.success() && text(&o).contains("blocked"), "{}", text(&o));
    let o = net.jpki_env(&["card", "verify-pin", "--reader", READER0, "--pin", "auth"], &env);
    assert!(!o.status.success() && text(&o).contains("authentication PIN is blocked"), "{}", text(&o));
    let o = w.run(&["card", "pin-reset", "--reader", READER0, "--resident", &resident, "--pin", "auth"], &env);
    assert!(o.status.success(), "{}", text(&o));
    let o = net.jpki_env(&["card", "verify-pin", "--reader", READER0, "--pin", "auth"], &env);
    assert!(o.status.success() && text(&o).contains("3 tries left"), "{}", text(&o));

    // Renewal needs the resident's current PINs: a wrong signature password stops it before
    // anything changes (the card stays issued with its keys).
    let renew = ["card", "renew", "--reader", READER0, "--resident", &resident, "--card-expiry", "2035-12-31"];
    let mut wrong = env.clone();
    wrong[1].1 = "WRONG123";
    let o = w.run(&renew, &wrong);
    assert!(!o.status.success() && text(&o).contains("wrong signature password: 4 tries left"), "{}", text(&o));
    let o = net.jpki(&["card", "status", "--reader", READER0]);
    assert!(text(&o).contains("(issued)") && text(&o).contains("signature password: 4/5"), "{}", text(&o));
    // Renewal: new keys and certificates; the old ones are revoked as superseded.
    let o = w.run(&renew, &env);
    assert!(o.status.success(), "{}", text(&o));
    let new_auth = written(&text(&o), "authentication");
    let o = net.jpki(&["card", "status", "--reader", READER0]);
    assert!(text(&o).contains("signature password: 5/5"), "{}", text(&o));
    assert_ne!(new_auth, auth_serial);
    let o = net.jpki(&["ca", "show", "--actor", "op-1", &auth_serial]);
    assert!(text(&o).contains("superseded"), "{}", text(&o));
    assert_eq!(pem_to_der(&read("01", false)), pem_to_der(&ca_pem(&new_auth)));

    // The clerk's new signature password costs the signature key (the issuer never signs with
    // the resident's key); a renewal with the new password brings a new one.
    let new_sign = [("JPKI_CARD_AUTH_PIN", AUTH_PIN), ("JPKI_CARD_SIGN_PIN", "NEW456")];
    let o = w.run(&["card", "pin-reset", "--reader", READER0, "--resident", &resident, "--pin", "sign"], &new_sign);
    assert!(o.status.success() && text(&o).contains("destroyed its signature key"), "{}", text(&o));
    let o = net.jpki(&["card", "status", "--reader", READER0]);
    assert!(text(&o).contains("(issued)") && text(&o).contains("signature none"), "{}", text(&o));
    let o = w.run(&renew, &new_sign);
    assert!(o.status.success(), "{}", text(&o));
    let o = net.jpki(&["card", "status", "--reader", READER0]);
    assert!(text(&o).contains("signature Rsa2048") && text(&o).contains("signature password: 5/5"), "{}", text(&o));
    // Every issuer session, issuance and renewal is in the CA's audit trail under the
    // authenticated window and clerk.
    let o = net.jpki(&["ca", "audit", "--actor", "auditor", "--limit", "500"]);
    let who = "urn:jpki:window:131016:W01 urn:jpki:clerk:131016:C1";
    for action in ["card_issuer_auth", "card_issuance", "card_renewal"] {
        assert!(text(&o).lines().any(|l| l.contains(who) && l.contains(action)), "{action}: {}", text(&o));
    }
    assert!(text(&o).lines().any(|l| l.contains(who) && l.contains("pin_reset")), "{}", text(&o));
    assert_eq!(w.as_nobody, Command::new("id").arg("-u").output().map(|o| text(&o).trim() == "0").unwrap_or(false));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_card_pulled_mid_personalisation_is_detected_and_resumed() {
    let _g = READERS.lock().await;
    require_pcsc_stack();
    let dir = tempfile::tempdir().unwrap();
    let net = Network::start(dir.path()).await;
    let resident = net.resident("佐藤　一郎", "1975-06-01").await;
    let env = card_env();
    let (_ca, ca_url) = net.serve_ca(ISSUER_KEY).await;
    let w = Window::new(&net, &ca_url);
    let state = dir.path().join("card.json");
    // The card is pulled after 12 APDUs: keys generated, the new PINs half set.
    let sim = card_sim(&state, 35964, Some(12));
    let o = w.run(&issue_args(READER1, &resident, &["--wait", "5"]), &env);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("the card was removed during"), "{}", text(&o));
    drop(sim);
    wait_removed(READER1);
    // Re-inserted: the writer detects the interrupted personalisation.
    let _sim = card_sim(&state, 35964, None);
    let o = net.jpki_env(&["card", "status", "--reader", READER1, "--wait", "5"], &env);
    assert!(text(&o).contains("personalising") && text(&o).contains("--resume"), "{}", text(&o));
    let o = w.run(&issue_args(READER1, &resident, &["--wait", "5"]), &env);
    assert!(!o.status.success() && text(&o).contains("--resume"), "{}", text(&o));
    // Either wipe it …
    let o = w.run(&["card", "wipe", "--reader", READER1, "--resident", &resident], &env);
    assert!(o.status.success() && text(&o).contains("wiped back to blank"), "{}", text(&o));
    drop(_sim);
    wait_removed(READER1);
    // … or, pulled again (after 20 APDUs: keys, PINs, CSRs, the CA's certificates and the first
    // one written), resume it.
    let sim = card_sim(&state, 35964, Some(20));
    let o = w.run(&issue_args(READER1, &resident, &["--wait", "5"]), &env);
    assert!(!o.status.success() && text(&o).contains("the card was removed during"), "{}", text(&o));
    drop(sim);
    wait_removed(READER1);
    let _sim = card_sim(&state, 35964, None);
    // Resumed: the keys on the card are kept and the CA returns the same certificates.
    let o = w.run(&issue_args(READER1, &resident, &["--wait", "5", "--resume"]), &env);
    assert!(o.status.success(), "{}", text(&o));
    let o = net.jpki(&["card", "status", "--reader", READER1]);
    assert!(text(&o).contains("(issued)") && text(&o).contains("authentication PIN: 3/3"), "{}", text(&o));
}
