//! SetContextInputParameters: the typed `$set-context` request, its parser-validator
//! (REQ SC-01, SC-02) and its JSON form.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::bundle::{ContextEntry, read_transaction_bundle, transaction_bundle};
use super::findings::{Findings, ValidationErrors};
use super::names::{self, FHIR_USER_TYPES, InputParameter, set_context_input};
use super::references::{ReferenceKind, classify_reference, rewrite_urn_uuid_references};
use super::resource_types::{ValidationOptions, is_r4_resource_type};
use crate::canonical::SET_CONTEXT_INPUT_PARAMETERS;
use crate::outcome::IssueType;

/// A context parameter's reference: into the `resources` Bundle (`urn:uuid:`), or to a
/// resource already in the SoFA (`Type/id`, D-04).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextReference {
    /// The reference as written.
    pub reference: String,
    /// The type of the resource it points at.
    pub resource_type: String,
}

impl ContextReference {
    /// A reference to an entry of the `resources` Bundle.
    pub fn bundled(
        full_url: impl Into<String>,
        resource_type: impl Into<String>,
    ) -> ContextReference {
        ContextReference {
            reference: full_url.into(),
            resource_type: resource_type.into(),
        }
    }

    /// A reference to a resource already in the SoFA.
    pub fn existing(resource_type: impl Into<String>, id: &str) -> ContextReference {
        let resource_type = resource_type.into();
        ContextReference {
            reference: format!("{resource_type}/{id}"),
            resource_type,
        }
    }

    /// Whether it points into the `resources` Bundle.
    pub fn is_bundled(&self) -> bool {
        self.reference.starts_with("urn:uuid:")
    }

    /// The logical id, when it points at a resource already in the SoFA.
    pub fn existing_id(&self) -> Option<&str> {
        if self.is_bundled() {
            return None;
        }
        self.reference.split('/').nth(1)
    }

    /// The `Type/id` it resolves to, given the ids assigned to the Bundle's entries
    /// (`fullUrl` → `Type/id`). `None` for a `urn:uuid:` the map does not know.
    pub fn resolve(&self, assigned: &BTreeMap<String, String>) -> Option<String> {
        if self.is_bundled() {
            assigned.get(&self.reference).cloned()
        } else {
            Some(self.reference.clone())
        }
    }

    /// The FHIR Reference JSON (`reference` and `type`).
    pub fn to_json(&self) -> Value {
        json!({"reference": self.reference, "type": self.resource_type})
    }
}

/// A `$set-context` request, read and validated (or built by a PoC).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SetContextRequest {
    /// `appID`: the app's id in the App Catalog.
    pub app_id: Option<String>,
    /// `patient`.
    pub patient: Option<ContextReference>,
    /// `encounter`.
    pub encounter: Option<ContextReference>,
    /// `fhirUser`.
    pub fhir_user: Option<ContextReference>,
    /// `fhirContext`, in order.
    pub fhir_context: Vec<ContextReference>,
    /// `need_patient_banner`.
    pub need_patient_banner: Option<bool>,
    /// `intent`.
    pub intent: Option<String>,
    /// `smart_style_url`.
    pub smart_style_url: Option<String>,
    /// `tenant`.
    pub tenant: Option<String>,
    /// The entries of the `resources` Bundle, in order (empty when there is none).
    pub resources: Vec<ContextEntry>,
}

