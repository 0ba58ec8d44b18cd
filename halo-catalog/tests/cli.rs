//! The `halo-catalog` tool, run in-process through `halo_catalog::cli::run`.
// Test helpers may unwrap: a panic is a test failure (clippy.toml allows it in #[test] only).
#![allow(clippy::unwrap_used)]
#![cfg(feature = "cli")]

mod common;

use common::{clean_entry, spec_example_entry};
use halo_catalog::cli::{EXIT_FAILURE, EXIT_INVALID, EXIT_OK, run};
use serde_json::{Value, json};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/catalog.json");

fn tool(args: &[&str], terminal: bool) -> (u8, String, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut all = vec!["halo-catalog"];
    all.extend_from_slice(args);
    let code = run(all, &mut out, &mut err, terminal);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

fn write_temp(name: &str, doc: &Value) -> String {
    let path = std::env::temp_dir().join(format!("halo-catalog-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, serde_json::to_vec_pretty(doc).unwrap()).unwrap();
    path.to_string_lossy().into_owned()
}

// REQ: CAT-08
#[test]
fn validate_example_catalog_succeeds() {
    let (code, out, _) = tool(&["validate", EXAMPLE], false);
    assert_eq!(code, EXIT_OK, "{out}");
    assert!(
        out.contains("3 entries, 0 errors, 1 warning, 0 info"),
        "{out}"
    );
    assert!(out.contains("entry 0 Heart Health Monitor (fcf9956c-f952-40e0-8e24-a65d56118db2)"));
    assert!(out.contains("$[0].publisher.id  [publisher-id-not-uuid]"));
    assert!(out.contains("OK: all 3 entries valid"));
    assert!(!out.contains('\x1b'), "no colour when not on a terminal");
}

// REQ: CAT-08
#[test]
fn validate_reports_errors_grouped_by_entry_and_exits_1() {
    let mut bad = clean_entry();
    bad["id"] = json!("3f2b8c1e-6d4a-4f7b-9a2e-1c5d7e9f0a3b");
    bad["name"] = json!("X");
    bad["contacts"] = json!([{ "title": "Phone", "phone": "+1 555 0100" }]);
    let file = write_temp("bad.json", &json!([spec_example_entry(), bad]));
    let (code, out, _) = tool(&["validate", &file, "--color", "never"], false);
    assert_eq!(code, EXIT_INVALID, "{out}");
    let expected_tail = "\
entry 1 X (3f2b8c1e-6d4a-4f7b-9a2e-1c5d7e9f0a3b)
  error   $[1].name  [too-short]
          `name` has 1 characters; at least 3 are needed
  error   $[1].contacts  [missing-contact-email]
          no contact has an `email`; at least one contact must carry an email address
  error   $[1].contacts  [missing-contact-url]
          no contact has a `url`; at least one contact must carry a support URL

INVALID: 1 of 2 entries usable; fix the errors above
";
    assert!(out.ends_with(expected_tail), "{out}");

    // Colour on a terminal (and with --color always).
    let (_, coloured, _) = tool(&["validate", &file], true);
    assert!(coloured.contains("\x1b[1;31merror  \x1b[0m"), "{coloured}");
    let (_, forced, _) = tool(&["validate", &file, "--color", "always"], false);
    assert!(forced.contains('\x1b'));

    // JSON for machines.
    let (code, out, _) = tool(&["validate", &file, "--json"], true);
    assert_eq!(code, EXIT_INVALID);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["entries"], 2);
    assert_eq!(v["validEntries"], 1);
    assert_eq!(v["errors"], 3);
    assert_eq!(v["warnings"], 1);
    assert_eq!(v["findings"][1]["code"], "too-short");
    assert_eq!(v["findings"][1]["path"], "$[1].name");
    assert_eq!(v["findings"][1]["severity"], "error");
    assert_eq!(v["findings"][1]["entry"], 1);
}

// REQ: CAT-09
#[test]
fn broken_documents_and_missing_files() {
    let path = std::env::temp_dir().join(format!("halo-catalog-cli-{}-nojson", std::process::id()));
    std::fs::write(&path, b"[{\"id\": ").unwrap();
    let (code, out, _) = tool(&["validate", path.to_str().unwrap()], false);
    assert_eq!(code, EXIT_INVALID);
    assert!(out.contains("[invalid-json]"), "{out}");

    let file = write_temp("string.json", &json!("apps"));
    let (code, out, _) = tool(&["validate", &file], false);
    assert_eq!(code, EXIT_INVALID);
    assert!(
        out.contains("catalog\n  error   $  [not-an-array]"),
        "{out}"
    );

    // A lone entry object is checked as one entry, with paths from `$`.
    let mut lone = spec_example_entry();
    lone["name"] = json!("");
    let file = write_temp("lone.json", &lone);
    let (code, out, _) = tool(&["validate", &file, "--color", "never"], false);
    assert_eq!(code, EXIT_INVALID);
    assert!(out.contains("1 entry, 1 error, 1 warning"), "{out}");
    assert!(out.contains("  error   $.name  [empty-field]"), "{out}");
    lone["name"] = json!("Heart Health Monitor");
    let file = write_temp("lone-ok.json", &lone);
    let (code, out, _) = tool(&["validate", &file], false);
    assert_eq!(code, EXIT_OK, "{out}");

    let (code, _, err) = tool(&["validate", "/nonexistent/catalog.json"], false);
    assert_eq!(code, EXIT_FAILURE);
    assert!(
        err.contains("could not read `/nonexistent/catalog.json`"),
        "{err}"
    );

    let (code, _, err) = tool(&["frobnicate"], false);
    assert_eq!(code, EXIT_FAILURE);
    assert!(err.contains("frobnicate"), "{err}");
}

// REQ: CAT-10
#[test]
fn context_prints_what_the_poc_must_set() {
    let (code, out, _) = tool(
        &["context", EXAMPLE, "fcf9956c-f952-40e0-8e24-a65d56118db2"],
        false,
    );
    assert_eq!(code, EXIT_OK, "{out}");
    assert!(
        out.contains(
            "Launch context to set with $set-context\n  Patient, Organization, Location\n"
        ),
        "{out}"
    );
    assert!(out.contains("patient/Observation  read, search"), "{out}");
    assert!(out.contains("every scope can be satisfied"), "{out}");

    let (code, out, _) = tool(
        &["context", EXAMPLE, "9b7e6d5c-4a3b-4c2d-a1e0-f9e8d7c6b5a4"],
        false,
    );
    assert_eq!(code, EXIT_OK);
    assert!(
        out.contains(
            "  Patient, Practitioner, Organization, Location\n  (the app lists only `launch`"
        ),
        "{out}"
    );
    assert!(out.contains("patient/ImmunizationRecommendation.rs: the PoC cannot map ImmunizationRecommendation resources"), "{out}");

    let (code, out, _) = tool(
        &[
            "context",
            EXAMPLE,
            "3F2B8C1E-6D4A-4F7B-9A2E-1C5D7E9F0A3B",
            "--json",
        ],
        false,
    );
    assert_eq!(code, EXIT_OK);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["context"]["types"], json!(["Patient", "Encounter"]));
    assert_eq!(v["context"]["basis"], "explicit");
    assert_eq!(v["context"]["offlineAccess"], true);
    assert_eq!(v["resources"][3]["type"], "CarePlan");
    assert_eq!(
        v["resources"][3]["interactions"],
        json!(["create", "read", "update"])
    );

    let (code, out, _) = tool(
        &["context", EXAMPLE, "00000000-0000-4000-8000-000000000000"],
        false,
    );
    assert_eq!(code, EXIT_INVALID);
    assert!(out.contains("no entry with id"), "{out}");

    // An entry with errors is not analysed: the PoC would not launch it either.
    let mut bad = clean_entry();
    bad["launchUrl"] = json!("http://app.example.com/launch");
    let file = write_temp("context-bad.json", &json!([bad]));
    let (code, out, _) = tool(
        &["context", &file, "fcf9956c-f952-40e0-8e24-a65d56118db2"],
        false,
    );
    assert_eq!(code, EXIT_INVALID);
    assert!(
        out.contains("entry 0 (fcf9956c-f952-40e0-8e24-a65d56118db2) has errors"),
        "{out}"
    );
}

// REQ: CAT-13
#[test]
fn validate_fetches_a_url() {
    // The server runs on its own runtime: the tool starts one of its own for the fetch.
    let body = std::fs::read_to_string(EXAMPLE).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let app = axum::Router::new()
                .route("/catalog", axum::routing::get(move || async move { body }))
                .route(
                    "/down",
                    axum::routing::get(|| async {
                        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "maintenance")
                    }),
                );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let _ = axum::serve(listener, app).await;
        });
    });
    let addr = rx.recv().unwrap();
    let url = format!("http://{addr}/catalog");
    let (code, out, _) = tool(&["validate", &url], false);
    assert_eq!(code, EXIT_OK, "{out}");
    assert!(
        out.starts_with(&format!("{url}: 3 entries, 0 errors, 1 warning")),
        "{out}"
    );

    let (code, _, err) = tool(&["validate", &format!("http://{addr}/down")], false);
    assert_eq!(code, EXIT_FAILURE);
    assert!(err.contains("HTTP 503: maintenance"), "{err}");
}
