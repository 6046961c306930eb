//! The CA operators' console: server-rendered HTML pages under `/console`, served by the CA
//! service on its mutual-TLS listener to CA operators only (TLS party `operator:…`).
//!
//! | route | what |
//! |---|---|
//! | `GET /console` | 概要・CA世代: every CA and generation with key state, algorithm, SKI, notAfter, link certificates |
//! | `GET /console/crl`, `POST /console/crl/publish` | each CRL shard's newest number, thisUpdate, nextUpdate, entries; publish now |
//! | `GET /console/responders` | delegated OCSP responder certificates with notAfter |
//! | `GET /console/certificates?serial=HEX`, `POST /console/certificates/revoke` | a certificate's status by serial (never by name); revoke with a reason |
//! | `GET /console/audit` | the audit trail's hash chain verified, and its head |
//! | `GET /console/rotation` | ceremony progress step by step; emergency re-issuance per municipality (counts only) |
//!
//! Every other party gets a 403 page, logged with its party and audited (`refused`) like the
//! JSON routes' refusals. Every form carries a CSRF token bound to the operator's party URI
//! ([`web::Csrf`]); a post without a valid token, or one the browser marks as coming from
//! another site ([`web::csrf::cross_site`]), is refused — logged and audited — before any
//! field of the form is used. The pages call the same functions as the JSON routes
//! ([`CaService::revoke_as`], [`CaService::publish_as`], the status reader, the authority's
//! ceremony and emergency readers); no business logic lives here. The pages themselves
//! (pure functions of what was read) are in [`pages`]; the security headers (CSP without
//! inline code) come from [`web::security_headers`].

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Extension, Form, MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use identity::party::{Party, PartyKind};
use maud::Markup;
use serde::Deserialize;

use super::{Answer, CaService, Refusal, RevokeBody, hex_bytes, query};
use crate::error::Error;

mod pages;

/// How long a form's CSRF token is good for (seconds).
pub(super) const CSRF_TTL: i64 = 2 * 3600;

/// Longest cause an operator may record with a revocation.
const MAX_CAUSE: usize = 200;

/// The console's routes, guarded (operators only), with the shared stylesheet and the
/// security headers.
pub(super) fn router(svc: Arc<CaService>) -> Router {
    Router::new()
        .route("/console", get(overview))
        .route("/console/crl", get(crl))
        .route("/console/crl/publish", post(crl_publish))
        .route("/console/responders", get(responders))
        .route("/console/certificates", get(certificates))
        .route("/console/certificates/revoke", post(revoke))
        .route("/console/audit", get(audit))
        .route("/console/rotation", get(rotation))
        .route_layer(middleware::from_fn_with_state(svc.clone(), guard))
        .with_state(svc)
        .merge(web::assets_router())
        .layer(middleware::from_fn(web::security_headers))
}

/// `METHOD /pattern` of a request (the matched route, never the path with its values).
fn route_of(req: &Request) -> String {
    let pattern = req.extensions().get::<MatchedPath>().map_or("/console", MatchedPath::as_str);
    format!("{} {pattern}", req.method())
}

/// Admits CA operators; every other party gets the 403 page, logged and audited.
async fn guard(State(svc): State<Arc<CaService>>, req: Request, next: Next) -> Response {
    let route = route_of(&req);
    let party = req.extensions().get::<Party>().cloned();
    match party {
        Some(p) if p.kind() == PartyKind::Operator => next.run(req).await,
        Some(p) => {
            tracing::warn!(party = %p, route, reason = "party_not_allowed", "refused by the CA console");
            let detail = format!("{route}: party_not_allowed (the console admits CA operators only)");
            if let Err(e) = svc.authority.audit(&p.to_string(), "refused", &detail, (svc.clock)()).await {
                return internal(e);
            }
            web::message(
                StatusCode::FORBIDDEN,
                "アクセスが拒否されました",
                &format!("このページはCA運用者専用です。接続している主体（{p}）には表示できません。"),
                "CA運用者の資格情報（クライアント証明書）で接続し直してください。この拒否は監査記録に残りました。",
                None,
            )
        }
        None => web::message(
            StatusCode::UNAUTHORIZED,
            "認証されていません",
            "クライアント証明書が提示されていません。",
            "CA運用者の資格情報（クライアント証明書）で接続してください。",
            None,
        ),
    }
}

/// A database or key-store failure: the details go to the log only.
fn internal(e: Error) -> Response {
    tracing::error!(kind = e.kind(), error = %e, "CA console failure");
    web::message(
        StatusCode::INTERNAL_SERVER_ERROR,
        "内部エラー",
        "CAサービスで処理できませんでした。",
        "時間をおいてもう一度お試しください。続く場合はCAサービスのログを確認してください。",
        None,
    )
}

/// A whole console page for `op`.
fn page(op: &Party, title: &str, body: Markup) -> Response {
    Html(pages::page(&op.to_string(), title, body).into_string()).into_response()
}

