//! The municipality node's check of a kiosk's card ([`identity::kiosk::KioskCheck`]), in this
//! order, each refusal with its stable code and a message for the resident:
//!
//! 1. the certificate parses and is a JPKI user-authentication certificate of the production
//!    hierarchy (a test-hierarchy certificate: `certificate_test`; another kind:
//!    `certificate_invalid`), valid now (`certificate_expired`);
//! 2. the card's signature over the message verifies with its key (`bad_signature`);
//! 3. a path to the pinned production authentication root validates now, with the status of
//!    every certificate of the path from OCSP at **this network's validator** (whatever URL a
//!    certificate names, only the configured validator is asked): revoked is
//!    `certificate_revoked`, anything else `certificate_invalid`; a validator that does not
//!    answer, or answers with an OCSP error (`unauthorized`: it has no responder for the card's
//!    issuing CA yet), [`identity::kiosk::UNAVAILABLE`] — the distinction
//!    [`validator::verify::Verdict::Unavailable`] makes for every online check;
//! 4. the CA service (`POST /v1/kiosk/holder`, with the node's own credential) names the
//!    resident it issued the certificate to (`certificate_unknown` if it issued no such
//!    authentication certificate).

use std::cell::RefCell;
use std::time::Duration;

use base64::Engine as _;
use der::Decode;
use identity::kiosk::{BoxFuture, Holder, KioskCheck, KioskRefused, Presented, UNAVAILABLE};
use validator::verify::{Input, Revocation, Verdict};
use x509_cert::ext::pkix::CertificatePolicies;

/// The check, as `jpki serve municipality` configures it.
#[derive(Debug, Clone)]
pub struct CardCheck {
    anchors: Vec<Vec<u8>>,
    intermediates: Vec<Vec<u8>>,
    validator: String,
    ocsp: reqwest::Client,
    ca: reqwest::Client,
    ca_url: String,
}

impl CardCheck {
    /// A check anchored at `anchors` (the production user-authentication root, DER), with
    /// `intermediates` to complete paths, asking the validator at `validator`
    /// (`http://HOST:PORT`, its OCSP at `/ocsp` and CRLs under it) and the CA service at
    /// `ca_url` through `ca` (a mutual-TLS client with the node's credential, pinned to the CA's
    /// party).
    pub fn new(
        anchors: Vec<Vec<u8>>,
        intermediates: Vec<Vec<u8>>,
        validator: &str,
        ca: reqwest::Client,
        ca_url: &str,
    ) -> Result<Self, String> {
        if anchors.is_empty() {
            return Err("no authentication root to anchor kiosk cards at".into());
        }
        for c in anchors.iter().chain(&intermediates) {
            if x509_cert::Certificate::from_der(c).is_err() {
                return Err("an anchor or intermediate is not a certificate (DER or PEM)".into());
            }
        }
        for a in &anchors {
            if test_hierarchy(a) {
                return Err("a test-hierarchy root cannot anchor kiosk cards".into());
            }
        }
        if !validator.starts_with("http://") && !validator.starts_with("https://") {
            return Err(format!("validator {validator:?}: expected http://HOST:PORT"));
        }
        let ocsp = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            anchors,
            intermediates,
            validator: validator.trim_end_matches('/').to_owned(),
            ocsp,
            ca,
            ca_url: ca_url.trim_end_matches('/').to_owned(),
        })
    }
}

fn refused(code: &'static str, message: &str) -> KioskRefused {
    KioskRefused::new(code, message)
}

fn unavailable() -> KioskRefused {
    refused(UNAVAILABLE, "ただいま証明書を確認できません。しばらくしてからやり直してください。")
}

/// The certificate's policy OIDs (empty if none or unparsable).
fn policies(c: &x509_cert::Certificate) -> Vec<der::oid::ObjectIdentifier> {
    match c.tbs_certificate().get_extension::<CertificatePolicies>() {
        Ok(Some((_, p))) => p.0.iter().map(|i| i.policy_identifier).collect(),
        _ => Vec::new(),
    }
}

/// Whether a certificate belongs to the test hierarchy: a test policy, or an issuer or subject
/// of `O=JPKI-TEST`.
fn test_hierarchy(der: &[u8]) -> bool {
    let Ok(c) = x509_cert::Certificate::from_der(der) else { return false };
    let test = [ca::hierarchy::POLICY_TEST_AUTHENTICATION, ca::hierarchy::POLICY_TEST_SIGNATURE];
    policies(&c).iter().any(|p| test.contains(p))
        || [c.tbs_certificate().issuer(), c.tbs_certificate().subject()]
            .iter()
            .any(|n| n.to_string().contains("O=JPKI-TEST"))
}

