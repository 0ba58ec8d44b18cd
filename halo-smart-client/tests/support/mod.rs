//! An in-process SMART server on loopback that checks every request the way the SMART client test
//! kit does (authorize: exact `aud`, PKCE S256, registered `redirect_uri`, echoed `launch`; token:
//! PKCE verifier, same `redirect_uri`, client authentication, assertion claims, `jti` reuse; FHIR:
//! bearer use), with switches for hostile behaviour.

#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::result_large_err
)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use halo_smart_client::authorize::s256;
use halo_smart_client::keys::SigningKey;
use halo_smart_client::launch::ClientConfig;
use halo_smart_client::store::MemoryLaunchStore;
use halo_smart_client::{
    ClientAuth, ClientId, ClientOptions, IssuerPolicy, RedirectUrl, SmartClient,
};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

pub const CLIENT_ID: &str = "halo-test-app";
pub const REDIRECT_URI: &str = "https://app.example.ca/callback";

/// The test app's registration, typed.
pub fn client_id() -> ClientId {
    ClientId::new(CLIENT_ID).unwrap()
}

/// The test app's redirect URI, typed.
pub fn redirect_uri() -> RedirectUrl {
    RedirectUrl::new(REDIRECT_URI).unwrap()
}

pub fn fixture(name: &str) -> String {
    let path = format!("{}/../fixtures/smart/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap()
}

pub fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap()
}

/// The app's RS384 key: the spec's RS384 example key.
pub fn app_rs384_key() -> SigningKey {
    SigningKey::from_jwks_str(
        &fixture("spec-jwks.RS384.private.json"),
        "eee9f17a3b598fd86417a980b591fbe6",
    )
    .unwrap()
}

pub fn app_rs384_public() -> Value {
    fixture_json("spec-jwks.RS384.public.json")["keys"][0].clone()
}

/// The app's ES384 key: the spec's ES384 example key set.
pub fn app_es384_key() -> SigningKey {
    SigningKey::from_jwks_str(
        &fixture("spec-jwks.ES384.private.json"),
        "cd520211e5661dbba2256f67f6d53f97",
    )
    .unwrap()
}

pub fn app_es384_public() -> Value {
    fixture_json("spec-jwks.ES384.public.json")["keys"][0].clone()
}

/// How the registered client authenticates.
#[derive(Clone)]
pub enum Registered {
    Public,
    Basic(String),
    Post(String),
    Jwt(Value),
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum IdTokenMode {
    None,
    Good,
    AlgNone,
    UnknownKey,
}

/// What a refresh response carries as id_token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum RefreshIdToken {
    None,
    /// Signed, same user as the launch.
    Good,
    /// The launch's id_token with its payload swapped for `fhirUser = Practitioner/evil`: the
    /// signature no longer verifies.
    Forged,
    /// Validly signed, but for another subject.
    OtherUser,
}

/// Switches for hostile or special behaviour.
#[derive(Clone)]
pub struct Behaviour {
    /// Whether the code exchange grants a refresh token.
    pub grant_refresh: bool,
    pub refresh_id_token: RefreshIdToken,
    /// Every FHIR read answers this (status, content type, body) once the bearer checked out.
    pub fhir_answer: Option<(u16, &'static str, String)>,
    pub plain_only: bool,
    pub token_override: Option<(u16, &'static str, String)>,
    pub id_token: IdTokenMode,
    pub access_lifetime: u64,
    pub refresh_delay: Duration,
    pub rotate_refresh: bool,
    pub omit_patient: bool,
    pub async_polls: usize,
    pub retry_after: &'static str,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            grant_refresh: true,
            refresh_id_token: RefreshIdToken::None,
            fhir_answer: None,
            plain_only: false,
            token_override: None,
            id_token: IdTokenMode::Good,
            access_lifetime: 3600,
            refresh_delay: Duration::ZERO,
            rotate_refresh: true,
            omit_patient: false,
            async_polls: 2,
            retry_after: "0",
        }
    }
}

struct CodeGrant {
    challenge: String,
    redirect_uri: String,
    scope: String,
    launch: String,
}

