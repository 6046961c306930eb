//! 広域交付 (住民基本台帳法 第12条の4): a window of municipality A, with its clerk, gets a copy of
//! the residence record (住民票の写し, the signed PDF) of a resident registered in another
//! municipality B. The request travels window → A's node → national node → B's node and the
//! copy back the same way; see docs/widearea.md.
//!
//! - **A's node** (`POST /v1/window/wide-area-copy`, a window of A with a clerk of A): refuses a
//!   resident of its own register (issued locally), writes its operator-log row
//!   `wide_area_request` (window, clerk, items, when), relays to the national node (its
//!   `--national` URL, with its own credential), and logs the outcome (`wide_area_received`
//!   with the PDF's SHA-256, or `wide_area_failed` with the code).
//! - **The national node** (`POST /v1/wide-area/request`, municipalities only, for their own
//!   windows): holds each requesting municipality to its rate, authorises by the law table
//!   (purpose [`PURPOSE`], class `W1`), finds the resident's municipality in its projection
//!   (nobody types B) — the resident code and the date of birth must both match a current
//!   resident, or the answer is `not_found` whatever was wrong — asks B's node (its
//!   `--municipal-directory`), and writes the provision-log row (機能区分 広域交付, 提供先 the
//!   requesting municipality, window and clerk, the items) before it answers: the resident's
//!   disclosure report lists it. Every refusal and miss is logged there too.
//! - **B's node** (`POST /v1/wide-area/issue`, the national node only): reads the record,
//!   signs the PDF with its document-signing key, and writes its operator-log row naming the
//!   requesting municipality, window and clerk, in one transaction.
//!
//! A refusal anywhere issues nothing and leaves no `provided` row anywhere; it reaches the
//! window as a stable code with a Japanese message ([`Refused`]). Log lines carry parties,
//! municipality codes and reason codes, never a resident code, name or address.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use time::Date;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authz::{ClerkCheck, Denial, Node, Route};
use crate::client::Peer;
use crate::error::{Error, ErrorKind};
use crate::http::{AppError, AppResult, Caller, RawBody, allow, deny, now};
use crate::ids::{LgCode, ResidentCode};
use crate::kiosk::{DocumentMaker, ResidenceRecord};
use crate::law::{self, AgencyClass, Field, QueryKind};
use crate::municipal::Municipality;
use crate::national::National;
use crate::openapi::ErrorBody;
use crate::operator::{self, Operator, Role};
use crate::party::{Party, PartyKind, URI_PREFIX};
use crate::person::ResidentStatus;
use crate::provision::WideAreaLog;
use crate::rate_limit::{Cost, Limiter, Limits, Rate};
use crate::window_routes::{ClerkSignature, station_clerk};

/// `POST /v1/window/wide-area-copy` (municipality node; a window of it with its clerk).
pub const WINDOW_COPY: &str = "/v1/window/wide-area-copy";
/// `POST /v1/wide-area/request` (national node; a municipality's node).
pub const RELAY: &str = "/v1/wide-area/request";
/// `POST /v1/wide-area/issue` (municipality node; the national node).
pub const ISSUE: &str = "/v1/wide-area/issue";
/// The law table's purpose of 広域交付 (class `W1`, 住民基本台帳法 第12条の4).
pub const PURPOSE: &str = "W1-001";
/// Default rate of 広域交付 requests per requesting municipality at the national node.
pub const DEFAULT_RATE: Rate = Rate::new(2, 20);

/// Why a 広域交付 request was refused: a stable code (the error body's `reason`, forever) and
/// the message the window shows its clerk (Japanese, no personal data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The resident code and the date of birth do not both match a current (not removed)
    /// resident: one answer for an unknown code, a wrong date and a removed resident (404).
    NotFound,
    /// The resident is registered in the requesting municipality: issued at its own window,
    /// not through the network (403).
    OwnMunicipality,
    /// The requesting municipality is over its rate at the national node (429).
    RateLimited,
    /// The law table does not authorise it (a deployment's table without [`PURPOSE`], or
    /// items it does not permit) (403).
    NotLawful,
    /// A node on the way does not take part: the window's node has no national URL, or the
    /// resident's node has no document-signing key (403).
    Closed,
    /// The resident's node could not be reached or answered nothing usable (502).
    IssuerUnavailable,
}

