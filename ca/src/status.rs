//! The CA's certificate status, read only: the typed boundary through which the validator
//! reads the CA's database. It exposes exactly what a status service needs — CA certificates
//! (for responder matching and trust anchors), certificate status by serial, and revocations
//! after a sequence number — and nothing else (no resident codes, no settings, no key
//! references).
//!
//! [`StatusReader::open`] never migrates, indexes or writes: SQLite is opened with `mode=ro`
//! and `PRAGMA query_only`; on PostgreSQL every session is `READ ONLY`, and the operator gives
//! the validator a role that has only `SELECT` on `ca_generation`, `ca_certificate`,
//! `ca_revocation` and `ca_revocation_counter` (docs/validator.md).

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor, Row};

use crate::authority::state;
use crate::crl::Reason;
use crate::error::{Error, Result};
use crate::hierarchy::CaId;

/// One revocation, as numbered by the revoking transaction (`ca_revocation.seq`: gapless,
/// increasing, in commit order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// Revocation sequence number (from 1).
    pub seq: i64,
    /// Serial, lower-case hex (minimal encoding).
    pub serial: String,
    /// Issuing CA slug.
    pub issuer_slug: String,
    /// Issuing CA generation.
    pub issuer_generation: i64,
    /// revocationDate (unix seconds; the revoking process's clock — never used for ordering).
    pub revoked_at: i64,
    /// Reason.
    pub reason: Reason,
}

/// What the CA's tables say about one serial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    /// Issued and not revoked.
    Good,
    /// Revoked (final).
    Revoked {
        /// Unix seconds.
        at: i64,
        /// Why.
        reason: Reason,
    },
    /// Reserved or abandoned: never issued.
    NotIssued,
}

/// A certificate of the CA's tables with its issuer and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// Serial, lower-case hex.
    pub serial: String,
    /// Issuing CA slug.
    pub issuer_slug: String,
    /// Issuing CA generation.
    pub issuer_generation: i64,
    /// Status.
    pub status: CertStatus,
}

/// A CA generation's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaCertificate {
    /// The CA (purpose, environment, prefecture).
    pub ca: CaId,
    /// Generation.
    pub generation: i64,
    /// The certificate (DER).
    pub certificate: Vec<u8>,
    /// Its subject key identifier.
    pub key_id: Vec<u8>,
}

/// A read-only connection to the CA's status tables.
#[derive(Debug, Clone)]
pub struct StatusReader {
    pool: AnyPool,
}

/// The SQLite URL that opens `url` read only (`mode=ro`); `None` for PostgreSQL.
fn read_only_sqlite(url: &str) -> Result<Option<String>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(None);
    }
    let path = url.strip_prefix("sqlite://").unwrap_or(url);
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path.contains(":memory:") {
        return Err(Error::invalid("CA database", "give the CA database's file path"));
    }
    Ok(Some(format!("sqlite://{path}?mode=ro")))
}

fn status_of(state_code: i64, revoked_at: Option<i64>, reason: Option<i64>) -> Result<CertStatus> {
    Ok(match revoked_at {
        Some(at) => CertStatus::Revoked { at, reason: Reason::from_code(reason.unwrap_or(0))? },
        None if state_code == state::ISSUED => CertStatus::Good,
        None => CertStatus::NotIssued,
    })
}

