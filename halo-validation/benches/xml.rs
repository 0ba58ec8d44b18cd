//! The FHIR XML format on the Bundle of the third-party XL `$set-context` request: reading and
//! writing XML next to reading and writing the same content as JSON with serde_json, the floor
//! any JSON server pays.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use halo_validation::xml::FhirXml;
use serde_json::Value;

const XL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/halo/third-party-zedwerks/set-context-input-XL.json"
);

fn bench(c: &mut Criterion) {
    let bytes = std::fs::read(XL).unwrap_or_default();
    let parameters: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let json = serde_json::to_vec(&parameters).unwrap_or_default();
    let format = FhirXml::embedded();
    let xml = format.to_xml(&parameters).unwrap_or_default();

    let mut group = c.benchmark_group("set_context_xl_parameters");
    group.throughput(Throughput::Bytes(json.len() as u64));
    group.bench_function("json_read", |b| {
        b.iter(|| serde_json::from_slice::<Value>(black_box(&json)).is_ok())
    });
    group.bench_function("xml_read", |b| {
        b.iter(|| format.from_xml(black_box(xml.as_bytes())).is_ok())
    });
    group.bench_function("json_write", |b| {
        b.iter(|| serde_json::to_vec(black_box(&parameters)).map(|v| v.len()))
    });
    group.bench_function("xml_write", |b| {
        b.iter(|| format.to_xml(black_box(&parameters)).map(|v| v.len()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
