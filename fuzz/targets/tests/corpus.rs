//! Replays every committed fuzz corpus file (`fuzz/corpus/<target>/`) through the same target
//! body libFuzzer runs, on stable Rust: an input that once crashed a parser is kept in its
//! corpus, so the fix cannot regress unnoticed.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use halo_fuzz_targets::TARGETS;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corpus")
        .join(target)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

// REQ: HARD-01
#[test]
fn every_corpus_file_replays_without_a_panic() {
    let mut failures = Vec::new();
    let mut replayed = 0;
    for (name, body) in TARGETS {
        let inputs = files(&corpus_dir(name));
        assert!(
            !inputs.is_empty(),
            "fuzz target {name} has no corpus in fuzz/corpus/{name}"
        );
        for path in inputs {
            let data = match std::fs::read(&path) {
                Ok(data) => data,
                Err(e) => panic!("{}: {e}", path.display()),
            };
            replayed += 1;
            if catch_unwind(AssertUnwindSafe(|| body(&data))).is_err() {
                failures.push(path.display().to_string());
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {replayed} corpus files panic:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// REQ: HARD-01
#[test]
fn every_target_has_a_cargo_fuzz_binary() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let manifest = std::fs::read_to_string(fuzz.join("Cargo.toml")).unwrap_or_default();
    for (name, _) in TARGETS {
        let binary = fuzz.join("fuzz_targets").join(format!("{name}.rs"));
        let source = std::fs::read_to_string(&binary).unwrap_or_default();
        assert!(
            source.contains(&format!("target(\"{name}\")")),
            "{} must run target {name}",
            binary.display()
        );
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no [[bin]] {name}"
        );
    }
}
