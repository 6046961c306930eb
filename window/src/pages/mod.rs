//! The window's pages: the router, the page frame for a signed-in clerk, and the sign-in,
//! home and sign-out pages. Residents' pages are in `resident.rs`, the card's in `card.rs`, 広域交付 in `widearea.rs`.
//! Every form is a POST with the session's CSRF token; a resident's code travels only in
//! form bodies, never in a URL.

mod card;
mod resident;
mod widearea;

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::signin::{self, Refused, SigninError, check_post, see_other, see_other_with_cookie, session};
use crate::{App, Clerk};

/// Every page and fragment of the window.
pub fn router(app: Arc<App>) -> axum::Router {
    axum::Router::new()
        .route("/", get(home))
        .route("/signin", get(signin_page).post(signin_post))
        .route("/signout", post(signout))
        .merge(resident::routes())
        .merge(card::routes())
        .merge(widearea::routes())
        .with_state(app)
}

/// What a page handler needs about its request: the clerk and the session's CSRF token.
pub(crate) struct Ctx {
    pub sid: String,
    pub clerk: Arc<Clerk>,
    pub csrf: String,
}

impl Ctx {
    /// The signed-in clerk of a GET, or the redirect to the sign-in page.
    pub fn get(app: &App, headers: &HeaderMap) -> Result<Ctx, Refused> {
        let (sid, clerk) = session(app, headers)?;
        let csrf = app.csrf.token(&sid, (app.clock)());
        Ok(Ctx { sid, clerk, csrf })
    }

    /// The signed-in clerk of a form post whose CSRF token is `token`, or the refusal.
    pub fn post(app: &App, headers: &HeaderMap, token: &str) -> Result<Ctx, Refused> {
        let ctx = Self::get(app, headers)?;
        check_post(app, &ctx.sid, headers, Some(token))?;
        Ok(ctx)
    }

    /// The hidden CSRF field of a form.
    pub fn field(&self) -> Markup {
        html! { input type="hidden" name=(web::csrf::FIELD) value=(self.csrf); }
    }
}

/// A whole page for the signed-in clerk.
pub(crate) fn page(app: &App, ctx: &Ctx, title: &str, body: Markup) -> Response {
    let service = app.service_name();
    let nav = web::Nav {
        service: &service,
        links: &[
            ("/", "住民の検索"),
            ("/residents/new", "住民の登録"),
            (widearea::PATH, "広域交付"),
            ("/card/status", "カードの状態"),
            ("/card/queue", "再発行の対象"),
        ],
        who: Some(&ctx.clerk.id),
        sign_out: Some(("/signout", &ctx.csrf)),
    };
    Html(web::layout(title, &nav, body).into_string()).into_response()
}

/// The message page of a failed operation, with a link home.
pub(crate) fn failure(status: StatusCode, title: &str, f: &crate::jobs::Failed) -> Response {
    tracing::warn!(code = %f.code, "{title}: refused or failed");
    web::message(status, title, &f.what, &f.next, Some(("/", "住民の検索へ戻る")))
}

async fn home(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let ctx = match Ctx::get(&app, &headers) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let body = resident::find_forms(&ctx);
    page(&app, &ctx, "住民の検索", body)
}

async fn signin_page(State(app): State<Arc<App>>) -> Response {
    signin_form(&app, StatusCode::OK, None)
}

fn signin_form(app: &App, status: StatusCode, error: Option<&str>) -> Response {
    let token = app.csrf.token("signin", (app.clock)());
    let service = app.service_name();
    let body = html! {
        @if let Some(e) = error {
            div.message role="alert" { p { (e) } }
        }
        form.stack method="post" action="/signin" {
            input type="hidden" name=(web::csrf::FIELD) value=(token);
            label { "職員ID" input name="clerk" autocomplete="username" required autofocus pattern="[A-Za-z0-9_-]{1,16}"; }
            label { "パスフレーズ（職員鍵）" input name="passphrase" type="password" autocomplete="current-password" required; }
            button type="submit" { "サインイン" }
        }
        p.muted { "職員ごとの鍵ファイルで認証します。操作はすべて職員と窓口の名前で記録されます。" }
    };
    let nav = web::Nav { service: &service, ..web::Nav::default() };
    (status, Html(web::layout("サインイン", &nav, body).into_string())).into_response()
}

#[derive(Deserialize)]
struct SigninForm {
    #[serde(default)]
    csrf: String,
    clerk: String,
    passphrase: Zeroizing<String>,
}

async fn signin_post(State(app): State<Arc<App>>, headers: HeaderMap, Form(f): Form<SigninForm>) -> Response {
    if let Err(r) = check_post(&app, "signin", &headers, Some(&f.csrf)) {
        return r.into_response();
    }
    match signin::sign_in(&app, f.clerk.trim(), f.passphrase).await {
        Ok(sid) => see_other_with_cookie("/", web::cookie_value(&sid, app.sessions.lifetime())),
        Err(e) => {
            let msg = match e {
                SigninError::BadId => "職員IDの形式が正しくありません。".to_owned(),
                SigninError::Locked => format!(
                    "パスフレーズの誤りが続いたため、この職員IDは{}分間サインインできません。",
                    signin::LOCK_SECS / 60
                ),
                SigninError::Wrong(left) => format!("職員IDまたはパスフレーズが違います（あと{left}回でロック）。"),
                SigninError::NotHere(_) => "この鍵は当窓口の市区町村の職員のものではありません。".to_owned(),
                SigninError::Full => "サインイン中のセッションが多すぎます。しばらく待ってください。".to_owned(),
            };
            signin_form(&app, StatusCode::UNAUTHORIZED, Some(&msg))
        }
    }
}

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

async fn signout(State(app): State<Arc<App>>, headers: HeaderMap, Form(f): Form<CsrfOnly>) -> Response {
    let ctx = match Ctx::post(&app, &headers, &f.csrf) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    app.sessions.remove(&ctx.sid);
    tracing::info!(clerk = %ctx.clerk.id, "clerk signed out");
    see_other_with_cookie("/signin", web::cookie_value("", 0))
}

/// `see_other` for the page modules.
pub(crate) fn redirect(to: &str) -> Response {
    see_other(to)
}
