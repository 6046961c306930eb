//! The stateless OCSP responder of the scale-out mode (`jpki serve ocsp-responder`): it serves
//! the responses the signers pre-signed into the shared store ([`crate::store`]) and holds no
//! responder key and no access to the CA, so a compromised responder cannot sign anything: the
//! worst it can do is serve an old response (still bounded by its nextUpdate) or none.
//!
//! A request is answered from a bounded hot set ([`crate::hot::HotSet`]) or, on a miss, from
//! the store; before a stored response is served it is parsed and checked to be a successful
//! basic response with exactly one SingleResponse for exactly the requested CertID (algorithm,
//! issuerNameHash, issuerKeyHash, serial), fresh, and with the status its tag says. That check
//! is made once, when the response enters the hot set; a hit re-checks only what can change or
//! is not in the key: its nextUpdate against the clock and the request's issuerNameHash
//! against the one kept with it. The usual request (one CertID, no extensions, as RFC 5019
//! clients send) is read in place ([`fast_cert_id`]); any other shape goes through the full
//! parser. Invalidations published by the
//! signers drop entries from the hot set; while the invalidation channel is down the hot set is
//! bypassed, and it is cleared when the channel is back, since invalidations may have been
//! missed.
//!
//! Answers: a nonce is not echoed (the pre-signed response is served without it: RFC 6960
//! §4.4.1 and RFC 9654 §2.1 let a responder ignore the nonce, and RFC 5019 clients send none);
//! a request for several certificates, a hash algorithm other than SHA-1/SHA-256, or a CertID
//! the store has no response for is `unauthorized` (RFC 5019 §2.2.3: the responder cannot
//! answer authoritatively); a store that does not answer is `tryLater`; a stored value that is
//! not a response for the CertID asked is `internalError` and logged (never served).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use der::Decode as _;
use der::asn1::OctetString;
use sha2::Digest as _;

use crate::hot::{Hit, HotSet};
use crate::ocsp::{
    BasicOcspResponse, CertId, CertStatus, OCSP_BASIC, OCSP_NONCE, OcspRequest, OcspResponse, ResponseStatus, SHA1,
    SHA256,
};
use crate::responder::{Alg, Answer, Cached, MAX_NONCE, MAX_REQUEST, Status, error_der};
use crate::store::ResponseStore;

/// Counters for the operator (`/health`, metrics).
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Answered from the hot set.
    pub hot: AtomicU64,
    /// Answered from the store.
    pub store: AtomicU64,
    /// Not in the store (`unauthorized`).
    pub absent: AtomicU64,
    /// The store did not answer (`tryLater`).
    pub unavailable: AtomicU64,
    /// A stored value refused (`internalError`).
    pub refused: AtomicU64,
    /// Invalidations received.
    pub invalidations: AtomicU64,
}

/// Why a stored value is not served.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No status tag and DER.
    Empty,
    /// The DER is not an OCSPResponse with a basic response.
    NotBasic,
    /// Not one SingleResponse.
    Singles(usize),
    /// A SingleResponse for another CertID.
    OtherCertId,
    /// Its nextUpdate has passed (or it has none).
    Stale,
    /// The status tag does not say what the response says.
    Tag,
}

/// The CertID of a request, borrowed from its bytes (or from its parse).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertRef<'a> {
    /// The hash algorithm (only SHA-1 and SHA-256 are served).
    pub alg: Alg,
    /// issuerNameHash.
    pub name_hash: &'a [u8],
    /// issuerKeyHash.
    pub key_hash: &'a [u8],
    /// The serial's INTEGER content bytes.
    pub serial: &'a [u8],
}

