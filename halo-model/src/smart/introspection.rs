//! The token introspection response (RFC 7662 plus SMART's fields, CTX-04).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::context::{FhirContextItem, LaunchContext};
use super::error::SmartDocumentError;
use super::fields::{Fields, deserialize_object};

const DOC: &str = "introspection response";

/// The audience of a token: one string or several (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// A single audience, written as a string.
    One(String),
    /// Several audiences, written as an array.
    Many(Vec<String>),
}

impl Audience {
    /// True when `audience` is (one of) this audience.
    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Self::One(a) => a == audience,
            Self::Many(all) => all.iter().any(|a| a == audience),
        }
    }
}

impl Serialize for Audience {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::One(a) => serializer.serialize_str(a),
            Self::Many(all) => all.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(one) => Ok(Self::One(one)),
            Value::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s),
                    _ => Err(serde::de::Error::custom("`aud` items must be strings")),
                })
                .collect::<Result<_, _>>()
                .map(Self::Many),
            _ => Err(serde::de::Error::custom(
                "`aud` must be a string or an array of strings",
            )),
        }
    }
}

/// What an authorization server says about a token (RFC 7662 §2.2), with SMART's additions:
/// when active, `scope`, `client_id` and `exp` (SHALL), the launch context that was in the token
/// response, and `iss`, `sub`, `fhirUser` when an ID token was issued.
///
/// An inactive token is described by `{"active": false}` and nothing else, which is exactly what
/// [`inactive`](Self::inactive) writes.
///
/// ```
/// use halo_model::smart::IntrospectionResponse;
///
/// assert_eq!(serde_json::to_string(&IntrospectionResponse::inactive()).unwrap(), r#"{"active":false}"#);
///
/// let r = IntrospectionResponse::from_json(br#"{"active": true, "scope": "patient/*.rs",
///     "client_id": "app", "exp": 1597678964, "patient": "456"}"#).unwrap();
/// assert_eq!(r.launch_context().patient.as_deref(), Some("456"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IntrospectionResponse {
    /// Whether the token is currently active.
    pub active: bool,
    /// Scopes of the token, space-separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The client the token was issued to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Human-readable identifier of the resource owner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Type of the token, e.g. `Bearer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// Expiry, seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Issue time, seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Not-before time, seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Subject of the token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Intended audience.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    /// Issuer of the token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Token identifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// URL of the FHIR resource for the user (`fhirUser`).
    #[serde(rename = "fhirUser", skip_serializing_if = "Option::is_none")]
    pub fhir_user: Option<String>,
    /// Id of the patient in context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    /// Id of the encounter in context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encounter: Option<String>,
    /// Other resources in context, written in the SMART 2.1 object form.
    #[serde(rename = "fhirContext", skip_serializing_if = "Vec::is_empty")]
    pub fhir_context: Vec<FhirContextItem>,
    /// Whether the app must show a patient banner.
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

impl IntrospectionResponse {
    /// The response for a token that is not active: `{"active": false}` and nothing more
    /// (RFC 7662 §2.2 says not to reveal anything else about it).
    pub fn inactive() -> Self {
        Self::default()
    }

    /// An active token's response with the fields SMART requires (`scope`, `client_id`, `exp`).
    pub fn active(scope: impl Into<String>, client_id: impl Into<String>, exp: i64) -> Self {
        Self {
            active: true,
            scope: Some(scope.into()),
            client_id: Some(client_id.into()),
            exp: Some(exp),
            ..Self::default()
        }
    }

    /// Reads an introspection response; only `active` is required.
    pub fn from_json(bytes: &[u8]) -> Result<Self, SmartDocumentError> {
        Self::read(Fields::parse(DOC, bytes)?)
    }

    /// Reads an introspection response from parsed JSON.
    pub fn from_value(value: Value) -> Result<Self, SmartDocumentError> {
        Self::read(Fields::from_value(DOC, value)?)
    }

    fn read(mut f: Fields) -> Result<Self, SmartDocumentError> {
        let active = f.required_strict_bool("active")?;
        let aud = match f.take("aud") {
            None => None,
            Some(Value::String(a)) => Some(Audience::One(a)),
            Some(Value::Array(items)) => Some(Audience::Many(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| match item {
                        Value::String(s) => Ok(s),
                        other => Err(f.invalid(format!("aud[{i}]"), "a string", &other)),
                    })
                    .collect::<Result<_, _>>()?,
            )),
            Some(other) => return Err(f.invalid("aud", "a string or an array of strings", &other)),
        };
        let mut response = Self {
            active,
            scope: f.string("scope")?,
            client_id: f.string("client_id")?,
            username: f.string("username")?,
            token_type: f.string("token_type")?,
            exp: f.i64("exp")?,
            iat: f.i64("iat")?,
            nbf: f.i64("nbf")?,
            sub: f.string("sub")?,
            aud,
            iss: f.string("iss")?,
            jti: f.string("jti")?,
            fhir_user: f.string("fhirUser")?,
            ..Self::default()
        };
        response.set_launch_context(LaunchContext::take_from(&mut f)?);
        response.extra.extend(f.into_rest());
        Ok(response)
    }

    /// The launch context the token carries; `extra` holds the context extension keys.
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

    /// Puts a launch context into the response, replacing any there; its extension keys go
    /// into `extra`.
    pub fn set_launch_context(&mut self, context: LaunchContext) {
        self.patient = context.patient;
        self.encounter = context.encounter;
        self.fhir_context = context.fhir_context;
        self.need_patient_banner = context.need_patient_banner;
        self.smart_style_url = context.smart_style_url;
        self.intent = context.intent;
        self.tenant = context.tenant;
        self.extra.extend(context.extra);
    }

    /// The token's scopes, one by one.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope
            .as_deref()
            .unwrap_or_default()
            .split_ascii_whitespace()
    }
}

impl<'de> Deserialize<'de> for IntrospectionResponse {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_object(deserializer, DOC, Self::read)
    }
}
