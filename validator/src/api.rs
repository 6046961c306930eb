//! The verification API for registered verifiers (署名検証者): `POST /v1/verify/cert` and
//! `POST /v1/verify/doc`, served only over mutual TLS. A verifier is a relying party of the
//! network: it connects with its network credential naming `agency:<id>`, and the API reads
//! that [`Party`] from the request (put there by `net::server` from the verified client
//! certificate), never from a header or the body. Each verifier is limited to its registered
//! purposes; every query and every refusal of an authenticated party is logged with the
//! party and purpose in an append-only table for audit and billing. Trust anchors are the CA
//! roots; revocation status comes from the responder's status source (what OCSP would answer).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use base64::Engine as _;
use ca::hierarchy::{CaId, Environment, Purpose};
use ca::status::StatusSource;
use identity::http::Caller;
use identity::openapi::ErrorBody;
use identity::party::{Party, PartyKind};
use identity::store::Db;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::error::{Error, Result};
use crate::responder::{Service, Status};
use crate::verify::{Input, Revocation, Verdict, verify};

/// A registered verifier.
#[derive(Debug, Clone)]
pub struct Verifier {
    /// Its id: the name of the agency party in its network credential (`agency:<id>`).
    pub id: String,
    /// Purposes it may query for.
    pub purposes: Vec<String>,
}

/// Registers a verifier; returns the party its network credential must name
/// (`agency:<id>`). Nothing secret is made or kept: the verifier authenticates with that
/// credential from the network CA. (The `secret_hash` column of the bearer-token era stays,
/// written empty.)
pub async fn add_verifier(db: &Db, id: &str, name: &str, purposes: &[String], now: i64) -> Result<Party> {
    let party = Party::new(PartyKind::Agency, Some(id)).map_err(|e| Error::invalid("verifier id", e))?;
    if purposes.is_empty() || purposes.iter().any(|p| p.is_empty() || p.contains(',')) {
        return Err(Error::invalid("purposes", "at least one purpose, without commas"));
    }
    sqlx::query(
        "INSERT INTO validator_verifier (id, name, secret_hash, purposes, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(name)
    .bind(Vec::<u8>::new())
    .bind(purposes.join(","))
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(party)
}

/// The registered verifier `party` is, if any: only an agency party, registered under its
/// name.
pub async fn registered(db: &Db, party: &Party) -> Result<Option<Verifier>> {
    let Party::Agency(id) = party else { return Ok(None) };
    let row =
        sqlx::query("SELECT purposes FROM validator_verifier WHERE id = $1").bind(id).fetch_optional(db.pool()).await?;
    let Some(row) = row else { return Ok(None) };
    let purposes: String = row.try_get(0)?;
    Ok(Some(Verifier { id: id.clone(), purposes: purposes.split(',').map(str::to_string).collect() }))
}

/// Appends one query to the log. `v` is the verifier id, or the URI of a refused party that is
/// not a registered verifier (`urn:jpki:agency:other`; never equal to an id, which has no `:`).
pub async fn log(db: &Db, now: i64, v: &str, purpose: &str, kind: &str, subject: &str, result: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO validator_query (at, verifier_id, purpose, kind, subject, result) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(now)
    .bind(v)
    .bind(purpose)
    .bind(kind)
    .bind(subject)
    .bind(result)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Queries per verifier and purpose since `from` (unix seconds): (verifier, purpose, kind, count).
pub async fn usage(db: &Db, from: i64) -> Result<Vec<(String, String, String, i64)>> {
    let rows = sqlx::query(
        "SELECT verifier_id, purpose, kind, COUNT(*) FROM validator_query WHERE at >= $1 \
         GROUP BY verifier_id, purpose, kind ORDER BY verifier_id, purpose, kind",
    )
    .bind(from)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?))).collect()
}

/// What the API needs.
#[derive(Debug)]
pub struct Api {
    /// The validator's own database (verifiers, query log).
    pub db: Db,
    /// Pinned trust anchors: the CA roots.
    pub anchors: Vec<Vec<u8>>,
    /// CA certificates that may complete paths (issuing CAs).
    pub intermediates: Vec<Vec<u8>>,
    /// The responder, whose status source answers for the leaf's revocation.
    pub ocsp: Arc<Service>,
    /// The CA's status boundary (its database or the CA service): the issuing CAs' status
    /// (the ARL).
    pub status: StatusSource,
    /// The hierarchy served (production unless `--test-hierarchy`): its signature policy is
    /// required of a signed document's signer.
    pub environment: Environment,
}

