//! The real notice keys (identity's [`NoticeSigner`] and [`NoticeVerifier`]): a
//! municipality's change-notice signing key is an ECDSA P-384 key whose certificate the
//! network CA issued (`jpki net issue --notice-key`): its subjectAltName names the
//! municipality (`urn:jpki:municipality:131016`) and its only extKeyUsage is
//! [`NOTICE_SIGNING`]. The key id is the certificate's subject key identifier in lower-case
//! hex. Signatures are ECDSA P-384 with SHA-384, DER-encoded (RFC 3279 `Ecdsa-Sig-Value`).
//!
//! A replica admits a certificate only if it chains to the network CA, is valid now, is not on
//! the network CA's CRL, carries the notice-signing EKU and names the notice's source; it then
//! verifies each signature with that certificate's key (rustls-webpki, ring).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use der::Decode;
use identity::ids::LgCode;
use identity::notice_sig::{NoticeSigner, NoticeVerifier};
use identity::party::Party;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair};
use rustls::pki_types::CertificateDer;
use x509_cert::Certificate;
use x509_cert::ext::pkix::SubjectKeyIdentifier;

use crate::credential::{Trust, party_of, read_certs, with_ext};
use crate::error::{Error, Result};
use crate::secret::Secret;

/// The DER content octets of the notice-signing extKeyUsage OID 1.2.392.200149.8.5.99.1 (this
/// project's private arc; `ca::hierarchy::NOTICE_SIGNING`).
pub const NOTICE_SIGNING: &[u8] = &[0x2a, 0x83, 0x08, 0x8c, 0x9b, 0x55, 0x08, 0x05, 0x63, 0x01];

/// The key id of a certificate: its subject key identifier in lower-case hex.
pub fn key_id(cert_der: &[u8]) -> Result<String> {
    let cert = Certificate::from_der(cert_der).map_err(|e| Error::credential("notice-key certificate", e))?;
    match cert.tbs_certificate().get_extension::<SubjectKeyIdentifier>() {
        Ok(Some((_, ski))) => Ok(ski.0.as_bytes().iter().map(|b| format!("{b:02x}")).collect()),
        Ok(None) => Err(Error::credential("notice-key certificate", "no subject key identifier")),
        Err(e) => Err(Error::credential("notice-key certificate", e)),
    }
}

/// A municipality's notice key, loaded from `PREFIX.pem` + `PREFIX.key`.
pub struct Signer {
    key_id: String,
    cert: Vec<u8>,
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("key_id", &self.key_id).finish()
    }
}

impl Signer {
    /// Loads the notice key of `municipality` (its certificate must name it).
    pub fn load(prefix: &Path, passphrase: &Secret, municipality: &LgCode) -> Result<Arc<Self>> {
        let chain = read_certs(&with_ext(prefix, "pem"))?;
        let cert = chain[0].to_vec();
        let party = party_of(&cert)?;
        if party != Party::Municipality(municipality.clone()) {
            return Err(Error::credential(
                prefix.display().to_string(),
                format!("this notice key belongs to {party}, not municipality {municipality}"),
            ));
        }
        let (key, rng) = load_p384(prefix, passphrase, &cert)?;
        Ok(Arc::new(Self { key_id: key_id(&cert)?, cert, key, rng }))
    }
}

/// Loads `PREFIX.key` (an encrypted PKCS#8 P-384 key) and checks that it is the key of
/// `cert` (the leaf of `PREFIX.pem`).
pub(crate) fn load_p384(prefix: &Path, passphrase: &Secret, cert: &[u8]) -> Result<(EcdsaKeyPair, SystemRandom)> {
    let der = crate::keyfile::load(&with_ext(prefix, "key"), passphrase)?;
    let rng = SystemRandom::new();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, &der, &rng)
        .map_err(|e| Error::credential(prefix.display().to_string(), format!("not a P-384 key: {e}")))?;
    let spki_key = Certificate::from_der(cert)
        .map_err(|e| Error::credential(prefix.display().to_string(), e))?
        .tbs_certificate()
        .subject_public_key_info()
        .subject_public_key
        .raw_bytes()
        .to_vec();
    use ring::signature::KeyPair as _;
    if key.public_key().as_ref() != spki_key.as_slice() {
        return Err(Error::credential(prefix.display().to_string(), "the key is not the certificate's key"));
    }
    Ok((key, rng))
}

impl NoticeSigner for Signer {
    fn key_id(&self) -> &str {
        &self.key_id
    }
    fn key_cert(&self) -> &[u8] {
        &self.cert
    }
    fn sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, String> {
        self.key.sign(&self.rng, message).map(|s| s.as_ref().to_vec()).map_err(|e| format!("signing failed: {e}"))
    }
}

/// A replica's verifier: the network CA (and its CRL, reloaded when the file changes) and the
/// certificates admitted so far, by source and key id.
#[derive(Debug)]
pub struct Verifier {
    trust: Trust,
    admitted: RwLock<HashMap<(String, String), Vec<u8>>>,
}

impl Verifier {
    /// A verifier trusting `trust`.
    pub fn new(trust: Trust) -> Arc<Self> {
        Arc::new(Self { trust, admitted: RwLock::new(HashMap::new()) })
    }

    fn check_chain(&self, cert_der: &[u8]) -> std::result::Result<(), String> {
        let der = CertificateDer::from(cert_der);
        crate::credential::verify_with_webpki(&der, &[], &self.trust, webpki::KeyUsage::required(NOTICE_SIGNING))
            .map_err(|e| format!("not a notice key of the network CA: {e}"))
    }
}

impl NoticeVerifier for Verifier {
    fn admit_key(&self, source: &LgCode, cert_der: &[u8]) -> std::result::Result<String, String> {
        let party = party_of(cert_der).map_err(|e| e.to_string())?;
        if party != Party::Municipality(source.clone()) {
            return Err(format!("certificate names {party}, not municipality {source}"));
        }
        self.check_chain(cert_der)?;
        let id = key_id(cert_der).map_err(|e| e.to_string())?;
        match self.admitted.write() {
            Ok(mut m) => m.insert((source.to_string(), id.clone()), cert_der.to_vec()),
            Err(p) => p.into_inner().insert((source.to_string(), id.clone()), cert_der.to_vec()),
        };
        Ok(id)
    }

    fn verify(
        &self,
        source: &LgCode,
        key_id: &str,
        message: &[u8],
        signature: &[u8],
    ) -> std::result::Result<(), String> {
        let cert = {
            let m = match self.admitted.read() {
                Ok(m) => m,
                Err(p) => p.into_inner(),
            };
            m.get(&(source.to_string(), key_id.to_owned())).cloned()
        };
        let cert = cert.ok_or_else(|| format!("key {key_id} of {source} is not admitted"))?;
        let der = CertificateDer::from(cert.as_slice());
        let ee = webpki::EndEntityCert::try_from(&der).map_err(|e| format!("stored certificate: {e}"))?;
        ee.verify_signature(webpki::ring::ECDSA_P384_SHA384, message, signature)
            .map_err(|e| format!("signature does not verify: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_notice_signing_oid_bytes_are_1_2_392_200149_8_5_99_1() {
        let oid = x509_cert::der::oid::ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.99.1");
        assert_eq!(oid.as_bytes(), NOTICE_SIGNING);
    }
}
