//! The validation service as verifiers meet it: `jpki serve validator` answering `openssl
//! ocsp` (with and without nonce, POST and GET through curl), a revocation showing within a
//! second, OCSP errors as OCSP responses, the CRLs it serves agreeing with `openssl verify
//! -crl_check`, and the verification API over mutual TLS only, to registered verifiers named
//! by their network credentials.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a panic is a failed test

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{Kill, Network, csr, free_port, jpki_bin, text};
use identity::party::Party;

const PASS: &str = "validator-test-passphrase";

fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"))
}

/// `openssl ocsp` against the responder; returns its combined output.
fn ocsp(d: &dyn Fn(&str) -> String, url: &str, cert: &str, extra: &[&str]) -> String {
    let o = run(
        "openssl",
        &[
            &["ocsp", "-issuer", &d("int.pem"), "-cert", &d(cert), "-url", url, "-CAfile", &d("root.pem")],
            &["-verify_other", &d("int.pem")][..],
            extra,
        ]
        .concat(),
    );
    text(&o)
}

#[tokio::test(flavor = "multi_thread")]
async fn openssl_and_curl_get_signed_answers_that_follow_revocation_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let d = |f: &str| dir.path().join(f).display().to_string();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let url = format!("{base}/ocsp");
    let net = Network::start_with(dir.path(), &["--crl-base", &base, "--ocsp-url", &url]).await;
    let resident = net.resident("山田　花子", "1980-02-29").await;
    let (sign_csr, auth_csr) = (csr(dir.path(), "sign"), csr(dir.path(), "auth"));
    let (sig_serial, _) = net.issue_pair(dir.path(), &resident, &sign_csr, &auth_csr, &d("out"));
    std::fs::write(d("root.pem"), net.jpki(&["ca", "cert", "--actor", "op-1", "sign-root"]).stdout).unwrap();
    std::fs::write(d("int.pem"), net.jpki(&["ca", "cert", "--actor", "op-1", "sign-13"]).stdout).unwrap();
    std::fs::write(d("auth-root.pem"), net.jpki(&["ca", "cert", "--actor", "op-1", "auth-root"]).stdout).unwrap();
    std::fs::write(d("auth-int.pem"), net.jpki(&["ca", "cert", "--actor", "op-1", "auth-13"]).stdout).unwrap();

    // The validator enrols itself at the CA service with its own credential (no CA store, no
    // CA passphrase): one responder key it keeps, and a certificate for it, per CA.
    let (_ca_service, ca_url) = net.serve_ca(&"00".repeat(32)).await;
    let (env, o) = net.enrol_validator(&ca_url, &d("v"), PASS);
    assert_eq!(text(&o).matches("ocsp-nocheck").count(), 4, "{}", text(&o));
    // Another party (a window, an operator) gets no responder certificate.
    let o = common::jpki(&["validator", "enroll", "--out", &d("v-op")], &[&net.pki.env("op1")[..], &env[3..]].concat());
    assert!(!o.status.success() && text(&o).contains("validator:<name>"), "{}", text(&o));
    let o = net.jpki(&["ca", "crl", "--actor", "op-1", "--out", &d("pub")]);
    assert!(o.status.success(), "{}", text(&o));

    // A registered verifier (a bank opening accounts) for the verification API: it connects
    // with its network credential as `agency:bank-1`. The validator has its own credential.
    net.pki.issue("other", "agency:other", false);
    let o = net.add_bank_verifier(&d("vdb.db"));
    assert!(text(&o).contains("network credential naming agency:bank-1"), "{}", text(&o));
    let api_port = free_port();
    let api_base = format!("https://127.0.0.1:{api_port}");
    // The validator reads certificate status from the CA service's status stream with its own
    // credential (--ca-service): it never opens the CA's database.
    // --db without --api-listen, or without a validator credential, does not start.
    let validator_cmd = |extra: &[&str]| {
        let mut c = Command::new(jpki_bin());
        c.args(["serve", "validator", "--ca-service", &ca_url, "--responders", &d("v"), "--crl-dir", &d("pub")])
            .args(["--db", &d("vdb.db")])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .env("JPKI_VALIDATOR_PASSPHRASE", PASS);
        c
    };
    let o = validator_cmd(&[]).envs(net.pki.env("validator")).output().unwrap();
    assert!(!o.status.success() && text(&o).contains("--api-listen"), "{}", text(&o));
    let o = validator_cmd(&["--api-listen", &format!("127.0.0.1:{api_port}")])
        .envs(net.pki.env("bank-1"))
        .output()
        .unwrap();
    assert!(!o.status.success() && text(&o).contains("validator:<name>"), "{}", text(&o));
    let _validator = Kill(
        validator_cmd(&["--api-listen", &format!("127.0.0.1:{api_port}")])
            .envs(net.pki.env("validator"))
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !text(&run("curl", &["-sf", &format!("{base}/health")])).starts_with("ok") {
        assert!(Instant::now() < deadline, "validator did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Hostile clients: 1,000 half-sent requests held open against the validator and 1,000
    // half-sent TLS handshakes against the national node. Cached OCSP answers on fresh
    // connections keep p99 < 50 ms with none failing, provision answers keep working, and the
    // held sockets are closed by the servers' header-read, handshake and idle timeouts within
    // 20 s.
    slowloris(&d, &url, &net, &resident).await;

    // openssl ocsp, with a nonce (live-signed) and without (pre-signed).
    for extra in [&[][..], &["-no_nonce"][..]] {
        let out = ocsp(&d, &url, "sig.pem", extra);
        assert!(out.contains("Response verify OK") && out.contains("sig.pem: good"), "{extra:?}: {out}");
        assert!(!out.contains("WARNING"), "{extra:?}: {out}");
    }

    // pyhanko-certvalidator (PyPI) validates the chain, fetching OCSP and CRLs from the URLs in
    // the certificates, in hard-fail mode.
    let py = |script: &str, args: &[String]| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("python").join(script);
        Command::new("python3").arg(root).args(args).output().unwrap()
    };
    let chain = |leaf: &str, int: &str, root: &str| vec![d(leaf), d(int), d(root)];
    let o = py("pyhanko_validate.py", &chain("sig.pem", "int.pem", "root.pem"));
    assert!(o.status.success() && text(&o).starts_with("valid"), "pyhanko: {}", text(&o));

    // Revocation: the responder says so within a second, without a restart.
    net.revoke(&sig_serial);
    let t = Instant::now();
    loop {
        let out = ocsp(&d, &url, "sig.pem", &["-no_nonce"]);
        if out.contains("sig.pem: revoked") {
            assert!(out.contains("Response verify OK") && out.contains("Reason: keyCompromise"), "{out}");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(1), "still not revoked after {:?}: {out}", t.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("revocation visible over OCSP after {:?}", t.elapsed());
    // The CA database read directly (--ca-db, read only) answers the same; the two sources
    // are exclusive, and one of them is needed.
    let db_port = free_port();
    let _db_validator = Kill(
        Command::new(jpki_bin())
            .args(["serve", "validator", "--ca-db", &d("ca.db"), "--responders", &d("v")])
            .args(["--listen", &format!("127.0.0.1:{db_port}")])
            .env("JPKI_VALIDATOR_PASSPHRASE", PASS)
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !text(&run("curl", &["-sf", &format!("http://127.0.0.1:{db_port}/health")])).starts_with("ok") {
        assert!(Instant::now() < deadline, "the --ca-db validator did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = ocsp(&d, &format!("http://127.0.0.1:{db_port}/ocsp"), "sig.pem", &["-no_nonce"]);
    assert!(out.contains("sig.pem: revoked") && out.contains("Response verify OK"), "--ca-db: {out}");
    for sources in [&["--ca-db", &d("ca.db"), "--ca-service", &ca_url][..], &[][..]] {
        let o = Command::new(jpki_bin())
            .args(["serve", "validator", "--responders", &d("v"), "--listen", "127.0.0.1:0"])
            .args(sources)
            .env("JPKI_VALIDATOR_PASSPHRASE", PASS)
            .output()
            .unwrap();
        assert!(!o.status.success() && text(&o).contains("--ca-"), "{sources:?}: {}", text(&o));
    }
    let out = ocsp(&d, &url, "sig.pem", &["-respout", &d("revoked.der")]);
    assert!(out.contains("sig.pem: revoked") && out.contains("Response verify OK"), "with nonce: {out}");
    let o = py("pyhanko_validate.py", &chain("sig.pem", "int.pem", "root.pem"));
    assert!(!o.status.success() && text(&o).starts_with("revoked"), "pyhanko: {}", text(&o));
    let o = py("pyhanko_validate.py", &chain("auth.pem", "auth-int.pem", "auth-root.pem"));
    assert!(o.status.success() && text(&o).starts_with("valid"), "pyhanko: {}", text(&o));

    // GET (RFC 6960 A.1) through curl: cache headers, and the body verifies.
    let o = run(
        "openssl",
        &["ocsp", "-issuer", &d("auth-int.pem"), "-cert", &d("auth.pem"), "-no_nonce", "-reqout", &d("req.der")],
    );
    assert!(o.status.success(), "{}", text(&o));
    let b64 = text(&run("openssl", &["base64", "-A", "-in", &d("req.der")]));
    let enc: String = b64
        .trim()
        .chars()
        .map(|c| match c {
            '/' => "%2F".to_string(),
            '+' => "%2B".to_string(),
            '=' => "%3D".to_string(),
            c => c.to_string(),
        })
        .collect();
    let o = run("curl", &["-s", "-D", &d("headers"), "-o", &d("resp.der"), &format!("{url}/{enc}")]);
    assert!(o.status.success(), "{}", text(&o));
    let headers = std::fs::read_to_string(d("headers")).unwrap().to_ascii_lowercase();
    for h in [
        "200",
        "content-type: application/ocsp-response",
        "cache-control: max-age=",
        "etag: \"",
        "last-modified: ",
        "expires: ",
    ] {
        assert!(headers.contains(h), "missing {h:?} in {headers}");
    }
    let o = run(
        "openssl",
        &[
            "ocsp",
            "-respin",
            &d("resp.der"),
            "-issuer",
            &d("auth-int.pem"),
            "-cert",
            &d("auth.pem"),
            "-CAfile",
            &d("auth-root.pem"),
            "-verify_other",
            &d("auth-int.pem"),
            "-no_nonce",
        ],
    );
    assert!(text(&o).contains("Response verify OK") && text(&o).contains("auth.pem: good"), "{}", text(&o));

    // A GET whose path is not base64 is malformedRequest too.
    let o = run("curl", &["-s", "-w", "%{http_code}", "-o", &d("bad-get.der"), &format!("{url}/not*base64!")]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "200");
    assert_eq!(std::fs::read(d("bad-get.der")).unwrap(), [0x30, 0x03, 0x0A, 0x01, 0x01], "malformedRequest");
    // A validator without responder keys refuses to start, saying what to run.
    std::fs::create_dir_all(d("empty")).unwrap();
    let o = Command::new(jpki_bin())
        .args(["serve", "validator", "--ca-db", &d("ca.db"), "--responders", &d("empty"), "--listen", "127.0.0.1:0"])
        .env("JPKI_VALIDATOR_PASSPHRASE", PASS)
        .output()
        .unwrap();
    assert!(!o.status.success() && text(&o).contains("jpki validator enroll"), "{}", text(&o));
    // OCSP errors are OCSP responses with HTTP 200.
    let o = run(
        "curl",
        &[
            "-s",
            "-w",
            "%{http_code}",
            "-o",
            &d("bad.der"),
            "-H",
            "Content-Type: application/ocsp-request",
            "--data-binary",
            "garbage",
            &url,
        ],
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "200");
    assert_eq!(std::fs::read(d("bad.der")).unwrap(), [0x30, 0x03, 0x0A, 0x01, 0x01], "malformedRequest");
    // Python `cryptography` parses every kind of response we sent.
    let o = py("parse_ocsp.py", &[d("resp.der"), d("revoked.der"), d("bad.der")]);
    let t = text(&o);
    assert!(o.status.success(), "cryptography: {t}");
    assert!(t.contains("resp.der: SUCCESSFUL GOOD") && t.contains("revoked.der: SUCCESSFUL REVOKED"), "{t}");
    assert!(t.contains("bad.der: MALFORMED_REQUEST"), "{t}");
    // An issuer we do not serve: unauthorized.
    let o = run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &d("other.key"),
            "-subj",
            "/CN=other",
            "-out",
            &d("other.pem"),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = run("openssl", &["ocsp", "-issuer", &d("other.pem"), "-cert", &d("sig.pem"), "-url", &url, "-no_nonce"]);
    assert!(text(&o).contains("unauthorized"), "{}", text(&o));

    // The CRLs it serves agree: after republishing, the signature certificate is revoked on
    // its shard's CRL, the authentication certificate is OK.
    let o = net.jpki(&["ca", "crl", "--actor", "op-1", "--out", &d("pub")]);
    assert!(o.status.success(), "{}", text(&o));
    for (cert, root, int, expect) in [
        ("sig.pem", "root.pem", "int.pem", "certificate revoked"),
        ("auth.pem", "auth-root.pem", "auth-int.pem", ": OK"),
    ] {
        let x = text(&run("openssl", &["x509", "-in", &d(cert), "-noout", "-text"]));
        let cdp =
            x.lines().find_map(|l| l.trim().strip_prefix("URI:").filter(|u| u.ends_with(".crl"))).unwrap().to_owned();
        assert!(cdp.starts_with(&base), "{cdp}");
        let o = run("curl", &["-s", "-D", &d("crl-headers"), "-o", &d("crl.der"), &cdp]);
        assert!(o.status.success(), "{}", text(&o));
        let h = std::fs::read_to_string(d("crl-headers")).unwrap().to_ascii_lowercase();
        assert!(h.contains("content-type: application/pkix-crl") && h.contains("etag: "), "{h}");
        let o = run("openssl", &["crl", "-inform", "DER", "-in", &d("crl.der"), "-out", &d("crl.pem")]);
        assert!(o.status.success(), "{}", text(&o));
        let o = run(
            "openssl",
            &["verify", "-crl_check", "-CAfile", &d(root), "-untrusted", &d(int), "-CRLfile", &d("crl.pem"), &d(cert)],
        );
        assert!(text(&o).contains(expect), "{cert}: {}", text(&o));
        // `jpki verify cert` agrees (exit 0 valid, 1 invalid), with the served CRL (DER) and
        // the root's ARL for the intermediate.
        let arl = cdp.rsplit_once('/').map(|(base, _)| format!("{base}/arl.crl")).unwrap();
        let arl = arl.replace("/auth-13/g1/", "/auth-root/g1/").replace("/sign-13/g1/", "/sign-root/g1/");
        let o = run("curl", &["-sf", "-o", &d("arl.der"), &arl]);
        assert!(o.status.success(), "ARL {arl}: {}", text(&o));
        let o = Command::new(jpki_bin())
            .args(["verify", "cert", &d(cert), "--anchor", &d(root), "--intermediate", &d(int)])
            .args(["--crl", &d("crl.der"), "--crl", &d("arl.der"), "--json"])
            .output()
            .unwrap();
        std::fs::copy(d("crl.der"), d(&format!("{cert}.crl.der"))).unwrap();
        std::fs::copy(d("arl.der"), d(&format!("{cert}.arl.der"))).unwrap();
        let want = if expect == ": OK" { 0 } else { 1 };
        assert_eq!(o.status.code(), Some(want), "jpki verify {cert}: {}", text(&o));
        if want == 1 {
            assert!(
                text(&o).contains("\"valid\":false") && text(&o).to_lowercase().contains("revoked"),
                "{}",
                text(&o)
            );
        }
    }
    // Without revocation checking the revoked certificate's path is valid; at a time before it
    // was issued it is not; a wrong anchor finds no path; a missing file is a usage error.
    let verify = |args: &[&str]| Command::new(jpki_bin()).args(["verify", "cert"]).args(args).output().unwrap();
    // Over OCSP (the responders named in the certificates): revoked, and good.
    let o = verify(&[&d("sig.pem"), "--anchor", &d("root.pem"), "--intermediate", &d("int.pem"), "--ocsp"]);
    assert_eq!(o.status.code(), Some(1), "--ocsp revoked: {}", text(&o));
    assert!(text(&o).to_lowercase().contains("revoked"), "{}", text(&o));
    let o = verify(&[&d("auth.pem"), "--anchor", &d("auth-root.pem"), "--intermediate", &d("auth-int.pem"), "--ocsp"]);
    assert_eq!(o.status.code(), Some(0), "--ocsp good: {}", text(&o));
    let o = verify(&[&d("sig.pem"), "--anchor", &d("root.pem"), "--intermediate", &d("int.pem"), "--no-revocation"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).starts_with("valid: "), "{}", text(&o));
    let o = verify(&[
        &d("sig.pem"),
        "--anchor",
        &d("root.pem"),
        "--intermediate",
        &d("int.pem"),
        "--no-revocation",
        "--at",
        "2001-01-01T00:00:00Z",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let o =
        verify(&[&d("sig.pem"), "--anchor", &d("auth-root.pem"), "--intermediate", &d("int.pem"), "--no-revocation"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let o = verify(&[&d("nope.pem"), "--anchor", &d("root.pem")]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = verify(&[&d("sig.pem"), "--anchor", &d("headers")]);
    assert_eq!(o.status.code(), Some(2), "not a certificate: {}", text(&o));
    let o = verify(&[&d("sig.pem")]);
    assert_eq!(o.status.code(), Some(2), "no anchor: {}", text(&o));
    // Signed documents, as `openssl cms -sign` makes them with the signature key.
    std::fs::write(d("doc.txt"), "転入届の電子申請\n").unwrap();
    for (flag, out) in [("-binary", "doc.p7s"), ("-nodetach", "doc.p7m")] {
        let o = run(
            "openssl",
            &[
                "cms",
                "-sign",
                flag,
                "-in",
                &d("doc.txt"),
                "-signer",
                &d("sig.pem"),
                "-inkey",
                &d("sign.key"),
                "-outform",
                "DER",
                "-out",
                &d(out),
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
    }
    let doc = |args: &[&str]| Command::new(jpki_bin()).args(["verify", "doc"]).args(args).output().unwrap();
    let chain = ["--anchor", &d("root.pem"), "--intermediate", &d("int.pem")];
    let o = doc(&[&[d("doc.p7m").as_str(), "--no-revocation"][..], &chain].concat());
    assert_eq!(o.status.code(), Some(0), "attached: {}", text(&o));
    assert!(text(&o).contains("山田　花子") && text(&o).contains("signature:   good"), "{}", text(&o));
    assert!(text(&o).contains("date of birth") && text(&o).contains("signed at:   20"), "{}", text(&o));
    let o =
        doc(&[&[d("doc.p7s").as_str(), "--content", &d("doc.txt"), "--no-revocation", "--json"][..], &chain].concat());
    assert_eq!(o.status.code(), Some(0), "detached: {}", text(&o));
    assert!(text(&o).contains("\"valid\":true"), "{}", text(&o));
    // Revocation counts: the signature certificate was revoked before this signature.
    let o =
        doc(&[&[d("doc.p7m").as_str(), "--crl", &d("sig.pem.crl.der"), "--crl", &d("sig.pem.arl.der")][..], &chain]
            .concat());
    assert_eq!(o.status.code(), Some(1), "revoked signer: {}", text(&o));
    assert!(text(&o).to_lowercase().contains("revoked"), "{}", text(&o));
    // Tampered content; a detached signature without its content; not CMS at all.
    std::fs::write(d("doc2.txt"), "転入届の電子申請（改ざん）\n").unwrap();
    let o = doc(&[&[d("doc.p7s").as_str(), "--content", &d("doc2.txt"), "--no-revocation"][..], &chain].concat());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("does not match the signed message digest"), "{}", text(&o));
    let o = doc(&[&[d("doc.p7s").as_str(), "--no-revocation"][..], &chain].concat());
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = doc(&[&[d("sig.pem").as_str(), "--no-revocation"][..], &chain].concat());
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // The verification API: registered verifiers only, purposes checked, every query logged.
    let b64 = |path: &str, der: bool| {
        let der_path = if der {
            path.to_string()
        } else {
            let out = format!("{path}.der");
            assert!(run("openssl", &["x509", "-in", path, "-outform", "DER", "-out", &out]).status.success());
            out
        };
        text(&run("openssl", &["base64", "-A", "-in", &der_path])).trim().to_string()
    };
    let bank = net.pki.client("bank-1", Some(Party::Validator("v1".into())));
    let other = net.pki.client("other", Some(Party::Validator("v1".into())));
    let auth_b64 = b64(&d("auth.pem"), false);
    let (code, body) = api(
        &bank,
        &format!("{api_base}/v1/verify/cert"),
        format!(r#"{{"purpose":"account-opening","certificate":"{auth_b64}"}}"#),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(r#""valid":true"#) && body.contains(r#""status":"good""#), "{body}");
    let sig_b64 = b64(&d("sig.pem"), false);
    let (code, body) = api(
        &bank,
        &format!("{api_base}/v1/verify/cert"),
        format!(r#"{{"purpose":"account-opening","certificate":"{sig_b64}"}}"#),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(r#""valid":false"#) && body.contains("revoked"), "{body}");
    let doc_b64 = b64(&d("doc.p7m"), true);
    let (code, body) = api(
        &bank,
        &format!("{api_base}/v1/verify/doc"),
        format!(r#"{{"purpose":"account-opening","signed":"{doc_b64}"}}"#),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("山田　花子") && body.contains(r#""signature":true"#) && body.contains("revoked"), "{body}");
    // Without a client certificate (curl trusting the network CA) the handshake is refused.
    let o = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(net.pki.ca_pem())
        .args(["-H", "Content-Type: application/json", "--data"])
        .arg(format!(r#"{{"purpose":"account-opening","certificate":"{auth_b64}"}}"#))
        .arg(format!("{api_base}/v1/verify/cert"))
        .output()
        .unwrap();
    assert!(!o.status.success(), "no client certificate: curl {:?} {}", o.status, text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "000", "no HTTP answer without a client certificate");
    // A party of the network that is not a registered verifier: 403, and logged.
    let (code, body) = api(
        &other,
        &format!("{api_base}/v1/verify/cert"),
        format!(r#"{{"purpose":"account-opening","certificate":"{auth_b64}"}}"#),
    )
    .await;
    assert_eq!(code, 403, "{body}");
    // A purpose not registered for the verifier: 403, and logged.
    let (code, body) = api(
        &bank,
        &format!("{api_base}/v1/verify/cert"),
        format!(r#"{{"purpose":"marketing","certificate":"{auth_b64}"}}"#),
    )
    .await;
    assert_eq!(code, 403, "{body}");
    // The plain listener has no verification API.
    for route in ["/v1/verify/cert", "/v1/verify/doc"] {
        let o = run(
            "curl",
            &[
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-H",
                "Content-Type: application/json",
                "--data",
                r#"{"purpose":"account-opening"}"#,
                &format!("{base}{route}"),
            ],
        );
        assert_eq!(String::from_utf8_lossy(&o.stdout), "404", "{route} on the plain listener");
    }
    let o = net.jpki(&["validator", "usage", "--db", &d("vdb.db")]);
    assert!(o.status.success(), "{}", text(&o));
    let usage = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        usage.lines().any(|l| l.starts_with("bank-1")
            && l.contains("account-opening")
            && l.contains("cert")
            && l.trim_end().ends_with(" 2")),
        "{usage}"
    );
    assert!(
        usage.lines().any(|l| l.starts_with("bank-1") && l.contains("marketing") && l.trim_end().ends_with(" 1")),
        "refusals are logged too: {usage}"
    );
    assert!(
        usage.lines().any(|l| l.starts_with("urn:jpki:agency:other") && l.trim_end().ends_with(" 1")),
        "a party that is not a registered verifier is logged: {usage}"
    );
    assert_eq!(usage.lines().count(), 4, "nothing else is logged (not the refused handshake): {usage}");

    // A path outside the CRL directory is not served.
    let o = run(
        "curl",
        &["-s", "-o", "/dev/null", "-w", "%{http_code}", &format!("{base}/crl/..%2F..%2Fetc%2Fpasswd.crl")],
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "404");
}

/// `POST url` with the JSON `body` through `client`: the status and the body.
async fn api(client: &reqwest::Client, url: &str, body: String) -> (u16, String) {
    let r = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e:?}"));
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Opens `n` connections to `addr`, each sending the start of `first` (a request header or a
/// TLS record) and then nothing.
async fn half_sent(addr: &str, n: usize, first: &[u8]) -> Vec<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(first).await.unwrap();
        held.push(s);
    }
    held
}

/// Waits until every held socket has been closed by the server; returns how long it took.
async fn all_closed(held: Vec<tokio::net::TcpStream>, within: Duration) -> Duration {
    use tokio::io::AsyncReadExt;
    let t = Instant::now();
    for mut s in held {
        let mut buf = [0u8; 512];
        loop {
            let left = within.saturating_sub(t.elapsed());
            match tokio::time::timeout(left, s.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => break,
                Ok(Ok(_)) => continue,
                Err(_) => panic!("a half-sent connection was still open after {within:?}"),
            }
        }
    }
    t.elapsed()
}

async fn slowloris(d: &dyn Fn(&str) -> String, url: &str, net: &Network, resident: &str) {
    let o = run(
        "openssl",
        &["ocsp", "-issuer", &d("int.pem"), "-cert", &d("sig.pem"), "-no_nonce", "-reqout", &d("req.der")],
    );
    assert!(std::path::Path::new(&d("req.der")).exists(), "{}", text(&o));
    let req = std::fs::read(d("req.der")).unwrap();
    let validator_addr = url.trim_start_matches("http://").trim_end_matches("/ocsp").to_owned();
    let national_addr = net.national.trim_start_matches("https://").to_owned();
    let held_v =
        half_sent(&validator_addr, 1000, b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nX-Slow: a").await;
    // The national node speaks only TLS: the first bytes of a ClientHello record (handshake,
    // TLS 1.0 record version, 512 bytes announced; ClientHello, 508 bytes) and then nothing.
    let held_n = half_sent(&national_addr, 1000, &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03]).await;

    // Cached OCSP answers, each on a fresh connection.
    let mut times = Vec::new();
    for _ in 0..200 {
        let c = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
        let t = Instant::now();
        let r = c
            .post(url)
            .header("content-type", "application/ocsp-request")
            .body(req.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("OCSP request failed under load: {e}"));
        assert!(r.status().is_success());
        let body = r.bytes().await.unwrap();
        times.push(t.elapsed());
        // responseStatus successful (0), not tryLater: the held sockets cost no request slot.
        let at = 2 + if body[1] & 0x80 != 0 { usize::from(body[1] & 0x7f) } else { 0 };
        assert_eq!(&body[at..at + 3], &[0x0a, 0x01, 0x00], "not a successful OCSP response");
    }
    times.sort_unstable();
    let p99 = times[times.len() * 99 / 100 - 1];
    eprintln!("OCSP under 1,000 half-sent connections: median {:?}, p99 {p99:?}", times[times.len() / 2]);
    assert!(p99 < Duration::from_millis(50), "p99 {p99:?} with 1,000 half-sent connections");

    // Provision at the national node keeps answering (the CA, a registered agency, asking).
    let q = serde_json::json!({"purpose": "B1-020", "by": {"resident_code": resident}, "fields": ["name"]});
    let ca = net.pki.client("ca", Some(identity::party::Party::National));
    for _ in 0..20 {
        let r = ca
            .post(format!("{}/v1/provision/query", net.national))
            .json(&q)
            .send()
            .await
            .unwrap_or_else(|e| panic!("provision failed under load: {e}"));
        assert!(r.status().is_success(), "{}", r.text().await.unwrap_or_default());
    }

    let (tv, tn) =
        tokio::join!(all_closed(held_v, Duration::from_secs(20)), all_closed(held_n, Duration::from_secs(20)));
    eprintln!("half-sent connections closed after {tv:?} (validator), {tn:?} (national)");
}
