//! The SoFA launch from the PoC's side (REQ LI-03, LI-04, LI-08): decide the context, send the
//! EMR's resources with `$set-context`, keep the id mapping, give the launch URL, and clear the
//! context at the end.

use std::collections::BTreeMap;
use std::sync::Arc;

use halo_catalog::AppEntry;
use halo_model::set_context::{
    ClearContextOutput, ContextReference, SetContextBuilder, SetContextOutput,
};
use serde_json::Value;
use url::Url;

use crate::context::{ClinicalContext, ContextPlan, LocalResources, plan_context, type_of};
use crate::error::{PocError, Result};
use crate::idmap::{IdMapStore, IdMapping, Retention, from_now};
use crate::launch_url::launch_url;
use crate::random::random_uuid;
use crate::sofa::SofaClient;

/// A `$set-context` request ready to send, with what is needed to read its answer.
#[derive(Debug, Clone)]
pub struct PreparedContext {
    /// The context decided from the app's scopes.
    pub plan: ContextPlan,
    /// The request.
    pub builder: SetContextBuilder,
    /// Each bundled resource's `fullUrl` and the local reference it stands for.
    pub local_by_full_url: BTreeMap<String, String>,
}

impl PreparedContext {
    /// The SetContextInputParameters JSON.
    pub fn body(&self) -> Value {
        self.builder.build()
    }

    /// Pairs the answer's ids with the local references: one mapping per bundled resource.
    pub fn mappings(&self, output: &SetContextOutput) -> Result<Vec<IdMapping>> {
        let full_urls = self.builder.full_urls();
        if full_urls.is_empty() {
            return Ok(Vec::new());
        }
        let assigned = output
            .id_map(full_urls)
            .ok_or_else(|| PocError::InvalidResponse {
                operation: "$set-context".into(),
                detail: "resourcesResponse does not have one entry per resource sent".into(),
            })?;
        let mut mappings = Vec::new();
        for (full_url, sofa) in assigned {
            if let Some(local) = self.local_by_full_url.get(&full_url) {
                if type_of(local) != type_of(&sofa) {
                    return Err(PocError::InvalidResponse {
                        operation: "$set-context".into(),
                        detail: format!("{local} came back as {sofa}"),
                    });
                }
                mappings.push(IdMapping {
                    local: local.clone(),
                    sofa,
                });
            }
        }
        Ok(mappings)
    }
}

/// A launched app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SofaLaunch {
    /// The App Catalog id.
    pub app_id: String,
    /// The SoFA's launch id (for `$clear-context`).
    pub launch_id: String,
    /// The URL that opens the app (`iss` = SoFA FHIR base, `launch` = launch id).
    pub url: Url,
    /// The id mappings recorded for this launch.
    pub mappings: Vec<IdMapping>,
    /// The app has `offline_access`.
    pub offline_access: bool,
}

/// What `$clear-context` did. A failure is reported here and does not stop the PoC: the SoFA
/// purges the context itself when its lifetime ends.
#[derive(Debug, Clone, PartialEq)]
pub struct ClearReport {
    /// The SoFA's answer, or why there is none.
    pub result: std::result::Result<ClearContextOutput, PocError>,
}

impl ClearReport {
    /// Whether the SoFA confirmed the context is gone.
    pub fn succeeded(&self) -> bool {
        self.result
            .as_ref()
            .is_ok_and(ClearContextOutput::succeeded)
    }
}

/// Launches apps through a SoFA.
#[derive(Clone)]
pub struct SofaLauncher {
    sofa: SofaClient,
    resources: Arc<dyn LocalResources>,
    id_map: Arc<dyn IdMapStore>,
    retention: Retention,
}

