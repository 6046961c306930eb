//! Key ceremonies (issue 11, first part): a ceremony is a reviewed TOML file saying which CA
//! gets a new key generation, with which algorithm, where its key lives, when its certificate
//! starts and when issuance switches to it. [`plan`] turns the file and the CA's current
//! generation into exactly the steps a run would take — a dry run, pure, checked against the
//! overlap policy — for `jpki ca ceremony plan FILE`. Running a ceremony is later work.
//!
//! ```toml
//! ca = "sign-13"             # the CA (slug)
//! generation = 2             # the new generation: the current one + 1
//! algorithm = "p384"         # rsa2048 | rsa3072 | rsa4096 | p384 (ml-dsa-65: not yet)
//! key = "software"           # or "pkcs11" with module and token
//! not_before = "2027-01-01T00:00:00Z"
//! activation = "2027-02-01T00:00:00Z"
//! name = "same"              # "same" (JPKI: link certificates) or a new subject DN
//! ```

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::authority::Generation;
use crate::error::{Error, Result};
use crate::hierarchy::CaId;
use crate::key::KeyAlgorithm;

/// The longest end-entity validity: up to the fifth birthday after issuance (≤ 5 years and a
/// day), and never past the card. A new issuing key must be active at least this long before
/// the old CA certificate expires, so that every certificate the old key issued expires first.
pub const LONGEST_END_ENTITY_SECS: i64 = (5 * 366 + 1) * 86_400;

/// A ceremony file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ceremony {
    /// The CA's slug.
    pub ca: String,
    /// The new generation's number.
    pub generation: i64,
    /// Key algorithm name.
    pub algorithm: String,
    /// `software` or `pkcs11`.
    pub key: String,
    /// PKCS#11 module (with `key = "pkcs11"`).
    pub module: Option<String>,
    /// PKCS#11 token label (with `key = "pkcs11"`).
    pub token: Option<String>,
    /// notBefore of the new CA certificate (RFC 3339; may lie in the future).
    pub not_before: String,
    /// When issuance switches to the new key (RFC 3339).
    pub activation: String,
    /// `same` for a same-name re-key, or the new subject DN.
    pub name: String,
}

/// One step of a ceremony, as `plan` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Generate the key.
    GenerateKey {
        /// Algorithm.
        algorithm: KeyAlgorithm,
        /// Where.
        store: String,
    },
    /// Sign the new CA certificate.
    CaCertificate {
        /// Subject (`same name` or the new DN).
        subject: String,
        /// Who signs it (`self` for a root, the parent CA otherwise).
        signer: String,
        /// notBefore (unix seconds).
        not_before: i64,
    },
    /// A link certificate (RFC 4210 §4.4): `new_with_old` is signed by the old key.
    Link {
        /// NewWithOld (the new key certified by the old) or OldWithNew.
        new_with_old: bool,
        /// The algorithm that signs it.
        signed_with: KeyAlgorithm,
    },
    /// The new generation waits, pending, until its activation; then it issues and the old
    /// one retires (CRLs and OCSP material only).
    Activate {
        /// Unix seconds.
        at: i64,
        /// The generation that retires, if any.
        retires: Option<i64>,
    },
}

fn rfc3339(t: i64) -> String {
    OffsetDateTime::from_unix_timestamp(t).ok().and_then(|t| t.format(&Rfc3339).ok()).unwrap_or_else(|| t.to_string())
}

fn instant(what: &'static str, s: &str) -> Result<i64> {
    OffsetDateTime::parse(s, &Rfc3339).map(|t| t.unix_timestamp()).map_err(|e| Error::invalid(what, e))
}

/// Parses a ceremony file.
pub fn parse(text: &str) -> Result<Ceremony> {
    toml::from_str(text).map_err(|e| Error::invalid("ceremony file", e))
}

