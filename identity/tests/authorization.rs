//! The HTTP handlers wire the authorization table (`identity::authz`, docs/authorization.md):
//! every cell has a unit test in `authz.rs`; these check, over real HTTP on loopback and on
//! SQLite and PostgreSQL, that each route asks it, refuses with 403 and the stable reason
//! code (401 without a party), and writes nothing durable for a refusal. Callers are named
//! through the test double of the mutual-TLS identity (`common::serve`, `common::client_as`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use std::sync::Arc;

use common::*;
use identity::client::PoolRequest;
use identity::http::{self, NationalState, PrefectureState};
use identity::municipal::Municipality;
use identity::national::National;
use identity::notice::NoticeKind;
use identity::provision::Provider;
use identity::replica::Tier;
use identity::store::Db;
use identity::store::testing::TestDb;
use serde_json::{Value, json};
use sqlx::Row;

struct World {
    tokyo: Municipality,
    tokyo_url: String,
    pref13: Db,
    pref13_url: String,
    national: National,
    national_url: String,
    /// A resident of 千代田区 who moved out to 大阪市 (271004).
    moved: identity::ids::ResidentCode,
    _dbs: Vec<TestDb>,
}

async fn world(like: &TestDb) -> World {
    let (mdb, pdb, ndb) = (fresh(like).await, fresh(like).await, fresh(like).await);
    let tokyo = signed_municipality(Db::open(&mdb.url).await.unwrap(), "131016").await;
    tokyo.add_pool(&codes(500, 5)).await.unwrap();
    let reg = tokyo
        .register(
            &clerk(),
            NoticeKind::FirstRegistration,
            items("山田　花子", "東京都千代田区1", "1980-02-29"),
            date("2026-04-01"),
            NOW,
        )
        .await
        .unwrap();
    let moved = reg.body.record.resident_code.clone();
    tokyo.move_out(&clerk(), &moved, lg("271004"), date("2026-04-10"), NOW).await.unwrap();
    let pref13 = Db::open(&pdb.url).await.unwrap();
    identity::store::claim_identity(&pref13, "prefecture", "13").await.unwrap();
    let law = Arc::new(identity::law::LawTable::seed().unwrap());
    let provider = Provider::open(pref13.clone(), law.clone()).await.unwrap();
    let national = National::open(Db::open(&ndb.url).await.unwrap(), law).await.unwrap();
    World {
        tokyo_url: serve(http::municipal_router(tokyo.clone())).await,
        pref13_url: serve(http::prefecture_router(PrefectureState {
            db: pref13.clone(),
            code: "13".parse().unwrap(),
            provider,
        }))
        .await,
        national_url: serve(http::national_router(NationalState { national: national.clone() })).await,
        tokyo,
        pref13,
        national,
        moved,
        _dbs: vec![mdb, pdb, ndb],
    }
}

