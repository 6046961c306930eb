//! Provision to agencies under the law table, on SQLite and PostgreSQL: lawful queries by
//! resident code and by exact four items, bulk liveness checks, every refusal path, per-agency
//! rate limits (429 with Retry-After, four-item lookups held to their own lower limit), the
//! status only with change information granted, the provision log, disclosure reports and
//! yearly statistics, over the real HTTP API (callers named through the test double of the
//! mutual-TLS identity, `common::peer_as`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::*;
use identity::ErrorKind;
use identity::http::{self, NationalState};
use identity::law::{Field, LawTable, Purpose};
use identity::national::National;
use identity::notice::NoticeKind;
use identity::provision::{BatchQuery, DisclosureRow, Lookup, Provided, Provider, Query};
use identity::rate_limit::{Limits, Rate};
use identity::replica::{self, Tier};
use identity::store::{self, Db};
use sqlx::Row;

struct World {
    national: National,
    url: String,
    law: Arc<LawTable>,
    alive: identity::ids::ResidentCode,
    dead: identity::ids::ResidentCode,
    _dbs: Vec<identity::store::testing::TestDb>,
}

async fn world(like: &identity::store::testing::TestDb) -> World {
    let (mdb, ndb) = (fresh(like).await, fresh(like).await);
    let m = signed_municipality(Db::open(&mdb.url).await.unwrap(), "131016").await;
    m.add_pool(&codes(700, 5)).await.unwrap();
    let a = m
        .register(
            &clerk(),
            NoticeKind::FirstRegistration,
            items("山田　花子", "東京都千代田区1", "1980-02-29"),
            date("2026-04-01"),
            NOW,
        )
        .await
        .unwrap();
    let d = m
        .register(
            &clerk(),
            NoticeKind::FirstRegistration,
            items("佐藤　一郎", "東京都千代田区2", "1931-05-05"),
            date("2026-04-01"),
            NOW,
        )
        .await
        .unwrap();
    m.remove(&clerk(), &d.body.record.resident_code, NoticeKind::Death, date("2026-05-01"), NOW).await.unwrap();
    // The seed plus one 別表第2 row (the seed lists none of that table's 68 事務), so that a
    // second nationally-held class exists to be refused.
    let text = format!(
        "{}B2-001\tB2\tname,address,date_of_birth,sex,resident_code\tno\t地方税法による地方税の賦課徴収に関する事務\n",
        include_str!("../seed/law_table.tsv")
    );
    let law = Arc::new(LawTable::parse(&text).unwrap());
    let national = National::open(Db::open(&ndb.url).await.unwrap(), law.clone()).await.unwrap();
    let notices = store::notices_after(m.db(), "131016", 0, 100).await.unwrap();
    admit_keys_of(national.db(), &m).await;
    replica::apply_batch(national.db(), Tier::National, &*verifier(), &notices).await.unwrap();
    let url = serve(http::national_router(NationalState { national: national.clone() })).await;
    World {
        national,
        url,
        law,
        alive: a.body.record.resident_code,
        dead: d.body.record.resident_code,
        _dbs: vec![mdb, ndb],
    }
}

fn fields(f: &[Field]) -> BTreeSet<Field> {
    f.iter().copied().collect()
}

fn bulk(law: &LawTable) -> &Purpose {
    law.purposes().find(|p| p.bulk).expect("a bulk purpose")
}

fn single(law: &LawTable) -> &Purpose {
    law.purposes()
        .find(|p| !p.bulk && p.fields.contains(&Field::Name) && p.fields.contains(&Field::ResidentCode))
        .expect("a non-bulk purpose")
}

async fn log_rows(db: &Db) -> Vec<(String, String, Option<String>)> {
    sqlx::query("SELECT result, purpose, reason FROM provision_log ORDER BY id")
        .fetch_all(db.pool())
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap(), r.try_get(2).unwrap()))
        .collect()
}