#[derive(Default)]
pub struct Record {
    pub violations: Vec<String>,
    pub discovery_requests: usize,
    pub authorize_requests: usize,
    pub token_requests: usize,
    pub refresh_requests: usize,
    pub jwks_requests: usize,
    pub bearer_uses: usize,
    pub unauthorized: usize,
    pub prefer_async_seen: usize,
    pub polls: usize,
    pub created: Vec<Value>,
}

struct Inner {
    origin: String,
    registered: Registered,
    behaviour: Behaviour,
    launches: HashMap<String, String>,
    codes: HashMap<String, CodeGrant>,
    access: HashMap<String, String>,
    refresh: HashMap<String, String>,
    jtis: HashSet<String>,
    jobs: HashMap<String, (usize, Value)>,
    counter: u64,
    record: Record,
}

#[derive(Clone)]
pub struct Mock {
    pub origin: String,
    pub base: String,
    inner: Arc<Mutex<Inner>>,
}

impl Mock {
    pub async fn start(registered: Registered, behaviour: Behaviour) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let inner = Arc::new(Mutex::new(Inner {
            origin: origin.clone(),
            registered,
            behaviour,
            launches: HashMap::new(),
            codes: HashMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            jtis: HashSet::new(),
            jobs: HashMap::new(),
            counter: 0,
            record: Record::default(),
        }));
        let mock = Mock {
            base: format!("{origin}/fhir"),
            origin,
            inner,
        };
        let router = Router::new()
            .route("/fhir/.well-known/smart-configuration", get(discovery))
            .route("/auth/authorize", get(authorize_get).post(authorize_post))
            .route("/auth/token", post(token))
            .route("/auth/introspect", post(introspect))
            .route("/auth/jwks", get(jwks))
            .route("/fhir/Patient/{id}", get(read_patient))
            .route("/fhir/Observation", get(search).post(create))
            .route("/fhir/Observation/{id}", axum::routing::put(update))
            .route("/fhir/async/{id}", get(poll))
            .with_state(mock.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        mock
    }

    /// Issues a launch id bound to a patient, as the EHR would before opening the app.
    pub fn issue_launch(&self, patient: &str) -> String {
        let mut s = self.inner.lock().unwrap();
        s.counter += 1;
        let id = format!("launch-{}", s.counter);
        s.launches.insert(id.clone(), patient.to_owned());
        id
    }

    pub fn launch_query(&self, patient: &str) -> String {
        let launch = self.issue_launch(patient);
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("iss", &self.base)
            .append_pair("launch", &launch)
            .finish()
    }

    pub fn record<T>(&self, f: impl FnOnce(&Record) -> T) -> T {
        f(&self.inner.lock().unwrap().record)
    }

    pub fn violations(&self) -> Vec<String> {
        self.record(|r| r.violations.clone())
    }

    pub fn set_behaviour(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.inner.lock().unwrap().behaviour);
    }

    /// Forgets every access token, so the next FHIR call gets a 401.
    pub fn revoke_access_tokens(&self) {
        self.inner.lock().unwrap().access.clear();
    }

    pub fn revoke_refresh_tokens(&self) {
        self.inner.lock().unwrap().refresh.clear();
    }

    pub fn token_url(&self) -> String {
        format!("{}/auth/token", self.origin)
    }

    /// A SMART client allowed to launch from this server only.
    pub fn client(&self, auth: ClientAuth, scope: &str) -> SmartClient {
        self.client_with(auth, scope, ClientOptions::default())
    }

    pub fn client_with(
        &self,
        auth: ClientAuth,
        scope: &str,
        options: ClientOptions,
    ) -> SmartClient {
        self.client_from(
            ClientConfig::new(client_id(), redirect_uri(), scope, auth),
            options,
        )
    }

    /// A client whose registration `change` adjusts.
    pub fn client_configured(
        &self,
        change: impl FnOnce(&mut ClientConfig),
        auth: ClientAuth,
        scope: &str,
    ) -> SmartClient {
        let mut config = ClientConfig::new(client_id(), redirect_uri(), scope, auth);
        change(&mut config);
        self.client_from(config, ClientOptions::default())
    }

    fn client_from(&self, config: ClientConfig, options: ClientOptions) -> SmartClient {
        let policy = IssuerPolicy::new()
            .allow(&self.base, config)
            .unwrap()
            .allow_http_loopback(true);
        SmartClient::with_options(policy, Arc::new(MemoryLaunchStore::new()), options).unwrap()
    }
}

