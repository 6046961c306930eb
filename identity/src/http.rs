//! HTTP shells (axum) of the three node roles. Errors reach the wire here and only here
//! ([`AppError`]); 5xx bodies never carry detail. Handlers read the clock; cores do not.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::client::{Heads, MoveInNotice, PoolRequest};
use crate::error::{Error, ErrorKind};
use crate::ids::ResidentCode;
use crate::municipal::Municipality;
use crate::national::National;
use crate::operator::Operator;
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
        let (status, code) = match self.0.kind() {
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
        if let Error::Refused(r) = &self.0 {
            body["reason"] = serde_json::json!(r.code());
        }
        (status, Json(body)).into_response()
    }
}

/// JSON body whose rejection (malformed JSON, wrong type) is an [`AppError`].
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = AppError;
    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(e @ JsonRejection::BytesRejection(_)) => {
                Err(AppError(Error::invalid("body", format!("unreadable or too large: {}", e.body_text()))))
            }
            Err(e) => Err(AppError(Error::invalid("body", e.body_text()))),
        }
    }
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

#[derive(Debug, Clone)]
struct NodeInfo {
    db: Db,
    role: &'static str,
    code: String,
    /// A municipality serves only its own source.
    only_source: Option<String>,
}

async fn heads(State(n): State<Arc<NodeInfo>>) -> AppResult<Json<Heads>> {
    Ok(Json(Heads { role: n.role.into(), code: n.code.clone(), heads: store::heads(&n.db).await? }))
}

