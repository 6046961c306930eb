//! `jpki bench ocsp`: our responder (`jpki serve validator`, pre-signed responses) and the
//! reference (`openssl ocsp -index … -multi 2`, signing each response) for the same CA, the
//! same certificates and the same keep-alive load from `wrk` (GET requests, RFC 6960 A.1,
//! cycling over the certificates), one after the other on this machine. Prints requests/s and
//! p50/p99 latency for each, and the ratio. Then: loading and indexing a 1,000,000-entry CRL
//! (time and peak-memory growth).

use std::fmt::Write as _;
use std::process::{Command, Stdio};

use crate::proc::Kill;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use base64::Engine as _;
use ca::authority::{Authority, Settings};
use ca::hierarchy::{Environment, Purpose};
use ca::key::{KeyAlgorithm, KeyBackend, SoftKey};
use ca::keystore::KeyStore;
use der::{Decode, Encode};
use net::secret::Secret;
use validator::ocsp::{CertId, OcspRequest, OcspResponse, Request, ResponseStatus, SHA1, TbsRequest, Version};
use x509_cert::Certificate;

const CERTS: usize = 1_000;
const DURATION: &str = "10s";
pub(super) const CONNECTIONS: &str = "64";

/// `openssl ocsp -multi` forks workers that outlive a killed parent (and then spin): stop
/// every process whose command line names this run's index file.
struct KillAll(#[allow(dead_code)] Kill, String); // the Kill is held for its Drop
impl Drop for KillAll {
    fn drop(&mut self) {
        let _ = Command::new("pkill").args(["-KILL", "-f", &self.1]).status();
    }
}

/// A GET path for a SHA-1 CertID request without nonce.
pub(super) fn get_path(issuer: &Certificate, serial: &[u8]) -> Result<String> {
    use sha1::Digest as _;
    let name = issuer.tbs_certificate().subject().to_der()?;
    let key = issuer.tbs_certificate().subject_public_key_info().subject_public_key.raw_bytes();
    let req = OcspRequest {
        tbs_request: TbsRequest {
            version: Version::V1,
            requestor_name: None,
            request_list: vec![Request {
                req_cert: CertId {
                    hash_algorithm: spki::AlgorithmIdentifierOwned {
                        oid: SHA1,
                        parameters: Some(der::asn1::Null.into()),
                    },
                    issuer_name_hash: der::asn1::OctetString::new(sha1::Sha1::digest(&name).to_vec())?,
                    issuer_key_hash: der::asn1::OctetString::new(sha1::Sha1::digest(key).to_vec())?,
                    serial_number: x509_cert::serial_number::SerialNumber::new(serial)?,
                },
                single_request_extensions: None,
            }],
            request_extensions: None,
        },
        optional_signature: None,
    };
    let b64 = base64::engine::general_purpose::STANDARD.encode(req.to_der()?);
    Ok(b64.replace('/', "%2F").replace('+', "%2B").replace('=', "%3D"))
}

pub(super) fn wait_http(url: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ok = Command::new("curl").args(["-s", "-o", "/dev/null", "-w", "%{http_code}", url]).output()?;
        if String::from_utf8_lossy(&ok.stdout) == "200" {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "{url} did not answer");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Fetches one response and checks it says successful.
pub(super) fn check(url: &str) -> Result<usize> {
    let o = Command::new("curl").args(["-sf", url]).output()?;
    let r = OcspResponse::from_der(&o.stdout).with_context(|| format!("{url}: not an OCSP response"))?;
    ensure!(r.response_status == ResponseStatus::Successful, "{url}: {:?}", r.response_status);
    Ok(o.stdout.len())
}

pub(super) struct Load {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: String,
}

fn ms(s: &str) -> Option<f64> {
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
    let v: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => v / 1000.0,
        "ms" => v,
        "s" => v * 1000.0,
        _ => return None,
    })
}

