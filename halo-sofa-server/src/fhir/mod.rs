//! FHIR server pieces: the resource validator seam, the CapabilityStatement, the write path's
//! notification seam and the resource server ([`resources`]).

mod metadata;
pub mod notify;
pub mod resources;
mod validator;

pub use metadata::{Capabilities, OperationCapability, ResourceCapability, SearchParam};
pub use notify::{
    ChangeAction, ChangeNotifier, CommitDirectly, CommittedWrite, NotifyError, PreparedWrite,
    ResourceChange, WriteError,
};
pub use validator::{BasicValidator, ProfileValidator, ResourceValidator};
