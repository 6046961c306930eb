//! What the provision log answers: a resident's disclosure report (every provision of and
//! refusal about their record) and the yearly usage statistics per purpose.

use sqlx::Row;
use time::{OffsetDateTime, UtcOffset};

use super::{DisclosureRow, Provider};
use crate::error::{Error, Result};
use crate::ids::ResidentCode;
use crate::law;
use crate::notice::format_date;
use crate::operator::{self, Operator};
use crate::store::u64_from;

fn jst(now: i64) -> Result<OffsetDateTime> {
    let t = OffsetDateTime::from_unix_timestamp(now).map_err(|e| Error::invalid("time", e.to_string()))?;
    Ok(t.to_offset(UtcOffset::from_hms(9, 0, 0).map_err(|e| Error::invalid("time", e.to_string()))?))
}

impl Provider {
    /// [`Provider::disclosure`] for a named operator, who is written to the operator log
    /// (who read whose provision history, when) before the answer is given.
    pub async fn disclosure_by(&self, op: &Operator, code: &ResidentCode, now: i64) -> Result<Vec<DisclosureRow>> {
        let mut tx = self.db.write().await?;
        operator::log(&mut tx, op, "disclosure", code.as_str(), now).await?;
        tx.commit().await?;
        self.disclosure(code).await
    }

    /// [`Provider::statistics`] for a named operator, logged like [`Provider::disclosure_by`].
    pub async fn statistics_by(&self, op: &Operator, years: &[i32], now: i64) -> Result<String> {
        Ok(self.usage_by(op, years, now).await?.to_markdown())
    }

    /// The statistics as a table ([`law::UsageTable`], what the operator console shows) for a
    /// named operator, written to the operator log as [`Provider::statistics_by`] does.
    pub async fn usage_by(&self, op: &Operator, years: &[i32], now: i64) -> Result<law::UsageTable> {
        let mut tx = self.db.write().await?;
        let years_text = years.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
        operator::log(&mut tx, op, "statistics", &years_text, now).await?;
        tx.commit().await?;
        self.usage(years).await
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
        Ok(self.usage(years).await?.to_markdown())
    }

    /// Provisions per purpose per fiscal year ([`law::usage_table`]).
    async fn usage(&self, years: &[i32]) -> Result<law::UsageTable> {
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
        Ok(law::usage_table(&self.law, &counts, years))
    }

    /// Fiscal year of a unix time (JST, April to March).
    pub fn fiscal_year_of(now: i64) -> Result<i32> {
        let t = jst(now)?;
        Ok(law::fiscal_year(t.year(), u8::from(t.month())))
    }
}
