//! Certificate profiles as types (x509-cert `BuilderProfile`), one per kind of certificate:
//! [`RootCa`], [`IssuingCa`], [`LinkCa`], [`SignatureCert`], [`AuthenticationCert`], [`OcspResponder`], and
//! the network CA's end entities [`NetworkEndEntity`] under a [`RootCa`] with pathLen 0 (docs/network.md),
//! and the organisation CA's [`DocumentSigningCert`] under another such root (docs/resdoc.md).
//! Extensions are written with explicit criticality (jpki.md §1.2–1.3, RFC 5280 §4.2). Pure:
//! [`prepare`] gives the exact to-be-signed bytes, [`Prepared::sign`] signs them and checks the
//! signed certificate carries those very bytes.

#![forbid(clippy::disallowed_methods)]

use std::str::FromStr;

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5280 as oids;
use der::asn1::{Any, Ia5String, OctetString, Utf8StringRef};
use der::{Decode, Encode};
use spki::{SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};
use time::{Date, OffsetDateTime};
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder};
use x509_cert::certificate::{Certificate, TbsCertificate};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::certpolicy::{PolicyInformation, PolicyQualifierInfo};
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName, OtherName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints, CertificatePolicies,
    CrlDistributionPoints, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use crate::error::{Error, Result};
use crate::key::{BuilderKey, KeyBackend, signature_bits};

/// The six SAN otherNames of the signature certificate (jpki.md §1.2).
pub mod san_oid {
    use const_oid::ObjectIdentifier;
    /// 氏名.
    pub const NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.5.1");
    /// 氏名代替文字 flags.
    pub const NAME_FLAGS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.5.2");
    /// 性別.
    pub const SEX: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.5.3");
    /// 生年月日 as EYYYYMMDD.
    pub const DATE_OF_BIRTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.5.4");
    /// 住所.
    pub const ADDRESS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.5.5");
    /// 住所代替文字 flags.
    pub const ADDRESS_FLAGS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.5.6");
}

/// id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1).
pub const OCSP_NOCHECK: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.5");
/// id-kp-OCSPSigning.
pub const KP_OCSP_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");
/// id-ad-ocsp.
pub const AD_OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");
/// id-ad-caIssuers.
pub const AD_CA_ISSUERS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.2");
/// id-qt-cps.
pub const QT_CPS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.2.1");

/// The identity items written into a signature certificate, as the SAN carries them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SanItems {
    /// 氏名.
    pub name: String,
    /// One `0`/`1` per name character.
    pub name_flags: String,
    /// `1`, `2` or `9`.
    pub sex: u8,
    /// Date of birth.
    pub date_of_birth: Date,
    /// 住所.
    pub address: String,
    /// One `0`/`1` per address character.
    pub address_flags: String,
}

