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
/// Where the layout links them.
pub const CSS_PATH: &str = "/static/app.css";
/// Where the layout loads htmx from.
pub const HTMX_PATH: &str = "/static/htmx-2.0.11.min.js";

/// The content security policy of every answer: nothing but this origin's own script, style,
/// images and form targets; no framing, no `<base>`, no plugins, no inline code.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// `GET /static/app.css` and `GET /static/htmx-2.0.11.min.js`.
pub fn assets_router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(CSS_PATH, get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS) }))
        .route(HTMX_PATH, get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], HTMX) }))
}

/// Middleware adding the security headers to every answer (pages, fragments, assets, errors):
/// the [`CSP`], `nosniff`, no referrer to other origins, no framing, and `no-store` (pages carry personal data
/// and must not stay in the browser's cache).
pub async fn security_headers(req: Request, next: Next) -> Response {
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
        (header::CACHE_CONTROL, "no-store"),
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
        let r = app.oneshot(Request::get(HTMX_PATH).body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], CSP);
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(r.headers()[header::REFERRER_POLICY], "same-origin", "not no-referrer (Origin: null on posts)");
        assert!(r.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/javascript"));
        assert!(!CSP.contains("unsafe"), "no unsafe-inline or unsafe-eval");
    }
}
