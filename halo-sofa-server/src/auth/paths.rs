//! Paths of the authorization server's endpoints, relative to the FHIR base.

/// `authorize` (GET and POST).
pub const AUTHORIZE: &str = "/auth/authorize";
/// `token`.
pub const TOKEN: &str = "/auth/token";
/// `introspect` (RFC 7662).
pub const INTROSPECT: &str = "/auth/introspect";
/// The JWKS.
pub const JWKS: &str = "/auth/jwks";
/// `revoke` (RFC 7009).
pub const REVOKE: &str = "/auth/revoke";