/// `EYYYYMMDD`: the era digit (0 unknown, 1 明治, 2 大正, 3 昭和, 4 平成, 5 令和) and the
/// Gregorian date (jpki.md §1.2).
pub fn era_date(d: Date) -> String {
    let starts = [(5, (2019, 5, 1)), (4, (1989, 1, 8)), (3, (1926, 12, 25)), (2, (1912, 7, 30)), (1, (1868, 1, 25))];
    let key = (d.year(), u8::from(d.month()), d.day());
    let era = starts.iter().find(|(_, s)| key >= *s).map(|(e, _)| *e).unwrap_or(0);
    format!("{era}{:04}{:02}{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Where relying parties find status: the CRL shard URL and the OCSP URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUrls {
    /// The certificate's CRL distribution point (its shard).
    pub crl: String,
    /// OCSP responder URL (AIA).
    pub ocsp: String,
    /// caIssuers (AIA): the issuing CA's certificate and its root's link certificates, as a
    /// certs-only CMS bundle (RFC 5280 §4.2.2.1).
    pub ca_issuers: Option<String>,
}

type BResult<T> = x509_cert::builder::Result<T>;

fn ext(oid: ObjectIdentifier, critical: bool, value: &impl Encode) -> BResult<Extension> {
    Ok(Extension { extn_id: oid, critical, extn_value: OctetString::new(value.to_der()?)? })
}

fn ski(spk: SubjectPublicKeyInfoRef<'_>) -> BResult<Extension> {
    let id = key_id_of(spk)?;
    ext(oids::ID_CE_SUBJECT_KEY_IDENTIFIER, false, &SubjectKeyIdentifier(OctetString::new(id.to_vec())?))
}

fn aki(issuer: SubjectPublicKeyInfoRef<'_>) -> BResult<Extension> {
    let id = key_id_of(issuer)?;
    let v = AuthorityKeyIdentifier { key_identifier: Some(OctetString::new(id.to_vec())?), ..Default::default() };
    ext(oids::ID_CE_AUTHORITY_KEY_IDENTIFIER, false, &v)
}

/// RFC 5280 §4.2.1.2 method 1 (as [`crate::key::key_identifier`]).
fn key_id_of(spk: SubjectPublicKeyInfoRef<'_>) -> BResult<[u8; 20]> {
    use sha1::Digest;
    let bits = spk
        .subject_public_key
        .as_bytes()
        .ok_or(der::Error::from(der::ErrorKind::Value { tag: der::Tag::BitString }))?;
    Ok(sha1::Sha1::digest(bits).into())
}

fn key_usage(usages: impl Into<der::flagset::FlagSet<KeyUsages>>) -> BResult<Extension> {
    ext(oids::ID_CE_KEY_USAGE, true, &KeyUsage(usages.into()))
}

fn policies(policy: ObjectIdentifier, critical: bool) -> BResult<Extension> {
    let cps = Ia5String::new(crate::hierarchy::CPS_URI)?;
    let info = PolicyInformation {
        policy_identifier: policy,
        policy_qualifiers: Some(vec![PolicyQualifierInfo {
            policy_qualifier_id: QT_CPS,
            qualifier: Some(Any::encode_from(&cps)?),
        }]),
    };
    ext(oids::ID_CE_CERTIFICATE_POLICIES, critical, &CertificatePolicies(vec![info]))
}

/// A fullName URI distribution point name.
pub fn uri_dp_name(url: &str) -> der::Result<DistributionPointName> {
    Ok(DistributionPointName::FullName(vec![GeneralName::UniformResourceIdentifier(Ia5String::new(url)?)]))
}

fn crl_dp(url: &str) -> BResult<Extension> {
    let dp = DistributionPoint { distribution_point: Some(uri_dp_name(url)?), reasons: None, crl_issuer: None };
    ext(oids::ID_CE_CRL_DISTRIBUTION_POINTS, false, &CrlDistributionPoints(vec![dp]))
}

fn aia(urls: &StatusUrls) -> BResult<Extension> {
    let ad = |method, url: &str| -> BResult<AccessDescription> {
        Ok(AccessDescription {
            access_method: method,
            access_location: GeneralName::UniformResourceIdentifier(Ia5String::new(url)?),
        })
    };
    let mut all = vec![ad(AD_OCSP, &urls.ocsp)?];
    if let Some(u) = &urls.ca_issuers {
        all.push(ad(AD_CA_ISSUERS, u)?);
    }
    ext(oids::ID_PE_AUTHORITY_INFO_ACCESS, false, &AuthorityInfoAccessSyntax(all))
}

fn other_name(oid: ObjectIdentifier, value: &str) -> BResult<GeneralName> {
    Ok(GeneralName::OtherName(OtherName { type_id: oid, value: Any::encode_from(&Utf8StringRef::new(value)?)? }))
}

/// A self-signed root: keyUsage critical keyCertSign+cRLSign, basicConstraints critical
/// CA:TRUE, SKI, no AKI (as J-LIS roots; RFC 5280 §4.2.1.1 allows it). The residents'
/// hierarchies have no pathLen; the network CA (docs/network.md) has pathLen 0, as it issues
/// only end-entity credentials.
#[derive(Debug, Clone)]
pub struct RootCa {
    /// The root's name.
    pub name: Name,
    /// basicConstraints pathLenConstraint.
    pub path_len: Option<u8>,
}

impl BuilderProfile for RootCa {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.name.clone()
    }
    fn get_subject(&self) -> Name {
        self.name.clone()
    }
    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        _issuer: SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> BResult<Vec<Extension>> {
        Ok(vec![
            ext(
                oids::ID_CE_BASIC_CONSTRAINTS,
                true,
                &BasicConstraints { ca: true, path_len_constraint: self.path_len },
            )?,
            key_usage(KeyUsages::KeyCertSign | KeyUsages::CRLSign)?,
            ski(spk)?,
        ])
    }
}

/// A prefecture-unit issuing CA under a root: pathLen 0, AKI/SKI, the hierarchy's policy, and
/// the root's ARL as its CRL distribution point.
#[derive(Debug, Clone)]
pub struct IssuingCa {
    /// The root's name.
    pub issuer: Name,
    /// This CA's name.
    pub subject: Name,
    /// The hierarchy's policy.
    pub policy: ObjectIdentifier,
    /// The root generation's ARL.
    pub arl_url: String,
}

