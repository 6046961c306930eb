//! Certificate and revocation rows: the stored states of a certificate, a certificate's
//! record, listing, the idempotency lookup by request id, a resident's valid certificates, and
//! the numbered revocation insert every revoking path shares.

use sqlx::Row;
use time::OffsetDateTime;

use super::{Authority, Issued, IssuedCert};
use crate::crl::Reason;
use crate::error::{Error, Result};
use crate::revocation::CertKind;

/// A certificate as recorded.
#[derive(Debug, Clone)]
pub struct CertRecord {
    /// Serial (hex).
    pub serial: String,
    /// Issuing CA.
    pub ca: String,
    /// Its generation.
    pub generation: i64,
    /// Kind.
    pub kind: CertKind,
    /// State (see [`state`]).
    pub state: i64,
    /// Resident.
    pub resident_code: Option<String>,
    /// CRL shard.
    pub shard: i64,
    /// notBefore.
    pub not_before: Option<i64>,
    /// notAfter.
    pub not_after: Option<i64>,
    /// DER, once issued.
    pub der: Option<Vec<u8>>,
    /// Revocation (time, reason, cause).
    pub revoked: Option<(i64, Reason, String)>,
}

pub(super) fn record(r: &sqlx::any::AnyRow) -> Result<CertRecord> {
    let revoked = match r.try_get::<Option<i64>, _>(10)? {
        Some(at) => Some((at, Reason::from_code(r.try_get(11)?)?, r.try_get(12)?)),
        None => None,
    };
    Ok(CertRecord {
        serial: r.try_get(0)?,
        ca: r.try_get(1)?,
        generation: r.try_get(2)?,
        kind: CertKind::from_code(r.try_get(3)?)?,
        state: r.try_get(4)?,
        resident_code: r.try_get(5)?,
        shard: r.try_get(6)?,
        not_before: r.try_get(7)?,
        not_after: r.try_get(8)?,
        der: r.try_get(9)?,
        revoked,
    })
}

/// Inserts a revocation row (idempotent on the serial: a replay changes nothing and takes no
/// sequence number). The row gets the next revocation sequence number from the counter row,
/// taken and advanced in this transaction: the counter row's lock orders concurrent
/// revocations, so sequence order is commit order and there are no gaps (what
/// [`crate::status`] readers poll by).
#[allow(clippy::too_many_arguments)]
pub async fn insert_revocation(
    tx: &mut identity::store::Tx,
    serial: &str,
    issuer: String,
    generation: i64,
    shard: i64,
    now: i64,
    reason: Reason,
    cause: &str,
) -> Result<bool> {
    crate::restore::check_reconciled(tx).await?;
    let bytes = hex::decode(serial).map_err(|e| Error::corrupt("serial", e))?;
    let ca_label = issuer.clone();
    // Lock the counter row first (a no-op update), so the existence check below and the
    // numbering see every revocation committed before ours.
    let last: i64 = sqlx::query("UPDATE ca_revocation_counter SET last_seq = last_seq WHERE id = 1 RETURNING last_seq")
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
    let r = sqlx::query("INSERT INTO ca_revocation (serial, serial_bytes, issuer_slug, issuer_generation, shard, revoked_at, reason, cause, seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (serial) DO NOTHING")
        .bind(serial.to_owned())
        .bind(bytes)
        .bind(issuer)
        .bind(generation)
        .bind(shard)
        .bind(now)
        .bind(reason as i64)
        .bind(cause.to_owned())
        .bind(last + 1)
        .execute(&mut **tx)
        .await?;
    if r.rows_affected() != 1 {
        return Ok(false);
    }
    metrics::counter!("jpki_ca_revocations_total", "ca" => ca_label, "reason" => reason.name()).increment(1);
    sqlx::query("UPDATE ca_revocation_counter SET last_seq = $1 WHERE id = 1")
        .bind(last + 1)
        .execute(&mut **tx)
        .await?;
    Ok(true)
}

