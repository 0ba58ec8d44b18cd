//! The launch request (`iss`, `launch`) and the app's issuer policy.
//!
//! The policy is checked before any network call: a launch from a server the app was not set up
//! for never reaches discovery, so a hostile `iss` cannot make the app fetch arbitrary URLs.

use url::Url;

use crate::error::{Result, SmartError};
use crate::ids::{ClientId, RedirectUrl};
use crate::token::ClientAuth;

/// Longest `iss` or `launch` value accepted. Real values are far shorter; the bound keeps a hostile
/// link from making the app store or echo megabytes.
const MAX_PARAM_LEN: usize = 4096;

/// An EHR launch request as received on the app's launch URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchRequest {
    /// The FHIR base URL of the launching server, exactly as sent (it becomes `aud` byte for byte).
    pub iss: String,
    /// The opaque launch id, echoed unchanged on the authorize request.
    pub launch: String,
}

impl LaunchRequest {
    /// Parses a launch URL (`https://app/launch?iss=...&launch=...`).
    pub fn from_url(url: &str) -> Result<Self> {
        let parsed = Url::parse(url).map_err(|e| SmartError::InvalidLaunch {
            reason: format!("the launch URL is not a URL: {e}"),
        })?;
        Self::from_query(parsed.query().unwrap_or(""))
    }

    /// Parses the query string of a launch URL (with or without the leading `?`).
    ///
    /// ```
    /// # use halo_smart_client::launch::LaunchRequest;
    /// let l = LaunchRequest::from_query("iss=https%3A%2F%2Fehr%2Ffhir&launch=xyz123")?;
    /// assert_eq!((l.iss.as_str(), l.launch.as_str()), ("https://ehr/fhir", "xyz123"));
    /// # Ok::<(), halo_smart_client::SmartError>(())
    /// ```
    pub fn from_query(query: &str) -> Result<Self> {
        let query = query.strip_prefix('?').unwrap_or(query);
        let mut iss = None;
        let mut launch = None;
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let slot = match key.as_ref() {
                "iss" => &mut iss,
                "launch" => &mut launch,
                _ => continue,
            };
            if slot.is_some() {
                return Err(SmartError::InvalidLaunch {
                    reason: format!("the launch request carries \"{key}\" more than once"),
                });
            }
            *slot = Some(value.into_owned());
        }
        let iss = required(iss, "iss")?;
        let launch = required(launch, "launch")?;
        check_iss_syntax(&iss)?;
        Ok(Self { iss, launch })
    }
}

fn required(value: Option<String>, name: &str) -> Result<String> {
    match value {
        None => Err(SmartError::InvalidLaunch {
            reason: format!("the launch request has no \"{name}\" parameter"),
        }),
        Some(v) if v.trim().is_empty() => Err(SmartError::InvalidLaunch {
            reason: format!("the launch request's \"{name}\" parameter is empty"),
        }),
        Some(v) if v.len() > MAX_PARAM_LEN => Err(SmartError::InvalidLaunch {
            reason: format!("the launch request's \"{name}\" parameter is too long"),
        }),
        Some(v) => Ok(v),
    }
}

/// `iss` must be an absolute http(s) URL without credentials, query or fragment.
fn check_iss_syntax(iss: &str) -> Result<Url> {
    let bad = |why: &str| SmartError::InvalidLaunch {
        reason: format!("\"iss\" {why}"),
    };
    let url = Url::parse(iss).map_err(|_| bad("is not an absolute URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must be an http(s) URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or fragment"));
    }
    Ok(url)
}

/// How the app is registered with one issuer: what it sends on authorize and token requests.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The `client_id` the authorization server issued.
    pub client_id: ClientId,
    /// The registered `redirect_uri`, sent byte for byte on authorize and token requests.
    pub redirect_uri: RedirectUrl,
    /// The scopes to request, space-separated (`launch` is added for an EHR launch if missing).
    pub scope: String,
    /// How the app authenticates at the token endpoint.
    pub auth: ClientAuth,
    /// Context the app cannot work without (`patient`, `encounter`). When `None`, it is derived
    /// from the scopes: `launch/patient` or any `patient/` scope requires a patient, and
    /// `launch/encounter` an encounter.
    pub required_context: Option<Vec<String>>,
    /// Accept a token response without an id_token although `openid` was granted. Off by
    /// default: the launch would complete with no user identity. Turn it on only for a server
    /// known to omit the id_token.
    pub allow_missing_id_token: bool,
}

