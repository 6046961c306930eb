//! The CA end to end on real databases (SQLite, and PostgreSQL when configured): issuance from
//! the identity network, refusals, revocation from change notices, sharded CRLs — every
//! certificate and CRL checked by `openssl` and `pkilint`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use ca::crl::Reason;
use ca::hierarchy::{CaId, Environment, Purpose};
use ca::key::KeyAlgorithm;
use ca::revocation::CertKind;
use common::*;
use der::{Decode, Encode};
use identity::notice::{NoticeKind, parse_date};
use identity::person::FlaggedText;
use x509_cert::certificate::Certificate;
use x509_cert::crl::CertificateList;

const SAN_OIDS: [&str; 6] = [
    "1.2.392.200149.8.5.5.1",
    "1.2.392.200149.8.5.5.2",
    "1.2.392.200149.8.5.5.3",
    "1.2.392.200149.8.5.5.4",
    "1.2.392.200149.8.5.5.5",
    "1.2.392.200149.8.5.5.6",
];

fn ext<'a>(c: &'a Certificate, oid: &str) -> Option<&'a x509_cert::ext::Extension> {
    c.tbs_certificate().extensions().and_then(|e| e.iter().find(|x| x.extn_id.to_string() == oid))
}

#[tokio::test]
async fn issuance_profiles_pass_openssl_and_pkilint() {
    for db in identity::store::testing::all().await.unwrap() {
        for alg in [KeyAlgorithm::Rsa2048, KeyAlgorithm::EcP384] {
            let w = World::new(&db, alg).await;
            let code = w.register("山田　花子", "1980-02-17").await;
            let (sk, scsr) = subject(alg);
            let (_ak, acsr) = subject(alg);
            let issued =
                w.ca.issue("window-1", &request(&code, Some(&scsr), Some(&acsr)), &w.source, NOW).await.unwrap();
            let sig = issued.get(CertKind::Signature).unwrap();
            let auth = issued.get(CertKind::Authentication).unwrap();
            assert_eq!(sig.ca, "sign-13");
            assert_eq!(auth.ca, "auth-13");
            // Chain: issuing CAs then roots; openssl verifies each leaf to its own root only.
            let sign_ca =
                w.ca.current(&CaId::issuing(Purpose::Signature, Environment::Production, "13").unwrap(), NOW)
                    .await
                    .unwrap();
            let sign_root = w.ca.current(&CaId::root(Purpose::Signature, Environment::Production), NOW).await.unwrap();
            let auth_ca =
                w.ca.current(&CaId::issuing(Purpose::Authentication, Environment::Production, "13").unwrap(), NOW)
                    .await
                    .unwrap();
            let auth_root =
                w.ca.current(&CaId::root(Purpose::Authentication, Environment::Production), NOW).await.unwrap();
            assert!(issued.chain.contains(&sign_ca.certificate) && issued.chain.contains(&auth_root.certificate));
            let d = w.dir.path();
            let (ok, out) = openssl_verify(d, &sign_root.certificate, &sign_ca.certificate, &sig.der, &[]);
            assert!(ok, "{} {alg:?} signature cert: {out}", w.label);
            let (ok, out) = openssl_verify(d, &auth_root.certificate, &auth_ca.certificate, &auth.der, &[]);
            assert!(ok, "authentication cert: {out}");
            let (ok, out) = openssl_verify(d, &auth_root.certificate, &sign_ca.certificate, &sig.der, &[]);
            assert!(!ok, "a signature certificate must not verify under the authentication root: {out}");
            // Every certificate lints clean.
            for der in [
                &sig.der,
                &auth.der,
                &sign_ca.certificate,
                &sign_root.certificate,
                &auth_ca.certificate,
                &auth_root.certificate,
            ] {
                let (ok, out) = pkilint_cert(d, der);
                assert!(ok, "pkilint: {out}");
            }
            // The signature profile.
            let c = Certificate::from_der(&sig.der).unwrap();
            assert_eq!(c.tbs_certificate().subject_public_key_info().to_der().unwrap(), key_der(&sk));
            let subject = c.tbs_certificate().subject().to_string();
            assert!(subject.starts_with("CN=") && subject.ends_with(",L=131016,L=Tokyo-to,C=JP"), "{subject}");
            let ku = ext(&c, "2.5.29.15").unwrap();
            assert!(ku.critical);
            assert_eq!(ku.extn_value.as_bytes(), [0x03, 0x02, 0x06, 0xC0], "digitalSignature + nonRepudiation");
            let cp = ext(&c, "2.5.29.32").unwrap();
            assert!(cp.critical);
            assert!(
                hex::encode(cp.extn_value.as_bytes()).contains("2a83088c9b550805010114"),
                "policy 1.2.392.200149.8.5.1.1.20"
            );
            let san = ext(&c, "2.5.29.17").unwrap();
            let san = x509_cert::ext::pkix::SubjectAltName::from_der(san.extn_value.as_bytes()).unwrap();
            let got: Vec<String> = san
                .0
                .iter()
                .map(|g| match g {
                    x509_cert::ext::pkix::name::GeneralName::OtherName(o) => o.type_id.to_string(),
                    _ => "other".into(),
                })
                .collect();
            assert_eq!(got, SAN_OIDS);
            let dump = run(std::process::Command::new("openssl")
                .args(["x509", "-inform", "DER", "-noout", "-text"])
                .stdin(std::process::Stdio::piped())
                .arg("-in")
                .arg({
                    let p = w.path("sig.der");
                    std::fs::write(&p, &sig.der).unwrap();
                    p
                }))
            .1;
            assert!(dump.contains(&format!("/crl/sign-13/g1/{}.crl", sig.shard)), "{dump}");
            assert!(dump.contains("OCSP - URI:http://127.0.0.1:8180/ocsp"), "{dump}");
            // Validity: the 5th birthday after issuance (born 17 Feb; issued 24 Nov 2026, first
            // birthday less than 3 months away → the 6th: 2032-02-17 23:59:59 JST).
            assert_eq!(sig.not_after, 1_960_642_799);
            assert_eq!(auth.not_after, sig.not_after);
            // The authentication profile has no identity items.
            let a = Certificate::from_der(&auth.der).unwrap();
            assert!(ext(&a, "2.5.29.17").is_none());
            assert_eq!(ext(&a, "2.5.29.15").unwrap().extn_value.as_bytes(), [0x03, 0x02, 0x07, 0x80]);
            assert!(a.tbs_certificate().subject().to_string().ends_with(",C=JP"));
            // Serials: 16 bytes, unique, from randomness.
            assert_eq!(c.tbs_certificate().serial_number().as_bytes().len(), 16);
            assert_ne!(sig.serial, auth.serial);
            // The provision was logged by the identity network under B1-020.
            let log = w.national.provider().disclosure(&code).await.unwrap();
            assert!(log.iter().any(|r| r.purpose.contains("B1-020") && r.result == "provided"), "{log:?}");
            // The audit chain holds and has every step.
            let trail = ca::audit::read_and_verify(w.ca.db(), 1000).await.unwrap();
            for step in ["reserve", "tbs_stored", "issued", "ca_generation"] {
                assert!(trail.iter().any(|r| r.action == step), "{step} missing");
            }
            // A retried request with the same id gets the same certificates.
            let mut again = request(&code, Some(&scsr), Some(&acsr));
            again.request_id = Some("req-1".into());
            let first = w.ca.issue("window-1", &again, &w.source, NOW).await.unwrap();
            let second = w.ca.issue("window-1", &again, &w.source, NOW).await.unwrap();
            assert_eq!(first.certificates.len(), 2);
            let mut a: Vec<_> = first.certificates.iter().map(|c| c.serial.clone()).collect();
            let mut b: Vec<_> = second.certificates.iter().map(|c| c.serial.clone()).collect();
            a.sort();
            b.sort();
            assert_eq!(a, b);
            // Renewal superseded the first pair, in the commit that stored the new one.
            for old in [&sig.serial, &auth.serial] {
                let rec = w.ca.show(old).await.unwrap();
                let (_, reason, cause) = rec.revoked.expect("superseded");
                assert_eq!(reason, Reason::Superseded);
                assert!(cause.starts_with("renewal: superseded by "), "{cause}");
            }
            // A delegated OCSP responder certificate for the issuing CA: openssl checks the chain
            // and the purpose, pkilint the profile.
            let responder = ca::key::SoftKey::ephemeral(alg).unwrap();
            let r = w
                .ca
                .issue_responder("op-1", &sign_ca.ca, None, ca::key::KeyBackend::public_key_der(&responder), 30, NOW)
                .await
                .unwrap();
            assert_eq!(r.kind, CertKind::OcspResponder);
            let (ok, out) = pkilint_cert(d, &r.der);
            assert!(ok, "pkilint responder: {out}");
            write_pem(&d.join("root.pem"), "CERTIFICATE", &[&sign_root.certificate]);
            write_pem(&d.join("int.pem"), "CERTIFICATE", &[&sign_ca.certificate]);
            write_pem(&d.join("resp.pem"), "CERTIFICATE", &[&r.der]);
            let (ok, out) = run(std::process::Command::new("openssl")
                .args(["verify", "-purpose", "ocsphelper", "-CAfile"])
                .arg(d.join("root.pem"))
                .arg("-untrusted")
                .arg(d.join("int.pem"))
                .arg(d.join("resp.pem")));
            assert!(ok, "openssl verify responder: {out}");
            let c = Certificate::from_der(&r.der).unwrap();
            assert!(ext(&c, "1.3.6.1.5.5.7.48.1.5").is_some(), "ocsp-nocheck");
            assert!(ext(&c, "2.5.29.37").is_some(), "id-kp-OCSPSigning");
        }
    }
}

