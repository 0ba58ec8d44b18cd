//! The EMR's copy never drifts from the SoFA, whatever fails (REQ SYNC-06): a fault-injection
//! harness over real processes and real HTTP.
//!
//! The world: the reference SoFA on SQLite as a child process (so it can be SIGKILLed and
//! restarted on the same file), an EMR built on `halo-poc` with its own chart and id map and two
//! subscriptions (a rest-hook whose endpoint injects faults, and a websocket), and apps that
//! create and update Observations in several launches over real HTTP.
//!
//! Each schedule, drawn from a seeded generator, runs a burst of app writes while faults fire:
//! the EMR endpoint answers 500, applies then answers after the delivery timeout, applies then
//! drops the connection, or applies slowly while the app's request is cancelled; the EMR
//! clears a launch while its writes are in flight; the database is held busy past the SoFA's
//! busy timeout; the SoFA is SIGKILLed at a random instant and restarted. Then the world is left
//! to go quiet (outboxes drained, gaps recovered with `$events`) and checked:
//!
//! - per subscription, event numbers are 1..n with no gap, and no number ever arrived at the
//!   EMR with two different contents;
//! - the EMR's chart (through its id map) equals the SoFA's committed history, and, for the
//!   launches not cleared, the resources the SoFA stores;
//! - every write the app was told succeeded is committed and in the EMR's chart.
//!
//! `HALO_FAULT_RUNS=N` runs N schedules (200 by default), `HALO_FAULT_SEED=S` starts from
//! another seed; a failure names the seed of its schedule.

// Harness scaffolding outside #[test] functions: a broken harness should fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use halo_model::subscription::PayloadContent;
use halo_poc::{
    BoxFuture, Change, ChangeSink, CurrentSubscription, HttpOptions, IdMapStore, MemoryIdMap,
    NotificationReceiver, RestHookSecret, SofaClient, StaticToken, SubscriptionManager, Watchdog,
    WebsocketConsumer, WebsocketOptions, rest_hook_channel, websocket_channel,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod support;
use support::{POC, POC_SECRET, REDIRECT, free_port, observation, spawn_sofa, version_and_value};

const APP: &str = "fault-app";
const APP_ID: &str = "5b1f3c2e-7a4d-4e8b-9c6f-1d2e3f4a5b6c";
/// The SoFA's delivery timeout and busy timeout: short, so a fault costs little time.
const DELIVERY_TIMEOUT_MS: u64 = 150;
const BUSY_TIMEOUT_MS: u64 = 150;

/// SplitMix64: a tiny generator whose sequence for a seed never changes with a crate version,
/// so a printed seed replays the same schedule.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// What the EMR's rest-hook endpoint does with one notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Fault {
    /// Apply and answer 200.
    None,
    /// Answer 500 without applying.
    Error,
    /// Apply, then answer after the SoFA stopped waiting.
    LateAfterApplying,
    /// Apply, then close the connection without an answer.
    DropAfterApplying,
    /// Apply slowly (the app's request is cancelled meanwhile), then answer 200.
    Slow,
}

/// Counts of what was injected, by kind.
#[derive(Debug, Default)]
struct Injected {
    endpoint: BTreeMap<String, u64>,
    cancelled_requests: u64,
    clears: u64,
    busy_holds: u64,
    kills: u64,
}

/// The EMR: chart, id map, receiver, and the fault plan of its rest-hook endpoint.
struct Emr {
    receiver: NotificationReceiver,
    id_map: Arc<MemoryIdMap>,
    chart: Arc<Chart>,
    /// Faults for the next notifications, consumed in order; empty means none.
    plan: Mutex<Vec<Fault>>,
    /// What each (subscription, event number) carried, as first seen, and every conflict.
    seen: Mutex<Seen>,
    endpoint: String,
    secret: RestHookSecret,
    injected: Mutex<Injected>,
}

