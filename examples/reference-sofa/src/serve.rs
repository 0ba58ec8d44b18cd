//! The accept loop, plain or TLS: one place that bounds what a connection may cost before a
//! handler runs (REQ HARD-04, OPS-03). A TLS handshake must finish within
//! [`HANDSHAKE_TIMEOUT`] and a request's headers arrive within the header read timeout
//! ([`HEADER_READ_TIMEOUT`] unless configured; hyper's, which needs the timer `axum::serve` does
//! not give it); every request
//! carries its peer address (`ConnectInfo`, for the per-address rate limits) and, over mutual
//! TLS, the client certificate ([`PeerCertificate`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use halo_sofa_server::tls::PeerCertificate;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

/// A TLS handshake that has not finished by then is dropped (a slow or silent peer must not
/// hold a task and a socket for ever).
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// By default, a request whose headers have not all arrived by then is dropped (slowloris).
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` until `stop` fires, then lets the connections in flight finish; over TLS when
/// `tls` is given.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    header_read_timeout: Duration,
    app: Router,
    stop: oneshot::Receiver<()>,
) -> std::io::Result<()> {
    let acceptor = tls.map(TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    tokio::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Answers go out as several small writes: without this, Nagle holds each behind the
        // peer's delayed acknowledgement (tens of milliseconds a flight).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY could not be set");
        }
        let acceptor = acceptor.clone();
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let Some(acceptor) = acceptor else {
                return serve_connection(&builder, watcher, tcp, app, peer, None).await;
            };
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "TLS handshake refused");
                    return;
                }
                Err(_) => return,
            };
            let certificate = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(<[_]>::first)
                .map(|leaf| PeerCertificate::from_der(leaf));
            serve_connection(&builder, watcher, tls, app, peer, certificate).await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// One connection: its requests carry the peer address and certificate.
async fn serve_connection<I>(
    builder: &Builder<TokioExecutor>,
    watcher: Watcher,
    io: I,
    app: Router,
    peer: SocketAddr,
    certificate: Option<PeerCertificate>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = app.map_request(move |mut request: Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        if let Some(certificate) = &certificate {
            request.extensions_mut().insert(certificate.clone());
        }
        request
    });
    let connection =
        builder.serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service));
    if let Err(e) = watcher.watch(connection.into_owned()).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
