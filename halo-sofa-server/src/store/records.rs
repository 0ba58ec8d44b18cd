//! The records the store keeps. Plain data with serde, so every backend can keep the parts it
//! does not index as one JSON document.

use std::fmt;

use chrono::{DateTime, Utc};
use halo_model::fhir::RawResource;
use halo_model::smart::{FhirContextItem, LaunchContext};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A resource to write: the JSON as it will be stored (its `id` set), and the launch it belongs
/// to (D-10). The store stamps `meta.versionId` and `meta.lastUpdated`.
#[derive(Debug, Clone)]
pub struct NewResource {
    /// The resource, with its `id`.
    pub resource: RawResource,
    /// The launch that created or owns it; `None` for data the host loaded outside any launch.
    pub launch_id: Option<String>,
    /// `meta.lastUpdated`.
    pub last_updated: DateTime<Utc>,
}

/// A stored resource.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResource {
    /// The resource JSON, `meta.versionId` and `meta.lastUpdated` included.
    pub resource: RawResource,
    /// The version, from 1.
    pub version: u64,
    /// When it was last written.
    pub last_updated: DateTime<Utc>,
    /// The launch it belongs to.
    pub launch_id: Option<String>,
}

impl StoredResource {
    /// `resourceType`.
    pub fn resource_type(&self) -> &str {
        self.resource.resource_type()
    }

    /// `id`.
    pub fn id(&self) -> &str {
        self.resource.id().unwrap_or_default()
    }
}

/// A resource search. Every filter that is set must match; results are ordered by type and id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceQuery {
    /// Only this type.
    pub resource_type: Option<String>,
    /// Only resources of this launch.
    pub launch_id: Option<String>,
    /// Only these ids (`_id`); empty means any.
    pub ids: Vec<String>,
    /// Only resources holding a reference equal to this `Type/id` anywhere in their JSON
    /// (for `patient`/`subject` searches).
    pub references: Option<String>,
    /// Results to skip.
    pub offset: u64,
    /// At most this many results (`_count`); 0 means no limit.
    pub limit: u64,
}

/// A launch context set through `$set-context`, bound to the PoC client and user who set it
/// (REQ SC-07, SC-09). References are already rewritten to `Type/id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchRecord {
    /// The opaque launch id (D-05).
    pub launch_id: String,
    /// The PoC client that set the context.
    pub client_id: String,
    /// The user (clinician) the PoC signed in: the launch's owner, the only user who may launch
    /// an app with it (D-18). `None` only for a launch set in userless mode.
    pub user: Option<String>,
    /// The owner's `fhirUser` as the PoC's token named it, when it did.
    #[serde(default)]
    pub owner_fhir_user: Option<String>,
    /// `appID`.
    pub app_id: Option<String>,
    /// `patient` as `Patient/id`.
    pub patient: Option<String>,
    /// `encounter` as `Encounter/id`.
    pub encounter: Option<String>,
    /// The `fhirUser` parameter as `Type/id`: the PoC's record of its clinician.
    pub fhir_user: Option<String>,
    /// `fhirContext` references as `Type/id`, in order.
    pub fhir_context: Vec<String>,
    /// `need_patient_banner`.
    pub need_patient_banner: Option<bool>,
    /// `intent`.
    pub intent: Option<String>,
    /// `smart_style_url`.
    pub smart_style_url: Option<String>,
    /// `tenant`.
    pub tenant: Option<String>,
    /// When it was set.
    pub created_at: DateTime<Utc>,
    /// When it expires and is purged with its resources.
    pub expires_at: DateTime<Utc>,
}

impl LaunchRecord {
    /// Whether the context has expired at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        now >= self.expires_at
    }

    /// The SMART launch context a token response carries for this launch (REQ SC-10): `patient`
    /// and `encounter` as bare ids, `fhirContext` in the 2.1 object form.
    pub fn launch_context(&self) -> LaunchContext {
        let id_of = |reference: &Option<String>| {
            reference
                .as_deref()
                .map(|r| r.rsplit('/').next().unwrap_or(r).to_string())
        };
        LaunchContext {
            patient: id_of(&self.patient),
            encounter: id_of(&self.encounter),
            fhir_context: self
                .fhir_context
                .iter()
                .map(|r| FhirContextItem::reference(r.clone()))
                .collect(),
            need_patient_banner: self.need_patient_banner,
            smart_style_url: self.smart_style_url.clone(),
            intent: self.intent.clone(),
            tenant: self.tenant.clone(),
            extra: Default::default(),
        }
    }
}

