//! [`SubscriptionNotifier`]: the deliver-before-commit step of the write path (D-08, D-09,
//! D-16; REQ SUB-06, RS-08, REL-04, SUB-12, SYNC-01, SYNC-04, SYNC-05).
//!
//! A PoC files every notification into its chart, so the chart is only as right as this step.
//! The rule that keeps it right: **once a notification carrying event number N may have left the
//! SoFA, N names that event for ever**, and the write it announces either commits or is
//! compensated by a later event carrying the committed state. Everything below follows from it:
//!
//! - numbers are allocated and the events logged `pending` in a transaction of their own that
//!   commits *before* any notification leaves, so no rollback, retry or crash gives a number
//!   back (SYNC-01);
//! - the write's commit moves its events to `committed` in the same transaction as the data, and
//!   only if they are still `pending`; a compensation moves them to `aborted` under the same
//!   condition, so exactly one of the two happens (SYNC-04);
//! - the whole step runs in a task of its own, so an app that hangs up after delivery cannot
//!   cancel the commit or the compensation half-way (SYNC-04);
//! - an event left `pending` by a crash can never commit any more (the staged write lived in
//!   the dead process), so it is compensated when its PoC is next settled (at start, by the
//!   outbox worker, or before the PoC's next write);
//! - the commit re-reads the launch inside its transaction, so a `$clear-context` that went
//!   first makes the write fail cleanly (410) and be compensated, and one that comes second
//!   waits for the commit and then removes the resource (SYNC-05).

use std::sync::Arc;

use halo_model::fhir::RawResource;
use halo_model::subscription::{
    ChannelType, Notification, NotificationEntry, NotificationEvent, NotificationType, Subscription,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::task::JoinSet;

use super::Inner;
use crate::error::SofaError;
use crate::fhir::{
    ChangeAction, ChangeNotifier, CommittedWrite, NotifyError, PreparedWrite, ResourceChange,
    WriteError,
};
use crate::store::{
    BoxFuture, EventRecord, EventState, StoreError, SubscriptionRecord, SubscriptionStatus,
    meta_instant,
};

/// Delivers every app write to the subscriptions of the PoC that owns the launch before the
/// write commits (see the module documentation for the rules):
///
/// 1. takes the PoC's lock (writes of one PoC are serialised; other PoCs are not touched) and
///    settles the PoC: compensates events left pending by a crash and delivers compensations
///    still in the outbox, in order; if that fails the write is refused (503) before anything
///    is logged, so the PoC never sees a later event before an earlier one;
/// 2. [`PreparedWrite::prepare`]s the write;
/// 3. finds the PoC's `active` subscriptions to the topic (none:
///    [`NotifyError::NoActiveSubscription`]), logs one `pending` event for each under its next
///    number and commits that, then delivers the notifications concurrently, holding no storage
///    transaction;
/// 4. all acknowledged: [`PreparedWrite::commit`]s the write, which marks its events
///    `committed` with [`commit_events`](crate::fhir::notify::commit_events); a failed delivery or commit: the events turn
///    `aborted`, each gets a compensating event in the outbox, and the app gets the error.
pub struct SubscriptionNotifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SubscriptionNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionNotifier")
            .finish_non_exhaustive()
    }
}

impl SubscriptionNotifier {
    pub(super) fn new(inner: Arc<Inner>) -> SubscriptionNotifier {
        SubscriptionNotifier { inner }
    }
}

/// What an event says, as it was sent (D-17), and what its compensation needs (D-16). Kept as
/// the event record's `details`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct EventContent {
    /// `POST`, `PUT` or `DELETE`.
    pub(crate) action: String,
    /// The resource type.
    #[serde(rename = "resourceType")]
    pub(crate) resource_type: String,
    /// The resource id.
    pub(crate) id: String,
    /// The version the event announces.
    #[serde(default)]
    pub(crate) version: u64,
    /// The launch of the write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) launch: Option<String>,
    /// The resource as sent (absent for a delete, and in events logged before this was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) resource: Option<Value>,
    /// The committed resource before the write: what a compensation sends back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) before: Option<Value>,
    /// For a compensating event, the number of the event it compensates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) compensates: Option<u64>,
    /// When a pending event's write can no longer commit however slow its instance is:
    /// another instance may settle it from then on (REQ CLU-02).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) settle_after: Option<chrono::DateTime<chrono::Utc>>,
}

