//! Trust boundaries, accepted over real TLS sockets against real `jpki serve` processes: the
//! national node admits only current credentials of its network CA (no certificate, another
//! CA's, an expired one and one revoked while it runs are all refused, and nothing is
//! applied); a municipality's credential reaches only what the authorization table gives it;
//! plain `http://` peers are refused at start; and no secret shows in `--help` or in the
//! command line of a running node.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a panic is a failed test

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Kill, NetPki, Network, free_port, jpki_bin, ready, text};
use identity::party::Party;
use net::secret::Secret;

/// `POST /v1/code-pools` for `municipality`: the status, or the transport error (a refused
/// handshake) as text.
async fn draw(client: &reqwest::Client, national: &str, municipality: &str) -> Result<(u16, String), String> {
    let body = serde_json::json!({"municipality": municipality, "count": 1});
    match client.post(format!("{national}/v1/code-pools")).json(&body).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            Ok((status, r.text().await.unwrap_or_default()))
        }
        Err(e) => Err(format!("{e:?}")),
    }
}

/// The request failed the handshake or was answered 403.
fn refused(what: &str, r: &Result<(u16, String), String>) {
    match r {
        Err(_) => {}
        Ok((403, _)) => {}
        Ok((status, body)) => panic!("{what}: expected a refused handshake or 403, got {status}: {body}"),
    }
}

/// How many resident codes the national node has handed out (its `issued_code` table).
async fn issued_codes(db: &Path) -> i64 {
    let db = identity::store::Db::open(&db.display().to_string()).await.unwrap();
    sqlx::query_scalar("SELECT COUNT(*) FROM issued_code").fetch_one(db.pool()).await.unwrap()
}

/// No secret appears in the command line of the running process `child`.
fn cmdline_has_no_secret(child: &Kill, secrets: &[&str]) {
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", child.0.id())).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(!cmdline.trim().is_empty(), "process {} is not running", child.0.id());
    for s in secrets {
        assert!(!cmdline.contains(s), "a secret is on the command line: {cmdline}");
    }
}

