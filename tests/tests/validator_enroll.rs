//! A running validator enrols the CA generations created after it started (`--auto-enroll`, on
//! with `--ca-service`; docs/validator.md "Responders"): a new prefecture's CAs, created by its
//! first certificates, are answered `good` and then `revoked` by `openssl ocsp` with a
//! responder certificate for the new generation, without a restart. Hostile: a CA service that
//! refuses to certify this validator (`--responder-validator` naming another) leaves the new
//! generation `unauthorized`, the refusal logged and retried with back-off (not once per
//! request), the other generations answered as before; and `jpki verify cert --ocsp` says the
//! responder could not answer (`unauthorized`, exit status 3), not that the certificate is
//! invalid.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a panic is a failed test

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{Kill, Network, csr, free_port, jpki_bin, text};

const PASS: &str = "validator-enrol-passphrase";

fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"))
}

/// `openssl ocsp` for `cert` issued by `issuer` (both files in the test's directory), the
/// response verified to `root`; returns its combined output.
fn ocsp(d: &dyn Fn(&str) -> String, url: &str, issuer: &str, cert: &str, root: &str) -> String {
    text(&run(
        "openssl",
        &[
            "ocsp",
            "-issuer",
            &d(issuer),
            "-cert",
            &d(cert),
            "-url",
            url,
            "-CAfile",
            &d(root),
            "-verify_other",
            &d(issuer),
            "-no_nonce",
            "-resp_text",
        ],
    ))
}

