//! Which certificates a change notice revokes (jpki.md §2.1), as a table: pure, one test per
//! row. A change of name, address, date of birth or sex — and a move out, which changes the
//! address — revokes the signature certificate (affiliationChanged); removal from the register
//! (death, emigration, ex-officio removal) revokes both (cessationOfOperation); a resident-code
//! change revokes neither (the CA re-keys its records to the new code instead).

#![forbid(clippy::disallowed_methods)]

use identity::notice::NoticeKind;

use crate::crl::Reason;

/// The kind of an issued certificate. Stored numbers, forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CertKind {
    /// 署名用電子証明書.
    Signature = 1,
    /// 利用者証明用電子証明書.
    Authentication = 2,
    /// Delegated OCSP responder.
    OcspResponder = 3,
    /// A CA certificate (issuing CA under a root).
    Authority = 4,
}

impl CertKind {
    /// Every kind.
    pub const ALL: [Self; 4] = [Self::Signature, Self::Authentication, Self::OcspResponder, Self::Authority];
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Signature => "signature",
            Self::Authentication => "authentication",
            Self::OcspResponder => "ocsp-responder",
            Self::Authority => "ca",
        }
    }
    /// From the stored number.
    pub fn from_code(n: i64) -> crate::Result<Self> {
        Self::ALL.into_iter().find(|k| *k as i64 == n).ok_or_else(|| crate::Error::corrupt("certificate kind", n))
    }
}

/// What one change notice does to a resident's certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Decision {
    /// Revoke the signature certificate, for this reason.
    pub signature: Option<Reason>,
    /// Revoke the authentication certificate, for this reason.
    pub authentication: Option<Reason>,
    /// The resident code changed: move the CA's records to the new code.
    pub rekey: bool,
}

/// Items whose change revokes the signature certificate (the SAN carries them).
pub const SIGNATURE_ITEMS: [&str; 4] = ["name", "address", "date_of_birth", "sex"];

/// The rule table.
pub fn decide(kind: NoticeKind, changed: &[String]) -> Decision {
    let removal = matches!(kind, NoticeKind::Death | NoticeKind::Emigration | NoticeKind::RemovalExOfficio);
    if removal {
        return Decision {
            signature: Some(Reason::CessationOfOperation),
            authentication: Some(Reason::CessationOfOperation),
            rekey: false,
        };
    }
    let items_changed = changed.iter().any(|c| SIGNATURE_ITEMS.contains(&c.as_str()));
    let signature = (items_changed || kind == NoticeKind::MoveOut).then_some(Reason::AffiliationChanged);
    Decision { signature, authentication: None, rekey: kind == NoticeKind::CodeChange }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    const AFF: Option<Reason> = Some(Reason::AffiliationChanged);
    const CESS: Option<Reason> = Some(Reason::CessationOfOperation);

    #[test]
    fn rule_table() {
        use NoticeKind::*;
        // (kind, changed items, signature, authentication, rekey)
        type Row = (NoticeKind, &'static [&'static str], Option<Reason>, Option<Reason>, bool);
        let table: &[Row] = &[
            (MoveWithin, &["address"], AFF, None, false),
            (Correction, &["name"], AFF, None, false),
            (Correction, &["date_of_birth"], AFF, None, false),
            (Correction, &["sex"], AFF, None, false),
            (Correction, &["name", "address"], AFF, None, false),
            (MoveOut, &["status"], AFF, None, false),
            (MoveIn, &["address", "municipality", "status"], AFF, None, false),
            (Death, &["status"], CESS, CESS, false),
            (Emigration, &["status"], CESS, CESS, false),
            (RemovalExOfficio, &["status"], CESS, CESS, false),
            (CodeChange, &["resident_code"], None, None, true),
            (
                Birth,
                &["name", "address", "date_of_birth", "sex", "resident_code", "status", "municipality"],
                AFF,
                None,
                false,
            ),
        ];
        for (kind, changed, sig, auth, rekey) in table {
            let d = decide(*kind, &v(changed));
            assert_eq!(d, Decision { signature: *sig, authentication: *auth, rekey: *rekey }, "{kind:?} {changed:?}");
        }
    }
}
