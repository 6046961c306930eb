//! The national node (全国サーバ): resident-code pools, the change-information feed,
//! agencies and law-table-bound provision of identity information, the provision log with
//! disclosure and yearly statistics, and the rebuild of a wiped node from the prefectures.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;
use time::{OffsetDateTime, UtcOffset};

use crate::error::{Error, Result};
use crate::ids::{LgCode, ResidentCode};
use crate::law::{self, AgencyClass, Field, LawTable, QueryKind};
use crate::notice::{NoticeKind, format_date};
use crate::operator::{self, Operator, Role};
use crate::person::{FourItems, Record, ResidentStatus};
use crate::store::{self, Db, Head, i64_from, u64_from};

/// Largest pool one request may take.
pub const MAX_POOL: u32 = 100_000;
/// Largest bulk batch (the pension liveness check sends many of these).
pub const MAX_BATCH: usize = 10_000;
/// Provider name written to the provision log (提供元).
pub const SOURCE_NAME: &str = "全国サーバ";

/// One entry of the change-information feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// An agency as authenticated.
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lookup {
    /// By 住民票コード.
    ResidentCode(ResidentCode),
    /// By an exact match of all four items.
    FourItems(FourItems),
}

/// A single provision request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchQuery {
    /// Purpose code from the law table.
    pub purpose: String,
    /// Items wanted.
    pub fields: BTreeSet<Field>,
    /// Residents, at most [`MAX_BATCH`].
    pub resident_codes: Vec<ResidentCode>,
}

/// What a resident's provided data looks like.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provided {
    /// Whether a record matched.
    pub found: bool,
    /// Register status (`active`, `moved_out`, `deceased`, …) when found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ResidentStatus>,
    /// The granted items, by wire name.
    pub items: BTreeMap<String, serde_json::Value>,
}

/// One row of a resident's disclosure report (the fields Gifu and Osaka disclose).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// The national node.
#[derive(Debug, Clone)]
pub struct National {
    db: Db,
    law: Arc<LawTable>,
    desk: Desk,
}

fn jst(now: i64) -> Result<OffsetDateTime> {
    let t = OffsetDateTime::from_unix_timestamp(now).map_err(|e| Error::invalid("time", e.to_string()))?;
    Ok(t.to_offset(UtcOffset::from_hms(9, 0, 0).map_err(|e| Error::invalid("time", e.to_string()))?))
}

fn secret_hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// One provision-log row.
#[derive(Debug, Clone)]
struct LogRow<'a> {
    function: &'a str,
    purpose: &'a str,
    class: &'a str,
    destination: &'a str,
    resident: Option<&'a str>,
    fields: &'a str,
    result: &'a str,
    reason: Option<&'a str>,
}

/// An owned log row with its time, as queued for the group-commit writer.
#[derive(Debug)]
struct LogEntry {
    at: i64,
    function: String,
    purpose: String,
    class: String,
    destination: String,
    resident: Option<String>,
    fields: String,
    result: String,
    reason: Option<String>,
}

impl LogEntry {
    fn new(at: i64, r: &LogRow<'_>) -> Self {
        Self {
            at,
            function: r.function.to_owned(),
            purpose: r.purpose.to_owned(),
            class: r.class.to_owned(),
            destination: r.destination.to_owned(),
            resident: r.resident.map(str::to_owned),
            fields: r.fields.to_owned(),
            result: r.result.to_owned(),
            reason: r.reason.map(str::to_owned),
        }
    }
}

/// What a queued provision resolves before its log row is written.
#[derive(Debug)]
enum Subject {
    /// Nothing to look up (a refusal, or a record found by the caller).
    Resolved(Option<Record>),
    /// Read the record of this resident code inside the group commit.
    Code(String),
}

/// A provision (or refusal) queued for the group commit.
#[derive(Debug)]
struct Job {
    subject: Subject,
    /// Fields granted; empty for a refusal.
    fields: BTreeSet<Field>,
    /// The log row; for a lookup (empty `result`) its resident, fields and result are filled in.
    row: LogEntry,
    reply: tokio::sync::oneshot::Sender<Result<Provided, String>>,
}

/// Most jobs one group commit takes.
const GROUP_COMMIT_MAX: usize = 2_000;

/// Group commit of single provisions: concurrent queries queue their jobs; one task reads
/// every queued resident code with one statement, writes every log row in one transaction,
/// and releases each answer only after that transaction committed — so nothing is ever
/// provided unlogged, and one read and one fsync serve many queries.
#[derive(Debug, Clone)]
struct Desk {
    queue: tokio::sync::mpsc::Sender<Job>,
}

