//! Identity numbers: resident code (住民票コード), My Number (個人番号) and local government
//! code (全国地方公共団体コード), each validated on construction (jpki.md §4).

#![forbid(clippy::disallowed_methods)]

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::check_digit;
use crate::error::Error;

fn parse_digits<const N: usize>(field: &'static str, s: &str) -> Result<[u8; N], Error> {
    let bytes = s.as_bytes();
    if bytes.len() != N || !bytes.iter().all(u8::is_ascii_digit) {
        return Err(Error::invalid(field, format!("must be exactly {N} ASCII digits, got {s:?}")));
    }
    let mut out = [0u8; N];
    for (o, b) in out.iter_mut().zip(bytes) {
        *o = b - b'0';
    }
    Ok(out)
}

fn check_last<const N: usize, const B: usize>(
    field: &'static str,
    s: &str,
    digits: [u8; N],
    f: fn(&[u8; B]) -> u8,
) -> Result<(), Error> {
    let mut body = [0u8; B];
    body.copy_from_slice(&digits[..B]);
    let want = f(&body);
    if digits[B] != want {
        return Err(Error::invalid(field, format!("check digit of {s} is {}, expected {want}", digits[B])));
    }
    Ok(())
}

macro_rules! digit_string_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The digits as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(s: String) -> Result<Self, Error> {
                s.parse()
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
    };
}

digit_string_type!(
    /// 住民票コード: 10 random digits and a check digit ([`check_digit::resident_code`]).
    ResidentCode
);
digit_string_type!(
    /// 個人番号: 11 digits and the check digit of 総務省令第85号 art. 5.
    MyNumber
);
digit_string_type!(
    /// 全国地方公共団体コード of a municipality: 5 digits and a check digit; the first two
    /// digits are the prefecture.
    LgCode
);

impl FromStr for ResidentCode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let d = parse_digits::<11>("resident_code", s)?;
        check_last::<11, 10>("resident_code", s, d, check_digit::resident_code)?;
        Ok(Self(s.to_owned()))
    }
}

impl ResidentCode {
    /// Builds a code from 10 body digits by appending the check digit.
    pub fn from_body(body: [u8; 10]) -> Result<Self, Error> {
        if body.iter().any(|d| *d > 9) {
            return Err(Error::invalid("resident_code", "body digits must be 0–9".into()));
        }
        let mut s: String = body.iter().map(|d| char::from(b'0' + d)).collect();
        s.push(char::from(b'0' + check_digit::resident_code(&body)));
        Ok(Self(s))
    }
}

impl FromStr for MyNumber {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let d = parse_digits::<12>("my_number", s)?;
        check_last::<12, 11>("my_number", s, d, check_digit::my_number)?;
        Ok(Self(s.to_owned()))
    }
}

impl FromStr for LgCode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let d = parse_digits::<6>("municipality", s)?;
        check_last::<6, 5>("municipality", s, d, check_digit::local_government_code)?;
        let pref = d[0] * 10 + d[1];
        if !(1..=47).contains(&pref) {
            return Err(Error::invalid("municipality", format!("{s}: prefecture {pref:02} is not 01–47")));
        }
        Ok(Self(s.to_owned()))
    }
}

impl LgCode {
    /// The two-digit prefecture code (01 北海道 … 47 沖縄県).
    pub fn prefecture(&self) -> PrefectureCode {
        PrefectureCode(self.0[..2].to_owned())
    }
}

/// Two-digit prefecture code, 01–47.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PrefectureCode(String);

impl PrefectureCode {
    /// The digits as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl FromStr for PrefectureCode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let d = parse_digits::<2>("prefecture", s)?;
        let n = d[0] * 10 + d[1];
        if !(1..=47).contains(&n) {
            return Err(Error::invalid("prefecture", format!("{s} is not 01–47")));
        }
        Ok(Self(s.to_owned()))
    }
}
impl TryFrom<String> for PrefectureCode {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        s.parse()
    }
}
impl From<PrefectureCode> for String {
    fn from(v: PrefectureCode) -> String {
        v.0
    }
}
impl fmt::Display for PrefectureCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for PrefectureCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrefectureCode({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn my_number_accepts_the_ordinance_vectors_and_rejects_the_invalid_ones() {
        for ok in ["123456789018", "983205673214", "111111111118", "000111111111"] {
            assert!(ok.parse::<MyNumber>().is_ok(), "{ok}");
        }
        for bad in ["123456789019", "983205673210", "12345678901", "12345678901a", ""] {
            assert!(bad.parse::<MyNumber>().is_err(), "{bad}");
        }
    }

    #[test]
    fn resident_code_round_trips_from_body_and_rejects_a_wrong_check_digit() {
        let c = ResidentCode::from_body([1, 2, 3, 4, 5, 6, 7, 8, 9, 0]).unwrap_or_else(|e| panic!("{e}"));
        assert!(c.as_str().parse::<ResidentCode>().is_ok());
        let last = c.as_str().as_bytes()[10] - b'0';
        let wrong = format!("{}{}", &c.as_str()[..10], (last + 1) % 10);
        let err = wrong.parse::<ResidentCode>().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("check digit"), "{err}");
    }

    #[test]
    fn local_government_code_checks_digit_and_prefecture() {
        let c: LgCode = "131016".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.prefecture().as_str(), "13");
        assert!("131017".parse::<LgCode>().is_err());
        assert!("481009".parse::<LgCode>().is_err());
        assert!("991000".parse::<LgCode>().is_err());
    }

    #[test]
    fn serde_rejects_invalid_codes() {
        // body 1234567890: Σ = 5+8+9+8+35+36+35+32+27+0 = 195, 195 mod 11 = 8 → check 3.
        assert!(serde_json::from_str::<ResidentCode>("\"12345678903\"").is_ok());
        assert!(serde_json::from_str::<ResidentCode>("\"12345678904\"").is_err());
        assert!(serde_json::from_str::<LgCode>("\"131017\"").is_err());
        assert!(serde_json::from_str::<LgCode>("\"131016\"").is_ok());
    }
}
