//! The CA operators' console (`ca::service` router, `/console/…`) driven without a socket on
//! real databases (SQLite, and PostgreSQL when configured): an operator sees every page with
//! the data the JSON routes show; a window, a validator or a municipality gets the 403 page and
//! an audited refusal; a post without a CSRF token, with another operator's token, or marked
//! cross-site is refused and revokes nothing; a post with a valid token revokes and audits
//! under the operator, exactly like `POST /v1/revoke`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use ca::crl::Reason;
use ca::hierarchy::CaId;
use ca::key::{KeyAlgorithm, KeyBackend, SoftKey};
use ca::revocation::CertKind;
use ca::service::CaService;
use common::*;
use identity::party::Party;
use tower::ServiceExt;

/// The console's clock: after the ceremonies and the compromise below.
fn clock() -> i64 {
    NOW + 1000
}

const HOST: &str = "127.0.0.1:8401";

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

async fn send(app: &axum::Router, party: Option<&Party>, req: axum::http::request::Builder, body: &str) -> Answer {
    let mut req = req.header(header::HOST, HOST).body(Body::from(body.to_owned())).unwrap();
    if let Some(p) = party {
        req.extensions_mut().insert(p.clone());
    }
    let r = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = r.into_parts();
    let body = axum::body::to_bytes(body, 1 << 22).await.unwrap();
    Answer { status: parts.status, headers: parts.headers, body: String::from_utf8(body.to_vec()).unwrap() }
}

async fn get(app: &axum::Router, party: &Party, path: &str) -> Answer {
    send(app, Some(party), Request::get(path), "").await
}

/// A form post as a same-origin browser sends it.
async fn post(app: &axum::Router, party: &Party, path: &str, form: &[(&str, &str)], origin: Option<&str>) -> Answer {
    let mut b = Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(o) = origin {
        b = b.header(header::ORIGIN, o);
    }
    let body: String = form
        .iter()
        .map(|(k, v)| format!("{k}={}", v.bytes().map(|b| format!("%{b:02X}")).collect::<String>()))
        .collect::<Vec<_>>()
        .join("&");
    send(app, Some(party), b, &body).await
}

/// The CSRF token in a page's forms.
fn token(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
    page[at..].split('"').next().unwrap().to_owned()
}

/// Every page an operator may open.
const PAGES: [&str; 6] =
    ["/console", "/console/crl", "/console/responders", "/console/certificates", "/console/audit", "/console/rotation"];

fn ceremony(ca: &str, generation: i64, not_before: i64, activation: i64) -> String {
    format!(
        "ca = \"{ca}\"\ngeneration = {generation}\nalgorithm = \"p384\"\nkey = \"software\"\n\
         not_before = \"{}\"\nactivation = \"{}\"\nname = \"same\"\n",
        rfc3339(not_before),
        rfc3339(activation)
    )
}

/// How the console shows an instant.
fn when(t: i64) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp(t).unwrap().format(&f).unwrap()
}

fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

async fn audit_rows(ca: &ca::authority::Authority) -> Vec<ca::audit::AuditRow> {
    ca::audit::read_and_verify(ca.db(), 10_000).await.unwrap()
}

