//! Throwaway PostgreSQL 15 clusters for the tests (`cargo xtask pg`, `ci`, `bench identity`),
//! with a hot standby in streaming replication when asked (`cargo xtask pg --standby`, `ci`).

use std::{
    env,
    fs::{self, File},
    os::unix::fs::PermissionsExt as _,
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

/// The physical replication slot the standby streams from.
const SLOT: &str = "jpki_standby";

/// Starts a throwaway cluster (with its hot standby when `standby`), runs the command it builds,
/// stops the cluster, and exits with the command's exit code.
pub(crate) fn with_cluster(standby: bool, command: impl FnOnce(&Cluster) -> Command) -> anyhow::Result<ExitCode> {
    install_missing(true)?;
    let mut cluster = Cluster::start()?;
    if standby {
        cluster.start_standby()?;
    }
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
    /// The hot standby's port, once [`Cluster::start_standby`] started it.
    standby_port: Option<u16>,
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
        let mut cluster = Cluster { dir, bin, user, port, standby_port: None, _lock: None };
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
        // wal_level replica (the default) lets a standby stream; a slot left behind by a promoted
        // standby keeps at most 1 GB of WAL.
        let options = format!(
            "-p {} -k '{}' -c listen_addresses=127.0.0.1 -c fsync=on -c wal_level=replica -c max_slot_wal_keep_size=1GB",
            cluster.port,
            cluster.dir.display()
        );
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

    fn standby_data(&self) -> PathBuf {
        self.dir.join("standby")
    }

    /// Starts a hot standby of this cluster: `pg_basebackup -R` (standby.signal and
    /// primary_conninfo written, WAL streamed during the copy, the physical slot `jpki_standby`
    /// created; `-c fast`: an immediate checkpoint, not one spread over minutes) into
    /// `standby/`, started on its own port with hot_standby on and
    /// hot_standby_feedback (long provision reads are not cancelled by the primary's vacuum),
    /// then waits until its WAL receiver is streaming. fsync is off on the standby: it is a
    /// throwaway copy.
    ///
    /// All of that is the script `renew-standby` in the cluster dir, which a test may run again
    /// to make a fresh standby after it promoted this one (the failover drill does, so that
    /// the pair is a pair again for the tests after it). Tests find the standby through
    /// `JPKI_TEST_PG_STANDBY_URL`, its data dir in `JPKI_TEST_PG_STANDBY_DATA`, and the scripts
    /// `JPKI_TEST_PG_STANDBY_PROMOTE` (`pg_ctl promote -D` as the cluster user) and
    /// `JPKI_TEST_PG_STANDBY_RENEW`.
    pub(crate) fn start_standby(&mut self) -> anyhow::Result<()> {
        let port = free_port()?;
        let (dir, data, bin) = (self.dir.display(), self.standby_data(), self.bin.display());
        let data = data.display();
        let as_user = match &self.user {
            Some(user) => format!("runuser -u {user} --"),
            None => String::new(),
        };
        let renew = format!(
            r#"#!/bin/sh
# (Re)makes the throwaway hot standby of the cluster in {dir} (cargo xtask pg --standby).
set -eu
cd '{dir}'
as_user() {{ {as_user} "$@"; }}
if [ -f '{data}/postmaster.pid' ]; then as_user '{bin}/pg_ctl' -D '{data}' -m immediate -w stop >/dev/null; fi
rm -rf '{data}'
as_user '{bin}/psql' -h 127.0.0.1 -p {primary} -U jpki -d postgres -Atq -c   "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{SLOT}' AND NOT active" >/dev/null
as_user '{bin}/pg_basebackup' -D '{data}' -R -X stream -c fast -C -S {SLOT} -h 127.0.0.1 -p {primary} -U jpki --no-sync
as_user '{bin}/pg_ctl' -D '{data}' -w -l '{dir}/standby.log' start   -o "-p {port} -k '{dir}' -c listen_addresses=127.0.0.1 -c hot_standby=on -c hot_standby_feedback=on -c fsync=off" >/dev/null
i=0
until [ "$(as_user '{bin}/psql' -h 127.0.0.1 -p {port} -U jpki -d postgres -Atc 'SELECT status FROM pg_stat_wal_receiver' 2>/dev/null)" = streaming ]; do
  i=$((i + 1))
  if [ "$i" -gt 600 ]; then
    echo "the standby is not streaming after 60 s" >&2
    cat '{dir}/standby.log' >&2
    exit 1
  fi
  sleep 0.1
done
"#,
            primary = self.port,
        );
        let promote = format!(
            "#!/bin/sh\n# Promotes the throwaway standby (cargo xtask pg --standby).\nexec {as_user} '{bin}/pg_ctl' -D '{data}' -w promote\n"
        );
        for (name, text) in [("renew-standby", renew), ("promote-standby", promote)] {
            let path = self.dir.join(name);
            fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
        }
        self.standby_port = Some(port);
        run_quiet(&mut Command::new(self.dir.join("renew-standby")))?;
        println!("hot standby is streaming: JPKI_TEST_PG_STANDBY_URL={}", self.standby_url().unwrap_or_default());
        Ok(())
    }

    /// The standby's admin URL, once started.
    pub(crate) fn standby_url(&self) -> Option<String> {
        self.standby_port.map(|p| format!("postgres://jpki@127.0.0.1:{p}/postgres"))
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
        match self.standby_url() {
            Some(url) => {
                cmd.env("JPKI_TEST_PG_STANDBY_URL", url)
                    .env("JPKI_TEST_PG_STANDBY_DATA", self.standby_data())
                    .env("JPKI_TEST_PG_STANDBY_PROMOTE", self.dir.join("promote-standby"))
                    .env("JPKI_TEST_PG_STANDBY_RENEW", self.dir.join("renew-standby"));
            }
            None => {
                cmd.env_remove("JPKI_TEST_PG_STANDBY_URL")
                    .env_remove("JPKI_TEST_PG_STANDBY_DATA")
                    .env_remove("JPKI_TEST_PG_STANDBY_PROMOTE")
                    .env_remove("JPKI_TEST_PG_STANDBY_RENEW");
            }
        }
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
        if self.standby_data().join("postmaster.pid").exists() {
            println!("stopping the standby in {}", self.dir.display());
            let mut stop = self.pg("pg_ctl");
            stop.arg("-D").arg(self.standby_data()).args(["-m", "immediate", "-w", "-t", "60", "stop"]);
            stopped = run_quiet(&mut stop).map(drop);
        }
        if self.data().join("postmaster.pid").exists() {
            println!("stopping PostgreSQL in {}", self.dir.display());
            // The cluster is deleted right after: no shutdown checkpoint is needed, and with
            // hundreds of test databases (fsync=on) one takes minutes on a slow disk.
            let mut stop = self.pg("pg_ctl");
            stop.arg("-D").arg(self.data()).args(["-m", "immediate", "-w", "-t", "60", "stop"]);
            stopped = stopped.and(run_quiet(&mut stop).map(drop));
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
        drop(Cluster {
            _lock: None,
            dir: entry.path(),
            bin: bin.to_owned(),
            user: user.map(str::to_owned),
            port: 0,
            standby_port: None,
        });
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
