//! HTTP shells (axum) of the three node roles. Every route checks the caller's [`Party`] (set
//! by the `net` crate's mutual-TLS server from the client certificate) against the
//! authorization table ([`crate::authz`]). Errors reach the wire here and only here
//! ([`AppError`]); 5xx bodies never carry detail. Handlers read the clock; cores do not.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authz::{self, Denial, Node, Route};
use crate::client::{Heads, MAX_WAIT_MS, MoveInNotice, PoolRequest};
use crate::error::{Error, ErrorKind};
use crate::ids::{LgCode, PrefectureCode, ResidentCode};
use crate::municipal::MoveOutCertificate;
use crate::municipal::Municipality;
use crate::national::{FeedEntry, National};
use crate::notice::ChangeNotice;
use crate::notice_sig::NoticeKeyCert;
use crate::openapi::ErrorBody;
use crate::operator::{Operator, Role as OpRole};
use crate::party::Party;
use crate::provision::{Agency, BatchQuery, DisclosureRow, Provided, Provider, Query as ProvisionQuery};
use crate::store::{self, Db};
pub use crate::window_routes::Windows;

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
            Error::WideAreaRefused { reason, .. } => crate::widearea::retry_after(reason),
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
        let reason = match &self.0 {
            Error::Refused(r) => Some(r.code().to_owned()),
            Error::Denied { reason, .. }
            | Error::ClerkRefused { reason, .. }
            | Error::KioskRefused { reason, .. }
            | Error::WideAreaRefused { reason, .. } => Some((*reason).to_owned()),
            _ => None,
        };
        let body = ErrorBody { error: code.to_owned(), message, reason };
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

pub(crate) type AppResult<T> = Result<T, AppError>;

/// A page of a sequence: entries after `after`, at most `limit`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Page {
    /// Entries with a sequence number greater than this (0: from the start).
    #[serde(default)]
    after: u64,
    /// At most this many (default 500; 1–1,000 notices, 1–10,000 feed entries).
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 10_000)]
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
pub(crate) fn deny(caller: &Party, action: &'static str, d: Denial) -> AppError {
    tracing::warn!(party = %caller, route = action, reason = d.code(), "refused by the authorization table");
    AppError(Error::Denied { party: caller.to_string(), action, reason: d.code() })
}

/// Checks the static cell of the authorization table.
pub(crate) fn allow(node: &Node, route: Route, caller: &Party) -> Result<(), AppError> {
    authz::authorize(node, route, caller).map_err(|d| deny(caller, route.path(), d))
}

#[derive(Debug, Clone)]
struct NodeInfo {
    db: Db,
    node: Node,
    /// Slots for long polls of `GET /v1/heads` ([`wait_for`]).
    waits: Arc<tokio::sync::Semaphore>,
}

impl NodeInfo {
    fn new(db: Db, node: Node) -> Self {
        Self { db, node, waits: Arc::new(tokio::sync::Semaphore::new(NODE_WAITS)) }
    }
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

/// `GET /v1/heads`.
#[utoipa::path(
    get,
    path = "/v1/heads",
    tag = "replication",
    summary = "Chain heads of every source this node holds",
    description = "The highest seq and its hash per source municipality, and why replication of a source is \
halted if it is. With `since` (the `version` of the heads the caller holds) and `wait_ms`, a long poll: the \
answer comes once the heads differ from `since`, or after `wait_ms` unchanged (or at once when the node already \
holds its limit of waiting polls). Who may call: the node's cell of the authorization table \
(docs/authorization.md): operators; a municipality's own prefecture; the national node at a prefecture.",
    params(HeadsWait),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The heads", body = Heads),
        (status = 400, description = "Malformed query or `wait_ms` over 10,000", body = ErrorBody),
        (status = 401, description = "No client party", body = ErrorBody),
        (status = 403, description = "The authorization table refuses the caller (`reason`)", body = ErrorBody),
        (status = 500, description = "Internal error (no detail)", body = ErrorBody),
    )
)]
async fn heads(State(n): State<Arc<NodeInfo>>, Caller(c): Caller, uri: Uri) -> AppResult<Json<Heads>> {
    allow(&n.node, Route::Heads, &c)?;
    let w: HeadsWait = query(&uri)?;
    let wait = wait_for(&n.waits, w.wait_ms)?;
    // Subscribe before reading: a commit after the read wakes the wait.
    let mut changes = n.db.watch();
    let mut out = Heads::new(n.role().into(), n.code(), store::heads(&n.db).await?);
    let Some(since) = w.since.filter(|v| *v == out.version) else { return Ok(Json(out)) };
    let Some((deadline, _permit)) = wait else { return Ok(Json(out)) };
    while tokio::time::timeout_at(deadline, changes.changed()).await.is_ok_and(|r| r.is_ok()) {
        out = Heads::new(n.role().into(), n.code(), store::heads(&n.db).await?);
        if out.version != since {
            break;
        }
    }
    Ok(Json(out))
}

