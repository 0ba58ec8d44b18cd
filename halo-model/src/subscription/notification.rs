//! The R4 notification Bundle (profile `backport-subscription-notification-r4`): a `history`
//! Bundle whose first entry is the status Parameters, every entry with `request` and
//! `response` (REQ SUB-05). Used for handshakes, heartbeats, event notifications and the
//! `$events` answer, at the three payload content levels.

use serde_json::{Map, Value, json};

use super::codes::{NotificationType, PayloadContent};
use super::status::SubscriptionStatusParameters;
use crate::canonical::BACKPORT_SUBSCRIPTION_NOTIFICATION_R4;
use crate::outcome::IssueType;
use crate::set_context::{Findings, ValidationErrors};

/// An entry after the status: a resource the notification is about (or its id only).
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationEntry {
    /// `fullUrl`: the resource's absolute URL.
    pub full_url: String,
    /// `resource`: present at `full-resource`, absent at `id-only`.
    pub resource: Option<Value>,
    /// `request.method` of the interaction that triggered the event (`POST`, `PUT`, `GET`).
    pub method: String,
    /// `request.url`.
    pub url: String,
    /// `response.status` (`201`, `200`).
    pub status: String,
}

impl NotificationEntry {
    /// A resource created by `POST [type]` (`201`).
    pub fn created(
        full_url: impl Into<String>,
        resource_type: &str,
        resource: Option<Value>,
    ) -> NotificationEntry {
        NotificationEntry {
            full_url: full_url.into(),
            resource,
            method: "POST".into(),
            url: resource_type.to_owned(),
            status: "201".into(),
        }
    }

    /// A resource updated by `PUT [type]/[id]` (`200`).
    pub fn updated(
        full_url: impl Into<String>,
        resource_type: &str,
        id: &str,
        resource: Option<Value>,
    ) -> NotificationEntry {
        NotificationEntry {
            full_url: full_url.into(),
            resource,
            method: "PUT".into(),
            url: format!("{resource_type}/{id}"),
            status: "200".into(),
        }
    }

    fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("fullUrl".into(), json!(self.full_url));
        if let Some(resource) = &self.resource {
            out.insert("resource".into(), resource.clone());
        }
        out.insert(
            "request".into(),
            json!({"method": self.method, "url": self.url}),
        );
        out.insert("response".into(), json!({"status": self.status}));
        Value::Object(out)
    }

    /// Whether this entry is the resource `reference` points at: same `fullUrl`, or a
    /// `fullUrl` / resource that ends in the same `Type/id`.
    pub fn matches(&self, reference: &str) -> bool {
        if self.full_url == reference {
            return true;
        }
        if reference.starts_with("urn:") {
            return false;
        }
        let tail = type_and_id(reference);
        let resource_tail = self.resource.as_ref().and_then(|r| {
            Some(format!(
                "{}/{}",
                r.get("resourceType")?.as_str()?,
                r.get("id")?.as_str()?
            ))
        });
        tail.is_some() && (type_and_id(&self.full_url) == tail || resource_tail == tail)
    }
}

fn type_and_id(reference: &str) -> Option<String> {
    let mut segments = reference.trim_end_matches('/').rsplit('/');
    let id = segments.next()?;
    let resource_type = segments.next()?;
    Some(format!("{resource_type}/{id}"))
}

/// A notification: status first, then the entries the payload content allows.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// The Bundle's `id`.
    pub id: Option<String>,
    /// The Bundle's `timestamp` (FHIR instant).
    pub timestamp: Option<String>,
    /// The status Parameters (entry 0).
    pub status: SubscriptionStatusParameters,
    /// Entry 0's `request.url`: `[base]/Subscription/[id]/$status`.
    pub status_url: String,
    /// The entries after the status.
    pub entries: Vec<NotificationEntry>,
}

impl Notification {
    /// A notification with no entries after the status; `status_url` is
    /// `[base]/Subscription/[id]/$status`.
    pub fn new(
        status: SubscriptionStatusParameters,
        status_url: impl Into<String>,
    ) -> Notification {
        Notification {
            id: None,
            timestamp: None,
            status,
            status_url: status_url.into(),
            entries: Vec::new(),
        }
    }

    /// The notification type of its status.
    pub fn notification_type(&self) -> NotificationType {
        self.status.notification_type
    }

    /// Strips what `content` does not allow (REQ SUB-05): at `empty` the topic, focus,
    /// additional context and every entry; at `id-only` each entry's resource.
    pub fn restrict_to(&mut self, content: PayloadContent) {
        match content {
            PayloadContent::Empty => {
                self.status.topic = None;
                for event in &mut self.status.events {
                    event.focus = None;
                    event.additional_context.clear();
                }
                self.entries.clear();
            }
            PayloadContent::IdOnly => {
                for entry in &mut self.entries {
                    entry.resource = None;
                }
            }
            PayloadContent::FullResource => {}
        }
    }

