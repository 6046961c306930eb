//! The CA's subscription to the national change feed: each page of changes is decided by the
//! rule table ([`crate::revocation::decide`]) and applied in one transaction together with the
//! cursor advance, so a crash replays the page and a replay revokes nothing twice. A notice
//! revokes only certificates issued from an older record: each certificate keeps the feed
//! head read before its identity lookup, and only later entries can make it stale.

use sqlx::Row;

use crate::authority::{Authority, insert_revocation, state};
use crate::crl::Reason;
use crate::error::{Error, Result};
use crate::identity_source::IdentitySource;
use crate::revocation::{CertKind, decide};

/// The cursor's name in `ca_setting`.
pub const CURSOR: &str = "feed_cursor";
/// Feed entries per page.
pub const PAGE: u32 = 500;

/// One revocation a notice caused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedRevocation {
    /// Serial.
    pub serial: String,
    /// Which certificate.
    pub kind: CertKind,
    /// Why.
    pub reason: Reason,
    /// The notice (`source:seq kind`).
    pub cause: String,
}

/// What one follow run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowReport {
    /// Feed entries read.
    pub entries: u64,
    /// Revocations made.
    pub revoked: Vec<FeedRevocation>,
    /// Resident-code changes carried over.
    pub rekeyed: u64,
    /// The cursor after the run.
    pub cursor: u64,
}

impl Authority {
    /// The feed position processed so far.
    pub async fn feed_cursor(&self) -> Result<u64> {
        let r = sqlx::query("SELECT value FROM ca_setting WHERE name = $1")
            .bind(CURSOR)
            .fetch_optional(self.db().pool())
            .await?;
        match r {
            Some(r) => r.try_get::<String, _>(0)?.parse().map_err(|e| Error::corrupt("feed cursor", e)),
            None => Ok(0),
        }
    }

    /// Reads the feed until it is drained, revoking what the rules say.
    pub async fn follow(&self, actor: &str, source: &IdentitySource, now: i64) -> Result<FollowReport> {
        let mut report = FollowReport { cursor: self.feed_cursor().await?, ..Default::default() };
        loop {
            let page = source.feed(report.cursor, PAGE).await?;
            if page.is_empty() {
                return Ok(report);
            }
            let from = report.cursor;
            let mut tx = self.db().write().await?;
            let mut last = from;
            for e in &page {
                if e.feed_seq <= last {
                    continue; // a replayed entry: already applied
                }
                if e.feed_seq != last + 1 {
                    return Err(Error::corrupt("change feed", format!("gap: after {last} came {}", e.feed_seq)));
                }
                last = e.feed_seq;
                let d = decide(e.kind, &e.changed);
                let cause = format!("notice {}:{} {:?}", e.source, e.seq, e.kind);
                if d.rekey
                    && let Some(prev) = &e.previous_code
                {
                    let n = sqlx::query("UPDATE ca_certificate SET resident_code = $1 WHERE resident_code = $2")
                        .bind(e.resident_code.clone())
                        .bind(prev.clone())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if n > 0 {
                        crate::audit::append(
                            &mut tx,
                            now,
                            actor,
                            "rekey",
                            &format!("{prev} -> {} ({cause}): {n} certificates", e.resident_code),
                        )
                        .await?;
                        report.rekeyed += 1;
                    }
                }
                for (kind, reason) in [(CertKind::Signature, d.signature), (CertKind::Authentication, d.authentication)]
                {
                    let Some(reason) = reason else { continue };
                    let rows = sqlx::query("SELECT c.serial, c.issuer_slug, c.issuer_generation, c.shard FROM ca_certificate c WHERE c.resident_code = $1 AND c.kind = $2 AND c.state = $3 AND c.not_after > $4 AND c.feed_position < $5 AND NOT EXISTS (SELECT 1 FROM ca_revocation r WHERE r.serial = c.serial)")
                        .bind(e.resident_code.clone())
                        .bind(kind as i64)
                        .bind(state::ISSUED)
                        .bind(now)
                        .bind(i64::try_from(e.feed_seq).map_err(|x| Error::corrupt("feed position", x))?)
                        .fetch_all(&mut *tx)
                        .await?;
                    for r in rows {
                        let serial: String = r.try_get(0)?;
                        if insert_revocation(
                            &mut tx,
                            &serial,
                            r.try_get(1)?,
                            r.try_get(2)?,
                            r.try_get(3)?,
                            now,
                            reason,
                            &cause,
                        )
                        .await?
                        {
                            crate::audit::append(
                                &mut tx,
                                now,
                                actor,
                                "revoke",
                                &format!("{serial} {} ({cause})", reason.name()),
                            )
                            .await?;
                            report.revoked.push(FeedRevocation { serial, kind, reason, cause: cause.clone() });
                        }
                    }
                }
            }
            // Advance the cursor only from where this page started (one follower at a time).
            let moved = if from == 0 {
                sqlx::query("INSERT INTO ca_setting (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                    .bind(CURSOR)
                    .bind(last.to_string())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
            } else {
                sqlx::query("UPDATE ca_setting SET value = $1 WHERE name = $2 AND value = $3")
                    .bind(last.to_string())
                    .bind(CURSOR)
                    .bind(from.to_string())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
            };
            if moved != 1 {
                return Err(Error::Conflict("another follower moved the feed cursor; nothing applied".into()));
            }
            tx.commit().await?;
            report.entries += last - from;
            report.cursor = last;
            if (page.len() as u32) < PAGE {
                return Ok(report);
            }
        }
    }
}
