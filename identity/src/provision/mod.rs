//! Provision of identity information to agencies (住基法 art. 30-9 ff.), as the national
//! server does for the classes it holds (別表第1–第4) and a prefecture server for its own
//! (別表第5/第6 and the prefecture's ordinance tables): agencies registered for purposes of
//! their class, lookups by resident code or by an exact match of the four items only, bulk
//! batches for bulk purposes, per-agency rate limits ([`crate::rate_limit`], held in memory
//! per process), the provision log (group-committed: an answer leaves only after its row is
//! durable; every refusal is logged too), disclosure reports and yearly statistics.

mod agency;
mod desk;
mod report;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::error::{Error, Result};
use crate::ids::{PrefectureCode, ResidentCode};
use crate::law::{self, AgencyClass, Field, LawTable, QueryKind};
use crate::notice::format_date;
use crate::person::{FourItems, Record, ResidentStatus};
use crate::rate_limit::{Cost, Limiter, Limits};
use crate::standby::ReadStandby;
use crate::store::{self, Db};

use desk::{Desk, LogEntry, LogRow, Subject, insert_logs};

/// Largest bulk batch (the pension liveness check sends many of these).
pub const MAX_BATCH: usize = 10_000;

/// Which server holds the data a provider answers from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// 全国サーバ (J-LIS): serves 別表第1–第4.
    National,
    /// 都道府県サーバ: serves 別表第5/第6 and its prefecture's ordinance tables.
    Prefecture(PrefectureCode),
}

impl Holder {
    /// 提供元 as written to the provision log.
    pub fn source_name(&self) -> String {
        match self {
            Self::National => "全国サーバ".to_owned(),
            Self::Prefecture(p) => format!("都道府県サーバ({p})"),
        }
    }

    /// Whether this server holds the data for `class`.
    pub fn serves(&self, class: AgencyClass) -> bool {
        match self {
            Self::National => class.held_nationally(),
            Self::Prefecture(_) => !class.held_nationally(),
        }
    }

    fn other(&self) -> &'static str {
        match self {
            Self::National => "the prefecture server",
            Self::Prefecture(_) => "the national server",
        }
    }
}

/// A registered agency, as the provision point knows it (the caller named by its certificate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agency {
    /// Agency id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Its class in the law table.
    pub class: AgencyClass,
    /// The purposes it is registered for.
    pub purposes: BTreeSet<String>,
}

/// How an agency identifies the resident. There is deliberately no free search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Lookup {
    /// By 住民票コード.
    ResidentCode(ResidentCode),
    /// By an exact match of all four items.
    FourItems(FourItems),
}

/// A single provision request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Query {
    /// Purpose code from the law table.
    pub purpose: String,
    /// Who.
    pub by: Lookup,
    /// Items wanted.
    pub fields: BTreeSet<Field>,
}

/// A bulk request (only for purposes the law table marks bulk).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchQuery {
    /// Purpose code from the law table.
    pub purpose: String,
    /// Items wanted.
    pub fields: BTreeSet<Field>,
    /// Residents, at most [`MAX_BATCH`].
    #[schema(max_items = 10_000)]
    pub resident_codes: Vec<ResidentCode>,
}

/// What a resident's provided data looks like.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Provided {
    /// Whether a record matched (always given: an agency must know whether its lookup matched).
    pub found: bool,
    /// Register status (1 active, 2 moved out, 3 deceased, …) when found **and** the grant
    /// includes [`Field::ChangeInfo`] (the purpose's law-table row permits change information
    /// and the request asked for it); absent otherwise. The status is change information:
    /// without this rule a purpose granted only, say, the name would learn who died.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ResidentStatus>,
    /// The granted items, by wire name (`name` and `address` as flagged text, `date_of_birth`,
    /// `sex`, `resident_code`; `municipality` and `version` with change information).
    pub items: BTreeMap<String, serde_json::Value>,
}

