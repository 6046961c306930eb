//! The CA after a restore from an older backup (SQLite, and PostgreSQL when configured): it
//! refuses to issue and revoke until it is reconciled with its audit journal or an operator
//! confirms; reconciled, no serial, revocation number or CRL number is used twice, the lost
//! certificates are revoked, the lost revocations are back, and the audit chain continues.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::OnceLock;

use ca::authority::Authority;
use ca::crl::Reason;
use ca::key::KeyAlgorithm;
use ca::keystore::KeyStore;
use ca::restore;
use common::*;
use identity::store::testing::TestDb;
use sqlx::Row;

/// The journal of this test process (one per process, as in the CA service).
fn journal() -> &'static PathBuf {
    static J: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &J.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.journal");
        ca::audit::journal_to(&path).unwrap();
        (dir, path)
    })
    .1
}

fn keys(w: &World) -> KeyStore {
    KeyStore::soft(&w.dir.path().join("keys"), net::secret::Secret::new(b"test passphrase".to_vec())).unwrap()
}

/// A copy of the CA's database as it is now (the "backup"): `VACUUM INTO` on SQLite, a
/// template copy on PostgreSQL (which needs the CA's connections closed: the CA is reopened).
async fn snapshot(w: &mut World) -> TestDb {
    let cdb = &w.dbs[2];
    if cdb.label == "postgres" {
        w.ca.db().close().await;
        let copy = identity::store::testing::postgres().await.unwrap().unwrap();
        let (orig, name) = (cdb.url.rsplit('/').next().unwrap(), copy.url.rsplit('/').next().unwrap().to_owned());
        let admin = std::env::var("JPKI_TEST_PG_URL").unwrap();
        let pool = sqlx::postgres::PgPool::connect(&admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {name}"))).execute(&pool).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name} TEMPLATE {orig}")))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        w.ca = Authority::open(ca::schema::open(&cdb.url).await.unwrap(), keys(w), NOW).await.unwrap();
        copy
    } else {
        let copy = identity::store::testing::sqlite().unwrap();
        let path = identity::backup::sqlite_path(&copy.url).unwrap();
        identity::backup::backup(&identity::backup::sqlite_path(&cdb.url).unwrap(), &path).await.unwrap();
        copy
    }
}

async fn serials(a: &Authority) -> BTreeSet<String> {
    a.list(None, None, 10_000).await.unwrap().into_iter().map(|r| r.serial).collect()
}

