//! After a restore of the CA's database from a backup: nothing numbered is used twice.
//!
//! A restored database has forgotten whatever happened after its backup: serials reserved and
//! certificates issued (they exist in the world; their serials must never be drawn again and
//! they must be revocable), revocations (their status-stream numbers were seen by validators),
//! CRL numbers published. So a restore is **marked** ([`mark_restored`], done by
//! `jpki restore`, or found by [`Authority::open`] when the audit journal is ahead of the
//! database), and while a mark is open the CA refuses to reserve serials or insert revocations
//! (`restore_unreconciled`), until either
//!
//! - [`reconcile`]: the audit journal ([`crate::audit::journal_to`]) is read; the database's
//!   audit head must be in it (else it is another CA's journal, or older); the rows after the
//!   head are put back into the trail verbatim (the chain continues unbroken); every serial
//!   they name is recorded (state void) and revoked (reason unspecified: the CA has lost the
//!   certificate and can no longer vouch for it), revocations are replayed with their original
//!   reason and time, the revocation counter jumps past every number the lost rows can have
//!   used, and CRL numbers past the last one published; or
//! - [`confirm`]: an operator states there is no journal and accepts what was lost; the
//!   revocation counter and CRL numbers jump by the margins the operator gives.
//!
//! Both are audited and close the mark.

use std::collections::BTreeSet;

use sqlx::Row;

use crate::audit::{self, JournalRow};
use crate::authority::{Authority, insert_revocation, state};
use crate::crl::Reason;
use crate::error::{Error, Result};
use crate::revocation::CertKind;
use identity::store::{Db, Tx};

