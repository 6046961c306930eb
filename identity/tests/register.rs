//! Municipal register and national pools on SQLite and PostgreSQL: one transaction per
//! change, gapless chained notices, operator log, pools that never overlap, bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::*;
use identity::ErrorKind;
use identity::national::National;
use identity::notice::{GENESIS, NoticeKind, chain_hash};
use identity::notice_sig::NoticeSigner;
use identity::operator::{Operator, Role};
use identity::person::{FlaggedText, ResidentStatus};
use identity::store::{self, Db};
use sqlx::Row;

async fn count(db: &Db, sql: &'static str) -> i64 {
    sqlx::query(sql).fetch_one(db.pool()).await.unwrap().try_get(0).unwrap()
}

#[tokio::test]
async fn every_change_is_one_transaction_of_record_notice_and_log_with_a_gapless_chain() {
    for t in backends().await {
        let m = municipality(&t, "131016", 1_000_000_000).await;
        let op = clerk();
        let a = m
            .register(
                &op,
                NoticeKind::Birth,
                items("山田　花子", "東京都千代田区1", "2026-03-01"),
                date("2026-03-01"),
                NOW,
            )
            .await
            .unwrap();
        let code = a.body.record.resident_code.clone();
        m.move_within(&op, &code, FlaggedText::plain("address", "東京都千代田区2").unwrap(), date("2026-03-02"), NOW)
            .await
            .unwrap();
        let mut fixed = a.body.record.items.clone();
        fixed.name = FlaggedText::new("name", "山田　華子", "00100").unwrap();
        m.correct(&op, &code, fixed, date("2026-03-03"), NOW).await.unwrap();
        let changed = m.change_code(&op, &code, date("2026-03-04"), NOW).await.unwrap();
        let new_code = changed.body.record.resident_code.clone();
        assert_ne!(new_code, code, "{}", t.label);
        assert_eq!(changed.body.previous_code.as_ref(), Some(&code));
        assert_eq!(changed.body.record.version, 4);

        let all = store::notices_after(m.db(), "131016", 0, 100).await.unwrap();
        assert_eq!(all.iter().map(|n| n.key.seq).collect::<Vec<_>>(), vec![1, 2, 3, 4], "{}", t.label);
        let mut prev = GENESIS;
        for n in &all {
            assert_eq!(n.prev_hash, prev);
            assert_eq!(n.hash, chain_hash(&prev, &n.encoding()));
            prev = n.hash;
        }
        assert_eq!(count(m.db(), "SELECT COUNT(*) FROM operator_log").await, 4, "{}", t.label);
        // The old code is retired: it no longer names anyone and never comes back.
        let e = m
            .move_within(&op, &code, FlaggedText::plain("address", "x").unwrap(), date("2026-03-05"), NOW)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{}", t.label);
        assert_eq!(count(m.db(), "SELECT COUNT(*) FROM retired_code").await, 1);
        // Notices are immutable in the database itself.
        assert!(sqlx::query("UPDATE change_notice SET kind = 1").execute(m.db().pool()).await.is_err(), "{}", t.label);
        assert!(sqlx::query("DELETE FROM change_notice").execute(m.db().pool()).await.is_err(), "{}", t.label);
    }
}

