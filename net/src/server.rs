//! The one HTTP server loop of every node, over mutual TLS or (only for OCSP and CRL
//! distribution) plain TCP, with the limits a server facing hostile clients needs:
//!
//! - a TLS handshake timeout, hyper's header-read timeout (with a timer, so it applies), an
//!   idle timeout on the socket (no byte read or written for that long closes it), and a
//!   per-request timeout;
//! - a cap on open connections (beyond it a new connection is closed at once) and on requests
//!   in flight (beyond it the request is shed with 503, or the caller's own answer such as
//!   OCSP `tryLater`);
//! - the client's [`Party`], read from its verified certificate, inserted into every request's
//!   extensions for the handlers' authorization; plain connections carry none.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use identity::party::Party;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::credential::party_of;

/// The limits of one server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time allowed for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time allowed for a request's header block, from the moment the server waits for it.
    pub header_read_timeout: Duration,
    /// A connection with no byte read or written for this long is closed.
    pub idle_timeout: Duration,
    /// Time allowed for a handler to answer.
    pub request_timeout: Duration,
    /// Open connections at most; more are closed on accept.
    pub max_connections: usize,
    /// Requests being handled at most; more are shed.
    pub max_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(15),
            request_timeout: Duration::from_secs(60),
            max_connections: 8192,
            max_in_flight: 512,
        }
    }
}

/// The answer to a request shed under load (given the request's URI).
pub type Shed = Arc<dyn Fn(&axum::http::Uri) -> Response<Body> + Send + Sync>;

/// 503 with `Retry-After: 1`.
pub fn shed_503() -> Shed {
    Arc::new(|_| {
        let mut r = Response::new(Body::from("{\"error\":\"overloaded\",\"message\":\"server busy; retry\"}"));
        *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        r.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
        r
    })
}

/// A synchronous answer given before the router ([`Server::pre_route`]): from the request's
/// method, URI and headers, the route pattern it answered for (its metrics label) and the
/// response, or `None` to let the router answer.
pub type PreRoute = Arc<
    dyn Fn(&axum::http::Method, &axum::http::Uri, &axum::http::HeaderMap) -> Option<(&'static str, Response<Body>)>
        + Send
        + Sync,
>;

/// An I/O stream that fails with `TimedOut` when no byte moves for `idle`. A read or write
/// only notes the time; the timer is moved when it fires and there was traffic since (not on
/// every read and write), so the deadline is still exactly `idle` after the last byte.
struct Idle<T> {
    inner: T,
    idle: Duration,
    last: tokio::time::Instant,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl<T> Idle<T> {
    fn new(inner: T, idle: Duration) -> Self {
        Self { inner, idle, last: tokio::time::Instant::now(), deadline: Box::pin(tokio::time::sleep(idle)) }
    }

    fn touch(&mut self) {
        self.last = tokio::time::Instant::now();
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        while self.deadline.as_mut().poll(cx).is_ready() {
            let due = self.last + self.idle;
            if due <= tokio::time::Instant::now() {
                return true;
            }
            self.deadline.as_mut().reset(due);
        }
        false
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connection idle")
}

impl<T: AsyncRead + Unpin> AsyncRead for Idle<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.touch();
                }
                Poll::Ready(r)
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> Idle<T> {
    fn written(mut self: Pin<&mut Self>, cx: &mut Context<'_>, r: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        match r {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    self.touch();
                }
                Poll::Ready(r)
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Idle<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.written(cx, r)
    }
    // Vectored writes go through, so hyper queues a response's headers and body pieces and
    // writes them in one call instead of copying the body into its buffer.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.written(cx, r)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// How connections are secured.
#[derive(Debug, Clone)]
pub enum Transport {
    /// Mutual TLS: every client presents a network credential.
    Tls(Arc<rustls::ServerConfig>),
    /// Plain TCP: only for OCSP and CRL distribution, whose objects are signed.
    Plain,
    /// TLS that authenticates only the server: a window's pages on loopback for the clerk's
    /// browser ([`crate::tls::page_server_config`]). No request carries a party; the pages
    /// authenticate their user themselves (a session).
    Page(Arc<rustls::ServerConfig>),
}

/// A server: router, transport, limits and the answer for shed requests.
#[derive(Clone)]
pub struct Server {
    router: Router,
    name: &'static str,
    transport: Transport,
    limits: Limits,
    shed: Shed,
    revalidate: Option<Arc<crate::tls::ReloadingVerifier>>,
    lean: &'static [&'static str],
    pre_route: Option<PreRoute>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("transport", &self.transport).field("limits", &self.limits).finish()
    }
}

