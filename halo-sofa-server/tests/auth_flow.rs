//! The authorization server over real HTTP on `127.0.0.1:0`: discovery, the EHR launch with
//! PKCE, OpenID Connect, refresh, client authentication, introspection, client_credentials,
//! and the hostile cases, each with its error and status.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/auth.rs"]
mod auth_support;

use auth_support::*;
use chrono::Duration;
use halo_model::smart::{SmartConfiguration, TokenResponse};
use reqwest::StatusCode;
use serde_json::{Value, json};

const SCOPE: &str = "launch openid fhirUser offline_access patient/*.rs";

// REQ: AS-01, AS-02
#[tokio::test]
async fn discovery_documents_and_jwks() {
    let server = start().await;
    let response = server
        .http
        .get(server.url("/.well-known/smart-configuration"))
        .header("Origin", "https://anywhere.example.org")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    let config = SmartConfiguration::from_json(&response.bytes().await.unwrap()).unwrap();
    config.validate().unwrap();
    assert_eq!(config.issuer.as_deref(), Some(server.base.as_str()));
    assert_eq!(config.code_challenge_methods_supported, ["S256"]);
    assert!(config.introspection_endpoint.is_some());
    for capability in [
        "launch-ehr",
        "authorize-post",
        "client-confidential-asymmetric",
        "sso-openid-connect",
        "context-ehr-patient",
        "permission-v2",
        "permission-offline",
    ] {
        assert!(
            config.capabilities.iter().any(|c| c.as_str() == capability),
            "{capability}"
        );
    }
    let (_, _, openid) = server.get("/.well-known/openid-configuration", "").await;
    assert_eq!(openid["issuer"], server.base);
    assert_eq!(
        openid["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
    assert_eq!(openid["subject_types_supported"], json!(["public"]));
    let (_, _, jwks) = server.get("/auth/jwks", "").await;
    let algs: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["alg"].as_str().unwrap())
        .collect();
    assert!(
        algs.contains(&"ES256") && algs.contains(&"RS256"),
        "{algs:?}"
    );
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k.get("d").is_none())
    );
}

// REQ: AS-03, AS-05, AS-07, SC-10, SC-09
#[tokio::test]
async fn ehr_launch_gives_tokens_with_the_launch_context_and_an_id_token() {
    let server = start().await;
    let launch = server.launch(Some("dr-a"), "p1").await;
    let (code, verifier) = server.code("app-public", &launch, SCOPE).await;
    let answer = server.exchange("app-public", &code, &verifier).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    // REQ: AS-06
    assert_eq!(answer.headers["cache-control"], "no-store");
    assert_eq!(answer.headers["pragma"], "no-cache");
    let token = TokenResponse::from_value(answer.body.clone()).unwrap();
    assert!(token.is_bearer());
    assert_eq!(token.scope.as_deref(), Some(SCOPE));
    assert!(token.expires_in.is_some());
    assert!(token.refresh_token.is_some());
    assert_eq!(token.patient.as_deref(), Some("p1"));
    assert_eq!(token.encounter.as_deref(), Some("enc-p1"));
    assert_eq!(token.need_patient_banner, Some(true));
    assert_eq!(token.intent.as_deref(), Some("reconcile-medications"));
    assert_eq!(
        answer.body["fhirContext"],
        json!([{"reference": "Encounter/enc-p1"}])
    );
    // The id_token verifies with the JWKS (RS256) and names the launch's fhirUser.
    let id_token = token.id_token.as_deref().unwrap();
    let header = jsonwebtoken::decode_header(id_token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    let (_, _, jwks) = server.get("/auth/jwks", "").await;
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(set.find(&header.kid.unwrap()).unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["app-public"]);
    validation.set_issuer(&[server.base.as_str()]);
    let claims: Value = jsonwebtoken::decode(id_token, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["sub"], "dr-a");
    assert_eq!(claims["nonce"], "nonce-1");
    assert_eq!(
        claims["fhirUser"],
        format!("{}/Practitioner/dr-a", server.base)
    );
    // The access token is ES256 with a kid.
    let access = jsonwebtoken::decode_header(token.access_token.as_str()).unwrap();
    assert_eq!(access.alg, jsonwebtoken::Algorithm::ES256);
    assert!(access.kid.is_some());
}

// REQ: AS-03
#[tokio::test]
async fn authorize_post_works_like_get() {
    let server = start().await;
    let launch = server.launch(Some("dr-a"), "p1").await;
    let verifier = verifier();
    let response = server
        .http
        .post(server.url("/auth/authorize"))
        .form(&server.authorize_params("app-public", &launch, SCOPE, &verifier))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with(REDIRECT) && location.contains("code="),
        "{location}"
    );
    assert!(location.contains("state=state-123"));
}

