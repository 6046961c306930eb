//! HTTP client for node-to-node calls (replication pulls, move-in notices, code pools,
//! the change feed). Peer errors carry the URL and the peer's message.

use std::time::Duration;

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heads {
    /// `municipality`, `prefecture` or `national`.
    pub role: String,
    /// The node's code (municipality code, prefecture code, or `national`).
    pub code: String,
    /// Chain heads it holds.
    pub heads: Vec<Head>,
}

/// A 転入通知 sent by the new municipality to the old one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveInNotice {
    /// The resident.
    pub resident_code: ResidentCode,
    /// The new municipality.
    pub new_municipality: LgCode,
    /// Seq of the move-in notice at the new municipality.
    pub notice_seq: u64,
}

/// A request for a pool of resident codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolRequest {
    /// Requesting municipality.
    pub municipality: LgCode,
    /// How many codes (1–100,000).
    pub count: u32,
}

/// A peer node at `base` (e.g. `http://127.0.0.1:8101`).
#[derive(Debug, Clone)]
pub struct Peer {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl Peer {
    /// A client for the node at `base`.
    pub fn new(base: &str) -> Self {
        let http =
            reqwest::Client::builder().timeout(Duration::from_secs(30)).tcp_nodelay(true).build().unwrap_or_default();
        Self { base: base.trim_end_matches('/').to_owned(), http, token: None }
    }

    /// The same peer, presenting the node-to-node token on replication, 転出証明書, 転入通知
    /// and feed calls.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    fn peer_get(&self, url: String) -> reqwest::RequestBuilder {
        let r = self.http.get(url);
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// The peer's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn err(&self, reason: impl ToString) -> Error {
        Error::Peer { url: self.base.clone(), reason: reason.to_string() }
    }

    async fn finish<T: DeserializeOwned>(&self, r: reqwest::Result<reqwest::Response>) -> Result<T> {
        let r = r.map_err(|e| self.err(e))?;
        let status = r.status();
        if !status.is_success() {
            let body = r.text().await.unwrap_or_default();
            return Err(self.err(format!("{status}: {body}")));
        }
        r.json().await.map_err(|e| self.err(e))
    }

    /// `GET /v1/heads`.
    pub async fn heads(&self) -> Result<Heads> {
        self.finish(self.peer_get(format!("{}/v1/heads", self.base)).send().await).await
    }

    /// `GET /v1/sources/{source}/notices?after=&limit=`.
    pub async fn notices(&self, source: &str, after: u64, limit: u32) -> Result<Vec<ChangeNotice>> {
        let url = format!("{}/v1/sources/{source}/notices?after={after}&limit={limit}", self.base);
        self.finish(self.peer_get(url).send().await).await
    }

    /// `GET /v1/sources/{source}/keys`: the source's notice-key certificates.
    pub async fn notice_keys(&self, source: &str) -> Result<Vec<NoticeKeyCert>> {
        self.finish(self.peer_get(format!("{}/v1/sources/{source}/keys", self.base)).send().await).await
    }

    /// `GET /v1/move-out/{code}`: the 転出証明書情報.
    pub async fn move_out_certificate(&self, code: &ResidentCode) -> Result<MoveOutCertificate> {
        self.finish(self.peer_get(format!("{}/v1/move-out/{code}", self.base)).send().await).await
    }

    /// `POST /v1/move-in-notices`: returns whether it was new (false on a retry).
    pub async fn send_move_in_notice(&self, n: &MoveInNotice) -> Result<bool> {
        let r = self.http.post(format!("{}/v1/move-in-notices", self.base)).json(n);
        let r = match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        };
        self.finish(r.send().await).await
    }

    /// `POST /v1/code-pools` on the national node (operator token required).
    pub async fn allocate_pool(&self, token: &str, req: &PoolRequest) -> Result<Vec<ResidentCode>> {
        let r = self.http.post(format!("{}/v1/code-pools", self.base)).bearer_auth(token).json(req).send().await;
        self.finish(r).await
    }

    /// `GET /v1/feed?after=&limit=` on the national node.
    pub async fn feed(&self, after: u64, limit: u32) -> Result<Vec<FeedEntry>> {
        self.finish(self.peer_get(format!("{}/v1/feed?after={after}&limit={limit}", self.base)).send().await).await
    }

    /// The national feed's newest position.
    pub async fn feed_head(&self) -> Result<u64> {
        self.finish(self.peer_get(format!("{}/v1/feed/head", self.base)).send().await).await
    }

    /// POST a JSON body with a bearer token and return the decoded answer (agency API).
    pub async fn post_json<B: Serialize, T: DeserializeOwned>(&self, path: &str, token: &str, body: &B) -> Result<T> {
        let r = self.http.post(format!("{}{path}", self.base)).bearer_auth(token).json(body).send().await;
        self.finish(r).await
    }

    /// GET a JSON document with a bearer token.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str, token: &str) -> Result<T> {
        self.finish(self.http.get(format!("{}{path}", self.base)).bearer_auth(token).send().await).await
    }

    /// GET a text document with a bearer token.
    pub async fn get_text(&self, path: &str, token: &str) -> Result<String> {
        let r =
            self.http.get(format!("{}{path}", self.base)).bearer_auth(token).send().await.map_err(|e| self.err(e))?;
        let status = r.status();
        let body = r.text().await.map_err(|e| self.err(e))?;
        if !status.is_success() {
            return Err(self.err(format!("{status}: {body}")));
        }
        Ok(body)
    }
}
