//! [`SubscriptionNotifier`]: the deliver-before-commit step of the write path (D-08, D-09,
//! REQ SUB-06, RS-08, REL-04, SUB-12).

use std::sync::Arc;

use halo_model::subscription::{
    Notification, NotificationEntry, NotificationEvent, NotificationType, Subscription,
};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::Inner;
use super::delivery::typed;
use crate::error::SofaError;
use crate::fhir::{
    ChangeAction, ChangeNotifier, CommittedWrite, NotifyError, PreparedWrite, ResourceChange,
    WriteError,
};
use crate::store::{
    BoxFuture, EventRecord, SubscriptionRecord, SubscriptionStatus, Transaction, meta_instant,
};

/// Delivers every app write to the subscriptions of the PoC that owns the launch before the
/// write commits:
///
/// 1. takes the PoC's lock (writes of one PoC are serialised; other PoCs are not touched);
/// 2. [`PreparedWrite::prepare`]s the write;
/// 3. finds the PoC's `active` subscriptions to the topic (none: [`NotifyError::NoActiveSubscription`]),
///    gives each the next event number after its persisted counter, and delivers the
///    notifications concurrently, holding no storage transaction;
/// 4. all acknowledged: [`PreparedWrite::commit`]s the write with the events, which the commit
///    records with [`record_events`]; any failure: nothing is committed, so the numbers are
///    given back (D-09) and the app gets [`NotifyError::DeliveryFailed`].
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

/// Writes delivered events inside the write's transaction: allocates each subscription's next
/// number (which advances its counter) and appends the event. The number allocated must be the
/// one delivered; anything else means the counter moved outside the notifier's serialisation,
/// and the write is refused rather than leave a gap or a duplicate (REQ REL-04).
pub async fn record_events(
    tx: &mut dyn Transaction,
    events: Vec<EventRecord>,
) -> Result<(), SofaError> {
    for event in events {
        let mut number = tx.allocate_event_number(&event.subscription_id).await?;
        // A counter left behind by a commit that logged events without allocating catches up.
        while number < event.event_number {
            number = tx.allocate_event_number(&event.subscription_id).await?;
        }
        if number != event.event_number {
            return Err(SofaError::conflict(format!(
                "event {} of Subscription/{} was delivered but the counter is at {number}",
                event.event_number, event.subscription_id
            )));
        }
        tx.append_event(event).await?;
    }
    Ok(())
}

impl Inner {
    /// The PoC's active subscriptions to the content update topic, each with the number its
    /// next event gets.
    pub(crate) async fn required_subscriptions(
        &self,
        poc_client_id: &str,
    ) -> Result<Vec<(SubscriptionRecord, Subscription, u64)>, SofaError> {
        let mut tx = self.store.begin_read().await?;
        let records = tx.list_subscriptions(Some(poc_client_id)).await?;
        let mut required = Vec::new();
        for record in records {
            if record.status != SubscriptionStatus::Active
                || record.topic != self.config.content_update_topic
            {
                continue;
            }
            let Some(subscription) = typed(&record) else {
                continue;
            };
            // The counter is the source of truth; an event logged past it (a commit that
            // appended events without allocating their numbers) still takes its number, so a
            // number is never delivered twice (REQ REL-04).
            let logged = tx
                .events(&record.id, record.events_since_start + 1, None)
                .await?
                .last()
                .map_or(record.events_since_start, |e| e.event_number);
            let next = record.events_since_start.max(logged) + 1;
            required.push((record, subscription, next));
        }
        Ok(required)
    }

