//! A municipal clerk's own signing key: how a clerk authenticates to the CA service through the
//! window process they work at. The window's mutual-TLS credential names the window
//! (`urn:jpki:window:131016:W01`); each request the window makes for a clerk carries, in three
//! headers, the clerk's certificate, the time, and the clerk's ECDSA P-384 signature over
//! [`message`] — the window's party, method, path, time and SHA-384 of the body. The CA service
//! admits the request only if the certificate chains to the network CA, is valid and not on
//! its CRL, carries the clerk-signing extKeyUsage [`CLERK_SIGNING`] (its only EKU: the key
//! signs requests and nothing else), names a clerk (`urn:jpki:clerk:131016:C0001`) of the
//! window's own municipality, the time is within [`MAX_SKEW_SECS`] of the CA's clock, and the
//! signature verifies. A captured header set is useless from another window (the window's
//! party is signed) or for another request (the body is signed), and stale after five minutes.
//!
//! The key is issued by `jpki net issue clerk:LGCODE:ID --clerk-key` and kept in an encrypted
//! PKCS#8 file (passphrase from `JPKI_CLERK_PASSPHRASE`): the clerk's, not the window's.

use std::path::Path;
use std::sync::Arc;

use identity::party::{Party, PartyKind};
use ring::rand::SystemRandom;
use ring::signature::EcdsaKeyPair;
use rustls::pki_types::CertificateDer;

use crate::credential::{Trust, party_of, read_certs, with_ext};
use crate::error::{Error, Result};
use crate::secret::Secret;

/// The DER content octets of the clerk-signing extKeyUsage OID 1.2.392.200149.8.5.99.2 (this
/// project's private arc; `ca::hierarchy::CLERK_SIGNING`).
pub const CLERK_SIGNING: &[u8] = &[0x2a, 0x83, 0x08, 0x8c, 0x9b, 0x55, 0x08, 0x05, 0x63, 0x02];

/// Header with the clerk's certificate (DER, hex).
pub const HEADER_CERT: &str = identity::authz::CLERK_HEADER_CERT;
/// Header with the signing time (unix seconds).
pub const HEADER_TIME: &str = identity::authz::CLERK_HEADER_TIME;
/// Header with the signature (DER `Ecdsa-Sig-Value`, hex).
pub const HEADER_SIGNATURE: &str = identity::authz::CLERK_HEADER_SIGNATURE;
/// Largest accepted difference between the signing time and the verifier's clock.
pub const MAX_SKEW_SECS: i64 = 300;

/// The bytes a clerk signs for one request.
pub fn message(window: &Party, method: &str, path: &str, time: i64, body: &[u8]) -> Vec<u8> {
    let digest = ring::digest::digest(&ring::digest::SHA384, body);
    let mut m = b"jpki-clerk-request-v1\n".to_vec();
    for part in [window.uri().as_str(), method, path, &time.to_string(), &hex::encode(digest.as_ref())] {
        m.extend_from_slice(part.as_bytes());
        m.push(b'\n');
    }
    m
}

/// A clerk's signing key, loaded from `PREFIX.pem` + `PREFIX.key`.
pub struct ClerkKey {
    party: Party,
    cert: Vec<u8>,
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl std::fmt::Debug for ClerkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClerkKey").field("party", &self.party).finish()
    }
}

impl ClerkKey {
    /// Loads a clerk's key; its certificate must name a clerk.
    pub fn load(prefix: &Path, passphrase: &Secret) -> Result<Arc<Self>> {
        let chain = read_certs(&with_ext(prefix, "pem"))?;
        let cert = chain[0].to_vec();
        let party = party_of(&cert)?;
        if party.kind() != PartyKind::Clerk {
            return Err(Error::credential(prefix.display().to_string(), format!("names {party}, not a clerk")));
        }
        let (key, rng) = crate::notice_key::load_p384(prefix, passphrase, &cert)?;
        Ok(Arc::new(Self { party, cert, key, rng }))
    }

    /// The clerk.
    pub fn party(&self) -> &Party {
        &self.party
    }