/// The long poll of `GET /v1/heads`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct HeadsWait {
    /// The `version` of the heads the caller holds: the answer waits until the heads differ.
    since: Option<String>,
    /// How long to wait for a change, in ms (0–10,000; 0, the default: answer at once).
    #[serde(default)]
    #[param(maximum = 10_000)]
    wait_ms: u64,
}

/// Long polls of one node's heads waiting at once (its callers are its upstream tiers and
/// operators: a handful). Past it a poll is answered at once and its caller polls on its timer,
/// so waits never take the server's in-flight slots.
const NODE_WAITS: usize = 16;

/// Long polls of the feed's head waiting at once in this process (its callers are CAs).
static FEED_WAITS: std::sync::LazyLock<Arc<tokio::sync::Semaphore>> =
    std::sync::LazyLock::new(|| Arc::new(tokio::sync::Semaphore::new(64)));

/// A long poll's deadline and its slot in `slots`; `None` when it should not wait (`wait_ms`
/// 0, or every slot taken). More than [`MAX_WAIT_MS`] is a 400.
fn wait_for(
    slots: &Arc<tokio::sync::Semaphore>,
    wait_ms: u64,
) -> Result<Option<(tokio::time::Instant, tokio::sync::OwnedSemaphorePermit)>, AppError> {
    if wait_ms > MAX_WAIT_MS {
        return Err(Error::invalid("wait_ms", format!("{wait_ms} is more than {MAX_WAIT_MS}")).into());
    }
    if wait_ms == 0 {
        return Ok(None);
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(wait_ms);
    Ok(slots.clone().try_acquire_owned().ok().map(|p| (deadline, p)))
}

/// `GET /v1/sources/{source}/notices`.
#[utoipa::path(
    get,
    path = "/v1/sources/{source}/notices",
    tag = "replication",
    summary = "A page of one source's change notices, in seq order",
    description = "Signed, hash-chained change notices of municipality `source` after `after`. A municipality serves \
only its own chain (to its own prefecture); a prefecture re-serves its municipalities' chains unchanged (to the \
national node).",
    params(("source" = LgCode, Path, description = "The source municipality"), Page),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The notices (empty past the head)", body = Vec<ChangeNotice>),
        (status = 400, description = "Malformed source code, query or `limit` out of 1–1,000", body = ErrorBody),
        (status = 401, description = "No client party", body = ErrorBody),
        (status = 403, description = "The authorization table refuses the caller (`reason`)", body = ErrorBody),
        (status = 404, description = "This node holds no such source", body = ErrorBody),
        (status = 500, description = "Internal error (no detail)", body = ErrorBody),
    )
)]
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
#[utoipa::path(
    get,
    path = "/v1/sources/{source}/keys",
    tag = "replication",
    summary = "The source's notice-key certificates",
    description = "Every key municipality `source` has signed notices with (rotated-out ones included), so that a \
replica can admit the key a notice names. Whoever may read the notices may read the keys.",
    params(("source" = LgCode, Path, description = "The source municipality")),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The certificates", body = Vec<NoticeKeyCert>),
        (status = 400, description = "Malformed source code", body = ErrorBody),
        (status = 401, description = "No client party", body = ErrorBody),
        (status = 403, description = "The authorization table refuses the caller (`reason`)", body = ErrorBody),
        (status = 404, description = "This node holds no such source", body = ErrorBody),
        (status = 500, description = "Internal error (no detail)", body = ErrorBody),
    )
)]
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

