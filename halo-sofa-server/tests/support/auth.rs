//! A SoFA with its authorization server on `127.0.0.1:0`, registered clients, launches and
//! helpers that run the SMART flows over real HTTP.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, OnceLock};

use aws_lc_rs::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{Duration, Utc};
use halo_model::fhir::RawResource;
use halo_smart_client::authorize::s256;
use halo_smart_client::keys::{SigningAlgorithm, SigningKey};
use halo_sofa_server::auth::{
    AuthServer, AutoApprove, ClientAuthentication, ClientRegistry, DevLogin, RegisteredClient,
    UserAuthenticator,
};
use halo_sofa_server::clock::{Clock, ManualClock};
use halo_sofa_server::config::{AuthConfig, SofaConfig};
use halo_sofa_server::fhir::ChangeNotifier;
use halo_sofa_server::sofa::Sofa;
use halo_sofa_server::store::{LaunchRecord, MemoryStore, NewResource, Store};
use reqwest::StatusCode;
use serde_json::{Value, json};

pub const REDIRECT: &str = "https://app.example.org/callback";
pub const APP_SCOPES: &str =
    "launch openid fhirUser offline_access online_access patient/*.cruds user/*.cruds";
pub const SECRET: &str = "app-secret-value-0123456789";
pub const POC_SECRET: &str = "poc-secret-value-0123456789";
/// The origin of a browser SMART app registered for CORS (REQ SEC-06).
pub const APP_ORIGIN: &str = "https://app.example.org";
/// Where the PoC's clinician sign-in comes back to.
pub const POC_REDIRECT: &str = "https://emr.example.org/signed-in";
/// What the PoC asks for when it signs its clinician in.
pub const POC_USER_SCOPES: &str = "openid fhirUser Context.write";

/// The ES384 key `app-jwt` signs its client assertions with: generated once for every test.
pub fn client_key() -> &'static (SigningKey, Value) {
    static KEY: OnceLock<(SigningKey, Value)> = OnceLock::new();
    KEY.get_or_init(|| {
        let pair = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
        let pkcs8 = pair.to_pkcs8v1().unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(pkcs8.as_ref())
        );
        let key =
            SigningKey::from_pem(SigningAlgorithm::Es384, "app-key-1", pem.as_bytes()).unwrap();
        let point = pair.public_key().as_ref();
        let jwks = json!({"keys": [{
            "kty": "EC", "crv": "P-384", "kid": "app-key-1", "alg": "ES384", "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(&point[1..49]),
            "y": URL_SAFE_NO_PAD.encode(&point[49..97]),
        }]});
        (key, jwks)
    })
}

pub struct AuthServerUnderTest {
    /// The server task; aborted on drop, so a restart can listen on the same address.
    pub task: tokio::task::JoinHandle<()>,
    pub base: String,
    pub store: Arc<dyn Store>,
    pub clock: Arc<ManualClock>,
    pub auth: AuthServer,
    pub http: reqwest::Client,
}

pub struct Options {
    pub user: &'static str,
    pub notifier: Option<Arc<dyn ChangeNotifier>>,
    /// The development login page (users dr-a and dr-b, password `pw-<id>`) instead of
    /// auto-approve.
    pub dev_login: bool,
    /// The SoFA's userless mode (D-18).
    pub userless: bool,
    /// The store (a fresh memory store when absent).
    pub store: Option<Arc<dyn Store>>,
    /// Where to listen (`127.0.0.1:0` when absent): a restarted server keeps its issuer URL.
    pub listen: Option<std::net::SocketAddr>,
    /// Rate limits (off when absent).
    pub rate_limits: Option<halo_sofa_server::limits::RateLimits>,
    /// How long a request body may take (the library default when absent).
    pub body_read_timeout: Option<std::time::Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            user: "dr-a",
            notifier: None,
            dev_login: false,
            userless: false,
            store: None,
            listen: None,
            rate_limits: None,
            body_read_timeout: None,
        }
    }
}

