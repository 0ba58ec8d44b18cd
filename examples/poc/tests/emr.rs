//! The example EMR driven like a browser against the reference SoFA, with the example SMART app
//! (`halo-smart-client`) as the app it opens.

#![allow(clippy::unwrap_used)]

use halo_poc_example::{EMR_SCOPES, EmrConfig, router};
use halo_smart_app_example::{AppConfig, DEFAULT_SCOPES};
use reference_sofa::{CatalogSource, Client, Config, IN_MEMORY, Login, ReferenceSofa};
use serde_json::json;

const APP_ID: &str = "9b2d4f6a-8c1e-4a3b-9d5f-7e0a2c4b6d8f";
const APP_CLIENT: &str = "halo-example-app";
const EMR_CLIENT: &str = "halo-example-emr";
const EMR_SECRET: &str = "halo-example-emr-secret";

/// The `name=value` pairs a response sets, as a browser keeps them for the next request.
fn cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_string))
        .filter(|pair| !pair.ends_with('='))
        .collect()
}

fn location(response: &reqwest::Response) -> String {
    assert!(
        response.status().is_redirection(),
        "expected a redirect, got {}",
        response.status()
    );
    response.headers()["location"].to_str().unwrap().to_string()
}

// REQ: EX-03
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emr_launches_an_app_files_its_write_and_clears() {
    let app_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_base = format!("http://{}", app_listener.local_addr().unwrap());
    let emr_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let emr_base = format!("http://{}", emr_listener.local_addr().unwrap());
    let sofa = ReferenceSofa::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database: IN_MEMORY.into(),
        catalog: Some(CatalogSource::Inline(json!([{
            "id": APP_ID,
            "name": "Weight & Height",
            "description": "Records a body weight.",
            "descriptionShort": "Body weight",
            "iconUrl": "https://apps.example.org/w/icon.png",
            "privacyPolicyUrl": "https://apps.example.org/w/privacy",
            "termsOfServiceUrl": "https://apps.example.org/w/terms",
            "launchUrl": format!("{app_base}/launch"),
            "contacts": [
                {"url": "https://apps.example.org/w/help", "title": "Help"},
                {"email": "support@example.org", "title": "Support"}
            ],
            "publisher": {"id": "0b8e2f4a-5d6c-4e7f-8a9b-1c2d3e4f5a6b", "name": "HALO SDK contributors"},
            "scopes": DEFAULT_SCOPES.split(' ').collect::<Vec<_>>(),
        }]))),
        login: Login::AutoApprove {
            user: "dr-gagnon".into(),
            fhir_user: Some("Practitioner/dr-1".into()),
        },
        // The EMR here sets contexts with its backend-services token, which names no
        // clinician: the SoFA's userless mode (D-18).
        userless_launches: true,
        clients: vec![
            Client::point_of_care(EMR_CLIENT, EMR_SECRET, EMR_SCOPES),
            Client::public_app(APP_CLIENT, APP_ID, &app_base, DEFAULT_SCOPES),
        ],
        development_mode: true,
        ..Config::default()
    })
    .await
    .unwrap();
    let app = halo_smart_app_example::router(
        AppConfig::public(
            &app_base,
            APP_CLIENT,
            DEFAULT_SCOPES,
            std::slice::from_ref(&sofa.fhir_base),
        )
        .unwrap(),
    );
    let emr = router(EmrConfig {
        fhir_base: sofa.fhir_base.clone(),
        catalog_url: sofa.catalog_url.clone(),
        client_id: EMR_CLIENT.into(),
        client_secret: EMR_SECRET.into(),
        base_url: emr_base.clone(),
        user: "Practitioner/dr-1".into(),
    })
    .unwrap();
    let tasks = [
        tokio::spawn(async move {
            let _ = axum::serve(app_listener, app).await;
        }),
        tokio::spawn(async move {
            let _ = axum::serve(emr_listener, emr).await;
        }),
    ];
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // The chart page: the catalog (escaped), the patients, no launch yet.
    let html = browser
        .get(format!("{emr_base}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("<strong>Weight &amp; Height</strong>"),
        "{html}"
    );
    assert!(
        html.contains(&format!("<option value=\"{APP_ID}\">")),
        "{html}"
    );
    assert!(html.contains("Jean Roy (Patient/p8)"), "{html}");
    assert!(
        html.contains("<h2>Open launches</h2>\n<p>None.</p>"),
        "{html}"
    );
    let html = browser
        .get(format!("{emr_base}/notifications"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("No notifications yet."), "{html}");

    // Pick Jean Roy and the app: subscribe, `$set-context`, off to the launch URL.
    let response = browser
        .post(format!("{emr_base}/launch"))
        .form(&[("patient", "Patient/p8"), ("app_id", APP_ID)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let launch_url = url::Url::parse(&location(&response)).unwrap();
    assert!(
        launch_url
            .as_str()
            .starts_with(&format!("{app_base}/launch?")),
        "{launch_url}"
    );
    let query: std::collections::BTreeMap<String, String> =
        launch_url.query_pairs().into_owned().collect();
    assert_eq!(query.get("iss"), Some(&sofa.fhir_base));
    let launch_id = query["launch"].clone();

    // The app: launch → authorize → callback → its page, showing the EMR's patient. The app
    // ties the launch and then the session to this browser with cookies.
    let response = browser.get(launch_url.as_str()).send().await.unwrap();
    let binding = cookies(&response).join("; ");
    let authorize = location(&response);
    let callback = location(&browser.get(&authorize).send().await.unwrap());
    let response = browser
        .get(&callback)
        .header("cookie", &binding)
        .send()
        .await
        .unwrap();
    let session = cookies(&response).join("; ");
    let page_url = format!("{app_base}{}", location(&response));
    let html = browser
        .get(&page_url)
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("<strong>Jean Roy</strong>"), "{html}");

    // The app writes an Observation; the EMR filed it under a local id.
    let response = browser
        .post(format!("{page_url}/observations"))
        .header("cookie", &session)
        .form(&[("weight_kg", "80.2")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let html = browser
        .get(format!("{emr_base}/notifications"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("http-equiv=\"refresh\""), "{html}");
    assert!(
        html.contains("</td><td>Observation/emr-4</td></tr>"),
        "{html}"
    );
    assert!(!html.contains("Subscription: <code>none yet"), "{html}");

    // The open launch has a Clear button; clearing it ends the app's access.
    let html = browser
        .get(format!("{emr_base}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(&format!("name=\"launch_id\" value=\"{launch_id}\"")),
        "{html}"
    );
    assert!(html.contains("Weight &amp; Height for Jean Roy"), "{html}");
    let response = browser
        .post(format!("{emr_base}/clear"))
        .form(&[("launch_id", launch_id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let html = browser
        .get(format!("{emr_base}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("<h2>Open launches</h2>\n<p>None.</p>"),
        "{html}"
    );
    let response = browser
        .get(&page_url)
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // A second clear of the same launch is refused.
    let response = browser
        .post(format!("{emr_base}/clear"))
        .form(&[("launch_id", launch_id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    for task in tasks {
        task.abort();
    }
    sofa.shutdown().await;
}
