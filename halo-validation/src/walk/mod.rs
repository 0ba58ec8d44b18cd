//! The validation walk: a resource's JSON against the element tree of its definition or profiles.

mod checks;
mod slicing;

use halo_model::fhir::json_kind;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use halo_model::outcome::{Issue, IssueType, Severity};
use serde_json::{Map, Value};

use crate::definitions::{Definitions, Kind, Structure};
use crate::fhirpath::{self, Env, Item};
use crate::model::{Constraint, TypeRef};
use crate::options::ValidatorOptions;
use crate::report::{NotEvaluated, ValidationReport, rules};
use crate::tree::{Node, TypeTrees, type_suffix};
use crate::values;

/// The resource an element belongs to.
#[derive(Clone, Copy)]
struct Res<'a, 'v> {
    /// `%resource`.
    resource: &'a Map<String, Value>,
    /// `%rootResource`.
    root: &'a Map<String, Value>,
    /// The tree of the resource's definition (for `contentReference`).
    tree: &'v Node,
}

/// One item of an element: its value, its `_name` companion and the type it was given as.
#[derive(Clone, Copy)]
struct Entry<'a, 'v> {
    value: Option<&'a Value>,
    companion: Option<&'a Value>,
    type_ref: Option<&'v TypeRef>,
}

pub(crate) struct Walker<'v> {
    defs: &'v Definitions,
    options: &'v ValidatorOptions,
    fixes: &'v HashMap<String, Arc<Constraint>>,
    report: ValidationReport,
    seen: HashSet<(String, String)>,
    full_urls: HashMap<String, String>,
    depth: usize,
}

