//! Guard rails of `cargo xtask ci` beyond fmt and clippy: the API docs build without a warning
//! (`cargo doc`), the dependency graph passes `cargo deny` (deny.toml: licenses, duplicate
//! versions, sources, and advisories where the advisory database can be fetched), and no crate
//! declares a dependency it does not use (`cargo machete`). The two tools come from crates.io,
//! installed once when missing.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::{
    cmd::{cargo, run},
    install::install_cargo_tool,
};

/// cargo-deny and cargo-machete, pinned.
const CARGO_DENY: (&str, &str) = ("cargo-deny", "0.20.2");
const CARGO_MACHETE: (&str, &str) = ("cargo-machete", "0.9.2");

/// `cargo doc --workspace --no-deps` with every rustdoc warning an error (broken intra-doc
/// links, private items linked from public docs, bare URLs, invalid HTML in doc comments).
pub(crate) fn doc() -> anyhow::Result<()> {
    let mut cmd = cargo("doc --workspace --no-deps --locked");
    cmd.env("RUSTDOCFLAGS", "-D warnings");
    run(&mut cmd)
}

/// Installs cargo-deny when missing.
pub(crate) fn install_deny() -> anyhow::Result<()> {
    install_cargo_tool(CARGO_DENY.0, CARGO_DENY.1, &["deny", "--version"])
}

/// `cargo deny check bans licenses sources` (deny.toml); these need no advisory database.
pub(crate) fn deny() -> anyhow::Result<()> {
    install_deny()?;
    run(&mut cargo("deny --locked check bans licenses sources"))
}

/// Whether the RustSec advisory database could be fetched (`cargo deny fetch db`, given at
/// most `FETCH_TIMEOUT`; cargo-deny clones it from its git host, which this project's machines
/// cannot reach).
pub(crate) fn advisory_db_reachable() -> bool {
    let mut fetch = cargo("deny fetch db");
    fetch.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    let ok = match fetch.spawn() {
        Ok(mut child) => {
            let deadline = Instant::now() + FETCH_TIMEOUT;
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => break status.success(),
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break false;
                    }
                }
            }
        }
        Err(_) => false,
    };
    println!("RustSec advisory database: {}", if ok { "fetched" } else { "cannot be fetched here" });
    ok
}

/// How long `cargo deny fetch db` may try.
const FETCH_TIMEOUT: Duration = Duration::from_secs(120);

/// `cargo deny check advisories` against the database just fetched (deny.toml lists the
/// exceptions, each with its reason).
pub(crate) fn deny_advisories() -> anyhow::Result<()> {
    run(&mut cargo("deny --locked --offline check advisories"))
}

/// The crates `cargo machete` checks: the workspace members and the fuzz crates (not the
/// vendored certval, which is upstream's).
const MACHETE_PATHS: &[&str] = &[
    "identity",
    "ca",
    "card",
    "net",
    "validator",
    "resdoc",
    "jpki",
    "tests",
    "xtask",
    "card/fuzz",
    "identity/fuzz",
    "validator/fuzz",
];

/// `cargo machete`: dependencies no source file names. Each false positive (a crate used only
/// through a macro or a feature) is listed in its Cargo.toml under
/// `[package.metadata.cargo-machete] ignored`, with the reason beside it.
pub(crate) fn machete() -> anyhow::Result<()> {
    install_cargo_tool(CARGO_MACHETE.0, CARGO_MACHETE.1, &["machete", "--version"])?;
    let mut cmd: Command = cargo("machete --with-metadata");
    cmd.args(MACHETE_PATHS);
    run(&mut cmd)
}
