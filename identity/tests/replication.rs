//! Replication municipality → prefecture → national over real HTTP on loopback, on SQLite
//! and PostgreSQL: order, duplicates, gaps, forged chains, causal parking of moves, move-in
//! notices, restart mid-transfer, rebuild of a wiped national node, and bad HTTP input.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use std::sync::Arc;

use common::*;
use identity::ErrorKind;
use identity::client::{MoveInNotice, Peer};
use identity::http;
use identity::municipal::Municipality;
use identity::national::{self, National};
use identity::notice::{ChangeNotice, NoticeKind};
use identity::notice_sig::{NoticeSigner, sign_notice};
use identity::person::{FlaggedText, ResidentStatus};
use identity::replica::{self, Stop, Tier};
use identity::store::testing::TestDb;
use identity::store::{self, Db};
use sqlx::Row;

/// A prefecture node's router on `db` (claimed for `code`).
async fn prefecture_router(db: &Db, code: &str) -> axum::Router {
    identity::store::claim_identity(db, "prefecture", code).await.unwrap();
    let law = Arc::new(identity::law::LawTable::seed().unwrap());
    let provider = identity::provision::Provider::open(db.clone(), law).await.unwrap();
    http::prefecture_router(http::PrefectureState { db: db.clone(), code: code.parse().unwrap(), provider })
}

/// The party that pulls `tier`'s upstream: a prefecture pulls its municipalities, the
/// national node pulls the prefectures.
fn puller(tier: Tier, prefix: &str) -> String {
    match tier {
        Tier::Prefecture => format!("prefecture:{prefix}"),
        Tier::National => "national".into(),
    }
}

struct Net {
    tokyo: Municipality,
    tokyo_url: String,
    shinjuku: Municipality,
    shinjuku_url: String,
    osaka: Municipality,
    osaka_url: String,
    pref13: Db,
    pref13_url: String,
    pref27: Db,
    pref27_url: String,
    national: National,
    _dbs: Vec<TestDb>,
}

async fn open_fresh(like: &TestDb, keep: &mut Vec<TestDb>) -> Db {
    let t = fresh(like).await;
    let d = Db::open(&t.url).await.unwrap();
    keep.push(t);
    d
}

async fn net(like: &TestDb) -> Net {
    let mut dbs = Vec::new();
    let tokyo = signed_municipality(open_fresh(like, &mut dbs).await, "131016").await;
    tokyo.add_pool(&codes(100, 20)).await.unwrap();
    let shinjuku = signed_municipality(open_fresh(like, &mut dbs).await, "131041").await;
    shinjuku.add_pool(&codes(200, 20)).await.unwrap();
    let osaka = signed_municipality(open_fresh(like, &mut dbs).await, "271004").await;
    osaka.add_pool(&codes(300, 20)).await.unwrap();
    let pref13 = open_fresh(like, &mut dbs).await;
    let pref27 = open_fresh(like, &mut dbs).await;
    let law = Arc::new(identity::law::LawTable::seed().unwrap());
    let national = National::open(open_fresh(like, &mut dbs).await, law).await.unwrap();
    Net {
        tokyo_url: serve(http::municipal_router(tokyo.clone())).await,
        shinjuku_url: serve(http::municipal_router(shinjuku.clone())).await,
        osaka_url: serve(http::municipal_router(osaka.clone())).await,
        pref13_url: serve(prefecture_router(&pref13, "13").await).await,
        pref27_url: serve(prefecture_router(&pref27, "27").await).await,
        tokyo,
        shinjuku,
        osaka,
        pref13,
        pref27,
        national,
        _dbs: dbs,
    }
}

impl Net {
    async fn sync_prefectures(&self) {
        for url in [&self.tokyo_url, &self.shinjuku_url] {
            replica::pull(&self.pref13, Tier::Prefecture, &*verifier(), &peer_as(url, "prefecture:13"), Some("13"))
                .await
                .unwrap();
        }
        replica::pull(
            &self.pref27,
            Tier::Prefecture,
            &*verifier(),
            &peer_as(&self.osaka_url, "prefecture:27"),
            Some("27"),
        )
        .await
        .unwrap();
    }

    async fn pull_national(&self, pref: &str) -> Vec<replica::SourceReport> {
        let url = if pref == "13" { &self.pref13_url } else { &self.pref27_url };
        replica::pull(self.national.db(), Tier::National, &*verifier(), &peer_as(url, "national"), Some(pref))
            .await
            .unwrap()
    }

    fn prefectures(&self) -> Vec<Peer> {
        vec![peer_as(&self.pref13_url, "national"), peer_as(&self.pref27_url, "national")]
    }
}

async fn count(db: &Db, sql: &'static str) -> i64 {
    sqlx::query(sql).fetch_one(db.pool()).await.unwrap().try_get(0).unwrap()
}

#[tokio::test]
async fn a_cross_prefecture_move_replicates_in_causal_order_and_the_feed_names_the_changes() {
    for t in backends().await {
        let net = net(&t).await;
        let op = clerk();
        let reg = net
            .tokyo
            .register(
                &op,
                NoticeKind::FirstRegistration,
                items("山田　花子", "東京都千代田区1", "1980-02-29"),
                date("2026-04-01"),
                NOW,
            )
            .await
            .unwrap();
        let code = reg.body.record.resident_code.clone();
        net.shinjuku
            .register(
                &op,
                NoticeKind::Birth,
                items("佐藤　陽葵", "東京都新宿区1", "2026-04-01"),
                date("2026-04-01"),
                NOW,
            )
            .await
            .unwrap();
        net.tokyo.move_out(&op, &code, lg("271004"), date("2026-04-10"), NOW).await.unwrap();
        let cert = peer_as(&net.tokyo_url, "municipality:271004").move_out_certificate(&code).await.unwrap();
        let moved = net
            .osaka
            .move_in(&op, &cert, FlaggedText::plain("address", "大阪府大阪市北区1").unwrap(), date("2026-04-11"), NOW)
            .await
            .unwrap();
        assert_eq!(moved.body.predecessor.as_ref(), Some(&cert.move_out));
        // 転入通知: first delivery records, the retry is a no-op; one active record in the end.
        let notice =
            MoveInNotice { resident_code: code.clone(), new_municipality: lg("271004"), notice_seq: moved.key.seq };
        assert!(peer_as(&net.tokyo_url, "municipality:271004").send_move_in_notice(&notice).await.unwrap());
        assert!(!peer_as(&net.tokyo_url, "municipality:271004").send_move_in_notice(&notice).await.unwrap());
        let active = [net.tokyo.get(&code).await.unwrap().status, net.osaka.get(&code).await.unwrap().status]
            .iter()
            .filter(|s| **s == ResidentStatus::Active)
            .count();
        assert_eq!(active, 1, "{}", t.label);
        // Registering the same move-in twice is refused.
        let e = net
            .osaka
            .move_in(&op, &cert, FlaggedText::plain("address", "x").unwrap(), date("2026-04-11"), NOW)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict);

        net.sync_prefectures().await;
        // The national node sees Osaka first: the move-in is parked until the move-out arrives.
        let r = net.pull_national("27").await;
        assert_eq!(r[0].applied, 0, "{}", t.label);
        assert!(
            matches!(&r[0].stop, Some(Stop::Parked { waiting_for }) if waiting_for == "131016/2"),
            "{:?}",
            r[0].stop
        );
        assert!(net.national.record(&code).await.is_err());
        net.pull_national("13").await;
        let r = net.pull_national("27").await;
        assert_eq!(r[0].applied, 1);
        let rec = net.national.record(&code).await.unwrap();
        assert_eq!((rec.municipality.as_str(), rec.status, rec.version), ("271004", ResidentStatus::Active, 3));

        let feed = net.national.feed_after(0, 100).await.unwrap();
        assert_eq!(feed.iter().map(|e| e.feed_seq).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
        let move_in = feed.iter().find(|e| e.kind == NoticeKind::MoveIn).unwrap();
        assert_eq!(move_in.changed, vec!["address", "status", "municipality"], "{}", t.label);
        let move_out = feed.iter().find(|e| e.kind == NoticeKind::MoveOut).unwrap();
        assert_eq!(move_out.changed, vec!["status"]);
        // Everyone holds the same chain heads.
        let checks = national::compare_heads(net.national.db(), &net.prefectures()).await.unwrap();
        assert_eq!(checks.len(), 3);
        assert!(checks.iter().all(|c| c.equal), "{checks:?}");
    }
}

