//! Token requests (code exchange, refresh, client credentials, introspection) with the four client
//! authentication methods, and reading the token endpoint's answer.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use halo_model::smart::TokenResponse;
use serde_json::{Value, json};
use url::Url;

use crate::authorize::random_token;
use crate::error::{OAuthFailure, Result, SmartError};
use crate::keys::SigningKey;
use crate::secret::Secret;

/// `client_assertion_type` for `private_key_jwt` (RFC 7523).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Lifetime of a client assertion. SMART allows at most five minutes; four leaves room for clock
/// skew between the app and the server.
const ASSERTION_LIFETIME_SECS: i64 = 240;

/// How the app authenticates at the token endpoint.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// A public client: `client_id` in the body, no secret.
    Public,
    /// Confidential symmetric, HTTP Basic (`client_secret_basic`).
    ClientSecretBasic(Secret),
    /// Confidential symmetric, secret in the body (`client_secret_post`).
    ClientSecretPost(Secret),
    /// Confidential asymmetric (`private_key_jwt`): a signed assertion, fresh on every request.
    PrivateKeyJwt(SigningKey),
}

impl ClientAuth {
    /// The `token_endpoint_auth_methods_supported` name of this method (`none` for public).
    pub fn method_name(&self) -> &'static str {
        match self {
            Self::Public => "none",
            Self::ClientSecretBasic(_) => "client_secret_basic",
            Self::ClientSecretPost(_) => "client_secret_post",
            Self::PrivateKeyJwt(_) => "private_key_jwt",
        }
    }
}

/// A form POST to the token (or introspection) endpoint, ready to send.
#[derive(Clone)]
pub struct TokenRequest {
    /// Where to POST.
    pub url: Url,
    /// The `Authorization` header value, for `client_secret_basic`.
    pub authorization: Option<Secret>,
    /// The form fields, in order.
    pub form: Vec<(String, String)>,
}

/// Form fields whose values are secrets and are never printed.
const SECRET_FIELDS: [&str; 6] = [
    "code",
    "code_verifier",
    "refresh_token",
    "client_secret",
    "client_assertion",
    "token",
];

impl fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let form: Vec<(&str, &str)> = self
            .form
            .iter()
            .map(|(k, v)| {
                let shown = if SECRET_FIELDS.contains(&k.as_str()) {
                    "[redacted]"
                } else {
                    v.as_str()
                };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_struct("TokenRequest")
            .field("url", &self.url.as_str())
            .field("authorization", &self.authorization)
            .field("form", &form)
            .finish()
    }
}

impl TokenRequest {
    /// The `application/x-www-form-urlencoded` body.
    pub fn body(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&self.form)
            .finish()
    }

    /// The value of a form field, if present.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn new(url: &Url, fields: Vec<(&str, &str)>) -> Self {
        Self {
            url: url.clone(),
            authorization: None,
            form: fields
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    /// Adds client authentication. Called once per request, so a `private_key_jwt` assertion (and
    /// its `jti`) is never reused, refreshes included.
    fn authenticate(mut self, client_id: &str, auth: &ClientAuth, now: i64) -> Result<Self> {
        match auth {
            ClientAuth::Public => self.push("client_id", client_id),
            ClientAuth::ClientSecretBasic(secret) => {
                self.authorization = Some(basic_authorization(client_id, secret));
            }
            ClientAuth::ClientSecretPost(secret) => {
                self.push("client_id", client_id);
                self.push("client_secret", secret.expose());
            }
            ClientAuth::PrivateKeyJwt(key) => {
                let assertion = client_assertion(client_id, self.url.as_str(), key, now)?;
                self.push("client_assertion_type", JWT_BEARER);
                self.push("client_assertion", &assertion);
            }
        }
        Ok(self)
    }

    fn push(&mut self, k: &str, v: &str) {
        self.form.push((k.to_owned(), v.to_owned()));
    }
}