#[derive(Default)]
struct Seen {
    contents: BTreeMap<(String, u64), String>,
    conflicts: Vec<String>,
}

impl Seen {
    fn record(&mut self, subscription: &str, number: u64, fingerprint: String) {
        let key = (subscription.to_string(), number);
        match self.contents.get(&key) {
            Some(first) if *first != fingerprint => self.conflicts.push(format!(
                "event {number} of {subscription} arrived as {first} and as {fingerprint}"
            )),
            Some(_) => {}
            None => {
                self.contents.insert(key, fingerprint);
            }
        }
    }
}

/// The EMR's local copy: local id to (version, value).
#[derive(Default)]
struct Chart {
    records: Mutex<BTreeMap<String, (String, String)>>,
    next: AtomicU64,
    seen: Mutex<Vec<(String, u64, String)>>,
}

/// `method focus version value`: what identifies an event's content.
fn fingerprint(method: &str, focus: &str, resource: Option<&Value>) -> String {
    let version = resource
        .and_then(|r| r.pointer("/meta/versionId"))
        .and_then(Value::as_str)
        .unwrap_or("-");
    let value = resource
        .and_then(|r| r.pointer("/valueQuantity/value"))
        .map_or("-".to_string(), Value::to_string);
    let focus = focus.rsplit('/').take(2).collect::<Vec<_>>();
    format!("{method} {}/{} v{version} {value}", focus[1], focus[0])
}

impl ChangeSink for Chart {
    fn apply(&self, change: Change) -> BoxFuture<'_, halo_poc::Result<Option<String>>> {
        Box::pin(async move {
            let method = change.method.clone().unwrap_or_default();
            let focus = change.focus.clone().unwrap_or_default();
            self.seen.lock().unwrap().push((
                change.subscription_id.clone(),
                change.event_number,
                fingerprint(&method, &focus, change.resource.as_ref()),
            ));
            // Only what apps write is filed (the launch's own resources are the EMR's).
            if !focus.starts_with("Observation/") {
                return Ok(None);
            }
            let mut records = self.records.lock().unwrap();
            match method.as_str() {
                "DELETE" => {
                    if let Some(local) = &change.local {
                        records.remove(local);
                    }
                    Ok(None)
                }
                _ => {
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
                }
            }
        })
    }
}

/// The rest-hook endpoint: a small HTTP/1.1 server so it can misbehave at the byte level
/// (answer late, drop the connection after applying).
async fn serve_rest_hook(listener: TcpListener, emr: Arc<Emr>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let emr = emr.clone();
        tokio::spawn(async move {
            let _ = handle_connection(stream, &emr).await;
        });
    }
}