#[tokio::test]
async fn refused_changes_store_nothing() {
    for t in backends().await {
        let m = municipality(&t, "131016", 2_000_000_000).await;
        let op = clerk();
        let wrong_role = Operator::new("nat-1", Role::NationalOperator).unwrap();
        let e = m
            .register(&wrong_role, NoticeKind::Birth, items("a", "b", "2026-01-01"), date("2026-01-01"), NOW)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Forbidden);
        let e = m
            .register(&op, NoticeKind::Death, items("a", "b", "2026-01-01"), date("2026-01-01"), NOW)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid);
        let n = m
            .register(
                &op,
                NoticeKind::FirstRegistration,
                items("佐藤　一郎", "東京都千代田区3", "1950-01-01"),
                date("2026-01-01"),
                NOW,
            )
            .await
            .unwrap();
        let code = n.body.record.resident_code.clone();
        m.remove(&op, &code, NoticeKind::Death, date("2026-01-02"), NOW).await.unwrap();
        // A dead resident cannot move, be corrected or change code.
        let e = m.move_out(&op, &code, lg("271004"), date("2026-01-03"), NOW).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict, "{}", t.label);
        let e = m.change_code(&op, &code, date("2026-01-03"), NOW).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict);
        // Correction that changes nothing is refused.
        let n2 = m
            .register(&op, NoticeKind::FirstRegistration, items("b", "c", "1990-01-01"), date("2026-01-01"), NOW)
            .await
            .unwrap();
        let e = m
            .correct(&op, &n2.body.record.resident_code, n2.body.record.items.clone(), date("2026-01-05"), NOW)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid);
        assert_eq!(count(m.db(), "SELECT COUNT(*) FROM change_notice").await, 3, "{}", t.label);
        assert_eq!(count(m.db(), "SELECT COUNT(*) FROM operator_log").await, 3);
        assert_eq!(m.get(&code).await.unwrap().status, ResidentStatus::Deceased);
    }
}

#[tokio::test]
async fn invalid_identity_input_is_rejected_with_the_field_named() {
    assert!(FlaggedText::new("name", "山田", "0").unwrap_err().to_string().contains("name"));
    assert!(FlaggedText::new("name", "山田", "02").is_err());
    assert!(FlaggedText::plain("address", " ").is_err());
    assert!(FlaggedText::plain("address", &"長".repeat(300)).is_err());
    assert!("13101".parse::<identity::ids::LgCode>().is_err());
    assert!("131017".parse::<identity::ids::LgCode>().unwrap_err().to_string().contains("check digit"));
    assert!(serde_json::from_str::<identity::person::Sex>("3").is_err());
}

#[tokio::test]
async fn an_exhausted_pool_is_a_clear_error_and_stores_nothing() {
    for t in backends().await {
        let m = signed_municipality(Db::open(&t.url).await.unwrap(), "131016").await;
        m.add_pool(&codes(5, 1)).await.unwrap();
        let op = clerk();
        m.register(&op, NoticeKind::Birth, items("a", "b", "2026-01-01"), date("2026-01-01"), NOW).await.unwrap();
        let e = m
            .register(&op, NoticeKind::Birth, items("c", "d", "2026-01-01"), date("2026-01-01"), NOW)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("pool"), "{e}");
        assert_eq!(count(m.db(), "SELECT COUNT(*) FROM change_notice").await, 1);
    }
}

use identity::municipal::Municipality;

#[tokio::test]
async fn pools_never_overlap_and_concurrent_registration_across_municipalities_has_no_duplicates() {
    for t in backends().await {
        let law = Arc::new(identity::law::LawTable::seed().unwrap());
        let national = National::open(Db::open(&t.url).await.unwrap(), law).await.unwrap();
        let op = national_operator();
        // 12 municipalities of different prefectures ask concurrently.
        let municipalities: Vec<&str> = vec![
            "011002", "131016", "131041", "141003", "271004", "271276", "012025", "132012", "142042", "272078",
            "401005", "472018",
        ];
        let mut tasks = Vec::new();
        for code in &municipalities {
            let (n, op, code) = (national.clone(), op.clone(), lg(code));
            tasks.push(tokio::spawn(async move { n.allocate_pool(&op, &code, 400, NOW).await.unwrap() }));
        }
        let mut pools = Vec::new();
        for task in tasks {
            pools.push(task.await.unwrap());
        }
        let all: HashSet<_> = pools.iter().flatten().cloned().collect();
        assert_eq!(all.len(), 12 * 400, "{}: pools overlap", t.label);
        // Each municipality registers concurrently from its own pool on its own database.
        let mut tasks = Vec::new();
        for (code, pool) in municipalities.iter().zip(pools) {
            let db = fresh(&t).await;
            let code = lg(code);
            tasks.push(tokio::spawn(async move {
                let m = signed_municipality(Db::open(&db.url).await.unwrap(), code.as_str()).await;
                m.add_pool(&pool[..25]).await.unwrap();
                let mut got = Vec::new();
                for i in 0..25 {
                    let n = m
                        .register(
                            &clerk(),
                            NoticeKind::Birth,
                            items(&format!("子{i}"), "住所", "2026-01-01"),
                            date("2026-01-01"),
                            NOW,
                        )
                        .await
                        .unwrap();
                    got.push(n.body.record.resident_code);
                }
                drop(db);
                got
            }));
        }
        let mut seen = HashSet::new();
        for task in tasks {
            for c in task.await.unwrap() {
                assert!(all.contains(&c), "code {c} was not issued by the national node");
                assert!(seen.insert(c.clone()), "{}: duplicate resident code {c}", t.label);
            }
        }
        assert_eq!(seen.len(), 12 * 25);
        let e = national.allocate_pool(&op, &lg("011002"), 0, NOW).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid);
        let e = national.allocate_pool(&clerk(), &lg("011002"), 5, NOW).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Forbidden);
    }
}