/// Plays the browser: follows the authorize redirect (GET or POST form) to the server and returns
/// the query string of the redirect back to the app.
pub async fn browse(redirect: &halo_smart_client::Redirect) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = match redirect {
        halo_smart_client::Redirect::Get(url) => http.get(url.clone()).send().await.unwrap(),
        halo_smart_client::Redirect::Post(form) => http
            .post(form.action.clone())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form.body())
            .send()
            .await
            .unwrap(),
    };
    assert_eq!(response.status(), 302);
    let location = response.headers()[header::LOCATION].to_str().unwrap();
    let url = url::Url::parse(location).unwrap();
    assert!(location.starts_with(REDIRECT_URI));
    url.query().unwrap_or("").to_owned()
}

fn pairs(raw: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.as_bytes())
        .into_owned()
        .collect()
}

fn one<'a>(p: &'a [(String, String)], k: &str) -> Option<&'a str> {
    p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": error, "error_description": error})),
    )
        .into_response()
}

async fn discovery(State(m): State<Mock>) -> Response {
    let mut s = m.inner.lock().unwrap();
    s.record.discovery_requests += 1;
    let o = &s.origin;
    let methods = if s.behaviour.plain_only {
        json!(["plain"])
    } else {
        json!(["S256"])
    };
    axum::Json(json!({
        "issuer": format!("{o}/fhir"),
        "jwks_uri": format!("{o}/auth/jwks"),
        // A query parameter of the server's own, which the app must keep.
        "authorization_endpoint": format!("{o}/auth/authorize?tenant=t1"),
        "token_endpoint": "../auth/token",
        "introspection_endpoint": format!("{o}/auth/introspect"),
        "grant_types_supported": ["authorization_code", "client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic", "client_secret_post"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "code_challenge_methods_supported": methods,
        "capabilities": ["launch-ehr", "authorize-post", "client-public", "client-confidential-symmetric",
            "client-confidential-asymmetric", "context-ehr-patient", "sso-openid-connect",
            "permission-offline", "permission-patient", "permission-user", "permission-v2"]
    }))
    .into_response()
}

async fn authorize_get(State(m): State<Mock>, RawQuery(q): RawQuery) -> Response {
    authorize(&m, pairs(&q.unwrap_or_default()))
}

async fn authorize_post(
    State(m): State<Mock>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if ct != Some("application/x-www-form-urlencoded") {
        m.inner
            .lock()
            .unwrap()
            .record
            .violations
            .push("authorize POST not form-encoded".into());
    }
    // The endpoint's own query stays on the form's action URL.
    let mut p = pairs(&q.unwrap_or_default());
    p.extend(pairs(&String::from_utf8_lossy(&body)));
    authorize(&m, p)
}

/// 5.05–5.07: every authorize request.
fn authorize(m: &Mock, p: Vec<(String, String)>) -> Response {
    let mut s = m.inner.lock().unwrap();
    s.record.authorize_requests += 1;
    let mut v = Vec::new();
    let base = format!("{}/fhir", s.origin);
    let checks: [(&str, Option<&str>, Option<&str>); 5] = [
        ("response_type", one(&p, "response_type"), Some("code")),
        ("client_id", one(&p, "client_id"), Some(CLIENT_ID)),
        ("redirect_uri", one(&p, "redirect_uri"), Some(REDIRECT_URI)),
        ("aud", one(&p, "aud"), Some(base.as_str())),
        (
            "code_challenge_method",
            one(&p, "code_challenge_method"),
            Some("S256"),
        ),
    ];
    for (name, got, want) in checks {
        if got != want {
            v.push(format!("authorize {name} = {got:?}, expected {want:?}"));
        }
    }
    for name in [
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "aud",
        "code_challenge",
        "launch",
    ] {
        if p.iter().filter(|(n, _)| n == name).count() != 1 {
            v.push(format!("authorize {name} not present exactly once"));
        }
    }
    if one(&p, "tenant") != Some("t1") {
        v.push("authorize dropped the endpoint's own query parameter".into());
    }
    let launch = one(&p, "launch").unwrap_or_default().to_owned();
    if !s.launches.contains_key(&launch) {
        v.push(format!("authorize launch {launch:?} was never issued"));
    }
    let scope = one(&p, "scope").unwrap_or_default().to_owned();
    if !scope.split(' ').any(|x| x == "launch") {
        v.push("authorize scope lacks launch".into());
    }
    let state = one(&p, "state").unwrap_or_default().to_owned();
    if state.len() < 22 {
        v.push("state too short for 122 bits".into());
    }
    s.record.violations.extend(v);
    s.counter += 1;
    let code = format!("code-{}", s.counter);
    s.codes.insert(
        code.clone(),
        CodeGrant {
            challenge: one(&p, "code_challenge").unwrap_or_default().to_owned(),
            redirect_uri: one(&p, "redirect_uri").unwrap_or_default().to_owned(),
            scope,
            launch,
        },
    );
    let mut back = url::Url::parse(REDIRECT_URI).unwrap();
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &state);
    (StatusCode::FOUND, [(header::LOCATION, back.to_string())]).into_response()
}

