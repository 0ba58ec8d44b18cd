//! # halo-model
//!
//! The protocol documents and FHIR shapes of HALO, the pan-Canadian profile of SMART on FHIR.
//! Everything here is plain data and pure functions: no network, no files, no clock unless passed
//! in. Both sides of HALO use it: SMART apps and PoCs (through `halo-smart-client`) and SoFA
//! servers (through `halo-sofa-server`).

pub mod canonical;
pub mod fhir;
pub mod oauth;
pub mod outcome;
pub mod scope;
pub mod set_context;
pub mod smart;
pub mod subscription;