impl BuilderProfile for IssuingCa {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }
    fn get_subject(&self) -> Name {
        self.subject.clone()
    }
    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        issuer: SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> BResult<Vec<Extension>> {
        Ok(vec![
            ext(oids::ID_CE_BASIC_CONSTRAINTS, true, &BasicConstraints { ca: true, path_len_constraint: Some(0) })?,
            key_usage(KeyUsages::KeyCertSign | KeyUsages::CRLSign)?,
            policies(self.policy, false)?,
            crl_dp(&self.arl_url)?,
            aki(issuer)?,
            ski(spk)?,
        ])
    }
}

/// A link certificate of a root re-key (RFC 4210 §4.4: NewWithOld or OldWithNew), or the
/// cross-certificate of a renamed root: one root generation's key certified by another's.
/// basicConstraints CA:TRUE without pathLen (a self-issued certificate does not count towards
/// path lengths, RFC 5280 §6.1.4 (l)), keyCertSign+cRLSign, anyPolicy (it passes every policy
/// of the hierarchy through), the signer's ARL, AKI and SKI.
#[derive(Debug, Clone)]
pub struct LinkCa {
    /// The signing generation's name.
    pub issuer: Name,
    /// The certified generation's name (the same name for a re-key).
    pub subject: Name,
    /// The signing generation's ARL.
    pub arl_url: String,
}

impl BuilderProfile for LinkCa {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }
    fn get_subject(&self) -> Name {
        self.subject.clone()
    }
    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        issuer: SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> BResult<Vec<Extension>> {
        let any = PolicyInformation { policy_identifier: oids::ANY_POLICY, policy_qualifiers: None };
        Ok(vec![
            ext(oids::ID_CE_BASIC_CONSTRAINTS, true, &BasicConstraints { ca: true, path_len_constraint: None })?,
            key_usage(KeyUsages::KeyCertSign | KeyUsages::CRLSign)?,
            ext(oids::ID_CE_CERTIFICATE_POLICIES, false, &CertificatePolicies(vec![any]))?,
            crl_dp(&self.arl_url)?,
            aki(issuer)?,
            ski(spk)?,
        ])
    }
}

/// 署名用電子証明書: subject `C=JP, L=<prefecture>, L=<municipality>, CN=<issuance id>`; keyUsage
/// critical digitalSignature+nonRepudiation; certificatePolicies critical with the CPS
/// qualifier; the six identity otherNames in the SAN; CRL DP of its shard; AIA OCSP; AKI; SKI.
#[derive(Debug, Clone)]
pub struct SignatureCert {
    /// The issuing CA's name.
    pub issuer: Name,
    /// The subject.
    pub subject: Name,
    /// Identity items for the SAN.
    pub items: SanItems,
    /// The hierarchy's policy.
    pub policy: ObjectIdentifier,
    /// CRL shard and OCSP URLs.
    pub urls: StatusUrls,
}

impl SignatureCert {
    /// The subject name of a signature certificate.
    pub fn subject_name(prefecture: &str, municipality: &str, issuance_id: &str) -> Result<Name> {
        Name::from_str(&format!("CN={issuance_id},L={municipality},L={prefecture},C=JP"))
            .map_err(|e| Error::invalid("subject", e))
    }
}

impl BuilderProfile for SignatureCert {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }
    fn get_subject(&self) -> Name {
        self.subject.clone()
    }
    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        issuer: SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> BResult<Vec<Extension>> {
        let i = &self.items;
        let san = SubjectAltName(vec![
            other_name(san_oid::NAME, &i.name)?,
            other_name(san_oid::NAME_FLAGS, &i.name_flags)?,
            other_name(san_oid::SEX, &i.sex.to_string())?,
            other_name(san_oid::DATE_OF_BIRTH, &era_date(i.date_of_birth))?,
            other_name(san_oid::ADDRESS, &i.address)?,
            other_name(san_oid::ADDRESS_FLAGS, &i.address_flags)?,
        ]);
        Ok(vec![
            key_usage(KeyUsages::DigitalSignature | KeyUsages::NonRepudiation)?,
            policies(self.policy, true)?,
            ext(oids::ID_CE_SUBJECT_ALT_NAME, false, &san)?,
            crl_dp(&self.urls.crl)?,
            aia(&self.urls)?,
            aki(issuer)?,
            ski(spk)?,
        ])
    }
}

