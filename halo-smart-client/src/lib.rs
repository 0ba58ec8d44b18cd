//! # halo-smart-client
//!
//! What a SMART app embeds to be launched by a HALO point-of-care system or SoFA: the EHR launch
//! (SMART App Launch 2.1), tokens, and FHIR access.
//!
//! The crate is a sans-IO protocol core — plain functions over plain values that parse the
//! launch, check discovery, build the authorize request and token requests, read token responses
//! and verify id_tokens — plus a thin HTTP shell ([`SmartClient`], feature `reqwest`, on by
//! default) that does the calls. Typed FHIR resources are behind the `fhir-model` feature, off by
//! default so that an app builds fast.
//!
//! Module map: [`launch`] (launch request, issuer policy), [`discovery`], [`authorize`] (state,
//! PKCE, URL and POST form), [`callback`], [`binding`] (the launch bound to its browser), [`store`] (pending launches), [`token`] (requests and
//! client authentication), [`keys`] (signing keys), [`id_token`], [`session`], [`fhir`],
//! [`backend`] (client credentials), [`introspection`], [`error`].

pub mod authorize;
pub mod backend;
pub mod binding;
pub mod callback;
pub mod discovery;
pub mod error;
pub mod fhir;
pub mod id_token;
pub mod ids;
pub mod introspection;
pub mod keys;
pub mod launch;
pub mod secret;
pub mod session;
pub mod store;
pub mod token;

#[cfg(feature = "reqwest")]
mod client;

#[cfg(feature = "reqwest")]
pub use binding::BrowserBinding;
#[cfg(feature = "reqwest")]
pub use client::{ClientOptions, FhirClient, LaunchStart, Redirect, SessionHandle, SmartClient};
pub use error::{Result, SmartError};
pub use ids::{ClientId, RedirectUrl};
pub use launch::{ClientConfig, IssuerPolicy, LaunchRequest};
pub use secret::Secret;
pub use session::LaunchSession;
pub use token::ClientAuth;

#[cfg(test)]
mod guide_tests {
    /// The app developer guide quotes the minimal app whole; the example is compiled by cargo, so
    /// the guide's code compiles as long as the two stay equal.
    // REQ: EX-05
    #[test]
    fn the_guide_quotes_the_minimal_app() {
        let guide = include_str!("../../docs/smart-app-guide.md");
        let example = include_str!("../examples/minimal_app.rs");
        assert!(guide.contains(example.trim_end()));
    }
}
