//! Restore drills with real `jpki` processes over mutual TLS (SQLite): the national node is
//! backed up with `jpki backup` while notices are written and replicated, destroyed, restored
//! with `jpki restore`, restarted, and catches up until its chain heads equal the
//! prefecture's (`jpki identity compare-heads`); the CA's database is backed up, loses an
//! issuance, is restored, refuses to issue until `jpki ca reconcile` has read its audit
//! journal, and then revokes what it lost and issues with fresh serials.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a panic is a failed test

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Network, csr, text};

/// Removes a SQLite database and its `-wal` and `-shm`: the disk is gone.
fn destroy(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.as_os_str().to_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
    assert!(!db.exists());
}

/// `head SOURCE seq N HASH` lines of `jpki backup`/`restore` or `jpki identity heads` output.
fn heads(out: &str) -> Vec<(String, u64, String)> {
    out.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let i = w.iter().position(|x| *x == "seq")?;
            Some((w.get(i.checked_sub(1)?)?.to_string(), w.get(i + 1)?.parse().ok()?, w.get(i + 2)?.to_string()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_national_node_is_restored_from_a_backup_taken_mid_run_and_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = Network::start(dir.path()).await;
    let n_db = dir.path().join("n.db");
    // The municipality's pool holds 8 resident codes: 2 + 3 + 2 + 1 registrations.
    for i in 0..2 {
        net.resident(&format!("山田　花子{i}"), "1980-02-17").await;
    }
    // Backed up while the clerk writes and the national node pulls every 100 ms.
    let backup = dir.path().join("backup").join("n.db");
    std::fs::create_dir_all(backup.parent().unwrap()).unwrap();
    let env = net.clerk_env();
    let out = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            for i in 0..3 {
                net.register(&env, &format!("佐藤　一郎{i}"), "1975-05-05");
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        let o = net.jpki(&["backup", "--db", &n_db.display().to_string(), "--out", &backup.display().to_string()]);
        writer.join().unwrap();
        o
    });
    assert!(out.status.success(), "{}", text(&out));
    let backed = text(&out);
    assert!(backed.contains("integrity ok") && backed.contains("change_notice"), "{backed}");
    let at_backup = heads(&backed);
    assert!(at_backup.iter().any(|(s, seq, _)| s == "131016" && *seq >= 2), "{backed}");
    // No overwrite, and no half-written file left behind.
    let again = net.jpki(&["backup", "--db", &n_db.display().to_string(), "--out", &backup.display().to_string()]);
    assert!(!again.status.success() && text(&again).contains("refusing to overwrite"), "{}", text(&again));
    assert_eq!(std::fs::read_dir(backup.parent().unwrap()).unwrap().count(), 1);
    // After the backup: more notices the national node had and the backup lacks.
    for i in 0..2 {
        net.resident(&format!("鈴木　次郎{i}"), "1990-09-09").await;
    }
    let op = net.pki.env("op1");
    let before = text(&common::jpki(&["identity", "heads", "--url", &net.national], &op));
    let before = heads(&before);
    let want = before.iter().find(|(s, _, _)| s == "131016").cloned().unwrap();
    assert!(at_backup.iter().all(|(s, seq, _)| s != "131016" || *seq < want.1), "{at_backup:?} vs {want:?}");

    // The disk is lost.
    drop(net.nodes.remove(2));
    destroy(&n_db);
    let restored = net.jpki(&["restore", "--from", &backup.display().to_string(), "--db", &n_db.display().to_string()]);
    assert!(restored.status.success(), "{}", text(&restored));
    assert_eq!(heads(&text(&restored)), at_backup);
    // A second restore would overwrite the node's database: refused.
    let o = net.jpki(&["restore", "--from", &backup.display().to_string(), "--db", &n_db.display().to_string()]);
    assert!(!o.status.success() && text(&o).contains("refusing to overwrite"), "{}", text(&o));
    // A damaged backup is refused before anything is written.
    let bad = dir.path().join("bad.db");
    let mut bytes = std::fs::read(&backup).unwrap();
    let len = bytes.len();
    bytes[len / 2..].fill(0x5a);
    std::fs::write(&bad, bytes).unwrap();
    let elsewhere = dir.path().join("elsewhere.db");
    let o = net.jpki(&["restore", "--from", &bad.display().to_string(), "--db", &elsewhere.display().to_string()]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(!elsewhere.exists());

    // Restarted on the restored file: it pulls what it lacks from the prefecture.
    let port = net.national.rsplit(':').next().unwrap().to_owned();
    net.nodes.push(net.pki.serve(
        "national",
        &[
            "serve",
            "national",
            "--db",
            &n_db.display().to_string(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--prefecture",
            &format!("13={}", net.prefecture),
            "--interval-ms",
            "100",
        ],
    ));
    common::ready(&net.national, &net.pki.client("op1", None)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let o = common::jpki(
            &[
                "identity",
                "compare-heads",
                "--national",
                &net.national,
                "--prefecture",
                &format!("13={}", net.prefecture),
            ],
            &op,
        );
        if o.status.success() && text(&o).contains("EQUAL") {
            break;
        }
        assert!(Instant::now() < deadline, "the restored national node did not catch up: {}", text(&o));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = heads(&text(&common::jpki(&["identity", "heads", "--url", &net.national], &op)));
    assert!(after.contains(&want), "{after:?} lacks {want:?}");
    // New notices keep flowing through the restored node.
    let code = net.resident("高橋　三郎", "1985-01-01").await;
    assert_eq!(code.len(), 11);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restored_ca_database_issues_nothing_until_reconciled_with_its_journal() {
    let dir = tempfile::tempdir().unwrap();
    let net = Network::start(dir.path()).await;
    let d = |f: &str| dir.path().join(f).display().to_string();
    let journal = d("journal/audit.jsonl");
    std::fs::create_dir_all(dir.path().join("journal")).unwrap();
    let env = [("JPKI_CA_AUDIT_JOURNAL", journal.as_str())];
    let issue = |resident: &str, n: &str| {
        let (s, a) = (csr(dir.path(), &format!("s{n}")), csr(dir.path(), &format!("a{n}")));
        let args = common::ca_issue_args("window-1", resident, &s, &a, &d(&format!("out{n}")));
        net.jpki_env(&args.iter().map(String::as_str).collect::<Vec<_>>(), &env)
    };
    let serials = |o: &std::process::Output| -> Vec<String> {
        text(o)
            .split_whitespace()
            .filter(|w| w.len() == 32 && w.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_owned)
            .collect()
    };
    let r1 = net.resident("山田　花子", "1980-02-17").await;
    let r2 = net.resident("佐藤　一郎", "1975-05-05").await;
    let r3 = net.resident("鈴木　次郎", "1990-09-09").await;
    let o = issue(&r1, "1");
    assert!(o.status.success(), "{}", text(&o));
    let ca_db = dir.path().join("ca.db");
    let backup = d("ca-backup.db");
    let o = net.jpki(&["backup", "--db", &ca_db.display().to_string(), "--out", &backup]);
    assert!(o.status.success() && text(&o).contains("audit chain verified"), "{}", text(&o));
    // Issued after the backup: lost with the database.
    let o = issue(&r2, "2");
    assert!(o.status.success(), "{}", text(&o));
    let lost = serials(&o);
    assert_eq!(lost.len(), 2, "{}", text(&o));

    destroy(&ca_db);
    let o = net.jpki(&["restore", "--from", &backup, "--db", &ca_db.display().to_string()]);
    assert!(o.status.success() && text(&o).contains("marked as restored"), "{}", text(&o));
    let o = issue(&r3, "3");
    assert!(!o.status.success() && text(&o).contains("restore_unreconciled"), "{}", text(&o));
    // Another CA's journal (here: an empty one) is refused and changes nothing.
    std::fs::write(d("other.jsonl"), "").unwrap();
    let o = net.jpki(&["ca", "reconcile", "--actor", "op-2", "--journal", &d("other.jsonl")]);
    assert!(!o.status.success() && text(&o).contains("journal_mismatch"), "{}", text(&o));
    let o = net.jpki(&["ca", "reconcile", "--actor", "op-2", "--journal", &journal]);
    assert!(o.status.success(), "{}", text(&o));
    for s in &lost {
        assert!(text(&o).contains(&format!("lost serial revoked: {s}")), "{}", text(&o));
        let shown = text(&net.jpki(&["ca", "show", "--actor", "op-2", s]));
        assert!(shown.contains("unspecified"), "{shown}");
    }
    let o = issue(&r3, "3");
    assert!(o.status.success(), "{}", text(&o));
    for s in serials(&o) {
        assert!(!lost.contains(&s));
    }
    let o = net.jpki(&["ca", "audit", "--actor", "op-2", "--limit", "100"]);
    assert!(o.status.success() && text(&o).contains("restore_reconciled"), "{}", text(&o));
}
