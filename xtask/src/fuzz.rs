//! `cargo xtask fuzz`: builds every fuzz target of the project's cargo-fuzz crates and runs each
//! for a bounded time, on the stable toolchain.
//!
//! The fuzz crates (`FUZZ_CRATES`) are not workspace members (libFuzzer's `main` and the
//! coverage instrumentation are no part of a normal build). Each keeps a small seed corpus in
//! the repository (`<crate>/seeds/<target>/`); a run writes what it finds to
//! `target/fuzz/corpus/<crate>/<target>/` (kept between local runs, fresh in CI) and a crashing
//! input to `target/fuzz/artifacts/<crate>/<target>/`, whose path the step prints — a crash, a
//! timeout (an input taking more than `PER_INPUT_TIMEOUT` seconds) or running out of memory
//! fails it.
//!
//! Stable, not nightly: cargo-fuzz (from crates.io) with `--sanitizer none` passes only stable
//! `-C` flags for the coverage instrumentation (`-Cpasses=sancov-module` and its
//! `-Cllvm-args`), so no nightly toolchain is needed — a fresh machine has only stable and
//! cannot fetch another. Without AddressSanitizer a fuzzer finds panics, failed assertions,
//! overflows (debug assertions are on), hangs and memory blow-ups, not out-of-bounds accesses in
//! C code; the project forbids `unsafe` Rust, so for its own code that is no loss.
//! The builds are unoptimised (`--dev`: debug assertions and overflow checks on) unless
//! `release` is asked for: in CI the build of three dependency trees dominates a run of
//! seconds, and cargo-fuzz's default (optimised, one codegen unit) costs the most to build.
//! All three crates build into one target dir (`target/fuzz`), so what they share is built once.
//! Each crate's Cargo.lock is the workspace's, copied in before the build (it is not committed
//! there), so the fuzzers run the dependency versions the product ships with.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context, bail};

use crate::{
    cmd::{cargo, project_root, run, run_quiet, target_dir},
    install::install_cargo_tool,
};

/// The cargo-fuzz crates, relative to the project root.
pub(crate) const FUZZ_CRATES: &[&str] = &["card/fuzz", "identity/fuzz", "validator/fuzz"];

/// Seconds each target runs in CI (`cargo xtask ci`): eight targets, a little over two minutes
/// of fuzzing in all (the build comes on top).
pub(crate) const CI_SECONDS: u32 = 15;

/// libFuzzer's limit on one input (seconds): every parser here has bounded work per input.
const PER_INPUT_TIMEOUT: u32 = 10;

/// cargo-fuzz, pinned.
const CARGO_FUZZ: (&str, &str) = ("cargo-fuzz", "0.13.2");

/// Builds every target of every fuzz crate, then runs each (or only those in `only`) for
/// `seconds`. Fails on the first build error; runs every target even after one fails, and
/// fails if any did, naming each crash's input file.
pub(crate) fn fuzz(seconds: u32, release: bool, only: &[&str]) -> anyhow::Result<()> {
    let profile = if release { "--release" } else { "--dev" };
    install_cargo_tool(CARGO_FUZZ.0, CARGO_FUZZ.1, &["fuzz", "--version"])?;
    let root = project_root();
    let build_dir = target_dir().join("fuzz");
    let mut targets = Vec::new();
    for krate in FUZZ_CRATES {
        let dir = root.join(krate);
        fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock"))
            .with_context(|| format!("could not seed {krate}/Cargo.lock"))?;
        let list = run_quiet(cargo_fuzz("list", &build_dir).arg("--fuzz-dir").arg(&dir))?;
        let names: Vec<String> = list.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
        if names.is_empty() {
            bail!("{krate} has no fuzz targets");
        }
        let started = Instant::now();
        run(cargo_fuzz("build", &build_dir)
            .args([profile, "--sanitizer", "none", "--fuzz-dir"])
            .arg(&dir)
            .arg("--target-dir")
            .arg(&build_dir))?;
        println!("built {krate}: {} in {:.0}s", names.join(", "), started.elapsed().as_secs_f64());
        for name in names {
            if only.is_empty() || only.contains(&name.as_str()) {
                targets.push((*krate, name));
            }
        }
    }
    if let Some(unknown) = only.iter().find(|o| !targets.iter().any(|(_, n)| n == *o)) {
        bail!("no fuzz target named {unknown}");
    }

    let mut failed = Vec::new();
    for (krate, name) in &targets {
        let dir = root.join(krate);
        let seeds = dir.join("seeds").join(name);
        if !seeds.is_dir() {
            bail!("{krate}: target {name} has no seed corpus in {}", seeds.display());
        }
        let corpus = build_dir.join("corpus").join(krate).join(name);
        let artifacts = build_dir.join("artifacts").join(krate).join(name);
        fs::create_dir_all(&corpus)?;
        fs::create_dir_all(&artifacts)?;
        let before = files_in(&artifacts);
        let mut cmd = cargo_fuzz("run", &build_dir);
        cmd.args([profile, "--sanitizer", "none", "--fuzz-dir"])
            .arg(&dir)
            .arg("--target-dir")
            .arg(&build_dir)
            .arg(name)
            .arg(&corpus)
            .arg(&seeds)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg(format!("-timeout={PER_INPUT_TIMEOUT}"))
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .arg("-print_final_stats=1");
        println!("\n--- fuzz {krate} {name} ({seconds}s)");
        if let Err(err) = run(&mut cmd) {
            let found: Vec<PathBuf> = files_in(&artifacts).into_iter().filter(|f| !before.contains(f)).collect();
            for f in &found {
                eprintln!("fuzz target {name} ({krate}) failed on the input {}", f.display());
                eprintln!(
                    "  reproduce: cargo fuzz run {profile} --sanitizer none --fuzz-dir {krate} {name} {}",
                    f.display()
                );
            }
            if found.is_empty() {
                eprintln!("fuzz target {name} ({krate}) failed and wrote no input: {err:#}");
            }
            failed.push(format!("{krate}/{name}"));
        }
    }
    if !failed.is_empty() {
        bail!("fuzz targets failed: {} (inputs printed above)", failed.join(", "));
    }
    println!("{} fuzz targets ran {seconds}s each without a failure", targets.len());
    Ok(())
}

/// `cargo fuzz <subcommand>` in the project root, building into `build_dir`.
fn cargo_fuzz(subcommand: &str, build_dir: &Path) -> Command {
    let mut cmd = cargo("fuzz");
    cmd.arg(subcommand).env("CARGO_TARGET_DIR", build_dir);
    cmd
}

/// The files in `dir` (none if it does not exist).
fn files_in(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default()
}