impl EventContent {
    /// The content of an event about `change`.
    fn of_change(change: &ResourceChange) -> EventContent {
        EventContent {
            action: change.action.method().to_string(),
            resource_type: change.resource_type.clone(),
            id: change.id.clone(),
            version: change.version,
            launch: Some(change.launch_id.clone()),
            resource: change.resource.as_ref().map(RawResource::to_value),
            before: change.before.as_ref().map(RawResource::to_value),
            compensates: None,
            settle_after: None,
        }
    }

    /// The content of the event that compensates this one (D-16): the committed state before
    /// the write, as an update, or a delete when there was none (a create).
    pub(crate) fn compensation(&self, compensates: u64) -> EventContent {
        let version = self
            .before
            .as_ref()
            .and_then(|r| r.pointer("/meta/versionId"))
            .and_then(Value::as_str)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        EventContent {
            action: if self.before.is_some() {
                "PUT"
            } else {
                "DELETE"
            }
            .to_string(),
            resource_type: self.resource_type.clone(),
            id: self.id.clone(),
            version,
            launch: self.launch.clone(),
            resource: self.before.clone(),
            before: self.before.clone(),
            compensates: Some(compensates),
            settle_after: None,
        }
    }

    /// The content of a logged event; `None` when it is not about a resource.
    pub(crate) fn of(event: &EventRecord) -> Option<EventContent> {
        serde_json::from_value(event.details.clone()).ok()
    }

    fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    pub(crate) fn reference(&self) -> String {
        format!("{}/{}", self.resource_type, self.id)
    }

    pub(crate) fn change_action(&self) -> ChangeAction {
        match self.action.as_str() {
            "PUT" => ChangeAction::Update,
            "DELETE" => ChangeAction::Delete,
            _ => ChangeAction::Create,
        }
    }
}

impl Inner {
    /// The PoC's active subscriptions to the content update topic.
    pub(crate) async fn required_subscriptions(
        &self,
        poc_client_id: &str,
    ) -> Result<Vec<(SubscriptionRecord, Subscription)>, SofaError> {
        let owner = poc_client_id.to_owned();
        let records = self
            .store
            .read(move |tx| Box::pin(async move { tx.list_subscriptions(Some(&owner)).await }))
            .await?;
        Ok(records
            .into_iter()
            .filter(|r| {
                r.status == SubscriptionStatus::Active
                    && r.topic == self.config.content_update_topic
            })
            .filter_map(|r| self.parsed.typed(&r).map(|s| (r, s)))
            .collect())
    }

    /// The notification entry of a change, with the resource (restricted later by content).
    pub(crate) fn change_entry(
        &self,
        action: ChangeAction,
        resource_type: &str,
        id: &str,
        resource: Option<Value>,
    ) -> NotificationEntry {
        let full_url = format!("{}/{resource_type}/{id}", self.config.base_url);
        match action {
            ChangeAction::Create => NotificationEntry::created(full_url, resource_type, resource),
            ChangeAction::Update => {
                NotificationEntry::updated(full_url, resource_type, id, resource)
            }
            ChangeAction::Delete => NotificationEntry {
                full_url,
                resource: None,
                method: "DELETE".into(),
                url: format!("{resource_type}/{id}"),
                status: "204".into(),
            },
        }
    }

    /// The event-notification Bundle of one logged event, as the event says (the same bytes
    /// whether it is sent now, again from the outbox, or replayed by `$events`).
    pub(crate) fn event_notification(
        &self,
        record: &SubscriptionRecord,
        subscription: &Subscription,
        event: &EventRecord,
    ) -> Value {
        let mut status = self.status_parameters(
            record,
            NotificationType::EventNotification,
            event.event_number,
        );
        let content = EventContent::of(event);
        let focus = content
            .as_ref()
            .map(|c| format!("{}/{}", self.config.base_url, c.reference()));
        status.events.push(NotificationEvent::new(
            event.event_number,
            meta_instant(event.timestamp),
            focus,
        ));
        let mut notification = Notification::new(status, self.status_url(&record.id));
        notification.id = Some(uuid::Uuid::new_v4().to_string());
        notification.timestamp = Some(meta_instant(event.timestamp));
        if let Some(content) = content {
            notification.entries.push(self.change_entry(
                content.change_action(),
                &content.resource_type,
                &content.id,
                content.resource,
            ));
        }
        notification.restrict_to(subscription.channel.content);
        notification.to_json()
    }

