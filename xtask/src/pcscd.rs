//! The PC/SC test stack: pcscd with vsmartcard's vpcd readers, without systemd.

use std::{
    fs::{self, File},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use crate::cmd::{project_root, run, show, uid};

/// pcscd with vsmartcard's vpcd readers ("Virtual PCD 00 00" on port 35963, "… 00 01" on
/// 35964), started in the foreground without systemd. Readiness is checked through PC/SC
/// (`opensc-tool -l`), never by probing the vpcd ports: vpcd takes any connection for a card.
#[derive(Debug)]
pub(crate) struct Pcscd {
    child: Option<std::process::Child>,
}

const PCSCD_DIR: &str = "/run/pcscd";

impl Pcscd {
    pub(crate) fn ready() -> bool {
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
    pub(crate) fn up() -> anyhow::Result<Pcscd> {
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
    pub(crate) fn detach(mut self) {
        if let Some(c) = self.child.take() {
            println!("pcscd left running (pid {}); `cargo xtask pcsc down` stops it", c.id());
        }
    }

    pub(crate) fn stop(mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            // Under sudo the child is sudo itself; pcscd's own pid is in its pid file.
            let _ = Self::down();
            let _ = c.kill();
            let _ = c.wait();
        }
        Ok(())
    }

    /// Stops a running pcscd (TERM, which removes its socket and pid file).
    pub(crate) fn down() -> anyhow::Result<()> {
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
