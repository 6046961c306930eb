//! `jpki bench peak`: a March-peak day end to end. Every party is its own node with its own
//! network credential, reached over mutual TLS 1.3 on loopback (hosted in this one process,
//! several nodes per process as the issue allows): `--prefectures` prefecture nodes with
//! `--per-prefecture` municipal nodes each (SQLite, their own notice keys), the national node
//! (SQLite, or PostgreSQL with `--pg-url`), the CA following the national feed over mutual TLS
//! (`Authority::follow` + the feed's long poll, as `jpki serve ca` runs it) and the validator
//! reading the CA's status read only and answering OCSP over HTTP (as `jpki serve validator`).
//!
//! Set-up (not timed): credentials, `--residents` residents registered per municipality and
//! replicated, a signature and an authentication certificate for `--certified` residents per
//! municipality. Then the day: `--notices` change notices at `--rate` per second, spread over
//! the municipalities, moves heavy (60 % 転居 within, 15 % 転出 + 15 % 転入 pairs across
//! municipalities and prefectures, 7 % births, 3 % deaths), deterministic from `--seed`. Every
//! 転居 of a certified resident is a sample: from its municipal commit to (a) the national node
//! having applied it and (b) the validator answering `revoked` for the resident's signature
//! certificate (a change of address revokes it). Reported: p50 / p99 / max of both, the national
//! tier's largest lag in notices, and the rate achieved.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ca::authority::{Authority, IssueRequest, Settings};
use ca::hierarchy::Environment;
use ca::identity_source::IdentitySource;
use ca::key::{KeyAlgorithm, KeyBackend, SoftKey};
use ca::keystore::KeyStore;
use ca::network::NetworkCa;
use ca::revocation::CertKind;
use der::Decode as _;
use identity::client::Peer;
use identity::http::{self, NationalState, PrefectureState};
use identity::ids::{LgCode, ResidentCode};
use identity::law::{AgencyClass, LawTable};
use identity::municipal::Municipality;
use identity::national::National;
use identity::notice::{NoticeKind, parse_date};
use identity::operator::{Operator, Role};
use identity::party::Party;
use identity::person::{FlaggedText, FourItems, Sex};
use identity::replica::{self, Tier};
use identity::store::Db;
use net::credential::{Credential, Trust};
use net::secret::Secret;
use tokio::task::JoinSet;
use x509_cert::Certificate;

/// The knobs of the day.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Prefecture nodes (1–47).
    #[arg(long, default_value_t = 47)]
    pub prefectures: usize,
    /// Municipal nodes per prefecture (36 for ~1,700 in all).
    #[arg(long, default_value_t = 2)]
    pub per_prefecture: usize,
    /// Residents registered per municipality before the day.
    #[arg(long, default_value_t = 30)]
    pub residents: usize,
    /// Residents per municipality holding certificates (the samples).
    #[arg(long, default_value_t = 4)]
    pub certified: usize,
    /// Change notices in the day.
    #[arg(long, default_value_t = 6_000)]
    pub notices: usize,
    /// Notices per second (a peak day of 150,000 over 8 hours is 5.2/s; the default runs the
    /// day compressed).
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Seed of the day's workload.
    #[arg(long, default_value_t = 2027)]
    pub seed: u64,
    /// Pull interval of the replica tiers, the CA's follow interval (the fallback timers; the
    /// long polls drive replication), ms.
    #[arg(long, default_value_t = 500)]
    pub interval_ms: u64,
    /// The national node on a fresh PostgreSQL database of the cluster in JPKI_TEST_PG_URL
    /// (`cargo xtask bench peak --pg` starts one); else SQLite.
    #[arg(long)]
    pub pg: bool,
}

/// 2026-03-31, in the peak.
const DAY: &str = "2026-03-31";

