//! Running commands: `cargo` in the project root, `run`/`run_quiet` with the command line shown,
//! shell quoting, the current user's id and a free loopback port.

use std::{
    env,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, bail};

/// The workspace root (the parent of `xtask/`).
pub(crate) fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Where cargo builds: `$CARGO_TARGET_DIR`, else `target/` in the project root.
pub(crate) fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| project_root().join("target"))
}

/// `cargo <args>` (space-separated) with the cargo that runs us (`$CARGO`), in the project root.
/// Without the variables `cargo run` set for xtask itself (`CARGO_PKG_*`, `CARGO_MANIFEST_DIR`,
/// …): they describe xtask, not what the child works on, and some subcommands read them
/// (cargo-machete takes its arguments as paths when `CARGO_PKG_NAME` is set).
pub(crate) fn cargo(args: &str) -> Command {
    let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args(args.split_whitespace()).current_dir(project_root());
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || matches!(
                &*key,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
            )
        {
            cmd.env_remove(&*key);
        }
    }
    cmd
}

/// Runs `cmd` with inherited output; fails unless it exits 0.
pub(crate) fn run(cmd: &mut Command) -> anyhow::Result<()> {
    println!("$ {}", show(cmd));
    let status = cmd.status().with_context(|| format!("could not start `{}`", show(cmd)))?;
    if !status.success() {
        bail!("`{}` failed: {status}", show(cmd));
    }
    Ok(())
}

/// Runs `cmd` with captured output, shown only if it fails; returns its stdout.
pub(crate) fn run_quiet(cmd: &mut Command) -> anyhow::Result<String> {
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
pub(crate) fn show(cmd: &Command) -> String {
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

/// The uid of `user` (or of this process), via `id -u`; `None` if there is no such user.
pub(crate) fn uid(user: Option<&str>) -> Option<u32> {
    let out = Command::new("id").arg("-u").args(user).stderr(Stdio::null()).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// A loopback port nobody listens on right now (the OS picks it; we let it go for postgres).
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("could not bind 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