impl<'a> CertRef<'a> {
    /// The view of a parsed CertID (`None` for a hash algorithm not served).
    pub fn of(id: &'a CertId) -> Option<CertRef<'a>> {
        Some(CertRef {
            alg: Alg::of(&id.hash_algorithm)?,
            name_hash: id.issuer_name_hash.as_bytes(),
            key_hash: id.issuer_key_hash.as_bytes(),
            serial: id.serial_number.as_bytes(),
        })
    }
}

/// One DER TLV with a low tag number and a minimal definite length (at most 2 length bytes):
/// tag, content, what follows. Anything else is `None`.
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = b.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&l0, rest) = rest.split_first()?;
    let (len, rest) = match l0 {
        0..=0x7f => (usize::from(l0), rest),
        0x81 => match rest.split_first()? {
            (&l, r) if l >= 0x80 => (usize::from(l), r),
            _ => return None,
        },
        0x82 => match rest {
            [a, b, r @ ..] if *a != 0 => ((usize::from(*a) << 8) | usize::from(*b), r),
            _ => return None,
        },
        _ => return None,
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The CertID of a request of the one shape RFC 5019 clients send — one Request, no
/// signature, no requestorName, no extensions, a SHA-1 or SHA-256 hashAlgorithm with absent or
/// NULL parameters, a positive minimally encoded serial of at most 20 bytes — read in place
/// without building the request. Anything else is `None` and goes to the full parser, which
/// alone decides what is malformed; whatever this accepts, the full parser accepts and reads
/// the same way (tested on generated and mutated requests).
pub fn fast_cert_id(req: &[u8]) -> Option<CertRef<'_>> {
    let (0x30, ocsp, []) = tlv(req)? else { return None };
    let (0x30, tbs, []) = tlv(ocsp)? else { return None };
    let (0x30, list, []) = tlv(tbs)? else { return None };
    let (0x30, one, []) = tlv(list)? else { return None };
    let (0x30, cert_id, []) = tlv(one)? else { return None };
    let (0x30, alg, rest) = tlv(cert_id)? else { return None };
    let (0x04, name_hash, rest) = tlv(rest)? else { return None };
    let (0x04, key_hash, rest) = tlv(rest)? else { return None };
    let (0x02, serial, []) = tlv(rest)? else { return None };
    let (0x06, oid, params) = tlv(alg)? else { return None };
    if !(params.is_empty() || params == [0x05, 0x00]) {
        return None;
    }
    let alg = if oid == SHA1.as_bytes() {
        Alg::Sha1
    } else if oid == SHA256.as_bytes() {
        Alg::Sha256
    } else {
        return None;
    };
    let positive_minimal = match serial {
        [b] => *b < 0x80,
        [0, b, ..] => *b >= 0x80,
        [b, ..] => *b < 0x80,
        [] => false,
    };
    (positive_minimal && serial.len() <= 20).then_some(CertRef { alg, name_hash, key_hash, serial })
}

/// Checks a stored value (status tag + OCSPResponse DER) against the requested CertID at
/// `now` and makes the served form of it (pure).
pub fn check_stored(value: &[u8], id: &CertId, now: i64) -> Result<Cached, Refusal> {
    check_stored_parts(value, id, now).map(|(c, _)| c)
}

/// [`check_stored`], and how many bytes the DER ends with that are the responder certificate
/// it carries (shared by every response of that responder; 0 if it carries none).
pub fn check_stored_parts(value: &[u8], id: &CertId, now: i64) -> Result<(Cached, usize), Refusal> {
    check_value(value, &CertRef::of(id).ok_or(Refusal::OtherCertId)?, now)
}

/// [`check_stored_parts`] on a borrowed CertID.
pub fn check_value(value: &[u8], id: &CertRef<'_>, now: i64) -> Result<(Cached, usize), Refusal> {
    let (&tag, der) = value.split_first().ok_or(Refusal::Empty)?;
    let resp = OcspResponse::from_der(der).map_err(|_| Refusal::NotBasic)?;
    let rb = match (resp.response_status, resp.response_bytes) {
        (ResponseStatus::Successful, Some(rb)) if rb.response_type == OCSP_BASIC => rb,
        _ => return Err(Refusal::NotBasic),
    };
    let basic = BasicOcspResponse::from_der(rb.response.as_bytes()).map_err(|_| Refusal::NotBasic)?;
    let singles = &basic.tbs_response_data.responses;
    if singles.len() != 1 {
        return Err(Refusal::Singles(singles.len()));
    }
    let s = &singles[0];
    let c = &s.cert_id;
    let same = Alg::of(&c.hash_algorithm) == Some(id.alg)
        && c.issuer_name_hash.as_bytes() == id.name_hash
        && c.issuer_key_hash.as_bytes() == id.key_hash
        && minimal(c.serial_number.as_bytes()) == minimal(id.serial);
    if !same {
        return Err(Refusal::OtherCertId);
    }
    let secs = |t: &der::asn1::GeneralizedTime| i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX);
    let this_update = secs(&s.this_update);
    let next_update = s.next_update.as_ref().map(secs).ok_or(Refusal::Stale)?;
    if next_update <= now {
        return Err(Refusal::Stale);
    }
    let status = match &s.cert_status {
        CertStatus::Good(_) => Status::Good,
        CertStatus::Unknown(_) => Status::Unknown,
        CertStatus::Revoked(r) => {
            Status::Revoked { at: secs(&r.revocation_time), reason: ca::crl::Reason::Unspecified }
        }
    };
    if tag != crate::store::tag(status) {
        return Err(Refusal::Tag);
    }
    let etag = format!("\"{}\"", hex::encode(&sha2::Sha256::digest(der)[..16]));
    let tail = basic
        .certs
        .as_ref()
        .and_then(|c| c.last())
        .and_then(|c| der::Encode::to_der(c).ok())
        .filter(|c| der.ends_with(c))
        .map_or(0, |c| c.len());
    Ok((Cached::stored(Bytes::copy_from_slice(der), this_update, next_update, etag, status), tail))
}

