//! HTTP for verifiers: the public router ([`router`]: OCSP over POST and GET, RFC 6960
//! appendix A, RFC 9919 GET caching, and the CAs' CRLs at the URLs written into the
//! certificates), served over plain HTTP because its objects are signed; and the verification
//! API ([`api_router`]), served only over mutual TLS. OCSP errors are OCSP responses with HTTP
//! 200, never HTTP errors.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

use crate::responder::{Answer, Service};
use crate::stateless::StoreResponder;

/// Who answers OCSP requests.
#[derive(Debug, Clone)]
pub enum Ocsp {
    /// The responder with its keys and the CA's status, responses in its own memory.
    Signing(Arc<Service>),
    /// The stateless responder of the scale-out mode: no key, responses from the shared store.
    Store(Arc<StoreResponder>),
}

impl From<Arc<Service>> for Ocsp {
    fn from(s: Arc<Service>) -> Ocsp {
        Ocsp::Signing(s)
    }
}

impl From<Arc<StoreResponder>> for Ocsp {
    fn from(s: Arc<StoreResponder>) -> Ocsp {
        Ocsp::Store(s)
    }
}

impl Ocsp {
    /// Answers one DER request (never fails: errors are OCSP error responses).
    pub async fn answer(&self, req: &[u8], now: i64) -> Answer {
        match self {
            Ocsp::Signing(s) => s.answer(req, now).await,
            Ocsp::Store(s) => s.answer(req, now).await,
        }
    }
}

/// What the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// The responder.
    pub ocsp: Ocsp,
    /// Where `jpki ca crl --out` wrote the CRLs (`crl/{ca}/g{n}/{shard}.crl`, `arl.crl`).
    pub crl_dir: Option<PathBuf>,
    /// Seconds HTTP caches may keep a CRL.
    pub crl_max_age: u64,
}

/// The public router, for the plain listener: `POST /ocsp`, `GET /ocsp/{base64}`,
/// `GET /crl/…`, `GET /health`. It has no verification API: `/v1/verify/*` is 404 here.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/ocsp", post(ocsp_post))
        .route("/ocsp/", post(ocsp_post))
        .route("/ocsp/{*req}", get(ocsp_get))
        .route("/crl/{*path}", get(crl))
        .route("/ca/{*path}", get(ca_issuers))
        .route("/health", get(health))
        .layer(DefaultBodyLimit::max(1 << 20))
        .with_state(state)
}

/// The verification API's routes and their description.
fn verification_api() -> utoipa_axum::router::OpenApiRouter<Arc<crate::api::Api>> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(crate::api::verify_cert))
        .routes(routes!(crate::api::verify_doc))
}

const API_TITLE: &str = "jpki validator: verification API";
const API_TEXT: &str = "The verification API for registered verifiers (署名検証者), served only on the \
validator's mutual-TLS listener (`--api-listen`): certificate validation and CMS signed-document verification \
against the CA roots, with revocation status as the validator's OCSP responder answers it. The OCSP and CRL \
routes of the public listener are not JSON and not described here (RFC 6960, RFC 5280). Errors are \
`{\"error\": code, \"message\": text}`. docs/validator.md.";

/// The verification API's router, for the mutual-TLS listener only (`net::server` with
/// `Transport::Tls`, which puts the caller's [`identity::party::Party`] into each request):
/// `POST /v1/verify/cert`, `POST /v1/verify/doc`, and its description at `GET /openapi.json`.
/// A request without a party is 401.
pub fn api_router(api: Arc<crate::api::Api>) -> Router {
    identity::openapi::serve(verification_api().with_state(api), API_TITLE, API_TEXT)
        .0
        .layer(DefaultBodyLimit::max(1 << 20))
}

/// The OpenAPI description the verification API serves at `GET /openapi.json`.
pub fn api_openapi() -> utoipa::openapi::OpenApi {
    identity::openapi::document(
        API_TITLE,
        API_TEXT,
        [verification_api().into_openapi(), identity::openapi::description_part()],
    )
}

