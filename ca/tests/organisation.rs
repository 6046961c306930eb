//! The organisation CA for local governments (the third hierarchy, `ca::network` with
//! `FileCaKind::Organisation`) on a temporary directory: its root, a municipality's
//! document-signing certificate (generated or PKCS#11-style given key) and its CRL, each checked
//! by pkilint (PKIX, ERROR level) and `openssl verify` (with and without revocation); and each
//! kind of file CA refuses the other's credentials and junk, leaving nothing behind.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use std::process::Command;

use ca::crl::Reason;
use ca::key::{KeyAlgorithm, KeyBackend, SoftKey};
use ca::network::{CredentialKind, FileCaKind, NetworkCa, SubjectKey};
use common::{pkilint_cert, pkilint_crl, run, write_pem};
use identity::ids::LgCode;
use net::secret::Secret;

const CA_PASS: &str = "organisation CA passphrase";
const KEY_PASS: &str = "document key passphrase";
const CRL_URL: &str = "http://127.0.0.1:8080/org/crl.der";

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn secret(s: &str) -> Secret {
    Secret::new(s.as_bytes().to_vec())
}

fn lg(code: &str) -> LgCode {
    code.parse().unwrap()
}

fn first_cert(path: &std::path::Path) -> Vec<u8> {
    let text = std::fs::read_to_string(path).unwrap();
    let first = text.split_inclusive("-----END CERTIFICATE-----\n").next().unwrap();
    der::pem::decode_vec(first.as_bytes()).unwrap().1
}

fn verify(dir: &std::path::Path, root: &[u8], leaf: &[u8], crl: Option<&std::path::Path>) -> (bool, String) {
    write_pem(&dir.join("root.pem"), "CERTIFICATE", &[root]);
    write_pem(&dir.join("leaf.pem"), "CERTIFICATE", &[leaf]);
    let mut c = Command::new("openssl");
    c.arg("verify").arg("-CAfile").arg(dir.join("root.pem"));
    if let Some(crl) = crl {
        c.arg("-crl_check").arg("-CRLfile").arg(crl);
    }
    c.arg(dir.join("leaf.pem"));
    run(&mut c)
}

#[test]
fn the_organisation_root_its_document_signers_and_crl_are_pkilint_clean_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("org");
    let ca = NetworkCa::init_kind(FileCaKind::Organisation, &ca_dir, &secret(CA_PASS), now()).unwrap();
    assert_eq!(ca.kind(), FileCaKind::Organisation);
    let reopened = NetworkCa::open(&ca_dir, &secret(CA_PASS)).unwrap();
    assert_eq!(reopened.kind(), FileCaKind::Organisation, "the kind is told by the root's name");

    let (ok, lint) = pkilint_cert(dir.path(), ca.certificate_der());
    assert!(ok, "root: {lint}");

    let out = dir.path().join("chiyoda");
    let issued = ca
        .issue_document_signer(
            &lg("131016"),
            "Chiyoda-ku",
            CRL_URL,
            365,
            now(),
            &out,
            SubjectKey::Generate(&secret(KEY_PASS)),
        )
        .unwrap();
    let leaf = first_cert(&issued.chain);
    let (ok, lint) = pkilint_cert(dir.path(), &leaf);
    assert!(ok, "document signer: {lint}");
    let (ok, text) = run(Command::new("openssl").args(["x509", "-noout", "-text", "-in"]).arg(&issued.chain));
    assert!(ok, "{text}");
    for want in [
        "Subject: C = JP, O = JPKI Local Governments, L = Tokyo-to, OU = 131016, CN = Chiyoda-ku",
        "Key Usage: critical\n                Digital Signature, Non Repudiation",
        "1.3.6.1.5.5.7.3.36",
        "Policy: 1.2.392.200149.8.5.99.3.1",
        CRL_URL,
        "CA:FALSE",
    ] {
        assert!(text.contains(want), "{want:?} missing in\n{text}");
    }
    // The key file opens with its passphrase and is the certificate's key.
    let key = SoftKey::load(issued.key.as_deref().unwrap(), &secret(KEY_PASS)).unwrap();
    let cert = <x509_cert::Certificate as der::Decode>::from_der(&leaf).unwrap();
    assert_eq!(key.public_key_der(), der::Encode::to_der(cert.tbs_certificate().subject_public_key_info()).unwrap());

    // A key the municipality holds itself (a PKCS#11 token's): only the chain is written.
    let token_key = SoftKey::ephemeral(KeyAlgorithm::EcP384).unwrap();
    let out2 = dir.path().join("osaka");
    let given = ca
        .issue_document_signer(
            &lg("271004"),
            "Osaka-shi",
            CRL_URL,
            365,
            now(),
            &out2,
            SubjectKey::Given(token_key.public_key_der()),
        )
        .unwrap();
    assert!(given.key.is_none() && !dir.path().join("osaka.key").exists());
    let given_leaf = first_cert(&given.chain);
    let (ok, lint) = pkilint_cert(dir.path(), &given_leaf);
    assert!(ok, "given key: {lint}");

    // openssl: the chain verifies, with revocation against the CA's CRL; after revocation, not.
    let crl = ca.crl(now(), 24).unwrap();
    let crl_der = ca_dir.join("crl.der");
    assert_eq!(std::fs::read(&crl_der).unwrap(), der::pem::decode_vec(&std::fs::read(&crl).unwrap()).unwrap().1);
    let (ok, lint) = pkilint_crl(&crl_der, "CRL");
    assert!(ok, "CRL: {lint}");
    let (ok, out) = verify(dir.path(), ca.certificate_der(), &leaf, Some(&crl));
    assert!(ok, "{out}");
    ca.revoke(&issued.serial, Reason::KeyCompromise, now()).unwrap();
    let crl = ca.crl(now(), 24).unwrap();
    let (ok, out) = verify(dir.path(), ca.certificate_der(), &leaf, Some(&crl));
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    let (ok, out) = verify(dir.path(), ca.certificate_der(), &given_leaf, Some(&crl));
    assert!(ok, "the other municipality is unaffected: {out}");
    let listed: Vec<_> = ca.list().unwrap().into_iter().map(|e| (e.kind, e.revoked_at.is_some())).collect();
    assert_eq!(listed, [(CredentialKind::DocumentSigning, true), (CredentialKind::DocumentSigning, false)]);
}