impl Api {
    /// The signature policy a document signer's certificate must carry.
    pub fn signature_policy(&self) -> der::oid::ObjectIdentifier {
        CaId::root(Purpose::Signature, self.environment).policy()
    }
}

/// Loads the anchors (roots) and intermediates (issuing CAs) of one environment from the CA's
/// status boundary: production, unless the operator explicitly serves the test hierarchy
/// (`jpki serve validator --test-hierarchy`). The two are never trusted together.
pub async fn ca_certificates(status: &StatusSource, environment: Environment) -> Result<(Vec<Vec<u8>>, Vec<Vec<u8>>)> {
    let (mut roots, mut ints) = (Vec::new(), Vec::new());
    for g in status.ca_certificates().await?.into_iter().filter(|g| g.ca.env == environment) {
        if g.ca.prefecture.is_none() { roots.push(g.certificate) } else { ints.push(g.certificate) }
    }
    Ok((roots, ints))
}

/// A query body: JSON naming the purpose it is made for.
trait Query: DeserializeOwned {
    fn purpose(&self) -> &str;
}

/// `POST /v1/verify/cert`: a certificate to validate, for a registered purpose.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CertQuery {
    /// One of the verifier's registered purposes.
    pub purpose: String,
    /// The certificate (DER, base64).
    #[schema(content_encoding = "base64")]
    pub certificate: String,
    /// When to validate it (unix seconds); default now.
    #[serde(default)]
    pub at: Option<u64>,
}

/// The answer to `POST /v1/verify/cert`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CertAnswer {
    /// Valid at `at`: a path to an anchor validates, the certificate's status is good, and
    /// every issuing CA above it is good.
    pub valid: bool,
    /// The certificate's status as OCSP would answer: `good`, `revoked at T (reason)` or
    /// `unknown` (absent when the certificate could not be checked at all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Subjects of the validated path, from the trust anchor to the certificate (when a path
    /// validated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Vec<String>>,
    /// Why it is not valid (absent when valid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The DER of a certificate's serial without leading zero octets, as the CA stores it (hex).
fn serial_hex(c: &x509_cert::Certificate) -> String {
    let mut s = c.tbs_certificate().serial_number().as_bytes();
    while s.len() > 1 && s[0] == 0 {
        s = &s[1..];
    }
    hex::encode(s)
}

/// The status of every CA certificate above `leaf` up to an anchor, found by AKI = SKI among
/// the CA certificates (`intermediates`), from the CA's tables: an issuing CA on the ARL, or
/// one the CA has no status for, makes the answer invalid. `Err` says why.
async fn issuing_cas(api: &Api, leaf: &[u8]) -> Result<(), String> {
    use der::Decode;
    use x509_cert::ext::pkix::SubjectKeyIdentifier;
    let mut current = x509_cert::Certificate::from_der(leaf).map_err(|e| format!("certificate: {e}"))?;
    for _ in 0..8 {
        let Some(aki) = crate::responder::authority_key_id(&current) else { return Ok(()) };
        let issuer = api.intermediates.iter().filter_map(|d| x509_cert::Certificate::from_der(d).ok()).find(|c| {
            c.tbs_certificate()
                .get_extension::<SubjectKeyIdentifier>()
                .ok()
                .flatten()
                .is_some_and(|(_, s)| s.0.as_bytes() == aki.as_slice())
        });
        // No issuing CA above: the issuer is an anchor (or none, and path validation says so).
        let Some(issuer) = issuer else { return Ok(()) };
        let name = issuer.tbs_certificate().subject().to_string();
        match api.status.certificate(&serial_hex(&issuer)).await {
            Ok(Some(c)) => match c.status {
                ca::status::CertStatus::Good => {}
                ca::status::CertStatus::Revoked { at, reason } => {
                    return Err(format!("issuing CA {name} revoked at {at} ({})", reason.name()));
                }
                ca::status::CertStatus::NotIssued => return Err(format!("issuing CA {name}: status unknown")),
            },
            Ok(None) => return Err(format!("issuing CA {name}: status unknown")),
            Err(e) => {
                tracing::warn!(error = %e, "verification API: CA status unavailable");
                return Err(format!("issuing CA {name}: status unavailable"));
            }
        }
        current = issuer;
    }
    Ok(())
}

