//! The OCSP responder: one delegated responder key per CA generation, certificate status
//! read through the CA's status boundary ([`ca::status::StatusSource`]: the CA's database read
//! only, or the CA service's status stream; never its keys), and
//! responses pre-signed at start-up, on revocation and before they go stale, kept in memory by
//! (issuer, hash algorithm, serial). Revocations are picked up by the CA's revocation sequence
//! number, never by time, and nothing is re-signed before every revocation up to the current
//! sequence has been read. A cache hit is a hash lookup and a reference-counted byte buffer: no database and
//! no signing. Nonce requests, multi-certificate requests and cache misses take a bounded,
//! rate-limited live path.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use ca::crl::Reason;
use ca::key::KeyBackend;
use ca::status::{CaCertificate, CertStatus as CaStatus, StatusSource};
use der::asn1::{BitString, GeneralizedTime, Null, OctetString};
use der::{Decode, Encode};
use sha1::Digest as _;
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::ext::Extension;
use x509_cert::serial_number::SerialNumber;

use crate::error::{Error, Result};
use crate::ocsp::{
    BasicOcspResponse, CertId, CertStatus, OCSP_BASIC, OCSP_NONCE, OcspRequest, OcspResponse, ResponderId,
    ResponseBytes, ResponseData, ResponseStatus, RevokedInfo, SHA1, SHA256, SingleResponse, Version,
};

/// Largest request we parse (RFC 9919 clients send one CertID, well under 1 KiB).
pub const MAX_REQUEST: usize = 4096;
/// Largest nonce we echo (RFC 9654: 1..=32 octets).
pub const MAX_NONCE: usize = 32;

/// Hash algorithm of a CertID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    /// SHA-1 (what most clients send).
    Sha1,
    /// SHA-256.
    Sha256,
}

impl Alg {
    const BOTH: [Alg; 2] = [Alg::Sha1, Alg::Sha256];

    /// The algorithm of a CertID's hashAlgorithm (SHA-1 or SHA-256), by OID.
    pub fn of(id: &AlgorithmIdentifierOwned) -> Option<Alg> {
        match id.oid {
            o if o == SHA1 => Some(Alg::Sha1),
            o if o == SHA256 => Some(Alg::Sha256),
            _ => None,
        }
    }
    fn hash(self, b: &[u8]) -> Vec<u8> {
        match self {
            Alg::Sha1 => sha1::Sha1::digest(b).to_vec(),
            Alg::Sha256 => sha2::Sha256::digest(b).to_vec(),
        }
    }
    fn identifier(self) -> AlgorithmIdentifierOwned {
        AlgorithmIdentifierOwned { oid: if self == Alg::Sha1 { SHA1 } else { SHA256 }, parameters: Some(Null.into()) }
    }
}

/// A delegated responder: its key and the certificate the CA issued for it.
#[derive(Debug)]
pub struct Responder {
    /// The key (a responder key; never a CA key).
    pub key: Arc<dyn KeyBackend>,
    /// Its certificate (id-kp-OCSPSigning, ocsp-nocheck).
    pub cert: Certificate,
    key_hash: OctetString,
}

impl Responder {
    /// Pairs a key with its certificate, checking they belong together.
    pub fn new(key: Arc<dyn KeyBackend>, cert_der: &[u8]) -> Result<Responder> {
        let cert = Certificate::from_der(cert_der)?;
        let spki = cert.tbs_certificate().subject_public_key_info().to_der()?;
        if spki != key.public_key_der() {
            return Err(Error::Config("the responder certificate is not for this key".into()));
        }
        let bits = cert.tbs_certificate().subject_public_key_info().subject_public_key.raw_bytes();
        let key_hash = OctetString::new(sha1::Sha1::digest(bits).to_vec())?;
        Ok(Responder { key, cert, key_hash })
    }
}

/// id-kp-OCSPSigning (RFC 6960 §4.2.2.2).
const ID_KP_OCSP_SIGNING: der::oid::ObjectIdentifier = der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");

/// Checks a responder certificate before it is used (review finding H5/issue 10): its key is
/// no CA generation's key (compared as SubjectPublicKeyInfo), it is not a CA certificate, and
/// it has id-kp-OCSPSigning. [`Responder::new`] has checked the key matches the certificate.
pub fn check_responder(cert: &Certificate, cas: &[CaCertificate]) -> Result<()> {
    use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage};
    let spki = cert.tbs_certificate().subject_public_key_info().to_der()?;
    for ca in cas {
        let c = Certificate::from_der(&ca.certificate)?;
        if c.tbs_certificate().subject_public_key_info().to_der()? == spki {
            return Err(Error::Config(format!(
                "the responder key is the key of CA {} g{}: a CA key is never a responder key",
                ca.ca.slug(),
                ca.generation
            )));
        }
    }
    let tbs = cert.tbs_certificate();
    if tbs.get_extension::<BasicConstraints>()?.is_some_and(|(_, bc)| bc.ca) {
        return Err(Error::Config("the responder certificate is a CA certificate".into()));
    }
    if !tbs.get_extension::<ExtendedKeyUsage>()?.is_some_and(|(_, eku)| eku.0.contains(&ID_KP_OCSP_SIGNING)) {
        return Err(Error::Config("the responder certificate lacks id-kp-OCSPSigning".into()));
    }
    Ok(())
}