#[tokio::test]
async fn duplicates_are_no_ops_gaps_apply_nothing_and_a_forged_chain_halts_the_source() {
    for t in backends().await {
        let net = net(&t).await;
        let op = clerk();
        let ns = births(&net.tokyo, 4).await;
        let db = net.national.db();
        admit_keys_of(db, &net.tokyo).await;
        // Out of order: seq 3 before 1 and 2 → nothing applied, gap reported.
        let a = replica::apply_batch(db, Tier::National, &*verifier(), &ns[2..3]).await.unwrap();
        assert_eq!((a.applied, a.stop.clone()), (0, Some(Stop::Gap { expected: 1 })), "{}", t.label);
        let a = replica::apply_batch(db, Tier::National, &*verifier(), &ns[0..2]).await.unwrap();
        assert_eq!(a.applied, 2);
        // Duplicates: acknowledged, nothing changes.
        let a = replica::apply_batch(db, Tier::National, &*verifier(), &ns[0..2]).await.unwrap();
        assert_eq!((a.applied, a.duplicates), (0, 2));
        assert_eq!(count(db, "SELECT COUNT(*) FROM change_notice").await, 2);
        assert_eq!(count(db, "SELECT COUNT(*) FROM feed").await, 2);
        // Forged: seq 3 with altered content → diverged, halted, nothing of the batch applied.
        let mut forged = ns[2].clone();
        forged.body.record.items.name = FlaggedText::plain("name", "偽造").unwrap();
        let batch = vec![forged, ns[3].clone()];
        let e = replica::apply_batch(db, Tier::National, &*verifier(), &batch).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Integrity, "{}", t.label);
        assert!(e.to_string().contains("halted"), "{e}");
        assert_eq!(count(db, "SELECT COUNT(*) FROM change_notice").await, 2);
        // The halted source refuses even genuine notices until an operator resumes it.
        let e = replica::apply_batch(db, Tier::National, &*verifier(), &ns[2..4]).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Integrity);
        let (cur, halted) = replica::cursor(db, "131016").await.unwrap();
        assert_eq!(cur.applied_seq, 2);
        assert!(halted.is_some());
        let clerk_cannot = replica::resume(db, &clerk(), "131016", NOW).await.unwrap_err();
        assert_eq!(clerk_cannot.kind(), ErrorKind::Forbidden);
        replica::resume(db, &national_operator(), "131016", NOW).await.unwrap();
        assert_eq!(
            replica::resume(db, &national_operator(), "131016", NOW).await.unwrap_err().kind(),
            ErrorKind::Conflict
        );
        assert_eq!(replica::apply_batch(db, Tier::National, &*verifier(), &ns[2..4]).await.unwrap().applied, 2);
        // A notice re-sealed on another history (valid hash, wrong prev_hash) also diverges.
        let other = identity::notice::ChangeNotice::seal(lg("131041"), 1, [9; 32], ns[0].body.clone());
        assert!(replica::apply_batch(db, Tier::Prefecture, &*verifier(), &[other]).await.is_err());
        // A batch mixing sources is a caller error.
        let shin = net
            .shinjuku
            .register(&op, NoticeKind::Birth, items("x", "y", "2026-01-01"), date("2026-01-01"), NOW)
            .await
            .unwrap();
        let e = replica::apply_batch(db, Tier::National, &*verifier(), &[ns[0].clone(), shin]).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid);
    }
}

#[tokio::test]
async fn a_replica_restarted_mid_transfer_resumes_without_loss_or_duplication() {
    for t in backends().await {
        let net = net(&t).await;
        let ns = births(&net.tokyo, 12).await;
        let url = net._dbs[3].url.clone(); // prefecture 13's database
        admit_keys_of(&net.pref13, &net.tokyo).await;
        replica::apply_batch(&net.pref13, Tier::Prefecture, &*verifier(), &ns[..5]).await.unwrap();
        // "Crash": drop the pool, reopen the same database, and pull again from the source.
        net.pref13.close().await;
        let reopened = Db::open(&url).await.unwrap();
        let r = replica::pull(
            &reopened,
            Tier::Prefecture,
            &*verifier(),
            &peer_as(&net.tokyo_url, "prefecture:13"),
            Some("13"),
        )
        .await
        .unwrap();
        assert_eq!(r[0].applied, 7, "{}", t.label);
        let stored = store::notices_after(&reopened, "131016", 0, 100).await.unwrap();
        assert_eq!(stored, ns);
    }
}