/// The harness's store when a test names none: a fresh memory store, or with
/// `HALO_TEST_STORE=postgres` a PostgreSQL store in a schema of its own, so the same suites run
/// again on PostgreSQL (scripts/test does).
async fn default_store() -> Arc<dyn Store> {
    if std::env::var("HALO_TEST_STORE").as_deref() != Ok("postgres") {
        return Arc::new(MemoryStore::new());
    }
    let url = std::env::var("HALO_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        "postgres://halo:halo-test@127.0.0.1:5432/halo_test?sslmode=disable".into()
    });
    let options = halo_sofa_server::store::PostgresOptions {
        schema: Some(format!("t_auth_{}", uuid::Uuid::new_v4().simple())),
        max_connections: 8,
        ..Default::default()
    };
    Arc::new(
        halo_sofa_server::store::PostgresStore::connect_with(&url, options)
            .await
            .expect("HALO_TEST_STORE=postgres needs HALO_TEST_POSTGRES_URL"),
    )
}

pub async fn start() -> AuthServerUnderTest {
    start_with(Options::default()).await
}

pub async fn start_with(options: Options) -> AuthServerUnderTest {
    let store: Arc<dyn Store> = match options.store.clone() {
        Some(store) => store,
        None => default_store().await,
    };
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let listen = options
        .listen
        .unwrap_or_else(|| "127.0.0.1:0".parse().unwrap());
    let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
    let base = format!("http://{}/fhir", listener.local_addr().unwrap());
    let mut config = SofaConfig::new(&base).unwrap();
    config.oauth = Some(AuthServer::oauth_uris(&base));
    config.require_active_subscription = false;
    config.userless_launches = options.userless;
    config.cors_allowed_origins = vec![APP_ORIGIN.into()];
    config.rate_limits = options.rate_limits.clone().unwrap_or_default();
    if let Some(timeout) = options.body_read_timeout {
        config.body_read_timeout = timeout;
    }
    let clients = ClientRegistry::new()
        .with(
            RegisteredClient::new("app-public", ClientAuthentication::Public)
                .redirect_uri(REDIRECT)
                .scopes(APP_SCOPES),
        )
        .with(
            RegisteredClient::new("app-secret", ClientAuthentication::secret(SECRET))
                .redirect_uri(REDIRECT)
                .scopes(APP_SCOPES),
        )
        .with(
            RegisteredClient::new(
                "app-jwt",
                ClientAuthentication::PrivateKeyJwt {
                    jwks: client_key().1.clone(),
                },
            )
            .redirect_uri(REDIRECT)
            .scopes(APP_SCOPES),
        )
        .with(
            RegisteredClient::new("poc", ClientAuthentication::secret(POC_SECRET))
                .redirect_uri(POC_REDIRECT)
                .scopes("openid fhirUser Context.write system/Subscription.cruds"),
        );
    let auth_config = AuthConfig {
        development_mode: true,
        ..AuthConfig::default()
    };
    let auth = AuthServer::start(
        &config,
        auth_config,
        store.clone(),
        clock.clone(),
        clients,
        if options.dev_login {
            Arc::new(
                DevLogin::new()
                    .user("dr-a", "pw-dr-a", Some("Practitioner/dr-a"))
                    .user("dr-b", "pw-dr-b", None),
            ) as Arc<dyn UserAuthenticator>
        } else {
            Arc::new(AutoApprove::new(options.user, Some("Practitioner/dr-a")))
        },
    )
    .await
    .unwrap();
    // Every request a client's tokens make spends its budget, as the reference SoFA assembles it.
    let tokens: Arc<dyn halo_sofa_server::auth::TokenValidator> = match &options.rate_limits {
        Some(limits) => Arc::new(halo_sofa_server::auth::RateLimitedTokens::new(
            auth.token_validator(),
            limits.per_client,
        )),
        None => auth.token_validator(),
    };
    let mut builder = Sofa::builder(config)
        .store(store.clone())
        .clock(clock.clone())
        .token_validator(tokens)
        .authorization(&auth);
    builder = with_resources(builder, options.notifier);
    let sofa = builder.build().unwrap();
    let app = axum::Router::new().nest("/fhir", sofa.router());
    // With the peer address, as a host serves it, so per-address limits apply.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    AuthServerUnderTest {
        task,
        base,
        store,
        clock,
        auth,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    }
}

