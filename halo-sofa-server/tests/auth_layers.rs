//! The authorization server's layering, read from its `use` lines: the decisions in
//! `src/auth/decide/` do no I/O (no axum, no store transaction, no HTTP client, no async), and
//! nothing under `src/auth/` reaches up into the HTTP, FHIR, subscription or context layers or
//! into the module that assembles it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The code of a file without its comments (doc examples may name anything).
fn code(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn auth_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/auth")
}

#[test]
fn the_decisions_do_no_io() {
    let files = sources(&auth_dir().join("decide"));
    assert!(files.len() >= 5, "{files:?}");
    for file in files {
        let code = code(&file);
        for forbidden in [
            "axum",
            "reqwest",
            "tokio",
            "async ",
            ".await",
            "dyn Store",
            "Transaction",
            "std::fs",
            "std::net",
            "Instant::now",
            "Utc::now()",
        ] {
            // Tests may take the time of day as their `now`.
            let checked = code.split("#[cfg(test)]").next().unwrap();
            assert!(
                !checked.contains(forbidden),
                "{} uses {forbidden}: decisions take plain values and `now`",
                file.display()
            );
        }
    }
}

#[test]
fn auth_imports_only_the_layers_below_it() {
    for file in sources(&auth_dir()) {
        let code = code(&file);
        for upward in [
            "crate::http",
            "crate::fhir",
            "crate::subscriptions",
            "crate::context",
            "super::super",
        ] {
            assert!(
                !code.contains(upward),
                "{} imports {upward}",
                file.display()
            );
        }
        let name = file.file_name().unwrap().to_str().unwrap();
        // Only the assembler and the module list know the assembler.
        if !matches!(name, "server.rs" | "mod.rs") {
            assert!(
                !code.contains("super::server") && !code.contains("auth::server"),
                "{} imports the assembling module",
                file.display()
            );
        }
    }
}