/// 5.08–5.11: client authentication. Returns a violation text on failure.
fn authenticate(s: &mut Inner, headers: &HeaderMap, p: &[(String, String)]) -> Result<(), String> {
    let auth_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let token_url = format!("{}/auth/token", s.origin);
    match s.registered.clone() {
        Registered::Public => {
            if one(p, "client_id") != Some(CLIENT_ID) || auth_header.is_some() {
                return Err("public client must send client_id in the body only".into());
            }
        }
        Registered::Basic(secret) => {
            // RFC 6749 §2.3.1: both parts form-urlencoded before Basic encoding.
            let enc =
                |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
            let want = format!(
                "Basic {}",
                STANDARD.encode(format!("{}:{}", enc(CLIENT_ID), enc(&secret)))
            );
            if auth_header != Some(want.as_str()) || one(p, "client_secret").is_some() {
                return Err("bad client_secret_basic".into());
            }
        }
        Registered::Post(secret) => {
            if one(p, "client_id") != Some(CLIENT_ID)
                || one(p, "client_secret") != Some(secret.as_str())
            {
                return Err("bad client_secret_post".into());
            }
        }
        Registered::Jwt(public) => {
            if one(p, "client_assertion_type")
                != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
            {
                return Err("bad client_assertion_type".into());
            }
            let assertion = one(p, "client_assertion").ok_or("no client_assertion")?;
            let header = jsonwebtoken::decode_header(assertion).map_err(|e| e.to_string())?;
            if header.typ.as_deref() != Some("JWT") {
                return Err("assertion typ is not JWT".into());
            }
            if header.kid.as_deref() != public["kid"].as_str() {
                return Err("assertion kid unknown".into());
            }
            if !matches!(header.alg, Algorithm::RS384 | Algorithm::ES384) {
                return Err("assertion alg not RS384/ES384".into());
            }
            let jwk: Jwk = serde_json::from_value(public).unwrap();
            let key = DecodingKey::from_jwk(&jwk).unwrap();
            let mut val = Validation::new(header.alg);
            val.set_audience(&[&token_url]);
            val.set_issuer(&[CLIENT_ID]);
            val.leeway = 0;
            val.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            let claims = jsonwebtoken::decode::<Value>(assertion, &key, &val)
                .map_err(|e| format!("assertion rejected: {e}"))?
                .claims;
            if claims["aud"] != token_url.as_str() {
                return Err("assertion aud is not the token URL exactly".into());
            }
            if claims["sub"] != CLIENT_ID {
                return Err("assertion sub is not the client id".into());
            }
            let now = chrono::Utc::now().timestamp();
            if claims["exp"].as_i64().unwrap_or(0) > now + 300 {
                return Err("assertion exp more than 5 minutes ahead".into());
            }
            let jti = claims["jti"]
                .as_str()
                .ok_or("assertion without jti")?
                .to_owned();
            if !s.jtis.insert(jti) {
                return Err("assertion jti reused".into());
            }
        }
    }
    Ok(())
}

