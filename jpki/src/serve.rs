//! `jpki serve <role>`: a municipal, prefecture or national node on one listen address.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Subcommand;
use identity::client::Peer;
use identity::http;
use identity::ids::{LgCode, PrefectureCode};
use identity::law::LawTable;
use identity::municipal::Municipality;
use identity::national::National;
use identity::operator::{Operator, Role as OpRole};
use identity::replica::{self, Tier};
use identity::store::Db;

/// The node roles.
#[derive(Debug, Subcommand)]
pub enum Role {
    /// The validation service: OCSP responder and CRL distribution for signature verifiers.
    Validator(crate::validator_cmd::ServeArgs),
    /// A municipality's register (市町村CS): source of its change notices.
    Municipality {
        /// Database URL (`postgres://…`) or SQLite file path.
        #[arg(long, env = "JPKI_DB")]
        db: String,
        /// The municipality's 6-digit local government code.
        #[arg(long)]
        code: LgCode,
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:8101")]
        listen: String,
        #[command(flatten)]
        peer: PeerSecret,
    },
    /// A prefecture server: pulls its municipalities and keeps their full history.
    Prefecture {
        /// Database URL or SQLite file path.
        #[arg(long, env = "JPKI_DB")]
        db: String,
        /// Two-digit prefecture code.
        #[arg(long)]
        code: PrefectureCode,
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:8201")]
        listen: String,
        /// Base URL of each municipality of the prefecture (repeat).
        #[arg(long = "municipality")]
        municipalities: Vec<String>,
        /// Pull interval in milliseconds.
        #[arg(long, default_value_t = 500)]
        interval_ms: u64,
        #[command(flatten)]
        peer: PeerSecret,
        /// Bearer token of the prefecture's operator API (disclosure, statistics); without
        /// it those routes refuse everyone.
        #[arg(long, env = "JPKI_OPERATOR_TOKEN")]
        operator_token: Option<String>,
        /// Law table (TSV) replacing the built-in seed.
        #[arg(long)]
        law_table: Option<std::path::PathBuf>,
    },
    /// One node of a deployment file (see docs/deployment.example.toml).
    Node {
        /// The node's name in the file.
        name: String,
        /// The deployment file.
        #[arg(long, env = "JPKI_CONFIG")]
        config: std::path::PathBuf,
        #[command(flatten)]
        peer: PeerSecret,
        /// Bearer token of the national operator API (national node only).
        #[arg(long, env = "JPKI_OPERATOR_TOKEN")]
        operator_token: Option<String>,
    },
    /// Validate a deployment file and list its nodes, without starting anything.
    Check {
        /// The deployment file.
        #[arg(long, env = "JPKI_CONFIG")]
        config: std::path::PathBuf,
    },
    /// The national server: pulls the prefectures, projects, feeds, provides.
    National {
        /// Database URL or SQLite file path.
        #[arg(long, env = "JPKI_DB")]
        db: String,
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:8301")]
        listen: String,
        /// Each prefecture server as `CODE=URL`, e.g. `13=http://127.0.0.1:8201` (repeat).
        /// The code restricts which municipalities that server may relay.
        #[arg(long = "prefecture", value_parser = parse_prefecture)]
        prefectures: Vec<(PrefectureCode, String)>,
        /// Bearer token of the national operator API (code pools, disclosure, statistics).
        #[arg(long, env = "JPKI_OPERATOR_TOKEN")]
        operator_token: String,
        /// Law table (TSV) replacing the built-in seed.
        #[arg(long)]
        law_table: Option<std::path::PathBuf>,
        /// Pull interval in milliseconds.
        #[arg(long, default_value_t = 500)]
        interval_ms: u64,
        #[command(flatten)]
        peer: PeerSecret,
    },
}

/// The network's node-to-node secret.
#[derive(Debug, clap::Args)]
pub struct PeerSecret {
    /// Shared secret of the node-to-node routes (replication, 転出証明書, 転入通知, feed):
    /// required from callers, and presented to upstream nodes. Without it those routes are
    /// open (loopback tests only).
    #[arg(long = "peer-token", env = "JPKI_PEER_TOKEN")]
    pub token: Option<String>,
}

impl PeerSecret {
    fn server(&self) -> http::PeerToken {
        if self.token.is_none() {
            eprintln!("warning: no --peer-token: node-to-node routes are open to anyone who can connect");
        }
        http::PeerToken(self.token.clone())
    }

    /// A client of `url` presenting the secret.
    pub fn peer(&self, url: &str) -> Peer {
        Peer::new(url).with_token(self.token.clone())
    }
}

