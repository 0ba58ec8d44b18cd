//! `.well-known/smart-configuration`: where to fetch it and whether to trust what came back.

use halo_model::smart::{Capability, SmartConfiguration};
use url::Url;

use crate::error::{Result, SmartError};
use crate::launch::IssuerPolicy;
use crate::token::clip;

/// `{iss}/.well-known/smart-configuration`, appended even when `iss` has a path (SMART departs from
/// RFC 8615 here); a trailing `/` on `iss` is not doubled.
///
/// ```
/// # use halo_smart_client::discovery::discovery_url;
/// assert_eq!(
///     discovery_url("https://ehr/fhir/")?.as_str(),
///     "https://ehr/fhir/.well-known/smart-configuration"
/// );
/// # Ok::<(), halo_smart_client::SmartError>(())
/// ```
pub fn discovery_url(iss: &str) -> Result<Url> {
    Url::parse(&format!(
        "{}/.well-known/smart-configuration",
        iss.trim_end_matches('/')
    ))
    .map_err(|_| SmartError::InvalidLaunch {
        reason: "\"iss\" is not a URL".into(),
    })
}

/// The endpoints an EHR launch needs, taken from a checked document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchEndpoints {
    /// `authorization_endpoint`.
    pub authorization: Url,
    /// `token_endpoint`.
    pub token: Url,
}

/// Reads and checks a discovery answer for `iss`: a 2xx JSON document that satisfies SMART 2.1
/// (CTX-03: S256 and never `plain`, `authorization_code`, the required endpoints), with relative
/// endpoints resolved against `iss` and every endpoint acceptable under the policy's https rule.
pub fn check_discovery(
    iss: &str,
    status: u16,
    body: &[u8],
    policy: &IssuerPolicy,
) -> Result<SmartConfiguration> {
    let reject = |reason: String| SmartError::Discovery {
        iss: iss.to_owned(),
        reason,
    };
    if !(200..300).contains(&status) {
        return Err(reject(format!("the server answered HTTP {status}")));
    }
    let mut config = SmartConfiguration::from_json(body).map_err(|e| reject(e.to_string()))?;
    let base = Url::parse(iss).map_err(|_| reject("iss is not a URL".into()))?;
    config.resolve_endpoints(&base);
    if let Err(problems) = config.validate() {
        let reasons: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(reject(clip(&reasons.join("; "))));
    }
    let endpoints = [
        ("authorization_endpoint", &config.authorization_endpoint),
        ("token_endpoint", &config.token_endpoint),
        ("introspection_endpoint", &config.introspection_endpoint),
        ("jwks_uri", &config.jwks_uri),
    ];
    for (name, value) in endpoints {
        if let Some(value) = value {
            let ok = Url::parse(value).is_ok_and(|u| policy.url_scheme_ok(&u));
            if !ok {
                return Err(reject(format!("{name} must be an https URL")));
            }
        }
    }
    Ok(config)
}

/// The authorization and token endpoints of a checked document, and whether the server takes the
/// app's client authentication method.
pub fn launch_endpoints(config: &SmartConfiguration, iss: &str) -> Result<LaunchEndpoints> {
    let get = |name: &str, v: &Option<String>| {
        v.as_deref()
            .and_then(|s| Url::parse(s).ok())
            .ok_or_else(|| SmartError::Discovery {
                iss: iss.to_owned(),
                reason: format!("{name} is missing or not a URL"),
            })
    };
    Ok(LaunchEndpoints {
        authorization: get("authorization_endpoint", &config.authorization_endpoint)?,
        token: get("token_endpoint", &config.token_endpoint)?,
    })
}

/// Whether the server says it takes authorize requests by POST.
pub fn supports_authorize_post(config: &SmartConfiguration) -> bool {
    config.supports(&Capability::AuthorizePost)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ClientId, RedirectUrl};
    use crate::launch::ClientConfig;
    use crate::token::ClientAuth;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/../fixtures/smart/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(path).unwrap()
    }

    fn policy() -> IssuerPolicy {
        IssuerPolicy::new()
            .allow(
                "https://ehr.example.org/fhir",
                ClientConfig::new(
                    ClientId::new("a").unwrap(),
                    RedirectUrl::new("https://a/cb").unwrap(),
                    "launch",
                    ClientAuth::Public,
                ),
            )
            .unwrap()
    }

    // REQ: APP-03
    #[test]
    fn spec_documents_pass_or_fail_for_the_right_reason() {
        let iss = "https://ehr.example.org/fhir";
        let c = check_discovery(
            iss,
            200,
            &fixture("smart-configuration.app-launch-example.json"),
            &policy(),
        )
        .unwrap();
        let e = launch_endpoints(&c, iss).unwrap();
        assert!(e.token.as_str().ends_with("/auth/token"));
        assert!(supports_authorize_post(&c));
        // The backend-services document has no authorization_code grant: no EHR launch with it.
        let err = check_discovery(
            iss,
            200,
            &fixture("smart-configuration.backend-services.json"),
            &policy(),
        )
        .unwrap_err();
        assert_eq!(err.code(), "discovery_invalid");
    }

    // REQ: APP-03
    #[test]
    fn plain_only_http_endpoints_and_garbage_are_refused() {
        let iss = "https://ehr.example.org/fhir";
        let doc = |methods: &str, token: &str| {
            format!(
                r#"{{"authorization_endpoint":"https://ehr.example.org/auth","token_endpoint":"{token}",
                "grant_types_supported":["authorization_code"],"capabilities":["launch-ehr"],
                "code_challenge_methods_supported":{methods}}}"#
            )
        };
        let ok = doc(r#"["S256"]"#, "auth/token");
        let c = check_discovery(iss, 200, ok.as_bytes(), &policy()).unwrap();
        assert_eq!(
            c.token_endpoint.as_deref(),
            Some("https://ehr.example.org/fhir/auth/token")
        );
        for (body, status) in [
            (doc(r#"["plain"]"#, "https://ehr.example.org/t"), 200),
            (doc(r#"["S256","plain"]"#, "https://ehr.example.org/t"), 200),
            (doc(r#"["S256"]"#, "http://ehr.example.org/t"), 200),
            (ok.clone(), 404),
            ("<html>".to_owned(), 200),
            ("[]".to_owned(), 200),
        ] {
            let err = check_discovery(iss, status, body.as_bytes(), &policy()).unwrap_err();
            assert_eq!(err.code(), "discovery_invalid", "{body}");
        }
    }
}
