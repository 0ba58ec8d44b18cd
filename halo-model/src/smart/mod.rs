//! SMART App Launch 2.1 documents: `.well-known/smart-configuration`, the token response, the
//! launch context with its `fhirContext` items, and the token introspection response.
//!
//! Every document reads leniently (the forms deployed servers and the specification's own
//! examples really send), keeps unknown keys, and writes the SMART 2.1 form. Bad input gives a
//! [`SmartDocumentError`] naming the document and field, never a panic.
//!
//! ```
//! use halo_model::smart::{Capability, SmartConfiguration, TokenResponse};
//!
//! // Discovery: read, make endpoints absolute, check SMART's requirements.
//! let mut config = SmartConfiguration::from_json(br#"{
//!     "authorization_endpoint": "https://ehr.example.org/auth/authorize",
//!     "token_endpoint": "https://ehr.example.org/auth/token",
//!     "grant_types_supported": ["authorization_code"],
//!     "capabilities": ["launch-ehr", "client-confidential-asymmetric", "context-ehr-patient"],
//!     "code_challenge_methods_supported": ["S256"],
//!     "x-vendor-flag": true
//! }"#)?;
//! config.resolve_endpoints(&"https://ehr.example.org/fhir".parse()?);
//! assert!(config.validate().is_ok());
//! assert!(config.supports(&Capability::ClientConfidentialAsymmetric));
//! assert_eq!(config.extra["x-vendor-flag"], true);
//!
//! // Token response: typed context, 2.0-style `fhirContext` strings accepted.
//! let token = TokenResponse::from_json(br#"{
//!     "access_token": "opaque", "token_type": "Bearer", "expires_in": 300,
//!     "scope": "launch openid fhirUser patient/*.rs", "patient": "123",
//!     "fhirContext": ["Encounter/9", {"reference": "List/7", "role": "https://example.org/home"}]
//! }"#)?;
//! let context = token.launch_context();
//! assert_eq!(context.patient_id(), Some("123"));
//! assert_eq!(context.fhir_context[0].reference.as_deref(), Some("Encounter/9"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod capability;
pub mod configuration;
pub mod context;
mod error;
mod fields;
pub mod introspection;
pub mod token;

pub use configuration::{AssociatedEndpoint, Capability, ConfigurationProblem, SmartConfiguration};
pub use context::{FhirContextItem, LaunchContext};
pub use error::SmartDocumentError;
pub(crate) use error::describe as describe_json;
pub use introspection::{Audience, IntrospectionResponse};
pub use token::TokenResponse;

#[cfg(test)]
mod tests;
