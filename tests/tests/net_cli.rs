//! The network CA CLI (`jpki net …`) as real processes: init, issue (TLS and notice key),
//! revoke, crl, list, checked with `openssl`; passphrases only from the environment and never
//! printed, not even by `--help`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a panic is a failed test

mod common;

use std::process::{Command, Output};

use common::{jpki_bin, text};

const CA_PASS: &str = "cli network CA passphrase";
const KEY_PASS: &str = "cli credential passphrase";

fn openssl(args: &[&str]) -> Output {
    Command::new("openssl").args(args).output().unwrap()
}

#[test]
fn jpki_net_issues_revokes_and_publishes() {
    let dir = tempfile::tempdir().unwrap();
    let d = |f: &str| dir.path().join(f).display().to_string();
    let netdir = d("netca");
    let jpki = |args: &[&str], env: &[(&str, &str)]| -> Output {
        let mut c = Command::new(jpki_bin());
        c.args(args)
            .env_remove("JPKI_NET_DIR")
            .env("JPKI_NET_CA_PASSPHRASE", CA_PASS)
            .env("JPKI_NET_KEY_PASSPHRASE", KEY_PASS);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };

    // --help with the secrets set prints neither of them.
    for sub in [&["net", "issue", "--help"][..], &["net", "init", "--help"], &["net", "--help"]] {
        let o = jpki(sub, &[]);
        assert!(o.status.success(), "{}", text(&o));
        let t = text(&o);
        assert!(!t.contains(CA_PASS) && !t.contains(KEY_PASS), "{t}");
        assert!(!t.contains("--passphrase") && !t.contains("--ca-passphrase"), "no passphrase flags: {t}");
    }

    let o = jpki(&["net", "init", "--dir", &netdir], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("network CA created"), "{}", text(&o));
    // A second init refuses.
    let o = jpki(&["net", "init", "--dir", &netdir], &[]);
    assert!(!o.status.success() && text(&o).contains("already holds a network CA"), "{}", text(&o));

    // --dir from JPKI_NET_DIR.
    let issue = |party: &str, out: &str, extra: &[&str]| {
        let mut args = vec!["net", "issue", "--party", party, "--days", "30", "--out", out];
        args.extend_from_slice(extra);
        jpki(&args, &[("JPKI_NET_DIR", &netdir)])
    };
    let o = issue("municipality:131016", &d("m131016"), &["--host", "127.0.0.1"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(!out.contains(CA_PASS) && !out.contains(KEY_PASS), "{out}");
    let serial = out.split("serial ").nth(1).unwrap().split_whitespace().next().unwrap().to_owned();
    let o = issue("urn:jpki:prefecture:13", &d("p13"), &["--host", "localhost"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = issue("municipality:131016", &d("notice"), &["--notice-key"]);
    assert!(o.status.success() && text(&o).contains("notice-signing key"), "{}", text(&o));

    let ca = d("netca/ca.pem");
    for purpose in ["sslserver", "sslclient"] {
        let o = openssl(&["verify", "-purpose", purpose, "-CAfile", &ca, &d("m131016.pem")]);
        assert!(o.status.success(), "{purpose}: {}", text(&o));
    }
    let san = text(&openssl(&["x509", "-noout", "-ext", "subjectAltName", "-in", &d("m131016.pem")]));
    assert!(san.contains("URI:urn:jpki:municipality:131016") && san.contains("IP Address:127.0.0.1"), "{san}");

    // Bad input: not a party, a notice key for a non-municipality, a wrong CA passphrase, a
    // short key passphrase, a missing passphrase.
    let o = issue("mayor:me", &d("x"), &[]);
    assert!(!o.status.success() && text(&o).contains("party"), "{}", text(&o));
    let o = issue("national", &d("x"), &["--notice-key"]);
    assert!(!o.status.success() && text(&o).contains("only a municipality"), "{}", text(&o));
    let o = jpki(&["net", "list", "--dir", &netdir], &[("JPKI_NET_CA_PASSPHRASE", "wrong CA passphrase")]);
    assert!(!o.status.success() && text(&o).contains("wrong passphrase"), "{}", text(&o));
    assert!(!text(&o).contains("wrong CA passphrase"), "{}", text(&o));
    let o = jpki(
        &["net", "issue", "--dir", &netdir, "--party", "national", "--out", &d("x")],
        &[("JPKI_NET_KEY_PASSPHRASE", "short")],
    );
    assert!(!o.status.success() && text(&o).contains("at least 12 bytes"), "{}", text(&o));
    let o = Command::new(jpki_bin())
        .args(["net", "list", "--dir", &netdir])
        .env_remove("JPKI_NET_CA_PASSPHRASE")
        .output()
        .unwrap();
    assert!(!o.status.success() && text(&o).contains("JPKI_NET_CA_PASSPHRASE"), "{}", text(&o));
    assert!(!dir.path().join("x.pem").exists() && !dir.path().join("x.key").exists());

    // Revoke the municipality's TLS credential and publish.
    let o = jpki(&["net", "revoke", "--dir", &netdir, "--serial", &serial, "--reason", "key-compromise"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let o = jpki(&["net", "revoke", "--dir", &netdir, "--serial", &serial, "--reason", "no-reason"], &[]);
    assert!(!o.status.success() && text(&o).contains("key-compromise"), "{}", text(&o));
    let o = jpki(&["net", "crl", "--dir", &netdir, "--next-update-hours", "12"], &[]);
    assert!(o.status.success() && text(&o).contains("CRL 2 written"), "{}", text(&o));
    let crl = d("netca/crl.pem");
    let o = openssl(&["verify", "-crl_check", "-CAfile", &ca, "-CRLfile", &crl, &d("m131016.pem")]);
    assert!(!o.status.success() && text(&o).contains("certificate revoked"), "{}", text(&o));
    let o = openssl(&["verify", "-crl_check", "-CAfile", &ca, "-CRLfile", &crl, &d("p13.pem")]);
    assert!(o.status.success(), "{}", text(&o));

    let o = jpki(&["net", "list", "--dir", &netdir], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let list = text(&o);
    assert_eq!(list.lines().count(), 3, "{list}");
    assert!(list.contains(&serial) && list.contains("revoked") && list.contains("key-compromise"), "{list}");
    assert!(list.contains("notice-key") && list.contains("urn:jpki:prefecture:13"), "{list}");
}
