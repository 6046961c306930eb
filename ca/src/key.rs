//! CA signing keys behind one trait, [`KeyBackend`], with two back ends: software keys
//! (encrypted PKCS#8 at rest, [`SoftKey`]: RSA and ECDSA held by OpenSSL, ML-DSA-65 by
//! RustCrypto's `ml-dsa`, see [`crate::mldsa`]) and PKCS#11 tokens ([`crate::pkcs11`]).
//! Everything signs what a [`Hasher`] computed from the message as it streamed, so a CRL of a
//! million entries is never held in memory: a SHA-256/SHA-384 digest for RSA and ECDSA, and
//! for ML-DSA the external μ of FIPS 204 (ML-DSA signs the message, and μ is the hash of it
//! that ML-DSA.Sign itself computes first). The `rsa` crate never signs (RUSTSEC-2023-0071).

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
    /// ML-DSA-65 (FIPS 204), pure, empty context (RFC 9881): CA and OCSP responder keys only,
    /// software keys only (no PKCS#11 token here has ML-DSA).
    MlDsa65 = 5,
}

impl KeyAlgorithm {
    /// Every algorithm.
    pub const ALL: [Self; 5] = [Self::Rsa2048, Self::Rsa3072, Self::Rsa4096, Self::EcP384, Self::MlDsa65];