    /// The three headers authenticating one request made at `window`.
    pub fn headers(
        &self,
        window: &Party,
        method: &str,
        path: &str,
        body: &[u8],
        now: i64,
    ) -> Result<[(&'static str, String); 3]> {
        let sig = self
            .key
            .sign(&self.rng, &message(window, method, path, now, body))
            .map_err(|e| Error::credential("clerk key", format!("signing failed: {e}")))?;
        Ok([
            (HEADER_CERT, hex::encode(&self.cert)),
            (HEADER_TIME, now.to_string()),
            (HEADER_SIGNATURE, hex::encode(sig.as_ref())),
        ])
    }
}

impl ClerkKey {
    /// The signing callback of `identity::client::window_call` for this clerk's requests at
    /// `window` (the window service's own party), signed at the clock's time.
    pub fn window_signer(
        self: &Arc<Self>,
        window: Party,
    ) -> impl Fn(&str, &str, &[u8]) -> std::result::Result<identity::client::SignedHeaders, String> + Send + Sync + use<>
    {
        let key = Arc::clone(self);
        move |method: &str, path: &str, body: &[u8]| {
            key.headers(&window, method, path, body, identity::http::now())
                .map(|h| h.to_vec())
                .map_err(|e| e.to_string())
        }
    }
}

/// Why a clerk's authentication was refused: a stable code for the wire and the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClerkRefusal {
    /// A header is missing or not hex / a number.
    #[error("clerk_missing: {0}")]
    Missing(String),
    /// The certificate is not a valid, unrevoked clerk key of the network CA.
    #[error("clerk_not_trusted: {0}")]
    NotTrusted(String),
    /// The signing time is too far from the verifier's clock.
    #[error("clerk_stale: signed at {at}, {skew} s from now")]
    Stale {
        /// Signing time.
        at: i64,
        /// Difference in seconds.
        skew: i64,
    },
    /// The clerk belongs to another municipality than the window.
    #[error("clerk_other_municipality: {clerk} does not work at {window}")]
    OtherMunicipality {
        /// The clerk.
        clerk: String,
        /// The window.
        window: String,
    },
    /// The signature does not verify.
    #[error("clerk_bad_signature")]
    BadSignature,
}

impl ClerkRefusal {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing(_) => "clerk_missing",
            Self::NotTrusted(_) => "clerk_not_trusted",
            Self::Stale { .. } => "clerk_stale",
            Self::OtherMunicipality { .. } => "clerk_other_municipality",
            Self::BadSignature => "clerk_bad_signature",
        }
    }
}

/// The three header values as received (`None` if absent).
#[derive(Debug, Clone, Copy, Default)]
pub struct ClerkHeaders<'a> {
    /// [`HEADER_CERT`].
    pub cert: Option<&'a str>,
    /// [`HEADER_TIME`].
    pub time: Option<&'a str>,
    /// [`HEADER_SIGNATURE`].
    pub signature: Option<&'a str>,
}

/// Authenticates the clerk of one request that `window` (from its verified TLS certificate)
/// made; returns the clerk. (A one-off [`ClerkVerifier`]; a server keeps one.)
pub fn verify(
    trust: &Trust,
    window: &Party,
    method: &str,
    path: &str,
    body: &[u8],
    h: ClerkHeaders<'_>,
    now: i64,
) -> std::result::Result<Party, ClerkRefusal> {
    ClerkVerifier::new(trust.clone()).verify(window, method, path, body, h, now)
}

/// Most clerk certificates a [`ClerkVerifier`] remembers before it starts afresh.
const MAX_ADMITTED: usize = 10_000;

/// A server's clerk verifier: it remembers the clerk certificates whose chain it has checked
/// (until they expire, or until the network CA or its CRL file changes), so a request costs
/// one signature verification.
#[derive(Debug)]
pub struct ClerkVerifier {
    trust: Trust,
    state: std::sync::Mutex<Admitted>,
}

#[derive(Debug, Default)]
struct Admitted {
    /// (modification time, length) of the CA file and the CRL file when the map was filled.
    stamp: Option<Vec<(std::time::SystemTime, u64)>>,
    /// Certificate DER → (clerk, notAfter).
    certs: std::collections::HashMap<Vec<u8>, (Party, i64)>,
}

impl ClerkVerifier {
    /// A verifier trusting `trust`.
    pub fn new(trust: Trust) -> Self {
        Self { trust, state: std::sync::Mutex::new(Admitted::default()) }
    }

    fn stamp(&self) -> Option<Vec<(std::time::SystemTime, u64)>> {
        let mut files = vec![self.trust.ca_file.clone()];
        files.extend(self.trust.crl_file.clone());
        files.iter().map(|f| std::fs::metadata(f).ok().and_then(|m| Some((m.modified().ok()?, m.len())))).collect()
    }

    /// The clerk named by `cert` if its chain, validity, revocation status and EKU are good.
    fn admit(&self, cert: &[u8], now: i64) -> std::result::Result<Party, ClerkRefusal> {
        let stamp = self.stamp();
        {
            let mut st = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if stamp.is_none() || st.stamp != stamp {
                st.certs.clear();
                st.stamp = stamp.clone();
            }
            if let Some((party, not_after)) = st.certs.get(cert)
                && now < *not_after
            {
                return Ok(party.clone());
            }
        }
        let clerk = party_of(cert).map_err(|e| ClerkRefusal::NotTrusted(e.to_string()))?;
        let der = CertificateDer::from(cert);
        crate::credential::verify_with_webpki(&der, &[], &self.trust, webpki::KeyUsage::required(CLERK_SIGNING))
            .map_err(|e| ClerkRefusal::NotTrusted(e.to_string()))?;
        let not_after = <x509_cert::Certificate as der::Decode>::from_der(cert)
            .map_err(|e| ClerkRefusal::NotTrusted(e.to_string()))?
            .tbs_certificate()
            .validity()
            .not_after
            .to_unix_duration()
            .as_secs() as i64;
        if stamp.is_some() {
            let mut st = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if st.stamp == stamp {
                if st.certs.len() >= MAX_ADMITTED {
                    st.certs.clear();
                }
                st.certs.insert(cert.to_vec(), (clerk.clone(), not_after));
            }
        }
        Ok(clerk)
    }

