//! `$set-context` / `$clear-context` against the third-party HALO requests in
//! `fixtures/halo/third-party-zedwerks/` (written by others) and hand-made bad inputs.

// Test helpers may unwrap: a panic is a test failure with its message.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;

use halo_model::canonical;
use halo_model::outcome::{IssueType, OperationOutcome};
use halo_model::set_context::{
    ClearContextOutput, ClearContextShape, ContextReference, EntryResult, SetContextBuilder,
    SetContextOutput, SetContextRequest, SupportedTypes, ValidationErrors, ValidationOptions,
    clear_context_input, clear_context_output, parse_clear_context_input, references_in,
};
use serde_json::{Value, json};
use support::{assert_same_shape, fixture};

fn zedwerks(name: &str) -> Value {
    fixture(&format!("halo/third-party-zedwerks/{name}"))
}

fn parse(body: &Value) -> Result<SetContextRequest, ValidationErrors> {
    SetContextRequest::parse(body, &ValidationOptions::default())
}

fn errors(body: &Value) -> Vec<(String, IssueType)> {
    match parse(body) {
        Ok(request) => panic!("expected findings, parsed {request:?}"),
        Err(errors) => errors.locations(),
    }
}

fn loc(expression: &str, code: IssueType) -> (String, IssueType) {
    (expression.to_owned(), code)
}

// REQ: SC-01
// REQ: SC-02
#[test]
fn zedwerks_l_parses_with_every_context_parameter_and_six_entries() {
    let request = parse(&zedwerks("set-context-input-L.json")).unwrap();
    assert_eq!(request.app_id.as_deref(), Some("459-L"));
    assert_eq!(request.patient.as_ref().unwrap().resource_type, "Patient");
    assert!(request.patient.as_ref().unwrap().is_bundled());
    assert_eq!(
        request.encounter.as_ref().unwrap().reference,
        "urn:uuid:e753f568-6faf-4a9e-aec8-fe0d2a4f397c"
    );
    assert_eq!(
        request.fhir_user.as_ref().unwrap().resource_type,
        "PractitionerRole"
    );
    let context: Vec<_> = request
        .fhir_context
        .iter()
        .map(|r| r.resource_type.as_str())
        .collect();
    assert_eq!(context, ["Organization", "Location"]);
    assert_eq!(request.need_patient_banner, Some(true));
    assert_eq!(request.intent.as_deref(), Some("medication-review"));
    assert_eq!(
        request.smart_style_url.as_deref(),
        Some("http://example.com/smart_v1.json")
    );
    assert_eq!(request.tenant.as_deref(), Some("tenant-xyz"));
    let types: Vec<_> = request
        .resources
        .iter()
        .map(|e| e.resource_type.as_str())
        .collect();
    assert_eq!(
        types,
        [
            "Patient",
            "Encounter",
            "PractitionerRole",
            "Practitioner",
            "Organization",
            "Location"
        ]
    );
    assert!(request.existing_references().is_empty());
}

// REQ: SC-01
// REQ: SC-02
#[test]
fn zedwerks_s_parses_and_keeps_its_existing_fhir_context_reference() {
    let request = parse(&zedwerks("set-context-input-S.json")).unwrap();
    assert_eq!(request.resources.len(), 2);
    let existing = request.existing_references();
    assert_eq!(existing.len(), 1);
    assert_eq!(existing[0].0, "fhirContext");
    assert_eq!(
        existing[0].1.existing_id(),
        Some("1b676b4f-e646-40c6-bfff-f75b095b7e69")
    );
}

// REQ: SC-01
// REQ: SC-05
#[test]
fn zedwerks_xs_references_resources_already_in_the_sofa() {
    let request = parse(&zedwerks("set-context-input-XS.json")).unwrap();
    assert!(request.resources.is_empty());
    let existing: Vec<_> = request
        .existing_references()
        .iter()
        .map(|(name, r)| (*name, r.reference.clone()))
        .collect();
    assert_eq!(
        existing,
        [
            (
                "patient",
                "Patient/d12004a7-5ed5-41ab-a8f2-0de5f0c98847".to_owned()
            ),
            (
                "encounter",
                "Encounter/e753f568-6faf-4a9e-aec8-fe0d2a4f397c".to_owned()
            ),
            (
                "fhirUser",
                "PractitionerRole/b3b7f021-6566-4be5-a6ec-736bc44fefb8".to_owned()
            ),
        ]
    );
}

