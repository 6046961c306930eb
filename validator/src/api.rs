//! The verification API for registered verifiers (署名検証者): `POST /v1/verify/cert` and
//! `POST /v1/verify/doc`, bearer credentials `ID:SECRET` per verifier, each verifier limited to
//! its registered purposes, every query (and every refusal) logged with verifier id and
//! purpose in an append-only table for audit and billing. Trust anchors are the CA roots;
//! revocation status comes from the responder's status source (what OCSP would answer).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use identity::store::Db;
use serde::Deserialize;
use serde_json::json;
use sqlx::Row;

use crate::http::AppState;
use crate::responder::{Service, Status};
use crate::verify::{Input, Revocation, Verdict, verify};

/// A registered verifier.
#[derive(Debug, Clone)]
pub struct Verifier {
    /// Its id.
    pub id: String,
    /// Purposes it may query for.
    pub purposes: Vec<String>,
}

/// Errors of the verifier registry.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Database.
    #[error("validator database: {0}")]
    Db(#[from] sqlx::Error),
    /// Bad registration input.
    #[error("{0}")]
    Invalid(String),
}

fn secret_hash(secret: &str) -> Vec<u8> {
    openssl::sha::sha256(secret.as_bytes()).to_vec()
}

/// Registers a verifier; returns its bearer token `ID:SECRET` (shown once; only a hash is kept).
pub async fn add_verifier(db: &Db, id: &str, name: &str, purposes: &[String], now: i64) -> Result<String, ApiError> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(ApiError::Invalid("verifier id: 1–64 of A–Z a–z 0–9 - _".into()));
    }
    if purposes.is_empty() || purposes.iter().any(|p| p.is_empty() || p.contains(',')) {
        return Err(ApiError::Invalid("at least one purpose, without commas".into()));
    }
    let mut raw = [0u8; 24];
    openssl::rand::rand_bytes(&mut raw).map_err(|e| ApiError::Invalid(format!("no randomness for the secret: {e}")))?;
    let secret = hex::encode(raw);
    sqlx::query(
        "INSERT INTO validator_verifier (id, name, secret_hash, purposes, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(name)
    .bind(secret_hash(&secret))
    .bind(purposes.join(","))
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(format!("{id}:{secret}"))
}

