//! The `.well-known/smart-configuration` document (SMART App Launch 2.1 §"Discovery", CTX-03).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use url::Url;

pub use super::capability::Capability;
use super::error::SmartDocumentError;
use super::fields::{Fields, deserialize_object};

const DOC: &str = "smart-configuration document";

/// A SMART server's discovery document, served at `{fhir-base}/.well-known/smart-configuration`.
///
/// Reading is lenient: every field is optional here, so a partial document still parses and
/// [`validate`](Self::validate) can say everything that is wrong with it at once. Unknown keys
/// are kept in [`extra`](Self::extra) and written back out. Empty arrays are written as absent.
///
/// ```
/// use halo_model::smart::{Capability, SmartConfiguration};
///
/// let mut config = SmartConfiguration::from_json(br#"{
///     "authorization_endpoint": "/auth/authorize",
///     "token_endpoint": "https://ehr.example.org/auth/token",
///     "grant_types_supported": ["authorization_code"],
///     "capabilities": ["launch-ehr", "client-public", "context-ehr-patient"],
///     "code_challenge_methods_supported": ["S256"]
/// }"#).unwrap();
/// config.resolve_endpoints(&"https://ehr.example.org/fhir".parse().unwrap());
/// assert_eq!(config.authorization_endpoint.as_deref(), Some("https://ehr.example.org/auth/authorize"));
/// assert!(config.validate().is_ok());
/// assert!(config.supports(&Capability::LaunchEhr));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SmartConfiguration {
    /// OpenID Connect issuer; required with `sso-openid-connect`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// URL of the server's JSON Web Key Set; required with `sso-openid-connect`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// The authorize endpoint (required in 2.1; 2.2 requires it only for launch capabilities).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    /// The token endpoint (required).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    /// Client authentication methods at the token endpoint.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// Grant types (required): `authorization_code` and/or `client_credentials`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grant_types_supported: Vec<String>,
    /// Dynamic client registration endpoint (RFC 7591).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
    /// Scopes the server supports (not an exhaustive list).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// Response types, normally `["code"]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub response_types_supported: Vec<String>,
    /// User-facing page to review and revoke app access.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub management_endpoint: Option<String>,
    /// Token introspection endpoint (RFC 7662).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub introspection_endpoint: Option<String>,
    /// Token revocation endpoint (RFC 7009).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// SMART capabilities (required).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<Capability>,
    /// PKCE methods (required): must include `S256` and must not include `plain`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub code_challenge_methods_supported: Vec<String>,
    /// Signing algorithms for `private_key_jwt` (`RS384`, `ES384`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub token_endpoint_auth_signing_alg_values_supported: Vec<String>,
    /// App state endpoint, when it differs from the FHIR base (2.1, experimental).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smart_app_state_endpoint: Option<String>,
    /// Other endpoints and their capabilities (2.2, experimental).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub associated_endpoints: Vec<AssociatedEndpoint>,
    /// URL of a User Access Brand Bundle (2.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_access_brand_bundle: Option<String>,
    /// Identifier of the primary entry in the brand bundle (2.2), kept as the JSON it came in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_access_brand_identifier: Option<Value>,
    /// Keys this type does not know, kept for a lossless round trip.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An entry of `associated_endpoints` (SMART 2.2).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AssociatedEndpoint {
    /// The endpoint's URL.
    pub url: String,
    /// Capabilities the endpoint supports.
    pub capabilities: Vec<Capability>,
    /// Keys this type does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One way a discovery document falls short of SMART 2.1 (see
/// [`SmartConfiguration::validate`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigurationProblem {
    /// A required field is absent (or an empty array).
    #[error("the smart-configuration document has no `{0}`, which SMART App Launch requires")]
    MissingField(&'static str),
    /// A field required by an advertised capability is absent.
    #[error("the smart-configuration document advertises `{capability}` but has no `{field}`")]
    ConditionalFieldMissing {
        /// The missing field.
        field: &'static str,
        /// The capability that requires it.
        capability: &'static str,
    },
    /// `grant_types_supported` lacks `authorization_code`, so no app can launch.
    #[error(
        "`grant_types_supported` does not include `authorization_code`, so apps cannot be launched"
    )]
    AuthorizationCodeGrantMissing,
    /// `code_challenge_methods_supported` lacks `S256`.
    #[error(
        "`code_challenge_methods_supported` does not include `S256`; SMART requires PKCE with S256"
    )]
    S256Missing,
    /// `code_challenge_methods_supported` includes `plain`, which SMART forbids.
    #[error(
        "`code_challenge_methods_supported` includes `plain`, which SMART forbids (it defeats PKCE)"
    )]
    PlainAdvertised,
    /// An endpoint is not an absolute URL (even after [`SmartConfiguration::resolve_endpoints`]).
    #[error("`{field}` is not an absolute URL: {value:?}")]
    EndpointNotAbsolute {
        /// The endpoint's field name.
        field: &'static str,
        /// The value found.
        value: String,
    },
}

