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
use ca::status::{StatusClient, StatusReader, StatusSource};
use der::asn1::{Null, OctetString};
use der::{Decode, Encode};
use identity::store::testing::TestDb;
use sha1::Digest as _;
use validator::ocsp::*;
use validator::responder::{Answer, Responder, Service};
use x509_cert::Certificate;
use x509_cert::ext::Extension;
use x509_cert::serial_number::SerialNumber;

const NOW: i64 = 1_795_478_400;

struct Setup {
    ca: Arc<Authority>,
    issuer: Certificate,
    serials: Vec<String>,
    /// The key of the authentication certificates.
    subject: SoftKey,
    _keys: tempfile::TempDir,
}

async fn setup(db: &TestDb) -> (Setup, Vec<Responder>) {
    let keys = tempfile::tempdir().unwrap();
    let mut ca = Authority::open(
        ca::schema::open(&db.url).await.unwrap(),
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
                        ca_issuers: None,
                    },
                }),
                serial,
            }
        })
        .collect();
    let issued = ca.run("op", plans, NOW).await.unwrap();
    let rkey = SoftKey::ephemeral(KeyAlgorithm::EcP384).unwrap();
    let rc = ca.issue_responder("op", &g.ca, None, rkey.public_key_der(), 30, NOW).await.unwrap();
    let responder = Responder::new(Arc::new(rkey), &rc.der).unwrap();
    let serials = issued.iter().map(|c| c.serial.clone()).collect();
    (Setup { ca: Arc::new(ca), issuer, serials, subject, _keys: keys }, vec![responder])
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
        let svc = Arc::new(
            Service::open(StatusReader::open(&db.url).await.unwrap(), responders, 86_400, 1_000.0).await.unwrap(),
        );
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
        assert_eq!(svc.refresh(NOW + 50_000).await.unwrap(), svc.cached());
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
    let svc = Service::open(StatusReader::open(&db.url).await.unwrap(), responders, 86_400, 3.0).await.unwrap();
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
    let db = validator::schema::open(&db.url).await.unwrap();
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
    let svc =
        Arc::new(Service::open(StatusReader::open(&tdb.url).await.unwrap(), responders, 86_400, 100.0).await.unwrap());
    let db = validator::schema::open(&tdb.url).await.unwrap();
    validator::api::add_verifier(&db, "bank-1", "Bank", &["account-opening".into()], NOW).await.unwrap();
    let api = Arc::new(validator::api::Api {
        db: db.clone(),
        anchors: vec![],
        intermediates: vec![],
        ocsp: svc.clone(),
        status: StatusReader::open(&tdb.url).await.unwrap().into(),
        environment: Environment::Production,
    });
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
    let state = Arc::new(validator::http::AppState { ocsp: svc.into(), crl_dir: None, crl_max_age: 60 });
    let (st, _) = call(validator::http::router(state.clone()), bank.clone(), q).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let r = validator::http::router(state).oneshot(Request::get("/health").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(logged().await, 5);
}

/// The revocation of `serial` as the responder answers it, if revoked.
async fn answered_revoked(svc: &Service, issuer: &Certificate, serial: &str, now: i64) -> Option<i64> {
    let a = svc.answer(&request(vec![cert_id(issuer, &hex::decode(serial).unwrap(), false)], None), now).await;
    match &open(a.der()).0[0].cert_status {
        CertStatus::Revoked(r) => Some(r.revocation_time.to_unix_duration().as_secs() as i64),
        _ => None,
    }
}

/// Regression for review finding H2: revocations were polled by a `revoked_at` window, so one
/// revocation from a clock a day fast hid every later one. They are now polled by the CA's
/// gapless revocation sequence — read from the CA's database or from the CA service's status
/// stream alike.
#[tokio::test(flavor = "multi_thread")]
async fn revocations_are_picked_up_by_sequence_whatever_the_clocks_say() {
    for db in identity::store::testing::all().await.unwrap() {
        let (s, responders) = setup(&db).await;
        let status = StatusReader::open(&db.url).await.unwrap().into();
        by_sequence(&s, responders, status, &format!("{} (database)", db.label)).await;
    }
    for db in identity::store::testing::all().await.unwrap() {
        let (s, responders) = setup(&db).await;
        let net = CaServiceOnLoopback::start(s.ca.clone()).await;
        by_sequence(&s, responders, net.validator.clone().into(), &format!("{} (CA service)", db.label)).await;
    }
}

