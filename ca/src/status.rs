//! The CA's certificate status, read only: the typed boundary through which the validator
//! reads the CA's database. It exposes exactly what a status service needs — CA certificates
//! (for responder matching and trust anchors), certificate status by serial, and revocations
//! after a sequence number — and nothing else (no resident codes, no settings, no key
//! references).
//!
//! The validator reads it from one of two sources ([`StatusSource`]): the CA's database,
//! read only ([`StatusReader`]), or the CA service's status stream over mutual TLS
//! ([`StatusClient`]: `GET /v1/status/…` of `jpki serve ca`), which needs no access to the
//! CA's database at all. Both answer with the same types.
//!
//! [`StatusReader::open`] never migrates, indexes or writes: SQLite is opened with `mode=ro`
//! and `PRAGMA query_only`; on PostgreSQL every session is `READ ONLY`, and the operator gives
//! the validator a role that has only `SELECT` on `ca_generation`, `ca_certificate`,
//! `ca_revocation` and `ca_revocation_counter` (docs/validator.md).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::de::DeserializeOwned;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor, Row};

use crate::authority::state;
use crate::crl::Reason;
use crate::error::{Error, Result};
use crate::hierarchy::CaId;
use crate::service::{CaCertBody, CertStatusBody, ErrorBody, HeadBody, MAX_PAGE, RevocationBody};

/// One revocation, as numbered by the revoking transaction (`ca_revocation.seq`: gapless,
/// increasing, in commit order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// Revocation sequence number (from 1).
    pub seq: i64,
    /// Serial, lower-case hex (minimal encoding).
    pub serial: String,
    /// Issuing CA slug.
    pub issuer_slug: String,
    /// Issuing CA generation.
    pub issuer_generation: i64,
    /// revocationDate (unix seconds; the revoking process's clock — never used for ordering).
    pub revoked_at: i64,
    /// Reason.
    pub reason: Reason,
}

/// What the CA's tables say about one serial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    /// Issued and not revoked.
    Good,
    /// Revoked (final).
    Revoked {
        /// Unix seconds.
        at: i64,
        /// Why.
        reason: Reason,
    },
    /// Reserved or abandoned: never issued.
    NotIssued,
}

/// A certificate of the CA's tables with its issuer and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// Serial, lower-case hex.
    pub serial: String,
    /// Issuing CA slug.
    pub issuer_slug: String,
    /// Issuing CA generation.
    pub issuer_generation: i64,
    /// Status.
    pub status: CertStatus,
}

/// A CA generation's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaCertificate {
    /// The CA (purpose, environment, prefecture).
    pub ca: CaId,
    /// Generation.
    pub generation: i64,
    /// The certificate (DER).
    pub certificate: Vec<u8>,
    /// Its subject key identifier.
    pub key_id: Vec<u8>,
}

/// A read-only connection to the CA's status tables.
#[derive(Debug, Clone)]
pub struct StatusReader {
    pool: AnyPool,
}

/// The SQLite URL that opens `url` read only (`mode=ro`); `None` for PostgreSQL.
fn read_only_sqlite(url: &str) -> Result<Option<String>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(None);
    }
    let path = url.strip_prefix("sqlite://").unwrap_or(url);
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path.contains(":memory:") {
        return Err(Error::invalid("CA database", "give the CA database's file path"));
    }
    Ok(Some(format!("sqlite://{path}?mode=ro")))
}

fn status_of(state_code: i64, revoked_at: Option<i64>, reason: Option<i64>) -> Result<CertStatus> {
    Ok(match revoked_at {
        Some(at) => CertStatus::Revoked { at, reason: Reason::from_code(reason.unwrap_or(0))? },
        None if state_code == state::ISSUED => CertStatus::Good,
        None => CertStatus::NotIssued,
    })
}

/// A certificate row (serial, issuer slug, generation, state, revoked_at, reason).
fn certificate_of(r: &sqlx::any::AnyRow) -> Result<Certificate> {
    Ok(Certificate {
        serial: r.try_get(0)?,
        issuer_slug: r.try_get(1)?,
        issuer_generation: r.try_get(2)?,
        status: status_of(r.try_get(3)?, r.try_get(4)?, r.try_get(5)?)?,
    })
}

