//! Which resource types a `$set-context` request may carry (decision D-14), and the FHIR R4
//! resource type names used to tell a real type from a typo such as `PracitionerRole`.

use std::collections::BTreeSet;

/// Whether `name` is a resource type of FHIR R4 4.0.1; the table lives in [`crate::fhir`].
pub use crate::fhir::is_r4_resource_type;

/// Decision D-14: the resource types `$set-context` accepts by default.
pub const D14_SUPPORTED_TYPES: &[&str] = &[
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Location",
    "Encounter",
    "Observation",
    "Condition",
    "AllergyIntolerance",
    "MedicationRequest",
    "MedicationStatement",
    "Immunization",
    "Procedure",
    "DiagnosticReport",
    "DocumentReference",
    "RelatedPerson",
    "QuestionnaireResponse",
    "ServiceRequest",
    "CarePlan",
];

/// The resource types a SoFA accepts in the `resources` Bundle (and, later, from app writes).
///
/// The default is the D-14 list; a host that supports more or fewer types builds its own.
///
/// ```
/// use halo_model::set_context::SupportedTypes;
/// let default = SupportedTypes::default();
/// assert!(default.contains("Encounter"));
/// assert!(!default.contains("Claim"));
/// let narrow: SupportedTypes = ["Patient", "Encounter"].into_iter().collect();
/// assert!(!narrow.contains("Observation"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportedTypes {
    types: BTreeSet<String>,
}

impl SupportedTypes {
    /// The D-14 list.
    pub fn d14() -> SupportedTypes {
        D14_SUPPORTED_TYPES.iter().copied().collect()
    }

    /// Whether `resource_type` is accepted.
    pub fn contains(&self, resource_type: &str) -> bool {
        self.types.contains(resource_type)
    }

    /// The accepted types, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.types.iter().map(String::as_str)
    }

    /// Adds a type.
    pub fn insert(&mut self, resource_type: impl Into<String>) {
        self.types.insert(resource_type.into());
    }

    /// Removes a type.
    pub fn remove(&mut self, resource_type: &str) {
        self.types.remove(resource_type);
    }
}

impl Default for SupportedTypes {
    fn default() -> SupportedTypes {
        SupportedTypes::d14()
    }
}

impl<S: Into<String>> FromIterator<S> for SupportedTypes {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> SupportedTypes {
        SupportedTypes {
            types: iter.into_iter().map(Into::into).collect(),
        }
    }
}

/// What a `$set-context` validation accepts beyond the profiles' fixed rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationOptions {
    /// The resource types allowed in the `resources` Bundle (D-14 by default).
    pub supported_types: SupportedTypes,
}

impl ValidationOptions {
    /// Options with a given list of supported types.
    pub fn with_supported_types(supported_types: SupportedTypes) -> ValidationOptions {
        ValidationOptions { supported_types }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_d14_type_is_an_r4_type() {
        for name in D14_SUPPORTED_TYPES {
            assert!(is_r4_resource_type(name), "{name}");
        }
        assert_eq!(SupportedTypes::d14().iter().count(), 19);
    }
}
