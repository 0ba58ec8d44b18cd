//! FHIR OperationOutcome: builder and reader.
//!
//! Every FHIR endpoint of the SDK reports problems as an OperationOutcome, and every client reads
//! them back. This module holds the one typed view both sides share. It keeps only what HALO uses
//! (severity, code, details text, diagnostics, expression); elements it does not model are kept in
//! [`Issue::extra`] and [`OperationOutcome::extra`] so an outcome read from a server can be echoed
//! without loss.
//!
//! ```
//! use halo_model::outcome::{IssueType, OperationOutcome, Severity};
//!
//! let outcome = OperationOutcome::error(IssueType::Required, "appID is missing")
//!     .with_expression("Parameters.parameter[0]");
//! let json = outcome.to_json();
//! assert_eq!(json["issue"][0]["severity"], "error");
//! assert_eq!(json["issue"][0]["expression"][0], "Parameters.parameter[0]");
//!
//! let read = OperationOutcome::from_json(&json).unwrap();
//! assert!(read.has_errors());
//! assert_eq!(read.issues[0].severity, Severity::Error);
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::fhir::json_kind;

/// The `resourceType` of an OperationOutcome.
pub const RESOURCE_TYPE: &str = "OperationOutcome";

/// `OperationOutcome.issue.severity` (FHIR value set `issue-severity`, required binding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The issue caused the action to fail and no further checking could be performed.
    Fatal,
    /// The issue is sufficiently important to cause the action to fail.
    Error,
    /// The issue is not important enough to cause the action to fail.
    Warning,
    /// The issue has no relation to the degree of success of the action.
    Information,
}

