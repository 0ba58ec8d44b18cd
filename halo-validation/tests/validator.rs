//! The public API and the configurable parts: profile selection, severity overrides, the
//! corrected CA Baseline invariant, "not evaluated" reporting, loading from a directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use halo_model::fhir::RawResource;
use halo_model::outcome::{IssueType, Severity};
use halo_validation::{Definitions, Validator, ValidatorOptions, rules};
use serde_json::{Value, json};

fn raw(json: Value) -> RawResource {
    RawResource::from_value(json).unwrap()
}

fn error_paths(validator: &Validator, json: Value) -> Vec<String> {
    validator
        .validate(&raw(json))
        .errors()
        .map(|i| i.expression[0].clone())
        .collect()
}

#[test]
fn the_validator_is_send_sync_and_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Validator>();
    // Debug output stays short enough for a log line.
    assert!(format!("{:?}", Validator::with_embedded_definitions()).len() < 2_000);
    let validator = Arc::new(Validator::with_embedded_definitions());
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let validator = validator.clone();
            std::thread::spawn(move || {
                let report = validator.validate(&raw(
                    json!({"resourceType": "Patient", "gender": format!("g{i}")}),
                ));
                report.has_errors()
            })
        })
        .collect();
    for handle in handles {
        assert!(handle.join().unwrap());
    }
}

#[test]
fn the_embedded_definitions_load_cleanly_and_quickly() {
    let started = std::time::Instant::now();
    let definitions = Definitions::embedded().unwrap();
    let elapsed = started.elapsed();
    assert!(
        definitions.warnings().is_empty(),
        "{:#?}",
        definitions.warnings()
    );
    for resource_type in [
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
        "Bundle",
        "Parameters",
    ] {
        assert!(
            definitions.resource_types().contains(&resource_type),
            "{resource_type}"
        );
    }
    assert_eq!(definitions.profile_urls().len(), 30);
    // Every invariant of the embedded definitions parses.
    let invariants = definitions.invariants();
    assert!(invariants.len() > 80);
    assert!(invariants.iter().all(|i| i.parse_error.is_none()));
    let (known, enumerable) = definitions.value_set_counts();
    assert_eq!(known, 34);
    assert!(enumerable >= 30, "{enumerable}");
    // Debug builds included: loading is a one-off start-up cost well under a second.
    assert!(elapsed.as_secs() < 5, "{elapsed:?}");
}

#[test]
// REQ: SC-03
fn types_without_a_definition_are_information_not_errors() {
    let validator = Validator::with_embedded_definitions();
    let report = validator.validate(&raw(
        json!({"resourceType": "Procedure", "status": "nonsense"}),
    ));
    assert!(!report.has_errors());
    assert_eq!(report.issues.len(), 1);
    assert_eq!(report.issues[0].severity, Severity::Information);
    assert!(report.issues[0].message().contains("not checked"));
}

#[test]
// REQ: SC-03
fn the_jurisdiction_profile_applies_without_meta_profile() {
    let encounter = json!({"resourceType": "Encounter", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}});
    let ca = Validator::with_embedded_definitions();
    assert_eq!(error_paths(&ca, encounter.clone()), ["Encounter.subject"]);
    // Base R4 alone does not require a subject.
    let r4 = ca.with_options(ValidatorOptions::r4());
    assert!(error_paths(&r4, encounter.clone()).is_empty());
    // A profile claimed in meta.profile applies even when the jurisdiction sets none.
    let mut claimed = encounter;
    claimed["meta"] = json!({"profile": ["http://hl7.org/fhir/ca/baseline/StructureDefinition/profile-encounter|0.1.5"]});
    assert_eq!(error_paths(&r4, claimed), ["Encounter.subject"]);
}

#[test]
// REQ: SC-03
fn an_unknown_claimed_profile_is_a_warning_and_a_wrong_type_profile_an_error() {
    let validator = Validator::with_embedded_definitions();
    let report = validator.validate(&raw(json!({"resourceType": "Patient",
        "meta": {"profile": ["http://fhir.infoway-inforoute.ca/cacore/StructureDefinition/patient-ca-core",
                             "http://hl7.org/fhir/ca/baseline/StructureDefinition/profile-encounter"]}})));
    let warning = report.issues_of(Severity::Warning).next().unwrap();
    assert_eq!(warning.expression[0], "Patient.meta.profile[0]");
    assert_eq!(warning.code, IssueType::NotSupported);
    let error = report.errors().next().unwrap();
    assert_eq!(error.expression[0], "Patient.meta.profile[1]");
}