async fn by_sequence(s: &Setup, responders: Vec<Responder>, status: StatusSource, label: &str) {
    {
        let svc = Arc::new(Service::open(status.clone(), responders, 86_400, 1_000.0).await.unwrap());
        svc.load(NOW).await.unwrap();
        assert_eq!(svc.seen_seq(), 0);
        let poller = svc.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                poller.poll(NOW).await.unwrap();
            }
        });
        // One revoking process's clock is a day fast, the next one's an hour slow.
        s.ca.revoke("w1", &s.serials[0], Reason::KeyCompromise, "fast clock", NOW + 86_400).await.unwrap();
        s.ca.revoke("w2", &s.serials[1], Reason::Superseded, "slow clock", NOW - 3_600).await.unwrap();
        let t = std::time::Instant::now();
        loop {
            let a = answered_revoked(&svc, &s.issuer, &s.serials[0], NOW).await;
            let b = answered_revoked(&svc, &s.issuer, &s.serials[1], NOW).await;
            if a.is_some() && b.is_some() {
                assert_eq!((a, b), (Some(NOW + 86_400), Some(NOW - 3_600)), "{}", label);
                break;
            }
            // A liveness bound, not a latency target (the poller runs every 200 ms): generous, so
            // that a loaded CI machine cannot fail it.
            assert!(t.elapsed() < std::time::Duration::from_secs(30), "{}: not both revoked within 30 s", label);
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        // Both can be answered revoked before the poller has read the second number (an answer
        // may come from the status by serial): wait for the poller, under the same bound.
        while svc.seen_seq() < 2 {
            assert!(t.elapsed() < std::time::Duration::from_secs(30), "{}: seen_seq {}", label, svc.seen_seq());
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        task.abort();
        assert_eq!(svc.seen_seq(), 2, "{}", label);

        // A replayed revocation (a crash between the insert and its acknowledgement, a
        // replayed feed entry) takes no number and revokes nothing twice.
        let mut tx = s.ca.db().write().await.unwrap();
        let again = ca::authority::insert_revocation(
            &mut tx,
            &s.serials[0],
            "auth-13".into(),
            1,
            0,
            NOW + 10,
            Reason::Unspecified,
            "replay",
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        assert!(!again, "{}", label);
        assert!(s.ca.revoke("op", &s.serials[0], Reason::Unspecified, "again", NOW).await.is_err());
        assert_eq!(status.head().await.unwrap(), 2, "{}", label);
        let seqs: Vec<i64> = status.revocations_after(0, 100).await.unwrap().iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [1, 2], "{}: gapless, in commit order", label);
        assert_eq!(svc.poll(NOW).await.unwrap(), 0, "{}", label);
        assert_eq!(answered_revoked(&svc, &s.issuer, &s.serials[0], NOW).await, Some(NOW + 86_400));

        // A live answer (nonce) reads the CA's tables, not the map: a revocation not yet
        // polled is already answered revoked there.
        s.ca.revoke("op", &s.serials[3], Reason::KeyCompromise, "live", NOW + 8).await.unwrap();
        let id = cert_id(&s.issuer, &hex::decode(&s.serials[3]).unwrap(), false);
        let a = svc.answer(&request(vec![id], Some(b"nonce-nonce-1234")), NOW + 9).await;
        assert!(matches!(open(a.der()).0[0].cert_status, CertStatus::Revoked(_)), "{}", label);
        // Refresh reads every revocation up to the current sequence before it re-signs: a
        // revocation not yet polled is never re-signed as good.
        s.ca.revoke("op", &s.serials[2], Reason::KeyCompromise, "before refresh", NOW + 7).await.unwrap();
        assert!(svc.refresh(NOW + 50_000).await.unwrap() > 0);
        assert_eq!(svc.seen_seq(), 4, "{}", label);
        assert_eq!(answered_revoked(&svc, &s.issuer, &s.serials[2], NOW + 50_000).await, Some(NOW + 7));
        // A restart starts from the sequence it loaded at.
        let svc2 = Arc::new(Service::open(status.clone(), Vec::new(), 86_400, 1.0).await.unwrap());
        svc2.load(NOW).await.unwrap();
        assert_eq!(svc2.seen_seq(), 4, "{}", label);
    }
}

