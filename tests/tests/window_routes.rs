//! The window's routes end to end, as real `jpki serve` processes over mutual TLS with the real
//! clerk verifier (`net::clerk`): the national node, prefectures 13 and 27, municipalities
//! 131016 and 271004 (each with the other in its `--peer` directory). Windows
//! `window:131016:W01` and `window:271004:W01` call with their own credentials, each request
//! signed by a clerk's own key (`clerk:131016:C0001`, `clerk:271004:C0001`) through
//! `identity::client::window_call`. A resident is registered at 131016's window, moves out to
//! 271004 and in at 271004's window (the 転出証明書情報 fetched through 271004's peer
//! directory); the operator logs name window and clerk; the national node discloses the
//! resident to 271004's window only; and the refusals carry their stable codes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use identity::client::{PeerAnswer, window_call};
use identity::ids::ResidentCode;
use identity::notice::{NoticeKind, parse_date};
use identity::party::Party;
use identity::person::{FlaggedText, FourItems, ResidentStatus, Sex};
use identity::provision::Lookup;
use identity::window::*;
use net::clerk::ClerkKey;

/// A window process's view: its mutual-TLS client (pinned to the node it calls) and its clerk.
struct Window {
    party: Party,
    clerk: Arc<ClerkKey>,
    pki: NetPki,
    credential: String,
}

impl Window {
    fn client(&self, node: Party) -> reqwest::Client {
        self.pki.client(&self.credential, Some(node))
    }

    /// The clerk's three headers for one request at this window.
    fn sign(&self, method: &str, path: &str, body: &[u8]) -> Vec<(&'static str, String)> {
        self.clerk.headers(&self.party, method, path, body, identity::http::now()).unwrap().to_vec()
    }

    async fn call<Q: WindowRequest>(&self, node: Party, base: &str, q: &Q) -> Result<Q::Answer, identity::Error> {
        window_call(&self.client(node), base, q, &self.clerk.window_signer(self.party.clone())).await
    }