/// The page of a refused or failed console request (status from the refusal).
fn refused(op: &Party, r: Refusal) -> Response {
    let (title, next) = match (r.status, r.code) {
        (StatusCode::BAD_REQUEST, _) => ("入力が正しくありません", "入力を確かめて、もう一度お試しください。"),
        (StatusCode::NOT_FOUND, _) => ("見つかりません", "シリアル番号などを確かめて、もう一度検索してください。"),
        (StatusCode::CONFLICT, "no_publish_dir") => (
            "CRLを公開できません",
            "このCAサービスは公開ディレクトリなしで起動されています（--publish-dir を指定して起動し直してください）。",
        ),
        (StatusCode::CONFLICT, _) => ("実行できません", "証明書の状態を確かめてください（失効は取り消せません）。"),
        (StatusCode::FORBIDDEN, "csrf_missing" | "csrf_invalid" | "csrf_expired") => {
            ("フォームを受け付けられません", "ページを開き直して、そのページのフォームからもう一度送信してください。")
        }
        (StatusCode::FORBIDDEN, "cross_site") => (
            "他のサイトからの送信は受け付けません",
            "このコンソールのページを直接開き、そのフォームから送信してください。",
        ),
        (StatusCode::FORBIDDEN, _) => ("拒否されました", "拒否の理由を確かめてください。"),
        (StatusCode::SERVICE_UNAVAILABLE, _) => ("住基ネットが応答しません", "時間をおいてもう一度お試しください。"),
        _ => ("内部エラー", "時間をおいてもう一度お試しください。続く場合はCAサービスのログを確認してください。"),
    };
    let status = r.status;
    (status, Html(pages::page(&op.to_string(), title, pages::refusal(r.code, &r.detail, next)).into_string()))
        .into_response()
}

/// A page from what `body` read, or the refusal's page.
fn respond(op: &Party, title: &str, body: Answer<Markup>) -> Response {
    match body {
        Ok(b) => page(op, title, b),
        Err(r) => refused(op, r),
    }
}

impl CaService {
    /// A token for the forms shown to `op` now.
    fn csrf_token(&self, op: &Party) -> String {
        self.csrf.token(&op.to_string(), (self.clock)())
    }

    /// Checks a console post before any of its fields is used: not marked as coming from
    /// another site, and carrying a CSRF token of this process for this operator. A refusal
    /// is logged and audited under the operator's party.
    async fn check_post(
        &self,
        op: &Party,
        route: &'static str,
        headers: &HeaderMap,
        token: Option<&str>,
    ) -> Answer<()> {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
        let refusal = if web::csrf::cross_site(headers, host) {
            Some(Refusal::forbidden("cross_site", "the browser marked the post as coming from another site"))
        } else {
            self.csrf
                .check(&op.to_string(), token, (self.clock)())
                .err()
                .map(|e| Refusal::forbidden(e.code(), "no valid CSRF token for this operator"))
        };
        match refusal {
            None => Ok(()),
            Some(r) => {
                let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
                tracing::warn!(
                    party = %op,
                    route,
                    reason = r.code,
                    host,
                    origin = h("origin"),
                    sec_fetch_site = h("sec-fetch-site"),
                    "console post refused"
                );
                let detail = format!("{route}: {} ({})", r.code, r.detail);
                self.authority.audit(&op.to_string(), "refused", &detail, (self.clock)()).await?;
                Err(r)
            }
        }
    }
}

/// `GET /console`.
async fn overview(State(svc): State<Arc<CaService>>, Extension(op): Extension<Party>) -> Response {
    let now = (svc.clock)();
    let body = async { Ok(pages::overview(&svc.authority.ceremony_status(None, now).await?, now)) }.await;
    respond(&op, "概要・CA世代", body)
}

/// `GET /console/crl`.
async fn crl(State(svc): State<Arc<CaService>>, Extension(op): Extension<Party>) -> Response {
    let now = (svc.clock)();
    let token = svc.csrf_token(&op);
    let body = async {
        let crls = svc.authority.latest_crls().await?;
        Ok(pages::crls(&crls, svc.publish_dir.is_some(), &token, now))
    }
    .await;
    respond(&op, "CRL", body)
}

/// A form with nothing but its token.
#[derive(Debug, Deserialize)]
struct TokenForm {
    csrf: Option<String>,
}

/// `POST /console/crl/publish`: what `POST /v1/crl/publish` does.
async fn crl_publish(
    State(svc): State<Arc<CaService>>,
    Extension(op): Extension<Party>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    const ROUTE: &str = "POST /console/crl/publish";
    let token = form.as_ref().ok().and_then(|Form(f)| f.csrf.as_deref());
    let body = async {
        svc.check_post(&op, ROUTE, &headers, token).await?;
        let published = svc.publish_as(&op).await?;
        tracing::info!(party = %op, crls = published.len(), "CRLs published from the console");
        Ok(pages::published(&published))
    }
    .await;
    respond(&op, "CRLを公開しました", body)
}

