//! `jpki resdoc issue`: a residence certificate (住民票の写し) as a PAdES-signed PDF
//! (docs/resdoc.md), from a record in a JSON file (personal data never on argv), signed with
//! the municipality's document-signing key: a key file from `jpki net issue --document-signing`
//! (passphrase from JPKI_RESDOC_KEY_PASSPHRASE) or a key on a PKCS#11 token (`--pkcs11-*`,
//! user PIN from JPKI_RESDOC_PIN). Neither secret is ever a clap argument.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use ca::key::{KeyBackend, SoftKey};
use clap::{Args, Subcommand};
use der::Decode;
use identity::ids::ResidentCode;
use identity::person::Sex;
use net::secret::Secret;
use resdoc::{Font, IssueOptions, KeySigner, ResidenceRecord};
use serde::Deserialize;
use x509_cert::Certificate;

/// The environment variable holding the document key file's passphrase.
const KEY_PASSPHRASE: &str = "JPKI_RESDOC_KEY_PASSPHRASE";
/// The environment variable holding the PKCS#11 user PIN of the municipality's token.
const PIN: &str = "JPKI_RESDOC_PIN";

/// A document-signing key on a PKCS#11 token (the user PIN from JPKI_RESDOC_PIN).
#[derive(Debug, Args)]
pub struct Token {
    /// The PKCS#11 module (e.g. /usr/lib/softhsm/libsofthsm2.so).
    #[arg(long, requires_all = ["pkcs11_token", "pkcs11_label"])]
    pub pkcs11_module: Option<PathBuf>,
    /// The token's label.
    #[arg(long)]
    pub pkcs11_token: Option<String>,
    /// The key's label on the token.
    #[arg(long)]
    pub pkcs11_label: Option<String>,
}

impl Token {
    /// The logged-in token and the key label, if `--pkcs11-module` was given.
    pub fn open(&self) -> Result<Option<(ca::pkcs11::Pkcs11Store, String)>> {
        let (Some(module), Some(token), Some(label)) = (&self.pkcs11_module, &self.pkcs11_token, &self.pkcs11_label)
        else {
            return Ok(None);
        };
        let pin = Secret::from_env(PIN)?;
        let pin = pin.expose_str().with_context(|| format!("{PIN} is not UTF-8"))?;
        Ok(Some((ca::pkcs11::Pkcs11Store::open(module, token, pin)?, label.clone())))
    }
}

/// Residence-certificate commands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Build and sign the residence certificate of the record in --record (JSON: name, address,
    /// date_of_birth "YYYY-MM-DD", sex 1|2|9, resident_code (optional), issue_date, municipality).
    Issue {
        /// The record, a JSON file.
        #[arg(long)]
        record: PathBuf,
        /// The signer's chain, PEM: its document-signing certificate first, then the organisation
        /// root (PREFIX.pem of `jpki net issue --document-signing`).
        #[arg(long)]
        chain: PathBuf,
        /// The document-signing key file (PREFIX.key), unless the key is on a token.
        #[arg(long, conflicts_with = "pkcs11_module")]
        key: Option<PathBuf>,
        #[command(flatten)]
        token: Token,
        /// Show the 住民票コード (only if the resident asked for it).
        #[arg(long)]
        show_resident_code: bool,
        /// The TrueType font to embed (a subset of it).
        #[arg(long, default_value = resdoc::DEFAULT_FONT)]
        font: PathBuf,
        /// Where to write the signed PDF (never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
}

/// The record file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordFile {
    name: String,
    address: String,
    date_of_birth: time::Date,
    sex: Sex,
    #[serde(default)]
    resident_code: Option<ResidentCode>,
    issue_date: time::Date,
    municipality: String,
}

fn chain(path: &PathBuf) -> Result<Vec<Certificate>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let certs = text
        .split_inclusive("-----END CERTIFICATE-----")
        .filter(|b| b.contains("-----BEGIN CERTIFICATE-----"))
        .map(|b| -> Result<Certificate> {
            let (label, der) = der::pem::decode_vec(b.trim_start().as_bytes())?;
            if label != "CERTIFICATE" {
                bail!("PEM label {label:?}");
            }
            Ok(Certificate::from_der(&der)?)
        })
        .collect::<Result<Vec<_>>>()
        .with_context(|| format!("{}: not a PEM certificate chain", path.display()))?;
    if certs.is_empty() {
        bail!("{}: no certificate", path.display());
    }
    Ok(certs)
}

/// Runs a residence-certificate command.
pub fn run(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Issue { record, chain: chain_path, key, token, show_resident_code, font, out } => {
            if out.exists() {
                bail!("{} exists (a certificate is never overwritten)", out.display());
            }
            // The record's values are never echoed: a parse error names the field, not the value.
            let bytes = std::fs::read(&record).with_context(|| format!("cannot read {}", record.display()))?;
            let r: RecordFile = serde_json::from_slice(&bytes).map_err(|e| {
                anyhow::anyhow!(
                    "{}: not a residence record (line {}, column {})",
                    record.display(),
                    e.line(),
                    e.column()
                )
            })?;
            let record = ResidenceRecord {
                name: r.name,
                address: r.address,
                date_of_birth: r.date_of_birth,
                sex: r.sex,
                resident_code: r.resident_code,
                issue_date: r.issue_date,
                municipality: r.municipality,
            };
            let chain = chain(&chain_path)?;
            let font = Font::load(&font)?;
            let signing_time = identity::http::now();
            let opts = IssueOptions { font: &font, show_resident_code, signing_time };
            let backend: Box<dyn KeyBackend> = match (token.open()?, key) {
                (Some((store, label)), _) => Box::new(store.load(&label)?),
                (None, Some(key)) => {
                    let pass = Secret::from_env(KEY_PASSPHRASE)?.passphrase(KEY_PASSPHRASE)?;
                    Box::new(SoftKey::load(&key, &pass)?)
                }
                (None, None) => {
                    bail!("give the key: --key PREFIX.key or --pkcs11-module/--pkcs11-token/--pkcs11-label")
                }
            };
            let pdf = resdoc::issue(&record, &opts, &KeySigner(backend.as_ref()), &chain)?;
            std::fs::write(&out, &pdf).with_context(|| format!("cannot write {}", out.display()))?;
            println!(
                "residence certificate for {} signed with {}: {} ({} bytes)",
                record.municipality,
                backend.key_ref(),
                out.display(),
                pdf.len()
            );
        }
    }
    Ok(())
}