/// The replication routes and their description (every node role serves them).
fn replication_api() -> OpenApiRouter<Arc<NodeInfo>> {
    OpenApiRouter::new().routes(routes!(heads)).routes(routes!(notices)).routes(routes!(notice_keys))
}

/// Titles of the three node roles' descriptions.
const MUNICIPAL_TITLE: &str = "jpki municipality node";
const PREFECTURE_TITLE: &str = "jpki prefecture node";
const NATIONAL_TITLE: &str = "jpki national node";
const MUNICIPAL_TEXT: &str = "A municipal node of the identity network: the replication source of its own chain \
(to its prefecture), and the 転出証明書 / 転入通知 exchange between municipalities. Who may call which route: \
docs/authorization.md; the protocol: docs/identity.md.";
const PREFECTURE_TEXT: &str = "A prefecture node of the identity network: it re-serves its municipalities' \
chains unchanged (to the national node) and provides identity information to the bodies whose data it holds \
(別表第5/第6 and ordinance tables). Who may call which route: docs/authorization.md; the protocol: \
docs/identity.md.";
const NATIONAL_TEXT: &str = "The national node of the identity network: replication, the change-information \
feed, resident-code pools, provision to agencies (別表第1–第4), disclosure reports and statistics. Who may \
call which route: docs/authorization.md; the protocol: docs/identity.md.";

/// The municipal node's own routes.
fn municipal_api() -> OpenApiRouter<Arc<Municipality>> {
    OpenApiRouter::new().routes(routes!(move_out_certificate)).routes(routes!(move_in_notice))
}

/// Routes of a municipal node: replication source (to its prefecture), 転出証明書 and 転入通知
/// (to other municipalities), and its description at `GET /openapi.json`; its window routes
/// refuse every clerk ([`Windows::closed`]; a node serving windows is built with
/// [`municipal_router_with`]).
pub fn municipal_router(m: Municipality) -> Router {
    municipal_router_with(m, Windows::closed())
}

/// [`municipal_router`] serving its windows: clerks authenticated by `windows.clerks`, a
/// move-in's old municipality reached through `windows.peers`.
pub fn municipal_router_with(m: Municipality, windows: Windows) -> Router {
    municipal_router_full(m, windows, crate::kiosk::Kiosks::closed())
}

/// [`municipal_router_with`] serving kiosks too (コンビニ交付, [`crate::kiosk`]); it takes no part
/// in 広域交付 (see [`municipal_router_wide`]).
pub fn municipal_router_full(m: Municipality, windows: Windows, kiosks: crate::kiosk::Kiosks) -> Router {
    municipal_router_wide(m, windows, kiosks, crate::widearea::WideArea::default())
}

