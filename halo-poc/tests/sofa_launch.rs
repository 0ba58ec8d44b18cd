//! The SoFA launch over real HTTP against the scripted SoFA: context from the app's scopes,
//! `$set-context` with the EMR's resources, id mapping, launch URL, `$clear-context`.

// Test scaffolding outside #[test] functions: a broken fixture should fail loudly.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use halo_catalog::AppEntry;
use halo_poc::{
    BoxFuture, ClinicalContext, HttpOptions, IdMapStore, LocalResources, MemoryIdMap, Result,
    SofaClient, SofaLauncher, StaticToken,
};
use serde_json::{Value, json};
use support::{ClearShape, ScriptedSofa};

/// The EMR's records, keyed by local `Type/id`.
struct Emr(BTreeMap<String, Value>);

impl LocalResources for Emr {
    fn resource<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Option<Value>>> {
        Box::pin(async move { Ok(self.0.get(reference).cloned()) })
    }

    fn related<'a>(&'a self, plan: &'a halo_poc::ContextPlan) -> BoxFuture<'a, Result<Vec<Value>>> {
        Box::pin(async move {
            // The app may read Observations: send the patient's recent ones.
            Ok(if plan.data_types.iter().any(|t| t == "Observation") {
                vec![self.0["Observation/bp-1"].clone()]
            } else {
                Vec::new()
            })
        })
    }
}

fn emr() -> Emr {
    let mut records = BTreeMap::new();
    for resource in [
        json!({"resourceType": "Patient", "id": "p7", "gender": "female",
               "name": [{"family": "Smith", "given": ["Jane"]}]}),
        json!({"resourceType": "Encounter", "id": "e3", "status": "in-progress",
               "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
               "subject": {"reference": "Patient/p7"},
               "participant": [{"individual": {"reference": "Practitioner/dr-1"}}]}),
        json!({"resourceType": "Practitioner", "id": "dr-1", "name": [{"family": "Osler"}]}),
        json!({"resourceType": "Observation", "id": "bp-1", "status": "final",
               "code": {"text": "blood pressure"}, "subject": {"reference": "Patient/p7"},
               "encounter": {"reference": "Encounter/e3"}}),
    ] {
        let key = format!(
            "{}/{}",
            resource["resourceType"].as_str().unwrap(),
            resource["id"].as_str().unwrap()
        );
        records.insert(key, resource);
    }
    Emr(records)
}

fn app(scopes: &[&str]) -> AppEntry {
    serde_json::from_value(json!({
        "id": "459-L", "name": "Heart", "description": "d", "descriptionShort": "d",
        "iconUrl": "https://a.example/i.png", "privacyPolicyUrl": "https://a.example/p",
        "termsOfServiceUrl": "https://a.example/t",
        "launchUrl": "https://app.example.org/launch?site=bc",
        "contacts": [], "publisher": {"id": "p", "name": "P"}, "scopes": scopes
    }))
    .unwrap()
}

fn clinical() -> ClinicalContext {
    let mut context = ClinicalContext::default()
        .with("Patient/p7")
        .with("Encounter/e3")
        .user("Practitioner/dr-1");
    context.need_patient_banner = Some(false);
    context
}

fn launcher(sofa: &ScriptedSofa, id_map: Arc<MemoryIdMap>) -> SofaLauncher {
    let client = SofaClient::new(
        &sofa.base,
        Arc::new(StaticToken::new("poc-token")),
        HttpOptions::default(),
    )
    .unwrap();
    SofaLauncher::new(client, Arc::new(emr()), id_map)
}

fn parameter<'a>(body: &'a Value, name: &str) -> Vec<&'a Value> {
    body["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == name)
        .collect()
}