impl Severity {
    /// The FHIR code.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Fatal => "fatal",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Information => "information",
        }
    }

    /// Whether this severity makes the action fail (`fatal` or `error`).
    pub fn is_failure(self) -> bool {
        matches!(self, Severity::Fatal | Severity::Error)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! issue_types {
    ($($variant:ident => $code:literal, $doc:literal;)*) => {
        /// `OperationOutcome.issue.code` (FHIR value set `issue-type`, required binding).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum IssueType {
            $(#[doc = $doc] $variant,)*
        }

        impl IssueType {
            /// Every issue type, in the order of the FHIR value set.
            pub const ALL: &'static [IssueType] = &[$(IssueType::$variant,)*];

            /// The FHIR code.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(IssueType::$variant => $code,)*
                }
            }

            /// Reads a FHIR code; `None` when it is not in the value set.
            pub fn from_code(code: &str) -> Option<IssueType> {
                match code {
                    $($code => Some(IssueType::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

issue_types! {
    Invalid => "invalid", "Content invalid against the specification or a profile.";
    Structure => "structure", "A structural issue in the content, such as wrong namespace or unparseable content.";
    Required => "required", "A required element is missing.";
    Value => "value", "An element or header value is invalid.";
    Invariant => "invariant", "A content validation rule failed.";
    Security => "security", "An authentication/authorization/permissions issue of some kind.";
    Login => "login", "The client needs to initiate an authentication process.";
    Unknown => "unknown", "The user or system was not able to be authenticated.";
    Expired => "expired", "User session expired; a login may be required.";
    Forbidden => "forbidden", "The user does not have the rights to perform this action.";
    Suppressed => "suppressed", "Some information was not or might not have been returned due to business rules.";
    Processing => "processing", "Processing issues.";
    NotSupported => "not-supported", "The interaction, operation, resource or profile is not supported.";
    Duplicate => "duplicate", "An attempt was made to create a duplicate record.";
    MultipleMatches => "multiple-matches", "Multiple matching records were found when the operation required only one match.";
    NotFound => "not-found", "The reference provided was not found.";
    Deleted => "deleted", "The reference pointed at content that has been deleted.";
    TooLong => "too-long", "Provided content is too long.";
    CodeInvalid => "code-invalid", "The code or system could not be understood, or it was not valid in the value set.";
    Extension => "extension", "An extension was unrecognized or could not be supported.";
    TooCostly => "too-costly", "The operation was stopped to protect server resources.";
    BusinessRule => "business-rule", "The content/operation failed to pass a business rule.";
    Conflict => "conflict", "Content could not be accepted because of an edit conflict.";
    Transient => "transient", "Transient processing issues; the system may retry later.";
    LockError => "lock-error", "A resource/record locking failure.";
    NoStore => "no-store", "The persistent store is unavailable.";
    Exception => "exception", "An unexpected internal error has occurred.";
    Timeout => "timeout", "An internal timeout has occurred.";
    Incomplete => "incomplete", "Not all data sources typically accessed could be reached or responded in time.";
    Throttled => "throttled", "The system is not prepared to handle this request due to load management.";
    Informational => "informational", "A message unrelated to the processing success of the completed operation.";
}

impl fmt::Display for IssueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for IssueType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for IssueType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        IssueType::from_code(&code)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown issue type code `{code}`")))
    }
}

/// One `OperationOutcome.issue`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Issue {
    /// How bad the issue is.
    pub severity: Severity,
    /// What kind of issue it is.
    pub code: IssueType,
    /// `details.text`: the message meant for a person.
    #[serde(
        rename = "details",
        default,
        skip_serializing_if = "Option::is_none",
        with = "details_text"
    )]
    pub details: Option<String>,
    /// Additional diagnostic information, for developers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<String>,
    /// FHIRPath expressions locating the problem (for example
    /// `Parameters.parameter[3].resource.entry[1].fullUrl`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expression: Vec<String>,
    /// Elements of the issue this type does not model (`location`, extensions...), kept as read.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Issue {
    /// A new issue with a diagnostics message.
    pub fn new(severity: Severity, code: IssueType, diagnostics: impl Into<String>) -> Issue {
        Issue {
            severity,
            code,
            details: None,
            diagnostics: Some(diagnostics.into()),
            expression: Vec::new(),
            extra: Map::new(),
        }
    }

    /// An `error` issue.
    pub fn error(code: IssueType, diagnostics: impl Into<String>) -> Issue {
        Issue::new(Severity::Error, code, diagnostics)
    }

    /// A `warning` issue.
    pub fn warning(code: IssueType, diagnostics: impl Into<String>) -> Issue {
        Issue::new(Severity::Warning, code, diagnostics)
    }

    /// An `information` issue.
    pub fn information(code: IssueType, diagnostics: impl Into<String>) -> Issue {
        Issue::new(Severity::Information, code, diagnostics)
    }

    /// Adds a FHIRPath expression locating the issue.
    pub fn at(mut self, expression: impl Into<String>) -> Issue {
        self.expression.push(expression.into());
        self
    }

    /// Sets `details.text`, the message meant for a person.
    pub fn with_details(mut self, text: impl Into<String>) -> Issue {
        self.details = Some(text.into());
        self
    }

    /// The best message this issue carries: `details.text`, else `diagnostics`, else its code.
    pub fn message(&self) -> &str {
        self.details
            .as_deref()
            .or(self.diagnostics.as_deref())
            .unwrap_or(self.code.as_str())
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.severity, self.code, self.message())?;
        if !self.expression.is_empty() {
            write!(f, " at {}", self.expression.join(", "))?;
        }
        Ok(())
    }
}

/// `details` is a CodeableConcept; HALO only uses its `text`, the rest is not modelled.
mod details_text {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Concept {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    }

    pub(super) fn serialize<S: Serializer>(
        text: &Option<String>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        Concept { text: text.clone() }.serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<String>, D::Error> {
        Ok(Option::<Concept>::deserialize(deserializer)?.and_then(|c| c.text))
    }
}

/// A FHIR OperationOutcome.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OperationOutcome {
    /// `id`, when the outcome has one.
    pub id: Option<String>,
    /// The issues, in order.
    pub issues: Vec<Issue>,
    /// Elements this type does not model (`meta`, `text`, extensions...), kept as read.
    pub extra: Map<String, Value>,
}

/// Why a JSON value could not be read as an OperationOutcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutcomeError {
    /// The JSON is not an object whose `resourceType` is `OperationOutcome`.
    #[error("expected an OperationOutcome, found {found}")]
    NotAnOutcome {
        /// What was found instead (a resource type or a JSON kind).
        found: String,
    },
    /// An issue does not have the shape FHIR requires.
    #[error("OperationOutcome.issue[{index}] is invalid: {reason}")]
    InvalidIssue {
        /// The position of the issue.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
}

impl OperationOutcome {
    /// An empty outcome.
    pub fn new() -> OperationOutcome {
        OperationOutcome::default()
    }