/// [`municipal_router_full`] taking part in 広域交付 ([`crate::widearea`]) as `wide` says: its
/// windows' requests relayed to the national node, copies issued for the national node.
pub fn municipal_router_wide(
    m: Municipality,
    windows: Windows,
    kiosks: crate::kiosk::Kiosks,
    wide: crate::widearea::WideArea,
) -> Router {
    let info = NodeInfo::new(m.db().clone(), Node::Municipality(m.code().clone()));
    let wide = crate::widearea::MunicipalWideArea { m: m.clone(), clerks: windows.clerks.clone(), wide };
    let desk = crate::window_routes::MunicipalWindows { m: m.clone(), windows };
    let kiosk_desk = crate::kiosk::KioskDesk::new(m.clone(), kiosks);
    let api = municipal_api()
        .with_state(Arc::new(m))
        .merge(replication_api().with_state(Arc::new(info)))
        .merge(crate::window_routes::municipal_api().with_state(Arc::new(desk)))
        .merge(crate::kiosk::municipal_api().with_state(Arc::new(kiosk_desk)))
        .merge(crate::widearea::municipal_api().with_state(Arc::new(wide)));
    crate::openapi::serve(api, MUNICIPAL_TITLE, MUNICIPAL_TEXT).0.layer(DefaultBodyLimit::max(MAX_BODY))
}

/// The OpenAPI description a municipal node serves at `GET /openapi.json`.
pub fn municipal_openapi() -> OpenApi {
    let parts = [
        municipal_api().into_openapi(),
        replication_api().into_openapi(),
        crate::window_routes::municipal_api().into_openapi(),
        crate::kiosk::municipal_api().into_openapi(),
        crate::widearea::municipal_api().into_openapi(),
        crate::openapi::description_part(),
    ];
    crate::openapi::document(MUNICIPAL_TITLE, MUNICIPAL_TEXT, parts)
}

/// `GET /v1/move-out/{code}`.
#[utoipa::path(
    get,
    path = "/v1/move-out/{code}",
    tag = "move",
    summary = "The 転出証明書情報 of a resident who moved out",
    description = "The record as it left and the move-out notice the move-in must follow, only to the \
municipality named as the destination. A resident who is unknown or has not moved out is refused exactly like \
one who moved elsewhere (403 `not_move_destination`): no register can be probed.",
    params(("code" = ResidentCode, Path, description = "The resident's 住民票コード")),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The certificate", body = MoveOutCertificate),
        (status = 400, description = "Malformed resident code", body = ErrorBody),
        (status = 401, description = "No client party", body = ErrorBody),
        (status = 403, description = "The authorization table refuses the caller (`reason`)", body = ErrorBody),
        (status = 500, description = "Internal error (no detail)", body = ErrorBody),
    )
)]
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

/// `POST /v1/move-in-notices`.
#[utoipa::path(
    post,
    path = "/v1/move-in-notices",
    tag = "move",
    summary = "A 転入通知 from the resident's new municipality",
    description = "Recorded idempotently: `true` when recorded now, `false` for a retry of one already recorded. \
Accepted only from the municipality the notice names as the new one.",
    request_body(content = MoveInNotice, content_type = "application/json"),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "Whether this call recorded it", body = bool),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "No client party", body = ErrorBody),
        (status = 403, description = "The authorization table refuses the caller (`reason`)", body = ErrorBody),
        (status = 404, description = "No such resident here", body = ErrorBody),
        (status = 409, description = "The resident's state does not allow it", body = ErrorBody),
        (status = 500, description = "Internal error (no detail)", body = ErrorBody),
    )
)]
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
    let api = replication_api()
        .with_state(Arc::new(NodeInfo::new(s.db, node.clone())))
        .merge(provision_api().with_state(Arc::new(ProvisionState { provider: s.provider, node })));
    crate::openapi::serve(api, PREFECTURE_TITLE, PREFECTURE_TEXT).0.layer(DefaultBodyLimit::max(MAX_BODY))
}

/// The OpenAPI description a prefecture node serves at `GET /openapi.json`.
pub fn prefecture_openapi() -> OpenApi {
    let parts = [replication_api().into_openapi(), provision_api().into_openapi(), crate::openapi::description_part()];
    crate::openapi::document(PREFECTURE_TITLE, PREFECTURE_TEXT, parts)
}

/// State of the national node's HTTP shell.
#[derive(Debug)]
pub struct NationalState {
    /// The node.
    pub national: National,
}

