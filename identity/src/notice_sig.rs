//! Notice signatures: every change notice is signed by its municipality's notice key when it
//! is committed, and every replica tier verifies the signature (and the chain) before it
//! applies the notice. The frozen canonical encoding v1 and the hash chain of [`crate::notice`]
//! are unchanged; the signature is a versioned envelope around the chain hash.
//!
//! ```text
//! signed message v1 := "jpki-notice-signature-v1" 0x00
//!                      str(source) u64(seq) hash            -- hash: the notice's 32-byte chain hash
//! str(x) := u32 big-endian byte length ‖ UTF-8 bytes (as in encoding v1);  u64 := big-endian
//!
//! envelope (JSON, on the wire and per notice row):
//!   "signature": { "version": 1,                       -- SIGNATURE_VERSION; a new layout gets 2
//!                  "key_id": "<lower-case hex>",        -- subject key identifier of the key's certificate
//!                  "signature": "<base64 (standard, padded)>" }
//! ```
//!
//! Signing the chain hash covers the whole encoding and, through `prev_hash`, the history
//! before it; source and seq are repeated in the message so a signature can never be moved
//! to another notice, and the domain string keeps notice keys from signing anything that
//! could be mistaken for another protocol's message.
//!
//! Keys: each municipality has notice keys certified by the network CA; a notice names its
//! key by key id. Rotation is installing a new key (a new certificate, a new key id): old
//! notices keep the old key id and stay verifiable, because key certificates are never
//! deleted (`notice_key` is append-only at every tier). The cryptography is not here: the
//! identity crate depends on no PKI or signature crate. [`NoticeSigner`] and
//! [`NoticeVerifier`] are implemented by the `net` crate (X.509 certificates issued by the
//! network CA); `crate::test_keys` (feature `test-keys`) is a test double.

#![forbid(clippy::disallowed_methods)]

use serde::{Deserialize, Serialize};

use crate::ids::LgCode;
use crate::notice::{ChangeNotice, Hash, NoticeRef};

/// Version of the signature envelope (and of the signed message layout) written by this code.
pub const SIGNATURE_VERSION: u8 = 1;

/// Domain separation prefix of the signed message v1.
pub const SIGNATURE_DOMAIN: &[u8] = b"jpki-notice-signature-v1\0";

/// Longest key id accepted (hex characters): bounds hostile input.
pub const MAX_KEY_ID: usize = 128;

/// Longest signature accepted (bytes): well above RSA-4096 (512) and DER ECDSA P-521 (139).
pub const MAX_SIGNATURE: usize = 1024;

/// Longest key certificate accepted (DER bytes).
pub const MAX_KEY_CERT: usize = 16 * 1024;

/// Domain-separated message a notice key signs:
/// `b"jpki-notice-signature-v1\0" ‖ str(source) ‖ u64 seq BE ‖ hash (32 bytes)`.
pub fn signed_message(key: &NoticeRef, hash: &Hash) -> Vec<u8> {
    let source = key.source.as_str().as_bytes();
    let mut m = Vec::with_capacity(SIGNATURE_DOMAIN.len() + 4 + source.len() + 8 + hash.len());
    m.extend_from_slice(SIGNATURE_DOMAIN);
    // An LgCode is six ASCII digits: its length always fits u32.
    m.extend_from_slice(&u32::try_from(source.len()).unwrap_or(u32::MAX).to_be_bytes());
    m.extend_from_slice(source);
    m.extend_from_slice(&key.seq.to_be_bytes());
    m.extend_from_slice(hash);
    m
}

/// The versioned envelope: version 1, the key id (lower-case hex of the signing
/// certificate's subject key identifier), the signature bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NoticeSignature {
    /// [`SIGNATURE_VERSION`].
    pub version: u8,
    /// Lower-case hex of the subject key identifier of the signing key's certificate.
    pub key_id: String,
    /// The signature over [`signed_message`] (base64 on the wire).
    #[serde(with = "b64")]
    #[schema(value_type = String, content_encoding = "base64")]
    pub signature: Vec<u8>,
}

/// One notice-key certificate of a source, as `GET /v1/sources/{source}/keys` serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NoticeKeyCert {
    /// The key id the certificate carries (lower-case hex subject key identifier).
    pub key_id: String,
    /// DER of the certificate (base64 on the wire).
    #[serde(with = "b64")]
    #[schema(value_type = String, content_encoding = "base64")]
    pub cert: Vec<u8>,
}

/// A municipality's current notice key (an HSM, a soft key or a test double).
pub trait NoticeSigner: Send + Sync + std::fmt::Debug {
    /// Lower-case hex of the subject key identifier of [`Self::key_cert`].
    fn key_id(&self) -> &str;
    /// DER of the certificate of this key (served to replicas).
    fn key_cert(&self) -> &[u8];
    /// Signs `message` (a [`signed_message`]).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String>;
}

/// A replica's check of notice keys and signatures.
pub trait NoticeVerifier: Send + Sync + std::fmt::Debug {
    /// Checks a notice-key certificate for `source` (chain to the network CA, names that
    /// municipality, notice-signing use) and returns its key id. Called once per certificate
    /// a replica meets; the replica stores admitted certificates.
    ///
    /// It is also called again for a stored certificate before the first signature of a
    /// batch made with it is verified (a restarted replica has stored certificates but a
    /// fresh verifier), so it must be idempotent; an implementation may keep admitted keys
    /// in memory for [`Self::verify`].
    fn admit_key(&self, source: &LgCode, cert_der: &[u8]) -> Result<String, String>;
    /// Verifies `signature` over `message` by an admitted key of `source`.
    fn verify(&self, source: &LgCode, key_id: &str, message: &[u8], signature: &[u8]) -> Result<(), String>;
}

