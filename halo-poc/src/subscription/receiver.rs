//! The notification receiver (REQ LI-06): reads handshake, heartbeat and event notifications,
//! checks the PoC's header, recovers missed events with `$events`, drops duplicates, maps the
//! SoFA's ids to local ones and hands each change to the host.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use halo_model::fhir::{JsonLimits, parse_json};
use halo_model::subscription::{
    EventsQuery, Notification, NotificationEvent, NotificationType, Subscription,
};
use serde_json::Value;
use subtle::ConstantTimeEq;
use tokio::sync::Mutex;

use super::tracker::{Tracker, Verdict};
use crate::BoxFuture;
use crate::context::type_of;
use crate::error::{PocError, Result};
use crate::idmap::{IdMapStore, IdMapping, Retention, from_now};
use crate::launcher::{relative_references, rewrite_references};
use crate::sofa::SofaClient;

/// One change in the SoFA, for the EMR to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The subscription that reported it.
    pub subscription_id: String,
    /// Its event number in that subscription.
    pub event_number: u64,
    /// When it happened in the SoFA.
    pub timestamp: Option<String>,
    /// The changed resource in the SoFA (`Observation/obs-1`); `None` for `empty` payloads.
    pub focus: Option<String>,
    /// The EMR's own reference for it, when the id mapping knows it (an update of something
    /// the EMR sent, or of something an earlier notification created).
    pub local: Option<String>,
    /// The interaction (`POST`, `PUT`, `DELETE`), when the notification says.
    pub method: Option<String>,
    /// The resource (`full-resource` payloads), with every reference the id mapping knows
    /// rewritten to the EMR's local reference.
    pub resource: Option<Value>,
    /// The launch the change belongs to, when the id mapping can tell.
    pub launch_id: Option<String>,
    /// It was fetched with `$events` after it went missing.
    pub recovered: bool,
}

/// The EMR's side of notifications.
///
/// Calls come one at a time, in event order, while the receiver holds its lock: an
/// implementation must not call back into the same [`NotificationReceiver`].
pub trait ChangeSink: Send + Sync {
    /// Applies one change. Returns the local reference the EMR stored the resource under (for a
    /// resource the app created), so later updates of it map to the same local record.
    ///
    /// An error is answered to a rest-hook POST with HTTP 500; a SoFA that delivers before it
    /// commits (decision D-08) then rolls the app's write back.
    fn apply(&self, change: Change) -> BoxFuture<'_, Result<Option<String>>>;

    /// Events `from..=to` of a subscription were lost and could not be recovered. The default
    /// logs a warning.
    fn missed<'a>(
        &'a self,
        subscription_id: &'a str,
        from: u64,
        to: u64,
        error: Option<&'a PocError>,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            tracing::warn!(subscription_id, from, to, ?error, "notifications lost");
        })
    }
}

/// What a notification turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Receipt {
    /// A handshake.
    Handshake {
        /// The subscription.
        subscription_id: String,
    },
    /// A heartbeat.
    Heartbeat {
        /// The subscription.
        subscription_id: String,
        /// Events recovered because the heartbeat's count was ahead.
        recovered: Vec<u64>,
    },
    /// Event notifications (also `query-event`).
    Events {
        /// The subscription.
        subscription_id: String,
        /// Event numbers applied, in order (recovered ones included).
        applied: Vec<u64>,
        /// Of those, the ones fetched with `$events`.
        recovered: Vec<u64>,
        /// Event numbers dropped as duplicates.
        duplicates: Vec<u64>,
    },
    /// Another notification type (`query-status`): nothing to do.
    Ignored,
}

struct Inner {
    sofa: SofaClient,
    id_map: Arc<dyn IdMapStore>,
    sink: Arc<dyn ChangeSink>,
    expected_header: Option<(String, String)>,
    limits: JsonLimits,
    retention: Retention,
    tracker: Mutex<Tracker>,
}

/// Receives notifications from the SoFA, over rest-hook or websocket. Cheap to clone; clones
/// share their state.
///
/// Notifications are processed one at a time, in order, so the EMR sees each change once and
/// in event-number order.
#[derive(Clone)]
pub struct NotificationReceiver {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for NotificationReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationReceiver")
            .field("sofa", &self.inner.sofa)
            .field(
                "expected_header",
                &self.inner.expected_header.as_ref().map(|(name, _)| name),
            )
            .finish_non_exhaustive()
    }
}