async fn handle_connection(mut stream: TcpStream, emr: &Emr) -> std::io::Result<()> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let (head_end, length) = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (end + 4, length);
        }
    };
    while buffer.len() < head_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let body = buffer[head_end..head_end + length].to_vec();
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let header_refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();

    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let is_event = parsed.to_string().contains("event-notification");
    let fault = if is_event {
        let mut plan = emr.plan.lock().unwrap();
        if plan.is_empty() {
            Fault::None
        } else {
            plan.remove(0)
        }
    } else {
        Fault::None
    };
    if is_event {
        record_arrival(emr, &parsed);
        *emr.injected
            .lock()
            .unwrap()
            .endpoint
            .entry(format!("{fault:?}"))
            .or_default() += 1;
    }
    let status = match fault {
        Fault::Error => 500,
        _ => {
            if fault == Fault::Slow {
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
            match emr.receiver.handle(&header_refs, &body).await {
                Ok(_) => 200,
                Err(_) => 500,
            }
        }
    };
    match fault {
        Fault::DropAfterApplying => return stream.shutdown().await,
        Fault::LateAfterApplying => {
            tokio::time::sleep(Duration::from_millis(DELIVERY_TIMEOUT_MS * 2)).await;
        }
        _ => {}
    }
    let reason = if status == 200 { "OK" } else { "Error" };
    let answer =
        format!("HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    stream.write_all(answer.as_bytes()).await?;
    stream.shutdown().await
}

/// Records the content of each event a notification carries, as it arrived.
fn record_arrival(emr: &Emr, bundle: &Value) {
    let Some(entries) = bundle["entry"].as_array() else {
        return;
    };
    let status = &entries[0]["resource"];
    let parameter = |name: &str| {
        status["parameter"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == name)
            .cloned()
    };
    let subscription = parameter("subscription")
        .and_then(|p| {
            p["valueReference"]["reference"]
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_default();
    let subscription = subscription
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let Some(event) = parameter("notification-event") else {
        return;
    };
    let number = event["part"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "event-number")
        .and_then(|p| {
            p["valueString"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .or_else(|| p["valueInteger64"].as_str().and_then(|s| s.parse().ok()))
        })
        .unwrap_or(0);
    let entry = &entries[1];
    let print = fingerprint(
        entry["request"]["method"].as_str().unwrap_or_default(),
        entry["fullUrl"].as_str().unwrap_or_default(),
        entry.get("resource"),
    );
    emr.seen
        .lock()
        .unwrap()
        .record(&subscription, number, print);
}

/// The SoFA child process.
struct SofaProcess {
    child: Option<Child>,
    config: PathBuf,
}

impl SofaProcess {
    fn start(config: &Path) -> SofaProcess {
        let mut process = SofaProcess {
            child: None,
            config: config.to_path_buf(),
        };
        process.spawn();
        process
    }

    /// Starts the SoFA; like a supervisor, tries again when a start fails (the database may
    /// be held busy at that moment, which a start reports rather than waits out).
    fn spawn(&mut self) {
        let log = self.config.with_file_name("sofa.log");
        for _ in 0..50 {
            let stderr = std::fs::File::create(&log).expect("a log file");
            if let Some(child) = spawn_sofa(&self.config, Stdio::from(stderr)) {
                self.child = Some(child);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "the SoFA did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// SIGKILL: no shutdown, no flush, no goodbye.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for SofaProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One app's launch: its token and the resources it wrote.
struct Launch {
    launch_id: String,
    token: String,
    patient: String,
    cleared: bool,
}

struct World {
    dir: PathBuf,
    db: PathBuf,
    sofa: Arc<Mutex<SofaProcess>>,
    base: String,
    http: reqwest::Client,
    poc: SofaClient,
    emr: Arc<Emr>,
    subscriptions: Vec<(String, Watchdog)>,
    launches: Vec<Launch>,
    /// Writes the app was told succeeded: reference to the version it was told.
    acknowledged: BTreeMap<String, u64>,
    values: u64,
    /// The launch whose writes close each schedule.
    barrier: usize,
}

impl World {
    async fn start() -> World {
        let dir = std::env::temp_dir().join(format!(
            "halo-sync-faults-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("sofa.db");
        let port = free_port();
        let root = format!("http://127.0.0.1:{port}");
        let base = format!("{root}/fhir");
        let catalog = support::catalog(APP_ID);
        std::fs::write(dir.join("catalog.json"), catalog.to_string()).unwrap();
        let config = format!(
            r#"listen = "127.0.0.1:{port}"
database = "sofa.db"
catalog = "catalog.json"
development_mode = true
database_busy_timeout_ms = {BUSY_TIMEOUT_MS}
# The EMR sets contexts with its backend-services token (D-18's userless mode).
userless_launches = true

[login]
mode = "auto-approve"
user = "dr-a"
fhir_user = "Practitioner/dr-a"

[lifetimes]
delivery_timeout_ms = {DELIVERY_TIMEOUT_MS}

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
        let config_path = dir.join("sofa.toml");
        std::fs::write(&config_path, config).unwrap();
        let sofa = Arc::new(Mutex::new(SofaProcess::start(&config_path)));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();

        let poc_token = support::poc_token(&http, &base).await;
        let options = HttpOptions {
            timeout: Duration::from_secs(5),
            ..HttpOptions::default()
        };
        let poc = SofaClient::new(&base, Arc::new(StaticToken::new(poc_token)), options).unwrap();

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}/notify", listener.local_addr().unwrap());
        let id_map = Arc::new(MemoryIdMap::new());
        let chart = Arc::new(Chart::default());
        let secret = RestHookSecret::generate().unwrap();
        let receiver = NotificationReceiver::builder(poc.clone(), id_map.clone(), chart.clone())
            .expect_header("Authorization", secret.header_value())
            .build();
        let emr = Arc::new(Emr {
            receiver: receiver.clone(),
            id_map,
            chart,
            plan: Mutex::new(Vec::new()),
            seen: Mutex::new(Seen::default()),
            endpoint,
            secret,
            injected: Mutex::new(Injected::default()),
        });
        tokio::spawn(serve_rest_hook(listener, emr.clone()));

        let manager = SubscriptionManager::new(poc.clone())
            .activation(Duration::from_secs(10), Duration::from_millis(20));
        let rest = manager
            .subscribe(rest_hook_channel(
                emr.endpoint.clone(),
                PayloadContent::FullResource,
                &emr.secret,
                None,
            ))
            .await
            .unwrap();
        let websocket = manager
            .subscribe(websocket_channel(PayloadContent::FullResource, None))
            .await
            .unwrap();
        let mut subscriptions = Vec::new();
        for subscription in [rest, websocket] {
            let id = subscription.id.clone().unwrap();
            receiver.track(&id, 0).await;
            let current = CurrentSubscription::new(subscription.clone());
            if subscription.channel.channel_type == halo_model::subscription::ChannelType::Websocket
            {
                let consumer = WebsocketConsumer::new(
                    poc.clone(),
                    receiver.clone(),
                    current.clone(),
                    WebsocketOptions {
                        initial_backoff: Duration::from_millis(10),
                        max_backoff: Duration::from_millis(100),
                        connect_timeout: Duration::from_secs(2),
                        idle_timeout: Some(Duration::from_secs(3600)),
                    },
                );
                tokio::spawn(async move { consumer.run(std::future::pending()).await });
            }
            subscriptions.push((
                id,
                Watchdog::new(manager.clone(), receiver.clone(), current),
            ));
        }
        let mut world = World {
            dir,
            db,
            sofa,
            base,
            http,
            poc,
            emr,
            subscriptions,
            launches: Vec::new(),
            acknowledged: BTreeMap::new(),
            values: 0,
            barrier: 0,
        };
        world.wait_until_writable().await;
        world.barrier = world.launch().await;
        world
    }

    /// Waits until both subscriptions are active: the rest-hook after its handshake, the
    /// websocket once a socket bound to it.
    async fn wait_until_writable(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut active = 0;
            for (id, _) in &self.subscriptions {
                if let Ok(status) = self.poc.status(id).await
                    && status.status == halo_model::subscription::SubscriptionStatus::Active
                {
                    active += 1;
                }
            }
            if active == self.subscriptions.len() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the subscriptions never became writable"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `$set-context` for a new patient, then the app's authorization code flow.
    async fn launch(&mut self) -> usize {
        let (launch_id, token, patient, _) =
            support::launch(&self.http, &self.base, &self.poc, APP, APP_ID).await;
        self.launches.push(Launch {
            launch_id,
            token,
            patient,
            cleared: false,
        });
        self.launches.len() - 1
    }

    fn next_value(&mut self) -> u64 {
        self.values += 1;
        self.values
    }
}

/// One app write over HTTP: a create or an update; the reference and version the app was
/// told, if it was told success.
async fn app_write(
    http: reqwest::Client,
    base: String,
    token: String,
    body: Value,
    target: Option<String>,
    timeout: Option<Duration>,
) -> Option<(String, u64)> {
    let request = match &target {
        None => http.post(format!("{base}/Observation")),
        Some(reference) => http.put(format!("{base}/{reference}")),
    };
    let mut request = request
        .bearer_auth(token)
        .header("content-type", "application/fhir+json")
        .body(body.to_string());
    if let Some(timeout) = timeout {
        request = request.timeout(timeout);
    }
    let response = request.send().await.ok()?;
    let status = response.status();
    assert!(
        status.is_success() || status.is_client_error() || status.as_u16() == 503,
        "an app write was answered {status}"
    );
    if !status.is_success() {
        return None;
    }
    let stored: Value = response.json().await.ok()?;
    let id = stored["id"].as_str()?;
    let version = stored["meta"]["versionId"].as_str()?.parse().ok()?;
    Some((format!("Observation/{id}"), version))
}

/// Holds the database's write lock for `hold` from another connection.
fn hold_database(db: PathBuf, hold: Duration) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let Ok(connection) = rusqlite::Connection::open(&db) else {
            return;
        };
        let _ = connection.busy_timeout(Duration::from_millis(50));
        if connection.execute_batch("BEGIN IMMEDIATE").is_ok() {
            std::thread::sleep(hold);
            let _ = connection.execute_batch("ROLLBACK");
        }
    })
}

impl World {
    /// One schedule: a burst of writes in fresh launches with faults drawn from `rng`.
    async fn schedule(&mut self, rng: &mut Rng) {
        let launches = [self.launch().await, self.launch().await];
        // Endpoint faults for the next notifications.
        {
            let mut plan = self.emr.plan.lock().unwrap();
            plan.clear();
            for _ in 0..12 {
                plan.push(match rng.below(16) {
                    0 => Fault::Error,
                    1 => Fault::LateAfterApplying,
                    2 => Fault::DropAfterApplying,
                    3 => Fault::Slow,
                    _ => Fault::None,
                });
            }
        }
        let mut tasks = Vec::new();
        for &index in &launches {
            let launch = &self.launches[index];
            let (http, base, token, patient) = (
                self.http.clone(),
                self.base.clone(),
                launch.token.clone(),
                launch.patient.clone(),
            );
            let values: Vec<u64> = (0..4).map(|_| self.next_value()).collect();
            let timeouts: Vec<Option<Duration>> = (0..4)
                .map(|_| {
                    rng.chance(15)
                        .then(|| Duration::from_millis(5 + rng.below(70)))
                })
                .collect();
            self.emr.injected.lock().unwrap().cancelled_requests +=
                timeouts.iter().filter(|t| t.is_some()).count() as u64;
            tasks.push(tokio::spawn(async move {
                let mut told = Vec::new();
                let mut current: Option<String> = None;
                for (value, timeout) in values.into_iter().zip(timeouts) {
                    let id = current.as_deref().map(|r| r.rsplit('/').next().unwrap());
                    let body = observation(&patient, value, id);
                    let result = app_write(
                        http.clone(),
                        base.clone(),
                        token.clone(),
                        body,
                        current.clone(),
                        timeout,
                    )
                    .await;
                    if let Some((reference, version)) = result {
                        current = Some(reference.clone());
                        told.push((reference, version));
                    }
                }
                told
            }));
        }
        // Faults beside the writes.
        let clear = rng.chance(25).then(|| {
            (
                launches[rng.below(2) as usize],
                Duration::from_millis(rng.below(40)),
            )
        });
        let busy = rng
            .chance(20)
            .then(|| Duration::from_millis(50 + rng.below(250)));
        let kill = rng.chance(12).then(|| Duration::from_millis(rng.below(60)));
        let busy_hold = busy.map(|hold| hold_database(self.db.clone(), hold));
        if busy.is_some() {
            self.emr.injected.lock().unwrap().busy_holds += 1;
        }
        let clearing = clear.map(|(index, after)| {
            let poc = self.poc.clone();
            let launch_id = self.launches[index].launch_id.clone();
            self.launches[index].cleared = true;
            self.emr.injected.lock().unwrap().clears += 1;
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                // A clear that meets the SoFA down is retried until it is answered.
                for _ in 0..100 {
                    if poc.clear_context(&launch_id).await.is_ok() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                panic!("$clear-context never succeeded");
            })
        });
        if let Some(after) = kill {
            tokio::time::sleep(after).await;
            let sofa = self.sofa.clone();
            tokio::task::spawn_blocking(move || sofa.lock().unwrap().restart())
                .await
                .unwrap();
            self.emr.injected.lock().unwrap().kills += 1;
        }
        for task in tasks {
            for (reference, version) in task.await.unwrap() {
                let known = self.acknowledged.entry(reference).or_default();
                *known = (*known).max(version);
            }
        }
        if let Some(clearing) = clearing {
            clearing.await.unwrap();
        }
        if let Some(hold) = busy_hold {
            let _ = tokio::task::spawn_blocking(move || hold.join()).await;
        }
        self.emr.plan.lock().unwrap().clear();
    }

    /// Waits until nothing is owed: no write in flight, no event pending or queued, and the
    /// EMR has every number.
    async fn quiesce(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        // A cancelled app request may still be writing (by design). A write that goes through
        // afterwards is a barrier: writes of one PoC are serialised, so every write that reached
        // the SoFA before it has committed or been compensated once it is answered.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let barrier = self.barrier;
        loop {
            let value = self.next_value();
            let launch = &self.launches[barrier];
            let body = observation(&launch.patient, value, None);
            let written = app_write(
                self.http.clone(),
                self.base.clone(),
                launch.token.clone(),
                body,
                None,
                None,
            )
            .await;
            if let Some((reference, version)) = written {
                self.acknowledged.insert(reference, version);
                break;
            }
            if Instant::now() > deadline {
                return Err("no write went through after the schedule".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        loop {
            let unsettled = self.unsettled();
            let mut behind = false;
            if unsettled == 0 {
                for (id, watchdog) in &self.subscriptions {
                    if let Err(e) = watchdog.check().await {
                        return Err(format!("watchdog of {id}: {e}"));
                    }
                    let counter = self.counter(id);
                    if self.emr.receiver.last_event(id).await.unwrap_or(0) < counter {
                        behind = true;
                    }
                }
                if !behind {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not quiet after 20 s: {unsettled} unsettled events, EMR behind: {behind}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn read_db<T>(&self, query: impl FnOnce(&rusqlite::Connection) -> T) -> T {
        let connection = rusqlite::Connection::open(&self.db).unwrap();
        connection.busy_timeout(Duration::from_secs(5)).unwrap();
        query(&connection)
    }

    fn unsettled(&self) -> u64 {
        self.read_db(|c| {
            c.query_row(
                "SELECT count(*) FROM events WHERE state IN ('pending', 'outbox')",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap() as u64
        })
    }

    fn counter(&self, id: &str) -> u64 {
        self.read_db(|c| {
            c.query_row(
                "SELECT events_since_start FROM subscriptions WHERE id = ?1",
                [id],
                |r| r.get::<_, i64>(0),
            )
            .unwrap() as u64
        })
    }

    /// The checks of the module documentation.
    async fn check(&self) -> Result<(), String> {
        let conflicts = self.emr.seen.lock().unwrap().conflicts.clone();
        if !conflicts.is_empty() {
            return Err(conflicts.join("; "));
        }
        // What the sink saw, per (subscription, number), must match the arrivals too.
        let mut seen = Seen::default();
        for (subscription, number, print) in self.emr.chart.seen.lock().unwrap().iter() {
            seen.record(subscription, *number, print.clone());
        }
        {
            let arrivals = self.emr.seen.lock().unwrap();
            for ((subscription, number), print) in &arrivals.contents {
                seen.record(subscription, *number, print.clone());
            }
        }
        if !seen.conflicts.is_empty() {
            return Err(seen.conflicts.join("; "));
        }

        // Committed history per subscription, folded over the event log in number order.
        let mut histories = Vec::new();
        for (id, _) in &self.subscriptions {
            let rows: Vec<(u64, String, String)> = self.read_db(|c| {
                let mut statement = c
                    .prepare(
                        "SELECT event_number, state, record FROM events WHERE subscription_id = ?1
                         ORDER BY event_number",
                    )
                    .unwrap();
                statement
                    .query_map([id], |r| {
                        Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?))
                    })
                    .unwrap()
                    .map(Result::unwrap)
                    .collect()
            });
            let numbers: Vec<u64> = rows.iter().map(|r| r.0).collect();
            let expected: Vec<u64> = (1..=self.counter(id)).collect();
            if numbers != expected {
                return Err(format!("Subscription/{id} has events {numbers:?}"));
            }
            let mut history: BTreeMap<String, (String, String, Option<String>)> = BTreeMap::new();
            for (_, state, record) in &rows {
                if state != "committed" {
                    continue;
                }
                let record: Value = serde_json::from_str(record).unwrap();
                let details = &record["details"];
                let reference = format!(
                    "{}/{}",
                    details["resourceType"].as_str().unwrap_or_default(),
                    details["id"].as_str().unwrap_or_default()
                );
                let launch = details["launch"].as_str().map(str::to_string);
                match details["action"].as_str() {
                    Some("DELETE") => {
                        history.remove(&reference);
                    }
                    _ => {
                        let (version, value) = version_and_value(details.get("resource"));
                        history.insert(reference, (version, value, launch));
                    }
                }
            }
            histories.push(history);
        }
        if histories[0] != histories[1] {
            return Err("the two subscriptions committed different histories".into());
        }
        let history = &histories[0];

        // The EMR's chart, through its id map, equals the committed history.
        let records = self.emr.chart.records.lock().unwrap().clone();
        let mut chart = BTreeMap::new();
        for (local, value) in records {
            let Some(sofa) = self.emr.id_map.sofa_for(&local).await.unwrap() else {
                return Err(format!("{local} has no SoFA id in the id map"));
            };
            chart.insert(sofa, value);
        }
        let committed: BTreeMap<String, (String, String)> = history
            .iter()
            .map(|(r, (version, value, _))| (r.clone(), (version.clone(), value.clone())))
            .collect();
        if chart != committed {
            let only_chart: Vec<_> = chart
                .iter()
                .filter(|(k, v)| committed.get(*k) != Some(*v))
                .collect();
            let only_sofa: Vec<_> = committed
                .iter()
                .filter(|(k, v)| chart.get(*k) != Some(*v))
                .collect();
            let mut log = Vec::new();
            for (reference, _) in only_chart.iter().chain(only_sofa.iter()) {
                let id = reference.rsplit('/').next().unwrap_or_default().to_string();
                log.extend(self.read_db(|c| {
                    let mut statement = c
                        .prepare(
                            "SELECT subscription_id, event_number, state, record FROM events
                             WHERE record LIKE ?1 ORDER BY subscription_id, event_number",
                        )
                        .unwrap();
                    statement
                        .query_map([format!("%{id}%")], |r| {
                            let record: String = r.get(3)?;
                            let record: Value = serde_json::from_str(&record).unwrap();
                            let details = &record["details"];
                            Ok(format!(
                                "{}#{} {} {} v{}",
                                r.get::<_, String>(0)?,
                                r.get::<_, i64>(1)?,
                                r.get::<_, String>(2)?,
                                details["action"],
                                details["version"]
                            ))
                        })
                        .unwrap()
                        .map(Result::unwrap)
                        .collect::<Vec<_>>()
                }));
            }
            let applied: Vec<String> = {
                let seen = self.emr.chart.seen.lock().unwrap();
                seen.iter()
                    .filter(|(_, _, print)| {
                        only_chart
                            .iter()
                            .chain(only_sofa.iter())
                            .any(|(r, _)| print.contains(r.rsplit('/').next().unwrap_or("?")))
                    })
                    .map(|(s, n, print)| format!("{}#{n} {print}", &s[..8]))
                    .collect()
            };
            return Err(format!(
                "the EMR's chart differs from the committed history: EMR {only_chart:?}, \
                 SoFA {only_sofa:?}; their events: {log:?}; applied in this order: {applied:?}"
            ));
        }

        // For the launches still there, the stored resources are the committed history.
        let live: BTreeSet<&str> = self
            .launches
            .iter()
            .filter(|l| !l.cleared)
            .map(|l| l.launch_id.as_str())
            .collect();
        let stored: BTreeMap<String, (String, String)> = self.read_db(|c| {
            let mut statement = c
                .prepare(
                    "SELECT id, launch_id, json FROM resources WHERE resource_type = 'Observation'",
                )
                .unwrap();
            statement
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                    ))
                })
                .unwrap()
                .map(Result::unwrap)
                .filter(|(_, launch, _)| launch.as_deref().is_some_and(|l| live.contains(l)))
                .map(|(id, _, json)| {
                    let resource: Value = serde_json::from_slice(&json).unwrap();
                    (
                        format!("Observation/{id}"),
                        version_and_value(Some(&resource)),
                    )
                })
                .collect()
        });
        let expected_stored: BTreeMap<String, (String, String)> = history
            .iter()
            .filter(|(_, (_, _, launch))| launch.as_deref().is_some_and(|l| live.contains(l)))
            .map(|(r, (version, value, _))| (r.clone(), (version.clone(), value.clone())))
            .collect();
        if stored != expected_stored {
            return Err(format!(
                "the SoFA stores {} Observations of live launches, its history says {}",
                stored.len(),
                expected_stored.len()
            ));
        }

        // Every write the app was told succeeded is committed and in the chart.
        for (reference, version) in &self.acknowledged {
            match chart.get(reference) {
                Some((v, _)) if v.parse::<u64>().unwrap_or(0) >= *version => {}
                other => {
                    return Err(format!(
                        "the app was told {reference} is at version {version}; the EMR has {other:?}"
                    ));
                }
            }
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// REQ: SYNC-06, SYNC-01, SYNC-02, SYNC-03, SYNC-04, SYNC-05
async fn the_emr_copy_equals_the_sofa_committed_state_under_injected_faults() {
    let runs: u64 = std::env::var("HALO_FAULT_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let first_seed: u64 = std::env::var("HALO_FAULT_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x4841_4c4f);
    let started = Instant::now();
    let mut world = World::start().await;
    for run in 0..runs {
        let seed = first_seed.wrapping_add(run);
        let mut rng = Rng(seed);
        world.schedule(&mut rng).await;
        let checked = match world.quiesce().await {
            Ok(()) => world.check().await,
            Err(e) => Err(e),
        };
        if let Err(e) = checked {
            panic!(
                "schedule {run} (HALO_FAULT_SEED={seed} HALO_FAULT_RUNS=1 replays its faults, \
                 not the state before it): {e}"
            );
        }
    }
    let injected = world.emr.injected.lock().unwrap();
    let compensations: u64 = world.read_db(|c| {
        c.query_row(
            "SELECT count(*) FROM events WHERE state IN ('delivered', 'outbox')",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap() as u64
    });
    eprintln!(
        "{runs} schedules in {:.1} s: endpoint faults {:?}, cancelled app requests {}, \
         racing clears {}, busy holds {}, SIGKILLs {}; {} compensations; {} writes \
         acknowledged; 0 divergences",
        started.elapsed().as_secs_f64(),
        injected.endpoint,
        injected.cancelled_requests,
        injected.clears,
        injected.busy_holds,
        injected.kills,
        compensations,
        world.acknowledged.len(),
    );
    let _ = std::fs::remove_dir_all(&world.dir);
}
