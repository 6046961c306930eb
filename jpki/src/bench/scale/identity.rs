//! The identity curves of `jpki bench scale`: the national tier on PostgreSQL with a
//! bulk-loaded synthetic state of N residents (N = 10^5, 10^6; 10^7 with `--max`). Building
//! that state by applying signed notices would take hours at 10^7, so it is written directly
//! with `COPY` into the national tier's own tables (identity/migrations/postgres), the way
//! replication leaves them: per resident its projected record (`resident`, the record as the
//! projection stores it), its issued code (`issued_code`), one registration notice
//! (`change_notice`, chained per municipality, the chain head in `replica_cursor`), one feed
//! entry (`feed`, the `counter` after it), and N provision-log rows. Then, on that state, with
//! the real code paths:
//!
//! * notices applied/s through `replica::apply_batch` (the bench identity workload: 20,000
//!   signed notices of ten real municipalities: registrations and moves);
//! * provision latency p50/p99 through `Provider::query` (each answer after its log row is
//!   durable), sequential, and the rate from 64 tasks;
//! * a resident's disclosure report (`Provider::disclosure`) p50/p99, and the yearly usage
//!   statistics (`Provider::statistics`, a scan of the whole provision log).

use std::fmt::Write as _;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use identity::ids::ResidentCode;
use identity::law::LawTable;
use identity::national::National;
use identity::notice::{NoticeKind, format_date};
use identity::operator::{Operator, Role};
use identity::provision::{Lookup, Query};
use identity::replica::Tier;
use identity::store::Db;
use sqlx::{ConnectOptions, Connection, Executor};
use tokio::task::JoinSet;

use super::Report;
use super::plot::Series;
use super::stats::{human_bytes, human_count, human_secs, percentile, power_fit};
use super::synth::{MUNICIPALITIES, Synth};
use crate::bench::identity::{BenchNet, NOW, Plan, Workload, admit_all, apply_all};

/// Seed of the synthetic residents.
const SEED: u64 = 0x1D;
/// Rows per COPY message.
const CHUNK: u64 = 20_000;
/// Sequential provision queries timed one by one.
const QUERIES: usize = 2_000;
/// Queries from [`TASKS`] tasks.
const CONCURRENT: usize = 6_400;
const TASKS: usize = 64;
/// Disclosure reports timed.
const DISCLOSURES: usize = 200;

/// COPY text format: backslash, tab and newline escaped.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\t', "\\t").replace('\n', "\\n")
}

/// A bytea value in COPY text format.
fn bytea(b: &[u8]) -> String {
    format!("\\\\x{}", hex::encode(b))
}

/// Free bytes on the file system of `dir` (`df`; the throwaway cluster lives under the temp
/// directory too), if `df` answers.
fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    let o = std::process::Command::new("df").args(["--output=avail", "-B1"]).arg(dir).output().ok()?;
    String::from_utf8_lossy(&o.stdout).lines().nth(1)?.trim().parse().ok()
}

/// What one size measured.
struct Size {
    residents: u64,
    load_secs: f64,
    db_bytes: u64,
    apply_per_sec: f64,
    query_p50_ms: f64,
    query_p99_ms: f64,
    query_rate_64: f64,
    disclosure_p50_ms: f64,
    disclosure_p99_ms: f64,
    statistics_secs: f64,
}

