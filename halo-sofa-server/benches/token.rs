//! Token exchanges per second: `authorization_code` with PKCE S256, an EHR launch's context and
//! an id_token (`openid fhirUser`) and a refresh token, on the SQLite store, through the real
//! router (no socket). Codes are issued before the timed loop, so only the token endpoint is
//! measured. The signing benches show what each exchange's two signatures cost on their own.

// A bench is a test harness: a failure panics with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use halo_sofa_server::auth::{
    AuthServer, AutoApprove, ClientAuthentication, ClientRegistry, KeyRing, KeyUse,
    RegisteredClient,
};
use halo_sofa_server::clock::SystemClock;
use halo_sofa_server::config::{AuthConfig, SofaConfig};
use halo_sofa_server::store::{LaunchRecord, MemoryStore, SqliteStore, Store};
use serde_json::json;
use sha2::{Digest, Sha256};
use tower::ServiceExt;

const BASE: &str = "http://127.0.0.1:9/fhir";
const REDIRECT: &str = "https://app.example.org/callback";
const SCOPE: &str = "launch openid fhirUser offline_access patient/*.rs";

async fn server(dir: &std::path::Path) -> (axum::Router, String) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.join("bench.db")).await.unwrap());
    let config = SofaConfig::new(BASE).unwrap();
    let auth = AuthServer::start(
        &config,
        AuthConfig {
            development_mode: true,
            ..AuthConfig::default()
        },
        store.clone(),
        Arc::new(SystemClock),
        ClientRegistry::new().with(
            RegisteredClient::new("app", ClientAuthentication::Public)
                .redirect_uri(REDIRECT)
                .scopes(SCOPE),
        ),
        Arc::new(AutoApprove::new("dr-a", Some("Practitioner/dr-a"))),
    )
    .await
    .unwrap();
    let now = Utc::now();
    let mut tx = store.begin().await.unwrap();
    tx.insert_launch(LaunchRecord {
        launch_id: "bench-launch".into(),
        client_id: "poc".into(),
        user: Some("dr-a".into()),
        owner_fhir_user: None,
        app_id: None,
        patient: Some("Patient/p1".into()),
        encounter: Some("Encounter/e1".into()),
        fhir_user: Some("Practitioner/dr-a".into()),
        fhir_context: vec!["Encounter/e1".into()],
        need_patient_banner: Some(true),
        intent: None,
        smart_style_url: None,
        tenant: None,
        created_at: now,
        expires_at: now + chrono::Duration::hours(12),
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    (auth.router(), "bench-launch".into())
}

async fn code(router: &axum::Router, launch: &str, verifier: &str) -> String {
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", "app"),
            ("redirect_uri", REDIRECT),
            ("scope", SCOPE),
            ("state", "s"),
            ("aud", BASE),
            ("launch", launch),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .finish();
    let response = router
        .clone()
        .oneshot(
            Request::get(format!("/auth/authorize?{query}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()[header::LOCATION].to_str().unwrap();
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned()
}

async fn exchange(router: &axum::Router, code: &str, verifier: &str) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
            ("client_id", "app"),
        ])
        .finish();
    let response = router
        .clone()
        .oneshot(
            Request::post("/auth/token")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

fn token_exchange(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = std::env::temp_dir().join(format!("halo-token-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let (router, launch) = runtime.block_on(server(&dir));
    let mut group = c.benchmark_group("token");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("authorization_code_pkce_id_token_sqlite", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let router = router.clone();
            let launch = launch.clone();
            async move {
                let mut pending = Vec::with_capacity(iters as usize);
                for i in 0..iters {
                    let verifier = format!("bench-verifier-{i}-{}", uuid::Uuid::new_v4());
                    pending.push((code(&router, &launch, &verifier).await, verifier));
                }
                let start = Instant::now();
                for (code, verifier) in &pending {
                    exchange(&router, code, verifier).await;
                }
                start.elapsed()
            }
        });
    });
    group.finish();

    let keys = runtime
        .block_on(KeyRing::load_or_generate(
            &MemoryStore::new(),
            None,
            Utc::now(),
        ))
        .unwrap();
    let claims = json!({"iss": BASE, "sub": "dr-a", "aud": "app", "exp": 1, "iat": 1,
        "fhirUser": "https://sofa.example.org/fhir/Practitioner/dr-a"});
    let mut signing = c.benchmark_group("signing");
    signing.bench_function("access_token_es256", |b| {
        b.iter(|| keys.sign(KeyUse::AccessToken, &claims).unwrap())
    });
    signing.bench_function("id_token_rs256", |b| {
        b.iter(|| keys.sign(KeyUse::IdToken, &claims).unwrap())
    });
    signing.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, token_exchange);
criterion_main!(benches);
