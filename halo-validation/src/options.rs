//! What a validator enforces: the jurisdiction's profile per resource type, severity overrides and
//! corrections of known defects in published invariants.

use std::collections::{BTreeMap, BTreeSet};

use halo_model::outcome::Severity;

/// CA Baseline's canonical base.
const CA_BASELINE: &str = "http://hl7.org/fhir/ca/baseline/StructureDefinition/";

/// The launch-context types CA Baseline profiles, with the profile each one must conform to.
const CA_BASELINE_PROFILES: &[(&str, &str)] = &[
    ("Patient", "profile-patient"),
    ("Practitioner", "profile-practitioner"),
    ("PractitionerRole", "profile-practitionerrole"),
    ("Organization", "profile-organization"),
    ("Location", "profile-location"),
    ("Encounter", "profile-encounter"),
    ("Observation", "profile-observation"),
    ("Condition", "profile-condition"),
    ("AllergyIntolerance", "profile-allergyintolerance"),
    ("MedicationRequest", "profile-medicationrequest"),
    ("MedicationStatement", "profile-medicationstatement"),
    ("Immunization", "profile-immunization"),
    ("Medication", "profile-medication"),
];

/// `ca-baseline-allergy-noallergy` as its text intends: "if the code is 'No known allergy', the
/// verification status is not `unconfirmed`". The published expression joins the two halves with
/// `and`, which fails every allergy that is not "No known allergy" (`docs/decisions.md`).
pub const NOALLERGY_INTENDED: &str = "code.coding.where(system = 'http://snomed.info/sct' and code = '716186003').exists() implies verificationStatus.coding.where(code = 'unconfirmed').empty()";

/// The configuration of a [`Validator`](crate::Validator).
///
/// ```
/// use halo_model::outcome::Severity;
/// use halo_validation::ValidatorOptions;
///
/// let options = ValidatorOptions::ca_baseline()
///     .with_severity("ipa-pat-2", Severity::Warning)
///     .without_rule("dom-6")
///     .with_profile("Patient", "http://fhir.infoway-inforoute.ca/cacore/StructureDefinition/patient-ca-core");
/// assert_eq!(options.profiles_for("Patient").len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatorOptions {
    /// Profiles every resource of a type must conform to, whether or not it claims them in
    /// `meta.profile` (HALO: where a type is profiled, the resource SHALL conform).
    pub jurisdiction_profiles: BTreeMap<String, Vec<String>>,
    /// Severity per rule: an invariant key (`dom-6`) or a rule name (see [`crate::rules`]).
    pub severity_overrides: BTreeMap<String, Severity>,
    /// Rules that are not reported at all (e.g. `dom-6`, the narrative hint).
    pub disabled_rules: BTreeSet<String>,
    /// Replacement FHIRPath per invariant key, for invariants published with a defect.
    pub invariant_fixes: BTreeMap<String, String>,
    /// Check the profiles a resource names in `meta.profile` as well.
    pub check_meta_profiles: bool,
    /// How deep resources may nest (Parameters → Bundle → resource → contained).
    pub max_resource_depth: usize,
}

impl Default for ValidatorOptions {
    fn default() -> Self {
        ValidatorOptions::ca_baseline()
    }
}

impl ValidatorOptions {
    /// Base R4 only: no jurisdiction profiles (profiles named in `meta.profile` still apply).
    pub fn r4() -> ValidatorOptions {
        ValidatorOptions {
            jurisdiction_profiles: BTreeMap::new(),
            severity_overrides: BTreeMap::new(),
            disabled_rules: BTreeSet::new(),
            invariant_fixes: BTreeMap::new(),
            check_meta_profiles: true,
            max_resource_depth: 8,
        }
    }

    /// CA Baseline as the stand-in for CA Core+: each launch-context type must conform to its CA
    /// Baseline profile, and `ca-baseline-allergy-noallergy` is evaluated as intended.
    pub fn ca_baseline() -> ValidatorOptions {
        let mut options = ValidatorOptions::r4();
        for (resource_type, profile) in CA_BASELINE_PROFILES {
            options = options.with_profile(resource_type, &format!("{CA_BASELINE}{profile}"));
        }
        options.with_invariant_fix("ca-baseline-allergy-noallergy", NOALLERGY_INTENDED)
    }

    /// Adds a profile that every resource of `resource_type` must conform to.
    pub fn with_profile(mut self, resource_type: &str, profile: &str) -> ValidatorOptions {
        let list = self
            .jurisdiction_profiles
            .entry(resource_type.to_owned())
            .or_default();
        if !list.iter().any(|p| p == profile) {
            list.push(profile.to_owned());
        }
        self
    }

    /// Removes the jurisdiction profiles of a type.
    pub fn without_profiles(mut self, resource_type: &str) -> ValidatorOptions {
        self.jurisdiction_profiles.remove(resource_type);
        self
    }

    /// Reports a rule at another severity.
    pub fn with_severity(mut self, rule: &str, severity: Severity) -> ValidatorOptions {
        self.severity_overrides.insert(rule.to_owned(), severity);
        self
    }

    /// Stops reporting a rule (an invariant key or a [`rules`](crate::rules) name).
    pub fn without_rule(mut self, rule: &str) -> ValidatorOptions {
        self.disabled_rules.insert(rule.to_owned());
        self
    }

    /// Evaluates an invariant with another FHIRPath expression.
    pub fn with_invariant_fix(mut self, key: &str, expression: &str) -> ValidatorOptions {
        self.invariant_fixes
            .insert(key.to_owned(), expression.to_owned());
        self
    }

    /// The jurisdiction profiles of a type.
    pub fn profiles_for(&self, resource_type: &str) -> &[String] {
        self.jurisdiction_profiles
            .get(resource_type)
            .map_or(&[], Vec::as_slice)
    }
}
