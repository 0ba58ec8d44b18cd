//! Subscriptions R5 Backport on R4 (HALO CA:FSub): the SoFA Content Update topic, the
//! Subscription manager, rest-hook and websocket delivery, heartbeats, the persistent event log,
//! `$status`, `$events`, and [`SubscriptionNotifier`], the deliver-before-commit step of the
//! write path (D-08).
//!
//! [`Subscriptions`] is one service. A SoFA gets it from
//! [`SofaBuilder::subscriptions`](crate::sofa::SofaBuilder::subscriptions), which builds it from
//! the builder's parts, mounts its [`routes`](Subscriptions::routes) with what it
//! [`offers`](Subscriptions::offers) and hands its [`notifier`](Subscriptions::notifier) to the
//! resource server; [`Sofa::spawn_tasks`](crate::sofa::Sofa::spawn_tasks) starts its heartbeats
//! and outbox, and [`Sofa::shutdown`](crate::sofa::Sofa::shutdown) calls
//! [`shutdown`](Subscriptions::shutdown) so in-flight deliveries finish (REQ REL-05).
//!
//! ```no_run
//! use std::sync::Arc;
//! use halo_sofa_server::{auth::StaticTokens, config::SofaConfig, sofa::Sofa,
//!     store::SqliteStore, subscriptions::SubscriptionSettings};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let sofa = Sofa::builder(SofaConfig::new("https://sofa.example.org/fhir")?)
//!     .store(Arc::new(SqliteStore::open("sofa.db").await?))
//!     .token_validator(Arc::new(StaticTokens::new()))
//!     .resource_server()
//!     .subscriptions(SubscriptionSettings::default())
//!     .build()?;
//! let _tasks = sofa.spawn_tasks();
//! // ... serve sofa.router(); on shutdown:
//! sofa.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Start [`spawn_outbox`](Subscriptions::spawn_outbox) too: it delivers the compensating events
//! of writes that did not commit, and resolves what a crash left (D-16).
//!
//! Scaling note: subscriptions, statuses, counters, the event log and websocket binding tokens
//! live in the store, and heartbeats are found by a query over it, so they survive restarts and
//! work with several instances. Live websocket connections are the only per-process state: on
//! a shared store, an instance without the socket asks the one holding it to write the frame
//! (REQ CLU-03, see `relay`).

mod delivery;
mod heartbeat;
mod locks;
mod manager;
mod notifier;
mod operations;
mod outbox;
mod relay;
mod routes;
mod websocket;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use halo_model::subscription::{SOFA_CONTENT_UPDATE_TOPIC, SubscriptionPolicy};

pub use notifier::SubscriptionNotifier;

use crate::auth::TokenValidator;
use crate::clock::Clock;
use crate::config::SofaConfig;
use crate::fhir::{Capabilities, ChangeNotifier};
use crate::store::Store;

/// Tunables of the subscription service.
#[derive(Debug, Clone)]
pub struct SubscriptionSettings {
    /// How long a delivery may take when the Subscription sets no `backport-timeout`
    /// (D-08: 10 s).
    pub default_timeout: Duration,
    /// The longest timeout honoured, whatever the Subscription asks.
    pub max_timeout: Duration,
    /// `Retry-After` seconds suggested to an app whose write could not be delivered.
    pub retry_after_seconds: u32,
    /// How long a websocket binding token stays usable.
    pub binding_token_ttl: Duration,
    /// How often the heartbeat task looks for subscriptions due a heartbeat.
    pub heartbeat_tick: Duration,
    /// Whether rest-hook endpoints must be `https` (on by default). Off is development mode:
    /// plain http to loopback, and loopback addresses allowed at all (REQ HARD-03).
    pub require_https: bool,
    /// The websocket route, relative to the FHIR base.
    pub websocket_path: String,
    /// How often the outbox worker looks for unsettled events when nothing wakes it.
    pub outbox_tick: Duration,
    /// The first wait before a PoC's outbox is retried; it doubles (with jitter) after each
    /// failure.
    pub outbox_retry: Duration,
    /// The longest wait between two retries of a PoC's outbox.
    pub outbox_retry_max: Duration,
    /// How long a PoC's outbox may fail to drain before its subscriptions turn `error`.
    pub outbox_error_after: Duration,
    /// On a store several instances share, how long past its delivery timeout another
    /// instance's write may still commit: its pending events are taken for a crash's, and
    /// compensated, only after that (it covers the commit's wait for the database).
    pub settle_margin: Duration,
    /// How long an opened websocket may take to bind with a token before it is closed
    /// (REQ HARD-04): an unbound socket costs a task and costs the attacker nothing.
    pub websocket_bind_timeout: Duration,
    /// How long a websocket may stay silent both ways before it is closed (a bound socket
    /// gets heartbeats, so this bites only a socket whose subscriptions all went away).
    pub websocket_idle_timeout: Duration,
    /// The most sockets one client may have bound at once on this instance.
    pub websocket_max_per_client: usize,
    /// The most websockets this instance holds open at once, bound or not; an upgrade beyond
    /// it is refused with 503.
    pub websocket_max_sockets: usize,
}

impl Default for SubscriptionSettings {
    fn default() -> SubscriptionSettings {
        SubscriptionSettings {
            default_timeout: Duration::from_secs(10),
            max_timeout: Duration::from_secs(60),
            retry_after_seconds: 5,
            binding_token_ttl: Duration::from_secs(60),
            heartbeat_tick: Duration::from_secs(1),
            require_https: true,
            websocket_path: "/subscriptions/websocket".to_string(),
            outbox_tick: Duration::from_millis(250),
            outbox_retry: Duration::from_millis(250),
            outbox_retry_max: Duration::from_secs(30),
            outbox_error_after: Duration::from_secs(600),
            settle_margin: Duration::from_secs(30),
            websocket_bind_timeout: Duration::from_secs(10),
            websocket_idle_timeout: Duration::from_secs(300),
            websocket_max_per_client: 32,
            websocket_max_sockets: 10_000,
        }
    }
}