impl StatusReader {
    /// Opens the CA database at `url` read only, without running migrations: it must already
    /// be migrated by the CA (a missing revocation counter is an error, not a reason to create
    /// it).
    pub async fn open(url: &str) -> Result<StatusReader> {
        install_default_drivers();
        let sqlite = read_only_sqlite(url)?;
        let is_sqlite = sqlite.is_some();
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if is_sqlite {
                        conn.execute("PRAGMA query_only = ON").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                    } else {
                        conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY").await?;
                    }
                    Ok(())
                })
            })
            .connect(sqlite.as_deref().unwrap_or(url))
            .await?;
        let r = StatusReader { pool };
        r.head().await.map_err(|e| {
            Error::invalid("CA database", format!("no revocation sequence (is it a migrated CA database?): {e}"))
        })?;
        Ok(r)
    }

    /// A reader over the CA's own pool (the CA service serves the status stream from it; it
    /// only reads through this type).
    pub(crate) fn over(pool: AnyPool) -> StatusReader {
        StatusReader { pool }
    }

    /// The last revocation sequence number committed (0 if none).
    pub async fn head(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT last_seq FROM ca_revocation_counter WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::corrupt("revocation counter", "missing"))?
            .try_get(0)?)
    }

    /// Revocations numbered after `after`, in sequence order, at most `limit`.
    pub async fn revocations_after(&self, after: i64, limit: i64) -> Result<Vec<Revocation>> {
        let rows = sqlx::query(
            "SELECT seq, serial, issuer_slug, issuer_generation, revoked_at, reason FROM ca_revocation \
             WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Revocation {
                    seq: r.try_get(0)?,
                    serial: r.try_get(1)?,
                    issuer_slug: r.try_get(2)?,
                    issuer_generation: r.try_get(3)?,
                    revoked_at: r.try_get(4)?,
                    reason: Reason::from_code(r.try_get(5)?)?,
                })
            })
            .collect()
    }

    /// Every issued or revoked certificate.
    pub async fn certificates(&self) -> Result<Vec<Certificate>> {
        let rows = sqlx::query(
            "SELECT c.serial, c.issuer_slug, c.issuer_generation, c.state, r.revoked_at, r.reason \
             FROM ca_certificate c LEFT JOIN ca_revocation r ON r.serial = c.serial \
             WHERE c.state = $1 OR r.serial IS NOT NULL",
        )
        .bind(state::ISSUED)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(certificate_of).collect()
    }

    /// Issued or revoked certificates whose serial sorts after `after` (`""` for the first
    /// page), in serial order, at most `limit`: the pages of [`StatusReader::certificates`].
    pub async fn certificates_after(&self, after: &str, limit: i64) -> Result<Vec<Certificate>> {
        let rows = sqlx::query(
            "SELECT c.serial, c.issuer_slug, c.issuer_generation, c.state, r.revoked_at, r.reason \
             FROM ca_certificate c LEFT JOIN ca_revocation r ON r.serial = c.serial \
             WHERE (c.state = $1 OR r.serial IS NOT NULL) AND c.serial > $2 ORDER BY c.serial LIMIT $3",
        )
        .bind(state::ISSUED)
        .bind(after.to_owned())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(certificate_of).collect()
    }

    /// One certificate by serial (lower-case hex, minimal), `None` if the CA never reserved it.
    pub async fn certificate(&self, serial: &str) -> Result<Option<Certificate>> {
        let row = sqlx::query(
            "SELECT c.serial, c.issuer_slug, c.issuer_generation, c.state, r.revoked_at, r.reason \
             FROM ca_certificate c LEFT JOIN ca_revocation r ON r.serial = c.serial WHERE c.serial = $1",
        )
        .bind(serial.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(certificate_of).transpose()
    }

    /// Every CA generation's certificate, by slug and generation.
    pub async fn ca_certificates(&self) -> Result<Vec<CaCertificate>> {
        let rows =
            sqlx::query("SELECT slug, generation, certificate, key_id FROM ca_generation ORDER BY slug, generation")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                Ok(CaCertificate {
                    ca: CaId::parse(&r.try_get::<String, _>(0)?)?,
                    generation: r.try_get(1)?,
                    certificate: r.try_get(2)?,
                    key_id: r.try_get(3)?,
                })
            })
            .collect()
    }
}

