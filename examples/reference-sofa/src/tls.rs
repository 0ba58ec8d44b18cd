//! TLS and mutual TLS (REQ OPS-03): the server's certificate and key from PEM files, and
//! optional client certificates verified against the CAs of `client_ca_file`. The accept loop
//! (`serve`) hands each connection's client certificate to the handlers as a
//! [`PeerCertificate`](halo_sofa_server::tls::PeerCertificate) request extension.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

use crate::Error;

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
