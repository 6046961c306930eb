//! A party's credential (its certificate chain and private key, from the files the network CA
//! wrote: `PREFIX.pem` = leaf then CA, `PREFIX.key` = encrypted PKCS#8) and the trust every
//! node shares (the network CA certificate and its CRL). [`party_of`] reads the one party URI
//! out of a certificate's subject alternative names.

use std::path::{Path, PathBuf};

use der::Decode;
use identity::party::Party;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use x509_cert::Certificate;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

use crate::error::{Error, Result};
use crate::secret::Secret;

/// The environment variable holding the passphrase of a node's credential key.
pub const PASSPHRASE_ENV: &str = "JPKI_CREDENTIAL_PASSPHRASE";

/// The party named by a certificate: exactly one `urn:jpki:` URI in its SAN.
pub fn party_of(cert_der: &[u8]) -> Result<Party> {
    let cert = Certificate::from_der(cert_der).map_err(|e| Error::credential("certificate", e))?;
    let san = match cert.tbs_certificate().get_extension::<SubjectAltName>() {
        Ok(Some((_, san))) => san,
        Ok(None) => return Err(Error::credential("certificate", "no subjectAltName: it names no party")),
        Err(e) => return Err(Error::credential("certificate", e)),
    };
    let mut parties = san.0.iter().filter_map(|n| match n {
        GeneralName::UniformResourceIdentifier(u) => Party::from_uri(u.as_str()),
        _ => None,
    });
    match (parties.next(), parties.next()) {
        (Some(Ok(p)), None) => Ok(p),
        (Some(Err(e)), None) => Err(Error::credential("certificate", e)),
        (None, _) => Err(Error::credential("certificate", "no urn:jpki: URI in its subjectAltName")),
        (Some(_), Some(_)) => Err(Error::credential("certificate", "more than one party URI")),
    }
}

/// Reads every PEM block labelled `label` from `text`.
fn pem_blocks(text: &str, label: &str, what: &Path) -> Result<Vec<Vec<u8>>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(&begin) {
        let Some(j) = rest[i..].find(&end) else {
            return Err(Error::credential(what.display().to_string(), format!("unterminated {label} block")));
        };
        let block = &rest[i..i + j + end.len()];
        let (_, der) = der::pem::decode_vec(block.as_bytes())
            .map_err(|e| Error::credential(what.display().to_string(), format!("bad PEM: {e}")))?;
        out.push(der);
        rest = &rest[i + j + end.len()..];
    }
    Ok(out)
}

/// Reads the certificates of a PEM file (in order).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let text = std::fs::read_to_string(path).map_err(Error::io(format!("reading {}", path.display())))?;
    let certs = pem_blocks(&text, "CERTIFICATE", path)?;
    if certs.is_empty() {
        return Err(Error::credential(path.display().to_string(), "no CERTIFICATE in the file"));
    }
    Ok(certs.into_iter().map(CertificateDer::from).collect())
}

/// A party's certificate chain and private key.
pub struct Credential {
    /// The party its certificate names.
    pub party: Party,
    chain: Vec<CertificateDer<'static>>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential").field("party", &self.party).field("chain", &self.chain.len()).finish()
    }
}

impl Credential {
    /// Loads `PREFIX.pem` and `PREFIX.key` (decrypted with `passphrase`).
    pub fn load(prefix: &Path, passphrase: &Secret) -> Result<Self> {
        let cert = with_ext(prefix, "pem");
        let key = with_ext(prefix, "key");
        let chain = read_certs(&cert)?;
        let party = party_of(&chain[0])?;
        let der = crate::keyfile::load(&key, passphrase)?;
        Ok(Self { party, chain, key: PrivatePkcs8KeyDer::from(der.to_vec()) })
    }

    /// Loads `PREFIX.pem`/`PREFIX.key` with the passphrase from [`PASSPHRASE_ENV`].
    pub fn load_env(prefix: &Path) -> Result<Self> {
        Self::load(prefix, &Secret::from_env(PASSPHRASE_ENV)?)
    }

    /// The certificate chain (leaf first).
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The leaf certificate.
    pub fn leaf(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    pub(crate) fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }
}

