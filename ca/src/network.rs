//! The network CA: the national operator's CA that issues every party of the identity network
//! (municipalities, prefectures, the national node, CAs, validators, windows, agencies,
//! operators) its mutual-TLS credential and every municipality its change-notice signing key.
//! It is separate from the residents' hierarchies and lives in one directory (docs/network.md):
//!
//! ```text
//! ca.pem      the self-signed root C=JP, O=JPKI Network, CN=JPKI Network CA (P-384, 10 years)
//! ca.key      its key, PKCS#8 encrypted with scrypt (net::keyfile), 0600
//! index.json  every issued certificate (serial, party, kind, notAfter, SKI, revocation) and
//!             the last CRL number, rewritten durably (temp file, fsync, rename)
//! crl.pem     the current full CRL
//! certs/      a copy of every issued certificate, <serial>.pem
//! index.lock  an advisory lock: one mutating operation at a time
//! ```
//!
//! The organisation CA for local governments (LGPKI-like, the third hierarchy; docs/resdoc.md)
//! is the same kind of file CA ([`FileCaKind::Organisation`], its own root
//! `C=JP, O=JPKI Local Governments, CN=Organisation CA for Local Governments`): it issues each
//! municipality the certificate of the key that signs its residence certificates
//! ([`NetworkCa::issue_document_signer`]), and nothing else. Each kind issues only its own
//! credentials. The CRL is also written as `crl.der`, as relying parties fetch it over HTTP.
//!
//! Issuance follows the crash-safe order of the resident CAs as far as a file store allows:
//! the serial and its index entry are written durably before anything is signed, so every
//! signed certificate is listed and revocable; the party's key and chain are written last.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use der::asn1::{Ia5String, OctetString};
use der::{Decode, Encode};
use identity::ids::LgCode;
use identity::party::{Party, URI_PREFIX};
use net::secret::Secret;
use serde::{Deserialize, Serialize};
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::name::Name;

use crate::authority::new_serial;
use crate::crl::{self, CrlParams, Entry, Reason, Scope};
use crate::error::{Error, Result};
use crate::key::{KeyAlgorithm, KeyBackend, SoftKey, check_passphrase, key_identifier};
use crate::profile::{DocumentSigningCert, NetworkEndEntity, RootCa, prepare};

/// The network CA's distinguished name (RFC 4514 order: most specific first).
pub const CA_NAME: &str = "CN=JPKI Network CA,O=JPKI Network,C=JP";
/// The organisation CA's distinguished name (the third hierarchy, docs/resdoc.md).
pub const ORGANISATION_CA_NAME: &str = "CN=Organisation CA for Local Governments,O=JPKI Local Governments,C=JP";
/// The organisation of a municipality's document-signing certificate subject.
pub const ORGANISATION_O: &str = "JPKI Local Governments";

/// Which file CA a directory holds; told apart by the root's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileCaKind {
    /// The network CA (TLS credentials, notice keys, clerk keys).
    Network,
    /// The organisation CA for local governments (municipalities' document-signing keys).
    Organisation,
}

impl FileCaKind {
    /// The root's distinguished name.
    pub fn ca_name(self) -> &'static str {
        match self {
            Self::Network => CA_NAME,
            Self::Organisation => ORGANISATION_CA_NAME,
        }
    }
    fn of_name(name: &Name) -> Result<Self> {
        [Self::Network, Self::Organisation]
            .into_iter()
            .find(|k| Name::from_str(k.ca_name()).is_ok_and(|n| &n == name))
            .ok_or_else(|| Error::corrupt("ca.pem", format!("{name} is neither the network nor the organisation CA")))
    }
}

/// Lifetime of the network CA's root: 10 years (3,652 days).
pub const CA_DAYS: i64 = 3652;
/// Longest credential lifetime accepted, in days.
pub const MAX_DAYS: i64 = 825;
/// Backdating of notBefore against clock skew between parties (5 minutes).
pub const BACKDATE_SECS: i64 = 300;
/// Longest CRL validity (thisUpdate to nextUpdate) accepted, in hours (31 days).
pub const MAX_CRL_HOURS: i64 = 744;
/// Most hosts in one credential.
pub const MAX_HOSTS: usize = 32;

