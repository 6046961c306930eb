//! The law table as data (agency class × purpose × permitted fields × bulk), the pure
//! authorization decision for a provision request, fiscal years, and the yearly usage table.
//!
//! 住民基本台帳法 art. 30-9 ff.: a body may obtain 本人確認情報 only for a 事務 the law tables
//! (別表第1–第6) or a prefectural ordinance list against it. **There is deliberately no query
//! kind for free search**: only by resident code, by an exact match of the four items, and in
//! bulk for purposes the table marks bulk.

#![forbid(clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An item of 本人確認情報 that may be provided. Wire names are forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// 氏名 (with substitute-character flags).
    Name,
    /// 住所 (with substitute-character flags).
    Address,
    /// 生年月日.
    DateOfBirth,
    /// 性別.
    Sex,
    /// 住民票コード.
    ResidentCode,
    /// Change information: status, owning municipality, record version.
    ChangeInfo,
}

impl Field {
    /// Every field.
    pub const ALL: [Field; 6] =
        [Self::Name, Self::Address, Self::DateOfBirth, Self::Sex, Self::ResidentCode, Self::ChangeInfo];

    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Address => "address",
            Self::DateOfBirth => "date_of_birth",
            Self::Sex => "sex",
            Self::ResidentCode => "resident_code",
            Self::ChangeInfo => "change_info",
        }
    }
}

impl FromStr for Field {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|f| f.as_str() == s).ok_or_else(|| format!("unknown field {s:?}"))
    }
}

/// Who may receive identity information, by the table that lists their 事務. Codes are forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AgencyClass {
    /// 別表第1: national bodies (国の機関等), served by the J-LIS server.
    NationalBody,
    /// 別表第2: municipal executive bodies of the same prefecture.
    OwnPrefectureMunicipality,
    /// 別表第3: executive bodies of other prefectures.
    OtherPrefectureBody,
    /// 別表第4: municipal executive bodies of other prefectures.
    OtherPrefectureMunicipality,
    /// 別表第5: the prefecture's own governor (prefecture server).
    OwnPrefectureGovernor,
    /// 別表第6: the prefecture's executive bodies other than the governor.
    OwnPrefectureOtherBody,
    /// Ordinance table 1: municipal bodies within the prefecture (条例別表1).
    OrdinanceMunicipality,
    /// Ordinance table 2: the governor (条例別表2).
    OrdinanceGovernor,
    /// Ordinance table 3: other executive bodies (条例別表3).
    OrdinanceOtherBody,
    /// 住民基本台帳法 第12条の4 (広域交付): the mayor of a municipality other than the
    /// resident's issues a copy of the residence record, the national node relaying. Not an
    /// agency's class: no agency is ever registered for it (docs/widearea.md).
    WideAreaIssue,
}

impl AgencyClass {
    /// Every class.
    pub const ALL: [AgencyClass; 10] = [
        Self::NationalBody,
        Self::OwnPrefectureMunicipality,
        Self::OtherPrefectureBody,
        Self::OtherPrefectureMunicipality,
        Self::OwnPrefectureGovernor,
        Self::OwnPrefectureOtherBody,
        Self::OrdinanceMunicipality,
        Self::OrdinanceGovernor,
        Self::OrdinanceOtherBody,
        Self::WideAreaIssue,
    ];

