//! Private keys at rest: PKCS#8 `EncryptedPrivateKeyInfo` (RFC 5958) in PEM, PBES2 with the
//! memory-hard scrypt KDF (N = 2^15, r = 8, p = 1: 32 MiB per guess) and AES-256-CBC, a fresh
//! 16-byte salt and IV per file. Files are written 0600 through a new, randomly named
//! temporary file (never following a planted symlink), fsynced, then renamed into place.

use std::io::Write;
use std::path::Path;

use der::pem::LineEnding;
use pkcs8::pkcs5::pbes2;
use pkcs8::{EncryptedPrivateKeyInfoRef, PrivateKeyInfoRef};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::secret::Secret;

/// PEM label of an encrypted key file.
pub const PEM_LABEL: &str = "ENCRYPTED PRIVATE KEY";

/// scrypt cost parameters of new key files: log2(N), r, p.
pub const SCRYPT: (u8, u32, u32) = (15, 8, 1);

/// Encrypts a PKCS#8 `PrivateKeyInfo` (DER) under `passphrase`; returns the PEM text.
pub fn seal(pkcs8_der: &[u8], passphrase: &Secret) -> Result<Zeroizing<String>> {
    let fail = |e: &dyn std::fmt::Display| Error::KeyFile { path: "(new)".into(), reason: e.to_string() };
    let info = PrivateKeyInfoRef::try_from(pkcs8_der).map_err(|e| fail(&e))?;
    let salt: [u8; 16] = rand::random();
    let iv: [u8; 16] = rand::random();
    let params = scrypt::Params::new(SCRYPT.0, SCRYPT.1, SCRYPT.2).map_err(|e| fail(&e))?;
    let scheme = pbes2::Parameters::generate_scrypt_aes256cbc(params, &salt, iv).map_err(|e| fail(&e))?;
    let doc = info.encrypt_with_params(scheme, passphrase.expose()).map_err(|e| fail(&e))?;
    let pem = doc.to_pem(PEM_LABEL, LineEnding::LF).map_err(|e| fail(&e))?;
    Ok(Zeroizing::new(pem.to_string()))
}

/// Decrypts an encrypted key file's PEM text; returns the PKCS#8 DER. `path` only names the
/// file in errors. A wrong passphrase and a corrupt file give the same error (no oracle).
pub fn open(pem: &str, passphrase: &Secret, path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let fail = |reason: &str| Error::KeyFile { path: path.display().to_string(), reason: reason.into() };
    let (label, der) = der::pem::decode_vec(pem.as_bytes()).map_err(|_| fail("not a PEM file"))?;
    if label != PEM_LABEL {
        return Err(fail(&format!("PEM label is {label:?}, expected {PEM_LABEL:?} (unencrypted keys are refused)")));
    }
    let info = EncryptedPrivateKeyInfoRef::try_from(der.as_slice()).map_err(|_| fail("not an encrypted PKCS#8 key"))?;
    let doc = info.decrypt(passphrase.expose()).map_err(|_| fail("wrong passphrase or corrupt file"))?;
    Ok(Zeroizing::new(doc.as_bytes().to_vec()))
}

/// Reads and decrypts the key file at `path`.
pub fn load(path: &Path, passphrase: &Secret) -> Result<Zeroizing<Vec<u8>>> {
    let pem = Zeroizing::new(std::fs::read_to_string(path).map_err(Error::io(format!("reading {}", path.display())))?);
    open(&pem, passphrase, path)
}

/// Encrypts `pkcs8_der` and writes it to `path` with mode 0600 (see [`write_private`]).
pub fn store(path: &Path, pkcs8_der: &[u8], passphrase: &Secret) -> Result<()> {
    let pem = seal(pkcs8_der, passphrase)?;
    write_private(path, pem.as_bytes())
}

/// Writes `bytes` to `path` durably with mode 0600: a new temporary file with a random name
/// in the same directory (`create_new`, so a planted file or symlink makes it fail), fsync,
/// rename over `path`, fsync the directory. The directory is created 0700 if missing.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(Error::io(format!("creating {}", dir.display())))?;
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::Io { context: format!("writing {}", path.display()), source: e }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ed25519 PKCS#8 v1 key (RFC 8410 §10.3 example), enough to exercise the envelope.
    const PKCS8: &str =
        "302e020100300506032b657004220420d4ee72dbf913584ad5b6d8f1f769f8ad3afe7c28cbf1d4fbe097a88f44755842";

    fn pass(s: &str) -> Secret {
        Secret::new(s.as_bytes().to_vec())
    }

    #[test]
    fn a_key_file_round_trips_and_uses_scrypt() -> Result<()> {
        let der = hex_decode(PKCS8);
        let dir = tempfile::tempdir().map_err(Error::io("tempdir"))?;
        let path = dir.path().join("sub").join("k.key");
        store(&path, &der, &pass("twelve bytes!"))?;
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).map_err(Error::io("stat"))?.permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let pem = std::fs::read_to_string(&path).map_err(Error::io("read"))?;
        assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
        // The KDF OID in the file is id-scrypt (1.3.6.1.4.1.11591.4.11).
        let (_, raw) = der::pem::decode_vec(pem.as_bytes()).map_err(|e| Error::credential("pem", e))?;
        assert!(raw.windows(11).any(|w| w == [0x06, 0x09, 0x2b, 0x06, 0x01, 0x04, 0x01, 0xda, 0x47, 0x04, 0x0b]));
        assert_eq!(load(&path, &pass("twelve bytes!"))?.as_slice(), der.as_slice());
        let wrong = load(&path, &pass("twelve bytes?")).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(wrong.contains("wrong passphrase or corrupt file"), "{wrong}");
        // Two files of the same key differ (fresh salt and IV).
        assert_ne!(seal(&der, &pass("twelve bytes!"))?, seal(&der, &pass("twelve bytes!"))?);
        Ok(())
    }

    #[test]
    fn unencrypted_corrupt_and_planted_files_are_refused() -> Result<()> {
        let dir = tempfile::tempdir().map_err(Error::io("tempdir"))?;
        let p = dir.path().join("plain.key");
        std::fs::write(&p, "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n")
            .map_err(Error::io("write"))?;
        let e = load(&p, &pass("twelve bytes!")).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("unencrypted keys are refused"), "{e}");
        std::fs::write(&p, "garbage").map_err(Error::io("write"))?;
        assert!(load(&p, &pass("twelve bytes!")).is_err());
        Ok(())
    }

    fn hex_decode(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).filter_map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
    }
}
