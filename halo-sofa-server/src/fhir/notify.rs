//! The write path's notification step: the seam between the resource server (which prepares and
//! commits an app's write) and the subscriptions (which deliver it to the PoC first).
//!
//! HALO's rule is deliver before commit (decision D-08): an app's create, update or delete in a
//! launch commits only once every required notification to the PoC that owns the launch is
//! acknowledged. The resource server describes the write as a [`PreparedWrite`] and hands it to
//! the host's [`ChangeNotifier`], which decides the order of events:
//!
//! 1. [`PreparedWrite::prepare`] reads the current state and builds the [`ResourceChange`] (new id
//!    or next version, the resource as it will be stored). The notifier calls it while it holds
//!    whatever serialises writes of that PoC, so the version and the event numbers it allocates
//!    cannot race another write of the same PoC.
//! 2. The notifier delivers the change and waits for the acknowledgements, holding no storage
//!    lock, so a slow endpoint of one PoC never blocks another PoC's writes (SUB-12).
//! 3. [`PreparedWrite::commit`] writes the change and marks the delivered events committed in
//!    one storage transaction. A version conflict at this point cannot happen for writes that go through the
//!    notifier, because step 1 ran under the same serialisation.
//!
//! If delivery fails the notifier never calls `commit`, so the data does not change and the app
//! gets [`NotifyError`]'s answer; the PoC, which may have applied the change, is sent a
//! compensating event carrying [`ResourceChange::before`] (D-16).
//!
//! [`CommitDirectly`] is the notifier for a server without subscriptions: it prepares and commits
//! at once.

use std::fmt;

use halo_model::fhir::RawResource;

use halo_model::outcome::{IssueType, OperationOutcome};

use crate::error::SofaError;
use crate::store::{BoxFuture, EventRecord, EventState, StoredResource, Transaction};

/// What an app's write does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeAction {
    /// A create.
    Create,
    /// An update.
    Update,
    /// A delete.
    Delete,
}

impl ChangeAction {
    /// The FHIR `Bundle.entry.request.method` of this action.
    pub fn method(self) -> &'static str {
        match self {
            ChangeAction::Create => "POST",
            ChangeAction::Update => "PUT",
            ChangeAction::Delete => "DELETE",
        }
    }
}

/// A prepared change to one resource, as the PoC will be told of it.
#[derive(Clone)]
pub struct ResourceChange {
    /// The launch the write belongs to.
    pub launch_id: String,
    /// The PoC client that owns the launch (it set the context): the one to notify.
    pub poc_client_id: String,
    /// The app client that made the write.
    pub app_client_id: String,
    /// Create, update or delete.
    pub action: ChangeAction,
    /// `resourceType`.
    pub resource_type: String,
    /// The resource id.
    pub id: String,
    /// The version the write produces (for a delete, the version deleted).
    pub version: u64,
    /// The resource as it will be stored, `meta.versionId` and `meta.lastUpdated` set; `None`
    /// for a delete.
    pub resource: Option<RawResource>,
    /// The committed resource before the write; `None` for a create. If the write does not
    /// commit after its notification may have left, the PoC is sent this back (D-16).
    pub before: Option<RawResource>,
}

impl ResourceChange {
    /// `Type/id`.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.resource_type, self.id)
    }
}

impl fmt::Debug for ResourceChange {
    // Health data stays out of logs: the resource is named, not shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceChange")
            .field("launch_id", &"<redacted>")
            .field("poc_client_id", &self.poc_client_id)
            .field("app_client_id", &self.app_client_id)
            .field("action", &self.action)
            .field("resource", &self.reference())
            .field("version", &self.version)
            .finish()
    }
}

/// The result of a committed write.
#[derive(Debug, Clone)]
pub struct CommittedWrite {
    /// The stored resource after the write (for a delete, the last version before it).
    pub stored: StoredResource,
    /// The action that was committed.
    pub action: ChangeAction,
}

/// An app's write, prepared by the resource server and committed by the notifier.
pub trait PreparedWrite: Send {
    /// The PoC client that owns the launch; the notifier serialises writes per PoC.
    fn poc_client_id(&self) -> &str;