impl SetContextRequest {
    /// Reads and validates a `$set-context` body against SetContextInputParameters and
    /// SetContextTransactionBundle. Every problem is reported at once, each with an
    /// `expression` (REQ SC-01, SC-02).
    ///
    /// References to resources already in the SoFA are well-formed here; whether they exist and
    /// the caller may see them is the server's check ([`SetContextRequest::existing_references`]).
    pub fn parse(
        body: &Value,
        options: &ValidationOptions,
    ) -> Result<SetContextRequest, ValidationErrors> {
        let mut findings = Findings::default();
        let Some(parameters) = read_parameters(body, &mut findings) else {
            return findings.finish(SetContextRequest::default());
        };

        // First pass: names, value types and cardinalities; keep each parameter's value.
        let mut values: Vec<(usize, &'static InputParameter, &Value)> = Vec::new();
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (index, parameter) in parameters.iter().enumerate() {
            let at = format!("Parameters.parameter[{index}]");
            if let Some((row, value)) = read_parameter(parameter, &at, &mut findings) {
                let count = counts.entry(row.name).or_default();
                *count += 1;
                if *count > 1 && !row.repeats {
                    findings.error(
                        IssueType::Structure,
                        at,
                        format!("parameter {} may appear at most once", row.name),
                    );
                    continue;
                }
                values.push((index, row, value));
            }
        }

        // The Bundle next, so the context references can be checked against its entries.
        let mut request = SetContextRequest::default();
        let mut bundled_types = BTreeMap::new();
        for (index, row, value) in &values {
            if row.name == names::RESOURCES {
                let base = format!("Parameters.parameter[{index}].resource");
                let (entries, types) =
                    read_transaction_bundle(value, &base, options, &mut findings);
                request.resources = entries;
                bundled_types = types;
            }
        }

        for (index, row, value) in values {
            let at = format!("Parameters.parameter[{index}].{}", row.kind.key());
            match row.name {
                names::APP_ID => request.app_id = read_string(value, &at, &mut findings),
                names::INTENT => request.intent = read_string(value, &at, &mut findings),
                names::TENANT => request.tenant = read_string(value, &at, &mut findings),
                names::SMART_STYLE_URL => {
                    request.smart_style_url = read_url(value, &at, &mut findings)
                }
                names::NEED_PATIENT_BANNER => match value {
                    Value::Bool(flag) => request.need_patient_banner = Some(*flag),
                    other => findings.error(
                        IssueType::Value,
                        at,
                        format!("valueBoolean must be true or false, found {other}"),
                    ),
                },
                names::PATIENT => {
                    request.patient = read_reference(
                        value,
                        &at,
                        Some(&["Patient"]),
                        &bundled_types,
                        &mut findings,
                    )
                }
                names::ENCOUNTER => {
                    request.encounter = read_reference(
                        value,
                        &at,
                        Some(&["Encounter"]),
                        &bundled_types,
                        &mut findings,
                    )
                }
                names::FHIR_USER => {
                    request.fhir_user = read_reference(
                        value,
                        &at,
                        Some(FHIR_USER_TYPES),
                        &bundled_types,
                        &mut findings,
                    )
                }
                names::FHIR_CONTEXT => {
                    if let Some(reference) =
                        read_reference(value, &at, None, &bundled_types, &mut findings)
                    {
                        request.fhir_context.push(reference);
                    }
                }
                _ => {}
            }
        }
        findings.finish(request)
    }

    /// The request as a SetContextInputParameters JSON body, with the HALO profile in
    /// `meta.profile` (and the Bundle's profile on the `resources` Bundle).
    pub fn to_json(&self) -> Value {
        let mut parameters = Vec::new();
        let mut push = |name: &str, key: &str, value: Value| {
            let mut parameter = Map::new();
            parameter.insert("name".into(), Value::String(name.into()));
            parameter.insert(key.into(), value);
            parameters.push(Value::Object(parameter));
        };
        if let Some(app_id) = &self.app_id {
            push(names::APP_ID, "valueString", json!(app_id));
        }
        for (name, reference) in [
            (names::PATIENT, &self.patient),
            (names::ENCOUNTER, &self.encounter),
            (names::FHIR_USER, &self.fhir_user),
        ] {
            if let Some(reference) = reference {
                push(name, "valueReference", reference.to_json());
            }
        }
        for reference in &self.fhir_context {
            push(names::FHIR_CONTEXT, "valueReference", reference.to_json());
        }
        if let Some(flag) = self.need_patient_banner {
            push(names::NEED_PATIENT_BANNER, "valueBoolean", json!(flag));
        }
        if let Some(intent) = &self.intent {
            push(names::INTENT, "valueString", json!(intent));
        }
        if let Some(url) = &self.smart_style_url {
            push(names::SMART_STYLE_URL, "valueUrl", json!(url));
        }
        if let Some(tenant) = &self.tenant {
            push(names::TENANT, "valueString", json!(tenant));
        }
        if !self.resources.is_empty() {
            push(
                names::RESOURCES,
                "resource",
                transaction_bundle(&self.resources),
            );
        }
        json!({
            "resourceType": "Parameters",
            "meta": {"profile": [SET_CONTEXT_INPUT_PARAMETERS]},
            "parameter": parameters,
        })
    }

    /// Every context reference with its parameter name, in table order.
    pub fn context_references(&self) -> Vec<(&'static str, &ContextReference)> {
        let mut all = Vec::new();
        for (name, reference) in [
            (names::PATIENT, &self.patient),
            (names::ENCOUNTER, &self.encounter),
            (names::FHIR_USER, &self.fhir_user),
        ] {
            if let Some(reference) = reference {
                all.push((name, reference));
            }
        }
        all.extend(self.fhir_context.iter().map(|r| (names::FHIR_CONTEXT, r)));
        all
    }

    /// The context references to resources already in the SoFA: the server checks each exists
    /// and is visible to the caller (REQ SC-05, D-04).
    pub fn existing_references(&self) -> Vec<(&'static str, &ContextReference)> {
        self.context_references()
            .into_iter()
            .filter(|(_, r)| !r.is_bundled())
            .collect()
    }

    /// After the server assigned ids (`fullUrl` → `Type/id`), rewrites every `urn:uuid:`
    /// reference inside the Bundle's resources and in the context parameters (REQ SC-05).
    /// Returns the number of references rewritten.
    pub fn apply_assigned_ids(&mut self, assigned: &BTreeMap<String, String>) -> usize {
        let mut rewritten = 0;
        for entry in &mut self.resources {
            rewritten += rewrite_urn_uuid_references(&mut entry.resource, assigned).rewritten;
        }
        let context = [&mut self.patient, &mut self.encounter, &mut self.fhir_user]
            .into_iter()
            .flatten()
            .chain(self.fhir_context.iter_mut());
        for reference in context {
            if reference.is_bundled()
                && let Some(target) = assigned.get(&reference.reference)
            {
                reference.reference = target.clone();
                rewritten += 1;
            }
        }
        rewritten
    }
}

fn read_parameters<'a>(body: &'a Value, findings: &mut Findings) -> Option<&'a [Value]> {
    let Some(object) = body.as_object() else {
        findings.error(
            IssueType::Structure,
            "Parameters",
            "the body must be a Parameters resource",
        );
        return None;
    };
    match object.get("resourceType").and_then(Value::as_str) {
        Some("Parameters") => {}
        other => {
            findings.error(
                IssueType::Structure,
                "Parameters.resourceType",
                format!(
                    "the body must be a Parameters resource, found {}",
                    other.unwrap_or("no resourceType")
                ),
            );
            return None;
        }
    }
    match object.get("parameter") {
        None => Some(&[]),
        Some(Value::Array(items)) => Some(items),
        Some(_) => {
            findings.error(
                IssueType::Structure,
                "Parameters.parameter",
                "parameter must be an array",
            );
            None
        }
    }
}

