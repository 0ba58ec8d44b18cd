//! Element trees: a StructureDefinition's flat element list turned into the nested shape of the
//! JSON it describes, and the overlay of a profile's differential on its base.

use crate::model::{ElementDef, PartialDef, TypeRef};

/// One element of a type or profile, with its children and its slices.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// The last segment of the element path (`identifier`, `value[x]`).
    pub(crate) name: String,
    /// The definition.
    pub(crate) def: ElementDef,
    /// Child elements stated by the definition (backbone elements, or data-type children a
    /// profile constrains). Empty: the children are those of the element's type.
    pub(crate) children: Vec<Node>,
    /// Named slices of this element.
    pub(crate) slices: Vec<Node>,
}

impl Node {
    fn new(name: &str, def: ElementDef) -> Node {
        Node {
            name: name.to_owned(),
            def,
            children: Vec::new(),
            slices: Vec::new(),
        }
    }

    /// `value` for `value[x]`, `None` for other elements.
    pub(crate) fn choice_base(&self) -> Option<&str> {
        self.name.strip_suffix("[x]")
    }

    /// A child by element name.
    pub(crate) fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The node at a dotted path below this one (`referenceRange`, `item.answer`), slices
    /// excluded.
    pub(crate) fn descendant(&self, path: &[&str]) -> Option<&Node> {
        match path.split_first() {
            None => Some(self),
            Some((first, rest)) => self.child(first)?.descendant(rest),
        }
    }
}

/// Splits `Patient.identifier:JHN.system` into `[("Patient", None), ("identifier", Some("JHN")),
/// ("system", None)]`. Slice names may contain dots only in reslicing paths, which no definition
/// in scope uses.
pub(crate) fn id_segments(id: &str) -> Vec<(&str, Option<&str>)> {
    id.split('.')
        .map(|segment| match segment.split_once(':') {
            Some((name, slice)) => (name, Some(slice)),
            None => (segment, None),
        })
        .collect()
}

/// Builds the tree of a snapshot. The first element is the root.
pub(crate) fn from_snapshot(elements: Vec<PartialDef>) -> Result<Node, String> {
    let mut iter = elements.into_iter();
    let first = iter.next().ok_or("the snapshot has no elements")?;
    let root_name = first.id.clone();
    let mut root = Node::new(&root_name, first.into_def());
    for element in iter {
        let id = element.id.clone();
        let segments = id_segments(&id);
        if segments.first().map(|s| s.0) != Some(root_name.as_str()) {
            return Err(format!("element `{id}` is outside `{root_name}`"));
        }
        let Some(((name, slice), parents)) = segments[1..].split_last() else {
            continue;
        };
        let mut parent = &mut root;
        for (segment, parent_slice) in parents {
            let next = parent
                .children
                .iter()
                .position(|c| c.name == *segment)
                .ok_or_else(|| format!("element `{id}` comes before its parent"))?;
            parent = &mut parent.children[next];
            if let Some(slice_name) = parent_slice {
                let slice = parent
                    .slices
                    .iter()
                    .position(|s| s.def.slice_name.as_deref() == Some(slice_name))
                    .ok_or_else(|| format!("element `{id}` comes before its slice"))?;
                parent = &mut parent.slices[slice];
            }
        }
        let def = element.into_def();
        match slice {
            None => parent.children.push(Node::new(name, def)),
            Some(_) => {
                let base = parent
                    .children
                    .iter_mut()
                    .find(|c| c.name == *name)
                    .ok_or_else(|| format!("slice `{id}` comes before its element"))?;
                base.slices.push(Node::new(name, def));
            }
        }
    }
    Ok(root)
}

/// What the differential overlay needs from the rest of the definitions: the element tree of a
/// data type (or of a profile on one) to expand an element whose children a profile constrains.
pub(crate) trait TypeTrees {
    /// The tree for a type code, or for the first known profile in `profiles`.
    fn type_tree(&self, code: &str, profiles: &[String]) -> Option<&Node>;
}

/// Overlays a differential on a copy of the base tree. Elements that cannot be placed are
/// returned as warnings (the profile still loads; the element is not enforced).
pub(crate) fn apply_differential(
    base: &Node,
    differential: &[PartialDef],
    types: &dyn TypeTrees,
) -> (Node, Vec<String>) {
    let mut root = base.clone();
    let mut warnings = Vec::new();
    for element in differential {
        let segments = id_segments(&element.id);
        if segments.len() == 1 {
            element.apply_to(&mut root.def);
            continue;
        }
        match locate(&mut root, &segments[1..], types) {
            Ok(node) => {
                element.apply_to(&mut node.def);
                if element.slice_name.is_some() {
                    node.def.slice_name = element.slice_name.clone();
                }
            }
            Err(why) => warnings.push(format!("{}: {why}", element.id)),
        }
    }
    (root, warnings)
}

