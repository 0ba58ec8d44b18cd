//! The R4 backport Subscription (profile `backport-subscription`): typed view, builder
//! ([`Subscription::to_json`]) and reader ([`Subscription::from_json`]).

use serde_json::{Map, Value, json};

use super::codes::{ChannelType, PayloadContent, SubscriptionStatus};
use super::filter::Filter;
use crate::canonical::{
    BACKPORT_CHANNEL_TYPE, BACKPORT_FILTER_CRITERIA, BACKPORT_HEARTBEAT_PERIOD, BACKPORT_MAX_COUNT,
    BACKPORT_PAYLOAD_CONTENT, BACKPORT_SUBSCRIPTION, BACKPORT_TIMEOUT,
};
use crate::outcome::IssueType;
use crate::set_context::{Findings, ValidationErrors};

/// `Subscription.channel` with the backport extensions.
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    /// `channel.type`.
    pub channel_type: ChannelType,
    /// A custom channel (`backport-channel-type` `valueCoding` on `channel.type`), kept as read.
    pub custom_type: Option<Value>,
    /// `channel.endpoint` (rest-hook: where to POST).
    pub endpoint: Option<String>,
    /// `channel.payload`: the MIME type of notifications (for example `application/fhir+json`).
    pub payload: String,
    /// `backport-payload-content`.
    pub content: PayloadContent,
    /// `channel.header`: `Name: value` strings sent with every rest-hook POST.
    pub headers: Vec<String>,
    /// `backport-heartbeat-period` in seconds; no heartbeats when absent.
    pub heartbeat_period: Option<u32>,
    /// `backport-timeout` in seconds.
    pub timeout: Option<u32>,
    /// `backport-max-count`: the most events per notification.
    pub max_count: Option<u32>,
}

impl Channel {
    /// A rest-hook channel posting `application/fhir+json` to `endpoint`.
    pub fn rest_hook(endpoint: impl Into<String>, content: PayloadContent) -> Channel {
        Channel {
            channel_type: ChannelType::RestHook,
            custom_type: None,
            endpoint: Some(endpoint.into()),
            payload: "application/fhir+json".into(),
            content,
            headers: Vec::new(),
            heartbeat_period: None,
            timeout: None,
            max_count: None,
        }
    }

    /// A websocket channel with `application/fhir+json` payloads.
    pub fn websocket(content: PayloadContent) -> Channel {
        Channel {
            channel_type: ChannelType::Websocket,
            endpoint: None,
            ..Channel::rest_hook("", content)
        }
    }

    /// The headers split into `(name, value)` at the first `:` (value trimmed). A header
    /// without a `:` is left out; [`Subscription::from_json`] reports it.
    pub fn header_pairs(&self) -> Vec<(&str, &str)> {
        self.headers
            .iter()
            .filter_map(|h| h.split_once(':'))
            .map(|(name, value)| (name.trim(), value.trim()))
            .collect()
    }
}

/// An R4 backport Subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    /// `id`, once the server assigned one.
    pub id: Option<String>,
    /// `status`.
    pub status: SubscriptionStatus,
    /// `reason` (1..1 in R4).
    pub reason: String,
    /// `end`: when the subscription expires (FHIR instant).
    pub end: Option<String>,
    /// `criteria`: the topic's canonical URL.
    pub topic: String,
    /// `backport-filter-criteria` values, ANDed.
    pub filters: Vec<Filter>,
    /// `channel`.
    pub channel: Channel,
    /// `error`: the latest error note.
    pub error: Option<String>,
}

impl Subscription {
    /// A new `requested` subscription to `topic`.
    pub fn new(
        topic: impl Into<String>,
        reason: impl Into<String>,
        channel: Channel,
    ) -> Subscription {
        Subscription {
            id: None,
            status: SubscriptionStatus::Requested,
            reason: reason.into(),
            end: None,
            topic: topic.into(),
            filters: Vec::new(),
            channel,
            error: None,
        }
    }

