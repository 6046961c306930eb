//! HTTP for verifiers: the public router ([`router`]: OCSP over POST and GET, RFC 6960
//! appendix A, RFC 9919 GET caching, and the CAs' CRLs at the URLs written into the
//! certificates), served over plain HTTP because its objects are signed; and the verification
//! API ([`api_router`]), served only over mutual TLS. OCSP errors are OCSP responses with HTTP
//! 200, never HTTP errors.

use std::cell::RefCell;
use std::convert::Infallible;
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use http_body::{Frame, SizeHint};
use time::OffsetDateTime;

use crate::hot::Hit;
use crate::responder::{Answer, MAX_REQUEST, Service};
use crate::stateless::{Served, StoreResponder};

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

    /// Answers one DER request, a stateless responder's hot-set hit as it is kept.
    async fn serve(&self, req: &[u8], now: i64) -> Served {
        match self {
            Ocsp::Signing(s) => Served::Answer(s.answer(req, now).await),
            Ocsp::Store(s) => s.serve(req, now).await,
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

/// The OCSP route patterns of [`router`] (for `net::server::Server::lean`: counted and timed,
/// no request span or id).
pub const OCSP_ROUTES: &[&str] = &["/ocsp", "/ocsp/", "/ocsp/{*req}"];

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
    HeaderValue::from_str(&crate::hot::http_date(unix)?).ok()
}

fn cache_control(max_age: i64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("max-age={max_age}, public, no-transform, must-revalidate")).ok()
}

thread_local! {
    /// The last `Cache-Control` values made on this thread, by max-age (a hot hit's header is
    /// then a reference count, not a new string).
    static CACHE_CONTROL: RefCell<[(i64, Option<HeaderValue>); 8]> = RefCell::new(std::array::from_fn(|_| (-1, None)));
}

fn cache_control_cached(max_age: i64) -> Option<HeaderValue> {
    CACHE_CONTROL.with(|c| {
        let mut c = c.borrow_mut();
        let slot = &mut c[max_age.rem_euclid(8) as usize];
        if slot.0 != max_age || slot.1.is_none() {
            *slot = (max_age, cache_control(max_age));
        }
        slot.1.clone()
    })
}

fn ocsp_response(a: &Answer, cache: bool) -> Response {
    let mut r = (StatusCode::OK, a.der().clone()).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/ocsp-response"));
    match a {
        Answer::Cached(c) if cache => {
            let max_age = (c.next_update - now()).max(0);
            if let Some(v) = cache_control(max_age) {
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

/// A body of two pieces written one after the other (a hot response's own bytes and the
/// responder certificate it shares with the others), with its exact length.
struct Pieces([Option<Bytes>; 2]);

impl http_body::Body for Pieces {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let next = self.0.iter_mut().find_map(Option::take);
        Poll::Ready(next.map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.iter().flatten().map(|b| b.len() as u64).sum())
    }
}

/// The response of a hot-set hit: its DER pieces and the headers made when it was kept.
fn hot_response(hit: Hit, cache: bool) -> Response {
    let (head, tail) = hit.der_parts();
    let tail = (!tail.is_empty()).then_some(tail);
    let mut r = Response::new(Body::new(Pieces([Some(head), tail])));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/ocsp-response"));
    if !cache {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-store"));
        return r;
    }
    if let Some(v) = cache_control_cached((hit.next_update - now()).max(0)) {
        h.insert(header::CACHE_CONTROL, v);
    }
    for (name, v) in [
        (header::ETAG, hit.etag_header()),
        (header::LAST_MODIFIED, hit.last_modified()),
        (header::EXPIRES, hit.expires()),
    ] {
        if let Some(v) = v {
            h.insert(name, v);
        }
    }
    r
}

async fn ocsp_post(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    match st.ocsp.serve(&body, now()).await {
        Served::Hot(hit) => hot_response(hit, false),
        Served::Answer(a) => ocsp_response(&a, false),
    }
}

/// The longest base64 text of a request that is not too long ([`MAX_REQUEST`]).
const MAX_B64: usize = (MAX_REQUEST / 3 + 1) * 4;

/// Percent-decodes `s` into `buf` (an invalid escape stays as it is); `None` if it does not fit.
fn percent_decode<'a>(s: &[u8], buf: &'a mut [u8]) -> Option<&'a [u8]> {
    let hex = |c: u8| (c as char).to_digit(16);
    let (mut i, mut n) = (0, 0);
    while i < s.len() {
        let escaped = match s[i] {
            b'%' => s.get(i + 1).and_then(|&h| hex(h)).zip(s.get(i + 2).and_then(|&l| hex(l))),
            _ => None,
        };
        *buf.get_mut(n)? = match escaped {
            Some((h, l)) => {
                i += 3;
                (h * 16 + l) as u8
            }
            None => {
                i += 1;
                s[i - 1]
            }
        };
        n += 1;
    }
    Some(&buf[..n])
}

/// The DER request of a GET path (`/ocsp/{base64}`): the part after `/ocsp/`, percent-decoded
/// (some clients leave '+' as is, so it stays '+'; leading slashes are dropped), then base64,
/// both into buffers on the stack. `None` if it is not base64 or too long to be a request.
fn get_request<'a>(path: &str, text: &'a mut [u8; MAX_B64], der: &'a mut [u8; MAX_B64 / 4 * 3]) -> Option<&'a [u8]> {
    let raw = path.strip_prefix("/ocsp/")?.as_bytes();
    let b64 = if raw.contains(&b'%') { percent_decode(raw, text)? } else { raw };
    let b64 = &b64[b64.iter().take_while(|&&c| c == b'/').count()..];
    if b64.len() > MAX_B64 {
        return None;
    }
    let n = base64::engine::general_purpose::STANDARD.decode_slice(b64, der).ok()?;
    Some(&der[..n])
}

async fn ocsp_get(State(st): State<Arc<AppState>>, req: Request) -> Response {
    let (req, _) = req.into_parts();
    let (mut text, mut buf) = ([0u8; MAX_B64], [0u8; MAX_B64 / 4 * 3]);
    let Some(der) = get_request(req.uri.path(), &mut text, &mut buf) else {
        return ocsp_response(&Answer::malformed(), false);
    };
    let etag_matches = |etag: &[u8]| req.headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == etag);
    match st.ocsp.serve(der, now()).await {
        Served::Hot(hit) if etag_matches(&hit.etag()) => StatusCode::NOT_MODIFIED.into_response(),
        Served::Hot(hit) => hot_response(hit, true),
        Served::Answer(Answer::Cached(c)) if etag_matches(c.etag.as_bytes()) => {
            StatusCode::NOT_MODIFIED.into_response()
        }
        Served::Answer(a) => ocsp_response(&a, true),
    }
}

