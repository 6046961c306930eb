//! The OCSP curves of `jpki bench scale`, on the in-memory responder (validator::responder):
//!
//! * per responder algorithm (RSA-2048, P-384, ML-DSA-65; the CA of the same algorithm),
//!   in process: pre-signing [`RESIGN`] certificates (both CertID hashes, on every core, as
//!   `Service::load` does) and re-signing them all (`Service::refresh`, one thread): the rate
//!   per core, and what re-signing 10^5 … 2·10^8 certificates takes;
//! * per size (10^5, 10^6; 10^7 with `--max`): a CA database holding that many issued
//!   certificates (the [`super::super::ocsp`] fixture plus synthetic rows), `jpki serve
//!   validator` started on it: cold start (spawn → pre-signed → `/health` answers), its
//!   resident memory (VmRSS) per certificate, and cached GET requests/s under wrk next to
//!   nginx serving the same response bytes as a static file, in the same run.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ca::authority::{Authority, Settings, shard_of, state};
use ca::hierarchy::{Environment, Purpose};
use ca::key::{KeyAlgorithm, KeyBackend, SoftKey};
use ca::keystore::KeyStore;
use ca::revocation::CertKind;
use ca::status::StatusReader;
use sqlx::{ConnectOptions as _, Connection as _};
use validator::responder::{Responder, Service};

use super::plot::Series;
use super::stats::{human_bytes, human_count, human_secs, seconds_for};
use super::synth::Synth;
use super::{Report, proc_status_kib};
use crate::bench::ocsp::{Load, check, fixture, get_path, wait_http, wrk};
use crate::proc::Kill;

/// Certificates pre-signed and re-signed per responder algorithm.
const RESIGN: u64 = 10_000;
/// Seed of the synthetic serials.
const SEED: u64 = 0x0C5B;
/// Paths wrk cycles over (spread over the whole set).
const SAMPLE: u64 = 10_000;
/// wrk's run per server.
const DURATION: &str = "10s";
/// The national sizes the tables extrapolate to.
const NATIONAL: [(f64, &str); 2] =
    [(1e8, "10^8 (100 M cards, one certificate each)"), (2e8, "2·10^8 (100 M cards × 2)")];

/// Inserts `n` synthetic issued certificates of `slug` g1 (serials from [`Synth`]) into the CA
/// database at `db_path`: one prepared single-row INSERT with bound parameters, many rows per
/// transaction (SQLite parses one short statement once; wide multi-row statements cost more).
async fn insert_certificates(db_path: &str, slug: &str, n: u64, now: i64, shards: i64) -> Result<()> {
    const PER_TX: u64 = 50_000;
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(db_path).disable_statement_logging();
    let mut conn = sqlx::SqliteConnection::connect_with(&opts).await?;
    let synth = Synth::new(SEED);
    let mut i = 0;
    while i < n {
        let end = (i + PER_TX).min(n);
        let mut tx = conn.begin().await?;
        for k in i..end {
            let serial = synth.serial(k);
            sqlx::query(
                "INSERT INTO ca_certificate (serial, issuer_slug, issuer_generation, kind, state, resident_code, shard, created_at, not_before, not_after) \
                 VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $7, $8)",
            )
            .bind(hex::encode(serial))
            .bind(slug)
            .bind(CertKind::Authentication as i64)
            .bind(state::ISSUED)
            .bind(format!("{k:011}"))
            .bind(shard_of(&serial, shards))
            .bind(now)
            .bind(now + 5 * 365 * 86_400)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        i = end;
    }
    conn.close().await?;
    Ok(())
}

/// One responder algorithm's signing rates.
struct SignRate {
    alg: KeyAlgorithm,
    /// Certificates pre-signed per second on all cores (`Service::load`, 2 responses each).
    load_per_sec: f64,
    /// Responses re-signed per second on one thread (`Service::refresh`).
    resign_per_core: f64,
    /// One response's size.
    response_bytes: usize,
}

async fn sign_rate(alg: KeyAlgorithm, now: i64) -> Result<SignRate> {
    let dir = tempfile::tempdir()?;
    let db_path = dir.path().join("ca.db").display().to_string();
    let db = ca::schema::open(&db_path).await?;
    let keys = KeyStore::soft(&dir.path().join("keys"), net::secret::Secret::new(b"benchmark passphrase".to_vec()))?;
    let mut ca = Authority::open(db, keys, now).await?;
    ca.init("bench", Environment::Production, Settings { ca_algorithm: alg, shards: 16, ..Settings::default() }, now)
        .await?;
    let g = ca.issuing("bench", Purpose::Authentication, Environment::Production, "13", now).await?;
    insert_certificates(&db_path, &g.ca.slug(), RESIGN, now, 16).await?;
    let rkey = SoftKey::ephemeral(alg)?;
    let rc = ca.issue_responder("bench", &g.ca, None, rkey.public_key_der(), 30, now).await?;
    let responder = Responder::new(Arc::new(rkey), &rc.der)?;
    let status = StatusReader::open(&db_path).await?;
    let svc = Arc::new(Service::open(status, vec![responder], 86_400, 1_000.0).await?);
    let t = Instant::now();
    let n = svc.load(now).await?;
    let load_per_sec = n as f64 / t.elapsed().as_secs_f64();
    ensure!(n as u64 >= RESIGN, "pre-signed {n} of {RESIGN}");
    let t = Instant::now();
    let resigned = svc.refresh(now + 86_400).await?;
    let resign_per_core = resigned as f64 / t.elapsed().as_secs_f64();
    ensure!(resigned as u64 >= 2 * RESIGN, "re-signed {resigned} responses of {}", 2 * RESIGN);
    let issuer = g.cert()?;
    let path = get_path(&issuer, &Synth::new(SEED).serial(7))?;
    let req = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        path.replace("%2F", "/").replace("%2B", "+").replace("%3D", "="),
    )?;
    let response_bytes = svc.answer(&req, now + 86_400).await.der().len();
    Ok(SignRate { alg, load_per_sec, resign_per_core, response_bytes })
}

