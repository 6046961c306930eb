//! Wrappers around asn.1 encoder/decoder structures to support certification path processing
use cfg_if::cfg_if;

cfg_if! {
    if #[cfg(feature = "webpki")] {
        use log::error;
        use sha1::{Digest, Sha1};
        use rustls_pki_types::TrustAnchor;
        use alloc::vec;
        use der::{asn1::OctetString, Length};
        use spki::SubjectPublicKeyInfoOwned;
        use x509_cert::{anchor::{CertPathControls, TrustAnchorInfo}};
        use x509_cert::ext::pkix::NameConstraints;
    }
}

use crate::EXTS_OF_INTEREST;
use alloc::{
    string::{String, ToString},
    vec::Vec,
};
use const_oid::db::rfc5912::{ID_CE_CERTIFICATE_POLICIES, ID_CE_NAME_CONSTRAINTS};
use der::{asn1::ObjectIdentifier, Decode, Encode};
use x509_cert::anchor::TrustAnchorChoice;
use x509_cert::certificate::Raw;
use x509_cert::name::Name;
use x509_cert::Certificate;

use crate::util::error::*;
use crate::validator::pdv_extension::*;

/// [`PDVTrustAnchorChoice`] is used to aggregate a binary TrustAnchorChoice, a parsed TrustAnchorChoice,
/// an optional locator naming where it was read from, and optional parsed extensions, in support of
/// certification path development and
/// validation operations.
#[derive(Clone, Eq, PartialEq)]
pub struct PDVTrustAnchorChoice {
    /// Binary, encoded TrustAnchorChoice object
    encoded_ta: Vec<u8>,
    /// Decoded TrustAnchorChoice object
    decoded_ta: TrustAnchorChoice<Raw>,
    /// Optional parsed extension from the TrustAnchorChoice
    parsed_extensions: ParsedExtensions,
    /// The source for the certificate
    locator: Option<String>,
}

impl PDVTrustAnchorChoice {
    fn new(ta: TrustAnchorChoice<Raw>) -> der::Result<Self> {
        let mut pdv_ta = PDVTrustAnchorChoice {
            encoded_ta: ta.to_der()?,
            decoded_ta: ta,
            parsed_extensions: Default::default(),
            locator: None,
        };
        pdv_ta.parse_extensions(EXTS_OF_INTEREST);
        Ok(pdv_ta)
    }

    /// Create a trust anchor from source
    pub fn create(source: &[u8], filename: &str) -> der::Result<Self> {
        let mut pdv_ta = Self::try_from(source)?;
        pdv_ta.locator = Some(filename.to_string());
        Ok(pdv_ta)
    }

    /// Return the byte encoding of the TrustAnchorChoice object
    pub fn as_bytes(&self) -> &[u8] {
        &self.encoded_ta
    }

    /// Return the locator for the source of this certificate
    pub fn locator(&self) -> Option<&str> {
        self.locator.as_deref()
    }

    /// Return the decoded TrustAnchorChoice object
    pub fn decoded(&self) -> &TrustAnchorChoice<Raw> {
        &self.decoded_ta
    }
}

impl TryFrom<&[u8]> for PDVTrustAnchorChoice {
    type Error = der::Error;

    fn try_from(enc_cert: &[u8]) -> der::Result<Self> {
        let ta = TrustAnchorChoice::from_der(enc_cert)?;
        Self::new(ta)
    }
}

impl TryFrom<TrustAnchorChoice<Raw>> for PDVTrustAnchorChoice {
    type Error = der::Error;

    fn try_from(ta: TrustAnchorChoice<Raw>) -> der::Result<Self> {
        Self::new(ta)
    }
}

/// The webpki-roots TrustAnchor structure stores values with the outer SEQUENCE tag and length
/// removed (!). This means approximately nothing can parse it. This function restores the outer
/// SEQUENCE tag for Name values and returns a parsed Name.
#[cfg(feature = "webpki")]
fn partial_name_to_name(partial_name_bytes: &[u8]) -> der::Result<Name> {
    let l = Length::new(partial_name_bytes.len() as u32);
    let mut length_bytes = l.to_der()?;
    let mut enc_name = vec![0x30];
    enc_name.append(&mut length_bytes);
    enc_name.append(&mut partial_name_bytes.to_vec());
    Name::from_der(&enc_name)
}

