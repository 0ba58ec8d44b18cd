//! The FHIR client bound to a session: bearer only to the session's base, one refresh after a
//! 401, and the asynchronous pattern (202 + `Content-Location` polling) handled transparently.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;
use url::Url;

use super::SessionHandle;
use super::http::{Answer, send};
use crate::error::{Result, SmartError};
use crate::fhir::{FHIR_JSON, fhir_error, next_link, resolve_under_base, retry_after};

/// FHIR requests on behalf of one session. Answers are the JSON the server sent.
#[derive(Debug, Clone)]
pub struct FhirClient {
    session: SessionHandle,
    prefer_async: bool,
}

impl FhirClient {
    pub(crate) fn new(session: SessionHandle) -> Self {
        Self {
            session,
            prefer_async: false,
        }
    }

    /// Ask the server to process writes asynchronously (`Prefer: respond-async`). Either way, the
    /// caller gets the final result: a 202 is polled until done.
    #[must_use]
    pub fn prefer_async(mut self, yes: bool) -> Self {
        self.prefer_async = yes;
        self
    }

    /// `GET [base]/[type]/[id]`.
    pub async fn read(&self, resource_type: &str, id: &str) -> Result<Value> {
        check_segment(resource_type)?;
        check_segment(id)?;
        let resource = self
            .request(Method::GET, &format!("{resource_type}/{id}"), None)
            .await?;
        crate::session::LaunchSession::check_resource_type(resource_type, &resource)?;
        Ok(resource)
    }

    /// The patient in context, checked to be a Patient (APP-14).
    pub async fn context_patient(&self) -> Result<Value> {
        let id = self
            .session
            .snapshot()?
            .patient_id()
            .map(str::to_owned)
            .ok_or_else(|| SmartError::MissingContext {
                what: "patient".into(),
            })?;
        self.read("Patient", &id).await
    }

    /// `GET [base]/[type]?params`: the first page (a searchset Bundle).
    pub async fn search(&self, resource_type: &str, params: &[(&str, &str)]) -> Result<Value> {
        check_segment(resource_type)?;
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        let target = if query.is_empty() {
            resource_type.to_owned()
        } else {
            format!("{resource_type}?{query}")
        };
        self.request(Method::GET, &target, None).await
    }

    /// The page after `bundle`, following its `next` link (which must be under the FHIR base).
    pub async fn next_page(&self, bundle: &Value) -> Result<Option<Value>> {
        match next_link(bundle) {
            Some(next) => Ok(Some(self.request(Method::GET, next, None).await?)),
            None => Ok(None),
        }
    }

    /// Every resource of a search, following `next` links for at most `max_pages` pages.
    pub async fn search_all(
        &self,
        resource_type: &str,
        params: &[(&str, &str)],
        max_pages: usize,
    ) -> Result<Vec<Value>> {
        let mut page = self.search(resource_type, params).await?;
        let mut out = crate::fhir::bundle_resources(&page);
        for _ in 1..max_pages {
            match self.next_page(&page).await? {
                Some(next) => {
                    out.extend(crate::fhir::bundle_resources(&next));
                    page = next;
                }
                None => break,
            }
        }
        Ok(out)
    }

    /// `POST [base]/[type]`: the created resource as the server returned it (or `null` when it
    /// returned no body).
    pub async fn create(&self, resource: &Value) -> Result<Value> {
        let ty = resource_type_of(resource)?;
        self.request(Method::POST, &ty, Some(resource)).await
    }