/// The largest answer of the CA service read (a page of [`MAX_PAGE`] certificates is about
/// 2 MiB of JSON); a longer body is refused before it is parsed.
pub const MAX_ANSWER: usize = 16 << 20;

/// A client of the CA service's status stream (`GET /v1/status/…`, served to validator and
/// operator parties). Who calls is the credential of the `reqwest::Client` it is given: the
/// caller builds it with `net::client::client(credential, trust, Some(ca_party))`, so TLS, the
/// network CA as the only anchor and the CA service's party are the `net` crate's. Answers are
/// read up to [`MAX_ANSWER`] bytes and converted to the same types as [`StatusReader`]'s.
#[derive(Debug, Clone)]
pub struct StatusClient {
    base: String,
    http: reqwest::Client,
}

/// A reqwest error with its sources (the TLS or connection reason is in a source).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

/// Whether `serial` is what the CA could have issued: 1–32 octets of hex.
fn plausible_serial(serial: &str) -> bool {
    (2..=64).contains(&serial.len()) && serial.len().is_multiple_of(2) && serial.bytes().all(|b| b.is_ascii_hexdigit())
}

impl StatusClient {
    /// A client of the CA service at `base_url` (`https://HOST:PORT`) over `http`.
    pub fn new(base_url: &str, http: reqwest::Client) -> StatusClient {
        StatusClient { base: base_url.trim_end_matches('/').to_owned(), http }
    }

