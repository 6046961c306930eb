//! The CA as its own service (`jpki serve ca`): the only process that opens the CA's keys and
//! database. Every route is served over mutual TLS with the network credentials; the caller is
//! the [`Party`] of its verified certificate (put into the request by `net::server`), never a
//! header, path or body field.
//!
//! | route | window + clerk | operator | validator | other parties |
//! |---|---|---|---|---|
//! | `POST /v1/issue` | own municipality's residents | — | — | — |
//! | `POST /v1/card/issuer-auth` | own municipality's residents | — | — | — |
//! | `GET /v1/card/profile` | the key algorithm its new cards get | — | — | — |
//! | `POST /v1/revoke` | — | yes | — | — |
//! | `POST /v1/crl/publish` | — | yes | — | — |
//! | `POST /v1/ceremony/{plan,run,rollback}`, `GET /v1/ceremony/status` | — | yes | — | — |
//! | `POST /v1/emergency/{compromise,plan}` | — | yes | — | — |
//! | `GET /v1/reissue/queue` | its municipality's residents to call in | — | — | — |
//! | `POST /v1/responders` | — | — | yes (its own key, by CSR) | — |
//! | `POST /v1/kiosk/holder` | — | — | — | a municipality: the holder of a card that just signed its kiosk challenge |
//! | `GET /v1/status/head`, `/revocations`, `/ca-certificates`, `/certificates`, `/certificates/{serial}` | — | yes | yes | — |
//! | `GET /v1/ca/{slug}/certificate`, `/v1/ca/{slug}/links`, `GET /v1/crl/{slug}/g{n}/{file}` | yes | yes | yes | yes |
//! | `/console/…` (HTML; `service/console.rs`, not in the OpenAPI description) | 403 page | yes | 403 page | 403 page |
//!
//! A window's requests also carry its clerk's signature ([`net::clerk`]): the audit row of
//! every issuance, issuer authentication and refusal names both the window (from its TLS
//! certificate) and the clerk. Refusals are answered `403 {"error": code, "detail": …}` and
//! audited before they are answered; database and key-store errors go out as `500 internal
//! error` with the details only in the server's log.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use identity::party::{Party, PartyKind};
use net::clerk::{ClerkHeaders, ClerkVerifier, HEADER_CERT, HEADER_SIGNATURE, HEADER_TIME};
use net::credential::Trust;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use zeroize::Zeroizing;

use crate::authority::{Authority, IssueRequest, Issued};
use crate::crl::Reason;
use crate::error::Error;
use crate::hierarchy::{CaId, Environment};
use crate::identity_source::IdentitySource;
use crate::revocation::CertKind;
use crate::status::{CertStatus, Certificate, StatusReader};

mod console;

/// Largest page of the revocation stream and of the certificate listing.
pub const MAX_PAGE: i64 = 10_000;

/// The CA service's state.
pub struct CaService {
    authority: Arc<Authority>,
    source: IdentitySource,
    clerks: ClerkVerifier,
    issuer_master: Option<Zeroizing<[u8; 32]>>,
    publish_dir: Option<PathBuf>,
    status: StatusReader,
    clock: fn() -> i64,
    /// The CSRF key of the operator console's forms (this process's memory only).
    csrf: web::Csrf,
    /// If set, the only validators that get responder certificates ([`CaService::restrict_responders`]).
    responder_parties: std::sync::OnceLock<Vec<Party>>,
}

impl std::fmt::Debug for CaService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaService")
            .field("issuer_master", &self.issuer_master.as_ref().map(|_| "[set]"))
            .field("publish_dir", &self.publish_dir)
            .finish_non_exhaustive()
    }
}

impl CaService {
    /// A service over `authority`, reading identity from `source`, authenticating clerks
    /// against the network CA `trust`. `issuer_master` is the card issuer master key (only the
    /// CA service holds it; without it issuer authentication is refused); CRLs are published
    /// under `publish_dir`.
    pub fn new(
        authority: Arc<Authority>,
        source: IdentitySource,
        trust: Trust,
        issuer_master: Option<Zeroizing<[u8; 32]>>,
        publish_dir: Option<PathBuf>,
        clock: fn() -> i64,
    ) -> Arc<Self> {
        let status = StatusReader::over(authority.db().pool().clone());
        let clerks = ClerkVerifier::new(trust);
        let csrf = web::Csrf::new(console::CSRF_TTL);
        Arc::new(Self {
            authority,
            source,
            clerks,
            issuer_master,
            publish_dir,
            status,
            clock,
            csrf,
            responder_parties: std::sync::OnceLock::new(),
        })
    }

    /// Certifies responder keys (`POST /v1/responders`) only for the validators in `parties`;
    /// any other validator is refused (`validator_not_allowed`, audited). Without this, every
    /// validator party may. Set once, before serving; a second call is ignored.
    pub fn restrict_responders(&self, parties: Vec<Party>) {
        let _ = self.responder_parties.set(parties);
    }

    /// The authority.
    pub fn authority(&self) -> &Arc<Authority> {
        &self.authority
    }
}

/// The CA service's routes and their description.
fn api() -> OpenApiRouter<Arc<CaService>> {
    OpenApiRouter::new()
        .routes(routes!(issue))
        .routes(routes!(issuer_auth))
        .routes(routes!(card_profile))
        .routes(routes!(revoke))
        .routes(routes!(publish))
        .routes(routes!(responder))
        .routes(routes!(kiosk_holder))
        .routes(routes!(ceremony_plan))
        .routes(routes!(ceremony_run))
        .routes(routes!(ceremony_status))
        .routes(routes!(ceremony_rollback))
        .routes(routes!(emergency_compromise))
        .routes(routes!(emergency_plan))
        .routes(routes!(reissue_queue))
        .routes(routes!(status_head))
        .routes(routes!(status_revocations))
        .routes(routes!(status_ca_certificates))
        .routes(routes!(status_certificates))
        .routes(routes!(status_certificate))
        .routes(routes!(ca_certificate))
        .routes(routes!(ca_links))
        .routes(routes!(crl_file))
}

const TITLE: &str = "jpki CA service";
const TEXT: &str = "The certificate authorities as a service (`jpki serve ca`): issuance and issuer \
authentication for municipal windows (with their clerks' signatures), revocation, CRL publication, key \
ceremonies and emergency re-issuance for CA operators, the status stream and delegated responder certificates \
for validators, and the CA certificates and CRLs for every party. Errors are `{\"error\": code, \"detail\": \
why}`. Who may call which route: docs/ca-service.md.";

/// The router of the CA service, with its description at `GET /openapi.json`, and the CA
/// operators' console (HTML pages under `/console`, `service/console.rs`; not in the description).
pub fn router(svc: Arc<CaService>) -> axum::Router {
    identity::openapi::serve(api().with_state(svc.clone()), TITLE, TEXT).0.merge(console::router(svc))
}

/// The OpenAPI description the CA service serves at `GET /openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    identity::openapi::document(TITLE, TEXT, [api().into_openapi(), identity::openapi::description_part()])
}

/// An answer that is not a success.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    code: &'static str,
    detail: String,
}

/// The JSON body of every refusal of the CA service (`Refusal` in its OpenAPI description:
/// `ErrorBody` there is the `{error, message}` body of `GET /openapi.json`'s 401).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = Refusal)]
pub struct ErrorBody {
    /// Stable code.
    pub error: String,
    /// Why.
    pub detail: String,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self { status, code, detail: detail.into() }
    }
    fn forbidden(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, detail)
    }
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        match &e {
            Error::Refused { code, detail } => Self::forbidden(code, detail.clone()),
            Error::Invalid { .. } => Self::new(StatusCode::BAD_REQUEST, "invalid", e.to_string()),
            Error::NotFound(_) => Self::new(StatusCode::NOT_FOUND, "not_found", e.to_string()),
            Error::Conflict(_) => Self::new(StatusCode::CONFLICT, "conflict", e.to_string()),
            Error::Identity(_) => {
                tracing::warn!(error = %e, "identity network unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "identity_unavailable",
                    "the identity network did not answer",
                )
            }
            _ => {
                tracing::error!(kind = e.kind(), error = %e, "CA service failure");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
            }
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorBody { error: self.code.into(), detail: self.detail })).into_response()
    }
}

type Answer<T> = Result<T, Refusal>;

fn caller(headers_party: Option<axum::Extension<Party>>) -> Answer<Party> {
    headers_party
        .map(|axum::Extension(p)| p)
        .ok_or_else(|| Refusal::new(StatusCode::UNAUTHORIZED, "unauthenticated", "no client certificate"))
}

fn allow(caller: &Party, kinds: &[PartyKind], route: &'static str) -> Answer<()> {
    if kinds.contains(&caller.kind()) {
        return Ok(());
    }
    tracing::warn!(party = %caller, route, reason = "party_not_allowed", "refused by the CA service");
    Err(Refusal::forbidden("party_not_allowed", format!("{} may not call {route}", caller.kind().as_str())))
}

