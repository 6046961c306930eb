//! HTTP client for calls between parties (replication pulls, notice keys, 転出証明書 and
//! 転入通知, code pools, the change feed, provision and operator reports). Who calls is the
//! credential of the `reqwest::Client` it is given (mutual TLS, built by the `net` crate);
//! no request carries a token. Answers are read up to [`MAX_RESPONSE`] bytes; peer errors
//! carry the URL, the HTTP status and the peer's message, or the whole error chain.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::{LgCode, ResidentCode};
use crate::municipal::MoveOutCertificate;
use crate::national::FeedEntry;
use crate::notice::ChangeNotice;
use crate::notice_sig::NoticeKeyCert;
use crate::store::Head;

/// What `GET /v1/heads` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Heads {
    /// `municipality`, `prefecture` or `national`.
    pub role: String,
    /// The node's code (municipality code, prefecture code, or `national`).
    pub code: String,
    /// Chain heads it holds.
    pub heads: Vec<Head>,
    /// A digest of `heads` (hex): give it back as `since` to wait for a change
    /// ([`Peer::heads_wait`]). Empty from a node that predates long polls.
    #[serde(default)]
    pub version: String,
}

impl Heads {
    /// The heads of a node, with their [`Heads::version`].
    pub fn new(role: String, code: String, heads: Vec<Head>) -> Self {
        let version = version_of(&heads);
        Self { role, code, heads, version }
    }
}

/// The digest of a list of heads: SHA-256 over each source, seq, hash and halt reason,
/// length-prefixed, truncated to 16 bytes (hex). Equal lists give equal versions.
pub fn version_of(heads: &[Head]) -> String {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    for x in heads {
        for part in [x.source.as_bytes(), x.hash.as_bytes(), x.halted.as_deref().unwrap_or("").as_bytes()] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        h.update(x.seq.to_be_bytes());
        h.update([u8::from(x.halted.is_some())]);
    }
    hex::encode(&h.finalize()[..16])
}

/// The longest a long poll waits on a node (`wait_ms`), below the servers' idle timeout
/// (`net::server`, 15 s without a byte) and the clients' request timeout (30 s).
pub const MAX_WAIT_MS: u64 = 10_000;

/// The longest [`Pace`] holds a follower back.
pub const MAX_PACE: std::time::Duration = std::time::Duration::from_millis(500);

/// Paces an event-driven follower of one peer (a puller of a node, the CA following the feed,
/// a validator following the status stream): the next run starts no sooner after the last one
/// ended than the last one took (at most [`MAX_PACE`]). On a quiet machine a run takes
/// milliseconds and so does the gap; on a starved one runs slow down, the gaps grow with them,
/// and each run takes a bigger batch, instead of every notice paying a whole round trip and
/// transaction at every hop while the queue grows.
#[derive(Debug, Clone, Default)]
pub struct Pace {
    ended: Option<(tokio::time::Instant, std::time::Duration)>,
}

impl Pace {
    /// Records a run that started at `started` and has just ended.
    pub fn ran(&mut self, started: tokio::time::Instant) {
        let now = tokio::time::Instant::now();
        self.ended = Some((now, now.saturating_duration_since(started)));
    }

    /// When the next run may start (`None`: at once, nothing ran yet).
    pub fn ready_at(&self) -> Option<tokio::time::Instant> {
        self.ended.map(|(at, took)| at + took.min(MAX_PACE))
    }

    /// Whether the next run may start at `now`.
    pub fn is_ready(&self, now: tokio::time::Instant) -> bool {
        self.ready_at().is_none_or(|t| t <= now)
    }

    /// Waits until the next run may start.
    pub async fn wait(&self) {
        if let Some(t) = self.ready_at() {
            tokio::time::sleep_until(t).await;
        }
    }
}

/// A 転入通知 sent by the new municipality to the old one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MoveInNotice {
    /// The resident.
    pub resident_code: ResidentCode,
    /// The new municipality.
    pub new_municipality: LgCode,
    /// Seq of the move-in notice at the new municipality.
    pub notice_seq: u64,
}

