//! The window's client of the CA service (`jpki serve ca`): a [`CaClient`] over mutual TLS
//! presenting the window's own network credential (`window:LGCODE:ID`), pinned to the CA's
//! party, with every request signed by the clerk's own key (`net::clerk`). The window holds
//! no CA secret and no card issuer key: the service answers the card's issuer challenge.
//! Used by `jpki card …` (one clerk from the environment) and by the window's pages (the
//! signed-in clerk of each session).

use std::sync::Arc;

use anyhow::{Context, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ca::service::{ErrorBody, IssueBody, IssuedBody, IssuerAuthAnswer, IssuerAuthBody};
use card::jpki::KeyRef;
use card::writer::{CaClient, CaError, CardCert, CardCerts, CardRequest, IssuerPurpose};
use identity::party::{Party, PartyKind};
use net::clerk::ClerkKey;

/// The CA service, reached as this window with this clerk.
pub struct CaHttps {
    client: reqwest::Client,
    base: String,
    window: Party,
    window_id: String,
    clerk: Arc<ClerkKey>,
}

impl std::fmt::Debug for CaHttps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaHttps").field("base", &self.base).field("window", &self.window).finish_non_exhaustive()
    }
}

impl CaHttps {
    /// The CA service at `base` (https), reached with `client` (the window's mutual-TLS
    /// client, pinned to the CA's party) as `window` with `clerk`, who must work at the
    /// window's municipality. Nothing is sent yet.
    pub fn new(client: reqwest::Client, base: &str, window: Party, clerk: Arc<ClerkKey>) -> Result<Self> {
        net::client::require_https(base)?;
        anyhow::ensure!(
            window.kind() == PartyKind::Window,
            "the credential names {window}, not a window (window:LGCODE:ID)"
        );
        let window_id = window.station().map(|(_, id)| id.to_owned()).context("the window names no id")?;
        let (Some((w, _)), Some((c, _))) = (window.station(), clerk.party().station()) else {
            anyhow::bail!("the window or the clerk names no municipality");
        };
        anyhow::ensure!(w == c, "clerk {} does not work at {window}", clerk.party());
        Ok(Self { client, base: base.trim_end_matches('/').to_owned(), window, window_id, clerk })
    }

    /// The clerk who signs this client's requests.
    pub fn clerk(&self) -> &Party {
        self.clerk.party()
    }

    /// The key algorithm this window's new cards get (`rsa2048`, or `p384` once the issuing CA
    /// has moved off RSA): `GET /v1/card/profile`.
    pub async fn card_algorithm(&self, environment: &str) -> Result<String> {
        let url = format!("{}/v1/card/profile?environment={environment}", self.base);
        // Asked before the card is touched: if the CA cannot be reached, nothing is written.
        let r = self.client.get(url).send().await.map_err(|e| CaError::Unavailable(e.to_string()))?;
        let body = answer(r).await?;
        let p: ca::service::CardProfile = serde_json::from_str(&body).context("the card profile")?;
        Ok(p.algorithm)
    }

    /// This window's re-issuance queue: `GET /v1/reissue/queue`.
    pub async fn reissue_queue(&self) -> Result<Vec<ca::service::QueuedBody>> {
        let r = self
            .client
            .get(format!("{}/v1/reissue/queue", self.base))
            .send()
            .await
            .context("the CA service did not answer")?;
        Ok(serde_json::from_str(&answer(r).await?)?)
    }

    /// POSTs `body` to `path`, signed by the clerk; a refusal keeps the service's code.
    async fn post<B: serde::Serialize, R: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<R, CaError> {
        let bytes = serde_json::to_vec(body).map_err(|e| CaError::Failed(format!("request: {e}")))?;
        let mut rq = self.client.post(format!("{}{path}", self.base)).header("content-type", "application/json");
        let headers = self
            .clerk
            .headers(&self.window, "POST", path, &bytes, identity::http::now())
            .map_err(|e| CaError::Failed(e.to_string()))?;
        for (k, v) in headers {
            rq = rq.header(k, v);
        }
        let r = rq.body(bytes).send().await.map_err(|e| CaError::Unavailable(e.to_string()))?;
        let status = r.status();
        if status.is_success() {
            return r.json().await.map_err(|e| CaError::Failed(format!("answer: {e}")));
        }
        let e: Option<ErrorBody> = r.json().await.ok();
        let (code, detail) = e.map(|e| (e.error, e.detail)).unwrap_or_else(|| ("http".into(), status.to_string()));
        Err(match status.as_u16() {
            401 | 403 => CaError::Refused { code, detail },
            502..=504 => CaError::Unavailable(format!("{code}: {detail}")),
            _ => CaError::Failed(format!("{status} {code}: {detail}")),
        })
    }
}

impl CaClient for CaHttps {
    async fn issuer_auth(
        &self,
        purpose: IssuerPurpose,
        resident: Option<&str>,
        serial: &[u8],
        challenge: &[u8],
    ) -> Result<Vec<u8>, CaError> {
        let body = IssuerAuthBody {
            purpose,
            resident: resident.map(str::to_owned),
            serial: hex::encode(serial),
            challenge: hex::encode(challenge),
        };
        let a: IssuerAuthAnswer = self.post("/v1/card/issuer-auth", &body).await?;
        hex::decode(&a.mac).map_err(|_| CaError::Failed("the issuer answer is not hex".into()))
    }

    async fn issue(&self, req: &CardRequest) -> Result<CardCerts, CaError> {
        let body = IssueBody {
            request_id: req.request_id.clone(),
            resident: req.resident.clone(),
            window: self.window_id.clone(),
            card_serial: req.card_serial.clone(),
            card_expiry: req.card_expiry.clone(),
            environment: req.environment.clone(),
            renew: req.renew,
            signature_csr: req.signature_csr.as_ref().map(|d| B64.encode(d)),
            authentication_csr: req.authentication_csr.as_ref().map(|d| B64.encode(d)),
        };
        let a: IssuedBody = self.post("/v1/issue", &body).await?;
        let der = |s: &str| B64.decode(s).map_err(|_| CaError::Failed("a certificate is not base64".into()));
        let mut certificates = Vec::new();
        for c in &a.certificates {
            let kind = match c.kind.as_str() {
                "signature" => KeyRef::Sign,
                "authentication" => KeyRef::Auth,
                other => return Err(CaError::Failed(format!("unexpected {other} certificate"))),
            };
            certificates.push(CardCert { kind, serial: c.serial.clone(), der: der(&c.der)? });
        }
        let chain = a.chain.iter().map(|c| der(c)).collect::<Result<_, _>>()?;
        Ok(CardCerts { certificates, chain })
    }
}

/// The body of a CA service answer, or its status and refusal as the error.
async fn answer(r: reqwest::Response) -> Result<String> {
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    anyhow::ensure!(status.is_success(), "the CA service answered {status}: {body}");
    Ok(body)
}
