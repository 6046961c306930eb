//! RFC 5280 section 6.3.3 (CRL Processing) over every CRL at hand for one certificate
//!
//! [`process_crl`](crate::crl) judges one CRL against the certificate's issuer on the path. This
//! module judges the set, as section 6.3.3 does:
//!
//! - every distribution point of the certificate, then the CRLs of its issuer not named in one
//!   (step (b), including `nameRelativeToCRLIssuer` names);
//! - the reasons each CRL covers, accumulated across CRLs (`reasons_mask`, steps (d) and (l)), so
//!   CRLs partitioned by `onlySomeReasons` together settle a status;
//! - indirect CRLs: a distribution point's `cRLIssuer`, and the `certificateIssuer` entry extension
//!   that says whose certificates the following entries are (section 5.3.3);
//! - delta CRLs applied to the complete CRL they extend (steps (c), (h), (i) and (k), section 5.2.4);
//! - the CRL issuer's own certification path when the CRL is signed by a key other than the one
//!   that issued the certificate: a CA with a separate CRL signing key, or a CA that rolled its key
//!   over under the same name (step (f)). That path must end at the trust anchor of the path being
//!   validated.
//!
//! One deliberate difference from the letter of section 6.3.3: every usable CRL is consulted, not
//! only until `reasons_mask` is complete, and a listing on any of them counts. A CA that rolled its
//! key over may publish a complete CRL under each key for one name; each is a complete CRL for the
//! same scope, and stopping at the first would let the order of the inputs decide (PKITS 4.5.5).
//! Of two complete CRLs for the same scope signed under the same key identifier, only the one with
//! the higher CRL number is consulted, so a newer CRL that no longer lists a certificate on hold
//! supersedes the older one that did.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use alloc::{format, vec};

use const_oid::db::rfc5280::ANY_POLICY;
use const_oid::db::rfc5912::{
    ID_CE_AUTHORITY_KEY_IDENTIFIER, ID_CE_BASIC_CONSTRAINTS, ID_CE_CERTIFICATE_ISSUER,
    ID_CE_CRL_DISTRIBUTION_POINTS, ID_CE_CRL_NUMBER, ID_CE_CRL_REASONS, ID_CE_DELTA_CRL_INDICATOR,
    ID_CE_FRESHEST_CRL, ID_CE_HOLD_INSTRUCTION_CODE, ID_CE_INVALIDITY_DATE,
    ID_CE_ISSUING_DISTRIBUTION_POINT,
};
use der::{Decode, DerOrd, Encode};
use log::{debug, info};
use x509_cert::certificate::Raw;
use x509_cert::crl::{CertificateList, RevokedCert};
use x509_cert::ext::pkix::crl::dp::{ReasonFlags, Reasons};
use x509_cert::ext::pkix::crl::{BaseCrlNumber, CrlNumber, CrlReason};
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName, GeneralNames};
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, IssuingDistributionPoint};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::spki::SubjectPublicKeyInfoOwned;

use crate::revocation::crl::{check_crl_extensions, check_crl_sign, check_crl_validity};
use crate::revocation::subject_name_and_key::SubjectNameAndKey;
use crate::{
    compare_names, enforce_trust_anchor_constraints, get_crl_info, hex_skid_from_cert,
    name_to_string, CertificationPath, CertificationPathResults, CertificationPathSettings,
    DeferDecodeSigned, Error, ExtensionProcessing, PDVCertificate, PDVExtension,
    PDVTrustAnchorChoice, PathValidationStatus, PkiEnvironment, Result, PS_EXTENDED_KEY_USAGE,
    PS_EXTENDED_KEY_USAGE_PATH, PS_KEY_USAGE,
};

/// How many CRL issuer paths may be validated one inside another: the CRL of a certificate is
/// signed under a CRL issuer's key, whose own path's CRLs may be signed under another, and so on.
/// Hostile input could chain these without end; real PKIs need one or two.
pub(crate) const MAX_CRL_ISSUER_DEPTH: usize = 4;