impl Server {
    /// A server of `router` over `transport` with the default [`Limits`] and 503 shedding.
    pub fn new(router: Router, transport: Transport) -> Self {
        Self {
            router,
            name: "jpki",
            transport,
            limits: Limits::default(),
            shed: shed_503(),
            revalidate: None,
            lean: &[],
            pre_route: None,
        }
    }

    /// Names the service in its metrics (`service` label; [`crate::metrics`]).
    pub fn named(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// Re-checks every open TLS connection's client certificate whenever `verifier` reloads
    /// its CRL, and closes the connections whose certificate is now revoked (a revocation
    /// reaches connections opened before it, not only new handshakes).
    pub fn revalidate(mut self, verifier: Arc<crate::tls::ReloadingVerifier>) -> Self {
        self.revalidate = Some(verifier);
        self
    }

    /// Names route patterns that are counted and timed but get no request span and no request
    /// id ([`crate::metrics`]): the OCSP routes, whose answers call no peer, are signed objects
    /// that HTTP caches share, and are the hottest path of the public listener.
    pub fn lean(mut self, routes: &'static [&'static str]) -> Self {
        self.lean = routes;
        self
    }

    /// Answers what `pre_route` answers before the router and its layers: no routing, no
    /// middleware, no request span or id; counted and timed under the route pattern it returns.
    /// For a hot path that is answered from memory without waiting (a stateless OCSP
    /// responder's hot-set hits); it runs inside the connection and in-flight caps and the
    /// header and idle timeouts like any request, and must not block.
    pub fn pre_route(mut self, pre_route: PreRoute) -> Self {
        self.pre_route = Some(pre_route);
        self
    }

    /// Replaces the limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Replaces the answer given to shed requests.
    pub fn shed(mut self, shed: Shed) -> Self {
        self.shed = shed;
        self
    }

