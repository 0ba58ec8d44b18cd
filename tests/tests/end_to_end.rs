//! The whole HALO launch end to end on loopback, through the examples a newcomer runs first:
//! the SoFA launch of `halo-demo` (rest-hook and websocket), the reference SoFA started from
//! its sample configuration, and a plain SMART on FHIR launch whose EMR registers the context
//! with the reference SoFA's authorization server.

use std::sync::Arc;

use halo_catalog::AppEntry;
use halo_demo::{DemoOptions, STEP_COUNT, Transport};
use halo_poc::{BoxFuture, LaunchContextSink, LaunchId, PlainLaunchContext, PlainLauncher};
use halo_smart_client::store::MemoryLaunchStore;
use halo_smart_client::{
    ClientAuth, ClientConfig, ClientId, IssuerPolicy, Redirect, RedirectUrl, SmartClient,
};
use halo_sofa_server::store::{LaunchRecord, Store};
use reference_sofa::{CatalogSource, Client, Config, IN_MEMORY, Login, ReferenceSofa};
use serde_json::{Value, json};

fn assert_complete(report: &halo_demo::Report) {
    let failed: Vec<String> = report
        .steps
        .iter()
        .filter(|s| !s.ok)
        .map(ToString::to_string)
        .collect();
    assert!(failed.is_empty(), "failed steps: {failed:?}");
    assert_eq!(report.steps.len(), STEP_COUNT, "{:?}", report.steps);
    assert!(report.succeeded());
    // The app's write reached the EMR under an id of the EMR's own.
    let filed = report.filed_as.as_deref().unwrap_or_default();
    assert!(filed.starts_with("Observation/emr-"), "{filed}");
    // After `$clear-context` the app's token is refused.
    assert_eq!(report.status_after_clear, Some(401));
}

// REQ: EX-04
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sofa_launch_runs_end_to_end_with_a_rest_hook_emr() {
    let mut printed = Vec::new();
    let report = halo_demo::run(DemoOptions::default(), |step| {
        printed.push(step.to_string())
    })
    .await
    .unwrap();
    assert_complete(&report);
    // Every step was reported as it happened, with its mark.
    assert_eq!(printed.len(), STEP_COUNT);
    assert!(
        printed.iter().all(|line| line.starts_with('✔')),
        "{printed:?}"
    );
    assert!(printed.iter().any(|l| l.contains("subscribe (rest-hook)")));
    // The clinician signed in at the IdP, and the launch is theirs (D-18).
    assert!(
        printed
            .iter()
            .any(|l| l.contains("clinician signs in at the IdP") && l.contains("dr-gagnon"))
    );
    assert!(
        printed
            .iter()
            .any(|l| l.contains("launch bound to the clinician: owner dr-gagnon"))
    );
}

// REQ: EX-04, IDP-03
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sofa_launch_runs_end_to_end_with_the_jurisdictions_openid_provider() {
    let options = DemoOptions {
        oidc: true,
        ..DemoOptions::default()
    };
    let report = halo_demo::run(options, |_| {}).await.unwrap();
    assert_complete(&report);
    let passed = |name: &str| report.steps.iter().any(|s| s.name == name && s.ok);
    assert!(passed("clinician signs in at the IdP (OpenID provider)"));
    assert!(passed("launch bound to the clinician"));
    // The app's authorize went through the provider without a second sign-in page.
    assert!(passed("authorize (single sign-on at the OpenID provider)"));
}

// REQ: EX-04
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sofa_launch_runs_end_to_end_with_a_websocket_emr() {
    let options = DemoOptions {
        transport: Transport::Websocket,
        ..DemoOptions::default()
    };
    let report = halo_demo::run(options, |_| {}).await.unwrap();
    assert_complete(&report);
    assert!(
        report
            .steps
            .iter()
            .any(|s| s.name == "subscribe (websocket)" && s.ok)
    );
}

