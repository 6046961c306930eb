//! Key rollover (issue 11) on real databases: ceremonies that re-key a root under the same
//! name (link certificates both ways) and under a new name (a cross-certificate), rotate the
//! issuing CAs from RSA-2048 to P-384, switch issuance at the activation instant, keep every
//! generation signing its own CRLs, and roll back — checked by `openssl verify` with the link
//! certificates as `-untrusted`, and by pkilint.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use ca::ceremony::{Direction, KeyState};
use ca::crl::Reason;
use ca::hierarchy::{CaId, Environment, Purpose};
use ca::key::KeyAlgorithm;
use ca::revocation::CertKind;
use common::*;
use der::Decode;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use x509_cert::certificate::Certificate;

const DAY: i64 = 86_400;

fn at(t: i64) -> String {
    OffsetDateTime::from_unix_timestamp(t).unwrap().format(&Rfc3339).unwrap()
}

fn ceremony(ca: &str, generation: i64, algorithm: &str, not_before: i64, activation: i64, name: &str) -> String {
    format!(
        "ca = \"{ca}\"\ngeneration = {generation}\nalgorithm = \"{algorithm}\"\nkey = \"software\"\n\
         not_before = \"{}\"\nactivation = \"{}\"\nname = \"{name}\"\n",
        at(not_before),
        at(activation)
    )
}

/// `openssl verify` of `leaf` with only `anchor` trusted and `untrusted` offered, at `attime`;
/// gives (success, output).
fn verify(
    dir: &Path,
    anchor: &[u8],
    untrusted: &[&[u8]],
    leaf: &[u8],
    crls: &[PathBuf],
    attime: i64,
) -> (bool, String) {
    write_pem(&dir.join("anchor.pem"), "CERTIFICATE", &[anchor]);
    write_pem(&dir.join("leaf.pem"), "CERTIFICATE", &[leaf]);
    let mut c = Command::new("openssl");
    c.arg("verify").arg("-CAfile").arg(dir.join("anchor.pem"));
    if !untrusted.is_empty() {
        write_pem(&dir.join("untrusted.pem"), "CERTIFICATE", untrusted);
        c.arg("-untrusted").arg(dir.join("untrusted.pem"));
    }
    if !crls.is_empty() {
        c.arg("-crl_check");
        for p in crls {
            c.arg("-CRLfile").arg(p);
        }
    }
    c.arg("-attime").arg(attime.to_string()).arg(dir.join("leaf.pem"));
    run(&mut c)
}

/// pyhanko-certvalidator and Python cryptography on the same path (tests/python/rollover_verify.py).
fn py_verify(dir: &Path, anchor: &[u8], leaf: &[u8], untrusted: &[&[u8]], crls: &[PathBuf], at: i64) -> (bool, String) {
    let file = |name: String, der: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, der).unwrap();
        p
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/python/rollover_verify.py");
    let mut c = Command::new("python3");
    c.arg(script).arg(file("py-anchor.der".into(), anchor)).arg(file("py-leaf.der".into(), leaf)).arg(at.to_string());
    for (i, u) in untrusted.iter().enumerate() {
        c.arg(file(format!("py-int{i}.der"), u));
    }
    if !crls.is_empty() {
        c.arg("--crl").args(crls);
    }
    run(&mut c)
}

