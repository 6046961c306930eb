//! `jpki bench identity`: identity-network throughput on SQLite and PostgreSQL, as a Markdown table.
//!
//! Setup (never timed): a network CA in a temporary directory issues ten municipalities their
//! notice keys and the national node and a bench agency their mutual-TLS credentials; ten
//! real [`Municipality`] nodes on SQLite register residents, move them within and across
//! municipalities, and their sealed, signed change notices are read back in pages of
//! [`replica::PULL_PAGE`]. Every run then uses fresh databases and times, with [`Instant`]
//! around the timed loop only:
//!
//! 1. notices/s through [`replica::apply_batch`] at the national tier (signature check +
//!    decide + insert + projection + feed + cursor, one transaction per page) and at the
//!    prefecture tier; and, on the same pages, the signature verification alone, as
//!    `apply_batch` does it (the key re-admitted once per page, then one ECDSA P-384
//!    verification of the page's newest notice, whose hash chain covers the page), which gives
//!    the verification cost per notice and the share of the apply rate it costs (signatures
//!    cannot be switched off, so "without" is apply time minus verification time);
//! 2. lawful single provision queries/s by resident code through [`Provider::query`] (each
//!    answered only after its provision-log row is durable; concurrent rows are
//!    group-committed), sequential and from 8 and 64 tasks, in process;
//! 3. bulk liveness checks/s through [`Provider::batch`], 10,000 residents per batch;
//! 4. the same single queries through the national node's HTTP shell, over mutual TLS 1.3
//!    (`net::server`, the agency's credential) and over plain HTTP as a bench-only reference
//!    (see [`plain_reference`]), sequential and from 64 tasks.
//!
//! Each row reports min / median / max over the runs; each comparison the median of the
//! per-run ratios.
//!
//! [`Provider::query`]: identity::provision::Provider::query
//! [`Provider::batch`]: identity::provision::Provider::batch

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use ca::network::NetworkCa;
use identity::client::Peer;
use identity::http::{self, NationalState};
use identity::ids::{LgCode, ResidentCode};
use identity::law::{AgencyClass, Field, LawTable};
use identity::municipal::Municipality;
use identity::national::National;
use identity::notice::{ChangeNotice, NoticeKind};
use identity::notice_sig::{NoticeKeyCert, NoticeSigner, NoticeVerifier, verify_notice};
use identity::operator::{Operator, Role};
use identity::party::Party;
use identity::person::{FlaggedText, FourItems, ResidentStatus, Sex};
use identity::provision::{Agency, BatchQuery, Lookup, MAX_BATCH, Provided, Query};
use identity::replica::{self, Stop, Tier};
use identity::store::testing::{self, TestDb};
use identity::store::{self, Db};
use net::credential::{Credential, Trust};
use net::secret::Secret;
use tokio::task::JoinSet;

/// Runs per row (min / median / max are over these).
const RUNS: usize = 5;
/// Municipalities generating notices.
const MUNICIPALITIES: usize = 10;
/// Residents registered per municipality (the first two pages of its chain).
const REGISTRATIONS: usize = 1_000;
/// Notices of each kind of move per municipality (moves within, out, in, within again).
const MOVES: usize = 250;
/// Single queries per run, sequential.
const SEQUENTIAL_QUERIES: usize = 2_000;
/// Single queries per run from [`TASKS`] concurrent tasks.
const CONCURRENT_QUERIES: usize = 6_400;
/// Concurrent query tasks (agencies' clients in parallel; rows are group-committed).
const TASKS: [usize; 2] = [8, 64];
/// Sequential point reads per run (round-trip diagnostic).
const ROUND_TRIPS: usize = 2_000;
/// Raw `fdatasync` calls per run (storage diagnostic).
const FSYNCS: usize = 300;
/// Fixed clock of the benchmark (2026-04-01, fiscal year 2026).
pub(super) const NOW: i64 = 1_775_000_000;
/// Target of the issue for notices applied per second.
const APPLY_TARGET: f64 = 10_000.0;
/// Target of the issue for lawful single queries per second.
const QUERY_TARGET: f64 = 20_000.0;
/// Target share of the reference rate kept with TLS and signatures (0.8 = 80%).
const RATIO_TARGET: f64 = 0.8;
/// Single queries per run over HTTP, sequential.
const HTTP_SEQUENTIAL: usize = 1_000;
/// Single queries per run over HTTP from [`HTTP_TASKS`] concurrent clients' tasks.
const HTTP_CONCURRENT: usize = 6_400;
/// Concurrent tasks of the HTTP rows (one shared client, so up to as many connections).
const HTTP_TASKS: usize = 64;
/// The agency of the single-query rows: its registered id and the name in its certificate.
const SINGLE_AGENCY: &str = "bench-single";

