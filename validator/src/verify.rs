//! Path validation for verifiers, per RFC 5280 §6, at a given time, to pinned trust anchors,
//! with revocation from CRLs the caller supplies (sharded CRLs with issuingDistributionPoint
//! included) or from OCSP responses the caller fetched. The algorithm is certval's (PKITS
//! and x509-limbo tested); this module chooses the inputs and reports the outcome, and adds the
//! one signature algorithm certval is built without here: ML-DSA-65 ([`verify_ml_dsa_65`], for
//! certificates, CRLs and OCSP responses of an ML-DSA generation).

#![forbid(clippy::disallowed_methods)]

use certval::environment::pki_environment::PkiEnvironment;
use certval::*;
use der::asn1::BitString;
use der::{Decode, Encode};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

use crate::error::{Error, Result};

/// `fetch(url, Some(body))` POSTs an OCSP request; `fetch(url, None)` GETs a CRL.
pub type Fetch = fn(&str, Option<&[u8]>) -> Option<Vec<u8>>;

/// What to check revocation with.
#[derive(Debug, Clone)]
pub enum Revocation {
    /// Not at all (`--no-revocation`).
    None,
    /// The given CRLs (DER).
    Crls(Vec<Vec<u8>>),
    /// Online: for each certificate of a candidate path, `fetch` POSTs an OCSP request to the
    /// responder it names (AIA) or, for a certificate without one, GETs the CRL its
    /// distribution point names; the answers are stapled to the path and certval checks them
    /// (signatures, delegated responder, freshness, scope, status).
    Online(Fetch),
}

/// A verification request.
#[derive(Debug, Clone)]
pub struct Input {
    /// The certificate to validate (DER).
    pub leaf: Vec<u8>,
    /// Pinned trust anchors (DER certificates).
    pub anchors: Vec<Vec<u8>>,
    /// Other certificates that may complete a path.
    pub intermediates: Vec<Vec<u8>>,
    /// Time of interest (unix seconds).
    pub at: u64,
    /// Revocation source.
    pub revocation: Revocation,
    /// RFC 5280 initial-policy-set (dotted OIDs); empty = anyPolicy.
    pub policies: Vec<String>,
    /// initial-explicit-policy.
    pub explicit_policy: bool,
    /// initial-policy-mapping-inhibit.
    pub inhibit_mapping: bool,
    /// initial-any-policy-inhibit.
    pub inhibit_any: bool,
}

impl Input {
    /// A request with RFC 5280's default initial state.
    pub fn new(
        leaf: Vec<u8>,
        anchors: Vec<Vec<u8>>,
        intermediates: Vec<Vec<u8>>,
        at: u64,
        revocation: Revocation,
    ) -> Input {
        Input {
            leaf,
            anchors,
            intermediates,
            at,
            revocation,
            policies: Vec::new(),
            explicit_policy: false,
            inhibit_mapping: false,
            inhibit_any: false,
        }
    }
}

/// The outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A path validated (subjects, anchor first).
    Valid {
        /// Subjects of the path from the trust anchor to the leaf.
        path: Vec<String>,
    },
    /// No path validated; why the best candidate failed.
    Invalid {
        /// The reason.
        reason: String,
    },
}

