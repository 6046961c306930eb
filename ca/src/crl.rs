//! CRLs (RFC 5280 §5), encoded in one pass without holding the list: revoked entries are
//! encoded one at a time into a byte sink (a file in the shell), then the TBSCertList is framed
//! around them, hashed as it streams (an ML-DSA key's μ likewise, [`crate::key::Hasher`]),
//! signed, and framed again. Memory does not grow with the list. We frame the TBS ourselves because x509-cert's `CrlBuilder` can only add CRLNumber and
//! AKI — and gets the AKI wrong for subordinate CAs (crates.md §1.4); every value inside is
//! still encoded by `der`/`x509-cert` types.
//!
//! ```text
//! CertificateList ::= SEQUENCE { tbsCertList TBSCertList, signatureAlgorithm, signatureValue BIT STRING }
//! TBSCertList ::= SEQUENCE { version v2, signature, issuer, thisUpdate, nextUpdate,
//!     revokedCertificates SEQUENCE OF SEQUENCE { userCertificate, revocationDate,
//!                                                crlEntryExtensions OPTIONAL } OPTIONAL,
//!     crlExtensions [0] EXPLICIT Extensions OPTIONAL }
//! ```

#![forbid(clippy::disallowed_methods)]

use std::io::{Read, Write};
use std::time::Duration;

use const_oid::db::rfc5280 as oids;
use der::asn1::{AnyRef, IntRef, OctetString, Uint};
use der::{DateTime, Encode, Header, Length, Tag, TagNumber};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::crl::dp::IssuingDistributionPoint;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, CrlReason};
use x509_cert::name::Name;
use x509_cert::time::Time;

use crate::error::{Error, Result};
use crate::key::KeyBackend;
use crate::profile::uri_dp_name;

/// CRLReason (RFC 5280 §5.3.1). The numbers are the RFC's and are stored as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// unspecified (0) — JPKI: destroyed before delivery. Encoded without a reasonCode entry
    /// extension, as RFC 5280 §5.3.1 asks.
    Unspecified = 0,
    /// keyCompromise (1).
    KeyCompromise = 1,
    /// cACompromise (2).
    CaCompromise = 2,
    /// affiliationChanged (3) — JPKI: one of the four items changed.
    AffiliationChanged = 3,
    /// superseded (4) — renewal.
    Superseded = 4,
    /// cessationOfOperation (5) — no longer needed (removal from the register, user request).
    CessationOfOperation = 5,
    /// certificateHold (6) — JPKI: card lost; never released.
    CertificateHold = 6,
}

impl Reason {
    /// Every reason we issue.
    pub const ALL: [Self; 7] = [
        Self::Unspecified,
        Self::KeyCompromise,
        Self::CaCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
        Self::CertificateHold,
    ];
    /// CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "key-compromise",
            Self::CaCompromise => "ca-compromise",
            Self::AffiliationChanged => "affiliation-changed",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessation-of-operation",
            Self::CertificateHold => "certificate-hold",
        }
    }
    /// Parses a CLI name.
    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|r| r.name() == s).ok_or_else(|| {
            let names: Vec<_> = Self::ALL.iter().map(|r| r.name()).collect();
            Error::invalid("reason", format!("{s}: one of {}", names.join(", ")))
        })
    }
    /// From the stored number.
    pub fn from_code(n: i64) -> Result<Self> {
        Self::ALL.into_iter().find(|r| *r as i64 == n).ok_or_else(|| Error::corrupt("revocation reason", n))
    }
    /// The x509-cert value (an ENUMERATED).
    pub fn x509(self) -> CrlReason {
        match self {
            Self::Unspecified => CrlReason::Unspecified,
            Self::KeyCompromise => CrlReason::KeyCompromise,
            Self::CaCompromise => CrlReason::CaCompromise,
            Self::AffiliationChanged => CrlReason::AffiliationChanged,
            Self::Superseded => CrlReason::Superseded,
            Self::CessationOfOperation => CrlReason::CessationOfOperation,
            Self::CertificateHold => CrlReason::CertificateHold,
        }
    }
}