/// `GET url` (or `POST url` with `body`) as `party` (none: no client certificate): the
/// status and the JSON answer (`Null` if it is not JSON).
async fn call(party: Option<&str>, url: &str, body: Option<Value>) -> (u16, Value) {
    let c = match party {
        Some(p) => client_as(p),
        None => reqwest::Client::new(),
    };
    let r = match body {
        Some(b) => c.post(url).json(&b).send().await.unwrap(),
        None => c.get(url).send().await.unwrap(),
    };
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Asserts that `party` is refused on `url` with 403 and `reason`.
async fn assert_denied(party: &str, url: &str, body: Option<Value>, reason: &str) {
    let (status, answer) = call(Some(party), url, body).await;
    assert_eq!(status, 403, "{party} {url}: {answer}");
    assert_eq!(answer["error"], "forbidden", "{party} {url}: {answer}");
    assert_eq!(answer["reason"], reason, "{party} {url}: {answer}");
}

async fn count(db: &Db, sql: &'static str) -> i64 {
    sqlx::query(sql).fetch_one(db.pool()).await.unwrap().try_get(0).unwrap()
}

/// Rows of every table a refused request could have written to, per node.
async fn durable_rows(w: &World) -> Vec<i64> {
    let mut out = Vec::new();
    for db in [w.national.db(), &w.pref13] {
        for sql in [
            "SELECT COUNT(*) FROM provision_log",
            "SELECT COUNT(*) FROM operator_log",
            "SELECT COUNT(*) FROM issued_code",
            "SELECT COUNT(*) FROM change_notice",
            "SELECT COUNT(*) FROM replica_cursor",
        ] {
            out.push(count(db, sql).await);
        }
    }
    for sql in
        ["SELECT COUNT(*) FROM move_in_notification", "SELECT COUNT(*) FROM operator_log", "SELECT COUNT(*) FROM feed"]
    {
        out.push(count(w.tokyo.db(), sql).await);
    }
    out
}

#[tokio::test]
async fn a_municipality_is_refused_the_national_nodes_notices_feed_and_reports() {
    for t in backends().await {
        let w = world(&t).await;
        let n = &w.national_url;
        // The national node holds 千代田区's chain, so a refusal is not a 404 in disguise.
        pull_tokyo(&w).await;
        for party in ["municipality:131041", "municipality:131016"] {
            for url in [
                format!("{n}/v1/sources/131016/notices"),
                format!("{n}/v1/sources/131016/keys"),
                format!("{n}/v1/feed"),
                format!("{n}/v1/feed/head"),
                format!("{n}/v1/disclosure/{}", w.moved),
                format!("{n}/v1/statistics?years=2026"),
            ] {
                assert_denied(party, &url, None, "party_not_allowed").await;
            }
        }
        // The parties the table names get through the same routes.
        for url in [format!("{n}/v1/sources/131016/notices"), format!("{n}/v1/feed"), format!("{n}/v1/feed/head")] {
            assert_eq!(call(Some("ca:jpki-ca"), &url, None).await.0, 200, "{} {url}", t.label);
        }
        let keys = peer_as(n, "ca:jpki-ca").notice_keys("131016").await.unwrap();
        assert_eq!(keys.len(), 1, "{}", t.label);
        assert_eq!(call(Some("operator:op1"), &format!("{n}/v1/statistics?years=2026"), None).await.0, 200);
        // A prefecture serves notices to the national node only.
        let p = &w.pref13_url;
        assert_denied("municipality:131016", &format!("{p}/v1/sources/131016/notices"), None, "party_not_allowed")
            .await;
        assert_denied("ca:jpki-ca", &format!("{p}/v1/sources/131016/keys"), None, "party_not_allowed").await;
        assert_eq!(call(Some("national"), &format!("{p}/v1/sources/131016/notices"), None).await.0, 200);
        // The feed is not served by a prefecture at all.
        assert_eq!(call(Some("ca:jpki-ca"), &format!("{p}/v1/feed"), None).await.0, 404);
    }
}

/// Prefecture 13 pulls 千代田区 and the national node pulls prefecture 13.
async fn pull_tokyo(w: &World) {
    let r = identity::replica::pull(
        &w.pref13,
        Tier::Prefecture,
        &*verifier(),
        &peer_as(&w.tokyo_url, "prefecture:13"),
        Some("13"),
    )
    .await
    .unwrap();
    assert_eq!((r[0].applied, r[0].error.as_deref()), (2, None));
    let r = identity::replica::pull(
        w.national.db(),
        Tier::National,
        &*verifier(),
        &peer_as(&w.pref13_url, "national"),
        Some("13"),
    )
    .await
    .unwrap();
    assert_eq!((r[0].applied, r[0].error.as_deref()), (2, None));
}

#[tokio::test]
async fn a_pool_for_another_municipality_is_refused_and_allocates_nothing() {
    for t in backends().await {
        let w = world(&t).await;
        let url = format!("{}/v1/code-pools", w.national_url);
        let req = serde_json::to_value(PoolRequest { municipality: lg("131016"), count: 5 }).unwrap();
        for party in ["municipality:131041", "municipality:271004"] {
            assert_denied(party, &url, Some(req.clone()), "not_own_municipality").await;
        }
        for party in ["operator:op1", "prefecture:13", "national", "ca:jpki-ca"] {
            assert_denied(party, &url, Some(req.clone()), "party_not_allowed").await;
        }
        let db = w.national.db();
        assert_eq!(count(db, "SELECT COUNT(*) FROM issued_code").await, 0, "{}", t.label);
        assert_eq!(count(db, "SELECT COUNT(*) FROM operator_log").await, 0, "{}", t.label);
        // The municipality itself gets its pool, logged under its own party name.
        let pool = peer_as(&w.national_url, "municipality:131016")
            .allocate_pool(&PoolRequest { municipality: lg("131016"), count: 5 })
            .await
            .unwrap();
        assert_eq!(pool.len(), 5);
        let issued_to: Vec<String> = sqlx::query("SELECT municipality FROM issued_code")
            .fetch_all(db.pool())
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.try_get(0).unwrap())
            .collect();
        assert_eq!(issued_to, vec!["131016"; 5], "{}", t.label);
        let (who, action): (String, String) = sqlx::query("SELECT operator, action FROM operator_log")
            .fetch_one(db.pool())
            .await
            .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap()))
            .unwrap();
        assert_eq!((who.as_str(), action.as_str()), ("urn:jpki:municipality:131016", "allocate_pool"));
    }
}

