//! The Prometheus endpoint of the reference SoFA over real HTTP on loopback (REQ OPS-02): after
//! a scripted flow the scrape, read with a Prometheus text-format parser, has each series with
//! the counts the flow made.
//!
//! One test in this file: the `metrics` facade has one recorder per process, so the counts
//! are this flow's alone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::Ordering;

use prom_text_format_parser::{Sample, Scrape, Type, ValueType};
use reference_sofa::{Config, ReferenceSofa};
use serde_json::json;

mod support;
use support::{
    APP_REDIRECT, APP_SCOPES, POC_SECRET, TempDir, app_token, flow_config, launch_id, receiver,
    set_context, subscribe, token,
};

async fn scrape(url: &str) -> Scrape {
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    Scrape::parse(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"))
}

/// The samples of `metric` whose labels include every `(name, value)` of `labels`, with the
/// metric's type.
fn matching<'a>(
    scrape: &'a Scrape,
    metric: &'a str,
    labels: &'a [(&str, &str)],
) -> impl Iterator<Item = (Type, &'a Sample)> {
    scrape
        .metrics
        .iter()
        .filter(move |m| m.name == metric)
        .flat_map(|m| m.samples.iter().map(move |s| (m.kind, s)))
        .filter(move |(_, s)| {
            labels
                .iter()
                .all(|(k, v)| s.labels.iter().any(|l| l.key == *k && l.value == *v))
        })
}

/// The value of a counter or gauge with these labels (0 when absent), or the number of
/// observations of a histogram (its `_count`).
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    matching(scrape, metric, labels)
        .filter(|(kind, s)| match kind {
            Type::Histogram => s.value.value_type == ValueType::Count,
            Type::Summary => panic!("{metric} is a summary, not a histogram"),
            _ => true,
        })
        .map(|(_, s)| s.value.value.as_f64())
        .sum()
}

/// The label values of every sample, for the check that none holds an id.
fn label_values(scrape: &Scrape) -> impl Iterator<Item = (&str, &str)> {
    scrape.metrics.iter().flat_map(|m| {
        m.samples.iter().flat_map(move |s| {
            s.labels
                .iter()
                .map(move |l| (m.name.as_str(), l.value.as_str()))
        })
    })
}

