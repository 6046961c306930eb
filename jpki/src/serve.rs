//! `jpki serve <role>`: a municipal, prefecture or national node on one listen address, over
//! mutual TLS with the node's own network credential (`--credential`, `--network-ca`,
//! `--network-crl`, passphrase from `JPKI_CREDENTIAL_PASSPHRASE`); the credential must name
//! the node (`municipality:131016`, `prefecture:13`, `national`). Peers are `https://` only,
//! and each upstream must present the party it is configured as. The prefecture and national
//! nodes also serve the operator console (`/console/…`, identity::console) on that listener.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Subcommand;
use identity::console::{self, Console};
use identity::http;
use identity::ids::{LgCode, PrefectureCode};
use identity::law::LawTable;
use identity::municipal::Municipality;
use identity::national::National;
use identity::party::Party;
use identity::replica::{self, Tier};
use identity::store::Db;

use crate::netargs::{NetArgs, parse_municipality};

/// The node roles.
#[derive(Debug, Subcommand)]
pub enum Role {
    /// The validation service: OCSP responder and CRL distribution for signature verifiers.
    Validator(crate::validator_cmd::ServeArgs),
    /// Scale-out OCSP: a signer that pre-signs one partition of the serials into the shared
    /// store (Redis Cluster), re-signs before they go stale and publishes an invalidation after
    /// each revocation. Same responder keys and status source as `validator`.
    OcspSigner(crate::ocsp_store_cmd::SignerArgs),
    /// Scale-out OCSP: a stateless responder serving the store's pre-signed responses from a
    /// bounded hot set; it holds no key and no access to the CA.
    OcspResponder(crate::ocsp_store_cmd::ResponderArgs),
    /// The certificate authority: issuance for windows, revocation and CRLs for operators,
    /// the status stream for validators; the only process holding CA keys and the card
    /// issuer master key.
    Ca(crate::ca_serve::ServeArgs),
    /// The municipal window's pages for its clerks (HTTPS on loopback), next to the card
    /// reader; acts through the CA service and the municipality's node as the window.
    Window(crate::window_serve::ServeArgs),
    /// A municipality's register (市町村CS): source of its signed change notices.
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
        /// The municipality's notice key (PREFIX.pem, PREFIX.key from `jpki net issue
        /// --notice-key`); every change notice is signed with it.
        #[arg(long, env = "JPKI_NOTICE_KEY")]
        notice_key: std::path::PathBuf,
        /// Another municipality's node as `CODE=https://HOST:PORT` (repeat): the peer directory
        /// a window's move-in reaches the old municipality through (its certificate must name
        /// `municipality:CODE`).
        #[arg(long = "peer", value_parser = parse_municipality)]
        peers: Vec<(LgCode, String)>,
        /// コンビニ交付: serve kiosks (docs/kiosk.md).
        #[command(flatten)]
        kiosk: crate::kiosk_cmd::KioskServeArgs,
        /// 広域交付 (docs/widearea.md): the national node (`https://HOST:PORT`, reached with this
        /// node's credential, pinned to `national`) this node's windows' requests for other
        /// municipalities' residents are relayed to. Without it they are refused
        /// `wide_area_closed`. Copies for other municipalities are issued with
        /// --kiosk-document-key.
        #[arg(long = "national", env = "JPKI_WIDE_AREA_NATIONAL")]
        wide_area_national: Option<String>,
        #[command(flatten)]
        net: NetArgs,
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
        /// Each municipality of the prefecture as `CODE=https://HOST:PORT` (repeat).
        #[arg(long = "municipality", value_parser = parse_municipality)]
        municipalities: Vec<(LgCode, String)>,
        /// Pull interval in milliseconds.
        #[arg(long, default_value_t = 500)]
        interval_ms: u64,
        /// Law table (TSV) replacing the built-in seed.
        #[arg(long)]
        law_table: Option<std::path::PathBuf>,
        #[command(flatten)]
        reads: ReadArgs,
        #[command(flatten)]
        net: NetArgs,
    },
    /// One node of a deployment file (see docs/deployment.example.toml).
    Node {
        /// The node's name in the file.
        name: String,
        /// The deployment file.
        #[arg(long, env = "JPKI_CONFIG")]
        config: std::path::PathBuf,
    },
    /// Validate a deployment file and every node's credential (chain to the network CA,
    /// validity, the party matching the node's entry), without starting anything.
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
        /// Each prefecture server as `CODE=https://HOST:PORT` (repeat). The code restricts
        /// which municipalities that server may relay, and its certificate must name it.
        #[arg(long = "prefecture", value_parser = parse_prefecture)]
        prefectures: Vec<(PrefectureCode, String)>,
        /// Law table (TSV) replacing the built-in seed.
        #[arg(long)]
        law_table: Option<std::path::PathBuf>,
        /// Pull interval in milliseconds.
        #[arg(long, default_value_t = 500)]
        interval_ms: u64,
        #[command(flatten)]
        reads: ReadArgs,
        #[command(flatten)]
        wide_area: WideAreaArgs,
        #[command(flatten)]
        net: NetArgs,
    },
}

