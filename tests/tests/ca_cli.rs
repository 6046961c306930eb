//! The CA operator CLI (`jpki ca …`) as real processes: issuance from a running identity
//! network (municipality → prefecture → national), the CA reaching the national node over
//! mutual TLS with its own credential (`ca:jpki-ca`), a crash injected mid-issuance and
//! resolved by the next run, and CA keys on a SoftHSM2 token through PKCS#11 — every artefact
//! checked with `openssl`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a panic is a failed test

mod common;

use std::process::Command;

use common::{Network, csr, jpki_bin, text};

fn openssl(args: &[&str]) -> std::process::Output {
    Command::new("openssl").args(args).output().unwrap()
}

#[tokio::test]
async fn issuance_over_http_survives_a_crash_between_tbs_and_signature() {
    let dir = tempfile::tempdir().unwrap();
    let d = |f: &str| dir.path().join(f).display().to_string();
    let net = Network::start(dir.path()).await;
    assert!(net.init_output.contains("encrypted PKCS#8 file"), "{}", net.init_output);
    let nurl = net.national.clone();
    let jpki = |args: &[&str], env: &[(&str, &str)]| net.jpki_env(args, env);
    // A resident, registered at the municipality and replicated to the national node.
    let code = net.resident("山田　花子", "1980-02-29").await;
    let (sign_csr, auth_csr) = (csr(dir.path(), "sign"), csr(dir.path(), "auth"));
    let mut args = common::ca_issue_args("window-1", &code, &sign_csr, &auth_csr, &d("out"));
    args.extend(["--national".to_owned(), nurl.clone()]);
    let issue = |env: &[(&str, &str)]| jpki(&args.iter().map(String::as_str).collect::<Vec<_>>(), env);
    let list = || text(&jpki(&["ca", "list", "--actor", "op-1"], &[]));
    let recover = || {
        let o = jpki(&["ca", "recover", "--actor", "op-1"], &[]);
        assert!(o.status.success(), "{}", text(&o));
    };
    // A crash after the exact TBS was stored, before signing. The first issuance also creates
    // the prefecture-unit CA, so the crash hits the CA certificate of auth-13.
    let o = issue(&[("JPKI_CA_CRASH_AFTER", "tbs")]);
    assert!(!o.status.success(), "the injected crash must abort: {}", text(&o));
    // The next run resolves it: the stored TBS is revoked (unspecified); no generation exists.
    recover();
    let listing = list();
    assert_eq!(listing.matches("(unspecified)").count(), 1, "{listing}");
    assert!(
        listing.lines().any(|l| l.contains(" ca ") && l.contains("auth-root g1") && l.contains("(unspecified)")),
        "{listing}"
    );
    let o = jpki(&["ca", "audit", "--actor", "op-1"], &[]);
    assert!(text(&o).contains("recover") && text(&o).contains("audit chain verified"), "{}", text(&o));
    // The retry creates the CAs afresh and issues both certificates.
    let o = issue(&[]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("issued signature") && out.contains("issued authentication"), "{out}");
    // A second issuance (a renewal) crashes after the TBS of both resident certificates.
    let o = issue(&[("JPKI_CA_CRASH_AFTER", "tbs")]);
    assert!(!o.status.success(), "{}", text(&o));
    recover();
    let listing = list();
    assert_eq!(listing.matches("(unspecified)").count(), 3, "{listing}");
    for kind in ["signature", "authentication"] {
        assert_eq!(listing.lines().filter(|l| l.contains(kind) && l.contains(&code)).count(), 2, "{listing}");
        assert!(listing.lines().any(|l| l.contains(kind) && l.contains(&code) && l.ends_with("good")), "{listing}");
    }
    let sig = std::fs::read_dir(d("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("signature-"))
        .unwrap();
    let root = jpki(&["ca", "cert", "--actor", "op-1", "sign-root"], &[]);
    std::fs::write(d("root.pem"), &root.stdout).unwrap();
    let o = openssl(&["verify", "-CAfile", &d("root.pem"), "-untrusted", &d("out/chain.pem"), sig.to_str().unwrap()]);
    assert!(o.status.success() && text(&o).contains("OK"), "{}", text(&o));
    // Bad input: a wrong passphrase and an unknown serial fail clearly.
    let o = Command::new(jpki_bin())
        .args(["ca", "list", "--actor", "op-1", "--db", &d("ca.db"), "--keys", &d("keys")])
        .env("JPKI_CA_PASSPHRASE", "wrong passphrase")
        .output()
        .unwrap();
    assert!(o.status.success(), "listing needs no key: {}", text(&o));
    let o = jpki(
        &["ca", "revoke", "--actor", "op-1", "--serial", "00ff", "--reason", "key-compromise", "--cause", "x"],
        &[],
    );
    assert!(!o.status.success() && text(&o).contains("not found"), "{}", text(&o));
    let o = jpki(&["ca", "revoke", "--actor", "op-1", "--serial", "00ff", "--reason", "because", "--cause", "x"], &[]);
    assert!(!o.status.success() && text(&o).contains("one of"), "{}", text(&o));
}

#[test]
fn ca_keys_on_a_softhsm2_token_sign_what_openssl_verifies() {
    for alg in ["rsa2048", "p384"] {
        let dir = tempfile::tempdir().unwrap();
        let d = |f: &str| dir.path().join(f).display().to_string();
        let (module, conf) = common::softhsm_token(dir.path(), "jpki-ca", "87654321");
        let module = module.as_str();
        let jpki = |args: &[&str], pin: &str| {
            Command::new(jpki_bin())
                .args(args)
                .args(["--actor", "op-1", "--db", &d("ca.db"), "--pkcs11-module", module, "--pkcs11-token", "jpki-ca"])
                .env("SOFTHSM2_CONF", &conf)
                .env("JPKI_CA_PIN", pin)
                .output()
                .unwrap()
        };
        let o = jpki(&["ca", "init", "--algorithm", alg, "--shards", "2"], "87654321");
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!(text(&o).matches("sensitive, not extractable").count(), 2, "{}", text(&o));
        let o = jpki(&["ca", "cert", "sign-root"], "87654321");
        std::fs::write(d("root.pem"), &o.stdout).unwrap();
        let o = openssl(&["verify", "-CAfile", &d("root.pem"), &d("root.pem")]);
        assert!(o.status.success(), "{alg}: {}", text(&o));
        let o = jpki(&["ca", "crl", "--out", &d("pub")], "87654321");
        assert!(o.status.success(), "{}", text(&o));
        let o = openssl(&[
            "crl",
            "-inform",
            "DER",
            "-in",
            &d("pub/crl/sign-root/g1/arl.crl"),
            "-CAfile",
            &d("root.pem"),
            "-noout",
        ]);
        assert!(text(&o).contains("verify OK"), "{alg}: {}", text(&o));
        let o = jpki(&["ca", "crl", "--out", &d("pub")], "1111");
        assert!(!o.status.success() && text(&o).contains("wrong user PIN"), "{}", text(&o));
        let o = jpki(&["ca", "init", "--algorithm", alg], "87654321");
        assert!(!o.status.success() && text(&o).contains("already initialised"), "{}", text(&o));
        if alg == "p384" {
            // ML-DSA-65 keys are software keys only: refused on a token before anything is stored.
            let o = jpki(&["ca", "init", "--env", "test", "--algorithm", "ml-dsa-65"], "87654321");
            assert!(!o.status.success() && text(&o).contains("software keys only"), "{}", text(&o));
            let o = jpki(&["ca", "cert", "test-sign-root"], "87654321");
            assert!(!o.status.success(), "no test root was made: {}", text(&o));
        }
    }
}

/// `jpki ca ceremony plan`: the dry run of a same-name root re-key lists the key, the
/// certificate, both link certificates and the switch; a successor activated too late for the
/// overlap policy and a malformed file are refused; an ML-DSA-65 plan signs its links with each
/// algorithm; nothing is written.
#[test]
fn a_ceremony_plan_is_a_checked_dry_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = |f: &str| dir.path().join(f).display().to_string();
    let jpki = |args: &[&str]| common::local_ca(dir.path(), args, &[]);
    let o = jpki(&["ca", "init"]);
    assert!(o.status.success(), "{}", text(&o));
    let file = |algorithm: &str, activation: &str| {
        std::fs::write(
            d("c.toml"),
            format!(
                "ca = \"sign-root\"\ngeneration = 2\nalgorithm = \"{algorithm}\"\nkey = \"software\"\n\
                 not_before = \"2027-01-01T00:00:00Z\"\nactivation = \"{activation}\"\nname = \"same\"\n"
            ),
        )
        .unwrap();
        jpki(&["ca", "ceremony", "plan", &d("c.toml")])
    };
    let keys_before = std::fs::read_dir(d("keys")).unwrap().count();
    let o = file("p384", "2027-02-01T00:00:00Z");
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    for step in ["generate a p384 key", "NewWithOld", "signed with rsa2048", "OldWithNew", "g1 retires"] {
        assert!(out.contains(step), "{step}: {out}");
    }
    let o = file("p384", "2034-02-01T00:00:00Z");
    assert!(!o.status.success() && text(&o).contains("refused (overlap)"), "{}", text(&o));
    // A post-quantum root: the links are signed with each algorithm (NewWithOld with the old
    // RSA key, OldWithNew with ML-DSA).
    let o = file("ml-dsa-65", "2027-02-01T00:00:00Z");
    let out = text(&o);
    assert!(
        o.status.success() && out.contains("generate a ml-dsa-65 key") && out.contains("signed with ml-dsa-65"),
        "{out}"
    );
    std::fs::write(d("c.toml"), "ca = [").unwrap();
    let o = jpki(&["ca", "ceremony", "plan", &d("c.toml")]);
    assert!(!o.status.success() && text(&o).contains("ceremony file"), "{}", text(&o));
    assert_eq!(std::fs::read_dir(d("keys")).unwrap().count(), keys_before, "a dry run writes no key");
}

/// `jpki ca ceremony run` dies after step 2 (the key and the CA certificate committed, as a
/// power cut would leave them); `status` shows 2 of 5 steps; another file for that generation is
/// refused; the same file resumes and does only the rest (one key, one generation, one link
/// certificate each way); `rollback` then revokes what it made and the first generation issues.
#[test]
fn a_ceremony_run_resumes_after_a_crash_and_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = |f: &str| dir.path().join(f).display().to_string();
    let jpki_env = |args: &[&str], env: &[(&str, &str)]| common::local_ca(dir.path(), args, env);
    let jpki = |args: &[&str]| jpki_env(args, &[]);
    let o = jpki(&["ca", "init"]);
    assert!(o.status.success(), "{}", text(&o));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let rfc = common::rfc3339;
    let file = |alg: &str| {
        format!(
            "ca = \"sign-root\"\ngeneration = 2\nalgorithm = \"{alg}\"\nkey = \"software\"\n\
             not_before = \"{}\"\nactivation = \"{}\"\nname = \"same\"\n",
            rfc(now),
            rfc(now + 30 * 86_400)
        )
    };
    std::fs::write(d("c.toml"), file("p384")).unwrap();
    let keys = || std::fs::read_dir(d("keys")).unwrap().count();
    let keys_before = keys();
    let o = jpki_env(&["ca", "ceremony", "run", &d("c.toml")], &[("JPKI_CEREMONY_CRASH_AFTER", "2")]);
    assert!(!o.status.success() && text(&o).contains("aborting"), "{}", text(&o));
    let o = jpki(&["ca", "ceremony", "status", "--ca", "sign-root"]);
    let out = text(&o);
    assert!(o.status.success() && out.contains("2/5 steps") && out.contains("pending"), "{out}");
    std::fs::write(d("other.toml"), file("rsa3072")).unwrap();
    let o = jpki(&["ca", "ceremony", "run", &d("other.toml")]);
    assert!(!o.status.success() && text(&o).contains("ceremony_changed"), "{}", text(&o));
    let o = jpki(&["ca", "ceremony", "run", &d("c.toml")]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert_eq!(out.matches("done before:").count(), 2, "{out}");
    assert_eq!(out.matches("done:").count(), 3, "{out}");
    assert_eq!(keys(), keys_before + 1, "the resumed run reuses the key it generated");
    let o = jpki(&["ca", "ceremony", "status", "--ca", "sign-root"]);
    let out = text(&o);
    assert!(out.contains("5/5 steps"), "{out}");
    assert_eq!(out.matches("link new-with-old").count(), 1, "{out}");
    assert_eq!(out.matches("link old-with-new").count(), 1, "{out}");
    // Every step is in the audit trail, whose chain verifies.
    let o = jpki(&["ca", "audit", "--limit", "50"]);
    let out = text(&o);
    assert!(o.status.success() && out.contains("audit chain verified"), "{out}");
    assert_eq!(out.matches("sign-root g2 step").count(), 5, "{out}");
    // Roll back: both link certificates are revoked (superseded); g1 issues.
    let o = jpki(&["ca", "ceremony", "rollback", "--ca", "sign-root", "--generation", "2"]);
    let out = text(&o);
    assert!(o.status.success() && out.contains("rolled back"), "{out}");
    let o = jpki(&["ca", "ceremony", "status", "--ca", "sign-root"]);
    assert!(text(&o).contains("rolled back"), "{}", text(&o));
    let current = jpki(&["ca", "cert", "sign-root"]);
    let g1 = jpki(&["ca", "cert", "sign-root", "--generation", "1"]);
    let g2 = jpki(&["ca", "cert", "sign-root", "--generation", "2"]);
    assert!(current.status.success() && g1.status.success() && g2.status.success(), "{}", text(&current));
    assert!(text(&current).contains("BEGIN CERTIFICATE"), "{}", text(&current));
    assert_eq!(current.stdout, g1.stdout, "after the rollback the first generation is current");
    assert_ne!(current.stdout, g2.stdout);
}
