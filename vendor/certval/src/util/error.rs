//! Error types

use core::fmt;

use serde::{Deserialize, Serialize};

/// Result type
pub type Result<T> = core::result::Result<T, Error>;

/// Error type
#[derive(Copy, Clone, Debug, Eq, PartialEq, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum PathValidationStatus {
    /// No errors were encountered while validating certification path
    Valid,
    /// NameChainingFailure occurs when a CertificationPath features certificates for which the subject
    /// name of a superior certificate does not match the issuer name of the immediately subordinate certificate.
    NameChainingFailure,
    /// SignatureVerificationFailure occurs when a CertificationPath features certificates for which the subject
    /// public key of a superior certificate does not verify the signature of the immediately subordinate certificate.
    SignatureVerificationFailure,
    /// InvalidNotBeforeDate occurs when a CertificationPath features a certificate that contains a notBefore
    /// date that is after the time of interest used for a certification path validation operation.
    InvalidNotBeforeDate,
    /// InvalidNotAfterDate occurs when a CertificationPath features a certificate that contains a notAfter
    /// date that is before the time of interest used for a certification path validation operation.
    InvalidNotAfterDate,
    /// MissingBasicConstraints occurs when a CertificationPath features an intermediate CA certificate that
    /// does not contain a basicConstraints extension.
    MissingBasicConstraints,
    /// InvalidBasicConstraints occurs when a CertificationPath features an intermediate CA certificate that
    /// contains a basicConstraints extension with the cA field set to false.
    InvalidBasicConstraints,
    /// InvalidPathLength occurs when a CertificationPath has more certificates than allowed by either an
    /// initial path length configuration or a constraint asserted in an intermediate CA certificate present
    /// in the certification path.
    InvalidPathLength,
    /// InvalidKeyUsage occurs when an intermediate CA certificate lacks keyCertSign (or keyCrlSign when process
    /// CRLs) or when a target certificate does not include bits from PS_KEY_USAGE value in a
    /// CertificationPathSettings instance.
    InvalidKeyUsage,
    /// NullPolicySet occurs when the valid_policy_tree becomes NULL when processing an intermediate CA
    /// certificate or when processing a target certificate and requireExplicitPolicy is operative.
    NullPolicySet,
    /// NameConstraintsViolation occurs when a name constraint is violated.
    NameConstraintsViolation,
    /// UnprocessedCriticalExtension occurs when a certificate features a critical extension that was not
    /// processed during certification path validation.
    UnprocessedCriticalExtension,
    /// MissingTrustAnchor occurs when a CertificationPath has no trust anchor.
    MissingTrustAnchor,
    /// MissingTrustAnchorName occurs when a TrustAnchorChoice object features a TaInfo field that
    /// has not CertPathControls or that has a CertPathControls that does not assert a name or wrap
    /// a Certificate.
    MissingTrustAnchorName,
    /// EncodingError occurs when an object cannot be parsed (though this is more likely to manifest
    /// as an Asn1Error).
    EncodingError,
    /// MissingCertificate occurs when the certification path is missing a target certificate.
    MissingCertificate,
    /// NoPathsFounds occurs when the certification path builder fails to find any candidate paths.
    NoPathsFound,
    /// CertificateRevoked occurs when a CertificationPath contains a certificate that has been revoked.
    CertificateRevoked,
    /// CertificateRevokedEndEntity occurs when a CertificationPath contains an end entity certificate that has been revoked.
    CertificateRevokedEndEntity,
    /// CertificateRevokedIntermediateCa occurs when a CertificationPath contains an intermediate CA certificate that has been revoked.
    CertificateRevokedIntermediateCa,
    /// RevocationStatusNotDetermined occurs when a CertificationPath contains a certificate for which
    /// revocation status could not be determined.
    RevocationStatusNotDetermined,
    /// CertificateOnHold relates to use of the on hold revocation status, which is seldom used.
    CertificateOnHold,
    /// CertificateBlocklisted occurs when a certificate has essentially been manually revoked using a
    /// blocklist in the configuration used during certification path processing.
    CertificateBlocklisted,
    /// StatusCheckReliedOnStaleCrl occurs when revocation status was determined but required use of a
    /// stale CRL to do so.
    StatusCheckReliedOnStaleCrl,
    /// A configuration error was detected. See textual log output for more details.
    Misconfiguration,
    /// An End-Identity certificate was self-signed, but it is forbidden
    SelfSignedEndIdentity,
    /// TrustAnchorConstraintsMismatch occurs when trust anchor constraint enforcement is in effect
    /// and the presented trust anchor shares its public key with an anchor in the trust store but
    /// carries different constraints than the stored (authoritative) copy.
    TrustAnchorConstraintsMismatch,
    /// ProcessingLimitExceeded occurs when path processing exceeds an internal resource limit, for
    /// example when a certificate presents a policies-by-mappings graph large enough to exhaust the
    /// policy node pool. It is raised to fail closed rather than allow unbounded resource use.
    ProcessingLimitExceeded,
    /// InsufficientKeySize occurs when the trust anchor or an intermediate CA certificate carries an
    /// RSA key whose modulus is shorter than the minimum the settings allow
    /// (`PS_MIN_RSA_MODULUS_BITS`).
    InsufficientKeySize,
    /// InvalidPolicyMapping occurs when a policy mappings extension maps to or from anyPolicy
    /// (RFC 5280 section 6.1.4 (a)).
    InvalidPolicyMapping,
    /// NotYetValidated is the status a [`CertificationPathResults`](crate::CertificationPathResults)
    /// holds before validation records a verdict. A path whose validation returned an error without
    /// recording a more specific status also carries it, so it never reads as valid.
    NotYetValidated,
}

