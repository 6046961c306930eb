//! The provision log's group-commit writer ([`Desk`]): concurrent provisions queue their jobs,
//! one task resolves and logs a whole group in one transaction, and each answer is released
//! only after that transaction committed.

use std::collections::BTreeSet;

use super::{Provided, Provider, join_fields, shape};
use crate::error::{Error, Result};
use crate::law::Field;
use crate::person::Record;
use crate::standby::ReadStandby;
use crate::store::{self, Db};

/// One provision-log row.
#[derive(Debug, Clone)]
pub(super) struct LogRow<'a> {
    pub(super) function: &'a str,
    pub(super) purpose: &'a str,
    pub(super) class: &'a str,
    pub(super) destination: &'a str,
    pub(super) resident: Option<&'a str>,
    pub(super) fields: &'a str,
    pub(super) result: &'a str,
    pub(super) reason: Option<&'a str>,
}

/// An owned log row with its time, as queued for the group-commit writer.
#[derive(Debug)]
pub(super) struct LogEntry {
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
    pub(super) fn new(at: i64, r: &LogRow<'_>) -> Self {
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
pub(super) enum Subject {
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
pub(super) struct Desk {
    queue: tokio::sync::mpsc::Sender<Job>,
}

impl Desk {
    /// Starts the desk's task: it writes on `db` and reads residents there too, or on
    /// `standby` when one is given (within its lag bound; see [`ReadStandby::pick`]).
    pub(super) fn spawn(db: Db, source: String, standby: Option<ReadStandby>) -> Self {
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
                match Self::commit(&db, standby.as_ref(), &source, &mut jobs).await {
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
    /// With a standby the residents are read there (before the primary's transaction begins)
    /// and only the log rows are written on the primary.
    async fn commit(db: &Db, standby: Option<&ReadStandby>, source: &str, jobs: &mut [Job]) -> Result<Vec<Provided>> {
        let codes: Vec<&str> = jobs
            .iter()
            .filter_map(|j| match &j.subject {
                Subject::Code(c) => Some(c.as_str()),
                Subject::Resolved(_) => None,
            })
            .collect();
        let from_standby = match standby {
            Some(s) if !codes.is_empty() => {
                let mut conn = s.pick().await.pool().acquire().await?;
                Some(crate::municipal::load_many(&mut conn, &codes).await?)
            }
            _ => None,
        };
        let mut tx = db.write().await?;
        let records = match from_standby {
            Some(r) => r,
            None => crate::municipal::load_many(&mut tx, &codes).await?,
        };
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
        insert_logs(&mut tx, source, &jobs.iter().map(|j| &j.row).collect::<Vec<_>>()).await?;
        tx.commit().await?;
        Ok(answers)
    }

    pub(super) async fn submit(&self, subject: Subject, fields: BTreeSet<Field>, row: LogEntry) -> Result<Provided> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let stopped = || Error::corrupt("provision log", "log writer stopped");
        self.queue.send(Job { subject, fields, row, reply }).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?.map_err(|e| Error::corrupt("provision log", e))
    }
}

/// Appends provision-log rows, many per statement.
pub(super) async fn insert_logs(tx: &mut store::Tx, source: &str, rows: &[&LogEntry]) -> Result<()> {
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
                .bind(i64::from(Provider::fiscal_year_of(row.at)?))
                .bind(row.function.clone())
                .bind(row.purpose.clone())
                .bind(row.class.clone())
                .bind(source.to_owned())
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

#[cfg(test)]
mod tests {
    //! The desk on its own, on SQLite and PostgreSQL (`JPKI_TEST_PG_URL`): what it promises is
    //! one log row per provision, each answer the one of its own job, each answer released only
    //! once its row is committed, rows in queue order, and nothing answered when the log cannot
    //! be written.
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

    use std::collections::HashMap;

    use sqlx::Row as _;

    use super::*;
    use crate::ids::{LgCode, ResidentCode};
    use crate::person::{FlaggedText, FourItems, ResidentStatus, Sex};
    use crate::store::testing;

    const SOURCE: &str = "全国サーバ";
    /// 2026-04-01 (fiscal year 2026).
    const NOW: i64 = 1_775_000_000;

    fn code(i: usize) -> ResidentCode {
        let v = 2_000_000_000 + i;
        ResidentCode::from_body(std::array::from_fn(|k| ((v / 10usize.pow(9 - k as u32)) % 10) as u8)).unwrap()
    }

    fn record(i: usize) -> Record {
        Record {
            resident_code: code(i),
            items: FourItems {
                name: FlaggedText::plain("name", &format!("住民　{i:04}")).unwrap(),
                address: FlaggedText::plain("address", &format!("東京都千代田区一丁目{i}番")).unwrap(),
                date_of_birth: time::Date::from_calendar_date(1980, time::Month::May, 5).unwrap(),
                sex: if i.is_multiple_of(2) { Sex::Female } else { Sex::Male },
            },
            status: ResidentStatus::Active,
            municipality: "131016".parse::<LgCode>().unwrap(),
            version: 1,
        }
    }

    /// A database holding residents 0..n (as a replica projects them).
    async fn db_with(t: &testing::TestDb, n: usize) -> Db {
        let db = Db::open(&t.url).await.unwrap();
        let mut tx = db.write().await.unwrap();
        for i in 0..n {
            let r = record(i);
            sqlx::query(
                "INSERT INTO resident (resident_code, municipality, status, version, name, date_of_birth, sex, address, record, last_source, last_seq)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(r.resident_code.as_str().to_owned())
            .bind(r.municipality.as_str().to_owned())
            .bind(i64::from(u8::from(r.status)))
            .bind(1_i64)
            .bind(r.items.name.text().to_owned())
            .bind(crate::notice::format_date(r.items.date_of_birth))
            .bind(i64::from(u8::from(r.items.sex)))
            .bind(r.items.address.text().to_owned())
            .bind(serde_json::to_vec(&r).unwrap())
            .bind("131016".to_owned())
            .bind(i64::try_from(i).unwrap() + 1)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
        db
    }

    /// A provision row awaiting the desk (empty result: the desk fills it in) for `tag`.
    fn lookup(tag: &str) -> LogEntry {
        LogEntry::new(
            NOW,
            &LogRow {
                function: "照会(住民票コード)",
                purpose: "P01",
                class: "別表第1",
                destination: tag,
                resident: None,
                fields: "",
                result: "",
                reason: None,
            },
        )
    }

    /// A refusal row for `tag`.
    fn refusal(tag: &str) -> LogEntry {
        LogEntry::new(
            NOW,
            &LogRow {
                function: "照会(住民票コード)",
                purpose: "P01",
                class: "別表第1",
                destination: tag,
                resident: None,
                fields: "name",
                result: "refused",
                reason: Some("purpose_not_registered: test"),
            },
        )
    }

    fn name_only() -> BTreeSet<Field> {
        [Field::Name, Field::ResidentCode].into_iter().collect()
    }

    /// Rows by destination: (id, resident, fields, result).
    async fn rows(db: &Db) -> HashMap<String, Vec<(i64, Option<String>, String, String)>> {
        let mut out: HashMap<String, Vec<_>> = HashMap::new();
        let all =
            sqlx::query("SELECT id, destination, resident_code, fields, result, source FROM provision_log ORDER BY id")
                .fetch_all(db.pool())
                .await
                .unwrap();
        for r in all {
            assert_eq!(r.try_get::<String, _>(5).unwrap(), SOURCE);
            out.entry(r.try_get(1).unwrap()).or_default().push((
                r.try_get(0).unwrap(),
                r.try_get(2).unwrap(),
                r.try_get(3).unwrap(),
                r.try_get(4).unwrap(),
            ));
        }
        out
    }

    /// Many concurrent provisions (found, not found, refused): each gets its own answer, each
    /// answer arrives only after its row is committed (visible from another connection), and
    /// the log holds exactly one row per provision.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_provisions_get_their_own_answer_after_exactly_one_committed_row() {
        const RESIDENTS: usize = 50;
        const TASKS: usize = 600;
        for t in testing::all().await.unwrap() {
            let db = db_with(&t, RESIDENTS).await;
            let desk = Desk::spawn(db.clone(), SOURCE.to_owned(), None);
            let mut set = tokio::task::JoinSet::new();
            for i in 0..TASKS {
                let (desk, db) = (desk.clone(), db.clone());
                set.spawn(async move {
                    let tag = format!("agency-{i}");
                    // Every third asks for a resident who is not there; every seventh is a refusal.
                    let (subject, row) = match i {
                        i if i.is_multiple_of(7) => (Subject::Resolved(None), refusal(&tag)),
                        i if i.is_multiple_of(3) => {
                            (Subject::Code(code(RESIDENTS + i).as_str().to_owned()), lookup(&tag))
                        }
                        i => (Subject::Code(code(i % RESIDENTS).as_str().to_owned()), lookup(&tag)),
                    };
                    let answer = desk.submit(subject, name_only(), row).await.unwrap();
                    // Released only after the commit: another connection already sees the row.
                    let seen: i64 = sqlx::query("SELECT COUNT(*) FROM provision_log WHERE destination = $1")
                        .bind(tag)
                        .fetch_one(db.pool())
                        .await
                        .unwrap()
                        .try_get(0)
                        .unwrap();
                    assert_eq!(seen, 1, "answer {i} left before its row was committed");
                    (i, answer)
                });
            }
            let mut answers = HashMap::new();
            while let Some(r) = set.join_next().await {
                let (i, a) = r.unwrap();
                answers.insert(i, a);
            }
            let log = rows(&db).await;
            assert_eq!(log.len(), TASKS, "{}: one destination per provision", t.label);
            for i in 0..TASKS {
                let a = &answers[&i];
                let r = &log[&format!("agency-{i}")];
                assert_eq!(r.len(), 1, "{}: provision {i} has {} rows", t.label, r.len());
                let (_, resident, fields, result) = &r[0];
                if i.is_multiple_of(7) {
                    assert_eq!((result.as_str(), a.found), ("refused", false), "{}: {i}", t.label);
                    assert!(resident.is_none());
                } else if i.is_multiple_of(3) {
                    assert_eq!((result.as_str(), fields.as_str(), a.found), ("not_found", "", false));
                    assert!(a.items.is_empty() && resident.is_none(), "{}: {i}", t.label);
                } else {
                    let want = code(i % RESIDENTS);
                    assert_eq!(result, "provided", "{}: {i}", t.label);
                    assert_eq!(fields, "name,resident_code");
                    assert_eq!(resident.as_deref(), Some(want.as_str()));
                    // Its own answer, not a neighbour's in the same group.
                    assert_eq!(a.items["resident_code"], serde_json::json!(want.as_str()), "{}: {i}", t.label);
                    assert_eq!(a.items["name"]["text"], serde_json::json!(format!("住民　{:04}", i % RESIDENTS)));
                    assert!(a.found && a.status.is_none(), "no status without change_info");
                }
            }
            let total: i64 = sqlx::query("SELECT COUNT(*) FROM provision_log")
                .fetch_one(db.pool())
                .await
                .unwrap()
                .try_get(0)
                .unwrap();
            assert_eq!(total, i64::try_from(TASKS).unwrap(), "{}", t.label);
        }
    }

    /// Jobs queued in one burst (one or a few groups) are written in queue order and each
    /// answer is its own job's.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_is_logged_in_queue_order() {
        const JOBS: usize = 300;
        for t in testing::all().await.unwrap() {
            let db = db_with(&t, JOBS).await;
            let desk = Desk::spawn(db.clone(), SOURCE.to_owned(), None);
            let mut waiting = Vec::new();
            for i in 0..JOBS {
                let (reply, answer) = tokio::sync::oneshot::channel();
                let job = Job {
                    subject: Subject::Code(code(JOBS - 1 - i).as_str().to_owned()),
                    fields: name_only(),
                    row: lookup(&format!("burst-{i}")),
                    reply,
                };
                desk.queue.send(job).await.unwrap();
                waiting.push(answer);
            }
            for (i, w) in waiting.into_iter().enumerate() {
                let a = w.await.unwrap().unwrap();
                assert_eq!(a.items["resident_code"], serde_json::json!(code(JOBS - 1 - i).as_str()), "{}", t.label);
            }
            let log = rows(&db).await;
            let ids: Vec<i64> = (0..JOBS).map(|i| log[&format!("burst-{i}")][0].0).collect();
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "{}: rows out of queue order: {ids:?}", t.label);
        }
    }

    /// When the log cannot be written, no answer leaves: every job of the group gets the
    /// error, nothing of the group is stored, and the desk goes on serving later jobs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nothing_is_answered_when_the_log_write_fails() {
        for t in testing::all().await.unwrap() {
            let db = db_with(&t, 3).await;
            let desk = Desk::spawn(db.clone(), SOURCE.to_owned(), None);
            desk.submit(Subject::Code(code(0).as_str().to_owned()), name_only(), lookup("before")).await.unwrap();
            // The log's table renamed away: the group's insert fails inside its transaction.
            sqlx::query("ALTER TABLE provision_log RENAME TO provision_log_away").execute(db.pool()).await.unwrap();
            let mut set = tokio::task::JoinSet::new();
            for i in 0..20 {
                let desk = desk.clone();
                set.spawn(async move {
                    desk.submit(Subject::Code(code(i % 3).as_str().to_owned()), name_only(), lookup(&format!("f-{i}")))
                        .await
                });
            }
            while let Some(r) = set.join_next().await {
                let e = r.unwrap().expect_err("an answer left without its log row");
                assert_eq!(e.kind(), crate::error::ErrorKind::Internal, "{}: {e}", t.label);
            }
            sqlx::query("ALTER TABLE provision_log_away RENAME TO provision_log").execute(db.pool()).await.unwrap();
            let after =
                desk.submit(Subject::Code(code(1).as_str().to_owned()), name_only(), lookup("after")).await.unwrap();
            assert!(after.found, "{}: the desk serves again once the log can be written", t.label);
            let log = rows(&db).await;
            let mut tags: Vec<&str> = log.keys().map(String::as_str).collect();
            tags.sort_unstable();
            assert_eq!(tags, ["after", "before"], "{}: nothing of the failed group stored", t.label);
        }
    }
}