/// One row of a resident's disclosure report (the fields Gifu and Osaka disclose).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DisclosureRow {
    /// 提供年月日 (JST).
    pub date: String,
    /// 機能区分.
    pub function: String,
    /// 利用事由 (purpose code and its 事務).
    pub purpose: String,
    /// 提供事務区分 (law-table reference).
    pub provision_class: String,
    /// 提供元.
    pub source: String,
    /// 提供先.
    pub destination: String,
    /// Items provided.
    pub fields: String,
    /// `provided`, `not_found` or `refused`.
    pub result: String,
}

/// 機能区分 of a 広域交付 row in the provision log (and the resident's disclosure report).
pub const WIDE_AREA_FUNCTION: &str = "広域交付";

/// A provision-log row of a 広域交付 relayed by the national node
/// ([`Provider::log_wide_area`]).
#[derive(Debug, Clone, Copy)]
pub struct WideAreaLog<'a> {
    /// The law table's purpose (`W1-001`).
    pub purpose: &'a str,
    /// 提供先: the requesting municipality, its window and clerk.
    pub destination: &'a str,
    /// The resident code asked for.
    pub resident: &'a str,
    /// The items issued (empty unless provided).
    pub fields: &'a str,
    /// `provided`, `not_found` or `refused`.
    pub result: &'a str,
    /// Why not provided (a stable code), if so.
    pub reason: Option<&'a str>,
}

/// A provision point: the national node or a prefecture node.
#[derive(Debug, Clone)]
pub struct Provider {
    db: Db,
    law: Arc<LawTable>,
    holder: Holder,
    desk: Desk,
    /// The hot standby provision reads go to, if one is given ([`Provider::with_standby`]);
    /// boxed behind an `Arc` to keep the provider (held by value in callers' enums) small.
    standby: Option<Arc<ReadStandby>>,
    /// Per-agency token buckets, shared by the provider's clones (the HTTP shell's and the
    /// node's), in memory: a restart starts every agency with full buckets.
    limiter: Arc<Mutex<Limiter>>,
}

impl Provider {
    /// The provider of the node whose database this is (its claimed role decides the holder:
    /// `national`, or `prefecture` with its code).
    pub async fn open(db: Db, law: Arc<LawTable>) -> Result<Self> {
        let role = store::meta(&db, "role").await?;
        let holder = match role.as_deref() {
            Some("national") => Holder::National,
            Some("prefecture") => Holder::Prefecture(
                store::meta(&db, "code")
                    .await?
                    .unwrap_or_default()
                    .parse()
                    .map_err(|e| Error::corrupt("node code", e))?,
            ),
            other => {
                return Err(Error::Conflict(format!(
                    "provision runs on a national or prefecture node, not on {}",
                    other.unwrap_or("an unclaimed database")
                )));
            }
        };
        let desk = Desk::spawn(db.clone(), holder.source_name(), None);
        let limiter = Arc::new(Mutex::new(Limiter::new(Limits::default())));
        Ok(Self { db, law, holder, desk, standby: None, limiter })
    }

    /// Reads the residents of provisions (single, four-item and bulk) on `standby`, a hot
    /// standby of this node's database checked by [`ReadStandby::connect`], while its replay
    /// lag is within its bound; the log rows are still written, and committed before any
    /// answer leaves, on the primary. Call before cloning the provider.
    pub fn with_standby(mut self, standby: ReadStandby) -> Self {
        self.desk = Desk::spawn(self.db.clone(), self.holder.source_name(), Some(standby.clone()));
        self.standby = Some(Arc::new(standby));
        self
    }

    /// The hot standby provision reads go to, if any.
    pub fn standby(&self) -> Option<&ReadStandby> {
        self.standby.as_deref()
    }

    /// Where provision reads go now: the standby within its lag bound, else the primary.
    async fn reads(&self) -> &Db {
        match &self.standby {
            Some(s) => s.pick().await,
            None => &self.db,
        }
    }