const INDEX_VERSION: u32 = 1;

/// What a network certificate is for. The names are stored in `index.json` and never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CredentialKind {
    /// A mutual-TLS credential (serverAuth + clientAuth).
    #[serde(rename = "tls")]
    Tls,
    /// A municipality's change-notice signing key (EKU [`crate::hierarchy::NOTICE_SIGNING`]).
    #[serde(rename = "notice-key")]
    NoticeKey,
    /// A municipal clerk's request-signing key (EKU [`crate::hierarchy::CLERK_SIGNING`]).
    #[serde(rename = "clerk-key")]
    ClerkKey,
    /// A municipality's document-signing key (organisation CA; EKU
    /// [`crate::hierarchy::KP_DOCUMENT_SIGNING`]).
    #[serde(rename = "document-signing")]
    DocumentSigning,
}

impl CredentialKind {
    /// The stored and printed name (`tls`, `notice-key`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Tls => "tls",
            Self::NoticeKey => "notice-key",
            Self::ClerkKey => "clerk-key",
            Self::DocumentSigning => "document-signing",
        }
    }
}

/// One issued certificate as `index.json` keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexEntry {
    /// The serial number, lower-case hex of the INTEGER's content bytes.
    pub serial: String,
    /// The party the certificate names.
    pub party: Party,
    /// What it is for.
    pub kind: CredentialKind,
    /// notAfter, unix seconds.
    pub not_after: i64,
    /// The subject key identifier, lower-case hex.
    pub ski: String,
    /// When it was revoked (unix seconds), or `None`.
    pub revoked_at: Option<i64>,
    /// Why ([`Reason::name`]), or `None`.
    pub reason: Option<String>,
}

impl IndexEntry {
    /// The revocation reason, if revoked.
    pub fn revocation(&self) -> Result<Option<(i64, Reason)>> {
        match (self.revoked_at, &self.reason) {
            (None, None) => Ok(None),
            (Some(at), Some(r)) => Ok(Some((at, Reason::parse(r).map_err(|e| Error::corrupt("index.json", e))?))),
            _ => Err(Error::corrupt("index.json", format!("serial {}: revoked_at and reason disagree", self.serial))),
        }
    }
}

/// The whole of `index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Index {
    /// Layout version (1).
    version: u32,
    /// The number of the last CRL written (0: none yet).
    crl_number: u64,
    /// Every issued certificate, in issuance order.
    certificates: Vec<IndexEntry>,
}

impl Index {
    fn parse(bytes: &[u8]) -> Result<Self> {
        let index: Index = serde_json::from_slice(bytes).map_err(|e| Error::corrupt("index.json", e))?;
        if index.version != INDEX_VERSION {
            return Err(Error::corrupt("index.json", format!("version {} (expected {INDEX_VERSION})", index.version)));
        }
        let mut seen = std::collections::BTreeSet::new();
        for e in &index.certificates {
            let serial =
                hex::decode(&e.serial).map_err(|_| Error::corrupt("index.json", format!("serial {:?}", e.serial)))?;
            if serial.is_empty() || !seen.insert(serial) {
                return Err(Error::corrupt("index.json", format!("serial {:?} empty or repeated", e.serial)));
            }
            hex::decode(&e.ski).map_err(|_| Error::corrupt("index.json", format!("SKI {:?}", e.ski)))?;
            e.revocation()?;
        }
        Ok(index)
    }
}

/// What an issuance produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The serial number, lower-case hex.
    pub serial: String,
    /// The subject key identifier, lower-case hex.
    pub ski: String,
    /// notAfter, unix seconds.
    pub not_after: i64,
    /// `PREFIX.pem`: the certificate followed by the network CA's certificate.
    pub chain: PathBuf,
    /// `PREFIX.key`: the party's key, encrypted (scrypt), mode 0600; `None` when the party
    /// brought its own key ([`SubjectKey::Given`]).
    pub key: Option<PathBuf>,
}

