//! The national node (全国サーバ): resident-code pools, the change-information feed, its
//! provision point ([`Provider`] for the classes it holds), and the rebuild of a wiped node
//! from the prefectures.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::error::{Error, Result};
use crate::ids::{LgCode, ResidentCode};
use crate::law::LawTable;
use crate::notice::NoticeKind;
use crate::operator::{self, Operator, Role};
use crate::person::Record;
use crate::provision::Provider;
use crate::store::{self, Db, Head, i64_from, u64_from};

/// Largest pool one request may take.
pub const MAX_POOL: u32 = 100_000;

/// One entry of the change-information feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FeedEntry {
    /// Position in the feed (gapless, from 1).
    pub feed_seq: u64,
    /// Municipality that made the change.
    pub source: String,
    /// Seq of the notice at that municipality.
    pub seq: u64,
    /// The resident (after the change).
    pub resident_code: String,
    /// The retired code, for a code change.
    pub previous_code: Option<String>,
    /// Why.
    pub kind: NoticeKind,
    /// Which items changed (`name`, `address`, `date_of_birth`, `sex`, `resident_code`,
    /// `status`, `municipality`).
    pub changed: Vec<String>,
    /// 異動年月日.
    pub effective_date: String,
    /// When the municipality recorded it (unix seconds).
    pub recorded_at: i64,
}

/// One municipality's resident-code pools at the national node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolUse {
    /// Municipality code.
    pub municipality: String,
    /// Codes handed to it, all pools together.
    pub drawn: u64,
    /// Of those, codes not yet in use here (no resident of the projection holds one, none
    /// retired): what it still holds unused, as far as replication has reached.
    pub remaining: u64,
    /// When it last drew a pool (unix seconds).
    pub last_drawn_at: i64,
}

/// The national node.
#[derive(Debug, Clone)]
pub struct National {
    db: Db,
    law: Arc<LawTable>,
    provider: Provider,
}

impl National {
    /// Opens the national node on `db` with the law table `law`.
    pub async fn open(db: Db, law: Arc<LawTable>) -> Result<Self> {
        store::claim_identity(&db, "national", "national").await?;
        let provider = Provider::open(db.clone(), law.clone()).await?;
        Ok(Self { db, law, provider })
    }

