//! The CA's tables (authorities, generations, certificates, revocations, CRLs, audit trail,
//! settings): its own migrations, `ca/migrations/{sqlite,postgres}`, embedded and run by
//! [`migrate`] when the CA opens its database ([`crate::authority::Authority::open`]).
//! Readers of the CA's database never run them: [`crate::status::StatusReader`] opens it read
//! only and refuses a database the CA has not migrated.
//!
//! `0002_ca.sql` still says every node's database carries the whole schema: that was true
//! before the split, and an applied migration is never edited (its checksum is recorded).

use identity::store::{Db, Schema};
use sqlx::migrate::Migrator;

use crate::error::{Error, Result};

/// The CA's migrations: versions 2, 5 (from before the schema was split per crate) and
/// 2000–2999 (see [`identity::store::Schema`]).
pub static SCHEMA: Schema = Schema { sqlite: &SQLITE, postgres: &POSTGRES };
static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");

/// Runs the CA's migrations on `db` (idempotent; other crates' versions are left alone).
pub async fn migrate(db: &Db) -> Result<()> {
    db.migrate(&SCHEMA).await.map_err(|e| Error::Db(e.into()))
}

/// Opens (creating if needed) the CA database at `url` (`postgres://…` or a SQLite path) and
/// runs the CA's migrations: the database holds the CA's tables only.
pub async fn open(url: &str) -> Result<Db> {
    let db = Db::connect(url).await.map_err(|e| match e {
        identity::Error::Database(e) => Error::Db(e),
        other => Error::invalid("CA database", other),
    })?;
    migrate(&db).await?;
    Ok(db)
}
