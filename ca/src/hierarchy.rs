//! The two resident hierarchies (signature, user authentication) in two environments
//! (production, test): who a CA is, its distinguished name, policy OID and URL slug. Numbers are
//! stored and never reused. The network CA and the organisation CA for local governments (the
//! third hierarchy, [`crate::network::FileCaKind`]) are file CAs with their OIDs here.

#![forbid(clippy::disallowed_methods)]

use std::str::FromStr;

use const_oid::ObjectIdentifier;
use x509_cert::name::Name;

use crate::error::{Error, Result};

/// Which hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Purpose {
    /// 署名用: the signature hierarchy.
    Signature = 1,
    /// 利用者証明用: the user-authentication hierarchy.
    Authentication = 2,
}

/// Production or the test hierarchy kept apart from it (`O=JPKI-TEST`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Environment {
    /// Production.
    Production = 1,
    /// Test (its own roots, its own policy OIDs; never chains to production).
    Test = 2,
}

/// JPKI signature policy (jpki.md §1.2).
pub const POLICY_SIGNATURE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.1.1.20");
/// JPKI user-authentication policy (jpki.md §1.3).
pub const POLICY_AUTHENTICATION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.1.3.30");
/// Test signature policy (read off J-LIS test cards, jpki.md §1.1).
pub const POLICY_TEST_SIGNATURE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.1.0.20");
/// Test authentication policy. Not observed; our assumption by analogy with the test signature arc.
pub const POLICY_TEST_AUTHENTICATION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.1.0.30");
/// This project's private arc for the network of parties (not a J-LIS assignment: J-LIS uses
/// `1.2.392.200149.8.5.1` for policies and `.5.5` for SAN items; `.99` is unused there and kept
/// for our network credentials). Sub-arcs are never reused.
pub const NETWORK_ARC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.99");
/// extKeyUsage of a municipality's change-notice signing key (`NETWORK_ARC.1`): the only EKU
/// of that certificate, so the key signs notices and nothing else.
pub const NOTICE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.99.1");
/// extKeyUsage of a municipal clerk's request-signing key (`NETWORK_ARC.2`): the only EKU of
/// that certificate, so the key authenticates the clerk's requests to the CA service and
/// nothing else.
pub const CLERK_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.99.2");
/// The organisation CA for local governments (LGPKI-like, the third hierarchy; docs/resdoc.md):
/// its arc under this project's private arc (`NETWORK_ARC.3`; not an LGPKI assignment).
pub const ORGANISATION_ARC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.99.3");
/// certificatePolicies of a municipality's document-signing certificate (`ORGANISATION_ARC.1`):
/// the key signs documents the municipality issues (residence certificates), nothing else.
pub const POLICY_DOCUMENT_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.99.3.1");
/// id-kp-documentSigning (RFC 9336 §3.1): the only extKeyUsage of a document-signing certificate.
pub const KP_DOCUMENT_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.36");
/// CPS URI in the certificatePolicies qualifier.
pub const CPS_URI: &str = "http://www.jpki.go.jp/cps.html";

impl Purpose {
    /// Both.
    pub const ALL: [Self; 2] = [Self::Signature, Self::Authentication];
    /// Short name (`sign`, `auth`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Signature => "sign",
            Self::Authentication => "auth",
        }
    }
    /// Parses `sign` / `auth`.
    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| Error::invalid("purpose", format!("{s}: sign or auth")))
    }
    /// From the stored number.
    pub fn from_code(n: i64) -> Result<Self> {
        Self::ALL.into_iter().find(|p| *p as i64 == n).ok_or_else(|| Error::corrupt("purpose", n))
    }
    fn ou(self) -> &'static str {
        match self {
            Self::Signature => "JPKI for digital signature",
            Self::Authentication => "JPKI for user authentication",
        }
    }
}

impl Environment {
    /// Both.
    pub const ALL: [Self; 2] = [Self::Production, Self::Test];
    /// Short name (`prod`, `test`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Production => "prod",
            Self::Test => "test",
        }
    }
    /// Parses `prod` / `test`.
    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| Error::invalid("environment", format!("{s}: prod or test")))
    }
    /// From the stored number.
    pub fn from_code(n: i64) -> Result<Self> {
        Self::ALL.into_iter().find(|p| *p as i64 == n).ok_or_else(|| Error::corrupt("environment", n))
    }
    fn organization(self) -> &'static str {
        match self {
            Self::Production => "JPKI",
            Self::Test => "JPKI-TEST",
        }
    }
}

/// A certificate authority: a hierarchy's root (`prefecture: None`) or the prefecture-unit
/// issuing CA beneath it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CaId {
    /// Hierarchy.
    pub purpose: Purpose,
    /// Production or test.
    pub env: Environment,
    /// JIS X 0401 prefecture code (`"13"`) of an issuing CA; `None` for the root.
    pub prefecture: Option<String>,
}

impl CaId {
    /// The root of a hierarchy.
    pub fn root(purpose: Purpose, env: Environment) -> Self {
        Self { purpose, env, prefecture: None }
    }

    /// The issuing CA of a prefecture.
    pub fn issuing(purpose: Purpose, env: Environment, prefecture: &str) -> Result<Self> {
        prefecture_name(prefecture)?;
        Ok(Self { purpose, env, prefecture: Some(prefecture.to_owned()) })
    }

