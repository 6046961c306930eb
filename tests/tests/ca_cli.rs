//! The CA operator CLI (`jpki ca …`) as real processes: issuance over HTTP from a running
//! identity network (municipality → prefecture → national), a crash injected mid-issuance and
//! resolved by the next run, and CA keys on a SoftHSM2 token through PKCS#11 — every artefact
//! checked with `openssl`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a panic is a failed test

mod common;

use std::path::Path;
use std::process::{Child, Command, Output};

use common::{free_port, jpki_bin, ready};

const PASS: &str = "ca-cli-test-passphrase";

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn openssl(args: &[&str]) -> Output {
    Command::new("openssl").args(args).output().unwrap()
}

fn serve(args: &[&str]) -> Kill {
    Kill(Command::new(jpki_bin()).args(args).env_remove("JPKI_DB").spawn().unwrap())
}

fn csr(dir: &Path, name: &str) -> String {
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let o = openssl(&["genrsa", "-out", key.to_str().unwrap(), "2048"]);
    assert!(o.status.success(), "{}", text(&o));
    let o =
        openssl(&["req", "-new", "-key", key.to_str().unwrap(), "-subj", "/CN=ignored", "-out", csr.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    csr.display().to_string()
}

#[tokio::test]
async fn issuance_over_http_survives_a_crash_between_tbs_and_signature() {
    let dir = tempfile::tempdir().unwrap();
    let d = |f: &str| dir.path().join(f).display().to_string();
    let (mp, pp, np) = (free_port(), free_port(), free_port());
    let (murl, purl, nurl) =
        (format!("http://127.0.0.1:{mp}"), format!("http://127.0.0.1:{pp}"), format!("http://127.0.0.1:{np}"));
    let _m = serve(&[
        "serve",
        "municipality",
        "--db",
        &d("m.db"),
        "--code",
        "131016",
        "--listen",
        &format!("127.0.0.1:{mp}"),
    ]);
    let _p = serve(&[
        "serve",
        "prefecture",
        "--db",
        &d("p.db"),
        "--code",
        "13",
        "--listen",
        &format!("127.0.0.1:{pp}"),
        "--municipality",
        &murl,
        "--interval-ms",
        "100",
    ]);
    let _n = serve(&[
        "serve",
        "national",
        "--db",
        &d("n.db"),
        "--listen",
        &format!("127.0.0.1:{np}"),
        "--prefecture",
        &format!("13={purl}"),
        "--operator-token",
        "ca-cli-operator-token",
        "--interval-ms",
        "100",
    ]);
    ready(&nurl, None).await;
    ready(&murl, None).await;
    let jpki = |args: &[&str], env: &[(&str, &str)]| {
        let mut c = Command::new(jpki_bin());
        c.args(args)
            .env_remove("JPKI_DB")
            .env("JPKI_CA_PASSPHRASE", PASS)
            .env("JPKI_CA_DB", d("ca.db"))
            .env("JPKI_CA_KEYS", d("keys"));
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    // A resident, registered at the municipality.
    let o = jpki(
        &[
            "identity",
            "pool",
            "--db",
            &d("m.db"),
            "--municipality",
            "131016",
            "--national",
            &nurl,
            "--token",
            "ca-cli-operator-token",
            "--count",
            "2",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = jpki(
        &[
            "identity",
            "register",
            "--db",
            &d("m.db"),
            "--municipality",
            "131016",
            "--operator",
            "clerk-1",
            "--kind",
            "first-registration",
            "--name",
            "山田　花子",
            "--address",
            "東京都千代田区1",
            "--dob",
            "1980-02-29",
            "--sex",
            "2",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let code = text(&o)
        .split_whitespace()
        .find(|w| w.len() == 11 && w.chars().all(|c| c.is_ascii_digit()))
        .unwrap()
        .to_owned();
    // The CA's agency registration at the national node (the law table allows B1-020).
    let o = jpki(
        &[
            "identity",
            "agency-add",
            "--db",
            &d("n.db"),
            "--id",
            "jpki-ca",
            "--name",
            "CA",
            "--class",
            "B1",
            "--purpose",
            "B1-020",
            "--operator",
            "nat-op-1",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let token = text(&o).split_whitespace().find(|w| w.starts_with("jpki-ca:")).unwrap().to_owned();
    let o = jpki(&["ca", "init", "--actor", "op-1", "--shards", "2"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("encrypted PKCS#8 file"), "{}", text(&o));
    let (sign_csr, auth_csr) = (csr(dir.path(), "sign"), csr(dir.path(), "auth"));
    let issue = |env: &[(&str, &str)]| {
        jpki(
            &[
                "ca",
                "issue",
                "--actor",
                "window-1",
                "--national",
                &nurl,
                "--resident",
                &code,
                "--window",
                "W1",
                "--card-expiry",
                "2035-01-01",
                "--sign-csr",
                &sign_csr,
                "--auth-csr",
                &auth_csr,
                "--out",
                &d("out"),
            ],
            &[&[("JPKI_CA_AGENCY_TOKEN", token.as_str())], env].concat(),
        )
    };
    // Wait for replication to the national node: the issuance refuses an unknown resident.
    let mut tries = 0;
    loop {
        let o = jpki(&["identity", "feed", "--national", &nurl], &[]);
        if text(&o).contains(&code) || tries > 100 {
            break;
        }
        tries += 1;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let list = || text(&jpki(&["ca", "list", "--actor", "op-1"], &[]));
    // A crash after the exact TBS was stored, before signing. The first issuance also creates
    // the prefecture-unit CA, so the crash hits the CA certificate of auth-13.
    let o = issue(&[("JPKI_CA_CRASH_AFTER", "tbs")]);
    assert!(!o.status.success(), "the injected crash must abort: {}", text(&o));
    // The next run resolves it: the stored TBS is revoked (unspecified); no generation exists.
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
    let module = ["/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("softhsm2 is not installed (cargo xtask ci installs it)");
    for alg in ["rsa2048", "p384"] {
        let dir = tempfile::tempdir().unwrap();
        let d = |f: &str| dir.path().join(f).display().to_string();
        std::fs::create_dir_all(d("tokens")).unwrap();
        std::fs::write(
            d("softhsm2.conf"),
            format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n", d("tokens")),
        )
        .unwrap();
        let o = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", "jpki-ca", "--so-pin", "12345678", "--pin", "87654321"])
            .env("SOFTHSM2_CONF", d("softhsm2.conf"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        let jpki = |args: &[&str], pin: &str| {
            Command::new(jpki_bin())
                .args(args)
                .args(["--actor", "op-1", "--db", &d("ca.db"), "--pkcs11-module", module, "--pkcs11-token", "jpki-ca"])
                .env("SOFTHSM2_CONF", d("softhsm2.conf"))
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
    }
}
