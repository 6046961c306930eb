//! The CA's subscription to the national change feed: each page of changes is decided by the
//! rule table ([`crate::revocation::decide`]) and applied in one transaction together with the
//! cursor advance, so a crash replays the page and a replay revokes nothing twice. A notice
//! revokes only certificates issued from an older record: each certificate keeps the feed
//! head read before its identity lookup, and only later entries can make it stale.
//!
//! The feed is not trusted as such: every entry is checked against the signed change notice
//! behind it ([`verify_page`]) — per source, the notices from the page's first to its last
//! entry, complete and hash-chained, the newest signed by the municipality's notice key
//! (admitted through the network CA; through the chain that one signature vouches for every
//! notice of the range), each entry's source, seq, kind and codes equal to its notice's, and
//! strictly increasing seqs (no replay of an old notice). One entry that fails makes the whole page apply nothing: the cursor stays and the
//! error names the entry and the reason.

use sqlx::Row;

use crate::authority::{Authority, insert_revocation, state};
use crate::crl::Reason;
use crate::error::{Error, Result};
use crate::identity_source::IdentitySource;
use crate::revocation::{CertKind, decide};
use identity::national::FeedEntry;
use identity::notice::ChangeNotice;
use identity::notice_sig::{NoticeVerifier, verify_notice};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The cursor's name in `ca_setting`.
pub const CURSOR: &str = "feed_cursor";
/// Feed entries per page.
pub const PAGE: u32 = 500;
/// Prefix of the `ca_setting` rows keeping, per source, the last notice seq the CA applied.
pub const SOURCE_SEQ: &str = "feed_source_seq:";

