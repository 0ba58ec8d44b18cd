//! The backport operations' inputs and outputs: `$status` (REQ SUB-08), `$events` (SUB-07),
//! `$get-ws-binding-token` and the websocket bind message (SUB-09).

use serde_json::{Value, json};

use super::codes::{PayloadContent, SubscriptionStatus};
use super::status::SubscriptionStatusParameters;
use crate::outcome::IssueType;
use crate::set_context::{Findings, ValidationErrors};

/// `(name, value)` of each parameter of a Parameters resource, with its index; anything that is
/// not an object with a string name is reported.
fn parameters<'a>(json: &'a Value, findings: &mut Findings) -> Vec<(usize, &'a str, &'a Value)> {
    if json.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        findings.error(
            IssueType::Structure,
            "Parameters",
            "expected a Parameters resource",
        );
        return Vec::new();
    }
    let items = json
        .get("parameter")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let mut out = Vec::new();
    for (index, item) in items.iter().enumerate() {
        match item.get("name").and_then(Value::as_str) {
            Some(name) => out.push((index, name, item)),
            None => findings.error(
                IssueType::Required,
                format!("Parameters.parameter[{index}].name"),
                "the parameter has no name",
            ),
        }
    }
    out
}

fn string_value<'a>(
    item: &'a Value,
    key: &str,
    index: usize,
    findings: &mut Findings,
) -> Option<&'a str> {
    let value = item.get(key).and_then(Value::as_str);
    if value.is_none() {
        findings.error(
            IssueType::Structure,
            format!("Parameters.parameter[{index}].{key}"),
            format!("expected {key}"),
        );
    }
    value
}

/// `$status` input (type level): ids and statuses to filter by, each OR-joined.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusQuery {
    /// `id` (0..*): none = every subscription the caller may see.
    pub ids: Vec<String>,
    /// `status` (0..*).
    pub statuses: Vec<SubscriptionStatus>,
}

impl StatusQuery {
    /// Reads a `$status` input Parameters (for `POST`; a `GET` passes the same as query items).
    pub fn from_json(json: &Value) -> Result<StatusQuery, ValidationErrors> {
        let mut findings = Findings::default();
        let mut query = StatusQuery::default();
        for (index, name, item) in parameters(json, &mut findings) {
            match name {
                "id" => query
                    .ids
                    .extend(string_value(item, "valueId", index, &mut findings).map(str::to_owned)),
                "status" => {
                    if let Some(code) = string_value(item, "valueCode", index, &mut findings) {
                        match SubscriptionStatus::from_code(code) {
                            Some(status) => query.statuses.push(status),
                            None => findings.error(
                                IssueType::CodeInvalid,
                                format!("Parameters.parameter[{index}].valueCode"),
                                format!("unknown status {code}"),
                            ),
                        }
                    }
                }
                other => findings.error(
                    IssueType::NotSupported,
                    format!("Parameters.parameter[{index}].name"),
                    format!("unknown $status parameter {other}"),
                ),
            }
        }
        findings.finish(query)
    }

    /// The input Parameters.
    pub fn to_json(&self) -> Value {
        let mut parameters: Vec<Value> = self
            .ids
            .iter()
            .map(|id| json!({"name": "id", "valueId": id}))
            .collect();
        parameters.extend(
            self.statuses
                .iter()
                .map(|s| json!({"name": "status", "valueCode": s.as_str()})),
        );
        json!({"resourceType": "Parameters", "parameter": parameters})
    }
}

/// The `$status` answer: a `searchset` Bundle of status Parameters (type `query-status`), one
/// per subscription (REQ SUB-08).
pub fn status_bundle(
    statuses: &[SubscriptionStatusParameters],
    self_url: &str,
    bundle_id: &str,
    timestamp: &str,
) -> Value {
    let entries: Vec<Value> = statuses
        .iter()
        .map(|status| {
            let mut entry = serde_json::Map::new();
            if let Some(id) = &status.id {
                entry.insert("fullUrl".into(), json!(format!("urn:uuid:{id}")));
            }
            entry.insert("resource".into(), status.to_json());
            entry.insert("search".into(), json!({"mode": "match"}));
            Value::Object(entry)
        })
        .collect();
    json!({
        "resourceType": "Bundle",
        "id": bundle_id,
        "type": "searchset",
        "timestamp": timestamp,
        "total": statuses.len(),
        "link": [{"relation": "self", "url": self_url}],
        "entry": entries,
    })
}