#[tokio::test]
async fn the_move_out_certificate_goes_only_to_the_destination_and_move_in_notices_only_from_it() {
    for t in backends().await {
        let w = world(&t).await;
        let url = format!("{}/v1/move-out/{}", w.tokyo_url, w.moved);
        // 新宿区 is not where the resident went.
        assert_denied("municipality:131041", &url, None, "not_move_destination").await;
        // The municipality itself, its prefecture or the national node never ask for it.
        assert_denied("municipality:131016", &url, None, "not_own_municipality").await;
        for party in ["prefecture:13", "national", "operator:op1"] {
            assert_denied(party, &url, None, "party_not_allowed").await;
        }
        // 大阪市 is.
        let cert = peer_as(&w.tokyo_url, "municipality:271004").move_out_certificate(&w.moved).await.unwrap();
        assert_eq!(cert.destination, lg("271004"), "{}", t.label);
        // A 転入通知 naming 大阪市 comes only from 大阪市.
        let notice = serde_json::to_value(identity::client::MoveInNotice {
            resident_code: w.moved.clone(),
            new_municipality: lg("271004"),
            notice_seq: 1,
        })
        .unwrap();
        let url = format!("{}/v1/move-in-notices", w.tokyo_url);
        assert_denied("municipality:131041", &url, Some(notice.clone()), "not_own_municipality").await;
        assert_denied("prefecture:13", &url, Some(notice.clone()), "party_not_allowed").await;
        assert_eq!(count(w.tokyo.db(), "SELECT COUNT(*) FROM move_in_notification").await, 0, "{}", t.label);
        assert_eq!(call(Some("municipality:271004"), &url, Some(notice)).await, (200, json!(true)));
    }
}

#[tokio::test]
async fn a_municipality_serves_its_chain_only_to_its_own_prefecture() {
    let t = identity::store::testing::sqlite().unwrap();
    let w = world(&t).await;
    let m = &w.tokyo_url;
    for url in
        [format!("{m}/v1/heads"), format!("{m}/v1/sources/131016/notices"), format!("{m}/v1/sources/131016/keys")]
    {
        assert_denied("prefecture:27", &url, None, "not_own_prefecture").await;
        assert_denied("national", &url, None, "party_not_allowed").await;
        assert_denied("municipality:271004", &url, None, "party_not_allowed").await;
        assert_eq!(call(Some("prefecture:13"), &url, None).await.0, 200, "{url}");
    }
    // Operators may read the heads (no personal data), not the notices.
    assert_eq!(call(Some("operator:op1"), &format!("{m}/v1/heads"), None).await.0, 200);
    assert_denied("operator:op1", &format!("{m}/v1/sources/131016/notices"), None, "party_not_allowed").await;
    // Routes of other node kinds are not served here.
    assert_eq!(call(Some("ca:jpki-ca"), &format!("{m}/v1/feed"), None).await.0, 404);
}

#[tokio::test]
async fn a_request_without_a_party_is_401_on_every_route() {
    let t = identity::store::testing::sqlite().unwrap();
    let w = world(&t).await;
    let (m, p, n) = (&w.tokyo_url, &w.pref13_url, &w.national_url);
    let pool = serde_json::to_value(PoolRequest { municipality: lg("131016"), count: 1 }).unwrap();
    let notice = json!({"resident_code": w.moved, "new_municipality": "271004", "notice_seq": 1});
    let query = json!({"purpose": "B1-020", "by": {"resident_code": w.moved}, "fields": ["name"]});
    let batch = json!({"purpose": "B1-020", "fields": ["name"], "resident_codes": [w.moved]});
    let cases: Vec<(String, Option<Value>)> = vec![
        (format!("{m}/v1/heads"), None),
        (format!("{m}/v1/sources/131016/notices"), None),
        (format!("{m}/v1/sources/131016/keys"), None),
        (format!("{m}/v1/move-out/{}", w.moved), None),
        (format!("{m}/v1/move-in-notices"), Some(notice)),
        (format!("{p}/v1/heads"), None),
        (format!("{p}/v1/sources/131016/notices"), None),
        (format!("{p}/v1/provision/query"), Some(query.clone())),
        (format!("{p}/v1/statistics?years=2026"), None),
        (format!("{n}/v1/heads"), None),
        (format!("{n}/v1/sources/131016/notices"), None),
        (format!("{n}/v1/feed"), None),
        (format!("{n}/v1/feed/head"), None),
        (format!("{n}/v1/code-pools"), Some(pool)),
        (format!("{n}/v1/provision/query"), Some(query)),
        (format!("{n}/v1/provision/batch"), Some(batch)),
        (format!("{n}/v1/disclosure/{}", w.moved), None),
        (format!("{n}/v1/statistics?years=2026"), None),
    ];
    let before = durable_rows(&w).await;
    for (url, body) in cases {
        let (status, answer) = call(None, &url, body).await;
        assert_eq!(status, 401, "{url}: {answer}");
        assert_eq!(answer["error"], "unauthenticated", "{url}: {answer}");
    }
    assert_eq!(durable_rows(&w).await, before, "a request without a party writes nothing");
}