/// Runs the benchmark and prints its table to stdout (progress goes to stderr).
pub async fn run(pg_url: Option<String>) -> Result<()> {
    // `testing::postgres()` reads the admin URL from JPKI_TEST_PG_URL, and setting a variable
    // in a running process needs `unsafe` (forbidden here): re-run ourselves with it set.
    if let Some(url) = &pg_url
        && std::env::var("JPKI_TEST_PG_URL").ok().as_deref() != Some(url.as_str())
    {
        let exe = std::env::current_exe().context("locating the jpki binary")?;
        let status = tokio::process::Command::new(exe)
            .args(["bench", "identity"])
            .env("JPKI_TEST_PG_URL", url)
            .status()
            .await
            .context("re-running the benchmark with JPKI_TEST_PG_URL set")?;
        ensure!(status.success(), "benchmark failed ({status})");
        return Ok(());
    }

    let law = Arc::new(LawTable::seed().context("built-in law table")?);
    let plan = Plan::from_law(&law)?;

    let setup = crate::progress::Bar::spinner("bench identity setup", "signed notices from the municipalities");
    let dir = tempfile::tempdir().context("temporary directory for the municipalities")?;
    let network = BenchNet::create(&dir.path().join("net"))?;
    let work = Workload::generate(dir.path(), &network).await?;
    setup.finish(format_args!(
        "{} signed notices from {MUNICIPALITIES} municipalities ({} residents)",
        work.total,
        work.residents.len()
    ));

    let mut rows = Vec::new();
    let mut backends = vec![Backend::Sqlite];
    let pg_settings = match &pg_url {
        Some(url) => {
            backends.push(Backend::Postgres);
            Some(pg_settings(url).await)
        }
        None => None,
    };
    let mut ratios = Vec::new();
    for backend in backends {
        bench_backend(backend, &work, &network, &law, &plan, &mut rows, &mut ratios).await?;
    }

    println!("{}\n", header(&work, &plan, pg_settings.as_deref()));
    print!("{}", table(&rows));
    println!();
    print!("{}", ratio_table(&ratios, &rows));
    Ok(())
}

/// The network of the benchmark: a network CA in the setup directory, the trust every party
/// shares, the credentials of the national node and the single-query agency, and one notice
/// key per municipality.
#[derive(Debug)]
pub(super) struct BenchNet {
    pub(super) trust: Trust,
    pub(super) national: Credential,
    agency: Credential,
    /// Prefecture 13's credential (bench scale's rebuild serves it).
    pub(super) prefecture: Credential,
    signers: Vec<Arc<net::notice_key::Signer>>,
}

impl BenchNet {
    pub(super) fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let secret = || Secret::new(hex::encode(rand::random::<[u8; 24]>()).into_bytes());
        // Real time, not the fixed clock: replicas check notice keys against the clock.
        let now = http::now();
        let ca = NetworkCa::init(dir, &secret(), now).context("creating the bench network CA")?;
        let pass = secret();
        let trust = Trust { ca_file: dir.join("ca.pem"), crl_file: Some(dir.join("crl.pem")) };
        let mut signers = Vec::new();
        for i in 0..MUNICIPALITIES {
            let code = municipality_code(i)?;
            let prefix = dir.join(format!("notice-{code}"));
            ca.issue_notice_key(&code, 30, now, &prefix, &pass)?;
            signers.push(net::notice_key::Signer::load(&prefix, &pass, &code)?);
        }
        let tls = |party: Party, name: &str| -> Result<Credential> {
            let prefix = dir.join(name);
            ca.issue_tls(&party, &["127.0.0.1".into()], 30, now, &prefix, &pass)?;
            Ok(Credential::load(&prefix, &pass)?)
        };
        let national = tls(Party::National, "national")?;
        let agency = tls(Party::Agency(SINGLE_AGENCY.into()), "agency")?;
        let prefecture = tls(Party::Prefecture("13".parse()?), "prefecture-13")?;
        Ok(Self { trust, national, agency, prefecture, signers })
    }

    pub(super) fn verifier(&self) -> Arc<dyn NoticeVerifier> {
        net::notice_key::Verifier::new(self.trust.clone())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn label(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        }
    }

    async fn fresh(self) -> Result<TestDb> {
        Ok(match self {
            Self::Sqlite => testing::sqlite()?,
            Self::Postgres => testing::postgres().await?.context("JPKI_TEST_PG_URL is not set")?,
        })
    }
}

/// The purposes and fields the provision rows use, chosen from the law table.
#[derive(Debug)]
pub(super) struct Plan {
    pub(super) single_purpose: String,
    pub(super) single_class: AgencyClass,
    pub(super) single_fields: BTreeSet<Field>,
    bulk_purpose: String,
    bulk_class: AgencyClass,
    bulk_fields: BTreeSet<Field>,
}

impl Plan {
    /// A non-bulk purpose the national server answers (a class it holds data for) that
    /// permits name and address, asking for the four items it permits; and a bulk purpose,
    /// asking for the change information (status) only, as a liveness check does.
    pub(super) fn from_law(law: &LawTable) -> Result<Self> {
        let four = [Field::Name, Field::Address, Field::DateOfBirth, Field::Sex];
        let single = law
            .purposes()
            .find(|p| {
                !p.bulk
                    && p.agency_class.held_nationally()
                    && p.fields.contains(&Field::Name)
                    && p.fields.contains(&Field::Address)
            })
            .context("the law table has no non-bulk purpose with name and address for a nationally served class")?;
        let bulk = law.purposes().find(|p| p.bulk).context("the law table has no bulk purpose")?;
        let bulk_fields: BTreeSet<Field> = if bulk.fields.contains(&Field::ChangeInfo) {
            [Field::ChangeInfo].into_iter().collect()
        } else {
            bulk.fields.clone()
        };
        Ok(Self {
            single_purpose: single.code.clone(),
            single_class: single.agency_class,
            single_fields: four.into_iter().filter(|f| single.fields.contains(f)).collect(),
            bulk_purpose: bulk.code.clone(),
            bulk_class: bulk.agency_class,
            bulk_fields,
        })
    }
}

