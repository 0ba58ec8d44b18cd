//! The federated-login harness: the jurisdiction's OpenID provider (`oidc-provider` from npm,
//! `tests/oidc-provider`) as a child process, the reference SoFA signing users in there, an
//! EMR, and a browser with a cookie jar.

// Harness scaffolding: a broken harness should fail loudly; each test uses part of it.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)]

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use halo_model::subscription::PayloadContent;
use halo_poc::{HttpOptions, RestHookSecret, SofaClient, StaticToken, SubscriptionManager};
use halo_smart_client::authorize::Pkce;
use reference_sofa::{CatalogSource, Client, Config, IN_MEMORY, Login, ReferenceSofa, RunningSofa};
use serde_json::{Value, json};

pub use crate::support::free_port;

/// The SoFA's client at the provider.
pub const SOFA_CLIENT: &str = "sofa";
pub const SOFA_SECRET: &str = "sofa-secret-0123456789";
/// A second relying party at the same provider.
pub const OTHER_SOFA_CLIENT: &str = "sofa-2";
/// The EMR: a client at the provider (it signs its clinician in) and at the SoFA (its
/// backend-services token for the subscription), with the same id.
pub const EMR: &str = "emr";
pub const EMR_SECRET: &str = "emr-secret-0123456789";
pub const EMR_REDIRECT: &str = "http://127.0.0.1:9/emr/signed-in";
/// The SMART app, a public client of the SoFA.
pub const APP: &str = "chart-app";
pub const APP_REDIRECT: &str = "http://127.0.0.1:9/app/callback";
pub const APP_SCOPES: &str = "launch openid fhirUser patient/Patient.rs";
/// The clinicians and their passwords at the provider.
pub const DR_A: (&str, &str) = ("dr-a", "a-password-0123");
pub const DR_B: (&str, &str) = ("dr-b", "b-password-0123");
/// The cookie key every SoFA of a test shares (base64url of 32 bytes).
pub const COOKIE_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

/// The running provider; killed when dropped.
pub struct Provider {
    child: Child,
    pub issuer: String,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Provider {
    /// Starts the provider for SoFAs at `fhir_bases` (each with a client `sofa`, `sofa-2`...).
    pub fn start(fhir_bases: &[&str]) -> Provider {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("oidc-provider");
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "the OpenID provider is not installed: run `npm ci` in {} (scripts/test does)",
            dir.display()
        );
        let practitioner = |base: &str, id: &str| format!("{base}/Practitioner/{id}");
        let base = fhir_bases[0];
        let mut clients: Vec<Value> = fhir_bases
            .iter()
            .enumerate()
            .map(|(i, base)| {
                json!({
                    "client_id": if i == 0 { SOFA_CLIENT.to_string() } else { format!("sofa-{}", i + 1) },
                    "client_secret": SOFA_SECRET,
                    "redirect_uris": [format!("{base}/auth/oidc/callback")],
                    "post_logout_redirect_uris": [format!("{base}/metadata")],
                })
            })
            .collect();
        clients.push(json!({
            "client_id": EMR, "client_secret": EMR_SECRET, "redirect_uris": [EMR_REDIRECT],
        }));
        let resources: serde_json::Map<String, Value> = fhir_bases
            .iter()
            .map(|b| (b.to_string(), json!("Context.write")))
            .collect();
        let config = json!({
            "accounts": {
                DR_A.0: {"password": DR_A.1, "fhirUser": practitioner(base, DR_A.0)},
                DR_B.0: {"password": DR_B.1, "fhirUser": practitioner(base, DR_B.0)},
            },
            "clients": clients,
            "resources": resources,
        });
        let mut child = Command::new(std::env::var("NODE").unwrap_or_else(|_| "node".into()))
            .arg(dir.join("provider.mjs"))
            .env("HALO_OIDC_CONFIG", config.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node runs (Node.js is a prerequisite of the tests)");
        // The first line, or a clear failure (never a test that waits forever).
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the provider did not start within a minute");
        };
        let issuer = line
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("the provider did not start: {line:?}"))
            .trim()
            .to_string();
        Provider { child, issuer }
    }

    /// Alters the next id_token the token endpoint issues (`bad-signature`, `wrong-aud`,
    /// `wrong-nonce`, `expired`).
    pub async fn alter_next_id_token(&self, how: &str) {
        let status = reqwest::Client::new()
            .post(format!("{}/test/next-id-token", self.issuer))
            .body(json!({"alter": how}).to_string())
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 204);
    }
}

