//! `jpki bench ca`: certificate issuance through the CA's crash-safe pipeline (RSA-2048 CA key
//! in OpenSSL, SQLite with synchronous=FULL) next to the raw OpenSSL RSA-2048 sign rate on the
//! same threads; and CRL encoding of 1,000,000 entries (time, and peak-memory growth).

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use ca::authority::{AnyProfile, Authority, Plan, Settings, new_serial, shard_of};
use ca::crl::{self, CrlParams, Entry, EntryExtensions, Reason, Scope};
use ca::hierarchy::{Environment, Purpose};
use ca::key::{KeyAlgorithm, KeyBackend, SoftKey};
use ca::keystore::KeyStore;
use ca::profile::{AuthenticationCert, StatusUrls};
use ca::revocation::CertKind;

const RUNS: usize = 3;
/// Issuance batches, each next to its own measurement of the raw rate.
const ISSUE_RUNS: usize = 5;
const BATCH: usize = 2_000;
const CRL_ENTRIES: usize = 1_000_000;

/// The median of some measurements.
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// This process's peak resident set (VmHWM), KiB.
pub(crate) fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Clock ticks per second in `/proc` (USER_HZ: 100 on every Linux architecture we run on).
const USER_HZ: f64 = 100.0;

/// This process's CPU time so far (user + system, all threads, in clock ticks): for
/// comparisons that do not depend on what else the machine is running.
fn cpu_ticks() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name (which is in parentheses): state is field 3,
            // utime 14, stime 15.
            let rest = s.get(s.rfind(')')? + 2..)?;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

/// Signatures per second on `threads` threads, and how many were made.
fn raw_sign_rate(key: &SoftKey, threads: usize) -> (f64, usize) {
    let Ok(digest) = ca::key::digest(key, b"benchmark") else { return (0.0, 0) };
    let n = 1_500 / threads.max(1);
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..n {
                    let _ = key.sign_digest(&digest);
                }
            });
        }
    });
    ((n * threads) as f64 / t.elapsed().as_secs_f64(), n * threads)
}

/// Runs the CA benchmark and prints its table.
pub async fn run() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let now = identity::http::now();
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("CA benchmark ({threads} cores, {RUNS} runs, {ISSUE_RUNS} issuance batches, medians)\n");
    let key = SoftKey::ephemeral(KeyAlgorithm::Rsa2048)?;
    let raw1 = median((0..RUNS).map(|_| raw_sign_rate(&key, 1).0).collect());

    let db = ca::schema::open(&dir.path().join("ca.db").display().to_string()).await?;
    let keys = KeyStore::soft(&dir.path().join("keys"), net::secret::Secret::new(b"benchmark passphrase".to_vec()))?;
    let mut ca = Authority::open(db, keys, now).await?;
    ca.init("bench", Environment::Production, Settings::default(), now).await?;
    let g = Arc::new(ca.issuing("bench", Purpose::Authentication, Environment::Production, "13", now).await?);
    let issuer = <x509_cert::certificate::Certificate as der::Decode>::from_der(&g.certificate)?
        .tbs_certificate()
        .subject()
        .clone();
    let subject_key = SoftKey::ephemeral(KeyAlgorithm::Rsa2048)?;
    // The reference is measured between the batches (before the first, between each two,
    // after the last), and each batch is compared with the raw rate measured either side of
    // it: on a machine shared with other work the load changes within seconds.
    // CPU time is counted too: per certificate against per raw signature.
    let (mut rates, mut raws) = (Vec::new(), Vec::new());
    let (mut issue_cpu, mut raw_cpu, mut issued, mut signed) = (0, 0, 0, 0);
    let mut raw = |raws: &mut Vec<f64>| {
        let c = cpu_ticks();
        let (rate, n) = raw_sign_rate(&key, threads);
        raw_cpu += cpu_ticks() - c;
        signed += n;
        raws.push(rate);
    };
    raw(&mut raws);
    for _ in 0..ISSUE_RUNS {
        let plans = auth_plans(&g, subject_key.public_key_der(), BATCH, now)?;
        let (t, c) = (Instant::now(), cpu_ticks());
        let done = ca.run("bench", plans, now).await?;
        rates.push(done.len() as f64 / t.elapsed().as_secs_f64());
        issue_cpu += cpu_ticks() - c;
        issued += done.len();
        raw(&mut raws);
    }
    let ratio = median(rates.iter().zip(raws.windows(2)).map(|(r, w)| r / ((w[0] + w[1]) / 2.0)).collect());
    let issue = median(rates);
    let rawn = median(raws);
    println!("| measure | value | reference | ratio |");
    println!("|---|---|---|---|");
    println!("| raw OpenSSL RSA-2048 sign, 1 thread | {raw1:.0}/s | | |");
    println!("| raw OpenSSL RSA-2048 sign, {threads} threads | {rawn:.0}/s | | |");
    println!(
        "| issued certificates (batch {BATCH}: reserve, store TBS, sign on {threads} threads, store; SQLite FULL) | {issue:.0}/s | {rawn:.0}/s raw sign | {:.0}% |",
        100.0 * ratio
    );
    let per = |ticks: u64, n: usize| ticks as f64 * 1000.0 / USER_HZ / n.max(1) as f64;
    println!(
        "| CPU time per issued certificate (all threads) | {:.3} ms | {:.3} ms per raw signature | {:.0}% |",
        per(issue_cpu, issued),
        per(raw_cpu, signed),
        100.0 * per(raw_cpu, signed) / per(issue_cpu, issued).max(f64::MIN_POSITIVE)
    );

    // CRL encoding of a million entries: encode into a file, frame, hash, sign, write.
    let exts = EntryExtensions::new()?;
    let crl_key = SoftKey::ephemeral(KeyAlgorithm::Rsa2048)?;
    let params = CrlParams {
        issuer: issuer.clone(),
        issuer_key_id: g.key_id.clone(),
        number: 1,
        this_update: now,
        next_update: now + 86_400,
        scope: Scope::Shard { url: "http://127.0.0.1/crl/auth-13/g1/0.crl".into() },
    };
    let mut times = Vec::new();
    let rss_before = peak_rss_kib();
    let mut size = 0;
    for _ in 0..RUNS {
        let t = Instant::now();
        size = write_crl(dir.path(), &params, &crl_key, &exts, now)?;
        times.push(t.elapsed().as_secs_f64());
    }
    let growth = peak_rss_kib().saturating_sub(rss_before);
    let check = std::process::Command::new("openssl")
        .args(["crl", "-inform", "DER", "-noout", "-in"])
        .arg(dir.path().join("big.crl"))
        .output()
        .map(|o| if o.status.success() { "openssl crl parses it" } else { "openssl crl REJECTS it" })
        .unwrap_or("openssl not found");
    println!(
        "| CRL of {CRL_ENTRIES} entries (encode to file, frame, SHA-256, sign, write) | {:.3} s, {} MB | target ≤ 0.5 s | peak RSS growth {} KiB; {check} |",
        median(times),
        size / 1_000_000,
        growth
    );
    Ok(())
}