/// The notices of every municipality, in seq order, its notice-key certificate, and the
/// residents they registered.
#[derive(Debug)]
pub(super) struct Workload {
    pub(super) sources: Vec<Vec<ChangeNotice>>,
    pub(super) keys: Vec<NoticeKeyCert>,
    pub(super) total: usize,
    pub(super) residents: Vec<ResidentCode>,
}

fn municipality_code(i: usize) -> Result<LgCode> {
    // 13101 千代田区, 13102 中央区, …: prefecture 13, body digits + check digit.
    let n = 13_101 + i;
    let body: [u8; 5] = std::array::from_fn(|k| {
        let d = (n / 10usize.pow(4 - k as u32)) % 10;
        d as u8
    });
    let check = identity::check_digit::local_government_code(&body);
    Ok(format!("{n}{check}").parse()?)
}

fn pool_code(muni: usize, j: usize) -> Result<ResidentCode> {
    let v = 1_000_000_000 + muni * 1_000_000 + j;
    let body: [u8; 10] = std::array::from_fn(|k| ((v / 10usize.pow(9 - k as u32)) % 10) as u8);
    Ok(ResidentCode::from_body(body)?)
}

fn four_items(muni: usize, j: usize) -> Result<FourItems> {
    let year = 1940 + i32::try_from(j % 80)?;
    let day = 1 + u16::try_from(j % 365)?;
    Ok(FourItems {
        name: FlaggedText::plain("name", &format!("住民　{muni:02}-{j:04}"))?,
        address: FlaggedText::plain("address", &format!("東京都第{muni}区一丁目{j}番"))?,
        date_of_birth: time::Date::from_ordinal_date(year, day)?,
        sex: if j.is_multiple_of(2) { Sex::Female } else { Sex::Male },
    })
}

fn address(muni: usize, j: usize, round: usize) -> Result<FlaggedText> {
    Ok(FlaggedText::plain("address", &format!("東京都第{muni}区{round}丁目{j}番地"))?)
}

impl Workload {
    /// Per municipality, 2,000 notices in four pages: 1,000 registrations; 250 moves within
    /// and 250 moves out to the next municipality; 250 moves in from the previous one and
    /// 250 more moves within. Applying page k of every source before page k+1 never parks.
    pub(super) async fn generate(dir: &Path, network: &BenchNet) -> Result<Self> {
        let clerk = Operator::new("bench-clerk", Role::MunicipalClerk)?;
        let today = time::Date::from_calendar_date(2026, time::Month::April, 1)?;
        let mut munis = Vec::new();
        for i in 0..MUNICIPALITIES {
            let db = Db::open(&dir.join(format!("municipality-{i}.db")).display().to_string()).await?;
            let code = municipality_code(i)?;
            let m = Municipality::open(db, code.clone()).await?.with_signer(network.signers[i].clone()).await?;
            let pool = (0..REGISTRATIONS).map(|j| pool_code(i, j)).collect::<Result<Vec<_>>>()?;
            m.add_pool(&pool).await?;
            munis.push(m);
        }

        // Registrations, all municipalities at once.
        let mut set = JoinSet::new();
        for (i, m) in munis.iter().enumerate() {
            let (m, clerk) = (m.clone(), clerk.clone());
            set.spawn(async move {
                let mut codes = Vec::with_capacity(REGISTRATIONS);
                for j in 0..REGISTRATIONS {
                    let kind = if j.is_multiple_of(2) { NoticeKind::FirstRegistration } else { NoticeKind::Birth };
                    let n = m.register(&clerk, kind, four_items(i, j)?, today, NOW).await?;
                    codes.push(n.body.record.resident_code);
                }
                anyhow::Ok((i, codes))
            });
        }
        let mut registered = vec![Vec::new(); MUNICIPALITIES];
        while let Some(r) = set.join_next().await {
            let (i, codes) = r??;
            registered[i] = codes;
        }
        let registered = Arc::new(registered);

        // Moves within, then moves out to the next municipality.
        let mut set = JoinSet::new();
        for (i, m) in munis.iter().enumerate() {
            let (m, clerk, reg) = (m.clone(), clerk.clone(), registered.clone());
            let dest = munis[(i + 1) % MUNICIPALITIES].code().clone();
            set.spawn(async move {
                for (j, c) in reg[i][..MOVES].iter().enumerate() {
                    m.move_within(&clerk, c, address(i, j, 2)?, today, NOW).await?;
                }
                for c in &reg[i][MOVES..2 * MOVES] {
                    m.move_out(&clerk, c, dest.clone(), today, NOW).await?;
                }
                anyhow::Ok(())
            });
        }
        while let Some(r) = set.join_next().await {
            r??;
        }

        // Moves in from the previous municipality, then more moves within.
        let mut set = JoinSet::new();
        for (i, m) in munis.iter().enumerate() {
            let (m, clerk, reg) = (m.clone(), clerk.clone(), registered.clone());
            let from_index = (i + MUNICIPALITIES - 1) % MUNICIPALITIES;
            let from = munis[from_index].clone();
            set.spawn(async move {
                for (j, c) in reg[from_index][MOVES..2 * MOVES].iter().enumerate() {
                    let cert = from.move_out_certificate(c).await?;
                    m.move_in(&clerk, &cert, address(i, j, 5)?, today, NOW).await?;
                }
                for (j, c) in reg[i][2 * MOVES..3 * MOVES].iter().enumerate() {
                    m.move_within(&clerk, c, address(i, j, 3)?, today, NOW).await?;
                }
                anyhow::Ok(())
            });
        }
        while let Some(r) = set.join_next().await {
            r??;
        }

        let mut sources = Vec::new();
        for m in &munis {
            let mut all: Vec<ChangeNotice> = Vec::new();
            loop {
                let after = all.last().map_or(0, |n| n.key.seq);
                let page = store::notices_after(m.db(), m.code().as_str(), after, replica::PULL_PAGE).await?;
                if page.is_empty() {
                    break;
                }
                all.extend(page);
            }
            m.db().close().await;
            sources.push(all);
        }
        let total = sources.iter().map(Vec::len).sum();
        let want = MUNICIPALITIES * (REGISTRATIONS + 4 * MOVES);
        ensure!(total == want, "setup made {total} notices, expected {want}");
        let residents = registered.iter().flatten().cloned().collect();
        let keys = network
            .signers
            .iter()
            .map(|s| NoticeKeyCert { key_id: s.key_id().to_owned(), cert: s.key_cert().to_vec() })
            .collect();
        Ok(Self { sources, keys, total, residents })
    }
}

