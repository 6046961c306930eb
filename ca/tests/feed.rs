//! The CA does not trust the change feed as such (review finding H3): a feed server that
//! injects a Death or a CodeChange that no signed notice backs, points an entry at a notice
//! that does not exist, or replays an old notice, gets nothing applied — no revocation, no
//! re-keying, the cursor where it was — and `follow` fails naming the entry. The genuine feed
//! then applies. The feed server is a real HTTP server on loopback; the notices and keys it
//! serves are the national node's.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a panic is a failed test

mod common;

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use ca::identity_source::IdentitySource;
use ca::key::KeyAlgorithm;
use common::*;
use identity::client::Peer;
use identity::national::FeedEntry;
use identity::notice::NoticeKind;
use identity::store;

/// How the hostile feed server rewrites the genuine feed.
type Edit = Box<dyn Fn(Vec<FeedEntry>) -> Vec<FeedEntry> + Send>;

/// What the hostile feed server serves: the genuine feed with `edit` applied.
#[derive(Clone)]
struct Feed {
    national: identity::store::Db,
    edit: Arc<Mutex<Edit>>,
}

#[derive(serde::Deserialize)]
struct Page {
    after: u64,
    limit: u32,
}

async fn serve(feed: Feed) -> String {
    let router = axum::Router::new()
        .route(
            "/v1/feed",
            get(|State(f): State<Feed>, Query(p): Query<Page>| async move {
                let national = identity::national::National::open(
                    f.national.clone(),
                    Arc::new(identity::law::LawTable::seed().unwrap()),
                )
                .await
                .unwrap();
                let genuine = national.feed_after(0, 10_000).await.unwrap();
                let edited = (f.edit.lock().unwrap())(genuine);
                Json(edited.into_iter().filter(|e| e.feed_seq > p.after).take(p.limit as usize).collect::<Vec<_>>())
            }),
        )
        .route(
            "/v1/sources/{source}/notices",
            get(|State(f): State<Feed>, Path(s): Path<String>, Query(p): Query<Page>| async move {
                Json(store::notices_after(&f.national, &s, p.after, p.limit).await.unwrap())
            }),
        )
        .route(
            "/v1/sources/{source}/keys",
            get(|State(f): State<Feed>, Path(s): Path<String>| async move {
                Json(store::notice_keys(&f.national, &s).await.unwrap())
            }),
        )
        .with_state(feed);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(axum::serve(l, router).into_future());
    url
}

#[tokio::test]
async fn forged_replayed_and_dangling_feed_entries_revoke_nothing_and_leave_the_cursor() {
    let db = identity::store::testing::sqlite().unwrap();
    let w = World::new(&db, KeyAlgorithm::EcP384).await;
    let victim = w.register("山田　花子", "1980-02-28").await;
    let other = w.register("佐藤　一郎", "1970-01-01").await;
    let (_, s) = subject(KeyAlgorithm::EcP384);
    let (_, a) = subject(KeyAlgorithm::EcP384);
    w.ca.issue("w", &request(&victim, Some(&s), Some(&a)), &w.source, NOW).await.unwrap();
    let eff = identity::notice::parse_date("d", "2026-11-20").unwrap();
    w.m.move_within(&clerk(), &other, identity::person::FlaggedText::plain("address", "東京都1").unwrap(), eff, NOW)
        .await
        .unwrap();
    w.sync().await;

    let feed = Feed { national: w.national.db().clone(), edit: Arc::new(Mutex::new(Box::new(|v| v))) };
    let url = serve(feed.clone()).await;
    let source = IdentitySource::Http(Peer::new(&url, reqwest::Client::new()));
    let verifier = notice_ca().verifier();
    let set = |f: Edit| *feed.edit.lock().unwrap() = f;
    let before = w.ca.feed_cursor().await.unwrap();
    let revoked = || async {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM ca_revocation").fetch_one(w.ca.db().pool()).await.unwrap();
        n
    };

    // 1. The other resident's genuine MoveWithin (seq 3), rewritten as the victim's Death.
    let v = victim.as_str().to_owned();
    set(Box::new(move |mut es| {
        for e in &mut es {
            if e.kind == NoticeKind::MoveWithin {
                e.kind = NoticeKind::Death;
                e.resident_code = v.clone();
                e.changed = vec!["status".into()];
            }
        }
        es
    }));
    let e = w.ca.follow("feed", &source, &*verifier, NOW + 60).await.unwrap_err();
    assert_eq!(e.kind(), "feed_refused", "{e}");
    assert!(e.to_string().contains("does not match its signed notice"), "{e}");
    assert_eq!((w.ca.feed_cursor().await.unwrap(), revoked().await), (before, 0));

    // 2. An injected CodeChange victim → someone else at a seq no notice has.
    let v = victim.as_str().to_owned();
    set(Box::new(move |mut es| {
        let mut forged = es.last().unwrap().clone();
        forged.feed_seq += 1;
        forged.seq = 99;
        forged.kind = NoticeKind::CodeChange;
        forged.previous_code = Some(v.clone());
        forged.resident_code = "12345678901".into();
        es.push(forged);
        es
    }));
    let e = w.ca.follow("feed", &source, &*verifier, NOW + 60).await.unwrap_err();
    assert!(e.to_string().contains("no such notice"), "{e}");
    assert_eq!((w.ca.feed_cursor().await.unwrap(), revoked().await), (before, 0));

    // 3. The genuine feed applies.
    set(Box::new(|v| v));
    let r = w.ca.follow("feed", &source, &*verifier, NOW + 60).await.unwrap();
    assert_eq!(r.entries, 3);
    assert!(r.revoked.is_empty(), "a move within revokes nothing here: {:?}", r.revoked);

    // 4. A replay: the victim's registration notice (seq 1) served again as a new entry.
    set(Box::new(|mut es| {
        let mut again = es[0].clone();
        again.feed_seq = es.len() as u64 + 1;
        es.push(again);
        es
    }));
    let at = w.ca.feed_cursor().await.unwrap();
    let e = w.ca.follow("feed", &source, &*verifier, NOW + 60).await.unwrap_err();
    assert!(e.to_string().contains("replayed or reordered"), "{e}");
    assert_eq!((w.ca.feed_cursor().await.unwrap(), revoked().await), (at, 0));

    // 5. A real death, genuinely signed: revoked as the rules say.
    w.m.remove(&clerk(), &victim, NoticeKind::Death, eff, NOW).await.unwrap();
    w.sync().await;
    set(Box::new(|v| v));
    let r = w.ca.follow("feed", &source, &*verifier, NOW + 60).await.unwrap();
    assert_eq!(r.revoked.len(), 2, "{:?}", r.revoked);
}
