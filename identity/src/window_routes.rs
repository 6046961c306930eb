//! The window's routes (HTTP shell, axum): a municipal window (`urn:jpki:window:LGCODE:ID`,
//! from its mutual-TLS certificate) acting for an authenticated clerk (`clerk:LGCODE:ID`, by
//! the signature headers [`crate::authz::ClerkCheck`] verifies) on its own municipality's
//! register, and asking the national node for a disclosure report of one of its residents.
//!
//! Every request is checked in this order, and a refusal writes nothing: the caller's party
//! (401 without one), the authorization table (403 `party_not_allowed` for any party but a
//! window, `not_own_municipality` for another municipality's window), the clerk's signature
//! over this very request (401 with the clerk refusal code as `reason`), then the body (400).
//! Each refusal is logged with the party and the route, never with personal data. Every action
//! is written to the operator log as `window:… clerk:…` in the transaction of the change.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::de::DeserializeOwned;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authz::{
    self, CLERK_HEADER_CERT, CLERK_HEADER_SIGNATURE, CLERK_HEADER_TIME, ClerkCheck, ClerkHeaderValues, Denial,
    NoClerks, Node, Route,
};
use crate::client::{MoveInNotice, Peer};
use crate::error::{Error, ErrorKind};
use crate::http::{AppError, AppResult, Caller, RawBody, allow, deny, now};
use crate::ids::LgCode;
use crate::municipal::Municipality;
use crate::national::National;
use crate::notice::{ChangeNotice, NoticeKind};
use crate::openapi::ErrorBody;
use crate::operator::Operator;
use crate::party::Party;
use crate::person::ResidentStatus;
use crate::provision::DisclosureRow;
use crate::window::{
    CHANGE_CODE, CORRECT, ChangeCodeRequest, Changed, CorrectRequest, DISCLOSURE, DisclosureRequest, FIND, FindRequest,
    Found, MOVE_IN, MOVE_OUT, MOVE_WITHIN, MoveInRequest, MoveOutRequest, MoveWithinRequest, REGISTER, REMOVE,
    RegisterRequest, RemoveRequest,
};

/// What a municipality node needs to serve its windows: the clerk verifier and the peer
/// directory of other municipalities' nodes (for a move-in's 転出証明書情報 and 転入通知), each
/// [`Peer`] built with this node's own credential and pinned to `municipality:CODE`.
#[derive(Debug, Clone)]
pub struct Windows {
    /// Authenticates the clerks.
    pub clerks: Arc<dyn ClerkCheck>,
    /// Other municipalities' nodes, by code (from the node's configuration, never a request).
    pub peers: BTreeMap<LgCode, Peer>,
}

impl Windows {
    /// No window is served: every clerk is refused ([`NoClerks`]), no peer is known.
    pub fn closed() -> Self {
        Self { clerks: Arc::new(NoClerks), peers: BTreeMap::new() }
    }
}

/// State of a municipality node's window routes.
#[derive(Debug)]
pub(crate) struct MunicipalWindows {
    pub(crate) m: Municipality,
    pub(crate) windows: Windows,
}

/// State of the national node's window route.
#[derive(Debug)]
pub(crate) struct NationalWindows {
    pub(crate) national: National,
    pub(crate) clerks: Arc<dyn ClerkCheck>,
}

/// The clerk's signature headers of every window route (described once, `net::clerk`).
#[derive(utoipa::IntoParams)]
#[into_params(
    names("x-jpki-clerk-certificate", "x-jpki-clerk-time", "x-jpki-clerk-signature"),
    parameter_in = Header
)]
#[allow(dead_code)] // a description only: the handlers read the headers from the request
pub(crate) struct ClerkSignature(
    /// The clerk's certificate (DER, hex), issued by the network CA for clerk signing.
    String,
    /// Signing time (unix seconds, within 5 minutes of the node's clock).
    i64,
    /// The clerk's ECDSA P-384 signature (DER, hex) over the window's party, `POST`, the path,
    /// the time and SHA-384 of the body (`net::clerk::message`).
    String,
);

