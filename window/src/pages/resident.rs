//! The residents' pages: find a resident of this municipality (by code, or by the four items
//! exactly — there is no free search), register, and the changes a window makes: 転居, 転出,
//! 転入, removal, 職権修正, code change; and the resident's disclosure report. Each change goes
//! to the municipality's node signed by the clerk (`crate::register`); the page then shows the
//! record as the node answered it.

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use identity::person::{FlaggedText, FourItems, Record, ResidentStatus, Sex};
use maud::{Markup, html};
use serde::Deserialize;

use identity::ids::{LgCode, ResidentCode};
use identity::provision::Lookup;
use identity::window::{
    ChangeCodeRequest, CorrectRequest, DisclosureRequest, FindRequest, MoveInRequest, MoveOutRequest,
    MoveWithinRequest, RegisterRequest, Registration, Removal, RemoveRequest,
};

use super::{Ctx, failure, page};
use crate::App;
use crate::register::{NodeError, national, node};

/// Today in Japan: the effective date of a change made at the window now.
fn today() -> time::Date {
    card::writer::today_jst()
}

fn code_of(s: &str) -> Result<ResidentCode, String> {
    s.trim().parse().map_err(|_| "住民票コードは11桁の数字です（検査数字を確認してください）。".to_owned())
}

fn lg_of(s: &str, what: &str) -> Result<LgCode, String> {
    s.trim().parse().map_err(|_| format!("{what}は6桁の市区町村コードです（検査数字を確認してください）。"))
}

fn address_of(s: &str) -> Result<FlaggedText, String> {
    FlaggedText::plain("address", s.trim()).map_err(|e| format!("住所: {e}"))
}

pub(super) fn routes() -> axum::Router<Arc<App>> {
    axum::Router::new()
        .route("/residents/find", post(find))
        .route("/residents/new", get(new_form))
        .route("/residents/register", post(register))
        .route("/residents/move-in", get(move_in_form).post(move_in))
        .route("/residents/change", post(change))
        .route("/residents/disclosure", post(disclosure))
}

fn sex_label(s: Sex) -> &'static str {
    match s {
        Sex::Male => "男",
        Sex::Female => "女",
        Sex::NotApplicable => "適用不能",
    }
}

fn status_label(s: ResidentStatus) -> &'static str {
    match s {
        ResidentStatus::Active => "住民",
        ResidentStatus::MovedOut => "転出",
        ResidentStatus::Deceased => "死亡",
        ResidentStatus::Emigrated => "国外転出",
        _ => "消除",
    }
}

/// The four items' inputs, prefilled from `items` if given.
fn item_inputs(items: Option<&FourItems>) -> Markup {
    let sex = items.map(|i| i.sex);
    html! {
        label { "氏名" input name="name" required maxlength="256" autocomplete="off" value=[items.map(|i| i.name.text())]; }
        label { "生年月日" input name="date_of_birth" type="date" required value=[items.map(|i| i.date_of_birth.to_string())]; }
        label { "性別"
            select name="sex" required {
                @for (v, s) in [("1", Sex::Male), ("2", Sex::Female), ("9", Sex::NotApplicable)] {
                    option value=(v) selected[sex == Some(s)] { (sex_label(s)) }
                }
            }
        }
        label { "住所" input name="address" required maxlength="256" autocomplete="off" value=[items.map(|i| i.address.text())]; }
    }
}

/// The two search forms (the home page).
pub(super) fn find_forms(ctx: &Ctx) -> Markup {
    html! {
        p { "当市区町村に住民登録のある方を、住民票コードまたは4情報の完全一致で検索します。" }
        h2 { "住民票コードで検索" }
        form.stack method="post" action="/residents/find" {
            (ctx.field())
            label { "住民票コード（11桁）" input name="resident_code" inputmode="numeric" pattern="[0-9]{11}" required autocomplete="off" autofocus; }
            button type="submit" { "検索" }
        }
        h2 { "4情報で検索" }
        form.stack method="post" action="/residents/find" {
            (ctx.field())
            (item_inputs(None))
            button type="submit" { "検索" }
        }
        p { a href="/residents/move-in" { "転入の届出" } }
    }
}

