//! A SoFA cluster (REQ CLU-04): three reference SoFA processes on one PostgreSQL database
//! behind a round-robin balancer on loopback, with an EMR on `halo-poc` and apps writing
//! through the balancer. Every request of the test opens a new connection, so consecutive
//! requests of one flow land on different instances (no sticky sessions).
//!
//! Needs the PostgreSQL test server (`scripts/start-test-postgres`, `HALO_TEST_POSTGRES_URL`);
//! `HALO_SKIP_POSTGRES_TESTS=1` skips it.

// Harness scaffolding outside #[test] functions: a broken harness should fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use halo_model::subscription::PayloadContent;
use halo_poc::{
    BoxFuture, Change, ChangeSink, HttpOptions, IdMapStore, MemoryIdMap, NotificationReceiver,
    RestHookSecret, SofaClient, StaticToken, SubscriptionManager, rest_hook_channel,
};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};

mod support;
use support::{POC, POC_SECRET, REDIRECT, free_port, spawn_sofa, token, version_and_value};

const APP: &str = "cluster-app";
const APP_ID: &str = "9c1f3c2e-7a4d-4e8b-9c6f-1d2e3f4a5b6d";

fn postgres_url() -> Option<String> {
    if std::env::var_os("HALO_SKIP_POSTGRES_TESTS").is_some_and(|v| v == "1") {
        return None;
    }
    Some(std::env::var("HALO_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        "postgres://halo:halo-test@127.0.0.1:5432/halo_test?sslmode=disable".to_string()
    }))
}

/// One reference SoFA process.
struct Instance {
    child: Option<Child>,
    port: u16,
}

impl Instance {
    fn start(config: &Path, port: u16) -> Instance {
        let child = spawn_sofa(config, Stdio::inherit());
        assert!(child.is_some(), "instance on {port} did not start");
        Instance { child, port }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}/fhir", self.port)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A round-robin TCP balancer: each new connection goes to the next instance that accepts it.
async fn balance(listener: TcpListener, backends: Vec<u16>, served: Arc<Vec<AtomicUsize>>) {
    let next = AtomicUsize::new(0);
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            continue;
        };
        let start = next.fetch_add(1, Ordering::SeqCst);
        let mut chosen = None;
        for i in 0..backends.len() {
            let index = (start + i) % backends.len();
            if let Ok(outbound) = TcpStream::connect(("127.0.0.1", backends[index])).await {
                chosen = Some((index, outbound));
                break;
            }
        }
        let Some((index, mut outbound)) = chosen else {
            continue;
        };
        served[index].fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
        });
    }
}

/// The EMR's chart: local id to (version, value); every heartbeat and event counted.
#[derive(Default)]
struct Chart {
    records: Mutex<BTreeMap<String, (String, String)>>,
    next: AtomicU64,
}

impl ChangeSink for Chart {
    fn apply(&self, change: Change) -> BoxFuture<'_, halo_poc::Result<Option<String>>> {
        Box::pin(async move {
            let focus = change.focus.clone().unwrap_or_default();
            if !focus.starts_with("Observation/") {
                return Ok(None);
            }
            let mut records = self.records.lock().unwrap();
            if change.method.as_deref() == Some("DELETE") {
                if let Some(local) = &change.local {
                    records.remove(local);
                }
                return Ok(None);
            }
            let value = version_and_value(change.resource.as_ref());
            match &change.local {
                Some(local) => {
                    records.insert(local.clone(), value);
                    Ok(None)
                }
                None => {
                    let local = format!(
                        "Observation/emr-{}",
                        self.next.fetch_add(1, Ordering::SeqCst)
                    );
                    records.insert(local.clone(), value);
                    Ok(Some(local))
                }
            }
        })
    }
}

/// An app create through `base`; the reference and version when the app was told 201.
async fn create(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    body: &Value,
) -> Option<(String, String)> {
    let response = http
        .post(format!("{base}/Observation"))
        .bearer_auth(token)
        .header("content-type", "application/fhir+json")
        .body(body.to_string())
        .send()
        .await
        .ok()?;
    let status = response.status();
    assert!(
        !status.is_server_error() || status.as_u16() == 503,
        "a write was answered {status}"
    );
    if status.as_u16() != 201 {
        return None;
    }
    let stored: Value = response.json().await.ok()?;
    Some((
        format!("Observation/{}", stored["id"].as_str()?),
        stored["meta"]["versionId"].as_str()?.to_string(),
    ))
}

