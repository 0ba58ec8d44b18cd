//! Audit (REQ RS-09): every read, write and operation is recorded through [`AuditSink`]. The
//! default sink, [`TracingAuditSink`], writes one structured log line per event.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::store::BoxFuture;

/// What was done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuditAction {
    /// `$set-context`.
    SetContext,
    /// `$clear-context`.
    ClearContext,
    /// A context removed because its lifetime ended.
    PurgeContext,
    /// `read`.
    Read,
    /// `search`.
    Search,
    /// `create`.
    Create,
    /// `update`.
    Update,
    /// `delete`.
    Delete,
    /// Any other operation, by name (`$status`, `metadata`...).
    Operation(String),
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditOutcome {
    /// Done.
    Success,
    /// Refused or failed, with the HTTP status answered.
    Failure(u16),
}

/// One audit record: time, client, user, launch, action, resource, outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    /// When.
    pub time: DateTime<Utc>,
    /// The calling client, when authenticated.
    pub client_id: Option<String>,
    /// The user, when known.
    pub user: Option<String>,
    /// The launch concerned.
    pub launch_id: Option<String>,
    /// What was done.
    pub action: AuditAction,
    /// The resources concerned (`Type/id`).
    pub resources: Vec<String>,
    /// How it ended.
    pub outcome: AuditOutcome,
}

/// Where audit events go. Recording must not fail the request: a sink that cannot write reports
/// through its own channel.
pub trait AuditSink: Send + Sync + 'static {
    /// Records one event.
    fn record(&self, event: AuditEvent) -> BoxFuture<'_, ()>;
}

/// The default sink: one `tracing` event per audit record at `INFO`, target `halo_sofa::audit`,
/// with every field as a structured field. Launch ids are shortened: a log reader needs to
/// correlate, not to launch.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingAuditSink;

impl AuditSink for TracingAuditSink {
    fn record(&self, event: AuditEvent) -> BoxFuture<'_, ()> {
        let action = serde_json::to_value(&event.action)
            .map(|v| match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            })
            .unwrap_or_default();
        let (outcome, status) = match event.outcome {
            AuditOutcome::Success => ("success", 200),
            AuditOutcome::Failure(status) => ("failure", status),
        };
        tracing::info!(
            target: "halo_sofa::audit",
            time = %event.time.to_rfc3339(),
            client_id = event.client_id.as_deref().unwrap_or("-"),
            user = event.user.as_deref().unwrap_or("-"),
            launch = %event.launch_id.as_deref().map(launch_fingerprint).unwrap_or_default(),
            action = %action,
            resources = %event.resources.join(","),
            outcome,
            status,
            "audit"
        );
        Box::pin(async {})
    }
}

/// The first 8 characters of a launch id: enough to correlate log lines, too few to use.
pub fn launch_fingerprint(launch_id: &str) -> String {
    let prefix: String = launch_id.chars().take(8).collect();
    format!("{prefix}…")
}

/// A sink that keeps events in memory, for tests and for hosts that forward them in batches.
#[derive(Debug, Default)]
pub struct MemoryAuditSink {
    events: Mutex<Vec<AuditEvent>>,
}

impl MemoryAuditSink {
    /// An empty sink.
    pub fn new() -> MemoryAuditSink {
        MemoryAuditSink::default()
    }

    /// The events recorded so far.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl AuditSink for MemoryAuditSink {
    fn record(&self, event: AuditEvent) -> BoxFuture<'_, ()> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event);
        Box::pin(async {})
    }
}

/// Several sinks at once (the log and the store).
pub struct FanOutAuditSink(pub Vec<std::sync::Arc<dyn AuditSink>>);

impl std::fmt::Debug for FanOutAuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("FanOutAuditSink")
            .field(&self.0.len())
            .finish()
    }
}

impl AuditSink for FanOutAuditSink {
    fn record(&self, event: AuditEvent) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            for sink in &self.0 {
                sink.record(event.clone()).await;
            }
        })
    }
}

/// How many events wait for the store writer before a request waits for room.
const STORE_AUDIT_QUEUE: usize = 4096;
/// The most events written in one transaction.
const STORE_AUDIT_BATCH: usize = 256;

/// Keeps audit events in the store (REQ RS-09, OPS-05), so the admin command line can export
/// them for a time range. A request only queues its event; one writer task appends queued
/// events in batches, one transaction each, so auditing adds no store write to the request's
/// path. Launch ids are kept as their [`launch_fingerprint`], as in the log. An event the
/// store refuses is logged with the error and dropped.
#[derive(Debug, Clone)]
pub struct StoreAuditSink {
    queue: tokio::sync::mpsc::Sender<AuditEvent>,
}

impl StoreAuditSink {
    /// The sink and its writer task (which ends once every clone of the sink is dropped and
    /// the queue is written).
    pub fn spawn(
        store: std::sync::Arc<dyn crate::store::Store>,
    ) -> (StoreAuditSink, tokio::task::JoinHandle<()>) {
        let (queue, mut events) = tokio::sync::mpsc::channel::<AuditEvent>(STORE_AUDIT_QUEUE);
        let writer = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(STORE_AUDIT_BATCH);
            while events.recv_many(&mut batch, STORE_AUDIT_BATCH).await > 0 {
                if let Err(e) = append(store.as_ref(), &batch).await {
                    tracing::warn!(error = %e, lost = batch.len(), "audit events not stored");
                }
                batch.clear();
            }
        });
        (StoreAuditSink { queue }, writer)
    }
}

async fn append(
    store: &dyn crate::store::Store,
    batch: &[AuditEvent],
) -> Result<(), crate::store::StoreError> {
    let mut rows = Vec::with_capacity(batch.len());
    for event in batch {
        let mut kept = event.clone();
        kept.launch_id = kept.launch_id.as_deref().map(launch_fingerprint);
        let json = serde_json::to_string(&kept)
            .map_err(|e| crate::store::StoreError::Backend(e.to_string()))?;
        rows.push((event.time, json));
    }
    store
        .write(move |tx| {
            Box::pin(async move {
                for (time, json) in rows {
                    tx.append_audit_event(time, json).await?;
                }
                Ok(())
            })
        })
        .await
}

impl AuditSink for StoreAuditSink {
    fn record(&self, event: AuditEvent) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if self.queue.send(event).await.is_err() {
                tracing::warn!("the audit writer has stopped; an event was not stored");
            }
        })
    }
}
