//! A panic in a handler becomes a 500 OperationOutcome with a request id that the log also
//! names (REQ HARD-02), instead of a connection closed with no answer.

use std::any::Any;

use axum::http::StatusCode;
use axum::response::Response;
use halo_model::outcome::{IssueType, OperationOutcome};

use super::body::fhir_json;

/// The panic's message, when it has one a person wrote.
fn message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}

/// The answer to a request whose handler panicked: the details go to the log under a fresh
/// request id; the client gets that id and nothing of the server's internals.
pub(crate) fn answer(panic: Box<dyn Any + Send + 'static>) -> Response {
    let request_id = uuid::Uuid::new_v4();
    tracing::error!(%request_id, panic = message(panic.as_ref()), "a request handler panicked");
    fhir_json(
        StatusCode::INTERNAL_SERVER_ERROR,
        &OperationOutcome::error(
            IssueType::Exception,
            format!("the server failed on this request (request id {request_id})"),
        )
        .to_json(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // REQ: HARD-02
    #[test]
    fn a_panic_becomes_an_operation_outcome_with_a_request_id() {
        let response = answer(Box::new("index out of bounds"));
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(message(&"plain"), "plain");
        assert_eq!(message(&String::from("owned")), "owned");
        assert_eq!(message(&3_u8), "a panic without a message");
    }
}
