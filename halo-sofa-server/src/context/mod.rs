//! The Context Manager (HALO CA:SoFA): `$set-context`, `$clear-context` and the purge of
//! expired contexts. Plain async functions over parsed JSON and a [`Caller`]; the HTTP layer
//! only authenticates, reads the body and renders the answer.

mod clear;
mod launch_id;
mod purge;
mod set;

use std::sync::Arc;

use halo_model::outcome::{Issue, IssueType};

pub use launch_id::{LAUNCH_ID_BYTES, new_launch_id};

use crate::audit::{AuditAction, AuditEvent, AuditOutcome, AuditSink};
use crate::auth::Caller;
use crate::clock::Clock;
use crate::config::SofaConfig;
use crate::error::SofaError;
use crate::fhir::ResourceValidator;
use crate::store::Store;

/// `$set-context` / `$clear-context` and context expiry over a [`Store`].
#[derive(Clone)]
pub struct ContextManager {
    store: Arc<dyn Store>,
    validator: Arc<dyn ResourceValidator>,
    audit: Arc<dyn AuditSink>,
    clock: Arc<dyn Clock>,
    config: Arc<SofaConfig>,
}

impl std::fmt::Debug for ContextManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextManager")
            .field("base_url", &self.config.base_url)
            .finish_non_exhaustive()
    }
}

impl ContextManager {
    /// A context manager over the given seams.
    pub fn new(
        store: Arc<dyn Store>,
        validator: Arc<dyn ResourceValidator>,
        audit: Arc<dyn AuditSink>,
        clock: Arc<dyn Clock>,
        config: Arc<SofaConfig>,
    ) -> ContextManager {
        ContextManager {
            store,
            validator,
            audit,
            clock,
            config,
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The configuration.
    pub fn config(&self) -> &SofaConfig {
        &self.config
    }

    /// The caller must hold the context scope (D-06, REQ SC-09).
    fn require_context_scope(&self, caller: &Caller) -> Result<(), SofaError> {
        if caller.has_scope(&self.config.context_scope) {
            Ok(())
        } else {
            Err(SofaError::forbidden(format!(
                "this operation needs the `{}` scope",
                self.config.context_scope
            )))
        }
    }

    async fn audit(
        &self,
        caller: Option<&Caller>,
        action: AuditAction,
        launch_id: Option<String>,
        resources: Vec<String>,
        outcome: AuditOutcome,
    ) {
        self.audit
            .record(AuditEvent {
                time: self.clock.now(),
                client_id: caller.map(|c| c.client_id.clone()),
                user: caller.and_then(|c| c.user.clone()),
                launch_id,
                action,
                resources,
                outcome,
            })
            .await;
    }
}

/// Whether the caller may see a launch's data: the PoC client and user that set it (SC-09).
fn owns(caller: &Caller, client_id: &str, user: Option<&str>) -> bool {
    caller.client_id == client_id && caller.user.as_deref() == user
}

/// Re-roots a validator issue (`Patient.gender`) at the place the resource sits in the request.
fn reroot(mut issue: Issue, at: &str, resource_type: &str) -> Issue {
    let rerooted: Vec<String> = if issue.expression.is_empty() {
        vec![at.to_string()]
    } else {
        issue
            .expression
            .iter()
            .map(|e| match e.strip_prefix(resource_type) {
                Some(rest) if rest.is_empty() || rest.starts_with('.') => format!("{at}{rest}"),
                _ => format!("{at}.{e}"),
            })
            .collect()
    };
    issue.expression = rerooted;
    issue
}

/// Profile and business-rule failures are 422; anything structural is 400 (FHIR create).
fn is_profile_issue(issue: &Issue) -> bool {
    matches!(
        issue.code,
        IssueType::Invariant | IssueType::BusinessRule | IssueType::CodeInvalid
    )
}
