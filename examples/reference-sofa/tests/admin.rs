//! `reference-sofa admin ...` (REQ OPS-05) run as its own process against the SQLite file of a
//! running reference SoFA; each change is observed through that SoFA's HTTP API, without a
//! restart: a client registered by the command gets a token, disabled it is refused, a TOML
//! client disabled too; a key rotation changes the JWKS; launches are listed and cleared;
//! expired launches are purged; the audit log is exported as JSON lines.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use halo_sofa_server::store::LaunchRecord;
use reference_sofa::{Config, ReferenceSofa, RunningSofa};
use serde_json::{Value, json};

mod support;
use support::TempDir;

const POC_SECRET: &str = "poc-secret-for-the-admin-test";

/// A configuration file on a fresh SQLite file: a TOML-registered PoC, userless launches (the
/// PoC's backend token may clear contexts) and short re-read intervals so the test need not
/// wait.
fn write_config(dir: &TempDir) -> PathBuf {
    let path = dir.0.join("sofa.toml");
    std::fs::write(
        &path,
        format!(
            r#"
listen = "127.0.0.1:0"
database = "sofa.db"
development_mode = true
userless_launches = true

[login]
mode = "auto-approve"
user = "dr-a"

[lifetimes]
purge_interval_secs = 3600
key_refresh_ms = 100
client_refresh_ms = 100

[[clients]]
id = "toml-poc"
secret = "{POC_SECRET}"
scopes = "Context.write system/Patient.rs"
"#
        ),
    )
    .unwrap();
    path
}

async fn start(config: &Path) -> RunningSofa {
    ReferenceSofa::start(Config::from_file(config).unwrap())
        .await
        .unwrap()
}

/// Runs `reference-sofa admin <args>` against `config`: the JSON lines it printed, or its
/// standard error when it failed.
async fn admin(config: &Path, args: &[&str]) -> Result<Vec<Value>, String> {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_reference-sofa"));
    command.arg("admin").arg("--config").arg(config).args(args);
    // Another process, as an operator runs it; waited for off the runtime's threads.
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect())
}

/// A `client_credentials` token request over HTTP: the status and the body.
async fn token(sofa: &RunningSofa, client: &str, secret: &str, scope: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/auth/token", sofa.fhir_base))
        .basic_auth(client, Some(secret))
        .form(&[("grant_type", "client_credentials"), ("scope", scope)])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Polls `check` for up to five seconds: the instance re-reads the store at an interval.
async fn eventually<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..50 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never: {what}");
}