/// Error type
#[derive(Copy, Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// PathValidationError encountered
    PathValidation(PathValidationStatus),
    /// NotFound occurs when an action failed because a necessary artifact was not found.
    NotFound,
    /// Unrecognized occurs when an error conditions does not match anything else here.
    Unrecognized,
    /// A URI scheme was encountered that was no valid in given context, i.e., ldap URI presented to OCSP
    InvalidUriScheme,
    /// An artifact did not conform to length requirements
    LengthError,
    /// An artifact could not be parsed
    ParseError,
    /// No error was observed
    Success,
    /// A CRL was found to be incompatible with certificate whose revocation status is sought.
    CrlIncompatible,
    /// An indirect CRL was found. Indirect CRLs are not supported.
    UnsupportedIndirectCrl,
    /// A CRL was ignored due to an invalid extension.
    UnsupportedCrlExtension,
    /// A CRL entry was ignored due to an invalid extension.
    UnsupportedCrlEntryExtension,
    /// A networking issue occurred.
    NetworkError,
    /// An error occurred processing an OCSP response
    OcspResponseError,
    /// Asn1Error is used to propagate error information from the x509 crate.
    Asn1Error(der::Error),
    /// A URI was rejected due to presence on blocklist
    UriOnBlocklist,
    /// A resource was not retrieved due to no change since saved last modified time
    ResourceUnchanged,
    /// Error encapsulates an error derived from [std::io::ErrorKind]
    #[cfg(feature = "std")]
    StdIoError(std::io::ErrorKind),
    /// Failed to obtain lock guard
    LockGuardError,
    /// PQC verification error
    PqcValidation,
}

impl Error {
    /// Returns true if the error returned is for an expired certificate
    pub fn is_certificate_expired_error(&self) -> bool {
        matches!(
            self,
            Self::PathValidation(PathValidationStatus::InvalidNotAfterDate)
        )
    }
}

