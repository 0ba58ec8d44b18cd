//! SMART App Launch 2.1 scopes: grammar, v1 mapping, scope sets.
//!
//! [`Scope::parse`] reads one scope; [`ScopeSet::parse`] reads the space-separated OAuth `scope`
//! value. Every scope displays exactly as it was written, so a v1 request (`patient/*.read`) can
//! be echoed back as v1 while access questions use its v2 meaning (`patient/*.rs`).
//!
//! How this module reads the spec where it leaves room:
//!
//! - **Strict grammar.** Out-of-order, repeated or unknown permission letters (`.sr`, `.rrs`,
//!   `.rx`) are errors rather than being ignored or defaulted, as the spec allows a server to do.
//!   Resource type names must look like FHIR's (`[A-Z][A-Za-z]+`). A scope with a character
//!   OAuth forbids in scope tokens is an error.
//! - **Recognised scopes.** Besides SMART's own, the OpenID Connect standard scopes `email`,
//!   `address` and `phone` (siblings of `profile`, granted by the public HALO implementation)
//!   and HALO's `Context.write` (decision D-06) are recognised. Everything else that is not an
//!   extension scope (absolute URI, or `__` prefix) is an error; [`ScopeSet::parse_lenient`]
//!   reads a granted scope string without failing on such a scope.
//! - **Levels are separate.** [`ScopeSet::permits`] answers for one level: `user/` and `system/`
//!   scopes never grant `patient/` access and the reverse.
//! - **Queries restrict.** A scope with `?param=value` grants only matching resources, so it never
//!   makes [`ScopeSet::permits`] true; [`ScopeSet::access`] returns the queries instead.
//!
//! ```
//! use halo_model::scope::{Interaction, Level, Scope, ScopeSet};
//!
//! let granted = ScopeSet::parse("launch/patient patient/Observation.rs patient/*.read openid")?;
//! assert!(granted.permits(Level::Patient, "Observation", Interaction::Search));
//! assert!(granted.permits(Level::Patient, "Condition", Interaction::Read)); // from `*.read`
//! assert!(!granted.permits(Level::Patient, "Condition", Interaction::Create));
//! assert!(!granted.permits(Level::User, "Observation", Interaction::Read)); // other level
//! assert_eq!(granted.context_types(), ["Patient"]);
//! assert_eq!(granted.to_string(), "launch/patient patient/Observation.rs patient/*.read openid");
//!
//! let requested = ScopeSet::parse("patient/Observation.cruds openid fhirUser")?;
//! assert_eq!(requested.not_granted(&granted).to_string(), "patient/Observation.cud fhirUser");
//! assert!(Scope::parse("patient/Observation.sr").is_err()); // out of order
//! # Ok::<(), halo_model::scope::ScopeError>(())
//! ```

mod context;
mod error;
mod fhir_types;
mod permissions;
mod resource;
mod set;
mod single;
mod wire;

#[cfg(test)]
mod fixture_tests;
#[cfg(test)]
mod proptests;

pub use context::ContextScope;
pub use error::ScopeError;
pub use permissions::{Interaction, Permissions};
pub use resource::{
    Level, PermissionSyntax, QueryParam, ResourceScope, ResourceType, V1Permission,
};
pub use set::{Access, ScopeSet};
pub use single::{HALO_CONTEXT_WRITE, Scope};