impl Query for CertQuery {
    fn purpose(&self) -> &str {
        &self.purpose
    }
}

/// `POST /v1/verify/doc`: a signed document to verify, for a registered purpose.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DocQuery {
    /// One of the verifier's registered purposes.
    pub purpose: String,
    /// The CMS SignedData (DER, base64).
    #[schema(content_encoding = "base64")]
    pub signed: String,
    /// The content of a detached signature (base64).
    #[serde(default)]
    #[schema(content_encoding = "base64")]
    pub content: Option<String>,
    /// Unix seconds at which the signer's certificate is validated; default now (the
    /// document's own signingTime is reported, never trusted for this).
    #[serde(default)]
    pub at: Option<u64>,
}

/// The answer to `POST /v1/verify/doc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DocAnswer {
    /// Valid: the signature verifies, the signer's certificate is a signature certificate of
    /// the hierarchy served, validates at `validated_at`, is good, and so is every issuing CA.
    pub valid: bool,
    /// Whether the CMS signature verifies.
    pub signature: bool,
    /// Why the signature does not verify.
    pub signature_error: Option<String>,
    /// The signer's subject.
    pub signer: String,
    /// The signer certificate's serial (hex).
    pub serial: String,
    /// The identity items of the signer's certificate (name, address, date of birth, sex, …),
    /// by item name.
    pub identity: std::collections::BTreeMap<String, String>,
    /// The document's own signingTime (unix seconds): the signer's claim, reported only.
    pub signing_time: Option<i64>,
    /// When the signer's certificate was validated (unix seconds).
    pub validated_at: u64,
    /// The signer certificate's status as OCSP would answer (`good`, `revoked at T (reason)`,
    /// `unknown`).
    pub status: String,
    /// Why it is not valid (null when valid).
    pub reason: Option<String>,
    /// Path validation of the signer's certificate: `valid`, or why not.
    pub certificate: String,
}

impl Query for DocQuery {
    fn purpose(&self) -> &str {
        &self.purpose
    }
}

fn b64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(s.trim()).ok()
}

fn status_text(s: Option<Status>) -> String {
    match s {
        Some(Status::Good) => "good".into(),
        Some(Status::Revoked { at, reason }) => format!("revoked at {at} ({})", reason.name()),
        Some(Status::Unknown) | None => "unknown".into(),
    }
}

/// Logs a refusal; a refusal is given even if its log line cannot be written (it discloses
/// nothing), but the failure is reported.
async fn log_refusal(api: &Api, now: i64, who: &str, purpose: &str, kind: &str, result: &str) {
    if let Err(e) = log(&api.db, now, who, purpose, kind, "-", result).await {
        tracing::error!(error = %e, who, "verification API: a refusal could not be logged");
    }
}

/// Admits `party` to a query of `kind`: it must be a registered verifier (else 403, logged
/// under the party's URI, its body never parsed), the body a query (else 400, logged), and
/// the purpose one of its registered purposes (else 403, logged). The caller without a party
/// never gets here: [`identity::http::Caller`] refuses it with 401 and nothing is written. A
/// registry that cannot be read is 503 ([`Error::Db`]).
async fn admit<Q: Query>(api: &Api, party: &Party, kind: &str, body: &[u8], now: i64) -> Result<(Verifier, Q)> {
    let Some(v) = registered(&api.db, party).await? else {
        tracing::warn!(%party, kind, "verification API: refused a party that is not a registered verifier");
        log_refusal(api, now, &party.to_string(), "-", kind, "refused: not a registered verifier").await;
        return Err(Error::NotRegistered { party: party.to_string() });
    };
    let q: Q = match serde_json::from_slice(body) {
        Ok(q) => q,
        Err(e) => {
            log_refusal(api, now, &v.id, "-", kind, "malformed: body").await;
            return Err(Error::invalid("body", e));
        }
    };
    if !v.purposes.iter().any(|p| p == q.purpose()) {
        tracing::warn!(verifier = v.id, purpose = q.purpose(), "verification API: purpose not registered");
        log_refusal(api, now, &v.id, q.purpose(), kind, "refused: purpose not registered").await;
        return Err(Error::PurposeNotRegistered { purpose: q.purpose().to_owned(), verifier: v.id });
    }
    Ok((v, q))
}

