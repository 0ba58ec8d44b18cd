//! # halo-sofa-server
//!
//! The building blocks of a SMART on FHIR Accelerator (SoFA) server.