fn subject(der: &[u8]) -> String {
    x509_cert::Certificate::from_der(der)
        .map(|c| c.tbs_certificate().subject().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Validates `input.leaf`. `Err` is input that cannot be checked (a certificate or CRL that
/// does not parse, no anchor, a time out of range), never a verdict about the certificate.
pub fn verify(input: &Input) -> Result<Verdict> {
    if input.anchors.is_empty() {
        return Err(Error::NoAnchor);
    }
    let cert_err =
        |what: &str, e: &dyn std::fmt::Debug| Error::Certificate { what: what.into(), detail: format!("{e:?}") };
    let mut cps = CertificationPathSettings::new();
    cps.set_time_of_interest(TimeOfInterest::from_unix_secs(input.at).map_err(|_| Error::Time)?);
    let check_rev = !matches!(input.revocation, Revocation::None);
    cps.set_check_revocation_status(check_rev);
    cps.set_check_crls(check_rev);
    cps.set_check_ocsp_from_aia(false);
    cps.set_check_crldp_http(false);
    cps.set_retrieve_from_aia_sia_http(false);
    // Pinned anchors are certificates whose own constraints (basic constraints, name
    // constraints, key usage, validity) bind the paths under them (RFC 5937).
    cps.set_enforce_trust_anchor_constraints(true);
    cps.set_initial_explicit_policy_indicator(input.explicit_policy);
    cps.set_initial_policy_mapping_inhibit_indicator(input.inhibit_mapping);
    cps.set_initial_inhibit_any_policy_indicator(input.inhibit_any);
    if !input.policies.is_empty() {
        cps.set_initial_policy_set(input.policies.clone());
    }

    let mut pe = PkiEnvironment::new();
    pe.populate_5280_pki_environment();
    pe.add_verify_signature_message_callback(verify_ml_dsa_65);
    let mut tas = TaSource::new();
    for (i, a) in input.anchors.iter().enumerate() {
        x509_cert::Certificate::from_der(a).map_err(|e| cert_err(&format!("anchor {}", i + 1), &e))?;
        tas.push(CertFile { filename: format!("anchor-{i}"), bytes: a.clone() });
    }
    tas.initialize().map_err(|e| cert_err("an anchor", &e))?;
    pe.add_trust_anchor_source(Box::new(tas));

    let mut cs = CertSource::new();
    for (i, c) in input.intermediates.iter().enumerate() {
        x509_cert::Certificate::from_der(c).map_err(|e| cert_err(&format!("intermediate {}", i + 1), &e))?;
        cs.push(CertFile { filename: format!("intermediate-{i}"), bytes: c.clone() });
    }
    cs.initialize(&cps).map_err(|e| cert_err("an intermediate", &e))?;
    cs.find_all_partial_paths(&pe, &cps);
    pe.add_certificate_source(Box::new(cs));

    if let Revocation::Crls(crls) = &input.revocation {
        let src = MemoryCrlSource::new();
        for (i, c) in crls.iter().enumerate() {
            if !src.add(c) {
                return Err(Error::Crl(i + 1));
            }
        }
        pe.add_crl_source(Box::new(src));
        pe.add_revocation_cache(Box::new(RevocationCache::new()));
    }

    let mut leaf = PDVCertificate::try_from(input.leaf.as_slice()).map_err(|e| cert_err("the certificate", &e))?;
    leaf.parse_extensions(EXTS_OF_INTEREST);
    let toi = cps.get_time_of_interest();
    let mut paths: Vec<CertificationPath> = Vec::new();
    if let Err(e) = pe.get_paths_for_target(&leaf, &mut paths, 0, toi) {
        return Ok(Verdict::Invalid { reason: format!("no path to a trust anchor: {e:?}") });
    }
    if paths.is_empty() {
        return Ok(Verdict::Invalid { reason: "no path to a trust anchor".into() });
    }
    let mut last = String::new();
    for path in &mut paths {
        let mut cpr = CertificationPathResults::new();
        let path_cps = match enforce_trust_anchor_constraints(&cps, &path.trust_anchor) {
            Ok(c) => c,
            Err(e) => {
                last = format!("{e:?}");
                continue;
            }
        };
        if let Revocation::Online(fetch) = &input.revocation {
            staple_online(path, *fetch);
        }
        let mut r = pe.validate_path(&pe, &path_cps, path, &mut cpr);
        if r.is_ok() && check_rev {
            r = check_revocation_local(&pe, &path_cps, path, &mut cpr);
        }
        match r {
            Ok(()) => {
                let mut subjects = vec![subject(path.trust_anchor.as_bytes())];
                subjects.extend(path.intermediates.iter().map(|c| subject(c.as_bytes())));
                subjects.push(subject(&input.leaf));
                return Ok(Verdict::Valid { path: subjects });
            }
            Err(e) => last = format!("{e:?}"),
        }
    }
    Ok(Verdict::Invalid { reason: last })
}

/// Fetches and staples revocation information for every certificate of the path: an OCSP
/// response from the responder it names, else the CRL of its distribution point. Each OCSP
/// request is built against the certificate above it in the path.
fn staple_online(path: &mut CertificationPath, fetch: Fetch) {
    let mut chain: Vec<Vec<u8>> = vec![path.trust_anchor.as_bytes().to_vec()];
    chain.extend(path.intermediates.iter().map(|c| c.as_bytes().to_vec()));
    chain.push(path.target.as_bytes().to_vec());
    for pos in 1..chain.len() {
        let (Ok(issuer), Ok(cert)) =
            (x509_cert::Certificate::from_der(&chain[pos - 1]), x509_cert::Certificate::from_der(&chain[pos]))
        else {
            continue;
        };
        let mut stapled = false;
        if let Ok(req) = crate::ocsp::request_for(&issuer, cert.tbs_certificate().serial_number().as_bytes()) {
            for url in crate::ocsp::ocsp_urls(&cert) {
                if let Some(resp) = fetch(&url, Some(&req)) {
                    if let Some(slot) = path.ocsp_responses.get_mut(pos - 1) {
                        *slot = Some(resp);
                        stapled = true;
                    }
                    break;
                }
            }
        }
        if stapled {
            continue;
        }
        for url in crl_urls(&cert) {
            if let Some(crl) = fetch(&url, None) {
                if let Some(slot) = path.crls.get_mut(pos - 1) {
                    *slot = Some(crl);
                }
                break;
            }
        }
    }
}

/// The http URLs of a certificate's CRL distribution points.
fn crl_urls(cert: &x509_cert::Certificate) -> Vec<String> {
    use x509_cert::ext::pkix::CrlDistributionPoints;
    use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
    let Ok(Some((_, dps))) = cert.tbs_certificate().get_extension::<CrlDistributionPoints>() else { return Vec::new() };
    dps.0
        .iter()
        .filter_map(|dp| match &dp.distribution_point {
            Some(DistributionPointName::FullName(names)) => Some(names),
            _ => None,
        })
        .flatten()
        .filter_map(|g| match g {
            GeneralName::UniformResourceIdentifier(u) if u.as_str().starts_with("http") => Some(u.to_string()),
            _ => None,
        })
        .collect()
}

/// certval's signature callback for ML-DSA-65 (RFC 9881): pure ML-DSA, empty context, the
/// AlgorithmIdentifier without parameters and the signer's key an id-ml-dsa-65 key
/// ([`ca::mldsa::verify`]). certval asks its callbacks in turn: any other algorithm is
/// `Unrecognized`, so the next one (RSA, ECDSA) answers; for ML-DSA-65 this is the answer.
pub fn verify_ml_dsa_65(
    _pe: &PkiEnvironment,
    message: &[u8],
    signature: &BitString,
    algorithm: &AlgorithmIdentifierOwned,
    spki: &SubjectPublicKeyInfoOwned,
) -> certval::Result<()> {
    if algorithm.oid != ca::mldsa::OID {
        return Err(certval::Error::Unrecognized);
    }
    let encoding = certval::Error::PathValidation(PathValidationStatus::EncodingError);
    if algorithm.parameters.is_some() {
        return Err(encoding);
    }
    let (Ok(spki), Some(signature)) = (spki.to_der(), signature.as_bytes()) else { return Err(encoding) };
    match ca::mldsa::verify(&spki, message, signature) {
        Ok(true) => Ok(()),
        // A signature that does not verify, or a signer's key that is no ML-DSA-65 key.
        Ok(false) | Err(_) => Err(certval::Error::PathValidation(PathValidationStatus::SignatureVerificationFailure)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // test: a panic is a failed test
mod rollover_tests;
