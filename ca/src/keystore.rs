//! Where CA keys live: a directory of encrypted PKCS#8 files (scrypt, see [`net::keyfile`]),
//! or a PKCS#11 token. The passphrase (a [`Secret`]: zeroized, no `Debug` that shows it, at
//! least 12 bytes) and the PIN come from the environment or a file, are never logged and never
//! stored in the database; the database keeps only a key reference (`soft:FILE`,
//! `pkcs11:LABEL`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::key::{KeyAlgorithm, KeyBackend, SoftKey};
use crate::pkcs11::Pkcs11Store;
use net::secret::Secret;

/// A key store.
pub enum KeyStore {
    /// Encrypted PKCS#8 files in a directory.
    Soft {
        /// The directory.
        dir: PathBuf,
        /// The passphrase (never printed, zeroized on drop).
        passphrase: Secret,
    },
    /// A PKCS#11 token (SoftHSM2 in tests): keys generated on it, never extractable.
    Pkcs11(Pkcs11Store),
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Soft { dir, .. } => f.debug_struct("KeyStore::Soft").field("dir", dir).finish_non_exhaustive(),
            Self::Pkcs11(p) => write!(f, "KeyStore::{p:?}"),
        }
    }
}

impl KeyStore {
    /// A software key store; the passphrase must be at least
    /// [`net::secret::MIN_PASSPHRASE`] (12) bytes.
    pub fn soft(dir: &Path, passphrase: Secret) -> Result<Self> {
        let passphrase = passphrase.passphrase("key-store passphrase")?;
        Ok(Self::Soft { dir: dir.to_owned(), passphrase })
    }

    /// Whether this store can hold keys of `alg`: a PKCS#11 token here has no ML-DSA-65
    /// (SoftHSM 2.6, OpenSC 0.23), so ML-DSA-65 keys are software keys only. Checked before
    /// anything is stored.
    pub fn check_algorithm(&self, alg: KeyAlgorithm) -> Result<()> {
        match (self, alg) {
            (Self::Pkcs11(_), KeyAlgorithm::MlDsa65) => Err(Error::invalid(
                "key algorithm",
                "ml-dsa-65 keys are software keys only: no PKCS#11 token here has ML-DSA (SoftHSM 2.6, OpenSC 0.23)",
            )),
            _ => Ok(()),
        }
    }

    /// Generates a new key labelled `label` (a CA slug and generation).
    pub fn generate(&self, label: &str, alg: KeyAlgorithm) -> Result<Arc<dyn KeyBackend>> {
        Ok(match self {
            Self::Soft { dir, passphrase } => {
                Arc::new(SoftKey::create(&dir.join(format!("{label}.p8")), alg, passphrase)?)
            }
            Self::Pkcs11(p) => Arc::new(p.generate(label, alg)?),
        })
    }

    /// How a key is protected, for the operator (`sensitive, not extractable` on a token).
    pub fn protection(&self, key_ref: &str) -> Result<String> {
        match (self, key_ref.split_once(':')) {
            (Self::Soft { .. }, Some(("soft", path))) => Ok(format!("encrypted PKCS#8 file {path}")),
            (Self::Pkcs11(p), Some(("pkcs11", label))) => Ok(if p.is_protected(label)? {
                "on the PKCS#11 token: sensitive, not extractable".to_owned()
            } else {
                "on the PKCS#11 token but EXTRACTABLE".to_owned()
            }),
            _ => Err(Error::key(format!("key {key_ref} is not in this key store"))),
        }
    }

    /// The key labelled `label`, if this store holds one (a ceremony resumed after a crash
    /// finds the key it generated before).
    pub fn find(&self, label: &str) -> Result<Option<Arc<dyn KeyBackend>>> {
        match self {
            Self::Soft { dir, passphrase } => {
                let path = dir.join(format!("{label}.p8"));
                if path.exists() { Ok(Some(Arc::new(SoftKey::load(&path, passphrase)?))) } else { Ok(None) }
            }
            Self::Pkcs11(p) => {
                if p.exists(label)? {
                    Ok(Some(Arc::new(p.load(label)?)))
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// Loads the key a stored reference names.
    pub fn load(&self, key_ref: &str) -> Result<Arc<dyn KeyBackend>> {
        match (self, key_ref.split_once(':')) {
            (Self::Soft { passphrase, .. }, Some(("soft", path))) => {
                Ok(Arc::new(SoftKey::load(Path::new(path), passphrase)?))
            }
            (Self::Pkcs11(p), Some(("pkcs11", label))) => Ok(Arc::new(p.load(label)?)),
            _ => Err(Error::key(format!("key {key_ref} is not in this key store ({self:?})"))),
        }
    }
}