async fn count(w: &World) -> i64 {
    use sqlx::Row;
    sqlx::query("SELECT COUNT(*) FROM ca_certificate").fetch_one(w.ca.db().pool()).await.unwrap().try_get(0).unwrap()
}

#[tokio::test]
async fn refusals_are_clear_and_store_nothing() {
    for db in identity::store::testing::all().await.unwrap() {
        let w = World::new(&db, KeyAlgorithm::Rsa2048).await;
        let adult = w.register("佐藤　一郎", "1970-05-05").await;
        let child = w.register("佐藤　次郎", "2013-01-10").await;
        let gone = w.register("鈴木　三郎", "1950-01-01").await;
        w.m.remove(&clerk(), &gone, NoticeKind::Death, parse_date("d", "2026-10-01").unwrap(), NOW).await.unwrap();
        w.sync().await;
        let before = count(&w).await;
        let (_, good) = subject(KeyAlgorithm::Rsa2048);
        let (_, good2) = subject(KeyAlgorithm::Rsa2048);
        let kinds = |e: ca::Error| e.kind();
        // Under 15: no signature certificate…
        let e = w.ca.issue("w", &request(&child, Some(&good), Some(&good2)), &w.source, NOW).await.unwrap_err();
        assert_eq!(kinds(e), "under_age");
        // Removed from the register.
        let e = w.ca.issue("w", &request(&gone, Some(&good), Some(&good2)), &w.source, NOW).await.unwrap_err();
        assert_eq!(e.kind(), "resident_removed", "{e}");
        // Unknown resident.
        let e =
            w.ca.issue("w", &request(&codes(9_000_000, 1)[0], None, Some(&good2)), &w.source, NOW).await.unwrap_err();
        assert_eq!(e.kind(), "resident_unknown", "{e}");
        // A failed proof of possession: a CSR whose signature does not match.
        let mut bad = good.clone();
        let n = bad.len();
        bad[n - 5] ^= 0x55;
        let e = w.ca.issue("w", &request(&adult, Some(&bad), None), &w.source, NOW).await.unwrap_err();
        assert_eq!(e.kind(), "bad_pop", "{e}");
        // Malformed DER.
        let e = w.ca.issue("w", &request(&adult, Some(b"\x30\x82garbage"), None), &w.source, NOW).await.unwrap_err();
        assert_eq!(e.kind(), "bad_pop", "{e}");
        // Wrong key type and size.
        let p256 = {
            let g = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
            let k = openssl::pkey::PKey::from_ec_key(openssl::ec::EcKey::generate(&g).unwrap()).unwrap();
            let mut b = openssl::x509::X509ReqBuilder::new().unwrap();
            b.set_pubkey(&k).unwrap();
            b.sign(&k, openssl::hash::MessageDigest::sha256()).unwrap();
            b.build().to_der().unwrap()
        };
        let e = w.ca.issue("w", &request(&adult, Some(&p256), None), &w.source, NOW).await.unwrap_err();
        assert_eq!(e.kind(), "bad_key", "{e}");
        let rsa1024 = {
            let k = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(1024).unwrap()).unwrap();
            let mut b = openssl::x509::X509ReqBuilder::new().unwrap();
            b.set_pubkey(&k).unwrap();
            b.sign(&k, openssl::hash::MessageDigest::sha256()).unwrap();
            b.build().to_der().unwrap()
        };
        let e = w.ca.issue("w", &request(&adult, None, Some(&rsa1024)), &w.source, NOW).await.unwrap_err();
        assert_eq!(e.kind(), "bad_key", "{e}");
        // The same key for both purposes.
        let e = w.ca.issue("w", &request(&adult, Some(&good), Some(&good)), &w.source, NOW).await.unwrap_err();
        assert_eq!(e.kind(), "key_reuse", "{e}");
        // A bad window id.
        let mut r = request(&adult, None, Some(&good2));
        r.window = "w-1; DROP".into();
        assert_eq!(w.ca.issue("w", &r, &w.source, NOW).await.unwrap_err().kind(), "invalid");
        assert_eq!(count(&w).await, before, "{}: a refusal stored nothing", w.label);
        // …but the child gets an authentication certificate.
        let ok = w.ca.issue("w", &request(&child, None, Some(&good2)), &w.source, NOW).await.unwrap();
        assert_eq!(ok.certificates.len(), 1);
        assert_eq!(ok.certificates[0].kind, CertKind::Authentication);
    }
}

