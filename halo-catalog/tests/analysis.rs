//! Scope analysis and queries over the example catalog.
// Test helpers may unwrap: a panic is a test failure (clippy.toml allows it in #[test] only).
#![allow(clippy::unwrap_used)]

mod common;

use common::clean_entry;
use halo_catalog::analysis::{
    ContextBasis, Gap, PocCapabilities, ScopeGap, compatibility, required_context, resource_access,
    resource_types,
};
use halo_catalog::{AppEntry, Catalog, Mode, Query};
use halo_model::scope::{Interaction, Level, Permissions, ResourceType};
use serde_json::json;

fn with_scopes(scopes: &[&str]) -> AppEntry {
    let mut e = clean_entry();
    e["scopes"] = json!(scopes);
    serde_json::from_value(e).unwrap()
}

fn example() -> Catalog {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/catalog.json"
    ))
    .unwrap();
    Catalog::parse(&bytes, Mode::Strict).unwrap().catalog
}

// REQ: CAT-10
#[test]
fn launch_type_scopes_name_the_minimum_context_in_any_case() {
    let e = with_scopes(&[
        "launch",
        "launch/patient",
        "launch/Encounter",
        "launch/PATIENT",
        "openid",
    ]);
    let ctx = required_context(&e);
    assert_eq!(ctx.types, ["Patient", "Encounter"]);
    assert_eq!(ctx.basis, ContextBasis::Explicit);
    assert!(!ctx.only_if_present());
    assert!(!ctx.user_identity); // openid without fhirUser
    assert!(!ctx.offline_access);

    // Without the bare `launch`, launch/<type> still names the context.
    let e = with_scopes(&[
        "launch/organization",
        "fhirUser",
        "openid",
        "offline_access",
    ]);
    let ctx = required_context(&e);
    assert_eq!(ctx.types, ["Organization"]);
    assert!(ctx.user_identity);
    assert!(ctx.offline_access);
}

// REQ: CAT-10
#[test]
fn launch_alone_means_patient_practitioner_organization_location_when_present() {
    let e = with_scopes(&["launch", "patient/Observation.rs"]);
    let ctx = required_context(&e);
    assert_eq!(
        ctx.types,
        ["Patient", "Practitioner", "Organization", "Location"]
    );
    assert_eq!(ctx.basis, ContextBasis::LaunchOnly);
    assert!(ctx.only_if_present());

    let e = with_scopes(&["patient/Observation.rs"]);
    let ctx = required_context(&e);
    assert!(ctx.types.is_empty());
    assert_eq!(ctx.basis, ContextBasis::NoLaunch);
    // No scopes at all.
    let mut v = clean_entry();
    v.as_object_mut().unwrap().remove("scopes");
    let e: AppEntry = serde_json::from_value(v).unwrap();
    assert_eq!(required_context(&e).basis, ContextBasis::NoLaunch);
}

// REQ: CAT-10
#[test]
fn the_spec_example_entry_needs_patient_organization_location() {
    let heart = example();
    let heart = heart.get("fcf9956c-f952-40e0-8e24-a65d56118db2").unwrap();
    let ctx = required_context(heart);
    assert_eq!(ctx.types, ["Patient", "Organization", "Location"]);
    assert!(ctx.user_identity && ctx.offline_access);
}

// REQ: CAT-11
#[test]
fn resource_types_and_interactions_from_resource_scopes() {
    let e = with_scopes(&[
        "launch",
        "patient/Observation.rs",
        "patient/Observation.c",
        "user/Observation.read",
        "patient/Condition.rs?clinical-status=active",
        "system/*.s",
        "openid",
        "not a scope",
    ]);
    let access = resource_access(&e);
    let shown: Vec<String> = access.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "patient/Observation.crs",
            "user/Observation.rs",
            "patient/Condition.rs (query-restricted)",
            "system/*.s",
        ]
    );
    assert_eq!(access[0].level, Level::Patient);
    assert!(access[0].permissions.contains(Interaction::Create));
    assert!(!access[0].permissions.contains(Interaction::Update));
    assert_eq!(access[3].resource_type, ResourceType::Any);
    assert_eq!(
        access[3].permissions,
        Permissions::from(Interaction::Search)
    );
    assert_eq!(
        resource_types(&e),
        [
            ResourceType::Named("Observation".into()),
            ResourceType::Named("Condition".into()),
            ResourceType::Any,
        ]
    );
}

