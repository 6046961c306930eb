//! The network CA (`ca::network`) on a temporary directory, every artefact checked by
//! independent tools: `openssl verify` (server and client purposes, CRL checking),
//! `openssl x509`/`crl`/`pkey`, and rustls/webpki as a TLS server and client would verify.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use ca::crl::Reason;
use ca::network::{CredentialKind, NetworkCa, parse_party};
use der::Decode;
use identity::ids::LgCode;
use net::secret::Secret;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use x509_cert::Certificate;

const CA_PASS: &str = "network CA passphrase";
const KEY_PASS: &str = "credential passphrase";
/// The real clock: `openssl verify` checks validity against it.
fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn secret(s: &str) -> Secret {
    Secret::new(s.as_bytes().to_vec())
}

fn openssl(args: &[&str]) -> Output {
    Command::new("openssl").args(args).output().expect("openssl is installed")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

fn pem_certs(path: &Path) -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(path).unwrap();
    text.split_inclusive("-----END CERTIFICATE-----\n")
        .filter(|b| b.contains("BEGIN"))
        .map(|b| der::pem::decode_vec(b.as_bytes()).unwrap().1)
        .collect()
}

/// ring's provider: only its signature verification algorithms are used here (its missing
/// post-quantum key exchange, the reason for the deprecation, does not matter to path checks).
#[allow(deprecated, reason = "signature verification only")]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn pem_der(path: &Path) -> Vec<u8> {
    der::pem::decode_vec(&std::fs::read(path).unwrap()).unwrap().1
}

