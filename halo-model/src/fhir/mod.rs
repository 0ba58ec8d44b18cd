//! FHIR JSON: raw lossless resources, bounded parsing, media types, and typed resources.
//!
//! Principle: FHIR data that passes through the SDK (stored, forwarded, echoed) stays the JSON it
//! came in as a [`RawResource`], so nothing is dropped or rewritten: key order, decimals such as
//! `1.50` and unknown extensions all survive. Typed views through `fhir-model` (feature
//! `fhir-model`, module [`typed`]) are for reading and building, never for storage.
//!
//! `fhir-model`'s generic serde code is expensive to compile, so this crate is the only one that
//! instantiates it, behind the non-generic functions of [`typed`]; other crates call those.

mod json;
pub mod media;
mod raw;
mod resource_types;
#[cfg(feature = "fhir-model")]
pub mod typed;

pub use json::{JsonError, JsonLimits, json_depth, json_kind, parse_json};
pub use media::{Format, MediaType, MediaTypeError};
pub use raw::{RawResource, RawResourceError, is_valid_id, is_valid_resource_type_name};
pub use resource_types::{R4_RESOURCE_TYPES, is_r4_resource_type, r4_resource_type_ignoring_case};