    /// The Bundle JSON (`history`, the R4 notification profile).
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("resourceType".into(), json!("Bundle"));
        if let Some(id) = &self.id {
            out.insert("id".into(), json!(id));
        }
        out.insert(
            "meta".into(),
            json!({"profile": [BACKPORT_SUBSCRIPTION_NOTIFICATION_R4]}),
        );
        out.insert("type".into(), json!("history"));
        if let Some(timestamp) = &self.timestamp {
            out.insert("timestamp".into(), json!(timestamp));
        }
        let mut first = Map::new();
        if let Some(id) = &self.status.id {
            first.insert("fullUrl".into(), json!(format!("urn:uuid:{id}")));
        }
        first.insert("resource".into(), self.status.to_json());
        first.insert(
            "request".into(),
            json!({"method": "GET", "url": self.status_url}),
        );
        first.insert("response".into(), json!({"status": "200"}));
        let mut entries = vec![Value::Object(first)];
        entries.extend(self.entries.iter().map(NotificationEntry::to_json));
        out.insert("entry".into(), Value::Array(entries));
        Value::Object(out)
    }

    /// Reads a notification Bundle, checking the R4 profile's rules: `history`, a status
    /// Parameters first, `request` and `response` on every entry.
    pub fn from_json(json: &Value) -> Result<Notification, ValidationErrors> {
        let mut findings = Findings::default();
        if json.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
            findings.error(
                IssueType::Structure,
                "Bundle",
                "a notification must be a Bundle",
            );
            return Err(findings.into_errors());
        }
        if json.get("type").and_then(Value::as_str) != Some("history") {
            findings.error(
                IssueType::Value,
                "Bundle.type",
                "a notification Bundle has type history",
            );
        }
        let entries = json
            .get("entry")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let Some((first, rest)) = entries.split_first() else {
            findings.error(
                IssueType::Required,
                "Bundle.entry",
                "a notification needs the status as its first entry",
            );
            return Err(findings.into_errors());
        };
        for (index, entry) in entries.iter().enumerate() {
            for element in ["request", "response"] {
                if entry.get(element).is_none() {
                    findings.error(
                        IssueType::Required,
                        format!("Bundle.entry[{index}].{element}"),
                        format!("every entry of a history Bundle needs {element}"),
                    );
                }
            }
        }
        let status = first.get("resource").and_then(|resource| {
            SubscriptionStatusParameters::read_at(
                resource,
                "Bundle.entry[0].resource",
                &mut findings,
            )
        });
        let status_url = first
            .pointer("/request/url")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if first.get("resource").is_none() {
            findings.error(
                IssueType::Required,
                "Bundle.entry[0].resource",
                "the first entry must hold the status Parameters",
            );
        }
        let entries = rest
            .iter()
            .map(|entry| NotificationEntry {
                full_url: entry
                    .get("fullUrl")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                resource: entry.get("resource").cloned(),
                method: entry
                    .pointer("/request/method")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                url: entry
                    .pointer("/request/url")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                status: entry
                    .pointer("/response/status")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            })
            .collect();
        let Some(status) = status else {
            return Err(findings.into_errors());
        };
        findings.finish(Notification {
            id: json.get("id").and_then(Value::as_str).map(str::to_owned),
            timestamp: json
                .get("timestamp")
                .and_then(Value::as_str)
                .map(str::to_owned),
            status,
            status_url,
            entries,
        })
    }

    /// Checks the payload content rules of the IG (and what Inferno checks) for `content`:
    /// event notifications carry at least one event; `empty` has no focus, additional context
    /// or entries; `id-only` has a focus per event and no resources; `full-resource` has a focus
    /// per event and an entry for every focus and additional context.
    pub fn check_content(&self, content: PayloadContent) -> Result<(), ValidationErrors> {
        let mut findings = Findings::default();
        let events_at = "Bundle.entry[0].resource.parameter.where(name = 'notification-event')";
        if matches!(
            self.notification_type(),
            NotificationType::EventNotification | NotificationType::QueryEvent
        ) && self.status.events.is_empty()
        {
            findings.error(
                IssueType::Required,
                events_at,
                "an event notification needs a notification-event",
            );
        }
        for (index, event) in self.status.events.iter().enumerate() {
            let at = format!("{events_at}[{index}].part");
            match content {
                PayloadContent::Empty => {
                    if event.focus.is_some() || !event.additional_context.is_empty() {
                        findings.error(
                            IssueType::Invariant,
                            at,
                            "empty content carries no focus or additional-context",
                        );
                    }
                }
                PayloadContent::IdOnly | PayloadContent::FullResource => {
                    if event.focus.is_none() {
                        findings.error(
                            IssueType::Required,
                            format!("{at}.where(name = 'focus')"),
                            "the event needs a focus",
                        );
                    }
                }
            }
            if content == PayloadContent::FullResource {
                for reference in event.focus.iter().chain(&event.additional_context) {
                    if !self
                        .entries
                        .iter()
                        .any(|e| e.matches(reference) && e.resource.is_some())
                    {
                        findings.error(
                            IssueType::NotFound,
                            "Bundle.entry",
                            format!("no entry holds {reference}"),
                        );
                    }
                }
            }
        }
        for (index, entry) in self.entries.iter().enumerate() {
            let at = format!("Bundle.entry[{}]", index + 1);
            match content {
                PayloadContent::Empty => findings.error(
                    IssueType::Invariant,
                    at,
                    "empty content allows no entry besides the status",
                ),
                PayloadContent::IdOnly if entry.resource.is_some() => findings.error(
                    IssueType::Invariant,
                    format!("{at}.resource"),
                    "id-only content carries no resource",
                ),
                _ => {}
            }
        }
        findings.finish(())
    }
}