fn with_resources(
    builder: halo_sofa_server::sofa::SofaBuilder,
    notifier: Option<Arc<dyn ChangeNotifier>>,
) -> halo_sofa_server::sofa::SofaBuilder {
    let builder = builder.resource_server();
    match notifier {
        Some(notifier) => builder.notifier(notifier),
        // These tests are about authorization, not notifications.
        None => builder.commit_writes_without_notifying_the_poc_for_tests(),
    }
}

pub fn verifier() -> String {
    format!("verifier-{}-{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4())
}

/// A token answer.
pub struct TokenAnswer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl TokenAnswer {
    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
    pub fn access_token(&self) -> &str {
        self.body["access_token"].as_str().unwrap()
    }
}

impl Drop for AuthServerUnderTest {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl AuthServerUnderTest {
    /// Stops the server and waits until its address is free again (a restart).
    pub async fn stop(mut self) -> std::net::SocketAddr {
        let addr = self.addr();
        self.task.abort();
        let _ = (&mut self.task).await;
        addr
    }

    /// The address the server listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        url::Url::parse(&self.base)
            .unwrap()
            .socket_addrs(|| None)
            .unwrap()[0]
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stores a launch set by `user` of the PoC, with a patient, an encounter and one
    /// Observation of that patient in the launch; returns the launch id.
    pub async fn launch(&self, user: Option<&str>, patient_id: &str) -> String {
        let launch_id = format!("launch-{}", uuid::Uuid::new_v4().simple());
        let now = self.clock.now();
        let mut tx = self.store.begin().await.unwrap();
        for resource in [
            json!({"resourceType": "Patient", "id": patient_id, "gender": "female"}),
            json!({"resourceType": "Encounter", "id": format!("enc-{patient_id}"), "status": "in-progress",
                   "class": {"code": "AMB"}, "subject": {"reference": format!("Patient/{patient_id}")}}),
            json!({"resourceType": "Observation", "id": format!("obs-{patient_id}"), "status": "final",
                   "code": {"text": "weight"}, "subject": {"reference": format!("Patient/{patient_id}")}}),
            json!({"resourceType": "Observation", "id": format!("other-obs-{patient_id}"), "status": "final",
                   "code": {"text": "weight"}, "subject": {"reference": "Patient/somebody-else"}}),
        ] {
            tx.create_resource(NewResource {
                resource: RawResource::from_value(resource).unwrap(),
                launch_id: Some(launch_id.clone()),
                last_updated: now,
            })
            .await
            .unwrap();
        }
        tx.insert_launch(LaunchRecord {
            launch_id: launch_id.clone(),
            client_id: "poc".into(),
            user: user.map(str::to_string),
            owner_fhir_user: None,
            app_id: None,
            patient: Some(format!("Patient/{patient_id}")),
            encounter: Some(format!("Encounter/enc-{patient_id}")),
            fhir_user: Some("Practitioner/dr-a".into()),
            fhir_context: vec![format!("Encounter/enc-{patient_id}")],
            need_patient_banner: Some(true),
            intent: Some("reconcile-medications".into()),
            smart_style_url: None,
            tenant: None,
            created_at: now,
            expires_at: now + Duration::hours(12),
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();
        launch_id
    }

    /// The authorize parameters of a correct EHR launch.
    pub fn authorize_params(
        &self,
        client_id: &str,
        launch: &str,
        scope: &str,
        verifier: &str,
    ) -> Vec<(String, String)> {
        [
            ("response_type", "code".to_string()),
            ("client_id", client_id.to_string()),
            ("redirect_uri", REDIRECT.to_string()),
            ("scope", scope.to_string()),
            ("state", "state-123".to_string()),
            ("aud", self.base.clone()),
            ("launch", launch.to_string()),
            ("code_challenge", s256(verifier)),
            ("code_challenge_method", "S256".to_string()),
            ("nonce", "nonce-1".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// GET authorize; the redirect's query pairs (or the status when there is no redirect).
    pub async fn authorize(
        &self,
        params: &[(String, String)],
    ) -> Result<Vec<(String, String)>, StatusCode> {
        let response = self
            .http
            .get(self.url("/auth/authorize"))
            .query(params)
            .send()
            .await
            .unwrap();
        if response.status() != StatusCode::FOUND {
            return Err(response.status());
        }
        let location = response.headers()["location"].to_str().unwrap().to_string();
        assert!(location.starts_with(REDIRECT), "{location}");
        let url = url::Url::parse(&location).unwrap();
        Ok(url.query_pairs().into_owned().collect())
    }

    pub async fn code(&self, client_id: &str, launch: &str, scope: &str) -> (String, String) {
        let verifier = verifier();
        let pairs = self
            .authorize(&self.authorize_params(client_id, launch, scope, &verifier))
            .await
            .unwrap();
        let code = pairs
            .iter()
            .find(|(k, _)| k == "code")
            .unwrap_or_else(|| panic!("no code: {pairs:?}"))
            .1
            .clone();
        (code, verifier)
    }

    /// POSTs a token request as a public client would (client_id in the form).
    pub async fn token(&self, form: &[(&str, &str)]) -> TokenAnswer {
        self.token_with(self.http.post(self.url("/auth/token")).form(form))
            .await
    }

    pub async fn token_with(&self, request: reqwest::RequestBuilder) -> TokenAnswer {
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.json().await.unwrap_or(Value::Null);
        TokenAnswer {
            status,
            headers,
            body,
        }
    }

    pub async fn exchange(&self, client_id: &str, code: &str, verifier: &str) -> TokenAnswer {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
            ("client_id", client_id),
        ])
        .await
    }

    /// A full EHR launch for the public app: its token answer.
    pub async fn launch_token(&self, launch: &str, scope: &str) -> TokenAnswer {
        let (code, verifier) = self.code("app-public", launch, scope).await;
        let answer = self.exchange("app-public", &code, &verifier).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        answer
    }

    /// A `private_key_jwt` client assertion for `app-jwt`.
    pub fn assertion(&self, jti: &str) -> String {
        let now = Utc::now().timestamp();
        client_key()
            .0
            .sign(&json!({
                "iss": "app-jwt", "sub": "app-jwt", "aud": self.url("/auth/token"),
                "exp": now + 240, "iat": now, "jti": jti,
            }))
            .unwrap()
    }

    /// The PoC's own backend-services token (`client_credentials`): it names no user.
    pub async fn poc_service_token(&self) -> String {
        let answer = self
            .token_with(
                self.http
                    .post(self.url("/auth/token"))
                    .basic_auth("poc", Some(POC_SECRET))
                    .form(&[
                        ("grant_type", "client_credentials"),
                        ("scope", "Context.write"),
                    ]),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        answer.access_token().to_string()
    }

    /// The authorize parameters of the PoC signing its clinician in (no launch).
    pub fn poc_sign_in_params(&self, verifier: &str) -> Vec<(String, String)> {
        [
            ("response_type", "code".to_string()),
            ("client_id", "poc".to_string()),
            ("redirect_uri", POC_REDIRECT.to_string()),
            ("scope", POC_USER_SCOPES.to_string()),
            ("state", "poc-state".to_string()),
            ("aud", self.base.clone()),
            ("code_challenge", s256(verifier)),
            ("code_challenge_method", "S256".to_string()),
            ("nonce", "poc-nonce".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// POSTs an authorization request with development-login credentials: the redirect's
    /// query pairs, or the status and page when there is no redirect.
    pub async fn authorize_as(
        &self,
        params: &[(String, String)],
        credentials: Option<(&str, &str)>,
    ) -> Result<Vec<(String, String)>, (StatusCode, String)> {
        let mut form = params.to_vec();
        let mut request = self.http.post(self.url("/auth/authorize"));
        if let Some((user, password)) = credentials {
            let (csrf, cookie) = self.login_form(params).await;
            form.push(("username".into(), user.into()));
            form.push(("password".into(), password.into()));
            form.push(("csrf".into(), csrf));
            request = request.header("cookie", cookie);
        }
        let response = request.form(&form).send().await.unwrap();
        if response.status() != StatusCode::FOUND {
            return Err((response.status(), response.text().await.unwrap()));
        }
        let location = response.headers()["location"].to_str().unwrap().to_string();
        let url = url::Url::parse(&location).unwrap();
        Ok(url.query_pairs().into_owned().collect())
    }

    /// GETs the authorize endpoint and expects a page (200), not a redirect.
    async fn authorize_get(&self, params: &[(String, String)]) -> reqwest::Response {
        let page = self
            .http
            .get(self.url("/auth/authorize"))
            .query(params)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        page
    }

    /// GETs the authorize endpoint and expects a page (200), not a redirect: its HTML.
    pub async fn authorize_page(&self, params: &[(String, String)]) -> String {
        self.authorize_get(params).await.text().await.unwrap()
    }

    /// GETs the development login form for an authorization request: its CSRF token and the
    /// cookie that must come back with it.
    pub async fn login_form(&self, params: &[(String, String)]) -> (String, String) {
        let response = self.authorize_get(params).await;
        let cookie = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let html = response.text().await.unwrap();
        let marker = "name=\"csrf\" value=\"";
        let start = html.find(marker).unwrap() + marker.len();
        let csrf = html[start..].split('"').next().unwrap().to_string();
        (csrf, cookie)
    }

    /// The PoC signs its clinician in at this server (the authorization code flow with PKCE,
    /// as the confidential client `poc`), with development-login credentials when given (the
    /// auto-approved user otherwise): the clinician's access token.
    pub async fn poc_user_token(&self, credentials: Option<(&str, &str)>) -> String {
        let verifier = verifier();
        let pairs = self
            .authorize_as(&self.poc_sign_in_params(&verifier), credentials)
            .await
            .unwrap();
        let code = pairs.iter().find(|(k, _)| k == "code").unwrap().1.clone();
        let answer = self
            .token_with(
                self.http
                    .post(self.url("/auth/token"))
                    .basic_auth("poc", Some(POC_SECRET))
                    .form(&[
                        ("grant_type", "authorization_code"),
                        ("code", &code),
                        ("redirect_uri", POC_REDIRECT),
                        ("code_verifier", &verifier),
                    ]),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        answer.access_token().to_string()
    }

    /// The clinician's token the PoC sets contexts with (D-18): the auto-approved user signed
    /// in through the PoC.
    pub async fn poc_token(&self) -> String {
        self.poc_user_token(None).await
    }

    /// POSTs `$set-context` with one new Patient: the status and the body.
    pub async fn try_set_context(&self, poc_token: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url("/$set-context"))
            .bearer_auth(poc_token)
            .header("content-type", "application/fhir+json")
            .body(
                json!({"resourceType": "Parameters", "parameter": [
                    {"name": "patient", "valueReference": {"reference": "urn:uuid:9d4c6b43-2c4f-4d8b-9a3e-1c0e6a7b8c9d"}},
                    {"name": "resources", "resource": {"resourceType": "Bundle", "type": "transaction", "entry": [
                        {"fullUrl": "urn:uuid:9d4c6b43-2c4f-4d8b-9a3e-1c0e6a7b8c9d",
                         "resource": {"resourceType": "Patient", "gender": "male"},
                         "request": {"method": "POST", "url": "Patient"}}]}}
                ]})
                .to_string(),
            )
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The PoC sets a context with one new Patient through `$set-context` with `poc_token`;
    /// the launch id.
    pub async fn set_context(&self, poc_token: &str) -> String {
        let (status, output) = self.try_set_context(poc_token).await;
        assert_eq!(status, StatusCode::OK, "{output}");
        output["parameter"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "launchID")
            .unwrap()["valueString"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The PoC clears a context through `$clear-context`; the status.
    pub async fn clear_context(&self, poc_token: &str, launch: &str) -> StatusCode {
        self.http
            .post(self.url("/$clear-context"))
            .bearer_auth(poc_token)
            .header("content-type", "application/fhir+json")
            .body(
                json!({"resourceType": "Parameters",
                       "parameter": [{"name": "launchID", "valueString": launch}]})
                .to_string(),
            )
            .send()
            .await
            .unwrap()
            .status()
    }

    /// GET a public document (discovery, the JWKS, `metadata`) as JSON, without a token.
    pub async fn get_json(&self, path: &str) -> Value {
        self.http
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// GET a FHIR path with a bearer token.
    pub async fn get(
        &self,
        path: &str,
        token: &str,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        (
            status,
            headers,
            response.json().await.unwrap_or(Value::Null),
        )
    }
}