/// A small deterministic generator (SplitMix64): the same seed gives the same day.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// The municipality code `pp` + `1kk` + check digit.
fn municipality_code(prefecture: usize, k: usize) -> Result<LgCode> {
    let n = prefecture * 1000 + 101 + k;
    let body: [u8; 5] = std::array::from_fn(|i| ((n / 10usize.pow(4 - i as u32)) % 10) as u8);
    let check = identity::check_digit::local_government_code(&body);
    Ok(format!("{n:05}{check}").parse()?)
}

fn items(i: usize, address: &str) -> Result<FourItems> {
    Ok(FourItems {
        name: FlaggedText::plain("name", &format!("住民　{i}"))?,
        address: FlaggedText::plain("address", address)?,
        date_of_birth: parse_date("dob", "1980-02-29")?,
        sex: if i.is_multiple_of(2) { Sex::Female } else { Sex::Male },
    })
}

/// Serves `router` over mutual TLS with `cred` on a loopback port; returns its https URL.
async fn serve_tls(
    router: axum::Router,
    cred: &Credential,
    trust: &Trust,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<String> {
    let (config, _) = net::tls::server_config(cred, trust)?;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("https://{}", l.local_addr()?);
    let server = net::server::Server::new(router, net::server::Transport::Tls(config));
    tasks.push(tokio::spawn(async move {
        let _ = server.serve(l, std::future::pending()).await;
    }));
    Ok(url)
}

/// A certified resident's signature certificate: its serial (hex) and issuing CA certificate.
type Certified = (String, Arc<Certificate>);

/// One municipal node.
struct Muni {
    m: Municipality,
    /// Active residents, with their signature certificate if they hold one.
    residents: Vec<(ResidentCode, Option<Certified>)>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Every party's credential, made once and used by both runs.
struct Creds {
    trust: Trust,
    verifier: Arc<dyn identity::notice_sig::NoticeVerifier>,
    munis: Vec<(LgCode, Credential, Arc<net::notice_key::Signer>)>,
    prefs: Vec<(identity::ids::PrefectureCode, Credential)>,
    national: Credential,
    ca: Credential,
}

impl Creds {
    fn issue(a: &Args, netdir: &Path, now: i64) -> Result<Creds> {
        let pass = Secret::new(hex::encode(rand::random::<[u8; 16]>()).into_bytes());
        let netca = NetworkCa::init(netdir, &pass, now)?;
        let trust = Trust { ca_file: netdir.join("ca.pem"), crl_file: Some(netdir.join("crl.pem")) };
        let tls = |party: &Party, name: &str| -> Result<Credential> {
            let prefix = netdir.join(name);
            netca.issue_tls(party, &["127.0.0.1".into()], 30, now, &prefix, &pass)?;
            Ok(Credential::load(&prefix, &pass)?)
        };
        let total = a.prefectures * a.per_prefecture;
        let bar = crate::progress::Bar::new("bench peak", "credentials and notice keys");
        let mut prefs = Vec::new();
        for p in 1..=a.prefectures {
            let code: identity::ids::PrefectureCode = format!("{p:02}").parse()?;
            prefs.push((code.clone(), tls(&Party::Prefecture(code), &format!("p-{p:02}"))?));
        }
        // The municipalities on every core: each party costs four scrypts (two seals, two
        // loads), minutes for 1,700 municipalities on one.
        let codes = (1..=a.prefectures)
            .flat_map(|p| (0..a.per_prefecture).map(move |k| municipality_code(p, k)))
            .collect::<Result<Vec<_>>>()?;
        let next = std::sync::atomic::AtomicUsize::new(0);
        let done = std::sync::atomic::AtomicUsize::new(0);
        let one = |code: &LgCode| -> Result<(Credential, Arc<net::notice_key::Signer>)> {
            let cred = tls(&Party::Municipality(code.clone()), &format!("m-{code}"))?;
            let prefix = netdir.join(format!("notice-{code}"));
            netca.issue_notice_key(code, 30, now, &prefix, &pass)?;
            Ok((cred, net::notice_key::Signer::load(&prefix, &pass, code)?))
        };
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut made: Vec<(usize, Credential, Arc<net::notice_key::Signer>)> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| -> Result<Vec<_>> {
                        let mut mine = Vec::new();
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(code) = codes.get(i) else { return Ok(mine) };
                            let (cred, signer) = one(code)?;
                            mine.push((i, cred, signer));
                            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                            bar.set(n as u64, total as u64);
                        }
                    })
                })
                .collect();
            let mut all = Vec::new();
            for w in workers {
                all.extend(w.join().map_err(|_| anyhow::anyhow!("a credential thread panicked"))??);
            }
            Ok::<_, anyhow::Error>(all)
        })?;
        made.sort_by_key(|(i, _, _)| *i);
        let munis: Vec<_> = made.into_iter().map(|(i, cred, signer)| (codes[i].clone(), cred, signer)).collect();
        bar.finish(format_args!("{} parties' credentials", total + a.prefectures + 2));
        Ok(Creds {
            verifier: net::notice_key::Verifier::new(trust.clone()),
            national: tls(&Party::National, "national")?,
            ca: tls(&Party::Ca("bench-ca".into()), "ca-service")?,
            trust,
            munis,
            prefs,
        })
    }
}

