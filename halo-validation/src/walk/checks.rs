//! Value checks of one item: reference targets, bindings, fixed and pattern values, and the
//! request URLs of transaction entries.

use halo_model::outcome::{IssueType, Severity};
use serde_json::{Map, Value};

use super::{Res, Walker};
use crate::model::TypeRef;
use crate::report::rules;
use crate::terminology::Codes;
use crate::tree::Node;
use crate::values;

impl<'v> Walker<'v> {
    /// In a transaction or batch, `POST [type]` and `PUT [type]/[id]` name the type of the entry's
    /// resource: a mismatch would store the resource under another type's endpoint.
    pub(super) fn bundle_requests(&mut self, bundle: &Map<String, Value>, path: &str) {
        let kind = bundle.get("type").and_then(Value::as_str);
        if !matches!(kind, Some("transaction" | "batch")) {
            return;
        }
        let Some(Value::Array(entries)) = bundle.get("entry") else {
            return;
        };
        for (i, entry) in entries.iter().enumerate() {
            let method = entry.pointer("/request/method").and_then(Value::as_str);
            let url = entry.pointer("/request/url").and_then(Value::as_str);
            let resource_type = entry
                .pointer("/resource/resourceType")
                .and_then(Value::as_str);
            let (Some(method @ ("POST" | "PUT")), Some(url), Some(resource_type)) =
                (method, url, resource_type)
            else {
                continue;
            };
            let named = url.split(['?', '/']).next().unwrap_or_default();
            if named != resource_type {
                self.emit(
                    rules::BUNDLE_REQUEST_URL,
                    Severity::Error,
                    IssueType::Invalid,
                    &format!("{path}.entry[{i}].request.url"),
                    format!(
                        "{method} {url} does not match the entry's resource, a {resource_type}: use `{resource_type}`{}",
                        if method == "PUT" { "/[id]" } else { "" }
                    ),
                );
            }
        }
    }