async fn jwks_kids(sofa: &RunningSofa) -> Vec<String> {
    let jwks: Value = reqwest::get(format!("{}/auth/jwks", sofa.fhir_base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

/// `$clear-context` by the TOML PoC: status and body.
async fn context_operation(sofa: &RunningSofa, operation: &str, body: Value) -> (u16, Value) {
    let (_, answer) = token(sofa, "toml-poc", POC_SECRET, "Context.write").await;
    let response = reqwest::Client::new()
        .post(format!("{}/{operation}", sofa.fhir_base))
        .bearer_auth(answer["access_token"].as_str().unwrap())
        .header("content-type", "application/fhir+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A launch the EMR registered for `toml-poc` (a host writes launch records to the SoFA's
/// store, as for a plain SMART launch), living `secs` seconds; its id.
async fn insert_launch(sofa: &RunningSofa, secs: i64) -> String {
    let now = chrono::Utc::now();
    let launch_id = format!("launch-{}", now.timestamp_nanos_opt().unwrap_or_default());
    let mut tx = sofa.store().begin().await.unwrap();
    tx.insert_launch(LaunchRecord {
        launch_id: launch_id.clone(),
        client_id: "toml-poc".into(),
        user: None,
        owner_fhir_user: None,
        app_id: None,
        patient: Some("p1".into()),
        encounter: None,
        fhir_user: None,
        fhir_context: Vec::new(),
        need_patient_banner: None,
        intent: None,
        smart_style_url: None,
        tenant: None,
        created_at: now,
        expires_at: now + chrono::Duration::seconds(secs),
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    launch_id
}

async fn clear_context(sofa: &RunningSofa, launch: &str) -> u16 {
    context_operation(
        sofa,
        "$clear-context",
        json!({"resourceType": "Parameters",
               "parameter": [{"name": "launchID", "valueString": launch}]}),
    )
    .await
    .0
}

// REQ: OPS-05
#[tokio::test]
async fn clients_registered_and_disabled_by_the_command_line_take_effect_on_the_running_sofa() {
    let dir = TempDir::new("admin-clients");
    let config = write_config(&dir);
    let sofa = start(&config).await;

    // Register: the secret is printed once; a token over HTTP with it.
    let registered = admin(
        &config,
        &[
            "clients",
            "register",
            "--id",
            "emr-new",
            "--scopes",
            "system/Patient.rs",
            "--secret",
        ],
    )
    .await
    .unwrap();
    let secret = registered[0]["client_secret"].as_str().unwrap().to_string();
    let (status, body) = token(&sofa, "emr-new", &secret, "system/Patient.rs").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        token(&sofa, "emr-new", "wrong", "system/Patient.rs")
            .await
            .0,
        401
    );
    // A second registration of the same id is refused.
    let error = admin(
        &config,
        &["clients", "register", "--id", "emr-new", "--scopes", "x"],
    )
    .await
    .unwrap_err();
    assert!(error.contains("already registered"), "{error}");

    // List: both clients, never the secret or its hash.
    let listed = admin(&config, &["clients", "list"]).await.unwrap();
    let ids: Vec<&str> = listed
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["emr-new", "toml-poc"]);
    let text = serde_json::to_string(&listed).unwrap();
    assert!(!text.contains(&secret) && !text.contains(POC_SECRET) && !text.contains("sha256"));
    // The database holds the hash only.
    let database = std::fs::read(dir.0.join("sofa.db")).unwrap();
    let wal = std::fs::read(dir.0.join("sofa.db-wal")).unwrap_or_default();
    for bytes in [&database, &wal] {
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }

    // Disable the new client and the TOML one: refused from then on, without a restart.
    admin(&config, &["clients", "disable", "--id", "emr-new"])
        .await
        .unwrap();
    admin(&config, &["clients", "disable", "--id", "toml-poc"])
        .await
        .unwrap();
    eventually("the disabled clients are refused", || async {
        token(&sofa, "emr-new", &secret, "system/Patient.rs")
            .await
            .0
            == 401
            && token(&sofa, "toml-poc", POC_SECRET, "Context.write")
                .await
                .0
                == 401
    })
    .await;
    let listed = admin(&config, &["clients", "list"]).await.unwrap();
    assert!(listed.iter().all(|c| c["disabled"] == true), "{listed:?}");
    assert!(
        admin(&config, &["clients", "disable", "--id", "nobody"])
            .await
            .is_err()
    );
    sofa.shutdown().await;
}

// REQ: OPS-05
#[tokio::test]
async fn keys_rotated_launches_cleared_and_the_audit_log_exported_by_the_command_line() {
    let dir = TempDir::new("admin-keys");
    let config = write_config(&dir);
    let sofa = start(&config).await;
    let before = jwks_kids(&sofa).await;
    assert_eq!(before.len(), 2);

    // Rotate: the running SoFA publishes the new keys (and keeps the old ones).
    let rotated = admin(&config, &["keys", "rotate"]).await.unwrap();
    assert_eq!(rotated[0]["rotated"], true);
    eventually("the JWKS lists the new keys", || async {
        let kids = jwks_kids(&sofa).await;
        kids.len() == 4 && before.iter().all(|k| kids.contains(k))
    })
    .await;
    let keys = admin(&config, &["keys", "list"]).await.unwrap();
    assert_eq!(keys.len(), 4);
    assert_eq!(keys.iter().filter(|k| k["expires_at"].is_null()).count(), 2);

    // Launches: one the EMR registered is listed, cleared by the command, and then unknown to
    // `$clear-context` over HTTP.
    let started = chrono::Utc::now() - chrono::Duration::seconds(1);
    let launch = insert_launch(&sofa, 3600).await;
    let listed = admin(&config, &["launches", "list"]).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["launch_id"], launch.as_str());
    assert_eq!(listed[0]["client_id"], "toml-poc");
    let cleared = admin(&config, &["launches", "clear", "--id", &launch])
        .await
        .unwrap();
    assert_eq!(cleared[0]["cleared"], true);
    assert!(
        admin(&config, &["launches", "list"])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(clear_context(&sofa, &launch).await, 404);
    assert!(
        admin(&config, &["launches", "clear", "--id", &launch])
            .await
            .is_err()
    );

    // The audit log: the command's clear and the running SoFA's refused one, as JSON lines for
    // the range; nothing outside it.
    let from = started.to_rfc3339();
    let to = (chrono::Utc::now() + chrono::Duration::seconds(5)).to_rfc3339();
    let mut events = Vec::new();
    for _ in 0..50 {
        events = admin(&config, &["audit", "export", "--from", &from, "--to", &to])
            .await
            .unwrap();
        if events
            .iter()
            .filter(|e| e["action"] == "clear-context")
            .count()
            >= 2
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // One clear by the command (no client), one refused over HTTP (toml-poc, 404).
    let clears: Vec<(&Value, &Value)> = events
        .iter()
        .filter(|e| e["action"] == "clear-context")
        .map(|e| (&e["client_id"], &e["outcome"]))
        .collect();
    assert_eq!(
        clears,
        [
            (&Value::Null, &json!("success")),
            (&json!("toml-poc"), &json!({"failure": 404}))
        ],
        "{events:?}"
    );
    assert!(events.iter().all(|e| e["time"].as_str().is_some()));
    // Launch ids stay out of the exported log: a fingerprint only.
    assert!(!serde_json::to_string(&events).unwrap().contains(&launch));
    let before_start = (started - chrono::Duration::hours(1)).to_rfc3339();
    let none = admin(
        &config,
        &["audit", "export", "--from", &before_start, "--to", &from],
    )
    .await
    .unwrap();
    assert!(none.is_empty(), "{none:?}");
    sofa.shutdown().await;
}

// REQ: OPS-05
#[tokio::test]
async fn purge_removes_expired_launches_now() {
    let dir = TempDir::new("admin-purge");
    // The launch lives one second; the SoFA's own purge runs hourly.
    let config = write_config(&dir);
    let sofa = start(&config).await;
    let launch = insert_launch(&sofa, 1).await;
    assert_eq!(
        admin(&config, &["launches", "list"]).await.unwrap().len(),
        1
    );
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let purged = admin(&config, &["purge"]).await.unwrap();
    assert_eq!(purged[0]["launches"], 1, "{purged:?}");
    assert!(
        admin(&config, &["launches", "list"])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(clear_context(&sofa, &launch).await, 404);
    sofa.shutdown().await;
}