/// A builder for [`NotificationReceiver`].
pub struct ReceiverBuilder {
    sofa: SofaClient,
    id_map: Arc<dyn IdMapStore>,
    sink: Arc<dyn ChangeSink>,
    expected_header: Option<(String, String)>,
    limits: JsonLimits,
    retention: Retention,
}

impl std::fmt::Debug for ReceiverBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiverBuilder").finish_non_exhaustive()
    }
}

impl ReceiverBuilder {
    /// Requires every rest-hook notification to carry `name: value` (the header the PoC put
    /// in `channel.header`). Without it, rest-hook notifications are not authenticated.
    pub fn expect_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.expected_header = Some((name.into(), value.into()));
        self
    }

    /// Takes the header check from a subscription's first `channel.header`.
    pub fn expect_header_of(self, subscription: &Subscription) -> Self {
        match subscription.channel.header_pairs().first() {
            Some((name, value)) => self.expect_header(*name, *value),
            None => self,
        }
    }

    /// Size and depth limits of a notification body.
    pub fn limits(mut self, limits: JsonLimits) -> Self {
        self.limits = limits;
        self
    }

    /// How long mappings of app-created resources are kept.
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// The receiver.
    pub fn build(self) -> NotificationReceiver {
        NotificationReceiver {
            inner: Arc::new(Inner {
                sofa: self.sofa,
                id_map: self.id_map,
                sink: self.sink,
                expected_header: self.expected_header,
                limits: self.limits,
                retention: self.retention,
                tracker: Mutex::new(Tracker::default()),
            }),
        }
    }
}

impl NotificationReceiver {
    /// A receiver that fetches missed events from `sofa`, maps ids with `id_map` and hands
    /// changes to `sink`.
    pub fn builder(
        sofa: SofaClient,
        id_map: Arc<dyn IdMapStore>,
        sink: Arc<dyn ChangeSink>,
    ) -> ReceiverBuilder {
        ReceiverBuilder {
            sofa,
            id_map,
            sink,
            expected_header: None,
            limits: JsonLimits::default(),
            retention: Retention::default(),
        }
    }

    /// Starts following `subscription_id` after event `last_event` (0 for a new subscription;
    /// the `events-since-subscription-start` a PoC saved, after a restart).
    pub async fn track(&self, subscription_id: &str, last_event: u64) {
        self.inner
            .tracker
            .lock()
            .await
            .track(subscription_id, last_event);
    }

    /// The last event number accounted for.
    pub async fn last_event(&self, subscription_id: &str) -> Option<u64> {
        self.inner.tracker.lock().await.last(subscription_id)
    }

    /// How long the SoFA has been silent on a subscription (since it was tracked or last
    /// heard from); `None` when it is not tracked.
    pub async fn silence(&self, subscription_id: &str) -> Option<Duration> {
        self.inner
            .tracker
            .lock()
            .await
            .last_heard(subscription_id)
            .map(|at| Instant::now().saturating_duration_since(at))
    }

    /// Handles a rest-hook POST: `headers` as received (any case), `body` as received.
    pub async fn handle(&self, headers: &[(&str, &str)], body: &[u8]) -> Result<Receipt> {
        if let Some((name, expected)) = &self.inner.expected_header {
            let matches = headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .any(|(_, v)| bool::from(v.trim().as_bytes().ct_eq(expected.as_bytes())));
            if !matches {
                return Err(PocError::Unauthenticated {
                    header: name.clone(),
                });
            }
        }
        self.handle_body(body).await
    }

    /// Handles a websocket text frame (the binding token authenticated the connection).
    pub async fn handle_frame(&self, frame: &str) -> Result<Receipt> {
        self.handle_body(frame.as_bytes()).await
    }

