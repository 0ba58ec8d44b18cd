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
use support::{POC, POC_SECRET, REDIRECT, free_port, spawn_sofa, version_and_value};

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

/// Three instances on one fresh schema behind a round-robin balancer, and an HTTP client that
/// opens a new connection per request (so the balancer spreads every request).
struct Cluster {
    dir: PathBuf,
    schema: String,
    public: String,
    base: String,
    ports: [u16; 3],
    instances: Vec<Instance>,
    served: Arc<Vec<AtomicUsize>>,
    http: reqwest::Client,
}

impl Cluster {
    async fn start(url: &str) -> Cluster {
        let dir =
            std::env::temp_dir().join(format!("halo-cluster-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let catalog = support::catalog(APP_ID);
        std::fs::write(dir.join("catalog.json"), catalog.to_string()).unwrap();
        let schema = format!("t_cluster_{}", uuid::Uuid::new_v4().simple());
        let balancer = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let public = format!("http://{}", balancer.local_addr().unwrap());
        let base = format!("{public}/fhir");
        let ports = [free_port(), free_port(), free_port()];
        let instances: Vec<Instance> = ports
            .iter()
            .map(|&port| Instance::start(&write_config(&dir, port, &public, url, &schema), port))
            .collect();
        let served: Arc<Vec<AtomicUsize>> = Arc::new((0..3).map(|_| AtomicUsize::new(0)).collect());
        tokio::spawn(balance(balancer, ports.to_vec(), served.clone()));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        Cluster {
            dir,
            schema,
            public,
            base,
            ports,
            instances,
            served,
            http,
        }
    }

    /// The EMR's access token, through the balancer.
    async fn poc_token(&self) -> String {
        support::poc_token(&self.http, &self.base).await
    }

    /// A client of the EMR on `base`.
    fn client(&self, base: &str, token: &str) -> SofaClient {
        let options = HttpOptions {
            timeout: Duration::from_secs(5),
            ..HttpOptions::default()
        };
        SofaClient::new(base, Arc::new(StaticToken::new(token.to_string())), options).unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
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
# A rotation signs at once and reaches every instance within a fifth of a second.
key_activation_secs = 0
key_refresh_ms = 200

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
// REQ: CLU-04, CLU-01, CLU-02, IDP-06
async fn three_instances_behind_a_balancer_act_as_one_sofa_and_survive_losing_one() {
    let Some(url) = postgres_url() else {
        return;
    };
    let mut cluster = Cluster::start(&url).await;
    let (base, http, schema, served) = (
        cluster.base.clone(),
        cluster.http.clone(),
        cluster.schema.clone(),
        cluster.served.clone(),
    );
    let poc_token = cluster.poc_token().await;
    let poc = cluster.client(&base, &poc_token);
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
    for instance in &cluster.instances {
        let direct = cluster.client(&instance.base(), &poc_token);
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
        .post(format!("{}/auth/token", cluster.instances[1].base()))
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
    for instance in [&cluster.instances[0], &cluster.instances[2]] {
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

    // Keys rotated by one process (here the operator's, on the shared database) sign the
    // tokens every instance issues from then on, and every instance verifies them.
    let old_kid = access_token_kid(&app);
    let store = halo_sofa_server::store::PostgresStore::connect_with(
        &url,
        halo_sofa_server::store::PostgresOptions {
            schema: Some(schema.clone()),
            max_connections: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    halo_sofa_server::auth::KeyRing::rotate(
        &store,
        None,
        halo_sofa_server::auth::KeyUse::AccessToken,
        chrono::Utc::now(),
        halo_sofa_server::auth::Rotation {
            activation_delay: Duration::ZERO,
            token_lifetime: Duration::from_secs(3600),
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    for instance in &cluster.instances {
        let jwks: Value = http
            .get(format!("{}/auth/jwks", instance.base()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|k| k["kid"].as_str())
            .collect();
        assert!(
            kids.contains(&old_kid.as_str()),
            "{kids:?}: the old key stays"
        );
        assert_eq!(
            kids.len(),
            3,
            "{kids:?}: the new ES256 key beside the old and the RS256"
        );
    }
    let (_, rotated, rotated_patient, _) = support::launch(&http, &base, &poc, APP, APP_ID).await;
    assert_ne!(
        access_token_kid(&rotated),
        old_kid,
        "signed with the new key"
    );
    for instance in &cluster.instances {
        let read = http
            .get(format!("{}/Patient/{rotated_patient}", instance.base()))
            .bearer_auth(&rotated)
            .send()
            .await
            .unwrap();
        assert_eq!(
            read.status().as_u16(),
            200,
            "the new key verifies on {}",
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
    cluster.instances[1].kill();
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
}

/// A websocket bound to `instance_port` with `token`; the first frame it answered.
async fn bind(
    cluster: &Cluster,
    websocket_url: &str,
    instance_port: u16,
    token: &str,
) -> (
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
    String,
) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    // The token names the public (balanced) URL; the test picks the instance itself.
    let public = cluster.public.replacen("http://", "ws://", 1);
    let direct = websocket_url.replacen(&public, &format!("ws://127.0.0.1:{instance_port}"), 1);
    assert_ne!(direct, websocket_url, "{websocket_url}");
    let (mut socket, _) = tokio_tungstenite::connect_async(direct.as_str())
        .await
        .unwrap();
    socket
        .send(Message::text(format!("bind-with-token {token}")))
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .expect("the SoFA answers the bind")
        .unwrap()
        .unwrap();
    (socket, first.into_text().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// REQ: CLU-03, CLU-02
async fn a_websocket_bound_on_one_instance_gets_every_write_made_on_the_others_before_it_commits() {
    use futures_util::StreamExt;
    let Some(url) = postgres_url() else {
        return;
    };
    let cluster = Cluster::start(&url).await;
    let poc_token = cluster.poc_token().await;
    let poc = cluster.client(&cluster.base, &poc_token);
    let id_map = Arc::new(MemoryIdMap::new());
    let chart = Arc::new(Chart::default());
    let receiver =
        NotificationReceiver::builder(poc.clone(), id_map.clone(), chart.clone()).build();
    let manager = SubscriptionManager::new(poc.clone());
    let subscription = manager
        .subscribe(halo_poc::websocket_channel(
            PayloadContent::FullResource,
            None,
        ))
        .await
        .unwrap();
    let id = subscription.id.clone().unwrap();
    receiver.track(&id, 0).await;

    // The binding token comes from instance 1; the socket binds on instance 0.
    let on = |i: usize| cluster.client(&cluster.instances[i].base(), &poc_token);
    let token = on(1).binding_token(&id).await.unwrap();
    let (mut socket, handshake) = bind(
        &cluster,
        &token.websocket_url,
        cluster.ports[0],
        &token.token,
    )
    .await;
    assert!(
        matches!(
            receiver.handle_frame(&handshake).await,
            Ok(halo_poc::Receipt::Handshake { .. })
        ),
        "{handshake}"
    );
    // Used once, on every instance: the same token is refused on instance 2.
    let (_refused, answer) = bind(
        &cluster,
        &token.websocket_url,
        cluster.ports[2],
        &token.token,
    )
    .await;
    assert!(
        answer.contains("OperationOutcome") && answer.contains("used or expired"),
        "{answer}"
    );
    let frames = Arc::new(AtomicUsize::new(0));
    {
        let (receiver, frames) = (receiver.clone(), frames.clone());
        tokio::spawn(async move {
            while let Some(Ok(message)) = socket.next().await {
                if let Ok(text) = message.into_text() {
                    receiver.handle_frame(&text).await.unwrap();
                    frames.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while on(2).read_subscription(&id).await.unwrap().status
        != halo_model::subscription::SubscriptionStatus::Active
    {
        assert!(
            Instant::now() < deadline,
            "the bound subscription never turned active"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Writes on instances 1 and 2 directly, and through the balancer: each reaches the socket
    // on instance 0 before the app is told it committed.
    let mut written = 0;
    for round in 0..3 {
        let (_, app, patient, _) =
            support::launch(&cluster.http, &cluster.base, &poc, APP, APP_ID).await;
        let bases = [
            cluster.instances[1].base(),
            cluster.instances[2].base(),
            cluster.base.clone(),
            cluster.base.clone(),
        ];
        for (i, base) in bases.iter().enumerate() {
            let value = round * 10 + i as u64;
            let (reference, _) = create(
                &cluster.http,
                base,
                &app,
                &support::observation(&patient, value, None),
            )
            .await
            .unwrap_or_else(|| panic!("a write on {base} commits"));
            written += 1;
            assert!(
                id_map.local_for(&reference).await.unwrap().is_some(),
                "{reference} committed on {base} before the EMR had it"
            );
        }
    }
    // REQ: CLU-02
    // An asynchronous write accepted by instance 1 is answered on instance 2, once its frame
    // reached the socket on instance 0.
    let (_, app, patient, _) =
        support::launch(&cluster.http, &cluster.base, &poc, APP, APP_ID).await;
    let accepted = cluster
        .http
        .post(format!("{}/Observation", cluster.instances[1].base()))
        .bearer_auth(&app)
        .header("prefer", "respond-async")
        .header("content-type", "application/fhir+json")
        .body(support::observation(&patient, 99, None).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status().as_u16(), 202);
    let status_url = accepted.headers()["content-location"]
        .to_str()
        .unwrap()
        .replacen(&cluster.base, &cluster.instances[2].base(), 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    let stored: Value = loop {
        let answer = cluster
            .http
            .get(&status_url)
            .bearer_auth(&app)
            .send()
            .await
            .unwrap();
        if answer.status().as_u16() != 202 {
            assert_eq!(answer.status().as_u16(), 201, "{status_url}");
            break answer.json().await.unwrap();
        }
        assert!(Instant::now() < deadline, "{status_url} never finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    written += 1;
    let reference = format!("Observation/{}", stored["id"].as_str().unwrap());
    assert!(id_map.local_for(&reference).await.unwrap().is_some());
    assert_eq!(frames.load(Ordering::SeqCst), written);
    // Every instance's log agrees: every event committed, none compensated.
    let events = on(2).events(&id, &Default::default()).await.unwrap();
    let numbers: Vec<u64> = events
        .status
        .events
        .iter()
        .map(|e| e.event_number)
        .collect();
    assert_eq!(numbers, (1..=written as u64).collect::<Vec<_>>());
    assert_eq!(receiver.last_event(&id).await, Some(written as u64));

    // The instance holding the socket dies: a write on another instance waits the delivery
    // timeout (1 s here), is refused and compensated, as with a local socket that stopped
    // answering; nothing of it commits.
    let mut cluster = cluster;
    cluster.instances[0].kill();
    let started = Instant::now();
    let refused = create(
        &cluster.http,
        &cluster.instances[1].base(),
        &app,
        &support::observation(&patient, 100, None),
    )
    .await;
    assert!(refused.is_none(), "a write committed with its socket gone");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let (client, connection) =
        tokio_postgres::connect(&url.replace("?sslmode=disable", ""), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    let states: Vec<String> = client
        .query(
            &format!(
                "SELECT state FROM {}.events WHERE subscription_id = $1 AND event_number > $2
                 ORDER BY event_number",
                cluster.schema
            ),
            &[&id, &(written as i64)],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        states.first().map(String::as_str),
        Some("aborted"),
        "{states:?}"
    );
    assert!(
        states[1..].iter().all(|s| s == "outbox"),
        "the compensation waits in the outbox: {states:?}"
    );
    assert_eq!(
        committed(&url.replace("?sslmode=disable", ""), &cluster.schema, &id)
            .await
            .len(),
        written
    );
}

/// The `kid` of an access token's header.
fn access_token_kid(token: &str) -> String {
    use base64::Engine as _;
    let header = token.split('.').next().unwrap();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let header: Value = serde_json::from_slice(&header).unwrap();
    header["kid"].as_str().unwrap().to_string()
}