fn error_of(pairs: &[(String, String)]) -> (&str, Option<&str>) {
    let get = |n: &str| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    (get("error").unwrap_or(""), get("state"))
}

// REQ: AS-03, SC-09
#[tokio::test]
async fn hostile_authorization_requests_are_refused() {
    let server = start().await;
    let launch = server.launch(Some("dr-a"), "p1").await;
    let v = verifier();
    let good = server.authorize_params("app-public", &launch, SCOPE, &v);
    let with = |name: &str, value: Option<&str>| {
        let mut params: Vec<(String, String)> =
            good.iter().filter(|(k, _)| k != name).cloned().collect();
        if let Some(value) = value {
            params.push((name.to_string(), value.to_string()));
        }
        params
    };
    // Unknown client and a redirect URI differing by one character: shown, never redirected.
    assert_eq!(
        server.authorize(&with("client_id", Some("nobody"))).await,
        Err(StatusCode::BAD_REQUEST)
    );
    assert_eq!(
        server
            .authorize(&with(
                "redirect_uri",
                Some("https://app.example.org/callbacK")
            ))
            .await,
        Err(StatusCode::BAD_REQUEST)
    );
    assert_eq!(
        server
            .authorize(&with(
                "redirect_uri",
                Some("https://app.example.org/callback/")
            ))
            .await,
        Err(StatusCode::BAD_REQUEST)
    );
    // PKCE missing or `plain`.
    for params in [
        with("code_challenge_method", None),
        with("code_challenge_method", Some("plain")),
        with("code_challenge", None),
    ] {
        let pairs = server.authorize(&params).await.unwrap();
        assert_eq!(error_of(&pairs), ("invalid_request", Some("state-123")));
    }
    // `aud` of another server.
    let pairs = server
        .authorize(&with("aud", Some("https://other.example.org/fhir")))
        .await
        .unwrap();
    assert_eq!(error_of(&pairs).0, "invalid_request");
    let pairs = server
        .authorize(&with("response_type", Some("token")))
        .await
        .unwrap();
    assert_eq!(error_of(&pairs).0, "unsupported_response_type");
    let pairs = server
        .authorize(&with("scope", Some("system/*.cruds")))
        .await
        .unwrap();
    assert_eq!(error_of(&pairs).0, "invalid_scope");
    // Launch id of another user: an error page, nothing for the app (REQ IDP-04).
    let other = server.launch(Some("dr-b"), "p2").await;
    assert_eq!(
        server
            .authorize(&with("launch", Some(other.as_str())))
            .await
            .unwrap_err(),
        StatusCode::FORBIDDEN
    );
    // An unknown one, an expired one: the app is told.
    let pairs = server
        .authorize(&with("launch", Some("no-such-launch")))
        .await
        .unwrap();
    assert_eq!(error_of(&pairs).0, "access_denied");
    server.clock.advance(Duration::hours(13));
    let pairs = server.authorize(&good).await.unwrap();
    assert_eq!(error_of(&pairs).0, "access_denied");
}

// REQ: AS-05, AS-06
#[tokio::test]
async fn code_replay_is_refused_and_revokes_what_the_code_produced() {
    let server = start().await;
    let launch = server.launch(Some("dr-a"), "p1").await;
    let (code, verifier) = server.code("app-public", &launch, SCOPE).await;
    let first = server.exchange("app-public", &code, &verifier).await;
    assert_eq!(first.status, StatusCode::OK);
    let (status, _, _) = server.get("/Patient/p1", first.access_token()).await;
    assert_eq!(status, StatusCode::OK);
    let replay = server.exchange("app-public", &code, &verifier).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);
    assert_eq!(replay.error(), "invalid_grant");
    assert_eq!(replay.headers["cache-control"], "no-store");
    // The access and refresh tokens of the first exchange are revoked.
    let (status, headers, _) = server.get("/Patient/p1", first.access_token()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let refresh = server
        .token(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                first.body["refresh_token"].as_str().unwrap(),
            ),
            ("client_id", "app-public"),
        ])
        .await;
    assert_eq!(refresh.error(), "invalid_grant");
}

