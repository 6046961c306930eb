//! Crash test: real `jpki serve` processes (three municipalities, two prefectures, the
//! national node), each with its own network credential, replicate over mutual TLS on
//! loopback while signed notices are written; node processes are SIGKILLed at random
//! moments and restarted on the same database files.
//! At the end every tier holds exactly each municipality's chain: nothing lost, nothing
//! duplicated, nothing reordered, and the feed has one gapless entry per notice.
//!
//! The seed is printed; `JPKI_CRASH_SEED=N` replays a run.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a panic is a failed test

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{NetPki, free_port, jpki_bin, ready};
use identity::client::Heads;
use identity::ids::{LgCode, ResidentCode};
use identity::municipal::{MoveOutCertificate, Municipality};
use identity::national::FeedEntry;
use identity::notice::{ChangeNotice, NoticeKind, parse_date};
use identity::operator::{Operator, Role};
use identity::party::Party;
use identity::person::{FlaggedText, FourItems, Sex};
use identity::store::{self, Db};
use net::notice_key::Signer;
use net::secret::Secret;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const KILLS: usize = 12;

/// A node process that is killed and restarted with the same arguments and credential.
struct Proc {
    name: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    url: String,
    child: Option<Child>,
}

impl Proc {
    fn new(name: &str, mut args: Vec<String>, port: u16, env: Vec<(String, String)>) -> Self {
        args.extend(["--listen".into(), format!("127.0.0.1:{port}")]);
        Self { name: name.to_owned(), args, env, url: format!("https://127.0.0.1:{port}"), child: None }
    }

    fn start(&mut self, log: &Path) {
        let out =
            std::fs::OpenOptions::new().create(true).append(true).open(log.join(format!("{}.log", self.name))).unwrap();
        let child = Command::new(jpki_bin())
            .args(&self.args)
            .envs(self.env.iter().cloned())
            .env("RUST_LOG", "warn,identity::replica=info")
            .env_remove("JPKI_DB")
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap(); // SIGKILL
            c.wait().unwrap();
        }
    }
}

/// Kills every child, also when the test panics.
struct Cluster(Vec<Proc>);

impl Drop for Cluster {
    fn drop(&mut self) {
        for p in &mut self.0 {
            p.kill();
        }
    }
}

fn items(i: usize) -> FourItems {
    FourItems {
        name: FlaggedText::plain("name", &format!("住民　{i}")).unwrap(),
        address: FlaggedText::plain("address", &format!("住所{i}")).unwrap(),
        date_of_birth: parse_date("dob", "1990-01-01").unwrap(),
        sex: if i.is_multiple_of(2) { Sex::Female } else { Sex::Male },
    }
}

fn pool(start: u64) -> Vec<ResidentCode> {
    (start..start + 400)
        .map(|v| ResidentCode::from_body(std::array::from_fn(|k| ((v / 10u64.pow(9 - k as u32)) % 10) as u8)).unwrap())
        .collect()
}

/// The chain heads a node holds, as an operator sees them (empty while it is down).
async fn heads_of(op: &reqwest::Client, url: &str) -> BTreeMap<String, (u64, String)> {
    let Ok(r) = op.get(format!("{url}/v1/heads")).send().await else { return BTreeMap::new() };
    if !r.status().is_success() {
        return BTreeMap::new();
    }
    match r.json::<Heads>().await {
        Ok(Heads { heads, .. }) => heads.into_iter().map(|h| (h.source, (h.seq, h.hash))).collect(),
        Err(_) => BTreeMap::new(),
    }
}