impl ClientConfig {
    /// A configuration with the given registration and no explicit required context. The id
    /// and the redirect URI are typed, so they cannot be passed in each other's place.
    pub fn new(
        client_id: ClientId,
        redirect_uri: RedirectUrl,
        scope: impl Into<String>,
        auth: ClientAuth,
    ) -> Self {
        Self {
            client_id,
            redirect_uri,
            scope: scope.into(),
            auth,
            required_context: None,
            allow_missing_id_token: false,
        }
    }

    /// The context names the app needs in the token response (APP-14).
    pub fn required_context(&self) -> Vec<String> {
        if let Some(explicit) = &self.required_context {
            return explicit.clone();
        }
        let mut out = Vec::new();
        let scopes: Vec<&str> = self.scope.split_whitespace().collect();
        let patient = scopes
            .iter()
            .any(|s| s.eq_ignore_ascii_case("launch/patient") || s.starts_with("patient/"));
        if patient {
            out.push("patient".to_owned());
        }
        if scopes
            .iter()
            .any(|s| s.eq_ignore_ascii_case("launch/encounter"))
        {
            out.push("encounter".to_owned());
        }
        out
    }
}

/// Which issuers an entry of the policy covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuerPattern {
    /// This exact `iss` string.
    Exact(String),
    /// Every `iss` starting with this prefix. The prefix must be an absolute URL ending in `/`, so
    /// `https://fhir.example.ca/` cannot match `https://fhir.example.ca.evil.test`.
    Prefix(String),
}

impl IssuerPattern {
    fn matches(&self, iss: &str) -> bool {
        match self {
            Self::Exact(e) => e == iss,
            Self::Prefix(p) => iss.starts_with(p.as_str()),
        }
    }
}

/// The allow-list of launching servers, each with the app's registration there.
#[derive(Debug, Clone, Default)]
pub struct IssuerPolicy {
    entries: Vec<(IssuerPattern, ClientConfig)>,
    allow_http_loopback: bool,
}

impl IssuerPolicy {
    /// An empty policy: every launch is refused until issuers are added.
    pub fn new() -> Self {
        Self::default()
    }

    /// Allows one exact `iss`.
    pub fn allow(mut self, iss: impl Into<String>, config: ClientConfig) -> Result<Self> {
        let iss = iss.into();
        check_iss_syntax(&iss).map_err(|e| SmartError::config(e.to_string()))?;
        self.entries.push((IssuerPattern::Exact(iss), config));
        Ok(self)
    }

    /// Allows every `iss` under a URL prefix (for servers with one base per tenant).
    pub fn allow_prefix(mut self, prefix: impl Into<String>, config: ClientConfig) -> Result<Self> {
        let prefix = prefix.into();
        let url = Url::parse(&prefix)
            .map_err(|_| SmartError::config(format!("issuer prefix {prefix:?} is not a URL")))?;
        if !prefix.ends_with('/') || url.host_str().is_none() {
            return Err(SmartError::config(format!(
                "issuer prefix {prefix:?} must be an absolute URL ending in '/'"
            )));
        }
        self.entries.push((IssuerPattern::Prefix(prefix), config));
        Ok(self)
    }

    /// Accepts `http://` issuers on loopback hosts (`127.0.0.1`, `::1`, `localhost`). For
    /// development and tests only; everything else must be https.
    pub fn allow_http_loopback(mut self, allow: bool) -> Self {
        self.allow_http_loopback = allow;
        self
    }

    /// Whether plain http on loopback is accepted.
    pub fn http_loopback_allowed(&self) -> bool {
        self.allow_http_loopback
    }