/// Everything the service's parts share.
pub(crate) struct Inner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) tokens: Arc<dyn TokenValidator>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: Arc<SofaConfig>,
    pub(crate) settings: SubscriptionSettings,
    pub(crate) policy: SubscriptionPolicy,
    pub(crate) http: reqwest::Client,
    pub(crate) locks: locks::PocLocks,
    pub(crate) tracker: Arc<locks::Tracker>,
    pub(crate) hub: websocket::Hub,
    pub(crate) relay: relay::Relay,
    pub(crate) heartbeats: heartbeat::Sending,
    pub(crate) outbox: outbox::Outbox,
    pub(crate) parsed: delivery::ParsedSubscriptions,
    /// The events this process logged whose write is still in progress: never a crash's.
    pub(crate) in_flight: std::sync::Mutex<std::collections::HashSet<(String, u64)>>,
}

/// The subscription service (see the module documentation).
#[derive(Clone)]
pub struct Subscriptions {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Subscriptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriptions")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl Subscriptions {
    /// A service over the server's store, token check, clock and configuration. The topic it
    /// serves is `config.content_update_topic` (D-01).
    pub fn new(
        store: Arc<dyn Store>,
        tokens: Arc<dyn TokenValidator>,
        clock: Arc<dyn Clock>,
        config: Arc<SofaConfig>,
        settings: SubscriptionSettings,
    ) -> Subscriptions {
        let mut policy = SubscriptionPolicy {
            require_https: settings.require_https,
            ..SubscriptionPolicy::default()
        };
        if config.content_update_topic != SOFA_CONTENT_UPDATE_TOPIC {
            policy.topics = [(config.content_update_topic.clone(), Vec::new())].into();
        }
        // Only to addresses a stranger may make the server reach, checked after resolution,
        // and no redirects: a notification goes to the endpoint the PoC named (REQ HARD-03).
        let http = crate::outbound::client_builder(!settings.require_https)
            .build()
            .unwrap_or_default();
        Subscriptions {
            inner: Arc::new(Inner {
                store,
                tokens,
                clock,
                config,
                settings,
                policy,
                http,
                locks: locks::PocLocks::default(),
                tracker: Arc::default(),
                hub: websocket::Hub::default(),
                relay: relay::Relay::default(),
                heartbeats: heartbeat::Sending::default(),
                outbox: outbox::Outbox::default(),
                parsed: delivery::ParsedSubscriptions::default(),
                in_flight: Default::default(),
            }),
        }
    }

    /// The routes, relative to the FHIR base: the topic (`GET /Basic/sofa-content-update`),
    /// Subscription CRUD and search, `$status`, `$events`, `$get-ws-binding-token` and the
    /// websocket.
    pub fn routes(&self) -> Router {
        routes::router(self.inner.clone())
    }

    /// Adds what the routes offer to the CapabilityStatement (REQ SUB-01): pass as
    /// [`SofaBuilder::mount`](crate::sofa::SofaBuilder::mount)'s callback.
    pub fn offers(&self, capabilities: &mut Capabilities) {
        capabilities.add_subscriptions([self.inner.config.content_update_topic.as_str()]);
        let basic = capabilities.resource_mut("Basic");
        if !basic.interactions.iter().any(|i| i == "read") {
            basic.interactions.push("read".to_string());
        }
    }

    /// The deliver-before-commit notifier for the resource server (D-08).
    pub fn notifier(&self) -> Arc<dyn ChangeNotifier> {
        Arc::new(SubscriptionNotifier::new(self.inner.clone()))
    }

    /// Starts the heartbeat task (REQ SUB-04): every `heartbeat_tick` it asks the store which
    /// active subscriptions are due and sends their heartbeats.
    pub fn spawn_heartbeats(&self) -> tokio::task::JoinHandle<()> {
        heartbeat::spawn(self.inner.clone())
    }

    /// Runs one heartbeat pass now; how many heartbeats were sent.
    pub async fn send_due_heartbeats(&self) -> usize {
        heartbeat::pass(&self.inner).await
    }

    /// Starts the outbox worker (D-16, REQ SYNC-02, SYNC-04): at once, then whenever a
    /// compensation is queued and on every `outbox_tick`, it compensates the events a crash
    /// left pending and delivers queued compensations, backing off per PoC while it fails.
    /// A SoFA runs it beside the heartbeats; without it, a PoC's queue still drains before
    /// its next write.
    pub fn spawn_outbox(&self) -> tokio::task::JoinHandle<()> {
        outbox::spawn(self.inner.clone())
    }

    /// Settles every PoC with unsettled events now, waiting for each to finish (as the
    /// worker does in the background); for tests and for a host's start-up.
    pub async fn settle_all(&self) {
        let Ok(pocs) = self.inner.unsettled_pocs().await else {
            return;
        };
        for poc in pocs {
            outbox::settle_in_background(&self.inner, &poc).await;
        }
    }

    /// Graceful shutdown (REQ REL-05): refuses new deliveries and waits until every in-flight
    /// delivery, handshake and heartbeat has finished (and its write committed or not).
    pub async fn shutdown(&self) {
        self.inner.tracker.close_and_wait().await;
    }

    /// How many deliveries, handshakes and heartbeats are in flight.
    pub fn in_flight(&self) -> usize {
        self.inner.tracker.count()
    }
}
