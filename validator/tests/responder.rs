//! The responder against a real CA database, on SQLite and (when configured) PostgreSQL:
//! pre-signed answers, revocation picked up by polling, unknown serials, several certificates
//! and nonces on the live path, unauthorized issuers, malformed and oversized requests, the
//! live path's rate limit. Every successful response's signature is verified with the
//! responder certificate's key. The verification API's admission by party (registered agency
//! verifiers, purposes, the query log) and the public router without it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a panic is a failed test

use std::sync::Arc;

use ca::authority::{AnyProfile, Authority, Plan, Settings, new_serial, shard_of};
use ca::crl::Reason;
use ca::hierarchy::{Environment, Purpose};
use ca::key::{KeyAlgorithm, KeyBackend, SoftKey};
use ca::keystore::KeyStore;
use ca::profile::{AuthenticationCert, StatusUrls};
use ca::revocation::CertKind;
use der::asn1::{Null, OctetString};
use der::{Decode, Encode};
use identity::store::{Db, testing::TestDb};
use sha1::Digest as _;
use validator::ocsp::*;
use validator::responder::{Answer, Responder, Service};
use x509_cert::Certificate;
use x509_cert::ext::Extension;
use x509_cert::serial_number::SerialNumber;

const NOW: i64 = 1_795_478_400;

struct Setup {
    ca: Authority,
    issuer: Certificate,
    serials: Vec<String>,
    _keys: tempfile::TempDir,
}

async fn setup(db: &TestDb) -> (Setup, Vec<Responder>) {
    let keys = tempfile::tempdir().unwrap();
    let mut ca = Authority::open(
        Db::open(&db.url).await.unwrap(),
        KeyStore::soft(keys.path(), net::secret::Secret::new(b"test passphrase".to_vec())).unwrap(),
        NOW,
    )
    .await
    .unwrap();
    ca.init("op", Environment::Production, Settings::default(), NOW).await.unwrap();
    let g = Arc::new(ca.issuing("op", Purpose::Authentication, Environment::Production, "13", NOW).await.unwrap());
    let issuer = Certificate::from_der(&g.certificate).unwrap();
    let subject = SoftKey::ephemeral(KeyAlgorithm::EcP384).unwrap();
    let t0 = time::OffsetDateTime::from_unix_timestamp(NOW).unwrap();
    let plans = (0..5)
        .map(|i| {
            let serial = new_serial();
            let shard = shard_of(&serial, g.shards);
            Plan {
                kind: CertKind::Authentication,
                issuer: g.clone(),
                shard,
                spki: subject.public_key_der().to_vec(),
                not_before: t0,
                not_after: t0 + time::Duration::days(1000),
                resident_code: Some(format!("{i:011}")),
                issuance_id: Some(format!("T{i}")),
                request_id: None,
                feed_position: 0,
                supersedes: Vec::new(),
                profile: AnyProfile::Authentication(AuthenticationCert {
                    issuer: issuer.tbs_certificate().subject().clone(),
                    subject: AuthenticationCert::subject_name(&format!("T{i}")).unwrap(),
                    policy: g.ca.policy(),
                    urls: StatusUrls {
                        crl: ca::authority::crl_url("http://x", "auth-13", 1, shard),
                        ocsp: "http://x/ocsp".into(),
                    },
                }),
                serial,
            }
        })
        .collect();
    let issued = ca.run("op", plans, NOW).await.unwrap();
    let rkey = SoftKey::ephemeral(KeyAlgorithm::EcP384).unwrap();
    let rc = ca.issue_responder("op", &g.ca, rkey.public_key_der(), 30, NOW).await.unwrap();
    let responder = Responder::new(Arc::new(rkey), &rc.der).unwrap();
    let serials = issued.iter().map(|c| c.serial.clone()).collect();
    (Setup { ca, issuer, serials, _keys: keys }, vec![responder])
}

fn cert_id(issuer: &Certificate, serial: &[u8], sha256: bool) -> CertId {
    let name = issuer.tbs_certificate().subject().to_der().unwrap();
    let key = issuer.tbs_certificate().subject_public_key_info().subject_public_key.raw_bytes();
    let h = |b: &[u8]| if sha256 { sha2::Sha256::digest(b).to_vec() } else { sha1::Sha1::digest(b).to_vec() };
    CertId {
        hash_algorithm: spki::AlgorithmIdentifierOwned {
            oid: if sha256 { SHA256 } else { SHA1 },
            parameters: Some(Null.into()),
        },
        issuer_name_hash: OctetString::new(h(&name)).unwrap(),
        issuer_key_hash: OctetString::new(h(key)).unwrap(),
        serial_number: SerialNumber::new(serial).unwrap(),
    }
}