/// Admits the window `caller` on `route` of `node` and the clerk whose signature the request
/// carries; returns who acts, as the operator log names them. Refusals are logged (party and
/// route only) and write nothing.
fn station(
    node: &Node,
    route: Route,
    clerks: &dyn ClerkCheck,
    caller: &Party,
    path: &'static str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Operator, AppError> {
    station_clerk(node, route, clerks, caller, path, headers, body).map(|(op, _)| op)
}

/// [`station`], also returning the clerk's party.
pub(crate) fn station_clerk(
    node: &Node,
    route: Route,
    clerks: &dyn ClerkCheck,
    caller: &Party,
    path: &'static str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Operator, Party), AppError> {
    allow(node, route, caller)?;
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let values = ClerkHeaderValues {
        cert: h(CLERK_HEADER_CERT),
        time: h(CLERK_HEADER_TIME),
        signature: h(CLERK_HEADER_SIGNATURE),
    };
    let clerk = clerks
        .check(caller, "POST", path, body, values, now())
        .and_then(|clerk| authz::check_clerk_of_window(caller, &clerk).map(|()| clerk))
        .map_err(|r| {
            tracing::warn!(party = %caller, route = path, reason = r.code, "clerk not authenticated");
            AppError(Error::ClerkRefused { party: caller.to_string(), reason: r.code, detail: r.detail })
        })?;
    tracing::info!(window = %caller, clerk = %clerk, route = path, "window request");
    Ok((Operator::at_window(caller, &clerk)?, clerk))
}

impl MunicipalWindows {
    /// [`station`] on this node, then the body as `Q`.
    fn admit<Q: DeserializeOwned>(
        &self,
        route: Route,
        caller: &Party,
        path: &'static str,
        headers: &HeaderMap,
        body: &RawBody,
    ) -> Result<(Operator, Q), AppError> {
        let node = Node::Municipality(self.m.code().clone());
        let op = station(&node, route, self.windows.clerks.as_ref(), caller, path, headers, &body.0)?;
        Ok((op, body.json()?))
    }
}

/// The answer of a change route.
fn changed(n: ChangeNotice) -> Changed {
    Changed {
        kind: n.body.kind,
        seq: n.key.seq,
        record: n.body.record,
        previous_code: n.body.previous_code,
        old_municipality_notified: None,
        note: None,
    }
}

/// The window routes of a municipality node.
pub(crate) fn municipal_api() -> OpenApiRouter<Arc<MunicipalWindows>> {
    OpenApiRouter::new()
        .routes(routes!(window_find))
        .routes(routes!(window_register))
        .routes(routes!(window_move_within))
        .routes(routes!(window_move_out))
        .routes(routes!(window_move_in))
        .routes(routes!(window_remove))
        .routes(routes!(window_correct))
        .routes(routes!(window_change_code))
}

/// The window route of the national node.
pub(crate) fn national_api() -> OpenApiRouter<Arc<NationalWindows>> {
    OpenApiRouter::new().routes(routes!(window_disclosure))
}

/// `POST /v1/window/find`.
#[utoipa::path(
    post,
    path = "/v1/window/find",
    tag = "window",
    summary = "A resident of this register, by 住民票コード or by all four items exactly",
    description = "A window of this municipality (`urn:jpki:window:<code>:<id>`) for a clerk of it (signature \
headers). No free search: by code, or by an exact match of name, date of birth, sex and address; any status. The \
lookup and the codes it found are written to the operator log as `window:… clerk:…`, a miss too.",
    params(ClerkSignature),
    request_body(content = FindRequest, content_type = "application/json"),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The matching records", body = Found),
        (status = 400, description = "Malformed body (unknown fields are refused)", body = ErrorBody),
        (status = 401, description = "No client party, or the clerk not authenticated (`reason`: `clerk_missing`, \
`clerk_not_trusted`, `clerk_stale`, `clerk_other_municipality`, `clerk_bad_signature`)", body = ErrorBody),
        (status = 403, description = "Not a window (`party_not_allowed`) or another municipality's \
(`not_own_municipality`)", body = ErrorBody),
        (status = 404, description = "No such resident on this register (`not_found`)", body = ErrorBody),
        (status = 500, description = "Internal error (no detail)", body = ErrorBody),
    )
)]
async fn window_find(
    State(w): State<Arc<MunicipalWindows>>,
    Caller(c): Caller,
    headers: HeaderMap,
    body: RawBody,
) -> AppResult<Json<Found>> {
    let (op, q): (_, FindRequest) = w.admit(Route::WindowFind, &c, FIND, &headers, &body)?;
    Ok(Json(Found { records: w.m.find(&op, &q.by, now()).await? }))
}

