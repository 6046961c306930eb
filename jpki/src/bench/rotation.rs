//! `jpki bench rotation` (issue 11): per CA key algorithm, in one run, issuance through the
//! crash-safe pipeline next to the raw signing rate of the same key on the same threads, and
//! the sizes a verifier sees (certificate, CRL entry and signature, OCSP response); then the
//! emergency path at 1,000,000 certificates: the generation revoked in one transaction, the
//! validator reading the million-entry revocation stream, and answers for a sample of serials,
//! against the 60 s target; the CRLs of that generation published; and the time to re-sign one
//! generation's OCSP set (measured on every pre-signed answer of the issuance rows, stated per
//! million).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, ensure};
use ca::authority::{Authority, Settings};
use ca::hierarchy::{CaId, Environment, Purpose};
use ca::key::{KeyAlgorithm, KeyBackend, SoftKey};
use ca::keystore::KeyStore;
use ca::status::StatusReader;
use validator::responder::{Answer, Responder, Service};

use super::ca::{auth_plans, median};

const RUNS: usize = 3;
const BATCH: usize = 2_000;
const EMERGENCY: i64 = 1_000_000;
const SAMPLE: usize = 1_000;
const TARGET_SECS: f64 = 60.0;

fn raw_sign_rate(key: &SoftKey, threads: usize) -> f64 {
    let Ok(digest) = ca::key::digest(key, b"benchmark") else { return 0.0 };
    let n = 600 / threads.max(1);
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
    (n * threads) as f64 / t.elapsed().as_secs_f64()
}

async fn authority(dir: &std::path::Path, alg: KeyAlgorithm, now: i64) -> Result<Authority> {
    let db = ca::schema::open(&dir.join("ca.db").display().to_string()).await?;
    let keys = KeyStore::soft(&dir.join("keys"), net::secret::Secret::new(b"benchmark passphrase".to_vec()))?;
    let mut ca = Authority::open(db, keys, now).await?;
    let settings = Settings { ca_algorithm: alg, shards: 16, ..Settings::default() };
    ca.init("bench", Environment::Production, settings, now).await?;
    Ok(ca)
}

/// An OCSP request for one serial of `issuer` (SHA-1 CertID, no nonce).
fn ocsp_request(issuer: &x509_cert::Certificate, serial: &[u8]) -> Result<Vec<u8>> {
    use der::Encode;
    use sha1::Digest;
    use validator::ocsp::{CertId, OcspRequest, Request, SHA1, TbsRequest, Version};
    let name = issuer.tbs_certificate().subject().to_der()?;
    let key = issuer.tbs_certificate().subject_public_key_info().subject_public_key.raw_bytes();
    let id = CertId {
        hash_algorithm: spki::AlgorithmIdentifierOwned { oid: SHA1, parameters: Some(der::asn1::Null.into()) },
        issuer_name_hash: der::asn1::OctetString::new(sha1::Sha1::digest(&name).to_vec())?,
        issuer_key_hash: der::asn1::OctetString::new(sha1::Sha1::digest(key).to_vec())?,
        serial_number: x509_cert::serial_number::SerialNumber::new(serial)?,
    };
    let req = OcspRequest {
        tbs_request: TbsRequest {
            version: Version::V1,
            requestor_name: None,
            request_list: vec![Request { req_cert: id, single_request_extensions: None }],
            request_extensions: None,
        },
        optional_signature: None,
    };
    Ok(req.to_der()?)
}

/// Whether an OCSP answer says revoked.
fn says_revoked(a: &Answer) -> bool {
    use der::Decode;
    let Ok(r) = validator::ocsp::OcspResponse::from_der(a.der()) else { return false };
    let Some(b) = r.response_bytes else { return false };
    let Ok(basic) = validator::ocsp::BasicOcspResponse::from_der(b.response.as_bytes()) else { return false };
    basic.tbs_response_data.responses.iter().all(|s| matches!(s.cert_status, validator::ocsp::CertStatus::Revoked(_)))
}