#[test]
fn a_municipality_credential_is_accepted_by_openssl_and_webpki() {
    let dir = tempfile::tempdir().unwrap();
    let cadir = dir.path().join("netca");
    let ca = NetworkCa::init(&cadir, &secret(CA_PASS), now()).unwrap();
    for f in ["ca.pem", "ca.key", "index.json", "crl.pem"] {
        assert!(cadir.join(f).exists(), "{f}");
    }
    // The root: P-384, CA:TRUE pathlen 0, keyCertSign + cRLSign, critical.
    let root = text(&openssl(&["x509", "-noout", "-text", "-in", &p(&cadir.join("ca.pem"))]));
    assert!(root.contains("Subject: C = JP, O = JPKI Network, CN = JPKI Network CA"), "{root}");
    assert!(root.contains("NIST CURVE: P-384") && root.contains("ecdsa-with-SHA384"), "{root}");
    assert!(root.contains("Basic Constraints: critical\n                CA:TRUE, pathlen:0"), "{root}");
    assert!(root.contains("Key Usage: critical\n                Certificate Sign, CRL Sign"), "{root}");

    let party = parse_party("municipality:131016").unwrap();
    let out = dir.path().join("m131016");
    let issued = ca
        .issue_tls(&party, &["127.0.0.1".into(), "m131016.example".into()], 30, now(), &out, &secret(KEY_PASS))
        .unwrap();
    assert_eq!(issued.chain, dir.path().join("m131016.pem"));
    assert_eq!(pem_certs(&issued.chain).len(), 2, "leaf then CA");
    assert_eq!(pem_certs(&issued.chain)[1], ca.certificate_der());
    let (chain, ca_pem) = (p(&issued.chain), p(&cadir.join("ca.pem")));
    for purpose in ["sslserver", "sslclient"] {
        let o = openssl(&["verify", "-purpose", purpose, "-x509_strict", "-CAfile", &ca_pem, &chain]);
        assert!(o.status.success() && text(&o).contains(": OK"), "{purpose}: {}", text(&o));
    }
    let san = text(&openssl(&["x509", "-noout", "-ext", "subjectAltName", "-in", &chain]));
    assert!(san.contains("URI:urn:jpki:municipality:131016"), "{san}");
    assert!(san.contains("IP Address:127.0.0.1") && san.contains("DNS:m131016.example"), "{san}");
    let leaf = text(&openssl(&["x509", "-noout", "-text", "-in", &chain]));
    assert!(leaf.contains("Subject: C = JP, O = JPKI Network, CN = municipality:131016"), "{leaf}");
    assert!(leaf.contains("Key Usage: critical\n                Digital Signature\n"), "{leaf}");
    assert!(leaf.contains("TLS Web Server Authentication, TLS Web Client Authentication"), "{leaf}");
    assert!(leaf.contains("CA:FALSE") && leaf.contains("Authority Key Identifier"), "{leaf}");
    let cert = Certificate::from_der(&pem_certs(&issued.chain)[0]).unwrap();
    let serial = cert.tbs_certificate().serial_number().as_bytes();
    assert_eq!(serial.len(), 16);
    assert!(serial[0] & 0x80 == 0, "positive");
    assert_eq!(hex::encode(serial), issued.serial);
    // notBefore is five minutes back.
    let nb = cert.tbs_certificate().validity().not_before.to_unix_duration().as_secs() as i64;
    assert!((now() - nb - 300).abs() < 60, "{nb}");

    // The key: 0600, scrypt, opens only with its passphrase, and is the certificate's.
    use std::os::unix::fs::PermissionsExt;
    let key_file = issued.key.clone().unwrap();
    assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(net::keyfile::load(&key_file, &secret("not the passphrase")).is_err());
    let pkcs8 = net::keyfile::load(&key_file, &secret(KEY_PASS)).unwrap();
    let pkey = openssl::pkey::PKey::private_key_from_pkcs8(&pkcs8).unwrap();
    assert_eq!(
        pkey.public_key_to_der().unwrap(),
        der::Encode::to_der(cert.tbs_certificate().subject_public_key_info()).unwrap()
    );
    // openssl 3.0 cannot open the file itself: its scrypt limit (32 MiB) is just below what
    // N = 2^15, r = 8 needs ("memory limit exceeded"). So our code decrypts, and openssl
    // checks the decrypted key against the certificate's public key.
    let plain = dir.path().join("plain.pem");
    std::fs::write(&plain, der::pem::encode_string("PRIVATE KEY", der::pem::LineEnding::LF, &pkcs8).unwrap()).unwrap();
    let key_pub = openssl(&["pkey", "-in", &p(&plain), "-pubout"]);
    let cert_pub = openssl(&["x509", "-noout", "-pubkey", "-in", &chain]);
    assert!(key_pub.status.success(), "{}", text(&key_pub));
    assert_eq!(key_pub.stdout, cert_pub.stdout, "the key file holds the certificate's key");
    std::fs::remove_file(&plain).unwrap();
    let o = openssl(&["pkey", "-in", &p(&key_file), "-passin", "pass:wrong passphrase", "-noout"]);
    assert!(!o.status.success());

    // rustls/webpki: as a server (for 127.0.0.1 and the DNS name) and as a client.
    let provider = provider();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ca.certificate_der().to_vec())).unwrap();
    let roots = Arc::new(roots);
    let leaf_der = CertificateDer::from(pem_certs(&issued.chain)[0].clone());
    let at = UnixTime::since_unix_epoch(Duration::from_secs(now() as u64));
    let sv = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone()).build().unwrap();
    for host in ["127.0.0.1", "m131016.example"] {
        sv.verify_server_cert(&leaf_der, &[], &ServerName::try_from(host).unwrap(), &[], at)
            .unwrap_or_else(|e| panic!("{host}: {e}"));
    }
    assert!(sv.verify_server_cert(&leaf_der, &[], &ServerName::try_from("10.0.0.1").unwrap(), &[], at).is_err());
    let crl = CertificateRevocationListDer::from(pem_der(&cadir.join("crl.pem")));
    let cv = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .with_crls(vec![crl])
        .build()
        .unwrap();
    cv.verify_client_cert(&leaf_der, &[], at).unwrap();

    // The index lists it; a reopened CA sees the same.
    let again = NetworkCa::open(&cadir, &secret(CA_PASS)).unwrap();
    let list = again.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].serial, issued.serial);
    assert_eq!(list[0].party.uri(), "urn:jpki:municipality:131016");
    assert_eq!(list[0].kind, CredentialKind::Tls);
    assert_eq!(list[0].ski, issued.ski);
    // Never overwrite a credential.
    let e = ca.issue_tls(&party, &[], 30, now(), &out, &secret(KEY_PASS)).unwrap_err();
    assert_eq!(e.kind(), "conflict", "{e}");
}