/// A request for a pool of resident codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PoolRequest {
    /// Requesting municipality.
    pub municipality: LgCode,
    /// How many codes (1–100,000).
    pub count: u32,
}

/// The largest peer answer read (a replication page of 1,000 notices is about 1 MiB); a
/// longer body is refused before it is parsed (a hostile peer cannot exhaust memory).
pub const MAX_RESPONSE: usize = 32 << 20;

/// A peer node at `base` (e.g. `https://127.0.0.1:8101`), reached with an HTTP client that
/// carries this node's credential (the `net` crate builds it: mutual TLS, the network CA as
/// the only anchor, the peer's party pinned). Who the caller is comes from that credential;
/// no request carries a token.
#[derive(Debug, Clone)]
pub struct Peer {
    base: String,
    http: reqwest::Client,
}

impl Peer {
    /// A client for the node at `base` over `http` (in production
    /// `net::client::client(credential, trust, Some(expected_party))`; its certificate is
    /// who this peer's requests come from).
    pub fn new(base: &str, http: reqwest::Client) -> Self {
        Self { base: base.trim_end_matches('/').to_owned(), http }
    }

    /// A GET carrying the current request id ([`crate::request_id`]).
    fn get(&self, url: String) -> reqwest::RequestBuilder {
        with_request_id(self.http.get(url))
    }

    /// A POST carrying the current request id.
    fn post(&self, url: String) -> reqwest::RequestBuilder {
        with_request_id(self.http.post(url))
    }