fn minimal(serial: &[u8]) -> &[u8] {
    let mut s = serial;
    while s.len() > 1 && s[0] == 0 {
        s = &s[1..];
    }
    s
}

/// A store key built on the stack when it fits (every key a signer writes does).
enum KeyBuf {
    Stack([u8; 72], usize),
    Heap(Vec<u8>),
}

impl KeyBuf {
    fn new(id: &CertRef<'_>) -> KeyBuf {
        let serial = minimal(id.serial);
        let len = 2 + id.key_hash.len() + serial.len();
        if len > 72 {
            return KeyBuf::Heap(crate::store::key(id.alg, id.key_hash, id.serial));
        }
        let mut b = [0u8; 72];
        b[0] = b'o';
        b[1] = match id.alg {
            Alg::Sha1 => 1,
            Alg::Sha256 => 2,
        };
        b[2..2 + id.key_hash.len()].copy_from_slice(id.key_hash);
        b[2 + id.key_hash.len()..len].copy_from_slice(serial);
        KeyBuf::Stack(b, len)
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            KeyBuf::Stack(b, n) => &b[..*n],
            KeyBuf::Heap(v) => v,
        }
    }
}

/// What [`StoreResponder::serve`] answers.
#[derive(Debug)]
pub enum Served {
    /// A hot-set hit (served as it is kept: no copy).
    Hot(Hit),
    /// Anything else.
    Answer(Answer),
}

/// The `jpki_ocsp_answers_total` counters, looked up once.
#[derive(Debug)]
struct Counters {
    hot: metrics::Counter,
    store: metrics::Counter,
    unauthorized: metrics::Counter,
    try_later: metrics::Counter,
    refused: metrics::Counter,
    malformed: metrics::Counter,
}

impl Counters {
    fn new() -> Counters {
        let c = |path: &'static str| metrics::counter!("jpki_ocsp_answers_total", "path" => path);
        Counters {
            hot: c("hot"),
            store: c("store"),
            unauthorized: c("unauthorized"),
            try_later: c("try_later"),
            refused: c("refused"),
            malformed: c("malformed"),
        }
    }
}

/// The stateless responder.
#[derive(Debug)]
pub struct StoreResponder {
    store: Arc<dyn ResponseStore>,
    hot: HotSet,
    /// Whether the invalidation channel is up (the hot set is used only then).
    subscribed: AtomicBool,
    /// Bumped by every invalidation and every clear: a response fetched while it moved is
    /// served but not kept, since an invalidation may have raced it.
    epoch: AtomicU64,
    /// Counters.
    pub stats: StoreStats,
    /// The metrics, looked up at the first answer (after the process installed its recorder).
    counters: OnceLock<Counters>,
}

impl StoreResponder {
    /// A responder over `store` with a hot set of `hot_bytes`. Call [`StoreResponder::follow`]
    /// (spawned) to receive invalidations; until then the hot set is not used.
    pub fn new(store: Arc<dyn ResponseStore>, hot_bytes: usize) -> StoreResponder {
        StoreResponder {
            store,
            hot: HotSet::new(hot_bytes),
            subscribed: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            stats: StoreStats::default(),
            counters: OnceLock::new(),
        }
    }

    fn counters(&self) -> &Counters {
        self.counters.get_or_init(Counters::new)
    }

    /// Entries in the hot set.
    pub fn hot_len(&self) -> usize {
        self.hot.len()
    }

    /// Bytes the hot set is charged.
    pub fn hot_bytes(&self) -> usize {
        self.hot.bytes()
    }

    /// Whether invalidations are being received.
    pub fn subscribed(&self) -> bool {
        self.subscribed.load(Ordering::SeqCst)
    }