fn write_config(dir: &Path, port: u16, public: &str, url: &str, schema: &str) -> PathBuf {
    let path = dir.join(format!("sofa-{port}.toml"));
    let config = format!(
        r#"listen = "127.0.0.1:{port}"
public_url = "{public}"
database = "{url}"
database_schema = "{schema}"
database_pool_size = 8
catalog = "catalog.json"
development_mode = true
# The EMR here is a backend with a client_credentials token: these tests are about the
# write path, not about who signed in.
userless_launches = true

[login]
mode = "auto-approve"
user = "dr-a"
fhir_user = "Practitioner/dr-a"

[lifetimes]
delivery_timeout_ms = 1000
settle_margin_ms = 500

[[clients]]
id = "{POC}"
secret = "{POC_SECRET}"
scopes = "Context.write system/Subscription.cruds"

[[clients]]
id = "{APP}"
redirect_uris = ["{REDIRECT}"]
scopes = "launch patient/Observation.cru patient/Patient.r"
app_id = "{APP_ID}"
launch_url = "https://apps.example.org/launch"
"#
    );
    std::fs::write(&path, config).unwrap();
    path
}

/// The committed history of a subscription's event log: reference to (version, value).
async fn committed(
    url: &str,
    schema: &str,
    subscription: &str,
) -> BTreeMap<String, (String, String)> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let rows = client
        .query(
            &format!(
                "SELECT state, record FROM {schema}.events WHERE subscription_id = $1
                 ORDER BY event_number"
            ),
            &[&subscription],
        )
        .await
        .unwrap();
    let mut history = BTreeMap::new();
    for row in rows {
        let state: String = row.get(0);
        if state != "committed" {
            continue;
        }
        let record: Value = serde_json::from_str(row.get::<_, &str>(1)).unwrap();
        let details = &record["details"];
        let reference = format!(
            "{}/{}",
            details["resourceType"].as_str().unwrap(),
            details["id"].as_str().unwrap()
        );
        if details["action"] == "DELETE" {
            history.remove(&reference);
        } else {
            history.insert(reference, version_and_value(details.get("resource")));
        }
    }
    history
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// REQ: CLU-04, CLU-01, CLU-02
async fn three_instances_behind_a_balancer_act_as_one_sofa_and_survive_losing_one() {
    let Some(url) = postgres_url() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("halo-cluster-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let catalog = support::catalog(APP_ID);
    std::fs::write(dir.join("catalog.json"), catalog.to_string()).unwrap();
    let schema = format!("t_cluster_{}", uuid::Uuid::new_v4().simple());
    let balancer = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public = format!("http://{}", balancer.local_addr().unwrap());
    let base = format!("{public}/fhir");
    let ports = [free_port(), free_port(), free_port()];
    let mut instances: Vec<Instance> = ports
        .iter()
        .map(|&port| Instance::start(&write_config(&dir, port, &public, &url, &schema), port))
        .collect();
    let served: Arc<Vec<AtomicUsize>> = Arc::new((0..3).map(|_| AtomicUsize::new(0)).collect());
    tokio::spawn(balance(balancer, ports.to_vec(), served.clone()));
    // A new connection per request: the balancer spreads every request.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();

    // The EMR, through the balancer.
    let (status, answer) = token(
        &http,
        &base,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", POC),
            ("client_secret", POC_SECRET),
            ("scope", "Context.write system/Subscription.cruds"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let poc_token = answer["access_token"].as_str().unwrap().to_string();
    let options = HttpOptions {
        timeout: Duration::from_secs(5),
        ..HttpOptions::default()
    };
    let poc = SofaClient::new(
        &base,
        Arc::new(StaticToken::new(poc_token.clone())),
        options,
    )
    .unwrap();
    let id_map = Arc::new(MemoryIdMap::new());
    let chart = Arc::new(Chart::default());
    let secret = RestHookSecret::generate().unwrap();
    let receiver = NotificationReceiver::builder(poc.clone(), id_map.clone(), chart.clone())
        .expect_header("Authorization", secret.header_value())
        .build();
    let heartbeats = Arc::new(AtomicUsize::new(0));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/notify", listener.local_addr().unwrap());
    {
        let (counted, receiver) = (heartbeats.clone(), receiver.clone());
        let app = axum::Router::new().route(
            "/notify",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let (counted, receiver) = (counted.clone(), receiver.clone());
                    async move {
                        let pairs: Vec<(&str, &str)> = headers
                            .iter()
                            .filter_map(|(n, v)| Some((n.as_str(), v.to_str().ok()?)))
                            .collect();
                        match receiver.handle(&pairs, &body).await {
                            Ok(halo_poc::Receipt::Heartbeat { .. }) => {
                                counted.fetch_add(1, Ordering::SeqCst);
                                axum::http::StatusCode::OK
                            }
                            Ok(_) => axum::http::StatusCode::OK,
                            Err(_) => axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        }
                    }
                },
            ),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    let manager = SubscriptionManager::new(poc.clone())
        .activation(Duration::from_secs(10), Duration::from_millis(20));
    let subscription = manager
        .subscribe(rest_hook_channel(
            endpoint,
            PayloadContent::FullResource,
            &secret,
            Some(1),
        ))
        .await
        .unwrap();
    let subscription_id = subscription.id.clone().unwrap();
    receiver.track(&subscription_id, 0).await;

    // Launches and writes spread over the instances; each write reaches the EMR before the
    // app is told it committed.
    let mut told = BTreeMap::new();
    let mut tokens = Vec::new();
    for round in 0..3 {
        let (_, app, patient, code) = support::launch(&http, &base, &poc, APP, APP_ID).await;
        for value in 0..3 {
            let (reference, version) = create(
                &http,
                &base,
                &app,
                &support::observation(&patient, round * 10 + value, None),
            )
            .await
            .expect("a write through the balancer commits");
            let local = id_map.local_for(&reference).await.unwrap();
            assert!(
                local.is_some(),
                "{reference} committed before the EMR had it"
            );
            told.insert(reference, version);
        }
        tokens.push((app, code));
    }
    // REQ: CLU-02
    // Every instance answers $status and $events alike, straight from the shared store.
    let mut views = Vec::new();
    for instance in &instances {
        let direct = SofaClient::new(
            &instance.base(),
            Arc::new(StaticToken::new(poc_token.clone())),
            HttpOptions::default(),
        )
        .unwrap();
        let status = direct.status(&subscription_id).await.unwrap();
        let events = direct
            .events(&subscription_id, &Default::default())
            .await
            .unwrap();
        let numbers: Vec<u64> = events
            .status
            .events
            .iter()
            .map(|e| e.event_number)
            .collect();
        views.push((status.events_since_subscription_start, numbers));
    }
    assert_eq!(views[0].1, (1..=9).collect::<Vec<u64>>());
    assert!(views.iter().all(|v| *v == views[0]), "{views:?}");

    // A code replayed on one instance revokes what it produced on every instance.
    let (app, code) = tokens[0].clone();
    let replayed = http
        .post(format!("{}/auth/token", instances[1].base()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", APP),
            ("code_verifier", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status().as_u16(), 400);
    for instance in [&instances[0], &instances[2]] {
        let read = http
            .get(format!("{}/Observation", instance.base()))
            .bearer_auth(&app)
            .send()
            .await
            .unwrap();
        assert_eq!(
            read.status().as_u16(),
            401,
            "a revoked token read on {}",
            instance.port
        );
    }

    // Heartbeats: one per period for the cluster, not one per instance (each instance finds
    // the subscription due; only the one that claims it sends).
    let before = heartbeats.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(4_200)).await;
    let sent = heartbeats.load(Ordering::SeqCst) - before;
    assert!(
        (2..=5).contains(&sent),
        "{sent} heartbeats in 4.2 s at a 1 s period"
    );

    // Lose an instance mid-traffic: nothing committed is lost, the EMR stays exact.
    let (_, app, patient, _) = support::launch(&http, &base, &poc, APP, APP_ID).await;
    let writes = {
        let (http, base, app, patient) = (http.clone(), base.clone(), app.clone(), patient.clone());
        tokio::spawn(async move {
            let mut told = Vec::new();
            for value in 100..130 {
                if let Some(written) = create(
                    &http,
                    &base,
                    &app,
                    &support::observation(&patient, value, None),
                )
                .await
                {
                    told.push(written);
                }
            }
            told
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    instances[1].kill();
    for (reference, version) in writes.await.unwrap() {
        told.insert(reference, version);
    }
    assert!(served[0].load(Ordering::SeqCst) > 0 && served[2].load(Ordering::SeqCst) > 0);

    // Quiet: the survivors settle what the lost instance left (after its deadline), and the
    // EMR catches up.
    let deadline = Instant::now() + Duration::from_secs(20);
    let history = loop {
        let history = committed(
            &url.replace("?sslmode=disable", ""),
            &schema,
            &subscription_id,
        )
        .await;
        let status = poc.status(&subscription_id).await.unwrap();
        let since = status.events_since_subscription_start.unwrap_or(0);
        let seen = receiver.last_event(&subscription_id).await.unwrap_or(0);
        let chart: BTreeMap<String, (String, String)> = {
            let records = chart.records.lock().unwrap().clone();
            let mut mapped = BTreeMap::new();
            for (local, value) in records {
                if let Some(sofa) = id_map.sofa_for(&local).await.unwrap() {
                    mapped.insert(sofa, value);
                }
            }
            mapped
        };
        if seen >= since && chart == history {
            break history;
        }
        assert!(
            Instant::now() < deadline,
            "the EMR never caught up: seen {seen} of {since}; chart {chart:?}; history {history:?}"
        );
        // A heartbeat or the next event would trigger recovery; ask for it now.
        let _ = halo_poc::Watchdog::new(
            manager.clone(),
            receiver.clone(),
            halo_poc::CurrentSubscription::new(subscription.clone()),
        )
        .check()
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for (reference, version) in &told {
        assert_eq!(
            history.get(reference).map(|(v, _)| v),
            Some(version),
            "{reference} was acknowledged to the app"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
