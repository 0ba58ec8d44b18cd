//! The axum routes of the subscription service.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use halo_model::outcome::IssueType;
use halo_model::subscription::{
    SOFA_CONTENT_UPDATE_TOPIC_ID, SubscriptionStatus as ModelStatus, parse_binding_token_input,
    sofa_content_update_topic,
};
use serde_json::{Value, json};

use super::Inner;
use super::manager::store_status_of;
use super::operations::{
    parse_events_body, parse_events_query, parse_status_body, parse_status_items,
};
use super::websocket;
use crate::auth::Caller;
use crate::error::SofaError;
use crate::http::{authenticate, fhir_json, read_fhir_json, response_format};
use crate::store::{SubscriptionRecord, meta_instant};

type Shared = State<Arc<Inner>>;

pub(super) fn router(inner: Arc<Inner>) -> Router {
    let websocket_path = inner.settings.websocket_path.clone();
    Router::new()
        .route(
            &format!("/Basic/{SOFA_CONTENT_UPDATE_TOPIC_ID}"),
            get(topic),
        )
        .route("/Subscription", post(create).get(search))
        .route(
            "/Subscription/$status",
            get(status_type).post(status_type_post),
        )
        .route("/Subscription/$get-ws-binding-token", post(binding_token))
        .route("/Subscription/{id}", get(read).put(update).delete(delete))
        .route(
            "/Subscription/{id}/$status",
            get(status_instance).post(status_instance),
        )
        .route("/Subscription/{id}/$events", get(events).post(events_post))
        .route(
            "/Subscription/{id}/$get-ws-binding-token",
            post(binding_token_instance),
        )
        .route(&websocket_path, get(socket))
        .with_state(inner)
}

fn query_items(query: &RawQuery) -> Vec<(String, String)> {
    query
        .0
        .as_deref()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn format_of(items: &[(String, String)]) -> Option<&str> {
    items
        .iter()
        .find(|(n, _)| n == "_format")
        .map(|(_, v)| v.as_str())
}

/// Authenticates and negotiates the response format, in one step for every handler.
async fn caller(
    inner: &Inner,
    headers: &HeaderMap,
    items: &[(String, String)],
) -> Result<Caller, SofaError> {
    let caller = authenticate(inner.tokens.as_ref(), headers).await?;
    response_format(headers, format_of(items))?;
    Ok(caller)
}

fn with_location(inner: &Inner, status: StatusCode, record: &SubscriptionRecord) -> Response {
    let mut response = fhir_json(status, &inner.render(record));
    let location = format!("{}/_history/1", inner.subscription_url(&record.id));
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    if let Ok(value) = HeaderValue::from_str(&format!("\"{}\"", meta_instant(record.updated_at))) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// `GET /Basic/sofa-content-update`: the topic in its R4 `Basic` form (REQ SUB-01).
async fn topic(
    State(inner): Shared,
    headers: HeaderMap,
    query: RawQuery,
) -> Result<Response, SofaError> {
    let items = query_items(&query);
    response_format(&headers, format_of(&items))?;
    let mut basic = sofa_content_update_topic(&inner.config.supported_types, "2024-01-15");
    if let Some(url) = basic
        .get_mut("extension")
        .and_then(Value::as_array_mut)
        .and_then(|e| e.first_mut())
    {
        url["valueUri"] = json!(inner.config.content_update_topic);
    }
    Ok(fhir_json(StatusCode::OK, &basic))
}

async fn create(
    State(inner): Shared,
    headers: HeaderMap,
    query: RawQuery,
    body: Body,
) -> Result<Response, SofaError> {
    let items = query_items(&query);
    let caller = caller(&inner, &headers, &items).await?;
    let body = read_fhir_json(&headers, body, inner.config.json_limits).await?;
    let record = inner.create(&caller, &body).await?;
    Ok(with_location(&inner, StatusCode::CREATED, &record))
}

async fn search(
    State(inner): Shared,
    headers: HeaderMap,
    query: RawQuery,
) -> Result<Response, SofaError> {
    let items = query_items(&query);
    let caller = caller(&inner, &headers, &items).await?;
    let mut statuses = Vec::new();
    let mut ids = Vec::new();
    for (name, value) in &items {
        match name.as_str() {
            "_format" => {}
            "status" => {
                for code in value.split(',') {
                    let status = ModelStatus::from_code(code).ok_or_else(|| {
                        SofaError::bad_request(
                            IssueType::CodeInvalid,
                            format!("unknown status {code}"),
                        )
                    })?;
                    statuses.push(store_status_of(status));
                }
            }
            "_id" => ids.extend(value.split(',').map(str::to_string)),
            other => {
                return Err(SofaError::bad_request(
                    IssueType::NotSupported,
                    format!("search parameter {other} is not supported on Subscription"),
                ));
            }
        }
    }
    let mut records = inner.search(&caller, &statuses).await?;
    if !ids.is_empty() {
        records.retain(|r| ids.contains(&r.id));
    }
    let entries: Vec<Value> = records
        .iter()
        .map(|r| {
            json!({
                "fullUrl": inner.subscription_url(&r.id),
                "resource": inner.render(r),
                "search": {"mode": "match"},
            })
        })
        .collect();
    let bundle = json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().to_string(),
        "type": "searchset",
        "total": entries.len(),
        "link": [{"relation": "self", "url": format!("{}/Subscription", inner.config.base_url)}],
        "entry": entries,
    });
    Ok(fhir_json(StatusCode::OK, &bundle))
}

