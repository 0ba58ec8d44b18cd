//! `$clear-context` (REQ SC-11, D-02): delete the context, its resources (set through
//! `$set-context` or written by apps in the launch) and its grants, at once.

use halo_model::outcome::OperationOutcome;
use halo_model::set_context::{clear_context_output, parse_clear_context_input};
use serde_json::Value;

use super::{ContextManager, owns};
use crate::audit::{AuditAction, AuditOutcome};
use crate::auth::Caller;
use crate::error::SofaError;
use crate::store::Transaction;

/// What removing one launch took away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Removed {
    pub(super) resources: u64,
    pub(super) grants: u64,
}

/// Removes a launch with everything that hangs off it, inside the caller's transaction.
pub(super) async fn remove_launch(
    tx: &mut dyn Transaction,
    launch_id: &str,
) -> Result<Removed, SofaError> {
    // The launch row goes first: on a server database that waits for any write holding the
    // launch (the clear fence, REQ SYNC-05), so the resources deleted next include what that
    // write committed.
    tx.delete_launch(launch_id).await?;
    let resources = tx.delete_launch_resources(launch_id).await?;
    // REQ SC-12: tokens of the launch stop working with it.
    let grants = tx.revoke_launch_grants(launch_id).await?;
    Ok(Removed { resources, grants })
}

impl ContextManager {
    /// `$clear-context`: `body` is the parsed Parameters. Gives the D-02 success Parameters.
    pub async fn clear_context(&self, caller: &Caller, body: &Value) -> Result<Value, SofaError> {
        let mut launch = None;
        let result = self.clear_context_checked(caller, body, &mut launch).await;
        let outcome = match &result {
            Ok(_) => AuditOutcome::Success,
            Err(e) => AuditOutcome::Failure(e.status().as_u16()),
        };
        self.audit(
            Some(caller),
            AuditAction::ClearContext,
            launch,
            Vec::new(),
            outcome,
        )
        .await;
        result
    }

    async fn clear_context_checked(
        &self,
        caller: &Caller,
        body: &Value,
        audited_launch: &mut Option<String>,
    ) -> Result<Value, SofaError> {
        self.require_context_scope(caller)?;
        let launch_id =
            parse_clear_context_input(body).map_err(|e| SofaError::invalid(e.issues))?;
        let mut tx = self.store.begin().await?;
        // Unknown and someone else's look the same: the answer never reveals that a launch
        // id exists.
        let owned = tx
            .get_launch(&launch_id)
            .await?
            .is_some_and(|l| owns(caller, &l.client_id, l.user.as_deref()));
        if !owned {
            return Err(SofaError::not_found(
                "no launch context with this launchID exists for this client",
            ));
        }
        *audited_launch = Some(launch_id.clone());
        let removed = remove_launch(tx.as_mut(), &launch_id).await?;
        tx.commit().await?;
        Ok(clear_context_output(&[
            OperationOutcome::information("the launch context was deleted"),
            OperationOutcome::information(format!(
                "{} resource(s) of the launch were deleted and {} grant(s) revoked",
                removed.resources, removed.grants
            )),
        ]))
    }
}
