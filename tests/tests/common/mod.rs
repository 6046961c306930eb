//! Shared helpers of the end-to-end tests: the `jpki` binary, free ports, the test network CA
//! and its credentials (`NetPki`), readiness over mutual TLS, and a running identity network.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::ffi::OsStr;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use identity::party::Party;

pub mod fake;

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

/// `jpki ARGS --actor op-1` as the CA operator on the CA store in `dir` (`ca.db`, `keys/`,
/// passphrase [`LOCAL_CA_PASSPHRASE`]), with `env` added.
pub fn local_ca(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(jpki_bin())
        .args(args)
        .args(["--actor", "op-1"])
        .env("JPKI_CA_PASSPHRASE", LOCAL_CA_PASSPHRASE)
        .env("JPKI_CA_DB", dir.join("ca.db"))
        .env("JPKI_CA_KEYS", dir.join("keys"))
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// The key-store passphrase of [`local_ca`].
pub const LOCAL_CA_PASSPHRASE: &str = "local CA test passphrase";

/// Unix seconds as RFC 3339 (the instants of a ceremony file).
pub fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// `jpki ARGS` with `env` added (and no `JPKI_DB` inherited).
pub fn jpki<K: AsRef<OsStr>, V: AsRef<OsStr>>(args: &[&str], env: &[(K, V)]) -> Output {
    let mut c = Command::new(jpki_bin());
    c.args(args).env_remove("JPKI_DB");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until the node at `url` answers `GET /v1/heads` to `operator` (a client with an
/// operator credential, see [`NetPki::client`]).
pub async fn ready(url: &str, operator: &reqwest::Client) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = operator.get(format!("{url}/v1/heads")).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(Instant::now() < deadline, "{url} did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A child process killed when dropped.
#[derive(Debug)]
pub struct Kill(pub std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// stdout and stderr of a finished command.
pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A network CA made by `jpki net init` in `DIR/netca`, and the credentials it issued in
/// `DIR/creds/NAME.{pem,key}`, every key under [`NetPki::PASSPHRASE`].
#[derive(Debug, Clone)]
pub struct NetPki {
    pub dir: PathBuf,
}

impl NetPki {
    /// The passphrase of every credential and notice key of the tests.
    pub const PASSPHRASE: &'static str = "e2e-credential-passphrase";
    /// The passphrase of the network CA's key.
    pub const CA_PASSPHRASE: &'static str = "e2e-network-ca-passphrase";

    /// `jpki net init` in `dir/netca`.
    pub fn init(dir: &Path) -> NetPki {
        std::fs::create_dir_all(dir.join("creds")).unwrap();
        let pki = NetPki { dir: dir.to_path_buf() };
        let o = pki.net(&["init"]);
        assert!(o.status.success(), "{}", text(&o));
        pki
    }

    /// The network CA's directory.
    pub fn ca_dir(&self) -> PathBuf {
        self.dir.join("netca")
    }

    /// The network CA certificate every party trusts.
    pub fn ca_pem(&self) -> PathBuf {
        self.ca_dir().join("ca.pem")
    }

    /// The network CA's current CRL.
    pub fn crl_pem(&self) -> PathBuf {
        self.ca_dir().join("crl.pem")
    }

    /// The path prefix of credential `name`.
    pub fn prefix(&self, name: &str) -> PathBuf {
        self.dir.join("creds").join(name)
    }

    /// `jpki net ARGS --dir DIR/netca` with both passphrases in the environment.
    pub fn net(&self, args: &[&str]) -> Output {
        let dir = self.ca_dir().display().to_string();
        let args = [&["net"], args, &["--dir", &dir]].concat();
        jpki(&args, &[("JPKI_NET_CA_PASSPHRASE", Self::CA_PASSPHRASE), ("JPKI_NET_KEY_PASSPHRASE", Self::PASSPHRASE)])
    }

    fn issue_args(&self, name: &str, extra: &[&str]) -> String {
        let out = self.prefix(name).display().to_string();
        let o = self.net(&[&["issue", "--out", &out], extra].concat());
        assert!(o.status.success(), "{}", text(&o));
        text(&o).split("serial ").nth(1).unwrap().split_whitespace().next().unwrap().to_owned()
    }

    /// Issues `party` (`municipality:131016`, `national`, …) the TLS credential `name`, for
    /// 127.0.0.1 if `host`; returns its serial.
    pub fn issue(&self, name: &str, party: &str, host: bool) -> String {
        let host: &[&str] = if host { &["--host", "127.0.0.1"] } else { &[] };
        self.issue_args(name, &[&["--party", party][..], host].concat())
    }

    /// The credentials of a network of two prefectures: 千代田区 (131016, prefecture 13) and
    /// 大阪市 (271004, prefecture 27), each with its node credential `m<code>`, notice key
    /// `m<code>-notice`, window `w<code>` (`window:<code>:W01`) and clerk `c<code>`
    /// (`clerk:<code>:C0001`); the prefectures `p13`, `p27`, the national node `national` and the
    /// operator `op1`.
    pub fn two_prefectures(&self) {
        for code in ["131016", "271004"] {
            self.issue(&format!("m{code}"), &format!("municipality:{code}"), true);
            self.notice_key(&format!("m{code}-notice"), code);
            self.issue(&format!("w{code}"), &format!("window:{code}:W01"), false);
            self.clerk_key(&format!("c{code}"), &format!("clerk:{code}:C0001"));
        }
        self.issue("p13", "prefecture:13", true);
        self.issue("p27", "prefecture:27", true);
        self.issue("national", "national", true);
        self.issue("op1", "operator:op1", false);
    }

    /// Issues the clerk `party` (`clerk:131016:C1`) its request-signing key `name`.
    pub fn clerk_key(&self, name: &str, party: &str) -> String {
        self.issue_args(name, &["--party", party])
    }

    /// An unencrypted PEM copy of credential `name`'s key, for a browser, written to `dir` (mode
    /// 0600). Node (Playwright's client-certificate proxy) and the openssl CLI refuse our key
    /// files' scrypt parameters (over their 32 MiB memory limit), so the copy is decrypted by
    /// the project's own key-file code.
    pub fn browser_key(&self, name: &str, dir: &Path) -> PathBuf {
        use base64::Engine as _;
        let pass = net::secret::Secret::new(Self::PASSPHRASE.as_bytes().to_vec());
        let der = net::keyfile::load(&self.prefix(name).with_extension("key"), &pass).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_slice());
        let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
        let pem = format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", lines.join("\n"));
        let plain = dir.join(format!("{name}-browser.key"));
        net::keyfile::write_private(&plain, pem.as_bytes()).unwrap();
        plain
    }

    /// Loads the clerk key `name`.
    pub fn clerk(&self, name: &str) -> std::sync::Arc<net::clerk::ClerkKey> {
        let pass = net::secret::Secret::new(Self::PASSPHRASE.as_bytes().to_vec());
        net::clerk::ClerkKey::load(&self.prefix(name), &pass).unwrap()
    }

    /// Issues `municipality` its notice key `name`; returns its serial.
    pub fn notice_key(&self, name: &str, municipality: &str) -> String {
        self.issue_args(name, &["--party", &format!("municipality:{municipality}"), "--notice-key"])
    }

    /// The environment of a process presenting credential `name`.
    pub fn env(&self, name: &str) -> Vec<(String, String)> {
        let s = |p: PathBuf| p.display().to_string();
        vec![
            ("JPKI_CREDENTIAL".into(), s(self.prefix(name))),
            ("JPKI_NETWORK_CA".into(), s(self.ca_pem())),
            ("JPKI_NETWORK_CRL".into(), s(self.crl_pem())),
            ("JPKI_CREDENTIAL_PASSPHRASE".into(), Self::PASSPHRASE.into()),
        ]
    }

    /// Spawns the node `jpki ARGS` presenting credential `name` (killed when dropped).
    pub fn serve(&self, name: &str, args: &[&str]) -> Kill {
        self.serve_env(name, args, &[])
    }

    /// [`NetPki::serve`] with more environment.
    pub fn serve_env(&self, name: &str, args: &[&str], env: &[(String, String)]) -> Kill {
        let mut c = Command::new(jpki_bin());
        c.args(args).env_remove("JPKI_DB").envs(self.env(name)).envs(env.iter().map(|(k, v)| (k, v)));
        Kill(c.spawn().unwrap())
    }

    /// Spawns `jpki serve municipality` for `code` (credential `m{code}`, notice key
    /// `m{code}-notice`) on database `db` and 127.0.0.1:`port`, with `extra` arguments and `env`.
    pub fn serve_municipality(
        &self,
        code: &str,
        db: &str,
        port: u16,
        extra: &[&str],
        env: &[(String, String)],
    ) -> Kill {
        let (listen, key) =
            (format!("127.0.0.1:{port}"), self.prefix(&format!("m{code}-notice")).display().to_string());
        let args = ["serve", "municipality", "--db", db, "--code", code, "--listen", &listen, "--notice-key", &key];
        self.serve_env(&format!("m{code}"), &[&args[..], extra].concat(), env)
    }

    /// Spawns `jpki serve prefecture` for `code` (credential `p{code}`) on database `db` and
    /// 127.0.0.1:`port`, pulling `municipalities` (`CODE=URL`) every 100 ms.
    pub fn serve_prefecture(
        &self,
        code: &str,
        db: &str,
        port: u16,
        municipalities: &[String],
        env: &[(String, String)],
    ) -> Kill {
        let listen = format!("127.0.0.1:{port}");
        let mut args =
            vec!["serve", "prefecture", "--db", db, "--code", code, "--listen", &listen, "--interval-ms", "100"];
        for m in municipalities {
            args.extend(["--municipality", m.as_str()]);
        }
        self.serve_env(&format!("p{code}"), &args, env)
    }

    /// Spawns `jpki serve national` (credential `national`) on database `db` and
    /// 127.0.0.1:`port`, pulling `prefectures` (`CODE=URL`) every 100 ms.
    pub fn serve_national(&self, db: &str, port: u16, prefectures: &[String], env: &[(String, String)]) -> Kill {
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["serve", "national", "--db", db, "--listen", &listen, "--interval-ms", "100"];
        for p in prefectures {
            args.extend(["--prefecture", p.as_str()]);
        }
        self.serve_env("national", &args, env)
    }

    /// `jpki identity pool`: `count` resident codes from the national node `national` into
    /// municipality `code`'s database `db`, with its own credential `m{code}`.
    pub fn draw_pool(&self, code: &str, db: &str, national: &str, count: u32) {
        let count = count.to_string();
        let args = ["identity", "pool", "--db", db, "--municipality", code, "--national", national, "--count", &count];
        let o = jpki(&args, &self.env(&format!("m{code}")));
        assert!(o.status.success(), "{}", text(&o));
    }

    /// A mutual-TLS client presenting credential `name`, accepting only a server that is
    /// `expect` (if given).
    pub fn client(&self, name: &str, expect: Option<Party>) -> reqwest::Client {
        self.client_from(&self.prefix(name), expect)
    }

    /// A mutual-TLS client presenting the credential at `prefix` (made by any CA, keyed under
    /// [`NetPki::PASSPHRASE`]) and trusting this network CA.
    pub fn client_from(&self, prefix: &Path, expect: Option<Party>) -> reqwest::Client {
        let pass = net::secret::Secret::new(Self::PASSPHRASE.as_bytes().to_vec());
        let cred = net::credential::Credential::load(prefix, &pass).unwrap();
        let trust = net::credential::Trust { ca_file: self.ca_pem(), crl_file: Some(self.crl_pem()) };
        net::client::client(&cred, &trust, expect).unwrap()
    }
}

/// A running identity network (municipality 131016 → prefecture 13 → national) over mutual
/// TLS, each node with its own credential and the municipality with its notice key; a CA agency
/// registered at the national node; and a software-key CA database; all under `dir`.
///
/// Credentials (names for [`NetPki`]): `m131016` (+ notice key `m131016-notice`), `p13`,
/// `national`, `ca` (`ca:jpki-ca`), `op1` (`operator:op1`).
pub struct Network {
    pub dir: PathBuf,
    pub pki: NetPki,
    pub national: String,
    pub prefecture: String,
    pub municipality: String,
    /// What `jpki ca init` printed.
    pub init_output: String,
    /// The node processes: municipality, prefecture, national.
    pub nodes: Vec<Kill>,
    /// Each node's metrics listener (`JPKI_METRICS_LISTEN`, plain HTTP: `http://HOST:PORT`), in
    /// the order of `nodes`.
    pub metrics: Vec<String>,
}

impl Network {
    pub const CA_PASSPHRASE: &'static str = "e2e-ca-passphrase";

    /// Starts the three nodes, registers the CA's agency and initialises the CA.
    pub async fn start(dir: &Path) -> Network {
        Self::start_with(dir, &[]).await
    }

    /// The same, with extra `jpki ca init` arguments.
    pub async fn start_with(dir: &Path, init: &[&str]) -> Network {
        Self::start_inner(dir, init, true).await
    }

    /// [`Network::start`] with each node serving its metrics (`JPKI_METRICS_LISTEN`).
    pub async fn start_metered(dir: &Path) -> Network {
        Self::start_inner(dir, &[], true).await
    }

    async fn start_inner(dir: &Path, init: &[&str], metered: bool) -> Network {
        let d = |f: &str| dir.join(f).display().to_string();
        let pki = NetPki::init(dir);
        pki.issue("m131016", "municipality:131016", true);
        pki.notice_key("m131016-notice", "131016");
        pki.issue("p13", "prefecture:13", true);
        pki.issue("national", "national", true);
        pki.issue("ca", "ca:jpki-ca", false);
        pki.issue("op1", "operator:op1", false);
        let (mp, pp, np) = (free_port(), free_port(), free_port());
        let (murl, purl, nurl) =
            (format!("https://127.0.0.1:{mp}"), format!("https://127.0.0.1:{pp}"), format!("https://127.0.0.1:{np}"));
        let metrics: Vec<String> =
            if metered { (0..3).map(|_| format!("127.0.0.1:{}", free_port())).collect() } else { Vec::new() };
        // The i-th node's environment: its metrics listener, if metered.
        let env = |i: usize| -> Vec<(String, String)> {
            metrics.get(i).map(|m| ("JPKI_METRICS_LISTEN".to_owned(), m.clone())).into_iter().collect()
        };
        let nodes = vec![
            pki.serve_municipality("131016", &d("m.db"), mp, &[], &env(0)),
            pki.serve_prefecture("13", &d("p.db"), pp, &[format!("131016={murl}")], &env(1)),
            pki.serve_national(&d("n.db"), np, &[format!("13={purl}")], &env(2)),
        ];
        let op = pki.client("op1", None);
        ready(&nurl, &op).await;
        ready(&purl, &op).await;
        ready(&murl, &op).await;
        let mut net = Network {
            dir: dir.to_path_buf(),
            pki,
            national: nurl.clone(),
            prefecture: purl,
            municipality: murl,
            init_output: String::new(),
            nodes,
            metrics: metrics.iter().map(|m| format!("http://{m}")).collect(),
        };
        net.pki.draw_pool("131016", &d("m.db"), &nurl, 8);
        let o = net.jpki(&[&["identity", "agency-add", "--db", &d("n.db")][..], &CA_AGENCY].concat());
        assert!(o.status.success(), "{}", text(&o));
        let o = net.jpki(&[&["ca", "init", "--actor", "op-1", "--shards", "2"], init].concat());
        assert!(o.status.success(), "{}", text(&o));
        net.init_output = text(&o);
        net
    }

    /// Runs `jpki` with the CA store, the CA's credential (`ca:jpki-ca`) and the national URL
    /// in the environment, then `env` (which may replace any of them).
    pub fn jpki_env<K: AsRef<OsStr>, V: AsRef<OsStr>>(&self, args: &[&str], env: &[(K, V)]) -> Output {
        let mut c = Command::new(jpki_bin());
        c.args(args)
            .env_remove("JPKI_DB")
            .env("JPKI_CA_PASSPHRASE", Self::CA_PASSPHRASE)
            .env("JPKI_CA_DB", self.dir.join("ca.db"))
            .env("JPKI_CA_KEYS", self.dir.join("keys"))
            .env("JPKI_NATIONAL_URL", &self.national)
            .envs(self.pki.env("ca"));
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    }

    pub fn jpki(&self, args: &[&str]) -> Output {
        self.jpki_env::<&str, &str>(args, &[])
    }

    /// Gives the validator its network credential (`validator:v1`) and enrols it at the CA
    /// service `ca_url` (`jpki validator enroll --out OUT`, the responder keys sealed with
    /// `passphrase`). Returns the validator's environment (credential, passphrase, CA URL) and
    /// the enrolment's output.
    pub fn enrol_validator(&self, ca_url: &str, out: &str, passphrase: &str) -> (Vec<(String, String)>, Output) {
        self.pki.issue("validator", "validator:v1", true);
        let mut env = self.pki.env("validator");
        env.push(("JPKI_VALIDATOR_PASSPHRASE".into(), passphrase.into()));
        env.push(("JPKI_CA_URL".into(), ca_url.into()));
        let o = jpki(&["validator", "enroll", "--out", out], &env);
        assert!(o.status.success(), "{}", text(&o));
        (env, o)
    }

    /// Registers the verifier `bank-1` (a bank opening accounts) in the validator's database
    /// `db`, with its network credential `agency:bank-1`; returns the command's output.
    pub fn add_bank_verifier(&self, db: &str) -> Output {
        self.pki.issue("bank-1", "agency:bank-1", false);
        let o = self.jpki(&[
            "validator",
            "verifier-add",
            "--db",
            db,
            "--id",
            "bank-1",
            "--name",
            "Bank",
            "--purpose",
            "account-opening",
        ]);
        assert!(o.status.success(), "{}", text(&o));
        o
    }

    /// Starts `jpki serve ca` with the CA store, the CA's credential and the card issuer
    /// master key `issuer_master` (64 hex digits); CRLs are published under `DIR/publish`.
    /// Returns the process and its URL once it answers.
    pub async fn serve_ca(&self, issuer_master: &str) -> (Kill, String) {
        self.serve_ca_with(issuer_master, &[]).await
    }

    /// [`Self::serve_ca`] with more environment (`JPKI_METRICS_LISTEN`, …).
    pub async fn serve_ca_with(&self, issuer_master: &str, extra: &[(&str, String)]) -> (Kill, String) {
        let port = free_port();
        let publish = self.dir.join("publish").display().to_string();
        // The service's own credential: the CA's party, with the host it serves on.
        self.pki.issue("ca-service", "ca:jpki-ca", true);
        let child = Kill(
            Command::new(jpki_bin())
                .args(["serve", "ca", "--listen", &format!("127.0.0.1:{port}"), "--publish-dir", &publish])
                .args(["--follow-interval-ms", "200"])
                .env_remove("JPKI_DB")
                .env("JPKI_CA_PASSPHRASE", Self::CA_PASSPHRASE)
                .env("JPKI_CA_DB", self.dir.join("ca.db"))
                .env("JPKI_CA_KEYS", self.dir.join("keys"))
                .env("JPKI_NATIONAL_URL", &self.national)
                .env("JPKI_CARD_ISSUER_KEY", issuer_master)
                .envs(self.pki.env("ca-service"))
                .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
                .stderr(std::fs::File::create(self.dir.join("ca-service.log")).unwrap())
                .spawn()
                .unwrap(),
        );
        let url = format!("https://127.0.0.1:{port}");
        let op = self.pki.client("op1", Some(Party::Ca("jpki-ca".into())));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = op.get(format!("{url}/v1/status/head")).send().await
                && r.status().is_success()
            {
                return (child, url);
            }
            assert!(
                Instant::now() < deadline,
                "the CA service did not come up: {}",
                std::fs::read_to_string(self.dir.join("ca-service.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The environment of the municipality's clerk commands: its credential and notice key.
    pub fn clerk_env(&self) -> Vec<(String, String)> {
        let mut env = self.pki.env("m131016");
        env.push(("JPKI_NOTICE_KEY".into(), self.pki.prefix("m131016-notice").display().to_string()));
        env
    }

    /// Registers a resident at the municipality with the clerk environment `env` (its
    /// credential and notice key); returns the new resident code.
    pub fn register(&self, env: &[(String, String)], name: &str, dob: &str) -> String {
        let m = self.dir.join("m.db").display().to_string();
        let o = self.jpki_env(&register_args(&m, name, dob), env);
        registered_code(&o)
    }

    /// Revokes `serial` for key compromise through `jpki ca revoke` as operator op-1.
    pub fn revoke(&self, serial: &str) {
        let o = self.jpki(&[
            "ca",
            "revoke",
            "--actor",
            "op-1",
            "--serial",
            serial,
            "--reason",
            "key-compromise",
            "--cause",
            "test",
        ]);
        assert!(o.status.success(), "{}", text(&o));
    }

    /// Issues the resident a signature and an authentication certificate through `jpki ca
    /// issue` as window `w1` (files under `out`), copies them to `sig.pem` and `auth.pem` in
    /// `dir`, and returns their serials (signature, authentication).
    pub fn issue_pair(
        &self,
        dir: &Path,
        resident: &str,
        sign_csr: &str,
        auth_csr: &str,
        out: &str,
    ) -> (String, String) {
        let args = ca_issue_args("w1", resident, sign_csr, auth_csr, out);
        let o = self.jpki(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(o.status.success(), "{}", text(&o));
        let serial_of = |kind: &str| {
            text(&o)
                .lines()
                .find(|l| l.starts_with(&format!("issued {kind} certificate")))
                .and_then(|l| l.split_whitespace().nth(3))
                .unwrap()
                .to_owned()
        };
        let (sig, auth) = (serial_of("signature"), serial_of("authentication"));
        std::fs::copy(Path::new(out).join(format!("signature-{sig}.pem")), dir.join("sig.pem")).unwrap();
        std::fs::copy(Path::new(out).join(format!("authentication-{auth}.pem")), dir.join("auth.pem")).unwrap();
        (sig, auth)
    }

    /// Registers a resident at the municipality and waits until the national node's feed has
    /// it (read with the CA's credential).
    pub async fn resident(&self, name: &str, dob: &str) -> String {
        let code = self.register(&self.clerk_env(), name, dob);
        self.wait_national(&code).await;
        code
    }

    /// Waits until the national node's feed has resident `code` (read with the CA's credential).
    pub async fn wait_national(&self, code: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let o = self.jpki(&["identity", "feed", "--national", &self.national]);
            if text(&o).contains(code) {
                return;
            }
            assert!(Instant::now() < deadline, "resident {code} never reached the national node: {}", text(&o));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The card issuer master key of the e2e tests (64 hex digits): the CA service's and the card
/// factory's (`jpki card-sim`).
pub const ISSUER_KEY: &str = "4a504b492d746573742d6973737565722d6b65792d3030303030303030303031";

/// A virtual card (`jpki card-sim`, state in `state`, made blank from [`ISSUER_KEY`] if absent)
/// in the vpcd reader on `port` (35963: "Virtual PCD 00 00", 35964: "… 01"), pulled instead of
/// answering APDU `pull_after + 1` if given.
pub fn card_sim(state: &Path, port: u16, pull_after: Option<u64>) -> Kill {
    let mut c = Command::new(jpki_bin());
    c.args(["card-sim", "--state", state.to_str().unwrap(), "--port", &port.to_string()])
        .env("JPKI_CARD_ISSUER_KEY", ISSUER_KEY);
    if let Some(n) = pull_after {
        c.args(["--pull-after", &n.to_string()]);
    }
    Kill(c.spawn().unwrap())
}

/// Waits until pcscd sees `reader` empty (`card wait --absent`).
pub fn wait_removed(reader: &str) {
    let o = Command::new(jpki_bin())
        .args(["card", "wait", "--absent", "--reader", reader, "--wait", "5"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
}

/// An OpenSC tool (`pkcs15-tool`, `pkcs11-tool`, `opensc-tool`) with the jpki driver.
pub fn opensc(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd).args(args).env("OPENSC_DRIVER", "jpki").output().unwrap()
}

/// The DER of the first certificate in `pem` (converted by `openssl x509`).
pub fn pem_to_der(pem: &[u8]) -> Vec<u8> {
    let s = String::from_utf8_lossy(pem);
    let start = s.find("-----BEGIN CERTIFICATE-----").unwrap_or_else(|| panic!("no PEM in {s}"));
    let end = s[start..].find("-----END CERTIFICATE-----").unwrap() + start + 25;
    let o = Command::new("openssl")
        .args(["x509", "-outform", "DER"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(s[start..end].as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(o.status.success());
    o.stdout
}

/// `jpki identity agency-add` arguments registering the CA (`ca:jpki-ca`) for B1-020.
pub const CA_AGENCY: [&str; 10] =
    ["--id", "jpki-ca", "--name", "CA", "--class", "B1", "--purpose", "B1-020", "--operator", "nat-op-1"];

/// `jpki ca issue` arguments for `resident` at window W1 with both CSRs, certificates to `out`.
/// `jpki identity register` of a first registration at municipality 131016 on `m_db`, by
/// clerk-1 (the clerk's credential and notice key come from the environment the caller sets).
pub fn register_args<'a>(m_db: &'a str, name: &'a str, dob: &'a str) -> [&'a str; 18] {
    [
        "identity",
        "register",
        "--db",
        m_db,
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
    ]
}

/// The resident code a successful `jpki identity register` printed.
pub fn registered_code(o: &Output) -> String {
    assert!(o.status.success(), "{}", text(o));
    text(o).split_whitespace().find(|w| w.len() == 11 && w.chars().all(|c| c.is_ascii_digit())).unwrap().to_owned()
}

pub fn ca_issue_args(actor: &str, resident: &str, sign_csr: &str, auth_csr: &str, out: &str) -> Vec<String> {
    let args = [
        "ca",
        "issue",
        "--actor",
        actor,
        "--resident",
        resident,
        "--window",
        "W1",
        "--card-expiry",
        "2035-01-01",
        "--sign-csr",
        sign_csr,
        "--auth-csr",
        auth_csr,
        "--out",
        out,
    ];
    args.iter().map(|a| (*a).to_owned()).collect()
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

/// The virtual card's PINs as our test cards are personalised (typed on the PIN pad).
pub const AUTH_PIN: &str = "1234";
pub const SIGN_PIN: &str = "ABC123";
/// The two readers `cargo xtask pcsc up` gives pcscd (vpcd slots 0 and 1).
pub const READER0: &str = "Virtual PCD 00 00";
pub const READER1: &str = "Virtual PCD 00 01";

/// Fails the test unless pcscd runs with both vpcd readers (`cargo xtask pcsc up`).
pub fn require_pcsc_stack() {
    let o = Command::new(jpki_bin()).args(["card", "readers"]).output().unwrap();
    let t = text(&o);
    assert!(
        o.status.success() && t.contains(READER0) && t.contains(READER1),
        "pcscd with the vpcd readers is not running ({t}); start it with `cargo xtask pcsc up`"
    );
}

/// A fresh SoftHSM2 token labelled `label` with user PIN `pin`, its tokens and configuration in
/// `dir`: returns the module's path and the `SOFTHSM2_CONF` file to set for every process.
pub fn softhsm_token(dir: &Path, label: &str, pin: &str) -> (String, String) {
    let module = ca::pkcs11::softhsm_module().expect("softhsm2 is not installed (cargo xtask ci installs it)");
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n", tokens.display()),
    )
    .unwrap();
    let o = Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", label, "--so-pin", "12345678", "--pin", pin])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .unwrap();
    assert!(o.status.success(), "softhsm2-util --init-token: {}", text(&o));
    (module.display().to_string(), conf.display().to_string())
}

/// The party of municipality `code`.
pub fn municipality(code: &str) -> Party {
    Party::Municipality(code.parse().unwrap())
}

/// The error answer of a refused call (a panic if it was accepted or failed otherwise).
pub fn refused<T: std::fmt::Debug>(r: Result<T, identity::Error>) -> identity::client::PeerAnswer {
    match r {
        Err(e) => e.peer_answer().cloned().unwrap_or_else(|| panic!("not an error answer: {e}")),
        Ok(v) => panic!("accepted: {v:?}"),
    }
}