/// The verdict on `cert` at `at` (path, its status, the issuing CAs' status) as the answer. A
/// certificate that cannot be checked is a verdict (invalid, with the reason); a verification
/// task that did not finish is an [`Error::Internal`].
async fn path_and_status(api: &Api, cert: Vec<u8>, at: u64) -> Result<CertAnswer> {
    let input = Input::new(cert.clone(), api.anchors.clone(), api.intermediates.clone(), at, Revocation::None);
    // Path building and signature checks are CPU work: off the async workers.
    let verdict = tokio::task::spawn_blocking(move || verify(&input))
        .await
        .map_err(|e| Error::Internal(format!("verification task: {e}")))?;
    let (valid, path, reason) = match verdict {
        Ok(Verdict::Valid { path }) => (true, Some(path), None),
        Ok(Verdict::Invalid { reason } | Verdict::Unavailable { reason, .. }) => (false, None, Some(reason)),
        Err(e) => return Ok(CertAnswer { valid: false, status: None, path: None, reason: Some(e.to_string()) }),
    };
    // Revocation from the responder's source for the certificate, and from the CA's tables
    // for every issuing CA above it.
    let status = api.ocsp.status_of_cert(&cert).await.ok().flatten();
    let good = matches!(status, Some(Status::Good));
    let mut answer = CertAnswer { valid: false, status: Some(status_text(status)), path, reason };
    if valid && !good {
        answer.reason = Some(format!("certificate status {}", status_text(status)));
    }
    let cas = issuing_cas(api, &cert).await;
    if let (true, true, Err(why)) = (valid, good, &cas) {
        answer.reason = Some(why.clone());
    }
    answer.valid = valid && good && cas.is_ok();
    Ok(answer)
}

/// `POST /v1/verify/cert`. Errors reach the wire through [`Error`]'s one mapping.
#[utoipa::path(
    post,
    path = "/v1/verify/cert",
    tag = "verify",
    summary = "Validates a certificate: path to a CA root, its status, every issuing CA's status",
    description = "Registered verifiers only (`urn:jpki:agency:<id>`, `jpki validator verifier-add`), for one of \
their registered purposes. Every query and every refusal of an authenticated party is logged (verifier, \
purpose, kind, subject, result).",
    request_body(content = CertQuery, content_type = "application/json"),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The verdict (an invalid certificate is a verdict, not an error)", body = CertAnswer),
        (status = 400, description = "Not a query, or `certificate` not base64 (`invalid`); logged", body = ErrorBody),
        (status = 401, description = "No client party (`unauthenticated`); nothing written", body = ErrorBody),
        (status = 403, description = "Not a registered verifier, or the purpose is not registered for it \
(`forbidden`); logged", body = ErrorBody),
        (status = 500, description = "Internal failure (`internal`, no detail)", body = ErrorBody),
        (status = 503, description = "The query log or the verifier registry cannot be written or read \
(`unavailable`, no detail): no answer is given unlogged", body = ErrorBody),
    )
)]
pub(crate) async fn verify_cert(
    State(api): State<Arc<Api>>,
    Caller(party): Caller,
    body: Bytes,
) -> Result<Json<CertAnswer>> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (v, q) = admit::<CertQuery>(&api, &party, "cert", &body, now).await?;
    let Some(cert) = b64(&q.certificate) else {
        log_refusal(&api, now, &v.id, &q.purpose, "cert", "malformed").await;
        return Err(Error::invalid("certificate", "not base64"));
    };
    let subject = x509_subject(&cert);
    let answer = path_and_status(&api, cert, q.at.unwrap_or(now as u64)).await?;
    let result =
        if answer.valid { "valid".to_string() } else { format!("invalid: {}", answer.reason.as_deref().unwrap_or("")) };
    // An answer that cannot be logged is not given (503).
    log(&api.db, now, &v.id, &q.purpose, "cert", &subject, &result).await?;
    Ok(Json(answer))
}