/// `PREFIX.ext` (keeps any dots already in the prefix).
pub fn with_ext(prefix: &Path, ext: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// What every party trusts: the network CA certificate(s) and, if published, its CRL.
#[derive(Debug, Clone)]
pub struct Trust {
    /// PEM file of the network CA certificate(s).
    pub ca_file: PathBuf,
    /// PEM or DER file of the network CA's CRL (reloaded by servers when it changes).
    pub crl_file: Option<PathBuf>,
}

impl Trust {
    /// The roots.
    pub fn roots(&self) -> Result<rustls::RootCertStore> {
        let mut roots = rustls::RootCertStore::empty();
        for c in read_certs(&self.ca_file)? {
            roots.add(c).map_err(|e| Error::credential(self.ca_file.display().to_string(), e))?;
        }
        Ok(roots)
    }

    /// The CRLs (none if no CRL file is configured).
    pub fn crls(&self) -> Result<Vec<CertificateRevocationListDer<'static>>> {
        let Some(path) = &self.crl_file else { return Ok(Vec::new()) };
        let bytes = std::fs::read(path).map_err(Error::io(format!("reading {}", path.display())))?;
        let ders = match std::str::from_utf8(&bytes) {
            Ok(text) if text.contains("-----BEGIN") => pem_blocks(text, "X509 CRL", path)?,
            _ => vec![bytes],
        };
        if ders.is_empty() {
            return Err(Error::credential(path.display().to_string(), "no X509 CRL in the file"));
        }
        Ok(ders.into_iter().map(CertificateRevocationListDer::from).collect())
    }
}

/// Verifies `leaf` (with `intermediates`) against the network CA in `trust` with
/// rustls-webpki: chain, validity now, the CRL (end entity), and `usage`. `Err` says why.
pub fn verify_with_webpki(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    trust: &Trust,
    usage: webpki::KeyUsage,
) -> Result<()> {
    let roots = read_certs(&trust.ca_file)?;
    let anchors: Vec<_> = roots
        .iter()
        .map(|r| webpki::anchor_from_trusted_cert(r).map(|a| a.to_owned()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::credential(trust.ca_file.display().to_string(), e))?;
    let crls: Vec<webpki::CertRevocationList<'static>> = trust
        .crls()?
        .iter()
        .map(|c| webpki::OwnedCertRevocationList::from_der(c.as_ref()).map(webpki::CertRevocationList::from))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::credential("network CRL", e))?;
    let crl_refs: Vec<&webpki::CertRevocationList<'_>> = crls.iter().collect();
    let revocation = match crl_refs.is_empty() {
        true => None,
        false => Some(
            webpki::RevocationOptionsBuilder::new(&crl_refs)
                .map_err(|e| Error::credential("network CRL", format!("{e:?}")))?
                .with_depth(webpki::RevocationCheckDepth::EndEntity)
                .build(),
        ),
    };
    let ee = webpki::EndEntityCert::try_from(leaf).map_err(|e| Error::credential("certificate", e))?;
    ee.verify_for_usage(
        &[webpki::ring::ECDSA_P384_SHA384, webpki::ring::ECDSA_P256_SHA256],
        &anchors,
        intermediates,
        rustls::pki_types::UnixTime::now(),
        usage,
        revocation,
        None,
    )
    .map(drop)
    .map_err(|e| Error::credential("certificate", format!("not valid under the network CA: {e}")))
}

/// Checks the certificate chain at `PREFIX.pem` without its key: it chains to the network CA
/// in `trust`, is valid now, is not on the CRL, may be used as a TLS server and client, and
/// names a party, which is returned (`jpki serve check`).
pub fn check_chain(prefix: &Path, trust: &Trust) -> Result<Party> {
    let file = with_ext(prefix, "pem");
    let chain = read_certs(&file)?;
    let party = party_of(&chain[0])?;
    for usage in [webpki::KeyUsage::server_auth(), webpki::KeyUsage::client_auth()] {
        verify_with_webpki(&chain[0], &chain[1..], trust, usage)
            .map_err(|e| Error::credential(file.display().to_string(), e))?;
    }
    Ok(party)
}