/// `GET /console/responders`.
async fn responders(State(svc): State<Arc<CaService>>, Extension(op): Extension<Party>) -> Response {
    let now = (svc.clock)();
    let body = async { Ok(pages::responders(&svc.authority.responders(1000).await?, now)) }.await;
    respond(&op, "OCSP応答者証明書", body)
}

/// `?serial=HEX` of the certificate search.
#[derive(Debug, Deserialize)]
struct SearchQuery {
    #[serde(default)]
    serial: String,
}

/// A serial as typed: 1–32 octets of hex, lower-cased.
fn serial_of(s: &str) -> Answer<String> {
    let s = s.trim();
    hex_bytes("serial", s, 32)?;
    Ok(s.to_ascii_lowercase())
}

/// The status of certificate `serial` and its record: what `GET /v1/status/certificates/{serial}`
/// reads, and the record `jpki ca show` reads.
async fn lookup(svc: &CaService, serial: &str) -> Answer<pages::Found> {
    let status = svc
        .status
        .certificate(serial)
        .await?
        .ok_or_else(|| Refusal::new(StatusCode::NOT_FOUND, "not_found", format!("no certificate {serial}")))?;
    let record = svc.authority.show(serial).await?;
    Ok(pages::Found { status, record })
}

/// `GET /console/certificates[?serial=HEX]`.
async fn certificates(State(svc): State<Arc<CaService>>, Extension(op): Extension<Party>, uri: Uri) -> Response {
    let now = (svc.clock)();
    let token = svc.csrf_token(&op);
    let body = async {
        let q: SearchQuery = query(&uri)?;
        if q.serial.trim().is_empty() {
            return Ok(pages::search(None, None, &token, now));
        }
        let serial = serial_of(&q.serial)?;
        let found = lookup(&svc, &serial).await?;
        Ok(pages::search(Some(&serial), Some(&found), &token, now))
    }
    .await;
    respond(&op, "証明書検索", body)
}

/// The revocation form.
#[derive(Debug, Deserialize)]
struct RevokeForm {
    csrf: Option<String>,
    serial: Option<String>,
    reason: Option<String>,
    cause: Option<String>,
}

/// `POST /console/certificates/revoke`: what `POST /v1/revoke` does, audited under the
/// operator's party.
async fn revoke(
    State(svc): State<Arc<CaService>>,
    Extension(op): Extension<Party>,
    headers: HeaderMap,
    form: Result<Form<RevokeForm>, FormRejection>,
) -> Response {
    const ROUTE: &str = "POST /console/certificates/revoke";
    let now = (svc.clock)();
    let token = form.as_ref().ok().and_then(|Form(f)| f.csrf.as_deref());
    let body = async {
        svc.check_post(&op, ROUTE, &headers, token).await?;
        let Ok(Form(f)) = &form else {
            return Err(Refusal::new(StatusCode::BAD_REQUEST, "invalid", "not a form post"));
        };
        let serial = serial_of(f.serial.as_deref().unwrap_or(""))?;
        let cause = f.cause.as_deref().unwrap_or("").trim();
        if cause.is_empty() || cause.chars().count() > MAX_CAUSE {
            return Err(Refusal::new(StatusCode::BAD_REQUEST, "invalid", format!("cause: 1–{MAX_CAUSE} characters")));
        }
        let r =
            RevokeBody { serial: serial.clone(), reason: f.reason.clone().unwrap_or_default(), cause: cause.into() };
        svc.revoke_as(&op, &r).await?;
        tracing::info!(party = %op, serial, reason = r.reason, "revoked from the console");
        let found = lookup(&svc, &serial).await?;
        Ok(pages::revoked(&found, now))
    }
    .await;
    respond(&op, "証明書を失効させました", body)
}

/// `GET /console/audit`: the whole chain verified (what `jpki ca audit` does) and its head.
async fn audit(State(svc): State<Arc<CaService>>, Extension(op): Extension<Party>) -> Response {
    let body = async {
        let db = svc.authority.db();
        let verified = match crate::audit::read_and_verify(db, 0).await {
            Ok(_) => Ok(()),
            Err(Error::Corrupt { what: "audit trail", detail }) => {
                tracing::error!(detail, "the CA's audit trail does not verify");
                Err(detail)
            }
            Err(e) => return Err(e.into()),
        };
        let (seq, hash) = crate::audit::head(db).await?;
        Ok(pages::audit(verified, seq, &hash))
    }
    .await;
    respond(&op, "監査証跡の検証", body)
}

/// `GET /console/rotation`.
async fn rotation(State(svc): State<Arc<CaService>>, Extension(op): Extension<Party>) -> Response {
    let now = (svc.clock)();
    let body = async {
        let ceremonies = svc.authority.ceremony_progress(now).await?;
        let mut plans = Vec::new();
        for (ca, generation) in svc.authority.reissue_plans().await? {
            let p = svc.authority.reissue_progress(&ca, generation).await?;
            plans.push((ca, generation, p));
        }
        Ok(pages::rotation(&ceremonies, &plans))
    }
    .await;
    respond(&op, "ローテーション", body)
}