#[tokio::test]
async fn lawful_queries_are_answered_with_only_the_granted_fields_and_logged() {
    for t in backends().await {
        let w = world(&t).await;
        let p = single(&w.law);
        let agency = w
            .national
            .provider()
            .register_agency(&national_operator(), "agency-a", "旅券事務所", p.agency_class, &[&p.code], NOW)
            .await
            .unwrap();
        assert_eq!(w.national.provider().registered_agency("agency-a").await.unwrap(), Some(agency));
        let peer = peer_as(&w.url, "agency:agency-a");
        let q = Query {
            purpose: p.code.clone(),
            by: Lookup::ResidentCode(w.alive.clone()),
            fields: fields(&[Field::Name]),
        };
        let r: Provided = peer.post_json("/v1/provision/query", &q).await.unwrap();
        assert!(r.found, "{}", t.label);
        assert_eq!(r.items.keys().cloned().collect::<Vec<_>>(), vec!["name".to_owned()], "only the granted field");
        // By an exact match of the four items; a near miss finds nothing.
        let rec = w.national.record(&w.alive).await.unwrap();
        let q4 = Query {
            purpose: p.code.clone(),
            by: Lookup::FourItems(rec.items.clone()),
            fields: fields(&[Field::ResidentCode]),
        };
        let r: Provided = peer.post_json("/v1/provision/query", &q4).await.unwrap();
        assert_eq!(r.items["resident_code"], serde_json::json!(w.alive.as_str()));
        let mut near = rec.items.clone();
        near.date_of_birth = date("1980-03-01");
        let q5 = Query { purpose: p.code.clone(), by: Lookup::FourItems(near), fields: fields(&[Field::ResidentCode]) };
        let r: Provided = peer.post_json("/v1/provision/query", &q5).await.unwrap();
        assert!(!r.found);
        // The wire form agencies write by hand: dates as YYYY-MM-DD, sex as 1/2/9.
        let r = client_as("agency:agency-a")
            .post(format!("{}/v1/provision/query", w.url))
            .json(&serde_json::json!({
                "purpose": p.code,
                "by": {"four_items": {
                    "name": {"text": "山田　花子"}, "address": {"text": "東京都千代田区1"},
                    "date_of_birth": "1980-02-29", "sex": 2}},
                "fields": ["resident_code"]
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["items"]["resident_code"], serde_json::json!(w.alive.as_str()), "{body}");
        let rows = log_rows(w.national.db()).await;
        assert_eq!(
            rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
            vec!["provided", "provided", "not_found", "provided"],
            "{}",
            t.label
        );
        // The resident's disclosure report lists every provision of their record.
        let operator = peer_as(&w.url, "operator:op1");
        let d: Vec<DisclosureRow> = operator.get_json(&format!("/v1/disclosure/{}", w.alive)).await.unwrap();
        assert_eq!(d.len(), 3);
        assert!(d[0].destination.contains("agency-a") && d[0].fields == "name", "{:?}", d[0]);
        assert!(d[0].purpose.contains(&p.description));
        assert_eq!(d[0].source, "全国サーバ");
        // Disclosure and statistics are for operators: the agency is refused.
        let e = peer.get_json::<Vec<DisclosureRow>>(&format!("/v1/disclosure/{}", w.alive)).await.unwrap_err();
        assert!(e.to_string().contains("403") && e.to_string().contains("party_not_allowed"), "{e}");
        let fy = Provider::fiscal_year_of(NOW).unwrap();
        let stats = operator.get_text(&format!("/v1/statistics?years={fy}")).await.unwrap();
        assert!(stats.contains(&format!("| {} | 3 |", p.description)), "{stats}");
        assert!(stats.contains("| 計 | 3 |"), "{stats}");
        let e = operator.get_text("/v1/statistics?years=R8").await.unwrap_err();
        assert!(e.to_string().contains("400") && e.to_string().contains("years"), "{e}");
        let e = peer.get_text(&format!("/v1/statistics?years={fy}")).await.unwrap_err();
        assert!(e.to_string().contains("403"), "{e}");
        let e = anonymous(&w.url).get_text(&format!("/v1/statistics?years={fy}")).await.unwrap_err();
        assert!(e.to_string().contains("401"), "{e}");
    }
}

#[tokio::test]
async fn every_refusal_is_logged_with_its_reason_and_provides_nothing() {
    for t in backends().await {
        let w = world(&t).await;
        let p = single(&w.law);
        let b = bulk(&w.law);
        let other = w.law.get("B2-001").unwrap();
        let sibling = w.law.purposes().find(|x| x.agency_class == p.agency_class && x.code != p.code).unwrap();
        let op = national_operator();
        w.national.provider().register_agency(&op, "agency-a", "A", p.agency_class, &[&p.code], NOW).await.unwrap();
        w.national
            .provider()
            .register_agency(&op, "agency-b", "B", other.agency_class, &[&other.code], NOW)
            .await
            .unwrap();
        w.national
            .provider()
            .register_agency(&op, "agency-c", "C", p.agency_class, &[&sibling.code], NOW)
            .await
            .unwrap();
        // Registration itself checks the law table.
        let e = w
            .national
            .provider()
            .register_agency(&op, "agency-d", "D", p.agency_class, &[&other.code], NOW)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
        let e =
            w.national.provider().register_agency(&op, "agency-d", "D", p.agency_class, &[], NOW).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
        let peer = peer_as(&w.url, "agency:agency-a");
        let by = Lookup::ResidentCode(w.alive.clone());
        let cases: Vec<(&str, Query)> = vec![
            ("unknown purpose", Query { purpose: "NO-SUCH".into(), by: by.clone(), fields: fields(&[Field::Name]) }),
            ("class not entitled", Query { purpose: p.code.clone(), by: by.clone(), fields: fields(&[Field::Name]) }),
            ("no fields", Query { purpose: p.code.clone(), by: by.clone(), fields: fields(&[]) }),
        ];
        for (i, (what, q)) in cases.iter().enumerate() {
            let caller = if i == 1 { "agency:agency-b" } else { "agency:agency-a" };
            let r = client_as(caller).post(format!("{}/v1/provision/query", w.url)).json(q).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 403, "{what}");
            let body: serde_json::Value = r.json().await.unwrap();
            let want = ["unknown_purpose", "agency_not_entitled", "no_fields"][i];
            assert_eq!(body["reason"], want, "{what}: {body}");
        }
        assert!(!p.fields.contains(&Field::ChangeInfo));
        let q = Query { purpose: p.code.clone(), by: by.clone(), fields: fields(&[Field::Name, Field::ChangeInfo]) };
        let e = peer.post_json::<_, Provided>("/v1/provision/query", &q).await.unwrap_err();
        assert!(e.to_string().contains("field_not_permitted"), "{e}");
        // Same class, but the agency is not registered for this purpose.
        let q = Query { purpose: p.code.clone(), by: by.clone(), fields: fields(&[Field::Name]) };
        let e =
            peer_as(&w.url, "agency:agency-c").post_json::<_, Provided>("/v1/provision/query", &q).await.unwrap_err();
        assert!(e.to_string().contains("purpose_not_registered"), "{e}");
        // Bulk under a purpose that is not bulk.
        let bq = BatchQuery {
            purpose: p.code.clone(),
            fields: fields(&[Field::Name]),
            resident_codes: vec![w.alive.clone()],
        };
        let e = peer.post_json::<_, Vec<Provided>>("/v1/provision/batch", &bq).await.unwrap_err();
        assert!(e.to_string().contains("403"), "{e}");
        // Callers that are not registered agencies: refused before the law table, and (unlike
        // the law-table refusals above) not written to the provision log.
        let q = Query { purpose: p.code.clone(), by: by.clone(), fields: fields(&[Field::Name]) };
        for (caller, want) in [
            ("agency:agency-z", "agency_not_registered"),
            ("ca:jpki-ca", "agency_not_registered"),
            ("municipality:131016", "party_not_allowed"),
            ("operator:op1", "party_not_allowed"),
        ] {
            let e = peer_as(&w.url, caller).post_json::<_, Provided>("/v1/provision/query", &q).await.unwrap_err();
            assert!(e.to_string().contains("403") && e.to_string().contains(want), "{caller}: {e}");
        }
        let e = anonymous(&w.url).post_json::<_, Provided>("/v1/provision/query", &q).await.unwrap_err();
        assert!(e.to_string().contains("401"), "{e}");
        // Oversized batch, even for a bulk purpose.
        w.national
            .provider()
            .register_agency(&national_operator(), "jps", "日本年金機構", b.agency_class, &[&b.code], NOW)
            .await
            .unwrap();
        let big = BatchQuery {
            purpose: b.code.clone(),
            fields: fields(&[Field::ChangeInfo]),
            resident_codes: vec![w.alive.clone(); identity::provision::MAX_BATCH + 1],
        };
        let e =
            peer_as(&w.url, "agency:jps").post_json::<_, Vec<Provided>>("/v1/provision/batch", &big).await.unwrap_err();
        assert!(e.to_string().contains("400"), "{e}");
        // Free search does not exist: an unknown lookup shape is malformed input.
        let r = client_as("agency:agency-a")
            .post(format!("{}/v1/provision/query", w.url))
            .json(&serde_json::json!({"purpose": p.code, "by": {"name_prefix": "山"}, "fields": ["name"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400);

        let rows = log_rows(w.national.db()).await;
        let refused: Vec<_> = rows.iter().filter(|r| r.0 == "refused").collect();
        // The six law-table refusals above and the oversized batch; the callers refused by the
        // authorization table wrote nothing.
        assert_eq!(refused.len(), 7, "{}: {rows:?}", t.label);
        assert!(
            refused.iter().all(|r| r.2.as_deref().is_some_and(|s| !s.is_empty())),
            "every refusal has a reason: {rows:?}"
        );
        assert!(rows.iter().all(|r| r.0 != "provided"), "nothing was provided: {rows:?}");
    }
}

#[tokio::test]
async fn the_bulk_liveness_check_reports_deaths_and_logs_one_row_per_resident() {
    for t in backends().await {
        let w = world(&t).await;
        let b = bulk(&w.law);
        w.national
            .provider()
            .register_agency(&national_operator(), "jps", "日本年金機構", b.agency_class, &[&b.code], NOW)
            .await
            .unwrap();
        let unknown = codes(9_000, 1)[0].clone();
        let q = BatchQuery {
            purpose: b.code.clone(),
            fields: fields(&[Field::ChangeInfo]),
            resident_codes: vec![w.alive.clone(), w.dead.clone(), unknown],
        };
        let r: Vec<Provided> = peer_as(&w.url, "agency:jps").post_json("/v1/provision/batch", &q).await.unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].status, Some(identity::person::ResidentStatus::Active), "{}", t.label);
        assert_eq!(r[1].status, Some(identity::person::ResidentStatus::Deceased));
        assert!(!r[2].found);
        let rows = log_rows(w.national.db()).await;
        assert_eq!(rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(), vec!["provided", "provided", "not_found"]);
        let e = w
            .national
            .provider()
            .register_agency(&national_operator(), "jps", "dup", b.agency_class, &[&b.code], NOW)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict);
    }
}

#[tokio::test]
async fn concurrent_queries_are_each_logged_before_they_are_answered() {
    for t in backends().await {
        let w = world(&t).await;
        let p = single(&w.law);
        let agency = w
            .national
            .provider()
            .register_agency(&national_operator(), "agency-a", "A", p.agency_class, &[&p.code], NOW)
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..200 {
            let (n, a) = (w.national.clone(), agency.clone());
            let code = if i % 2 == 0 { w.alive.clone() } else { w.dead.clone() };
            let q = Query { purpose: p.code.clone(), by: Lookup::ResidentCode(code), fields: fields(&[Field::Name]) };
            tasks.push(tokio::spawn(async move { n.provider().query(&a, &q, NOW).await.unwrap() }));
        }
        for task in tasks {
            assert!(task.await.unwrap().found);
        }
        // Group commit wrote every row before its answer was released.
        let rows = log_rows(w.national.db()).await;
        assert_eq!(rows.iter().filter(|r| r.0 == "provided").count(), 200, "{}", t.label);
        let d = w.national.provider().disclosure(&w.dead).await.unwrap();
        assert_eq!(d.len(), 100);
    }
}

#[tokio::test]
async fn a_prefecture_server_provides_to_its_own_bodies_and_the_tiers_refuse_each_others_classes() {
    for t in backends().await {
        let w = world(&t).await;
        let code = w.alive.clone();
        let pdb = fresh(&t).await;
        let db = Db::open(&pdb.url).await.unwrap();
        identity::store::claim_identity(&db, "prefecture", "13").await.unwrap();
        // The prefecture applies the same chain the national node holds.
        let notices = store::notices_after(w.national.db(), "131016", 0, 100).await.unwrap();
        admit_keys_from(&db, w.national.db(), "131016").await;
        replica::apply_batch(&db, Tier::Prefecture, &*verifier(), &notices).await.unwrap();
        let law = Arc::new(LawTable::seed().unwrap());
        let pref = Provider::open(db.clone(), law.clone()).await.unwrap();
        let pref_op =
            identity::operator::Operator::new("pref-op", identity::operator::Role::PrefectureOperator).unwrap();
        let passport = law.purposes().find(|p| p.description.starts_with("旅券法")).unwrap();
        // The prefecture serves 別表第5; it refuses the national classes and national operators.
        let e = pref
            .register_agency(&pref_op, "mofa", "外務省", identity::law::AgencyClass::NationalBody, &["B1-008"], NOW)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("served by the national server"), "{e}");
        let e = pref
            .register_agency(&national_operator(), "gov", "知事", passport.agency_class, &[&passport.code], NOW)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Forbidden);
        let agency = pref
            .register_agency(&pref_op, "gov", "東京都知事", passport.agency_class, &[&passport.code], NOW)
            .await
            .unwrap();
        let q = Query {
            purpose: passport.code.clone(),
            by: Lookup::ResidentCode(code.clone()),
            fields: fields(&[Field::Name]),
        };
        let r = pref.query(&agency, &q, NOW).await.unwrap();
        assert!(r.found, "{}", t.label);
        let d = pref.disclosure(&code).await.unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].source, "都道府県サーバ(13)");
        assert_eq!(d[0].provision_class, "法別表第5");
        // A municipality database is not a provision point.
        let e = Provider::open(Db::open(&w._dbs[0].url).await.unwrap(), law).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict);
    }
}