    /// The configuration for `iss`, or [`SmartError::IssuerNotAllowed`]. The first matching entry
    /// wins. Plain http is refused unless it is loopback and allowed.
    pub fn check(&self, iss: &str) -> Result<&ClientConfig> {
        let url = check_iss_syntax(iss)?;
        if url.scheme() == "http" && !(self.allow_http_loopback && is_loopback(&url)) {
            return Err(SmartError::IssuerNotAllowed {
                iss: iss.to_owned(),
            });
        }
        self.entries
            .iter()
            .find(|(pattern, _)| pattern.matches(iss))
            .map(|(_, config)| config)
            .ok_or_else(|| SmartError::IssuerNotAllowed {
                iss: iss.to_owned(),
            })
    }

    /// Whether a URL the app is about to call is acceptable under the https rule.
    pub(crate) fn url_scheme_ok(&self, url: &Url) -> bool {
        url.scheme() == "https"
            || (url.scheme() == "http" && self.allow_http_loopback && is_loopback(url))
    }
}

pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ClientConfig {
        ClientConfig::new(
            ClientId::new("app").unwrap(),
            RedirectUrl::new("https://app/cb").unwrap(),
            "launch patient/*.rs",
            ClientAuth::Public,
        )
    }

    // REQ: APP-01
    #[test]
    fn launch_requests_parse_or_fail_with_a_typed_error() {
        let l = LaunchRequest::from_url(
            "https://app/launch?launch=xyz123&iss=https%3A%2F%2Fehr%2Ffhir%2F&x=1",
        )
        .unwrap();
        assert_eq!(l.iss, "https://ehr/fhir/");
        assert_eq!(l.launch, "xyz123");
        let long = format!("iss=https://ehr/fhir&launch={}", "a".repeat(5000));
        for bad in [
            "",
            "iss=https://ehr/fhir",
            "launch=abc",
            "iss=&launch=abc",
            "iss=ftp://ehr/fhir&launch=abc",
            "iss=/relative&launch=abc",
            "iss=https://ehr/fhir?x=1&launch=abc",
            "iss=https://u:p@ehr/fhir&launch=abc",
            "iss=https://a/fhir&iss=https://b/fhir&launch=abc",
            "iss=%ff%fe&launch=%00",
            long.as_str(),
        ] {
            let err = LaunchRequest::from_query(bad).unwrap_err();
            assert_eq!(err.code(), "launch_invalid", "{bad}");
            assert!(err.user_message().contains("open it again"));
        }
        assert!(LaunchRequest::from_url("not a url").is_err());
    }

    // REQ: APP-02
    #[test]
    fn issuer_policy_matches_exact_and_prefix_and_refuses_the_rest() {
        let policy = IssuerPolicy::new()
            .allow("https://ehr.example.ca/fhir", config())
            .unwrap()
            .allow_prefix("https://sofa.example.ca/t/", config())
            .unwrap();
        assert!(policy.check("https://ehr.example.ca/fhir").is_ok());
        assert!(
            policy
                .check("https://sofa.example.ca/t/clinic-1/fhir")
                .is_ok()
        );
        for refused in [
            "https://ehr.example.ca/fhir/",
            "https://ehr.example.ca/fhirx",
            "https://sofa.example.ca.evil.test/t/x",
            "http://ehr.example.ca/fhir",
            "https://evil.test/fhir",
        ] {
            assert_eq!(
                policy.check(refused).unwrap_err().code(),
                "issuer_not_allowed",
                "{refused}"
            );
        }
        assert!(
            IssuerPolicy::new()
                .allow_prefix("https://a.ca", config())
                .is_err()
        );
        let loopback = IssuerPolicy::new()
            .allow_prefix("http://127.0.0.1:8080/", config())
            .unwrap();
        assert!(loopback.check("http://127.0.0.1:8080/fhir").is_err());
        let loopback = loopback.allow_http_loopback(true);
        assert!(loopback.check("http://127.0.0.1:8080/fhir").is_ok());
    }

    // REQ: APP-14
    #[test]
    fn required_context_follows_the_scopes() {
        let mut c = config();
        assert_eq!(c.required_context(), ["patient"]);
        c.scope = "launch launch/Encounter user/*.rs".into();
        assert_eq!(c.required_context(), ["encounter"]);
        c.required_context = Some(vec![]);
        assert!(c.required_context().is_empty());
    }
}
