//! CMS SignedData (RFC 5652) whose signature a key elsewhere makes (a card, a CA key backend):
//! the private key never comes here. Built from the `cms` crate's types. Two shapes:
//! - [`signed_data`]: attached content, signed attributes contentType, messageDigest and
//!   signingTime, as the card signs a document ([`Content::Attached`]);
//! - [`build`] with [`Content::Detached`]: the content's digest only (a PDF's byte ranges), and
//!   for PAdES baseline B-B (ETSI EN 319 142-1 §6.3) the ESS signing-certificate-v2 attribute
//!   (RFC 5035) and no signingTime (the claimed time goes in the PDF's `/M`).
//!
//! An RSA key signs SHA-256 of the signed attributes (PKCS#1 v1.5); a P-384 key signs their
//! SHA-384 with ECDSA (RFC 5753 §2.1.1: ecdsa-with-SHA384, DER signature).

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use const_oid::ObjectIdentifier;
use der::asn1::{Any, OctetString, SetOfVec};
use der::{Decode, Encode, Sequence};
use sha2::Digest;
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::serial_number::SerialNumber;

use crate::reader::SHA256_DIGEST_INFO_PREFIX;
use crate::{Error, Result};

const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SIGNING_TIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");
const ID_AA_SIGNING_CERTIFICATE_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const ID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");

/// The digest a signer's key goes with: SHA-256 for RSA, SHA-384 for P-384.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    /// SHA-256 (RSA keys).
    Sha256,
    /// SHA-384 (P-384 keys).
    Sha384,
}

impl HashAlg {
    /// The digest of a certificate's key (DER certificate).
    pub fn for_cert(cert_der: &[u8]) -> Result<Self> {
        Ok(Self::of(&Certificate::from_der(cert_der)?))
    }

    fn of(cert: &Certificate) -> Self {
        if cert.tbs_certificate().subject_public_key_info().algorithm.oid == ID_EC_PUBLIC_KEY {
            Self::Sha384
        } else {
            Self::Sha256
        }
    }

    /// The digest of the concatenation of `parts` (a PDF's two byte ranges).
    pub fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        match self {
            Self::Sha256 => parts.iter().fold(sha2::Sha256::new(), |h, p| h.chain_update(p)).finalize().to_vec(),
            Self::Sha384 => parts.iter().fold(sha2::Sha384::new(), |h, p| h.chain_update(p)).finalize().to_vec(),
        }
    }

    fn oid(self) -> ObjectIdentifier {
        match self {
            Self::Sha256 => ID_SHA256,
            Self::Sha384 => ID_SHA384,
        }
    }
}

/// What the SignedData is over.
#[derive(Debug, Clone, Copy)]
pub enum Content<'a> {
    /// The content itself, carried inside (eContent).
    Attached(&'a [u8]),
    /// Detached content: only its digest ([`HashAlg::digest`] with the signer's [`HashAlg`]).
    Detached(&'a [u8]),
}

/// Which signed attributes go in besides contentType and messageDigest.
#[derive(Debug, Clone, Copy, Default)]
pub struct Attributes {
    /// signingTime (unix seconds); PAdES forbids it (the time is the PDF's `/M`).
    pub signing_time: Option<u64>,
    /// ESS signing-certificate-v2 (RFC 5035) naming the signer's certificate: required by
    /// CAdES and PAdES baseline B-B.
    pub signing_certificate_v2: bool,
}

/// IssuerSerial (RFC 5035 §5.4.1.1).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct IssuerSerial {
    issuer: Vec<GeneralName>,
    serial_number: SerialNumber,
}

/// ESSCertIDv2 (RFC 5035 §3): hashAlgorithm DEFAULT sha256 (so absent for SHA-256, DER).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct EssCertIdV2 {
    hash_algorithm: Option<AlgorithmIdentifierOwned>,
    cert_hash: OctetString,
    issuer_serial: Option<IssuerSerial>,
}

/// SigningCertificateV2 (RFC 5035 §3), without policies.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
}