/// Checks that `key_id` is a well-formed key id: 1–[`MAX_KEY_ID`] lower-case hex characters.
pub fn check_key_id(key_id: &str) -> Result<(), String> {
    if key_id.is_empty() || key_id.len() > MAX_KEY_ID {
        return Err(format!("key id of {} characters (want 1–{MAX_KEY_ID})", key_id.len()));
    }
    if !key_id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(format!("key id {key_id:?} is not lower-case hex"));
    }
    Ok(())
}

/// The envelope of `n` if it is one this code verifies (present, version 1, well-formed key
/// id, bounded signature); `Err` says why not. Pure.
pub fn envelope(n: &ChangeNotice) -> Result<&NoticeSignature, String> {
    let s = n.signature.as_ref().ok_or_else(|| "notice is not signed".to_owned())?;
    if s.version != SIGNATURE_VERSION {
        return Err(format!("unknown signature version {} (want {SIGNATURE_VERSION})", s.version));
    }
    check_key_id(&s.key_id)?;
    if s.signature.is_empty() || s.signature.len() > MAX_SIGNATURE {
        return Err(format!("signature of {} bytes (want 1–{MAX_SIGNATURE})", s.signature.len()));
    }
    Ok(s)
}

/// Signs a sealed notice in place with `signer` (envelope version 1).
pub fn sign_notice(signer: &dyn NoticeSigner, n: &mut ChangeNotice) -> Result<(), String> {
    let signature = signer.sign(&signed_message(&n.key, &n.hash))?;
    n.signature = Some(NoticeSignature { version: SIGNATURE_VERSION, key_id: signer.key_id().to_owned(), signature });
    Ok(())
}

/// Verifies the envelope and signature of `n` with `verifier`; the caller has made sure the
/// key is admitted for `n`'s source. `Err` says why the notice must not be applied.
pub fn verify_notice(verifier: &dyn NoticeVerifier, n: &ChangeNotice) -> Result<(), String> {
    let s = envelope(n)?;
    verifier
        .verify(&n.key.source, &s.key_id, &signed_message(&n.key, &n.hash), &s.signature)
        .map_err(|e| format!("key {} does not verify it: {e}", s.key_id))
}

/// Base64 (standard alphabet, padded) for byte fields in JSON.
mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(b))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        STANDARD.decode(s.as_bytes()).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notice::{GENESIS, NoticeKind};

    fn notice() -> ChangeNotice {
        let body = crate::notice::tests::sample_body("12345678903", NoticeKind::Birth);
        ChangeNotice::seal("131016".parse().unwrap_or_else(|e| panic!("{e}")), 7, GENESIS, body)
    }

    #[test]
    fn the_signed_message_layout_is_pinned() {
        let n = notice();
        let m = signed_message(&n.key, &n.hash);
        let mut want = b"jpki-notice-signature-v1\0".to_vec();
        want.extend_from_slice(&[0, 0, 0, 6]);
        want.extend_from_slice(b"131016");
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 7]);
        want.extend_from_slice(&n.hash);
        assert_eq!(m, want);
    }

    #[test]
    fn the_envelope_is_checked_before_any_cryptography() {
        let mut n = notice();
        assert_eq!(envelope(&n).err().as_deref(), Some("notice is not signed"));
        n.signature = Some(NoticeSignature { version: 2, key_id: "ab".into(), signature: vec![1] });
        assert!(envelope(&n).is_err_and(|e| e.contains("version 2")));
        n.signature = Some(NoticeSignature { version: 1, key_id: "AB".into(), signature: vec![1] });
        assert!(envelope(&n).is_err_and(|e| e.contains("lower-case hex")));
        n.signature = Some(NoticeSignature { version: 1, key_id: "ab".into(), signature: vec![] });
        assert!(envelope(&n).is_err());
        n.signature = Some(NoticeSignature { version: 1, key_id: "ab".into(), signature: vec![0; MAX_SIGNATURE + 1] });
        assert!(envelope(&n).is_err());
        n.signature = Some(NoticeSignature { version: 1, key_id: "ab".into(), signature: vec![1] });
        assert!(envelope(&n).is_ok());
    }

    #[test]
    fn the_envelope_is_omitted_when_absent_and_round_trips_as_base64() {
        let mut n = notice();
        let json = serde_json::to_value(&n).unwrap_or_else(|e| panic!("{e}"));
        assert!(json.get("signature").is_none());
        n.signature = Some(NoticeSignature { version: 1, key_id: "0a1b".into(), signature: vec![0xff, 0, 1] });
        let json = serde_json::to_value(&n).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(json["signature"], serde_json::json!({"version": 1, "key_id": "0a1b", "signature": "/wAB"}));
        let text = serde_json::to_string(&json).unwrap_or_else(|e| panic!("{e}"));
        let back: ChangeNotice = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, n);
        // The chain hash does not cover the envelope: encoding v1 is unchanged.
        assert_eq!(back.encoding(), notice().encoding());
    }
}
