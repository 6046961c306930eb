//! Issue 12, the identity operator console in a real browser: a real national node
//! (`jpki serve national`, mutual TLS with its network credential) pulls a prefecture the test
//! controls (a genuine `prefecture:13` credential, `common::fake`), which appends to 131016's
//! genuine chain a notice sealed on another history; the node halts 131016. Headless Debian
//! Chromium driven by Playwright (tests/python/id_console.py) presents the operator's client
//! certificate (`operator:op1`), opens every console page, screenshots it and runs axe-core
//! (no serious or critical violation); once the fake serves only the genuine chain, it resumes
//! 131016 with the keyboard alone (Tab, Enter) and sees it running; an agency's certificate
//! gets the 403 page. The test then checks the node itself: 131016 applied and not halted, and
//! the operator-log row under the operator's party name. Page-load times are printed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a panic is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::fake::{FakePrefecture, municipality, register};
use common::{Kill, NetPki, free_port, jpki_bin, ready, text};
use identity::client::Heads;
use identity::notice::ChangeNotice;
use identity::store::{self, Db};
use sqlx::Row;

/// The workspace's target directory (where the artefacts and target/npm live).
fn target_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root.join("target"))
}

async fn head(pki: &NetPki, url: &str, source: &str) -> Option<store::Head> {
    let r = pki.client("op1", None).get(format!("{url}/v1/heads")).send().await.unwrap();
    let heads: Heads = r.json().await.unwrap();
    heads.heads.into_iter().find(|h| h.source == source)
}

async fn head_when(pki: &NetPki, url: &str, f: impl Fn(&store::Head) -> bool) -> store::Head {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(h) = head(pki, url, "131016").await.filter(|h| f(h)) {
            return h;
        }
        assert!(Instant::now() < deadline, "131016 never reached the expected state at the national node");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_resumes_a_halted_source_in_the_browser_with_the_keyboard() {
    if !Path::new("/usr/bin/chromium").exists() && std::env::var_os("CI").is_none() {
        eprintln!("SKIPPED: /usr/bin/chromium is absent (run `cargo xtask browser`); CI is unset");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = NetPki::init(dir.path());
    pki.issue("p13", "prefecture:13", true);
    pki.issue("national", "national", true);
    pki.issue("op1", "operator:op1", false);
    pki.issue("agency", "agency:agency-a", false);

    // 131016's genuine chain of two, and a third notice sealed on another history.
    let (tokyo, _) = municipality(&pki, dir.path(), "131016", 100).await;
    let genuine = [register(&tokyo, "東京　一郎").await, register(&tokyo, "東京　二郎").await];
    let fake = FakePrefecture::new(vec![("131016", tokyo.db().clone(), "131016")]);
    let forged = ChangeNotice::seal(tokyo.code().clone(), 3, [7; 32], genuine[1].body.clone());
    fake.appended.lock().unwrap().push(forged.clone());
    let p13 = fake.serve(&pki, "p13").await;

    // The real national node, pulling the fake prefecture.
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}");
    let ndb = dir.path().join("n.db");
    let _node = Kill(
        Command::new(jpki_bin())
            .args(["serve", "national", "--db", ndb.to_str().unwrap(), "--interval-ms", "100"])
            .args(["--listen", &format!("127.0.0.1:{port}"), "--prefecture", &format!("13={p13}")])
            .env_remove("JPKI_DB")
            .env("RUST_LOG", "warn,identity=info")
            .envs(pki.env("national"))
            .stderr(std::fs::File::create(dir.path().join("national.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    ready(&url, &pki.client("op1", None)).await;
    let halted = head_when(&pki, &url, |h| h.halted.is_some()).await;
    assert!(halted.halted.as_deref().unwrap().contains("prev_hash"), "{halted:?}");
    // From now on the prefecture serves only the genuine chain: once resumed, it applies.
    fake.appended.lock().unwrap().clear();

    // The browser: every page as the operator, the resume by keyboard, the agency refused.
    let creds = |name: &str| {
        let cert = format!("{}.pem", pki.prefix(name).display());
        (cert, pki.browser_key(name, dir.path()).display().to_string())
    };
    let ((op_cert, op_key), (ag_cert, ag_key)) = (creds("op1"), creds("agency"));
    let target = target_dir();
    let axe = std::env::var("JPKI_AXE_JS")
        .unwrap_or_else(|_| target.join("npm/node_modules/axe-core/axe.min.js").display().to_string());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/id_console.py");
    let o = Command::new("python3")
        .arg(script)
        .env("JPKI_CONSOLE_URL", &url)
        .env("JPKI_HALTED_SOURCE", "131016")
        .env("JPKI_OP_CERT", op_cert)
        .env("JPKI_OP_KEY", op_key)
        .env("JPKI_AGENCY_CERT", ag_cert)
        .env("JPKI_AGENCY_KEY", ag_key)
        .env("NODE_EXTRA_CA_CERTS", pki.ca_pem())
        .env("JPKI_AXE_JS", axe)
        .env("JPKI_ARTEFACTS", target.join("browser-artefacts"))
        .output()
        .unwrap();
    let out = text(&o);
    let log = std::fs::read_to_string(dir.path().join("national.log")).unwrap_or_default();
    assert!(o.status.success(), "id_console.py failed:\n{out}\nnational.log:\n{log}");
    // The timings for the report (`cargo test … -- --nocapture` shows them).
    let summary: serde_json::Value = serde_json::from_str(out.lines().rfind(|l| l.starts_with('{')).unwrap()).unwrap();
    println!("id console page loads (ms): {summary}");
    assert!(summary["loads"].as_u64().unwrap() >= 50, "{summary}");

    // The node itself: 131016 resumed and applied, the resume in the operator log under the
    // operator's party name, the refusal of the agency logged without personal data.
    let h = head_when(&pki, &url, |h| h.seq == 2).await;
    assert_eq!(h.halted, None);
    assert_eq!(h.hash, genuine[1].hash.iter().map(|b| format!("{b:02x}")).collect::<String>());
    let db = Db::open(&ndb.display().to_string()).await.unwrap();
    let rows: Vec<(String, String, String)> =
        sqlx::query("SELECT operator, role, subject FROM operator_log WHERE action = 'resume_source'")
            .fetch_all(db.pool())
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap(), r.try_get(2).unwrap()))
            .collect();
    assert_eq!(rows, vec![("urn:jpki:operator:op1".into(), "national_operator".into(), "131016".into())]);
    let log = std::fs::read_to_string(dir.path().join("national.log")).unwrap();
    let refusal = log.lines().find(|l| l.contains("console refused")).unwrap_or_else(|| panic!("{log}"));
    assert!(refusal.contains("urn:jpki:agency:agency-a") && refusal.contains("/console/"), "{refusal}");
    assert!(!refusal.contains("東京"), "{refusal}");
    assert!(log.contains("halted source resumed from the console"), "{log}");
}