/// A window and its authenticated clerk: who acts, for the audit trail.
struct Station {
    window: Party,
    clerk: Party,
    municipality: String,
    window_id: String,
}

impl Station {
    fn actor(&self) -> String {
        format!("{} {}", self.window, self.clerk)
    }
}

impl CaService {
    /// Authenticates the window (TLS) and its clerk (signature headers); a refusal is audited
    /// under the window's name.
    async fn station(
        &self,
        caller: Party,
        method: &str,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
        route: &'static str,
    ) -> Answer<Station> {
        allow(&caller, &[PartyKind::Window], route)?;
        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        let clerk_headers = ClerkHeaders { cert: h(HEADER_CERT), time: h(HEADER_TIME), signature: h(HEADER_SIGNATURE) };
        let now = (self.clock)();
        match self.clerks.verify(&caller, method, path, body, clerk_headers, now) {
            Ok(clerk) => {
                let (m, id) = caller
                    .station()
                    .ok_or_else(|| Refusal::forbidden("party_not_allowed", "the window names no municipality"))?;
                Ok(Station { municipality: m.to_string(), window_id: id.to_owned(), window: caller, clerk })
            }
            Err(r) => {
                tracing::warn!(party = %caller, route, reason = r.code(), "clerk not authenticated");
                self.authority.audit(&caller.to_string(), "refused", &format!("{route}: {r}"), now).await?;
                Err(Refusal::new(StatusCode::UNAUTHORIZED, r.code(), r.to_string()))
            }
        }
    }

    /// Audits a refusal to `station` and returns it.
    async fn refuse(&self, s: &Station, route: &str, r: Refusal) -> Refusal {
        if r.status == StatusCode::FORBIDDEN {
            let detail = format!("{route}: {} ({})", r.code, r.detail);
            if let Err(e) = self.authority.audit(&s.actor(), "refused", &detail, (self.clock)()).await {
                return e.into();
            }
            tracing::warn!(window = %s.window, clerk = %s.clerk, route, reason = r.code, "refused");
        }
        r
    }
}

/// `POST /v1/issue`: a window's certificate request (identity items are never in it).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueBody {
    /// Idempotency key (the service scopes it to the window).
    pub request_id: String,
    /// 住民票コード.
    pub resident: String,
    /// The window id the client believes it is (must be its certificate's).
    pub window: String,
    /// Card serial (hex), for the audit trail.
    pub card_serial: String,
    /// Last day of the card (YYYY-MM-DD).
    pub card_expiry: String,
    /// `prod` or `test`.
    pub environment: String,
    /// A renewal (audited as such; the CA supersedes the resident's earlier certificates
    /// either way).
    #[serde(default)]
    pub renew: bool,
    /// PKCS#10 for the signature key (DER, base64).
    pub signature_csr: Option<String>,
    /// PKCS#10 for the authentication key (DER, base64).
    pub authentication_csr: Option<String>,
}

/// One certificate in an answer.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CertBody {
    /// Serial, hex.
    pub serial: String,
    /// `signature` or `authentication`.
    pub kind: String,
    /// Issuing CA slug.
    pub ca: String,
    /// Its generation.
    pub generation: i64,
    /// DER, base64.
    pub der: String,
    /// notAfter (unix seconds).
    pub not_after: i64,
}

/// The answer to `POST /v1/issue`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IssuedBody {
    /// The certificates.
    pub certificates: Vec<CertBody>,
    /// Issuing CA certificates, then roots (DER, base64).
    pub chain: Vec<String>,
}

impl From<&Issued> for IssuedBody {
    fn from(i: &Issued) -> Self {
        Self {
            certificates: i
                .certificates
                .iter()
                .map(|c| CertBody {
                    serial: c.serial.clone(),
                    kind: c.kind.name().to_owned(),
                    ca: c.ca.clone(),
                    generation: c.generation,
                    der: B64.encode(&c.der),
                    not_after: c.not_after,
                })
                .collect(),
            chain: i.chain.iter().map(|d| B64.encode(d)).collect(),
        }
    }
}

fn json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Answer<T> {
    serde_json::from_slice(body).map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, "invalid", format!("body: {e}")))
}

/// The query string of `uri` as `T`, parsed once the caller is authorized (malformed is 400
/// with the error body, like every other refusal).
fn query<T: serde::de::DeserializeOwned>(uri: &Uri) -> Answer<T> {
    Query::<T>::try_from_uri(uri)
        .map(|Query(q)| q)
        .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, "invalid", format!("query: {}", e.body_text())))
}

fn b64(field: &'static str, v: &Option<String>) -> Answer<Option<Vec<u8>>> {
    v.as_deref()
        .map(|s| {
            B64.decode(s).map_err(|_| Refusal::new(StatusCode::BAD_REQUEST, "invalid", format!("{field}: base64")))
        })
        .transpose()
}

fn hex_bytes(field: &'static str, v: &str, max: usize) -> Answer<Vec<u8>> {
    match hex::decode(v) {
        Ok(b) if !b.is_empty() && b.len() <= max => Ok(b),
        _ => Err(Refusal::new(StatusCode::BAD_REQUEST, "invalid", format!("{field}: 1–{max} bytes of hex"))),
    }
}

#[utoipa::path(
    post,
    path = "/v1/issue",
    tag = "window",
    summary = "A resident's certificates, issued at the window",
    description = "Windows (`urn:jpki:window:<municipality>:<id>`) with their clerk's signature headers, for residents registered in the window's municipality; the identity items come from the national node, never the request. Idempotent per window and `request_id`. Every issuance and refusal is audited with the window and the clerk.",
    params(
        ("x-jpki-clerk-certificate" = String, Header, description = "The clerk's certificate (DER, hex)"),
        ("x-jpki-clerk-time" = i64, Header, description = "Signing time (unix seconds, within 5 minutes of the CA's clock)"),
        ("x-jpki-clerk-signature" = String, Header, description = "The clerk's ECDSA P-384 signature (DER, hex) over the window's party, method, path, time and SHA-384 of the body (net::clerk)"),
    ),
    request_body(content = IssueBody, content_type = "application/json"),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The certificates and their chain", body = IssuedBody),
        (status = 400, description = "Malformed request (`invalid`)", body = ErrorBody),
        (status = 401, description = "No client party, or the clerk not authenticated (`error` the reason: `clerk_missing`, `clerk_signature`, …); audited", body = ErrorBody),
        (status = 403, description = "Refused (`error`: `window_mismatch`, `party_not_allowed`, `not_own_municipality`, `resident_unknown`, …); audited", body = ErrorBody),
        (status = 409, description = "The CA's state does not allow it (`conflict`)", body = ErrorBody),
        (status = 500, description = "Database or key-store failure (`internal`, no detail)", body = ErrorBody),
        (status = 503, description = "The identity network did not answer (`identity_unavailable`)", body = ErrorBody),
    )
)]
async fn issue(
    State(svc): State<Arc<CaService>>,
    party: Option<axum::Extension<Party>>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer<Json<IssuedBody>> {
    const ROUTE: &str = "POST /v1/issue";
    let st = svc.station(caller(party)?, "POST", "/v1/issue", &headers, &body, ROUTE).await?;
    let r: IssueBody = json(&body)?;
    let now = (svc.clock)();
    let req = async {
        if r.window != st.window_id {
            return Err(Refusal::forbidden(
                "window_mismatch",
                format!("the request names window {:?}; this connection is window {}", r.window, st.window_id),
            ));
        }
        let card_serial = hex_bytes("card_serial", &r.card_serial, 32)?;
        if r.request_id.is_empty() || r.request_id.len() > 128 {
            return Err(Refusal::new(StatusCode::BAD_REQUEST, "invalid", "request_id: 1–128 characters"));
        }
        Ok(IssueRequest {
            resident_code: r.resident.clone(),
            window: st.window_id.clone(),
            card_expiry: identity::notice::parse_date("card expiry", &r.card_expiry)
                .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, "invalid", e.to_string()))?,
            environment: Environment::parse(&r.environment)?,
            signature_csr: b64("signature_csr", &r.signature_csr)?,
            authentication_csr: b64("authentication_csr", &r.authentication_csr)?,
            // Scoped to the window: a retry finds only this window's own requests.
            request_id: Some(format!("{}/{}", st.window, r.request_id)),
        })
        .map(|req| (req, hex::encode(card_serial)))
    }
    .await;
    let (req, card) = match req {
        Ok(x) => x,
        Err(e) => return Err(svc.refuse(&st, ROUTE, e).await),
    };
    let actor = st.actor();
    match svc.authority.issue_at_window(&actor, &st.municipality, &req, &svc.source, now).await {
        Ok(issued) => {
            let serials: Vec<&str> = issued.certificates.iter().map(|c| c.serial.as_str()).collect();
            let what = if r.renew { "card_renewal" } else { "card_issuance" };
            let detail = format!("card {card}: {}", serials.join(","));
            let window = st.window.to_string();
            svc.authority
                .record_card(&actor, what, &detail, &card, &req.resident_code, &st.municipality, &window, now)
                .await?;
            tracing::info!(window = %st.window, clerk = %st.clerk, certificates = serials.len(), "issued");
            Ok(Json(IssuedBody::from(&issued)))
        }
        Err(e) => Err(svc.refuse(&st, ROUTE, e.into()).await),
    }
}

