//! The resource validator seam (REQ SC-03, RS-07).

use halo_model::fhir::RawResource;
use halo_model::fhir::typed::{TypedError, TypedResource};
use halo_model::outcome::{Issue, IssueType};
use halo_model::set_context::SupportedTypes;
use halo_validation::{Validator, ValidatorOptions};

/// Validates one resource before it is stored: FHIR R4 structure and the CA Core+ rules it
/// knows. A StructureDefinition-driven validator plugs in here.
///
/// Issues carry FHIRPath expressions rooted at the resource type (`Patient.gender`); the caller
/// re-roots them where the resource sits in the request. Any `error` or `fatal` issue refuses
/// the resource; a validator reports profile and business-rule failures as `invariant`,
/// `business-rule` or `code-invalid` (422) and structural ones as anything else (400).
///
/// Validation is CPU work with no I/O: it is called synchronously.
pub trait ResourceValidator: Send + Sync + 'static {
    /// The problems found; empty when the resource is valid.
    fn validate(&self, resource: &RawResource) -> Vec<Issue>;
}

/// The default validator until a profile validator is plugged in: the type must be supported
/// (D-14) and the JSON must read as its R4 type through `halo-model` (element names, value
/// types, primitive formats, cardinality of repeating elements).
#[derive(Debug, Clone, Default)]
pub struct BasicValidator {
    supported: SupportedTypes,
}

impl BasicValidator {
    /// A validator accepting the given types.
    pub fn new(supported: SupportedTypes) -> BasicValidator {
        BasicValidator { supported }
    }
}

impl ResourceValidator for BasicValidator {
    fn validate(&self, resource: &RawResource) -> Vec<Issue> {
        let resource_type = resource.resource_type();
        if !self.supported.contains(resource_type) {
            return vec![unsupported(resource_type)];
        }
        match TypedResource::from_raw(resource) {
            Ok(_) => Vec::new(),
            // A host-added type without a typed view: nothing structural can be checked here.
            Err(TypedError::Unsupported(_)) => Vec::new(),
            Err(TypedError::Invalid { reason, .. }) => vec![
                Issue::error(
                    IssueType::Structure,
                    format!("the {resource_type} is not valid FHIR R4: {reason}"),
                )
                .at(resource_type),
            ],
        }
    }
}

/// The default validator of a SoFA: the type must be supported (D-14), then the resource is
/// checked against the FHIR R4 definitions and the jurisdiction's profiles by
/// [`halo_validation::Validator`] (CA Baseline, the stand-in for CA Core+, unless the host loads
/// other definitions). HALO: a resource of a profiled type SHALL conform to its profile.
///
/// Only `error` and `fatal` issues refuse a resource; warnings and information travel with the
/// answer.
#[derive(Debug, Clone)]
pub struct ProfileValidator {
    supported: SupportedTypes,
    validator: Validator,
}

impl ProfileValidator {
    /// A validator over the definitions embedded in `halo-validation`, with CA Baseline as the
    /// jurisdiction's profiles. The narrative hint `dom-6` is off: PoCs send structured data
    /// without narrative as a rule, and a warning on every resource would bury real findings.
    pub fn new(supported: SupportedTypes) -> ProfileValidator {
        let validator = Validator::with_embedded_definitions()
            .with_options(ValidatorOptions::ca_baseline().without_rule("dom-6"));
        ProfileValidator::with_validator(supported, validator)
    }

    /// A validator over definitions the host loaded (for example the official CA Core+ package
    /// with [`Validator::from_directory`]).
    pub fn with_validator(supported: SupportedTypes, validator: Validator) -> ProfileValidator {
        ProfileValidator {
            supported,
            validator,
        }
    }
}

impl ResourceValidator for ProfileValidator {
    fn validate(&self, resource: &RawResource) -> Vec<Issue> {
        let resource_type = resource.resource_type();
        if !self.supported.contains(resource_type) {
            return vec![unsupported(resource_type)];
        }
        self.validator.validate(resource).issues
    }
}

fn unsupported(resource_type: &str) -> Issue {
    Issue::error(
        IssueType::NotSupported,
        format!("resource type {resource_type} is not supported by this server"),
    )
    .at(resource_type)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(value: serde_json::Value) -> RawResource {
        RawResource::from_value(value).unwrap()
    }

    // REQ: SC-03
    #[test]
    fn unsupported_types_and_malformed_resources_are_refused() {
        let validator = BasicValidator::default();
        assert!(
            validator
                .validate(&raw(json!({"resourceType": "Patient", "gender": "female"})))
                .is_empty()
        );
        let claim = validator.validate(&raw(json!({"resourceType": "Claim"})));
        assert_eq!(claim[0].code, IssueType::NotSupported);
        let bad = validator.validate(&raw(json!({"resourceType": "Patient", "active": "yes"})));
        assert_eq!(bad[0].code, IssueType::Structure);
        assert_eq!(bad[0].expression, ["Patient"]);
    }

    // REQ: SC-03, RS-07
    #[test]
    fn the_profile_validator_applies_r4_and_the_jurisdiction_profiles() {
        let validator = ProfileValidator::new(SupportedTypes::default());
        let valid = validator.validate(&raw(json!({
            "resourceType": "Patient",
            "gender": "female",
            "birthDate": "1970-02-03"
        })));
        assert!(!valid.iter().any(|i| i.severity.is_failure()), "{valid:?}");
        // A misspelt element, a code outside a required binding and a malformed date: the
        // basic validator cannot see the first two, the profile validator reports all three.
        let issues = validator.validate(&raw(json!({
            "resourceType": "Patient",
            "gendre": "female",
            "gender": "woman",
            "birthDate": "1970-13-45"
        })));
        let errors: Vec<_> = issues.iter().filter(|i| i.severity.is_failure()).collect();
        for path in ["Patient.gendre", "Patient.gender", "Patient.birthDate"] {
            assert!(
                errors
                    .iter()
                    .any(|i| i.expression.iter().any(|e| e == path)),
                "no error at {path}: {errors:?}"
            );
        }
        let claim = validator.validate(&raw(json!({"resourceType": "Claim"})));
        assert_eq!(claim[0].code, IssueType::NotSupported);
    }
}