/// Starts `jpki serve validator --ca-service CA_URL` on `port` with the responders in `DIR/v`
/// and the validator's environment `env`, serving the CRLs of `DIR/pub`, its log in `DIR/LOG`;
/// returns once it is healthy.
async fn validator(d: &dyn Fn(&str) -> String, ca_url: &str, port: u16, env: &[(String, String)], log: &str) -> Kill {
    std::fs::create_dir_all(d("pub")).unwrap();
    let child = Kill(
        Command::new(jpki_bin())
            .args(["serve", "validator", "--ca-service", ca_url, "--responders", &d("v"), "--crl-dir", &d("pub")])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            // Only a request for an issuer without a responder (or the start) makes it look: the
            // periodic read is an hour away.
            .args(["--auto-enroll-interval-secs", "3600"])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stderr(std::fs::File::create(d(log)).unwrap())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !text(&run("curl", &["-sf", &format!("http://127.0.0.1:{port}/health")])).starts_with("ok") {
        assert!(Instant::now() < deadline, "validator did not come up: {}", std::fs::read_to_string(d(log)).unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child
}

/// Writes the CA certificates of the signature hierarchy: `root.pem` (sign-root) and `int.pem`
/// (sign-13), and of the authentication hierarchy: `auth-root.pem`, `auth-int.pem`.
fn ca_certs(net: &Network, d: &dyn Fn(&str) -> String) {
    for (slug, file) in
        [("sign-root", "root.pem"), ("sign-13", "int.pem"), ("auth-root", "auth-root.pem"), ("auth-13", "auth-int.pem")]
    {
        let o = net.jpki(&["ca", "cert", "--actor", "op-1", slug]);
        assert!(o.status.success(), "{}", text(&o));
        std::fs::write(d(file), o.stdout).unwrap();
    }
}

/// `jpki serve ca` again (after [`Network::serve_ca`] issued its credential), certifying
/// responders for `validator` only (`JPKI_CA_RESPONDER_VALIDATORS`); returns it and its URL once
/// it answers.
async fn restricted_ca(net: &Network, validator: &str) -> (Kill, String) {
    let port = free_port();
    let child = Kill(
        Command::new(jpki_bin())
            .args(["serve", "ca", "--listen", &format!("127.0.0.1:{port}"), "--follow-interval-ms", "200"])
            .env_remove("JPKI_DB")
            .env("JPKI_CA_PASSPHRASE", Network::CA_PASSPHRASE)
            .env("JPKI_CA_DB", net.dir.join("ca.db"))
            .env("JPKI_CA_KEYS", net.dir.join("keys"))
            .env("JPKI_NATIONAL_URL", &net.national)
            .env("JPKI_CA_RESPONDER_VALIDATORS", validator)
            .envs(net.pki.env("ca-service"))
            .stderr(std::fs::File::create(net.dir.join("ca-service.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let url = format!("https://127.0.0.1:{port}");
    let op = net.pki.client("op1", Some(identity::party::Party::Ca("jpki-ca".into())));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = op.get(format!("{url}/v1/status/head")).send().await
            && r.status().is_success()
        {
            return (child, url);
        }
        assert!(Instant::now() < deadline, "the CA service did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_validator_answers_a_new_prefectures_ca_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = |f: &str| dir.path().join(f).display().to_string();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/ocsp");
    let net =
        Network::start_with(dir.path(), &["--crl-base", &format!("http://127.0.0.1:{port}"), "--ocsp-url", &url]).await;
    let (_ca_service, ca_url) = net.serve_ca(&"00".repeat(32)).await;
    // Enrolled before prefecture 13 has any CA: the roots only.
    let (env, o) = net.enrol_validator(&ca_url, &d("v"), PASS);
    assert!(text(&o).contains("sign-root g1: responder certificate"), "{}", text(&o));
    assert!(!text(&o).contains("sign-13") && !text(&o).contains("auth-13"), "{}", text(&o));
    let mut v = validator(&d, &ca_url, port, &env, "validator.log").await;

    // Prefecture 13's first certificates: its signature and authentication CAs (sign-13,
    // auth-13) come into existence with them.
    let resident = net.resident("山田　花子", "1980-02-29").await;
    let (sign_csr, auth_csr) = (csr(dir.path(), "sign"), csr(dir.path(), "auth"));
    let (sig_serial, _) = net.issue_pair(dir.path(), &resident, &sign_csr, &auth_csr, &d("out"));
    ca_certs(&net, &d);

    // The first request names an issuer the validator has no responder for: `unauthorized`,
    // and the validator goes to enrol it (the periodic read is an hour away).
    let first = ocsp(&d, &url, "int.pem", "sig.pem", "root.pem");
    assert!(first.contains("unauthorized"), "{first}");
    let t = Instant::now();
    let out = loop {
        let out = ocsp(&d, &url, "int.pem", "sig.pem", "root.pem");
        if out.contains("sig.pem: good") {
            break out;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "not answered after {:?}: {out}\n{}",
            t.elapsed(),
            std::fs::read_to_string(d("validator.log")).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("the new generation answered good {:?} after the first request", t.elapsed());
    // Signed by a delegated responder of the new generation, verified by openssl to the root.
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains("OCSP responder sign-13 g1"), "{out}");
    assert!(out.contains("OCSP Signing"), "{out}");
    // The other new generation was enrolled in the same pass.
    let auth = ocsp(&d, &url, "auth-int.pem", "auth.pem", "auth-root.pem");
    assert!(auth.contains("auth.pem: good") && auth.contains("OCSP responder auth-13 g1"), "{auth}");
    // Without a restart: the same process, which says what it did.
    assert!(v.0.try_wait().unwrap().is_none(), "the validator exited");
    let log = std::fs::read_to_string(d("validator.log")).unwrap();
    assert!(log.lines().any(|l| l.contains("responder enrolled and serving") && l.contains("sign-13")), "{log}");
    assert!(!log.contains(PASS), "the passphrase is in the log");
    // The key is in the responder directory, encrypted and private, beside its certificate.
    let key = std::fs::read_to_string(d("v/sign-13-g1.key")).unwrap();
    assert!(key.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"), "{key}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(d("v/sign-13-g1.key")).unwrap().permissions().mode() & 0o777, 0o600);
    let o = run("openssl", &["x509", "-in", &d("v/sign-13-g1.pem"), "-noout", "-subject", "-ext", "extendedKeyUsage"]);
    assert!(text(&o).contains("OCSP responder sign-13 g1") && text(&o).contains("OCSP Signing"), "{}", text(&o));

    // Revoked: the new generation follows revocations like the others.
    net.revoke(&sig_serial);
    let t = Instant::now();
    loop {
        let out = ocsp(&d, &url, "int.pem", "sig.pem", "root.pem");
        if out.contains("sig.pem: revoked") {
            assert!(out.contains("Response verify OK") && out.contains("Reason: keyCompromise"), "{out}");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "still not revoked after {:?}: {out}", t.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // `jpki validator enroll` on the same directory keeps what the validator enrolled.
    let o = common::jpki(&["validator", "enroll", "--out", &d("v")], &env);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("sign-13-g1.key: responder key exists, skipped"), "{}", text(&o));
    assert!(text(&o).contains("0 responder certificates issued"), "{}", text(&o));
    // A restarted validator starts with it (the start-up checks pass).
    drop(v);
    let _v = validator(&d, &ca_url, port, &env, "validator2.log").await;
    let out = ocsp(&d, &url, "int.pem", "sig.pem", "root.pem");
    assert!(out.contains("sig.pem: revoked") && out.contains("Response verify OK"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_enrolment_is_logged_and_retried_and_the_other_generations_answer() {
    let dir = tempfile::tempdir().unwrap();
    let d = |f: &str| dir.path().join(f).display().to_string();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/ocsp");
    let net =
        Network::start_with(dir.path(), &["--crl-base", &format!("http://127.0.0.1:{port}"), "--ocsp-url", &url]).await;
    let (first_service, ca_url) = net.serve_ca(&"00".repeat(32)).await;
    let (env, o) = net.enrol_validator(&ca_url, &d("v"), PASS);
    assert!(o.status.success(), "{}", text(&o));
    drop(first_service);
    // The CA service now certifies another validator only: this one (validator:v1) may still
    // read the status stream, but gets no responder certificate.
    let (_ca_service, ca_url) = restricted_ca(&net, "validator:v2").await;
    let mut v = validator(&d, &ca_url, port, &env, "validator.log").await;

    let resident = net.resident("山田　花子", "1980-02-29").await;
    let (sign_csr, auth_csr) = (csr(dir.path(), "sign"), csr(dir.path(), "auth"));
    net.issue_pair(dir.path(), &resident, &sign_csr, &auth_csr, &d("out"));
    ca_certs(&net, &d);

    // A flood of requests for the new generation: each is `unauthorized`; together they make
    // the validator try to enrol it, at the pace of its back-off, not once per request.
    let t = Instant::now();
    for _ in 0..40 {
        let out = ocsp(&d, &url, "int.pem", "sig.pem", "root.pem");
        assert!(out.contains("Responder Error: unauthorized"), "{out}");
    }
    let log = || std::fs::read_to_string(d("validator.log")).unwrap();
    let failures = |log: &str| {
        log.lines().filter(|l| l.contains("auto-enroll: enrolment failed") && l.contains("sign-13")).count()
    };
    // Retried: a second attempt, 2 s after the first.
    let deadline = Instant::now() + Duration::from_secs(20);
    while failures(&log()) < 2 {
        assert!(Instant::now() < deadline, "no retry: {}", log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = t.elapsed().as_secs_f64();
    let n = failures(&log());
    // Attempts at 0, 2, 6, 14 … seconds after the first: never more than the back-off allows,
    // whatever the 40 requests.
    assert!(n <= 2 + (elapsed / 2.0) as usize, "{n} attempts in {elapsed:.1} s: {}", log());
    let line = log()
        .lines()
        .find(|l| l.contains("auto-enroll: enrolment failed") && l.contains("sign-13"))
        .unwrap()
        .to_owned();
    assert!(line.contains("validator_not_allowed") && line.contains("retry_in_secs"), "{line}");
    assert!(!log().contains(PASS), "the passphrase is in the log");
    let ca_log = std::fs::read_to_string(d("ca-service.log")).unwrap();
    assert!(ca_log.contains("validator_not_allowed"), "{ca_log}");
    // No certificate, and the one key, kept for the next attempt.
    assert!(!dir.path().join("v/sign-13-g1.pem").exists());
    assert!(dir.path().join("v/sign-13-g1.key").exists());

    // The generations it has responders for answer as before: sign-13's own CA certificate,
    // by the root's responder.
    let out = ocsp(&d, &url, "root.pem", "int.pem", "root.pem");
    assert!(out.contains("int.pem: good") && out.contains("Response verify OK"), "{out}");
    let out = ocsp(&d, &url, "int.pem", "sig.pem", "root.pem");
    assert!(out.contains("Responder Error: unauthorized"), "{out}");
    assert!(v.0.try_wait().unwrap().is_none(), "the validator exited");

    // The CRLs, the ARL among them: a CA certificate's status comes from it (CA certificates name
    // no OCSP responder).
    let o = net.jpki(&["ca", "crl", "--actor", "op-1", "--out", &d("pub")]);
    assert!(o.status.success(), "{}", text(&o));
    // `jpki verify cert --ocsp` (the shared online check) against this responder: the leaf's
    // responder answered `unauthorized`, which is no verdict on the certificate: status
    // unavailable, exit status 3, the answer named. The CA certificate, answered, validates.
    let verify = |leaf: &str, extra: &[&str]| {
        common::jpki(
            &[&["verify", "cert", &d(leaf), "--anchor", &d("root.pem"), "--intermediate", &d("int.pem"), "--ocsp"][..], extra]
                .concat(),
            &[("RUST_LOG", "warn")],
        )
    };
    let o = verify("sig.pem", &[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("status unavailable") && text(&o).contains("answered unauthorized"), "{}", text(&o));
    let o = verify("sig.pem", &["--json"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["ocsp_status"], "unauthorized", "{j}");
    assert_eq!(j["valid"], false, "{j}");
    let o = verify("int.pem", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // No responder at all (the validator stopped): unavailable too, naming no OCSP status.
    drop(v);
    let o = verify("sig.pem", &["--json"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let reason = j["reason"].as_str().unwrap();
    assert!(j["ocsp_status"].is_null(), "{j}");
    assert!(reason.contains("did not answer") || reason.contains("could not be fetched"), "{j}");
}
