//! The CA's audit trail: one row per step of every operation, hash-chained
//! (`hash = SHA-256(prev_hash ‖ seq ‖ at ‖ actor ‖ action ‖ detail)`, each field length-prefixed)
//! so that an edited or deleted row breaks the chain; the tables also refuse UPDATE and DELETE.

use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::error::{Error, Result};
use identity::store::{Db, Tx};

fn chain(prev: &[u8], seq: i64, at: i64, actor: &str, action: &str, detail: &str) -> Vec<u8> {
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
    .bind(prev)
    .bind(hash)
    .execute(&mut **tx)
    .await?;
    Ok(())
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