#[derive(Deserialize)]
struct ItemsForm {
    name: String,
    date_of_birth: String,
    sex: String,
    address: String,
}

impl ItemsForm {
    fn build(&self) -> Result<FourItems, String> {
        let date = time::Date::parse(&self.date_of_birth, time::macros::format_description!("[year]-[month]-[day]"))
            .map_err(|_| "生年月日は YYYY-MM-DD で入力してください。".to_owned())?;
        let sex: u8 = self.sex.parse().map_err(|_| "性別を選んでください。".to_owned())?;
        Ok(FourItems {
            name: FlaggedText::plain("name", self.name.trim()).map_err(|e| format!("氏名: {e}"))?,
            address: FlaggedText::plain("address", self.address.trim()).map_err(|e| format!("住所: {e}"))?,
            date_of_birth: date,
            sex: Sex::try_from(sex).map_err(|_| "性別を選んでください。".to_owned())?,
        })
    }
}

fn invalid(what: String) -> crate::jobs::Failed {
    crate::jobs::Failed {
        code: "invalid".into(), what, next: "入力を直して、もう一度操作してください。".into()
    }
}

fn node_failure(title: &str, e: &NodeError) -> Response {
    let status = match e {
        NodeError::Refused { code, .. } if code == "not_found" => StatusCode::NOT_FOUND,
        NodeError::Refused { .. } => StatusCode::FORBIDDEN,
        NodeError::Unavailable(_) => StatusCode::BAD_GATEWAY,
        NodeError::Failed(_) => StatusCode::BAD_GATEWAY,
    };
    failure(status, title, &crate::messages::register_error(e))
}

#[derive(Deserialize)]
struct FindForm {
    #[serde(default)]
    csrf: String,
    resident_code: Option<String>,
    #[serde(flatten)]
    items: Option<ItemsForm>,
}

async fn find(State(app): State<Arc<App>>, headers: HeaderMap, Form(f): Form<FindForm>) -> Response {
    let ctx = match Ctx::post(&app, &headers, &f.csrf) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let by = match (&f.resident_code, &f.items) {
        (Some(code), _) if !code.trim().is_empty() => code_of(code).map(Lookup::ResidentCode),
        (_, Some(items)) => items.build().map(Lookup::FourItems),
        _ => Err("検索条件を入力してください。".into()),
    };
    let by = match by {
        Ok(by) => by,
        Err(e) => return failure(StatusCode::BAD_REQUEST, "住民の検索", &invalid(e)),
    };
    let found = node(&app, &ctx.clerk, &FindRequest { by }).await.map(|f| f.records);
    match found {
        Ok(records) if records.len() == 1 => resident_page(&app, &ctx, &records[0], None),
        Ok(records) if records.is_empty() => {
            node_failure("住民の検索", &NodeError::Refused { code: "not_found".into(), detail: String::new() })
        }
        Ok(records) => {
            let body = html! {
                p { (records.len()) "件の住民が4情報に一致しました。" }
                @for r in &records { (record_summary(&ctx, r)) }
            };
            page(&app, &ctx, "検索結果", body)
        }
        Err(e) => node_failure("住民の検索", &e),
    }
}

fn record_list(r: &Record) -> Markup {
    html! {
        dl.record {
            dt { "住民票コード" } dd { (r.resident_code.to_string()) }
            dt { "氏名" } dd { (r.items.name.text()) }
            dt { "生年月日" } dd { (r.items.date_of_birth.to_string()) }
            dt { "性別" } dd { (sex_label(r.items.sex)) }
            dt { "住所" } dd { (r.items.address.text()) }
            dt { "状態" } dd { (status_label(r.status)) }
            dt { "市区町村" } dd { (r.municipality.to_string()) }
        }
    }
}

fn record_summary(ctx: &Ctx, r: &Record) -> Markup {
    html! {
        section {
            (record_list(r))
            form method="post" action="/residents/find" {
                (ctx.field())
                input type="hidden" name="resident_code" value=(r.resident_code.to_string());
                button type="submit" { "この住民を開く" }
            }
        }
    }
}