/// `Basic base64(urlencode(client_id) ":" urlencode(secret))` (RFC 6749 §2.3.1).
pub fn basic_authorization(client_id: &str, secret: &Secret) -> Secret {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", enc(client_id), enc(secret.expose()));
    Secret::new(format!("Basic {}", STANDARD.encode(pair)))
}

/// A signed client assertion: header `alg`, `kid`, `typ: JWT`; claims `iss` = `sub` = client id,
/// `aud` = the token endpoint URL exactly, `exp` four minutes ahead, a fresh random `jti`.
pub fn client_assertion(
    client_id: &str,
    token_endpoint: &str,
    key: &SigningKey,
    now: i64,
) -> Result<String> {
    let claims = json!({
        "iss": client_id,
        "sub": client_id,
        "aud": token_endpoint,
        "exp": now + ASSERTION_LIFETIME_SECS,
        "jti": random_token(32)?,
    });
    key.sign(&claims)
}

/// The authorization-code exchange (SMART App Launch step 5).
pub fn authorization_code_request(
    token_endpoint: &Url,
    client_id: &str,
    auth: &ClientAuth,
    code: &str,
    redirect_uri: &str,
    code_verifier: &Secret,
    now: i64,
) -> Result<TokenRequest> {
    TokenRequest::new(
        token_endpoint,
        vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", code_verifier.expose()),
        ],
    )
    .authenticate(client_id, auth, now)
}

/// A refresh (SMART step 7), optionally narrowing `scope`.
pub fn refresh_request(
    token_endpoint: &Url,
    client_id: &str,
    auth: &ClientAuth,
    refresh_token: &Secret,
    scope: Option<&str>,
    now: i64,
) -> Result<TokenRequest> {
    let mut fields = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.expose()),
    ];
    if let Some(scope) = scope {
        fields.push(("scope", scope));
    }
    TokenRequest::new(token_endpoint, fields).authenticate(client_id, auth, now)
}

/// A backend-services `client_credentials` request, always with `private_key_jwt`.
pub fn client_credentials_request(
    token_endpoint: &Url,
    client_id: &str,
    key: &SigningKey,
    scope: &str,
    now: i64,
) -> Result<TokenRequest> {
    TokenRequest::new(
        token_endpoint,
        vec![("grant_type", "client_credentials"), ("scope", scope)],
    )
    .authenticate(client_id, &ClientAuth::PrivateKeyJwt(key.clone()), now)
}

/// A token introspection request (RFC 7662), authenticated with the app's credentials.
pub fn introspection_request(
    introspection_endpoint: &Url,
    client_id: &str,
    auth: &ClientAuth,
    token: &Secret,
    now: i64,
) -> Result<TokenRequest> {
    TokenRequest::new(introspection_endpoint, vec![("token", token.expose())])
        .authenticate(client_id, auth, now)
}

/// An OAuth error body (`{"error": ..., "error_description": ..., "error_uri": ...}`), if `body`
/// is one.
pub fn oauth_error(body: &[u8]) -> Option<OAuthFailure> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(clip);
    Some(OAuthFailure {
        error: s("error").filter(|e| !e.is_empty())?,
        description: s("error_description"),
        uri: s("error_uri"),
    })
}

/// Server-sent text in error messages is cut short: it may be long, and it is shown to people.
pub(crate) fn clip(s: &str) -> String {
    const MAX: usize = 300;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(MAX).collect();
        out.push('…');
        out
    }
}

