//! Who is calling: the bearer-token seam (REQ SC-09, RS-02), and the SoFA's own SMART
//! authorization server (REQ AS-01..AS-11).
//!
//! [`TokenValidator`] turns a bearer token into a [`Caller`]: client id, user, granted scopes
//! and launch. Implementations: the built-in [`AuthServer`]'s
//! ([`AuthServer::token_validator`]), a jurisdiction's IdP ([`ExternalJwtTokens`] for
//! JWKS-verified JWTs, [`IntrospectionTokens`] for RFC 7662), and [`StaticTokens`], a fixed
//! table for tests and development; [`FirstValid`] accepts several of them. [`OidcLogin`] signs
//! users in at a jurisdiction's OpenID provider (federated login, REQ IDP-03).

mod answers;
mod authorize;
mod builtin;
mod caller;
mod chain;
mod client_auth;
mod clients;
mod decide;
mod external;
mod families;
mod introspect;
mod jwks;
mod keys;
mod oidc;
pub mod paths;
mod rate_limited;
mod revoke;
mod server;
mod signing;
mod token;
mod users;

pub use crate::protect::{AesGcmKek, KeyProtector};
pub use caller::{Caller, StaticTokens, TokenError, TokenValidator};
pub use chain::FirstValid;
pub use clients::{ClientAuthentication, ClientRegistry, RegisteredClient};
pub(crate) use decide::tokens::hash_secret;
pub use external::{ExternalJwtTokens, IntrospectionTokens};
pub use jwks::{JwksCache, JwksError};
pub use keys::{KeyError, KeyRing, KeyUse, Rotation};
pub use oidc::{OidcError, OidcLogin, OidcSettings, SESSION_COOKIE, paths as oidc_paths};
pub use rate_limited::RateLimitedTokens;
pub use server::{AuthServer, AuthServerError};
pub use users::{
    AuthenticatedUser, Authentication, AutoApprove, DevLogin, LoginRequest, UserAuthenticator,
};
