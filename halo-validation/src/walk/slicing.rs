//! Slicing: assigning the items of a sliced element to its slices by their discriminators.

use halo_model::outcome::{IssueType, Severity};
use serde_json::Value;

use super::{Entry, Res, Walker};
use crate::model::{Discriminator, Max, Slicing};
use crate::report::rules;
use crate::tree::{Node, TypeTrees};
use crate::values;

impl<'v> Walker<'v> {
    /// The slicing of an element; extensions are always sliced by `url` (open).
    pub(super) fn slicing_of(&self, node: &Node) -> Option<Slicing> {
        if node.slices.is_empty() {
            return None;
        }
        node.def.slicing.clone().or_else(|| {
            matches!(node.name.as_str(), "extension" | "modifierExtension").then(|| Slicing {
                discriminators: vec![Discriminator {
                    kind: "value".into(),
                    path: "url".into(),
                }],
                closed: false,
            })
        })
    }

    pub(super) fn sliced<'a>(
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
}
