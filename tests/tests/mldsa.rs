//! An ML-DSA-65 hierarchy (issue 11) as real processes: `jpki ca init --algorithm ml-dsa-65`,
//! card certificates (P-384 keys: a card under a non-RSA issuing CA holds P-384) issued under
//! it, a revocation,
//! the CRLs and ARLs, and OCSP answers from `jpki serve validator` whose responder keys `jpki
//! validator enroll` made in the CA's algorithm. Every ML-DSA signature is checked by two
//! independent verifiers, pinned and installed by `cargo xtask oracles` into
//! `target/oracles/venv`: pyca/cryptography 50.0.0 (its wheel's OpenSSL 4.0) and Go 1.27.3's
//! crypto/x509; the profiles by pkilint; the paths by our own `jpki verify cert`. A flipped byte
//! fails in each, and a document the card key signed verifies with `jpki verify doc` through the
//! ML-DSA chain. (The system's OpenSSL 3.0 cannot check ML-DSA at all.)
#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a panic is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{Kill, Network, csr, free_port, jpki_bin, text};

/// `target/oracles/venv` of the workspace (`cargo xtask oracles`).
fn venv() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let venv = root.join("target/oracles/venv");
    assert!(
        venv.join("bin/go").exists() && venv.join("bin/python").exists(),
        "the ML-DSA oracles are not installed in {}: run `cargo xtask oracles`",
        venv.display()
    );
    venv
}

/// The oracles: `python x509check.py MODE ARGS` and the Go `x509check MODE ARGS`.
struct Oracles {
    python: PathBuf,
    script: PathBuf,
    go: PathBuf,
}

impl Oracles {
    /// Builds the Go checker with the pinned toolchain, offline (standard library only).
    fn new(dir: &Path) -> Oracles {
        let venv = venv();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let go = dir.join("x509check");
        let o = Command::new(venv.join("bin/go"))
            .args(["build", "-o"])
            .arg(&go)
            .arg(root.join("go/x509check.go"))
            .envs([("GOPROXY", "off"), ("GOTOOLCHAIN", "local"), ("GOFLAGS", "")])
            .env("GOCACHE", venv.parent().unwrap().join("go-cache"))
            .env("GOPATH", venv.parent().unwrap().join("gopath"))
            .output()
            .unwrap();
        assert!(o.status.success(), "go build: {}", text(&o));
        let python = venv.join("bin/python");
        let script = root.join("python/x509check.py");
        Oracles { python, script, go }
    }

    fn py(&self, args: &[&str]) -> Output {
        Command::new(&self.python).arg(&self.script).args(args).output().unwrap()
    }

    fn go(&self, args: &[&str]) -> Output {
        Command::new(&self.go).args(args).output().unwrap()
    }

    /// Both accept: each printed a line starting with OK.
    fn accept(&self, args: &[&str]) {
        for (who, o) in [("cryptography", self.py(args)), ("Go", self.go(args))] {
            assert!(o.status.success() && text(&o).starts_with("OK"), "{who} {args:?}: {}", text(&o));
            print!("{who:<12} {}: {}", args[0], text(&o));
        }
    }

    /// Both refuse.
    fn refuse(&self, args: &[&str]) {
        for (who, o) in [("cryptography", self.py(args)), ("Go", self.go(args))] {
            assert!(!o.status.success() && text(&o).starts_with("FAIL"), "{who} must refuse {args:?}: {}", text(&o));
            print!("{who:<12} {} (flipped): {}", args[0], text(&o));
        }
    }
}

/// A P-384 key `dir/NAME.key` and its CSR signed with ecdsa-with-SHA384 (path returned).
fn p384_csr(dir: &Path, name: &str) -> String {
    let key = dir.join(format!("{name}.key")).display().to_string();
    let csr = dir.join(format!("{name}.csr")).display().to_string();
    let o = Command::new("openssl").args(["ecparam", "-name", "secp384r1", "-genkey", "-noout", "-out", &key]).output();
    assert!(o.as_ref().unwrap().status.success(), "{}", text(&o.unwrap()));
    let o = Command::new("openssl")
        .args(["req", "-new", "-sha384", "-key", &key, "-subj", "/CN=ignored", "-out", &csr])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    csr
}

