//! The example SMART app launched for real from the reference SoFA: an EMR (`halo-poc`) sets the
//! context, an HTTP client plays the browser, and the app's HTML is checked.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use halo_catalog::AppEntry;
use halo_model::subscription::{PayloadContent, SubscriptionStatus};
use halo_poc::{
    BoxFuture, Change, ChangeSink, ClinicalContext, ContextPlan, HttpOptions, LocalResources,
    MemoryIdMap, NotificationReceiver, RestHookSecret, SofaClient, SofaLauncher, StaticToken,
    SubscriptionManager, rest_hook_channel,
};
use halo_smart_app_example::{AppConfig, DEFAULT_SCOPES, router};
use reference_sofa::{CatalogSource, Client, Config, IN_MEMORY, Login, ReferenceSofa};
use serde_json::{Value, json};

const APP_ID: &str = "7c1e3a5b-2d4f-4a6b-8c9d-0e1f2a3b4c5d";
const APP_CLIENT: &str = "halo-example-app";
const EMR_CLIENT: &str = "halo-example-emr";
const EMR_SECRET: &str = "halo-example-emr-secret";
const EMR_SCOPES: &str = "Context.write system/Subscription.cruds";

/// The EMR's chart: a patient and one earlier Observation, sent along at `$set-context`; and
/// what the SoFA told it about (focus, resource).
struct Chart(Mutex<BTreeMap<String, Value>>, Mutex<Vec<(String, Value)>>);

impl ChangeSink for Chart {
    fn apply(&self, change: Change) -> BoxFuture<'_, halo_poc::Result<Option<String>>> {
        Box::pin(async move {
            if let (Some(focus), Some(resource)) = (change.focus, change.resource) {
                self.1.lock().unwrap().push((focus, resource));
            }
            Ok(None)
        })
    }
}

impl LocalResources for Chart {
    fn resource<'a>(
        &'a self,
        reference: &'a str,
    ) -> BoxFuture<'a, halo_poc::Result<Option<Value>>> {
        Box::pin(async move { Ok(self.0.lock().unwrap().get(reference).cloned()) })
    }

    fn related<'a>(
        &'a self,
        _plan: &'a ContextPlan,
    ) -> BoxFuture<'a, halo_poc::Result<Vec<Value>>> {
        Box::pin(async move {
            Ok(vec![json!({
                "resourceType": "Observation", "id": "obs-1", "status": "final",
                "code": {"text": "Heart rate <bpm>"},
                "subject": {"reference": "Patient/p7"},
                "effectiveDateTime": "2026-01-05T10:00:00Z",
                "valueQuantity": {"value": 72, "unit": "/min"}
            })])
        })
    }
}

/// The cookies a browser keeps: `Set-Cookie` pairs in, a `Cookie` header out.
#[derive(Default)]
struct Jar(Mutex<BTreeMap<String, String>>);