/// Go's crypto/x509 (the pinned toolchain `cargo xtask oracles` installs in
/// `target/oracles/venv`): `x509.Verify` of `leaf` to `anchor` with `untrusted` as intermediates.
fn go_chain(dir: &Path, anchor: &[u8], leaf: &[u8], untrusted: &[&[u8]], at: i64) -> (bool, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv = root.join("target/oracles/venv");
    assert!(venv.join("bin/go").exists(), "Go is not installed in {}: run `cargo xtask oracles`", venv.display());
    let bin = dir.join("x509check");
    if !bin.exists() {
        let (ok, out) = run(Command::new(venv.join("bin/go"))
            .args(["build", "-o"])
            .arg(&bin)
            .arg(root.join("tests/go/x509check.go"))
            .envs([("GOPROXY", "off"), ("GOTOOLCHAIN", "local"), ("GOFLAGS", "")])
            .env("GOCACHE", root.join("target/oracles/go-cache"))
            .env("GOPATH", root.join("target/oracles/gopath")));
        assert!(ok, "go build: {out}");
    }
    let file = |name: String, der: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, der).unwrap();
        p.display().to_string()
    };
    let ints: Vec<String> = untrusted.iter().enumerate().map(|(i, u)| file(format!("go-int{i}.der"), u)).collect();
    run(Command::new(&bin)
        .arg("chain")
        .arg(file("go-anchor.der".into(), anchor))
        .arg(ints.join(","))
        .arg(file("go-leaf.der".into(), leaf))
        .arg(at.to_string()))
}

fn id(slug: &str) -> CaId {
    CaId::parse(slug).unwrap()
}

/// The link certificates of `slug`'s generation `n`, by direction.
async fn link(w: &World, slug: &str, n: i64, d: Direction, now: i64) -> Vec<u8> {
    let st = w.ca.ceremony_status(Some(&id(slug)), now).await.unwrap();
    let g = st.iter().find(|s| s.generation.generation == n).unwrap();
    let (serial, _, _) = g.links.iter().find(|(_, dir, _)| *dir == d).unwrap_or_else(|| panic!("{slug} g{n} {d:?}"));
    w.ca.show(serial).await.unwrap().der.unwrap()
}

async fn state(w: &World, slug: &str, n: i64, now: i64) -> KeyState {
    let st = w.ca.ceremony_status(Some(&id(slug)), now).await.unwrap();
    st.iter().find(|s| s.generation.generation == n).unwrap().state
}

