//! The identity operator console (issue 12): HTML pages served by the prefecture and national
//! nodes over their mutual-TLS listener under `/console/…`, to operators only
//! ([`Route::Console`] of the authorization table; any other party gets a 403 page, logged with
//! party and route). Server-rendered with maud through the shared layout ([`web::layout`]),
//! Japanese, keyboard-usable, no inline script or style ([`web::security_headers`]).
//!
//! | route | page |
//! |---|---|
//! | `GET /console/` | 連携状況: chain heads per source here and at the upstream tier, differences marked |
//! | `GET /console/halted` | 停止中の送信元: each halted source with its divergence and a 再開 form |
//! | `POST /console/halted/resume` | 再開: [`replica::resume`] under the operator's party name (CSRF) |
//! | `GET /console/lag` | 遅延: per pulled peer and source, as this process last measured it |
//! | `GET /console/pools` | コードプール (national only): codes handed out and unused per municipality |
//! | `GET /console/statistics?year=Y` | 提供統計: provisions per purpose in fiscal year Y (operator log) |
//!
//! The one action is a POST carrying a CSRF token bound to the operator's party URI
//! ([`web::Csrf`]), refused (403, nothing done) without a valid one or when the browser says
//! the request is cross-site ([`web::csrf::cross_site`]). No URL carries personal data: sources
//! are municipality codes, and no page shows a resident.

use std::sync::Arc;

use axum::extract::{Form, MatchedPath, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use maud::{Markup, html};
use serde::Deserialize;

use crate::authz::{self, Node, Route};
use crate::client::Peer;
use crate::error::{Error, ErrorKind};
use crate::ids::LgCode;
use crate::national::{self, HeadCheck, National};
use crate::operator::{Operator, Role};
use crate::party::Party;
use crate::provision::Provider;
use crate::replica;
use crate::store::{self, Db};

/// How long a page's CSRF token stays good (seconds).
pub const CSRF_TTL: i64 = 30 * 60;

/// What the console of one node reads.
#[derive(Debug)]
pub struct Console {
    db: Db,
    node: Node,
    provider: Provider,
    national: Option<National>,
    /// The upstream nodes whose heads the 連携状況 page compares with this node's: the national
    /// node's prefectures, a prefecture's municipalities (the peers it pulls).
    upstream: Vec<Peer>,
    csrf: web::Csrf,
}

impl Console {
    /// The console of prefecture `code` on `db`, comparing heads with its `municipalities`.
    pub fn prefecture(db: Db, code: crate::ids::PrefectureCode, provider: Provider, municipalities: Vec<Peer>) -> Self {
        Self {
            db,
            node: Node::Prefecture(code),
            provider,
            national: None,
            upstream: municipalities,
            csrf: web::Csrf::new(CSRF_TTL),
        }
    }

    /// The national node's console, comparing heads with its `prefectures` (none: the page
    /// shows this node's heads and says it has no prefecture URLs).
    pub fn national(national: National, prefectures: Vec<Peer>) -> Self {
        Self {
            db: national.db().clone(),
            node: Node::National,
            provider: national.provider().clone(),
            national: Some(national),
            upstream: prefectures,
            csrf: web::Csrf::new(CSRF_TTL),
        }
    }

    fn service(&self) -> String {
        match &self.node {
            Node::Prefecture(c) => format!("都道府県サーバ {} 運用コンソール", c.as_str()),
            _ => "全国サーバ 運用コンソール".to_owned(),
        }
    }

    fn upstream_label(&self) -> &'static str {
        match self.node {
            Node::Prefecture(_) => "市区町村",
            _ => "都道府県サーバ",
        }
    }

    fn operator(&self, c: &Party) -> Result<Operator, Error> {
        let role = match self.node {
            Node::Prefecture(_) => Role::PrefectureOperator,
            _ => Role::NationalOperator,
        };
        Operator::new(&c.to_string(), role)
    }

    fn tier(&self) -> &'static str {
        match self.node {
            Node::Prefecture(_) => "prefecture",
            _ => "national",
        }
    }
}

