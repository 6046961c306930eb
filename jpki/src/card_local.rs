//! [`LocalCa`]: the card writer's [`CaClient`] in process, until `jpki serve ca` and its HTTPS
//! client replace it (issue 10). It holds what the window must not hold once the CA service
//! exists: the issuer master key (`JPKI_CARD_ISSUER_KEY`) and the CA itself (its store and
//! the identity network's B1-020 provision). The demo uses it too, its CA being in process.

use std::sync::Mutex;

use ca::authority::{Authority, IssueRequest, Issued};
use ca::hierarchy::Environment;
use ca::identity_source::IdentitySource;
use ca::revocation::CertKind;
use card::applet::{card_issuer_key, issuer_mac};
use card::jpki::KeyRef;
use card::writer::{CaClient, CaError, CardCert, CardCerts, CardRequest, IssuerPurpose};
use identity::http::now;
use zeroize::Zeroizing;

/// The CA in process: the authority, where it reads identity items, who acts and for which
/// window.
#[derive(Debug)]
struct InProcess<'a> {
    authority: &'a Authority,
    source: &'a IdentitySource,
    actor: String,
    window: String,
}

/// The CA service's part of the card writer, in process.
pub struct LocalCa<'a> {
    master: Zeroizing<[u8; 32]>,
    ca: Option<InProcess<'a>>,
    last: Mutex<Option<Issued>>,
}

impl std::fmt::Debug for LocalCa<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCa").field("ca", &self.ca).finish_non_exhaustive()
    }
}

impl<'a> LocalCa<'a> {
    /// Issuer authentication and issuance by `authority` (as `actor`, for `window`).
    pub fn new(
        master: [u8; 32],
        authority: &'a Authority,
        source: &'a IdentitySource,
        actor: &str,
        window: &str,
    ) -> LocalCa<'a> {
        LocalCa {
            master: Zeroizing::new(master),
            ca: Some(InProcess { authority, source, actor: actor.to_owned(), window: window.to_owned() }),
            last: Mutex::new(None),
        }
    }

    /// Issuer authentication only (PIN reset, wipe): issuing fails.
    pub fn issuer_only(master: [u8; 32]) -> LocalCa<'static> {
        LocalCa { master: Zeroizing::new(master), ca: None, last: Mutex::new(None) }
    }

    /// The authority's whole answer to the last issuance (CA, generation, CRL shard, validity),
    /// for the demo's printout.
    pub fn last_issued(&self) -> Option<Issued> {
        self.last.lock().ok().and_then(|l| l.clone())
    }
}

/// The CA's errors as the writer sees them: its decisions (refusals, and requests it finds
/// malformed) are refusals; anything else is a failure.
fn ca_error(e: ca::error::Error) -> CaError {
    match e {
        ca::error::Error::Refused { code, detail } => CaError::Refused { code: code.into(), detail },
        e @ ca::error::Error::Invalid { .. } => {
            CaError::Refused { code: "invalid_request".into(), detail: e.to_string() }
        }
        e => CaError::Failed(e.to_string()),
    }
}

/// The certificates as the writer takes them.
pub fn card_certs(issued: &Issued) -> Result<CardCerts, CaError> {
    let mut certificates = Vec::new();
    for c in &issued.certificates {
        let kind = match c.kind {
            CertKind::Signature => KeyRef::Sign,
            CertKind::Authentication => KeyRef::Auth,
            other => return Err(CaError::Failed(format!("an unexpected {} certificate", other.name()))),
        };
        certificates.push(CardCert { kind, serial: c.serial.clone(), der: c.der.clone() });
    }
    Ok(CardCerts { certificates, chain: issued.chain.clone() })
}

impl CaClient for LocalCa<'_> {
    /// The MAC under the card's own key, derived from the master and the serial (the purpose
    /// and resident are for the CA service's audit; nothing is audited in process).
    async fn issuer_auth(
        &self,
        _purpose: IssuerPurpose,
        _resident: Option<&str>,
        serial: &[u8],
        challenge: &[u8],
    ) -> Result<Vec<u8>, CaError> {
        let key = Zeroizing::new(
            card_issuer_key(self.master.as_slice(), serial).map_err(|e| CaError::Failed(e.to_string()))?,
        );
        issuer_mac(key.as_slice(), challenge, serial).map_err(|e| CaError::Failed(e.to_string()))
    }

    async fn issue(&self, req: &CardRequest) -> Result<CardCerts, CaError> {
        let ca = self.ca.as_ref().ok_or_else(|| CaError::Failed("no CA in this session".into()))?;
        let ir = IssueRequest {
            resident_code: req.resident.clone(),
            window: ca.window.clone(),
            card_expiry: identity::notice::parse_date("card expiry", &req.card_expiry)
                .map_err(|e| CaError::Refused { code: "invalid_request".into(), detail: e.to_string() })?,
            environment: Environment::parse(&req.environment).map_err(ca_error)?,
            signature_csr: req.signature_csr.clone(),
            authentication_csr: req.authentication_csr.clone(),
            request_id: Some(req.request_id.clone()),
        };
        let issued = ca.authority.issue(&ca.actor, &ir, ca.source, now()).await.map_err(ca_error)?;
        let certs = card_certs(&issued)?;
        if let Ok(mut last) = self.last.lock() {
            *last = Some(issued);
        }
        Ok(certs)
    }
}
