//! The result of validating one resource.

use halo_model::outcome::{Issue, OperationOutcome, Severity};

/// Names of the rules the validator applies, for [`ValidatorOptions::with_severity`]
/// (invariants are named by their key, e.g. `pat-1`).
///
/// [`ValidatorOptions::with_severity`]: crate::ValidatorOptions::with_severity
pub mod rules {
    /// A value of the wrong JSON kind (an object expected, `null`, an empty array...).
    pub const STRUCTURE: &str = "structure";
    /// An element the definition does not have (including a misspelt choice suffix).
    pub const UNKNOWN_ELEMENT: &str = "unknown-element";
    /// Fewer items than `min`.
    pub const CARDINALITY_MIN: &str = "cardinality-min";
    /// More items than `max`.
    pub const CARDINALITY_MAX: &str = "cardinality-max";
    /// A primitive value of the wrong JSON type or format.
    pub const DATATYPE: &str = "datatype";
    /// A string longer than `maxLength`.
    pub const MAX_LENGTH: &str = "max-length";
    /// A Reference to a resource type the element does not allow.
    pub const REFERENCE_TARGET: &str = "reference-target";
    /// A code outside a required binding.
    pub const BINDING_REQUIRED: &str = "binding-required";
    /// A code outside an extensible binding (a warning).
    pub const BINDING_EXTENSIBLE: &str = "binding-extensible";
    /// A value different from `fixed[x]`.
    pub const FIXED: &str = "fixed";
    /// A value that does not contain `pattern[x]`.
    pub const PATTERN: &str = "pattern";
    /// An item that matches no slice of a closed slicing.
    pub const SLICE_CLOSED: &str = "slice-closed";
    /// A profile named in `meta.profile` that is not among the definitions.
    pub const PROFILE_UNKNOWN: &str = "profile-unknown";
    /// A resource type without a definition: its structure is not checked.
    pub const NO_DEFINITION: &str = "no-definition";
    /// An invariant whose expression is outside the supported FHIRPath subset.
    pub const NOT_EVALUATED: &str = "invariant-not-evaluated";
    /// A transaction or batch entry whose `request.url` names another resource type.
    pub const BUNDLE_REQUEST_URL: &str = "bundle-request-url";
    /// A slice names an extension definition that is not among the definitions.
    pub const EXTENSION_UNKNOWN: &str = "extension-definition-unknown";
}

/// An invariant that could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotEvaluated {
    /// The invariant key.
    pub key: String,
    /// Where it applied.
    pub expression: String,
    /// Why it could not be evaluated.
    pub reason: String,
}

/// Everything found in one resource, in document order.
///
/// ```
/// use halo_model::fhir::RawResource;
/// use halo_validation::Validator;
///
/// let validator = Validator::with_embedded_definitions();
/// let patient = RawResource::from_slice(br#"{"resourceType":"Patient","gender":"woman"}"#).unwrap();
/// let report = validator.validate(&patient);
/// assert!(report.has_errors());
/// let prefixed = report.with_prefix("Parameters.parameter[9].resource.entry[2].resource");
/// assert_eq!(
///     prefixed.issues[0].expression[0],
///     "Parameters.parameter[9].resource.entry[2].resource.gender"
/// );
/// assert_eq!(prefixed.to_outcome().issues.len(), prefixed.issues.len());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ValidationReport {
    /// Every finding: errors, warnings and information.
    pub issues: Vec<Issue>,
    /// Invariants that applied but could not be evaluated (each also appears in `issues` as
    /// information).
    pub not_evaluated: Vec<NotEvaluated>,
    /// How many invariant evaluations ran to a result.
    pub invariants_evaluated: usize,
}

impl ValidationReport {
    /// Whether any finding is an error (or fatal): the resource must be rejected.
    pub fn has_errors(&self) -> bool {
        self.issues.iter().any(|i| i.severity.is_failure())
    }

    /// The findings of one severity.
    pub fn issues_of(&self, severity: Severity) -> impl Iterator<Item = &Issue> {
        self.issues.iter().filter(move |i| i.severity == severity)
    }

    /// The errors.
    pub fn errors(&self) -> impl Iterator<Item = &Issue> {
        self.issues.iter().filter(|i| i.severity.is_failure())
    }

    /// The report as an OperationOutcome (an `information` "no issues" when empty, as FHIR
    /// requires at least one issue).
    pub fn to_outcome(&self) -> OperationOutcome {
        if self.issues.is_empty() {
            return OperationOutcome::information("the resource is valid");
        }
        let mut outcome = OperationOutcome::new();
        for issue in &self.issues {
            outcome.push(issue.clone());
        }
        outcome
    }

    /// The same findings located inside an enclosing document: the resource type that starts each
    /// expression is replaced by `prefix` (`Patient.name[0]` with prefix
    /// `Bundle.entry[2].resource` becomes `Bundle.entry[2].resource.name[0]`).
    pub fn with_prefix(mut self, prefix: &str) -> ValidationReport {
        let prefix = prefix.trim_end_matches('.');
        let relocate = |expression: &str| match expression.split_once('.') {
            Some((_, rest)) => format!("{prefix}.{rest}"),
            None => prefix.to_owned(),
        };
        for issue in &mut self.issues {
            for expression in &mut issue.expression {
                *expression = relocate(expression);
            }
        }
        for item in &mut self.not_evaluated {
            item.expression = relocate(&item.expression);
        }
        self
    }

    /// Adds the findings of another report (e.g. one entry of a Bundle validated on its own).
    pub fn merge(&mut self, other: ValidationReport) {
        self.issues.extend(other.issues);
        self.not_evaluated.extend(other.not_evaluated);
        self.invariants_evaluated += other.invariants_evaluated;
    }
}
