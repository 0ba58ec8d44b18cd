//! Shared test material: the HALO App Catalog page's example entry and helpers to break it.
// Test helpers may unwrap: a panic is a test failure (clippy.toml allows it in #[test] only).
#![allow(clippy::unwrap_used)]
#![allow(dead_code, unreachable_pub)]

use halo_catalog::{Code, Finding, Report, Severity};
use serde_json::{Value, json};

/// The HALO App Catalog page's example entry, verbatim.
pub fn spec_example_entry() -> Value {
    json!({
        "id": "fcf9956c-f952-40e0-8e24-a65d56118db2",
        "name": "Heart Health Monitor",
        "description": "A comprehensive application for monitoring and managing heart health.",
        "descriptionShort": "Monitor heart health",
        "tags": ["cardiology", "monitoring", "health"],
        "helpUrl": "https://heart.example.com/help-manual",
        "iconUrl": "https://heart.example.com/icons/heart-health.png",
        "screenshots": [
            "https://heart.example.com/screen1.png",
            "https://heart.example.com/screen2.png",
            "https://heart.example.com/screen3.png"
        ],
        "privacyPolicyUrl": "https://heart.example.com/privacy/heart-health",
        "termsOfServiceUrl": "https://heart.example.com/terms/heart-health",
        "launchUrl": "https://heart.example.com/launch/heart-health",
        "eligibilityCriteria": "The audience for this app is General Practitioners and Nurses.",
        "contacts": [
            { "email": "support@example.com", "title": "Customer Support" },
            { "url": "https://heart.example.com", "title": "Online Chat" },
            { "phone": "+01 111 222 3333", "title": "24 Hour Emergency Line" }
        ],
        "publisher": {
            "id": "6b4929be-a7c0-4a38-4a8e-53338dbcb7f5",
            "name": "Example Company Inc.",
            "url": "https://heart.example.com"
        },
        "isEnrolling": true,
        "scopes": [
            "openid", "fhirUser", "launch", "launch/Patient", "launch/Organization",
            "launch/Location", "user/Practitioner.r", "user/Organization.r", "user/Location.r",
            "patient/Patient.r", "patient/Observation.rs", "patient/Condition.rs", "offline_access"
        ]
    })
}

/// The example entry with a UUID publisher id, so a clean entry has no finding at all.
pub fn clean_entry() -> Value {
    let mut e = spec_example_entry();
    e["publisher"]["id"] = json!("0c8f4a2e-9d1b-4e7a-b3c5-6f2d8e1a9b04");
    e
}

/// `(severity, code, path)` of every finding, for exact comparisons.
pub fn triples(report: &Report) -> Vec<(Severity, &'static str, String)> {
    report
        .findings
        .iter()
        .map(|f: &Finding| (f.severity, f.code.as_str(), f.path.clone()))
        .collect()
}

/// `(code, path)` pairs, for brevity.
pub fn pairs(report: &Report) -> Vec<(&'static str, String)> {
    report
        .findings
        .iter()
        .map(|f| (f.code.as_str(), f.path.clone()))
        .collect()
}

/// Shorthand for an expected `(code, path)`.
pub fn p(code: Code, path: &str) -> (&'static str, String) {
    (code.as_str(), path.to_owned())
}
