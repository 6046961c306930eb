//! Provision reads on a PostgreSQL hot standby (issue 14, docs/scale-identity.md): a
//! [`ReadStandby`] is a second pool on a streaming replica of the node's primary. Provision
//! lookups (the resident reads) go to it while its replay lag is within a bound; everything
//! written — the provision log row first of all — goes to the primary, and an answer still
//! leaves only after its log row committed there.
//!
//! **Staleness.** A standby replays the primary's WAL behind it: a provision read there may see
//! a record up to the replay lag old (a move or death applied on the primary but not replayed
//! yet). The lag is measured before every group of reads ([`ReadStandby::lag`]) and exported as
//! `jpki_provision_standby_replay_lag_seconds`; beyond `max_lag` (`--max-read-lag`) the group
//! reads the primary instead (`jpki_provision_standby_fallbacks_total`), as it does when the
//! standby cannot be reached or is no longer in recovery (promoted). So a provision never sees a
//! record older than `max_lag` plus the time one read takes.
//!
//! **Which server.** At start the standby must be a standby (`pg_is_in_recovery()`), of this
//! primary (the same `pg_control_system()` system identifier: a physical copy of this cluster),
//! and hold the same database; anything else is refused with a clear error, never read from.
//! The read role needs `pg_monitor` (for `pg_stat_wal_receiver`'s status), also checked.

use std::time::Duration;

use sqlx::Row;

use crate::error::{Error, Result};
use crate::store::{Backend, Db};

/// How long the start waits for the standby to accept a connection, and each later read for
/// a connection from its pool.
const CONNECT_WITHIN: Duration = Duration::from_secs(5);

/// A hot standby for provision reads, checked against its primary.
#[derive(Debug, Clone)]
pub struct ReadStandby {
    standby: Db,
    primary: Db,
    max_lag: Duration,
}

/// What one lag check found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Lag {
    /// Streaming, replaying; seconds behind the primary (0 when everything received is replayed).
    Behind(f64),
    /// The server is no longer in recovery (it was promoted): not a standby of the primary any more.
    Promoted,
    /// Not streaming and nothing replayed since it started: how far behind is unknown.
    Unknown,
}

impl ReadStandby {
    /// Connects to the standby at `url` (no migrations: a standby is read only) and checks that
    /// it is a hot standby of `primary`'s cluster holding the same database.
    pub async fn connect(url: &str, primary: &Db, max_lag: Duration) -> Result<Self> {
        if primary.backend() != Backend::Postgres {
            return Err(Error::invalid("pg-read-url", "provision reads on a standby need a PostgreSQL primary".into()));
        }
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(Error::invalid("pg-read-url", "give a postgres:// URL of a hot standby".into()));
        }
        let standby =
            Db::connect_within(url, CONNECT_WITHIN).await.map_err(|e| refused(format!("cannot connect: {e}")))?;
        let id = |db: &Db| {
            let pool = db.pool().clone();
            async move {
                let r = sqlx::query(
                    "SELECT (SELECT system_identifier FROM pg_control_system()), current_database()::TEXT, pg_is_in_recovery()",
                )
                .fetch_one(&pool)
                .await?;
                Ok::<_, Error>((r.try_get::<i64, _>(0)?, r.try_get::<String, _>(1)?, r.try_get::<bool, _>(2)?))
            }
        };
        let (p_sys, p_db, p_recovery) = id(primary).await?;
        let (s_sys, s_db, s_recovery) = id(&standby).await.map_err(|e| refused(e.to_string()))?;
        if p_recovery {
            return Err(refused("the primary (--db) is itself in recovery: give the primary's URL as --db".into()));
        }
        if !s_recovery {
            return Err(refused(
                "the server is not in recovery: it is a primary, not a hot standby (a promoted standby is no longer one)"
                    .into(),
            ));
        }
        if s_sys != p_sys {
            return Err(refused(format!(
                "the server is a standby of another cluster (system identifier {s_sys}, the primary's is {p_sys})"
            )));
        }
        if s_db != p_db {
            return Err(refused(format!("the URL names database {s_db}, the primary's is {p_db}")));
        }
        // Without pg_read_all_stats (pg_monitor) the WAL receiver's status reads as NULL, and
        // the lag could never be told 0: every read would go to the primary.
        let hidden: i64 = sqlx::query("SELECT COUNT(*) FROM pg_stat_wal_receiver WHERE status IS NULL")
            .fetch_one(standby.pool())
            .await
            .map_err(|e| refused(e.to_string()))?
            .try_get(0)?;
        if hidden > 0 {
            return Err(refused(
                "the role cannot read the WAL receiver's status: grant it pg_monitor on the primary".into(),
            ));
        }
        Ok(Self { standby, primary: primary.clone(), max_lag })
    }

    /// The bound on the replay lag.
    pub fn max_lag(&self) -> Duration {
        self.max_lag
    }

    /// The standby's pool.
    pub fn standby(&self) -> &Db {
        &self.standby
    }

    /// How far the standby's replay is behind: 0 while it streams and has replayed all it
    /// received; otherwise the age of the last transaction it replayed
    /// (`now() - pg_last_xact_replay_timestamp()`, so a paused replay's lag grows by the
    /// second). Sets the gauge `jpki_provision_standby_replay_lag_seconds`.
    pub async fn lag(&self) -> Result<Lag> {
        let r = sqlx::query(
            "SELECT pg_is_in_recovery(),
                    EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')
                        AND pg_last_wal_receive_lsn() IS NOT NULL
                        AND pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn(),
                    EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::FLOAT8",
        )
        .fetch_one(self.standby.pool())
        .await?;
        let (recovery, caught_up, age): (bool, bool, Option<f64>) = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
        let lag = match (recovery, caught_up, age) {
            (false, _, _) => Lag::Promoted,
            (true, true, _) => Lag::Behind(0.0),
            (true, false, Some(age)) => Lag::Behind(age.max(0.0)),
            (true, false, None) => Lag::Unknown,
        };
        let seconds = match lag {
            Lag::Behind(s) => s,
            Lag::Promoted | Lag::Unknown => f64::INFINITY,
        };
        metrics::gauge!("jpki_provision_standby_replay_lag_seconds").set(seconds);
        Ok(lag)
    }

    /// Where the next group of provision reads goes: the standby while its lag is within the
    /// bound, else the primary (counted, with the reason, in
    /// `jpki_provision_standby_fallbacks_total`).
    pub async fn pick(&self) -> &Db {
        let reason = match self.lag().await {
            Ok(Lag::Behind(s)) if s <= self.max_lag.as_secs_f64() => return &self.standby,
            Ok(Lag::Behind(_)) => "lagging",
            Ok(Lag::Promoted) => "promoted",
            Ok(Lag::Unknown) => "unknown_lag",
            Err(e) => {
                tracing::warn!(error = %e, "provision standby unreachable; reading the primary");
                "unreachable"
            }
        };
        metrics::counter!("jpki_provision_standby_fallbacks_total", "reason" => reason).increment(1);
        &self.primary
    }

    /// Refreshes the lag gauge every `every`, between provisions too (for `jpki serve`).
    pub async fn watch(self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match self.lag().await {
                Ok(Lag::Promoted) => {
                    tracing::error!("the provision standby is no longer in recovery; provisions read the primary")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "provision standby: lag not measured"),
            }
        }
    }
}

fn refused(reason: String) -> Error {
    Error::ReadStandby(reason)
}