#[test]
// REQ: SC-03
fn severity_overrides_change_what_rejects() {
    let nameless = json!({"resourceType": "Patient", "name": [{"use": "usual"}]});
    let validator = Validator::with_embedded_definitions();
    assert_eq!(
        error_paths(&validator, nameless.clone()),
        ["Patient.name[0]"]
    );
    let lenient = validator.with_options(
        ValidatorOptions::ca_baseline().with_severity("ipa-pat-2", Severity::Warning),
    );
    let report = lenient.validate(&raw(nameless.clone()));
    assert!(!report.has_errors());
    assert_eq!(report.issues_of(Severity::Warning).count(), 1);
    // A rule can also be switched off: here the narrative hint, reported on every resource.
    assert!(
        validator
            .validate(&raw(nameless.clone()))
            .issues
            .iter()
            .any(|i| i.message().starts_with("dom-6"))
    );
    let quiet = validator.with_options(ValidatorOptions::ca_baseline().without_rule("dom-6"));
    assert!(
        !quiet
            .validate(&raw(nameless))
            .issues
            .iter()
            .any(|i| i.message().starts_with("dom-6"))
    );
}

#[test]
// REQ: SC-03
fn the_noallergy_invariant_is_evaluated_as_intended() {
    let allergy = json!({"resourceType": "AllergyIntolerance",
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "91936005"}]},
        "patient": {"reference": "Patient/1"}});
    let validator = Validator::with_embedded_definitions();
    assert!(error_paths(&validator, allergy.clone()).is_empty());
    // Read literally, as published, the invariant rejects every ordinary allergy.
    let mut literal_options = ValidatorOptions::ca_baseline();
    literal_options.invariant_fixes.clear();
    let literal = validator.with_options(literal_options);
    let report = literal.validate(&raw(allergy));
    let issue = report.errors().next().unwrap();
    assert!(
        issue.message().starts_with("ca-baseline-allergy-noallergy"),
        "{issue}"
    );
}

#[test]
// REQ: SC-03
fn invariants_outside_the_fhirpath_subset_are_reported_as_not_evaluated() {
    let validator = Validator::with_embedded_definitions();
    let report = validator.validate(&raw(json!({"resourceType": "Patient",
        "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Marie</div>"},
        "contained": [{"resourceType": "Organization", "id": "org", "name": "Clinic"}],
        "managingOrganization": {"reference": "#org"}})));
    assert!(!report.has_errors(), "{:#?}", report.issues);
    let mut keys: Vec<&str> = report
        .not_evaluated
        .iter()
        .map(|n| n.key.as_str())
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["dom-3", "txt-1", "txt-2"]);
    assert_eq!(
        report
            .issues
            .iter()
            .filter(|i| i.message().contains("was not evaluated"))
            .count(),
        3
    );
    assert!(report.invariants_evaluated > 0);
    // ref-1 is evaluated: a reference to a missing contained resource is an error.
    let report = validator.validate(&raw(json!({"resourceType": "Patient",
        "managingOrganization": {"reference": "#nowhere"}})));
    assert_eq!(
        report.errors().next().unwrap().expression[0],
        "Patient.managingOrganization"
    );
}

#[test]
// REQ: SC-03
fn slices_naming_an_unloaded_extension_warn() {
    let validator = Validator::with_embedded_definitions();
    let report = validator.validate(&raw(json!({"resourceType": "Patient", "address": [{"city": "Ottawa",
        "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/iso21090-preferred", "valueBoolean": true}]}]})));
    assert!(!report.has_errors());
    let warning = report.issues_of(Severity::Warning).next().unwrap();
    assert_eq!(warning.code, IssueType::Extension);
    assert_eq!(warning.expression[0], "Patient.address[0].extension[0]");
}

