//! The token response (SMART App Launch 2.1 §"Token response", CTX-01).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::context::{FhirContextItem, LaunchContext};
use super::error::SmartDocumentError;
use super::fields::{Fields, deserialize_object};

const DOC: &str = "token response";

/// A successful response from the token endpoint (authorization code, refresh or client
/// credentials grant), with the SMART launch context that rides along.
///
/// `token_type` is kept exactly as sent; [`is_bearer`](Self::is_bearer) compares it without
/// regard to case, because the specification's own examples write both `Bearer` and `bearer`.
/// Unknown keys (`refresh_expires_in`, `authorization_details`, …) are kept in
/// [`extra`](Self::extra) and written back out.
///
/// `Debug` never prints the tokens: logs are the usual way access tokens leak.
///
/// ```
/// use halo_model::smart::TokenResponse;
///
/// let token = TokenResponse::from_json(br#"{
///     "access_token": "s3cr3t", "token_type": "bearer", "expires_in": 300,
///     "scope": "launch patient/*.rs", "patient": "123", "need_patient_banner": true
/// }"#).unwrap();
/// assert!(token.is_bearer());
/// assert_eq!(token.launch_context().patient.as_deref(), Some("123"));
/// assert!(!format!("{token:?}").contains("s3cr3t"));
/// ```
#[derive(Clone, PartialEq, Serialize)]
pub struct TokenResponse {
    /// The access token, opaque to the app.
    pub access_token: String,
    /// The token type as sent, normally `Bearer` in any case.
    pub token_type: String,
    /// Lifetime of the access token in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// The granted scopes, space-separated; may differ from what was requested.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// OpenID Connect ID token, when `openid` was granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// Refresh token, when `offline_access` or `online_access` was granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Id of the patient in context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    /// Id of the encounter in context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encounter: Option<String>,
    /// Other resources in context, written in the SMART 2.1 object form.
    #[serde(rename = "fhirContext", skip_serializing_if = "Vec::is_empty")]
    pub fhir_context: Vec<FhirContextItem>,
    /// Whether the app must show a patient banner (`"true"`/`"false"` strings accepted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub need_patient_banner: Option<bool>,
    /// URL of the SMART style document.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smart_style_url: Option<String>,
    /// App-specific launch intent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    /// Opaque id of the launching organisation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Keys this type does not know, kept for a lossless round trip.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl TokenResponse {
    /// A response carrying a `Bearer` access token and nothing else yet.
    pub fn bearer(access_token: impl Into<String>) -> Self {
        Self {
            access_token: access_token.into(),
            token_type: "Bearer".to_owned(),
            expires_in: None,
            scope: None,
            id_token: None,
            refresh_token: None,
            patient: None,
            encounter: None,
            fhir_context: Vec::new(),
            need_patient_banner: None,
            smart_style_url: None,
            intent: None,
            tenant: None,
            extra: Map::new(),
        }
    }

    /// Reads a token response. `access_token` and `token_type` are required (RFC 6749 §5.1);
    /// everything else is optional.
    pub fn from_json(bytes: &[u8]) -> Result<Self, SmartDocumentError> {
        Self::read(Fields::parse(DOC, bytes)?)
    }

    /// Reads a token response from parsed JSON.
    pub fn from_value(value: Value) -> Result<Self, SmartDocumentError> {
        Self::read(Fields::from_value(DOC, value)?)
    }

    fn read(mut f: Fields) -> Result<Self, SmartDocumentError> {
        let access_token = f.required_string("access_token")?;
        let token_type = f.required_string("token_type")?;
        let expires_in = f.u64("expires_in")?;
        let scope = f.string("scope")?;
        let id_token = f.string("id_token")?;
        let refresh_token = f.string("refresh_token")?;
        let context = LaunchContext::take_from(&mut f)?;
        let mut token = Self {
            access_token,
            token_type,
            expires_in,
            scope,
            id_token,
            refresh_token,
            ..Self::bearer(String::new())
        };
        token.set_context_fields(context);
        token.extra = f.into_rest();
        Ok(token)
    }

    /// True when `token_type` is `Bearer`, compared without regard to case.
    pub fn is_bearer(&self) -> bool {
        self.token_type.eq_ignore_ascii_case("bearer")
    }

    /// The launch context carried by this response. Its `extra` holds the unknown keys that
    /// follow SMART's rule for context extensions (full URIs and `__`-prefixed names).
    pub fn launch_context(&self) -> LaunchContext {
        LaunchContext {
            patient: self.patient.clone(),
            encounter: self.encounter.clone(),
            fhir_context: self.fhir_context.clone(),
            need_patient_banner: self.need_patient_banner,
            smart_style_url: self.smart_style_url.clone(),
            intent: self.intent.clone(),
            tenant: self.tenant.clone(),
            extra: Map::new(),
        }
        .with_extensions_from(&self.extra)
    }

    /// Puts a launch context into this response (the authorization server's side), replacing
    /// any context already there. The context's extension keys go into `extra`.
    pub fn set_launch_context(&mut self, context: LaunchContext) {
        let extensions = context.extra.clone();
        self.set_context_fields(context);
        self.extra.extend(extensions);
    }

    /// Builder form of [`set_launch_context`](Self::set_launch_context).
    #[must_use]
    pub fn with_launch_context(mut self, context: LaunchContext) -> Self {
        self.set_launch_context(context);
        self
    }

    /// The granted scopes, one by one (empty when `scope` is absent or empty).
    pub fn granted_scopes(&self) -> impl Iterator<Item = &str> {
        self.scope
            .as_deref()
            .unwrap_or_default()
            .split_ascii_whitespace()
    }

    fn set_context_fields(&mut self, context: LaunchContext) {
        let LaunchContext {
            patient,
            encounter,
            fhir_context,
            need_patient_banner,
            smart_style_url,
            intent,
            tenant,
            extra: _,
        } = context;
        self.patient = patient;
        self.encounter = encounter;
        self.fhir_context = fhir_context;
        self.need_patient_banner = need_patient_banner;
        self.smart_style_url = smart_style_url;
        self.intent = intent;
        self.tenant = tenant;
    }
}

impl<'de> Deserialize<'de> for TokenResponse {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_object(deserializer, DOC, Self::read)
    }
}

/// Shows the shape of the response with every token replaced by `<redacted>`; unknown keys are
/// listed by name only, since a server may put secrets there too.
impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |present: bool| if present { Some("<redacted>") } else { None };
        f.debug_struct("TokenResponse")
            .field("access_token", &"<redacted>")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field("id_token", &redacted(self.id_token.is_some()))
            .field("refresh_token", &redacted(self.refresh_token.is_some()))
            .field("patient", &self.patient)
            .field("encounter", &self.encounter)
            .field("fhir_context", &self.fhir_context)
            .field("need_patient_banner", &self.need_patient_banner)
            .field("smart_style_url", &self.smart_style_url)
            .field("intent", &self.intent)
            .field("tenant", &self.tenant)
            .field("extra_keys", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}