/// The answer to a request the server sheds under load: an OCSP `tryLater` response (HTTP
/// 200, RFC 6960 §2.3) on the OCSP routes, so relying parties retry; 503 elsewhere.
pub fn overloaded(uri: &axum::http::Uri) -> Response {
    if uri.path().starts_with("/ocsp") {
        use der::Encode as _;
        let der = crate::ocsp::OcspResponse::error(crate::ocsp::ResponseStatus::TryLater)
            .to_der()
            .unwrap_or_else(|_| vec![0x30, 0x03, 0x0A, 0x01, 0x03]);
        let mut r = (StatusCode::OK, der).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/ocsp-response"));
        r
    } else {
        let mut r = (StatusCode::SERVICE_UNAVAILABLE, "overloaded; retry").into_response();
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        r
    }
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn http_date(unix: i64) -> Option<HeaderValue> {
    let t = OffsetDateTime::from_unix_timestamp(unix).ok()?;
    // RFC 9110 IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
    let s = t.format(&Rfc2822).ok()?.replace("+0000", "GMT");
    HeaderValue::from_str(&s).ok()
}

fn ocsp_response(a: &Answer, cache: bool) -> Response {
    let mut r = (StatusCode::OK, a.der().clone()).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/ocsp-response"));
    match a {
        Answer::Cached(c) if cache => {
            let max_age = (c.next_update - now()).max(0);
            if let Ok(v) = HeaderValue::from_str(&format!("max-age={max_age}, public, no-transform, must-revalidate")) {
                h.insert(header::CACHE_CONTROL, v);
            }
            if let Ok(v) = HeaderValue::from_str(&c.etag) {
                h.insert(header::ETAG, v);
            }
            if let Some(v) = http_date(c.this_update) {
                h.insert(header::LAST_MODIFIED, v);
            }
            if let Some(v) = http_date(c.next_update) {
                h.insert(header::EXPIRES, v);
            }
        }
        _ => {
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-store"));
        }
    }
    r
}

async fn ocsp_post(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let a = st.ocsp.answer(&body, now()).await;
    ocsp_response(&a, false)
}

async fn ocsp_get(State(st): State<Arc<AppState>>, headers: HeaderMap, UrlPath(b64): UrlPath<String>) -> Response {
    // axum has percent-decoded the path; some clients leave '+' as is, so it stays '+'.
    let b64 = b64.trim_start_matches('/');
    let Ok(der) = base64::engine::general_purpose::STANDARD.decode(b64) else {
        return ocsp_response(&Answer::malformed(), false);
    };
    let a = st.ocsp.answer(&der, now()).await;
    if let Answer::Cached(c) = &a
        && headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(c.etag.as_str())
    {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    ocsp_response(&a, true)
}

/// A safe relative path under `{dir}/{sub}`: normal components only, files ending in `ext`.
fn published_path(dir: &Path, sub: &str, ext: &str, rel: &str) -> Option<PathBuf> {
    let p = Path::new(rel);
    if !rel.ends_with(ext) || p.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    Some(dir.join(sub).join(p))
}

/// A safe relative path under the CRL directory: normal components only, `.crl` files.
fn crl_path(dir: &Path, rel: &str) -> Option<PathBuf> {
    published_path(dir, "crl", ".crl", rel)
}

async fn crl(State(st): State<Arc<AppState>>, headers: HeaderMap, UrlPath(rel): UrlPath<String>) -> Response {
    let Some(dir) = &st.crl_dir else { return StatusCode::NOT_FOUND.into_response() };
    let Some(path) = crl_path(dir, &rel) else { return StatusCode::NOT_FOUND.into_response() };
    published(&st, &headers, &path, "application/pkix-crl").await
}

/// The caIssuers bundles the CA publishes next to its CRLs (`/ca/{slug}/g{n}.p7c`).
async fn ca_issuers(State(st): State<Arc<AppState>>, headers: HeaderMap, UrlPath(rel): UrlPath<String>) -> Response {
    let Some(dir) = &st.crl_dir else { return StatusCode::NOT_FOUND.into_response() };
    let Some(path) = published_path(dir, "ca", ".p7c", &rel) else { return StatusCode::NOT_FOUND.into_response() };
    published(&st, &headers, &path, "application/pkcs7-mime").await
}

/// A published file with its cache headers (ETag, Last-Modified, max-age).
async fn published(st: &AppState, headers: &HeaderMap, path: &Path, content_type: &'static str) -> Response {
    let Ok(bytes) = tokio::fs::read(path).await else { return StatusCode::NOT_FOUND.into_response() };
    let modified = tokio::fs::metadata(path)
        .await
        .ok()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64);
    let etag = format!("\"{}\"", hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(&bytes)[..16]));
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let mut r = (StatusCode::OK, bytes).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("max-age={}, public, no-transform", st.crl_max_age)) {
        h.insert(header::CACHE_CONTROL, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if let Some(v) = modified.and_then(http_date) {
        h.insert(header::LAST_MODIFIED, v);
    }
    r
}

async fn health(State(st): State<Arc<AppState>>) -> Response {
    match &st.ocsp {
        Ocsp::Signing(s) => {
            format!("ok: {} CA generations, {} responses cached\n", s.issuers().len(), s.cached()).into_response()
        }
        // Without the invalidation channel the responder still answers (from the store), but
        // a load balancer should prefer one that has it.
        Ocsp::Store(s) => {
            use std::sync::atomic::Ordering::Relaxed;
            let t = &s.stats;
            let text = format!(
                "{}: store mode, hot set {} entries {} bytes, answered hot {} store {}, absent {}, \
                 store unavailable {}, refused {}, invalidations {}\n",
                if s.subscribed() { "ok" } else { "degraded (no invalidation channel)" },
                s.hot_len(),
                s.hot_bytes(),
                t.hot.load(Relaxed),
                t.store.load(Relaxed),
                t.absent.load(Relaxed),
                t.unavailable.load(Relaxed),
                t.refused.load(Relaxed),
                t.invalidations.load(Relaxed),
            );
            let code = if s.subscribed() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            (code, text).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crl_paths_stay_inside_the_directory() {
        let d = Path::new("/srv/pub");
        assert_eq!(crl_path(d, "sign-13/g1/0.crl"), Some(PathBuf::from("/srv/pub/crl/sign-13/g1/0.crl")));
        assert_eq!(crl_path(d, "../etc/passwd.crl"), None);
        assert_eq!(crl_path(d, "/etc/x.crl"), None);
        assert_eq!(crl_path(d, "sign-13/g1/0.der"), None);
    }

    #[test]
    fn http_dates_are_imf_fixdate() {
        assert_eq!(http_date(784111777).unwrap(), "Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