/// A CA service (`ca::service::router`) over `authority`, served with mutual TLS by
/// `net::server` on a loopback port, with network credentials from a fresh network CA: the
/// validator's status client, and raw clients of a validator and of a window.
struct CaServiceOnLoopback {
    validator: StatusClient,
    validator_http: reqwest::Client,
    window_http: reqwest::Client,
    url: String,
    serving: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl CaServiceOnLoopback {
    async fn start(authority: Arc<Authority>) -> CaServiceOnLoopback {
        use identity::party::Party;
        use net::credential::{Credential, Trust};
        let dir = tempfile::tempdir().unwrap();
        let d = |f: &str| dir.path().join(f);
        // TLS checks certificates against the real clock, not the test's NOW.
        let now = identity::http::now();
        let pass = net::secret::Secret::new(b"network test passphrase".to_vec());
        let netca = ca::network::NetworkCa::init(&d("net"), &pass, now).unwrap();
        let trust = Trust { ca_file: d("net/ca.pem"), crl_file: Some(d("net/crl.pem")) };
        let ca_party = Party::Ca("jpki-ca".into());
        netca.issue_tls(&ca_party, &["127.0.0.1".into()], 30, now, &d("ca-service"), &pass).unwrap();
        netca.issue_tls(&Party::Validator("v1".into()), &[], 30, now, &d("validator"), &pass).unwrap();
        netca.issue_tls(&Party::Window("131016:W01".into()), &[], 30, now, &d("window"), &pass).unwrap();
        let client = |name: &str| {
            let cred = Credential::load(&d(name), &pass).unwrap();
            net::client::client(&cred, &trust, Some(ca_party.clone())).unwrap()
        };
        let (validator_http, window_http) = (client("validator"), client("window"));
        // The status routes never ask the identity network: a peer that is never called.
        let source = ca::identity_source::IdentitySource::Http(identity::client::Peer::new(
            "https://127.0.0.1:1",
            validator_http.clone(),
        ));
        let svc = ca::service::CaService::new(authority, source, trust.clone(), None, None, identity::http::now);
        let ca_cred = Credential::load(&d("ca-service"), &pass).unwrap();
        let (config, _) = net::tls::server_config(&ca_cred, &trust).unwrap();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", l.local_addr().unwrap());
        let server = net::server::Server::new(ca::service::router(svc), net::server::Transport::Tls(config));
        let serving = tokio::spawn(async move {
            server.serve(l, std::future::pending()).await.unwrap();
        });
        let validator = StatusClient::new(&url, validator_http.clone());
        CaServiceOnLoopback { validator, validator_http, window_http, url, serving, _dir: dir }
    }
}

impl Drop for CaServiceOnLoopback {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

/// The validator's two status sources agree: the CA's database read directly and the CA
/// service's status stream (`GET /v1/status/…` over mutual TLS) give the same head,
/// revocations, certificates (whole and by page), single statuses and CA certificates, and a
/// responder loads the same from either.
#[tokio::test(flavor = "multi_thread")]
async fn the_status_stream_agrees_with_the_ca_database() {
    for tdb in identity::store::testing::all().await.unwrap() {
        let label = tdb.label;
        let (s, responders) = setup(&tdb).await;
        s.ca.revoke("op", &s.serials[1], Reason::KeyCompromise, "test", NOW + 5).await.unwrap();
        s.ca.revoke("op", &s.serials[3], Reason::Superseded, "test", NOW + 6).await.unwrap();
        let net = CaServiceOnLoopback::start(s.ca.clone()).await;
        let db: StatusSource = StatusReader::open(&tdb.url).await.unwrap().into();
        let http: StatusSource = net.validator.clone().into();

        assert_eq!(db.head().await.unwrap(), 2, "{label}");
        assert_eq!(http.head().await.unwrap(), 2, "{label}");
        for after in [0, 1, 2] {
            let want = db.revocations_after(after, 100).await.unwrap();
            assert_eq!(http.revocations_after(after, 100).await.unwrap(), want, "{label}");
        }
        assert_eq!(http.revocations_after(0, 1).await.unwrap().len(), 1, "{label}");
        let sorted = |mut v: Vec<ca::status::Certificate>| {
            v.sort_by(|a, b| a.serial.cmp(&b.serial));
            v
        };
        let all = sorted(db.certificates().await.unwrap());
        // Under the issuing CA: the five issued, two of them revoked, and the responder's
        // certificate (the CA certificates themselves are listed under their roots).
        assert!(s.serials.iter().all(|x| all.iter().any(|c| &c.serial == x)), "{label}");
        assert_eq!(all.iter().filter(|c| c.issuer_slug == "auth-13").count(), 6, "{label}: {all:?}");
        assert_eq!(all.iter().filter(|c| matches!(c.status, ca::status::CertStatus::Revoked { .. })).count(), 2);
        assert_eq!(sorted(http.certificates().await.unwrap()), all, "{label}");
        // By page of two, from either source: the same pages, together every certificate.
        let (mut after, mut paged) = (String::new(), Vec::new());
        loop {
            let page = db.certificates_after(&after, 2).await.unwrap();
            assert_eq!(http.certificates_after(&after, 2).await.unwrap(), page, "{label}: after {after:?}");
            let Some(last) = page.last() else { break };
            after = last.serial.clone();
            paged.extend(page);
        }
        assert_eq!(sorted(paged.clone()), all, "{label}");
        assert!(paged.windows(2).all(|w| w[0].serial != w[1].serial), "{label}: no serial twice");
        for c in &all {
            assert_eq!(http.certificate(&c.serial).await.unwrap().as_ref(), Some(c), "{label}");
            assert_eq!(db.certificate(&c.serial).await.unwrap().as_ref(), Some(c), "{label}");
        }
        // A serial the CA never reserved, and one it could not have issued: none from either.
        for serial in [hex::encode([0x55; 16]), "zz".into(), "ab".repeat(40)] {
            assert_eq!(http.certificate(&serial).await.unwrap(), None, "{label}: {serial}");
            assert_eq!(db.certificate(&serial).await.unwrap(), None, "{label}: {serial}");
        }
        assert_eq!(http.ca_certificates().await.unwrap(), db.ca_certificates().await.unwrap(), "{label}");

        // A responder loads the same from either source.
        let svc = Arc::new(Service::open(http.clone(), responders, 86_400, 100.0).await.unwrap());
        assert_eq!(svc.load(NOW).await.unwrap(), 6, "{label}");
        let revoked = request(vec![cert_id(&s.issuer, &hex::decode(&s.serials[1]).unwrap(), false)], None);
        let a = svc.answer(&revoked, NOW).await;
        assert!(matches!(open(a.der()).0[0].cert_status, CertStatus::Revoked(_)), "{label}");
        // A miss goes to the CA service (live path): a serial it never reserved is unknown.
        let a = svc.answer(&request(vec![cert_id(&s.issuer, &[0x55; 16], false)], None), NOW).await;
        assert_eq!(open(a.der()).0[0].cert_status, CertStatus::Unknown(Null), "{label}");

        // The listing is the status readers': a window is refused; bad paging is refused.
        let get = |c: &reqwest::Client, q: &str| {
            let r = c.get(format!("{}/v1/status/certificates{q}", net.url)).send();
            async move {
                let r = r.await.unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            }
        };
        let (st, b) = get(&net.window_http, "").await;
        assert_eq!(st, 403, "{label}: {b}");
        assert!(b.contains("party_not_allowed"), "{b}");
        for q in ["?limit=0", "?limit=10001", "?after=xyz", "?after=%27%20OR%201=1"] {
            let (st, b) = get(&net.validator_http, q).await;
            assert_eq!(st, 400, "{label}: {q}: {b}");
        }
        let (st, b) = get(&net.validator_http, "?limit=10000").await;
        assert_eq!(st, 200, "{label}: {b}");
        // A source that cannot answer is a typed error that names the service, not a panic.
        let gone = StatusClient::new("https://127.0.0.1:1", net.validator_http.clone());
        let e = gone.head().await.unwrap_err();
        assert_eq!(e.kind(), "status_service", "{e}");
        assert!(e.to_string().contains("https://127.0.0.1:1"), "{e}");
    }
}

/// Review finding H7: the validator opens the CA's database read only, without migrations.
#[tokio::test]
async fn the_validator_answers_from_a_read_only_ca_database() {
    use std::os::unix::fs::PermissionsExt as _;
    let db = identity::store::testing::sqlite().unwrap();
    let (s, responders) = setup(&db).await;
    s.ca.db().pool().close().await;
    let path = db.url.strip_prefix("sqlite://").unwrap().to_owned();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    let before = std::fs::read(&path).unwrap();
    let svc =
        Arc::new(Service::open(StatusReader::open(&db.url).await.unwrap(), responders, 86_400, 100.0).await.unwrap());
    assert_eq!(svc.load(NOW).await.unwrap(), 6);
    assert_eq!(svc.poll(NOW).await.unwrap(), 0);
    let a = svc.answer(&request(vec![cert_id(&s.issuer, &hex::decode(&s.serials[0]).unwrap(), true)], None), NOW).await;
    assert_eq!(open(a.der()).0[0].cert_status, CertStatus::Good(Null));
    // A miss (live path, read from the database) answers too.
    let a = svc.answer(&request(vec![cert_id(&s.issuer, &[0x55; 16], false)], None), NOW).await;
    assert_eq!(open(a.der()).0[0].cert_status, CertStatus::Unknown(Null));
    assert_eq!(std::fs::read(&path).unwrap(), before, "the CA database is unchanged");
    // A database that is not a migrated CA database is refused, not migrated.
    let empty = identity::store::testing::sqlite().unwrap();
    let p = empty.url.strip_prefix("sqlite://").unwrap();
    std::fs::write(p, b"").unwrap();
    assert!(StatusReader::open(&empty.url).await.is_err());
    assert_eq!(std::fs::metadata(p).unwrap().len(), 0, "nothing created");
}

/// Each crate owns its tables (issue 10): the CA's database holds the CA's tables only, the
/// validator's its own only, and reading the CA's database for status adds nothing to it.
#[tokio::test]
async fn each_database_holds_its_own_crates_tables() {
    use identity::store::testing::{all, tables};
    for (c, v) in all().await.unwrap().iter().zip(all().await.unwrap().iter()) {
        let (s, responders) = setup(c).await;
        let svc = Service::open(StatusReader::open(&c.url).await.unwrap(), responders, 86_400, 100.0).await.unwrap();
        Arc::new(svc).load(NOW).await.unwrap();
        let vdb = validator::schema::open(&v.url).await.unwrap();
        validator::api::add_verifier(&vdb, "bank-1", "Bank", &["account-opening".into()], NOW).await.unwrap();
        let vt = tables(&vdb).await.unwrap();
        assert_eq!(
            vt.iter().map(String::as_str).collect::<Vec<_>>(),
            ["validator_query", "validator_verifier"],
            "{}",
            v.label
        );
        // Reopening runs nothing twice.
        vdb.close().await;
        let vdb = validator::schema::open(&v.url).await.unwrap();
        assert_eq!(tables(&vdb).await.unwrap(), vt, "{}", v.label);
        let ct = tables(s.ca.db()).await.unwrap();
        assert!(ct.contains("ca_revocation") && ct.contains("ca_revocation_counter"), "{}: {ct:?}", c.label);
        assert!(ct.iter().all(|t| t.starts_with("ca_")), "{}: {ct:?}", c.label);
    }
}

/// A database migrated before the schema was split per crate (the shared folder's versions
/// 1 to 5, where 3 made the validator's tables and indexed ca_revocation; its text is kept in
/// `tests/legacy/`) opens with each crate's migrations: the moved files keep their checksums,
/// the CA's 2001 and the validator's 3001 change nothing on it (the CA's 2002 adds the card
/// inventory, 2003 ceremonies and links and columns of ca_generation), and 3 is left alone.
#[tokio::test]
async fn a_database_migrated_before_the_split_opens_with_each_crates_migrations() {
    use identity::store::{Backend, Db, SCHEMA, testing};
    use sqlx::SqlSafeStr as _;
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    for t in testing::all().await.unwrap() {
        let db = Db::connect(&t.url).await.unwrap();
        let (old_3, pick): (&'static str, fn(&identity::store::Schema) -> &'static Migrator) = match db.backend() {
            Backend::Sqlite => (include_str!("legacy/0003_validator.sqlite.sql"), |s| s.sqlite),
            Backend::Postgres => (include_str!("legacy/0003_validator.postgres.sql"), |s| s.postgres),
        };
        let mut legacy: Vec<Migration> = [&SCHEMA, &ca::schema::SCHEMA]
            .into_iter()
            .flat_map(|s| pick(s).iter().filter(|m| m.version <= 5).cloned())
            .collect();
        legacy.push(Migration::new(3, "validator".into(), MigrationType::Simple, old_3.into_sql_str(), false));
        Migrator::with_migrations(legacy).run(db.pool()).await.unwrap();
        let before = testing::tables(&db).await.unwrap();
        assert!(before.contains("validator_query") && before.contains("ca_revocation"), "{}", t.label);
        db.migrate(&SCHEMA).await.unwrap();
        ca::schema::migrate(&db).await.unwrap();
        db.close().await;
        let v = validator::schema::open(&t.url).await.unwrap();
        // The CA's later migrations add only their own tables (2002: the card inventory; 2003:
        // ceremonies and link certificates; 2004: re-issuance; 2005: restore marks).
        let mut expected = before.clone();
        expected.extend(["ca_card", "ca_ceremony", "ca_link", "ca_reissue", "ca_restore"].map(str::to_owned));
        assert_eq!(testing::tables(&v).await.unwrap(), expected, "{}", t.label);
        let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(v.pool())
            .await
            .unwrap();
        // (identity's 1012 adds columns to replica_cursor, no table; 1013 partitions resident and
        // provision_log on PostgreSQL, which stay one table each.)
        assert_eq!(versions, [1, 2, 3, 4, 5, 1012, 1013, 2001, 2002, 2003, 2004, 2005, 3001], "{}", t.label);
        // The query log is still append-only.
        validator::api::log(&v, NOW, "bank-1", "p", "cert", "-", "valid").await.unwrap();
        assert!(sqlx::query("UPDATE validator_query SET result = 'x'").execute(v.pool()).await.is_err(), "{}", t.label);
    }
}

/// A generation enrolled while the service runs (`Service::add_responder`, what `--auto-enroll`
/// calls): a request for it before is `unauthorized` and leaves one wake-up for the enroller;
/// a CA key offered as its responder is refused as at start-up and changes nothing; the
/// responder then added answers pre-signed, without a new service; adding it again is a no-op.
#[tokio::test]
async fn a_responder_added_while_running_is_checked_then_served() {
    for db in identity::store::testing::all().await.unwrap() {
        let (s, mut responders) = setup(&db).await;
        let source = StatusReader::open(&db.url).await.unwrap();
        let svc = Arc::new(Service::open(source, Vec::new(), 86_400, 1_000.0).await.unwrap());
        assert_eq!(svc.load(NOW).await.unwrap(), 0, "{}", db.label);
        let first = hex::decode(&s.serials[0]).unwrap();
        let req = request(vec![cert_id(&s.issuer, &first, false)], None);
        for _ in 0..3 {
            assert_eq!(status(svc.answer(&req, NOW).await.der()), ResponseStatus::Unauthorized, "{}", db.label);
        }
        // The three requests left one wake-up, taken at once; none is left after it.
        tokio::time::timeout(std::time::Duration::from_secs(1), svc.unknown_issuer_asked()).await.unwrap();
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), svc.unknown_issuer_asked()).await.is_err(),
            "{}",
            db.label
        );
        // The issuing CA's own key offered as its responder: refused, nothing served.
        let g =
            s.ca.current(
                &ca::hierarchy::CaId::issuing(Purpose::Authentication, Environment::Production, "13").unwrap(),
                NOW,
            )
            .await
            .unwrap();
        let ca_as_responder = Responder::new(s.ca.key(&g).unwrap(), &g.certificate).unwrap();
        let e = svc.add_responder(ca_as_responder, NOW).await.unwrap_err();
        assert!(e.to_string().contains("the key of CA auth-13 g1"), "{}: {e}", db.label);
        assert!(!svc.serves("auth-13", 1) && svc.issuers().is_empty(), "{}", db.label);
        assert_eq!(status(svc.answer(&req, NOW).await.der()), ResponseStatus::Unauthorized, "{}", db.label);
        // The enrolled responder: its 5 certificates and its own pre-signed, then answered.
        let r = responders.remove(0);
        let same = Responder::new(r.key.clone(), &r.cert.to_der().unwrap()).unwrap();
        assert_eq!(svc.add_responder(r, NOW).await.unwrap(), Some(6), "{}", db.label);
        assert!(svc.serves("auth-13", 1), "{}", db.label);
        let a = svc.answer(&req, NOW).await;
        assert!(matches!(a, Answer::Cached(_)), "{}", db.label);
        let (singles, _) = open(a.der());
        assert_eq!(singles[0].cert_status, CertStatus::Good(Null), "{}", db.label);
        // Revocations of the added generation are followed like the others.
        s.ca.revoke("op", &s.serials[0], Reason::KeyCompromise, "test", NOW + 5).await.unwrap();
        assert_eq!(svc.poll(NOW + 5).await.unwrap(), 1, "{}", db.label);
        let (singles, _) = open(svc.answer(&req, NOW + 6).await.der());
        assert!(matches!(singles[0].cert_status, CertStatus::Revoked(_)), "{}", db.label);
        // Adding a generation already served changes nothing.
        assert_eq!(svc.add_responder(same, NOW + 6).await.unwrap(), None, "{}", db.label);
        assert_eq!(svc.issuers().len(), 1, "{}", db.label);
    }
}

