//! The one error type every SMART document parser returns.

use serde_json::Value;

/// Why a SMART document (or an OAuth error body) could not be read.
///
/// Each variant names the document and, where it applies, the field, so the message can be shown
/// to a developer as is. The messages never contain field values: a mistyped field may hold a
/// token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SmartDocumentError {
    /// The bytes are not JSON at all.
    #[error("the {document} is not valid JSON: {source}")]
    InvalidJson {
        /// Which document was being read, e.g. `token response`.
        document: &'static str,
        /// What the JSON parser reported (line and column included).
        #[source]
        source: serde_json::Error,
    },
    /// The JSON is valid but is not an object.
    #[error("the {document} must be a JSON object, but it is {found}")]
    NotAnObject {
        /// Which document was being read.
        document: &'static str,
        /// The JSON type found instead, e.g. `an array`.
        found: &'static str,
    },
    /// A field the specification requires is absent (or `null`).
    #[error("the {document} has no `{field}`, which is required")]
    MissingField {
        /// Which document was being read.
        document: &'static str,
        /// The missing field's JSON name.
        field: &'static str,
    },
    /// A field is present but has the wrong shape.
    #[error("`{field}` in the {document} must be {expected}, but it is {found}")]
    InvalidField {
        /// Which document was being read.
        document: &'static str,
        /// The field's JSON name or path, e.g. `fhirContext[1].reference`.
        field: String,
        /// What the field should be, e.g. `a non-negative integer`.
        expected: &'static str,
        /// What was found, described by JSON type only.
        found: String,
    },
}

impl SmartDocumentError {
    /// A stable machine-readable code for this error, for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidJson { .. } => "smart.invalid-json",
            Self::NotAnObject { .. } => "smart.not-an-object",
            Self::MissingField { .. } => "smart.missing-field",
            Self::InvalidField { .. } => "smart.invalid-field",
        }
    }
}

/// Describes a JSON value by its type only, for error messages that must not echo secrets.
pub(crate) fn describe(value: &Value) -> &'static str {
    match value {
        Value::String(s) if s.is_empty() => "an empty string",
        other => crate::fhir::json_kind(other),
    }
}