#[tokio::test]
async fn change_notices_revoke_by_rule_and_crls_show_it() {
    for db in identity::store::testing::all().await.unwrap() {
        let w = World::new(&db, KeyAlgorithm::Rsa2048).await;
        let movers = w.register("高橋　四郎", "1985-07-07").await;
        let dies = w.register("田中　五郎", "1940-03-03").await;
        let renamed = w.register("伊藤　六子", "1990-09-09").await;
        let recoded = w.register("渡辺　七子", "1992-12-12").await;
        let mut issued = std::collections::HashMap::new();
        for code in [&movers, &dies, &renamed, &recoded] {
            let (_, s) = subject(KeyAlgorithm::Rsa2048);
            let (_, a) = subject(KeyAlgorithm::Rsa2048);
            issued.insert(
                code.clone(),
                w.ca.issue("w", &request(code, Some(&s), Some(&a)), &w.source, NOW).await.unwrap(),
            );
        }
        // Changes at the municipality, replicated to the national node's feed.
        let eff = parse_date("d", "2026-11-20").unwrap();
        w.m.move_within(&clerk(), &movers, FlaggedText::plain("address", "東京都千代田区丸の内2-2").unwrap(), eff, NOW)
            .await
            .unwrap();
        w.m.remove(&clerk(), &dies, NoticeKind::Death, eff, NOW).await.unwrap();
        let mut items = items("伊藤　六子", "東京都千代田区千代田1-1", "1990-09-09");
        items.name = FlaggedText::plain("name", "山本　六子").unwrap();
        w.m.correct(&clerk(), &renamed, items, eff, NOW).await.unwrap();
        let n = w.m.change_code(&clerk(), &recoded, eff, NOW).await.unwrap();
        let new_code = n.body.record.resident_code.clone();
        w.sync().await;
        let later = NOW + 60;
        let report = w.ca.follow("feed", &w.source, &*notice_ca().verifier(), later).await.unwrap();
        let got: std::collections::BTreeSet<(String, CertKind, Reason)> =
            report.revoked.iter().map(|r| (r.serial.clone(), r.kind, r.reason)).collect();
        let s = |c: &identity::ids::ResidentCode, k| issued[c].get(k).unwrap().serial.clone();
        let want: std::collections::BTreeSet<_> = [
            (s(&movers, CertKind::Signature), CertKind::Signature, Reason::AffiliationChanged),
            (s(&renamed, CertKind::Signature), CertKind::Signature, Reason::AffiliationChanged),
            (s(&dies, CertKind::Signature), CertKind::Signature, Reason::CessationOfOperation),
            (s(&dies, CertKind::Authentication), CertKind::Authentication, Reason::CessationOfOperation),
        ]
        .into();
        assert_eq!(got, want, "{}", w.label);
        assert_eq!(report.rekeyed, 1);
        // A replay of the whole feed revokes nothing twice.
        let replay = w.ca.follow("feed", &w.source, &*notice_ca().verifier(), later + 1).await.unwrap();
        assert!(replay.revoked.is_empty() && replay.entries == 0);
        // The re-coded resident's certificates follow the new code.
        assert_eq!(w.ca.list(Some(new_code.as_str()), None, 10).await.unwrap().len(), 2);
        // Operator revocation: card lost → certificateHold, never released or changed.
        let held = s(&recoded, CertKind::Authentication);
        w.ca.revoke("op-1", &held, Reason::CertificateHold, "card lost at window 3", later).await.unwrap();
        let e = w.ca.revoke("op-1", &held, Reason::KeyCompromise, "again", later).await.unwrap_err();
        assert_eq!(e.kind(), "conflict", "{e}");
        // CRLs: publish twice; numbers strictly increase; openssl agrees on every status.
        let out = w.path("pub");
        let first = w.ca.publish_crls("op-1", &out, later, &|_, _| {}).await.unwrap();
        let second = w.ca.publish_crls("op-1", &out, later + 10, &|_, _| {}).await.unwrap();
        assert_eq!(first.len(), 2 + 2 * 4, "two ARLs and 4 shards per issuing CA");
        for (a, b) in first.iter().zip(&second) {
            assert_eq!((&a.ca, a.generation, a.shard), (&b.ca, b.generation, b.shard));
            assert!(b.number > a.number);
        }
        let sign_ca =
            w.ca.current(&CaId::issuing(Purpose::Signature, Environment::Production, "13").unwrap(), later)
                .await
                .unwrap();
        let sign_root = w.ca.current(&CaId::root(Purpose::Signature, Environment::Production), later).await.unwrap();
        let auth_ca =
            w.ca.current(&CaId::issuing(Purpose::Authentication, Environment::Production, "13").unwrap(), later)
                .await
                .unwrap();
        let auth_root =
            w.ca.current(&CaId::root(Purpose::Authentication, Environment::Production), later).await.unwrap();
        let crl_of =
            |ca: &str, shard: i64| second.iter().find(|p| p.ca == ca && p.shard == shard).unwrap().path.clone();
        for p in &second {
            let kind = if p.shard < 0 { "ARL" } else { "CRL" };
            let (ok, lint) = pkilint_crl(&p.path, kind);
            assert!(ok, "pkilint {}: {lint}", p.path.display());
            // AKI of every CRL = SKI of its issuer (regression: x509-cert CrlBuilder uses the AKI).
            let crl =
                CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&std::fs::read(&p.path).unwrap()).unwrap();
            let g = w.ca.generation_of(&p.ca, p.generation).await.unwrap();
            let aki = crl
                .tbs_cert_list
                .crl_extensions
                .as_ref()
                .unwrap()
                .iter()
                .find(|e| e.extn_id.to_string() == "2.5.29.35")
                .unwrap();
            let aki = x509_cert::ext::pkix::AuthorityKeyIdentifier::from_der(aki.extn_value.as_bytes()).unwrap();
            assert_eq!(aki.key_identifier.unwrap().as_bytes(), g.key_id.as_slice());
            // The IDP is critical and carries the right OID (x509-cert's AssociatedOid is wrong).
            let idp = crl
                .tbs_cert_list
                .crl_extensions
                .as_ref()
                .unwrap()
                .iter()
                .find(|e| e.extn_id.to_string() == "2.5.29.28")
                .unwrap();
            assert!(idp.critical);
        }
        let d = w.dir.path();
        for (code, kind, revoked) in [
            (&movers, CertKind::Signature, true),
            (&movers, CertKind::Authentication, false),
            (&dies, CertKind::Authentication, true),
            (&renamed, CertKind::Authentication, false),
            (&recoded, CertKind::Signature, false),
            (&recoded, CertKind::Authentication, true),
        ] {
            let c = issued[code].get(kind).unwrap();
            let (root, int) = if kind == CertKind::Signature { (&sign_root, &sign_ca) } else { (&auth_root, &auth_ca) };
            let (ok, out) = openssl_verify(
                d,
                &root.certificate,
                &int.certificate,
                &c.der,
                &[&crl_of(&c.ca, c.shard), &crl_of(&root.ca.slug(), -1)],
            );
            if revoked {
                assert!(!ok && out.contains("certificate revoked"), "{kind:?} should be revoked: {out}");
            } else {
                assert!(ok, "{kind:?} should be good: {out}");
            }
        }
        // The audit trail is append-only at the database.
        assert!(sqlx::query("UPDATE ca_audit SET detail = 'x'").execute(w.ca.db().pool()).await.is_err());
        assert!(sqlx::query("DELETE FROM ca_revocation").execute(w.ca.db().pool()).await.is_err());
        ca::audit::read_and_verify(w.ca.db(), 10).await.unwrap();
    }
}

