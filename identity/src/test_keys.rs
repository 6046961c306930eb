//! A TEST DOUBLE of the notice-key cryptography, for identity's own tests only (feature
//! `test-keys`, which identity's dev-dependencies enable; never in a production build).
//!
//! It is not a signature scheme: "signatures" are HMAC-SHA256 tags under a per-key secret
//! that the test network CA derives from its own secret, and "certificates" are text naming
//! the source and key id with a CA tag. Anyone holding the CA secret can forge anything.
//! What it does model faithfully is the part identity relies on: a key certificate is
//! admitted only if the network CA issued it for the municipality that presents it, keys
//! have ids, rotation is a new key, and `verify` only accepts keys admitted before.
//!
//! The real implementation is X.509 based, in the `net` crate: certificates issued by the
//! network CA to each municipality for its notice key, verified against that CA.
//!
//! ```text
//! key_id  := lower-case hex of SHA-256("jpki-test-key-id\0" ‖ source ‖ 0x00 ‖ label)[..20]
//! secret  := HMAC-SHA256(ca_secret, "jpki-test-notice-key\0" ‖ key_id)
//! cert    := "jpki-test-notice-key-v1\n" source "\n" key_id "\n" hex(HMAC-SHA256(ca_secret, that prefix))
//! sign(m) := HMAC-SHA256(secret, m)
//! ```

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::ids::LgCode;
use crate::notice_sig::{NoticeSigner, NoticeVerifier};

const CERT_MAGIC: &str = "jpki-test-notice-key-v1\n";

/// HMAC-SHA256 (RFC 2104) over sha2: enough for a test double, no extra crate.
fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    for p in parts {
        inner.update(p);
    }
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The test network CA: issues notice keys to municipalities and hands out verifiers that
/// admit only its own certificates.
#[derive(Debug, Clone)]
pub struct TestNetworkCa {
    secret: [u8; 32],
}

impl TestNetworkCa {
    /// A CA whose secret is derived from `seed` (two CAs with different seeds distrust each
    /// other's certificates).
    pub fn new(seed: &str) -> Self {
        let mut h = Sha256::new();
        h.update(b"jpki-test-network-ca\0");
        h.update(seed.as_bytes());
        Self { secret: h.finalize().into() }
    }

    fn key_secret(&self, key_id: &str) -> [u8; 32] {
        hmac(&self.secret, &[b"jpki-test-notice-key\0", key_id.as_bytes()])
    }

    fn cert_tag(&self, prefix: &str) -> String {
        hex::encode(hmac(&self.secret, &[prefix.as_bytes()]))
    }

    /// Issues the notice key `label` (e.g. `"2026"`, `"2027"` for a rotation) of `source`.
    pub fn issue(&self, source: &LgCode, label: &str) -> Arc<TestNoticeSigner> {
        let mut h = Sha256::new();
        h.update(b"jpki-test-key-id\0");
        h.update(source.as_str().as_bytes());
        h.update([0]);
        h.update(label.as_bytes());
        let key_id = hex::encode(&h.finalize()[..20]);
        let prefix = format!("{CERT_MAGIC}{source}\n{key_id}\n");
        let cert = format!("{prefix}{}", self.cert_tag(&prefix)).into_bytes();
        Arc::new(TestNoticeSigner { secret: self.key_secret(&key_id), key_id, cert })
    }

    /// A verifier trusting this CA, with no key admitted yet.
    pub fn verifier(&self) -> Arc<TestNoticeVerifier> {
        Arc::new(TestNoticeVerifier { ca: self.clone(), admitted: Mutex::new(HashSet::new()) })
    }
}

/// A notice key issued by a [`TestNetworkCa`].
#[derive(Debug)]
pub struct TestNoticeSigner {
    key_id: String,
    cert: Vec<u8>,
    secret: [u8; 32],
}

impl NoticeSigner for TestNoticeSigner {
    fn key_id(&self) -> &str {
        &self.key_id
    }
    fn key_cert(&self) -> &[u8] {
        &self.cert
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        Ok(hmac(&self.secret, &[message]).to_vec())
    }
}

/// A replica's verifier trusting one [`TestNetworkCa`]; it remembers admitted keys.
#[derive(Debug)]
pub struct TestNoticeVerifier {
    ca: TestNetworkCa,
    admitted: Mutex<HashSet<(String, String)>>,
}

