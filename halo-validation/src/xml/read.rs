//! XML → JSON: match each child element to its definition, gather repeats into arrays, type
//! primitive values, and move a primitive's `id` and extensions to `_name`.

use serde_json::{Map, Number, Value};

use super::dom::{self, XElement};
use super::shape::{Content, Primitive, Shapes};
use super::write::ensure_xhtml_namespace;
use super::{FHIR_NAMESPACE, XmlError};
use crate::tree::Node;

pub(super) fn resource_from_xml(shapes: &Shapes<'_>, root: &XElement) -> Result<Value, XmlError> {
    let in_fhir_namespace = root.attributes.iter().any(|(name, value)| {
        (name == "xmlns" || name.starts_with("xmlns:")) && value == FHIR_NAMESPACE
    });
    if !in_fhir_namespace {
        return Err(XmlError::syntax(format!(
            "<{}> is not in the FHIR namespace ({FHIR_NAMESPACE})",
            root.name
        )));
    }
    read_resource(shapes, root, "")
}

fn read_resource(shapes: &Shapes<'_>, element: &XElement, path: &str) -> Result<Value, XmlError> {
    let resource_type = element.name.as_str();
    let nodes = shapes.resource(resource_type).ok_or_else(|| {
        XmlError::at(
            path,
            format!("`{resource_type}` is not a known resource type"),
        )
    })?;
    let path = if path.is_empty() {
        resource_type.to_owned()
    } else {
        path.to_owned()
    };
    only_attributes(element, &[], &path)?;
    let mut object = Map::new();
    object.insert("resourceType".into(), Value::String(resource_type.into()));
    read_members(shapes, element, nodes, &path, &[], &mut object)?;
    Ok(Value::Object(object))
}

/// Refuses attributes other than namespace declarations and `allowed`.
fn only_attributes(element: &XElement, allowed: &[&str], path: &str) -> Result<(), XmlError> {
    match element.attributes.iter().find(|(name, _)| {
        name != "xmlns" && !name.starts_with("xmlns:") && !allowed.contains(&name.as_str())
    }) {
        Some((name, _)) => Err(XmlError::at(
            path,
            format!("<{}> has an unexpected attribute `{name}`", element.name),
        )),
        None => Ok(()),
    }
}

/// One definition's share of the children: its JSON key, content and elements.
struct Member<'x, 'd> {
    order: usize,
    key: &'x str,
    repeats: bool,
    content: Content<'d>,
    elements: Vec<&'x XElement>,
}

fn read_members(
    shapes: &Shapes<'_>,
    element: &XElement,
    nodes: &[Node],
    path: &str,
    attributes: &[&str],
    object: &mut Map<String, Value>,
) -> Result<(), XmlError> {
    if let Some(text) = element.stray_text() {
        return Err(XmlError::at(
            path,
            format!(
                "<{}> holds text ({text:?}); FHIR puts values in `value` attributes",
                element.name
            ),
        ));
    }
    let mut members: Vec<Member<'_, '_>> = Vec::new();
    for child in element.children() {
        let key = child.name.as_str();
        if let Some(member) = members.iter_mut().find(|m| m.key == key) {
            member.elements.push(child);
            continue;
        }
        // An element's `id` (and an extension's `url`) is an attribute; only a resource has an
        // `id` element.
        let found = nodes
            .iter()
            .enumerate()
            .filter(|(_, node)| !attributes.contains(&node.name.as_str()))
            .find_map(|(order, node)| {
                shapes
                    .content(node, key)
                    .map(|content| (order, node, content))
            });
        let Some((order, node, content)) = found else {
            return Err(XmlError::at(
                path,
                format!("<{key}> is not an element of <{}>", element.name),
            ));
        };
        members.push(Member {
            order,
            key,
            repeats: node.def.max.repeats(),
            content,
            elements: vec![child],
        });
    }
    // JSON members follow the definition's order, as XML does.
    members.sort_by_key(|m| m.order);
    for member in members {
        let member_path = format!("{path}.{}", member.key);
        if !member.repeats && member.elements.len() > 1 {
            return Err(XmlError::at(
                &member_path,
                format!(
                    "occurs {} times; at most once is allowed",
                    member.elements.len()
                ),
            ));
        }
        read_member(shapes, &member, &member_path, object)?;
    }
    Ok(())
}

