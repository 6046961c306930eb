//! Replica nodes (prefecture and national): apply pulled notices per source with the pure
//! [`decide`] and the pure ownership rule [`check_ownership`], in one transaction per batch
//! that inserts the notices, updates the projection and feed and advances the cursor, so
//! "applied" and "cursor moved" can never disagree. Prefectures keep the full history and
//! re-serve it unchanged, signature envelopes and notice-key certificates included. A pulled
//! page must hold only the asked source's notices, and nothing is applied unless its
//! municipality's signature verifies ([`crate::notice_sig`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::apply::{Cursor, Decision, Facts, Ownership, changed_items, check_ownership, check_page, decide};
use crate::error::{Error, Result};
use crate::ids::LgCode;
use crate::notice::{ChangeNotice, GENESIS, Hash, NoticeKind, NoticeRef};
use crate::notice_sig::{MAX_KEY_CERT, NoticeKeyCert, NoticeVerifier, check_key_id, envelope, verify_notice};
use crate::person::Record;
use crate::store::{self, Db, Tx, hash_from, i64_from, u64_from};

pub use crate::apply::Tier;

/// Why applying a batch stopped early.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "stop")]
pub enum Stop {
    /// Notices missing before `expected`.
    Gap {
        /// Next seq wanted.
        expected: u64,
    },
    /// Waiting for another source's notice (causal order of moves).
    Parked {
        /// `source/seq` waited for.
        waiting_for: String,
    },
}

/// Result of applying one batch of one source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// Notices applied.
    pub applied: u64,
    /// Duplicates acknowledged.
    pub duplicates: u64,
    /// Why the batch stopped before its end, if it did.
    pub stop: Option<Stop>,
    /// Cursor after the batch.
    pub cursor_seq: u64,
}

/// A replica's view of one source.
pub async fn cursor(db: &Db, source: &str) -> Result<(Cursor, Option<String>)> {
    let row = sqlx::query("SELECT applied_seq, applied_hash, halted FROM replica_cursor WHERE source = $1")
        .bind(source)
        .fetch_optional(db.pool())
        .await?;
    match row {
        None => Ok((Cursor::START, None)),
        Some(r) => Ok((
            Cursor { applied_seq: u64_from(r.try_get(0)?, "seq")?, applied_hash: hash_from(r.try_get(1)?)? },
            r.try_get(2)?,
        )),
    }
}

async fn cursor_tx(tx: &mut Tx, source: &str) -> Result<(Cursor, Option<String>, bool)> {
    let row = sqlx::query("SELECT applied_seq, applied_hash, halted FROM replica_cursor WHERE source = $1")
        .bind(source)
        .fetch_optional(&mut **tx)
        .await?;
    match row {
        None => Ok((Cursor::START, None, false)),
        Some(r) => Ok((
            Cursor { applied_seq: u64_from(r.try_get(0)?, "seq")?, applied_hash: hash_from(r.try_get(1)?)? },
            r.try_get(2)?,
            true,
        )),
    }
}