    /// An outcome with one issue.
    pub fn from_issue(issue: Issue) -> OperationOutcome {
        OperationOutcome {
            issues: vec![issue],
            ..OperationOutcome::default()
        }
    }

    /// An outcome with one `error` issue.
    pub fn error(code: IssueType, diagnostics: impl Into<String>) -> OperationOutcome {
        OperationOutcome::from_issue(Issue::error(code, diagnostics))
    }

    /// An outcome with one `information` issue (for example a successful `$clear-context`).
    pub fn information(diagnostics: impl Into<String>) -> OperationOutcome {
        OperationOutcome::from_issue(Issue::information(IssueType::Informational, diagnostics))
    }

    /// Adds an issue.
    pub fn with_issue(mut self, issue: Issue) -> OperationOutcome {
        self.issues.push(issue);
        self
    }

    /// Adds an issue in place.
    pub fn push(&mut self, issue: Issue) {
        self.issues.push(issue);
    }

    /// Adds a FHIRPath expression to the last issue (a builder shortcut for one-issue outcomes).
    pub fn with_expression(mut self, expression: impl Into<String>) -> OperationOutcome {
        if let Some(last) = self.issues.last_mut() {
            last.expression.push(expression.into());
        }
        self
    }

    /// Whether any issue is `fatal` or `error`.
    pub fn has_errors(&self) -> bool {
        self.issues.iter().any(|i| i.severity.is_failure())
    }

    /// The issues of a given severity.
    pub fn issues_of(&self, severity: Severity) -> impl Iterator<Item = &Issue> {
        self.issues.iter().filter(move |i| i.severity == severity)
    }