impl Refused {
    /// Every refusal.
    pub const ALL: [Refused; 6] = [
        Self::NotFound,
        Self::OwnMunicipality,
        Self::RateLimited,
        Self::NotLawful,
        Self::Closed,
        Self::IssuerUnavailable,
    ];

    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::OwnMunicipality => "own_municipality",
            Self::RateLimited => "rate_limited",
            Self::NotLawful => "not_lawful",
            Self::Closed => "wide_area_closed",
            Self::IssuerUnavailable => "issuer_unavailable",
        }
    }

    /// The message for the clerk.
    pub fn message(self) -> &'static str {
        match self {
            Self::NotFound => "該当する住民が見つかりません。住民票コードと生年月日を確認してください。",
            Self::OwnMunicipality => "この市区町村の住民です。広域交付ではなく、通常の窓口交付を行ってください。",
            Self::RateLimited => "広域交付の請求が多すぎます。しばらくしてからやり直してください。",
            Self::NotLawful => "法令上の根拠がないため交付できません。",
            Self::Closed => "広域交付を行っていない市区町村があるため交付できません。",
            Self::IssuerUnavailable => "住所地の市区町村に接続できません。しばらくしてからやり直してください。",
        }
    }

    /// The refusal of `code`, if it is one of [`Refused::ALL`].
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// The error answered for it.
    fn error(self, party: &Party) -> Error {
        Error::WideAreaRefused { party: party.to_string(), reason: self.code(), message: self.message().to_owned() }
    }
}

/// The error kind (and so the HTTP status) of a refusal's code.
pub(crate) fn kind_of(reason: &str) -> ErrorKind {
    match Refused::from_code(reason) {
        Some(Refused::NotFound) => ErrorKind::NotFound,
        Some(Refused::IssuerUnavailable) => ErrorKind::Unavailable,
        Some(Refused::RateLimited) => ErrorKind::Refused,
        _ => ErrorKind::Forbidden,
    }
}

/// The `Retry-After` of a refusal's code (a rate-limited request only).
pub(crate) fn retry_after(reason: &str) -> Option<u64> {
    (Refused::from_code(reason) == Some(Refused::RateLimited)).then_some(1)
}

/// Refuses `party` on `route` with `r`: logged with the party and the code only.
fn refuse(party: &Party, route: &'static str, r: Refused) -> AppError {
    tracing::warn!(party = %party, route, reason = r.code(), "広域交付 refused");
    AppError(r.error(party))
}

/// A party's name without the URI prefix (`window:131016:W01`), as the logs write it.
fn short(p: &Party) -> String {
    p.uri().trim_start_matches(URI_PREFIX).to_owned()
}

/// `POST /v1/window/wide-area-copy`: what the window sends for its clerk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CopyRequest {
    /// The resident's 住民票コード (as on their card or notice).
    pub resident_code: ResidentCode,
    /// The date of birth shown on the resident's identity document (`YYYY-MM-DD`); it must
    /// match the register.
    #[schema(value_type = String, format = Date)]
    pub date_of_birth: Date,
    /// Whether the resident asked for the 住民票コード on the copy (default: no).
    #[serde(default)]
    pub with_resident_code: bool,
}

/// `POST /v1/wide-area/request`: what a municipality's node relays to the national node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RelayRequest {
    /// The resident.
    pub resident_code: ResidentCode,
    /// The date of birth the clerk checked.
    #[schema(value_type = String, format = Date)]
    pub date_of_birth: Date,
    /// Whether the 住民票コード is printed.
    #[serde(default)]
    pub with_resident_code: bool,
    /// The window that asked (a window of the calling municipality, which authenticated it).
    #[schema(value_type = String)]
    pub window: Party,
    /// Its clerk (a clerk of the calling municipality, whose signature it verified).
    #[schema(value_type = String)]
    pub clerk: Party,
}

