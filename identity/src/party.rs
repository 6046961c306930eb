//! Parties of the network: who is on the other end of a connection. A party is read from the
//! verified client (or server) certificate of a mutual-TLS connection — never from a header, a
//! path or a flag — and written into the certificate as one URI subject alternative name:
//!
//! ```text
//! urn:jpki:municipality:131016    urn:jpki:prefecture:13    urn:jpki:national
//! urn:jpki:ca:jpki-ca             urn:jpki:validator:v1     urn:jpki:window:131016:W01
//! urn:jpki:agency:jps             urn:jpki:operator:op1     urn:jpki:clerk:131016:C0001
//! urn:jpki:kiosk:cvs-0001
//! ```
//!
//! A window and a clerk belong to a municipality: their names are `LGCODE:ID`, so the
//! certificate itself says which municipality's window (受付窓口識別記号 `ID`, 1–9 of A–Z 0–9)
//! or clerk (1–16 of A–Z a–z 0–9 - _) it is.
//!
//! Pure: no PKI crate, no I/O. The `net` crate parses certificates into parties.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::ids::{LgCode, PrefectureCode};

/// The URI prefix of every party name.
pub const URI_PREFIX: &str = "urn:jpki:";

/// One authenticated party of the network.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Party {
    /// A municipality's node (市町村CS), by its local government code.
    Municipality(LgCode),
    /// A prefecture server, by its two-digit code.
    Prefecture(PrefectureCode),
    /// The national server.
    National,
    /// A certificate authority (its agency id at the provision points, e.g. `jpki-ca`).
    Ca(String),
    /// A validation service.
    Validator(String),
    /// A municipal window (card writer): `LGCODE:ID`, e.g. `131016:W01`.
    Window(String),
    /// An agency receiving provisions (its registered agency id).
    Agency(String),
    /// A named operator of the national operator (disclosure, statistics, halts).
    Operator(String),
    /// A municipal clerk (窓口職員): `LGCODE:ID`, e.g. `131016:C0001`. A clerk never holds a TLS
    /// credential; the clerk's own signing key authenticates each request the window makes on
    /// the clerk's behalf.
    Clerk(String),
    /// A convenience-store kiosk (キオスク端末, コンビニ交付), by its operator-assigned name, e.g.
    /// `cvs-0001`. It belongs to no municipality: a resident of any municipality may use it, and
    /// the resident is identified by the card, never by the kiosk (docs/kiosk.md).
    Kiosk(String),
}

/// The kind of a party, without its code (the rows of the authorization table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartyKind {
    /// [`Party::Municipality`].
    Municipality,
    /// [`Party::Prefecture`].
    Prefecture,
    /// [`Party::National`].
    National,
    /// [`Party::Ca`].
    Ca,
    /// [`Party::Validator`].
    Validator,
    /// [`Party::Window`].
    Window,
    /// [`Party::Agency`].
    Agency,
    /// [`Party::Operator`].
    Operator,
    /// [`Party::Clerk`].
    Clerk,
    /// [`Party::Kiosk`].
    Kiosk,
}

impl PartyKind {
    /// Every kind, in table order.
    pub const ALL: [PartyKind; 10] = [
        Self::Municipality,
        Self::Prefecture,
        Self::National,
        Self::Ca,
        Self::Validator,
        Self::Window,
        Self::Agency,
        Self::Operator,
        Self::Clerk,
        Self::Kiosk,
    ];

    /// The word used in the URI.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Municipality => "municipality",
            Self::Prefecture => "prefecture",
            Self::National => "national",
            Self::Ca => "ca",
            Self::Validator => "validator",
            Self::Window => "window",
            Self::Agency => "agency",
            Self::Operator => "operator",
            Self::Clerk => "clerk",
            Self::Kiosk => "kiosk",
        }
    }
}

impl FromStr for PartyKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| Error::invalid("party", format!("{s:?} is not a party kind")))
    }
}

