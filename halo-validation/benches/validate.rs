//! Validation throughput on the Bundle of the third-party XL `$set-context` request (7 resources),
//! next to the cost of only parsing the same bytes into `serde_json::Value` (the floor any
//! validator starts from), plus the one-off cost of compiling the embedded definitions.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use halo_model::fhir::RawResource;
use halo_validation::{Definitions, Validator};
use serde_json::Value;

const XL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/halo/third-party-zedwerks/set-context-input-XL.json"
);

/// The `resources` parameter's Bundle, as bytes.
fn bundle_bytes() -> Vec<u8> {
    let bytes = std::fs::read(XL).unwrap_or_default();
    let parameters: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let bundle = parameters["parameter"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "resources"))
        .map(|p| p["resource"].clone())
        .unwrap_or_default();
    serde_json::to_vec(&bundle).unwrap_or_default()
}

fn bench(c: &mut Criterion) {
    let bytes = bundle_bytes();
    let bundle: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let resources = bundle["entry"].as_array().map_or(0, Vec::len) as u64 + 1;
    let validator = Validator::with_embedded_definitions();

    let mut group = c.benchmark_group("set_context_xl_bundle");
    group.throughput(Throughput::Elements(resources));
    group.bench_function("serde_json_value_parse", |b| {
        b.iter(|| serde_json::from_slice::<Value>(black_box(&bytes)).map(|v| v.is_object()))
    });
    group.bench_function("validate", |b| {
        b.iter(|| validator.validate_value(black_box(&bundle)).issues.len())
    });
    // The SoFA's seam: each entry on its own, as a RawResource (no Bundle-level checks).
    let entries: Vec<RawResource> = bundle["entry"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter_map(|e| RawResource::from_value(e["resource"].clone()).ok())
                .collect()
        })
        .unwrap_or_default();
    group.bench_function("validate_each_entry", |b| {
        b.iter(|| {
            entries
                .iter()
                .map(|entry| validator.validate(black_box(entry)).issues.len())
                .sum::<usize>()
        })
    });
    group.bench_function("parse_and_validate", |b| {
        b.iter(|| {
            serde_json::from_slice::<Value>(black_box(&bytes))
                .map(|v| validator.validate_value(&v).issues.len())
        })
    });
    group.finish();

    let mut load = c.benchmark_group("definitions");
    load.sample_size(10);
    load.bench_function("compile_embedded", |b| {
        b.iter(|| Definitions::embedded().map(|d| d.resource_types().len()))
    });
    load.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
