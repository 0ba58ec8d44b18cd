//! # halo-poc
//!
//! The point-of-care (PoC) side of HALO: what an EMR embeds to launch SMART apps, in both HALO
//! architectures.
//!
//! - Plain SMART on FHIR (the EMR has its own FHIR and authorization server):
//!   [`launch_url`] (REQ LI-01) and [`PlainLauncher`] with an opaque [`LaunchId`] handed to
//!   the host's authorization server through [`LaunchContextSink`] (LI-02).
//! - SoFA (SMART on FHIR Accelerator): [`SofaLauncher`] decides the context from the App
//!   Catalog entry's scopes ([`plan_context`]), sends the EMR's resources ([`LocalResources`])
//!   with `$set-context`, records the id mapping ([`IdMapStore`], [`MemoryIdMap`]) and gives the
//!   launch URL (LI-03, LI-04); [`SofaLauncher::end`] calls `$clear-context` (LI-08).
//! - Notifications from the SoFA: [`SubscriptionManager`] (LI-05), [`NotificationReceiver`]
//!   with gap recovery and duplicate suppression, handing each [`Change`] to the host's
//!   [`ChangeSink`] (LI-06), [`Watchdog`] (LI-07), the rest-hook endpoint as an axum router
//!   (feature `axum`) and [`WebsocketConsumer`] (feature `websocket`, LI-09).
//! - Every call to the SoFA goes through [`SofaClient`] with a timeout and the PoC's token
//!   from a [`TokenSource`] ([`StaticToken`], or `BackendServicesTokens` with the feature
//!   `backend-services`). Every error is a [`PocError`] with a stable [`PocError::code`].
//!
//! The whole SoFA launch, end to end, is in `docs/emr-vendor-guide.md` and
//! `examples/sofa_launch.rs`.

use std::future::Future;
use std::pin::Pin;

mod context;
mod error;
mod idmap;
mod launch_url;
mod launcher;
mod plain;
mod random;
mod sofa;
mod subscription;
mod token;

pub use context::{ClinicalContext, ContextPlan, LocalResources, plan_context};
pub use error::{PocError, Result};
pub use idmap::{IdMapStore, IdMapping, MemoryIdMap, Retention};
pub use launch_url::launch_url;
pub use launcher::{ClearReport, PreparedContext, SofaLaunch, SofaLauncher};
pub use plain::{LAUNCH_ID_BYTES, LaunchContextSink, LaunchId, PlainLaunchContext, PlainLauncher};
pub use sofa::{HttpOptions, SofaClient};
pub use subscription::manager::{
    CurrentSubscription, RestHookSecret, SubscriptionManager, rest_hook_channel, websocket_channel,
};
pub use subscription::receiver::{
    Change, ChangeSink, NotificationReceiver, Receipt, ReceiverBuilder,
};
#[cfg(feature = "axum")]
pub use subscription::rest_hook;
pub use subscription::watchdog::{Watchdog, WatchdogVerdict};
#[cfg(feature = "websocket")]
pub use subscription::websocket::{Disconnect, WebsocketConsumer, WebsocketOptions};
#[cfg(feature = "backend-services")]
pub use token::{BackendServicesTokens, ClinicianTokens};
pub use token::{StaticToken, TokenSource};

/// The future the host-facing traits return: boxed so the traits can be used as
/// `Arc<dyn Trait>`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The guide `docs/emr-vendor-guide.md`, compiled so its examples stay true.
#[cfg(doctest)]
#[doc = include_str!("../../docs/emr-vendor-guide.md")]
pub struct EmrVendorGuide;

#[cfg(test)]
mod tests {
    /// The guide quotes the example file whole, so the two never drift apart.
    // REQ: EX-05
    #[test]
    fn the_guide_quotes_the_example() {
        let guide = include_str!("../../docs/emr-vendor-guide.md");
        let example = include_str!("../examples/sofa_launch.rs");
        assert!(guide.contains(example));
    }
}