impl Desk {
    fn spawn(db: Db) -> Self {
        let (queue, mut rx) = tokio::sync::mpsc::channel::<Job>(GROUP_COMMIT_MAX * 4);
        tokio::spawn(async move {
            let mut jobs = Vec::with_capacity(GROUP_COMMIT_MAX);
            while let Some(first) = rx.recv().await {
                jobs.push(first);
                while jobs.len() < GROUP_COMMIT_MAX {
                    match rx.try_recv() {
                        Ok(next) => jobs.push(next),
                        Err(_) => break,
                    }
                }
                match Self::commit(&db, &mut jobs).await {
                    Ok(answers) => {
                        for (job, answer) in jobs.drain(..).zip(answers) {
                            // A dropped receiver means the request went away: nothing to answer.
                            let _ = job.reply.send(Ok(answer));
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, jobs = jobs.len(), "provision log write failed; answers withheld");
                        for job in jobs.drain(..) {
                            let _ = job.reply.send(Err(e.to_string()));
                        }
                    }
                }
            }
        });
        Self { queue }
    }

    /// Resolves, logs and commits one group; returns the answers in job order.
    async fn commit(db: &Db, jobs: &mut [Job]) -> Result<Vec<Provided>> {
        let mut tx = db.write().await?;
        let codes: Vec<&str> = jobs
            .iter()
            .filter_map(|j| match &j.subject {
                Subject::Code(c) => Some(c.as_str()),
                Subject::Resolved(_) => None,
            })
            .collect();
        let records = crate::municipal::load_many(&mut tx, &codes).await?;
        let mut answers = Vec::with_capacity(jobs.len());
        for job in jobs.iter_mut() {
            if !job.row.result.is_empty() {
                answers.push(Provided::default());
                continue;
            }
            let record = match &job.subject {
                Subject::Code(c) => records.get(c.as_str()),
                Subject::Resolved(r) => r.as_ref(),
            };
            let provided = shape(record, &job.fields);
            if let Some(r) = record {
                job.row.resident = Some(r.resident_code.as_str().to_owned());
            }
            job.row.fields = if provided.found { join_fields(&job.fields) } else { String::new() };
            job.row.result = if provided.found { "provided" } else { "not_found" }.to_owned();
            answers.push(provided);
        }
        insert_logs(&mut tx, &jobs.iter().map(|j| &j.row).collect::<Vec<_>>()).await?;
        tx.commit().await?;
        Ok(answers)
    }

    async fn submit(&self, subject: Subject, fields: BTreeSet<Field>, row: LogEntry) -> Result<Provided> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let stopped = || Error::corrupt("provision log", "log writer stopped");
        self.queue.send(Job { subject, fields, row, reply }).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?.map_err(|e| Error::corrupt("provision log", e))
    }
}

