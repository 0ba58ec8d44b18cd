//! Validation findings: every problem of a request at once, each located by a FHIRPath-style
//! expression, ready to become one OperationOutcome (REQ SC-01).

use std::fmt;

use crate::outcome::{Issue, IssueType, OperationOutcome};

/// The problems that made a document invalid. Never empty when returned as an error.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationErrors {
    /// The issues, in document order.
    pub issues: Vec<Issue>,
}

impl ValidationErrors {
    /// The findings as one OperationOutcome (for a 400 answer).
    pub fn to_outcome(&self) -> OperationOutcome {
        self.issues.iter().cloned().collect()
    }

    /// Whether one finding sits at `expression` with `code`.
    pub fn has(&self, expression: &str, code: IssueType) -> bool {
        self.issues
            .iter()
            .any(|issue| issue.code == code && issue.expression.iter().any(|e| e == expression))
    }

    /// Every `(expression, code)` pair, for concise assertions and logs.
    pub fn locations(&self) -> Vec<(String, IssueType)> {
        self.issues
            .iter()
            .map(|issue| {
                (
                    issue.expression.first().cloned().unwrap_or_default(),
                    issue.code,
                )
            })
            .collect()
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} problem(s)", self.issues.len())?;
        for issue in &self.issues {
            write!(f, "; {issue}")?;
            if let Some(expression) = issue.expression.first() {
                write!(f, " at {expression}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

impl From<ValidationErrors> for OperationOutcome {
    fn from(errors: ValidationErrors) -> OperationOutcome {
        errors.to_outcome()
    }
}

/// Collects findings while a validator walks a document.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    issues: Vec<Issue>,
}

impl Findings {
    pub(crate) fn error(
        &mut self,
        code: IssueType,
        at: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.issues.push(Issue::error(code, message).at(at));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.issues.is_empty()
    }

    /// The findings so far, as an error (the caller found something it cannot go past).
    pub(crate) fn into_errors(self) -> ValidationErrors {
        ValidationErrors {
            issues: self.issues,
        }
    }

    /// `Ok(value)` when nothing was found, else every finding.
    pub(crate) fn finish<T>(self, value: T) -> Result<T, ValidationErrors> {
        if self.issues.is_empty() {
            Ok(value)
        } else {
            Err(ValidationErrors {
                issues: self.issues,
            })
        }
    }
}
