//! 広域交付 at the window (docs/widearea.md): a copy of the residence record of a resident
//! registered in another municipality, asked of this municipality's node by resident code and
//! the date of birth on the resident's identity document; the node relays it through the
//! national node to the resident's municipality, which signs the PDF. The answer is that PDF,
//! downloaded for printing (its file name carries the issuing municipality's code only); the
//! resident code travels in the form body only, never in a URL.

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use identity::widearea::{CopyRequest, Refused};
use maud::html;
use serde::Deserialize;

use super::{Ctx, failure, page};
use crate::App;
use crate::register::{NodeError, node};

/// The page's path.
pub(super) const PATH: &str = "/residents/wide-area";

pub(super) fn routes() -> axum::Router<Arc<App>> {
    axum::Router::new().route(PATH, get(form).post(request))
}

async fn form(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let ctx = match Ctx::get(&app, &headers) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let body = html! {
        p { "他の市区町村に住民登録のある方の住民票の写しを、住所地の市区町村から取り寄せて交付します（広域交付）。"
            "本人確認書類の生年月日を入力してください。住所地の市区町村が電子署名したPDFが交付されます。" }
        form.stack method="post" action=(PATH) {
            (ctx.field())
            label { "住民票コード（11桁）" input name="resident_code" inputmode="numeric" pattern="[0-9]{11}" required autocomplete="off" autofocus; }
            label { "生年月日（本人確認書類のとおり）" input name="date_of_birth" type="date" required; }
            label { input name="with_resident_code" type="checkbox" value="yes"; "住民票コードを記載する（本人の請求がある場合）" }
            button type="submit" { "請求する" }
        }
        p.muted { "請求は当窓口・職員の名前で、当市区町村と住所地の市区町村の双方に記録され、本人の提供状況の開示にも記載されます。" }
    };
    page(&app, &ctx, "住民票の写しの広域交付", body)
}

#[derive(Deserialize)]
struct CopyForm {
    #[serde(default)]
    csrf: String,
    resident_code: String,
    date_of_birth: String,
    #[serde(default)]
    with_resident_code: Option<String>,
}

fn invalid(what: &str) -> Response {
    let f = crate::jobs::Failed {
        code: "invalid".into(),
        what: what.into(),
        next: "入力を直して、もう一度操作してください。".into(),
    };
    failure(StatusCode::BAD_REQUEST, "広域交付", &f)
}

async fn request(State(app): State<Arc<App>>, headers: HeaderMap, Form(f): Form<CopyForm>) -> Response {
    let ctx = match Ctx::post(&app, &headers, &f.csrf) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let Ok(resident_code) = f.resident_code.trim().parse() else {
        return invalid("住民票コードは11桁の数字です（検査数字を確認してください）。");
    };
    let Ok(date_of_birth) = identity::notice::parse_date("date_of_birth", f.date_of_birth.trim()) else {
        return invalid("生年月日の形式が正しくありません。");
    };
    let q = CopyRequest { resident_code, date_of_birth, with_resident_code: f.with_resident_code.is_some() };
    match node(&app, &ctx.clerk, &q).await {
        Ok(copy) => {
            let Ok(pdf) = base64::engine::general_purpose::STANDARD.decode(&copy.pdf) else {
                return refused(&NodeError::Failed("the copy is not base64".into()));
            };
            tracing::info!(clerk = %ctx.clerk.id, issuer = %copy.issuer, "広域交付: copy handed to the clerk");
            let name = format!("attachment; filename=\"juminhyo-{}.pdf\"", copy.issuer);
            let mut r = pdf.into_response();
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/pdf"));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            if let Ok(v) = HeaderValue::from_str(&name) {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            r
        }
        Err(e) => refused(&e),
    }
}

/// The failure page: a 広域交付 refusal with its own message, anything else as every window page.
fn refused(e: &NodeError) -> Response {
    if let NodeError::Refused { code, .. } = e
        && let Some(r) = Refused::from_code(code)
    {
        let status = match r {
            Refused::NotFound => StatusCode::NOT_FOUND,
            Refused::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Refused::IssuerUnavailable => StatusCode::BAD_GATEWAY,
            _ => StatusCode::FORBIDDEN,
        };
        let next = match r {
            Refused::OwnMunicipality => "住民の検索から、通常の交付を行ってください。",
            Refused::RateLimited | Refused::IssuerUnavailable => "しばらく待ってから、もう一度請求してください。",
            _ => "入力と本人確認書類を確認してください。",
        };
        let f = crate::jobs::Failed { code: code.clone(), what: r.message().into(), next: next.into() };
        return failure(status, "広域交付", &f);
    }
    let status = match e {
        NodeError::Refused { .. } => StatusCode::FORBIDDEN,
        _ => StatusCode::BAD_GATEWAY,
    };
    failure(status, "広域交付", &crate::messages::register_error(e))
}
