//! The card's pages: issue (with live progress: card detected → keys generated on the card →
//! certificates issued → written → read back and checked), resume, renew, PIN reset, wipe, the
//! card in the reader, and this window's re-issuance queue. The resident's PINs are typed into
//! the form (in a real window, on the PIN pad) and held only for the job, zeroized after.

use std::sync::Arc;
use std::time::Duration;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use card::jpki::{Lifecycle, PinRef};
use card::writer::{self, Mode, Order, Step};
use identity::person::Record;
use maud::{Markup, html};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::{Ctx, failure, page, redirect};
use crate::App;
use crate::jobs::{Done, Failed, Job, Kind};

pub(super) fn routes() -> axum::Router<Arc<App>> {
    axum::Router::new()
        .route("/card/issue", post(issue))
        .route("/card/pin-reset", post(pin_reset))
        .route("/card/wipe", post(wipe))
        .route("/card/jobs/{id}", get(job_page))
        .route("/card/jobs/{id}/steps", get(job_steps))
        .route("/card/status", get(status))
        .route("/card/queue", get(queue))
}

fn step_label(s: Step) -> &'static str {
    match s {
        Step::CardDetected => "カードを検出",
        Step::KeysGenerated => "カード内で鍵ペアを生成",
        Step::CertificatesIssued => "認証局が電子証明書を発行",
        Step::Written => "カードへ書き込み",
        Step::Checked => "読み戻して確認",
    }
}

/// The card forms of a resident's page.
pub(super) fn card_forms(ctx: &Ctx, r: &Record, under_15: bool) -> Markup {
    let code = r.resident_code.to_string();
    let default_expiry = card::writer::today_jst()
        .replace_year(card::writer::today_jst().year() + 10)
        .map_or_else(|_| String::new(), |d| d.to_string());
    html! {
        details open {
            summary { "カードの発行・更新" }
            form.stack method="post" action="/card/issue" {
                (ctx.field())
                input type="hidden" name="resident_code" value=(code);
                fieldset {
                    legend { "操作" }
                    label { input type="radio" name="mode" value="issue" checked; " 新規発行" }
                    label { input type="radio" name="mode" value="resume"; " 中断した発行の再開" }
                    label { input type="radio" name="mode" value="renew"; " 電子証明書の更新（現在の暗証番号が必要）" }
                }
                label { "カードの有効期限" input name="card_expiry" type="date" required value=(default_expiry); }
                label { "利用者証明用暗証番号（数字4桁、住民が入力）" input name="auth_pin" type="password" inputmode="numeric" pattern="[0-9]{4}" required autocomplete="off"; }
                label { "署名用パスワード（英大文字と数字6〜16桁、住民が入力）" input name="sign_pin" type="password" autocomplete="off" maxlength="16"; }
                label {
                    input type="checkbox" name="no_signature" value="1" checked[under_15];
                    " 署名用電子証明書を発行しない"
                    @if under_15 { " （15歳未満のため発行できません）" }
                }
                button type="submit" { "カードに書き込む" }
            }
        }
        details {
            summary { "暗証番号の再設定" }
            form.stack method="post" action="/card/pin-reset" {
                (ctx.field())
                input type="hidden" name="resident_code" value=(code);
                label { "対象"
                    select name="pin" {
                        option value="auth" { "利用者証明用暗証番号" }
                        option value="sign" { "署名用パスワード（署名用の鍵と証明書は消去されます）" }
                    }
                }
                label { "新しい暗証番号（住民が入力）" input name="new_pin" type="password" required autocomplete="off" maxlength="16"; }
                button type="submit" { "再設定する" }
            }
        }
        details {
            summary { "中断したカードの初期化" }
            form method="post" action="/card/wipe" {
                (ctx.field())
                input type="hidden" name="resident_code" value=(code);
                p { "発行が中断したカードを白紙に戻します（発行済みのカードは初期化できません）。" }
                button.danger type="submit" { "初期化する" }
            }
        }
    }
}

#[derive(Deserialize)]
struct IssueForm {
    #[serde(default)]
    csrf: String,
    resident_code: String,
    mode: String,
    card_expiry: String,
    auth_pin: Zeroizing<String>,
    #[serde(default)]
    sign_pin: Zeroizing<String>,
    no_signature: Option<String>,
}