/// A certificate's authority key identifier (the issuer generation's SKI).
pub fn authority_key_id(cert: &Certificate) -> Option<Vec<u8>> {
    let (_, aki) = cert.tbs_certificate().get_extension::<x509_cert::ext::pkix::AuthorityKeyIdentifier>().ok()??;
    aki.key_identifier.map(|k| k.as_bytes().to_vec())
}

/// One CA generation we answer for.
#[derive(Debug)]
pub struct Issuer {
    /// CA slug.
    pub slug: String,
    /// Generation.
    pub generation: i64,
    /// The generation's key identifier (SKI).
    pub key_id: Vec<u8>,
    /// The serial of the generation's own CA certificate (hex, as the CA's tables write it):
    /// its revocation means the generation is compromised.
    serial: String,
    hashes: IssuerHashes,
    responder: Responder,
}

impl Issuer {
    /// The generation `r` answers for: checks the responder ([`check_responder`], against every
    /// CA generation in `cas`) and finds the generation whose key identifier is its AKI. What
    /// start-up does for each responder, and what a responder enrolled while running passes
    /// through before it answers.
    fn of(r: Responder, cas: &[CaCertificate]) -> Result<Issuer> {
        check_responder(&r.cert, cas)?;
        let aki = authority_key_id(&r.cert).ok_or_else(|| Error::Config("responder certificate without AKI".into()))?;
        let g = cas.iter().find(|g| g.key_id == aki).ok_or_else(|| {
            Error::Config(format!("no CA generation has key id {} (the responder's AKI)", hex::encode(&aki)))
        })?;
        let ca = Certificate::from_der(&g.certificate)?;
        let hashes = issuer_hashes(&ca)?;
        let serial = hex::encode(ca.tbs_certificate().serial_number().as_bytes());
        Ok(Issuer { slug: g.ca.slug(), generation: g.generation, key_id: aki, serial, hashes, responder: r })
    }

    /// The responder's certificate.
    pub fn responder_certificate(&self) -> &Certificate {
        &self.responder.cert
    }
}

/// A certificate's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Issued and not revoked.
    Good,
    /// Revoked.
    Revoked {
        /// Unix seconds.
        at: i64,
        /// Why.
        reason: Reason,
    },
    /// Not issued by this CA generation (as far as the CA's tables say).
    Unknown,
}

/// A pre-signed response.
#[derive(Debug)]
pub struct Cached {
    /// The OCSPResponse DER.
    pub der: Bytes,
    /// thisUpdate (unix seconds).
    pub this_update: i64,
    /// nextUpdate.
    pub next_update: i64,
    /// Strong ETag (quoted hex of SHA-256).
    pub etag: String,
    /// Status it says.
    pub status: Status,
    issuer: usize,
    alg: Alg,
    serial: Vec<u8>,
}

impl Cached {
    /// A response read from the shared store (by a stateless responder, which checked it
    /// answers the request's CertID).
    pub fn stored(der: Bytes, this_update: i64, next_update: i64, etag: String, status: Status) -> Cached {
        Cached { der, this_update, next_update, etag, status, issuer: usize::MAX, alg: Alg::Sha1, serial: Vec::new() }
    }
}

/// What the responder answers.
#[derive(Debug)]
pub enum Answer {
    /// A pre-signed response (cacheable by HTTP caches too).
    Cached(Arc<Cached>),
    /// A response made for this request (nonce, several certificates, an error).
    Live(Bytes),
}

impl Answer {
    /// `malformedRequest` (request bytes that are not an OCSP request at all).
    pub fn malformed() -> Answer {
        Answer::Live(error_der(ResponseStatus::MalformedRequest))
    }

    /// The DER.
    pub fn der(&self) -> &Bytes {
        match self {
            Answer::Cached(c) => &c.der,
            Answer::Live(b) => b,
        }
    }
}

/// An OCSPResponse without a body: an error status.
pub fn error_der(s: ResponseStatus) -> Bytes {
    Bytes::from(OcspResponse::error(s).to_der().unwrap_or_else(|_| vec![0x30, 0x03, 0x0A, 0x01, 0x02]))
}

fn time(unix: i64) -> Result<GeneralizedTime> {
    Ok(GeneralizedTime::from_unix_duration(Duration::from_secs(u64::try_from(unix).unwrap_or(0)))?)
}

fn minimal(serial: &[u8]) -> &[u8] {
    let mut s = serial;
    while s.len() > 1 && s[0] == 0 {
        s = &s[1..];
    }
    s
}

