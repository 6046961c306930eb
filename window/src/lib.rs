//! The municipal window (`jpki serve window`): the pages a clerk works in, served over HTTPS on
//! the clerk's machine next to the PC/SC reader. The process holds the window's own network
//! credential and nothing of the CA's or the municipality's: it changes the register through
//! the municipality's node and issues cards through the CA service, both over mutual TLS as
//! the window, every request signed by the signed-in clerk's own key (`net::clerk`), so each
//! action is attributed to window and clerk at both ends.
//!
//! A clerk signs in with their clerk id and the passphrase of their key file (`CLERKS/ID.pem`,
//! `CLERKS/ID.key` from `jpki net issue --party clerk:LGCODE:ID`); the unlocked key lives in the
//! session, in memory, until sign-out or expiry. Pages are server-rendered (`web`), forms carry
//! CSRF tokens bound to the session, no resident code or name ever appears in a URL or a log.

pub mod ca_client;
pub mod jobs;
pub mod messages;
pub mod pages;
pub mod register;
pub mod signin;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use identity::ids::LgCode;
use identity::party::Party;
use net::clerk::ClerkKey;

/// Where the window's peers are and how it reaches them.
#[derive(Debug, Clone)]
pub struct Peers {
    /// The CA service (`https://…`).
    pub ca_url: String,
    /// Mutual-TLS client as this window, pinned to the CA service's party.
    pub ca: reqwest::Client,
    /// The municipality's node (`https://…`).
    pub node_url: String,
    /// Mutual-TLS client as this window, pinned to `municipality:LGCODE`.
    pub node: reqwest::Client,
    /// The national node, for disclosure reports (`https://…`), if configured.
    pub national_url: Option<String>,
    /// Mutual-TLS client as this window, pinned to `national`.
    pub national: Option<reqwest::Client>,
}

/// The window's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// This window (`window:LGCODE:ID`, from its credential).
    pub window: Party,
    /// Its municipality.
    pub municipality: LgCode,
    /// The directory of the clerks' key files (`ID.pem`, `ID.key`).
    pub clerks: PathBuf,
    /// The PC/SC reader on the desk.
    pub reader: String,
    /// How long to wait for a card to be inserted.
    pub card_wait: Duration,
    /// `prod` or `test`: the hierarchy the window's cards are issued under.
    pub environment: String,
    /// Peers.
    pub peers: Peers,
}

/// A signed-in clerk: the unlocked key, in this process's memory only.
pub struct Clerk {
    /// The clerk's key.
    pub key: Arc<ClerkKey>,
    /// The clerk's id (`C0001`).
    pub id: String,
}

impl std::fmt::Debug for Clerk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clerk").field("id", &self.id).finish_non_exhaustive()
    }
}

/// The running window.
pub struct App {
    /// Configuration.
    pub cfg: Config,
    /// Signed-in clerks by session id.
    pub sessions: web::Sessions<Clerk>,
    /// CSRF tokens, bound to the session id.
    pub csrf: web::Csrf,
    /// Card operations running or finished, by job id.
    pub jobs: jobs::Jobs,
    /// Failed sign-ins per clerk id.
    pub signin_failures: signin::Failures,
    /// The clock (unix seconds); a parameter for tests.
    pub clock: fn() -> i64,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("window", &self.cfg.window).finish_non_exhaustive()
    }
}

/// How long a signed-in clerk stays signed in without a request, and at most.
pub const SESSION_IDLE_SECS: i64 = 15 * 60;
/// A session's absolute lifetime (a working day's shift).
pub const SESSION_LIFETIME_SECS: i64 = 9 * 3600;
/// At most this many sessions at once (a window has one clerk; the cap bounds a flood).
pub const MAX_SESSIONS: usize = 16;

impl App {
    /// A window with no one signed in.
    pub fn new(cfg: Config) -> Arc<Self> {
        Arc::new(Self {
            cfg,
            sessions: web::Sessions::new(SESSION_IDLE_SECS, SESSION_LIFETIME_SECS, MAX_SESSIONS),
            csrf: web::Csrf::new(SESSION_LIFETIME_SECS),
            jobs: jobs::Jobs::default(),
            signin_failures: signin::Failures::default(),
            clock: identity::http::now,
        })
    }

    /// The CA service as `clerk` at this window.
    pub fn ca(&self, clerk: &Clerk) -> anyhow::Result<ca_client::CaHttps> {
        ca_client::CaHttps::new(
            self.cfg.peers.ca.clone(),
            &self.cfg.peers.ca_url,
            self.cfg.window.clone(),
            clerk.key.clone(),
        )
    }

    /// The header line of every page.
    pub fn service_name(&self) -> String {
        match self.cfg.window.station() {
            Some((m, id)) => format!("市区町村窓口 {m} {id}"),
            None => "市区町村窓口".into(),
        }
    }
}

/// The window's router: pages, fragments and assets, every answer with the security headers.
pub fn router(app: Arc<App>) -> axum::Router {
    pages::router(app).merge(web::assets_router()).layer(axum::middleware::from_fn(web::security_headers))
}
