//! SetContextTransactionBundle: the `resources` Bundle of `$set-context` (REQ SC-02, D-04).
//!
//! `type` is `transaction`; every entry has a `urn:uuid:` `fullUrl` (unique in the Bundle), a
//! `resource` of a supported type and a `request` with method `POST` and url = the resource type.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::findings::Findings;
use super::references::{is_urn_uuid, references_in};
use super::resource_types::{ValidationOptions, is_r4_resource_type};
use crate::canonical::SET_CONTEXT_TRANSACTION_BUNDLE;
use crate::outcome::IssueType;

/// One resource of the `resources` Bundle, as it came in.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextEntry {
    /// The entry's temporary id (`urn:uuid:...`), which references in the request use.
    pub full_url: String,
    /// The resource's `resourceType`.
    pub resource_type: String,
    /// The resource JSON, untouched.
    pub resource: Value,
}

impl ContextEntry {
    /// The entry as it is written in a SetContextTransactionBundle.
    pub fn to_json(&self) -> Value {
        json!({
            "fullUrl": self.full_url,
            "resource": self.resource,
            "request": {"method": "POST", "url": self.resource_type},
        })
    }
}

/// Builds a SetContextTransactionBundle (with its HALO profile in `meta.profile`).
///
/// ```
/// use halo_model::set_context::{ContextEntry, transaction_bundle};
/// use serde_json::json;
///
/// let bundle = transaction_bundle(&[ContextEntry {
///     full_url: "urn:uuid:d12004a7-5ed5-41ab-a8f2-0de5f0c98847".into(),
///     resource_type: "Patient".into(),
///     resource: json!({"resourceType": "Patient", "gender": "female"}),
/// }]);
/// assert_eq!(bundle["type"], "transaction");
/// assert_eq!(bundle["entry"][0]["request"], json!({"method": "POST", "url": "Patient"}));
/// ```
pub fn transaction_bundle(entries: &[ContextEntry]) -> Value {
    json!({
        "resourceType": "Bundle",
        "meta": {"profile": [SET_CONTEXT_TRANSACTION_BUNDLE]},
        "type": "transaction",
        "entry": entries.iter().map(ContextEntry::to_json).collect::<Vec<_>>(),
    })
}

/// Validates a SetContextTransactionBundle found at `base` (a FHIRPath prefix such as
/// `Parameters.parameter[9].resource`). Every finding goes to `findings`; the entries that were
/// readable come back in order, with the map from `fullUrl` to resource type.
pub(crate) fn read_transaction_bundle(
    bundle: &Value,
    base: &str,
    options: &ValidationOptions,
    findings: &mut Findings,
) -> (Vec<ContextEntry>, BTreeMap<String, String>) {
    let mut entries = Vec::new();
    let mut by_full_url = BTreeMap::new();
    let Some(bundle) = bundle.as_object() else {
        findings.error(
            IssueType::Structure,
            base,
            "resources must be a Bundle resource",
        );
        return (entries, by_full_url);
    };
    match bundle.get("resourceType").and_then(Value::as_str) {
        Some("Bundle") => {}
        other => {
            findings.error(
                IssueType::Structure,
                format!("{base}.resourceType"),
                format!(
                    "resources must be a Bundle, found {}",
                    other.unwrap_or("no resourceType")
                ),
            );
            return (entries, by_full_url);
        }
    }
    match bundle.get("type") {
        Some(Value::String(kind)) if kind == "transaction" => {}
        Some(other) => findings.error(
            IssueType::Value,
            format!("{base}.type"),
            format!("the resources Bundle must have type 'transaction', found {other}"),
        ),
        None => findings.error(
            IssueType::Required,
            format!("{base}.type"),
            "the resources Bundle must have type 'transaction'",
        ),
    }
    let items: &[Value] = match bundle.get("entry") {
        None => &[],
        Some(Value::Array(items)) => items,
        Some(_) => {
            findings.error(
                IssueType::Structure,
                format!("{base}.entry"),
                "Bundle.entry must be an array",
            );
            &[]
        }
    };
    let mut seen = BTreeSet::new();
    for (index, item) in items.iter().enumerate() {
        let at = format!("{base}.entry[{index}]");
        let Some(item) = item.as_object() else {
            findings.error(IssueType::Structure, at, "a Bundle entry must be an object");
            continue;
        };
        let full_url = read_full_url(item, &at, &mut seen, findings);
        let resource_type = read_resource(item, &at, options, findings);
        read_request(item, &at, resource_type.as_deref(), findings);
        if let (Some(full_url), Some(resource_type), Some(resource)) =
            (full_url, resource_type, item.get("resource"))
        {
            by_full_url.insert(full_url.clone(), resource_type.clone());
            entries.push(ContextEntry {
                full_url,
                resource_type,
                resource: resource.clone(),
            });
        }
    }
    // Only now is every fullUrl known, so a reference to a later entry is fine.
    for (index, item) in items.iter().enumerate() {
        let Some(resource) = item.get("resource") else {
            continue;
        };
        for found in references_in(resource) {
            if found.reference.starts_with("urn:uuid:") && !seen.contains(&found.reference) {
                let inner = found.path.split_once('.').map_or("", |(_, rest)| rest);
                findings.error(
                    IssueType::NotFound,
                    format!("{base}.entry[{index}].resource.{inner}"),
                    format!(
                        "{} is not the fullUrl of any entry in the resources Bundle",
                        found.reference
                    ),
                );
            }
        }
    }
    (entries, by_full_url)
}