impl std::fmt::Debug for SofaLauncher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SofaLauncher")
            .field("sofa", &self.sofa)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl SofaLauncher {
    /// A launcher for `sofa`, reading local data from `resources` and keeping mappings in
    /// `id_map`.
    pub fn new(
        sofa: SofaClient,
        resources: Arc<dyn LocalResources>,
        id_map: Arc<dyn IdMapStore>,
    ) -> SofaLauncher {
        SofaLauncher {
            sofa,
            resources,
            id_map,
            retention: Retention::default(),
        }
    }

    /// Changes how long id mappings are kept.
    pub fn with_retention(mut self, retention: Retention) -> SofaLauncher {
        self.retention = retention;
        self
    }

    /// The SoFA client.
    pub fn sofa(&self) -> &SofaClient {
        &self.sofa
    }

    /// Builds the `$set-context` request for `app` without sending it: every context resource
    /// and every related resource the EMR offers gets a random `urn:uuid:` fullUrl, and
    /// references between them are rewritten to those fullUrls. A reference to a resource a
    /// previous launch already sent is written as the SoFA's `Type/id` (decision D-04).
    pub async fn prepare(
        &self,
        app: &AppEntry,
        clinical: &ClinicalContext,
    ) -> Result<PreparedContext> {
        let plan = plan_context(app, clinical)?;
        let mut resources: Vec<(String, Value)> = Vec::new();
        for reference in plan.references() {
            if resources.iter().any(|(r, _)| r == reference) {
                continue;
            }
            let resource = self.resources.resource(reference).await?.ok_or_else(|| {
                PocError::LocalResource {
                    reference: reference.to_owned(),
                    reason: "the EMR has no such resource".into(),
                }
            })?;
            check_local(reference, &resource)?;
            resources.push((reference.to_owned(), resource));
        }
        for resource in self.resources.related(&plan).await? {
            let reference = local_reference(&resource)?;
            if !resources.iter().any(|(r, _)| *r == reference) {
                resources.push((reference, resource));
            }
        }

        let mut full_url_of: BTreeMap<String, String> = BTreeMap::new();
        for (reference, _) in &resources {
            full_url_of.insert(reference.clone(), format!("urn:uuid:{}", random_uuid()?));
        }
        let mut known_in_sofa: BTreeMap<String, String> = BTreeMap::new();
        for (_, resource) in &resources {
            for reference in relative_references(resource) {
                if !full_url_of.contains_key(&reference)
                    && !known_in_sofa.contains_key(&reference)
                    && let Some(sofa) = self.id_map.sofa_for(&reference).await?
                {
                    known_in_sofa.insert(reference, sofa);
                }
            }
        }

        let mut builder = SetContextBuilder::new();
        let mut local_by_full_url = BTreeMap::new();
        let mut context_ref: BTreeMap<String, ContextReference> = BTreeMap::new();
        for (reference, mut resource) in resources {
            let full_url = full_url_of[&reference].clone();
            if let Some(object) = resource.as_object_mut() {
                // The local id means nothing to the SoFA; the entry is a POST.
                object.remove("id");
            }
            rewrite_references(&mut resource, &|r| {
                full_url_of.get(r).or_else(|| known_in_sofa.get(r)).cloned()
            });
            let added = builder
                .add_resource_as(full_url.clone(), resource)
                .map_err(|e| PocError::Build(e.to_string()))?;
            local_by_full_url.insert(full_url, reference.clone());
            context_ref.insert(reference, added);
        }
        let pick = |reference: &str| context_ref.get(reference).cloned();
        if let Some(app_id) = Some(&app.id).filter(|id| !id.is_empty()) {
            builder.app_id(app_id.clone());
        }
        if let Some(r) = plan.patient.as_deref().and_then(pick) {
            builder.patient(r);
        }
        if let Some(r) = plan.encounter.as_deref().and_then(pick) {
            builder.encounter(r);
        }
        if let Some(r) = plan.fhir_user.as_deref().and_then(pick) {
            builder.fhir_user(r);
        }
        for r in plan.fhir_context.iter().filter_map(|r| pick(r)) {
            builder.fhir_context(r);
        }
        if let Some(flag) = clinical.need_patient_banner {
            builder.need_patient_banner(flag);
        }
        if let Some(intent) = &clinical.intent {
            builder.intent(intent.clone());
        }
        if let Some(url) = &clinical.smart_style_url {
            builder.smart_style_url(url.clone());
        }
        if let Some(tenant) = &clinical.tenant {
            builder.tenant(tenant.clone());
        }
        Ok(PreparedContext {
            plan,
            builder,
            local_by_full_url,
        })
    }

    /// The whole launch: [`SofaLauncher::prepare`], `$set-context` with the PoC's token, the id
    /// mapping recorded, and the URL that opens the app.
    ///
    /// The SoFA refuses `$set-context` while the PoC has no active subscription to the SoFA
    /// Content Update topic (D-07): create it first ([`crate::SubscriptionManager`]).
    pub async fn launch(&self, app: &AppEntry, clinical: &ClinicalContext) -> Result<SofaLaunch> {
        let prepared = self.prepare(app, clinical).await?;
        let output = self.sofa.set_context(&prepared.body()).await?;
        let mappings = match prepared.mappings(&output) {
            Ok(mappings) => mappings,
            Err(error) => {
                // The SoFA holds a context the PoC cannot reconcile: give it back rather than
                // leave it until it expires.
                if let Err(clear) = self.sofa.clear_context(&output.launch_id).await {
                    tracing::warn!(code = clear.code(), %clear, "unusable context not cleared");
                }
                return Err(error);
            }
        };
        let keep_until = from_now(self.retention.context_lifetime);
        self.id_map
            .record(&output.launch_id, mappings.clone(), keep_until)
            .await?;
        let url = launch_url(&app.launch_url, self.sofa.fhir_base(), &output.launch_id)?;
        Ok(SofaLaunch {
            app_id: app.id.clone(),
            launch_id: output.launch_id,
            url,
            mappings,
            offline_access: prepared.plan.offline_access,
        })
    }

    /// Ends a launch with `$clear-context`. The id mappings stay for a grace period (longer
    /// when the app has `offline_access`, D-15) because notifications can still arrive. Never
    /// fails: a failure is in the report, and the SoFA purges the context on expiry.
    pub async fn end(&self, launch: &SofaLaunch) -> ClearReport {
        let result = self.sofa.clear_context(&launch.launch_id).await;
        let grace = if launch.offline_access {
            self.retention.after_clear_offline
        } else {
            self.retention.after_clear
        };
        if let Err(error) = self
            .id_map
            .keep_until(&launch.launch_id, from_now(grace))
            .await
        {
            tracing::warn!(code = error.code(), %error, "id mappings kept at their full lifetime");
        }
        if let Err(error) = &result {
            tracing::warn!(code = error.code(), %error, "$clear-context failed; the SoFA will expire the context");
        }
        ClearReport { result }
    }
}

