//! The window's router in process (no peers: every path here is decided before a peer is
//! called): pages need a session, posts need the session's CSRF token and a same-origin
//! browser, sign-in opens the clerk's own key file and locks an id after five wrong
//! passphrases, a clerk of another municipality cannot sign in, and every answer carries the
//! security headers. The whole flow against real peers is tests/tests/window_web.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a panic is a failed test

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use ca::network::NetworkCa;
use identity::party::Party;
use net::secret::Secret;
use tower::ServiceExt;

const PASS: &str = "clerk-key-passphrase";

fn now() -> i64 {
    identity::http::now()
}

/// A window of 131016 whose clerks' directory holds C0001 (of 131016) and C9001 (of 271004).
fn app(dir: &Path) -> Arc<window::App> {
    let ca = NetworkCa::init(&dir.join("netca"), &Secret::new(b"network-ca-passphrase".to_vec()), now()).unwrap();
    std::fs::create_dir(dir.join("clerks")).unwrap();
    for (id, party) in [("C0001", "clerk:131016:C0001"), ("C9001", "clerk:271004:C9001")] {
        let party: Party = party.parse().unwrap();
        ca.issue_clerk_key(&party, 30, now(), &dir.join("clerks").join(id), &Secret::new(PASS.as_bytes().to_vec()))
            .unwrap();
    }
    let client = reqwest::Client::new();
    let cfg = window::Config {
        window: "window:131016:W01".parse().unwrap(),
        municipality: "131016".parse().unwrap(),
        clerks: dir.join("clerks"),
        reader: "no reader".into(),
        card_wait: Duration::from_secs(1),
        environment: "prod".into(),
        peers: window::Peers {
            ca_url: "https://127.0.0.1:9".into(),
            ca: client.clone(),
            node_url: "https://127.0.0.1:9".into(),
            node: client,
            national_url: None,
            national: None,
        },
    };
    window::App::new(cfg)
}

async fn send(app: &Arc<window::App>, req: Request<Body>) -> axum::response::Response {
    window::router(app.clone()).oneshot(req).await.unwrap()
}

async fn body(r: axum::response::Response) -> String {
    String::from_utf8(axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap()
}

fn form(path: &str, cookie: Option<&str>, fields: &[(&str, &str)]) -> Request<Body> {
    let body: String = fields.iter().map(|(k, v)| format!("{k}={}", v.replace(' ', "+"))).collect::<Vec<_>>().join("&");
    let mut r = Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::HOST, "127.0.0.1:8443")
        .header("sec-fetch-site", "same-origin");
    if let Some(c) = cookie {
        r = r.header(header::COOKIE, c);
    }
    r.body(Body::from(body)).unwrap()
}

/// The value of the first hidden CSRF field of a page.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    page[at..].split('"').next().unwrap().to_owned()
}