    pub(super) fn reference<'a>(
        &mut self,
        object: &'a Map<String, Value>,
        type_ref: &TypeRef,
        path: &str,
        res: Res<'a, 'v>,
    ) {
        let mut allowed = Vec::new();
        for target in &type_ref.target_profiles {
            match self.defs.type_of_url(target) {
                Some(t) if t == "Resource" => return,
                Some(t) => allowed.push(t),
                // A target this validator cannot place: do not guess.
                None => return,
            }
        }
        if allowed.is_empty() {
            return;
        }
        let literal = object
            .get("reference")
            .and_then(Value::as_str)
            .and_then(|r| self.referenced_type(r, res));
        let declared = object
            .get("type")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let (Some(literal), Some(declared)) = (&literal, &declared)
            && literal != declared
        {
            self.emit(
                rules::REFERENCE_TARGET,
                Severity::Error,
                IssueType::Invalid,
                path,
                format!("`type` says {declared} but the reference points at a {literal}"),
            );
        }
        let Some(actual) = literal.or(declared) else {
            return;
        };
        if !allowed.contains(&actual) {
            self.emit(
                rules::REFERENCE_TARGET,
                Severity::Error,
                IssueType::Invalid,
                path,
                format!(
                    "a reference to a {actual} is not allowed here; it may point at {}",
                    allowed.join(" | ")
                ),
            );
        }
    }

    /// The resource type a reference string names, if it can be told.
    fn referenced_type(&self, reference: &str, res: Res<'_, 'v>) -> Option<String> {
        if let Some(id) = reference.strip_prefix('#') {
            return res
                .resource
                .get("contained")
                .and_then(Value::as_array)?
                .iter()
                .find(|c| c.get("id").and_then(Value::as_str) == Some(id))
                .and_then(|c| c.get("resourceType"))
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        if reference.starts_with("urn:") {
            return self.full_urls.get(reference).cloned();
        }
        let reference = reference.split(['?', '#']).next().unwrap_or(reference);
        let segments: Vec<&str> = reference.split('/').collect();
        let n = segments.len();
        let candidate = if n >= 4 && segments[n - 2] == "_history" {
            segments[n - 4]
        } else if n >= 2 {
            segments[n - 2]
        } else {
            return None;
        };
        (candidate.starts_with(char::is_uppercase)
            && candidate.chars().all(|c| c.is_ascii_alphabetic()))
        .then(|| candidate.to_owned())
    }

    pub(super) fn binding(&mut self, node: &Node, code: &str, value: &Value, path: &str) {
        let Some(binding) = &node.def.binding else {
            return;
        };
        let required = match binding.strength.as_str() {
            "required" => true,
            "extensible" => false,
            _ => return,
        };
        let Some(codes) = self.defs.terminology.codes(&binding.value_set) else {
            return;
        };
        let name = binding
            .value_set
            .rsplit('/')
            .next()
            .unwrap_or(&binding.value_set);
        let listed = {
            let sample = codes.sample(10);
            let more = if codes.len() > sample.len() {
                ", …"
            } else {
                ""
            };
            format!("{}{more}", sample.join(", "))
        };
        let (ok, shown) = match code {
            "code" | "string" | "uri" => match value.as_str() {
                Some(text) => (codes.contains(None, text), format!("`{text}`")),
                None => return,
            },
            "Coding" => match coding_in(value, codes) {
                Some(ok) => (ok, describe_coding(value)),
                None => return,
            },
            "CodeableConcept" => {
                let codings: Vec<&Value> = value
                    .get("coding")
                    .and_then(Value::as_array)
                    .map(|c| c.iter().collect())
                    .unwrap_or_default();
                if codings.is_empty() && !required {
                    return;
                }
                let ok = codings.iter().any(|c| coding_in(c, codes) == Some(true));
                let shown = if codings.is_empty() {
                    "no coding".to_owned()
                } else {
                    codings
                        .iter()
                        .map(|c| describe_coding(c))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                (ok, shown)
            }
            _ => return,
        };
        if ok {
            return;
        }
        if required {
            self.emit(
                rules::BINDING_REQUIRED,
                Severity::Error,
                IssueType::CodeInvalid,
                path,
                format!(
                    "{shown} is not in the required ValueSet `{name}` ({}); use one of: {listed}",
                    binding.value_set
                ),
            );
        } else {
            self.emit(
                rules::BINDING_EXTENSIBLE,
                Severity::Warning,
                IssueType::CodeInvalid,
                path,
                format!(
                    "{shown} is not in the extensible ValueSet `{name}`; use one of its codes where one fits: {listed}"
                ),
            );
        }
    }

    pub(super) fn fixed_and_pattern(&mut self, node: &Node, value: &Value, path: &str) {
        if let Some(fixed) = &node.def.fixed
            && !values::equal(value, fixed)
        {
            self.emit(
                rules::FIXED,
                Severity::Error,
                IssueType::Value,
                path,
                format!(
                    "`{}` must be exactly {} (fixed), found {}",
                    node.def.id,
                    values::show(fixed),
                    values::show(value)
                ),
            );
        }
        if let Some(pattern) = &node.def.pattern
            && !values::contains(value, pattern)
        {
            self.emit(
                rules::PATTERN,
                Severity::Error,
                IssueType::Value,
                path,
                format!(
                    "`{}` must match the pattern {}, found {}",
                    node.def.id,
                    values::show(pattern),
                    values::show(value)
                ),
            );
        }
    }
}

/// `Some(in the set)` for a Coding with a code, `None` without one.
fn coding_in(coding: &Value, codes: &Codes) -> Option<bool> {
    let code = coding.get("code").and_then(Value::as_str)?;
    let system = coding.get("system").and_then(Value::as_str);
    Some(codes.contains(system, code))
}

fn describe_coding(coding: &Value) -> String {
    let system = coding
        .get("system")
        .and_then(Value::as_str)
        .unwrap_or("(no system)");
    let code = coding
        .get("code")
        .and_then(Value::as_str)
        .unwrap_or("(no code)");
    format!("`{system}|{code}`")
}
