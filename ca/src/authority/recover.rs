//! Operator revocation and crash recovery: what a crash left half-done is abandoned (a
//! reserved serial) or revoked and voided (a stored TBS that may have been signed).

use sqlx::Row;

use super::{Authority, insert_revocation, state};
use crate::audit;
use crate::crl::Reason;
use crate::error::{Error, Result};

impl Authority {
    /// Revokes a certificate (operator action or rule). Revocations are final: an already
    /// revoked certificate is refused with its existing reason (certificateHold is never released).
    pub async fn revoke(&self, actor: &str, serial: &str, reason: Reason, cause: &str, now: i64) -> Result<()> {
        let serial = serial.to_ascii_lowercase();
        let mut tx = self.db.write().await?;
        let r =
            sqlx::query("SELECT state, issuer_slug, issuer_generation, shard FROM ca_certificate WHERE serial = $1")
                .bind(serial.clone())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| Error::NotFound(format!("certificate {serial}")))?;
        let st: i64 = r.try_get(0)?;
        if st == state::RESERVED || st == state::ABANDONED {
            return Err(Error::Conflict(format!("certificate {serial} was never issued")));
        }
        if let Some(prev) = sqlx::query("SELECT reason, revoked_at FROM ca_revocation WHERE serial = $1")
            .bind(serial.clone())
            .fetch_optional(&mut *tx)
            .await?
        {
            let reason = Reason::from_code(prev.try_get(0)?)?;
            return Err(Error::Conflict(format!("certificate {serial} is already revoked ({})", reason.name())));
        }
        insert_revocation(&mut tx, &serial, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, now, reason, cause).await?;
        audit::append(&mut tx, now, actor, "revoke", &format!("{serial} {} ({cause})", reason.name())).await?;
        tx.commit().await?;
        self.db.changed(); // wakes the status stream's long polls
        Ok(())
    }

    /// Resolves what a crash left: reserved serials without a stored TBS are abandoned (no
    /// certificate can exist); a stored TBS without a stored certificate may have been signed,
    /// so it is revoked (reason unspecified: "destroyed before delivery") and marked void.
    /// Skipped while a restore is not reconciled ([`crate::restore`]): it runs at the next
    /// open after that.
    pub async fn recover(&self, actor: &str, now: i64) -> Result<(u64, u64)> {
        if crate::restore::unreconciled(&self.db).await? {
            tracing::warn!("crash recovery skipped: the database was restored and is not reconciled yet");
            return Ok((0, 0));
        }
        let mut tx = self.db.write().await?;
        let abandoned = sqlx::query("UPDATE ca_certificate SET state = $1 WHERE state = $2")
            .bind(state::ABANDONED)
            .bind(state::RESERVED)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let rows =
            sqlx::query("SELECT serial, issuer_slug, issuer_generation, shard FROM ca_certificate WHERE state = $1")
                .bind(state::TBS_STORED)
                .fetch_all(&mut *tx)
                .await?;
        for r in &rows {
            let serial: String = r.try_get(0)?;
            insert_revocation(
                &mut tx,
                &serial,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                now,
                Reason::Unspecified,
                "recovery: TBS stored, issuance not completed",
            )
            .await?;
            sqlx::query("UPDATE ca_certificate SET state = $1 WHERE serial = $2")
                .bind(state::VOID)
                .bind(serial)
                .execute(&mut *tx)
                .await?;
        }
        if abandoned > 0 || !rows.is_empty() {
            audit::append(
                &mut tx,
                now,
                actor,
                "recover",
                &format!("{abandoned} reserved serials abandoned, {} stored TBS revoked", rows.len()),
            )
            .await?;
            tx.commit().await?;
            tracing::warn!(abandoned, voided = rows.len(), "recovered an interrupted issuance");
        }
        Ok((abandoned, rows.len() as u64))
    }
}