#[tokio::test]
async fn roots_and_issuing_cas_roll_over_and_openssl_follows_the_links_both_ways() {
    for db in identity::store::testing::all().await.unwrap() {
        let w = World::new(&db, KeyAlgorithm::Rsa2048).await;
        let d = w.dir.path();
        let t0 = NOW;
        // A resident's RSA certificates before any rotation.
        let a = w.register("山田　花子", "1980-02-17").await;
        let (_k, scsr) = subject(KeyAlgorithm::Rsa2048);
        let (_k2, acsr) = subject(KeyAlgorithm::Rsa2048);
        let old = w.ca.issue("window-1", &request(&a, Some(&scsr), Some(&acsr)), &w.source, t0).await.unwrap();
        let old_sig = old.get(CertKind::Signature).unwrap().clone();

        // The roots: sign-root re-keyed under its name (JPKI), auth-root renamed (Let's Encrypt).
        let sign_root = ceremony("sign-root", 2, "p384", t0 + DAY, t0 + 2 * DAY, "same");
        let auth_root = ceremony("auth-root", 2, "p384", t0 + DAY, t0 + 2 * DAY, "CN=JPKI Auth Root R2,O=JPKI,C=JP");
        let steps = w.ca.ceremony_run("op-1", &sign_root, t0).await.unwrap();
        assert_eq!(steps.len(), 5, "{steps:?}");
        assert!(steps.iter().all(|(_, now)| *now), "{}: a fresh run does every step", w.label);
        let steps = w.ca.ceremony_run("op-1", &auth_root, t0).await.unwrap();
        assert_eq!(steps.len(), 4, "key, certificate, one cross-certificate, activation: {steps:?}");
        // Running the same file again does nothing; another file for the generation is refused.
        let again = w.ca.ceremony_run("op-1", &sign_root, t0 + 10).await.unwrap();
        assert!(again.iter().all(|(_, now)| !*now), "{again:?}");
        let other = sign_root.replace("p384", "rsa3072");
        let e = w.ca.ceremony_run("op-1", &other, t0 + 10).await.unwrap_err();
        assert_eq!(e.kind(), "ceremony_changed", "{e}");
        assert_eq!(w.ca.generations().await.unwrap().iter().filter(|g| g.ca.slug() == "sign-root").count(), 2);
        // Pending until the activation instant; the old root issues until then.
        assert_eq!(state(&w, "sign-root", 2, t0 + 10).await, KeyState::Pending);
        assert_eq!(state(&w, "sign-root", 1, t0 + 10).await, KeyState::Issuing);
        let root = CaId::root(Purpose::Signature, Environment::Production);
        assert_eq!(w.ca.current(&root, t0 + 2 * DAY - 1).await.unwrap().generation, 1);
        assert_eq!(w.ca.current(&root, t0 + 2 * DAY).await.unwrap().generation, 2);

        // After the switch, the issuing CAs get P-384 keys, certified by the new roots.
        let t1 = t0 + 2 * DAY + 60;
        for slug in ["sign-13", "auth-13"] {
            let c = ceremony(slug, 2, "p384", t1, t0 + 3 * DAY, "same");
            let steps = w.ca.ceremony_run("op-1", &c, t1).await.unwrap();
            assert_eq!(steps.len(), 3, "an issuing CA has no link certificates: {steps:?}");
        }
        assert_eq!(state(&w, "sign-root", 1, t1).await, KeyState::Retired, "it signed a link certificate");
        assert_eq!(state(&w, "sign-13", 2, t1).await, KeyState::Pending);

        // Issuance before the activation stays RSA; from the activation on it is P-384.
        let t2 = t0 + 3 * DAY + 60;
        let b = w.register("佐藤　一郎", "1990-05-05").await;
        let (_k3, scsr) = subject(KeyAlgorithm::EcP384);
        let (_k4, acsr) = subject(KeyAlgorithm::EcP384);
        let new = w.ca.issue("window-1", &request(&b, Some(&scsr), Some(&acsr)), &w.source, t2).await.unwrap();
        let (new_sig, new_auth) =
            (new.get(CertKind::Signature).unwrap().clone(), new.get(CertKind::Authentication).unwrap().clone());
        assert_eq!((new_sig.ca.as_str(), new_sig.generation), ("sign-13", 2));
        let c = Certificate::from_der(&new_sig.der).unwrap();
        assert_eq!(c.signature_algorithm().oid.to_string(), "1.2.840.10045.4.3.3", "ecdsa-with-SHA384");
        assert_eq!(state(&w, "sign-13", 1, t2).await, KeyState::Retired);
        assert_eq!(state(&w, "sign-13", 2, t2).await, KeyState::Issuing);
        // Once it has issued, a generation can no longer be rolled back.
        let e = w.ca.rollback("op-1", &id("sign-13"), 2, t2).await.unwrap_err();
        assert_eq!(e.kind(), "generation_in_use", "{e}");

        let cert = |slug: &str, n: i64| {
            let w = &w;
            let slug = slug.to_owned();
            async move { w.ca.generation_of(&slug, n).await.unwrap().certificate }
        };
        let (sroot1, sroot2) = (cert("sign-root", 1).await, cert("sign-root", 2).await);
        let (aroot1, aroot2) = (cert("auth-root", 1).await, cert("auth-root", 2).await);
        let (s13_1, s13_2, a13_2) = (cert("sign-13", 1).await, cert("sign-13", 2).await, cert("auth-13", 2).await);
        let new_with_old = link(&w, "sign-root", 2, Direction::NewWithOld, t2).await;
        let old_with_new = link(&w, "sign-root", 2, Direction::OldWithNew, t2).await;
        let cross = link(&w, "auth-root", 2, Direction::NewWithOld, t2).await;
        let when = t2 + 3600;
        // A verifier holding only the old root follows NewWithOld to the new certificate…
        let (ok, out) = verify(d, &sroot1, &[&s13_2, &new_with_old], &new_sig.der, &[], when);
        assert!(ok, "{}: old root, NewWithOld: {out}", w.label);
        // …and without the link finds no issuer (openssl error 20).
        let (ok, out) = verify(d, &sroot1, &[&s13_2], &new_sig.der, &[], when);
        assert!(!ok && out.contains("error 20"), "{out}");
        // A verifier holding only the new root follows OldWithNew to the resident's old certificate.
        let (ok, out) = verify(d, &sroot2, &[&s13_1, &old_with_new], &old_sig.der, &[], when);
        assert!(ok, "{}: new root, OldWithNew: {out}", w.label);
        let (ok, out) = verify(d, &sroot2, &[&s13_1], &old_sig.der, &[], when);
        assert!(!ok && out.contains("error 20"), "{out}");
        // The same paths through pyhanko-certvalidator and Python cryptography.
        let (ok, out) = py_verify(d, &sroot1, &new_sig.der, &[&s13_2, &new_with_old], &[], when);
        assert!(ok, "{}: old root, NewWithOld: {out}", w.label);
        let (ok, out) = py_verify(d, &sroot2, &old_sig.der, &[&s13_1, &old_with_new], &[], when);
        assert!(ok, "{}: new root, OldWithNew: {out}", w.label);
        let (ok, out) = py_verify(d, &sroot1, &new_sig.der, &[&s13_2], &[], when);
        assert!(!ok && out.matches(": invalid:").count() == 2, "{}: no link, no path: {out}", w.label);
        // And through Go's crypto/x509.
        let (ok, out) = go_chain(d, &sroot1, &new_sig.der, &[&s13_2, &new_with_old], when);
        assert!(ok, "{}: Go, old root, NewWithOld: {out}", w.label);
        let (ok, out) = go_chain(d, &sroot2, &old_sig.der, &[&s13_1, &old_with_new], when);
        assert!(ok, "{}: Go, new root, OldWithNew: {out}", w.label);
        let (ok, out) = go_chain(d, &sroot1, &new_sig.der, &[&s13_2], when);
        assert!(!ok, "{}: Go, no link: {out}", w.label);
        // The renamed root: the old root's cross-certificate, or the new root directly.
        let (ok, out) = verify(d, &aroot1, &[&a13_2, &cross], &new_auth.der, &[], when);
        assert!(ok, "{}: old auth root through the cross-certificate: {out}", w.label);
        let (ok, out) = verify(d, &aroot2, &[&a13_2], &new_auth.der, &[], when);
        assert!(ok, "{}: the renamed root: {out}", w.label);
        let c = Certificate::from_der(&aroot2).unwrap();
        assert_eq!(c.tbs_certificate().subject().to_string(), "CN=JPKI Auth Root R2,O=JPKI,C=JP");
        for der in [&new_with_old, &old_with_new, &cross, &sroot2, &s13_2] {
            let (ok, out) = pkilint_cert(d, der);
            assert!(ok, "pkilint: {out}");
        }

        // Revocation across generations: the retired RSA issuing key signs the CRL of the
        // certificate it issued; the new key signs the new one's; openssl says revoked (23).
        w.ca.revoke("op-1", &old_sig.serial, Reason::KeyCompromise, "test", t2).await.unwrap();
        w.ca.revoke("op-1", &new_sig.serial, Reason::KeyCompromise, "test", t2).await.unwrap();
        let out_dir = w.path("pub");
        let published = w.ca.publish_crls("op-1", &out_dir, t2 + 10, &|_, _| {}).await.unwrap();
        let crl = |slug: &str, n: i64, shard: i64| {
            published.iter().find(|p| p.ca == slug && p.generation == n && p.shard == shard).unwrap().path.clone()
        };
        let g1_crl = crl("sign-13", 1, old_sig.shard);
        let g2_crl = crl("sign-13", 2, new_sig.shard);
        let (ok, out) = verify(d, &sroot2, &[&s13_1, &old_with_new], &old_sig.der, std::slice::from_ref(&g1_crl), when);
        assert!(!ok && out.contains("error 23"), "{}: old certificate, retired key's CRL: {out}", w.label);
        let (ok, out) = verify(d, &sroot1, &[&s13_2, &new_with_old], &new_sig.der, std::slice::from_ref(&g2_crl), when);
        assert!(!ok && out.contains("error 23"), "{}: new certificate, new key's CRL: {out}", w.label);
        let (ok, out) = verify(d, &aroot2, &[&a13_2], &new_auth.der, &[crl("auth-13", 2, new_auth.shard)], when);
        assert!(ok, "an unrevoked certificate with its CRL: {out}");
        // pyhanko-certvalidator with CRLs: the renamed root's path through the cross-certificate,
        // with both auth roots' ARLs and the new issuing key's CRLs, is valid; the retired RSA
        // key's CRL revokes the old certificate. (Given CRLs of a same-name CA of another
        // algorithm, pyhanko-certvalidator 0.33 fails an internal assertion instead of trying
        // the next key: docs/validator.md, "Verifiers and same-name re-keys".)
        let auth_crls: Vec<PathBuf> = published
            .iter()
            .filter(|p| p.ca == "auth-root" || (p.ca == "auth-13" && p.generation == 2))
            .map(|p| p.path.clone())
            .collect();
        let (ok, out) = py_verify(d, &aroot1, &new_auth.der, &[&a13_2, &cross], &auth_crls, when);
        assert!(ok, "{}: renamed root through the cross-certificate, with CRLs: {out}", w.label);
        let g1_crls: Vec<PathBuf> = published
            .iter()
            .filter(|p| p.generation == 1 && p.ca.starts_with("sign-"))
            .map(|p| p.path.clone())
            .collect();
        let (ok, out) = py_verify(d, &sroot1, &old_sig.der, &[&s13_1], &g1_crls, when);
        assert!(!ok && out.contains("pyhanko-certvalidator: revoked"), "{}: {out}", w.label);
        // Each CRL is signed by the key that issued the certificate (AKI = that generation's SKI).
        let dump =
            run(Command::new("openssl").args(["crl", "-inform", "DER", "-noout", "-text", "-in"]).arg(&g1_crl)).1;
        assert!(dump.contains("sha256WithRSAEncryption"), "{dump}");
        let dump =
            run(Command::new("openssl").args(["crl", "-inform", "DER", "-noout", "-text", "-in"]).arg(&g2_crl)).1;
        assert!(dump.contains("ecdsa-with-SHA384"), "{dump}");
        // The new certificate's AIA names its caIssuers bundle, published with the CRLs: the
        // issuing CA and the root's link certificates, enough for a verifier holding either root.
        let dump = run(Command::new("openssl").args(["x509", "-inform", "DER", "-noout", "-text", "-in"]).arg({
            let p = w.path("new-sig.der");
            std::fs::write(&p, &new_sig.der).unwrap();
            p
        }))
        .1;
        assert!(dump.contains("CA Issuers - URI:http://127.0.0.1:8180/ca/sign-13/g2.p7c"), "{dump}");
        let bundle = out_dir.join("ca/sign-13/g2.p7c");
        let (ok, certs) =
            run(Command::new("openssl").args(["pkcs7", "-inform", "DER", "-print_certs", "-in"]).arg(&bundle));
        assert!(ok, "{certs}");
        assert_eq!(certs.matches("BEGIN CERTIFICATE").count(), 3, "sign-13 g2 and both links: {certs}");
        std::fs::write(d.join("bundle.pem"), &certs).unwrap();
        write_pem(&d.join("anchor.pem"), "CERTIFICATE", &[&sroot1]);
        write_pem(&d.join("leaf.pem"), "CERTIFICATE", &[&new_sig.der]);
        let (ok, out) = run(Command::new("openssl")
            .arg("verify")
            .arg("-CAfile")
            .arg(d.join("anchor.pem"))
            .arg("-untrusted")
            .arg(d.join("bundle.pem"))
            .arg("-attime")
            .arg(when.to_string())
            .arg(d.join("leaf.pem")));
        assert!(ok, "{}: old root, the caIssuers bundle as the only intermediates: {out}", w.label);
        // Both root generations publish their ARLs.
        for n in [1, 2] {
            assert!(published.iter().any(|p| p.ca == "sign-root" && p.generation == n && p.shard == -1));
        }
    }
}