/// The key a certificate certifies.
#[derive(Debug, Clone, Copy)]
pub enum SubjectKey<'a> {
    /// A fresh P-384 key, written to `PREFIX.key` under this passphrase (at least 12 bytes).
    Generate(&'a Secret),
    /// A key the party holds (a PKCS#11 token, or a software key of its own): its
    /// SubjectPublicKeyInfo, DER. Only the chain is written.
    Given(&'a [u8]),
}

/// The network CA, opened on its directory with its key loaded.
#[derive(Debug)]
pub struct NetworkCa {
    kind: FileCaKind,
    dir: PathBuf,
    key: SoftKey,
    cert_der: Vec<u8>,
    name: Name,
    key_id: Vec<u8>,
    not_after: i64,
}

/// `PREFIX` + `suffix` (`creds/m.131016` + `.pem`; never replaces an "extension" of the prefix).
fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn pem(label: &str, der: &[u8]) -> Result<String> {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).map_err(|e| Error::invalid("PEM", e))
}

/// The short form of a party (`municipality:131016`, `national`): its URI without `urn:jpki:`.
pub fn short_form(party: &Party) -> String {
    let uri = party.uri();
    uri.strip_prefix(URI_PREFIX).map(str::to_owned).unwrap_or(uri)
}

/// Parses a party from its URI or short form, as [`NetworkCa`] errors report it.
pub fn parse_party(s: &str) -> Result<Party> {
    Party::from_str(s).map_err(|e| match e {
        identity::Error::InvalidInput { reason, .. } => Error::invalid("party", reason),
        other => Error::invalid("party", other),
    })
}

/// A host as a SAN entry: an IP address (v4 or v6) as iPAddress, otherwise a DNS name as
/// dNSName (RFC 5280 §4.2.1.6; LDH labels of 1–63 bytes, at most 253 bytes, lower-cased; no
/// wildcards — every party names its own hosts).
pub fn host_name(host: &str) -> Result<GeneralName> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        let bytes = match ip {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        };
        return Ok(GeneralName::IpAddress(OctetString::new(bytes)?));
    }
    let h = host.to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let all_digits = h.split('.').next_back().is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
    if h.is_empty() || h.len() > 253 || !h.split('.').all(label_ok) || all_digits {
        return Err(Error::invalid("host", format!("{host:?} is neither an IP address nor a DNS name")));
    }
    Ok(GeneralName::DnsName(Ia5String::new(&h)?))
}

fn subject_of(party: &Party) -> Result<Name> {
    // Party names are 1–32 of A–Z a–z 0–9 - _ . (or digits): nothing to escape in RFC 4514.
    Name::from_str(&format!("CN={},O=JPKI Network,C=JP", short_form(party))).map_err(|e| Error::invalid("subject", e))
}

fn unix_of(t: &x509_cert::time::Time) -> i64 {
    t.to_unix_duration().as_secs() as i64
}

/// An exclusive advisory lock on `dir/index.lock`, released when dropped.
#[derive(Debug)]
struct Lock(std::fs::File);

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

impl NetworkCa {
    /// Creates the network CA in `dir` (created 0700 if missing): a P-384 root valid for
    /// [`CA_DAYS`] from `now` (backdated [`BACKDATE_SECS`]), `ca.key` under `ca_passphrase`
    /// (at least 12 bytes), `ca.pem`, an empty `index.json` and a first, empty CRL `crl.pem`.
    /// Refuses a directory that already holds a CA (any of the files present).
    pub fn init(dir: &Path, ca_passphrase: &Secret, now: i64) -> Result<Self> {
        Self::init_kind(FileCaKind::Network, dir, ca_passphrase, now)
    }

