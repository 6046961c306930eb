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

/// A child process killed when dropped.
pub struct Kill(pub std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// stdout and stderr of a finished command.
pub fn text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A running identity network (municipality 131016 → prefecture 13 → national), a CA agency
/// registered at the national node, and a software-key CA database, all under `dir`.
pub struct Network {
    pub dir: PathBuf,
    pub national: String,
    pub agency_token: String,
    /// What `jpki ca init` printed.
    pub init_output: String,
    _nodes: Vec<Kill>,
}

impl Network {
    pub const CA_PASSPHRASE: &'static str = "e2e-ca-passphrase";

    /// Starts the three nodes, registers the CA's agency and initialises the CA.
    pub async fn start(dir: &Path) -> Network {
        Self::start_with(dir, &[]).await
    }

    /// The same, with extra `jpki ca init` arguments.
    pub async fn start_with(dir: &Path, init: &[&str]) -> Network {
        let d = |f: &str| dir.join(f).display().to_string();
        let (mp, pp, np) = (free_port(), free_port(), free_port());
        let (murl, purl, nurl) =
            (format!("http://127.0.0.1:{mp}"), format!("http://127.0.0.1:{pp}"), format!("http://127.0.0.1:{np}"));
        let serve = |args: &[&str]| Kill(Command::new(jpki_bin()).args(args).env_remove("JPKI_DB").spawn().unwrap());
        let nodes = vec![
            serve(&[
                "serve",
                "municipality",
                "--db",
                &d("m.db"),
                "--code",
                "131016",
                "--listen",
                &format!("127.0.0.1:{mp}"),
            ]),
            serve(&[
                "serve",
                "prefecture",
                "--db",
                &d("p.db"),
                "--code",
                "13",
                "--listen",
                &format!("127.0.0.1:{pp}"),
                "--municipality",
                &murl,
                "--interval-ms",
                "100",
            ]),
            serve(&[
                "serve",
                "national",
                "--db",
                &d("n.db"),
                "--listen",
                &format!("127.0.0.1:{np}"),
                "--prefecture",
                &format!("13={purl}"),
                "--operator-token",
                "e2e-operator-token",
                "--interval-ms",
                "100",
            ]),
        ];
        ready(&nurl, None).await;
        ready(&murl, None).await;
        let mut net = Network {
            dir: dir.to_path_buf(),
            national: nurl.clone(),
            agency_token: String::new(),
            init_output: String::new(),
            _nodes: nodes,
        };
        let o = net.jpki(&[
            "identity",
            "pool",
            "--db",
            &d("m.db"),
            "--municipality",
            "131016",
            "--national",
            &nurl,
            "--token",
            "e2e-operator-token",
            "--count",
            "8",
        ]);
        assert!(o.status.success(), "{}", text(&o));
        let o = net.jpki(&[
            "identity",
            "agency-add",
            "--db",
            &d("n.db"),
            "--id",
            "jpki-ca",
            "--name",
            "CA",
            "--class",
            "B1",
            "--purpose",
            "B1-020",
            "--operator",
            "nat-op-1",
        ]);
        assert!(o.status.success(), "{}", text(&o));
        net.agency_token = text(&o).split_whitespace().find(|w| w.starts_with("jpki-ca:")).unwrap().to_owned();
        let o = net.jpki(&[&["ca", "init", "--actor", "op-1", "--shards", "2"], init].concat());
        assert!(o.status.success(), "{}", text(&o));
        net.init_output = text(&o);
        net
    }

    /// Runs `jpki` with the CA store and agency token in the environment.
    pub fn jpki_env(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        let mut c = Command::new(jpki_bin());
        c.args(args)
            .env_remove("JPKI_DB")
            .env("JPKI_CA_PASSPHRASE", Self::CA_PASSPHRASE)
            .env("JPKI_CA_DB", self.dir.join("ca.db"))
            .env("JPKI_CA_KEYS", self.dir.join("keys"))
            .env("JPKI_CA_AGENCY_TOKEN", &self.agency_token)
            .env("JPKI_NATIONAL_URL", &self.national);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    }

    pub fn jpki(&self, args: &[&str]) -> std::process::Output {
        self.jpki_env(args, &[])
    }

    /// Registers a resident at the municipality and waits until the national node has it.
    pub async fn resident(&self, name: &str, dob: &str) -> String {
        let m = self.dir.join("m.db").display().to_string();
        let o = self.jpki(&[
            "identity",
            "register",
            "--db",
            &m,
            "--municipality",
            "131016",
            "--operator",
            "clerk-1",
            "--kind",
            "first-registration",
            "--name",
            name,
            "--address",
            "東京都千代田区1",
            "--dob",
            dob,
            "--sex",
            "2",
        ]);
        assert!(o.status.success(), "{}", text(&o));
        let code = text(&o)
            .split_whitespace()
            .find(|w| w.len() == 11 && w.chars().all(|c| c.is_ascii_digit()))
            .unwrap()
            .to_owned();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let o = self.jpki(&["identity", "feed", "--national", &self.national]);
            if text(&o).contains(&code) {
                return code;
            }
            assert!(Instant::now() < deadline, "resident {code} never reached the national node");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// An RSA-2048 key `dir/NAME.key` and a CSR for it, `dir/NAME.csr` (path returned).
pub fn csr(dir: &Path, name: &str) -> String {
    let key = dir.join(format!("{name}.key")).display().to_string();
    let csr = dir.join(format!("{name}.csr")).display().to_string();
    let o = Command::new("openssl").args(["genrsa", "-out", &key, "2048"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let o = Command::new("openssl")
        .args(["req", "-new", "-key", &key, "-subj", "/CN=ignored", "-out", &csr])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    csr
}