/// A Subscription's status (backport lifecycle, REQ SUB-11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubscriptionStatus {
    /// Created, handshake not yet done.
    Requested,
    /// Delivering.
    Active,
    /// Delivery failed.
    Error,
    /// Switched off.
    Off,
}

impl SubscriptionStatus {
    /// The FHIR code.
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionStatus::Requested => "requested",
            SubscriptionStatus::Active => "active",
            SubscriptionStatus::Error => "error",
            SubscriptionStatus::Off => "off",
        }
    }
}

/// A Subscription held for a PoC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionRecord {
    /// The Subscription's logical id.
    pub id: String,
    /// The client that owns it (D-07).
    pub owner_client_id: String,
    /// The topic canonical (`criteria`).
    pub topic: String,
    /// Its status.
    pub status: SubscriptionStatus,
    /// Events sent so far; the next event number is one more (D-09).
    pub events_since_start: u64,
    /// The Subscription resource as the client wrote it (with server-set elements).
    pub resource: RawResource,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// One persisted notification event (REQ SUB-07).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// The Subscription.
    pub subscription_id: String,
    /// Its event number, gap-free per subscription, never given to another event (D-09).
    pub event_number: u64,
    /// When it happened.
    pub timestamp: DateTime<Utc>,
    /// The focus, `Type/id`.
    pub focus: Option<String>,
    /// Where the event stands between its delivery and its write's commit (D-09, D-16).
    #[serde(default)]
    pub state: EventState,
    /// Anything else the notification needs to be replayed as it was sent (action, the
    /// resource as sent, D-17) or to be compensated (the launch, the committed state before
    /// the write, D-16).
    pub details: Value,
}

/// Where an event stands. An event is logged `Pending` before its notification may leave the
/// SoFA; the write's commit moves it to `Committed` in the same transaction, and a write that
/// does not commit moves it to `Aborted` and logs a compensating event in `Outbox`, which turns
/// `Delivered` once the PoC acknowledges it. The moves are conditional
/// ([`SubscriptionOps::transition_event`](super::SubscriptionOps::transition_event)), so a commit
/// and a compensation of the same event can never both happen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventState {
    /// Logged and maybe delivered; its write has neither committed nor been compensated.
    Pending,
    /// Its write committed. Events logged without a state read back as committed.
    #[default]
    Committed,
    /// Its write did not commit; a compensating event follows it.
    Aborted,
    /// A compensating event not yet acknowledged: the durable outbox.
    Outbox,
    /// A compensating event the PoC acknowledged.
    Delivered,
}

impl EventState {
    /// The stored code.
    pub fn as_str(self) -> &'static str {
        match self {
            EventState::Pending => "pending",
            EventState::Committed => "committed",
            EventState::Aborted => "aborted",
            EventState::Outbox => "outbox",
            EventState::Delivered => "delivered",
        }
    }

    /// The state of a stored code.
    pub fn from_code(code: &str) -> Option<EventState> {
        [
            EventState::Pending,
            EventState::Committed,
            EventState::Aborted,
            EventState::Outbox,
            EventState::Delivered,
        ]
        .into_iter()
        .find(|s| s.as_str() == code)
    }

    /// Whether work is still owed on the event: a pending write to settle, or a compensation
    /// to deliver.
    pub fn is_unsettled(self) -> bool {
        matches!(self, EventState::Pending | EventState::Outbox)
    }
}

/// An authorization code, kept by its hash (REQ AS-05, SEC-02).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthorizationCodeRecord {
    /// SHA-256 (or similar) of the code; the code itself is never stored.
    pub code_hash: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The redirect URI it was issued for.
    pub redirect_uri: String,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// The granted scopes.
    pub scope: String,
    /// The authenticated user.
    pub user: Option<String>,
    /// The launch, for EHR launches.
    pub launch_id: Option<String>,
    /// When it stops being valid.
    pub expires_at: DateTime<Utc>,
    /// Whether it was already exchanged (a second use revokes what the first produced).
    pub consumed: bool,
    /// Anything else the authorization server needs (nonce, token family...).
    pub details: Value,
}

