//! A CMS SignedData (RFC 5652, attached content, signed attributes contentType, messageDigest
//! and signingTime) whose signature the card makes: the private key never leaves it. Built from
//! the `cms` crate's types. An RSA card key signs SHA-256 of the signed attributes as a PKCS#1
//! v1.5 DigestInfo; a P-384 card key (the next-generation card, after a rollover) signs their
//! SHA-384 with ECDSA (RFC 5753 §2.1.1: ecdsa-with-SHA384, DER signature).

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use const_oid::ObjectIdentifier;
use der::asn1::{Any, OctetString, SetOfVec};
use der::{Decode, Encode};
use sha2::Digest;
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::attr::Attribute;

use crate::reader::SHA256_DIGEST_INFO_PREFIX;
use crate::{Error, Result};

const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SIGNING_TIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const ID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");

fn attr(oid: ObjectIdentifier, value: Any) -> Result<Attribute> {
    Ok(Attribute { oid, values: SetOfVec::try_from(vec![value])? })
}

/// Builds the SignedData around `content`, with `cert_der` (the signer's certificate: RSA or
/// P-384) and `chain` (its CA certificates) in it; `sign` gets what the card signs (the SHA-256
/// DigestInfo of the signed attributes for RSA, their SHA-384 for P-384) and returns the
/// signature.
pub fn signed_data(
    content: &[u8],
    cert_der: &[u8],
    chain: &[Vec<u8>],
    signing_time: u64,
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    let cert = Certificate::from_der(cert_der)?;
    let ec = cert.tbs_certificate().subject_public_key_info().algorithm.oid == ID_EC_PUBLIC_KEY;
    let hash = |b: &[u8]| if ec { sha2::Sha384::digest(b).to_vec() } else { sha2::Sha256::digest(b).to_vec() };
    let time = x509_cert::time::Time::try_from(std::time::UNIX_EPOCH + std::time::Duration::from_secs(signing_time))?;
    let attrs = SetOfVec::try_from(vec![
        attr(ID_CONTENT_TYPE, Any::encode_from(&ID_DATA)?)?,
        attr(ID_MESSAGE_DIGEST, Any::encode_from(&OctetString::new(hash(content))?)?)?,
        attr(ID_SIGNING_TIME, Any::encode_from(&time)?)?,
    ])?;
    let (input, signature_algorithm) = if ec {
        (hash(&attrs.to_der()?), AlgorithmIdentifierOwned { oid: ECDSA_WITH_SHA384, parameters: None })
    } else {
        let mut digest_info = SHA256_DIGEST_INFO_PREFIX.to_vec();
        digest_info.extend_from_slice(&hash(&attrs.to_der()?));
        (digest_info, AlgorithmIdentifierOwned { oid: RSA_ENCRYPTION, parameters: Some(der::asn1::Null.into()) })
    };
    let signature = sign(&input)?;
    let digest_alg = AlgorithmIdentifierOwned { oid: if ec { ID_SHA384 } else { ID_SHA256 }, parameters: None };
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
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: Some(Any::encode_from(&OctetString::new(content)?)?),
        },
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
