//! The validation corpus: resources of the 12 launch-context types written from the rules in
//! CA-CORE.md (R4 base rules and CA Baseline), each with the exact findings expected beside it
//! (`<name>.expected.json`: errors and warnings, as severity + issue code + FHIRPath expression).
//! Information (e.g. the dom-6 narrative hint) is not compared.

// Helpers read the corpus; a panic there is the test failing.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use halo_model::fhir::RawResource;
use halo_model::outcome::Severity;
use halo_validation::Validator;
use serde_json::Value;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");

const LAUNCH_CONTEXT_TYPES: [&str; 12] = [
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
];

type Finding = (String, String, String);

fn cases() -> Vec<(PathBuf, PathBuf)> {
    let mut cases = Vec::new();
    for resource_type in LAUNCH_CONTEXT_TYPES {
        let dir = Path::new(CORPUS).join(resource_type);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.extension().is_some_and(|e| e == "json")
                    && !p.to_string_lossy().ends_with(".expected.json")
            })
            .collect();
        files.sort();
        for file in files {
            let expected = file.with_extension("expected.json");
            assert!(
                expected.exists(),
                "{} has no expected findings",
                file.display()
            );
            cases.push((file, expected));
        }
    }
    cases
}

fn expected_findings(path: &Path) -> Vec<Finding> {
    let json: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let mut findings: Vec<Finding> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["severity"].as_str().unwrap().to_owned(),
                f["code"].as_str().unwrap().to_owned(),
                f["expression"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    findings.sort();
    findings
}

#[test]
// REQ: SC-03
// REQ: RS-07
fn every_corpus_resource_gets_exactly_its_expected_findings() {
    let validator = Validator::with_embedded_definitions();
    let cases = cases();
    let mut failures = Vec::new();
    let mut per_type: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (file, expected) in &cases {
        let resource = RawResource::from_slice(&std::fs::read(file).unwrap()).unwrap();
        let report = validator.validate(&resource);
        let mut actual: Vec<Finding> = report
            .issues
            .iter()
            .filter(|i| {
                matches!(
                    i.severity,
                    Severity::Error | Severity::Warning | Severity::Fatal
                )
            })
            .map(|i| {
                (
                    i.severity.to_string(),
                    i.code.to_string(),
                    i.expression.first().cloned().unwrap_or_default(),
                )
            })
            .collect();
        actual.sort();
        let expected = expected_findings(expected);
        let counts = per_type
            .entry(resource.resource_type().to_owned())
            .or_default();
        if expected.is_empty() {
            counts.0 += 1;
        } else {
            counts.1 += 1;
        }
        if actual != expected {
            let messages: Vec<String> = report.issues.iter().map(|i| format!("    {i}")).collect();
            failures.push(format!(
                "{}\n  expected {expected:?}\n  found    {actual:?}\n{}",
                file.strip_prefix(CORPUS).unwrap_or(file).display(),
                messages.join("\n")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // The corpus covers every launch-context type with valid and invalid resources.
    assert!(cases.len() >= 60, "only {} corpus resources", cases.len());
    for resource_type in LAUNCH_CONTEXT_TYPES {
        let (valid, invalid) = per_type.get(resource_type).copied().unwrap_or_default();
        assert!(
            valid >= 1 && invalid >= 3,
            "{resource_type}: {valid} valid, {invalid} invalid"
        );
    }
}

#[test]
// REQ: SC-03
fn invalid_corpus_resources_are_rejected_and_valid_ones_accepted() {
    let validator = Validator::with_embedded_definitions();
    for (file, expected) in cases() {
        let resource = RawResource::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        let report = validator.validate(&resource);
        let expect_errors = expected_findings(&expected).iter().any(|f| f.0 == "error");
        assert_eq!(report.has_errors(), expect_errors, "{}", file.display());
        assert_eq!(
            report.to_outcome().has_errors(),
            expect_errors,
            "{}",
            file.display()
        );
    }
}