/// Issue 10: a CA key, a certificate without id-kp-OCSPSigning or a CA certificate is never
/// a responder.
#[tokio::test]
async fn responder_keys_are_checked_at_start() {
    use validator::responder::check_responder;
    let db = identity::store::testing::sqlite().unwrap();
    let (s, responders) = setup(&db).await;
    let status = StatusReader::open(&db.url).await.unwrap();
    let cas = status.ca_certificates().await.unwrap();
    // The responder enrolled by the CA passes.
    check_responder(&responders[0].cert, &cas).unwrap();
    // The issuing CA's own key and certificate offered as a responder.
    let g = s
        .ca
        .current(&ca::hierarchy::CaId::issuing(Purpose::Authentication, Environment::Production, "13").unwrap(), NOW)
        .await
        .unwrap();
    let ca_as_responder = Responder::new(s.ca.key(&g).unwrap(), &g.certificate).unwrap();
    let e = Service::open(status.clone(), vec![ca_as_responder], 86_400, 1.0).await.unwrap_err();
    assert!(e.to_string().contains("the key of CA auth-13 g1"), "{e}");
    // An end-entity certificate without id-kp-OCSPSigning.
    let leaf = Certificate::from_der(&s.ca.show(&s.serials[0]).await.unwrap().der.unwrap()).unwrap();
    let e = check_responder(&leaf, &cas).unwrap_err();
    assert!(e.to_string().contains("lacks id-kp-OCSPSigning"), "{e}");
    // A CA certificate whose key is not one of this CA database's generations.
    let other_db = identity::store::testing::sqlite().unwrap();
    let (other, _) = setup(&other_db).await;
    let e = check_responder(&other.issuer, &cas).unwrap_err();
    assert!(e.to_string().contains("is a CA certificate"), "{e}");
}

