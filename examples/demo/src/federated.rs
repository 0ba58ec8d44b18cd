//! The jurisdiction's own OpenID provider, for `halo-demo --oidc` and the federated-login
//! tests: `oidc-provider` from npm (OpenID Certified) run by the script in
//! `tests/oidc-provider` (install it once with `npm ci` there), and a browser with a cookie jar
//! that signs clinicians in at it.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use halo_smart_client::authorize::Pkce;
use serde_json::Value;

/// Where the provider script and its pinned packages are.
pub fn provider_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/oidc-provider"
    ))
}

/// The running provider; its process is ended when this is dropped.
#[derive(Debug)]
pub struct Provider {
    child: Child,
    /// The provider's issuer (its address on loopback).
    pub issuer: String,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Provider {
    /// Starts the provider with `config` (accounts, clients, resources: the script's header
    /// describes it) on a free loopback port.
    pub fn start(config: &Value) -> Result<Provider, String> {
        let dir = provider_dir();
        if !dir.join("node_modules/oidc-provider").is_dir() {
            return Err(format!(
                "the OpenID provider is not installed: run `npm ci` in {}",
                dir.display()
            ));
        }
        let mut child = Command::new(std::env::var("NODE").unwrap_or_else(|_| "node".into()))
            .arg(dir.join("provider.mjs"))
            .env("HALO_OIDC_CONFIG", config.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("node (Node.js) could not start: {e}"))?;
        // The first line, or a clear failure: never a wait for a provider that does not start.
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        match line.strip_prefix("listening ") {
            Some(issuer) => Ok(Provider {
                child,
                issuer: issuer.trim().to_string(),
            }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("the OpenID provider did not start: {line:?}"))
            }
        }
    }