/// A hidden field with the resident's code (form bodies only).
fn code_field(r: &Record) -> Markup {
    html! { input type="hidden" name="resident_code" value=(r.resident_code.to_string()); }
}

/// Age in whole years on `today`.
pub(super) fn age(born: time::Date, today: time::Date) -> i32 {
    let mut a = today.year() - born.year();
    if (today.month() as u8, today.day()) < (born.month() as u8, born.day()) {
        a -= 1;
    }
    a
}

/// The resident's page: the record and every action the window can take for them.
fn resident_page(app: &App, ctx: &Ctx, r: &Record, done: Option<&str>) -> Response {
    let active = r.status == ResidentStatus::Active;
    let under_15 = age(r.items.date_of_birth, card::writer::today_jst()) < 15;
    let body = html! {
        @if let Some(d) = done {
            div.notice-ok role="status" { p { (d) } }
        }
        (record_list(r))
        @if active {
            h2 { "カード" }
            (super::card::card_forms(ctx, r, under_15))
            h2 { "異動の届出" }
            details {
                summary { "転居（市区町村内の住所変更）" }
                form.stack method="post" action="/residents/change" {
                    (ctx.field()) (code_field(r))
                    input type="hidden" name="action" value="move_within";
                    label { "新しい住所" input name="address" required maxlength="256" autocomplete="off"; }
                    button type="submit" { "転居を届け出る" }
                }
            }
            details {
                summary { "転出（他の市区町村へ）" }
                form.stack method="post" action="/residents/change" {
                    (ctx.field()) (code_field(r))
                    input type="hidden" name="action" value="move_out";
                    label { "転出先の市区町村コード（6桁）" input name="destination" inputmode="numeric" pattern="[0-9]{6}" required; }
                    button type="submit" { "転出を届け出る" }
                }
            }
            details {
                summary { "死亡・国外転出・職権消除" }
                form.stack method="post" action="/residents/change" {
                    (ctx.field()) (code_field(r))
                    input type="hidden" name="action" value="remove";
                    label { "事由"
                        select name="reason" required {
                            option value="deceased" { "死亡" }
                            option value="emigrated" { "国外転出" }
                            option value="ex_officio" { "職権消除" }
                        }
                    }
                    button.danger type="submit" { "住民票を消除する" }
                }
            }
            details {
                summary { "職権修正（4情報）" }
                form.stack method="post" action="/residents/change" {
                    (ctx.field()) (code_field(r))
                    input type="hidden" name="action" value="correct";
                    (item_inputs(Some(&r.items)))
                    button type="submit" { "修正する" }
                }
            }
            details {
                summary { "住民票コードの変更（本人の請求）" }
                form.stack method="post" action="/residents/change" {
                    (ctx.field()) (code_field(r))
                    input type="hidden" name="action" value="change_code";
                    p { "現在のコードは廃止され、二度と使われません。" }
                    button type="submit" { "コードを変更する" }
                }
            }
        }
        h2 { "本人への開示" }
        form method="post" action="/residents/disclosure" {
            (ctx.field()) (code_field(r))
            button type="submit" { "提供状況の開示（本人確認情報の提供記録）" }
        }
    };
    page(app, ctx, "住民の情報", body)
}

async fn new_form(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let ctx = match Ctx::get(&app, &headers) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let body = html! {
        form.stack method="post" action="/residents/register" {
            (ctx.field())
            fieldset {
                legend { "届出の種類" }
                label { input type="radio" name="kind" value="birth" required; " 出生" }
                label { input type="radio" name="kind" value="first_registration" checked; " 初めての住民登録" }
            }
            (item_inputs(None))
            button type="submit" { "登録する" }
        }
    };
    page(&app, &ctx, "住民の登録", body)
}

#[derive(Deserialize)]
struct RegisterForm {
    #[serde(default)]
    csrf: String,
    kind: String,
    #[serde(flatten)]
    items: ItemsForm,
}

