//! Shared fixtures of the identity integration tests: nodes on real databases (SQLite
//! always, PostgreSQL when `JPKI_TEST_PG_URL` is set) served on real loopback sockets.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test fixtures: a panic is a failed test

use std::sync::Arc;

use identity::ids::{LgCode, ResidentCode};
use identity::municipal::Municipality;
use identity::notice::parse_date;
use identity::operator::{Operator, Role};
use identity::person::{FlaggedText, FourItems, Sex};
use identity::store::Db;
use identity::store::testing::TestDb;
use identity::test_keys::{TestNetworkCa, TestNoticeSigner, TestNoticeVerifier};

pub const NOW: i64 = 1_775_000_000; // 2026-04-01, fiscal year 2026

pub fn lg(s: &str) -> LgCode {
    s.parse().unwrap()
}

pub fn clerk() -> Operator {
    Operator::new("clerk-1", Role::MunicipalClerk).unwrap()
}

pub fn national_operator() -> Operator {
    Operator::new("nat-1", Role::NationalOperator).unwrap()
}

pub fn items(name: &str, address: &str, dob: &str) -> FourItems {
    FourItems {
        name: FlaggedText::plain("name", name).unwrap(),
        address: FlaggedText::plain("address", address).unwrap(),
        date_of_birth: parse_date("dob", dob).unwrap(),
        sex: Sex::Female,
    }
}

pub fn date(s: &str) -> time::Date {
    parse_date("date", s).unwrap()
}

/// Distinct valid codes for pools that do not come from a national node.
pub fn codes(start: u64, n: usize) -> Vec<ResidentCode> {
    (0..n as u64)
        .map(|i| {
            let v = start + i;
            let body: [u8; 10] = std::array::from_fn(|k| ((v / 10u64.pow(9 - k as u32)) % 10) as u8);
            ResidentCode::from_body(body).unwrap()
        })
        .collect()
}

/// Each backend under test.
pub async fn backends() -> Vec<TestDb> {
    identity::store::testing::all().await.unwrap()
}

/// A fresh database on the same backend as `like`.
pub async fn fresh(like: &TestDb) -> TestDb {
    if like.label == "postgres" {
        identity::store::testing::postgres().await.unwrap().unwrap()
    } else {
        identity::store::testing::sqlite().unwrap()
    }
}

/// The test network CA (a test double: HMAC, see `identity::test_keys`).
pub fn network_ca() -> TestNetworkCa {
    TestNetworkCa::new("identity-tests")
}

/// Notice key `label` of municipality `code`, issued by the test network CA.
pub fn notice_key(code: &str, label: &str) -> Arc<TestNoticeSigner> {
    network_ca().issue(&lg(code), label)
}

/// A fresh verifier trusting the test network CA (no key admitted in memory: a replica
/// re-admits its stored certificates per batch, so a fresh one per call is a restart).
pub fn verifier() -> Arc<TestNoticeVerifier> {
    network_ca().verifier()
}

/// Stores in `replica` the notice keys that `m` holds (what a pull fetches over HTTP), for
/// tests that call `replica::apply_batch` directly.
pub async fn admit_keys_of(replica: &Db, m: &Municipality) {
    admit_keys_from(replica, m.db(), m.code().as_str()).await;
}

/// Stores in `replica` the notice keys of `source` that the node on `holder` holds.
pub async fn admit_keys_from(replica: &Db, holder: &Db, source: &str) {
    let keys = identity::store::notice_keys(holder, source).await.unwrap();
    assert!(!keys.is_empty(), "{source} has no notice keys to admit");
    identity::replica::admit_keys(replica, &*verifier(), &lg(source), &keys, NOW).await.unwrap();
}

/// A municipality on `t` with its first notice key installed.
pub async fn signed_municipality(db: Db, code: &str) -> Municipality {
    Municipality::open(db, lg(code)).await.unwrap().with_signer(notice_key(code, "2026")).await.unwrap()
}

pub async fn municipality(t: &TestDb, code: &str, pool_start: u64) -> Municipality {
    let m = signed_municipality(Db::open(&t.url).await.unwrap(), code).await;
    m.add_pool(&codes(pool_start, 20)).await.unwrap();
    m
}

/// Serves a router on an ephemeral loopback port; returns its base URL.
pub async fn serve(router: axum::Router) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(identity::http::serve(l, router));
    url
}

/// `n` births at `m`, returning them as sealed (seq order).
pub async fn births(m: &Municipality, n: usize) -> Vec<identity::notice::ChangeNotice> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let kind = identity::notice::NoticeKind::Birth;
        let items = items(&format!("子{i}"), "東京都千代田区1", "2026-01-01");
        out.push(m.register(&clerk(), kind, items, date("2026-01-01"), NOW).await.unwrap());
    }
    out
}
