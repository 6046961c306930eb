//! コンビニ交付 (docs/kiosk.md): `jpki kiosk issue`, the kiosk's side (its own credential
//! `kiosk:NAME`, the resident's card through PC/SC, the PIN from the kiosk's PIN pad in
//! `JPKI_KIOSK_PIN`), and the flags with which `jpki serve municipality` serves kiosks.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use identity::ids::LgCode;
use identity::kiosk::{DEFAULT_TTL_SECS, Kiosks, MAX_TTL_SECS};
use identity::party::{Party, PartyKind};
use kiosk::client::{Kiosk, Outcome};

use crate::netargs::{Net, NetArgs, parse_municipality};

/// How a municipality node serves kiosks: without `--kiosk-ca-url` it serves none (every
/// kiosk request is refused `kiosk_closed`).
#[derive(Debug, Clone, Default, Args)]
pub struct KioskServeArgs {
    /// The CA service that maps a card's authentication certificate to its resident
    /// (`https://HOST:PORT`; reached with this node's own credential).
    #[arg(long, env = "JPKI_KIOSK_CA_URL")]
    pub kiosk_ca_url: Option<String>,
    /// The CA service's party.
    #[arg(long, env = "JPKI_KIOSK_CA_PARTY", default_value = "ca:jpki-ca")]
    pub kiosk_ca_party: String,
    /// This network's validator (`http://HOST:PORT`): every OCSP request and CRL fetch of a
    /// kiosk card's path goes there, whatever URL a certificate names.
    #[arg(long, env = "JPKI_KIOSK_VALIDATOR")]
    pub kiosk_validator: Option<String>,
    /// The production user-authentication root (PEM; repeat for several generations).
    #[arg(long = "kiosk-anchor")]
    pub kiosk_anchors: Vec<PathBuf>,
    /// Intermediate CA certificates of the authentication hierarchy (PEM; repeat).
    #[arg(long = "kiosk-intermediate")]
    pub kiosk_intermediates: Vec<PathBuf>,
    /// Lifetime of a kiosk session (a challenge), in seconds (1–300).
    #[arg(long, default_value_t = DEFAULT_TTL_SECS)]
    pub kiosk_session_secs: i64,
    /// The municipality's document-signing key (a key file from the organisation CA; its
    /// passphrase from JPKI_KIOSK_DOCUMENT_KEY_PASSPHRASE or …_FILE). Without it the node
    /// answers kiosks with the record only, no PDF, and issues no 広域交付 copies.
    #[arg(long, env = "JPKI_KIOSK_DOCUMENT_KEY", requires_all = ["kiosk_document_chain", "kiosk_municipality_name"])]
    pub kiosk_document_key: Option<PathBuf>,
    /// Its certificate chain (PEM: the document-signing certificate, then the organisation CA).
    #[arg(long, env = "JPKI_KIOSK_DOCUMENT_CHAIN")]
    pub kiosk_document_chain: Option<PathBuf>,
    /// The municipality's name as printed on the certificate (e.g. 東京都千代田区).
    #[arg(long, env = "JPKI_KIOSK_MUNICIPALITY_NAME")]
    pub kiosk_municipality_name: Option<String>,
}

impl KioskServeArgs {
    /// The municipality's document maker (the signed residence-certificate PDF), if
    /// `--kiosk-document-key` is given: kiosks and 広域交付 (docs/widearea.md) both issue with it.
    pub fn documents(&self) -> Result<Option<Arc<dyn identity::kiosk::DocumentMaker>>> {
        let Some(key) = &self.kiosk_document_key else { return Ok(None) };
        let pass = net::secret::Secret::from_env("JPKI_KIOSK_DOCUMENT_KEY_PASSPHRASE")?;
        let key =
            ca::key::SoftKey::load(key, &pass).with_context(|| format!("document-signing key {}", key.display()))?;
        let chain_file = self.kiosk_document_chain.clone().context("--kiosk-document-chain")?;
        let chain = crate::verify_cmd::read_all(&chain_file, "CERTIFICATE")
            .map_err(|e| anyhow::anyhow!(e))?
            .iter()
            .map(|d| <x509_cert::Certificate as der::Decode>::from_der(d))
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("document-signing chain {}", chain_file.display()))?;
        let name = self.kiosk_municipality_name.as_deref().context("--kiosk-municipality-name")?;
        let maker = kiosk::document::PdfMaker::new(key, chain, name).map_err(|e| anyhow::anyhow!(e))?;
        Ok(Some(Arc::new(maker)))
    }

    /// The node's kiosk service, issuing with `documents` ([`Self::documents`]).
    pub fn kiosks(&self, net: &Net, documents: Option<Arc<dyn identity::kiosk::DocumentMaker>>) -> Result<Kiosks> {
        let Some(ca_url) = &self.kiosk_ca_url else { return Ok(Kiosks::closed()) };
        anyhow::ensure!(
            (1..=MAX_TTL_SECS).contains(&self.kiosk_session_secs),
            "--kiosk-session-secs must be 1–{MAX_TTL_SECS}"
        );
        let validator = self.kiosk_validator.as_deref().context("--kiosk-ca-url needs --kiosk-validator")?;
        anyhow::ensure!(!self.kiosk_anchors.is_empty(), "--kiosk-ca-url needs --kiosk-anchor");
        let read = |paths: &[PathBuf]| -> Result<Vec<Vec<u8>>> {
            let mut v = Vec::new();
            for p in paths {
                v.extend(crate::verify_cmd::read_all(p, "CERTIFICATE").map_err(|e| anyhow::anyhow!(e))?);
            }
            Ok(v)
        };
        let ca_party: Party = self.kiosk_ca_party.parse()?;
        net::client::require_https(ca_url)?;
        let ca = net::client::client(&net.cred, &net.trust, Some(ca_party))?;
        let check = kiosk::check::CardCheck::new(
            read(&self.kiosk_anchors)?,
            read(&self.kiosk_intermediates)?,
            validator,
            ca,
            ca_url,
        )
        .map_err(|e| anyhow::anyhow!("kiosk check: {e}"))?;
        if documents.is_none() {
            tracing::warn!("no --kiosk-document-key: kiosks get the record only, no signed PDF");
        }
        tracing::info!(
            session_secs = self.kiosk_session_secs,
            pdf = documents.is_some(),
            "serving kiosks (コンビニ交付)"
        );
        Ok(Kiosks { check: Arc::new(check), ttl_secs: self.kiosk_session_secs, documents })
    }
}

