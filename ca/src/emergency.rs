//! Emergency migration (issue 11, seed 004: an algorithm or a key is compromised).
//!
//! 1. The operator runs a ceremony for the successor with its activation now (issuance moves
//!    to it at once).
//! 2. [`Authority::compromise`] revokes the old generation at once, in one transaction: first its
//!    own CA certificate (cACompromise, on its root's ARL), then every certificate it issued
//!    (cACompromise), numbered in the revocation sequence after the CA certificate, so that a
//!    validator reading the sequence learns that the issuer is compromised before it meets the
//!    million entries behind it (and answers them all revoked without signing each in advance;
//!    RFC 6960 §2.7).
//! 3. [`Authority::reissue_plan`] queues every resident holding a certificate of that generation
//!    at the municipality where the national node says the resident lives now, a batch at a
//!    time, resumable at any point; each window reads its queue
//!    ([`Authority::reissue_queue`]); an issuance for a queued resident marks the entry done.

use sqlx::Row;

use crate::audit;
use crate::authority::{Authority, insert_revocation, state};
use crate::crl::Reason;
use crate::error::{Error, Result};
use crate::hierarchy::CaId;
use crate::identity_source::IdentitySource;
use crate::revocation::CertKind;
use identity::person::ResidentStatus;
use identity::store::Backend;

/// What [`Authority::compromise`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compromised {
    /// The generation's own CA certificate, if it was revoked now (roots have none).
    pub ca_certificate: Option<String>,
    /// Certificates it issued, revoked now.
    pub revoked: u64,
    /// The revocation sequence after the last of them.
    pub head: i64,
}

/// Progress of a re-issuance plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanProgress {
    /// Residents holding a certificate of the generation.
    pub total: i64,
    /// Residents planned so far.
    pub planned: i64,
    /// Queue entries per municipality: (code, queued, done).
    pub by_municipality: Vec<(String, i64, i64)>,
}

/// One resident in a window's re-issuance queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// 住民票コード.
    pub resident_code: String,
    /// The compromised CA and generation.
    pub ca: String,
    /// Generation.
    pub generation: i64,
    /// When queued.
    pub queued_at: i64,
}

fn cursor_name(ca: &CaId, generation: i64) -> String {
    format!("reissue:{}:g{generation}", ca.slug())
}