    /// The CA service's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn err(&self, detail: impl Into<String>) -> Error {
        Error::StatusService { url: self.base.clone(), detail: detail.into() }
    }

    /// `GET {base}{path}`: the status and at most [`MAX_ANSWER`] bytes of the body.
    async fn get_raw(&self, path: &str) -> Result<(reqwest::StatusCode, Vec<u8>)> {
        let mut r =
            self.http.get(format!("{}{path}", self.base)).send().await.map_err(|e| self.err(error_chain(&e)))?;
        if r.content_length().is_some_and(|n| n > MAX_ANSWER as u64) {
            return Err(self.err(format!("answer exceeds {MAX_ANSWER} bytes; refused")));
        }
        let mut body = Vec::new();
        while let Some(chunk) = r.chunk().await.map_err(|e| self.err(error_chain(&e)))? {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(self.err(format!("answer exceeds {MAX_ANSWER} bytes; refused")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((r.status(), body))
    }

    fn refused(&self, status: reqwest::StatusCode, body: &[u8]) -> Error {
        let text = String::from_utf8_lossy(&body[..body.len().min(1024)]).into_owned();
        self.err(format!("{status}: {text}"))
    }

    fn parse<T: DeserializeOwned>(&self, body: &[u8]) -> Result<T> {
        serde_json::from_slice(body).map_err(|e| self.err(format!("malformed answer: {e}")))
    }

    /// A successful JSON answer to `GET {base}{path}`.
    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let (status, body) = self.get_raw(path).await?;
        if !status.is_success() {
            return Err(self.refused(status, &body));
        }
        self.parse(&body)
    }

    fn certificate_of(&self, b: CertStatusBody) -> Result<Certificate> {
        let status = match (b.status.as_str(), b.revoked_at) {
            ("good", _) => CertStatus::Good,
            ("not_issued", _) => CertStatus::NotIssued,
            ("revoked", Some(at)) => CertStatus::Revoked { at, reason: Reason::from_code(b.reason.unwrap_or(0))? },
            (other, _) => return Err(self.err(format!("malformed answer: status {other:?} of {}", b.serial))),
        };
        Ok(Certificate { serial: b.serial, issuer_slug: b.issuer_slug, issuer_generation: b.issuer_generation, status })
    }

    /// `GET /v1/status/head`: the last revocation sequence number committed.
    pub async fn head(&self) -> Result<i64> {
        Ok(self.get::<HeadBody>("/v1/status/head").await?.head)
    }

    /// `GET /v1/status/head?after=&wait_ms=`: the head once it is past `after`, or after
    /// `wait_ms` (at most [`identity::client::MAX_WAIT_MS`]).
    pub async fn head_wait(&self, after: i64, wait_ms: u64) -> Result<i64> {
        let wait_ms = wait_ms.min(identity::client::MAX_WAIT_MS);
        Ok(self.get::<HeadBody>(&format!("/v1/status/head?after={after}&wait_ms={wait_ms}")).await?.head)
    }

    /// `GET /v1/status/revocations?after=&limit=` (`limit` at most [`MAX_PAGE`]).
    pub async fn revocations_after(&self, after: i64, limit: i64) -> Result<Vec<Revocation>> {
        let page: Vec<RevocationBody> =
            self.get(&format!("/v1/status/revocations?after={after}&limit={limit}")).await?;
        page.into_iter()
            .map(|r| {
                Ok(Revocation {
                    seq: r.seq,
                    serial: r.serial,
                    issuer_slug: r.issuer_slug,
                    issuer_generation: r.issuer_generation,
                    revoked_at: r.revoked_at,
                    reason: Reason::from_code(r.reason)?,
                })
            })
            .collect()
    }

    /// `GET /v1/status/certificates?after=&limit=` (`limit` at most [`MAX_PAGE`]).
    pub async fn certificates_after(&self, after: &str, limit: i64) -> Result<Vec<Certificate>> {
        if !after.is_empty() && !plausible_serial(after) {
            return Err(Error::invalid("serial", format!("{after:?} is not 1–32 octets of hex")));
        }
        let page: Vec<CertStatusBody> =
            self.get(&format!("/v1/status/certificates?after={after}&limit={limit}")).await?;
        page.into_iter().map(|b| self.certificate_of(b)).collect()
    }

    /// Every issued or revoked certificate, read in pages of [`MAX_PAGE`].
    pub async fn certificates(&self) -> Result<Vec<Certificate>> {
        let mut out: Vec<Certificate> = Vec::new();
        loop {
            let after = out.last().map(|c| c.serial.clone()).unwrap_or_default();
            let page = self.certificates_after(&after, MAX_PAGE).await?;
            let n = page.len();
            // A service that ignored `after` would page forever.
            if !after.is_empty() && page.last().is_some_and(|c| c.serial == after) {
                return Err(self.err("malformed answer: a page that does not advance"));
            }
            out.extend(page);
            if (n as i64) < MAX_PAGE {
                return Ok(out);
            }
        }
    }

    /// `GET /v1/status/certificates/{serial}`; `None` if the CA never reserved it (a serial
    /// the CA could not have issued is not asked for).
    pub async fn certificate(&self, serial: &str) -> Result<Option<Certificate>> {
        if !plausible_serial(serial) {
            return Ok(None);
        }
        let (status, body) = self.get_raw(&format!("/v1/status/certificates/{serial}")).await?;
        if status == reqwest::StatusCode::NOT_FOUND
            && serde_json::from_slice::<ErrorBody>(&body).is_ok_and(|e| e.error == "not_found")
        {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(self.refused(status, &body));
        }
        self.certificate_of(self.parse(&body)?).map(Some)
    }

    /// `GET /v1/status/ca-certificates`: every CA generation's certificate.
    pub async fn ca_certificates(&self) -> Result<Vec<CaCertificate>> {
        let list: Vec<CaCertBody> = self.get("/v1/status/ca-certificates").await?;
        list.into_iter()
            .map(|c| {
                Ok(CaCertificate {
                    ca: CaId::parse(&c.ca)?,
                    generation: c.generation,
                    certificate: B64
                        .decode(&c.certificate)
                        .map_err(|_| self.err(format!("malformed answer: certificate of {} is not base64", c.ca)))?,
                    key_id: hex::decode(&c.key_id)
                        .map_err(|_| self.err(format!("malformed answer: key id of {} is not hex", c.ca)))?,
                })
            })
            .collect()
    }
}

/// Where the validator reads the CA's status: the CA's database (read only) or the CA
/// service's status stream. The same questions, the same answers.
#[derive(Debug, Clone)]
pub enum StatusSource {
    /// The CA's database, opened read only.
    Db(StatusReader),
    /// The CA service, over mutual TLS.
    Service(StatusClient),
}

impl From<StatusReader> for StatusSource {
    fn from(r: StatusReader) -> Self {
        Self::Db(r)
    }
}

impl From<StatusClient> for StatusSource {
    fn from(c: StatusClient) -> Self {
        Self::Service(c)
    }
}

impl StatusSource {
    /// The last revocation sequence number committed (0 if none).
    pub async fn head(&self) -> Result<i64> {
        match self {
            Self::Db(r) => r.head().await,
            Self::Service(c) => c.head().await,
        }
    }

    /// The head once it is past `after`, or after `wait_ms` (at most
    /// [`identity::client::MAX_WAIT_MS`]): over the service a long poll; on the database,
    /// read every 50 ms.
    pub async fn head_wait(&self, after: i64, wait_ms: u64) -> Result<i64> {
        match self {
            Self::Db(r) => {
                let deadline = tokio::time::Instant::now()
                    + std::time::Duration::from_millis(wait_ms.min(identity::client::MAX_WAIT_MS));
                loop {
                    let head = r.head().await?;
                    if head > after || tokio::time::Instant::now() >= deadline {
                        return Ok(head);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
            Self::Service(c) => c.head_wait(after, wait_ms).await,
        }
    }

    /// Revocations numbered after `after`, in sequence order, at most `limit` (over the
    /// service, at most [`MAX_PAGE`]).
    pub async fn revocations_after(&self, after: i64, limit: i64) -> Result<Vec<Revocation>> {
        match self {
            Self::Db(r) => r.revocations_after(after, limit).await,
            Self::Service(c) => c.revocations_after(after, limit).await,
        }
    }

    /// Every issued or revoked certificate (over the service, read in pages).
    pub async fn certificates(&self) -> Result<Vec<Certificate>> {
        match self {
            Self::Db(r) => r.certificates().await,
            Self::Service(c) => c.certificates().await,
        }
    }

    /// Issued or revoked certificates whose serial sorts after `after`, in serial order.
    pub async fn certificates_after(&self, after: &str, limit: i64) -> Result<Vec<Certificate>> {
        match self {
            Self::Db(r) => r.certificates_after(after, limit).await,
            Self::Service(c) => c.certificates_after(after, limit).await,
        }
    }

    /// One certificate by serial (lower-case hex, minimal), `None` if the CA never reserved it.
    pub async fn certificate(&self, serial: &str) -> Result<Option<Certificate>> {
        match self {
            Self::Db(r) => r.certificate(serial).await,
            Self::Service(c) => c.certificate(serial).await,
        }
    }

    /// Every CA generation's certificate, by slug and generation.
    pub async fn ca_certificates(&self) -> Result<Vec<CaCertificate>> {
        match self {
            Self::Db(r) => r.ca_certificates().await,
            Self::Service(c) => c.ca_certificates().await,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sqlite_urls_open_read_only() {
        assert_eq!(read_only_sqlite("sqlite:///x/ca.db?mode=rwc").unwrap().unwrap(), "sqlite:///x/ca.db?mode=ro");
        assert_eq!(read_only_sqlite("/x/ca.db").unwrap().unwrap(), "sqlite:///x/ca.db?mode=ro");
        assert!(read_only_sqlite("postgres://h/db").unwrap().is_none());
        assert!(read_only_sqlite("sqlite://:memory:").is_err());
    }

    #[test]
    fn only_serials_the_ca_could_issue_are_asked_for() {
        assert!(plausible_serial("01") && plausible_serial(&"ab".repeat(32)));
        for s in ["", "1", "0g", "../head", &"ab".repeat(33)] {
            assert!(!plausible_serial(s), "{s:?}");
        }
    }
}