/// Runs the day with long polls, then the same day on the timers alone (the reference), each on
/// a fresh network, and prints the comparison.
pub async fn run(a: Args) -> Result<()> {
    ensure!((1..=47).contains(&a.prefectures), "--prefectures is 1–47");
    ensure!((1..=899).contains(&a.per_prefecture), "--per-prefecture is 1–899");
    ensure!(a.certified <= a.residents && a.residents > 0, "--certified must be at most --residents");
    ensure!(
        !a.pg || identity::store::testing::pg_configured(),
        "--pg needs JPKI_TEST_PG_URL (cargo xtask bench peak --pg)"
    );
    let dir = tempfile::tempdir()?;
    let t = Instant::now();
    let creds = Creds::issue(&a, &dir.path().join("net"), http::now())?;
    let credentials = t.elapsed();
    let mut runs = Vec::new();
    for (label, long_poll) in [("long polls", true), ("timers only (reference)", false)] {
        let sub = dir.path().join(if long_poll { "long" } else { "timers" });
        std::fs::create_dir_all(&sub)?;
        let mut tasks = Vec::new();
        let r = one_day(&a, &creds, &sub, long_poll, &mut tasks).await;
        for t in &tasks {
            t.abort();
        }
        runs.push((label, r?));
    }
    print_report(&a, credentials, &runs);
    Ok(())
}

/// What one run measured.
struct Run {
    setup: Duration,
    initial_sync: Duration,
    day: Day,
}