    /// Authenticates the clerk of one request that `window` (from its verified TLS
    /// certificate) made; returns the clerk.
    pub fn verify(
        &self,
        window: &Party,
        method: &str,
        path: &str,
        body: &[u8],
        h: ClerkHeaders<'_>,
        now: i64,
    ) -> std::result::Result<Party, ClerkRefusal> {
        fn need<'a>(v: Option<&'a str>, name: &str) -> std::result::Result<&'a str, ClerkRefusal> {
            v.ok_or_else(|| ClerkRefusal::Missing(format!("no {name} header")))
        }
        let cert = hex::decode(need(h.cert, HEADER_CERT)?)
            .map_err(|_| ClerkRefusal::Missing(format!("{HEADER_CERT} is not hex")))?;
        let at: i64 = need(h.time, HEADER_TIME)?
            .parse()
            .map_err(|_| ClerkRefusal::Missing(format!("{HEADER_TIME} is not a number")))?;
        let sig = hex::decode(need(h.signature, HEADER_SIGNATURE)?)
            .map_err(|_| ClerkRefusal::Missing(format!("{HEADER_SIGNATURE} is not hex")))?;
        let clerk = self.admit(&cert, now)?;
        let (Some((clerk_town, _)), Some((window_town, _))) = (clerk.station(), window.station()) else {
            return Err(ClerkRefusal::NotTrusted(format!("{clerk} is not a clerk, or {window} not a window")));
        };
        if clerk.kind() != PartyKind::Clerk || window.kind() != PartyKind::Window {
            return Err(ClerkRefusal::NotTrusted(format!("{clerk} is not a clerk, or {window} not a window")));
        }
        if clerk_town != window_town {
            return Err(ClerkRefusal::OtherMunicipality { clerk: clerk.to_string(), window: window.to_string() });
        }
        let skew = (now - at).abs();
        if skew > MAX_SKEW_SECS {
            return Err(ClerkRefusal::Stale { at, skew });
        }
        let der = CertificateDer::from(cert.as_slice());
        let ee = webpki::EndEntityCert::try_from(&der).map_err(|e| ClerkRefusal::NotTrusted(e.to_string()))?;
        ee.verify_signature(webpki::ring::ECDSA_P384_SHA384, &message(window, method, path, at, body), &sig)
            .map_err(|_| ClerkRefusal::BadSignature)?;
        Ok(clerk)
    }
}

/// The identity nodes' clerk check (`identity::authz::ClerkCheck`, for the window routes of
/// the municipality and national nodes) over this verifier.
impl identity::authz::ClerkCheck for ClerkVerifier {
    fn check(
        &self,
        window: &Party,
        method: &str,
        path: &str,
        body: &[u8],
        h: identity::authz::ClerkHeaderValues<'_>,
        now: i64,
    ) -> std::result::Result<Party, identity::authz::ClerkRefused> {
        let headers = ClerkHeaders { cert: h.cert, time: h.time, signature: h.signature };
        self.verify(window, method, path, body, headers, now)
            .map_err(|r| identity::authz::ClerkRefused { code: r.code(), detail: r.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clerk_signing_oid_bytes_are_1_2_392_200149_8_5_99_2() {
        let oid = x509_cert::der::oid::ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.99.2");
        assert_eq!(oid.as_bytes(), CLERK_SIGNING);
    }

    #[test]
    fn the_signed_message_binds_window_method_path_time_and_body() {
        let w: Party = "window:131016:W01".parse().unwrap_or_else(|e| panic!("{e}"));
        let other: Party = "window:131016:W02".parse().unwrap_or_else(|e| panic!("{e}"));
        let m = message(&w, "POST", "/v1/issue", 100, b"{}");
        assert_ne!(m, message(&other, "POST", "/v1/issue", 100, b"{}"));
        assert_ne!(m, message(&w, "GET", "/v1/issue", 100, b"{}"));
        assert_ne!(m, message(&w, "POST", "/v1/card/issuer-auth", 100, b"{}"));
        assert_ne!(m, message(&w, "POST", "/v1/issue", 101, b"{}"));
        assert_ne!(m, message(&w, "POST", "/v1/issue", 100, b"{ }"));
        assert!(String::from_utf8_lossy(&m).starts_with("jpki-clerk-request-v1\nurn:jpki:window:131016:W01\n"));
    }

    #[test]
    fn missing_or_malformed_headers_are_refused_before_any_crypto() {
        let trust = Trust { ca_file: "/nonexistent".into(), crl_file: None };
        let w: Party = "window:131016:W01".parse().unwrap_or_else(|e| panic!("{e}"));
        let r = verify(&trust, &w, "POST", "/", b"", ClerkHeaders::default(), 0);
        assert_eq!(r.map_err(|e| e.code()), Err("clerk_missing"));
        let h = ClerkHeaders { cert: Some("zz"), time: Some("1"), signature: Some("00") };
        assert_eq!(verify(&trust, &w, "POST", "/", b"", h, 0).map_err(|e| e.code()), Err("clerk_missing"));
    }
}