/// `POST /v1/window/register`.
#[utoipa::path(
    post,
    path = "/v1/window/register",
    tag = "window",
    summary = "Register a resident by birth or first registration",
    description = "The code is drawn from the municipality's pool. One transaction: the record, the signed change \
notice and the operator-log row naming window and clerk. Callers as for `/v1/window/find`.",
    params(ClerkSignature),
    request_body(content = RegisterRequest, content_type = "application/json"),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The change as committed (the new code in `record`)", body = Changed),
        (status = 400, description = "Malformed body or items", body = ErrorBody),
        (status = 401, description = "No client party, or the clerk not authenticated (`reason`)", body = ErrorBody),
        (status = 403, description = "Not a window of this municipality (`reason`)", body = ErrorBody),
        (status = 409, description = "The code pool is empty", body = ErrorBody),
        (status = 500, description = "Internal error (no detail)", body = ErrorBody),
    )
)]
async fn window_register(
    State(w): State<Arc<MunicipalWindows>>,
    Caller(c): Caller,
    headers: HeaderMap,
    body: RawBody,
) -> AppResult<Json<Changed>> {
    let (op, q): (_, RegisterRequest) = w.admit(Route::WindowChange, &c, REGISTER, &headers, &body)?;
    Ok(Json(changed(w.m.register(&op, q.kind.kind(), q.items, q.effective_date, now()).await?)))
}

/// `POST /v1/window/move-within`.
#[utoipa::path(
    post,
    path = "/v1/window/move-within",
    tag = "window",
    summary = "転居: a new address within the municipality",
    description = "For an active resident of this register. Callers as for `/v1/window/find`.",
    params(ClerkSignature),
    request_body(content = MoveWithinRequest, content_type = "application/json"),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The change as committed", body = Changed),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "No client party, or the clerk not authenticated (`reason`)", body = ErrorBody),
        (status = 403, description = "Not a window of this municipality (`reason`)", body = ErrorBody),
        (status = 404, description = "No such resident on this register", body = ErrorBody),
        (status = 409, description = "The resident is not on the active register", body = ErrorBody),
        (status = 500, description = "Internal error (no detail)", body = ErrorBody),
    )
)]
async fn window_move_within(
    State(w): State<Arc<MunicipalWindows>>,
    Caller(c): Caller,
    headers: HeaderMap,
    body: RawBody,
) -> AppResult<Json<Changed>> {
    let (op, q): (_, MoveWithinRequest) = w.admit(Route::WindowChange, &c, MOVE_WITHIN, &headers, &body)?;
    Ok(Json(changed(w.m.move_within(&op, &q.resident_code, q.address, q.effective_date, now()).await?)))
}

