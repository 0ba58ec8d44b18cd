//! The FHIR asynchronous request pattern (REQ ASY-01) as a reusable axum middleware: a write
//! (`POST`, `PUT`, `PATCH`, `DELETE`) sent with `Prefer: respond-async` is answered at once with
//! `202 Accepted` and a `Content-Location` to a status endpoint, and runs in the background.
//! `GET` on the status endpoint answers 202 with `Retry-After` while the write runs, then its
//! final status, headers and body (an OperationOutcome on failure); `DELETE` cancels it.
//!
//! A job is visible only to the client that submitted it, with a token of the same launch.
//! Writes without the header, and reads, pass through untouched.
//!
//! ```
//! use std::sync::Arc;
//! use axum::{Router, routing::post};
//! use halo_sofa_server::{asynchronous::AsyncJobs, auth::StaticTokens, store::MemoryStore};
//!
//! let jobs = AsyncJobs::new(
//!     "https://sofa.example.org/fhir",
//!     Arc::new(StaticTokens::new()),
//!     Arc::new(MemoryStore::new()),
//!     1 << 20,
//! );
//! let writes = Router::new().route("/Observation", post(|| async { "created" }));
//! let app: Router = jobs.apply(writes);
//! ```
//!
//! Jobs and their results live in the store, so every instance on it answers the status URL
//! (REQ CLU-02; no sticky routing). The request itself runs in the process that accepted it,
//! which renews the job's lease while it runs: a job whose process died reads as failed once
//! its lease has passed. Results are kept for [`AsyncJobs::retention`] after they finish.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use halo_model::outcome::{IssueType, OperationOutcome};
use tokio::task::AbortHandle;

use crate::auth::{Caller, TokenValidator};
use crate::error::SofaError;
use crate::http::authenticate;
use crate::store::{AsyncJobRecord, AsyncJobResult, Store};

/// The status endpoint's path, relative to the FHIR base.
pub const STATUS_PATH: &str = "/$async-status";

/// The headers of a finished write handed back with its answer.
const KEPT_HEADERS: [HeaderName; 5] = [
    header::CONTENT_TYPE,
    header::LOCATION,
    header::ETAG,
    header::LAST_MODIFIED,
    header::RETRY_AFTER,
];

struct Jobs {
    base_url: String,
    tokens: Arc<dyn TokenValidator>,
    store: Arc<dyn Store>,
    max_body_bytes: usize,
    retention: Duration,
    lease: Duration,
    /// The jobs running in this process, so a cancel here aborts at once and the renewal
    /// knows what to renew.
    running: Mutex<HashMap<String, AbortHandle>>,
    renewing: AtomicBool,
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

fn chrono(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::seconds(60))
}

impl AsyncJobs {
    /// Jobs whose status URLs start at `base_url`, kept in `store` (so every instance on it
    /// answers them, REQ CLU-02); submitters are identified with `tokens`; request bodies
    /// above `max_body_bytes` are refused with 413 (SEC-03).
    pub fn new(
        base_url: impl Into<String>,
        tokens: Arc<dyn TokenValidator>,
        store: Arc<dyn Store>,
        max_body_bytes: usize,
    ) -> AsyncJobs {
        AsyncJobs {
            jobs: Arc::new(Jobs {
                base_url: base_url.into().trim_end_matches('/').to_string(),
                tokens,
                store,
                max_body_bytes,
                retention: Duration::from_secs(600),
                lease: Duration::from_secs(30),
                running: Mutex::default(),
                renewing: AtomicBool::new(false),
            }),
        }
    }

    /// How long a running job's instance may go without renewing it before the job counts as
    /// failed (30 s; renewed every third of it). Set it before [`apply`](Self::apply).
    pub fn with_lease(mut self, lease: Duration) -> AsyncJobs {
        if let Some(jobs) = Arc::get_mut(&mut self.jobs) {
            jobs.lease = lease.max(Duration::from_millis(30));
        }
        self
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

    /// How many jobs are running in this process.
    pub fn running(&self) -> usize {
        let mut running = self.jobs.running.lock().unwrap_or_else(|p| p.into_inner());
        running.retain(|_, task| !task.is_finished());
        running.len()
    }

    fn forget(&self, id: &str) -> Option<AbortHandle> {
        self.jobs
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
    }

    /// Records a finished job's answer (unless it was cancelled meanwhile).
    async fn finish(&self, id: &str, result: AsyncJobResult) -> Result<(), SofaError> {
        let now = Utc::now();
        let mut tx = self.jobs.store.begin().await?;
        if let Some(mut job) = tx.get_async_job(id).await? {
            job.result = Some(result);
            job.expires_at = now + chrono(self.jobs.retention);
            tx.update_async_job(job).await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Starts renewing this process's running jobs, once.
    fn start_renewing(&self) {
        if self.jobs.renewing.swap(true, Ordering::SeqCst) {
            return;
        }
        tokio::spawn(renew(Arc::downgrade(&self.jobs)));
    }
}

/// Every third of the lease, moves the lease of this process's running jobs on; a job
/// cancelled on another instance (its record gone) is aborted here. Ends with the jobs.
async fn renew(jobs: Weak<Jobs>) {
    loop {
        let Some(every) = jobs.upgrade().map(|j| j.lease / 3) else {
            return;
        };
        tokio::time::sleep(every).await;
        let Some(jobs) = jobs.upgrade() else {
            return;
        };
        let ids: Vec<String> = {
            let mut running = jobs.running.lock().unwrap_or_else(|p| p.into_inner());
            running.retain(|_, task| !task.is_finished());
            running.keys().cloned().collect()
        };
        if let Err(e) = renew_leases(&jobs, &ids).await {
            tracing::warn!(error = %e, "asynchronous job leases not renewed");
        }
    }
}

async fn renew_leases(jobs: &Jobs, ids: &[String]) -> Result<(), SofaError> {
    if ids.is_empty() {
        return Ok(());
    }
    let lease_until = Utc::now() + chrono(jobs.lease);
    let mut tx = jobs.store.begin().await?;
    for id in ids {
        match tx.get_async_job(id).await? {
            Some(mut job) if job.result.is_none() => {
                job.lease_until = lease_until;
                job.expires_at = lease_until + chrono(jobs.retention);
                tx.update_async_job(job).await?;
            }
            Some(_) => {}
            None => {
                let task = jobs
                    .running
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(id);
                if let Some(task) = task {
                    task.abort();
                }
            }
        }
    }
    tx.commit().await?;
    Ok(())
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
    if let Err(e) = submit(&jobs, &id, &caller).await {
        return e.into_response();
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
            let result = into_result(response).await;
            if let Err(e) = jobs.finish(&id, result).await {
                // The lease runs out and the job reads as failed.
                tracing::warn!(job = %id, error = %e, "asynchronous result not recorded");
            }
            jobs.forget(&id);
        })
    };
    if !task.is_finished() {
        jobs.jobs
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), task.abort_handle());
    }
    jobs.start_renewing();
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