/// Finds (creating slices and expanding data types as needed) the node for an id path.
fn locate<'n>(
    mut node: &'n mut Node,
    segments: &[(&str, Option<&str>)],
    types: &dyn TypeTrees,
) -> Result<&'n mut Node, String> {
    for (name, slice) in segments {
        if node.children.is_empty() {
            expand(node, types)?;
        }
        let index = match node.children.iter().position(|c| c.name == *name) {
            Some(index) => index,
            // A slice of a renamed choice (`onsetDateTime:x`) leaves the choice itself alone.
            None => typed_choice(node, name, slice.is_none())?,
        };
        node = &mut node.children[index];
        if let Some(slice_name) = slice {
            let existing = node
                .slices
                .iter()
                .position(|s| s.def.slice_name.as_deref() == Some(*slice_name));
            let index = match existing {
                Some(index) => index,
                None => {
                    // A new slice starts as a copy of the sliced element, without its slicing.
                    let mut slice_node = node.clone();
                    slice_node.slices.clear();
                    slice_node.def.slicing = None;
                    slice_node.def.slice_name = Some((*slice_name).to_owned());
                    slice_node.def.id = format!("{}:{slice_name}", node.def.id);
                    node.slices.push(slice_node);
                    node.slices.len() - 1
                }
            };
            node = &mut node.slices[index];
        }
    }
    Ok(node)
}

/// `valueBoolean` in a differential names `value[x]` restricted to `boolean` (a "type-specific
/// renaming"): the choice keeps only that type.
fn typed_choice(node: &mut Node, name: &str, restrict: bool) -> Result<usize, String> {
    for (index, child) in node.children.iter_mut().enumerate() {
        let Some(base) = child.choice_base() else {
            continue;
        };
        let Some(suffix) = name.strip_prefix(base) else {
            continue;
        };
        let chosen: Vec<TypeRef> = child
            .def
            .types
            .iter()
            .filter(|t| type_suffix(&t.code) == suffix)
            .cloned()
            .collect();
        if !chosen.is_empty() {
            if restrict {
                child.def.types = chosen;
                child.children.clear();
            }
            return Ok(index);
        }
    }
    Err(format!("no element `{name}` here"))
}

/// Gives a node the children of its (single) type so a profile can constrain them.
fn expand(node: &mut Node, types: &dyn TypeTrees) -> Result<(), String> {
    let [type_ref] = node.def.types.as_slice() else {
        return Err(format!(
            "`{}` has {} types; cannot constrain its children",
            node.name,
            node.def.types.len()
        ));
    };
    let tree = types
        .type_tree(&type_ref.code, &type_ref.profiles)
        .ok_or_else(|| format!("no definition for type `{}`", type_ref.code))?;
    node.children = tree.children.clone();
    // The type's own invariants (e.g. `per-1` on Period) keep applying to the element.
    for constraint in &tree.def.constraints {
        if !node.def.constraints.iter().any(|c| c.key == constraint.key) {
            node.def.constraints.push(constraint.clone());
        }
    }
    Ok(())
}

/// The JSON suffix of a type code in a choice element name: `Quantity`, `DateTime`, `String`.
pub(crate) fn type_suffix(code: &str) -> String {
    let mut chars = code.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::ElementDef;

    fn defs(elements: serde_json::Value) -> Vec<PartialDef> {
        elements
            .as_array()
            .unwrap()
            .iter()
            .map(|e| ElementDef::parse(e.as_object().unwrap(), "test").unwrap())
            .collect()
    }

    struct NoTypes;
    impl TypeTrees for NoTypes {
        fn type_tree(&self, _: &str, _: &[String]) -> Option<&Node> {
            None
        }
    }

    fn base() -> Node {
        from_snapshot(defs(json!([
            {"id": "Extension", "path": "Extension", "min": 0, "max": "*"},
            {"id": "Extension.url", "path": "Extension.url", "min": 1, "max": "1", "type": [{"code": "uri"}]},
            {"id": "Extension.value[x]", "path": "Extension.value[x]", "min": 0, "max": "1",
             "type": [{"code": "boolean"}, {"code": "string"}]}
        ])))
        .unwrap()
    }

    #[test]
    fn a_type_specific_name_restricts_the_choice() {
        let diff = defs(json!([
            {"id": "Extension.valueBoolean", "path": "Extension.valueBoolean", "min": 1}
        ]));
        let (tree, warnings) = apply_differential(&base(), &diff, &NoTypes);
        assert!(warnings.is_empty(), "{warnings:?}");
        let value = tree.child("value[x]").unwrap();
        assert_eq!(value.def.min, 1);
        assert_eq!(value.def.types.len(), 1);
        assert_eq!(value.def.types[0].code, "boolean");
    }

    #[test]
    fn a_slice_of_a_renamed_choice_leaves_the_choice_alone() {
        let diff = defs(json!([
            {"id": "Extension.valueBoolean:flag", "path": "Extension.valueBoolean", "sliceName": "flag"}
        ]));
        let (tree, _) = apply_differential(&base(), &diff, &NoTypes);
        let value = tree.child("value[x]").unwrap();
        assert_eq!(value.def.types.len(), 2);
        assert_eq!(value.slices.len(), 1);
    }

    #[test]
    fn slices_start_as_copies_of_their_element_and_unplaceable_elements_warn() {
        let diff = defs(json!([
            {"id": "Extension.url", "path": "Extension.url", "slicing": {"rules": "closed"}},
            {"id": "Extension.url:a", "path": "Extension.url", "sliceName": "a", "max": "1"},
            {"id": "Extension.nothing", "path": "Extension.nothing", "min": 1}
        ]));
        let (tree, warnings) = apply_differential(&base(), &diff, &NoTypes);
        let url = tree.child("url").unwrap();
        assert!(url.def.slicing.as_ref().unwrap().closed);
        let slice = &url.slices[0];
        assert_eq!(slice.def.min, 1);
        assert!(slice.def.slicing.is_none());
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("Extension.nothing"));
    }
}
