//! Online backups of a node's SQLite database, consistent while the node runs, and their
//! restore.
//!
//! A backup is SQLite's `VACUUM INTO`: the source is read in **one read transaction** (a
//! snapshot: WAL readers never block the node's writer and never see half a commit) and
//! written, compacted, to a new file. The C online-backup API (`sqlite3_backup_*`) would do
//! the same page by page, but the workspace forbids `unsafe` code and sqlx does not wrap that
//! API; `VACUUM INTO` is plain SQL through sqlx. (`sqlite3_backup_step` with a page budget
//! would also restart whenever the node writes, while `VACUUM INTO` finishes on its snapshot.)
//!
//! Every backup is written to a temporary file beside the target, fsynced, checked
//! ([`verify`]: `PRAGMA integrity_check`, every table's row count, and every chain head
//! against the stored notice it names), and only then linked into place — refusing to replace
//! an existing file — and the directory fsynced. A restore ([`restore`]) checks the backup the
//! same way and puts a copy where the node's database was, refusing to overwrite one.

use std::path::{Path, PathBuf};

use sqlx::Row;

use crate::error::{Error, Result};
use crate::store::{Db, Head, heads};

/// What a check of a backup file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Tables and their row counts, by name.
    pub tables: Vec<(String, i64)>,
    /// The chain heads the file holds (identity nodes; empty for other databases).
    pub heads: Vec<Head>,
    /// The file's size in bytes.
    pub bytes: u64,
}

fn io(what: &'static str, path: &Path, e: std::io::Error) -> Error {
    Error::invalid(what, format!("{}: {e}", path.display()))
}

/// The SQLite file behind a `--db` value (`sqlite://path`, a plain path); a PostgreSQL URL is
/// refused: back PostgreSQL up with `scripts/pg-backup.sh` (docs/operations.md).
pub fn sqlite_path(db: &str) -> Result<PathBuf> {
    if db.starts_with("postgres://") || db.starts_with("postgresql://") {
        return Err(Error::invalid(
            "database",
            "a PostgreSQL database is backed up with pg_basebackup and WAL archiving: scripts/pg-backup.sh".into(),
        ));
    }
    let path = db.strip_prefix("sqlite://").unwrap_or(db);
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() {
        return Err(Error::invalid("database", "give the SQLite file's path".into()));
    }
    Ok(PathBuf::from(path))
}

/// A temporary name beside `target` (same directory, so the final link is atomic).
fn temp_beside(target: &Path) -> Result<PathBuf> {
    let name =
        target.file_name().ok_or_else(|| Error::invalid("backup", format!("{}: no file name", target.display())))?;
    let mut tmp = name.to_os_string();
    tmp.push(format!(".tmp-{}", hex::encode(rand::random::<[u8; 6]>())));
    Ok(target.with_file_name(tmp))
}

fn fsync_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io("directory", dir, e))
}

/// Links `tmp` to `target` (refused if `target` exists: `link` never replaces), removes
/// `tmp`, fsyncs the directory.
fn publish(tmp: &Path, target: &Path) -> Result<()> {
    std::fs::hard_link(tmp, target).map_err(|e| io("target", target, e))?;
    std::fs::remove_file(tmp).map_err(|e| io("temporary file", tmp, e))?;
    fsync_dir(target)
}