#[test]
fn revoked_credentials_are_on_the_crl_and_crl_numbers_increase() {
    let dir = tempfile::tempdir().unwrap();
    let cadir = dir.path().join("netca");
    let ca = NetworkCa::init(&cadir, &secret(CA_PASS), now()).unwrap();
    assert_eq!(ca.crl_number().unwrap(), 1, "init writes the first CRL");
    let bad = ca
        .issue_tls(
            &parse_party("prefecture:13").unwrap(),
            &["127.0.0.1".into()],
            30,
            now(),
            &dir.path().join("bad"),
            &secret(KEY_PASS),
        )
        .unwrap();
    let good = ca
        .issue_tls(
            &parse_party("national").unwrap(),
            &["::1".into()],
            30,
            now(),
            &dir.path().join("good"),
            &secret(KEY_PASS),
        )
        .unwrap();
    // Serial given as openssl prints it (upper case with colons).
    let colons: Vec<String> = hex::decode(&bad.serial).unwrap().iter().map(|b| format!("{b:02X}")).collect();
    let e = ca.revoke(&colons.join(":"), Reason::KeyCompromise, now()).unwrap();
    assert!(e.revoked_at.is_some());
    assert_eq!(e.reason.as_deref(), Some("key-compromise"));
    assert_eq!(ca.revoke(&bad.serial, Reason::KeyCompromise, now()).unwrap_err().kind(), "conflict");
    assert_eq!(ca.revoke("0102", Reason::KeyCompromise, now()).unwrap_err().kind(), "not_found");
    assert_eq!(ca.revoke("xyz", Reason::KeyCompromise, now()).unwrap_err().kind(), "invalid");
    let crl = ca.crl(now(), 24).unwrap();
    assert_eq!(crl, cadir.join("crl.pem"));
    assert_eq!(ca.crl_number().unwrap(), 2);
    let (ca_pem, crl_pem) = (p(&cadir.join("ca.pem")), p(&crl));
    let o = openssl(&["verify", "-crl_check", "-CAfile", &ca_pem, "-CRLfile", &crl_pem, &p(&bad.chain)]);
    assert!(!o.status.success() && text(&o).contains("certificate revoked"), "{}", text(&o));
    let o = openssl(&["verify", "-crl_check", "-CAfile", &ca_pem, "-CRLfile", &crl_pem, &p(&good.chain)]);
    assert!(o.status.success() && text(&o).contains(": OK"), "{}", text(&o));
    let t = text(&openssl(&["crl", "-noout", "-text", "-in", &crl_pem]));
    assert!(t.contains("Issuer: C = JP, O = JPKI Network, CN = JPKI Network CA"), "{t}");
    assert!(t.contains("X509v3 CRL Number: \n                2"), "{t}");
    assert!(t.contains("Authority Key Identifier"), "{t}");
    assert!(t.contains(&format!("Serial Number: {}", bad.serial.to_uppercase())), "{t}");
    assert!(t.contains("Key Compromise"), "{t}");
    assert!(!t.contains(&good.serial.to_uppercase()), "{t}");
    let o = openssl(&["crl", "-noout", "-CAfile", &ca_pem, "-in", &crl_pem]);
    assert!(text(&o).contains("verify OK"), "{}", text(&o));
    // Numbers keep increasing, also across a reopen.
    ca.crl(now(), 1).unwrap();
    let again = NetworkCa::open(&cadir, &secret(CA_PASS)).unwrap();
    again.crl(now(), 48).unwrap();
    assert_eq!(again.crl_number().unwrap(), 4);
    let t = text(&openssl(&["crl", "-noout", "-crlnumber", "-in", &crl_pem]));
    assert!(t.contains("crlNumber=0x04") || t.contains("crlNumber=04"), "{t}");

    // webpki refuses the revoked client and accepts the other one.
    let provider = provider();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ca.certificate_der().to_vec())).unwrap();
    let cv = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .with_crls(vec![CertificateRevocationListDer::from(pem_der(&crl))])
        .build()
        .unwrap();
    let at = UnixTime::since_unix_epoch(Duration::from_secs(now() as u64));
    let e = cv.verify_client_cert(&CertificateDer::from(pem_certs(&bad.chain)[0].clone()), &[], at).unwrap_err();
    assert!(e.to_string().to_lowercase().contains("revoked"), "{e}");
    cv.verify_client_cert(&CertificateDer::from(pem_certs(&good.chain)[0].clone()), &[], at).unwrap();
}