/// `POST /v1/window/move-out`.
#[utoipa::path(
    post,
    path = "/v1/window/move-out",
    tag = "window",
    summary = "転出 to another municipality",
    description = "The destination municipality may then fetch the 転出証明書情報 (`GET /v1/move-out/{code}`). \
Callers as for `/v1/window/find`.",
    params(ClerkSignature),
    request_body(content = MoveOutRequest, content_type = "application/json"),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The change as committed", body = Changed),
        (status = 400, description = "Malformed body, or the destination is this municipality", body = ErrorBody),
        (status = 401, description = "No client party, or the clerk not authenticated (`reason`)", body = ErrorBody),
        (status = 403, description = "Not a window of this municipality (`reason`)", body = ErrorBody),
        (status = 404, description = "No such resident on this register", body = ErrorBody),
        (status = 409, description = "The resident is not on the active register", body = ErrorBody),
        (status = 500, description = "Internal error (no detail)", body = ErrorBody),
    )
)]
async fn window_move_out(
    State(w): State<Arc<MunicipalWindows>>,
    Caller(c): Caller,
    headers: HeaderMap,
    body: RawBody,
) -> AppResult<Json<Changed>> {
    let (op, q): (_, MoveOutRequest) = w.admit(Route::WindowChange, &c, MOVE_OUT, &headers, &body)?;
    Ok(Json(changed(w.m.move_out(&op, &q.resident_code, q.destination, q.effective_date, now()).await?)))
}

/// `POST /v1/window/move-in`.
#[utoipa::path(
    post,
    path = "/v1/window/move-in",
    tag = "window",
    summary = "転入 from another municipality",
    description = "The node fetches the 転出証明書情報 from the old municipality's node (its peer directory, \
`--peer CODE=URL`, never the request) with its own credential, registers the resident, then sends the old node \
the 転入通知. If that notice cannot be sent the move-in stays committed (`old_municipality_notified: false`); \
repeating the same request sends it again and records nothing twice. Callers as for `/v1/window/find`.",
    params(ClerkSignature),
    request_body(content = MoveInRequest, content_type = "application/json"),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The change as committed", body = Changed),
        (status = 400, description = "Malformed body, an old municipality this node has no peer for, or this \
municipality itself", body = ErrorBody),
        (status = 401, description = "No client party, or the clerk not authenticated (`reason`)", body = ErrorBody),
        (status = 403, description = "Not a window of this municipality (`reason`)", body = ErrorBody),
        (status = 409, description = "The old municipality hands over no 転出証明書情報 of this resident to this \
one, or the resident is already registered here", body = ErrorBody),
        (status = 502, description = "The old municipality's node could not be reached (no detail)", body = ErrorBody),
        (status = 500, description = "Internal error (no detail)", body = ErrorBody),
    )
)]
async fn window_move_in(
    State(w): State<Arc<MunicipalWindows>>,
    Caller(c): Caller,
    headers: HeaderMap,
    body: RawBody,
) -> AppResult<Json<Changed>> {
    let (op, q): (_, MoveInRequest) = w.admit(Route::WindowChange, &c, MOVE_IN, &headers, &body)?;
    let own = w.m.code().clone();
    if q.old_municipality == own {
        return Err(Error::invalid("old_municipality", "a move within the municipality is a 転居".into()).into());
    }
    let old = w.windows.peers.get(&q.old_municipality).ok_or_else(|| {
        Error::invalid(
            "old_municipality",
            format!("this node has no peer for municipality {} (its --peer directory)", q.old_municipality),
        )
    })?;
    // A repeated move-in (its answer or its 転入通知 was lost): nothing changed here since the
    // move-in from this old municipality, so only the 転入通知 is sent again.
    if let Some(n) = repeated_move_in(&w.m, &q).await? {
        return Ok(Json(notify(old, &own, n).await));
    }
    let cert = old.move_out_certificate(&q.resident_code).await.map_err(|e| match e.peer_answer() {
        Some(a) if a.status == 403 || a.status == 404 => AppError(Error::Conflict(format!(
            "municipality {} hands over no 転出証明書情報 of this resident to {own} ({}): has the resident's 転出 to \
             {own} been recorded there?",
            q.old_municipality,
            a.code()
        ))),
        _ => AppError(e),
    })?;
    if cert.record.resident_code != q.resident_code || cert.move_out.source != q.old_municipality {
        return Err(Error::Conflict(format!(
            "the 転出証明書情報 from {} is not about the resident asked for",
            q.old_municipality
        ))
        .into());
    }
    let n = w.m.move_in(&op, &cert, q.address, q.effective_date, now()).await?;
    Ok(Json(notify(old, &own, n).await))
}