fn request(ids: Vec<CertId>, nonce: Option<&[u8]>) -> Vec<u8> {
    OcspRequest {
        tbs_request: TbsRequest {
            version: Version::V1,
            requestor_name: None,
            request_list: ids
                .into_iter()
                .map(|req_cert| Request { req_cert, single_request_extensions: None })
                .collect(),
            request_extensions: nonce.map(|n| {
                vec![Extension {
                    extn_id: OCSP_NONCE,
                    critical: false,
                    extn_value: OctetString::new(OctetString::new(n).unwrap().to_der().unwrap()).unwrap(),
                }]
            }),
        },
        optional_signature: None,
    }
    .to_der()
    .unwrap()
}

/// Decodes a successful response, verifies its signature, returns its single responses and
/// extensions.
fn open(der: &[u8]) -> (Vec<SingleResponse>, Option<x509_cert::ext::Extensions>) {
    let r = OcspResponse::from_der(der).unwrap();
    assert_eq!(r.response_status, ResponseStatus::Successful);
    let basic = BasicOcspResponse::from_der(r.response_bytes.unwrap().response.as_bytes()).unwrap();
    let signer = &basic.certs.as_ref().unwrap()[0];
    let spki = signer.tbs_certificate().subject_public_key_info().to_der().unwrap();
    let tbs = basic.tbs_response_data.to_der().unwrap();
    assert!(ca::key::verify(&spki, &tbs, basic.signature.raw_bytes()).unwrap(), "response signature");
    (basic.tbs_response_data.responses, basic.tbs_response_data.response_extensions)
}

fn status(der: &[u8]) -> ResponseStatus {
    OcspResponse::from_der(der).unwrap().response_status
}