/// Where the certificate whose status is asked sits.
#[derive(Clone, Copy)]
pub(crate) struct CrlContext<'a> {
    /// The trust anchor of the path being validated. Section 6.3.3 (f): the certification path
    /// of a CRL issuer must end at this same trust anchor.
    pub(crate) trust_anchor: &'a PDVTrustAnchorChoice,
    /// The certificates whose paths are being validated, outermost first: the target of the
    /// original path, then each CRL issuer whose path is being validated to settle a CRL above it.
    /// A CRL issuer already on this stack is not validated again (PKITS 4.14.30: a CRL issuer whose
    /// certificate is in the scope of the CRL it signs), and the stack is at most
    /// [`MAX_CRL_ISSUER_DEPTH`] deep.
    pub(crate) stack: &'a [&'a PDVCertificate],
}

/// What the CRLs say of a certificate: the `cert_status` of section 6.3.3 once the CRLs are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Listing {
    /// Not listed (or listed removeFromCRL on a delta CRL, step (k)).
    Unrevoked,
    /// Listed, with the entry's reason code (unspecified when it carries none).
    Revoked(CrlReason),
}

/// A CRL parsed once, with what the steps below ask of it.
struct ParsedCrl<'b> {
    buf: &'b [u8],
    crl: CertificateList<Raw>,
    idp: Option<IssuingDistributionPoint>,
    /// The IssuingDistributionPoint as encoded, to compare a delta CRL's scope with (step (c)(2)).
    idp_der: Option<Vec<u8>>,
    /// The AuthorityKeyIdentifier's keyIdentifier (step (c)(3)).
    aki: Option<Vec<u8>>,
    /// cRLNumber, big-endian without leading zeros.
    number: Option<Vec<u8>>,
    /// Whether the cRLNumber extension is marked critical; `None` without one.
    number_critical: Option<bool>,
    /// For a delta CRL, the BaseCRLNumber of its DeltaCRLIndicator.
    base: Option<Vec<u8>>,
    freshest: bool,
}

impl<'b> ParsedCrl<'b> {
    fn parse(buf: &'b [u8]) -> Option<Self> {
        let crl = CertificateList::<Raw>::from_der(buf).ok()?;
        let mut parsed = ParsedCrl {
            buf,
            crl,
            idp: None,
            idp_der: None,
            aki: None,
            number: None,
            number_critical: None,
            base: None,
            freshest: false,
        };
        if let Some(exts) = &parsed.crl.tbs_cert_list.crl_extensions {
            for ext in exts.iter() {
                let value = ext.extn_value.as_bytes();
                match ext.extn_id {
                    ID_CE_ISSUING_DISTRIBUTION_POINT => {
                        parsed.idp = Some(IssuingDistributionPoint::from_der(value).ok()?);
                        parsed.idp_der = Some(value.to_vec());
                    }
                    ID_CE_AUTHORITY_KEY_IDENTIFIER => {
                        parsed.aki = AuthorityKeyIdentifier::from_der(value)
                            .ok()?
                            .key_identifier
                            .map(|k| k.as_bytes().to_vec());
                    }
                    ID_CE_CRL_NUMBER => {
                        parsed.number =
                            Some(unsigned(CrlNumber::from_der(value).ok()?.0.as_bytes()));
                        parsed.number_critical = Some(ext.critical);
                    }
                    ID_CE_DELTA_CRL_INDICATOR => {
                        parsed.base =
                            Some(unsigned(BaseCrlNumber::from_der(value).ok()?.0.as_bytes()));
                    }
                    ID_CE_FRESHEST_CRL => parsed.freshest = true,
                    _ => {}
                }
            }
        }
        Some(parsed)
    }

    fn issuer(&self) -> &Name {
        &self.crl.tbs_cert_list.issuer
    }

    fn is_delta(&self) -> bool {
        self.base.is_some()
    }

    fn this_update(&self) -> u64 {
        self.crl
            .tbs_cert_list
            .this_update
            .to_unix_duration()
            .as_secs()
    }

    fn next_update(&self) -> Option<u64> {
        self.crl
            .tbs_cert_list
            .next_update
            .map(|t| t.to_unix_duration().as_secs())
    }

    /// True when `other` is a newer complete CRL for the same scope under the same key identifier,
    /// which makes this one superfluous.
    fn superseded_by(&self, other: &ParsedCrl<'_>) -> bool {
        if !compare_names(self.issuer(), other.issuer())
            || self.idp_der != other.idp_der
            || self.aki != other.aki
        {
            return false;
        }
        match (&self.number, &other.number) {
            (Some(mine), Some(theirs)) => number_lt(mine, theirs),
            _ => self.this_update() < other.this_update(),
        }
    }

    fn info(&self) -> Option<crate::CrlInfo> {
        get_crl_info(&self.crl).ok()
    }
}