/// The GET route pattern [`hot_get`] answers for.
pub const OCSP_GET_ROUTE: &str = "/ocsp/{*req}";

/// A stateless responder's answer to `GET /ocsp/{base64}` from its hot set, without the
/// router and without waiting (for `net::server::Server::pre_route`): the same response as the
/// router's (or 304 on a matching `If-None-Match`); `None` for anything else — another route,
/// a request not in the hot set, a malformed one — which the router then answers.
pub fn hot_get(r: &StoreResponder, method: &Method, uri: &Uri, headers: &HeaderMap) -> Option<Response> {
    if method != Method::GET {
        return None;
    }
    let (mut text, mut buf) = ([0u8; MAX_B64], [0u8; MAX_B64 / 4 * 3]);
    let hit = r.hot(get_request(uri.path(), &mut text, &mut buf)?, now())?;
    if headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == &hit.etag()[..]) {
        return Some(StatusCode::NOT_MODIFIED.into_response());
    }
    Some(hot_response(hit, true))
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
    fn get_paths_are_percent_decoded_then_base64_on_the_stack() {
        let get = |path: &str| {
            let (mut text, mut buf) = ([0u8; MAX_B64], [0u8; MAX_B64 / 4 * 3]);
            get_request(path, &mut text, &mut buf).map(<[u8]>::to_vec)
        };
        let der = [0xfb, 0xff, 0xbf, 0x01];
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        assert!(b64.contains('+') && b64.contains('/'), "{b64}");
        assert_eq!(get(&format!("/ocsp/{b64}")), Some(der.to_vec()));
        assert_eq!(get(&format!("/ocsp//{b64}")), Some(der.to_vec()), "leading slashes dropped");
        let enc = b64.replace('/', "%2F").replace('+', "%2b").replace('=', "%3D");
        assert_eq!(get(&format!("/ocsp/{enc}")), Some(der.to_vec()));
        assert_eq!(get("/ocsp/%zz"), None, "an invalid escape stays, and is not base64");
        assert_eq!(get("/ocsp/MA%"), None);
        assert_eq!(get("/crl/MAMC"), None);
        assert_eq!(get(&format!("/ocsp/{}", "A".repeat(MAX_B64))), Some(vec![0; MAX_B64 / 4 * 3]));
        assert_eq!(get(&format!("/ocsp/{}", "A".repeat(MAX_B64 + 4))), None, "too long to be a request");
        assert_eq!(get(&format!("/ocsp/{}", "%41".repeat(MAX_B64 + 4))), None);
    }

    #[test]
    fn http_dates_are_imf_fixdate() {
        assert_eq!(http_date(784111777).unwrap(), "Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