#[tokio::test]
async fn a_wiped_national_node_is_rebuilt_from_the_prefectures_with_equal_chain_heads() {
    for t in backends().await {
        let net = net(&t).await;
        let op = clerk();
        let r = net
            .tokyo
            .register(&op, NoticeKind::FirstRegistration, items("a", "b", "1970-01-01"), date("2026-01-01"), NOW)
            .await
            .unwrap();
        net.tokyo.change_code(&op, &r.body.record.resident_code, date("2026-01-02"), NOW).await.unwrap();
        net.osaka
            .register(&op, NoticeKind::Birth, items("c", "d", "2026-01-01"), date("2026-01-01"), NOW)
            .await
            .unwrap();
        net.sync_prefectures().await;
        net.pull_national("13").await;
        net.pull_national("27").await;
        // Refuses a node that still has data.
        let e = national::rebuild(net.national.db(), &*verifier(), &net.prefectures()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict);
        let wiped = fresh(&t).await;
        let db = Db::open(&wiped.url).await.unwrap();
        let checks = national::rebuild(&db, &*verifier(), &net.prefectures()).await.unwrap();
        assert_eq!(checks.len(), 2, "{}", t.label);
        assert!(checks.iter().all(|c| c.equal), "{checks:?}");
        for table in ["SELECT COUNT(*) FROM resident", "SELECT COUNT(*) FROM feed", "SELECT COUNT(*) FROM retired_code"]
        {
            let (a, b) = (count(net.national.db(), table).await, count(&db, table).await);
            assert_eq!(a, b, "{table}");
        }
    }
}

#[tokio::test]
async fn a_prefecture_may_only_relay_its_own_municipalities() {
    let t = identity::store::testing::sqlite().unwrap();
    let net = net(&t).await;
    net.osaka
        .register(&clerk(), NoticeKind::Birth, items("c", "d", "2026-01-01"), date("2026-01-01"), NOW)
        .await
        .unwrap();
    net.sync_prefectures().await;
    // Prefecture 27's server offered as if it were 13: its Osaka source is ignored.
    let r = replica::pull(
        net.national.db(),
        Tier::National,
        &*verifier(),
        &peer_as(&net.pref27_url, "national"),
        Some("13"),
    )
    .await
    .unwrap();
    assert!(r.is_empty());
    assert_eq!(count(net.national.db(), "SELECT COUNT(*) FROM change_notice").await, 0);
}

