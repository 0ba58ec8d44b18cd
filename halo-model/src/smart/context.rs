//! Launch context: `fhirContext` items and the context a SoFA writes and an app reads.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::error::SmartDocumentError;
use super::fields::{Fields, deserialize_object};

const ITEM: &str = "fhirContext item";
const CONTEXT: &str = "launch context";

/// The role an item has when it names none (SMART 2.1: absence is equivalent to `launch`).
pub const DEFAULT_ROLE: &str = "launch";

/// One entry of `fhirContext`: a resource in context besides the patient and encounter.
///
/// Reads every published form (CTX-02):
///
/// * SMART 2.0: a string holding a relative reference, `"Appointment/123"`;
/// * SMART 2.1: an object `{"reference": "List/123", "role": "https://…"}`;
/// * SMART 2.2: an object that may carry `canonical`, `identifier` and `type` instead of
///   `reference`.
///
/// Always writes the object form, so 2.1 readers understand it. Unknown keys of an object item
/// are kept in [`extra`](Self::extra).
///
/// ```
/// use halo_model::smart::FhirContextItem;
///
/// let item: FhirContextItem = serde_json::from_str(r#""DiagnosticReport/123""#).unwrap();
/// assert_eq!(item.reference.as_deref(), Some("DiagnosticReport/123"));
/// assert_eq!(serde_json::to_string(&item).unwrap(), r#"{"reference":"DiagnosticReport/123"}"#);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FhirContextItem {
    /// Relative reference to the resource, e.g. `List/123` (2.1: required).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Canonical URL, possibly with `|version` (2.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canonical: Option<String>,
    /// A FHIR `Identifier` naming the resource (2.2), kept as the JSON it came in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identifier: Option<Value>,
    /// The resource type (2.2; recommended with `canonical` or `identifier`).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// Why the resource is in context, a URI; absent means [`DEFAULT_ROLE`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Keys this type does not know, kept for a lossless round trip.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl FhirContextItem {
    /// An item naming a resource by relative reference, with the default role.
    pub fn reference(reference: impl Into<String>) -> Self {
        Self {
            reference: Some(reference.into()),
            ..Self::default()
        }
    }

    /// An item naming a resource by canonical URL (2.2), with its resource type.
    pub fn canonical(canonical: impl Into<String>, resource_type: impl Into<String>) -> Self {
        Self {
            canonical: Some(canonical.into()),
            resource_type: Some(resource_type.into()),
            ..Self::default()
        }
    }

    /// Sets the role.
    #[must_use]
    pub fn with_role(mut self, role: impl Into<String>) -> Self {
        self.role = Some(role.into());
        self
    }

    /// The role, with absence read as [`DEFAULT_ROLE`].
    pub fn effective_role(&self) -> &str {
        self.role.as_deref().unwrap_or(DEFAULT_ROLE)
    }

    /// The resource type: `type` if given, else the part of `reference` before the first `/`.
    pub fn resource_type(&self) -> Option<&str> {
        if let Some(t) = self.resource_type.as_deref() {
            return Some(t);
        }
        let reference = self.reference.as_deref()?;
        let (resource_type, _) = reference.split_once('/')?;
        Some(resource_type).filter(|t| !t.is_empty())
    }

    /// Reads one item from JSON (any published form).
    pub fn from_value(value: Value) -> Result<Self, SmartDocumentError> {
        Self::from_value_at(value, ITEM, "fhirContext")
    }

    /// Reads one item, naming `path` inside `document` in errors.
    pub(crate) fn from_value_at(
        value: Value,
        document: &'static str,
        path: &str,
    ) -> Result<Self, SmartDocumentError> {
        let map = match value {
            // SMART 2.0 wrote plain relative references.
            Value::String(reference) if !reference.is_empty() => {
                return Ok(Self::reference(reference));
            }
            Value::Object(map) => map,
            other => {
                return Err(SmartDocumentError::InvalidField {
                    document,
                    field: path.to_owned(),
                    expected: "an object (or a reference string)",
                    found: super::error::describe(&other).to_owned(),
                });
            }
        };
        let mut f = Fields::new(document, map);
        let nested = |f: &Fields, key: &str, expected: &'static str, found: &Value| {
            f.invalid(format!("{path}.{key}"), expected, found)
        };
        let string = |f: &mut Fields, key: &'static str| match f.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(nested(f, key, "a string", &other)),
        };
        let reference = string(&mut f, "reference")?;
        let canonical = string(&mut f, "canonical")?;
        let resource_type = string(&mut f, "type")?;
        let role = string(&mut f, "role")?;
        let identifier = match f.take("identifier") {
            None => None,
            Some(v @ Value::Object(_)) => Some(v),
            Some(other) => return Err(nested(&f, "identifier", "an Identifier object", &other)),
        };
        if reference.is_none() && canonical.is_none() && identifier.is_none() {
            return Err(SmartDocumentError::InvalidField {
                document: f.document(),
                field: path.to_owned(),
                expected: "an object with `reference`, `canonical` or `identifier`",
                found: "an object with none of them".to_owned(),
            });
        }
        Ok(Self {
            reference,
            canonical,
            identifier,
            resource_type,
            role,
            extra: f.into_rest(),
        })
    }
}