/// The value octets of an INTEGER read as unsigned, without leading zero octets.
fn unsigned(bytes: &[u8]) -> Vec<u8> {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes[first..].to_vec()
}

/// `a < b` for two unsigned big-endian numbers without leading zeros.
fn number_lt(a: &[u8], b: &[u8]) -> bool {
    (a.len(), a) < (b.len(), b)
}

/// A distribution point as section 6.3.3 reads it: the certificate's own, or the one assumed for
/// CRLs of the certificate issuer not named in any ("a DP with both the reasons and the cRLIssuer
/// fields omitted and a distribution point name of the certificate issuer").
struct Dp {
    names: Option<Vec<GeneralName>>,
    reasons: Option<ReasonFlags>,
    crl_issuer: Option<GeneralNames>,
}

/// All eight revocation reasons (`unused` is not one).
fn all_reasons() -> ReasonFlags {
    Reasons::KeyCompromise
        | Reasons::CaCompromise
        | Reasons::AffiliationChanged
        | Reasons::Superseded
        | Reasons::CessationOfOperation
        | Reasons::CertificateHold
        | Reasons::PrivilegeWithdrawn
        | Reasons::AaCompromise
}

/// The names a DistributionPointName stands for. A `nameRelativeToCRLIssuer` fragment is appended
/// to the distinguished name of the CRL issuer (section 4.2.1.13 for a distribution point, whose
/// CRL issuer is its cRLIssuer or else the certificate issuer; section 5.2.5 for an issuing
/// distribution point, whose CRL issuer is the CRL's).
fn dp_names(dpn: &DistributionPointName, crl_issuer: &Name) -> Vec<GeneralName> {
    match dpn {
        DistributionPointName::FullName(names) => names.clone(),
        DistributionPointName::NameRelativeToCRLIssuer(rdn) => {
            vec![GeneralName::DirectoryName(append_rdn(crl_issuer, rdn))]
        }
    }
}

fn append_rdn(name: &Name, rdn: &RelativeDistinguishedName) -> Name {
    let mut rdns: RdnSequence = name.clone().into();
    rdns.push(rdn.clone());
    Name::hazmat_from_rdn_sequence(rdns)
}

fn general_name_eq(a: &GeneralName, b: &GeneralName) -> bool {
    match (a, b) {
        (GeneralName::DirectoryName(a), GeneralName::DirectoryName(b)) => compare_names(a, b),
        _ => a == b,
    }
}

fn any_in_common(a: &[GeneralName], b: &[GeneralName]) -> bool {
    a.iter().any(|x| b.iter().any(|y| general_name_eq(x, y)))
}

fn directory_names(names: &[GeneralName]) -> impl Iterator<Item = &Name> {
    names.iter().filter_map(|n| match n {
        GeneralName::DirectoryName(dn) => Some(dn),
        _ => None,
    })
}

fn is_ca(cert: &PDVCertificate) -> bool {
    matches!(
        cert.get_extension(&ID_CE_BASIC_CONSTRAINTS),
        Ok(Some(PDVExtension::BasicConstraints(bc))) if bc.ca
    )
}

/// The distribution points to read the CRLs through: the certificate's, then the one assumed for
/// CRLs of the certificate issuer (section 6.3.3, last paragraphs), which is the only one when the
/// certificate has no cRLDistributionPoints extension.
fn distribution_points(target: &PDVCertificate) -> Vec<Dp> {
    let issuer = target.decoded().tbs_certificate().issuer();
    let mut dps = Vec::new();
    if let Ok(Some(PDVExtension::CrlDistributionPoints(crldp))) =
        target.get_extension(&ID_CE_CRL_DISTRIBUTION_POINTS)
    {
        for dp in &crldp.0 {
            let base = dp
                .crl_issuer
                .as_deref()
                .and_then(|gns| directory_names(gns).next())
                .unwrap_or(issuer);
            dps.push(Dp {
                names: dp.distribution_point.as_ref().map(|n| dp_names(n, base)),
                reasons: dp.reasons,
                crl_issuer: dp.crl_issuer.clone(),
            });
        }
    }
    dps.push(Dp {
        names: Some(vec![GeneralName::DirectoryName(issuer.clone())]),
        reasons: None,
        crl_issuer: None,
    });
    dps
}