#[tokio::test]
async fn a_municipality_without_a_notice_key_commits_nothing() {
    for t in backends().await {
        let m = Municipality::open(Db::open(&t.url).await.unwrap(), lg("131016")).await.unwrap();
        m.add_pool(&codes(5, 2)).await.unwrap();
        assert_eq!(m.key_id(), None);
        let e = m
            .register(&clerk(), NoticeKind::Birth, items("a", "b", "2026-01-01"), date("2026-01-01"), NOW)
            .await
            .unwrap_err();
        assert!(matches!(e, identity::Error::NoNoticeKey { .. }), "{}: {e}", t.label);
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert_eq!(count(m.db(), "SELECT COUNT(*) FROM change_notice").await, 0);
        assert_eq!(m.pool_remaining().await.unwrap(), 2, "{}: no code drawn", t.label);
        // With a key installed every notice is signed by it, in the sealing transaction.
        let m = m.with_signer(notice_key("131016", "2026")).await.unwrap();
        let n = m
            .register(&clerk(), NoticeKind::Birth, items("a", "b", "2026-01-01"), date("2026-01-01"), NOW)
            .await
            .unwrap();
        let stored = store::notices_after(m.db(), "131016", 0, 10).await.unwrap();
        assert_eq!(stored, vec![n.clone()]);
        let sig = n.signature.unwrap();
        assert_eq!((sig.version, sig.key_id.as_str()), (1, notice_key("131016", "2026").key_id()));
        // Another certificate under a stored key id is refused; the current key stays.
        let clash = identity::test_keys::TestNetworkCa::new("other").issue(&lg("131016"), "2026");
        assert_eq!(clash.key_id(), sig.key_id);
        let e = m.set_signer(clash, NOW).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict, "{}: {e}", t.label);
        assert_eq!(m.key_id().as_deref(), Some(sig.key_id.as_str()));
    }
}

#[tokio::test]
async fn a_database_cannot_be_reopened_as_another_node() {
    let t = identity::store::testing::sqlite().unwrap();
    Municipality::open(Db::open(&t.url).await.unwrap(), lg("131016")).await.unwrap();
    let e = Municipality::open(Db::open(&t.url).await.unwrap(), lg("131041")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(Db::open("sqlite::memory:").await.is_err());
}

#[tokio::test]
async fn concurrent_clerks_of_one_municipality_all_succeed_with_a_gapless_chain() {
    for t in backends().await {
        let m = municipality(&t, "131016", 3_000_000_000).await;
        let mut tasks = Vec::new();
        for i in 0..16 {
            let m = m.clone();
            tasks.push(tokio::spawn(async move {
                let items = items(&format!("子{i}"), "東京都千代田区1", "2026-01-01");
                m.register(&clerk(), NoticeKind::Birth, items, date("2026-01-01"), NOW).await
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap_or_else(|e| panic!("{}: {e}", t.label));
        }
        let all = store::notices_after(m.db(), "131016", 0, 100).await.unwrap();
        assert_eq!(all.iter().map(|n| n.key.seq).collect::<Vec<_>>(), (1..=16).collect::<Vec<u64>>(), "{}", t.label);
        let codes: HashSet<_> = all.iter().map(|n| n.body.record.resident_code.clone()).collect();
        assert_eq!(codes.len(), 16);
    }
}