/// The pre-checks that need no network: kind, hierarchy, validity, signature.
fn local_checks(p: &Presented<'_>) -> Result<(), KioskRefused> {
    let invalid = || refused("certificate_invalid", "カードの利用者証明用電子証明書を確認できませんでした。");
    let c = x509_cert::Certificate::from_der(p.certificate).map_err(|_| invalid())?;
    if test_hierarchy(p.certificate) {
        return Err(refused("certificate_test", "テスト用の証明書では交付できません。"));
    }
    if !policies(&c).contains(&ca::hierarchy::POLICY_AUTHENTICATION) {
        return Err(invalid());
    }
    let v = c.tbs_certificate().validity();
    let (nb, na) = (v.not_before.to_unix_duration().as_secs(), v.not_after.to_unix_duration().as_secs());
    let now = u64::try_from(p.now).unwrap_or(0);
    if now > na || now < nb {
        return Err(refused(
            "certificate_expired",
            "利用者証明用電子証明書の有効期限が切れています。お住まいの市区町村の窓口で更新してください。",
        ));
    }
    match ca::kiosk::verify_card_signature(p.certificate, p.message, p.signature) {
        Ok(true) => Ok(()),
        _ => Err(refused("bad_signature", "カードの署名を確認できませんでした。最初からやり直してください。")),
    }
}

/// Where the path validator's fetches go while it runs on this thread: the configured
/// validator (whatever host a certificate names), with the node's runtime to send them.
struct FetchTo {
    base: String,
    client: reqwest::Client,
    handle: tokio::runtime::Handle,
}

thread_local! {
    static FETCH_TO: RefCell<Option<FetchTo>> = const { RefCell::new(None) };
}

/// The path of `url` (`/ocsp`, `/crl/…`), the host dropped.
fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map_or_else(|| "/".to_owned(), |i| rest[i..].to_owned())
}

/// [`validator::verify::Fetch`]: sends the request to the configured validator (see
/// [`FetchTo`]). No answer (a transport error, a non-2xx status) is `None`, logged with the
/// path asked (never the certificate); what an answer says (an OCSP error response included)
/// is [`validator::verify`]'s to judge.
fn fetch(url: &str, body: Option<&[u8]>) -> Option<Vec<u8>> {
    FETCH_TO.with(|slot| {
        let mut slot = slot.borrow_mut();
        let to = slot.as_mut()?;
        let path = path_of(url);
        let target = format!("{}{path}", to.base);
        let client = to.client.clone();
        let got = to.handle.block_on(async move {
            let r = match body {
                Some(b) => {
                    client
                        .post(&target)
                        .header("content-type", "application/ocsp-request")
                        .body(b.to_vec())
                        .send()
                        .await
                }
                None => client.get(&target).send().await,
            }
            .map_err(|e| format!("no answer: {e}"))?;
            let status = r.status();
            let bytes = r.bytes().await.map_err(|e| format!("status {status}, body unreadable: {e}"))?;
            tracing::debug!(status = status.as_u16(), len = bytes.len(), "kiosk check: validator answered");
            if !status.is_success() {
                return Err(format!("status {status}"));
            }
            Ok(bytes.to_vec())
        });
        match got {
            Ok(der) => Some(der),
            Err(why) => {
                tracing::warn!(path = %path, error = %why, "the validator did not answer for a kiosk card");
                None
            }
        }
    })
}

