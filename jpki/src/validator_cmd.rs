//! `jpki validator enroll` (the validator asks the CA service, over mutual TLS with its own
//! `validator:<name>` credential, for a delegated OCSP responder certificate per CA, for a
//! responder key it generates and keeps; it never holds a CA key or passphrase), `jpki validator verifier-add|usage` (the
//! verification API's registered verifiers and their query log) and `jpki serve validator`
//! (the OCSP responder and CRL distribution over plain HTTP; the verification API over mutual
//! TLS with the validator's network credential). The responder keys' passphrase comes from
//! JPKI_VALIDATOR_PASSPHRASE, the credential's from JPKI_CREDENTIAL_PASSPHRASE.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ca::hierarchy::Environment;
use ca::status::{StatusClient, StatusReader, StatusSource};
use clap::{Args, Subcommand};
use identity::http::now;
use net::secret::Secret;
use validator::responder::{Responder, Service};

use crate::netargs::NetArgs;

/// Validator set-up commands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// For every CA's current generation: generate a responder key in --out (encrypted
    /// PKCS#8) and have the CA issue its delegated OCSP responder certificate.
    Enroll {
        /// The CA service (`https://HOST:PORT`).
        #[arg(long = "ca", env = "JPKI_CA_URL")]
        ca_url: String,
        /// The party the CA service's certificate must name.
        #[arg(long, env = "JPKI_CA_PARTY", default_value = "ca:jpki-ca")]
        ca_party: String,
        #[command(flatten)]
        net: NetArgs,
        /// The validator's key directory.
        #[arg(long)]
        out: PathBuf,
        /// Validity of the responder certificates (days, at most 366).
        #[arg(long, default_value_t = 90)]
        days: i64,
        /// Responder key algorithm: `ca` (each responder key in the algorithm of the CA
        /// generation it answers for, so an ML-DSA-65 generation's responses are ML-DSA-65
        /// signed), or one of rsa2048, p384, ml-dsa-65 for all.
        #[arg(long, default_value = "ca")]
        algorithm: String,
    },
    /// Register a verifier (署名検証者) for the verification API. It connects over mutual TLS
    /// with a network credential naming `agency:<ID>` (`jpki net issue --party agency:<ID>`).
    VerifierAdd {
        /// The validator's database (SQLite path or postgres:// URL).
        #[arg(long, env = "JPKI_VALIDATOR_DB", default_value = "jpki-validator.db")]
        db: String,
        /// Verifier id: the agency name in its network credential (1–32 of A–Z a–z 0–9 - _ .).
        #[arg(long)]
        id: String,
        /// Name.
        #[arg(long)]
        name: String,
        /// A purpose it may query for (repeat).
        #[arg(long = "purpose", required = true)]
        purposes: Vec<String>,
    },
    /// Queries per verifier, purpose and kind (audit and billing).
    Usage {
        /// The validator's database.
        #[arg(long, env = "JPKI_VALIDATOR_DB", default_value = "jpki-validator.db")]
        db: String,
        /// Since (unix seconds).
        #[arg(long, default_value_t = 0)]
        since: i64,
    },
}

/// Where a validator (or an OCSP signer) reads the CA's status: exactly one of the CA's
/// database, read only, and the CA service's status stream.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The CA's database, opened read only and never migrated (certificate status, revocations
    /// and CA certificates, through `ca::status`): a SQLite file is opened with `mode=ro`; for
    /// PostgreSQL give a role with SELECT only on the status tables. Exactly one of --ca-db and
    /// --ca-service.
    #[arg(long, env = "JPKI_CA_DB", required_unless_present = "ca_service", conflicts_with = "ca_service")]
    pub ca_db: Option<String>,
    /// The CA service (`https://HOST:PORT`, `jpki serve ca`): read the status from its status
    /// stream over mutual TLS with the validator's network credential, never opening the CA's
    /// database. Exactly one of --ca-db and --ca-service (a flag only, so that the
    /// JPKI_CA_URL of `validator enroll` does not select it).
    #[arg(long = "ca-service", required_unless_present = "ca_db")]
    pub ca_service: Option<String>,
    /// The party the CA service's certificate must name (with --ca-service).
    #[arg(long, env = "JPKI_CA_PARTY", default_value = "ca:jpki-ca")]
    pub ca_party: String,
}

impl StatusArgs {
    /// Opens the source; `net` is the validator's credential (needed with --ca-service).
    pub(crate) async fn open(&self, net: Option<&crate::netargs::Net>) -> Result<StatusSource> {
        status_source(self.ca_db.as_deref(), self.ca_service.as_deref(), &self.ca_party, net).await
    }
}

