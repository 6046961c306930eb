//! `jpki bench ocsp-store`: OCSP scaled out over the shared store. On this machine: a Redis
//! Cluster of three masters on loopback, one `jpki serve ocsp-signer` and two keyless
//! `jpki serve ocsp-responder`s over the [`super::ocsp`] fixture (1,000 certificates). Measures
//! a warm responder (everything in its hot set) under `wrk` against the ceiling of nginx
//! serving the same response bytes as static files, in the same run; the hot set's memory per
//! entry (RSS growth over 100,000 entries of a real response, in process); a cold miss (a store
//! read, parse and CertID check) p50/p99; and revocation-to-visible-on-both-responders over 50
//! revocations p50/p99. Prints a Markdown table with the targets. The wrk runs alternate, five
//! of each, and the table gives the median of each and every round's ratio.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use der::Decode;
use sha1::Digest as _;
use validator::ocsp::{BasicOcspResponse, CertStatus, OcspResponse};
use validator::responder::Alg;
use validator::stateless::StoreResponder;
use validator::store::{RedisStore, ResponseStore};

use super::ocsp::{fixture, wait_http, wrk};
use crate::proc::{Kill, free_port};

const DURATION: &str = "10s";
/// wrk rounds of each server (alternating).
const ROUNDS: usize = 5;
const REVOCATIONS: usize = 50;
const HOT_ENTRIES: usize = 100_000;
const PASS: &str = "benchmark passphrase";

