//! Trust boundaries, accepted over real TLS sockets against real `jpki serve` processes: the
//! national node admits only current credentials of its network CA (no certificate, another
//! CA's, an expired one and one revoked while it runs are all refused, and nothing is
//! applied); a municipality's credential reaches only what the authorization table gives it;
//! plain `http://` peers are refused at start; no secret shows in `--help` or in the
//! command line of a running node; and a compromised prefecture (an in-process server with a
//! genuine `prefecture:NN` credential) or municipality (its genuine notice key) cannot make the
//! national node apply another source's notices, a notice about another municipality's
//! resident, or an appended notice without a valid signature.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a panic is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::fake::{FakePrefecture, municipality, register};
use common::{Kill, NetPki, Network, free_port, jpki_bin, ready, text};
use identity::client::Heads;
use identity::national::FeedEntry;
use identity::notice::{ChangeNotice, NoticeKind, parse_date};
use identity::notice_sig::sign_notice;
use identity::operator::{Operator, Role};
use identity::party::Party;
use identity::person::ResidentStatus;
use identity::store::{self, Db};
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

// ---------------------------------------------------------------------------------------
// A compromised prefecture and a compromised municipality, against a real national node.
// ---------------------------------------------------------------------------------------

/// A Death of `victim`'s resident claimed by `last`'s source, chained after `last` (so the
/// hash chain verifies), with no signature yet.
fn death_after(last: &ChangeNotice, victim: &ChangeNotice) -> ChangeNotice {
    let mut body = victim.body.clone();
    body.kind = NoticeKind::Death;
    body.record.status = ResidentStatus::Deceased;
    body.record.municipality = last.key.source.clone();
    body.record.version += 1;
    let n = ChangeNotice::seal(last.key.source.clone(), last.key.seq + 1, last.hash, body);
    assert!(n.verify_hash().is_ok(), "the forged notice chains correctly");
    n
}

