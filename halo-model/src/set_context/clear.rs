//! `$clear-context`: the input (`launchID`) and both output shapes of decision D-02 (a
//! Parameters of `outcome` parts on success, a bare OperationOutcome on error, which clients
//! also accept on success).

use serde_json::{Value, json};

use super::findings::{Findings, ValidationErrors};
use super::names::{LAUNCH_ID, OUTCOME};
use crate::outcome::{IssueType, OperationOutcome};

/// Builds the `$clear-context` input Parameters.
///
/// ```
/// use halo_model::set_context::{clear_context_input, parse_clear_context_input};
/// let body = clear_context_input("q1uXo3l2mJx0tYh3cJ5qk9n8bq0dVfZ5c3g4Zx1tPqE");
/// assert_eq!(parse_clear_context_input(&body).unwrap(), "q1uXo3l2mJx0tYh3cJ5qk9n8bq0dVfZ5c3g4Zx1tPqE");
/// ```
pub fn clear_context_input(launch_id: &str) -> Value {
    json!({
        "resourceType": "Parameters",
        "parameter": [{"name": LAUNCH_ID, "valueString": launch_id}],
    })
}

/// Whether `text` can be a launch id: 1 to 256 URL-unreserved characters (`A-Z a-z 0-9 - . _ ~`).
///
/// A launch id travels as the `launch` query parameter of the app's launch URL, so anything
/// outside the unreserved set is a sign of a template that was never filled in (`{{launch_id}}`)
/// or of a value that would be mangled on the way.
pub fn is_valid_launch_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 256
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~'))
}

/// Reads and validates a `$clear-context` input: exactly one `launchID` (`valueString`) and
/// nothing else. Gives the launch id.
pub fn parse_clear_context_input(body: &Value) -> Result<String, ValidationErrors> {
    let mut findings = Findings::default();
    if body.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        findings.error(
            IssueType::Structure,
            "Parameters",
            "the body must be a Parameters resource",
        );
        return Err(findings.into_errors());
    }
    let parameters = match body.get("parameter") {
        Some(Value::Array(items)) => items.as_slice(),
        None => &[],
        Some(_) => {
            findings.error(
                IssueType::Structure,
                "Parameters.parameter",
                "parameter must be an array",
            );
            return Err(findings.into_errors());
        }
    };
    let mut launch_id = None;
    for (index, parameter) in parameters.iter().enumerate() {
        let at = format!("Parameters.parameter[{index}]");
        match parameter.get("name").and_then(Value::as_str) {
            Some(LAUNCH_ID) if launch_id.is_some() => {
                findings.error(IssueType::Structure, at, "launchID may appear only once");
            }
            Some(LAUNCH_ID) => match parameter.get("valueString") {
                Some(Value::String(id)) if is_valid_launch_id(id) => launch_id = Some(id.clone()),
                Some(Value::String(id)) => {
                    launch_id = Some(String::new());
                    findings.error(
                        IssueType::Value,
                        format!("{at}.valueString"),
                        format!("'{id}' is not a launch id (expected URL-safe characters only)"),
                    );
                }
                _ => {
                    launch_id = Some(String::new());
                    findings.error(
                        IssueType::Required,
                        format!("{at}.valueString"),
                        "launchID takes a valueString",
                    );
                }
            },
            Some(other) => findings.error(
                IssueType::NotSupported,
                format!("{at}.name"),
                format!("unknown $clear-context parameter {other}"),
            ),
            None => findings.error(
                IssueType::Required,
                format!("{at}.name"),
                "the parameter has no name",
            ),
        }
    }
    match launch_id {
        Some(id) => findings.finish(id),
        None => {
            findings.error(
                IssueType::Required,
                "Parameters.parameter",
                "launchID is required",
            );
            Err(findings.into_errors())
        }
    }
}

/// Builds the `$clear-context` success answer: one `outcome` part per deleted group (D-02).
pub fn clear_context_output(outcomes: &[OperationOutcome]) -> Value {
    json!({
        "resourceType": "Parameters",
        "parameter": outcomes
            .iter()
            .map(|outcome| json!({"name": OUTCOME, "resource": outcome.to_json()}))
            .collect::<Vec<_>>(),
    })
}

/// Which of the two D-02 shapes a `$clear-context` answer had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClearContextShape {
    /// A Parameters with `outcome` parts.
    Parameters,
    /// A bare OperationOutcome.
    OperationOutcome,
}

/// A `$clear-context` answer, whichever shape it came in.
#[derive(Debug, Clone, PartialEq)]
pub struct ClearContextOutput {
    /// The shape it came in.
    pub shape: ClearContextShape,
    /// The outcomes, in order.
    pub outcomes: Vec<OperationOutcome>,
}

impl ClearContextOutput {
    /// Whether no outcome carries an error or fatal issue.
    pub fn succeeded(&self) -> bool {
        !self.outcomes.iter().any(OperationOutcome::has_errors)
    }

    /// Reads either shape.
    pub fn parse(body: &Value) -> Result<ClearContextOutput, ValidationErrors> {
        let mut findings = Findings::default();
        match body.get("resourceType").and_then(Value::as_str) {
            Some("OperationOutcome") => match OperationOutcome::from_json(body) {
                Ok(outcome) => Ok(ClearContextOutput {
                    shape: ClearContextShape::OperationOutcome,
                    outcomes: vec![outcome],
                }),
                Err(error) => {
                    findings.error(IssueType::Structure, "OperationOutcome", error.to_string());
                    Err(findings.into_errors())
                }
            },
            Some("Parameters") => {
                let parameters = body
                    .get("parameter")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                let mut outcomes = Vec::new();
                for (index, parameter) in parameters.iter().enumerate() {
                    let at = format!("Parameters.parameter[{index}]");
                    if parameter.get("name").and_then(Value::as_str) != Some(OUTCOME) {
                        continue;
                    }
                    match parameter.get("resource").map(OperationOutcome::from_json) {
                        Some(Ok(outcome)) => outcomes.push(outcome),
                        Some(Err(error)) => findings.error(
                            IssueType::Structure,
                            format!("{at}.resource"),
                            error.to_string(),
                        ),
                        None => findings.error(
                            IssueType::Required,
                            format!("{at}.resource"),
                            "outcome needs an OperationOutcome resource",
                        ),
                    }
                }
                if outcomes.is_empty() && findings.is_empty() {
                    findings.error(
                        IssueType::Required,
                        "Parameters.parameter",
                        "the answer has no outcome (1..*)",
                    );
                }
                findings.finish(ClearContextOutput {
                    shape: ClearContextShape::Parameters,
                    outcomes,
                })
            }
            other => {
                findings.error(
                    IssueType::Structure,
                    "resourceType",
                    format!(
                        "expected Parameters or OperationOutcome, found {}",
                        other.unwrap_or("no resourceType")
                    ),
                );
                Err(findings.into_errors())
            }
        }
    }
}
