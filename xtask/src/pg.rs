//! Throwaway PostgreSQL 15 clusters for the tests (`cargo xtask pg`, `ci`, `bench identity`).

use std::{
    env,
    fs::{self, File},
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{Context, bail};

use crate::{
    cmd::{free_port, run, run_quiet, show, uid},
    install::install_missing,
};

/// Where Debian puts the PostgreSQL 15 server binaries when `pg_config` does not say.
const PG_BINDIR: &str = "/usr/lib/postgresql/15/bin";

/// Starts a throwaway cluster, runs the command it builds, stops the cluster, and exits with the
/// command's exit code.
pub(crate) fn with_cluster(command: impl FnOnce(&Cluster) -> Command) -> anyhow::Result<ExitCode> {
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
pub(crate) struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    /// The user that runs initdb and pg_ctl when we are root (they refuse to run as root).
    user: Option<String>,
    port: u16,
    /// Held while we own the cluster; the kernel drops it when we die, however we die.
    _lock: Option<File>,
}

impl Cluster {
    pub(crate) fn start() -> anyhow::Result<Cluster> {
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
    pub(crate) fn url(&self) -> String {
        format!("postgres://jpki@127.0.0.1:{}/postgres", self.port)
    }

    /// Points `cmd` (and anything it runs, e.g. `psql` with no arguments) at this cluster only.
    pub(crate) fn set_env(&self, cmd: &mut Command) {
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

    pub(crate) fn stop(mut self) -> anyhow::Result<()> {
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