/// A national node on `pki` (credentials `national`, `op1`, `ca` issued here) pulling
/// `prefectures` (`CODE=URL`) every 100 ms, its log in `dir/national.log`; returns the node,
/// its URL and its database path.
async fn national_pulling(pki: &NetPki, dir: &Path, prefectures: &[String]) -> (Kill, String, PathBuf) {
    pki.issue("national", "national", true);
    pki.issue("op1", "operator:op1", false);
    pki.issue("ca", "ca:jpki-ca", false);
    let port = free_port();
    let db = dir.join("n.db");
    let mut args = vec!["serve", "national", "--db", db.to_str().unwrap(), "--interval-ms", "100"];
    let listen = format!("127.0.0.1:{port}");
    args.extend(["--listen", &listen]);
    for p in prefectures {
        args.extend(["--prefecture", p]);
    }
    let log = std::fs::File::create(dir.join("national.log")).unwrap();
    let node = Kill(
        Command::new(jpki_bin())
            .args(&args)
            .env_remove("JPKI_DB")
            .env("RUST_LOG", "warn,identity=info")
            .envs(pki.env("national"))
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let url = format!("https://127.0.0.1:{port}");
    ready(&url, &pki.client("op1", None)).await;
    (node, url, db)
}

/// Polls `f` every 100 ms until it gives a value; fails after 20 s saying `what`.
async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The national node's chain heads as an operator sees them (`GET /v1/heads`).
async fn national_heads(pki: &NetPki, url: &str) -> Vec<store::Head> {
    let heads: Heads =
        pki.client("op1", None).get(format!("{url}/v1/heads")).send().await.unwrap().json().await.unwrap();
    heads.heads
}

/// The national node's whole feed as the CA reads it.
async fn feed(pki: &NetPki, url: &str) -> Vec<FeedEntry> {
    let ca = pki.client("ca", Some(Party::National));
    ca.get(format!("{url}/v1/feed?after=0&limit=1000")).send().await.unwrap().json().await.unwrap()
}

/// `COUNT(*)` of `sql` in the database at `db`.
async fn count(db: &Path, sql: &'static str) -> i64 {
    let db = Db::open(&db.display().to_string()).await.unwrap();
    sqlx::query_scalar(sql).fetch_one(db.pool()).await.unwrap()
}

/// A fake prefecture 13 advertises a head for 131016 but answers its notices with 271004's,
/// genuinely signed by 271004's notice key: the national node applies nothing, round after
/// round.
#[tokio::test(flavor = "multi_thread")]
async fn a_fake_prefecture_serving_another_sources_notices_gets_nothing_applied() {
    let dir = tempfile::tempdir().unwrap();
    let pki = NetPki::init(dir.path());
    pki.issue("p13", "prefecture:13", true);
    let (osaka, _) = municipality(&pki, dir.path(), "271004", 300).await;
    register(&osaka, "大阪　一郎").await;
    register(&osaka, "大阪　二郎").await;
    let fake = FakePrefecture::new(vec![("131016", osaka.db().clone(), "271004")]);
    let p13 = fake.serve(&pki, "p13").await;
    assert_eq!(fake.heads().await.heads[0].seq, 2, "the fake advertises 131016 at seq 2");
    let (_node, url, ndb) = national_pulling(&pki, dir.path(), &[format!("13={p13}")]).await;

    // Several pull rounds reached the fake (each round asks it for 131016's notices).
    until("five pulls of the fake prefecture", async || {
        (fake.notice_requests.load(Ordering::SeqCst) >= 5).then_some(())
    })
    .await;
    let heads = national_heads(&pki, &url).await;
    assert!(heads.iter().all(|h| h.source != "131016" && h.source != "271004"), "{heads:?}");
    assert_eq!(feed(&pki, &url).await, vec![], "no feed entry");
    let log = std::fs::read_to_string(dir.path().join("national.log")).unwrap();
    assert!(log.contains("peer returned notices of 271004 when asked for 131016; page refused"), "{log}");
    assert!(!log.contains("applied=1") && !log.contains("applied=2"), "{log}");
    assert_eq!(count(&ndb, "SELECT COUNT(*) FROM change_notice").await, 0);
    assert_eq!(count(&ndb, "SELECT COUNT(*) FROM resident").await, 0);
}

/// The head of `source` at the national node once `f` accepts it.
async fn head_when(pki: &NetPki, url: &str, source: &str, f: impl Fn(&store::Head) -> bool) -> store::Head {
    until(&format!("a head of {source} at the national node as expected"), async || {
        national_heads(pki, url).await.into_iter().find(|h| h.source == source && f(h))
    })
    .await
}

/// A compromised municipality 131016: its genuine notice key signs a correctly chained Death
/// of a resident registered by 271004. The national node halts 131016 (`ownership:`), feeds
/// no Death, keeps the resident active at 271004, and the CA following the feed revokes none
/// of that resident's certificates (until 271004 itself records the death).
#[tokio::test(flavor = "multi_thread")]
async fn a_compromised_municipality_cannot_kill_another_municipalitys_resident() {
    let dir = tempfile::tempdir().unwrap();
    let d = |f: &str| dir.path().join(f).display().to_string();
    let pki = NetPki::init(dir.path());
    pki.issue("p13", "prefecture:13", true);
    pki.issue("p27", "prefecture:27", true);
    let (tokyo, tokyo_key) = municipality(&pki, dir.path(), "131016", 100).await;
    let (osaka, _) = municipality(&pki, dir.path(), "271004", 300).await;
    let mine = register(&tokyo, "東京　一郎").await;
    let victim = register(&osaka, "大阪　花子").await;
    let code = victim.body.record.resident_code.to_string();
    // Prefecture 13 relays 131016's genuine chain, prefecture 27 relays 271004's.
    let f13 = FakePrefecture::new(vec![("131016", tokyo.db().clone(), "131016")]);
    let f27 = FakePrefecture::new(vec![("271004", osaka.db().clone(), "271004")]);
    let prefectures = [format!("13={}", f13.serve(&pki, "p13").await), format!("27={}", f27.serve(&pki, "p27").await)];
    let (node, url, ndb) = national_pulling(&pki, dir.path(), &prefectures).await;
    until("both registrations in the feed", async || (feed(&pki, &url).await.len() == 2).then_some(())).await;

    // The CA (`ca:jpki-ca`, registered for B1-020) issues the victim a card's certificates.
    let net = Network {
        dir: dir.path().to_path_buf(),
        pki: pki.clone(),
        national: url.clone(),
        prefecture: String::new(),
        municipality: String::new(),
        init_output: String::new(),
        nodes: Vec::new(),
        metrics: Vec::new(),
    };
    let ok = |o: std::process::Output| {
        assert!(o.status.success(), "{}", text(&o));
        text(&o)
    };
    ok(net.jpki(&[&["identity", "agency-add", "--db", &d("n.db")][..], &common::CA_AGENCY].concat()));
    ok(net.jpki(&["ca", "init", "--actor", "op-1", "--shards", "2"]));
    let (sign_csr, auth_csr) = (common::csr(dir.path(), "sign"), common::csr(dir.path(), "auth"));
    let args = common::ca_issue_args("window-1", &code, &sign_csr, &auth_csr, &d("out"));
    let out = ok(net.jpki(&args.iter().map(String::as_str).collect::<Vec<_>>()));
    assert!(out.contains("issued signature") && out.contains("issued authentication"), "{out}");

    // 131016's genuine key signs a Death of 271004's resident, chained after its genuine head.
    let mut death = death_after(&mine, &victim);
    sign_notice(tokyo_key.as_ref(), &mut death).unwrap();
    f13.appended.lock().unwrap().push(death);
    let head = head_when(&pki, &url, "131016", |h| h.halted.is_some()).await;
    let reason = head.halted.unwrap();
    assert!(reason.starts_with("ownership:") && reason.contains("271004"), "{reason}");
    assert_eq!(head.seq, 1, "nothing of the batch applied");
    let entries = feed(&pki, &url).await;
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(entries.iter().all(|e| e.kind != NoticeKind::Death), "{entries:?}");

    // The resident is still active at 271004, as the CA's B1-020 provision shows.
    let q = serde_json::json!({"purpose": "B1-020", "by": {"resident_code": code}, "fields": ["change_info"]});
    let r = pki.client("ca", Some(Party::National)).post(format!("{url}/v1/provision/query")).json(&q).send().await;
    let answer: serde_json::Value = r.unwrap().json().await.unwrap();
    let info = &answer["items"]["change_info"];
    assert_eq!((&info["municipality"], &info["status"], &info["version"]), (&"271004".into(), &1.into(), &1.into()));

    // The CA follows the feed: two registrations, no revocation; both certificates stay good.
    let out = ok(net.jpki(&["ca", "follow", "--actor", "op-1"]));
    assert!(out.contains("2 feed entries applied, 0 revocations"), "{out}");
    let listing = ok(net.jpki(&["ca", "list", "--actor", "op-1"]));
    for kind in ["signature", "authentication"] {
        let lines: Vec<&str> = listing.lines().filter(|l| l.contains(kind) && l.contains(&code)).collect();
        assert!(lines.len() == 1 && lines[0].ends_with("good"), "{listing}");
    }

    // The control: the owner's own Death reaches the feed and this CA revokes on it.
    let clerk = Operator::new("clerk-1", Role::MunicipalClerk).unwrap();
    let death = parse_date("date", "2026-02-01").unwrap();
    osaka
        .remove(&clerk, &victim.body.record.resident_code, NoticeKind::Death, death, identity::http::now())
        .await
        .unwrap();
    until("271004's own Death in the feed", async || {
        feed(&pki, &url).await.iter().any(|e| e.kind == NoticeKind::Death && e.source == "271004").then_some(())
    })
    .await;
    let out = ok(net.jpki(&["ca", "follow", "--actor", "op-1"]));
    assert!(out.contains("1 feed entries applied, 2 revocations"), "{out}");
    drop(node);
    assert_eq!(count(&ndb, "SELECT COUNT(*) FROM change_notice WHERE source = '131016'").await, 1);
}

/// A fake prefecture appends to 131016's genuine chain a correctly chained notice without a
/// valid signature (none, then 131016's own signature with one byte flipped): the national
/// node halts 131016 (`signature:`) and applies nothing; `jpki identity resume` while the node
/// runs lets it verify again from the applied head, and once only the genuine chain is served,
/// the chain applies.
#[tokio::test(flavor = "multi_thread")]
async fn an_unsigned_appended_notice_halts_its_source_until_resumed_then_the_genuine_chain_applies() {
    let dir = tempfile::tempdir().unwrap();
    let pki = NetPki::init(dir.path());
    pki.issue("p13", "prefecture:13", true);
    let (tokyo, tokyo_key) = municipality(&pki, dir.path(), "131016", 100).await;
    let genuine = [register(&tokyo, "東京　一郎").await, register(&tokyo, "東京　二郎").await];
    let fake = FakePrefecture::new(vec![("131016", tokyo.db().clone(), "131016")]);
    let unsigned = death_after(&genuine[1], &genuine[1]);
    fake.appended.lock().unwrap().push(unsigned.clone());
    let p13 = fake.serve(&pki, "p13").await;
    let (_node, url, ndb) = national_pulling(&pki, dir.path(), &[format!("13={p13}")]).await;
    let resume = || {
        let db = ndb.display().to_string();
        let args = ["identity", "resume", "--db", &db, "--source", "131016", "--operator", "op", "--tier", "national"];
        let o = common::jpki::<&str, &str>(&args, &[]);
        assert!(o.status.success(), "{}", text(&o));
    };

    let head = head_when(&pki, &url, "131016", |h| h.halted.is_some()).await;
    assert!(head.halted.as_deref().unwrap().starts_with("signature:"), "{head:?}");
    assert_eq!(head.seq, 0, "nothing of the batch applied: {head:?}");
    assert_eq!(feed(&pki, &url).await, vec![]);

    // Resumed while a signed-then-corrupted forgery is served: halted again, for its signature.
    let mut flipped = unsigned;
    sign_notice(tokyo_key.as_ref(), &mut flipped).unwrap();
    flipped.signature.as_mut().unwrap().signature[0] ^= 0x01;
    *fake.appended.lock().unwrap() = vec![flipped];
    let requests = fake.notice_requests.load(Ordering::SeqCst);
    resume();
    until("the resumed node to pull again", async || {
        (fake.notice_requests.load(Ordering::SeqCst) > requests).then_some(())
    })
    .await;
    let head = head_when(&pki, &url, "131016", |h| h.halted.is_some()).await;
    assert!(head.halted.as_deref().unwrap().starts_with("signature:"), "{head:?}");
    assert_eq!((head.seq, feed(&pki, &url).await.len()), (0, 0));

    // Only the genuine chain is served now; after the operator resumes, it applies.
    fake.appended.lock().unwrap().clear();
    resume();
    let head = head_when(&pki, &url, "131016", |h| h.seq == 2).await;
    assert_eq!(head.halted, None);
    let fed: Vec<String> = feed(&pki, &url).await.into_iter().map(|e| e.resident_code).collect();
    let codes: Vec<String> = genuine.iter().map(|n| n.body.record.resident_code.to_string()).collect();
    assert_eq!(fed, codes);
}
