//! What metrics and TLS cost on loopback, side by side in one run (OPS-02, OPS-03):
//!
//! - a FHIR read (`GET /fhir/Patient/{id}` with an app's token) on an instance without
//!   metrics, on one with them, then the first again, now with the process's recorder installed
//!   (the store and grant series record, the HTTP layer is absent), alternated in rounds;
//! - `GET /healthz` over plain HTTP and over TLS, on a kept-alive connection, on a new
//!   connection each time (the TLS session resumed), and with a new client each time (a full
//!   handshake), alternated in rounds.
//!
//! `cargo test -p reference-sofa --bench overhead -- --measure` runs it in the test profile
//! (debug code, dependencies at opt-level 1); without `--measure` it runs a few iterations so
//! it keeps working.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use rcgen::{CertificateParams, KeyPair};
use reference_sofa::{Config, ReferenceSofa, RunningSofa, TlsConfig};

#[path = "../tests/support/mod.rs"]
mod support;
use support::{
    APP_REDIRECT, APP_SCOPES, POC_SECRET, TempDir, app_token, flow_config, launch_id, receiver,
    set_context, subscribe, token,
};

fn config(dir: &TempDir, name: &str) -> Config {
    flow_config(dir.path().join(format!("{name}.db")))
}

/// A launch and the app's token in it: the URL of the patient and the token.
async fn reader(sofa: &RunningSofa, http: &reqwest::Client) -> (String, String) {
    let base = &sofa.fhir_base;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "poc"),
        ("client_secret", POC_SECRET),
    ];
    let poc = token(http, base, &form).await.1["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (endpoint, _) = receiver().await;
    subscribe(http, base, &poc, &endpoint).await;
    let (status, answer) = set_context(http, base, &poc).await;
    assert_eq!(status, 200, "{answer}");
    let launch = launch_id(&answer);
    let (status, answer) = app_token(http, base, "app", APP_REDIRECT, &launch, APP_SCOPES).await;
    assert_eq!(status, 200, "{answer}");
    (
        format!("{base}/Patient/{}", answer["patient"].as_str().unwrap()),
        answer["access_token"].as_str().unwrap().to_string(),
    )
}

/// The mean time of `n` sequential GETs of `url`.
async fn time_gets(
    n: u32,
    client: impl Fn() -> reqwest::Client,
    url: &str,
    token: &str,
) -> Duration {
    let started = Instant::now();
    for _ in 0..n {
        let response = client().get(url).bearer_auth(token).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        response.bytes().await.unwrap();
    }
    started.elapsed() / n
}

fn micros(d: Duration) -> String {
    format!("{:>8.1} µs", d.as_secs_f64() * 1e6)
}

async fn metrics(n: u32) {
    let dir = TempDir::new("bench-metrics");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let plain = ReferenceSofa::start(config(&dir, "plain")).await.unwrap();
    let (plain_url, plain_token) = reader(&plain, &http).await;
    // Before any recorder exists in the process (it cannot be uninstalled after).
    let none = time_gets(n * 2, || http.clone(), &plain_url, &plain_token).await;

    let measured = ReferenceSofa::start(Config {
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..config(&dir, "measured")
    })
    .await
    .unwrap();
    let (url, token) = reader(&measured, &http).await;
    let (mut with, mut without) = (Duration::ZERO, Duration::ZERO);
    let rounds = 10;
    for _ in 0..rounds {
        with += time_gets(n, || http.clone(), &url, &token).await;
        without += time_gets(n, || http.clone(), &plain_url, &plain_token).await;
    }
    println!("FHIR read, {n} x {rounds} sequential GETs on loopback, mean per request:");
    println!("  no recorder in the process         {}", micros(none));
    println!(
        "  recorder, no HTTP layer             {}",
        micros(without / rounds)
    );
    println!(
        "  recorder and HTTP layer (metrics on){}",
        micros(with / rounds)
    );
    measured.shutdown().await;
    plain.shutdown().await;
}

async fn transport(n: u32) {
    let dir = TempDir::new("bench-tls");
    let key = KeyPair::generate().unwrap();
    let certificate = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let cert_file = dir.path().join("cert.pem");
    let key_file = dir.path().join("key.pem");
    std::fs::write(&cert_file, certificate.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let plain = ReferenceSofa::start(config(&dir, "http")).await.unwrap();
    let tls = ReferenceSofa::start(Config {
        tls: Some(TlsConfig {
            cert_file,
            key_file,
            client_ca_file: None,
        }),
        ..config(&dir, "https")
    })
    .await
    .unwrap();
    let root = reqwest::Certificate::from_pem(certificate.pem().as_bytes()).unwrap();
    let build = |pooled: bool| {
        let builder = reqwest::Client::builder().tls_certs_only([root.clone()]);
        let builder = if pooled {
            builder
        } else {
            builder.pool_max_idle_per_host(0)
        };
        builder.build().unwrap()
    };
    let kept = build(true);
    let unpooled = build(false);
    let plain_url = format!("{}/healthz", plain.root_url);
    let tls_url = format!("{}/healthz", tls.root_url);
    // Warm both paths once.
    time_gets(1, || kept.clone(), &plain_url, "-").await;
    time_gets(1, || kept.clone(), &tls_url, "-").await;
    let cases = [
        ("HTTP, kept-alive connection", &plain_url, 0),
        ("HTTP, new connection", &plain_url, 1),
        ("HTTP, new client", &plain_url, 2),
        ("TLS, kept-alive connection", &tls_url, 0),
        ("TLS, new connection (resumed)", &tls_url, 1),
        ("TLS, new client (full handshake)", &tls_url, 2),
    ];
    // The cases alternate in rounds, so a change of load on the machine touches them alike.
    let rounds = 5;
    let mut totals = [Duration::ZERO; 6];
    for _ in 0..rounds {
        for (total, (_, url, client)) in totals.iter_mut().zip(&cases) {
            *total += match client {
                0 => time_gets(n, || kept.clone(), url, "-").await,
                1 => time_gets(n, || unpooled.clone(), url, "-").await,
                _ => time_gets(n, || build(false), url, "-").await,
            };
        }
    }
    println!("GET /healthz, {n} x {rounds} sequential requests on loopback, mean per request:");
    for ((label, _, _), total) in cases.iter().zip(totals) {
        println!("  {label:<36}{}", micros(total / rounds));
    }
    tls.shutdown().await;
    plain.shutdown().await;
}

fn main() {
    let n = if std::env::args().any(|a| a == "--measure") {
        500
    } else {
        3
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        metrics(n).await;
        transport(n).await;
    });
}