/// Routes of the national node: replication, feed, pools, provision, disclosure, statistics;
/// its window route refuses every clerk ([`crate::authz::NoClerks`]; a node serving windows is
/// built with [`national_router_with`]).
pub fn national_router(state: NationalState) -> Router {
    national_router_with(state, Arc::new(crate::authz::NoClerks))
}

/// [`national_router`] serving windows' disclosure requests, clerks authenticated by `clerks`;
/// it relays no 広域交付 (see [`national_router_relay`]).
pub fn national_router_with(state: NationalState, clerks: Arc<dyn crate::authz::ClerkCheck>) -> Router {
    national_router_relay(state, clerks, crate::widearea::Relay::closed())
}

/// [`national_router_with`] relaying 広域交付 ([`crate::widearea`]) through `relay`'s municipal
/// directory.
pub fn national_router_relay(
    state: NationalState,
    clerks: Arc<dyn crate::authz::ClerkCheck>,
    relay: crate::widearea::Relay,
) -> Router {
    let info = NodeInfo::new(state.national.db().clone(), Node::National);
    let provision = ProvisionState { provider: state.national.provider().clone(), node: Node::National };
    let windows = crate::window_routes::NationalWindows { national: state.national.clone(), clerks };
    let relay = crate::widearea::NationalRelay::new(state.national.clone(), relay);
    let api = national_api()
        .with_state(Arc::new(state))
        .merge(replication_api().with_state(Arc::new(info)))
        .merge(provision_api().with_state(Arc::new(provision)))
        .merge(crate::window_routes::national_api().with_state(Arc::new(windows)))
        .merge(crate::widearea::national_api().with_state(Arc::new(relay)));
    crate::openapi::serve(api, NATIONAL_TITLE, NATIONAL_TEXT).0.layer(DefaultBodyLimit::max(MAX_BODY))
}

/// The national node's own routes.
fn national_api() -> OpenApiRouter<Arc<NationalState>> {
    OpenApiRouter::new().routes(routes!(code_pool)).routes(routes!(feed)).routes(routes!(feed_head))
}

/// The OpenAPI description the national node serves at `GET /openapi.json`.
pub fn national_openapi() -> OpenApi {
    let parts = [
        national_api().into_openapi(),
        replication_api().into_openapi(),
        provision_api().into_openapi(),
        crate::window_routes::national_api().into_openapi(),
        crate::widearea::national_api().into_openapi(),
        crate::openapi::description_part(),
    ];
    crate::openapi::document(NATIONAL_TITLE, NATIONAL_TEXT, parts)
}

/// State of the provision routes (national or prefecture).
#[derive(Debug)]
struct ProvisionState {
    provider: Provider,
    node: Node,
}

/// Agency and operator routes of a provision point.
fn provision_api() -> OpenApiRouter<Arc<ProvisionState>> {
    OpenApiRouter::new()
        .routes(routes!(provision_query))
        .routes(routes!(provision_batch))
        .routes(routes!(disclosure))
        .routes(routes!(statistics))
}

/// `GET /v1/feed`.
#[utoipa::path(
    get,
    path = "/v1/feed",
    tag = "feed",
    summary = "A page of the change-information feed",
    description = "Ordered entries with a gapless `feed_seq`; subscribers (the CAs) keep their own cursor.",
    params(Page),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The entries after `after` (empty past the head)", body = Vec<FeedEntry>),
        (status = 400, description = "Malformed query or `limit` out of 1–10,000", body = ErrorBody),
        (status = 401, description = "No client party", body = ErrorBody),
        (status = 403, description = "The authorization table refuses the caller (`reason`)", body = ErrorBody),
        (status = 500, description = "Internal error (no detail)", body = ErrorBody),
    )
)]
async fn feed(State(s): State<Arc<NationalState>>, Caller(c): Caller, uri: Uri) -> AppResult<Response> {
    allow(&Node::National, Route::Feed, &c)?;
    let p: Page = query(&uri)?;
    if p.limit == 0 || p.limit > 10_000 {
        return Err(Error::invalid("limit", format!("{} is not 1–10000", p.limit)).into());
    }
    Ok(Json(s.national.feed_after(p.after, p.limit).await?).into_response())
}