/// Checks a parameter's name and value type; gives its table row and value when both are right.
fn read_parameter<'a>(
    parameter: &'a Value,
    at: &str,
    findings: &mut Findings,
) -> Option<(&'static InputParameter, &'a Value)> {
    let Some(parameter) = parameter.as_object() else {
        findings.error(IssueType::Structure, at, "a parameter must be an object");
        return None;
    };
    let name = match parameter.get("name") {
        Some(Value::String(name)) => name,
        _ => {
            findings.error(
                IssueType::Required,
                format!("{at}.name"),
                "the parameter has no name",
            );
            return None;
        }
    };
    let Some(row) = set_context_input(name) else {
        let hint = names::SET_CONTEXT_INPUTS
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| format!(" (did you mean {}?)", p.name))
            .unwrap_or_default();
        findings.error(
            IssueType::NotSupported,
            format!("{at}.name"),
            format!("unknown $set-context parameter {name}{hint}"),
        );
        return None;
    };
    let mut value = None;
    let mut wrong = false;
    for (key, candidate) in parameter {
        let is_value = key.starts_with("value") || key == "resource" || key == "part";
        if !is_value {
            continue;
        }
        if key == row.kind.key() {
            value = Some(candidate);
        } else {
            wrong = true;
            findings.error(
                IssueType::Structure,
                format!("{at}.{key}"),
                format!("parameter {name} takes {}, found {key}", row.kind.key()),
            );
        }
    }
    match value {
        Some(value) if !wrong => Some((row, value)),
        Some(_) => None,
        None => {
            if !wrong {
                findings.error(
                    IssueType::Required,
                    at,
                    format!("parameter {name} has no {}", row.kind.key()),
                );
            }
            None
        }
    }
}

