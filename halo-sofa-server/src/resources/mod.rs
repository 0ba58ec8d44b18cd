//! The FHIR resource server apps talk to (REQ RS-02..RS-05, RS-07): read, search, create,
//! update and delete, with versions, `ETag` and `If-Match`, every request checked against the
//! token's scopes and launch. Writes go through the host's
//! [`ChangeNotifier`](crate::fhir::ChangeNotifier) as a [`PreparedWrite`](crate::fhir::PreparedWrite).

mod access;
mod params;
mod write;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use halo_model::fhir::RawResource;
use halo_model::outcome::{IssueType, Severity};
use halo_model::scope::Interaction;
use serde_json::{Value, json};

use self::access::{Reach, may_see, reach};
use self::write::AppWrite;
use crate::auth::{Caller, TokenValidator};
use crate::clock::Clock;
use crate::config::SofaConfig;
use crate::error::SofaError;
use crate::fhir::notify::{ChangeAction, ChangeNotifier, NotifyError, WriteError};
use crate::fhir::{Capabilities, ResourceValidator, SearchParam};
use crate::http::{
    authenticate, fhir_json, fhir_json_bytes, format_parameter, read_fhir_json, response_format,
};
use crate::store::{LaunchRecord, ResourceQuery, Store, StoredResource, Transaction, meta_instant};

/// The most `_count` may ask for.
const MAX_COUNT: u64 = 200;
/// `_count` when none is given.
const DEFAULT_COUNT: u64 = 50;

/// What the resource server needs.
#[derive(Clone)]
pub struct ResourceServer {
    store: Arc<dyn Store>,
    tokens: Arc<dyn TokenValidator>,
    validator: Arc<dyn ResourceValidator>,
    notifier: Arc<dyn ChangeNotifier>,
    clock: Arc<dyn Clock>,
    config: Arc<SofaConfig>,
}

impl std::fmt::Debug for ResourceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceServer")
            .field("base_url", &self.config.base_url)
            .finish_non_exhaustive()
    }
}

impl ResourceServer {
    /// A resource server over the given seams.
    pub fn new(
        store: Arc<dyn Store>,
        tokens: Arc<dyn TokenValidator>,
        validator: Arc<dyn ResourceValidator>,
        notifier: Arc<dyn ChangeNotifier>,
        clock: Arc<dyn Clock>,
        config: Arc<SofaConfig>,
    ) -> ResourceServer {
        ResourceServer {
            store,
            tokens,
            validator,
            notifier,
            clock,
            config,
        }
    }

    /// What it offers, for the CapabilityStatement.
    pub fn offers(&self, capabilities: &mut Capabilities) {
        for resource_type in self.config.supported_types.iter() {
            let entry = capabilities.resource_mut(resource_type);
            for interaction in [
                "read",
                "vread",
                "history-instance",
                "search-type",
                "create",
                "update",
                "delete",
            ] {
                if !entry.interactions.iter().any(|i| i == interaction) {
                    entry.interactions.push(interaction.into());
                }
            }
            // Exactly what `search` implements, each with its R4 definition.
            let implemented = std::iter::once(("_id", "token", params::ID_DEFINITION)).chain(
                params::reference_params(resource_type)
                    .into_iter()
                    .map(|(code, param)| (code, "reference", param.url.as_str())),
            );
            for (name, kind, definition) in implemented {
                if !entry.search_params.iter().any(|p| p.name == name) {
                    entry.search_params.push(SearchParam {
                        name: name.into(),
                        kind: kind.into(),
                        definition: Some(definition.into()),
                    });
                }
            }
            entry.versioned = true;
        }
    }

