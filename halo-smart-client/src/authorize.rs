//! The authorization request: `state`, PKCE S256 and the GET URL or POST form.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use url::Url;

use crate::error::{Result, SmartError};
use crate::secret::Secret;

/// `n` bytes from the OS CSPRNG, base64url without padding.
pub fn random_token(n: usize) -> Result<String> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|_| SmartError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// A fresh `state`: 256 random bits (43 characters), well above SMART's 122-bit floor.
pub fn new_state() -> Result<String> {
    random_token(32)
}

/// A PKCE S256 pair (RFC 7636). The verifier stays with the app; the challenge goes on the
/// authorize request.
#[derive(Debug, Clone)]
pub struct Pkce {
    verifier: Secret,
    challenge: String,
}

impl Pkce {
    /// A new pair from 64 random bytes (an 86-character verifier).
    pub fn generate() -> Result<Self> {
        Self::from_verifier(&random_token(64)?)
    }

    /// The pair for a given verifier, which must be 43..=128 characters of
    /// `[A-Za-z0-9-._~]`.
    ///
    /// ```
    /// # use halo_smart_client::authorize::Pkce;
    /// let p = Pkce::from_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")?;
    /// assert_eq!(p.challenge(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    /// # Ok::<(), halo_smart_client::SmartError>(())
    /// ```
    pub fn from_verifier(verifier: &str) -> Result<Self> {
        let ok_len = (43..=128).contains(&verifier.len());
        let ok_chars = verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        if !ok_len || !ok_chars {
            return Err(SmartError::config(
                "a PKCE verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~",
            ));
        }
        Ok(Self {
            challenge: s256(verifier),
            verifier: Secret::new(verifier),
        })
    }

    /// The verifier, sent on the token request.
    pub fn verifier(&self) -> &Secret {
        &self.verifier
    }

    /// `BASE64URL(SHA256(verifier))`.
    pub fn challenge(&self) -> &str {
        &self.challenge
    }

    /// Always `S256`: SMART forbids `plain`.
    pub fn method(&self) -> &'static str {
        "S256"
    }
}

/// `BASE64URL(SHA256(ascii(verifier)))`.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Adds the `launch` scope for an EHR launch when the configured scopes lack it.
pub fn scope_with_launch(scope: &str) -> String {
    if scope.split_whitespace().any(|s| s == "launch") {
        scope.to_owned()
    } else if scope.trim().is_empty() {
        "launch".to_owned()
    } else {
        format!("launch {}", scope.trim())
    }
}

/// Everything on one authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeRequest {
    /// The server's `authorization_endpoint`, possibly with query parameters of its own.
    pub authorization_endpoint: Url,
    /// `client_id`.
    pub client_id: String,
    /// `redirect_uri`, byte for byte as registered.
    pub redirect_uri: String,
    /// `scope`, space-separated.
    pub scope: String,
    /// `launch`, echoed exactly (EHR launch), or `None` (standalone).
    pub launch: Option<String>,
    /// `aud`: the FHIR base, byte for byte as `iss`.
    pub aud: String,
    /// `state`.
    pub state: String,
    /// PKCE `code_challenge` (method S256).
    pub code_challenge: String,
}

impl AuthorizeRequest {
    /// The request parameters in a fixed order.
    pub fn params(&self) -> Vec<(&'static str, &str)> {
        let mut p = vec![
            ("response_type", "code"),
            ("client_id", self.client_id.as_str()),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("scope", self.scope.as_str()),
            ("state", self.state.as_str()),
            ("aud", self.aud.as_str()),
            ("code_challenge", self.code_challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        if let Some(launch) = &self.launch {
            p.insert(4, ("launch", launch.as_str()));
        }
        p
    }

    /// The GET URL to redirect the browser to. Query parameters already on the endpoint are kept;
    /// any of them that SMART sets itself is replaced so that the server sees one value only.
    pub fn to_url(&self) -> Url {
        let params = self.params();
        let mut url = self.authorization_endpoint.clone();
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| !params.iter().any(|(name, _)| name == k))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.set_query(None);
        {
            let mut q = url.query_pairs_mut();
            q.extend_pairs(kept);
            q.extend_pairs(params);
        }
        url
    }

    /// The POST variant (`authorize-post`): the endpoint and the form fields.
    pub fn to_form(&self) -> AuthorizeForm {
        AuthorizeForm {
            action: self.authorization_endpoint.clone(),
            fields: self
                .params()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }
}

/// An authorize request sent as `application/x-www-form-urlencoded` POST from the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeForm {
    /// Where the form posts to.
    pub action: Url,
    /// The fields, in order.
    pub fields: Vec<(String, String)>,
}

impl AuthorizeForm {
    /// The form body, url-encoded.
    pub fn body(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&self.fields)
            .finish()
    }

