//! TLS and mutual TLS (REQ OPS-03): the server's certificate and key from PEM files, optional
//! client certificates verified against the CAs of `client_ca_file`, and the accept loop that
//! hands each connection's client certificate to the handlers as a
//! [`PeerCertificate`] request extension.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::Request;
use halo_sofa_server::tls::PeerCertificate;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::Error;

/// A TLS handshake that has not finished by then is dropped (a slow or silent peer must not
/// hold a task and a socket for ever).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The `[tls]` table: the server listens with TLS when it is present.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The server's certificate chain, PEM, leaf first.
    pub cert_file: PathBuf,
    /// The server's private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// The CAs whose client certificates are accepted, PEM. When set, clients may present a
    /// certificate (mutual TLS, RFC 8705): `tls_client_auth` clients must, and a token asked
    /// for with one is bound to it. A connection without one is still accepted, for the
    /// clients that authenticate otherwise.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

impl TlsConfig {
    /// Takes relative paths relative to `dir` (the configuration file's directory).
    pub(crate) fn relative_to(&mut self, dir: &Path) {
        let paths = [&mut self.cert_file, &mut self.key_file];
        for path in paths.into_iter().chain(self.client_ca_file.as_mut()) {
            if path.is_relative() {
                *path = dir.join(&*path);
            }
        }
    }

    /// The rustls configuration, on the workspace's one crypto provider (aws-lc-rs).
    pub(crate) fn server_config(&self) -> Result<Arc<ServerConfig>, Error> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let chain = read_certificates(&self.cert_file)?;
        let key = PrivateKeyDer::from_pem_file(&self.key_file)
            .map_err(|e| Error::Config(format!("tls.key_file: {e}")))?;
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("tls: {e}")))?;
        let builder = match &self.client_ca_file {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for ca in read_certificates(path)? {
                    roots
                        .add(ca)
                        .map_err(|e| Error::Config(format!("tls.client_ca_file: {e}")))?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .allow_unauthenticated()
                    .build()
                    .map_err(|e| Error::Config(format!("tls.client_ca_file: {e}")))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|e| Error::Config(format!("tls: {e}")))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    if certificates.is_empty() {
        return Err(Error::Config(format!(
            "{}: no certificate in the file",
            path.display()
        )));
    }
    Ok(certificates)
}

/// Serves `app` over TLS until `stop` fires, then lets the connections in flight finish.
///
/// Each connection is handshaken in its own task (a slow handshake never holds the accept
/// loop); the client certificate, when one was presented and verified, goes into every request
/// of the connection as a [`PeerCertificate`] extension.
pub(crate) async fn serve(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    app: Router,
    stop: oneshot::Receiver<()>,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(config);
    let graceful = GracefulShutdown::new();
    let builder = Builder::new(TokioExecutor::new());
    tokio::pin!(stop);
    loop {
        let tcp = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // The handshake and the response go out as several small writes: without this, Nagle
        // holds each behind the peer's delayed acknowledgement (tens of milliseconds a flight).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY could not be set");
        }
        let acceptor = acceptor.clone();
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "TLS handshake refused");
                    return;
                }
                Err(_) => return,
            };
            let peer = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(<[_]>::first)
                .map(|leaf| PeerCertificate::from_der(leaf));
            let service = app.map_request(move |mut request: Request<hyper::body::Incoming>| {
                if let Some(peer) = &peer {
                    request.extensions_mut().insert(peer.clone());
                }
                request
            });
            let connection = builder.serve_connection_with_upgrades(
                TokioIo::new(tls),
                TowerToHyperService::new(service),
            );
            if let Err(e) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
