//! `cargo xtask ci`: the single test command, and the table of its steps.

use std::{
    fs,
    process::ExitCode,
    time::{Duration, Instant},
};

use crate::{
    cmd::{cargo, project_root, run},
    conformance::{limbo_run, pkits},
    fuzz, guard,
    install::{
        axe_js, install_missing, install_npm_tools, install_oracles, install_python_tools, install_rust_components,
    },
    main_job::{main_job, scan_logs},
    pcscd::Pcscd,
    pg::Cluster,
    test_report::run_tests,
};

/// `cargo xtask ci`: every step runs even when an earlier one failed (except a failed install),
/// so one run shows every problem; the summary at the end decides the exit code.
pub(crate) fn ci(no_pg: bool) -> anyhow::Result<ExitCode> {
    let mut summary = Summary::default();
    let installed = summary.step("install missing packages", || {
        install_missing(!no_pg)?;
        install_python_tools()?;
        install_oracles()?;
        install_npm_tools()?;
        install_rust_components()
    });
    if !installed {
        return Ok(summary.finish());
    }
    summary.step("cargo fmt", || run(&mut cargo("fmt --all -- --check")));
    summary.step("tidy", || crate::tidy::run(&project_root()));
    summary.step("cargo clippy", || run(&mut cargo("clippy --workspace --all-targets -- -D warnings")));
    // Guard rails (docs/operations.md "Guard rails in CI"); their tools install when missing.
    summary.step("cargo doc -D warnings", guard::doc);
    summary.step("cargo deny", guard::deny);
    if guard::advisory_db_reachable() {
        summary.step("cargo deny advisories", guard::deny_advisories);
    } else {
        summary.skip("cargo deny advisories", "the RustSec database cannot be fetched here");
    }
    summary.step("cargo machete", guard::machete);

    let mut pcscd = None;
    summary.step("pcscd + vpcd up", || {
        pcscd = Some(Pcscd::up()?);
        Ok(())
    });
    // Every test binary runs even after one fails, so one CI run shows every failure.
    let mut test = cargo("test --workspace --all-targets --no-fail-fast");
    test.env("RUST_BACKTRACE", "1");
    // The browser tests inject this axe-core (installed above) into every page they check.
    test.env("JPKI_AXE_JS", axe_js());
    if no_pg {
        summary.skip("postgres", "--no-pg: storage tests run on SQLite only");
        test.env_remove("JPKI_TEST_PG_URL");
        summary.step("cargo test", || run_tests(&mut test));
    } else {
        let mut cluster = None;
        // The primary and its hot standby (the failover drill and the standby reads need it).
        summary.step("postgres start", || {
            let mut c = Cluster::start()?;
            c.start_standby()?;
            cluster = Some(c);
            Ok(())
        });
        match cluster {
            Some(cluster) => {
                cluster.set_env(&mut test);
                summary.step("cargo test", || run_tests(&mut test));
                summary.step("postgres stop", || cluster.stop());
            }
            None => summary.skip("cargo test", "not run: PostgreSQL did not start"),
        }
    }

    summary.step("golden vectors (--check)", || crate::golden::run(true));

    // The README's main job, as a smoke test of the whole story on SQLite; kept, so that its
    // logs can be scanned for personal data and secrets.
    let demo_dir = project_root().join("target/demo-run");
    summary.step("main job (jpki demo)", || main_job(&demo_dir));
    summary.step("main job's logs: no personal data, no secrets", || scan_logs(&demo_dir));
    if let Some(p) = pcscd {
        summary.step("pcscd down", || p.stop());
    }

    summary.step("conformance: NIST PKITS", pkits);
    match fs::canonicalize(project_root().join("../shared/conformance/x509-limbo.json")) {
        Ok(limbo) => {
            summary.step("conformance: x509-limbo", || limbo_run(&limbo));
        }
        Err(_) => summary.skip("conformance: x509-limbo", "../shared/conformance/x509-limbo.json not found"),
    }
    summary.step("fuzz (bounded)", || fuzz::fuzz(fuzz::CI_SECONDS, false, &[]));
    Ok(summary.finish())
}

/// Free space (GB) on the disk of the target directory, from `df`; a full disk fails builds and
/// tests in ways that look like anything else, so every step's row shows it.
fn free_gb() -> Option<f64> {
    let out = std::process::Command::new("df").arg("-Pk").arg(crate::cmd::target_dir().parent()?).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let kb: f64 = text.lines().nth(1)?.split_whitespace().nth(3)?.parse().ok()?;
    Some(kb / 1024.0 / 1024.0)
}

/// The steps of `cargo xtask ci` so far, for the table at the end.
#[derive(Debug, Default)]
struct Summary {
    rows: Vec<(String, String, Duration, Option<f64>)>,
    failed: usize,
    /// Each failed step's error, repeated after the table where the last lines of a log show it.
    errors: Vec<(String, String)>,
}

impl Summary {
    /// Runs one step with a banner before and its result after; returns whether it passed.
    fn step(&mut self, name: &str, f: impl FnOnce() -> anyhow::Result<()>) -> bool {
        println!("\n==> {name}");
        let started = Instant::now();
        let result = f();
        let took = started.elapsed();
        let status = match &result {
            Ok(()) => "ok".to_owned(),
            Err(err) => {
                self.failed += 1;
                eprintln!("error: {name}: {err:#}");
                self.errors.push((name.to_owned(), format!("{err:#}")));
                "FAILED".to_owned()
            }
        };
        println!("<== {name}: {status} ({:.1}s)", took.as_secs_f64());
        self.rows.push((name.to_owned(), status, took, free_gb()));
        result.is_ok()
    }

    fn skip(&mut self, name: &str, why: &str) {
        self.rows.push((name.to_owned(), format!("skipped ({why})"), Duration::ZERO, None));
    }

    fn finish(self) -> ExitCode {
        let total: Duration = self.rows.iter().map(|(_, _, took, _)| *took).sum();
        println!("\n==> summary (free: the disk space left after the step)");
        for (name, status, took, free) in &self.rows {
            let free = free.map(|gb| format!("{gb:.1} GB free")).unwrap_or_default();
            println!("  {name:<26} {:>7.1}s  {status:<8} {free}", took.as_secs_f64());
        }
        println!("  {:<26} {:>7.1}s", "total", total.as_secs_f64());
        for (name, err) in &self.errors {
            println!("\n==> {name} failed:");
            for line in err.lines().take(80) {
                println!("  {line}");
            }
        }
        if self.failed == 0 {
            println!("\nci passed");
            ExitCode::SUCCESS
        } else {
            println!("\nci FAILED: {} step(s) failed", self.failed);
            ExitCode::FAILURE
        }
    }
}