fn cache_key(issuer: usize, alg: Alg, serial: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(serial.len() + 5);
    k.extend_from_slice(&(issuer as u32).to_be_bytes());
    k.push(alg as u8);
    k.extend_from_slice(minimal(serial));
    k
}

/// (hash algorithm, issuerNameHash, issuerKeyHash) for SHA-1 and SHA-256, in that order.
type IssuerHashes = [(Alg, Vec<u8>, Vec<u8>); 2];

/// The (hash algorithm, issuerNameHash, issuerKeyHash) of both CertID hash algorithms for the CA
/// certificate `ca` (RFC 6960 §4.1.1: the hash of the issuer's DER name and of its public key's
/// BIT STRING value).
fn issuer_hashes(ca: &Certificate) -> Result<IssuerHashes> {
    let name = ca.tbs_certificate().subject().to_der()?;
    let key = ca.tbs_certificate().subject_public_key_info().subject_public_key.raw_bytes();
    Ok(Alg::BOTH.map(|a| (a, a.hash(&name), a.hash(key))))
}

/// The CertID of `serial` issued by `issuer` with hash algorithm `alg` (pure).
pub fn cert_id(alg: Alg, issuer: &Certificate, serial: &[u8]) -> Result<CertId> {
    let [(_, n1, k1), (_, n256, k256)] = issuer_hashes(issuer)?;
    let (n, k) = if alg == Alg::Sha1 { (n1, k1) } else { (n256, k256) };
    Ok(CertId {
        hash_algorithm: alg.identifier(),
        issuer_name_hash: OctetString::new(n)?,
        issuer_key_hash: OctetString::new(k)?,
        serial_number: SerialNumber::new(serial)?,
    })
}

/// One SingleResponse (RFC 6960 §4.2.1): `status` of `id`, thisUpdate `this_update`, nextUpdate
/// `validity` seconds later (unix seconds; pure: the caller gives the time). A revocation's
/// reason is omitted when unspecified.
pub fn single_response(id: CertId, status: Status, this_update: i64, validity: i64) -> Result<SingleResponse> {
    let cert_status = match status {
        Status::Good => CertStatus::Good(Null),
        Status::Unknown => CertStatus::Unknown(Null),
        Status::Revoked { at, reason } => CertStatus::Revoked(RevokedInfo {
            revocation_time: time(at)?,
            revocation_reason: (reason != Reason::Unspecified).then(|| reason.x509()),
        }),
    };
    Ok(SingleResponse {
        cert_id: id,
        cert_status,
        this_update: time(this_update)?,
        next_update: Some(time(this_update + validity)?),
        single_extensions: None,
    })
}

/// A successful OCSPResponse (DER) carrying a BasicOCSPResponse of `singles`, producedAt
/// `produced_at`, responder ID by key hash, the nonce extension if given, signed by
/// `responder`'s key and carrying its certificate (RFC 6960 §4.2.1, §4.2.2.2). Pure: the caller
/// gives the time.
pub fn signed_response(
    responder: &Responder,
    singles: Vec<SingleResponse>,
    nonce: Option<Extension>,
    produced_at: i64,
) -> Result<Vec<u8>> {
    let r = responder;
    let data = ResponseData {
        version: Version::V1,
        responder_id: ResponderId::ByKey(r.key_hash.clone()),
        produced_at: time(produced_at)?,
        responses: singles,
        response_extensions: nonce.map(|n| vec![n]),
    };
    let sig = ca::key::sign(r.key.as_ref(), &data.to_der()?)?;
    let basic = BasicOcspResponse {
        tbs_response_data: data,
        signature_algorithm: r.key.algorithm().signature_algorithm(),
        signature: BitString::from_bytes(&sig)?,
        certs: Some(vec![r.cert.clone()]),
    };
    let resp = OcspResponse {
        response_status: ResponseStatus::Successful,
        response_bytes: Some(ResponseBytes { response_type: OCSP_BASIC, response: OctetString::new(basic.to_der()?)? }),
    };
    Ok(resp.to_der()?)
}

/// A token bucket for the live path.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    per_second: f64,
    last: Instant,
}

impl Bucket {
    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.per_second).min(self.per_second);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Counters for the operator.
#[derive(Debug, Default)]
pub struct Stats {
    /// Cache hits.
    pub hits: std::sync::atomic::AtomicU64,
    /// Live-signed responses.
    pub live: std::sync::atomic::AtomicU64,
    /// Refused for rate (tryLater).
    pub try_later: std::sync::atomic::AtomicU64,
}

