//! `cargo xtask`: the project's build system (`ci`, `pg -- <command>`, `bench identity`, `bench scale`).
//!
//! `cargo xtask ci` is the single test command, locally and in CI (`.ci/run`): it installs the
//! missing Debian packages, checks formatting and lints, and runs every test on SQLite and on a
//! throwaway PostgreSQL 15 cluster that it starts on a free loopback port and always deletes.
//! Only std and anyhow; everything else is done by running cargo, apt-get and the PostgreSQL tools.
//!
//! This file parses the arguments and dispatches; each concept has its module: `ci` (the steps and
//! their summary), `install` (apt, pip, the oracles' venv, rustup components), `pg` (throwaway
//! clusters), `pcscd` (the PC/SC test stack), `main_job` (the main job and its log scan),
//! `conformance` (PKITS, x509-limbo) and `cmd` (running commands).

mod ci;
mod cmd;
mod conformance;
mod fuzz;
mod golden;
mod guard;
mod install;
mod main_job;
mod pcscd;
mod pg;
mod test_report;
mod tidy;

use std::{
    env, fs,
    path::Path,
    process::{Command, ExitCode},
};

use anyhow::{Context, bail};

use crate::{
    ci::ci,
    cmd::{cargo, project_root, run},
    conformance::{limbo_run, pkits},
    install::{install_missing, install_npm_tools, install_oracles, install_python_tools},
    pcscd::Pcscd,
    pg::with_cluster,
};

const USAGE: &str = "\
usage: cargo xtask <command>

  ci [--no-pg]              the single test command: install missing packages, fmt, clippy, and
                            the tests on SQLite and (unless --no-pg) on a throwaway PostgreSQL 15
  pg [--standby] -- <command...>
                            run <command> against a throwaway PostgreSQL 15 cluster; it gets
                            JPKI_TEST_PG_URL and PGHOST/PGPORT/PGUSER/PGDATABASE; with --standby
                            also a hot standby streaming from it: JPKI_TEST_PG_STANDBY_URL,
                            JPKI_TEST_PG_STANDBY_DATA, and the scripts JPKI_TEST_PG_STANDBY_PROMOTE
                            (pg_ctl promote) and JPKI_TEST_PG_STANDBY_RENEW (a fresh standby)
  bench identity [args...]  `cargo run --release -p jpki -- bench identity --pg-url <url> [args...]`
                            against a throwaway PostgreSQL 15 cluster
  bench scale [crl|ocsp|identity...] [--max N]
                            how the parts grow with national sizes (default up to 10^6, about 15 min;
                            --max 10000000 for 10^7): Markdown tables, PNG plots in docs/img/scale-*.png;
                            the identity part on a throwaway PostgreSQL 15 cluster (docs/scale.md)
  bench ca                  CA issuance rate vs raw OpenSSL RSA-2048 signing; 1M-entry CRL encoding
  bench issuance            a window's issuance through the CA service vs the same in process
  bench rotation            per CA algorithm: issuance vs raw signing, certificate/CRL/OCSP sizes,
                            OCSP re-signing; 1,000,000 certificates compromised and served revoked
  bench resdoc              signed residence-certificate PDFs per second per core, PDF size; vs the
                            sign step alone, raw key signing, and pyHanko's CLI signing the same PDF
  bench ocsp                our OCSP responder vs `openssl ocsp -multi 2` under wrk; 1M-entry CRL index
  bench ocsp-store          keyless responders over a Redis Cluster: hot set vs nginx, memory, misses, revocation
  bench metrics             the validator's OCSP GET under wrk with metrics recording on and off
  limbo                     x509-limbo (../shared/conformance) through `jpki verify cert`
  pkits                     NIST PKITS (PyPI cryptography-vectors, expectations from pyhanko-certvalidator)
  oracles                   install the pinned ML-DSA verifiers (cryptography, Go) into target/oracles/venv
  browser                   install what the browser tests need: Chromium, Playwright, axe-core (target/npm)
                            through `jpki verify cert`; pass counts per section
  bench peak [--pg] [args]  a March-peak day end to end (47 prefectures' nodes, municipalities, national,
                            CA, validator over mutual TLS): commit → national, commit → OCSP revoked
  bench card                card issuance (APDUs, wall time) and signatures/s through pcscd + vpcd
  demo                      the README's main job: install what is missing, bring up pcscd + vpcd,
                            `cargo run --release -p jpki -- demo`
  pcsc up|down|status       the PC/SC test stack (pcscd with the vpcd readers), without systemd
  doc                       `cargo doc --workspace --no-deps` with rustdoc warnings denied
  deny                      `cargo deny check` (deny.toml): bans, licenses, sources; advisories if the
                            RustSec database can be fetched
  machete                   `cargo machete`: dependencies no crate uses
  fuzz [--release] [--seconds N] [TARGET...]
                            build every cargo-fuzz target (card, identity, validator; stable toolchain,
                            unoptimised unless --release) and run each (or the named ones) N seconds
                            (default 15) from its seeds; a crash fails and its input's path is printed
  tidy                      `//!` lines, SQLite/PostgreSQL migration parity, no clock reads in pure modules
  golden [--check]          regenerate the golden vectors (validator/tests/golden); --check fails on a diff
