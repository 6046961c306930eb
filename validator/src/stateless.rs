//! The stateless OCSP responder of the scale-out mode (`jpki serve ocsp-responder`): it serves
//! the responses the signers pre-signed into the shared store ([`crate::store`]) and holds no
//! responder key and no access to the CA, so a compromised responder cannot sign anything: the
//! worst it can do is serve an old response (still bounded by its nextUpdate) or none.
//!
//! A request is answered from a bounded hot set ([`crate::hot::HotSet`]) or, on a miss, from
//! the store; before a stored response is served it is parsed and checked to be a successful
//! basic response with exactly one SingleResponse for exactly the requested CertID (algorithm,
//! issuerNameHash, issuerKeyHash, serial) and still fresh. Invalidations published by the
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

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use der::Decode as _;
use der::asn1::OctetString;
use sha2::Digest as _;

use crate::hot::HotSet;
use crate::ocsp::{
    BasicOcspResponse, CertId, CertStatus, OCSP_BASIC, OCSP_NONCE, OcspRequest, OcspResponse, ResponseStatus,
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

/// Checks a stored value (status tag + OCSPResponse DER) against the requested CertID at
/// `now` and makes the served form of it (pure).
pub fn check_stored(value: &[u8], id: &CertId, now: i64) -> Result<Cached, Refusal> {
    check_stored_parts(value, id, now).map(|(c, _)| c)
}

/// [`check_stored`], and how many bytes the DER ends with that are the responder certificate
/// it carries (shared by every response of that responder; 0 if it carries none).
pub fn check_stored_parts(value: &[u8], id: &CertId, now: i64) -> Result<(Cached, usize), Refusal> {
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
    let same = c.hash_algorithm.oid == id.hash_algorithm.oid
        && c.issuer_name_hash == id.issuer_name_hash
        && c.issuer_key_hash == id.issuer_key_hash
        && minimal(c.serial_number.as_bytes()) == minimal(id.serial_number.as_bytes());
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
        }
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

    /// Answers one DER request. Never fails: errors are OCSP error responses.
    pub async fn answer(&self, req: &[u8], now: i64) -> Answer {
        let answer = |status: ResponseStatus, path: &'static str| {
            metrics::counter!("jpki_ocsp_answers_total", "path" => path).increment(1);
            Answer::Live(error_der(status))
        };
        if req.len() > MAX_REQUEST {
            return answer(ResponseStatus::MalformedRequest, "malformed");
        }
        let Ok(parsed) = OcspRequest::from_der(req) else {
            return answer(ResponseStatus::MalformedRequest, "malformed");
        };
        let list = &parsed.tbs_request.request_list;
        if list.is_empty() {
            return answer(ResponseStatus::MalformedRequest, "malformed");
        }
        if let Some(n) =
            parsed.tbs_request.request_extensions.as_ref().and_then(|e| e.iter().find(|e| e.extn_id == OCSP_NONCE))
        {
            // A malformed nonce is still a malformed request; a good one is not echoed.
            let ok = OctetString::from_der(n.extn_value.as_bytes())
                .is_ok_and(|o| (1..=MAX_NONCE).contains(&o.as_bytes().len()));
            if !ok {
                return answer(ResponseStatus::MalformedRequest, "malformed");
            }
        }
        if list.len() != 1 {
            return answer(ResponseStatus::Unauthorized, "unauthorized");
        }
        let id = &list[0].req_cert;
        let Some(alg) = Alg::of(&id.hash_algorithm) else {
            return answer(ResponseStatus::Unauthorized, "unauthorized");
        };
        let key = crate::store::key(alg, id.issuer_key_hash.as_bytes(), id.serial_number.as_bytes());
        let use_hot = self.subscribed.load(Ordering::SeqCst);
        if use_hot && let Some(c) = self.hot.get(&key).filter(|c| c.next_update > now) {
            self.stats.hot.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("jpki_ocsp_answers_total", "path" => "hot").increment(1);
            return Answer::Cached(c);
        }
        let epoch = self.epoch.load(Ordering::SeqCst);
        let value = match self.store.get(key.clone()).await {
            Ok(Some(v)) => v,
            Ok(None) => {
                self.stats.absent.fetch_add(1, Ordering::Relaxed);
                return answer(ResponseStatus::Unauthorized, "unauthorized");
            }
            Err(e) => {
                self.stats.unavailable.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("jpki_ocsp_store_errors_total", "op" => "read").increment(1);
                tracing::warn!("OCSP store unreachable, answering tryLater: {e}");
                return answer(ResponseStatus::TryLater, "try_later");
            }
        };
        match check_stored_parts(&value, id, now) {
            Ok((c, tail)) => {
                // Kept only if no invalidation or clear happened during the read.
                if use_hot && self.subscribed.load(Ordering::SeqCst) && self.epoch.load(Ordering::SeqCst) == epoch {
                    self.hot.insert(&key, &c, tail);
                }
                let c = Arc::new(c);
                self.stats.store.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("jpki_ocsp_answers_total", "path" => "store").increment(1);
                Answer::Cached(c)
            }
            Err(why) => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    reason = ?why,
                    issuer_key_hash = %hex::encode(id.issuer_key_hash.as_bytes()),
                    "OCSP store: a stored value is not a fresh response for the CertID asked; not served"
                );
                answer(ResponseStatus::InternalError, "refused")
            }
        }
    }
}