/// Steps (b) and (d) for one distribution point: whether the complete CRL is in its scope and, if
/// so, the reasons it covers there (the interim_reasons_mask).
fn scope(dp: &Dp, crl: &ParsedCrl<'_>, target: &PDVCertificate) -> Option<ReasonFlags> {
    let cert_issuer = target.decoded().tbs_certificate().issuer();
    // (b)(1) the CRL issuer is the DP's cRLIssuer, on an indirect CRL, or else the certificate's
    // issuer.
    match &dp.crl_issuer {
        Some(crl_issuers) => {
            let named = directory_names(crl_issuers).any(|n| compare_names(n, crl.issuer()));
            let indirect = crl.idp.as_ref().map(|i| i.indirect_crl).unwrap_or(false);
            if !named || !indirect {
                return None;
            }
        }
        None => {
            if !compare_names(cert_issuer, crl.issuer()) {
                return None;
            }
        }
    }
    // (b)(2) the issuing distribution point
    if let Some(idp) = &crl.idp {
        if let Some(idp_name) = &idp.distribution_point {
            let idp_names = dp_names(idp_name, crl.issuer());
            let matched = match (&dp.names, &dp.crl_issuer) {
                (Some(names), _) => any_in_common(names, &idp_names),
                (None, Some(crl_issuers)) => any_in_common(crl_issuers, &idp_names),
                (None, None) => false,
            };
            if !matched {
                return None;
            }
        }
        let ca = is_ca(target);
        if (idp.only_contains_user_certs && ca)
            || (idp.only_contains_ca_certs && !ca)
            || idp.only_contains_attribute_certs
        {
            return None;
        }
    }
    // (d) interim_reasons_mask
    let idp_reasons = crl.idp.as_ref().and_then(|i| i.only_some_reasons);
    let interim = match (idp_reasons, dp.reasons) {
        (Some(i), Some(d)) => i & d,
        (Some(i), None) => i,
        (None, Some(d)) => d,
        (None, None) => all_reasons(),
    };
    Some(interim & all_reasons())
}

/// Whether the CRL's signature verifies under `key`. Quiet, unlike `verify_crl`, because several
/// candidate keys are tried and all but one are expected to fail.
fn signed_by(pe: &PkiEnvironment, crl: &ParsedCrl<'_>, key: &dyn SubjectNameAndKey) -> bool {
    let Ok(defer) = DeferDecodeSigned::from_der(crl.buf) else {
        return false;
    };
    pe.verify_signature_message(
        pe,
        &defer.tbs_field,
        &defer.signature,
        &defer.signature_algorithm,
        key.spki(),
    )
    .is_ok()
}

/// The key a CRL was verified with (step (f)).
enum CrlSigner<'s> {
    /// The certificate's issuer on the path, or the path's trust anchor.
    OnPath(&'s dyn SubjectNameAndKey),
    /// Another certificate of the CRL issuer, whose own path was validated to the same trust anchor.
    Other(PDVCertificate),
}

impl CrlSigner<'_> {
    fn key(&self) -> &dyn SubjectNameAndKey {
        match self {
            CrlSigner::OnPath(k) => *k,
            CrlSigner::Other(c) => c.as_ref(),
        }
    }
}

/// Settings for validating a CRL issuer's path: those of the path being validated (its time of
/// interest, revocation settings and the trust anchor's constraints) without the inputs that
/// describe what the relying party wants of its target -- the initial policy set and policy
/// indicators, and required key usages -- which do not bind a CRL issuer.
fn crl_issuer_settings(
    cps: &CertificationPathSettings,
    ta: &PDVTrustAnchorChoice,
) -> Result<CertificationPathSettings> {
    let mut issuer_cps = cps.clone();
    issuer_cps.set_initial_policy_set(vec![ANY_POLICY.to_string()]);
    issuer_cps.set_initial_explicit_policy_indicator(false);
    issuer_cps.set_initial_policy_mapping_inhibit_indicator(false);
    issuer_cps.set_initial_inhibit_any_policy_indicator(false);
    issuer_cps.0.remove(PS_KEY_USAGE);
    issuer_cps.0.remove(PS_EXTENDED_KEY_USAGE);
    issuer_cps.0.remove(PS_EXTENDED_KEY_USAGE_PATH);
    enforce_trust_anchor_constraints(&issuer_cps, ta)
}