#[tokio::test]
async fn responder_on_each_backend() {
    for db in identity::store::testing::all().await.unwrap() {
        let (s, responders) = setup(&db).await;
        let svc = Arc::new(Service::open(Db::open(&db.url).await.unwrap(), responders, 86_400, 1_000.0).await.unwrap());
        // The issuing CA's 5 certificates plus the responder's own: both hash algorithms each.
        assert_eq!(svc.load(NOW).await.unwrap(), 6, "{}", db.label);
        assert_eq!(svc.cached(), 12);
        let first = hex::decode(&s.serials[0]).unwrap();

        // Pre-signed: good, for SHA-1 and SHA-256 CertIDs; the CertID is echoed.
        for sha256 in [false, true] {
            let id = cert_id(&s.issuer, &first, sha256);
            let a = svc.answer(&request(vec![id.clone()], None), NOW).await;
            assert!(matches!(a, Answer::Cached(_)), "{}", db.label);
            let (singles, _) = open(a.der());
            assert_eq!(singles[0].cert_id, id);
            assert_eq!(singles[0].cert_status, CertStatus::Good(Null));
        }
        // Revocation in the CA shows after the next poll.
        s.ca.revoke("op", &s.serials[0], Reason::KeyCompromise, "test", NOW + 5).await.unwrap();
        assert_eq!(svc.poll(NOW + 5).await.unwrap(), 1, "{}", db.label);
        assert_eq!(svc.poll(NOW + 6).await.unwrap(), 0, "a replayed poll is a no-op");
        let a = svc.answer(&request(vec![cert_id(&s.issuer, &first, false)], None), NOW + 6).await;
        let (singles, _) = open(a.der());
        match &singles[0].cert_status {
            CertStatus::Revoked(r) => {
                assert_eq!(r.revocation_time.to_unix_duration().as_secs() as i64, NOW + 5);
                assert_eq!(r.revocation_reason, Some(x509_cert::ext::pkix::CrlReason::KeyCompromise));
            }
            other => panic!("{}: {other:?}", db.label),
        }
        // A nonce: live-signed, echoed.
        let a = svc.answer(&request(vec![cert_id(&s.issuer, &first, false)], Some(b"0123456789abcdef")), NOW + 6).await;
        assert!(matches!(a, Answer::Live(_)));
        let (_, exts) = open(a.der());
        let echoed = &exts.unwrap()[0];
        assert_eq!(echoed.extn_id, OCSP_NONCE);
        assert_eq!(OctetString::from_der(echoed.extn_value.as_bytes()).unwrap().as_bytes(), b"0123456789abcdef");
        // Several certificates and a serial the CA never issued, in one request.
        let ids = vec![
            cert_id(&s.issuer, &hex::decode(&s.serials[1]).unwrap(), false),
            cert_id(&s.issuer, &[0x55; 16], false),
            cert_id(&s.issuer, &first, true),
        ];
        let (singles, _) = open(svc.answer(&request(ids, None), NOW + 6).await.der());
        assert_eq!(singles[0].cert_status, CertStatus::Good(Null));
        assert_eq!(singles[1].cert_status, CertStatus::Unknown(Null));
        assert!(matches!(singles[2].cert_status, CertStatus::Revoked(_)));
        // An issuer we do not serve; garbage; an empty request list; an oversized body; a
        // nonce longer than 32 octets.
        let other = SoftKey::ephemeral(KeyAlgorithm::EcP384).unwrap();
        let mut foreign = cert_id(&s.issuer, &first, false);
        foreign.issuer_key_hash = OctetString::new(sha1::Sha1::digest(other.public_key_der()).to_vec()).unwrap();
        assert_eq!(status(svc.answer(&request(vec![foreign], None), NOW).await.der()), ResponseStatus::Unauthorized);
        assert_eq!(status(svc.answer(b"\x30\x03garbage", NOW).await.der()), ResponseStatus::MalformedRequest);
        assert_eq!(status(svc.answer(&request(vec![], None), NOW).await.der()), ResponseStatus::MalformedRequest);
        assert_eq!(status(svc.answer(&vec![0x30; 5000], NOW).await.der()), ResponseStatus::MalformedRequest);
        let long = request(vec![cert_id(&s.issuer, &first, false)], Some(&[7; 33]));
        assert_eq!(status(svc.answer(&long, NOW).await.der()), ResponseStatus::MalformedRequest);
        // Refresh re-signs what is past half-life, with the same status.
        assert_eq!(svc.refresh(NOW + 50_000).unwrap(), svc.cached());
        let a = svc.answer(&request(vec![cert_id(&s.issuer, &first, true)], None), NOW + 50_000).await;
        let (singles, _) = open(a.der());
        assert!(matches!(singles[0].cert_status, CertStatus::Revoked(_)));
        assert_eq!(singles[0].this_update.to_unix_duration().as_secs() as i64, NOW + 50_000);
    }
}

#[tokio::test]
async fn the_live_path_is_rate_limited() {
    let db = identity::store::testing::sqlite().unwrap();
    let (s, responders) = setup(&db).await;
    let svc = Service::open(Db::open(&db.url).await.unwrap(), responders, 86_400, 3.0).await.unwrap();
    let first = hex::decode(&s.serials[0]).unwrap();
    let mut try_later = 0;
    for i in 0..10u8 {
        let r = request(vec![cert_id(&s.issuer, &first, false)], Some(&[i; 16]));
        if status(svc.answer(&r, NOW).await.der()) == ResponseStatus::TryLater {
            try_later += 1;
        }
    }
    assert!(try_later >= 6, "3 per second allowed, {try_later} of 10 refused");
}

#[tokio::test]
async fn verifiers_are_registered_agency_parties() {
    use identity::party::Party;
    use validator::api::{add_verifier, log, registered, usage};
    let db = identity::store::testing::sqlite().unwrap();
    let db = Db::open(&db.url).await.unwrap();
    // Bad registrations are refused with the rule they break; an id must be an agency name.
    for (id, purposes) in [
        ("", vec!["p".to_string()]),
        ("bad id", vec!["p".into()]),
        ("agency:x", vec!["p".into()]),
        ("ok", vec![]),
        ("ok", vec!["a,b".into()]),
    ] {
        let e = add_verifier(&db, id, "n", &purposes, NOW).await.unwrap_err().to_string();
        assert!(e.contains("verifier id") || e.contains("purpose"), "{e}");
    }
    let party = add_verifier(&db, "bank-1", "Bank", &["account-opening".into()], NOW).await.unwrap();
    assert_eq!(party, Party::Agency("bank-1".into()));
    assert!(add_verifier(&db, "bank-1", "Again", &["x".into()], NOW).await.is_err(), "ids are unique");
    let v = registered(&db, &party).await.unwrap().unwrap();
    assert_eq!((v.id.as_str(), v.purposes.as_slice()), ("bank-1", &["account-opening".to_string()][..]));
    // Only the agency party of that name is the verifier.
    for other in [
        Party::Agency("bank-2".into()),
        Party::Validator("bank-1".into()),
        Party::Operator("bank-1".into()),
        Party::Ca("bank-1".into()),
        Party::National,
    ] {
        assert!(registered(&db, &other).await.unwrap().is_none(), "{other}");
    }
    // No secret is kept.
    let h: Vec<u8> =
        sqlx::query_scalar("SELECT secret_hash FROM validator_verifier").fetch_one(db.pool()).await.unwrap();
    assert!(h.is_empty());
    log(&db, NOW, "bank-1", "account-opening", "cert", "CN=x", "valid").await.unwrap();
    assert_eq!(usage(&db, 0).await.unwrap(), vec![("bank-1".into(), "account-opening".into(), "cert".into(), 1)]);
    // The log is append-only.
    assert!(sqlx::query("DELETE FROM validator_query").execute(db.pool()).await.is_err());
}