/// Issues one signature certificate under `g` for `key`; returns its DER.
async fn signature_cert(ca: &Authority, g: &Arc<ca::authority::Generation>, key: &SoftKey, id: &str) -> Vec<u8> {
    use ca::profile::{SanItems, SignatureCert};
    let issuer = Certificate::from_der(&g.certificate).unwrap();
    let serial = new_serial();
    let shard = shard_of(&serial, g.shards);
    let t0 = time::OffsetDateTime::from_unix_timestamp(NOW).unwrap();
    let plan = Plan {
        kind: CertKind::Signature,
        issuer: g.clone(),
        shard,
        spki: key.public_key_der().to_vec(),
        not_before: t0,
        not_after: t0 + time::Duration::days(1000),
        resident_code: Some("12345678901".into()),
        issuance_id: Some(id.into()),
        request_id: None,
        feed_position: 0,
        supersedes: Vec::new(),
        profile: AnyProfile::Signature(SignatureCert {
            issuer: issuer.tbs_certificate().subject().clone(),
            subject: SignatureCert::subject_name("13", "131016", id).unwrap(),
            items: SanItems {
                name: "山田花子".into(),
                name_flags: "0000".into(),
                sex: 2,
                date_of_birth: time::Date::from_calendar_date(1980, time::Month::February, 29).unwrap(),
                address: "東京都千代田区".into(),
                address_flags: "0000000".into(),
            },
            policy: g.ca.policy(),
            urls: StatusUrls {
                crl: ca::authority::crl_url("http://x", &g.ca.slug(), g.generation, shard),
                ocsp: "http://x/ocsp".into(),
                ca_issuers: None,
            },
        }),
        serial,
    };
    ca.run("op", vec![plan], NOW).await.unwrap().remove(0).der
}

type Pkey = openssl::pkey::PKey<openssl::pkey::Private>;

fn pkey(key: &SoftKey) -> Pkey {
    openssl::pkey::PKey::private_key_from_pkcs8(key.pkcs8_secret().unwrap().expose()).unwrap()
}

/// An attached CMS SignedData over `content`, made by openssl with `key` and `cert`.
fn cms(content: &[u8], cert: &[u8], key: &Pkey) -> Vec<u8> {
    use openssl::cms::{CMSOptions, CmsContentInfo};
    let x = openssl::x509::X509::from_der(cert).unwrap();
    CmsContentInfo::sign(Some(&x), Some(key), None, Some(content), CMSOptions::BINARY).unwrap().to_der().unwrap()
}