/// The responder.
#[derive(Debug)]
pub struct Service {
    /// The generations served, by index (the index is part of the cache keys). Only ever
    /// appended to: a generation enrolled while running ([`Service::add_responder`]) is added
    /// at the end, never between or in place of others.
    issuers: RwLock<Vec<Arc<Issuer>>>,
    /// Per issuer: when its own CA certificate was revoked (the generation is compromised). The
    /// CA revokes everything such a generation issued in the same transaction; its answers are
    /// then signed on demand from the status source (revoked, cACompromise) instead of one by
    /// one in advance, and its cached "good" answers are dropped at once.
    compromised: RwLock<Vec<Option<i64>>>,
    cache: RwLock<HashMap<Vec<u8>, Arc<Cached>>>,
    status: StatusSource,
    validity: i64,
    live: tokio::sync::Semaphore,
    bucket: Mutex<Bucket>,
    revoked_seen: Mutex<HashSet<String>>,
    /// Every revocation numbered up to this has been read and signed.
    seen_seq: AtomicI64,
    /// Held by whoever reads revocations or re-signs: one poller at a time, and no re-signing
    /// between a read of the sequence and the signing of what it brought.
    poll_lock: tokio::sync::Mutex<()>,
    /// Counters.
    pub stats: Stats,
    /// Signer mode: responses go to the shared store (this partition only) and are not kept.
    sink: Option<crate::store::Sink>,
    /// Woken when a request names an issuer no responder is enrolled for (see
    /// [`Service::unknown_issuer_asked`]); holds at most one wake-up, however many requests.
    unknown_issuer: tokio::sync::Notify,
}

impl Service {
    /// Checks each responder ([`check_responder`]) and matches it to the CA generation whose
    /// key identifier is its AKI. `status` is where the CA's status is read (a
    /// [`ca::status::StatusReader`] or a [`ca::status::StatusClient`] converts into it).
    pub async fn open(
        status: impl Into<StatusSource>,
        responders: Vec<Responder>,
        validity_secs: i64,
        live_per_second: f64,
    ) -> Result<Service> {
        let status = status.into();
        let cas = status.ca_certificates().await?;
        let mut issuers = Vec::new();
        for r in responders {
            issuers.push(Arc::new(Issuer::of(r, &cas)?));
        }
        let compromised = RwLock::new(vec![None; issuers.len()]);
        Ok(Service {
            issuers: RwLock::new(issuers),
            compromised,
            cache: RwLock::new(HashMap::new()),
            status,
            validity: validity_secs,
            live: tokio::sync::Semaphore::new(2),
            bucket: Mutex::new(Bucket { tokens: live_per_second, per_second: live_per_second, last: Instant::now() }),
            revoked_seen: Mutex::new(HashSet::new()),
            seen_seq: AtomicI64::new(0),
            poll_lock: tokio::sync::Mutex::new(()),
            stats: Stats::default(),
            sink: None,
            unknown_issuer: tokio::sync::Notify::new(),
        })
    }

    /// Signer mode: every response this service signs for `sink`'s partition goes to the shared
    /// store (keyed by [`crate::store::key`], living until its nextUpdate) instead of into
    /// memory, which keeps only what re-signing needs (status and nextUpdate, no DER); serials
    /// of other partitions are left to their signers; after a revocation is written, an
    /// invalidation is published. A compromised generation's certificates are signed one by
    /// one as the CA's tables say (revoked), since a store has no live path.
    pub fn publishing(mut self, sink: crate::store::Sink) -> Service {
        self.sink = Some(sink);
        self
    }

    /// The signer's store writer, in signer mode.
    pub fn sink(&self) -> Option<&crate::store::Sink> {
        self.sink.as_ref()
    }

    fn owns(&self, serial: &[u8]) -> bool {
        self.sink.as_ref().is_none_or(|s| s.partition.owns(serial))
    }

    fn store_key(&self, issuer: usize, alg: Alg, serial: &[u8]) -> Result<Vec<u8>> {
        let is = self.issuer(issuer)?;
        let (_, _, k) = is
            .hashes
            .iter()
            .find(|(a, _, _)| *a == alg)
            .ok_or_else(|| Error::Internal(format!("no {alg:?} hashes for issuer {issuer}")))?;
        Ok(crate::store::key(alg, k, serial))
    }

    /// The revocation sequence number read up to.
    pub fn seen_seq(&self) -> i64 {
        self.seen_seq.load(Ordering::SeqCst)
    }

    /// The CA generations served (a snapshot: a generation enrolled later is not in it).
    pub fn issuers(&self) -> Vec<Arc<Issuer>> {
        self.issuers.read().map(|v| v.clone()).unwrap_or_default()
    }

    /// Whether generation `generation` of CA `slug` has a responder here.
    pub fn serves(&self, slug: &str, generation: i64) -> bool {
        self.issuer_index(slug, generation).is_some()
    }

    /// Served generation `i`.
    fn issuer(&self, i: usize) -> Result<Arc<Issuer>> {
        self.issuers
            .read()
            .map_err(|_| Error::Internal("poisoned lock".into()))?
            .get(i)
            .cloned()
            .ok_or_else(|| Error::Internal(format!("no issuer {i}")))
    }

    /// Waits until a request names an issuer that no responder here answers for (answered
    /// `unauthorized`), or returns at once if one did since the last call. However many such
    /// requests come, one wake-up is kept: whoever waits (the enroller) decides how often to act.
    pub async fn unknown_issuer_asked(&self) {
        self.unknown_issuer.notified().await;
    }