/// Signs C0001 in; the session cookie (`name=value`).
async fn sign_in(app: &Arc<window::App>) -> String {
    let page = body(send(app, Request::get("/signin").body(Body::empty()).unwrap()).await).await;
    let r =
        send(app, form("/signin", None, &[("csrf", &csrf_of(&page)), ("clerk", "C0001"), ("passphrase", PASS)])).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = r.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
    for part in ["__Host-jpki-session=", "Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    cookie.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn pages_need_a_session_and_carry_the_security_headers() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    for path in ["/", "/residents/new", "/residents/wide-area", "/card/status", "/card/queue", "/card/jobs/00"] {
        let r = send(&app, Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(r.headers()[header::LOCATION], "/signin", "{path}");
        assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], web::assets::CSP, "{path}");
    }
    let r = send(&app, Request::get("/signin").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
    assert_eq!(r.headers()[header::X_FRAME_OPTIONS], "DENY");
    let page = body(r).await;
    assert!(page.contains("<html lang=\"ja\">") && page.contains("職員ID"));
    // A forged session id is no session.
    let r =
        send(&app, Request::get("/").header(header::COOKIE, "__Host-jpki-session=forged").body(Body::empty()).unwrap())
            .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn posts_need_the_sessions_token_and_the_same_origin() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    let cookie = sign_in(&app).await;
    let home =
        body(send(&app, Request::get("/").header(header::COOKIE, &cookie).body(Body::empty()).unwrap()).await).await;
    assert!(home.contains("住民票コードで検索") && home.contains("担当: C0001"), "{home}");
    let token = csrf_of(&home);
    let code = identity::ids::ResidentCode::from_body([1, 2, 3, 4, 5, 6, 7, 8, 9, 0]).unwrap().to_string();
    let code = code.as_str();
    let find = |fields: &[(&str, &str)]| form("/residents/find", Some(&cookie), fields);
    // No token, another session's token, a token of the sign-in form: refused before any peer.
    for bad in ["", "1.AAAA", &app.csrf.token("another-session", now()), &app.csrf.token("signin", now())] {
        let r = send(&app, find(&[("csrf", bad), ("resident_code", "12345678901")])).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "token {bad:?}");
        assert!(body(r).await.contains("送信を受け付けられません"));
    }
    // The right token from another site.
    let mut r = find(&[("csrf", &token), ("resident_code", "12345678901")]);
    r.headers_mut().insert("origin", "https://evil.example".parse().unwrap());
    assert_eq!(send(&app, r).await.status(), StatusCode::FORBIDDEN);
    let mut r = find(&[("csrf", &token), ("resident_code", "12345678901")]);
    r.headers_mut().insert("sec-fetch-site", "cross-site".parse().unwrap());
    assert_eq!(send(&app, r).await.status(), StatusCode::FORBIDDEN);
    // The right token, same origin: it gets as far as the node (unreachable here), which the
    // page says, with the next step.
    let r = send(&app, find(&[("csrf", &token), ("resident_code", code)])).await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert!(body(r).await.contains("接続できません"));
    // A malformed code never reaches the node.
    let r = send(&app, find(&[("csrf", &token), ("resident_code", "12345678901")])).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "a wrong check digit");
    // The reader on the desk is missing (or pcscd is not running): said, with the next step.
    let r = send(&app, Request::get("/card/status").header(header::COOKIE, &cookie).body(Body::empty()).unwrap()).await;
    let page = body(r).await;
    assert!(page.contains("カードリーダー") && page.contains("次の操作"), "{page}");
    // Signed out: the cookie is cleared and the session is gone.
    let r = send(&app, form("/signout", Some(&cookie), &[("csrf", &token)])).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(r.headers()[header::SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    let r = send(&app, Request::get("/").header(header::COOKIE, &cookie).body(Body::empty()).unwrap()).await;
    assert_eq!(r.headers()[header::LOCATION], "/signin");
}

#[tokio::test]
async fn sign_in_opens_only_this_municipalitys_clerks_and_locks_after_five_failures() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    let token = app.csrf.token("signin", now());
    let try_in =
        |clerk: &str, pass: &str| form("/signin", None, &[("csrf", &token), ("clerk", clerk), ("passphrase", pass)]);
    // Another municipality's clerk, with the right passphrase.
    let r = send(&app, try_in("C9001", PASS)).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(body(r).await.contains("当窓口の市区町村の職員のものではありません"));
    // Not an id (a path, say).
    let r = send(&app, try_in("../netca/ca", PASS)).await;
    assert!(body(r).await.contains("職員IDの形式が正しくありません"));
    // Without the sign-in form's token.
    let r = send(&app, form("/signin", None, &[("clerk", "C0001"), ("passphrase", PASS)])).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Five wrong passphrases lock the id, even against the right one.
    for left in (1..5).rev() {
        let page = body(send(&app, try_in("C0001", "wrong passphrase")).await).await;
        assert!(page.contains(&format!("あと{left}回")), "{page}");
    }
    let page = body(send(&app, try_in("C0001", "wrong passphrase")).await).await;
    assert!(page.contains("サインインできません"), "{page}");
    let r = send(&app, try_in("C0001", PASS)).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "locked");
    assert!(app.signin_failures.locked("C0001", now()));
}

#[tokio::test]
async fn the_wide_area_page_asks_by_code_and_date_of_birth_in_the_body_with_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    let cookie = sign_in(&app).await;
    let get = Request::get("/residents/wide-area").header(header::COOKIE, &cookie).body(Body::empty()).unwrap();
    let page = body(send(&app, get).await).await;
    for want in [
        "広域交付",
        "住民票コード（11桁）",
        "生年月日（本人確認書類のとおり）",
        "住民票コードを記載する",
        "name=\"csrf\"",
    ] {
        assert!(page.contains(want), "{want}: {page}");
    }
    assert!(page.contains("action=\"/residents/wide-area\"") && page.contains("method=\"post\""), "{page}");
    let token = csrf_of(&page);
    let code = identity::ids::ResidentCode::from_body([1, 2, 3, 4, 5, 6, 7, 8, 9, 0]).unwrap().to_string();
    let ask = |fields: &[(&str, &str)]| form("/residents/wide-area", Some(&cookie), fields);
    // Without the token: refused before any peer.
    let r = send(&app, ask(&[("resident_code", &code), ("date_of_birth", "1985-07-07")])).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // A malformed code or date never reaches the node.
    let r =
        send(&app, ask(&[("csrf", &token), ("resident_code", "12345678901"), ("date_of_birth", "1985-07-07")])).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(body(r).await.contains("検査数字"));
    let r = send(&app, ask(&[("csrf", &token), ("resident_code", &code), ("date_of_birth", "1985/07/07")])).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(body(r).await.contains("生年月日"));
    // A well-formed request gets as far as the node (unreachable here), which the page says.
    let fields = [
        ("csrf", token.as_str()),
        ("resident_code", &code),
        ("date_of_birth", "1985-07-07"),
        ("with_resident_code", "yes"),
    ];
    let r = send(&app, ask(&fields)).await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let page = body(r).await;
    assert!(page.contains("接続できません") && !page.contains(&code), "{page}");
}