    /// CLI / config name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rsa2048 => "rsa2048",
            Self::Rsa3072 => "rsa3072",
            Self::Rsa4096 => "rsa4096",
            Self::EcP384 => "p384",
            Self::MlDsa65 => "ml-dsa-65",
        }
    }

    /// Parses a CLI / config name.
    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|a| a.name() == s).ok_or_else(|| {
            Error::invalid("key algorithm", format!("{s}: use rsa2048, rsa3072, rsa4096, p384 or ml-dsa-65"))
        })
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
            Self::EcP384 | Self::MlDsa65 => None,
        }
    }

    /// The signature AlgorithmIdentifier (RFC 4055 §5: NULL parameters for PKCS#1 v1.5;
    /// RFC 5758 §3.2: absent parameters for ECDSA; RFC 9881 §2: absent parameters for ML-DSA).
    pub fn signature_algorithm(self) -> AlgorithmIdentifierOwned {
        match self {
            Self::EcP384 => {
                AlgorithmIdentifierOwned { oid: const_oid::db::rfc5912::ECDSA_WITH_SHA_384, parameters: None }
            }
            Self::MlDsa65 => crate::mldsa::algorithm_identifier(),
            Self::Rsa2048 | Self::Rsa3072 | Self::Rsa4096 => AlgorithmIdentifierOwned {
                oid: const_oid::db::rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
                parameters: Some(der::asn1::Null.into()),
            },
        }
    }

    /// Identifies the algorithm of a SubjectPublicKeyInfo (DER), checking the key: RSA
    /// 2048/3072/4096 with e = 65537, ECDSA on P-384, or ML-DSA-65 (RFC 9881: absent parameters,
    /// a 1,952-byte key). Anything else is refused as `bad_key`.
    pub fn of_spki(spki_der: &[u8]) -> Result<Self> {
        let parsed = spki::SubjectPublicKeyInfoRef::from_der(spki_der)
            .map_err(|_| Error::refused("bad_key", "the public key is not a valid SubjectPublicKeyInfo"))?;
        if parsed.algorithm.oid == crate::mldsa::OID {
            crate::mldsa::public_key(parsed)?;
            return Ok(Self::MlDsa65);
        }
        if crate::mldsa::OTHER_OIDS.contains(&parsed.algorithm.oid) {
            return Err(Error::refused("bad_key", "ML-DSA-44 and ML-DSA-87 are not allowed (ML-DSA-65 only)"));
        }
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

/// What a key signs, computed incrementally from the message: SHA-256 (RSA), SHA-384
/// (ECDSA P-384), or ML-DSA's μ (FIPS 204 Algorithm 7 line 6, which needs the signer's public
/// key: μ = SHAKE256(SHAKE256(pk, 64) ‖ 00 00 ‖ M, 64)). Made by [`Hasher::for_key`].
#[derive(Debug, Clone)]
pub enum Hasher {
    /// SHA-256.
    Sha256(sha2::Sha256),
    /// SHA-384.
    Sha384(sha2::Sha384),
    /// ML-DSA external μ.
    MlDsaMu(Box<crate::mldsa::Mu>),
}

impl Hasher {
    /// The hasher of signatures made by `key`.
    pub fn for_key(key: &dyn KeyBackend) -> Result<Self> {
        Self::new(key.algorithm(), key.public_key_der())
    }

    /// The hasher of signatures made with `alg` by the key whose SubjectPublicKeyInfo is
    /// `spki_der` (only ML-DSA reads it).
    pub fn new(alg: KeyAlgorithm, spki_der: &[u8]) -> Result<Self> {
        Ok(match alg {
            KeyAlgorithm::EcP384 => Self::Sha384(sha2::Sha384::new()),
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => Self::Sha256(sha2::Sha256::new()),
            KeyAlgorithm::MlDsa65 => {
                let spki = spki::SubjectPublicKeyInfoRef::from_der(spki_der)?;
                Self::MlDsaMu(Box::new(crate::mldsa::Mu::new(&crate::mldsa::public_key(spki)?)))
            }
        })
    }

    /// Adds bytes.
    pub fn update(&mut self, b: &[u8]) {
        match self {
            Self::Sha256(h) => h.update(b),
            Self::Sha384(h) => h.update(b),
            Self::MlDsaMu(h) => h.update(b),
        }
    }
    /// The digest (or μ).
    pub fn finish(self) -> Vec<u8> {
        match self {
            Self::Sha256(h) => h.finalize().to_vec(),
            Self::Sha384(h) => h.finalize().to_vec(),
            Self::MlDsaMu(h) => h.finish().to_vec(),
        }
    }
}

/// What `key` signs for `msg` ([`Hasher::for_key`] over the whole message).
pub fn digest(key: &dyn KeyBackend, msg: &[u8]) -> Result<Vec<u8>> {
    let mut h = Hasher::for_key(key)?;
    h.update(msg);
    Ok(h.finish())
}

/// A private key that signs for a CA (or an OCSP responder). Implementations never expose
/// the private key.
pub trait KeyBackend: Send + Sync + fmt::Debug {
    /// The key's algorithm.
    fn algorithm(&self) -> KeyAlgorithm;
    /// SubjectPublicKeyInfo, DER.
    fn public_key_der(&self) -> &[u8];
    /// Signs what a [`Hasher`] of this key computed (a digest, or ML-DSA's μ); returns the
    /// signature value as it goes into a BIT STRING (PKCS#1 v1.5 bytes, a DER
    /// `ECDSA-Sig-Value`, or the 3,309-byte ML-DSA-65 signature).
    fn sign_digest(&self, digest: &[u8]) -> Result<Vec<u8>>;
    /// Where the key lives, for the record (`soft:FILE`, `pkcs11:LABEL`); never a secret.
    fn key_ref(&self) -> String;
}

/// Signs `msg` with `key` (hash, then [`KeyBackend::sign_digest`]).
pub fn sign(key: &dyn KeyBackend, msg: &[u8]) -> Result<Vec<u8>> {
    key.sign_digest(&digest(key, msg)?)
}

/// Verifies `sig` over `msg` with a SubjectPublicKeyInfo (DER) — for checking our own output
/// and proofs of possession. Public-key work only.
pub fn verify(spki_der: &[u8], msg: &[u8], sig: &[u8]) -> Result<bool> {
    let alg = KeyAlgorithm::of_spki(spki_der)?;
    let md = match alg {
        KeyAlgorithm::MlDsa65 => return crate::mldsa::verify(spki_der, msg, sig),
        KeyAlgorithm::EcP384 => MessageDigest::sha384(),
        KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => MessageDigest::sha256(),
    };
    let key = PKey::public_key_from_der(spki_der)?;
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

/// A software key; at rest an encrypted PKCS#8 file (PBES2 with scrypt and AES-256-CBC, see
/// [`net::keyfile`]). RSA and ECDSA keys are held by OpenSSL; ML-DSA-65 keys by
/// [`crate::mldsa`] (the system's OpenSSL 3.0 has no ML-DSA), stored in the seed-only PKCS#8
/// form of RFC 9881 §6.
pub struct SoftKey {
    material: Material,
    algorithm: KeyAlgorithm,
    spki: Vec<u8>,
    path: PathBuf,
}

/// The private key of a [`SoftKey`].
enum Material {
    OpenSsl(PKey<Private>),
    MlDsa(Box<crate::mldsa::SigningKey>),
}

impl Material {
    fn generate(algorithm: KeyAlgorithm) -> Result<Self> {
        Ok(match algorithm {
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
                let bits = algorithm.rsa_bits().ok_or_else(|| Error::key("RSA key size"))?;
                Self::OpenSsl(PKey::from_rsa(openssl::rsa::Rsa::generate(bits)?)?)
            }
            KeyAlgorithm::EcP384 => {
                let group = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::SECP384R1)?;
                Self::OpenSsl(PKey::from_ec_key(openssl::ec::EcKey::generate(&group)?)?)
            }
            KeyAlgorithm::MlDsa65 => Self::MlDsa(Box::new(crate::mldsa::SigningKey::generate()?)),
        })
    }

    /// Reads a PKCS#8 `PrivateKeyInfo`: ML-DSA-65 by its AlgorithmIdentifier, anything else
    /// through OpenSSL.
    fn from_pkcs8(der: &[u8]) -> Option<Self> {
        let info = pkcs8::PrivateKeyInfoRef::from_der(der).ok()?;
        if info.algorithm.oid == crate::mldsa::OID {
            return crate::mldsa::SigningKey::from_pkcs8(der).ok().map(|k| Self::MlDsa(Box::new(k)));
        }
        PKey::private_key_from_pkcs8(der).ok().map(Self::OpenSsl)
    }

    fn to_pkcs8(&self) -> Result<Secret> {
        match self {
            Self::OpenSsl(pkey) => Ok(Secret::new(pkey.private_key_to_pkcs8()?)),
            Self::MlDsa(key) => key.to_pkcs8(),
        }
    }

    fn spki(&self) -> Result<Vec<u8>> {
        match self {
            Self::OpenSsl(pkey) => Ok(pkey.public_key_to_der()?),
            Self::MlDsa(key) => crate::mldsa::spki_der(key.public_key()),
        }
    }
}