    /// Adds a responder enrolled while running (its generation created after start-up, by a
    /// new prefecture's first card or a rollover ceremony): checked as at start-up (not a CA
    /// key, not a CA certificate, id-kp-OCSPSigning, an AKI naming a generation the CA lists),
    /// then served, and that generation's certificates pre-signed. Answers for other
    /// generations go on meanwhile; until its certificates are pre-signed, requests for the new
    /// generation take the live path. Returns the number of certificates pre-signed, or `None`
    /// if the generation already had a responder here (nothing changed).
    pub async fn add_responder(self: &Arc<Self>, r: Responder, now: i64) -> Result<Option<usize>> {
        let cas = self.status.ca_certificates().await?;
        let issuer = Issuer::of(r, &cas)?;
        let i = {
            let mut issuers = self.issuers.write().map_err(|_| Error::Internal("poisoned lock".into()))?;
            if issuers.iter().any(|x| x.slug == issuer.slug && x.generation == issuer.generation) {
                return Ok(None);
            }
            // Grown first, under the issuers' lock: whoever finds the new index finds its entry.
            self.compromised.write().map_err(|_| Error::Internal("poisoned lock".into()))?.push(None);
            issuers.push(Arc::new(issuer));
            issuers.len() - 1
        };
        // Read after the generation is served: a revocation committed before this read is in
        // it, one committed after is read by the poller (now that the generation is served) and
        // signed revoked; a revoked response is never replaced by one that is not, so this read
        // racing the poller cannot undo a revocation. The poll lock is not held: revocations of
        // the other generations keep being picked up while this one is pre-signed.
        let certificates = self.status.certificates().await?;
        self.presign_certificates(certificates, Some(i), now, identity::progress::SILENT).await.map(Some)
    }

    /// Responses in memory.
    pub fn cached(&self) -> usize {
        self.cache.read().map(|c| c.len()).unwrap_or(0)
    }

    /// When issuer `i` was declared compromised, if it was.
    fn compromised_at(&self, i: usize) -> Option<i64> {
        self.compromised.read().ok().and_then(|c| c.get(i).copied().flatten())
    }

    /// If `serial` is a served generation's own CA certificate, revoked at `at`: marks that
    /// generation compromised and drops its cached "good" answers. Returns whether it was one.
    fn note_ca_revocation(&self, serial: &str, at: i64) -> Result<bool> {
        let Some((i, issuer)) = self
            .issuers
            .read()
            .map_err(|_| Error::Internal("poisoned lock".into()))?
            .iter()
            .enumerate()
            .find(|(_, x)| x.serial == serial)
            .map(|(i, x)| (i, x.clone()))
        else {
            return Ok(false);
        };
        {
            let mut c = self.compromised.write().map_err(|_| Error::Internal("poisoned lock".into()))?;
            if c[i].is_some() {
                return Ok(true);
            }
            c[i] = Some(at);
        }
        self.cache
            .write()
            .map_err(|_| Error::Internal("poisoned lock".into()))?
            .retain(|_, v| !(v.issuer == i && v.status == Status::Good));
        tracing::warn!(ca = %issuer.slug, generation = issuer.generation, "CA generation compromised: every certificate it issued is answered revoked");
        Ok(true)
    }

    fn issuer_index(&self, slug: &str, generation: i64) -> Option<usize> {
        self.issuers.read().ok()?.iter().position(|i| i.slug == slug && i.generation == generation)
    }

    fn resolve(&self, id: &CertId) -> Option<(usize, Alg)> {
        let alg = Alg::of(&id.hash_algorithm)?;
        self.issuers
            .read()
            .ok()?
            .iter()
            .position(|i| {
                i.hashes.iter().any(|(a, n, k)| {
                    *a == alg
                        && n.as_slice() == id.issuer_name_hash.as_bytes()
                        && k.as_slice() == id.issuer_key_hash.as_bytes()
                })
            })
            .map(|i| (i, alg))
    }

    fn cert_id(&self, issuer: usize, alg: Alg, serial: &[u8]) -> Result<CertId> {
        let is = self.issuer(issuer)?;
        let (_, n, k) = is
            .hashes
            .iter()
            .find(|(a, _, _)| *a == alg)
            .ok_or_else(|| Error::Internal(format!("no {alg:?} hashes for issuer {issuer}")))?;
        Ok(CertId {
            hash_algorithm: alg.identifier(),
            issuer_name_hash: OctetString::new(n.clone())?,
            issuer_key_hash: OctetString::new(k.clone())?,
            serial_number: SerialNumber::new(serial)?,
        })
    }

    fn single(&self, id: CertId, status: Status, now: i64) -> Result<SingleResponse> {
        single_response(id, status, now, self.validity)
    }

