//! `jpki serve window`: the municipal window's pages (crate `window`) on the clerk's machine,
//! HTTPS on a loopback address with the window's own network credential (issue it with
//! `--host 127.0.0.1`); the clerk's browser trusts the network CA. The window reaches the CA
//! service and its municipality's node over mutual TLS with the same credential, and signs each
//! request with the signed-in clerk's key. It holds no CA secret and no register: no database,
//! no notice key, no card issuer key.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use identity::party::{Party, PartyKind};

use crate::netargs::{NetArgs, metrics_listener};

/// `jpki serve window`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where the pages are served (HTTPS; a loopback address: the browser is on this machine).
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// Directory of the clerks' key files (`ID.pem`, `ID.key` from `jpki net issue --party
    /// clerk:LGCODE:ID`); a clerk signs in with ID and the key's passphrase.
    #[arg(long, env = "JPKI_CLERKS")]
    pub clerks: PathBuf,
    /// The CA service (`https://HOST:PORT`).
    #[arg(long = "ca", env = "JPKI_CA_URL")]
    pub ca_url: String,
    /// The party the CA service's certificate must name.
    #[arg(long, env = "JPKI_CA_PARTY", default_value = "ca:jpki-ca")]
    pub ca_party: String,
    /// The municipality's node (`https://HOST:PORT`).
    #[arg(long = "node", env = "JPKI_MUNICIPALITY_URL")]
    pub node_url: String,
    /// The national node, for residents' disclosure reports (`https://HOST:PORT`).
    #[arg(long = "national", env = "JPKI_NATIONAL_URL")]
    pub national_url: Option<String>,
    /// The PC/SC reader on the desk.
    #[arg(long, env = "JPKI_CARD_READER", default_value = "Virtual PCD 00 00")]
    pub reader: String,
    /// Seconds to wait for a card to be inserted.
    #[arg(long, default_value_t = 10)]
    pub wait: u64,
    /// prod or test: the hierarchy of the cards this window issues.
    #[arg(long, default_value = "prod")]
    pub env: String,
    #[command(flatten)]
    pub net: NetArgs,
}

/// Runs the window until SIGTERM or Ctrl-C.
pub async fn serve(a: ServeArgs) -> Result<()> {
    anyhow::ensure!(
        a.listen.ip().is_loopback(),
        "--listen {}: the window's pages are served on a loopback address only (the clerk's browser is on this machine)",
        a.listen
    );
    anyhow::ensure!(matches!(a.env.as_str(), "prod" | "test"), "--env must be prod or test");
    let net = a.net.load()?;
    let window = net.cred.party.clone();
    anyhow::ensure!(
        window.kind() == PartyKind::Window,
        "the credential names {window}, not a window (window:LGCODE:ID)"
    );
    let (municipality, _) = window.station().context("the window names no municipality")?;
    anyhow::ensure!(a.clerks.is_dir(), "--clerks {}: not a directory", a.clerks.display());
    let client = |url: &str, party: Party| -> Result<reqwest::Client> {
        net::client::require_https(url)?;
        Ok(net::client::client(&net.cred, &net.trust, Some(party))?)
    };
    let ca_party: Party = a.ca_party.parse().context("--ca-party")?;
    let peers = window::Peers {
        ca: client(&a.ca_url, ca_party)?,
        ca_url: a.ca_url.clone(),
        node: client(&a.node_url, Party::Municipality(municipality.clone()))?,
        node_url: a.node_url.clone(),
        national: a.national_url.as_deref().map(|u| client(u, Party::National)).transpose()?,
        national_url: a.national_url.clone(),
    };
    let cfg = window::Config {
        window: window.clone(),
        municipality,
        clerks: a.clerks.clone(),
        reader: a.reader.clone(),
        card_wait: Duration::from_secs(a.wait),
        environment: a.env.clone(),
        peers,
    };
    let app = window::App::new(cfg);
    let config = net::tls::page_server_config(&net.cred)?;
    let l = tokio::net::TcpListener::bind(a.listen).await.with_context(|| format!("cannot listen on {}", a.listen))?;
    let ready = metrics_listener().await?;
    tracing::info!(party = %window, listen = %l.local_addr()?, "window pages listening (HTTPS)");
    let server = net::server::Server::new(window::router(app), net::server::Transport::Page(config)).named("window");
    ready.ready();
    server.serve(l, net::server::signal()).await?;
    Ok(())
}