/// Every notice of `source` at `url`, read by `reader` (the tier below's puller).
async fn all_notices(reader: &reqwest::Client, url: &str, source: &str) -> Vec<ChangeNotice> {
    let mut out: Vec<ChangeNotice> = Vec::new();
    loop {
        let after = out.last().map_or(0, |n| n.key.seq);
        let r = reader.get(format!("{url}/v1/sources/{source}/notices?after={after}&limit=1000")).send().await.unwrap();
        assert!(r.status().is_success(), "{url}: {}", r.status());
        let page: Vec<ChangeNotice> = r.json().await.unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// The two variants run one after the other: each starts six node processes and kills them at
/// random, and on two cores two such clusters at once starve each other's TLS handshakes.
static ONE_CLUSTER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_replicas_lose_and_duplicate_nothing_on_sqlite() {
    let _one = ONE_CLUSTER_AT_A_TIME.lock().await;
    crash_run(None).await;
}

/// The same with the prefecture and national nodes on PostgreSQL (when configured).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_replicas_lose_and_duplicate_nothing_on_postgres() {
    let _one = ONE_CLUSTER_AT_A_TIME.lock().await;
    if identity::store::testing::pg_configured() {
        let mut dbs = Vec::new();
        for _ in 0..3 {
            dbs.push(identity::store::testing::postgres().await.unwrap().unwrap());
        }
        crash_run(Some([dbs[0].url.clone(), dbs[1].url.clone(), dbs[2].url.clone()])).await;
    } else {
        eprintln!("JPKI_TEST_PG_URL not set: PostgreSQL variant not run");
    }
}

/// One chaos run; `replica_dbs` puts prefecture 13, prefecture 27 and the national node on
/// those databases instead of SQLite files.
async fn crash_run(replica_dbs: Option<[String; 3]>) {
    let seed = std::env::var("JPKI_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random::<u64>);
    eprintln!("crash test seed {seed} (replay with JPKI_CRASH_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let db = |name: &str| dir.path().join(format!("{name}.db")).display().to_string();
    let replica_db = |i: usize, name: &str| replica_dbs.as_ref().map_or_else(|| db(name), |d| d[i].clone());

    // The network CA and every node's own credential (and each municipality's notice key).
    let pki = NetPki::init(dir.path());
    let codes = ["131016", "131041", "271004"];
    for c in codes {
        pki.issue(&format!("m{c}"), &format!("municipality:{c}"), true);
        pki.notice_key(&format!("m{c}-notice"), c);
    }
    pki.issue("p13", "prefecture:13", true);
    pki.issue("p27", "prefecture:27", true);
    pki.issue("national", "national", true);
    pki.issue("ca", "ca:jpki-ca", false);
    pki.issue("op1", "operator:op1", false);
    let notice_key = |c: &str| pki.prefix(&format!("m{c}-notice")).display().to_string();

    let mut procs: Vec<Proc> = codes
        .iter()
        .map(|c| {
            let args = vec!["serve".into(), "municipality".into(), "--db".into(), db(c), "--code".into(), (*c).into()];
            let args = [args, vec!["--notice-key".into(), notice_key(c)]].concat();
            Proc::new(&format!("m{c}"), args, free_port(), pki.env(&format!("m{c}")))
        })
        .collect();
    let (m0, m1, m2) = (procs[0].url.clone(), procs[1].url.clone(), procs[2].url.clone());
    let interval = ["--interval-ms".to_owned(), "30".to_owned()];
    let mut p13 =
        vec!["serve".into(), "prefecture".into(), "--db".into(), replica_db(0, "p13"), "--code".into(), "13".into()];
    p13.extend(["--municipality".into(), format!("131016={m0}"), "--municipality".into(), format!("131041={m1}")]);
    p13.extend(interval.clone());
    let mut p27 =
        vec!["serve".into(), "prefecture".into(), "--db".into(), replica_db(1, "p27"), "--code".into(), "27".into()];
    p27.extend(["--municipality".into(), format!("271004={m2}")]);
    p27.extend(interval.clone());
    procs.push(Proc::new("p13", p13, free_port(), pki.env("p13")));
    procs.push(Proc::new("p27", p27, free_port(), pki.env("p27")));
    let (u13, u27) = (procs[3].url.clone(), procs[4].url.clone());
    let mut nat = vec!["serve".into(), "national".into(), "--db".into(), replica_db(2, "national")];
    nat.extend(["--prefecture".into(), format!("13={u13}"), "--prefecture".into(), format!("27={u27}")]);
    nat.extend(interval);
    procs.push(Proc::new("national", nat, free_port(), pki.env("national")));
    let logs = dir.path().to_path_buf();
    let mut cluster = Cluster(procs);
    for p in &mut cluster.0 {
        p.start(&logs);
    }
    // The test reads as the parties allowed to: an operator (heads), the national node
    // (a prefecture's chains), the CA (the national node's chains and feed).
    let op = pki.client("op1", None);
    let as_national = pki.client("national", None);
    let as_ca = pki.client("ca", Some(Party::National));
    for p in &cluster.0 {
        ready(&p.url, &op).await;
    }

    // The clerks write directly to the municipal databases (SQLite WAL allows the second
    // writer process), signing with the municipality's notice key; the node processes serve
    // those notices to their prefectures.
    let clerk = Operator::new("clerk-1", Role::MunicipalClerk).unwrap();
    let pass = Secret::new(NetPki::PASSPHRASE.as_bytes().to_vec());
    let mut munis = Vec::new();
    for (i, c) in codes.iter().enumerate() {
        let code = c.parse::<LgCode>().unwrap();
        let key = Signer::load(&pki.prefix(&format!("m{c}-notice")), &pass, &code).unwrap();
        let m =
            Municipality::open(Db::open(&db(c)).await.unwrap(), code).await.unwrap().with_signer(key).await.unwrap();
        m.add_pool(&pool(1_000_000 * (i as u64 + 1))).await.unwrap();
        munis.push(m);
    }
    let day = parse_date("d", "2026-04-01").unwrap();
    let mut registered: Vec<Vec<ResidentCode>> = vec![Vec::new(); 3];
    let mut written = 0usize;
    let mut write_round = async |rng: &mut StdRng, registered: &mut Vec<Vec<ResidentCode>>| {
        for _ in 0..12 {
            let k = rng.random_range(0..3);
            let m = &munis[k];
            if registered[k].len() < 3 || rng.random_bool(0.6) {
                let n = m.register(&clerk, NoticeKind::Birth, items(written), day, 1_775_000_000).await.unwrap();
                registered[k].push(n.body.record.resident_code);
            } else {
                let code = registered[k][rng.random_range(0..registered[k].len())].clone();
                let addr = FlaggedText::plain("address", &format!("転居先{written}")).unwrap();
                m.move_within(&clerk, &code, addr, day, 1_775_000_000).await.unwrap();
            }
            written += 1;
        }
    };

    for kill in 0..KILLS {
        write_round(&mut rng, &mut registered).await;
        tokio::time::sleep(Duration::from_millis(rng.random_range(20..300))).await;
        let victim = rng.random_range(0..6); // any node process: municipalities, prefectures, national
        let p = &mut cluster.0[victim];
        eprintln!("kill {}: SIGKILL {}", kill + 1, p.name);
        p.kill();
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..150))).await;
        p.start(&logs);
        ready(&p.url.clone(), &op).await;
    }
    // A cross-prefecture move while replication runs: 千代田区 → 大阪市.
    let mover = registered[0][0].clone();
    munis[0].move_out(&clerk, &mover, "271004".parse().unwrap(), day, 1_775_000_000).await.unwrap();
    // The mover is no longer 千代田区's to change (later rounds would be refused, rightly).
    registered[0].retain(|c| *c != mover);
    // The 転出証明書情報, fetched by the destination (大阪市) with its own credential.
    let as_osaka = pki.client("m271004", Some(Party::Municipality("131016".parse().unwrap())));
    let r = as_osaka.get(format!("{m0}/v1/move-out/{mover}")).send().await.unwrap();
    assert!(r.status().is_success(), "move-out certificate: {}", r.status());
    let cert: MoveOutCertificate = r.json().await.unwrap();
    munis[2]
        .move_in(&clerk, &cert, FlaggedText::plain("address", "大阪市北区1").unwrap(), day, 1_775_000_000)
        .await
        .unwrap();
    write_round(&mut rng, &mut registered).await;

    // Quiesce: every tier must reach every municipality's chain head.
    let mut want = BTreeMap::new();
    for m in &munis {
        for h in store::heads(m.db()).await.unwrap() {
            want.insert(h.source, (h.seq, h.hash));
        }
    }
    // Generous: after the last kill a restarted node decrypts its key (scrypt) and every tier
    // re-handshakes; on a loaded CI machine this has taken tens of seconds.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let national = heads_of(&op, &cluster.0[5].url).await;
        let (h13, h27) = (heads_of(&op, &u13).await, heads_of(&op, &u27).await);
        let pref: BTreeMap<_, _> = h13.into_iter().chain(h27).collect();
        if national == want && pref == want {
            break;
        }
        if Instant::now() >= deadline {
            let tail = |name: &str| {
                let log = std::fs::read_to_string(logs.join(format!("{name}.log"))).unwrap_or_default();
                log.lines().rev().take(30).collect::<Vec<_>>().join("\n")
            };
            panic!(
                "tiers did not converge:\n want {want:?}\n national {national:?}\n prefectures {pref:?}\n national log (newest first):\n{}\n p13 log (newest first):\n{}",
                tail("national"),
                tail("p13")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The operators' anti-entropy command agrees.
    let out = std::process::Command::new(common::jpki_bin())
        .args(["identity", "compare-heads", "--national", &cluster.0[5].url])
        .args(["--prefecture", &format!("13={u13}"), "--prefecture", &format!("27={u27}")])
        .envs(pki.env("op1"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.matches("EQUAL").count() == 3,
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Nothing lost, duplicated or reordered: each tier holds exactly the municipal chains.
    let mut total = 0;
    for (m, code) in munis.iter().zip(codes) {
        let origin = store::notices_after(m.db(), code, 0, 100_000).await.unwrap();
        total += origin.len();
        let tier_url = if code.starts_with("13") { &u13 } else { &u27 };
        for (reader, url) in [(&as_national, tier_url), (&as_ca, &cluster.0[5].url)] {
            let got = all_notices(reader, url, code).await;
            assert_eq!(got.len(), origin.len(), "{code} at {url}");
            assert!(got.iter().zip(1u64..).all(|(n, s)| n.key.seq == s), "{code} at {url}: not 1..=n");
            assert_eq!(got, origin, "{code} at {url}: content differs");
        }
    }
    let r = as_ca.get(format!("{}/v1/feed?after=0&limit=10000", cluster.0[5].url)).send().await.unwrap();
    assert!(r.status().is_success(), "feed: {}", r.status());
    let feed: Vec<FeedEntry> = r.json().await.unwrap();
    assert_eq!(feed.len(), total, "one feed entry per notice");
    assert!(feed.iter().zip(1u64..).all(|(e, s)| e.feed_seq == s), "feed is gapless");
    let mut keys: Vec<_> = feed.iter().map(|e| (e.source.clone(), e.seq)).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), total, "no notice is in the feed twice");
    eprintln!("{KILLS} kills, {total} notices, every tier equal (seed {seed})");
}