impl<'de> Deserialize<'de> for FhirContextItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::from_value(value).map_err(serde::de::Error::custom)
    }
}

/// The launch context: what the authorization server tells the app about where it was launched.
///
/// A SoFA writes it into the token response (and the introspection response); an app reads it
/// from there (see [`TokenResponse::launch_context`](super::TokenResponse::launch_context)).
/// Every field is optional and may be sent unasked.
///
/// ```
/// use halo_model::smart::{FhirContextItem, LaunchContext};
///
/// let context = LaunchContext {
///     patient: Some("123".into()),
///     fhir_context: vec![FhirContextItem::reference("List/7").with_role("https://example.org/home")],
///     need_patient_banner: Some(false),
///     ..LaunchContext::default()
/// };
/// let json = serde_json::to_value(&context).unwrap();
/// assert_eq!(json["fhirContext"][0]["reference"], "List/7");
/// assert_eq!(LaunchContext::from_json(json.to_string().as_bytes()).unwrap(), context);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LaunchContext {
    /// Id of the patient in context (as sent; see [`patient_id`](Self::patient_id)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    /// Id of the encounter in context (as sent; see [`encounter_id`](Self::encounter_id)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encounter: Option<String>,
    /// Other resources in context.
    #[serde(rename = "fhirContext", skip_serializing_if = "Vec::is_empty")]
    pub fhir_context: Vec<FhirContextItem>,
    /// Whether the app must show a patient banner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub need_patient_banner: Option<bool>,
    /// URL of the SMART style document.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smart_style_url: Option<String>,
    /// App-specific launch intent, e.g. `reconcile-medications`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    /// Opaque id of the launching organisation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Extension context: keys that are full URIs or start with `__` (SMART's extension rule).
    /// When read on its own with [`from_json`](Self::from_json) every unknown key lands here.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl LaunchContext {
    /// Reads a launch context from a JSON object, e.g. a stored context or a token response
    /// fragment. Unknown keys are kept in [`extra`](Self::extra).
    pub fn from_json(bytes: &[u8]) -> Result<Self, SmartDocumentError> {
        Self::read(Fields::parse(CONTEXT, bytes)?)
    }

    /// Reads a launch context from parsed JSON.
    pub fn from_value(value: Value) -> Result<Self, SmartDocumentError> {
        Self::read(Fields::from_value(CONTEXT, value)?)
    }

    fn read(mut f: Fields) -> Result<Self, SmartDocumentError> {
        let mut context = Self::take_from(&mut f)?;
        context.extra = f.into_rest();
        Ok(context)
    }

    /// Takes the launch-context keys out of a document, leaving the rest; `extra` stays empty.
    pub(crate) fn take_from(f: &mut Fields) -> Result<Self, SmartDocumentError> {
        Ok(Self {
            patient: f.string("patient")?,
            encounter: f.string("encounter")?,
            fhir_context: f.fhir_context("fhirContext")?,
            need_patient_banner: f.bool("need_patient_banner")?,
            smart_style_url: f.string("smart_style_url")?,
            intent: f.string("intent")?,
            tenant: f.string("tenant")?,
            extra: Map::new(),
        })
    }

    /// Copies into `extra` the keys of `rest` that SMART reserves for context extensions: full
    /// URIs and names starting with `__`.
    pub(crate) fn with_extensions_from(mut self, rest: &Map<String, Value>) -> Self {
        self.extra = rest
            .iter()
            .filter(|(key, _)| is_context_extension(key))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self
    }

    /// True when no context at all was given.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// The patient id without a `Patient/` prefix. SMART sends a bare id, but some deployed
    /// HALO authorization servers send the relative reference `Patient/{id}`.
    pub fn patient_id(&self) -> Option<&str> {
        strip_type(self.patient.as_deref()?, "Patient/")
    }

    /// The encounter id without an `Encounter/` prefix (see [`patient_id`](Self::patient_id)).
    pub fn encounter_id(&self) -> Option<&str> {
        strip_type(self.encounter.as_deref()?, "Encounter/")
    }

    /// The `fhirContext` items with the given role (absent role counts as [`DEFAULT_ROLE`]).
    pub fn items_with_role<'a>(
        &'a self,
        role: &'a str,
    ) -> impl Iterator<Item = &'a FhirContextItem> + 'a {
        self.fhir_context
            .iter()
            .filter(move |item| item.effective_role() == role)
    }

    /// The `fhirContext` items of one resource type.
    pub fn items_of_type<'a>(
        &'a self,
        resource_type: &'a str,
    ) -> impl Iterator<Item = &'a FhirContextItem> + 'a {
        self.fhir_context
            .iter()
            .filter(move |item| item.resource_type() == Some(resource_type))
    }
}

impl<'de> Deserialize<'de> for LaunchContext {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_object(deserializer, CONTEXT, Self::read)
    }
}

/// SMART's rule for extension context parameters: a full URI or a `__`-prefixed name.
fn is_context_extension(key: &str) -> bool {
    key.starts_with("__") || key.contains("://") || key.starts_with("urn:")
}

fn strip_type<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    Some(value.strip_prefix(prefix).unwrap_or(value)).filter(|id| !id.is_empty())
}
