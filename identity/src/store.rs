//! Storage through sqlx's `Any` driver: SQLite (embedded default; WAL, synchronous FULL,
//! `BEGIN IMMEDIATE` for read-then-write) or PostgreSQL for a `postgres://` URL. SQL is the
//! common subset with `$N` parameters. Each crate owns its tables: it embeds its own
//! migrations folder per backend as a [`Schema`] and runs it with [`Db::migrate`]; this crate's
//! is [`SCHEMA`] (`identity/migrations/{sqlite,postgres}`), run by [`Db::open`].

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::{Any, AnyPool, Executor, Row, Transaction};

use crate::error::{Error, Result};
use crate::notice::{ChangeNotice, Hash, NoticeRef};
use crate::notice_sig::{NoticeKeyCert, NoticeSignature};

/// One crate's tables: its embedded migrations, one folder per backend. The crates' migrators
/// share sqlx's `_sqlx_migrations` table, so their versions are disjoint: identity 1, 4 and
/// 1000–1999; ca 2, 5 and 2000–2999; validator 3000–3999 (3, the validator's tables before
/// the schema was split per crate, is retired). A version is never reused.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    /// The SQLite migrations (`sqlx::migrate!("migrations/sqlite")`).
    pub sqlite: &'static Migrator,
    /// The PostgreSQL migrations (`sqlx::migrate!("migrations/postgres")`).
    pub postgres: &'static Migrator,
}

/// The identity network's tables (notices, residents, replicas, provision log, operators).
pub static SCHEMA: Schema = Schema { sqlite: &SQLITE, postgres: &POSTGRES };
static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");

/// Which database engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// A connection pool; each crate runs its own [`Schema`] on it.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// Bumped after every commit that moves a chain head, a replica cursor or the feed
    /// ([`Db::changed`]); long polls ([`Db::watch`]) wait on it instead of a timer.
    changes: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
}

/// A write transaction.
pub type Tx = Transaction<'static, Any>;

impl Db {
    /// Opens (creating if needed) the database at `url` and runs the identity network's
    /// migrations ([`SCHEMA`]) on it: `postgres://…`, `sqlite://path` or a plain file path
    /// (SQLite).
    pub async fn open(url: &str) -> Result<Self> {
        let db = Self::connect(url).await?;
        db.migrate(&SCHEMA).await?;
        Ok(db)
    }

