//! OCSP scaled out, with real parts: a Redis Cluster of three masters on loopback, two
//! `jpki serve ocsp-signer` partitions reading the CA's database, and two keyless
//! `jpki serve ocsp-responder`s, checked with `openssl ocsp`: signed answers from both
//! responders (POST, GET with cache headers, a nonce request answered without the nonce), a
//! revocation through the CA seen as revoked on both, hostile store contents (another
//! certificate's response, garbage) never served, and the store gone: `tryLater`. On a cluster
//! with one replica per master and signers waiting for a replica's acknowledgement of
//! revocations: a revocation stays pending while the replica is frozen; then the master holding
//! it is killed, its replica takes over, and the responders still answer that certificate
//! revoked, and a revocation the signers write afterwards.
//!
//! Skipped, with a message, only when `redis-server` is missing and `CI` is unset; in CI its
//! absence is a failure (`cargo xtask ci` installs it).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a panic is a failed test

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{Kill, Network, csr, free_port, jpki_bin, text};

const PASS: &str = "ocsp-store-test-passphrase";

fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"))
}

/// Whether to run: redis-server is there, or we are in CI (where its absence is a failure).
fn redis_present() -> bool {
    if Path::new("/usr/bin/redis-server").exists() && Path::new("/usr/bin/redis-cli").exists() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("redis-server/redis-cli are missing in CI: `cargo xtask ci` installs them (xtask/src/install.rs)");
    }
    eprintln!(
        "SKIPPED ocsp_store: redis-server is not installed (apt-get install redis-server redis-tools); CI is unset"
    );
    false
}

/// One line of `CLUSTER NODES`.
#[derive(Debug)]
struct Node {
    port: u16,
    flags: String,
    /// The id of its master (`-` for a master).
    master: String,
    id: String,
    /// Slot ranges it serves (inclusive).
    slots: Vec<(u16, u16)>,
}

/// A Redis Cluster on loopback, nothing persisted.
struct RedisCluster {
    ports: Vec<u16>,
    nodes: Vec<Option<Kill>>,
}

impl RedisCluster {
    /// `n` masters, no replicas.
    fn start(dir: &Path, n: usize) -> RedisCluster {
        Self::start_with(dir, n, 0, 2000)
    }