/// Applies a batch of notices of ONE source in one transaction: every notice is decided
/// in order by [`decide`] and, if it is the next of the chain, checked against the ownership
/// rule ([`check_ownership`], folded over the batch: an earlier notice of the batch changes
/// what a later one may write); a notice to apply must also carry a version-1 signature by
/// a key admitted for its source (a certificate in `notice_key`, re-admitted by `verifier`
/// once per batch) that verifies over [`signed_message`](crate::notice_sig::signed_message).
/// Then the accepted prefix is written with multi-row statements (notices with their
/// envelopes, projection, feed) and the cursor advances — all in the same transaction. A
/// diverged notice, one that breaks the ownership rule, or a missing, unknown-key or failing
/// signature (reason `signature: …`) halts the source (recorded, loud) and nothing of the
/// batch is applied. Unknown keys are fetched by [`pull`] before it calls this; direct
/// callers store them with [`admit_keys`].
pub async fn apply_batch(
    db: &Db,
    tier: Tier,
    verifier: &dyn NoticeVerifier,
    notices: &[ChangeNotice],
) -> Result<Applied> {
    let Some(first) = notices.first() else { return Ok(Applied::default()) };
    let source = first.key.source.as_str().to_owned();
    if let Some(other) = notices.iter().find(|n| n.key.source.as_str() != source) {
        return Err(Error::invalid("batch", format!("mixes sources {source} and {}", other.key.source)));
    }
    let mut tx = db.write().await?;
    let (start, halted, exists) = cursor_tx(&mut tx, &source).await?;
    if let Some(reason) = halted {
        return Err(Error::Halted { source_code: source, reason });
    }
    // Hashes of already-applied seqs this batch repeats, in one read.
    let mut stored = match notices.iter().map(|n| n.key.seq).filter(|s| (1..=start.applied_seq).contains(s)).min() {
        Some(lo) => store::stored_hashes(&mut tx, &source, lo, start.applied_seq).await?,
        None => HashMap::new(),
    };
    // What the ownership rule needs, read once: the projected records, retired codes and
    // (national) issued codes of every code the batch names.
    let mut codes: Vec<&str> = notices
        .iter()
        .flat_map(|n| {
            std::iter::once(n.body.record.resident_code.as_str())
                .chain(n.body.previous_code.as_ref().map(|c| c.as_str()))
        })
        .collect();
    codes.sort_unstable();
    codes.dedup();
    let before = crate::municipal::load_many(&mut tx, &codes).await?;
    let mut retired = store::retired_among(&mut tx, &codes).await?;
    let issued = match tier {
        Tier::National => store::issued_among(&mut tx, &codes).await?,
        Tier::Prefecture => HashMap::new(),
    };
    let mut current = before.clone();
    let mut predecessor_cursors: HashMap<String, u64> = HashMap::new();
    let mut keys: HashMap<String, Result<(), String>> = HashMap::new();
    let mut cur = start;
    let mut out = Applied::default();
    let mut accepted: Vec<&ChangeNotice> = Vec::with_capacity(notices.len());
    let mut projected: Vec<&ChangeNotice> = Vec::with_capacity(notices.len());
    for n in notices {
        let stored_hash = if n.key.seq <= cur.applied_seq { stored.get(&n.key.seq).copied() } else { None };
        let pred_ok = match &n.body.predecessor {
            // The national tier sees every move's both sides; a prefecture only those within it.
            Some(p) if tier == Tier::National || p.source.prefecture() == n.key.source.prefecture() => {
                let applied = if p.source.as_str() == source {
                    cur.applied_seq
                } else if let Some(s) = predecessor_cursors.get(p.source.as_str()) {
                    *s
                } else {
                    let (pc, _, _) = cursor_tx(&mut tx, p.source.as_str()).await?;
                    predecessor_cursors.insert(p.source.as_str().to_owned(), pc.applied_seq);
                    pc.applied_seq
                };
                applied >= p.seq
            }
            _ => true,
        };
        let mut decision = decide(&cur, n, stored_hash.as_ref(), pred_ok);
        if decision == Decision::Apply
            && let Err(reason) = check_key(&mut tx, verifier, n, &mut keys).await?
        {
            decision = Decision::Diverged { reason: format!("signature: {reason}"), expected: None, received: None };
        }
        match decision {
            Decision::Apply => {
                let predecessor = match (&n.body.kind, &n.body.predecessor) {
                    (NoticeKind::MoveIn, Some(p)) => store::notice_at(&mut tx, p).await?,
                    _ => None,
                };
                let rec = &n.body.record;
                let acting = n.body.previous_code.as_ref().unwrap_or(&rec.resident_code).as_str();
                let code_change = n.body.kind == NoticeKind::CodeChange;
                let facts = Facts {
                    current: current.get(acting),
                    retired: retired.contains(acting),
                    new_code_holder: if code_change { current.get(rec.resident_code.as_str()) } else { None },
                    new_code_retired: code_change && retired.contains(rec.resident_code.as_str()),
                    issued_to: issued.get(rec.resident_code.as_str()).map(String::as_str),
                    predecessor: predecessor.as_ref(),
                };
                match check_ownership(n, &facts, tier) {
                    Ok(Ownership::Owned) => {
                        if code_change {
                            current.remove(acting);
                            retired.insert(acting.to_owned());
                        }
                        current.insert(rec.resident_code.as_str().to_owned(), rec.clone());
                        projected.push(n);
                    }
                    Ok(Ownership::Stale) => {
                        tracing::info!(source = %source, seq = n.key.seq, kind = ?n.body.kind, "notice older than the projection: stored and relayed, not projected");
                    }
                    Err(why) => {
                        // Blame the source only for what it signed: an unsigned or forged
                        // notice is a signature failure (of whoever relayed it), not its own.
                        if let Err(bad) = verify_notice(verifier, n) {
                            drop(tx);
                            let reason = format!("signature: seq {}: {bad}", n.key.seq);
                            halt(db, &source, &Divergence::at(n.key.seq, &reason)).await?;
                            tracing::error!(source = %source, seq = n.key.seq, %reason, "notice signature failed: source halted");
                            return Err(Error::Diverged { source_code: source, seq: n.key.seq, reason });
                        }
                        drop(tx);
                        let reason = format!("ownership: seq {} ({:?}): {why}", n.key.seq, n.body.kind);
                        halt(db, &source, &Divergence::at(n.key.seq, &reason)).await?;
                        // The reason names codes and municipalities only, never the four items.
                        tracing::error!(source = %source, seq = n.key.seq, %reason, "notice breaks the ownership rule: source halted");
                        return Err(Error::Ownership { source_code: source, seq: n.key.seq, reason: why });
                    }
                }
                stored.insert(n.key.seq, n.hash);
                cur = Cursor { applied_seq: n.key.seq, applied_hash: n.hash };
                accepted.push(n);
                out.applied += 1;
            }
            Decision::Duplicate => out.duplicates += 1,
            Decision::Gap { expected } => {
                out.stop = Some(Stop::Gap { expected });
                break;
            }
            Decision::Park { waiting_for } => {
                out.stop = Some(Stop::Parked { waiting_for: format!("{}/{}", waiting_for.source, waiting_for.seq) });
                break;
            }
            Decision::Diverged { reason, expected, received } => {
                drop(tx);
                let d = Divergence { seq: n.key.seq, reason: &reason, expected, received };
                halt(db, &source, &d).await?;
                tracing::error!(source = %source, seq = n.key.seq, %reason, "chain diverged: source halted");
                return Err(Error::Diverged { source_code: source, seq: n.key.seq, reason });
            }
        }
    }
    // The newest accepted notice's signature vouches for the whole accepted prefix: its
    // hash chains, through every prev_hash `decide` checked, back to the cursor's head. One
    // verification per batch instead of one per notice (each envelope and key was checked
    // above).
    if let Some(last) = accepted.last()
        && let Err(bad) = verify_notice(verifier, last)
    {
        drop(tx);
        let reason = format!("signature: seq {}: {bad}", last.key.seq);
        halt(db, &source, &Divergence::at(last.key.seq, &reason)).await?;
        tracing::error!(source = %source, seq = last.key.seq, %reason, "notice signature failed: source halted");
        return Err(Error::Diverged { source_code: source, seq: last.key.seq, reason });
    }
    store::insert_notices(&mut tx, &accepted).await?;
    project(&mut tx, &projected, before).await?;
    let parked = match &out.stop {
        Some(Stop::Parked { waiting_for }) => Some(waiting_for.clone()),
        _ => None,
    };
    if exists {
        let moved = sqlx::query(
            "UPDATE replica_cursor SET applied_seq = $1, applied_hash = $2, parked_on = $3
             WHERE source = $4 AND applied_seq = $5",
        )
        .bind(i64_from(cur.applied_seq, "seq")?)
        .bind(cur.applied_hash.to_vec())
        .bind(parked)
        .bind(source.as_str())
        .bind(i64_from(start.applied_seq, "seq")?)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved != 1 {
            return Err(Error::Conflict(format!("cursor of {source} moved concurrently; retry")));
        }
    } else {
        sqlx::query(
            "INSERT INTO replica_cursor (source, applied_seq, applied_hash, parked_on) VALUES ($1, $2, $3, $4)",
        )
        .bind(source.as_str())
        .bind(i64_from(cur.applied_seq, "seq")?)
        .bind(cur.applied_hash.to_vec())
        .bind(parked)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    db.changed();
    out.cursor_seq = cur.applied_seq;
    Ok(out)
}

/// Whether `n` carries a valid signature by an admitted key of its source: `Ok(Err(why))`
/// when it does not. `keys` caches, per batch, the verdict on each stored key certificate.
/// Checks that `n` carries a well-formed version-1 envelope whose key is admitted for its
/// source (the stored certificate re-admitted once per batch). The signature itself is
/// verified once per batch, on the newest accepted notice (see [`apply_batch`]).
async fn check_key(
    tx: &mut Tx,
    verifier: &dyn NoticeVerifier,
    n: &ChangeNotice,
    keys: &mut HashMap<String, Result<(), String>>,
) -> Result<Result<(), String>> {
    let s = match envelope(n) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    if !keys.contains_key(&s.key_id) {
        let source = &n.key.source;
        let verdict = match store::notice_key_cert(tx, source.as_str(), &s.key_id).await? {
            None => Err(format!("key {} is not admitted for source {source}", s.key_id)),
            // A restarted replica has stored certificates but a fresh verifier: admit again.
            Some(cert) => match verifier.admit_key(source, &cert) {
                Ok(id) if id == s.key_id => Ok(()),
                Ok(id) => Err(format!("the stored certificate of key {} now yields key id {id}", s.key_id)),
                Err(e) => Err(format!("the stored certificate of key {} is no longer admitted: {e}", s.key_id)),
            },
        };
        keys.insert(s.key_id.clone(), verdict);
    }
    if let Some(Err(e)) = keys.get(&s.key_id) {
        return Ok(Err(e.clone()));
    }
    Ok(Ok(()))
}

/// Admits the notice-key certificates `certs` of `source` that are not stored yet: each is
/// checked by `verifier.admit_key` (network CA, names `source`, notice-signing use) and must
/// yield the key id it is offered under; admitted ones are stored in `notice_key` (and
/// re-served from there), refused ones are logged and not stored. Returns the key ids
/// stored by this call.
pub async fn admit_keys(
    db: &Db,
    verifier: &dyn NoticeVerifier,
    source: &LgCode,
    certs: &[NoticeKeyCert],
    now: i64,
) -> Result<Vec<String>> {
    let stored: HashSet<String> =
        store::notice_keys(db, source.as_str()).await?.into_iter().map(|k| k.key_id).collect();
    let mut admitted = Vec::new();
    let mut tx = db.write().await?;
    for c in certs {
        if stored.contains(&c.key_id) || admitted.contains(&c.key_id) {
            continue;
        }
        let verdict = match (check_key_id(&c.key_id), c.cert.len()) {
            (Err(e), _) => Err(e),
            (_, len) if len == 0 || len > MAX_KEY_CERT => Err(format!("certificate of {len} bytes")),
            _ => match verifier.admit_key(source, &c.cert) {
                Ok(id) if id == c.key_id => Ok(()),
                Ok(id) => Err(format!("offered as key {} but the certificate is key {id}", c.key_id)),
                Err(e) => Err(e),
            },
        };
        match verdict {
            Ok(()) => {
                store::insert_notice_key(&mut tx, source.as_str(), &c.key_id, &c.cert, now).await?;
                admitted.push(c.key_id.clone());
            }
            Err(reason) => {
                tracing::warn!(source = %source, key_id = %c.key_id, %reason, "notice-key certificate refused; not stored");
            }
        }
    }
    tx.commit().await?;
    for k in &admitted {
        tracing::info!(source = %source, key_id = %k, "notice key admitted");
    }
    Ok(admitted)
}

/// Before a page is applied: if it names keys of `source` not stored here, fetches the
/// source's key certificates from `peer` (the node being pulled) and admits them. A peer
/// failure is transient (nothing is halted); a key that stays unknown halts the source in
/// [`apply_batch`].
async fn fetch_missing_keys(
    db: &Db,
    verifier: &dyn NoticeVerifier,
    peer: &crate::client::Peer,
    source: &LgCode,
    page: &[ChangeNotice],
) -> Result<()> {
    let stored: HashSet<String> =
        store::notice_keys(db, source.as_str()).await?.into_iter().map(|k| k.key_id).collect();
    let missing = page
        .iter()
        .filter_map(|n| n.signature.as_ref())
        .any(|s| check_key_id(&s.key_id).is_ok() && !stored.contains(&s.key_id));
    if !missing {
        return Ok(());
    }
    let certs = peer.notice_keys(source.as_str()).await?;
    admit_keys(db, verifier, source, &certs, crate::http::now()).await?;
    Ok(())
}

/// What halts a source: the notice's seq, why, and (when one hash contradicts another) the
/// hash this node's history calls for and the one the notice carried.
struct Divergence<'a> {
    seq: u64,
    reason: &'a str,
    expected: Option<Hash>,
    received: Option<Hash>,
}

