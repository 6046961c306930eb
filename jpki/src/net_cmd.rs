//! `jpki net …`: the national operator's network CA (docs/network.md) — `init`, `issue` (a
//! party's mutual-TLS credential, or with `--notice-key` a municipality's change-notice signing
//! key), `revoke`, `crl`, `list`. Passphrases come only from the environment (or the file named
//! by `NAME_FILE`): JPKI_NET_CA_PASSPHRASE protects the network CA's key, JPKI_NET_KEY_PASSPHRASE
//! the key of the credential being issued. They are never clap arguments, so they never appear
//! on argv or in `--help`.
//!
//! The organisation CA for local governments (docs/resdoc.md) is the same kind of directory:
//! `init --organisation` creates it, `issue --document-signing` issues a municipality its
//! document-signing certificate (the key generated into PREFIX.key, or on the municipality's
//! PKCS#11 token with `--pkcs11-*`, the user PIN from JPKI_RESDOC_PIN), and `revoke`, `crl`
//! and `list` work on it as on the network CA.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use ca::crl::Reason;
use ca::network::{FileCaKind, NetworkCa, SubjectKey, parse_party, short_form};
use clap::{Args, Subcommand};
use identity::http::now;
use identity::party::Party;
use net::secret::Secret;

/// The environment variable holding the network CA key's passphrase.
const CA_PASSPHRASE: &str = "JPKI_NET_CA_PASSPHRASE";
/// The environment variable holding the new credential key's passphrase.
const KEY_PASSPHRASE: &str = "JPKI_NET_KEY_PASSPHRASE";

/// Where the network CA lives.
#[derive(Debug, Args)]
pub struct Dir {
    /// The network CA's directory (ca.pem, ca.key, index.json, crl.pem).
    #[arg(long, env = "JPKI_NET_DIR")]
    pub dir: PathBuf,
}

/// Network CA commands. Passphrases: JPKI_NET_CA_PASSPHRASE (the CA's key) and
/// JPKI_NET_KEY_PASSPHRASE (a new credential's key), or their _FILE twins; at least 12 bytes.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Create the network CA (P-384 root `C=JP, O=JPKI Network, CN=JPKI Network CA`, 10 years)
    /// and its first CRL. Refuses a directory that already holds one.
    Init {
        #[command(flatten)]
        dir: Dir,
        /// Create the organisation CA for local governments instead (`C=JP, O=JPKI Local
        /// Governments, CN=Organisation CA for Local Governments`; docs/resdoc.md).
        #[arg(long)]
        organisation: bool,
    },
    /// Issue a party its mutual-TLS credential (PREFIX.pem = certificate + CA, PREFIX.key =
    /// its key encrypted under JPKI_NET_KEY_PASSPHRASE), or with --notice-key a
    /// municipality's change-notice signing key. A clerk (`clerk:131016:C0001`) gets the key
    /// that signs the clerk's requests to the CA service, never a TLS credential.
    Issue {
        #[command(flatten)]
        dir: Dir,
        /// The party: `municipality:131016`, `prefecture:13`, `national`, `ca:jpki-ca`,
        /// `validator:v1`, `window:131016:W01`, `clerk:131016:C0001`, `agency:jps`,
        /// `operator:op1` (or its urn:jpki: URI).
        #[arg(long)]
        party: String,
        /// A host name or IP address the party serves on (repeat); not for --notice-key.
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: i64,
        /// Path prefix of the files written (PREFIX.pem, PREFIX.key).
        #[arg(long)]
        out: PathBuf,
        /// Issue the municipality's change-notice signing key instead of a TLS credential.
        #[arg(long)]
        notice_key: bool,
        #[command(flatten)]
        document: DocumentSigning,
    },
    /// Revoke a network certificate (takes effect with the next `jpki net crl`).
    Revoke {
        #[command(flatten)]
        dir: Dir,
        /// Its serial number in hex (colons allowed, as openssl prints it).
        #[arg(long)]
        serial: String,
        /// unspecified, key-compromise, ca-compromise, affiliation-changed, superseded,
        /// cessation-of-operation or certificate-hold.
        #[arg(long)]
        reason: String,
    },
    /// Write the network CA's full CRL to DIR/crl.pem with the next CRL number.
    Crl {
        #[command(flatten)]
        dir: Dir,
        /// Hours from thisUpdate to nextUpdate.
        #[arg(long, default_value_t = 24)]
        next_update_hours: i64,
    },
    /// Every issued network certificate with its status.
    List {
        #[command(flatten)]
        dir: Dir,
    },
}

/// A municipality's document-signing certificate from the organisation CA (docs/resdoc.md).
#[derive(Debug, Args)]
pub struct DocumentSigning {
    /// Issue the municipality's document-signing certificate (organisation CA only).
    #[arg(long, requires_all = ["name", "crl_url"])]
    pub document_signing: bool,
    /// The municipality's name in romaji, for the subject's CN (`Chiyoda-ku`).
    #[arg(long)]
    pub name: Option<String>,
    /// Where the organisation CA's crl.der is published (the certificate's CRL distribution point).
    #[arg(long)]
    pub crl_url: Option<String>,
    #[command(flatten)]
    pub token: crate::resdoc_cmd::Token,
}

fn secret(name: &str) -> Result<Secret> {
    Ok(Secret::from_env(name)?.passphrase(name)?)
}

