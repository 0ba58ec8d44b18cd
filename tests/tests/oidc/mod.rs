//! The federated-login harness: the jurisdiction's OpenID provider (`oidc-provider` from npm,
//! `tests/oidc-provider`) as a child process, the reference SoFA signing users in there, an
//! EMR, and a browser with a cookie jar.

// Harness scaffolding: a broken harness should fail loudly; each test uses part of it.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use halo_model::subscription::PayloadContent;
use halo_poc::{HttpOptions, RestHookSecret, SofaClient, StaticToken, SubscriptionManager};
use halo_smart_client::authorize::Pkce;

pub use halo_demo::federated::{self, Browser, Cookie, Nav, Provider, ProviderClient, param};
use reference_sofa::{CatalogSource, Client, Config, IN_MEMORY, Login, ReferenceSofa, RunningSofa};
use serde_json::{Value, json};

pub use crate::support::free_port;

/// The SoFA's client at the provider.
pub const SOFA_CLIENT: &str = "sofa";
pub const SOFA_SECRET: &str = "sofa-secret-0123456789";
/// A second relying party at the same provider.
pub const OTHER_SOFA_CLIENT: &str = "sofa-2";
/// The EMR: a client at the provider (it signs its clinician in) and at the SoFA (its
/// backend-services token for the subscription), with the same id.
pub const EMR: &str = "emr";
pub const EMR_SECRET: &str = "emr-secret-0123456789";
pub const EMR_REDIRECT: &str = "http://127.0.0.1:9/emr/signed-in";
/// The SMART app, a public client of the SoFA.
pub const APP: &str = "chart-app";
pub const APP_REDIRECT: &str = "http://127.0.0.1:9/app/callback";
pub const APP_SCOPES: &str = "launch openid fhirUser patient/Patient.rs";
/// The clinicians and their passwords at the provider.
pub const DR_A: (&str, &str) = ("dr-a", "a-password-0123");
pub const DR_B: (&str, &str) = ("dr-b", "b-password-0123");
/// The cookie key every SoFA of a test shares (base64url of 32 bytes).
pub const COOKIE_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

/// Starts the provider for SoFAs at `fhir_bases` (clients `sofa`, `sofa-2`...), with the EMR
/// as a client and the clinicians dr-a and dr-b.
pub fn start_provider(fhir_bases: &[&str]) -> Provider {
    let practitioner = |base: &str, id: &str| format!("{base}/Practitioner/{id}");
    let base = fhir_bases[0];
    let mut clients: Vec<Value> = fhir_bases
        .iter()
        .enumerate()
        .map(|(i, base)| {
            json!({
                "client_id": if i == 0 { SOFA_CLIENT.to_string() } else { format!("sofa-{}", i + 1) },
                "client_secret": SOFA_SECRET,
                "redirect_uris": [format!("{base}/auth/oidc/callback")],
                "post_logout_redirect_uris": [format!("{base}/metadata")],
            })
        })
        .collect();
    clients.push(json!({
        "client_id": EMR, "client_secret": EMR_SECRET, "redirect_uris": [EMR_REDIRECT],
    }));
    let resources: serde_json::Map<String, Value> = fhir_bases
        .iter()
        .map(|b| (b.to_string(), json!("Context.write")))
        .collect();
    Provider::start(&json!({
        "accounts": {
            DR_A.0: {"password": DR_A.1, "fhirUser": practitioner(base, DR_A.0)},
            DR_B.0: {"password": DR_B.1, "fhirUser": practitioner(base, DR_B.0)},
        },
        "clients": clients,
        "resources": resources,
    }))
    .unwrap()
}

/// The reference SoFA at `port` with federated login at `issuer` as `client_id`.
pub async fn sofa(port: u16, issuer: &str, client_id: &str) -> RunningSofa {
    ReferenceSofa::start(sofa_config(port, issuer, client_id))
        .await
        .unwrap()
}

/// The configuration [`sofa`] starts.
pub fn sofa_config(port: u16, issuer: &str, client_id: &str) -> Config {
    let mut login = Login::oidc(issuer, client_id, SOFA_SECRET);
    if let Login::Oidc { cookie_key, .. } = &mut login {
        // Shared by every SoFA of a test, so only the client tells their sessions apart.
        *cookie_key = Some(COOKIE_KEY.into());
    }
    Config {
        listen: format!("127.0.0.1:{port}").parse().unwrap(),
        database: IN_MEMORY.into(),
        catalog: Some(CatalogSource::Inline(json!([]))),
        login,
        clients: vec![
            Client::point_of_care(EMR, EMR_SECRET, "Context.write system/Subscription.cruds"),
            Client {
                redirect_uris: vec![APP_REDIRECT.into()],
                app_id: None,
                launch_url: None,
                ..Client::public_app(APP, "unused", "http://127.0.0.1:9", APP_SCOPES)
            },
        ],
        development_mode: true,
        ..Config::default()
    }
}

