//! The stylesheet and htmx, served from the binary under `/static/`, and the security headers
//! every page answer carries.

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The stylesheet of every page.
pub const CSS: &str = include_str!("../static/app.css");
/// htmx 2.0.11 (npm `htmx.org`, 0BSD; `static/htmx-LICENSE.txt`), unmodified.
pub const HTMX: &str = include_str!("../static/htmx-2.0.11.min.js");
/// FNV-1a of the stylesheet: its path changes with its content, so browsers may keep it.
const CSS_HASH: u32 = {
    let b = CSS.as_bytes();
    let mut h: u32 = 0x811c_9dc5;
    let mut i = 0;
    while i < b.len() {
        h = (h ^ b[i] as u32).wrapping_mul(0x0100_0193);
        i += 1;
    }
    h
};

static CSS_PATH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| format!("/static/app-{CSS_HASH:08x}.css"));

/// Where the layout links the stylesheet (`/static/app-HASH.css`).
pub fn css_path() -> &'static str {
    &CSS_PATH
}
/// Where the layout loads htmx from.
pub const HTMX_PATH: &str = "/static/htmx-2.0.11.min.js";

/// The content security policy of every answer: nothing but this origin's own script, style,
/// images and form targets; no framing, no `<base>`, no plugins, no inline code.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// `GET /static/app-HASH.css` and `GET /static/htmx-2.0.11.min.js`.
pub fn assets_router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(css_path(), get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS) }))
        .route(HTMX_PATH, get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], HTMX) }))
}

/// Middleware adding the security headers to every answer (pages, fragments, assets, errors):
/// the [`CSP`], `nosniff`, referrers only to this origin (with `no-referrer` Chromium sends
/// `Origin: null` on form posts, which the cross-site check must refuse), no framing, and
/// `no-store` (pages carry personal data and must not stay in the browser's cache) except for the
/// assets under `/static/`, whose paths change with their content: those are kept for a year.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let asset = req.uri().path().starts_with("/static/");
    let mut r = next.run(req).await.into_response();
    let h = r.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        // `same-origin`, not `no-referrer`: under `no-referrer` Chromium sends `Origin: null`
        // on a page's own form posts, which `csrf::cross_site` rightly refuses. Other origins
        // still get no referrer.
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, if asset { "public, max-age=31536000, immutable" } else { "no-store" }),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    r
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn assets_are_served_with_the_security_headers() {
        let app: Router = assets_router().layer(axum::middleware::from_fn(security_headers));
        let r = app.clone().oneshot(Request::get(HTMX_PATH).body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], CSP);
        assert_eq!(r.headers()[header::CACHE_CONTROL], "public, max-age=31536000, immutable");
        assert_eq!(r.headers()[header::REFERRER_POLICY], "same-origin", "not no-referrer (Origin: null on posts)");
        assert!(r.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/javascript"));
        let r = app.clone().oneshot(Request::get(css_path()).body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(css_path().starts_with("/static/app-") && css_path().ends_with(".css"));
        let r = app.oneshot(Request::get("/page").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store", "everything else is never cached");
        assert!(!CSP.contains("unsafe"), "no unsafe-inline or unsafe-eval");
    }
}
