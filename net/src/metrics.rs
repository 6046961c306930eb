//! Metrics for the people who run the services (issue 13): one Prometheus recorder per process
//! ([`install`]), the text exposition at `/metrics` and liveness and readiness at `/health` and
//! `/ready` ([`router`], served on its own listener: `--metrics-listen`, plain HTTP, meant for
//! loopback or the operators' network; it carries no personal data and no secrets), and the
//! request metrics every [`crate::server::Server`] records for its routes:
//!
//! | metric | labels |
//! |---|---|
//! | `jpki_http_requests_total` | `service`, `route` (the matched route pattern, never the path), `status` |
//! | `jpki_http_request_seconds` (histogram) | `service`, `route` |
//! | `jpki_http_shed_total` | `service`, `reason` (`in_flight`, `timeout`) |
//! | `jpki_tls_handshake_failures_total` | `service`, `cause` (`timeout`, `no_certificate`, `bad_certificate`, `no_party`, `other`) |
//!
//! Each request runs in a `request` span with its `request_id`, `service` and `route`, and the
//! id travels to the peers it calls (`x-request-id`; [`identity::request_id`]); the routes a
//! server names lean ([`crate::server::Server::lean`]: the OCSP routes), and the requests it
//! answers before the router ([`crate::server::Server::pre_route`]: a stateless OCSP
//! responder's hot hits), are counted and timed only, without span or id.
//!
//! Other crates record their own (`ca`: issuance, revocations, CRLs; `validator`: OCSP answers)
//! through the `metrics` facade; without an installed recorder those calls do nothing.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets (seconds): from a cached OCSP answer to a batch issuance.
const BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's Prometheus recorder (once; later calls return the same handle).
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Another recorder already installed (a test harness): ours still renders what it
            // has; the facade keeps the first.
            if metrics::set_global_recorder(recorder).is_ok() {
                describe();
            }
            handle
        })
        .clone()
}

