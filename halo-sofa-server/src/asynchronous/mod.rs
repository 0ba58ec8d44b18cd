//! The FHIR asynchronous request pattern (REQ ASY-01) as a reusable axum middleware: a write
//! (`POST`, `PUT`, `PATCH`, `DELETE`) sent with `Prefer: respond-async` is answered at once with
//! `202 Accepted` and a `Content-Location` to a status endpoint, and runs in the background.
//! `GET` on the status endpoint answers 202 with `Retry-After` while the write runs, then its
//! final status, headers and body (an OperationOutcome on failure); `DELETE` cancels it.
//!
//! A job is visible only to the client that submitted it. Writes without the header, and
//! reads, pass through untouched.
//!
//! ```
//! use std::sync::Arc;
//! use axum::{Router, routing::post};
//! use halo_sofa_server::{asynchronous::AsyncJobs, auth::StaticTokens};
//!
//! let jobs = AsyncJobs::new("https://sofa.example.org/fhir", Arc::new(StaticTokens::new()), 1 << 20);
//! let writes = Router::new().route("/Observation", post(|| async { "created" }));
//! let app: Router = jobs.apply(writes);
//! ```
//!
//! Jobs live in the process that accepted them (a load balancer needs sticky routing of the
//! status URL); results are kept for [`AsyncJobs::retention`] after they finish.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use halo_model::outcome::{IssueType, OperationOutcome};
use tokio::task::AbortHandle;

use crate::auth::TokenValidator;
use crate::error::SofaError;
use crate::http::authenticate;

/// The status endpoint's path, relative to the FHIR base.
pub const STATUS_PATH: &str = "/$async-status";

/// A finished write's answer, kept until fetched or expired.
#[derive(Clone)]
struct Finished {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    at: Instant,
}

enum JobState {
    Running(Option<AbortHandle>),
    Done(Finished),
}

struct Job {
    client_id: String,
    state: JobState,
}

struct Jobs {
    base_url: String,
    tokens: Arc<dyn TokenValidator>,
    max_body_bytes: usize,
    retention: Duration,
    jobs: Mutex<HashMap<String, Job>>,
}

/// The asynchronous-request middleware and its status endpoint (see the module docs).
#[derive(Clone)]
pub struct AsyncJobs {
    jobs: Arc<Jobs>,
}

impl std::fmt::Debug for AsyncJobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncJobs")
            .field("base_url", &self.jobs.base_url)
            .finish_non_exhaustive()
    }
}