/// The console's routes with the security headers on every answer, and the shared stylesheet
/// under `/static/`. Merge it into the node's router.
pub fn router(c: Console) -> Router {
    let state = Arc::new(c);
    let pages = Router::new()
        .route("/console", get(|| async { Redirect::permanent("/console/") }))
        .route("/console/", get(heads))
        .route("/console/halted", get(halted))
        .route("/console/halted/resume", post(resume))
        .route("/console/lag", get(lag))
        .route("/console/pools", get(pools))
        .route("/console/statistics", get(statistics))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), operators_only))
        .with_state(state);
    pages.merge(web::assets_router()).layer(axum::middleware::from_fn(web::security_headers))
}

/// Refuses every party but an operator, before any handler runs: a 403 page, logged with the
/// party and the route pattern (no personal data: console URLs carry none).
async fn operators_only(State(c): State<Arc<Console>>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or("/console", |m| m.as_str()).to_owned();
    let Some(party) = req.extensions().get::<Party>().cloned() else {
        tracing::warn!(route = %route, "console request without a client party refused");
        return refusal(StatusCode::UNAUTHORIZED, "client_certificate_missing");
    };
    if let Err(d) = authz::authorize(&c.node, Route::Console, &party) {
        tracing::warn!(party = %party, route = %route, reason = d.code(), "console refused by the authorization table");
        return refusal(StatusCode::FORBIDDEN, d.code());
    }
    next.run(req).await
}

fn refusal(status: StatusCode, code: &str) -> Response {
    web::message(
        status,
        "アクセスできません",
        &format!("この運用コンソールは運用者の証明書でのみ利用できます（理由コード: {code}）。"),
        "運用者（operator）のクライアント証明書を選んで開き直してください。",
        None,
    )
}

/// An error of the node as a page: a client error with its message, a server error without
/// detail (logged).
fn fail(e: Error, back: (&str, &str)) -> Response {
    let (status, title) = match e.kind() {
        ErrorKind::Invalid => (StatusCode::BAD_REQUEST, "入力に誤りがあります"),
        ErrorKind::NotFound => (StatusCode::NOT_FOUND, "見つかりません"),
        ErrorKind::Conflict => (StatusCode::CONFLICT, "実行できません"),
        ErrorKind::Forbidden | ErrorKind::Refused => (StatusCode::FORBIDDEN, "権限がありません"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "内部エラー"),
    };
    if status.is_server_error() {
        tracing::error!(error = %e, "console request failed");
        return web::message(
            status,
            title,
            "内部エラーが発生しました。",
            "しばらくしてから再度お試しください。",
            Some(back),
        );
    }
    web::message(status, title, &e.to_string(), "内容を確かめて、もう一度操作してください。", Some(back))
}

fn page(c: &Console, party: &Party, title: &str, body: Markup) -> Response {
    let service = c.service();
    let who = party.to_string();
    let mut links: Vec<(&str, &str)> =
        vec![("/console/", "連携状況"), ("/console/halted", "停止中の送信元"), ("/console/lag", "遅延")];
    if c.national.is_some() {
        links.push(("/console/pools", "コードプール"));
    }
    links.push(("/console/statistics", "提供統計"));
    let nav = web::Nav { service: &service, links: &links, who: Some(&who), sign_out: None };
    Html(web::layout(title, &nav, body).into_string()).into_response()
}

/// Unix seconds as JST date and time.
fn jst(t: i64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| Some(t.to_offset(time::UtcOffset::from_hms(9, 0, 0).ok()?)))
        .and_then(|t| t.format(&fmt).ok())
        .map_or_else(|| t.to_string(), |s| format!("{s} JST"))
}