/// One size's responder measurements.
struct Served {
    certs: u64,
    cold_secs: f64,
    rss_kib: u64,
    ours: Load,
    nginx: Load,
    response_bytes: usize,
}

/// nginx serving `file` for every path, as a static file (the ceiling of a cached answer).
struct Nginx {
    child: std::process::Child,
}

impl Nginx {
    fn start(dir: &std::path::Path, file: &std::path::Path, port: u16) -> Result<Nginx> {
        let www = dir.join("www");
        std::fs::create_dir_all(&www)?;
        std::fs::copy(file, www.join("resp.der"))?;
        let conf = format!(
            "daemon off;\nmaster_process on;\nworker_processes 2;\nuser root;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/tmp;\n  proxy_temp_path {d}/tmp;\n  fastcgi_temp_path {d}/tmp;\n  uwsgi_temp_path {d}/tmp;\n  scgi_temp_path {d}/tmp;\n\
             server {{\n    listen 127.0.0.1:{port};\n    root {w};\n    location / {{ default_type application/ocsp-response; try_files /resp.der =404; }}\n  }}\n}}\n",
            d = dir.display(),
            w = www.display()
        );
        std::fs::create_dir_all(dir.join("tmp"))?;
        std::fs::write(dir.join("nginx.conf"), conf)?;
        let child = Command::new("nginx")
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-p")
            .arg(dir)
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start nginx (apt install nginx-light; `cargo xtask bench scale` does)")?;
        Ok(Nginx { child })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGQUIT: the master stops its workers and exits (SIGKILL would orphan them).
        let _ = Command::new("kill").args(["-QUIT", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

async fn served(certs: u64, now: i64) -> Result<Served> {
    let dir = tempfile::tempdir()?;
    let f = fixture(dir.path(), now).await?;
    let existing = f.paths.len() as u64;
    insert_certificates(&f.db_path, "auth-13", certs.saturating_sub(existing), now, 16).await?;
    // Paths spread over the whole set: the fixture's own and the synthetic ones.
    let synth = Synth::new(SEED);
    let extra = certs.saturating_sub(existing);
    let mut paths: Vec<String> = f.paths.iter().take(100).cloned().collect();
    let step = (extra / SAMPLE).max(1);
    let mut i = 0;
    while i < extra && (paths.len() as u64) < SAMPLE {
        paths.push(get_path(&f.issuer, &synth.serial(i))?);
        i += step;
    }

    let port = crate::proc::free_port()?;
    let t = Instant::now();
    let ours = Kill(
        Command::new(std::env::current_exe()?)
            .args(["serve", "validator", "--ca-db", &f.db_path, "--responders"])
            .arg(dir.path().join("v"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("JPKI_VALIDATOR_PASSPHRASE", "benchmark passphrase")
            .env("RUST_LOG", "warn")
            .env_remove("JPKI_METRICS_LISTEN")
            .stderr(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start jpki serve validator")?,
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{base}/health"), Duration::from_secs(6 * 3600))?;
    let cold_secs = t.elapsed().as_secs_f64();
    let rss_kib = proc_status_kib(std::path::Path::new(&format!("/proc/{}/status", ours.0.id())), "VmRSS:");
    let last = paths.last().context("no paths")?;
    let response_bytes = check(&format!("{base}/ocsp/{last}"))?;
    // The same bytes for nginx.
    let o = Command::new("curl").args(["-sf", &format!("{base}/ocsp/{last}")]).output()?;
    let file = dir.path().join("resp.der");
    std::fs::write(&file, &o.stdout)?;
    let ours_load = wrk(&base, "/ocsp/", &paths, dir.path(), "ours", DURATION)?;
    drop(ours);
    let nport = crate::proc::free_port()?;
    let _nginx = Nginx::start(&dir.path().join("nginx"), &file, nport)?;
    let nbase = format!("http://127.0.0.1:{nport}");
    wait_http(&format!("{nbase}/ocsp/{last}"))?;
    ensure!(check(&format!("{nbase}/ocsp/{last}"))? == response_bytes, "nginx serves other bytes");
    let nginx = wrk(&nbase, "/ocsp/", &paths, dir.path(), "nginx", DURATION)?;
    Ok(Served { certs, cold_secs, rss_kib, ours: ours_load, nginx, response_bytes })
}

/// Like `wait_http` with a longer deadline (a large responder pre-signs for minutes).
fn wait_ready(url: &str, max: Duration) -> Result<()> {
    let deadline = Instant::now() + max;
    loop {
        let ok = Command::new("curl").args(["-s", "-o", "/dev/null", "-w", "%{http_code}", url]).output()?;
        if String::from_utf8_lossy(&ok.stdout) == "200" {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "{url} did not answer");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs the OCSP curves at `sizes`; adds tables and plots to `report`.
pub async fn run(sizes: &[u64], report: &mut Report) -> Result<()> {
    let now = identity::http::now();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let bar = crate::progress::Bar::new("bench scale ocsp", "steps");
    let steps = 3 + sizes.len() as u64 + 1;
    let mut rates = Vec::new();
    for (k, alg) in [KeyAlgorithm::Rsa2048, KeyAlgorithm::EcP384, KeyAlgorithm::MlDsa65].into_iter().enumerate() {
        bar.set(k as u64, steps);
        rates.push(sign_rate(alg, now).await?);
    }
    let mut t = String::new();
    t += &format!(
        "Measured on {} certificates per algorithm (2 responses each: SHA-1 and SHA-256 CertIDs); \
         every larger figure is that rate extrapolated linearly (signing is per response: nothing else grows).\n\n",
        human_count(RESIGN)
    );
    t += &format!(
        "| responder (and CA) algorithm | response | pre-sign, {cores:.0} cores | re-sign, per core | re-sign 10^6 certs, 1 core | 10^7, 1 core | {}, 1 core | cores to re-sign {} in 12 h (half a one-day validity) |\n",
        NATIONAL[1].1, NATIONAL[1].1
    );
    t += "|---|---:|---:|---:|---:|---:|---:|---:|\n";
    for r in &rates {
        let per_cert_core = r.resign_per_core / 2.0;
        t += &format!(
            "| {} | {} B | {:.0} certs/s | {:.0} responses/s | {} | {} | {} | {:.0} |\n",
            r.alg.name(),
            r.response_bytes,
            r.load_per_sec,
            r.resign_per_core,
            human_secs(seconds_for(1e6, per_cert_core, 1.0)),
            human_secs(seconds_for(1e7, per_cert_core, 1.0)),
            human_secs(seconds_for(NATIONAL[1].0, per_cert_core, 1.0)),
            super::stats::cores_for(NATIONAL[1].0, 12.0 * 3600.0, per_cert_core),
        );
    }
    report.section("OCSP: pre-signing and re-signing per responder algorithm", &t);
    report.plot(
        "scale-ocsp-resign.png",
        "OCSP: time to re-sign every certificate's responses, one core",
        "certificates",
        "seconds",
        rates
            .iter()
            .map(|r| Series {
                label: r.alg.name().to_owned(),
                points: [1e4, 1e5, 1e6, 1e7, 1e8, 2e8]
                    .iter()
                    .map(|&n| (n, seconds_for(n, r.resign_per_core / 2.0, 1.0)))
                    .collect(),
                extrapolated: true,
            })
            .collect(),
    )?;

    let avail_kib = proc_status_kib(std::path::Path::new("/proc/meminfo"), "MemAvailable:");
    let mut runs: Vec<Served> = Vec::new();
    let mut skipped = Vec::new();
    for (k, &n) in sizes.iter().enumerate() {
        bar.set(3 + k as u64, steps);
        // Does it fit? The previous size's memory per certificate, times this size.
        if let Some(prev) = runs.last() {
            let need = prev.rss_kib as f64 / prev.certs as f64 * n as f64;
            if need > 0.8 * avail_kib as f64 {
                skipped.push(format!(
                    "{}: not run: at {:.0} B per certificate it needs {}, and {} are available",
                    human_count(n),
                    prev.rss_kib as f64 * 1024.0 / prev.certs as f64,
                    human_bytes(need * 1024.0),
                    human_bytes(avail_kib as f64 * 1024.0)
                ));
                continue;
            }
        }
        runs.push(served(n, now).await?);
    }
    bar.finish(format_args!("OCSP up to {} certificates", human_count(runs.last().map_or(0, |r| r.certs))));
    let rsa = rates.iter().find(|r| r.alg == KeyAlgorithm::Rsa2048).context("no RSA rate")?;
    let mut t = String::new();
    t += &format!(
        "`jpki serve validator` (RSA-2048 CA and responder) on a CA database of that many issued certificates; \
         wrk -t2 -c{} -d{DURATION} GET over {} paths spread across the set, then nginx serving the same response bytes \
         as a static file to the same requests; {cores:.0} cores shared by server and load.\n\n",
        crate::bench::ocsp::CONNECTIONS,
        human_count(SAMPLE)
    );
    t += "| certificates | cold start (pre-sign all, then listen) | resident memory | per certificate | responder req/s | p50 / p99 | nginx static req/s | p50 / p99 | responder / nginx | response |\n";
    t += "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for r in &runs {
        t += &format!(
            "| {} | {} | {} | {:.0} B | {:.0} | {:.2} / {:.2} ms | {:.0} | {:.2} / {:.2} ms | {:.0}% | {} B |\n",
            human_count(r.certs),
            human_secs(r.cold_secs),
            human_bytes(r.rss_kib as f64 * 1024.0),
            r.rss_kib as f64 * 1024.0 / r.certs as f64,
            r.ours.rps,
            r.ours.p50_ms,
            r.ours.p99_ms,
            r.nginx.rps,
            r.nginx.p50_ms,
            r.nginx.p99_ms,
            100.0 * r.ours.rps / r.nginx.rps,
            r.response_bytes,
        );
    }
    for s in &skipped {
        t += &format!("\n{s}.\n");
    }
    if let (Some(a), Some(b)) = (runs.first(), runs.last())
        && b.certs > a.certs
    {
        let slope = (b.rss_kib as f64 - a.rss_kib as f64) * 1024.0 / (b.certs - a.certs) as f64;
        t += &format!(
            "\nMemory slope between {} and {}: {slope:.0} B per certificate, so one responder holding {} would need {} \
             and {} would need {}. Cold start at RSA-2048 is pre-signing bound: {} for {} at this machine's measured rate.\n",
            human_count(a.certs),
            human_count(b.certs),
            NATIONAL[0].1,
            human_bytes(slope * NATIONAL[0].0),
            NATIONAL[1].1,
            human_bytes(slope * NATIONAL[1].0),
            human_secs(NATIONAL[1].0 / rsa.load_per_sec),
            NATIONAL[1].1,
        );
    }
    report.section("OCSP: one in-memory responder by size", &t);
    let pts = |f: &dyn Fn(&Served) -> f64| runs.iter().map(|r| (r.certs as f64, f(r))).collect::<Vec<_>>();
    report.plot(
        "scale-ocsp-memory.png",
        "OCSP responder: resident memory and cold start",
        "certificates",
        "MB / seconds",
        vec![
            Series {
                label: "resident memory (MB)".into(),
                points: pts(&|r| r.rss_kib as f64 / 1024.0),
                extrapolated: false,
            },
            Series { label: "cold start (s)".into(), points: pts(&|r| r.cold_secs), extrapolated: false },
        ],
    )?;
    report.plot(
        "scale-ocsp-throughput.png",
        "OCSP cached GET under wrk: responder vs nginx static",
        "certificates",
        "requests/s",
        vec![
            Series { label: "jpki serve validator".into(), points: pts(&|r| r.ours.rps), extrapolated: false },
            Series {
                label: "nginx, same bytes, static file".into(),
                points: pts(&|r| r.nginx.rps),
                extrapolated: false,
            },
        ],
    )?;
    Ok(())
}
