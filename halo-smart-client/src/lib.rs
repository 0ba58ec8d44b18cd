//! # halo-smart-client
//!
//! What a SMART app (and a PoC launching apps) embeds to speak HALO.
