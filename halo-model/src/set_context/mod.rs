//! HALO `$set-context` and `$clear-context`: the four HALO profiles as typed builders,
//! parsers and validators, on raw JSON so resources pass through unchanged.
//!
//! - SetContextInputParameters: [`SetContextRequest`] (read and validate with
//!   [`SetContextRequest::parse`], write with [`SetContextRequest::to_json`] or
//!   [`SetContextBuilder`]). Exactly the parameter names of decision D-03 ([`names`]).
//! - SetContextTransactionBundle: [`ContextEntry`], [`transaction_bundle`]; entry types are
//!   limited by [`SupportedTypes`] (D-14 by default).
//! - SetContextOutputParameters and SetContextTransactionResponseBundle: [`SetContextOutput`],
//!   [`EntryResult`], [`transaction_response_bundle`].
//! - `$clear-context`: [`clear_context_input`], [`parse_clear_context_input`],
//!   [`clear_context_output`], [`ClearContextOutput`] (both D-02 shapes).
//! - References: [`references_in`] and [`rewrite_urn_uuid_references`] (REQ SC-05).
//!
//! Validation reports every problem at once, each with a FHIRPath-style expression, as
//! [`ValidationErrors`], which becomes one OperationOutcome.
//!
//! ```
//! use halo_model::set_context::{
//!     ContextReference, EntryResult, SetContextBuilder, SetContextOutput, SetContextRequest,
//!     ValidationOptions,
//! };
//! use serde_json::json;
//!
//! // PoC: local resources get urn:uuid fullUrls; context parameters point at them.
//! let mut builder = SetContextBuilder::new();
//! let patient = builder.add_resource(json!({"resourceType": "Patient", "gender": "female"}))?;
//! let encounter = builder.add_resource(json!({
//!     "resourceType": "Encounter",
//!     "status": "in-progress",
//!     "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
//!     "subject": patient.to_json()
//! }))?;
//! builder
//!     .app_id("459-L")
//!     .patient(patient)
//!     .encounter(encounter)
//!     .fhir_user(ContextReference::existing("PractitionerRole", "pr-1"))
//!     .need_patient_banner(true);
//! let body = builder.build_checked(&ValidationOptions::default())?;
//!
//! // SoFA: parse and validate, store, answer.
//! let request = SetContextRequest::parse(&body, &ValidationOptions::default())?;
//! assert_eq!(request.resources.len(), 2);
//! assert_eq!(request.existing_references()[0].1.reference, "PractitionerRole/pr-1");
//! let answer = SetContextOutput {
//!     launch_id: "AbCdEf".into(),
//!     resources_response: Some(vec![
//!         EntryResult::created("Patient", "p1", "2024-01-15T10:00:00Z"),
//!         EntryResult::created("Encounter", "e1", "2024-01-15T10:00:00Z"),
//!     ]),
//! }
//! .to_json();
//!
//! // PoC: read the answer and keep the id map.
//! let output = SetContextOutput::parse(&answer)?;
//! let ids = output.id_map(builder.full_urls()).unwrap_or_default();
//! assert_eq!(ids[builder.full_urls()[1]], "Encounter/e1");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod builder;
mod bundle;
mod clear;
mod findings;
pub mod names;
mod output;
mod references;
mod request;
mod resource_types;

pub use builder::{BuildError, SetContextBuilder};
pub use bundle::{ContextEntry, transaction_bundle};
pub use clear::{
    ClearContextOutput, ClearContextShape, clear_context_input, clear_context_output,
    is_valid_launch_id, parse_clear_context_input,
};
pub(crate) use findings::Findings;
pub use findings::ValidationErrors;
pub use output::{EntryResult, SetContextOutput, transaction_response_bundle};
pub use references::{
    FoundReference, ReferenceKind, Rewrite, classify_reference, is_urn_uuid, references_in,
    rewrite_urn_uuid_references,
};
pub use request::{ContextReference, SetContextRequest};
pub use resource_types::{
    D14_SUPPORTED_TYPES, SupportedTypes, ValidationOptions, is_r4_resource_type,
};

/// The guide `docs/set-context-and-notifications.md`, compiled so its examples stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/set-context-and-notifications.md")]
pub struct SetContextAndNotificationsGuide;