fn signed_id_token(s: &Inner, unknown_key: bool) -> String {
    signed_id_token_for(s, unknown_key, "alice", "Practitioner/123")
}

fn signed_id_token_for(s: &Inner, unknown_key: bool, sub: &str, fhir_user: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "iss": format!("{}/fhir", s.origin), "sub": sub, "aud": CLIENT_ID,
        "exp": now + 300, "iat": now, "fhirUser": format!("{}/fhir/{fhir_user}", s.origin)
    });
    let key = if unknown_key {
        app_es384_key()
    } else {
        app_rs384_key()
    };
    key.sign(&claims).unwrap()
}

fn issue_tokens(s: &mut Inner, scope: &str, patient: Option<&str>, with_refresh: bool) -> Value {
    s.counter += 1;
    let access = format!(
        "at-{}-{}",
        s.counter,
        URL_SAFE_NO_PAD.encode(s.counter.to_be_bytes())
    );
    s.access
        .insert(access.clone(), patient.unwrap_or_default().to_owned());
    let mut body = json!({
        "access_token": access, "token_type": "Bearer",
        "expires_in": s.behaviour.access_lifetime, "scope": scope,
    });
    if let Some(p) = patient {
        body["patient"] = p.into();
        body["need_patient_banner"] = true.into();
    }
    if with_refresh {
        let refresh = format!("rt-{}", s.counter);
        s.refresh
            .insert(refresh.clone(), patient.unwrap_or_default().to_owned());
        body["refresh_token"] = refresh.into();
    }
    body
}

async fn token(State(m): State<Mock>, headers: HeaderMap, body: Bytes) -> Response {
    let p = pairs(&String::from_utf8_lossy(&body));
    let grant = one(&p, "grant_type").unwrap_or_default().to_owned();
    let delay = {
        let s = m.inner.lock().unwrap();
        if grant == "refresh_token" {
            s.behaviour.refresh_delay
        } else {
            Duration::ZERO
        }
    };
    tokio::time::sleep(delay).await;
    let mut s = m.inner.lock().unwrap();
    s.record.token_requests += 1;
    if let Err(v) = authenticate(&mut s, &headers, &p) {
        s.record.violations.push(v);
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    match grant.as_str() {
        "authorization_code" => {
            if let Some((status, ct, body)) = s.behaviour.token_override.clone() {
                return (
                    StatusCode::from_u16(status).unwrap(),
                    [(header::CONTENT_TYPE, ct)],
                    body,
                )
                    .into_response();
            }
            let code = one(&p, "code").unwrap_or_default();
            let Some(grant) = s.codes.remove(code) else {
                s.record
                    .violations
                    .push("token code not issued or reused".into());
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            };
            if one(&p, "redirect_uri") != Some(grant.redirect_uri.as_str()) {
                s.record
                    .violations
                    .push("token redirect_uri differs from authorize".into());
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            }
            let verifier = one(&p, "code_verifier").unwrap_or_default();
            if s256(verifier) != grant.challenge {
                s.record
                    .violations
                    .push("PKCE verifier does not match the challenge".into());
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            }
            let patient = s.launches.get(&grant.launch).cloned();
            let patient = if s.behaviour.omit_patient {
                None
            } else {
                patient
            };
            let with_refresh = s.behaviour.grant_refresh;
            let mut body = issue_tokens(&mut s, &grant.scope, patient.as_deref(), with_refresh);
            match s.behaviour.id_token {
                IdTokenMode::None => {}
                IdTokenMode::Good => body["id_token"] = signed_id_token(&s, false).into(),
                IdTokenMode::UnknownKey => body["id_token"] = signed_id_token(&s, true).into(),
                IdTokenMode::AlgNone => {
                    let now = chrono::Utc::now().timestamp();
                    let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
                    let c = URL_SAFE_NO_PAD.encode(
                        json!({"iss": format!("{}/fhir", s.origin), "sub": "mallory",
                               "aud": CLIENT_ID, "exp": now + 300, "iat": now})
                        .to_string(),
                    );
                    body["id_token"] = format!("{h}.{c}.").into();
                }
            }
            no_store(body)
        }
        "refresh_token" => {
            s.record.refresh_requests += 1;
            let rt = one(&p, "refresh_token").unwrap_or_default().to_owned();
            let Some(patient) = s.refresh.get(&rt).cloned() else {
                s.record.violations.push("refresh token not issued".into());
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            };
            let rotate = s.behaviour.rotate_refresh;
            if rotate {
                s.refresh.remove(&rt);
            }
            let patient = (!patient.is_empty()).then_some(patient);
            let mut body = issue_tokens(
                &mut s,
                "launch openid fhirUser patient/*.rs offline_access",
                patient.as_deref(),
                rotate,
            );
            match s.behaviour.refresh_id_token {
                RefreshIdToken::None => {}
                RefreshIdToken::Good => body["id_token"] = signed_id_token(&s, false).into(),
                RefreshIdToken::OtherUser => {
                    body["id_token"] =
                        signed_id_token_for(&s, false, "mallory", "Practitioner/evil").into();
                }
                RefreshIdToken::Forged => {
                    let good = signed_id_token(&s, false);
                    let mut parts = good.split('.');
                    let (header, payload, signature) = (
                        parts.next().unwrap(),
                        parts.next().unwrap(),
                        parts.next().unwrap(),
                    );
                    let mut claims: Value =
                        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
                    claims["fhirUser"] = format!("{}/fhir/Practitioner/evil", s.origin).into();
                    let forged = URL_SAFE_NO_PAD.encode(claims.to_string());
                    body["id_token"] = format!("{header}.{forged}.{signature}").into();
                }
            }
            no_store(body)
        }
        "client_credentials" => {
            if !matches!(s.registered, Registered::Jwt(_)) || one(&p, "scope").is_none() {
                s.record
                    .violations
                    .push("client_credentials without assertion or scope".into());
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
            }
            let scope = one(&p, "scope").unwrap_or_default().to_owned();
            no_store(issue_tokens(&mut s, &scope, None, false))
        }
        _ => oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    }
}

fn no_store(body: Value) -> Response {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        axum::Json(body),
    )
        .into_response()
}