/// 利用者証明用電子証明書: subject `C=JP, CN=<opaque id>`, no identity items, keyUsage
/// critical digitalSignature, its own policy (critical, as the signature profile), CRL DP,
/// AIA, AKI, SKI.
#[derive(Debug, Clone)]
pub struct AuthenticationCert {
    /// The issuing CA's name.
    pub issuer: Name,
    /// The subject.
    pub subject: Name,
    /// The hierarchy's policy.
    pub policy: ObjectIdentifier,
    /// CRL shard and OCSP URLs.
    pub urls: StatusUrls,
}

impl AuthenticationCert {
    /// The subject name of an authentication certificate.
    pub fn subject_name(issuance_id: &str) -> Result<Name> {
        Name::from_str(&format!("CN={issuance_id},C=JP")).map_err(|e| Error::invalid("subject", e))
    }
}

impl BuilderProfile for AuthenticationCert {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }
    fn get_subject(&self) -> Name {
        self.subject.clone()
    }
    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        issuer: SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> BResult<Vec<Extension>> {
        Ok(vec![
            key_usage(KeyUsages::DigitalSignature)?,
            policies(self.policy, true)?,
            crl_dp(&self.urls.crl)?,
            aia(&self.urls)?,
            aki(issuer)?,
            ski(spk)?,
        ])
    }
}

/// A delegated OCSP responder certificate of one CA generation (RFC 6960 §4.2.2.2):
/// keyUsage critical digitalSignature, EKU id-kp-OCSPSigning, id-pkix-ocsp-nocheck, AKI, SKI.
#[derive(Debug, Clone)]
pub struct OcspResponder {
    /// The CA's name.
    pub issuer: Name,
    /// The responder's name.
    pub subject: Name,
}

impl BuilderProfile for OcspResponder {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }
    fn get_subject(&self) -> Name {
        self.subject.clone()
    }
    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        issuer: SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> BResult<Vec<Extension>> {
        Ok(vec![
            key_usage(KeyUsages::DigitalSignature)?,
            ext(oids::ID_CE_EXT_KEY_USAGE, false, &ExtendedKeyUsage(vec![KP_OCSP_SIGNING]))?,
            ext(OCSP_NOCHECK, false, &der::asn1::Null)?,
            aki(issuer)?,
            ski(spk)?,
        ])
    }
}

/// An end-entity certificate of the network CA (docs/network.md): basicConstraints critical
/// CA:FALSE, keyUsage critical digitalSignature, the given extKeyUsage and SAN, AKI, SKI.
/// - A party's mutual-TLS credential: EKU serverAuth + clientAuth (RFC 5280 §4.2.1.12), SAN =
///   the party URI and the hosts (dNSName / iPAddress, RFC 5280 §4.2.1.6; non-critical as the
///   subject is not empty); digitalSignature because TLS 1.3 signs (RFC 5280 §4.2.1.3).
/// - A municipality's change-notice signing key: EKU only [`crate::hierarchy::NOTICE_SIGNING`]
///   (so the key is good for nothing else, TLS included), SAN = the municipality's party URI
///   only. Replicas learn a municipality's notice keys from these certificates.
#[derive(Debug, Clone)]
pub struct NetworkEndEntity {
    /// The network CA's name.
    pub issuer: Name,
    /// `C=JP, O=JPKI Network, CN=<party short form>`.
    pub subject: Name,
    /// extKeyUsage purposes.
    pub eku: Vec<ObjectIdentifier>,
    /// The party URI first, then any hosts.
    pub san: Vec<GeneralName>,
}

impl NetworkEndEntity {
    /// A mutual-TLS credential naming `san` (party URI, then hosts).
    pub fn tls(issuer: Name, subject: Name, san: Vec<GeneralName>) -> Self {
        Self { issuer, subject, eku: vec![oids::ID_KP_SERVER_AUTH, oids::ID_KP_CLIENT_AUTH], san }
    }

    /// A signing key of the party `party_uri` whose only extKeyUsage is `eku`
    /// ([`crate::hierarchy::NOTICE_SIGNING`] for a municipality's notice key,
    /// [`crate::hierarchy::CLERK_SIGNING`] for a clerk's key).
    pub fn signing(issuer: Name, subject: Name, party_uri: &str, eku: ObjectIdentifier) -> BResult<Self> {
        let san = vec![GeneralName::UniformResourceIdentifier(Ia5String::new(party_uri)?)];
        Ok(Self { issuer, subject, eku: vec![eku], san })
    }
}

impl BuilderProfile for NetworkEndEntity {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }
    fn get_subject(&self) -> Name {
        self.subject.clone()
    }
    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        issuer: SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> BResult<Vec<Extension>> {
        Ok(vec![
            ext(oids::ID_CE_BASIC_CONSTRAINTS, true, &BasicConstraints { ca: false, path_len_constraint: None })?,
            key_usage(KeyUsages::DigitalSignature)?,
            ext(oids::ID_CE_EXT_KEY_USAGE, false, &ExtendedKeyUsage(self.eku.clone()))?,
            ext(oids::ID_CE_SUBJECT_ALT_NAME, false, &SubjectAltName(self.san.clone()))?,
            aki(issuer)?,
            ski(spk)?,
        ])
    }
}