/// Step (f) for a certificate that is not on the path: a certification path for it that ends at
/// the context's trust anchor, validates, and whose certificates are not revoked. `Err` says why
/// none does, for the log.
fn validate_crl_issuer(
    pe: &PkiEnvironment,
    cps: &CertificationPathSettings,
    ctx: &CrlContext<'_>,
    candidate: &PDVCertificate,
) -> core::result::Result<(), String> {
    if ctx
        .stack
        .iter()
        .any(|c| c.as_bytes() == candidate.as_bytes())
    {
        // Its path is being validated further out; the CRL is in scope for its own signer.
        return Ok(());
    }
    if ctx.stack.len() >= MAX_CRL_ISSUER_DEPTH {
        return Err(format!(
            "CRL issuer paths nested more than {MAX_CRL_ISSUER_DEPTH} deep"
        ));
    }
    let mut paths: Vec<CertificationPath> = Vec::new();
    let _ = pe.get_paths_for_target(candidate, &mut paths, 0, cps.get_time_of_interest());
    let mut why = String::from("no certification path to the same trust anchor");
    for path in paths
        .iter()
        .filter(|p| p.trust_anchor.as_bytes() == ctx.trust_anchor.as_bytes())
    {
        let issuer_cps = match crl_issuer_settings(cps, &path.trust_anchor) {
            Ok(c) => c,
            Err(e) => {
                why = format!("{e}");
                continue;
            }
        };
        let mut cpr = CertificationPathResults::new();
        if let Err(e) = pe.validate_path(pe, &issuer_cps, path, &mut cpr) {
            why = format!("its certification path does not validate: {e}");
            continue;
        }
        let mut stack = ctx.stack.to_vec();
        stack.push(candidate);
        match crate::check_revocation::check_revocation_local_in(
            pe,
            &issuer_cps,
            path,
            &mut cpr,
            &stack,
        ) {
            Ok(()) => return Ok(()),
            Err(Error::PathValidation(PathValidationStatus::CertificateRevokedEndEntity)) => {
                why = String::from("the CRL issuer's certificate is revoked");
            }
            Err(e) => why = format!("revocation status of its certification path: {e}"),
        }
    }
    Err(why)
}

/// Steps (f) and (g): the key the CRL verifies under and that may sign CRLs for the certificate.
///
/// Tried in turn: the certificate's issuer on the path and the path's trust anchor, whose keys the
/// path has already established, when they bear the CRL issuer's name; then every certificate in the
/// CRL issuer's name, those whose key identifier is the CRL's authority key identifier first. Each
/// must verify the CRL, assert cRLSign if it has a key usage extension, and, when not on the path,
/// have a certification path of its own to the same trust anchor (see [`validate_crl_issuer`]).
fn crl_signer<'s>(
    pe: &PkiEnvironment,
    cps: &CertificationPathSettings,
    ctx: &CrlContext<'s>,
    issuer: &'s dyn SubjectNameAndKey,
    crl: &ParsedCrl<'_>,
) -> core::result::Result<CrlSigner<'s>, String> {
    let ta: &'s dyn SubjectNameAndKey = ctx.trust_anchor.decoded();
    let mut why = String::from("no certificate of the CRL issuer verifies its signature");
    for on_path in [issuer, ta] {
        let named = on_path
            .subject_name()
            .map(|n| compare_names(n, crl.issuer()))
            .unwrap_or(false);
        if named && signed_by(pe, crl, on_path) {
            match check_crl_sign(on_path) {
                Ok(()) => return Ok(CrlSigner::OnPath(on_path)),
                Err(_) => why = String::from("the CRL issuer's key usage lacks cRLSign"),
            }
        }
    }

    let aki_hex = crl.aki.as_deref().map(crate::buffer_to_hex);
    let mut candidates: Vec<&PDVCertificate> = pe.get_cert_by_name(crl.issuer());
    candidates.sort_by_key(|c| Some(hex_skid_from_cert(c)) != aki_hex);
    // Each certificate once, and each key's signature check once: input may repeat either any
    // number of times. Every certificate whose key verifies is tried, though, because the same key
    // may be certified more than once with different paths (a new root key's self-signed
    // certificate, which has no path to an old anchor, and its new-with-old link certificate, which
    // has one).
    let mut seen: Vec<&[u8]> = Vec::new();
    let mut verifies: Vec<(&SubjectPublicKeyInfoOwned, bool)> = Vec::new();
    for candidate in candidates {
        if seen.contains(&candidate.as_bytes()) {
            continue;
        }
        seen.push(candidate.as_bytes());
        let spki = candidate
            .decoded()
            .tbs_certificate()
            .subject_public_key_info();
        let signed = match verifies.iter().find(|(k, _)| *k == spki) {
            Some((_, signed)) => *signed,
            None => {
                let signed = signed_by(pe, crl, candidate.as_ref());
                verifies.push((spki, signed));
                signed
            }
        };
        if !signed {
            continue;
        }
        if check_crl_sign(candidate.as_ref()).is_err() {
            why = String::from("the CRL issuer's key usage lacks cRLSign");
            continue;
        }
        match validate_crl_issuer(pe, cps, ctx, candidate) {
            Ok(()) => return Ok(CrlSigner::Other(candidate.clone())),
            Err(e) => {
                why = format!(
                    "the CRL issuer certificate path could not be validated: {e} ({})",
                    name_to_string(candidate.decoded().tbs_certificate().subject())
                );
            }
        }
    }
    Err(why)
}

