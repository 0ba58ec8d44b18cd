//! `$set-context` (REQ SC-01..SC-08): validate everything, report every problem at once, then
//! store the resources and the context in one transaction.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use halo_model::fhir::RawResource;
use halo_model::outcome::{Issue, IssueType, OperationOutcome, Severity};
use halo_model::set_context::{
    ContextReference, EntryResult, SetContextOutput, SetContextRequest, ValidationOptions, names,
};
use serde_json::Value;

use super::{ContextManager, is_profile_issue, new_launch_id, owns, reroot};
use crate::audit::{AuditAction, AuditOutcome};
use crate::auth::Caller;
use crate::error::SofaError;
use crate::store::{LaunchRecord, NewResource, StoreError, Transaction, meta_instant};

impl ContextManager {
    /// `$set-context`: `body` is the parsed request. Gives the SetContextOutputParameters.
    pub async fn set_context(&self, caller: &Caller, body: &Value) -> Result<Value, SofaError> {
        let result = self.set_context_checked(caller, body).await;
        let (launch_id, resources, outcome) = match &result {
            Ok((launch_id, resources, _)) => (
                Some(launch_id.clone()),
                resources.clone(),
                AuditOutcome::Success,
            ),
            Err(e) => (None, Vec::new(), AuditOutcome::Failure(e.status().as_u16())),
        };
        self.audit(
            Some(caller),
            AuditAction::SetContext,
            launch_id,
            resources,
            outcome,
        )
        .await;
        result.map(|(_, _, output)| output)
    }