    /// The FHIR JSON of this outcome. An outcome with no issue gets one `information` issue,
    /// because FHIR requires at least one.
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        object.insert("resourceType".into(), Value::from(RESOURCE_TYPE));
        if let Some(id) = &self.id {
            object.insert("id".into(), Value::from(id.as_str()));
        }
        for (key, value) in &self.extra {
            if key != "resourceType" && key != "id" && key != "issue" {
                object.insert(key.clone(), value.clone());
            }
        }
        let issues: Vec<Value> = if self.issues.is_empty() {
            vec![issue_to_json(&Issue::information(
                IssueType::Informational,
                "no issues",
            ))]
        } else {
            self.issues.iter().map(issue_to_json).collect()
        };
        object.insert("issue".into(), Value::Array(issues));
        Value::Object(object)
    }

    /// Serialises to FHIR JSON bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        // Serialising a `Value` cannot fail: its keys are strings.
        serde_json::to_vec(&self.to_json()).unwrap_or_default()
    }

    /// Reads an OperationOutcome from FHIR JSON.
    pub fn from_json(json: &Value) -> Result<OperationOutcome, OutcomeError> {
        let object = json.as_object().ok_or_else(|| OutcomeError::NotAnOutcome {
            found: json_kind(json).into(),
        })?;
        match object.get("resourceType").and_then(Value::as_str) {
            Some(RESOURCE_TYPE) => {}
            Some(other) => {
                return Err(OutcomeError::NotAnOutcome {
                    found: other.to_string(),
                });
            }
            None => {
                return Err(OutcomeError::NotAnOutcome {
                    found: "an object without resourceType".into(),
                });
            }
        }
        let issues = match object.get("issue") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(index, item)| {
                    Issue::deserialize(item).map_err(|e| OutcomeError::InvalidIssue {
                        index,
                        reason: e.to_string(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(other) => {
                return Err(OutcomeError::InvalidIssue {
                    index: 0,
                    reason: format!("`issue` must be an array, found {}", json_kind(other)),
                });
            }
        };
        let extra = object
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "resourceType" | "id" | "issue"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(OperationOutcome {
            id: object.get("id").and_then(Value::as_str).map(str::to_owned),
            issues,
            extra,
        })
    }

    /// Reads an OperationOutcome from FHIR JSON bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<OperationOutcome, OutcomeError> {
        let json: Value =
            serde_json::from_slice(bytes).map_err(|e| OutcomeError::NotAnOutcome {
                found: format!("invalid JSON ({e})"),
            })?;
        OperationOutcome::from_json(&json)
    }
}

impl fmt::Display for OperationOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, issue) in self.issues.iter().enumerate() {
            if n > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

impl FromIterator<Issue> for OperationOutcome {
    fn from_iter<I: IntoIterator<Item = Issue>>(iter: I) -> Self {
        OperationOutcome {
            issues: iter.into_iter().collect(),
            ..OperationOutcome::default()
        }
    }
}

impl Serialize for OperationOutcome {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for OperationOutcome {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        OperationOutcome::from_json(&value).map_err(serde::de::Error::custom)
    }
}

fn issue_to_json(issue: &Issue) -> Value {
    // An `Issue` holds only strings, enums and JSON values, so it always serialises.
    serde_json::to_value(issue).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // REQ: CTX-05
    #[test]
    fn builds_fhir_json_with_every_field() {
        let outcome = OperationOutcome::new()
            .with_issue(
                Issue::error(IssueType::Required, "fullUrl is missing")
                    .at("Parameters.parameter[3].resource.entry[1].fullUrl")
                    .with_details("Every entry needs a fullUrl"),
            )
            .with_issue(Issue::warning(IssueType::Value, "odd"));
        assert_eq!(
            outcome.to_json(),
            json!({
                "resourceType": "OperationOutcome",
                "issue": [
                    {
                        "severity": "error",
                        "code": "required",
                        "details": {"text": "Every entry needs a fullUrl"},
                        "diagnostics": "fullUrl is missing",
                        "expression": ["Parameters.parameter[3].resource.entry[1].fullUrl"]
                    },
                    {"severity": "warning", "code": "value", "diagnostics": "odd"}
                ]
            })
        );
        assert!(outcome.has_errors());
        assert_eq!(outcome.issues_of(Severity::Warning).count(), 1);
    }

    // REQ: CTX-05
    #[test]
    fn empty_outcome_still_has_one_issue() {
        let json = OperationOutcome::new().to_json();
        assert_eq!(json["issue"].as_array().map(Vec::len), Some(1));
        assert_eq!(json["issue"][0]["severity"], "information");
    }

    // REQ: CTX-05
    #[test]
    fn reads_a_server_outcome_and_keeps_unknown_elements() {
        let input = json!({
            "resourceType": "OperationOutcome",
            "id": "oo1",
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},
            "issue": [{
                "severity": "fatal",
                "code": "not-found",
                "details": {"coding": [{"code": "MSG_NO_EXIST"}], "text": "Launch not found"},
                "location": ["/f:launchID"],
                "expression": ["Parameters.parameter[0]"]
            }]
        });
        let outcome = OperationOutcome::from_json(&input).unwrap();
        assert_eq!(outcome.id.as_deref(), Some("oo1"));
        assert_eq!(outcome.issues[0].severity, Severity::Fatal);
        assert_eq!(outcome.issues[0].code, IssueType::NotFound);
        assert_eq!(outcome.issues[0].message(), "Launch not found");
        assert_eq!(outcome.issues[0].extra["location"], json!(["/f:launchID"]));
        let out = outcome.to_json();
        assert_eq!(out["text"], input["text"]);
        assert_eq!(out["issue"][0]["location"], input["issue"][0]["location"]);
        assert!(outcome.has_errors());
        assert!(outcome.to_string().contains("Launch not found"));
    }

    // REQ: CTX-05
    #[test]
    fn rejects_what_is_not_an_outcome() {
        assert!(matches!(
            OperationOutcome::from_json(&json!({"resourceType": "Patient"})),
            Err(OutcomeError::NotAnOutcome { found }) if found == "Patient"
        ));
        assert!(OperationOutcome::from_json(&json!([1, 2])).is_err());
        assert!(OperationOutcome::from_slice(b"<html>").is_err());
        let bad_code = json!({"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "nonsense"}]});
        assert!(matches!(
            OperationOutcome::from_json(&bad_code),
            Err(OutcomeError::InvalidIssue { index: 0, .. })
        ));
        let bad_severity = json!({"resourceType": "OperationOutcome",
            "issue": [{"severity": "minor", "code": "value"}]});
        assert!(OperationOutcome::from_json(&bad_severity).is_err());
    }

    // REQ: CTX-05
    #[test]
    fn every_issue_type_code_round_trips() {
        for code in IssueType::ALL {
            assert_eq!(IssueType::from_code(code.as_str()), Some(*code));
        }
        assert_eq!(IssueType::ALL.len(), 31);
    }
}
