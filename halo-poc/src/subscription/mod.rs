//! The PoC's subscription to the SoFA Content Update topic and the notifications it brings.

pub(crate) mod manager;
pub(crate) mod receiver;
#[cfg(feature = "axum")]
pub mod rest_hook;
mod tracker;
pub(crate) mod watchdog;
#[cfg(feature = "websocket")]
pub(crate) mod websocket;