/// Builds the network (`long_poll` or timers only), prepares it and runs the day.
async fn one_day(
    a: &Args,
    creds: &Creds,
    dir: &Path,
    long_poll: bool,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<Run> {
    let started = Instant::now();
    let now = http::now();
    let trust = &creds.trust;
    let verifier = creds.verifier.clone();
    let clerk = Operator::new("bench-clerk", Role::MunicipalClerk)?;
    let total = creds.munis.len();
    let interval = Duration::from_millis(a.interval_ms);

    // The municipal nodes: each its SQLite file and TLS server.
    let mut munis: Vec<Muni> = Vec::new();
    let mut muni_urls: Vec<(LgCode, String)> = Vec::new();
    for (i, (code, cred, signer)) in creds.munis.iter().enumerate() {
        // Two connections a municipal node, not four: each SQLite connection holds three file
        // descriptors, and 1,700 nodes of four would pass this machine's limit of 20,000.
        let db = Db::open_with(&dir.join(format!("m-{code}.db")).display().to_string(), 2).await?;
        let m = Municipality::open(db, code.clone()).await?.with_signer(signer.clone()).await?;
        let base = 100_000_000 + i * 10_000;
        let pool: Vec<ResidentCode> = (0..(a.residents * 2 + 2 * a.notices / total + 100).min(10_000))
            .map(|j| {
                let v = (base + j) as u64;
                ResidentCode::from_body(std::array::from_fn(|d| ((v / 10u64.pow(9 - d as u32)) % 10) as u8))
            })
            .collect::<std::result::Result<_, _>>()?;
        m.add_pool(&pool).await?;
        muni_urls.push((code.clone(), serve_tls(http::municipal_router(m.clone()), cred, trust, tasks).await?));
        munis.push(Muni { m, residents: Vec::new() });
    }

    // The prefecture nodes, pulling their municipalities.
    let law = Arc::new(LawTable::seed().context("built-in law table")?);
    let mut pref_urls = Vec::new();
    for (code, cred) in &creds.prefs {
        let db = Db::open(&dir.join(format!("p-{}.db", code.as_str())).display().to_string()).await?;
        identity::store::claim_identity(&db, "prefecture", code.as_str()).await?;
        let provider = identity::provision::Provider::open(db.clone(), law.clone()).await?;
        let mut peers = Vec::new();
        for (m, url) in muni_urls.iter().filter(|(m, _)| m.prefecture() == *code) {
            let client = net::client::client(cred, trust, Some(Party::Municipality(m.clone())))?;
            peers.push((Peer::new(url, client), Some(code.as_str().to_owned())));
        }
        tasks.push(tokio::spawn(replica::run_puller_with(
            db.clone(),
            Tier::Prefecture,
            verifier.clone(),
            peers,
            interval,
            long_poll,
        )));
        let router = http::prefecture_router(PrefectureState { db, code: code.clone(), provider });
        pref_urls.push((code.clone(), serve_tls(router, cred, trust, tasks).await?));
    }

    // The national node.
    let pg = if a.pg { identity::store::testing::postgres().await? } else { None };
    let national_url = match &pg {
        Some(t) => t.url.clone(),
        None => dir.join("national.db").display().to_string(),
    };
    let national = National::open(Db::open(&national_url).await?, law.clone()).await?;
    let mut peers = Vec::new();
    for (code, url) in &pref_urls {
        let client = net::client::client(&creds.national, trust, Some(Party::Prefecture(code.clone())))?;
        peers.push((Peer::new(url, client), Some(code.as_str().to_owned())));
    }
    tasks.push(tokio::spawn(replica::run_puller_with(
        national.db().clone(),
        Tier::National,
        verifier.clone(),
        peers,
        interval,
        long_poll,
    )));
    let router = http::national_router(NationalState { national: national.clone() });
    let national_https = serve_tls(router, &creds.national, trust, tasks).await?;

    // Before the day: residents registered and replicated to the national node.
    let bar = crate::progress::Bar::new("bench peak", "residents registered");
    let mut set: JoinSet<Result<(usize, Vec<ResidentCode>)>> = JoinSet::new();
    for (i, mu) in munis.iter().enumerate() {
        let (m, clerk, n) = (mu.m.clone(), clerk.clone(), a.residents);
        set.spawn(async move {
            let mut out = Vec::new();
            for r in 0..n {
                let d = parse_date("d", "2026-03-01")?;
                let who = items(i * 100_000 + r, "某県某市一丁目1番")?;
                out.push(
                    m.register(&clerk, NoticeKind::FirstRegistration, who, d, now).await?.body.record.resident_code,
                );
            }
            Ok((i, out))
        });
    }
    let mut done = 0;
    while let Some(r) = set.join_next().await {
        let (i, codes) = r??;
        munis[i].residents = codes.into_iter().map(|c| (c, None)).collect();
        done += 1;
        bar.set(done, total as u64);
    }
    bar.finish(format_args!("{} residents registered", total * a.residents));
    let t = Instant::now();
    wait_national(&national, (total * a.residents) as i64, Duration::from_secs(900)).await?;
    let initial_sync = t.elapsed();

    // The CA, following the feed over mutual TLS as the agency it is registered as.
    let op = Operator::new("bench-op", Role::NationalOperator)?;
    national.provider().register_agency(&op, "bench-ca", "CA", AgencyClass::NationalBody, &["B1-020"], now).await?;
    let client = net::client::client(&creds.ca, trust, Some(Party::National))?;
    let source = IdentitySource::Http(Peer::new(&national_https, client));
    let ks = KeyStore::soft(&dir.join("ca-keys"), Secret::new(b"bench CA passphrase".to_vec()))?;
    let ca_db = dir.join("ca.db").display().to_string();
    let mut authority = Authority::open(ca::schema::open(&ca_db).await?, ks, now).await?;
    authority.init("bench-op", Environment::Production, Settings { shards: 4, ..Settings::default() }, now).await?;
    let authority = Arc::new(authority);
    // The follower starts at the feed's head: the registrations revoke nothing.
    authority.follow("bench-ca", &source, verifier.as_ref(), now).await?;
    let bar = crate::progress::Bar::new("bench peak", "residents certified");
    let mut certified = 0;
    for mu in &mut munis {
        let code = mu.m.code().clone();
        for (i, (resident, cert)) in mu.residents.iter_mut().take(a.certified).enumerate() {
            let (s, au) = (SoftKey::ephemeral(KeyAlgorithm::EcP384)?, SoftKey::ephemeral(KeyAlgorithm::EcP384)?);
            let req = IssueRequest {
                resident_code: resident.as_str().to_owned(),
                window: "W01".into(),
                card_expiry: time::macros::date!(2035 - 12 - 31),
                environment: Environment::Production,
                signature_csr: Some(csr(&s)?),
                authentication_csr: Some(csr(&au)?),
                request_id: Some(format!("{code}-{i}")),
            };
            let issued = authority.issue_at_window("bench", code.as_str(), &req, &source, now).await?;
            let sig = issued.get(CertKind::Signature).context("no signature certificate")?;
            *cert = Some((sig.serial.clone(), Arc::new(issuer_of(&sig.der, &issued.chain)?)));
            certified += 1;
        }
        bar.set(certified, (total * a.certified) as u64);
    }
    bar.finish(format_args!("{certified} residents certified (signature + authentication)"));
    // The CA follows as `jpki serve ca` does (or, for the reference, on its timer alone).
    tasks.push(tokio::spawn(crate::ca_serve::follow_feed(
        authority.clone(),
        source.clone(),
        verifier.clone(),
        "bench-ca".into(),
        interval * 2,
        long_poll,
    )));

    // The validator: a responder key per issuing CA generation, certified by the CA; the CA's
    // status read only; OCSP over HTTP. Its poll loop is `jpki serve validator`'s.
    let reader = ca::status::StatusReader::open(&ca_db).await?;
    let mut responders = Vec::new();
    for g in reader.ca_certificates().await? {
        let c = Certificate::from_der(&g.certificate)?;
        if c.tbs_certificate().subject() == c.tbs_certificate().issuer() {
            continue; // roots answer through their ARL
        }
        let key = Arc::new(SoftKey::ephemeral(KeyAlgorithm::EcP384)?);
        let r = authority.issue_responder("bench", &g.ca, Some(g.generation), key.public_key_der(), 30, now).await?;
        responders.push(validator::responder::Responder::new(key, &r.der)?);
    }
    let svc = Arc::new(validator::responder::Service::open(reader.clone(), responders, 24 * 3600, 500.0).await?);
    svc.load(now).await?;
    tasks.push(tokio::spawn(crate::validator_cmd::follow_status(
        svc.clone(),
        ca::status::StatusSource::from(reader),
        Duration::from_millis(200),
        None,
        long_poll,
    )));
    let state = Arc::new(validator::http::AppState {
        ocsp: validator::http::Ocsp::Signing(svc.clone()),
        crl_dir: None,
        crl_max_age: 3600,
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let ocsp_base = format!("http://{}/ocsp/", l.local_addr()?);
    let server = net::server::Server::new(validator::http::router(state), net::server::Transport::Plain);
    tasks.push(tokio::spawn(async move {
        let _ = server.serve(l, std::future::pending()).await;
    }));
    let setup = started.elapsed();

    let day = run_day(a, &mut munis, &national, &ocsp_base, &clerk).await?;
    drop(pg);
    Ok(Run { setup, initial_sync, day })
}

fn csr(k: &SoftKey) -> Result<Vec<u8>> {
    let mut b = openssl::x509::X509ReqBuilder::new()?;
    b.set_pubkey(k.pkey()?)?;
    b.sign(k.pkey()?, openssl::hash::MessageDigest::sha384())?;
    Ok(b.build().to_der()?)
}

/// The certificate in `chain` that issued `leaf` (by name).
fn issuer_of(leaf: &[u8], chain: &[Vec<u8>]) -> Result<Certificate> {
    let leaf = Certificate::from_der(leaf)?;
    for d in chain {
        let c = Certificate::from_der(d)?;
        if c.tbs_certificate().subject() == leaf.tbs_certificate().issuer() {
            return Ok(c);
        }
    }
    bail!("the chain holds no issuer of the certificate")
}

/// Waits until the national node has applied `expected` notices in all (sum of its cursors).
async fn wait_national(national: &National, expected: i64, within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        if applied(national).await? >= expected {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "the national node did not catch up within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn applied(national: &National) -> Result<i64> {
    use sqlx::Row as _;
    let r =
        sqlx::query("SELECT COALESCE(SUM(applied_seq), 0) FROM replica_cursor").fetch_one(national.db().pool()).await?;
    Ok(r.try_get::<i64, _>(0)?)
}

/// What the day measured.
struct Day {
    notices: usize,
    seconds: f64,
    to_national_ms: Vec<f64>,
    to_revoked_ms: Vec<f64>,
    unrevoked: usize,
    max_lag_notices: i64,
    catch_up: Duration,
}

/// A sample in flight: its source and seq, its serial and issuer, its commit instant.
struct Sample {
    source: String,
    seq: u64,
    get_path: String,
    at: Instant,
    national: Option<f64>,
}

async fn run_day(a: &Args, munis: &mut [Muni], national: &National, ocsp_base: &str, clerk: &Operator) -> Result<Day> {
    let mut rng = Rng(a.seed);
    let d = parse_date("d", DAY)?;
    let http = reqwest::Client::builder().build()?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Sample>();
    // The watcher: every 10 ms, each sample in flight is looked up at the national node and at
    // the validator until both have it.
    let watcher = {
        let (national, http, base) = (national.clone(), http.clone(), ocsp_base.to_owned());
        tokio::spawn(async move {
            let mut pending: Vec<Sample> = Vec::new();
            let (mut to_national, mut to_revoked) = (Vec::new(), Vec::new());
            let mut closed = false;
            let mut unrevoked = 0;
            loop {
                while let Ok(s) = rx.try_recv() {
                    pending.push(s);
                }
                if !closed && rx.is_closed() && rx.is_empty() {
                    closed = true;
                }
                let mut still = Vec::new();
                for mut s in pending.drain(..) {
                    if s.national.is_none()
                        && replica::cursor(national.db(), &s.source).await.is_ok_and(|(c, _)| c.applied_seq >= s.seq)
                    {
                        let ms = s.at.elapsed().as_secs_f64() * 1000.0;
                        s.national = Some(ms);
                        to_national.push(ms);
                    }
                    let revoked = match http.get(format!("{base}{}", s.get_path)).send().await {
                        Ok(r) => r.bytes().await.ok().is_some_and(|b| says_revoked(&b)),
                        Err(_) => false,
                    };
                    if revoked {
                        to_revoked.push(s.at.elapsed().as_secs_f64() * 1000.0);
                    } else if s.at.elapsed() < Duration::from_secs(60) {
                        still.push(s);
                    } else {
                        unrevoked += 1;
                    }
                }
                pending = still;
                if closed && pending.is_empty() {
                    return (to_national, to_revoked, unrevoked);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let bar = crate::progress::Bar::new("bench peak", "notices of the day");
    let start = Instant::now();
    let mut max_lag = 0i64;
    let before: i64 = applied(national).await?;
    let mut committed = before;
    let n = munis.len();
    for i in 0..a.notices {
        // Paced: notice i at i / rate seconds.
        let due = start + Duration::from_secs_f64(i as f64 / a.rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        let mi = rng.below(n);
        let roll = rng.below(100);
        let now = http::now();
        if munis[mi].residents.is_empty() || roll < 7 {
            munis[mi]
                .m
                .register(clerk, NoticeKind::Birth, items(i, "某県某市二丁目2番")?, d, now)
                .await
                .map(|r| munis[mi].residents.push((r.body.record.resident_code, None)))?;
            committed += 1;
        } else if roll < 67 {
            let ri = rng.below(munis[mi].residents.len());
            let (code, cert) = munis[mi].residents[ri].clone();
            let addr = FlaggedText::plain("address", &format!("某県某市三丁目{i}番"))?;
            let notice = munis[mi].m.move_within(clerk, &code, addr, d, now).await?;
            committed += 1;
            if let Some((serial, issuer)) = cert {
                // A sample once: the certificate is revoked by this move.
                munis[mi].residents[ri].1 = None;
                let path = super::ocsp::get_path(&issuer, &hex::decode(&serial)?)?;
                let _ = tx.send(Sample {
                    source: munis[mi].m.code().as_str().to_owned(),
                    seq: notice.key.seq,
                    get_path: path,
                    at: Instant::now(),
                    national: None,
                });
            }
        } else if roll < 97 && n > 1 {
            // 転出 and 転入 to another municipality (any prefecture).
            let mut to = rng.below(n);
            if to == mi {
                to = (to + 1) % n;
            }
            let ri = rng.below(munis[mi].residents.len());
            let (code, _) = munis[mi].residents.swap_remove(ri);
            let dest = munis[to].m.code().clone();
            munis[mi].m.move_out(clerk, &code, dest.clone(), d, now).await?;
            let cert = munis[mi].m.move_out_certificate(&code).await?;
            let addr = FlaggedText::plain("address", &format!("某県某市四丁目{i}番"))?;
            let moved = munis[to].m.move_in(clerk, &cert, addr, d, now).await?;
            munis[mi].m.receive_move_in_notice(&code, &dest, moved.key.seq, now).await?;
            munis[to].residents.push((code, None));
            committed += 2;
        } else {
            let ri = rng.below(munis[mi].residents.len());
            let (code, _) = munis[mi].residents.swap_remove(ri);
            munis[mi].m.remove(clerk, &code, NoticeKind::Death, d, now).await?;
            committed += 1;
        }
        if i % 50 == 0 {
            max_lag = max_lag.max(committed - applied(national).await?);
            bar.set(i as u64, a.notices as u64);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    bar.finish(format_args!("{} operations of the day", a.notices));
    let t = Instant::now();
    wait_national(national, committed, Duration::from_secs(600)).await?;
    let catch_up = t.elapsed();
    drop(tx);
    let (mut to_national, mut to_revoked, unrevoked) = watcher.await?;
    to_national.sort_by(f64::total_cmp);
    to_revoked.sort_by(f64::total_cmp);
    Ok(Day {
        notices: (committed - before) as usize,
        seconds,
        to_national_ms: to_national,
        to_revoked_ms: to_revoked,
        unrevoked,
        max_lag_notices: max_lag,
        catch_up,
    })
}

/// Whether an OCSP response DER says `revoked` for its (only) certificate.
fn says_revoked(der: &[u8]) -> bool {
    use validator::ocsp::{BasicOcspResponse, CertStatus, OcspResponse};
    let Ok(r) = OcspResponse::from_der(der) else { return false };
    let Some(rb) = r.response_bytes else { return false };
    let Ok(basic) = BasicOcspResponse::from_der(rb.response.as_bytes()) else { return false };
    basic.tbs_response_data.responses.first().is_some_and(|s| matches!(s.cert_status, CertStatus::Revoked(_)))
}

fn print_report(a: &Args, credentials: Duration, runs: &[(&str, Run)]) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let total = a.prefectures * a.per_prefecture;
    println!(
        "\nMarch-peak day: {} prefectures × {} municipalities = {total} municipal nodes, the national node on {}, \
         the CA and the validator, all over mutual TLS on loopback in one process; {threads} cores; {} residents \
         before the day, {} certified; {} operations at {}/s; seed {}; fallback timers {} ms (pulls), {} ms (CA), \
         200 ms (validator). Credentials for {} parties: {:.1} s.\n",
        a.prefectures,
        a.per_prefecture,
        if a.pg { "PostgreSQL" } else { "SQLite" },
        total * a.residents,
        total * a.certified,
        a.notices,
        a.rate,
        a.seed,
        a.interval_ms,
        a.interval_ms * 2,
        total + a.prefectures + 2,
        credentials.as_secs_f64()
    );
    print!("| measure |");
    for (label, _) in runs {
        print!(" {label} |");
    }
    println!();
    println!("|---|{}", "---:|".repeat(runs.len()));
    let row = |what: &str, f: &dyn Fn(&Run) -> String| {
        print!("| {what} |");
        for (_, r) in runs {
            print!(" {} |", f(r));
        }
        println!();
    };
    let ms3 = |v: &[f64]| {
        format!(
            "{:.0} / {:.0} / {:.0} ms ({})",
            percentile(v, 50.0),
            percentile(v, 99.0),
            v.last().copied().unwrap_or(f64::NAN),
            v.len()
        )
    };
    row("set-up (nodes, registrations, certificates)", &|r| format!("{:.1} s", r.setup.as_secs_f64()));
    row("initial replication of the registrations", &|r| format!("{:.2} s", r.initial_sync.as_secs_f64()));
    row("notices of the day (a move across municipalities is two)", &|r| r.day.notices.to_string());
    row("notices/s achieved", &|r| format!("{:.1}", r.day.notices as f64 / r.day.seconds));
    row("national tier's largest lag (notices committed, not applied)", &|r| r.day.max_lag_notices.to_string());
    row("national caught up after the last notice", &|r| format!("{:.2} s", r.day.catch_up.as_secs_f64()));
    row("commit → applied at the national node: p50 / p99 / max (samples)", &|r| ms3(&r.day.to_national_ms));
    row("commit → OCSP `revoked` at the validator: p50 / p99 / max (samples)", &|r| ms3(&r.day.to_revoked_ms));
    row("samples not revoked within 60 s", &|r| r.day.unrevoked.to_string());
    if let [(_, lp), (_, timers)] = runs {
        let (a50, b50) = (percentile(&lp.day.to_revoked_ms, 50.0), percentile(&timers.day.to_revoked_ms, 50.0));
        let (a99, b99) = (percentile(&lp.day.to_revoked_ms, 99.0), percentile(&timers.day.to_revoked_ms, 99.0));
        println!(
            "\ncommit → OCSP `revoked`, long polls against timers only: p50 {:.2}×, p99 {:.2}× (lower is fresher); \
             target p99 ≤ 1,000 ms: {}",
            a50 / b50,
            a99 / b99,
            if a99 <= 1000.0 { "met" } else { "NOT met" }
        );
    }
}
