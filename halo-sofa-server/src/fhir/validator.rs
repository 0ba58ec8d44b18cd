//! The resource validator seam (REQ SC-03, RS-07).

use halo_model::fhir::RawResource;
use halo_model::fhir::typed::{TypedError, TypedResource};
use halo_model::outcome::{Issue, IssueType};
use halo_model::set_context::SupportedTypes;

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
            return vec![
                Issue::error(
                    IssueType::NotSupported,
                    format!("resource type {resource_type} is not supported by this server"),
                )
                .at(resource_type),
            ];
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
}