#[tokio::test]
async fn recovery_resolves_every_state_a_crash_can_leave() {
    for db in identity::store::testing::all().await.unwrap() {
        let w = World::new(&db, KeyAlgorithm::Rsa2048).await;
        let code = w.register("中村　八子", "1988-08-08").await;
        let (_, a) = subject(KeyAlgorithm::Rsa2048);
        let issued = w.ca.issue("w", &request(&code, None, Some(&a)), &w.source, NOW).await.unwrap();
        let good = &issued.certificates[0];
        // What a crash after "reserve" and after "store TBS" leaves behind (the rows the
        // pipeline writes at those steps; `JPKI_CA_CRASH_AFTER` produces the same in a process).
        let reserved = "41000000000000000000000000000001";
        let stored = "41000000000000000000000000000002";
        for (serial, st, tbs) in [(reserved, 1i64, None), (stored, 2, Some(vec![0x30u8, 0x00]))] {
            sqlx::query("INSERT INTO ca_certificate (serial, issuer_slug, issuer_generation, kind, state, shard, tbs, created_at) VALUES ($1, 'auth-13', 1, 2, $2, 1, $3, $4)")
                .bind(serial)
                .bind(st)
                .bind(tbs)
                .bind(NOW)
                .execute(w.ca.db().pool())
                .await
                .unwrap();
        }
        assert_eq!(w.ca.recover("system:recovery", NOW + 5).await.unwrap(), (1, 1), "{}", w.label);
        assert_eq!(w.ca.recover("system:recovery", NOW + 6).await.unwrap(), (0, 0), "recovery is idempotent");
        let r = w.ca.show(reserved).await.unwrap();
        assert_eq!(r.state, ca::authority::state::ABANDONED);
        assert!(r.revoked.is_none(), "no certificate can exist for a serial without a TBS");
        assert_eq!(w.ca.revoke("op", reserved, Reason::KeyCompromise, "x", NOW).await.unwrap_err().kind(), "conflict");
        let s = w.ca.show(stored).await.unwrap();
        assert_eq!(s.state, ca::authority::state::VOID);
        assert_eq!(
            s.revoked.as_ref().map(|r| r.1),
            Some(Reason::Unspecified),
            "a stored TBS may have been signed: revoked"
        );
        assert!(w.ca.show(&good.serial).await.unwrap().revoked.is_none(), "completed issuances are untouched");
        // The voided serial is on its shard's CRL.
        let out = w.path("pub");
        let published = w.ca.publish_crls("op", &out, NOW + 10, &|_, _| {}).await.unwrap();
        let shard1 = published.iter().find(|p| p.ca == "auth-13" && p.shard == 1).unwrap();
        assert!(shard1.entries >= 1);
        let trail = ca::audit::read_and_verify(w.ca.db(), 1000).await.unwrap();
        assert!(trail.iter().any(|r| r.action == "recover"));
    }
}