impl Authority {
    /// Declares generation `generation` of `ca` compromised: its CA certificate and every
    /// certificate it issued are revoked (cACompromise) in one transaction, the CA certificate
    /// first. Refused while it is the issuing generation (run the successor's ceremony with
    /// its activation now first) and for an unknown generation.
    pub async fn compromise(&self, actor: &str, ca: &CaId, generation: i64, now: i64) -> Result<Compromised> {
        let g = self.generation_of(&ca.slug(), generation).await?;
        if self.current(ca, now).await.is_ok_and(|c| c.generation == generation) {
            return Err(Error::refused(
                "generation_issuing",
                format!(
                    "{ca} g{generation} is the issuing generation: activate its successor first (a ceremony with its activation now)"
                ),
            ));
        }
        let cert = g.cert()?;
        let own = hex::encode(cert.tbs_certificate().serial_number().as_bytes());
        let cause = format!("{ca} g{generation} compromised");
        let mut tx = self.db().write().await?;
        let mut ca_certificate = None;
        if let Some(r) = sqlx::query(
            "SELECT issuer_slug, issuer_generation, shard FROM ca_certificate WHERE serial = $1 AND state = $2",
        )
        .bind(own.clone())
        .bind(state::ISSUED)
        .fetch_optional(&mut *tx)
        .await?
            && insert_revocation(
                &mut tx,
                &own,
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                now,
                Reason::CaCompromise,
                &cause,
            )
            .await?
        {
            ca_certificate = Some(own);
        }
        // Lock the counter (a no-op update), then number the whole set after it in one
        // statement: the numbering stays gapless and in commit order.
        let last: i64 =
            sqlx::query("UPDATE ca_revocation_counter SET last_seq = last_seq WHERE id = 1 RETURNING last_seq")
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
        let sql = match self.db().backend() {
            Backend::Sqlite => {
                "INSERT INTO ca_revocation (serial, serial_bytes, issuer_slug, issuer_generation, shard, revoked_at, reason, cause, seq) \
                 SELECT c.serial, unhex(c.serial), c.issuer_slug, c.issuer_generation, c.shard, $1, $2, $3, $4 + ROW_NUMBER() OVER (ORDER BY c.serial) \
                 FROM ca_certificate c WHERE c.issuer_slug = $5 AND c.issuer_generation = $6 AND c.state = $7 \
                 AND NOT EXISTS (SELECT 1 FROM ca_revocation r WHERE r.serial = c.serial)"
            }
            Backend::Postgres => {
                "INSERT INTO ca_revocation (serial, serial_bytes, issuer_slug, issuer_generation, shard, revoked_at, reason, cause, seq) \
                 SELECT c.serial, decode(c.serial, 'hex'), c.issuer_slug, c.issuer_generation, c.shard, $1, $2, $3, $4 + ROW_NUMBER() OVER (ORDER BY c.serial) \
                 FROM ca_certificate c WHERE c.issuer_slug = $5 AND c.issuer_generation = $6 AND c.state = $7 \
                 AND NOT EXISTS (SELECT 1 FROM ca_revocation r WHERE r.serial = c.serial)"
            }
        };
        let revoked = sqlx::query(sql)
            .bind(now)
            .bind(Reason::CaCompromise as i64)
            .bind(cause.clone())
            .bind(last)
            .bind(ca.slug())
            .bind(generation)
            .bind(state::ISSUED)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let head = last + revoked as i64;
        sqlx::query("UPDATE ca_revocation_counter SET last_seq = $1 WHERE id = 1").bind(head).execute(&mut *tx).await?;
        audit::append(
            &mut tx,
            now,
            actor,
            "compromise",
            &format!("{cause}: {revoked} certificates revoked (cACompromise)"),
        )
        .await?;
        tx.commit().await?;
        metrics::counter!("jpki_ca_revocations_total", "ca" => ca.slug(), "reason" => Reason::CaCompromise.name())
            .increment(revoked);
        tracing::warn!(ca = %ca, generation, revoked, "generation declared compromised");
        Ok(Compromised { ca_certificate, revoked, head })
    }

