//! `identity::backup` on a municipality's SQLite database while it is written: every backup
//! is a consistent snapshot (its head names its last stored notice, and it holds exactly the
//! notices up to it), is never written over, and a damaged or missing file is refused with
//! nothing left behind.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use common::*;
use identity::backup;
use identity::notice::NoticeKind;
use identity::store::{self, testing};

#[tokio::test(flavor = "multi_thread")]
async fn backups_taken_while_notices_are_written_are_consistent_snapshots() {
    let t = testing::sqlite().unwrap();
    let m = municipality(&t, "131016", 1_000_000_000).await;
    let src = backup::sqlite_path(&t.url).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let writer = {
        let m = m.clone();
        tokio::spawn(async move {
            for i in 0..15 {
                m.register(
                    &clerk(),
                    NoticeKind::Birth,
                    items(&format!("山田　花子{i}"), "東京都千代田区1", "2026-03-01"),
                    date("2026-03-01"),
                    NOW,
                )
                .await
                .unwrap();
            }
        })
    };
    let mut seen = Vec::new();
    for i in 0..5 {
        let out = dir.path().join(format!("b{i}.db"));
        let r = backup::backup(&src, &out).await.unwrap();
        let head = r.heads.iter().find(|h| h.source == "131016").map(|h| h.seq).unwrap_or(0);
        let notices = r.tables.iter().find(|(t, _)| t == "change_notice").unwrap().1;
        // The snapshot's head and its notices agree: nothing half-committed.
        assert_eq!(notices, head as i64, "backup {i}");
        // And the file verifies on its own.
        assert_eq!(backup::verify(&out).await.unwrap(), r);
        seen.push(head);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    writer.await.unwrap();
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    // Restored, the municipality's chain is the snapshot's.
    let restored = dir.path().join("restored.db");
    backup::restore(&dir.path().join("b4.db"), &restored).await.unwrap();
    let db = store::Db::open(&restored.display().to_string()).await.unwrap();
    let heads = store::heads(&db).await.unwrap();
    assert_eq!(heads.iter().find(|h| h.source == "131016").map(|h| h.seq).unwrap_or(0), seen[4]);
}

#[tokio::test]
async fn overwrites_missing_sources_and_damaged_backups_are_refused() {
    let t = testing::sqlite().unwrap();
    let m = municipality(&t, "131016", 1_000_000_000).await;
    m.register(
        &clerk(),
        NoticeKind::Birth,
        items("山田　花子", "東京都千代田区1", "2026-03-01"),
        date("2026-03-01"),
        NOW,
    )
    .await
    .unwrap();
    let src = backup::sqlite_path(&t.url).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b.db");
    backup::backup(&src, &out).await.unwrap();
    let before = std::fs::read(&out).unwrap();
    let e = backup::backup(&src, &out).await.unwrap_err().to_string();
    assert!(e.contains("refusing to overwrite"), "{e}");
    assert_eq!(std::fs::read(&out).unwrap(), before);
    let e = backup::backup(&dir.path().join("nothing.db"), &dir.path().join("c.db")).await.unwrap_err().to_string();
    assert!(e.contains("no such database file"), "{e}");
    // A damaged copy: refused by restore, and nothing written.
    let mut bytes = before.clone();
    let n = bytes.len();
    bytes[n / 2..].fill(0xa5);
    let bad = dir.path().join("bad.db");
    std::fs::write(&bad, bytes).unwrap();
    let target = dir.path().join("target.db");
    assert!(backup::restore(&bad, &target).await.is_err());
    assert!(!target.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2, "b.db and bad.db only");
}