/// Migration 0005 numbers the revocations that existed before it in insertion order (not by
/// serial, not by revoked_at), sets the counter to their count, and the next revocation
/// continues the sequence.
#[tokio::test]
async fn existing_revocations_are_numbered_in_insertion_order() {
    use sqlx::Row;
    for db in identity::store::testing::all().await.unwrap() {
        sqlx::any::install_default_drivers();
        // The CA's own migrations (ca/migrations), as `ca::schema` embeds them.
        let dir = format!("{}/migrations/{}", env!("CARGO_MANIFEST_DIR"), db.label);
        let migrator = sqlx::migrate::Migrator::new(std::path::Path::new(&dir)).await.unwrap();
        let url = if db.label == "sqlite" { format!("{}?mode=rwc", db.url) } else { db.url.clone() };
        let pool = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&url).await.unwrap();
        migrator.run_to(4, &pool).await.unwrap();
        for q in [
            "INSERT INTO ca_authority VALUES ('auth-13', 2, 1, '13', 0)",
            "INSERT INTO ca_generation (slug, generation, key_ref, algorithm, certificate, key_id, not_after, shards, created_at) VALUES ('auth-13', 1, 'k', 1, X'00', X'01', 0, 1, 0)",
        ] {
            let q = if db.label == "postgres" {
                q.replace("X'00'", "'\\x00'").replace("X'01'", "'\\x01'")
            } else {
                q.to_owned()
            };
            sqlx::raw_sql(sqlx::AssertSqlSafe(q)).execute(&pool).await.unwrap();
        }
        // Inserted c, a, b with revoked_at falling: the sequence follows insertion.
        for (serial, at) in [("0c", 300_i64), ("0a", 200), ("0b", 100)] {
            sqlx::query("INSERT INTO ca_certificate (serial, issuer_slug, issuer_generation, kind, state, shard, created_at) VALUES ($1, 'auth-13', 1, 2, 3, 0, 0)")
                .bind(serial).execute(&pool).await.unwrap();
            sqlx::query("INSERT INTO ca_revocation (serial, serial_bytes, issuer_slug, issuer_generation, shard, revoked_at, reason, cause) VALUES ($1, $2, 'auth-13', 1, 0, $3, 1, 'old')")
                .bind(serial).bind(hex::decode(serial).unwrap()).bind(at).execute(&pool).await.unwrap();
        }
        migrator.run(&pool).await.unwrap();
        let rows = sqlx::query("SELECT serial, seq FROM ca_revocation ORDER BY seq").fetch_all(&pool).await.unwrap();
        let got: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert_eq!(got, [("0c".into(), 1), ("0a".into(), 2), ("0b".into(), 3)], "{}", db.label);
        // Still immutable.
        assert!(sqlx::query("UPDATE ca_revocation SET seq = 9").execute(&pool).await.is_err(), "{}", db.label);
        sqlx::query("INSERT INTO ca_certificate (serial, issuer_slug, issuer_generation, kind, state, shard, created_at) VALUES ('0d', 'auth-13', 1, 2, 3, 0, 0)")
            .execute(&pool).await.unwrap();
        let mut tx = pool.begin().await.unwrap();
        assert!(
            ca::authority::insert_revocation(&mut tx, "0d", "auth-13".into(), 1, 0, 50, Reason::Unspecified, "new")
                .await
                .unwrap()
        );
        tx.commit().await.unwrap();
        let r = ca::status::StatusReader::open(&db.url).await.unwrap();
        assert_eq!(r.head().await.unwrap(), 4);
        let after: Vec<(i64, String)> =
            r.revocations_after(2, 10).await.unwrap().into_iter().map(|r| (r.seq, r.serial)).collect();
        assert_eq!(after, [(3, "0b".into()), (4, "0d".into())], "{}", db.label);
        pool.close().await;
    }
}

