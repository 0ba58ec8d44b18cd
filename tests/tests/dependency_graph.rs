//! The workspace's dependency rules, checked on the real dependency graph with `cargo tree`:
//! crates that do not need typed FHIR resources must not pull in `fhir-model` (minutes of
//! compile time), and dependencies point one way (ARCHITECTURE.md).

#![allow(clippy::expect_used)] // test helpers may fail loudly

use std::process::Command;

/// The normal (non-dev) dependencies of `package`, one crate name per line, with its features
/// as cargo resolves them for that package alone.
fn dependencies(package: &str, extra: &[&str]) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "tree", "-e", "normal", "--prefix", "none", "--format", "{p}", "-p",
        ])
        .arg(package)
        .args(extra)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn halo_model_without_default_features_has_no_fhir_model() {
    let deps = dependencies("halo-model", &["--no-default-features"]);
    assert!(deps.iter().any(|d| d == "serde_json"), "{deps:?}");
    assert!(!deps.iter().any(|d| d == "fhir-model"), "{deps:?}");
    // And with its default features it does have it: the check above can fail.
    let deps = dependencies("halo-model", &[]);
    assert!(deps.iter().any(|d| d == "fhir-model"), "{deps:?}");
}

#[test]
fn app_side_crates_build_without_fhir_model() {
    for package in ["halo-catalog", "halo-smart-client"] {
        let deps = dependencies(package, &[]);
        assert!(
            deps.iter().any(|d| d == "halo-model"),
            "{package}: {deps:?}"
        );
        assert!(
            !deps.iter().any(|d| d == "fhir-model"),
            "{package} pulls in fhir-model: {deps:?}"
        );
    }
}

#[test]
fn dependencies_point_one_way() {
    let server = dependencies("halo-sofa-server", &[]);
    assert!(
        !server.iter().any(|d| d == "halo-smart-client"),
        "the server must not depend on the client crate"
    );
    let model = dependencies("halo-model", &[]);
    for crate_name in ["halo-catalog", "halo-smart-client", "halo-sofa-server"] {
        assert!(
            !model.iter().any(|d| d == crate_name),
            "halo-model depends on {crate_name}"
        );
    }
    let catalog = dependencies("halo-catalog", &[]);
    assert!(
        !catalog
            .iter()
            .any(|d| d == "halo-smart-client" || d == "halo-sofa-server")
    );
}
