//! The CA shell: hierarchies and generations in the database, keys in the key store, issuance
//! in Boulder's crash-safe order (reserve serial → store the exact TBS → sign → check the
//! signed TBS is the stored one → store the certificate, every step committed and audited),
//! operator revocation, and crash recovery. CRL publication is in [`crate::publish`], the
//! change-feed follower in [`crate::follow`].
//!
//! One concept a file: `generation` (settings, CA generations), `records` (certificate rows,
//! revocation rows), `pipeline` (the Boulder batch), `resident` (a window's request: the
//! pure [`plan_resident`] decision and the I/O around it), `responder` (delegated OCSP responder
//! certificates), `recover` (operator revocation, crash recovery).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use der::Encode;
use sqlx::Row;

use crate::audit;
use crate::error::{Error, Result};
use crate::key::{KeyAlgorithm, KeyBackend};
use crate::keystore::KeyStore;
use identity::store::Db;

macro_rules! cert_select {
    () => {
        "SELECT c.serial, c.issuer_slug, c.issuer_generation, c.kind, c.state, c.resident_code, c.shard, c.not_before, c.not_after, c.der, r.revoked_at, r.reason, r.cause FROM ca_certificate c LEFT JOIN ca_revocation r ON r.serial = c.serial"
    };
}

/// `SELECT` of a [`Generation`] (read by `generation::gen_from_row`) followed by `$tail`.
macro_rules! select_generation {
    ($tail:literal) => {
        concat!(
            "SELECT generation, algorithm, key_ref, certificate, key_id, not_after, shards, not_before, activation, rolled_back, slug FROM ca_generation ",
            $tail
        )
    };
}

mod generation;
mod pipeline;
pub(crate) mod records;
mod recover;
mod resident;
mod responder;

pub use generation::{Generation, GenerationSpec, Settings, arl_url, ca_issuers_url, crl_url};
pub use pipeline::{AnyPrepared, AnyProfile, Plan, new_serial, shard_of};
pub use records::{CertRecord, insert_revocation, state};
pub use resident::{
    IssueRequest, Issued, IssuedCert, ResidentPlanInput, card_key_algorithm, plan_resident, proof_of_possession,
};

/// A certificate authority service over one database and key store.
#[derive(Debug)]
pub struct Authority {
    db: Db,
    keys: KeyStore,
    settings: Settings,
    loaded: Mutex<HashMap<String, Arc<dyn KeyBackend>>>,
    create: tokio::sync::Mutex<()>,
}

async fn setting(db: &Db, name: &str) -> Result<Option<String>> {
    Ok(sqlx::query("SELECT value FROM ca_setting WHERE name = $1")
        .bind(name)
        .fetch_optional(db.pool())
        .await?
        .map(|r| r.try_get(0))
        .transpose()?)
}

impl Authority {
    /// Opens the CA over `db`, running the CA's migrations on it ([`crate::schema`]) and
    /// resolving whatever a crash left half-done (see [`Self::recover`]).
    ///
    /// With an audit journal (`journal`, the rows of [`crate::audit::read_journal`]) ahead of
    /// the database, the database is marked as restored first ([`crate::restore`]).
    pub async fn open(db: Db, keys: KeyStore, now: i64) -> Result<Self> {
        Self::open_with_journal(db, keys, None, now).await
    }

    /// [`Self::open`], checking the database against the audit journal's rows.
    pub async fn open_with_journal(
        db: Db,
        keys: KeyStore,
        journal: Option<&[crate::audit::JournalRow]>,
        now: i64,
    ) -> Result<Self> {
        let a = Self::open_inspect(db, keys).await?;
        if let Some(rows) = journal {
            crate::restore::check_journal(&a.db, rows, now).await?;
        }
        a.recover("system:recovery", now).await?;
        Ok(a)
    }

    /// Opens the CA for reading (listing, showing, auditing) without recovery: safe while the
    /// CA service runs, whose in-flight reservations recovery would abandon.
    pub async fn open_inspect(db: Db, keys: KeyStore) -> Result<Self> {
        crate::schema::migrate(&db).await?;
        let mut settings = Settings::default();
        if let Some(v) = setting(&db, "crl_base").await? {
            settings.crl_base = v;
        }
        if let Some(v) = setting(&db, "ocsp_url").await? {
            settings.ocsp_url = v;
        }
        if let Some(v) = setting(&db, "shards").await? {
            settings.shards = v.parse().map_err(|_| Error::corrupt("setting shards", v))?;
        }
        if let Some(v) = setting(&db, "crl_hours").await? {
            settings.crl_hours = v.parse().map_err(|_| Error::corrupt("setting crl_hours", v))?;
        }
        if let Some(v) = setting(&db, "ca_algorithm").await? {
            settings.ca_algorithm = KeyAlgorithm::parse(&v)?;
        }
        Ok(Self { db, keys, settings, loaded: Mutex::default(), create: tokio::sync::Mutex::new(()) })
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// How a key is protected (for the operator's eyes).
    pub fn key_protection(&self, key_ref: &str) -> Result<String> {
        self.keys.protection(key_ref)
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The signing key of a generation (loaded once).
    pub fn key(&self, g: &Generation) -> Result<Arc<dyn KeyBackend>> {
        let mut cache = self.loaded.lock().map_err(|_| Error::key("key cache poisoned"))?;
        if let Some(k) = cache.get(&g.key_ref) {
            return Ok(k.clone());
        }
        let k = self.keys.load(&g.key_ref)?;
        if k.public_key_der() != g.cert()?.tbs_certificate().subject_public_key_info().to_der()? {
            return Err(Error::key(format!(
                "key {} does not match the certificate of {} g{}",
                g.key_ref, g.ca, g.generation
            )));
        }
        cache.insert(g.key_ref.clone(), k.clone());
        Ok(k)
    }

    /// The key store.
    pub fn key_store(&self) -> &KeyStore {
        &self.keys
    }

    /// Records, in one transaction, the audit row of a card's issuance (`action`, `detail`)
    /// and that card `card_serial` (hex) was personalised for `resident` at `window` of
    /// `municipality` (the card inventory; the latest issuance wins).
    #[allow(clippy::too_many_arguments, reason = "one audit row and one inventory row, each field named")]
    pub async fn record_card(
        &self,
        actor: &str,
        action: &str,
        detail: &str,
        card_serial: &str,
        resident: &str,
        municipality: &str,
        window: &str,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.db.write().await?;
        sqlx::query(
            "INSERT INTO ca_card (card_serial, resident_code, municipality, window_party, issued_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (card_serial) DO UPDATE SET resident_code = $2, \
             municipality = $3, window_party = $4, issued_at = $5",
        )
        .bind(card_serial)
        .bind(resident)
        .bind(municipality)
        .bind(window)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        audit::append(&mut tx, now, actor, action, detail).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The resident card `card_serial` (hex) was last personalised for, if any.
    pub async fn card_holder(&self, card_serial: &str) -> Result<Option<String>> {
        Ok(sqlx::query("SELECT resident_code FROM ca_card WHERE card_serial = $1")
            .bind(card_serial)
            .fetch_optional(self.db.pool())
            .await?
            .map(|r| r.try_get(0))
            .transpose()?)
    }

    /// Appends one row to the audit trail in its own transaction (refusals, card-issuer
    /// authentications: what the CA service answers without changing any certificate).
    pub async fn audit(&self, actor: &str, action: &str, detail: &str, now: i64) -> Result<()> {
        let mut tx = self.db.write().await?;
        audit::append(&mut tx, now, actor, action, detail).await?;
        tx.commit().await?;
        Ok(())
    }
}