fn serial_hex(der: &[u8]) -> String {
    let c = Certificate::from_der(der).unwrap();
    let mut s = c.tbs_certificate().serial_number().as_bytes();
    while s.len() > 1 && s[0] == 0 {
        s = &s[1..];
    }
    hex::encode(s)
}

/// Review finding H5: the API trusts only the hierarchy it serves (production; test roots
/// never), accepts only signature certificates as document signers, checks every issuing CA's
/// status, and validates at the time asked for, never at the document's signingTime.
#[tokio::test]
async fn verification_api_semantics() {
    use axum::body::Body;
    use axum::http::Request;
    use base64::Engine as _;
    use identity::party::Party;
    use tower::ServiceExt as _;
    let tdb = identity::store::testing::sqlite().unwrap();
    let (mut s, mut responders) = setup(&tdb).await;
    Arc::get_mut(&mut s.ca)
        .unwrap()
        .init("op", Environment::Test, ca::authority::Settings::default(), NOW)
        .await
        .unwrap();
    let sg = Arc::new(s.ca.issuing("op", Purpose::Signature, Environment::Production, "13", NOW).await.unwrap());
    let tg = Arc::new(s.ca.issuing("op", Purpose::Signature, Environment::Test, "27", NOW).await.unwrap());
    let (sig_key, test_key) =
        (SoftKey::ephemeral(KeyAlgorithm::EcP384).unwrap(), SoftKey::ephemeral(KeyAlgorithm::EcP384).unwrap());
    let sig = signature_cert(&s.ca, &sg, &sig_key, "S1").await;
    let test_sig = signature_cert(&s.ca, &tg, &test_key, "T1").await;
    let rkey = SoftKey::ephemeral(KeyAlgorithm::EcP384).unwrap();
    let rc = s.ca.issue_responder("op", &sg.ca, None, rkey.public_key_der(), 30, NOW).await.unwrap();
    let (sig_key, test_key, rpkey) = (pkey(&sig_key), pkey(&test_key), pkey(&rkey));
    let auth_key = pkey(&s.subject);
    responders.push(Responder::new(Arc::new(rkey), &rc.der).unwrap());

    let status: StatusSource = StatusReader::open(&tdb.url).await.unwrap().into();
    // Anchors: the production roots only, unless the test hierarchy is asked for.
    let all = status.ca_certificates().await.unwrap();
    let roots = |env: Environment| -> Vec<Vec<u8>> {
        all.iter().filter(|g| g.ca.env == env && g.ca.prefecture.is_none()).map(|g| g.certificate.clone()).collect()
    };
    let (anchors, intermediates) = validator::api::ca_certificates(&status, Environment::Production).await.unwrap();
    assert_eq!(anchors, roots(Environment::Production));
    assert!(anchors.iter().chain(&intermediates).all(|c| !roots(Environment::Test).contains(c)));
    assert!(!intermediates.contains(&tg.certificate));
    let (test_anchors, _) = validator::api::ca_certificates(&status, Environment::Test).await.unwrap();
    assert_eq!(test_anchors, roots(Environment::Test));

    let svc = Arc::new(Service::open(status.clone(), responders, 86_400, 100.0).await.unwrap());
    svc.load(NOW).await.unwrap();
    let db = validator::schema::open(&tdb.url).await.unwrap();
    validator::api::add_verifier(&db, "bank-1", "Bank", &["account-opening".into()], NOW).await.unwrap();
    let api = Arc::new(validator::api::Api {
        db,
        anchors,
        intermediates,
        ocsp: svc,
        status,
        environment: Environment::Production,
    });
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let call = |route: &'static str, body: String| {
        let mut req = Request::post(route).header("content-type", "application/json").body(Body::from(body)).unwrap();
        req.extensions_mut().insert(Party::Agency("bank-1".into()));
        let router = validator::http::api_router(api.clone());
        async move {
            let r = router.oneshot(req).await.unwrap();
            assert_eq!(r.status(), axum::http::StatusCode::OK);
            let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
            serde_json::from_slice::<serde_json::Value>(&body).unwrap()
        }
    };
    let doc = |signed: Vec<u8>, at: Option<i64>| {
        let mut q = serde_json::json!({"purpose": "account-opening", "signed": b64(&signed)});
        if let Some(at) = at {
            q["at"] = serde_json::json!(at);
        }
        call("/v1/verify/doc", q.to_string())
    };
    let content = b"contract".as_slice();

    // A signature certificate: valid; the signingTime is reported.
    let v = doc(cms(content, &sig, &sig_key), None).await;
    assert_eq!(v["valid"], true, "{v}");
    assert!(v["signing_time"].is_i64(), "{v}");
    // Validated at the time asked for, not at the signingTime (inside the validity): after the
    // certificate's expiry it is invalid.
    let v = doc(cms(content, &sig, &sig_key), Some(NOW + 2_000 * 86_400)).await;
    assert_eq!(v["valid"], false, "{v}");
    assert_eq!(v["validated_at"], NOW + 2_000 * 86_400);
    // An authentication certificate or the responder's certificate: invalid, with a reason.
    let auth = s.ca.show(&s.serials[0]).await.unwrap().der.unwrap();
    let v = doc(cms(content, &auth, &auth_key), None).await;
    assert_eq!(v["valid"], false, "{v}");
    assert!(v["signature"] == true && v["reason"].as_str().unwrap().contains("not a signature certificate"), "{v}");
    let v = doc(cms(content, &rc.der, &rpkey), None).await;
    assert_eq!(v["valid"], false, "{v}");
    assert!(v["reason"].as_str().unwrap().contains("not a signature certificate"), "{v}");
    // A test-hierarchy signature certificate: no path to a trusted anchor.
    let v = doc(cms(content, &test_sig, &test_key), None).await;
    assert_eq!(v["valid"], false, "{v}");
    assert!(v["reason"].as_str().unwrap().contains("no path"), "{v}");

    // The issuing CA on the ARL: the certificate and documents it signed are invalid.
    let cert = |der: &[u8]| {
        call("/v1/verify/cert", serde_json::json!({"purpose": "account-opening", "certificate": b64(der)}).to_string())
    };
    assert_eq!(cert(&sig).await["valid"], true);
    s.ca.revoke("op", &serial_hex(&sg.certificate), Reason::CaCompromise, "test", NOW).await.unwrap();
    let v = cert(&sig).await;
    assert_eq!(v["valid"], false, "{v}");
    assert!(
        v["reason"].as_str().unwrap().contains("issuing CA") && v["reason"].as_str().unwrap().contains("revoked"),
        "{v}"
    );
    let v = doc(cms(content, &sig, &sig_key), None).await;
    assert_eq!(v["valid"], false, "{v}");
    assert!(v["reason"].as_str().unwrap().contains("issuing CA"), "{v}");
}

