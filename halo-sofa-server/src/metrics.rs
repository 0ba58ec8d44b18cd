//! Operational metrics (REQ OPS-02), recorded through the [`metrics`](::metrics) facade: the
//! library records, and the host decides whether and where they go by installing a recorder
//! (the reference SoFA installs a Prometheus one and serves it on its own listen address).
//! With no recorder installed every call here is a no-op.
//!
//! Every label is drawn from a small fixed set: a route *template*, never a path (paths hold
//! resource and launch ids, which would make one series per patient), an HTTP status, a grant
//! type, a channel type, an outcome. The series, each documented in the implementer guide's
//! "Operating it":
//!
//! | series | type | labels |
//! |---|---|---|
//! | [`HTTP_REQUESTS`] | counter | `method`, `route`, `status` |
//! | [`HTTP_DURATION`] | histogram (seconds) | `method`, `route`, `status` |
//! | [`GRANTS`] | counter | `grant_type`, `outcome` |
//! | [`NOTIFICATIONS`] | counter | `channel`, `outcome` |
//! | [`NOTIFICATION_DURATION`] | histogram (seconds) | `channel`, `outcome` |
//! | [`OUTBOX_DEPTH`] | gauge | |
//! | [`LIVE_LAUNCHES`] | gauge | |
//! | [`STORE_DURATION`] | histogram (seconds) | `backend`, `operation`, `outcome` |
//! | [`RATE_LIMIT_REFUSALS`] | counter | `limiter` |

use std::future::Future;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

/// HTTP requests answered.
pub const HTTP_REQUESTS: &str = "halo_http_requests_total";
/// Time to answer an HTTP request (until the response head; a streamed body is not counted).
pub const HTTP_DURATION: &str = "halo_http_request_duration_seconds";
/// Token requests, by grant type and outcome (`issued` or the OAuth error code).
pub const GRANTS: &str = "halo_grants_total";
/// Notification deliveries (handshakes, heartbeats and event notifications).
pub const NOTIFICATIONS: &str = "halo_notification_deliveries_total";
/// Time a notification delivery took, until acknowledged or refused.
pub const NOTIFICATION_DURATION: &str = "halo_notification_delivery_duration_seconds";
/// Events not yet settled (pending or waiting in the outbox), sampled when scraped.
pub const OUTBOX_DEPTH: &str = "halo_outbox_depth";
/// Launch contexts stored (expired ones count until the next purge pass), sampled when scraped.
pub const LIVE_LAUNCHES: &str = "halo_live_launches";
/// Time a store transaction took to begin, commit or roll back, or a whole write or read unit
/// took from its submission to its answer (SQLite: `unit`, `read`).
pub const STORE_DURATION: &str = "halo_store_operation_duration_seconds";
/// Requests refused by a rate limiter.
pub const RATE_LIMIT_REFUSALS: &str = "halo_rate_limit_refusals_total";

/// The histogram buckets, in seconds: 1 ms to 10 s, for requests, deliveries and store calls.
pub const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The label of requests no route matched (so a scan of random paths makes one series).
pub const UNMATCHED: &str = "unmatched";

/// Describes every series to the installed recorder (their `# HELP` lines) and registers the
/// rate-limit counter at zero, so a dashboard or alert finds it before the first refusal.
pub fn describe() {
    use ::metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route template and status"
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time to answer an HTTP request, by route template and status"
    );
    describe_counter!(GRANTS, "Token requests, by grant type and outcome");
    describe_counter!(
        NOTIFICATIONS,
        "Notification deliveries, by channel type and outcome"
    );
    describe_histogram!(
        NOTIFICATION_DURATION,
        Unit::Seconds,
        "Time a notification delivery took, by channel type and outcome"
    );
    describe_gauge!(OUTBOX_DEPTH, "Subscription events not yet settled");
    describe_gauge!(LIVE_LAUNCHES, "Launch contexts stored");
    describe_histogram!(
        STORE_DURATION,
        Unit::Seconds,
        "Time a store transaction took to begin, commit or roll back, or a unit from submission to answer"
    );
    describe_counter!(RATE_LIMIT_REFUSALS, "Requests refused by a rate limiter");
    ::metrics::counter!(RATE_LIMIT_REFUSALS, "limiter" => "any").increment(0);
}

/// An axum middleware that counts and times every request by method, route template and
/// status. Layer it on the host's whole router (`Router::layer` runs it after routing, so the
/// template is known).
pub async fn track_http(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_string(), |m| m.as_str().to_string());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let labels = [
        ("method", method.to_string()),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    ::metrics::counter!(HTTP_REQUESTS, &labels).increment(1);
    ::metrics::histogram!(HTTP_DURATION, &labels).record(elapsed);
    response
}

/// The standard methods by name, anything else as `other` (a client chooses the method).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Counts a token request. `grant_type` is the one asked for (anything unknown is `other`);
/// `outcome` is `issued` or the OAuth error code.
pub(crate) fn grant(grant_type: Option<&str>, outcome: &str) {
    let grant_type: &'static str = match grant_type {
        Some("authorization_code") => "authorization_code",
        Some("refresh_token") => "refresh_token",
        Some("client_credentials") => "client_credentials",
        Some(_) => "other",
        None => "none",
    };
    ::metrics::counter!(GRANTS, "grant_type" => grant_type, "outcome" => outcome.to_string())
        .increment(1);
}

/// Counts and times one notification delivery.
pub(crate) fn notification(channel: &'static str, delivered: bool, elapsed: Duration) {
    let outcome = if delivered { "delivered" } else { "failed" };
    ::metrics::counter!(NOTIFICATIONS, "channel" => channel, "outcome" => outcome).increment(1);
    ::metrics::histogram!(NOTIFICATION_DURATION, "channel" => channel, "outcome" => outcome)
        .record(elapsed);
}

/// Times a store call (`operation`: `begin`, `begin_read`, `commit`, `rollback`).
pub(crate) async fn store_call<T, E>(
    backend: &'static str,
    operation: &'static str,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let started = Instant::now();
    let result = call.await;
    let outcome = if result.is_ok() { "ok" } else { "error" };
    ::metrics::histogram!(
        STORE_DURATION,
        "backend" => backend,
        "operation" => operation,
        "outcome" => outcome
    )
    .record(started.elapsed());
    result
}

/// Counts a request a rate limiter refused (`limiter` names it, from a fixed set).
pub fn rate_limit_refusal(limiter: &'static str) {
    ::metrics::counter!(RATE_LIMIT_REFUSALS, "limiter" => limiter).increment(1);
}