/// Stores every source's notice-key certificate at the replica (what a pull fetches from
/// `/v1/sources/{source}/keys` before its first page); not timed.
pub(super) async fn admit_all(db: &Db, verifier: &dyn NoticeVerifier, work: &Workload) -> Result<()> {
    for (notices, key) in work.sources.iter().zip(&work.keys) {
        let Some(first) = notices.first() else { continue };
        let stored =
            replica::admit_keys(db, verifier, &first.key.source, std::slice::from_ref(key), http::now()).await?;
        ensure!(stored.len() == 1, "the notice key of {} was not admitted", first.key.source);
    }
    Ok(())
}

/// Applies every source page by page, round-robin like the puller; returns the parks seen.
pub(super) async fn apply_all(
    db: &Db,
    tier: Tier,
    verifier: &dyn NoticeVerifier,
    sources: &[Vec<ChangeNotice>],
) -> Result<u64> {
    let page = replica::PULL_PAGE as usize;
    let total: usize = sources.iter().map(Vec::len).sum();
    let mut offsets = vec![0usize; sources.len()];
    let (mut done, mut parks) = (0usize, 0u64);
    while done < total {
        let mut moved = 0usize;
        for (notices, off) in sources.iter().zip(offsets.iter_mut()) {
            if *off >= notices.len() {
                continue;
            }
            let end = (*off + page).min(notices.len());
            let a = replica::apply_batch(db, tier, verifier, &notices[*off..end]).await?;
            match a.stop {
                Some(Stop::Gap { expected }) => bail!("gap before seq {expected}"),
                Some(Stop::Parked { .. }) => parks += 1,
                None => {}
            }
            let n = usize::try_from(a.applied + a.duplicates)?;
            *off += n;
            moved += n;
        }
        ensure!(moved > 0, "no progress: notices parked for good");
        done += moved;
    }
    Ok(parks)
}

/// One table row: throughputs of each run.
#[derive(Debug)]
struct Row {
    name: String,
    backend: Backend,
    ops: usize,
    rates: Vec<f64>,
    target: Option<f64>,
}

fn record(rows: &mut Vec<Row>, name: &str, backend: Backend, ops: usize, target: Option<f64>, rate: f64) {
    match rows.iter_mut().find(|r| r.name == name && r.backend == backend) {
        Some(r) => r.rates.push(rate),
        None => rows.push(Row { name: name.to_owned(), backend, ops, rates: vec![rate], target }),
    }
}

fn rate(ops: usize, started: Instant) -> f64 {
    ops as f64 / started.elapsed().as_secs_f64()
}

/// A paired measurement: the rate with TLS or signatures and the reference rate of the same
/// run; the ratio is taken per run.
#[derive(Debug)]
struct Comparison {
    name: String,
    backend: Backend,
    with: Vec<f64>,
    reference: Vec<f64>,
}

fn compare(out: &mut Vec<Comparison>, name: &str, backend: Backend, with: f64, reference: f64) {
    match out.iter_mut().find(|c| c.name == name && c.backend == backend) {
        Some(c) => {
            c.with.push(with);
            c.reference.push(reference);
        }
        None => out.push(Comparison { name: name.to_owned(), backend, with: vec![with], reference: vec![reference] }),
    }
}

