//! CA keys on a PKCS#11 token through `cryptoki` (tested with Debian's SoftHSM2): key pairs are
//! generated on the token as sensitive, non-extractable objects and only ever used through
//! `C_Sign` — RSA as `CKM_RSA_PKCS` over a DigestInfo, ECDSA P-384 as `CKM_ECDSA` over the
//! digest, its raw `r‖s` converted to a DER `ECDSA-Sig-Value`. The user PIN is held only to log
//! in and is never printed. ML-DSA-65 keys are refused: SoftHSM 2.6 and OpenSC 0.23 have no
//! ML-DSA, so an ML-DSA generation's key is a software key ([`crate::key::SoftKey`]).

use std::fmt;
use std::path::Path;
use std::sync::Mutex;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use der::Encode;

use crate::error::{Error, Result};
use crate::key::{KeyAlgorithm, KeyBackend};

/// DigestInfo prefix for SHA-256 (RFC 8017 §9.2, note 1).
const SHA256_DIGEST_INFO: [u8; 19] =
    [0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20];

/// DER of the OID secp384r1 (1.3.132.0.34), the `CKA_EC_PARAMS` of a P-384 key.
const P384_PARAMS: [u8; 7] = [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

fn p11(what: &str, e: cryptoki::error::Error) -> Error {
    if matches!(e, cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::PinIncorrect, _)) {
        return Error::key(format!("PKCS#11 login failed: wrong user PIN (CKR_PIN_INCORRECT) while {what}"));
    }
    Error::key(format!("PKCS#11 {what}: {e}"))
}

/// A logged-in session on one token.
pub struct Pkcs11Store {
    session: std::sync::Arc<Mutex<Session>>,
    token: String,
    _ctx: Pkcs11,
}

impl fmt::Debug for Pkcs11Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Store").field("token", &self.token).finish_non_exhaustive()
    }
}