/// The reference SoFA at `port` with federated login at `issuer` as `client_id`.
pub async fn sofa(port: u16, issuer: &str, client_id: &str) -> RunningSofa {
    ReferenceSofa::start(sofa_config(port, issuer, client_id))
        .await
        .unwrap()
}

/// The configuration [`sofa`] starts.
pub fn sofa_config(port: u16, issuer: &str, client_id: &str) -> Config {
    Config {
        listen: format!("127.0.0.1:{port}").parse().unwrap(),
        database: IN_MEMORY.into(),
        catalog: Some(CatalogSource::Inline(json!([]))),
        login: Login::Oidc {
            issuer: issuer.into(),
            client_id: client_id.into(),
            client_secret: SOFA_SECRET.into(),
            cookie_key: Some(COOKIE_KEY.into()),
            scopes: None,
            user_claim: None,
            fhir_user_claim: None,
            session_secs: None,
            accept_access_tokens: true,
            post_logout_redirect_uri: None,
        },
        clients: vec![
            Client::point_of_care(EMR, EMR_SECRET, "Context.write system/Subscription.cruds"),
            Client {
                id: APP.into(),
                secret: None,
                redirect_uris: vec![APP_REDIRECT.into()],
                scopes: APP_SCOPES.into(),
                app_id: None,
                launch_url: None,
            },
        ],
        development_mode: true,
        ..Config::default()
    }
}

/// What a navigation came to.
#[derive(Debug)]
pub enum Nav {
    /// A redirect to an address outside the servers (the EMR's or the app's redirect URI).
    Left(url::Url),
    /// A page (any non-redirect answer).
    Page {
        status: u16,
        url: url::Url,
        body: String,
    },
}

impl Nav {
    /// The redirect target; panics on a page.
    pub fn left(self) -> url::Url {
        match self {
            Nav::Left(url) => url,
            Nav::Page { status, url, body } => panic!("a page {status} at {url}: {body}"),
        }
    }

