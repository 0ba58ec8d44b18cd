//! Reads a JSON object field by field, so every SMART document reports the exact field that is
//! wrong, accepts the lenient forms real servers send, and keeps whatever keys it does not know.
//!
//! The documents are read from a `serde_json::Value` rather than with derived `Deserialize`
//! because the workspace builds `serde_json` with `arbitrary_precision`, under which derived
//! structs with a `#[serde(flatten)]` map cannot read integer fields.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::context::FhirContextItem;
use super::error::{SmartDocumentError, describe};

/// A JSON object being taken apart; what is left at the end is the document's unknown keys.
pub(crate) struct Fields {
    document: &'static str,
    map: Map<String, Value>,
}

impl Fields {
    /// Parses `bytes` as a JSON object.
    pub(crate) fn parse(document: &'static str, bytes: &[u8]) -> Result<Self, SmartDocumentError> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|source| SmartDocumentError::InvalidJson { document, source })?;
        Self::from_value(document, value)
    }

    /// Takes an already parsed JSON value, which must be an object.
    pub(crate) fn from_value(
        document: &'static str,
        value: Value,
    ) -> Result<Self, SmartDocumentError> {
        match value {
            Value::Object(map) => Ok(Self { document, map }),
            other => Err(SmartDocumentError::NotAnObject {
                document,
                found: describe(&other),
            }),
        }
    }

    /// Wraps a JSON object.
    pub(crate) fn new(document: &'static str, map: Map<String, Value>) -> Self {
        Self { document, map }
    }

    /// The document name used in errors.
    pub(crate) fn document(&self) -> &'static str {
        self.document
    }

    /// An error for `field` holding `found` where `expected` was wanted.
    pub(crate) fn invalid(
        &self,
        field: impl Into<String>,
        expected: &'static str,
        found: &Value,
    ) -> SmartDocumentError {
        SmartDocumentError::InvalidField {
            document: self.document,
            field: field.into(),
            expected,
            found: describe(found).to_owned(),
        }
    }

    /// Removes `key`; `null` counts as absent.
    pub(crate) fn take(&mut self, key: &str) -> Option<Value> {
        // `shift_remove` keeps the order of the keys left over for `extra`.
        match self.map.shift_remove(key) {
            None | Some(Value::Null) => None,
            Some(value) => Some(value),
        }
    }

    /// An optional string.
    pub(crate) fn string(
        &mut self,
        key: &'static str,
    ) -> Result<Option<String>, SmartDocumentError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.invalid(key, "a string", &other)),
        }
    }

    /// A required string.
    pub(crate) fn required_string(
        &mut self,
        key: &'static str,
    ) -> Result<String, SmartDocumentError> {
        self.string(key)?.ok_or(SmartDocumentError::MissingField {
            document: self.document,
            field: key,
        })
    }

    /// An optional non-negative integer. A string of digits is accepted too, because some
    /// servers quote `expires_in`.
    pub(crate) fn u64(&mut self, key: &'static str) -> Result<Option<u64>, SmartDocumentError> {
        const EXPECTED: &str = "a non-negative integer";
        match self.take(key) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(v) => Ok(Some(v)),
                None => Err(self.invalid(key, EXPECTED, &Value::Number(n))),
            },
            Some(Value::String(s)) => match s.trim().parse::<u64>() {
                Ok(v) => Ok(Some(v)),
                Err(_) => Err(self.invalid(key, EXPECTED, &Value::String(s))),
            },
            Some(other) => Err(self.invalid(key, EXPECTED, &other)),
        }
    }

    /// An optional integer timestamp (seconds since the epoch).
    pub(crate) fn i64(&mut self, key: &'static str) -> Result<Option<i64>, SmartDocumentError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(v) => Ok(Some(v)),
                None => Err(self.invalid(key, "an integer", &Value::Number(n))),
            },
            Some(other) => Err(self.invalid(key, "an integer", &other)),
        }
    }

    /// An optional boolean. The strings `"true"` and `"false"` are accepted too, because
    /// deployed HALO authorization servers send `"need_patient_banner": "true"`.
    pub(crate) fn bool(&mut self, key: &'static str) -> Result<Option<bool>, SmartDocumentError> {
        const EXPECTED: &str = "a boolean";
        match self.take(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(other) => Err(self.invalid(key, EXPECTED, &other)),
        }
    }

    /// A required boolean (strict: no string form).
    pub(crate) fn required_strict_bool(
        &mut self,
        key: &'static str,
    ) -> Result<bool, SmartDocumentError> {
        match self.take(key) {
            None => Err(SmartDocumentError::MissingField {
                document: self.document,
                field: key,
            }),
            Some(Value::Bool(b)) => Ok(b),
            Some(other) => Err(self.invalid(key, "a boolean", &other)),
        }
    }

    /// An optional array of strings; absent reads as empty.
    pub(crate) fn string_array(
        &mut self,
        key: &'static str,
    ) -> Result<Vec<String>, SmartDocumentError> {
        match self.take(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .into_iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) => Ok(s),
                    other => Err(self.invalid(format!("{key}[{i}]"), "a string", &other)),
                })
                .collect(),
            Some(other) => Err(self.invalid(key, "an array of strings", &other)),
        }
    }

    /// An optional array of objects, each handed to `item` with its path; absent reads as empty.
    pub(crate) fn array_of<T>(
        &mut self,
        key: &'static str,
        mut item: impl FnMut(Value, &str) -> Result<T, SmartDocumentError>,
    ) -> Result<Vec<T>, SmartDocumentError> {
        match self.take(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .into_iter()
                .enumerate()
                .map(|(i, value)| item(value, &format!("{key}[{i}]")))
                .collect(),
            Some(other) => Err(self.invalid(key, "an array", &other)),
        }
    }

    /// The `fhirContext` array, in any of its published forms.
    pub(crate) fn fhir_context(
        &mut self,
        key: &'static str,
    ) -> Result<Vec<FhirContextItem>, SmartDocumentError> {
        let document = self.document;
        self.array_of(key, |value, path| {
            FhirContextItem::from_value_at(value, document, path)
        })
    }

    /// The keys nobody claimed, in the order they came.
    pub(crate) fn into_rest(self) -> Map<String, Value> {
        self.map
    }
}

/// Implements `Deserialize` for a document type through its field-by-field reader, so serde
/// users (e.g. an HTTP framework's JSON extractor) get the same leniency and messages.
pub(crate) fn deserialize_object<'de, D, T>(
    deserializer: D,
    document: &'static str,
    read: fn(Fields) -> Result<T, SmartDocumentError>,
) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let map = Map::<String, Value>::deserialize(deserializer)?;
    read(Fields::new(document, map)).map_err(serde::de::Error::custom)
}