const APPLY_ROW: &str = "apply notices, national tier (signatures verified + projection + feed)";
const VERIFY_ROW: &str = "(diagnostic) signature verification alone, same pages (key re-admitted per page)";

async fn bench_backend(
    b: Backend,
    work: &Workload,
    network: &BenchNet,
    law: &Arc<LawTable>,
    plan: &Plan,
    rows: &mut Vec<Row>,
    ratios: &mut Vec<Comparison>,
) -> Result<()> {
    let bar = crate::progress::Bar::new(format!("bench identity ({})", b.label()), "runs");
    bar.set(0, RUNS as u64);
    for run in 1..=RUNS {
        // 1. National tier apply, on a fresh database, with a fresh verifier.
        let nat_db = b.fresh().await?;
        let db = Db::open(&nat_db.url).await?;
        let national = National::open(db.clone(), law.clone()).await?;
        // The bench measures the provision path, not the per-agency rate limits (one agency
        // sends thousands of queries at one `NOW`): no limits on this in-process node.
        national.provider().set_limits(identity::rate_limit::Limits::unlimited())?;
        let verifier = network.verifier();
        admit_all(&db, verifier.as_ref(), work).await?;
        let t = Instant::now();
        let parks = apply_all(&db, Tier::National, verifier.as_ref(), &work.sources).await?;
        let apply_secs = t.elapsed().as_secs_f64();
        ensure!(parks == 0, "{parks} pages parked: the workload is not in causal page order");
        record(rows, APPLY_ROW, b, work.total, Some(APPLY_TARGET), work.total as f64 / apply_secs);
        // The same pages' signature checks alone.
        let verify_secs = verify_alone(network.verifier().as_ref(), work)?;
        record(rows, VERIFY_ROW, b, work.total, None, work.total as f64 / verify_secs);
        ensure!(verify_secs < apply_secs, "verification alone took longer than the apply");
        compare(
            ratios,
            "apply at the national tier: with signature verification vs. the same run minus its verification time",
            b,
            work.total as f64 / apply_secs,
            work.total as f64 / (apply_secs - verify_secs),
        );
        // The first resident who moved out of municipality 0 is active at municipality 1.
        let moved = national.record(&work.residents[MOVES]).await?;
        ensure!(
            moved.municipality == municipality_code(1)? && moved.status == ResidentStatus::Active,
            "national projection of a moved resident is wrong: {moved:?}"
        );
        bench_provision(&national, plan, &work.residents, b, rows).await?;
        bench_http(&national, network, plan, &work.residents, b, run, rows, ratios).await?;
        db.close().await;
        drop_database(&nat_db).await;

        // 1b. Prefecture tier apply (history and cursors only), on a fresh database.
        let pref_db = b.fresh().await?;
        let db = Db::open(&pref_db.url).await?;
        let verifier = network.verifier();
        admit_all(&db, verifier.as_ref(), work).await?;
        let t = Instant::now();
        apply_all(&db, Tier::Prefecture, verifier.as_ref(), &work.sources).await?;
        let r = rate(work.total, t);
        record(
            rows,
            "apply notices, prefecture tier (its municipalities: signatures + history + projection + feed)",
            b,
            work.total,
            Some(APPLY_TARGET),
            r,
        );

        // Diagnostics: what bounds the rows above.
        let t = Instant::now();
        for _ in 0..ROUND_TRIPS {
            store::meta(&db, "role").await?;
        }
        let r = rate(ROUND_TRIPS, t);
        record(rows, "(diagnostic) point read by key through the pool, sequential", b, ROUND_TRIPS, None, r);
        db.close().await;
        drop_database(&pref_db).await;
        if b == Backend::Sqlite {
            let r = fsync_rate()?;
            record(rows, "(diagnostic) raw 4 KiB append + fdatasync in the temp dir", b, FSYNCS, None, r);
        }

        bar.set(run as u64, RUNS as u64);
    }
    bar.finish(format_args!("{RUNS} runs"));
    Ok(())
}

/// The signature checks [`replica::apply_batch`] makes on the pages [`apply_all`] applies,
/// without the rest of the apply: per page, the source's stored key certificate is admitted
/// again (chain to the network CA, CRL, notice-signing use) and the signature of the page's
/// newest notice is verified (its hash chain vouches for the page). Returns the seconds taken.
fn verify_alone(verifier: &dyn NoticeVerifier, work: &Workload) -> Result<f64> {
    let t = Instant::now();
    for (notices, key) in work.sources.iter().zip(&work.keys) {
        for page in notices.chunks(replica::PULL_PAGE as usize) {
            let source = &page[0].key.source;
            let id = verifier.admit_key(source, &key.cert).map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
            ensure!(id == key.key_id, "{source}: key id {id}, expected {}", key.key_id);
            if let Some(n) = page.last() {
                verify_notice(verifier, n).map_err(|e| anyhow::anyhow!("{source}/{}: {e}", n.key.seq))?;
            }
        }
    }
    Ok(t.elapsed().as_secs_f64())
}

/// Appends 4 KiB and `fdatasync`s, like a WAL commit; returns syncs per second.
fn fsync_rate() -> Result<f64> {
    use std::io::Write as _;
    let mut f = tempfile::tempfile().context("temp file for the fsync diagnostic")?;
    let block = [0x5au8; 4096];
    let t = Instant::now();
    for _ in 0..FSYNCS {
        f.write_all(&block)?;
        f.sync_data()?;
    }
    Ok(rate(FSYNCS, t))
}