    /// Receives invalidations forever: subscribes (retrying every `retry`), clears the hot set
    /// once subscribed, drops what each invalidation names, and on a lost subscription stops
    /// using the hot set until subscribed again.
    pub async fn follow(self: Arc<Self>, retry: Duration) {
        loop {
            match self.store.subscribe().await {
                Ok(mut rx) => {
                    // Anything missed while unsubscribed is gone with the clear.
                    self.hot.clear();
                    self.epoch.fetch_add(1, Ordering::SeqCst);
                    self.subscribed.store(true, Ordering::SeqCst);
                    metrics::gauge!("jpki_ocsp_store_subscribed").set(1.0);
                    while let Some(key) = rx.recv().await {
                        self.epoch.fetch_add(1, Ordering::SeqCst);
                        self.hot.remove(&key);
                        self.stats.invalidations.fetch_add(1, Ordering::Relaxed);
                    }
                    self.subscribed.store(false, Ordering::SeqCst);
                    self.epoch.fetch_add(1, Ordering::SeqCst);
                    metrics::gauge!("jpki_ocsp_store_subscribed").set(0.0);
                    tracing::warn!(
                        "OCSP store: the invalidation channel was lost; hot set bypassed until resubscribed"
                    );
                }
                Err(e) => {
                    self.subscribed.store(false, Ordering::SeqCst);
                    metrics::gauge!("jpki_ocsp_store_subscribed").set(0.0);
                    tracing::warn!("OCSP store: cannot subscribe to invalidations (retrying in {retry:?}): {e}");
                    tokio::time::sleep(retry).await;
                }
            }
        }
    }

    /// The hot entry for `id` under `key`, if fresh at `now` and kept for the request's
    /// issuerNameHash: it was checked for its CertID when it was kept, and only what can change
    /// or is not part of the key is checked here.
    fn hit(&self, id: &CertRef<'_>, key: &[u8], now: i64) -> Option<Hit> {
        let h = self.hot.get(key)?;
        if h.next_update <= now || h.name_hash()[..] != *id.name_hash {
            return None;
        }
        self.stats.hot.fetch_add(1, Ordering::Relaxed);
        self.counters().hot.increment(1);
        Some(h)
    }

    /// The hot-set answer to one DER request, without waiting: `None` unless the request has
    /// the usual shape ([`fast_cert_id`]), the invalidation channel is up and the hot set holds
    /// a fresh response for its CertID (then [`StoreResponder::serve`] answers it).
    pub fn hot(&self, req: &[u8], now: i64) -> Option<Hit> {
        if req.len() > MAX_REQUEST || !self.subscribed.load(Ordering::SeqCst) {
            return None;
        }
        let id = fast_cert_id(req)?;
        self.hit(&id, KeyBuf::new(&id).as_slice(), now)
    }

    /// Answers one DER request, a hot-set hit as it is kept. Never fails: errors are OCSP
    /// error responses.
    pub async fn serve(&self, req: &[u8], now: i64) -> Served {
        let counters = self.counters();
        let answer = |status: ResponseStatus, counter: &metrics::Counter| {
            counter.increment(1);
            Served::Answer(Answer::Live(error_der(status)))
        };
        if req.len() > MAX_REQUEST {
            return answer(ResponseStatus::MalformedRequest, &counters.malformed);
        }
        let parsed: OcspRequest;
        let id = match fast_cert_id(req) {
            Some(id) => id,
            None => {
                parsed = match OcspRequest::from_der(req) {
                    Ok(p) => p,
                    Err(_) => return answer(ResponseStatus::MalformedRequest, &counters.malformed),
                };
                match checked(&parsed) {
                    Ok(id) => id,
                    Err(ResponseStatus::MalformedRequest) => {
                        return answer(ResponseStatus::MalformedRequest, &counters.malformed);
                    }
                    Err(status) => return answer(status, &counters.unauthorized),
                }
            }
        };
        let key = KeyBuf::new(&id);
        let key = key.as_slice();
        let use_hot = self.subscribed.load(Ordering::SeqCst);
        if use_hot && let Some(h) = self.hit(&id, key, now) {
            return Served::Hot(h);
        }
        let epoch = self.epoch.load(Ordering::SeqCst);
        let value = match self.store.get(key.to_vec()).await {
            Ok(Some(v)) => v,
            Ok(None) => {
                self.stats.absent.fetch_add(1, Ordering::Relaxed);
                return answer(ResponseStatus::Unauthorized, &counters.unauthorized);
            }
            Err(e) => {
                self.stats.unavailable.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("jpki_ocsp_store_errors_total", "op" => "read").increment(1);
                tracing::warn!("OCSP store unreachable, answering tryLater: {e}");
                return answer(ResponseStatus::TryLater, &counters.try_later);
            }
        };
        match check_value(&value, &id, now) {
            Ok((c, tail)) => {
                // Kept only if no invalidation or clear happened during the read.
                if use_hot && self.subscribed.load(Ordering::SeqCst) && self.epoch.load(Ordering::SeqCst) == epoch {
                    self.hot.insert(key, &c, tail, id.name_hash);
                }
                self.stats.store.fetch_add(1, Ordering::Relaxed);
                counters.store.increment(1);
                Served::Answer(Answer::Cached(Arc::new(c)))
            }
            Err(why) => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    reason = ?why,
                    issuer_key_hash = %hex::encode(id.key_hash),
                    "OCSP store: a stored value is not a fresh response for the CertID asked; not served"
                );
                answer(ResponseStatus::InternalError, &counters.refused)
            }
        }
    }

    /// Answers one DER request (a hot-set hit as one [`Cached`]). Never fails: errors are
    /// OCSP error responses.
    pub async fn answer(&self, req: &[u8], now: i64) -> Answer {
        match self.serve(req, now).await {
            Served::Hot(h) => Answer::Cached(Arc::new(h.to_cached())),
            Served::Answer(a) => a,
        }
    }
}