impl<'v> Walker<'v> {
    pub(crate) fn new(
        defs: &'v Definitions,
        options: &'v ValidatorOptions,
        fixes: &'v HashMap<String, Arc<Constraint>>,
    ) -> Walker<'v> {
        Walker {
            defs,
            options,
            fixes,
            report: ValidationReport::default(),
            seen: HashSet::new(),
            full_urls: HashMap::new(),
            depth: 0,
        }
    }

    pub(crate) fn finish(self) -> ValidationReport {
        self.report
    }

    fn emit(
        &mut self,
        rule: &str,
        severity: Severity,
        code: IssueType,
        path: &str,
        message: String,
    ) {
        if self.options.disabled_rules.contains(rule) {
            return;
        }
        let severity = self
            .options
            .severity_overrides
            .get(rule)
            .copied()
            .unwrap_or(severity);
        // A resource checked against several profiles meets the same base rule more than once.
        if !self.seen.insert((path.to_owned(), message.clone())) {
            return;
        }
        self.report
            .issues
            .push(Issue::new(severity, code, message).at(path));
    }

    /// Validates a resource found at `path` (its type name at the top level).
    pub(crate) fn resource<'a>(
        &mut self,
        value: &'a Value,
        path: &str,
        root: Option<&'a Map<String, Value>>,
    ) {
        let Value::Object(object) = value else {
            self.emit(
                rules::STRUCTURE,
                Severity::Error,
                IssueType::Structure,
                path,
                format!(
                    "a resource must be a JSON object, found {}",
                    json_kind(value)
                ),
            );
            return;
        };
        self.resource_object(object, path, root);
    }

    /// Validates a resource held as a JSON object.
    pub(crate) fn resource_object<'a>(
        &mut self,
        object: &'a Map<String, Value>,
        path: &str,
        root: Option<&'a Map<String, Value>>,
    ) {
        let Some(resource_type) = object.get("resourceType").and_then(Value::as_str) else {
            self.emit(
                rules::STRUCTURE,
                Severity::Error,
                IssueType::Required,
                path,
                "the resource has no `resourceType`".into(),
            );
            return;
        };
        let Some(base) = self
            .defs
            .base(resource_type)
            .filter(|s| s.kind == Kind::Resource)
        else {
            self.emit(
                rules::NO_DEFINITION,
                Severity::Information,
                IssueType::Informational,
                path,
                format!(
                    "no definition for `{resource_type}` is loaded: its structure was not checked"
                ),
            );
            return;
        };
        if self.depth >= self.options.max_resource_depth {
            self.emit(
                rules::STRUCTURE,
                Severity::Error,
                IssueType::TooCostly,
                path,
                format!(
                    "resources nest more than {} levels deep; not checked",
                    self.options.max_resource_depth
                ),
            );
            return;
        }
        if resource_type == "Bundle" {
            self.index_bundle(object);
        }
        let structures = self.structures_for(object, resource_type, base, path);
        let root = root.unwrap_or(object);
        self.depth += 1;
        for structure in structures {
            let res = Res {
                resource: object,
                root,
                tree: &structure.tree,
            };
            self.children(object, &structure.tree.children, path, res, true);
            self.constraints(
                None,
                None,
                [&structure.tree.def.constraints, &[]],
                path,
                res,
            );
        }
        if resource_type == "Bundle" {
            self.bundle_requests(object, path);
        }
        self.depth -= 1;
    }

    /// The profiles a resource must conform to: those it claims (when known) and the
    /// jurisdiction's for its type; the base definition when there are none.
    fn structures_for(
        &mut self,
        object: &Map<String, Value>,
        resource_type: &str,
        base: &'v Arc<Structure>,
        path: &str,
    ) -> Vec<&'v Arc<Structure>> {
        let mut structures: Vec<&'v Arc<Structure>> = Vec::new();
        if self.options.check_meta_profiles
            && let Some(Value::Array(claimed)) = object.get("meta").and_then(|m| m.get("profile"))
        {
            for (i, url) in claimed.iter().enumerate() {
                let Some(url) = url.as_str() else { continue };
                match self.defs.structure(url) {
                    Some(s) if s.type_name == resource_type => structures.push(s),
                    Some(s) => self.emit(
                        rules::PROFILE_UNKNOWN,
                        Severity::Error,
                        IssueType::Invalid,
                        &format!("{path}.meta.profile[{i}]"),
                        format!(
                            "the profile `{url}` constrains {}, not {resource_type}",
                            s.type_name
                        ),
                    ),
                    None => self.emit(
                        rules::PROFILE_UNKNOWN,
                        Severity::Warning,
                        IssueType::NotSupported,
                        &format!("{path}.meta.profile[{i}]"),
                        format!(
                            "the profile `{url}` is not among the loaded definitions; the resource was not checked against it"
                        ),
                    ),
                }
            }
        }
        for url in self.options.profiles_for(resource_type) {
            if let Some(s) = self.defs.structure(url)
                && !structures.iter().any(|known| known.url == s.url)
            {
                structures.push(s);
            }
        }
        if structures.is_empty() {
            structures.push(base);
        }
        structures
    }

    /// Remembers the type of each `fullUrl` of a Bundle so `urn:uuid:` references can be checked.
    fn index_bundle(&mut self, bundle: &Map<String, Value>) {
        let Some(Value::Array(entries)) = bundle.get("entry") else {
            return;
        };
        for entry in entries {
            let full_url = entry.get("fullUrl").and_then(Value::as_str);
            let resource_type = entry
                .get("resource")
                .and_then(|r| r.get("resourceType"))
                .and_then(Value::as_str);
            if let (Some(url), Some(resource_type)) = (full_url, resource_type) {
                self.full_urls
                    .insert(url.to_owned(), resource_type.to_owned());
            }
        }
    }

    /// The members of an object against the child elements of its definition.
    fn children<'a>(
        &mut self,
        object: &'a Map<String, Value>,
        children: &'v [Node],
        path: &str,
        res: Res<'a, 'v>,
        is_resource: bool,
    ) {
        let mut present: Vec<Vec<(&'a str, Entry<'a, 'v>)>> = vec![Vec::new(); children.len()];
        for (key, value) in object {
            if is_resource && key == "resourceType" {
                continue;
            }
            let (name, is_companion) = match key.strip_prefix('_') {
                Some(name) => (name, true),
                None => (key.as_str(), false),
            };
            let Some((index, type_ref)) = find_child(children, name) else {
                self.unknown_element(key, children, path);
                continue;
            };
            if is_companion {
                if object.contains_key(name) {
                    continue;
                }
                present[index].push((
                    name,
                    Entry {
                        value: None,
                        companion: Some(value),
                        type_ref,
                    },
                ));
            } else {
                present[index].push((
                    name,
                    Entry {
                        value: Some(value),
                        companion: object.get(&format!("_{name}")),
                        type_ref,
                    },
                ));
            }
        }
        for (node, found) in children.iter().zip(present) {
            self.element(node, &found, path, res);
        }
    }

    fn unknown_element(&mut self, key: &str, children: &'v [Node], path: &str) {
        let name = key.trim_start_matches('_');
        let choice = children.iter().find_map(|c| {
            let base = c.choice_base()?;
            let suffix = name.strip_prefix(base)?;
            suffix.starts_with(char::is_uppercase).then_some(c)
        });
        let message = if let Some(choice) = choice {
            let base = choice.choice_base().unwrap_or_default();
            let names: Vec<String> = choice
                .def
                .types
                .iter()
                .map(|t| format!("{base}{}", type_suffix(&t.code)))
                .collect();
            let suggestion = values::closest(name, names.iter().map(String::as_str))
                .map(|n| format!("did you mean `{n}`? "))
                .unwrap_or_default();
            let listed: Vec<&str> = names.iter().take(12).map(String::as_str).collect();
            format!(
                "unknown element `{key}`: `{}` is not a type {} allows; {suggestion}allowed: {}{}",
                name.strip_prefix(base).unwrap_or(name),
                choice.name,
                listed.join(", "),
                if names.len() > listed.len() {
                    ", …"
                } else {
                    ""
                }
            )
        } else {
            let names = children
                .iter()
                .filter(|c| c.choice_base().is_none())
                .map(|c| c.name.as_str());
            match values::closest(name, names) {
                Some(n) => format!("unknown element `{key}`; did you mean `{n}`?"),
                None => format!("unknown element `{key}`: the definition has no such element"),
            }
        };
        self.emit(
            rules::UNKNOWN_ELEMENT,
            Severity::Error,
            IssueType::Structure,
            &format!("{path}.{key}"),
            message,
        );
    }

    /// One child element: JSON shape, cardinality, slices, then each item.
    fn element<'a>(
        &mut self,
        node: &'v Node,
        found: &[(&'a str, Entry<'a, 'v>)],
        path: &str,
        res: Res<'a, 'v>,
    ) {
        let element_path = format!("{path}.{}", node.choice_base().unwrap_or(&node.name));
        if found.len() > 1 {
            let keys: Vec<&str> = found.iter().map(|(k, _)| *k).collect();
            self.emit(
                rules::STRUCTURE,
                Severity::Error,
                IssueType::Structure,
                &element_path,
                format!(
                    "only one `{}` may be present, found {}",
                    node.name,
                    keys.join(", ")
                ),
            );
        }
        let mut items: Vec<(String, Entry<'a, 'v>)> = Vec::new();
        if let Some((key, entry)) = found.first() {
            let item_path = match entry.type_ref {
                Some(t) if node.choice_base().is_some() => {
                    format!("{element_path}.ofType({})", t.code)
                }
                _ => format!("{path}.{key}"),
            };
            self.collect_items(node, key, *entry, &item_path, &mut items);
        }
        if (items.len() as u64) < u64::from(node.def.min) {
            let what = if node.def.min == 1 {
                "is required".to_owned()
            } else {
                format!(
                    "needs at least {} items, found {}",
                    node.def.min,
                    items.len()
                )
            };
            self.emit(
                rules::CARDINALITY_MIN,
                Severity::Error,
                IssueType::Required,
                &element_path,
                format!("`{}` {what} (min {})", node.def.id, node.def.min),
            );
        }
        if node.def.max.exceeded_by(items.len()) {
            self.emit(
                rules::CARDINALITY_MAX,
                Severity::Error,
                IssueType::Structure,
                &element_path,
                format!(
                    "`{}` allows at most {} item(s), found {}",
                    node.def.id,
                    node.def.max,
                    items.len()
                ),
            );
        }
        if items.is_empty() {
            return;
        }
        match self.slicing_of(node) {
            Some(slicing) => self.sliced(node, &slicing, &items, &element_path, res),
            None => {
                for (item_path, entry) in &items {
                    self.item(node, *entry, item_path, res);
                }
            }
        }
    }

    /// Splits an element's JSON into items, checking the array shape against `max`.
    fn collect_items<'a>(
        &mut self,
        node: &'v Node,
        key: &str,
        entry: Entry<'a, 'v>,
        item_path: &str,
        items: &mut Vec<(String, Entry<'a, 'v>)>,
    ) {
        let repeats = node.def.max.repeats();
        let as_array = |v: Option<&'a Value>| match v {
            Some(Value::Array(a)) => Some(a),
            _ => None,
        };
        let (values, companions) = (as_array(entry.value), as_array(entry.companion));
        let is_array = values.is_some() || (entry.value.is_none() && companions.is_some());
        if repeats && !is_array {
            self.emit(
                rules::STRUCTURE,
                Severity::Error,
                IssueType::Structure,
                item_path,
                format!(
                    "`{key}` repeats (max {}): it must be a JSON array",
                    node.def.max
                ),
            );
        } else if !repeats && is_array {
            self.emit(
                rules::STRUCTURE,
                Severity::Error,
                IssueType::Structure,
                item_path,
                format!("`{key}` is a single value (max 1), not an array"),
            );
        }
        if !is_array {
            if entry.value.is_some_and(Value::is_null) {
                self.emit(
                    rules::STRUCTURE,
                    Severity::Error,
                    IssueType::Structure,
                    item_path,
                    format!("`{key}` is null: leave the element out instead"),
                );
                return;
            }
            items.push((item_path.to_owned(), entry));
            return;
        }
        let length = values
            .map_or(0, Vec::len)
            .max(companions.map_or(0, Vec::len));
        if length == 0 {
            self.emit(
                rules::STRUCTURE,
                Severity::Error,
                IssueType::Structure,
                item_path,
                format!("`{key}` is an empty array: leave the element out instead (ele-1)"),
            );
            return;
        }
        if let (Some(v), Some(c)) = (values, companions)
            && v.len() != c.len()
        {
            self.emit(
                rules::STRUCTURE,
                Severity::Error,
                IssueType::Structure,
                item_path,
                format!("`{key}` and `_{key}` must have the same number of items"),
            );
        }
        for i in 0..length {
            let value = values.and_then(|v| v.get(i)).filter(|v| !v.is_null());
            let companion = companions.and_then(|c| c.get(i)).filter(|v| !v.is_null());
            let path = format!("{item_path}[{i}]");
            if value.is_none() && companion.is_none() {
                self.emit(
                    rules::STRUCTURE,
                    Severity::Error,
                    IssueType::Structure,
                    &path,
                    format!("item {i} of `{key}` is null"),
                );
                continue;
            }
            items.push((
                path,
                Entry {
                    value,
                    companion,
                    type_ref: entry.type_ref,
                },
            ));
        }
    }

    /// One item of an element against its definition.
    fn item<'a>(&mut self, node: &'v Node, entry: Entry<'a, 'v>, path: &str, res: Res<'a, 'v>) {
        let mut node = node;
        if let Some(target) = &node.def.content_reference {
            let segments: Vec<&str> = target.split('.').skip(1).collect();
            match res.tree.descendant(&segments) {
                Some(found) => node = found,
                None => return,
            }
        }
        let type_ref = entry.type_ref.or(match node.def.types.as_slice() {
            [single] => Some(single),
            _ => None,
        });
        let code = type_ref.map(|t| t.code.as_str());
        if let Some(code) = code
            && self.defs.is_primitive(code)
        {
            self.primitive(node, code, entry, path, res);
            return;
        }
        let Some(value) = entry.value else {
            self.emit(
                rules::STRUCTURE,
                Severity::Error,
                IssueType::Structure,
                path,
                "only primitive elements may have a `_` companion".into(),
            );
            return;
        };
        if let Some(code) = code
            && (code == "Resource"
                || self
                    .defs
                    .base(code)
                    .is_some_and(|s| s.kind == Kind::Resource))
        {
            let root = (node.name == "contained").then_some(res.root);
            self.resource(value, path, root);
            return;
        }
        let Value::Object(object) = value else {
            self.emit(
                rules::STRUCTURE,
                Severity::Error,
                IssueType::Structure,
                path,
                format!(
                    "must be a JSON object ({}), found {}",
                    code.unwrap_or("an element"),
                    json_kind(value)
                ),
            );
            return;
        };
        if object.is_empty() {
            self.emit(
                "ele-1",
                Severity::Error,
                IssueType::Invariant,
                path,
                "ele-1: an element must have a value or children; remove the empty object".into(),
            );
            return;
        }
        let (children, type_constraints): (&'v [Node], &'v [Arc<Constraint>]) =
            if !node.children.is_empty() {
                (&node.children, &[])
            } else if let Some(tree) = code.and_then(|c| self.tree_for(c, type_ref, object)) {
                (&tree.children, &tree.def.constraints)
            } else {
                (&[], &[])
            };
        if !children.is_empty() {
            self.children(object, children, path, res, false);
        }
        let hint = type_ref
            .filter(|_| node.choice_base().is_some())
            .map(|t| t.code.as_str());
        self.constraints(
            Some(value),
            hint,
            [&node.def.constraints, type_constraints],
            path,
            res,
        );
        if code == Some("Reference")
            && let Some(t) = type_ref
        {
            self.reference(object, t, path, res);
        }
        if let Some(code) = code {
            self.binding(node, code, value, path);
        }
        self.fixed_and_pattern(node, value, path);
    }

    /// The tree to check a complex value against: a profile named on the type, the definition of
    /// an extension by its `url`, or the base type.
    fn tree_for(
        &self,
        code: &str,
        type_ref: Option<&'v TypeRef>,
        object: &Map<String, Value>,
    ) -> Option<&'v Node> {
        let profiles = type_ref.map_or(&[][..], |t| t.profiles.as_slice());
        if code == "Extension"
            && profiles.iter().all(|p| self.defs.structure(p).is_none())
            && let Some(url) = object.get("url").and_then(Value::as_str)
            && let Some(extension) = self.defs.structure(url)
            && extension.type_name == "Extension"
        {
            return Some(&extension.tree);
        }
        self.defs.type_tree(code, profiles)
    }

    fn primitive<'a>(
        &mut self,
        node: &'v Node,
        code: &str,
        entry: Entry<'a, 'v>,
        path: &str,
        res: Res<'a, 'v>,
    ) {
        if let Some(value) = entry.value {
            match crate::primitives::check(code, value) {
                Err(message) => self.emit(
                    rules::DATATYPE,
                    Severity::Error,
                    IssueType::Value,
                    path,
                    message,
                ),
                Ok(()) => {
                    if let (Some(limit), Some(text)) = (node.def.max_length, value.as_str())
                        && text.chars().count() > limit
                    {
                        self.emit(
                            rules::MAX_LENGTH,
                            Severity::Error,
                            IssueType::TooLong,
                            path,
                            format!("longer than the {limit} characters allowed"),
                        );
                    }
                    self.binding(node, code, value, path);
                    self.fixed_and_pattern(node, value, path);
                    let hint = entry
                        .type_ref
                        .filter(|_| node.choice_base().is_some())
                        .map(|t| t.code.as_str());
                    self.constraints(Some(value), hint, [&node.def.constraints, &[]], path, res);
                }
            }
        }
        if let Some(companion) = entry.companion {
            let Value::Object(object) = companion else {
                self.emit(
                    rules::STRUCTURE,
                    Severity::Error,
                    IssueType::Structure,
                    path,
                    format!(
                        "the `_` companion of a primitive must be an object with `id` or `extension`, found {}",
                        json_kind(companion)
                    ),
                );
                return;
            };
            // The companion holds the primitive's `id` and `extension`; `value` is not allowed.
            if let Some(tree) = self.defs.base(code).map(|s| &s.tree) {
                self.children(object, &tree.children, path, res, false);
            }
        }
    }

    /// Evaluates invariants with `focus` (`None`: the resource itself) as their context.
    fn constraints<'a>(
        &mut self,
        focus: Option<&'a Value>,
        hint: Option<&'v str>,
        lists: [&'v [Arc<Constraint>]; 2],
        path: &str,
        res: Res<'a, 'v>,
    ) {
        let mut done: Vec<&str> = Vec::new();
        for constraint in lists.into_iter().flatten() {
            // ele-1 is checked structurally (empty objects, arrays and strings) as the walk goes.
            if constraint.key == "ele-1" || done.contains(&constraint.key.as_str()) {
                continue;
            }
            done.push(&constraint.key);
            let constraint = self.fixes.get(&constraint.key).unwrap_or(constraint);
            let is_type = |suffix: &str| self.defs.is_type_suffix(suffix);
            let env = Env {
                resource: res.resource,
                root: res.root,
                is_type: &is_type,
            };
            let outcome = match &constraint.parsed {
                Err(why) => Err(format!("its expression does not parse: {why}")),
                Ok(expr) => {
                    let item = match focus {
                        Some(value) => Item::Node(value, hint),
                        None => Item::Object(res.resource),
                    };
                    fhirpath::evaluate(expr, item, &env)
                        .and_then(|items| fhirpath::to_bool(&items))
                        .map_err(|e| e.0)
                }
            };
            match outcome {
                // An empty result (e.g. dates of different precision) is not evidence of a
                // violation.
                Ok(Some(true) | None) => self.report.invariants_evaluated += 1,
                Ok(Some(false)) => {
                    self.report.invariants_evaluated += 1;
                    let severity = if constraint.best_practice {
                        Severity::Information
                    } else if constraint.severity == "error" {
                        Severity::Error
                    } else {
                        Severity::Warning
                    };
                    self.emit(
                        &constraint.key,
                        severity,
                        IssueType::Invariant,
                        path,
                        format!(
                            "{}: {} [{}]",
                            constraint.key, constraint.human, constraint.expression
                        ),
                    );
                }
                Err(reason) => {
                    let message = format!(
                        "invariant {} ({}) was not evaluated: {reason}",
                        constraint.key, constraint.human
                    );
                    if self.seen.contains(&(path.to_owned(), message.clone())) {
                        continue;
                    }
                    self.report.not_evaluated.push(NotEvaluated {
                        key: constraint.key.clone(),
                        expression: path.to_owned(),
                        reason: reason.clone(),
                    });
                    self.emit(
                        rules::NOT_EVALUATED,
                        Severity::Information,
                        IssueType::NotSupported,
                        path,
                        message,
                    );
                }
            }
        }
    }
}

/// The child a JSON member name stands for, and the type a choice name selects.
fn find_child<'v>(children: &'v [Node], name: &str) -> Option<(usize, Option<&'v TypeRef>)> {
    for (index, child) in children.iter().enumerate() {
        match child.choice_base() {
            None if child.name == name => {
                let type_ref = match child.def.types.as_slice() {
                    [single] => Some(single),
                    _ => None,
                };
                return Some((index, type_ref));
            }
            Some(base) => {
                if let Some(suffix) = name.strip_prefix(base)
                    && let Some(t) = child
                        .def
                        .types
                        .iter()
                        .find(|t| type_suffix(&t.code) == suffix)
                {
                    return Some((index, Some(t)));
                }
            }
            None => {}
        }
    }
    None
}