fn read_string(value: &Value, at: &str, findings: &mut Findings) -> Option<String> {
    match value {
        Value::String(text) if !text.trim().is_empty() => Some(text.clone()),
        other => {
            findings.error(
                IssueType::Value,
                at,
                format!("expected a non-empty string, found {other}"),
            );
            None
        }
    }
}

/// `smart_style_url`: the app fetches it, so only an absolute http(s) URL with a host is
/// accepted (never `javascript:`, `data:` or `file:`, and not `https:///x`, which a WHATWG parser
/// would repair into a host nobody wrote).
fn read_url(value: &Value, at: &str, findings: &mut Findings) -> Option<String> {
    let text = read_string(value, at, findings)?;
    let after_scheme = ["https://", "http://"].iter().find_map(|prefix| {
        let head = text.get(..prefix.len())?;
        head.eq_ignore_ascii_case(prefix)
            .then(|| text.get(prefix.len()..))
            .flatten()
    });
    let written_host = after_scheme
        .and_then(|rest| rest.chars().next())
        .is_some_and(|c| !matches!(c, '/' | '\\' | '?' | '#' | '@' | ':'));
    let parsed = url::Url::parse(&text).ok().filter(|url| {
        matches!(url.scheme(), "http" | "https") && url.host_str().is_some_and(|h| !h.is_empty())
    });
    if written_host && parsed.is_some() {
        Some(text)
    } else {
        findings.error(
            IssueType::Value,
            at,
            format!("{text} is not an absolute http(s) URL"),
        );
        None
    }
}

