//! The `scopes` list: every item a SMART App Launch 2.1 scope (REQ CAT-07), read with
//! `halo_model::scope`, the same grammar the authorization server uses.

use halo_model::fhir::json_kind;

use super::Sink;
use crate::finding::Code;
use crate::path::Path;
use halo_model::scope::Scope;
use serde_json::Value;

pub(super) fn check(items: &[Value], path: &Path<'_>, sink: &mut Sink<'_>) {
    let mut seen: Vec<(usize, Scope)> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let here = path.index(i);
        let Some(text) = item.as_str() else {
            sink.push(
                Code::WrongType,
                &here,
                format!("a scope must be a string, found {}", json_kind(item)),
            );
            continue;
        };
        if text.split_whitespace().nth(1).is_some() {
            sink.push(
                Code::InvalidScope,
                &here,
                format!("`{text}` holds several scopes separated by spaces; list one scope per array item"),
            );
            continue;
        }
        let scope = match Scope::parse(text) {
            Ok(scope) => scope,
            Err(e) => {
                sink.push(Code::InvalidScope, &here, e.to_string());
                continue;
            }
        };
        if let Some((first, _)) = seen.iter().find(|(_, s)| s.equivalent(&scope)) {
            let earlier = &items[*first];
            let how = if earlier.as_str() == Some(text) {
                "repeats".to_owned()
            } else {
                format!(
                    "means the same as `{}`",
                    earlier.as_str().unwrap_or_default()
                )
            };
            sink.push(
                Code::DuplicateScope,
                &here,
                format!("`{text}` {how} (scopes[{first}]); list each scope once"),
            );
            continue;
        }
        if let Scope::Resource(r) = &scope
            && r.has_query()
        {
            sink.push(
                Code::ScopeQueryIgnored,
                &here,
                format!("`{text}` narrows access with a search query; HALO lets PoCs ignore the query and prepopulate every `{}` the rest of the scope allows", r.resource_type()),
            );
        }
        seen.push((i, scope));
    }
}