/// `POST /v1/wide-area/issue`: what the national node asks of the resident's municipality.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueRequest {
    /// The resident.
    pub resident_code: ResidentCode,
    /// The date of birth the clerk checked.
    #[schema(value_type = String, format = Date)]
    pub date_of_birth: Date,
    /// Whether the 住民票コード is printed.
    #[serde(default)]
    pub with_resident_code: bool,
    /// The requesting municipality (the national node's caller).
    #[schema(value_type = String)]
    pub requester: LgCode,
    /// Its window.
    #[schema(value_type = String)]
    pub window: Party,
    /// Its clerk.
    #[schema(value_type = String)]
    pub clerk: Party,
}

/// The copy, as the resident's municipality issued it (the answer of all three routes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Copy {
    /// The issuing municipality (the resident's).
    #[schema(value_type = String)]
    pub issuer: LgCode,
    /// The record on the copy.
    pub record: ResidenceRecord,
    /// The PDF signed by the issuing municipality (base64).
    pub pdf: String,
    /// The items printed, as logged (`name,address,date_of_birth,sex[,resident_code]`).
    pub items: String,
}

impl crate::window::WindowRequest for CopyRequest {
    const PATH: &'static str = WINDOW_COPY;
    type Answer = Copy;
}

/// How a municipality node takes part in 広域交付.
#[derive(Debug, Clone, Default)]
pub struct WideArea {
    /// The national node (pinned to `national`, reached with this node's own credential): with
    /// it, this node's windows may ask for other municipalities' residents.
    pub national: Option<Peer>,
    /// Signs the copies this node issues for other municipalities' windows (the same maker as
    /// the kiosks'); without it every such request is refused `wide_area_closed`.
    pub documents: Option<Arc<dyn DocumentMaker>>,
}

/// How the national node relays 広域交付.
#[derive(Debug, Clone)]
pub struct Relay {
    /// Every municipality's node, by code (`--municipal-directory`), each pinned to its
    /// `municipality:CODE` and reached with the national node's credential.
    pub directory: BTreeMap<LgCode, Peer>,
    /// The rate per requesting municipality.
    pub rate: Rate,
}

impl Relay {
    /// No directory: every request is refused `issuer_unavailable` (after the checks).
    pub fn closed() -> Self {
        Self { directory: BTreeMap::new(), rate: DEFAULT_RATE }
    }
}

/// State of a municipality node's 広域交付 routes.
#[derive(Debug)]
pub(crate) struct MunicipalWideArea {
    pub(crate) m: Municipality,
    pub(crate) clerks: Arc<dyn ClerkCheck>,
    pub(crate) wide: WideArea,
}

/// State of the national node's relay.
#[derive(Debug)]
pub(crate) struct NationalRelay {
    national: National,
    relay: Relay,
    /// Per requesting municipality (memory only: a restart starts every bucket full).
    limiter: Mutex<Limiter>,
}

impl NationalRelay {
    pub(crate) fn new(national: National, relay: Relay) -> Self {
        let limits = Limits { queries: relay.rate, ..Limits::default() };
        Self { national, relay, limiter: Mutex::new(Limiter::new(limits)) }
    }
}

/// The routes of a municipality node (its windows' request, and issuing for the national node).
pub(crate) fn municipal_api() -> OpenApiRouter<Arc<MunicipalWideArea>> {
    OpenApiRouter::new().routes(routes!(window_copy)).routes(routes!(issue))
}

/// The national node's relay route.
pub(crate) fn national_api() -> OpenApiRouter<Arc<NationalRelay>> {
    OpenApiRouter::new().routes(routes!(relay))
}

/// Whether `p` is a party of `kind` at municipality `m` (a window or clerk).
fn of(p: &Party, kind: PartyKind, m: &LgCode) -> bool {
    p.kind() == kind && p.station().is_some_and(|(c, _)| c == *m)
}

/// The refusal a peer's error answer carries: its code if it is one of ours, else
/// [`Refused::IssuerUnavailable`] (an authorization refusal between nodes is a
/// misconfiguration, never the window's fault).
fn refusal_of(e: &Error) -> Refused {
    e.peer_answer().and_then(|a| Refused::from_code(a.code())).unwrap_or(Refused::IssuerUnavailable)
}