    /// Opens (creating if needed) the database at `url` without running any migrations: for a
    /// crate that owns other tables and runs its own [`Schema`] with [`Db::migrate`].
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_within(url, std::time::Duration::from_secs(30)).await
    }

    /// [`Db::open`] with at most `max_connections` connections (default 4 on SQLite, 8 on
    /// PostgreSQL): for many nodes in one process (`jpki bench peak`), where each SQLite
    /// connection holds three file descriptors.
    pub async fn open_with(url: &str, max_connections: u32) -> Result<Self> {
        let db = Self::connect_with(url, std::time::Duration::from_secs(30), Some(max_connections)).await?;
        db.migrate(&SCHEMA).await?;
        Ok(db)
    }

    /// [`Db::connect`], giving up when no connection is made within `within` (sqlx retries a
    /// refused connection until then).
    pub async fn connect_within(url: &str, within: std::time::Duration) -> Result<Self> {
        Self::connect_with(url, within, None).await
    }

    async fn connect_with(url: &str, within: std::time::Duration, max_connections: Option<u32>) -> Result<Self> {
        install_default_drivers();
        let (url, backend) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (url.to_owned(), Backend::Postgres)
        } else {
            let path = url.strip_prefix("sqlite://").unwrap_or(url);
            let path = path.split('?').next().unwrap_or(path);
            if path.is_empty() || path.contains(":memory:") {
                return Err(Error::invalid("database", "give a file path: nodes are durable".into()));
            }
            (format!("sqlite://{path}?mode=rwc"), Backend::Sqlite)
        };
        let is_sqlite = backend == Backend::Sqlite;
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.unwrap_or(if is_sqlite { 4 } else { 8 }).max(1))
            .acquire_timeout(within)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if is_sqlite {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = FULL").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        Ok(Self::with(pool, backend))
    }

    /// Opens an SQLite file read only (`mode=ro`), without migrations or pragmas: for checking
    /// a backup without changing a byte of it ([`crate::backup`]).
    pub async fn open_read_only(path: &std::path::Path) -> Result<Self> {
        install_default_drivers();
        let url = format!("sqlite://{}?mode=ro", path.display());
        let pool = AnyPoolOptions::new().max_connections(1).connect(&url).await?;
        Ok(Self::with(pool, Backend::Sqlite))
    }

    fn with(pool: AnyPool, backend: Backend) -> Self {
        Self { pool, backend, changes: std::sync::Arc::new(tokio::sync::watch::Sender::new(0)) }
    }

    /// Tells this process's long polls (`GET /v1/heads?wait_ms=`, `GET /v1/feed/head?wait_ms=`)
    /// that a commit may have moved a chain head, a replica cursor or the feed. Called after
    /// the commit, so a woken waiter reads the new state. Other processes on the same
    /// database are not told: their waits end at their timeout instead.
    pub fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver marked as having seen the current state: take it BEFORE reading the state
    /// a wait compares, then `changed().await` ends at the first [`Db::changed`] after it.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Runs one crate's migrations for this backend. Versions applied by other crates' schemas
    /// are ignored (not an error); a version of this schema applied with other SQL is.
    pub async fn migrate(&self, schema: &Schema) -> std::result::Result<(), MigrateError> {
        let embedded = match self.backend {
            Backend::Sqlite => schema.sqlite,
            Backend::Postgres => schema.postgres,
        };
        let mut m = Migrator::with_migrations(embedded.iter().cloned().collect());
        m.set_ignore_missing(true);
        m.run(&self.pool).await
    }

    /// The pool, for reads.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The engine.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Begins a write transaction. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so read-then-write never fails with SQLITE_BUSY_SNAPSHOT; on
    /// PostgreSQL row locks come from `UPDATE … RETURNING` on the counter rows.
    pub async fn write(&self) -> Result<Tx> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

pub(crate) fn hash_from(v: Vec<u8>) -> Result<Hash> {
    Hash::try_from(v.as_slice()).map_err(|_| Error::corrupt("hash", format!("{} bytes, want 32", v.len())))
}

pub(crate) fn u64_from(v: i64, what: &'static str) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::corrupt(what, format!("negative value {v}")))
}

pub(crate) fn i64_from(v: u64, what: &'static str) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::invalid(what, format!("{v} out of range")))
}

/// Rows per multi-row statement (keeps bound parameters far below both engines' limits).
pub(crate) const ROWS_PER_STATEMENT: usize = 100;

/// `($1, $2, …), ($k+1, …)` for `rows` rows of `cols` parameters.
pub(crate) fn values_clause(rows: usize, cols: usize) -> String {
    placeholders(rows, cols, 1)
}

/// `($first, …), (…), …`: `rows` rows of `cols` numbered placeholders each, numbered from
/// `first` (the values are always bound, never written into the SQL). Shared by every crate's
/// multi-row statements.
pub fn placeholders(rows: usize, cols: usize, first: usize) -> String {
    let mut s = String::with_capacity(rows * cols * 7);
    for r in 0..rows {
        s.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            if c > 0 {
                s.push_str(", ");
            }
            s.push('$');
            s.push_str(&(first + r * cols + c).to_string());
        }
        s.push(')');
    }
    s
}

