//! TEMPORARY stub while law.rs is written.
#![allow(missing_docs, dead_code)]
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Name,
    Address,
    DateOfBirth,
    Sex,
    ResidentCode,
    ChangeInfo,
}
impl Field {
    pub fn as_str(self) -> &'static str {
        "x"
    }
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgencyClass {
    National,
    OwnPrefectureGovernor,
}
impl AgencyClass {
    pub fn code(self) -> &'static str {
        "x"
    }
    pub fn label(self) -> &'static str {
        "x"
    }
}
impl std::str::FromStr for AgencyClass {
    type Err = String;
    fn from_str(_: &str) -> Result<Self, String> {
        Ok(Self::National)
    }
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    ByResidentCode,
    ByFourItems,
    Bulk,
}
#[derive(Debug)]
pub struct LawTable;
#[derive(Debug)]
pub struct Purpose {
    pub code: String,
    pub description: String,
    pub bulk: bool,
    pub agency_class: AgencyClass,
}
impl LawTable {
    pub fn seed() -> Result<Self, std::io::Error> {
        Ok(Self)
    }
    pub fn parse(_s: &str) -> Result<Self, std::io::Error> {
        Ok(Self)
    }
    pub fn purposes(&self) -> std::slice::Iter<'_, Purpose> {
        [].iter()
    }
    pub fn get(&self, _c: &str) -> Option<&Purpose> {
        None
    }
}
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("x")]
pub struct Refusal;
impl Refusal {
    pub fn code(&self) -> &'static str {
        "x"
    }
}
#[derive(Debug)]
pub struct Grant {
    pub purpose: String,
    pub table_ref: &'static str,
    pub fields: BTreeSet<Field>,
}
pub fn authorize(
    _t: &LawTable,
    _c: AgencyClass,
    _p: &str,
    _k: QueryKind,
    _f: &BTreeSet<Field>,
) -> Result<Grant, Refusal> {
    Err(Refusal)
}
pub fn fiscal_year(y: i32, _m: u8) -> i32 {
    y
}
pub fn render_usage_table(_t: &LawTable, _c: &[(String, i32, u64)], _y: &[i32]) -> String {
    String::new()
}