    /// `masters` masters with `replicas` replicas each; a node not answering for
    /// `node_timeout_ms` is failed over.
    fn start_with(dir: &Path, masters: usize, replicas: usize, node_timeout_ms: u32) -> RedisCluster {
        let n = masters * (1 + replicas);
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let mut nodes = Vec::new();
        for p in &ports {
            let d = dir.join(format!("redis-{p}"));
            std::fs::create_dir_all(&d).unwrap();
            let child = Command::new("/usr/bin/redis-server")
                .args(["--port", &p.to_string(), "--bind", "127.0.0.1", "--cluster-enabled", "yes"])
                .args(["--cluster-config-file", &d.join("nodes.conf").display().to_string()])
                .args(["--dir", &d.display().to_string(), "--save", "", "--appendonly", "no"])
                .args(["--cluster-node-timeout", &node_timeout_ms.to_string(), "--daemonize", "no", "--logfile", ""])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap();
            nodes.push(Some(Kill(child)));
        }
        for p in &ports {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !text(&run("redis-cli", &["-p", &p.to_string(), "ping"])).contains("PONG") {
                assert!(Instant::now() < deadline, "redis-server on {p} did not come up");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let o = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .unwrap();
        assert!(o.status.success(), "redis-cli --cluster create: {}", text(&o));
        for p in &ports {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !text(&run("redis-cli", &["-p", &p.to_string(), "cluster", "info"])).contains("cluster_state:ok") {
                assert!(Instant::now() < deadline, "the cluster did not reach state ok on {p}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        RedisCluster { ports, nodes }
    }

    /// `CLUSTER NODES` as a live node sees it.
    fn nodes(&self) -> Vec<Node> {
        let live = self.ports.iter().zip(&self.nodes).find(|(_, n)| n.is_some()).map(|(p, _)| *p).unwrap();
        let t = text(&run("redis-cli", &["-p", &live.to_string(), "cluster", "nodes"]));
        t.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let port = f[1].split(['@', ':']).nth(1).unwrap().parse().unwrap();
                let slots = f[8..]
                    .iter()
                    .filter(|r| !r.starts_with('['))
                    .map(|r| match r.split_once('-') {
                        Some((a, b)) => (a.parse().unwrap(), b.parse().unwrap()),
                        None => (r.parse().unwrap(), r.parse().unwrap()),
                    })
                    .collect();
                Node { port, flags: f[2].to_owned(), master: f[3].to_owned(), id: f[0].to_owned(), slots }
            })
            .collect()
    }

    /// The port of the master serving `slot`, as a live node sees it.
    fn master_of(&self, slot: u16) -> Option<u16> {
        self.nodes()
            .into_iter()
            .find(|n| {
                n.flags.contains("master")
                    && !n.flags.contains("fail")
                    && n.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot))
            })
            .map(|n| n.port)
    }

    /// Kills the node on `port`.
    /// Sends `signal` (`STOP`, `CONT`) to the node on `port`: a frozen node answers nothing.
    fn signal(&self, port: u16, signal: &str) {
        let i = self.ports.iter().position(|p| *p == port).unwrap();
        let pid = self.nodes[i].as_ref().unwrap().0.id().to_string();
        let o = run("kill", &[&format!("-{signal}"), &pid]);
        assert!(o.status.success(), "kill -{signal} {pid}: {}", text(&o));
    }

    fn kill(&mut self, port: u16) {
        let i = self.ports.iter().position(|p| *p == port).unwrap();
        self.nodes[i].take();
    }

    fn urls(&self) -> String {
        self.ports.iter().map(|p| format!("redis://127.0.0.1:{p}")).collect::<Vec<_>>().join(",")
    }
}

/// What a stateless responder's `/health` says it answered from the store.
/// The "N store writes pending" of a signer's /health.
fn pending_of(health: &str) -> u64 {
    health
        .trim_end()
        .strip_suffix(" store writes pending")
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no pending count in the signer's health: {health}"))
}

fn answered_from_store(health: &str) -> u64 {
    let after = health.split("answered hot ").nth(1).unwrap_or_else(|| panic!("{health}"));
    after.split_whitespace().nth(2).unwrap().trim_end_matches(',').parse().unwrap()
}

/// `openssl ocsp` against `url` (POST); returns its combined output.
fn ocsp(d: &dyn Fn(&str) -> String, url: &str, issuer: &str, root: &str, cert: &str, extra: &[&str]) -> String {
    let o = run(
        "openssl",
        &[
            &["ocsp", "-issuer", &d(issuer), "-cert", &d(cert), "-url", url, "-CAfile", &d(root)],
            &["-verify_other", &d(issuer)][..],
            extra,
        ]
        .concat(),
    );
    text(&o)
}

fn curl(url: &str) -> String {
    text(&run("curl", &["-s", url]))
}

/// Waits until `f` holds, for at most `secs` (a liveness bound, not a latency target).
async fn until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The store key of a certificate's SHA-1 CertID (validator::store::key): `o`, 1, the
/// issuerKeyHash and the serial, read back from openssl's own request.
fn store_key(d: &dyn Fn(&str) -> String, issuer: &str, cert: &str) -> Vec<u8> {
    let req = d(&format!("{cert}.req"));
    let o = run("openssl", &["ocsp", "-issuer", &d(issuer), "-cert", &d(cert), "-no_nonce", "-reqout", &req]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&run("openssl", &["ocsp", "-reqin", &req, "-req_text"]));
    let field = |name: &str| {
        let line = t.lines().find(|l| l.trim().starts_with(name)).unwrap_or_else(|| panic!("{name} in {t}"));
        hex::decode(line.split(':').nth(1).unwrap().trim()).unwrap()
    };
    let mut serial = field("Serial Number");
    while serial.len() > 1 && serial[0] == 0 {
        serial.remove(0);
    }
    [&[b'o', 1][..], &field("Issuer Key Hash"), &serial].concat()
}

/// What both tests start on a cluster: the identity network and the CA with a resident's two
/// certificates (their CA certificates written as PEM files), the CA service, the validator's
/// responder keys, and two `ocsp-signer` partitions writing to the cluster, each answering
/// health. Two free ports are reserved for the responders, whose URL the CA put in certificates.
struct World {
    net: Network,
    _ca_service: Kill,
    store: String,
    rports: [u16; 2],
    urls: Vec<String>,
    sports: [u16; 2],
    signers: Vec<Option<Kill>>,
    sig_serial: String,
    auth_serial: String,
}

/// `replicas`: the signers' `--store-replicas`.
async fn world(dir: &Path, redis: &RedisCluster, name: &str, dob: &str, replicas: u32) -> World {
    let d = |f: &str| dir.join(f).display().to_string();
    let store = redis.urls();
    let rports = [free_port(), free_port()];
    let urls: Vec<String> = rports.iter().map(|p| format!("http://127.0.0.1:{p}/ocsp")).collect();
    let net = Network::start_with(dir, &["--ocsp-url", &urls[0]]).await;
    let resident = net.resident(name, dob).await;
    let (sign_csr, auth_csr) = (csr(dir, "sign"), csr(dir, "auth"));
    let (sig_serial, auth_serial) = net.issue_pair(dir, &resident, &sign_csr, &auth_csr, &d("out"));
    for (file, ca) in
        [("root.pem", "sign-root"), ("int.pem", "sign-13"), ("auth-root.pem", "auth-root"), ("auth-int.pem", "auth-13")]
    {
        std::fs::write(d(file), net.jpki(&["ca", "cert", "--actor", "op-1", ca]).stdout).unwrap();
    }
    let (ca_service, ca_url) = net.serve_ca(&"00".repeat(32)).await;
    net.enrol_validator(&ca_url, &d("v"), PASS);

    // Two signers, one partition each, reading the CA's database read only.
    let sports = [free_port(), free_port()];
    let signer = |i: usize| {
        Kill(
            Command::new(jpki_bin())
                .args(["serve", "ocsp-signer", "--ca-db", &d("ca.db"), "--responders", &d("v")])
                .args(["--store", &store, "--partition", &format!("{i}/2"), "--poll-ms", "100"])
                .args(["--listen", &format!("127.0.0.1:{}", sports[i])])
                .args(["--store-replicas", &replicas.to_string(), "--store-timeout-ms", "300"])
                .env("JPKI_VALIDATOR_PASSPHRASE", PASS)
                .spawn()
                .unwrap(),
        )
    };
    let signers = vec![Some(signer(0)), Some(signer(1))];
    for p in sports {
        let h = format!("http://127.0.0.1:{p}/health");
        until("signer ready", 60, || curl(&h).starts_with("ok")).await;
    }
    World { net, _ca_service: ca_service, store, rports, urls, sports, signers, sig_serial, auth_serial }
}

#[tokio::test(flavor = "multi_thread")]
async fn signers_and_keyless_responders_share_a_redis_cluster() {
    if !redis_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = |f: &str| dir.path().join(f).display().to_string();
    let mut redis = RedisCluster::start(dir.path(), 3);
    let World { net, _ca_service, store, rports, urls, sports, mut signers, sig_serial, .. } =
        world(dir.path(), &redis, "山田　花子", "1980-02-29", 0).await;
    let mut signed = 0;
    for p in sports {
        let t = curl(&format!("http://127.0.0.1:{p}/health"));
        signed += t.split_whitespace().nth(3).unwrap().parse::<usize>().unwrap();
    }
    // Every certificate the CA issued (the resident's two, the responders' own), with a SHA-1
    // and a SHA-256 response, signed by exactly one signer: what the signers report is what
    // the cluster holds.
    let keys: usize = redis
        .ports
        .iter()
        .map(|p| text(&run("redis-cli", &["-p", &p.to_string(), "dbsize"])).trim().parse::<usize>().unwrap())
        .sum();
    assert!(signed >= 4 && signed % 2 == 0, "{signed}");
    assert_eq!(signed, keys, "the partitions cover every certificate once");

    // Two responders without keys: no passphrase, no responder directory, no CA.
    let responder = |p: u16| {
        Kill(
            Command::new(jpki_bin())
                .args(["serve", "ocsp-responder", "--store", &store, "--hot-bytes", "1000000"])
                .args(["--listen", &format!("127.0.0.1:{p}")])
                .env_remove("JPKI_VALIDATOR_PASSPHRASE")
                .spawn()
                .unwrap(),
        )
    };
    let _responders = [responder(rports[0]), responder(rports[1])];
    for p in rports {
        let h = format!("http://127.0.0.1:{p}/health");
        until("responder subscribed", 30, || curl(&h).starts_with("ok")).await;
    }

    for url in &urls {
        for _ in 0..2 {
            let out = ocsp(&d, url, "int.pem", "root.pem", "sig.pem", &["-no_nonce"]);
            assert!(out.contains("Response verify OK") && out.contains("sig.pem: good"), "{url}: {out}");
            assert!(!out.contains("WARNING"), "{out}");
        }
        let out = ocsp(&d, url, "auth-int.pem", "auth-root.pem", "auth.pem", &["-no_nonce"]);
        assert!(out.contains("Response verify OK") && out.contains("auth.pem: good"), "{url}: {out}");
        // A nonce request: the pre-signed response, without the nonce (openssl says so).
        let out = ocsp(&d, url, "int.pem", "root.pem", "sig.pem", &[]);
        assert!(out.contains("sig.pem: good") && out.contains("WARNING: no nonce in response"), "{out}");
        assert!(out.contains("Response verify OK"), "{out}");
    }
    let health = curl(&format!("http://127.0.0.1:{}/health", rports[0]));
    assert!(health.contains("hot set 3 entries") || health.contains("hot set 2 entries"), "{health}");

    // GET (RFC 5019/9919) through curl: cache headers, ETag revalidation.
    let o = run(
        "openssl",
        &["ocsp", "-issuer", &d("auth-int.pem"), "-cert", &d("auth.pem"), "-no_nonce", "-reqout", &d("req.der")],
    );
    assert!(o.status.success(), "{}", text(&o));
    let b64 = text(&run("openssl", &["base64", "-A", "-in", &d("req.der")]));
    let enc = b64.trim().replace('/', "%2F").replace('+', "%2B").replace('=', "%3D");
    let get = format!("{}/{enc}", urls[1]);
    let o = run("curl", &["-s", "-D", &d("headers"), "-o", &d("resp.der"), &get]);
    assert!(o.status.success(), "{}", text(&o));
    let headers = std::fs::read_to_string(d("headers")).unwrap().to_ascii_lowercase();
    for h in ["200", "content-type: application/ocsp-response", "cache-control: max-age=", "etag: \"", "expires: "] {
        assert!(headers.contains(h), "missing {h:?} in {headers}");
    }
    let etag = headers.lines().find_map(|l| l.strip_prefix("etag: ")).unwrap().trim().to_owned();
    let o =
        run("curl", &["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", &format!("If-None-Match: {etag}"), &get]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "304");

    // Revocation through the CA: revoked on both responders (sig.pem was hot on both).
    net.revoke(&sig_serial);
    for url in &urls {
        until("revoked on every responder", 60, || {
            ocsp(&d, url, "int.pem", "root.pem", "sig.pem", &["-no_nonce"]).contains("sig.pem: revoked")
        })
        .await;
        let out = ocsp(&d, url, "int.pem", "root.pem", "sig.pem", &["-no_nonce"]);
        assert!(out.contains("Response verify OK") && out.contains("Reason: keyCompromise"), "{out}");
    }
    for p in rports {
        let h = curl(&format!("http://127.0.0.1:{p}/health"));
        let n: u64 = h.rsplit("invalidations ").next().unwrap().trim().parse().unwrap();
        assert!(n >= 2, "the revocation came as invalidations (SHA-1 and SHA-256): {h}");
    }

    // Hostile store contents for auth.pem: the (valid, signed) response of another
    // certificate, then garbage. Each is announced so the responders drop the hot copy; neither
    // is served.
    let client = redis::cluster::ClusterClient::new(
        redis.ports.iter().map(|p| format!("redis://127.0.0.1:{p}")).collect::<Vec<_>>(),
    )
    .unwrap();
    let mut conn = client.get_connection().unwrap();
    let auth_key = store_key(&d, "auth-int.pem", "auth.pem");
    let sig_key = store_key(&d, "int.pem", "sig.pem");
    let original: Vec<u8> = redis::cmd("GET").arg(&auth_key).query(&mut conn).unwrap();
    let other: Vec<u8> = redis::cmd("GET").arg(&sig_key).query(&mut conn).unwrap();
    assert_eq!(original.first(), Some(&b'G'), "a good response for auth.pem is in the store under its key");
    for (what, bad) in [("another certificate's response", other), ("garbage", b"Gnot an OCSP response".to_vec())] {
        let _: () = redis::cmd("SET").arg(&auth_key).arg(&bad).query(&mut conn).unwrap();
        let _: i64 = redis::cmd("PUBLISH").arg("jpki-ocsp-invalidate").arg(&auth_key).query(&mut conn).unwrap();
        for url in &urls {
            until(what, 30, || {
                let out = ocsp(&d, url, "auth-int.pem", "auth-root.pem", "auth.pem", &["-no_nonce"]);
                assert!(!out.contains("auth.pem: good") || !out.contains("revoked"), "{out}");
                out.contains("internalerror")
            })
            .await;
        }
    }
    let _: () = redis::cmd("SET").arg(&auth_key).arg(&original).query(&mut conn).unwrap();
    let _: i64 = redis::cmd("PUBLISH").arg("jpki-ocsp-invalidate").arg(&auth_key).query(&mut conn).unwrap();
    let out = ocsp(&d, &urls[0], "auth-int.pem", "auth-root.pem", "auth.pem", &["-no_nonce"]);
    assert!(out.contains("auth.pem: good") && out.contains("Response verify OK"), "restored: {out}");
    drop(conn);

    // One signer gone: the other still signs its partition; the responders keep serving.
    signers[0].take();
    let out = ocsp(&d, &urls[1], "int.pem", "root.pem", "sig.pem", &["-no_nonce"]);
    assert!(out.contains("sig.pem: revoked"), "{out}");

    // The store gone: the invalidation channel is lost, so the hot set is bypassed, and every
    // answer is tryLater (never a stale one); /health says degraded.
    for n in redis.nodes.iter_mut() {
        n.take();
    }
    for (url, p) in urls.iter().zip(rports) {
        until("tryLater without the store", 30, || {
            ocsp(&d, url, "auth-int.pem", "auth-root.pem", "auth.pem", &["-no_nonce"]).contains("trylater")
        })
        .await;
        let out = ocsp(&d, url, "int.pem", "root.pem", "sig.pem", &["-no_nonce"]);
        assert!(out.contains("trylater"), "{out}");
        let o = run("curl", &["-s", "-w", "\n%{http_code}", &format!("http://127.0.0.1:{p}/health")]);
        assert!(text(&o).contains("degraded") && text(&o).ends_with("503"), "{}", text(&o));
    }
    drop(signers);
}

/// One replica per master, signers with `--store-replicas 1`: a revocation of sig.pem is not
/// counted as written while the replica of its master is frozen, and is once the replica is
/// back; then that master dies, its replica takes over (cluster-node-timeout 1 s), and both
/// responders — one reading every answer from the store, one with a hot set — still answer
/// sig.pem revoked (the acknowledged revocation survived); a revocation after the takeover is
/// answered `revoked` by both.
#[tokio::test(flavor = "multi_thread")]
async fn a_replica_takes_over_a_dead_master_and_both_sides_carry_on() {
    if !redis_present() {
        return;
    }
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let d = |f: &str| dir.path().join(f).display().to_string();
    let mut redis = RedisCluster::start_with(dir.path(), 3, 1, 1000);
    let nodes = redis.nodes();
    assert_eq!(nodes.iter().filter(|n| n.flags.contains("master")).count(), 3, "{nodes:?}");
    assert_eq!(nodes.iter().filter(|n| n.flags.contains("slave")).count(), 3, "{nodes:?}");
    let World { net, _ca_service, store, rports, urls, sports, signers: _signers, sig_serial, auth_serial } =
        world(dir.path(), &redis, "鈴木　一郎", "1975-06-01", 1).await;
    // Responder 0 keeps nothing (every answer is a store read); responder 1 has a hot set.
    let responder = |p: u16, hot: &str| {
        Kill(
            Command::new(jpki_bin())
                .args(["serve", "ocsp-responder", "--store", &store, "--hot-bytes", hot])
                .args(["--listen", &format!("127.0.0.1:{p}"), "--store-timeout-ms", "300"])
                .env_remove("JPKI_VALIDATOR_PASSPHRASE")
                .spawn()
                .unwrap(),
        )
    };
    let _responders = [responder(rports[0], "0"), responder(rports[1], "1000000")];
    let health = |i: usize| curl(&format!("http://127.0.0.1:{}/health", rports[i]));
    for i in 0..2 {
        until("responder subscribed", 30, || health(i).starts_with("ok")).await;
    }
    for url in &urls {
        let out = ocsp(&d, url, "int.pem", "root.pem", "sig.pem", &["-no_nonce"]);
        assert!(out.contains("Response verify OK") && out.contains("sig.pem: good"), "{url}: {out}");
    }

    // The master serving sig.pem's SHA-1 key, its replica, and the replica's link up.
    let sig_key = store_key(&d, "int.pem", "sig.pem");
    let client = redis::cluster::ClusterClient::new(
        redis.ports.iter().map(|p| format!("redis://127.0.0.1:{p}")).collect::<Vec<_>>(),
    )
    .unwrap();
    let mut conn = client.get_connection().unwrap();
    let slot: u16 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(&sig_key).query(&mut conn).unwrap();
    let value: Vec<u8> = redis::cmd("GET").arg(&sig_key).query(&mut conn).unwrap();
    assert_eq!(value.first(), Some(&b'G'), "sig.pem's good response is in the store");
    drop(conn);
    let master = redis.master_of(slot).unwrap();
    let nodes = redis.nodes();
    let master_id = &nodes.iter().find(|n| n.port == master).unwrap().id;
    let replica = nodes.iter().find(|n| n.master == *master_id).unwrap_or_else(|| panic!("no replica: {nodes:?}")).port;
    until("the replica in sync", 30, || {
        text(&run("redis-cli", &["-p", &replica.to_string(), "info", "replication"])).contains("master_link_status:up")
    })
    .await;
    // A revocation while the replica is frozen: its master takes the write, but no replica
    // acknowledges it (WAIT 1), so the signer keeps it pending, retried, its invalidation not
    // yet published; once the replica is back it is acknowledged and published.
    let pending = || -> u64 { sports.iter().map(|p| pending_of(&curl(&format!("http://127.0.0.1:{p}/health")))).sum() };
    assert_eq!(pending(), 0);
    redis.signal(replica, "STOP");
    net.revoke(&sig_serial);
    until("the revocation read and written, unacknowledged", 30, || pending() > 0).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(pending() > 0, "a revocation no replica acknowledged was counted as written");
    redis.signal(replica, "CONT");
    until("the revocation acknowledged by the replica", 30, || pending() == 0).await;
    for url in &urls {
        until("revoked on both responders", 30, || {
            ocsp(&d, url, "int.pem", "root.pem", "sig.pem", &["-no_nonce"]).contains("sig.pem: revoked")
        })
        .await;
    }
    until("the replica in sync again", 30, || {
        text(&run("redis-cli", &["-p", &replica.to_string(), "info", "replication"])).contains("master_link_status:up")
    })
    .await;
    let before = answered_from_store(&health(0));

    // The master dies; its replica takes over the slots, with the acknowledged revocation.
    let killed = Instant::now();
    redis.kill(master);
    until("the replica promoted", 30, || {
        redis.master_of(slot) == Some(replica)
            && text(&run("redis-cli", &["-p", &replica.to_string(), "cluster", "info"])).contains("cluster_state:ok")
    })
    .await;
    let failed_over = killed.elapsed();

    // Both responders serve sig.pem again (after at most a few tryLater while their cluster
    // clients learn the new master): signed, and still revoked.
    for url in &urls {
        until("sig.pem served after the takeover", 30, || {
            ocsp(&d, url, "int.pem", "root.pem", "sig.pem", &["-no_nonce"]).contains("sig.pem: revoked")
        })
        .await;
        let out = ocsp(&d, url, "int.pem", "root.pem", "sig.pem", &["-no_nonce"]);
        assert!(out.contains("Response verify OK") && out.contains("Reason: keyCompromise"), "{url}: {out}");
    }
    let served_again = killed.elapsed();
    let after = answered_from_store(&health(0));
    assert!(after > before, "responder 0 read sig.pem from the promoted replica: {before} then {after}");

    // A revocation after the takeover (the authentication certificate): its signer writes it
    // to the cluster as it is now and publishes the invalidation; both responders answer revoked.
    net.revoke(&auth_serial);
    for url in &urls {
        until("auth.pem revoked after the takeover", 30, || {
            ocsp(&d, url, "auth-int.pem", "auth-root.pem", "auth.pem", &["-no_nonce"]).contains("auth.pem: revoked")
        })
        .await;
        let out = ocsp(&d, url, "auth-int.pem", "auth-root.pem", "auth.pem", &["-no_nonce"]);
        assert!(out.contains("Response verify OK") && out.contains("Reason: keyCompromise"), "{out}");
    }
    let mut conn = client.get_connection().unwrap();
    let value: Vec<u8> = redis::cmd("GET").arg(&sig_key).query(&mut conn).unwrap();
    assert_eq!(value.first(), Some(&b'R'), "the revoked response is in the store, on the promoted replica");
    let role = text(&run("redis-cli", &["-p", &replica.to_string(), "role"]));
    assert!(role.starts_with("master"), "{role}");
    eprintln!(
        "replica takeover: promoted {failed_over:?} after the kill, served on both responders after \
         {served_again:?}, revoked on both after {:?}; test {:?}",
        killed.elapsed(),
        started.elapsed()
    );
}