#[tokio::test]
async fn a_generation_rolls_back_until_it_issues_and_its_certificate_goes_on_the_arl() {
    let db = identity::store::testing::sqlite().unwrap();
    let w = World::new(&db, KeyAlgorithm::Rsa2048).await;
    let a = w.register("山田　花子", "1980-02-17").await;
    let (_k, scsr) = subject(KeyAlgorithm::Rsa2048);
    let (_k2, acsr) = subject(KeyAlgorithm::Rsa2048);
    w.ca.issue("window-1", &request(&a, Some(&scsr), Some(&acsr)), &w.source, NOW).await.unwrap();
    let c = ceremony("sign-13", 2, "p384", NOW, NOW + DAY, "same");
    w.ca.ceremony_run("op-1", &c, NOW).await.unwrap();
    // A third generation waits for the pending second.
    let next = ceremony("sign-13", 3, "p384", NOW, NOW + DAY, "same");
    let e = w.ca.ceremony_plan(&ca::ceremony::parse(&next).unwrap(), NOW).await.unwrap_err();
    assert_eq!(e.kind(), "generation_pending", "{e}");
    let revoked = w.ca.rollback("op-1", &id("sign-13"), 2, NOW + 10).await.unwrap();
    assert_eq!(revoked.len(), 1, "its own CA certificate: {revoked:?}");
    assert_eq!(state(&w, "sign-13", 2, NOW + 20).await, KeyState::RolledBack);
    // After the activation instant the first generation still issues.
    let sign13 = CaId::issuing(Purpose::Signature, Environment::Production, "13").unwrap();
    assert_eq!(w.ca.current(&sign13, NOW + 2 * DAY).await.unwrap().generation, 1);
    let b = w.register("佐藤　一郎", "1990-05-05").await;
    let (_k3, scsr) = subject(KeyAlgorithm::Rsa2048);
    let (_k4, acsr) = subject(KeyAlgorithm::Rsa2048);
    let issued =
        w.ca.issue("window-1", &request(&b, Some(&scsr), Some(&acsr)), &w.source, NOW + 2 * DAY).await.unwrap();
    assert_eq!(issued.get(CertKind::Signature).unwrap().generation, 1);
    // Rolled back twice: refused; the next ceremony gets number 3.
    assert_eq!(w.ca.rollback("op-1", &id("sign-13"), 2, NOW + 30).await.unwrap_err().kind(), "not_found");
    let p = w.ca.ceremony_plan(&ca::ceremony::parse(&next).unwrap(), NOW + 40).await;
    assert!(p.is_ok(), "{p:?}");
    // The rolled-back CA certificate is on the root's ARL.
    let published = w.ca.publish_crls("op-1", &w.path("pub"), NOW + 50, &|_, _| {}).await.unwrap();
    let arl = published.iter().find(|p| p.ca == "sign-root" && p.shard == -1).unwrap();
    assert_eq!(arl.entries, 1);
    let dump = run(Command::new("openssl").args(["crl", "-inform", "DER", "-noout", "-text", "-in"]).arg(&arl.path)).1;
    assert!(
        dump.to_ascii_lowercase().contains(&revoked[0].trim_start_matches('0').to_ascii_lowercase()[..8]),
        "{dump}"
    );
    assert!(dump.contains("Superseded"), "{dump}");
}