/// A batch larger than one step of `Authority::run`'s pipeline (64, then 256 at a time): every
/// certificate comes back in plan order, signed over the TBS stored for it, and is recorded as
/// issued; the serials are reserved in one commit and each step's TBS and certificates in
/// their own audited commits. A batch reusing a serial is refused before anything is stored.
#[tokio::test]
async fn a_batch_of_several_pipeline_steps_issues_every_certificate_in_order() {
    use ca::authority::{AnyProfile, Plan, new_serial, shard_of, state};
    use ca::profile::{AuthenticationCert, StatusUrls};
    use std::sync::Arc;
    for db in identity::store::testing::all().await.unwrap() {
        let w = World::new(&db, KeyAlgorithm::Rsa2048).await;
        let g =
            Arc::new(w.ca.issuing("op-1", Purpose::Authentication, Environment::Production, "13", NOW).await.unwrap());
        let (key, _) = subject(KeyAlgorithm::Rsa2048);
        let spki = ca::key::KeyBackend::public_key_der(&key).to_vec();
        let t = time::OffsetDateTime::from_unix_timestamp(NOW).unwrap();
        let plan = |i: usize| {
            let serial = new_serial();
            let shard = shard_of(&serial, g.shards);
            Plan {
                kind: CertKind::Authentication,
                issuer: g.clone(),
                shard,
                spki: spki.clone(),
                not_before: t,
                not_after: t + time::Duration::days(30),
                resident_code: None,
                issuance_id: Some(format!("BATCH{i:05}")),
                request_id: None,
                feed_position: 0,
                supersedes: Vec::new(),
                profile: AnyProfile::Authentication(AuthenticationCert {
                    issuer: g.cert().unwrap().tbs_certificate().subject().clone(),
                    subject: AuthenticationCert::subject_name(&format!("BATCH{i:05}")).unwrap(),
                    policy: g.ca.policy(),
                    urls: StatusUrls {
                        crl: "http://127.0.0.1/crl/auth-13/g1/0.crl".into(),
                        ocsp: "http://127.0.0.1/ocsp".into(),
                        ca_issuers: None,
                    },
                }),
                serial,
            }
        };
        let plans: Vec<Plan> = (0..300).map(plan).collect();
        let serials: Vec<String> = plans.iter().map(|p| hex::encode(&p.serial)).collect();
        let issued = w.ca.run("op-1", plans, NOW).await.unwrap();
        assert_eq!(issued.iter().map(|c| c.serial.clone()).collect::<Vec<_>>(), serials, "{}", w.label);
        for c in &issued {
            let cert = Certificate::from_der(&c.der).unwrap();
            assert_eq!(hex::encode(cert.tbs_certificate().serial_number().as_bytes()), c.serial);
            let tbs: Vec<u8> = sqlx::query_scalar("SELECT tbs FROM ca_certificate WHERE serial = $1")
                .bind(c.serial.clone())
                .fetch_one(w.ca.db().pool())
                .await
                .unwrap();
            assert_eq!(cert.tbs_certificate().to_der().unwrap(), tbs, "signed over the stored TBS");
            let r = w.ca.show(&c.serial).await.unwrap();
            assert_eq!((r.state, r.der.as_deref()), (state::ISSUED, Some(c.der.as_slice())));
        }
        let d = w.dir.path();
        let root = w.ca.current(&CaId::root(Purpose::Authentication, Environment::Production), NOW).await.unwrap();
        for c in [&issued[0], &issued[63], &issued[64], &issued[299]] {
            let (ok, out) = openssl_verify(d, &root.certificate, &g.certificate, &c.der, &[]);
            assert!(ok, "{out}");
        }
        let trail = ca::audit::read_and_verify(w.ca.db(), 1000).await.unwrap();
        let rows = |action: &str| {
            trail.iter().filter(|r| r.action == action && serials.iter().any(|s| r.detail.contains(s.as_str()))).count()
        };
        assert_eq!((rows("reserve"), rows("tbs_stored"), rows("issued")), (1, 2, 2), "one reservation, two steps");
        assert!(trail.iter().any(|r| r.action == "reserve" && r.detail.split(',').count() == 300));
        // A batch reusing a serial: refused, and none of it is stored.
        let mut again: Vec<Plan> = (0..100).map(plan).collect();
        again[70].serial = hex::decode(&serials[5]).unwrap();
        let fresh = hex::encode(&again[0].serial);
        assert_eq!(w.ca.run("op-1", again, NOW).await.unwrap_err().kind(), "conflict");
        assert!(w.ca.show(&fresh).await.is_err(), "nothing of a refused batch is reserved");
    }
}

