//! The window's routes (`POST /v1/window/…`) over real HTTP on loopback, on SQLite and
//! PostgreSQL, called through identity's own client (`client::window_call`): a window of a
//! municipality, for a clerk of it, finds, registers, moves (a move-in fetched through the
//! node's peer directory) and removes residents, every action written to the operator log as
//! window and clerk; the national node discloses only its municipality's residents; and every
//! refusal (another municipality's window, a clerk of another municipality, no, stale or
//! non-matching signature, other parties) is answered with its stable code and writes nothing.
//!
//! Callers are named through the test double of the mutual-TLS identity (`common::serve`), and
//! the clerk's signature is checked by [`TestClerks`], a TEST DOUBLE of `net::clerk`'s
//! verifier (SHA-256 tags instead of ECDSA P-384 over certificates of the network CA): the real
//! verifier behind real mutual TLS is tested end to end in `tests/tests/window_routes.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::response::IntoResponse;
use common::*;
use identity::authz::{ClerkCheck, ClerkHeaderValues, ClerkRefused};
use identity::client::{PeerAnswer, window_call, window_post};
use identity::http::{self, NationalState, Windows};
use identity::ids::ResidentCode;
use identity::law::Field;
use identity::municipal::Municipality;
use identity::national::National;
use identity::notice::NoticeKind;
use identity::party::Party;
use identity::person::{FlaggedText, ResidentStatus};
use identity::provision::{Lookup, Query};
use identity::replica::{self, Tier};
use identity::store::testing::TestDb;
use identity::store::{self, Db};
use identity::window::*;
use sha2::{Digest, Sha256};
use sqlx::Row;

// ---------------------------------------------------------------------------------------
// TEST DOUBLE of the clerk's signature (`net::clerk`): the "certificate" header is the clerk's
// party URI in hex, the signature a SHA-256 tag over the same fields `net::clerk::message`
// signs. It refuses with the real verifier's codes for the same faults.
// ---------------------------------------------------------------------------------------

#[derive(Debug)]
struct TestClerks;

fn tag(window: &Party, method: &str, path: &str, at: i64, body: &[u8]) -> String {
    let mut h = Sha256::new();
    for part in [window.uri().as_bytes(), method.as_bytes(), path.as_bytes(), at.to_string().as_bytes(), body] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    hex::encode(h.finalize())
}

impl ClerkCheck for TestClerks {
    fn check(
        &self,
        window: &Party,
        method: &str,
        path: &str,
        body: &[u8],
        h: ClerkHeaderValues<'_>,
        now: i64,
    ) -> Result<Party, ClerkRefused> {
        let refuse = |code: &'static str| ClerkRefused { code, detail: format!("test double: {code}") };
        let (Some(cert), Some(at), Some(sig)) = (h.cert, h.time, h.signature) else {
            return Err(refuse("clerk_missing"));
        };
        let at: i64 = at.parse().map_err(|_| refuse("clerk_missing"))?;
        let clerk = hex::decode(cert)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse::<Party>().ok())
            .filter(|p| p.station().is_some())
            .ok_or_else(|| refuse("clerk_not_trusted"))?;
        if clerk.station().map(|s| s.0) != window.station().map(|s| s.0) {
            return Err(refuse("clerk_other_municipality"));
        }
        if (now - at).abs() > 300 {
            return Err(refuse("clerk_stale"));
        }
        if sig != tag(window, method, path, at, body) {
            return Err(refuse("clerk_bad_signature"));
        }
        Ok(clerk)
    }
}

/// The three headers `clerk` sends at `window` for one request, signed at `at`.
fn headers(window: &str, clerk: &str, at: i64, method: &str, path: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    vec![
        (identity::authz::CLERK_HEADER_CERT, hex::encode(party(clerk).uri())),
        (identity::authz::CLERK_HEADER_TIME, at.to_string()),
        (identity::authz::CLERK_HEADER_SIGNATURE, tag(&party(window), method, path, at, body)),
    ]
}

fn unix_now() -> i64 {
    identity::http::now()
}

/// A window's client (`window`, through the TLS double) and its clerk's signing callback.
struct Desk {
    client: reqwest::Client,
    window: String,
    clerk: String,
}

impl Desk {
    fn new(window: &str, clerk: &str) -> Self {
        Self { client: client_as(window), window: window.into(), clerk: clerk.into() }
    }

    async fn call<Q: WindowRequest>(&self, base: &str, q: &Q) -> Result<Q::Answer, identity::Error> {
        self.call_at(base, q, unix_now()).await
    }

    async fn call_at<Q: WindowRequest>(&self, base: &str, q: &Q, at: i64) -> Result<Q::Answer, identity::Error> {
        let (w, c) = (self.window.clone(), self.clerk.clone());
        let sign = move |m: &str, p: &str, b: &[u8]| Ok(headers(&w, &c, at, m, p, b));
        window_call(&self.client, base, q, &sign).await
    }
}

/// The peer's error answer of a failed call.
fn refusal<T: std::fmt::Debug>(r: Result<T, identity::Error>) -> PeerAnswer {
    match r {
        Err(e) => e.peer_answer().cloned().unwrap_or_else(|| panic!("not an error answer: {e}")),
        Ok(v) => panic!("accepted: {v:?}"),
    }
}

fn assert_refused<T: std::fmt::Debug>(r: Result<T, identity::Error>, status: u16, code: &str) {
    let a = refusal(r);
    assert_eq!((a.status, a.code()), (status, code), "{a}");
}