    /// Stable code used in the table file and the database.
    pub fn code(self) -> &'static str {
        match self {
            Self::NationalBody => "B1",
            Self::OwnPrefectureMunicipality => "B2",
            Self::OtherPrefectureBody => "B3",
            Self::OtherPrefectureMunicipality => "B4",
            Self::OwnPrefectureGovernor => "B5",
            Self::OwnPrefectureOtherBody => "B6",
            Self::OrdinanceMunicipality => "O1",
            Self::OrdinanceGovernor => "O2",
            Self::OrdinanceOtherBody => "O3",
            Self::WideAreaIssue => "W1",
        }
    }

    /// The law-table reference (提供事務区分).
    pub fn table_ref(self) -> &'static str {
        match self {
            Self::NationalBody => "法別表第1",
            Self::OwnPrefectureMunicipality => "法別表第2",
            Self::OtherPrefectureBody => "法別表第3",
            Self::OtherPrefectureMunicipality => "法別表第4",
            Self::OwnPrefectureGovernor => "法別表第5",
            Self::OwnPrefectureOtherBody => "法別表第6",
            Self::OrdinanceMunicipality => "条例別表1",
            Self::OrdinanceGovernor => "条例別表2",
            Self::OrdinanceOtherBody => "条例別表3",
            Self::WideAreaIssue => "法第12条の4",
        }
    }

    /// Japanese label of the receiving bodies.
    pub fn label(self) -> &'static str {
        match self {
            Self::NationalBody => "国の機関等",
            Self::OwnPrefectureMunicipality => "自都道府県の市町村の執行機関",
            Self::OtherPrefectureBody => "他都道府県の執行機関",
            Self::OtherPrefectureMunicipality => "他都道府県の市町村の執行機関",
            Self::OwnPrefectureGovernor => "自都道府県の知事",
            Self::OwnPrefectureOtherBody => "自都道府県の知事以外の執行機関",
            Self::OrdinanceMunicipality => "道内市町村の執行機関(条例)",
            Self::OrdinanceGovernor => "知事(条例)",
            Self::OrdinanceOtherBody => "知事以外の執行機関(条例)",
            Self::WideAreaIssue => "住所地以外の市町村長(広域交付)",
        }
    }

    /// Whether the data is held for this class by the national (J-LIS) server; otherwise by
    /// the prefecture server.
    pub fn held_nationally(self) -> bool {
        matches!(
            self,
            Self::NationalBody
                | Self::OwnPrefectureMunicipality
                | Self::OtherPrefectureBody
                | Self::OtherPrefectureMunicipality
                | Self::WideAreaIssue
        )
    }

    /// Whether agencies may be registered for this class's purposes ([`Self::WideAreaIssue`]
    /// is the national node's own relay between municipalities, never an agency's query).
    pub fn for_agencies(self) -> bool {
        self != Self::WideAreaIssue
    }
}

impl FromStr for AgencyClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|c| c.code() == s).ok_or_else(|| format!("unknown agency class {s:?}"))
    }
}

/// One lawful purpose (利用事務).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purpose {
    /// Stable code: `<class code>-<three digits>`, numbered in table order, never reused.
    pub code: String,
    /// The class of bodies that may use it.
    pub agency_class: AgencyClass,
    /// The 事務 as the law or the usage table words it.
    pub description: String,
    /// Fields that may be provided.
    pub fields: BTreeSet<Field>,
    /// Whether bulk (batch) queries are lawful for it.
    pub bulk: bool,
}

/// A malformed law-table file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LawError {
    /// A row breaks the format.
    #[error("law table line {line}, column {column}: {reason}")]
    Row {
        /// 1-based line number.
        line: usize,
        /// Column name.
        column: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The table has no purposes.
    #[error("law table has no purposes")]
    Empty,
}

/// The law table.
#[derive(Debug, Clone)]
pub struct LawTable {
    purposes: Vec<Purpose>,
    by_code: HashMap<String, usize>,
}

const SEED: &str = include_str!("../seed/law_table.tsv");
const HEADER: [&str; 5] = ["code", "class", "fields", "bulk", "purpose"];

impl LawTable {
    /// The built-in table (`identity/seed/law_table.tsv`).
    pub fn seed() -> Result<Self, LawError> {
        Self::parse(SEED)
    }