pub use card::writer::IssuerPurpose;

/// The wire names of [`IssuerPurpose`] (its serde names; a test keeps them equal).
pub const ISSUER_PURPOSES: [&str; 5] = ["issue", "resume", "renew", "pin_reset", "wipe"];

/// The OpenAPI schema of [`IssuerPurpose`] (the `card` crate has no OpenAPI dependency).
fn issuer_purpose_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .description(Some("Why the window asks for an issuer session"))
        .enum_values(Some(ISSUER_PURPOSES))
        .build()
}

/// `POST /v1/card/issuer-auth`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssuerAuthBody {
    /// Why.
    #[schema(schema_with = issuer_purpose_schema)]
    pub purpose: IssuerPurpose,
    /// The resident at the counter (every purpose): must be registered in the window's
    /// municipality.
    pub resident: Option<String>,
    /// The card's serial (hex).
    pub serial: String,
    /// The card's challenge (hex).
    pub challenge: String,
}

/// The issuer's answer.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IssuerAuthAnswer {
    /// HMAC-SHA256 under the card's own issuer key (hex).
    pub mac: String,
}

/// `GET /v1/card/profile?environment=prod|test`.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProfileQuery {
    /// `prod` or `test`.
    pub environment: String,
}

/// The card profile a window's new cards get: the key algorithm the issuing signature CA of
/// the window's prefecture certifies now (P-384 after a switch off RSA).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CardProfile {
    /// `rsa2048` or `p384`.
    pub algorithm: String,
    /// The issuing CA (slug).
    pub ca: String,
    /// Its issuing generation (0: not created yet).
    pub generation: i64,
}

#[utoipa::path(
    get,
    path = "/v1/card/profile",
    tag = "window",
    summary = "The key algorithm the window's new cards get",
    description = "The algorithm the issuing signature CA of the window's prefecture certifies now. Windows only.",
    params(ProfileQuery),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The profile", body = CardProfile),
        (status = 400, description = "Unknown environment or malformed query (`invalid`)", body = ErrorBody),
        (status = 401, description = "No client party (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "A party the route does not admit (`party_not_allowed`) or another refusal (`error` its code)", body = ErrorBody),
        (status = 500, description = "Database or key-store failure (`internal`, no detail)", body = ErrorBody),
    )
)]
async fn card_profile(
    State(svc): State<Arc<CaService>>,
    party: Option<axum::Extension<Party>>,
    uri: Uri,
) -> Answer<Json<CardProfile>> {
    let w = caller(party)?;
    allow(&w, &[PartyKind::Window], "GET /v1/card/profile")?;
    let q: ProfileQuery = query(&uri)?;
    let env = Environment::parse(&q.environment)?;
    let (code, _) = w.station().ok_or_else(|| Refusal::forbidden("party_not_allowed", "not a window"))?;
    let prefecture = code.as_str().get(..2).unwrap_or_default().to_owned();
    let id = CaId::issuing(crate::hierarchy::Purpose::Signature, env, &prefecture)?;
    let (alg, generation) = match svc.authority.current(&id, (svc.clock)()).await {
        Ok(g) => (g.algorithm, g.generation),
        Err(Error::NotFound(_)) => (svc.authority.settings().ca_algorithm, 0),
        Err(e) => return Err(e.into()),
    };
    Ok(Json(CardProfile {
        algorithm: crate::authority::card_key_algorithm(alg).name().into(),
        ca: id.slug(),
        generation,
    }))
}

#[utoipa::path(
    post,
    path = "/v1/card/issuer-auth",
    tag = "window",
    summary = "The card issuer's answer to a card's challenge",
    description = "HMAC-SHA256 under the card's own issuer key (diversified from the master key only this service holds), for a resident registered in the window's municipality; audited before the answer leaves.",
    params(
        ("x-jpki-clerk-certificate" = String, Header, description = "The clerk's certificate (DER, hex)"),
        ("x-jpki-clerk-time" = i64, Header, description = "Signing time (unix seconds, within 5 minutes of the CA's clock)"),
        ("x-jpki-clerk-signature" = String, Header, description = "The clerk's ECDSA P-384 signature (DER, hex) over the window's party, method, path, time and SHA-384 of the body (net::clerk)"),
    ),
    request_body(content = IssuerAuthBody, content_type = "application/json"),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The MAC", body = IssuerAuthAnswer),
        (status = 400, description = "Malformed request (`invalid`)", body = ErrorBody),
        (status = 401, description = "No client party, or the clerk not authenticated (`error` the reason: `clerk_missing`, `clerk_signature`, …); audited", body = ErrorBody),
        (status = 403, description = "Refused (`error`: `no_issuer_key`, `resident_unknown`, `not_own_municipality`, `card_of_another_resident`, `card_unknown`, …); audited", body = ErrorBody),
        (status = 500, description = "Database or key-store failure (`internal`, no detail)", body = ErrorBody),
        (status = 503, description = "The identity network did not answer (`identity_unavailable`)", body = ErrorBody),
    )
)]
async fn issuer_auth(
    State(svc): State<Arc<CaService>>,
    party: Option<axum::Extension<Party>>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer<Json<IssuerAuthAnswer>> {
    const ROUTE: &str = "POST /v1/card/issuer-auth";
    let st = svc.station(caller(party)?, "POST", "/v1/card/issuer-auth", &headers, &body, ROUTE).await?;
    let r: IssuerAuthBody = json(&body)?;
    let now = (svc.clock)();
    let checked = async {
        let serial = hex_bytes("serial", &r.serial, 32)?;
        let challenge = hex_bytes("challenge", &r.challenge, 64)?;
        let master = svc
            .issuer_master
            .as_ref()
            .ok_or_else(|| Refusal::forbidden("no_issuer_key", "this CA service holds no card issuer key"))?;
        // Every purpose names the resident at the counter, registered in this municipality:
        // an issuer session (which could also reset a PIN) is never granted for a card of
        // nobody in particular.
        match &r.resident {
            None => return Err(Refusal::new(StatusCode::BAD_REQUEST, "invalid", "resident: needed")),
            Some(code) => {
                let resident = svc.source.resident(code, now).await?.ok_or_else(|| {
                    Refusal::forbidden("resident_unknown", "no such resident on the national register")
                })?;
                if resident.municipality != st.municipality {
                    return Err(Refusal::forbidden(
                        "not_own_municipality",
                        format!("the resident is not registered in municipality {}", st.municipality),
                    ));
                }
                // The card inventory: a card personalised before opens an issuer session only
                // for its own resident; a renewal or PIN reset needs a card the CA issued.
                let holder = svc.authority.card_holder(&hex::encode(&serial)).await?;
                match (holder, r.purpose) {
                    (Some(h), _) if h != *code => {
                        return Err(Refusal::forbidden(
                            "card_of_another_resident",
                            format!("card {} was issued to another resident", hex::encode(&serial)),
                        ));
                    }
                    (None, IssuerPurpose::Renew | IssuerPurpose::PinReset) => {
                        return Err(Refusal::forbidden(
                            "card_unknown",
                            format!("card {} was not issued by this CA", hex::encode(&serial)),
                        ));
                    }
                    _ => {}
                }
            }
        }
        // The card's own key, diversified from the master and its serial as the card was made
        // (the master never leaves this process).
        let key = Zeroizing::new(card::applet::card_issuer_key(master.as_slice(), &serial).map_err(Error::from)?);
        let mac = card::applet::issuer_mac(key.as_slice(), &challenge, &serial).map_err(Error::from)?;
        Ok((serial, mac))
    }
    .await;
    let (serial, mac) = match checked {
        Ok(x) => x,
        Err(e) => return Err(svc.refuse(&st, ROUTE, e).await),
    };
    let purpose = serde_json::to_value(r.purpose).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    let detail = format!("card {} {purpose} resident {}", hex::encode(&serial), r.resident.as_deref().unwrap_or("-"));
    // Audited before the answer leaves: no issuer session on a card without its row.
    svc.authority.audit(&st.actor(), "card_issuer_auth", &detail, now).await?;
    Ok(Json(IssuerAuthAnswer { mac: hex::encode(mac) }))
}

/// `POST /v1/revoke` (operators).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    /// Serial (hex).
    pub serial: String,
    /// Reason name (`key-compromise`, …).
    pub reason: String,
    /// Why, for the record.
    pub cause: String,
}

