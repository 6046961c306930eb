//! `jpki bench metrics`: what recording metrics costs on the hottest route. Two `jpki serve
//! validator` processes serve the same CA database and responder key (the [`super::ocsp`]
//! fixture: 1,000 certificates, pre-signed answers): one with `JPKI_METRICS_LISTEN` set (the
//! Prometheus recorder installed: every request counted and timed, every OCSP answer counted),
//! one without (no recorder: each `metrics::…!` call is a no-op). `wrk` loads their OCSP GET
//! route in alternating rounds (off, on, off, on, …) so that both see the same machine state;
//! the table gives the median, min and max requests/s and the median p50/p99 of each, and the
//! ratio of the medians. The recording process is scraped at the end to prove it recorded.

use std::process::{Command, Stdio};

use anyhow::{Context, Result, ensure};

use super::ocsp::{CONNECTIONS, Load, check, fixture, wait_http, wrk};
use crate::proc::Kill;

/// Rounds per process.
const ROUNDS: usize = 5;
/// Load per round.
const DURATION: &str = "5s";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Runs the benchmark and prints the table.
pub async fn run() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let now = identity::http::now();
    let f = fixture(dir.path(), now).await?;
    let responders = dir.path().join("v");
    let serve = |port: u16, metrics: Option<u16>| -> Result<Kill> {
        let mut c = Command::new(std::env::current_exe()?);
        c.args(["serve", "validator", "--ca-db", &f.db_path, "--responders"])
            .arg(&responders)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("JPKI_VALIDATOR_PASSPHRASE", "benchmark passphrase")
            .env("RUST_LOG", "warn")
            .env_remove("JPKI_METRICS_LISTEN")
            .stderr(Stdio::null());
        if let Some(m) = metrics {
            c.env("JPKI_METRICS_LISTEN", format!("127.0.0.1:{m}"));
        }
        Ok(Kill(c.spawn().context("cannot start jpki serve validator")?))
    };
    let (p_off, p_on, p_metrics) = (crate::proc::free_port()?, crate::proc::free_port()?, crate::proc::free_port()?);
    let _off = serve(p_off, None)?;
    let _on = serve(p_on, Some(p_metrics))?;
    let (off_base, on_base) = (format!("http://127.0.0.1:{p_off}"), format!("http://127.0.0.1:{p_on}"));
    wait_http(&format!("{off_base}/health"))?;
    wait_http(&format!("{on_base}/health"))?;
    wait_http(&format!("http://127.0.0.1:{p_metrics}/ready"))?;
    check(&format!("{off_base}/ocsp/{}", f.paths[0]))?;
    check(&format!("{on_base}/ocsp/{}", f.paths[0]))?;

    let bar = crate::progress::Bar::new("bench metrics", "rounds");
    let (mut off, mut on): (Vec<Load>, Vec<Load>) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        bar.set(round as u64, ROUNDS as u64);
        off.push(wrk(&off_base, "/ocsp/", &f.paths, dir.path(), "off", DURATION)?);
        on.push(wrk(&on_base, "/ocsp/", &f.paths, dir.path(), "on", DURATION)?);
    }
    bar.set(ROUNDS as u64, ROUNDS as u64);
    bar.finish(format_args!("{ROUNDS} rounds of {DURATION} per process"));

    // The recording process recorded every answer (its counters), the other has no listener.
    let body = String::from_utf8(
        Command::new("curl").args(["-sf", &format!("http://127.0.0.1:{p_metrics}/metrics")]).output()?.stdout,
    )?;
    let cached: f64 = body
        .lines()
        .find(|l| l.starts_with("jpki_ocsp_answers_total{path=\"cached\"}"))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
        .context("the recording validator has no OCSP answer counter")?;
    ensure!(cached > 0.0, "the recording validator counted no answers");

    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "Metrics overhead: jpki serve validator, OCSP GET of {} pre-signed answers, wrk -t2 -c{CONNECTIONS} -d{DURATION}, \
         {ROUNDS} alternating rounds per process, {threads} cores shared by servers and load\n",
        f.paths.len()
    );
    println!("| recording | requests/s (median) | min | max | p50 (median) | p99 (median) | errors |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    let row = |name: &str, v: &[Load]| {
        let rps: Vec<f64> = v.iter().map(|l| l.rps).collect();
        let errors: Vec<&str> = v.iter().map(|l| l.errors.as_str()).filter(|e| !e.is_empty()).collect();
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} | {:.2} ms | {:.2} ms | {} |",
            median(rps.clone()),
            rps.iter().copied().fold(f64::INFINITY, f64::min),
            rps.iter().copied().fold(0.0, f64::max),
            median(v.iter().map(|l| l.p50_ms).collect()),
            median(v.iter().map(|l| l.p99_ms).collect()),
            errors.join("; ")
        );
        median(rps)
    };
    let a = row("off (no JPKI_METRICS_LISTEN: no recorder)", &off);
    let b = row("on (JPKI_METRICS_LISTEN: Prometheus recorder)", &on);
    println!("| ratio on/off | {:.3} | | | | | |", b / a);
    println!("\n(the recording process counted {cached:.0} cached OCSP answers)");
    Ok(())
}