    /// `POST base+path` with exactly `body` and `headers`, as this window: the error answer.
    async fn raw(
        &self,
        node: Party,
        base: &str,
        path: &str,
        body: &[u8],
        headers: &[(&'static str, String)],
    ) -> PeerAnswer {
        let mut r = self.client(node).post(format!("{base}{path}")).header("content-type", "application/json");
        for (k, v) in headers {
            r = r.header(*k, v);
        }
        let r = r.body(body.to_vec()).send().await.unwrap();
        let status = r.status().as_u16();
        let b: identity::openapi::ErrorBody = r.json().await.unwrap();
        PeerAnswer { url: base.into(), status, error: b.error, reason: b.reason, message: b.message }
    }
}

/// (operator, action, subject) of a node's operator log, read from its SQLite database.
async fn operator_log(db: &std::path::Path) -> Vec<(String, String, String)> {
    let db = identity::store::Db::open(&db.display().to_string()).await.unwrap();
    sqlx::query_as("SELECT operator, action, subject FROM operator_log ORDER BY id").fetch_all(db.pool()).await.unwrap()
}

#[tokio::test]
async fn windows_change_their_registers_and_print_disclosures_as_their_clerks_over_mutual_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let d = |f: &str| dir.join(f).display().to_string();
    let pki = NetPki::init(dir);
    pki.two_prefectures();
    let ports: Vec<u16> = (0..5).map(|_| free_port()).collect();
    let url = |i: usize| format!("https://127.0.0.1:{}", ports[i]);
    let (tokyo, osaka, p13, p27, national) = (url(0), url(1), url(2), url(3), url(4));
    let _nodes = [
        pki.serve_municipality("131016", &d("m131016.db"), ports[0], &["--peer", &format!("271004={osaka}")], &[]),
        pki.serve_municipality("271004", &d("m271004.db"), ports[1], &["--peer", &format!("131016={tokyo}")], &[]),
        pki.serve_prefecture("13", &d("p13.db"), ports[2], &[format!("131016={tokyo}")], &[]),
        pki.serve_prefecture("27", &d("p27.db"), ports[3], &[format!("271004={osaka}")], &[]),
        pki.serve_national(&d("n.db"), ports[4], &[format!("13={p13}"), format!("27={p27}")], &[]),
    ];
    let op = pki.client("op1", None);
    for u in [&tokyo, &osaka, &p13, &p27, &national] {
        ready(u, &op).await;
    }
    pki.draw_pool("131016", &d("m131016.db"), &national, 4);
    pki.draw_pool("271004", &d("m271004.db"), &national, 4);
    let window = |code: &str| Window {
        party: format!("window:{code}:W01").parse().unwrap(),
        clerk: pki.clerk(&format!("c{code}")),
        pki: pki.clone(),
        credential: format!("w{code}"),
    };
    let (w_tokyo, w_osaka) = (window("131016"), window("271004"));
    let date = |s: &str| parse_date("date", s).unwrap();

    // Registered at 千代田区's window.
    let items = FourItems {
        name: FlaggedText::plain("name", "窓口　花子").unwrap(),
        address: FlaggedText::plain("address", "東京都千代田区千代田1-1").unwrap(),
        date_of_birth: date("1990-04-01"),
        sex: Sex::Female,
    };
    let q = RegisterRequest {
        kind: Registration::FirstRegistration,
        items: items.clone(),
        effective_date: date("2026-04-01"),
    };
    let reg = w_tokyo.call(municipality("131016"), &tokyo, &q).await.unwrap();
    assert_eq!((reg.kind, reg.record.status), (NoticeKind::FirstRegistration, ResidentStatus::Active));
    let code: ResidentCode = reg.record.resident_code.clone();
    let found =
        w_tokyo.call(municipality("131016"), &tokyo, &FindRequest { by: Lookup::FourItems(items) }).await.unwrap();
    assert_eq!(found.records, vec![reg.record.clone()]);

    // Moves out to 大阪市, and in at 大阪市's window: 271004's node fetches the 転出証明書情報
    // from 131016 (its --peer directory) and sends it the 転入通知.
    let out = MoveOutRequest {
        resident_code: code.clone(),
        destination: "271004".parse().unwrap(),
        effective_date: date("2026-06-01"),
    };
    assert_eq!(w_tokyo.call(municipality("131016"), &tokyo, &out).await.unwrap().kind, NoticeKind::MoveOut);
    let move_in = MoveInRequest {
        resident_code: code.clone(),
        old_municipality: "131016".parse().unwrap(),
        address: FlaggedText::plain("address", "大阪府大阪市北区中之島1-3-20").unwrap(),
        effective_date: date("2026-06-02"),
    };
    let arrived = w_osaka.call(municipality("271004"), &osaka, &move_in).await.unwrap();
    assert_eq!((arrived.kind, arrived.record.municipality.as_str()), (NoticeKind::MoveIn, "271004"));
    assert_eq!(arrived.old_municipality_notified, Some(true), "{:?}", arrived.note);
    assert_eq!(arrived.record.items.name.text(), "窓口　花子");

    // The operator logs name window and clerk.
    let tokyo_actor = "window:131016:W01 clerk:131016:C0001";
    let log = operator_log(&dir.join("m131016.db")).await;
    let rows: Vec<(&str, &str)> = log.iter().map(|r| (r.0.as_str(), r.1.as_str())).collect();
    assert_eq!(rows, [(tokyo_actor, "FirstRegistration"), (tokyo_actor, "find"), (tokyo_actor, "MoveOut")], "{log:?}");
    let log = operator_log(&dir.join("m271004.db")).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!((log[0].0.as_str(), log[0].1.as_str()), ("window:271004:W01 clerk:271004:C0001", "MoveIn"));
    assert!(log[0].2.contains(code.as_str()), "{log:?}");

    // The national node, once the move-in has replicated, discloses the resident to 大阪市's
    // window only (the report an operator gets), logged as window and clerk.
    let disclose = DisclosureRequest { resident_code: code.clone() };
    let deadline = Instant::now() + Duration::from_secs(30);
    let rows = loop {
        match w_osaka.call(Party::National, &national, &disclose).await {
            Ok(rows) => break rows,
            Err(e) => {
                let a = e.peer_answer().cloned().unwrap_or_else(|| panic!("{e}"));
                assert_eq!(a.code(), "not_own_municipality", "{a}");
                assert!(Instant::now() < deadline, "the move-in never reached the national node");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let by_operator: serde_json::Value =
        op.get(format!("{national}/v1/disclosure/{code}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(serde_json::to_value(&rows).unwrap(), by_operator);
    let a = refused(w_tokyo.call(Party::National, &national, &disclose).await);
    assert_eq!((a.status, a.code()), (403, "not_own_municipality"), "{a}");
    let log = operator_log(&dir.join("n.db")).await;
    let disclosures: Vec<_> = log.iter().filter(|r| r.1 == "disclosure").collect();
    let who: Vec<(&str, &str)> = disclosures.iter().map(|r| (r.0.as_str(), r.2.as_str())).collect();
    assert_eq!(
        who,
        [("window:271004:W01 clerk:271004:C0001", code.as_str()), ("urn:jpki:operator:op1", code.as_str())],
        "{log:?}"
    );

    // Refusals, each with its code, nothing written at 131016.
    let before = operator_log(&dir.join("m131016.db")).await;
    let body = serde_json::to_vec(&FindRequest { by: Lookup::ResidentCode(code.clone()) }).unwrap();
    let node = || municipality("131016");
    // 大阪市's window with 大阪市's clerk at 千代田区's node.
    let a = w_osaka.raw(node(), &tokyo, FIND, &body, &w_osaka.sign("POST", FIND, &body)).await;
    assert_eq!((a.status, a.code()), (403, "not_own_municipality"), "{a}");
    // 千代田区's window with 大阪市's clerk.
    let a = w_tokyo
        .raw(
            node(),
            &tokyo,
            FIND,
            &body,
            &w_osaka.clerk.headers(&w_tokyo.party, "POST", FIND, &body, identity::http::now()).unwrap(),
        )
        .await;
    assert_eq!((a.status, a.code()), (401, "clerk_other_municipality"), "{a}");
    // No signature.
    let a = w_tokyo.raw(node(), &tokyo, FIND, &body, &[]).await;
    assert_eq!((a.status, a.code()), (401, "clerk_missing"), "{a}");
    // The body altered after signing.
    let signed = w_tokyo.sign("POST", FIND, &body);
    let other =
        serde_json::to_vec(&FindRequest { by: Lookup::ResidentCode(reg.record.resident_code.clone()) }).unwrap();
    let altered = [&other[..], b" "].concat();
    let a = w_tokyo.raw(node(), &tokyo, FIND, &altered, &signed).await;
    assert_eq!((a.status, a.code()), (401, "clerk_bad_signature"), "{a}");
    assert_eq!(operator_log(&dir.join("m131016.db")).await, before, "a refused request wrote to the operator log");
}
