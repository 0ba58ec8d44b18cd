//! FHIR access rules that need no network: which URLs may carry the session's token, reading
//! `Retry-After`, following Bundle paging, and turning error answers into typed errors.
//!
//! The HTTP client bound to a session is [`crate::FhirClient`] (feature `reqwest`).

use std::time::Duration;

use halo_model::outcome::OperationOutcome;
use serde_json::Value;
use url::Url;

use crate::error::{Result, SmartError};
use crate::token::clip;

/// `application/fhir+json`, the media type sent in `Accept` and `Content-Type`.
pub const FHIR_JSON: &str = "application/fhir+json";

/// Resolves `target` (a relative reference such as `Patient/123` or `Observation?patient=1`, or
/// an absolute URL such as a Bundle `next` link) against the session's FHIR base, and refuses any
/// URL that is not under that base: the bearer token goes to the session's own server only.
///
/// ```
/// # use halo_smart_client::fhir::resolve_under_base;
/// let base = "https://ehr.example.ca/fhir";
/// assert_eq!(
///     resolve_under_base(base, "Patient/123")?.as_str(),
///     "https://ehr.example.ca/fhir/Patient/123"
/// );
/// assert!(resolve_under_base(base, "https://evil.test/fhir/Patient/1").is_err());
/// assert!(resolve_under_base(base, "https://ehr.example.ca/fhirx/Patient/1").is_err());
/// # Ok::<(), halo_smart_client::SmartError>(())
/// ```
pub fn resolve_under_base(base: &str, target: &str) -> Result<Url> {
    let base_url = Url::parse(&format!("{}/", base.trim_end_matches('/')))
        .map_err(|_| SmartError::config("the session's FHIR base is not a URL"))?;
    let foreign = || SmartError::ForeignUrl { url: clip(target) };
    let url = match Url::parse(target) {
        Ok(absolute) => absolute,
        Err(url::ParseError::RelativeUrlWithoutBase) => {
            // `//host/...` or `/path` would escape the base under `join`; only plain relative
            // references are accepted here.
            if target.starts_with('/') || target.contains("..") {
                return Err(foreign());
            }
            base_url.join(target).map_err(|_| foreign())?
        }
        Err(_) => return Err(foreign()),
    };
    let same_origin = url.scheme() == base_url.scheme()
        && url.host_str() == base_url.host_str()
        && url.port_or_known_default() == base_url.port_or_known_default();
    let under_path =
        url.path().starts_with(base_url.path()) || format!("{}/", url.path()) == base_url.path();
    if same_origin && under_path && url.username().is_empty() && url.password().is_none() {
        Ok(url)
    } else {
        Err(foreign())
    }
}

/// Reads `Retry-After`: delay-seconds or an HTTP-date (relative to `now`).
pub fn retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let delta = at.with_timezone(&chrono::Utc) - now;
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

/// The `next` link of a searchset Bundle, if any.
pub fn next_link(bundle: &Value) -> Option<&str> {
    bundle
        .get("link")?
        .as_array()?
        .iter()
        .find(|l| l.get("relation").and_then(Value::as_str) == Some("next"))?
        .get("url")?
        .as_str()
}

/// The resources of a Bundle's entries.
pub fn bundle_resources(bundle: &Value) -> Vec<Value> {
    bundle
        .get("entry")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .filter_map(|e| e.get("resource").cloned())
                .collect()
        })
        .unwrap_or_default()
}

/// A FHIR error answer as a typed error: the OperationOutcome's diagnostics when there is one,
/// otherwise the status alone. Server text is clipped and never includes request headers.
pub fn fhir_error(status: u16, body: &[u8]) -> SmartError {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let summary = json
        .as_ref()
        .filter(|v| v.get("resourceType").and_then(Value::as_str) == Some("OperationOutcome"))
        .and_then(|v| OperationOutcome::from_json(v).ok())
        .map(|o| {
            o.issues
                .iter()
                .map(|i| i.message().to_owned())
                .filter(|m| !m.is_empty())
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("HTTP {status}"));
    SmartError::Fhir {
        status,
        summary: clip(&summary),
        outcome: json,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // REQ: APP-11
    #[test]
    fn only_urls_under_the_base_carry_the_token() {
        let base = "https://ehr.example.ca/fhir/";
        for ok in [
            "Patient/1",
            "Observation?patient=1&_count=10",
            "https://ehr.example.ca/fhir/Observation?page=2",
            "https://ehr.example.ca:443/fhir/Patient/1",
        ] {
            assert!(resolve_under_base(base, ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://ehr.example.ca/fhir/Patient/1",
            "https://ehr.example.ca:8443/fhir/Patient/1",
            "https://ehr.example.ca/other/Patient/1",
            "https://ehr.example.ca.evil.test/fhir/Patient/1",
            "//evil.test/fhir/Patient/1",
            "/other/Patient/1",
            "../other/Patient/1",
            "https://u:p@ehr.example.ca/fhir/Patient/1",
        ] {
            assert_eq!(
                resolve_under_base(base, bad).unwrap_err().code(),
                "foreign_url",
                "{bad}"
            );
        }
    }

    // REQ: APP-12
    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = chrono::DateTime::parse_from_rfc2822("Wed, 21 Oct 2015 07:28:00 GMT")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(retry_after(" 3 ", now), Some(Duration::from_secs(3)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:05 GMT", now),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
    }

    // REQ: APP-17
    #[test]
    fn error_answers_summarise_the_operation_outcome() {
        let oo = br#"{"resourceType":"OperationOutcome","issue":[{"severity":"error",
            "code":"processing","diagnostics":"Observation.subject is required"}]}"#;
        let e = fhir_error(422, oo);
        assert_eq!(e.code(), "fhir_error");
        assert!(e.to_string().contains("Observation.subject is required"));
        assert!(fhir_error(500, b"<html>").to_string().contains("HTTP 500"));
        let b: Value = serde_json::json!({"link":[{"relation":"self","url":"a"},
            {"relation":"next","url":"b"}],"entry":[{"resource":{"id":"1"}},{"fullUrl":"x"}]});
        assert_eq!(next_link(&b), Some("b"));
        assert_eq!(bundle_resources(&b).len(), 1);
    }
}
