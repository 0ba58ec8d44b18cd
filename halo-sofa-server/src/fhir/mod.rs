//! FHIR server pieces: the resource validator seam and the CapabilityStatement. The resource
//! server (read, search, create, update) joins them here.

mod metadata;
pub mod notify;
mod validator;

pub use metadata::{Capabilities, OperationCapability, ResourceCapability, SearchParam};
pub use notify::{
    ChangeAction, ChangeNotifier, CommitDirectly, CommittedWrite, NotifyError, PreparedWrite,
    ResourceChange, WriteError,
};
pub use validator::{BasicValidator, ProfileValidator, ResourceValidator};