/// Whether every critical extension of a CRL entry is one this module processes (section 5.3: a
/// CRL with a critical entry extension the application cannot process MUST NOT be used for any
/// certificate).
fn entry_understood(rc: &RevokedCert<Raw>) -> bool {
    let known = [
        ID_CE_INVALIDITY_DATE,
        ID_CE_CRL_REASONS,
        ID_CE_HOLD_INSTRUCTION_CODE,
        ID_CE_CERTIFICATE_ISSUER,
    ];
    rc.crl_entry_extensions
        .iter()
        .flatten()
        .all(|e| !e.critical || known.contains(&e.extn_id))
}

/// Looks the certificate up on a CRL (section 5.3.3): an entry matches when its serial number is
/// the certificate's and its certificate issuer -- named by the nearest certificateIssuer entry
/// extension at or above it, else the CRL issuer -- is the certificate's issuer. `Err` when the CRL
/// must not be used at all.
fn listing(
    crl: &ParsedCrl<'_>,
    target: &PDVCertificate,
) -> core::result::Result<Option<(Listing, Vec<u8>)>, &'static str> {
    let cert_issuer = target.decoded().tbs_certificate().issuer();
    let serial = target.decoded().tbs_certificate().serial_number();
    let mut entry_issuer = vec![GeneralName::DirectoryName(crl.issuer().clone())];
    let mut found = None;
    for rc in crl.crl.tbs_cert_list.revoked_certificates.iter().flatten() {
        if !entry_understood(rc) {
            return Err("an unrecognized critical CRL entry extension");
        }
        let mut reason = CrlReason::Unspecified;
        for ext in rc.crl_entry_extensions.iter().flatten() {
            match ext.extn_id {
                ID_CE_CERTIFICATE_ISSUER => {
                    entry_issuer = GeneralNames::from_der(ext.extn_value.as_bytes())
                        .map_err(|_| "a certificateIssuer entry extension that does not decode")?;
                }
                ID_CE_CRL_REASONS => {
                    reason = CrlReason::from_der(ext.extn_value.as_bytes())
                        .map_err(|_| "a reasonCode entry extension that does not decode")?;
                }
                _ => {}
            }
        }
        if found.is_none()
            && rc
                .serial_number
                .der_cmp(serial)
                .map(|o| o == core::cmp::Ordering::Equal)
                .unwrap_or(false)
            && directory_names(&entry_issuer).any(|n| compare_names(n, cert_issuer))
        {
            let listing = if reason == CrlReason::RemoveFromCRL {
                Listing::Unrevoked
            } else {
                Listing::Revoked(reason)
            };
            found = Some((listing, rc.to_der().unwrap_or_default()));
        }
    }
    Ok(found)
}