";

fn main() -> ExitCode {
    main_inner().unwrap_or_else(|err| {
        eprintln!("error: {err:#}");
        ExitCode::FAILURE
    })
}

/// `cargo xtask pg [--standby] -- COMMAND…`.
fn pg_run(standby: bool, command: &[&str]) -> anyhow::Result<ExitCode> {
    let Some((program, rest)) = command.split_first() else {
        bail!("`cargo xtask pg` needs a command to run\n\n{USAGE}");
    };
    with_cluster(standby, |_| {
        let mut cmd = Command::new(program);
        cmd.args(rest);
        cmd
    })
}

fn main_inner() -> anyhow::Result<ExitCode> {
    let args: Vec<String> = env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["ci"] => ci(false),
        ["ci", "--no-pg"] => ci(true),
        ["pg", "--standby", "--", command @ ..] | ["pg", "--standby", command @ ..] => pg_run(true, command),
        ["pg", "--", command @ ..] | ["pg", command @ ..] => pg_run(false, command),
        ["demo", rest @ ..] => {
            install_missing(false)?;
            let _pcscd = Pcscd::up()?;
            let status = cargo("run --release -p jpki -- demo").args(rest).status()?;
            Ok(if status.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        ["pcsc", "up"] => {
            install_missing(false)?;
            Pcscd::up()?.detach();
            Ok(ExitCode::SUCCESS)
        }
        ["pcsc", "down"] => {
            Pcscd::down()?;
            Ok(ExitCode::SUCCESS)
        }
        ["pcsc", "status"] => {
            println!(
                "{}",
                if Pcscd::ready() {
                    "pcscd is up with the vpcd readers"
                } else {
                    "pcscd is not serving the vpcd readers"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        ["bench", "card"] => {
            install_missing(false)?;
            let _pcscd = Pcscd::up()?;
            let status = cargo("run --release -p jpki -- bench card").status()?;
            Ok(if status.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        ["bench", which @ ("ocsp" | "metrics" | "ocsp-store")] => {
            install_missing(false)?;
            if !Path::new("/usr/bin/wrk").exists() {
                run(Command::new("apt-get").args(["install", "-y", "--no-install-recommends", "wrk"]))?;
            }
            // The static-file ceiling of `bench ocsp-store` (the bench path only).
            if *which == "ocsp-store" && !Path::new("/usr/sbin/nginx").exists() {
                run(Command::new("apt-get").args(["install", "-y", "--no-install-recommends", "nginx"]))?;
            }
            let status = cargo(&format!("run --release -p jpki -- bench {which}")).status()?;
            Ok(if status.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        ["limbo"] => {
            limbo_run(&fs::canonicalize(project_root().join("../shared/conformance/x509-limbo.json"))?)?;
            Ok(ExitCode::SUCCESS)
        }
        ["pkits"] => {
            install_missing(false)?;
            pkits()?;
            Ok(ExitCode::SUCCESS)
        }
        ["oracles"] => {
            install_missing(false)?;
            install_oracles()?;
            Ok(ExitCode::SUCCESS)
        }
        ["browser"] => {
            install_missing(false)?;
            install_python_tools()?;
            install_npm_tools()?;
            Ok(ExitCode::SUCCESS)
        }
        ["fuzz", rest @ ..] => {
            let (release, rest) = match rest {
                ["--release", rest @ ..] => (true, rest),
                rest => (false, rest),
            };
            let (seconds, only) = match rest {
                ["--seconds", n, only @ ..] => (n.parse().with_context(|| format!("--seconds {n}"))?, only),
                only => (fuzz::CI_SECONDS, only),
            };
            install_missing(false)?;
            fuzz::fuzz(seconds, release, only)?;
            Ok(ExitCode::SUCCESS)
        }
        ["doc"] => {
            guard::doc()?;
            Ok(ExitCode::SUCCESS)
        }
        ["deny"] => {
            guard::deny()?;
            if guard::advisory_db_reachable() {
                guard::deny_advisories()?;
            }
            Ok(ExitCode::SUCCESS)
        }
        ["machete"] => {
            guard::machete()?;
            Ok(ExitCode::SUCCESS)
        }
        ["bench", "ca"] => {
            let status = cargo("run --release -p jpki -- bench ca").status()?;
            Ok(if status.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        ["bench", "issuance"] => {
            let status = cargo("run --release -p jpki -- bench issuance").status()?;
            Ok(if status.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        ["bench", "resdoc"] => {
            let status = cargo("run --release -p jpki -- bench resdoc").status()?;
            Ok(if status.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        ["bench", "rotation"] => {
            let status = cargo("run --release -p jpki -- bench rotation").status()?;
            Ok(if status.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        ["bench", "scale", rest @ ..] => {
            install_missing(false)?;
            // wrk loads the OCSP responder and nginx serves the same bytes as a static file.
            for (tool, package) in [("/usr/bin/wrk", "wrk"), ("/usr/sbin/nginx", "nginx")] {
                if !Path::new(tool).exists() {
                    run(Command::new("apt-get").args(["install", "-y", "--no-install-recommends", package]))?;
                }
            }
            with_cluster(false, |cluster| {
                let mut cmd = cargo("run --release -p jpki -- bench scale --pg-url");
                cmd.arg(cluster.url()).args(rest);
                cmd
            })
        }
        ["bench", "peak", "--pg", rest @ ..] => with_cluster(false, |_| {
            let mut cmd = cargo("run --release -p jpki -- bench peak --pg");
            cmd.args(rest);
            cmd
        }),
        ["bench", "peak", rest @ ..] => {
            let status = cargo("run --release -p jpki -- bench peak").args(rest).status()?;
            Ok(if status.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        ["bench", "identity", rest @ ..] => with_cluster(false, |cluster| {
            let mut cmd = cargo("run --release -p jpki -- bench identity --pg-url");
            cmd.arg(cluster.url()).args(rest);
            cmd
        }),
        ["tidy"] => tidy::run(&project_root()).map(|()| ExitCode::SUCCESS),
        ["golden"] => golden::run(false).map(|()| ExitCode::SUCCESS),
        ["golden", "--check"] => golden::run(true).map(|()| ExitCode::SUCCESS),
        [] | ["help" | "-h" | "--help"] => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        _ => bail!("unknown arguments {args:?}\n\n{USAGE}"),
    }
}
