//! The OpenAPI descriptions of the three node roles (issue 13) against the routers themselves,
//! on SQLite and PostgreSQL: each router serves at `GET /openapi.json` exactly the description
//! `*_openapi()` builds (what `jpki openapi` prints), any authenticated party may read it and a
//! request without a party is 401; and every described operation is routed by the router to
//! the very route pattern it is described under (the matched pattern is recorded by a route
//! layer, as the servers' metrics record it), so nothing is described that is not served. The
//! replica routers are checked with the operator console merged in, as `jpki serve` runs them;
//! the console's HTML routes (`/console/…`, `/static/…`) are routed and described nowhere.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use common::*;
use identity::console::{self, Console};
use identity::http::{self, NationalState, PrefectureState};
use identity::national::National;
use identity::provision::Provider;
use identity::store::Db;
use serde_json::Value;
use tower::ServiceExt;

/// Path parameters filled with well-formed values.
fn fill(template: &str) -> String {
    template.replace("{source}", "131016").replace("{code}", codes(900, 1)[0].as_str())
}

/// Every (method, path template) a description lists.
fn operations(doc: &Value) -> Vec<(Method, String)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(m.to_ascii_uppercase().as_bytes()).unwrap();
            ops.push((method, path.clone()));
        }
    }
    ops
}

/// Checks `router` against `described` (the value of `*_openapi()`).
async fn check(name: &str, router: axum::Router, described: utoipa::openapi::OpenApi) {
    let described = serde_json::to_value(&described).unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = seen.clone();
    let router = router.route_layer(axum::middleware::from_fn(move |req: Request, next: Next| {
        let record = record.clone();
        async move {
            if let Some(m) = req.extensions().get::<MatchedPath>() {
                record.lock().unwrap().push(m.as_str().to_owned());
            }
            next.run(req).await
        }
    }));
    let call = |method: Method, path: String, as_party: Option<&str>| {
        let mut req = Request::builder().method(method.clone()).uri(path);
        if method == Method::POST {
            req = req.header("content-type", "application/json");
        }
        let mut req = req.body(Body::from(if method == Method::POST { "{}" } else { "" })).unwrap();
        if let Some(p) = as_party {
            req.extensions_mut().insert(party(p));
        }
        router.clone().oneshot(req)
    };

    // The description served is the one built without a node, byte for byte in meaning.
    let r = call(Method::GET, "/openapi.json".into(), Some("urn:jpki:agency:someone")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{name}");
    assert_eq!(r.headers()["content-type"], "application/json", "{name}");
    let body = axum::body::to_bytes(r.into_body(), 1 << 24).await.unwrap();
    let served: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(served, described, "{name}: the served description differs from {name}_openapi()");
    assert_eq!(served["openapi"], "3.1.0");
    let r = call(Method::GET, "/openapi.json".into(), None).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{name}: without a party");

    // Every described operation reaches its own route (whatever the handler then answers to
    // an operator with an empty body).
    let ops = operations(&described);
    assert!(ops.len() >= 6, "{name}: {ops:?}");
    for (method, template) in &ops {
        seen.lock().unwrap().clear();
        let r = call(method.clone(), fill(template), Some("urn:jpki:operator:op1")).await.unwrap();
        assert_ne!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{name}: {method} {template}");
        assert_eq!(*seen.lock().unwrap(), vec![template.clone()], "{name}: {method} {template} not routed to it");
    }
    // And a path no description lists is not routed at all.
    seen.lock().unwrap().clear();
    let r = call(Method::GET, "/v1/undescribed".into(), Some("urn:jpki:operator:op1")).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(seen.lock().unwrap().is_empty());
    // The operator console (HTML for people, issue 12) is served beside the API on the replica
    // nodes and is outside the description: nothing under /console/ or /static/ is described.
    assert!(ops.iter().all(|(_, t)| !t.starts_with("/console") && !t.starts_with("/static/")), "{name}");
    if name != "municipal" {
        seen.lock().unwrap().clear();
        let r = call(Method::GET, "/console/".into(), Some("urn:jpki:operator:op1")).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{name}: the console");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"), "{name}");
        assert_eq!(*seen.lock().unwrap(), vec!["/console/".to_owned()], "{name}");
    }
}

#[tokio::test]
async fn each_node_serves_its_description_and_every_described_route() {
    for like in backends().await {
        let (mdb, pdb, ndb) = (fresh(&like).await, fresh(&like).await, fresh(&like).await);
        let tokyo = signed_municipality(Db::open(&mdb.url).await.unwrap(), "131016").await;
        check("municipal", http::municipal_router(tokyo), http::municipal_openapi()).await;

        let pref13 = Db::open(&pdb.url).await.unwrap();
        identity::store::claim_identity(&pref13, "prefecture", "13").await.unwrap();
        let law = Arc::new(identity::law::LawTable::seed().unwrap());
        let provider = Provider::open(pref13.clone(), law.clone()).await.unwrap();
        // Each replica router as `jpki serve` runs it: with the operator console merged in.
        let console = Console::prefecture(pref13.clone(), "13".parse().unwrap(), provider.clone(), Vec::new());
        let router = http::prefecture_router(PrefectureState { db: pref13, code: "13".parse().unwrap(), provider });
        check("prefecture", router.merge(console::router(console)), http::prefecture_openapi()).await;

        let national = National::open(Db::open(&ndb.url).await.unwrap(), law).await.unwrap();
        let console = console::router(Console::national(national.clone(), Vec::new()));
        let router = http::national_router(NationalState { national }).merge(console);
        check("national", router, http::national_openapi()).await;
    }
}