/// How a metric is kept.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric any service records, with its `# HELP` text (the exposition's description, as
/// `promtool check metrics` requires). Kept here, in one place, for all crates.
const DESCRIPTIONS: &[(&str, Kind, &str)] = &[
    ("jpki_http_requests_total", Kind::Counter, "Requests answered, by service, matched route pattern and status."),
    ("jpki_http_request_seconds", Kind::Histogram, "Time to answer a request, by service and matched route pattern."),
    ("jpki_http_shed_total", Kind::Counter, "Requests shed by the server, by service and reason (in_flight, timeout)."),
    ("jpki_tls_handshake_failures_total", Kind::Counter, "Refused TLS handshakes, by service and cause."),
    ("jpki_ca_issued_total", Kind::Counter, "Certificates issued, by CA and kind."),
    ("jpki_ca_revocations_total", Kind::Counter, "Revocations written, by issuing CA and reason."),
    (
        "jpki_crl_this_update_timestamp_seconds",
        Kind::Gauge,
        "thisUpdate of each CRL at its publication (its age is time() minus this), by CA, generation and shard (-1: the ARL).",
    ),
    (
        "jpki_crl_next_update_timestamp_seconds",
        Kind::Gauge,
        "nextUpdate of each CRL at its publication, by CA, generation and shard (-1: the ARL).",
    ),
    (
        "jpki_crl_entries",
        Kind::Gauge,
        "Entries of each CRL at its publication, by CA, generation and shard (-1: the ARL).",
    ),
    (
        "jpki_crl_served_this_update_timestamp_seconds",
        Kind::Gauge,
        "thisUpdate of each CRL the validator serves (its age is time() minus this), by CA, generation and shard (-1: the ARL).",
    ),
    (
        "jpki_crl_served_next_update_timestamp_seconds",
        Kind::Gauge,
        "nextUpdate of each CRL the validator serves, by CA, generation and shard (-1: the ARL).",
    ),
    (
        "jpki_crl_served_entries",
        Kind::Gauge,
        "Entries of each CRL the validator serves, by CA, generation and shard (-1: the ARL).",
    ),
    (
        "jpki_ocsp_answers_total",
        Kind::Counter,
        "OCSP answers by path (cached: pre-signed, live: signed for the request, try_later; a stateless responder: hot, store, unauthorized, try_later, refused, malformed).",
    ),
    (
        "jpki_ocsp_store_errors_total",
        Kind::Counter,
        "OCSP store operations that failed, by op (read: a responder's read, answered tryLater; write: a signer's write or publication, retried).",
    ),
    ("jpki_ocsp_store_writes_total", Kind::Counter, "Pre-signed OCSP responses a signer wrote into the shared store."),
    (
        "jpki_ocsp_store_unreplicated_total",
        Kind::Counter,
        "Revocations a signer wrote that fewer than --store-replicas replicas acknowledged in time (retried).",
    ),
    (
        "jpki_validator_enrolments_total",
        Kind::Counter,
        "CA generations a running validator or OCSP signer enrolled by itself (--auto-enroll), by result (enrolled, failed).",
    ),
    (
        "jpki_ocsp_store_subscribed",
        Kind::Gauge,
        "1 while a stateless OCSP responder receives invalidations (its hot set is used only then), 0 otherwise.",
    ),
    ("jpki_ca_feed_cursor", Kind::Gauge, "The CA's position in the national change feed."),
    (
        "jpki_ca_feed_behind",
        Kind::Gauge,
        "Feed entries the CA was behind the national head read at the start of its last round.",
    ),
    ("jpki_ca_feed_last_follow_timestamp_seconds", Kind::Gauge, "When the CA last followed the change feed."),
    (
        "jpki_replication_behind",
        Kind::Gauge,
        "Notices behind the peer's head after a pull, by tier and source municipality.",
    ),
    ("jpki_replication_applied_total", Kind::Counter, "Notices applied, by tier and source municipality."),
    (
        "jpki_replication_halted",
        Kind::Gauge,
        "Whether replication of a source is halted (1) or not (0), by tier and source.",
    ),
    (
        "jpki_replication_last_pull_timestamp_seconds",
        Kind::Gauge,
        "When a source was last pulled, by tier and source municipality.",
    ),
    ("jpki_provisions_total", Kind::Counter, "Lawful provisions answered, by law-table purpose (unknown for none)."),
    ("jpki_provision_refusals_total", Kind::Counter, "Provision requests refused, by the refusal's code."),
    (
        "jpki_provision_standby_replay_lag_seconds",
        Kind::Gauge,
        "How far the hot standby of provision reads replays behind its primary (+Inf: promoted or unknown).",
    ),
    (
        "jpki_provision_standby_fallbacks_total",
        Kind::Counter,
        "Provision reads sent to the primary instead of the standby, by reason (lagging, promoted, unknown_lag, unreachable).",
    ),
];

/// Gives the installed recorder every metric's help text.
fn describe() {
    for (name, kind, help) in DESCRIPTIONS {
        match kind {
            Kind::Counter => metrics::describe_counter!(*name, *help),
            Kind::Gauge => metrics::describe_gauge!(*name, *help),
            Kind::Histogram => metrics::describe_histogram!(*name, metrics::Unit::Seconds, *help),
        }
    }
}

/// Whether the service is ready (set once it has opened what it serves from).
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks the service ready.
    pub fn ready(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether it is.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// `/metrics` (Prometheus text format 0.0.4), `/health` (the process answers) and `/ready`
/// (200 once [`Readiness::ready`], 503 before).
pub fn router(ready: Readiness) -> Router {
    let handle = install();
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let body = handle.render();
                async move { ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body) }
            }),
        )
        .route("/health", get(|| async { "ok\n" }))
        .route(
            "/ready",
            get(move |State(r): State<Readiness>| async move {
                if r.is_ready() { (StatusCode::OK, "ready\n") } else { (StatusCode::SERVICE_UNAVAILABLE, "starting\n") }
            }),
        )
        .with_state(ready)
}