    /// URL-safe slug, stable forever: `sign-root`, `auth-13`, `test-sign-27`.
    pub fn slug(&self) -> String {
        let p = self.prefecture.as_deref().unwrap_or("root");
        match self.env {
            Environment::Production => format!("{}-{p}", self.purpose.name()),
            Environment::Test => format!("test-{}-{p}", self.purpose.name()),
        }
    }

    /// Parses a slug.
    pub fn parse(slug: &str) -> Result<Self> {
        let (env, rest) = match slug.strip_prefix("test-") {
            Some(r) => (Environment::Test, r),
            None => (Environment::Production, slug),
        };
        let (purpose, p) = rest.split_once('-').ok_or_else(|| Error::invalid("CA", format!("{slug}: e.g. sign-13")))?;
        let purpose = Purpose::parse(purpose)?;
        if p == "root" { Ok(Self::root(purpose, env)) } else { Self::issuing(purpose, env, p) }
    }

    /// The certificate policy of this hierarchy.
    pub fn policy(&self) -> ObjectIdentifier {
        match (self.env, self.purpose) {
            (Environment::Production, Purpose::Signature) => POLICY_SIGNATURE,
            (Environment::Production, Purpose::Authentication) => POLICY_AUTHENTICATION,
            (Environment::Test, Purpose::Signature) => POLICY_TEST_SIGNATURE,
            (Environment::Test, Purpose::Authentication) => POLICY_TEST_AUTHENTICATION,
        }
    }

    /// The distinguished name. Root: `C=JP, O=JPKI, OU=<hierarchy>, OU=Japan Agency for Local
    /// Authority Information Systems` (jpki.md §1.1); issuing CA: `C=JP, O=JPKI, OU=<hierarchy>,
    /// OU=<prefecture> Prefecture-unit CA`. Generations share the name; keys tell them apart.
    pub fn name(&self) -> Result<Name> {
        let o = self.env.organization();
        let ou = self.purpose.ou();
        let unit = match &self.prefecture {
            None => "Japan Agency for Local Authority Information Systems".to_owned(),
            Some(p) => format!("{} Prefecture-unit CA", prefecture_name(p)?),
        };
        Name::from_str(&format!("OU={unit},OU={ou},O={o},C=JP")).map_err(|e| Error::invalid("CA name", e))
    }
}

impl std::fmt::Display for CaId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.slug())
    }
}

/// Prefectures by JIS X 0401 code, in romaji as written in certificate subjects.
pub const PREFECTURES: [&str; 47] = [
    "Hokkaido",
    "Aomori-ken",
    "Iwate-ken",
    "Miyagi-ken",
    "Akita-ken",
    "Yamagata-ken",
    "Fukushima-ken",
    "Ibaraki-ken",
    "Tochigi-ken",
    "Gunma-ken",
    "Saitama-ken",
    "Chiba-ken",
    "Tokyo-to",
    "Kanagawa-ken",
    "Niigata-ken",
    "Toyama-ken",
    "Ishikawa-ken",
    "Fukui-ken",
    "Yamanashi-ken",
    "Nagano-ken",
    "Gifu-ken",
    "Shizuoka-ken",
    "Aichi-ken",
    "Mie-ken",
    "Shiga-ken",
    "Kyoto-fu",
    "Osaka-fu",
    "Hyogo-ken",
    "Nara-ken",
    "Wakayama-ken",
    "Tottori-ken",
    "Shimane-ken",
    "Okayama-ken",
    "Hiroshima-ken",
    "Yamaguchi-ken",
    "Tokushima-ken",
    "Kagawa-ken",
    "Ehime-ken",
    "Kochi-ken",
    "Fukuoka-ken",
    "Saga-ken",
    "Nagasaki-ken",
    "Kumamoto-ken",
    "Oita-ken",
    "Miyazaki-ken",
    "Kagoshima-ken",
    "Okinawa-ken",
];

/// The romaji name of a two-digit prefecture code.
pub fn prefecture_name(code: &str) -> Result<&'static str> {
    let n: usize = (code.len() == 2)
        .then(|| code.parse().ok())
        .flatten()
        .ok_or_else(|| Error::invalid("prefecture", format!("{code}: two digits 01–47")))?;
    PREFECTURES.get(n.wrapping_sub(1)).copied().ok_or_else(|| Error::invalid("prefecture", format!("{code}: 01–47")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_round_trip_and_names_follow_jpki() {
        for id in [
            CaId::root(Purpose::Signature, Environment::Production),
            CaId::issuing(Purpose::Authentication, Environment::Production, "13").unwrap(),
            CaId::issuing(Purpose::Signature, Environment::Test, "27").unwrap(),
        ] {
            assert_eq!(CaId::parse(&id.slug()).unwrap(), id);
        }
        let root = CaId::root(Purpose::Signature, Environment::Production).name().unwrap();
        assert_eq!(
            root.to_string(),
            "OU=Japan Agency for Local Authority Information Systems,OU=JPKI for digital signature,O=JPKI,C=JP"
        );
        assert_eq!(prefecture_name("13").unwrap(), "Tokyo-to");
        assert_eq!(prefecture_name("47").unwrap(), "Okinawa-ken");
        assert!(prefecture_name("48").is_err() && prefecture_name("00").is_err() && prefecture_name("1").is_err());
        assert!(CaId::parse("sign-99").is_err() && CaId::parse("nonsense").is_err());
    }
}