/// Reads a `$status` answer: every status Parameters in it.
pub fn parse_status_bundle(
    json: &Value,
) -> Result<Vec<SubscriptionStatusParameters>, ValidationErrors> {
    let mut findings = Findings::default();
    if json.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        findings.error(
            IssueType::Structure,
            "Bundle",
            "the $status answer must be a Bundle",
        );
        return Err(findings.into_errors());
    }
    if json.get("type").and_then(Value::as_str) != Some("searchset") {
        findings.error(
            IssueType::Value,
            "Bundle.type",
            "the $status answer is a searchset Bundle",
        );
    }
    let entries = json
        .get("entry")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let mut statuses = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let at = format!("Bundle.entry[{index}].resource");
        match entry.get("resource") {
            Some(resource) => statuses.extend(SubscriptionStatusParameters::read_at(
                resource,
                &at,
                &mut findings,
            )),
            None => findings.error(IssueType::Required, at, "the entry has no resource"),
        }
    }
    findings.finish(statuses)
}

/// `$events` input: an inclusive range of event numbers and a content hint (REQ SUB-07).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventsQuery {
    /// `eventsSinceNumber` (inclusive).
    pub since: Option<u64>,
    /// `eventsUntilNumber` (inclusive).
    pub until: Option<u64>,
    /// `content`: a hint the server MAY ignore.
    pub content: Option<PayloadContent>,
}

impl EventsQuery {
    /// Reads an `$events` input Parameters.
    pub fn from_json(json: &Value) -> Result<EventsQuery, ValidationErrors> {
        let mut findings = Findings::default();
        let mut query = EventsQuery::default();
        for (index, name, item) in parameters(json, &mut findings) {
            let at = format!("Parameters.parameter[{index}]");
            match name {
                "eventsSinceNumber" | "eventsUntilNumber" => {
                    // Event numbers are FHIR integer64 values: above i64::MAX is no number a
                    // server can hold, and is refused here rather than deep in a store.
                    let number =
                        string_value(item, "valueString", index, &mut findings).map(|text| {
                            text.parse::<u64>()
                                .ok()
                                .filter(|n| i64::try_from(*n).is_ok())
                                .ok_or(())
                        });
                    match number {
                        Some(Ok(number)) if name == "eventsSinceNumber" => {
                            query.since = Some(number)
                        }
                        Some(Ok(number)) => query.until = Some(number),
                        Some(Err(())) => findings.error(
                            IssueType::Value,
                            format!("{at}.valueString"),
                            format!("{name} must be an integer from 0 to 9223372036854775807"),
                        ),
                        None => {}
                    }
                }
                "content" => {
                    if let Some(code) = string_value(item, "valueCode", index, &mut findings) {
                        match PayloadContent::from_code(code) {
                            Some(content) => query.content = Some(content),
                            None => findings.error(
                                IssueType::CodeInvalid,
                                format!("{at}.valueCode"),
                                format!("unknown content {code}"),
                            ),
                        }
                    }
                }
                other => findings.error(
                    IssueType::NotSupported,
                    format!("{at}.name"),
                    format!("unknown $events parameter {other}"),
                ),
            }
        }
        if let (Some(since), Some(until)) = (query.since, query.until)
            && since > until
        {
            findings.error(
                IssueType::Value,
                "Parameters",
                format!("eventsSinceNumber {since} is after eventsUntilNumber {until}"),
            );
        }
        findings.finish(query)
    }

    /// Reads the query items of `GET Subscription/[id]/$events?eventsSinceNumber=...`.
    pub fn from_query<'a>(
        items: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<EventsQuery, ValidationErrors> {
        let parameters: Vec<Value> = items
            .into_iter()
            .map(|(name, value)| {
                let key = if name == "content" {
                    "valueCode"
                } else {
                    "valueString"
                };
                json!({"name": name, key: value})
            })
            .collect();
        EventsQuery::from_json(&json!({"resourceType": "Parameters", "parameter": parameters}))
    }

    /// The input Parameters.
    pub fn to_json(&self) -> Value {
        let mut parameters = Vec::new();
        if let Some(since) = self.since {
            parameters.push(json!({"name": "eventsSinceNumber", "valueString": since.to_string()}));
        }
        if let Some(until) = self.until {
            parameters.push(json!({"name": "eventsUntilNumber", "valueString": until.to_string()}));
        }
        if let Some(content) = self.content {
            parameters.push(json!({"name": "content", "valueCode": content.as_str()}));
        }
        json!({"resourceType": "Parameters", "parameter": parameters})
    }

    /// Whether event `number` is in the range.
    pub fn contains(&self, number: u64) -> bool {
        self.since.is_none_or(|since| number >= since)
            && self.until.is_none_or(|until| number <= until)
    }
}

/// `$get-ws-binding-token` input: the subscriptions to bind (ignored at instance level).
pub fn binding_token_input(ids: &[&str]) -> Value {
    json!({
        "resourceType": "Parameters",
        "parameter": ids.iter().map(|id| json!({"name": "id", "valueId": id})).collect::<Vec<_>>(),
    })
}