impl From<der::Error> for Error {
    fn from(err: der::Error) -> Error {
        Error::Asn1Error(err)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

impl fmt::Display for PathValidationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathValidationStatus::Valid => write!(f, "Valid"),
            PathValidationStatus::NameChainingFailure => write!(f, "Name chaining failure"),
            PathValidationStatus::SignatureVerificationFailure => {
                write!(f, "Signature verification failure")
            }
            PathValidationStatus::InvalidNotBeforeDate => write!(f, "InvalidNotBeforeDate"),
            PathValidationStatus::InvalidNotAfterDate => write!(f, "InvalidNotAfterDate"),
            PathValidationStatus::MissingBasicConstraints => write!(f, "MissingBasicConstraints"),
            PathValidationStatus::InvalidBasicConstraints => write!(f, "InvalidBasicConstraints"),
            PathValidationStatus::InvalidPathLength => write!(f, "InvalidPathLength"),
            PathValidationStatus::InvalidKeyUsage => write!(f, "InvalidKeyUsage"),
            PathValidationStatus::NullPolicySet => write!(f, "NullPolicySet"),
            PathValidationStatus::NameConstraintsViolation => write!(f, "NameConstraintsViolation"),
            PathValidationStatus::UnprocessedCriticalExtension => {
                write!(f, "UnprocessedCriticalExtension")
            }
            PathValidationStatus::MissingTrustAnchor => write!(f, "MissingTrustAnchor"),
            PathValidationStatus::MissingTrustAnchorName => write!(f, "MissingTrustAnchorName"),
            PathValidationStatus::EncodingError => write!(f, "EncodingError"),
            PathValidationStatus::MissingCertificate => write!(f, "MissingCertificate"),
            PathValidationStatus::NoPathsFound => write!(f, "NoPathsFound"),
            PathValidationStatus::CertificateRevoked => write!(f, "CertificateRevoked"),
            PathValidationStatus::CertificateRevokedEndEntity => {
                write!(f, "CertificateRevokedEndEntity")
            }
            PathValidationStatus::CertificateRevokedIntermediateCa => {
                write!(f, "CertificateRevokedIntermediateCa")
            }
            PathValidationStatus::RevocationStatusNotDetermined => {
                write!(f, "RevocationStatusNotDetermined")
            }
            PathValidationStatus::CertificateOnHold => write!(f, "CertificateOnHold"),
            PathValidationStatus::CertificateBlocklisted => write!(f, "CertificateBlocklisted"),
            PathValidationStatus::StatusCheckReliedOnStaleCrl => {
                write!(f, "StatusCheckReliedOnStaleCrl")
            }
            PathValidationStatus::Misconfiguration => write!(f, "Misconfiguration"),
            PathValidationStatus::SelfSignedEndIdentity => write!(f, "SelfSignedEndIdentity"),
            PathValidationStatus::TrustAnchorConstraintsMismatch => {
                write!(f, "TrustAnchorConstraintsMismatch")
            }
            PathValidationStatus::InvalidPolicyMapping => write!(f, "InvalidPolicyMapping"),
            PathValidationStatus::NotYetValidated => write!(f, "NotYetValidated"),
            PathValidationStatus::ProcessingLimitExceeded => {
                write!(f, "ProcessingLimitExceeded")
            }
            PathValidationStatus::InsufficientKeySize => write!(f, "InsufficientKeySize"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::PathValidation(err) => write!(f, "PathValidationError: {err}"),
            Error::NotFound => write!(f, "NotFound"),
            Error::Unrecognized => write!(f, "Unrecognized"),
            Error::InvalidUriScheme => write!(f, "InvalidUriScheme"),
            Error::LengthError => write!(f, "LengthError"),
            Error::ParseError => write!(f, "ParseError"),
            Error::Success => write!(f, "Success"),
            Error::CrlIncompatible => write!(f, "CrlIncompatible"),
            Error::UnsupportedIndirectCrl => write!(f, "UnsupportedIndirectCrl"),
            Error::UnsupportedCrlExtension => write!(f, "UnsupportedCrlExtension"),
            Error::UnsupportedCrlEntryExtension => write!(f, "UnsupportedCrlEntryExtension"),
            Error::NetworkError => write!(f, "NetworkError"),
            Error::OcspResponseError => write!(f, "OcspResponseError"),
            Error::Asn1Error(err) => write!(f, "Asn1Error: {err}"),
            Error::UriOnBlocklist => write!(f, "UriOnBlocklist"),
            Error::ResourceUnchanged => write!(f, "ResourceUnchanged"),
            #[cfg(feature = "std")]
            Error::StdIoError(err) => write!(f, "StdError: {err:?}"),
            Error::LockGuardError => write!(f, "LockGuardError"),
            Error::PqcValidation => write!(f, "PqcValidation"),
        }
    }
}