impl<'a> Divergence<'a> {
    /// A halt about notice `seq` that is not one hash against another (signature, ownership).
    fn at(seq: u64, reason: &'a str) -> Self {
        Self { seq, reason, expected: None, received: None }
    }
}

async fn halt(db: &Db, source: &str, d: &Divergence<'_>) -> Result<()> {
    let mut tx = db.write().await?;
    sqlx::query(
        "INSERT INTO replica_cursor (source, applied_seq, applied_hash, halted, halted_seq, halted_expected, halted_received, halted_at)
         VALUES ($1, 0, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (source) DO UPDATE SET halted = excluded.halted, halted_seq = excluded.halted_seq,
           halted_expected = excluded.halted_expected, halted_received = excluded.halted_received,
           halted_at = excluded.halted_at",
    )
    .bind(source)
    .bind(GENESIS.to_vec())
    .bind(d.reason)
    .bind(i64_from(d.seq, "seq")?)
    .bind(d.expected.map(hex::encode))
    .bind(d.received.map(hex::encode))
    .bind(crate::http::now())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    db.changed();
    Ok(())
}

/// A halted source as this node recorded it (the operator console's 停止中の送信元).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Halt {
    /// Municipality code.
    pub source: String,
    /// The cursor: the last seq applied before the halt.
    pub applied_seq: u64,
    /// Why.
    pub reason: String,
    /// The seq of the notice that halted it (absent for halts recorded before this was kept).
    pub seq: Option<u64>,
    /// The hash this node's history calls for (hex), where one hash contradicts another.
    pub expected: Option<String>,
    /// The hash the notice carried instead (hex).
    pub received: Option<String>,
    /// When (unix seconds).
    pub at: Option<i64>,
}