/// Rows 2 and 3 on a national node that holds the applied workload.
async fn bench_provision(
    national: &National,
    plan: &Plan,
    residents: &[ResidentCode],
    b: Backend,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let op = Operator::new("bench-operator", Role::NationalOperator)?;

    // 2. Lawful single queries by resident code, each with its provision-log row.
    let agency = national
        .provider()
        .register_agency(&op, SINGLE_AGENCY, "bench agency", plan.single_class, &[&plan.single_purpose], NOW)
        .await?;
    let t = Instant::now();
    for k in 0..SEQUENTIAL_QUERIES {
        single_query(national, &agency, plan, &residents[k % residents.len()]).await?;
    }
    let r = rate(SEQUENTIAL_QUERIES, t);
    record(rows, "single query by resident code + log row, sequential", b, SEQUENTIAL_QUERIES, Some(QUERY_TARGET), r);

    let shared = Arc::new(residents.to_vec());
    let plan_fields = (plan.single_purpose.clone(), plan.single_fields.clone());
    for tasks in TASKS {
        let per_task = CONCURRENT_QUERIES / tasks;
        let mut set = JoinSet::new();
        let t = Instant::now();
        for task in 0..tasks {
            let (national, agency, residents) = (national.clone(), agency.clone(), shared.clone());
            let (purpose, fields) = plan_fields.clone();
            set.spawn(async move {
                for k in 0..per_task {
                    let code = &residents[(task * per_task + k) % residents.len()];
                    let q = Query {
                        purpose: purpose.clone(),
                        by: Lookup::ResidentCode(code.clone()),
                        fields: fields.clone(),
                    };
                    let p = national.provider().query(&agency, &q, NOW).await?;
                    ensure!(p.found, "resident {code} not found");
                }
                anyhow::Ok(())
            });
        }
        while let Some(r) = set.join_next().await {
            r??;
        }
        let r = rate(per_task * tasks, t);
        record(
            rows,
            &format!("single query by resident code + log row, {tasks} tasks"),
            b,
            per_task * tasks,
            Some(QUERY_TARGET),
            r,
        );
    }

    // 3. Bulk liveness check: one batch of 10,000 residents, one transaction.
    let bulk_agency = national
        .provider()
        .register_agency(&op, "bench-bulk", "bench bulk agency", plan.bulk_class, &[&plan.bulk_purpose], NOW)
        .await?;
    let codes: Vec<ResidentCode> = residents.iter().take(MAX_BATCH).cloned().collect();
    let q = BatchQuery { purpose: plan.bulk_purpose.clone(), fields: plan.bulk_fields.clone(), resident_codes: codes };
    let t = Instant::now();
    let out = national.provider().batch(&bulk_agency, &q, NOW).await?;
    let r = rate(q.resident_codes.len(), t);
    ensure!(out.iter().all(|p| p.found), "bulk check missed residents");
    record(rows, "bulk liveness check, 10,000 residents per batch", b, q.resident_codes.len(), None, r);

    // Every provision was logged: the first resident was asked for once in each row.
    let logged = national.provider().disclosure(&residents[0]).await?;
    let provided = logged.iter().filter(|d| d.result == "provided").count();
    ensure!(provided >= 3, "provision log of {} has {provided} provisions, expected 3", residents[0]);
    Ok(())
}

/// BENCH-ONLY REFERENCE, never a way to run a node: the national router over plain HTTP
/// (`identity::http::serve`, no TLS), with a layer that puts the bench agency's [`Party`]
/// into every request, as the mutual-TLS server does from the client certificate. It exists
/// only to measure what TLS costs; nodes are served by `net::server` over mutual TLS.
async fn plain_reference(router: axum::Router) -> Result<(String, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding a loopback port")?;
    let url = format!("http://{}", l.local_addr()?);
    let router = router.layer(axum::Extension(Party::Agency(SINGLE_AGENCY.into())));
    Ok((url, tokio::spawn(http::serve(l, router))))
}

/// A plain-HTTP client with the settings of `net::client::client` (for the reference only).
fn plain_client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .connect_timeout(std::time::Duration::from_secs(10))
        .pool_idle_timeout(std::time::Duration::from_secs(10))
        .tcp_nodelay(true)
        .build()?)
}

