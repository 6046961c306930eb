//! The PostgreSQL backup procedure (scripts/pg-backup.sh) on a throwaway cluster of its own
//! with WAL archiving: scripts/pg-backup-drill.sh takes a base backup while the CA database
//! is written, restores it to a point in time into a new data directory and checks the rows,
//! then marks and reconciles the restored CA database with `jpki`. Runs in the PostgreSQL pass
//! (`JPKI_TEST_PG_URL` set: PostgreSQL 15's binaries are installed).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a panic is a failed test

mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn a_base_backup_with_archived_wal_restores_to_a_point_in_time() {
    if std::env::var("JPKI_TEST_PG_URL").is_err() {
        eprintln!("JPKI_TEST_PG_URL is not set: the PostgreSQL pass runs this drill");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/pg-backup-drill.sh");
    let o = Command::new("sh").arg(script).env("JPKI", common::jpki_bin()).output().unwrap();
    let out = common::text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("pg drill ok") && out.contains("base backup") && out.contains("verified"), "{out}");
}
