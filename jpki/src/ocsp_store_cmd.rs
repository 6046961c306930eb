//! `jpki serve ocsp-signer` and `jpki serve ocsp-responder`: OCSP scaled out over a shared
//! store of pre-signed responses (Redis Cluster; docs/validator.md "Scale-out"). Signers hold
//! the responder keys (JPKI_VALIDATOR_PASSPHRASE, as `jpki serve validator`) and read the CA's
//! status; each pre-signs its partition of the serials into the store. Responders hold no key
//! and no CA access: they serve what the store holds, from a bounded hot set.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use clap::Args;
use identity::http::now;
use validator::responder::Service;
use validator::stateless::StoreResponder;
use validator::store::{Partition, RedisStore, ResponseStore, Sink};

use crate::netargs::NetArgs;

/// `jpki serve ocsp-signer`.
#[derive(Debug, Args)]
pub struct SignerArgs {
    /// Where the CA's status is read (as `jpki serve validator`).
    #[command(flatten)]
    pub status: crate::validator_cmd::StatusArgs,
    /// The responder keys and certificates (from `jpki validator enroll`).
    #[arg(long)]
    pub responders: PathBuf,
    /// The store: Redis Cluster seed nodes, `redis://HOST:PORT[,redis://HOST:PORT…]`.
    #[arg(long, env = "JPKI_OCSP_STORE")]
    pub store: String,
    /// This signer's partition of the serials, `I/N` (0 ≤ I < N): it signs the serials whose
    /// SHA-256 (first 8 bytes, big-endian) mod N is I. Run one signer per partition.
    #[arg(long, default_value = "0/1")]
    pub partition: Partition,
    /// Hours from thisUpdate to nextUpdate; re-signed at half-life. The store keeps a
    /// response until its nextUpdate.
    #[arg(long, default_value_t = 24)]
    pub validity_hours: i64,
    /// How often to look for new revocations (milliseconds).
    #[arg(long, default_value_t = 200)]
    pub poll_ms: u64,
    /// Listen address of GET /health (plain HTTP), bound once the partition is in the store.
    #[arg(long, default_value = "127.0.0.1:8181")]
    pub listen: String,
    /// Milliseconds before a store command is given up (and retried).
    #[arg(long, default_value_t = 1000)]
    pub store_timeout_ms: u64,
    /// Replicas of a master that must acknowledge a revocation (Redis `WAIT`, within
    /// --store-timeout-ms) before it counts as written and its invalidation is published;
    /// until then it is retried. Set it to the replicas each master has (1 in a cluster made
    /// with `--cluster-replicas 1`), so that a master dying right after a revocation cannot lose
    /// it. 0: no wait (a revocation lost that way stays unpublished until the half-life re-sign).
    #[arg(long, default_value_t = 0)]
    pub store_replicas: u32,
    /// The validator's network credential (with --ca-service).
    #[command(flatten)]
    pub net: NetArgs,
    /// Enrolling CA generations created after start-up (as `jpki serve validator`).
    #[command(flatten)]
    pub enroll: crate::enrol::AutoEnrollArgs,
}

/// `jpki serve ocsp-responder`.
#[derive(Debug, Args)]
pub struct ResponderArgs {
    /// The store: Redis Cluster seed nodes, `redis://HOST:PORT[,redis://HOST:PORT…]`.
    #[arg(long, env = "JPKI_OCSP_STORE")]
    pub store: String,
    /// Listen address, plain HTTP: POST/GET /ocsp, GET /crl/… (with --crl-dir), /health.
    #[arg(long, default_value = "127.0.0.1:8180")]
    pub listen: String,
    /// Byte budget of the hot set (responses kept in memory, CLOCK eviction).
    #[arg(long, default_value_t = 256 << 20)]
    pub hot_bytes: usize,
    /// Milliseconds before a store read is given up (the client gets tryLater).
    #[arg(long, default_value_t = 500)]
    pub store_timeout_ms: u64,
    /// Where `jpki ca crl --out` publishes; served under /crl/.
    #[arg(long)]
    pub crl_dir: Option<PathBuf>,
}