    /// As [`NetworkCa::init`], for either kind of file CA (the organisation CA:
    /// [`FileCaKind::Organisation`]).
    pub fn init_kind(kind: FileCaKind, dir: &Path, ca_passphrase: &Secret, now: i64) -> Result<Self> {
        let pass = check_passphrase(ca_passphrase)?;
        for f in ["ca.pem", "ca.key", "index.json", "crl.pem"] {
            if dir.join(f).exists() {
                return Err(Error::Conflict(format!("{} exists: {} already holds a network CA", f, dir.display())));
            }
        }
        let key = SoftKey::create(&dir.join("ca.key"), KeyAlgorithm::EcP384, &pass)?;
        let name = Name::from_str(kind.ca_name()).map_err(|e| Error::invalid("CA name", e))?;
        let not_after = now + CA_DAYS * 86_400;
        let not_before =
            time::OffsetDateTime::from_unix_timestamp(now - BACKDATE_SECS).map_err(|e| Error::invalid("time", e))?;
        let end = time::OffsetDateTime::from_unix_timestamp(not_after).map_err(|e| Error::invalid("time", e))?;
        let prepared = prepare(
            RootCa { name: name.clone(), path_len: Some(0) },
            &new_serial(),
            not_before,
            end,
            key.public_key_der(),
            &key,
        )?;
        let cert_der = prepared.sign(&key)?;
        net::keyfile::write_private(&dir.join("ca.pem"), pem("CERTIFICATE", &cert_der)?.as_bytes())?;
        let ca = Self {
            kind,
            dir: dir.to_owned(),
            key_id: key_identifier(key.public_key_der())?.to_vec(),
            key,
            cert_der,
            name,
            not_after,
        };
        ca.write_index(&Index { version: INDEX_VERSION, crl_number: 0, certificates: Vec::new() })?;
        ca.crl(now, 24)?;
        Ok(ca)
    }

    /// Opens the network CA in `dir`: reads `ca.pem`, decrypts `ca.key` (a wrong passphrase
    /// is a [`Error::Key`]), checks the key is the certificate's, and checks `index.json`.
    pub fn open(dir: &Path, ca_passphrase: &Secret) -> Result<Self> {
        let cert_path = dir.join("ca.pem");
        if !cert_path.exists() {
            return Err(Error::NotFound(format!("no network CA in {} (run `jpki net init`)", dir.display())));
        }
        let text = std::fs::read(&cert_path)?;
        let (label, cert_der) =
            der::pem::decode_vec(&text).map_err(|e| Error::corrupt("ca.pem", format!("not PEM: {e}")))?;
        if label != "CERTIFICATE" {
            return Err(Error::corrupt("ca.pem", format!("PEM label {label:?}")));
        }
        let cert = Certificate::from_der(&cert_der).map_err(|e| Error::corrupt("ca.pem", e))?;
        let key = SoftKey::load(&dir.join("ca.key"), ca_passphrase)?;
        let spki = cert.tbs_certificate().subject_public_key_info().to_der()?;
        if spki != key.public_key_der() {
            return Err(Error::corrupt("ca.key", "the key is not the key of ca.pem"));
        }
        let ca = Self {
            kind: FileCaKind::of_name(cert.tbs_certificate().subject())?,
            dir: dir.to_owned(),
            key_id: key_identifier(&spki)?.to_vec(),
            key,
            name: cert.tbs_certificate().subject().clone(),
            not_after: unix_of(&cert.tbs_certificate().validity().not_after),
            cert_der,
        };
        ca.read_index()?;
        Ok(ca)
    }

    /// Which file CA this is.
    pub fn kind(&self) -> FileCaKind {
        self.kind
    }

    fn require(&self, kind: FileCaKind, what: &str) -> Result<()> {
        if self.kind != kind {
            return Err(Error::invalid("CA", format!("the {:?} CA does not issue {what}", self.kind)));
        }
        Ok(())
    }

