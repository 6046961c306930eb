//! `jpki backup` and `jpki restore`: a node's SQLite database copied consistently while the
//! node runs, checked, and put back (`identity::backup`). A CA database is also checked for
//! its audit chain, and a restored one is marked so that the CA issues nothing until
//! `jpki ca reconcile` has run (`ca::restore`). PostgreSQL: `scripts/pg-backup.sh`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use identity::backup::{self, Report};
use identity::http::now;
use identity::store::Db;

/// `jpki backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The node's database (SQLite file path; the node may be running).
    #[arg(long)]
    pub db: String,
    /// The backup file to write (must not exist).
    #[arg(long)]
    pub out: PathBuf,
}

/// `jpki restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup file (from `jpki backup`).
    #[arg(long)]
    pub from: PathBuf,
    /// Where the node's database goes (SQLite file path; must not exist: the node stopped and
    /// the damaged file, with its -wal and -shm, moved aside).
    #[arg(long)]
    pub db: String,
}

/// Whether the checked file is a CA database (it has the audit trail).
fn is_ca(r: &Report) -> bool {
    r.tables.iter().any(|(t, _)| t == "ca_audit")
}

/// A CA database's audit chain, verified in the file at `path` (read only): (rows, head hash).
async fn audit_chain(path: &Path) -> Result<(usize, String)> {
    let db = Db::open_read_only(path).await?;
    let rows = ca::audit::read_and_verify(&db, i64::MAX).await;
    let head = ca::audit::head(&db).await;
    db.close().await;
    let rows = rows.context("the backup's audit chain does not verify")?;
    Ok((rows.len(), hex::encode(head?.1)))
}

fn print(what: &str, path: &Path, r: &Report, audit: Option<(usize, String)>) {
    println!("{what} {}: {} bytes, integrity ok", path.display(), r.bytes);
    for (t, n) in &r.tables {
        println!("  {t:<28} {n:>10} rows");
    }
    for h in &r.heads {
        let halted = h.halted.as_ref().map(|h| format!("  HALTED: {h}")).unwrap_or_default();
        println!("  head {} seq {:>6} {}{halted}", h.source, h.seq, h.hash);
    }
    if let Some((rows, head)) = audit {
        println!("  audit chain verified: {rows} rows, head {head}");
    }
}

/// `jpki backup`: the snapshot is written beside `--out`, fsynced, checked, then linked into
/// place.
pub async fn backup(a: BackupArgs) -> Result<()> {
    let source = backup::sqlite_path(&a.db)?;
    let staged = backup::stage_backup(&source, &a.out).await?;
    let audit = if is_ca(&staged.report) { Some(audit_chain(staged.path()).await?) } else { None };
    let report = staged.publish()?;
    print("backup", &a.out, &report, audit);
    Ok(())
}

/// `jpki restore`: the backup is checked and copied into place; a CA database is marked as
/// restored (nothing issued until `jpki ca reconcile`).
pub async fn restore(a: RestoreArgs) -> Result<()> {
    let target = backup::sqlite_path(&a.db)?;
    let staged = backup::stage_restore(&a.from, &target).await?;
    let audit = if is_ca(&staged.report) { Some(audit_chain(staged.path()).await?) } else { None };
    let report = staged.publish()?;
    print("restored", &target, &report, audit);
    if is_ca(&report) {
        let db = ca::schema::open(&target.display().to_string()).await?;
        let name = a.from.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        ca::restore::mark_restored(&db, &format!("jpki restore from {name}"), now()).await?;
        db.close().await;
        println!(
            "the CA database is marked as restored: it issues and revokes nothing until \
             `jpki ca reconcile --journal FILE` (or --confirm-no-journal) has run"
        );
    } else if !report.heads.is_empty() {
        println!("start the node: it resumes replication after these heads");
    }
    Ok(())
}