/// Every halted source of this replica, by source.
pub async fn halts(db: &Db) -> Result<Vec<Halt>> {
    let rows = sqlx::query(
        "SELECT source, applied_seq, halted, halted_seq, halted_expected, halted_received, halted_at
         FROM replica_cursor WHERE halted IS NOT NULL ORDER BY source",
    )
    .fetch_all(db.pool())
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(Halt {
                source: r.try_get(0)?,
                applied_seq: u64_from(r.try_get(1)?, "seq")?,
                reason: r.try_get(2)?,
                seq: r.try_get::<Option<i64>, _>(3)?.map(|s| u64_from(s, "seq")).transpose()?,
                expected: r.try_get(4)?,
                received: r.try_get(5)?,
                at: r.try_get(6)?,
            })
        })
        .collect()
}

/// Clears a halt after an operator of a replica tier has investigated; logged. The chain
/// must still verify for anything to apply afterwards.
pub async fn resume(db: &Db, op: &crate::operator::Operator, source: &str, now: i64) -> Result<()> {
    if op.role == crate::operator::Role::MunicipalClerk {
        return Err(Error::Forbidden {
            operator: op.id.clone(),
            role: op.role.to_string(),
            action: "resume a halted source",
        });
    }
    let mut tx = db.write().await?;
    let n = sqlx::query(
        "UPDATE replica_cursor SET halted = NULL, halted_seq = NULL, halted_expected = NULL, halted_received = NULL,
           halted_at = NULL WHERE source = $1 AND halted IS NOT NULL",
    )
    .bind(source)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(Error::Conflict(format!("source {source} is not halted here")));
    }
    crate::operator::log(&mut tx, op, "resume_source", source, now).await?;
    tx.commit().await?;
    db.changed();
    Ok(())
}

