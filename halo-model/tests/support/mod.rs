//! Helpers shared by the fixture tests: read a shared fixture, list a JSON document's paths.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::BTreeSet;

use serde_json::Value;

/// Reads a JSON fixture under `fixtures/`.
pub fn fixture(relative: &str) -> Value {
    let path = format!("{}/../fixtures/{relative}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every file name in a fixture directory, sorted.
pub fn fixture_names(relative_dir: &str) -> Vec<String> {
    let dir = format!("{}/../fixtures/{relative_dir}", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The set of element paths of a JSON document (`entry[0].resource.parameter[1].name`), with
/// array positions kept, and every string found at a key named in `values_of` appended as
/// `path=value` (so profile URLs and codes are compared too). Paths under a key in `skip` are
/// left out.
pub fn paths(value: &Value, values_of: &[&str], skip: &[&str]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    walk(value, String::new(), values_of, skip, &mut out);
    out
}

fn walk(
    value: &Value,
    path: String,
    values_of: &[&str],
    skip: &[&str],
    out: &mut BTreeSet<String>,
) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if skip.contains(&key.as_str()) {
                    continue;
                }
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                out.insert(child_path.clone());
                if values_of.contains(&key.as_str())
                    && let Value::String(text) = child
                {
                    out.insert(format!("{child_path}={text}"));
                }
                walk(child, child_path, values_of, skip, out);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                let child_path = format!("{path}[{index}]");
                // A string in an array named in `values_of` (meta.profile) counts as its value.
                if let Value::String(text) = child {
                    let last = path.rsplit('.').next().unwrap_or_default();
                    if values_of.contains(&last) {
                        out.insert(format!("{child_path}={text}"));
                    }
                }
                walk(child, child_path, values_of, skip, out);
            }
        }
        _ => {}
    }
}

/// Asserts two documents have the same paths; the message lists what differs.
pub fn assert_same_shape(built: &Value, expected: &Value, values_of: &[&str], skip: &[&str]) {
    let built = paths(built, values_of, skip);
    let expected = paths(expected, values_of, skip);
    let missing: Vec<_> = expected.difference(&built).collect();
    let extra: Vec<_> = built.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "shape differs\n  missing from built: {missing:#?}\n  extra in built: {extra:#?}"
    );
}
