//! SetContextOutputParameters (`launchID`, `resourcesResponse`) and the
//! SetContextTransactionResponseBundle inside it (REQ SC-06).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::findings::{Findings, ValidationErrors};
use super::names::{LAUNCH_ID, RESOURCES_RESPONSE};
use crate::canonical::{SET_CONTEXT_OUTPUT_PARAMETERS, SET_CONTEXT_TRANSACTION_RESPONSE_BUNDLE};
use crate::outcome::IssueType;

/// What the server did with one entry of the `resources` Bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryResult {
    /// The resource type.
    pub resource_type: String,
    /// The id the server assigned.
    pub id: String,
    /// The version id (`1` for a new resource).
    pub version_id: String,
    /// `lastModified` (a FHIR instant), when known.
    pub last_modified: Option<String>,
}

impl EntryResult {
    /// A newly created resource: version `1`.
    pub fn created(
        resource_type: impl Into<String>,
        id: impl Into<String>,
        last_modified: impl Into<String>,
    ) -> EntryResult {
        EntryResult {
            resource_type: resource_type.into(),
            id: id.into(),
            version_id: "1".into(),
            last_modified: Some(last_modified.into()),
        }
    }

    /// `Type/id`.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.resource_type, self.id)
    }

    /// `Type/id/_history/version`, the `response.location`.
    pub fn location(&self) -> String {
        format!(
            "{}/{}/_history/{}",
            self.resource_type, self.id, self.version_id
        )
    }

    fn to_entry(&self) -> Value {
        let mut response = json!({
            "status": "201 Created",
            "location": self.location(),
            "etag": format!("W/\"{}\"", self.version_id),
        });
        if let (Some(last_modified), Some(object)) = (&self.last_modified, response.as_object_mut())
        {
            object.insert("lastModified".into(), json!(last_modified));
        }
        json!({"response": response})
    }

    /// Reads a `response.location` such as `Patient/p1/_history/1` (relative or absolute).
    fn from_location(location: &str) -> Option<EntryResult> {
        let segments: Vec<&str> = location.trim_end_matches('/').split('/').collect();
        let (resource_type, id, version_id) = match segments.as_slice() {
            [.., kind, id, "_history", version] => (*kind, *id, (*version).to_owned()),
            [.., kind, id] => (*kind, *id, String::new()),
            _ => return None,
        };
        if resource_type.is_empty() || id.is_empty() {
            return None;
        }
        Some(EntryResult {
            resource_type: resource_type.to_owned(),
            id: id.to_owned(),
            version_id,
            last_modified: None,
        })
    }
}

/// Builds a SetContextTransactionResponseBundle: one entry per request entry, in request order,
/// each `201 Created` with `location`, `etag` and `lastModified`.
pub fn transaction_response_bundle(results: &[EntryResult]) -> Value {
    json!({
        "resourceType": "Bundle",
        "meta": {"profile": [SET_CONTEXT_TRANSACTION_RESPONSE_BUNDLE]},
        "type": "transaction-response",
        "entry": results.iter().map(EntryResult::to_entry).collect::<Vec<_>>(),
    })
}

/// The `$set-context` answer: the launch id and, when the request had resources, what became
/// of each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetContextOutput {
    /// `launchID`: the opaque launch id the PoC passes to the app as `launch`.
    pub launch_id: String,
    /// `resourcesResponse`, in request order; `None` when the request had no Bundle.
    pub resources_response: Option<Vec<EntryResult>>,
}

impl SetContextOutput {
    /// The SetContextOutputParameters JSON, with the HALO profile in `meta.profile`.
    pub fn to_json(&self) -> Value {
        let mut parameters = vec![json!({"name": LAUNCH_ID, "valueString": self.launch_id})];
        if let Some(results) = &self.resources_response {
            parameters.push(json!({"name": RESOURCES_RESPONSE, "resource": transaction_response_bundle(results)}));
        }
        json!({
            "resourceType": "Parameters",
            "meta": {"profile": [SET_CONTEXT_OUTPUT_PARAMETERS]},
            "parameter": parameters,
        })
    }