/// `jpki kiosk …`.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// One kiosk session: the card in --reader signs the municipality's challenge (PIN from
    /// JPKI_KIOSK_PIN or JPKI_KIOSK_PIN_FILE, verified on the card), and the municipality issues
    /// the residence certificate of the card's holder. Exit 0 issued, 1 refused.
    Issue(IssueArgs),
}

/// `jpki kiosk issue`.
#[derive(Debug, Args)]
pub struct IssueArgs {
    /// The resident's municipality node as `CODE=https://HOST:PORT` (its certificate must name
    /// `municipality:CODE`).
    #[arg(long, env = "JPKI_KIOSK_MUNICIPALITY", value_parser = parse_municipality)]
    pub municipality: (LgCode, String),
    /// The PC/SC reader of the kiosk.
    #[arg(long, env = "JPKI_CARD_READER", default_value = "Virtual PCD 00 00")]
    pub reader: String,
    /// Seconds to wait for the card.
    #[arg(long, default_value_t = 10)]
    pub wait: u64,
    /// Print the 住民票コード on the certificate (the resident asks for it).
    #[arg(long)]
    pub with_resident_code: bool,
    /// Where to write the document (the PDF if the municipality makes one, else the record as
    /// JSON); mode 0600.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write the request submitted (challenge, certificate, signature; no PIN) here, mode 0600:
    /// the kiosk's transcript for its operator's audit.
    #[arg(long)]
    pub transcript: Option<PathBuf>,
    #[command(flatten)]
    pub net: NetArgs,
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    net::keyfile::write_private(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Runs `jpki kiosk …`.
pub async fn run(cmd: Cmd) -> Result<()> {
    let Cmd::Issue(a) = cmd;
    let net = a.net.load()?;
    anyhow::ensure!(
        net.cred.party.kind() == PartyKind::Kiosk,
        "the credential names {}, not a kiosk (kiosk:<name>)",
        net.cred.party
    );
    let pin = net::secret::Secret::from_env("JPKI_KIOSK_PIN")?;
    let pin = pin.expose_str().context("JPKI_KIOSK_PIN is not UTF-8")?;
    let (code, url) = &a.municipality;
    net::client::require_https(url)?;
    let http = net::client::client(&net.cred, &net.trust, Some(Party::Municipality(code.clone())))?;
    let k = Kiosk::new(http, url);
    let (outcome, request) = k.session(&a.reader, Duration::from_secs(a.wait), pin, a.with_resident_code).await?;
    if let (Some(path), Some(q)) = (&a.transcript, &request) {
        write_private(path, &serde_json::to_vec_pretty(q)?)?;
    }
    println!("{}", outcome.message());
    match outcome {
        Outcome::Issued(answer) => {
            let r = &answer.record;
            println!("住民票の写し（{}）", r.municipality.as_str());
            println!("  氏名      {}", r.name);
            println!("  住所      {}", r.address);
            println!("  生年月日  {}", r.date_of_birth);
            println!("  性別      {}", r.sex);
            if let Some(c) = &r.resident_code {
                println!("  住民票コード {c}");
            }
            println!("  交付日    {}", r.issued_on);
            match &answer.pdf {
                Some(_) => println!("document: signed PDF"),
                None => println!("document: record only (this municipality makes no PDF)"),
            }
            if let Some(out) = &a.out {
                use base64::Engine as _;
                let bytes = match &answer.pdf {
                    Some(b64) => {
                        base64::engine::general_purpose::STANDARD.decode(b64).context("the PDF is not base64")?
                    }
                    None => serde_json::to_vec_pretty(&answer.record)?,
                };
                write_private(out, &bytes)?;
                println!("written to {}", out.display());
            }
            Ok(())
        }
        other => anyhow::bail!(
            "not issued ({})",
            match other {
                Outcome::Refused { reason, .. } => reason,
                Outcome::WrongPin { tries_left } => format!("wrong_pin, {tries_left} tries left"),
                Outcome::PinBlocked => "pin_blocked".into(),
                Outcome::Issued(_) => unreachable!("handled above"),
            }
        ),
    }
}