/// A name of a CA, validator, agency, operator or kiosk: 1–32 of `A–Z a–z 0–9 - _ .`.
fn check_name(kind: PartyKind, name: &str) -> Result<String, Error> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok {
        return Err(Error::invalid(
            "party",
            format!("{} name {name:?} is not 1–32 of A–Z a–z 0–9 - _ .", kind.as_str()),
        ));
    }
    Ok(name.to_owned())
}

/// A window's or clerk's name: `LGCODE:ID` (a valid local government code; a window id is
/// 1–9 of A–Z 0–9, a clerk id 1–16 of A–Z a–z 0–9 - _).
fn check_station(kind: PartyKind, name: &str) -> Result<String, Error> {
    let bad = |why: &str| Error::invalid("party", format!("{} name {name:?}: {why}", kind.as_str()));
    let (code, id) = name.split_once(':').ok_or_else(|| bad("expected LGCODE:ID"))?;
    code.parse::<LgCode>().map_err(|e| bad(&e.to_string()))?;
    let ok = match kind {
        PartyKind::Window => {
            (1..=9).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        }
        _ => (1..=16).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_')),
    };
    if !ok {
        return Err(bad(if kind == PartyKind::Window {
            "the window id is 1–9 of A–Z 0–9"
        } else {
            "the clerk id is 1–16 of A–Z a–z 0–9 - _"
        }));
    }
    Ok(name.to_owned())
}

impl Party {
    /// Builds a party from its kind and code or name (`None` only for the national node).
    pub fn new(kind: PartyKind, code: Option<&str>) -> Result<Self, Error> {
        let need = || Error::invalid("party", format!("a {} needs a code or name", kind.as_str()));
        Ok(match kind {
            PartyKind::National => match code {
                None => Self::National,
                Some(c) => return Err(Error::invalid("party", format!("the national node has no code ({c:?})"))),
            },
            PartyKind::Municipality => Self::Municipality(code.ok_or_else(need)?.parse()?),
            PartyKind::Prefecture => Self::Prefecture(code.ok_or_else(need)?.parse()?),
            PartyKind::Ca => Self::Ca(check_name(kind, code.ok_or_else(need)?)?),
            PartyKind::Validator => Self::Validator(check_name(kind, code.ok_or_else(need)?)?),
            PartyKind::Window => Self::Window(check_station(kind, code.ok_or_else(need)?)?),
            PartyKind::Clerk => Self::Clerk(check_station(kind, code.ok_or_else(need)?)?),
            PartyKind::Agency => Self::Agency(check_name(kind, code.ok_or_else(need)?)?),
            PartyKind::Operator => Self::Operator(check_name(kind, code.ok_or_else(need)?)?),
            PartyKind::Kiosk => Self::Kiosk(check_name(kind, code.ok_or_else(need)?)?),
        })
    }

    /// Its kind.
    pub fn kind(&self) -> PartyKind {
        match self {
            Self::Municipality(_) => PartyKind::Municipality,
            Self::Prefecture(_) => PartyKind::Prefecture,
            Self::National => PartyKind::National,
            Self::Ca(_) => PartyKind::Ca,
            Self::Validator(_) => PartyKind::Validator,
            Self::Window(_) => PartyKind::Window,
            Self::Agency(_) => PartyKind::Agency,
            Self::Operator(_) => PartyKind::Operator,
            Self::Clerk(_) => PartyKind::Clerk,
            Self::Kiosk(_) => PartyKind::Kiosk,
        }
    }