#[utoipa::path(
    post,
    path = "/v1/revoke",
    tag = "operator",
    summary = "Revokes a certificate",
    description = "CA operators only.",
    request_body(content = RevokeBody, content_type = "application/json"),
    security(("network_credential" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 400, description = "Malformed body or unknown reason (`invalid`)", body = ErrorBody),
        (status = 401, description = "No client party (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "A party the route does not admit (`party_not_allowed`) or another refusal (`error` its code)", body = ErrorBody),
        (status = 404, description = "No such object (`not_found`)", body = ErrorBody),
        (status = 409, description = "The CA's state does not allow it (`conflict`)", body = ErrorBody),
        (status = 500, description = "Database or key-store failure (`internal`, no detail)", body = ErrorBody),
    )
)]
async fn revoke(
    State(svc): State<Arc<CaService>>,
    party: Option<axum::Extension<Party>>,
    body: Bytes,
) -> Answer<StatusCode> {
    let op = caller(party)?;
    allow(&op, &[PartyKind::Operator], "POST /v1/revoke")?;
    let r: RevokeBody = json(&body)?;
    svc.revoke_as(&op, &r).await?;
    Ok(StatusCode::NO_CONTENT)
}

impl CaService {
    /// An operator's revocation (`POST /v1/revoke` and the console's form): the reason by
    /// name, audited under the operator's party.
    async fn revoke_as(&self, op: &Party, r: &RevokeBody) -> Answer<()> {
        let reason = Reason::parse(&r.reason)?;
        self.authority.revoke(&op.to_string(), &r.serial, reason, &r.cause, (self.clock)()).await?;
        Ok(())
    }

    /// An operator's CRL publication (`POST /v1/crl/publish` and the console's button): every
    /// CRL and ARL into the publish directory, audited under the operator's party.
    async fn publish_as(&self, op: &Party) -> Answer<Vec<crate::publish::Published>> {
        let dir = self
            .publish_dir
            .as_ref()
            .ok_or_else(|| Refusal::new(StatusCode::CONFLICT, "no_publish_dir", "this CA service publishes no CRLs"))?;
        Ok(self.authority.publish_crls(&op.to_string(), dir, (self.clock)(), &|_, _| {}).await?)
    }
}

/// One CRL written by `POST /v1/crl/publish`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PublishedBody {
    /// CA slug.
    pub ca: String,
    /// Generation.
    pub generation: i64,
    /// Shard, or -1 for an ARL.
    pub shard: i64,
    /// CRL number.
    pub number: i64,
    /// Entries.
    pub entries: u64,
    /// Bytes.
    pub bytes: u64,
}

#[utoipa::path(
    post,
    path = "/v1/crl/publish",
    tag = "operator",
    summary = "Publishes every CRL and ARL now",
    description = "CA operators only; into the service's publish directory.",
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The CRLs written", body = Vec<PublishedBody>),
        (status = 401, description = "No client party (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "A party the route does not admit (`party_not_allowed`) or another refusal (`error` its code)", body = ErrorBody),
        (status = 409, description = "This service publishes no CRLs (`no_publish_dir`)", body = ErrorBody),
        (status = 500, description = "Database or key-store failure (`internal`, no detail)", body = ErrorBody),
    )
)]
async fn publish(
    State(svc): State<Arc<CaService>>,
    party: Option<axum::Extension<Party>>,
) -> Answer<Json<Vec<PublishedBody>>> {
    let op = caller(party)?;
    allow(&op, &[PartyKind::Operator], "POST /v1/crl/publish")?;
    let out = svc.publish_as(&op).await?;
    Ok(Json(
        out.into_iter()
            .map(|p| PublishedBody {
                ca: p.ca,
                generation: p.generation,
                shard: p.shard,
                number: p.number,
                entries: p.entries,
                bytes: p.bytes,
            })
            .collect(),
    ))
}

/// `POST /v1/ceremony/plan` and `/run`: the ceremony file's text.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CeremonyBody {
    /// The ceremony file (TOML).
    pub file: String,
}

/// One step of a ceremony as the service reports it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepBody {
    /// What the step does.
    pub step: String,
    /// Done by this call (`false`: planned, or done by an earlier run).
    pub done_now: bool,
}

#[utoipa::path(
    post,
    path = "/v1/ceremony/plan",
    tag = "ceremony",
    summary = "The steps a ceremony file would take",
    description = "CA operators only; nothing is changed.",
    request_body(content = CeremonyBody, content_type = "application/json"),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The steps (`done_now` false)", body = Vec<StepBody>),
        (status = 400, description = "Malformed body or ceremony file (`invalid`)", body = ErrorBody),
        (status = 401, description = "No client party (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "A party the route does not admit (`party_not_allowed`) or another refusal (`error` its code)", body = ErrorBody),
        (status = 404, description = "No such object (`not_found`)", body = ErrorBody),
        (status = 409, description = "The CA's state does not allow it (`conflict`)", body = ErrorBody),
        (status = 500, description = "Database or key-store failure (`internal`, no detail)", body = ErrorBody),
    )
)]
async fn ceremony_plan(
    State(svc): State<Arc<CaService>>,
    party: Option<axum::Extension<Party>>,
    body: Bytes,
) -> Answer<Json<Vec<StepBody>>> {
    allow(&caller(party)?, &[PartyKind::Operator], "POST /v1/ceremony/plan")?;
    let b: CeremonyBody = json(&body)?;
    let c = crate::ceremony::parse(&b.file)?;
    let p = svc.authority.ceremony_plan(&c, (svc.clock)()).await?;
    Ok(Json(p.steps.iter().map(|s| StepBody { step: s.to_string(), done_now: false }).collect()))
}

#[utoipa::path(
    post,
    path = "/v1/ceremony/run",
    tag = "ceremony",
    summary = "Runs a ceremony file (resumable)",
    description = "CA operators only; each step is audited.",
    request_body(content = CeremonyBody, content_type = "application/json"),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The steps, `done_now` for those done by this call", body = Vec<StepBody>),
        (status = 400, description = "Malformed body or ceremony file (`invalid`)", body = ErrorBody),
        (status = 401, description = "No client party (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "A party the route does not admit (`party_not_allowed`) or another refusal (`error` its code)", body = ErrorBody),
        (status = 404, description = "No such object (`not_found`)", body = ErrorBody),
        (status = 409, description = "The CA's state does not allow it (`conflict`)", body = ErrorBody),
        (status = 500, description = "Database or key-store failure (`internal`, no detail)", body = ErrorBody),
    )
)]
async fn ceremony_run(
    State(svc): State<Arc<CaService>>,
    party: Option<axum::Extension<Party>>,
    body: Bytes,
) -> Answer<Json<Vec<StepBody>>> {
    let op = caller(party)?;
    allow(&op, &[PartyKind::Operator], "POST /v1/ceremony/run")?;
    let b: CeremonyBody = json(&body)?;
    let done = svc.authority.ceremony_run(&op.to_string(), &b.file, (svc.clock)()).await?;
    Ok(Json(done.into_iter().map(|(s, now)| StepBody { step: s.to_string(), done_now: now }).collect()))
}

/// `GET /v1/ceremony/status?ca=`.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatusQuery {
    /// Only this CA.
    pub ca: Option<String>,
}

/// One generation as `GET /v1/ceremony/status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GenerationBody {
    /// CA slug.
    pub ca: String,
    /// Generation.
    pub generation: i64,
    /// Key algorithm.
    pub algorithm: String,
    /// Key state (`pending`, `issuing`, `retired`, `archived`, `rolled back`).
    pub state: String,
    /// Activation (unix seconds).
    pub activation: i64,
    /// notAfter (unix seconds).
    pub not_after: i64,
    /// Subject key identifier, hex.
    pub key_id: String,
    /// Certificates issued.
    pub issued: i64,
    /// Link certificates: `direction serial signer-generation`.
    pub links: Vec<String>,
    /// Ceremony progress: steps done and in all.
    #[schema(value_type = Option<Vec<i64>>, min_items = 2, max_items = 2)]
    pub ceremony: Option<(i64, i64)>,
}