    /// The CA's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate (DER).
    pub fn certificate_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA's key identifier (its SKI; the AKI of everything it signs).
    pub fn key_id(&self) -> &[u8] {
        &self.key_id
    }

    /// Issues `party` a mutual-TLS credential valid for `days` (1–[`MAX_DAYS`], not beyond the
    /// CA) with SAN = the party URI and every host (see [`host_name`]); a fresh P-384 key is
    /// written to `PREFIX.key` under `key_passphrase` (at least 12 bytes, 0600) and the chain
    /// (leaf, then CA) to `PREFIX.pem`. Neither file may exist.
    pub fn issue_tls(
        &self,
        party: &Party,
        hosts: &[String],
        days: i64,
        now: i64,
        out: &Path,
        key_passphrase: &Secret,
    ) -> Result<Issued> {
        if hosts.len() > MAX_HOSTS {
            return Err(Error::invalid("hosts", format!("{} hosts; at most {MAX_HOSTS}", hosts.len())));
        }
        let mut san = vec![GeneralName::UniformResourceIdentifier(Ia5String::new(&party.uri())?)];
        for h in hosts {
            let name = host_name(h)?;
            if !san.contains(&name) {
                san.push(name);
            }
        }
        self.require(FileCaKind::Network, "TLS credentials")?;
        if party.kind() == identity::party::PartyKind::Clerk {
            return Err(Error::invalid("party", format!("{party}: a clerk gets a signing key, not a TLS credential")));
        }
        let profile = NetworkEndEntity::tls(self.name.clone(), subject_of(party)?, san);
        self.issue(party, CredentialKind::Tls, profile, days, now, out, SubjectKey::Generate(key_passphrase))
    }

    /// Issues `municipality` a change-notice signing key (EKU
    /// [`crate::hierarchy::NOTICE_SIGNING`], SAN = its party URI only); files as
    /// [`NetworkCa::issue_tls`]. A key rotation is a new issuance.
    pub fn issue_notice_key(
        &self,
        municipality: &LgCode,
        days: i64,
        now: i64,
        out: &Path,
        key_passphrase: &Secret,
    ) -> Result<Issued> {
        self.require(FileCaKind::Network, "notice keys")?;
        let party = Party::Municipality(municipality.clone());
        let profile = NetworkEndEntity::signing(
            self.name.clone(),
            subject_of(&party)?,
            &party.uri(),
            crate::hierarchy::NOTICE_SIGNING,
        )?;
        self.issue(&party, CredentialKind::NoticeKey, profile, days, now, out, SubjectKey::Generate(key_passphrase))
    }

    /// Issues a municipal clerk (`clerk:LGCODE:ID`) the key that signs the clerk's requests to
    /// the CA service (EKU [`crate::hierarchy::CLERK_SIGNING`], SAN = the clerk's party URI
    /// only); files as [`NetworkCa::issue_tls`]. A clerk never gets a TLS credential.
    pub fn issue_clerk_key(
        &self,
        clerk: &Party,
        days: i64,
        now: i64,
        out: &Path,
        key_passphrase: &Secret,
    ) -> Result<Issued> {
        self.require(FileCaKind::Network, "clerk keys")?;
        if clerk.kind() != identity::party::PartyKind::Clerk {
            return Err(Error::invalid("party", format!("{clerk} is not a clerk")));
        }
        let profile = NetworkEndEntity::signing(
            self.name.clone(),
            subject_of(clerk)?,
            &clerk.uri(),
            crate::hierarchy::CLERK_SIGNING,
        )?;
        self.issue(clerk, CredentialKind::ClerkKey, profile, days, now, out, SubjectKey::Generate(key_passphrase))
    }

