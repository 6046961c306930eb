//! 広域交付 end to end across two prefectures, every node its own `jpki serve` process over
//! mutual TLS with the real clerk verifier: municipality 131016 (prefecture 13, with
//! `--national`), municipality 271004 (prefecture 27, with its document-signing key from the
//! organisation CA), both prefectures and the national node (with its `--municipal-directory`).
//! The test plays 131016's window `window:131016:W01` with its clerk's own key, as the window
//! process does (`identity::client::window_call`).
//!
//! A resident of 271004 gets the copy at 131016's window: a PDF signed by 271004 (checked with
//! pdftotext and pdfsig); the rows at 131016 (request, received), at 271004 (issued for
//! 131016's window and clerk) and in the resident's disclosure report at the national node.
//! Refused, each with its code and nothing provided anywhere: a resident of 131016 itself
//! (at its node and at the national node), a wrong date of birth, an unknown code and a
//! removed resident (one answer for all three), a municipality calling another municipality's
//! node directly, a window of 131016 at 271004's node, a municipality relaying another
//! municipality's window, and a municipality over its rate. No node logs personal data.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use identity::client::window_call;
use identity::ids::ResidentCode;
use identity::notice::parse_date;
use identity::party::Party;
use identity::person::{FlaggedText, FourItems, Sex};
use identity::widearea::{CopyRequest, ISSUE, RELAY, RelayRequest};
use identity::window::*;
use net::clerk::ClerkKey;

const DOC_KEY_PASS: &str = "osaka document-signing key passphrase";

/// A window process's view: its mutual-TLS client and its clerk.
struct Window {
    party: Party,
    clerk: Arc<ClerkKey>,
    pki: NetPki,
    credential: String,
}

impl Window {
    async fn call<Q: WindowRequest>(&self, node: Party, base: &str, q: &Q) -> Result<Q::Answer, identity::Error> {
        let client = self.pki.client(&self.credential, Some(node));
        window_call(&client, base, q, &self.clerk.window_signer(self.party.clone())).await
    }
}

/// Registers a resident (first registration, female) at `w`'s municipality `code` (node
/// `base`); returns the new resident code.
async fn register(w: &Window, code: &str, base: &str, name: &str, address: &str, dob: &str) -> ResidentCode {
    let date = |s: &str| parse_date("date", s).unwrap();
    let q = RegisterRequest {
        kind: Registration::FirstRegistration,
        items: FourItems {
            name: FlaggedText::plain("name", name).unwrap(),
            address: FlaggedText::plain("address", address).unwrap(),
            date_of_birth: date(dob),
            sex: Sex::Female,
        },
        effective_date: date("2026-04-01"),
    };
    w.call(municipality(code), base, &q).await.unwrap().record.resident_code
}

/// `POST url` with `body` as JSON over `client`: (status, reason or error, body).
async fn post(client: &reqwest::Client, url: &str, body: &serde_json::Value) -> (u16, String, serde_json::Value) {
    let r = client.post(url).json(body).send().await.unwrap();
    let status = r.status().as_u16();
    let b: serde_json::Value = r.json().await.unwrap_or_default();
    let code = b["reason"].as_str().or(b["error"].as_str()).unwrap_or_default().to_owned();
    (status, code, b)
}

/// (operator, role, action, subject) of a node's operator log.
async fn operator_log(db: &Path) -> Vec<(String, String, String, String)> {
    let db = identity::store::Db::open(&db.display().to_string()).await.unwrap();
    sqlx::query_as("SELECT operator, role, action, subject FROM operator_log ORDER BY id")
        .fetch_all(db.pool())
        .await
        .unwrap()
}

/// (function, destination, resident, fields, result, reason) of the national provision log.
async fn provision_log(db: &Path) -> Vec<(String, String, Option<String>, String, String, Option<String>)> {
    let db = identity::store::Db::open(&db.display().to_string()).await.unwrap();
    sqlx::query_as("SELECT function, destination, resident_code, fields, result, reason FROM provision_log ORDER BY id")
        .fetch_all(db.pool())
        .await
        .unwrap()
}

