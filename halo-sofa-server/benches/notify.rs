//! The write path with deliver-before-commit, end to end on loopback: an app's
//! `POST /Observation` through the real router and resource server, notified to one PoC
//! rest-hook (an axum receiver answering 200), committed to SQLite, answered.
//!
//! Reports criterion's estimate of one round trip (write → PoC acknowledged → answered), then
//! the median and p99 of 500 timed round trips and the sequential writes per second.

// A bench is a test harness: a failure panics with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../tests/support/subscriptions.rs"]
mod subs;

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use halo_sofa_server::auth::Caller;
use serde_json::{Value, json};
use subs::{Harness, Mode, Receiver};

struct Setup {
    harness: Harness,
    _poc: Receiver,
    _dir: std::path::PathBuf,
    patient: String,
}

async fn setup() -> Setup {
    let dir = std::env::temp_dir().join(format!("halo-notify-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let harness = Harness::start(&dir.join("bench.db")).await;
    let poc = Receiver::start(Mode::Ok).await;
    harness.active_subscription("poc-0", &poc, "id-only").await;
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/halo/third-party-zedwerks/set-context-input-L.json"
    );
    let request: Value = serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
    let (status, output) = harness
        .send(reqwest::Method::POST, "poc-0", "/$set-context", &request)
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{output}");
    let launch = output["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "launchID")
        .unwrap()["valueString"]
        .as_str()
        .unwrap()
        .to_string();
    let text = output.to_string();
    let rest = text.split("Patient/").nth(1).unwrap();
    let patient = format!("Patient/{}", &rest[..36]);
    harness.tokens.add(
        "app",
        Caller::new("app", Some("Practitioner/dr"), "launch patient/*.cruds").in_launch(launch),
    );
    Setup {
        harness,
        _poc: poc,
        _dir: dir,
        patient,
    }
}

async fn round_trip(setup: &Setup) {
    let body = json!({"resourceType": "Observation", "status": "final",
        "code": {"text": "heart rate"}, "subject": {"reference": setup.patient}});
    let response = setup
        .harness
        .http
        .post(setup.harness.url("/Observation"))
        .bearer_auth("app")
        .header("content-type", "application/fhir+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
}

fn notify(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let setup = runtime.block_on(setup());

    let mut group = c.benchmark_group("notify");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("write_notify_commit_round_trip", |b| {
        b.to_async(&runtime).iter(|| round_trip(&setup));
    });
    group.finish();

    let mut times: Vec<Duration> = runtime.block_on(async {
        let mut times = Vec::with_capacity(500);
        for _ in 0..500 {
            let started = Instant::now();
            round_trip(&setup).await;
            times.push(started.elapsed());
        }
        times
    });
    times.sort();
    let total: Duration = times.iter().sum();
    println!(
        "notify round trip over {} writes: median {:?}, p99 {:?}, {:.0} writes/s with one PoC rest-hook",
        times.len(),
        times[times.len() / 2],
        times[times.len() * 99 / 100],
        times.len() as f64 / total.as_secs_f64()
    );
}

criterion_group!(benches, notify);
criterion_main!(benches);
