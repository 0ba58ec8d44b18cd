//! The EMR signs its clinician in at the jurisdictional IdP and sets the context with that
//! clinician's token (REQ IDP-01, D-18): `halo-poc` on `halo-smart-client`, the reference SoFA
//! as the IdP (its built-in login), real HTTP on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use halo_model::set_context::SetContextBuilder;
use halo_poc::{ClinicianTokens, HttpOptions, SofaClient, StaticToken};
use halo_smart_client::secret::Secret;
use halo_smart_client::store::MemoryLaunchStore;
use halo_smart_client::{
    ClientAuth, ClientConfig, ClientId, IssuerPolicy, Redirect, RedirectUrl, SmartClient,
};
use halo_sofa_server::auth::{
    AuthServer, AutoApprove, ClientAuthentication, ClientRegistry, RegisteredClient,
};
use halo_sofa_server::clock::SystemClock;
use halo_sofa_server::config::{AuthConfig, SofaConfig};
use halo_sofa_server::sofa::Sofa;
use halo_sofa_server::store::{MemoryStore, Store};
use serde_json::json;

const EMR: &str = "emr";
const EMR_SECRET: &str = "emr-secret-0123456789";
const EMR_REDIRECT: &str = "http://127.0.0.1:9/signed-in";

/// A SoFA with its built-in IdP (auto-approving dr-a) on loopback: the FHIR base.
async fn sofa() -> (String, Arc<dyn Store>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/fhir", listener.local_addr().unwrap());
    let mut config = SofaConfig::new(&base).unwrap();
    config.oauth = Some(AuthServer::oauth_uris(&base));
    // Subscriptions are not what this test is about.
    config.require_active_subscription = false;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let clients = ClientRegistry::new().with(
        RegisteredClient::new(EMR, ClientAuthentication::secret(EMR_SECRET))
            .redirect_uri(EMR_REDIRECT)
            .scopes("openid fhirUser offline_access Context.write system/Subscription.cruds"),
    );
    let auth = AuthServer::start(
        &config,
        AuthConfig {
            development_mode: true,
            ..AuthConfig::default()
        },
        store.clone(),
        Arc::new(SystemClock),
        clients,
        Arc::new(AutoApprove::new("dr-a", Some("Practitioner/dr-a"))),
    )
    .await
    .unwrap();
    let sofa = Sofa::builder(config)
        .store(store.clone())
        .authorization(&auth)
        .build()
        .unwrap();
    let app = axum::Router::new().nest("/fhir", sofa.router());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, store)
}

// REQ: IDP-01, IDP-02
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emr_signs_its_clinician_in_and_the_launch_is_theirs() {
    let (fhir_base, store) = sofa().await;

    // The EMR, a confidential client, signs its clinician in: authorization code with PKCE.
    let policy = IssuerPolicy::new()
        .allow(
            fhir_base.clone(),
            ClientConfig::new(
                ClientId::new(EMR).unwrap(),
                RedirectUrl::new(EMR_REDIRECT).unwrap(),
                "openid fhirUser offline_access Context.write",
                ClientAuth::ClientSecretBasic(Secret::new(EMR_SECRET)),
            ),
        )
        .unwrap()
        .allow_http_loopback(true);
    let smart = SmartClient::new(policy, Arc::new(MemoryLaunchStore::new())).unwrap();
    let start = smart.begin_sign_in(&fhir_base).await.unwrap();
    let Redirect::Get(authorize) = start.redirect else {
        panic!("a GET redirect to the IdP");
    };
    assert!(!authorize.query_pairs().any(|(k, _)| k == "launch"));
    // The browser at the IdP (auto-approve signs dr-a in), and back to the EMR.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = browser.get(authorize).send().await.unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::FOUND);
    let back = url::Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
    assert!(back.as_str().starts_with(EMR_REDIRECT));
    let session = smart
        .complete_launch(back.query().unwrap(), Some(start.binding.value()))
        .await
        .unwrap();
    let claims = session.snapshot().unwrap().id_claims.unwrap();
    assert_eq!(claims.sub, "dr-a");

    // `$set-context` with the clinician's token: the launch is dr-a's.
    let tokens = Arc::new(ClinicianTokens::new(session));
    let client = SofaClient::new(&fhir_base, tokens, HttpOptions::default()).unwrap();
    let mut builder = SetContextBuilder::new();
    let patient = builder
        .add_resource(json!({"resourceType": "Patient", "gender": "female"}))
        .unwrap();
    builder.patient(patient);
    let parameters = builder.build();
    let output = client.set_context(&parameters).await.unwrap();
    let mut tx = store.begin_read().await.unwrap();
    let launch = tx.get_launch(&output.launch_id).await.unwrap().unwrap();
    assert_eq!(launch.user.as_deref(), Some("dr-a"));
    assert_eq!(
        launch.owner_fhir_user,
        Some(format!("{}/Practitioner/dr-a", fhir_base))
    );
    drop(tx);

    // The same EMR's backend-services token names nobody: refused (D-18).
    let service = reqwest::Client::new()
        .post(format!("{fhir_base}/auth/token"))
        .basic_auth(EMR, Some(EMR_SECRET))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "Context.write"),
        ])
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let userless = SofaClient::new(
        &fhir_base,
        Arc::new(StaticToken::new(service["access_token"].as_str().unwrap())),
        HttpOptions::default(),
    )
    .unwrap();
    let refused = userless.set_context(&parameters).await.unwrap_err();
    assert!(refused.to_string().contains("HTTP 403"), "{refused}");
}