/// `jpki serve validator`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where the CA's status is read.
    #[command(flatten)]
    pub status: StatusArgs,
    /// Trust the test hierarchy's roots (`test-*`) on the verification API instead of the
    /// production roots. Never in production.
    #[arg(long)]
    pub test_hierarchy: bool,
    /// The validator's responder keys and certificates (from `jpki validator enroll`).
    #[arg(long)]
    pub responders: PathBuf,
    /// Where `jpki ca crl --out` publishes; served under /crl/.
    #[arg(long)]
    pub crl_dir: Option<PathBuf>,
    /// Listen address of the public routes, plain HTTP: OCSP and CRLs (the OCSP URL in the
    /// certificates is http://HOST:PORT/ocsp), /health.
    #[arg(long, default_value = "127.0.0.1:8180")]
    pub listen: String,
    /// Hours from thisUpdate to nextUpdate of each response; re-signed at half-life.
    #[arg(long, default_value_t = 24)]
    pub validity_hours: i64,
    /// Live-signed responses per second (nonce, multi-certificate, cache miss); beyond it
    /// clients get tryLater.
    #[arg(long, default_value_t = 500.0)]
    pub live_rate: f64,
    /// The least time between two reads of new revocations when the last found none
    /// (milliseconds). Between reads it long-polls the CA's revocation head, so a revocation
    /// is read when it commits, not on this timer.
    #[arg(long, default_value_t = 200)]
    pub poll_ms: u64,
    /// The validator's own database (registered verifiers and their query log); enables the
    /// verification API (POST /v1/verify/cert, /v1/verify/doc), which then needs --api-listen
    /// and a network credential naming a `validator:<name>` party.
    #[arg(long, env = "JPKI_VALIDATOR_DB")]
    pub db: Option<String>,
    /// Listen address of the verification API, mutual TLS only (needs --db).
    #[arg(long, requires = "db")]
    pub api_listen: Option<String>,
    /// The validator's network credential (a `validator:<name>` party), for the verification
    /// API and for the CA service with --ca-service.
    #[command(flatten)]
    pub net: NetArgs,
    /// Enrolling CA generations created after start-up.
    #[command(flatten)]
    pub enroll: crate::enrol::AutoEnrollArgs,
}

/// The responder keys' passphrase: JPKI_VALIDATOR_PASSPHRASE or the file named by
/// JPKI_VALIDATOR_PASSPHRASE_FILE, at least 12 bytes (it protects scrypt-encrypted key files).
pub(crate) fn passphrase() -> Result<Secret> {
    Ok(Secret::from_env("JPKI_VALIDATOR_PASSPHRASE")?.passphrase("JPKI_VALIDATOR_PASSPHRASE")?)
}

/// Runs a validator set-up command.
pub async fn run(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::VerifierAdd { db, id, name, purposes } => {
            let db = validator::schema::open(&db).await.with_context(|| format!("cannot open {db}"))?;
            let party = validator::api::add_verifier(&db, &id, &name, &purposes, now()).await?;
            let short = format!("agency:{id}");
            println!(
                "verifier {id} registered for {}; it connects to the verification API over mutual TLS \
                 with a network credential naming {short} ({party}; `jpki net issue --party {short}`)",
                purposes.join(", ")
            );
        }
        Cmd::Usage { db, since } => {
            let db = validator::schema::open(&db).await.with_context(|| format!("cannot open {db}"))?;
            for (v, p, k, n) in validator::api::usage(&db, since).await? {
                println!("{v:<20} {p:<24} {k:<5} {n}");
            }
        }
        Cmd::Enroll { ca_url, ca_party, net, out, days, algorithm } => {
            enroll(&ca_url, &ca_party, &net, &out, days, &algorithm).await?;
        }
    }
    Ok(())
}

/// One responder key per live CA generation (pending, issuing or retired: every generation
/// that still has certificates to answer for), each certified by the CA service for that
/// generation ([`crate::enrol::Enroller`], the code a running validator enrols with too).
async fn enroll(ca_url: &str, ca_party: &str, net: &NetArgs, out: &Path, days: i64, algorithm: &str) -> Result<()> {
    let n = credential(net)?;
    let e = crate::enrol::Enroller::new(ca_url, ca_party, &n, out, days, algorithm, passphrase()?)?;
    let cas = e.generations().await?;
    let bar = crate::progress::Bar::new("validator enroll", "CA generations");
    let (mut enrolled, mut skipped) = (0, 0);
    for (i, c) in cas.iter().enumerate() {
        bar.set(i as u64, cas.len() as u64);
        if !crate::enrol::live(c) {
            bar.suspend(|| println!("{} g{}: {}, no responder", c.ca, c.generation, c.state));
            skipped += 1;
            continue;
        }
        match e.enrol(c).await? {
            crate::enrol::Enrolled::Present { key } => {
                bar.suspend(|| println!("{}: responder key exists, skipped", key.display()));
                skipped += 1;
            }
            crate::enrol::Enrolled::Issued { serial, key } => {
                enrolled += 1;
                bar.suspend(|| {
                    println!(
                        "{} g{}: responder certificate {serial} (id-kp-OCSPSigning, ocsp-nocheck) -> {}",
                        c.ca,
                        c.generation,
                        key.with_extension("pem").display()
                    )
                });
            }
        }
    }
    bar.set(cas.len() as u64, cas.len() as u64);
    bar.finish(format_args!("{enrolled} responder certificates issued, {skipped} CA generations skipped"));
    Ok(())
}