impl StatusReader {
    /// Opens the CA database at `url` read only, without running migrations: it must already
    /// be migrated by the CA (a missing revocation counter is an error, not a reason to create
    /// it).
    pub async fn open(url: &str) -> Result<StatusReader> {
        install_default_drivers();
        let sqlite = read_only_sqlite(url)?;
        let is_sqlite = sqlite.is_some();
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if is_sqlite {
                        conn.execute("PRAGMA query_only = ON").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                    } else {
                        conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY").await?;
                    }
                    Ok(())
                })
            })
            .connect(sqlite.as_deref().unwrap_or(url))
            .await?;
        let r = StatusReader { pool };
        r.head().await.map_err(|e| {
            Error::invalid("CA database", format!("no revocation sequence (is it a migrated CA database?): {e}"))
        })?;
        Ok(r)
    }

    /// A reader over the CA's own pool (the CA service serves the status stream from it; it
    /// only reads through this type).
    pub(crate) fn over(pool: AnyPool) -> StatusReader {
        StatusReader { pool }
    }

    /// The last revocation sequence number committed (0 if none).
    pub async fn head(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT last_seq FROM ca_revocation_counter WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::corrupt("revocation counter", "missing"))?
            .try_get(0)?)
    }

    /// Revocations numbered after `after`, in sequence order, at most `limit`.
    pub async fn revocations_after(&self, after: i64, limit: i64) -> Result<Vec<Revocation>> {
        let rows = sqlx::query(
            "SELECT seq, serial, issuer_slug, issuer_generation, revoked_at, reason FROM ca_revocation \
             WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Revocation {
                    seq: r.try_get(0)?,
                    serial: r.try_get(1)?,
                    issuer_slug: r.try_get(2)?,
                    issuer_generation: r.try_get(3)?,
                    revoked_at: r.try_get(4)?,
                    reason: Reason::from_code(r.try_get(5)?)?,
                })
            })
            .collect()
    }

    /// Every issued or revoked certificate.
    pub async fn certificates(&self) -> Result<Vec<Certificate>> {
        let rows = sqlx::query(
            "SELECT c.serial, c.issuer_slug, c.issuer_generation, c.state, r.revoked_at, r.reason \
             FROM ca_certificate c LEFT JOIN ca_revocation r ON r.serial = c.serial \
             WHERE c.state = $1 OR r.serial IS NOT NULL",
        )
        .bind(state::ISSUED)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Certificate {
                    serial: r.try_get(0)?,
                    issuer_slug: r.try_get(1)?,
                    issuer_generation: r.try_get(2)?,
                    status: status_of(r.try_get(3)?, r.try_get(4)?, r.try_get(5)?)?,
                })
            })
            .collect()
    }

    /// One certificate by serial (lower-case hex, minimal), `None` if the CA never reserved it.
    pub async fn certificate(&self, serial: &str) -> Result<Option<Certificate>> {
        let row = sqlx::query(
            "SELECT c.serial, c.issuer_slug, c.issuer_generation, c.state, r.revoked_at, r.reason \
             FROM ca_certificate c LEFT JOIN ca_revocation r ON r.serial = c.serial WHERE c.serial = $1",
        )
        .bind(serial.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Certificate {
                serial: r.try_get(0)?,
                issuer_slug: r.try_get(1)?,
                issuer_generation: r.try_get(2)?,
                status: status_of(r.try_get(3)?, r.try_get(4)?, r.try_get(5)?)?,
            })
        })
        .transpose()
    }

    /// Every CA generation's certificate, by slug and generation.
    pub async fn ca_certificates(&self) -> Result<Vec<CaCertificate>> {
        let rows =
            sqlx::query("SELECT slug, generation, certificate, key_id FROM ca_generation ORDER BY slug, generation")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                Ok(CaCertificate {
                    ca: CaId::parse(&r.try_get::<String, _>(0)?)?,
                    generation: r.try_get(1)?,
                    certificate: r.try_get(2)?,
                    key_id: r.try_get(3)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sqlite_urls_open_read_only() {
        assert_eq!(read_only_sqlite("sqlite:///x/ca.db?mode=rwc").unwrap().unwrap(), "sqlite:///x/ca.db?mode=ro");
        assert_eq!(read_only_sqlite("/x/ca.db").unwrap().unwrap(), "sqlite:///x/ca.db?mode=ro");
        assert!(read_only_sqlite("postgres://h/db").unwrap().is_none());
        assert!(read_only_sqlite("sqlite://:memory:").is_err());
    }
}