/// The webpki-roots TrustAnchor structure stores values with the outer SEQUENCE tag and length
/// removed (!). This means approximately nothing can parse it. This function restores the outer
/// SEQUENCE tag for SubjectPublicKeyInfo values and returns a parsed SubjectPublicKeyInfoOwned.
#[cfg(feature = "webpki")]
fn partial_spki_to_spki(partial_spki_bytes: &[u8]) -> der::Result<SubjectPublicKeyInfoOwned> {
    let l = Length::new(partial_spki_bytes.len() as u32);
    let mut length_bytes = l.to_der()?;
    let mut enc_spki = vec![0x30];
    enc_spki.append(&mut length_bytes);
    enc_spki.append(&mut partial_spki_bytes.to_vec());
    SubjectPublicKeyInfoOwned::from_der(&enc_spki)
}

/// The webpki-roots TrustAnchor structure stores values with the outer SEQUENCE tag and length
/// removed (!), including the NameConstraints value (which begins with the [0] permittedSubtrees
/// tag once the SEQUENCE wrapper is stripped). This function restores the outer SEQUENCE tag and
/// returns parsed NameConstraints; without it, name-constrained roots fail to convert.
#[cfg(feature = "webpki")]
fn partial_nc_to_nc(partial_nc_bytes: &[u8]) -> der::Result<NameConstraints> {
    let l = Length::new(partial_nc_bytes.len() as u32);
    let mut length_bytes = l.to_der()?;
    let mut enc_nc = vec![0x30];
    enc_nc.append(&mut length_bytes);
    enc_nc.append(&mut partial_nc_bytes.to_vec());
    NameConstraints::from_der(&enc_nc)
}

#[cfg(feature = "webpki")]
impl TryFrom<&TrustAnchor<'_>> for PDVTrustAnchorChoice {
    type Error = crate::Error;

    /// Takes a webpki-roots TrustAnchor and attempts to produce a PDVTrustAnchorChoice by first
    /// generating an [RFC5914](https://datatracker.ietf.org/doc/html/rfc5914) TrustAnchorInfo info
    /// structure containing the name, public key and, optionally, name constraints from the TrustAnchor.
    fn try_from(ta: &TrustAnchor<'_>) -> crate::Result<Self> {
        // webpki-roots 1.0 renamed spki -> subject_public_key_info and wraps the fields in
        // rustls-pki-types Der (still with the outer SEQUENCE tag stripped), so drop to &[u8] here.
        let n = partial_name_to_name(ta.subject.as_ref())?;
        let spki = partial_spki_to_spki(ta.subject_public_key_info.as_ref())?;
        let nc = match &ta.name_constraints {
            Some(nc) => Some(partial_nc_to_nc(nc.as_ref())?),
            None => None,
        };

        // TrustAnchorInfo (and the certval library) require a key identifier for trust anchors.
        // Since the webpki-roots structure omits this value, calculate one (which may be different
        // from what the TA includes in a SKID extension in its cert, but c'est la vie.
        let key_id = match spki.subject_public_key.as_bytes() {
            Some(b) => Sha1::digest(b),
            None => {
                error!("Failed to calculate key identifier for {n}");
                return Err(Error::Unrecognized);
            }
        };

        // TrustAnchorInfo structures that are used for path validation MUST have a CertPathControls
        // member (because this is where the name is conveyed in that structure).
        let cp = CertPathControls {
            ta_name: n,
            certificate: None,
            policy_set: None,
            policy_flags: None,
            name_constr: nc,
            path_len_constraint: None,
        };
        let tai = TrustAnchorInfo {
            version: Default::default(),
            pub_key: spki,
            key_id: OctetString::new(key_id.to_vec())?,
            ta_title: None,
            cert_path: Some(cp),
            extensions: None,
            ta_title_lang_tag: None,
        };
        let tac = TrustAnchorChoice::TaInfo(tai);
        Ok(PDVTrustAnchorChoice::new(tac)?)
    }
}

impl TryFrom<Certificate> for PDVTrustAnchorChoice {
    type Error = der::Error;