const W_TOKYO: &str = "window:131016:W01";
const C_TOKYO: &str = "clerk:131016:C0001";
const W_OSAKA: &str = "window:271004:W01";
const C_OSAKA: &str = "clerk:271004:C0001";
const ACTOR_TOKYO: &str = "window:131016:W01 clerk:131016:C0001";
const ACTOR_OSAKA: &str = "window:271004:W01 clerk:271004:C0001";

struct World {
    tokyo: Municipality,
    osaka: Municipality,
    national: National,
    tokyo_url: String,
    osaka_url: String,
    national_url: String,
    /// 千代田区's node without windows (`http::municipal_router`).
    closed_url: String,
    _dbs: Vec<TestDb>,
}

async fn world(like: &TestDb) -> World {
    let (tdb, odb, ndb) = (fresh(like).await, fresh(like).await, fresh(like).await);
    let tokyo = signed_municipality(Db::open(&tdb.url).await.unwrap(), "131016").await;
    tokyo.add_pool(&codes(600, 10)).await.unwrap();
    let osaka = signed_municipality(Db::open(&odb.url).await.unwrap(), "271004").await;
    osaka.add_pool(&codes(800, 10)).await.unwrap();
    let law = Arc::new(identity::law::LawTable::seed().unwrap());
    let national = National::open(Db::open(&ndb.url).await.unwrap(), law).await.unwrap();
    let clerks: Arc<dyn ClerkCheck> = Arc::new(TestClerks);
    // Each municipality reaches the other with its own credential (the TLS double's party).
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let osaka_addr = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    let tokyo_peers = BTreeMap::from([(lg("271004"), peer_as(&osaka_addr, "municipality:131016"))]);
    let tokyo_url =
        serve(http::municipal_router_with(tokyo.clone(), Windows { clerks: clerks.clone(), peers: tokyo_peers })).await;
    let osaka_peers = BTreeMap::from([(lg("131016"), peer_as(&tokyo_url, "municipality:271004"))]);
    let osaka_router =
        http::municipal_router_with(osaka.clone(), Windows { clerks: clerks.clone(), peers: osaka_peers });
    let osaka_url = serve_at(&osaka_addr, osaka_router).await;
    World {
        closed_url: serve(http::municipal_router(tokyo.clone())).await,
        national_url: serve(http::national_router_with(NationalState { national: national.clone() }, clerks)).await,
        tokyo,
        osaka,
        national,
        tokyo_url,
        osaka_url,
        _dbs: vec![tdb, odb, ndb],
    }
}

/// Serves `router` at `url` (an address just freed).
async fn serve_at(url: &str, router: axum::Router) -> String {
    let addr = url.trim_start_matches("http://");
    let l = tokio::net::TcpListener::bind(addr).await.unwrap();
    serve_listener(l, router).await
}

fn register_request(name: &str) -> RegisterRequest {
    RegisterRequest {
        kind: Registration::FirstRegistration,
        items: items(name, "東京都千代田区千代田1-1", "1990-04-01"),
        effective_date: date("2026-04-01"),
    }
}

async fn count(db: &Db, sql: &'static str) -> i64 {
    sqlx::query(sql).fetch_one(db.pool()).await.unwrap().try_get(0).unwrap()
}

