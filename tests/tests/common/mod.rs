//! Shared helpers of the end-to-end tests: the `jpki` binary, free ports, readiness.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use identity::client::Peer;

/// Builds the `jpki` binary once (Cargo has released its build lock while tests run) and
/// returns its path in the workspace's target directory.
pub fn jpki_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo).args(["build", "--quiet", "-p", "jpki"]).current_dir(&root).status().unwrap();
        assert!(status.success(), "building jpki failed");
        let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root.join("target"));
        target.join("debug").join("jpki")
    })
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until the node at `url` answers `/v1/heads` (presenting `token`).
pub async fn ready(url: &str, token: Option<&str>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Peer::new(url).with_token(token.map(str::to_owned)).heads().await.is_err() {
        assert!(Instant::now() < deadline, "{url} did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