/// Seed 004: an algorithm is broken. The successor is activated at once; the old generation
/// is revoked in one transaction (its CA certificate on the root's ARL, everything it issued
/// cACompromise on its CRLs); the re-issuance plan queues every holder at their municipality a
/// batch at a time; a new card for a queued resident clears the entry.
#[tokio::test]
async fn an_emergency_revokes_a_whole_generation_and_queues_its_holders() {
    for db in identity::store::testing::all().await.unwrap() {
        let w = World::new(&db, KeyAlgorithm::Rsa2048).await;
        let mut residents = Vec::new();
        for (name, dob) in [("山田　花子", "1980-02-17"), ("佐藤　一郎", "1990-05-05"), ("鈴木　次郎", "1985-07-07")]
        {
            let r = w.register(name, dob).await;
            let (_k, scsr) = subject(KeyAlgorithm::Rsa2048);
            let (_k2, acsr) = subject(KeyAlgorithm::Rsa2048);
            let issued = w.ca.issue("window-1", &request(&r, Some(&scsr), Some(&acsr)), &w.source, NOW).await.unwrap();
            residents.push((r, issued.get(CertKind::Signature).unwrap().serial.clone()));
        }
        // One was revoked before: the emergency does not revoke it twice.
        w.ca.revoke("op-1", &residents[0].1, Reason::KeyCompromise, "stolen", NOW).await.unwrap();
        let sign13 = id("sign-13");
        let e = w.ca.compromise("op-1", &sign13, 1, NOW + 50).await.unwrap_err();
        assert_eq!(e.kind(), "generation_issuing", "{e}");
        let t = NOW + 100;
        w.ca.ceremony_run("op-1", &ceremony("sign-13", 2, "p384", t, t, "same"), t).await.unwrap();
        let c = w.ca.compromise("op-1", &sign13, 1, t + 1).await.unwrap();
        assert_eq!(c.revoked, 2, "{}", w.label);
        assert!(c.ca_certificate.is_some());
        let again = w.ca.compromise("op-1", &sign13, 1, t + 2).await.unwrap();
        assert_eq!((again.revoked, again.ca_certificate), (0, None), "idempotent");
        let published = w.ca.publish_crls("op-1", &w.path("pub"), t + 3, &|_, _| {}).await.unwrap();
        let entries: u64 = published.iter().filter(|p| p.ca == "sign-13" && p.generation == 1).map(|p| p.entries).sum();
        assert_eq!(entries, 3);
        let text =
            |p: &Path| run(Command::new("openssl").args(["crl", "-inform", "DER", "-noout", "-text", "-in"]).arg(p)).1;
        let all: String =
            published.iter().filter(|p| p.ca == "sign-13" && p.generation == 1).map(|p| text(&p.path)).collect();
        assert_eq!(all.matches("CA Compromise").count(), 2, "{all}");
        assert_eq!(all.matches("Key Compromise").count(), 1, "{all}");
        let arl = published.iter().find(|p| p.ca == "sign-root" && p.shard == -1).unwrap();
        assert!(text(&arl.path).contains("CA Compromise"), "the issuing CA is on the ARL");
        // The plan, one resident per call: resumable, and it ends.
        let mut calls = 0;
        let p = loop {
            let p = w.ca.reissue_plan("op-1", &sign13, 1, &w.source, 1, t + 4).await.unwrap();
            calls += 1;
            if p.planned == p.total {
                break p;
            }
            assert!(calls < 10);
        };
        assert_eq!((p.total, calls), (3, 3));
        assert_eq!(p.by_municipality, [("131016".to_owned(), 3, 0)]);
        assert_eq!(w.ca.reissue_queue("131016", 100).await.unwrap().len(), 3);
        assert!(w.ca.reissue_queue("271004", 100).await.unwrap().is_empty());
        // 佐藤一郎 comes to the window: P-384 keys from the new generation clear his entry.
        let (_k, scsr) = subject(KeyAlgorithm::EcP384);
        let (_k2, acsr) = subject(KeyAlgorithm::EcP384);
        let rsa = subject(KeyAlgorithm::Rsa2048).1;
        let e = w.ca.issue("window-1", &request(&residents[1].0, Some(&rsa), Some(&acsr)), &w.source, t + 5).await;
        assert_eq!(e.map(|_| ()).map_err(|e| e.kind()), Err("card_algorithm"), "no RSA card keys after the switch");
        w.ca.issue("window-1", &request(&residents[1].0, Some(&scsr), Some(&acsr)), &w.source, t + 5).await.unwrap();
        let p = w.ca.reissue_progress(&sign13, 1).await.unwrap();
        assert_eq!(p.by_municipality, [("131016".to_owned(), 3, 1)]);
        let q = w.ca.reissue_queue("131016", 100).await.unwrap();
        assert!(q.iter().all(|e| e.resident_code != residents[1].0.as_str()) && q.len() == 2);
    }
}