/// The pre-encoded `crlEntryExtensions` for each reason (`Extensions` with one reasonCode).
#[derive(Debug, Clone)]
pub struct EntryExtensions {
    by_reason: Vec<Option<Vec<u8>>>,
}

impl EntryExtensions {
    /// Encodes the reasonCode extension of every reason once.
    pub fn new() -> Result<Self> {
        let mut by_reason = vec![None; 11];
        for r in Reason::ALL {
            if r == Reason::Unspecified {
                continue;
            }
            let value = r.x509().to_der()?;
            let ext =
                Extension { extn_id: oids::ID_CE_CRL_REASONS, critical: false, extn_value: OctetString::new(value)? };
            by_reason[r as usize] = Some(vec![ext].to_der()?);
        }
        Ok(Self { by_reason })
    }
    fn get(&self, r: Reason) -> Option<&[u8]> {
        self.by_reason.get(r as usize).and_then(|v| v.as_deref())
    }
}

/// One revoked certificate, borrowed from wherever it streams from.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// The serial's INTEGER content bytes (positive, minimal).
    pub serial: &'a [u8],
    /// Revocation time, unix seconds.
    pub revoked_at: i64,
    /// Why.
    pub reason: Reason,
}

#[derive(der::Sequence)]
struct EntryDer<'a> {
    serial: IntRef<'a>,
    date: Time,
    extensions: Option<AnyRef<'a>>,
}

/// An X.509 Time for unix seconds (UTCTime until 2049).
pub fn time_at(unix: i64) -> Result<Time> {
    let secs = u64::try_from(unix).map_err(|_| Error::invalid("time", "before 1970"))?;
    Ok(DateTime::from_unix_duration(Duration::from_secs(secs))?.into())
}

/// Appends one `revokedCertificates` element to `out`; returns its length.
pub fn encode_entry(out: &mut Vec<u8>, e: &Entry<'_>, exts: &EntryExtensions) -> Result<usize> {
    let extensions = exts.get(e.reason).map(AnyRef::try_from).transpose()?;
    let v = EntryDer { serial: IntRef::new(e.serial)?, date: time_at(e.revoked_at)?, extensions };
    let before = out.len();
    v.encode_to_vec(out)?;
    Ok(out.len() - before)
}

/// What a CRL is about, besides its entries.
#[derive(Debug, Clone)]
pub struct CrlParams {
    /// The issuing CA generation's name.
    pub issuer: Name,
    /// Its key identifier (the SKI of its certificate): the CRL's AKI (RFC 5280 §5.2.1).
    pub issuer_key_id: Vec<u8>,
    /// CRL number, strictly increasing per issuer generation (§5.2.3).
    pub number: u64,
    /// thisUpdate, unix seconds.
    pub this_update: i64,
    /// nextUpdate, unix seconds.
    pub next_update: i64,
    /// The scope: a shard of end-entity certificates, or the ARL of a root.
    pub scope: Scope,
}

/// What the CRL covers; written as a critical issuingDistributionPoint (§5.2.5), except for
/// a full CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every certificate of the issuer (the network CA's one CRL): no issuingDistributionPoint,
    /// so it is in scope for certificates without a CRL distribution point (§6.3.3 (b)).
    Full,
    /// End-entity certificates of one shard, published at this URL.
    Shard {
        /// The shard's URL (also in each certificate's CRL DP).
        url: String,
    },
    /// CA certificates (an ARL), published at this URL.
    Authorities {
        /// The ARL's URL.
        url: String,
    },
}