// REQ: AS-05, AS-06
#[tokio::test]
async fn hostile_code_exchanges_are_refused() {
    let server = start().await;
    let launch = server.launch(Some("dr-a"), "p1").await;
    // Wrong verifier, missing verifier, other redirect URI, other client, expired code.
    let (code, _) = server.code("app-public", &launch, SCOPE).await;
    let wrong = server.exchange("app-public", &code, &verifier()).await;
    assert_eq!(
        (wrong.status, wrong.error()),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );

    let (code, _) = server.code("app-public", &launch, SCOPE).await;
    let missing = server
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", "app-public"),
        ])
        .await;
    assert_eq!(missing.error(), "invalid_grant");

    let (code, verifier) = server.code("app-public", &launch, SCOPE).await;
    let redirect = server
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://app.example.org/callbacK"),
            ("code_verifier", &verifier),
            ("client_id", "app-public"),
        ])
        .await;
    assert_eq!(redirect.error(), "invalid_grant");

    let (code, verifier) = server.code("app-public", &launch, SCOPE).await;
    let other_client = server
        .token_with(
            server
                .http
                .post(server.url("/auth/token"))
                .basic_auth("app-secret", Some(SECRET))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", verifier.as_str()),
                ]),
        )
        .await;
    assert_eq!(other_client.error(), "invalid_grant");

    let (code, verifier) = server.code("app-public", &launch, SCOPE).await;
    server.clock.advance(Duration::seconds(61));
    let expired = server.exchange("app-public", &code, &verifier).await;
    assert_eq!(expired.error(), "invalid_grant");

    let unknown = server.exchange("app-public", "not-a-code", &verifier).await;
    assert_eq!(unknown.error(), "invalid_grant");
    let grant = server
        .token(&[("grant_type", "password"), ("client_id", "app-public")])
        .await;
    assert_eq!(grant.error(), "unsupported_grant_type");
}

// REQ: AS-06, SEC-02
#[tokio::test]
async fn confidential_clients_authenticate_with_basic_post_and_private_key_jwt() {
    let server = start().await;
    let launch = server.launch(Some("dr-a"), "p1").await;
    let form = |code: &str, verifier: &str| {
        vec![
            ("grant_type".to_string(), "authorization_code".to_string()),
            ("code".to_string(), code.to_string()),
            ("redirect_uri".to_string(), REDIRECT.to_string()),
            ("code_verifier".to_string(), verifier.to_string()),
        ]
    };
    // client_secret_basic
    let (code, verifier) = server.code("app-secret", &launch, SCOPE).await;
    let basic = server
        .token_with(
            server
                .http
                .post(server.url("/auth/token"))
                .basic_auth("app-secret", Some(SECRET))
                .form(&form(&code, &verifier)),
        )
        .await;
    assert_eq!(basic.status, StatusCode::OK, "{}", basic.body);
    // client_secret_post
    let (code, verifier) = server.code("app-secret", &launch, SCOPE).await;
    let mut post = form(&code, &verifier);
    post.push(("client_id".into(), "app-secret".into()));
    post.push(("client_secret".into(), SECRET.into()));
    let answer = server
        .token_with(server.http.post(server.url("/auth/token")).form(&post))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    // A wrong secret, and a confidential client posing as public: 401 invalid_client.
    let (code, verifier) = server.code("app-secret", &launch, SCOPE).await;
    let wrong = server
        .token_with(
            server
                .http
                .post(server.url("/auth/token"))
                .basic_auth("app-secret", Some("app-secret-value-012345678"))
                .form(&form(&code, &verifier)),
        )
        .await;
    assert_eq!(
        (wrong.status, wrong.error()),
        (StatusCode::UNAUTHORIZED, "invalid_client")
    );
    let posing = server.exchange("app-secret", &code, &verifier).await;
    assert_eq!(posing.error(), "invalid_client");
    // private_key_jwt (ES384), then the same assertion again: jti replay.
    let assertion = server.assertion("jti-1");
    let with_assertion = |code: &str, verifier: &str| {
        let mut f = form(code, verifier);
        f.push((
            "client_assertion_type".into(),
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
        ));
        f.push(("client_assertion".into(), assertion.clone()));
        f
    };
    let (code, verifier) = server.code("app-jwt", &launch, SCOPE).await;
    let jwt = server
        .token_with(
            server
                .http
                .post(server.url("/auth/token"))
                .form(&with_assertion(&code, &verifier)),
        )
        .await;
    assert_eq!(jwt.status, StatusCode::OK, "{}", jwt.body);
    let (code, verifier) = server.code("app-jwt", &launch, SCOPE).await;
    let replayed = server
        .token_with(
            server
                .http
                .post(server.url("/auth/token"))
                .form(&with_assertion(&code, &verifier)),
        )
        .await;
    assert_eq!(
        (replayed.status, replayed.error()),
        (StatusCode::UNAUTHORIZED, "invalid_client")
    );
    assert!(
        replayed.body["error_description"]
            .as_str()
            .unwrap()
            .contains("jti")
    );
}

