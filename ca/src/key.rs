//! CA signing keys behind one trait, [`KeyBackend`], with two back ends: software keys held by
//! OpenSSL (encrypted PKCS#8 at rest, [`SoftKey`]) and PKCS#11 tokens ([`crate::pkcs11`]).
//! Everything signs a digest the caller computed, so a CRL of a million entries is hashed while
//! it streams and never held in memory. The `rsa` crate never signs (RUSTSEC-2023-0071).

use std::fmt;
use std::path::{Path, PathBuf};

use der::asn1::BitString;
use der::{Decode, Encode};
use net::secret::Secret;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use sha2::Digest;
use spki::{AlgorithmIdentifierOwned, DynSignatureAlgorithmIdentifier, EncodePublicKey, SubjectPublicKeyInfoOwned};

use crate::error::{Error, Result};

/// Key algorithms for CA and subject keys. Numbers are stored and never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// RSA-2048 with SHA-256 (today's JPKI).
    Rsa2048 = 1,
    /// RSA-3072 with SHA-256.
    Rsa3072 = 2,
    /// RSA-4096 with SHA-256.
    Rsa4096 = 3,
    /// ECDSA P-384 with SHA-384 (the next-generation card).
    EcP384 = 4,
}

impl KeyAlgorithm {
    /// Every algorithm.
    pub const ALL: [Self; 4] = [Self::Rsa2048, Self::Rsa3072, Self::Rsa4096, Self::EcP384];

    /// CLI / config name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rsa2048 => "rsa2048",
            Self::Rsa3072 => "rsa3072",
            Self::Rsa4096 => "rsa4096",
            Self::EcP384 => "p384",
        }
    }

    /// Parses a CLI / config name.
    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| Error::invalid("key algorithm", format!("{s}: use rsa2048, rsa3072, rsa4096 or p384")))
    }

    /// From the stored number.
    pub fn from_code(n: i64) -> Result<Self> {
        Self::ALL.into_iter().find(|a| *a as i64 == n).ok_or_else(|| Error::corrupt("key algorithm", n))
    }

    /// RSA modulus bits, if RSA.
    pub fn rsa_bits(self) -> Option<u32> {
        match self {
            Self::Rsa2048 => Some(2048),
            Self::Rsa3072 => Some(3072),
            Self::Rsa4096 => Some(4096),
            Self::EcP384 => None,
        }
    }

    /// The signature AlgorithmIdentifier (RFC 4055 §5: NULL parameters for PKCS#1 v1.5;
    /// RFC 5758 §3.2: absent parameters for ECDSA).
    pub fn signature_algorithm(self) -> AlgorithmIdentifierOwned {
        match self {
            Self::EcP384 => {
                AlgorithmIdentifierOwned { oid: const_oid::db::rfc5912::ECDSA_WITH_SHA_384, parameters: None }
            }
            _ => AlgorithmIdentifierOwned {
                oid: const_oid::db::rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
                parameters: Some(der::asn1::Null.into()),
            },
        }
    }

    /// The digest the signature is computed over.
    pub fn digest(self, msg: &[u8]) -> Vec<u8> {
        let mut h = self.hasher();
        h.update(msg);
        h.finish()
    }

    /// An incremental hasher for this algorithm.
    pub fn hasher(self) -> Hasher {
        match self {
            Self::EcP384 => Hasher::Sha384(sha2::Sha384::new()),
            _ => Hasher::Sha256(sha2::Sha256::new()),
        }
    }

    /// Identifies the algorithm of a SubjectPublicKeyInfo (DER), checking the key size.
    pub fn of_spki(spki_der: &[u8]) -> Result<Self> {
        let key = PKey::public_key_from_der(spki_der)
            .map_err(|_| Error::refused("bad_key", "the public key is not a valid SubjectPublicKeyInfo"))?;
        match key.id() {
            openssl::pkey::Id::RSA => {
                let rsa = key.rsa()?;
                let e = rsa.e().to_vec();
                if e != [1, 0, 1] {
                    return Err(Error::refused("bad_key", "RSA public exponent must be 65537"));
                }
                match rsa.n().num_bits() {
                    2048 => Ok(Self::Rsa2048),
                    3072 => Ok(Self::Rsa3072),
                    4096 => Ok(Self::Rsa4096),
                    n => Err(Error::refused("bad_key", format!("RSA-{n} is not allowed (2048, 3072, 4096)"))),
                }
            }
            openssl::pkey::Id::EC => {
                let ec = key.ec_key()?;
                match ec.group().curve_name() {
                    Some(openssl::nid::Nid::SECP384R1) => Ok(Self::EcP384),
                    other => Err(Error::refused("bad_key", format!("EC curve {other:?} is not allowed (P-384 only)"))),
                }
            }
            other => Err(Error::refused("bad_key", format!("key type {other:?} is not allowed"))),
        }
    }
}