    /// Alters the next id_token the token endpoint issues (`bad-signature`, `wrong-aud`,
    /// `wrong-nonce`, `expired`): for the relying party's hostile cases.
    pub async fn alter_next_id_token(&self, how: &str) -> Result<(), String> {
        let status = reqwest::Client::new()
            .post(format!("{}/test/next-id-token", self.issuer))
            .body(serde_json::json!({"alter": how}).to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?
            .status();
        if status.as_u16() == 204 {
            Ok(())
        } else {
            Err(format!("the provider answered {status}"))
        }
    }
}

/// What a navigation came to.
#[derive(Debug)]
pub enum Nav {
    /// A redirect to an address outside the servers the browser walks (a client's redirect
    /// URI).
    Left(url::Url),
    /// A page (any answer that is not a redirect).
    Page {
        /// Its status.
        status: u16,
        /// Its address.
        url: url::Url,
        /// Its text.
        body: String,
    },
}

/// A cookie the browser keeps.
#[derive(Debug, Clone)]
pub struct Cookie {
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: String,
    /// Its path.
    pub path: String,
}

/// A browser: a cookie jar (all servers are on 127.0.0.1, and cookies ignore ports, as
/// browsers do), redirects followed until an address the caller named as outside, and every
/// page it was shown remembered.
#[derive(Debug)]
pub struct Browser {
    http: reqwest::Client,
    outside: Vec<String>,
    /// The cookies.
    pub jar: Mutex<Vec<Cookie>>,
    /// The addresses of the pages shown.
    pub pages: Mutex<Vec<String>>,
}

impl Browser {
    /// A browser that stops following redirects at any address starting with one of
    /// `outside`.
    pub fn leaving_at(outside: &[&str]) -> Result<Browser, String> {
        Ok(Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(20))
                .build()
                .map_err(|e| e.to_string())?,
            outside: outside.iter().map(|o| o.to_string()).collect(),
            jar: Mutex::new(Vec::new()),
            pages: Mutex::new(Vec::new()),
        })
    }

    fn jar(&self) -> std::sync::MutexGuard<'_, Vec<Cookie>> {
        self.jar.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value of cookie `name`, if the jar holds it.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar()
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.value.clone())
    }

    /// Sets (or replaces) a cookie by hand.
    pub fn set_cookie(&self, cookie: Cookie) {
        let mut jar = self.jar();
        jar.retain(|c| !(c.name == cookie.name && c.path == cookie.path));
        jar.push(cookie);
    }

    fn cookie_header(&self, url: &url::Url) -> Option<String> {
        let pairs: Vec<String> = self
            .jar()
            .iter()
            .filter(|c| {
                let p = c.path.trim_end_matches('/');
                p.is_empty() || url.path() == p || url.path().starts_with(&format!("{p}/"))
            })
            .map(|c| format!("{}={}", c.name, c.value))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    fn keep_cookies(&self, response: &reqwest::Response) {
        for header in response.headers().get_all("set-cookie") {
            let Ok(text) = header.to_str() else { continue };
            let mut parts = text.split(';').map(str::trim);
            let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
                continue;
            };
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
            let mut jar = self.jar();
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

    /// One request with the jar's cookies (a form POST when `form` is given); the jar keeps
    /// what the answer sets.
    pub async fn send(
        &self,
        url: &url::Url,
        form: Option<&[(&str, &str)]>,
    ) -> Result<reqwest::Response, String> {
        let mut request = match form {
            Some(form) => self.http.post(url.clone()).form(form),
            None => self.http.get(url.clone()),
        };
        if let Some(cookies) = self.cookie_header(url) {
            request = request.header("cookie", cookies);
        }
        let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
        self.keep_cookies(&response);
        Ok(response)
    }

    /// Follows redirects from `url` (after an optional form POST) until a page or an address
    /// outside.
    pub async fn go(&self, url: &str, form: Option<&[(&str, &str)]>) -> Result<Nav, String> {
        let mut url = url::Url::parse(url).map_err(|e| e.to_string())?;
        let mut response = self.send(&url, form).await?;
        for _ in 0..20 {
            if !response.status().is_redirection() {
                let status = response.status().as_u16();
                let body = response.text().await.map_err(|e| e.to_string())?;
                self.pages
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(url.to_string());
                return Ok(Nav::Page { status, url, body });
            }
            let location = response
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .ok_or("a redirect without a location")?;
            url = url.join(location).map_err(|e| e.to_string())?;
            if self.outside.iter().any(|o| url.as_str().starts_with(o)) {
                return Ok(Nav::Left(url));
            }
            response = self.send(&url, None).await?;
        }
        Err("too many redirects".into())
    }

    /// Fills the provider's sign-in page `page` with `user` (name, password) and follows on.
    pub async fn sign_in(&self, page: Nav, user: (&str, &str)) -> Result<Nav, String> {
        let Nav::Page { url, body, .. } = page else {
            return Err(format!("no sign-in page: {page:?}"));
        };
        if !body.contains("Sign in to the jurisdiction") {
            return Err(format!("not the provider's sign-in page: {body}"));
        }
        let action = body
            .split("action=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .ok_or("the sign-in page has no form")?;
        let target = url.join(action).map_err(|e| e.to_string())?;
        self.go(
            target.as_str(),
            Some(&[("username", user.0), ("password", user.1)]),
        )
        .await
    }

    /// Whether the provider's sign-in page was shown after the first `since` pages.
    pub fn saw_sign_in_since(&self, since: usize) -> bool {
        self.pages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .skip(since)
            .any(|p| p.contains("/interaction/"))
    }

    /// How many pages were shown.
    pub fn pages_seen(&self) -> usize {
        self.pages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// The `name` parameter of `url`.
pub fn param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A confidential client of the provider (an EMR).
#[derive(Debug, Clone, Copy)]
pub struct ProviderClient<'a> {
    /// Its client id.
    pub id: &'a str,
    /// Its secret.
    pub secret: &'a str,
    /// Its redirect URI (outside the servers the browser walks).
    pub redirect_uri: &'a str,
}

/// An EMR signs `user` in at `issuer` in `browser`: authorization code with PKCE, asking for
/// `Context.write` with the SoFA's `fhir_base` as resource indicator (RFC 8707), so the access
/// token is a JWT for the SoFA. The token endpoint's answer.
pub async fn emr_signs_in(
    browser: &Browser,
    issuer: &str,
    client: ProviderClient<'_>,
    fhir_base: &str,
    user: (&str, &str),
) -> Result<Value, String> {
    let pkce = Pkce::generate().map_err(|e| e.to_string())?;
    let authorize = url::Url::parse_with_params(
        &format!("{issuer}/auth"),
        &[
            ("response_type", "code"),
            ("client_id", client.id),
            ("redirect_uri", client.redirect_uri),
            ("scope", "openid fhirUser Context.write"),
            ("resource", fhir_base),
            ("state", "emr-state"),
            ("nonce", "emr-nonce"),
            ("code_challenge", pkce.challenge()),
            ("code_challenge_method", "S256"),
        ],
    )
    .map_err(|e| e.to_string())?;
    let mut nav = browser.go(authorize.as_str(), None).await?;
    if matches!(nav, Nav::Page { .. }) {
        nav = browser.sign_in(nav, user).await?;
    }
    let Nav::Left(back) = nav else {
        return Err(format!(
            "the provider did not send the browser back: {nav:?}"
        ));
    };
    if param(&back, "state").as_deref() != Some("emr-state") {
        return Err(format!("another state came back: {back}"));
    }
    let code = param(&back, "code").ok_or_else(|| format!("no code: {back}"))?;
    let answer = reqwest::Client::new()
        .post(format!("{issuer}/token"))
        .basic_auth(client.id, Some(client.secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", client.redirect_uri),
            ("code_verifier", pkce.verifier().expose()),
            ("resource", fhir_base),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !answer.status().is_success() {
        return Err(format!("the token endpoint answered {}", answer.status()));
    }
    answer.json().await.map_err(|e| e.to_string())
}
