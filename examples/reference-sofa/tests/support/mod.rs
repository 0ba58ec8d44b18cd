//! What the reference SoFA's tests share.
// Test helpers may unwrap: a panic is a test failure with its message.
#![allow(unreachable_pub, dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

/// A fresh directory under the system temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let dir = std::env::temp_dir().join(format!(
            "reference-sofa-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A token request's status and JSON answer.
pub async fn token(
    http: &reqwest::Client,
    fhir_base: &str,
    form: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let response = http
        .post(format!("{fhir_base}/auth/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// POSTs `$set-context` with one new Patient and no app: the status and the answer.
pub async fn set_context(
    http: &reqwest::Client,
    fhir_base: &str,
    token: &str,
) -> (u16, serde_json::Value) {
    let patient = "urn:uuid:9d4c6b43-2c4f-4d8b-9a3e-1c0e6a7b8c9d";
    let body = serde_json::json!({"resourceType": "Parameters", "parameter": [
        {"name": "patient", "valueReference": {"reference": patient}},
        {"name": "resources", "resource": {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": patient, "resource": {"resourceType": "Patient", "gender": "male"},
             "request": {"method": "POST", "url": "Patient"}}]}}
    ]});
    let response = http
        .post(format!("{fhir_base}/$set-context"))
        .bearer_auth(token)
        .header("content-type", "application/fhir+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// The `launchID` of a `$set-context` answer.
pub fn launch_id(answer: &serde_json::Value) -> String {
    answer["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "launchID")
        .unwrap()["valueString"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The EHR launch of a public app with PKCE through the auto-approve login, with `http`
/// (which must not follow redirects): the token answer.
pub async fn app_token(
    http: &reqwest::Client,
    fhir_base: &str,
    client_id: &str,
    redirect_uri: &str,
    launch: &str,
    scope: &str,
) -> (u16, serde_json::Value) {
    let pkce = halo_smart_client::authorize::Pkce::generate().unwrap();
    let authorize = reqwest::Url::parse_with_params(
        &format!("{fhir_base}/auth/authorize"),
        &[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("launch", launch),
            ("scope", scope),
            ("state", "s"),
            ("aud", fhir_base),
            ("code_challenge", pkce.challenge()),
            ("code_challenge_method", "S256"),
        ],
    )
    .unwrap();
    let response = http.get(authorize).send().await.unwrap();
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let code = reqwest::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.to_string())
        .unwrap_or_else(|| panic!("no code in {location}"));
    token(
        http,
        fhir_base,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect_uri),
            ("client_id", client_id),
            ("code_verifier", pkce.verifier().expose()),
        ],
    )
    .await
}

/// A PoC's rest-hook endpoint that acknowledges everything: its URL and how many
/// notifications it received.
pub async fn receiver() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let received = std::sync::Arc::new(AtomicUsize::new(0));
    let count = received.clone();
    let app = axum::Router::new().route(
        "/notify",
        axum::routing::post(move || {
            let count = count.clone();
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notify", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

/// The PoC's rest-hook Subscription to its content updates at `endpoint`, once active: its id.
pub async fn subscribe(
    http: &reqwest::Client,
    fhir_base: &str,
    token: &str,
    endpoint: &str,
) -> String {
    let subscription = serde_json::json!({
        "resourceType": "Subscription",
        "meta": {"profile": ["http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription"]},
        "status": "requested",
        "reason": "PoC content updates",
        "criteria": halo_model::canonical::SOFA_CONTENT_UPDATE_TOPIC,
        "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json",
            "_payload": {"extension": [{
                "url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content",
                "valueCode": "id-only"
            }]}}
    });
    let response = http
        .post(format!("{fhir_base}/Subscription"))
        .bearer_auth(token)
        .header("content-type", "application/fhir+json")
        .body(subscription.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let created: serde_json::Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    for _ in 0..300 {
        let current = json(
            http.get(format!("{fhir_base}/Subscription/{id}"))
                .bearer_auth(token),
        )
        .await;
        if current["status"] == "active" {
            return id;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("Subscription/{id} never became active");
}

/// The PoC's secret in [`flow_config`].
pub const POC_SECRET: &str = "poc-secret-0123456789";
/// The app's redirect URI in [`flow_config`].
pub const APP_REDIRECT: &str = "http://127.0.0.1:9/callback";
/// The app's scopes in [`flow_config`].
pub const APP_SCOPES: &str = "launch patient/Patient.r patient/Observation.cru";

/// A SoFA on `database` with a PoC (`poc`, [`POC_SECRET`], subscriptions and contexts) and a
/// public app (`app`) launched by any context, signed in as `dr-a` without a page.
pub fn flow_config(database: PathBuf) -> reference_sofa::Config {
    use reference_sofa::{Client, Config, Login};
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database,
        login: Login::AutoApprove {
            user: "dr-a".into(),
            fhir_user: None,
        },
        userless_launches: true,
        clients: vec![
            Client::point_of_care("poc", POC_SECRET, "system/Subscription.cruds Context.write"),
            Client {
                app_id: None,
                ..Client::public_app("app", "unused", "http://127.0.0.1:9", APP_SCOPES)
            },
        ],
        development_mode: true,
        ..Config::default()
    }
}

/// Sends a request and reads its answer as JSON.
pub async fn json(request: reqwest::RequestBuilder) -> serde_json::Value {
    request.send().await.unwrap().json().await.unwrap()
}
