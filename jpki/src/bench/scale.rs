//! `jpki bench scale` (issue 14): how the parts grow with national sizes, as Markdown tables
//! and PNG curves. Parts, each selectable: `crl` (encode + sign time and peak memory of one
//! CRL at 10^5…10^7 entries, each in a child process; shard sizes; a verifier's index of one
//! shard), `ocsp` (the in-memory responder, `jpki serve validator`, at 10^5 and 10^6
//! certificates, 10^7 with `--max 10000000`: memory per certificate, cold start, cached
//! requests/s under wrk against nginx serving the same bytes as a static file; re-signing
//! rate per core per responder algorithm) and `identity` (the national tier on PostgreSQL
//! with a bulk-loaded synthetic state of 10^5, 10^6 (10^7) residents: notices applied/s through
//! `replica::apply_batch`, provision latency through `Provider::query`, disclosure reports,
//! yearly statistics). Synthetic data comes from [`synth`], deterministic from a seed.

mod crl;
mod identity;
mod ocsp;
mod plot;
mod stats;
mod synth;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Subcommand, ValueEnum};

/// The parts of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Part {
    /// CRL encoding, shards, a verifier's index.
    Crl,
    /// The OCSP responder.
    Ocsp,
    /// The identity national tier on PostgreSQL.
    Identity,
}

/// Arguments of `jpki bench scale`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Parts to run (default: all).
    #[arg(value_enum)]
    pub parts: Vec<Part>,
    /// Largest size measured for the OCSP and identity curves (10^7 takes long: a
    /// 10-million-certificate responder pre-signs 20 M responses).
    #[arg(long, default_value_t = 1_000_000)]
    pub max: u64,
    /// PostgreSQL admin URL (the identity part creates and drops its databases there).
    #[arg(long, env = "JPKI_TEST_PG_URL")]
    pub pg_url: Option<String>,
    /// Where the PNG plots go.
    #[arg(long, default_value = "docs/img")]
    pub img_dir: PathBuf,
    /// Also write the tables (Markdown, with the plots linked) to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The child processes of the benchmark (each measures its own peak memory).
#[derive(Debug, Subcommand)]
pub enum Child {
    /// Writes one CRL and prints what it took.
    Crl {
        /// Revoked serials generated.
        #[arg(long)]
        entries: u64,
        /// Shards they are spread over (1: all in one CRL).
        #[arg(long, default_value_t = 1)]
        shards: u64,
        /// The shard written.
        #[arg(long, default_value_t = 0)]
        shard: u64,
        /// Working directory (the CRL is `crl.der` in it).
        #[arg(long)]
        dir: PathBuf,
    },
    /// Reads and indexes a CRL and prints what it took.
    Index {
        /// The CRL (DER).
        #[arg(long)]
        file: PathBuf,
    },
}

/// The tables and plots of a run.
pub struct Report {
    img: PathBuf,
    md: String,
}

impl Report {
    /// Prints a section and keeps it for `--out`.
    pub fn section(&mut self, title: &str, body: &str) {
        let s = format!("### {title}\n\n{body}\n");
        println!("{s}");
        self.md.push_str(&s);
    }

    /// Draws a log-log plot into the image directory and links it.
    pub fn plot(&mut self, file: &str, title: &str, x: &str, y: &str, series: Vec<plot::Series>) -> Result<()> {
        let path = self.img.join(file);
        plot::loglog(&path, title, x, y, &series)?;
        let _ = writeln!(self.md, "![{title}](img/{file})\n");
        println!("(plot: {})\n", path.display());
        Ok(())
    }
}

/// A line of /proc/self/status in KiB.
fn status_kib(field: &str) -> u64 {
    proc_status_kib(Path::new("/proc/self/status"), field)
}

/// A `Vm…:` line of a /proc/…/status file, in KiB (0 if absent).
pub(crate) fn proc_status_kib(path: &Path, field: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// This process's peak resident set (VmHWM), KiB.
pub(crate) fn peak_rss_kib() -> u64 {
    status_kib("VmHWM:")
}

/// This process's resident set now (VmRSS), KiB.
pub(crate) fn rss_kib() -> u64 {
    status_kib("VmRSS:")
}

/// Runs a child job (`jpki bench scale-child …`).
pub async fn child(job: Child) -> Result<()> {
    match job {
        Child::Crl { entries, shards, shard, dir } => crl::child_crl(entries, shards, shard, &dir),
        Child::Index { file } => crl::child_index(&file),
    }
}

/// Runs the benchmark.
pub async fn run(a: Args) -> Result<()> {
    let parts = if a.parts.is_empty() { vec![Part::Crl, Part::Ocsp, Part::Identity] } else { a.parts.clone() };
    if parts.contains(&Part::Identity) && a.pg_url.is_none() {
        bail!(
            "the identity part needs PostgreSQL: --pg-url or JPKI_TEST_PG_URL (`cargo xtask bench scale` starts a cluster)"
        );
    }
    std::fs::create_dir_all(&a.img_dir).with_context(|| format!("creating {}", a.img_dir.display()))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut report = Report { img: a.img_dir.clone(), md: String::new() };
    let head = format!(
        "jpki bench scale: {cores} cores ({}), {:.1} GB memory, max size {}\n",
        cpu_model(),
        proc_status_kib(Path::new("/proc/meminfo"), "MemTotal:") as f64 / 1024.0 / 1024.0,
        stats::human_count(a.max)
    );
    println!("{head}");
    report.md.push_str(&head);
    report.md.push('\n');
    let sizes = |from: &[u64]| -> Vec<u64> { from.iter().copied().filter(|&n| n <= a.max.max(100_000)).collect() };
    for p in parts {
        match p {
            Part::Crl => crl::run(&[100_000, 1_000_000, 10_000_000], &mut report)?,
            Part::Ocsp => ocsp::run(&sizes(&[100_000, 1_000_000, 10_000_000]), &mut report).await?,
            Part::Identity => {
                identity::run(
                    a.pg_url.as_deref().unwrap_or_default(),
                    &sizes(&[100_000, 1_000_000, 10_000_000]),
                    &mut report,
                )
                .await?
            }
        }
    }
    if let Some(out) = &a.out {
        std::fs::write(out, &report.md).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
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