/// `count` lawful single queries through `peer` from `tasks` tasks; returns queries/s.
async fn http_queries(
    peer: &Peer,
    plan: &Plan,
    residents: &Arc<Vec<ResidentCode>>,
    tasks: usize,
    count: usize,
) -> Result<f64> {
    let per_task = count / tasks;
    let mut set = JoinSet::new();
    let t = Instant::now();
    for task in 0..tasks {
        let (peer, residents) = (peer.clone(), residents.clone());
        let (purpose, fields) = (plan.single_purpose.clone(), plan.single_fields.clone());
        set.spawn(async move {
            for k in 0..per_task {
                let code = &residents[(task * per_task + k) % residents.len()];
                let q =
                    Query { purpose: purpose.clone(), by: Lookup::ResidentCode(code.clone()), fields: fields.clone() };
                let p: Provided = peer.post_json("/v1/provision/query", &q).await?;
                ensure!(p.found, "resident {code} not found");
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(rate(per_task * tasks, t))
}

/// Row 4: the national node's provision route over mutual TLS 1.3 and over the plain-HTTP
/// reference, sequential and from [`HTTP_TASKS`] tasks; which transport goes first
/// alternates between runs. Connections are opened (and TLS handshakes made) before timing,
/// as the clients of a running node keep theirs alive.
#[allow(clippy::too_many_arguments, reason = "the backend loop's context plus the run number")]
async fn bench_http(
    national: &National,
    network: &BenchNet,
    plan: &Plan,
    residents: &[ResidentCode],
    b: Backend,
    run: usize,
    rows: &mut Vec<Row>,
    ratios: &mut Vec<Comparison>,
) -> Result<()> {
    let router = http::national_router(NationalState { national: national.clone() });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding a loopback port")?;
    let tls_url = format!("https://{}", l.local_addr()?);
    let (config, _verifier) = net::tls::server_config(&network.national, &network.trust)?;
    let tls_server = tokio::spawn(
        net::server::Server::new(router.clone(), net::server::Transport::Tls(config)).serve(l, std::future::pending()),
    );
    let tls = Peer::new(&tls_url, net::client::client(&network.agency, &network.trust, Some(Party::National))?);
    let (plain_url, plain_server) = plain_reference(router).await?;
    let plain = Peer::new(&plain_url, plain_client()?);
    let residents = Arc::new(residents.to_vec());

    let mut measured = [[0.0; 2]; 2]; // [transport: plain, tls][sequential, concurrent]
    let order: [usize; 2] = if run % 2 == 1 { [0, 1] } else { [1, 0] };
    for i in order {
        let peer = if i == 0 { &plain } else { &tls };
        http_queries(peer, plan, &residents, HTTP_TASKS, HTTP_TASKS).await?; // open the connections
        measured[i][0] = http_queries(peer, plan, &residents, 1, HTTP_SEQUENTIAL).await?;
        measured[i][1] = http_queries(peer, plan, &residents, HTTP_TASKS, HTTP_CONCURRENT).await?;
    }
    tls_server.abort();
    plain_server.abort();

    let [[plain_seq, plain_conc], [tls_seq, tls_conc]] = measured;
    let single = "single query over HTTP to the national node";
    record(rows, &format!("{single}, mutual TLS 1.3, sequential"), b, HTTP_SEQUENTIAL, None, tls_seq);
    record(
        rows,
        &format!("{single}, plain HTTP (bench-only reference), sequential"),
        b,
        HTTP_SEQUENTIAL,
        None,
        plain_seq,
    );
    let conc = HTTP_CONCURRENT / HTTP_TASKS * HTTP_TASKS;
    record(rows, &format!("{single}, mutual TLS 1.3, {HTTP_TASKS} tasks"), b, conc, None, tls_conc);
    record(
        rows,
        &format!("{single}, plain HTTP (bench-only reference), {HTTP_TASKS} tasks"),
        b,
        conc,
        None,
        plain_conc,
    );
    compare(ratios, "provision over HTTP, sequential: mutual TLS 1.3 vs. plain HTTP", b, tls_seq, plain_seq);
    compare(
        ratios,
        &format!("provision over HTTP, {HTTP_TASKS} tasks: mutual TLS 1.3 vs. plain HTTP"),
        b,
        tls_conc,
        plain_conc,
    );
    Ok(())
}

async fn single_query(national: &National, agency: &Agency, plan: &Plan, code: &ResidentCode) -> Result<()> {
    let q = Query {
        purpose: plan.single_purpose.clone(),
        by: Lookup::ResidentCode(code.clone()),
        fields: plan.single_fields.clone(),
    };
    let p = national.provider().query(agency, &q, NOW).await?;
    ensure!(p.found, "resident {code} not found");
    Ok(())
}

/// Drops a PostgreSQL benchmark database with `psql` when it is installed (best effort:
/// the library has no drop helper, and jpki does not link sqlx itself).
async fn drop_database(t: &TestDb) {
    if t.label != "postgres" {
        return;
    }
    let Some((_, name)) = t.url.rsplit_once('/') else { return };
    let Ok(admin) = std::env::var("JPKI_TEST_PG_URL") else { return };
    let out = tokio::process::Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", &admin, "-c"])
        .arg(format!("DROP DATABASE IF EXISTS {name}"))
        .output()
        .await;
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => tracing::warn!("could not drop {name}: {}", String::from_utf8_lossy(&o.stderr).trim()),
        Err(e) => tracing::warn!("could not drop {name} (psql: {e}); it stays on the cluster"),
    }
}

/// `SHOW` of the durability settings through `psql`, or why not.
async fn pg_settings(url: &str) -> String {
    let out = tokio::process::Command::new("psql")
        .args(["-X", "-A", "-t", "-F", "=", url, "-c"])
        .arg(
            "SELECT name, setting FROM pg_settings WHERE name IN \
             ('fsync', 'synchronous_commit', 'wal_sync_method', 'full_page_writes', 'server_version') ORDER BY name",
        )
        .output()
        .await;
    match out {
        Ok(o) if o.status.success() => {
            String::from_utf8_lossy(&o.stdout).lines().filter(|l| !l.is_empty()).collect::<Vec<_>>().join(", ")
        }
        Ok(o) => format!("unknown ({})", String::from_utf8_lossy(&o.stderr).trim()),
        Err(e) => format!("unknown (psql: {e})"),
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

fn header(work: &Workload, plan: &Plan, pg: Option<&str>) -> String {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut s = String::new();
    let _ = writeln!(s, "## jpki bench identity\n");
    let _ = writeln!(
        s,
        "- machine: nproc {cpus}, {}, {} {} {}",
        cpu_model(),
        std::env::consts::OS,
        kernel.trim(),
        std::env::consts::ARCH
    );
    let _ = writeln!(
        s,
        "- SQLite: temp file in {}, journal_mode=WAL, synchronous=FULL (WAL fsync at every commit), pool of 4",
        std::env::temp_dir().display()
    );
    match pg {
        Some(p) => {
            let _ = writeln!(s, "- PostgreSQL: {p}, pool of 8, fresh database per run");
        }
        None => {
            let _ = writeln!(s, "- PostgreSQL: not run (give --pg-url or JPKI_TEST_PG_URL)");
        }
    }
    let _ = writeln!(
        s,
        "- workload: {} notices from {MUNICIPALITIES} real municipality nodes ({} registrations, moves within, out and in), \
         each signed with its municipality's notice key (ECDSA P-384, certified by a bench network CA), \
         applied in pages of {} per source; queries under purpose {} ({:?}), bulk under {} ({:?})",
        work.total,
        work.residents.len(),
        replica::PULL_PAGE,
        plan.single_purpose,
        plan.single_fields,
        plan.bulk_purpose,
        plan.bulk_fields,
    );
    let _ = writeln!(
        s,
        "- HTTP rows: the national node's router over mutual TLS 1.3 (`net::server`, P-384 credentials of the bench \
         network CA, the agency's client `net::client::client`) and over plain HTTP (bench-only reference: \
         `identity::http::serve` with a layer inserting the agency's party); connections opened before timing; \
         which goes first alternates between runs"
    );
    let _ = write!(
        s,
        "- {RUNS} runs per row, fresh databases per run; rate = operations / wall time of the timed loop only"
    );
    s
}

fn table(rows: &[Row]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for r in rows {
        if !names.contains(&r.name.as_str()) {
            names.push(&r.name);
        }
    }
    let mut order: Vec<&Row> = rows.iter().collect();
    order.sort_by_key(|r| (names.iter().position(|n| *n == r.name), r.backend == Backend::Postgres));
    let mut s = String::new();
    let _ = writeln!(s, "| benchmark | backend | ops/run | min /s | median /s | max /s | target /s |");
    let _ = writeln!(s, "|---|---|--:|--:|--:|--:|---|");
    for r in order {
        let mut v = r.rates.clone();
        v.sort_by(f64::total_cmp);
        let (min, med, max) = (v.first().copied().unwrap_or(0.0), median(&v), v.last().copied().unwrap_or(0.0));
        let target = match r.target {
            Some(t) if med >= t => format!("≥ {t:.0}: met"),
            Some(t) => format!("≥ {t:.0}: **not met**"),
            None => "—".to_owned(),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {min:.0} | {med:.0} | {max:.0} | {target} |",
            r.name,
            r.backend.label(),
            r.ops
        );
    }
    s
}

/// The comparisons (median of the per-run ratios against [`RATIO_TARGET`]) and the signature
/// verification cost per notice.
fn ratio_table(ratios: &[Comparison], rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| comparison | backend | with TLS / signatures, median /s | reference, median /s | ratio (median of runs) | target |"
    );
    let _ = writeln!(s, "|---|---|--:|--:|--:|---|");
    let sorted = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v
    };
    for c in ratios {
        let per_run: Vec<f64> = c.with.iter().zip(&c.reference).map(|(w, r)| w / r).collect();
        let ratio = median(&sorted(&per_run));
        let verdict = if ratio >= RATIO_TARGET { "met" } else { "**not met**" };
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} | {:.0} | {:.1}% | ≥ {:.0}%: {verdict} |",
            c.name,
            c.backend.label(),
            median(&sorted(&c.with)),
            median(&sorted(&c.reference)),
            ratio * 100.0,
            RATIO_TARGET * 100.0
        );
    }
    for r in rows.iter().filter(|r| r.name == VERIFY_ROW) {
        let us: Vec<f64> = r.rates.iter().map(|x| 1e6 / x).collect();
        let _ = writeln!(
            s,
            "\nSignature verification ({}): {:.1} µs per notice (median; min {:.1}, max {:.1}), amortized: one ECDSA P-384 verification and one key re-admission per page of {} (the page's newest signature covers its hash chain).",
            r.backend.label(),
            median(&sorted(&us)),
            sorted(&us).first().copied().unwrap_or(0.0),
            sorted(&us).last().copied().unwrap_or(0.0),
            replica::PULL_PAGE
        );
    }
    s
}

fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}