/// Records that the database was restored from a backup (`detail`: from what); the CA
/// refuses to issue and revoke until the restore is reconciled or confirmed. Idempotent
/// while a mark is open.
pub async fn mark_restored(db: &Db, detail: &str, now: i64) -> Result<()> {
    crate::schema::migrate(db).await?;
    let (seq, _) = audit::head(db).await?;
    let mut tx = db.write().await?;
    if open_mark(&mut tx).await?.is_none() {
        let id: i64 =
            sqlx::query("SELECT COALESCE(MAX(id), 0) + 1 FROM ca_restore").fetch_one(&mut *tx).await?.try_get(0)?;
        sqlx::query("INSERT INTO ca_restore (id, restored_at, audit_seq, detail) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(now)
            .bind(seq)
            .bind(detail)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The open restore mark, if any: (id, audit seq at the restore).
async fn open_mark(tx: &mut Tx) -> Result<Option<(i64, i64)>> {
    let r = sqlx::query("SELECT id, audit_seq FROM ca_restore WHERE reconciled_at IS NULL ORDER BY id LIMIT 1")
        .fetch_optional(&mut **tx)
        .await?;
    r.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
}

/// Whether a restore mark is open (read outside a transaction).
pub async fn unreconciled(db: &Db) -> Result<bool> {
    Ok(sqlx::query("SELECT 1 FROM ca_restore WHERE reconciled_at IS NULL LIMIT 1")
        .fetch_optional(db.pool())
        .await?
        .is_some())
}

/// Inside a write transaction that takes a number (a serial, a revocation number): refused
/// with `restore_unreconciled` while a restore mark is open.
pub async fn check_reconciled(tx: &mut Tx) -> Result<()> {
    if open_mark(tx).await?.is_some() {
        return Err(Error::refused(
            "restore_unreconciled",
            "the CA database was restored from a backup: nothing is issued or revoked until \
             `jpki ca reconcile --journal FILE` (or `jpki ca reconcile --confirm-no-journal`) has run",
        ));
    }
    Ok(())
}

/// What [`reconcile`] or [`confirm`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Audit rows put back from the journal.
    pub rows: usize,
    /// Serials the backup did not know, now recorded (void) and revoked.
    pub lost_serials: Vec<String>,
    /// Revocations replayed from the journal.
    pub revocations: usize,
    /// The revocation counter before and after.
    pub revocation_seq: (i64, i64),
    /// CRL numbers moved forward (slug, generation, number).
    pub crl_numbers: Vec<(String, i64, i64)>,
}

/// A serial's issuer as a reserve row names it: (slug, generation, kind code).
type Issuer = (String, i64, i64);

/// Serials a row names: `reserve`, `tbs_stored` and `issued` rows list them, comma-separated,
/// each optionally `serial@slug/gN/kind` (reserve rows since issue 13).
fn serials_of(row: &JournalRow) -> Vec<(String, Option<Issuer>)> {
    if !matches!(row.action.as_str(), "reserve" | "tbs_stored" | "issued") {
        return Vec::new();
    }
    row.detail
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|item| match item.split_once('@') {
            Some((serial, at)) => {
                let mut p = at.split('/');
                let issuer = match (p.next(), p.next().and_then(|g| g.strip_prefix('g')?.parse().ok()), p.next()) {
                    (Some(slug), Some(g), Some(kind)) => kind.parse().ok().map(|k| (slug.to_owned(), g, k)),
                    _ => None,
                };
                (serial.to_owned(), issuer)
            }
            None => (item.to_owned(), None),
        })
        .collect()
}

/// How many revocation numbers a row can have taken (an upper bound).
fn revocations_of(row: &JournalRow) -> i64 {
    let count_before = |marker: &str| {
        row.detail.split_once(marker).and_then(|(head, _)| head.rsplit(' ').next()?.parse::<i64>().ok()).unwrap_or(0)
    };
    match row.action.as_str() {
        "revoke" => 1,
        "compromise" => count_before(" certificates revoked"),
        "recover" => count_before(" stored TBS revoked"),
        _ => 0,
    }
}

/// A `revoke` row's serial and reason: `{serial} {reason-name} ({cause})` or
/// `{serial} superseded ({cause})`.
fn revocation_of(row: &JournalRow) -> Option<(String, Reason, String)> {
    if row.action != "revoke" {
        return None;
    }
    let (serial, rest) = row.detail.split_once(' ')?;
    let (reason, cause) = rest.split_once(' ').unwrap_or((rest, ""));
    let reason = Reason::parse(reason).ok()?;
    Some((serial.to_owned(), reason, cause.trim_start_matches('(').trim_end_matches(')').to_owned()))
}

/// A `crl` row's CA generation and number: `{slug} g{n} shard {s} #{number}: …`.
fn crl_of(row: &JournalRow) -> Option<(String, i64, i64)> {
    if row.action != "crl" {
        return None;
    }
    let mut w = row.detail.split(' ');
    let slug = w.next()?.to_owned();
    let g = w.next()?.strip_prefix('g')?.parse().ok()?;
    let number = row.detail.split_once('#')?.1.split(':').next()?.parse().ok()?;
    Some((slug, g, number))
}

/// Reconciles a restored database with the audit journal (see the module documentation).
/// Refused, with nothing changed, when no restore mark is open, when the journal does not
/// hold the database's audit head, or when a lost row names a serial without its issuer.
pub async fn reconcile(a: &Authority, journal: &[JournalRow], actor: &str, now: i64) -> Result<Reconciled> {
    let db = a.db();
    if !unreconciled(db).await? {
        return Err(Error::Conflict("no restore to reconcile (the database is not marked as restored)".into()));
    }
    let (head_seq, head_hash) = audit::head(db).await?;
    let head_hex = hex::encode(&head_hash);
    // Where the database's head is in the journal (the zero hash: an empty trail).
    let found = head_seq == 0 || journal.iter().any(|r| r.seq == head_seq && r.hash == head_hex);
    if !found {
        return Err(Error::refused(
            "journal_mismatch",
            format!(
                "the journal does not hold this database's audit head (row {head_seq}): it is another CA's \
                 journal, or older than the database"
            ),
        ));
    }
    // The chain after the head: at each step the last row in file order extending it (a row
    // written earlier with the same predecessor is a rolled-back transaction's).
    let mut lost: Vec<&JournalRow> = Vec::new();
    let (mut seq, mut hash) = (head_seq, head_hex.clone());
    while let Some(next) = journal.iter().rev().find(|r| r.seq == seq + 1 && r.prev_hash == hash) {
        lost.push(next);
        seq = next.seq;
        hash = next.hash.clone();
    }
    let after = descendants(journal, &head_hex);
    let mut tx = db.write().await?;
    let Some((mark, _)) = open_mark(&mut tx).await? else {
        return Err(Error::Conflict("no restore to reconcile (the database is not marked as restored)".into()));
    };
    let mut out = Reconciled { rows: lost.len(), ..Reconciled::default() };
    // Close the mark first: the inserts below take numbers in this same transaction.
    close_mark(&mut tx, mark, actor, now, "reconciled with the audit journal").await?;
    for r in &lost {
        sqlx::query(
            "INSERT INTO ca_audit (seq, at, actor, action, detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(r.seq)
        .bind(r.at)
        .bind(r.actor.clone())
        .bind(r.action.clone())
        .bind(r.detail.clone())
        .bind(hex::decode(&r.prev_hash).map_err(|e| Error::corrupt("journal", e))?)
        .bind(hex::decode(&r.hash).map_err(|e| Error::corrupt("journal", e))?)
        .execute(&mut *tx)
        .await?;
    }
    // The revocation counter jumps past every number the lost rows can have taken: validators
    // that read them poll after them.
    let bound: i64 = after.iter().map(|r| revocations_of(r)).sum();
    let before: i64 =
        sqlx::query("SELECT last_seq FROM ca_revocation_counter WHERE id = 1").fetch_one(&mut *tx).await?.try_get(0)?;
    sqlx::query("UPDATE ca_revocation_counter SET last_seq = $1 WHERE id = 1")
        .bind(before + bound)
        .execute(&mut *tx)
        .await?;
    // Serials the backup does not know: recorded void and revoked.
    let mut seen = BTreeSet::new();
    let mut issuers: Vec<(String, Issuer)> = Vec::new();
    for r in &after {
        for (serial, issuer) in serials_of(r) {
            if let Some(i) = issuer {
                issuers.push((serial.clone(), i));
            }
            seen.insert(serial);
        }
    }
    for serial in &seen {
        let known = sqlx::query("SELECT 1 FROM ca_certificate WHERE serial = $1")
            .bind(serial.clone())
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if known {
            continue;
        }
        let Some((_, (slug, generation, kind))) = issuers.iter().find(|(s, _)| s == serial) else {
            return Err(Error::refused(
                "journal_incomplete",
                format!("serial {serial} was reserved after the backup, but the journal does not name its issuer"),
            ));
        };
        CertKind::from_code(*kind)?;
        let bytes = hex::decode(serial).map_err(|e| Error::corrupt("serial", e))?;
        let shards: i64 = sqlx::query("SELECT shards FROM ca_generation WHERE slug = $1 AND generation = $2")
            .bind(slug.clone())
            .bind(*generation)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| {
                Error::refused(
                    "journal_incomplete",
                    format!("serial {serial}'s issuer {slug} g{generation} is not in the restored database"),
                )
            })?
            .try_get(0)?;
        let shard = crate::authority::shard_of(&bytes, shards);
        sqlx::query("INSERT INTO ca_certificate (serial, issuer_slug, issuer_generation, kind, state, shard, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(serial.clone())
            .bind(slug.clone())
            .bind(*generation)
            .bind(*kind)
            .bind(state::VOID)
            .bind(shard)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let cause = "restore: issued after the backup, record lost";
        insert_revocation(&mut tx, serial, slug.clone(), *generation, shard, now, Reason::Unspecified, cause).await?;
        out.lost_serials.push(serial.clone());
    }
    // Revocations the backup missed, with their reason and time.
    for r in &lost {
        let Some((serial, reason, cause)) = revocation_of(r) else { continue };
        let Some(row) =
            sqlx::query("SELECT issuer_slug, issuer_generation, shard FROM ca_certificate WHERE serial = $1")
                .bind(serial.clone())
                .fetch_optional(&mut *tx)
                .await?
        else {
            continue;
        };
        if insert_revocation(&mut tx, &serial, row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, r.at, reason, &cause)
            .await?
        {
            out.revocations += 1;
        }
    }
    // CRL numbers past the last one published.
    for r in &after {
        let Some((slug, generation, number)) = crl_of(r) else { continue };
        let moved = sqlx::query(
            "UPDATE ca_generation SET crl_number = $1 WHERE slug = $2 AND generation = $3 AND crl_number < $1",
        )
        .bind(number)
        .bind(slug.clone())
        .bind(generation)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved > 0 {
            out.crl_numbers.retain(|(s, g, _)| !(s == &slug && *g == generation));
            out.crl_numbers.push((slug, generation, number));
        }
    }
    let after_seq: i64 =
        sqlx::query("SELECT last_seq FROM ca_revocation_counter WHERE id = 1").fetch_one(&mut *tx).await?.try_get(0)?;
    out.revocation_seq = (before, after_seq);
    let detail = format!(
        "restore reconciled: {} journal rows put back, {} lost serials revoked, {} revocations replayed, revocation seq {} -> {}, {} CRL numbers moved",
        out.rows,
        out.lost_serials.len(),
        out.revocations,
        before,
        after_seq,
        out.crl_numbers.len()
    );
    audit::append(&mut tx, now, actor, "restore_reconciled", &detail).await?;
    tx.commit().await?;
    tracing::warn!(rows = out.rows, lost = out.lost_serials.len(), "restore reconciled with the audit journal");
    Ok(out)
}

/// An operator's confirmation that a restored database goes back into service without a
/// journal: the revocation counter moves forward by `revocation_margin` and every CRL number
/// by `crl_margin` (numbers the lost period may have used), audited with the operator's word.
pub async fn confirm(
    a: &Authority,
    actor: &str,
    revocation_margin: i64,
    crl_margin: i64,
    now: i64,
) -> Result<Reconciled> {
    if revocation_margin < 0 || crl_margin < 0 {
        return Err(Error::invalid("margin", "not negative"));
    }
    let mut tx = a.db().write().await?;
    let Some((mark, _)) = open_mark(&mut tx).await? else {
        return Err(Error::Conflict("no restore to confirm (the database is not marked as restored)".into()));
    };
    close_mark(&mut tx, mark, actor, now, "confirmed by an operator without a journal").await?;
    let before: i64 =
        sqlx::query("SELECT last_seq FROM ca_revocation_counter WHERE id = 1").fetch_one(&mut *tx).await?.try_get(0)?;
    sqlx::query("UPDATE ca_revocation_counter SET last_seq = $1 WHERE id = 1")
        .bind(before + revocation_margin)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE ca_generation SET crl_number = crl_number + $1").bind(crl_margin).execute(&mut *tx).await?;
    let detail = format!(
        "restore confirmed without a journal: revocation seq {before} -> {}, CRL numbers +{crl_margin}",
        before + revocation_margin
    );
    audit::append(&mut tx, now, actor, "restore_confirmed", &detail).await?;
    tx.commit().await?;
    Ok(Reconciled { revocation_seq: (before, before + revocation_margin), ..Reconciled::default() })
}

async fn close_mark(tx: &mut Tx, id: i64, actor: &str, now: i64, outcome: &str) -> Result<()> {
    sqlx::query("UPDATE ca_restore SET reconciled_at = $1, reconciled_by = $2, outcome = $3 WHERE id = $4")
        .bind(now)
        .bind(actor)
        .bind(outcome)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Every row descending from the row whose hash is `head` (hex): the chain after it and the
/// dead branches forking from it (rolled-back transactions, which may have drawn serials), in
/// file order; rows of another chain in the same file are not descendants.
fn descendants<'a>(journal: &'a [JournalRow], head: &str) -> Vec<&'a JournalRow> {
    let mut hashes: BTreeSet<&str> = BTreeSet::from([head]);
    let mut out = Vec::new();
    for r in journal {
        if hashes.contains(r.prev_hash.as_str()) {
            hashes.insert(&r.hash);
            out.push(r);
        }
    }
    out
}

/// At open: a journal ahead of the database means the database lost rows (a restore the
/// operator did not mark, or a crash between a journal write and its commit): the restore
/// is marked, so nothing is issued until [`reconcile`] has run.
pub async fn check_journal(db: &Db, journal: &[JournalRow], now: i64) -> Result<bool> {
    let (seq, hash) = audit::head(db).await?;
    let ahead = !descendants(journal, &hex::encode(hash)).is_empty();
    if ahead && !unreconciled(db).await? {
        mark_restored(db, "found at open: the audit journal is ahead of the database", now).await?;
        tracing::warn!(db_seq = seq, "the audit journal is ahead of the CA database: marked as restored");
    }
    Ok(ahead)
}