    /// Parses the TSV format: `#` comments, one header line, then
    /// `code \t class \t fields(comma-separated) \t yes|no \t 事務`.
    pub fn parse(text: &str) -> Result<Self, LawError> {
        let mut purposes = Vec::new();
        let mut by_code = HashMap::new();
        let mut header_seen = false;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let row = raw.trim_end_matches('\r');
            if row.trim().is_empty() || row.starts_with('#') {
                continue;
            }
            let cols: Vec<&str> = row.split('\t').collect();
            let err = |column: &'static str, reason: String| LawError::Row { line, column, reason };
            if cols.len() != HEADER.len() {
                return Err(err("row", format!("{} columns, expected {}", cols.len(), HEADER.len())));
            }
            if !header_seen {
                if cols != HEADER {
                    return Err(err("row", format!("header must be {}", HEADER.join(" "))));
                }
                header_seen = true;
                continue;
            }
            let code = cols[0].trim();
            if code.is_empty() || code.len() > 16 || !code.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(err("code", format!("{code:?} is not 1–16 of A–Z 0–9 -")));
            }
            let agency_class: AgencyClass = cols[1].trim().parse().map_err(|e| err("class", e))?;
            let mut fields = BTreeSet::new();
            for f in cols[2].split(',').map(str::trim).filter(|f| !f.is_empty()) {
                fields.insert(f.parse::<Field>().map_err(|e| err("fields", e))?);
            }
            if fields.is_empty() {
                return Err(err("fields", "no fields".into()));
            }
            let bulk = match cols[3].trim() {
                "yes" => true,
                "no" => false,
                other => return Err(err("bulk", format!("{other:?} is not yes or no"))),
            };
            let description = cols[4].trim();
            if description.is_empty() {
                return Err(err("purpose", "empty".into()));
            }
            if by_code.insert(code.to_owned(), purposes.len()).is_some() {
                return Err(err("code", format!("duplicate code {code}")));
            }
            purposes.push(Purpose {
                code: code.to_owned(),
                agency_class,
                description: description.to_owned(),
                fields,
                bulk,
            });
        }
        if purposes.is_empty() {
            return Err(LawError::Empty);
        }
        Ok(Self { purposes, by_code })
    }

    /// A purpose by code.
    pub fn get(&self, code: &str) -> Option<&Purpose> {
        self.by_code.get(code).map(|i| &self.purposes[*i])
    }

    /// All purposes in table order.
    pub fn purposes(&self) -> impl Iterator<Item = &Purpose> {
        self.purposes.iter()
    }

    /// Number of purposes.
    pub fn len(&self) -> usize {
        self.purposes.len()
    }

    /// Never true for a parsed table.
    pub fn is_empty(&self) -> bool {
        self.purposes.is_empty()
    }
}

/// How the requester identifies the resident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    /// One resident by 住民票コード.
    ByResidentCode,
    /// One resident by an exact match of all four items.
    ByFourItems,
    /// Many residents by code in one batch.
    Bulk,
}

/// Why a request is refused. Codes are stable and appear in the provision log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// No such purpose in the law table.
    #[error("purpose {purpose:?} is not in the law table")]
    UnknownPurpose {
        /// The code asked for.
        purpose: String,
    },
    /// The requester's class may not use this purpose.
    #[error("{requester} ({requester_class}) may not use purpose {purpose}, which the law lists for {entitled}")]
    AgencyNotEntitled {
        /// The purpose.
        purpose: String,
        /// The requester's class label.
        requester: &'static str,
        /// The requester's class code.
        requester_class: &'static str,
        /// The entitled class label.
        entitled: &'static str,
    },
    /// Fields outside the purpose's permitted set.
    #[error("purpose {purpose} does not permit the fields {fields}")]
    FieldNotPermitted {
        /// The purpose.
        purpose: String,
        /// The refused fields, comma-separated.
        fields: String,
    },
    /// Bulk queries are not lawful for this purpose.
    #[error("purpose {purpose} does not permit bulk queries")]
    BulkNotPermitted {
        /// The purpose.
        purpose: String,
    },
    /// The request names no fields.
    #[error("the request names no fields")]
    NoFields,
    /// The purpose is lawful, but its data is held by the other tier's server.
    #[error("purpose {purpose} is served by {served_by}")]
    WrongServer {
        /// The purpose.
        purpose: String,
        /// Which server holds the data for it.
        served_by: &'static str,
    },
    /// The agency's class may use the purpose, but the agency is not registered for it.
    #[error("agency {agency} is not registered for purpose {purpose}")]
    PurposeNotRegistered {
        /// The agency id.
        agency: String,
        /// The purpose.
        purpose: String,
    },
    /// The agency is over one of its rate limits at this provision point
    /// ([`crate::rate_limit`]); nothing was looked up. Checked before the law table, so every
    /// attempt counts, lawful or not.
    #[error("agency {agency} is over its {limit} limit ({per_second}/s, burst {burst}); retry after {retry_after} s")]
    RateLimited {
        /// The agency id.
        agency: String,
        /// Which limit ([`crate::rate_limit::Limit::as_str`]).
        limit: &'static str,
        /// Its sustained rate per second.
        per_second: u32,
        /// Its burst.
        burst: u32,
        /// Whole seconds until the request would be admitted.
        retry_after: u64,
    },
}

