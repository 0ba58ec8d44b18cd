//! FHIR R4 and CA Core+ resource validation, driven by StructureDefinitions.
//!
//! The validator reads FHIR StructureDefinitions, ValueSets and CodeSystems as data: the R4 4.0.1
//! definitions and HL7 Canada's CA Baseline profiles are embedded (see
//! `definitions/PROVENANCE.md`), and a jurisdiction can load its own package (for example CA
//! Core+, `ca.infoway.io.core`) from a directory without code changes.
//!
//! It checks, at every depth: unknown elements (including misspelt choice names such as
//! `valueQuantiy`), primitive formats, cardinality, data types, reference target types, required
//! (and extensible) bindings, `fixed[x]` / `pattern[x]`, invariants (a FHIRPath subset; what it
//! cannot evaluate is reported as "not evaluated"), profiles named in `meta.profile` and the
//! jurisdiction's profile for each type, and slicing (closed slicing included). Must-support is
//! never an error.
//!
//! The same definitions drive [`xml`], the FHIR XML format (`application/fhir+xml`) to and from
//! JSON.
//!
//! ```
//! use halo_model::fhir::RawResource;
//! use halo_validation::Validator;
//!
//! let validator = Validator::with_embedded_definitions();
//! let observation = RawResource::from_slice(br#"{
//!     "resourceType": "Observation", "status": "final",
//!     "code": {"text": "weight"}, "subject": {"reference": "Patient/1"},
//!     "valueQuantiy": {"value": 70}
//! }"#).unwrap();
//! let report = validator.validate(&observation);
//! let issue = report.errors().next().unwrap();
//! assert_eq!(issue.expression[0], "Observation.valueQuantiy");
//! assert!(issue.message().contains("did you mean `valueQuantity`?"));
//! let outcome = report.to_outcome();
//! assert!(outcome.has_errors());
//! ```

mod definitions;
mod fhirpath;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod model;
mod options;
mod primitives;
mod report;
mod terminology;
mod tree;
mod validator;
mod values;
mod walk;
pub mod xml;

pub use definitions::{DefinitionError, Definitions, InvariantInfo};
pub use options::{NOALLERGY_INTENDED, ValidatorOptions};
pub use report::{NotEvaluated, ValidationReport, rules};
pub use validator::Validator;