/// Step (c): the delta CRL that extends `complete` -- same issuer, same scope (issuing distribution
/// point), same authority key identifier, a BaseCRLNumber not above the complete CRL's number and a
/// CRL number above it (section 5.2.4) -- that is current, has no unrecognized critical extension
/// and verifies under the complete CRL's signer (step (h)). The one with the highest number wins.
fn delta_for<'c, 'b>(
    pe: &PkiEnvironment,
    cps: &CertificationPathSettings,
    complete: &ParsedCrl<'_>,
    deltas: &'c [ParsedCrl<'b>],
    signer: &dyn SubjectNameAndKey,
) -> Option<&'c ParsedCrl<'b>> {
    let number = complete.number.as_ref()?;
    let toi = cps.get_time_of_interest();
    deltas
        .iter()
        .filter(|d| {
            compare_names(d.issuer(), complete.issuer())
                && d.idp_der == complete.idp_der
                && d.aki == complete.aki
                && d.base.as_ref().is_some_and(|b| !number_lt(number, b))
                && d.number.as_ref().is_some_and(|n| number_lt(number, n))
                && check_crl_validity(toi, cps.get_revocation_max_age(), &d.crl).is_ok()
                && d.crl
                    .tbs_cert_list
                    .crl_extensions
                    .as_ref()
                    .is_none_or(|e| check_crl_extensions(e).is_ok())
                && d.crl.signature_algorithm == d.crl.tbs_cert_list.signature
                && signed_by(pe, d, signer)
        })
        .max_by(|a, b| {
            let (a, b) = (a.number.as_deref(), b.number.as_deref());
            (a.map(<[u8]>::len), a).cmp(&(b.map(<[u8]>::len), b))
        })
}

/// RFC 5280 section 6.3.3 for `target`, issued by `issuer` on the path, from `crls` (complete and
/// delta CRLs, DER; ones that do not parse or do not concern the certificate are passed over).
///
/// Returns `Ok` when the usable CRLs together cover every reason and none lists the certificate;
/// `Err(PathValidation(CertificateRevoked))` when one lists it (certificateHold included); any other
/// error leaves the status undetermined. Each CRL consulted is noted in `cpr` at `result_index`,
/// as contributing or failed.
#[allow(clippy::too_many_arguments)]
pub(crate) fn crl_status(
    pe: &PkiEnvironment,
    cps: &CertificationPathSettings,
    cpr: &mut CertificationPathResults,
    ctx: &CrlContext<'_>,
    target: &PDVCertificate,
    issuer: &dyn SubjectNameAndKey,
    result_index: usize,
    crls: &[Vec<u8>],
) -> Result<()> {
    let subject = name_to_string(target.decoded().tbs_certificate().subject());
    let toi = cps.get_time_of_interest();
    let parsed: Vec<ParsedCrl<'_>> = crls.iter().filter_map(|c| ParsedCrl::parse(c)).collect();
    let (deltas, completes): (Vec<ParsedCrl<'_>>, Vec<ParsedCrl<'_>>) =
        parsed.into_iter().partition(ParsedCrl::is_delta);
    let dps = distribution_points(target);

    let mut reasons_mask = ReasonFlags::default();
    let mut status = Listing::Unrevoked;
    // Whether every CRL that contributed was verified under the issuer's own key, and the earliest
    // nextUpdate among them: only then is the determination cached (under that key).
    let mut by_issuer_until: Option<u64> = Some(u64::MAX);

    for (i, crl) in completes.iter().enumerate() {
        let fail = |cpr: &mut CertificationPathResults, why: &str| {
            info!(
                "Not using CRL from {} for the certificate issued to {subject}: {why}",
                name_to_string(crl.issuer())
            );
            if let Some(info) = crl.info() {
                cpr.add_failed_crl(info, result_index);
            }
        };
        if completes
            .iter()
            .enumerate()
            .any(|(j, other)| j != i && crl.superseded_by(other))
        {
            debug!("Skipping a CRL superseded by a newer one for the same scope");
            continue;
        }
        // (b) and (d), over every distribution point whose scope takes the CRL
        let Some(interim) = dps
            .iter()
            .filter_map(|dp| scope(dp, crl, target))
            .reduce(|a, b| a | b)
        else {
            continue;
        };
        // (a) currency, and what else makes a CRL unusable whoever signed it
        if check_crl_validity(toi, cps.get_revocation_max_age(), &crl.crl).is_err() {
            fail(cpr, "not current at the time of interest");
            continue;
        }
        if let Some(exts) = &crl.crl.tbs_cert_list.crl_extensions {
            if check_crl_extensions(exts).is_err() {
                fail(cpr, "an unrecognized critical CRL extension");
                continue;
            }
        }
        if crl.crl.signature_algorithm != crl.crl.tbs_cert_list.signature {
            fail(cpr, "signatureAlgorithm differs from tbsCertList.signature");
            continue;
        }
        // Section 5.2.3: conforming CRL issuers MUST include the cRLNumber, as a non-critical
        // extension. Without it a delta CRL cannot be related to the CRL, nor an older CRL told
        // from a newer one (x509-limbo crl::crlnumber-missing, crl::crlnumber-critical).
        match crl.number_critical {
            None => {
                fail(cpr, "no cRLNumber extension");
                continue;
            }
            Some(true) => {
                fail(cpr, "a critical cRLNumber extension");
                continue;
            }
            Some(false) => {}
        }
        // (f) and (g)
        let signer = match crl_signer(pe, cps, ctx, issuer, crl) {
            Ok(s) => s,
            Err(why) => {
                fail(cpr, &why);
                continue;
            }
        };
        // (c) and (h)
        let delta = delta_for(pe, cps, crl, &deltas, signer.key());
        if delta.is_none() && !crl.freshest {
            pe.keep_verified_crl(
                crl.buf,
                &crl.crl,
                signer.key(),
                toi,
                cps.get_retain_expired_kept_crls(),
            );
        }
        // (i), (j) and (k)
        let on_delta = match delta.map(|d| listing(d, target)).transpose() {
            Ok(l) => l.flatten(),
            Err(why) => {
                fail(cpr, why);
                continue;
            }
        };
        let found = match on_delta {
            Some(l) => Some(l),
            None => match listing(crl, target) {
                Ok(l) => l,
                Err(why) => {
                    fail(cpr, why);
                    continue;
                }
            },
        };
        if let Some(info) = crl.info() {
            cpr.add_crl(info, result_index);
        }
        if let Some(info) = delta.and_then(ParsedCrl::info) {
            cpr.add_crl(info, result_index);
        }
        if let Some((Listing::Revoked(reason), entry)) = &found {
            info!(
                "CRL from {} lists the certificate issued to {subject} ({reason:?})",
                name_to_string(crl.issuer())
            );
            cpr.add_crl_entry(entry.clone(), result_index);
            status = Listing::Revoked(*reason);
        }
        // (l)
        reasons_mask |= interim;
        let signed_by_issuer = match &signer {
            CrlSigner::OnPath(k) => k.spki() == issuer.spki(),
            CrlSigner::Other(_) => false,
        };
        let until = [crl.next_update(), delta.and_then(ParsedCrl::next_update)]
            .into_iter()
            .flatten()
            .min();
        by_issuer_until = match (by_issuer_until, signed_by_issuer, until) {
            (Some(u), true, Some(n)) => Some(u.min(n)),
            _ => None,
        };
    }

    let result = match status {
        Listing::Revoked(_) => PathValidationStatus::CertificateRevoked,
        Listing::Unrevoked if (all_reasons() - reasons_mask).is_empty() => {
            PathValidationStatus::Valid
        }
        Listing::Unrevoked => {
            info!("The CRLs at hand do not settle the status of the certificate issued to {subject}: they cover {:?} of the reasons", reasons_mask);
            return Err(Error::PathValidation(
                PathValidationStatus::RevocationStatusNotDetermined,
            ));
        }
    };
    if let Some(until) = by_issuer_until.filter(|u| *u != u64::MAX) {
        pe.add_status(target, issuer, until, result);
    }
    match result {
        PathValidationStatus::Valid => Ok(()),
        other => Err(Error::PathValidation(other)),
    }
}