/// SHA-256 or SHA-384, incrementally.
#[derive(Debug, Clone)]
pub enum Hasher {
    /// SHA-256.
    Sha256(sha2::Sha256),
    /// SHA-384.
    Sha384(sha2::Sha384),
}

impl Hasher {
    /// Adds bytes.
    pub fn update(&mut self, b: &[u8]) {
        match self {
            Self::Sha256(h) => h.update(b),
            Self::Sha384(h) => h.update(b),
        }
    }
    /// The digest.
    pub fn finish(self) -> Vec<u8> {
        match self {
            Self::Sha256(h) => h.finalize().to_vec(),
            Self::Sha384(h) => h.finalize().to_vec(),
        }
    }
}

/// A private key that signs for a CA (or an OCSP responder). Implementations never expose
/// the private key.
pub trait KeyBackend: Send + Sync + fmt::Debug {
    /// The key's algorithm.
    fn algorithm(&self) -> KeyAlgorithm;
    /// SubjectPublicKeyInfo, DER.
    fn public_key_der(&self) -> &[u8];
    /// Signs a digest computed with [`KeyAlgorithm::digest`]; returns the signature value as
    /// it goes into a BIT STRING (PKCS#1 v1.5 bytes, or a DER `ECDSA-Sig-Value`).
    fn sign_digest(&self, digest: &[u8]) -> Result<Vec<u8>>;
    /// Where the key lives, for the record (`soft:FILE`, `pkcs11:LABEL`); never a secret.
    fn key_ref(&self) -> String;
}

/// Signs `msg` with `key` (hash, then [`KeyBackend::sign_digest`]).
pub fn sign(key: &dyn KeyBackend, msg: &[u8]) -> Result<Vec<u8>> {
    key.sign_digest(&key.algorithm().digest(msg))
}

/// Verifies `sig` over `msg` with a SubjectPublicKeyInfo (DER) — for checking our own output
/// and proofs of possession. Public-key work only.
pub fn verify(spki_der: &[u8], msg: &[u8], sig: &[u8]) -> Result<bool> {
    let alg = KeyAlgorithm::of_spki(spki_der)?;
    let key = PKey::public_key_from_der(spki_der)?;
    let md = match alg {
        KeyAlgorithm::EcP384 => MessageDigest::sha384(),
        _ => MessageDigest::sha256(),
    };
    let mut v = openssl::sign::Verifier::new(md, &key)?;
    v.update(msg)?;
    Ok(v.verify(sig).unwrap_or(false))
}

/// Adapts a [`KeyBackend`] to x509-cert's builder (`Keypair` + algorithm identifier): the
/// builder's `finalize` gives the TBS bytes, we sign them ourselves, then `assemble`.
#[derive(Debug, Clone, Copy)]
pub struct BuilderKey<'a>(pub &'a dyn KeyBackend);

/// A public key as the builder wants it.
#[derive(Debug, Clone)]
pub struct PublicKeyDer(Vec<u8>);

impl EncodePublicKey for PublicKeyDer {
    fn to_public_key_der(&self) -> spki::Result<der::Document> {
        Ok(der::Document::try_from(self.0.as_slice())?)
    }
}

impl signature::Keypair for BuilderKey<'_> {
    type VerifyingKey = PublicKeyDer;
    fn verifying_key(&self) -> PublicKeyDer {
        PublicKeyDer(self.0.public_key_der().to_vec())
    }
}

impl DynSignatureAlgorithmIdentifier for BuilderKey<'_> {
    fn signature_algorithm_identifier(&self) -> spki::Result<AlgorithmIdentifierOwned> {
        Ok(self.0.algorithm().signature_algorithm())
    }
}

/// Signs builder output: `Builder::finalize` → sign → `Builder::assemble`.
pub fn signature_bits(key: &dyn KeyBackend, tbs: &[u8]) -> Result<BitString> {
    Ok(BitString::from_bytes(&sign(key, tbs)?)?)
}