pub(super) fn wrk(
    base: &str,
    prefix: &str,
    paths: &[String],
    dir: &std::path::Path,
    name: &str,
    duration: &str,
) -> Result<Load> {
    let mut lua = String::from("paths = {\n");
    for p in paths {
        writeln!(lua, "  \"{prefix}{p}\",")?;
    }
    lua.push_str(
        "}\ni = 0\nrequest = function()\n  i = i + 1\n  return wrk.format(\"GET\", paths[(i % #paths) + 1])\nend\n",
    );
    let script = dir.join(format!("{name}.lua"));
    std::fs::write(&script, lua)?;
    let o = Command::new("wrk")
        .args(["-t2", "-c", CONNECTIONS, "-d", duration, "--latency", "-s"])
        .arg(&script)
        .arg(base)
        .output()
        .context("cannot run wrk (apt install wrk; `cargo xtask bench ocsp` does)")?;
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let find = |key: &str| out.lines().find(|l| l.trim_start().starts_with(key)).map(|l| l.trim().to_string());
    let rps: f64 = find("Requests/sec:")
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .with_context(|| format!("wrk output without Requests/sec:\n{out}"))?;
    let pct = |p: &str| find(p).and_then(|l| ms(l.split_whitespace().nth(1)?)).unwrap_or(f64::NAN);
    let errors = [find("Socket errors:"), find("Non-2xx")].into_iter().flatten().collect::<Vec<_>>().join("; ");
    Ok(Load { rps, p50_ms: pct("50%"), p99_ms: pct("99%"), errors })
}

/// What the OCSP benchmarks serve: a CA database with [`CERTS`] authentication certificates of
/// one issuing CA, our responder's key and certificate in `{dir}/v`, and a GET path per
/// certificate; in `dir` also the reference responder's key and certificate (`ref.key`,
/// `ref.pem`) and the issuing CA's certificate (`int.pem`) for `openssl ocsp`.
pub(super) struct Fixture {
    pub db_path: String,
    pub issuer: Certificate,
    pub key_id: Vec<u8>,
    pub paths: Vec<String>,
    /// The issued serials (hex), in path order.
    pub serials: Vec<String>,
}

/// Builds the [`Fixture`] in `dir` (setup, not timed).
pub(super) async fn fixture(dir: &std::path::Path, now: i64) -> Result<Fixture> {
    let d = |f: &str| dir.join(f);
    let db_path = d("ca.db").display().to_string();
    let db = ca::schema::open(&db_path).await?;
    let keys = KeyStore::soft(&d("keys"), Secret::new(b"benchmark passphrase".to_vec()))?;
    let mut ca = Authority::open(db, keys, now).await?;
    ca.init("bench", Environment::Production, Settings::default(), now).await?;
    let g = Arc::new(ca.issuing("bench", Purpose::Authentication, Environment::Production, "13", now).await?);
    let issuer = Certificate::from_der(&g.certificate)?;
    let subject_key = SoftKey::ephemeral(KeyAlgorithm::Rsa2048)?;
    let plans = super::ca::auth_plans(&g, subject_key.public_key_der(), CERTS, now)?;
    let issued = ca.run("bench", plans, now).await?;
    // Our responder's key (encrypted) and the reference's (plain PEM for openssl), both
    // delegated responders of the issuing CA.
    std::fs::create_dir_all(d("v"))?;
    let ours =
        SoftKey::create(&d("v/auth-13-g1.key"), KeyAlgorithm::Rsa2048, &Secret::new(b"benchmark passphrase".to_vec()))?;
    let c = ca.issue_responder("bench", &g.ca, None, ours.public_key_der(), 30, now).await?;
    std::fs::write(d("v/auth-13-g1.pem"), crate::ca_cmd::pem("CERTIFICATE", &c.der)?)?;
    let reference = SoftKey::ephemeral(KeyAlgorithm::Rsa2048)?;
    let rc = ca.issue_responder("bench", &g.ca, None, reference.public_key_der(), 30, now).await?;
    std::fs::write(d("ref.pem"), crate::ca_cmd::pem("CERTIFICATE", &rc.der)?)?;
    std::fs::write(d("ref.key"), reference.pkey()?.private_key_to_pem_pkcs8()?)?;
    std::fs::write(d("int.pem"), crate::ca_cmd::pem("CERTIFICATE", &g.certificate)?)?;
    let mut paths = Vec::new();
    let mut serials = Vec::new();
    for c in &issued {
        paths.push(get_path(&issuer, &hex::decode(&c.serial)?)?);
        serials.push(c.serial.clone());
    }
    drop(ca);
    Ok(Fixture { db_path, issuer, key_id: g.key_id.clone(), paths, serials })
}