impl AsyncJobs {
    /// Jobs whose status URLs start at `base_url`; submitters are identified with `tokens`;
    /// request bodies above `max_body_bytes` are refused with 413 (SEC-03).
    pub fn new(
        base_url: impl Into<String>,
        tokens: Arc<dyn TokenValidator>,
        max_body_bytes: usize,
    ) -> AsyncJobs {
        AsyncJobs {
            jobs: Arc::new(Jobs {
                base_url: base_url.into().trim_end_matches('/').to_string(),
                tokens,
                max_body_bytes,
                retention: Duration::from_secs(600),
                jobs: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// How long a finished job's answer is kept (10 minutes).
    pub fn retention(&self) -> Duration {
        self.jobs.retention
    }

    /// Wraps `router` with the middleware and adds the status endpoint
    /// (`GET`/`DELETE [base]/$async-status/{id}`).
    pub fn apply(&self, router: Router) -> Router {
        let status = Router::new()
            .route(&format!("{STATUS_PATH}/{{id}}"), get(poll).delete(cancel))
            .with_state(self.clone());
        router
            .layer(middleware::from_fn_with_state(self.clone(), respond_async))
            .merge(status)
    }

    /// How many jobs are still running.
    pub fn running(&self) -> usize {
        let jobs = self.jobs.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.values()
            .filter(|job| matches!(job.state, JobState::Running(_)))
            .count()
    }

    fn finish(&self, id: &str, finished: Finished) {
        let mut jobs = self.jobs.jobs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(job) = jobs.get_mut(id) {
            job.state = JobState::Done(finished);
        }
    }
}

fn prefers_async(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .any(|p| p.trim().eq_ignore_ascii_case("respond-async"))
}

fn is_write(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

async fn respond_async(State(jobs): State<AsyncJobs>, request: Request, next: Next) -> Response {
    if !is_write(request.method()) || !prefers_async(request.headers()) {
        return next.run(request).await;
    }
    // The submitter must be known to poll; an unauthenticated request runs synchronously so
    // the route answers it with its own 401.
    let Ok(caller) = authenticate(jobs.jobs.tokens.as_ref(), request.headers()).await else {
        return next.run(request).await;
    };
    // The body is read now: the client's request is over once it has the 202.
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, jobs.jobs.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return SofaError::too_large("the request body is too large or unreadable")
                .into_response();
        }
    };
    let request = Request::from_parts(parts, Body::from(bytes));
    let id = uuid::Uuid::new_v4().to_string();
    {
        let mut all = jobs.jobs.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let retention = jobs.jobs.retention;
        all.retain(|_, job| match &job.state {
            JobState::Done(finished) => finished.at.elapsed() < retention,
            JobState::Running(_) => true,
        });
        all.insert(
            id.clone(),
            Job {
                client_id: caller.client_id,
                state: JobState::Running(None),
            },
        );
    }
    let task = {
        let (jobs, id) = (jobs.clone(), id.clone());
        tokio::spawn(async move {
            use futures_util::FutureExt;
            // A job whose handler panics ends as failed (500), never "running" for ever
            // (REQ HARD-02).
            let response = std::panic::AssertUnwindSafe(next.run(request))
                .catch_unwind()
                .await
                .unwrap_or_else(crate::http::panic_answer);
            let (parts, body) = response.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            jobs.finish(
                &id,
                Finished {
                    status: parts.status,
                    headers: parts.headers,
                    body,
                    at: Instant::now(),
                },
            );
        })
    };
    {
        let mut all = jobs.jobs.jobs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(Job {
            state: JobState::Running(abort),
            ..
        }) = all.get_mut(&id)
        {
            *abort = Some(task.abort_handle());
        }
    }
    let location = format!("{}{STATUS_PATH}/{id}", jobs.jobs.base_url);
    let outcome: OperationOutcome = std::iter::once(halo_model::outcome::Issue::information(
        IssueType::Informational,
        format!("accepted; poll {location} for the result"),
    ))
    .collect();
    let mut response = (StatusCode::ACCEPTED, outcome.to_vec()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(halo_model::fhir::media::FHIR_JSON_R4),
    );
    if let Ok(value) = HeaderValue::from_str(&location) {
        headers.insert(header::CONTENT_LOCATION, value);
    }
    response
}

async fn job_client(jobs: &AsyncJobs, headers: &HeaderMap) -> Result<String, SofaError> {
    Ok(authenticate(jobs.jobs.tokens.as_ref(), headers)
        .await?
        .client_id)
}

fn unknown(id: &str) -> SofaError {
    SofaError::not_found(format!("no asynchronous request {id} is known"))
}

async fn poll(
    State(jobs): State<AsyncJobs>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, SofaError> {
    let client = job_client(&jobs, &headers).await?;
    let all = jobs.jobs.jobs.lock().unwrap_or_else(|p| p.into_inner());
    let job = all
        .get(&id)
        .filter(|job| job.client_id == client)
        .ok_or_else(|| unknown(&id))?;
    match &job.state {
        JobState::Running(_) => Ok((
            StatusCode::ACCEPTED,
            [
                (header::RETRY_AFTER, HeaderValue::from_static("1")),
                (
                    header::HeaderName::from_static("x-progress"),
                    HeaderValue::from_static("in progress"),
                ),
            ],
        )
            .into_response()),
        JobState::Done(finished) => {
            let mut response = (finished.status, finished.body.clone()).into_response();
            for name in [
                header::CONTENT_TYPE,
                header::LOCATION,
                header::ETAG,
                header::LAST_MODIFIED,
                header::RETRY_AFTER,
            ] {
                if let Some(value) = finished.headers.get(&name) {
                    response.headers_mut().insert(name, value.clone());
                }
            }
            Ok(response)
        }
    }
}

async fn cancel(
    State(jobs): State<AsyncJobs>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, SofaError> {
    let client = job_client(&jobs, &headers).await?;
    let mut all = jobs.jobs.jobs.lock().unwrap_or_else(|p| p.into_inner());
    if all.get(&id).is_none_or(|job| job.client_id != client) {
        return Err(unknown(&id));
    }
    if let Some(Job {
        state: JobState::Running(Some(abort)),
        ..
    }) = all.remove(&id)
    {
        // Aborting drops the write's future: an uncommitted transaction rolls back, and a
        // delivery in progress ends without a commit (D-08).
        abort.abort();
    }
    Ok(StatusCode::ACCEPTED.into_response())
}