/// The SubjectPublicKeyInfo of a key, decoded.
pub fn spki_of(key: &dyn KeyBackend) -> Result<SubjectPublicKeyInfoOwned> {
    Ok(SubjectPublicKeyInfoOwned::from_der(key.public_key_der())?)
}

/// Key identifier (RFC 5280 §4.2.1.2 method 1): SHA-1 of the subjectPublicKey bits.
pub fn key_identifier(spki_der: &[u8]) -> Result<[u8; 20]> {
    let spki = SubjectPublicKeyInfoOwned::from_der(spki_der)?;
    let bits = spki.subject_public_key.as_bytes().ok_or_else(|| Error::invalid("public key", "unused bits"))?;
    Ok(sha1::Sha1::digest(bits).into())
}

/// A software key held by OpenSSL; at rest an encrypted PKCS#8 file (PBES2 with scrypt and
/// AES-256-CBC, see [`net::keyfile`]).
pub struct SoftKey {
    pkey: PKey<Private>,
    algorithm: KeyAlgorithm,
    spki: Vec<u8>,
    path: PathBuf,
}

impl fmt::Debug for SoftKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key material.
        f.debug_struct("SoftKey").field("algorithm", &self.algorithm).field("path", &self.path).finish()
    }
}

impl SoftKey {
    /// Generates a key in memory (not yet stored).
    pub fn generate(algorithm: KeyAlgorithm) -> Result<PKey<Private>> {
        Ok(match algorithm.rsa_bits() {
            Some(bits) => PKey::from_rsa(openssl::rsa::Rsa::generate(bits)?)?,
            None => {
                let group = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::SECP384R1)?;
                PKey::from_ec_key(openssl::ec::EcKey::generate(&group)?)?
            }
        })
    }

    /// Generates a key and writes it to `path` (which must not exist) as an encrypted PKCS#8
    /// file under `passphrase` (at least [`net::secret::MIN_PASSPHRASE`] bytes): scrypt
    /// (2^15, 8, 1) and AES-256-CBC, mode 0600, through a fresh temporary file, fsync and
    /// rename ([`net::keyfile::store`]; review finding M3).
    pub fn create(path: &Path, algorithm: KeyAlgorithm, passphrase: &Secret) -> Result<Self> {
        let passphrase = check_passphrase(passphrase)?;
        if path.exists() {
            return Err(Error::Conflict(format!("key file {} exists", path.display())));
        }
        let pkey = Self::generate(algorithm)?;
        // The plaintext PKCS#8 lives in a Secret so that it is zeroized when dropped.
        let plain = Secret::new(pkey.private_key_to_pkcs8()?);
        net::keyfile::store(path, plain.expose(), &passphrase)?;
        Self::from_pkey(pkey, path)
    }

    /// Loads an encrypted PKCS#8 key file written by [`SoftKey::create`] (or by
    /// [`net::keyfile::store`]). A wrong passphrase and a corrupt file give the same error.
    pub fn load(path: &Path, passphrase: &Secret) -> Result<Self> {
        let plain = net::keyfile::load(path, passphrase)?;
        let pkey = PKey::private_key_from_pkcs8(&plain)
            .map_err(|_| Error::key(format!("key file {} holds no usable private key", path.display())))?;
        Self::from_pkey(pkey, path)
    }

    /// The key as an unencrypted PKCS#8 `PrivateKeyInfo`, in a [`Secret`] (zeroized on drop),
    /// to be sealed with [`net::keyfile`] — used for subject keys the CA generates on behalf
    /// of a party (network credentials), never for CA keys.
    pub fn pkcs8_secret(&self) -> Result<Secret> {
        Ok(Secret::new(self.pkey.private_key_to_pkcs8()?))
    }

    fn from_pkey(pkey: PKey<Private>, path: &Path) -> Result<Self> {
        let spki = pkey.public_key_to_der()?;
        let algorithm = KeyAlgorithm::of_spki(&spki).map_err(|e| Error::key(format!("unusable key: {e}")))?;
        Ok(Self { pkey, algorithm, spki, path: path.to_owned() })
    }

    /// An in-memory key (tests, subject keys made by a test harness).
    pub fn ephemeral(algorithm: KeyAlgorithm) -> Result<Self> {
        Self::from_pkey(Self::generate(algorithm)?, Path::new("(memory)"))
    }

    /// The OpenSSL key, for tests that act as a key holder (e.g. making a CSR).
    pub fn pkey(&self) -> &PKey<Private> {
        &self.pkey
    }
}