/// How the national node relays 広域交付 (docs/widearea.md).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct WideAreaArgs {
    /// Every municipality's node, one `CODE=https://HOST:PORT` a line (`#` comments): where the
    /// national node asks a resident's municipality to issue a 広域交付 copy (each must present
    /// `municipality:CODE`). Without it every 広域交付 request is refused `issuer_unavailable`.
    #[arg(long, env = "JPKI_MUNICIPAL_DIRECTORY")]
    pub municipal_directory: Option<std::path::PathBuf>,
    /// 広域交付 requests per second admitted from one municipality (sustained).
    #[arg(long, default_value_t = identity::widearea::DEFAULT_RATE.per_second)]
    pub wide_area_rate: u32,
    /// 広域交付 requests one municipality may make at once (burst).
    #[arg(long, default_value_t = identity::widearea::DEFAULT_RATE.burst)]
    pub wide_area_burst: u32,
}

impl WideAreaArgs {
    /// The relay: the directory read and each entry a client pinned to its municipality.
    fn relay(&self, net: &crate::netargs::Net) -> Result<identity::widearea::Relay> {
        anyhow::ensure!(
            self.wide_area_rate >= 1 && self.wide_area_burst >= 1,
            "--wide-area-rate and --wide-area-burst must be at least 1"
        );
        let rate = identity::rate_limit::Rate::new(self.wide_area_rate, self.wide_area_burst);
        let mut directory = std::collections::BTreeMap::new();
        if let Some(path) = &self.municipal_directory {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            for (i, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let (code, url) =
                    parse_municipality(line).map_err(|e| anyhow::anyhow!("{} line {}: {e}", path.display(), i + 1))?;
                let peer = net.peer(&url, Some(Party::Municipality(code.clone())))?;
                anyhow::ensure!(
                    directory.insert(code.clone(), peer).is_none(),
                    "{} line {}: municipality {code} is listed twice",
                    path.display(),
                    i + 1
                );
            }
            tracing::info!(municipalities = directory.len(), "広域交付 relay: municipal directory loaded");
        }
        Ok(identity::widearea::Relay { directory, rate })
    }
}

/// Provision reads on a hot standby (national and prefecture nodes; docs/scale-identity.md).
#[derive(Debug, Clone, clap::Args)]
pub struct ReadArgs {
    /// A hot standby of --db's PostgreSQL cluster (`postgres://…`, same database) for provision
    /// reads; the provision log and everything else is written on --db. Refused at start
    /// unless it is a standby of that primary.
    #[arg(long, env = "JPKI_PG_READ_URL")]
    pub pg_read_url: Option<String>,
    /// Largest replay lag of the standby, in milliseconds, at which provisions still read it;
    /// beyond it (or when it is unreachable or promoted) they read the primary.
    #[arg(long, env = "JPKI_MAX_READ_LAG_MS", default_value_t = 5_000)]
    pub max_read_lag_ms: u64,
}

impl ReadArgs {
    /// The checked standby, if one is given.
    async fn connect(&self, primary: &Db) -> Result<Option<identity::standby::ReadStandby>> {
        let Some(url) = &self.pg_read_url else { return Ok(None) };
        let max = Duration::from_millis(self.max_read_lag_ms);
        let standby = identity::standby::ReadStandby::connect(url, primary, max)
            .await
            .context("--pg-read-url: provisions will not read from this server")?;
        tracing::info!(max_lag_ms = self.max_read_lag_ms, "provision reads on the hot standby");
        tokio::spawn(standby.clone().watch(Duration::from_secs(1)));
        Ok(Some(standby))
    }
}

/// Parses `CODE=https://HOST:PORT` for a prefecture peer.
pub(crate) fn parse_prefecture(s: &str) -> Result<(PrefectureCode, String), String> {
    let (c, u) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected CODE=https://HOST:PORT"))?;
    let code: PrefectureCode = c.parse().map_err(|e| format!("{e}"))?;
    net::client::require_https(u).map_err(|e| e.to_string())?;
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

async fn listen(addr: &str) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))
}