async fn notices(
    State(n): State<Arc<NodeInfo>>,
    Path(source): Path<String>,
    Query(p): Query<Page>,
) -> AppResult<Response> {
    let source: crate::ids::LgCode = source.parse()?;
    if n.only_source.as_deref().is_some_and(|s| s != source.as_str()) {
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
async fn notice_keys(State(n): State<Arc<NodeInfo>>, Path(source): Path<String>) -> AppResult<Response> {
    let source: crate::ids::LgCode = source.parse()?;
    if n.only_source.as_deref().is_some_and(|s| s != source.as_str()) {
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

/// The shared secret of the node-to-node routes (replication, 転出証明書, 転入通知, the
/// change feed). `None` leaves them open: only for loopback tests and the demo.
#[derive(Debug, Clone, Default)]
pub struct PeerToken(pub Option<String>);

async fn check_peer_token(State(t): State<PeerToken>, req: Request, next: axum::middleware::Next) -> Response {
    match &t.0 {
        Some(want) if bearer(req.headers()) != Some(want.as_str()) => AppError(Error::Unauthenticated).into_response(),
        _ => next.run(req).await,
    }
}

/// Requires the peer token on every route of `router`.
fn peer_only(router: Router, token: PeerToken) -> Router {
    router.layer(axum::middleware::from_fn_with_state(token, check_peer_token))
}

/// Routes of a municipal node: replication source, 転出証明書, 転入通知 (all node-to-node).
pub fn municipal_router(m: Municipality, token: PeerToken) -> Router {
    let info = NodeInfo {
        db: m.db().clone(),
        role: "municipality",
        code: m.code().to_string(),
        only_source: Some(m.code().to_string()),
    };
    let m = Arc::new(m);
    let routes = Router::new()
        .route("/v1/move-out/{code}", get(move_out_certificate))
        .route("/v1/move-in-notices", post(move_in_notice))
        .with_state(m)
        .merge(replication_routes(info));
    peer_only(routes, token).layer(DefaultBodyLimit::max(MAX_BODY))
}

async fn move_out_certificate(State(m): State<Arc<Municipality>>, Path(code): Path<String>) -> AppResult<Response> {
    let code: ResidentCode = code.parse()?;
    Ok(Json(m.move_out_certificate(&code).await?).into_response())
}

async fn move_in_notice(State(m): State<Arc<Municipality>>, Body(n): Body<MoveInNotice>) -> AppResult<Json<bool>> {
    Ok(Json(m.receive_move_in_notice(&n.resident_code, &n.new_municipality, n.notice_seq, now()).await?))
}

/// State of a prefecture node's HTTP shell.
#[derive(Debug)]
pub struct PrefectureState {
    /// The prefecture's database (history, projection, provision log).
    pub db: Db,
    /// Its two-digit code.
    pub code: String,
    /// Secret of the node-to-node routes.
    pub peer_token: PeerToken,
    /// Provision to the prefecture's own bodies (別表第5/第6, ordinance tables).
    pub provider: Provider,
    /// Bearer token of the prefecture's operator API (disclosure, statistics).
    pub operator_token: String,
}

/// Routes of a prefecture node: it re-serves its municipalities' notices unchanged, and
/// provides to the bodies whose data the prefecture server holds.
pub fn prefecture_router(s: PrefectureState) -> Router {
    let routes = replication_routes(NodeInfo { db: s.db, role: "prefecture", code: s.code, only_source: None });
    peer_only(routes, s.peer_token)
        .merge(provision_routes(ProvisionState { provider: s.provider, operator_token: s.operator_token }))
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

/// State of the national node's HTTP shell.
#[derive(Debug)]
pub struct NationalState {
    /// The node.
    pub national: National,
    /// Bearer token of the national operator account used by municipalities and operators.
    pub operator_token: String,
    /// The operator that token stands for.
    pub operator: Operator,
    /// Secret of the node-to-node routes (replication and the change feed).
    pub peer_token: PeerToken,
}

/// Routes of the national node: replication, feed, pools, provision, disclosure, statistics.
pub fn national_router(state: NationalState) -> Router {
    let info =
        NodeInfo { db: state.national.db().clone(), role: "national", code: "national".into(), only_source: None };
    let token = state.peer_token.clone();
    let provision = provision_routes(ProvisionState {
        provider: state.national.provider().clone(),
        operator_token: state.operator_token.clone(),
    });
    let state = Arc::new(state);
    let peers = peer_only(
        Router::new()
            .route("/v1/feed", get(feed))
            .route("/v1/feed/head", get(feed_head))
            .with_state(state.clone())
            .merge(replication_routes(info)),
        token,
    );
    Router::new()
        .route("/v1/code-pools", post(code_pool))
        .with_state(state)
        .merge(peers)
        .merge(provision)
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

/// State of the provision routes (national or prefecture).
#[derive(Debug)]
struct ProvisionState {
    provider: Provider,
    operator_token: String,
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

fn bearer(h: &HeaderMap) -> Option<&str> {
    h.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ")
}

fn operator_auth(token: &str, h: &HeaderMap) -> Result<(), AppError> {
    match bearer(h) {
        Some(t) if !token.is_empty() && t == token => Ok(()),
        _ => Err(Error::Unauthenticated.into()),
    }
}

async fn feed(State(s): State<Arc<NationalState>>, Query(p): Query<Page>) -> AppResult<Response> {
    if p.limit == 0 || p.limit > 10_000 {
        return Err(Error::invalid("limit", format!("{} is not 1–10000", p.limit)).into());
    }
    Ok(Json(s.national.feed_after(p.after, p.limit).await?).into_response())
}

async fn feed_head(State(s): State<Arc<NationalState>>) -> AppResult<Response> {
    Ok(Json(s.national.feed_head().await?).into_response())
}

async fn code_pool(
    State(s): State<Arc<NationalState>>,
    h: HeaderMap,
    Body(r): Body<PoolRequest>,
) -> AppResult<Response> {
    operator_auth(&s.operator_token, &h)?;
    Ok(Json(s.national.allocate_pool(&s.operator, &r.municipality, r.count, now()).await?).into_response())
}

async fn agency(s: &ProvisionState, h: &HeaderMap) -> Result<Agency, AppError> {
    Ok(s.provider.authenticate(bearer(h).unwrap_or(""), now()).await?)
}

async fn provision_query(
    State(s): State<Arc<ProvisionState>>,
    h: HeaderMap,
    body: Body<crate::provision::Query>,
) -> AppResult<Response> {
    let a = agency(&s, &h).await?;
    Ok(Json(s.provider.query(&a, &body.0, now()).await?).into_response())
}

async fn provision_batch(
    State(s): State<Arc<ProvisionState>>,
    h: HeaderMap,
    Body(q): Body<BatchQuery>,
) -> AppResult<Response> {
    let a = agency(&s, &h).await?;
    Ok(Json(s.provider.batch(&a, &q, now()).await?).into_response())
}

async fn disclosure(
    State(s): State<Arc<ProvisionState>>,
    h: HeaderMap,
    Path(code): Path<String>,
) -> AppResult<Response> {
    operator_auth(&s.operator_token, &h)?;
    let code: ResidentCode = code.parse()?;
    Ok(Json(s.provider.disclosure(&code).await?).into_response())
}

#[derive(Debug, Deserialize)]
struct Years {
    years: String,
}

async fn statistics(State(s): State<Arc<ProvisionState>>, h: HeaderMap, Query(y): Query<Years>) -> AppResult<Response> {
    operator_auth(&s.operator_token, &h)?;
    let years = y
        .years
        .split(',')
        .map(|t| t.trim().parse::<i32>().map_err(|e| Error::invalid("years", format!("{t:?}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    if years.is_empty() || years.len() > 20 {
        return Err(Error::invalid("years", "give 1–20 fiscal years".into()).into());
    }
    Ok(([(header::CONTENT_TYPE, "text/markdown; charset=utf-8")], s.provider.statistics(&years).await?).into_response())
}

/// Serves `router` on `listener` with axum's defaults (no timeouts or caps): for identity's
/// own tests and the in-process demo only. Nodes are served by `net::server`, which adds the
/// limits a server facing hostile clients needs.
pub async fn serve(listener: tokio::net::TcpListener, router: Router) -> std::io::Result<()> {
    axum::serve(listener, router).await
}