    /// A page's status and body; panics on a redirect out.
    pub fn page(self) -> (u16, String) {
        match self {
            Nav::Page { status, body, .. } => (status, body),
            Nav::Left(url) => panic!("left for {url}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Cookie {
    pub name: String,
    pub value: String,
    pub path: String,
}

/// A browser: a cookie jar (all servers are on 127.0.0.1, and cookies ignore ports, as
/// browsers do), redirects followed up to an address outside the servers (port 9), and every
/// page it was shown remembered.
pub struct Browser {
    http: reqwest::Client,
    pub jar: Mutex<Vec<Cookie>>,
    pub pages: Mutex<Vec<String>>,
}

impl Default for Browser {
    fn default() -> Self {
        Browser::new()
    }
}

impl Browser {
    pub fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            jar: Mutex::new(Vec::new()),
            pages: Mutex::new(Vec::new()),
        }
    }

    /// The value of cookie `name`, if the jar holds it.
    pub fn cookie(&self, name: &str) -> Option<String> {
        let jar = self.jar.lock().unwrap();
        jar.iter().find(|c| c.name == name).map(|c| c.value.clone())
    }

    /// Sets (or replaces) a cookie by hand.
    pub fn set_cookie(&self, cookie: Cookie) {
        let mut jar = self.jar.lock().unwrap();
        jar.retain(|c| !(c.name == cookie.name && c.path == cookie.path));
        jar.push(cookie);
    }

    fn cookie_header(&self, url: &url::Url) -> Option<String> {
        let jar = self.jar.lock().unwrap();
        let pairs: Vec<String> = jar
            .iter()
            .filter(|c| {
                let p = c.path.trim_end_matches('/');
                url.path() == p || url.path().starts_with(&format!("{p}/")) || p.is_empty()
            })
            .map(|c| format!("{}={}", c.name, c.value))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    fn keep_cookies(&self, url: &url::Url, response: &reqwest::Response) {
        for header in response.headers().get_all("set-cookie") {
            let text = header.to_str().unwrap();
            let mut parts = text.split(';').map(str::trim);
            let (name, value) = parts.next().unwrap().split_once('=').unwrap();
            let mut path = "/".to_string();
            let mut gone = false;
            for attribute in parts {
                let (key, val) = attribute.split_once('=').unwrap_or((attribute, ""));
                match key.to_ascii_lowercase().as_str() {
                    "path" => path = val.to_string(),
                    "max-age" => gone |= val.parse::<i64>().unwrap_or(1) <= 0,
                    "expires" => gone |= val.contains("1970"),
                    _ => {}
                }
            }
            let _ = url;
            let mut jar = self.jar.lock().unwrap();
            jar.retain(|c| !(c.name == name && c.path == path));
            if !gone {
                jar.push(Cookie {
                    name: name.into(),
                    value: value.into(),
                    path,
                });
            }
        }
    }

    /// One request with the jar's cookies; the jar keeps what it sets.
    pub async fn send(&self, url: &url::Url, form: Option<&[(&str, &str)]>) -> reqwest::Response {
        let mut request = match form {
            Some(form) => self.http.post(url.clone()).form(form),
            None => self.http.get(url.clone()),
        };
        if let Some(cookies) = self.cookie_header(url) {
            request = request.header("cookie", cookies);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        self.keep_cookies(url, &response);
        response
    }

    /// Follows redirects from `url` (after an optional form POST) until a page or a redirect
    /// out of the servers.
    pub async fn go(&self, url: &str, form: Option<&[(&str, &str)]>) -> Nav {
        let mut url = url::Url::parse(url).unwrap();
        let mut response = self.send(&url, form).await;
        for _ in 0..20 {
            if !response.status().is_redirection() {
                let status = response.status().as_u16();
                let body = response.text().await.unwrap();
                self.pages.lock().unwrap().push(url.to_string());
                return Nav::Page { status, url, body };
            }
            let location = response.headers()["location"].to_str().unwrap();
            url = url.join(location).unwrap();
            if url.port() == Some(9) {
                return Nav::Left(url);
            }
            response = self.send(&url, None).await;
        }
        panic!("too many redirects");
    }

    /// Fills the provider's sign-in page `page` with `user` and follows on.
    pub async fn sign_in(&self, page: Nav, user: (&str, &str)) -> Nav {
        let Nav::Page { url, body, .. } = page else {
            panic!("no sign-in page: {page:?}");
        };
        assert!(body.contains("Sign in to the jurisdiction"), "{body}");
        let action = body
            .split("action=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap();
        let target = url.join(action).unwrap();
        self.go(
            target.as_str(),
            Some(&[("username", user.0), ("password", user.1)]),
        )
        .await
    }

    /// Whether the provider's sign-in page was shown since `since` pages.
    pub fn saw_sign_in_since(&self, since: usize) -> bool {
        self.pages.lock().unwrap()[since..]
            .iter()
            .any(|p| p.contains("/interaction/"))
    }

    pub fn pages_seen(&self) -> usize {
        self.pages.lock().unwrap().len()
    }
}

/// The `name` parameter of `url`.
pub fn param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The EMR signs `user` in at the provider in `browser` (authorization code with PKCE and the
/// FHIR base as resource indicator) and redeems the code: its token answer.
pub async fn emr_signs_in(
    browser: &Browser,
    provider: &Provider,
    fhir_base: &str,
    user: (&str, &str),
) -> Value {
    let pkce = Pkce::generate().unwrap();
    let authorize = url::Url::parse_with_params(
        &format!("{}/auth", provider.issuer),
        &[
            ("response_type", "code"),
            ("client_id", EMR),
            ("redirect_uri", EMR_REDIRECT),
            ("scope", "openid fhirUser Context.write"),
            ("resource", fhir_base),
            ("state", "emr-state"),
            ("nonce", "emr-nonce"),
            ("code_challenge", pkce.challenge()),
            ("code_challenge_method", "S256"),
        ],
    )
    .unwrap();
    let mut nav = browser.go(authorize.as_str(), None).await;
    if matches!(nav, Nav::Page { .. }) {
        nav = browser.sign_in(nav, user).await;
    }
    let back = nav.left();
    assert_eq!(param(&back, "state").as_deref(), Some("emr-state"));
    let code = param(&back, "code").unwrap();
    let answer = reqwest::Client::new()
        .post(format!("{}/token", provider.issuer))
        .basic_auth(EMR, Some(EMR_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", EMR_REDIRECT),
            ("code_verifier", pkce.verifier().expose()),
            ("resource", fhir_base),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    answer.json().await.unwrap()
}

/// The EMR's installation-wide subscription at the SoFA (its backend-services token, D-06):
/// the rest-hook endpoint on loopback answers every delivery 200.
pub async fn emr_subscribes(fhir_base: &str) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/notify", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/notify",
        axum::routing::post(|| async { axum::http::StatusCode::OK }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let answer: Value = reqwest::Client::new()
        .post(format!("{fhir_base}/auth/token"))
        .basic_auth(EMR, Some(EMR_SECRET))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "system/Subscription.cruds"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let service = SofaClient::new(
        fhir_base,
        Arc::new(StaticToken::new(answer["access_token"].as_str().unwrap())),
        HttpOptions::default(),
    )
    .unwrap();
    SubscriptionManager::new(service)
        .activation(Duration::from_secs(10), Duration::from_millis(20))
        .subscribe(halo_poc::rest_hook_channel(
            endpoint,
            PayloadContent::IdOnly,
            &RestHookSecret::generate().unwrap(),
            None,
        ))
        .await
        .unwrap();
}

/// `$set-context` for a new patient with the clinician's `access_token`: the launch id.
pub async fn set_context(fhir_base: &str, access_token: &str) -> String {
    let emr = SofaClient::new(
        fhir_base,
        Arc::new(StaticToken::new(access_token)),
        HttpOptions::default(),
    )
    .unwrap();
    let body = json!({"resourceType": "Parameters", "parameter": [
        {"name": "patient", "valueReference": {"reference": "urn:uuid:7f1c4a52-0b6e-4c33-9d0a-3e5b2c1f8a40", "type": "Patient"}},
        {"name": "resources", "resource": {"resourceType": "Bundle", "type": "transaction",
            "entry": [{"fullUrl": "urn:uuid:7f1c4a52-0b6e-4c33-9d0a-3e5b2c1f8a40",
                "resource": {"resourceType": "Patient", "name": [{"family": "Roy"}], "gender": "female"},
                "request": {"method": "POST", "url": "Patient"}}]}}]});
    emr.set_context(&body).await.unwrap().launch_id
}

/// The app's authorize URL for `launch` (and its PKCE pair, to redeem the code).
pub fn app_authorize(fhir_base: &str, launch: &str) -> (String, Pkce) {
    let pkce = Pkce::generate().unwrap();
    let url = url::Url::parse_with_params(
        &format!("{fhir_base}/auth/authorize"),
        &[
            ("response_type", "code"),
            ("client_id", APP),
            ("redirect_uri", APP_REDIRECT),
            ("launch", launch),
            ("scope", APP_SCOPES),
            ("state", "app-state"),
            ("aud", fhir_base),
            ("code_challenge", pkce.challenge()),
            ("code_challenge_method", "S256"),
        ],
    )
    .unwrap();
    (url.into(), pkce)
}

/// The app redeems `code`: the SoFA's token answer.
pub async fn app_token(fhir_base: &str, code: &str, pkce: &Pkce) -> Value {
    let answer = reqwest::Client::new()
        .post(format!("{fhir_base}/auth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", APP_REDIRECT),
            ("client_id", APP),
            ("code_verifier", pkce.verifier().expose()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    answer.json().await.unwrap()
}

/// The claims of a JWT, unverified (the test reads what the SoFA issued).
pub fn claims(jwt: &str) -> Value {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}