#[utoipa::path(
    get,
    path = "/v1/ceremony/status",
    tag = "ceremony",
    summary = "Every CA generation and its key state",
    description = "CA operators only.",
    params(StatusQuery),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The generations", body = Vec<GenerationBody>),
        (status = 400, description = "Malformed CA slug or query (`invalid`)", body = ErrorBody),
        (status = 401, description = "No client party (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "A party the route does not admit (`party_not_allowed`) or another refusal (`error` its code)", body = ErrorBody),
        (status = 500, description = "Database or key-store failure (`internal`, no detail)", body = ErrorBody),
    )
)]
async fn ceremony_status(
    State(svc): State<Arc<CaService>>,
    party: Option<axum::Extension<Party>>,
    uri: Uri,
) -> Answer<Json<Vec<GenerationBody>>> {
    allow(&caller(party)?, &[PartyKind::Operator], "GET /v1/ceremony/status")?;
    let q: StatusQuery = query(&uri)?;
    let id = q.ca.as_deref().map(CaId::parse).transpose()?;
    let all = svc.authority.ceremony_status(id.as_ref(), (svc.clock)()).await?;
    Ok(Json(
        all.into_iter()
            .map(|s| GenerationBody {
                ca: s.generation.ca.slug(),
                generation: s.generation.generation,
                algorithm: s.generation.algorithm.name().into(),
                state: s.state.name().into(),
                activation: s.generation.activation,
                not_after: s.generation.not_after,
                key_id: hex::encode(&s.generation.key_id),
                issued: s.issued,
                links: s.links.iter().map(|(serial, d, g)| format!("{} {serial} g{g}", d.name())).collect(),
                ceremony: s.ceremony,
            })
            .collect(),
    ))
}

/// `POST /v1/ceremony/rollback`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    /// CA slug.
    pub ca: String,
    /// The generation to roll back.
    pub generation: i64,
}

#[utoipa::path(
    post,
    path = "/v1/ceremony/rollback",
    tag = "ceremony",
    summary = "Rolls back a generation that has not issued",
    description = "CA operators only; audited.",
    request_body(content = RollbackBody, content_type = "application/json"),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "What was done", body = Vec<String>),
        (status = 400, description = "Malformed request (`invalid`)", body = ErrorBody),
        (status = 401, description = "No client party (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "A party the route does not admit (`party_not_allowed`) or another refusal (`error` its code)", body = ErrorBody),
        (status = 404, description = "No such object (`not_found`)", body = ErrorBody),
        (status = 409, description = "The CA's state does not allow it (`conflict`)", body = ErrorBody),
        (status = 500, description = "Database or key-store failure (`internal`, no detail)", body = ErrorBody),
    )
)]
async fn ceremony_rollback(
    State(svc): State<Arc<CaService>>,
    party: Option<axum::Extension<Party>>,
    body: Bytes,
) -> Answer<Json<Vec<String>>> {
    let op = caller(party)?;
    allow(&op, &[PartyKind::Operator], "POST /v1/ceremony/rollback")?;
    let b: RollbackBody = json(&body)?;
    let id = CaId::parse(&b.ca)?;
    Ok(Json(svc.authority.rollback(&op.to_string(), &id, b.generation, (svc.clock)()).await?))
}

/// `POST /v1/emergency/compromise` and `/plan`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmergencyBody {
    /// CA slug.
    pub ca: String,
    /// The compromised generation.
    pub generation: i64,
    /// Plan: residents to look up in this call (1–10,000).
    #[serde(default)]
    pub limit: Option<i64>,
}

/// What a compromise revoked.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CompromisedBody {
    /// The generation's own CA certificate, revoked now.
    pub ca_certificate: Option<String>,
    /// Certificates it issued, revoked now.
    pub revoked: u64,
    /// The revocation sequence after them.
    pub head: i64,
}

/// Progress of a re-issuance plan.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlanBody {
    /// Residents holding a certificate of the generation.
    pub total: i64,
    /// Planned so far.
    pub planned: i64,
    /// Per municipality: `[code, queued, done]`.
    #[schema(value_type = Vec<Vec<serde_json::Value>>)]
    pub by_municipality: Vec<(String, i64, i64)>,
}

#[utoipa::path(
    post,
    path = "/v1/emergency/compromise",
    tag = "emergency",
    summary = "Revokes a compromised generation and everything it issued",
    description = "CA operators only; audited.",
    request_body(content = EmergencyBody, content_type = "application/json"),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "What was revoked", body = CompromisedBody),
        (status = 400, description = "Malformed request (`invalid`)", body = ErrorBody),
        (status = 401, description = "No client party (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "A party the route does not admit (`party_not_allowed`) or another refusal (`error` its code)", body = ErrorBody),
        (status = 404, description = "No such object (`not_found`)", body = ErrorBody),
        (status = 409, description = "The CA's state does not allow it (`conflict`)", body = ErrorBody),
        (status = 500, description = "Database or key-store failure (`internal`, no detail)", body = ErrorBody),
    )
)]
async fn emergency_compromise(
    State(svc): State<Arc<CaService>>,
    party: Option<axum::Extension<Party>>,
    body: Bytes,
) -> Answer<Json<CompromisedBody>> {
    let op = caller(party)?;
    allow(&op, &[PartyKind::Operator], "POST /v1/emergency/compromise")?;
    let b: EmergencyBody = json(&body)?;
    let id = CaId::parse(&b.ca)?;
    let c = svc.authority.compromise(&op.to_string(), &id, b.generation, (svc.clock)()).await?;
    Ok(Json(CompromisedBody { ca_certificate: c.ca_certificate, revoked: c.revoked, head: c.head }))
}

#[utoipa::path(
    post,
    path = "/v1/emergency/plan",
    tag = "emergency",
    summary = "Plans re-issuance after a compromise, a bounded number of residents per call",
    description = "CA operators only; call again until `planned` equals `total`.",
    request_body(content = EmergencyBody, content_type = "application/json"),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "Progress", body = PlanBody),
        (status = 400, description = "Malformed request (`invalid`)", body = ErrorBody),
        (status = 401, description = "No client party (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "A party the route does not admit (`party_not_allowed`) or another refusal (`error` its code)", body = ErrorBody),
        (status = 404, description = "No such object (`not_found`)", body = ErrorBody),
        (status = 409, description = "The CA's state does not allow it (`conflict`)", body = ErrorBody),
        (status = 500, description = "Database or key-store failure (`internal`, no detail)", body = ErrorBody),
        (status = 503, description = "The identity network did not answer (`identity_unavailable`)", body = ErrorBody),
    )
)]
async fn emergency_plan(
    State(svc): State<Arc<CaService>>,
    party: Option<axum::Extension<Party>>,
    body: Bytes,
) -> Answer<Json<PlanBody>> {
    let op = caller(party)?;
    allow(&op, &[PartyKind::Operator], "POST /v1/emergency/plan")?;
    let b: EmergencyBody = json(&body)?;
    let id = CaId::parse(&b.ca)?;
    let limit = b.limit.unwrap_or(1000);
    let p = svc.authority.reissue_plan(&op.to_string(), &id, b.generation, &svc.source, limit, (svc.clock)()).await?;
    Ok(Json(PlanBody { total: p.total, planned: p.planned, by_municipality: p.by_municipality }))
}

/// One resident a window is to call in.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueuedBody {
    /// 住民票コード.
    pub resident: String,
    /// The compromised CA.
    pub ca: String,
    /// Its generation.
    pub generation: i64,
    /// When queued (unix seconds).
    pub queued_at: i64,
}

#[utoipa::path(
    get,
    path = "/v1/reissue/queue",
    tag = "window",
    summary = "Residents of the window's municipality to call in after a compromise",
    description = "Windows only; at most 1,000.",
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The queue", body = Vec<QueuedBody>),
        (status = 401, description = "No client party (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "A party the route does not admit (`party_not_allowed`) or another refusal (`error` its code)", body = ErrorBody),
        (status = 500, description = "Database or key-store failure (`internal`, no detail)", body = ErrorBody),
    )
)]
async fn reissue_queue(
    State(svc): State<Arc<CaService>>,
    party: Option<axum::Extension<Party>>,
) -> Answer<Json<Vec<QueuedBody>>> {
    let w = caller(party)?;
    allow(&w, &[PartyKind::Window], "GET /v1/reissue/queue")?;
    let (code, _) = w.station().ok_or_else(|| Refusal::forbidden("party_not_allowed", "not a window"))?;
    let q = svc.authority.reissue_queue(code.as_str(), 1000).await?;
    Ok(Json(
        q.into_iter()
            .map(|q| QueuedBody {
                resident: q.resident_code,
                ca: q.ca,
                generation: q.generation,
                queued_at: q.queued_at,
            })
            .collect(),
    ))
}

/// `POST /v1/responders`: a validator asks for a delegated OCSP responder certificate for its
/// own key under the current generation of `ca`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResponderBody {
    /// CA slug (`sign-13`, …).
    pub ca: String,
    /// PKCS#10 for the responder key (DER, base64): its signature is the proof of possession.
    pub csr: String,
    /// Validity in days (1–366, never beyond the CA certificate).
    pub days: i64,
    /// The generation to answer for (a live one: pending, issuing or retired); none: the
    /// issuing generation.
    #[serde(default)]
    pub generation: Option<i64>,
}

