//! Who is calling: the [`Caller`] a bearer token stands for, the [`TokenValidator`] seam that
//! decides it (REQ SC-09, RS-02), and [`StaticTokens`], a fixed table for tests.

use std::collections::HashMap;
use std::fmt;

use halo_model::scope::ScopeSet;

use crate::store::BoxFuture;

/// The authenticated caller of a request.
#[derive(Clone)]
pub struct Caller {
    /// The OAuth client (for `$set-context`: the PoC).
    pub client_id: String,
    /// The user the token was issued for, when there is one.
    pub user: Option<String>,
    /// That user's FHIR resource (`fhirUser` of the token or introspection answer), when the
    /// token names one. `$set-context` binds it to the launch with the user (D-18).
    pub fhir_user: Option<String>,
    /// The granted scopes.
    pub scopes: ScopeSet,
    /// The launch the token was issued for (EHR launch); its resources are the only ones the
    /// token sees (D-10).
    pub launch_id: Option<String>,
    /// That launch as the built-in validator read it, live, while checking the token in this
    /// request: a write's checks use it instead of reading it again (its commit still holds
    /// the launch in its own transaction, REQ SYNC-05).
    pub(crate) checked_launch: Option<crate::store::LaunchRecord>,
}

/// Two callers are the same when their client, user, `fhirUser`, scopes and launch are.
impl PartialEq for Caller {
    fn eq(&self, other: &Self) -> bool {
        self.client_id == other.client_id
            && self.user == other.user
            && self.fhir_user == other.fhir_user
            && self.scopes == other.scopes
            && self.launch_id == other.launch_id
    }
}

impl Caller {
    /// A caller with scopes from a space-separated scope string (unknown scopes are skipped).
    pub fn new(client_id: impl Into<String>, user: Option<&str>, scopes: &str) -> Caller {
        Caller {
            client_id: client_id.into(),
            user: user.map(str::to_string),
            fhir_user: None,
            scopes: ScopeSet::parse_lenient(scopes).0,
            launch_id: None,
            checked_launch: None,
        }
    }

    /// The same caller, with the user's `fhirUser`.
    pub fn with_fhir_user(mut self, fhir_user: impl Into<String>) -> Caller {
        self.fhir_user = Some(fhir_user.into());
        self
    }

    /// The same caller, bound to a launch.
    pub fn in_launch(mut self, launch_id: impl Into<String>) -> Caller {
        self.launch_id = Some(launch_id.into());
        self
    }

    /// Whether the caller holds `scope`, compared as written (e.g. `Context.write`).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s.to_string() == scope)
    }
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("client_id", &self.client_id)
            .field("user", &self.user)
            .field("fhir_user", &self.fhir_user)
            .field("scopes", &self.scopes.to_string())
            .field("launch_id", &self.launch_id.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Why a token was refused. The message is safe to return to the caller: it never contains
/// the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Unknown, malformed, expired or revoked.
    #[error("the access token is invalid or expired")]
    Invalid,
    /// The validator could not decide (IdP unreachable...).
    #[error("the access token could not be checked: {0}")]
    Unavailable(String),
    /// The token is good but its client is over its rate limit (REQ HARD-04).
    #[error("too many requests by this client; retry later")]
    RateLimited {
        /// How long until the client may try again.
        retry_after: std::time::Duration,
    },
}

/// A store that cannot answer leaves the token undecided: [`TokenError::Unavailable`], with
/// the error's stable code and never its text.
impl From<crate::store::StoreError> for TokenError {
    fn from(error: crate::store::StoreError) -> Self {
        TokenError::Unavailable(error.code().into())
    }
}

/// Checks bearer tokens.
pub trait TokenValidator: Send + Sync + 'static {
    /// The caller the token stands for.
    fn validate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Caller, TokenError>>;
}

/// A fixed token → caller table (tests, development). Not for production: tokens never expire.
#[derive(Default)]
pub struct StaticTokens {
    tokens: HashMap<String, Caller>,
}

impl StaticTokens {
    /// An empty table: every token is refused.
    pub fn new() -> StaticTokens {
        StaticTokens::default()
    }

    /// Adds a token.
    pub fn with(mut self, token: impl Into<String>, caller: Caller) -> StaticTokens {
        self.tokens.insert(token.into(), caller);
        self
    }
}

impl fmt::Debug for StaticTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticTokens")
            .field("tokens", &self.tokens.len())
            .finish()
    }
}

impl TokenValidator for StaticTokens {
    fn validate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Caller, TokenError>> {
        let found = self.tokens.get(token).cloned().ok_or(TokenError::Invalid);
        Box::pin(async move { found })
    }
}
