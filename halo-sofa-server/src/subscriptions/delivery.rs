//! Building notifications and delivering them: rest-hook POST or websocket frame (REQ SUB-03,
//! SUB-05).

use std::time::{Duration, Instant};

use halo_model::subscription::{
    ChannelType, Notification, NotificationType, Subscription, SubscriptionStatus,
    SubscriptionStatusParameters,
};
use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use serde_json::Value;

use super::Inner;
use crate::metrics;
use crate::store::{SubscriptionRecord, meta_instant};

/// The typed view of a stored subscription, with the status and counter the store holds.
pub(crate) fn typed(record: &SubscriptionRecord) -> Option<Subscription> {
    let mut subscription = Subscription::from_json(&record.resource.to_value()).ok()?;
    subscription.id = Some(record.id.clone());
    subscription.status = model_status(record.status);
    Some(subscription)
}

/// The typed views of stored subscriptions, each kept while its stored JSON is unchanged: every
/// app write looks up its PoC's subscriptions and every heartbeat pass all of them, and parsing
/// each one every time is work for nothing. A hit compares the stored JSON with the one parsed
/// (no allocation), so an update made by any instance is seen at once.
#[derive(Default)]
pub(crate) struct ParsedSubscriptions(
    std::sync::Mutex<
        std::collections::HashMap<String, (halo_model::fhir::RawResource, Subscription)>,
    >,
);

/// The most typed views kept; past it the cache starts over (a province's subscriptions fit
/// many times over).
const MAX_PARSED: usize = 100_000;

impl ParsedSubscriptions {
    /// [`typed`], from the cache when the stored JSON is the one parsed before.
    pub(crate) fn typed(&self, record: &SubscriptionRecord) -> Option<Subscription> {
        let mut parsed = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((resource, subscription)) = parsed.get(&record.id)
            && *resource == record.resource
        {
            let mut subscription = subscription.clone();
            subscription.status = model_status(record.status);
            return Some(subscription);
        }
        let subscription = typed(record)?;
        if parsed.len() >= MAX_PARSED {
            parsed.clear();
        }
        parsed.insert(
            record.id.clone(),
            (record.resource.clone(), subscription.clone()),
        );
        Some(subscription)
    }
}

pub(crate) fn model_status(status: crate::store::SubscriptionStatus) -> SubscriptionStatus {
    use crate::store::SubscriptionStatus as Stored;
    match status {
        Stored::Requested => SubscriptionStatus::Requested,
        Stored::Active => SubscriptionStatus::Active,
        Stored::Error => SubscriptionStatus::Error,
        Stored::Off => SubscriptionStatus::Off,
    }
}

impl Inner {
    /// `[base]/Subscription/[id]`.
    pub(crate) fn subscription_url(&self, id: &str) -> String {
        format!("{}/Subscription/{id}", self.config.base_url)
    }

    /// `[base]/Subscription/[id]/$status`.
    pub(crate) fn status_url(&self, id: &str) -> String {
        format!("{}/$status", self.subscription_url(id))
    }

    /// The status Parameters of `record` for a notification of type `kind`.
    pub(crate) fn status_parameters(
        &self,
        record: &SubscriptionRecord,
        kind: NotificationType,
        events_since_start: u64,
    ) -> SubscriptionStatusParameters {
        let mut status = SubscriptionStatusParameters::new(
            self.subscription_url(&record.id),
            model_status(record.status),
            kind,
        );
        status.id = Some(uuid::Uuid::new_v4().to_string());
        status.topic = Some(record.topic.clone());
        status.events_since_subscription_start = Some(events_since_start);
        status
    }

    /// A notification without events (handshake, heartbeat), restricted to the channel's
    /// payload content.
    pub(crate) fn bare_notification(
        &self,
        record: &SubscriptionRecord,
        subscription: &Subscription,
        kind: NotificationType,
    ) -> Value {
        let status = self.status_parameters(record, kind, record.events_since_start);
        let mut notification = Notification::new(status, self.status_url(&record.id));
        notification.id = Some(uuid::Uuid::new_v4().to_string());
        notification.timestamp = Some(meta_instant(self.clock.now()));
        notification.restrict_to(subscription.channel.content);
        notification.to_json()
    }

    /// How long a delivery to `subscription` may take.
    pub(crate) fn timeout_of(&self, subscription: &Subscription) -> Duration {
        subscription
            .channel
            .timeout
            .map(|seconds| Duration::from_secs(u64::from(seconds)))
            .unwrap_or(self.settings.default_timeout)
            .min(self.settings.max_timeout)
    }