#[test]
// REQ: SC-03
fn a_jurisdiction_package_loads_from_a_directory_without_code_changes() {
    let dir = std::env::temp_dir().join(format!("halo-validation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A stricter Patient profile, as some CA Core+ versions have: every identifier has a type.
    let profile = json!({"resourceType": "StructureDefinition",
        "url": "https://example.org/StructureDefinition/patient-strict", "name": "PatientStrict",
        "kind": "resource", "type": "Patient", "derivation": "constraint",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
        "differential": {"element": [
            {"id": "Patient", "path": "Patient"},
            {"id": "Patient.identifier.type", "path": "Patient.identifier.type", "min": 1},
            {"id": "Patient.name", "path": "Patient.name", "min": 1}]}});
    std::fs::write(
        dir.join("StructureDefinition-patient-strict.json"),
        profile.to_string(),
    )
    .unwrap();
    std::fs::write(dir.join("package.json"), "{\"name\": \"example\"}").unwrap();
    let options = ValidatorOptions::r4().with_profile(
        "Patient",
        "https://example.org/StructureDefinition/patient-strict",
    );
    let validator = Validator::from_directory(&dir, options).unwrap();
    let paths = error_paths(
        &validator,
        json!({"resourceType": "Patient",
        "identifier": [{"system": "https://example.org/mrn", "value": "1"}]}),
    );
    assert_eq!(paths, ["Patient.identifier[0].type", "Patient.name"]);
    std::fs::remove_dir_all(&dir).unwrap();

    // A missing directory is a typed error with the path in the message.
    let error = Validator::from_directory("/nonexistent/halo", ValidatorOptions::r4()).unwrap_err();
    assert!(error.to_string().contains("/nonexistent/halo"));
}

#[test]
// REQ: SC-03
fn must_support_is_never_an_error() {
    // CA Baseline before the must-support flags were removed: Patient.name and birthDate are MS.
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/cacore/ca-baseline/6a588d8-with-mustsupport/resources"
    );
    let validator = Validator::from_directory(dir, ValidatorOptions::ca_baseline()).unwrap();
    let report = validator.validate(&raw(json!({"resourceType": "Patient", "gender": "other"})));
    assert!(!report.has_errors(), "{:#?}", report.issues);
    assert_eq!(report.issues_of(Severity::Warning).count(), 0);
    // The same profiles still enforce their real rules.
    assert_eq!(
        error_paths(
            &validator,
            json!({"resourceType": "Patient", "telecom": [{"value": "1"}]})
        ),
        ["Patient.telecom[0].system", "Patient.telecom[0]"]
    );
}

#[test]
fn bad_input_is_reported_not_panicked_on() {
    let validator = Validator::with_embedded_definitions();
    for value in [
        json!(null),
        json!([1, 2]),
        json!("Patient"),
        json!({}),
        json!({"resourceType": 3}),
    ] {
        assert!(validator.validate_value(&value).has_errors(), "{value}");
    }
    // Resources nested deeper than the limit are refused, not recursed into.
    let mut nested = json!({"resourceType": "Parameters"});
    for _ in 0..20 {
        nested =
            json!({"resourceType": "Parameters", "parameter": [{"name": "p", "resource": nested}]});
    }
    let report = validator.validate_value(&nested);
    assert!(report.errors().any(|i| i.code == IssueType::TooCostly));
    // Wrong JSON kinds at every level.
    let paths = error_paths(
        &validator,
        json!({"resourceType": "Patient", "name": [null, 3],
        "identifier": [], "contact": [{}], "_gender": "x"}),
    );
    assert_eq!(
        paths,
        [
            "Patient.identifier",
            "Patient.name[0]",
            "Patient.name[1]",
            "Patient.gender",
            "Patient.contact[0]"
        ]
    );
}

#[test]
// REQ: RS-07
fn the_report_becomes_an_operation_outcome_located_in_the_request() {
    let validator = Validator::with_embedded_definitions();
    let report = validator
        .validate(&raw(json!({"resourceType": "Patient", "identifier": [{"system": "https://x.org"}, {"value": "1"}]})))
        .with_prefix("Parameters.parameter[9].resource.entry[2].resource.");
    let json = report.to_outcome().to_json();
    assert_eq!(json["resourceType"], "OperationOutcome");
    let expressions: Vec<&str> = json["issue"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["severity"] == "error")
        .map(|i| i["expression"][0].as_str().unwrap())
        .collect();
    assert_eq!(
        expressions,
        [
            "Parameters.parameter[9].resource.entry[2].resource.identifier[0].value",
            "Parameters.parameter[9].resource.entry[2].resource.identifier[1].system",
        ]
    );
    assert!(
        json["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("required")
    );
    // A valid resource still gives FHIR's mandatory single issue.
    let ok = validator.validate(&raw(json!({"resourceType": "Organization", "name": "A", "text": {"status": "empty", "div": "<div>A</div>"}})));
    assert!(!ok.has_errors());
    assert!(!ok.to_outcome().has_errors());
    assert!(!ok.to_outcome().issues.is_empty());
    let _ = rules::CARDINALITY_MIN;
}

#[test]
// REQ: SC-03
fn the_invariants_outside_the_fhirpath_subset_are_known_and_few() {
    let definitions = Definitions::embedded().unwrap();
    let invariants = definitions.invariants();
    let outside: Vec<(&str, &[String])> = invariants
        .iter()
        .filter(|i| !i.outside_subset.is_empty())
        .map(|i| (i.key.as_str(), i.outside_subset.as_slice()))
        .collect();
    let mut keys: Vec<&str> = outside.iter().map(|(k, _)| *k).collect();
    keys.dedup();
    // htmlChecks() (narrative XHTML), matches() (ElementDefinition only), and type tests on
    // untyped strings in dom-3 and ca-baseline-datetime.
    assert_eq!(
        keys,
        [
            "ca-baseline-datetime",
            "dom-3",
            "eld-16",
            "eld-19",
            "eld-20",
            "txt-1",
            "txt-2"
        ],
        "{outside:#?}"
    );
}