async fn register(State(app): State<Arc<App>>, headers: HeaderMap, Form(f): Form<RegisterForm>) -> Response {
    let ctx = match Ctx::post(&app, &headers, &f.csrf) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let items = match f.items.build() {
        Ok(i) => i,
        Err(e) => return failure(StatusCode::BAD_REQUEST, "住民の登録", &invalid(e)),
    };
    let kind = match f.kind.as_str() {
        "birth" => Registration::Birth,
        "first_registration" => Registration::FirstRegistration,
        _ => return failure(StatusCode::BAD_REQUEST, "住民の登録", &invalid("届出の種類を選んでください。".into())),
    };
    match node(&app, &ctx.clerk, &RegisterRequest { kind, items, effective_date: today() }).await {
        Ok(c) => {
            resident_page(&app, &ctx, &c.record, Some("住民を登録しました。住民票コードを本人に通知してください。"))
        }
        Err(e) => node_failure("住民の登録", &e),
    }
}

async fn move_in_form(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let ctx = match Ctx::get(&app, &headers) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let body = html! {
        p { "転出証明書情報は転出元の市区町村から取得し、転入通知を送ります。" }
        form.stack method="post" action="/residents/move-in" {
            (ctx.field())
            label { "住民票コード（11桁）" input name="resident_code" inputmode="numeric" pattern="[0-9]{11}" required autocomplete="off"; }
            label { "転出元の市区町村コード（6桁）" input name="from" inputmode="numeric" pattern="[0-9]{6}" required; }
            label { "新しい住所" input name="address" required maxlength="256" autocomplete="off"; }
            button type="submit" { "転入を届け出る" }
        }
    };
    page(&app, &ctx, "転入の届出", body)
}

#[derive(Deserialize)]
struct MoveInForm {
    #[serde(default)]
    csrf: String,
    resident_code: String,
    from: String,
    address: String,
}

async fn move_in(State(app): State<Arc<App>>, headers: HeaderMap, Form(f): Form<MoveInForm>) -> Response {
    let ctx = match Ctx::post(&app, &headers, &f.csrf) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let request = (|| {
        Ok::<_, String>(MoveInRequest {
            resident_code: code_of(&f.resident_code)?,
            old_municipality: lg_of(&f.from, "転出元")?,
            address: address_of(&f.address)?,
            effective_date: today(),
        })
    })();
    let request = match request {
        Ok(r) => r,
        Err(e) => return failure(StatusCode::BAD_REQUEST, "転入の届出", &invalid(e)),
    };
    match node(&app, &ctx.clerk, &request).await {
        Ok(c) => {
            let done = if c.old_municipality_notified == Some(false) {
                "転入を登録しました。転出元への転入通知は届かなかったため、後で再送されます。"
            } else {
                "転入を登録し、転出元に転入通知を送りました。"
            };
            resident_page(&app, &ctx, &c.record, Some(done))
        }
        Err(e) => node_failure("転入の届出", &e),
    }
}

#[derive(Deserialize)]
struct ChangeForm {
    #[serde(default)]
    csrf: String,
    resident_code: String,
    action: String,
    address: Option<String>,
    destination: Option<String>,
    reason: Option<String>,
    name: Option<String>,
    date_of_birth: Option<String>,
    sex: Option<String>,
}

async fn change(State(app): State<Arc<App>>, headers: HeaderMap, Form(f): Form<ChangeForm>) -> Response {
    let ctx = match Ctx::post(&app, &headers, &f.csrf) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let (title, result, done) = match change_request(&app, &ctx, &f).await {
        Ok(x) => x,
        Err((title, e)) => return failure(StatusCode::BAD_REQUEST, title, &invalid(e)),
    };
    match result {
        Ok(c) => resident_page(&app, &ctx, &c.record, Some(done)),
        Err(e) => node_failure(title, &e),
    }
}

type ChangeOutcome = (&'static str, Result<identity::window::Changed, NodeError>, &'static str);

