//! The resident record: the four items (name, address, date of birth, sex) with their
//! substitute-character flags, the resident code, the status and the owning municipality.

#![forbid(clippy::disallowed_methods)]

use serde::{Deserialize, Serialize};
use time::Date;

use crate::error::Error;
use crate::ids::{LgCode, ResidentCode};

/// Upper bound on the characters of a name or address (hostile-input budget).
pub const MAX_TEXT_CHARS: usize = 256;

/// A name or address as registered, with one `0`/`1` flag per character: `1` means a
/// substitute glyph (代替文字) stands for a character outside the common repertoire
/// (the flags of JPKI SAN 1.2.392.200149.8.5.5.2 and .6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "TextRepr", into = "TextRepr")]
pub struct FlaggedText {
    text: String,
    flags: String,
}

#[derive(Serialize, Deserialize)]
struct TextRepr {
    text: String,
    #[serde(default)]
    flags: Option<String>,
}

impl FlaggedText {
    /// Text with all flags `0`.
    pub fn plain(field: &'static str, text: &str) -> Result<Self, Error> {
        let flags = "0".repeat(text.chars().count());
        Self::new(field, text, &flags)
    }

    /// Text with explicit flags; their count must equal the character count.
    pub fn new(field: &'static str, text: &str, flags: &str) -> Result<Self, Error> {
        let n = text.chars().count();
        if n == 0 || text.trim().is_empty() {
            return Err(Error::invalid(field, "must not be empty".into()));
        }
        if n > MAX_TEXT_CHARS {
            return Err(Error::invalid(field, format!("{n} characters exceed {MAX_TEXT_CHARS}")));
        }
        if text.chars().any(char::is_control) {
            return Err(Error::invalid(field, "control characters are not allowed".into()));
        }
        if flags.chars().count() != n || !flags.chars().all(|c| c == '0' || c == '1') {
            return Err(Error::invalid(
                field,
                format!("substitute flags must be {n} characters of 0/1, got {flags:?}"),
            ));
        }
        Ok(Self { text: text.to_owned(), flags: flags.to_owned() })
    }

    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The substitute-character flags, one per character.
    pub fn flags(&self) -> &str {
        &self.flags
    }
}

impl TryFrom<TextRepr> for FlaggedText {
    type Error = Error;
    fn try_from(r: TextRepr) -> Result<Self, Error> {
        match r.flags {
            Some(f) => Self::new("text", &r.text, &f),
            None => Self::plain("text", &r.text),
        }
    }
}
impl From<FlaggedText> for TextRepr {
    fn from(t: FlaggedText) -> Self {
        Self { text: t.text, flags: Some(t.flags) }
    }
}

/// Sex as in JPKI SAN 1.2.392.200149.8.5.5.3 (ISO 5218 style). Numbers are forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
#[repr(u8)]
pub enum Sex {
    /// 男 (1).
    Male = 1,
    /// 女 (2).
    Female = 2,
    /// Not applicable (9).
    NotApplicable = 9,
}

impl TryFrom<u8> for Sex {
    type Error = Error;
    fn try_from(v: u8) -> Result<Self, Error> {
        match v {
            1 => Ok(Self::Male),
            2 => Ok(Self::Female),
            9 => Ok(Self::NotApplicable),
            _ => Err(Error::invalid("sex", format!("{v} is not 1, 2 or 9"))),
        }
    }
}
impl From<Sex> for u8 {
    fn from(s: Sex) -> u8 {
        s as u8
    }
}

/// Whether the record is on the active register. Numbers are forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
#[repr(u8)]
pub enum ResidentStatus {
    /// On the register of its municipality.
    Active = 1,
    /// Moved out to another municipality (転出); the new municipality's move-in follows.
    MovedOut = 2,
    /// Deceased (死亡).
    Deceased = 3,
    /// Left the country (国外転出).
    Emigrated = 4,
    /// Removed ex officio (職権消除).
    RemovedExOfficio = 5,
}

impl ResidentStatus {
    /// Removed from the register for good (death, emigration, ex-officio removal).
    pub fn is_removed(self) -> bool {
        matches!(self, Self::Deceased | Self::Emigrated | Self::RemovedExOfficio)
    }
}

impl TryFrom<u8> for ResidentStatus {
    type Error = Error;
    fn try_from(v: u8) -> Result<Self, Error> {
        Ok(match v {
            1 => Self::Active,
            2 => Self::MovedOut,
            3 => Self::Deceased,
            4 => Self::Emigrated,
            5 => Self::RemovedExOfficio,
            _ => return Err(Error::invalid("status", format!("unknown status {v}"))),
        })
    }
}
impl From<ResidentStatus> for u8 {
    fn from(s: ResidentStatus) -> u8 {
        s as u8
    }
}

/// The four items (基本4情報).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FourItems {
    /// 氏名.
    pub name: FlaggedText,
    /// 住所.
    pub address: FlaggedText,
    /// 生年月日.
    pub date_of_birth: Date,
    /// 性別.
    pub sex: Sex,
}

/// 本人確認情報 as held after a change: the four items, the code, status, owner, version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// 住民票コード.
    pub resident_code: ResidentCode,
    /// The four items.
    pub items: FourItems,
    /// Register status.
    pub status: ResidentStatus,
    /// The municipality whose register holds (or last held) the record.
    pub municipality: LgCode,
    /// Version of this resident's record, +1 on every change, carried across moves.
    pub version: u64,
}