/// Writes a signed CRL of [`CRL_ENTRIES`] entries to `dir/big.crl` (entries streamed to a
/// file, then framed, hashed and signed); returns its size.
fn write_crl(
    dir: &std::path::Path,
    params: &CrlParams,
    crl_key: &SoftKey,
    exts: &EntryExtensions,
    now: i64,
) -> Result<u64> {
    let entries_path = dir.join("entries");
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&entries_path)?);
    let mut buf = Vec::with_capacity(128);
    let mut len = 0;
    let mut serial = [0u8; 16];
    for i in 0..CRL_ENTRIES {
        serial[..8].copy_from_slice(&(0x4000_0000_0000_0000u64 | i as u64).to_be_bytes());
        serial[8..].copy_from_slice(&(i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
        buf.clear();
        let e = Entry {
            serial: &serial,
            revoked_at: now - (i as i64 % 86_400),
            reason: if i % 2 == 0 { Reason::AffiliationChanged } else { Reason::Unspecified },
        };
        len += crl::encode_entry(&mut buf, &e, exts)?;
        std::io::Write::write_all(&mut w, &buf)?;
    }
    std::io::Write::flush(&mut w)?;
    drop(w);
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(dir.join("big.crl"))?);
    let size = crl::assemble(
        params,
        crl_key,
        len,
        || Ok(std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&entries_path)?)),
        &mut out,
    )?;
    std::io::Write::flush(&mut out)?;
    Ok(size as u64)
}

/// A signed 1,000,000-entry CRL for `issuer` at `dir/big.crl` (for `bench ocsp`'s CRL index row).
pub fn million_entry_crl(
    dir: &std::path::Path,
    issuer: &x509_cert::Certificate,
    key_id: &[u8],
    now: i64,
) -> Result<std::path::PathBuf> {
    let params = CrlParams {
        issuer: issuer.tbs_certificate().subject().clone(),
        issuer_key_id: key_id.to_vec(),
        number: 1,
        this_update: now,
        next_update: now + 86_400,
        scope: Scope::Shard { url: "http://127.0.0.1/crl/auth-13/g1/0.crl".into() },
    };
    write_crl(dir, &params, &SoftKey::ephemeral(KeyAlgorithm::Rsa2048)?, &EntryExtensions::new()?, now)?;
    Ok(dir.join("big.crl"))
}

/// `n` authentication-certificate plans for one issuing CA generation (all with the same
/// subject key): what the benchmarks feed to `Authority::run`.
pub(crate) fn auth_plans(g: &Arc<ca::authority::Generation>, spki: &[u8], n: usize, now: i64) -> Result<Vec<Plan>> {
    let issuer = g.cert()?.tbs_certificate().subject().clone();
    let t0 = time::OffsetDateTime::from_unix_timestamp(now)?;
    (0..n)
        .map(|i| {
            let serial = new_serial();
            let shard = shard_of(&serial, g.shards);
            Ok(Plan {
                kind: CertKind::Authentication,
                issuer: g.clone(),
                shard,
                spki: spki.to_vec(),
                not_before: t0,
                not_after: t0 + time::Duration::days(1800),
                resident_code: Some(format!("{i:011}")),
                issuance_id: Some(format!("BENCH{i:08}")),
                request_id: None,
                feed_position: 0,
                supersedes: Vec::new(),
                profile: AnyProfile::Authentication(AuthenticationCert {
                    issuer: issuer.clone(),
                    subject: AuthenticationCert::subject_name(&format!("BENCH{i:08}"))?,
                    policy: g.ca.policy(),
                    urls: StatusUrls {
                        crl: ca::authority::crl_url("http://127.0.0.1", "auth-13", 1, shard),
                        ocsp: "http://127.0.0.1/ocsp".into(),
                        ca_issuers: None,
                    },
                }),
                serial,
            })
        })
        .collect()
}