#[test]
fn each_file_ca_issues_only_its_own_credentials_and_junk_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let org = NetworkCa::init_kind(FileCaKind::Organisation, &dir.path().join("org"), &secret(CA_PASS), now()).unwrap();
    let network = NetworkCa::init(&dir.path().join("net"), &secret(CA_PASS), now()).unwrap();
    let key = secret(KEY_PASS);
    let out = dir.path().join("x");

    let e = org.issue_notice_key(&lg("131016"), 30, now(), &out, &key).unwrap_err();
    assert_eq!(e.kind(), "invalid", "{e}");
    let e = network
        .issue_document_signer(&lg("131016"), "Chiyoda-ku", CRL_URL, 30, now(), &out, SubjectKey::Generate(&key))
        .unwrap_err();
    assert_eq!(e.kind(), "invalid", "{e}");
    for (name, url) in [
        ("", CRL_URL),
        ("Chiyoda-ku,O=Evil", CRL_URL),
        (" Chiyoda", CRL_URL),
        ("千代田区", CRL_URL),
        (&"x".repeat(65), CRL_URL),
        ("Chiyoda-ku", "ldap://evil"),
        ("Chiyoda-ku", "http://ex ample/\u{3042}"),
    ] {
        let e = org
            .issue_document_signer(&lg("131016"), name, url, 30, now(), &out, SubjectKey::Generate(&key))
            .unwrap_err();
        assert_eq!(e.kind(), "invalid", "{name:?} {url:?}: {e}");
    }
    // An ML-DSA key is for CAs only; a junk key is refused.
    let mldsa = SoftKey::ephemeral(KeyAlgorithm::MlDsa65).unwrap();
    for spki in [mldsa.public_key_der(), b"junk".as_slice()] {
        let e = org
            .issue_document_signer(&lg("131016"), "Chiyoda-ku", CRL_URL, 30, now(), &out, SubjectKey::Given(spki))
            .unwrap_err();
        assert_eq!(e.kind(), "bad_key", "{e}");
    }
    assert!(org.list().unwrap().is_empty() && network.list().unwrap().is_empty(), "nothing was issued");
    assert!(!dir.path().join("x.pem").exists() && !dir.path().join("x.key").exists());
}
