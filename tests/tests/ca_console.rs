//! The CA operators' console in a real browser: `jpki serve ca` as its own process (network
//! credentials from `jpki net`, a resident's certificates issued by `jpki ca issue`), headless
//! Debian Chromium driven by Playwright (tests/python/ca_console.py) presenting the operator's
//! client certificate: every page opened, photographed and checked by axe-core, a certificate
//! revoked by serial with a reason using the keyboard alone, the CRLs published from the page;
//! then, independently of the browser, the CA's status route and `openssl crl` confirm the
//! revocation, the audit trail names the operator, and a window's client certificate got the
//! 403 page. Page-load times (Navigation Timing) are printed for the report.
//!
//! Skipped, with a message, only when `/usr/bin/chromium` is missing and `CI` is unset; in CI
//! a missing browser fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a panic is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Network, csr, text};
use identity::party::Party;
use serde_json::Value;

const MASTER: &str = "4a504b492d746573742d6973737565722d6d61737465722d6b65792d30303031";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Whether to run: the browser is there, or we are in CI (where its absence is a failure).
fn browser_or_ci() -> bool {
    if Path::new("/usr/bin/chromium").exists() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("/usr/bin/chromium is missing in CI: `cargo xtask browser` installs it");
    }
    eprintln!("SKIPPED ca_console: /usr/bin/chromium is not installed (run `cargo xtask browser`); CI is unset");
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_uses_the_console_in_chromium_and_a_window_is_refused() {
    if !browser_or_ci() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let net = Network::start(dir).await;
    let d = |f: &str| dir.join(f).display().to_string();

    // A resident's certificates, issued before the service starts (it owns the store then).
    let code = net.resident("山田花子", "1990-04-01").await;
    let (sign_csr, auth_csr) = (csr(dir, "sign"), csr(dir, "auth"));
    let mut args = common::ca_issue_args("window-1", &code, &sign_csr, &auth_csr, &d("out"));
    args.extend(["--national".to_owned(), net.national.clone()]);
    let o = net.jpki(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", text(&o));
    let sig = std::fs::read_dir(d("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("signature-"))
        .unwrap();
    // The serial as openssl reads it from the certificate.
    let o = Command::new("openssl").arg("x509").arg("-in").arg(&sig).args(["-noout", "-serial"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let serial = text(&o).trim().strip_prefix("serial=").unwrap().to_ascii_lowercase();

    // A same-name re-key of sign-root (link certificates both ways), pending for 30 days.
    let now = identity::http::now();
    std::fs::write(
        d("rekey.toml"),
        format!(
            "ca = \"sign-root\"\ngeneration = 2\nalgorithm = \"p384\"\nkey = \"software\"\n\
             not_before = \"{}\"\nactivation = \"{}\"\nname = \"same\"\n",
            common::rfc3339(now),
            common::rfc3339(now + 30 * 86_400)
        ),
    )
    .unwrap();
    let o = net.jpki(&["ca", "ceremony", "run", &d("rekey.toml"), "--actor", "op-1"]);
    assert!(o.status.success(), "{}", text(&o));

    net.pki.issue("w131016", "window:131016:W01", false);
    let (_ca, url) = net.serve_ca(MASTER).await;
    // A validator's delegated OCSP responders (for the responders page).
    net.enrol_validator(&url, &d("validator"), "validator-test-passphrase");

    // The browser, as the operator (op1) and then as a window.
    let artefacts =
        std::env::var("JPKI_ARTEFACTS").map(PathBuf::from).unwrap_or_else(|_| root().join("target/browser-artefacts"));
    let axe = std::env::var("JPKI_AXE_JS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target/npm/node_modules/axe-core/axe.min.js"));
    let pem = |name: &str| net.pki.prefix(name).with_extension("pem");
    let key = |name: &str| net.pki.browser_key(name, dir);
    let o = Command::new("python3")
        .arg(root().join("tests/python/ca_console.py"))
        .args([&url, &serial])
        .current_dir(root())
        .env("JPKI_CONSOLE_OP_CERT", pem("op1"))
        .env("JPKI_CONSOLE_OP_KEY", key("op1"))
        .env("JPKI_CONSOLE_WINDOW_CERT", pem("w131016"))
        .env("JPKI_CONSOLE_WINDOW_KEY", key("w131016"))
        .env("NODE_EXTRA_CA_CERTS", net.pki.ca_pem())
        .env("JPKI_AXE_JS", &axe)
        .env("JPKI_ARTEFACTS", &artefacts)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    // The page-load times, for the report (visible with --nocapture).
    for line in stderr.lines().filter(|l| l.starts_with("load_ms ")) {
        println!("ca_console {line}");
    }
    assert!(
        o.status.success(),
        "ca_console.py failed: {stderr}\nCA service log: {}",
        std::fs::read_to_string(dir.join("ca-service.log")).unwrap_or_default()
    );
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["window_status"], 403);
    assert!(summary["load_ms"].as_array().unwrap().len() >= 35, "{summary}");
    for s in summary["screenshots"].as_array().unwrap() {
        assert!(std::fs::metadata(s.as_str().unwrap()).unwrap().len() > 1000, "{s}");
    }

    // Independently of the browser: the CA's status route says revoked, affiliationChanged (3).
    let op = net.pki.client("op1", Some(Party::Ca("jpki-ca".into())));
    let st: Value =
        op.get(format!("{url}/v1/status/certificates/{serial}")).send().await.unwrap().json().await.unwrap();
    assert_eq!((st["status"].as_str(), st["reason"].as_i64()), (Some("revoked"), Some(3)), "{st}");
    // openssl finds the serial, with its reason, on the CRL the console published.
    let crl_dir = dir.join("publish/crl/sign-13/g1");
    let mut listed = String::new();
    for e in std::fs::read_dir(&crl_dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "crl") {
            let o = Command::new("openssl")
                .args(["crl", "-inform", "DER", "-noout", "-text", "-in"])
                .arg(&p)
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", text(&o));
            listed.push_str(&text(&o));
        }
    }
    let upper = serial.to_ascii_uppercase();
    let entry = listed.split("Serial Number: ").find(|e| e.trim_start().starts_with(&upper)).unwrap_or_else(|| {
        panic!("{serial} is on no CRL of sign-13 g1: {listed}");
    });
    assert!(entry.contains("Affiliation Changed"), "{entry}");
    // The audit trail (read while the service runs): the revocation under the operator, the
    // CRLs under the operator, the window's refusal under the window.
    let o = net.jpki(&["ca", "audit", "--actor", "op-1", "--limit", "100000"]);
    assert!(o.status.success(), "{}", text(&o));
    let audit = text(&o);
    assert!(audit.contains("audit chain verified"), "{audit}");
    assert!(
        audit.lines().any(|l| l.contains("urn:jpki:operator:op1") && l.contains("revoke") && l.contains(&serial)),
        "{audit}"
    );
    assert!(audit.lines().any(|l| l.contains("urn:jpki:operator:op1") && l.contains(" crl ")), "{audit}");
    assert!(
        audit.lines().any(|l| l.contains("urn:jpki:window:131016:W01")
            && l.contains("refused")
            && l.contains("GET /console: party_not_allowed")),
        "{audit}"
    );
}
