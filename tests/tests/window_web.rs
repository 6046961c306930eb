//! The municipal window's pages (`jpki serve window`) in headless Chromium, driven by
//! Playwright (tests/python/window_flow.py), against the real processes: the identity network,
//! the CA service following the national feed, the virtual card behind pcscd + vpcd, and OpenSC
//! reading what the page wrote. Needs pcscd with the vpcd readers (`cargo xtask pcsc up`) and
//! the browser stack (`cargo xtask browser`); `cargo xtask ci` brings up both.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a panic is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{ISSUER_KEY, Kill, NetPki, Network, free_port, jpki_bin, opensc, pem_to_der, text, wait_removed};
use serde_json::Value;

const AUTH_PIN: &str = "1234";
const SIGN_PIN: &str = "ABC123";
const READER: &str = "Virtual PCD 00 00";
const VPCD_PORT: u16 = 35963;

/// Whether the browser tests can run: in CI (`CI` set) the browser must be there.
fn browser_present() -> bool {
    let present = Path::new("/usr/bin/chromium").exists();
    assert!(present || std::env::var_os("CI").is_none(), "CI without /usr/bin/chromium: run `cargo xtask browser`");
    if !present {
        eprintln!("skipped: /usr/bin/chromium is missing (`cargo xtask browser` installs it)");
    }
    present
}

/// Takes the card out and waits until pcscd sees the reader empty.
fn pull(sim: Kill) {
    drop(sim);
    wait_removed(READER);
}

/// A virtual card in this test's reader.
fn card_sim(state: &Path, pull_after: Option<u64>) -> Kill {
    common::card_sim(state, VPCD_PORT, pull_after)
}

/// The browser flow, phase by phase, its cookies kept in one file.
struct Flow {
    env: Vec<(String, String)>,
    state: PathBuf,
    loads: Vec<f64>,
}

impl Flow {
    fn run(&mut self, phase: &str, args: &[&str]) -> Value {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/window_flow.py");
        let o = Command::new("python3")
            .arg(&script)
            .arg(phase)
            .arg(&self.state)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        assert!(o.status.success(), "phase {phase}: {}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        let v: Value = serde_json::from_str(out.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {out}"));
        self.loads.extend(v["loads_ms"].as_array().unwrap().iter().filter_map(Value::as_f64));
        v
    }
}

