//! Shared fixtures of the identity integration tests: nodes on real databases (SQLite
//! always, PostgreSQL when `JPKI_TEST_PG_URL` is set) served on real loopback sockets, with
//! a test double of the mutual-TLS caller identity ([`serve`], [`peer_as`]).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test fixtures: a panic is a failed test

use std::sync::Arc;

use identity::client::Peer;
use identity::ids::{LgCode, ResidentCode};
use identity::municipal::Municipality;
use identity::notice::parse_date;
use identity::operator::{Operator, Role};
use identity::party::Party;
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

/// `n` signed with its source's own genuine key (label `2026`, the key every test
/// municipality starts with): a forgery by a compromised source whose key is genuine, so
/// replicas refuse it for what it writes (ownership), not for its signature.
pub fn signed_by_source(mut n: identity::notice::ChangeNotice) -> identity::notice::ChangeNotice {
    let key = notice_key(n.key.source.as_str(), "2026");
    identity::notice_sig::sign_notice(&*key, &mut n).unwrap();
    n
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

// ---------------------------------------------------------------------------------------
// TEST DOUBLE of the mutual-TLS identity. In production `net::server` terminates mutual TLS
// and puts the caller's `Party` (from the URI SAN of its verified client certificate) into
// each request's extensions; `net::client::client` builds the `reqwest::Client` that
// presents a party's certificate. Here, on plain loopback HTTP, the client names its party
// in the `x-test-party` header and a layer in front of the router moves it into the
// extensions. This lives only in the tests: no router in `src/` ever reads a party from a
// header. The real TLS path is tested by the `net` crate's tests and the e2e tests.
// ---------------------------------------------------------------------------------------

/// The header carrying the test caller's party (a `urn:jpki:…` URI).
pub const TEST_PARTY: &str = "x-test-party";

/// The TLS double: the party named in [`TEST_PARTY`] goes into the request's extensions, as
/// `net::server` puts the certificate's. No header, no party (the handlers answer 401); a
/// malformed one is a broken test, answered 400.
async fn party_from_test_header(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if let Some(v) = req.headers().get(TEST_PARTY) {
        let Some(Ok(party)) = v.to_str().ok().and_then(Party::from_uri) else {
            return (axum::http::StatusCode::BAD_REQUEST, "test double: malformed x-test-party").into_response();
        };
        req.extensions_mut().insert(party);
    }
    next.run(req).await
}

/// Serves a router on an ephemeral loopback port behind the TLS double; returns its base URL.
pub async fn serve(router: axum::Router) -> String {
    serve_listener(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(), router).await
}

/// [`serve`] on listener `l`.
pub async fn serve_listener(l: tokio::net::TcpListener, router: axum::Router) -> String {
    let url = format!("http://{}", l.local_addr().unwrap());
    let router = router.layer(axum::middleware::from_fn(party_from_test_header));
    tokio::spawn(identity::http::serve(l, router));
    url
}

/// `party` (`kind:code` or the URN) as the URI the TLS double expects.
pub fn party(party: &str) -> Party {
    party.parse().unwrap()
}

/// A `reqwest::Client` calling as `party` through the TLS double (what
/// `net::client::client` is with that party's certificate).
pub fn client_as(p: &str) -> reqwest::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(TEST_PARTY, party(p).uri().parse().unwrap());
    reqwest::Client::builder().default_headers(h).build().unwrap()
}

/// A peer at `url`, called as `party` (e.g. `"prefecture:13"`, `"national"`, `"agency:jps"`).
pub fn peer_as(url: &str, p: &str) -> Peer {
    Peer::new(url, client_as(p))
}

/// A peer at `url` called without any party (no client certificate).
pub fn anonymous(url: &str) -> Peer {
    Peer::new(url, reqwest::Client::new())
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
