//! An app's create, update or delete as a [`PreparedWrite`]: prepared under the notifier's
//! per-PoC serialisation, committed with the delivered events in one transaction (D-08).

use std::sync::Arc;

use axum::http::StatusCode;
use halo_model::fhir::RawResource;
use halo_model::outcome::{IssueType, OperationOutcome};

use super::access::{Reach, in_compartment};
use crate::clock::Clock;
use crate::error::SofaError;
use crate::fhir::notify::{ChangeAction, CommittedWrite, PreparedWrite, ResourceChange};
use crate::store::{
    BoxFuture, EventRecord, NewResource, Store, StoreError, StoredResource, Transaction, stamp_meta,
};

/// 412: `If-Match` named another version (REQ RS-04).
pub(crate) fn precondition_failed(expected: u64, found: u64) -> SofaError {
    SofaError::new(
        StatusCode::PRECONDITION_FAILED,
        OperationOutcome::error(
            IssueType::Conflict,
            format!("If-Match names version {expected}, but the current version is {found}"),
        ),
    )
}

/// One app write.
pub(crate) struct AppWrite {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) launch_id: String,
    pub(crate) poc_client_id: String,
    pub(crate) app_client_id: String,
    pub(crate) action: ChangeAction,
    pub(crate) resource_type: String,
    pub(crate) id: String,
    /// The new content (create and update).
    pub(crate) resource: Option<RawResource>,
    /// `If-Match`.
    pub(crate) expected_version: Option<u64>,
    pub(crate) reach: Reach,
    prepared: Option<Prepared>,
}

struct Prepared {
    change: ResourceChange,
    current: Option<StoredResource>,
    last_updated: chrono::DateTime<chrono::Utc>,
}

impl AppWrite {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        launch_id: String,
        poc_client_id: String,
        app_client_id: String,
        action: ChangeAction,
        resource_type: String,
        id: String,
        resource: Option<RawResource>,
        expected_version: Option<u64>,
        reach: Reach,
    ) -> AppWrite {
        AppWrite {
            store,
            clock,
            launch_id,
            poc_client_id,
            app_client_id,
            action,
            resource_type,
            id,
            resource,
            expected_version,
            reach,
            prepared: None,
        }
    }

    async fn prepare_change(&mut self) -> Result<ResourceChange, SofaError> {
        // A create's id is new (the server made it): there is nothing to read.
        let current = if self.action == ChangeAction::Create {
            None
        } else {
            let (resource_type, id) = (self.resource_type.clone(), self.id.clone());
            self.store
                .read(move |tx| {
                    Box::pin(async move { tx.read_resource(&resource_type, &id).await })
                })
                .await?
        };
        // Another launch's resource, or one outside a patient/ grant, is answered like a
        // missing one: its existence is not revealed (D-10).
        let current = current.filter(|stored| {
            stored.launch_id.as_deref() == Some(self.launch_id.as_str())
                && match &self.reach {
                    Reach::Launch => true,
                    Reach::Compartment(patient) => in_compartment(&stored.resource, patient),
                }
        });
        let version = match (self.action, &current) {
            (ChangeAction::Create, _) => 1,
            (_, None) => {
                return Err(SofaError::not_found(format!(
                    "{}/{} is not found",
                    self.resource_type, self.id
                )));
            }
            (action, Some(stored)) => {
                if let Some(expected) = self.expected_version
                    && expected != stored.version
                {
                    return Err(precondition_failed(expected, stored.version));
                }
                if action == ChangeAction::Delete {
                    stored.version
                } else {
                    stored.version + 1
                }
            }
        };
        let now = self.clock.now();
        let resource = self.resource.clone().map(|mut r| {
            r.set_id(self.id.clone());
            stamp_meta(&mut r, version, now);
            r
        });
        let change = ResourceChange {
            launch_id: self.launch_id.clone(),
            poc_client_id: self.poc_client_id.clone(),
            app_client_id: self.app_client_id.clone(),
            action: self.action,
            resource_type: self.resource_type.clone(),
            id: self.id.clone(),
            version,
            resource,
            before: current.as_ref().map(|stored| stored.resource.clone()),
        };
        self.prepared = Some(Prepared {
            change: change.clone(),
            current,
            last_updated: now,
        });
        Ok(change)
    }
}

impl PreparedWrite for AppWrite {
    fn poc_client_id(&self) -> &str {
        &self.poc_client_id
    }

    fn prepare(&mut self) -> BoxFuture<'_, Result<ResourceChange, SofaError>> {
        Box::pin(self.prepare_change())
    }

    fn commit(
        self: Box<Self>,
        events: Vec<EventRecord>,
    ) -> BoxFuture<'static, Result<CommittedWrite, SofaError>> {
        Box::pin(async move {
            let mut this = self;
            let prepared = this
                .prepared
                .take()
                .ok_or_else(|| SofaError::internal("the write was committed before prepare"))?;
            let store = this.store.clone();
            store
                .write(move |tx| Box::pin(this.commit_in(tx, prepared, events)))
                .await
        })
    }
}

impl AppWrite {
    /// The write itself, in the unit that commits it with its events.
    async fn commit_in(
        self: Box<Self>,
        tx: &mut dyn Transaction,
        prepared: Prepared,
        events: Vec<EventRecord>,
    ) -> Result<CommittedWrite, SofaError> {
        // The clear fence: the launch is read, and so held, in this transaction. A
        // `$clear-context` that went first leaves nothing to write into (REQ SYNC-05).
        if tx.get_launch(&self.launch_id).await?.is_none() {
            return Err(crate::fhir::notify::launch_cleared());
        }
        let stored = match (self.action, prepared.change.resource.clone()) {
            (ChangeAction::Create, Some(resource)) => {
                tx.create_resource(NewResource {
                    resource,
                    launch_id: Some(self.launch_id.clone()),
                    last_updated: prepared.last_updated,
                })
                .await?
            }
            (ChangeAction::Update, Some(resource)) => {
                let expected = prepared.current.as_ref().map(|c| c.version);
                tx.update_resource(
                    NewResource {
                        resource,
                        launch_id: Some(self.launch_id.clone()),
                        last_updated: prepared.last_updated,
                    },
                    expected,
                )
                .await
                .map_err(|e| match e {
                    StoreError::VersionConflict {
                        expected, found, ..
                    } => precondition_failed(expected, found),
                    other => SofaError::store(other),
                })?
            }
            (ChangeAction::Delete, _) => {
                tx.delete_resource(&self.resource_type, &self.id).await?;
                prepared
                    .current
                    .ok_or_else(|| SofaError::not_found("the resource is gone"))?
            }
            _ => return Err(SofaError::internal("a write without content")),
        };
        // The delivered events turn `committed` in this same transaction, so the data and
        // the events' fate commit or roll back together (REQ SYNC-04).
        crate::fhir::notify::commit_events(tx, &events).await?;
        Ok(CommittedWrite {
            stored,
            action: self.action,
        })
    }
}