/// The serial after `label` in a job's text (`署名用電子証明書 シリアル 1A2B…`).
fn serial_after(text: &str, label: &str) -> String {
    let line = text.lines().find(|l| l.contains(label)).unwrap_or_else(|| panic!("no {label} in {text}"));
    line.rsplit(' ').next().unwrap().trim().to_owned()
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let k = ((p / 100.0 * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    v[k]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clerk_registers_issues_and_moves_a_resident_in_the_browser() {
    if !browser_present() {
        return;
    }
    let o = Command::new(jpki_bin()).args(["card", "readers"]).output().unwrap();
    assert!(
        text(&o).contains(READER),
        "pcscd with the vpcd readers is not running: `cargo xtask pcsc up` ({})",
        text(&o)
    );
    let dir = tempfile::tempdir().unwrap();
    let d = |f: &str| dir.path().join(f);
    let net = Network::start(dir.path()).await;
    let (ca, ca_url) = net.serve_ca(ISSUER_KEY).await;

    // The window's credential serves its pages on 127.0.0.1; its clerks' key files are in a
    // directory of their own (one of them, wrongly, a clerk of another municipality).
    net.pki.issue("window", "window:131016:W01", true);
    net.pki.clerk_key("C0001", "clerk:131016:C0001");
    net.pki.clerk_key("C9001", "clerk:271004:C9001");
    std::fs::create_dir(d("clerks")).unwrap();
    for (name, ext) in [("C0001", "pem"), ("C0001", "key"), ("C9001", "pem"), ("C9001", "key")] {
        std::fs::copy(net.pki.prefix(name).with_extension(ext), d("clerks").join(format!("{name}.{ext}"))).unwrap();
    }
    let mut sim = card_sim(&d("card1.json"), None);
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}");
    let _window = net.pki.serve_env(
        "window",
        &[
            "serve",
            "window",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--clerks",
            d("clerks").to_str().unwrap(),
            "--ca",
            &ca_url,
            "--node",
            &net.municipality,
            "--national",
            &net.national,
            "--reader",
            READER,
            "--wait",
            "5",
        ],
        &[],
    );
    // Up when the sign-in page answers over TLS with the window's certificate.
    let ca_pem = std::fs::read(net.pki.ca_pem()).unwrap();
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca_pem).unwrap())
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while https.get(format!("{url}/signin")).send().await.is_err() {
        assert!(Instant::now() < deadline, "the window did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let artefacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/browser-artefacts");
    let mut flow = Flow {
        env: vec![
            ("JPKI_WINDOW_URL".into(), url.clone()),
            ("JPKI_WINDOW_CERT".into(), net.pki.prefix("window").with_extension("pem").display().to_string()),
            ("JPKI_CLERK_ID".into(), "C0001".into()),
            ("JPKI_CLERK_PASSPHRASE".into(), NetPki::PASSPHRASE.into()),
            ("JPKI_ARTEFACTS".into(), artefacts.display().to_string()),
            // Playwright's own requests (page.request: the CSRF refusals) trust the network CA.
            ("NODE_EXTRA_CA_CERTS".into(), net.pki.ca_pem().display().to_string()),
        ],
        state: d("browser-state.json"),
        loads: Vec::new(),
    };

    // Sign in (after a wrong passphrase and another municipality's clerk are refused), the
    // CSRF and cross-site refusals, and a registration through the form.
    let r = flow.run("signin-register", &["C9001", "山田　花子", "1990-04-01"]);
    let resident = r["resident"].as_str().unwrap().to_owned();
    net.wait_national(&resident).await;

    // The issuance, with the keyboard alone, showing each step as it completes.
    let r = flow.run("issue", &[&resident, AUTH_PIN, SIGN_PIN]);
    assert_eq!(r["state"], "done", "{r}");
    assert_eq!(
        r["steps"],
        serde_json::json!(["CardDetected", "KeysGenerated", "CertificatesIssued", "Written", "Checked"]),
        "{r}"
    );
    let job = r["text"].as_str().unwrap();
    let (auth_serial, sign_serial) = (serial_after(job, "利用者証明用"), serial_after(job, "署名用電子証明書"));

    // OpenSC reads back exactly what the CA issued.
    let o = opensc("pkcs15-tool", &["--reader", "0", "--list-certificates"]);
    assert_eq!(text(&o).matches("X.509 Certificate [").count(), 4, "{}", text(&o));
    let o = opensc("pkcs15-tool", &["--reader", "0", "--read-certificate", "01"]);
    assert!(o.status.success(), "{}", text(&o));
    let issued = net.jpki(&["ca", "show", "--actor", "op-1", "--pem", &auth_serial]).stdout;
    assert_eq!(pem_to_der(&o.stdout), pem_to_der(&issued), "the card's authentication certificate");

    // Wrong PIN until blocked, then a clerk's PIN reset.
    let r = flow.run("renew-wrong-pin", &[&resident]);
    let attempts = r["attempts"].as_array().unwrap();
    assert!(attempts[0][2].as_str().unwrap().contains("残り2回"), "{r}");
    assert!(attempts[1][2].as_str().unwrap().contains("残り1回"), "{r}");
    assert!(attempts[2][2].as_str().unwrap().contains("再設定"), "{r}");
    let r = flow.run("card-status", &[]);
    assert!(r["text"].as_str().unwrap().contains("ロック中"), "{r}");
    let r = flow.run("pin-reset", &[&resident, "auth", "5678"]);
    assert_eq!(r["state"], "done", "{r}");
    let r = flow.run("card-status", &[]);
    assert!(r["text"].as_str().unwrap().contains("残り3/3回"), "{r}");

    // The resident's disclosure report lists the CA's provision for the issuance.
    let r = flow.run("disclosure", &[&resident]);
    assert!(r["rows"].as_u64().unwrap() >= 1, "{r}");

    // Moved out: the CA follows the feed and revokes the signature certificate.
    let r = flow.run("move-out", &[&resident, "271004"]);
    assert!(r["text"].as_str().unwrap().contains("転出を登録しました"), "{r}");
    assert!(r["disclosure_after"].as_str().unwrap().contains("当市区町村の住民ではありません"), "{r}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let o = net.jpki(&["ca", "show", "--actor", "op-1", &sign_serial]);
        if text(&o).contains("revoked") {
            break;
        }
        assert!(Instant::now() < deadline, "the signature certificate was not revoked: {}", text(&o));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A card pulled mid-issuance (after 20 APDUs: the certificates issued, the first written),
    // then resumed on the page.
    let r = flow.run("register", &["鈴木　一郎", "1985-07-07"]);
    let second = r["resident"].as_str().unwrap().to_owned();
    net.wait_national(&second).await;
    pull(sim);
    sim = card_sim(&d("card2.json"), Some(20));
    let r = flow.run("issue", &[&second, AUTH_PIN, SIGN_PIN]);
    assert_eq!((r["state"].as_str(), r["code"].as_str()), (Some("failed"), Some("card_removed")), "{r}");
    assert!(r["text"].as_str().unwrap().contains("発行を再開"), "{r}");
    pull(sim);
    sim = card_sim(&d("card2.json"), None);
    let r = flow.run("card-status", &[]);
    assert_eq!(r["lifecycle"], "Personalising", "{r}");
    let r = flow.run("issue", &[&second, AUTH_PIN, SIGN_PIN, "resume"]);
    assert_eq!(r["state"], "done", "{r}");
    let r = flow.run("card-status", &[]);
    assert_eq!(r["lifecycle"], "Issued", "{r}");

    // A child under 15: a signature certificate is refused and the card wiped back to blank;
    // without one (the form's default for a child) the card is issued.
    let r = flow.run("register", &["鈴木　次郎", "2019-05-05"]);
    let child = r["resident"].as_str().unwrap().to_owned();
    net.wait_national(&child).await;
    pull(sim);
    // No card in the reader: the status page says so, with what to do.
    let r = flow.run("card-status", &[]);
    assert!(r["text"].as_str().unwrap().contains("カードが挿入されていません"), "{r}");
    sim = card_sim(&d("card3.json"), None);
    let r = flow.run("issue", &[&child, AUTH_PIN, SIGN_PIN, "issue", "sig"]);
    assert_eq!((r["state"].as_str(), r["code"].as_str()), (Some("failed"), Some("under_age")), "{r}");
    assert!(r["text"].as_str().unwrap().contains("白紙に戻しました"), "{r}");
    assert_eq!(flow.run("card-status", &[])["lifecycle"], "Blank");
    let r = flow.run("issue", &[&child, AUTH_PIN, SIGN_PIN, "issue", "nosig"]);
    assert_eq!(r["state"], "done", "{r}");
    assert!(!r["text"].as_str().unwrap().contains("署名用電子証明書 シリアル"), "{r}");

    // The CA unreachable: a clear message, and the blank card is left untouched.
    drop(ca);
    pull(sim);
    let _sim = card_sim(&d("card4.json"), None);
    let r = flow.run("issue", &[&second, AUTH_PIN, SIGN_PIN]);
    assert_eq!((r["state"].as_str(), r["code"].as_str()), (Some("failed"), Some("ca_unreachable")), "{r}");
    let r = flow.run("card-status", &[]);
    assert_eq!(r["lifecycle"], "Blank", "{r}");

    // Page loads, reported (not asserted): request start to the load event, in Chromium on
    // loopback, without axe-core in the page; the resident's page is a POST that asks the node.
    flow.loads.clear();
    flow.run("timing", &[&second]);
    let n = flow.loads.len();
    let (p50, p99) = (percentile(&mut flow.loads, 50.0), percentile(&mut flow.loads, 99.0));
    println!("window page loads in Chromium on loopback: n={n}, p50={p50:.1} ms, p99={p99:.1} ms");
    flow.run("signout", &[]);
}