    /// After a commit, brings each subscription's counter up to the event just logged, for
    /// commits that appended events without [`record_events`]. Still under the PoC's lock.
    async fn advance_counters(&self, events: &[(String, u64)]) -> Result<(), SofaError> {
        let mut tx = self.store.begin().await?;
        let mut changed = false;
        for (id, number) in events {
            let Some(record) = tx.get_subscription(id).await? else {
                continue;
            };
            let mut counter = record.events_since_start;
            while counter < *number {
                counter = tx.allocate_event_number(id).await?;
                changed = true;
            }
        }
        if changed {
            tx.commit().await?;
        }
        Ok(())
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

    /// The event-notification Bundle of event `number` of `record` about `change`.
    fn event_notification(
        &self,
        record: &SubscriptionRecord,
        subscription: &Subscription,
        change: &ResourceChange,
        event: &EventRecord,
    ) -> Value {
        let mut status = self.status_parameters(
            record,
            NotificationType::EventNotification,
            event.event_number,
        );
        let focus = format!("{}/{}", self.config.base_url, change.reference());
        status.events.push(NotificationEvent::new(
            event.event_number,
            meta_instant(event.timestamp),
            Some(focus),
        ));
        let mut notification = Notification::new(status, self.status_url(&record.id));
        notification.id = Some(uuid::Uuid::new_v4().to_string());
        notification.timestamp = Some(meta_instant(event.timestamp));
        notification.entries.push(self.change_entry(
            change.action,
            &change.resource_type,
            &change.id,
            change.resource.as_ref().map(|r| r.to_value()),
        ));
        notification.restrict_to(subscription.channel.content);
        notification.to_json()
    }

    async fn deliver_then_commit(
        self: Arc<Self>,
        mut write: Box<dyn PreparedWrite>,
    ) -> Result<CommittedWrite, WriteError> {
        let retry_after_seconds = self.settings.retry_after_seconds;
        let Some(_in_flight) = self.tracker.enter() else {
            return Err(NotifyError::DeliveryFailed {
                reason: "the server is shutting down".into(),
                retry_after_seconds,
            }
            .into());
        };
        let poc = write.poc_client_id().to_string();
        let _serialised = self.locks.lock(&poc).await;
        let change = write.prepare().await?;
        let required = self.required_subscriptions(&change.poc_client_id).await?;
        if required.is_empty() {
            return Err(NotifyError::NoActiveSubscription.into());
        }
        let now = self.clock.now();
        let mut events = Vec::with_capacity(required.len());
        let mut deliveries = JoinSet::new();
        for (record, subscription, next) in required {
            // The counter cannot move while we hold the PoC's lock: this is the number the
            // commit's allocation will return (D-09).
            let event = EventRecord {
                subscription_id: record.id.clone(),
                event_number: next,
                timestamp: now,
                focus: Some(change.reference()),
                details: json!({
                    "action": change.action.method(),
                    "resourceType": change.resource_type,
                    "id": change.id,
                    "version": change.version,
                }),
            };
            let body = self.event_notification(&record, &subscription, &change, &event);
            events.push(event);
            let inner = self.clone();
            deliveries.spawn(async move {
                inner
                    .deliver(&record.id, &subscription, &body)
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
        if !failures.is_empty() {
            failures.sort();
            tracing::info!(poc = %poc, failures = ?failures, "write not committed: delivery failed");
            return Err(NotifyError::DeliveryFailed {
                reason: failures.join("; "),
                retry_after_seconds,
            }
            .into());
        }
        let numbers: Vec<(String, u64)> = events
            .iter()
            .map(|e| (e.subscription_id.clone(), e.event_number))
            .collect();
        let committed = write.commit(events).await?;
        if let Err(e) = self.advance_counters(&numbers).await {
            // The write and its events are committed; the next write's number still follows
            // the log, so only `$status` lags until then.
            tracing::warn!(poc = %poc, error = %e, "event counters not advanced");
        }
        Ok(committed)
    }
}

impl ChangeNotifier for SubscriptionNotifier {
    fn deliver_then_commit(
        &self,
        write: Box<dyn PreparedWrite>,
    ) -> BoxFuture<'_, Result<CommittedWrite, WriteError>> {
        Box::pin(self.inner.clone().deliver_then_commit(write))
    }
}
