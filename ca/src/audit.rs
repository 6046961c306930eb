//! The CA's audit trail: one row per step of every operation, hash-chained
//! (`hash = SHA-256(prev_hash ‖ seq ‖ at ‖ actor ‖ action ‖ detail)`, each field length-prefixed)
//! so that an edited or deleted row breaks the chain; the tables also refuse UPDATE and DELETE.
//!
//! The trail can also be written, row by row, to an append-only **journal** file outside the
//! database ([`journal_to`], `JPKI_CA_AUDIT_JOURNAL`): one JSON object a line, written and
//! fsynced inside the row's transaction, before it commits. The journal is what a database
//! restored from an older backup is reconciled with ([`crate::restore`]): it holds every row
//! the backup missed, so no serial, revocation number or CRL number is used twice. A row whose
//! transaction then rolled back stays in the journal as a dead branch (its successor has the
//! same `prev_hash`); reconciliation follows the chain and treats dead branches' serials as
//! used.

use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::error::{Error, Result};
use identity::store::{Db, Tx};

pub(crate) fn chain(prev: &[u8], seq: i64, at: i64, actor: &str, action: &str, detail: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(at.to_be_bytes());
    for s in [actor, action, detail] {
        h.update((s.len() as u64).to_be_bytes());
        h.update(s.as_bytes());
    }
    h.finalize().to_vec()
}

/// Appends an audit row inside `tx` (the caller's write transaction holds the write lock).
pub async fn append(tx: &mut Tx, at: i64, actor: &str, action: &str, detail: &str) -> Result<()> {
    let last =
        sqlx::query("SELECT seq, hash FROM ca_audit ORDER BY seq DESC LIMIT 1").fetch_optional(&mut **tx).await?;
    let (seq, prev) = match last {
        Some(r) => (r.try_get::<i64, _>(0)? + 1, r.try_get::<Vec<u8>, _>(1)?),
        None => (1, vec![0u8; 32]),
    };
    let hash = chain(&prev, seq, at, actor, action, detail);
    sqlx::query(
        "INSERT INTO ca_audit (seq, at, actor, action, detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(seq)
    .bind(at)
    .bind(actor)
    .bind(action)
    .bind(detail)
    .bind(prev.clone())
    .bind(hash.clone())
    .execute(&mut **tx)
    .await?;
    if let Some(j) = JOURNAL.get() {
        let line = JournalRow {
            seq,
            at,
            actor: actor.to_owned(),
            action: action.to_owned(),
            detail: detail.to_owned(),
            prev_hash: hex::encode(&prev),
            hash: hex::encode(&hash),
        };
        let mut text = serde_json::to_string(&line).map_err(|e| Error::corrupt("journal row", e))?;
        text.push('\n');
        let mut f = j.lock().map_err(|_| Error::corrupt("audit journal", "lock poisoned"))?;
        // Written and fsynced before the caller commits: the journal is never behind the
        // database (a failed write fails the operation, which then rolls back).
        f.write_all(text.as_bytes()).and_then(|()| f.sync_data()).map_err(|e| Error::corrupt("audit journal", e))?;
    }
    Ok(())
}

/// This process's audit journal (one CA database per process, as one log).
static JOURNAL: OnceLock<Mutex<std::fs::File>> = OnceLock::new();

/// Writes every audit row this process appends to the journal at `path` too (created if
/// missing, appended to otherwise; keep it on another disk or host than the database).
/// Set once per process; a second call with another path is refused.
pub fn journal_to(path: &Path) -> Result<()> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::invalid("audit journal", format!("{}: {e}", path.display())))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::invalid("audit journal", e))?;
    }
    JOURNAL.set(Mutex::new(f)).map_err(|_| Error::invalid("audit journal", "already set for this process"))
}

/// One line of the journal: an audit row with its chain hashes (hex).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JournalRow {
    /// Position.
    pub seq: i64,
    /// Unix seconds.
    pub at: i64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// Details.
    pub detail: String,
    /// The previous row's hash (hex).
    pub prev_hash: String,
    /// This row's hash (hex).
    pub hash: String,
}

impl JournalRow {
    /// Whether the row's hash is the chain hash of its fields.
    pub fn verifies(&self) -> bool {
        hex::decode(&self.prev_hash).is_ok_and(|p| {
            hex::encode(chain(&p, self.seq, self.at, &self.actor, &self.action, &self.detail)) == self.hash
        })
    }
}

/// Reads a journal file: every line a [`JournalRow`] whose hash verifies, or an error naming
/// the first line that is not (nothing is trusted from a damaged journal).
pub fn read_journal(path: &Path) -> Result<Vec<JournalRow>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::invalid("audit journal", format!("{}: {e}", path.display())))?;
    // A crash while a row was being written leaves a torn last line without its newline:
    // that row's transaction never committed.
    let whole = match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    };
    let mut rows = Vec::new();
    for (i, line) in whole.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row: JournalRow = serde_json::from_str(line)
            .map_err(|e| Error::invalid("audit journal", format!("line {}: not a journal row ({e})", i + 1)))?;
        if !row.verifies() {
            return Err(Error::invalid("audit journal", format!("line {}: the row's hash does not verify", i + 1)));
        }
        rows.push(row);
    }
    Ok(rows)
}

/// The last row of the trail in the database: (seq, hash); (0, zeros) when empty.
pub async fn head(db: &Db) -> Result<(i64, Vec<u8>)> {
    let r = sqlx::query("SELECT seq, hash FROM ca_audit ORDER BY seq DESC LIMIT 1").fetch_optional(db.pool()).await?;
    Ok(match r {
        Some(r) => (r.try_get(0)?, r.try_get(1)?),
        None => (0, vec![0u8; 32]),
    })
}

/// One audit row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// Position.
    pub seq: i64,
    /// Unix seconds.
    pub at: i64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// Details (serials, slugs, reasons; never secrets).
    pub detail: String,
}

/// Reads the trail (last `limit` rows) and verifies the whole chain.
pub async fn read_and_verify(db: &Db, limit: i64) -> Result<Vec<AuditRow>> {
    let rows = sqlx::query("SELECT seq, at, actor, action, detail, prev_hash, hash FROM ca_audit ORDER BY seq")
        .fetch_all(db.pool())
        .await?;
    let mut prev = vec![0u8; 32];
    let mut out = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let row = AuditRow {
            seq: r.try_get(0)?,
            at: r.try_get(1)?,
            actor: r.try_get(2)?,
            action: r.try_get(3)?,
            detail: r.try_get(4)?,
        };
        let p: Vec<u8> = r.try_get(5)?;
        let h: Vec<u8> = r.try_get(6)?;
        if row.seq != i as i64 + 1 || p != prev || h != chain(&p, row.seq, row.at, &row.actor, &row.action, &row.detail)
        {
            return Err(Error::corrupt("audit trail", format!("chain broken at row {}", row.seq)));
        }
        prev = h;
        out.push(row);
    }
    let skip = out.len().saturating_sub(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(out.split_off(skip))
}
