//! A generated catalog of 1,200 entries with a known mix of faults, checked finding by finding.
// Test helpers may unwrap: a panic is a test failure (clippy.toml allows it in #[test] only).
#![allow(clippy::unwrap_used)]

mod common;

use common::clean_entry;
use halo_catalog::{Catalog, CatalogError, Mode, Severity, validate_catalog};
use serde_json::{Value, json};

const ENTRIES: usize = 1_200;
const KINDS: usize = 12;

fn uuid(i: usize) -> String {
    format!("{i:08x}-0000-4000-8000-{i:012x}")
}

/// Entry `i` with fault `i % KINDS`, and the findings that fault must produce.
fn entry(i: usize) -> (Value, Vec<(Severity, &'static str, String)>) {
    let mut e = clean_entry();
    e["id"] = json!(uuid(i));
    e["name"] = json!(format!("Generated App {i}"));
    e["launchUrl"] = json!(format!("https://app{i}.example.com/launch"));
    let at = |field: &str| format!("$[{i}]{field}");
    let (err, warn, info) = (Severity::Error, Severity::Warning, Severity::Info);
    let expected = match i % KINDS {
        0 => vec![],
        1 => {
            e.as_object_mut().unwrap().remove("name");
            vec![(err, "missing-field", at(".name"))]
        }
        2 => {
            // Variant nibble `c`: the Microsoft GUID variant, not RFC 4122.
            e["id"] = json!(format!("{i:08x}-0000-4000-c000-{i:012x}"));
            vec![(err, "invalid-uuid", at(".id"))]
        }
        3 => {
            e["launchUrl"] = json!(format!("http://app{i}.example.com/launch"));
            vec![(err, "launch-url-not-https", at(".launchUrl"))]
        }
        4 => {
            e["contacts"][0].as_object_mut().unwrap().remove("email");
            vec![
                (warn, "contact-without-channel", at(".contacts[0]")),
                (err, "missing-contact-email", at(".contacts")),
            ]
        }
        5 => {
            e["scopes"][2] = json!("patient/Observation.sr");
            vec![(err, "invalid-scope", at(".scopes[2]"))]
        }
        6 => {
            e["publisher"]["id"] = json!(format!("publisher-{i}"));
            vec![(warn, "publisher-id-not-uuid", at(".publisher.id"))]
        }
        7 => {
            // Same UUID as the entry before it, upper-cased.
            e["id"] = json!(uuid(i - 1).to_ascii_uppercase());
            vec![(err, "duplicate-id", at(".id"))]
        }
        8 => {
            e["name"] = json!("N".repeat(151));
            vec![(err, "too-long", at(".name"))]
        }
        9 => {
            e["scopes"][10] = json!("patient/Observation.rs?category=laboratory");
            vec![(info, "scope-query-ignored", at(".scopes[10]"))]
        }
        10 => {
            e["translations"] = json!({ "fr": { "name": "Ap" }, "fr_CA": { "name": "Appli" } });
            vec![
                (err, "too-short", at(".translations.fr.name")),
                (err, "invalid-language-tag", at(".translations.fr_CA")),
            ]
        }
        _ => {
            e.as_object_mut().unwrap().remove("iconUrl");
            e["contacts"][0]["email"] = json!("support(at)example.com");
            e["vendorRating"] = json!(4.5);
            vec![
                (err, "missing-field", at(".iconUrl")),
                (err, "invalid-email", at(".contacts[0].email")),
                (info, "unknown-field", at(".vendorRating")),
            ]
        }
    };
    (e, expected)
}

fn generated() -> (Vec<u8>, Vec<(Severity, &'static str, String)>) {
    let mut items = Vec::with_capacity(ENTRIES);
    let mut expected = Vec::new();
    for i in 0..ENTRIES {
        let (e, mut findings) = entry(i);
        items.push(e);
        expected.append(&mut findings);
    }
    (serde_json::to_vec(&Value::Array(items)).unwrap(), expected)
}

// REQ: CAT-08
// REQ: CAT-09
#[test]
fn every_expected_finding_and_nothing_else() {
    let (bytes, expected) = generated();
    let doc: Value = serde_json::from_slice(&bytes).unwrap();
    let report = validate_catalog(&doc);
    let got: Vec<_> = report
        .findings
        .iter()
        .map(|f| (f.severity, f.code.as_str(), f.path.clone()))
        .collect();
    assert_eq!(got.len(), expected.len());
    for (n, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "finding {n}");
    }
    // Each finding names the entry its path starts with.
    for f in &report.findings {
        let entry = f.entry.unwrap();
        assert!(f.path.starts_with(&format!("$[{entry}]")), "{f:?}");
    }
}

// REQ: CAT-09
#[test]
fn lenient_mode_keeps_exactly_the_entries_without_errors() {
    let (bytes, _) = generated();
    let parsed = Catalog::parse(&bytes, Mode::Lenient).unwrap();
    let clean_kinds = [0, 6, 9];
    let expected: Vec<usize> = (0..ENTRIES)
        .filter(|i| clean_kinds.contains(&(i % KINDS)))
        .collect();
    assert_eq!(parsed.source_indices, expected);
    assert_eq!(parsed.catalog.len(), ENTRIES / KINDS * clean_kinds.len());
    for (entry, i) in parsed.catalog.iter().zip(&parsed.source_indices) {
        assert_eq!(entry.name, format!("Generated App {i}"));
    }
    match Catalog::parse(&bytes, Mode::Strict) {
        Err(CatalogError::Invalid(report)) => {
            assert_eq!(report.findings, parsed.report.findings);
            assert_eq!(report.count(Severity::Error), ENTRIES / KINDS * 11);
        }
        other => panic!("strict mode must reject the catalog: {other:?}"),
    }
}
