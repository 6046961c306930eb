//! The identity operator console (issue 12, `identity::console`) served by the prefecture and
//! national routers, over real HTTP on loopback, on SQLite and PostgreSQL: an operator sees
//! every page (heads compared with the upstream tier, a halted source with its divergence,
//! replication lag, code pools, provision statistics written to the operator log); a halted
//! source is resumed by a POST with a valid CSRF token (operator-log row under the operator's
//! party name) and not without one, not with another operator's, not cross-site; every other
//! party gets the 403 page. Callers are named through the test double of the mutual-TLS
//! identity (`common::serve`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::*;
use identity::console::{self, Console};
use identity::http::{self, NationalState, PrefectureState};
use identity::law::Field;
use identity::national::National;
use identity::notice::ChangeNotice;
use identity::person::FlaggedText;
use identity::provision::{Lookup, Provider, Query};
use identity::replica::{self, Tier};
use identity::store::Db;
use identity::store::testing::TestDb;
use sqlx::Row;

const OP: &str = "urn:jpki:operator:op1";

struct World {
    national: National,
    national_url: String,
    pref13_url: String,
    /// The national seq 3 the forged notice contradicted, and the forgery.
    genuine3: ChangeNotice,
    forged3: ChangeNotice,
    _dbs: Vec<TestDb>,
}

/// 131016 with five births; prefecture 13 pulls them all; the national node pulls the first
/// four through the prefecture, then receives a notice re-sealed on another history for seq 3
/// and halts 131016. Both nodes serve their JSON routes and the console.
async fn world(like: &TestDb) -> World {
    let (mdb, pdb, ndb) = (fresh(like).await, fresh(like).await, fresh(like).await);
    let tokyo = municipality(&mdb, "131016", 700).await;
    let ns = births(&tokyo, 4).await;
    let tokyo_url = serve(http::municipal_router(tokyo.clone())).await;

    let pref13 = Db::open(&pdb.url).await.unwrap();
    identity::store::claim_identity(&pref13, "prefecture", "13").await.unwrap();
    let law = Arc::new(identity::law::LawTable::seed().unwrap());
    let pprov = Provider::open(pref13.clone(), law.clone()).await.unwrap();
    let from_tokyo = peer_as(&tokyo_url, "prefecture:13");
    replica::pull(&pref13, Tier::Prefecture, &*verifier(), &from_tokyo, Some("13")).await.unwrap();
    let pref_console = Console::prefecture(pref13.clone(), "13".parse().unwrap(), pprov.clone(), vec![from_tokyo]);
    let pref_router =
        http::prefecture_router(PrefectureState { db: pref13.clone(), code: "13".parse().unwrap(), provider: pprov });
    let pref13_url = serve(pref_router.merge(console::router(pref_console))).await;

    let national = National::open(Db::open(&ndb.url).await.unwrap(), law).await.unwrap();
    let from_pref = peer_as(&pref13_url, "national");
    let r = replica::pull(national.db(), Tier::National, &*verifier(), &from_pref, Some("13")).await.unwrap();
    assert_eq!(r[0].cursor_seq, 4, "{r:?}");
    // A fifth birth reaches the prefecture only: the heads differ by one.
    births(&tokyo, 1).await;
    replica::pull(&pref13, Tier::Prefecture, &*verifier(), &peer_as(&tokyo_url, "prefecture:13"), Some("13"))
        .await
        .unwrap();
    // Seq 3 again, sealed on the same prev_hash with other content: its hash contradicts the
    // one applied.
    let mut body = ns[2].body.clone();
    body.record.items.name = FlaggedText::plain("name", "偽造").unwrap();
    let forged3 = signed_by_source(ChangeNotice::seal(lg("131016"), 3, ns[1].hash, body));
    let e = replica::apply_batch(national.db(), Tier::National, &*verifier(), std::slice::from_ref(&forged3))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("halted"), "{e}");

    let console = Console::national(national.clone(), vec![peer_as(&pref13_url, "national")]);
    let router = http::national_router(NationalState { national: national.clone() });
    let national_url = serve(router.merge(console::router(console))).await;
    World { national, national_url, pref13_url, genuine3: ns[2].clone(), forged3, _dbs: vec![mdb, pdb, ndb] }
}

/// A client calling as `party` that does not follow redirects.
fn browser(party: &str) -> reqwest::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(TEST_PARTY, common::party(party).uri().parse().unwrap());
    reqwest::Client::builder().default_headers(h).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// `GET url` as `party`: status, headers and the page.
async fn get(party: &str, url: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let r = browser(party).get(url).send().await.unwrap();
    (r.status().as_u16(), r.headers().clone(), r.text().await.unwrap())
}

/// `POST url` as `party` with the form `body` and extra headers.
async fn post(party: &str, url: &str, body: &str, headers: &[(&str, &str)]) -> (u16, Option<String>, String) {
    let mut rb =
        browser(party).post(url).header("content-type", "application/x-www-form-urlencoded").body(body.to_owned());
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let r = rb.send().await.unwrap();
    let location = r.headers().get("location").map(|v| v.to_str().unwrap().to_owned());
    (r.status().as_u16(), location, r.text().await.unwrap())
}