fn attr(oid: ObjectIdentifier, value: Any) -> Result<Attribute> {
    Ok(Attribute { oid, values: SetOfVec::try_from(vec![value])? })
}

/// Builds the SignedData with `cert_der` (the signer's certificate: RSA or P-384) and `chain`
/// (its CA certificates) in it; `sign` gets the [`HashAlg`] digest of the DER signed attributes
/// and returns the signature (PKCS#1 v1.5 bytes or a DER ECDSA-Sig-Value).
pub fn build(
    content: Content<'_>,
    cert_der: &[u8],
    chain: &[Vec<u8>],
    attributes: Attributes,
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    let cert = Certificate::from_der(cert_der)?;
    let alg = HashAlg::of(&cert);
    let (content_digest, econtent) = match content {
        Content::Attached(c) => (alg.digest(&[c]), Some(Any::encode_from(&OctetString::new(c)?)?)),
        Content::Detached(d) => (d.to_vec(), None),
    };
    let mut attrs = vec![
        attr(ID_CONTENT_TYPE, Any::encode_from(&ID_DATA)?)?,
        attr(ID_MESSAGE_DIGEST, Any::encode_from(&OctetString::new(content_digest)?)?)?,
    ];
    if let Some(t) = attributes.signing_time {
        let time = x509_cert::time::Time::try_from(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t))?;
        attrs.push(attr(ID_SIGNING_TIME, Any::encode_from(&time)?)?);
    }
    if attributes.signing_certificate_v2 {
        let id = EssCertIdV2 {
            hash_algorithm: (alg != HashAlg::Sha256)
                .then(|| AlgorithmIdentifierOwned { oid: alg.oid(), parameters: None }),
            cert_hash: OctetString::new(alg.digest(&[cert_der]))?,
            issuer_serial: Some(IssuerSerial {
                issuer: vec![GeneralName::DirectoryName(cert.tbs_certificate().issuer().clone())],
                serial_number: cert.tbs_certificate().serial_number().clone(),
            }),
        };
        attrs.push(attr(ID_AA_SIGNING_CERTIFICATE_V2, Any::encode_from(&SigningCertificateV2 { certs: vec![id] })?)?);
    }
    let attrs = SetOfVec::try_from(attrs)?;
    let signature = sign(&alg.digest(&[&attrs.to_der()?]))?;
    let signature_algorithm = match alg {
        HashAlg::Sha384 => AlgorithmIdentifierOwned { oid: ECDSA_WITH_SHA384, parameters: None },
        HashAlg::Sha256 => AlgorithmIdentifierOwned { oid: RSA_ENCRYPTION, parameters: Some(der::asn1::Null.into()) },
    };
    let digest_alg = AlgorithmIdentifierOwned { oid: alg.oid(), parameters: None };
    let si = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: cert.tbs_certificate().issuer().clone(),
            serial_number: cert.tbs_certificate().serial_number().clone(),
        }),
        digest_alg: digest_alg.clone(),
        signed_attrs: Some(attrs),
        signature_algorithm,
        signature: OctetString::new(signature)?,
        unsigned_attrs: None,
    };
    let sd = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![digest_alg])?,
        encap_content_info: EncapsulatedContentInfo { econtent_type: ID_DATA, econtent },
        certificates: Some(CertificateSet(SetOfVec::try_from(
            std::iter::once(Ok(cert))
                .chain(chain.iter().map(|c| Certificate::from_der(c)))
                .map(|c| c.map(CertificateChoices::Certificate))
                .collect::<der::Result<Vec<_>>>()?,
        )?)),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![si])?),
    };
    let ci = ContentInfo { content_type: ID_SIGNED_DATA, content: Any::encode_from(&sd)? };
    ci.to_der().map_err(|e| Error::Malformed(format!("CMS: {e}")))
}

