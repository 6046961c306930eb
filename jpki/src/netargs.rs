//! A process's place on the network: its credential (certificate chain and encrypted key from
//! `jpki net issue`), the network CA it trusts and that CA's CRL. Every node-to-node, feed,
//! agency and operator connection is mutual TLS built from these; the passphrase of the key
//! files comes only from `JPKI_CREDENTIAL_PASSPHRASE` (or `_FILE`), never from argv.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use identity::client::Peer;
use identity::ids::LgCode;
use identity::notice_sig::{NoticeSigner, NoticeVerifier};
use identity::party::Party;
use net::credential::{Credential, PASSPHRASE_ENV, Trust};
use net::secret::Secret;

/// How often servers look at the network CRL file for a new revocation list.
pub const CRL_POLL: Duration = Duration::from_secs(2);

/// The credential flags (or their environment variables).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NetArgs {
    /// This party's credential: PREFIX.pem (certificate chain) and PREFIX.key (encrypted key;
    /// passphrase from JPKI_CREDENTIAL_PASSPHRASE or JPKI_CREDENTIAL_PASSPHRASE_FILE).
    #[arg(long = "credential", env = "JPKI_CREDENTIAL", global = true)]
    pub credential: Option<PathBuf>,
    /// The network CA certificate (PEM) every party trusts.
    #[arg(long = "network-ca", env = "JPKI_NETWORK_CA", global = true)]
    pub network_ca: Option<PathBuf>,
    /// The network CA's CRL (PEM or DER); servers reload it when the file changes.
    #[arg(long = "network-crl", env = "JPKI_NETWORK_CRL", global = true)]
    pub network_crl: Option<PathBuf>,
}

/// A loaded credential and trust.
#[derive(Debug)]
pub struct Net {
    /// This party's credential.
    pub cred: Credential,
    /// The network CA and its CRL.
    pub trust: Trust,
}

impl NetArgs {
    /// The same settings from the environment alone (for commands without the flags).
    pub fn from_env() -> Self {
        let path = |v: &str| std::env::var_os(v).map(PathBuf::from);
        Self {
            credential: path("JPKI_CREDENTIAL"),
            network_ca: path("JPKI_NETWORK_CA"),
            network_crl: path("JPKI_NETWORK_CRL"),
        }
    }

    /// The trust anchors alone (for verifying notice keys without a credential).
    pub fn trust(&self) -> Result<Trust> {
        let ca = self.network_ca.clone().context("set --network-ca or JPKI_NETWORK_CA (the network CA certificate)")?;
        Ok(Trust { ca_file: ca, crl_file: self.network_crl.clone() })
    }

    /// Loads the credential (decrypting its key) and the trust.
    pub fn load(&self) -> Result<Net> {
        let prefix = self.credential.clone().context(
            "set --credential or JPKI_CREDENTIAL (PREFIX of PREFIX.pem and PREFIX.key from `jpki net issue`)",
        )?;
        let trust = self.trust()?;
        let cred = Credential::load_env(&prefix).with_context(|| format!("credential {}", prefix.display()))?;
        Ok(Net { cred, trust })
    }

    /// Loads the credential and requires it to name `party`.
    pub fn load_as(&self, party: &Party) -> Result<Net> {
        let n = self.load()?;
        anyhow::ensure!(n.cred.party == *party, "the credential names {}, but this node is {party}", n.cred.party);
        Ok(n)
    }
}

impl Net {
    /// A client of the node at `url` (https only) presenting this credential, accepting only a
    /// server that is `expect` (if given).
    pub fn peer(&self, url: &str, expect: Option<Party>) -> Result<Peer> {
        net::client::require_https(url)?;
        Ok(Peer::new(url, net::client::client(&self.cred, &self.trust, expect)?))
    }

    /// Serves `router` over mutual TLS with this credential until SIGTERM or Ctrl-C; the
    /// network CRL is reloaded when it changes.
    pub async fn serve(&self, l: tokio::net::TcpListener, router: axum::Router) -> Result<()> {
        let (config, verifier) = net::tls::server_config(&self.cred, &self.trust)?;
        verifier.spawn_reloader(CRL_POLL);
        let ready = metrics_listener().await?;
        let server = net::server::Server::new(router, net::server::Transport::Tls(config))
            .named(self.cred.party.kind().as_str())
            .revalidate(verifier);
        ready.ready();
        server.serve(l, net::server::signal()).await?;
        Ok(())
    }

    /// The notice verifier of a replica (the network CA's notice keys).
    pub fn verifier(&self) -> Arc<dyn NoticeVerifier> {
        net::notice_key::Verifier::new(self.trust.clone())
    }

    /// The clerk verifier of a node serving windows (clerk keys of the network CA, checked
    /// against its CRL).
    pub fn clerk_verifier(&self) -> Arc<dyn identity::authz::ClerkCheck> {
        Arc::new(net::clerk::ClerkVerifier::new(self.trust.clone()))
    }
}

/// If `JPKI_METRICS_LISTEN` (`HOST:PORT`) is set, serves `/metrics`, `/health` and `/ready` there
/// over plain HTTP (`net::metrics`; meant for loopback or the operators' network); gives the
/// readiness flag the caller sets once it serves.
pub async fn metrics_listener() -> Result<net::metrics::Readiness> {
    let ready = net::metrics::Readiness::default();
    // Without a listener nothing could read the metrics: no recorder is installed, and every
    // `metrics::…!` call is a no-op (`jpki bench metrics` measures both).
    if let Ok(addr) = std::env::var("JPKI_METRICS_LISTEN") {
        net::metrics::install();
        let l = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (JPKI_METRICS_LISTEN)"))?;
        tracing::info!(listen = %addr, "metrics, health and readiness on plain HTTP");
        net::metrics::spawn(l, ready.clone());
    }
    Ok(ready)
}

/// The notice verifier for `trust` (replicas, rebuilds, the bench).
pub fn verifier(trust: &Trust) -> Arc<dyn NoticeVerifier> {
    net::notice_key::Verifier::new(trust.clone())
}

/// The municipality's notice key at `prefix` (PREFIX.pem, PREFIX.key), decrypted with
/// `JPKI_CREDENTIAL_PASSPHRASE`.
pub fn notice_signer(prefix: &std::path::Path, municipality: &LgCode) -> Result<Arc<dyn NoticeSigner>> {
    let pass = Secret::from_env(PASSPHRASE_ENV)?;
    let s = net::notice_key::Signer::load(prefix, &pass, municipality)
        .with_context(|| format!("notice key {}", prefix.display()))?;
    Ok(s)
}

/// Parses `CODE=URL` for a municipality peer.
pub fn parse_municipality(s: &str) -> Result<(LgCode, String), String> {
    let (c, u) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected CODE=https://HOST:PORT"))?;
    let code: LgCode = c.parse().map_err(|e| format!("{e}"))?;
    net::client::require_https(u).map_err(|e| e.to_string())?;
    Ok((code, u.to_owned()))
}
