//! What the process-level SoFA tests share: the SoFA under test as a child process, the app's
//! authorization code flow over raw HTTP, and small builders.

// Harness scaffolding: a broken harness should fail loudly; each test uses part of it.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)]

use std::path::Path;
use std::process::{Child, Command, Stdio};

use halo_poc::SofaClient;
use halo_smart_client::authorize::Pkce;
use serde_json::{Value, json};

/// The EMR's client and secret, and the app's redirect URI, in every test configuration.
pub const POC: &str = "emr";
pub const POC_SECRET: &str = "emr-secret";
pub const REDIRECT: &str = "http://127.0.0.1:9/callback";

/// A port free now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `halo-sofa-under-test` on `config` with `stderr` for its log; the child once it
/// said it is ready, `None` when it exited instead (a start may fail, e.g. on a busy database).
pub fn spawn_sofa(config: &Path, stderr: Stdio) -> Option<Child> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_halo-sofa-under-test"))
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("the SoFA under test starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
    if line.starts_with("ready") {
        Some(child)
    } else {
        let _ = child.wait();
        None
    }
}

/// A one-app App Catalog for `app_id`.
pub fn catalog(app_id: &str) -> Value {
    json!([{
        "id": app_id, "name": "Test app", "description": "Writes Observations.",
        "descriptionShort": "Writes Observations.",
        "iconUrl": "https://apps.example.org/icon.png",
        "privacyPolicyUrl": "https://apps.example.org/privacy",
        "termsOfServiceUrl": "https://apps.example.org/terms",
        "launchUrl": "https://apps.example.org/launch",
        "contacts": [{"title": "Support", "email": "support@example.org",
                      "url": "https://apps.example.org/support"}],
        "publisher": {"id": "example", "name": "Example"},
        "scopes": ["launch", "patient/Observation.cru", "patient/Patient.r"]
    }])
}

/// `meta.versionId` and `valueQuantity.value` of a resource: what the charts compare.
pub fn version_and_value(resource: Option<&Value>) -> (String, String) {
    let version = resource
        .and_then(|r| r.pointer("/meta/versionId"))
        .and_then(Value::as_str)
        .unwrap_or("-")
        .to_string();
    let value = resource
        .and_then(|r| r.pointer("/valueQuantity/value"))
        .map_or("-".to_string(), Value::to_string);
    (version, value)
}

/// A POST to the token endpoint: its status and JSON.
pub async fn token(http: &reqwest::Client, base: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let response = http
        .post(format!("{base}/auth/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// An Observation of `patient` (a bare id) with a value that names the write.
pub fn observation(patient: &str, value: u64, id: Option<&str>) -> Value {
    let mut resource = json!({
        "resourceType": "Observation", "status": "final",
        "code": {"text": "body weight"},
        "subject": {"reference": format!("Patient/{patient}")},
        "valueQuantity": {"value": value, "unit": "kg"}
    });
    if let Some(id) = id {
        resource["id"] = json!(id);
    }
    resource
}

/// A launch: `$set-context` for a new patient, then the app's authorization code flow with
/// PKCE (auto-approve login), through `base` and `http` (which must not follow redirects).
/// The launch id, the app's access token, the patient id and the code.
pub async fn launch(
    http: &reqwest::Client,
    base: &str,
    poc: &SofaClient,
    app: &str,
    app_id: &str,
) -> (String, String, String, String) {
    let patient = uuid::Uuid::new_v4().to_string();
    let body = json!({"resourceType": "Parameters", "parameter": [
        {"name": "patient", "valueReference": {"reference": format!("urn:uuid:{patient}"), "type": "Patient"}},
        {"name": "appID", "valueString": app_id},
        {"name": "resources", "resource": {"resourceType": "Bundle", "type": "transaction",
            "entry": [{"fullUrl": format!("urn:uuid:{patient}"),
                "resource": {"resourceType": "Patient", "name": [{"family": "Roy"}],
                             "gender": "female"},
                "request": {"method": "POST", "url": "Patient"}}]}}]});
    let launch_id = poc.set_context(&body).await.unwrap().launch_id;
    let pkce = Pkce::generate().unwrap();
    let authorize = url::Url::parse_with_params(
        &format!("{base}/auth/authorize"),
        &[
            ("response_type", "code"),
            ("client_id", app),
            ("redirect_uri", REDIRECT),
            ("launch", &launch_id),
            ("scope", "launch patient/Observation.cru patient/Patient.r"),
            ("state", "s"),
            ("aud", base),
            ("code_challenge", pkce.challenge()),
            ("code_challenge_method", "S256"),
        ],
    )
    .unwrap();
    let response = http.get(authorize).send().await.unwrap();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let code = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.to_string())
        .unwrap_or_else(|| panic!("no code in {location}"));
    let (status, answer) = token(
        http,
        base,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", app),
            ("code_verifier", pkce.verifier().expose()),
        ],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    (
        launch_id,
        answer["access_token"].as_str().unwrap().to_string(),
        answer["patient"].as_str().unwrap().to_string(),
        code,
    )
}

/// The EMR's access token (client credentials, context and subscription scopes).
pub async fn poc_token(http: &reqwest::Client, base: &str) -> String {
    let (status, answer) = token(
        http,
        base,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", POC),
            ("client_secret", POC_SECRET),
            ("scope", "Context.write system/Subscription.cruds"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    answer["access_token"].as_str().unwrap().to_string()
}