/// The card's SignedData: attached `content`, signed attributes contentType, messageDigest and
/// signingTime; `sign` gets what the card signs (the SHA-256 DigestInfo of the signed
/// attributes for RSA, their SHA-384 for P-384) and returns the signature.
pub fn signed_data(
    content: &[u8],
    cert_der: &[u8],
    chain: &[Vec<u8>],
    signing_time: u64,
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    let rsa = HashAlg::for_cert(cert_der)? == HashAlg::Sha256;
    let attributes = Attributes { signing_time: Some(signing_time), signing_certificate_v2: false };
    build(Content::Attached(content), cert_der, chain, attributes, |digest| {
        if rsa {
            let mut digest_info = SHA256_DIGEST_INFO_PREFIX.to_vec();
            digest_info.extend_from_slice(digest);
            sign(&digest_info)
        } else {
            sign(digest)
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use openssl::pkey::PKey;

    /// A self-signed certificate for `key` (openssl), DER.
    fn self_signed(key: &PKey<openssl::pkey::Private>, md: openssl::hash::MessageDigest) -> Vec<u8> {
        let mut name = openssl::x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "cms test").unwrap();
        let name = name.build();
        let mut b = openssl::x509::X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(key).unwrap();
        b.set_serial_number(&openssl::bn::BigNum::from_u32(7).unwrap().to_asn1_integer().unwrap()).unwrap();
        b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap()).unwrap();
        b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap()).unwrap();
        b.sign(key, md).unwrap();
        b.build().to_der().unwrap()
    }

    /// `openssl cms -verify` of a detached SignedData over `content` (no chain check: the
    /// certificate is its own signer here).
    fn openssl_verify_detached(cms: &[u8], content: &[u8]) -> (bool, String) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sig.der"), cms).unwrap();
        std::fs::write(dir.path().join("content"), content).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["cms", "-verify", "-noverify", "-binary", "-inform", "DER", "-in"])
            .arg(dir.path().join("sig.der"))
            .arg("-content")
            .arg(dir.path().join("content"))
            .args(["-out", "/dev/null"])
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    }

    #[test]
    fn detached_signed_data_with_signing_certificate_v2_verifies_in_openssl_and_a_changed_byte_does_not() {
        let content = b"%PDF-1.7 the two byte ranges of a document".to_vec();
        for (key, md) in [
            (
                PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap(),
                openssl::hash::MessageDigest::sha256(),
            ),
            (
                PKey::from_ec_key(
                    openssl::ec::EcKey::generate(
                        &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::SECP384R1).unwrap(),
                    )
                    .unwrap(),
                )
                .unwrap(),
                openssl::hash::MessageDigest::sha384(),
            ),
        ] {
            let cert = self_signed(&key, md);
            let alg = HashAlg::for_cert(&cert).unwrap();
            let attributes = Attributes { signing_time: None, signing_certificate_v2: true };
            let cms = build(Content::Detached(&alg.digest(&[&content])), &cert, &[], attributes, |digest| {
                let mut ctx = openssl::pkey_ctx::PkeyCtx::new(&key).unwrap();
                ctx.sign_init().unwrap();
                if alg == HashAlg::Sha256 {
                    ctx.set_rsa_padding(openssl::rsa::Padding::PKCS1).unwrap();
                    ctx.set_signature_md(openssl::md::Md::sha256()).unwrap();
                }
                let mut sig = Vec::new();
                ctx.sign_to_vec(digest, &mut sig).unwrap();
                Ok(sig)
            })
            .unwrap();
            let (ok, err) = openssl_verify_detached(&cms, &content);
            assert!(ok, "{alg:?}: {err}");
            let mut changed = content.clone();
            changed[3] ^= 1;
            assert!(!openssl_verify_detached(&cms, &changed).0, "{alg:?}: a changed byte must not verify");
            // The ESS attribute names the certificate by its hash and no signingTime is there.
            let printed = std::process::Command::new("openssl")
                .args(["cms", "-cmsout", "-print", "-inform", "DER"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .and_then(|mut c| {
                    use std::io::Write;
                    c.stdin.take().unwrap().write_all(&cms)?;
                    c.wait_with_output()
                })
                .unwrap();
            let text = String::from_utf8_lossy(&printed.stdout);
            assert!(text.contains("id-smime-aa-signingCertificateV2"), "{text}");
            assert!(!text.contains("signingTime"), "{text}");
        }
    }
}