#[tokio::test]
async fn bad_http_input_gets_clear_errors() {
    let t = identity::store::testing::sqlite().unwrap();
    let net = net(&t).await;
    // Tokyo's routes are read as its prefecture, prefecture 13's as the national node.
    let get = |u: String| {
        let c = client_as(if u.starts_with(&net.tokyo_url) { "prefecture:13" } else { "national" });
        async move {
            let r = c.get(u).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    // Without a party (no client certificate) every route is 401, before any input is read.
    for url in [
        format!("{}/v1/heads", net.tokyo_url),
        format!("{}/v1/sources/13/notices", net.pref13_url),
        format!("{}/v1/sources/131016/keys", net.tokyo_url),
    ] {
        let r = reqwest::Client::new().get(&url).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{url}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "unauthenticated", "{url}: {body}");
    }
    assert!(anonymous(&net.tokyo_url).heads().await.unwrap_err().to_string().contains("401"));
    // A municipality serves only its own source; bad codes and limits are 4xx with a message.
    assert_eq!(get(format!("{}/v1/sources/131041/notices", net.tokyo_url)).await.0, 404);
    // An unknown municipality at a prefecture is a 404 naming it, not an empty success.
    let (s, body) = get(format!("{}/v1/sources/472018/notices", net.pref13_url)).await;
    assert_eq!(s, 404, "{body}");
    assert!(body.contains("472018"), "{body}");
    let (s, body) = get(format!("{}/v1/sources/131017/notices", net.tokyo_url)).await;
    assert_eq!(s, 400);
    assert!(body.contains("check digit"), "{body}");
    assert_eq!(get(format!("{}/v1/sources/131016/notices?limit=100000", net.tokyo_url)).await.0, 400);
    assert_eq!(get(format!("{}/v1/sources/131016/notices?after=-1", net.tokyo_url)).await.0, 400);
    // Malformed JSON, wrong types and oversized bodies.
    let post = |body: String| {
        let c = client_as("municipality:271004");
        let u = format!("{}/v1/move-in-notices", net.tokyo_url);
        async move {
            let r = c.post(u).header("content-type", "application/json").body(body).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (s, body) = post("{not json".into()).await;
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("\"error\":\"invalid\""), "{body}");
    assert_eq!(post(r#"{"resident_code": 5}"#.into()).await.0, 400);
    assert!(post(format!("{{\"pad\":\"{}\"}}", "x".repeat(2 << 20))).await.0 >= 400);
    // A move-in notice for someone who never moved out is a conflict, not a success.
    let code = codes(100, 1)[0].clone();
    net.tokyo
        .register(&clerk(), NoticeKind::Birth, items("a", "b", "2026-01-01"), date("2026-01-01"), NOW)
        .await
        .unwrap();
    let n = MoveInNotice { resident_code: code, new_municipality: lg("271004"), notice_seq: 1 };
    let e = peer_as(&net.tokyo_url, "municipality:271004").send_move_in_notice(&n).await.unwrap_err();
    assert!(e.to_string().contains("409"), "{e}");
}

// ---------------------------------------------------------------------------------------
// Ownership (review finding C2): a replica applies only what the source may write.
// ---------------------------------------------------------------------------------------

/// A fake prefecture 13: advertises `source` with the head of `notices` in `/v1/heads`, and
/// answers every notices request with `notices`, whatever source was asked for.
async fn fake_prefecture(source: &str, notices: Vec<identity::notice::ChangeNotice>) -> String {
    use axum::routing::get;
    let last = notices.last().unwrap();
    let heads = identity::client::Heads::new(
        "prefecture".into(),
        "13".into(),
        vec![store::Head { source: source.to_owned(), seq: last.key.seq, hash: hex::encode(last.hash), halted: None }],
    );
    let router = axum::Router::new()
        .route(
            "/v1/heads",
            get(move || {
                let h = heads.clone();
                async move { axum::Json(h) }
            }),
        )
        .route(
            "/v1/sources/{source}/notices",
            get(move || {
                let page = notices.clone();
                async move { axum::Json(page) }
            }),
        );
    serve(router).await
}

/// The stored record row of `code` at the national node, verbatim (None if absent).
async fn national_row(net: &Net, code: &str) -> Option<(String, i64, i64, Vec<u8>)> {
    sqlx::query("SELECT municipality, status, version, record FROM resident WHERE resident_code = $1")
        .bind(code)
        .fetch_optional(net.national.db().pool())
        .await
        .unwrap()
        .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap(), r.try_get(2).unwrap(), r.try_get(3).unwrap()))
}

#[tokio::test]
async fn a_fake_prefecture_that_returns_another_municipalitys_notices_gets_nothing_applied() {
    for t in backends().await {
        let net = net(&t).await;
        let op = clerk();
        for i in 0..2 {
            net.osaka
                .register(
                    &op,
                    NoticeKind::Birth,
                    items(&format!("子{i}"), "大阪府1", "2026-01-01"),
                    date("2026-01-01"),
                    NOW,
                )
                .await
                .unwrap();
        }
        // The genuine Osaka chain, as prefecture 27 serves it.
        net.sync_prefectures().await;
        let osaka_chain = store::notices_after(&net.pref27, "271004", 0, 100).await.unwrap();
        assert_eq!(osaka_chain.len(), 2);
        // Prefecture 13 advertises 131016 (its own) but answers with Osaka's notices.
        let fake = fake_prefecture("131016", osaka_chain).await;
        let db = net.national.db();
        let r = replica::pull(db, Tier::National, &*verifier(), &peer_as(&fake, "national"), Some("13")).await.unwrap();
        assert_eq!(r.len(), 1, "{}", t.label);
        assert_eq!(r[0].source, "131016");
        assert_eq!(r[0].applied, 0);
        assert_eq!(
            r[0].error.as_deref(),
            Some("peer returned notices of 271004 when asked for 131016; page refused"),
            "{}",
            t.label
        );
        assert_eq!(count(db, "SELECT COUNT(*) FROM change_notice").await, 0, "{}", t.label);
        assert_eq!(count(db, "SELECT COUNT(*) FROM resident").await, 0);
        assert_eq!(count(db, "SELECT COUNT(*) FROM feed").await, 0);
        assert_eq!(count(db, "SELECT COUNT(*) FROM replica_cursor").await, 0, "no cursor moved or halted");
        // The same notices are genuine: from prefecture 27 they apply.
        let r = net.pull_national("27").await;
        assert_eq!((r[0].source.as_str(), r[0].applied, r[0].error.as_deref()), ("271004", 2, None), "{}", t.label);
    }
}

#[tokio::test]
async fn a_page_out_of_seq_order_is_refused() {
    let t = identity::store::testing::sqlite().unwrap();
    let net = net(&t).await;
    let mut ns = births(&net.tokyo, 3).await;
    ns.swap(1, 2);
    let fake = fake_prefecture("131016", ns).await;
    let db = net.national.db();
    let r = replica::pull(db, Tier::National, &*verifier(), &peer_as(&fake, "national"), Some("13")).await.unwrap();
    assert_eq!(r[0].applied, 0);
    assert!(r[0].error.as_deref().unwrap().contains("seq 2 after seq 3"), "{:?}", r[0].error);
    assert_eq!(count(db, "SELECT COUNT(*) FROM change_notice").await, 0);
}

#[tokio::test]
async fn a_correctly_chained_notice_about_another_municipalitys_resident_halts_its_source() {
    for t in backends().await {
        let net = net(&t).await;
        let op = clerk();
        let mine = net
            .tokyo
            .register(
                &op,
                NoticeKind::Birth,
                items("東京　一", "東京都千代田区1", "2026-01-01"),
                date("2026-01-01"),
                NOW,
            )
            .await
            .unwrap();
        let theirs = net
            .osaka
            .register(
                &op,
                NoticeKind::Birth,
                items("大阪　二", "大阪府大阪市北区1", "2026-01-01"),
                date("2026-01-01"),
                NOW,
            )
            .await
            .unwrap();
        let victim = theirs.body.record.resident_code.clone();
        net.sync_prefectures().await;
        net.pull_national("13").await;
        net.pull_national("27").await;
        let db = net.national.db();
        let (row_before, feed_before, notices_before) = (
            national_row(&net, victim.as_str()).await.unwrap(),
            count(db, "SELECT COUNT(*) FROM feed").await,
            count(db, "SELECT COUNT(*) FROM change_notice").await,
        );
        assert_eq!(feed_before, 2);
        // A genuine Tokyo notice not yet at the national node: the forgery is chained after it,
        // so the hash chain verifies and only the ownership rule stands in the way.
        let genuine = net
            .tokyo
            .move_within(
                &op,
                &mine.body.record.resident_code,
                FlaggedText::plain("address", "東京都千代田区2").unwrap(),
                date("2026-02-01"),
                NOW,
            )
            .await
            .unwrap();
        for kind in [NoticeKind::Death, NoticeKind::Correction, NoticeKind::CodeChange] {
            let mut body = theirs.body.clone();
            body.kind = kind;
            body.record.municipality = lg("131016");
            body.record.status = kind.status_after();
            body.record.version = 2;
            if kind == NoticeKind::Correction {
                body.record.items.address = FlaggedText::plain("address", "東京都港区9").unwrap();
            }
            if kind == NoticeKind::CodeChange {
                body.previous_code = Some(victim.clone());
                body.record.resident_code = codes(100, 20)[19].clone();
            }
            // Signed with 千代田区's own genuine key: the source is compromised, its key is not
            // forged, so only the ownership rule stands in the way.
            let forged = signed_by_source(identity::notice::ChangeNotice::seal(lg("131016"), 3, genuine.hash, body));
            let e =
                replica::apply_batch(db, Tier::National, &*verifier(), &[genuine.clone(), forged]).await.unwrap_err();
            assert!(matches!(&e, identity::Error::Ownership { seq: 3, .. }), "{}: {kind:?}: {e}", t.label);
            assert_eq!(e.kind(), ErrorKind::Integrity);
            assert!(e.to_string().contains("belongs to 271004, not 131016"), "{e}");
            let (cur, halted) = replica::cursor(db, "131016").await.unwrap();
            assert_eq!(cur.applied_seq, 1, "{}: nothing of the batch applied", t.label);
            let halted = halted.unwrap();
            assert!(halted.starts_with("ownership:"), "{halted}");
            assert_eq!(
                national_row(&net, victim.as_str()).await.unwrap(),
                row_before,
                "{kind:?}: projection unchanged"
            );
            assert_eq!(count(db, "SELECT COUNT(*) FROM feed").await, feed_before, "{kind:?}: no feed row");
            assert_eq!(count(db, "SELECT COUNT(*) FROM change_notice").await, notices_before);
            assert_eq!(count(db, "SELECT COUNT(*) FROM retired_code").await, 0);
            // Halted: the puller reports it and pulls nothing.
            net.sync_prefectures().await;
            let r = net.pull_national("13").await;
            let tokyo = r.iter().find(|r| r.source == "131016").unwrap();
            assert_eq!(tokyo.applied, 0);
            assert!(tokyo.error.as_deref().unwrap().contains("ownership:"), "{:?}", tokyo.error);
            replica::resume(db, &national_operator(), "131016", NOW).await.unwrap();
        }
        // After resume the genuine chain proceeds (the register + move within of one page included).
        let later = net
            .tokyo
            .register(
                &op,
                NoticeKind::Birth,
                items("東京　三", "東京都千代田区3", "2026-03-01"),
                date("2026-03-01"),
                NOW,
            )
            .await
            .unwrap();
        net.tokyo
            .move_within(
                &op,
                &later.body.record.resident_code,
                FlaggedText::plain("address", "東京都千代田区4").unwrap(),
                date("2026-03-02"),
                NOW,
            )
            .await
            .unwrap();
        net.sync_prefectures().await;
        let r = net.pull_national("13").await;
        let tokyo = r.iter().find(|r| r.source == "131016").unwrap();
        assert_eq!((tokyo.applied, tokyo.cursor_seq, tokyo.error.as_deref()), (3, 4, None), "{}", t.label);
        let rec = net.national.record(&later.body.record.resident_code).await.unwrap();
        assert_eq!((rec.municipality.as_str(), rec.version), ("131016", 2));
        assert_eq!(national_row(&net, victim.as_str()).await.unwrap(), row_before);
        let checks = national::compare_heads(db, &net.prefectures()).await.unwrap();
        assert!(checks.iter().all(|c| c.equal), "{checks:?}");
    }
}

#[tokio::test]
async fn a_move_in_without_that_residents_move_out_to_its_source_halts_its_source() {
    for t in backends().await {
        let net = net(&t).await;
        let op = clerk();
        let reg = net
            .tokyo
            .register(
                &op,
                NoticeKind::Birth,
                items("東京　一", "東京都千代田区1", "2026-01-01"),
                date("2026-01-01"),
                NOW,
            )
            .await
            .unwrap();
        let code = reg.body.record.resident_code.clone();
        let other = net
            .tokyo
            .register(
                &op,
                NoticeKind::Birth,
                items("東京　二", "東京都千代田区2", "2026-01-01"),
                date("2026-01-01"),
                NOW,
            )
            .await
            .unwrap();
        // Tokyo seq 3: the resident moves to Shinjuku, not to Osaka; seq 4: the other one to Osaka.
        let out = net.tokyo.move_out(&op, &code, lg("131041"), date("2026-02-01"), NOW).await.unwrap();
        let other_out = net
            .tokyo
            .move_out(&op, &other.body.record.resident_code, lg("271004"), date("2026-02-01"), NOW)
            .await
            .unwrap();
        let osaka_first = net
            .osaka
            .register(&op, NoticeKind::Birth, items("大阪　一", "大阪府1", "2026-01-01"), date("2026-01-01"), NOW)
            .await
            .unwrap();
        net.sync_prefectures().await;
        net.pull_national("13").await;
        net.pull_national("27").await;
        let db = net.national.db();
        let before = national_row(&net, code.as_str()).await.unwrap();
        assert_eq!(before.1, i64::from(u8::from(ResidentStatus::MovedOut)));
        let feed_before = count(db, "SELECT COUNT(*) FROM feed").await;
        // Osaka claims the resident with a move-in naming (a) the move-out to Shinjuku,
        // (b) the resident's birth, (c) someone else's move-out to Osaka as its predecessor.
        for (pred, why) in [
            (out.key.clone(), "to 131041, not 271004"),
            (reg.key.clone(), "is a Birth, not a move-out"),
            (other_out.key.clone(), "moved out resident"),
        ] {
            let mut body = out.body.clone();
            body.kind = NoticeKind::MoveIn;
            body.destination = None;
            body.predecessor = Some(pred);
            body.record.municipality = lg("271004");
            body.record.status = ResidentStatus::Active;
            body.record.version = out.body.record.version + 1;
            let forged =
                signed_by_source(identity::notice::ChangeNotice::seal(lg("271004"), 2, osaka_first.hash, body));
            let e = replica::apply_batch(db, Tier::National, &*verifier(), &[forged]).await.unwrap_err();
            assert!(matches!(&e, identity::Error::Ownership { seq: 2, .. }), "{}: {e}", t.label);
            assert!(e.to_string().contains(why), "{e}");
            let (cur, halted) = replica::cursor(db, "271004").await.unwrap();
            assert_eq!(cur.applied_seq, 1);
            assert!(halted.unwrap().starts_with("ownership:"));
            assert_eq!(national_row(&net, code.as_str()).await.unwrap(), before, "{}", t.label);
            assert_eq!(count(db, "SELECT COUNT(*) FROM feed").await, feed_before);
            replica::resume(db, &national_operator(), "271004", NOW).await.unwrap();
        }
        // The genuine move-in at Shinjuku applies.
        let cert = peer_as(&net.tokyo_url, "municipality:131041").move_out_certificate(&code).await.unwrap();
        net.shinjuku
            .move_in(&op, &cert, FlaggedText::plain("address", "東京都新宿区1").unwrap(), date("2026-02-02"), NOW)
            .await
            .unwrap();
        net.sync_prefectures().await;
        let r = net.pull_national("13").await;
        let shinjuku = r.iter().find(|r| r.source == "131041").unwrap();
        assert_eq!((shinjuku.applied, shinjuku.error.as_deref()), (1, None), "{}", t.label);
        let rec = net.national.record(&code).await.unwrap();
        assert_eq!((rec.municipality.as_str(), rec.status), ("131041", ResidentStatus::Active));
    }
}

#[tokio::test]
async fn a_registration_with_a_code_issued_to_another_municipality_halts_its_source() {
    let t = identity::store::testing::sqlite().unwrap();
    let net = net(&t).await;
    // The national node issues a pool to Osaka; Tokyo registers with one of its codes.
    let pool = net.national.allocate_pool(&national_operator(), &lg("271004"), 1, NOW).await.unwrap();
    let reg = net
        .tokyo
        .register(&clerk(), NoticeKind::Birth, items("x", "y", "2026-01-01"), date("2026-01-01"), NOW)
        .await
        .unwrap();
    let mut body = reg.body.clone();
    body.record.resident_code = pool[0].clone();
    let forged =
        signed_by_source(identity::notice::ChangeNotice::seal(lg("131016"), 1, identity::notice::GENESIS, body));
    let db = net.national.db();
    admit_keys_of(db, &net.tokyo).await;
    let e = replica::apply_batch(db, Tier::National, &*verifier(), &[forged]).await.unwrap_err();
    assert!(e.to_string().contains("was issued to 271004, not 131016"), "{e}");
    assert_eq!(count(db, "SELECT COUNT(*) FROM resident").await, 0);
    // Tokyo's genuine code (from a pool the national node has no record of) applies after resume.
    replica::resume(db, &national_operator(), "131016", NOW).await.unwrap();
    assert_eq!(replica::apply_batch(db, Tier::National, &*verifier(), &[reg]).await.unwrap().applied, 1);
}

#[tokio::test]
async fn a_prefecture_that_sees_a_return_through_another_prefecture_first_keeps_the_newer_record() {
    for t in backends().await {
        let net = net(&t).await;
        let op = clerk();
        let addr = |s: &str| FlaggedText::plain("address", s).unwrap();
        // Tokyo → Osaka → Shinjuku: prefecture 13 sees both ends, not the middle.
        let reg = net
            .tokyo
            .register(
                &op,
                NoticeKind::Birth,
                items("東京　一", "東京都千代田区1", "2026-01-01"),
                date("2026-01-01"),
                NOW,
            )
            .await
            .unwrap();
        let code = reg.body.record.resident_code.clone();
        net.tokyo.move_out(&op, &code, lg("271004"), date("2026-02-01"), NOW).await.unwrap();
        let cert = peer_as(&net.tokyo_url, "municipality:271004").move_out_certificate(&code).await.unwrap();
        net.osaka.move_in(&op, &cert, addr("大阪府1"), date("2026-02-02"), NOW).await.unwrap();
        net.osaka.move_out(&op, &code, lg("131041"), date("2026-03-01"), NOW).await.unwrap();
        let cert = peer_as(&net.osaka_url, "municipality:131041").move_out_certificate(&code).await.unwrap();
        let arrived = net.shinjuku.move_in(&op, &cert, addr("東京都新宿区1"), date("2026-03-02"), NOW).await.unwrap();
        assert_eq!(arrived.body.record.version, 5);
        // Prefecture 13 pulls Shinjuku before Tokyo: Tokyo's birth and move-out are older
        // than what it projects. They are stored and relayed, not projected; Tokyo is not halted.
        let r = replica::pull(
            &net.pref13,
            Tier::Prefecture,
            &*verifier(),
            &peer_as(&net.shinjuku_url, "prefecture:13"),
            Some("13"),
        )
        .await
        .unwrap();
        assert_eq!((r[0].applied, r[0].error.as_deref()), (1, None), "{}", t.label);
        let r = replica::pull(
            &net.pref13,
            Tier::Prefecture,
            &*verifier(),
            &peer_as(&net.tokyo_url, "prefecture:13"),
            Some("13"),
        )
        .await
        .unwrap();
        assert_eq!((r[0].applied, r[0].error.as_deref()), (2, None), "{}", t.label);
        let row: (String, i64) = sqlx::query("SELECT municipality, version FROM resident WHERE resident_code = $1")
            .bind(code.as_str())
            .fetch_one(net.pref13.pool())
            .await
            .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap()))
            .unwrap();
        assert_eq!(row, ("131041".to_owned(), 5), "{}: the newer record stays", t.label);
        assert_eq!(count(&net.pref13, "SELECT COUNT(*) FROM feed").await, 1, "stale notices are not fed");
        assert_eq!(count(&net.pref13, "SELECT COUNT(*) FROM change_notice").await, 3, "but they are stored");
        // The national node sees every side and applies all of it in causal order.
        net.sync_prefectures().await;
        for pref in ["13", "27", "13"] {
            for r in net.pull_national(pref).await {
                assert_eq!(r.error, None, "{}: {r:?}", t.label);
            }
        }
        let rec = net.national.record(&code).await.unwrap();
        assert_eq!((rec.municipality.as_str(), rec.status, rec.version), ("131041", ResidentStatus::Active, 5));
        assert_eq!(count(net.national.db(), "SELECT COUNT(*) FROM feed").await, 5);
        let checks = national::compare_heads(net.national.db(), &net.prefectures()).await.unwrap();
        assert!(checks.iter().all(|c| c.equal), "{checks:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Notice signatures (review finding H4): an appended notice with a valid chain but no valid
// signature halts its source at every tier; keys rotate; refused key certificates are not
// admitted.
// ---------------------------------------------------------------------------------------

/// How a relay on the path forges the notice it appends after every page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Forgery {
    /// Valid hash chain, no signature at all.
    Unsigned,
    /// Signed by another municipality's (genuine, CA-issued) notice key.
    OtherSourceKey,
    /// Signed by the source's own key, then one signature byte flipped.
    FlippedByte,
}

/// An on-path relay (the C3/H4 attacker, or a compromised prefecture server): forwards the
/// replication routes to `upstream` and, while a forgery is set, appends to every page of
/// notices a well-formed notice chained onto the page's last one.
#[derive(Debug)]
struct Relay {
    upstream: Peer,
    forgery: std::sync::Mutex<Option<Forgery>>,
}

impl Relay {
    fn set(&self, f: Option<Forgery>) {
        *self.forgery.lock().unwrap() = f;
    }
}

#[derive(Debug, serde::Deserialize)]
struct RelayPage {
    after: u64,
    limit: u32,
}

fn forge(last: &ChangeNotice, f: Forgery) -> ChangeNotice {
    let mut body = last.body.clone();
    body.kind = NoticeKind::Death;
    body.record.status = ResidentStatus::Deceased;
    body.record.version += 1;
    let source = last.key.source.clone();
    let mut n = ChangeNotice::seal(source.clone(), last.key.seq + 1, last.hash, body);
    match f {
        Forgery::Unsigned => {}
        Forgery::OtherSourceKey => sign_notice(&*notice_key("131041", "2026"), &mut n).unwrap(),
        Forgery::FlippedByte => {
            sign_notice(&*notice_key(source.as_str(), "2026"), &mut n).unwrap();
            n.signature.as_mut().unwrap().signature[0] ^= 0x01;
        }
    }
    assert!(n.verify_hash().is_ok(), "the forged notice chains correctly");
    n
}

/// A relay in front of `upstream`, which it calls as `party` (the party being relayed for).
async fn relay(upstream: &str, party: &str) -> (String, Arc<Relay>) {
    use axum::extract::{Path, Query, State};
    use axum::routing::get;
    let r = Arc::new(Relay { upstream: peer_as(upstream, party), forgery: std::sync::Mutex::new(None) });
    let router = axum::Router::new()
        .route(
            "/v1/heads",
            get(|State(r): State<Arc<Relay>>| async move { axum::Json(r.upstream.heads().await.unwrap()) }),
        )
        .route(
            "/v1/sources/{source}/notices",
            get(|State(r): State<Arc<Relay>>, Path(s): Path<String>, Query(p): Query<RelayPage>| async move {
                let mut page = r.upstream.notices(&s, p.after, p.limit).await.unwrap();
                let forgery = *r.forgery.lock().unwrap();
                if let (Some(f), Some(last)) = (forgery, page.last().cloned()) {
                    page.push(forge(&last, f));
                }
                axum::Json(page)
            }),
        )
        .route(
            "/v1/sources/{source}/keys",
            get(|State(r): State<Arc<Relay>>, Path(s): Path<String>| async move {
                axum::Json(r.upstream.notice_keys(&s).await.unwrap())
            }),
        )
        .with_state(r.clone());
    (serve(router).await, r)
}

async fn notices_of(db: &Db, source: &str) -> i64 {
    sqlx::query("SELECT COUNT(*) FROM change_notice WHERE source = $1")
        .bind(source)
        .fetch_one(db.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

/// Pulls `relay_url` into `db` with the relay forging `f`: the source must halt with a
/// `signature:` reason and nothing of the batch may be applied; then an operator resumes.
async fn assert_forgery_halts(db: &Db, tier: Tier, relay_url: &str, prefix: &str, f: Forgery, label: &str) {
    let before = (notices_of(db, "131016").await, count(db, "SELECT COUNT(*) FROM feed").await);
    let r =
        replica::pull(db, tier, &*verifier(), &peer_as(relay_url, &puller(tier, prefix)), Some(prefix)).await.unwrap();
    let rep = r.iter().find(|r| r.source == "131016").unwrap();
    assert_eq!(rep.applied, 0, "{label} {tier:?} {f:?}");
    let err = rep.error.as_deref().unwrap_or_default();
    assert!(err.contains("signature:") && err.contains("halted"), "{label} {tier:?} {f:?}: {err}");
    let (cur, halted) = replica::cursor(db, "131016").await.unwrap();
    assert_eq!(cur.applied_seq, 0, "{label} {tier:?} {f:?}: nothing applied");
    assert!(halted.as_deref().is_some_and(|h| h.starts_with("signature:")), "{halted:?}");
    let after = (notices_of(db, "131016").await, count(db, "SELECT COUNT(*) FROM feed").await);
    assert_eq!(after, before, "{label} {tier:?} {f:?}: no notice row, no feed row");
    // Halted for good: the next pull does not even fetch.
    let r =
        replica::pull(db, tier, &*verifier(), &peer_as(relay_url, &puller(tier, prefix)), Some(prefix)).await.unwrap();
    assert!(r.iter().any(|r| r.error.as_deref().is_some_and(|e| e.starts_with("halted: signature:"))), "{r:?}");
    replica::resume(db, &national_operator(), "131016", NOW).await.unwrap();
}

#[tokio::test]
async fn an_appended_notice_without_a_valid_signature_halts_its_source_at_both_tiers_until_resumed() {
    for t in backends().await {
        let net = net(&t).await;
        let genuine = births(&net.tokyo, 3).await;
        let forgeries = [Forgery::Unsigned, Forgery::OtherSourceKey, Forgery::FlippedByte];

        // Prefecture tier: the relay sits between 千代田区 and prefecture 13.
        let (relay_m, rm) = relay(&net.tokyo_url, "prefecture:13").await;
        for f in forgeries {
            rm.set(Some(f));
            assert_forgery_halts(&net.pref13, Tier::Prefecture, &relay_m, "13", f, t.label).await;
        }
        rm.set(None);
        let r =
            replica::pull(&net.pref13, Tier::Prefecture, &*verifier(), &peer_as(&relay_m, "prefecture:13"), Some("13"))
                .await
                .unwrap();
        assert_eq!((r[0].applied, r[0].error.as_deref()), (3, None), "{}", t.label);

        // National tier: the relay sits between prefecture 13 and the national node.
        let (relay_p, rp) = relay(&net.pref13_url, "national").await;
        let ndb = net.national.db();
        for f in forgeries {
            rp.set(Some(f));
            assert_forgery_halts(ndb, Tier::National, &relay_p, "13", f, t.label).await;
        }
        assert_eq!(count(ndb, "SELECT COUNT(*) FROM feed").await, 0, "{}", t.label);
        rp.set(None);
        let r =
            replica::pull(ndb, Tier::National, &*verifier(), &peer_as(&relay_p, "national"), Some("13")).await.unwrap();
        assert_eq!((r[0].applied, r[0].error.as_deref()), (3, None), "{}", t.label);
        assert_eq!(count(ndb, "SELECT COUNT(*) FROM feed").await, 3, "{}", t.label);
        // The prefecture re-served the municipality's signed notices unchanged.
        assert_eq!(store::notices_after(ndb, "131016", 0, 10).await.unwrap(), genuine, "{}", t.label);
        assert!(genuine.iter().all(|n| n.signature.is_some()));
    }
}

#[tokio::test]
async fn a_key_rotation_mid_chain_verifies_before_and_after_at_both_tiers() {
    for t in backends().await {
        let net = net(&t).await;
        let (old, new) = (notice_key("131016", "2026"), notice_key("131016", "2027"));
        assert_eq!(net.tokyo.key_id().as_deref(), Some(old.key_id()));
        let mut all = births(&net.tokyo, 2).await;
        net.sync_prefectures().await;
        net.pull_national("13").await;
        // Rotation: a new key certified by the network CA; old notices keep the old key id.
        net.tokyo.set_signer(new.clone(), NOW).await.unwrap();
        all.extend(births(&net.tokyo, 2).await);
        // 新宿区 rotates before anything was pulled: one page names both of its keys.
        births(&net.shinjuku, 1).await;
        net.shinjuku.set_signer(notice_key("131041", "2027"), NOW).await.unwrap();
        births(&net.shinjuku, 1).await;
        net.sync_prefectures().await;
        let r = net.pull_national("13").await;
        assert!(r.iter().all(|r| r.error.is_none()), "{}: {r:?}", t.label);
        let ids: Vec<&str> = all.iter().map(|n| n.signature.as_ref().unwrap().key_id.as_str()).collect();
        assert_eq!(ids, [old.key_id(), old.key_id(), new.key_id(), new.key_id()]);
        for (db, tier) in [(&net.pref13, "prefecture"), (net.national.db(), "national")] {
            assert_eq!(store::notices_after(db, "131016", 0, 10).await.unwrap(), all, "{} {tier}", t.label);
            assert_eq!(replica::cursor(db, "131041").await.unwrap().0.applied_seq, 2, "{} {tier}", t.label);
            assert_eq!(count(db, "SELECT COUNT(*) FROM notice_key").await, 4, "{} {tier}", t.label);
        }
        // Every node that serves notices serves the keys, rotated-out ones included.
        for (url, party) in [(&net.tokyo_url, "prefecture:13"), (&net.pref13_url, "national")] {
            let keys = peer_as(url, party).notice_keys("131016").await.unwrap();
            let ids: Vec<&str> = keys.iter().map(|k| k.key_id.as_str()).collect();
            assert!(ids.contains(&old.key_id()) && ids.contains(&new.key_id()), "{url}: {ids:?}");
        }
        let national_url = serve(http::national_router(http::NationalState { national: net.national.clone() })).await;
        assert_eq!(peer_as(&national_url, "ca:jpki-ca").notice_keys("131016").await.unwrap().len(), 2);
        // A municipality serves only its own keys.
        assert!(
            peer_as(&net.tokyo_url, "prefecture:13")
                .notice_keys("131041")
                .await
                .unwrap_err()
                .to_string()
                .contains("404")
        );
        // Key rows are append-only, like notices.
        let e = sqlx::query("DELETE FROM notice_key").execute(net.pref13.pool()).await;
        assert!(e.is_err(), "{}", t.label);
    }
}

#[tokio::test]
async fn a_key_certificate_the_verifier_refuses_is_not_admitted_and_the_notice_halts_its_source() {
    for t in backends().await {
        // 千代田区 starts signing with a key whose certificate names 新宿区, or with one from a
        // CA that is not the network CA.
        for (bad, label) in [
            (network_ca().issue(&lg("131041"), "misissued"), "names another municipality"),
            (identity::test_keys::TestNetworkCa::new("rogue").issue(&lg("131016"), "rogue"), "not the network CA"),
        ] {
            let net = net(&t).await;
            births(&net.tokyo, 1).await;
            net.sync_prefectures().await;
            net.tokyo.set_signer(bad.clone(), NOW).await.unwrap();
            births(&net.tokyo, 1).await;
            let r = replica::pull(
                &net.pref13,
                Tier::Prefecture,
                &*verifier(),
                &peer_as(&net.tokyo_url, "prefecture:13"),
                Some("13"),
            )
            .await
            .unwrap();
            let rep = r.iter().find(|r| r.source == "131016").unwrap();
            assert_eq!(rep.applied, 0, "{} {label}", t.label);
            let err = rep.error.as_deref().unwrap_or_default();
            assert!(err.contains("signature:") && err.contains("not admitted"), "{} {label}: {err}", t.label);
            let stored: i64 = sqlx::query("SELECT COUNT(*) FROM notice_key WHERE key_id = $1")
                .bind(bad.key_id())
                .fetch_one(net.pref13.pool())
                .await
                .unwrap()
                .try_get(0)
                .unwrap();
            assert_eq!(stored, 0, "{} {label}: a refused certificate is not stored", t.label);
            let (cur, halted) = replica::cursor(&net.pref13, "131016").await.unwrap();
            assert_eq!(cur.applied_seq, 1, "{} {label}", t.label);
            assert!(halted.is_some_and(|h| h.starts_with("signature:")), "{} {label}", t.label);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Long polls: the tiers follow a commit at once, not on their timers.
// ---------------------------------------------------------------------------------------

/// Waits (at most 30 s) until `check` holds; the pullers under test have a 10-minute timer,
/// so only a long poll can make it hold in time.
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "{what}: not within 30 s");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_long_poll_answers_at_the_commit_and_the_pullers_follow_without_their_timers() {
    for t in backends().await {
        let net = net(&t).await;
        let op = clerk();
        births(&net.tokyo, 1).await;
        let pref = peer_as(&net.tokyo_url, "prefecture:13");
        let h0 = pref.heads().await.unwrap();
        assert_eq!(h0.heads[0].seq, 1);
        assert_eq!(h0.version.len(), 32, "a version is 16 bytes of hex");
        // A different `since` answers at once; so does no wait.
        assert_eq!(pref.heads_wait("00", 10_000).await.unwrap(), h0);
        assert_eq!(pref.heads_wait(&h0.version, 0).await.unwrap(), h0);
        // Unchanged: the wait ends at its timeout with the same heads.
        assert_eq!(pref.heads_wait(&h0.version, 200).await.unwrap().version, h0.version);
        // A wait over the limit is refused (the client never asks for one).
        let raw = client_as("prefecture:13")
            .get(format!("{}/v1/heads?since={}&wait_ms=10001", net.tokyo_url, h0.version))
            .send()
            .await
            .unwrap();
        assert_eq!(raw.status(), 400);
        // A commit during the wait ends it with the new head.
        let waiting = tokio::spawn({
            let (pref, since) = (pref.clone(), h0.version.clone());
            async move { pref.heads_wait(&since, 10_000).await.unwrap() }
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!waiting.is_finished(), "the poll waits while nothing changes");
        births(&net.tokyo, 1).await;
        let h1 = waiting.await.unwrap();
        assert_eq!(h1.heads[0].seq, 2);
        assert_ne!(h1.version, h0.version);

        // The pullers, with a 10-minute timer, follow the next commits through their long polls.
        let minutes = std::time::Duration::from_secs(600);
        let p13 = tokio::spawn(replica::run_puller(
            net.pref13.clone(),
            Tier::Prefecture,
            verifier(),
            vec![(peer_as(&net.tokyo_url, "prefecture:13"), Some("13".into()))],
            minutes,
        ));
        let nat = tokio::spawn(replica::run_puller(
            net.national.db().clone(),
            Tier::National,
            verifier(),
            vec![(peer_as(&net.pref13_url, "national"), Some("13".into()))],
            minutes,
        ));
        let seq_at =
            |db: Db| async move { replica::cursor(&db, "131016").await.map(|(c, _)| c.applied_seq).unwrap_or(0) };
        eventually("the first round", || async { seq_at(net.national.db().clone()).await == 2 }).await;
        let national_url = serve(http::national_router(http::NationalState { national: net.national.clone() })).await;
        let feed = peer_as(&national_url, "ca:jpki-ca");
        let head = feed.feed_head().await.unwrap();
        // The CA's long poll of the feed's head ends with the next notice the national node applies.
        let feed_wait = tokio::spawn({
            let feed = feed.clone();
            async move { feed.feed_head_wait(head, 10_000).await.unwrap() }
        });
        let reg = net
            .tokyo
            .register(
                &op,
                NoticeKind::Birth,
                items("佐藤　陽葵", "東京都千代田区2", "2026-04-01"),
                date("2026-04-01"),
                NOW,
            )
            .await
            .unwrap();
        assert_eq!(reg.key.seq, 3);
        eventually("the prefecture", || async { seq_at(net.pref13.clone()).await == 3 }).await;
        eventually("the national node", || async { seq_at(net.national.db().clone()).await == 3 }).await;
        assert!(feed_wait.await.unwrap() > head, "the feed's long poll saw the new entry");
        p13.abort();
        nat.abort();
    }
}

#[tokio::test]
async fn a_peer_whose_heads_change_on_every_answer_cannot_make_the_puller_spin() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    // A hostile (or broken) prefecture: every answer to /v1/heads has a new version.
    let hits = Arc::new(AtomicUsize::new(0));
    let router = axum::Router::new().route(
        "/v1/heads",
        axum::routing::get({
            let hits = hits.clone();
            move || {
                let n = hits.fetch_add(1, Ordering::SeqCst);
                async move {
                    let head = store::Head { source: "131016".into(), seq: 0, hash: format!("{n:064x}"), halted: None };
                    axum::Json(identity::client::Heads::new("prefecture".into(), "13".into(), vec![head]))
                }
            }
        }),
    );
    let url = serve(router).await;
    let t = identity::store::testing::sqlite().unwrap();
    let db = Db::open(&t.url).await.unwrap();
    let puller = tokio::spawn(replica::run_puller(
        db,
        Tier::National,
        verifier(),
        vec![(peer_as(&url, "national"), Some("13".into()))],
        std::time::Duration::from_secs(600),
    ));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    puller.abort();
    let _ = puller.await;
    let n = hits.load(Ordering::SeqCst);
    // Without the gap between polls this is thousands (one loopback round trip each); with it,
    // at most one long poll and one pull per 10 ms.
    assert!(n >= 2, "the puller polled the peer ({n} requests)");
    assert!(n < 400, "{n} requests in half a second: the long poll spins");
}