    /// Logs one `pending` event about `change` for each required subscription, under numbers
    /// that are theirs for ever once this commits (REQ SYNC-01).
    async fn log_intent(
        &self,
        change: &ResourceChange,
        required: &[(SubscriptionRecord, Subscription)],
    ) -> Result<Vec<EventRecord>, SofaError> {
        let now = self.clock.now();
        let longest = required
            .iter()
            .map(|(_, subscription)| self.timeout_of(subscription))
            .max()
            .unwrap_or(self.settings.default_timeout);
        let mut content = EventContent::of_change(change);
        content.settle_after = chrono::Duration::from_std(longest + self.settings.settle_margin)
            .ok()
            .map(|wait| now + wait);
        let details = content.to_value();
        let subscriptions: Vec<String> = required.iter().map(|(r, _)| r.id.clone()).collect();
        let focus = change.reference();
        let events = self
            .store
            .write(move |tx| {
                Box::pin(async move {
                    let mut events = Vec::with_capacity(subscriptions.len());
                    for subscription_id in subscriptions {
                        let event = EventRecord {
                            event_number: tx.allocate_event_number(&subscription_id).await?,
                            subscription_id,
                            timestamp: now,
                            focus: Some(focus.clone()),
                            state: EventState::Pending,
                            details: details.clone(),
                        };
                        tx.append_event(event.clone()).await?;
                        events.push(event);
                    }
                    Ok::<_, StoreError>(events)
                })
            })
            .await?;
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        in_flight.extend(
            events
                .iter()
                .map(|e| (e.subscription_id.clone(), e.event_number)),
        );
        Ok(events)
    }

    /// Compensates `events` of a write that will not commit: each still `pending` turns
    /// `aborted` and gets a compensating event in the outbox, in one transaction, which the
    /// outbox worker then delivers. If this fails the events stay `pending` and the next
    /// settling of the PoC compensates them.
    pub(crate) async fn compensate(&self, events: &[EventRecord]) {
        match self.log_compensations(events).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(
                    compensations = n,
                    "write not committed: compensating events queued"
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "compensations not logged yet; the outbox worker retries");
            }
        }
        self.outbox.wake();
    }

    /// Logs the compensations of `events` (D-16); how many.
    pub(crate) async fn log_compensations(
        &self,
        events: &[EventRecord],
    ) -> Result<usize, SofaError> {
        let now = self.clock.now();
        let events = events.to_vec();
        let logged = self
            .store
            .write(move |tx| {
                Box::pin(async move {
                    let mut logged = 0;
                    for event in &events {
                        let aborted = tx
                            .transition_event(
                                &event.subscription_id,
                                event.event_number,
                                EventState::Pending,
                                EventState::Aborted,
                            )
                            .await?;
                        if !aborted {
                            continue;
                        }
                        let Some(content) = EventContent::of(event) else {
                            continue;
                        };
                        let compensation = content.compensation(event.event_number);
                        let record = EventRecord {
                            subscription_id: event.subscription_id.clone(),
                            event_number: tx.allocate_event_number(&event.subscription_id).await?,
                            timestamp: now,
                            focus: Some(compensation.reference()),
                            state: EventState::Outbox,
                            details: compensation.to_value(),
                        };
                        tx.append_event(record).await?;
                        logged += 1;
                    }
                    Ok::<_, StoreError>(logged)
                })
            })
            .await?;
        Ok(logged)
    }

    /// Delivers the notifications of `events` concurrently; the reasons of those not
    /// acknowledged.
    async fn deliver_events(
        self: &Arc<Self>,
        required: Vec<(SubscriptionRecord, Subscription)>,
        events: &[EventRecord],
    ) -> Vec<String> {
        let mut deliveries = JoinSet::new();
        for ((record, subscription), event) in required.into_iter().zip(events) {
            let body = self.event_notification(&record, &subscription, event);
            let number = event.event_number;
            let inner = self.clone();
            deliveries.spawn(async move {
                inner
                    .deliver(&record.id, &subscription, &body, Some(number))
                    .await
                    .map_err(|reason| format!("Subscription/{}: {reason}", record.id))
            });
        }
        let mut failures = Vec::new();
        while let Some(result) = deliveries.join_next().await {
            match result {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => failures.push(reason),
                Err(_) => failures.push("a delivery task failed".to_string()),
            }
        }
        failures.sort();
        failures
    }

    async fn deliver_then_commit(
        self: Arc<Self>,
        mut write: Box<dyn PreparedWrite>,
    ) -> Result<CommittedWrite, WriteError> {
        let retry_after_seconds = self.settings.retry_after_seconds;
        let refused = |reason: String| -> WriteError {
            NotifyError::DeliveryFailed {
                reason,
                retry_after_seconds,
            }
            .into()
        };
        let Some(_in_flight) = self.tracker.enter() else {
            return Err(refused("the server is shutting down".into()));
        };
        let poc = write.poc_client_id().to_string();
        let _serialised = self.locks.lock(&poc).await;
        if let Err(reason) = self.settle(&poc).await {
            return Err(refused(format!(
                "earlier changes are still undelivered: {reason}"
            )));
        }
        let change = write.prepare().await?;
        let required = self.required_subscriptions(&change.poc_client_id).await?;
        if required.is_empty() {
            return Err(NotifyError::NoActiveSubscription.into());
        }
        // A websocket subscription with no socket bound (here, or on another instance of a
        // shared store) cannot be reached: refuse before any number is used, since nothing
        // could leave (a socket lost later is compensated).
        for (record, subscription) in &required {
            if subscription.channel.channel_type == ChannelType::Websocket
                && !self.socket_reachable(&record.id).await
            {
                return Err(refused(format!(
                    "Subscription/{}: no websocket is bound to the subscription",
                    record.id
                )));
            }
        }
        let events = self.log_intent(&change, &required).await?;
        let _in_flight = InFlight {
            inner: &self,
            events: &events,
        };
        let failures = self.deliver_events(required, &events).await;
        if !failures.is_empty() {
            tracing::info!(poc = %poc, failures = ?failures, "write not committed: delivery failed");
            self.compensate(&events).await;
            return Err(refused(failures.join("; ")));
        }
        match write.commit(events.clone()).await {
            Ok(committed) => Ok(committed),
            Err(e) => {
                tracing::info!(poc = %poc, error = %e, "write not committed after delivery");
                self.compensate(&events).await;
                Err(e.into())
            }
        }
    }
}

