//! # halo-catalog
//!
//! The HALO App Catalog: the JSON list of approved SMART apps a jurisdiction publishes.