#[tokio::test]
async fn operators_use_the_console_and_every_other_party_or_forged_post_is_refused() {
    for db in identity::store::testing::all().await.unwrap() {
        let w = World::new(&db, KeyAlgorithm::EcP384).await;
        let label = w.label;
        // Two residents with both certificates from sign-13 / auth-13 g1.
        let mut serials = Vec::new();
        for (name, dob) in [("山田　花子", "1980-02-17"), ("佐藤　一郎", "1990-05-05")] {
            let r = w.register(name, dob).await;
            let (_k, scsr) = subject(KeyAlgorithm::EcP384);
            let (_k2, acsr) = subject(KeyAlgorithm::EcP384);
            let issued = w.ca.issue("window-1", &request(&r, Some(&scsr), Some(&acsr)), &w.source, NOW).await.unwrap();
            serials.push((
                issued.get(CertKind::Signature).unwrap().serial.clone(),
                issued.get(CertKind::Authentication).unwrap().serial.clone(),
            ));
        }
        // A validator's delegated responder for sign-13.
        let sign13 = CaId::parse("sign-13").unwrap();
        let responder_key = SoftKey::ephemeral(KeyAlgorithm::EcP384).unwrap();
        let responder =
            w.ca.issue_responder("urn:jpki:validator:v1", &sign13, None, responder_key.public_key_der(), 30, NOW)
                .await
                .unwrap();
        // A same-name re-key of sign-root (link certificates both ways), not yet active; then
        // sign-13 moves to g2 at once and g1 is declared compromised, with its plan.
        w.ca.ceremony_run("op-1", &ceremony("sign-root", 2, NOW + 100, NOW + 86_400), NOW + 100).await.unwrap();
        w.ca.ceremony_run("op-1", &ceremony("sign-13", 2, NOW + 200, NOW + 200), NOW + 200).await.unwrap();
        w.ca.compromise("op-1", &sign13, 1, NOW + 300).await.unwrap();
        w.ca.reissue_plan("op-1", &sign13, 1, &w.source, 100, NOW + 301).await.unwrap();

        let World { ca, source, dir, dbs: _dbs, .. } = w;
        let ca = Arc::new(ca);
        let trust = net::credential::Trust { ca_file: dir.path().join("no-network-ca.pem"), crl_file: None };
        let publish = dir.path().join("publish");
        let svc = CaService::new(ca.clone(), source, trust, None, Some(publish.clone()), clock);
        let app = ca::service::router(svc);
        let op: Party = "operator:op1".parse().unwrap();
        let op2: Party = "operator:op2".parse().unwrap();

        // Every page for the operator: Japanese, the strict CSP, no inline code.
        for path in PAGES {
            let a = get(&app, &op, path).await;
            assert_eq!(a.status, StatusCode::OK, "{label} {path}: {}", a.body);
            assert!(a.body.starts_with("<!DOCTYPE html><html lang=\"ja\">"), "{path}");
            assert!(a.body.contains("担当: urn:jpki:operator:op1"), "{path}");
            assert_eq!(a.headers[header::CONTENT_SECURITY_POLICY], web::assets::CSP, "{path}");
            assert!(!a.body.contains("<script>") && !a.body.contains("style="), "{path}: inline code");
        }
        // 概要: both root generations of sign-root, the link certificates, the SKIs and states.
        let page = get(&app, &op, "/console").await.body;
        for g in ca.ceremony_status(None, clock()).await.unwrap() {
            assert!(
                page.contains(&hex::encode(&g.generation.key_id)),
                "{label}: SKI of {} g{}",
                g.generation.ca,
                g.generation.generation
            );
            for (serial, _, _) in &g.links {
                assert!(page.contains(serial.as_str()), "link {serial}");
            }
        }
        assert!(page.contains("NewWithOld") && page.contains("OldWithNew"), "{page}");
        assert!(page.contains("待機中") && page.contains("発行中") && page.contains("退役"), "{page}");
        // 応答者: the responder's serial and notAfter.
        let page = get(&app, &op, "/console/responders").await.body;
        assert!(page.contains(&responder.serial), "{page}");
        assert!(page.contains(&when(responder.not_after)), "{page}");
        // ローテーション: both ceremonies done step by step, the plan per municipality.
        let page = get(&app, &op, "/console/rotation").await.body;
        assert!(page.contains("sign-root</code> g2：完了（5 / 5 手順"), "{page}");
        assert!(page.contains("リンク証明書 NewWithOld") && page.contains("— 完了"), "{page}");
        assert!(page.contains("<th scope=\"row\">131016</th><td>2</td><td>0</td><td>2</td>"), "{page}");
        assert!(!page.contains("山田") && !page.contains("佐藤"), "no names on the plan");
        // 監査: verified, with the head.
        let page = get(&app, &op, "/console/audit").await.body;
        let (seq, hash) = ca::audit::head(ca.db()).await.unwrap();
        assert!(page.contains("検証に成功しました") && page.contains(&hex::encode(&hash)), "{page}");
        assert!(page.contains(&format!("<dd>{seq}</dd>")), "{page}");

        // Other parties: the 403 page on every page and form, logged and audited.
        let before = audit_rows(&ca).await.len();
        let others: [Party; 3] = [
            "window:131016:W01".parse().unwrap(),
            "validator:v1".parse().unwrap(),
            "municipality:131016".parse().unwrap(),
        ];
        for p in &others {
            for path in PAGES {
                let a = get(&app, p, path).await;
                assert_eq!(a.status, StatusCode::FORBIDDEN, "{p} {path}");
                assert!(a.body.contains("アクセスが拒否されました") && a.body.contains("CA運用者専用"), "{}", a.body);
                assert_eq!(a.headers[header::CONTENT_SECURITY_POLICY], web::assets::CSP);
            }
        }
        let rows = audit_rows(&ca).await;
        assert_eq!(rows.len(), before + others.len() * PAGES.len(), "{label}: one audited refusal each");
        for p in &others {
            assert!(
                rows.iter().any(|r| r.actor == p.to_string()
                    && r.action == "refused"
                    && r.detail
                        == "GET /console/certificates: party_not_allowed (the console admits CA operators only)"),
                "{p}"
            );
        }
        // Without a client party at all: 401.
        let a = send(&app, None, Request::get("/console"), "").await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);

        // Search by serial: the status and a revocation form with a token for this operator.
        let (target, _) = &serials[0];
        let target_auth = &serials[0].1;
        let a = get(&app, &op, &format!("/console/certificates?serial={}", target_auth.to_uppercase())).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert!(a.body.contains("利用者証明用電子証明書") && a.body.contains("有効（失効していません）"), "{}", a.body);
        assert!(!a.body.contains("山田"), "no resident on the page");
        let tok = token(&a.body);
        // g1 of sign-13 was compromised: its certificates show revoked, without a form.
        let a = get(&app, &op, &format!("/console/certificates?serial={target}")).await;
        assert!(a.body.contains("CAの危殆化") && !a.body.contains("失効させる</button>"), "{}", a.body);
        // Hostile or unknown serials.
        let a = get(&app, &op, "/console/certificates?serial=zz%3Cscript%3E").await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
        assert!(!a.body.contains("<script>"));
        let a = get(&app, &op, "/console/certificates?serial=00ff00ff").await;
        assert_eq!(a.status, StatusCode::NOT_FOUND);

        let good = |s: &str| {
            let ca = ca.clone();
            let s = s.to_owned();
            async move { ca.show(&s).await.unwrap().revoked.is_none() }
        };
        let origin = format!("https://{HOST}");
        let fields = |tok: &str| {
            vec![
                ("csrf".to_owned(), tok.to_owned()),
                ("serial".to_owned(), target_auth.clone()),
                ("reason".to_owned(), "key-compromise".to_owned()),
                ("cause".to_owned(), "カード盗難の届出".to_owned()),
            ]
        };
        let revoke = "/console/certificates/revoke";

        // No token; a token of another operator; a forged token: 403, nothing revoked.
        let mut no_token = fields(&tok);
        no_token.remove(0);
        let a = post(&app, &op, revoke, &as_refs(&no_token), Some(&origin)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
        assert!(a.body.contains("csrf_missing"), "{}", a.body);
        let other_tok = token(&get(&app, &op2, "/console/crl").await.body);
        let a = post(&app, &op, revoke, &as_refs(&fields(&other_tok)), Some(&origin)).await;
        assert_eq!((a.status, a.body.contains("csrf_invalid")), (StatusCode::FORBIDDEN, true), "{}", a.body);
        let a = post(&app, &op, revoke, &as_refs(&fields("9999999999.AAAA")), Some(&origin)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
        // A valid token, but the browser says the post came from another site.
        let a = post(&app, &op, revoke, &as_refs(&fields(&tok)), Some("https://evil.example")).await;
        assert_eq!((a.status, a.body.contains("cross_site")), (StatusCode::FORBIDDEN, true), "{}", a.body);
        let mut b = Request::post(revoke)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("sec-fetch-site", "cross-site");
        b = b.header(header::ORIGIN, origin.as_str());
        let body = format!("csrf={tok}&serial={target_auth}&reason=key-compromise&cause=x");
        let a = send(&app, Some(&op), b, &body).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
        // A window presenting the operator's token: refused by party first.
        let a = post(&app, &others[0], revoke, &as_refs(&fields(&tok)), Some(&origin)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
        assert!(a.body.contains("CA運用者専用"));
        assert!(good(target_auth).await, "{label}: nothing revoked by a refused post");
        let rows = audit_rows(&ca).await;
        let refusals: Vec<&str> = rows
            .iter()
            .filter(|r| r.actor == op.to_string() && r.action == "refused")
            .map(|r| r.detail.as_str())
            .collect();
        assert_eq!(refusals.len(), 5, "{refusals:?}");
        assert!(refusals.iter().all(|d| d.starts_with("POST /console/certificates/revoke: ")), "{refusals:?}");
        assert!(!rows.iter().any(|r| r.action == "revoke" && r.detail.starts_with(target_auth.as_str())));

        // Bad fields with a valid token: 400, nothing revoked.
        let mut bad = fields(&tok);
        bad[2].1 = "because".into();
        assert_eq!(post(&app, &op, revoke, &as_refs(&bad), Some(&origin)).await.status, StatusCode::BAD_REQUEST);
        let mut bad = fields(&tok);
        bad[3].1 = "   ".into();
        assert_eq!(post(&app, &op, revoke, &as_refs(&bad), Some(&origin)).await.status, StatusCode::BAD_REQUEST);
        let mut bad = fields(&tok);
        bad[3].1 = "長".repeat(201);
        assert_eq!(post(&app, &op, revoke, &as_refs(&bad), Some(&origin)).await.status, StatusCode::BAD_REQUEST);
        let mut bad = fields(&tok);
        bad[1].1 = "not hex".into();
        assert_eq!(post(&app, &op, revoke, &as_refs(&bad), Some(&origin)).await.status, StatusCode::BAD_REQUEST);
        assert!(good(target_auth).await);

        // The operator's own token, same origin: revoked and audited under the operator.
        let a = post(&app, &op, revoke, &as_refs(&fields(&tok)), Some(&origin)).await;
        assert_eq!(a.status, StatusCode::OK, "{label}: {}", a.body);
        assert!(a.body.contains("を失効させました") && a.body.contains("鍵の危殆化"), "{}", a.body);
        let st = ca.show(target_auth).await.unwrap();
        assert_eq!(
            st.revoked.as_ref().map(|(_, r, c)| (*r, c.as_str())),
            Some((Reason::KeyCompromise, "カード盗難の届出"))
        );
        let rows = audit_rows(&ca).await;
        let last = rows.last().unwrap();
        assert_eq!(
            (last.actor.as_str(), last.action.as_str(), last.detail.as_str()),
            ("urn:jpki:operator:op1", "revoke", format!("{target_auth} key-compromise (カード盗難の届出)").as_str())
        );
        // The search (the status route's reader) shows it revoked, without a form.
        let a = get(&app, &op, &format!("/console/certificates?serial={target_auth}")).await;
        assert!(
            a.body.contains("失効（鍵の危殆化（keyCompromise）") && !a.body.contains("失効させる</button>"),
            "{}",
            a.body
        );
        // Again: 409, the revocation stands.
        let a = post(&app, &op, revoke, &as_refs(&fields(&tok)), Some(&origin)).await;
        assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);

        // CRLs: publish through the form (what POST /v1/crl/publish does), then the list.
        let crl_page = get(&app, &op, "/console/crl").await.body;
        assert!(crl_page.contains("まだCRLを公開していません"), "{crl_page}");
        let a = post(&app, &op, "/console/crl/publish", &[], Some(&origin)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "no token");
        assert!(ca.latest_crls().await.unwrap().is_empty());
        let a = post(&app, &op, "/console/crl/publish", &[("csrf", &token(&crl_page))], Some(&origin)).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        let crls = ca.latest_crls().await.unwrap();
        assert!(!crls.is_empty());
        assert!(a.body.contains(&format!("{} 件のCRL・ARLを公開しました", crls.len())), "{}", a.body);
        let auth13 =
            crls.iter().find(|c| c.ca == "auth-13" && c.entries == 1).expect("auth-13's shard with the revocation");
        assert!(publish.join(format!("crl/auth-13/g1/{}.crl", auth13.shard)).exists());
        let page = get(&app, &op, "/console/crl").await.body;
        assert!(page.contains(&when(auth13.next_update)), "{page}");
        assert!(rows_with(&ca, "crl", "urn:jpki:operator:op1").await >= crls.len());

        // An edited audit row (its append-only trigger dropped first): the audit page says the
        // chain is broken, and where.
        let drop = match ca.db().backend() {
            identity::store::Backend::Sqlite => "DROP TRIGGER ca_audit_no_update",
            identity::store::Backend::Postgres => "DROP TRIGGER ca_audit_no_change ON ca_audit",
        };
        sqlx::query(drop).execute(ca.db().pool()).await.unwrap();
        sqlx::query("UPDATE ca_audit SET detail = 'edited' WHERE seq = 3").execute(ca.db().pool()).await.unwrap();
        let a = get(&app, &op, "/console/audit").await;
        assert_eq!(a.status, StatusCode::OK);
        assert!(
            a.body.contains("ハッシュ連鎖が壊れています") && a.body.contains("chain broken at row 3"),
            "{}",
            a.body
        );
        assert!(!a.body.contains("検証に成功しました"));
    }
}

fn as_refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

async fn rows_with(ca: &ca::authority::Authority, action: &str, actor: &str) -> usize {
    audit_rows(ca).await.iter().filter(|r| r.action == action && r.actor == actor).count()
}