impl Refusal {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownPurpose { .. } => "unknown_purpose",
            Self::AgencyNotEntitled { .. } => "agency_not_entitled",
            Self::FieldNotPermitted { .. } => "field_not_permitted",
            Self::BulkNotPermitted { .. } => "bulk_not_permitted",
            Self::NoFields => "no_fields",
            Self::PurposeNotRegistered { .. } => "purpose_not_registered",
            Self::WrongServer { .. } => "wrong_server",
            Self::RateLimited { .. } => "rate_limited",
        }
    }

    /// For a refusal that a later retry can overcome ([`Refusal::RateLimited`]): the seconds
    /// to wait.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

/// A lawful request: what may be provided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Purpose code.
    pub purpose: String,
    /// 提供事務区分.
    pub table_ref: &'static str,
    /// Fields to provide (exactly those requested).
    pub fields: BTreeSet<Field>,
}

/// Decides whether `class` may obtain `requested` for `purpose` by `kind`.
pub fn authorize(
    table: &LawTable,
    class: AgencyClass,
    purpose: &str,
    kind: QueryKind,
    requested: &BTreeSet<Field>,
) -> Result<Grant, Refusal> {
    let p =
        table.get(purpose).ok_or_else(|| Refusal::UnknownPurpose { purpose: purpose.chars().take(32).collect() })?;
    if p.agency_class != class {
        return Err(Refusal::AgencyNotEntitled {
            purpose: p.code.clone(),
            requester: class.label(),
            requester_class: class.code(),
            entitled: p.agency_class.label(),
        });
    }
    if requested.is_empty() {
        return Err(Refusal::NoFields);
    }
    let outside: Vec<&str> = requested.difference(&p.fields).map(|f| f.as_str()).collect();
    if !outside.is_empty() {
        return Err(Refusal::FieldNotPermitted { purpose: p.code.clone(), fields: outside.join(",") });
    }
    if kind == QueryKind::Bulk && !p.bulk {
        return Err(Refusal::BulkNotPermitted { purpose: p.code.clone() });
    }
    Ok(Grant { purpose: p.code.clone(), table_ref: p.agency_class.table_ref(), fields: requested.clone() })
}

/// Japanese fiscal year (April to March) of a calendar month.
pub fn fiscal_year(year: i32, month: u8) -> i32 {
    if month >= 4 { year } else { year - 1 }
}

/// Era label of a fiscal year as the usage tables print it: H25 … H30, R1, R2 …
/// (Reiwa began on 2019-05-01; the tables call FY2019 R1).
pub fn fiscal_year_label(fy: i32) -> String {
    if fy >= 2019 { format!("R{}", fy - 2018) } else { format!("H{}", fy - 1988) }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The usage table of `years` (the shape of the prefecture usage tables): one section per
/// agency class (別表), one row per purpose of it provided at least once in those years, the
/// count per fiscal year, and the totals. Pure; [`render_usage_table`] prints it as Markdown and
/// the operator console as HTML.
pub fn usage_table(table: &LawTable, counts: &[(String, i32, u64)], years: &[i32]) -> UsageTable {
    let mut per: BTreeMap<&str, BTreeMap<i32, u64>> = BTreeMap::new();
    for (code, fy, n) in counts {
        *per.entry(code.as_str()).or_default().entry(*fy).or_default() += n;
    }
    let mut out = UsageTable { years: years.to_vec(), sections: Vec::new(), totals: vec![0u64; years.len()] };
    for class in AgencyClass::ALL {
        let rows: Vec<UsageRow> = table
            .purposes()
            .filter(|p| p.agency_class == class)
            .filter(|p| {
                per.get(p.code.as_str()).is_some_and(|m| years.iter().any(|y| m.get(y).copied().unwrap_or(0) > 0))
            })
            .map(|p| {
                let counts: Vec<u64> = years
                    .iter()
                    .map(|y| per.get(p.code.as_str()).and_then(|m| m.get(y)).copied().unwrap_or(0))
                    .collect();
                UsageRow { code: p.code.clone(), description: p.description.clone(), counts }
            })
            .collect();
        if rows.is_empty() {
            continue;
        }
        for r in &rows {
            for (t, n) in out.totals.iter_mut().zip(&r.counts) {
                *t += n;
            }
        }
        out.sections.push((class.table_ref().to_owned(), rows));
    }
    out
}

/// Provisions per purpose per fiscal year ([`usage_table`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageTable {
    /// The fiscal years, in the columns' order.
    pub years: Vec<i32>,
    /// (the class's 別表 reference, its purposes' rows), in table order.
    pub sections: Vec<(String, Vec<UsageRow>)>,
    /// The total per year.
    pub totals: Vec<u64>,
}

