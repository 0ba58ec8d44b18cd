//! The R4 subscription status: a Parameters resource (profile `backport-subscription-status-r4`),
//! the first entry of every notification and each entry of a `$status` answer.

use serde_json::{Map, Value, json};

use super::codes::{NotificationType, SubscriptionStatus};
use crate::canonical::BACKPORT_SUBSCRIPTION_STATUS_R4;
use crate::outcome::IssueType;
use crate::set_context::{Findings, ValidationErrors};

/// One `notification-event` part.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationEvent {
    /// `event-number`: sequential per subscription (a string in R4, read as a number).
    pub event_number: u64,
    /// `timestamp`: when the event happened (FHIR instant).
    pub timestamp: Option<String>,
    /// `focus`: the reference of the resource the event is about.
    pub focus: Option<String>,
    /// `additional-context` references.
    pub additional_context: Vec<String>,
    /// Other parts (`related-query`, `authorization-type`, `authorization-value`), kept as read.
    pub other_parts: Vec<Value>,
}

impl NotificationEvent {
    /// An event with a number, a timestamp and a focus.
    pub fn new(
        event_number: u64,
        timestamp: impl Into<String>,
        focus: Option<String>,
    ) -> NotificationEvent {
        NotificationEvent {
            event_number,
            timestamp: Some(timestamp.into()),
            focus,
            additional_context: Vec::new(),
            other_parts: Vec::new(),
        }
    }

    fn to_json(&self) -> Value {
        let mut parts =
            vec![json!({"name": "event-number", "valueString": self.event_number.to_string()})];
        if let Some(timestamp) = &self.timestamp {
            parts.push(json!({"name": "timestamp", "valueInstant": timestamp}));
        }
        if let Some(focus) = &self.focus {
            parts.push(json!({"name": "focus", "valueReference": {"reference": focus}}));
        }
        for reference in &self.additional_context {
            parts.push(
                json!({"name": "additional-context", "valueReference": {"reference": reference}}),
            );
        }
        parts.extend(self.other_parts.iter().cloned());
        json!({"name": "notification-event", "part": parts})
    }
}

/// A subscription status Parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionStatusParameters {
    /// The Parameters' `id` (notifications use it in the entry's `urn:uuid:` fullUrl).
    pub id: Option<String>,
    /// `subscription`: the Subscription's reference (absolute URL ending in its id).
    pub subscription: String,
    /// `topic`: the topic canonical (SHOULD NOT with `empty` content).
    pub topic: Option<String>,
    /// `status` when this was generated.
    pub status: SubscriptionStatus,
    /// `type`.
    pub notification_type: NotificationType,
    /// `events-since-subscription-start` (not incremented by handshakes and heartbeats).
    pub events_since_subscription_start: Option<u64>,
    /// `notification-event`, one per event.
    pub events: Vec<NotificationEvent>,
    /// `error` CodeableConcepts.
    pub errors: Vec<Value>,
}