/// The responders in `dir` (every `.key` with its `.pem`). An empty directory is an error
/// unless `may_be_empty` (a validator that enrols while running).
pub(crate) fn responders(dir: &Path, pass: &Secret, may_be_empty: bool) -> Result<Vec<Responder>> {
    if may_be_empty {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "key"))
        .collect();
    entries.sort();
    let mut out = Vec::new();
    for key_path in entries {
        out.push(crate::enrol::load_responder(&key_path, pass)?);
    }
    if out.is_empty() && !may_be_empty {
        bail!("no responder keys in {} (run `jpki validator enroll`, or serve with --auto-enroll)", dir.display());
    }
    Ok(out)
}

/// The validator's network credential: it must name a `validator:<name>` party.
pub(crate) fn credential(net: &NetArgs) -> Result<crate::netargs::Net> {
    let n = net.load()?;
    anyhow::ensure!(
        matches!(n.cred.party, identity::party::Party::Validator(_)),
        "the credential names {}, but the validator (its verification API, its link to the CA service) \
         is a validator:<name> party",
        n.cred.party
    );
    Ok(n)
}

/// Where the CA's status is read: its database read only, or the CA service's status stream
/// over mutual TLS with the validator's credential `net`.
async fn status_source(
    ca_db: Option<&str>,
    ca_service: Option<&str>,
    ca_party: &str,
    net: Option<&crate::netargs::Net>,
) -> Result<StatusSource> {
    Ok(match (ca_db, ca_service, net) {
        (Some(db), None, _) => StatusReader::open(db).await.context("cannot open the CA database read only")?.into(),
        (None, Some(url), Some(n)) => {
            net::client::require_https(url)?;
            let http = net::client::client(&n.cred, &n.trust, Some(ca_party.parse().context("--ca-party")?))?;
            let c = StatusClient::new(url, http);
            c.head().await.with_context(|| format!("cannot read the status stream of the CA service {url}"))?;
            tracing::info!(ca_service = %url, party = %n.cred.party, "certificate status from the CA service");
            c.into()
        }
        _ => bail!("give exactly one of --ca-db and --ca-service"),
    })
}

/// The status loop of a validator and of an OCSP signer: reads the new revocations and signs
/// them, then long-polls the CA's revocation head (at most 10 s), so a revocation is read as soon
/// as it is committed; with nothing new (a CA service without long polls, an error) the next
/// read is `poll` after the previous one (always, with `long_poll` false: the timer-only
/// reference of `jpki bench peak`). Every minute it re-signs what is past half its
/// validity (after reading every revocation up to the current sequence) and, given the CRL
/// directory a validator serves, refreshes its gauges. Reads are paced
/// ([`identity::client::Pace`]), so under load each read takes a bigger batch.
pub(crate) async fn follow_status(
    poller: Arc<Service>,
    source: StatusSource,
    poll: Duration,
    served: Option<PathBuf>,
    long_poll: bool,
) {
    let mut last_refresh = now();
    let mut pace = identity::client::Pace::default();
    loop {
        pace.wait().await;
        let started = tokio::time::Instant::now();
        match poller.poll(now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("{n} new revocations signed"),
            Err(e) => tracing::warn!("status poll failed: {e}"),
        }
        pace.ran(started);
        if now() - last_refresh >= 60 {
            last_refresh = now();
            if let Some(dir) = served.clone() {
                let _ = tokio::task::spawn_blocking(move || validator::served::record_crl_gauges(&dir)).await;
            }
            match poller.refresh(now()).await {
                Ok(n) if n > 0 => tracing::info!("{n} responses re-signed before going stale"),
                Ok(_) => {}
                Err(e) => tracing::warn!("refresh failed: {e}"),
            }
        }
        let seen = poller.seen_seq();
        if !(long_poll && source.head_wait(seen, identity::client::MAX_WAIT_MS).await.is_ok_and(|head| head > seen)) {
            tokio::time::sleep_until(started + poll).await;
        }
    }
}