/// Runs a signer until SIGINT/SIGTERM.
pub async fn signer(a: SignerArgs) -> Result<()> {
    let pass = crate::validator_cmd::passphrase()?;
    let net = if a.status.ca_service.is_some() { Some(crate::validator_cmd::credential(&a.net)?) } else { None };
    let auto = a.enroll.enabled(a.status.ca_service.as_deref())?;
    let status = a.status.open(net.as_ref()).await?;
    let store: Arc<dyn ResponseStore> = Arc::new(
        RedisStore::connect(&a.store, Duration::from_millis(a.store_timeout_ms))
            .await
            .with_context(|| format!("cannot reach the OCSP store {}", a.store))?
            .with_replicas(a.store_replicas),
    );
    let responders = crate::validator_cmd::responders(&a.responders, &pass, auto)?;
    let p = a.partition;
    let source = status.clone();
    let svc = Service::open(status, responders, a.validity_hours * 3600, 1.0).await?;
    let svc = Arc::new(svc.publishing(Sink::spawn(store, p)));
    let bar = crate::progress::Bar::new("ocsp-signer", "certificates pre-signed");
    let n = svc.load_with(now(), &bar.callback()).await?;
    let sink = svc.sink().context("signer without a store")?.clone();
    sink.flushed().await;
    bar.finish(format_args!("partition {}/{}: {n} certificates pre-signed into the store", p.index, p.count));
    let poller = svc.clone();
    let poll = Duration::from_millis(a.poll_ms.max(10));
    tokio::spawn(crate::validator_cmd::follow_status(poller, source, poll, None, true));
    crate::validator_cmd::spawn_auto_enroll(&svc, &a.status, net.as_ref(), &a.responders, &a.enroll, pass, auto)?;
    async fn health(State(s): State<Arc<Service>>) -> String {
        let (pending, part) = s.sink().map_or((0, Partition::ALL), |k| (k.pending(), k.partition));
        format!(
            "ok: signer {}/{}, {} responses signed, revocations read to {}, {} store writes pending\n",
            part.index,
            part.count,
            s.cached(),
            s.seen_seq(),
            pending
        )
    }
    let app = Router::new().route("/health", get(health)).with_state(svc);
    let l = tokio::net::TcpListener::bind(&a.listen).await.with_context(|| format!("cannot listen on {}", a.listen))?;
    tracing::info!(listen = %l.local_addr()?, partition = %format!("{}/{}", p.index, p.count), "OCSP signer ready (GET /health)");
    crate::netargs::metrics_listener().await?.ready();
    net::server::Server::new(app, net::server::Transport::Plain)
        .named("ocsp-signer")
        .serve(l, net::server::signal())
        .await?;
    Ok(())
}

/// Runs a stateless responder until SIGINT/SIGTERM.
pub async fn responder(a: ResponderArgs) -> Result<()> {
    let store: Arc<dyn ResponseStore> = Arc::new(
        RedisStore::connect(&a.store, Duration::from_millis(a.store_timeout_ms))
            .await
            .with_context(|| format!("cannot reach the OCSP store {}", a.store))?,
    );
    let r = Arc::new(StoreResponder::new(store, a.hot_bytes));
    tokio::spawn(r.clone().follow(Duration::from_millis(500)));
    let hot = r.clone();
    let pre_route: net::server::PreRoute = Arc::new(move |method, uri, headers| {
        validator::http::hot_get(&hot, method, uri, headers).map(|resp| (validator::http::OCSP_GET_ROUTE, resp))
    });
    let state = Arc::new(validator::http::AppState { ocsp: r.into(), crl_dir: a.crl_dir, crl_max_age: 3600 });
    let l = tokio::net::TcpListener::bind(&a.listen).await.with_context(|| format!("cannot listen on {}", a.listen))?;
    tracing::info!(
        listen = %l.local_addr()?,
        hot_bytes = a.hot_bytes,
        "stateless OCSP responder listening (POST/GET /ocsp); no responder key: it serves the store's pre-signed responses"
    );
    crate::netargs::metrics_listener().await?.ready();
    net::server::Server::new(validator::http::router(state), net::server::Transport::Plain)
        .lean(validator::http::OCSP_ROUTES)
        .pre_route(pre_route)
        .named("ocsp-responder")
        .shed(Arc::new(validator::http::overloaded))
        .serve(l, net::server::signal())
        .await?;
    Ok(())
}