/// The verifier a bearer token belongs to (constant-time secret comparison).
pub async fn authenticate(db: &Db, headers: &HeaderMap) -> Result<Option<Verifier>, ApiError> {
    let Some(token) =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
    else {
        return Ok(None);
    };
    let Some((id, secret)) = token.split_once(':') else { return Ok(None) };
    let row = sqlx::query("SELECT secret_hash, purposes FROM validator_verifier WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    let Some(row) = row else { return Ok(None) };
    let stored: Vec<u8> = row.try_get(0)?;
    let given = secret_hash(secret);
    if stored.len() != given.len() || !openssl::memcmp::eq(&stored, &given) {
        return Ok(None);
    }
    let purposes: String = row.try_get(1)?;
    Ok(Some(Verifier { id: id.to_string(), purposes: purposes.split(',').map(str::to_string).collect() }))
}

/// Appends one query to the log.
pub async fn log(
    db: &Db,
    now: i64,
    v: &str,
    purpose: &str,
    kind: &str,
    subject: &str,
    result: &str,
) -> Result<(), ApiError> {
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
pub async fn usage(db: &Db, from: i64) -> Result<Vec<(String, String, String, i64)>, ApiError> {
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
}

/// Loads the anchors (roots) and intermediates (issuing CAs) from the CA's database.
pub async fn ca_certificates(ca_db: &Db) -> Result<(Vec<Vec<u8>>, Vec<Vec<u8>>), ApiError> {
    let rows = sqlx::query("SELECT slug, certificate FROM ca_generation ORDER BY slug, generation")
        .fetch_all(ca_db.pool())
        .await?;
    let (mut roots, mut ints) = (Vec::new(), Vec::new());
    for r in &rows {
        let slug: String = r.try_get(0)?;
        let der: Vec<u8> = r.try_get(1)?;
        if slug.ends_with("-root") { roots.push(der) } else { ints.push(der) }
    }
    Ok((roots, ints))
}

#[derive(Debug, Deserialize)]
pub(crate) struct CertQuery {
    purpose: String,
    /// Base64 DER.
    certificate: String,
    /// Unix seconds; default now.
    at: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct DocQuery {
    purpose: String,
    /// Base64 DER CMS SignedData.
    signed: String,
    /// Base64 content of a detached signature.
    content: Option<String>,
}

fn b64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(s.trim()).ok()
}

fn reply(code: StatusCode, body: serde_json::Value) -> Response {
    (code, Json(body)).into_response()
}

fn status_text(s: Option<Status>) -> String {
    match s {
        Some(Status::Good) => "good".into(),
        Some(Status::Revoked { at, reason }) => format!("revoked at {at} ({})", reason.name()),
        Some(Status::Unknown) | None => "unknown".into(),
    }
}

/// Authenticates, checks the purpose, and logs a refusal. Returns the verifier or the reply.
async fn admit(api: &Api, headers: &HeaderMap, purpose: &str, kind: &str, now: i64) -> Result<Verifier, Response> {
    let v = match authenticate(&api.db, headers).await {
        Ok(Some(v)) => v,
        Ok(None) => {
            tracing::warn!("verification API: refused a request without valid credentials");
            return Err(reply(
                StatusCode::UNAUTHORIZED,
                json!({"error": "registered verifiers only: Authorization: Bearer ID:SECRET"}),
            ));
        }
        Err(e) => return Err(reply(StatusCode::SERVICE_UNAVAILABLE, json!({"error": e.to_string()}))),
    };
    if !v.purposes.iter().any(|p| p == purpose) {
        let _ = log(&api.db, now, &v.id, purpose, kind, "-", "refused: purpose not registered").await;
        return Err(reply(
            StatusCode::FORBIDDEN,
            json!({"error": format!("purpose {purpose:?} is not registered for {}", v.id)}),
        ));
    }
    Ok(v)
}

async fn path_and_status(api: &Api, ocsp: &Service, cert: Vec<u8>, at: u64) -> (bool, serde_json::Value) {
    let input = Input::new(cert.clone(), api.anchors.clone(), api.intermediates.clone(), at, Revocation::None);
    let (valid, mut body) = match verify(&input) {
        Ok(Verdict::Valid { path }) => (true, json!({"path": path})),
        Ok(Verdict::Invalid { reason }) => (false, json!({"reason": reason})),
        Err(e) => return (false, json!({"reason": e.to_string()})),
    };
    // Revocation from the responder's source, for the certificate and its issuing CA.
    let status = ocsp.status_of_cert(&cert).await.ok().flatten();
    let good = matches!(status, Some(Status::Good));
    body["status"] = json!(status_text(status));
    if valid && !good {
        body["reason"] = json!(format!("certificate status {}", status_text(status)));
    }
    (valid && good, body)
}

pub(crate) async fn verify_cert(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Json(q): Json<CertQuery>,
) -> Response {
    let Some(api) = &st.api else { return StatusCode::NOT_FOUND.into_response() };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let v = match admit(api, &headers, &q.purpose, "cert", now).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(cert) = b64(&q.certificate) else {
        let _ = log(&api.db, now, &v.id, &q.purpose, "cert", "-", "malformed").await;
        return reply(StatusCode::BAD_REQUEST, json!({"error": "certificate: not base64"}));
    };
    let subject = x509_subject(&cert);
    let (valid, mut body) = path_and_status(api, &st.ocsp, cert, q.at.unwrap_or(now as u64)).await;
    body["valid"] = json!(valid);
    let result =
        if valid { "valid".to_string() } else { format!("invalid: {}", body["reason"].as_str().unwrap_or("")) };
    if let Err(e) = log(&api.db, now, &v.id, &q.purpose, "cert", &subject, &result).await {
        // An answer that cannot be logged is not given.
        return reply(StatusCode::SERVICE_UNAVAILABLE, json!({"error": e.to_string()}));
    }
    reply(StatusCode::OK, body)
}

pub(crate) async fn verify_doc(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Json(q): Json<DocQuery>,
) -> Response {
    let Some(api) = &st.api else { return StatusCode::NOT_FOUND.into_response() };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let v = match admit(api, &headers, &q.purpose, "doc", now).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (Some(signed), content) = (b64(&q.signed), q.content.as_deref().map(b64)) else {
        let _ = log(&api.db, now, &v.id, &q.purpose, "doc", "-", "malformed").await;
        return reply(StatusCode::BAD_REQUEST, json!({"error": "signed: not base64"}));
    };
    let content = match content {
        Some(None) => return reply(StatusCode::BAD_REQUEST, json!({"error": "content: not base64"})),
        Some(Some(c)) => Some(c),
        None => None,
    };
    let r = match crate::signed_doc::verify_signed(
        &signed,
        content.as_deref(),
        api.anchors.clone(),
        api.intermediates.clone(),
        Revocation::None,
        now as u64,
    ) {
        Ok(r) => r,
        Err(e) => {
            let _ = log(&api.db, now, &v.id, &q.purpose, "doc", "-", &format!("malformed: {e}")).await;
            return reply(StatusCode::BAD_REQUEST, json!({"error": e.to_string()}));
        }
    };
    let status = st.ocsp.status_of_cert(&r.signer_cert).await.ok().flatten();
    let valid = r.valid() && matches!(status, Some(Status::Good));
    let items: serde_json::Map<String, serde_json::Value> =
        r.items.iter().map(|(k, v)| ((*k).to_string(), json!(v))).collect();
    let body = json!({
        "valid": valid, "signature": r.signature_ok, "signature_error": r.signature_error, "signer": r.signer,
        "serial": r.serial, "identity": items, "signing_time": r.signing_time, "status": status_text(status),
        "certificate": match &r.certificate { Verdict::Valid { .. } => "valid".to_string(), Verdict::Invalid { reason } => reason.clone() },
    });
    let result = if valid { "valid".to_string() } else { "invalid".to_string() };
    if let Err(e) = log(&api.db, now, &v.id, &q.purpose, "doc", &r.signer, &result).await {
        return reply(StatusCode::SERVICE_UNAVAILABLE, json!({"error": e.to_string()}));
    }
    reply(StatusCode::OK, body)
}

fn x509_subject(der: &[u8]) -> String {
    use der::Decode;
    x509_cert::Certificate::from_der(der)
        .map(|c| c.tbs_certificate().subject().to_string())
        .unwrap_or_else(|_| "-".into())
}
