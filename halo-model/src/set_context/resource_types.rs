//! Which resource types a `$set-context` request may carry (decision D-14), and the FHIR R4
//! resource type names used to tell a real type from a typo such as `PracitionerRole`.

use std::collections::BTreeSet;

/// Every concrete resource type of FHIR R4 4.0.1, sorted (for binary search).
const R4_RESOURCE_TYPES: &[&str] = &[
    "Account",
    "ActivityDefinition",
    "AdverseEvent",
    "AllergyIntolerance",
    "Appointment",
    "AppointmentResponse",
    "AuditEvent",
    "Basic",
    "Binary",
    "BiologicallyDerivedProduct",
    "BodyStructure",
    "Bundle",
    "CapabilityStatement",
    "CarePlan",
    "CareTeam",
    "CatalogEntry",
    "ChargeItem",
    "ChargeItemDefinition",
    "Claim",
    "ClaimResponse",
    "ClinicalImpression",
    "CodeSystem",
    "Communication",
    "CommunicationRequest",
    "CompartmentDefinition",
    "Composition",
    "ConceptMap",
    "Condition",
    "Consent",
    "Contract",
    "Coverage",
    "CoverageEligibilityRequest",
    "CoverageEligibilityResponse",
    "DetectedIssue",
    "Device",
    "DeviceDefinition",
    "DeviceMetric",
    "DeviceRequest",
    "DeviceUseStatement",
    "DiagnosticReport",
    "DocumentManifest",
    "DocumentReference",
    "EffectEvidenceSynthesis",
    "Encounter",
    "Endpoint",
    "EnrollmentRequest",
    "EnrollmentResponse",
    "EpisodeOfCare",
    "EventDefinition",
    "Evidence",
    "EvidenceVariable",
    "ExampleScenario",
    "ExplanationOfBenefit",
    "FamilyMemberHistory",
    "Flag",
    "Goal",
    "GraphDefinition",
    "Group",
    "GuidanceResponse",
    "HealthcareService",
    "ImagingStudy",
    "Immunization",
    "ImmunizationEvaluation",
    "ImmunizationRecommendation",
    "ImplementationGuide",
    "InsurancePlan",
    "Invoice",
    "Library",
    "Linkage",
    "List",
    "Location",
    "Measure",
    "MeasureReport",
    "Media",
    "Medication",
    "MedicationAdministration",
    "MedicationDispense",
    "MedicationKnowledge",
    "MedicationRequest",
    "MedicationStatement",
    "MedicinalProduct",
    "MedicinalProductAuthorization",
    "MedicinalProductContraindication",
    "MedicinalProductIndication",
    "MedicinalProductIngredient",
    "MedicinalProductInteraction",
    "MedicinalProductManufactured",
    "MedicinalProductPackaged",
    "MedicinalProductPharmaceutical",
    "MedicinalProductUndesirableEffect",
    "MessageDefinition",
    "MessageHeader",
    "MolecularSequence",
    "NamingSystem",
    "NutritionOrder",
    "Observation",
    "ObservationDefinition",
    "OperationDefinition",
    "OperationOutcome",
    "Organization",
    "OrganizationAffiliation",
    "Parameters",
    "Patient",
    "PaymentNotice",
    "PaymentReconciliation",
    "Person",
    "PlanDefinition",
    "Practitioner",
    "PractitionerRole",
    "Procedure",
    "Provenance",
    "Questionnaire",
    "QuestionnaireResponse",
    "RelatedPerson",
    "RequestGroup",
    "ResearchDefinition",
    "ResearchElementDefinition",
    "ResearchStudy",
    "ResearchSubject",
    "RiskAssessment",
    "RiskEvidenceSynthesis",
    "Schedule",
    "SearchParameter",
    "ServiceRequest",
    "Slot",
    "Specimen",
    "SpecimenDefinition",
    "StructureDefinition",
    "StructureMap",
    "Subscription",
    "Substance",
    "SubstanceNucleicAcid",
    "SubstancePolymer",
    "SubstanceProtein",
    "SubstanceReferenceInformation",
    "SubstanceSourceMaterial",
    "SubstanceSpecification",
    "SupplyDelivery",
    "SupplyRequest",
    "Task",
    "TerminologyCapabilities",
    "TestReport",
    "TestScript",
    "ValueSet",
    "VerificationResult",
    "VisionPrescription",
];

/// Whether `name` is a resource type of FHIR R4 4.0.1 (case-sensitive, as FHIR is).
///
/// ```
/// use halo_model::set_context::is_r4_resource_type;
/// assert!(is_r4_resource_type("PractitionerRole"));
/// assert!(!is_r4_resource_type("PracitionerRole"));
/// assert!(!is_r4_resource_type("Provider"));
/// ```
pub fn is_r4_resource_type(name: &str) -> bool {
    R4_RESOURCE_TYPES.binary_search(&name).is_ok()
}

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
    fn the_r4_list_is_sorted_so_binary_search_works() {
        assert!(R4_RESOURCE_TYPES.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(R4_RESOURCE_TYPES.len(), 146);
    }

    #[test]
    fn every_d14_type_is_an_r4_type() {
        for name in D14_SUPPORTED_TYPES {
            assert!(is_r4_resource_type(name), "{name}");
        }
        assert_eq!(SupportedTypes::d14().iter().count(), 19);
    }
}