/// The CertID of a parsed request that the full parser read (the shapes [`fast_cert_id`]
/// leaves to it), or the error status to answer: no CertID or a malformed nonce is
/// `malformedRequest`; several CertIDs or a hash algorithm not served is `unauthorized`. A
/// good nonce is not echoed.
fn checked(parsed: &OcspRequest) -> Result<CertRef<'_>, ResponseStatus> {
    let list = &parsed.tbs_request.request_list;
    if list.is_empty() {
        return Err(ResponseStatus::MalformedRequest);
    }
    if let Some(n) =
        parsed.tbs_request.request_extensions.as_ref().and_then(|e| e.iter().find(|e| e.extn_id == OCSP_NONCE))
    {
        // A malformed nonce is still a malformed request; a good one is not echoed.
        let ok =
            OctetString::from_der(n.extn_value.as_bytes()).is_ok_and(|o| (1..=MAX_NONCE).contains(&o.as_bytes().len()));
        if !ok {
            return Err(ResponseStatus::MalformedRequest);
        }
    }
    if list.len() != 1 {
        return Err(ResponseStatus::Unauthorized);
    }
    CertRef::of(&list[0].req_cert).ok_or(ResponseStatus::Unauthorized)
}

#[cfg(test)]
mod tests {
    use der::Encode as _;
    use der::asn1::Null;
    use spki::AlgorithmIdentifierOwned;
    use x509_cert::ext::Extension;
    use x509_cert::serial_number::SerialNumber;

    use super::*;
    use crate::ocsp::{Request, TbsRequest, Version};

    fn id(sha256: bool, null: bool, name: u8, serial: &[u8]) -> CertId {
        let n = if sha256 { 32 } else { 20 };
        CertId {
            hash_algorithm: AlgorithmIdentifierOwned {
                oid: if sha256 { SHA256 } else { SHA1 },
                parameters: null.then(|| Null.into()),
            },
            issuer_name_hash: OctetString::new(vec![name; n]).unwrap(),
            issuer_key_hash: OctetString::new(vec![name.wrapping_add(1); n]).unwrap(),
            serial_number: SerialNumber::new(serial).unwrap(),
        }
    }

    fn request(ids: Vec<CertId>, nonce: Option<&[u8]>) -> Vec<u8> {
        let request_extensions = nonce.map(|n| {
            vec![Extension {
                extn_id: OCSP_NONCE,
                critical: false,
                extn_value: OctetString::new(OctetString::new(n).unwrap().to_der().unwrap()).unwrap(),
            }]
        });
        OcspRequest {
            tbs_request: TbsRequest {
                version: Version::V1,
                requestor_name: None,
                request_list: ids
                    .into_iter()
                    .map(|req_cert| Request { req_cert, single_request_extensions: None })
                    .collect(),
                request_extensions,
            },
            optional_signature: None,
        }
        .to_der()
        .unwrap()
    }