impl CrlParams {
    /// The crlExtensions: AKI, CRLNumber, issuingDistributionPoint (critical; none for
    /// [`Scope::Full`]).
    pub fn extensions(&self) -> Result<Vec<Extension>> {
        let aki = AuthorityKeyIdentifier {
            key_identifier: Some(OctetString::new(self.issuer_key_id.clone())?),
            ..Default::default()
        };
        let number = Uint::new(&self.number.to_be_bytes())?;
        let aki = Extension {
            extn_id: oids::ID_CE_AUTHORITY_KEY_IDENTIFIER,
            critical: false,
            extn_value: OctetString::new(aki.to_der()?)?,
        };
        let number = Extension {
            extn_id: oids::ID_CE_CRL_NUMBER,
            critical: false,
            extn_value: OctetString::new(number.to_der()?)?,
        };
        let (url, users, cas) = match &self.scope {
            Scope::Full => return Ok(vec![aki, number]),
            Scope::Shard { url } => (url, true, false),
            Scope::Authorities { url } => (url, false, true),
        };
        let idp = IssuingDistributionPoint {
            distribution_point: Some(uri_dp_name(url)?),
            only_contains_user_certs: users,
            only_contains_ca_certs: cas,
            only_some_reasons: None,
            indirect_crl: false,
            only_contains_attribute_certs: false,
        };
        // x509-cert 0.3 gives IssuingDistributionPoint the OID of subjectInfoAccess
        // (`AssociatedOid`), so the extension is assembled with the right OID by hand.
        Ok(vec![
            aki,
            number,
            Extension {
                extn_id: oids::ID_CE_ISSUING_DISTRIBUTION_POINT,
                critical: true,
                extn_value: OctetString::new(idp.to_der()?)?,
            },
        ])
    }
}

fn header(tag: Tag, len: usize) -> Result<Vec<u8>> {
    let len = Length::try_from(len)?;
    Ok(Header::new(tag, len).to_der()?)
}

/// The TBSCertList around `entries_len` bytes of encoded entries: (bytes before, bytes after).
pub fn tbs_frame(
    p: &CrlParams,
    alg: &spki::AlgorithmIdentifierOwned,
    entries_len: usize,
) -> Result<(Vec<u8>, Vec<u8>)> {
    let mut fields = Vec::new();
    1u8.encode_to_vec(&mut fields)?; // version v2 (1)
    alg.encode_to_vec(&mut fields)?;
    p.issuer.encode_to_vec(&mut fields)?;
    time_at(p.this_update)?.encode_to_vec(&mut fields)?;
    time_at(p.next_update)?.encode_to_vec(&mut fields)?;
    if entries_len > 0 {
        fields.extend(header(Tag::Sequence, entries_len)?);
    }
    let exts = p.extensions()?.to_der()?;
    let mut tail = header(Tag::ContextSpecific { constructed: true, number: TagNumber(0) }, exts.len())?;
    tail.extend(exts);
    let total = fields.len() + entries_len + tail.len();
    let mut head = header(Tag::Sequence, total)?;
    head.extend(fields);
    Ok((head, tail))
}

/// The CertificateList around a TBS of `tbs_len` bytes: (outer header, trailer with the
/// algorithm and the signature).
pub fn outer_frame(
    tbs_len: usize,
    alg: &spki::AlgorithmIdentifierOwned,
    signature: &[u8],
) -> Result<(Vec<u8>, Vec<u8>)> {
    let mut trailer = alg.to_der()?;
    der::asn1::BitStringRef::from_bytes(signature)?.encode_to_vec(&mut trailer)?;
    Ok((header(Tag::Sequence, tbs_len + trailer.len())?, trailer))
}