/// Issue 11, emergency: the CA declares the issuing generation compromised (its CA certificate
/// first in the revocation sequence, then everything it issued). One poll drops the
/// generation's pre-signed "good" answers without signing the entries one by one; every
/// certificate then answers revoked, cACompromise; a validator started afterwards pre-signs
/// nothing for the generation and answers the same.
#[tokio::test]
async fn a_compromised_generation_answers_revoked_without_presigning_each_entry() {
    let db = identity::store::testing::sqlite().unwrap();
    let (s, responders) = setup(&db).await;
    let open_svc = |responders| async {
        Arc::new(Service::open(StatusReader::open(&db.url).await.unwrap(), responders, 86_400, 1_000.0).await.unwrap())
    };
    let keep = responders.iter().map(|r| (r.key.clone(), r.cert.to_der().unwrap())).collect::<Vec<_>>();
    let svc = open_svc(responders).await;
    assert_eq!(svc.load(NOW).await.unwrap(), 6);
    let first = hex::decode(&s.serials[0]).unwrap();
    let a = svc.answer(&request(vec![cert_id(&s.issuer, &first, false)], None), NOW).await;
    assert_eq!(open(a.der()).0[0].cert_status, CertStatus::Good(Null));
    // The successor takes over at once, then the old generation is declared compromised.
    let t = NOW + 100;
    let file = format!(
        "ca = \"auth-13\"\ngeneration = 2\nalgorithm = \"p384\"\nkey = \"software\"\nnot_before = \"{0}\"\nactivation = \"{0}\"\nname = \"same\"\n",
        time::OffsetDateTime::from_unix_timestamp(t)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    );
    s.ca.ceremony_run("op", &file, t).await.unwrap();
    let auth13 = ca::hierarchy::CaId::parse("auth-13").unwrap();
    let c = s.ca.compromise("op", &auth13, 1, t + 1).await.unwrap();
    assert_eq!(c.revoked, 6, "five residents' certificates and the responder's own");
    assert_eq!(svc.poll(t + 2).await.unwrap(), 0, "nothing signed one by one");
    assert_eq!(svc.cached(), 0, "the generation's good answers are gone");
    for serial in &s.serials {
        let a = svc.answer(&request(vec![cert_id(&s.issuer, &hex::decode(serial).unwrap(), false)], None), t + 3).await;
        match &open(a.der()).0[0].cert_status {
            CertStatus::Revoked(r) => {
                assert_eq!(r.revocation_reason, Some(x509_cert::ext::pkix::CrlReason::CaCompromise));
                assert_eq!(r.revocation_time.to_unix_duration().as_secs() as i64, t + 1);
            }
            other => panic!("{serial}: {other:?}"),
        }
    }
    // A validator started after the compromise pre-signs nothing for it and says the same.
    let responders = keep.into_iter().map(|(k, c)| Responder::new(k, &c).unwrap()).collect();
    let svc = open_svc(responders).await;
    assert_eq!(svc.load(t + 4).await.unwrap(), 0);
    assert!(answered_revoked(&svc, &s.issuer, &s.serials[1], t + 5).await == Some(t + 1));
}

