//! # halo-catalog
//!
//! The HALO App Catalog: the JSON list of approved SMART apps a jurisdiction publishes at
//! `GET [base]`, and what a point of care (PoC) needs to do with it.
//!
//! - [`Catalog`], [`AppEntry`], [`Contact`], [`Publisher`]: typed entries with every field of the
//!   HALO tables under its camelCase name; unknown fields survive a round trip.
//! - [`Catalog::parse`], [`validate_catalog`], [`validate_entry`]: every rule of the catalog
//!   tables, reported as [`Finding`]s with a severity, a stable [`Code`], a JSON path and a
//!   message.
//! - [`AppEntry::localized`]: bilingual metadata (decision D-11).
//! - [`analysis`]: the launch context a PoC must set in `$set-context` for an app, the resource
//!   types the app may touch, and whether a PoC can serve it.
//! - [`Query`]: find entries by tag, text and enrolment.
//! - `CatalogClient` (feature `client`): fetch a catalog over HTTP with a timeout.
//!
//! ```
//! use halo_catalog::{Catalog, Mode};
//!
//! let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/catalog.json"))?;
//! let parsed = Catalog::parse(&bytes, Mode::Strict)?;
//! let app = parsed.catalog.get("fcf9956c-f952-40e0-8e24-a65d56118db2").ok_or("no such app")?;
//! assert_eq!(app.name, "Heart Health Monitor");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod analysis;
#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "client")]
mod client;
mod finding;
mod localize;
mod model;
mod parse;
mod path;
mod query;
mod validate;

#[cfg(feature = "client")]
pub use client::{CatalogClient, ClientError, DEFAULT_MAX_BODY, DEFAULT_TIMEOUT};
pub use finding::{Code, Finding, Report, Severity};
pub use localize::Localized;
pub use model::{AppEntry, Catalog, Contact, Publisher, Translation, Translations};
pub use parse::{CatalogError, Mode, Parsed};
pub use query::{Query, fold};
pub use validate::{validate_catalog, validate_entry};
