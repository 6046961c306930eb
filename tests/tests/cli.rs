//! The clerk and operator CLI (`jpki identity …`) against a real national node process over
//! mutual TLS: pools, registration (signed with the notice key), show, heads, a node from a
//! deployment file, and clear errors with a non-zero exit for bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a panic is a failed test

mod common;

use std::process::{Command, Output};

use common::{Kill, NetPki, free_port, jpki_bin, ready};

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[tokio::test]
async fn a_clerk_registers_through_the_cli_and_bad_input_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let ndb = dir.path().join("national.db").display().to_string();
    let mdb = dir.path().join("chiyoda.db").display().to_string();
    let pki = NetPki::init(dir.path());
    pki.issue("national", "national", true);
    pki.issue("m131016", "municipality:131016", true);
    pki.notice_key("m131016-notice", "131016");
    pki.issue("m131041", "municipality:131041", false);
    pki.issue("op1", "operator:op1", false);
    let notice_key = pki.prefix("m131016-notice").display().to_string();
    // The clerk's commands run with the municipality's credential and notice key.
    let clerk = [pki.env("m131016"), vec![("JPKI_NOTICE_KEY".into(), notice_key.clone())]].concat();
    let jpki = |args: &[&str]| common::jpki(args, &clerk);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let url = format!("https://{listen}");
    let _national = pki.serve("national", &["serve", "national", "--db", &ndb, "--listen", &listen]);
    let op = pki.client("op1", None);
    ready(&url, &op).await;

    let pool = |env: &[(String, String)]| {
        common::jpki(
            &["identity", "pool", "--db", &mdb, "--municipality", "131016", "--national", &url, "--count", "3"],
            env,
        )
    };
    let o = pool(&clerk);
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(text(&o).0.contains("3 codes added; 3 unused"), "{:?}", text(&o));
    // Another municipality's credential cannot draw 千代田区's codes (the CLI refuses before
    // asking; the national node's own 403 is in trust.rs).
    let o = pool(&pki.env("m131041"));
    assert!(!o.status.success());
    assert!(text(&o).1.contains("urn:jpki:municipality:131041"), "{:?}", text(&o));

    let register = |dob: &str, sex: &str| {
        jpki(&[
            "identity",
            "register",
            "--db",
            &mdb,
            "--municipality",
            "131016",
            "--operator",
            "clerk-7",
            "--kind",
            "birth",
            "--name",
            "山田　花子",
            "--address",
            "東京都千代田区1",
            "--dob",
            dob,
            "--sex",
            sex,
        ])
    };
    let o = register("2026-01-01", "2");
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("131016 seq   1 出生"), "{out}");
    let code =
        out.split_whitespace().find(|w| w.len() == 11 && w.chars().all(|c| c.is_ascii_digit())).unwrap().to_owned();
    let o = jpki(&["identity", "show", "--db", &mdb, "--municipality", "131016", "--resident", &code]);
    assert!(text(&o).0.contains("山田　花子"), "{:?}", text(&o));

    // Bad input: each a non-zero exit with a message naming the problem, nothing written.
    let o = register("2026-02-30", "2");
    assert!(!o.status.success());
    assert!(text(&o).1.contains("dob"), "{:?}", text(&o));
    let o = register("2026-01-01", "3");
    assert!(!o.status.success());
    assert!(text(&o).1.contains("sex"), "{:?}", text(&o));
    let o = jpki(&["identity", "show", "--db", &mdb, "--municipality", "131017", "--resident", &code]);
    assert_eq!(o.status.code(), Some(2), "clap usage error");
    assert!(text(&o).1.contains("check digit"), "{:?}", text(&o));
    let o = jpki(&["identity", "show", "--db", &mdb, "--municipality", "131041", "--resident", &code]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("belongs to code 131016"), "{:?}", text(&o));

    // Two more registrations use up the pool; the fourth is refused with what to do.
    assert!(register("2026-01-02", "1").status.success());
    assert!(register("2026-01-03", "9").status.success());
    let o = register("2026-01-04", "1");
    assert!(!o.status.success());
    assert!(text(&o).1.contains("request a new pool"), "{:?}", text(&o));

    // A national operator registers an agency (the law table decides what is possible).
    let add = |class: &str, purpose: &str| {
        jpki(&[
            "identity",
            "agency-add",
            "--db",
            &ndb,
            "--id",
            "jps",
            "--name",
            "日本年金機構",
            "--class",
            class,
            "--purpose",
            purpose,
            "--operator",
            "nat-op-1",
        ])
    };
    let o = add("B2", "B1-001");
    assert!(!o.status.success());
    assert!(text(&o).1.contains("B1-001 is a purpose of 国の機関等"), "{:?}", text(&o));
    let o = add("B5", "B5-005");
    assert!(!o.status.success());
    assert!(text(&o).1.contains("served by the prefecture server"), "{:?}", text(&o));
    let o = add("B9", "B1-001");
    assert!(text(&o).1.contains("unknown agency class"), "{:?}", text(&o));
    let o = add("B1", "B1-001");
    assert!(o.status.success() && text(&o).0.contains("jps"), "{:?}", text(&o));

    // The same municipality started from a deployment file: its credential and notice key
    // named in the file, the passphrase only in the environment.
    let mport = free_port();
    let config = dir.path().join("deployment.toml");
    let (ca, crl, cred) = (pki.ca_pem(), pki.crl_pem(), pki.prefix("m131016"));
    std::fs::write(
        &config,
        format!(
            "network_ca = \"{}\"\nnetwork_crl = \"{}\"\n\n[[node]]\nname = \"chiyoda\"\nrole = \"municipality\"\ncode = \"131016\"\ndb = \"{mdb}\"\nlisten = \"127.0.0.1:{mport}\"\ncredential = \"{}\"\nnotice_key = \"{notice_key}\"\n",
            ca.display(),
            crl.display(),
            cred.display()
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let pass = [("JPKI_CREDENTIAL_PASSPHRASE", NetPki::PASSPHRASE)];
    let o = common::jpki(&["serve", "check", "--config", &config], &pass);
    assert!(text(&o).0.contains("1 nodes, valid"), "{:?}", text(&o));
    let _muni = Kill(
        Command::new(jpki_bin())
            .args(["serve", "node", "chiyoda", "--config", &config])
            .env_remove("JPKI_DB")
            .env("JPKI_CREDENTIAL_PASSPHRASE", NetPki::PASSPHRASE)
            .spawn()
            .unwrap(),
    );
    let murl = format!("https://127.0.0.1:{mport}");
    ready(&murl, &op).await;
    let o = common::jpki(&["identity", "heads", "--url", &murl], &pki.env("op1"));
    assert!(text(&o).0.contains("131016 seq      3"), "{:?}", text(&o));
    // Not an operator (and not its prefecture): refused.
    let o = common::jpki(&["identity", "heads", "--url", &murl], &pki.env("m131041"));
    assert!(!o.status.success() && text(&o).1.contains("403"), "{:?}", text(&o));
    // A node entry whose credential names another party is refused by the check.
    let wrong = std::fs::read_to_string(&config).unwrap().replace(
        &format!("credential = \"{}\"", pki.prefix("m131016").display()),
        &format!("credential = \"{}\"", pki.prefix("m131041").display()),
    );
    std::fs::write(dir.path().join("wrong.toml"), wrong).unwrap();
    let o = common::jpki(&["serve", "check", "--config", &dir.path().join("wrong.toml").display().to_string()], &pass);
    assert!(!o.status.success() && text(&o).1.contains("municipality:131041"), "{:?}", text(&o));
    std::fs::write(dir.path().join("bad.toml"), "[[node]]\nname = \"x\"\nrole = \"village\"\n").unwrap();
    let o = jpki(&["serve", "check", "--config", &dir.path().join("bad.toml").display().to_string()]);
    assert!(!o.status.success() && text(&o).1.contains("unknown variant"), "{:?}", text(&o));

    let o = common::jpki(&["identity", "heads", "--url", &url], &pki.env("op1"));
    assert!(text(&o).0.starts_with("national national"), "{:?}", text(&o));
}
