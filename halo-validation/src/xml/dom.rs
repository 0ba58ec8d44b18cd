//! A small element tree read from XML text: names, attributes, child elements and text, no
//! more. DTDs are refused outright (no entity can be declared, so none can be expanded or
//! fetched), and the nesting depth is bounded before anything recurses over the tree.

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

use super::XmlError;

/// One XML element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct XElement {
    /// The local name (a namespace prefix is dropped).
    pub(crate) name: String,
    /// The attributes in document order, names as written (`xmlns`, `xmlns:f`, `value`).
    pub(crate) attributes: Vec<(String, String)>,
    /// Child elements and text, in document order.
    pub(crate) content: Vec<XNode>,
}

/// Element content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum XNode {
    /// A child element.
    Element(XElement),
    /// Character data, references resolved.
    Text(String),
}

impl XElement {
    /// The value of attribute `name`.
    pub(crate) fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The child elements.
    pub(crate) fn children(&self) -> impl Iterator<Item = &XElement> {
        self.content.iter().filter_map(|node| match node {
            XNode::Element(element) => Some(element),
            XNode::Text(_) => None,
        })
    }

    /// Text that is not whitespace, if any (FHIR elements outside XHTML carry none).
    pub(crate) fn stray_text(&self) -> Option<&str> {
        self.content.iter().find_map(|node| match node {
            XNode::Text(text) if !text.trim().is_empty() => Some(text.trim()),
            _ => None,
        })
    }
}

/// Parses a whole document into its root element.
pub(crate) fn parse(xml: &[u8], max_depth: usize) -> Result<XElement, XmlError> {
    let text = std::str::from_utf8(xml)
        .map_err(|e| XmlError::syntax(format!("the document is not UTF-8: {e}")))?;
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<XElement> = Vec::new();
    let mut root: Option<XElement> = None;
    loop {
        let position = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|e| XmlError::syntax(format!("at byte {position}: {e}")))?;
        match event {
            Event::Start(start) => {
                if stack.len() >= max_depth {
                    return Err(XmlError::syntax(format!(
                        "elements are nested deeper than {max_depth} levels"
                    )));
                }
                stack.push(element(&start)?);
            }
            Event::Empty(start) => {
                let element = element(&start)?;
                attach(&mut stack, &mut root, element)?;
            }
            Event::End(_) => {
                let element = stack
                    .pop()
                    .ok_or_else(|| XmlError::syntax("an end tag without a start tag"))?;
                attach(&mut stack, &mut root, element)?;
            }
            Event::Text(text) => {
                push_text(&mut stack, &text.xml10_content())?;
            }
            Event::CData(data) => {
                push_text(&mut stack, &data.xml10_content())?;
            }
            Event::GeneralRef(reference) => {
                let text = resolve(&reference)?;
                push_text(&mut stack, &text)?;
            }
            Event::DocType(_) => {
                return Err(XmlError::syntax(
                    "a DOCTYPE is not allowed in FHIR XML (no entity may be declared)",
                ));
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::syntax("the document ends inside an element"));
    }
    root.ok_or_else(|| XmlError::syntax("the document has no element"))
}

fn element(start: &BytesStart<'_>) -> Result<XElement, XmlError> {
    let qualified = start.name().as_ref().to_owned();
    let name = match qualified.split_once(':') {
        Some((_, local)) => local.to_owned(),
        None => qualified,
    };
    let mut attributes = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| XmlError::syntax(format!("<{name}>: {e}")))?;
        let key = attribute.key.as_ref().to_owned();
        let value = attribute
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| XmlError::syntax(format!("<{name} {key}>: {e}")))?
            .into_owned();
        attributes.push((key, value));
    }
    Ok(XElement {
        name,
        attributes,
        content: Vec::new(),
    })
}

fn attach(
    stack: &mut [XElement],
    root: &mut Option<XElement>,
    element: XElement,
) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(parent) => parent.content.push(XNode::Element(element)),
        None if root.is_none() => *root = Some(element),
        None => {
            return Err(XmlError::syntax(
                "the document has more than one root element",
            ));
        }
    }
    Ok(())
}

fn push_text(stack: &mut [XElement], text: &str) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(parent) => {
            if let Some(XNode::Text(previous)) = parent.content.last_mut() {
                previous.push_str(text);
            } else {
                parent.content.push(XNode::Text(text.to_owned()));
            }
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err(XmlError::syntax("text outside the root element")),
    }
}

/// A character reference or one of the five predefined entities; anything else was never
/// declared (DTDs are refused) and is an error.
fn resolve(reference: &BytesRef<'_>) -> Result<String, XmlError> {
    if let Some(c) = reference
        .resolve_char_ref()
        .map_err(|e| XmlError::syntax(e.to_string()))?
    {
        return Ok(c.to_string());
    }
    let name = reference.xml10_content();
    resolve_predefined_entity(&name)
        .map(str::to_owned)
        .ok_or_else(|| XmlError::syntax(format!("the entity `&{name};` is not defined")))
}

/// Writes `element` back as XML text (used for XHTML narrative, kept as a string in JSON).
pub(crate) fn serialise(element: &XElement, out: &mut String) {
    out.push('<');
    out.push_str(&element.name);
    for (name, value) in &element.attributes {
        out.push(' ');
        out.push_str(name);
        out.push_str("=\"");
        super::write::escape_attribute(value, out);
        out.push('"');
    }
    if element.content.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    for node in &element.content {
        match node {
            XNode::Element(child) => serialise(child, out),
            XNode::Text(text) => super::write::escape_text(text, out),
        }
    }
    out.push_str("</");
    out.push_str(&element.name);
    out.push('>');
}