impl fmt::Debug for SoftKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key material.
        f.debug_struct("SoftKey").field("algorithm", &self.algorithm).field("path", &self.path).finish()
    }
}

impl SoftKey {
    /// Generates a key and writes it to `path` (which must not exist) as an encrypted PKCS#8
    /// file under `passphrase` (at least [`net::secret::MIN_PASSPHRASE`] bytes): scrypt
    /// (2^15, 8, 1) and AES-256-CBC, mode 0600, through a fresh temporary file, fsync and
    /// rename ([`net::keyfile::store`]; review finding M3).
    pub fn create(path: &Path, algorithm: KeyAlgorithm, passphrase: &Secret) -> Result<Self> {
        let passphrase = check_passphrase(passphrase)?;
        if path.exists() {
            return Err(Error::Conflict(format!("key file {} exists", path.display())));
        }
        let material = Material::generate(algorithm)?;
        // The plaintext PKCS#8 lives in a Secret so that it is zeroized when dropped.
        let plain = material.to_pkcs8()?;
        net::keyfile::store(path, plain.expose(), &passphrase)?;
        Self::from_material(material, path)
    }

    /// Loads an encrypted PKCS#8 key file written by [`SoftKey::create`] (or by
    /// [`net::keyfile::store`]). A wrong passphrase and a corrupt file give the same error.
    pub fn load(path: &Path, passphrase: &Secret) -> Result<Self> {
        let plain = net::keyfile::load(path, passphrase)?;
        let material = Material::from_pkcs8(&plain)
            .ok_or_else(|| Error::key(format!("key file {} holds no usable private key", path.display())))?;
        Self::from_material(material, path)
    }

    /// The key as an unencrypted PKCS#8 `PrivateKeyInfo`, in a [`Secret`] (zeroized on drop),
    /// to be sealed with [`net::keyfile`] — used for subject keys the CA generates on behalf
    /// of a party (network credentials), never for CA keys.
    pub fn pkcs8_secret(&self) -> Result<Secret> {
        self.material.to_pkcs8()
    }