    async fn handle_body(&self, body: &[u8]) -> Result<Receipt> {
        let json = parse_json(body, self.inner.limits)
            .map_err(|e| PocError::InvalidNotification(e.to_string()))?;
        let notification = Notification::from_json(&json)
            .map_err(|e| PocError::InvalidNotification(e.to_string()))?;
        let subscription_id = notification.status.subscription_id().to_owned();
        if subscription_id.is_empty() {
            return Err(PocError::InvalidNotification(
                "the status names no subscription".into(),
            ));
        }
        let since = notification.status.events_since_subscription_start;
        let mut tracker = self.inner.tracker.lock().await;
        match notification.notification_type() {
            NotificationType::Handshake => {
                if !tracker.knows(&subscription_id) {
                    tracker.track(&subscription_id, since.unwrap_or(0));
                }
                tracker.heard(&subscription_id);
                // A handshake after a websocket re-bind may show events sent while unbound.
                let mut receipt = Receipt::Handshake {
                    subscription_id: subscription_id.clone(),
                };
                self.catch_up(&mut tracker, &subscription_id, since, &mut receipt)
                    .await?;
                Ok(receipt)
            }
            NotificationType::Heartbeat => {
                if !tracker.knows(&subscription_id) {
                    tracker.track(&subscription_id, since.unwrap_or(0));
                }
                tracker.heard(&subscription_id);
                let mut receipt = Receipt::Heartbeat {
                    subscription_id: subscription_id.clone(),
                    recovered: Vec::new(),
                };
                self.catch_up(&mut tracker, &subscription_id, since, &mut receipt)
                    .await?;
                Ok(receipt)
            }
            NotificationType::EventNotification | NotificationType::QueryEvent => {
                let mut receipt = Receipt::Events {
                    subscription_id: subscription_id.clone(),
                    applied: Vec::new(),
                    recovered: Vec::new(),
                    duplicates: Vec::new(),
                };
                let mut events = notification.status.events.clone();
                events.sort_by_key(|e| e.event_number);
                events.dedup_by_key(|e| e.event_number);
                for event in &events {
                    match tracker.classify(&subscription_id, event.event_number) {
                        Verdict::Duplicate => {
                            if let Receipt::Events { duplicates, .. } = &mut receipt {
                                duplicates.push(event.event_number);
                            }
                        }
                        Verdict::ApplyAfterGap { from, to } => {
                            self.recover(&mut tracker, &subscription_id, from, to, &mut receipt)
                                .await?;
                            self.apply(&mut tracker, &notification, event, false, &mut receipt)
                                .await?;
                        }
                        Verdict::Apply => {
                            self.apply(&mut tracker, &notification, event, false, &mut receipt)
                                .await?;
                        }
                    }
                }
                tracker.heard(&subscription_id);
                self.catch_up(&mut tracker, &subscription_id, since, &mut receipt)
                    .await?;
                Ok(receipt)
            }
            NotificationType::QueryStatus => {
                tracker.heard(&subscription_id);
                Ok(Receipt::Ignored)
            }
        }
    }

    /// Recovers events up to `since` when the SoFA counted more than the PoC has seen.
    async fn catch_up(
        &self,
        tracker: &mut Tracker,
        subscription_id: &str,
        since: Option<u64>,
        receipt: &mut Receipt,
    ) -> Result<()> {
        if let (Some(since), Some(last)) = (since, tracker.last(subscription_id))
            && since > last
        {
            self.recover(tracker, subscription_id, last + 1, since, receipt)
                .await?;
        }
        Ok(())
    }

    /// Asks the SoFA for the status and recovers anything missed (the watchdog's path).
    pub(crate) async fn reconcile(&self, subscription_id: &str, since: Option<u64>) -> Result<()> {
        let mut tracker = self.inner.tracker.lock().await;
        tracker.heard(subscription_id);
        let mut receipt = Receipt::Ignored;
        self.catch_up(&mut tracker, subscription_id, since, &mut receipt)
            .await
    }

    /// Fetches `from..=to` with `$events` and applies what comes back, in order; what the
    /// SoFA's answer does not hold (or all of it, when the SoFA answers that the subscription
    /// is unknown) is reported to the host as missed and passed.
    ///
    /// When `$events` cannot be had (the SoFA unreachable, a bad answer), nothing is passed:
    /// the error goes back to the caller and the sequence stays where it was, so the events
    /// are fetched again by the next notification, heartbeat or watchdog check, and every
    /// event is applied in number order. Applying a later event first and an earlier one when
    /// it turns up would leave the chart with the older state (REQ SYNC-06).
    async fn recover(
        &self,
        tracker: &mut Tracker,
        subscription_id: &str,
        from: u64,
        to: u64,
        receipt: &mut Receipt,
    ) -> Result<()> {
        let query = EventsQuery {
            since: Some(from),
            until: Some(to),
            content: None,
        };
        let mut recovered = BTreeSet::new();
        let mut gone = None;
        match self.inner.sofa.events(subscription_id, &query).await {
            Ok(answer) if answer.status.subscription_id() == subscription_id => {
                let mut events: Vec<&NotificationEvent> = answer
                    .status
                    .events
                    .iter()
                    .filter(|e| (from..=to).contains(&e.event_number))
                    .collect();
                events.sort_by_key(|e| e.event_number);
                events.dedup_by_key(|e| e.event_number);
                for event in events {
                    self.apply(tracker, &answer, event, true, receipt).await?;
                    recovered.insert(event.event_number);
                }
            }
            Ok(_) => {
                return Err(PocError::InvalidResponse {
                    operation: "$events".into(),
                    detail: "the answer is about another subscription".into(),
                });
            }
            // The SoFA says the subscription is not there: its events cannot come back.
            Err(
                error @ PocError::Rejected {
                    status: 404 | 410, ..
                },
            ) => gone = Some(error),
            Err(error) => return Err(error),
        }
        let complete = u64::try_from(recovered.len()).ok() == to.checked_sub(from).map(|n| n + 1);
        if !complete {
            tracker.missed(subscription_id, from, to, &recovered);
            self.inner
                .sink
                .missed(subscription_id, from, to, gone.as_ref())
                .await;
        }
        Ok(())
    }