fn read_full_url(
    item: &Map<String, Value>,
    at: &str,
    seen: &mut BTreeSet<String>,
    findings: &mut Findings,
) -> Option<String> {
    let at = format!("{at}.fullUrl");
    match item.get("fullUrl") {
        None => {
            findings.error(
                IssueType::Required,
                at,
                "every entry of the resources Bundle needs a fullUrl",
            );
            None
        }
        Some(Value::String(full_url)) if is_urn_uuid(full_url) => {
            if seen.insert(full_url.clone()) {
                Some(full_url.clone())
            } else {
                findings.error(
                    IssueType::Duplicate,
                    at,
                    format!("fullUrl {full_url} is used by more than one entry"),
                );
                None
            }
        }
        Some(other) => {
            findings.error(
                IssueType::Value,
                at,
                format!(
                    "fullUrl must be urn:uuid: followed by a UUID (a new resource), found {other}"
                ),
            );
            None
        }
    }
}

fn read_resource(
    item: &Map<String, Value>,
    at: &str,
    options: &ValidationOptions,
    findings: &mut Findings,
) -> Option<String> {
    let Some(resource) = item.get("resource").and_then(Value::as_object) else {
        findings.error(
            IssueType::Required,
            format!("{at}.resource"),
            "every entry needs a resource",
        );
        return None;
    };
    read_contained(resource, at, options, findings);
    let at = format!("{at}.resource.resourceType");
    let Some(resource_type) = resource.get("resourceType").and_then(Value::as_str) else {
        findings.error(IssueType::Required, at, "the resource has no resourceType");
        return None;
    };
    if !is_r4_resource_type(resource_type) {
        findings.error(
            IssueType::Value,
            at,
            format!("{resource_type} is not a FHIR R4 resource type"),
        );
        return None;
    }
    if !options.supported_types.contains(resource_type) {
        findings.error(
            IssueType::NotSupported,
            at,
            format!("resource type {resource_type} is not supported by $set-context"),
        );
    }
    Some(resource_type.to_owned())
}

/// Contained resources are stored with their container, so they obey the same type list as the
/// entries (D-14): a `contained` Binary or Bundle would otherwise slip past it.
fn read_contained(
    resource: &Map<String, Value>,
    at: &str,
    options: &ValidationOptions,
    findings: &mut Findings,
) {
    let Some(contained) = resource.get("contained") else {
        return;
    };
    let Some(items) = contained.as_array() else {
        findings.error(
            IssueType::Structure,
            format!("{at}.resource.contained"),
            "contained must be an array of resources",
        );
        return;
    };
    for (index, item) in items.iter().enumerate() {
        let at = format!("{at}.resource.contained[{index}].resourceType");
        match item.get("resourceType").and_then(Value::as_str) {
            None => findings.error(
                IssueType::Required,
                at,
                "the contained resource has no resourceType",
            ),
            Some(kind) if !is_r4_resource_type(kind) => findings.error(
                IssueType::Value,
                at,
                format!("{kind} is not a FHIR R4 resource type"),
            ),
            Some(kind) if !options.supported_types.contains(kind) => findings.error(
                IssueType::NotSupported,
                at,
                format!("contained resource type {kind} is not supported by $set-context"),
            ),
            Some(_) => {}
        }
    }
}

fn read_request(
    item: &Map<String, Value>,
    at: &str,
    resource_type: Option<&str>,
    findings: &mut Findings,
) {
    let Some(request) = item.get("request").and_then(Value::as_object) else {
        findings.error(
            IssueType::Required,
            format!("{at}.request"),
            "every entry needs a request (method POST, url = the resource type)",
        );
        return;
    };
    match request.get("method") {
        Some(Value::String(method)) if method == "POST" => {}
        Some(other) => findings.error(
            IssueType::Value,
            format!("{at}.request.method"),
            format!("request.method must be POST, found {other}"),
        ),
        None => findings.error(
            IssueType::Required,
            format!("{at}.request.method"),
            "request.method is missing",
        ),
    }
    match (request.get("url"), resource_type) {
        (Some(Value::String(url)), Some(resource_type)) if url == resource_type => {}
        (Some(Value::String(url)), Some(resource_type)) => findings.error(
            IssueType::Value,
            format!("{at}.request.url"),
            format!("request.url must be the resource type {resource_type}, found {url}"),
        ),
        (Some(Value::String(_)), None) => {}
        (Some(other), _) => findings.error(
            IssueType::Value,
            format!("{at}.request.url"),
            format!("request.url must be a string, found {other}"),
        ),
        (None, _) => findings.error(
            IssueType::Required,
            format!("{at}.request.url"),
            "request.url is missing",
        ),
    }
}