impl SubscriptionStatusParameters {
    /// A status with no events.
    pub fn new(
        subscription: impl Into<String>,
        status: SubscriptionStatus,
        notification_type: NotificationType,
    ) -> SubscriptionStatusParameters {
        SubscriptionStatusParameters {
            id: None,
            subscription: subscription.into(),
            topic: None,
            status,
            notification_type,
            events_since_subscription_start: None,
            events: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// The subscription's logical id: the last path segment of `subscription`.
    pub fn subscription_id(&self) -> &str {
        self.subscription.rsplit('/').next().unwrap_or_default()
    }

    /// The Parameters JSON with the R4 status profile.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("resourceType".into(), json!("Parameters"));
        if let Some(id) = &self.id {
            out.insert("id".into(), json!(id));
        }
        out.insert(
            "meta".into(),
            json!({"profile": [BACKPORT_SUBSCRIPTION_STATUS_R4]}),
        );
        let mut parameters = vec![
            json!({"name": "subscription", "valueReference": {"reference": self.subscription}}),
        ];
        if let Some(topic) = &self.topic {
            parameters.push(json!({"name": "topic", "valueCanonical": topic}));
        }
        parameters.push(json!({"name": "status", "valueCode": self.status.as_str()}));
        parameters.push(json!({"name": "type", "valueCode": self.notification_type.as_str()}));
        if let Some(count) = self.events_since_subscription_start {
            parameters.push(json!({"name": "events-since-subscription-start", "valueString": count.to_string()}));
        }
        parameters.extend(self.events.iter().map(NotificationEvent::to_json));
        parameters.extend(
            self.errors
                .iter()
                .map(|e| json!({"name": "error", "valueCodeableConcept": e})),
        );
        out.insert("parameter".into(), Value::Array(parameters));
        Value::Object(out)
    }

    /// Reads a status Parameters, reporting every problem at once.
    pub fn from_json(json: &Value) -> Result<SubscriptionStatusParameters, ValidationErrors> {
        let mut findings = Findings::default();
        let status = read(json, "Parameters", &mut findings);
        match status {
            Some(status) => findings.finish(status),
            None => Err(findings.into_errors()),
        }
    }

    pub(crate) fn read_at(
        json: &Value,
        base: &str,
        findings: &mut Findings,
    ) -> Option<SubscriptionStatusParameters> {
        read(json, base, findings)
    }
}

fn read(json: &Value, base: &str, findings: &mut Findings) -> Option<SubscriptionStatusParameters> {
    if json.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        findings.error(
            IssueType::Structure,
            base,
            "the subscription status must be a Parameters resource",
        );
        return None;
    }
    let parameters = json
        .get("parameter")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let mut subscription = None;
    let mut topic = None;
    let mut status = None;
    let mut notification_type = None;
    let mut events_since = None;
    let mut events = Vec::new();
    let mut errors = Vec::new();
    for (index, parameter) in parameters.iter().enumerate() {
        let at = format!("{base}.parameter[{index}]");
        match parameter.get("name").and_then(Value::as_str) {
            Some("subscription") => {
                subscription = reference_of(parameter.get("valueReference"));
                if subscription.is_none() {
                    findings.error(
                        IssueType::Required,
                        format!("{at}.valueReference"),
                        "subscription needs a valueReference",
                    );
                }
            }
            Some("topic") => {
                topic = parameter
                    .get("valueCanonical")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            }
            Some("status") => {
                status = code(parameter, &at, SubscriptionStatus::from_code, findings);
            }
            Some("type") => {
                notification_type = code(parameter, &at, NotificationType::from_code, findings);
            }
            Some("events-since-subscription-start") => {
                events_since = number(
                    parameter.get("valueString"),
                    &format!("{at}.valueString"),
                    findings,
                );
            }
            Some("notification-event") => {
                if let Some(event) = read_event(parameter, &at, findings) {
                    events.push(event);
                }
            }
            Some("error") => errors.push(
                parameter
                    .get("valueCodeableConcept")
                    .cloned()
                    .unwrap_or(Value::Null),
            ),
            // Unknown parameters are tolerated: later IG versions add some.
            _ => {}
        }
    }
    for (present, name) in [
        (subscription.is_some(), "subscription"),
        (status.is_some(), "status"),
        (notification_type.is_some(), "type"),
    ] {
        if !present {
            findings.error(
                IssueType::Required,
                format!("{base}.parameter"),
                format!("the status has no {name}"),
            );
        }
    }
    Some(SubscriptionStatusParameters {
        id: json.get("id").and_then(Value::as_str).map(str::to_owned),
        subscription: subscription?,
        topic,
        status: status?,
        notification_type: notification_type?,
        events_since_subscription_start: events_since,
        events,
        errors,
    })
}

fn reference_of(value: Option<&Value>) -> Option<String> {
    value?.get("reference")?.as_str().map(str::to_owned)
}

fn code<T>(
    parameter: &Value,
    at: &str,
    from_code: fn(&str) -> Option<T>,
    findings: &mut Findings,
) -> Option<T> {
    let text = parameter.get("valueCode").and_then(Value::as_str);
    let value = text.and_then(from_code);
    if value.is_none() {
        findings.error(
            IssueType::CodeInvalid,
            format!("{at}.valueCode"),
            format!("unknown code {}", text.unwrap_or("(none)")),
        );
    }
    value
}

fn number(value: Option<&Value>, at: &str, findings: &mut Findings) -> Option<u64> {
    let parsed = value
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<u64>().ok());
    if parsed.is_none() {
        findings.error(
            IssueType::Value,
            at,
            "expected a non-negative integer written as a string",
        );
    }
    parsed
}

fn read_event(parameter: &Value, at: &str, findings: &mut Findings) -> Option<NotificationEvent> {
    let parts = parameter
        .get("part")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let mut event_number = None;
    let mut event = NotificationEvent {
        event_number: 0,
        timestamp: None,
        focus: None,
        additional_context: Vec::new(),
        other_parts: Vec::new(),
    };
    for (index, part) in parts.iter().enumerate() {
        let part_at = format!("{at}.part[{index}]");
        match part.get("name").and_then(Value::as_str) {
            Some("event-number") => {
                event_number = number(
                    part.get("valueString"),
                    &format!("{part_at}.valueString"),
                    findings,
                )
            }
            Some("timestamp") => {
                event.timestamp = part
                    .get("valueInstant")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            }
            Some("focus") => event.focus = reference_of(part.get("valueReference")),
            Some("additional-context") => event
                .additional_context
                .extend(reference_of(part.get("valueReference"))),
            _ => event.other_parts.push(part.clone()),
        }
    }
    match event_number {
        Some(number) => {
            event.event_number = number;
            Some(event)
        }
        None => {
            if !parts
                .iter()
                .any(|p| p.get("name").and_then(Value::as_str) == Some("event-number"))
            {
                findings.error(
                    IssueType::Required,
                    format!("{at}.part"),
                    "notification-event needs an event-number",
                );
            }
            None
        }
    }
}