/// The move-in already recorded for `q`, if nothing has changed since (the record's version is
/// the move-in's and its predecessor is a move-out of the same old municipality).
async fn repeated_move_in(m: &Municipality, q: &MoveInRequest) -> crate::Result<Option<ChangeNotice>> {
    let current = match m.get(&q.resident_code).await {
        Ok(r) => r,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if current.status != ResidentStatus::Active || current.municipality != *m.code() {
        return Ok(None);
    }
    let Some(n) = m.last_notice(&q.resident_code, NoticeKind::MoveIn).await? else { return Ok(None) };
    let same = n.body.record.version == current.version
        && n.body.predecessor.as_ref().is_some_and(|p| p.source == q.old_municipality);
    Ok(same.then_some(n))
}

/// Sends the 転入通知 of move-in `n` to `old` and answers the change with the outcome.
async fn notify(old: &Peer, own: &LgCode, n: ChangeNotice) -> Changed {
    let notice = MoveInNotice {
        resident_code: n.body.record.resident_code.clone(),
        new_municipality: own.clone(),
        notice_seq: n.key.seq,
    };
    let mut answer = changed(n);
    match old.send_move_in_notice(&notice).await {
        Ok(_) => answer.old_municipality_notified = Some(true),
        Err(e) => {
            // The peer's message may name the resident: the log gets its code only.
            let code = e.peer_answer().map(|a| a.code().to_owned()).unwrap_or_else(|| "unreachable".into());
            tracing::warn!(peer = old.base(), reason = %code, "the 転入通知 could not be sent; a repeated move-in sends it");
            answer.old_municipality_notified = Some(false);
            answer.note = Some(format!("the 転入通知 could not be sent ({e}); repeat the same move-in to send it"));
        }
    }
    answer
}

/// `POST /v1/window/remove`.
#[utoipa::path(
    post,
    path = "/v1/window/remove",
    tag = "window",
    summary = "Remove a resident: death, emigration or ex-officio removal",
    description = "For an active resident of this register; the reason is recorded as the notice kind. Callers as \
for `/v1/window/find`.",
    params(ClerkSignature),
    request_body(content = RemoveRequest, content_type = "application/json"),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The change as committed", body = Changed),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "No client party, or the clerk not authenticated (`reason`)", body = ErrorBody),
        (status = 403, description = "Not a window of this municipality (`reason`)", body = ErrorBody),
        (status = 404, description = "No such resident on this register", body = ErrorBody),
        (status = 409, description = "The resident is not on the active register", body = ErrorBody),
        (status = 500, description = "Internal error (no detail)", body = ErrorBody),
    )
)]
async fn window_remove(
    State(w): State<Arc<MunicipalWindows>>,
    Caller(c): Caller,
    headers: HeaderMap,
    body: RawBody,
) -> AppResult<Json<Changed>> {
    let (op, q): (_, RemoveRequest) = w.admit(Route::WindowChange, &c, REMOVE, &headers, &body)?;
    Ok(Json(changed(w.m.remove(&op, &q.resident_code, q.reason.kind(), q.effective_date, now()).await?)))
}

/// `POST /v1/window/correct`.
#[utoipa::path(
    post,
    path = "/v1/window/correct",
    tag = "window",
    summary = "職権修正: correct the four items",
    description = "All four items as they should be; a correction that changes nothing is refused. Callers as for \
`/v1/window/find`.",
    params(ClerkSignature),
    request_body(content = CorrectRequest, content_type = "application/json"),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The change as committed", body = Changed),
        (status = 400, description = "Malformed body, or nothing to correct", body = ErrorBody),
        (status = 401, description = "No client party, or the clerk not authenticated (`reason`)", body = ErrorBody),
        (status = 403, description = "Not a window of this municipality (`reason`)", body = ErrorBody),
        (status = 404, description = "No such resident on this register", body = ErrorBody),
        (status = 409, description = "The resident is not on the active register", body = ErrorBody),
        (status = 500, description = "Internal error (no detail)", body = ErrorBody),
    )
)]
async fn window_correct(
    State(w): State<Arc<MunicipalWindows>>,
    Caller(c): Caller,
    headers: HeaderMap,
    body: RawBody,
) -> AppResult<Json<Changed>> {
    let (op, q): (_, CorrectRequest) = w.admit(Route::WindowChange, &c, CORRECT, &headers, &body)?;
    Ok(Json(changed(w.m.correct(&op, &q.resident_code, q.items, q.effective_date, now()).await?)))
}

