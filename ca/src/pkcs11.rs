//! PKCS#11 keys (placeholder while being written: every call fails).
use std::path::Path;

use crate::error::{Error, Result};
use crate::key::{KeyAlgorithm, KeyBackend};

/// A PKCS#11 token (not yet implemented).
#[derive(Debug)]
pub struct Pkcs11Store;
/// A key on a PKCS#11 token (not yet implemented).
#[derive(Debug)]
pub struct Pkcs11Key;

impl Pkcs11Store {
    /// Opens a token.
    pub fn open(_module: &Path, _token: &str, _pin: &str) -> Result<Self> {
        Err(Error::key("PKCS#11 not implemented yet"))
    }
    /// Generates a key.
    pub fn generate(&self, _label: &str, _alg: KeyAlgorithm) -> Result<Pkcs11Key> {
        Err(Error::key("PKCS#11 not implemented yet"))
    }
    /// Loads a key.
    pub fn load(&self, _label: &str) -> Result<Pkcs11Key> {
        Err(Error::key("PKCS#11 not implemented yet"))
    }
}

impl KeyBackend for Pkcs11Key {
    fn algorithm(&self) -> KeyAlgorithm {
        KeyAlgorithm::Rsa2048
    }
    fn public_key_der(&self) -> &[u8] {
        &[]
    }
    fn sign_digest(&self, _digest: &[u8]) -> Result<Vec<u8>> {
        Err(Error::key("PKCS#11 not implemented yet"))
    }
    fn key_ref(&self) -> String {
        String::new()
    }
}