fn check_local(reference: &str, resource: &Value) -> Result<()> {
    let kind = resource.get("resourceType").and_then(Value::as_str);
    if kind != type_of(reference) {
        return Err(PocError::LocalResource {
            reference: reference.to_owned(),
            reason: format!("the EMR returned a {}", kind.unwrap_or("non-resource")),
        });
    }
    Ok(())
}

fn local_reference(resource: &Value) -> Result<String> {
    match (
        resource.get("resourceType").and_then(Value::as_str),
        resource.get("id").and_then(Value::as_str),
    ) {
        (Some(kind), Some(id)) => Ok(format!("{kind}/{id}")),
        _ => Err(PocError::LocalResource {
            reference: "a related resource".into(),
            reason: "related resources need a resourceType and a local id".into(),
        }),
    }
}

/// Every relative `Type/id` in a `reference` element of `value`.
pub(crate) fn relative_references(value: &Value) -> Vec<String> {
    let mut found = Vec::new();
    walk_references(value, &mut |r| {
        if type_of(r).is_some() && !r.contains(':') {
            found.push(r.to_owned());
        }
    });
    found
}

fn walk_references(value: &Value, visit: &mut dyn FnMut(&str)) {
    match value {
        Value::Object(object) => {
            for (key, item) in object {
                match (key.as_str(), item) {
                    ("reference", Value::String(r)) => visit(r),
                    _ => walk_references(item, visit),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| walk_references(i, visit)),
        _ => {}
    }
}

/// Replaces every `reference` string for which `map` has an answer. Recursive: resources from
/// the network were depth-bounded by [`halo_model::fhir::parse_json`] when they were read.
pub(crate) fn rewrite_references(value: &mut Value, map: &dyn Fn(&str) -> Option<String>) {
    match value {
        Value::Object(object) => {
            for (key, item) in object.iter_mut() {
                if key == "reference" {
                    if let Value::String(r) = item
                        && let Some(new) = map(r)
                    {
                        *r = new;
                    }
                } else {
                    rewrite_references(item, map);
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| rewrite_references(item, map)),
        _ => {}
    }
}