/// The operator-log rows of `db`: (operator, role, action, subject).
async fn operator_log(db: &Db) -> Vec<(String, String, String, String)> {
    sqlx::query("SELECT operator, role, action, subject FROM operator_log ORDER BY id")
        .fetch_all(db.pool())
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

/// Everything a refused window request could have written at a municipality or the national node.
async fn durable(db: &Db) -> Vec<i64> {
    let mut out = Vec::new();
    for sql in [
        "SELECT COUNT(*) FROM operator_log",
        "SELECT COUNT(*) FROM change_notice",
        "SELECT COUNT(*) FROM resident",
        "SELECT COUNT(*) FROM move_in_notification",
        "SELECT COUNT(*) FROM retired_code",
    ] {
        out.push(count(db, sql).await);
    }
    out
}

#[tokio::test]
async fn a_window_registers_finds_moves_and_removes_residents_as_its_clerk() {
    for like in backends().await {
        let w = world(&like).await;
        let tokyo = Desk::new(W_TOKYO, C_TOKYO);
        let osaka = Desk::new(W_OSAKA, C_OSAKA);

        // Register: the code comes from the pool; the notice names window and clerk.
        let reg = tokyo.call(&w.tokyo_url, &register_request("窓口　花子")).await.unwrap();
        assert_eq!(
            (reg.kind, reg.record.status, reg.record.version),
            (NoticeKind::FirstRegistration, ResidentStatus::Active, 1)
        );
        let code = reg.record.resident_code.clone();
        assert_eq!(code, codes(600, 1)[0], "{}", like.label);
        let notice = store::notices_after(w.tokyo.db(), "131016", reg.seq - 1, 1).await.unwrap();
        assert_eq!(notice[0].body.operator, ACTOR_TOKYO);

        // Find: by code, by the four items exactly; a near miss is 404.
        let by_code = tokyo.call(&w.tokyo_url, &FindRequest { by: Lookup::ResidentCode(code.clone()) }).await.unwrap();
        assert_eq!(by_code.records, vec![reg.record.clone()]);
        let four = reg.record.items.clone();
        let by_items = tokyo.call(&w.tokyo_url, &FindRequest { by: Lookup::FourItems(four.clone()) }).await.unwrap();
        assert_eq!(by_items.records, vec![reg.record.clone()]);
        let mut near = four.clone();
        near.address = FlaggedText::plain("address", "東京都千代田区千代田1-2").unwrap();
        assert_refused(tokyo.call(&w.tokyo_url, &FindRequest { by: Lookup::FourItems(near) }).await, 404, "not_found");
        let unknown = codes(990, 1)[0].clone();
        assert_refused(
            tokyo.call(&w.tokyo_url, &FindRequest { by: Lookup::ResidentCode(unknown) }).await,
            404,
            "not_found",
        );

        // 転居, 職権修正, code change.
        let new_address = FlaggedText::plain("address", "東京都千代田区丸の内2-2").unwrap();
        let moved = tokyo
            .call(
                &w.tokyo_url,
                &MoveWithinRequest {
                    resident_code: code.clone(),
                    address: new_address.clone(),
                    effective_date: date("2026-05-01"),
                },
            )
            .await
            .unwrap();
        assert_eq!((moved.kind, &moved.record.items.address), (NoticeKind::MoveWithin, &new_address));
        let mut fixed = moved.record.items.clone();
        fixed.name = FlaggedText::plain("name", "窓口　華子").unwrap();
        let corrected = tokyo
            .call(
                &w.tokyo_url,
                &CorrectRequest {
                    resident_code: code.clone(),
                    items: fixed.clone(),
                    effective_date: date("2026-05-02"),
                },
            )
            .await
            .unwrap();
        assert_eq!((corrected.kind, &corrected.record.items), (NoticeKind::Correction, &fixed));
        let same = tokyo
            .call(
                &w.tokyo_url,
                &CorrectRequest { resident_code: code.clone(), items: fixed, effective_date: date("2026-05-02") },
            )
            .await;
        assert_refused(same, 400, "invalid");
        let changed = tokyo
            .call(&w.tokyo_url, &ChangeCodeRequest { resident_code: code.clone(), effective_date: date("2026-05-03") })
            .await
            .unwrap();
        assert_eq!(changed.previous_code.as_ref(), Some(&code));
        let code = changed.record.resident_code.clone();
        assert_ne!(code, codes(600, 1)[0]);

        // 転出 to 大阪市, then 転入 there through 大阪市's window: the node fetches the
        // 転出証明書情報 from 千代田区 (its peer directory) and sends it the 転入通知.
        let out = tokyo
            .call(
                &w.tokyo_url,
                &MoveOutRequest {
                    resident_code: code.clone(),
                    destination: lg("271004"),
                    effective_date: date("2026-06-01"),
                },
            )
            .await
            .unwrap();
        assert_eq!((out.kind, out.record.status), (NoticeKind::MoveOut, ResidentStatus::MovedOut));
        let move_in = MoveInRequest {
            resident_code: code.clone(),
            old_municipality: lg("131016"),
            address: FlaggedText::plain("address", "大阪府大阪市北区1-1").unwrap(),
            effective_date: date("2026-06-02"),
        };
        let arrived = osaka.call(&w.osaka_url, &move_in).await.unwrap();
        assert_eq!((arrived.kind, arrived.record.status), (NoticeKind::MoveIn, ResidentStatus::Active));
        assert_eq!(arrived.record.municipality, lg("271004"));
        assert_eq!(arrived.record.items.name, corrected.record.items.name);
        assert_eq!(arrived.old_municipality_notified, Some(true), "{:?}", arrived.note);
        assert_eq!(count(w.tokyo.db(), "SELECT COUNT(*) FROM move_in_notification").await, 1);
        // A repeated move-in records nothing twice and sends the 転入通知 again.
        let notices = count(w.osaka.db(), "SELECT COUNT(*) FROM change_notice").await;
        let again = osaka.call(&w.osaka_url, &move_in).await.unwrap();
        assert_eq!((again.seq, again.old_municipality_notified), (arrived.seq, Some(true)));
        assert_eq!(count(w.osaka.db(), "SELECT COUNT(*) FROM change_notice").await, notices);
        assert_eq!(count(w.tokyo.db(), "SELECT COUNT(*) FROM move_in_notification").await, 1);
        // 千代田区 can no longer change the resident; 大阪市 can, and records the death.
        let gone = tokyo
            .call(
                &w.tokyo_url,
                &RemoveRequest {
                    resident_code: code.clone(),
                    reason: Removal::Death,
                    effective_date: date("2026-07-01"),
                },
            )
            .await;
        assert_refused(gone, 409, "conflict");
        let died = osaka
            .call(
                &w.osaka_url,
                &RemoveRequest {
                    resident_code: code.clone(),
                    reason: Removal::Death,
                    effective_date: date("2026-07-01"),
                },
            )
            .await
            .unwrap();
        assert_eq!((died.kind, died.record.status), (NoticeKind::Death, ResidentStatus::Deceased));
        // A birth, and the code pool shrinks by one more.
        let birth = RegisterRequest { kind: Registration::Birth, ..register_request("窓口　太郎") };
        let born = tokyo.call(&w.tokyo_url, &birth).await.unwrap();
        assert_eq!(born.kind, NoticeKind::Birth);
        assert_eq!(w.tokyo.pool_remaining().await.unwrap(), 7);

        // Every action is in the operator log as window and clerk, with the municipal clerk's role.
        let log = operator_log(w.tokyo.db()).await;
        let actions: Vec<&str> = log.iter().map(|r| r.2.as_str()).collect();
        assert_eq!(
            actions,
            [
                "FirstRegistration",
                "find",
                "find",
                "find",
                "find",
                "MoveWithin",
                "Correction",
                "CodeChange",
                "MoveOut",
                "Birth"
            ],
            "{log:?}"
        );
        assert!(log.iter().all(|r| r.0 == ACTOR_TOKYO && r.1 == "municipal_clerk"), "{log:?}");
        assert!(log[1].3.starts_with("by resident_code: ") && log[3].3 == "by four_items: none found", "{log:?}");
        let osaka_log = operator_log(w.osaka.db()).await;
        assert_eq!(osaka_log.iter().map(|r| r.2.as_str()).collect::<Vec<_>>(), ["MoveIn", "Death"]);
        assert!(osaka_log.iter().all(|r| r.0 == ACTOR_OSAKA), "{osaka_log:?}");
    }
}

#[tokio::test]
async fn a_move_in_without_a_move_out_or_a_peer_is_refused_and_records_nothing() {
    for like in backends().await {
        let w = world(&like).await;
        let tokyo = Desk::new(W_TOKYO, C_TOKYO);
        let osaka = Desk::new(W_OSAKA, C_OSAKA);
        let code = tokyo.call(&w.tokyo_url, &register_request("転入　未了")).await.unwrap().record.resident_code;
        let before = durable(w.osaka.db()).await;
        let mut q = MoveInRequest {
            resident_code: code.clone(),
            old_municipality: lg("131016"),
            address: FlaggedText::plain("address", "大阪府大阪市北区1-1").unwrap(),
            effective_date: date("2026-06-02"),
        };
        // Not moved out (to 大阪市): 千代田区 hands over nothing.
        assert_refused(osaka.call(&w.osaka_url, &q).await, 409, "conflict");
        // A municipality the node has no peer for, and the node's own.
        q.old_municipality = lg("131041");
        let a = refusal(osaka.call(&w.osaka_url, &q).await);
        assert_eq!((a.status, a.code()), (400, "invalid"));
        assert!(a.message.contains("131041"), "{a}");
        q.old_municipality = lg("271004");
        assert_refused(osaka.call(&w.osaka_url, &q).await, 400, "invalid");
        assert_eq!(durable(w.osaka.db()).await, before);
        assert_eq!(count(w.tokyo.db(), "SELECT COUNT(*) FROM move_in_notification").await, 0);
    }
}

/// Each route with a well-formed body.
fn every_route(code: &ResidentCode) -> Vec<(&'static str, serde_json::Value)> {
    let j = |v: &dyn erased::Json| v.value();
    vec![
        (FIND, j(&FindRequest { by: Lookup::ResidentCode(code.clone()) })),
        (REGISTER, j(&register_request("拒否　花子"))),
        (
            MOVE_WITHIN,
            j(&MoveWithinRequest {
                resident_code: code.clone(),
                address: FlaggedText::plain("address", "東京都千代田区9").unwrap(),
                effective_date: date("2026-05-01"),
            }),
        ),
        (
            MOVE_OUT,
            j(&MoveOutRequest {
                resident_code: code.clone(),
                destination: lg("271004"),
                effective_date: date("2026-05-01"),
            }),
        ),
        (
            MOVE_IN,
            j(&MoveInRequest {
                resident_code: code.clone(),
                old_municipality: lg("271004"),
                address: FlaggedText::plain("address", "東京都千代田区9").unwrap(),
                effective_date: date("2026-05-01"),
            }),
        ),
        (
            REMOVE,
            j(&RemoveRequest {
                resident_code: code.clone(),
                reason: Removal::Death,
                effective_date: date("2026-05-01"),
            }),
        ),
        (
            CORRECT,
            j(&CorrectRequest {
                resident_code: code.clone(),
                items: items("拒否　華子", "東京都千代田区9", "1990-04-01"),
                effective_date: date("2026-05-01"),
            }),
        ),
        (CHANGE_CODE, j(&ChangeCodeRequest { resident_code: code.clone(), effective_date: date("2026-05-01") })),
    ]
}

mod erased {
    /// A request as JSON (the routes' bodies in one list).
    pub trait Json {
        fn value(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Json for T {
        fn value(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap()
        }
    }
}

/// `POST base+path` as `party` (none: no client certificate) with exactly `body` and `headers`.
async fn raw(
    party: Option<&str>,
    base: &str,
    path: &str,
    body: &[u8],
    headers: &[(&'static str, String)],
) -> PeerAnswer {
    let c = match party {
        Some(p) => client_as(p),
        None => reqwest::Client::new(),
    };
    let mut r = c.post(format!("{base}{path}")).header("content-type", "application/json").body(body.to_vec());
    for (k, v) in headers {
        r = r.header(*k, v);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let b: identity::openapi::ErrorBody = r.json().await.unwrap();
    PeerAnswer { url: base.into(), status, error: b.error, reason: b.reason, message: b.message }
}

#[tokio::test]
async fn every_window_route_refuses_other_windows_bad_signatures_and_other_parties_writing_nothing() {
    for like in backends().await {
        let w = world(&like).await;
        let code = Desk::new(W_TOKYO, C_TOKYO)
            .call(&w.tokyo_url, &register_request("既存　花子"))
            .await
            .unwrap()
            .record
            .resident_code;
        let before =
            (durable(w.tokyo.db()).await, durable(w.osaka.db()).await, w.tokyo.pool_remaining().await.unwrap());
        let now = unix_now();
        for (path, body) in every_route(&code) {
            let bytes = serde_json::to_vec(&body).unwrap();
            let signed = |window: &str, clerk: &str, at: i64| headers(window, clerk, at, "POST", path, &bytes);
            let check = |a: PeerAnswer, status: u16, code: &str, what: &str| {
                assert_eq!((a.status, a.code()), (status, code), "{} {path} {what}: {a}", like.label);
            };
            // A window of 大阪市, with a clerk of 大阪市, at 千代田区's node.
            let a = raw(Some(W_OSAKA), &w.tokyo_url, path, &bytes, &signed(W_OSAKA, C_OSAKA, now)).await;
            check(a, 403, "not_own_municipality", "window of 271004");
            // 千代田区's window with a clerk of 大阪市.
            let a = raw(Some(W_TOKYO), &w.tokyo_url, path, &bytes, &signed(W_TOKYO, C_OSAKA, now)).await;
            check(a, 401, "clerk_other_municipality", "clerk of 271004");
            // No signature; a stale one; a body altered after signing; signed for another path.
            check(raw(Some(W_TOKYO), &w.tokyo_url, path, &bytes, &[]).await, 401, "clerk_missing", "unsigned");
            let stale = signed(W_TOKYO, C_TOKYO, now - 1_000);
            check(raw(Some(W_TOKYO), &w.tokyo_url, path, &bytes, &stale).await, 401, "clerk_stale", "stale");
            let mut altered = bytes.clone();
            altered.insert(1, b' ');
            let a = raw(Some(W_TOKYO), &w.tokyo_url, path, &altered, &signed(W_TOKYO, C_TOKYO, now)).await;
            check(a, 401, "clerk_bad_signature", "altered body");
            let other_path = headers(W_TOKYO, C_TOKYO, now, "POST", "/v1/window/elsewhere", &bytes);
            check(
                raw(Some(W_TOKYO), &w.tokyo_url, path, &bytes, &other_path).await,
                401,
                "clerk_bad_signature",
                "path",
            );
            // A node without windows admits no clerk.
            let a = raw(Some(W_TOKYO), &w.closed_url, path, &bytes, &signed(W_TOKYO, C_TOKYO, now)).await;
            check(a, 401, "clerk_not_trusted", "closed node");
            // Other parties, even with a valid clerk signature; no party at all.
            for other in
                ["operator:op1", "municipality:131016", "municipality:271004", "prefecture:13", C_TOKYO, "national"]
            {
                let h = headers(other, C_TOKYO, now, "POST", path, &bytes);
                check(raw(Some(other), &w.tokyo_url, path, &bytes, &h).await, 403, "party_not_allowed", other);
            }
            check(raw(None, &w.tokyo_url, path, &bytes, &[]).await, 401, "unauthenticated", "no party");
            // A malformed body from an authenticated clerk is a 400, also written nowhere.
            let junk = br#"{"unexpected": 1}"#;
            let a =
                raw(Some(W_TOKYO), &w.tokyo_url, path, junk, &headers(W_TOKYO, C_TOKYO, now, "POST", path, junk)).await;
            check(a, 400, "invalid", "malformed body");
        }
        let after = (durable(w.tokyo.db()).await, durable(w.osaka.db()).await, w.tokyo.pool_remaining().await.unwrap());
        assert_eq!(after, before, "{}: a refused request wrote something", like.label);
    }
}

#[tokio::test]
async fn the_national_node_discloses_to_a_window_only_its_own_municipalitys_residents() {
    for like in backends().await {
        let w = world(&like).await;
        let tokyo = Desk::new(W_TOKYO, C_TOKYO);
        let osaka = Desk::new(W_OSAKA, C_OSAKA);
        let here = tokyo.call(&w.tokyo_url, &register_request("開示　花子")).await.unwrap().record.resident_code;
        let moved = tokyo.call(&w.tokyo_url, &register_request("開示　次郎")).await.unwrap().record.resident_code;
        tokyo
            .call(
                &w.tokyo_url,
                &MoveOutRequest {
                    resident_code: moved.clone(),
                    destination: lg("271004"),
                    effective_date: date("2026-06-01"),
                },
            )
            .await
            .unwrap();
        // The national projection: 千代田区's chain (大阪市 has not recorded the move-in yet).
        admit_keys_of(w.national.db(), &w.tokyo).await;
        let notices = store::notices_after(w.tokyo.db(), "131016", 0, 100).await.unwrap();
        replica::apply_batch(w.national.db(), Tier::National, &*verifier(), &notices).await.unwrap();

        // One provision of the resident to an agency, so that the report has a row.
        let law = w.national.provider().law().clone();
        let p = law.purposes().find(|p| !p.bulk && p.fields.contains(&Field::Name)).unwrap();
        let agency = w
            .national
            .provider()
            .register_agency(&national_operator(), "agency-a", "旅券事務所", p.agency_class, &[&p.code], NOW)
            .await
            .unwrap();
        let q = Query { purpose: p.code.clone(), by: Lookup::ResidentCode(here.clone()), fields: [Field::Name].into() };
        assert!(w.national.provider().query(&agency, &q, NOW).await.unwrap().found);

        let rows = tokyo.call(&w.national_url, &DisclosureRequest { resident_code: here.clone() }).await.unwrap();
        // The same report an operator gets.
        assert_eq!(rows, w.national.provider().disclosure(&here).await.unwrap());
        assert_eq!((rows.len(), rows[0].result.as_str()), (1, "provided"), "{rows:?}");
        assert!(rows[0].destination.contains("旅券事務所"), "{rows:?}");
        let log = operator_log(w.national.db()).await;
        assert_eq!(
            log.last().map(|r| (r.0.as_str(), r.2.as_str(), r.3.as_str())),
            Some((ACTOR_TOKYO, "disclosure", here.as_str()))
        );

        let before = durable(w.national.db()).await;
        // Another municipality's window; a resident who moved out; an unknown resident.
        assert_refused(
            osaka.call(&w.national_url, &DisclosureRequest { resident_code: here.clone() }).await,
            403,
            "not_own_municipality",
        );
        for code in [moved.clone(), codes(990, 1)[0].clone()] {
            let r = tokyo.call(&w.national_url, &DisclosureRequest { resident_code: code }).await;
            assert_refused(r, 403, "not_own_municipality");
        }
        // Clerk faults and other parties.
        let body = serde_json::to_vec(&DisclosureRequest { resident_code: here.clone() }).unwrap();
        let now = unix_now();
        let a = raw(
            Some(W_TOKYO),
            &w.national_url,
            DISCLOSURE,
            &body,
            &headers(W_TOKYO, C_OSAKA, now, "POST", DISCLOSURE, &body),
        )
        .await;
        assert_eq!((a.status, a.code()), (401, "clerk_other_municipality"), "{a}");
        let a = raw(Some(W_TOKYO), &w.national_url, DISCLOSURE, &body, &[]).await;
        assert_eq!((a.status, a.code()), (401, "clerk_missing"), "{a}");
        let a = tokyo.call_at(&w.national_url, &DisclosureRequest { resident_code: here.clone() }, now - 1_000).await;
        assert_refused(a, 401, "clerk_stale");
        for other in ["operator:op1", "municipality:131016", "agency:jps", C_TOKYO] {
            let h = headers(other, C_TOKYO, now, "POST", DISCLOSURE, &body);
            let a = raw(Some(other), &w.national_url, DISCLOSURE, &body, &h).await;
            assert_eq!((a.status, a.code()), (403, "party_not_allowed"), "{other}: {a}");
        }
        assert_eq!(durable(w.national.db()).await, before, "{}", like.label);
        // window_post is the same call by path.
        let rows: Vec<identity::provision::DisclosureRow> = {
            let sign = |m: &str, p: &str, b: &[u8]| Ok(headers(W_TOKYO, C_TOKYO, unix_now(), m, p, b));
            window_post(
                &client_as(W_TOKYO),
                &w.national_url,
                DISCLOSURE,
                &DisclosureRequest { resident_code: here },
                &sign,
            )
            .await
            .unwrap()
        };
        assert_eq!(rows.len(), 1);
        // A signing callback that fails sends nothing.
        let fail = |_: &str, _: &str, _: &[u8]| Err("the card reader is gone".to_owned());
        let e =
            window_call(&client_as(W_TOKYO), &w.national_url, &DisclosureRequest { resident_code: moved }, &fail).await;
        assert!(matches!(e, Err(identity::Error::ClerkSigning(ref m)) if m.contains("card reader")), "{e:?}");
    }
}

#[tokio::test]
async fn a_move_in_whose_notice_is_lost_stays_committed_and_a_repeat_sends_the_notice_only() {
    use std::sync::atomic::{AtomicBool, Ordering};
    for like in backends().await {
        let w = world(&like).await;
        let tokyo = Desk::new(W_TOKYO, C_TOKYO);
        let osaka = Desk::new(W_OSAKA, C_OSAKA);
        let code = tokyo.call(&w.tokyo_url, &register_request("通知　失敗")).await.unwrap().record.resident_code;
        let out = MoveOutRequest {
            resident_code: code.clone(),
            destination: lg("271004"),
            effective_date: date("2026-06-01"),
        };
        tokyo.call(&w.tokyo_url, &out).await.unwrap();
        // 千代田区's node, as 大阪市 reaches it, refuses 転入通知 while `down` is set.
        let down = Arc::new(AtomicBool::new(true));
        let flag = down.clone();
        let flaky = http::municipal_router(w.tokyo.clone()).layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let down = flag.load(Ordering::SeqCst) && req.uri().path() == "/v1/move-in-notices";
                async move {
                    if down {
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response();
                    }
                    next.run(req).await
                }
            },
        ));
        let flaky_url = serve(flaky).await;
        let peers = BTreeMap::from([(lg("131016"), peer_as(&flaky_url, "municipality:271004"))]);
        let osaka_url =
            serve(http::municipal_router_with(w.osaka.clone(), Windows { clerks: Arc::new(TestClerks), peers })).await;
        let q = MoveInRequest {
            resident_code: code.clone(),
            old_municipality: lg("131016"),
            address: FlaggedText::plain("address", "大阪府大阪市北区1-1").unwrap(),
            effective_date: date("2026-06-02"),
        };
        let first = osaka.call(&osaka_url, &q).await.unwrap();
        assert_eq!((first.kind, first.old_municipality_notified), (NoticeKind::MoveIn, Some(false)), "{}", like.label);
        assert!(first.note.as_deref().unwrap_or_default().contains("repeat the same move-in"), "{first:?}");
        assert_eq!(count(w.tokyo.db(), "SELECT COUNT(*) FROM move_in_notification").await, 0);
        let notices = count(w.osaka.db(), "SELECT COUNT(*) FROM change_notice").await;
        // The repeat, with 千代田区 reachable again: the notice only, nothing recorded twice.
        down.store(false, Ordering::SeqCst);
        let again = osaka.call(&osaka_url, &q).await.unwrap();
        assert_eq!((again.seq, again.old_municipality_notified, again.note), (first.seq, Some(true), None));
        assert_eq!(count(w.osaka.db(), "SELECT COUNT(*) FROM change_notice").await, notices);
        assert_eq!(count(w.tokyo.db(), "SELECT COUNT(*) FROM move_in_notification").await, 1);
        // Once the resident has changed since, the same request is no repeat: a conflict.
        let within = MoveWithinRequest {
            resident_code: code.clone(),
            address: FlaggedText::plain("address", "大阪府大阪市北区2-2").unwrap(),
            effective_date: date("2026-06-03"),
        };
        osaka.call(&osaka_url, &within).await.unwrap();
        assert_refused(osaka.call(&osaka_url, &q).await, 409, "conflict");
        assert_eq!(count(w.osaka.db(), "SELECT COUNT(*) FROM change_notice").await, notices + 1);
    }
}

// ---------------------------------------------------------------------------------------
// TEST DOUBLE of the document maker (`kiosk::document::PdfMaker`, the signed resdoc PDF): a
// fixed `%PDF-` prefix with the municipality's code. The real signed PDF over real mutual TLS
// is checked (pdftotext, pdfsig) end to end in `tests/tests/widearea.rs`.
// ---------------------------------------------------------------------------------------

#[derive(Debug)]
struct TestDocuments(&'static str);

impl identity::kiosk::DocumentMaker for TestDocuments {
    fn make(&self, record: &identity::person::Record, _: i64, with_code: bool) -> Result<Vec<u8>, String> {
        Ok(format!("%PDF-1.7 test double of {} ({}, code {with_code})", self.0, record.items.name.text()).into_bytes())
    }
}

/// 広域交付 in process, on SQLite and PostgreSQL: 千代田区's window gets a copy of a 大阪市
/// resident through the national relay; the rows at both municipalities and the provision log;
/// a wrong date of birth is `not_found` and provides nothing; a municipality over its rate is
/// refused 429, logged.
#[tokio::test]
async fn a_window_gets_a_copy_of_another_municipalitys_resident_through_the_national_node() {
    use identity::widearea::{CopyRequest, Relay, WideArea};
    for like in backends().await {
        let (tdb, odb, ndb) = (fresh(&like).await, fresh(&like).await, fresh(&like).await);
        let tokyo = signed_municipality(Db::open(&tdb.url).await.unwrap(), "131016").await;
        tokyo.add_pool(&codes(600, 10)).await.unwrap();
        let osaka = signed_municipality(Db::open(&odb.url).await.unwrap(), "271004").await;
        osaka.add_pool(&codes(800, 10)).await.unwrap();
        let law = Arc::new(identity::law::LawTable::seed().unwrap());
        let national = National::open(Db::open(&ndb.url).await.unwrap(), law).await.unwrap();
        let clerks: Arc<dyn ClerkCheck> = Arc::new(TestClerks);
        let bind = || async { tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap() };
        let (lt, lo, ln) = (bind().await, bind().await, bind().await);
        let url = |l: &tokio::net::TcpListener| format!("http://{}", l.local_addr().unwrap());
        let (tokyo_url, osaka_url, national_url) = (url(&lt), url(&lo), url(&ln));
        let windows = || Windows { clerks: clerks.clone(), peers: BTreeMap::new() };
        let closed = identity::kiosk::Kiosks::closed;
        let wide = WideArea { national: Some(peer_as(&national_url, "municipality:131016")), documents: None };
        serve_listener(lt, http::municipal_router_wide(tokyo.clone(), windows(), closed(), wide)).await;
        let wide = WideArea { national: None, documents: Some(Arc::new(TestDocuments("271004"))) };
        serve_listener(lo, http::municipal_router_wide(osaka.clone(), windows(), closed(), wide)).await;
        let relay = Relay {
            directory: BTreeMap::from([
                (lg("271004"), peer_as(&osaka_url, "national")),
                (lg("131016"), peer_as(&tokyo_url, "national")),
            ]),
            rate: identity::rate_limit::Rate::new(1, 3),
        };
        let router = http::national_router_relay(NationalState { national: national.clone() }, clerks.clone(), relay);
        serve_listener(ln, router).await;

        let (desk_tokyo, desk_osaka) = (Desk::new(W_TOKYO, C_TOKYO), Desk::new(W_OSAKA, C_OSAKA));
        let resident = desk_osaka.call(&osaka_url, &register_request("遠方　花子")).await.unwrap().record.resident_code;
        admit_keys_of(national.db(), &osaka).await;
        let notices = store::notices_after(osaka.db(), "271004", 0, 100).await.unwrap();
        replica::apply_batch(national.db(), Tier::National, &*verifier(), &notices).await.unwrap();

        let ask = |dob: &str| CopyRequest {
            resident_code: resident.clone(),
            date_of_birth: date(dob),
            with_resident_code: false,
        };
        let copy = desk_tokyo.call(&tokyo_url, &ask("1990-04-01")).await.unwrap();
        assert_eq!((copy.issuer.as_str(), copy.items.as_str()), ("271004", "name,address,date_of_birth,sex"));
        assert_eq!((copy.record.name.as_str(), copy.record.resident_code.clone()), ("遠方　花子", None));
        use base64::Engine as _;
        let pdf = base64::engine::general_purpose::STANDARD.decode(&copy.pdf).unwrap();
        assert!(pdf.starts_with(b"%PDF-1.7 test double of 271004"), "{pdf:?}");

        let t_log = operator_log(tokyo.db()).await;
        let actions: Vec<(&str, &str)> = t_log.iter().map(|r| (r.0.as_str(), r.2.as_str())).collect();
        assert_eq!(actions, [(ACTOR_TOKYO, "wide_area_request"), (ACTOR_TOKYO, "wide_area_received")], "{t_log:?}");
        let o_log = operator_log(osaka.db()).await;
        let issued: Vec<_> = o_log.iter().filter(|r| r.2 == "wide_area_issue").collect();
        assert_eq!(issued.len(), 1, "{o_log:?}");
        assert_eq!((issued[0].0.as_str(), issued[0].1.as_str()), (ACTOR_TOKYO, "wide_area_window"));
        assert!(issued[0].3.contains("requested-by=municipality:131016"), "{o_log:?}");
        let report = national.provider().disclosure(&resident).await.unwrap();
        assert_eq!(report.len(), 1, "{report:?}");
        assert_eq!(
            (report[0].function.as_str(), report[0].result.as_str(), report[0].provision_class.as_str()),
            ("広域交付", "provided", "法第12条の4")
        );
        assert_eq!(report[0].destination, format!("municipality:131016 {ACTOR_TOKYO}"));

        // A wrong date of birth: not_found, logged in the resident's report, nothing issued.
        assert_refused(desk_tokyo.call(&tokyo_url, &ask("1990-04-02")).await, 404, "not_found");
        let report = national.provider().disclosure(&resident).await.unwrap();
        assert_eq!(report.iter().map(|r| r.result.as_str()).collect::<Vec<_>>(), ["provided", "not_found"]);
        assert_eq!(operator_log(osaka.db()).await.len(), o_log.len(), "nothing issued at 大阪市");

        // A node on the way that takes no part, or an issuer that cannot be reached: refused
        // with the code, logged at 千代田区 and at the national node, nothing provided.
        let via = |national_url: &str| WideArea {
            national: Some(peer_as(national_url, "municipality:131016")),
            documents: None,
        };
        let no_national = WideArea { national: None, documents: None };
        let lonely = serve(http::municipal_router_wide(tokyo.clone(), windows(), closed(), no_national)).await;
        assert_refused(desk_tokyo.call(&lonely, &ask("1990-04-01")).await, 403, "wide_area_closed");
        let no_docs = WideArea { national: None, documents: None };
        let osaka_closed = serve(http::municipal_router_wide(osaka.clone(), windows(), closed(), no_docs)).await;
        let dead = {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        for (issuer_url, status, code) in
            [(osaka_closed.as_str(), 403, "wide_area_closed"), (dead.as_str(), 502, "issuer_unavailable")]
        {
            let relay = Relay {
                directory: BTreeMap::from([(lg("271004"), peer_as(issuer_url, "national"))]),
                rate: identity::rate_limit::Rate::new(1, 3),
            };
            let n =
                serve(http::national_router_relay(NationalState { national: national.clone() }, clerks.clone(), relay))
                    .await;
            let t = serve(http::municipal_router_wide(tokyo.clone(), windows(), closed(), via(&n))).await;
            assert_refused(desk_tokyo.call(&t, &ask("1990-04-01")).await, status, code);
            let last = operator_log(tokyo.db()).await.pop().unwrap();
            assert_eq!((last.2.as_str(), last.3.clone()), ("wide_area_failed", format!("{resident} reason={code}")));
            let report = national.provider().disclosure(&resident).await.unwrap();
            assert_eq!(report.last().map(|r| r.result.as_str()), Some("refused"), "{report:?}");
        }
        assert_eq!(operator_log(osaka.db()).await.len(), o_log.len(), "nothing issued at 大阪市");

        // What the issuer checks itself, whatever the national node sends: the window and clerk
        // of the requester, another requester than itself, the date of birth.
        let as_national = client_as("national");
        let issue = |requester: &str, window: &str, dob: &str| {
            serde_json::json!({
                "resident_code": resident.as_str(), "date_of_birth": dob, "requester": requester,
                "window": window, "clerk": format!("clerk:{requester}:C0001"),
            })
        };
        for (body, status, code) in [
            (issue("131016", "window:271004:W01", "1990-04-01"), 400, "invalid"),
            (issue("271004", "window:271004:W01", "1990-04-01"), 403, "own_municipality"),
            (issue("131016", "window:131016:W01", "1990-04-02"), 404, "not_found"),
        ] {
            let r = as_national.post(format!("{osaka_url}/v1/wide-area/issue")).json(&body).send().await.unwrap();
            let status_got = r.status().as_u16();
            let b: serde_json::Value = r.json().await.unwrap();
            let got = b["reason"].as_str().or(b["error"].as_str()).unwrap_or_default().to_owned();
            assert_eq!((status_got, got.as_str()), (status, code), "{body}: {b}");
        }
        assert_eq!(operator_log(osaka.db()).await.len(), o_log.len(), "nothing issued at 大阪市");

        // Over 千代田区's rate (burst 3, 1/s; two used): refused 429, logged as refused.
        let mut answers = Vec::new();
        for _ in 0..10 {
            answers.push(refusal(desk_tokyo.call(&tokyo_url, &ask("1990-04-02")).await).code().to_owned());
        }
        assert!(answers.iter().any(|c| c == "rate_limited"), "{answers:?}");
        let refused: i64 = sqlx::query("SELECT COUNT(*) FROM provision_log WHERE reason = $1")
            .bind("rate_limited")
            .fetch_one(national.db().pool())
            .await
            .unwrap()
            .get(0);
        assert!(refused >= 1);
        let provided = count(national.db(), "SELECT COUNT(*) FROM provision_log WHERE result = 'provided'").await;
        assert_eq!(provided, 1);
        drop((tdb, odb, ndb));
    }
}