    /// The peer's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn err(&self, reason: impl ToString) -> Error {
        Error::Peer { url: self.base.clone(), reason: reason.to_string() }
    }

    /// Reads at most [`MAX_RESPONSE`] bytes of the body.
    async fn body(&self, mut r: reqwest::Response) -> Result<Vec<u8>> {
        if r.content_length().is_some_and(|n| n > MAX_RESPONSE as u64) {
            return Err(self.err(format!("answer of {} bytes exceeds {MAX_RESPONSE}", r.content_length().unwrap_or(0))));
        }
        let mut out = Vec::new();
        while let Some(chunk) = r.chunk().await.map_err(|e| self.err(error_chain(&e)))? {
            if out.len() + chunk.len() > MAX_RESPONSE {
                return Err(self.err(format!("answer exceeds {MAX_RESPONSE} bytes; refused")));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    async fn finish<T: DeserializeOwned>(&self, r: reqwest::Result<reqwest::Response>) -> Result<T> {
        let body = self.finish_bytes(r).await?;
        serde_json::from_slice(&body).map_err(|e| self.err(format!("malformed answer: {e}")))
    }

    async fn finish_bytes(&self, r: reqwest::Result<reqwest::Response>) -> Result<Vec<u8>> {
        let r = r.map_err(|e| self.err(error_chain(&e)))?;
        let status = r.status();
        let body = self.body(r).await?;
        if !status.is_success() {
            return Err(answer_error(&self.base, status, &body));
        }
        Ok(body)
    }

    /// `GET /v1/heads`.
    pub async fn heads(&self) -> Result<Heads> {
        self.finish(self.get(format!("{}/v1/heads", self.base)).send().await).await
    }

    /// `GET /v1/heads?since=&wait_ms=`: the heads once their version differs from `since`, or
    /// after `wait_ms` (at most [`MAX_WAIT_MS`]) unchanged. A node that predates long polls
    /// answers at once.
    pub async fn heads_wait(&self, since: &str, wait_ms: u64) -> Result<Heads> {
        let url = format!("{}/v1/heads?since={since}&wait_ms={}", self.base, wait_ms.min(MAX_WAIT_MS));
        self.finish(self.get(url).send().await).await
    }

    /// `GET /v1/sources/{source}/notices?after=&limit=`.
    pub async fn notices(&self, source: &str, after: u64, limit: u32) -> Result<Vec<ChangeNotice>> {
        let url = format!("{}/v1/sources/{source}/notices?after={after}&limit={limit}", self.base);
        self.finish(self.get(url).send().await).await
    }

    /// `GET /v1/sources/{source}/keys`: the source's notice-key certificates.
    pub async fn notice_keys(&self, source: &str) -> Result<Vec<NoticeKeyCert>> {
        self.finish(self.get(format!("{}/v1/sources/{source}/keys", self.base)).send().await).await
    }

    /// `GET /v1/move-out/{code}`: the 転出証明書情報 (to the destination municipality only).
    pub async fn move_out_certificate(&self, code: &ResidentCode) -> Result<MoveOutCertificate> {
        self.finish(self.get(format!("{}/v1/move-out/{code}", self.base)).send().await).await
    }

    /// `POST /v1/move-in-notices` (from the new municipality itself): returns whether it was
    /// new (false on a retry).
    pub async fn send_move_in_notice(&self, n: &MoveInNotice) -> Result<bool> {
        self.finish(self.post(format!("{}/v1/move-in-notices", self.base)).json(n).send().await).await
    }

    /// `POST /v1/code-pools` on the national node (the caller's own municipality only).
    pub async fn allocate_pool(&self, req: &PoolRequest) -> Result<Vec<ResidentCode>> {
        self.finish(self.post(format!("{}/v1/code-pools", self.base)).json(req).send().await).await
    }

    /// `GET /v1/feed?after=&limit=` on the national node.
    pub async fn feed(&self, after: u64, limit: u32) -> Result<Vec<FeedEntry>> {
        self.finish(self.get(format!("{}/v1/feed?after={after}&limit={limit}", self.base)).send().await).await
    }

    /// The national feed's newest position.
    pub async fn feed_head(&self) -> Result<u64> {
        self.finish(self.get(format!("{}/v1/feed/head", self.base)).send().await).await
    }

    /// `GET /v1/feed/head?after=&wait_ms=`: the feed's newest position once it is past
    /// `after`, or after `wait_ms` (at most [`MAX_WAIT_MS`]).
    pub async fn feed_head_wait(&self, after: u64, wait_ms: u64) -> Result<u64> {
        let url = format!("{}/v1/feed/head?after={after}&wait_ms={}", self.base, wait_ms.min(MAX_WAIT_MS));
        self.finish(self.get(url).send().await).await
    }

    /// POST a JSON body and return the decoded answer (e.g. the agency API).
    pub async fn post_json<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        self.finish(self.post(format!("{}{path}", self.base)).json(body).send().await).await
    }

    /// GET a JSON document (e.g. an operator's disclosure report).
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.finish(self.get(format!("{}{path}", self.base)).send().await).await
    }

    /// GET a text document (e.g. an operator's statistics).
    pub async fn get_text(&self, path: &str) -> Result<String> {
        let body = self.finish_bytes(self.get(format!("{}{path}", self.base)).send().await).await?;
        String::from_utf8(body).map_err(|e| self.err(format!("answer is not UTF-8: {e}")))
    }
}

/// A peer's error answer: its HTTP status and the error body it sent (`{"error", "message",
/// "reason"}`, [`crate::openapi::ErrorBody`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAnswer {
    /// The URL called.
    pub url: String,
    /// The HTTP status (401, 403, 404, 409, …).
    pub status: u16,
    /// The body's `error` (`unauthenticated`, `forbidden`, `not_found`, `conflict`, `invalid`, …).
    pub error: String,
    /// The body's `reason`, on refusals (`not_own_municipality`, `party_not_allowed`,
    /// `clerk_bad_signature`, `clerk_stale`, …).
    pub reason: Option<String>,
    /// The body's `message`, for a person.
    pub message: String,
}

impl PeerAnswer {
    /// The most specific stable code: the refusal's `reason` if there is one, else `error`.
    pub fn code(&self) -> &str {
        self.reason.as_deref().unwrap_or(&self.error)
    }
}

impl std::fmt::Display for PeerAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code(), self.message)
    }
}

