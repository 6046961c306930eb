//! Operators: every write carries an operator id and role, is checked against the role,
//! and is written to `operator_log` in the same transaction as the change.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::Tx;

/// What an operator is allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Municipal window clerk: records births, moves, deaths, corrections.
    MunicipalClerk,
    /// Prefecture server operator: replication, audits.
    PrefectureOperator,
    /// National server operator: pools, agencies, rebuilds, reports.
    NationalOperator,
    /// A convenience-store kiosk (`kiosk:…`): issues residence certificates to the resident
    /// whose card it presents, and nothing else (docs/kiosk.md).
    Kiosk,
    /// A window of another municipality with its clerk, relayed by the national node
    /// (広域交付): the copies of this register's residence records issued for it
    /// (docs/widearea.md). It never changes the register.
    WideAreaWindow,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MunicipalClerk => "municipal_clerk",
            Self::PrefectureOperator => "prefecture_operator",
            Self::NationalOperator => "national_operator",
            Self::Kiosk => "kiosk",
            Self::WideAreaWindow => "wide_area_window",
        })
    }
}

/// The person behind a write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operator {
    /// Operator id (操作者識別).
    pub id: String,
    /// Their role.
    pub role: Role,
}

impl Operator {
    /// A new operator value; the id must be 1–64 printable characters.
    pub fn new(id: &str, role: Role) -> Result<Self> {
        if id.is_empty() || id.len() > 64 || id.chars().any(char::is_control) {
            return Err(Error::invalid("operator", "id must be 1–64 printable characters".into()));
        }
        Ok(Self { id: id.to_owned(), role })
    }

    /// The clerk `clerk` working at window `window` (both authenticated: the window by its
    /// mutual-TLS certificate, the clerk by the signature on the request), as the operator log
    /// and the change notices name them: `window:131016:W01 clerk:131016:C0001`, role
    /// [`Role::MunicipalClerk`].
    pub fn at_window(window: &crate::party::Party, clerk: &crate::party::Party) -> Result<Self> {
        let short = |p: &crate::party::Party| p.uri().trim_start_matches(crate::party::URI_PREFIX).to_owned();
        Self::new(&format!("{} {}", short(window), short(clerk)), Role::MunicipalClerk)
    }

    /// Refuses unless the operator has `role`.
    pub fn require(&self, role: Role, action: &'static str) -> Result<()> {
        if self.role == role {
            Ok(())
        } else {
            Err(Error::Forbidden { operator: self.id.clone(), role: self.role.to_string(), action })
        }
    }
}

/// Appends an operator-log row inside the caller's transaction.
pub(crate) async fn log(tx: &mut Tx, op: &Operator, action: &str, subject: &str, now: i64) -> Result<()> {
    sqlx::query("INSERT INTO operator_log (at, operator, role, action, subject) VALUES ($1, $2, $3, $4, $5)")
        .bind(now)
        .bind(op.id.as_str())
        .bind(op.role.to_string())
        .bind(action)
        .bind(subject)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