/// The CA service as the signed-in clerk, or the message for a window that cannot build its
/// client (logged).
fn ca_for(app: &App, ctx: &Ctx) -> Result<crate::ca_client::CaHttps, Failed> {
    app.ca(&ctx.clerk).map_err(|e| {
        tracing::error!(error = %e, "CA client");
        crate::messages::ca_error(&card::writer::CaError::Failed(e.to_string()), false)
    })
}

/// Starts `kind` for `ctx`'s session, running `work` on a blocking thread with the job; the
/// redirect to the job's page.
fn start<F>(app: &Arc<App>, ctx: &Ctx, kind: Kind, work: F) -> Response
where
    F: FnOnce(Arc<Job>) -> Result<Done, Failed> + Send + 'static,
{
    let Some(job) = app.jobs.begin(&ctx.sid, kind) else {
        let f = Failed {
            code: "reader_busy".into(),
            what: "カードリーダーは別の処理に使われています。".into(),
            next: "その処理が終わってから、もう一度操作してください。".into(),
        };
        return failure(StatusCode::CONFLICT, kind.title(), &f);
    };
    let id = job.id.clone();
    let clerk = ctx.clerk.id.clone();
    // A blocking thread: PC/SC calls block; the work drives its futures with
    // `Handle::current().block_on`, their I/O on the runtime.
    tokio::task::spawn_blocking(move || {
        // A panic in the work must still finish the job: a job left running would hold the
        // reader (and its page) forever.
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(job.clone()))).unwrap_or_else(|_| {
            Err(Failed {
                code: "internal".into(),
                what: "カードの処理が異常終了しました。".into(),
                next: "カードの状態を確認し、中断していれば「発行を再開」または「初期化」を行ってください。".into(),
            })
        });
        match &out {
            Ok(_) => tracing::info!(clerk, job = %job.id, kind = ?job.kind, "card job done"),
            Err(f) => tracing::warn!(clerk, job = %job.id, kind = ?job.kind, code = %f.code, "card job failed"),
        }
        job.finish(out);
    });
    redirect(&format!("/card/jobs/{id}"))
}

async fn issue(State(app): State<Arc<App>>, headers: HeaderMap, Form(f): Form<IssueForm>) -> Response {
    let ctx = match Ctx::post(&app, &headers, &f.csrf) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let (kind, mode) = match f.mode.as_str() {
        "issue" => (Kind::Issue, Mode::Issue { resume: false }),
        "resume" => (Kind::Resume, Mode::Issue { resume: true }),
        "renew" => (Kind::Renew, Mode::Renew),
        _ => {
            let bad = Failed {
                code: "invalid".into(),
                what: "操作を選んでください。".into(),
                next: "もう一度操作してください。".into(),
            };
            return failure(StatusCode::BAD_REQUEST, "カードの発行", &bad);
        }
    };
    let no_signature = f.no_signature.is_some();
    let sign_pin = (!f.sign_pin.is_empty()).then(|| f.sign_pin.clone());
    let order = Order {
        resident: f.resident_code.trim().to_owned(),
        card_expiry: f.card_expiry.clone(),
        env: app.cfg.environment.clone(),
        alg: "auto".into(),
        no_signature,
        auth_pin: Some(f.auth_pin.clone()),
        sign_pin: if no_signature && mode != Mode::Renew { None } else { sign_pin },
    };
    let ca = match ca_for(&app, &ctx) {
        Ok(c) => c,
        Err(f) => return failure(StatusCode::INTERNAL_SERVER_ERROR, kind.title(), &f),
    };
    let (reader, wait) = (app.cfg.reader.clone(), app.cfg.card_wait);
    start(&app, &ctx, kind, move |job| {
        let handle = tokio::runtime::Handle::current();
        handle.block_on(async move {
            let mut order = order;
            if order.alg == "auto" {
                order.alg = ca.card_algorithm(&order.env).await.map_err(|e| {
                    crate::messages::ca_error(&card::writer::CaError::Unavailable(e.to_string()), false)
                })?;
            }
            let progress = |s: Step| job.step(s);
            let r = writer::issue_with_progress(&reader, wait, &order, mode, &ca, &progress)
                .await
                .map_err(|e| crate::messages::card_error(&e))?;
            let mut lines = vec![format!("カード番号 {}", r.serial)];
            for c in &r.certificates.certificates {
                let what = if c.kind.name() == "signature" {
                    "署名用電子証明書"
                } else {
                    "利用者証明用電子証明書"
                };
                lines.push(format!("{what} シリアル {}", c.serial));
            }
            if mode == Mode::Renew {
                lines.push("以前の電子証明書は失効しました。".into());
            }
            Ok(Done { lines })
        })
    })
}

