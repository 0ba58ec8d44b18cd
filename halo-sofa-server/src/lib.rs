//! # halo-sofa-server
//!
//! The building blocks of a SMART on FHIR Accelerator (SoFA) server: the jurisdiction's server
//! a PoC without its own FHIR server or IdP launches SMART apps through (HALO CA:SoFA).
//!
//! A host supplies the pieces it wants to swap, each behind one trait with a default:
//!
//! | seam | trait | defaults |
//! |---|---|---|
//! | storage | [`store::Store`] / [`store::Transaction`] | [`store::SqliteStore`] (embedded, default), [`store::MemoryStore`] (tests) |
//! | bearer-token check | [`auth::TokenValidator`] | [`auth::StaticTokens`] (tests, development) |
//! | resource validation | [`fhir::ResourceValidator`] | [`fhir::BasicValidator`] (type supported + R4 parse) |
//! | audit | [`audit::AuditSink`] | [`audit::TracingAuditSink`] (structured log lines), [`audit::MemoryAuditSink`] |
//! | clock | [`clock::Clock`] | [`clock::SystemClock`], [`clock::ManualClock`] |
//!
//! [`sofa::SofaBuilder`] assembles them into a [`sofa::Sofa`], taking each part once and handing
//! it to every service that needs it; [`sofa::Sofa::router`] is an axum `Router` the host nests
//! under its FHIR base path. The store is required (no silent in-memory fallback), and so is a
//! change notifier once the resource server is on (the subscriptions give theirs);
//! [`sofa::SofaBuilder::build`] names a missing part.
//!
//! The smallest complete SoFA, setting a context: the context operations, the resource server,
//! the subscriptions that tell the PoC of every app write before it commits, and
//! `Prefer: respond-async`. A real one opens `SqliteStore::open("sofa.db")` or a
//! `PostgresStore`, mounts an [`auth::AuthServer`] with
//! [`authorization`](sofa::SofaBuilder::authorization), and serves the router.
//!
//! ```
//! use std::sync::Arc;
//! use axum::body::Body;
//! use axum::http::{Request, StatusCode};
//! use halo_sofa_server::auth::{Caller, StaticTokens};
//! use halo_sofa_server::subscriptions::SubscriptionSettings;
//! use halo_sofa_server::{config::SofaConfig, sofa::Sofa, store::MemoryStore};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = SofaConfig::new("https://sofa.example.org/fhir")?;
//! // A PoC needs an active subscription before it may set a context (REQ SC-08); this one has
//! // none yet, so the example turns the check off.
//! config.require_active_subscription = false;
//! let tokens = StaticTokens::new().with(
//!     "poc-token",
//!     Caller::new("poc", Some("dr-a"), "Context.write"),
//! );
//! let sofa = Sofa::builder(config)
//!     .store(Arc::new(MemoryStore::new()))
//!     .token_validator(Arc::new(tokens))
//!     .resource_server()
//!     .subscriptions(SubscriptionSettings::default())
//!     .async_jobs()
//!     .build()?;
//! let tasks = sofa.spawn_tasks();
//!
//! let parameters = r#"{"resourceType": "Parameters", "parameter": [
//!     {"name": "patient", "valueReference": {"reference": "urn:uuid:9d4c6b43-2c4f-4d8b-9a3e-1c0e6a7b8c9d"}},
//!     {"name": "resources", "resource": {"resourceType": "Bundle", "type": "transaction", "entry": [
//!         {"fullUrl": "urn:uuid:9d4c6b43-2c4f-4d8b-9a3e-1c0e6a7b8c9d",
//!          "resource": {"resourceType": "Patient", "gender": "male"},
//!          "request": {"method": "POST", "url": "Patient"}}]}}]}"#;
//! let request = Request::post("/$set-context")
//!     .header("authorization", "Bearer poc-token")
//!     .header("content-type", "application/fhir+json")
//!     .body(Body::from(parameters))?;
//! let answer = sofa.router().oneshot(request).await?;
//! assert_eq!(answer.status(), StatusCode::OK);
//!
//! sofa.shutdown().await;
//! tasks.iter().for_each(|task| task.abort());
//! # Ok(()) }
//! ```
//!
//! A builder missing its store says so:
//!
//! ```
//! use halo_sofa_server::{config::SofaConfig, sofa::{BuildError, Sofa}};
//!
//! let built = Sofa::builder(SofaConfig::new("https://sofa.example.org/fhir").unwrap()).build();
//! assert_eq!(built.err(), Some(BuildError::MissingStore));
//! ```

pub mod asynchronous;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod config;
pub mod context;
pub mod cors;
pub mod error;
pub mod fhir;
pub mod health;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod outbound;
mod pages;
pub mod protect;
pub mod resources;
pub mod sofa;
pub mod store;
pub mod subscriptions;
pub mod tls;

/// The code of `docs/sofa-implementer-guide.md`, compiled and run as doc tests so the guide
/// cannot drift from the API.
// REQ: EX-05
#[cfg(doctest)]
#[doc = include_str!("../../docs/sofa-implementer-guide.md")]
pub struct ImplementerGuide;