#[test]
fn a_notice_key_carries_only_the_uri_and_the_notice_signing_eku() {
    let dir = tempfile::tempdir().unwrap();
    let ca = NetworkCa::init(&dir.path().join("netca"), &secret(CA_PASS), now()).unwrap();
    let code: LgCode = "131016".parse().unwrap();
    let issued = ca.issue_notice_key(&code, 365, now(), &dir.path().join("notice"), &secret(KEY_PASS)).unwrap();
    let chain = p(&issued.chain);
    let t = text(&openssl(&["x509", "-noout", "-text", "-in", &chain]));
    assert!(t.contains("Extended Key Usage: \n                1.2.392.200149.8.5.99.1\n"), "{t}");
    assert!(t.contains("Subject Alternative Name: \n                URI:urn:jpki:municipality:131016\n"), "{t}");
    assert!(!t.contains("TLS Web"), "{t}");
    let cert = Certificate::from_der(&pem_certs(&issued.chain)[0]).unwrap();
    let eku = cert.tbs_certificate().get_extension::<x509_cert::ext::pkix::ExtendedKeyUsage>().unwrap().unwrap().1;
    assert_eq!(eku.0, vec![ca::hierarchy::NOTICE_SIGNING]);
    let san = cert.tbs_certificate().get_extension::<x509_cert::ext::pkix::SubjectAltName>().unwrap().unwrap().1;
    assert_eq!(san.0.len(), 1);
    // It is no TLS credential: openssl refuses it for both TLS purposes.
    for purpose in ["sslserver", "sslclient"] {
        let o = openssl(&["verify", "-purpose", purpose, "-CAfile", &p(&dir.path().join("netca/ca.pem")), &chain]);
        assert!(!o.status.success(), "{purpose}: {}", text(&o));
    }
    let list = ca.list().unwrap();
    assert_eq!(list[0].kind, CredentialKind::NoticeKey);
    let json = std::fs::read_to_string(dir.path().join("netca/index.json")).unwrap();
    assert!(
        json.contains("\"kind\": \"notice-key\"") && json.contains("\"party\": \"urn:jpki:municipality:131016\""),
        "{json}"
    );
}

