//! FHIR pieces every service shares: the resource validator seam, the CapabilityStatement, and
//! the write path's notification seam ([`notify`]). The resource server itself is
//! [`crate::resources`].

mod metadata;
pub mod notify;
mod validator;

pub use metadata::{Capabilities, OperationCapability, ResourceCapability, SearchParam};
pub use notify::{
    ChangeAction, ChangeNotifier, CommitDirectly, CommittedWrite, NotifyError, PreparedWrite,
    ResourceChange, WriteError,
};
pub use validator::{BasicValidator, ProfileValidator, ResourceValidator};
