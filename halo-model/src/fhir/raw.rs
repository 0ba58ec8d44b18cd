//! A FHIR resource kept as the JSON it came in.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::json::{JsonError, JsonLimits, json_kind, parse_json};

/// A FHIR resource as JSON, kept losslessly: key order, exact decimals (`1.50`) and every
/// element, known or not, survive a round trip. Only `resourceType` is checked on the way in.
///
/// ```
/// use halo_model::fhir::RawResource;
///
/// let bytes = br#"{"resourceType":"Observation","id":"o1","valueQuantity":{"value":1.50},"_x":{"extension":[]}}"#;
/// let resource = RawResource::from_slice(bytes).unwrap();
/// assert_eq!(resource.resource_type(), "Observation");
/// assert_eq!(resource.id(), Some("o1"));
/// assert_eq!(resource.to_vec(), bytes.to_vec());
/// ```
#[derive(Clone, PartialEq)]
pub struct RawResource {
    json: Map<String, Value>,
}

/// Why JSON is not a FHIR resource.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RawResourceError {
    /// The body was refused before it was parsed, or is not JSON.
    #[error(transparent)]
    Json(#[from] JsonError),
    /// The JSON is not an object.
    #[error("a FHIR resource is a JSON object, found {0}")]
    NotAnObject(&'static str),
    /// `resourceType` is missing or not a string.
    #[error("the resource has no `resourceType`")]
    MissingResourceType,
    /// `resourceType` is not a FHIR resource type name.
    #[error("`{0}` is not a FHIR resource type name")]
    InvalidResourceType(String),
}

impl RawResource {
    /// Checks that `json` is an object with a well-formed `resourceType`.
    pub fn from_value(json: Value) -> Result<RawResource, RawResourceError> {
        let Value::Object(object) = json else {
            return Err(RawResourceError::NotAnObject(json_kind(&json)));
        };
        RawResource::from_map(object)
    }

    /// Checks that `json` has a well-formed `resourceType`.
    pub fn from_map(json: Map<String, Value>) -> Result<RawResource, RawResourceError> {
        match json.get("resourceType") {
            Some(Value::String(name)) if is_valid_resource_type_name(name) => {
                Ok(RawResource { json })
            }
            Some(Value::String(name)) => Err(RawResourceError::InvalidResourceType(name.clone())),
            _ => Err(RawResourceError::MissingResourceType),
        }
    }

    /// Parses bytes with the default [`JsonLimits`].
    pub fn from_slice(bytes: &[u8]) -> Result<RawResource, RawResourceError> {
        RawResource::from_slice_with(bytes, JsonLimits::default())
    }

    /// Parses bytes with explicit limits.
    pub fn from_slice_with(
        bytes: &[u8],
        limits: JsonLimits,
    ) -> Result<RawResource, RawResourceError> {
        RawResource::from_value(parse_json(bytes, limits)?)
    }

    /// `resourceType`.
    pub fn resource_type(&self) -> &str {
        self.json
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// `id`, when present and a string.
    pub fn id(&self) -> Option<&str> {
        self.json.get("id").and_then(Value::as_str)
    }

    /// Sets `id`, keeping it right after `resourceType` as FHIR writers do.
    pub fn set_id(&mut self, id: impl Into<String>) {
        let id = Value::String(id.into());
        if let Some(slot) = self.json.get_mut("id") {
            *slot = id;
            return;
        }
        let mut json = Map::with_capacity(self.json.len() + 1);
        let mut rest = std::mem::take(&mut self.json).into_iter();
        if let Some((key, value)) = rest.next() {
            json.insert(key, value);
        }
        json.insert("id".into(), id);
        json.extend(rest);
        self.json = json;
    }

    /// `meta.profile`, the profiles the resource claims.
    pub fn meta_profiles(&self) -> Vec<&str> {
        self.json
            .get("meta")
            .and_then(|m| m.get("profile"))
            .and_then(Value::as_array)
            .map(|profiles| profiles.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    /// `Type/id`, when the resource has an id.
    pub fn reference(&self) -> Option<String> {
        self.id().map(|id| format!("{}/{id}", self.resource_type()))
    }

    /// The JSON object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.json
    }

    /// The JSON object, for changes (keep `resourceType`).
    pub fn as_map_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.json
    }

    /// An element by name.
    pub fn get(&self, element: &str) -> Option<&Value> {
        self.json.get(element)
    }

    /// The JSON object, owned.
    pub fn into_map(self) -> Map<String, Value> {
        self.json
    }

    /// The resource as a JSON value.
    pub fn to_value(&self) -> Value {
        Value::Object(self.json.clone())
    }

    /// The resource as a JSON value, owned.
    pub fn into_value(self) -> Value {
        Value::Object(self.json)
    }

    /// Compact JSON bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        // A map of JSON values with string keys always serialises.
        serde_json::to_vec(&self.json).unwrap_or_default()
    }
}

impl fmt::Debug for RawResource {
    // Resources hold health data: `Debug` names the resource, never its content, so a stray log
    // line cannot leak it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawResource")
            .field("resource_type", &self.resource_type())
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

impl Serialize for RawResource {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.json.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RawResource {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = Value::deserialize(deserializer)?;
        RawResource::from_value(json).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<Value> for RawResource {
    type Error = RawResourceError;

    fn try_from(value: Value) -> Result<Self, Self::Error> {
        RawResource::from_value(value)
    }
}

impl From<RawResource> for Value {
    fn from(resource: RawResource) -> Value {
        resource.into_value()
    }
}

/// Whether `name` has the shape of a FHIR resource type name (`[A-Z][A-Za-z]*`, at most 64
/// characters). It says nothing of whether the type exists.
pub fn is_valid_resource_type_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_alphabetic())
        && name.len() <= 64
}

/// Whether `id` is a valid FHIR `id` (`[A-Za-z0-9\-\.]{1,64}`).
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_everything_as_written() {
        let text = r#"{"resourceType":"Observation","status":"final","valueQuantity":{"value":1.50,"unit":"mmol/L"},"extension":[{"url":"http://example.org/x","valueDecimal":0.100}],"_status":{"id":"s"}}"#;
        let resource = RawResource::from_slice(text.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(resource.to_vec()).unwrap(), text);
    }

    #[test]
    fn set_id_goes_after_resource_type() {
        let mut r =
            RawResource::from_value(json!({"resourceType": "Patient", "active": true})).unwrap();
        r.set_id("p1");
        assert_eq!(
            String::from_utf8(r.to_vec()).unwrap(),
            r#"{"resourceType":"Patient","id":"p1","active":true}"#
        );
        r.set_id("p2");
        assert_eq!(r.reference().as_deref(), Some("Patient/p2"));
    }

    #[test]
    fn refuses_what_is_not_a_resource() {
        assert_eq!(
            RawResource::from_value(json!([1])),
            Err(RawResourceError::NotAnObject("an array"))
        );
        assert_eq!(
            RawResource::from_value(json!({"id": "x"})),
            Err(RawResourceError::MissingResourceType)
        );
        assert_eq!(
            RawResource::from_value(json!({"resourceType": "patient"})),
            Err(RawResourceError::InvalidResourceType("patient".into()))
        );
        assert!(matches!(
            RawResource::from_slice(b"{"),
            Err(RawResourceError::Json(JsonError::Syntax(_)))
        ));
    }

    #[test]
    fn debug_does_not_show_content() {
        let r = RawResource::from_value(
            json!({"resourceType": "Patient", "id": "p", "name": [{"family": "Secret"}]}),
        )
        .unwrap();
        let debug = format!("{r:?}");
        assert!(debug.contains("Patient"));
        assert!(!debug.contains("Secret"));
    }

    #[test]
    fn meta_profiles_and_ids() {
        let r = RawResource::from_value(json!({"resourceType": "Patient",
            "meta": {"profile": ["http://a", 3, "http://b"]}}))
        .unwrap();
        assert_eq!(r.meta_profiles(), vec!["http://a", "http://b"]);
        assert!(is_valid_id("a-b.C9"));
        assert!(!is_valid_id("a_b"));
        assert!(!is_valid_id(&"x".repeat(65)));
    }
}