/// Marks a write's events as no longer in progress in this process, however it ends.
struct InFlight<'a> {
    inner: &'a Inner,
    events: &'a [EventRecord],
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut in_flight = self
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for event in self.events {
            in_flight.remove(&(event.subscription_id.clone(), event.event_number));
        }
    }
}

impl ChangeNotifier for SubscriptionNotifier {
    fn deliver_then_commit(
        &self,
        write: Box<dyn PreparedWrite>,
    ) -> BoxFuture<'_, Result<CommittedWrite, WriteError>> {
        // The step runs in a task of its own: an app that hangs up once its notification may
        // have left cannot cancel the commit or the compensation half-way (REQ SYNC-04).
        let task = tokio::spawn(self.inner.clone().deliver_then_commit(write));
        Box::pin(async move {
            task.await.unwrap_or_else(|_| {
                Err(SofaError::internal("the write task ended without an answer").into())
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // REQ: SYNC-02
    #[test]
    fn a_compensation_sends_back_the_state_before_the_write() {
        let update = EventContent {
            action: "PUT".into(),
            resource_type: "Observation".into(),
            id: "o1".into(),
            version: 3,
            launch: Some("l".into()),
            resource: Some(json!({"resourceType": "Observation", "id": "o1",
                "meta": {"versionId": "3"}})),
            before: Some(json!({"resourceType": "Observation", "id": "o1",
                "meta": {"versionId": "2"}, "status": "final"})),
            compensates: None,
            settle_after: None,
        };
        let back = update.compensation(7);
        assert_eq!(back.action, "PUT");
        assert_eq!(back.version, 2);
        assert_eq!(back.resource.as_ref().unwrap()["status"], "final");
        assert_eq!(back.compensates, Some(7));
        // A create that did not commit goes out as a delete of that id.
        let create = EventContent {
            action: "POST".into(),
            before: None,
            ..update.clone()
        };
        let back = create.compensation(8);
        assert_eq!(back.change_action(), ChangeAction::Delete);
        assert_eq!((back.action.as_str(), back.resource), ("DELETE", None));
        // A delete that did not commit brings the resource back.
        let delete = EventContent {
            action: "DELETE".into(),
            resource: None,
            ..update
        };
        assert_eq!(delete.compensation(9).change_action(), ChangeAction::Update);
        // Events logged before contents were kept still read.
        let old = EventRecord {
            subscription_id: "s".into(),
            event_number: 1,
            timestamp: chrono::Utc::now(),
            focus: Some("Patient/p".into()),
            state: EventState::Committed,
            details: json!({"action": "POST", "resourceType": "Patient", "id": "p", "version": 1}),
        };
        let content = EventContent::of(&old).unwrap();
        assert_eq!(
            (content.reference(), content.resource),
            ("Patient/p".into(), None)
        );
    }
}
