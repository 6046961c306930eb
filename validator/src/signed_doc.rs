//! Signed documents: a CMS SignedData (RFC 5652; attached or detached, as `openssl cms -sign`
//! makes them) made with a resident's signature certificate. Checks the signature over the
//! signed attributes and the message digest, validates the signer's certificate
//! ([`crate::verify`]) at the time the caller asks for — never at the signer's own, unproven
//! `signingTime`, which is only reported — and reports the signer's identity items from the
//! certificate's subjectAltName (JPKI otherNames 1.2.392.200149.8.5.5.1–6).
//! [`signature_certificate`] says whether the signer's certificate is one a signature may be
//! made with (review finding H5).

#![forbid(clippy::disallowed_methods)]

use ca::profile::san_oid;
use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier};
use const_oid::ObjectIdentifier;
use der::asn1::{OctetString, Utf8StringRef};
use der::{Decode, Encode};
use openssl::hash::MessageDigest;
use x509_cert::Certificate;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

use crate::error::{Error, Result};
use crate::verify::{Input, Revocation, Verdict, verify};

const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SIGNING_TIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");

/// What a signed document says and whether to believe it.
#[derive(Debug, Clone)]
pub struct Report {
    /// Whether the signature over the content verifies.
    pub signature_ok: bool,
    /// Why not, if not.
    pub signature_error: Option<String>,
    /// The signer's certificate subject.
    pub signer: String,
    /// The signer's serial (hex).
    pub serial: String,
    /// The signer's certificate (DER).
    pub signer_cert: Vec<u8>,
    /// Identity items from the subjectAltName (label, value).
    pub items: Vec<(&'static str, String)>,
    /// signingTime (unix seconds), if signed.
    pub signing_time: Option<i64>,
    /// The signer certificate's path validation at the time checked.
    pub certificate: Verdict,
    /// Content length.
    pub content_len: usize,
}

impl Report {
    /// Signature good and certificate valid.
    pub fn valid(&self) -> bool {
        self.signature_ok && matches!(self.certificate, Verdict::Valid { .. })
    }
}

fn digest_of(oid: &ObjectIdentifier) -> Option<MessageDigest> {
    match oid.to_string().as_str() {
        "2.16.840.1.101.3.4.2.1" => Some(MessageDigest::sha256()),
        "2.16.840.1.101.3.4.2.2" => Some(MessageDigest::sha384()),
        "2.16.840.1.101.3.4.2.3" => Some(MessageDigest::sha512()),
        _ => None,
    }
}

/// The JPKI identity items of a certificate's subjectAltName.
pub fn identity_items(cert: &Certificate) -> Vec<(&'static str, String)> {
    let labels = [
        (san_oid::NAME, "name"),
        (san_oid::NAME_FLAGS, "name substitute flags"),
        (san_oid::SEX, "sex"),
        (san_oid::DATE_OF_BIRTH, "date of birth"),
        (san_oid::ADDRESS, "address"),
        (san_oid::ADDRESS_FLAGS, "address substitute flags"),
    ];
    let Ok(Some((_, san))) = cert.tbs_certificate().get_extension::<SubjectAltName>() else { return Vec::new() };
    let mut out = Vec::new();
    for g in san.0 {
        if let GeneralName::OtherName(o) = g
            && let Some((_, label)) = labels.iter().find(|(oid, _)| *oid == o.type_id)
            && let Ok(v) = o.value.decode_as::<Utf8StringRef<'_>>()
        {
            out.push((*label, v.as_str().to_string()));
        }
    }
    out
}

/// Whether `cert` is a signature certificate of the hierarchy whose policy is `policy`:
/// keyUsage with nonRepudiation (contentCommitment), that certificate policy, and not a CA
/// certificate. An authentication certificate (digitalSignature, the authentication policy) or
/// an OCSP responder certificate is not. `Err` says why not.
pub fn signature_certificate(cert: &Certificate, policy: ObjectIdentifier) -> Result<(), String> {
    use x509_cert::ext::pkix::{BasicConstraints, CertificatePolicies, KeyUsage};
    let tbs = cert.tbs_certificate();
    if tbs.get_extension::<BasicConstraints>().ok().flatten().is_some_and(|(_, bc)| bc.ca) {
        return Err("the signer's certificate is a CA certificate, not a signature certificate".into());
    }
    if !tbs.get_extension::<KeyUsage>().ok().flatten().is_some_and(|(_, ku)| ku.non_repudiation()) {
        return Err("the signer's certificate is not a signature certificate (no nonRepudiation key usage)".into());
    }
    if !tbs
        .get_extension::<CertificatePolicies>()
        .ok()
        .flatten()
        .is_some_and(|(_, p)| p.0.iter().any(|i| i.policy_identifier == policy))
    {
        return Err(format!("the signer's certificate does not carry the signature policy {policy}"));
    }
    Ok(())
}

/// Checks a DER SignedData. `content` is required for a detached signature. The certificate
/// is validated at `at` (the caller's choice, normally now), with `revocation`; the
/// `signingTime` attribute is reported, not trusted.
pub fn verify_signed(
    der: &[u8],
    content: Option<&[u8]>,
    anchors: Vec<Vec<u8>>,
    intermediates: Vec<Vec<u8>>,
    revocation: Revocation,
    at: u64,
) -> Result<Report> {
    let ci = ContentInfo::from_der(der).map_err(|e| Error::NotSignedData(e.to_string()))?;
    if ci.content_type != ID_SIGNED_DATA {
        return Err(Error::NotSignedData(format!("content type {}", ci.content_type)));
    }
    let sd: SignedData = ci.content.decode_as().map_err(|e: der::Error| Error::NotSignedData(e.to_string()))?;
    let attached = match &sd.encap_content_info.econtent {
        Some(any) => {
            Some(any.decode_as::<OctetString>().map_err(|e| Error::NotSignedData(e.to_string()))?.into_bytes())
        }
        None => None,
    };
    let data: Vec<u8> = match (attached, content) {
        (Some(a), _) => a.into_vec(),
        (None, Some(c)) => c.to_vec(),
        (None, None) => return Err(Error::NeedContent),
    };
    let signers: Vec<_> = sd.signer_infos.0.iter().collect();
    let [si] = signers.as_slice() else { return Err(Error::Signers(signers.len())) };
    let certs: Vec<Certificate> = sd
        .certificates
        .iter()
        .flat_map(|s| s.0.iter())
        .filter_map(|c| match c {
            CertificateChoices::Certificate(c) => Some(c.clone()),
            _ => None,
        })
        .collect();
    let signer = certs
        .iter()
        .find(|c| match &si.sid {
            SignerIdentifier::IssuerAndSerialNumber(i) => {
                c.tbs_certificate().issuer() == &i.issuer && c.tbs_certificate().serial_number() == &i.serial_number
            }
            SignerIdentifier::SubjectKeyIdentifier(k) => c
                .tbs_certificate()
                .get_extension::<x509_cert::ext::pkix::SubjectKeyIdentifier>()
                .ok()
                .flatten()
                .is_some_and(|(_, s)| s.0.as_bytes() == k.0.as_bytes()),
        })
        .ok_or(Error::NoSignerCert)?;
    let signer_der = signer.to_der().map_err(|e| Error::NotSignedData(e.to_string()))?;

    // The signature: over the DER SET OF signed attributes (messageDigest must match the
    // content), or over the content itself when there are none.
    let mut signing_time = None;
    let check = || -> Result<(), String> {
        let md = digest_of(&si.digest_alg.oid)
            .ok_or_else(|| format!("digest algorithm {} not accepted", si.digest_alg.oid))?;
        let signed: Vec<u8> = match &si.signed_attrs {
            Some(attrs) => {
                let want = openssl::hash::hash(md, &data).map_err(|e| e.to_string())?;
                let got = attrs
                    .iter()
                    .find(|a| a.oid == ID_MESSAGE_DIGEST)
                    .and_then(|a| a.values.iter().next())
                    .and_then(|v| v.decode_as::<OctetString>().ok())
                    .ok_or("no messageDigest attribute")?;
                if got.as_bytes() != &*want {
                    return Err("the content does not match the signed message digest".into());
                }
                attrs.to_der().map_err(|e| e.to_string())?
            }
            None => data.clone(),
        };
        let spki = signer.tbs_certificate().subject_public_key_info().to_der().map_err(|e| e.to_string())?;
        let key = openssl::pkey::PKey::public_key_from_der(&spki).map_err(|e| e.to_string())?;
        let mut v = openssl::sign::Verifier::new(md, &key).map_err(|e| e.to_string())?;
        v.update(&signed).map_err(|e| e.to_string())?;
        if v.verify(si.signature.as_bytes()).unwrap_or(false) {
            Ok(())
        } else {
            Err("the signature does not verify with the signer's certificate".into())
        }
    };
    let result = check();
    if let Some(attrs) = &si.signed_attrs {
        signing_time = attrs
            .iter()
            .find(|a| a.oid == ID_SIGNING_TIME)
            .and_then(|a| a.values.iter().next())
            .and_then(|v| v.decode_as::<x509_cert::time::Time>().ok())
            .map(|t| t.to_unix_duration().as_secs() as i64);
    }
    let mut others = intermediates;
    others.extend(certs.iter().filter(|c| *c != signer).filter_map(|c| c.to_der().ok()));
    let certificate = verify(&Input::new(signer_der.clone(), anchors, others, at, revocation))?;
    Ok(Report {
        signature_ok: result.is_ok(),
        signature_error: result.err(),
        signer: signer.tbs_certificate().subject().to_string(),
        serial: hex::encode(signer.tbs_certificate().serial_number().as_bytes()),
        signer_cert: signer_der,
        items: identity_items(signer),
        signing_time,
        certificate,
        content_len: data.len(),
    })
}