impl National {
    /// Opens the national node on `db` with the law table `law`.
    pub async fn open(db: Db, law: Arc<LawTable>) -> Result<Self> {
        store::claim_identity(&db, "national", "national").await?;
        let desk = Desk::spawn(db.clone());
        Ok(Self { db, law, desk })
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

    /// The projected record of a resident.
    pub async fn record(&self, code: &ResidentCode) -> Result<Record> {
        let row = sqlx::query("SELECT record FROM resident WHERE resident_code = $1")
            .bind(code.as_str())
            .fetch_optional(self.db.pool())
            .await?
            .ok_or_else(|| Error::not_found("resident", code))?;
        crate::municipal::decode_record(row.try_get(0)?)
    }

    /// Registers an agency of `class`; returns its API token `id:secret` (shown once).
    pub async fn register_agency(
        &self,
        op: &Operator,
        id: &str,
        name: &str,
        class: AgencyClass,
        purposes: &[&str],
        now: i64,
    ) -> Result<String> {
        op.require(Role::NationalOperator, "register agencies")?;
        if purposes.is_empty() {
            return Err(Error::invalid("purposes", "an agency needs at least one purpose".into()));
        }
        for p in purposes {
            match self.law.get(p) {
                Some(x) if x.agency_class == class => {}
                Some(x) => {
                    return Err(Error::invalid(
                        "purposes",
                        format!(
                            "{p} is a purpose of {} ({}), not of {}",
                            x.agency_class.label(),
                            x.agency_class.code(),
                            class.code()
                        ),
                    ));
                }
                None => return Err(Error::invalid("purposes", format!("{p} is not in the law table"))),
            }
        }
        if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(Error::invalid("agency id", "1–64 of A–Z a–z 0–9 - _".into()));
        }
        let secret = hex::encode(rand::random::<[u8; 24]>());
        let mut tx = self.db.write().await?;
        let r = sqlx::query("INSERT INTO agency (id, name, class, secret_sha256) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(name)
            .bind(class.code())
            .bind(secret_hash(&secret))
            .execute(&mut *tx)
            .await;
        if let Err(sqlx::Error::Database(e)) = &r
            && e.is_unique_violation()
        {
            return Err(Error::Conflict(format!("agency {id} exists")));
        }
        r?;
        for p in purposes {
            sqlx::query("INSERT INTO agency_purpose (agency, purpose) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(id)
                .bind(*p)
                .execute(&mut *tx)
                .await?;
        }
        operator::log(
            &mut tx,
            op,
            "register_agency",
            &format!("{id} ({}) for {}", class.code(), purposes.join(",")),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(format!("{id}:{secret}"))
    }

    /// Authenticates an agency token `id:secret`; a failure is logged as a refusal.
    pub async fn authenticate(&self, token: &str, now: i64) -> Result<Agency> {
        let (id, secret) = token.split_once(':').unwrap_or((token, ""));
        let row = sqlx::query("SELECT name, class, secret_sha256 FROM agency WHERE id = $1")
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?;
        if let Some(r) = row {
            let stored: Vec<u8> = r.try_get(2)?;
            if !secret.is_empty() && stored == secret_hash(secret) {
                let class: String = r.try_get(1)?;
                let purposes = sqlx::query("SELECT purpose FROM agency_purpose WHERE agency = $1")
                    .bind(id)
                    .fetch_all(self.db.pool())
                    .await?
                    .into_iter()
                    .map(|r| r.try_get::<String, _>(0))
                    .collect::<Result<_, _>>()?;
                return Ok(Agency {
                    id: id.to_owned(),
                    name: r.try_get(0)?,
                    class: class.parse().map_err(|e| Error::corrupt("agency", e))?,
                    purposes,
                });
            }
        }
        let dest = format!("unauthenticated:{}", id.chars().take(64).collect::<String>());
        self.log_one(
            now,
            &LogRow {
                function: "認証",
                purpose: "-",
                class: "-",
                destination: &dest,
                resident: None,
                fields: "",
                result: "refused",
                reason: Some("authentication_failed"),
            },
        )
        .await?;
        Err(Error::Unauthenticated)
    }

    /// Logs one provision or refusal (group-committed); returns once it is durable.
    async fn log_one(&self, now: i64, row: &LogRow<'_>) -> Result<()> {
        self.desk.submit(Subject::Resolved(None), BTreeSet::new(), LogEntry::new(now, row)).await.map(drop)
    }

    /// Answers a single query if the law table allows it; logs the provision or refusal.
    pub async fn query(&self, agency: &Agency, q: &Query, now: i64) -> Result<Provided> {
        let kind = match q.by {
            Lookup::ResidentCode(_) => QueryKind::ByResidentCode,
            Lookup::FourItems(_) => QueryKind::ByFourItems,
        };
        let function = match kind {
            QueryKind::ByFourItems => "照会(4情報)",
            _ => "照会(住民票コード)",
        };
        let dest = format!("{} {}", agency.id, agency.name);
        let fields = join_fields(&q.fields);
        let grant = match authorize(&self.law, agency, &q.purpose, kind, &q.fields) {
            Ok(g) => g,
            Err(refusal) => {
                let resident = match &q.by {
                    Lookup::ResidentCode(c) => Some(c.as_str()),
                    Lookup::FourItems(_) => None,
                };
                let reason = format!("{}: {refusal}", refusal.code());
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
        self.desk.submit(subject, grant.fields, LogEntry::new(now, &row)).await
    }

    /// Answers a bulk batch (bulk purposes only); one log row per resident, one transaction.
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
        let grant = match authorize(&self.law, agency, &q.purpose, QueryKind::Bulk, &q.fields) {
            Ok(g) => g,
            Err(refusal) => {
                refuse(format!("{}: {refusal}", refusal.code())).await?;
                return Err(Error::Refused(refusal));
            }
        };
        let given = join_fields(&grant.fields);
        let codes: Vec<&str> = q.resident_codes.iter().map(|c| c.as_str()).collect();
        let mut tx = self.db.write().await?;
        let records = crate::municipal::load_many(&mut tx, &codes).await?;
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
        insert_logs(&mut tx, &rows.iter().collect::<Vec<_>>()).await?;
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
        .fetch_all(self.db.pool())
        .await?;
        // Exactly one match or nothing: an ambiguous match provides nothing.
        if rows.len() != 1 {
            return Ok(None);
        }
        rows.into_iter().next().map(|r| crate::municipal::decode_record(r.try_get(0)?)).transpose()
    }

    /// A resident's disclosure report: every provision of and refusal about their record.
    pub async fn disclosure(&self, code: &ResidentCode) -> Result<Vec<DisclosureRow>> {
        let rows = sqlx::query(
            "SELECT at, function, purpose, provision_class, source, destination, fields, result FROM provision_log
             WHERE resident_code = $1 ORDER BY id",
        )
        .bind(code.as_str())
        .fetch_all(self.db.pool())
        .await?;
        rows.into_iter()
            .map(|r| {
                let purpose: String = r.try_get(2)?;
                let label = self.law.get(&purpose).map(|p| format!("{purpose} {}", p.description)).unwrap_or(purpose);
                Ok(DisclosureRow {
                    date: format_date(jst(r.try_get(0)?)?.date()),
                    function: r.try_get(1)?,
                    purpose: label,
                    provision_class: r.try_get(3)?,
                    source: r.try_get(4)?,
                    destination: r.try_get(5)?,
                    fields: r.try_get(6)?,
                    result: r.try_get(7)?,
                })
            })
            .collect()
    }

    /// Provisions per purpose per fiscal year, rendered like the prefecture usage tables.
    pub async fn statistics(&self, years: &[i32]) -> Result<String> {
        let rows = sqlx::query(
            "SELECT purpose, fiscal_year, COUNT(*) FROM provision_log WHERE result = 'provided'
             GROUP BY purpose, fiscal_year ORDER BY purpose, fiscal_year",
        )
        .fetch_all(self.db.pool())
        .await?;
        let mut counts = Vec::new();
        for r in rows {
            let fy: i64 = r.try_get(1)?;
            let n: i64 = r.try_get(2)?;
            counts.push((
                r.try_get::<String, _>(0)?,
                i32::try_from(fy).map_err(|e| Error::corrupt("fiscal year", e))?,
                u64_from(n, "count")?,
            ));
        }
        Ok(law::render_usage_table(&self.law, &counts, years))
    }

    /// Fiscal year of a unix time (JST, April to March).
    pub fn fiscal_year_of(now: i64) -> Result<i32> {
        let t = jst(now)?;
        Ok(law::fiscal_year(t.year(), u8::from(t.month())))
    }
}

/// The law table's decision, then the agency's own registration for the purpose.
fn authorize(
    law: &LawTable,
    agency: &Agency,
    purpose: &str,
    kind: QueryKind,
    fields: &BTreeSet<Field>,
) -> Result<law::Grant, law::Refusal> {
    let grant = law::authorize(law, agency.class, purpose, kind, fields)?;
    if !agency.purposes.contains(purpose) {
        return Err(law::Refusal::PurposeNotRegistered { agency: agency.id.clone(), purpose: grant.purpose });
    }
    Ok(grant)
}

fn join_fields(f: &BTreeSet<Field>) -> String {
    f.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(",")
}

/// Only the granted items of a record.
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
    Provided { found: true, status: Some(r.status), items }
}

/// Appends provision-log rows, many per statement.
async fn insert_logs(tx: &mut store::Tx, rows: &[&LogEntry]) -> Result<()> {
    for chunk in rows.chunks(store::ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO provision_log (at, fiscal_year, function, purpose, provision_class, source, destination, resident_code, fields, result, reason) VALUES {}",
            store::values_clause(chunk.len(), 11)
        );
        // Built from placeholders only; every value is bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in chunk {
            q = q
                .bind(row.at)
                .bind(i64::from(National::fiscal_year_of(row.at)?))
                .bind(row.function.clone())
                .bind(row.purpose.clone())
                .bind(row.class.clone())
                .bind(SOURCE_NAME)
                .bind(row.destination.clone())
                .bind(row.resident.clone())
                .bind(row.fields.clone())
                .bind(row.result.clone())
                .bind(row.reason.clone());
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
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
pub async fn rebuild(db: &Db, prefectures: &[crate::client::Peer]) -> Result<Vec<HeadCheck>> {
    let held: i64 = sqlx::query("SELECT COUNT(*) FROM change_notice").fetch_one(db.pool()).await?.try_get(0)?;
    if held != 0 {
        return Err(Error::Conflict(format!("the national database holds {held} notices: rebuild needs a wiped node")));
    }
    let mut peers = Vec::new();
    for p in prefectures {
        let h = p.heads().await?;
        peers.push((p.clone(), Some(h.code)));
    }
    crate::replica::pull_until_quiet(db, crate::replica::Tier::National, &peers, 64).await?;
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