/// A responder certificate.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ResponderAnswer {
    /// Serial, hex.
    pub serial: String,
    /// CA generation it answers for.
    pub generation: i64,
    /// DER, base64.
    pub certificate: String,
}

#[utoipa::path(
    post,
    path = "/v1/responders",
    tag = "validator",
    summary = "A delegated OCSP responder certificate for the validator's own key",
    description = "Validators only (`urn:jpki:validator:<id>`); the CSR's signature is the proof of possession; a CA key is refused (`ca_key_offered`, audited), and so is a validator the service is not configured to certify (`validator_not_allowed`, audited; `jpki serve ca --responder-validator`).",
    request_body(content = ResponderBody, content_type = "application/json"),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The certificate", body = ResponderAnswer),
        (status = 400, description = "Malformed body, CSR or days (`invalid`)", body = ErrorBody),
        (status = 401, description = "No client party (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "A party the route does not admit (`party_not_allowed`) or another refusal (`error` its code)", body = ErrorBody),
        (status = 404, description = "No such object (`not_found`)", body = ErrorBody),
        (status = 409, description = "The CA's state does not allow it (`conflict`)", body = ErrorBody),
        (status = 500, description = "Database or key-store failure (`internal`, no detail)", body = ErrorBody),
    )
)]
async fn responder(
    State(svc): State<Arc<CaService>>,
    party: Option<axum::Extension<Party>>,
    body: Bytes,
) -> Answer<Json<ResponderAnswer>> {
    let v = caller(party)?;
    allow(&v, &[PartyKind::Validator], "POST /v1/responders")?;
    if let Some(allowed) = svc.responder_parties.get()
        && !allowed.contains(&v)
    {
        let now = (svc.clock)();
        svc.authority.audit(&v.to_string(), "refused", "POST /v1/responders: validator_not_allowed", now).await?;
        tracing::warn!(party = %v, reason = "validator_not_allowed", "refused by the CA service");
        return Err(Refusal::forbidden(
            "validator_not_allowed",
            format!("{v} is not among the validators this CA certifies as OCSP responders"),
        ));
    }
    let r: ResponderBody = json(&body)?;
    let id = CaId::parse(&r.ca)?;
    let csr = b64("csr", &Some(r.csr))?.unwrap_or_default();
    let spki = crate::authority::proof_of_possession(&csr, "responder")?;
    // A responder key is never a CA key (a validator that held one could sign certificates).
    for g in svc.authority.generations().await? {
        let ca_spki =
            der::Encode::to_der(g.cert()?.tbs_certificate().subject_public_key_info()).map_err(Error::from)?;
        if ca_spki == spki {
            let now = (svc.clock)();
            let detail = format!("POST /v1/responders: ca_key_offered ({} g{})", g.ca.slug(), g.generation);
            svc.authority.audit(&v.to_string(), "refused", &detail, now).await?;
            return Err(Refusal::forbidden("ca_key_offered", "a CA key cannot be a responder key"));
        }
    }
    let now = (svc.clock)();
    let c = svc.authority.issue_responder(&v.to_string(), &id, r.generation, &spki, r.days, now).await?;
    Ok(Json(ResponderAnswer { serial: c.serial, generation: c.generation, certificate: B64.encode(&c.der) }))
}

/// `POST /v1/kiosk/holder`: what a municipality node sends.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KioskHolderBody {
    /// The card's authentication certificate (DER, base64).
    pub certificate: String,
    /// The message the card signed (`identity::kiosk::SignedChallenge`, base64).
    pub message: String,
    /// The card's signature over it (base64).
    pub signature: String,
}

/// `POST /v1/kiosk/holder`: whose card it is.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KioskHolderAnswer {
    /// The resident the certificate was issued to.
    pub resident_code: String,
    /// The certificate's serial (hex).
    pub serial: String,
}

#[utoipa::path(
    post,
    path = "/v1/kiosk/holder",
    tag = "kiosk",
    summary = "The resident a card's authentication certificate was issued to, while the card signs for a kiosk",
    description = "Municipality nodes only (コンビニ交付, docs/kiosk.md). Answered only if the certificate is, byte for \
byte, an authentication certificate this CA issued; the card's signature over the message verifies with it; and the \
message is a kiosk challenge of the calling municipality that has not expired (and expires within 5 minutes), \
and only to the municipality whose register holds the resident now (`not_resident_here` otherwise, naming no one). \
Never by serial alone. Every answer and refusal is audited under the municipality (serial and kiosk only).",
    request_body(content = KioskHolderBody, content_type = "application/json"),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The holder", body = KioskHolderAnswer),
        (status = 400, description = "Malformed body (`invalid`)", body = ErrorBody),
        (status = 401, description = "No client party (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "Not a municipality (`party_not_allowed`), another municipality's or a stale \
message (`not_own_message`, `message_stale`), a signature that does not verify (`bad_signature`), or a certificate \
this CA did not issue as an authentication certificate (`certificate_unknown`), or a holder not on the calling \
municipality's register now (`not_resident_here`)", body = ErrorBody),
        (status = 500, description = "Database failure or no answer from the identity network (`internal`, no detail)", body = ErrorBody),
    )
)]
async fn kiosk_holder(
    State(svc): State<Arc<CaService>>,
    party: Option<axum::Extension<Party>>,
    body: Bytes,
) -> Answer<Json<KioskHolderAnswer>> {
    let m = caller(party)?;
    allow(&m, &[PartyKind::Municipality], "POST /v1/kiosk/holder")?;
    let q: KioskHolderBody = json(&body)?;
    let (cert, message, signature) = (
        b64("certificate", &Some(q.certificate))?.unwrap_or_default(),
        b64("message", &Some(q.message))?.unwrap_or_default(),
        b64("signature", &Some(q.signature))?.unwrap_or_default(),
    );
    let now = (svc.clock)();
    let signed = identity::kiosk::SignedChallenge::parse(&message)
        .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, "invalid", format!("message: {e}")))?;
    let serial = crate::kiosk::serial_of(&cert)?;
    let found = crate::kiosk::holder(svc.authority.db(), &cert).await?;
    let refused: Option<(&'static str, String)> = if Party::Municipality(signed.municipality.clone()) != m {
        Some(("not_own_message", "the card signed for another municipality".into()))
    } else if signed.expires_at < now || signed.expires_at > now + identity::kiosk::MAX_TTL_SECS {
        Some(("message_stale", "the kiosk challenge has expired or is too long-lived".into()))
    } else if found.is_none() {
        Some(("certificate_unknown", format!("{serial} is not an authentication certificate issued here")))
    } else if !crate::kiosk::verify_card_signature(&cert, &message, &signature)? {
        Some(("bad_signature", "the card's signature does not verify".into()))
    } else {
        None
    };
    let (resident, serial) = match (refused, found) {
        (None, Some(f)) => f,
        (r, _) => {
            let (code, detail) = r.unwrap_or(("certificate_unknown", String::new()));
            tracing::warn!(party = %m, route = "POST /v1/kiosk/holder", reason = code, "kiosk holder refused");
            svc.authority.audit(&m.to_string(), "refused", &format!("POST /v1/kiosk/holder: {code}"), now).await?;
            return Err(Refusal::forbidden(code, detail));
        }
    };
    // Only the municipality whose register holds the resident now learns who it is: a kiosk
    // that asked the wrong municipality (or a municipality the resident has left) gets a
    // refusal that names no one.
    let here = svc.source.resident(&resident, now).await?.is_some_and(|r| {
        r.status == identity::person::ResidentStatus::Active
            && Party::Municipality(signed.municipality.clone()) == m
            && r.municipality == signed.municipality.as_str()
    });
    if !here {
        tracing::warn!(party = %m, route = "POST /v1/kiosk/holder", reason = "not_resident_here", "kiosk holder refused");
        svc.authority
            .audit(&m.to_string(), "refused", &format!("POST /v1/kiosk/holder: not_resident_here ({serial})"), now)
            .await?;
        return Err(Refusal::forbidden(
            "not_resident_here",
            "the card's holder is not on the calling municipality's register",
        ));
    }
    svc.authority.audit(&m.to_string(), "kiosk_holder", &format!("{serial} for {}", signed.kiosk), now).await?;
    Ok(Json(KioskHolderAnswer { resident_code: resident, serial }))
}

const STATUS_READERS: &[PartyKind] = &[PartyKind::Validator, PartyKind::Operator];

/// `GET /v1/status/head`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HeadBody {
    /// The last revocation sequence number committed.
    pub head: i64,
}