/// A chain hash (hex) shortened to its first 16 digits, enough to tell two apart at a glance
/// (64 digits per cell would be noise, also to a screen reader); the full value is in
/// `GET /v1/heads` and in a halt's reason.
fn hash(h: &str) -> Markup {
    let short: String = h.chars().take(16).collect();
    html! { code { (short) @if h.len() > 16 { "…" } } }
}

/// The state of one source as a word (never colour alone).
fn state_of(halted: Option<&str>) -> Markup {
    match halted {
        Some(_) => html! { strong { "停止中" } },
        None => html! { "稼働中" },
    }
}

/// `GET /console/`: 連携状況.
async fn heads(State(c): State<Arc<Console>>, Extension(party): Extension<Party>) -> Response {
    let ours = match store::heads(&c.db).await {
        Ok(h) => h,
        Err(e) => return fail(e, ("/console/", "連携状況へ")),
    };
    // Each upstream node compared on its own, so one unreachable node does not hide the others
    // (national::compare_heads, as `jpki identity compare-heads` uses it).
    let mut compared: Vec<(String, Result<Vec<HeadCheck>, String>)> = Vec::new();
    for p in &c.upstream {
        let r = national::compare_heads(&c.db, std::slice::from_ref(p)).await.map_err(|e| e.to_string());
        compared.push((p.base().to_owned(), r));
    }
    let checks: Vec<&HeadCheck> = compared.iter().filter_map(|(_, r)| r.as_ref().ok()).flatten().collect();
    let differing = checks.iter().filter(|h| !h.equal).count();
    let label = c.upstream_label();
    let body = html! {
        @if c.upstream.is_empty() {
            p.muted { "この局の設定に" (label) "のURLがないため、この局の先頭のみを表示しています。" }
        } @else {
            p role="status" {
                (label) " " (c.upstream.len()) " 局と比較しました。"
                @if differing == 0 { "相違はありません。" } @else { strong { "相違 " (differing) " 件" } "があります。" }
            }
            @for (base, r) in &compared {
                @if let Err(e) = r {
                    div.message role="alert" { p { (label) " " (base) " の先頭を取得できませんでした: " (e) } }
                }
            }
        }
        h2 { "この局の先頭" }
        @if ours.is_empty() {
            p { "この局はまだどの送信元の通知も保持していません。" }
        } @else {
            table {
                caption { "送信元ごとの最大 seq と先頭ハッシュ（先頭16桁）" }
                thead { tr {
                    th scope="col" { "送信元" } th scope="col" { "seq" } th scope="col" { "先頭ハッシュ" }
                    th scope="col" { "状態" }
                    @if !c.upstream.is_empty() {
                        th scope="col" { (label) "の seq" } th scope="col" { (label) "の先頭ハッシュ" } th scope="col" { "比較" }
                    }
                } }
                tbody {
                    @for h in &ours {
                        @let theirs = checks.iter().find(|x| x.source == h.source);
                        tr {
                            th scope="row" { (h.source) }
                            td { (h.seq) }
                            td { (hash(&h.hash)) }
                            td { (state_of(h.halted.as_deref())) }
                            @if !c.upstream.is_empty() {
                                @match theirs {
                                    Some(t) => {
                                        td { (t.prefecture.seq) }
                                        td { (hash(&t.prefecture.hash)) }
                                        td { @if t.equal { "一致" } @else { strong { "相違" } } }
                                    }
                                    None => { td { "—" } td { "—" } td { "上流になし" } }
                                }
                            }
                        }
                    }
                }
            }
        }
        @let missing: Vec<&&HeadCheck> = checks.iter().filter(|x| x.national.is_none()).collect();
        @if !missing.is_empty() {
            h2 { (label) "にだけある送信元" }
            table {
                caption { "この局がまだ保持していない送信元" }
                thead { tr { th scope="col" { "送信元" } th scope="col" { (label) "の seq" } th scope="col" { (label) "の先頭ハッシュ" } } }
                tbody { @for m in &missing { tr { th scope="row" { (m.source) } td { (m.prefecture.seq) } td { (hash(&m.prefecture.hash)) } } } }
            }
        }
    };
    page(&c, &party, "連携状況", body)
}