/// `POST /v1/window/wide-area-copy`.
#[utoipa::path(
    post,
    path = "/v1/window/wide-area-copy",
    tag = "wide-area",
    summary = "広域交付: a copy of the residence record of a resident registered in another municipality",
    description = "A window of this municipality (`urn:jpki:window:<code>:<id>`) with a clerk of it (signature \
headers). The resident code and the date of birth on the resident's identity document; a resident of this \
register is refused (`own_municipality`: issue it locally). Written to the operator log (`wide_area_request`, \
window and clerk, items) before it is relayed to the national node, which finds the resident's municipality; the \
outcome is logged too (`wide_area_received` with the PDF's SHA-256, or `wide_area_failed` with the code). \
The answer is the copy signed by the resident's municipality.",
    params(ClerkSignature),
    request_body(content = CopyRequest, content_type = "application/json"),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The copy", body = Copy),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "No client party, or the clerk not authenticated (`reason`)", body = ErrorBody),
        (status = 403, description = "Not a window of this municipality (`not_own_municipality`, \
`party_not_allowed`), or refused (`own_municipality`, `not_lawful`, `wide_area_closed`); `message` in Japanese",
            body = ErrorBody),
        (status = 404, description = "No current resident with this code and date of birth (`not_found`)", body = ErrorBody),
        (status = 429, description = "This municipality is over its rate (`rate_limited`)", body = ErrorBody),
        (status = 502, description = "The national node or the resident's node could not be reached \
(`issuer_unavailable`)", body = ErrorBody),
        (status = 500, description = "Internal error (no detail)", body = ErrorBody),
    )
)]
async fn window_copy(
    State(w): State<Arc<MunicipalWideArea>>,
    Caller(c): Caller,
    headers: HeaderMap,
    body: RawBody,
) -> AppResult<Json<Copy>> {
    let own = w.m.code().clone();
    let node = Node::Municipality(own.clone());
    let (op, clerk) =
        station_clerk(&node, Route::WindowWideArea, w.clerks.as_ref(), &c, WINDOW_COPY, &headers, &body.0)?;
    let q: CopyRequest = body.json()?;
    let Some(national) = &w.wide.national else { return Err(refuse(&c, WINDOW_COPY, Refused::Closed)) };
    // A resident of this register now is issued at this window, not through the network.
    match w.m.get(&q.resident_code).await {
        Ok(r) if r.status == ResidentStatus::Active && r.municipality == own => {
            return Err(refuse(&c, WINDOW_COPY, Refused::OwnMunicipality));
        }
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let items = crate::kiosk::items(q.with_resident_code);
    let code = q.resident_code.as_str().to_owned();
    let t = now();
    let mut tx = w.m.db().write().await?;
    operator::log(&mut tx, &op, "wide_area_request", &format!("{code} items={items}"), t).await?;
    tx.commit().await.map_err(Error::from)?;
    let relay = RelayRequest {
        resident_code: q.resident_code,
        date_of_birth: q.date_of_birth,
        with_resident_code: q.with_resident_code,
        window: c.clone(),
        clerk,
    };
    let answer = national.post_json::<_, Copy>(RELAY, &relay).await;
    // The copy must be what was asked: the items and a PDF.
    let checked = answer.map_err(|e| refusal_of(&e)).and_then(|copy| {
        let pdf =
            base64::engine::general_purpose::STANDARD.decode(&copy.pdf).map_err(|_| Refused::IssuerUnavailable)?;
        let coded = copy.record.resident_code.is_some();
        if copy.items != items || coded != q.with_resident_code || !pdf.starts_with(b"%PDF-") {
            return Err(Refused::IssuerUnavailable);
        }
        Ok((copy, hex::encode(sha2::Sha256::digest(&pdf))))
    });
    let mut tx = w.m.db().write().await?;
    match checked {
        Ok((copy, digest)) => {
            let subject = format!("{code} issuer={} items={items} pdf-sha256={digest}", copy.issuer);
            operator::log(&mut tx, &op, "wide_area_received", &subject, now()).await?;
            tx.commit().await.map_err(Error::from)?;
            tracing::info!(window = %c, items, "広域交付: copy received from the resident's municipality");
            Ok(Json(copy))
        }
        Err(r) => {
            operator::log(&mut tx, &op, "wide_area_failed", &format!("{code} reason={}", r.code()), now()).await?;
            tx.commit().await.map_err(Error::from)?;
            Err(refuse(&c, WINDOW_COPY, r))
        }
    }
}

/// `POST /v1/wide-area/request` (national node).
#[utoipa::path(
    post,
    path = "/v1/wide-area/request",
    tag = "wide-area",
    summary = "広域交付 relay: the national node finds the resident's municipality and has it issue the copy",
    description = "A municipality's node (`urn:jpki:municipality:<code>`), for a window and clerk of its own \
(else 403 `not_own_municipality`). Held to the municipality's rate (429 `rate_limited`), authorised by the law \
table (purpose `W1-001`, 住民基本台帳法 第12条の4), for a current resident whose resident code and date of birth \
both match (else 404 `not_found`, the same for every case) and who is not registered in the calling \
municipality (403 `own_municipality`). The resident's node (the national node's municipal directory) issues \
the copy; the provision log gets its row (機能区分 広域交付, 提供先 the municipality, window and clerk) before \
the answer leaves, and every refusal is logged there too.",
    request_body(content = RelayRequest, content_type = "application/json"),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The copy", body = Copy),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "No client party", body = ErrorBody),
        (status = 403, description = "Refused (`party_not_allowed`, `not_own_municipality`, `own_municipality`, \
`not_lawful`, `wide_area_closed`)", body = ErrorBody),
        (status = 404, description = "No current resident with this code and date of birth (`not_found`)", body = ErrorBody),
        (status = 429, description = "Over the municipality's rate (`rate_limited`)", body = ErrorBody),
        (status = 502, description = "The resident's node could not be reached (`issuer_unavailable`)", body = ErrorBody),
        (status = 500, description = "Internal error (no detail)", body = ErrorBody),
    )
)]
async fn relay(State(s): State<Arc<NationalRelay>>, Caller(c): Caller, body: RawBody) -> AppResult<Json<Copy>> {
    allow(&Node::National, Route::WideAreaRelay, &c)?;
    let Party::Municipality(requester) = &c else { return Err(deny(&c, RELAY, Denial::WrongParty)) };
    let q: RelayRequest = body.json()?;
    // A municipality speaks only for its own windows and clerks.
    if !of(&q.window, PartyKind::Window, requester) || !of(&q.clerk, PartyKind::Clerk, requester) {
        return Err(deny(&c, RELAY, Denial::NotOwnMunicipality));
    }
    let t = now();
    let items = crate::kiosk::items(q.with_resident_code);
    let destination = format!("{} {} {}", short(&c), short(&q.window), short(&q.clerk));
    let provider = s.national.provider();
    let log = |result: &'static str, fields: &'static str, reason: Option<&'static str>| {
        let row = WideAreaLog {
            purpose: PURPOSE,
            destination: &destination,
            resident: q.resident_code.as_str(),
            fields,
            result,
            reason,
        };
        async move { provider.log_wide_area(t, &row).await }
    };
    let caller = &c;
    let refused = |r: Refused| async move {
        let result = if r == Refused::NotFound { "not_found" } else { "refused" };
        log(result, "", Some(r.code())).await?;
        Err::<Json<Copy>, AppError>(refuse(caller, RELAY, r))
    };
    // Every attempt counts against the municipality's rate, found or not.
    let admitted = s.limiter.lock().unwrap_or_else(PoisonError::into_inner).admit(&c.to_string(), Cost::Query, t);
    if admitted.is_err() {
        return refused(Refused::RateLimited).await;
    }
    let fields: BTreeSet<Field> =
        items.split(',').map(str::parse).collect::<Result<_, _>>().map_err(|e| Error::invalid("items", e))?;
    if let Err(r) =
        law::authorize(s.national.law(), AgencyClass::WideAreaIssue, PURPOSE, QueryKind::ByResidentCode, &fields)
    {
        tracing::warn!(reason = r.code(), "the law table does not authorise 広域交付");
        return refused(Refused::NotLawful).await;
    }
    let record = match s.national.record(&q.resident_code).await {
        Ok(r) => Some(r),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    // No oracle: an unknown code, a wrong date of birth and a removed resident answer alike.
    let Some(record) =
        record.filter(|r| r.status == ResidentStatus::Active && r.items.date_of_birth == q.date_of_birth)
    else {
        return refused(Refused::NotFound).await;
    };
    if record.municipality == *requester {
        return refused(Refused::OwnMunicipality).await;
    }
    let Some(issuer) = s.relay.directory.get(&record.municipality) else {
        tracing::warn!(issuer = %record.municipality, "no municipal directory entry for the resident's municipality");
        return refused(Refused::IssuerUnavailable).await;
    };
    let ask = IssueRequest {
        resident_code: q.resident_code.clone(),
        date_of_birth: q.date_of_birth,
        with_resident_code: q.with_resident_code,
        requester: requester.clone(),
        window: q.window.clone(),
        clerk: q.clerk.clone(),
    };
    match issuer.post_json::<_, Copy>(ISSUE, &ask).await {
        Ok(copy) if copy.issuer == record.municipality && copy.items == items => {
            log("provided", items, None).await?;
            tracing::info!(requester = %c, issuer = %record.municipality, items, "広域交付 relayed");
            Ok(Json(copy))
        }
        Ok(_) => {
            tracing::warn!(issuer = %record.municipality, "the resident's node answered another copy than asked");
            refused(Refused::IssuerUnavailable).await
        }
        Err(e) => {
            let r = refusal_of(&e);
            let code = e.peer_answer().map(|a| a.code().to_owned()).unwrap_or_else(|| "unreachable".into());
            tracing::warn!(issuer = %record.municipality, answer = %code, "the resident's node did not issue");
            refused(r).await
        }
    }
}