impl ConfigurationProblem {
    /// A stable machine-readable code for this problem.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingField(_) => "smart-configuration.missing-field",
            Self::ConditionalFieldMissing { .. } => "smart-configuration.conditional-field-missing",
            Self::AuthorizationCodeGrantMissing => {
                "smart-configuration.no-authorization-code-grant"
            }
            Self::S256Missing => "smart-configuration.no-s256",
            Self::PlainAdvertised => "smart-configuration.plain-pkce",
            Self::EndpointNotAbsolute { .. } => "smart-configuration.relative-endpoint",
        }
    }
}

impl SmartConfiguration {
    /// Reads a discovery document. Only the JSON shape is checked here; call
    /// [`validate`](Self::validate) for SMART's requirements.
    pub fn from_json(bytes: &[u8]) -> Result<Self, SmartDocumentError> {
        Self::read(Fields::parse(DOC, bytes)?)
    }

    /// Reads a discovery document from parsed JSON.
    pub fn from_value(value: Value) -> Result<Self, SmartDocumentError> {
        Self::read(Fields::from_value(DOC, value)?)
    }

    fn read(mut f: Fields) -> Result<Self, SmartDocumentError> {
        let capabilities = |f: &mut Fields, key| {
            f.string_array(key)
                .map(|names| names.iter().map(|n| Capability::from(n.as_str())).collect())
        };
        let mut config = Self {
            issuer: f.string("issuer")?,
            jwks_uri: f.string("jwks_uri")?,
            authorization_endpoint: f.string("authorization_endpoint")?,
            token_endpoint: f.string("token_endpoint")?,
            token_endpoint_auth_methods_supported: f
                .string_array("token_endpoint_auth_methods_supported")?,
            grant_types_supported: f.string_array("grant_types_supported")?,
            registration_endpoint: f.string("registration_endpoint")?,
            scopes_supported: f.string_array("scopes_supported")?,
            response_types_supported: f.string_array("response_types_supported")?,
            management_endpoint: f.string("management_endpoint")?,
            introspection_endpoint: f.string("introspection_endpoint")?,
            revocation_endpoint: f.string("revocation_endpoint")?,
            capabilities: capabilities(&mut f, "capabilities")?,
            code_challenge_methods_supported: f.string_array("code_challenge_methods_supported")?,
            token_endpoint_auth_signing_alg_values_supported: f
                .string_array("token_endpoint_auth_signing_alg_values_supported")?,
            smart_app_state_endpoint: f.string("smart_app_state_endpoint")?,
            associated_endpoints: Vec::new(),
            user_access_brand_bundle: f.string("user_access_brand_bundle")?,
            user_access_brand_identifier: f.take("user_access_brand_identifier"),
            extra: Map::new(),
        };
        let document = f.document();
        config.associated_endpoints = f.array_of("associated_endpoints", |value, path| {
            let mut e = match value {
                Value::Object(map) => Fields::new(document, map),
                other => {
                    return Err(SmartDocumentError::InvalidField {
                        document,
                        field: path.to_owned(),
                        expected: "an object",
                        found: super::error::describe(&other).to_owned(),
                    });
                }
            };
            let url = match e.take("url") {
                Some(Value::String(url)) => url,
                Some(other) => return Err(e.invalid(format!("{path}.url"), "a string", &other)),
                None => {
                    return Err(SmartDocumentError::InvalidField {
                        document,
                        field: path.to_owned(),
                        expected: "an object with a `url`",
                        found: "an object without one".to_owned(),
                    });
                }
            };
            let capabilities = capabilities(&mut e, "capabilities")?;
            Ok(AssociatedEndpoint {
                url,
                capabilities,
                extra: e.into_rest(),
            })
        })?;
        config.extra = f.into_rest();
        Ok(config)
    }