/// One purpose's row of a [`UsageTable`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    /// The purpose's code (e.g. `B1-001`).
    pub code: String,
    /// What the purpose is (利用事務).
    pub description: String,
    /// Provisions per year, in [`UsageTable::years`] order.
    pub counts: Vec<u64>,
}

/// A count as the usage tables print it: `-` for none, thousands separated by commas.
pub fn usage_cell(n: u64) -> String {
    if n == 0 { "-".to_owned() } else { thousands(n) }
}

/// Renders provision counts in the shape of the prefecture usage tables (seed 000): one group
/// per law table, one row per purpose with any count, one column per fiscal year (`-` for
/// none), and a 計 row. `counts` are `(purpose code, fiscal year, count)`.
pub fn render_usage_table(table: &LawTable, counts: &[(String, i32, u64)], years: &[i32]) -> String {
    usage_table(table, counts, years).to_markdown()
}

impl UsageTable {
    /// The table as Markdown, as `GET /v1/statistics` answers it.
    pub fn to_markdown(&self) -> String {
        let mut out = String::from("| 利用事務 |");
        for y in &self.years {
            out.push_str(&format!(" {} |", fiscal_year_label(*y)));
        }
        out.push_str("\n|---|");
        out.push_str(&"---:|".repeat(self.years.len()));
        out.push('\n');
        for (class, rows) in &self.sections {
            out.push_str(&format!("| {class} |{}\n", " |".repeat(self.years.len())));
            for r in rows {
                out.push_str(&format!("| {} |", r.description));
                for n in &r.counts {
                    out.push_str(&format!(" {} |", usage_cell(*n)));
                }
                out.push('\n');
            }
        }
        out.push_str("| 計 |");
        for t in &self.totals {
            out.push_str(&format!(" {} |", usage_cell(*t)));
        }
        out.push('\n');
        out
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(f: &[Field]) -> BTreeSet<Field> {
        f.iter().copied().collect()
    }

    const SMALL: &str = "# test\ncode\tclass\tfields\tbulk\tpurpose\n\
        B1-001\tB1\tname,address,change_info\tyes\t年金の事務\n\
        B5-001\tB5\tname,address,date_of_birth,sex,resident_code\tno\t旅券法による一般旅券の発給等に関する事務\n";

    #[test]
    fn the_seed_parses_with_the_documented_purposes() {
        let t = LawTable::seed().unwrap_or_else(|e| panic!("{e}"));
        let count = |c: AgencyClass| t.purposes().filter(|p| p.agency_class == c).count();
        assert_eq!(count(AgencyClass::NationalBody), 20);
        assert_eq!(count(AgencyClass::OwnPrefectureGovernor), 26);
        assert_eq!(count(AgencyClass::OwnPrefectureOtherBody), 2);
        assert_eq!(count(AgencyClass::OrdinanceMunicipality), 13);
        assert_eq!(count(AgencyClass::OrdinanceGovernor), 21);
        assert_eq!(count(AgencyClass::OrdinanceOtherBody), 2);
        assert_eq!(count(AgencyClass::WideAreaIssue), 1);
        assert_eq!(t.len(), 85);
        let bulk: Vec<&Purpose> = t.purposes().filter(|p| p.bulk).collect();
        assert_eq!(bulk.len(), 7);
        assert!(bulk.iter().all(|p| p.agency_class == AgencyClass::NationalBody && p.description.contains("年金")));
        assert!(t.get("B5-005").is_some_and(|p| p.description.contains("旅券法")));
    }

    #[test]
    fn a_lawful_request_is_granted_exactly_what_it_asked() {
        let t = LawTable::parse(SMALL).unwrap_or_else(|e| panic!("{e}"));
        let g =
            authorize(&t, AgencyClass::OwnPrefectureGovernor, "B5-001", QueryKind::ByFourItems, &set(&[Field::Name]))
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((g.purpose.as_str(), g.table_ref), ("B5-001", "法別表第5"));
        assert_eq!(g.fields, set(&[Field::Name]));
        assert!(
            authorize(&t, AgencyClass::NationalBody, "B1-001", QueryKind::Bulk, &set(&[Field::ChangeInfo])).is_ok()
        );
    }

    #[test]
    fn each_refusal_has_its_code() {
        let t = LawTable::parse(SMALL).unwrap_or_else(|e| panic!("{e}"));
        let code = |c, p: &str, k, f: &[Field]| authorize(&t, c, p, k, &set(f)).err().map(|r| r.code());
        use AgencyClass::*;
        use QueryKind::*;
        assert_eq!(code(NationalBody, "B9-999", ByResidentCode, &[Field::Name]), Some("unknown_purpose"));
        assert_eq!(code(NationalBody, "B5-001", ByResidentCode, &[Field::Name]), Some("agency_not_entitled"));
        assert_eq!(code(OwnPrefectureGovernor, "B5-001", ByResidentCode, &[]), Some("no_fields"));
        assert_eq!(
            code(OwnPrefectureGovernor, "B5-001", ByResidentCode, &[Field::Name, Field::ChangeInfo]),
            Some("field_not_permitted")
        );
        assert_eq!(code(OwnPrefectureGovernor, "B5-001", Bulk, &[Field::Name]), Some("bulk_not_permitted"));
        let r = authorize(&t, NationalBody, "B5-001", ByResidentCode, &set(&[Field::Name])).err();
        assert!(r.map(|r| r.to_string()).unwrap_or_default().contains("国の機関等"));
    }

    #[test]
    fn malformed_rows_name_their_line_and_column() {
        let head = "code\tclass\tfields\tbulk\tpurpose\n";
        let cases = [
            (format!("{head}B1-001\tB9\tname\tno\tx\n"), 2, "class"),
            (format!("# c\n{head}B1-001\tB1\tname,shoe_size\tno\tx\n"), 3, "fields"),
            (format!("{head}B1-001\tB1\tname\tmaybe\tx\n"), 2, "bulk"),
            (format!("{head}B1-001\tB1\tname\tno\tx\nB1-001\tB1\tname\tno\ty\n"), 3, "code"),
            (format!("{head}B1-001\tB1\tname\tno\n"), 2, "row"),
            ("code\tclass\n".to_owned(), 1, "row"),
        ];
        for (text, want_line, want_col) in cases {
            match LawTable::parse(&text) {
                Err(LawError::Row { line, column, .. }) => assert_eq!((line, column), (want_line, want_col), "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert_eq!(LawTable::parse(head).err(), Some(LawError::Empty));
    }

    #[test]
    fn fiscal_years_start_in_april_and_have_era_labels() {
        assert_eq!(fiscal_year(2026, 3), 2025);
        assert_eq!(fiscal_year(2026, 4), 2026);
        assert_eq!(fiscal_year_label(2013), "H25");
        assert_eq!(fiscal_year_label(2018), "H30");
        assert_eq!(fiscal_year_label(2019), "R1");
        assert_eq!(fiscal_year_label(2022), "R4");
    }

    #[test]
    fn the_usage_table_groups_by_law_table_with_totals() {
        let t = LawTable::parse(SMALL).unwrap_or_else(|e| panic!("{e}"));
        let counts = vec![("B5-001".to_owned(), 2022, 28_843), ("B1-001".to_owned(), 2021, 1_234_567)];
        let got = render_usage_table(&t, &counts, &[2021, 2022]);
        let want = "| 利用事務 | R3 | R4 |\n\
                    |---|---:|---:|\n\
                    | 法別表第1 | | |\n\
                    | 年金の事務 | 1,234,567 | - |\n\
                    | 法別表第5 | | |\n\
                    | 旅券法による一般旅券の発給等に関する事務 | - | 28,843 |\n\
                    | 計 | 1,234,567 | 28,843 |\n";
        assert_eq!(got, want);
    }
}