/// Waits until the national projection holds `code` with `status` (1 active, 3 deceased, …).
async fn wait_national(db: &Path, code: &ResidentCode, status: i64) {
    let db = identity::store::Db::open(&db.display().to_string()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s: Option<i64> = sqlx::query_scalar("SELECT status FROM resident WHERE resident_code = $1")
            .bind(code.as_str())
            .fetch_optional(db.pool())
            .await
            .unwrap();
        if s == Some(status) {
            return;
        }
        assert!(Instant::now() < deadline, "the national node never projected the resident with status {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Spawns `jpki ARGS` presenting credential `name`, its log (stderr) to `log`.
fn spawn(pki: &NetPki, name: &str, args: &[&str], env: &[(&str, &str)], log: &Path) -> Kill {
    Kill(
        Command::new(jpki_bin())
            .args(args)
            .env_remove("JPKI_DB")
            .envs(pki.env(name))
            .envs(env.iter().copied())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_window_gets_a_copy_signed_by_the_residents_municipality_in_another_prefecture() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let d = |f: &str| dir.join(f).display().to_string();
    let pki = NetPki::init(dir);
    pki.two_prefectures();
    // A third municipality's credential (no node): it calls the relay itself.
    pki.issue("m011002", "municipality:011002", false);

    // 大阪市's document-signing key, from the organisation CA.
    let now = identity::http::now();
    let secret = |s: &str| net::secret::Secret::new(s.as_bytes().to_vec());
    let org = ca::network::NetworkCa::init_kind(
        ca::network::FileCaKind::Organisation,
        &dir.join("org"),
        &secret("organisation CA passphrase"),
        now,
    )
    .unwrap();
    let signer = org
        .issue_document_signer(
            &"271004".parse().unwrap(),
            "Osaka-shi",
            "http://127.0.0.1:9/org/crl.der",
            30,
            now,
            &dir.join("osaka-document"),
            ca::network::SubjectKey::Generate(&secret(DOC_KEY_PASS)),
        )
        .unwrap();
    let (doc_key, doc_chain) = (signer.key.clone().unwrap().display().to_string(), signer.chain.display().to_string());

    let ports: Vec<u16> = (0..5).map(|_| free_port()).collect();
    let url = |i: usize| format!("https://127.0.0.1:{}", ports[i]);
    let (tokyo, osaka, p13, p27, national) = (url(0), url(1), url(2), url(3), url(4));
    let listen = |i: usize| format!("127.0.0.1:{}", ports[i]);
    std::fs::write(d("directory"), format!("# the municipal directory\n131016={tokyo}\n\n271004={osaka}\n")).unwrap();
    let notice = |c: &str| pki.prefix(&format!("m{c}-notice")).display().to_string();
    let (l0, l1, l2, l3, l4) = (listen(0), listen(1), listen(2), listen(3), listen(4));
    let (n0, n1) = (notice("131016"), notice("271004"));
    let (m13, m27, dp13, dp27, dn) = (d("m131016.db"), d("m271004.db"), d("p13.db"), d("p27.db"), d("n.db"));
    let (pm13, pm27, pp13, pp27) =
        (format!("131016={tokyo}"), format!("271004={osaka}"), format!("13={p13}"), format!("27={p27}"));
    let dir_file = d("directory");
    let logs = ["m131016.log", "m271004.log", "p13.log", "p27.log", "n.log"].map(|f| dir.join(f));
    let _nodes = [
        spawn(
            &pki,
            "m131016",
            &["serve", "municipality", "--db", &m13, "--code", "131016", "--listen", &l0, "--notice-key", &n0]
                .into_iter()
                .chain(["--national", national.as_str()])
                .collect::<Vec<_>>(),
            &[],
            &logs[0],
        ),
        spawn(
            &pki,
            "m271004",
            &[
                "serve",
                "municipality",
                "--db",
                &m27,
                "--code",
                "271004",
                "--listen",
                &l1,
                "--notice-key",
                &n1,
                "--kiosk-document-key",
                &doc_key,
                "--kiosk-document-chain",
                &doc_chain,
                "--kiosk-municipality-name",
                "大阪府大阪市",
            ],
            &[("JPKI_KIOSK_DOCUMENT_KEY_PASSPHRASE", DOC_KEY_PASS)],
            &logs[1],
        ),
        spawn(
            &pki,
            "p13",
            &["serve", "prefecture", "--db", &dp13, "--code", "13", "--listen", &l2, "--interval-ms", "100"]
                .into_iter()
                .chain(["--municipality", pm13.as_str()])
                .collect::<Vec<_>>(),
            &[],
            &logs[2],
        ),
        spawn(
            &pki,
            "p27",
            &["serve", "prefecture", "--db", &dp27, "--code", "27", "--listen", &l3, "--interval-ms", "100"]
                .into_iter()
                .chain(["--municipality", pm27.as_str()])
                .collect::<Vec<_>>(),
            &[],
            &logs[3],
        ),
        spawn(
            &pki,
            "national",
            &[
                "serve",
                "national",
                "--db",
                &dn,
                "--listen",
                &l4,
                "--interval-ms",
                "100",
                "--prefecture",
                &pp13,
                "--prefecture",
                &pp27,
                "--municipal-directory",
                &dir_file,
                "--wide-area-rate",
                "1",
                "--wide-area-burst",
                "12",
            ],
            &[],
            &logs[4],
        ),
    ];
    let op = pki.client("op1", None);
    for u in [&tokyo, &osaka, &p13, &p27, &national] {
        ready(u, &op).await;
    }
    pki.draw_pool("131016", &m13, &national, 4);
    pki.draw_pool("271004", &m27, &national, 4);
    let window = |code: &str| Window {
        party: format!("window:{code}:W01").parse().unwrap(),
        clerk: pki.clerk(&format!("c{code}")),
        pki: pki.clone(),
        credential: format!("w{code}"),
    };
    let (w_tokyo, w_osaka) = (window("131016"), window("271004"));
    let date = |s: &str| parse_date("date", s).unwrap();
    // 大阪市's residents: one who asks at 千代田区, one who has died; 千代田区's own resident.
    let resident =
        register(&w_osaka, "271004", &osaka, "遠方　花子", "大阪府大阪市北区中之島1-3-20", "1985-07-07").await;
    let removed = register(&w_osaka, "271004", &osaka, "故人　一郎", "大阪府大阪市北区中之島2-1", "1950-01-01").await;
    let rq =
        RemoveRequest { resident_code: removed.clone(), reason: Removal::Death, effective_date: date("2026-05-01") };
    w_osaka.call(municipality("271004"), &osaka, &rq).await.unwrap();
    let local = register(&w_tokyo, "131016", &tokyo, "地元　太郎", "東京都千代田区千代田1-1", "1970-03-03").await;
    for (code, status) in [(&resident, 1), (&removed, 3), (&local, 1)] {
        wait_national(&dir.join("n.db"), code, status).await;
    }
    let a_before = operator_log(&dir.join("m131016.db")).await;
    let b_before = operator_log(&dir.join("m271004.db")).await;

    // 1. The copy, with the 住民票コード as the resident asked, at 千代田区's window.
    let ask = |code: &ResidentCode, dob: &str| CopyRequest {
        resident_code: code.clone(),
        date_of_birth: date(dob),
        with_resident_code: true,
    };
    let copy = w_tokyo.call(municipality("131016"), &tokyo, &ask(&resident, "1985-07-07")).await.unwrap();
    assert_eq!(copy.issuer.as_str(), "271004");
    assert_eq!(copy.items, "name,address,date_of_birth,sex,resident_code");
    assert_eq!(copy.record.name, "遠方　花子");
    assert_eq!(copy.record.resident_code.as_deref(), Some(resident.as_str()));
    let pdf = base64::engine::general_purpose::STANDARD.decode(&copy.pdf).unwrap();
    std::fs::write(d("copy.pdf"), &pdf).unwrap();
    let o = Command::new("pdftotext").args([&d("copy.pdf"), "-"]).output().unwrap();
    let page = text(&o);
    for want in ["遠方", "花子", "大阪府大阪市北区中之島1-3-20", resident.as_str(), "大阪府大阪市"]
    {
        assert!(page.contains(want), "{want} not on the page: {page}");
    }
    let o = Command::new("pdfsig").arg(d("copy.pdf")).output().unwrap();
    assert!(text(&o).contains("Signature is Valid") && text(&o).contains("Osaka-shi"), "{}", text(&o));

    // The rows: 千代田区 logged the request before relaying and what it received; 大阪市 logged
    // the issue for 千代田区's window and clerk; the national provision log has the provision,
    // and the resident's disclosure report lists it.
    let actor = "window:131016:W01 clerk:131016:C0001";
    let a_log = operator_log(&dir.join("m131016.db")).await;
    let new: Vec<_> = a_log[a_before.len()..].to_vec();
    assert_eq!(new.len(), 2, "{new:?}");
    assert_eq!((new[0].0.as_str(), new[0].2.as_str()), (actor, "wide_area_request"));
    assert_eq!(new[0].3, format!("{resident} items=name,address,date_of_birth,sex,resident_code"));
    assert_eq!((new[1].0.as_str(), new[1].2.as_str()), (actor, "wide_area_received"));
    let o = Command::new("sha256sum").arg(d("copy.pdf")).output().unwrap();
    let digest = text(&o).split_whitespace().next().unwrap().to_owned();
    assert!(new[1].3.contains("issuer=271004") && new[1].3.ends_with(&format!("pdf-sha256={digest}")), "{new:?}");
    let b_log = operator_log(&dir.join("m271004.db")).await;
    let issued: Vec<_> = b_log[b_before.len()..].to_vec();
    assert_eq!(issued.len(), 1, "{issued:?}");
    assert_eq!(
        (issued[0].0.as_str(), issued[0].1.as_str(), issued[0].2.as_str()),
        (actor, "wide_area_window", "wide_area_issue")
    );
    assert_eq!(
        issued[0].3,
        format!(
            "{resident} items=name,address,date_of_birth,sex,resident_code requested-by=municipality:131016 via=national"
        )
    );
    let report: Vec<DisclosureRow> =
        op.get(format!("{national}/v1/disclosure/{resident}")).send().await.unwrap().json().await.unwrap();
    let wide: Vec<_> = report.iter().filter(|r| r.function == "広域交付").collect();
    assert_eq!(wide.len(), 1, "{report:?}");
    assert_eq!(wide[0].destination, format!("municipality:131016 {actor}"));
    assert_eq!((wide[0].result.as_str(), wide[0].provision_class.as_str()), ("provided", "法第12条の4"));
    assert_eq!(wide[0].fields, "name,address,date_of_birth,sex,resident_code");
    assert!(wide[0].purpose.starts_with("W1-001 "), "{:?}", wide[0]);
    // 大阪市's own window prints the same report for its resident.
    let rows = w_osaka.call(Party::National, &national, &DisclosureRequest { resident_code: resident.clone() }).await;
    assert!(rows.unwrap().iter().any(|r| r.function == "広域交付" && r.result == "provided"));

    // 2. Refusals at 千代田区's window, each with its code and a Japanese message.
    let provided_before = provision_log(&dir.join("n.db")).await;
    let a = refused(w_tokyo.call(municipality("131016"), &tokyo, &ask(&local, "1970-03-03")).await);
    assert_eq!((a.status, a.code()), (403, "own_municipality"), "{a}");
    assert!(a.message.contains("この市区町村の住民です"), "{a}");
    let wrong_dob = refused(w_tokyo.call(municipality("131016"), &tokyo, &ask(&resident, "1985-07-08")).await);
    let unknown_code = ResidentCode::from_body([9, 8, 7, 6, 5, 4, 3, 2, 1, 0]).unwrap();
    let unknown = refused(w_tokyo.call(municipality("131016"), &tokyo, &ask(&unknown_code, "1985-07-07")).await);
    let dead = refused(w_tokyo.call(municipality("131016"), &tokyo, &ask(&removed, "1950-01-01")).await);
    for a in [&wrong_dob, &unknown, &dead] {
        assert_eq!((a.status, a.code()), (404, "not_found"), "{a}");
        assert_eq!(a.message, wrong_dob.message, "one answer for every miss");
        assert!(a.message.contains("見つかりません"), "{a}");
    }
    // A window of 千代田区 at 大阪市's node.
    let a = refused(w_tokyo.call(municipality("271004"), &osaka, &ask(&resident, "1985-07-07")).await);
    assert_eq!((a.status, a.code()), (403, "not_own_municipality"), "{a}");
    // 千代田区's node calling 大阪市's node directly (only the national node may).
    let m13 = pki.client("m131016", Some(municipality("271004")));
    let direct = serde_json::json!({
        "resident_code": resident.as_str(), "date_of_birth": "1985-07-07", "with_resident_code": true,
        "requester": "131016", "window": "urn:jpki:window:131016:W01", "clerk": "urn:jpki:clerk:131016:C0001",
    });
    let (status, code, _) = post(&m13, &format!("{osaka}{ISSUE}"), &direct).await;
    assert_eq!((status, code.as_str()), (403, "party_not_allowed"));
    // At the national node: 千代田区 relaying 大阪市's window, and its own resident.
    let m13n = pki.client("m131016", Some(Party::National));
    let relay = |code: &ResidentCode, dob: &str, window: &str, clerk: &str| {
        serde_json::to_value(RelayRequest {
            resident_code: code.clone(),
            date_of_birth: date(dob),
            with_resident_code: false,
            window: window.parse().unwrap(),
            clerk: clerk.parse().unwrap(),
        })
        .unwrap()
    };
    let q = relay(&resident, "1985-07-07", "window:271004:W01", "clerk:271004:C0001");
    let (status, code, _) = post(&m13n, &format!("{national}{RELAY}"), &q).await;
    assert_eq!((status, code.as_str()), (403, "not_own_municipality"));
    let q = relay(&local, "1970-03-03", "window:131016:W01", "clerk:131016:C0001");
    let (status, code, _) = post(&m13n, &format!("{national}{RELAY}"), &q).await;
    assert_eq!((status, code.as_str()), (403, "own_municipality"));
    // A window cannot reach the relay itself.
    let wn = pki.client("w131016", Some(Party::National));
    let q = relay(&resident, "1985-07-07", "window:131016:W01", "clerk:131016:C0001");
    let (status, code, _) = post(&wn, &format!("{national}{RELAY}"), &q).await;
    assert_eq!((status, code.as_str()), (403, "party_not_allowed"));

    // 3. A municipality over its rate (burst 12, 1/s): walking codes is cut off with 429.
    let m01 = pki.client("m011002", Some(Party::National));
    let mut statuses = Vec::new();
    for i in 0..30u8 {
        let code = ResidentCode::from_body([1, 1, 1, 1, 1, 1, 1, 1, i / 10, i % 10]).unwrap();
        let q = relay(&code, "2000-01-01", "window:011002:W01", "clerk:011002:C0001");
        let (status, reason, _) = post(&m01, &format!("{national}{RELAY}"), &q).await;
        statuses.push((status, reason));
    }
    assert_eq!(statuses[0], (404, "not_found".to_owned()));
    assert!(statuses.iter().any(|s| *s == (429, "rate_limited".to_owned())), "{statuses:?}");
    assert!(statuses.iter().filter(|s| s.0 == 404).count() <= 20, "{statuses:?}");

    // Nothing was provided by any refusal: no new "provided" row at the national node, nothing
    // issued at 大阪市; every refusal and miss is in the provision log with its code.
    let log = provision_log(&dir.join("n.db")).await;
    let new = &log[provided_before.len()..];
    assert!(new.iter().all(|r| r.0 == "広域交付" && r.4 != "provided"), "{new:?}");
    let reason = |r: &(String, String, Option<String>, String, String, Option<String>)| r.5.clone().unwrap_or_default();
    for want in ["not_found", "own_municipality", "rate_limited"] {
        assert!(new.iter().any(|r| reason(r) == want), "no {want} row: {new:?}");
    }
    assert!(
        new.iter().any(|r| r.2.as_deref() == Some(resident.as_str()) && r.4 == "not_found"),
        "the wrong date of birth is in the resident's own report: {new:?}"
    );
    let provided: Vec<_> = log.iter().filter(|r| r.4 == "provided").collect();
    assert_eq!(provided.len(), 1, "{log:?}");
    let b_log = operator_log(&dir.join("m271004.db")).await;
    assert_eq!(b_log.iter().filter(|r| r.2 == "wide_area_issue").count(), 1, "{b_log:?}");
    let a_log = operator_log(&dir.join("m131016.db")).await;
    let failed: Vec<_> = a_log.iter().filter(|r| r.2 == "wide_area_failed").map(|r| r.3.clone()).collect();
    assert_eq!(failed.len(), 3, "three misses relayed and failed: {a_log:?}");
    assert!(failed.iter().all(|s| s.ends_with("reason=not_found")), "{failed:?}");

    // No node logged personal data.
    for f in &logs {
        let log = std::fs::read_to_string(f).unwrap();
        for personal in [
            resident.as_str(),
            removed.as_str(),
            local.as_str(),
            "遠方",
            "花子",
            "中之島",
            "1985-07-07",
            "1985-07-08",
            "地元",
        ] {
            assert!(!log.contains(personal), "{} logged personal data ({personal}): {log}", f.display());
        }
    }
    let log = std::fs::read_to_string(&logs[4]).unwrap();
    assert!(log.contains("広域交付 relayed") && log.contains("rate_limited"), "{log}");
}
