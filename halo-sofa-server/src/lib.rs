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
//! [`http::SofaBuilder`] assembles them into a [`http::Sofa`], whose [`http::Sofa::router`] is an
//! axum `Router` the host nests under its FHIR base path.
//!
//! ```no_run
//! use std::sync::Arc;
//! use halo_sofa_server::{auth::StaticTokens, config::SofaConfig, http::Sofa, store::SqliteStore};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Arc::new(SqliteStore::open("sofa.db").await?);
//! let sofa = Sofa::builder(SofaConfig::new("https://sofa.example.org/fhir")?)
//!     .store(store)
//!     .token_validator(Arc::new(StaticTokens::new()))
//!     .build();
//! let _purge = sofa.spawn_purge_task();
//! let app = axum::Router::new().nest("/fhir", sofa.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
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
pub mod store;
pub mod subscriptions;
pub mod tls;

/// The code of `docs/sofa-implementer-guide.md`, compiled and run as doc tests so the guide
/// cannot drift from the API.
// REQ: EX-05
#[cfg(doctest)]
#[doc = include_str!("../../docs/sofa-implementer-guide.md")]
pub struct ImplementerGuide;