    /// Its code or name (`None` for the national node).
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Municipality(c) => Some(c.as_str()),
            Self::Prefecture(c) => Some(c.as_str()),
            Self::National => None,
            Self::Ca(n)
            | Self::Validator(n)
            | Self::Window(n)
            | Self::Agency(n)
            | Self::Operator(n)
            | Self::Clerk(n)
            | Self::Kiosk(n) => Some(n),
        }
    }

    /// The municipality a window or clerk belongs to, and its id there (`None` for every
    /// other party).
    pub fn station(&self) -> Option<(LgCode, &str)> {
        match self {
            Self::Window(n) | Self::Clerk(n) => {
                let (code, id) = n.split_once(':')?;
                Some((code.parse().ok()?, id))
            }
            _ => None,
        }
    }

    /// The URI written into its certificate.
    pub fn uri(&self) -> String {
        self.to_string()
    }

    /// Parses a certificate's URI SAN; `None` if it is not a party URI at all.
    pub fn from_uri(uri: &str) -> Option<Result<Self, Error>> {
        let rest = uri.strip_prefix(URI_PREFIX)?;
        let (kind, code) = match rest.split_once(':') {
            Some((k, c)) => (k, Some(c)),
            None => (rest, None),
        };
        Some(kind.parse().and_then(|k| Self::new(k, code)))
    }
}

impl fmt::Display for Party {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code() {
            Some(c) => write!(f, "{URI_PREFIX}{}:{c}", self.kind().as_str()),
            None => write!(f, "{URI_PREFIX}{}", self.kind().as_str()),
        }
    }
}

impl FromStr for Party {
    type Err = Error;
    /// Parses either the URI form or the short `kind:code` / `national` form.
    fn from_str(s: &str) -> Result<Self, Error> {
        let uri = if s.starts_with(URI_PREFIX) { s.to_owned() } else { format!("{URI_PREFIX}{s}") };
        Self::from_uri(&uri).unwrap_or_else(|| Err(Error::invalid("party", format!("{s:?} is not a party"))))
    }
}

impl TryFrom<String> for Party {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        s.parse()
    }
}

impl From<Party> for String {
    fn from(p: Party) -> String {
        p.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_uri() {
        for s in [
            "urn:jpki:municipality:131016",
            "urn:jpki:prefecture:13",
            "urn:jpki:national",
            "urn:jpki:ca:jpki-ca",
            "urn:jpki:validator:v1",
            "urn:jpki:window:131016:W01",
            "urn:jpki:agency:jps",
            "urn:jpki:operator:op1",
            "urn:jpki:clerk:131016:C0001",
            "urn:jpki:kiosk:cvs-0001",
        ] {
            let p = Party::from_uri(s).unwrap_or_else(|| panic!("{s}")).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(p.uri(), s);
            assert_eq!(s.parse::<Party>().ok(), Some(p.clone()));
            let short = s.strip_prefix(URI_PREFIX).unwrap_or_default();
            assert_eq!(short.parse::<Party>().ok(), Some(p));
        }
    }

    #[test]
    fn malformed_party_names_are_refused() {
        assert!(Party::from_uri("https://example.org").is_none());
        for bad in [
            "urn:jpki:municipality:131017", // wrong check digit
            "urn:jpki:municipality",
            "urn:jpki:prefecture:48",
            "urn:jpki:national:x",
            "urn:jpki:king:me",
            "urn:jpki:operator:",
            "urn:jpki:operator:a b",
            "urn:jpki:agency:../x",
            "urn:jpki:window:W13101001",  // no municipality
            "urn:jpki:window:131017:W01", // wrong check digit
            "urn:jpki:window:131016:w01", // lower case
            "urn:jpki:window:131016:W123456789",
            "urn:jpki:clerk:131016:",
            "urn:jpki:clerk:131016:a:b",
            "urn:jpki:kiosk:",
            "urn:jpki:kiosk:a/b",
        ] {
            assert!(matches!(Party::from_uri(bad), Some(Err(_))), "{bad}");
        }
        assert!("operator:x".repeat(10).parse::<Party>().is_err());
    }

    #[test]
    fn windows_and_clerks_name_their_municipality() {
        let w: Party = "window:131016:W01".parse().unwrap_or_else(|e| panic!("{e}"));
        let (code, id) = w.station().unwrap_or_else(|| panic!("no station"));
        assert_eq!((code.as_str(), id), ("131016", "W01"));
        let c: Party = "clerk:271004:tanaka-1".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.station().map(|(m, i)| (m.to_string(), i.to_owned())), Some(("271004".into(), "tanaka-1".into())));
        assert_eq!(Party::Operator("op1".into()).station(), None);
    }
}
