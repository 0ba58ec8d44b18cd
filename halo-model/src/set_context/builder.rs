//! The PoC side: build a `$set-context` request from local resources and context choices.

use serde_json::Value;

use super::bundle::ContextEntry;
use super::findings::ValidationErrors;
use super::references::is_urn_uuid;
use super::request::{ContextReference, SetContextRequest};
use super::resource_types::ValidationOptions;

/// Why a resource could not be added to a [`SetContextBuilder`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The resource is not a JSON object with a string `resourceType`.
    #[error("a resource must be a JSON object with a resourceType")]
    NotAResource,
    /// The chosen `fullUrl` is not `urn:uuid:` followed by a UUID.
    #[error("fullUrl {0} is not urn:uuid: followed by a UUID")]
    InvalidFullUrl(String),
    /// The chosen `fullUrl` is already used by another entry.
    #[error("fullUrl {0} is already used in this request")]
    DuplicateFullUrl(String),
}

/// Builds a `$set-context` request.
///
/// Resources are added with a `urn:uuid:` `fullUrl` (sequential ids by default, or one the PoC
/// chooses); the returned [`ContextReference`] is what the resource's neighbours and the context
/// parameters point at.
#[derive(Debug, Clone, Default)]
pub struct SetContextBuilder {
    request: SetContextRequest,
    next: u64,
}

impl SetContextBuilder {
    /// An empty request.
    pub fn new() -> SetContextBuilder {
        SetContextBuilder::default()
    }

    /// Adds a resource with the next free `urn:uuid:` fullUrl. The ids are unique within this
    /// request, which is all a transaction Bundle's temporary ids need to be.
    pub fn add_resource(&mut self, resource: Value) -> Result<ContextReference, BuildError> {
        loop {
            self.next += 1;
            let full_url = format!("urn:uuid:00000000-0000-4000-8000-{:012x}", self.next);
            if !self
                .request
                .resources
                .iter()
                .any(|e| e.full_url == full_url)
            {
                return self.add_resource_as(full_url, resource);
            }
        }
    }

    /// Adds a resource under a `fullUrl` the PoC chose (for example a random UUID it keeps).
    pub fn add_resource_as(
        &mut self,
        full_url: impl Into<String>,
        resource: Value,
    ) -> Result<ContextReference, BuildError> {
        let full_url = full_url.into();
        let resource_type = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .ok_or(BuildError::NotAResource)?
            .to_owned();
        if !is_urn_uuid(&full_url) {
            return Err(BuildError::InvalidFullUrl(full_url));
        }
        if self
            .request
            .resources
            .iter()
            .any(|e| e.full_url == full_url)
        {
            return Err(BuildError::DuplicateFullUrl(full_url));
        }
        self.request.resources.push(ContextEntry {
            full_url: full_url.clone(),
            resource_type: resource_type.clone(),
            resource,
        });
        Ok(ContextReference::bundled(full_url, resource_type))
    }

    /// Sets `appID`.
    pub fn app_id(&mut self, app_id: impl Into<String>) -> &mut SetContextBuilder {
        self.request.app_id = Some(app_id.into());
        self
    }

    /// Sets `patient`.
    pub fn patient(&mut self, reference: ContextReference) -> &mut SetContextBuilder {
        self.request.patient = Some(reference);
        self
    }

    /// Sets `encounter`.
    pub fn encounter(&mut self, reference: ContextReference) -> &mut SetContextBuilder {
        self.request.encounter = Some(reference);
        self
    }

    /// Sets `fhirUser`.
    pub fn fhir_user(&mut self, reference: ContextReference) -> &mut SetContextBuilder {
        self.request.fhir_user = Some(reference);
        self
    }

    /// Adds a `fhirContext` reference.
    pub fn fhir_context(&mut self, reference: ContextReference) -> &mut SetContextBuilder {
        self.request.fhir_context.push(reference);
        self
    }

    /// Sets `need_patient_banner`.
    pub fn need_patient_banner(&mut self, flag: bool) -> &mut SetContextBuilder {
        self.request.need_patient_banner = Some(flag);
        self
    }

    /// Sets `intent`.
    pub fn intent(&mut self, intent: impl Into<String>) -> &mut SetContextBuilder {
        self.request.intent = Some(intent.into());
        self
    }

    /// Sets `smart_style_url`.
    pub fn smart_style_url(&mut self, url: impl Into<String>) -> &mut SetContextBuilder {
        self.request.smart_style_url = Some(url.into());
        self
    }

    /// Sets `tenant`.
    pub fn tenant(&mut self, tenant: impl Into<String>) -> &mut SetContextBuilder {
        self.request.tenant = Some(tenant.into());
        self
    }

    /// The request built so far.
    pub fn request(&self) -> &SetContextRequest {
        &self.request
    }

    /// The `fullUrl`s of the added resources, in order (to pair with the answer's
    /// `resourcesResponse`, see [`super::SetContextOutput::id_map`]).
    pub fn full_urls(&self) -> Vec<&str> {
        self.request
            .resources
            .iter()
            .map(|e| e.full_url.as_str())
            .collect()
    }

    /// The Parameters JSON to POST.
    pub fn build(&self) -> Value {
        self.request.to_json()
    }

    /// The Parameters JSON, checked with the same validator the server runs, so a PoC finds
    /// a dangling reference or an unsupported type before it sends anything.
    pub fn build_checked(&self, options: &ValidationOptions) -> Result<Value, ValidationErrors> {
        let body = self.request.to_json();
        SetContextRequest::parse(&body, options)?;
        Ok(body)
    }
}