#[utoipa::path(
    get,
    path = "/v1/status/head",
    tag = "status",
    summary = "The last revocation sequence number committed",
    description = "Validators and CA operators. With `after` (the caller's position) and `wait_ms`, a long poll: the \
answer comes once the head is past `after`, or after `wait_ms`.",
    params(HeadWait),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The head", body = HeadBody),
        (status = 400, description = "Malformed query or `wait_ms` over 10,000 (`invalid`)", body = ErrorBody),
        (status = 401, description = "No client party (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "A party the route does not admit (`party_not_allowed`) or another refusal (`error` its code)", body = ErrorBody),
        (status = 500, description = "Database or key-store failure (`internal`, no detail)", body = ErrorBody),
    )
)]
async fn status_head(
    State(svc): State<Arc<CaService>>,
    party: Option<axum::Extension<Party>>,
    uri: Uri,
) -> Answer<Json<HeadBody>> {
    allow(&caller(party)?, STATUS_READERS, "GET /v1/status/head")?;
    let w: HeadWait = query(&uri)?;
    if w.wait_ms > identity::client::MAX_WAIT_MS {
        return Err(Refusal::new(StatusCode::BAD_REQUEST, "invalid", format!("wait_ms {} is over 10000", w.wait_ms)));
    }
    // Subscribe before reading: a commit after the read wakes the wait.
    let mut changes = svc.authority.db().watch();
    let mut head = svc.status.head().await?;
    let slot = if w.wait_ms > 0 { STATUS_WAITS.clone().try_acquire_owned().ok() } else { None };
    if let (Some(after), Some(_slot)) = (w.after, slot) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(w.wait_ms);
        // Woken by this process's commits (the feed follower, operator revocations); every
        // 100 ms it reads the head anyway, for revocations committed on other paths or by
        // another process on the same database.
        while head <= after && tokio::time::Instant::now() < deadline {
            let tick = deadline.min(tokio::time::Instant::now() + std::time::Duration::from_millis(100));
            let _ = tokio::time::timeout_at(tick, changes.changed()).await;
            head = svc.status.head().await?;
        }
    }
    Ok(Json(HeadBody { head }))
}

/// The long poll of `GET /v1/status/head`.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HeadWait {
    /// The caller's position in the revocation stream: the answer waits until the head is past it.
    pub after: Option<i64>,
    /// How long to wait, in ms (0–10,000; 0, the default: answer at once).
    #[serde(default)]
    #[param(maximum = 10_000)]
    pub wait_ms: u64,
}

/// Long polls of the status head waiting at once (validators: a handful); past it a poll is
/// answered at once.
static STATUS_WAITS: std::sync::LazyLock<Arc<tokio::sync::Semaphore>> =
    std::sync::LazyLock::new(|| Arc::new(tokio::sync::Semaphore::new(64)));

/// Paging of the revocation stream.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Revocations with seq greater than this.
    #[serde(default)]
    pub after: i64,
    /// At most this many (1–[`MAX_PAGE`]).
    #[serde(default = "default_limit")]
    pub limit: i64,
}

fn default_limit() -> i64 {
    1000
}

/// One revocation of the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RevocationBody {
    /// Gapless sequence number (commit order).
    pub seq: i64,
    /// Serial, hex.
    pub serial: String,
    /// Issuing CA slug.
    pub issuer_slug: String,
    /// Issuing CA generation.
    pub issuer_generation: i64,
    /// revocationDate (unix seconds).
    pub revoked_at: i64,
    /// CRLReason code.
    pub reason: i64,
}

#[utoipa::path(
    get,
    path = "/v1/status/revocations",
    tag = "status",
    summary = "A page of the revocation stream, in commit order",
    description = "Validators and CA operators. Gapless `seq`: a reader that keeps its cursor never misses a revocation.",
    params(StreamQuery),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The revocations after `after`", body = Vec<RevocationBody>),
        (status = 400, description = "`limit` not 1–10,000, `after` negative, or malformed query (`invalid`)", body = ErrorBody),
        (status = 401, description = "No client party (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "A party the route does not admit (`party_not_allowed`) or another refusal (`error` its code)", body = ErrorBody),
        (status = 500, description = "Database or key-store failure (`internal`, no detail)", body = ErrorBody),
    )
)]
async fn status_revocations(
    State(svc): State<Arc<CaService>>,
    party: Option<axum::Extension<Party>>,
    uri: Uri,
) -> Answer<Json<Vec<RevocationBody>>> {
    allow(&caller(party)?, STATUS_READERS, "GET /v1/status/revocations")?;
    let q: StreamQuery = query(&uri)?;
    if !(1..=MAX_PAGE).contains(&q.limit) || q.after < 0 {
        return Err(Refusal::new(StatusCode::BAD_REQUEST, "invalid", format!("limit 1–{MAX_PAGE}, after ≥ 0")));
    }
    let page = svc.status.revocations_after(q.after, q.limit).await?;
    Ok(Json(
        page.into_iter()
            .map(|r| RevocationBody {
                seq: r.seq,
                serial: r.serial,
                issuer_slug: r.issuer_slug,
                issuer_generation: r.issuer_generation,
                revoked_at: r.revoked_at,
                reason: r.reason as i64,
            })
            .collect(),
    ))
}

/// A CA generation's certificate.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CaCertBody {
    /// CA slug.
    pub ca: String,
    /// Generation.
    pub generation: i64,
    /// DER, base64.
    pub certificate: String,
    /// Subject key identifier, hex.
    pub key_id: String,
    /// Key state (`pending`, `issuing`, `retired`, `archived`, `rolled back`).
    #[serde(default)]
    pub state: String,
}

#[utoipa::path(
    get,
    path = "/v1/status/ca-certificates",
    tag = "status",
    summary = "Every CA generation's certificate and key state",
    description = "Validators and CA operators.",
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The CA certificates", body = Vec<CaCertBody>),
        (status = 401, description = "No client party (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "A party the route does not admit (`party_not_allowed`) or another refusal (`error` its code)", body = ErrorBody),
        (status = 500, description = "Database or key-store failure (`internal`, no detail)", body = ErrorBody),
    )
)]
async fn status_ca_certificates(
    State(svc): State<Arc<CaService>>,
    party: Option<axum::Extension<Party>>,
) -> Answer<Json<Vec<CaCertBody>>> {
    allow(&caller(party)?, STATUS_READERS, "GET /v1/status/ca-certificates")?;
    let states = svc.authority.ceremony_status(None, (svc.clock)()).await?;
    let state_of = |slug: &str, n: i64| {
        states
            .iter()
            .find(|s| s.generation.ca.slug() == slug && s.generation.generation == n)
            .map_or("", |s| s.state.name())
            .to_owned()
    };
    Ok(Json(
        svc.status
            .ca_certificates()
            .await?
            .into_iter()
            .map(|c| CaCertBody {
                state: state_of(&c.ca.slug(), c.generation),
                ca: c.ca.slug(),
                generation: c.generation,
                certificate: B64.encode(&c.certificate),
                key_id: hex::encode(&c.key_id),
            })
            .collect(),
    ))
}

/// One certificate's status.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CertStatusBody {
    /// Serial, hex.
    pub serial: String,
    /// Issuing CA slug.
    pub issuer_slug: String,
    /// Generation.
    pub issuer_generation: i64,
    /// `good`, `revoked` or `not_issued`.
    pub status: String,
    /// When revoked.
    pub revoked_at: Option<i64>,
    /// CRLReason code, when revoked.
    pub reason: Option<i64>,
}

impl From<Certificate> for CertStatusBody {
    fn from(c: Certificate) -> Self {
        let (status, revoked_at, reason) = match c.status {
            CertStatus::Good => ("good", None, None),
            CertStatus::Revoked { at, reason } => ("revoked", Some(at), Some(reason as i64)),
            CertStatus::NotIssued => ("not_issued", None, None),
        };
        CertStatusBody {
            serial: c.serial,
            issuer_slug: c.issuer_slug,
            issuer_generation: c.issuer_generation,
            status: status.into(),
            revoked_at,
            reason,
        }
    }
}

#[utoipa::path(
    get,
    path = "/v1/status/certificates/{serial}",
    tag = "status",
    summary = "One certificate's status",
    description = "Validators and CA operators.",
    params(("serial" = String, Path, description = "Serial, hex (1–32 bytes)")),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "Its status", body = CertStatusBody),
        (status = 400, description = "Serial not 1–32 bytes of hex (`invalid`)", body = ErrorBody),
        (status = 401, description = "No client party (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "A party the route does not admit (`party_not_allowed`) or another refusal (`error` its code)", body = ErrorBody),
        (status = 404, description = "The CA never reserved this serial (`not_found`)", body = ErrorBody),
        (status = 500, description = "Database or key-store failure (`internal`, no detail)", body = ErrorBody),
    )
)]
async fn status_certificate(
    State(svc): State<Arc<CaService>>,
    party: Option<axum::Extension<Party>>,
    Path(serial): Path<String>,
) -> Answer<Json<CertStatusBody>> {
    allow(&caller(party)?, STATUS_READERS, "GET /v1/status/certificates/{serial}")?;
    hex_bytes("serial", &serial, 32)?;
    let c = svc
        .status
        .certificate(&serial.to_ascii_lowercase())
        .await?
        .ok_or_else(|| Refusal::new(StatusCode::NOT_FOUND, "not_found", format!("no certificate {serial}")))?;
    Ok(Json(c.into()))
}