    fn from_material(material: Material, path: &Path) -> Result<Self> {
        let spki = material.spki()?;
        let algorithm = KeyAlgorithm::of_spki(&spki).map_err(|e| Error::key(format!("unusable key: {e}")))?;
        Ok(Self { material, algorithm, spki, path: path.to_owned() })
    }

    /// An in-memory key (tests, subject keys made by a test harness).
    pub fn ephemeral(algorithm: KeyAlgorithm) -> Result<Self> {
        Self::from_material(Material::generate(algorithm)?, Path::new("(memory)"))
    }

    /// The OpenSSL key, for tests that act as a key holder (e.g. making a CSR with OpenSSL).
    /// An ML-DSA-65 key has none (OpenSSL 3.0 has no ML-DSA): use [`csr`].
    pub fn pkey(&self) -> Result<&PKey<Private>> {
        match &self.material {
            Material::OpenSsl(pkey) => Ok(pkey),
            Material::MlDsa(_) => Err(Error::key("an ML-DSA-65 key is not an OpenSSL key")),
        }
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
        let pkey = match &self.material {
            Material::MlDsa(key) => return key.sign_mu(digest),
            Material::OpenSsl(pkey) => pkey,
        };
        let mut ctx = PkeyCtx::new(pkey)?;
        ctx.sign_init()?;
        match self.algorithm {
            KeyAlgorithm::EcP384 => ctx.set_signature_md(openssl::md::Md::sha384())?,
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
                ctx.set_rsa_padding(Padding::PKCS1)?;
                ctx.set_signature_md(openssl::md::Md::sha256())?;
            }
            KeyAlgorithm::MlDsa65 => return Err(Error::key("an ML-DSA-65 key held by OpenSSL")),
        }
        let mut out = Vec::new();
        ctx.sign_to_vec(digest, &mut out)?;
        Ok(out)
    }
    fn key_ref(&self) -> String {
        format!("soft:{}", self.path.display())
    }
}

