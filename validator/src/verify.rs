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
    /// responder it names (AIA) or, for a certificate without one or whose responders do not
    /// answer, GETs the CRL its distribution point names; the answers are stapled to the path
    /// and certval checks them (signatures, delegated responder, freshness, scope, status). A
    /// responder that answers with an OCSP error response (`unauthorized`, `tryLater`, …: HTTP
    /// 200, no status) or with something that is not an OCSPResponse has failed: nothing is
    /// stapled and no CRL is tried for that certificate, and a path left without its status
    /// is [`Verdict::Unavailable`], naming the answer.
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
    /// Online revocation checking only ([`Revocation::Online`]): a path validated but for the
    /// status of a certificate, which could not be had: its OCSP responder answered with an
    /// error response, or with something that is not an OCSPResponse, or nothing answered (no
    /// responder, no CRL). Not a verdict on the certificate: the responder failed, and asking
    /// again later may settle it.
    Unavailable {
        /// What failed, the URL asked and the answer named.
        reason: String,
        /// The OCSP error status the responder answered with, if it answered with one.
        ocsp_status: Option<crate::ocsp::ResponseStatus>,
    },
}

/// A certificate of a path whose status could not be fetched ([`Verdict::Unavailable`]).
#[derive(Debug, Clone)]
struct Unanswered {
    reason: String,
    ocsp_status: Option<crate::ocsp::ResponseStatus>,
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
    let mut unavailable: Option<Unanswered> = None;
    for path in &mut paths {
        let mut cpr = CertificationPathResults::new();
        let path_cps = match enforce_trust_anchor_constraints(&cps, &path.trust_anchor) {
            Ok(c) => c,
            Err(e) => {
                last = format!("{e:?}");
                continue;
            }
        };
        let unanswered = match &input.revocation {
            Revocation::Online(fetch) => staple_online(path, *fetch),
            _ => Vec::new(),
        };
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
            Err(certval::Error::PathValidation(PathValidationStatus::RevocationStatusNotDetermined))
                if !unanswered.is_empty() =>
            {
                unavailable = unanswered.into_iter().next();
                last.clear();
            }
            Err(e) => {
                last = format!("{e:?}");
                unavailable = None;
            }
        }
    }
    // The last candidate decides, as before: a path that failed only for want of a status
    // a responder would not give is the responder's failure, not the certificate's.
    if let Some(u) = unavailable {
        return Ok(Verdict::Unavailable { reason: u.reason, ocsp_status: u.ocsp_status });
    }
    Ok(Verdict::Invalid { reason: last })
}

/// Fetches and staples revocation information for every certificate of the path: an OCSP
/// response from the responder it names, else the CRL of its distribution point. Each OCSP
/// request is built against the certificate above it in the path. Returns the certificates
/// left without anything stapled because a responder failed ([`Revocation::Online`]).
fn staple_online(path: &mut CertificationPath, fetch: Fetch) -> Vec<Unanswered> {
    use crate::ocsp::{OcspResponse, ResponseStatus};
    let mut chain: Vec<Vec<u8>> = vec![path.trust_anchor.as_bytes().to_vec()];
    chain.extend(path.intermediates.iter().map(|c| c.as_bytes().to_vec()));
    chain.push(path.target.as_bytes().to_vec());
    let mut unanswered = Vec::new();
    for pos in 1..chain.len() {
        let (Ok(issuer), Ok(cert)) =
            (x509_cert::Certificate::from_der(&chain[pos - 1]), x509_cert::Certificate::from_der(&chain[pos]))
        else {
            continue;
        };
        // Named by its issuer (a CA), never by its own subject, which may name a person: the
        // reason goes into logs (the kiosk check).
        let who = format!("a certificate issued by {}", cert.tbs_certificate().issuer());
        let mut failed: Option<Unanswered> = None;
        let mut settled = false;
        if let Ok(req) = crate::ocsp::request_for(&issuer, cert.tbs_certificate().serial_number().as_bytes()) {
            for url in crate::ocsp::ocsp_urls(&cert) {
                let Some(resp) = fetch(&url, Some(&req)) else {
                    failed = Some(Unanswered {
                        reason: format!("the OCSP responder {url} did not answer for {who}"),
                        ocsp_status: None,
                    });
                    continue;
                };
                settled = true;
                match OcspResponse::from_der(&resp) {
                    Ok(r) if r.response_status == ResponseStatus::Successful && r.response_bytes.is_some() => {
                        // certval checks the rest (signature, responder, times, scope, status).
                        if let Some(slot) = path.ocsp_responses.get_mut(pos - 1) {
                            *slot = Some(resp);
                        }
                        failed = None;
                    }
                    Ok(r) => {
                        failed = Some(Unanswered {
                            reason: format!(
                                "the OCSP responder {url} answered {} for {who}: an OCSP error response, no status",
                                r.response_status.name()
                            ),
                            ocsp_status: Some(r.response_status),
                        });
                    }
                    Err(_) => {
                        failed = Some(Unanswered {
                            reason: format!(
                                "the OCSP responder {url} answered with something that is not an OCSPResponse for {who}"
                            ),
                            ocsp_status: None,
                        });
                    }
                }
                break;
            }
        }
        if settled {
            unanswered.extend(failed);
            continue;
        }
        // No responder answered: the CRL, if the certificate names one.
        let mut crl = false;
        for url in crl_urls(&cert) {
            if let Some(bytes) = fetch(&url, None) {
                if let Some(slot) = path.crls.get_mut(pos - 1) {
                    *slot = Some(bytes);
                }
                crl = true;
                break;
            }
            failed.get_or_insert(Unanswered {
                reason: format!("the CRL {url} could not be fetched for {who}"),
                ocsp_status: None,
            });
        }
        if !crl {
            unanswered.extend(failed);
        }
    }
    unanswered
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