#[derive(Deserialize)]
struct PinResetForm {
    #[serde(default)]
    csrf: String,
    resident_code: String,
    pin: String,
    new_pin: Zeroizing<String>,
}

async fn pin_reset(State(app): State<Arc<App>>, headers: HeaderMap, Form(f): Form<PinResetForm>) -> Response {
    let ctx = match Ctx::post(&app, &headers, &f.csrf) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let pin = if f.pin == "sign" { PinRef::Sign } else { PinRef::Auth };
    if let Err(e) = pin.normalize(&f.new_pin) {
        return failure(StatusCode::BAD_REQUEST, Kind::PinReset.title(), &crate::messages::card_error(&e.into()));
    }
    let ca = match ca_for(&app, &ctx) {
        Ok(c) => c,
        Err(f) => return failure(StatusCode::INTERNAL_SERVER_ERROR, Kind::PinReset.title(), &f),
    };
    let (reader, wait, resident) = (app.cfg.reader.clone(), app.cfg.card_wait, f.resident_code.trim().to_owned());
    let new = f.new_pin.clone();
    start(&app, &ctx, Kind::PinReset, move |_job| {
        tokio::runtime::Handle::current().block_on(async move {
            let r = writer::pin_reset(&reader, wait, &resident, pin, &new, &ca)
                .await
                .map_err(|e| crate::messages::card_error(&e))?;
            let mut lines = vec![format!("カード番号 {} の暗証番号を再設定しました。", r.serial)];
            if r.signature_key_destroyed {
                lines.push(
                    "署名用の鍵と電子証明書は消去されました。「電子証明書の更新」で新しいものを発行してください。"
                        .into(),
                );
            }
            Ok(Done { lines })
        })
    })
}

#[derive(Deserialize)]
struct CodeForm {
    #[serde(default)]
    csrf: String,
    resident_code: String,
}

async fn wipe(State(app): State<Arc<App>>, headers: HeaderMap, Form(f): Form<CodeForm>) -> Response {
    let ctx = match Ctx::post(&app, &headers, &f.csrf) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let ca = match ca_for(&app, &ctx) {
        Ok(c) => c,
        Err(f) => return failure(StatusCode::INTERNAL_SERVER_ERROR, Kind::Wipe.title(), &f),
    };
    let (reader, wait, resident) = (app.cfg.reader.clone(), app.cfg.card_wait, f.resident_code.trim().to_owned());
    start(&app, &ctx, Kind::Wipe, move |_job| {
        tokio::runtime::Handle::current().block_on(async move {
            let serial =
                writer::wipe(&reader, wait, &resident, &ca).await.map_err(|e| crate::messages::card_error(&e))?;
            Ok(Done { lines: vec![format!("カード番号 {serial} を白紙に戻しました。")] })
        })
    })
}

/// The steps and outcome of a job, as the fragment htmx swaps in (polling while it runs).
fn progress(job: &Job) -> Markup {
    let st = job.state();
    let running = st.outcome.is_none();
    let url = format!("/card/jobs/{}/steps", job.id);
    let failed_at = if matches!(st.outcome, Some(Err(_))) {
        Step::ALL.iter().find(|s| !st.steps.contains(s)).copied()
    } else {
        None
    };
    html! {
        div #progress aria-live="polite" hx-get=[running.then_some(&url)] hx-trigger=[running.then_some("every 500ms")] hx-swap="outerHTML" {
            @if job.kind.has_steps() {
                ol.progress {
                    @for s in Step::ALL {
                        @let class = if st.steps.contains(&s) { "done" } else if failed_at == Some(s) { "failed" } else if running && Step::ALL.iter().find(|x| !st.steps.contains(x)) == Some(&s) { "active" } else { "todo" };
                        li class=(class) data-step=(format!("{s:?}")) {
                            (step_label(s))
                            @if class == "done" { span.muted { "（完了）" } }
                        }
                    }
                }
            }
            @match &st.outcome {
                None => p #state data-state="running" { "処理中です。カードを抜かないでください。" },
                Some(Ok(done)) => div.notice-ok #state data-state="done" role="status" {
                    p { strong { "完了しました。" } }
                    ul { @for l in &done.lines { li { (l) } } }
                    p { a href="/" { "住民の検索へ戻る" } }
                },
                Some(Err(f)) => div.message #state data-state="failed" data-code=(f.code) role="alert" {
                    p { (f.what) }
                    p { strong { "次の操作: " } (f.next) }
                    p { a href="/" { "住民の検索へ戻る" } }
                },
            }
        }
    }
}