// REQ: EX-01
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_sofa_starts_from_its_sample_configuration() {
    let mut config = Config::from_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/reference-sofa/sofa.toml"
    ))
    .unwrap();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.database = IN_MEMORY.into();
    let sofa = ReferenceSofa::start(config).await.unwrap();
    let http = reqwest::Client::new();
    let get = |url: String| {
        let http = http.clone();
        async move {
            let response = http.get(&url).send().await.unwrap();
            assert_eq!(response.status(), 200, "GET {url}");
            response.json::<Value>().await.unwrap()
        }
    };

    // Every printed URL answers, except the FHIR base itself (a base, not a resource).
    let urls = sofa.urls();
    assert_eq!(urls.len(), 4);
    assert_eq!(urls[0].1, sofa.fhir_base);
    for (_, url) in &urls[1..] {
        get(url.clone()).await;
    }
    let catalog = get(sofa.catalog_url.clone()).await;
    assert_eq!(catalog[0]["id"], "7d3f6a52-1c4e-4b8a-9f0d-2e6b5c8a1f34");
    let discovery = get(format!(
        "{}/.well-known/smart-configuration",
        sofa.fhir_base
    ))
    .await;
    assert_eq!(discovery["issuer"], json!(sofa.fhir_base));
    let metadata = get(format!("{}/metadata", sofa.fhir_base)).await;
    let resources = metadata["rest"][0]["resource"].as_array().unwrap();
    assert!(resources.iter().any(|r| r["type"] == "Subscription"));

    // The sample's dev login asks who is at the browser instead of approving.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = no_redirects
        .get(format!("{}/auth/authorize", sofa.fhir_base))
        .query(&[
            ("response_type", "code"),
            ("client_id", "halo-minimal-app"),
            ("redirect_uri", "http://127.0.0.1:8000/callback"),
            ("scope", "openid fhirUser patient/Patient.rs"),
            ("state", "s-1"),
            ("aud", sofa.fhir_base.as_str()),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("password"), "{html}");
    sofa.shutdown().await;
}

/// The EMR side of a plain SMART launch: the context goes into the authorization server's
/// launch table before the app is opened.
struct RegisterWithSofa {
    store: Arc<dyn Store>,
    emr_client: String,
}

impl LaunchContextSink for RegisterWithSofa {
    fn register<'a>(
        &'a self,
        launch_id: &'a LaunchId,
        context: &'a PlainLaunchContext,
    ) -> BoxFuture<'a, halo_poc::Result<()>> {
        Box::pin(async move {
            let host =
                |e: halo_sofa_server::store::StoreError| halo_poc::PocError::Host(e.to_string());
            let now = chrono::Utc::now();
            let record = LaunchRecord {
                launch_id: launch_id.as_str().to_string(),
                client_id: self.emr_client.clone(),
                user: None,
                owner_fhir_user: None,
                app_id: Some(context.app_id.clone()),
                patient: context
                    .context
                    .patient
                    .as_ref()
                    .map(|p| format!("Patient/{p}")),
                encounter: context
                    .context
                    .encounter
                    .as_ref()
                    .map(|e| format!("Encounter/{e}")),
                fhir_user: context.fhir_user.clone(),
                fhir_context: Vec::new(),
                need_patient_banner: Some(true),
                intent: None,
                smart_style_url: None,
                tenant: None,
                created_at: now,
                expires_at: now + chrono::Duration::minutes(10),
            };
            let mut tx = self.store.begin().await.map_err(host)?;
            tx.insert_launch(record).await.map_err(host)?;
            tx.commit().await.map_err(host)
        })
    }
}