/// With `on` (see [`crate::enrol::AutoEnrollArgs::enabled`]), starts the task that enrols, into
/// `dir`, the CA generations `svc` has no responder for ([`crate::enrol::auto_enroll`]).
pub(crate) fn spawn_auto_enroll(
    svc: &Arc<Service>,
    status: &StatusArgs,
    net: Option<&crate::netargs::Net>,
    dir: &Path,
    args: &crate::enrol::AutoEnrollArgs,
    pass: Secret,
    on: bool,
) -> Result<()> {
    let (true, Some(url), Some(n)) = (on, status.ca_service.as_deref(), net) else {
        return Ok(());
    };
    let e = crate::enrol::Enroller::new(url, &status.ca_party, n, dir, args.enroll_days, &args.enroll_algorithm, pass)?;
    tracing::info!(ca_service = %url, dir = %dir.display(), "auto-enroll: CA generations created from now on get a responder without a restart");
    let every = Duration::from_secs(args.auto_enroll_interval_secs.max(1));
    tokio::spawn(crate::enrol::auto_enroll(svc.clone(), e, every));
    Ok(())
}

/// Runs the validator until SIGINT/SIGTERM.
pub async fn serve(a: ServeArgs) -> Result<()> {
    let pass = passphrase()?;
    // The API's listener and credential are checked before any work (clap already refuses
    // --api-listen without --db).
    let api_conf = match (&a.db, &a.api_listen) {
        (None, _) => None,
        (Some(_), None) => bail!("--db serves the verification API, which needs --api-listen (mutual TLS)"),
        (Some(db), Some(addr)) => Some((db.clone(), addr.clone())),
    };
    // The network credential: for the verification API and for the CA service's status stream.
    let net = if api_conf.is_some() || a.status.ca_service.is_some() { Some(credential(&a.net)?) } else { None };
    let auto = a.enroll.enabled(a.status.ca_service.as_deref())?;
    let status = a.status.open(net.as_ref()).await?;
    let svc = Arc::new(
        Service::open(status.clone(), responders(&a.responders, &pass, auto)?, a.validity_hours * 3600, a.live_rate)
            .await?,
    );
    let bar = crate::progress::Bar::new("validator", "certificates pre-signed");
    let n = svc.load_with(now(), &bar.callback()).await?;
    bar.finish(format_args!(
        "{} CA generations, {n} certificates pre-signed ({} responses)",
        svc.issuers().len(),
        svc.cached()
    ));
    let poller = svc.clone();
    let poll = Duration::from_millis(a.poll_ms.max(10));
    // The CRLs it serves, as gauges (nextUpdate, entries): at start and every minute.
    let served = a.crl_dir.clone();
    if let Some(dir) = &served {
        validator::served::record_crl_gauges(dir);
    }
    tokio::spawn(follow_status(poller, status.clone(), poll, served, true));
    spawn_auto_enroll(&svc, &a.status, net.as_ref(), &a.responders, &a.enroll, pass, auto)?;
    let state = Arc::new(validator::http::AppState { ocsp: svc.clone().into(), crl_dir: a.crl_dir, crl_max_age: 3600 });
    let l = tokio::net::TcpListener::bind(&a.listen).await.with_context(|| format!("cannot listen on {}", a.listen))?;
    let public = net::server::Server::new(validator::http::router(state), net::server::Transport::Plain)
        .lean(validator::http::OCSP_ROUTES)
        .named("validator")
        .shed(Arc::new(validator::http::overloaded));
    let (Some((url, api_addr)), Some(cred)) = (api_conf, net) else {
        tracing::info!(listen = %l.local_addr()?, "validator listening (POST/GET /ocsp, GET /crl/…); no verification API");
        crate::netargs::metrics_listener().await?.ready();
        public.serve(l, net::server::signal()).await?;
        return Ok(());
    };
    let vdb =
        validator::schema::open(&url).await.with_context(|| format!("cannot open the validator database {url}"))?;
    let env = if a.test_hierarchy { Environment::Test } else { Environment::Production };
    let (anchors, intermediates) = validator::api::ca_certificates(&status, env).await?;
    let api = Arc::new(validator::api::Api { db: vdb, anchors, intermediates, ocsp: svc, status, environment: env });
    let al = tokio::net::TcpListener::bind(&api_addr).await.with_context(|| format!("cannot listen on {api_addr}"))?;
    tracing::info!(listen = %l.local_addr()?, "validator listening (POST/GET /ocsp, GET /crl/…)");
    tracing::info!(
        listen = %al.local_addr()?,
        party = %cred.cred.party,
        trust_anchors = api.anchors.len(),
        "verification API listening (mutual TLS)"
    );
    tokio::try_join!(
        async { public.serve(l, net::server::signal()).await.context("public listener") },
        cred.serve(al, validator::http::api_router(api)),
    )?;
    Ok(())
}