/// `GET /v1/feed/head`.
#[utoipa::path(
    get,
    path = "/v1/feed/head",
    tag = "feed",
    summary = "The feed's last `feed_seq`",
    description = "With `after` (the caller's cursor) and `wait_ms`, a long poll: the answer comes once the head is \
past `after`, or after `wait_ms`.",
    params(FeedWait),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The head (0: empty feed)", body = u64),
        (status = 400, description = "Malformed query or `wait_ms` over 10,000", body = ErrorBody),
        (status = 401, description = "No client party", body = ErrorBody),
        (status = 403, description = "The authorization table refuses the caller (`reason`)", body = ErrorBody),
        (status = 500, description = "Internal error (no detail)", body = ErrorBody),
    )
)]
async fn feed_head(State(s): State<Arc<NationalState>>, Caller(c): Caller, uri: Uri) -> AppResult<Response> {
    allow(&Node::National, Route::Feed, &c)?;
    let w: FeedWait = query(&uri)?;
    let wait = wait_for(&FEED_WAITS, w.wait_ms)?;
    let mut changes = s.national.db().watch();
    let mut head = s.national.feed_head().await?;
    if let (Some(after), Some((deadline, _permit))) = (w.after, wait) {
        while head <= after && tokio::time::timeout_at(deadline, changes.changed()).await.is_ok_and(|r| r.is_ok()) {
            head = s.national.feed_head().await?;
        }
    }
    Ok(Json(head).into_response())
}

/// The long poll of `GET /v1/feed/head`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct FeedWait {
    /// The caller's cursor: the answer waits until the head is past it.
    after: Option<u64>,
    /// How long to wait, in ms (0–10,000; 0, the default: answer at once).
    #[serde(default)]
    #[param(maximum = 10_000)]
    wait_ms: u64,
}

/// `POST /v1/code-pools`.
#[utoipa::path(
    post,
    path = "/v1/code-pools",
    tag = "pools",
    summary = "A pool of fresh resident codes for the calling municipality",
    description = "Only for the municipality in the caller's own certificate; written to the operator log under \
the caller's name.",
    request_body(content = PoolRequest, content_type = "application/json"),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The codes", body = Vec<ResidentCode>),
        (status = 400, description = "Malformed body or `count` out of range", body = ErrorBody),
        (status = 401, description = "No client party", body = ErrorBody),
        (status = 403, description = "The authorization table refuses the caller (`reason`)", body = ErrorBody),
        (status = 500, description = "Internal error (no detail)", body = ErrorBody),
    )
)]
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

/// `POST /v1/provision/query`.
#[utoipa::path(
    post,
    path = "/v1/provision/query",
    tag = "provision",
    summary = "Identity information of one resident, for a purpose in the law table",
    description = "Lookup by 住民票コード or by an exact match of all four items among active residents; there is \
no other search. Callers: agencies (`urn:jpki:agency:<id>`) and a CA querying as an agency for B1-020 \
(`urn:jpki:ca:<id>`), registered at this provision point. Every provision, not-found and refusal is written to \
the provision log before the answer leaves.",
    request_body(content = ProvisionQuery, content_type = "application/json"),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "`found`, and the granted items if found", body = Provided),
        (status = 400, description = "Malformed body (unknown fields are refused)", body = ErrorBody),
        (status = 401, description = "No client party", body = ErrorBody),
        (status = 403, description = "Refused: by the authorization table (`agency_not_registered`, \
`party_not_allowed`, …) or by the law table (`error` `refused`, `reason` e.g. `field_not_permitted`, \
`purpose_not_registered`); a law-table refusal is written to the provision log", body = ErrorBody),
        (status = 429, description = "Over the agency's rate limit (`reason` `rate_limited`), logged", body = ErrorBody,
         headers(("Retry-After" = u64, description = "Whole seconds to wait"))),
        (status = 500, description = "Internal error (no detail)", body = ErrorBody),
    )
)]
async fn provision_query(
    State(s): State<Arc<ProvisionState>>,
    Caller(c): Caller,
    body: RawBody,
) -> AppResult<Response> {
    let a = agency(&s, &c).await?;
    let q: ProvisionQuery = body.json()?;
    Ok(Json(s.provider.query(&a, &q, now()).await?).into_response())
}