fn read_member(
    shapes: &Shapes<'_>,
    member: &Member<'_, '_>,
    path: &str,
    object: &mut Map<String, Value>,
) -> Result<(), XmlError> {
    let mut values = Vec::with_capacity(member.elements.len());
    let mut extras = Vec::with_capacity(member.elements.len());
    for (index, element) in member.elements.iter().enumerate() {
        let item_path = if member.repeats {
            format!("{path}[{index}]")
        } else {
            path.to_owned()
        };
        let (value, extra) = read_one(shapes, member.content, element, &item_path)?;
        values.push(value);
        extras.push(extra);
    }
    let key = member.key;
    if member.repeats {
        if values.iter().any(|v| !v.is_null()) {
            object.insert(key.to_owned(), Value::Array(values));
        }
        if extras.iter().any(|v| !v.is_null()) {
            object.insert(format!("_{key}"), Value::Array(extras));
        }
    } else {
        if let Some(value) = values.pop().filter(|v| !v.is_null()) {
            object.insert(key.to_owned(), value);
        }
        if let Some(extra) = extras.pop().filter(|v| !v.is_null()) {
            object.insert(format!("_{key}"), extra);
        }
    }
    Ok(())
}

/// The JSON value of one element and, for a primitive, its `_name` part (`Null` when none).
fn read_one(
    shapes: &Shapes<'_>,
    content: Content<'_>,
    element: &XElement,
    path: &str,
) -> Result<(Value, Value), XmlError> {
    match content {
        Content::Primitive(kind) => read_primitive(shapes, kind, element, path),
        Content::Xhtml => {
            let mut div = element.clone();
            if div.name != "div" {
                return Err(XmlError::at(path, "narrative must be a <div>"));
            }
            ensure_xhtml_namespace(&mut div);
            let mut text = String::new();
            dom::serialise(&div, &mut text);
            Ok((Value::String(text), Value::Null))
        }
        Content::Resource => {
            only_attributes(element, &[], path)?;
            if let Some(text) = element.stray_text() {
                return Err(XmlError::at(path, format!("unexpected text {text:?}")));
            }
            let mut children = element.children();
            let (Some(resource), None) = (children.next(), children.next()) else {
                return Err(XmlError::at(path, "must hold exactly one resource"));
            };
            Ok((read_resource(shapes, resource, path)?, Value::Null))
        }
        Content::Complex {
            children,
            extension,
        } => {
            let allowed: &[&str] = if extension { &["id", "url"] } else { &["id"] };
            only_attributes(element, allowed, path)?;
            let mut object = Map::new();
            if let Some(id) = element.attribute("id") {
                object.insert("id".into(), Value::String(id.into()));
            }
            if extension {
                let url = element
                    .attribute("url")
                    .ok_or_else(|| XmlError::at(path, "an extension needs a `url` attribute"))?;
                object.insert("url".into(), Value::String(url.into()));
            }
            read_members(shapes, element, children, path, allowed, &mut object)?;
            Ok((Value::Object(object), Value::Null))
        }
    }
}

fn read_primitive(
    shapes: &Shapes<'_>,
    kind: Primitive,
    element: &XElement,
    path: &str,
) -> Result<(Value, Value), XmlError> {
    only_attributes(element, &["id", "value"], path)?;
    if let Some(text) = element.stray_text() {
        return Err(XmlError::at(
            path,
            format!("holds text ({text:?}); a primitive's value is its `value` attribute"),
        ));
    }
    let value = match element.attribute("value") {
        Some(text) => typed(kind, text)
            .ok_or_else(|| XmlError::at(path, format!("`{text}` is not {}", kind.name())))?,
        None => Value::Null,
    };
    let mut extra = Map::new();
    if let Some(id) = element.attribute("id") {
        extra.insert("id".into(), Value::String(id.into()));
    }
    let mut extensions = Vec::new();
    let extension_content = shapes
        .of_type("Extension")
        .ok_or_else(|| XmlError::at(path, "the Extension type has no definition"))?;
    for (index, child) in element.children().enumerate() {
        if child.name != "extension" {
            return Err(XmlError::at(
                path,
                format!(
                    "<{}> may hold only extensions, not <{}>",
                    element.name, child.name
                ),
            ));
        }
        let item_path = format!("{path}.extension[{index}]");
        extensions.push(read_one(shapes, extension_content, child, &item_path)?.0);
    }
    if !extensions.is_empty() {
        extra.insert("extension".into(), Value::Array(extensions));
    }
    if value.is_null() && extra.is_empty() {
        return Err(XmlError::at(
            path,
            "has neither a value nor extensions (ele-1)",
        ));
    }
    let extra = if extra.is_empty() {
        Value::Null
    } else {
        Value::Object(extra)
    };
    Ok((value, extra))
}

/// A primitive's `value` attribute as its JSON value; `None` when it is not of that kind.
fn typed(kind: Primitive, text: &str) -> Option<Value> {
    match kind {
        Primitive::Boolean => match text {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        Primitive::Integer => {
            let n: i64 = text.parse().ok()?;
            // Only the canonical form: no `+`, no leading zeros.
            (n.to_string() == text).then(|| Value::Number(n.into()))
        }
        Primitive::Decimal => {
            // JSON's number grammar is FHIR's decimal grammar; the text is kept exactly.
            if text.trim() != text {
                return None;
            }
            serde_json::from_str::<Number>(text).ok().map(Value::Number)
        }
        Primitive::String => Some(Value::String(text.to_owned())),
    }
}