/// Runs the benchmark and prints the table.
pub async fn run() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let d = |f: &str| dir.path().join(f);
    let now = identity::http::now();
    let f = fixture(dir.path(), now).await?;
    let (db_path, issuer, paths) = (f.db_path.clone(), &f.issuer, &f.paths);
    // openssl's index: V, expiry, (no revocation), serial, file, subject.
    let mut index = String::new();
    for (i, serial) in f.serials.iter().enumerate() {
        writeln!(index, "V\t351231000000Z\t\t{}\tunknown\t/CN=BENCH{i:08}", serial.to_uppercase())?;
    }
    std::fs::write(d("index.txt"), index)?;

    let (p1, p2) = (crate::proc::free_port()?, crate::proc::free_port()?);
    let _ours = Kill(
        Command::new(std::env::current_exe()?)
            .args(["serve", "validator", "--ca-db", &db_path, "--responders"])
            .arg(d("v"))
            .args(["--listen", &format!("127.0.0.1:{p1}")])
            .env("JPKI_VALIDATOR_PASSPHRASE", "benchmark passphrase")
            .env("RUST_LOG", "warn")
            .stderr(Stdio::null())
            .spawn()?,
    );
    let index_arg = d("index.txt").display().to_string();
    let _reference = KillAll(
        Kill(
            Command::new("openssl")
                .args(["ocsp", "-index"])
                .arg(d("index.txt"))
                .args(["-port", &p2.to_string(), "-rsigner"])
                .arg(d("ref.pem"))
                .arg("-rkey")
                .arg(d("ref.key"))
                .arg("-CA")
                .arg(d("int.pem"))
                .args(["-multi", "2", "-nmin", "60"])
                .stdout(std::fs::File::create(d("openssl.log"))?)
                .stderr(std::fs::File::create(d("openssl.err"))?)
                .spawn()
                .context("cannot start openssl ocsp")?,
        ),
        index_arg,
    );
    let ours_base = format!("http://127.0.0.1:{p1}");
    let ref_base = format!("http://127.0.0.1:{p2}");
    wait_http(&format!("{ours_base}/health"))?;
    // openssl answers a GET of a valid request; poll until it listens.
    let deadline = Instant::now() + Duration::from_secs(20);
    while check(&format!("{ref_base}/{}", paths[0])).is_err() {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(d("openssl.log")).unwrap_or_default()
                + &std::fs::read_to_string(d("openssl.err")).unwrap_or_default();
            bail!("openssl ocsp did not answer: {:?}\n{log}", check(&format!("{ref_base}/{}", paths[0])).err());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let size_ours = check(&format!("{ours_base}/ocsp/{}", paths[0]))?;
    let size_ref = check(&format!("{ref_base}/{}", paths[0]))?;

    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "OCSP benchmark: {CERTS} certificates, GET, wrk -t2 -c{CONNECTIONS} -d{DURATION}, {threads} cores shared by server and load\n"
    );
    let a = wrk(&ours_base, "/ocsp/", paths, dir.path(), "ours", DURATION)?;
    let b = wrk(&ref_base, "/", paths, dir.path(), "ref", DURATION)?;
    println!("| responder | requests/s | p50 | p99 | response bytes | errors |");
    println!("|---|---:|---:|---:|---:|---|");
    println!(
        "| jpki serve validator (pre-signed, in memory) | {:.0} | {:.2} ms | {:.2} ms | {size_ours} | {} |",
        a.rps, a.p50_ms, a.p99_ms, a.errors
    );
    println!(
        "| openssl ocsp -index -multi 2 (signs each) | {:.0} | {:.2} ms | {:.2} ms | {size_ref} | {} |",
        b.rps, b.p50_ms, b.p99_ms, b.errors
    );
    println!("| ratio | {:.1}× | | | | |", a.rps / b.rps);

    // A million-entry CRL: load and index (what a verifier does with a downloaded CRL).
    let crl = super::ca::million_entry_crl(dir.path(), issuer, &f.key_id, now)?;
    let before = super::ca::peak_rss_kib();
    let mut times = Vec::new();
    let mut entries = 0;
    for _ in 0..3 {
        let t = Instant::now();
        let bytes = std::fs::read(&crl)?;
        let idx = validator::crl_index::CrlIndex::parse(&bytes)?;
        entries = idx.len();
        times.push(t.elapsed().as_secs_f64());
        ensure!(idx.contains(&idx.sample_serial()), "index lookup failed");
    }
    times.sort_by(f64::total_cmp);
    let grew = super::ca::peak_rss_kib().saturating_sub(before);
    println!("\n| CRL load + index | value |");
    println!("|---|---:|");
    println!("| entries | {entries} |");
    println!("| time (median of 3; read, parse, index) | {:.3} s |", times[1]);
    println!("| peak memory growth (VmHWM) | {:.1} MB |", grew as f64 / 1024.0);
    Ok(())
}