/// Serves [`router`] on `listener` (plain HTTP) until the process ends.
pub fn spawn(listener: tokio::net::TcpListener, ready: Readiness) {
    let server = crate::server::Server::new(router(ready), crate::server::Transport::Plain).named("metrics");
    tokio::spawn(server.serve(listener, std::future::pending()));
}

/// What [`track`] needs: the service label and the lean route patterns.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Track {
    pub service: &'static str,
    pub lean: &'static [&'static str],
}

/// The status label (no allocation for the usual ones).
fn status_label(s: StatusCode) -> metrics::SharedString {
    match s.as_u16() {
        200 => "200".into(),
        304 => "304".into(),
        400 => "400".into(),
        401 => "401".into(),
        403 => "403".into(),
        404 => "404".into(),
        500 => "500".into(),
        503 => "503".into(),
        n => n.to_string().into(),
    }
}

/// The route layer every server puts on its router: counts and times each matched request, and
/// runs it in a span carrying its request id (the caller's `x-request-id` if plausible, else a
/// new one; answered in the same header, and sent on by every peer request made meanwhile:
/// [`identity::request_id`]), except on the lean routes, which are only counted and timed.
pub(crate) async fn track(State(Track { service, lean }): State<Track>, req: Request, next: Next) -> Response {
    use identity::request_id;
    use tracing::Instrument as _;
    let matched = req.extensions().get::<MatchedPath>();
    if let Some(&route) = matched.and_then(|m| lean.iter().find(|r| **r == m.as_str())) {
        let t = Instant::now();
        let r = next.run(req).await;
        record(service, route, r.status(), t);
        return r;
    }
    let route = matched.map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let id = req
        .headers()
        .get(request_id::HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(request_id::accept)
        .unwrap_or_else(request_id::fresh);
    // At ERROR level so that the span is enabled whenever any event inside it is (a span below
    // the filter's level is dropped, and its events would lose the request id).
    let span = tracing::error_span!("request", request_id = %id, service, route = %route);
    let t = Instant::now();
    let mut r = request_id::scope(id.clone(), next.run(req).instrument(span)).await.into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(&id) {
        r.headers_mut().insert(request_id::HEADER, v);
    }
    let status = status_label(r.status());
    metrics::histogram!("jpki_http_request_seconds", "service" => service, "route" => route.clone())
        .record(t.elapsed().as_secs_f64());
    metrics::counter!("jpki_http_requests_total", "service" => service, "route" => route, "status" => status)
        .increment(1);
    r
}

/// Counts and times one request of a static route pattern (a lean route, or one answered
/// before the router), started at `t`.
pub(crate) fn record(service: &'static str, route: &'static str, status: StatusCode, t: Instant) {
    metrics::histogram!("jpki_http_request_seconds", "service" => service, "route" => route)
        .record(t.elapsed().as_secs_f64());
    metrics::counter!("jpki_http_requests_total", "service" => service, "route" => route, "status" => status_label(status))
        .increment(1);
}

/// A request shed by the server (`in_flight` cap or `timeout`).
pub(crate) fn shed(service: &'static str, reason: &'static str) {
    metrics::counter!("jpki_http_shed_total", "service" => service, "reason" => reason).increment(1);
}

/// A refused TLS handshake, by cause (from rustls's error: never the peer's data).
pub(crate) fn handshake_failed(service: &'static str, cause: &'static str) {
    metrics::counter!("jpki_tls_handshake_failures_total", "service" => service, "cause" => cause).increment(1);
}

/// The cause label of a rustls handshake error.
pub(crate) fn cause_of(e: &std::io::Error) -> &'static str {
    let s = e.to_string();
    if s.contains("peer sent no certificates") || s.contains("NoCertificatesPresented") {
        "no_certificate"
    } else if s.contains("certificate") || s.contains("Certificate") {
        "bad_certificate"
    } else {
        "other"
    }
}
