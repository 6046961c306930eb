//! Failover drill (issue 14, docs/scale-identity.md) with real `jpki serve` processes over
//! mutual TLS: a municipality and its prefecture (SQLite) replicate to a national node whose
//! database is a PostgreSQL primary and whose provision reads go to that primary's hot standby
//! (`--pg-read-url`, from `cargo xtask pg --standby` / `cargo xtask ci`:
//! `JPKI_TEST_PG_URL`, `JPKI_TEST_PG_STANDBY_URL`, `JPKI_TEST_PG_STANDBY_PROMOTE`).
//!
//! In order, in one test (the standby is one shared server, and the drill promotes it):
//! 1. refusals at start: `--pg-read-url` naming the primary itself (not a standby) or a port
//!    nothing listens on stops the node with a clear error before it serves anything;
//! 2. a lagging standby: with replay paused (`pg_wal_replay_pause()`) beyond
//!    `--max-read-lag-ms`, provisions read the primary (a resident registered meanwhile is found),
//!    and the metrics say so (lag gauge above the bound, fallbacks counted as `lagging`);
//! 3. the drill: while the clerk registers residents, the prefecture pulls and the agency
//!    provisions, the national node is stopped, the standby catches up and is promoted with
//!    `pg_ctl promote`, and the node is restarted on the promoted cluster: it catches up until
//!    `jpki identity compare-heads` says EQUAL, provisions resume (a resident registered after
//!    the promotion is found), and every answer the agency received has its log row on the
//!    promoted cluster; the old primary, no standby of the new one, is refused as its read URL.
//!
//! At the end the standby is made again from the primary (`JPKI_TEST_PG_STANDBY_RENEW`), so that
//! tests after this one find the pair. Skipped, saying so, without a standby.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a panic is a failed test

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{CA_AGENCY, Kill, NetPki, free_port, jpki, jpki_bin, ready, text};
use identity::party::Party;
use identity::store::Db;
use sqlx::Row;

/// `url` with its database replaced by `name`.
fn with_db(url: &str, name: &str) -> String {
    format!("{}/{name}", url.rsplit_once('/').unwrap().0)
}

/// The value of the sample `name` (with `labels`, as written in the exposition) in `body`.
fn sample(body: &str, name_and_labels: &str) -> Option<f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Scrapes `base`/metrics, checked by `promtool check metrics` (Debian's prometheus, installed
/// by `cargo xtask ci`).
async fn metrics(base: &str) -> String {
    let body = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian prometheus; cargo xtask ci installs it)");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), body.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "promtool check metrics: {}\n--- exposition ---\n{body}", text(&o));
    assert!(body.contains("# HELP jpki_provision_standby_replay_lag_seconds"), "{body}");
    body
}

/// The national node's command line on database `db`, with `extra` arguments.
fn national_args(db: &str, port: u16, prefecture: &str, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = ["serve", "national", "--db", db, "--listen", &format!("127.0.0.1:{port}")]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    a.extend(["--prefecture".into(), format!("13={prefecture}"), "--interval-ms".into(), "100".into()]);
    a.extend(extra.iter().map(|s| (*s).to_owned()));
    a
}

/// Registers a resident at the municipality (clerk credential and notice key in `env`);
/// returns the resident code.
fn register(m_db: &str, env: &[(String, String)], name: &str) -> String {
    common::registered_code(&jpki(&common::register_args(m_db, name, "1980-01-01"), env))
}

/// Every 200 answer the agency received, whoever asked.
static ANSWERS: AtomicU64 = AtomicU64::new(0);

/// Asks the national node for `code` as the CA's agency (B1-020); `Some(found)` on a 200.
async fn provision(ca: &reqwest::Client, national: &str, code: &str) -> Option<bool> {
    let q = serde_json::json!({"purpose": "B1-020", "by": {"resident_code": code}, "fields": ["resident_code"]});
    let r = ca.post(format!("{national}/v1/provision/query")).json(&q).send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    let found = r.json::<serde_json::Value>().await.ok()?["found"].as_bool();
    ANSWERS.fetch_add(1, Ordering::SeqCst);
    Some(found.unwrap_or(false))
}