/// Reads a `$get-ws-binding-token` input: the `id`s asked for.
pub fn parse_binding_token_input(json: &Value) -> Result<Vec<String>, ValidationErrors> {
    let mut findings = Findings::default();
    let mut ids = Vec::new();
    for (index, name, item) in parameters(json, &mut findings) {
        match name {
            "id" => {
                ids.extend(string_value(item, "valueId", index, &mut findings).map(str::to_owned))
            }
            other => findings.error(
                IssueType::NotSupported,
                format!("Parameters.parameter[{index}].name"),
                format!("unknown $get-ws-binding-token parameter {other}"),
            ),
        }
    }
    findings.finish(ids)
}

/// `$get-ws-binding-token` output (REQ SUB-09).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingToken {
    /// `token`: single-use, short-lived.
    pub token: String,
    /// `expiration` (FHIR dateTime).
    pub expiration: String,
    /// `subscription`: the subscription ids the token is valid for.
    pub subscriptions: Vec<String>,
    /// `websocket-url`.
    pub websocket_url: String,
}

impl BindingToken {
    /// The output Parameters (`subscription` as `valueString`, per the OperationDefinition).
    pub fn to_json(&self) -> Value {
        let mut parameters = vec![
            json!({"name": "token", "valueString": self.token}),
            json!({"name": "expiration", "valueDateTime": self.expiration}),
        ];
        parameters.extend(
            self.subscriptions
                .iter()
                .map(|s| json!({"name": "subscription", "valueString": s})),
        );
        parameters.push(json!({"name": "websocket-url", "valueUrl": self.websocket_url}));
        json!({"resourceType": "Parameters", "parameter": parameters})
    }

    /// Reads the output. `subscription` is also accepted as `valueReference`, which several
    /// servers send; its last path segment is the id.
    pub fn from_json(json: &Value) -> Result<BindingToken, ValidationErrors> {
        let mut findings = Findings::default();
        let (mut token, mut expiration, mut websocket_url) = (None, None, None);
        let mut subscriptions = Vec::new();
        for (index, name, item) in parameters(json, &mut findings) {
            match name {
                "token" => {
                    token =
                        string_value(item, "valueString", index, &mut findings).map(str::to_owned)
                }
                "expiration" => {
                    expiration =
                        string_value(item, "valueDateTime", index, &mut findings).map(str::to_owned)
                }
                "websocket-url" => {
                    websocket_url =
                        string_value(item, "valueUrl", index, &mut findings).map(str::to_owned)
                }
                "subscription" => {
                    let id = item
                        .get("valueString")
                        .and_then(Value::as_str)
                        .or_else(|| {
                            item.pointer("/valueReference/reference")
                                .and_then(Value::as_str)
                        })
                        .map(|s| s.rsplit('/').next().unwrap_or(s).to_owned());
                    match id {
                        Some(id) => subscriptions.push(id),
                        None => findings.error(
                            IssueType::Structure,
                            format!("Parameters.parameter[{index}]"),
                            "subscription takes a valueString",
                        ),
                    }
                }
                _ => {}
            }
        }
        for (present, name) in [
            (token.is_some(), "token"),
            (expiration.is_some(), "expiration"),
            (websocket_url.is_some(), "websocket-url"),
        ] {
            if !present {
                findings.error(
                    IssueType::Required,
                    "Parameters.parameter",
                    format!("the answer has no {name}"),
                );
            }
        }
        match (token, expiration, websocket_url) {
            (Some(token), Some(expiration), Some(websocket_url)) => findings.finish(BindingToken {
                token,
                expiration,
                subscriptions,
                websocket_url,
            }),
            _ => Err(findings.into_errors()),
        }
    }
}

/// Reads a websocket text frame that binds a token, in any of the forms seen in practice:
/// `bind-with-token <token>`, `bind-with-token: <token>`, and
/// `{"type": "bind-with-token", "payload": {"token": "<token>"}}`. Gives the token.
///
/// ```
/// use halo_model::subscription::parse_bind_message;
/// assert_eq!(parse_bind_message("bind-with-token abc").as_deref(), Some("abc"));
/// assert_eq!(parse_bind_message("bind-with-token: abc").as_deref(), Some("abc"));
/// assert_eq!(
///     parse_bind_message(r#"{"type":"bind-with-token","payload":{"token":"abc"}}"#).as_deref(),
///     Some("abc")
/// );
/// assert_eq!(parse_bind_message("bind abc"), None);
/// ```
pub fn parse_bind_message(frame: &str) -> Option<String> {
    let frame = frame.trim();
    if frame.starts_with('{') {
        let json: Value = serde_json::from_str(frame).ok()?;
        if json.get("type")?.as_str()? != "bind-with-token" {
            return None;
        }
        let token = json.pointer("/payload/token")?.as_str()?;
        return (!token.is_empty()).then(|| token.to_owned());
    }
    let rest = frame.strip_prefix("bind-with-token")?;
    let rest = match rest.strip_prefix(':') {
        Some(after_colon) => after_colon,
        None if rest.starts_with(char::is_whitespace) => rest,
        None => return None,
    };
    let token = rest.trim();
    (!token.is_empty() && !token.contains(char::is_whitespace)).then(|| token.to_owned())
}