impl Jar {
    fn keep(&self, response: &reqwest::Response) {
        let mut cookies = self.0.lock().unwrap();
        for value in response.headers().get_all("set-cookie") {
            let value = value.to_str().unwrap();
            let (name, rest) = value.split_once('=').unwrap();
            let (value, _) = rest.split_once(';').unwrap_or((rest, ""));
            if value.is_empty() {
                cookies.remove(name);
            } else {
                cookies.insert(name.to_string(), value.to_string());
            }
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> reqwest::Response {
        let header = self
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ");
        request.header("cookie", header).send().await.unwrap()
    }
}

// REQ: EX-02
// REQ: APP-06
// REQ: APP-17
// REQ: SEC-01
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_launches_shows_the_patient_and_writes_an_observation() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let sofa = ReferenceSofa::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database: IN_MEMORY.into(),
        catalog: Some(CatalogSource::Inline(json!([]))),
        login: Login::AutoApprove {
            user: "dr-gagnon".into(),
            fhir_user: Some("Practitioner/dr-1".into()),
        },
        // The EMR here sets contexts with its backend-services token, which names no
        // clinician: the SoFA's userless mode (D-18).
        userless_launches: true,
        clients: vec![
            Client::point_of_care(EMR_CLIENT, EMR_SECRET, EMR_SCOPES),
            Client::public_app(APP_CLIENT, APP_ID, &base, DEFAULT_SCOPES),
        ],
        development_mode: true,
        ..Config::default()
    })
    .await
    .unwrap();
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = log.clone();
    let config = AppConfig::public(
        &base,
        APP_CLIENT,
        DEFAULT_SCOPES,
        std::slice::from_ref(&sofa.fhir_base),
    )
    .unwrap()
    .framed_by(["http://emr.example.ca:8443"])
    .unwrap()
    .log_to(Arc::new(move |line: &str| {
        sink.lock().unwrap().push(line.to_string())
    }));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router(config)).await;
    });
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // The EMR: its token, then `$set-context` for Patient/p7 with a banner asked for.
    let discovery: Value = browser
        .get(format!(
            "{}/.well-known/smart-configuration",
            sofa.fhir_base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let response: Value = browser
        .post(discovery["token_endpoint"].as_str().unwrap())
        .basic_auth(EMR_CLIENT, Some(EMR_SECRET))
        .form(&[("grant_type", "client_credentials"), ("scope", EMR_SCOPES)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = response["access_token"].as_str().unwrap().to_string();
    let client = SofaClient::new(
        &sofa.fhir_base,
        Arc::new(StaticToken::new(token)),
        HttpOptions::default(),
    )
    .unwrap();
    let chart = Arc::new(Chart(
        Mutex::new(BTreeMap::from([
            (
                "Patient/p7".to_string(),
                json!({"resourceType": "Patient", "id": "p7", "gender": "female", "birthDate": "1984-03-02",
                   "name": [{"family": "Gagnon", "given": ["Marie"]}]}),
            ),
            (
                "Practitioner/dr-1".to_string(),
                json!({"resourceType": "Practitioner", "id": "dr-1",
                   "name": [{"family": "Tremblay", "given": ["Luc"]}]}),
            ),
        ])),
        Mutex::default(),
    ));
    let id_map = Arc::new(MemoryIdMap::new());
    let secret = RestHookSecret::generate().unwrap();
    let receiver = NotificationReceiver::builder(client.clone(), id_map.clone(), chart.clone())
        .expect_header("Authorization", secret.header_value())
        .build();
    let emr_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let emr_base = format!("http://{}", emr_listener.local_addr().unwrap());
    let emr = tokio::spawn(async move {
        let endpoint = axum::Router::new().nest("/notify", halo_poc::rest_hook::router(receiver));
        let _ = axum::serve(emr_listener, endpoint).await;
    });
    let subscription = SubscriptionManager::new(client.clone())
        .subscribe(rest_hook_channel(
            format!("{emr_base}/notify"),
            PayloadContent::FullResource,
            &secret,
            None,
        ))
        .await
        .unwrap();
    assert_eq!(subscription.status, SubscriptionStatus::Active);
    let launcher = SofaLauncher::new(client, chart.clone(), id_map);
    let entry: AppEntry = serde_json::from_value(json!({
        "id": APP_ID, "name": "Example app", "description": "d", "descriptionShort": "d",
        "iconUrl": "https://app.example.org/i.png", "privacyPolicyUrl": "https://app.example.org/p",
        "termsOfServiceUrl": "https://app.example.org/t", "launchUrl": format!("{base}/launch"),
        "contacts": [], "publisher": {"id": "p", "name": "P"},
        "scopes": DEFAULT_SCOPES.split(' ').collect::<Vec<_>>()
    }))
    .unwrap();
    let mut clinical = ClinicalContext::default()
        .with("Patient/p7")
        .user("Practitioner/dr-1");
    clinical.need_patient_banner = Some(true);
    let launch = launcher.launch(&entry, &clinical).await.unwrap();

    // The browser: launch → authorize → callback → the session's page, redirects and cookies by
    // hand.
    let location = |response: &reqwest::Response| -> String {
        assert!(
            response.status().is_redirection(),
            "expected a redirect, got {}",
            response.status()
        );
        response.headers()["location"].to_str().unwrap().to_string()
    };
    let jar = Jar::default();
    let response = browser.get(launch.url.as_str()).send().await.unwrap();
    // Only the EMR named may frame the app; nobody else, not even the SoFA.
    assert_eq!(
        response.headers()["content-security-policy"],
        "frame-ancestors http://emr.example.ca:8443"
    );
    jar.keep(&response);
    let authorize = location(&response);
    let callback = location(&browser.get(&authorize).send().await.unwrap());
    assert!(
        callback.starts_with(&format!("{base}/callback?")),
        "{callback}"
    );
    // Another browser, without the launch's cookie, cannot complete it (login CSRF) and is told
    // what to do; the launch stays usable for its own browser, whose cookie the callback needs.
    let response = browser.get(&callback).send().await.unwrap();
    assert_eq!(response.status(), 400);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("<h1>Your browser blocked this app</h1>"),
        "{html}"
    );
    let launch = launcher.launch(&entry, &clinical).await.unwrap();
    let response = browser.get(launch.url.as_str()).send().await.unwrap();
    jar.keep(&response);
    let authorize = location(&response);
    let callback = location(&browser.get(&authorize).send().await.unwrap());
    let response = jar.send(browser.get(&callback)).await;
    assert_eq!(response.status(), 303);
    jar.keep(&response);
    let page_path = location(&response);
    assert!(page_path.starts_with("/s/"), "{page_path}");
    let page_url = format!("{base}{page_path}");
    assert_eq!(response.headers()["referrer-policy"], "no-referrer");

    // The session's page needs the session's cookie, not only its URL.
    let response = browser.get(&page_url).send().await.unwrap();
    assert_eq!(response.status(), 400);
    let response = jar.send(browser.get(&page_url)).await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("class=\"banner\"><strong>Marie Gagnon</strong>"),
        "{html}"
    );
    assert!(html.contains("born 1984-03-02"), "{html}");
    // The EMR's Observation, escaped.
    assert!(html.contains("Observations (1)"), "{html}");
    assert!(html.contains("Heart rate &lt;bpm&gt;"), "{html}");
    assert!(html.contains("72 /min"), "{html}");

    // The form writes a body weight; the page lists it afterwards.
    let response = jar
        .send(
            browser
                .post(format!("{page_url}/observations"))
                .form(&[("weight_kg", "61.5")]),
        )
        .await;
    assert_eq!(response.status(), 303, "{:?}", response.text().await);
    let html = jar.send(browser.get(&page_url)).await.text().await.unwrap();
    assert!(html.contains("Observations (2)"), "{html}");
    assert!(html.contains("Body weight</td><td>61.5 kg"), "{html}");
    // The write reached the EMR, about its own patient.
    let notified = chart.1.lock().unwrap().clone();
    let weight = notified
        .iter()
        .find(|(focus, r)| {
            focus.starts_with("Observation/") && r["valueQuantity"]["value"] == json!(61.5)
        })
        .unwrap_or_else(|| panic!("the EMR was not told about the weight: {notified:?}"));
    assert_eq!(weight.1["subject"]["reference"], "Patient/p7");

    // A bad weight is refused without writing.
    let response = jar
        .send(
            browser
                .post(format!("{page_url}/observations"))
                .form(&[("weight_kg", "-3")]),
        )
        .await;
    assert_eq!(response.status(), 400);

    // A launch from a FHIR server the app does not trust gets the error page.
    let response = browser
        .get(format!(
            "{base}/launch?iss=http%3A%2F%2F127.0.0.1%3A1%2Ffhir&launch={}",
            launch.launch_id
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("<h1>The app could not be launched</h1>"),
        "{html}"
    );
    assert!(html.contains("<code>issuer_not_allowed</code>"), "{html}");

    // A session id nobody was given.
    let response = browser
        .get(format!("{base}/s/not-a-session"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    // After `$clear-context` the app's token is dead (401): the session ended, which is not a
    // missing permission.
    launcher.end(&launch).await.result.unwrap();
    let response = jar.send(browser.get(&page_url)).await;
    assert_eq!(response.status(), 401);
    let html = response.text().await.unwrap();
    assert!(html.contains("<h1>Session ended</h1>"), "{html}");
    assert!(
        html.contains("Please open the app again from your clinical system."),
        "{html}"
    );

    // Every refused launch left a line with its code and the developer detail, and no line
    // holds the authorization code (nor any token).
    let log = log.lock().unwrap().clone();
    let code = url::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    for expected in [
        "sign-in failed: code=browser_mismatch detail=authorization callback rejected",
        "launch failed: code=issuer_not_allowed detail=issuer http://127.0.0.1:1/fhir is not on \
         the allow-list",
        "session page refused: code=browser_mismatch",
        "FHIR request failed: code=session_expired",
    ] {
        assert!(
            log.iter().any(|line| line.starts_with(expected)),
            "no {expected:?} in {log:#?}"
        );
    }
    assert!(
        log.iter()
            .all(|line| !line.contains(&code) && !line.contains("Bearer")),
        "{log:#?}"
    );

    server.abort();
    emr.abort();
    sofa.shutdown().await;
}