    /// Signs a BasicOCSPResponse with the issuer's responder key; returns the OCSPResponse DER.
    fn sign(&self, issuer: usize, singles: Vec<SingleResponse>, nonce: Option<Extension>, now: i64) -> Result<Vec<u8>> {
        signed_response(&self.issuer(issuer)?.responder, singles, nonce, now)
    }

    /// Pre-signs the response of one certificate for one hash algorithm and caches it.
    fn presign(&self, issuer: usize, alg: Alg, serial: &[u8], status: Status, now: i64) -> Result<Arc<Cached>> {
        let id = self.cert_id(issuer, alg, serial)?;
        let mut der = self.sign(issuer, vec![self.single(id, status, now)?], None, now)?;
        let mut etag = format!("\"{}\"", hex::encode(&sha2::Sha256::digest(&der)[..16]));
        if let Some(sink) = &self.sink {
            let ttl_ms = u64::try_from(self.validity.max(1)).unwrap_or(1).saturating_mul(1000);
            sink.put(crate::store::Put {
                key: self.store_key(issuer, alg, serial)?,
                value: crate::store::value(status, &der),
                ttl_ms,
            })?;
            // Memory keeps what re-signing needs; responders serve from the store.
            der = Vec::new();
            etag = String::new();
        }
        let c = Arc::new(Cached {
            der: Bytes::from(der),
            this_update: now,
            next_update: now + self.validity,
            etag,
            status,
            issuer,
            alg,
            serial: minimal(serial).to_vec(),
        });
        if let Ok(mut m) = self.cache.write() {
            let k = cache_key(issuer, alg, serial);
            // Revocation is final: a response signed from an older read (a miss, a refresh)
            // never replaces a revoked one.
            if let Some(old) = m.get(&k).filter(|o| matches!(o.status, Status::Revoked { .. }))
                && !matches!(status, Status::Revoked { .. })
            {
                return Ok(old.clone());
            }
            m.insert(k, c.clone());
        }
        Ok(c)
    }

    /// Pre-signs every issued certificate of the served generations (both hash algorithms).
    pub async fn load(self: &Arc<Self>, now: i64) -> Result<usize> {
        self.load_with(now, identity::progress::SILENT).await
    }

    /// [`Service::load`], reporting (certificates pre-signed, certificates to pre-sign) while the
    /// signing threads run (every 100 ms and at the end).
    pub async fn load_with(self: &Arc<Self>, now: i64, progress: identity::progress::Progress<'_>) -> Result<usize> {
        let _g = self.poll_lock.lock().await;
        // The sequence is read before the certificates: a revocation committed in between is in
        // both, and signing it twice as revoked is harmless; none can be missed.
        let head = self.status.head().await?;
        let certificates = self.status.certificates().await?;
        let n = self.presign_certificates(certificates, None, now, progress).await?;
        self.seen_seq.fetch_max(head, Ordering::SeqCst);
        Ok(n)
    }