impl CardCheck {
    /// Path validation with OCSP at the validator, on a blocking thread.
    async fn path(&self, leaf: &[u8], now: i64) -> Result<(), KioskRefused> {
        let input = Input::new(
            leaf.to_vec(),
            self.anchors.clone(),
            self.intermediates.clone(),
            u64::try_from(now).unwrap_or(0),
            Revocation::Online(fetch),
        );
        // anyPolicy here: the leaf's authentication policy is checked before (local_checks), and
        // an initial policy set would also bind the OCSP responders' and CRL issuers' paths.
        let to = FetchTo {
            base: self.validator.clone(),
            client: self.ocsp.clone(),
            handle: tokio::runtime::Handle::current(),
        };
        let verdict = tokio::task::spawn_blocking(move || {
            FETCH_TO.with(|s| *s.borrow_mut() = Some(to));
            let v = validator::verify::verify(&input);
            FETCH_TO.with(|s| s.borrow_mut().take());
            v
        })
        .await
        .map_err(|_| unavailable())?;
        match verdict {
            Ok(Verdict::Valid { .. }) => Ok(()),
            Ok(Verdict::Invalid { reason }) if reason.contains("Revoked") => Err(refused(
                "certificate_revoked",
                "この利用者証明用電子証明書は失効しています。お住まいの市区町村の窓口にお問い合わせください。",
            )),
            Ok(Verdict::Unavailable { reason, ocsp_status }) => {
                // The certificate names the URL; the request went to the configured validator.
                tracing::warn!(
                    reason = %reason,
                    ocsp_status = %ocsp_status.map_or("-", |s| s.name()),
                    "the validator did not answer a kiosk card's status"
                );
                Err(unavailable())
            }
            Ok(Verdict::Invalid { reason }) => {
                tracing::warn!(reason = %reason, "a kiosk card's certificate did not validate");
                Err(refused("certificate_invalid", "カードの利用者証明用電子証明書を確認できませんでした。"))
            }
            Err(e) => {
                tracing::warn!(error = %e, "a kiosk card's certificate could not be checked");
                Err(refused("certificate_invalid", "カードの利用者証明用電子証明書を確認できませんでした。"))
            }
        }
    }

    /// `POST /v1/kiosk/holder` at the CA service.
    async fn holder(&self, p: &Presented<'_>) -> Result<Holder, KioskRefused> {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let body = serde_json::json!({
            "certificate": b64(p.certificate), "message": b64(p.message), "signature": b64(p.signature),
        });
        let r = self.ca.post(format!("{}/v1/kiosk/holder", self.ca_url)).json(&body).send().await.map_err(|e| {
            tracing::warn!(error = %e, "the CA service did not answer a kiosk holder request");
            unavailable()
        })?;
        let status = r.status();
        let bytes = r.bytes().await.map_err(|_| unavailable())?;
        if status.is_success() {
            let a: ca::service::KioskHolderAnswer = serde_json::from_slice(&bytes).map_err(|_| unavailable())?;
            let resident_code = a.resident_code.parse().map_err(|_| unavailable())?;
            return Ok(Holder { resident_code, serial: a.serial });
        }
        let code = serde_json::from_slice::<ca::service::ErrorBody>(&bytes).map(|e| e.error).unwrap_or_default();
        tracing::warn!(status = status.as_u16(), reason = %code, "the CA service refused a kiosk holder request");
        match (status.as_u16(), code.as_str()) {
            (403, "certificate_unknown") => Err(refused(
                "certificate_unknown",
                "このカードの証明書の発行記録がありません。お住まいの市区町村の窓口にお問い合わせください。",
            )),
            (403, "not_resident_here") => Err(refused(
                "not_resident_here",
                "この市区町村に住民登録がないため交付できません。住所地の市区町村を選んでください。",
            )),
            (403, "bad_signature") => {
                Err(refused("bad_signature", "カードの署名を確認できませんでした。最初からやり直してください。"))
            }
            (403, _) => Err(refused("certificate_invalid", "カードの利用者証明用電子証明書を確認できませんでした。")),
            _ => Err(unavailable()),
        }
    }
}

impl KioskCheck for CardCheck {
    fn check<'a>(&'a self, p: Presented<'a>) -> BoxFuture<'a, Result<Holder, KioskRefused>> {
        Box::pin(async move {
            local_checks(&p)?;
            self.path(p.certificate, p.now).await?;
            self.holder(&p).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_path_of_a_fetch_is_kept() {
        assert_eq!(path_of("http://evil.example:80/ocsp"), "/ocsp");
        assert_eq!(path_of("http://127.0.0.1:9/crl/auth-13/g1/0.crl"), "/crl/auth-13/g1/0.crl");
        assert_eq!(path_of("http://host"), "/");
    }

    #[test]
    fn a_check_needs_a_production_anchor_and_an_http_validator() {
        let client = reqwest::Client::new();
        assert!(CardCheck::new(Vec::new(), Vec::new(), "http://127.0.0.1:1", client.clone(), "https://x").is_err());
        assert!(
            CardCheck::new(vec![vec![0x30]], Vec::new(), "http://127.0.0.1:1", client.clone(), "https://x").is_err()
        );
        assert!(CardCheck::new(vec![Vec::new()], Vec::new(), "http://127.0.0.1:1", client, "https://x").is_err());
    }
}