/// The CRLs the environment's CRL sources hold for `cert`: those of its issuer, and those of every
/// cRLIssuer its distribution points name (indirect CRLs, which a source indexing by issuer does not
/// offer for the certificate).
pub(crate) fn crls_for_certificate(pe: &PkiEnvironment, cert: &PDVCertificate) -> Vec<Vec<u8>> {
    let mut crls = pe.get_crls(cert).unwrap_or_default();
    let mut crl_issuers: Vec<Name> = Vec::new();
    if let Ok(Some(PDVExtension::CrlDistributionPoints(crldp))) =
        cert.get_extension(&ID_CE_CRL_DISTRIBUTION_POINTS)
    {
        for dp in &crldp.0 {
            if let Some(gns) = &dp.crl_issuer {
                crl_issuers.extend(directory_names(gns).cloned());
            }
        }
    }
    if !crl_issuers.is_empty() {
        for crl in pe.get_all_crls().unwrap_or_default() {
            let Ok(parsed) = CertificateList::<Raw>::from_der(&crl) else {
                continue;
            };
            if crl_issuers
                .iter()
                .any(|n| compare_names(n, &parsed.tbs_cert_list.issuer))
                && !crls.contains(&crl)
            {
                crls.push(crl);
            }
        }
    }
    crls
}
