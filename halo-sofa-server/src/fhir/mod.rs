//! FHIR server pieces: the resource validator seam and the CapabilityStatement. The resource
//! server (read, search, create, update) joins them here.

mod metadata;
mod validator;

pub use metadata::{Capabilities, OperationCapability, ResourceCapability, SearchParam};
pub use validator::{BasicValidator, ResourceValidator};