async fn read(
    State(inner): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: RawQuery,
) -> Result<Response, SofaError> {
    let items = query_items(&query);
    let caller = caller(&inner, &headers, &items).await?;
    inner.require_scope(&caller, halo_model::scope::Interaction::Read)?;
    let record = inner.owned(&caller, &id).await?;
    Ok(with_location(&inner, StatusCode::OK, &record))
}

async fn update(
    State(inner): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: RawQuery,
    body: Body,
) -> Result<Response, SofaError> {
    let items = query_items(&query);
    let caller = caller(&inner, &headers, &items).await?;
    let body = read_fhir_json(&headers, body, inner.config.json_limits).await?;
    let record = inner.update(&caller, &id, &body).await?;
    Ok(with_location(&inner, StatusCode::OK, &record))
}

async fn delete(
    State(inner): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: RawQuery,
) -> Result<Response, SofaError> {
    let items = query_items(&query);
    let caller = caller(&inner, &headers, &items).await?;
    inner.delete(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn status_type(
    State(inner): Shared,
    headers: HeaderMap,
    query: RawQuery,
) -> Result<Response, SofaError> {
    let items = query_items(&query);
    let caller = caller(&inner, &headers, &items).await?;
    let status_query = parse_status_items(&items)?;
    let self_url = format!("{}/Subscription/$status", inner.config.base_url);
    Ok(fhir_json(
        StatusCode::OK,
        &inner.status(&caller, &status_query, &self_url).await?,
    ))
}

async fn status_type_post(
    State(inner): Shared,
    headers: HeaderMap,
    query: RawQuery,
    body: Body,
) -> Result<Response, SofaError> {
    let items = query_items(&query);
    let caller = caller(&inner, &headers, &items).await?;
    let body = read_fhir_json(&headers, body, inner.config.json_limits).await?;
    let status_query = parse_status_body(&body)?;
    let self_url = format!("{}/Subscription/$status", inner.config.base_url);
    Ok(fhir_json(
        StatusCode::OK,
        &inner.status(&caller, &status_query, &self_url).await?,
    ))
}

async fn status_instance(
    State(inner): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: RawQuery,
) -> Result<Response, SofaError> {
    let items = query_items(&query);
    let caller = caller(&inner, &headers, &items).await?;
    let status_query = halo_model::subscription::StatusQuery {
        ids: vec![id],
        statuses: Vec::new(),
    };
    let self_url = inner.status_url(&status_query.ids[0]);
    Ok(fhir_json(
        StatusCode::OK,
        &inner.status(&caller, &status_query, &self_url).await?,
    ))
}

async fn events(
    State(inner): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: RawQuery,
) -> Result<Response, SofaError> {
    let items = query_items(&query);
    let caller = caller(&inner, &headers, &items).await?;
    let events_query = parse_events_query(&items)?;
    Ok(fhir_json(
        StatusCode::OK,
        &inner.events(&caller, &id, &events_query).await?,
    ))
}

async fn events_post(
    State(inner): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: RawQuery,
    body: Body,
) -> Result<Response, SofaError> {
    let items = query_items(&query);
    let caller = caller(&inner, &headers, &items).await?;
    let body = read_fhir_json(&headers, body, inner.config.json_limits).await?;
    let events_query = parse_events_body(&body)?;
    Ok(fhir_json(
        StatusCode::OK,
        &inner.events(&caller, &id, &events_query).await?,
    ))
}

async fn binding_token(
    State(inner): Shared,
    headers: HeaderMap,
    query: RawQuery,
    body: Body,
) -> Result<Response, SofaError> {
    let items = query_items(&query);
    let caller = caller(&inner, &headers, &items).await?;
    let ids = if headers.contains_key(header::CONTENT_TYPE) {
        let body = read_fhir_json(&headers, body, inner.config.json_limits).await?;
        parse_binding_token_input(&body).map_err(|e| SofaError::invalid(e.issues))?
    } else {
        Vec::new()
    };
    Ok(fhir_json(
        StatusCode::OK,
        &inner.binding_token(&caller, ids).await?,
    ))
}

async fn binding_token_instance(
    State(inner): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: RawQuery,
) -> Result<Response, SofaError> {
    let items = query_items(&query);
    let caller = caller(&inner, &headers, &items).await?;
    Ok(fhir_json(
        StatusCode::OK,
        &inner.binding_token(&caller, vec![id]).await?,
    ))
}

/// The websocket: no bearer token on the upgrade (browsers cannot send one); the binding
/// token sent in the first frame is the credential (REQ SUB-09).
///
/// Bounded before the upgrade (REQ HARD-04): at most `websocket_max_sockets` open at once (503
/// beyond), and a client frame is at most a bind message's size.
async fn socket(State(inner): Shared, upgrade: WebSocketUpgrade) -> Response {
    let Some(slot) = inner.hub.open_slot(inner.settings.websocket_max_sockets) else {
        return SofaError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            halo_model::outcome::OperationOutcome::error(
                IssueType::Transient,
                "too many open websockets; retry later",
            ),
        )
        .into_response();
    };
    upgrade
        .max_message_size(websocket::MAX_CLIENT_MESSAGE)
        .max_frame_size(websocket::MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| websocket::serve(inner, socket, slot))
}