// PROVENANCE defect: `Provider` is not a FHIR resource type, both in the reference and in
// Reference.type.
// REQ: SC-01
#[test]
fn zedwerks_xxs_fails_on_the_provider_type() {
    assert_eq!(
        errors(&zedwerks("set-context-input-XXS.json")),
        [
            loc(
                "Parameters.parameter[1].valueReference.type",
                IssueType::Value
            ),
            loc(
                "Parameters.parameter[1].valueReference.reference",
                IssueType::Value
            ),
        ]
    );
}

// PROVENANCE defect: the `PracitionerRole/...` typo in fhirUser.
// REQ: SC-01
#[test]
fn zedwerks_m_fails_on_the_pracitionerrole_typo() {
    let errors = parse(&zedwerks("set-context-input-M.json")).unwrap_err();
    assert_eq!(
        errors.locations(),
        [loc(
            "Parameters.parameter[1].valueReference.reference",
            IssueType::Value
        )]
    );
    assert!(
        errors.issues[0].message().contains("PracitionerRole"),
        "{errors}"
    );
}

// Not in PROVENANCE: the MedicationStatement entry of XL is posted with `request.url`
// `Location`, which D-04 (url = the resource type) rejects.
// REQ: SC-02
#[test]
fn zedwerks_xl_fails_on_the_medication_statement_request_url() {
    let errors = parse(&zedwerks("set-context-input-XL.json")).unwrap_err();
    assert_eq!(
        errors.locations(),
        [loc(
            "Parameters.parameter[11].resource.entry[6].request.url",
            IssueType::Value
        )]
    );
    assert!(
        errors.issues[0].message().contains("MedicationStatement"),
        "{errors}"
    );
}

// PROVENANCE defect: the unfilled Bruno template `{{launch_id}}`.
#[test]
fn zedwerks_clear_context_fails_on_the_template_variable() {
    let errors = parse_clear_context_input(&zedwerks("clear-context-input.json")).unwrap_err();
    assert_eq!(
        errors.locations(),
        [loc("Parameters.parameter[0].valueString", IssueType::Value)]
    );
    let mut fixed = zedwerks("clear-context-input.json");
    fixed["parameter"][0]["valueString"] = json!("q1uXo3l2mJx0tYh3cJ5qk9n8bq0dVfZ5c3g4Zx1tPqE");
    assert_eq!(
        parse_clear_context_input(&fixed).unwrap(),
        "q1uXo3l2mJx0tYh3cJ5qk9n8bq0dVfZ5c3g4Zx1tPqE"
    );
}

// Every third-party request is covered by one of the tests above.
#[test]
fn every_zedwerks_request_is_accounted_for() {
    let names = support::fixture_names("halo/third-party-zedwerks");
    let requests: Vec<_> = names.iter().filter(|n| n.contains("-input")).collect();
    let verdicts: Vec<(&str, bool)> = requests
        .iter()
        .map(|name| {
            let body = zedwerks(name);
            let ok = if name.starts_with("clear") {
                parse_clear_context_input(&body).is_ok()
            } else {
                parse(&body).is_ok()
            };
            (name.as_str(), ok)
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            ("clear-context-input.json", false),
            ("set-context-input-L.json", true),
            ("set-context-input-M.json", false),
            ("set-context-input-S.json", true),
            ("set-context-input-XL.json", false),
            ("set-context-input-XS.json", true),
            ("set-context-input-XXS.json", false),
        ]
    );
}