    /// The routes, relative to the FHIR base: `/{type}`, `/{type}/{id}`, and the versions of a
    /// resource, `/{type}/{id}/_history` and `/{type}/{id}/_history/{vid}`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/{resource_type}", get(search).post(create))
            .route(
                "/{resource_type}/{id}",
                get(read).put(update).delete(delete),
            )
            .route("/{resource_type}/{id}/_history", get(history))
            .route("/{resource_type}/{id}/_history/{version}", get(vread))
            .with_state(self.clone())
    }

    fn check_type(&self, resource_type: &str) -> Result<(), SofaError> {
        if self.config.supported_types.contains(resource_type) {
            Ok(())
        } else {
            Err(SofaError::not_found(format!(
                "resource type {resource_type} is not supported by this server"
            )))
        }
    }

    /// The caller and its launch, which must still live (REQ RS-02, SC-12).
    async fn caller(
        &self,
        headers: &HeaderMap,
    ) -> Result<(Caller, Option<LaunchRecord>), SofaError> {
        let caller = authenticate(self.tokens.as_ref(), headers).await?;
        let Some(launch_id) = caller.launch_id.clone() else {
            return Ok((caller, None));
        };
        let now = self.clock.now();
        // Read live by the token check a moment ago, in this request.
        if let Some(launch) = caller
            .checked_launch
            .clone()
            .filter(|l| l.launch_id == launch_id && !l.is_expired(now))
        {
            return Ok((caller, Some(launch)));
        }
        let launch = self
            .store
            .read(move |tx| Box::pin(async move { live_launch(&launch_id, now, tx).await }))
            .await?;
        Ok((caller, Some(launch)))
    }

    /// A create's or update's caller, its live launch and what its token reaches, checked
    /// before the body is read (in that order: token, answer format, type, scope).
    async fn writing(
        &self,
        headers: &HeaderMap,
        query: &RawQuery,
        resource_type: &str,
        interaction: Interaction,
    ) -> Result<(Caller, Option<LaunchRecord>, Reach), SofaError> {
        let (caller, launch) = self.caller(headers).await?;
        response_format(headers, format_parameter(query.0.as_deref()).as_deref())?;
        self.check_type(resource_type)?;
        let reach = reach(&caller, launch.as_ref(), resource_type, interaction)?;
        Ok((caller, launch, reach))
    }

    /// Runs a read request: the token, the answer format and the type are checked first (in
    /// that order: an unauthenticated request learns nothing else), then `work` runs in one
    /// read unit (one snapshot, one hand-over to the store) with the caller's live launch read
    /// in it.
    async fn reading<R, F>(
        &self,
        headers: &HeaderMap,
        query: &RawQuery,
        resource_type: &str,
        work: F,
    ) -> Result<R, SofaError>
    where
        F: for<'t> FnOnce(Reading<'t>) -> crate::store::BoxFuture<'t, Result<R, SofaError>>
            + Send
            + 'static,
        R: Send + 'static,
    {
        let caller = authenticate(self.tokens.as_ref(), headers).await?;
        response_format(headers, format_parameter(query.0.as_deref()).as_deref())?;
        self.check_type(resource_type)?;
        let now = self.clock.now();
        self.store
            .read(move |tx| {
                Box::pin(async move {
                    let launch = match &caller.launch_id {
                        Some(launch_id) => Some(live_launch(launch_id, now, tx).await?),
                        None => None,
                    };
                    work(Reading { caller, launch, tx }).await
                })
            })
            .await
    }
}

/// The launch `launch_id` read in `tx`, which must still live at `now` (REQ RS-02, SC-12).
async fn live_launch(
    launch_id: &str,
    now: chrono::DateTime<chrono::Utc>,
    tx: &mut dyn Transaction,
) -> Result<LaunchRecord, SofaError> {
    match tx.get_launch(launch_id).await? {
        Some(l) if !l.is_expired(now) => Ok(l),
        _ => Err(SofaError::unauthorized(
            "the launch of this token was cleared or has expired",
        )),
    }
}

/// A read request in progress: who asks, for which launch, and the read transaction of its
/// unit.
struct Reading<'t> {
    caller: Caller,
    launch: Option<LaunchRecord>,
    tx: &'t mut dyn Transaction,
}

fn weak_etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

/// `W/"3"` or `"3"` → 3.
fn parse_etag(value: &str) -> Option<u64> {
    value
        .trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .ok()
}

fn resource_response(
    status: StatusCode,
    stored: &StoredResource,
    location: Option<String>,
) -> Response {
    let mut response = fhir_json_bytes(status, stored.resource.to_vec());
    let headers = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&weak_etag(stored.version)) {
        headers.insert(header::ETAG, etag);
    }
    if let Ok(modified) = HeaderValue::from_str(
        &stored
            .last_updated
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string(),
    ) {
        headers.insert(header::LAST_MODIFIED, modified);
    }
    if let Some(location) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(header::LOCATION, location);
    }
    response
}

