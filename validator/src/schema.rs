//! The validator's own tables (registered verifiers and the query log): its migrations,
//! `validator/migrations/{sqlite,postgres}`, embedded and run by [`open`] on the validator's
//! database. They are never run on the CA's database, which the validator reads only through
//! [`ca::status::StatusReader`] (read only, never migrated), or not at all when it reads the
//! CA service's status stream ([`ca::status::StatusClient`]).

use identity::store::{Db, Schema};
use sqlx::migrate::Migrator;

use crate::error::Result;

/// The validator's migrations: versions 3000–3999 (see [`identity::store::Schema`]).
pub static SCHEMA: Schema = Schema { sqlite: &SQLITE, postgres: &POSTGRES };
static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");

/// Opens (creating if needed) the validator's database at `url` (`postgres://…` or a SQLite
/// path) and runs the validator's migrations: the database holds the validator's tables only.
pub async fn open(url: &str) -> Result<Db> {
    let db = Db::connect(url).await?;
    db.migrate(&SCHEMA).await.map_err(sqlx::Error::from)?;
    Ok(db)
}