// REQ: SC-01
#[test]
fn every_problem_is_reported_at_once_with_an_expression() {
    let body = json!({
        "resourceType": "Parameters",
        "parameter": [
            {"name": "appId", "valueString": "typo"},
            {"name": "appID", "valueInteger": 3},
            {"name": "patient", "valueReference": {"reference": "urn:uuid:00000000-0000-4000-8000-0000000000aa"}},
            {"name": "need_patient_banner", "valueBoolean": "true"},
            {"name": "smart_style_url", "valueUri": "http://example.com/style.json"},
            {"name": "intent", "valueString": "a"},
            {"name": "intent", "valueString": "b"},
            {"name": "encounter", "valueReference": {"reference": "https://elsewhere.example.org/Encounter/1"}},
            {"name": "fhirContext"},
            {"value": "no name"}
        ]
    });
    let errors = parse(&body).unwrap_err();
    assert_eq!(
        errors.locations(),
        [
            loc("Parameters.parameter[0].name", IssueType::NotSupported),
            loc("Parameters.parameter[1].valueInteger", IssueType::Structure),
            loc("Parameters.parameter[4].valueUri", IssueType::Structure),
            loc("Parameters.parameter[6]", IssueType::Structure),
            loc("Parameters.parameter[8]", IssueType::Required),
            loc("Parameters.parameter[9].name", IssueType::Required),
            loc(
                "Parameters.parameter[2].valueReference.reference",
                IssueType::NotFound
            ),
            loc("Parameters.parameter[3].valueBoolean", IssueType::Value),
            loc(
                "Parameters.parameter[7].valueReference.reference",
                IssueType::Value
            ),
        ]
    );
    // The typo is named, with the right spelling suggested (D-03).
    assert!(errors.issues[0].message().contains("appId"));
    assert!(errors.issues[0].message().contains("did you mean appID"));
    let outcome: OperationOutcome = errors.into();
    let json = outcome.to_json();
    assert_eq!(json["issue"].as_array().unwrap().len(), 9);
    assert_eq!(
        json["issue"][0]["expression"][0],
        "Parameters.parameter[0].name"
    );
}

// REQ: SC-01
#[test]
fn context_references_must_name_the_right_type() {
    let mut body = zedwerks("set-context-input-L.json");
    // patient pointing at the Encounter entry; encounter's Reference.type disagreeing.
    body["parameter"][1]["valueReference"] =
        json!({"reference": "urn:uuid:e753f568-6faf-4a9e-aec8-fe0d2a4f397c"});
    body["parameter"][2]["valueReference"]["type"] = json!("Patient");
    assert_eq!(
        errors(&body),
        [
            loc(
                "Parameters.parameter[1].valueReference.reference",
                IssueType::Value
            ),
            loc(
                "Parameters.parameter[2].valueReference.type",
                IssueType::Value
            ),
        ]
    );
}

// REQ: SC-02
#[test]
fn bundle_rules_are_all_checked_with_entry_expressions() {
    let mut body = zedwerks("set-context-input-L.json");
    let bundle = &mut body["parameter"][10]["resource"];
    bundle["type"] = json!("batch");
    let entries = bundle["entry"].as_array_mut().unwrap();
    entries[0].as_object_mut().unwrap().remove("fullUrl");
    entries[1]["request"]["method"] = json!("PUT");
    entries[3]["fullUrl"] = entries[2]["fullUrl"].clone();
    entries[4]["resource"] = json!({"resourceType": "Claim", "status": "active"});
    entries[4]["request"]["url"] = json!("Claim");
    entries[5]["resource"]["managingOrganization"]["reference"] =
        json!("urn:uuid:00000000-0000-4000-8000-00000000dead");
    let base = "Parameters.parameter[10].resource";
    assert_eq!(
        errors(&body),
        [
            loc(&format!("{base}.type"), IssueType::Value),
            loc(&format!("{base}.entry[0].fullUrl"), IssueType::Required),
            loc(&format!("{base}.entry[1].request.method"), IssueType::Value),
            loc(&format!("{base}.entry[3].fullUrl"), IssueType::Duplicate),
            loc(
                &format!("{base}.entry[4].resource.resourceType"),
                IssueType::NotSupported
            ),
            // Entry 0 lost its fullUrl and entry 3 lost its own (now a duplicate), so references to
            // the Patient and the Practitioner point nowhere.
            loc(
                &format!("{base}.entry[1].resource.subject.reference"),
                IssueType::NotFound
            ),
            loc(
                &format!("{base}.entry[2].resource.practitioner.reference"),
                IssueType::NotFound
            ),
            loc(
                &format!("{base}.entry[5].resource.managingOrganization.reference"),
                IssueType::NotFound
            ),
            loc(
                "Parameters.parameter[1].valueReference.reference",
                IssueType::NotFound
            ),
            // The Organization's fullUrl now holds a Claim, which fhirContext declares an Organization.
            loc(
                "Parameters.parameter[3].valueReference.type",
                IssueType::Value
            ),
        ]
    );
}