async fn job_page(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let ctx = match Ctx::get(&app, &headers) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let Some(job) = app.jobs.get(&id, &ctx.sid) else {
        return web::message(
            StatusCode::NOT_FOUND,
            "処理が見つかりません",
            "この処理は存在しないか、別の職員のものです。",
            "住民の検索からやり直してください。",
            Some(("/", "ホームへ")),
        );
    };
    let body = html! {
        (progress(&job))
        noscript { p { a href=(format!("/card/jobs/{}", job.id)) { "最新の状態を表示" } } }
    };
    page(&app, &ctx, job.kind.title(), body)
}

async fn job_steps(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let ctx = match Ctx::get(&app, &headers) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    match app.jobs.get(&id, &ctx.sid) {
        Some(job) => Html(progress(&job).into_string()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn status(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let ctx = match Ctx::get(&app, &headers) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let reader = app.cfg.reader.clone();
    let read = tokio::task::spawn_blocking(move || writer::card_status(&reader, Duration::from_secs(2))).await;
    let body = match read {
        Ok(Ok(st)) => {
            let pin = |p: Option<u8>, max: u8| match p {
                None => "未設定".to_owned(),
                Some(0) => "ロック中（残り0回）".to_owned(),
                Some(n) => format!("残り{n}/{max}回"),
            };
            let life = match st.lifecycle {
                Lifecycle::Blank => "白紙",
                Lifecycle::Personalising => "発行処理中（中断）",
                Lifecycle::Issued => "発行済み",
            };
            html! {
                dl.record {
                    dt { "カード番号" } dd { (hex::encode(st.serial)) }
                    dt { "状態" } dd data-lifecycle=(format!("{:?}", st.lifecycle)) { (life) }
                    dt { "利用者証明用の鍵" } dd { (st.auth_key.map_or("なし".to_owned(), |a| format!("{a:?}"))) }
                    dt { "署名用の鍵" } dd { (st.sign_key.map_or("なし".to_owned(), |a| format!("{a:?}"))) }
                    dt { "利用者証明用暗証番号" } dd { (pin(st.auth_pin, 3)) }
                    dt { "署名用パスワード" } dd { (pin(st.sign_pin, 5)) }
                }
                @if st.lifecycle == Lifecycle::Personalising {
                    p.message { "発行が中断しています。住民の画面から「中断した発行の再開」または「初期化」を行ってください。" }
                }
            }
        }
        Ok(Err(e)) => {
            let f = crate::messages::card_error(&e);
            html! { div.message role="alert" data-code=(f.code) { p { (f.what) } p { strong { "次の操作: " } (f.next) } } }
        }
        Err(e) => {
            tracing::error!(error = %e, "card status task failed");
            html! { div.message role="alert" { p { "カードを読めませんでした。" } } }
        }
    };
    page(&app, &ctx, "カードの状態", body)
}

async fn queue(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let ctx = match Ctx::get(&app, &headers) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let q = match app.ca(&ctx.clerk) {
        Ok(ca) => ca.reissue_queue().await,
        Err(e) => Err(e),
    };
    let body = match q {
        Ok(q) => html! {
            p { "認証局の鍵の危殆化により、新しいカードへの切り替えが必要な住民（古い順）: " (q.len()) "人" }
            @if !q.is_empty() {
                table {
                    thead { tr { th scope="col" { "住民票コード" } th scope="col" { "認証局" } th scope="col" { "世代" } th scope="col" { "登録日時" } } }
                    tbody { @for e in &q { tr { td { (e.resident) } td { (e.ca) } td { (e.generation) } td { (e.queued_at) } } } }
                }
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "re-issuance queue");
            html! { div.message role="alert" { p { "認証局に接続できません。" } p { strong { "次の操作: " } "しばらく待ってから開き直してください。" } } }
        }
    };
    page(&app, &ctx, "再発行の対象", body)
}