    /// Serves until `shutdown` resolves, then lets open requests finish (at most
    /// `request_timeout`).
    pub async fn serve(mut self, listener: TcpListener, shutdown: impl Future<Output = ()> + Send) -> io::Result<()> {
        self.router = self.router.route_layer(axum::middleware::from_fn_with_state(
            crate::metrics::Track { service: self.name, lean: self.lean },
            crate::metrics::track,
        ));
        let conns = Arc::new(Semaphore::new(self.limits.max_connections));
        let in_flight = Arc::new(Semaphore::new(self.limits.max_in_flight));
        let acceptor = match &self.transport {
            Transport::Tls(c) | Transport::Page(c) => Some(tokio_rustls::TlsAcceptor::from(c.clone())),
            Transport::Plain => None,
        };
        let browser = matches!(self.transport, Transport::Page(_));
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                () = &mut shutdown => break,
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE and friends: back off briefly instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                },
            };
            let Ok(permit) = conns.clone().try_acquire_owned() else {
                tracing::warn!(%peer, "connection cap reached; connection closed");
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let this = self.clone();
            let acceptor = acceptor.clone();
            let in_flight = in_flight.clone();
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                let _permit = permit;
                let limits = this.limits.clone();
                match acceptor {
                    None => {
                        let io = Idle::new(stream, limits.idle_timeout);
                        this.connection(io, None, peer, in_flight, watcher).await;
                    }
                    Some(acceptor) => {
                        let tls = match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream)).await {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(e)) => {
                                crate::metrics::handshake_failed(this.name, crate::metrics::cause_of(&e));
                                tracing::warn!(%peer, error = %e, "TLS handshake refused");
                                return;
                            }
                            Err(_) => {
                                crate::metrics::handshake_failed(this.name, "timeout");
                                tracing::warn!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                        if browser {
                            let io = Idle::new(tls, limits.idle_timeout);
                            this.connection(io, None, peer, in_flight, watcher).await;
                            return;
                        }
                        let chain: Vec<rustls::pki_types::CertificateDer<'static>> =
                            tls.get_ref().1.peer_certificates().map(<[_]>::to_vec).unwrap_or_default();
                        let party = chain.first().map(|c| party_of(c));
                        let party = match party {
                            Some(Ok(p)) => p,
                            _ => {
                                crate::metrics::handshake_failed(this.name, "no_party");
                                tracing::warn!(%peer, "client certificate names no party; closed");
                                return;
                            }
                        };
                        let io = Idle::new(tls, limits.idle_timeout);
                        match this.revalidate.clone() {
                            None => this.connection(io, Some(party), peer, in_flight, watcher).await,
                            Some(v) => {
                                let mut changes = v.subscribe();
                                let revoked = async move {
                                    while changes.changed().await.is_ok() {
                                        if let Err(e) = v.still_valid(&chain) {
                                            return e;
                                        }
                                    }
                                    std::future::pending().await
                                };
                                let p = party.clone();
                                tokio::select! {
                                    () = this.connection(io, Some(party), peer, in_flight, watcher) => {}
                                    e = revoked => {
                                        tracing::warn!(%peer, party = %p, error = %e, "client credential no longer valid; connection closed");
                                    }
                                }
                            }
                        }
                    }
                }
            });
        }
        drop(listener);
        let _ = tokio::time::timeout(self.limits.request_timeout, graceful.shutdown()).await;
        Ok(())
    }

    async fn connection<I>(
        self,
        io: I,
        party: Option<Party>,
        peer: SocketAddr,
        in_flight: Arc<Semaphore>,
        watcher: hyper_util::server::graceful::Watcher,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let router = self.router.clone();
        let shed = self.shed.clone();
        let name = self.name;
        let request_timeout = self.limits.request_timeout;
        let pre_route = self.pre_route.clone();
        let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            let router = router.clone();
            let shed = shed.clone();
            let in_flight = in_flight.clone();
            let pre_route = pre_route.clone();
            if let Some(p) = &party {
                req.extensions_mut().insert(p.clone());
            }
            async move {
                let Ok(_permit) = in_flight.try_acquire_owned() else {
                    crate::metrics::shed(name, "in_flight");
                    tracing::warn!("in-flight cap reached; request shed");
                    return Ok::<_, std::convert::Infallible>(shed(req.uri()));
                };
                if let Some(pre) = pre_route {
                    let t = std::time::Instant::now();
                    if let Some((route, r)) = pre(req.method(), req.uri(), req.headers()) {
                        crate::metrics::record(name, route, r.status(), t);
                        return Ok(r);
                    }
                }
                let uri = req.uri().clone();
                match tokio::time::timeout(request_timeout, router.oneshot(req.map(Body::new))).await {
                    Ok(Ok(r)) => Ok(r),
                    Ok(Err(never)) => match never {},
                    Err(_) => {
                        crate::metrics::shed(name, "timeout");
                        tracing::warn!("request timed out");
                        let mut r = shed(&uri);
                        *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                        Ok(r)
                    }
                }
            }
        });
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new()).header_read_timeout(self.limits.header_read_timeout).keep_alive(true);
        let conn = http.serve_connection(TokioIo::new(io), svc);
        if let Err(e) = watcher.watch(conn).await {
            tracing::debug!(%peer, error = %e, "connection ended");
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}