/// The scale-out mode on the in-process store: two signers each pre-sign their partition of
/// the serials into the store (together all of them, once), a stateless responder without
/// keys serves them (signatures verified here), keeps them hot, drops them on the invalidation
/// a revocation publishes, answers a nonce request without the nonce, refuses stored values
/// that are not the response for the CertID asked, and clears its hot set after a lost
/// invalidation channel.
#[tokio::test(flavor = "multi_thread")]
async fn the_store_mode_partitions_signing_and_serves_without_keys() {
    use validator::stateless::StoreResponder;
    use validator::store::{MemoryStore, Partition, ResponseStore, Sink};
    let db = identity::store::testing::sqlite().unwrap();
    let (s, responders) = setup(&db).await;
    let (key, cert) = (responders[0].key.clone(), responders[0].cert.to_der().unwrap());
    let store = Arc::new(MemoryStore::default());
    let mut signers = Vec::new();
    for index in 0..2 {
        let p = Partition { index, count: 2 };
        let r = vec![Responder::new(key.clone(), &cert).unwrap()];
        let svc = Service::open(StatusReader::open(&db.url).await.unwrap(), r, 86_400, 1.0).await.unwrap();
        let svc = Arc::new(svc.publishing(Sink::spawn(store.clone(), p)));
        svc.load(NOW).await.unwrap();
        svc.sink().unwrap().flushed().await;
        signers.push(svc);
    }
    // 5 certificates and the responder's own, both hash algorithms, each signed by one signer.
    assert_eq!(store.len(), 12);
    assert_eq!(signers[0].cached() + signers[1].cached(), 12);
    assert!(signers[0].cached() > 0 && signers[1].cached() > 0, "both partitions have serials here");

    let resp = Arc::new(StoreResponder::new(store.clone(), 1 << 20));
    tokio::spawn(resp.clone().follow(std::time::Duration::from_millis(20)));
    while !resp.subscribed() {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    for serial in &s.serials {
        let serial = hex::decode(serial).unwrap();
        for sha256 in [false, true] {
            let id = cert_id(&s.issuer, &serial, sha256);
            for _ in 0..2 {
                let a = resp.answer(&request(vec![id.clone()], None), NOW + 1).await;
                assert!(matches!(a, Answer::Cached(_)));
                let (singles, _) = open(a.der());
                assert_eq!(singles[0].cert_id, id);
                assert_eq!(singles[0].cert_status, CertStatus::Good(Null));
            }
        }
    }
    let st = &resp.stats;
    assert_eq!(st.store.load(std::sync::atomic::Ordering::Relaxed), 10, "first answers from the store");
    assert_eq!(st.hot.load(std::sync::atomic::Ordering::Relaxed), 10, "second answers from the hot set");
    assert_eq!(resp.hot_len(), 10);
    // A nonce: the pre-signed response, without the nonce.
    let first = hex::decode(&s.serials[0]).unwrap();
    let a = resp.answer(&request(vec![cert_id(&s.issuer, &first, false)], Some(b"0123456789abcdef")), NOW + 1).await;
    let (singles, exts) = open(a.der());
    assert_eq!(singles[0].cert_status, CertStatus::Good(Null));
    assert!(exts.is_none(), "no nonce echoed by a keyless responder");
    // Unknown serial, several certificates, garbage.
    let unknown = request(vec![cert_id(&s.issuer, &[0x55; 16], false)], None);
    assert_eq!(status(resp.answer(&unknown, NOW).await.der()), ResponseStatus::Unauthorized);
    let two = request(vec![cert_id(&s.issuer, &first, false), cert_id(&s.issuer, &first, true)], None);
    assert_eq!(status(resp.answer(&two, NOW).await.der()), ResponseStatus::Unauthorized);
    assert_eq!(status(resp.answer(b"\x30\x03garbage", NOW).await.der()), ResponseStatus::MalformedRequest);
    // A stale answer is not served (past nextUpdate).
    assert_eq!(
        status(resp.answer(&request(vec![cert_id(&s.issuer, &first, false)], None), NOW + 86_401).await.der()),
        ResponseStatus::InternalError
    );
    // The hot entry answers only its own CertID: the same issuerKeyHash and serial with
    // another issuerNameHash (not part of the key) is not served from it.
    let hot_before = st.hot.load(std::sync::atomic::Ordering::Relaxed);
    let mut other_name = cert_id(&s.issuer, &first, false);
    other_name.issuer_name_hash = der::asn1::OctetString::new(vec![0xAB; 20]).unwrap();
    assert_eq!(
        status(resp.answer(&request(vec![other_name], None), NOW + 1).await.der()),
        ResponseStatus::InternalError
    );
    assert_eq!(st.hot.load(std::sync::atomic::Ordering::Relaxed), hot_before, "not a hot hit");
    let a = resp.answer(&request(vec![cert_id(&s.issuer, &first, false)], None), NOW + 1).await;
    assert_eq!(open(a.der()).0[0].cert_status, CertStatus::Good(Null), "the entry still answers its own CertID");
    assert_eq!(st.hot.load(std::sync::atomic::Ordering::Relaxed), hot_before + 1);

    // Revocation: its signer re-signs and invalidates; the hot entry is dropped.
    s.ca.revoke("op", &s.serials[0], Reason::KeyCompromise, "test", NOW + 5).await.unwrap();
    let mut new = 0;
    for svc in &signers {
        new += svc.poll(NOW + 5).await.unwrap();
        svc.sink().unwrap().flushed().await;
    }
    assert_eq!(new, 1, "exactly one signer owns the serial");
    let t = std::time::Instant::now();
    loop {
        let a = resp.answer(&request(vec![cert_id(&s.issuer, &first, true)], None), NOW + 6).await;
        if matches!(open(a.der()).0[0].cert_status, CertStatus::Revoked(_)) {
            break;
        }
        assert!(t.elapsed() < std::time::Duration::from_secs(30), "the invalidation never arrived");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // The store refuses to put "good" back over "revoked".
    for svc in &signers {
        svc.refresh(NOW + 50_000).await.unwrap();
        svc.sink().unwrap().flushed().await;
    }
    let a = resp.answer(&request(vec![cert_id(&s.issuer, &first, false)], None), NOW + 50_001).await;
    assert!(matches!(open(a.der()).0[0].cert_status, CertStatus::Revoked(_)));

    // Hostile store contents, read by a fresh responder (nothing hot): another serial's
    // response, garbage, a tag that lies, an empty value. None is served.
    let cold = StoreResponder::new(store.clone(), 1 << 20);
    let k = |serial: &[u8]| {
        let key = issuer_key_sha1(&s.issuer);
        validator::store::key(validator::responder::Alg::Sha1, &key, serial)
    };
    let second = hex::decode(&s.serials[1]).unwrap();
    let third = hex::decode(&s.serials[2]).unwrap();
    let theirs = store.get(k(&third)).await.unwrap().unwrap();
    let good = request(vec![cert_id(&s.issuer, &second, false)], None);
    assert!(matches!(cold.answer(&good, NOW + 10).await, Answer::Cached(_)), "served before tampering");
    let mut lying = theirs.clone();
    lying[0] = b'R';
    let mine = store.get(k(&second)).await.unwrap().unwrap();
    let mut lying_tag = mine.clone();
    lying_tag[0] = b'R';
    for bad in [theirs, b"Gnot DER at all".to_vec(), lying, lying_tag, Vec::new()] {
        store.set_raw(k(&second), bad);
        let a = cold.answer(&good, NOW + 10).await;
        assert_eq!(status(a.der()), ResponseStatus::InternalError);
    }
    assert_eq!(cold.stats.refused.load(std::sync::atomic::Ordering::Relaxed), 5);

    // A lost invalidation channel: the hot set is cleared when it is back.
    assert!(resp.hot_len() > 0);
    store.disconnect_all();
    let t = std::time::Instant::now();
    while !(resp.hot_len() == 0 && resp.subscribed()) {
        assert!(t.elapsed() < std::time::Duration::from_secs(30), "never resubscribed and cleared");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

fn issuer_key_sha1(issuer: &Certificate) -> Vec<u8> {
    sha1::Sha1::digest(issuer.tbs_certificate().subject_public_key_info().subject_public_key.raw_bytes()).to_vec()
}