/// Runs the rotation benchmark and prints its tables.
pub async fn run() -> Result<()> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let now = identity::http::now();
    println!("Rotation benchmark ({threads} cores, {RUNS} runs, medians)\n");
    println!(
        "| CA algorithm | issued/s (batch {BATCH}) | raw sign/s, same key and threads | ratio | certificate | CRL entry | CRL signature overhead | OCSP response | OCSP re-sign/s | 1M responses re-signed in |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for alg in [KeyAlgorithm::Rsa2048, KeyAlgorithm::EcP384, KeyAlgorithm::MlDsa65] {
        let dir = tempfile::tempdir()?;
        let ca = authority(dir.path(), alg, now).await?;
        let g = Arc::new(ca.issuing("bench", Purpose::Authentication, Environment::Production, "13", now).await?);
        let subject = SoftKey::ephemeral(KeyAlgorithm::EcP384)?;
        let (mut rates, mut raws, mut issued) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..RUNS {
            let plans = auth_plans(&g, subject.public_key_der(), BATCH, now)?;
            let t = Instant::now();
            let done = ca.run("bench", plans, now).await?;
            rates.push(done.len() as f64 / t.elapsed().as_secs_f64());
            issued.extend(done);
            let raw_key = SoftKey::ephemeral(alg)?;
            raws.push(raw_sign_rate(&raw_key, threads));
        }
        let (rate, raw) = (median(rates), median(raws));
        let cert = issued[0].der.len();
        // CRL sizes: the shard CRLs with no entries, then with 1,000 revocations.
        let out = dir.path().join("pub");
        let empty: u64 = ca
            .publish_crls("bench", &out, now, &|_, _| {})
            .await?
            .iter()
            .filter(|p| p.ca == "auth-13")
            .map(|p| p.bytes)
            .sum::<u64>()
            / 16;
        for c in issued.iter().take(1000) {
            ca.revoke("bench", &c.serial, ca::crl::Reason::KeyCompromise, "bench", now).await?;
        }
        let full: u64 = ca
            .publish_crls("bench", &out, now, &|_, _| {})
            .await?
            .iter()
            .filter(|p| p.ca == "auth-13")
            .map(|p| p.bytes)
            .sum();
        let per_entry = (full - empty * 16) as f64 / 1000.0;
        // OCSP: a responder key of the same algorithm; load pre-signs every certificate.
        let rkey = SoftKey::ephemeral(alg)?;
        let rc = ca.issue_responder("bench", &g.ca, None, rkey.public_key_der(), 30, now).await?;
        let responder = Responder::new(Arc::new(rkey), &rc.der)?;
        let status = StatusReader::open(&dir.path().join("ca.db").display().to_string()).await?;
        let svc = Arc::new(Service::open(status, vec![responder], 86_400, 1_000.0).await?);
        svc.load(now).await?;
        let issuer = g.cert()?;
        let serial = hex::decode(&issued[1500].serial)?;
        let a = svc.answer(&ocsp_request(&issuer, &serial)?, now).await;
        let ocsp = a.der().len();
        let t = Instant::now();
        let n = svc.refresh(now + 86_400).await?;
        let resign = n as f64 / t.elapsed().as_secs_f64();
        println!(
            "| {} | {rate:.0} | {raw:.0} | {:.0}% | {cert} B | {per_entry:.1} B | {empty} B | {ocsp} B | {resign:.0} | {:.0} s |",
            alg.name(),
            100.0 * rate / raw,
            1_000_000.0 / resign
        );
    }
    emergency(now).await
}