    /// Pre-signs `certificates` (as the CA's tables list them) of the served generations, or
    /// of generation `only`, spread over the cores; notes the served generations whose own CA
    /// certificate is among the revoked.
    async fn presign_certificates(
        self: &Arc<Self>,
        certificates: Vec<ca::status::Certificate>,
        only: Option<usize>,
        now: i64,
        progress: identity::progress::Progress<'_>,
    ) -> Result<usize> {
        for c in &certificates {
            if let CaStatus::Revoked { at, .. } = c.status {
                self.note_ca_revocation(&c.serial, at)?;
            }
        }
        let mut work = Vec::new();
        for c in certificates {
            let Some(i) = self.issuer_index(&c.issuer_slug, c.issuer_generation) else { continue };
            if only.is_some_and(|o| o != i) {
                continue;
            }
            if self.compromised_at(i).is_some() && self.sink.is_none() {
                continue;
            }
            let status = match c.status {
                CaStatus::Revoked { at, reason } => {
                    self.revoked_seen
                        .lock()
                        .map_err(|_| Error::Internal("poisoned lock".into()))?
                        .insert(c.serial.clone());
                    Status::Revoked { at, reason }
                }
                CaStatus::Good => Status::Good,
                CaStatus::NotIssued => continue,
            };
            let bytes = hex::decode(&c.serial)
                .map_err(|_| Error::Internal(format!("bad serial {} in the CA's tables", c.serial)))?;
            if !self.owns(&bytes) {
                continue;
            }
            work.push((i, bytes, status));
        }
        let n = work.len();
        let total = n as u64;
        progress(0, total);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
        let chunk = n.div_ceil(threads).max(1);
        let signed = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut handles = Vec::new();
        for part in work.chunks(chunk).map(<[_]>::to_vec) {
            let (me, signed) = (self.clone(), signed.clone());
            handles.push(tokio::task::spawn_blocking(move || -> Result<()> {
                for (i, s, st) in part {
                    // Signer mode: no more than a bounded backlog waits for the store.
                    while me.sink.as_ref().is_some_and(|k| k.pending() > 100_000) {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    for a in Alg::BOTH {
                        me.presign(i, a, &s, st, now)?;
                    }
                    signed.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }));
        }
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
        for mut h in handles {
            let joined = loop {
                tokio::select! {
                    j = &mut h => break j,
                    _ = tick.tick() => progress(signed.load(Ordering::Relaxed), total),
                }
            };
            joined.map_err(|e| Error::Internal(format!("pre-signing task: {e}")))??;
        }
        progress(total, total);
        Ok(n)
    }

    /// Picks up revocations numbered after the last one read, in sequence order, and re-signs
    /// their responses as revoked. Returns how many were new. A replayed poll is a no-op.
    pub async fn poll(&self, now: i64) -> Result<usize> {
        let _g = self.poll_lock.lock().await;
        self.poll_locked(now).await
    }

    async fn poll_locked(&self, now: i64) -> Result<usize> {
        const BATCH: i64 = 10_000;
        let mut new = 0;
        loop {
            let after = self.seen_seq.load(Ordering::SeqCst);
            let batch = self.status.revocations_after(after, BATCH).await?;
            for r in &batch {
                self.note_ca_revocation(&r.serial, r.revoked_at)?;
                let theirs = hex::decode(&r.serial).is_ok_and(|b| !self.owns(&b));
                if theirs
                    || (self.sink.is_none()
                        && self
                            .issuer_index(&r.issuer_slug, r.issuer_generation)
                            .is_some_and(|i| self.compromised_at(i).is_some()))
                {
                    // Another signer's partition, or answered revoked by the issuer's compromise:
                    // nothing to sign or remember.
                    self.seen_seq.store(r.seq, Ordering::SeqCst);
                    continue;
                }
                let seen =
                    self.revoked_seen.lock().map_err(|_| Error::Internal("poisoned lock".into()))?.contains(&r.serial);
                if !seen && let Some(i) = self.issuer_index(&r.issuer_slug, r.issuer_generation) {
                    let status = Status::Revoked { at: r.revoked_at, reason: r.reason };
                    let bytes = hex::decode(&r.serial)
                        .map_err(|_| Error::Internal(format!("bad serial {} in the CA's tables", r.serial)))?;
                    for a in Alg::BOTH {
                        self.presign(i, a, &bytes, status, now)?;
                    }
                    if let Some(sink) = &self.sink {
                        // Published after the revoked responses are written (one writer, in order).
                        for a in Alg::BOTH {
                            sink.invalidate(self.store_key(i, a, &bytes)?)?;
                        }
                    }
                    new += 1;
                }
                // Only once signed: a failed signing is retried by the next poll.
                self.revoked_seen.lock().map_err(|_| Error::Internal("poisoned lock".into()))?.insert(r.serial.clone());
                self.seen_seq.store(r.seq, Ordering::SeqCst);
            }
            if (batch.len() as i64) < BATCH {
                return Ok(new);
            }
        }
    }

    /// Re-signs responses past half their validity. Returns how many. It first reads every
    /// revocation up to the current sequence, and holds the poll lock while signing, so a
    /// cached "good" is never re-signed for a certificate already revoked.
    pub async fn refresh(self: &Arc<Self>, now: i64) -> Result<usize> {
        let _g = self.poll_lock.lock().await;
        self.poll_locked(now).await?;
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.resign_stale(now))
            .await
            .map_err(|e| Error::Internal(format!("refresh task: {e}")))?
    }

    fn resign_stale(&self, now: i64) -> Result<usize> {
        let stale: Vec<Arc<Cached>> = self
            .cache
            .read()
            .map_err(|_| Error::Internal("poisoned lock".into()))?
            .values()
            .filter(|c| c.next_update - now < self.validity / 2)
            .cloned()
            .collect();
        for c in &stale {
            self.presign(c.issuer, c.alg, &c.serial, c.status, now)?;
        }
        Ok(stale.len())
    }

    /// The status of one serial of one generation, from the CA's tables.
    async fn status_of(&self, issuer: usize, serial: &[u8]) -> Result<Status> {
        let Some(c) = self.status.certificate(&hex::encode(minimal(serial))).await? else {
            return Ok(Status::Unknown);
        };
        let i = self.issuer(issuer)?;
        if c.issuer_slug != i.slug || c.issuer_generation != i.generation {
            return Ok(Status::Unknown);
        }
        Ok(match c.status {
            CaStatus::Revoked { at, reason } => Status::Revoked { at, reason },
            CaStatus::Good => Status::Good,
            CaStatus::NotIssued => Status::Unknown,
        })
    }

    /// The status of a certificate (DER) of a served generation, found by its AKI: what an
    /// OCSP answer would say, from the same source. `None` if no served generation issued it.
    pub async fn status_of_cert(&self, cert_der: &[u8]) -> Result<Option<Status>> {
        let cert = Certificate::from_der(cert_der)?;
        let Some(i) =
            authority_key_id(&cert).and_then(|k| self.issuers.read().ok()?.iter().position(|x| x.key_id == k))
        else {
            return Ok(None);
        };
        let serial = cert.tbs_certificate().serial_number().as_bytes();
        let cached = self.cache.read().ok().and_then(|m| m.get(&cache_key(i, Alg::Sha1, serial)).map(|c| c.status));
        Ok(Some(match cached {
            Some(s) => s,
            None => self.status_of(i, serial).await?,
        }))
    }

    /// Answers one DER request. Never fails: errors are OCSP error responses.
    pub async fn answer(&self, req: &[u8], now: i64) -> Answer {
        if req.len() > MAX_REQUEST {
            return Answer::Live(error_der(ResponseStatus::MalformedRequest));
        }
        let Ok(parsed) = OcspRequest::from_der(req) else {
            return Answer::Live(error_der(ResponseStatus::MalformedRequest));
        };
        let list = &parsed.tbs_request.request_list;
        if list.is_empty() {
            return Answer::Live(error_der(ResponseStatus::MalformedRequest));
        }
        let nonce = parsed
            .tbs_request
            .request_extensions
            .as_ref()
            .and_then(|exts| exts.iter().find(|e| e.extn_id == OCSP_NONCE))
            .cloned();
        if let Some(n) = &nonce {
            // RFC 9654: the nonce is an OCTET STRING of 1 to 32 octets.
            let ok = OctetString::from_der(n.extn_value.as_bytes())
                .is_ok_and(|o| (1..=MAX_NONCE).contains(&o.as_bytes().len()));
            if !ok {
                return Answer::Live(error_der(ResponseStatus::MalformedRequest));
            }
        }
        let mut targets = Vec::with_capacity(list.len());
        for r in list {
            match self.resolve(&r.req_cert) {
                Some(t) => targets.push((t, r.req_cert.serial_number.as_bytes().to_vec())),
                None => {
                    // No responder here for that issuer (yet): the enroller, if one runs, is
                    // told (one wake-up kept, whatever the number of such requests).
                    self.unknown_issuer.notify_one();
                    return Answer::Live(error_der(ResponseStatus::Unauthorized));
                }
            }
        }
        if nonce.is_none() && targets.len() == 1 {
            let ((i, a), serial) = &targets[0];
            let hit = self.cache.read().ok().and_then(|m| m.get(&cache_key(*i, *a, serial)).cloned());
            if let Some(c) = hit {
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("jpki_ocsp_answers_total", "path" => "cached").increment(1);
                return Answer::Cached(c);
            }
        }
        // The live path: bounded concurrency and a rate.
        let Ok(_permit) = tokio::time::timeout(Duration::from_millis(200), self.live.acquire()).await else {
            self.stats.try_later.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("jpki_ocsp_answers_total", "path" => "try_later").increment(1);
            return Answer::Live(error_der(ResponseStatus::TryLater));
        };
        if !self.bucket.lock().is_ok_and(|mut b| b.take()) {
            self.stats.try_later.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("jpki_ocsp_answers_total", "path" => "try_later").increment(1);
            return Answer::Live(error_der(ResponseStatus::TryLater));
        }
        self.stats.live.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("jpki_ocsp_answers_total", "path" => "live").increment(1);
        match self.live_answer(&targets, nonce, now).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("OCSP live answer failed: {e}");
                Answer::Live(error_der(ResponseStatus::InternalError))
            }
        }
    }

    async fn live_answer(
        &self,
        targets: &[((usize, Alg), Vec<u8>)],
        nonce: Option<Extension>,
        now: i64,
    ) -> Result<Answer> {
        let issuer = targets[0].0.0;
        if targets.iter().any(|((i, _), _)| *i != issuer) {
            // One response has one signer; our responders are per CA generation.
            return Ok(Answer::Live(error_der(ResponseStatus::Unauthorized)));
        }
        let mut singles = Vec::with_capacity(targets.len());
        let mut statuses = Vec::with_capacity(targets.len());
        for ((i, a), serial) in targets {
            // A freshly signed answer says what the CA's tables say now: only a revocation
            // (final) is taken from the map; anything else is read again, so no "good" is
            // signed from a map that has not yet seen the latest revocations.
            let status = match self.cache.read().ok().and_then(|m| m.get(&cache_key(*i, *a, serial)).map(|c| c.status))
            {
                Some(s @ Status::Revoked { .. }) => s,
                _ => self.status_of(*i, serial).await?,
            };
            statuses.push(status);
            singles.push(self.single(self.cert_id(*i, *a, serial)?, status, now)?);
        }
        if nonce.is_none() && targets.len() == 1 && statuses[0] != Status::Unknown {
            // A miss for a known certificate (issued after start-up): store on demand.
            let ((i, a), serial) = &targets[0];
            return Ok(Answer::Cached(self.presign(*i, *a, serial, statuses[0], now)?));
        }
        Ok(Answer::Live(Bytes::from(self.sign(issuer, singles, nonce, now)?)))
    }
}