#[test]
fn hostile_and_corrupt_input_is_refused_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let cadir = dir.path().join("netca");
    let ca = NetworkCa::init(&cadir, &secret(CA_PASS), now()).unwrap();
    // A wrong CA passphrase.
    let e = NetworkCa::open(&cadir, &secret("not the CA passphrase")).unwrap_err();
    assert_eq!(e.kind(), "key", "{e}");
    assert!(e.to_string().contains("wrong passphrase"), "{e}");
    // A short passphrase, for the CA and for a credential.
    let e = NetworkCa::init(&dir.path().join("other"), &secret("short"), now()).unwrap_err();
    assert_eq!(e.kind(), "invalid", "{e}");
    assert!(!e.to_string().contains("short"), "the secret is not echoed: {e}");
    let party = parse_party("validator:v1").unwrap();
    let e = ca.issue_tls(&party, &[], 30, now(), &dir.path().join("v1"), &secret("short")).unwrap_err();
    assert_eq!(e.kind(), "invalid", "{e}");
    // init never overwrites a CA.
    let before = std::fs::read(cadir.join("ca.pem")).unwrap();
    let e = NetworkCa::init(&cadir, &secret(CA_PASS), now()).unwrap_err();
    assert_eq!(e.kind(), "conflict", "{e}");
    assert_eq!(std::fs::read(cadir.join("ca.pem")).unwrap(), before);
    // Not a party; not a host; silly lifetimes.
    for bad in ["municipality:131017", "king:me", "", "urn:jpki:national:x"] {
        let e = parse_party(bad).unwrap_err();
        assert_eq!(e.kind(), "invalid", "{bad}: {e}");
    }
    let e =
        ca.issue_tls(&party, &["bad host".into()], 30, now(), &dir.path().join("v1"), &secret(KEY_PASS)).unwrap_err();
    assert_eq!(e.kind(), "invalid", "{e}");
    for days in [0, -1, 10_000] {
        let e = ca.issue_tls(&party, &[], days, now(), &dir.path().join("v1"), &secret(KEY_PASS)).unwrap_err();
        assert_eq!(e.kind(), "invalid", "{days}: {e}");
    }
    assert!(!dir.path().join("v1.pem").exists() && !dir.path().join("v1.key").exists());
    assert!(ca.list().unwrap().is_empty(), "nothing issued");
    // A corrupt index: a clear error and nothing written.
    std::fs::write(cadir.join("index.json"), b"{\"version\": 1, \"crl_number\": 3, \"certif").unwrap();
    let crl_before = std::fs::read(cadir.join("crl.pem")).unwrap();
    let e = ca.issue_tls(&party, &[], 30, now(), &dir.path().join("v1"), &secret(KEY_PASS)).unwrap_err();
    assert_eq!(e.kind(), "corrupt", "{e}");
    assert!(e.to_string().contains("index.json"), "{e}");
    assert!(!dir.path().join("v1.pem").exists() && !dir.path().join("v1.key").exists());
    assert_eq!(ca.crl(now(), 24).unwrap_err().kind(), "corrupt");
    assert_eq!(ca.revoke("01", Reason::KeyCompromise, now()).unwrap_err().kind(), "corrupt");
    assert_eq!(std::fs::read(cadir.join("crl.pem")).unwrap(), crl_before);
    assert_eq!(
        std::fs::read(cadir.join("index.json")).unwrap(),
        b"{\"version\": 1, \"crl_number\": 3, \"certif",
        "the corrupt index is left for the operator"
    );
    assert_eq!(NetworkCa::open(&cadir, &secret(CA_PASS)).unwrap_err().kind(), "corrupt");
    // A CA key that is not the certificate's key.
    let fresh = dir.path().join("fresh");
    NetworkCa::init(&fresh, &secret(CA_PASS), now()).unwrap();
    std::fs::copy(cadir.join("ca.key"), fresh.join("ca.key")).unwrap();
    assert_eq!(NetworkCa::open(&fresh, &secret(CA_PASS)).unwrap_err().kind(), "corrupt");
    // No CA at all.
    assert_eq!(NetworkCa::open(&dir.path().join("nothing"), &secret(CA_PASS)).unwrap_err().kind(), "not_found");
}