    async fn set_context_checked(
        &self,
        caller: &Caller,
        body: &Value,
    ) -> Result<(String, Vec<String>, Value), SofaError> {
        self.require_context_scope(caller)?;
        if caller.user.is_none() && !self.config.userless_launches {
            // D-18: a launch belongs to the clinician the PoC signed in; a token that names no
            // user would leave it to whoever signs in at the app's authorization.
            return Err(SofaError::new(
                StatusCode::FORBIDDEN,
                OperationOutcome::error(
                    IssueType::Security,
                    "the access token names no user: sign the clinician in at the jurisdictional \
                 IdP and call $set-context with that user's token (a client_credentials token \
                 sets a context only in the SoFA's userless mode)",
                ),
            ));
        }
        let mut request = self.validate_request(body)?;

        // Everything that needs no store is done before the write transaction begins, so the
        // store's writer is held only for the checks and the writes themselves.
        // The references to resources already in the SoFA, taken before any rewriting (a
        // rewritten urn:uuid reference looks like one), are checked inside the transaction.
        let existing: Vec<(&'static str, ContextReference)> = request
            .existing_references()
            .into_iter()
            .map(|(name, reference)| (name, reference.clone()))
            .collect();
        // Ids first, so every urn:uuid reference can be rewritten before anything is stored.
        let mut assigned = BTreeMap::new();
        let mut ids = Vec::with_capacity(request.resources.len());
        for entry in &request.resources {
            let id = crate::store::new_resource_id();
            assigned.insert(
                entry.full_url.clone(),
                format!("{}/{id}", entry.resource_type),
            );
            ids.push(id);
        }
        request.apply_assigned_ids(&assigned);

        let launch_id = new_launch_id()?;
        let now = self.clock.now();
        let mut results = Vec::with_capacity(request.resources.len());
        let mut resources = Vec::with_capacity(request.resources.len());
        for (entry, id) in request.resources.iter().zip(ids) {
            let mut resource = RawResource::from_value(entry.resource.clone())
                .map_err(|e| SofaError::bad_request(IssueType::Structure, e.to_string()))?;
            resource.set_id(id.clone());
            resources.push(NewResource {
                resource,
                launch_id: Some(launch_id.clone()),
                last_updated: now,
            });
            results.push(EntryResult::created(
                entry.resource_type.clone(),
                id,
                meta_instant(now),
            ));
        }

        let ttl = chrono::Duration::from_std(self.config.launch_ttl)
            .unwrap_or_else(|_| chrono::Duration::hours(12));
        let resolve = |r: &Option<halo_model::set_context::ContextReference>| {
            r.as_ref().map(|r| r.reference.clone())
        };
        let launch = LaunchRecord {
            launch_id: launch_id.clone(),
            client_id: caller.client_id.clone(),
            user: caller.user.clone(),
            owner_fhir_user: caller.fhir_user.clone(),
            app_id: request.app_id.clone(),
            patient: resolve(&request.patient),
            encounter: resolve(&request.encounter),
            fhir_user: resolve(&request.fhir_user),
            fhir_context: request
                .fhir_context
                .iter()
                .map(|r| r.reference.clone())
                .collect(),
            need_patient_banner: request.need_patient_banner,
            intent: request.intent.clone(),
            smart_style_url: request.smart_style_url.clone(),
            tenant: request.tenant.clone(),
            created_at: now,
            expires_at: now + ttl,
        };

        // One write unit: the checks that need the store, then the writes (REQ SC-04).
        let owner = caller.clone();
        let subscription_topic = self
            .config
            .require_active_subscription
            .then(|| self.config.content_update_topic.clone());
        let stored = self
            .store
            .write(move |tx| {
                Box::pin(async move {
                    // REQ SC-08 (D-07): only a PoC that will hear about app writes may set a
                    // context.
                    if let Some(topic) = &subscription_topic
                        && !tx.has_active_subscription(&owner.client_id, topic).await?
                    {
                        return Err(Refused::NoSubscription(topic.clone()));
                    }
                    let invisible = invisible_references(tx, &owner, existing).await?;
                    if !invisible.is_empty() {
                        return Err(Refused::Invisible(invisible));
                    }
                    tx.create_resources(resources).await?;
                    tx.insert_launch(launch).await?;
                    Ok(())
                })
            })
            .await;
        match stored {
            Ok(()) => {}
            Err(Refused::Store(error)) => return Err(error.into()),
            Err(Refused::NoSubscription(topic)) => {
                return Err(SofaError::new(
                    StatusCode::CONFLICT,
                    OperationOutcome::error(
                        IssueType::BusinessRule,
                        format!(
                            "client {} has no active Subscription to {topic}; create one \
                             before $set-context",
                            caller.client_id
                        ),
                    ),
                ));
            }
            Err(Refused::Invisible(invisible)) => {
                return Err(invisible_error(&invisible, body));
            }
        }

        let created: Vec<String> = results.iter().map(EntryResult::reference).collect();
        let output = SetContextOutput {
            launch_id: launch_id.clone(),
            resources_response: (!results.is_empty()).then_some(results),
        };
        Ok((launch_id, created, output.to_json()))
    }

    /// The Parameters and Bundle (halo-model) and each resource (the validator), every problem
    /// in one OperationOutcome (REQ SC-01..SC-03).
    fn validate_request(&self, body: &Value) -> Result<SetContextRequest, SofaError> {
        let options = ValidationOptions::with_supported_types(self.config.supported_types.clone());
        let parsed = SetContextRequest::parse(body, &options);
        let resource_issues = self.validate_resources(body);
        let resource_errors = resource_issues
            .iter()
            .any(|i| matches!(i.severity, Severity::Error | Severity::Fatal));
        match parsed {
            Ok(request) if !resource_errors => Ok(request),
            Ok(_) => {
                let status = if resource_issues
                    .iter()
                    .filter(|i| matches!(i.severity, Severity::Error | Severity::Fatal))
                    .all(is_profile_issue)
                {
                    StatusCode::UNPROCESSABLE_ENTITY
                } else {
                    StatusCode::BAD_REQUEST
                };
                Err(SofaError::new(
                    status,
                    resource_issues.into_iter().collect(),
                ))
            }
            Err(errors) => {
                let mut issues = errors.issues;
                issues.extend(resource_issues);
                Err(SofaError::invalid(issues))
            }
        }
    }

    /// Runs the validator on every resource of the `resources` Bundle whose type the server
    /// supports (halo-model already reports the others), even when the Parameters have other
    /// problems, so one answer lists everything.
    fn validate_resources(&self, body: &Value) -> Vec<Issue> {
        let mut issues = Vec::new();
        let Some(parameters) = body.get("parameter").and_then(Value::as_array) else {
            return issues;
        };
        for (p, parameter) in parameters.iter().enumerate() {
            if parameter.get("name").and_then(Value::as_str) != Some(names::RESOURCES) {
                continue;
            }
            let Some(entries) = parameter
                .get("resource")
                .and_then(|b| b.get("entry"))
                .and_then(Value::as_array)
            else {
                continue;
            };
            for (e, entry) in entries.iter().enumerate() {
                let Some(Ok(resource)) = entry
                    .get("resource")
                    .map(|r| RawResource::from_value(r.clone()))
                else {
                    continue;
                };
                let resource_type = resource.resource_type().to_string();
                if !self.config.supported_types.contains(&resource_type) {
                    continue;
                }
                let at = format!("Parameters.parameter[{p}].resource.entry[{e}].resource");
                let full_url = entry.get("fullUrl").and_then(Value::as_str).unwrap_or("");
                for issue in self.validator.validate(&resource) {
                    let mut issue = reroot(issue, &at, &resource_type);
                    if let Some(diagnostics) = issue.diagnostics.take() {
                        issue.diagnostics = Some(format!("entry {e} ({full_url}): {diagnostics}"));
                    }
                    issues.push(issue);
                }
            }
        }
        issues
    }
}

/// Why the store part of a `$set-context` wrote nothing.
enum Refused {
    Store(StoreError),
    /// The caller has no active Subscription to this topic (REQ SC-08).
    NoSubscription(String),
    /// Context references the caller may not use.
    Invisible(Vec<(&'static str, ContextReference)>),
}

impl From<StoreError> for Refused {
    fn from(error: StoreError) -> Self {
        Refused::Store(error)
    }
}

/// Context references to resources already in the SoFA must exist and be visible to the
/// caller: not part of another client's or user's launch
/// (REQ SC-05, D-04, D-10). The ones that fail, a resource the caller may not see counted
/// exactly like a missing one.
async fn invisible_references(
    tx: &mut dyn Transaction,
    caller: &Caller,
    existing: Vec<(&'static str, ContextReference)>,
) -> Result<Vec<(&'static str, ContextReference)>, StoreError> {
    let mut invisible = Vec::new();
    for (name, reference) in existing {
        let Some(id) = reference.existing_id() else {
            continue;
        };
        let visible = match tx.read_resource(&reference.resource_type, id).await? {
            None => false,
            Some(stored) => match &stored.launch_id {
                None => true,
                Some(launch) => match tx.get_launch(launch).await? {
                    Some(l) => owns(caller, &l.client_id, l.user.as_deref()),
                    None => false,
                },
            },
        };
        if !visible {
            invisible.push((name, reference));
        }
    }
    Ok(invisible)
}

/// The answer to context references that are not in the SoFA or not the caller's, each issue
/// pointing at its place in the request.
fn invisible_error(invisible: &[(&'static str, ContextReference)], body: &Value) -> SofaError {
    SofaError::invalid(
        invisible
            .iter()
            .map(|(name, reference)| {
                Issue::error(
                    IssueType::NotFound,
                    format!(
                        "{name} refers to {}, which is not in the SoFA (or not visible to this \
                         client); send it in the resources Bundle instead",
                        reference.reference
                    ),
                )
                .at(parameter_expression(body, name, &reference.reference))
            })
            .collect(),
    )
}

/// Where a context reference sits in the request, for the issue's `expression`.
fn parameter_expression(body: &Value, name: &str, reference: &str) -> String {
    body.get("parameter")
        .and_then(Value::as_array)
        .and_then(|parameters| {
            parameters.iter().position(|p| {
                p.get("name").and_then(Value::as_str) == Some(name)
                    && p.pointer("/valueReference/reference")
                        .and_then(Value::as_str)
                        == Some(reference)
            })
        })
        .map(|i| format!("Parameters.parameter[{i}].valueReference.reference"))
        .unwrap_or_else(|| "Parameters.parameter".to_string())
}