// REQ: CAT-12
#[test]
fn compatibility_lists_what_the_poc_cannot_satisfy() {
    let e = with_scopes(&[
        "openid",
        "fhirUser",
        "launch/Patient",
        "launch/Encounter",
        "patient/Observation.rs",
        "patient/ImagingStudy.rs",
        "user/*.r",
        "https://ext.example/scope",
    ]);
    let poc = PocCapabilities::new(["Patient", "Observation"], ["Patient"]);
    let c = compatibility(&e, &poc);
    assert!(!c.is_compatible());
    let gap = |scope: &str, gap: Gap| ScopeGap {
        scope: scope.to_owned(),
        gap,
    };
    assert_eq!(
        c.unsatisfied,
        [
            gap("fhirUser", Gap::ContextType("Practitioner".into())),
            gap("launch/Encounter", Gap::ContextType("Encounter".into())),
            gap(
                "patient/ImagingStudy.rs",
                Gap::ResourceType("ImagingStudy".into())
            ),
        ]
    );
    assert_eq!(
        c.partial,
        [
            gap("user/*.r", Gap::Wildcard),
            gap("https://ext.example/scope", Gap::Extension),
        ]
    );

    // `launch` alone: missing default types are partial, not blocking.
    let e = with_scopes(&["launch", "patient/Observation.rs"]);
    let c = compatibility(&e, &poc);
    assert!(c.is_compatible());
    assert_eq!(
        c.partial,
        [
            gap("launch", Gap::DefaultContextType("Practitioner".into())),
            gap("launch", Gap::DefaultContextType("Organization".into())),
            gap("launch", Gap::DefaultContextType("Location".into())),
        ]
    );

    // The whole example catalog against the SDK's defaults (D-14).
    let catalog = example();
    let defaults = PocCapabilities::halo_default();
    let verdicts: Vec<bool> = catalog
        .iter()
        .map(|e| compatibility(e, &defaults).is_compatible())
        .collect();
    assert_eq!(verdicts, [true, true, false]);
}

// REQ: CAT-15
#[test]
fn queries_by_tag_text_and_enrolment() {
    let catalog = example();
    let names = |v: Vec<&AppEntry>| v.into_iter().map(|e| e.name.clone()).collect::<Vec<_>>();
    // Tag: case and accents ignored both ways.
    assert_eq!(
        names(catalog.with_tag("CARDIOLOGY")),
        ["Heart Health Monitor"]
    );
    assert_eq!(
        names(catalog.with_tag("medication")),
        ["Diabetes Care Companion"]
    );
    assert_eq!(
        names(catalog.with_tag(" Médication ")),
        ["Diabetes Care Companion"]
    );
    assert!(catalog.with_tag("cardio").is_empty()); // whole tags only
    // Text: every word, in name or descriptions, any language.
    assert_eq!(
        names(catalog.search("heart MONITOR")),
        ["Heart Health Monitor"]
    );
    assert_eq!(
        names(catalog.search("diabete")),
        ["Diabetes Care Companion"]
    );
    assert_eq!(
        names(catalog.search("suivi du diabète")),
        ["Diabetes Care Companion"]
    );
    assert_eq!(
        names(catalog.search("vaccines due")),
        ["Immunization Forecaster"]
    );
    assert!(catalog.search("heart vaccines").is_empty());
    // Enrolment.
    assert_eq!(
        names(catalog.enrolling()),
        ["Heart Health Monitor", "Diabetes Care Companion"]
    );
    let q = Query::new().enrolling(false);
    assert_eq!(
        catalog
            .query(&q)
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>(),
        ["Immunization Forecaster"]
    );
    let q = Query::new().tag("health").text("heart").enrolling(true);
    assert_eq!(catalog.query(&q).count(), 1);
    assert_eq!(catalog.query(&Query::new()).count(), 3);
}