async fn revocation_seq(a: &Authority) -> i64 {
    sqlx::query("SELECT last_seq FROM ca_revocation_counter WHERE id = 1")
        .fetch_one(a.db().pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

fn code(r: ca::Result<impl std::fmt::Debug>) -> String {
    match r {
        Err(ca::Error::Refused { code, .. }) => code.to_string(),
        other => format!("{other:?}"),
    }
}

#[tokio::test]
async fn a_restored_ca_refuses_until_reconciled_with_its_journal_and_reuses_nothing() {
    let journal = journal();
    for db in identity::store::testing::all().await.unwrap() {
        let mut w = World::new(&db, KeyAlgorithm::EcP384).await;
        let (a, b, c) = (
            w.register("山田　花子", "1980-02-17").await,
            w.register("佐藤　一郎", "1975-05-05").await,
            w.register("鈴木　次郎", "1990-09-09").await,
        );
        let issue = |code| {
            let (_, s) = subject(KeyAlgorithm::EcP384);
            let (_, au) = subject(KeyAlgorithm::EcP384);
            request(code, Some(&s), Some(&au))
        };
        let first = w.ca.issue("window-1", &issue(&a), &w.source, NOW).await.unwrap();
        let backup = snapshot(&mut w).await;
        // After the backup: another resident's certificates, a revocation of the first one's
        // signature certificate, a CRL number.
        let second = w.ca.issue("window-1", &issue(&b), &w.source, NOW + 10).await.unwrap();
        let a_sig = first.get(ca::revocation::CertKind::Signature).unwrap().serial.clone();
        w.ca.revoke("op-1", &a_sig, Reason::KeyCompromise, "card stolen", NOW + 20).await.unwrap();
        let out = w.path("publish");
        w.ca.publish_crls("op-1", &out, NOW + 30, &|_, _| ()).await.unwrap();
        let lost_seq = revocation_seq(&w.ca).await;
        let original_serials = serials(&w.ca).await;
        let original_trail = ca::audit::read_and_verify(w.ca.db(), i64::MAX).await.unwrap();

        // Restored: the journal is ahead of the database, so opening marks it.
        let rows = ca::audit::read_journal(journal).unwrap();
        let r =
            Authority::open_with_journal(ca::schema::open(&backup.url).await.unwrap(), keys(&w), Some(&rows), NOW + 40)
                .await
                .unwrap();
        assert!(restore::unreconciled(r.db()).await.unwrap(), "{}", db.label);
        assert_eq!(code(r.issue("window-1", &issue(&c), &w.source, NOW + 50).await), "restore_unreconciled");
        let a_auth = first.get(ca::revocation::CertKind::Authentication).unwrap().serial.clone();
        assert_eq!(code(r.revoke("op-1", &a_auth, Reason::Superseded, "x", NOW + 50).await), "restore_unreconciled");

        // A journal that does not reach the database's head (cut before it) is refused, and
        // changes nothing.
        let (head, _) = ca::audit::head(r.db()).await.unwrap();
        let cut: Vec<_> = rows.iter().filter(|x| x.seq < head).cloned().collect();
        assert_eq!(code(restore::reconcile(&r, &cut, "op-2", NOW + 60).await), "journal_mismatch");
        assert!(restore::unreconciled(r.db()).await.unwrap());

        let done = restore::reconcile(&r, &rows, "op-2", NOW + 60).await.unwrap();
        assert!(!restore::unreconciled(r.db()).await.unwrap());
        // The second resident's two certificates were lost: recorded, revoked.
        let lost: BTreeSet<String> = second.certificates.iter().map(|c| c.serial.clone()).collect();
        assert_eq!(done.lost_serials.iter().cloned().collect::<BTreeSet<_>>(), lost, "{}", db.label);
        for s in &lost {
            let rec = r.show(s).await.unwrap();
            assert_eq!(rec.state, ca::authority::state::VOID);
            assert_eq!(rec.revoked.as_ref().map(|x| x.1), Some(Reason::Unspecified));
        }
        // The revocation of the first resident's certificate is back, with its reason and time.
        assert_eq!(done.revocations, 1);
        let rec = r.show(&a_sig).await.unwrap();
        assert_eq!(rec.revoked.as_ref().map(|x| (x.0, x.1)), Some((NOW + 20, Reason::KeyCompromise)));
        // Numbers: the counter passed everything validators may have seen; CRL numbers too.
        assert!(done.revocation_seq.1 >= lost_seq, "{:?} vs {lost_seq}", done.revocation_seq);
        assert!(!done.crl_numbers.is_empty());
        // The audit chain continues the original one exactly, then records the reconciliation.
        let trail = ca::audit::read_and_verify(r.db(), i64::MAX).await.unwrap();
        assert_eq!(trail[..original_trail.len()], original_trail[..]);
        assert_eq!(trail.last().unwrap().action, "restore_reconciled");

        // Issuing again: fresh serials, and a revocation numbered after every earlier one.
        let third = r.issue("window-1", &issue(&c), &w.source, NOW + 70).await.unwrap();
        for cert in &third.certificates {
            assert!(!original_serials.contains(&cert.serial));
        }
        r.revoke("op-1", &third.certificates[0].serial, Reason::KeyCompromise, "y", NOW + 80).await.unwrap();
        assert!(revocation_seq(&r).await > lost_seq);
        // A second reconcile has nothing to do.
        assert!(matches!(restore::reconcile(&r, &rows, "op-2", NOW + 90).await, Err(ca::Error::Conflict(_))));
        r.db().close().await;
        drop(backup);
    }
}

#[tokio::test]
async fn without_a_journal_an_operator_confirms_and_the_numbers_jump() {
    for db in identity::store::testing::all().await.unwrap() {
        let mut w = World::new(&db, KeyAlgorithm::EcP384).await;
        let a = w.register("山田　花子", "1980-02-17").await;
        let backup = snapshot(&mut w).await;
        let r = Authority::open(ca::schema::open(&backup.url).await.unwrap(), keys(&w), NOW).await.unwrap();
        restore::mark_restored(r.db(), "test restore", NOW).await.unwrap();
        // Marking twice keeps one open mark.
        restore::mark_restored(r.db(), "test restore", NOW).await.unwrap();
        let (_, s) = subject(KeyAlgorithm::EcP384);
        let req = request(&a, Some(&s), None);
        assert_eq!(code(r.issue("window-1", &req, &w.source, NOW).await), "restore_unreconciled");
        assert!(restore::confirm(&r, "op-2", -1, 0, NOW).await.is_err(), "a negative margin");
        let before = revocation_seq(&r).await;
        let done = restore::confirm(&r, "op-2", 5_000, 100, NOW).await.unwrap();
        assert_eq!(done.revocation_seq, (before, before + 5_000));
        // The auth certificate is needed before a signature one alone: issue both.
        let (_, au) = subject(KeyAlgorithm::EcP384);
        let req = request(&a, Some(&s), Some(&au));
        r.issue("window-1", &req, &w.source, NOW).await.unwrap();
        let trail = ca::audit::read_and_verify(r.db(), i64::MAX).await.unwrap();
        assert!(trail.iter().any(|x| x.action == "restore_confirmed" && x.actor == "op-2"), "{}", db.label);
        let marks: i64 =
            sqlx::query("SELECT COUNT(*) FROM ca_restore").fetch_one(r.db().pool()).await.unwrap().try_get(0).unwrap();
        assert_eq!(marks, 1);
        r.db().close().await;
    }
}

#[test]
fn a_damaged_journal_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let row = ca::audit::JournalRow {
        seq: 1,
        at: NOW,
        actor: "op-1".into(),
        action: "settings".into(),
        detail: "x".into(),
        prev_hash: hex::encode([0u8; 32]),
        hash: String::new(),
    };
    // A row whose hash does not verify.
    std::fs::write(&path, format!("{}\n", serde_json::to_string(&row).unwrap())).unwrap();
    let e = ca::audit::read_journal(&path).unwrap_err().to_string();
    assert!(e.contains("line 1") && e.contains("does not verify"), "{e}");
    std::fs::write(&path, "not json\n").unwrap();
    assert!(ca::audit::read_journal(&path).unwrap_err().to_string().contains("line 1"));
    // A torn last line (no newline: its transaction never committed) is not a row.
    std::fs::write(&path, "{\"seq\":").unwrap();
    assert_eq!(ca::audit::read_journal(&path).unwrap(), Vec::new());
}