/// The redirect target; panics on a page.
pub fn left(nav: Nav) -> url::Url {
    match nav {
        Nav::Left(url) => url,
        Nav::Page { status, url, body } => panic!("a page {status} at {url}: {body}"),
    }
}

/// A page's status and body; panics on a redirect out.
pub fn page(nav: Nav) -> (u16, String) {
    match nav {
        Nav::Page { status, body, .. } => (status, body),
        Nav::Left(url) => panic!("left for {url}"),
    }
}

/// A browser that leaves at port 9 (the EMR's and the app's redirect URIs).
pub fn browser() -> Browser {
    Browser::leaving_at(&["http://127.0.0.1:9/"]).unwrap()
}

/// The EMR signs `user` in at the provider in `browser`: its token answer.
pub async fn emr_signs_in(
    browser: &Browser,
    provider: &Provider,
    fhir_base: &str,
    user: (&str, &str),
) -> Value {
    let client = ProviderClient {
        id: EMR,
        secret: EMR_SECRET,
        redirect_uri: EMR_REDIRECT,
    };
    federated::emr_signs_in(browser, &provider.issuer, client, fhir_base, user)
        .await
        .unwrap()
}

/// The EMR's installation-wide subscription at the SoFA (its backend-services token, D-06):
/// the rest-hook endpoint on loopback answers every delivery 200.
pub async fn emr_subscribes(fhir_base: &str) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/notify", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/notify",
        axum::routing::post(|| async { axum::http::StatusCode::OK }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let answer: Value = reqwest::Client::new()
        .post(format!("{fhir_base}/auth/token"))
        .basic_auth(EMR, Some(EMR_SECRET))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "system/Subscription.cruds"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let service = SofaClient::new(
        fhir_base,
        Arc::new(StaticToken::new(answer["access_token"].as_str().unwrap())),
        HttpOptions::default(),
    )
    .unwrap();
    SubscriptionManager::new(service)
        .activation(Duration::from_secs(10), Duration::from_millis(20))
        .subscribe(halo_poc::rest_hook_channel(
            endpoint,
            PayloadContent::IdOnly,
            &RestHookSecret::generate().unwrap(),
            None,
        ))
        .await
        .unwrap();
}

/// `$set-context` for a new patient with the clinician's `access_token`: the launch id.
pub async fn set_context(fhir_base: &str, access_token: &str) -> String {
    let emr = SofaClient::new(
        fhir_base,
        Arc::new(StaticToken::new(access_token)),
        HttpOptions::default(),
    )
    .unwrap();
    let body = json!({"resourceType": "Parameters", "parameter": [
        {"name": "patient", "valueReference": {"reference": "urn:uuid:7f1c4a52-0b6e-4c33-9d0a-3e5b2c1f8a40", "type": "Patient"}},
        {"name": "resources", "resource": {"resourceType": "Bundle", "type": "transaction",
            "entry": [{"fullUrl": "urn:uuid:7f1c4a52-0b6e-4c33-9d0a-3e5b2c1f8a40",
                "resource": {"resourceType": "Patient", "name": [{"family": "Roy"}], "gender": "female"},
                "request": {"method": "POST", "url": "Patient"}}]}}]});
    emr.set_context(&body).await.unwrap().launch_id
}

/// The app's authorize URL for `launch` (and its PKCE pair, to redeem the code).
pub fn app_authorize(fhir_base: &str, launch: &str) -> (String, Pkce) {
    let pkce = Pkce::generate().unwrap();
    let url = url::Url::parse_with_params(
        &format!("{fhir_base}/auth/authorize"),
        &[
            ("response_type", "code"),
            ("client_id", APP),
            ("redirect_uri", APP_REDIRECT),
            ("launch", launch),
            ("scope", APP_SCOPES),
            ("state", "app-state"),
            ("aud", fhir_base),
            ("code_challenge", pkce.challenge()),
            ("code_challenge_method", "S256"),
        ],
    )
    .unwrap();
    (url.into(), pkce)
}

/// The app redeems `code`: the SoFA's token answer.
pub async fn app_token(fhir_base: &str, code: &str, pkce: &Pkce) -> Value {
    let answer = reqwest::Client::new()
        .post(format!("{fhir_base}/auth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", APP_REDIRECT),
            ("client_id", APP),
            ("code_verifier", pkce.verifier().expose()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    answer.json().await.unwrap()
}

/// The claims of a JWT, unverified (the test reads what the SoFA issued).
pub fn claims(jwt: &str) -> Value {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}