/// Checks every entry of a feed page against the signed notice behind it; returns the new
/// last seq per source. `last` holds the last seq applied per source before this page.
pub async fn verify_page(
    source: &IdentitySource,
    verifier: &dyn NoticeVerifier,
    page: &[&FeedEntry],
    last: &HashMap<String, u64>,
) -> Result<BTreeMap<String, u64>> {
    let forged = |e: &FeedEntry, why: String| {
        tracing::error!(feed_seq = e.feed_seq, source = %e.source, seq = e.seq, %why, "feed entry refused");
        Error::Feed(format!("feed entry {} ({}:{} {:?}): {why}", e.feed_seq, e.source, e.seq, e.kind))
    };
    let mut by_source: BTreeMap<&str, Vec<&FeedEntry>> = BTreeMap::new();
    for e in page {
        by_source.entry(e.source.as_str()).or_default().push(e);
    }
    let mut out = BTreeMap::new();
    for (src, entries) in by_source {
        let code: identity::ids::LgCode = src.parse().map_err(|_| forged(entries[0], "not a municipality".into()))?;
        let mut prev = last.get(src).copied().unwrap_or(0);
        for e in &entries {
            if e.seq <= prev {
                return Err(forged(e, format!("seq {} does not follow {prev}: a replayed or reordered notice", e.seq)));
            }
            prev = e.seq;
        }
        // The notices behind the entries, in ranges of at most one replication page.
        let (lo, hi) = (entries[0].seq, prev);
        let mut notices: HashMap<u64, ChangeNotice> = HashMap::new();
        let mut after = lo - 1;
        while after < hi {
            let limit = u32::try_from((hi - after).min(1000)).unwrap_or(1000);
            let got = source.notices(src, after, limit).await?;
            let Some(end) = got.last().map(|n| n.key.seq) else { break };
            if end <= after {
                break;
            }
            after = end;
            notices.extend(got.into_iter().filter(|n| n.key.source == code).map(|n| (n.key.seq, n)));
        }
        // The range lo..=hi must be there in full and chain: each notice's hash over its
        // content, each prev_hash the hash before it. Then the newest notice's signature
        // vouches for every notice of the range (one verification per source and page).
        let mut expect_prev: Option<identity::notice::Hash> = None;
        for seq in lo..=hi {
            let Some(n) = notices.get(&seq) else {
                let e = entries.iter().find(|e| e.seq >= seq).unwrap_or(&entries[0]);
                return Err(forged(e, format!("no such notice at the national node (seq {seq})")));
            };
            let e = entries.iter().find(|e| e.seq >= seq).unwrap_or(&entries[0]);
            n.verify_hash().map_err(|x| forged(e, x.to_string()))?;
            if expect_prev.is_some_and(|h| h != n.prev_hash) {
                return Err(forged(e, format!("seq {seq} does not chain to seq {}", seq - 1)));
            }
            expect_prev = Some(n.hash);
        }
        let newest = &notices[&hi];
        let last_entry = entries[entries.len() - 1];
        let key_id = identity::notice_sig::envelope(newest).map_err(|x| forged(last_entry, x))?.key_id.clone();
        let cert = source
            .notice_keys(src)
            .await?
            .into_iter()
            .find(|k| k.key_id == key_id)
            .ok_or_else(|| forged(last_entry, format!("notice key {key_id} is unknown")))?;
        let got = verifier.admit_key(&code, &cert.cert).map_err(|x| forged(last_entry, format!("notice key: {x}")))?;
        if got != key_id {
            return Err(forged(last_entry, format!("notice key certificate is {got}, not {key_id}")));
        }
        verify_notice(verifier, newest).map_err(|x| forged(last_entry, format!("signature: {x}")))?;
        for e in &entries {
            let n = &notices[&e.seq];
            let b = &n.body;
            let same = b.kind == e.kind
                && b.record.resident_code.as_str() == e.resident_code
                && b.previous_code.as_ref().map(|c| c.as_str()) == e.previous_code.as_deref();
            if !same {
                return Err(forged(e, "the entry does not match its signed notice (kind or codes differ)".into()));
            }
        }
        out.insert(src.to_owned(), prev);
    }
    Ok(out)
}

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
    /// The last notice seq applied per source, for `sources`.
    async fn source_seqs<'a>(&self, sources: impl Iterator<Item = &'a str>) -> Result<HashMap<String, u64>> {
        let mut out = HashMap::new();
        for s in sources.collect::<HashSet<_>>() {
            let r = sqlx::query("SELECT value FROM ca_setting WHERE name = $1")
                .bind(format!("{SOURCE_SEQ}{s}"))
                .fetch_optional(self.db().pool())
                .await?;
            if let Some(r) = r {
                let v: String = r.try_get(0)?;
                out.insert(s.to_owned(), v.parse().map_err(|e| Error::corrupt("feed source seq", e))?);
            }
        }
        Ok(out)
    }

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

    /// Reads the feed until it is drained, revoking what the rules say; every entry is first
    /// verified against its signed notice ([`verify_page`]).
    pub async fn follow(
        &self,
        actor: &str,
        source: &IdentitySource,
        verifier: &dyn NoticeVerifier,
        now: i64,
    ) -> Result<FollowReport> {
        self.follow_with(actor, source, verifier, now, identity::progress::SILENT).await
    }

    /// [`Authority::follow`], reporting (entries applied, entries to apply) after each page:
    /// the total is the distance from the cursor to the head read at the start, grown if the
    /// feed moves on meanwhile.
    pub async fn follow_with(
        &self,
        actor: &str,
        source: &IdentitySource,
        verifier: &dyn NoticeVerifier,
        now: i64,
        progress: identity::progress::Progress<'_>,
    ) -> Result<FollowReport> {
        let mut report = FollowReport { cursor: self.feed_cursor().await?, ..Default::default() };
        // The head before the run: what the run should reach (metrics and progress only; a
        // failure to read it does not stop the follower).
        let head = source.feed_head().await.ok();
        let start = report.cursor;
        let total = |r: &FollowReport| head.unwrap_or(0).saturating_sub(start).max(r.entries);
        progress(0, total(&report));
        let done = |r: &FollowReport| {
            metrics::gauge!("jpki_ca_feed_cursor").set(r.cursor as f64);
            if let Some(h) = head {
                metrics::gauge!("jpki_ca_feed_behind").set(h.saturating_sub(r.cursor) as f64);
            }
            metrics::gauge!("jpki_ca_feed_last_follow_timestamp_seconds").set(now as f64);
        };
        loop {
            let page = source.feed(report.cursor, PAGE).await?;
            if page.is_empty() {
                done(&report);
                return Ok(report);
            }
            let from = report.cursor;
            let fresh: Vec<&FeedEntry> = page.iter().filter(|e| e.feed_seq > from).collect();
            let last_seqs = self.source_seqs(fresh.iter().map(|e| e.source.as_str())).await?;
            let new_last = verify_page(source, verifier, &fresh, &last_seqs).await?;
            let mut tx = self.db().write().await?;
            for (src, seq) in &new_last {
                let name = format!("{SOURCE_SEQ}{src}");
                sqlx::query(
                    "INSERT INTO ca_setting (name, value) VALUES ($1, $2)
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                )
                .bind(name)
                .bind(seq.to_string())
                .execute(&mut *tx)
                .await?;
            }
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
            self.db().changed(); // wakes the status stream's long polls
            report.entries += last - from;
            report.cursor = last;
            progress(report.entries, total(&report));
            if (page.len() as u32) < PAGE {
                done(&report);
                return Ok(report);
            }
        }
    }
}