impl fmt::Debug for AuthorizationCodeRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationCodeRecord")
            .field("client_id", &self.client_id)
            .field("launch_id", &self.launch_id.as_ref().map(|_| "<redacted>"))
            .field("expires_at", &self.expires_at)
            .field("consumed", &self.consumed)
            .finish_non_exhaustive()
    }
}

/// A refresh token, kept by its hash, in a rotation family (REQ AS-08).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshTokenRecord {
    /// Hash of the token.
    pub token_hash: String,
    /// The rotation family: reuse of a rotated token revokes the whole family.
    pub family_id: String,
    /// The client.
    pub client_id: String,
    /// The user.
    pub user: Option<String>,
    /// The granted scopes.
    pub scope: String,
    /// The launch whose context the tokens carry; clearing it revokes them (REQ SC-12).
    pub launch_id: Option<String>,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// Whether it was rotated away or revoked.
    pub revoked: bool,
    /// Anything else the authorization server needs.
    pub details: Value,
}

impl fmt::Debug for RefreshTokenRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshTokenRecord")
            .field("family_id", &self.family_id)
            .field("client_id", &self.client_id)
            .field("expires_at", &self.expires_at)
            .field("revoked", &self.revoked)
            .finish_non_exhaustive()
    }
}

/// A token-signing key, kept in the store so every instance signs and verifies alike.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct SigningKeyRecord {
    /// The key id (`kid`).
    pub kid: String,
    /// The JWS algorithm (`ES256`, `RS256`).
    pub algorithm: String,
    /// The private key in clear, PEM: empty when the key is sealed (development mode only
    /// keeps keys in clear, REQ IDP-06).
    #[serde(default)]
    pub private_key_pem: String,
    /// The private key sealed by the server's key protector (REQ IDP-06).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_private_key: Option<String>,
    /// The public JWK.
    pub public_jwk: Value,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Replaced by a rotation: it signs until the new key's `not_before`, then only verifies.
    pub retired: bool,
    /// When it starts signing (`created_at` when absent): a rotation publishes the new key
    /// before it signs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<DateTime<Utc>>,
    /// When the last token it may have signed has expired: it leaves the JWKS and the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("private_key_pem", &"<redacted>")
            .field("sealed", &self.sealed_private_key.is_some())
            .field("retired", &self.retired)
            .field("not_before", &self.not_before)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// How a client registered in the store authenticates (REQ AS-11, OPS-05).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum ClientCredentials {
    /// A public client: PKCE only.
    Public,
    /// A secret, kept only as its SHA-256 (base64url): the secret itself is never stored.
    SecretSha256 {
        /// SHA-256 of the secret, base64url without padding.
        sha256: String,
    },
    /// `private_key_jwt` with the client's public JWK Set.
    Jwks {
        /// The JWK Set.
        jwks: Value,
    },
    /// `private_key_jwt` with the URL of the client's JWK Set.
    JwksUrl {
        /// The URL.
        jwks_url: String,
    },
}

impl fmt::Debug for ClientCredentials {
    // SEC-01: a secret's hash is no more shown than the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientCredentials::Public => f.write_str("Public"),
            ClientCredentials::SecretSha256 { .. } => f.write_str("SecretSha256(<redacted>)"),
            ClientCredentials::Jwks { .. } => f.write_str("Jwks"),
            ClientCredentials::JwksUrl { jwks_url } => write!(f, "JwksUrl({jwks_url})"),
        }
    }
}

/// A client registered or disabled at run time (the admin command line, REQ OPS-05): every
/// instance reads it from the store, and it takes precedence over a configured client of the
/// same id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientRecord {
    /// `client_id`.
    pub client_id: String,
    /// How it authenticates.
    pub credentials: ClientCredentials,
    /// Exact redirect URIs.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// The scopes it may be granted (space-separated).
    pub scopes: String,
    /// The App Catalog entry id.
    #[serde(default)]
    pub app_id: Option<String>,
    /// The app's launch URL.
    #[serde(default)]
    pub launch_url: Option<String>,
    /// A disabled client gets no token, code or introspection answer.
    pub disabled: bool,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}