/// `POST /v1/provision/batch`.
#[utoipa::path(
    post,
    path = "/v1/provision/batch",
    tag = "provision",
    summary = "Identity information of up to 10,000 residents, for a bulk purpose",
    description = "Only for purposes the law table marks bulk (e.g. the pension liveness check); one answer per \
resident code, in order. Callers as for `/v1/provision/query`.",
    request_body(content = BatchQuery, content_type = "application/json"),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "One answer per resident code, in order", body = Vec<Provided>),
        (status = 400, description = "Malformed body or more than 10,000 residents", body = ErrorBody),
        (status = 401, description = "No client party", body = ErrorBody),
        (status = 403, description = "Refused: by the authorization table (`agency_not_registered`, \
`party_not_allowed`, …) or by the law table (`error` `refused`, `reason` e.g. `field_not_permitted`, \
`purpose_not_registered`); a law-table refusal is written to the provision log", body = ErrorBody),
        (status = 429, description = "Over the agency's rate limit (`reason` `rate_limited`), logged", body = ErrorBody,
         headers(("Retry-After" = u64, description = "Whole seconds to wait"))),
        (status = 500, description = "Internal error (no detail)", body = ErrorBody),
    )
)]
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

/// `GET /v1/disclosure/{code}`.
#[utoipa::path(
    get,
    path = "/v1/disclosure/{code}",
    tag = "reports",
    summary = "A resident's disclosure report: every provision of their information",
    description = "Operators only (`urn:jpki:operator:<name>`); the request is written to the operator log with \
the operator's name before it is answered.",
    params(("code" = ResidentCode, Path, description = "The resident's 住民票コード")),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The report's rows", body = Vec<DisclosureRow>),
        (status = 400, description = "Malformed resident code", body = ErrorBody),
        (status = 401, description = "No client party", body = ErrorBody),
        (status = 403, description = "The authorization table refuses the caller (`reason`)", body = ErrorBody),
        (status = 500, description = "Internal error (no detail)", body = ErrorBody),
    )
)]
async fn disclosure(
    State(s): State<Arc<ProvisionState>>,
    Caller(c): Caller,
    Path(code): Path<String>,
) -> AppResult<Response> {
    let op = report_operator(&s, &c)?;
    let code: ResidentCode = code.parse()?;
    Ok(Json(s.provider.disclosure_by(&op, &code, now()).await?).into_response())
}

/// The fiscal years of a statistics report.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Years {
    /// 1–20 fiscal years, comma-separated (`2025,2026`).
    #[param(pattern = "^[0-9]{1,4}(,[0-9]{1,4}){0,19}$")]
    years: String,
}

/// `GET /v1/statistics`.
#[utoipa::path(
    get,
    path = "/v1/statistics",
    tag = "reports",
    summary = "Provisions per purpose per fiscal year (Markdown)",
    description = "In the shape of the prefecture usage tables. Operators only; written to the operator log.",
    params(Years),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The tables", content_type = "text/markdown; charset=utf-8", body = String),
        (status = 400, description = "Malformed years", body = ErrorBody),
        (status = 401, description = "No client party", body = ErrorBody),
        (status = 403, description = "The authorization table refuses the caller (`reason`)", body = ErrorBody),
        (status = 500, description = "Internal error (no detail)", body = ErrorBody),
    )
)]
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