// REQ: LI-03
// REQ: LI-04
#[tokio::test]
async fn set_context_carries_the_scoped_context_and_the_launch_url_points_at_the_sofa() {
    let sofa = ScriptedSofa::start().await;
    let id_map = Arc::new(MemoryIdMap::new());
    let launcher = launcher(&sofa, id_map.clone());
    let app = app(&[
        "launch",
        "launch/patient",
        "launch/encounter",
        "openid",
        "fhirUser",
        "patient/Observation.rs",
    ]);
    let launch = launcher.launch(&app, &clinical()).await.unwrap();

    // Sent with the PoC's bearer token, as a SetContextInputParameters the SoFA validated.
    let body = sofa.script().set_context_requests[0].clone();
    assert_eq!(sofa.script().bearer_tokens[0], "Bearer poc-token");
    assert_eq!(parameter(&body, "appID")[0]["valueString"], "459-L");
    assert_eq!(
        parameter(&body, "need_patient_banner")[0]["valueBoolean"],
        false
    );
    let entries = parameter(&body, "resources")[0]["resource"]["entry"]
        .as_array()
        .unwrap()
        .clone();
    let full_url = |kind: &str| {
        entries
            .iter()
            .find(|e| e["resource"]["resourceType"] == kind)
            .map(|e| e["fullUrl"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert_eq!(
        entries.len(),
        4,
        "patient, encounter, practitioner and one observation"
    );
    for entry in &entries {
        let url = entry["fullUrl"].as_str().unwrap();
        assert!(halo_model::set_context::is_urn_uuid(url), "{url}");
        assert_eq!(entry["request"]["method"], "POST");
        assert_eq!(entry["request"]["url"], entry["resource"]["resourceType"]);
        assert!(
            entry["resource"].get("id").is_none(),
            "local ids stay in the EMR"
        );
    }
    // Context parameters and references between resources point at the urn:uuid fullUrls.
    assert_eq!(
        parameter(&body, "patient")[0]["valueReference"]["reference"],
        full_url("Patient")
    );
    assert_eq!(
        parameter(&body, "encounter")[0]["valueReference"]["reference"],
        full_url("Encounter")
    );
    assert_eq!(
        parameter(&body, "fhirUser")[0]["valueReference"]["reference"],
        full_url("Practitioner")
    );
    let encounter = &entries
        .iter()
        .find(|e| e["resource"]["resourceType"] == "Encounter")
        .unwrap()["resource"];
    assert_eq!(encounter["subject"]["reference"], full_url("Patient"));
    assert_eq!(
        encounter["participant"][0]["individual"]["reference"],
        full_url("Practitioner")
    );

    // REQ: LI-01
    // The launch URL: the app's own query kept, iss = SoFA base, launch = the SoFA's id.
    let pairs: Vec<(String, String)> = launch.url.query_pairs().into_owned().collect();
    assert_eq!(
        pairs,
        [
            ("site".to_owned(), "bc".to_owned()),
            ("iss".to_owned(), sofa.base.clone()),
            ("launch".to_owned(), launch.launch_id.clone()),
        ]
    );

    // The id mapping, both ways (the scripted SoFA numbers entries in request order).
    assert_eq!(launch.mappings.len(), 4);
    assert_eq!(
        id_map.local_for("Patient/sofa-0").await.unwrap().as_deref(),
        Some("Patient/p7")
    );
    assert_eq!(
        id_map.sofa_for("Encounter/e3").await.unwrap().as_deref(),
        Some("Encounter/sofa-1")
    );
    assert_eq!(
        id_map.launch_of("Observation/sofa-3").await.unwrap(),
        Some(launch.launch_id.clone())
    );

    // A second launch reuses nothing by accident: new urn:uuids, same shape.
    let again = launcher.prepare(&app, &clinical()).await.unwrap();
    assert!(
        again
            .local_by_full_url
            .keys()
            .all(|u| !entries.iter().any(|e| e["fullUrl"] == *u))
    );
}

// REQ: LI-03
#[tokio::test]
async fn request_has_the_shape_of_third_party_set_context_requests() {
    let sofa = ScriptedSofa::start().await;
    let launcher = launcher(&sofa, Arc::new(MemoryIdMap::new()));
    let prepared = launcher
        .prepare(&app(&["launch/patient", "launch/encounter"]), &clinical())
        .await
        .unwrap();
    let ours = prepared.body();
    let theirs: Value = serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/halo/third-party-zedwerks/set-context-input-S.json"
        ))
        .unwrap(),
    )
    .unwrap();
    // Same profile, same parameter kinds, same entry layout.
    assert_eq!(ours["resourceType"], theirs["resourceType"]);
    assert_eq!(ours["meta"]["profile"], theirs["meta"]["profile"]);
    for name in ["patient", "encounter"] {
        let a = parameter(&ours, name)[0];
        let b = parameter(&theirs, name)[0];
        assert_eq!(a["valueReference"]["type"], b["valueReference"]["type"]);
        assert!(
            a["valueReference"]["reference"]
                .as_str()
                .unwrap()
                .starts_with("urn:uuid:")
        );
    }
    let bundle = |body: &Value| parameter(body, "resources")[0]["resource"].clone();
    assert_eq!(bundle(&ours)["type"], bundle(&theirs)["type"]);
    assert_eq!(
        bundle(&ours)["meta"]["profile"],
        bundle(&theirs)["meta"]["profile"]
    );
    let keys = |entry: &Value| {
        let mut keys: Vec<String> = entry.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(
        keys(&bundle(&ours)["entry"][0]),
        keys(&bundle(&theirs)["entry"][0])
    );
    // And the third party's own request passes the validator ours is checked with.
    halo_model::set_context::SetContextRequest::parse(
        &theirs,
        &halo_model::set_context::ValidationOptions::default(),
    )
    .unwrap();
}

// REQ: LI-03
#[tokio::test]
async fn missing_context_and_sofa_refusals_are_reported_with_codes() {
    let sofa = ScriptedSofa::start().await;
    let launcher = launcher(&sofa, Arc::new(MemoryIdMap::new()));
    // The app needs an encounter; none is open.
    let error = launcher
        .launch(
            &app(&["launch/encounter"]),
            &ClinicalContext::default().with("Patient/p7"),
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), "poc.missing-context");
    assert!(sofa.script().set_context_requests.is_empty());
    // The EMR has no such patient.
    let error = launcher
        .launch(
            &app(&["launch/patient"]),
            &ClinicalContext::default().with("Patient/gone"),
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), "poc.local-resource");

    // A SoFA that is not there: a network error, no panic, quickly.
    let client = SofaClient::new(
        "http://127.0.0.1:9/fhir",
        Arc::new(StaticToken::new("t")),
        HttpOptions {
            timeout: std::time::Duration::from_millis(500),
            connect_timeout: std::time::Duration::from_millis(200),
            ..HttpOptions::default()
        },
    )
    .unwrap();
    let dead = SofaLauncher::new(client, Arc::new(emr()), Arc::new(MemoryIdMap::new()));
    let error = dead
        .launch(&app(&["launch/patient"]), &clinical())
        .await
        .unwrap_err();
    assert!(
        matches!(error.code(), "poc.network" | "poc.timeout"),
        "{error}"
    );
    assert!(error.is_transient());
}