// REQ: AS-08, SC-12
#[tokio::test]
async fn refresh_rotates_narrows_and_revokes_the_family_on_reuse() {
    let server = start().await;
    let launch = server.launch(Some("dr-a"), "p1").await;
    let first = server.launch_token(&launch, SCOPE).await;
    let old = first.body["refresh_token"].as_str().unwrap().to_string();
    let refresh = |token: String, scope: Option<&'static str>| {
        let mut form = vec![
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", token),
            ("client_id", "app-public".to_string()),
        ];
        if let Some(scope) = scope {
            form.push(("scope", scope.to_string()));
        }
        server.token_with(server.http.post(server.url("/auth/token")).form(&form))
    };
    let second = refresh(old.clone(), Some("patient/Patient.rs")).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(second.body["scope"], "patient/Patient.rs");
    assert_eq!(second.body["patient"], "p1");
    let newer = second.body["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(newer, old);
    // Widening is refused.
    let wider = refresh(newer.clone(), Some("user/*.cruds")).await;
    assert_eq!(wider.error(), "invalid_scope");
    // Reusing the rotated token is refused and revokes the family: the newer one dies too.
    let reuse = refresh(old, None).await;
    assert_eq!(reuse.error(), "invalid_grant");
    let after = refresh(newer, None).await;
    assert_eq!(after.error(), "invalid_grant");
    // Bound to the client.
    let other = server.launch_token(&launch, SCOPE).await;
    let stolen = server
        .token_with(
            server
                .http
                .post(server.url("/auth/token"))
                .basic_auth("app-secret", Some(SECRET))
                .form(&[
                    ("grant_type", "refresh_token"),
                    (
                        "refresh_token",
                        other.body["refresh_token"].as_str().unwrap(),
                    ),
                ]),
        )
        .await;
    assert_eq!(stolen.error(), "invalid_grant");
}

// REQ: SC-12 (and D-15: offline tokens live exactly as long as the launch)
#[tokio::test]
async fn clearing_or_expiring_the_launch_revokes_its_tokens() {
    let server = start().await;
    let poc = server.poc_token().await;
    let launch = server.set_context(&poc).await;
    let answer = server.launch_token(&launch, SCOPE).await;
    let patient = format!("/Patient/{}", answer.body["patient"].as_str().unwrap());
    let (status, _, _) = server.get(&patient, answer.access_token()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.clear_context(&poc, &launch).await, StatusCode::OK);
    let (status, headers, _) = server.get(&patient, answer.access_token()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.contains_key("www-authenticate"));
    let refresh = server
        .token(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                answer.body["refresh_token"].as_str().unwrap(),
            ),
            ("client_id", "app-public"),
        ])
        .await;
    assert_eq!(refresh.error(), "invalid_grant");

    // Expiry: the same, without any clear.
    let launch = server.launch(Some("dr-a"), "p3").await;
    let answer = server.launch_token(&launch, SCOPE).await;
    server.clock.advance(Duration::hours(12));
    let (status, _, _) = server.get("/Patient/p3", answer.access_token()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let refresh = server
        .token(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                answer.body["refresh_token"].as_str().unwrap(),
            ),
            ("client_id", "app-public"),
        ])
        .await;
    assert_eq!(refresh.error(), "invalid_grant");
}

// REQ: AS-06, SC-09, SC-10
#[tokio::test]
async fn poc_sets_a_context_with_its_clinicians_token_and_the_app_gets_it() {
    let server = start().await;
    let poc = server.poc_token().await;
    let launch = server.set_context(&poc).await;
    let answer = server.launch_token(&launch, SCOPE).await;
    let patient = answer.body["patient"].as_str().unwrap().to_string();
    let (status, _, body) = server
        .get(&format!("/Patient/{patient}"), answer.access_token())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["gender"], "male");
    // A public client may not use client_credentials; an app token cannot set contexts.
    let public = server
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", "app-public"),
        ])
        .await;
    assert_eq!(public.error(), "unauthorized_client");
}

