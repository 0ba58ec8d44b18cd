//! FHIR XML (`application/fhir+xml`), to and from the JSON form, driven by the same
//! StructureDefinitions as validation.
//!
//! XML and JSON carry the same content but differ in what each leaves implicit: XML needs the
//! definition's element order and marks primitives with a `value` attribute; JSON needs to know
//! which elements repeat (arrays) and which primitives are numbers or booleans. Both come from
//! the element definitions, so conversion is exact for every type the [`Definitions`] hold and
//! refused, with a clear error, for anything else. The rules are those of FHIR R4 §2.6
//! (XML) and §2.6.2 (JSON): `id` on elements and `url` on extensions are attributes, a
//! primitive's `id` and extensions travel in JSON under `_name`, a resource inside an element
//! is wrapped in an element named for its type, and narrative is XHTML carried as a string.
//!
//! ```
//! use halo_validation::xml::FhirXml;
//! use serde_json::json;
//!
//! let xml = FhirXml::embedded();
//! let patient = json!({"resourceType": "Patient", "id": "p1", "active": true,
//!                      "name": [{"family": "Roy", "given": ["Jean"]}]});
//! let text = xml.to_xml(&patient).unwrap();
//! assert!(text.starts_with("<Patient xmlns=\"http://hl7.org/fhir\"><id value=\"p1\"/>"));
//! assert_eq!(xml.from_xml(text.as_bytes()).unwrap(), patient);
//! ```

mod dom;
mod read;
mod shape;
mod write;

use std::sync::{Arc, OnceLock};

use crate::definitions::Definitions;

/// The FHIR namespace of every element outside narrative.
pub const FHIR_NAMESPACE: &str = "http://hl7.org/fhir";
/// The XHTML namespace of narrative.
pub const XHTML_NAMESPACE: &str = "http://www.w3.org/1999/xhtml";
/// How deeply elements may nest in a document that is read (real resources stay below 30).
pub const DEFAULT_MAX_DEPTH: usize = 128;

/// Why a document could not be converted. `path` locates the element (`Patient.name[0].given`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
pub struct XmlError {
    /// Where in the resource, as a FHIRPath-like path; empty for the document as a whole.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl XmlError {
    pub(crate) fn syntax(message: impl Into<String>) -> XmlError {
        XmlError {
            path: String::new(),
            message: message.into(),
        }
    }

    pub(crate) fn at(path: &str, message: impl Into<String>) -> XmlError {
        XmlError {
            path: path.to_owned(),
            message: message.into(),
        }
    }
}

/// Converts resources between FHIR JSON and FHIR XML. Build once and share; conversion takes
/// `&self`.
#[derive(Debug, Clone)]
pub struct FhirXml {
    definitions: Arc<Definitions>,
    max_depth: usize,
}

impl FhirXml {
    /// The embedded R4 definitions, plus the shapes of the other resource types a SoFA serves
    /// (CapabilityStatement, Subscription, Basic and the D-14 types without a validation
    /// definition). Built on first use, then shared.
    pub fn embedded() -> FhirXml {
        static EMBEDDED: OnceLock<Arc<Definitions>> = OnceLock::new();
        let definitions = EMBEDDED
            .get_or_init(|| Arc::new(Definitions::embedded_shapes()))
            .clone();
        FhirXml::new(definitions)
    }

    /// Conversion for the types `definitions` hold (base definitions; profiles do not change
    /// the format).
    pub fn new(definitions: Arc<Definitions>) -> FhirXml {
        FhirXml {
            definitions,
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }

    /// The same, refusing documents nested deeper than `max_depth` elements.
    pub fn with_max_depth(mut self, max_depth: usize) -> FhirXml {
        self.max_depth = max_depth;
        self
    }

    /// Whether `resource_type` can be converted.
    pub fn supports(&self, resource_type: &str) -> bool {
        shape::Shapes::new(&self.definitions)
            .resource(resource_type)
            .is_some()
    }

    /// The XML form of a JSON resource. Fails on anything XML cannot carry faithfully: an
    /// element the definition does not know, a value of the wrong JSON kind, a narrative that
    /// is not well-formed XHTML.
    pub fn to_xml(&self, resource: &serde_json::Value) -> Result<String, XmlError> {
        write::resource_to_xml(&shape::Shapes::new(&self.definitions), resource)
    }

    /// The JSON form of an XML resource. Fails on malformed XML, a DTD, a root outside the FHIR
    /// namespace, an unknown element or attribute, text where FHIR has none, a repeated element
    /// that may occur once, and a primitive value of the wrong kind (`<active value="yes"/>`).
    pub fn from_xml(&self, xml: &[u8]) -> Result<serde_json::Value, XmlError> {
        let root = dom::parse(xml, self.max_depth)?;
        read::resource_from_xml(&shape::Shapes::new(&self.definitions), &root)
    }
}