    /// Plans the re-issuance after [`Self::compromise`]: up to `limit` more residents holding a
    /// certificate of the generation are looked up at the national node and queued at their
    /// municipality (deceased and removed residents are not). One commit per call, with the
    /// cursor: call again until `planned == total`; an interrupted plan resumes.
    pub async fn reissue_plan(
        &self,
        actor: &str,
        ca: &CaId,
        generation: i64,
        id: &IdentitySource,
        limit: i64,
        now: i64,
    ) -> Result<PlanProgress> {
        self.generation_of(&ca.slug(), generation).await?;
        let cursor_key = cursor_name(ca, generation);
        let cursor: String = sqlx::query("SELECT value FROM ca_setting WHERE name = $1")
            .bind(cursor_key.clone())
            .fetch_optional(self.db().pool())
            .await?
            .map(|r| r.try_get(0))
            .transpose()?
            .unwrap_or_default();
        let rows = sqlx::query("SELECT DISTINCT resident_code FROM ca_certificate WHERE issuer_slug = $1 AND issuer_generation = $2 AND kind IN ($3, $4) AND state = $5 AND resident_code > $6 ORDER BY resident_code LIMIT $7")
            .bind(ca.slug())
            .bind(generation)
            .bind(CertKind::Signature as i64)
            .bind(CertKind::Authentication as i64)
            .bind(state::ISSUED)
            .bind(cursor)
            .bind(limit.clamp(1, 10_000))
            .fetch_all(self.db().pool())
            .await?;
        let mut found = Vec::new();
        for r in &rows {
            let code: String = r.try_get(0)?;
            let m = match id.resident(&code, now).await? {
                Some(res) if res.status == ResidentStatus::Active => Some(res.municipality),
                _ => None,
            };
            found.push((code, m));
        }
        if let Some((last, _)) = found.last() {
            let mut tx = self.db().write().await?;
            for (code, m) in &found {
                if let Some(m) = m {
                    sqlx::query("INSERT INTO ca_reissue (slug, generation, resident_code, municipality, queued_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (slug, generation, resident_code) DO NOTHING")
                        .bind(ca.slug())
                        .bind(generation)
                        .bind(code.clone())
                        .bind(m.clone())
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            sqlx::query(
                "INSERT INTO ca_setting (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = $2",
            )
            .bind(cursor_key.clone())
            .bind(last.clone())
            .execute(&mut *tx)
            .await?;
            let queued = found.iter().filter(|(_, m)| m.is_some()).count();
            let detail = format!("{ca} g{generation}: {} residents looked up, {queued} queued", found.len());
            audit::append(&mut tx, now, actor, "reissue_plan", &detail).await?;
            tx.commit().await?;
        }
        self.reissue_progress(ca, generation).await
    }

    /// Where the re-issuance plan of a generation stands.
    pub async fn reissue_progress(&self, ca: &CaId, generation: i64) -> Result<PlanProgress> {
        let total: i64 = sqlx::query("SELECT COUNT(DISTINCT resident_code) FROM ca_certificate WHERE issuer_slug = $1 AND issuer_generation = $2 AND kind IN ($3, $4) AND state = $5")
            .bind(ca.slug())
            .bind(generation)
            .bind(CertKind::Signature as i64)
            .bind(CertKind::Authentication as i64)
            .bind(state::ISSUED)
            .fetch_one(self.db().pool())
            .await?
            .try_get(0)?;
        let cursor: Option<String> = sqlx::query("SELECT value FROM ca_setting WHERE name = $1")
            .bind(cursor_name(ca, generation))
            .fetch_optional(self.db().pool())
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        let planned: i64 = match cursor {
            None => 0,
            Some(c) => sqlx::query("SELECT COUNT(DISTINCT resident_code) FROM ca_certificate WHERE issuer_slug = $1 AND issuer_generation = $2 AND kind IN ($3, $4) AND state = $5 AND resident_code <= $6")
                .bind(ca.slug())
                .bind(generation)
                .bind(CertKind::Signature as i64)
                .bind(CertKind::Authentication as i64)
                .bind(state::ISSUED)
                .bind(c)
                .fetch_one(self.db().pool())
                .await?
                .try_get(0)?,
        };
        let by_municipality = sqlx::query("SELECT municipality, COUNT(*), COUNT(done_at) FROM ca_reissue WHERE slug = $1 AND generation = $2 GROUP BY municipality ORDER BY municipality")
            .bind(ca.slug())
            .bind(generation)
            .fetch_all(self.db().pool())
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(PlanProgress { total, planned, by_municipality })
    }

    /// The generations whose re-issuance plan has started (a cursor exists), by CA slug and
    /// generation.
    pub async fn reissue_plans(&self) -> Result<Vec<(CaId, i64)>> {
        let rows = sqlx::query("SELECT name FROM ca_setting WHERE name LIKE 'reissue:%' ORDER BY name")
            .fetch_all(self.db().pool())
            .await?;
        let mut out = Vec::new();
        for r in rows {
            let name: String = r.try_get(0)?;
            let parsed = name
                .strip_prefix("reissue:")
                .and_then(|rest| rest.rsplit_once(":g"))
                .and_then(|(slug, n)| Some((CaId::parse(slug).ok()?, n.parse::<i64>().ok()?)));
            out.push(parsed.ok_or_else(|| Error::corrupt("re-issuance cursor", name))?);
        }
        Ok(out)
    }

    /// The residents a window of `municipality` is to call in, oldest first (at most `limit`).
    pub async fn reissue_queue(&self, municipality: &str, limit: i64) -> Result<Vec<Queued>> {
        sqlx::query("SELECT resident_code, slug, generation, queued_at FROM ca_reissue WHERE municipality = $1 AND done_at IS NULL ORDER BY queued_at, resident_code LIMIT $2")
            .bind(municipality)
            .bind(limit.clamp(1, 10_000))
            .fetch_all(self.db().pool())
            .await?
            .iter()
            .map(|r| {
                Ok(Queued {
                    resident_code: r.try_get(0)?,
                    ca: r.try_get(1)?,
                    generation: r.try_get(2)?,
                    queued_at: r.try_get(3)?,
                })
            })
            .collect()
    }
}