    /// Delivers `body` on the subscription's channel; `Err` says why it was not acknowledged.
    /// `event` is the number of the logged event `body` announces: with it, a websocket bound
    /// on another instance of a shared store is asked to write the event (REQ CLU-03).
    pub(crate) async fn deliver(
        &self,
        subscription_id: &str,
        subscription: &Subscription,
        body: &Value,
        event: Option<u64>,
    ) -> Result<(), String> {
        let timeout = self.timeout_of(subscription);
        let bytes = serde_json::to_vec(body).map_err(|e| e.to_string())?;
        let started = Instant::now();
        let (channel, result) = match subscription.channel.channel_type {
            ChannelType::RestHook => ("rest-hook", self.post(subscription, bytes, timeout).await),
            ChannelType::Websocket if !self.hub.is_bound(subscription_id) && event.is_some() => {
                let number = event.unwrap_or_default();
                (
                    "websocket",
                    self.deliver_remotely(subscription_id, number, timeout)
                        .await,
                )
            }
            ChannelType::Websocket => {
                let text = String::from_utf8(bytes).map_err(|e| e.to_string())?;
                (
                    "websocket",
                    self.hub.send(subscription_id, text, timeout).await,
                )
            }
            other => return Err(format!("channel type {other} cannot be delivered")),
        };
        // REQ OPS-02: every delivery attempt, acknowledged or not, with its latency.
        metrics::notification(channel, result.is_ok(), started.elapsed());
        result
    }

    /// REQ SUB-05: `Content-Type` is the channel's payload type and every `channel.header` is
    /// sent; only a 2xx within the timeout counts as acknowledged.
    async fn post(
        &self,
        subscription: &Subscription,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<(), String> {
        let endpoint = subscription
            .channel
            .endpoint
            .as_deref()
            .ok_or("the rest-hook channel has no endpoint")?;
        let url = url::Url::parse(endpoint).map_err(|_| "the endpoint is not a URL".to_string())?;
        crate::outbound::check_url(&url, !self.settings.require_https)
            .map_err(|why| format!("the endpoint is refused: {why}"))?;
        let content_type = HeaderValue::from_str(&subscription.channel.payload)
            .map_err(|_| "the payload type is not a valid header value".to_string())?;
        let mut request = self
            .http
            .post(endpoint)
            .timeout(timeout)
            .header(CONTENT_TYPE, content_type);
        for (name, value) in subscription.channel.header_pairs() {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("channel.header `{name}` is not a valid header name"))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| format!("channel.header `{name}` has an invalid value"))?;
            request = request.header(name, value);
        }
        let response = request.body(body).send().await.map_err(|e| {
            if e.is_timeout() {
                format!(
                    "the endpoint did not answer within {} ms",
                    timeout.as_millis()
                )
            } else {
                "the endpoint could not be reached".to_string()
            }
        })?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!(
                "the endpoint answered {}",
                response.status().as_u16()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SubscriptionStatus as Stored;

    fn record(endpoint: &str, status: Stored) -> SubscriptionRecord {
        let resource = serde_json::json!({
            "resourceType": "Subscription",
            "meta": {"profile": ["http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription"]},
            "status": "requested",
            "reason": "test",
            "criteria": halo_model::canonical::SOFA_CONTENT_UPDATE_TOPIC,
            "channel": {
                "type": "rest-hook",
                "endpoint": endpoint,
                "payload": "application/fhir+json",
                "_payload": {"extension": [{
                    "url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content",
                    "valueCode": "id-only"
                }]}
            }
        });
        SubscriptionRecord {
            id: "s1".into(),
            owner_client_id: "poc".into(),
            topic: halo_model::canonical::SOFA_CONTENT_UPDATE_TOPIC.into(),
            status,
            events_since_start: 0,
            resource: halo_model::fhir::RawResource::from_value(resource).expect("a resource"),
            updated_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn a_kept_typed_view_follows_the_stored_json_and_status() {
        let parsed = ParsedSubscriptions::default();
        let first = parsed
            .typed(&record("https://a.example/hook", Stored::Active))
            .expect("typed");
        assert_eq!(
            first.channel.endpoint.as_deref(),
            Some("https://a.example/hook")
        );
        assert_eq!(first.status, SubscriptionStatus::Active);
        // Same JSON, new status: the kept view with the record's status.
        let again = parsed
            .typed(&record("https://a.example/hook", Stored::Error))
            .expect("typed");
        assert_eq!(again.status, SubscriptionStatus::Error);
        // Changed JSON (another instance updated it): parsed again, never the stale endpoint.
        let changed = parsed
            .typed(&record("https://b.example/hook", Stored::Active))
            .expect("typed");
        assert_eq!(
            changed.channel.endpoint.as_deref(),
            Some("https://b.example/hook")
        );
    }
}