/// The emergency rows: 1,000,000 certificates of one generation revoked and served revoked.
async fn emergency(now: i64) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = authority(dir.path(), KeyAlgorithm::Rsa2048, now).await?;
    let g = ca.issuing("bench", Purpose::Authentication, Environment::Production, "13", now).await?;
    // A million issued certificates of auth-13 g1, as rows (status is all the emergency path
    // reads; the DER of each is not needed to revoke it or answer for it).
    let t = Instant::now();
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
         INSERT INTO ca_certificate (serial, issuer_slug, issuer_generation, kind, state, resident_code, shard, created_at, not_before, not_after) \
         SELECT printf('7e%030x', i), 'auth-13', 1, 2, 3, printf('%011d', i), i % 16, $2, $2, $3 FROM n",
    )
    .bind(EMERGENCY)
    .bind(now)
    .bind(now + 5 * 365 * 86_400)
    .execute(ca.db().pool())
    .await?;
    let inserted = t.elapsed().as_secs_f64();
    // The validator serves auth-13 g1 with its own responder, started before the emergency.
    let rkey = SoftKey::ephemeral(KeyAlgorithm::EcP384)?;
    let rc = ca.issue_responder("bench", &g.ca, Some(1), rkey.public_key_der(), 30, now).await?;
    let responder = Responder::new(Arc::new(rkey), &rc.der)?;
    let status = StatusReader::open(&dir.path().join("ca.db").display().to_string()).await?;
    let svc = Arc::new(Service::open(status, vec![responder], 86_400, 100_000.0).await?);
    svc.poll(now).await?;
    // The successor takes over at once (a ceremony with its activation now).
    let rfc = time::OffsetDateTime::from_unix_timestamp(now)?.format(&time::format_description::well_known::Rfc3339)?;
    let file = format!(
        "ca = \"auth-13\"\ngeneration = 2\nalgorithm = \"p384\"\nkey = \"software\"\nnot_before = \"{rfc}\"\nactivation = \"{rfc}\"\nname = \"same\"\n"
    );
    ca.ceremony_run("bench", &file, now).await?;
    let id = CaId::issuing(Purpose::Authentication, Environment::Production, "13")?;
    let t = Instant::now();
    let c = ca.compromise("bench", &id, 1, now + 1).await?;
    let revoke_secs = t.elapsed().as_secs_f64();
    ensure!(c.revoked as i64 >= EMERGENCY, "revoked {}", c.revoked);
    let t = Instant::now();
    svc.poll(now + 2).await?;
    let poll_secs = t.elapsed().as_secs_f64();
    ensure!(svc.seen_seq() == c.head, "the validator read up to {} of {}", svc.seen_seq(), c.head);
    let issuer = g.cert()?;
    let t = Instant::now();
    let mut revoked = 0;
    for k in 0..SAMPLE {
        let i = 1 + (k as i64 * 7919) % EMERGENCY;
        let serial = hex::decode(format!("7e{i:030x}"))?;
        let a = svc.answer(&ocsp_request(&issuer, &serial)?, now + 3).await;
        revoked += usize::from(says_revoked(&a));
    }
    let answer_secs = t.elapsed().as_secs_f64();
    ensure!(revoked == SAMPLE, "{revoked} of {SAMPLE} sampled answers said revoked");
    let total = revoke_secs + poll_secs + answer_secs;
    let t = Instant::now();
    let published = ca.publish_crls("bench", &dir.path().join("pub"), now + 4, &|_, _| {}).await?;
    let crl_secs = t.elapsed().as_secs_f64();
    let entries: u64 = published.iter().filter(|p| p.ca == "auth-13" && p.generation == 1).map(|p| p.entries).sum();
    let bytes: u64 = published.iter().filter(|p| p.ca == "auth-13" && p.generation == 1).map(|p| p.bytes).sum();
    println!(
        "\nEmergency: auth-13 g1 (RSA-2048) with {EMERGENCY} issued certificates declared compromised (SQLite, synchronous=FULL)\n"
    );
    println!("| step | time | reference |");
    println!("|---|---|---|");
    println!("| (set-up: {EMERGENCY} certificate rows inserted) | {inserted:.1} s | |");
    println!("| revoke the generation (CA certificate + every certificate, one transaction) | {revoke_secs:.1} s | |");
    println!("| validator reads the {} revocations (sequence {}) | {poll_secs:.1} s | |", c.revoked + 1, c.head);
    println!("| {SAMPLE} sampled OCSP answers, all revoked (cACompromise), signed on demand | {answer_secs:.2} s | |");
    println!(
        "| revoked and served as revoked | {total:.1} s | {TARGET_SECS:.0} s target ({:.0}%) |",
        100.0 * total / TARGET_SECS
    );
    println!("| its 16 shard CRLs published: {entries} entries, {:.1} MB | {crl_secs:.1} s | |", bytes as f64 / 1e6);
    ensure!(entries >= EMERGENCY as u64, "the CRLs hold {entries} entries");
    Ok(())
}
