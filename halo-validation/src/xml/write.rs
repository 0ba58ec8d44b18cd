//! JSON → XML: walk the definition's elements in order and write what the JSON holds for each.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::shape::{Content, Primitive, Shapes};
use super::{FHIR_NAMESPACE, XHTML_NAMESPACE, XmlError, dom};
use crate::tree::Node;

/// Where members are being written: attributes differ between a resource's top level (`id` is
/// an element), any other element (`id` is an attribute) and an Extension (`url` too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    Resource,
    Element,
    Extension,
}

pub(super) fn resource_to_xml(shapes: &Shapes<'_>, resource: &Value) -> Result<String, XmlError> {
    let mut out = String::with_capacity(1024);
    write_resource(shapes, resource, "", true, &mut out)?;
    Ok(out)
}

fn write_resource(
    shapes: &Shapes<'_>,
    resource: &Value,
    path: &str,
    top: bool,
    out: &mut String,
) -> Result<(), XmlError> {
    let object = resource
        .as_object()
        .ok_or_else(|| XmlError::at(path, "a resource must be a JSON object"))?;
    let resource_type = object
        .get("resourceType")
        .and_then(Value::as_str)
        .ok_or_else(|| XmlError::at(path, "the resource has no `resourceType`"))?;
    let children = shapes.resource(resource_type).ok_or_else(|| {
        XmlError::at(
            path,
            format!("`{resource_type}` has no definition here, so it has no XML form"),
        )
    })?;
    let path = if path.is_empty() {
        resource_type.to_owned()
    } else {
        path.to_owned()
    };
    out.push('<');
    out.push_str(resource_type);
    if top {
        out.push_str(" xmlns=\"");
        out.push_str(FHIR_NAMESPACE);
        out.push('"');
    }
    out.push('>');
    write_members(shapes, object, children, &path, Context::Resource, out)?;
    out.push_str("</");
    out.push_str(resource_type);
    out.push('>');
    Ok(())
}

/// The members of `object`, in the order of `nodes`; a member no node accounts for is an error
/// (XML has nowhere to put it).
fn write_members(
    shapes: &Shapes<'_>,
    object: &Map<String, Value>,
    nodes: &[Node],
    path: &str,
    context: Context,
    out: &mut String,
) -> Result<(), XmlError> {
    let mut used: HashSet<String> = HashSet::new();
    let implicit: &[&str] = match context {
        Context::Resource => &["resourceType"],
        Context::Element => &["id"],
        Context::Extension => &["id", "url"],
    };
    used.extend(implicit.iter().map(|k| (*k).to_owned()));
    // Most objects have no `_name` members; then only the plain names need looking up.
    let has_extras = object.keys().any(|k| k.starts_with('_'));
    for node in nodes {
        let attribute = match context {
            Context::Resource => false,
            Context::Element => node.name == "id",
            Context::Extension => node.name == "id" || node.name == "url",
        };
        if attribute {
            continue;
        }
        for key in member_keys(shapes, object, node, has_extras) {
            let Some(content) = shapes.content(node, &key) else {
                continue;
            };
            let extra_key = format!("_{key}");
            let value = object.get(&key);
            let extra = object.get(&extra_key);
            let member_path = format!("{path}.{key}");
            if extra.is_some() {
                used.insert(extra_key);
            }
            write_member(
                shapes,
                &key,
                node.def.max.repeats(),
                content,
                value,
                extra,
                &member_path,
                out,
            )?;
            used.insert(key);
        }
    }
    if let Some(unknown) = object.keys().find(|k| !used.contains(k.as_str())) {
        return Err(XmlError::at(
            path,
            format!("`{unknown}` is not an element here"),
        ));
    }
    Ok(())
}