/// Records a new job of `caller`, running here under a lease.
async fn submit(jobs: &AsyncJobs, id: &str, caller: &Caller) -> Result<(), SofaError> {
    let lease_until = Utc::now() + chrono(jobs.jobs.lease);
    let record = AsyncJobRecord {
        id: id.to_string(),
        client_id: caller.client_id.clone(),
        launch_id: caller.launch_id.clone(),
        lease_until,
        expires_at: lease_until + chrono(jobs.jobs.retention),
        result: None,
    };
    let mut tx = jobs.jobs.store.begin().await?;
    tx.insert_async_job(record).await?;
    tx.commit().await?;
    Ok(())
}

/// A route's answer as the store keeps it.
async fn into_result(response: Response) -> AsyncJobResult {
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let headers = KEPT_HEADERS
        .iter()
        .filter_map(|name| {
            let value = parts.headers.get(name)?.to_str().ok()?;
            Some((name.as_str().to_string(), value.to_string()))
        })
        .collect();
    AsyncJobResult {
        status: parts.status.as_u16(),
        headers,
        body_base64: STANDARD.encode(&body),
    }
}

/// The answer a finished job gives its poller.
fn from_result(result: &AsyncJobResult) -> Response {
    let status = StatusCode::from_u16(result.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = Bytes::from(STANDARD.decode(&result.body_base64).unwrap_or_default());
    let mut response = (status, body).into_response();
    for (name, value) in &result.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// The job `id` if `caller` may see it: the same client, and the same launch (a token of the
/// app's next launch does not read the last one's results). 404 otherwise, so others cannot
/// learn that it exists.
async fn visible_job(
    jobs: &AsyncJobs,
    headers: &HeaderMap,
    id: &str,
) -> Result<AsyncJobRecord, SofaError> {
    let caller = authenticate(jobs.jobs.tokens.as_ref(), headers).await?;
    let mut tx = jobs.jobs.store.begin_read().await?;
    tx.get_async_job(id)
        .await?
        .filter(|job| job.client_id == caller.client_id && job.launch_id == caller.launch_id)
        .ok_or_else(|| unknown(id))
}

fn unknown(id: &str) -> SofaError {
    SofaError::not_found(format!("no asynchronous request {id} is known"))
}

/// A job whose instance stopped renewing it: it ended without an answer.
fn abandoned() -> SofaError {
    SofaError::internal(
        "the server running this request stopped before it finished; \
         read the resource to learn whether the write took effect",
    )
}

async fn poll(
    State(jobs): State<AsyncJobs>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, SofaError> {
    let job = visible_job(&jobs, &headers, &id).await?;
    let now = Utc::now();
    match &job.result {
        Some(result) => Ok(from_result(result)),
        None if job.lease_until < now => Err(abandoned()),
        None => Ok((
            StatusCode::ACCEPTED,
            [
                (header::RETRY_AFTER, HeaderValue::from_static("1")),
                (
                    HeaderName::from_static("x-progress"),
                    HeaderValue::from_static("in progress"),
                ),
            ],
        )
            .into_response()),
    }
}

async fn cancel(
    State(jobs): State<AsyncJobs>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, SofaError> {
    visible_job(&jobs, &headers, &id).await?;
    let mut tx = jobs.jobs.store.begin().await?;
    tx.delete_async_job(&id).await?;
    tx.commit().await?;
    // Aborting drops the write's future: an uncommitted transaction rolls back, and a
    // delivery in progress ends without a commit (D-08). A job running on another instance
    // is aborted there when it next renews its lease and finds the record gone.
    if let Some(task) = jobs.forget(&id) {
        task.abort();
    }
    Ok(StatusCode::ACCEPTED.into_response())
}