/// `$1, $2, …, $n` for an `IN (…)` list.
pub(crate) fn in_list(n: usize) -> String {
    (1..=n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// Inserts sealed notices (the immutable history rows) with their signature envelopes, many
/// per statement.
pub(crate) async fn insert_notices(tx: &mut Tx, notices: &[&ChangeNotice]) -> Result<()> {
    for chunk in notices.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO change_notice (source, seq, kind, resident_code, encoding, body, prev_hash, hash, sig_version, sig_key_id, signature) VALUES {}",
            values_clause(chunk.len(), 11)
        );
        // Built from placeholders only; every value is bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for n in chunk {
            let sig = n.signature.as_ref();
            q = q
                .bind(n.key.source.as_str().to_owned())
                .bind(i64_from(n.key.seq, "seq")?)
                .bind(i64::from(n.body.kind.code()))
                .bind(n.body.record.resident_code.as_str().to_owned())
                .bind(i64::from(crate::notice::ENCODING_VERSION))
                .bind(n.encoding())
                .bind(n.prev_hash.to_vec())
                .bind(n.hash.to_vec())
                .bind(sig.map(|s| i64::from(s.version)))
                .bind(sig.map(|s| s.key_id.clone()))
                .bind(sig.map(|s| s.signature.clone()));
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Stored hashes of `source` for seqs `lo..=hi`.
pub(crate) async fn stored_hashes(tx: &mut Tx, source: &str, lo: u64, hi: u64) -> Result<HashMap<u64, Hash>> {
    let rows = sqlx::query("SELECT seq, hash FROM change_notice WHERE source = $1 AND seq >= $2 AND seq <= $3")
        .bind(source)
        .bind(i64_from(lo, "seq")?)
        .bind(i64_from(hi, "seq")?)
        .fetch_all(&mut **tx)
        .await?;
    rows.into_iter().map(|r| Ok((u64_from(r.try_get(0)?, "seq")?, hash_from(r.try_get(1)?)?))).collect()
}

/// The stored notice `key`, if this node holds it (inside a write transaction).
pub(crate) async fn notice_at(tx: &mut Tx, key: &NoticeRef) -> Result<Option<ChangeNotice>> {
    sqlx::query("SELECT body, prev_hash, hash FROM change_notice WHERE source = $1 AND seq = $2")
        .bind(key.source.as_str())
        .bind(i64_from(key.seq, "seq")?)
        .fetch_optional(&mut **tx)
        .await?
        .map(|r| {
            let body: Vec<u8> = r.try_get(0)?;
            ChangeNotice::decode(&body, hash_from(r.try_get(1)?)?, hash_from(r.try_get(2)?)?)
        })
        .transpose()
}

/// Which of `codes` are retired on this node.
pub(crate) async fn retired_among(tx: &mut Tx, codes: &[&str]) -> Result<HashSet<String>> {
    let mut out = HashSet::new();
    for chunk in codes.chunks(ROWS_PER_STATEMENT * 5) {
        let sql = format!("SELECT code FROM retired_code WHERE code IN ({})", in_list(chunk.len()));
        // Built from placeholders only; every value is bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for c in chunk {
            q = q.bind((*c).to_owned());
        }
        for r in q.fetch_all(&mut **tx).await? {
            out.insert(r.try_get(0)?);
        }
    }
    Ok(out)
}

/// The municipality each of `codes` was issued to, for those the national node's
/// `issued_code` table records.
pub(crate) async fn issued_among(tx: &mut Tx, codes: &[&str]) -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for chunk in codes.chunks(ROWS_PER_STATEMENT * 5) {
        let sql = format!("SELECT code, municipality FROM issued_code WHERE code IN ({})", in_list(chunk.len()));
        // Built from placeholders only; every value is bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for c in chunk {
            q = q.bind((*c).to_owned());
        }
        for r in q.fetch_all(&mut **tx).await? {
            out.insert(r.try_get(0)?, r.try_get(1)?);
        }
    }
    Ok(out)
}