fn open(dir: &Dir) -> Result<NetworkCa> {
    let pass = secret(CA_PASSPHRASE)?;
    NetworkCa::open(&dir.dir, &pass).with_context(|| format!("cannot open the network CA in {}", dir.dir.display()))
}

fn date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// Runs a network CA command.
pub fn run(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Init { dir, organisation: true } => {
            let pass = secret(CA_PASSPHRASE)?;
            let ca = NetworkCa::init_kind(FileCaKind::Organisation, &dir.dir, &pass, now())?;
            println!(
                "organisation CA created in {}: ca.pem ({}; P-384), ca.key (encrypted, scrypt), crl.pem, \
                 crl.der; key id {}",
                dir.dir.display(),
                FileCaKind::Organisation.ca_name(),
                hex::encode(ca.key_id())
            );
        }
        Cmd::Issue { dir, party, document, days, out, .. } if document.document_signing => {
            let Party::Municipality(code) = parse_party(&party).context("--party")? else {
                bail!("--document-signing: only a municipality has a document-signing key (not {party})");
            };
            let (name, url) = (document.name.unwrap_or_default(), document.crl_url.unwrap_or_default());
            let ca = open(&dir)?;
            let issued = match document.token.open()? {
                Some((store, label)) => {
                    let key = store.generate(&label, ca::key::KeyAlgorithm::EcP384)?;
                    let spki = ca::key::KeyBackend::public_key_der(&key).to_vec();
                    ca.issue_document_signer(&code, &name, &url, days, now(), &out, SubjectKey::Given(&spki))?
                }
                None => {
                    let key_pass = secret(KEY_PASSPHRASE)?;
                    ca.issue_document_signer(&code, &name, &url, days, now(), &out, SubjectKey::Generate(&key_pass))?
                }
            };
            println!(
                "document-signing certificate for {}: serial {} ski {} until {} -> {} {}",
                code.as_str(),
                issued.serial,
                issued.ski,
                date(issued.not_after),
                issued.chain.display(),
                issued.key.as_deref().map(|k| k.display().to_string()).unwrap_or_else(|| "(key on the token)".into())
            );
        }
        Cmd::Init { dir, organisation: false } => {
            let pass = secret(CA_PASSPHRASE)?;
            let ca = NetworkCa::init(&dir.dir, &pass, now())?;
            println!(
                "network CA created in {}: ca.pem (C=JP, O=JPKI Network, CN=JPKI Network CA; P-384), \
                 ca.key (encrypted, scrypt), crl.pem; key id {}",
                dir.dir.display(),
                hex::encode(ca.key_id())
            );
        }
        Cmd::Issue { dir, party, hosts, days, out, notice_key, document: _ } => {
            let party = parse_party(&party).context("--party")?;
            let key_pass = secret(KEY_PASSPHRASE)?;
            let ca = open(&dir)?;
            let clerk = party.kind() == identity::party::PartyKind::Clerk;
            let issued = if clerk {
                if notice_key || !hosts.is_empty() {
                    bail!("a clerk gets a request-signing key only: no --notice-key, no hosts");
                }
                ca.issue_clerk_key(&party, days, now(), &out, &key_pass)?
            } else if notice_key {
                let Party::Municipality(code) = &party else {
                    bail!("--notice-key: only a municipality has change-notice keys (not {party})");
                };
                if !hosts.is_empty() {
                    bail!("--notice-key: a notice-signing certificate names no hosts");
                }
                ca.issue_notice_key(code, days, now(), &out, &key_pass)?
            } else {
                ca.issue_tls(&party, &hosts, days, now(), &out, &key_pass)?
            };
            println!(
                "{} for {} ({}): serial {} ski {} until {} -> {} {}",
                if clerk {
                    "clerk request-signing key"
                } else if notice_key {
                    "notice-signing key"
                } else {
                    "TLS credential"
                },
                short_form(&party),
                party,
                issued.serial,
                issued.ski,
                date(issued.not_after),
                issued.chain.display(),
                issued.key.as_deref().unwrap_or(std::path::Path::new("-")).display()
            );
        }
        Cmd::Revoke { dir, serial, reason } => {
            let reason = Reason::parse(&reason)?;
            let ca = open(&dir)?;
            let e = ca.revoke(&serial, reason, now())?;
            println!("revoked {} ({}, {}); publish with `jpki net crl`", e.serial, e.party, reason.name());
        }
        Cmd::Crl { dir, next_update_hours } => {
            let ca = open(&dir)?;
            let path = ca.crl(now(), next_update_hours)?;
            let revoked = ca.list()?.iter().filter(|e| e.revoked_at.is_some() && e.not_after > now()).count();
            println!("CRL {} written to {} ({revoked} revoked)", ca.crl_number()?, path.display());
        }
        Cmd::List { dir } => {
            let ca = open(&dir)?;
            for e in ca.list()? {
                let status = match (e.revoked_at, &e.reason) {
                    (Some(at), Some(r)) => format!("revoked {} {r}", date(at)),
                    _ if e.not_after <= now() => "expired".to_owned(),
                    _ => "valid".to_owned(),
                };
                println!(
                    "{} {:<10} {:<32} until {} ski {} {status}",
                    e.serial,
                    e.kind.name(),
                    e.party.uri(),
                    date(e.not_after),
                    e.ski
                );
            }
        }
    }
    Ok(())
}