    /// Reads the current state and builds the change. Called under the notifier's per-PoC
    /// serialisation; may fail (not found, version conflict on `If-Match`...).
    fn prepare(&mut self) -> BoxFuture<'_, Result<ResourceChange, SofaError>>;

    /// Writes the prepared change in one storage transaction with the settling of `events`
    /// (the delivered notifications, logged `pending`; see
    /// [`commit_events`]), and only if the launch is
    /// still there (REQ SYNC-05).
    fn commit(
        self: Box<Self>,
        events: Vec<EventRecord>,
    ) -> BoxFuture<'static, Result<CommittedWrite, SofaError>>;
}

/// Why a write was not committed for want of a delivered notification. The resource server
/// turns it into the answer of decision D-08.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    /// The PoC that owns the launch has no active subscription: 409 `business-rule`.
    #[error("the point of care that owns this launch has no active subscription to be notified")]
    NoActiveSubscription,
    /// A required delivery failed or timed out: 503 with `Retry-After`, `transient`.
    // The app learns only that the EMR could not be reached: which subscription failed and
    // what its endpoint answered are the PoC's business, logged, never sent (REQ HARD-03).
    #[error("the point of care could not be notified of this change; try again later")]
    DeliveryFailed {
        /// What failed, for the log and the host (not sent to the app).
        reason: String,
        /// Seconds the app should wait before retrying.
        retry_after_seconds: u32,
    },
}

/// The host's notification step (see the module documentation).
pub trait ChangeNotifier: Send + Sync + 'static {
    /// Prepares `write`, delivers the change to every required subscription, and commits the
    /// write only when all are acknowledged.
    fn deliver_then_commit(
        &self,
        write: Box<dyn PreparedWrite>,
    ) -> BoxFuture<'_, Result<CommittedWrite, WriteError>>;
}

/// Why a write through a [`ChangeNotifier`] failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Preparing or committing the write failed (not found, conflict, storage...).
    #[error(transparent)]
    Write(#[from] SofaError),
    /// The notification step refused the write.
    #[error(transparent)]
    Notify(#[from] NotifyError),
}

/// The notifier of a server without subscriptions: prepares and commits at once, notifying no
/// one. A SoFA must not use it (HALO requires deliver before commit); it serves tests of the
/// resource server and FHIR servers that are not SoFAs.
#[derive(Debug, Clone, Copy, Default)]
pub struct CommitDirectly;

impl ChangeNotifier for CommitDirectly {
    fn deliver_then_commit(
        &self,
        mut write: Box<dyn PreparedWrite>,
    ) -> BoxFuture<'_, Result<CommittedWrite, WriteError>> {
        Box::pin(async move {
            write.prepare().await?;
            Ok(write.commit(Vec::new()).await?)
        })
    }
}

/// Marks a write's delivered events `committed` inside the write's transaction. Each must still
/// be `pending`: one that is not was compensated already (the write took longer than the
/// outbox worker was willing to wait, or the process that logged it is gone), and the write is
/// refused rather than commit data the PoC was told did not happen (REQ SYNC-04).
pub async fn commit_events(
    tx: &mut dyn Transaction,
    events: &[EventRecord],
) -> Result<(), SofaError> {
    for event in events {
        let moved = tx
            .transition_event(
                &event.subscription_id,
                event.event_number,
                EventState::Pending,
                EventState::Committed,
            )
            .await?;
        if !moved {
            return Err(SofaError::conflict(format!(
                "event {} of Subscription/{} was settled before the write could commit",
                event.event_number, event.subscription_id
            )));
        }
    }
    Ok(())
}

/// 410: the launch was cleared while the write waited for its notification (REQ SYNC-05).
pub(crate) fn launch_cleared() -> SofaError {
    SofaError::new(
        axum::http::StatusCode::GONE,
        OperationOutcome::error(
            IssueType::Deleted,
            "the launch context was cleared while this write was in progress; nothing was written",
        ),
    )
}