/// Builds the change a form asks for and sends it; an input error is (title, message).
async fn change_request(app: &App, ctx: &Ctx, f: &ChangeForm) -> Result<ChangeOutcome, (&'static str, String)> {
    let need = |v: &Option<String>, what: &str| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| format!("{what}を入力してください。"))
    };
    let effective_date = today();
    let clerk = &ctx.clerk;
    Ok(match f.action.as_str() {
        "move_within" => {
            let t = "転居";
            let resident_code = code_of(&f.resident_code).map_err(|e| (t, e))?;
            let address = need(&f.address, "新しい住所").and_then(|a| address_of(&a)).map_err(|e| (t, e))?;
            let r = MoveWithinRequest { resident_code, address, effective_date };
            (t, node(app, clerk, &r).await, "転居を登録しました。")
        }
        "move_out" => {
            let t = "転出";
            let resident_code = code_of(&f.resident_code).map_err(|e| (t, e))?;
            let destination = need(&f.destination, "転出先").and_then(|d| lg_of(&d, "転出先")).map_err(|e| (t, e))?;
            let r = MoveOutRequest { resident_code, destination, effective_date };
            (t, node(app, clerk, &r).await, "転出を登録しました。署名用電子証明書は失効します。")
        }
        "remove" => {
            let t = "住民票の消除";
            let resident_code = code_of(&f.resident_code).map_err(|e| (t, e))?;
            let reason = match f.reason.as_deref() {
                Some("deceased") => Removal::Death,
                Some("emigrated") => Removal::Emigration,
                Some("ex_officio") => Removal::RemovalExOfficio,
                _ => return Err((t, "事由を選んでください。".into())),
            };
            let r = RemoveRequest { resident_code, reason, effective_date };
            (t, node(app, clerk, &r).await, "住民票を消除しました。")
        }
        "correct" => {
            let t = "職権修正";
            let resident_code = code_of(&f.resident_code).map_err(|e| (t, e))?;
            let items = ItemsForm {
                name: f.name.clone().unwrap_or_default(),
                date_of_birth: f.date_of_birth.clone().unwrap_or_default(),
                sex: f.sex.clone().unwrap_or_default(),
                address: f.address.clone().unwrap_or_default(),
            }
            .build()
            .map_err(|e| (t, e))?;
            let r = CorrectRequest { resident_code, items, effective_date };
            (t, node(app, clerk, &r).await, "4情報を修正しました。")
        }
        "change_code" => {
            let t = "住民票コードの変更";
            let resident_code = code_of(&f.resident_code).map_err(|e| (t, e))?;
            let r = ChangeCodeRequest { resident_code, effective_date };
            (t, node(app, clerk, &r).await, "住民票コードを変更しました。新しいコードを本人に通知してください。")
        }
        _ => return Err(("異動の届出", "不明な操作です。".into())),
    })
}

#[derive(Deserialize)]
struct CodeForm {
    #[serde(default)]
    csrf: String,
    resident_code: String,
}

async fn disclosure(State(app): State<Arc<App>>, headers: HeaderMap, Form(f): Form<CodeForm>) -> Response {
    let ctx = match Ctx::post(&app, &headers, &f.csrf) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let resident_code = match code_of(&f.resident_code) {
        Ok(c) => c,
        Err(e) => return failure(StatusCode::BAD_REQUEST, "提供状況の開示", &invalid(e)),
    };
    match national(&app, &ctx.clerk, &DisclosureRequest { resident_code }).await {
        Ok(rows) => {
            let body = html! {
                p { "本人確認情報の提供状況（" (rows.len()) "件）。この開示も記録されます。" }
                table {
                    caption { "提供記録" }
                    thead { tr { th scope="col" { "提供年月日" } th scope="col" { "機能区分" } th scope="col" { "利用事由" } th scope="col" { "提供元" } th scope="col" { "提供先" } th scope="col" { "提供項目" } th scope="col" { "結果" } } }
                    tbody {
                        @for r in &rows {
                            tr { td { (r.date) } td { (r.function) } td { (r.purpose) } td { (r.source) } td { (r.destination) } td { (r.fields) } td { (r.result) } }
                        }
                    }
                }
                p.muted { "印刷はブラウザの印刷機能（Ctrl+P）を使ってください。" }
            };
            page(&app, &ctx, "本人確認情報の提供状況の開示", body)
        }
        Err(e) => node_failure("提供状況の開示", &e),
    }
}
