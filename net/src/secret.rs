//! Secrets (passphrases, PINs, keys) come only from the environment or from a file named by
//! the environment (`NAME` or `NAME_FILE`), never from argv. They are zeroized on drop, have
//! no `Debug` that shows them, and compare in constant time.

use std::path::Path;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};

/// The shortest passphrase accepted for a key file.
pub const MIN_PASSPHRASE: usize = 12;

/// A secret byte string: zeroized on drop, shown as `Secret(..)`, compared in constant time.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// Wraps bytes (taking ownership: the caller's copy is moved, not duplicated).
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The secret's bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The secret as text, if it is UTF-8.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// Constant-time equality with `other`.
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        self.0.as_slice().ct_eq(other).into()
    }

    /// Reads `name` from the environment, or the file named by `name_FILE` (one trailing
    /// newline removed). `Ok(None)` if neither is set.
    pub fn from_env_opt(name: &str) -> Result<Option<Self>> {
        if let Some(v) = std::env::var_os(name) {
            let v = v.into_string().map_err(|_| Error::Secret { name: name.into(), reason: "not UTF-8".into() })?;
            return Ok(Some(Self::new(v.into_bytes())));
        }
        let file_var = format!("{name}_FILE");
        match std::env::var_os(&file_var) {
            None => Ok(None),
            Some(path) => Self::from_file(Path::new(&path))
                .map(Some)
                .map_err(|e| Error::Secret { name: file_var, reason: e.to_string() }),
        }
    }

    /// As [`Secret::from_env_opt`], but missing is an error naming both variables.
    pub fn from_env(name: &str) -> Result<Self> {
        Self::from_env_opt(name)?
            .ok_or_else(|| Error::Secret { name: name.into(), reason: format!("set {name} or {name}_FILE") })
    }

    /// Reads a secret file (one trailing newline removed).
    pub fn from_file(path: &Path) -> Result<Self> {
        let mut bytes = std::fs::read(path).map_err(Error::io(format!("reading {}", path.display())))?;
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        Ok(Self::new(bytes))
    }

    /// Checks the secret is usable as a key-file passphrase (at least [`MIN_PASSPHRASE`] bytes).
    pub fn passphrase(self, name: &str) -> Result<Self> {
        if self.0.len() < MIN_PASSPHRASE {
            return Err(Error::Secret {
                name: name.into(),
                reason: format!("a passphrase must be at least {MIN_PASSPHRASE} bytes"),
            });
        }
        Ok(self)
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_hidden_compared_in_constant_time_and_checked_for_length() {
        let s = Secret::new(b"correct horse battery".to_vec());
        assert_eq!(format!("{s:?}"), "Secret(..)");
        assert!(s.ct_eq(b"correct horse battery"));
        assert!(!s.ct_eq(b"correct horse batterY"));
        assert!(!s.ct_eq(b"short"));
        assert!(s.clone().passphrase("P").is_ok());
        let e = Secret::new(b"short".to_vec()).passphrase("JPKI_X").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("JPKI_X") && e.contains("12") && !e.contains("short"), "{e}");
    }

    #[test]
    fn a_secret_file_loses_one_trailing_newline() -> Result<()> {
        let dir = tempfile::tempdir().map_err(Error::io("tempdir"))?;
        let p = dir.path().join("pass");
        std::fs::write(&p, b"line one\n\n").map_err(Error::io("write"))?;
        assert_eq!(Secret::from_file(&p)?.expose(), b"line one\n");
        Ok(())
    }
}