/// Builds and signs a CRL from encoded entries that can be read twice (once to hash, once to
/// write): `entries()` opens a fresh reader over the same bytes. Writes the CRL DER to `out`.
pub fn assemble<R: Read>(
    p: &CrlParams,
    key: &dyn KeyBackend,
    entries_len: usize,
    mut entries: impl FnMut() -> Result<R>,
    out: &mut impl Write,
) -> Result<usize> {
    let alg = key.algorithm().signature_algorithm();
    let (head, tail) = tbs_frame(p, &alg, entries_len)?;
    let mut h = crate::key::Hasher::for_key(key)?;
    h.update(&head);
    let mut buf = vec![0u8; 1 << 16];
    let mut seen = 0usize;
    let mut r = entries()?;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        seen += n;
    }
    if seen != entries_len {
        return Err(Error::corrupt("CRL entries", format!("read {seen} bytes, expected {entries_len}")));
    }
    h.update(&tail);
    let signature = key.sign_digest(&h.finish())?;
    let tbs_len = head.len() + entries_len + tail.len();
    let (outer, trailer) = outer_frame(tbs_len, &alg, &signature)?;
    out.write_all(&outer)?;
    out.write_all(&head)?;
    let mut r = entries()?;
    let copied = std::io::copy(&mut r, out)?;
    if copied as usize != entries_len {
        return Err(Error::corrupt("CRL entries", "changed between reads"));
    }
    out.write_all(&tail)?;
    out.write_all(&trailer)?;
    Ok(outer.len() + tbs_len + trailer.len())
}

/// Builds a CRL in memory (small CRLs, tests).
pub fn build(p: &CrlParams, key: &dyn KeyBackend, entries: &[Entry<'_>]) -> Result<Vec<u8>> {
    let exts = EntryExtensions::new()?;
    let mut enc = Vec::new();
    for e in entries {
        encode_entry(&mut enc, e, &exts)?;
    }
    let mut out = Vec::new();
    assemble(p, key, enc.len(), || Ok(enc.as_slice()), &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use der::Decode;
    use x509_cert::crl::CertificateList;

    use super::*;
    use crate::key::{KeyAlgorithm, SoftKey};

    fn params(n: u64) -> CrlParams {
        CrlParams {
            issuer: "CN=Test CA,C=JP".parse().unwrap(),
            issuer_key_id: vec![7; 20],
            number: n,
            this_update: 1_790_000_000,
            next_update: 1_790_086_400,
            scope: Scope::Shard { url: "http://127.0.0.1/crl/sign-13/g1/0.crl".into() },
        }
    }

    #[test]
    fn streamed_crl_decodes_and_verifies() {
        for alg in [KeyAlgorithm::Rsa2048, KeyAlgorithm::EcP384, KeyAlgorithm::MlDsa65] {
            let key = SoftKey::ephemeral(alg).unwrap();
            let serials: Vec<[u8; 16]> =
                (0..50u8).map(|i| [0x40 | (i & 0x3f), i, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, i]).collect();
            let entries: Vec<Entry<'_>> = serials
                .iter()
                .enumerate()
                .map(|(i, s)| Entry { serial: s, revoked_at: 1_789_000_000 + i as i64, reason: Reason::ALL[i % 7] })
                .collect();
            let der = build(&params(5), &key, &entries).unwrap();
            let crl = CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&der).unwrap();
            let revoked = crl.tbs_cert_list.revoked_certificates.as_ref().unwrap();
            assert_eq!(revoked.len(), 50);
            assert_eq!(revoked[3].serial_number.as_bytes(), serials[3]);
            assert!(revoked[0].crl_entry_extensions.is_none(), "unspecified carries no reasonCode");
            assert!(revoked[1].crl_entry_extensions.is_some());
            let tbs = crl.tbs_cert_list.to_der().unwrap();
            assert!(crate::key::verify(key.public_key_der(), &tbs, crl.signature.raw_bytes()).unwrap());
            let exts = crl.tbs_cert_list.crl_extensions.as_ref().unwrap();
            let idp = exts.iter().find(|e| e.extn_id == oids::ID_CE_ISSUING_DISTRIBUTION_POINT).unwrap();
            assert!(idp.critical, "the IDP of a shard is critical");
        }
    }

    #[test]
    fn empty_crl_omits_the_list() {
        let key = SoftKey::ephemeral(KeyAlgorithm::EcP384).unwrap();
        let der = build(&params(1), &key, &[]).unwrap();
        let crl = CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&der).unwrap();
        assert!(crl.tbs_cert_list.revoked_certificates.is_none());
    }
}