impl KeyBackend for SoftKey {
    fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }
    fn public_key_der(&self) -> &[u8] {
        &self.spki
    }
    fn sign_digest(&self, digest: &[u8]) -> Result<Vec<u8>> {
        let mut ctx = PkeyCtx::new(&self.pkey)?;
        ctx.sign_init()?;
        match self.algorithm {
            KeyAlgorithm::EcP384 => ctx.set_signature_md(openssl::md::Md::sha384())?,
            _ => {
                ctx.set_rsa_padding(Padding::PKCS1)?;
                ctx.set_signature_md(openssl::md::Md::sha256())?;
            }
        }
        let mut out = Vec::new();
        ctx.sign_to_vec(digest, &mut out)?;
        Ok(out)
    }
    fn key_ref(&self) -> String {
        format!("soft:{}", self.path.display())
    }
}

/// Checks a key-file passphrase is long enough ([`net::secret::MIN_PASSPHRASE`] bytes).
pub fn check_passphrase(passphrase: &Secret) -> Result<Secret> {
    Ok(passphrase.clone().passphrase("key passphrase")?)
}

/// Writes `bytes` to `path` durably with mode 0600: a new, randomly named temporary file in
/// the same directory (never following a planted file or symlink), fsync, rename, fsync of the
/// directory ([`net::keyfile::write_private`]).
pub fn write_durably(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(net::keyfile::write_private(path, bytes)?)
}

/// DER-encodes anything der can encode (shorthand).
pub fn to_der<T: Encode>(v: &T) -> Result<Vec<u8>> {
    Ok(v.to_der()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_keys_sign_what_openssl_verifies_and_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        for alg in [KeyAlgorithm::Rsa2048, KeyAlgorithm::EcP384] {
            let path = dir.path().join(format!("{}.p8", alg.name()));
            let pass = Secret::new(b"correct horse".to_vec());
            let k = SoftKey::create(&path, alg, &pass).unwrap();
            let sig = sign(&k, b"hello").unwrap();
            assert!(verify(k.public_key_der(), b"hello", &sig).unwrap());
            assert!(!verify(k.public_key_der(), b"hellO", &sig).unwrap());
            let again = SoftKey::load(&path, &pass).unwrap();
            assert_eq!(again.public_key_der(), k.public_key_der());
            let err = SoftKey::load(&path, &Secret::new(b"wrong horse!".to_vec())).unwrap_err();
            assert!(err.to_string().contains("wrong passphrase"), "{err}");
            assert!(!format!("{k:?}").contains("BEGIN"), "Debug must not show key material");
            assert!(SoftKey::create(&path, alg, &pass).is_err(), "never overwrite a key");
            // The file is scrypt-protected (id-scrypt, 1.3.6.1.4.1.11591.4.11), mode 0600.
            let pem = std::fs::read_to_string(&path).unwrap();
            let (_, raw) = der::pem::decode_vec(pem.as_bytes()).unwrap();
            assert!(raw.windows(11).any(|w| w == [0x06, 0x09, 0x2b, 0x06, 0x01, 0x04, 0x01, 0xda, 0x47, 0x04, 0x0b]));
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn short_passphrases_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = SoftKey::create(&dir.path().join("k.p8"), KeyAlgorithm::EcP384, &Secret::new(b"11 bytes...".to_vec()))
            .unwrap_err();
        assert_eq!(e.kind(), "invalid", "{e}");
        assert!(e.to_string().contains("12"), "{e}");
        assert!(!dir.path().join("k.p8").exists());
    }

    #[test]
    fn key_policy_rejects_small_rsa_and_other_curves() {
        let small = PKey::from_rsa(openssl::rsa::Rsa::generate(1024).unwrap()).unwrap();
        let e = KeyAlgorithm::of_spki(&small.public_key_to_der().unwrap()).unwrap_err();
        assert_eq!(e.kind(), "bad_key");
        let g = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
        let p256 = PKey::from_ec_key(openssl::ec::EcKey::generate(&g).unwrap()).unwrap();
        assert_eq!(KeyAlgorithm::of_spki(&p256.public_key_to_der().unwrap()).unwrap_err().kind(), "bad_key");
        assert_eq!(KeyAlgorithm::of_spki(b"\x30\x03garbage").unwrap_err().kind(), "bad_key");
    }
}