/// nginx's master, stopped with SIGTERM so that it stops its workers (a SIGKILL would leave
/// them running, holding the port and our stdout).
struct Nginx(std::process::Child);
impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let _ = self.0.wait();
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The round with the median requests/s.
fn median(mut rounds: Vec<super::ocsp::Load>) -> super::ocsp::Load {
    rounds.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    rounds.swap_remove(rounds.len() / 2)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Starts `n` Redis masters with cluster mode on and joins them (no replicas, nothing saved).
fn redis_cluster(dir: &std::path::Path, n: usize) -> Result<(Vec<Kill>, Vec<u16>)> {
    let mut nodes = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..n {
        let p = free_port()?;
        let d = dir.join(format!("redis-{p}"));
        std::fs::create_dir_all(&d)?;
        nodes.push(Kill(
            Command::new("redis-server")
                .args(["--port", &p.to_string(), "--bind", "127.0.0.1", "--cluster-enabled", "yes"])
                .arg("--cluster-config-file")
                .arg(d.join("nodes.conf"))
                .arg("--dir")
                .arg(&d)
                .args(["--save", "", "--appendonly", "no", "--logfile", ""])
                .stdout(Stdio::null())
                .spawn()
                .context("cannot start redis-server (apt install redis-server)")?,
        ));
        ports.push(p);
    }
    for p in &ports {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !String::from_utf8_lossy(&Command::new("redis-cli").args(["-p", &p.to_string(), "ping"]).output()?.stdout)
            .contains("PONG")
        {
            ensure!(Instant::now() < deadline, "redis-server on {p} did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let o = Command::new("redis-cli")
        .arg("--cluster")
        .arg("create")
        .args(ports.iter().map(|p| format!("127.0.0.1:{p}")))
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()?;
    ensure!(o.status.success(), "redis-cli --cluster create: {}", String::from_utf8_lossy(&o.stdout));
    for p in &ports {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !String::from_utf8_lossy(
            &Command::new("redis-cli").args(["-p", &p.to_string(), "cluster", "info"]).output()?.stdout,
        )
        .contains("cluster_state:ok")
        {
            ensure!(Instant::now() < deadline, "the cluster did not reach state ok");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok((nodes, ports))
}

fn revoked(der: &[u8]) -> bool {
    let Ok(r) = OcspResponse::from_der(der) else { return false };
    let Some(rb) = r.response_bytes else { return false };
    BasicOcspResponse::from_der(rb.response.as_bytes()).is_ok_and(|b| {
        b.tbs_response_data.responses.first().is_some_and(|s| matches!(s.cert_status, CertStatus::Revoked(_)))
    })
}

/// Runs the benchmark and prints the table.
pub async fn run() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let d = |f: &str| dir.path().join(f);
    let now = identity::http::now();
    let f = fixture(dir.path(), now).await?;
    let (_redis, ports) = redis_cluster(dir.path(), 3)?;
    let store_url = ports.iter().map(|p| format!("redis://127.0.0.1:{p}")).collect::<Vec<_>>().join(",");

    let sp = free_port()?;
    let _signer = Kill(
        Command::new(std::env::current_exe()?)
            .args(["serve", "ocsp-signer", "--ca-db", &f.db_path, "--responders"])
            .arg(d("v"))
            .args(["--store", &store_url, "--partition", "0/1", "--poll-ms", "50"])
            .args(["--listen", &format!("127.0.0.1:{sp}")])
            .env("JPKI_VALIDATOR_PASSPHRASE", PASS)
            .env("RUST_LOG", "warn")
            .stderr(Stdio::null())
            .spawn()?,
    );
    wait_http(&format!("http://127.0.0.1:{sp}/health"))?;
    let rports = [free_port()?, free_port()?];
    let mut responders = Vec::new();
    for p in rports {
        responders.push(Kill(
            Command::new(std::env::current_exe()?)
                .args(["serve", "ocsp-responder", "--store", &store_url, "--hot-bytes", &(512usize << 20).to_string()])
                .args(["--listen", &format!("127.0.0.1:{p}")])
                .env("RUST_LOG", "warn")
                .stderr(Stdio::null())
                .spawn()?,
        ));
        wait_http(&format!("http://127.0.0.1:{p}/health"))?;
    }
    let bases: Vec<String> = rports.iter().map(|p| format!("http://127.0.0.1:{p}")).collect();

    // The same response bytes for nginx, from the store (tag byte dropped).
    let store = RedisStore::connect(&store_url, Duration::from_secs(1)).await?;
    let key_hash =
        sha1::Sha1::digest(f.issuer.tbs_certificate().subject_public_key_info().subject_public_key.raw_bytes())
            .to_vec();
    let keys: Vec<Vec<u8>> = f
        .serials
        .iter()
        .map(|s| Ok(validator::store::key(Alg::Sha1, &key_hash, &hex::decode(s)?)))
        .collect::<Result<_>>()?;
    std::fs::create_dir_all(d("static/r"))?;
    let mut sample = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let v = store.get(k.clone()).await?.context("a signed response missing from the store")?;
        std::fs::write(d(&format!("static/r/{i}")), &v[1..])?;
        if i == 0 {
            sample = v;
        }
    }
    let np = free_port()?;
    std::fs::write(
        d("nginx.conf"),
        format!(
            "user root;\nworker_processes 2;\npid {pid};\nerror_log {err} warn;\nevents {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  default_type application/ocsp-response;\n  open_file_cache max=2000;\n\
             server {{ listen 127.0.0.1:{np}; root {root}; }}\n}}\n",
            pid = d("nginx.pid").display(),
            err = d("nginx.err").display(),
            root = d("static").display()
        ),
    )?;
    let _nginx = Nginx(
        Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(d("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start nginx (apt install nginx; `cargo xtask bench ocsp-store` does)")?,
    );
    let nbase = format!("http://127.0.0.1:{np}");
    wait_http(&format!("{nbase}/r/0"))?;

    // Warm both responders: every certificate, a few times.
    let http = reqwest::Client::new();
    for b in &bases {
        for _ in 0..2 {
            for p in &f.paths {
                let r = http.get(format!("{b}/ocsp/{p}")).send().await?.bytes().await?;
                ensure!(!revoked(&r) && r.len() > 100, "a warm-up answer is not a good response");
            }
        }
    }
    let health = http.get(format!("{}/health", bases[0])).send().await?.text().await?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    eprintln!("responder after warm-up: {}", health.trim());
    // Rounds alternate between the two, so that load from elsewhere on the machine falls on
    // both alike; the table gives the median round of each.
    let nginx_paths: Vec<String> = (0..f.paths.len()).map(|i| i.to_string()).collect();
    let (mut hot_rounds, mut nginx_rounds) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        hot_rounds.push(wrk(&bases[0], "/ocsp/", &f.paths, dir.path(), "hot", DURATION)?);
        nginx_rounds.push(wrk(&nbase, "/r/", &nginx_paths, dir.path(), "nginx", DURATION)?);
        eprintln!(
            "round {}: responder {:.0}/s, nginx {:.0}/s ({:.2}×)",
            round + 1,
            hot_rounds[round].rps,
            nginx_rounds[round].rps,
            hot_rounds[round].rps / nginx_rounds[round].rps
        );
    }
    let ratios: Vec<f64> = hot_rounds.iter().zip(&nginx_rounds).map(|(a, b)| a.rps / b.rps).collect();
    let a = median(hot_rounds);
    let b = median(nginx_rounds);

    // Memory per hot entry: the responder's hot set, in process, filled with a real response.
    let id0 = cert_id(&f, 0)?;
    let (one, tail) = validator::stateless::check_stored_parts(&sample, &id0, now + 1)
        .map_err(|e| anyhow::anyhow!("the stored response does not check: {e:?}"))?;
    let hot = validator::hot::HotSet::new(usize::MAX);
    let before = rss_kib();
    for i in 0..HOT_ENTRIES {
        let mut k = keys[0].clone();
        k.extend_from_slice(&(i as u32).to_be_bytes());
        let c = validator::responder::Cached::stored(
            axum::body::Bytes::copy_from_slice(&one.der),
            one.this_update,
            one.next_update,
            one.etag.clone(),
            one.status,
        );
        hot.insert(&k, &c, tail, id0.issuer_name_hash.as_bytes());
    }
    let per_entry = (rss_kib().saturating_sub(before) * 1024) as f64 / HOT_ENTRIES as f64;
    let sample_full = hot.get(&[&keys[0][..], &0u32.to_be_bytes()].concat()).context("the hot set lost an entry")?;
    ensure!(sample_full.to_cached().der[..] == sample[1..], "a hot entry is not the stored response byte for byte");
    ensure!(hot.len() == HOT_ENTRIES, "hot set kept {} of {HOT_ENTRIES}", hot.len());
    drop(hot);

    // Cold misses: a responder without a hot set, each answer a store read + parse + check.
    let cold = StoreResponder::new(Arc::new(store.clone()), 0);
    let reqs: Vec<Vec<u8>> = (0..f.serials.len())
        .map(|i| {
            let id = cert_id(&f, i)?;
            Ok(der::Encode::to_der(&validator::ocsp::OcspRequest {
                tbs_request: validator::ocsp::TbsRequest {
                    version: validator::ocsp::Version::V1,
                    requestor_name: None,
                    request_list: vec![validator::ocsp::Request { req_cert: id, single_request_extensions: None }],
                    request_extensions: None,
                },
                optional_signature: None,
            })?)
        })
        .collect::<Result<_>>()?;
    let mut miss = Vec::new();
    for _ in 0..2 {
        for r in &reqs {
            let t = Instant::now();
            let ans = cold.answer(r, identity::http::now()).await;
            miss.push(t.elapsed().as_secs_f64() * 1000.0);
            ensure!(matches!(ans, validator::responder::Answer::Cached(_)), "a cold miss was not served");
        }
    }
    miss.sort_by(f64::total_cmp);

    // Revocation to visible on both (hot) responders.
    let ca = ca::authority::Authority::open(
        ca::schema::open(&f.db_path).await?,
        ca::keystore::KeyStore::soft(&d("keys"), net::secret::Secret::new(PASS.as_bytes().to_vec()))?,
        now,
    )
    .await?;
    let mut visible = Vec::new();
    for i in 0..REVOCATIONS {
        let t = Instant::now();
        ca.revoke("bench", &f.serials[i], ca::crl::Reason::KeyCompromise, "bench", identity::http::now()).await?;
        let mut seen = [false, false];
        while !seen.iter().all(|s| *s) {
            ensure!(t.elapsed() < Duration::from_secs(30), "revocation {i} not visible within 30 s");
            for (j, b) in bases.iter().enumerate() {
                if !seen[j] {
                    let r = http.get(format!("{b}/ocsp/{}", f.paths[i])).send().await?.bytes().await?;
                    seen[j] = revoked(&r);
                }
            }
            if !seen.iter().all(|s| *s) {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        visible.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    visible.sort_by(f64::total_cmp);
    let health = http.get(format!("{}/health", bases[1])).send().await?.text().await?;
    eprintln!("second responder at the end: {}", health.trim());

    println!(
        "OCSP store benchmark: {} certificates (RSA-2048 responder), Redis Cluster of 3 masters, 1 signer, 2 \
         stateless responders; wrk -t2 -c{} -d{DURATION}, GET, {ROUNDS} rounds each (alternating; the median round \
         shown); {threads} cores shared by everything\n",
        f.serials.len(),
        super::ocsp::CONNECTIONS
    );
    println!("| measure | value | target |");
    println!("|---|---:|---|");
    println!(
        "| warm responder (hot set), requests/s · p50 · p99 | {:.0} · {:.2} ms · {:.2} ms {} | — |",
        a.rps, a.p50_ms, a.p99_ms, a.errors
    );
    println!(
        "| nginx, the same response bytes as static files, requests/s · p50 · p99 | {:.0} · {:.2} ms · {:.2} ms {} | ceiling |",
        b.rps, b.p50_ms, b.p99_ms, b.errors
    );
    println!(
        "| responder / nginx: medians; per round | {:.2}×; {} | ≥ 0.85× |",
        a.rps / b.rps,
        ratios.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(", ")
    );
    println!("| response size (DER, with the responder certificate) | {} B | — |", sample.len() - 1);
    println!("| hot set memory per entry (RSS growth / {HOT_ENTRIES} entries) | {per_entry:.0} B | ≤ 1024 B |");
    println!(
        "| cold miss (store read + parse + CertID check), p50 · p99 of {} | {:.3} ms · {:.3} ms | p99 < 2 ms |",
        miss.len(),
        pct(&miss, 0.5),
        pct(&miss, 0.99)
    );
    println!(
        "| revocation → revoked on both responders, p50 · p99 of {REVOCATIONS} (signer polls every 50 ms) | {:.0} ms · {:.0} ms | p99 < 1 s |",
        pct(&visible, 0.5),
        pct(&visible, 0.99)
    );
    drop(responders);
    Ok(())
}

fn cert_id(f: &super::ocsp::Fixture, i: usize) -> Result<validator::ocsp::CertId> {
    Ok(validator::responder::cert_id(Alg::Sha1, &f.issuer, &hex::decode(&f.serials[i])?)?)
}
