//! Throughput of catalog validation on a 10,000-entry catalog, next to the cost of only parsing
//! the same bytes into `serde_json::Value` (the floor any validator starts from).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use halo_catalog::{Catalog, Mode, validate_catalog};
use serde_json::{Value, json};
use std::hint::black_box;

const ENTRIES: usize = 10_000;

/// A realistic entry; every 10th one has a fault, so the error paths are measured too.
fn entry(i: usize) -> Value {
    let mut e = json!({
        "id": format!("{:08x}-0000-4000-8000-{:012x}", i, i),
        "name": format!("Clinical App {i}"),
        "description": "A comprehensive application for monitoring and managing heart health, with trends, alerts and a care plan the team can update.",
        "descriptionShort": "Monitor heart health",
        "tags": ["cardiology", "monitoring", "health"],
        "helpUrl": format!("https://app{i}.example.com/help-manual"),
        "iconUrl": format!("https://app{i}.example.com/icons/icon.png"),
        "screenshots": [format!("https://app{i}.example.com/screen1.png"), format!("https://app{i}.example.com/screen2.png")],
        "privacyPolicyUrl": format!("https://app{i}.example.com/privacy"),
        "termsOfServiceUrl": format!("https://app{i}.example.com/terms"),
        "launchUrl": format!("https://app{i}.example.com/launch"),
        "eligibilityCriteria": "The audience for this app is General Practitioners and Nurses.",
        "contacts": [
            { "email": "support@example.com", "title": "Customer Support" },
            { "url": format!("https://app{i}.example.com/chat"), "title": "Online Chat" },
            { "phone": "+01 111 222 3333", "title": "24 Hour Emergency Line" }
        ],
        "publisher": { "id": "0c8f4a2e-9d1b-4e7a-b3c5-6f2d8e1a9b04", "name": "Example Company Inc.", "url": "https://example.com" },
        "isEnrolling": i.is_multiple_of(2),
        "scopes": ["openid", "fhirUser", "launch", "launch/Patient", "launch/Organization",
            "user/Practitioner.r", "patient/Patient.r", "patient/Observation.rs",
            "patient/Condition.rs", "offline_access"],
        "translations": { "fr": { "name": format!("Application clinique {i}"), "descriptionShort": "Suivi cardiaque" } }
    });
    if i.is_multiple_of(10) {
        e["launchUrl"] = json!("http://example.com/launch");
        e["scopes"][2] = json!("patient/Observation.sr");
    }
    e
}

fn catalog_bytes() -> Vec<u8> {
    let doc = Value::Array((0..ENTRIES).map(entry).collect());
    serde_json::to_vec(&doc).unwrap_or_default()
}

fn bench(c: &mut Criterion) {
    let bytes = catalog_bytes();
    let doc: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let mut group = c.benchmark_group("catalog_10k");
    group.throughput(Throughput::Elements(ENTRIES as u64));
    group.sample_size(20);
    group.bench_function("serde_json_value_parse", |b| {
        b.iter(|| serde_json::from_slice::<Value>(black_box(&bytes)).map(|v| v.is_array()))
    });
    group.bench_function("validate_only", |b| {
        b.iter(|| validate_catalog(black_box(&doc)).findings.len())
    });
    group.bench_function("parse_validate_typed_lenient", |b| {
        b.iter(|| Catalog::parse(black_box(&bytes), Mode::Lenient).map(|p| p.catalog.len()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