/// `GET /{type}/{id}` (REQ RS-04).
async fn read(
    State(server): State<ResourceServer>,
    Path((resource_type, id)): Path<(String, String)>,
    headers: HeaderMap,
    query: RawQuery,
) -> Result<Response, SofaError> {
    let wanted = resource_type.clone();
    server
        .reading(&headers, &query, &wanted, move |mut reading| {
            Box::pin(async move { read_current(&mut reading, &resource_type, &id).await })
        })
        .await
}

async fn read_current(
    reading: &mut Reading<'_>,
    resource_type: &str,
    id: &str,
) -> Result<Response, SofaError> {
    let Reading { caller, launch, tx } = reading;
    let reach = reach(caller, launch.as_ref(), resource_type, Interaction::Read)?;
    match tx.read_resource(resource_type, id).await? {
        Some(stored) if may_see(caller, &reach, &stored) => {
            Ok(resource_response(StatusCode::OK, &stored, None))
        }
        // Another launch's or patient's resource is answered like a missing one (RS-05).
        _ => Err(SofaError::not_found(format!(
            "{resource_type}/{id} is not found"
        ))),
    }
}

/// The versions of a resource the caller may see, newest first: none unless it may see the
/// current one (a past version of another launch's or patient's resource is as hidden as the
/// resource), and of the past ones only those that were in its reach themselves.
async fn visible_versions(
    server: &ResourceServer,
    headers: &HeaderMap,
    query: &RawQuery,
    resource_type: &str,
    id: &str,
    version: Option<u64>,
) -> Result<Vec<StoredResource>, SofaError> {
    let (wanted, id) = (resource_type.to_owned(), id.to_owned());
    server
        .reading(headers, query, resource_type, move |mut reading| {
            Box::pin(async move { versions_in(&mut reading, &wanted, &id, version).await })
        })
        .await
}

async fn versions_in(
    reading: &mut Reading<'_>,
    resource_type: &str,
    id: &str,
    version: Option<u64>,
) -> Result<Vec<StoredResource>, SofaError> {
    let Reading { caller, launch, tx } = reading;
    let reach = reach(caller, launch.as_ref(), resource_type, Interaction::Read)?;
    let current = tx.read_resource(resource_type, id).await?;
    let versions = match (&current, version) {
        (Some(current), _) if !may_see(caller, &reach, current) => Vec::new(),
        (None, _) => Vec::new(),
        (Some(_), Some(version)) => tx
            .read_resource_version(resource_type, id, version)
            .await?
            .into_iter()
            .collect(),
        (Some(_), None) => tx.resource_history(resource_type, id).await?,
    };
    Ok(versions
        .into_iter()
        .filter(|v| may_see(caller, &reach, v))
        .collect())
}

/// `GET /{type}/{id}/_history/{vid}`: one version (vread), current or past, while the resource
/// lives; what `Location` of a create or update names.
async fn vread(
    State(server): State<ResourceServer>,
    Path((resource_type, id, version)): Path<(String, String, String)>,
    headers: HeaderMap,
    query: RawQuery,
) -> Result<Response, SofaError> {
    let not_found = || {
        SofaError::not_found(format!(
            "{resource_type}/{id}/_history/{version} is not found"
        ))
    };
    // A version that is not a number a store holds is looked up as 0, which no resource has:
    // unknown like any other, and only after the token is checked.
    let number = version
        .parse::<u64>()
        .ok()
        .filter(|v| i64::try_from(*v).is_ok())
        .unwrap_or(0);
    let found =
        visible_versions(&server, &headers, &query, &resource_type, &id, Some(number)).await?;
    match found.first() {
        Some(stored) => Ok(resource_response(StatusCode::OK, stored, None)),
        None => Err(not_found()),
    }
}

