//! What the definitions say about an element's form: whether it repeats, and whether its value
//! is a primitive (and of which JSON kind), narrative, a resource or a group of child elements.

use crate::definitions::{Definitions, Kind};
use crate::tree::Node;

/// The JSON kind of a primitive value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Primitive {
    /// `true` / `false`.
    Boolean,
    /// A whole number (`integer`, `positiveInt`, `unsignedInt`).
    Integer,
    /// A decimal, kept exactly as written.
    Decimal,
    /// Everything else is a JSON string.
    String,
}

impl Primitive {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Primitive::Boolean => "a boolean",
            Primitive::Integer => "a whole number",
            Primitive::Decimal => "a decimal number",
            Primitive::String => "a string",
        }
    }
}

/// An element's content.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Content<'d> {
    /// A primitive: `value` attribute in XML, a JSON value plus `_name` for `id`/extensions.
    Primitive(Primitive),
    /// XHTML narrative (`Narrative.div`), a string in JSON.
    Xhtml,
    /// A resource inside an element (`contained`, `Bundle.entry.resource`).
    Resource,
    /// Child elements; `extension` marks the Extension type, whose `url` is an attribute.
    Complex {
        children: &'d [Node],
        extension: bool,
    },
}

/// Lookups into the definitions.
#[derive(Clone, Copy)]
pub(crate) struct Shapes<'d> {
    definitions: &'d Definitions,
}

impl<'d> Shapes<'d> {
    pub(crate) fn new(definitions: &'d Definitions) -> Shapes<'d> {
        Shapes { definitions }
    }

    /// The top-level elements of a resource type.
    pub(crate) fn resource(&self, resource_type: &str) -> Option<&'d [Node]> {
        let structure = self.definitions.base(resource_type)?;
        (structure.kind == Kind::Resource).then_some(structure.tree.children.as_slice())
    }

    /// The content of `node` for JSON key `key`: for a choice element (`value[x]`) the key's
    /// type suffix picks the type (`valueQuantity` → Quantity). `None`: not this element.
    pub(crate) fn content(&self, node: &'d Node, key: &str) -> Option<Content<'d>> {
        let code = match node.choice_base() {
            Some(base) => {
                let suffix = key.strip_prefix(base)?;
                node.def
                    .types
                    .iter()
                    .map(|t| t.code.as_str())
                    .find(|code| is_suffix_of(code, suffix))?
            }
            None if node.name == key => {
                if !node.children.is_empty() {
                    return Some(Content::Complex {
                        children: &node.children,
                        extension: false,
                    });
                }
                if let Some(target) = &node.def.content_reference {
                    return self.referenced(target);
                }
                node.def.types.first().map(|t| t.code.as_str())?
            }
            None => return None,
        };
        self.of_type(code)
    }

    /// `#Bundle.link`-style content references: the children of the element they name.
    fn referenced(&self, target: &str) -> Option<Content<'d>> {
        let mut segments = target.split('.');
        let structure = self.definitions.base(segments.next()?)?;
        let segments: Vec<&str> = segments.collect();
        let node = structure.tree.descendant(&segments)?;
        Some(Content::Complex {
            children: &node.children,
            extension: false,
        })
    }

    /// The content of a value of type `code`.
    pub(crate) fn of_type(&self, code: &str) -> Option<Content<'d>> {
        if let Some(system) = code.strip_prefix("http://hl7.org/fhirpath/System.") {
            return Some(Content::Primitive(match system {
                "Boolean" => Primitive::Boolean,
                "Integer" => Primitive::Integer,
                "Decimal" => Primitive::Decimal,
                _ => Primitive::String,
            }));
        }
        match code {
            "xhtml" => return Some(Content::Xhtml),
            "Resource" => return Some(Content::Resource),
            "boolean" => return Some(Content::Primitive(Primitive::Boolean)),
            "integer" | "positiveInt" | "unsignedInt" => {
                return Some(Content::Primitive(Primitive::Integer));
            }
            "decimal" => return Some(Content::Primitive(Primitive::Decimal)),
            _ => {}
        }
        let structure = self.definitions.base(code)?;
        match structure.kind {
            Kind::Primitive => Some(Content::Primitive(Primitive::String)),
            Kind::Resource => Some(Content::Resource),
            Kind::Complex | Kind::Logical => Some(Content::Complex {
                children: &structure.tree.children,
                extension: code == "Extension",
            }),
        }
    }
}

/// Whether `suffix` is what type `code` adds to a choice element's name (`dateTime` →
/// `DateTime`), compared without allocating: this runs for every member of every object.
fn is_suffix_of(code: &str, suffix: &str) -> bool {
    let (mut code_chars, mut suffix_chars) = (code.chars(), suffix.chars());
    match (code_chars.next(), suffix_chars.next()) {
        (Some(c), Some(s)) => {
            c.to_ascii_uppercase() == s && code_chars.as_str() == suffix_chars.as_str()
        }
        _ => false,
    }
}