/// Provision-log rows of one function (`照会(4情報)`, `照会(住民票コード)`, `一括照会`):
/// (destination, result, reason).
async fn log_rows_of(db: &Db, function: &str) -> Vec<(String, String, Option<String>)> {
    sqlx::query("SELECT destination, result, reason FROM provision_log WHERE function = $1 ORDER BY id")
        .bind(function)
        .fetch_all(db.pool())
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap(), r.try_get(2).unwrap()))
        .collect()
}

/// Posts `body` to `path` as `party`; the status, the Retry-After header and the JSON body.
async fn post_as(
    url: &str,
    party: &str,
    path: &str,
    body: &impl serde::Serialize,
) -> (u16, Option<u64>, serde_json::Value) {
    let r = client_as(party).post(format!("{url}{path}")).json(body).send().await.unwrap();
    let status = r.status().as_u16();
    let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
    (status, retry, r.json().await.unwrap())
}

#[tokio::test]
async fn an_agency_over_its_rate_gets_429_with_retry_after_logged_and_others_are_unaffected() {
    for t in backends().await {
        let w = world(&t).await;
        let p = single(&w.law);
        let b = bulk(&w.law);
        let provider = w.national.provider();
        let op = national_operator();
        for id in ["agency-a", "agency-b"] {
            provider.register_agency(&op, id, id, p.agency_class, &[&p.code], NOW).await.unwrap();
        }
        provider.register_agency(&op, "jps", "日本年金機構", b.agency_class, &[&b.code], NOW).await.unwrap();
        // Limits are configurable: five queries at once, then one a second.
        let limits = Limits { queries: Rate::new(1, 5), ..Limits::default() };
        provider.set_limits(limits).unwrap();
        assert_eq!(provider.limits(), limits);
        let bad = Limits { batch_residents: Rate::new(10, 100), ..Limits::default() };
        assert_eq!(provider.set_limits(bad).unwrap_err().kind(), ErrorKind::Invalid, "a full batch could never pass");

        let q = Query {
            purpose: p.code.clone(),
            by: Lookup::ResidentCode(w.alive.clone()),
            fields: fields(&[Field::Name]),
        };
        let started = http::now();
        let mut answers = Vec::new();
        for _ in 0..20 {
            answers.push(post_as(&w.url, "agency:agency-a", "/v1/provision/query", &q).await);
        }
        let elapsed = u64::try_from(http::now() - started).unwrap();
        let ok = answers.iter().filter(|a| a.0 == 200).count() as u64;
        assert!(ok >= 5 && ok <= 5 + elapsed, "{}: {ok} answered in {elapsed} s", t.label);
        let (status, retry, body) = answers.iter().find(|a| a.0 != 200).unwrap();
        assert_eq!(*status, 429, "{body}");
        assert_eq!(body["error"], "refused");
        assert_eq!(body["reason"], "rate_limited", "{body}");
        assert!(body["message"].as_str().unwrap().contains("queries limit (1/s, burst 5)"), "{body}");
        assert_eq!(*retry, Some(1), "Retry-After in whole seconds");
        assert!(answers.iter().all(|a| (a.0 == 200) == a.1.is_none()), "Retry-After only on 429");
        // Another agency has its own buckets.
        let (status, _, body) = post_as(&w.url, "agency:agency-b", "/v1/provision/query", &q).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["found"], true);
        // Every attempt has its row; the refusals carry their reason code.
        let rows = log_rows_of(w.national.db(), "照会(住民票コード)").await;
        let of_a: Vec<_> = rows.iter().filter(|r| r.0.starts_with("agency-a ")).collect();
        assert_eq!(of_a.len(), 20, "{}: {rows:?}", t.label);
        let refused: Vec<_> = of_a.iter().filter(|r| r.1 == "refused").collect();
        assert_eq!(refused.len() as u64, 20 - ok);
        assert!(refused.iter().all(|r| r.2.as_deref().is_some_and(|s| s.starts_with("rate_limited: "))), "{rows:?}");
        // A refused caller is not told about residents: the refusal names no one.
        assert!(!body_mentions(&answers, w.alive.as_str()));

        // A batch draws on the same query budget (and its own residents' budget).
        provider.set_limits(Limits { queries: Rate::new(1, 1), ..Limits::default() }).unwrap();
        let bq = BatchQuery {
            purpose: b.code.clone(),
            fields: fields(&[Field::ChangeInfo]),
            resident_codes: vec![w.alive.clone(), w.dead.clone()],
        };
        let mut statuses = Vec::new();
        for _ in 0..5 {
            statuses.push(post_as(&w.url, "agency:jps", "/v1/provision/batch", &bq).await.0);
        }
        assert_eq!(statuses[0], 200);
        assert!(statuses.contains(&429), "{statuses:?}");
        let rows = log_rows_of(w.national.db(), "一括照会").await;
        assert!(
            rows.iter().any(|r| r.1 == "refused" && r.2.as_deref().is_some_and(|s| s.starts_with("rate_limited"))),
            "{rows:?}"
        );
    }
}