// REQ: SC-02
#[test]
fn supported_types_are_configurable() {
    let mut body = zedwerks("set-context-input-S.json");
    let at = "Parameters.parameter[4].resource.entry[1].resource.resourceType";
    let narrow = ValidationOptions::with_supported_types(["Patient"].into_iter().collect());
    let errors = SetContextRequest::parse(&body, &narrow).unwrap_err();
    assert_eq!(errors.locations(), [loc(at, IssueType::NotSupported)]);

    body["parameter"][4]["resource"]["entry"][1] = json!({
        "fullUrl": "urn:uuid:e753f568-6faf-4a9e-aec8-fe0d2a4f397c",
        "resource": {"resourceType": "Claim", "status": "active"},
        "request": {"method": "POST", "url": "Claim"}
    });
    body["parameter"][3]["valueReference"]["type"] = json!("Claim");
    body["parameter"][3]["name"] = json!("fhirContext");
    assert!(parse(&body).unwrap_err().has(at, IssueType::NotSupported));
    let mut wide = SupportedTypes::default();
    wide.insert("Claim");
    assert!(
        SetContextRequest::parse(&body, &ValidationOptions::with_supported_types(wide)).is_ok()
    );
}

// REQ: SC-05
#[test]
fn assigned_ids_rewrite_every_urn_uuid_and_nothing_else() {
    let body = zedwerks("set-context-input-L.json");
    let mut request = parse(&body).unwrap();
    let assigned: BTreeMap<String, String> = request
        .resources
        .iter()
        .enumerate()
        .map(|(i, e)| (e.full_url.clone(), format!("{}/id-{i}", e.resource_type)))
        .collect();
    let before: Vec<Value> = request
        .resources
        .iter()
        .map(|e| e.resource.clone())
        .collect();
    // 5 references inside the resources + patient, encounter, fhirUser, 2 fhirContext.
    assert_eq!(request.apply_assigned_ids(&assigned), 10);
    for (entry, original) in request.resources.iter().zip(before) {
        let mut expected = serde_json::to_string(&original).unwrap();
        for (full_url, target) in &assigned {
            expected = expected.replace(full_url.as_str(), target);
        }
        assert_eq!(serde_json::to_string(&entry.resource).unwrap(), expected);
        assert!(
            references_in(&entry.resource)
                .iter()
                .all(|r| !r.reference.starts_with("urn:uuid:"))
        );
    }
    assert_eq!(request.patient.unwrap().reference, "Patient/id-0");
    assert_eq!(request.fhir_context[1].reference, "Location/id-5");
}

// REQ: SC-01
// REQ: SC-02
#[test]
fn a_parsed_request_writes_back_to_the_same_shape() {
    for name in [
        "set-context-input-L.json",
        "set-context-input-S.json",
        "set-context-input-XS.json",
    ] {
        let original = zedwerks(name);
        let written = parse(&original).unwrap().to_json();
        // Same elements, same profile URLs; the fixtures' own `id`s are not part of the request.
        assert_same_shape(
            &written,
            &reorder_like(&written, &original),
            &["profile", "name", "url", "method"],
            &["id"],
        );
        assert_eq!(parse(&written).unwrap(), parse(&original).unwrap());
        assert_eq!(
            written["meta"]["profile"][0],
            canonical::SET_CONTEXT_INPUT_PARAMETERS
        );
    }
}