async fn introspect(State(m): State<Mock>, headers: HeaderMap, body: Bytes) -> Response {
    let p = pairs(&String::from_utf8_lossy(&body));
    let mut s = m.inner.lock().unwrap();
    if let Err(v) = authenticate(&mut s, &headers, &p) {
        s.record.violations.push(v);
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let token = one(&p, "token").unwrap_or_default();
    match s.access.get(token) {
        Some(patient) => axum::Json(json!({"active": true, "client_id": CLIENT_ID,
            "scope": "launch patient/*.rs", "exp": chrono::Utc::now().timestamp() + 60,
            "patient": patient}))
        .into_response(),
        None => axum::Json(json!({"active": false})).into_response(),
    }
}

async fn jwks(State(m): State<Mock>) -> Response {
    m.inner.lock().unwrap().record.jwks_requests += 1;
    axum::Json(fixture_json("spec-jwks.RS384.public.json")).into_response()
}

/// 5.12: a FHIR request must carry a bearer token the server issued.
fn bearer(m: &Mock, headers: &HeaderMap) -> Result<String, Response> {
    let mut s = m.inner.lock().unwrap();
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match token.and_then(|t| s.access.get(t).cloned()) {
        Some(patient) => {
            s.record.bearer_uses += 1;
            if headers.get("prefer").and_then(|v| v.to_str().ok()) == Some("respond-async") {
                s.record.prefer_async_seen += 1;
            }
            Ok(patient)
        }
        // What smart-launcher-v2 answers for a token it no longer accepts.
        None => {
            s.record.unauthorized += 1;
            Err((
                StatusCode::UNAUTHORIZED,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "Invalid token: jwt expired",
            )
                .into_response())
        }
    }
}

fn fhir_json(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/fhir+json")],
        body.to_string(),
    )
        .into_response()
}