/// Bulk-loads `n` residents into the national database at `url`.
async fn bulk_load(url: &str, n: u64, law: &LawTable, plan: &Plan) -> Result<()> {
    let synth = Synth::new(SEED);
    let opts = sqlx::postgres::PgConnectOptions::from_str(url)?.disable_statement_logging();
    let mut conn = sqlx::postgres::PgConnection::connect_with(&opts).await?;
    let purpose = plan.single_purpose.clone();
    let class = law.get(&purpose).map_or("-", |p| p.agency_class.table_ref());
    let today = format_date(time::Date::from_calendar_date(2026, time::Month::April, 1)?);
    let kind = i64::from(NoticeKind::FirstRegistration as u16);
    let mut seqs = vec![0u64; MUNICIPALITIES];
    let mut heads = vec![[0u8; 32]; MUNICIPALITIES];
    let tables = [
        "resident (resident_code, municipality, status, version, name, date_of_birth, sex, address, record, last_source, last_seq)",
        "issued_code (code, municipality, issued_at)",
        "change_notice (source, seq, kind, resident_code, encoding, body, prev_hash, hash)",
        "feed (feed_seq, source, seq, resident_code, previous_code, kind, changed, effective_date, recorded_at)",
        "provision_log (at, fiscal_year, function, purpose, provision_class, source, destination, resident_code, fields, result, reason)",
    ];
    let mut start = 0;
    while start < n {
        let end = (start + CHUNK).min(n);
        let mut bufs: [String; 5] = Default::default();
        for i in start..end {
            let r = synth.resident(i)?;
            let m = synth.municipality_of(i);
            seqs[m] += 1;
            let seq = seqs[m];
            let prev = heads[m];
            let hash = synth.hash32(0, i);
            heads[m] = hash;
            let code = r.resident_code.as_str();
            let muni = r.municipality.as_str();
            let record = serde_json::to_vec(&r)?;
            writeln!(
                bufs[0],
                "{code}\t{muni}\t{}\t1\t{}\t{}\t{}\t{}\t{}\t{muni}\t{seq}",
                u8::from(r.status),
                esc(r.items.name.text()),
                format_date(r.items.date_of_birth),
                u8::from(r.items.sex),
                esc(r.items.address.text()),
                bytea(&record),
            )?;
            writeln!(bufs[1], "{code}\t{muni}\t{NOW}")?;
            writeln!(
                bufs[2],
                "{muni}\t{seq}\t{kind}\t{code}\t1\t{}\t{}\t{}",
                bytea(&record),
                bytea(&prev),
                bytea(&hash)
            )?;
            writeln!(
                bufs[3],
                "{}\t{muni}\t{seq}\t{code}\t\\N\t{kind}\tresident_code,name,address,date_of_birth,sex,status,municipality\t{today}\t{NOW}",
                i + 1
            )?;
            // Provision-log row i: a query about a resident drawn from the whole set.
            let about = synth.resident_code(synth.pick(5, i, n))?;
            writeln!(
                bufs[4],
                "{}\t{}\t照会(住民票コード)\t{}\t{class}\t全国サーバ\tbench-agency ベンチ機関\t{}\tname,address\tprovided\t\\N",
                NOW - i64::try_from(synth.pick(6, i, 365 * 86_400))?,
                2025 + i64::try_from(synth.pick(7, i, 2))?,
                esc(&purpose),
                about.as_str(),
            )?;
        }
        for (table, buf) in tables.iter().zip(&bufs) {
            let mut copy = conn.copy_in_raw(&format!("COPY {table} FROM STDIN")).await?;
            copy.send(buf.as_bytes()).await?;
            copy.finish().await?;
        }
        start = end;
    }
    // The chain heads and the feed counter, as replication leaves them.
    let mut tx = conn.begin().await?;
    for (m, (seq, head)) in seqs.iter().zip(&heads).enumerate() {
        if *seq == 0 {
            continue;
        }
        sqlx::query("INSERT INTO replica_cursor (source, applied_seq, applied_hash) VALUES ($1, $2, $3)")
            .bind(Synth::municipality(m)?.as_str().to_owned())
            .bind(i64::try_from(*seq)?)
            .bind(head.to_vec())
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("INSERT INTO counter (name, value) VALUES ('feed', $1)")
        .bind(i64::try_from(n)?)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    conn.execute("ANALYZE").await?;
    conn.close().await?;
    Ok(())
}

/// A fresh database on the cluster of `admin`; returns its URL and name.
async fn create_db(admin: &str) -> Result<(String, String)> {
    let name = format!("jpki_scale_{}", hex::encode(rand::random::<[u8; 6]>()));
    let mut c = sqlx::postgres::PgConnection::connect(admin).await?;
    // The name is ours (hex), not input: identifiers cannot be bound as parameters.
    c.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await?;
    c.close().await?;
    let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
    Ok((format!("{base}/{name}"), name))
}

async fn drop_db(admin: &str, name: &str) -> Result<()> {
    let mut c = sqlx::postgres::PgConnection::connect(admin).await?;
    c.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).await?;
    c.close().await?;
    Ok(())
}

