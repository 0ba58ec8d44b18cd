//! Scopes written by others: the SMART 2.1 examples and a third-party HALO token response.

use std::path::PathBuf;

use super::*;

fn fixture(relative: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// Every scope string in the SMART fixtures: token responses' and introspection's `scope`,
/// `authorization_details[].scope`, and smart-configuration `scopes_supported`.
fn smart_fixture_scope_strings() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/smart");
    let mut found = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    for name in names {
        let json = fixture(&format!("smart/{name}"));
        collect_scopes(&json, &name, &mut found);
    }
    found
}

fn collect_scopes(json: &serde_json::Value, file: &str, out: &mut Vec<(String, String)>) {
    match json {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("scope", serde_json::Value::String(s)) => {
                        out.push((file.to_owned(), s.clone()));
                    }
                    ("scopes_supported", serde_json::Value::Array(items)) => {
                        for item in items {
                            out.push((file.to_owned(), item.as_str().unwrap().to_owned()));
                        }
                    }
                    _ => collect_scopes(value, file, out),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                collect_scopes(item, file, out);
            }
        }
        _ => {}
    }
}

// REQ: SCP-06
#[test]
fn every_smart_fixture_scope_parses_and_round_trips() {
    let strings = smart_fixture_scope_strings();
    // Token responses, introspection, authorization_details and three smart-configurations.
    assert!(strings.len() >= 20, "found only {}", strings.len());
    for (file, text) in &strings {
        let set = ScopeSet::parse(text).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(&set.to_string(), text, "{file}");
    }
}

// REQ: SCP-01
// REQ: SCP-03
#[test]
fn smart_token_response_grants_what_the_example_app_needs() {
    let json = fixture("smart/token-response.public.json");
    let granted: ScopeSet = serde_json::from_value(json["scope"].clone()).unwrap();
    assert_eq!(granted.context_types(), ["Patient"]);
    assert!(granted.permits(Level::Patient, "Observation", Interaction::Search));
    assert!(granted.permits(Level::Patient, "Patient", Interaction::Read));
    assert!(!granted.permits(Level::Patient, "Condition", Interaction::Read));
    assert!(!granted.permits(Level::Patient, "Observation", Interaction::Update));
    assert!(!granted.has_refresh_scope());

    let refreshed = fixture("smart/token-response.public.refresh.json");
    let refreshed: ScopeSet = serde_json::from_value(refreshed["scope"].clone()).unwrap();
    assert_eq!(
        granted.not_granted(&refreshed),
        ScopeSet::new(),
        "a refresh keeps every scope"
    );
    assert_eq!(
        refreshed.not_granted(&granted).to_string(),
        "offline_access"
    );
}

// REQ: SCP-02
#[test]
fn v1_introspection_scope_reads_as_v2_access() {
    let json = fixture("smart/introspection-response.json");
    let scope = json["scope"].as_str().unwrap();
    assert_eq!(scope, "patient/*.read openid fhirUser");
    let set = ScopeSet::parse(scope).unwrap();
    assert!(set.permits(Level::Patient, "AllergyIntolerance", Interaction::Read));
    assert!(set.permits(Level::Patient, "AllergyIntolerance", Interaction::Search));
    assert!(!set.permits(Level::Patient, "AllergyIntolerance", Interaction::Create));
    assert!(set.resource_scopes().all(ResourceScope::is_v1));
    assert_eq!(set.to_string(), scope, "v1 text is kept for the echo");
}

// REQ: SCP-05
#[test]
fn backend_services_grant_system_level_only() {
    let json = fixture("smart/token-response.backend-services.json");
    let set = ScopeSet::parse(json["scope"].as_str().unwrap()).unwrap();
    assert!(set.permits(Level::System, "Patient", Interaction::Read));
    assert!(set.permits(Level::System, "Observation", Interaction::Search));
    assert!(!set.permits(Level::System, "Observation", Interaction::Create));
    assert!(!set.permits(Level::Patient, "Observation", Interaction::Read));
    assert!(!set.permits(Level::User, "Observation", Interaction::Read));
}

// REQ: SCP-05
#[test]
fn authorization_details_scopes_compare_with_the_token_scope() {
    // SMART 2.2: the second location (a FHIR R2 server) was granted its own scopes.
    let json = fixture("smart/v2.2-only.token-response.authorization_details.json");
    let top = ScopeSet::parse(json["scope"].as_str().unwrap()).unwrap();
    let r2 = ScopeSet::parse(json["authorization_details"][1]["scope"].as_str().unwrap()).unwrap();
    assert_eq!(
        top.intersection(&r2).to_string(),
        "launch/patient patient/Patient.rs"
    );
    assert_eq!(
        r2.not_granted(&top).to_string(),
        "patient/MedicationOrder.rs"
    );
    assert!(r2.permits(Level::Patient, "MedicationOrder", Interaction::Search));
    assert!(!top.permits(Level::Patient, "MedicationOrder", Interaction::Search));
}

// REQ: SCP-04
#[test]
fn third_party_halo_token_response_scopes() {
    let json = fixture("halo/third-party-zedwerks/halo-smart-token-response.redacted.json");
    let text = json["scope"].as_str().unwrap();
    assert_eq!(text, "profile email openid launch");
    let set = ScopeSet::parse(text).unwrap();
    let scopes: Vec<_> = set.iter().cloned().collect();
    assert_eq!(
        scopes,
        [
            Scope::Profile,
            Scope::Email,
            Scope::OpenId,
            Scope::Context(ContextScope::launch())
        ]
    );
    assert!(set.has_launch());
    assert!(set.has_openid());
    assert!(!set.has_fhir_user());
    // No resource scope was granted, so the app may read nothing at any level.
    for level in Level::ALL {
        assert!(!set.permits(level, "Patient", Interaction::Read));
    }
    assert_eq!(set.to_string(), text);
}