    /// Checks SMART App Launch 2.1's requirements for an app-launch server and returns every
    /// problem found, not just the first:
    ///
    /// * `authorization_endpoint`, `token_endpoint`, `grant_types_supported`, `capabilities` and
    ///   `code_challenge_methods_supported` are present;
    /// * `grant_types_supported` includes `authorization_code`;
    /// * `code_challenge_methods_supported` includes `S256` and not `plain`;
    /// * with `sso-openid-connect`, `issuer` and `jwks_uri` are present;
    /// * every endpoint is an absolute URL (call [`resolve_endpoints`](Self::resolve_endpoints)
    ///   first to accept relative ones).
    pub fn validate(&self) -> Result<(), Vec<ConfigurationProblem>> {
        let mut problems = Vec::new();
        if self.authorization_endpoint.is_none() {
            problems.push(ConfigurationProblem::MissingField("authorization_endpoint"));
        }
        if self.token_endpoint.is_none() {
            problems.push(ConfigurationProblem::MissingField("token_endpoint"));
        }
        if self.grant_types_supported.is_empty() {
            problems.push(ConfigurationProblem::MissingField("grant_types_supported"));
        } else if !self
            .grant_types_supported
            .iter()
            .any(|g| g == "authorization_code")
        {
            problems.push(ConfigurationProblem::AuthorizationCodeGrantMissing);
        }
        if self.capabilities.is_empty() {
            problems.push(ConfigurationProblem::MissingField("capabilities"));
        }
        if self.code_challenge_methods_supported.is_empty() {
            problems.push(ConfigurationProblem::MissingField(
                "code_challenge_methods_supported",
            ));
        } else {
            if !self
                .code_challenge_methods_supported
                .iter()
                .any(|m| m == "S256")
            {
                problems.push(ConfigurationProblem::S256Missing);
            }
            // Any spelling of `plain` is a downgrade offer; refuse it whatever its case.
            if self
                .code_challenge_methods_supported
                .iter()
                .any(|m| m.eq_ignore_ascii_case("plain"))
            {
                problems.push(ConfigurationProblem::PlainAdvertised);
            }
        }
        if self.supports(&Capability::SsoOpenidConnect) {
            for (field, value) in [("issuer", &self.issuer), ("jwks_uri", &self.jwks_uri)] {
                if value.is_none() {
                    problems.push(ConfigurationProblem::ConditionalFieldMissing {
                        field,
                        capability: "sso-openid-connect",
                    });
                }
            }
        }
        for (field, value) in self.endpoints() {
            if Url::parse(value).is_err() {
                problems.push(ConfigurationProblem::EndpointNotAbsolute {
                    field,
                    value: value.clone(),
                });
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Resolves relative endpoint URLs against the FHIR base URL, as SMART tells clients to do
    /// (servers SHALL send absolute URLs, but not all do).
    ///
    /// The base is read as a directory, as it is when `/.well-known/smart-configuration` is
    /// appended to it: with base `https://ehr/fhir`, `auth/token` becomes
    /// `https://ehr/fhir/auth/token` and `/auth/token` becomes `https://ehr/auth/token`.
    /// Absolute URLs are left as they are; so is `issuer`, an identifier that must match the ID
    /// token's `iss` exactly. A value that cannot be resolved is left as it is, and
    /// [`validate`](Self::validate) reports it.
    pub fn resolve_endpoints(&mut self, fhir_base: &Url) {
        let mut base = fhir_base.clone();
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let resolve = |value: &mut String| {
            if let Err(url::ParseError::RelativeUrlWithoutBase) = Url::parse(value)
                && let Ok(resolved) = base.join(value)
            {
                *value = resolved.into();
            }
        };
        for value in self.endpoints_mut() {
            resolve(value);
        }
        for endpoint in &mut self.associated_endpoints {
            resolve(&mut endpoint.url);
        }
    }

    /// True when the server advertises `capability`. The legacy names
    /// `context-passthrough-banner`/`-style` count as `context-banner`/`-style`.
    pub fn supports(&self, capability: &Capability) -> bool {
        self.capabilities
            .iter()
            .any(|c| c == capability || c.legacy_meaning() == Some(capability))
    }

    /// True when `grant_types_supported` includes `grant_type`.
    pub fn supports_grant_type(&self, grant_type: &str) -> bool {
        self.grant_types_supported.iter().any(|g| g == grant_type)
    }

    /// True when the token endpoint accepts the client authentication `method`
    /// (e.g. `private_key_jwt`).
    pub fn supports_auth_method(&self, method: &str) -> bool {
        self.token_endpoint_auth_methods_supported
            .iter()
            .any(|m| m == method)
    }

    /// The endpoint fields that are present, by JSON name (`issuer` excluded, see
    /// [`resolve_endpoints`](Self::resolve_endpoints)).
    fn endpoints(&self) -> impl Iterator<Item = (&'static str, &String)> {
        [
            ("jwks_uri", &self.jwks_uri),
            ("authorization_endpoint", &self.authorization_endpoint),
            ("token_endpoint", &self.token_endpoint),
            ("registration_endpoint", &self.registration_endpoint),
            ("management_endpoint", &self.management_endpoint),
            ("introspection_endpoint", &self.introspection_endpoint),
            ("revocation_endpoint", &self.revocation_endpoint),
            ("smart_app_state_endpoint", &self.smart_app_state_endpoint),
            ("user_access_brand_bundle", &self.user_access_brand_bundle),
        ]
        .into_iter()
        .filter_map(|(field, value)| value.as_ref().map(|v| (field, v)))
        .chain(
            self.associated_endpoints
                .iter()
                .map(|e| ("associated_endpoints.url", &e.url)),
        )
    }

    fn endpoints_mut(&mut self) -> impl Iterator<Item = &mut String> {
        [
            &mut self.jwks_uri,
            &mut self.authorization_endpoint,
            &mut self.token_endpoint,
            &mut self.registration_endpoint,
            &mut self.management_endpoint,
            &mut self.introspection_endpoint,
            &mut self.revocation_endpoint,
            &mut self.smart_app_state_endpoint,
            &mut self.user_access_brand_bundle,
        ]
        .into_iter()
        .filter_map(Option::as_mut)
    }
}

impl<'de> Deserialize<'de> for SmartConfiguration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_object(deserializer, DOC, Self::read)
    }
}
