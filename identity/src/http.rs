//! HTTP shells (axum) of the three node roles. Every route checks the caller's [`Party`] (set
//! by the `net` crate's mutual-TLS server from the client certificate) against the
//! authorization table ([`crate::authz`]). Errors reach the wire here and only here
//! ([`AppError`]); 5xx bodies never carry detail. Handlers read the clock; cores do not.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::authz::{self, Denial, Node, Route};
use crate::client::{Heads, MoveInNotice, PoolRequest};
use crate::error::{Error, ErrorKind};
use crate::ids::{PrefectureCode, ResidentCode};
use crate::municipal::Municipality;
use crate::national::National;
use crate::operator::{Operator, Role as OpRole};
use crate::party::Party;
use crate::provision::{Agency, BatchQuery, Provider};
use crate::store::{self, Db};

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY: usize = 1 << 20;
/// Most notices one replication page returns.
pub const MAX_PAGE: u32 = 1_000;

/// Unix seconds now (the shells' clock).
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The one mapping of [`Error`] to HTTP.
#[derive(Debug)]
pub struct AppError(pub Error);

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        // A refusal a retry can overcome (an agency over its rate limit) is 429 with
        // Retry-After (RFC 9110 §10.2.3, RFC 6585 §4); every other refusal is 403.
        let retry_after = match &self.0 {
            Error::Refused(r) => r.retry_after(),
            _ => None,
        };
        let (status, code) = match self.0.kind() {
            ErrorKind::Refused if retry_after.is_some() => (StatusCode::TOO_MANY_REQUESTS, "refused"),
            ErrorKind::Invalid => (StatusCode::BAD_REQUEST, "invalid"),
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ErrorKind::Conflict => (StatusCode::CONFLICT, "conflict"),
            ErrorKind::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            ErrorKind::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            ErrorKind::Refused => (StatusCode::FORBIDDEN, "refused"),
            ErrorKind::Integrity => (StatusCode::CONFLICT, "integrity"),
            ErrorKind::Unavailable => (StatusCode::BAD_GATEWAY, "unavailable"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let message = if status.is_server_error() {
            tracing::error!(error = %self.0, "request failed");
            "internal error".to_owned()
        } else {
            self.0.to_string()
        };
        let mut body = serde_json::json!({ "error": code, "message": message });
        match &self.0 {
            Error::Refused(r) => body["reason"] = serde_json::json!(r.code()),
            Error::Denied { reason, .. } => body["reason"] = serde_json::json!(reason),
            _ => {}
        }
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(secs.max(1)));
        }
        response
    }
}

/// A request body, read (at most [`MAX_BODY`] bytes) but not yet interpreted: a handler
/// parses it with [`RawBody::json`] only once the caller is authorized, so a refused party
/// gets its 403 whatever it sent, and its input is never parsed.
#[derive(Debug)]
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = AppError;
    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        axum::body::Bytes::from_request(req, state)
            .await
            .map(Self)
            .map_err(|e| AppError(Error::invalid("body", format!("unreadable or too large: {}", e.body_text()))))
    }
}

impl RawBody {
    /// The body as JSON of type `T` (malformed JSON or a wrong type is 400).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, AppError> {
        serde_json::from_slice(&self.0).map_err(|e| AppError(Error::invalid("body", e.to_string())))
    }
}

/// The query string of `uri` as `T`, parsed once the caller is authorized (malformed is 400).
fn query<T: DeserializeOwned>(uri: &Uri) -> Result<T, AppError> {
    Query::<T>::try_from_uri(uri).map(|Query(q)| q).map_err(|e| AppError(Error::invalid("query", e.body_text())))
}

type AppResult<T> = Result<T, AppError>;

#[derive(Debug, Deserialize)]
struct Page {
    #[serde(default)]
    after: u64,
    #[serde(default = "default_limit")]
    limit: u32,
}
fn default_limit() -> u32 {
    500
}

/// The authenticated caller: the [`Party`] the TLS server read from the client certificate
/// and put into the request's extensions. A request without one (no TLS) is 401.
#[derive(Debug, Clone)]
pub struct Caller(pub Party);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, AppError> {
        parts.extensions.get::<Party>().cloned().map(Caller).ok_or(AppError(Error::Unauthenticated))
    }
}