/// `GET /{type}/{id}/_history`: every version of a live resource, newest first, as a `history`
/// Bundle.
async fn history(
    State(server): State<ResourceServer>,
    Path((resource_type, id)): Path<(String, String)>,
    headers: HeaderMap,
    query: RawQuery,
) -> Result<Response, SofaError> {
    let versions = visible_versions(&server, &headers, &query, &resource_type, &id, None).await?;
    if versions.is_empty() {
        return Err(SofaError::not_found(format!(
            "{resource_type}/{id} is not found"
        )));
    }
    let base = &server.config.base_url;
    let entries: Vec<Value> = versions
        .iter()
        .map(|v| {
            let (method, url, status) = if v.version == 1 {
                ("POST", resource_type.clone(), "201 Created")
            } else {
                ("PUT", format!("{resource_type}/{id}"), "200 OK")
            };
            json!({
                "fullUrl": format!("{base}/{resource_type}/{id}"),
                "resource": v.resource.to_value(),
                "request": {"method": method, "url": url},
                "response": {
                    "status": status,
                    "etag": weak_etag(v.version),
                    "lastModified": meta_instant(v.last_updated),
                },
            })
        })
        .collect();
    Ok(fhir_json(
        StatusCode::OK,
        &json!({
            "resourceType": "Bundle",
            "type": "history",
            "total": entries.len(),
            "link": [{"relation": "self", "url": format!("{base}/{resource_type}/{id}/_history")}],
            "entry": entries,
        }),
    ))
}

/// `GET /{type}?_id&patient&subject&_count&_offset` (REQ RS-04); the parameters are
/// `params`'.
async fn search(
    State(server): State<ResourceServer>,
    Path(resource_type): Path<String>,
    headers: HeaderMap,
    query: RawQuery,
) -> Result<Response, SofaError> {
    let (wanted, searching) = (resource_type.clone(), server.clone());
    let asked = RawQuery(query.0.clone());
    server
        .reading(&headers, &asked, &wanted, move |mut reading| {
            Box::pin(
                async move { search_in(&mut reading, &searching, &resource_type, &query).await },
            )
        })
        .await
}

async fn search_in(
    reading: &mut Reading<'_>,
    server: &ResourceServer,
    resource_type: &str,
    query: &RawQuery,
) -> Result<Response, SofaError> {
    let Reading { caller, launch, tx } = reading;
    let reach = reach(caller, launch.as_ref(), resource_type, Interaction::Search)?;
    let params: Vec<(String, String)> = query
        .0
        .as_deref()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let number = |name: &str, default: u64| -> Result<u64, SofaError> {
        match params.iter().find(|(k, _)| k == name) {
            None => Ok(default),
            // A number no store can hold is the client's error (400), not a storage failure.
            Some((_, v)) => v
                .parse::<u64>()
                .ok()
                .filter(|n| i64::try_from(*n).is_ok())
                .ok_or_else(|| {
                    SofaError::bad_request(
                        IssueType::Value,
                        format!("{name} must be an integer from 0 to 9223372036854775807"),
                    )
                }),
        }
    };
    let count = number("_count", DEFAULT_COUNT)?.min(MAX_COUNT);
    let offset = number("_offset", 0)?;
    let criteria = params::criteria(resource_type, &params)
        .map_err(|why| SofaError::bad_request(IssueType::NotSupported, why))?;
    let mut ids = criteria.ids;
    // The store narrows by one reference (any element); every criterion is then checked on
    // the elements its parameter names.
    let mut references = criteria.references.first().map(|c| c.reference.clone());
    let mut empty = false;
    if let Reach::Compartment(patient) = &reach {
        // A patient/ grant narrows every search to the launch patient's compartment.
        if resource_type == "Patient" {
            let own = patient.trim_start_matches("Patient/").to_string();
            empty = !ids.is_empty() && !ids.contains(&own);
            ids = vec![own];
        } else {
            references = Some(patient.clone());
        }
    }
    let found = if empty {
        Vec::new()
    } else {
        tx.search_resources(&ResourceQuery {
            resource_type: Some(resource_type.to_owned()),
            launch_id: caller.launch_id.clone(),
            ids,
            references,
            offset,
            limit: count + 1,
        })
        .await?
    };
    let has_next = found.len() as u64 > count;
    let page: Vec<StoredResource> = found
        .into_iter()
        .take(count as usize)
        .filter(|s| may_see(caller, &reach, s))
        .filter(|s| criteria.references.iter().all(|c| c.matches(&s.resource)))
        .collect();
    let next = has_next.then_some(offset + count);
    Ok(fhir_json(
        StatusCode::OK,
        &bundle(server, resource_type, &params, &page, next),
    ))
}

