//! The HTTP toolkit every service's routes share: authenticating the bearer token, reading a
//! FHIR body within its limits (JSON, or XML converted at the edge), choosing the answer's
//! format, and turning a panic into an OperationOutcome (REQ REL-03). It knows no service;
//! [`crate::sofa`] assembles the services' routes into one router.

mod body;
mod panic;
mod xml;

pub use body::{authenticate, read_fhir_json, response_format};
pub(crate) use body::{fhir_json, fhir_json_bytes, format_parameter};
pub(crate) use panic::answer as panic_answer;
pub(crate) use xml::convert as xml_convert;