/// An ML-DSA-65 hierarchy (issue 11): roots and issuing CAs sign with ML-DSA-65 (RFC 9881 §2:
/// id-ml-dsa-65, parameters absent), card keys stay P-384 (an ML-DSA card key is refused),
/// a delegated responder may have an ML-DSA key, and CRLs and ARLs are ML-DSA-signed. Every
/// signature is checked against the key of the generation that made it.
#[tokio::test]
async fn an_ml_dsa_65_generation_signs_certificates_responders_and_crls() {
    let db = identity::store::testing::sqlite().unwrap();
    let w = World::new(&db, KeyAlgorithm::MlDsa65).await;
    let ml_dsa_65 = [0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x12];
    let signed_by = |der: &[u8], issuer_der: &[u8]| {
        let c = Certificate::from_der(der).unwrap();
        let issuer = Certificate::from_der(issuer_der).unwrap();
        assert_eq!(c.signature_algorithm().to_der().unwrap(), ml_dsa_65, "AlgorithmIdentifier without parameters");
        let sig = c.signature().as_bytes().unwrap();
        assert_eq!(sig.len(), ca::mldsa::SIGNATURE_LEN);
        let spki = issuer.tbs_certificate().subject_public_key_info().to_der().unwrap();
        assert!(ca::key::verify(&spki, &c.tbs_certificate().to_der().unwrap(), sig).unwrap());
        let mut bad = sig.to_vec();
        bad[7] ^= 0x80;
        assert!(!ca::key::verify(&spki, &c.tbs_certificate().to_der().unwrap(), &bad).unwrap());
    };
    let code = w.register("山田　花子", "1980-02-17").await;
    // Card keys are P-384 under an ML-DSA hierarchy; an ML-DSA "card" key is refused.
    let mldsa_card = ca::key::SoftKey::ephemeral(KeyAlgorithm::MlDsa65).unwrap();
    let mldsa_csr = ca::key::csr(&mldsa_card, "CN=card,C=JP".parse().unwrap()).unwrap();
    let e = w.ca.issue("window-1", &request(&code, Some(&mldsa_csr), None), &w.source, NOW).await.unwrap_err();
    assert_eq!(e.kind(), "bad_key", "{e}");
    let (_, scsr) = subject(KeyAlgorithm::EcP384);
    let (_, acsr) = subject(KeyAlgorithm::EcP384);
    let issued = w.ca.issue("window-1", &request(&code, Some(&scsr), Some(&acsr)), &w.source, NOW).await.unwrap();
    let sign_ca =
        w.ca.current(&CaId::issuing(Purpose::Signature, Environment::Production, "13").unwrap(), NOW).await.unwrap();
    let sign_root = w.ca.current(&CaId::root(Purpose::Signature, Environment::Production), NOW).await.unwrap();
    assert_eq!((sign_root.algorithm, sign_ca.algorithm), (KeyAlgorithm::MlDsa65, KeyAlgorithm::MlDsa65));
    signed_by(&sign_root.certificate, &sign_root.certificate);
    signed_by(&sign_ca.certificate, &sign_root.certificate);
    let sig = issued.get(CertKind::Signature).unwrap();
    signed_by(&sig.der, &sign_ca.certificate);
    let leaf = Certificate::from_der(&sig.der).unwrap();
    let leaf_key = leaf.tbs_certificate().subject_public_key_info().to_der().unwrap();
    assert_eq!(KeyAlgorithm::of_spki(&leaf_key).unwrap(), KeyAlgorithm::EcP384);
    // A delegated responder with an ML-DSA-65 key, certified by the ML-DSA issuing CA.
    let responder = ca::key::SoftKey::ephemeral(KeyAlgorithm::MlDsa65).unwrap();
    let spki = ca::key::KeyBackend::public_key_der(&responder);
    let r = w.ca.issue_responder("op-1", &sign_ca.ca, None, spki, 30, NOW).await.unwrap();
    signed_by(&r.der, &sign_ca.certificate);
    // CRLs and ARLs: ML-DSA-signed by the generation they belong to.
    w.ca.revoke("op-1", &sig.serial, Reason::KeyCompromise, "test", NOW + 1).await.unwrap();
    let published = w.ca.publish_crls("op-1", &w.path("pub"), NOW + 2, &|_, _| {}).await.unwrap();
    assert_eq!(published.len(), 2 + 2 * 4);
    for p in &published {
        let der = std::fs::read(&p.path).unwrap();
        let crl = CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&der).unwrap();
        assert_eq!(crl.signature_algorithm.to_der().unwrap(), ml_dsa_65);
        let g = w.ca.generation_of(&p.ca, p.generation).await.unwrap();
        let spki = g.cert().unwrap().tbs_certificate().subject_public_key_info().to_der().unwrap();
        let tbs = crl.tbs_cert_list.to_der().unwrap();
        assert!(ca::key::verify(&spki, &tbs, crl.signature.as_bytes().unwrap()).unwrap(), "{}", p.path.display());
    }
}