/// A national node (no prefectures) on its own network CA.
async fn national(dir: &Path) -> (NetPki, Kill, String) {
    let pki = NetPki::init(dir);
    pki.issue("national", "national", true);
    pki.issue("op1", "operator:op1", false);
    let port = free_port();
    let db = dir.join("n.db").display().to_string();
    let node = pki.serve("national", &["serve", "national", "--db", &db, "--listen", &format!("127.0.0.1:{port}")]);
    let url = format!("https://127.0.0.1:{port}");
    ready(&url, &pki.client("op1", None)).await;
    cmdline_has_no_secret(&node, &[NetPki::PASSPHRASE, NetPki::CA_PASSPHRASE]);
    (pki, node, url)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_national_node_admits_only_current_credentials_of_its_network_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (pki, _node, url) = national(dir.path()).await;
    let ndb = dir.path().join("n.db");
    pki.issue("m131016", "municipality:131016", false);
    let m_revoked = pki.issue("m131016-revoked", "municipality:131016", false);
    let op_revoked = pki.issue("op-revoked", "operator:op9", false);

    // A current credential draws its own pool.
    let ok = draw(&pki.client("m131016", Some(Party::National)), &url, "131016").await;
    assert!(matches!(ok, Ok((200, _))), "{ok:?}");
    let ok = draw(&pki.client("m131016-revoked", Some(Party::National)), &url, "131016").await;
    assert!(matches!(ok, Ok((200, _))), "before revocation: {ok:?}");
    let r = pki.client("op-revoked", None).get(format!("{url}/v1/heads")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "before revocation");
    let before = issued_codes(&ndb).await;
    assert_eq!(before, 2);

    // No client certificate at all (curl trusting the network CA).
    let o = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(pki.ca_pem())
        .args(["-H", "Content-Type: application/json", "--data", r#"{"municipality":"131016","count":1}"#])
        .arg(format!("{url}/v1/code-pools"))
        .output()
        .unwrap();
    let code = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(!o.status.success() || code == "403", "no certificate: curl {:?} {code} {}", o.status, text(&o));
    assert_ne!(code, "200");

    // A certificate from another network CA, naming the same party.
    let foreign = NetPki::init(&dir.path().join("foreign"));
    foreign.issue("m131016", "municipality:131016", false);
    refused("another CA", &draw(&pki.client_from(&foreign.prefix("m131016"), None), &url, "131016").await);

    // An expired certificate of this network CA. `jpki net issue` dates every certificate
    // from now (--days 1–825), so the CA library issues one dated ten days back, valid a day.
    let ca = ca::network::NetworkCa::open(&pki.ca_dir(), &Secret::new(NetPki::CA_PASSPHRASE.into())).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    ca.issue_tls(
        &"municipality:131016".parse().unwrap(),
        &[],
        1,
        now - 10 * 86_400,
        &pki.prefix("m131016-expired"),
        &Secret::new(NetPki::PASSPHRASE.into()),
    )
    .unwrap();
    drop(ca);
    refused("expired", &draw(&pki.client("m131016-expired", None), &url, "131016").await);

    // Revoked while the node runs: after `jpki net revoke` + `jpki net crl` the node reloads
    // the CRL by itself. Each try is a fresh connection (the check is at the handshake).
    for serial in [&m_revoked, &op_revoked] {
        let o = pki.net(&["revoke", "--serial", serial, "--reason", "key-compromise"]);
        assert!(o.status.success(), "{}", text(&o));
    }
    let o = pki.net(&["crl"]);
    assert!(o.status.success(), "{}", text(&o));
    let t = Instant::now();
    loop {
        let r = pki.client("op-revoked", None).get(format!("{url}/v1/heads")).send().await;
        match r {
            Err(_) => break,
            Ok(r) if r.status().as_u16() == 403 => break,
            Ok(r) => assert_eq!(r.status().as_u16(), 200),
        }
        assert!(t.elapsed() < Duration::from_secs(15), "the revoked credential still admitted after 15 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("revocation effective after {:?}", t.elapsed());
    refused("revoked", &draw(&pki.client("m131016-revoked", None), &url, "131016").await);

    // Nothing was applied by any refused caller; the current credential still works.
    assert_eq!(issued_codes(&ndb).await, before, "a refused caller drew codes");
    let ok = draw(&pki.client("m131016", Some(Party::National)), &url, "131016").await;
    assert!(matches!(ok, Ok((200, _))), "{ok:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_municipality_reaches_at_the_national_node_only_its_own_pool() {
    let dir = tempfile::tempdir().unwrap();
    let (pki, _node, url) = national(dir.path()).await;
    pki.issue("m131016", "municipality:131016", false);
    let m = pki.client("m131016", Some(Party::National));
    let code = identity::ids::ResidentCode::from_body([1, 2, 3, 4, 5, 6, 7, 8, 9, 0]).unwrap();
    for route in
        ["/v1/sources/271004/notices", "/v1/feed", &format!("/v1/disclosure/{code}"), "/v1/statistics?years=2026"]
    {
        let r = m.get(format!("{url}{route}")).send().await.unwrap();
        let status = r.status().as_u16();
        assert_eq!(status, 403, "{route}: {}", r.text().await.unwrap_or_default());
    }
    let r = draw(&m, &url, "271004").await;
    assert!(matches!(&r, Ok((403, body)) if body.contains("not_own_municipality")), "{r:?}");
    assert_eq!(issued_codes(&dir.path().join("n.db")).await, 0, "nothing drawn");
}

/// Runs `jpki ARGS` that must exit by itself within 20 s; returns its output.
fn must_exit(args: &[&str], env: &[(String, String)]) -> std::process::Output {
    let mut child = Command::new(jpki_bin())
        .args(args)
        .env_remove("JPKI_DB")
        .envs(env.iter().cloned())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("`jpki {}` did not exit: it started", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn plain_http_peers_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let pki = NetPki::init(dir.path());
    pki.issue("national", "national", true);
    pki.issue("p13", "prefecture:13", true);
    let d = |f: &str| dir.path().join(f).display().to_string();
    let listen = format!("127.0.0.1:{}", free_port());
    let o = must_exit(
        &["serve", "national", "--db", &d("n.db"), "--listen", &listen, "--prefecture", "13=http://127.0.0.1:8201"],
        &pki.env("national"),
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("https://") && text(&o).contains("13=http://127.0.0.1:8201"), "{}", text(&o));
    let o = must_exit(
        &[
            "serve",
            "prefecture",
            "--db",
            &d("p.db"),
            "--code",
            "13",
            "--listen",
            &listen,
            "--municipality",
            "131016=http://127.0.0.1:8101",
        ],
        &pki.env("p13"),
    );
    assert!(!o.status.success() && text(&o).contains("https://"), "{}", text(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_in_help_or_on_a_running_nodes_command_line() {
    let secrets = [NetPki::PASSPHRASE, NetPki::CA_PASSPHRASE, Network::CA_PASSPHRASE];
    let env = [
        ("JPKI_CREDENTIAL_PASSPHRASE", NetPki::PASSPHRASE),
        ("JPKI_NET_CA_PASSPHRASE", NetPki::CA_PASSPHRASE),
        ("JPKI_CA_PASSPHRASE", Network::CA_PASSPHRASE),
    ];
    for args in [
        &["serve", "national", "--help"][..],
        &["serve", "municipality", "--help"],
        &["serve", "prefecture", "--help"],
        &["ca", "--help"],
        &["ca", "issue", "--help"],
        &["identity", "pool", "--help"],
    ] {
        let o = common::jpki(args, &env);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        for s in secrets {
            assert!(!text(&o).contains(s), "{args:?} printed a secret: {}", text(&o));
        }
    }
    // Every node of a running network (municipality with its notice key, prefecture, national).
    let dir = tempfile::tempdir().unwrap();
    let net = Network::start(dir.path()).await;
    assert_eq!(net.nodes.len(), 3);
    for node in &net.nodes {
        cmdline_has_no_secret(node, &secrets);
    }
}

/// A municipality's notice key rotates through the network CA: notices signed before and after
/// verify at the prefecture and the national node, which serve both keys. Once the old key is
/// revoked (and the CRL published), a notice still signed with it halts its source upstream.
#[tokio::test(flavor = "multi_thread")]
async fn notice_keys_rotate_through_the_network_ca_and_a_revoked_key_halts_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let net = Network::start(dir.path()).await;
    let before = net.resident("鈴木　一郎", "1980-01-01").await;
    let new_serial = net.pki.notice_key("m131016-notice2", "131016");
    let mut rotated = net.clerk_env();
    for (k, v) in &mut rotated {
        if k == "JPKI_NOTICE_KEY" {
            *v = net.pki.prefix("m131016-notice2").display().to_string();
        }
    }
    let after = net.register(&rotated, "鈴木　二郎", "1980-01-01");
    let ca = net.pki.client("ca", Some(Party::National));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let feed: Vec<serde_json::Value> =
            ca.get(format!("{}/v1/feed?after=0&limit=100", net.national)).send().await.unwrap().json().await.unwrap();
        let codes: Vec<&str> = feed.iter().filter_map(|e| e["resident_code"].as_str()).collect();
        if codes.contains(&before.as_str()) && codes.contains(&after.as_str()) {
            break;
        }
        assert!(Instant::now() < deadline, "the rotated key's notice never reached the national node: {feed:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let keys: Vec<serde_json::Value> =
        ca.get(format!("{}/v1/sources/131016/keys", net.national)).send().await.unwrap().json().await.unwrap();
    assert_eq!(keys.len(), 2, "the national node serves both notice keys: {keys:?}");

    // The old key is revoked; a notice still signed with it is refused and halts 131016.
    let listed = text(&net.pki.net(&["list"]));
    let serial = listed
        .lines()
        .filter(|l| l.contains("notice-key"))
        .filter_map(|l| l.split_whitespace().next())
        .find(|s| *s != new_serial)
        .unwrap()
        .to_owned();
    let o = net.pki.net(&["revoke", "--serial", &serial, "--reason", "key-compromise"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = net.pki.net(&["crl"]);
    assert!(o.status.success(), "{}", text(&o));
    net.register(&net.clerk_env(), "鈴木　三郎", "1980-01-01");
    let op = net.pki.client("op1", None);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let heads: serde_json::Value =
            op.get(format!("{}/v1/heads", net.prefecture)).send().await.unwrap().json().await.unwrap();
        let halted = heads["heads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["source"] == "131016")
            .and_then(|h| h["halted"].as_str().map(str::to_owned));
        if let Some(reason) = halted {
            assert!(reason.starts_with("signature:"), "{reason}");
            break;
        }
        assert!(Instant::now() < deadline, "a notice signed with a revoked key was applied: {heads}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