/// Certificate states (stored numbers, forever).
pub mod state {
    /// Serial reserved; nothing else stored.
    pub const RESERVED: i64 = 1;
    /// Exact TBS stored; not yet signed (or signed but not stored).
    pub const TBS_STORED: i64 = 2;
    /// Signed and stored.
    pub const ISSUED: i64 = 3;
    /// Reserved but never stored: abandoned by recovery, nothing to revoke.
    pub const ABANDONED: i64 = 4;
    /// TBS stored but never delivered: revoked by recovery (reason unspecified).
    pub const VOID: i64 = 5;
}

impl Authority {
    /// One certificate's record.
    pub async fn show(&self, serial: &str) -> Result<CertRecord> {
        let serial = serial.to_ascii_lowercase();
        let r = sqlx::query(concat!(cert_select!(), " WHERE c.serial = $1"))
            .bind(serial.clone())
            .fetch_optional(self.db.pool())
            .await?
            .ok_or_else(|| Error::NotFound(format!("certificate {serial}")))?;
        record(&r)
    }

    /// Certificates, newest first, optionally of one resident or one CA.
    pub async fn list(&self, resident: Option<&str>, ca: Option<&str>, limit: i64) -> Result<Vec<CertRecord>> {
        let rows = sqlx::query(concat!(
            cert_select!(),
            " WHERE ($1 IS NULL OR c.resident_code = $1) AND ($2 IS NULL OR c.issuer_slug = $2) ORDER BY c.created_at DESC, c.serial LIMIT $3"
        ))
        .bind(resident.map(str::to_owned))
        .bind(ca.map(str::to_owned))
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(record).collect()
    }

    pub(super) async fn by_request(&self, rid: &str) -> Result<Option<Issued>> {
        let rows =
            sqlx::query("SELECT serial FROM ca_certificate WHERE request_id = $1 AND state = $2 ORDER BY kind DESC")
                .bind(rid)
                .bind(state::ISSUED)
                .fetch_all(self.db.pool())
                .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut certificates = Vec::new();
        let mut chain: Vec<Vec<u8>> = Vec::new();
        for r in rows {
            let s: String = r.try_get(0)?;
            let rec = self.show(&s).await?;
            let g = self.generation_of(&rec.ca, rec.generation).await?;
            if !chain.contains(&g.certificate) {
                chain.push(g.certificate.clone());
            }
            certificates.push(IssuedCert {
                serial: rec.serial,
                kind: rec.kind,
                ca: rec.ca,
                generation: rec.generation,
                der: rec.der.unwrap_or_default(),
                not_after: rec.not_after.unwrap_or_default(),
                shard: rec.shard,
            });
        }
        Ok(Some(Issued { certificates, chain }))
    }

    /// Valid (issued, unrevoked, unexpired) certificates of a resident and kind.
    pub(super) async fn valid_serials(&self, resident: &str, kind: CertKind, now: i64) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT c.serial FROM ca_certificate c WHERE c.resident_code = $1 AND c.kind = $2 AND c.state = $3 AND c.not_after > $4 AND NOT EXISTS (SELECT 1 FROM ca_revocation r WHERE r.serial = c.serial)")
            .bind(resident)
            .bind(kind as i64)
            .bind(state::ISSUED)
            .bind(now)
            .fetch_all(self.db.pool())
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    pub(super) async fn valid_auth_not_after(&self, resident: &str, now: i64) -> Result<Option<OffsetDateTime>> {
        let r = sqlx::query("SELECT MAX(c.not_after) FROM ca_certificate c WHERE c.resident_code = $1 AND c.kind = $2 AND c.state = $3 AND c.not_after > $4 AND NOT EXISTS (SELECT 1 FROM ca_revocation r WHERE r.serial = c.serial)")
            .bind(resident)
            .bind(CertKind::Authentication as i64)
            .bind(state::ISSUED)
            .bind(now)
            .fetch_one(self.db.pool())
            .await?;
        let v: Option<i64> = r.try_get(0)?;
        v.map(|s| OffsetDateTime::from_unix_timestamp(s).map_err(|e| Error::invalid("time", e))).transpose()
    }
}