/// `POST /v1/window/change-code`.
#[utoipa::path(
    post,
    path = "/v1/window/change-code",
    tag = "window",
    summary = "住民票コード変更: a new code from the pool; the old one is retired forever",
    description = "Callers as for `/v1/window/find`.",
    params(ClerkSignature),
    request_body(content = ChangeCodeRequest, content_type = "application/json"),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The change as committed (new code in `record`, old in `previous_code`)", body = Changed),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "No client party, or the clerk not authenticated (`reason`)", body = ErrorBody),
        (status = 403, description = "Not a window of this municipality (`reason`)", body = ErrorBody),
        (status = 404, description = "No such resident on this register", body = ErrorBody),
        (status = 409, description = "Not on the active register, or the code pool is empty", body = ErrorBody),
        (status = 500, description = "Internal error (no detail)", body = ErrorBody),
    )
)]
async fn window_change_code(
    State(w): State<Arc<MunicipalWindows>>,
    Caller(c): Caller,
    headers: HeaderMap,
    body: RawBody,
) -> AppResult<Json<Changed>> {
    let (op, q): (_, ChangeCodeRequest) = w.admit(Route::WindowChange, &c, CHANGE_CODE, &headers, &body)?;
    Ok(Json(changed(w.m.change_code(&op, &q.resident_code, q.effective_date, now()).await?)))
}

/// `POST /v1/window/disclosure` (national node).
#[utoipa::path(
    post,
    path = "/v1/window/disclosure",
    tag = "window",
    summary = "A resident's disclosure report, printed at their municipality's window",
    description = "The same report as `GET /v1/disclosure/{code}`, for a window (`urn:jpki:window:<code>:<id>`) \
with a clerk of its municipality (signature headers), only for a resident the national projection has currently \
registered in the window's municipality (any other resident, unknown ones included: 403 `not_own_municipality`). \
Written to the operator log as `window:… clerk:…` before it is answered.",
    params(ClerkSignature),
    request_body(content = DisclosureRequest, content_type = "application/json"),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The report's rows", body = Vec<DisclosureRow>),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "No client party, or the clerk not authenticated (`reason`)", body = ErrorBody),
        (status = 403, description = "Not a window (`party_not_allowed`), or the resident is not registered in its \
municipality (`not_own_municipality`)", body = ErrorBody),
        (status = 500, description = "Internal error (no detail)", body = ErrorBody),
    )
)]
async fn window_disclosure(
    State(s): State<Arc<NationalWindows>>,
    Caller(c): Caller,
    headers: HeaderMap,
    body: RawBody,
) -> AppResult<Json<Vec<DisclosureRow>>> {
    let op = station(&Node::National, Route::WindowDisclosure, s.clerks.as_ref(), &c, DISCLOSURE, &headers, &body.0)?;
    let q: DisclosureRequest = body.json()?;
    // No oracle: an unknown resident is refused exactly like another municipality's.
    let own = c.station().map(|(m, _)| m);
    let registered_here = match s.national.record(&q.resident_code).await {
        Ok(r) => r.status == ResidentStatus::Active && Some(&r.municipality) == own.as_ref(),
        Err(e) if e.kind() == ErrorKind::NotFound => false,
        Err(e) => return Err(e.into()),
    };
    if !registered_here {
        return Err(deny(&c, Route::WindowDisclosure.path(), Denial::NotOwnMunicipality));
    }
    Ok(Json(s.national.provider().disclosure_by(&op, &q.resident_code, now()).await?))
}
