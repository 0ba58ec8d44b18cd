//! Validates JSON files given on the command line and prints the findings; `--invariants` lists
//! the invariants of the embedded definitions and what of each is outside the FHIRPath subset.

use halo_validation::Validator;

fn main() {
    let started = std::time::Instant::now();
    let validator = Validator::with_embedded_definitions();
    println!(
        "loaded in {:?}; warnings: {:#?}",
        started.elapsed(),
        validator.definitions().warnings()
    );
    for path in std::env::args().skip(1) {
        if path == "--invariants" {
            let invariants = validator.definitions().invariants();
            let outside = invariants
                .iter()
                .filter(|i| !i.outside_subset.is_empty())
                .count();
            println!(
                "{} distinct invariants, {outside} with features outside the subset",
                invariants.len()
            );
            for i in invariants {
                println!(
                    "{}\t{}\t{}\t{:?}",
                    i.key, i.severity, i.source, i.outside_subset
                );
            }
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else {
            println!("{path}: cannot read");
            continue;
        };
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            println!("{path}: not JSON");
            continue;
        };
        let report = validator.validate_value(&json);
        println!("== {path}: {} issue(s)", report.issues.len());
        for issue in &report.issues {
            println!("  {issue}");
        }
    }
}