/// Notices of `source` with seq > `after`, ascending, at most `limit`, with their signature
/// envelopes exactly as stored.
pub async fn notices_after(db: &Db, source: &str, after: u64, limit: u32) -> Result<Vec<ChangeNotice>> {
    let rows = sqlx::query(
        "SELECT body, prev_hash, hash, sig_version, sig_key_id, signature FROM change_notice
         WHERE source = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(source)
    .bind(i64_from(after, "after")?)
    .bind(i64::from(limit))
    .fetch_all(db.pool())
    .await?;
    rows.into_iter()
        .map(|r| {
            let body: Vec<u8> = r.try_get(0)?;
            let mut n = ChangeNotice::decode(&body, hash_from(r.try_get(1)?)?, hash_from(r.try_get(2)?)?)?;
            let version: Option<i64> = r.try_get(3)?;
            let key_id: Option<String> = r.try_get(4)?;
            let signature: Option<Vec<u8>> = r.try_get(5)?;
            n.signature = match (version, key_id, signature) {
                (Some(v), Some(key_id), Some(signature)) => Some(NoticeSignature {
                    version: u8::try_from(v).map_err(|e| Error::corrupt("signature version", e))?,
                    key_id,
                    signature,
                }),
                (None, None, None) => None,
                _ => return Err(Error::corrupt("notice signature", "partly stored envelope")),
            };
            Ok(n)
        })
        .collect()
}

/// Stores a notice-key certificate of `source` (append-only; storing the same certificate
/// again is a no-op, another certificate under a stored key id is a conflict).
pub(crate) async fn insert_notice_key(tx: &mut Tx, source: &str, key_id: &str, cert: &[u8], now: i64) -> Result<()> {
    let stored = sqlx::query("SELECT cert FROM notice_key WHERE source = $1 AND key_id = $2")
        .bind(source)
        .bind(key_id)
        .fetch_optional(&mut **tx)
        .await?;
    if let Some(r) = stored {
        let have: Vec<u8> = r.try_get(0)?;
        if have != cert {
            return Err(Error::Conflict(format!(
                "another certificate is already stored for notice key {key_id} of {source}"
            )));
        }
        return Ok(());
    }
    sqlx::query("INSERT INTO notice_key (source, key_id, cert, added_at) VALUES ($1, $2, $3, $4)")
        .bind(source)
        .bind(key_id)
        .bind(cert.to_vec())
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The stored certificate of notice key `key_id` of `source`, if any.
pub(crate) async fn notice_key_cert(tx: &mut Tx, source: &str, key_id: &str) -> Result<Option<Vec<u8>>> {
    Ok(sqlx::query("SELECT cert FROM notice_key WHERE source = $1 AND key_id = $2")
        .bind(source)
        .bind(key_id)
        .fetch_optional(&mut **tx)
        .await?
        .map(|r| r.try_get(0))
        .transpose()?)
}

/// Every stored notice-key certificate of `source`, oldest first (what
/// `GET /v1/sources/{source}/keys` serves).
pub async fn notice_keys(db: &Db, source: &str) -> Result<Vec<NoticeKeyCert>> {
    let rows = sqlx::query("SELECT key_id, cert FROM notice_key WHERE source = $1 ORDER BY added_at, key_id")
        .bind(source)
        .fetch_all(db.pool())
        .await?;
    rows.into_iter().map(|r| Ok(NoticeKeyCert { key_id: r.try_get(0)?, cert: r.try_get(1)? })).collect()
}

/// One source's chain head as a node holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Head {
    /// Municipality code.
    pub source: String,
    /// Highest seq held.
    pub seq: u64,
    /// Hash of that notice, hex.
    pub hash: String,
    /// Why replication of this source is halted, if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halted: Option<String>,
}

/// Chain heads of every source this node holds (its own and replicated), by source.
pub async fn heads(db: &Db) -> Result<Vec<Head>> {
    let mut out = Vec::new();
    for r in sqlx::query("SELECT source, last_seq, last_hash FROM source_counter ORDER BY source")
        .fetch_all(db.pool())
        .await?
    {
        out.push(Head {
            source: r.try_get(0)?,
            seq: u64_from(r.try_get(1)?, "seq")?,
            hash: hex::encode(r.try_get::<Vec<u8>, _>(2)?),
            halted: None,
        });
    }
    for r in sqlx::query("SELECT source, applied_seq, applied_hash, halted FROM replica_cursor ORDER BY source")
        .fetch_all(db.pool())
        .await?
    {
        out.push(Head {
            source: r.try_get(0)?,
            seq: u64_from(r.try_get(1)?, "seq")?,
            hash: hex::encode(r.try_get::<Vec<u8>, _>(2)?),
            halted: r.try_get(3)?,
        });
    }
    out.sort_by(|a, b| a.source.cmp(&b.source));
    Ok(out)
}

/// Whether this node holds any notice of `source` (as its origin or as a replica).
pub async fn holds(db: &Db, source: &str) -> Result<bool> {
    Ok(sqlx::query(
        "SELECT 1 FROM source_counter WHERE source = $1 UNION ALL SELECT 1 FROM replica_cursor WHERE source = $1",
    )
    .bind(source)
    .fetch_optional(db.pool())
    .await?
    .is_some())
}

/// Reads a `node_meta` value.
pub async fn meta(db: &Db, key: &str) -> Result<Option<String>> {
    Ok(sqlx::query("SELECT value FROM node_meta WHERE key = $1")
        .bind(key)
        .fetch_optional(db.pool())
        .await?
        .map(|r| r.try_get(0))
        .transpose()?)
}

/// Records this node's role and code on first open; refuses to reopen a database as another node.
pub async fn claim_identity(db: &Db, role: &str, code: &str) -> Result<()> {
    let mut tx = db.write().await?;
    for (k, v) in [("role", role), ("code", code)] {
        let cur: Option<String> = sqlx::query("SELECT value FROM node_meta WHERE key = $1")
            .bind(k)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        match cur {
            Some(c) if c != v => {
                return Err(Error::Conflict(format!("this database belongs to {k} {c}, not {v}")));
            }
            Some(_) => {}
            None => {
                sqlx::query("INSERT INTO node_meta (key, value) VALUES ($1, $2)")
                    .bind(k)
                    .bind(v)
                    .execute(&mut *tx)
                    .await?;
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

/// How far ahead [`ensure_partitions`] creates the provision log's month partitions: the
/// month of `now` and the next three (a node stopped for a quarter still finds its months; any
/// row beyond lands in the default partition and is moved into its month when that is made).
pub const PARTITION_MONTHS_AHEAD: i64 = 3;

/// PostgreSQL: creates the provision log's month partitions (JST months, migration 1013's
/// `provision_log_ensure_months`) for the month of `now` through [`PARTITION_MONTHS_AHEAD`]
/// months later; returns how many it created. SQLite has no partitions: 0.
pub async fn ensure_partitions(db: &Db, now: i64) -> Result<u32> {
    if db.backend() != Backend::Postgres {
        return Ok(0);
    }
    // 31 days a month is enough to reach into the last month asked for.
    let to = now.saturating_add(PARTITION_MONTHS_AHEAD * 31 * 86_400);
    let made: i32 = sqlx::query("SELECT provision_log_ensure_months($1, $2)")
        .bind(now)
        .bind(to)
        .fetch_one(db.pool())
        .await?
        .try_get(0)?;
    Ok(u32::try_from(made).unwrap_or(0))
}

/// Keeps the provision log's partitions ahead of the clock: [`ensure_partitions`] now and then
/// daily, logging (without personal data) what it created or why it failed. A failure costs
/// nothing at once: rows land in the default partition and move when their month is made.
pub async fn keep_partitions(db: Db) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(86_400));
    loop {
        tick.tick().await;
        match ensure_partitions(&db, time::OffsetDateTime::now_utc().unix_timestamp()).await {
            Ok(0) => {}
            Ok(made) => tracing::info!(made, "provision log: month partitions created"),
            Err(e) => {
                tracing::warn!(error = %e, "provision log: month partitions not created; rows go to the default partition")
            }
        }
    }
}

/// Databases for tests and benchmarks: a fresh SQLite file always, and a fresh PostgreSQL
/// database when `JPKI_TEST_PG_URL` (an admin URL) is set.
pub mod testing {
    use super::*;

    /// A throwaway database URL; the SQLite file lives as long as this value.
    #[derive(Debug)]
    pub struct TestDb {
        /// Connection URL.
        pub url: String,
        /// Engine label for messages.
        pub label: &'static str,
        _dir: Option<tempfile::TempDir>,
    }

    /// A fresh SQLite database in its own temp directory.
    pub fn sqlite() -> Result<TestDb> {
        let dir = tempfile::tempdir().map_err(|e| Error::corrupt("tempdir", e))?;
        let url = format!("sqlite://{}", dir.path().join("node.db").display());
        Ok(TestDb { url, label: "sqlite", _dir: Some(dir) })
    }

    /// A fresh PostgreSQL database on the cluster of `JPKI_TEST_PG_URL`, if set.
    pub async fn postgres() -> Result<Option<TestDb>> {
        let Ok(admin) = std::env::var("JPKI_TEST_PG_URL") else { return Ok(None) };
        install_default_drivers();
        let name = format!("jpki_t_{}", hex::encode(rand::random::<[u8; 8]>()));
        let pool = AnyPoolOptions::new().max_connections(1).connect(&admin).await?;
        // The name is ours (hex), not input: identifiers cannot be bound as parameters.
        pool.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await?;
        pool.close().await;
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        Ok(Some(TestDb { url: format!("{base}/{name}"), label: "postgres", _dir: None }))
    }

    /// SQLite, plus PostgreSQL when configured: every storage test runs on each.
    pub async fn all() -> Result<Vec<TestDb>> {
        let mut v = vec![sqlite()?];
        v.extend(postgres().await?);
        Ok(v)
    }

    /// Whether PostgreSQL tests are configured.
    pub fn pg_configured() -> bool {
        std::env::var("JPKI_TEST_PG_URL").is_ok()
    }

    /// The names of the tables in `db` (sqlx's own `_sqlx_migrations` excluded), to check
    /// which crate's schema a database holds.
    pub async fn tables(db: &Db) -> Result<std::collections::BTreeSet<String>> {
        let q = match db.backend() {
            Backend::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table'",
            // Tables and partitioned tables, not their partitions (migration 1013).
            Backend::Postgres => {
                "SELECT c.relname::TEXT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
            }
        };
        let rows = sqlx::query(q).fetch_all(db.pool()).await?;
        let mut names = std::collections::BTreeSet::new();
        for r in rows {
            let name: String = r.try_get(0)?;
            if !name.starts_with("_sqlx") && !name.starts_with("sqlite_") {
                names.insert(name);
            }
        }
        Ok(names)
    }

    impl FromStr for Backend {
        type Err = Error;
        fn from_str(s: &str) -> Result<Self> {
            match s {
                "sqlite" => Ok(Self::Sqlite),
                "postgres" => Ok(Self::Postgres),
                _ => Err(Error::invalid("backend", format!("{s}: use sqlite or postgres"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database opened by the identity crate alone holds the identity network's tables and
    /// nothing of the CA or the validator: each of those crates migrates its own tables.
    #[tokio::test]
    async fn an_identity_database_has_no_ca_or_validator_tables() {
        for t in testing::all().await.unwrap() {
            let db = Db::open(&t.url).await.unwrap();
            let tables = testing::tables(&db).await.unwrap();
            for own in ["change_notice", "resident", "replica_cursor", "provision_log", "notice_key"] {
                assert!(tables.contains(own), "{}: {own} missing from {tables:?}", t.label);
            }
            let foreign: Vec<_> =
                tables.iter().filter(|n| n.starts_with("ca_") || n.starts_with("validator_")).collect();
            assert!(foreign.is_empty(), "{}: {foreign:?}", t.label);
            // Reopening runs nothing twice.
            db.close().await;
            Db::open(&t.url).await.unwrap().close().await;
        }
    }
}