async fn measure(
    admin: &str,
    n: u64,
    law: &Arc<LawTable>,
    plan: &Plan,
    network: &BenchNet,
    work: &Workload,
) -> Result<Size> {
    let (url, name) = create_db(admin).await?;
    let db = Db::open(&url).await?;
    let national = National::open(db.clone(), law.clone()).await?;
    national.provider().set_limits(identity::rate_limit::Limits::unlimited())?;
    let t = Instant::now();
    bulk_load(&url, n, law, plan).await?;
    let load_secs = t.elapsed().as_secs_f64();
    let synth = Synth::new(SEED);

    // Notices applied on top of the state.
    let verifier = network.verifier();
    admit_all(&db, verifier.as_ref(), work).await?;
    let t = Instant::now();
    let parks = apply_all(&db, Tier::National, verifier.as_ref(), &work.sources).await?;
    let apply_per_sec = work.total as f64 / t.elapsed().as_secs_f64();
    ensure!(parks == 0, "{parks} pages parked");
    ensure!(national.feed_head().await? == n + work.total as u64, "the feed did not continue after the bulk state");

    // Provision, sequential latencies, then 64 tasks.
    let op = Operator::new("bench-operator", Role::NationalOperator)?;
    let agency = national
        .provider()
        .register_agency(&op, "bench-scale", "bench agency", plan.single_class, &[&plan.single_purpose], NOW)
        .await?;
    let query = |code: ResidentCode| Query {
        purpose: plan.single_purpose.clone(),
        by: Lookup::ResidentCode(code),
        fields: plan.single_fields.clone(),
    };
    let mut lat = Vec::with_capacity(QUERIES);
    for k in 0..QUERIES {
        let code = synth.resident_code(synth.pick(8, k as u64, n))?;
        let t = Instant::now();
        let p = national.provider().query(&agency, &query(code), NOW).await?;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        ensure!(p.found, "a bulk-loaded resident was not found");
    }
    let per_task = CONCURRENT / TASKS;
    let mut set = JoinSet::new();
    let t = Instant::now();
    for task in 0..TASKS {
        let (national, agency) = (national.clone(), agency.clone());
        let (purpose, fields) = (plan.single_purpose.clone(), plan.single_fields.clone());
        set.spawn(async move {
            for k in 0..per_task {
                let code = synth.resident_code(synth.pick(9, (task * per_task + k) as u64, n))?;
                let q = Query { purpose: purpose.clone(), by: Lookup::ResidentCode(code), fields: fields.clone() };
                ensure!(national.provider().query(&agency, &q, NOW).await?.found, "not found");
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    let query_rate_64 = (per_task * TASKS) as f64 / t.elapsed().as_secs_f64();

    // Disclosure reports of residents the provision log names.
    let mut dis = Vec::with_capacity(DISCLOSURES);
    let mut rows = 0;
    for k in 0..DISCLOSURES as u64 {
        let code = synth.resident_code(synth.pick(5, k * (n / DISCLOSURES as u64).max(1), n))?;
        let t = Instant::now();
        rows += national.provider().disclosure(&code).await?.len();
        dis.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ensure!(rows >= DISCLOSURES, "the disclosure reports found {rows} rows for {DISCLOSURES} residents");
    let t = Instant::now();
    let stats = national.provider().statistics(&[2025, 2026]).await?;
    let statistics_secs = t.elapsed().as_secs_f64();
    ensure!(!stats.is_empty(), "empty statistics");

    let db_bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())").fetch_one(db.pool()).await?;
    db.close().await;
    drop_db(admin, &name).await?;
    Ok(Size {
        residents: n,
        load_secs,
        db_bytes: u64::try_from(db_bytes)?,
        apply_per_sec,
        query_p50_ms: percentile(&lat, 50.0),
        query_p99_ms: percentile(&lat, 99.0),
        query_rate_64,
        disclosure_p50_ms: percentile(&dis, 50.0),
        disclosure_p99_ms: percentile(&dis, 99.0),
        statistics_secs,
    })
}

/// A national node rebuilt from its prefecture (`national::rebuild`, over mutual TLS on
/// loopback): prefecture 13 holds the workload's notices (applied at the prefecture tier, on
/// PostgreSQL); a wiped national database pulls and applies them all and compares chain heads.
/// Returns (notices, seconds).
async fn rebuild(admin: &str, law: &Arc<LawTable>, network: &BenchNet, work: &Workload) -> Result<(u64, f64)> {
    let (purl, pname) = create_db(admin).await?;
    let pdb = Db::open(&purl).await?;
    identity::store::claim_identity(&pdb, "prefecture", "13").await?;
    let provider = identity::provision::Provider::open(pdb.clone(), law.clone()).await?;
    let verifier = network.verifier();
    admit_all(&pdb, verifier.as_ref(), work).await?;
    apply_all(&pdb, Tier::Prefecture, verifier.as_ref(), &work.sources).await?;
    let router = identity::http::prefecture_router(identity::http::PrefectureState {
        db: pdb.clone(),
        code: "13".parse()?,
        provider,
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding a loopback port")?;
    let url = format!("https://{}", l.local_addr()?);
    let (config, _v) = net::tls::server_config(&network.prefecture, &network.trust)?;
    let server = tokio::spawn(
        net::server::Server::new(router, net::server::Transport::Tls(config)).serve(l, std::future::pending()),
    );
    let peer = identity::client::Peer::new(
        &url,
        net::client::client(
            &network.national,
            &network.trust,
            Some(identity::party::Party::Prefecture("13".parse()?)),
        )?,
    );
    let (nurl, nname) = create_db(admin).await?;
    let ndb = Db::open(&nurl).await?;
    identity::store::claim_identity(&ndb, "national", "national").await?;
    let t = Instant::now();
    let checks = identity::national::rebuild(&ndb, network.verifier().as_ref(), &[peer]).await?;
    let secs = t.elapsed().as_secs_f64();
    server.abort();
    ensure!(
        checks.len() == work.sources.len() && checks.iter().all(|c| c.equal),
        "rebuilt chain heads differ: {checks:?}"
    );
    let n = identity::national::National::open(ndb.clone(), law.clone()).await?.feed_head().await?;
    ensure!(n == work.total as u64, "the rebuilt feed holds {n} of {} notices", work.total);
    ndb.close().await;
    pdb.close().await;
    drop_db(admin, &nname).await?;
    drop_db(admin, &pname).await?;
    Ok((n, secs))
}

/// Runs the identity curves at `sizes` on the cluster of `admin`; adds tables and plots.
pub async fn run(admin: &str, sizes: &[u64], report: &mut Report) -> Result<()> {
    let law = Arc::new(LawTable::seed().context("built-in law table")?);
    let plan = Plan::from_law(&law)?;
    let setup = crate::progress::Bar::spinner("bench scale identity setup", "signed notices from the municipalities");
    let dir = tempfile::tempdir()?;
    let network = BenchNet::create(&dir.path().join("net"))?;
    let work = Workload::generate(dir.path(), &network).await?;
    setup.finish(format_args!("{} signed notices", work.total));
    let bar = crate::progress::Bar::new("bench scale identity", "sizes");
    let mut out: Vec<Size> = Vec::new();
    let mut skipped = Vec::new();
    for (k, &n) in sizes.iter().enumerate() {
        bar.set(k as u64, sizes.len() as u64);
        // Does it fit on the disk? The previous size's bytes per resident, times this size.
        if let (Some(prev), Some(free)) = (out.last(), free_bytes(&std::env::temp_dir())) {
            let need = prev.db_bytes as f64 / prev.residents as f64 * n as f64;
            if need > 0.5 * free as f64 {
                skipped.push(format!(
                    "{}: not run: at {:.0} B per resident the database needs {}, and the disk has {} free",
                    human_count(n),
                    prev.db_bytes as f64 / prev.residents as f64,
                    human_bytes(need),
                    human_bytes(free as f64)
                ));
                continue;
            }
        }
        out.push(measure(admin, n, &law, &plan, &network, &work).await?);
    }
    let (rebuilt, rebuild_secs) = rebuild(admin, &law, &network, &work).await?;
    bar.finish(format_args!("{} sizes and a rebuild", sizes.len()));

    let mut t = String::new();
    t += &format!(
        "PostgreSQL (the cluster of `cargo xtask bench scale`), national tier, synthetic state bulk-loaded with COPY; \
         then {} signed notices (registrations and moves of 10 real municipalities) through `replica::apply_batch`, \
         {QUERIES} sequential and {CONCURRENT} concurrent ({TASKS} tasks) `Provider::query` calls on random residents, \
         {DISCLOSURES} disclosure reports, one yearly statistics table.\n\n",
        human_count(work.total as u64)
    );
    t += "| residents | bulk load | database | per resident | notices applied/s | query p50 / p99 | queries/s, 64 tasks | disclosure p50 / p99 | yearly statistics |\n";
    t += "|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for s in &out {
        t += &format!(
            "| {} | {} | {} | {:.0} B | {:.0} | {:.2} / {:.2} ms | {:.0} | {:.2} / {:.2} ms | {} |\n",
            human_count(s.residents),
            human_secs(s.load_secs),
            human_bytes(s.db_bytes as f64),
            s.db_bytes as f64 / s.residents as f64,
            s.apply_per_sec,
            s.query_p50_ms,
            s.query_p99_ms,
            s.query_rate_64,
            s.disclosure_p50_ms,
            s.disclosure_p99_ms,
            human_secs(s.statistics_secs),
        );
    }
    for s in &skipped {
        t += &format!("\n{s}.\n");
    }
    let fit = |f: &dyn Fn(&Size) -> f64| power_fit(&out.iter().map(|s| (s.residents as f64, f(s))).collect::<Vec<_>>());
    let exp = |f: Option<(f64, f64)>| f.map_or("–".into(), |f| format!("{:.2}", f.1));
    let stat_fit = fit(&|s| s.statistics_secs);
    let db_fit = fit(&|s| s.db_bytes as f64);
    t += &format!(
        "\nGrowth exponents (log-log fit over the sizes; 0 = flat, 1 = linear): apply rate {}, query p50 {}, \
         disclosure p50 {}, statistics {}, database size {}.",
        exp(fit(&|s| s.apply_per_sec)),
        exp(fit(&|s| s.query_p50_ms)),
        exp(fit(&|s| s.disclosure_p50_ms)),
        exp(stat_fit),
        exp(db_fit),
    );
    if let (Some(sf), Some(df)) = (stat_fit, db_fit) {
        t += &format!(
            " Extrapolated on those fits to 125 M residents (and as many log rows): database {}, yearly statistics {} \
             (and to 1.6 B provision-log rows, one year: {}).\n",
            human_bytes(super::stats::at(df, 1.25e8)),
            human_secs(super::stats::at(sf, 1.25e8)),
            human_secs(super::stats::at(sf, 1.6e9)),
        );
    } else {
        t.push('\n');
    }
    report.section("Identity: the national tier on PostgreSQL by size", &t);
    let rate = rebuilt as f64 / rebuild_secs;
    let mut t = String::new();
    t += &format!(
        "Measured: a wiped national node rebuilt from prefecture 13 (`national::rebuild`: pull over mutual TLS, verify, \
         apply, compare chain heads) holding {} notices: {} ({rate:.0} notices/s). The bulk-loaded states above have no \
         signed chains to pull, so larger rebuilds are this rate extrapolated linearly (an upper bound on the rate: \
         applying on top of a larger projection is slower, see the apply column above):\n\n",
        human_count(rebuilt),
        human_secs(rebuild_secs),
    );
    t += "| notices to pull | rebuild (extrapolated) |\n|---:|---:|\n";
    for n in [1e6, 1e7, 1.25e8, 1.25e8 + 10.0 * 1e7] {
        t += &format!("| {} | {} |\n", human_count(n as u64), human_secs(n / rate));
    }
    t += "\n(1.25·10^8: one registration per resident; +10^8: ten years of 10 M notices a year.)\n";
    report.section("Identity: rebuild from the prefectures", &t);
    let pts = |f: &dyn Fn(&Size) -> f64| out.iter().map(|s| (s.residents as f64, f(s))).collect::<Vec<_>>();
    report.plot(
        "scale-identity-rates.png",
        "Identity national tier: rates by projection size",
        "residents",
        "per second",
        vec![
            Series { label: "notices applied/s".into(), points: pts(&|s| s.apply_per_sec), extrapolated: false },
            Series { label: "queries/s, 64 tasks".into(), points: pts(&|s| s.query_rate_64), extrapolated: false },
        ],
    )?;
    report.plot(
        "scale-identity-latency.png",
        "Identity national tier: latencies by projection size",
        "residents",
        "milliseconds",
        vec![
            Series { label: "query p50".into(), points: pts(&|s| s.query_p50_ms), extrapolated: false },
            Series { label: "query p99".into(), points: pts(&|s| s.query_p99_ms), extrapolated: false },
            Series { label: "disclosure p50".into(), points: pts(&|s| s.disclosure_p50_ms), extrapolated: false },
            Series {
                label: "yearly statistics".into(),
                points: pts(&|s| s.statistics_secs * 1000.0),
                extrapolated: false,
            },
        ],
    )?;
    Ok(())
}
