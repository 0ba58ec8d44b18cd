//! User authentication (the development login page) and trusting an external IdP: JWTs
//! verified against a JWKS, and RFC 7662 introspection, both pointed at a running server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/auth.rs"]
mod auth_support;

use std::time::Duration;

use auth_support::*;
use halo_sofa_server::auth::{ExternalJwtTokens, IntrospectionTokens, TokenError, TokenValidator};
use reqwest::StatusCode;

const SCOPE: &str = "launch openid fhirUser patient/*.rs";

// REQ: AS-04, SC-09
#[tokio::test]
async fn the_development_login_page_signs_users_in() {
    let server = start_with(Options {
        dev_login: true,
        ..Options::default()
    })
    .await;
    let launch = server.launch(Some("dr-a"), "p1").await;
    let verifier = verifier();
    let params = server.authorize_params("app-public", &launch, SCOPE, &verifier);
    // No credentials: the login form, carrying the request.
    let html = server.authorize_page(&params).await;
    assert!(html.contains("name=\"password\"") && html.contains("name=\"code_challenge\""));
    let post = |user: &str, password: &str| {
        let params = params.clone();
        let (user, password) = (user.to_string(), password.to_string());
        let server = &server;
        async move {
            let (csrf, cookie) = server.login_form(&params).await;
            let mut form = params;
            form.push(("username".into(), user));
            form.push(("password".into(), password));
            form.push(("csrf".into(), csrf));
            server
                .http
                .post(server.url("/auth/authorize"))
                .header("cookie", cookie)
                .form(&form)
                .send()
                .await
        }
    };
    // A wrong password: the form again, no code.
    let wrong = post("dr-a", "pw-dr-b").await.unwrap();
    assert_eq!(wrong.status(), StatusCode::OK);
    assert!(wrong.text().await.unwrap().contains("wrong password"));
    // dr-b signs in correctly but the launch is dr-a's: an error page, no redirect.
    let other = post("dr-b", "pw-dr-b").await.unwrap();
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
    assert!(other.headers().get("location").is_none());
    // dr-a gets a code, which exchanges.
    let ok = post("dr-a", "pw-dr-a").await.unwrap();
    assert_eq!(ok.status(), StatusCode::FOUND);
    let location = url::Url::parse(ok.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let answer = server.exchange("app-public", &code, &verifier).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}

// REQ: AS-10, SEC-05
#[tokio::test]
async fn external_jwt_tokens_are_verified_against_the_idp_jwks() {
    // The running server plays the jurisdiction's IdP: its JWKS and its tokens.
    let idp = start().await;
    let launch = idp.launch(Some("dr-a"), "p1").await;
    let answer = idp.launch_token(&launch, SCOPE).await;
    let validator = ExternalJwtTokens::new(
        idp.base.clone(),
        idp.base.clone(),
        idp.url("/auth/jwks"),
        vec![jsonwebtoken::Algorithm::ES256],
        Duration::from_secs(5),
        true,
    )
    .unwrap();
    let caller = validator.validate(answer.access_token()).await.unwrap();
    assert_eq!(caller.client_id, "app-public");
    assert_eq!(caller.user.as_deref(), Some("dr-a"));
    assert_eq!(caller.launch_id.as_deref(), Some(launch.as_str()));
    assert!(caller.scopes.has_launch());
    // Another audience, a forged token, and a configuration without https are refused.
    let elsewhere = ExternalJwtTokens::new(
        idp.base.clone(),
        "https://other.example.org/fhir",
        idp.url("/auth/jwks"),
        vec![jsonwebtoken::Algorithm::ES256],
        Duration::from_secs(5),
        true,
    )
    .unwrap();
    assert_eq!(
        elsewhere.validate(answer.access_token()).await,
        Err(TokenError::Invalid)
    );
    assert_eq!(
        validator.validate("e30.e30.").await,
        Err(TokenError::Invalid)
    );
    // REQ: SEC-04
    assert!(
        ExternalJwtTokens::new(
            idp.base.clone(),
            idp.base.clone(),
            idp.url("/auth/jwks"),
            vec![jsonwebtoken::Algorithm::ES256],
            Duration::from_secs(5),
            false,
        )
        .is_err()
    );
}

// REQ: AS-10, AS-09
#[tokio::test]
async fn opaque_tokens_are_checked_by_introspection() {
    let idp = start().await;
    let launch = idp.launch(Some("dr-a"), "p1").await;
    let answer = idp.launch_token(&launch, SCOPE).await;
    let validator = IntrospectionTokens::new(
        idp.url("/auth/introspect"),
        "app-secret",
        SECRET,
        Duration::from_secs(5),
        true,
    )
    .unwrap();
    assert!(!format!("{validator:?}").contains(SECRET));
    let caller = validator.validate(answer.access_token()).await.unwrap();
    assert_eq!(caller.client_id, "app-public");
    assert_eq!(caller.user.as_deref(), Some("dr-a"));
    assert_eq!(
        validator.validate("not-a-token").await,
        Err(TokenError::Invalid)
    );
    let unauthorised = IntrospectionTokens::new(
        idp.url("/auth/introspect"),
        "app-secret",
        "wrong-secret",
        Duration::from_secs(5),
        true,
    )
    .unwrap();
    assert!(matches!(
        unauthorised.validate(answer.access_token()).await,
        Err(TokenError::Unavailable(_))
    ));
}

// REQ: HARD-03
/// An operator-configured IdP is called through the outbound guard like every other outbound
/// target: outside development mode a JWKS or introspection URL naming an internal address is
/// refused when the validator is built, before anything is reached (a name that resolves to
/// one is refused by the guard's resolver, tested in `outbound`).
#[tokio::test]
async fn idp_validators_never_reach_internal_addresses() {
    for url in [
        "https://10.255.255.1/jwks",
        "https://169.254.169.254/latest/meta-data",
        "https://[fd00::dead]/jwks",
        "https://127.0.0.1:9/jwks",
    ] {
        let jwt = ExternalJwtTokens::new(
            "https://idp.example.org",
            "https://sofa.example.org/fhir",
            url,
            vec![jsonwebtoken::Algorithm::ES256],
            Duration::from_secs(1),
            false,
        );
        assert!(jwt.is_err(), "{url}");
        let introspection =
            IntrospectionTokens::new(url, "sofa", "secret", Duration::from_secs(1), false);
        assert!(introspection.is_err(), "{url}");
    }
}