async fn read_patient(
    State(m): State<Mock>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = bearer(&m, &headers) {
        return r;
    }
    let answer = m.inner.lock().unwrap().behaviour.fhir_answer.clone();
    if let Some((status, content_type, body)) = answer {
        return (
            StatusCode::from_u16(status).unwrap(),
            [(header::CONTENT_TYPE, content_type)],
            body,
        )
            .into_response();
    }
    if id == "not-a-patient" {
        return fhir_json(StatusCode::OK, json!({"resourceType": "Group", "id": id}));
    }
    fhir_json(
        StatusCode::OK,
        json!({"resourceType": "Patient", "id": id, "name": [{"family": format!("Family-{id}")}]}),
    )
}

async fn search(State(m): State<Mock>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    if let Err(r) = bearer(&m, &headers) {
        return r;
    }
    let p = pairs(&q.unwrap_or_default());
    let page: usize = one(&p, "_page").and_then(|x| x.parse().ok()).unwrap_or(1);
    let patient = one(&p, "patient").unwrap_or_default().to_owned();
    if one(&p, "big").is_some() {
        let filler = "x".repeat(4096);
        return fhir_json(
            StatusCode::OK,
            json!({"resourceType": "Bundle", "type": "searchset", "note": filler}),
        );
    }
    let base = format!("{}/fhir", m.origin);
    let entries: Vec<Value> = (0..if page == 1 { 2 } else { 1 })
        .map(|i| json!({"resource": {"resourceType": "Observation", "id": format!("o{page}-{i}"), "subject": {"reference": format!("Patient/{patient}")}}}))
        .collect();
    let mut bundle = json!({"resourceType": "Bundle", "type": "searchset", "entry": entries, "link": [{"relation": "self", "url": format!("{base}/Observation")}]});
    if page == 1 {
        bundle["link"].as_array_mut().unwrap().push(json!({"relation": "next", "url": format!("{base}/Observation?patient={patient}&_page=2")}));
    }
    fhir_json(StatusCode::OK, bundle)
}

async fn create(State(m): State<Mock>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = bearer(&m, &headers) {
        return r;
    }
    let mut resource: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut s = m.inner.lock().unwrap();
    s.counter += 1;
    resource["id"] = format!("obs-{}", s.counter).into();
    if resource.get("subject").is_none() {
        return fhir_json(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "required", "diagnostics": "Observation.subject is required"}]}),
        );
    }
    s.record.created.push(resource.clone());
    let wants_async = headers.get("prefer").and_then(|v| v.to_str().ok()) == Some("respond-async");
    if wants_async {
        let job = format!("job-{}", s.counter);
        let polls = s.behaviour.async_polls;
        s.jobs.insert(job.clone(), (polls, resource));
        let retry = s.behaviour.retry_after;
        return (
            StatusCode::ACCEPTED,
            [
                (
                    header::CONTENT_LOCATION,
                    format!("{}/fhir/async/{job}", s.origin),
                ),
                (header::RETRY_AFTER, retry.to_owned()),
            ],
            "",
        )
            .into_response();
    }
    fhir_json(StatusCode::CREATED, resource)
}

async fn update(
    State(m): State<Mock>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = bearer(&m, &headers) {
        return r;
    }
    let mut resource: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    resource["meta"] = json!({"versionId": "2"});
    assert_eq!(resource["id"], id.as_str());
    fhir_json(StatusCode::OK, resource)
}

async fn poll(State(m): State<Mock>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = bearer(&m, &headers) {
        return r;
    }
    let mut s = m.inner.lock().unwrap();
    s.record.polls += 1;
    let retry = s.behaviour.retry_after;
    let Some((left, resource)) = s.jobs.get_mut(&id) else {
        return fhir_json(
            StatusCode::NOT_FOUND,
            json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-found", "diagnostics": "no such job"}]}),
        );
    };
    if *left > 0 {
        if *left != usize::MAX {
            *left -= 1;
        }
        return (
            StatusCode::ACCEPTED,
            [(header::RETRY_AFTER, retry.to_owned())],
            "",
        )
            .into_response();
    }
    let resource = resource.clone();
    fhir_json(StatusCode::CREATED, resource)
}