/// Waits until the agency's provision of `code` answers found.
async fn until_found(ca: &reqwest::Client, national: &str, code: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while provision(ca, national, code).await != Some(true) {
        assert!(Instant::now() < deadline, "resident never provided by {national}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `jpki identity compare-heads` until it says EQUAL.
async fn until_equal(env: &[(String, String)], national: &str, prefecture: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let o = jpki(
            &["identity", "compare-heads", "--national", national, "--prefecture", &format!("13={prefecture}")],
            env,
        );
        if o.status.success() && text(&o).contains("EQUAL") {
            return text(&o);
        }
        assert!(Instant::now() < deadline, "the national node did not catch up: {}", text(&o));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A node that must refuse to start: its exit status and what it wrote.
fn refused_start(pki: &NetPki, args: &[String]) -> String {
    let mut c = Command::new(jpki_bin());
    c.args(args).env_remove("JPKI_DB").envs(pki.env("national"));
    let mut child = c.stderr(std::process::Stdio::piped()).stdout(std::process::Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            assert!(!status.success(), "the node started");
            return String::from_utf8_lossy(&out.stderr).into_owned();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the node neither refused nor stopped within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Makes the shared standby a standby again when the drill ends, however it ends (the
/// `renew-standby` script of `cargo xtask pg --standby`), so that tests after it find the pair.
struct Renew(Option<String>);

impl Renew {
    fn run(script: &str) -> std::process::Output {
        Command::new(script).output().unwrap()
    }
}

impl Drop for Renew {
    fn drop(&mut self) {
        if let Some(script) = self.0.take() {
            let o = Self::run(&script);
            if !o.status.success() {
                eprintln!("warning: the standby was not renewed: {}", text(&o));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_national_node_fails_over_to_its_promoted_standby_and_loses_nothing() {
    let (Ok(primary_admin), Ok(standby_admin), Ok(promote)) = (
        std::env::var("JPKI_TEST_PG_URL"),
        std::env::var("JPKI_TEST_PG_STANDBY_URL"),
        std::env::var("JPKI_TEST_PG_STANDBY_PROMOTE"),
    ) else {
        eprintln!("skipped: no PostgreSQL primary/standby pair (run under `cargo xtask pg --standby`)");
        return;
    };
    let mut renew = Renew(std::env::var("JPKI_TEST_PG_STANDBY_RENEW").ok());
    assert!(renew.0.is_some(), "JPKI_TEST_PG_STANDBY_RENEW is set with the standby");
    let standby_ctl = Db::connect(&standby_admin).await.unwrap();
    sqlx::query("SELECT pg_wal_replay_resume()").execute(standby_ctl.pool()).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let d = |f: &str| dir.path().join(f).display().to_string();
    let pki = NetPki::init(dir.path());
    pki.issue("m131016", "municipality:131016", true);
    pki.notice_key("m131016-notice", "131016");
    pki.issue("p13", "prefecture:13", true);
    pki.issue("national", "national", true);
    pki.issue("ca", "ca:jpki-ca", false);
    pki.issue("op1", "operator:op1", false);
    let op = pki.client("op1", None);
    let op_env = pki.env("op1");
    let ca = pki.client("ca", Some(Party::National));
    let mut clerk = pki.env("m131016");
    clerk.push(("JPKI_NOTICE_KEY".into(), pki.prefix("m131016-notice").display().to_string()));

    let (mp, pp, np) = (free_port(), free_port(), free_port());
    let (murl, purl, nurl) =
        (format!("https://127.0.0.1:{mp}"), format!("https://127.0.0.1:{pp}"), format!("https://127.0.0.1:{np}"));
    let _m = pki.serve_municipality("131016", &d("m.db"), mp, &[], &[]);
    let _p = pki.serve_prefecture("13", &d("p.db"), pp, &[format!("131016={murl}")], &[]);
    ready(&murl, &op).await;
    ready(&purl, &op).await;

    // The national database on the primary; the standby serves the same database.
    let ndb = identity::store::testing::postgres().await.unwrap().unwrap();
    let name = ndb.url.rsplit_once('/').unwrap().1.to_owned();
    let read_url = with_db(&standby_admin, &name);

    // 1. Refused at start: the primary as its own standby, and nothing listening.
    let err = refused_start(&pki, &national_args(&ndb.url, np, &purl, &["--pg-read-url", &ndb.url]));
    assert!(err.contains("--pg-read-url") && err.contains("not in recovery"), "{err}");
    let nowhere = format!("postgres://jpki@127.0.0.1:{}/{name}", free_port());
    let err = refused_start(&pki, &national_args(&ndb.url, np, &purl, &["--pg-read-url", &nowhere]));
    assert!(err.contains("cannot connect"), "{err}");
    assert!(!err.contains("山田") && !err.contains("password"), "{err}");

    // The national node with provision reads on the standby (bound 500 ms) and its metrics.
    let metrics_at = format!("127.0.0.1:{}", free_port());
    let metrics_url = format!("http://{metrics_at}");
    let with_standby = national_args(&ndb.url, np, &purl, &["--pg-read-url", &read_url, "--max-read-lag-ms", "500"]);
    let start_national = |args: &[String], metrics: bool| {
        let env: Vec<(String, String)> =
            if metrics { vec![("JPKI_METRICS_LISTEN".into(), metrics_at.clone())] } else { Vec::new() };
        pki.serve_env("national", &args.iter().map(String::as_str).collect::<Vec<_>>(), &env)
    };
    let mut national: Option<Kill> = Some(start_national(&with_standby, true));
    ready(&nurl, &op).await;
    pki.draw_pool("131016", &d("m.db"), &nurl, 60);
    let o = jpki(&[&["identity", "agency-add", "--db", &ndb.url][..], &CA_AGENCY].concat(), &op_env);
    assert!(o.status.success(), "{}", text(&o));
    let first = register(&d("m.db"), &clerk, "山田　花子");
    until_found(&ca, &nurl, &first).await;
    let body = metrics(&metrics_url).await;
    let lag = sample(&body, "jpki_provision_standby_replay_lag_seconds").expect("the lag gauge");
    assert!(lag < 5.0, "a streaming standby: {body}");

    // 2. Replay paused past the bound: a resident registered meanwhile is on the primary only,
    //    and provisions find it there.
    sqlx::query("SELECT pg_wal_replay_pause()").execute(standby_ctl.pool()).await.unwrap();
    let during_pause = register(&d("m.db"), &clerk, "佐藤　一郎");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    until_found(&ca, &nurl, &during_pause).await;
    let body = metrics(&metrics_url).await;
    let lag = sample(&body, "jpki_provision_standby_replay_lag_seconds").unwrap();
    assert!(lag > 0.5, "paused replay: lag {lag}\n{body}");
    let fallbacks = sample(&body, "jpki_provision_standby_fallbacks_total{reason=\"lagging\"}").unwrap_or(0.0);
    assert!(fallbacks >= 1.0, "{body}");
    // Read on the standby it is not there yet: the answer came from the primary.
    let standby_db = Db::connect(&read_url).await.unwrap();
    let there: i64 = sqlx::query("SELECT COUNT(*) FROM resident WHERE resident_code = $1")
        .bind(&during_pause)
        .fetch_one(standby_db.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(there, 0, "replay is paused");
    sqlx::query("SELECT pg_wal_replay_resume()").execute(standby_ctl.pool()).await.unwrap();

    // 3. The drill. The clerk registers and the agency provisions all along.
    let stop = Arc::new(AtomicBool::new(false));
    let registered = Arc::new(std::sync::Mutex::new(vec![first.clone(), during_pause.clone()]));
    let writer = {
        let (stop, registered, clerk, m_db) = (stop.clone(), registered.clone(), clerk.clone(), d("m.db"));
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) && i < 40 {
                let code = register(&m_db, &clerk, &format!("住民　{i:02}"));
                registered.lock().unwrap().push(code);
                i += 1;
                std::thread::sleep(Duration::from_millis(150));
            }
        })
    };
    let (answered, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let provisioner = {
        let (stop, registered, ca, nurl) = (stop.clone(), registered.clone(), ca.clone(), nurl.clone());
        let (answered, failed) = (answered.clone(), failed.clone());
        tokio::spawn(async move {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let code = {
                    let r = registered.lock().unwrap();
                    r[i % r.len()].clone()
                };
                match provision(&ca, &nurl, &code).await {
                    Some(_) => answered.fetch_add(1, Ordering::Relaxed),
                    None => failed.fetch_add(1, Ordering::Relaxed),
                };
                i += 1;
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(answered.load(Ordering::Relaxed) > 0, "provisions run before the failover");

    // Fence: the national node stops writing to the old primary.
    drop(national.take());
    // The old primary is still up: wait until the standby has replayed all of it, so that no
    // committed row (provision log, cursor) is left behind; then promote.
    let primary_ctl = Db::connect(&primary_admin).await.unwrap();
    let lsn: String =
        sqlx::query("SELECT pg_current_wal_lsn()::TEXT").fetch_one(primary_ctl.pool()).await.unwrap().get(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let replayed: bool = sqlx::query("SELECT pg_last_wal_replay_lsn() >= $1::TEXT::pg_lsn")
            .bind(&lsn)
            .fetch_one(standby_ctl.pool())
            .await
            .unwrap()
            .get(0);
        if replayed {
            break;
        }
        assert!(Instant::now() < deadline, "the standby never replayed {lsn}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answered_before = answered.load(Ordering::Relaxed);
    let o = Command::new(&promote).output().unwrap();
    assert!(o.status.success(), "pg_ctl promote: {}", text(&o));
    let in_recovery: bool =
        sqlx::query("SELECT pg_is_in_recovery()").fetch_one(standby_ctl.pool()).await.unwrap().get(0);
    assert!(!in_recovery, "promoted");
    // The old primary's slot would keep WAL for a standby that is gone.
    sqlx::query("SELECT pg_drop_replication_slot('jpki_standby')").execute(primary_ctl.pool()).await.unwrap();

    // The old primary is no standby of the promoted cluster: refused as its read URL.
    let promoted_url = read_url.clone();
    let err = refused_start(&pki, &national_args(&promoted_url, np, &purl, &["--pg-read-url", &ndb.url]));
    assert!(err.contains("not in recovery"), "{err}");
    // Repointed at the promoted cluster (provision reads on it too, until a new standby exists).
    national = Some(start_national(&national_args(&promoted_url, np, &purl, &[]), false));
    ready(&nurl, &op).await;
    until_equal(&op_env, &nurl, &purl).await;
    let after = register(&d("m.db"), &clerk, "高橋　三郎");
    until_found(&ca, &nurl, &after).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    provisioner.await.unwrap();
    let heads = until_equal(&op_env, &nurl, &purl).await;
    assert!(heads.contains("131016"), "{heads}");

    // Nothing applied is lost: every resident the municipality registered is in the promoted
    // projection, and every answer the agency received has its log row there.
    let promoted = Db::connect(&promoted_url).await.unwrap();
    let codes = registered.lock().unwrap().clone();
    for c in codes.iter().chain([&after]) {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM resident WHERE resident_code = $1")
            .bind(c)
            .fetch_one(promoted.pool())
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 1, "a registered resident is missing after the failover");
    }
    let logged: i64 = sqlx::query(
        "SELECT COUNT(*) FROM provision_log WHERE destination LIKE 'jpki-ca %' AND result IN ('provided', 'not_found')",
    )
    .fetch_one(promoted.pool())
    .await
    .unwrap()
    .get(0);
    let logged = u64::try_from(logged).unwrap();
    let answers = ANSWERS.load(Ordering::SeqCst);
    // Each answer is logged before it leaves; at most the one request in flight when the node
    // was stopped may have its row without its answer.
    assert!(
        (answers..=answers + 1).contains(&logged),
        "{logged} log rows on the promoted cluster for {answers} answers received"
    );
    let answered_total = answered.load(Ordering::Relaxed);
    assert!(answered_total > answered_before, "provisions resumed after the failover");
    eprintln!(
        "failover drill: {answered_before} provisions answered before, {} after, {} failed while the node was down; {} residents",
        answered_total - answered_before,
        failed.load(Ordering::Relaxed),
        codes.len() + 1
    );
    drop(national);

    // The pair is a pair again for the tests after this one.
    let o = Renew::run(&renew.0.take().unwrap());
    assert!(o.status.success(), "renew-standby: {}", text(&o));
    let again = Db::connect(&standby_admin).await.unwrap();
    let in_recovery: bool = sqlx::query("SELECT pg_is_in_recovery()").fetch_one(again.pool()).await.unwrap().get(0);
    assert!(in_recovery, "the renewed standby is a standby");
}