/// Paging of the certificate listing (for pre-signing): by serial.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CertPageQuery {
    /// Certificates whose serial (lower-case hex) sorts after this; empty for the first page.
    #[serde(default)]
    pub after: String,
    /// At most this many (1–[`MAX_PAGE`]).
    #[serde(default = "default_limit")]
    pub limit: i64,
}

/// `GET /v1/status/certificates?after=SERIAL&limit=M`: issued or revoked certificates in
/// serial order, a page at a time (what `StatusReader::certificates` reads in one go).
#[utoipa::path(
    get,
    path = "/v1/status/certificates",
    tag = "status",
    summary = "A page of issued or revoked certificates, in serial order",
    description = "Validators and CA operators. For pre-signing OCSP responses.",
    params(CertPageQuery),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The certificates after `after`", body = Vec<CertStatusBody>),
        (status = 400, description = "`limit` not 1–10,000, `after` not hex, or malformed query (`invalid`)", body = ErrorBody),
        (status = 401, description = "No client party (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "A party the route does not admit (`party_not_allowed`) or another refusal (`error` its code)", body = ErrorBody),
        (status = 500, description = "Database or key-store failure (`internal`, no detail)", body = ErrorBody),
    )
)]
async fn status_certificates(
    State(svc): State<Arc<CaService>>,
    party: Option<axum::Extension<Party>>,
    uri: Uri,
) -> Answer<Json<Vec<CertStatusBody>>> {
    allow(&caller(party)?, STATUS_READERS, "GET /v1/status/certificates")?;
    let q: CertPageQuery = query(&uri)?;
    if !(1..=MAX_PAGE).contains(&q.limit) {
        return Err(Refusal::new(StatusCode::BAD_REQUEST, "invalid", format!("limit 1–{MAX_PAGE}")));
    }
    if !q.after.is_empty() {
        hex_bytes("after", &q.after, 32)?;
    }
    let page = svc.status.certificates_after(&q.after.to_ascii_lowercase(), q.limit).await?;
    Ok(Json(page.into_iter().map(CertStatusBody::from).collect()))
}

/// Which generation: `?generation=N` (default the current one).
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GenerationQuery {
    /// Generation.
    pub generation: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/v1/ca/{slug}/certificate",
    tag = "publication",
    summary = "A CA generation's certificate (DER)",
    description = "Any authenticated party.",
    params(("slug" = String, Path, description = "CA slug (`sign-root`, `sign-13`, …)"), GenerationQuery),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The certificate", content_type = "application/pkix-cert", body = Vec<u8>),
        (status = 400, description = "Malformed slug or query (`invalid`)", body = ErrorBody),
        (status = 401, description = "No client party (`unauthenticated`)", body = ErrorBody),
        (status = 404, description = "No such object (`not_found`)", body = ErrorBody),
        (status = 500, description = "Database or key-store failure (`internal`, no detail)", body = ErrorBody),
    )
)]
async fn ca_certificate(
    State(svc): State<Arc<CaService>>,
    party: Option<axum::Extension<Party>>,
    Path(slug): Path<String>,
    uri: Uri,
) -> Answer<Response> {
    caller(party)?;
    let q: GenerationQuery = query(&uri)?;
    let id = CaId::parse(&slug)?;
    let g = match q.generation {
        Some(n) => svc.authority.generation_of(&id.slug(), n).await?,
        None => svc.authority.current(&id, (svc.clock)()).await?,
    };
    Ok(([(axum::http::header::CONTENT_TYPE, "application/pkix-cert")], g.certificate).into_response())
}

/// The unrevoked link and cross certificates of a root (PEM, oldest first).
#[utoipa::path(
    get,
    path = "/v1/ca/{slug}/links",
    tag = "publication",
    summary = "The unrevoked link and cross certificates of a root (PEM, oldest first)",
    description = "Any authenticated party.",
    params(("slug" = String, Path, description = "CA slug of a root")),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The certificates", content_type = "application/pem-certificate-chain", body = String),
        (status = 400, description = "Malformed slug (`invalid`)", body = ErrorBody),
        (status = 401, description = "No client party (`unauthenticated`)", body = ErrorBody),
        (status = 404, description = "No such object (`not_found`)", body = ErrorBody),
        (status = 500, description = "Database or key-store failure (`internal`, no detail)", body = ErrorBody),
    )
)]
async fn ca_links(
    State(svc): State<Arc<CaService>>,
    party: Option<axum::Extension<Party>>,
    Path(slug): Path<String>,
) -> Answer<Response> {
    caller(party)?;
    let id = CaId::parse(&slug)?;
    let mut pem = String::new();
    for der in svc.authority.links(&id).await? {
        pem.push_str(
            &der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, &der)
                .map_err(|e| Error::from(der::Error::from(e)))?,
        );
    }
    Ok(([(axum::http::header::CONTENT_TYPE, "application/pem-certificate-chain")], pem).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/crl/{slug}/{generation}/{file}",
    tag = "publication",
    summary = "A published CRL or ARL (DER)",
    description = "Any authenticated party. Only names the publisher writes.",
    params(("slug" = String, Path, description = "CA slug"), ("generation" = String, Path, description = "`g` and the generation number (`g1`)", pattern = "^g[0-9]+$"), ("file" = String, Path, description = "`<shard>.crl` or `arl.crl`", pattern = "^([0-9]+|arl)\\.crl$")),
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "The CRL", content_type = "application/pkix-crl", body = Vec<u8>),
        (status = 400, description = "Malformed slug (`invalid`)", body = ErrorBody),
        (status = 401, description = "No client party (`unauthenticated`)", body = ErrorBody),
        (status = 404, description = "No such CRL, or this service publishes none (`not_found`)", body = ErrorBody),
        (status = 500, description = "Database or key-store failure (`internal`, no detail)", body = ErrorBody),
    )
)]
async fn crl_file(
    State(svc): State<Arc<CaService>>,
    party: Option<axum::Extension<Party>>,
    Path((slug, generation, file)): Path<(String, String, String)>,
) -> Answer<Response> {
    caller(party)?;
    let dir = svc
        .publish_dir
        .as_ref()
        .ok_or_else(|| Refusal::new(StatusCode::NOT_FOUND, "not_found", "this CA service publishes no CRLs"))?;
    // Only names the publisher writes: a CA slug, `g<digits>`, `<digits>.crl` or `arl.crl`.
    let id = CaId::parse(&slug)?;
    let gen_ok = generation.strip_prefix('g').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    let file_ok = file
        .strip_suffix(".crl")
        .is_some_and(|n| n == "arl" || (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())));
    if !gen_ok || !file_ok {
        return Err(Refusal::new(StatusCode::NOT_FOUND, "not_found", "no such CRL"));
    }
    let path = dir.join("crl").join(id.slug()).join(&generation).join(&file);
    match tokio::fs::read(&path).await {
        Ok(b) => Ok(([(axum::http::header::CONTENT_TYPE, "application/pkix-crl")], b).into_response()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(Refusal::new(StatusCode::NOT_FOUND, "not_found", "no such CRL"))
        }
        Err(e) => Err(Error::Io(e).into()),
    }
}

/// The kind names on the wire.
pub fn kind_of(name: &str) -> Option<CertKind> {
    [CertKind::Signature, CertKind::Authentication].into_iter().find(|k| k.name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_described_issuer_purposes_are_the_wire_names() {
        for name in ISSUER_PURPOSES {
            let p: IssuerPurpose = serde_json::from_value(serde_json::json!(name)).unwrap();
            assert_eq!(serde_json::to_value(p).unwrap(), serde_json::json!(name));
        }
        use IssuerPurpose::*;
        for p in [Issue, Resume, Renew, PinReset, Wipe] {
            // (A new variant fails this match until it is described.)
            match p {
                Issue | Resume | Renew | PinReset | Wipe => {}
            }
            let name = serde_json::to_value(p).unwrap();
            assert!(ISSUER_PURPOSES.contains(&name.as_str().unwrap()), "{name} is not described");
        }
    }

    #[test]
    fn the_description_is_openapi_3_1_with_every_route() {
        let doc = serde_json::to_value(openapi()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        // Both error bodies are described under their own names.
        assert!(doc["components"]["schemas"]["Refusal"]["properties"]["detail"].is_object());
        assert!(doc["components"]["schemas"]["ErrorBody"]["properties"]["message"].is_object());
        assert_eq!(doc["paths"].as_object().unwrap().len(), 23, "22 routes and /openapi.json");
    }
}
