//! RFC 6960 OCSP structures on der 0.8 (no published OCSP crate works with x509-cert 0.3; see
//! the shared reference crates.md §1.5). The ASN.1 module uses EXPLICIT tags except where
//! RFC 6960 §4.2.1 says IMPLICIT (CertStatus).

#![forbid(clippy::disallowed_methods)]

use der::asn1::{BitString, GeneralizedTime, Null, ObjectIdentifier, OctetString};
use der::{Choice, Enumerated, Sequence};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::ext::Extensions;
use x509_cert::ext::pkix::CrlReason;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;

/// id-pkix-ocsp-basic.
pub const OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
/// id-pkix-ocsp-nonce.
pub const OCSP_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");
/// id-sha1.
pub const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
/// id-sha256.
pub const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

/// `OCSPRequest`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct OcspRequest {
    /// The request.
    pub tbs_request: TbsRequest,
    /// A signature on the request (we do not require one).
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub optional_signature: Option<RequestSignature>,
}

/// `TBSRequest`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct TbsRequest {
    /// v1 (0).
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", default = "Default::default")]
    pub version: Version,
    /// Requestor name (GeneralName; kept as raw DER).
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    pub requestor_name: Option<der::Any>,
    /// One or more certificates.
    pub request_list: Vec<Request>,
    /// Extensions (nonce).
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
    pub request_extensions: Option<Extensions>,
}

/// `Version`.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq, Enumerated)]
#[asn1(type = "INTEGER")]
#[repr(u8)]
pub enum Version {
    /// v1.
    #[default]
    V1 = 0,
}

/// `Signature` of a signed request.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct RequestSignature {
    /// Algorithm.
    pub signature_algorithm: AlgorithmIdentifierOwned,
    /// Value.
    pub signature: BitString,
    /// Certificates.
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub certs: Option<Vec<Certificate>>,
}

/// `Request`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct Request {
    /// The certificate asked about.
    pub req_cert: CertId,
    /// Per-request extensions.
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub single_request_extensions: Option<Extensions>,
}

/// `CertID`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct CertId {
    /// Hash algorithm of the two hashes.
    pub hash_algorithm: AlgorithmIdentifierOwned,
    /// Hash of the issuer's DN.
    pub issuer_name_hash: OctetString,
    /// Hash of the issuer's public key (the BIT STRING value).
    pub issuer_key_hash: OctetString,
    /// Serial.
    pub serial_number: SerialNumber,
}

/// `OCSPResponseStatus`.
#[derive(Clone, Copy, Debug, Eq, PartialEq, Enumerated)]
#[repr(u32)]
pub enum ResponseStatus {
    /// 0.
    Successful = 0,
    /// 1.
    MalformedRequest = 1,
    /// 2.
    InternalError = 2,
    /// 3.
    TryLater = 3,
    /// 5.
    SigRequired = 5,
    /// 6.
    Unauthorized = 6,
}

impl ResponseStatus {
    /// The status's name in RFC 6960 §4.2.1 (`unauthorized`, `tryLater`, …).
    pub fn name(self) -> &'static str {
        match self {
            ResponseStatus::Successful => "successful",
            ResponseStatus::MalformedRequest => "malformedRequest",
            ResponseStatus::InternalError => "internalError",
            ResponseStatus::TryLater => "tryLater",
            ResponseStatus::SigRequired => "sigRequired",
            ResponseStatus::Unauthorized => "unauthorized",
        }
    }
}

/// `OCSPResponse`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct OcspResponse {
    /// Status.
    pub response_status: ResponseStatus,
    /// Body (successful only).
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub response_bytes: Option<ResponseBytes>,
}

/// `ResponseBytes`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct ResponseBytes {
    /// id-pkix-ocsp-basic.
    pub response_type: ObjectIdentifier,
    /// DER of a `BasicOCSPResponse`.
    pub response: OctetString,
}

/// `BasicOCSPResponse`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct BasicOcspResponse {
    /// What is signed.
    pub tbs_response_data: ResponseData,
    /// Algorithm.
    pub signature_algorithm: AlgorithmIdentifierOwned,
    /// Signature.
    pub signature: BitString,
    /// The responder's certificate.
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub certs: Option<Vec<Certificate>>,
}

/// `ResponseData`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct ResponseData {
    /// v1.
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", default = "Default::default")]
    pub version: Version,
    /// Who signs.
    pub responder_id: ResponderId,
    /// When.
    pub produced_at: GeneralizedTime,
    /// Answers.
    pub responses: Vec<SingleResponse>,
    /// Extensions (nonce echo).
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    pub response_extensions: Option<Extensions>,
}