fn body_mentions(answers: &[(u16, Option<u64>, serde_json::Value)], text: &str) -> bool {
    answers.iter().filter(|a| a.0 == 429).any(|a| a.2.to_string().contains(text))
}

#[tokio::test]
async fn four_item_lookups_hit_their_own_lower_limit_and_every_attempt_is_logged() {
    for t in backends().await {
        let w = world(&t).await;
        let p = single(&w.law);
        let provider = w.national.provider();
        provider.register_agency(&national_operator(), "agency-a", "A", p.agency_class, &[&p.code], NOW).await.unwrap();
        let limits = Limits::default();
        assert_eq!(provider.limits(), limits, "the defaults");
        // The enumeration of the review (finding M6): a known name, address and sex, and every
        // date of birth in turn until one matches. The true one is the 31st tried.
        let known = w.national.record(&w.alive).await.unwrap().items;
        let first = known.date_of_birth - time::Duration::days(30);
        let started = http::now();
        let mut answers = Vec::new();
        for d in 0..40 {
            let mut guess = known.clone();
            guess.date_of_birth = first + time::Duration::days(d);
            let q =
                Query { purpose: p.code.clone(), by: Lookup::FourItems(guess), fields: fields(&[Field::ResidentCode]) };
            answers.push(post_as(&w.url, "agency:agency-a", "/v1/provision/query", &q).await);
        }
        let elapsed = u64::try_from(http::now() - started).unwrap();
        let (burst, rate) = (u64::from(limits.four_items.burst), u64::from(limits.four_items.per_second));
        let answered = answers.iter().filter(|a| a.0 == 200).count() as u64;
        // The enumeration stops after the burst (plus what the sustained rate refilled meanwhile).
        assert!(answered >= burst && answered <= burst + rate * elapsed, "{}: {answered} in {elapsed} s", t.label);
        assert!(answers[..10].iter().all(|a| a.0 == 200 && a.2["found"] == false), "the first ten are answered");
        let refused: Vec<_> = answers.iter().filter(|a| a.0 != 200).collect();
        assert!(!refused.is_empty());
        for (status, retry, body) in &refused {
            assert_eq!((*status, body["reason"].as_str()), (429, Some("rate_limited")), "{body}");
            assert!(body["message"].as_str().unwrap().contains("four_item_lookups limit (2/s, burst 10)"), "{body}");
            assert!(retry.is_some_and(|r| r >= 1));
        }
        // Its lower limit is its own: a lookup by resident code is still answered.
        let q = Query {
            purpose: p.code.clone(),
            by: Lookup::ResidentCode(w.alive.clone()),
            fields: fields(&[Field::Name]),
        };
        let (status, _, body) = post_as(&w.url, "agency:agency-a", "/v1/provision/query", &q).await;
        assert_eq!(status, 200, "{body}");
        // Every four-item attempt, answered or refused, has a row.
        let rows = log_rows_of(w.national.db(), "照会(4情報)").await;
        assert_eq!(rows.len(), 40, "{}: {rows:?}", t.label);
        let logged_refused = rows.iter().filter(|r| r.1 == "refused").count();
        assert_eq!(logged_refused, refused.len());
        assert!(
            rows.iter().filter(|r| r.1 == "refused").all(|r| r.2.as_deref().unwrap().starts_with("rate_limited: "))
        );

        // The same walk by another agency within one second (the provider's clock is its
        // caller's `now`): exactly the burst is answered, and the true date, 31st, never is.
        let b = provider
            .register_agency(&national_operator(), "agency-b", "B", p.agency_class, &[&p.code], NOW)
            .await
            .unwrap();
        let mut results = Vec::new();
        for d in 0..40 {
            let mut guess = known.clone();
            guess.date_of_birth = first + time::Duration::days(d);
            let q =
                Query { purpose: p.code.clone(), by: Lookup::FourItems(guess), fields: fields(&[Field::ResidentCode]) };
            results.push(provider.query(&b, &q, NOW).await.map_err(|e| e.to_string()));
        }
        assert!(results[..10].iter().all(|r| r.as_ref().is_ok_and(|p| !p.found)), "{results:?}");
        assert!(results[10..].iter().all(|r| r.as_ref().is_err_and(|e| e.contains("four_item_lookups limit"))));
        let rows = log_rows_of(w.national.db(), "照会(4情報)").await;
        let of_b: Vec<_> = rows.iter().filter(|r| r.0.starts_with("agency-b ")).map(|r| r.1.as_str()).collect();
        assert_eq!(of_b, [vec!["not_found"; 10], vec!["refused"; 30]].concat(), "{}", t.label);
        let named: i64 = sqlx::query(
            "SELECT COUNT(*) FROM provision_log WHERE function = '照会(4情報)' AND resident_code IS NOT NULL",
        )
        .fetch_one(w.national.db().pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
        let matched = answers.iter().filter(|a| a.2["found"] == true).count();
        assert_eq!(named as usize, matched, "only a match names a resident in the log");
    }
}

#[tokio::test]
async fn the_status_is_given_only_with_change_information_granted() {
    for t in backends().await {
        let w = world(&t).await;
        let narrow = single(&w.law);
        assert!(!narrow.fields.contains(&Field::ChangeInfo));
        let wide = w
            .law
            .purposes()
            .find(|p| !p.bulk && p.agency_class == narrow.agency_class && p.fields.contains(&Field::ChangeInfo))
            .expect("a single-query purpose with change information");
        let b = bulk(&w.law);
        let op = national_operator();
        let provider = w.national.provider();
        provider
            .register_agency(&op, "agency-a", "A", narrow.agency_class, &[&narrow.code, &wide.code], NOW)
            .await
            .unwrap();
        provider.register_agency(&op, "jps", "日本年金機構", b.agency_class, &[&b.code], NOW).await.unwrap();
        let ask = |purpose: &str, f: &[Field]| Query {
            purpose: purpose.to_owned(),
            by: Lookup::ResidentCode(w.dead.clone()),
            fields: fields(f),
        };
        // A purpose whose law-table row has no change information: found, no status.
        let (status, _, body) =
            post_as(&w.url, "agency:agency-a", "/v1/provision/query", &ask(&narrow.code, &[Field::Name])).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["found"], true, "{body}");
        assert!(body["status"].is_null(), "{}: the dead resident's status leaked: {body}", t.label);
        // A purpose with it, asked for: the status (3 = deceased) and the change information.
        let (_, _, body) =
            post_as(&w.url, "agency:agency-a", "/v1/provision/query", &ask(&wide.code, &[Field::ChangeInfo])).await;
        assert_eq!(body["status"], 3, "{body}");
        assert_eq!(body["items"]["change_info"]["status"], 3, "{body}");
        // The same purpose, not asked for: not given (what leaves is what the log lists).
        let (_, _, body) =
            post_as(&w.url, "agency:agency-a", "/v1/provision/query", &ask(&wide.code, &[Field::Name])).await;
        assert!(body["found"] == true && body["status"].is_null(), "{body}");
        // By four items the same rule holds.
        let rec = w.national.record(&w.alive).await.unwrap();
        let q4 =
            Query { purpose: narrow.code.clone(), by: Lookup::FourItems(rec.items), fields: fields(&[Field::Name]) };
        let r: Provided = peer_as(&w.url, "agency:agency-a").post_json("/v1/provision/query", &q4).await.unwrap();
        assert!(r.found && r.status.is_none(), "{r:?}");
        // Batches too: a bulk purpose asked without change information gives no status.
        let bq = BatchQuery {
            purpose: b.code.clone(),
            fields: fields(&[Field::Name]),
            resident_codes: vec![w.alive.clone(), w.dead.clone()],
        };
        let r: Vec<Provided> = peer_as(&w.url, "agency:jps").post_json("/v1/provision/batch", &bq).await.unwrap();
        assert!(r.iter().all(|p| p.found && p.status.is_none()), "{r:?}");
        let bq = BatchQuery { fields: fields(&[Field::ChangeInfo]), ..bq };
        let r: Vec<Provided> = peer_as(&w.url, "agency:jps").post_json("/v1/provision/batch", &bq).await.unwrap();
        let got: Vec<_> = r.iter().map(|p| p.status).collect();
        use identity::person::ResidentStatus::{Active, Deceased};
        assert_eq!(got, vec![Some(Active), Some(Deceased)]);
    }
}
