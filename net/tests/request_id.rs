//! Issue 13: a request's id follows it from node to node (`x-request-id`), over real servers
//! (`net::server`) and the identity network's client (`identity::client::Peer`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

use axum::Router;
use axum::routing::get;
use identity::client::Peer;
use identity::request_id;
use net::server::{Server, Transport};

async fn start(router: Router) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(Server::new(router, Transport::Plain).serve(l, std::future::pending()));
    format!("http://{addr}")
}

#[tokio::test]
async fn the_request_id_follows_the_request_to_the_next_node() {
    // B answers with the request id it runs under; A asks B while handling its own request.
    let b = start(Router::new().route("/id", get(|| async { request_id::current().unwrap_or_default() }))).await;
    let a = start(Router::new().route(
        "/relay",
        get(move || {
            let b = b.clone();
            async move { Peer::new(&b, reqwest::Client::new()).get_text("/id").await.unwrap() }
        }),
    ))
    .await;
    let http = reqwest::Client::new();
    let r = http.get(format!("{a}/relay")).header("x-request-id", "req-42").send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"], "req-42", "answered with the caller's id");
    assert_eq!(r.text().await.unwrap(), "req-42", "and B ran under it");
    // No id, or one a log should not carry: a fresh one, the same at both nodes.
    for header in [None, Some("a b\tc"), Some("山田")] {
        let mut rq = http.get(format!("{a}/relay"));
        if let Some(h) = header {
            rq = rq.header("x-request-id", h.as_bytes());
        }
        let r = rq.send().await.unwrap();
        let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(id.len(), 32, "{header:?}: {id}");
        assert_eq!(r.text().await.unwrap(), id, "{header:?}");
    }
}
