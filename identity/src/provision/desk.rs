//! The provision log's group-commit writer ([`Desk`]): concurrent provisions queue their jobs,
//! one task resolves and logs a whole group in one transaction, and each answer is released
//! only after that transaction committed.

use std::collections::BTreeSet;

use super::{Provided, Provider, join_fields, shape};
use crate::error::{Error, Result};
use crate::law::Field;
use crate::person::Record;
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
    pub(super) fn spawn(db: Db, source: String) -> Self {
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
                match Self::commit(&db, &source, &mut jobs).await {
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
    async fn commit(db: &Db, source: &str, jobs: &mut [Job]) -> Result<Vec<Provided>> {
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