/// Parses `CODE=URL`.
pub(crate) fn parse_prefecture(s: &str) -> Result<(PrefectureCode, String), String> {
    let (c, u) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected CODE=URL"))?;
    let code: PrefectureCode = c.parse().map_err(|e| format!("{e}"))?;
    if !(u.starts_with("http://") || u.starts_with("https://")) {
        return Err(format!("{u:?} is not an http(s) URL"));
    }
    Ok((code, u.to_owned()))
}

pub(crate) fn law_table(path: Option<&std::path::Path>) -> Result<LawTable> {
    match path {
        None => LawTable::seed().context("built-in law table"),
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            LawTable::parse(&text).with_context(|| format!("law table {}", p.display()))
        }
    }
}

/// Serves `router` with the network server's limits (timeouts, connection and in-flight caps)
/// until SIGTERM or Ctrl-C; in-flight requests then finish.
pub(crate) async fn serve_plain(l: tokio::net::TcpListener, router: axum::Router) -> std::io::Result<()> {
    net::server::Server::new(router, net::server::Transport::Plain).serve(l, net::server::signal()).await
}

async fn listen(addr: &str) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))
}

pub async fn run(role: Role) -> Result<()> {
    let role = match role {
        Role::Node { name, config, peer, operator_token } => {
            crate::config::Deployment::load(&config)?.role(&name, peer, operator_token)?
        }
        Role::Check { config } => {
            let d = crate::config::Deployment::load(&config)?;
            for n in &d.nodes {
                println!(
                    "{:<20} {:<12} {:<7} {:<22} {}",
                    n.name,
                    format!("{:?}", n.role),
                    n.code.as_deref().unwrap_or("-"),
                    n.listen,
                    n.db
                );
            }
            println!("{}: {} nodes, valid", config.display(), d.nodes.len());
            return Ok(());
        }
        other => other,
    };
    match role {
        Role::Node { .. } | Role::Check { .. } => anyhow::bail!("a deployment node resolves to a concrete role"),
        Role::Validator(a) => crate::validator_cmd::serve(a).await?,
        Role::Municipality { db, code, listen: addr, peer } => {
            let m = Municipality::open(Db::open(&db).await?, code.clone())
                .await?
                .with_signer(crate::notice_keys::signer(&code))
                .await?;
            let l = listen(&addr).await?;
            eprintln!("municipality {code} listening on {}", l.local_addr()?);
            serve_plain(l, http::municipal_router(m, peer.server())).await?;
        }
        Role::Prefecture {
            db,
            code,
            listen: addr,
            municipalities,
            interval_ms,
            peer,
            operator_token,
            law_table: lt,
        } => {
            let law = Arc::new(law_table(lt.as_deref())?);
            let db = Db::open(&db).await?;
            identity::store::claim_identity(&db, "prefecture", code.as_str()).await?;
            let provider = identity::provision::Provider::open(db.clone(), law).await?;
            let peers = municipalities.iter().map(|u| (peer.peer(u), Some(code.as_str().to_owned()))).collect();
            tokio::spawn(replica::run_puller(
                db.clone(),
                Tier::Prefecture,
                crate::notice_keys::verifier(),
                peers,
                Duration::from_millis(interval_ms),
            ));
            let l = listen(&addr).await?;
            eprintln!("prefecture {code} listening on {}", l.local_addr()?);
            let state = http::PrefectureState {
                db,
                code: code.as_str().to_owned(),
                peer_token: peer.server(),
                provider,
                operator_token: operator_token.unwrap_or_default(),
            };
            serve_plain(l, http::prefecture_router(state)).await?;
        }
        Role::National { db, listen: addr, prefectures, operator_token, law_table: lt, interval_ms, peer } => {
            anyhow::ensure!(operator_token.len() >= 16, "the operator token must be at least 16 characters");
            let law = Arc::new(law_table(lt.as_deref())?);
            let national = National::open(Db::open(&db).await?, law).await?;
            let peers = prefectures.iter().map(|(c, u)| (peer.peer(u), Some(c.as_str().to_owned()))).collect();
            tokio::spawn(replica::run_puller(
                national.db().clone(),
                Tier::National,
                crate::notice_keys::verifier(),
                peers,
                Duration::from_millis(interval_ms),
            ));
            let l = listen(&addr).await?;
            eprintln!("national node listening on {}", l.local_addr()?);
            let operator = Operator::new("national-api", OpRole::NationalOperator)?;
            serve_plain(
                l,
                http::national_router(http::NationalState {
                    national,
                    operator_token,
                    operator,
                    peer_token: peer.server(),
                }),
            )
            .await?;
        }
    }
    Ok(())
}