/// Projection of applied notices, in order: the resident rows (the fold of the notices over
/// `before`, the stored records of the batch's codes, read once by the caller), retired
/// codes and one change-information feed entry per notice. Folds in memory, writes with
/// multi-row statements.
async fn project(tx: &mut Tx, ns: &[&ChangeNotice], before: HashMap<String, Record>) -> Result<()> {
    if ns.is_empty() {
        return Ok(());
    }
    let mut current: HashMap<String, Option<Record>> = before.into_iter().map(|(k, v)| (k, Some(v))).collect();
    // Final state per touched code: None = deleted (retired by a code change).
    let mut touched: BTreeMap<&str, Option<(&Record, &NoticeRef)>> = BTreeMap::new();
    let mut retired = Vec::new();
    let mut feed = Vec::with_capacity(ns.len());
    for n in ns {
        let rec = &n.body.record;
        let prev_code = n.body.previous_code.as_ref().unwrap_or(&rec.resident_code);
        let prev = current.get(prev_code.as_str()).cloned().flatten();
        if n.body.kind == NoticeKind::CodeChange {
            current.insert(prev_code.as_str().to_owned(), None);
            touched.insert(prev_code.as_str(), None);
            retired.push((prev_code.as_str(), rec.resident_code.as_str(), n.body.recorded_at));
        }
        let changed: Vec<&str> = changed_items(prev.as_ref(), rec).into_iter().map(|i| i.as_str()).collect();
        current.insert(rec.resident_code.as_str().to_owned(), Some(rec.clone()));
        touched.insert(rec.resident_code.as_str(), Some((rec, &n.key)));
        feed.push((*n, changed.join(",")));
    }
    let deleted: Vec<&str> = touched.iter().filter(|(_, v)| v.is_none()).map(|(k, _)| *k).collect();
    for chunk in deleted.chunks(store::ROWS_PER_STATEMENT) {
        let sql = format!("DELETE FROM resident WHERE resident_code IN ({})", store::in_list(chunk.len()));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for c in chunk {
            q = q.bind((*c).to_owned());
        }
        q.execute(&mut **tx).await?;
    }
    let upserts: Vec<(&Record, &NoticeRef)> = touched.values().filter_map(|v| *v).collect();
    crate::municipal::upsert_residents(tx, &upserts).await?;
    for chunk in retired.chunks(store::ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO retired_code (code, replaced_by, retired_at) VALUES {} ON CONFLICT (code) DO NOTHING",
            store::values_clause(chunk.len(), 3)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (old, new, at) in chunk {
            q = q.bind((*old).to_owned()).bind((*new).to_owned()).bind(*at);
        }
        q.execute(&mut **tx).await?;
    }
    let n = i64::try_from(feed.len()).map_err(|e| Error::corrupt("feed", e))?;
    let last: i64 = sqlx::query(
        "INSERT INTO counter (name, value) VALUES ('feed', $1)
         ON CONFLICT (name) DO UPDATE SET value = counter.value + excluded.value RETURNING value",
    )
    .bind(n)
    .fetch_one(&mut **tx)
    .await?
    .try_get(0)?;
    let first = last - n + 1;
    for (c, chunk) in feed.chunks(store::ROWS_PER_STATEMENT).enumerate() {
        let sql = format!(
            "INSERT INTO feed (feed_seq, source, seq, resident_code, previous_code, kind, changed, effective_date, recorded_at) VALUES {}",
            store::values_clause(chunk.len(), 9)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (i, (n, changed)) in chunk.iter().enumerate() {
            let feed_seq =
                first + i64::try_from(c * store::ROWS_PER_STATEMENT + i).map_err(|e| Error::corrupt("feed", e))?;
            q = q
                .bind(feed_seq)
                .bind(n.key.source.as_str().to_owned())
                .bind(i64_from(n.key.seq, "seq")?)
                .bind(n.body.record.resident_code.as_str().to_owned())
                .bind(n.body.previous_code.as_ref().map(|c| c.as_str().to_owned()))
                .bind(i64::from(n.body.kind.code()))
                .bind(changed.clone())
                .bind(crate::notice::format_date(n.body.effective_date))
                .bind(n.body.recorded_at);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// An upstream node to pull from, with the prefecture code its sources must carry.
pub type Upstream = (crate::client::Peer, Option<String>);

/// Notices per pull request.
pub const PULL_PAGE: u32 = 500;

/// What one pull round did for one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceReport {
    /// Municipality code.
    pub source: String,
    /// Notices applied this round.
    pub applied: u64,
    /// Duplicates acknowledged.
    pub duplicates: u64,
    /// Cursor after the round.
    pub cursor_seq: u64,
    /// Why the round stopped early, if it did.
    pub stop: Option<Stop>,
    /// Error for this source (halted, diverged, peer failure).
    pub error: Option<String>,
}

/// Pulls every source the upstream `peer` holds (restricted to `only` if given) until
/// caught up, a gap, a park or an error. `expect_prefix` restricts accepted sources to a
/// prefecture code (the national node checks a prefecture only relays its own municipalities).
pub async fn pull(
    db: &Db,
    tier: Tier,
    verifier: &dyn NoticeVerifier,
    peer: &crate::client::Peer,
    expect_prefix: Option<&str>,
) -> Result<Vec<SourceReport>> {
    let heads = peer.heads().await?;
    let mut reports = Vec::new();
    for h in heads.heads {
        if let Some(p) = expect_prefix
            && !h.source.starts_with(p)
        {
            tracing::warn!(peer = peer.base(), source = %h.source, "peer offers a source outside its prefecture; ignored");
            continue;
        }
        let mut rep = SourceReport {
            source: h.source.clone(),
            applied: 0,
            duplicates: 0,
            cursor_seq: 0,
            stop: None,
            error: None,
        };
        let source: LgCode = match h.source.parse() {
            Ok(s) => s,
            Err(e) => {
                rep.error = Some(e.to_string());
                reports.push(rep);
                continue;
            }
        };
        loop {
            let (cur, halted) = cursor(db, &h.source).await?;
            rep.cursor_seq = cur.applied_seq;
            if let Some(reason) = halted {
                rep.error = Some(format!("halted: {reason}"));
                break;
            }
            if cur.applied_seq >= h.seq {
                break;
            }
            let page = match peer.notices(&h.source, cur.applied_seq, PULL_PAGE).await {
                Ok(p) => p,
                Err(e) => {
                    rep.error = Some(e.to_string());
                    break;
                }
            };
            if page.is_empty() {
                break;
            }
            if let Err(refusal) = check_page(&h.source, &page) {
                tracing::warn!(peer = peer.base(), source = %h.source, %refusal, "page refused");
                rep.error = Some(refusal);
                break;
            }
            if let Err(e) = fetch_missing_keys(db, verifier, peer, &source, &page).await {
                rep.error = Some(format!("notice keys: {e}"));
                break;
            }
            match apply_batch(db, tier, verifier, &page).await {
                Ok(a) => {
                    rep.applied += a.applied;
                    rep.duplicates += a.duplicates;
                    rep.cursor_seq = a.cursor_seq;
                    if a.stop.is_some() || a.applied == 0 {
                        rep.stop = a.stop;
                        break;
                    }
                }
                Err(e) => {
                    rep.error = Some(e.to_string());
                    break;
                }
            }
        }
        record_lag(tier, peer.base(), &rep, h.seq);
        reports.push(rep);
    }
    Ok(reports)
}

/// The replication lag of one pulled source as this process last measured it: what the
/// metrics below export, kept for the operator console (`GET /console/lag`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lag {
    /// `prefecture` or `national`.
    pub tier: String,
    /// The peer pulled (its base URL).
    pub peer: String,
    /// Municipality code.
    pub source: String,
    /// The peer's head seq at the pull.
    pub peer_seq: u64,
    /// This node's cursor after the pull.
    pub cursor_seq: u64,
    /// Seqs behind the peer's head after the pull.
    pub behind: u64,
    /// Whether the source is halted here.
    pub halted: bool,
    /// The pull's error, if any (halted, peer failure).
    pub error: Option<String>,
    /// When it was pulled (unix seconds).
    pub pulled_at: i64,
}

/// The lag of every (tier, peer, source) pulled by this process, newest pull each.
static LAG: std::sync::Mutex<BTreeMap<(String, String, String), Lag>> = std::sync::Mutex::new(BTreeMap::new());

/// What this process's pulls last measured, per peer and source (empty before the first
/// pull, and in a process that pulls nothing).
pub fn lag() -> Vec<Lag> {
    LAG.lock().unwrap_or_else(std::sync::PoisonError::into_inner).values().cloned().collect()
}

/// Replication metrics of one pulled source (`net::metrics`): how far behind the peer's head
/// it is, what was applied, whether it is halted, and when it was last pulled; the same
/// values are kept for [`lag`].
fn record_lag(tier: Tier, peer: &str, rep: &SourceReport, head: u64) {
    let tier = match tier {
        Tier::Prefecture => "prefecture",
        Tier::National => "national",
    };
    let now = crate::http::now();
    let lag = Lag {
        tier: tier.to_owned(),
        peer: peer.to_owned(),
        source: rep.source.clone(),
        peer_seq: head,
        cursor_seq: rep.cursor_seq,
        behind: head.saturating_sub(rep.cursor_seq),
        halted: rep.error.as_deref().is_some_and(|e| e.starts_with("halted")),
        error: rep.error.clone(),
        pulled_at: now,
    };
    let source = rep.source.clone();
    metrics::gauge!("jpki_replication_behind", "tier" => tier, "source" => source.clone()).set(lag.behind as f64);
    metrics::counter!("jpki_replication_applied_total", "tier" => tier, "source" => source.clone())
        .increment(rep.applied);
    metrics::gauge!("jpki_replication_halted", "tier" => tier, "source" => source.clone())
        .set(f64::from(u8::from(lag.halted)));
    metrics::gauge!("jpki_replication_last_pull_timestamp_seconds", "tier" => tier, "source" => source).set(now as f64);
    LAG.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert((lag.tier.clone(), lag.peer.clone(), lag.source.clone()), lag);
}

/// Pulls from all `peers` repeatedly until a round applies nothing (parked move-ins get
/// their predecessor in a later round), at most `max_rounds` rounds.
pub async fn pull_until_quiet(
    db: &Db,
    tier: Tier,
    verifier: &dyn NoticeVerifier,
    peers: &[Upstream],
    max_rounds: usize,
) -> Result<Vec<SourceReport>> {
    pull_until_quiet_with(db, tier, verifier, peers, max_rounds, &|_| {}).await
}

/// [`pull_until_quiet`], calling `applied` with the notices applied so far after each pull.
pub async fn pull_until_quiet_with(
    db: &Db,
    tier: Tier,
    verifier: &dyn NoticeVerifier,
    peers: &[Upstream],
    max_rounds: usize,
    applied: &(dyn Fn(u64) + Sync),
) -> Result<Vec<SourceReport>> {
    let mut all = Vec::new();
    let mut total = 0;
    for _ in 0..max_rounds {
        let mut progress = 0;
        for (peer, prefix) in peers {
            for r in pull(db, tier, verifier, peer, prefix.as_deref()).await? {
                progress += r.applied;
                all.push(r);
            }
            applied(total + progress);
        }
        total += progress;
        if progress == 0 {
            break;
        }
    }
    Ok(all)
}

/// Pulls from `peers` forever (the replica's background loop): a peer at once when its heads
/// change — one long poll per peer (`GET /v1/heads?since=&wait_ms=`) tells
/// this loop — and every peer every `interval` anyway (a peer that predates long polls, a lost
/// wake-up). Pulls run one at a time, as before: only the waiting is concurrent. A peer whose
/// source is parked (a move-in waiting for its move-out from another peer) is pulled again
/// after every round that applied something. Each peer is paced ([`crate::client::Pace`]): a
/// slow pull holds that peer's next pull back as long, so batches grow under load.
pub async fn run_puller(
    db: Db,
    tier: Tier,
    verifier: Arc<dyn NoticeVerifier>,
    peers: Vec<Upstream>,
    interval: std::time::Duration,
) {
    run_puller_with(db, tier, verifier, peers, interval, true).await;
}

/// [`run_puller`], or with `long_poll` false the loop on its timer alone (every peer every
/// `interval`): what `jpki bench peak` measures as its reference.
pub async fn run_puller_with(
    db: Db,
    tier: Tier,
    verifier: Arc<dyn NoticeVerifier>,
    peers: Vec<Upstream>,
    interval: std::time::Duration,
    long_poll: bool,
) {
    let (wake, mut woken) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let watchers: Vec<_> = if long_poll {
        peers
            .iter()
            .enumerate()
            .map(|(i, (peer, _))| tokio::spawn(watch_peer(i, peer.clone(), wake.clone(), interval)))
            .collect()
    } else {
        Vec::new()
    };
    drop(wake);
    let _stop = AbortOnDrop(watchers);
    let mut due: BTreeSet<usize> = (0..peers.len()).collect();
    let mut parked: BTreeSet<usize> = BTreeSet::new();
    let mut paces = vec![crate::client::Pace::default(); peers.len()];
    let mut next_round = tokio::time::Instant::now() + interval;
    loop {
        let now = tokio::time::Instant::now();
        let ready: Vec<usize> = due.iter().copied().filter(|&i| paces[i].is_ready(now)).collect();
        let mut applied = 0;
        for &i in &ready {
            due.remove(&i);
            let (peer, prefix) = &peers[i];
            let started = tokio::time::Instant::now();
            let pulled = pull(&db, tier, verifier.as_ref(), peer, prefix.as_deref()).await;
            paces[i].ran(started);
            match pulled {
                Ok(reports) => {
                    parked.remove(&i);
                    for r in reports.iter().filter(|r| r.applied > 0 || r.error.is_some() || r.stop.is_some()) {
                        tracing::info!(peer = peer.base(), source = %r.source, applied = r.applied, cursor = r.cursor_seq, stop = ?r.stop, error = ?r.error, "pulled");
                    }
                    applied += reports.iter().map(|r| r.applied).sum::<u64>();
                    if reports.iter().any(|r| matches!(r.stop, Some(Stop::Parked { .. }))) {
                        parked.insert(i);
                    }
                }
                Err(e) => tracing::warn!(peer = peer.base(), error = %e, "pull failed; will retry"),
            }
        }
        if applied > 0 {
            due.extend(parked.iter().copied());
        }
        if ready.is_empty() || due.is_empty() {
            // Nothing more to pull now: wait for news, the timer, or the soonest paced peer.
            let soonest = due.iter().filter_map(|&i| paces[i].ready_at()).min();
            tokio::select! {
                Some(i) = woken.recv(), if long_poll => {
                    due.insert(i);
                    while let Ok(i) = woken.try_recv() {
                        due.insert(i);
                    }
                }
                () = tokio::time::sleep_until(next_round) => {
                    due = (0..peers.len()).collect();
                    next_round = tokio::time::Instant::now() + interval;
                }
                () = tokio::time::sleep_until(soonest.unwrap_or(next_round)), if soonest.is_some() => {}
            }
        }
    }
}

/// Aborts the tasks when dropped (the puller's watchers end with it).
struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// The least time between two long polls of one peer that reported a change.
const MIN_POLL_GAP: std::time::Duration = std::time::Duration::from_millis(10);

/// Long-polls one peer's heads and sends `i` on `wake` each time they change. A failed poll,
/// or one answered at once with nothing new (a peer without long polls, or out of slots), is
/// retried after `interval`, so a peer is never polled faster than that without news.
async fn watch_peer(
    i: usize,
    peer: crate::client::Peer,
    wake: tokio::sync::mpsc::UnboundedSender<usize>,
    interval: std::time::Duration,
) {
    let mut since = String::new();
    loop {
        let started = tokio::time::Instant::now();
        match peer.heads_wait(&since, crate::client::MAX_WAIT_MS).await {
            Ok(h) if !h.version.is_empty() && h.version != since => {
                since = h.version;
                if wake.send(i).is_err() {
                    return;
                }
                // At most one poll per MIN_POLL_GAP: a peer whose heads change on every
                // answer (busy, or hostile) cannot make this loop spin.
                tokio::time::sleep_until(started + MIN_POLL_GAP).await;
                continue;
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(peer = peer.base(), error = %e, "long poll of the heads failed; will retry"),
        }
        if started.elapsed() < interval {
            tokio::time::sleep_until(started + interval).await;
        }
    }
}