    /// Reads a SetContextOutputParameters (what a PoC receives).
    pub fn parse(body: &Value) -> Result<SetContextOutput, ValidationErrors> {
        let mut findings = Findings::default();
        if body.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
            findings.error(
                IssueType::Structure,
                "Parameters",
                "the $set-context answer must be a Parameters resource",
            );
            return Err(findings.into_errors());
        }
        let parameters = body
            .get("parameter")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let mut launch_id = None;
        let mut resources_response = None;
        for (index, parameter) in parameters.iter().enumerate() {
            let at = format!("Parameters.parameter[{index}]");
            match parameter.get("name").and_then(Value::as_str) {
                Some(LAUNCH_ID) => match parameter.get("valueString").and_then(Value::as_str) {
                    Some(id) if launch_id.is_none() => launch_id = Some(id.to_owned()),
                    Some(_) => {
                        findings.error(IssueType::Structure, at, "launchID appears more than once")
                    }
                    None => findings.error(
                        IssueType::Required,
                        format!("{at}.valueString"),
                        "launchID needs a valueString",
                    ),
                },
                Some(RESOURCES_RESPONSE) => {
                    resources_response = Some(read_response_bundle(
                        parameter.get("resource"),
                        &format!("{at}.resource"),
                        &mut findings,
                    ));
                }
                // Other output is tolerated: a newer server may add parameters.
                _ => {}
            }
        }
        let Some(launch_id) = launch_id else {
            findings.error(
                IssueType::Required,
                "Parameters.parameter",
                "the answer has no launchID",
            );
            return Err(findings.into_errors());
        };
        findings.finish(SetContextOutput {
            launch_id,
            resources_response,
        })
    }

    /// Pairs the request's `fullUrl`s (in request order) with the ids the server assigned:
    /// `fullUrl` → `Type/id`. This is the map a PoC keeps to reconcile later notifications.
    /// `None` when there is no `resourcesResponse` or the counts differ.
    pub fn id_map<'a>(
        &self,
        full_urls: impl IntoIterator<Item = &'a str>,
    ) -> Option<BTreeMap<String, String>> {
        let results = self.resources_response.as_ref()?;
        let full_urls: Vec<&str> = full_urls.into_iter().collect();
        if full_urls.len() != results.len() {
            return None;
        }
        Some(
            full_urls
                .into_iter()
                .zip(results)
                .map(|(full_url, result)| (full_url.to_owned(), result.reference()))
                .collect(),
        )
    }
}

fn read_response_bundle(
    bundle: Option<&Value>,
    at: &str,
    findings: &mut Findings,
) -> Vec<EntryResult> {
    let mut results = Vec::new();
    let Some(bundle) =
        bundle.filter(|b| b.get("resourceType").and_then(Value::as_str) == Some("Bundle"))
    else {
        findings.error(
            IssueType::Structure,
            at,
            "resourcesResponse must carry a Bundle",
        );
        return results;
    };
    if bundle.get("type").and_then(Value::as_str) != Some("transaction-response") {
        findings.error(
            IssueType::Value,
            format!("{at}.type"),
            "resourcesResponse must be a transaction-response Bundle",
        );
    }
    let entries = bundle
        .get("entry")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    for (index, entry) in entries.iter().enumerate() {
        let at = format!("{at}.entry[{index}].response");
        let Some(response) = entry.get("response") else {
            findings.error(
                IssueType::Required,
                at,
                "every entry of resourcesResponse needs a response",
            );
            continue;
        };
        let status = response
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !status.starts_with("201") {
            findings.error(
                IssueType::Value,
                format!("{at}.status"),
                format!("expected 201 Created, found '{status}'"),
            );
        }
        match response
            .get("location")
            .and_then(Value::as_str)
            .and_then(EntryResult::from_location)
        {
            Some(mut result) => {
                result.last_modified = response
                    .get("lastModified")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                results.push(result);
            }
            None => findings.error(
                IssueType::Required,
                format!("{at}.location"),
                "response.location must be Type/id/_history/version",
            ),
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_reads_relative_and_absolute_forms() {
        let read =
            EntryResult::from_location("https://sofa.example.org/fhir/Patient/p1/_history/3");
        assert_eq!(
            read.map(|r| (r.reference(), r.version_id)),
            Some(("Patient/p1".into(), "3".into()))
        );
        assert_eq!(EntryResult::from_location("x"), None);
    }
}