/// The JSON keys that belong to `node`: its name, or for a choice element each present
/// `base` + type suffix (also when only the `_` form is present).
fn member_keys(
    shapes: &Shapes<'_>,
    object: &Map<String, Value>,
    node: &Node,
    has_extras: bool,
) -> Vec<String> {
    let name = node.name.as_str();
    match node.choice_base() {
        None => {
            let present = object.contains_key(name)
                || (has_extras && object.keys().any(|k| k.strip_prefix('_') == Some(name)));
            if present {
                vec![name.to_owned()]
            } else {
                Vec::new()
            }
        }
        Some(base) => {
            let mut keys: Vec<String> = Vec::new();
            for key in object.keys() {
                let bare = key.strip_prefix('_').unwrap_or(key);
                if bare.len() > base.len()
                    && bare.starts_with(base)
                    && shapes.content(node, bare).is_some()
                    && !keys.iter().any(|k| k == bare)
                {
                    keys.push(bare.to_owned());
                }
            }
            keys
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn write_member(
    shapes: &Shapes<'_>,
    key: &str,
    repeats: bool,
    content: Content<'_>,
    value: Option<&Value>,
    extra: Option<&Value>,
    path: &str,
    out: &mut String,
) -> Result<(), XmlError> {
    if !repeats {
        if value.is_some_and(Value::is_array) || extra.is_some_and(Value::is_array) {
            return Err(XmlError::at(path, "occurs at most once, but is an array"));
        }
        return write_one(shapes, key, content, value, extra, path, out);
    }
    let as_array = |v: Option<&Value>| -> Result<Vec<Value>, XmlError> {
        match v {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => Ok(items.clone()),
            Some(_) => Err(XmlError::at(path, "repeats, so it must be an array")),
        }
    };
    let values = as_array(value)?;
    let extras = as_array(extra)?;
    if !values.is_empty() && !extras.is_empty() && values.len() != extras.len() {
        return Err(XmlError::at(
            path,
            format!(
                "`{key}` has {} items but `_{key}` has {}",
                values.len(),
                extras.len()
            ),
        ));
    }
    for index in 0..values.len().max(extras.len()) {
        let value = values.get(index).filter(|v| !v.is_null());
        let extra = extras.get(index).filter(|v| !v.is_null());
        write_one(
            shapes,
            key,
            content,
            value,
            extra,
            &format!("{path}[{index}]"),
            out,
        )?;
    }
    Ok(())
}

fn write_one(
    shapes: &Shapes<'_>,
    key: &str,
    content: Content<'_>,
    value: Option<&Value>,
    extra: Option<&Value>,
    path: &str,
    out: &mut String,
) -> Result<(), XmlError> {
    match content {
        Content::Primitive(kind) => write_primitive(shapes, key, kind, value, extra, path, out),
        _ if extra.is_some() => Err(XmlError::at(
            path,
            format!("`_{key}` is only for primitive elements"),
        )),
        Content::Xhtml => {
            let text = value
                .and_then(Value::as_str)
                .ok_or_else(|| XmlError::at(path, "narrative must be an XHTML string"))?;
            let mut div = dom::parse(text.as_bytes(), super::DEFAULT_MAX_DEPTH)
                .map_err(|e| XmlError::at(path, format!("narrative is not XHTML: {e}")))?;
            if div.name != "div" {
                return Err(XmlError::at(path, "narrative must be a <div>"));
            }
            ensure_xhtml_namespace(&mut div);
            dom::serialise(&div, out);
            Ok(())
        }
        Content::Resource => {
            let Some(resource) = value else {
                return Ok(());
            };
            open(key, out);
            out.push('>');
            write_resource(shapes, resource, path, false, out)?;
            close(key, out);
            Ok(())
        }
        Content::Complex {
            children,
            extension,
        } => {
            let Some(value) = value else {
                return Ok(());
            };
            let object = value
                .as_object()
                .ok_or_else(|| XmlError::at(path, "must be a JSON object"))?;
            open(key, out);
            if let Some(id) = object.get("id") {
                attribute("id", string(id, path, "id")?, out);
            }
            if extension {
                let url = object
                    .get("url")
                    .ok_or_else(|| XmlError::at(path, "an extension needs a `url`"))?;
                attribute("url", string(url, path, "url")?, out);
            }
            out.push('>');
            let context = if extension {
                Context::Extension
            } else {
                Context::Element
            };
            write_members(shapes, object, children, path, context, out)?;
            close(key, out);
            Ok(())
        }
    }
}

fn write_primitive(
    shapes: &Shapes<'_>,
    key: &str,
    kind: Primitive,
    value: Option<&Value>,
    extra: Option<&Value>,
    path: &str,
    out: &mut String,
) -> Result<(), XmlError> {
    open(key, out);
    let extra = match extra {
        None => None,
        Some(Value::Object(extra)) => Some(extra),
        Some(_) => return Err(XmlError::at(path, format!("`_{key}` must be an object"))),
    };
    if let Some(id) = extra.and_then(|e| e.get("id")) {
        attribute("id", string(id, path, "id")?, out);
    }
    if let Some(value) = value.filter(|v| !v.is_null()) {
        let text = match (kind, value) {
            (Primitive::Boolean, Value::Bool(b)) => b.to_string(),
            (Primitive::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
            (Primitive::Decimal, Value::Number(n)) => n.to_string(),
            (Primitive::String, Value::String(s)) => s.clone(),
            _ => {
                return Err(XmlError::at(
                    path,
                    format!("must be {}, not {value}", kind.name()),
                ));
            }
        };
        attribute("value", &text, out);
    }
    let extensions = match extra {
        Some(extra) => {
            if let Some(unknown) = extra.keys().find(|k| *k != "id" && *k != "extension") {
                return Err(XmlError::at(
                    path,
                    format!("`_{key}` may hold only `id` and `extension`, not `{unknown}`"),
                ));
            }
            match extra.get("extension") {
                None => Vec::new(),
                Some(Value::Array(items)) => items.iter().collect(),
                Some(_) => {
                    return Err(XmlError::at(path, "`extension` must be an array"));
                }
            }
        }
        None => Vec::new(),
    };
    if extensions.is_empty() {
        out.push_str("/>");
        return Ok(());
    }
    out.push('>');
    let Some(extension_content) = shapes.of_type("Extension") else {
        return Err(XmlError::at(path, "the Extension type has no definition"));
    };
    for (index, extension) in extensions.into_iter().enumerate() {
        write_one(
            shapes,
            "extension",
            extension_content,
            Some(extension),
            None,
            &format!("{path}.extension[{index}]"),
            out,
        )?;
    }
    close(key, out);
    Ok(())
}

fn string<'v>(value: &'v Value, path: &str, name: &str) -> Result<&'v str, XmlError> {
    value
        .as_str()
        .ok_or_else(|| XmlError::at(path, format!("`{name}` must be a string")))
}

/// Narrative carries its own namespace; without it the `div` would land in FHIR's.
pub(super) fn ensure_xhtml_namespace(div: &mut dom::XElement) {
    div.attributes
        .retain(|(name, _)| !name.starts_with("xmlns:") || name == "xmlns:xml");
    match div.attributes.iter_mut().find(|(name, _)| name == "xmlns") {
        Some((_, value)) => *value = XHTML_NAMESPACE.to_owned(),
        None => div
            .attributes
            .insert(0, ("xmlns".to_owned(), XHTML_NAMESPACE.to_owned())),
    }
}

fn open(name: &str, out: &mut String) {
    out.push('<');
    out.push_str(name);
}

fn close(name: &str, out: &mut String) {
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

fn attribute(name: &str, value: &str, out: &mut String) {
    out.push(' ');
    out.push_str(name);
    out.push_str("=\"");
    escape_attribute(value, out);
    out.push('"');
}

/// Escapes an attribute value; whitespace other than a space is written as a character
/// reference, since a parser would otherwise normalise it to a space.
pub(super) fn escape_attribute(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
}

/// Escapes character data.
pub(super) fn escape_text(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
}