/// A municipality's document-signing certificate from the organisation CA for local governments
/// (docs/resdoc.md): basicConstraints critical CA:FALSE, keyUsage critical
/// digitalSignature+nonRepudiation (a PAdES signature is a commitment; pyHanko requires
/// nonRepudiation by default), extKeyUsage id-kp-documentSigning only (RFC 9336), the
/// document-signing policy with the CPS qualifier, the CA's CRL as distribution point (so a
/// validator can check revocation), AKI, SKI. No SAN: the subject names the municipality (its LG
/// code in OU), and pkilint refuses a `urn:` URI without an authority in a SAN.
#[derive(Debug, Clone)]
pub struct DocumentSigningCert {
    /// The organisation CA's name.
    pub issuer: Name,
    /// `C=JP, O=Local Governments, L=<prefecture>, OU=<LG code>, CN=<municipality>`.
    pub subject: Name,
    /// Where the organisation CA's CRL is published.
    pub crl_url: String,
}

impl BuilderProfile for DocumentSigningCert {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }
    fn get_subject(&self) -> Name {
        self.subject.clone()
    }
    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        issuer: SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> BResult<Vec<Extension>> {
        Ok(vec![
            ext(oids::ID_CE_BASIC_CONSTRAINTS, true, &BasicConstraints { ca: false, path_len_constraint: None })?,
            key_usage(KeyUsages::DigitalSignature | KeyUsages::NonRepudiation)?,
            ext(oids::ID_CE_EXT_KEY_USAGE, false, &ExtendedKeyUsage(vec![crate::hierarchy::KP_DOCUMENT_SIGNING]))?,
            policies(crate::hierarchy::POLICY_DOCUMENT_SIGNING, false)?,
            crl_dp(&self.crl_url)?,
            aki(issuer)?,
            ski(spk)?,
        ])
    }
}

/// A certificate whose exact TBS bytes are known and not yet signed.
pub struct Prepared<P> {
    builder: CertificateBuilder<P>,
    /// The DER of the TBSCertificate that will be signed.
    pub tbs: Vec<u8>,
}

impl<P> std::fmt::Debug for Prepared<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared").field("tbs_len", &self.tbs.len()).finish()
    }
}

/// An X.509 Time (UTCTime before 2050, GeneralizedTime after: RFC 5280 §4.1.2.5).
pub fn time_of(t: OffsetDateTime) -> Result<Time> {
    let st = std::time::SystemTime::UNIX_EPOCH
        + std::time::Duration::from_secs(
            u64::try_from(t.unix_timestamp()).map_err(|_| Error::invalid("time", "before 1970"))?,
        );
    Time::try_from(st).map_err(|e| Error::invalid("time", e))
}

/// Builds the exact TBSCertificate for `profile` (Boulder order: these bytes are stored before
/// anything is signed).
pub fn prepare<P: BuilderProfile>(
    profile: P,
    serial: &[u8],
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    subject_spki_der: &[u8],
    issuer_key: &dyn KeyBackend,
) -> Result<Prepared<P>> {
    let spki = SubjectPublicKeyInfoOwned::from_der(subject_spki_der)?;
    let validity = Validity::new(time_of(not_before)?, time_of(not_after)?);
    let serial = SerialNumber::new(serial).map_err(|e| Error::invalid("serial", e))?;
    let mut builder = CertificateBuilder::new(profile, serial, validity, spki)?;
    let tbs = builder.finalize(&BuilderKey(issuer_key))?;
    Ok(Prepared { builder, tbs })
}

impl<P: BuilderProfile> Prepared<P> {
    /// Signs the prepared TBS and checks that the signed certificate carries exactly the
    /// prepared bytes; returns the certificate DER.
    pub fn sign(self, issuer_key: &dyn KeyBackend) -> Result<Vec<u8>> {
        let bits = signature_bits(issuer_key, &self.tbs)?;
        let tbs = self.tbs;
        let cert: Certificate = self.builder.assemble(bits, &BuilderKey(issuer_key))?;
        let der = cert.to_der()?;
        if cert.tbs_certificate().to_der()? != tbs {
            return Err(Error::corrupt("certificate", "the signed TBS differs from the stored TBS"));
        }
        Ok(der)
    }
}