/// `POST /v1/wide-area/issue`.
#[utoipa::path(
    post,
    path = "/v1/wide-area/issue",
    tag = "wide-area",
    summary = "広域交付: issue a copy of a resident's record for another municipality's window",
    description = "The national node only (`urn:jpki:national`), relaying a window and clerk of the requesting \
municipality. For a resident registered here now whose date of birth matches (else 404 `not_found`); the copy \
is the PDF signed with this municipality's document-signing key (none: 403 `wide_area_closed`), written to the \
operator log (`wide_area_issue`, operator the requesting window and clerk, role `wide_area_window`, the items and \
the requesting municipality) in the transaction that read the record.",
    request_body(content = IssueRequest, content_type = "application/json"),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The copy", body = Copy),
        (status = 400, description = "Malformed body, or a window or clerk not of the requester", body = ErrorBody),
        (status = 401, description = "No client party", body = ErrorBody),
        (status = 403, description = "Not the national node (`party_not_allowed`), the requester is this \
municipality (`own_municipality`), or no document key (`wide_area_closed`)", body = ErrorBody),
        (status = 404, description = "No current resident here with this code and date of birth (`not_found`)",
            body = ErrorBody),
        (status = 500, description = "Internal error (no detail)", body = ErrorBody),
    )
)]
async fn issue(State(w): State<Arc<MunicipalWideArea>>, Caller(c): Caller, body: RawBody) -> AppResult<Json<Copy>> {
    let own = w.m.code().clone();
    allow(&Node::Municipality(own.clone()), Route::WideAreaIssue, &c)?;
    let q: IssueRequest = body.json()?;
    if q.requester == own {
        return Err(refuse(&c, ISSUE, Refused::OwnMunicipality));
    }
    if !of(&q.window, PartyKind::Window, &q.requester) || !of(&q.clerk, PartyKind::Clerk, &q.requester) {
        return Err(
            Error::invalid("window", "the window and clerk must be of the requesting municipality".into()).into()
        );
    }
    let Some(maker) = &w.wide.documents else { return Err(refuse(&c, ISSUE, Refused::Closed)) };
    let t = now();
    let mut tx = w.m.db().write().await?;
    let record = crate::municipal::load(&mut tx, &q.resident_code).await?;
    let Some(record) = record.filter(|r| {
        r.municipality == own && r.status == ResidentStatus::Active && r.items.date_of_birth == q.date_of_birth
    }) else {
        return Err(refuse(&c, ISSUE, Refused::NotFound));
    };
    let (doc, items) = crate::kiosk::residence_record(&own, &record, t, q.with_resident_code)?;
    let pdf = maker.make(&record, t, q.with_resident_code).map_err(|e| {
        tracing::error!(error = %e, "the residence certificate could not be made");
        AppError(Error::Signing { key_id: "document".into(), reason: e })
    })?;
    let who = Operator::at_window(&q.window, &q.clerk)?;
    let op = Operator::new(&who.id, Role::WideAreaWindow)?;
    let subject = format!(
        "{} items={items} requested-by={} via={}",
        record.resident_code.as_str(),
        short(&Party::Municipality(q.requester.clone())),
        short(&c)
    );
    operator::log(&mut tx, &op, "wide_area_issue", &subject, t).await?;
    tx.commit().await.map_err(Error::from)?;
    tracing::info!(requester = %q.requester, items, "広域交付: copy issued for another municipality's window");
    Ok(Json(Copy {
        issuer: own,
        record: doc,
        pdf: base64::engine::general_purpose::STANDARD.encode(pdf),
        items: items.to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_codes_are_distinct_round_trip_and_map_to_their_statuses() {
        let codes: BTreeSet<&str> = Refused::ALL.iter().map(|r| r.code()).collect();
        assert_eq!(codes.len(), Refused::ALL.len());
        for r in Refused::ALL {
            assert_eq!(Refused::from_code(r.code()), Some(r));
            assert!(!r.message().is_empty() && !r.message().is_ascii(), "{r:?}: a Japanese message");
        }
        assert_eq!(Refused::from_code("party_not_allowed"), None);
        assert_eq!(kind_of("not_found"), ErrorKind::NotFound);
        assert_eq!(kind_of("issuer_unavailable"), ErrorKind::Unavailable);
        assert_eq!(kind_of("own_municipality"), ErrorKind::Forbidden);
        assert_eq!((kind_of("rate_limited"), retry_after("rate_limited")), (ErrorKind::Refused, Some(1)));
        assert_eq!(retry_after("not_found"), None);
    }

    #[test]
    fn the_seed_law_table_authorises_wide_area_copies_and_nothing_more() {
        let t = crate::law::LawTable::seed().unwrap_or_else(|e| panic!("{e}"));
        let fields = |s: &str| -> BTreeSet<Field> {
            s.split(',').map(|f| f.parse().unwrap_or_else(|e| panic!("{e}"))).collect()
        };
        let k = QueryKind::ByResidentCode;
        for with in [false, true] {
            let g = law::authorize(&t, AgencyClass::WideAreaIssue, PURPOSE, k, &fields(crate::kiosk::items(with)));
            assert_eq!(g.map(|g| g.table_ref), Ok("法第12条の4"));
        }
        let over = law::authorize(&t, AgencyClass::WideAreaIssue, PURPOSE, k, &fields("name,change_info"));
        assert_eq!(over.map_err(|r| r.code()), Err("field_not_permitted"));
        let bulk = law::authorize(&t, AgencyClass::WideAreaIssue, PURPOSE, QueryKind::Bulk, &fields("name"));
        assert_eq!(bulk.map_err(|r| r.code()), Err("bulk_not_permitted"));
        let agency = law::authorize(&t, AgencyClass::NationalBody, PURPOSE, k, &fields("name"));
        assert_eq!(agency.map_err(|r| r.code()), Err("agency_not_entitled"));
        assert!(!AgencyClass::WideAreaIssue.for_agencies());
    }

    #[test]
    fn a_municipality_relays_only_its_own_windows_and_clerks() {
        let p = |s: &str| s.parse::<Party>().unwrap_or_else(|e| panic!("{e}"));
        let a: LgCode = "131016".parse().unwrap_or_else(|_| panic!());
        assert!(of(&p("window:131016:W01"), PartyKind::Window, &a));
        assert!(of(&p("clerk:131016:C1"), PartyKind::Clerk, &a));
        assert!(!of(&p("window:271004:W01"), PartyKind::Window, &a));
        assert!(!of(&p("clerk:131016:C1"), PartyKind::Window, &a));
        assert!(!of(&p("municipality:131016"), PartyKind::Window, &a));
    }
}