fn read_reference(
    value: &Value,
    at: &str,
    allowed: Option<&[&str]>,
    bundled: &BTreeMap<String, String>,
    findings: &mut Findings,
) -> Option<ContextReference> {
    let Some(object) = value.as_object() else {
        findings.error(IssueType::Structure, at, "valueReference must be an object");
        return None;
    };
    let declared = match object.get("type") {
        None => None,
        Some(Value::String(kind)) if is_r4_resource_type(kind) => Some(kind.as_str()),
        Some(other) => {
            findings.error(
                IssueType::Value,
                format!("{at}.type"),
                format!("Reference.type {other} is not a FHIR R4 resource type"),
            );
            None
        }
    };
    let Some(Value::String(reference)) = object.get("reference") else {
        findings.error(
            IssueType::Required,
            format!("{at}.reference"),
            "a context parameter needs Reference.reference (urn:uuid: of an entry in resources, or Type/id)",
        );
        return None;
    };
    let at_reference = format!("{at}.reference");
    let target_type = match classify_reference(reference) {
        ReferenceKind::UrnUuid => match bundled.get(reference) {
            Some(kind) => kind.clone(),
            None => {
                findings.error(
                    IssueType::NotFound,
                    at_reference,
                    format!("{reference} is not the fullUrl of any entry in the resources Bundle"),
                );
                return None;
            }
        },
        ReferenceKind::Relative { resource_type, .. } if is_r4_resource_type(&resource_type) => {
            resource_type
        }
        ReferenceKind::Relative { resource_type, .. } => {
            findings.error(
                IssueType::Value,
                at_reference,
                format!("{reference}: {resource_type} is not a FHIR R4 resource type"),
            );
            return None;
        }
        ReferenceKind::Contained | ReferenceKind::Other => {
            findings.error(
                IssueType::Value,
                at_reference,
                format!("{reference} must be the urn:uuid: of an entry in resources or a relative Type/id"),
            );
            return None;
        }
    };
    if let Some(declared) = declared
        && declared != target_type
    {
        findings.error(
            IssueType::Value,
            format!("{at}.type"),
            format!("Reference.type is {declared} but {reference} is a {target_type}"),
        );
        return None;
    }
    if let Some(allowed) = allowed
        && !allowed.contains(&target_type.as_str())
    {
        findings.error(
            IssueType::Value,
            at_reference,
            format!(
                "{reference} is a {target_type}; expected one of {}",
                allowed.join(", ")
            ),
        );
        return None;
    }
    Some(ContextReference {
        reference: reference.clone(),
        resource_type: target_type,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn errors(body: &Value) -> Vec<(String, IssueType)> {
        match SetContextRequest::parse(body, &ValidationOptions::default()) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.locations(),
        }
    }

    fn with_style(url: &str) -> Value {
        json!({
            "resourceType": "Parameters",
            "parameter": [{"name": "smart_style_url", "valueUrl": url}]
        })
    }

    // REQ: SC-01
    #[test]
    fn smart_style_url_must_be_an_absolute_http_url() {
        let at = "Parameters.parameter[0].valueUrl".to_owned();
        for url in [
            "javascript:...",
            "javascript:alert(document.cookie)",
            "JavaScript://example.org/%0Aalert(1)",
            "data:text/css,body{}",
            "file:///etc/passwd",
            "https:///style.json",
            "https:style.example.org/x",
            "https://@/x",
            "/styles/smart_v1.json",
        ] {
            assert_eq!(
                errors(&with_style(url)),
                vec![(at.clone(), IssueType::Value)],
                "{url}"
            );
        }
        for url in [
            "https://ehr.example.org/styles/smart_v1.json",
            "HTTPS://EHR.example.org/s.json",
            "http://localhost:8080/style.json",
        ] {
            assert_eq!(errors(&with_style(url)), vec![], "{url}");
        }
    }

    fn with_contained(contained: Value) -> Value {
        json!({
            "resourceType": "Parameters",
            "parameter": [{
                "name": "resources",
                "resource": {
                    "resourceType": "Bundle",
                    "type": "transaction",
                    "entry": [{
                        "fullUrl": "urn:uuid:d12004a7-5ed5-41ab-a8f2-0de5f0c98847",
                        "resource": {"resourceType": "Patient", "contained": contained},
                        "request": {"method": "POST", "url": "Patient"}
                    }]
                }
            }]
        })
    }

    // REQ: SC-02
    #[test]
    fn contained_resources_obey_the_supported_types() {
        let at = |i: usize| {
            format!(
                "Parameters.parameter[0].resource.entry[0].resource.contained[{i}].resourceType"
            )
        };
        let body = with_contained(json!([
            {"resourceType": "Organization", "id": "o1"},
            {"resourceType": "Binary", "id": "b1", "data": "aGk="},
            {"resourceType": "Bundle", "id": "b2", "type": "collection"},
            {"resourceType": "NotAType", "id": "x"},
            {"id": "untyped"}
        ]));
        assert_eq!(
            errors(&body),
            vec![
                (at(1), IssueType::NotSupported),
                (at(2), IssueType::NotSupported),
                (at(3), IssueType::Value),
                (at(4), IssueType::Required),
            ]
        );
        assert_eq!(
            errors(&with_contained(json!({"resourceType": "Binary"}))),
            vec![(
                "Parameters.parameter[0].resource.entry[0].resource.contained".to_owned(),
                IssueType::Structure
            )]
        );
        let fine = with_contained(json!([{"resourceType": "Practitioner", "id": "pr1"}]));
        assert_eq!(errors(&fine), vec![]);
    }
}