    /// A small HTML page that posts the form as soon as it loads (the browser must carry the
    /// user to the authorization server, so the app answers the launch with this page).
    pub fn to_html(&self) -> String {
        // A template, so every field name and value is escaped by the engine.
        maud::html! {
            (maud::DOCTYPE)
            html {
                body onload="document.forms[0].submit()" {
                    form method="post" action=(self.action.as_str()) {
                        @for (name, value) in &self.fields {
                            input type="hidden" name=(name) value=(value);
                        }
                        noscript { button type="submit" { "Continue" } }
                    }
                }
            }
        }
        .into_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PKCE_VECTOR: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/smart/pkce.s256.test-vector.json"
    ));

    // REQ: APP-04
    #[test]
    fn pkce_matches_the_spec_vector() {
        let v: serde_json::Value = serde_json::from_str(PKCE_VECTOR).unwrap();
        let p = Pkce::from_verifier(v["code_verifier"].as_str().unwrap()).unwrap();
        assert_eq!(p.challenge(), v["code_challenge"].as_str().unwrap());
        assert_eq!(p.method(), v["code_challenge_method"].as_str().unwrap());
    }

    // REQ: APP-04
    #[test]
    fn generated_state_and_verifiers_are_long_random_and_distinct() {
        let a = Pkce::generate().unwrap();
        let b = Pkce::generate().unwrap();
        assert_eq!(a.verifier().expose().len(), 86);
        assert_ne!(a.verifier().expose(), b.verifier().expose());
        assert_eq!(a.challenge(), s256(a.verifier().expose()));
        let s = new_state().unwrap();
        assert_eq!(s.len(), 43);
        assert_ne!(s, new_state().unwrap());
        assert!(Pkce::from_verifier("short").is_err());
        assert!(Pkce::from_verifier(&"a".repeat(129)).is_err());
        assert!(Pkce::from_verifier(&format!("{}+", "a".repeat(50))).is_err());
        assert!(!format!("{a:?}").contains(a.verifier().expose()));
    }

    fn request() -> AuthorizeRequest {
        AuthorizeRequest {
            authorization_endpoint: Url::parse("https://as.example/authorize?tenant=a%20b&aud=x")
                .unwrap(),
            client_id: "app".into(),
            redirect_uri: "https://app/cb?x=1".into(),
            scope: scope_with_launch("patient/*.rs openid"),
            launch: Some("l&1".into()),
            aud: "https://ehr/fhir/".into(),
            state: "st".into(),
            code_challenge: "ch".into(),
        }
    }

    // REQ: APP-04
    #[test]
    fn authorize_url_keeps_endpoint_query_and_echoes_exact_values() {
        let url = request().to_url();
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let get = |k: &str| -> Vec<&str> {
            pairs
                .iter()
                .filter(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        assert_eq!(get("tenant"), ["a b"]);
        assert_eq!(get("aud"), ["https://ehr/fhir/"]);
        assert_eq!(get("launch"), ["l&1"]);
        assert_eq!(get("scope"), ["launch patient/*.rs openid"]);
        assert_eq!(get("redirect_uri"), ["https://app/cb?x=1"]);
        assert_eq!(get("response_type"), ["code"]);
        assert_eq!(get("code_challenge_method"), ["S256"]);
        assert_eq!(url.path(), "/authorize");
    }

    // REQ: APP-04
    #[test]
    fn authorize_form_posts_the_same_fields_escaped() {
        let form = request().to_form();
        assert_eq!(
            form.action.as_str(),
            "https://as.example/authorize?tenant=a%20b&aud=x"
        );
        let parsed: Vec<(String, String)> = url::form_urlencoded::parse(form.body().as_bytes())
            .into_owned()
            .collect();
        assert_eq!(parsed, form.fields);
        let html = form.to_html();
        assert!(html.contains("value=\"l&amp;1\""));
        assert!(html.contains("method=\"post\""));
        assert_eq!(scope_with_launch("launch x"), "launch x");
        assert_eq!(scope_with_launch(""), "launch");
    }

    // REQ: APP-04
    #[test]
    fn the_auto_post_page_escapes_hostile_fields_and_action() {
        let mut request = request();
        request.state = "\"><script>alert('x')</script>&".into();
        let html = request.to_form().to_html();
        assert!(!html.contains("<script"), "{html}");
        assert!(
            html.contains(
                "name=\"state\" value=\"&quot;&gt;&lt;script&gt;alert('x')&lt;/script&gt;&amp;\""
            ),
            "{html}"
        );
        assert!(
            html.contains("action=\"https://as.example/authorize?tenant=a%20b&amp;aud=x\""),
            "{html}"
        );
    }
}
