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
use identity::notice::NoticeKind;
use identity::person::{FlaggedText, ResidentStatus};
use identity::replica::{self, Stop, Tier};
use identity::store::testing::TestDb;
use identity::store::{self, Db};
use sqlx::Row;

const PEER_SECRET: &str = "peer-secret-of-the-test-network";

fn token() -> http::PeerToken {
    http::PeerToken(Some(PEER_SECRET.into()))
}

/// A prefecture node's router on `db` (claimed for `code`).
async fn prefecture_router(db: &Db, code: &str) -> axum::Router {
    identity::store::claim_identity(db, "prefecture", code).await.unwrap();
    let law = Arc::new(identity::law::LawTable::seed().unwrap());
    let provider = identity::provision::Provider::open(db.clone(), law).await.unwrap();
    http::prefecture_router(http::PrefectureState {
        db: db.clone(),
        code: code.to_owned(),
        peer_token: token(),
        provider,
        operator_token: String::new(),
    })
}

/// A client presenting the network's node-to-node token.
fn peer(url: &str) -> Peer {
    Peer::new(url).with_token(Some(PEER_SECRET.into()))
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
        tokyo_url: serve(http::municipal_router(tokyo.clone(), token())).await,
        shinjuku_url: serve(http::municipal_router(shinjuku.clone(), token())).await,
        osaka_url: serve(http::municipal_router(osaka.clone(), token())).await,
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
            replica::pull(&self.pref13, Tier::Prefecture, &*verifier(), &peer(url), Some("13")).await.unwrap();
        }
        replica::pull(&self.pref27, Tier::Prefecture, &*verifier(), &peer(&self.osaka_url), Some("27")).await.unwrap();
    }

    async fn pull_national(&self, pref: &str) -> Vec<replica::SourceReport> {
        let url = if pref == "13" { &self.pref13_url } else { &self.pref27_url };
        replica::pull(self.national.db(), Tier::National, &*verifier(), &peer(url), Some(pref)).await.unwrap()
    }

    fn prefectures(&self) -> Vec<Peer> {
        vec![peer(&self.pref13_url), peer(&self.pref27_url)]
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
        let cert = peer(&net.tokyo_url).move_out_certificate(&code).await.unwrap();
        let moved = net
            .osaka
            .move_in(&op, &cert, FlaggedText::plain("address", "大阪府大阪市北区1").unwrap(), date("2026-04-11"), NOW)
            .await
            .unwrap();
        assert_eq!(moved.body.predecessor.as_ref(), Some(&cert.move_out));
        // 転入通知: first delivery records, the retry is a no-op; one active record in the end.
        let notice =
            MoveInNotice { resident_code: code.clone(), new_municipality: lg("271004"), notice_seq: moved.key.seq };
        assert!(peer(&net.tokyo_url).send_move_in_notice(&notice).await.unwrap());
        assert!(!peer(&net.tokyo_url).send_move_in_notice(&notice).await.unwrap());
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
        let r =
            replica::pull(&reopened, Tier::Prefecture, &*verifier(), &peer(&net.tokyo_url), Some("13")).await.unwrap();
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
    let r = replica::pull(net.national.db(), Tier::National, &*verifier(), &peer(&net.pref27_url), Some("13"))
        .await
        .unwrap();
    assert!(r.is_empty());
    assert_eq!(count(net.national.db(), "SELECT COUNT(*) FROM change_notice").await, 0);
}

#[tokio::test]
async fn bad_http_input_gets_clear_errors() {
    let t = identity::store::testing::sqlite().unwrap();
    let net = net(&t).await;
    let client = reqwest::Client::new();
    let get = |u: String| {
        let c = client.clone();
        async move {
            let r = c.get(u).bearer_auth(PEER_SECRET).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    // Node-to-node routes need the peer token.
    for url in [format!("{}/v1/heads", net.tokyo_url), format!("{}/v1/sources/13/notices", net.pref13_url)] {
        let r = client.get(&url).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{url}");
        let r = client.get(&url).bearer_auth("wrong").send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{url}");
    }
    assert!(Peer::new(&net.tokyo_url).heads().await.unwrap_err().to_string().contains("401"));
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
        let c = client.clone();
        let u = format!("{}/v1/move-in-notices", net.tokyo_url);
        async move {
            let r = c
                .post(u)
                .bearer_auth(PEER_SECRET)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
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
    let e = peer(&net.tokyo_url).send_move_in_notice(&n).await.unwrap_err();
    assert!(e.to_string().contains("409"), "{e}");
}