    /// Serves provision reads from `standby` (see [`Provider::with_standby`]); call before
    /// cloning the node.
    pub fn with_standby(mut self, standby: crate::standby::ReadStandby) -> Self {
        self.provider = self.provider.with_standby(standby);
        self
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The law table.
    pub fn law(&self) -> &LawTable {
        &self.law
    }

    /// Hands `municipality` a pool of `count` fresh codes: random 10 digits + check digit,
    /// unique forever by the `issued_code` primary key (retired codes stay in it).
    pub async fn allocate_pool(
        &self,
        op: &Operator,
        municipality: &LgCode,
        count: u32,
        now: i64,
    ) -> Result<Vec<ResidentCode>> {
        op.require(Role::NationalOperator, "allocate resident-code pools")?;
        if count == 0 || count > MAX_POOL {
            return Err(Error::invalid("count", format!("{count} is not 1–{MAX_POOL}")));
        }
        let mut tx = self.db.write().await?;
        let mut out = Vec::with_capacity(count as usize);
        while out.len() < count as usize {
            let body: [u8; 10] = std::array::from_fn(|_| rand::random_range(0..10u8));
            let code = ResidentCode::from_body(body)?;
            let n = sqlx::query(
                "INSERT INTO issued_code (code, municipality, issued_at) VALUES ($1, $2, $3) ON CONFLICT (code) DO NOTHING",
            )
            .bind(code.as_str())
            .bind(municipality.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 1 {
                out.push(code);
            }
        }
        operator::log(&mut tx, op, "allocate_pool", &format!("{count} codes to {municipality}"), now).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// The newest feed position (0 when the feed is empty): everything up to it has been
    /// applied to the projection, so a record read after this call reflects it.
    pub async fn feed_head(&self) -> Result<u64> {
        let r = sqlx::query("SELECT COALESCE(MAX(feed_seq), 0) FROM feed").fetch_one(self.db.pool()).await?;
        u64_from(r.try_get(0)?, "feed_seq")
    }

    /// Feed entries after `after`, at most `limit`.
    pub async fn feed_after(&self, after: u64, limit: u32) -> Result<Vec<FeedEntry>> {
        let rows = sqlx::query(
            "SELECT feed_seq, source, seq, resident_code, previous_code, kind, changed, effective_date, recorded_at
             FROM feed WHERE feed_seq > $1 ORDER BY feed_seq LIMIT $2",
        )
        .bind(i64_from(after, "after")?)
        .bind(i64::from(limit.min(10_000)))
        .fetch_all(self.db.pool())
        .await?;
        rows.into_iter()
            .map(|r| {
                let kind: i64 = r.try_get(5)?;
                let changed: String = r.try_get(6)?;
                Ok(FeedEntry {
                    feed_seq: u64_from(r.try_get(0)?, "feed_seq")?,
                    source: r.try_get(1)?,
                    seq: u64_from(r.try_get(2)?, "seq")?,
                    resident_code: r.try_get(3)?,
                    previous_code: r.try_get(4)?,
                    kind: NoticeKind::from_code(u16::try_from(kind).map_err(|e| Error::corrupt("feed", e))?)?,
                    changed: changed.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
                    effective_date: r.try_get(7)?,
                    recorded_at: r.try_get(8)?,
                })
            })
            .collect()
    }

    /// The resident-code pools per municipality: how many codes it was handed, and how many
    /// of them are not yet in use here (neither a resident of the projection nor a retired
    /// code), by municipality.
    pub async fn pools(&self) -> Result<Vec<PoolUse>> {
        let rows = sqlx::query(
            "SELECT i.municipality, COUNT(*),
                    SUM(CASE WHEN r.resident_code IS NULL AND t.code IS NULL THEN 1 ELSE 0 END),
                    MAX(i.issued_at)
             FROM issued_code i
             LEFT JOIN resident r ON r.resident_code = i.code
             LEFT JOIN retired_code t ON t.code = i.code
             GROUP BY i.municipality ORDER BY i.municipality",
        )
        .fetch_all(self.db.pool())
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(PoolUse {
                    municipality: r.try_get(0)?,
                    drawn: u64_from(r.try_get(1)?, "count")?,
                    remaining: u64_from(r.try_get(2)?, "count")?,
                    last_drawn_at: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Provision to agencies of the classes the national server holds.
    pub fn provider(&self) -> &Provider {
        &self.provider
    }

    /// The projected record of a resident.
    pub async fn record(&self, code: &ResidentCode) -> Result<Record> {
        self.provider.record(code).await
    }
}

/// One line of a rebuild comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadCheck {
    /// Municipality code.
    pub source: String,
    /// The prefecture's head.
    pub prefecture: Head,
    /// The national node's head after the rebuild, if any.
    pub national: Option<Head>,
    /// Whether seq and hash are equal.
    pub equal: bool,
}

/// Rebuilds a wiped national node from its prefectures and proves chain-head equality.
/// Refuses a national database that still holds notices.
/// Every notice's signature is verified with `verifier` as in any pull.
pub async fn rebuild(
    db: &Db,
    verifier: &dyn crate::notice_sig::NoticeVerifier,
    prefectures: &[crate::client::Peer],
) -> Result<Vec<HeadCheck>> {
    rebuild_with(db, verifier, prefectures, crate::progress::SILENT).await
}

/// [`rebuild`], reporting (notices applied, notices the prefectures held at the start) after
/// each pull.
pub async fn rebuild_with(
    db: &Db,
    verifier: &dyn crate::notice_sig::NoticeVerifier,
    prefectures: &[crate::client::Peer],
    progress: crate::progress::Progress<'_>,
) -> Result<Vec<HeadCheck>> {
    let held: i64 = sqlx::query("SELECT COUNT(*) FROM change_notice").fetch_one(db.pool()).await?.try_get(0)?;
    if held != 0 {
        return Err(Error::Conflict(format!("the national database holds {held} notices: rebuild needs a wiped node")));
    }
    let mut peers = Vec::new();
    let mut total = 0;
    for p in prefectures {
        let h = p.heads().await?;
        total += h.heads.iter().filter(|x| x.source.starts_with(h.code.as_str())).map(|x| x.seq).sum::<u64>();
        peers.push((p.clone(), Some(h.code)));
    }
    progress(0, total);
    let applied = |n: u64| progress(n, total.max(n));
    crate::replica::pull_until_quiet_with(db, crate::replica::Tier::National, verifier, &peers, 64, &applied).await?;
    compare_heads(db, prefectures).await
}

/// Compares this node's chain heads with each prefecture's.
pub async fn compare_heads(db: &Db, prefectures: &[crate::client::Peer]) -> Result<Vec<HeadCheck>> {
    let mut theirs = Vec::new();
    for p in prefectures {
        theirs.extend(p.heads().await?.heads);
    }
    Ok(compare(store::heads(db).await?, theirs))
}

/// Pairs every prefecture head with the national head of the same source (pure).
pub fn compare(national: Vec<Head>, prefectures: Vec<Head>) -> Vec<HeadCheck> {
    let ours: BTreeMap<String, Head> = national.into_iter().map(|h| (h.source.clone(), h)).collect();
    prefectures
        .into_iter()
        .map(|h| {
            let n = ours.get(&h.source).cloned();
            let equal = n.as_ref().is_some_and(|n| n.seq == h.seq && n.hash == h.hash);
            HeadCheck { source: h.source.clone(), prefecture: h, national: n, equal }
        })
        .collect()
}