    /// Issues `municipality` the certificate of its document-signing key (organisation CA
    /// only; profile [`DocumentSigningCert`]): subject `CN=<name>, OU=<LG code>,
    /// L=<prefecture>, O=JPKI Local Governments, C=JP`, where `name` is the municipality's name
    /// in romaji (1–64 of A–Z a–z 0–9 space - .), CRL distribution point `crl_url` (where the
    /// operator publishes this CA's `crl.der`). The key is generated (files as
    /// [`NetworkCa::issue_tls`]) or given (a PKCS#11 token's key: only the chain is written).
    #[allow(clippy::too_many_arguments, reason = "who, its name, where status is, validity, files and key")]
    pub fn issue_document_signer(
        &self,
        municipality: &LgCode,
        name: &str,
        crl_url: &str,
        days: i64,
        now: i64,
        out: &Path,
        key: SubjectKey<'_>,
    ) -> Result<Issued> {
        self.require(FileCaKind::Organisation, "document-signing keys")?;
        let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '.');
        if name.is_empty() || name.len() > 64 || !name.chars().all(ok) || name.trim() != name {
            return Err(Error::invalid("municipality name", "1–64 of A–Z a–z 0–9 space - . (romaji), not padded"));
        }
        if !(crl_url.starts_with("http://") || crl_url.starts_with("https://")) || !crl_url.is_ascii() {
            return Err(Error::invalid("CRL URL", format!("{crl_url:?}: an http(s) URL")));
        }
        let prefecture = crate::hierarchy::prefecture_name(municipality.prefecture().as_str())?;
        let subject =
            Name::from_str(&format!("CN={name},OU={},L={prefecture},O={ORGANISATION_O},C=JP", municipality.as_str()))
                .map_err(|e| Error::invalid("subject", e))?;
        let party = Party::Municipality(municipality.clone());
        let profile = DocumentSigningCert { issuer: self.name.clone(), subject, crl_url: crl_url.to_owned() };
        self.issue(&party, CredentialKind::DocumentSigning, profile, days, now, out, key)
    }

    #[allow(clippy::too_many_arguments, reason = "the two public issuers' arguments plus profile and kind")]
    fn issue<P: x509_cert::builder::profile::BuilderProfile>(
        &self,
        party: &Party,
        kind: CredentialKind,
        profile: P,
        days: i64,
        now: i64,
        out: &Path,
        subject_key: SubjectKey<'_>,
    ) -> Result<Issued> {
        // Every check before anything is written.
        let leaf = match subject_key {
            SubjectKey::Generate(pass) => Some((check_passphrase(pass)?, SoftKey::ephemeral(KeyAlgorithm::EcP384)?)),
            SubjectKey::Given(spki) => {
                if KeyAlgorithm::of_spki(spki)? == KeyAlgorithm::MlDsa65 {
                    return Err(Error::refused("bad_key", "ML-DSA-65 is for CA keys only"));
                }
                None
            }
        };
        let spki: Vec<u8> = match (&leaf, subject_key) {
            (Some((_, k)), _) => k.public_key_der().to_vec(),
            (None, SubjectKey::Given(spki)) => spki.to_vec(),
            (None, SubjectKey::Generate(_)) => return Err(Error::key("no key generated")),
        };
        if !(1..=MAX_DAYS).contains(&days) {
            return Err(Error::invalid("days", format!("{days}: 1–{MAX_DAYS}")));
        }
        let not_after = now + days * 86_400;
        if not_after > self.not_after {
            return Err(Error::invalid("days", format!("{days} days would outlive the network CA")));
        }
        let (chain_path, key_path) = (with_suffix(out, ".pem"), with_suffix(out, ".key"));
        for p in [&chain_path, &key_path] {
            if p.exists() && (leaf.is_some() || p == &chain_path) {
                return Err(Error::Conflict(format!("{} exists (a credential is never overwritten)", p.display())));
            }
        }
        let lock = self.lock()?;
        let mut index = self.read_index()?;
        let serial = loop {
            let s = new_serial();
            let h = hex::encode(&s);
            if !index.certificates.iter().any(|e| e.serial == h) {
                break s;
            }
        };
        let nb =
            time::OffsetDateTime::from_unix_timestamp(now - BACKDATE_SECS).map_err(|e| Error::invalid("time", e))?;
        let na = time::OffsetDateTime::from_unix_timestamp(not_after).map_err(|e| Error::invalid("time", e))?;
        let prepared = prepare(profile, &serial, nb, na, &spki, &self.key)?;
        let ski = hex::encode(key_identifier(&spki)?);
        let entry = IndexEntry {
            serial: hex::encode(&serial),
            party: party.clone(),
            kind,
            not_after,
            ski: ski.clone(),
            revoked_at: None,
            reason: None,
        };
        // The serial is listed (durably) before it is signed: every signed certificate is
        // revocable, and no serial is used twice.
        index.certificates.push(entry.clone());
        self.write_index(&index)?;
        let der = prepared.sign(&self.key)?;
        let leaf_pem = pem("CERTIFICATE", &der)?;
        net::keyfile::write_private(
            &self.dir.join("certs").join(format!("{}.pem", entry.serial)),
            leaf_pem.as_bytes(),
        )?;
        // The key's scrypt runs outside the lock: parties can be issued from several threads.
        drop(lock);
        let key = match &leaf {
            Some((key_pass, k)) => {
                net::keyfile::store(&key_path, k.pkcs8_secret()?.expose(), key_pass)?;
                Some(key_path)
            }
            None => None,
        };
        let chain = format!("{leaf_pem}{}", pem("CERTIFICATE", &self.cert_der)?);
        net::keyfile::write_private(&chain_path, chain.as_bytes())?;
        Ok(Issued { serial: entry.serial, ski, not_after, chain: chain_path, key })
    }

    /// Revokes the certificate with serial `serial_hex` (hex, `:` separators and case
    /// ignored) for `reason` at `now`. Takes effect on the next [`NetworkCa::crl`].
    pub fn revoke(&self, serial_hex: &str, reason: Reason, now: i64) -> Result<IndexEntry> {
        let wanted: String = serial_hex.chars().filter(|c| *c != ':').collect::<String>().to_ascii_lowercase();
        let bytes = hex::decode(&wanted).map_err(|_| Error::invalid("serial", format!("{serial_hex:?} is not hex")))?;
        let wanted = hex::encode(bytes.iter().skip_while(|b| **b == 0).copied().collect::<Vec<_>>());
        let _lock = self.lock()?;
        let mut index = self.read_index()?;
        let entry = index
            .certificates
            .iter_mut()
            .find(|e| e.serial.trim_start_matches("00") == wanted)
            .ok_or_else(|| Error::NotFound(format!("network certificate with serial {serial_hex}")))?;
        if let Some((at, r)) = entry.revocation()? {
            return Err(Error::Conflict(format!("serial {} was revoked at {at} ({})", entry.serial, r.name())));
        }
        entry.revoked_at = Some(now);
        entry.reason = Some(reason.name().to_owned());
        let done = entry.clone();
        self.write_index(&index)?;
        Ok(done)
    }

    /// Writes the full CRL of the network CA to `dir/crl.pem` (PEM `X509 CRL`): thisUpdate
    /// `now`, nextUpdate `now + next_update_hours` (1–[`MAX_CRL_HOURS`]), AKI, a CRL number
    /// one above the last (committed to `index.json` before the CRL is written, so numbers
    /// strictly increase), every revoked certificate that has not expired. Returns its path.
    pub fn crl(&self, now: i64, next_update_hours: i64) -> Result<PathBuf> {
        if !(1..=MAX_CRL_HOURS).contains(&next_update_hours) {
            return Err(Error::invalid("next update", format!("{next_update_hours} hours: 1–{MAX_CRL_HOURS}")));
        }
        let _lock = self.lock()?;
        let mut index = self.read_index()?;
        index.crl_number += 1;
        self.write_index(&index)?;
        let mut revoked = Vec::new();
        for e in &index.certificates {
            if let Some((at, reason)) = e.revocation()?
                && e.not_after > now
            {
                let serial = hex::decode(&e.serial).map_err(|_| Error::corrupt("index.json", &e.serial))?;
                revoked.push((serial, at, reason));
            }
        }
        let entries: Vec<Entry<'_>> =
            revoked.iter().map(|(s, at, reason)| Entry { serial: s, revoked_at: *at, reason: *reason }).collect();
        let params = CrlParams {
            issuer: self.name.clone(),
            issuer_key_id: self.key_id.clone(),
            number: index.crl_number,
            this_update: now,
            next_update: now + next_update_hours * 3600,
            scope: Scope::Full,
        };
        let der = crl::build(&params, &self.key, &entries)?;
        let path = self.dir.join("crl.pem");
        net::keyfile::write_private(&self.dir.join("crl.der"), &der)?;
        net::keyfile::write_private(&path, pem("X509 CRL", &der)?.as_bytes())?;
        Ok(path)
    }

    /// Every issued certificate, in issuance order.
    pub fn list(&self) -> Result<Vec<IndexEntry>> {
        Ok(self.read_index()?.certificates)
    }

    /// The number of the last CRL written.
    pub fn crl_number(&self) -> Result<u64> {
        Ok(self.read_index()?.crl_number)
    }

    fn lock(&self) -> Result<Lock> {
        let f =
            std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(self.dir.join("index.lock"))?;
        f.lock()?;
        Ok(Lock(f))
    }

    fn read_index(&self) -> Result<Index> {
        let path = self.dir.join("index.json");
        let bytes = std::fs::read(&path)
            .map_err(|e| Error::corrupt("index.json", format!("cannot read {}: {e}", path.display())))?;
        Index::parse(&bytes)
    }

    fn write_index(&self, index: &Index) -> Result<()> {
        let mut json = serde_json::to_vec_pretty(index).map_err(|e| Error::invalid("index", e))?;
        json.push(b'\n');
        Ok(net::keyfile::write_private(&self.dir.join("index.json"), &json)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_become_ip_or_dns_names_and_junk_is_refused() {
        assert!(matches!(host_name("127.0.0.1"), Ok(GeneralName::IpAddress(o)) if o.as_bytes() == [127, 0, 0, 1]));
        assert!(matches!(host_name("::1"), Ok(GeneralName::IpAddress(o)) if o.as_bytes().len() == 16));
        assert!(
            matches!(host_name("Node-1.Pref13.example"), Ok(GeneralName::DnsName(n)) if n.as_str() == "node-1.pref13.example")
        );
        for bad in ["", "a..b", "-a.b", "a b", "*.example", "x".repeat(64).as_str(), "1.2.3.999", "näme"] {
            assert!(host_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parties_have_a_short_form_and_junk_is_refused() {
        assert_eq!(short_form(&parse_party("urn:jpki:municipality:131016").unwrap()), "municipality:131016");
        assert_eq!(short_form(&parse_party("national").unwrap()), "national");
        let e = parse_party("municipality:131017").unwrap_err();
        assert_eq!(e.kind(), "invalid", "{e}");
        assert!(parse_party("mayor:me").is_err());
    }

    #[test]
    fn a_corrupt_index_is_refused() {
        for bad in [
            &b"{"[..],
            br#"{"version":2,"crl_number":0,"certificates":[]}"#,
            br#"{"version":1,"crl_number":0,"certificates":[{"serial":"zz","party":"urn:jpki:national","kind":"tls","not_after":1,"ski":"00","revoked_at":null,"reason":null}]}"#,
            br#"{"version":1,"crl_number":0,"certificates":[{"serial":"01","party":"urn:jpki:king","kind":"tls","not_after":1,"ski":"00","revoked_at":null,"reason":null}]}"#,
            br#"{"version":1,"crl_number":0,"certificates":[{"serial":"01","party":"urn:jpki:national","kind":"tls","not_after":1,"ski":"00","revoked_at":5,"reason":null}]}"#,
        ] {
            let e = Index::parse(bad).unwrap_err();
            assert_eq!(e.kind(), "corrupt", "{e}");
        }
    }
}