/// The two routers without a socket: the API reads the caller's party from the request's
/// extensions (as `net::server` puts it there over mutual TLS); the public router has no API.
#[tokio::test]
async fn the_api_admits_registered_verifiers_by_party_and_the_public_router_has_none() {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use identity::party::Party;
    use tower::ServiceExt as _;
    let tdb = identity::store::testing::sqlite().unwrap();
    let (_s, responders) = setup(&tdb).await;
    let svc = Arc::new(Service::open(Db::open(&tdb.url).await.unwrap(), responders, 86_400, 100.0).await.unwrap());
    let db = Db::open(&tdb.url).await.unwrap();
    validator::api::add_verifier(&db, "bank-1", "Bank", &["account-opening".into()], NOW).await.unwrap();
    let api =
        Arc::new(validator::api::Api { db: db.clone(), anchors: vec![], intermediates: vec![], ocsp: svc.clone() });
    let logged = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM validator_query").fetch_one(db.pool()).await.unwrap()
    };
    let call = |router: axum::Router, party: Option<Party>, body: &str| {
        let mut req = Request::post("/v1/verify/cert")
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        if let Some(p) = party {
            req.extensions_mut().insert(p);
        }
        async move {
            let r = router.oneshot(req).await.unwrap();
            let status = r.status();
            let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    };
    let q = r#"{"purpose":"account-opening","certificate":"AAAA"}"#;
    let bank = Some(Party::Agency("bank-1".into()));

    // No party: 401 and nothing durable, whatever the body.
    for body in [q, "not json"] {
        let (st, b) = call(validator::http::api_router(api.clone()), None, body).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{b}");
    }
    assert_eq!(logged().await, 0, "an unauthenticated request writes nothing");
    // Parties that are not registered verifiers: 403, logged under the party, body unread.
    for (n, p) in [Party::Agency("other".into()), Party::Validator("bank-1".into())].into_iter().enumerate() {
        let (st, b) = call(validator::http::api_router(api.clone()), Some(p.clone()), "not json").await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{p}: {b}");
        assert_eq!(logged().await, n as i64 + 1);
    }
    let refused: Vec<String> =
        sqlx::query_scalar("SELECT verifier_id FROM validator_query ORDER BY id").fetch_all(db.pool()).await.unwrap();
    assert_eq!(refused, ["urn:jpki:agency:other", "urn:jpki:validator:bank-1"]);
    // The verifier: a purpose it is not registered for is 403, a malformed body 400, both
    // logged; a query is answered (here: not a certificate, so invalid) and logged.
    let (st, b) =
        call(validator::http::api_router(api.clone()), bank.clone(), r#"{"purpose":"marketing","certificate":"AAAA"}"#)
            .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{b}");
    let (st, b) = call(validator::http::api_router(api.clone()), bank.clone(), "not json").await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
    let (st, b) = call(validator::http::api_router(api.clone()), bank.clone(), q).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert!(b.contains(r#""valid":false"#), "{b}");
    assert_eq!(logged().await, 5);

    // The public router answers OCSP and health, and has no verification API.
    let state = Arc::new(validator::http::AppState { ocsp: svc, crl_dir: None, crl_max_age: 60 });
    let (st, _) = call(validator::http::router(state.clone()), bank.clone(), q).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let r = validator::http::router(state).oneshot(Request::get("/health").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(logged().await, 5);
}