/// Reads the token endpoint's answer: a 2xx JSON token response with a bearer token, an OAuth
/// error, or anything else (HTML error pages, 5xx) as a typed error.
pub fn read_token_response(
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<TokenResponse> {
    const ENDPOINT: &str = "token endpoint";
    if !(200..300).contains(&status) {
        return Err(match oauth_error(body) {
            Some(failure) => SmartError::TokenRefused { status, failure },
            None => SmartError::HttpStatus {
                endpoint: ENDPOINT.into(),
                status,
            },
        });
    }
    if let Some(ct) = content_type
        && !is_json(ct)
    {
        return Err(SmartError::invalid_response(
            ENDPOINT,
            format!("expected application/json, got {}", clip(ct)),
        ));
    }
    let token = TokenResponse::from_json(body)
        .map_err(|e| SmartError::invalid_response(ENDPOINT, e.to_string()))?;
    if !token.is_bearer() {
        return Err(SmartError::invalid_response(
            ENDPOINT,
            format!("token_type is {:?}, not Bearer", clip(&token.token_type)),
        ));
    }
    if token.access_token.is_empty() {
        return Err(SmartError::invalid_response(
            ENDPOINT,
            "access_token is empty",
        ));
    }
    Ok(token)
}

/// `application/json` or any `+json` type, parameters ignored.
pub(crate) fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASIC: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/smart/client-secret-basic.test-vector.json"
    ));

    // REQ: APP-07
    #[test]
    fn basic_header_matches_both_spec_vectors() {
        let v: Value = serde_json::from_str(BASIC).unwrap();
        for case in [&v, &v["worked_example_2"]] {
            let header = basic_authorization(
                case["client_id"].as_str().unwrap(),
                &Secret::new(case["client_secret"].as_str().unwrap()),
            );
            assert_eq!(
                header.expose(),
                case["authorization_header"].as_str().unwrap()
            );
        }
    }

    // REQ: APP-07
    #[test]
    fn code_exchange_bodies_per_client_type() {
        let url = Url::parse("https://as/token").unwrap();
        let v = Secret::new("pkce-v4lue");
        let public = authorization_code_request(
            &url,
            "app",
            &ClientAuth::Public,
            "c0de",
            "https://app/cb",
            &v,
            0,
        )
        .unwrap();
        assert_eq!(
            public.body(),
            "grant_type=authorization_code&code=c0de&redirect_uri=https%3A%2F%2Fapp%2Fcb\
             &code_verifier=pkce-v4lue&client_id=app"
        );
        assert!(public.authorization.is_none());
        let basic = authorization_code_request(
            &url,
            "app",
            &ClientAuth::ClientSecretBasic(Secret::new("s")),
            "c0de",
            "https://app/cb",
            &v,
            0,
        )
        .unwrap();
        assert_eq!(basic.field("client_id"), None);
        assert_eq!(basic.field("client_secret"), None);
        assert!(basic.authorization.is_some());
        let post = authorization_code_request(
            &url,
            "app",
            &ClientAuth::ClientSecretPost(Secret::new("s3")),
            "c0de",
            "https://app/cb",
            &v,
            0,
        )
        .unwrap();
        assert_eq!(post.field("client_secret"), Some("s3"));
        let shown = format!("{post:?}");
        assert!(
            !shown.contains("s3\"") && !shown.contains("c0de") && !shown.contains("pkce-v4lue")
        );
    }

    // REQ: APP-17
    #[test]
    fn token_endpoint_failures_are_typed() {
        let err = read_token_response(
            400,
            Some("application/json"),
            br#"{"error":"invalid_grant","error_description":"code expired"}"#,
        )
        .unwrap_err();
        assert_eq!(err.code(), "token_refused");
        assert!(err.to_string().contains("invalid_grant"));
        let err = read_token_response(500, Some("text/html"), b"<html>oops</html>").unwrap_err();
        assert_eq!(err.code(), "http_status");
        let err = read_token_response(200, Some("text/html"), b"<html>login</html>").unwrap_err();
        assert_eq!(err.code(), "response_invalid");
        let err = read_token_response(200, None, b"<html>").unwrap_err();
        assert_eq!(err.code(), "response_invalid");
        let err = read_token_response(
            200,
            Some("application/json"),
            br#"{"access_token":"a","token_type":"mac"}"#,
        )
        .unwrap_err();
        assert_eq!(err.code(), "response_invalid");
        let deep = "[".repeat(10_000);
        assert!(read_token_response(200, None, deep.as_bytes()).is_err());
        let ok = read_token_response(
            200,
            Some("application/json;charset=UTF-8"),
            br#"{"access_token":"a","token_type":"bearer"}"#,
        )
        .unwrap();
        assert_eq!(ok.access_token, "a");
    }
}