/// Refuses `caller` with `d` on `action`: logged (no personal data, no durable write), 403.
fn deny(caller: &Party, action: &'static str, d: Denial) -> AppError {
    tracing::warn!(party = %caller, route = action, reason = d.code(), "refused by the authorization table");
    AppError(Error::Denied { party: caller.to_string(), action, reason: d.code() })
}

/// Checks the static cell of the authorization table.
fn allow(node: &Node, route: Route, caller: &Party) -> Result<(), AppError> {
    authz::authorize(node, route, caller).map_err(|d| deny(caller, route.path(), d))
}

#[derive(Debug, Clone)]
struct NodeInfo {
    db: Db,
    node: Node,
}

impl NodeInfo {
    fn role(&self) -> &'static str {
        self.node.kind()
    }
    fn code(&self) -> String {
        match &self.node {
            Node::Municipality(c) => c.to_string(),
            Node::Prefecture(c) => c.as_str().to_owned(),
            Node::National => "national".into(),
        }
    }
}

async fn heads(State(n): State<Arc<NodeInfo>>, Caller(c): Caller) -> AppResult<Json<Heads>> {
    allow(&n.node, Route::Heads, &c)?;
    Ok(Json(Heads { role: n.role().into(), code: n.code(), heads: store::heads(&n.db).await? }))
}

async fn notices(
    State(n): State<Arc<NodeInfo>>,
    Caller(c): Caller,
    Path(source): Path<String>,
    uri: Uri,
) -> AppResult<Response> {
    allow(&n.node, Route::Notices, &c)?;
    let p: Page = query(&uri)?;
    let source: crate::ids::LgCode = source.parse()?;
    if let Node::Municipality(own) = &n.node
        && *own != source
    {
        return Err(Error::not_found("source", source).into());
    }
    if p.limit == 0 || p.limit > MAX_PAGE {
        return Err(Error::invalid("limit", format!("{} is not 1–{MAX_PAGE}", p.limit)).into());
    }
    let page = store::notices_after(&n.db, source.as_str(), p.after, p.limit).await?;
    if page.is_empty() && !store::holds(&n.db, source.as_str()).await? {
        return Err(Error::not_found("source", format!("{source} (unknown municipality on this node)")).into());
    }
    Ok(Json(page).into_response())
}

/// `GET /v1/sources/{source}/keys`: the source's notice-key certificates (every key it has
/// signed with, rotated-out ones included), so a replica can admit the key a notice names.
/// Whoever may read the notices may read the keys (the [`Route::Notices`] cell).
async fn notice_keys(
    State(n): State<Arc<NodeInfo>>,
    Caller(c): Caller,
    Path(source): Path<String>,
) -> AppResult<Response> {
    allow(&n.node, Route::Notices, &c)?;
    let source: crate::ids::LgCode = source.parse()?;
    if let Node::Municipality(own) = &n.node
        && *own != source
    {
        return Err(Error::not_found("source", source).into());
    }
    let keys = store::notice_keys(&n.db, source.as_str()).await?;
    if keys.is_empty() && !store::holds(&n.db, source.as_str()).await? {
        return Err(Error::not_found("source", format!("{source} (unknown municipality on this node)")).into());
    }
    Ok(Json(keys).into_response())
}

fn replication_routes(info: NodeInfo) -> Router {
    Router::new()
        .route("/v1/heads", get(heads))
        .route("/v1/sources/{source}/notices", get(notices))
        .route("/v1/sources/{source}/keys", get(notice_keys))
        .with_state(Arc::new(info))
}

