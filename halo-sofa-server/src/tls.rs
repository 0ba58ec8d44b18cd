//! Mutual TLS for clients (REQ OPS-03, RFC 8705): the client certificate a TLS acceptor
//! verified, handed to the handlers as a request extension ([`PeerCertificate`]);
//! `tls_client_auth` (a client registered with its certificate's subject DN or SAN,
//! [`TlsClientIdentity`]); and certificate-bound access tokens (`cnf.x5t#S256`), checked on
//! every request by [`require_bound_certificate`].
//!
//! The TLS itself is the host's: it terminates TLS, verifies the client's chain against the CAs
//! it trusts, and inserts the [`PeerCertificate`] into each request of the connection (the
//! reference SoFA does so). A request without the extension has no client certificate.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use x509_cert::der::Decode;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

use crate::error::SofaError;

/// The name of the confirmation member of a certificate-bound token (RFC 8705 §3.1).
pub const X5T_S256: &str = "x5t#S256";

/// The end-entity certificate the client presented, already verified by the TLS acceptor.
#[derive(Clone, PartialEq, Eq)]
pub struct PeerCertificate {
    der: Arc<[u8]>,
    thumbprint: String,
}

impl std::fmt::Debug for PeerCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerCertificate")
            .field("x5t#S256", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

impl PeerCertificate {
    /// The certificate from its DER encoding.
    pub fn from_der(der: &[u8]) -> PeerCertificate {
        PeerCertificate {
            thumbprint: URL_SAFE_NO_PAD.encode(Sha256::digest(der)),
            der: der.into(),
        }
    }

    /// The DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The base64url SHA-256 of the DER encoding: the token's `cnf.x5t#S256`.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// The `cnf` claim that binds a token to this certificate.
    pub fn confirmation(&self) -> Value {
        json!({ X5T_S256: self.thumbprint })
    }

    /// The subject DN as an RFC 4514 string (`CN=poc.example.org,O=Example EMR`), or `None`
    /// when the certificate cannot be decoded.
    pub fn subject_dn(&self) -> Option<String> {
        let certificate = Certificate::from_der(&self.der).ok()?;
        Some(certificate.tbs_certificate.subject.to_string())
    }

    /// The subject alternative names of the types RFC 8705 registers (`dns`, `uri`, `email`).
    fn alt_names(&self) -> Vec<(AltNameKind, String)> {
        let Ok(certificate) = Certificate::from_der(&self.der) else {
            return Vec::new();
        };
        let Ok(Some((_, names))) = certificate.tbs_certificate.get::<SubjectAltName>() else {
            return Vec::new();
        };
        names
            .0
            .iter()
            .filter_map(|name| match name {
                GeneralName::DnsName(n) => Some((AltNameKind::Dns, n.to_string())),
                GeneralName::UniformResourceIdentifier(n) => {
                    Some((AltNameKind::Uri, n.to_string()))
                }
                GeneralName::Rfc822Name(n) => Some((AltNameKind::Email, n.to_string())),
                _ => None,
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AltNameKind {
    Dns,
    Uri,
    Email,
}

/// How a `tls_client_auth` client's certificate is recognised (RFC 8705 §2.1.2): exactly one of
/// the subject DN or a subject alternative name, registered with the client. The chain itself
/// was verified by the TLS acceptor against the CAs the server trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsClientIdentity {
    /// `tls_client_auth_subject_dn`: the RFC 4514 string, compared exactly
    /// (`CN=poc.example.org,O=Example EMR`).
    SubjectDn(String),
    /// `tls_client_auth_san_dns`: a dNSName of the certificate.
    SanDns(String),
    /// `tls_client_auth_san_uri`: a uniformResourceIdentifier of the certificate.
    SanUri(String),
    /// `tls_client_auth_san_email`: an rfc822Name of the certificate.
    SanEmail(String),
}

impl TlsClientIdentity {
    /// Whether `certificate` is the one registered.
    pub fn matches(&self, certificate: &PeerCertificate) -> bool {
        let san = |kind: AltNameKind, expected: &str| {
            certificate
                .alt_names()
                .iter()
                .any(|(k, name)| *k == kind && name == expected)
        };
        match self {
            TlsClientIdentity::SubjectDn(dn) => certificate.subject_dn().as_deref() == Some(dn),
            TlsClientIdentity::SanDns(name) => san(AltNameKind::Dns, name),
            TlsClientIdentity::SanUri(uri) => san(AltNameKind::Uri, uri),
            TlsClientIdentity::SanEmail(email) => san(AltNameKind::Email, email),
        }
    }
}

/// An axum middleware that refuses a bearer token bound to a certificate (`cnf.x5t#S256`)
/// unless the request came over a connection with that very certificate (REQ OPS-03, RFC 8705
/// §3). Layer it over every route that takes access tokens.
///
/// It reads the claim without checking the signature: the token validator checks it after,
/// and a token whose `cnf` was removed or changed fails there. Tokens that are not JWTs, and
/// JWTs with no `cnf`, pass unchanged.
pub async fn require_bound_certificate(request: Request, next: Next) -> Response {
    // Every Authorization header, with the scheme in any case, as the token check reads it:
    // a binding this check did not see must not be one the validator accepts.
    let presented = request.extensions().get::<PeerCertificate>();
    let refused = request
        .headers()
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .filter_map(|(_, token)| bound_thumbprint(token.trim()))
        .any(|expected| {
            !presented.is_some_and(|p| {
                subtle::ConstantTimeEq::ct_eq(p.thumbprint.as_bytes(), expected.as_bytes()).into()
            })
        });
    if refused {
        return SofaError::unauthorized(
            "the access token is bound to a client certificate this connection did not present",
        )
        .into_response();
    }
    next.run(request).await
}

/// The most a JWT payload is decoded for the check (an access token of this server is far
/// smaller; a bigger one is refused by the validator anyway).
const MAX_PAYLOAD: usize = 16 * 1024;

/// The `cnf.x5t#S256` of a JWT, read without verification.
fn bound_thumbprint(token: &str) -> Option<String> {
    let mut parts = token.split('.');
    let (_, payload) = (parts.next()?, parts.next()?);
    if payload.len() > MAX_PAYLOAD {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    match claims.get("cnf")?.get(X5T_S256)? {
        Value::String(thumbprint) => Some(thumbprint.clone()),
        // A binding of the wrong shape still binds: no certificate matches it.
        _ => Some(String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_thumbprint_is_read_from_the_payload_only() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"cnf":{"x5t#S256":"abc"}}"#);
        assert_eq!(
            bound_thumbprint(&format!("h.{payload}.s")),
            Some("abc".into())
        );
        let unbound = URL_SAFE_NO_PAD.encode(br#"{"sub":"x"}"#);
        assert_eq!(bound_thumbprint(&format!("h.{unbound}.s")), None);
        assert_eq!(bound_thumbprint("opaque-token"), None);
        let odd = URL_SAFE_NO_PAD.encode(br#"{"cnf":{"x5t#S256":7}}"#);
        assert_eq!(bound_thumbprint(&format!("h.{odd}.s")), Some(String::new()));
    }
}