/// The first SoftHSM2 module found at Debian's paths.
pub fn softhsm_module() -> Option<std::path::PathBuf> {
    ["/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
}

impl Pkcs11Store {
    /// Loads `module`, finds the token labelled `token` and logs in as the user.
    pub fn open(module: &Path, token: &str, pin: &str) -> Result<Self> {
        let ctx = Pkcs11::new(module)
            .map_err(|e| Error::key(format!("cannot load PKCS#11 module {}: {e}", module.display())))?;
        ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)).map_err(|e| p11("initialising", e))?;
        let slot = ctx
            .get_slots_with_token()
            .map_err(|e| p11("listing slots", e))?
            .into_iter()
            .find(|s| ctx.get_token_info(*s).map(|i| i.label().trim_end() == token).unwrap_or(false))
            .ok_or_else(|| Error::key(format!("no PKCS#11 token labelled {token:?}")))?;
        let session = ctx.open_rw_session(slot).map_err(|e| p11("opening a session", e))?;
        session.login(UserType::User, Some(&AuthPin::new(pin.into()))).map_err(|e| p11("logging in", e))?;
        Ok(Self { session: std::sync::Arc::new(Mutex::new(session)), token: token.to_owned(), _ctx: ctx })
    }

    fn find(&self, s: &Session, class: ObjectClass, label: &str) -> Result<Option<ObjectHandle>> {
        let found = s
            .find_objects(&[Attribute::Class(class), Attribute::Label(label.as_bytes().to_vec())])
            .map_err(|e| p11("finding a key", e))?;
        Ok(found.first().copied())
    }

    /// Generates a key pair on the token, labelled `label` (refused if the label exists).
    pub fn generate(&self, label: &str, alg: KeyAlgorithm) -> Result<Pkcs11Key> {
        if alg == KeyAlgorithm::MlDsa65 {
            return Err(Error::invalid(
                "key algorithm",
                "ml-dsa-65 keys are software keys only: no PKCS#11 token here has ML-DSA (SoftHSM 2.6, OpenSC 0.23)",
            ));
        }
        {
            let s = self.session.lock().map_err(|_| Error::key("PKCS#11 session poisoned"))?;
            if self.find(&s, ObjectClass::PRIVATE_KEY, label)?.is_some() {
                return Err(Error::Conflict(format!("a key labelled {label} exists on token {}", self.token)));
            }
            let id = <sha2::Sha256 as sha2::Digest>::digest(label.as_bytes())[..16].to_vec();
            let common = |private: bool| {
                vec![
                    Attribute::Token(true),
                    Attribute::Label(label.as_bytes().to_vec()),
                    Attribute::Id(id.clone()),
                    Attribute::Private(private),
                ]
            };
            let mut public = common(false);
            public.push(Attribute::Verify(true));
            let mut private = common(true);
            private.extend([Attribute::Sensitive(true), Attribute::Extractable(false), Attribute::Sign(true)]);
            let mechanism = match alg.rsa_bits() {
                Some(bits) => {
                    public.push(Attribute::ModulusBits(u64::from(bits).into()));
                    public.push(Attribute::PublicExponent(vec![0x01, 0x00, 0x01]));
                    Mechanism::RsaPkcsKeyPairGen
                }
                // P-384 (ML-DSA-65 was refused above).
                None => {
                    public.push(Attribute::EcParams(P384_PARAMS.to_vec()));
                    Mechanism::EccKeyPairGen
                }
            };
            s.generate_key_pair(&mechanism, &public, &private).map_err(|e| p11("generating a key pair", e))?;
        }
        self.load(label)
    }

    /// The token's label.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Whether a private key labelled `label` is on the token.
    pub fn exists(&self, label: &str) -> Result<bool> {
        let s = self.session.lock().map_err(|_| Error::key("PKCS#11 session poisoned"))?;
        Ok(self.find(&s, ObjectClass::PRIVATE_KEY, label)?.is_some())
    }

    /// Loads the key pair labelled `label`.
    pub fn load(&self, label: &str) -> Result<Pkcs11Key> {
        let s = self.session.lock().map_err(|_| Error::key("PKCS#11 session poisoned"))?;
        let private = self
            .find(&s, ObjectClass::PRIVATE_KEY, label)?
            .ok_or_else(|| Error::key(format!("no private key {label} on token {}", self.token)))?;
        let public = self
            .find(&s, ObjectClass::PUBLIC_KEY, label)?
            .ok_or_else(|| Error::key(format!("no public key {label} on token {}", self.token)))?;
        let attrs = s
            .get_attributes(
                public,
                &[
                    AttributeType::KeyType,
                    AttributeType::Modulus,
                    AttributeType::PublicExponent,
                    AttributeType::EcPoint,
                ],
            )
            .map_err(|e| p11("reading the public key", e))?;
        let (mut kind, mut n, mut e, mut point) = (None, None, None, None);
        for a in attrs {
            match a {
                Attribute::KeyType(k) => kind = Some(k),
                Attribute::Modulus(v) => n = Some(v),
                Attribute::PublicExponent(v) => e = Some(v),
                Attribute::EcPoint(v) => point = Some(v),
                _ => {}
            }
        }
        let spki = match (kind, n, e, point) {
            (Some(k), Some(n), Some(e), _) if k == KeyType::RSA => {
                let rsa = openssl::rsa::Rsa::from_public_components(
                    openssl::bn::BigNum::from_slice(&n)?,
                    openssl::bn::BigNum::from_slice(&e)?,
                )?;
                openssl::pkey::PKey::from_rsa(rsa)?.public_key_to_der()?
            }
            (Some(k), _, _, Some(point)) if k == KeyType::EC => {
                // CKA_EC_POINT is a DER OCTET STRING around the SEC1 point.
                let sec1 = match <der::asn1::OctetString as der::Decode>::from_der(&point) {
                    Ok(o) => o.as_bytes().to_vec(),
                    Err(_) => point, // some tokens return the bare point
                };
                let pk = p384::PublicKey::from_sec1_bytes(&sec1).map_err(|e| Error::key(format!("EC point: {e}")))?;
                spki::EncodePublicKey::to_public_key_der(&pk).map_err(|e| Error::key(format!("SPKI: {e}")))?.to_der()?
            }
            _ => return Err(Error::key(format!("key {label} is neither RSA nor EC"))),
        };
        let algorithm = KeyAlgorithm::of_spki(&spki).map_err(|e| Error::key(format!("unusable key {label}: {e}")))?;
        Ok(Pkcs11Key { session: self.session.clone(), private, algorithm, spki, label: label.to_owned() })
    }

    /// Whether the private key labelled `label` is sensitive and not extractable.
    pub fn is_protected(&self, label: &str) -> Result<bool> {
        let s = self.session.lock().map_err(|_| Error::key("PKCS#11 session poisoned"))?;
        let k = self.find(&s, ObjectClass::PRIVATE_KEY, label)?.ok_or_else(|| Error::NotFound(label.to_owned()))?;
        let attrs = s
            .get_attributes(k, &[AttributeType::Sensitive, AttributeType::Extractable])
            .map_err(|e| p11("reading attributes", e))?;
        let (mut sensitive, mut extractable) = (false, true);
        for a in attrs {
            match a {
                Attribute::Sensitive(v) => sensitive = v,
                Attribute::Extractable(v) => extractable = v,
                _ => {}
            }
        }
        Ok(sensitive && !extractable)
    }
}

/// A private key on a token.
pub struct Pkcs11Key {
    session: std::sync::Arc<Mutex<Session>>,
    private: ObjectHandle,
    algorithm: KeyAlgorithm,
    spki: Vec<u8>,
    label: String,
}

impl fmt::Debug for Pkcs11Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Key").field("label", &self.label).field("algorithm", &self.algorithm).finish()
    }
}

impl KeyBackend for Pkcs11Key {
    fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }
    fn public_key_der(&self) -> &[u8] {
        &self.spki
    }
    fn sign_digest(&self, digest: &[u8]) -> Result<Vec<u8>> {
        let s = self.session.lock().map_err(|_| Error::key("PKCS#11 session poisoned"))?;
        match self.algorithm {
            KeyAlgorithm::EcP384 => {
                let raw = s.sign(&Mechanism::Ecdsa, self.private, digest).map_err(|e| p11("signing", e))?;
                let sig = p384::ecdsa::Signature::from_slice(&raw)
                    .map_err(|e| Error::key(format!("ECDSA signature: {e}")))?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
            // Never loaded: `load` builds RSA and EC keys only.
            KeyAlgorithm::MlDsa65 => Err(Error::key("ML-DSA-65 keys are not signed with through PKCS#11")),
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
                let mut info = SHA256_DIGEST_INFO.to_vec();
                info.extend_from_slice(digest);
                s.sign(&Mechanism::RsaPkcs, self.private, &info).map_err(|e| p11("signing", e))
            }
        }
    }
    fn key_ref(&self) -> String {
        format!("pkcs11:{}", self.label)
    }
}
