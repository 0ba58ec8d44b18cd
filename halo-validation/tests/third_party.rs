//! Every resource in the third-party (Zed Werks) HALO `$set-context` examples, validated whole
//! (Parameters → Bundle → entries) and entry by entry with the expressions a SoFA would report.

#![allow(clippy::unwrap_used)]

use halo_model::fhir::RawResource;
use halo_model::outcome::{IssueType, Severity};
use halo_validation::{Validator, rules};
use serde_json::Value;

const DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/halo/third-party-zedwerks"
);

const SET_CONTEXT: [&str; 6] = ["XXS", "XS", "S", "M", "L", "XL"];

fn read(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(format!("{DIR}/{name}")).unwrap()).unwrap()
}

/// `(index of the parameter, Bundle)` of the `resources` parameter, if any.
fn bundle(parameters: &Value) -> Option<(usize, &Value)> {
    parameters["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .find(|(_, p)| p["name"] == "resources")
        .map(|(i, p)| (i, &p["resource"]))
}

#[test]
// REQ: SC-03
fn the_set_context_examples_are_structurally_valid_except_the_xl_request_url() {
    let validator = Validator::with_embedded_definitions();
    for size in SET_CONTEXT {
        let parameters = read(&format!("set-context-input-{size}.json"));
        let report = validator.validate_value(&parameters);
        let errors: Vec<(&str, IssueType)> = report
            .errors()
            .map(|i| (i.expression[0].as_str(), i.code))
            .collect();
        if size == "XL" {
            // A real finding: the MedicationStatement entry is POSTed to `Location`.
            assert_eq!(
                errors,
                [(
                    "Parameters.parameter[11].resource.entry[6].request.url",
                    IssueType::Invalid
                )]
            );
            assert!(
                report
                    .errors()
                    .next()
                    .unwrap()
                    .message()
                    .contains("MedicationStatement")
            );
        } else {
            assert!(errors.is_empty(), "{size}: {errors:#?}");
        }
        // The HALO profiles they claim are not among the definitions: a warning each, never a
        // silent pass.
        let warnings: Vec<&str> = report
            .issues_of(Severity::Warning)
            .map(|i| i.expression[0].as_str())
            .collect();
        let mut expected = vec!["Parameters.meta.profile[0]".to_owned()];
        if let Some((index, _)) = bundle(&parameters) {
            expected.push(format!(
                "Parameters.parameter[{index}].resource.meta.profile[0]"
            ));
        }
        assert_eq!(warnings, expected, "{size}");
        assert!(
            report
                .issues_of(Severity::Warning)
                .all(|i| i.code == IssueType::NotSupported)
        );
    }
}

#[test]
// REQ: SC-03
fn each_bundle_entry_is_checked_against_its_ca_baseline_profile() {
    let validator = Validator::with_embedded_definitions();
    let parameters = read("set-context-input-XL.json");
    let (index, bundle) = bundle(&parameters).unwrap();
    let entries = bundle["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 7);
    for (i, entry) in entries.iter().enumerate() {
        let resource = RawResource::from_value(entry["resource"].clone()).unwrap();
        let prefix = format!("Parameters.parameter[{index}].resource.entry[{i}].resource");
        let report = validator.validate(&resource).with_prefix(&prefix);
        assert!(!report.has_errors(), "{prefix}: {:#?}", report.issues);
        // Only the narrative hint (dom-6, a best-practice rule) is reported.
        for issue in &report.issues {
            assert_eq!(issue.severity, Severity::Information, "{issue}");
            assert_eq!(issue.expression[0], prefix);
        }
        // Breaking a CA Baseline rule in the same entry is caught at the prefixed location.
        let mut broken = entry["resource"].clone();
        broken["meta"] = serde_json::json!({"versionId": ""});
        let report = validator
            .validate(&RawResource::from_value(broken).unwrap())
            .with_prefix(&prefix);
        assert_eq!(
            report.errors().next().unwrap().expression[0],
            format!("{prefix}.meta.versionId")
        );
    }
}

#[test]
// REQ: SC-03
fn a_bundle_entry_breaking_a_rule_is_named_inside_the_whole_request() {
    let validator = Validator::with_embedded_definitions();
    let mut parameters = read("set-context-input-XL.json");
    let (index, _) = bundle(&parameters).unwrap();
    // The Encounter (entry 1) loses its subject, which CA Baseline requires.
    let encounter = &mut parameters["parameter"][index]["resource"]["entry"][1]["resource"];
    encounter.as_object_mut().unwrap().remove("subject");
    let report = validator.validate_value(&parameters);
    let errors: Vec<&str> = report.errors().map(|i| i.expression[0].as_str()).collect();
    assert_eq!(
        errors,
        [
            format!("Parameters.parameter[{index}].resource.entry[1].resource.subject"),
            format!("Parameters.parameter[{index}].resource.entry[6].request.url"),
        ]
    );
}

#[test]
// REQ: SC-03
fn urn_uuid_references_resolve_inside_the_bundle() {
    let validator = Validator::with_embedded_definitions();
    let mut parameters = read("set-context-input-XL.json");
    let (index, _) = bundle(&parameters).unwrap();
    // The MedicationStatement's subject points at the Organization's fullUrl, without `type`.
    let statement = &mut parameters["parameter"][index]["resource"]["entry"][6]["resource"];
    statement["subject"] =
        serde_json::json!({"reference": "urn:uuid:9b530e85-bf64-4f35-a186-65ac1ddaf303"});
    let report = validator.validate_value(&parameters);
    let error = report.errors().next().unwrap();
    assert_eq!(error.code, IssueType::Invalid);
    assert_eq!(
        error.expression[0],
        format!("Parameters.parameter[{index}].resource.entry[6].resource.subject")
    );
    assert!(error.message().contains("Organization"), "{error}");
}

#[test]
fn the_other_example_files_are_reported_not_panicked_on() {
    let validator = Validator::with_embedded_definitions();
    // `$clear-context` input: a valid Parameters.
    let report = validator.validate_value(&read("clear-context-input.json"));
    assert!(report.issues.is_empty(), "{:#?}", report.issues);
    // A SMART token response is not a FHIR resource.
    let report = validator.validate_value(&read("halo-smart-token-response.redacted.json"));
    assert!(report.has_errors());
    assert_eq!(report.issues.len(), 1);
    assert!(report.issues[0].message().contains("resourceType"));
}

#[test]
// REQ: SC-03
fn the_request_url_rule_can_be_downgraded() {
    let validator = Validator::with_embedded_definitions();
    let relaxed = validator.with_options(
        validator
            .options()
            .clone()
            .with_severity(rules::BUNDLE_REQUEST_URL, Severity::Warning),
    );
    let parameters = read("set-context-input-XL.json");
    assert!(validator.validate_value(&parameters).has_errors());
    assert!(!relaxed.validate_value(&parameters).has_errors());
}