    fn try_from(cert: Certificate) -> der::Result<Self> {
        let enc_cert = cert.to_der()?;
        let ta = TrustAnchorChoice::from_der(&enc_cert)?;
        PDVTrustAnchorChoice::new(ta)
    }
}

impl ExtensionProcessing for PDVTrustAnchorChoice {
    /// `get_extension` takes an ObjectIdentifier that identifies an extension type and returns the
    /// previously parsed [`PDVExtension`] for it, or `None` if that extension has not been parsed.
    fn get_extension(&self, oid: &ObjectIdentifier) -> Result<Option<&PDVExtension>> {
        if self.parsed_extensions.contains_key(oid) {
            if let Some(ext) = self.parsed_extensions.get(oid) {
                return Ok(Some(ext));
            }
        }
        Ok(None)
    }

    /// `parse_extensions` takes a slice of ObjectIdentifiers and calls
    /// [`parse_extension`](ExtensionProcessing::parse_extension) for each, caching whichever of those
    /// extensions are present. Errors are not reported: an extension that is absent or fails to
    /// decode is simply left out of the cache.
    fn parse_extensions(&mut self, oids: &[ObjectIdentifier]) {
        for oid in oids {
            let _r = self.parse_extension(oid);
        }
    }

    fn parse_extension(&mut self, oid: &ObjectIdentifier) -> Result<Option<&PDVExtension>> {
        let pe = &mut self.parsed_extensions;
        if pe.contains_key(oid) {
            return Ok(pe.get(oid));
        }

        let exts = match &self.decoded_ta {
            TrustAnchorChoice::Certificate(c) => &c.tbs_certificate().extensions(),
            TrustAnchorChoice::TaInfo(tai) => {
                if let Some(cp) = &tai.cert_path {
                    // TODO Support all TrustAnchorInfo overrides
                    // TrustAnchorInfo may override some extensions per RFC 5914.
                    // This includes the TAI fields policySet, policyFlags,
                    // nameConstr, pathLenConstraint, and ext.
                    // Seems we're currently only using nameConstr and policySet here.
                    if *oid == ID_CE_NAME_CONSTRAINTS {
                        if let Some(nc) = &cp.name_constr {
                            let ext = PDVExtension::NameConstraints(nc.clone());
                            pe.insert(*oid, ext);
                            return Ok(Some(&pe[oid]));
                        }
                    } else if *oid == ID_CE_CERTIFICATE_POLICIES {
                        if let Some(cp) = &cp.policy_set {
                            let ext = PDVExtension::CertificatePolicies(cp.clone());
                            pe.insert(*oid, ext);
                            return Ok(Some(&pe[oid]));
                        }
                    }

                    if let Some(c) = &cp.certificate {
                        &c.tbs_certificate().extensions()
                    } else {
                        &None
                    }
                } else {
                    &None
                }
            }
            _ => {
                return Err(Error::Unrecognized);
            }
        };

        if let Some(exts) = exts.as_ref() {
            if let Some(i) = exts.iter().find(|&ext| ext.extn_id == *oid) {
                if let Some(ext) = decode_extension(oid, i.extn_value.as_bytes())? {
                    pe.insert(*oid, ext);
                    return Ok(pe.get(oid));
                }
            }
        }
        Ok(None)
    }
}

/// [`get_trust_anchor_name`] returns the name of the trust anchor.
///
/// The name is as read from the either the subject field of a certificate if the Certificate option
/// is used or from the CertPathControls field within a TrustAnchorInfo if that option is used.
/// The TBSCertificate option is not supported and the Certificate field within TrustAnchorInfo is
/// not consulted, i.e., if one wished to use TrustAnchorInfo then the Name must be populated within
/// CertPathControls.
pub fn get_trust_anchor_name(ta: &TrustAnchorChoice<Raw>) -> Result<&Name> {
    match ta {
        TrustAnchorChoice::Certificate(cert) => {
            return Ok(cert.tbs_certificate().subject());
        }
        TrustAnchorChoice::TaInfo(tai) => {
            if let Some(cert_path) = &tai.cert_path {
                return Ok(&cert_path.ta_name);
            }
        }
        TrustAnchorChoice::TbsCertificate(cert) => {
            return Ok(cert.subject());
        }
    }
    Err(Error::NotFound)
}