fn bundle(
    server: &ResourceServer,
    resource_type: &str,
    params: &[(String, String)],
    page: &[StoredResource],
    next_offset: Option<u64>,
) -> Value {
    let base = format!("{}/{resource_type}", server.config.base_url);
    let link = |offset: Option<u64>| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in params
            .iter()
            .filter(|(k, _)| k != "_offset" && k != "_format")
        {
            query.append_pair(k, v);
        }
        if let Some(offset) = offset {
            query.append_pair("_offset", &offset.to_string());
        }
        let query = query.finish();
        if query.is_empty() {
            base.clone()
        } else {
            format!("{base}?{query}")
        }
    };
    let mut links = vec![json!({"relation": "self", "url": link(None)})];
    if let Some(next) = next_offset {
        links.push(json!({"relation": "next", "url": link(Some(next))}));
    }
    json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": meta_instant(server.clock.now()),
        "link": links,
        "entry": page.iter().map(|s| json!({
            "fullUrl": format!("{}/{}/{}", server.config.base_url, s.resource_type(), s.id()),
            "resource": s.resource.to_value(),
            "search": {"mode": "match"},
        })).collect::<Vec<_>>(),
    })
}

/// Reads and validates the body of a create or update (REQ RS-07).
async fn read_resource_body(
    server: &ResourceServer,
    headers: &HeaderMap,
    body: Body,
    resource_type: &str,
) -> Result<RawResource, SofaError> {
    let value = read_fhir_json(headers, body, server.config.json_limits).await?;
    let resource = RawResource::from_value(value)
        .map_err(|e| SofaError::bad_request(IssueType::Structure, e.to_string()))?;
    if resource.resource_type() != resource_type {
        return Err(SofaError::bad_request(
            IssueType::Invalid,
            format!(
                "the body is a {}, the URL names {resource_type}",
                resource.resource_type()
            ),
        ));
    }
    let errors: Vec<_> = server
        .validator
        .validate(&resource)
        .into_iter()
        .filter(|i| matches!(i.severity, Severity::Error | Severity::Fatal))
        .collect();
    if errors.is_empty() {
        return Ok(resource);
    }
    let profile_only = errors.iter().all(|i| {
        matches!(
            i.code,
            IssueType::Invariant | IssueType::BusinessRule | IssueType::CodeInvalid
        )
    });
    let status = if profile_only {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::BAD_REQUEST
    };
    Err(SofaError::new(status, errors.into_iter().collect()))
}