/// `ResponderID`.
#[derive(Clone, Debug, Eq, PartialEq, Choice)]
pub enum ResponderId {
    /// By name.
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", constructed = "true")]
    ByName(Name),
    /// By SHA-1 of the responder's public key.
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", constructed = "true")]
    ByKey(OctetString),
}

/// `SingleResponse`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct SingleResponse {
    /// The certificate.
    pub cert_id: CertId,
    /// Its status.
    pub cert_status: CertStatus,
    /// When the status was known correct.
    pub this_update: GeneralizedTime,
    /// When newer information will be available.
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub next_update: Option<GeneralizedTime>,
    /// Extensions.
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    pub single_extensions: Option<Extensions>,
}

/// `CertStatus` (IMPLICIT tags).
#[derive(Clone, Debug, Eq, PartialEq, Choice)]
pub enum CertStatus {
    /// Good.
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT")]
    Good(Null),
    /// Revoked.
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", constructed = "true")]
    Revoked(RevokedInfo),
    /// Unknown.
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT")]
    Unknown(Null),
}

/// `RevokedInfo`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct RevokedInfo {
    /// When.
    pub revocation_time: GeneralizedTime,
    /// Why.
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub revocation_reason: Option<CrlReason>,
}

/// A DER OCSPRequest for one certificate of `issuer` (SHA-1 CertID, no nonce: the form
/// responders pre-sign).
pub fn request_for(issuer: &Certificate, serial: &[u8]) -> der::Result<Vec<u8>> {
    use der::Encode;
    use sha1::Digest;
    let name = issuer.tbs_certificate().subject().to_der()?;
    let key = issuer.tbs_certificate().subject_public_key_info().subject_public_key.raw_bytes();
    OcspRequest {
        tbs_request: TbsRequest {
            version: Version::V1,
            requestor_name: None,
            request_list: vec![Request {
                req_cert: CertId {
                    hash_algorithm: AlgorithmIdentifierOwned { oid: SHA1, parameters: Some(Null.into()) },
                    issuer_name_hash: OctetString::new(sha1::Sha1::digest(&name).to_vec())?,
                    issuer_key_hash: OctetString::new(sha1::Sha1::digest(key).to_vec())?,
                    serial_number: SerialNumber::new(serial)?,
                },
                single_request_extensions: None,
            }],
            request_extensions: None,
        },
        optional_signature: None,
    }
    .to_der()
}

/// The OCSP responder URLs in a certificate's authorityInfoAccess.
pub fn ocsp_urls(cert: &Certificate) -> Vec<String> {
    use x509_cert::ext::pkix::AuthorityInfoAccessSyntax;
    use x509_cert::ext::pkix::name::GeneralName;
    let Ok(Some((_, aia))) = cert.tbs_certificate().get_extension::<AuthorityInfoAccessSyntax>() else {
        return Vec::new();
    };
    aia.0
        .iter()
        .filter(|a| a.access_method.to_string() == "1.3.6.1.5.5.7.48.1")
        .filter_map(|a| match &a.access_location {
            GeneralName::UniformResourceIdentifier(u) => Some(u.to_string()),
            _ => None,
        })
        .collect()
}

impl OcspResponse {
    /// An error response (no body).
    pub fn error(status: ResponseStatus) -> OcspResponse {
        OcspResponse { response_status: status, response_bytes: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::{Decode, Encode};

    #[test]
    fn error_responses_are_the_rfc_bytes() {
        // RFC 6960: OCSPResponse { responseStatus malformedRequest } = 30 03 0A 01 01.
        let b = OcspResponse::error(ResponseStatus::MalformedRequest).to_der().unwrap();
        assert_eq!(b, [0x30, 0x03, 0x0A, 0x01, 0x01]);
        let b = OcspResponse::error(ResponseStatus::Unauthorized).to_der().unwrap();
        assert_eq!(b, [0x30, 0x03, 0x0A, 0x01, 0x06]);
        assert_eq!(OcspResponse::from_der(&b).unwrap().response_status, ResponseStatus::Unauthorized);
    }

    #[test]
    fn cert_status_tags_are_implicit() {
        assert_eq!(CertStatus::Good(Null).to_der().unwrap(), [0x80, 0x00]);
        assert_eq!(CertStatus::Unknown(Null).to_der().unwrap(), [0x82, 0x00]);
        let t = GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(1_700_000_000)).unwrap();
        let r = CertStatus::Revoked(RevokedInfo { revocation_time: t, revocation_reason: Some(CrlReason::Superseded) });
        let b = r.to_der().unwrap();
        assert_eq!(b[0], 0xA1, "[1] IMPLICIT constructed");
        assert_eq!(&b[b.len() - 5..], &[0xA0, 0x03, 0x0A, 0x01, 0x04], "[0] EXPLICIT CRLReason superseded");
        assert_eq!(CertStatus::from_der(&b).unwrap(), r);
    }
}