/// Why [`halted`] was reached after a resume.
#[derive(Debug, Deserialize)]
struct HaltedQuery {
    resumed: Option<String>,
}

/// `GET /console/halted`: 停止中の送信元.
async fn halted(State(c): State<Arc<Console>>, Extension(party): Extension<Party>, uri: Uri) -> Response {
    let resumed =
        Query::<HaltedQuery>::try_from_uri(&uri).ok().and_then(|q| q.0.resumed).and_then(|s| s.parse::<LgCode>().ok());
    let halts = match replica::halts(&c.db).await {
        Ok(h) => h,
        Err(e) => return fail(e, ("/console/", "連携状況へ")),
    };
    let token = c.csrf.token(&party.to_string(), crate::http::now());
    let body = html! {
        @if let Some(s) = &resumed {
            div.notice-ok role="status" {
                p { "送信元 " (s) " の停止を解除しました（運用ログに記録）。次回の取得で、適用済みの先頭から検証し直します。" }
            }
        }
        @if halts.is_empty() {
            p { "停止中の送信元はありません。" }
        } @else {
            p { "チェーンが食い違った、署名が検証できない、または所有規則に反する通知を受け取った送信元は、運用者が調べて再開するまで取得を止めています。" }
            table {
                caption { "停止中の送信元と食い違いの内容（ハッシュは先頭16桁）" }
                thead { tr {
                    th scope="col" { "送信元" } th scope="col" { "適用済み seq" } th scope="col" { "停止した seq" }
                    th scope="col" { "期待したハッシュ" } th scope="col" { "受信したハッシュ" }
                    th scope="col" { "理由" } th scope="col" { "停止日時" } th scope="col" { "操作" }
                } }
                tbody {
                    @for h in &halts {
                        tr {
                            th scope="row" { (h.source) }
                            td { (h.applied_seq) }
                            td { @match h.seq { Some(s) => (s), None => "—" } }
                            td { @match &h.expected { Some(x) => (hash(x)), None => "—" } }
                            td { @match &h.received { Some(x) => (hash(x)), None => "—" } }
                            td { (h.reason) }
                            td { @match h.at { Some(t) => (jst(t)), None => "—" } }
                            td {
                                form method="post" action="/console/halted/resume" {
                                    input type="hidden" name=(web::csrf::FIELD) value=(token);
                                    input type="hidden" name="source" value=(h.source);
                                    button type="submit" { "送信元 " (h.source) " を再開" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page(&c, &party, "停止中の送信元", body)
}

/// The 再開 form.
#[derive(Debug, Deserialize)]
struct ResumeForm {
    csrf: Option<String>,
    source: Option<String>,
}

/// `POST /console/halted/resume`: clears a halt as `jpki identity resume` does, written to the
/// operator log under the operator's party name; refused (403, nothing done) cross-site or
/// without a valid CSRF token for this operator.
async fn resume(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    uri: Uri,
    Extension(party): Extension<Party>,
    form: Result<Form<ResumeForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let back = ("/console/halted", "停止中の送信元へ");
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).or_else(|| uri.authority().map(|a| a.as_str()));
    if web::csrf::cross_site(&headers, host.unwrap_or("")) {
        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
        tracing::warn!(party = %party, route = "/console/halted/resume", origin = h("origin"), host = host.unwrap_or("-"),
            sec_fetch_site = h("sec-fetch-site"), "cross-site post refused");
        return web::message(
            StatusCode::FORBIDDEN,
            "送信を受け付けられません",
            "別のサイトから送られた操作は受け付けません。",
            "運用コンソールの画面から操作してください。",
            Some(back),
        );
    }
    let form = form.map(|Form(f)| f).ok();
    let now = crate::http::now();
    if let Err(e) = c.csrf.check(&party.to_string(), form.as_ref().and_then(|f| f.csrf.as_deref()), now) {
        tracing::warn!(party = %party, route = "/console/halted/resume", reason = e.code(), "post without a valid CSRF token refused");
        return web::message(
            StatusCode::FORBIDDEN,
            "送信を受け付けられません",
            &format!("画面の確認用トークンがないか、古くなっています（理由コード: {}）。", e.code()),
            "停止中の送信元の画面を開き直してから、もう一度操作してください。",
            Some(back),
        );
    }
    let Ok(source) = form.and_then(|f| f.source).unwrap_or_default().parse::<LgCode>() else {
        tracing::warn!(party = %party, route = "/console/halted/resume", "resume of a malformed source refused");
        return web::message(
            StatusCode::BAD_REQUEST,
            "入力に誤りがあります",
            "送信元は6桁の市区町村コード（検査数字付き）で指定してください。",
            "停止中の送信元の画面から、再開する送信元のボタンを押してください。",
            Some(back),
        );
    };
    let op = match c.operator(&party) {
        Ok(op) => op,
        Err(e) => return fail(e, back),
    };
    match replica::resume(&c.db, &op, source.as_str(), now).await {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::Conflict => {
            return web::message(
                StatusCode::CONFLICT,
                "再開できません",
                &format!("送信元 {source} はこの局で停止していません（すでに再開済みの可能性があります）。"),
                "停止中の送信元の一覧を開き直して、現在の状態を確かめてください。",
                Some(back),
            );
        }
        Err(e) => return fail(e, back),
    }
    tracing::info!(party = %party, source = %source, tier = c.tier(), "halted source resumed from the console");
    Redirect::to(&format!("/console/halted?resumed={source}")).into_response()
}

/// `GET /console/lag`: 遅延, as this process's pulls last measured it ([`replica::lag`], the
/// values the replication metrics export).
async fn lag(State(c): State<Arc<Console>>, Extension(party): Extension<Party>) -> Response {
    let rows: Vec<replica::Lag> = replica::lag().into_iter().filter(|l| l.tier == c.tier()).collect();
    let now = crate::http::now();
    let body = html! {
        @if rows.is_empty() {
            p { "この処理はまだどの取得先からも取得していません（取得先が設定されていないか、起動直後です）。" }
        } @else {
            table {
                caption { "取得先と送信元ごとの最終取得（この処理の起動以後）" }
                thead { tr {
                    th scope="col" { "取得先" } th scope="col" { "送信元" } th scope="col" { "最終取得" }
                    th scope="col" { "取得先の seq" } th scope="col" { "カーソル" } th scope="col" { "遅れ（seq）" }
                    th scope="col" { "状態" }
                } }
                tbody {
                    @for l in &rows {
                        tr {
                            td { (l.peer) }
                            th scope="row" { (l.source) }
                            td { (jst(l.pulled_at)) " (" (now.saturating_sub(l.pulled_at)) " 秒前)" }
                            td { (l.peer_seq) }
                            td { (l.cursor_seq) }
                            td { @if l.behind == 0 { "0" } @else { strong { (l.behind) } } }
                            td {
                                @if l.halted { strong { "停止中" } }
                                @else if let Some(e) = &l.error { "エラー: " (e) }
                                @else { "稼働中" }
                            }
                        }
                    }
                }
            }
        }
    };
    page(&c, &party, "遅延", body)
}

/// `GET /console/pools`: コードプール (national only).
async fn pools(State(c): State<Arc<Console>>, Extension(party): Extension<Party>) -> Response {
    let Some(n) = &c.national else {
        return web::message(
            StatusCode::NOT_FOUND,
            "コードプールはありません",
            "住民票コードのプールは全国サーバだけが交付します。",
            "全国サーバの運用コンソールで確認してください。",
            Some(("/console/", "連携状況へ")),
        );
    };
    let pools = match n.pools().await {
        Ok(p) => p,
        Err(e) => return fail(e, ("/console/", "連携状況へ")),
    };
    let body = html! {
        @if pools.is_empty() {
            p { "まだどの市区町村にもプールを交付していません。" }
        } @else {
            table {
                caption { "市区町村ごとの住民票コード（未使用は、この局の写しにまだ現れていないコード）" }
                thead { tr {
                    th scope="col" { "市区町村" } th scope="col" { "交付済み" } th scope="col" { "使用済み" }
                    th scope="col" { "未使用" } th scope="col" { "最終交付" }
                } }
                tbody {
                    @for p in &pools {
                        tr {
                            th scope="row" { (p.municipality) }
                            td { (p.drawn) }
                            td { (p.drawn.saturating_sub(p.remaining)) }
                            td { (p.remaining) }
                            td { (jst(p.last_drawn_at)) }
                        }
                    }
                }
            }
        }
    };
    page(&c, &party, "コードプール", body)
}

/// The fiscal year of the statistics page.
#[derive(Debug, Deserialize)]
struct YearQuery {
    year: Option<String>,
}

/// `GET /console/statistics?year=Y`: 提供統計 of fiscal year Y (default: the current one), from
/// the provision log; written to the operator log as `GET /v1/statistics` is.
async fn statistics(State(c): State<Arc<Console>>, Extension(party): Extension<Party>, uri: Uri) -> Response {
    let back = ("/console/statistics", "今年度の提供統計へ");
    let now = crate::http::now();
    let asked = Query::<YearQuery>::try_from_uri(&uri).ok().and_then(|q| q.0.year);
    let year = match asked {
        None => match Provider::fiscal_year_of(now) {
            Ok(y) => y,
            Err(e) => return fail(e, back),
        },
        Some(y) => match y.parse::<i32>() {
            Ok(y) if (1989..=9998).contains(&y) => y,
            _ => {
                return web::message(
                    StatusCode::BAD_REQUEST,
                    "入力に誤りがあります",
                    "年度は 1989〜9998 の西暦（例: 2026）で指定してください。",
                    "今年度の提供統計を開き、前年度・翌年度のリンクで移動してください。",
                    Some(back),
                );
            }
        },
    };
    let op = match c.operator(&party) {
        Ok(op) => op,
        Err(e) => return fail(e, back),
    };
    let t = match c.provider.usage_by(&op, &[year], now).await {
        Ok(t) => t,
        Err(e) => return fail(e, back),
    };
    let label = crate::law::fiscal_year_label(year);
    let body = html! {
        nav aria-label="年度" {
            p {
                a href={ "/console/statistics?year=" (year - 1) } { "前年度（" (year - 1) "年度）" }
                " ｜ "
                a href={ "/console/statistics?year=" (year + 1) } { "翌年度（" (year + 1) "年度）" }
            }
        }
        p.muted { "この表示は運用ログに記録されます（" (party) "）。" }
        @if t.sections.is_empty() {
            p { (year) "年度（" (label) "）の提供はありません。" }
        } @else {
            table {
                caption { (year) "年度（" (label) "）の利用事務ごとの提供件数" }
                thead { tr { th scope="col" { "利用事務" } th scope="col" { "コード" } th scope="col" { "件数" } } }
                @for (class, rows) in &t.sections {
                    tbody {
                        tr { th scope="rowgroup" colspan="3" { (class) } }
                        @for r in rows {
                            tr {
                                th scope="row" { (r.description) }
                                td { (r.code) }
                                td { (crate::law::usage_cell(r.counts.first().copied().unwrap_or(0))) }
                            }
                        }
                    }
                }
                tfoot { tr { th scope="row" colspan="2" { "計" } td { (crate::law::usage_cell(t.totals.first().copied().unwrap_or(0))) } } }
            }
        }
    };
    page(&c, &party, &format!("提供統計 {year}年度"), body)
}