/// Routes of a municipal node: replication source (to its prefecture), 転出証明書 and 転入通知
/// (to other municipalities).
pub fn municipal_router(m: Municipality) -> Router {
    let info = NodeInfo { db: m.db().clone(), node: Node::Municipality(m.code().clone()) };
    let m = Arc::new(m);
    Router::new()
        .route("/v1/move-out/{code}", get(move_out_certificate))
        .route("/v1/move-in-notices", post(move_in_notice))
        .with_state(m)
        .merge(replication_routes(info))
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

async fn move_out_certificate(
    State(m): State<Arc<Municipality>>,
    Caller(c): Caller,
    Path(code): Path<String>,
) -> AppResult<Response> {
    let node = Node::Municipality(m.code().clone());
    allow(&node, Route::MoveOut, &c)?;
    let code: ResidentCode = code.parse()?;
    // No oracle: a resident that is unknown or has not moved out answers exactly like one that
    // moved elsewhere, so a municipality cannot probe other municipalities' registers.
    let cert = match m.move_out_certificate(&code).await {
        Ok(cert) => cert,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Conflict) => {
            tracing::debug!(error = %e, "move-out certificate not available");
            return Err(deny(&c, Route::MoveOut.path(), Denial::NotDestination));
        }
        Err(e) => return Err(e.into()),
    };
    authz::check_destination(&c, &cert.destination).map_err(|d| deny(&c, Route::MoveOut.path(), d))?;
    Ok(Json(cert).into_response())
}

async fn move_in_notice(State(m): State<Arc<Municipality>>, Caller(c): Caller, body: RawBody) -> AppResult<Json<bool>> {
    let node = Node::Municipality(m.code().clone());
    allow(&node, Route::MoveInNotice, &c)?;
    let n: MoveInNotice = body.json()?;
    authz::check_own_municipality(&c, &n.new_municipality).map_err(|d| deny(&c, Route::MoveInNotice.path(), d))?;
    Ok(Json(m.receive_move_in_notice(&n.resident_code, &n.new_municipality, n.notice_seq, now()).await?))
}

/// State of a prefecture node's HTTP shell.
#[derive(Debug)]
pub struct PrefectureState {
    /// The prefecture's database (history, projection, provision log).
    pub db: Db,
    /// Its two-digit code.
    pub code: PrefectureCode,
    /// Provision to the prefecture's own bodies (別表第5/第6, ordinance tables).
    pub provider: Provider,
}