/// `POST /v1/verify/doc`. Errors reach the wire through [`Error`]'s one mapping.
#[utoipa::path(
    post,
    path = "/v1/verify/doc",
    tag = "verify",
    summary = "Verifies a CMS signed document and its signer's certificate",
    description = "The signature, the signer's certificate (a signature certificate of the hierarchy served, \
validated at `at`), its status and every issuing CA's status; the identity items of the signer's certificate \
are returned. Registered verifiers only, for one of their registered purposes; every query and refusal is \
logged.",
    request_body(content = DocQuery, content_type = "application/json"),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The verdict (an invalid signature or signer is a verdict, not an error)", body = DocAnswer),
        (status = 400, description = "Not a query, `signed` or `content` not base64, or not a CMS SignedData \
(`invalid`); logged", body = ErrorBody),
        (status = 401, description = "No client party (`unauthenticated`); nothing written", body = ErrorBody),
        (status = 403, description = "Not a registered verifier, or the purpose is not registered for it \
(`forbidden`); logged", body = ErrorBody),
        (status = 500, description = "Internal failure (`internal`, no detail)", body = ErrorBody),
        (status = 503, description = "The query log or the verifier registry cannot be written or read \
(`unavailable`, no detail): no answer is given unlogged", body = ErrorBody),
    )
)]
pub(crate) async fn verify_doc(
    State(api): State<Arc<Api>>,
    Caller(party): Caller,
    body: Bytes,
) -> Result<Json<DocAnswer>> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (v, q) = admit::<DocQuery>(&api, &party, "doc", &body, now).await?;
    let (Some(signed), content) = (b64(&q.signed), q.content.as_deref().map(b64)) else {
        log_refusal(&api, now, &v.id, &q.purpose, "doc", "malformed").await;
        return Err(Error::invalid("signed", "not base64"));
    };
    let content = match content {
        Some(None) => {
            log_refusal(&api, now, &v.id, &q.purpose, "doc", "malformed").await;
            return Err(Error::invalid("content", "not base64"));
        }
        Some(Some(c)) => Some(c),
        None => None,
    };
    let (anchors, intermediates) = (api.anchors.clone(), api.intermediates.clone());
    let at = q.at.unwrap_or(now as u64);
    // CMS and path checks are CPU work: off the async workers.
    let checked = tokio::task::spawn_blocking(move || {
        crate::signed_doc::verify_signed(&signed, content.as_deref(), anchors, intermediates, Revocation::None, at)
    })
    .await;
    let checked = checked.map_err(|e| Error::Internal(format!("verification task: {e}")))?;
    let r = match checked {
        Ok(r) => r,
        Err(e) => {
            log_refusal(&api, now, &v.id, &q.purpose, "doc", &format!("malformed: {e}")).await;
            return Err(e);
        }
    };
    let status = api.ocsp.status_of_cert(&r.signer_cert).await.ok().flatten();
    // Only a signature certificate of the hierarchy served signs documents (not an
    // authentication or responder certificate); every issuing CA above it must be good.
    let kind = <x509_cert::Certificate as der::Decode>::from_der(&r.signer_cert)
        .map_err(|e| e.to_string())
        .and_then(|c| crate::signed_doc::signature_certificate(&c, api.signature_policy()));
    let cas = issuing_cas(&api, &r.signer_cert).await;
    let valid = r.valid() && matches!(status, Some(Status::Good)) && kind.is_ok() && cas.is_ok();
    let reason = if valid {
        None
    } else if let Some(e) = &r.signature_error {
        Some(e.clone())
    } else if let Verdict::Invalid { reason } | Verdict::Unavailable { reason, .. } = &r.certificate {
        Some(reason.clone())
    } else if let Err(e) = kind {
        Some(e)
    } else if !matches!(status, Some(Status::Good)) {
        Some(format!("certificate status {}", status_text(status)))
    } else {
        cas.err()
    };
    let answer = DocAnswer {
        valid,
        signature: r.signature_ok,
        signature_error: r.signature_error.clone(),
        signer: r.signer.clone(),
        serial: r.serial.clone(),
        identity: r.items.iter().map(|(k, v)| ((*k).to_string(), v.clone())).collect(),
        signing_time: r.signing_time,
        validated_at: at,
        status: status_text(status),
        reason,
        certificate: match &r.certificate {
            Verdict::Valid { .. } => "valid".to_string(),
            Verdict::Invalid { reason } | Verdict::Unavailable { reason, .. } => reason.clone(),
        },
    };
    let result = match (&answer.valid, &answer.reason) {
        (true, _) => "valid".to_string(),
        (false, Some(why)) => format!("invalid: {why}"),
        (false, None) => "invalid".to_string(),
    };
    log(&api.db, now, &v.id, &q.purpose, "doc", &answer.signer, &result).await?;
    Ok(Json(answer))
}

fn x509_subject(der: &[u8]) -> String {
    use der::Decode;
    x509_cert::Certificate::from_der(der)
        .map(|c| c.tbs_certificate().subject().to_string())
        .unwrap_or_else(|_| "-".into())
}