/// Removes a temporary file on every path that does not publish it.
#[derive(Debug)]
struct TempFile(PathBuf);
impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn refuse_existing(target: &Path) -> Result<()> {
    for p in [target.to_path_buf(), sidecar(target, "-wal"), sidecar(target, "-shm")] {
        if p.exists() {
            return Err(Error::Conflict(format!("{} exists: refusing to overwrite it", p.display())));
        }
    }
    Ok(())
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// A checked file at a temporary name beside its target, not yet in place: a caller may check
/// more ([`Staged::path`]) before [`Staged::publish`]; dropped, it is removed.
#[derive(Debug)]
pub struct Staged {
    tmp: TempFile,
    target: PathBuf,
    /// What [`verify`] found in it.
    pub report: Report,
}

impl Staged {
    /// The temporary file.
    pub fn path(&self) -> &Path {
        &self.tmp.0
    }

    /// Links it into place (refused if the target has appeared meanwhile) and fsyncs the
    /// directory.
    pub fn publish(self) -> Result<Report> {
        publish(&self.tmp.0, &self.target)?;
        Ok(self.report)
    }
}

/// Backs up the SQLite database `source` (a node's file, which may be in use) to `target`,
/// which must not exist: the snapshot is written, fsynced and checked, and returned staged.
pub async fn stage_backup(source: &Path, target: &Path) -> Result<Staged> {
    if !source.is_file() {
        return Err(Error::invalid("source", format!("{}: no such database file", source.display())));
    }
    refuse_existing(target)?;
    let tmp = TempFile(temp_beside(target)?);
    {
        // A plain read connection: no migrations, nothing written to the source.
        let db = Db::connect(&source.display().to_string()).await?;
        let r = sqlx::query("VACUUM INTO $1").bind(tmp.0.display().to_string()).execute(db.pool()).await;
        db.close().await;
        r?;
    }
    std::fs::File::open(&tmp.0).and_then(|f| f.sync_all()).map_err(|e| io("backup", &tmp.0, e))?;
    let report = verify(&tmp.0).await?;
    Ok(Staged { tmp, target: target.to_path_buf(), report })
}

/// [`stage_backup`] and [`Staged::publish`].
pub async fn backup(source: &Path, target: &Path) -> Result<Report> {
    stage_backup(source, target).await?.publish()
}

/// Checks a backup file without changing it: `PRAGMA integrity_check` says `ok`, every table
/// is readable (its rows counted), and every chain head names a stored notice with that hash.
pub async fn verify(path: &Path) -> Result<Report> {
    let bytes = std::fs::metadata(path).map_err(|e| io("backup", path, e))?.len();
    let db = Db::open_read_only(path).await?;
    let r = check(&db).await;
    db.close().await;
    let (tables, heads) = r?;
    Ok(Report { tables, heads, bytes })
}

async fn check(db: &Db) -> Result<(Vec<(String, i64)>, Vec<Head>)> {
    let rows = sqlx::query("PRAGMA integrity_check").fetch_all(db.pool()).await?;
    let lines: Vec<String> = rows.iter().map(|r| r.try_get::<String, _>(0)).collect::<std::result::Result<_, _>>()?;
    if lines != ["ok"] {
        return Err(Error::corrupt("backup", format!("integrity_check: {}", lines.join("; "))));
    }
    let names: Vec<String> =
        sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
            .fetch_all(db.pool())
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<std::result::Result<_, _>>()?;
    let mut tables = Vec::new();
    for name in names {
        // A table name cannot be bound: only names of our schema's shape are counted.
        if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            return Err(Error::corrupt("backup", format!("unexpected table name {name:?}")));
        }
        let n: i64 = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM \"{name}\"")))
            .fetch_one(db.pool())
            .await?
            .try_get(0)?;
        tables.push((name, n));
    }
    let has = |t: &str| tables.iter().any(|(n, _)| n == t);
    let mut found = Vec::new();
    if has("source_counter") && has("replica_cursor") && has("change_notice") {
        found = heads(db).await?;
        for h in &found {
            if h.seq == 0 {
                continue;
            }
            let stored = sqlx::query("SELECT hash FROM change_notice WHERE source = $1 AND seq = $2")
                .bind(h.source.clone())
                .bind(i64::try_from(h.seq).map_err(|e| Error::corrupt("seq", e))?)
                .fetch_optional(db.pool())
                .await?
                .map(|r| r.try_get::<Vec<u8>, _>(0))
                .transpose()?;
            if stored.as_deref().map(hex::encode).as_deref() != Some(h.hash.as_str()) {
                return Err(Error::corrupt(
                    "backup",
                    format!("the chain head of {} (seq {}) is not the stored notice", h.source, h.seq),
                ));
            }
        }
    }
    Ok((tables, found))
}

/// Puts the backup `from` back as the database file `target` (the node stopped; `target` and
/// its `-wal`/`-shm` must not exist: move the damaged files aside first). The backup is
/// checked first and copied, never moved: it stays a backup. Returned staged.
pub async fn stage_restore(from: &Path, target: &Path) -> Result<Staged> {
    refuse_existing(target)?;
    let report = verify(from).await?;
    let tmp = TempFile(temp_beside(target)?);
    std::fs::copy(from, &tmp.0).map_err(|e| io("restore", &tmp.0, e))?;
    std::fs::File::open(&tmp.0).and_then(|f| f.sync_all()).map_err(|e| io("restore", &tmp.0, e))?;
    Ok(Staged { tmp, target: target.to_path_buf(), report })
}

/// [`stage_restore`] and [`Staged::publish`].
pub async fn restore(from: &Path, target: &Path) -> Result<Report> {
    stage_restore(from, target).await?.publish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_url_is_not_an_sqlite_path() {
        assert!(sqlite_path("postgres://u@h/db").is_err());
        assert_eq!(sqlite_path("sqlite:///srv/n.db?mode=rwc").ok(), Some(PathBuf::from("/srv/n.db")));
        assert_eq!(sqlite_path("n.db").ok(), Some(PathBuf::from("n.db")));
    }
}