// REQ: AS-09
#[tokio::test]
async fn introspection_reports_live_tokens_and_only_inactive_otherwise() {
    let server = start().await;
    let launch = server.launch(Some("dr-a"), "p1").await;
    let answer = server.launch_token(&launch, SCOPE).await;
    let introspect = |token: String, auth: bool| {
        let mut request = server
            .http
            .post(server.url("/auth/introspect"))
            .form(&[("token", token)]);
        if auth {
            request = request.basic_auth("app-secret", Some(SECRET));
        }
        server.token_with(request)
    };
    let live = introspect(answer.access_token().to_string(), true).await;
    assert_eq!(live.status, StatusCode::OK);
    assert_eq!(live.body["active"], true);
    assert_eq!(live.body["client_id"], "app-public");
    assert_eq!(live.body["scope"], SCOPE);
    assert_eq!(live.body["patient"], "p1");
    assert_eq!(live.body["sub"], "dr-a");
    assert_eq!(live.body["iss"], server.base);
    assert_eq!(
        live.body["fhirUser"],
        format!("{}/Practitioner/dr-a", server.base)
    );
    assert!(live.body["exp"].is_i64());
    let garbage = introspect("not-a-token".into(), true).await;
    assert_eq!(garbage.body, json!({"active": false}));
    let unauthenticated = introspect(answer.access_token().to_string(), false).await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);
    server.clock.advance(Duration::hours(2));
    let expired = introspect(answer.access_token().to_string(), true).await;
    assert_eq!(expired.body, json!({"active": false}));
}

// REQ: SEC-05, RS-02
#[tokio::test]
async fn forged_access_tokens_are_refused() {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let server = start().await;
    let launch = server.launch(Some("dr-a"), "p1").await;
    let answer = server.launch_token(&launch, SCOPE).await;
    let genuine = answer.access_token();
    let parts: Vec<&str> = genuine.split('.').collect();
    let claims = parts[1];
    let kid = jsonwebtoken::decode_header(genuine).unwrap().kid.unwrap();
    // alg: none, unsigned.
    let none = format!(
        "{}.{claims}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT", "kid": kid}).to_string())
    );
    // HS256 with the public JWKS as the secret (algorithm confusion).
    let (_, _, jwks) = server.get("/auth/jwks", "").await;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(kid.clone());
    let payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
    let hs256 = jsonwebtoken::encode(
        &header,
        &payload,
        &jsonwebtoken::EncodingKey::from_secret(jwks.to_string().as_bytes()),
    )
    .unwrap();
    // A tampered payload under the genuine signature.
    let mut widened = payload.clone();
    widened["scope"] = json!("user/*.cruds");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(widened.to_string()),
        parts[2]
    );
    for token in [none.as_str(), hs256.as_str(), tampered.as_str(), "garbage"] {
        let (status, headers, body) = server.get("/Patient/p1", token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token}");
        assert!(
            headers["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
        assert_eq!(body["resourceType"], "OperationOutcome");
    }
    let (status, _, _) = server.get("/Patient/p1", genuine).await;
    assert_eq!(status, StatusCode::OK);
}

// REQ: AS-02
#[tokio::test]
async fn rotated_keys_keep_old_tokens_valid_and_sign_new_ones() {
    let server = start().await;
    let launch = server.launch(Some("dr-a"), "p1").await;
    let before = server.launch_token(&launch, SCOPE).await;
    server
        .auth
        .rotate_keys(halo_sofa_server::auth::KeyUse::AccessToken)
        .await
        .unwrap();
    // The new key is published first and signs once its activation delay has passed.
    server.clock.advance(chrono::Duration::seconds(5 * 60 + 1));
    let after = server.launch_token(&launch, SCOPE).await;
    let kid = |t: &str| jsonwebtoken::decode_header(t).unwrap().kid.unwrap();
    assert_ne!(kid(before.access_token()), kid(after.access_token()));
    for token in [before.access_token(), after.access_token()] {
        let (status, _, _) = server.get("/Patient/p1", token).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (_, _, jwks) = server.get("/auth/jwks", "").await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 3);
}