/// A copy of the DER file `src` at `dst` with one bit flipped inside its ML-DSA-65 signature
/// value: the last BIT STRING of 3,309 bytes (`03 82 0c ee 00`: the signature ends a
/// certificate or a CRL; in an OCSP response the responder's certificate follows it).
fn flipped(src: &str, dst: &str) -> String {
    let mut b = std::fs::read(src).unwrap();
    let at = b.windows(5).rposition(|w| w == [0x03, 0x82, 0x0c, 0xee, 0x00]).expect("an ML-DSA-65 signature");
    // In an OCSP response the last one is the responder certificate's; the response's own is
    // the one before it.
    let at = if src.ends_with(".ocsp") {
        b[..at].windows(5).rposition(|w| w == [0x03, 0x82, 0x0c, 0xee, 0x00]).expect("the response signature")
    } else {
        at
    };
    b[at + 100] ^= 0x01;
    std::fs::write(dst, b).unwrap();
    dst.to_owned()
}

/// DER of a PEM file (the first block).
fn der_of(pem: &str) -> Vec<u8> {
    let s = std::fs::read_to_string(pem).unwrap();
    let body: String = s
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(body).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ml_dsa_65_hierarchy_is_verified_by_independent_tools() {
    let dir = tempfile::tempdir().unwrap();
    let d = |f: &str| dir.path().join(f).display().to_string();
    let oracles = Oracles::new(dir.path());
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let url = format!("{base}/ocsp");
    let net =
        Network::start_with(dir.path(), &["--algorithm", "ml-dsa-65", "--crl-base", &base, "--ocsp-url", &url]).await;
    assert!(net.init_output.contains("ml-dsa-65"), "{}", net.init_output);

    // A resident's card certificates: P-384 keys, as `GET /v1/card/profile` tells a window for
    // an issuing CA off RSA; an RSA card key is refused (card_algorithm).
    let resident = net.resident("山田　花子", "1980-02-29").await;
    let o = net.jpki(
        &common::ca_issue_args("w1", &resident, &csr(dir.path(), "rsa"), &p384_csr(dir.path(), "auth0"), &d("o0"))
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(!o.status.success() && text(&o).contains("card_algorithm"), "{}", text(&o));
    let (sign_csr, auth_csr) = (p384_csr(dir.path(), "sign"), p384_csr(dir.path(), "auth"));
    let (_, auth_serial) = net.issue_pair(dir.path(), &resident, &sign_csr, &auth_csr, &d("out"));
    for (file, ca) in [("root", "sign-root"), ("int", "sign-13"), ("auth-root", "auth-root"), ("auth-int", "auth-13")] {
        let o = net.jpki(&["ca", "cert", "--actor", "op-1", ca]);
        assert!(o.status.success(), "{}", text(&o));
        std::fs::write(d(&format!("{file}.pem")), &o.stdout).unwrap();
    }
    // Sizes, for the record (docs/ca.md): ML-DSA-65 signatures are 3,309 bytes, its keys 1,952.
    let (root_len, int_len) = (der_of(&d("root.pem")).len(), der_of(&d("int.pem")).len());
    assert!((5_000..6_500).contains(&root_len) && (5_000..6_500).contains(&int_len), "{root_len} {int_len}");
    println!(
        "sizes: root {root_len} B, issuing CA {int_len} B, P-384 card certificate {} B",
        der_of(&d("sig.pem")).len()
    );

    // Signatures: every certificate checks with its issuer's ML-DSA key, in both oracles.
    for (issuer, cert) in [
        ("root", "root"),
        ("root", "int"),
        ("int", "sig"),
        ("auth-root", "auth-root"),
        ("auth-root", "auth-int"),
        ("auth-int", "auth"),
    ] {
        oracles.accept(&["cert", &d(&format!("{issuer}.pem")), &d(&format!("{cert}.pem"))]);
    }
    // Paths: cryptography's verifier and Go's x509.Verify build and check both chains.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 60;
    let now = now.to_string();
    oracles.accept(&["chain", &d("root.pem"), &d("int.pem"), &d("sig.pem"), &now]);
    oracles.accept(&["chain", &d("auth-root.pem"), &d("auth-int.pem"), &d("auth.pem"), &now]);
    // A flipped byte in the issuing CA's signature, or a certificate under the other root, fails.
    std::fs::write(d("int.der"), der_of(&d("int.pem"))).unwrap();
    let bad_int = flipped(&d("int.der"), &d("int-flipped.der"));
    oracles.refuse(&["cert", &d("root.pem"), &bad_int]);
    oracles.refuse(&["chain", &d("root.pem"), &bad_int, &d("sig.pem"), &now]);
    oracles.refuse(&["cert", &d("auth-int.pem"), &d("sig.pem")]);

    // pkilint on the profiles: clean at ERROR. (pkilint 0.13.3 does not know ML-DSA keys: the
    // roots get a NOTICE "Self-issued CA certificate uses unsupported public key algorithm".)
    for cert in ["root", "int", "sig", "auth-root", "auth-int", "auth"] {
        std::fs::write(d("lint.der"), der_of(&d(&format!("{cert}.pem")))).unwrap();
        let o = Command::new("lint_pkix_cert")
            .args(["lint", "-s", "ERROR", "--document-format", "DER", &d("lint.der")])
            .output()
            .unwrap();
        assert!(o.status.success(), "pkilint {cert}: {}", text(&o));
    }

    // Revoke the authentication certificate, publish every CRL and ARL.
    let o = net.jpki(&[
        "ca",
        "revoke",
        "--actor",
        "op-1",
        "--serial",
        &auth_serial,
        "--reason",
        "key-compromise",
        "--cause",
        "e2e",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = net.jpki(&["ca", "crl", "--actor", "op-1", "--out", &d("pub")]);
    assert!(o.status.success(), "{}", text(&o));
    let crls = |slug: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d(&format!("pub/crl/{slug}/g1")))
            .unwrap()
            .map(|e| e.unwrap().path().display().to_string())
            .filter(|p| p.ends_with(".crl"))
            .collect();
        v.sort();
        v
    };
    let (sign_crls, auth_crls) = (crls("sign-13"), crls("auth-13"));
    assert_eq!((sign_crls.len(), auth_crls.len()), (2, 2), "two shards each");
    for (issuer, list) in
        [("int", &sign_crls), ("auth-int", &auth_crls), ("root", &crls("sign-root")), ("auth-root", &crls("auth-root"))]
    {
        for crl in list.iter() {
            oracles.accept(&["crl", &d(&format!("{issuer}.pem")), crl]);
            let kind = if crl.ends_with("arl.crl") { "ARL" } else { "CRL" };
            let o = Command::new("lint_crl")
                .args(["lint", "-t", kind, "-p", "PKIX", "-s", "ERROR", "--document-format", "DER", crl])
                .output()
                .unwrap();
            assert!(o.status.success(), "pkilint {crl}: {}", text(&o));
        }
    }
    // The revoked serial is on exactly one shard (cryptography reads the entries).
    let listed = auth_crls
        .iter()
        .filter(|crl| oracles.py(&["crl", &d("auth-int.pem"), crl, &auth_serial]).status.success())
        .count();
    assert_eq!(listed, 1, "{auth_serial} on one shard");
    let bad_crl = flipped(&auth_crls[0], &d("flipped.crl"));
    oracles.refuse(&["crl", &d("auth-int.pem"), &bad_crl]);

    // Our own path validation (`jpki verify cert`, certval with the ML-DSA-65 verifier).
    let verify = |leaf: &str, root: &str, int: &str, crls: &[String]| {
        let mut c = Command::new(jpki_bin());
        c.args(["verify", "cert", leaf, "--anchor", root, "--intermediate", int]);
        for crl in crls {
            c.args(["--crl", crl]);
        }
        if crls.is_empty() {
            c.arg("--no-revocation");
        }
        c.output().unwrap()
    };
    let sign_rev: Vec<String> = sign_crls.iter().cloned().chain(crls("sign-root")).collect();
    let auth_rev: Vec<String> = auth_crls.iter().cloned().chain(crls("auth-root")).collect();
    let o = verify(&d("sig.pem"), &d("root.pem"), &d("int.pem"), &sign_rev);
    assert!(o.status.success(), "jpki verify cert: {}", text(&o));
    let o = verify(&d("auth.pem"), &d("auth-root.pem"), &d("auth-int.pem"), &auth_rev);
    assert_eq!(o.status.code(), Some(1), "revoked: {}", text(&o));
    assert!(text(&o).to_lowercase().contains("revoked"), "{}", text(&o));
    let o = verify(&d("sig.pem"), &d("root.pem"), &bad_int, &[]);
    assert_eq!(o.status.code(), Some(1), "a flipped byte in the issuing CA's signature: {}", text(&o));
    let o = verify(&d("sig.pem"), &d("root.pem"), &d("int.pem"), &[sign_crls[0].clone(), bad_crl.clone()]);
    assert!(!o.status.success(), "a CRL that does not verify is never used: {}", text(&o));

    // A document signed with the card's P-384 signature key (`openssl cms -sign`: OpenSSL 3.0
    // only carries the ML-DSA-signed certificate) verifies with `jpki verify doc`, the signer's
    // chain checked through the ML-DSA hierarchy; under the wrong intermediate it does not.
    std::fs::write(d("doc.txt"), "転入届の電子申請\n").unwrap();
    let o = Command::new("openssl")
        .args(["cms", "-sign", "-nodetach", "-in", &d("doc.txt"), "-signer", &d("sig.pem"), "-inkey", &d("sign.key")])
        .args(["-outform", "DER", "-out", &d("doc.p7m")])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let doc = |int: &str| {
        Command::new(jpki_bin())
            .args(["verify", "doc", &d("doc.p7m"), "--anchor", &d("root.pem"), "--intermediate", int])
            .args(sign_rev.iter().flat_map(|c| ["--crl", c.as_str()]))
            .output()
            .unwrap()
    };
    let o = doc(&d("int.pem"));
    assert_eq!(o.status.code(), Some(0), "jpki verify doc: {}", text(&o));
    assert!(text(&o).contains("山田　花子") && text(&o).contains("signature:   good"), "{}", text(&o));
    let o = doc(&bad_int);
    assert_eq!(o.status.code(), Some(1), "a flipped byte in the issuing CA's signature: {}", text(&o));

    // OCSP: the validator enrols (responder keys in its CAs' algorithm: ML-DSA-65) and answers.
    net.pki.issue("validator", "validator:v1", true);
    let (_ca_service, ca_url) = net.serve_ca(&"00".repeat(32)).await;
    let mut env = net.pki.env("validator");
    env.push(("JPKI_VALIDATOR_PASSPHRASE".into(), "validator-test-passphrase".into()));
    env.push(("JPKI_CA_URL".into(), ca_url.clone()));
    let o = common::jpki(&["validator", "enroll", "--out", &d("v")], &env);
    assert!(o.status.success(), "{}", text(&o));
    let responder = d("v/sign-13-g1.pem");
    oracles.accept(&["cert", &d("int.pem"), &responder]);
    let _validator = Kill(
        Command::new(jpki_bin())
            .args(["serve", "validator", "--ca-service", &ca_url, "--responders", &d("v"), "--crl-dir", &d("pub")])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !Command::new("curl").args(["-sf", &format!("{base}/health")]).output().unwrap().stdout.starts_with(b"ok") {
        assert!(Instant::now() < deadline, "validator did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (cert, int, status) in [("sig", "int", "GOOD"), ("auth", "auth-int", "REVOKED")] {
        let resp = d(&format!("{cert}.ocsp"));
        let o = oracles.py(&["ocsp-fetch", &url, &d(&format!("{int}.pem")), &d(&format!("{cert}.pem")), &resp]);
        assert!(o.status.success(), "{}", text(&o));
        let o = oracles.py(&["ocsp", &d(&format!("{int}.pem")), &resp]);
        assert!(o.status.success() && text(&o).contains(&format!("ML-DSA-65 status {status}")), "{}", text(&o));
        let responder = d(&format!("v/{}-g1.pem", if cert == "sig" { "sign-13" } else { "auth-13" }));
        let o = oracles.go(&["ocsp", &responder, &resp]);
        assert!(o.status.success() && text(&o).starts_with("OK ML-DSA-65"), "Go ocsp: {}", text(&o));
        let bad = flipped(&resp, &d(&format!("{cert}-flipped.ocsp")));
        let o = oracles.py(&["ocsp", &d(&format!("{int}.pem")), &bad]);
        assert!(!o.status.success() && text(&o).starts_with("FAIL"), "cryptography must refuse: {}", text(&o));
        let o = oracles.go(&["ocsp", &responder, &bad]);
        assert!(!o.status.success() && text(&o).starts_with("FAIL"), "Go must refuse: {}", text(&o));
    }
    // And our own client: `jpki verify cert --ocsp` checks the ML-DSA-signed answers.
    let o = Command::new(jpki_bin())
        .args(["verify", "cert", &d("sig.pem"), "--anchor", &d("root.pem"), "--intermediate", &d("int.pem"), "--ocsp"])
        .output()
        .unwrap();
    assert!(o.status.success(), "jpki verify cert --ocsp: {}", text(&o));
    let o = Command::new(jpki_bin())
        .args(["verify", "cert", &d("auth.pem"), "--anchor", &d("auth-root.pem")])
        .args(["--intermediate", &d("auth-int.pem"), "--ocsp"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "revoked over OCSP: {}", text(&o));
}

/// A same-name re-key of an RSA-2048 root to ML-DSA-65 by ceremony (`jpki ca ceremony run`):
/// NewWithOld is signed with the old RSA key (what an old verifier can check), OldWithNew with
/// the new ML-DSA key; both independent tools check each link with the other generation's key,
/// and refuse a flipped one.
#[test]
fn a_root_is_re_keyed_to_ml_dsa_65_with_links_signed_by_each_algorithm() {
    let dir = tempfile::tempdir().unwrap();
    let d = |f: &str| dir.path().join(f).display().to_string();
    let oracles = Oracles::new(dir.path());
    let jpki = |args: &[&str]| common::local_ca(dir.path(), args, &[]);
    assert!(jpki(&["ca", "init"]).status.success());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let rfc = common::rfc3339;
    std::fs::write(
        d("c.toml"),
        format!(
            "ca = \"sign-root\"\ngeneration = 2\nalgorithm = \"ml-dsa-65\"\nkey = \"software\"\n\
             not_before = \"{}\"\nactivation = \"{}\"\nname = \"same\"\n",
            rfc(now),
            rfc(now + 86_400)
        ),
    )
    .unwrap();
    let o = jpki(&["ca", "ceremony", "run", &d("c.toml")]);
    assert!(o.status.success() && text(&o).matches("done:").count() == 5, "{}", text(&o));
    let status = text(&jpki(&["ca", "ceremony", "status", "--ca", "sign-root"]));
    assert!(status.contains("ml-dsa-65") && status.contains("pending"), "{status}");
    let serial = |dir: &str| {
        let line = status.lines().find(|l| l.contains(&format!("link {dir}"))).unwrap_or_else(|| panic!("{status}"));
        line.rsplit(' ').next().unwrap().to_owned()
    };
    let pem = |args: &[&str], file: &str| {
        let o = jpki(args);
        assert!(o.status.success(), "{}", text(&o));
        std::fs::write(d(file), &o.stdout).unwrap();
        d(file)
    };
    let old = pem(&["ca", "cert", "sign-root", "--generation", "1"], "g1.pem");
    let new = pem(&["ca", "cert", "sign-root", "--generation", "2"], "g2.pem");
    let nwo = pem(&["ca", "show", &serial("new-with-old"), "--pem"], "nwo.pem");
    let own = pem(&["ca", "show", &serial("old-with-new"), "--pem"], "own.pem");
    oracles.accept(&["cert", &old, &nwo]);
    oracles.accept(&["cert", &new, &own]);
    oracles.refuse(&["cert", &old, &own]);
    let der = der_of(&own);
    std::fs::write(d("own.der"), der).unwrap();
    oracles.refuse(&["cert", &new, &flipped(&d("own.der"), &d("own-flipped.der"))]);
}