    /// `PUT [base]/[type]/[id]`, with the id taken from the resource.
    pub async fn update(&self, resource: &Value) -> Result<Value> {
        let ty = resource_type_of(resource)?;
        let id = resource
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| SmartError::config("a resource to update needs an id"))?;
        check_segment(id)?;
        self.request(Method::PUT, &format!("{ty}/{id}"), Some(resource))
            .await
    }

    /// `GET [base]/[type]/[id]` read as a typed resource (feature `fhir-model`).
    #[cfg(feature = "fhir-model")]
    pub async fn read_typed(
        &self,
        resource_type: &str,
        id: &str,
    ) -> Result<halo_model::fhir::typed::TypedResource> {
        typed(self.read(resource_type, id).await?)
    }

    /// `POST [base]/[type]` of a typed resource; the created resource comes back typed (feature
    /// `fhir-model`).
    #[cfg(feature = "fhir-model")]
    pub async fn create_typed(
        &self,
        resource: &halo_model::fhir::typed::TypedResource,
    ) -> Result<halo_model::fhir::typed::TypedResource> {
        typed(self.create(&resource.to_value()).await?)
    }

    /// Any request relative to the FHIR base (or an absolute URL under it).
    pub async fn request(
        &self,
        method: Method,
        target: &str,
        body: Option<&Value>,
    ) -> Result<Value> {
        let base = self.session.snapshot()?.fhir_base;
        let url = resolve_under_base(&base, target)?;
        let answer = self
            .authorized(method, &url, body, self.prefer_async)
            .await?;
        let answer = if answer.status == 202 {
            self.poll(&base, &answer).await?
        } else {
            answer
        };
        final_json(answer.status, &answer.body)
    }

    /// One request with the bearer token; on a 401, one refresh and one retry. A 401 that no
    /// refresh can cure is a session that ended (RFC 6750 §3.1: the token is invalid or
    /// expired), not a missing permission.
    async fn authorized(
        &self,
        method: Method,
        url: &Url,
        body: Option<&Value>,
        prefer_async: bool,
    ) -> Result<Answer> {
        let (token, generation) = self.session.bearer().await?;
        let answer = self
            .send_once(method.clone(), url, body, prefer_async, token.expose())
            .await?;
        if answer.status != 401 {
            return Ok(answer);
        }
        if self.session.snapshot()?.refresh_token().is_none() {
            return Err(SmartError::SessionExpired {
                reason: "the FHIR server refused the access token (HTTP 401) and no refresh \
                         token was granted"
                    .into(),
            });
        }
        self.session.refresh_from(generation).await?;
        let (token, _) = self.session.bearer().await?;
        let retried = self
            .send_once(method, url, body, prefer_async, token.expose())
            .await?;
        if retried.status == 401 {
            return Err(SmartError::SessionExpired {
                reason: "the FHIR server refused the refreshed access token (HTTP 401)".into(),
            });
        }
        Ok(retried)
    }

    async fn send_once(
        &self,
        method: Method,
        url: &Url,
        body: Option<&Value>,
        prefer_async: bool,
        token: &str,
    ) -> Result<Answer> {
        let client = self.session.client();
        let mut builder = client
            .http()
            .request(method, url.clone())
            .bearer_auth(token)
            .header(reqwest::header::ACCEPT, FHIR_JSON);
        if prefer_async {
            builder = builder.header("Prefer", "respond-async");
        }
        if let Some(body) = body {
            let bytes = serde_json::to_vec(body)
                .map_err(|_| SmartError::config("the resource could not be serialised"))?;
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, FHIR_JSON)
                .body(bytes);
        }
        send(builder, url.path(), client.options().max_body_bytes).await
    }

    /// Polls the `Content-Location` of a 202 until the final answer or the deadline.
    async fn poll(&self, base: &str, accepted: &Answer) -> Result<Answer> {
        let location = accepted.header("content-location").ok_or_else(|| {
            SmartError::invalid_response("FHIR server", "202 Accepted without Content-Location")
        })?;
        // The status URL gets the bearer token too, so it must be under the same base.
        let status_url = resolve_under_base(base, location)?;
        let options = self.session.client().options().clone();
        let deadline = Instant::now() + options.async_deadline;
        let mut backoff = options.initial_poll_interval;
        let mut last = accepted;
        let mut owned;
        loop {
            let wait = match last
                .header("retry-after")
                .and_then(|v| retry_after(v, chrono::Utc::now()))
            {
                Some(d) => d,
                None => {
                    let d = backoff;
                    backoff = (backoff * 2).min(options.max_poll_interval);
                    d
                }
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(SmartError::AsyncDeadline {
                    status_url: status_url.to_string(),
                });
            }
            tokio::time::sleep(wait.min(remaining).max(Duration::from_millis(10))).await;
            owned = self
                .authorized(Method::GET, &status_url, None, false)
                .await?;
            if owned.status != 202 {
                return Ok(unwrap_async_bundle(owned));
            }
            last = &owned;
        }
    }
}

/// Some servers answer the final poll with a `batch-response` Bundle holding the real outcome in
/// its one entry (the FHIR R5 async-request shape); the caller gets that outcome directly.
fn unwrap_async_bundle(answer: Answer) -> Answer {
    let Ok(v) = serde_json::from_slice::<Value>(&answer.body) else {
        return answer;
    };
    let is_batch_response = v.get("resourceType").and_then(Value::as_str) == Some("Bundle")
        && v.get("type").and_then(Value::as_str) == Some("batch-response");
    let entries = v.get("entry").and_then(Value::as_array);
    let (true, Some([entry])) = (is_batch_response, entries.map(Vec::as_slice)) else {
        return answer;
    };
    let status = entry
        .pointer("/response/status")
        .and_then(Value::as_str)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse::<u16>().ok());
    let body = entry
        .get("resource")
        .or_else(|| entry.pointer("/response/outcome"))
        .and_then(|r| serde_json::to_vec(r).ok())
        .unwrap_or_default();
    match status {
        Some(status) => Answer {
            status,
            headers: answer.headers,
            body,
        },
        None => answer,
    }
}

fn final_json(status: u16, body: &[u8]) -> Result<Value> {
    if !(200..300).contains(&status) {
        return Err(fhir_error(status, body));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body)
        .map_err(|_| SmartError::invalid_response("FHIR server", "the answer is not JSON"))
}

fn resource_type_of(resource: &Value) -> Result<String> {
    let ty = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .ok_or_else(|| SmartError::config("the resource has no resourceType"))?;
    check_segment(ty)?;
    Ok(ty.to_owned())
}

/// A resource type or id placed in a path must be one plain segment.
fn check_segment(s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && s != "."
        && s != "..";
    if ok {
        Ok(())
    } else {
        Err(SmartError::config(format!(
            "{:?} is not a valid FHIR type or id",
            crate::token::clip(s)
        )))
    }
}

#[cfg(feature = "fhir-model")]
fn typed(value: Value) -> Result<halo_model::fhir::typed::TypedResource> {
    let raw = halo_model::fhir::RawResource::from_value(value)
        .map_err(|e| SmartError::invalid_response("FHIR server", e.to_string()))?;
    halo_model::fhir::typed::TypedResource::from_raw(&raw)
        .map_err(|e| SmartError::invalid_response("FHIR server", e.to_string()))
}