    /// The per-agency rate limits ([`Limits::default`] unless set).
    pub fn limits(&self) -> Limits {
        self.limiter().limits()
    }

    /// Sets the per-agency rate limits (for this provider and its clones); existing buckets
    /// keep their tokens. Limits under which the largest batch could never pass are refused.
    pub fn set_limits(&self, limits: Limits) -> Result<()> {
        let largest = u32::try_from(MAX_BATCH).map_err(|e| Error::invalid("limits", e.to_string()))?;
        limits.validate(largest).map_err(|e| Error::invalid("limits", e))?;
        self.limiter().set_limits(limits);
        Ok(())
    }

    fn limiter(&self) -> std::sync::MutexGuard<'_, Limiter> {
        // The limiter's state is consistent after every call (pure code that does not panic
        // half-way), so a poisoned lock's state is still usable.
        self.limiter.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Charges `agency`'s buckets for a request of `cost` at `now`, or refuses it.
    fn admit(&self, agency: &Agency, cost: Cost, now: i64) -> Result<(), law::Refusal> {
        self.limiter().admit(&agency.id, cost, now).map_err(|l| law::Refusal::RateLimited {
            agency: agency.id.clone(),
            limit: l.limit.as_str(),
            per_second: l.rate.per_second,
            burst: l.rate.burst,
            retry_after: l.retry_after,
        })
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The law table.
    pub fn law(&self) -> &LawTable {
        &self.law
    }

    /// Which server this is.
    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    /// The projected record of a resident.
    pub async fn record(&self, code: &ResidentCode) -> Result<Record> {
        let row = sqlx::query("SELECT record FROM resident WHERE resident_code = $1")
            .bind(code.as_str())
            .fetch_optional(self.db.pool())
            .await?
            .ok_or_else(|| Error::not_found("resident", code))?;
        crate::municipal::decode_record(row.try_get(0)?)
    }

    /// Logs one provision or refusal (group-committed); returns once it is durable.
    async fn log_one(&self, now: i64, row: &LogRow<'_>) -> Result<()> {
        self.desk.submit(Subject::Resolved(None), BTreeSet::new(), LogEntry::new(now, row)).await.map(drop)
    }

    /// Writes one provision-log row of a 広域交付 ([`crate::widearea`]) that the national node
    /// relayed, refused or found nothing for, and returns once it is durable: the relay answers
    /// the requesting municipality only after this. 機能区分 is [`WIDE_AREA_FUNCTION`], the
    /// 提供事務区分 the purpose's law-table reference.
    pub async fn log_wide_area(&self, now: i64, row: &WideAreaLog<'_>) -> Result<()> {
        let class = self.law.get(row.purpose).map_or("-", |p| p.agency_class.table_ref());
        self.log_one(
            now,
            &LogRow {
                function: WIDE_AREA_FUNCTION,
                purpose: row.purpose,
                class,
                destination: row.destination,
                resident: Some(row.resident),
                fields: row.fields,
                result: row.result,
                reason: row.reason,
            },
        )
        .await
    }

    /// Answers a single query if the agency is within its rate limits and the law table
    /// allows it; logs the provision or refusal (every attempt, four-item lookups included).
    pub async fn query(&self, agency: &Agency, q: &Query, now: i64) -> Result<Provided> {
        let (kind, cost) = match q.by {
            Lookup::ResidentCode(_) => (QueryKind::ByResidentCode, Cost::Query),
            Lookup::FourItems(_) => (QueryKind::ByFourItems, Cost::FourItemLookup),
        };
        let function = match kind {
            QueryKind::ByFourItems => "照会(4情報)",
            _ => "照会(住民票コード)",
        };
        let dest = format!("{} {}", agency.id, agency.name);
        let fields = join_fields(&q.fields);
        // The rate limit first: every attempt counts, whatever the law table would answer.
        let checked = self
            .admit(agency, cost, now)
            .and_then(|()| authorize(&self.holder, &self.law, agency, &q.purpose, kind, &q.fields));
        let grant = match checked {
            Ok(g) => g,
            Err(refusal) => {
                let resident = match &q.by {
                    Lookup::ResidentCode(c) => Some(c.as_str()),
                    Lookup::FourItems(_) => None,
                };
                let reason = format!("{}: {refusal}", refusal.code());
                metrics::counter!("jpki_provision_refusals_total", "reason" => refusal.code()).increment(1);
                self.log_one(
                    now,
                    &LogRow {
                        function,
                        purpose: &q.purpose,
                        class: self.law.get(&q.purpose).map_or("-", |p| p.agency_class.table_ref()),
                        destination: &dest,
                        resident,
                        fields: &fields,
                        result: "refused",
                        reason: Some(&reason),
                    },
                )
                .await?;
                return Err(Error::Refused(refusal));
            }
        };
        let (subject, resident) = match &q.by {
            Lookup::ResidentCode(c) => (Subject::Code(c.as_str().to_owned()), Some(c.as_str())),
            Lookup::FourItems(items) => (Subject::Resolved(self.find_by_four_items(items).await?), None),
        };
        // Resolved, logged and committed by the desk: the answer leaves only after its log
        // row is durable (an empty `result` asks the desk to fill it in).
        let row = LogRow {
            function,
            purpose: &q.purpose,
            class: grant.table_ref,
            destination: &dest,
            resident,
            fields: "",
            result: "",
            reason: None,
        };
        // The purpose label only for purposes of the law table (a bounded set), never what a
        // request typed.
        let purpose = self.law.get(&q.purpose).map_or("unknown".to_owned(), |_| q.purpose.clone());
        metrics::counter!("jpki_provisions_total", "purpose" => purpose).increment(1);
        self.desk.submit(subject, grant.fields, LogEntry::new(now, &row)).await
    }

    /// Answers a bulk batch (bulk purposes only, within the agency's rate limits: one query and
    /// one token per resident); one log row per resident, one transaction.
    pub async fn batch(&self, agency: &Agency, q: &BatchQuery, now: i64) -> Result<Vec<Provided>> {
        let dest = format!("{} {}", agency.id, agency.name);
        let fields = join_fields(&q.fields);
        let (dest_ref, fields_ref) = (&dest, &fields);
        let refuse = |reason: String| async move {
            let row = LogRow {
                function: "一括照会",
                purpose: &q.purpose,
                class: self.law.get(&q.purpose).map_or("-", |p| p.agency_class.table_ref()),
                destination: dest_ref,
                resident: None,
                fields: fields_ref,
                result: "refused",
                reason: Some(&reason),
            };
            self.log_one(now, &row).await
        };
        if q.resident_codes.is_empty() || q.resident_codes.len() > MAX_BATCH {
            let why = format!("{} residents, allowed 1–{MAX_BATCH}", q.resident_codes.len());
            refuse(format!("batch_size: {why}")).await?;
            return Err(Error::invalid("resident_codes", why));
        }
        let residents = u64::try_from(q.resident_codes.len()).unwrap_or(u64::MAX);
        let checked = self
            .admit(agency, Cost::Batch(residents), now)
            .and_then(|()| authorize(&self.holder, &self.law, agency, &q.purpose, QueryKind::Bulk, &q.fields));
        let grant = match checked {
            Ok(g) => g,
            Err(refusal) => {
                refuse(format!("{}: {refusal}", refusal.code())).await?;
                return Err(Error::Refused(refusal));
            }
        };
        let given = join_fields(&grant.fields);
        let codes: Vec<&str> = q.resident_codes.iter().map(|c| c.as_str()).collect();
        let from_standby = match &self.standby {
            Some(s) => Some(crate::municipal::load_many(&mut *s.pick().await.pool().acquire().await?, &codes).await?),
            None => None,
        };
        let mut tx = self.db.write().await?;
        let records = match from_standby {
            Some(r) => r,
            None => crate::municipal::load_many(&mut tx, &codes).await?,
        };
        let out: Vec<Provided> = codes.iter().map(|c| shape(records.get(*c), &grant.fields)).collect();
        let rows: Vec<LogEntry> = codes
            .iter()
            .zip(&out)
            .map(|(c, p)| {
                LogEntry::new(
                    now,
                    &LogRow {
                        function: "一括照会",
                        purpose: &q.purpose,
                        class: grant.table_ref,
                        destination: &dest,
                        resident: Some(c),
                        fields: if p.found { &given } else { "" },
                        result: if p.found { "provided" } else { "not_found" },
                        reason: None,
                    },
                )
            })
            .collect();
        insert_logs(&mut tx, &self.holder.source_name(), &rows.iter().collect::<Vec<_>>()).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn find_by_four_items(&self, items: &FourItems) -> Result<Option<Record>> {
        let rows = sqlx::query(
            "SELECT record FROM resident WHERE date_of_birth = $1 AND name = $2 AND address = $3 AND sex = $4 AND status = $5",
        )
        .bind(format_date(items.date_of_birth))
        .bind(items.name.text())
        .bind(items.address.text())
        .bind(i64::from(u8::from(items.sex)))
        .bind(i64::from(u8::from(ResidentStatus::Active)))
        .fetch_all(self.reads().await.pool())
        .await?;
        // Exactly one match or nothing: an ambiguous match provides nothing.
        if rows.len() != 1 {
            return Ok(None);
        }
        rows.into_iter().next().map(|r| crate::municipal::decode_record(r.try_get(0)?)).transpose()
    }
}

/// The law table's decision, then the agency's own registration for the purpose.
fn authorize(
    holder: &Holder,
    law: &LawTable,
    agency: &Agency,
    purpose: &str,
    kind: QueryKind,
    fields: &BTreeSet<Field>,
) -> Result<law::Grant, law::Refusal> {
    // No agency is ever of the 広域交付 class (registration refuses it); should one be stored
    // anyway, its purposes are still the national node's own relay, never an agency's query.
    if !agency.class.for_agencies() {
        return Err(law::Refusal::AgencyNotEntitled {
            purpose: purpose.chars().take(32).collect(),
            requester: agency.class.label(),
            requester_class: agency.class.code(),
            entitled: "the national node's 広域交付 relay",
        });
    }
    let grant = law::authorize(law, agency.class, purpose, kind, fields)?;
    if !holder.serves(agency.class) {
        return Err(law::Refusal::WrongServer { purpose: grant.purpose, served_by: holder.other() });
    }
    if !agency.purposes.contains(purpose) {
        return Err(law::Refusal::PurposeNotRegistered { agency: agency.id.clone(), purpose: grant.purpose });
    }
    Ok(grant)
}

fn join_fields(f: &BTreeSet<Field>) -> String {
    f.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(",")
}

/// Only the granted items of a record; the status only with [`Field::ChangeInfo`] granted.
fn shape(record: Option<&Record>, fields: &BTreeSet<Field>) -> Provided {
    let Some(r) = record else { return Provided::default() };
    let mut items = BTreeMap::new();
    for f in fields {
        let v = match f {
            Field::Name => serde_json::json!({"text": r.items.name.text(), "flags": r.items.name.flags()}),
            Field::Address => serde_json::json!({"text": r.items.address.text(), "flags": r.items.address.flags()}),
            Field::DateOfBirth => serde_json::json!(format_date(r.items.date_of_birth)),
            Field::Sex => serde_json::json!(u8::from(r.items.sex)),
            Field::ResidentCode => serde_json::json!(r.resident_code.as_str()),
            Field::ChangeInfo => {
                serde_json::json!({"status": r.status, "municipality": r.municipality.as_str(), "version": r.version})
            }
        };
        items.insert(f.as_str().to_owned(), v);
    }
    let status = fields.contains(&Field::ChangeInfo).then_some(r.status);
    Provided { found: true, status, items }
}