    /// The backport R4 JSON form, with the profile in `meta.profile`.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("resourceType".into(), json!("Subscription"));
        if let Some(id) = &self.id {
            out.insert("id".into(), json!(id));
        }
        out.insert("meta".into(), json!({"profile": [BACKPORT_SUBSCRIPTION]}));
        out.insert("status".into(), json!(self.status.as_str()));
        if let Some(end) = &self.end {
            out.insert("end".into(), json!(end));
        }
        out.insert("reason".into(), json!(self.reason));
        out.insert("criteria".into(), json!(self.topic));
        if !self.filters.is_empty() {
            let extensions: Vec<Value> = self
                .filters
                .iter()
                .map(|f| json!({"url": BACKPORT_FILTER_CRITERIA, "valueString": f.to_string()}))
                .collect();
            out.insert("_criteria".into(), json!({"extension": extensions}));
        }
        if let Some(error) = &self.error {
            out.insert("error".into(), json!(error));
        }
        out.insert("channel".into(), channel_json(&self.channel));
        Value::Object(out)
    }

    /// Reads a backport Subscription, reporting every structural problem at once (REQ SUB-02).
    ///
    /// This checks the profile; whether the server supports the topic, filters, channel and
    /// payload is [`super::SubscriptionPolicy::check`].
    pub fn from_json(json: &Value) -> Result<Subscription, ValidationErrors> {
        let mut findings = Findings::default();
        let Some(object) = json
            .as_object()
            .filter(|o| o.get("resourceType").and_then(Value::as_str) == Some("Subscription"))
        else {
            findings.error(
                IssueType::Structure,
                "Subscription",
                "expected a Subscription resource",
            );
            return Err(findings.into_errors());
        };
        let status = match object.get("status").and_then(Value::as_str) {
            Some(code) => SubscriptionStatus::from_code(code).or_else(|| {
                findings.error(
                    IssueType::CodeInvalid,
                    "Subscription.status",
                    format!("unknown status {code}"),
                );
                None
            }),
            None => {
                findings.error(
                    IssueType::Required,
                    "Subscription.status",
                    "status is required",
                );
                None
            }
        };
        let reason = required_string(object, "reason", "Subscription.reason", &mut findings);
        let topic = required_string(object, "criteria", "Subscription.criteria", &mut findings);
        if let Some(topic) = &topic
            && url::Url::parse(topic).is_err()
        {
            findings.error(
                IssueType::Value,
                "Subscription.criteria",
                format!("criteria must be the topic's canonical URL, found {topic}"),
            );
        }
        let filters = read_filters(object, &mut findings);
        let channel = match object.get("channel").and_then(Value::as_object) {
            Some(channel) => read_channel(channel, &mut findings),
            None => {
                findings.error(
                    IssueType::Required,
                    "Subscription.channel",
                    "channel is required",
                );
                None
            }
        };
        let (Some(status), Some(reason), Some(topic), Some(channel)) =
            (status, reason, topic, channel)
        else {
            return Err(findings.into_errors());
        };
        findings.finish(Subscription {
            id: object.get("id").and_then(Value::as_str).map(str::to_owned),
            status,
            reason,
            end: object.get("end").and_then(Value::as_str).map(str::to_owned),
            topic,
            filters,
            channel,
            error: object
                .get("error")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }
}

fn channel_json(channel: &Channel) -> Value {
    let mut out = Map::new();
    let mut extensions = Vec::new();
    if let Some(seconds) = channel.heartbeat_period {
        extensions.push(json!({"url": BACKPORT_HEARTBEAT_PERIOD, "valueUnsignedInt": seconds}));
    }
    if let Some(seconds) = channel.timeout {
        extensions.push(json!({"url": BACKPORT_TIMEOUT, "valueUnsignedInt": seconds}));
    }
    if let Some(count) = channel.max_count {
        extensions.push(json!({"url": BACKPORT_MAX_COUNT, "valuePositiveInt": count}));
    }
    if !extensions.is_empty() {
        out.insert("extension".into(), Value::Array(extensions));
    }
    out.insert("type".into(), json!(channel.channel_type.as_str()));
    if let Some(coding) = &channel.custom_type {
        out.insert(
            "_type".into(),
            json!({"extension": [{"url": BACKPORT_CHANNEL_TYPE, "valueCoding": coding}]}),
        );
    }
    if let Some(endpoint) = &channel.endpoint {
        out.insert("endpoint".into(), json!(endpoint));
    }
    out.insert("payload".into(), json!(channel.payload));
    out.insert(
        "_payload".into(),
        json!({"extension": [{"url": BACKPORT_PAYLOAD_CONTENT, "valueCode": channel.content.as_str()}]}),
    );
    if !channel.headers.is_empty() {
        out.insert("header".into(), json!(channel.headers));
    }
    Value::Object(out)
}

fn required_string(
    object: &Map<String, Value>,
    key: &str,
    at: &str,
    findings: &mut Findings,
) -> Option<String> {
    match object.get(key) {
        Some(Value::String(text)) if !text.is_empty() => Some(text.clone()),
        Some(other) => {
            findings.error(
                IssueType::Value,
                at,
                format!("{key} must be a non-empty string, found {other}"),
            );
            None
        }
        None => {
            findings.error(IssueType::Required, at, format!("{key} is required"));
            None
        }
    }
}

/// The `extension` array under `_element`, or empty.
fn primitive_extensions<'a>(object: &'a Map<String, Value>, element: &str) -> &'a [Value] {
    object
        .get(element)
        .and_then(|e| e.get("extension"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn read_filters(object: &Map<String, Value>, findings: &mut Findings) -> Vec<Filter> {
    let mut filters = Vec::new();
    for (index, extension) in primitive_extensions(object, "_criteria").iter().enumerate() {
        let at = format!("Subscription.criteria.extension[{index}]");
        let url = extension
            .get("url")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if url != BACKPORT_FILTER_CRITERIA {
            // A filter the server does not understand changes what the client would receive,
            // so it is refused rather than ignored (this also refuses cross-version copies of
            // the filter extension).
            findings.error(
                IssueType::Extension,
                format!("{at}.url"),
                format!("unsupported extension on criteria: {url}"),
            );
            continue;
        }
        match extension
            .get("valueString")
            .and_then(Value::as_str)
            .map(str::parse::<Filter>)
        {
            Some(Ok(filter)) => filters.push(filter),
            Some(Err(error)) => findings.error(
                IssueType::Value,
                format!("{at}.valueString"),
                error.to_string(),
            ),
            None => findings.error(
                IssueType::Required,
                format!("{at}.valueString"),
                "filter criteria needs a valueString",
            ),
        }
    }
    filters
}

fn read_channel(channel: &Map<String, Value>, findings: &mut Findings) -> Option<Channel> {
    let channel_type = match channel.get("type").and_then(Value::as_str) {
        Some(code) => ChannelType::from_code(code).or_else(|| {
            findings.error(
                IssueType::CodeInvalid,
                "Subscription.channel.type",
                format!("unknown channel type {code}"),
            );
            None
        }),
        None => {
            findings.error(
                IssueType::Required,
                "Subscription.channel.type",
                "channel.type is required",
            );
            None
        }
    };
    let custom_type = primitive_extensions(channel, "_type")
        .iter()
        .find(|e| e.get("url").and_then(Value::as_str) == Some(BACKPORT_CHANNEL_TYPE))
        .and_then(|e| e.get("valueCoding"))
        .cloned();
    let endpoint = channel
        .get("endpoint")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let payload = match channel.get("payload").and_then(Value::as_str) {
        Some(mime) if !mime.trim().is_empty() => Some(mime.to_owned()),
        _ => {
            findings.error(
                IssueType::Required,
                "Subscription.channel.payload",
                "channel.payload (a MIME type) is required",
            );
            None
        }
    };
    let content = match primitive_extensions(channel, "_payload")
        .iter()
        .find(|e| e.get("url").and_then(Value::as_str) == Some(BACKPORT_PAYLOAD_CONTENT))
        .and_then(|e| e.get("valueCode"))
        .and_then(Value::as_str)
    {
        Some(code) => PayloadContent::from_code(code).or_else(|| {
            findings.error(
                IssueType::CodeInvalid,
                "Subscription.channel.payload.extension",
                format!("unknown payload content {code}"),
            );
            None
        }),
        None => {
            findings.error(
                IssueType::Required,
                "Subscription.channel.payload.extension",
                "backport-payload-content is required on channel.payload",
            );
            None
        }
    };
    let mut headers = Vec::new();
    if let Some(list) = channel.get("header") {
        let items = list.as_array().map(Vec::as_slice).unwrap_or(&[]);
        if !list.is_array() {
            findings.error(
                IssueType::Structure,
                "Subscription.channel.header",
                "channel.header must be an array",
            );
        }
        for (index, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(header)
                    if header
                        .split_once(':')
                        .is_some_and(|(name, _)| !name.trim().is_empty()) =>
                {
                    headers.push(header.to_owned());
                }
                _ => findings.error(
                    IssueType::Value,
                    format!("Subscription.channel.header[{index}]"),
                    format!("a header must be written 'Name: value', found {item}"),
                ),
            }
        }
    }
    let mut heartbeat_period = None;
    let mut timeout = None;
    let mut max_count = None;
    let extensions = channel
        .get("extension")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    for (index, extension) in extensions.iter().enumerate() {
        let at = format!("Subscription.channel.extension[{index}]");
        let (slot, key, min) = match extension.get("url").and_then(Value::as_str) {
            Some(BACKPORT_HEARTBEAT_PERIOD) => (&mut heartbeat_period, "valueUnsignedInt", 0),
            Some(BACKPORT_TIMEOUT) => (&mut timeout, "valueUnsignedInt", 0),
            Some(BACKPORT_MAX_COUNT) => (&mut max_count, "valuePositiveInt", 1),
            // Other extensions do not change what is delivered; they are not kept.
            _ => continue,
        };
        match extension
            .get(key)
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
        {
            Some(n) if n >= min => *slot = Some(n),
            _ => findings.error(
                IssueType::Value,
                format!("{at}.{key}"),
                format!("{key} must be an integer >= {min}"),
            ),
        }
    }
    Some(Channel {
        channel_type: channel_type?,
        custom_type,
        endpoint,
        payload: payload?,
        content: content?,
        headers,
        heartbeat_period,
        timeout,
        max_count,
    })
}