/// Routes of a prefecture node: it re-serves its municipalities' notices unchanged (to the
/// national node), and provides to the bodies whose data the prefecture server holds.
pub fn prefecture_router(s: PrefectureState) -> Router {
    let node = Node::Prefecture(s.code.clone());
    replication_routes(NodeInfo { db: s.db, node: node.clone() })
        .merge(provision_routes(ProvisionState { provider: s.provider, node }))
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

/// State of the national node's HTTP shell.
#[derive(Debug)]
pub struct NationalState {
    /// The node.
    pub national: National,
}

/// Routes of the national node: replication, feed, pools, provision, disclosure, statistics.
pub fn national_router(state: NationalState) -> Router {
    let info = NodeInfo { db: state.national.db().clone(), node: Node::National };
    let provision =
        provision_routes(ProvisionState { provider: state.national.provider().clone(), node: Node::National });
    let state = Arc::new(state);
    Router::new()
        .route("/v1/code-pools", post(code_pool))
        .route("/v1/feed", get(feed))
        .route("/v1/feed/head", get(feed_head))
        .with_state(state)
        .merge(replication_routes(info))
        .merge(provision)
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

/// State of the provision routes (national or prefecture).
#[derive(Debug)]
struct ProvisionState {
    provider: Provider,
    node: Node,
}

/// Agency and operator routes of a provision point.
fn provision_routes(state: ProvisionState) -> Router {
    Router::new()
        .route("/v1/provision/query", post(provision_query))
        .route("/v1/provision/batch", post(provision_batch))
        .route("/v1/disclosure/{code}", get(disclosure))
        .route("/v1/statistics", get(statistics))
        .with_state(Arc::new(state))
}

async fn feed(State(s): State<Arc<NationalState>>, Caller(c): Caller, uri: Uri) -> AppResult<Response> {
    allow(&Node::National, Route::Feed, &c)?;
    let p: Page = query(&uri)?;
    if p.limit == 0 || p.limit > 10_000 {
        return Err(Error::invalid("limit", format!("{} is not 1–10000", p.limit)).into());
    }
    Ok(Json(s.national.feed_after(p.after, p.limit).await?).into_response())
}

async fn feed_head(State(s): State<Arc<NationalState>>, Caller(c): Caller) -> AppResult<Response> {
    allow(&Node::National, Route::Feed, &c)?;
    Ok(Json(s.national.feed_head().await?).into_response())
}

async fn code_pool(State(s): State<Arc<NationalState>>, Caller(c): Caller, body: RawBody) -> AppResult<Response> {
    allow(&Node::National, Route::CodePool, &c)?;
    let r: PoolRequest = body.json()?;
    authz::check_own_municipality(&c, &r.municipality).map_err(|d| deny(&c, Route::CodePool.path(), d))?;
    let op = Operator::new(&c.to_string(), OpRole::NationalOperator)?;
    Ok(Json(s.national.allocate_pool(&op, &r.municipality, r.count, now()).await?).into_response())
}

/// The registered agency behind a provision request: the table admits agency and CA parties
/// (a CA queries as an agency for B1-020), then the name in the certificate must be an agency
/// registered at this provision point. A refusal writes nothing (no provision-log row: the
/// caller never reached the law table).
async fn agency(s: &ProvisionState, c: &Party) -> Result<Agency, AppError> {
    allow(&s.node, Route::Provision, c)?;
    let id = match c {
        Party::Agency(id) | Party::Ca(id) => id,
        _ => return Err(deny(c, Route::Provision.path(), Denial::WrongParty)),
    };
    s.provider.registered_agency(id).await?.ok_or_else(|| deny(c, Route::Provision.path(), Denial::AgencyNotRegistered))
}

async fn provision_query(
    State(s): State<Arc<ProvisionState>>,
    Caller(c): Caller,
    body: RawBody,
) -> AppResult<Response> {
    let a = agency(&s, &c).await?;
    let q: crate::provision::Query = body.json()?;
    Ok(Json(s.provider.query(&a, &q, now()).await?).into_response())
}

async fn provision_batch(
    State(s): State<Arc<ProvisionState>>,
    Caller(c): Caller,
    body: RawBody,
) -> AppResult<Response> {
    let a = agency(&s, &c).await?;
    let q: BatchQuery = body.json()?;
    Ok(Json(s.provider.batch(&a, &q, now()).await?).into_response())
}

/// The operator behind a report request: an operator party, named in the operator log.
fn report_operator(s: &ProvisionState, c: &Party) -> Result<Operator, AppError> {
    allow(&s.node, Route::Reports, c)?;
    let role = match s.node {
        Node::Prefecture(_) => OpRole::PrefectureOperator,
        _ => OpRole::NationalOperator,
    };
    Ok(Operator::new(&c.to_string(), role)?)
}

async fn disclosure(
    State(s): State<Arc<ProvisionState>>,
    Caller(c): Caller,
    Path(code): Path<String>,
) -> AppResult<Response> {
    let op = report_operator(&s, &c)?;
    let code: ResidentCode = code.parse()?;
    Ok(Json(s.provider.disclosure_by(&op, &code, now()).await?).into_response())
}

#[derive(Debug, Deserialize)]
struct Years {
    years: String,
}

async fn statistics(State(s): State<Arc<ProvisionState>>, Caller(c): Caller, uri: Uri) -> AppResult<Response> {
    let op = report_operator(&s, &c)?;
    let y: Years = query(&uri)?;
    let years = y
        .years
        .split(',')
        .map(|t| t.trim().parse::<i32>().map_err(|e| Error::invalid("years", format!("{t:?}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    if years.is_empty() || years.len() > 20 {
        return Err(Error::invalid("years", "give 1–20 fiscal years".into()).into());
    }
    let text = s.provider.statistics_by(&op, &years, now()).await?;
    Ok(([(header::CONTENT_TYPE, "text/markdown; charset=utf-8")], text).into_response())
}

/// Serves `router` on `listener` with axum's defaults (no TLS, no timeouts or caps): for
/// identity's own tests and the in-process demo only. Nodes are served by `net::server`,
/// which terminates mutual TLS, puts the caller's [`Party`] into each request and adds the
/// limits a server facing hostile clients needs. Served this way, a router answers 401 to
/// every request unless a layer in front of it supplies the party.
pub async fn serve(listener: tokio::net::TcpListener, router: Router) -> std::io::Result<()> {
    axum::serve(listener, router).await
}