// REQ: LI-08
#[tokio::test]
async fn clear_context_accepts_both_answer_shapes_and_reports_failures() {
    let sofa = ScriptedSofa::start().await;
    let id_map = Arc::new(MemoryIdMap::new());
    let launcher = launcher(&sofa, id_map.clone());
    let app = app(&["launch/patient"]);
    let launch = launcher.launch(&app, &clinical()).await.unwrap();

    let report = launcher.end(&launch).await;
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(
        sofa.script().clear_requests[0]["parameter"][0],
        json!({"name": "launchID", "valueString": launch.launch_id})
    );

    sofa.script().clear_shape = Some(ClearShape::Bare);
    let report = launcher.end(&launch).await;
    assert!(report.succeeded(), "{report:?}");

    sofa.script().clear_shape = Some(ClearShape::Fail);
    let report = launcher.end(&launch).await;
    assert!(!report.succeeded());
    let error = report.result.unwrap_err();
    assert_eq!(error.code(), "poc.rejected");
    assert!(
        error.to_string().contains("database unavailable"),
        "{error}"
    );

    // The mappings outlive the clear for a grace period: notifications may still arrive.
    assert!(id_map.local_for("Patient/sofa-0").await.unwrap().is_some());
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(11 * 60);
    assert_eq!(id_map.purge(later).await.unwrap(), 2, "patient and user");
}

// REQ: LI-04
#[tokio::test]
async fn an_answer_without_ids_fails_the_launch_and_gives_the_context_back() {
    let sofa = ScriptedSofa::start().await;
    let id_map = Arc::new(MemoryIdMap::new());
    let launcher = launcher(&sofa, id_map.clone());
    sofa.script().omit_resources_response = true;
    let error = launcher
        .launch(&app(&["launch/patient"]), &clinical())
        .await
        .unwrap_err();
    assert_eq!(error.code(), "poc.invalid-response");
    assert!(error.to_string().contains("resourcesResponse"), "{error}");
    assert_eq!(sofa.script().clear_requests.len(), 1, "context cleared");
    assert_eq!(id_map.local_for("Patient/sofa-0").await.unwrap(), None);
}