/// The error for a non-success answer from `url`: [`Error::PeerAnswer`] if the body is an
/// error body, else [`Error::Peer`] with the status and the body's start.
fn answer_error(url: &str, status: reqwest::StatusCode, body: &[u8]) -> Error {
    match serde_json::from_slice::<crate::openapi::ErrorBody>(body) {
        Ok(b) => Error::PeerAnswer(Box::new(PeerAnswer {
            url: url.to_owned(),
            status: status.as_u16(),
            error: b.error,
            reason: b.reason,
            message: b.message,
        })),
        Err(_) => {
            let text = String::from_utf8_lossy(&body[..body.len().min(2048)]).into_owned();
            Error::Peer { url: url.to_owned(), reason: format!("{status}: {text}") }
        }
    }
}

/// Makes the clerk's three signature headers for one window request: given the method, the
/// URL's path and the exact body bytes, the header names and values (the window service
/// implements it with `net::clerk::ClerkKey::headers` and its own window party; identity holds
/// no key). An `Err` is the reason, for a person; nothing is sent.
pub type ClerkSign<'a> = &'a (dyn Fn(&str, &str, &[u8]) -> std::result::Result<SignedHeaders, String> + Send + Sync);

/// The clerk's signature headers of one request: (name, value) pairs.
pub type SignedHeaders = Vec<(&'static str, String)>;

/// `POST base+path` with `body` as JSON, signed for the clerk by `sign` over exactly the bytes
/// sent, over `client` (in production `net::client::client(window credential, trust,
/// Some(node party))`: mutual TLS as the window, the node's party pinned); the answer decoded as
/// `R`. A node's refusal or error is [`Error::PeerAnswer`] (status, stable code, message); a
/// transport failure is [`Error::Peer`].
pub async fn window_post<B: Serialize + ?Sized, R: DeserializeOwned>(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    body: &B,
    sign: ClerkSign<'_>,
) -> Result<R> {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let parsed = reqwest::Url::parse(&url).map_err(|e| Error::invalid("url", format!("{url}: {e}")))?;
    let bytes = serde_json::to_vec(body).map_err(|e| Error::invalid("body", e.to_string()))?;
    let headers = sign("POST", parsed.path(), &bytes).map_err(Error::ClerkSigning)?;
    let mut req = with_request_id(client.post(parsed)).header(reqwest::header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        req = req.header(name, value);
    }
    let peer = Peer::new(base, client.clone());
    let r = req.body(bytes).send().await;
    let answer = peer.finish_bytes(r).await?;
    serde_json::from_slice(&answer).map_err(|e| peer.err(format!("malformed answer: {e}")))
}

/// [`window_post`] of a typed window request to its route ([`crate::window::WindowRequest`]):
/// e.g. `window_call(&c, municipality_url, &FindRequest { by }, &sign).await?` → `Found`.
pub async fn window_call<Q: crate::window::WindowRequest>(
    client: &reqwest::Client,
    base: &str,
    request: &Q,
    sign: ClerkSign<'_>,
) -> Result<Q::Answer> {
    window_post(client, base, Q::PATH, request, sign).await
}

fn with_request_id(r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    match crate::request_id::current() {
        Some(id) => r.header(crate::request_id::HEADER, id),
        None => r,
    }
}

/// An error with its sources (reqwest hides the TLS reason in the chain).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::time::Instant;

    #[tokio::test]
    async fn a_pace_holds_the_next_run_back_as_long_as_the_last_took_up_to_the_cap() {
        let mut pace = Pace::default();
        assert_eq!(pace.ready_at(), None, "the first run may start at once");
        assert!(pace.is_ready(Instant::now()));

        let took = Duration::from_millis(30);
        let before = Instant::now();
        pace.ran(before - took);
        let after = Instant::now();
        let at = pace.ready_at().unwrap();
        assert!(at >= before + took, "a 30-ms run holds the next one back 30 ms");
        assert!(at <= after + took + (after - before));
        assert!(!pace.is_ready(after) && pace.is_ready(at));

        let before = Instant::now();
        pace.ran(before - Duration::from_secs(5));
        let after = Instant::now();
        let at = pace.ready_at().unwrap();
        assert!(at >= before + MAX_PACE, "a slow run holds the next one back");
        assert!(at <= after + MAX_PACE, "but never more than MAX_PACE");
    }
}