/// A PKCS#10 request (DER) for `key`'s public key with subject `subject`, self-signed by `key`
/// through [`KeyBackend`] (the proof of possession), in the algorithm
/// [`KeyAlgorithm::signature_algorithm`] names: what [`crate::authority::proof_of_possession`]
/// checks. Works for every algorithm, ML-DSA-65 included.
pub fn csr(key: &dyn KeyBackend, subject: x509_cert::name::Name) -> Result<Vec<u8>> {
    use x509_cert::builder::Builder;
    let mut builder = x509_cert::builder::RequestBuilder::new(subject)?;
    let info = builder.finalize(&BuilderKey(key))?;
    let req = builder.assemble(signature_bits(key, &info)?, &BuilderKey(key))?;
    Ok(req.to_der()?)
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

    #[test]
    fn ml_dsa_65_soft_keys_sign_verify_and_survive_a_reload() {
        assert_eq!(KeyAlgorithm::parse("ml-dsa-65").unwrap(), KeyAlgorithm::MlDsa65);
        assert_eq!(KeyAlgorithm::from_code(5).unwrap(), KeyAlgorithm::MlDsa65, "stored number 5, forever");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ml-dsa.p8");
        let pass = Secret::new(b"correct horse".to_vec());
        let k = SoftKey::create(&path, KeyAlgorithm::MlDsa65, &pass).unwrap();
        assert_eq!(k.algorithm(), KeyAlgorithm::MlDsa65);
        let sig = sign(&k, b"hello").unwrap();
        assert_eq!(sig.len(), crate::mldsa::SIGNATURE_LEN);
        assert!(verify(k.public_key_der(), b"hello", &sig).unwrap());
        assert!(!verify(k.public_key_der(), b"hellO", &sig).unwrap());
        let mut flipped = sig.clone();
        flipped[100] ^= 1;
        assert!(!verify(k.public_key_der(), b"hello", &flipped).unwrap());
        assert!(!verify(k.public_key_der(), b"hello", &sig[..3000]).unwrap(), "a short signature");
        // Hedged (FIPS 204 §3.4): a second signature differs, and verifies too.
        let again_sig = sign(&k, b"hello").unwrap();
        assert_ne!(again_sig, sig);
        assert!(verify(k.public_key_der(), b"hello", &again_sig).unwrap());
        // μ streams: the pieces give the μ of the whole, which is what gets signed.
        let mut h = Hasher::for_key(&k).unwrap();
        for piece in [&b"hel"[..], b"", b"lo"] {
            h.update(piece);
        }
        let mu = h.finish();
        assert_eq!(mu, digest(&k, b"hello").unwrap());
        assert_eq!(mu.len(), crate::mldsa::MU_LEN);
        assert!(verify(k.public_key_der(), b"hello", &k.sign_digest(&mu).unwrap()).unwrap());
        assert_eq!(k.sign_digest(&mu[..32]).unwrap_err().kind(), "key", "a SHA-256-sized digest is not μ");
        // The file: seed-only PKCS#8 (RFC 9881 §6), reloaded to the same key; no OpenSSL key.
        let again = SoftKey::load(&path, &pass).unwrap();
        assert_eq!(again.public_key_der(), k.public_key_der());
        assert!(verify(k.public_key_der(), b"x", &sign(&again, b"x").unwrap()).unwrap());
        let p8 = k.pkcs8_secret().unwrap();
        assert_eq!(p8.expose().len(), 54, "version, id-ml-dsa-65, [0] 32-byte seed");
        assert!(k.pkey().is_err());
        assert!(!format!("{k:?}").contains(&hex::encode(&p8.expose()[22..])), "Debug must not show the seed");
        // A CSR signed through the backend is a proof of possession the CA accepts.
        let csr = csr(&k, "CN=responder,C=JP".parse().unwrap()).unwrap();
        assert_eq!(crate::authority::proof_of_possession(&csr, "responder").unwrap(), k.public_key_der());
    }

    #[test]
    fn of_spki_recognises_ml_dsa_65_and_refuses_malformed_ones() {
        let k = SoftKey::ephemeral(KeyAlgorithm::MlDsa65).unwrap();
        let good = k.public_key_der().to_vec();
        assert_eq!(good.len(), 1974, "SEQUENCE {{ id-ml-dsa-65, BIT STRING of 1952 bytes }}");
        assert_eq!(KeyAlgorithm::of_spki(&good).unwrap(), KeyAlgorithm::MlDsa65);
        let spki = SubjectPublicKeyInfoOwned::from_der(&good).unwrap();
        let pk = spki.subject_public_key.as_bytes().unwrap().to_vec();
        let with = |alg: AlgorithmIdentifierOwned, key: BitString| {
            SubjectPublicKeyInfoOwned { algorithm: alg, subject_public_key: key }.to_der().unwrap()
        };
        let ml_dsa = |params: Option<der::Any>| AlgorithmIdentifierOwned { oid: crate::mldsa::OID, parameters: params };
        let refused = |der: &[u8], why: &str| {
            let e = KeyAlgorithm::of_spki(der).unwrap_err();
            assert_eq!(e.kind(), "bad_key", "{why}: {e}");
            assert!(!verify(der, b"m", &[0; 3309]).unwrap_or(false), "{why}");
        };
        refused(&with(ml_dsa(Some(der::asn1::Null.into())), BitString::from_bytes(&pk).unwrap()), "NULL parameters");
        refused(&with(ml_dsa(None), BitString::from_bytes(&pk[..1951]).unwrap()), "1951 bytes");
        refused(&with(ml_dsa(None), BitString::from_bytes(&[pk.clone(), vec![0]].concat()).unwrap()), "1953 bytes");
        refused(&with(ml_dsa(None), BitString::new(1, pk.clone()).unwrap()), "unused bits");
        let ml_dsa_44 = AlgorithmIdentifierOwned { oid: const_oid::db::fips204::ID_ML_DSA_44, parameters: None };
        refused(&with(ml_dsa_44, BitString::from_bytes(&pk[..1312]).unwrap()), "ML-DSA-44");
        refused(&good[..good.len() - 1], "truncated DER");
        // The hasher of a malformed key is refused too, rather than hashing under a wrong tr.
        assert!(Hasher::new(KeyAlgorithm::MlDsa65, &good[..100]).is_err());
    }
}