/// The write's answer when the notifier refused it (D-08).
fn write_error(error: WriteError) -> Response {
    match error {
        WriteError::Write(e) => e.into_response(),
        WriteError::Notify(NotifyError::NoActiveSubscription) => {
            SofaError::conflict(NotifyError::NoActiveSubscription.to_string()).into_response()
        }
        WriteError::Notify(
            e @ NotifyError::DeliveryFailed {
                retry_after_seconds,
                ..
            },
        ) => {
            let mut response = SofaError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                halo_model::outcome::OperationOutcome::error(IssueType::Transient, e.to_string()),
            )
            .into_response();
            if let Ok(value) = HeaderValue::from_str(&retry_after_seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
    }
}

struct WriteRequest {
    action: ChangeAction,
    resource_type: String,
    id: String,
    resource: Option<RawResource>,
    expected_version: Option<u64>,
}

async fn perform(
    server: &ResourceServer,
    caller: &Caller,
    launch: Option<LaunchRecord>,
    reach: Reach,
    request: WriteRequest,
) -> Result<Response, SofaError> {
    // Data written belongs to a launch (D-10), whose PoC is told of it (D-08).
    let launch =
        launch.ok_or_else(|| SofaError::forbidden("writes need a token issued for a launch"))?;
    if let (Reach::Compartment(patient), Some(resource)) = (&reach, &request.resource) {
        let mut placed = resource.clone();
        placed.set_id(request.id.clone());
        if !access::in_compartment(&placed, patient) {
            return Err(SofaError::forbidden(
                "a patient/ scope only writes resources of the launch patient",
            ));
        }
    }
    let write = AppWrite::new(
        server.store.clone(),
        server.clock.clone(),
        launch.launch_id.clone(),
        launch.client_id.clone(),
        caller.client_id.clone(),
        request.action,
        request.resource_type.clone(),
        request.id.clone(),
        request.resource,
        request.expected_version,
        reach,
    );
    let committed = match server.notifier.deliver_then_commit(Box::new(write)).await {
        Ok(committed) => committed,
        Err(error) => return Ok(write_error(error)),
    };
    let stored = committed.stored;
    Ok(match request.action {
        ChangeAction::Delete => StatusCode::NO_CONTENT.into_response(),
        action => {
            let location = format!(
                "{}/{}/{}/_history/{}",
                server.config.base_url,
                stored.resource_type(),
                stored.id(),
                stored.version
            );
            let status = if action == ChangeAction::Create {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            resource_response(status, &stored, Some(location))
        }
    })
}

fn if_match(headers: &HeaderMap) -> Result<Option<u64>, SofaError> {
    match headers.get(header::IF_MATCH) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(parse_etag)
            .map(Some)
            .ok_or_else(|| {
                SofaError::bad_request(IssueType::Value, "If-Match must be an ETag like W/\"3\"")
            }),
    }
}

/// `POST /{type}` (REQ RS-04, RS-07).
async fn create(
    State(server): State<ResourceServer>,
    Path(resource_type): Path<String>,
    headers: HeaderMap,
    query: RawQuery,
    body: Body,
) -> Result<Response, SofaError> {
    let (caller, launch, reach) = server
        .writing(&headers, &query, &resource_type, Interaction::Create)
        .await?;
    let resource = read_resource_body(&server, &headers, body, &resource_type).await?;
    let request = WriteRequest {
        action: ChangeAction::Create,
        resource_type,
        id: crate::store::new_resource_id(),
        resource: Some(resource),
        expected_version: None,
    };
    perform(&server, &caller, launch, reach, request).await
}

/// `PUT /{type}/{id}` (REQ RS-04, RS-07): `If-Match` makes it conditional on the version.
async fn update(
    State(server): State<ResourceServer>,
    Path((resource_type, id)): Path<(String, String)>,
    headers: HeaderMap,
    query: RawQuery,
    body: Body,
) -> Result<Response, SofaError> {
    let (caller, launch, reach) = server
        .writing(&headers, &query, &resource_type, Interaction::Update)
        .await?;
    let expected_version = if_match(&headers)?;
    let resource = read_resource_body(&server, &headers, body, &resource_type).await?;
    if resource.id() != Some(id.as_str()) {
        return Err(SofaError::bad_request(
            IssueType::Invalid,
            "the resource's id must equal the id in the URL",
        ));
    }
    let request = WriteRequest {
        action: ChangeAction::Update,
        resource_type,
        id,
        resource: Some(resource),
        expected_version,
    };
    perform(&server, &caller, launch, reach, request).await
}

/// `DELETE /{type}/{id}`.
async fn delete(
    State(server): State<ResourceServer>,
    Path((resource_type, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, SofaError> {
    let (caller, launch) = server.caller(&headers).await?;
    server.check_type(&resource_type)?;
    let expected_version = if_match(&headers)?;
    let reach = reach(
        &caller,
        launch.as_ref(),
        &resource_type,
        Interaction::Delete,
    )?;
    let request = WriteRequest {
        action: ChangeAction::Delete,
        resource_type,
        id,
        resource: None,
        expected_version,
    };
    perform(&server, &caller, launch, reach, request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    // REQ: RS-04
    #[test]
    fn etags_are_weak_versions() {
        assert_eq!(weak_etag(3), "W/\"3\"");
        assert_eq!(parse_etag("W/\"3\""), Some(3));
        assert_eq!(parse_etag("\"12\""), Some(12));
        assert_eq!(parse_etag("W/\"x\""), None);
    }
}