// REQ: EX-04
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_smart_launch_hands_the_emr_context_to_the_app() {
    const APP: &str = "2a4c6e8f-1b3d-4f5a-8c7e-9d0b2f4a6c8e";
    let redirect_uri = "http://127.0.0.1:9/callback";
    let scopes = "launch openid fhirUser patient/Patient.rs";
    let sofa = ReferenceSofa::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database: IN_MEMORY.into(),
        catalog: Some(CatalogSource::Inline(json!([]))),
        login: Login::AutoApprove {
            user: "dr-gagnon".into(),
            fhir_user: None,
        },
        // The EMR here sets contexts with its backend-services token, which names no
        // clinician: the SoFA's userless mode (D-18).
        userless_launches: true,
        clients: vec![Client {
            id: "plain-app".into(),
            secret: None,
            jwks: None,
            jwks_url: None,
            redirect_uris: vec![redirect_uri.into()],
            scopes: scopes.into(),
            app_id: Some(APP.into()),
            launch_url: None,
            tls_client_auth_subject_dn: None,
            tls_client_auth_san_dns: None,
            tls_client_auth_san_uri: None,
        }],
        development_mode: true,
        ..Config::default()
    })
    .await
    .unwrap();

    // The EMR: a catalog entry, its chart's context, a random launch id registered first.
    let entry: AppEntry = serde_json::from_value(json!({
        "id": APP, "name": "Plain app", "description": "d", "descriptionShort": "d",
        "iconUrl": "https://app.example.org/i.png", "privacyPolicyUrl": "https://app.example.org/p",
        "termsOfServiceUrl": "https://app.example.org/t", "launchUrl": "http://127.0.0.1:9/launch?tenant=a",
        "contacts": [], "publisher": {"id": "p", "name": "P"}, "scopes": scopes.split(' ').collect::<Vec<_>>()
    }))
    .unwrap();
    let launcher = PlainLauncher::new(
        sofa.fhir_base.clone(),
        RegisterWithSofa {
            store: sofa.store(),
            emr_client: "emr".into(),
        },
    );
    let (launch_id, url) = launcher
        .launch(
            &entry,
            PlainLaunchContext {
                app_id: APP.into(),
                client_id: Some("plain-app".into()),
                fhir_user: Some("Practitioner/dr-1".into()),
                context: halo_model::smart::LaunchContext {
                    patient: Some("p7".into()),
                    ..Default::default()
                },
            },
        )
        .await
        .unwrap();
    assert_eq!(launch_id.as_str().len(), 43);
    let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert_eq!(
        query,
        [
            ("tenant".to_string(), "a".to_string()),
            ("iss".to_string(), sofa.fhir_base.clone()),
            ("launch".to_string(), launch_id.as_str().to_string()),
        ]
    );

    // The app: launch, authorize (the browser's redirect followed by hand), token.
    let policy = IssuerPolicy::new()
        .allow(
            sofa.fhir_base.clone(),
            ClientConfig::new(
                ClientId::new("plain-app").unwrap(),
                RedirectUrl::new(redirect_uri).unwrap(),
                scopes,
                ClientAuth::Public,
            ),
        )
        .unwrap()
        .allow_http_loopback(true);
    let app = SmartClient::new(policy, Arc::new(MemoryLaunchStore::new())).unwrap();
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let authorize = |redirect: Redirect| async {
        let Redirect::Get(authorize_url) = redirect else {
            panic!("expected a GET redirect");
        };
        browser.get(authorize_url.as_str()).send().await.unwrap()
    };
    let start = app
        .begin_launch_from_query(url.query().unwrap())
        .await
        .unwrap();
    let response = authorize(start.redirect).await;
    assert!(response.status().is_redirection(), "{}", response.status());
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let callback = location.strip_prefix(&format!("{redirect_uri}?")).unwrap();
    let session = app
        .complete_launch(callback, Some(start.binding.value()))
        .await
        .unwrap();
    let snapshot = session.snapshot().unwrap();
    assert_eq!(snapshot.patient_id(), Some("p7"));
    assert_eq!(snapshot.context.need_patient_banner, Some(true));

    // A launch id the EMR never registered gets no code.
    let forged = format!(
        "iss={}&launch=not-registered",
        url::form_urlencoded::byte_serialize(sofa.fhir_base.as_bytes()).collect::<String>()
    );
    let response = authorize(app.begin_launch_from_query(&forged).await.unwrap().redirect).await;
    match response.headers().get("location") {
        Some(location) => {
            let location = location.to_str().unwrap();
            assert!(
                location.contains("error=") && !location.contains("code="),
                "{location}"
            );
        }
        None => assert!(response.status().is_client_error(), "{}", response.status()),
    }
    sofa.shutdown().await;
}