/// The real notice keys end to end: a notice key issued by the network CA signs a notice's
/// message (net::notice_key::Signer, ring) and a replica's verifier (rustls-webpki) admits the
/// certificate and checks the signature; it refuses a tampered signature, another
/// municipality's key, a TLS credential (wrong EKU), a key of another CA, and — after the
/// network CA revokes it and publishes its CRL — the revoked key.
#[test]
fn notice_keys_sign_and_verify_and_bad_or_revoked_keys_are_not_admitted() {
    use identity::notice::{GENESIS, NoticeRef};
    use identity::notice_sig::{NoticeSigner, NoticeVerifier, signed_message};
    use net::credential::Trust;
    use net::notice_key::{Signer, Verifier};

    let dir = tempfile::tempdir().unwrap();
    let ca = NetworkCa::init(&dir.path().join("net"), &secret(CA_PASS), now()).unwrap();
    let chiyoda: LgCode = "131016".parse().unwrap();
    let osaka: LgCode = "271004".parse().unwrap();
    let k1 = ca.issue_notice_key(&chiyoda, 30, now(), &dir.path().join("k1"), &secret(KEY_PASS)).unwrap();
    let k2 = ca.issue_notice_key(&osaka, 30, now(), &dir.path().join("k2"), &secret(KEY_PASS)).unwrap();
    let tls = ca
        .issue_tls(
            &parse_party("municipality:131016").unwrap(),
            &["127.0.0.1".into()],
            30,
            now(),
            &dir.path().join("t"),
            &secret(KEY_PASS),
        )
        .unwrap();
    let _ = (k2, tls);
    let trust = Trust { ca_file: dir.path().join("net/ca.pem"), crl_file: Some(dir.path().join("net/crl.pem")) };

    let signer = Signer::load(&dir.path().join("k1"), &secret(KEY_PASS), &chiyoda).unwrap();
    assert_eq!(signer.key_id(), k1.ski, "the key id is the certificate's SKI");
    // A notice key loaded for another municipality is refused at load.
    assert!(Signer::load(&dir.path().join("k1"), &secret(KEY_PASS), &osaka).is_err());
    let msg = signed_message(&NoticeRef { source: chiyoda.clone(), seq: 1 }, &GENESIS);
    let sig = signer.sign(&msg).unwrap();

    let v = Verifier::new(trust.clone());
    let id = v.admit_key(&chiyoda, signer.key_cert()).unwrap();
    assert_eq!(id, k1.ski);
    v.verify(&chiyoda, &id, &msg, &sig).unwrap();
    let mut bad = sig.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(v.verify(&chiyoda, &id, &msg, &bad).is_err(), "a flipped signature byte verifies");
    let other_msg = signed_message(&NoticeRef { source: chiyoda.clone(), seq: 2 }, &GENESIS);
    assert!(v.verify(&chiyoda, &id, &other_msg, &sig).is_err(), "a signature moved to seq 2 verifies");
    // Osaka's key is not Chiyoda's; a TLS credential is not a notice key.
    let osaka_cert = pem_certs(&dir.path().join("k2.pem")).remove(0);
    let e = v.admit_key(&chiyoda, &osaka_cert).unwrap_err();
    assert!(e.contains("not municipality 131016"), "{e}");
    let tls_cert = pem_certs(&dir.path().join("t.pem")).remove(0);
    let e = v.admit_key(&chiyoda, &tls_cert).unwrap_err();
    assert!(e.contains("not a notice key of the network CA"), "{e}");
    // A notice key from another network CA.
    let rogue = NetworkCa::init(&dir.path().join("rogue"), &secret(CA_PASS), now()).unwrap();
    rogue.issue_notice_key(&chiyoda, 30, now(), &dir.path().join("r"), &secret(KEY_PASS)).unwrap();
    let rogue_cert = pem_certs(&dir.path().join("r.pem")).remove(0);
    assert!(v.admit_key(&chiyoda, &rogue_cert).is_err(), "a rogue CA's notice key was admitted");
    // Revoked: a verifier reading the new CRL refuses to admit the key.
    ca.revoke(&k1.serial, Reason::KeyCompromise, now()).unwrap();
    ca.crl(now(), 24).unwrap();
    let fresh = Verifier::new(trust);
    let e = fresh.admit_key(&chiyoda, signer.key_cert()).unwrap_err();
    assert!(e.to_lowercase().contains("revoked"), "{e}");
}