// REQ: OPS-02
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_flow_shows_in_each_series_with_its_counts() {
    let dir = TempDir::new("metrics");
    let (endpoint, received) = receiver().await;
    let sofa = ReferenceSofa::start(Config {
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..flow_config(dir.path().join("sofa.db"))
    })
    .await
    .unwrap();
    let base = sofa.fhir_base.clone();
    let metrics_url = sofa.metrics_url.clone().unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Two token requests for the PoC: a wrong secret, then the right one.
    let form = |secret: &'static str| {
        [
            ("grant_type", "client_credentials"),
            ("client_id", "poc"),
            ("client_secret", secret),
            ("scope", "system/Subscription.cruds Context.write"),
        ]
    };
    assert_eq!(token(&http, &base, &form("wrong")).await.0, 401);
    let (status, answer) = token(&http, &base, &form(POC_SECRET)).await;
    assert_eq!(status, 200, "{answer}");
    let poc = answer["access_token"].as_str().unwrap().to_string();

    // The PoC subscribes to its content updates.
    let id = subscribe(&http, &base, &poc, &endpoint).await;

    // A context, the app's token in it, a read and a write (notified before commit, D-08).
    let (status, answer) = set_context(&http, &base, &poc).await;
    assert_eq!(status, 200, "{answer}");
    let launch = launch_id(&answer);
    let (status, answer) = app_token(&http, &base, "app", APP_REDIRECT, &launch, APP_SCOPES).await;
    assert_eq!(status, 200, "{answer}");
    let app = answer["access_token"].as_str().unwrap().to_string();
    let patient = answer["patient"].as_str().unwrap().to_string();
    let read = http
        .get(format!("{base}/Patient/{patient}"))
        .bearer_auth(&app)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status().as_u16(), 200);
    let observation = json!({"resourceType": "Observation", "status": "final",
        "code": {"text": "body weight"}, "subject": {"reference": format!("Patient/{patient}")},
        "valueQuantity": {"value": 72, "unit": "kg"}});
    let write = http
        .post(format!("{base}/Observation"))
        .bearer_auth(&app)
        .header("content-type", "application/fhir+json")
        .body(observation.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(write.status().as_u16(), 201);
    let notifications = received.load(Ordering::SeqCst) as f64;
    // The handshake and at least the write's notification.
    assert!(notifications >= 2.0, "{notifications}");

    // Paths no route matches, inside and outside the FHIR base.
    for path in [format!("/fhir/a/b/{patient}/d"), format!("/nope/{patient}")] {
        let response = http
            .get(format!("{}{path}", sofa.root_url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 404, "{path}");
    }

    let scrape = scrape(&metrics_url).await;

    let http_requests = "halo_http_requests_total";
    let http_duration = "halo_http_request_duration_seconds";
    let read_labels = [
        ("method", "GET"),
        ("route", "/fhir/{resource_type}/{id}"),
        ("status", "200"),
    ];
    assert_eq!(value(&scrape, http_requests, &read_labels), 1.0);
    assert_eq!(value(&scrape, http_duration, &read_labels), 1.0);
    for (method, route, status, count) in [
        ("POST", "/fhir/auth/token", "200", 2.0),
        ("POST", "/fhir/auth/token", "401", 1.0),
        ("POST", "/fhir/$set-context", "200", 1.0),
        ("POST", "/fhir/{resource_type}", "201", 1.0),
        ("POST", "/fhir/Subscription", "201", 1.0),
        ("GET", "/fhir/auth/authorize", "302", 1.0),
    ] {
        let labels = [("method", method), ("route", route), ("status", status)];
        assert_eq!(
            value(&scrape, http_requests, &labels),
            count,
            "{method} {route} {status}"
        );
        assert_eq!(value(&scrape, http_duration, &labels), count);
    }
    // Both unmatched paths in one series, whatever the path.
    let unmatched = [("route", "unmatched"), ("status", "404")];
    assert_eq!(value(&scrape, http_requests, &unmatched), 2.0);
    assert_eq!(
        value(&scrape, http_requests, &[("status", "404")]),
        2.0,
        "a 404 outside the unmatched series"
    );
    // Templates only: no series names the patient, the launch or the subscription.
    for (metric, label) in label_values(&scrape) {
        for id in [&patient, &launch, &id] {
            assert!(!label.contains(id.as_str()), "{metric} {label}");
        }
    }

    let grants = "halo_grants_total";
    for (grant_type, outcome, count) in [
        ("client_credentials", "issued", 1.0),
        ("client_credentials", "invalid_client", 1.0),
        ("authorization_code", "issued", 1.0),
    ] {
        let labels = [("grant_type", grant_type), ("outcome", outcome)];
        assert_eq!(
            value(&scrape, grants, &labels),
            count,
            "{grant_type} {outcome}"
        );
    }
    assert_eq!(value(&scrape, grants, &[]), 3.0);

    let delivered = [("channel", "rest-hook"), ("outcome", "delivered")];
    assert_eq!(
        value(&scrape, "halo_notification_deliveries_total", &delivered),
        notifications
    );
    assert_eq!(
        value(
            &scrape,
            "halo_notification_delivery_duration_seconds",
            &delivered
        ),
        notifications
    );
    assert_eq!(
        value(
            &scrape,
            "halo_notification_deliveries_total",
            &[("outcome", "failed")]
        ),
        0.0
    );

    assert_eq!(value(&scrape, "halo_live_launches", &[]), 1.0);
    assert_eq!(value(&scrape, "halo_outbox_depth", &[]), 0.0);
    let store = "halo_store_operation_duration_seconds";
    let commits = value(
        &scrape,
        store,
        &[
            ("backend", "sqlite"),
            ("operation", "commit"),
            ("outcome", "ok"),
        ],
    );
    let begins = value(
        &scrape,
        store,
        &[
            ("backend", "sqlite"),
            ("operation", "begin"),
            ("outcome", "ok"),
        ],
    );
    let read_begins = value(
        &scrape,
        store,
        &[
            ("backend", "sqlite"),
            ("operation", "begin_read"),
            ("outcome", "ok"),
        ],
    );
    let units = value(
        &scrape,
        store,
        &[
            ("backend", "sqlite"),
            ("operation", "unit"),
            ("outcome", "ok"),
        ],
    );
    // At least the set-context, the code, the write and the subscription's creation, as
    // write units or transactions; every commit ends a transaction some begin opened (a read
    // transaction may commit too).
    assert!(units + commits >= 4.0, "{units} + {commits}");
    assert!(
        units >= 3.0,
        "the set-context, the code and the write: {units}"
    );
    assert!(
        begins + read_begins >= commits,
        "{begins} + {read_begins} < {commits}"
    );
    // Registered before any refusal, so an alert on it has a series.
    let refusals: Vec<(Type, &Sample)> =
        matching(&scrape, "halo_rate_limit_refusals_total", &[]).collect();
    assert_eq!(refusals.len(), 1);
    assert_eq!(refusals[0].0, Type::Counter);
    assert_eq!(refusals[0].1.value.value.as_f64(), 0.0);

    // The public listener does not serve the metrics.
    let public = reqwest::get(format!("{}/metrics", sofa.root_url))
        .await
        .unwrap();
    assert_eq!(public.status().as_u16(), 404);
    sofa.shutdown().await;
}
