//! `private_key_jwt` clients registered in the reference SoFA's TOML (REQ AS-06, AS-11): one
//! with its JWK Set inline (ES384), one with a JWKS URL served on loopback (RS384). Each gets a
//! `client_credentials` token over real HTTP with an assertion built by `halo-smart-client`;
//! an assertion signed by another key is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use halo_smart_client::keys::{SigningAlgorithm, SigningKey};
use halo_smart_client::token::client_credentials_request;
use reference_sofa::{Config, ReferenceSofa};
use serde_json::{Value, json};

fn pem(label: &str, der: &[u8]) -> String {
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        STANDARD.encode(der)
    )
}

/// An ES384 key: the client's signing key and its public JWK.
fn es384(kid: &str) -> (SigningKey, Value) {
    let pair = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
    let pkcs8 = pair.to_pkcs8v1().unwrap();
    let key = SigningKey::from_pem(
        SigningAlgorithm::Es384,
        kid,
        pem("PRIVATE KEY", pkcs8.as_ref()).as_bytes(),
    )
    .unwrap();
    let point = pair.public_key().as_ref();
    let jwk = json!({
        "kty": "EC", "crv": "P-384", "kid": kid, "alg": "ES384", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(&point[1..49]),
        "y": URL_SAFE_NO_PAD.encode(&point[49..97]),
    });
    (key, jwk)
}

/// An RS384 key: the client's signing key and its public JWK.
fn rs384(kid: &str) -> (SigningKey, Value) {
    let pair = aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048).unwrap();
    let pkcs8 = AsDer::<Pkcs8V1Der>::as_der(&pair).unwrap();
    let key = SigningKey::from_pem(
        SigningAlgorithm::Rs384,
        kid,
        pem("PRIVATE KEY", pkcs8.as_ref()).as_bytes(),
    )
    .unwrap();
    let public = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
    let jwk = json!({
        "kty": "RSA", "kid": kid, "alg": "RS384", "use": "sig",
        "n": URL_SAFE_NO_PAD.encode(&public.n),
        "e": URL_SAFE_NO_PAD.encode(&public.e),
    });
    (key, jwk)
}

/// Serves `jwks` at `http://127.0.0.1:<port>/jwks.json`.
async fn serve_jwks(jwks: Value) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let jwks = jwks.clone();
            async move { axum::Json(jwks) }
        }),
    );
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, task)
}

/// A `client_credentials` request signed with `key`, sent over HTTP: status and body.
async fn token(fhir_base: &str, client_id: &str, key: &SigningKey) -> (u16, Value) {
    let url = url::Url::parse(&format!("{fhir_base}/auth/token")).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let request =
        client_credentials_request(&url, client_id, key, "system/Patient.rs", now).unwrap();
    let response = reqwest::Client::new()
        .post(request.url)
        .form(&request.form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

// REQ: AS-06, AS-11
#[tokio::test]
async fn toml_registered_private_key_jwt_clients_get_tokens_over_http() {
    let (es_key, es_jwk) = es384("emr-es-1");
    let (rs_key, rs_jwk) = rs384("emr-rs-1");
    let (jwks_url, jwks_server) = serve_jwks(json!({"keys": [rs_jwk]})).await;
    // The TOML as an operator writes it: an inline table for the JWK Set, a URL for the other.
    let toml = format!(
        r#"
listen = "127.0.0.1:0"
database = ":memory:"
development_mode = true

[login]
mode = "auto-approve"
user = "dr-a"

[[clients]]
id = "emr-inline"
scopes = "system/Patient.rs"
jwks = {{ keys = [{{ kty = "EC", crv = "P-384", kid = "emr-es-1", alg = "ES384", x = "{x}", y = "{y}" }}] }}

[[clients]]
id = "emr-url"
scopes = "system/Patient.rs"
jwks_url = "{jwks_url}"
"#,
        x = es_jwk["x"].as_str().unwrap(),
        y = es_jwk["y"].as_str().unwrap(),
    );
    let config = Config::from_toml(&toml).unwrap();
    let sofa = ReferenceSofa::start(config).await.unwrap();

    for (client, key) in [("emr-inline", &es_key), ("emr-url", &rs_key)] {
        let (status, body) = token(&sofa.fhir_base, client, key).await;
        assert_eq!(status, 200, "{client}: {body}");
        assert_eq!(body["token_type"], "Bearer");
        assert!(body["access_token"].as_str().is_some_and(|t| !t.is_empty()));
    }
    // The other client's key (right algorithm, same kid as its own) is refused.
    let impostor = es384("emr-es-1").0;
    let (status, body) = token(&sofa.fhir_base, "emr-inline", &impostor).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let (status, _) = token(&sofa.fhir_base, "emr-url", &rs384("emr-rs-1").0).await;
    assert_eq!(status, 401);
    sofa.shutdown().await;
    jwks_server.abort();
}

// REQ: AS-11
#[test]
fn a_toml_client_with_a_secret_and_keys_or_a_private_jwk_is_refused() {
    let both = r#"
[[clients]]
id = "emr"
scopes = "system/Patient.rs"
secret = "s"
jwks_url = "https://emr.example.org/jwks.json"
"#;
    let config = Config::from_toml(&format!("development_mode = true\n{both}")).unwrap();
    let error = reference_sofa::registered_client(&config.clients[0], true)
        .unwrap_err()
        .to_string();
    assert!(error.contains("at most one"), "{error}");
}