    /// Hands one event to the host and records it as applied.
    async fn apply(
        &self,
        tracker: &mut Tracker,
        notification: &Notification,
        event: &NotificationEvent,
        recovered: bool,
        receipt: &mut Receipt,
    ) -> Result<()> {
        let subscription_id = notification.status.subscription_id().to_owned();
        let focus = event.focus.as_deref().and_then(|f| self.relative(f));
        // Several events of one notification (a `$events` answer) may be about the same
        // resource, each with its own entry in event order: the k-th event about a focus takes
        // the k-th entry about it, not the first.
        let occurrence = notification
            .status
            .events
            .iter()
            .take_while(|e| e.event_number != event.event_number)
            .filter(|e| e.focus == event.focus)
            .count();
        let entry = event.focus.as_deref().and_then(|f| {
            let mut about = notification.entries.iter().filter(|e| e.matches(f));
            about.clone().nth(occurrence).or_else(|| about.next())
        });
        let id_map = &self.inner.id_map;
        let local = match &focus {
            Some(focus) => id_map.local_for(focus).await?,
            None => None,
        };
        let mut resource = entry.and_then(|e| e.resource.clone());
        let mut launch_id = match &focus {
            Some(focus) => id_map.launch_of(focus).await?,
            None => None,
        };
        if let Some(resource) = &mut resource {
            let mut locals = BTreeMap::new();
            for reference in relative_references(resource) {
                if let Some(local) = id_map.local_for(&reference).await? {
                    if launch_id.is_none() {
                        launch_id = id_map.launch_of(&reference).await?;
                    }
                    locals.insert(reference, local);
                }
            }
            rewrite_references(resource, &|r| locals.get(r).cloned());
        }
        let change = Change {
            subscription_id: subscription_id.clone(),
            event_number: event.event_number,
            timestamp: event.timestamp.clone(),
            focus: focus.clone(),
            local: local.clone(),
            method: entry.map(|e| e.method.clone()),
            resource,
            launch_id: launch_id.clone(),
            recovered,
        };
        let stored = self.inner.sink.apply(change).await?;
        if let (Some(focus), None, Some(stored)) = (focus, local, stored) {
            let group = launch_id.unwrap_or_else(|| format!("subscription:{subscription_id}"));
            let keep_until = from_now(self.inner.retention.context_lifetime);
            let mapping = IdMapping {
                local: stored,
                sofa: focus,
            };
            id_map.record(&group, vec![mapping], keep_until).await?;
        }
        tracker.applied(&subscription_id, event.event_number);
        match receipt {
            Receipt::Events {
                applied,
                recovered: fetched,
                ..
            } => {
                applied.push(event.event_number);
                if recovered {
                    fetched.push(event.event_number);
                }
            }
            Receipt::Heartbeat {
                recovered: fetched, ..
            } => fetched.push(event.event_number),
            Receipt::Handshake { .. } | Receipt::Ignored => {}
        }
        Ok(())
    }

    /// `Type/id` of a focus reference: relative, or the last `Type/id` of an absolute URL (a
    /// SoFA may write its public base, which is not always the one the PoC calls); a
    /// `_history` suffix is dropped.
    fn relative(&self, reference: &str) -> Option<String> {
        let base = self.inner.sofa.fhir_base();
        let path = reference.strip_prefix(base).unwrap_or(reference);
        let path = path.split("/_history").next().unwrap_or(path);
        let mut segments = path.trim_matches('/').rsplit('/');
        let id = segments.next()?;
        let kind = segments.next()?;
        let tail = format!("{kind}/{id}");
        (halo_model::set_context::is_r4_resource_type(kind) && type_of(&tail).is_some())
            .then_some(tail)
    }
}