    /// What the full parser makes of `req` (the authority on requests).
    fn full(req: &[u8]) -> Option<OcspRequest> {
        OcspRequest::from_der(req).ok()
    }

    fn serials() -> Vec<Vec<u8>> {
        let mut v = vec![vec![1], vec![0x7f], vec![0x80], vec![0xff; 19], vec![0x12; 20], vec![0x00, 0x01]];
        v.extend((1..=19).map(|n| (0..n as u8).map(|i| i.wrapping_mul(37).wrapping_add(0x91)).collect()));
        v
    }

    #[test]
    fn the_fast_reading_is_the_full_parsers_reading() {
        let mut n = 0;
        for sha256 in [false, true] {
            for null in [false, true] {
                for serial in serials() {
                    let cid = id(sha256, null, 3, &serial);
                    let req = request(vec![cid.clone()], None);
                    let parsed = full(&req).unwrap();
                    let fast = fast_cert_id(&req).unwrap_or_else(|| panic!("{}", hex::encode(&req)));
                    assert_eq!(Ok(fast), checked(&parsed));
                    assert_eq!(Some(fast), CertRef::of(&cid));
                    n += 1;
                }
            }
        }
        assert_eq!(n, 4 * serials().len());
    }

    #[test]
    fn other_shapes_go_to_the_full_parser() {
        let one = id(false, true, 3, &[5]);
        // A nonce, two CertIDs, none, another hash algorithm, an explicit version: not read here.
        assert_eq!(fast_cert_id(&request(vec![one.clone()], Some(b"0123456789abcdef"))), None);
        assert_eq!(fast_cert_id(&request(vec![one.clone(), one.clone()], None)), None);
        assert_eq!(fast_cert_id(&request(vec![], None)), None);
        let mut md5 = one.clone();
        md5.hash_algorithm.oid = der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.2.5");
        assert_eq!(fast_cert_id(&request(vec![md5.clone()], None)), None);
        assert_eq!(checked(&full(&request(vec![md5], None)).unwrap()), Err(ResponseStatus::Unauthorized));
        assert_eq!(
            checked(&full(&request(vec![one.clone(), one.clone()], None)).unwrap()),
            Err(ResponseStatus::Unauthorized)
        );
        assert_eq!(checked(&full(&request(vec![], None)).unwrap()), Err(ResponseStatus::MalformedRequest));
        // With a good nonce the full parser reads the same CertID.
        let nonce = full(&request(vec![one.clone()], Some(b"0123456789abcdef"))).unwrap();
        assert_eq!(checked(&nonce), Ok(CertRef::of(&one).unwrap()));
        // Trailing bytes, a cut, garbage.
        let mut req = request(vec![one], None);
        req.push(0);
        assert_eq!(fast_cert_id(&req), None);
        assert_eq!(fast_cert_id(&req[..req.len() - 2]), None);
        assert_eq!(fast_cert_id(b"\x30\x03garbage"), None);
        assert_eq!(fast_cert_id(&[]), None);
    }

    /// Every single-byte change, cut and extension of good requests: whatever the fast reading
    /// accepts, the full parser accepts and reads the same way.
    #[test]
    fn the_fast_reading_never_accepts_what_the_full_parser_refuses() {
        let mut accepted = 0;
        let mut checked_n = 0;
        let mut compare = |req: &[u8]| {
            checked_n += 1;
            if let Some(fast) = fast_cert_id(req) {
                accepted += 1;
                let parsed =
                    full(req).unwrap_or_else(|| panic!("fast accepted what der refuses: {}", hex::encode(req)));
                assert_eq!(checked(&parsed), Ok(fast), "{}", hex::encode(req));
            }
        };
        for (sha256, serial) in [(false, vec![0x01]), (true, vec![0x80, 0x01, 0x02]), (false, vec![0x7f; 20])] {
            let req = request(vec![id(sha256, true, 9, &serial)], None);
            for i in 0..req.len() {
                for v in [0x00, 0x01, 0x02, 0x04, 0x05, 0x06, 0x14, 0x20, 0x30, 0x7f, 0x80, 0x81, 0x82, 0xa0, 0xff] {
                    let mut m = req.clone();
                    m[i] = v;
                    compare(&m);
                    m[i] = req[i] ^ 0x01;
                    compare(&m);
                }
                compare(&req[..i]);
                let mut longer = req.clone();
                longer.insert(i, 0);
                compare(&longer);
            }
        }
        assert!(checked_n > 5000 && accepted > 100, "{checked_n} checked, {accepted} accepted");
    }
}