#[tokio::test]
async fn a_refusal_writes_no_provision_or_operator_log_row_and_an_operators_disclosure_is_logged_by_name() {
    for t in backends().await {
        let w = world(&t).await;
        pull_tokyo(&w).await;
        let (m, p, n) = (&w.tokyo_url, &w.pref13_url, &w.national_url);
        let op = national_operator();
        let jpki = w.national.provider().law().get("B1-020").unwrap().clone();
        w.national
            .provider()
            .register_agency(&op, "jpki-ca", "J-LIS CA", jpki.agency_class, &["B1-020"], NOW)
            .await
            .unwrap();
        let query = json!({"purpose": "B1-020", "by": {"resident_code": w.moved}, "fields": ["name"]});
        let before = durable_rows(&w).await;
        let refusals: Vec<(&str, String, Option<Value>, &str)> = vec![
            // Provision by parties that are not registered agencies here.
            ("agency:nobody", format!("{n}/v1/provision/query"), Some(query.clone()), "agency_not_registered"),
            ("ca:jpki-ca", format!("{p}/v1/provision/query"), Some(query.clone()), "agency_not_registered"),
            ("operator:op1", format!("{n}/v1/provision/query"), Some(query.clone()), "party_not_allowed"),
            ("municipality:131016", format!("{n}/v1/provision/batch"), Some(query.clone()), "party_not_allowed"),
            // Operator reports by parties that are not operators.
            ("agency:jpki-ca", format!("{n}/v1/disclosure/{}", w.moved), None, "party_not_allowed"),
            ("ca:jpki-ca", format!("{n}/v1/statistics?years=2026"), None, "party_not_allowed"),
            ("national", format!("{p}/v1/disclosure/{}", w.moved), None, "party_not_allowed"),
            // Pools, move-in notices, replication.
            (
                "municipality:131041",
                format!("{n}/v1/code-pools"),
                Some(json!({"municipality": "131016", "count": 3})),
                "not_own_municipality",
            ),
            (
                "municipality:131041",
                format!("{m}/v1/move-in-notices"),
                Some(json!({"resident_code": w.moved, "new_municipality": "271004", "notice_seq": 1})),
                "not_own_municipality",
            ),
            ("prefecture:27", format!("{m}/v1/sources/131016/notices"), None, "not_own_prefecture"),
        ];
        for (party, url, body, reason) in refusals {
            assert_denied(party, &url, body, reason).await;
        }
        assert_eq!(durable_rows(&w).await, before, "{}: refusals write nothing", t.label);

        // The registered CA is provided for (and logged), through its own certificate's name.
        let (status, answer) = call(Some("ca:jpki-ca"), &format!("{n}/v1/provision/query"), Some(query)).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(count(w.national.db(), "SELECT COUNT(*) FROM provision_log").await, 1);
        // Disclosure by operator:op1: answered, and the operator log names the operator.
        let (status, answer) = call(Some("operator:op1"), &format!("{n}/v1/disclosure/{}", w.moved), None).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer.as_array().map(Vec::len), Some(1), "{answer}");
        let rows: Vec<(String, String, String, String)> =
            sqlx::query("SELECT operator, role, action, subject FROM operator_log ORDER BY id")
                .fetch_all(w.national.db().pool())
                .await
                .unwrap()
                .into_iter()
                .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap(), r.try_get(2).unwrap(), r.try_get(3).unwrap()))
                .collect();
        let disclosure: Vec<_> = rows.iter().filter(|r| r.2 == "disclosure").collect();
        assert_eq!(disclosure.len(), 1, "{}: {rows:?}", t.label);
        assert_eq!(disclosure[0].0, "urn:jpki:operator:op1");
        assert_eq!(disclosure[0].1, "national_operator");
        assert_eq!(disclosure[0].3, w.moved.as_str());
        // At a prefecture, the same operator is logged there as a prefecture operator.
        assert_eq!(call(Some("operator:op1"), &format!("{p}/v1/statistics?years=2026"), None).await.0, 200);
        let (who, role): (String, String) =
            sqlx::query("SELECT operator, role FROM operator_log WHERE action = 'statistics'")
                .fetch_one(w.pref13.pool())
                .await
                .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap()))
                .unwrap();
        assert_eq!((who.as_str(), role.as_str()), ("urn:jpki:operator:op1", "prefecture_operator"));
    }
}
