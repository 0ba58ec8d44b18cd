//! The validation walk: a resource's JSON against the element tree of its definition or profiles.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use halo_model::outcome::{Issue, IssueType, Severity};
use serde_json::{Map, Value};

use crate::definitions::{Definitions, Kind, Structure};
use crate::fhirpath::{self, Env, Item};
use crate::model::{Constraint, Max, Slicing, TypeRef};
use crate::options::ValidatorOptions;
use crate::report::{NotEvaluated, ValidationReport, rules};
use crate::tree::{Node, TypeTrees, type_suffix};
use crate::values;

/// The resource an element belongs to.
#[derive(Clone, Copy)]
struct Res<'a, 'v> {
    /// `%resource`.
    resource: &'a Value,
    /// `%rootResource`.
    root: &'a Value,
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
    pub(crate) fn resource<'a>(&mut self, value: &'a Value, path: &str, root: Option<&'a Value>) {
        let Value::Object(object) = value else {
            self.emit(
                rules::STRUCTURE,
                Severity::Error,
                IssueType::Structure,
                path,
                format!("a resource must be a JSON object, found {}", kind_of(value)),
            );
            return;
        };
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
        let root = root.unwrap_or(value);
        self.depth += 1;
        for structure in structures {
            let res = Res {
                resource: value,
                root,
                tree: &structure.tree,
            };
            self.children(object, &structure.tree.children, path, res, true);
            self.constraints(
                value,
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

    /// In a transaction or batch, `POST [type]` and `PUT [type]/[id]` name the type of the entry's
    /// resource: a mismatch would store the resource under another type's endpoint.
    fn bundle_requests(&mut self, bundle: &Map<String, Value>, path: &str) {
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

    /// The slicing of an element; extensions are always sliced by `url` (open).
    fn slicing_of(&self, node: &Node) -> Option<Slicing> {
        if node.slices.is_empty() {
            return None;
        }
        node.def.slicing.clone().or_else(|| {
            matches!(node.name.as_str(), "extension" | "modifierExtension").then(|| Slicing {
                discriminators: vec![crate::model::Discriminator {
                    kind: "value".into(),
                    path: "url".into(),
                }],
                closed: false,
            })
        })
    }

    fn sliced<'a>(
        &mut self,
        node: &'v Node,
        slicing: &Slicing,
        items: &[(String, Entry<'a, 'v>)],
        element_path: &str,
        res: Res<'a, 'v>,
    ) {
        let mut counts = vec![0usize; node.slices.len()];
        let is_default = |s: &Node| s.def.slice_name.as_deref() == Some("@default");
        for (item_path, entry) in items {
            let matched = node
                .slices
                .iter()
                .position(|s| {
                    !is_default(s) && self.slice_matches(*entry, s, slicing) == Some(true)
                })
                .or_else(|| node.slices.iter().position(is_default));
            match matched {
                Some(k) => {
                    counts[k] += 1;
                    let slice = &node.slices[k];
                    self.unknown_extension_definition(slice, item_path);
                    let type_ref = entry.type_ref.map(|t| {
                        slice
                            .def
                            .types
                            .iter()
                            .find(|s| s.code == t.code)
                            .unwrap_or(t)
                    });
                    self.item(slice, Entry { type_ref, ..*entry }, item_path, res);
                }
                None => {
                    if slicing.closed {
                        let names: Vec<&str> = node
                            .slices
                            .iter()
                            .filter_map(|s| s.def.slice_name.as_deref())
                            .collect();
                        self.emit(
                            rules::SLICE_CLOSED,
                            Severity::Error,
                            IssueType::Structure,
                            item_path,
                            format!(
                                "`{}` is closed to the slices {}; this item matches none of them",
                                node.def.id,
                                names.join(", ")
                            ),
                        );
                    }
                    self.item(node, *entry, item_path, res);
                }
            }
        }
        for (slice, count) in node.slices.iter().zip(counts) {
            let name = slice.def.slice_name.as_deref().unwrap_or_default();
            if (count as u64) < u64::from(slice.def.min) {
                self.emit(
                    rules::CARDINALITY_MIN,
                    Severity::Error,
                    IssueType::Required,
                    element_path,
                    format!(
                        "slice `{name}` of `{}` needs at least {} item(s), found {count}",
                        node.def.id, slice.def.min
                    ),
                );
            }
            if slice.def.max.exceeded_by(count) {
                self.emit(
                    rules::CARDINALITY_MAX,
                    Severity::Error,
                    IssueType::Structure,
                    element_path,
                    format!(
                        "slice `{name}` of `{}` allows at most {} item(s), found {count}",
                        node.def.id, slice.def.max
                    ),
                );
            }
        }
    }

    fn unknown_extension_definition(&mut self, slice: &Node, path: &str) {
        for t in &slice.def.types {
            if t.code != "Extension" {
                continue;
            }
            for profile in &t.profiles {
                if self.defs.structure(profile).is_none() {
                    self.emit(
                        rules::EXTENSION_UNKNOWN,
                        Severity::Warning,
                        IssueType::Extension,
                        path,
                        format!(
                            "the definition of extension `{profile}` is not loaded; only the base Extension structure was checked"
                        ),
                    );
                }
            }
        }
    }

    /// Whether an item belongs to a slice: `Some(false)` no, `None` the slice cannot be told
    /// apart with the discriminators (it then takes no items).
    fn slice_matches(
        &self,
        entry: Entry<'_, 'v>,
        slice: &'v Node,
        slicing: &Slicing,
    ) -> Option<bool> {
        for discriminator in &slicing.discriminators {
            let path = discriminator.path.as_str();
            match discriminator.kind.as_str() {
                "value" | "pattern" => {
                    let (expected, is_pattern) = self.expected_at(slice, path)?;
                    let actual = values::at_path(entry.value?, path);
                    let hit = actual.iter().any(|a| {
                        if is_pattern || discriminator.kind == "pattern" {
                            values::contains(a, &expected)
                        } else {
                            values::equal(a, &expected)
                        }
                    });
                    if !hit {
                        return Some(false);
                    }
                }
                "type" if path == "$this" => {
                    let code = &entry.type_ref?.code;
                    if !slice.def.types.iter().any(|t| &t.code == code) {
                        return Some(false);
                    }
                }
                "exists" => {
                    let target = self.node_at(slice, path)?;
                    let present = entry
                        .value
                        .is_some_and(|v| !values::at_path(v, path).is_empty());
                    if target.def.min > 0 && !present
                        || target.def.max == Max::Bounded(0) && present
                    {
                        return Some(false);
                    }
                    if target.def.min == 0 && target.def.max != Max::Bounded(0) {
                        return None;
                    }
                }
                _ => return None,
            }
        }
        Some(true)
    }

    /// The fixed or pattern value a slice has at a discriminator path, and whether it is a
    /// pattern.
    fn expected_at(&self, slice: &'v Node, path: &str) -> Option<(Value, bool)> {
        if path == "url"
            && let Some(profile) = slice
                .def
                .types
                .iter()
                .find(|t| t.code == "Extension")
                .and_then(|t| t.profiles.first())
        {
            // An extension definition fixes `Extension.url` to its own canonical URL.
            return Some((Value::String(profile.clone()), false));
        }
        let node = self.node_at(slice, path)?;
        match (&node.def.fixed, &node.def.pattern) {
            (Some(fixed), _) => Some((fixed.clone(), false)),
            (None, Some(pattern)) => Some((pattern.clone(), true)),
            _ => None,
        }
    }

    /// The element at a dotted path below a node, looking into the node's type when the
    /// definition does not state the children.
    fn node_at(&self, node: &'v Node, path: &str) -> Option<&'v Node> {
        let mut current = node;
        for segment in path.split('.') {
            if segment == "$this" {
                continue;
            }
            current = match current.child(segment) {
                Some(child) => child,
                None if current.children.is_empty() => {
                    let [t] = current.def.types.as_slice() else {
                        return None;
                    };
                    self.defs.type_tree(&t.code, &t.profiles)?.child(segment)?
                }
                None => return None,
            };
        }
        Some(current)
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
                    kind_of(value)
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
            value,
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
                    self.constraints(value, hint, [&node.def.constraints, &[]], path, res);
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
                        kind_of(companion)
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

    fn constraints<'a>(
        &mut self,
        focus: &'a Value,
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
                Ok(expr) => fhirpath::evaluate(expr, Item::Node(focus, hint), &env)
                    .and_then(|items| fhirpath::to_bool(&items))
                    .map_err(|e| e.0),
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

    fn reference<'a>(
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

    fn binding(&mut self, node: &Node, code: &str, value: &Value, path: &str) {
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

    fn fixed_and_pattern(&mut self, node: &Node, value: &Value, path: &str) {
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

/// `Some(in the set)` for a Coding with a code, `None` without one.
fn coding_in(coding: &Value, codes: &crate::terminology::Codes) -> Option<bool> {
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

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
