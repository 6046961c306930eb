//! The CA as its own service (`jpki serve ca`) over mutual TLS: windows issue only for
//! residents registered in their own municipality, with their clerk authenticated by the
//! clerk's own key; every refusal is audited naming the window and the clerk; operators revoke;
//! validators read the status stream; the card issuer master key never leaves the service.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a panic is a failed test

mod common;

use std::sync::Arc;

use common::{Network, csr, text};
use identity::party::Party;
use net::clerk::ClerkKey;
use serde_json::{Value, json};

/// The card issuer master key of these tests (the CA service's alone).
const MASTER: &str = "4a504b492d746573742d6973737565722d6d61737465722d6b65792d30303031";

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// A CSR's PEM body: the base64 of its DER.
fn csr_b64(path: &str) -> String {
    std::fs::read_to_string(path).unwrap().lines().filter(|l| !l.starts_with("-----")).collect()
}

/// POSTs `body` to `path` as `window`, signed by `clerk` (or unsigned if `None`), optionally
/// replacing the body after signing. Returns the status and JSON answer.
async fn post(
    client: &reqwest::Client,
    url: &str,
    path: &str,
    window: &Party,
    clerk: Option<&Arc<ClerkKey>>,
    body: &Value,
    swap: Option<&Value>,
) -> (u16, Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    let mut rq = client.post(format!("{url}{path}")).header("content-type", "application/json");
    if let Some(c) = clerk {
        for (k, v) in c.headers(window, "POST", path, &bytes, now()).unwrap() {
            rq = rq.header(k, v);
        }
    }
    let sent = swap.map(|s| serde_json::to_vec(s).unwrap()).unwrap_or(bytes);
    let r = rq.body(sent).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_issue_only_for_their_municipality_with_an_authenticated_clerk_and_refusals_are_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let net = Network::start(dir).await;
    let resident = net.resident("山田花子", "1990-04-01").await;
    let pki = &net.pki;
    pki.issue("w131016", "window:131016:W01", false);
    pki.issue("w271004", "window:271004:W01", false);
    pki.issue("v1", "validator:v1", false);
    pki.clerk_key("c131016", "clerk:131016:C1");
    pki.clerk_key("c271004", "clerk:271004:C1");
    // A clerk gets no TLS credential.
    let o = pki.net(&["issue", "--party", "clerk:131016:C2", "--host", "127.0.0.1", "--out", "/tmp/never"]);
    assert!(!o.status.success(), "{}", text(&o));
    let (_ca, url) = net.serve_ca(MASTER).await;
    let ca = Some(Party::Ca("jpki-ca".into()));
    let (w_tokyo, w_osaka) = (pki.client("w131016", ca.clone()), pki.client("w271004", ca.clone()));
    let (tokyo, osaka): (Party, Party) = ("window:131016:W01".parse().unwrap(), "window:271004:W01".parse().unwrap());
    let (c_tokyo, c_osaka) = (pki.clerk("c131016"), pki.clerk("c271004"));
    let (sign, auth) = (csr_b64(&csr(dir, "sign")), csr_b64(&csr(dir, "auth")));
    let request = |window: &str, id: &str| {
        json!({
            "request_id": id, "resident": resident, "window": window, "card_serial": "0102030405060708",
            "card_expiry": "2035-01-01", "environment": "prod",
            "signature_csr": sign, "authentication_csr": auth,
        })
    };

    // 大阪市's window and clerk asking for a resident of 千代田区: refused, with the reason.
    let (s, a) = post(&w_osaka, &url, "/v1/issue", &osaka, Some(&c_osaka), &request("W01", "r1"), None).await;
    assert_eq!((s, a["error"].as_str()), (403, Some("not_own_municipality")), "{a}");
    // Another window's id in the body.
    let (s, a) = post(&w_tokyo, &url, "/v1/issue", &tokyo, Some(&c_tokyo), &request("W02", "r2"), None).await;
    assert_eq!((s, a["error"].as_str()), (403, Some("window_mismatch")), "{a}");
    // No clerk; a clerk of another municipality; a body changed after the clerk signed it.
    let (s, a) = post(&w_tokyo, &url, "/v1/issue", &tokyo, None, &request("W01", "r3"), None).await;
    assert_eq!((s, a["error"].as_str()), (401, Some("clerk_missing")), "{a}");
    let (s, a) = post(&w_tokyo, &url, "/v1/issue", &tokyo, Some(&c_osaka), &request("W01", "r3"), None).await;
    assert_eq!((s, a["error"].as_str()), (401, Some("clerk_other_municipality")), "{a}");
    let swapped = request("W01", "r4");
    let (s, a) = post(&w_tokyo, &url, "/v1/issue", &tokyo, Some(&c_tokyo), &request("W01", "r3"), Some(&swapped)).await;
    assert_eq!((s, a["error"].as_str()), (401, Some("clerk_bad_signature")), "{a}");
    // An operator is not a window.
    let op = pki.client("op1", ca.clone());
    let r = op.post(format!("{url}/v1/issue")).json(&request("W01", "r5")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);

    // The window of the resident's own municipality, with its clerk: issued; a retry of the
    // same request id gets the same certificates.
    let (s, first) = post(&w_tokyo, &url, "/v1/issue", &tokyo, Some(&c_tokyo), &request("W01", "r6"), None).await;
    assert_eq!(s, 200, "{first}");
    let serials = |v: &Value| -> Vec<String> {
        v["certificates"].as_array().unwrap().iter().map(|c| c["serial"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(serials(&first).len(), 2);
    let (s, again) = post(&w_tokyo, &url, "/v1/issue", &tokyo, Some(&c_tokyo), &request("W01", "r6"), None).await;
    assert_eq!((s, serials(&again)), (200, serials(&first)));

    // Card-issuer authentication: the service answers the card's challenge with the card's own
    // key, for its own municipality's residents only.
    let (serial, challenge) = ("00112233445566778899aabbccddeeff", "0f0e0d0c0b0a09080706050403020100");
    let ask = json!({"purpose": "issue", "resident": resident, "serial": serial, "challenge": challenge});
    let (s, a) = post(&w_tokyo, &url, "/v1/card/issuer-auth", &tokyo, Some(&c_tokyo), &ask, None).await;
    assert_eq!(s, 200, "{a}");
    let master = hex::decode(MASTER).unwrap();
    let (sb, cb) = (hex::decode(serial).unwrap(), hex::decode(challenge).unwrap());
    let key = card::applet::card_issuer_key(&master, &sb).unwrap();
    assert_eq!(a["mac"].as_str().unwrap(), hex::encode(card::applet::issuer_mac(&key, &cb, &sb).unwrap()));
    let (s, a) = post(&w_osaka, &url, "/v1/card/issuer-auth", &osaka, Some(&c_osaka), &ask, None).await;
    assert_eq!((s, a["error"].as_str()), (403, Some("not_own_municipality")), "{a}");
    // Malformed input is a 400 that names the field; a window asking for a responder
    // certificate (a validator's route) is refused by the service itself.
    let bad = json!({"purpose": "issue", "resident": resident, "serial": "zz", "challenge": challenge});
    let (s, a) = post(&w_tokyo, &url, "/v1/card/issuer-auth", &tokyo, Some(&c_tokyo), &bad, None).await;
    assert_eq!((s, a["error"].as_str()), (400, Some("invalid")), "{a}");
    assert!(a["detail"].as_str().unwrap_or_default().contains("serial"), "{a}");
    let r = w_tokyo
        .post(format!("{url}/v1/responders"))
        .json(&json!({"ca": "sign-13", "csr": sign, "days": 30}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["error"].as_str(), Some("party_not_allowed"));
    // The card inventory: the card issued above (0102030405060708) opens an issuer session for
    // a PIN reset only for its own resident; an unknown card gets none.
    let other = net.resident("佐藤一郎", "1975-06-01").await;
    let reset = |who: &str, card: &str| json!({"purpose": "pin_reset", "resident": who, "serial": card, "challenge": challenge});
    let (s, a) = post(
        &w_tokyo,
        &url,
        "/v1/card/issuer-auth",
        &tokyo,
        Some(&c_tokyo),
        &reset(&resident, "0102030405060708"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{a}");
    let (s, a) =
        post(&w_tokyo, &url, "/v1/card/issuer-auth", &tokyo, Some(&c_tokyo), &reset(&other, "0102030405060708"), None)
            .await;
    assert_eq!((s, a["error"].as_str()), (403, Some("card_of_another_resident")), "{a}");
    let (s, a) =
        post(&w_tokyo, &url, "/v1/card/issuer-auth", &tokyo, Some(&c_tokyo), &reset(&resident, serial), None).await;
    assert_eq!((s, a["error"].as_str()), (403, Some("card_unknown")), "{a}");

    // A stale clerk signature (captured more than five minutes ago) and a certificate that is
    // not a clerk key (the municipality's notice key) are refused.
    let bytes = serde_json::to_vec(&request("W01", "r7")).unwrap();
    let mut rq = w_tokyo.post(format!("{url}/v1/issue")).header("content-type", "application/json");
    for (k, v) in c_tokyo.headers(&tokyo, "POST", "/v1/issue", &bytes, now() - 400).unwrap() {
        rq = rq.header(k, v);
    }
    let r = rq.body(bytes.clone()).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"].as_str(), Some("clerk_stale"));
    let notice_pem = std::fs::read_to_string(pki.prefix("m131016-notice").with_extension("pem")).unwrap();
    let b64: String =
        notice_pem.lines().take_while(|l| !l.starts_with("-----END")).filter(|l| !l.starts_with("-----")).collect();
    let notice_der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &b64).unwrap();
    let r = w_tokyo
        .post(format!("{url}/v1/issue"))
        .header(net::clerk::HEADER_CERT, hex::encode(&notice_der))
        .header(net::clerk::HEADER_TIME, now().to_string())
        .header(net::clerk::HEADER_SIGNATURE, "3000")
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"].as_str(), Some("clerk_not_trusted"));

    // Validators read the status stream; windows do not. Operators revoke; the stream has it.
    let v = pki.client("v1", ca.clone());
    let head = |c: reqwest::Client| {
        let url = url.clone();
        async move { c.get(format!("{url}/v1/status/head")).send().await.unwrap() }
    };
    assert_eq!(head(w_tokyo.clone()).await.status().as_u16(), 403);
    let h0: Value = head(v.clone()).await.json().await.unwrap();
    let victim = &serials(&first)[0];
    // A validator's long poll of the head waits for the revocation below and ends with it.
    let h0_seq = h0["head"].as_i64().unwrap();
    let r = v.get(format!("{url}/v1/status/head?after={h0_seq}&wait_ms=10001")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400, "a wait over 10 s is refused");
    let waiting = tokio::spawn({
        let (v, url) = (v.clone(), url.clone());
        async move {
            let r = v.get(format!("{url}/v1/status/head?after={h0_seq}&wait_ms=10000")).send().await.unwrap();
            r.json::<Value>().await.unwrap()["head"].as_i64().unwrap()
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    assert!(!waiting.is_finished(), "the long poll waits while nothing is revoked");
    let r = op
        .post(format!("{url}/v1/revoke"))
        .json(&json!({"serial": victim, "reason": "key-compromise", "cause": "card reported stolen"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let r = w_tokyo
        .post(format!("{url}/v1/revoke"))
        .json(&json!({"serial": victim, "reason": "key-compromise", "cause": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(waiting.await.unwrap(), h0_seq + 1, "the long poll ended with the revocation");
    let after = h0["head"].as_i64().unwrap();
    let page: Value =
        v.get(format!("{url}/v1/status/revocations?after={after}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(page[0]["serial"].as_str(), Some(victim.as_str()), "{page}");
    assert_eq!(page[0]["seq"].as_i64(), Some(after + 1));
    // The same through the operator's CLI (its own credential, no CA secret).
    let mut op_env = pki.env("op1");
    op_env.push(("JPKI_CA_URL".into(), url.clone()));
    let o = common::jpki(&["ca-op", "revocations", "--after", &after.to_string()], &op_env);
    assert!(o.status.success() && text(&o).contains(victim.as_str()), "{}", text(&o));
    let o = common::jpki(&["ca-op", "crl"], &op_env);
    assert!(o.status.success() && text(&o).contains("sign-13 g1 shard"), "{}", text(&o));
    let o = common::jpki(&["ca-op", "crl"], &[&pki.env("v1")[..], &op_env[4..]].concat());
    assert!(!o.status.success() && text(&o).contains("not an operator"), "{}", text(&o));

    // Key ceremonies run in the service, by operators only: a new P-384 generation of sign-13,
    // pending for 30 days, then rolled back.
    let rfc = common::rfc3339;
    let ceremony = format!(
        "ca = \"sign-13\"\ngeneration = 2\nalgorithm = \"p384\"\nkey = \"software\"\n\
         not_before = \"{}\"\nactivation = \"{}\"\nname = \"same\"\n",
        rfc(now()),
        rfc(now() + 30 * 86_400)
    );
    let file = dir.join("ceremony.toml");
    std::fs::write(&file, &ceremony).unwrap();
    let file = file.display().to_string();
    let o = common::jpki(&["ca-op", "ceremony", "plan", &file], &op_env);
    assert!(o.status.success() && text(&o).contains("generate a p384 key"), "{}", text(&o));
    let r = w_tokyo.post(format!("{url}/v1/ceremony/run")).json(&json!({"file": ceremony})).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403, "a window runs no ceremony");
    let r = v.get(format!("{url}/v1/ceremony/status")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403, "nor does a validator see them");
    let o = common::jpki(&["ca-op", "ceremony", "run", &file], &op_env);
    assert_eq!(text(&o).matches("done: ").count(), 3, "{}", text(&o));
    let o = common::jpki(&["ca-op", "ceremony", "status", "--slug", "sign-13"], &op_env);
    assert!(o.status.success() && text(&o).contains("pending") && text(&o).contains("3/3 steps"), "{}", text(&o));
    // Issuance goes on under the first generation until the activation.
    let (s, a) = post(&w_tokyo, &url, "/v1/issue", &tokyo, Some(&c_tokyo), &request("W01", "r-ceremony"), None).await;
    assert_eq!(s, 200, "{a}");
    assert!(a.to_string().contains("\"generation\":1"), "{a}");
    let o = common::jpki(&["ca-op", "ceremony", "rollback", "--slug", "sign-13", "--generation", "2"], &op_env);
    assert!(o.status.success() && text(&o).contains("rolled back"), "{}", text(&o));
    // Hostile or mistaken input: a malformed ceremony file is 400 naming the file; a ceremony
    // for a generation that is not the next is refused; the emergency routes are the operators'
    // (a window gets 403) and refuse the issuing generation; the re-issuance queue is the
    // windows' (an operator gets 403); a window's queue is empty before any compromise.
    let r = op.post(format!("{url}/v1/ceremony/run")).json(&json!({"file": "ca = ["})).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().contains("ceremony file"));
    let r = op.post(format!("{url}/v1/ceremony/plan")).json(&json!({"file": ceremony})).send().await.unwrap();
    let body = r.text().await.unwrap();
    assert!(body.contains("the next generation of sign-13 is 3"), "a rolled-back number is not reused: {body}");
    let r = w_tokyo
        .post(format!("{url}/v1/emergency/compromise"))
        .json(&json!({"ca": "sign-13", "generation": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let o = common::jpki(&["ca-op", "emergency", "compromise", "--slug", "sign-13", "--generation", "1"], &op_env);
    assert!(!o.status.success() && text(&o).contains("generation_issuing"), "{}", text(&o));
    let r = op.get(format!("{url}/v1/reissue/queue")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let q: Value = w_tokyo.get(format!("{url}/v1/reissue/queue")).send().await.unwrap().json().await.unwrap();
    assert_eq!(q, json!([]));
    let p: Value =
        w_tokyo.get(format!("{url}/v1/card/profile?environment=prod")).send().await.unwrap().json().await.unwrap();
    assert_eq!(p["algorithm"].as_str(), Some("rsa2048"), "{p}");
    // The card profile is the windows': an operator's or a validator's credential is refused.
    for other in [&op, &v] {
        let r = other.get(format!("{url}/v1/card/profile?environment=prod")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 403);
    }
    let r = w_tokyo.get(format!("{url}/v1/card/profile?environment=staging")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400, "an unknown environment is an input error");

    // The audit trail names the authenticated window and clerk of every issuance and refusal.
    let o = net.jpki(&["ca", "audit", "--actor", "auditor", "--limit", "200"]);
    let audit = text(&o);
    assert!(o.status.success(), "{audit}");
    assert!(audit.contains("audit chain verified"), "{audit}");
    let row = |who: &str, action: &str, detail: &str| {
        audit.lines().any(|l| l.contains(who) && l.contains(action) && l.contains(detail))
    };
    let osaka_actor = "urn:jpki:window:271004:W01 urn:jpki:clerk:271004:C1";
    let tokyo_actor = "urn:jpki:window:131016:W01 urn:jpki:clerk:131016:C1";
    assert!(row(osaka_actor, "refused", "not_own_municipality"), "{audit}");
    assert!(row(tokyo_actor, "refused", "window_mismatch"), "{audit}");
    assert!(row("urn:jpki:window:131016:W01", "refused", "clerk_other_municipality"), "{audit}");
    assert!(row(tokyo_actor, "card_issuance", "card 0102030405060708"), "{audit}");
    assert!(row(tokyo_actor, "card_issuer_auth", serial), "{audit}");
    assert!(row("urn:jpki:operator:op1", "revoke", victim), "{audit}");
    assert!(row("urn:jpki:operator:op1", "ceremony", "sign-13 g2 step 3"), "{audit}");
    assert!(row("urn:jpki:operator:op1", "rollback", "sign-13 g2"), "{audit}");

    // The clerk leaves: the network CA revokes the clerk's key and publishes its CRL; the
    // running service refuses the clerk from then on (it had admitted that certificate).
    let clerk_serial = pki.net(&["list"]);
    let line = text(&clerk_serial).lines().find(|l| l.contains("clerk:131016:C1")).unwrap().to_owned();
    let serial = line.split_whitespace().find(|w| w.len() >= 16 && w.chars().all(|c| c.is_ascii_hexdigit())).unwrap();
    assert!(pki.net(&["revoke", "--serial", serial, "--reason", "affiliation-changed"]).status.success());
    assert!(pki.net(&["crl"]).status.success());
    let (s, a) = post(&w_tokyo, &url, "/v1/issue", &tokyo, Some(&c_tokyo), &request("W01", "r8"), None).await;
    assert_eq!((s, a["error"].as_str()), (401, Some("clerk_not_trusted")), "{a}");
}

/// The card's signature over `message` with its authentication key (RSA PKCS#1 v1.5, SHA-256,
/// what the card makes), here a software key from `csr`.
fn card_signs(key: &std::path::Path, message: &[u8], dir: &std::path::Path) -> Vec<u8> {
    let (msg, sig) = (dir.join("message.bin"), dir.join("message.sig"));
    std::fs::write(&msg, message).unwrap();
    let o = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .arg("-out")
        .arg(&sig)
        .arg(&msg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    std::fs::read(sig).unwrap()
}

/// `POST /v1/kiosk/holder` names a card's holder only to the municipality whose register holds
/// the resident now: another municipality, even with the card's fresh signature over its own
/// challenge, gets `not_resident_here` and no resident code; the refusal is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kiosk_holder_is_named_only_to_the_municipality_of_the_residents_register() {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let net = Network::start(dir).await;
    let resident = net.resident("山田花子", "1990-04-01").await;
    let (sign_csr, auth_csr) = (csr(dir, "sign"), csr(dir, "auth"));
    let (_, auth_serial) = net.issue_pair(dir, &resident, &sign_csr, &auth_csr, &dir.join("out").display().to_string());
    let auth_der = common::pem_to_der(&std::fs::read(dir.join("auth.pem")).unwrap());
    let pki = &net.pki;
    pki.issue("m271004", "municipality:271004", false);
    let (_ca, url) = net.serve_ca(MASTER).await;
    let ca = Some(Party::Ca("jpki-ca".into()));
    let (chiyoda, osaka) = (pki.client("m131016", ca.clone()), pki.client("m271004", ca.clone()));

    let kiosk: Party = "kiosk:K1".parse().unwrap();
    let ask = |client: reqwest::Client, municipality: &str| {
        let signed = identity::kiosk::SignedChallenge {
            municipality: municipality.parse().unwrap(),
            kiosk: kiosk.clone(),
            challenge: "ab".repeat(32),
            expires_at: now() + 60,
        };
        let message = signed.to_bytes();
        let signature = card_signs(&dir.join("auth.key"), &message, dir);
        let body = json!({"certificate": b64(&auth_der), "message": b64(&message), "signature": b64(&signature)});
        let url = url.clone();
        async move {
            let r = client.post(format!("{url}/v1/kiosk/holder")).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // 大阪市, with the card's signature over its own challenge: refused, no one named.
    let (s, a) = ask(osaka.clone(), "271004").await;
    assert_eq!((s, a["error"].as_str()), (403, Some("not_resident_here")), "{a}");
    assert!(!a.to_string().contains(&resident), "the refusal names the resident: {a}");
    // 大阪市 with a message for 千代田区: not its own.
    let (s, a) = ask(osaka, "131016").await;
    assert_eq!((s, a["error"].as_str()), (403, Some("not_own_message")), "{a}");
    // 千代田区, the resident's municipality: the holder.
    let (s, a) = ask(chiyoda, "131016").await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(
        (a["resident_code"].as_str(), a["serial"].as_str()),
        (Some(resident.as_str()), Some(auth_serial.as_str()))
    );
    // The refusal is in the CA's audit trail under 大阪市, with the serial, not the resident.
    let trail = text(&net.jpki(&["ca", "audit", "--actor", "auditor", "--limit", "1000"]));
    let line = trail
        .lines()
        .find(|l| l.contains("urn:jpki:municipality:271004") && l.contains("not_resident_here"))
        .unwrap_or_else(|| panic!("no audited refusal: {trail}"));
    assert!(line.contains(&auth_serial) && !line.contains(&resident), "{line}");
}