/// The CSRF token of the first form of `page`.
fn token(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + "name=\"csrf\" value=\"".len();
    page[at..].split('"').next().unwrap().to_owned()
}

async fn halted(db: &Db) -> Option<String> {
    replica::cursor(db, "131016").await.unwrap().1
}

async fn log_rows(db: &Db, action: &str) -> Vec<(String, String, String)> {
    sqlx::query("SELECT operator, role, subject FROM operator_log WHERE action = $1 ORDER BY id")
        .bind(action.to_owned())
        .fetch_all(db.pool())
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap(), r.try_get(2).unwrap()))
        .collect()
}

fn hex16(h: &[u8; 32]) -> String {
    h.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn an_operator_sees_every_page_and_resumes_a_halted_source_with_a_csrf_token() {
    for t in backends().await {
        let w = world(&t).await;
        let n = &w.national_url;
        let db = w.national.db();

        // 連携状況: this node's head and the prefecture's, the difference marked in words.
        let (s, h, page) = get(OP, &format!("{n}/console/")).await;
        assert_eq!(s, 200, "{}: {page}", t.label);
        assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
        assert!(h["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
        assert_eq!(h["cache-control"], "no-store");
        assert!(page.contains("<html lang=\"ja\">") && page.contains("<h1>連携状況</h1>"), "{page}");
        assert!(page.contains("都道府県サーバ 1 局と比較しました。") && page.contains("相違 1 件"), "{page}");
        assert!(page.contains("<th scope=\"row\">131016</th><td>4</td>"), "national seq 4: {page}");
        assert!(page.contains("<td>5</td>"), "the prefecture's seq 5: {page}");
        assert!(page.contains("<strong>停止中</strong>") && page.contains("<strong>相違</strong>"), "{page}");
        assert!(!page.contains("style=") && !page.contains("<script>"), "no inline code");

        // 停止中の送信元: the divergence (seq, expected vs received hash, reason, when).
        let (s, _, page) = get(OP, &format!("{n}/console/halted")).await;
        assert_eq!(s, 200);
        assert!(page.contains("<th scope=\"row\">131016</th><td>4</td><td>3</td>"), "{page}");
        assert!(page.contains(&hex16(&w.genuine3.hash)), "expected hash: {page}");
        assert!(page.contains(&hex16(&w.forged3.hash)), "received hash: {page}");
        assert!(page.contains("was applied with hash") && page.contains(" JST"), "{page}");
        assert!(page.contains("送信元 131016 を再開"), "{page}");
        let tok = token(&page);

        // Refused posts leave it halted and write nothing.
        let resume = format!("{n}/console/halted/resume");
        let (s, _, page) = post(OP, &resume, "source=131016", &[]).await;
        assert_eq!(s, 403, "{page}");
        assert!(page.contains("csrf_missing"), "{page}");
        let (s, _, page) = post(OP, &resume, "csrf=12345.AAAA&source=131016", &[]).await;
        assert_eq!((s, page.contains("csrf_invalid")), (403, true), "{page}");
        let (_, _, other) = get("operator:op2", &format!("{n}/console/halted")).await;
        let (s, _, page) = post(OP, &resume, &format!("csrf={}&source=131016", token(&other)), &[]).await;
        assert_eq!((s, page.contains("csrf_invalid")), (403, true), "another operator's token: {page}");
        let form = format!("csrf={tok}&source=131016");
        let (s, _, page) = post(OP, &resume, &form, &[("origin", "https://evil.example")]).await;
        assert_eq!(s, 403, "cross-site Origin: {page}");
        let (s, _, _) = post(OP, &resume, &form, &[("sec-fetch-site", "cross-site")]).await;
        assert_eq!(s, 403, "Sec-Fetch-Site cross-site");
        let (s, _, page) = post(OP, &resume, &format!("csrf={tok}&source=13101X"), &[]).await;
        assert_eq!(s, 400, "a malformed source: {page}");
        assert!(page.contains("6桁の市区町村コード") && !page.contains("13101X"), "{page}");
        assert!(halted(db).await.is_some(), "{}", t.label);
        assert!(log_rows(db, "resume_source").await.is_empty());

        // With the page's token: resumed, logged under the operator's party name.
        let (s, location, _) = post(OP, &resume, &form, &[("sec-fetch-site", "same-origin")]).await;
        assert_eq!((s, location.as_deref()), (303, Some("/console/halted?resumed=131016")), "{}", t.label);
        assert_eq!(halted(db).await, None);
        assert_eq!(
            log_rows(db, "resume_source").await,
            vec![(OP.to_owned(), "national_operator".to_owned(), "131016".to_owned())]
        );
        let (s, _, page) = get(OP, &format!("{n}/console/halted?resumed=131016")).await;
        assert_eq!(s, 200);
        assert!(page.contains("送信元 131016 の停止を解除しました") && page.contains("停止中の送信元はありません。"));
        // Not halted any more: a second resume is a conflict, logged nowhere.
        let (s, _, page) = post(OP, &resume, &form, &[]).await;
        assert_eq!(s, 409, "{page}");
        assert!(page.contains("送信元 131016 はこの局で停止していません"), "{page}");
        assert_eq!(log_rows(db, "resume_source").await.len(), 1);

        // 遅延: the national node's pull of the prefecture, with its cursor.
        let (s, _, page) = get(OP, &format!("{n}/console/lag")).await;
        assert_eq!(s, 200);
        assert!(page.contains(&w.pref13_url) && page.contains("<th scope=\"row\">131016</th>"), "{page}");

        // コードプール: what the national node handed out and what is still unused.
        w.national.allocate_pool(&national_operator(), &lg("131041"), 6, NOW).await.unwrap();
        let (s, _, page) = get(OP, &format!("{n}/console/pools")).await;
        assert_eq!(s, 200);
        assert!(page.contains("<th scope=\"row\">131041</th><td>6</td><td>0</td><td>6</td>"), "{page}");

        // 提供統計: one lawful provision in FY2026, shown, and the request logged.
        let law = identity::law::LawTable::seed().unwrap();
        let p = law
            .purposes()
            .find(|p| !p.bulk && p.fields.contains(&Field::Name) && p.fields.contains(&Field::ResidentCode))
            .expect("a purpose granting the name")
            .clone();
        let provider = w.national.provider();
        let op = national_operator();
        let agency = provider.register_agency(&op, "agency-a", "A", p.agency_class, &[&p.code], NOW).await.unwrap();
        let q = Query {
            purpose: p.code.clone(),
            by: Lookup::ResidentCode(w.genuine3.body.record.resident_code.clone()),
            fields: BTreeSet::from([Field::Name]),
        };
        assert!(provider.query(&agency, &q, NOW).await.unwrap().found);
        let (s, _, page) = get(OP, &format!("{n}/console/statistics?year=2026")).await;
        assert_eq!(s, 200);
        assert!(
            page.contains(&format!("<th scope=\"row\">{}</th><td>{}</td><td>1</td>", p.description, p.code)),
            "{page}"
        );
        assert!(page.contains("<th scope=\"row\" colspan=\"2\">計</th><td>1</td>"), "{page}");
        assert_eq!(
            log_rows(db, "statistics").await,
            vec![(OP.to_owned(), "national_operator".to_owned(), "2026".to_owned())]
        );
        let (s, _, page) = get(OP, &format!("{n}/console/statistics?year=abc")).await;
        assert_eq!(s, 400, "{page}");
        assert!(page.contains("年度は 1989〜9998 の西暦"), "{page}");
        assert_eq!(log_rows(db, "statistics").await.len(), 1, "a refused request is not logged");

        // The prefecture's console compares with its municipality and has no code pools.
        let (s, _, page) = get(OP, &format!("{}/console/", w.pref13_url)).await;
        assert_eq!(s, 200);
        assert!(page.contains("都道府県サーバ 13 運用コンソール") && page.contains("市区町村 1 局と比較しました。"));
        assert!(page.contains("相違はありません。") && page.contains("一致"), "{page}");
        let (s, _, _) = get(OP, &format!("{}/console/pools", w.pref13_url)).await;
        assert_eq!(s, 404);
        // The stylesheet is served with the same headers.
        let (s, h, _) = get(OP, &format!("{n}{}", web::assets::css_path())).await;
        assert_eq!(s, 200);
        assert!(h["content-security-policy"].to_str().unwrap().contains("style-src 'self'"));
    }
}

#[tokio::test]
async fn every_party_but_an_operator_gets_the_403_page_and_nothing_is_resumed() {
    for t in backends().await {
        let w = world(&t).await;
        let db = w.national.db();
        let (_, _, page) = get(OP, &format!("{}/console/halted", w.national_url)).await;
        let form = format!("csrf={}&source=131016", token(&page));
        for other in
            ["agency:agency-a", "ca:jpki-ca", "prefecture:13", "municipality:131016", "national", "validator:v1"]
        {
            for base in [&w.national_url, &w.pref13_url] {
                for path in ["/console/", "/console/halted", "/console/lag", "/console/pools", "/console/statistics"] {
                    let (s, h, page) = get(other, &format!("{base}{path}")).await;
                    assert_eq!(s, 403, "{}: {other} {path}", t.label);
                    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
                    assert!(page.contains("アクセスできません") && page.contains("party_not_allowed"), "{page}");
                    assert!(!page.contains("131016"), "nothing of the node's state: {page}");
                }
            }
            let (s, _, _) = post(other, &format!("{}/console/halted/resume", w.national_url), &form, &[]).await;
            assert_eq!(s, 403, "{other}");
        }
        // Without any client party: 401, the same page.
        let r = reqwest::get(format!("{}/console/", w.national_url)).await.unwrap();
        assert_eq!(r.status(), 401);
        assert!(halted(db).await.is_some(), "still halted");
        assert!(log_rows(db, "resume_source").await.is_empty());
        assert!(log_rows(db, "statistics").await.is_empty());
    }
}