/// The fixtures list parameters in their own order; put them in the order the writer uses (the
/// D-03 table) so positions compare.
fn reorder_like(written: &Value, original: &Value) -> Value {
    let mut reordered = original.clone();
    let mut parameters = original["parameter"].as_array().unwrap().clone();
    let order: Vec<&str> = written["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    parameters.sort_by_key(|p| order.iter().position(|n| *n == p["name"]).unwrap());
    reordered["parameter"] = Value::Array(parameters);
    reordered
}

// REQ: SC-01
// REQ: SC-02
#[test]
fn the_builder_reproduces_the_l_request() {
    let original = zedwerks("set-context-input-L.json");
    let fixture_request = parse(&original).unwrap();
    let mut builder = SetContextBuilder::new();
    let mut refs = BTreeMap::new();
    for entry in &fixture_request.resources {
        let reference = builder
            .add_resource_as(entry.full_url.clone(), entry.resource.clone())
            .unwrap();
        refs.insert(entry.resource_type.clone(), reference);
    }
    builder
        .app_id("459-L")
        .patient(refs["Patient"].clone())
        .encounter(refs["Encounter"].clone())
        .fhir_context(refs["Organization"].clone())
        .fhir_context(refs["Location"].clone())
        .fhir_user(refs["PractitionerRole"].clone())
        .need_patient_banner(true)
        .intent("medication-review")
        .smart_style_url("http://example.com/smart_v1.json")
        .tenant("tenant-xyz");
    let built = builder
        .build_checked(&ValidationOptions::default())
        .unwrap();
    assert_eq!(parse(&built).unwrap(), fixture_request);
    assert_same_shape(
        &built,
        &reorder_like(&built, &original),
        &["profile", "name", "url", "method"],
        &["id"],
    );
}

#[test]
fn the_builder_assigns_unique_urn_uuids_and_catches_dangling_references() {
    let mut builder = SetContextBuilder::new();
    let patient = builder
        .add_resource(json!({"resourceType": "Patient"}))
        .unwrap();
    let other = builder
        .add_resource(json!({"resourceType": "Patient"}))
        .unwrap();
    assert_ne!(patient.reference, other.reference);
    assert!(halo_model::set_context::is_urn_uuid(&patient.reference));
    assert!(
        builder
            .add_resource_as(
                patient.reference.clone(),
                json!({"resourceType": "Patient"})
            )
            .is_err()
    );
    builder.encounter(ContextReference::bundled(
        "urn:uuid:00000000-0000-4000-8000-0000000000ff",
        "Encounter",
    ));
    let errors = builder
        .build_checked(&ValidationOptions::default())
        .unwrap_err();
    assert_eq!(
        errors.locations(),
        [loc(
            "Parameters.parameter[0].valueReference.reference",
            IssueType::NotFound
        )]
    );
}

// REQ: SC-06
#[test]
fn output_parameters_carry_launch_id_and_the_response_bundle_in_request_order() {
    let output = SetContextOutput {
        launch_id: "q1uXo3l2mJx0tYh3cJ5qk9n8bq0dVfZ5c3g4Zx1tPqE".into(),
        resources_response: Some(vec![
            EntryResult::created("Patient", "p1", "2024-01-15T10:00:00.000Z"),
            EntryResult::created("Encounter", "e1", "2024-01-15T10:00:00.000Z"),
        ]),
    };
    let json = output.to_json();
    assert_eq!(
        json["meta"]["profile"][0],
        canonical::SET_CONTEXT_OUTPUT_PARAMETERS
    );
    assert_eq!(
        json["parameter"][0],
        json!({"name": "launchID", "valueString": output.launch_id})
    );
    let bundle = &json["parameter"][1]["resource"];
    assert_eq!(json["parameter"][1]["name"], "resourcesResponse");
    assert_eq!(bundle["type"], "transaction-response");
    assert_eq!(
        bundle["meta"]["profile"][0],
        canonical::SET_CONTEXT_TRANSACTION_RESPONSE_BUNDLE
    );
    assert_eq!(
        bundle["entry"][1]["response"],
        json!({
            "status": "201 Created",
            "location": "Encounter/e1/_history/1",
            "etag": "W/\"1\"",
            "lastModified": "2024-01-15T10:00:00.000Z"
        })
    );
    let read = SetContextOutput::parse(&json).unwrap();
    assert_eq!(read, output);
    let ids = read
        .id_map([
            "urn:uuid:d12004a7-5ed5-41ab-a8f2-0de5f0c98847",
            "urn:uuid:e753f568-6faf-4a9e-aec8-fe0d2a4f397c",
        ])
        .unwrap();
    assert_eq!(
        ids["urn:uuid:e753f568-6faf-4a9e-aec8-fe0d2a4f397c"],
        "Encounter/e1"
    );
    assert_eq!(
        read.id_map(["urn:uuid:d12004a7-5ed5-41ab-a8f2-0de5f0c98847"]),
        None
    );

    let bare = SetContextOutput {
        launch_id: "abc".into(),
        resources_response: None,
    }
    .to_json();
    assert_eq!(bare["parameter"].as_array().unwrap().len(), 1);
    assert!(
        SetContextOutput::parse(&json!({"resourceType": "Parameters", "parameter": []})).is_err()
    );
}

#[test]
fn clear_context_reads_both_d02_shapes() {
    let body = clear_context_input("abc-123");
    assert_eq!(parse_clear_context_input(&body).unwrap(), "abc-123");
    let bad = json!({"resourceType": "Parameters", "parameter": [{"name": "launchId", "valueString": "x"}]});
    assert_eq!(
        parse_clear_context_input(&bad).unwrap_err().locations(),
        [
            loc("Parameters.parameter[0].name", IssueType::NotSupported),
            loc("Parameters.parameter", IssueType::Required)
        ]
    );

    let ok = clear_context_output(&[OperationOutcome::information(
        "launch context abc-123 and 6 resources deleted",
    )]);
    let read = ClearContextOutput::parse(&ok).unwrap();
    assert_eq!(read.shape, ClearContextShape::Parameters);
    assert!(read.succeeded());

    let bare_ok = OperationOutcome::information("deleted").to_json();
    assert_eq!(
        ClearContextOutput::parse(&bare_ok).unwrap().shape,
        ClearContextShape::OperationOutcome
    );
    let bare_error = OperationOutcome::error(IssueType::NotFound, "no such launch").to_json();
    let read = ClearContextOutput::parse(&bare_error).unwrap();
    assert!(!read.succeeded());
    assert!(
        ClearContextOutput::parse(&json!({"resourceType": "Parameters", "parameter": []})).is_err()
    );
}

#[test]
fn hostile_shapes_give_findings_not_panics() {
    for body in [
        json!(null),
        json!([]),
        json!({"resourceType": "Bundle"}),
        json!({"resourceType": "Parameters", "parameter": {}}),
        json!({"resourceType": "Parameters", "parameter": [1, "x", null]}),
        json!({"resourceType": "Parameters", "parameter": [{"name": "resources", "resource": []}]}),
        json!({"resourceType": "Parameters", "parameter": [{"name": "resources", "resource": {"resourceType": "Bundle", "type": "transaction", "entry": [1, {"resource": 2}]}}]}),
        json!({"resourceType": "Parameters", "parameter": [{"name": "patient", "valueReference": "Patient/1"}]}),
    ] {
        let errors = parse(&body).unwrap_err();
        assert!(!errors.issues.is_empty());
        assert!(
            errors.issues.iter().all(|i| !i.expression.is_empty()),
            "{errors}"
        );
        assert!(SetContextOutput::parse(&body).is_err());
        assert!(ClearContextOutput::parse(&body).is_err());
        assert!(parse_clear_context_input(&body).is_err());
    }
}
