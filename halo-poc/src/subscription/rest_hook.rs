//! The rest-hook endpoint as an axum `Router` (feature `axum`).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

use super::receiver::NotificationReceiver;
use crate::error::PocError;

/// A router answering `POST /` with the receiver: 200 when the notification was handled, 401
/// without the expected header, 400 for a body that is not a notification, 500 when the EMR
/// could not apply a change (so a SoFA that delivers before it commits rolls the write back).
/// Nest it where `channel.endpoint` points.
///
/// ```no_run
/// # fn demo(receiver: halo_poc::NotificationReceiver) {
/// let app: axum::Router = axum::Router::new().nest("/sofa/notify", halo_poc::rest_hook::router(receiver));
/// # }
/// ```
pub fn router(receiver: NotificationReceiver) -> Router {
    Router::new()
        .route("/", post(receive))
        .layer(DefaultBodyLimit::max(
            halo_model::fhir::JsonLimits::default().max_bytes,
        ))
        .with_state(receiver)
}

async fn receive(
    State(receiver): State<NotificationReceiver>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
        .collect();
    match receiver.handle(&pairs, &body).await {
        Ok(_) => StatusCode::OK,
        Err(error) => {
            tracing::warn!(code = error.code(), %error, "rest-hook notification");
            status_for(&error)
        }
    }
}

/// The HTTP status a rest-hook answer carries for `error`.
pub fn status_for(error: &PocError) -> StatusCode {
    match error {
        PocError::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
        PocError::InvalidNotification(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