pub async fn run(role: Role) -> Result<()> {
    let role = match role {
        Role::Node { name, config } => crate::config::Deployment::load(&config)?.role(&name)?,
        Role::Check { config } => {
            let d = crate::config::Deployment::load(&config)?;
            for n in &d.nodes {
                let party = d.check_credential(n)?;
                println!(
                    "{:<20} {:<12} {:<7} {:<22} {}",
                    n.name,
                    format!("{:?}", n.role),
                    n.code.as_deref().unwrap_or("-"),
                    n.listen,
                    party
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
        Role::OcspSigner(a) => crate::ocsp_store_cmd::signer(a).await?,
        Role::OcspResponder(a) => crate::ocsp_store_cmd::responder(a).await?,
        Role::Ca(a) => crate::ca_serve::serve(a).await?,
        Role::Window(a) => crate::window_serve::serve(a).await?,
        Role::Municipality { db, code, listen: addr, notice_key, peers, kiosk, wide_area_national, net } => {
            let net = net.load_as(&Party::Municipality(code.clone()))?;
            let signer = crate::netargs::notice_signer(&notice_key, &code)?;
            let m = Municipality::open(Db::open(&db).await?, code.clone()).await?.with_signer(signer).await?;
            let mut directory = std::collections::BTreeMap::new();
            for (c, url) in &peers {
                anyhow::ensure!(*c != code, "--peer {c}: a municipality is not its own peer");
                let peer = net.peer(url, Some(Party::Municipality(c.clone())))?;
                anyhow::ensure!(directory.insert(c.clone(), peer).is_none(), "--peer {c} is given twice");
            }
            let windows = http::Windows { clerks: net.clerk_verifier(), peers: directory };
            let documents = kiosk.documents()?;
            let kiosks = kiosk.kiosks(&net, documents.clone())?;
            let national = match &wide_area_national {
                Some(url) => Some(net.peer(url, Some(Party::National)).context("--national")?),
                None => None,
            };
            tracing::info!(relay = national.is_some(), issue = documents.is_some(), "広域交付");
            let wide = identity::widearea::WideArea { national, documents };
            let l = listen(&addr).await?;
            tracing::info!(municipality = %code, listen = %l.local_addr()?, "municipal node listening (mutual TLS)");
            net.serve(l, http::municipal_router_wide(m, windows, kiosks, wide)).await?;
        }
        Role::Prefecture { db, code, listen: addr, municipalities, interval_ms, law_table: lt, reads, net } => {
            let net = net.load_as(&Party::Prefecture(code.clone()))?;
            let law = Arc::new(law_table(lt.as_deref())?);
            let db = Db::open(&db).await?;
            identity::store::claim_identity(&db, "prefecture", code.as_str()).await?;
            let mut provider = identity::provision::Provider::open(db.clone(), law).await?;
            if let Some(standby) = reads.connect(&db).await? {
                provider = provider.with_standby(standby);
            }
            tokio::spawn(identity::store::keep_partitions(db.clone()));
            let mut peers = Vec::new();
            for (m, url) in &municipalities {
                anyhow::ensure!(m.prefecture() == code, "municipality {m} is not in prefecture {}", code.as_str());
                peers.push((net.peer(url, Some(Party::Municipality(m.clone())))?, Some(code.as_str().to_owned())));
            }
            let upstream = peers.iter().map(|(p, _)| p.clone()).collect();
            tokio::spawn(replica::run_puller(
                db.clone(),
                Tier::Prefecture,
                net.verifier(),
                peers,
                Duration::from_millis(interval_ms),
            ));
            let l = listen(&addr).await?;
            tracing::info!(prefecture = code.as_str(), listen = %l.local_addr()?, "prefecture node listening (mutual TLS)");
            let console = Console::prefecture(db.clone(), code.clone(), provider.clone(), upstream);
            let router = http::prefecture_router(http::PrefectureState { db, code, provider });
            net.serve(l, router.merge(console::router(console))).await?;
        }
        Role::National { db, listen: addr, prefectures, law_table: lt, interval_ms, reads, wide_area, net } => {
            let net = net.load_as(&Party::National)?;
            let relay = wide_area.relay(&net)?;
            let law = Arc::new(law_table(lt.as_deref())?);
            let mut national = National::open(Db::open(&db).await?, law).await?;
            if let Some(standby) = reads.connect(national.db()).await? {
                national = national.with_standby(standby);
            }
            tokio::spawn(identity::store::keep_partitions(national.db().clone()));
            let mut peers = Vec::new();
            for (c, url) in &prefectures {
                peers.push((net.peer(url, Some(Party::Prefecture(c.clone())))?, Some(c.as_str().to_owned())));
            }
            let upstream = peers.iter().map(|(p, _)| p.clone()).collect();
            tokio::spawn(replica::run_puller(
                national.db().clone(),
                Tier::National,
                net.verifier(),
                peers,
                Duration::from_millis(interval_ms),
            ));
            let l = listen(&addr).await?;
            tracing::info!(listen = %l.local_addr()?, "national node listening (mutual TLS)");
            let console = Console::national(national.clone(), upstream);
            let router = http::national_router_relay(http::NationalState { national }, net.clerk_verifier(), relay);
            net.serve(l, router.merge(console::router(console))).await?;
        }
    }
    Ok(())
}