/// The steps of `c` for the CA whose current generation is `current` (none for a new CA), at
/// `now`; or why the ceremony may not run.
pub fn plan(c: &Ceremony, current: Option<&Generation>, now: i64) -> Result<Vec<Step>> {
    let ca = CaId::parse(&c.ca)?;
    if c.algorithm == "ml-dsa-65" {
        return Err(Error::invalid("algorithm", "ml-dsa-65 generations are not supported yet"));
    }
    let algorithm = KeyAlgorithm::parse(&c.algorithm)?;
    let store = match (c.key.as_str(), &c.module, &c.token) {
        ("software", None, None) => "the software key store".to_owned(),
        ("pkcs11", Some(m), Some(t)) => format!("PKCS#11 token {t:?} ({m})"),
        ("software", _, _) => return Err(Error::invalid("key", "a software key takes no module or token")),
        ("pkcs11", _, _) => return Err(Error::invalid("key", "pkcs11 needs module and token")),
        (k, _, _) => return Err(Error::invalid("key", format!("{k:?}: software or pkcs11"))),
    };
    let expected = current.map_or(1, |g| g.generation + 1);
    if c.generation != expected {
        return Err(Error::invalid(
            "generation",
            format!("{}: the next generation of {} is {expected}", c.generation, c.ca),
        ));
    }
    let (not_before, activation) = (instant("not_before", &c.not_before)?, instant("activation", &c.activation)?);
    if activation < now {
        return Err(Error::invalid("activation", "lies in the past"));
    }
    if activation < not_before {
        return Err(Error::invalid("activation", "before the new certificate's notBefore"));
    }
    if let Some(old) = current {
        // Every certificate the old key issues until the switch must expire before the old CA
        // certificate does.
        let latest = old.not_after - LONGEST_END_ENTITY_SECS;
        if activation > latest {
            return Err(Error::refused(
                "overlap",
                format!(
                    "{} g{} expires at {}; its successor must take over issuance by {} (the longest end-entity validity before)",
                    c.ca,
                    old.generation,
                    rfc3339(old.not_after),
                    rfc3339(latest)
                ),
            ));
        }
    }
    let same = c.name == "same";
    if !same {
        c.name.parse::<x509_cert::name::Name>().map_err(|e| Error::invalid("name", e))?;
    }
    let mut steps = vec![
        Step::GenerateKey { algorithm, store },
        Step::CaCertificate {
            subject: if same { "the CA's current name".into() } else { c.name.clone() },
            signer: if ca.prefecture.is_none() { "self".into() } else { "the current root key".into() },
            not_before,
        },
    ];
    if let (Some(old), true, None) = (current, same, &ca.prefecture) {
        // Same-name root re-key: verifiers holding either root reach the other.
        steps.push(Step::Link { new_with_old: true, signed_with: old.algorithm });
        steps.push(Step::Link { new_with_old: false, signed_with: algorithm });
    }
    steps.push(Step::Activate { at: activation, retires: current.map(|g| g.generation) });
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_478_400; // 2026-11-24

    fn file(extra: &str) -> String {
        format!(
            "ca = \"sign-root\"\ngeneration = 2\nalgorithm = \"p384\"\nkey = \"software\"\n\
             not_before = \"2026-12-01T00:00:00Z\"\nactivation = \"2027-01-01T00:00:00Z\"\n{extra}"
        )
    }

    fn old(not_after: i64) -> Generation {
        Generation {
            ca: CaId::parse("sign-root").unwrap_or_else(|e| panic!("{e}")),
            generation: 1,
            algorithm: KeyAlgorithm::Rsa2048,
            key_ref: String::new(),
            certificate: Vec::new(),
            key_id: Vec::new(),
            not_after,
            shards: 1,
        }
    }

    #[test]
    fn a_same_name_root_rekey_plans_both_link_certificates_signed_with_each_algorithm() {
        let c = parse(&file("name = \"same\"")).unwrap_or_else(|e| panic!("{e}"));
        let steps = plan(&c, Some(&old(NOW + 10 * 365 * 86_400)), NOW).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(steps[0], Step::GenerateKey { algorithm: KeyAlgorithm::EcP384, .. }));
        assert!(steps.contains(&Step::Link { new_with_old: true, signed_with: KeyAlgorithm::Rsa2048 }));
        assert!(steps.contains(&Step::Link { new_with_old: false, signed_with: KeyAlgorithm::EcP384 }));
        assert!(matches!(steps.last(), Some(Step::Activate { retires: Some(1), .. })));
    }

    #[test]
    fn the_overlap_policy_refuses_a_successor_activated_too_late() {
        let c = parse(&file("name = \"same\"")).unwrap_or_else(|e| panic!("{e}"));
        // The old root expires two years after the activation: certificates it issued just
        // before the switch (up to five years) would outlive it.
        let r = plan(&c, Some(&old(NOW + 2 * 365 * 86_400)), NOW);
        assert_eq!(r.map_err(|e| e.kind()), Err("overlap"));
    }

    #[test]
    fn bad_ceremonies_are_refused_before_anything_is_planned() {
        let bad = [
            file("name = \"same\"\nunknown = 1"),
            file("name = \"same\"").replace("p384", "ml-dsa-65"),
            file("name = \"same\"").replace("p384", "rsa1024"),
            file("name = \"same\"").replace("generation = 2", "generation = 3"),
            file("name = \"same\"").replace("2027-01-01", "2026-01-01"),
            file("name = \"same\"").replace("key = \"software\"", "key = \"pkcs11\""),
            file("name = \"not a DN\""),
        ];
        for b in bad {
            let r = parse(&b).and_then(|c| plan(&c, Some(&old(NOW + 10 * 365 * 86_400)), NOW));
            assert!(r.is_err(), "{b}");
        }
    }
}