#[test]
fn error_test() {
    use alloc::format;

    let _s = format!("{}", PathValidationStatus::Valid);
    let _s = format!("{}", PathValidationStatus::NameChainingFailure);
    let _s = format!("{}", PathValidationStatus::SignatureVerificationFailure);
    let _s = format!("{}", PathValidationStatus::InvalidNotBeforeDate);
    let _s = format!("{}", PathValidationStatus::InvalidNotAfterDate);
    let _s = format!("{}", PathValidationStatus::MissingBasicConstraints);
    let _s = format!("{}", PathValidationStatus::InvalidBasicConstraints);
    let _s = format!("{}", PathValidationStatus::InvalidPathLength);
    let _s = format!("{}", PathValidationStatus::InvalidKeyUsage);
    let _s = format!("{}", PathValidationStatus::NullPolicySet);
    let _s = format!("{}", PathValidationStatus::NameConstraintsViolation);
    let _s = format!("{}", PathValidationStatus::UnprocessedCriticalExtension);
    let _s = format!("{}", PathValidationStatus::MissingTrustAnchor);
    let _s = format!("{}", PathValidationStatus::MissingTrustAnchorName);
    let _s = format!("{}", PathValidationStatus::EncodingError);
    let _s = format!("{}", PathValidationStatus::MissingCertificate);
    let _s = format!("{}", PathValidationStatus::NoPathsFound);
    let _s = format!("{}", PathValidationStatus::CertificateRevoked);
    let _s = format!("{}", PathValidationStatus::CertificateRevokedEndEntity);
    let _s = format!(
        "{:?}",
        PathValidationStatus::CertificateRevokedIntermediateCa
    );
    let _s = format!("{}", PathValidationStatus::RevocationStatusNotDetermined);
    let _s = format!("{}", PathValidationStatus::CertificateOnHold);
    let _s = format!("{}", PathValidationStatus::CertificateBlocklisted);
    let _s = format!("{}", PathValidationStatus::StatusCheckReliedOnStaleCrl);
    let _s = format!("{}", PathValidationStatus::Misconfiguration);

    //let _s = format!("{}", Error::PathValidation(PathValidationStatus));
    let _s = format!("{}", Error::NotFound);
    let _s = format!("{}", Error::Unrecognized);
    let _s = format!("{}", Error::InvalidUriScheme);
    let _s = format!("{}", Error::LengthError);
    let _s = format!("{}", Error::ParseError);
    let _s = format!("{}", Error::Success);
    let _s = format!("{}", Error::CrlIncompatible);
    let _s = format!("{}", Error::UnsupportedIndirectCrl);
    let _s = format!("{}", Error::UnsupportedCrlExtension);
    let _s = format!("{}", Error::UnsupportedCrlEntryExtension);
    let _s = format!("{}", Error::NetworkError);
    let _s = format!("{}", Error::OcspResponseError);
    //let _s = format!("{}", Error::Asn1Error(der::Error));
    let _s = format!("{}", Error::UriOnBlocklist);
    let _s = format!("{}", Error::ResourceUnchanged);
}