impl TestNoticeVerifier {
    /// How many keys this verifier has admitted (re-admissions counted once).
    pub fn admitted(&self) -> usize {
        self.admitted.lock().map(|a| a.len()).unwrap_or(0)
    }
}

impl NoticeVerifier for TestNoticeVerifier {
    fn admit_key(&self, source: &LgCode, cert_der: &[u8]) -> Result<String, String> {
        let text = std::str::from_utf8(cert_der).map_err(|_| "not a test notice-key certificate".to_owned())?;
        let body = text.strip_prefix(CERT_MAGIC).ok_or_else(|| "not a test notice-key certificate".to_owned())?;
        let mut lines = body.split('\n');
        let (Some(named), Some(key_id), Some(tag), None) = (lines.next(), lines.next(), lines.next(), lines.next())
        else {
            return Err("malformed test notice-key certificate".into());
        };
        let prefix = format!("{CERT_MAGIC}{named}\n{key_id}\n");
        if self.ca.cert_tag(&prefix) != tag {
            return Err("certificate not issued by the network CA".into());
        }
        if named != source.as_str() {
            return Err(format!("certificate names municipality {named}, not {source}"));
        }
        self.admitted
            .lock()
            .map_err(|_| "verifier lock poisoned".to_owned())?
            .insert((source.to_string(), key_id.to_owned()));
        Ok(key_id.to_owned())
    }

    fn verify(&self, source: &LgCode, key_id: &str, message: &[u8], signature: &[u8]) -> Result<(), String> {
        let known = self
            .admitted
            .lock()
            .map_err(|_| "verifier lock poisoned".to_owned())?
            .contains(&(source.to_string(), key_id.to_owned()));
        if !known {
            return Err(format!("key {key_id} is not admitted for {source}"));
        }
        if hmac(&self.ca.key_secret(key_id), &[message]).as_slice() != signature {
            return Err("bad signature".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lg(s: &str) -> LgCode {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        let tag = hmac(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(hex::encode(tag), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn a_key_verifies_only_after_admission_and_only_for_its_source() {
        let ca = TestNetworkCa::new("t");
        let key = ca.issue(&lg("131016"), "2026");
        let v = ca.verifier();
        let sig = key.sign(b"m").unwrap_or_else(|e| panic!("{e}"));
        assert!(v.verify(&lg("131016"), key.key_id(), b"m", &sig).is_err(), "not admitted yet");
        assert!(v.admit_key(&lg("131041"), key.key_cert()).is_err_and(|e| e.contains("names municipality")));
        assert_eq!(v.admit_key(&lg("131016"), key.key_cert()).as_deref(), Ok(key.key_id()));
        assert!(v.verify(&lg("131016"), key.key_id(), b"m", &sig).is_ok());
        assert!(v.verify(&lg("131016"), key.key_id(), b"n", &sig).is_err());
        let rogue = TestNetworkCa::new("rogue").issue(&lg("131016"), "2026");
        assert!(v.admit_key(&lg("131016"), rogue.key_cert()).is_err_and(|e| e.contains("network CA")));
    }

    #[test]
    fn a_signed_notice_verifies_and_any_change_to_its_key_seq_hash_or_signature_does_not() {
        use crate::notice::{ChangeNotice, GENESIS, NoticeKind};
        use crate::notice_sig::{sign_notice, verify_notice};
        let ca = TestNetworkCa::new("t");
        let key = ca.issue(&lg("131016"), "2026");
        let v = ca.verifier();
        v.admit_key(&lg("131016"), key.key_cert()).unwrap_or_else(|e| panic!("{e}"));
        let body = crate::notice::tests::sample_body("12345678903", NoticeKind::Birth);
        let mut n = ChangeNotice::seal(lg("131016"), 1, GENESIS, body);
        sign_notice(key.as_ref(), &mut n).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(verify_notice(v.as_ref(), &n), Ok(()));
        let mut moved = n.clone();
        moved.key.seq = 2;
        assert!(verify_notice(v.as_ref(), &moved).is_err(), "a signature cannot move to another seq");
        let mut rehashed = n.clone();
        rehashed.hash[0] ^= 1;
        assert!(verify_notice(v.as_ref(), &rehashed).is_err());
        let mut flipped = n.clone();
        if let Some(s) = flipped.signature.as_mut() {
            s.signature[31] ^= 0x80;
        }
        assert!(verify_notice(v.as_ref(), &flipped).is_err());
        let mut unsigned = n;
        unsigned.signature = None;
        assert!(verify_notice(v.as_ref(), &unsigned).is_err());
    }
}
