//! A launch belongs to the clinician the PoC signed in (D-18): a token that names no user
//! cannot set one (unless the SoFA runs in its userless mode), only the owner may redeem it at
//! the app's authorization, and every token carries the signed-in user. Real HTTP on loopback,
//! the development login page as the IdP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/auth.rs"]
mod auth_support;

use auth_support::*;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::Value;

const SCOPE: &str = "launch openid fhirUser patient/*.rs";

fn dev_login(userless: bool) -> Options {
    Options {
        dev_login: true,
        userless,
        ..Options::default()
    }
}

/// The claims of a JWT, unverified (the server under test signed it).
fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn code_of(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .find(|(k, _)| k == "code")
        .unwrap_or_else(|| panic!("no code: {pairs:?}"))
        .1
        .clone()
}

async fn introspect(server: &AuthServerUnderTest, token: &str) -> Value {
    let answer = server
        .token_with(
            server
                .http
                .post(server.url("/auth/introspect"))
                .basic_auth("app-secret", Some(SECRET))
                .form(&[("token", token)]),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body
}

// REQ: IDP-02
#[tokio::test]
async fn a_token_that_names_no_user_cannot_set_a_context() {
    let server = start_with(dev_login(false)).await;
    let service = server.poc_service_token().await;
    let (status, outcome) = server.try_set_context(&service).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{outcome}");
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert_eq!(outcome["issue"][0]["code"], "security");
    // Nothing was stored for it.
    let mut tx = server.store.begin().await.unwrap();
    assert_eq!(tx.count_launches().await.unwrap(), 0);
    assert_eq!(tx.count_resources().await.unwrap(), 0);
}

// REQ: IDP-02, IDP-04
#[tokio::test]
async fn in_userless_mode_the_launch_goes_to_whoever_signs_in_as_themselves() {
    let server = start_with(dev_login(true)).await;
    let service = server.poc_service_token().await;
    let (status, output) = server.try_set_context(&service).await;
    assert_eq!(status, StatusCode::OK, "{output}");
    // A launch without an owner whose `fhirUser` parameter names dr-a's Practitioner: dr-b
    // may redeem it in this mode, but never as dr-a.
    let launch = server.launch(None, "p1").await;
    let verifier = verifier();
    let params = server.authorize_params("app-public", &launch, SCOPE, &verifier);
    let pairs = server
        .authorize_as(&params, Some(("dr-b", "pw-dr-b")))
        .await
        .unwrap();
    let answer = server
        .exchange("app-public", &code_of(&pairs), &verifier)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let id_token = claims(answer.body["id_token"].as_str().unwrap());
    assert_eq!(id_token["sub"], "dr-b");
    assert!(id_token.get("fhirUser").is_none(), "{id_token}");
    let access = claims(answer.access_token());
    assert_eq!(access["sub"], "dr-b");
    assert!(access.get("fhirUser").is_none(), "{access}");
}

// REQ: IDP-04 (D-18)
#[tokio::test]
async fn another_clinician_cannot_redeem_a_launch() {
    let server = start_with(dev_login(false)).await;
    // The PoC signs dr-a in and sets the context with dr-a's token.
    let poc = server.poc_user_token(Some(("dr-a", "pw-dr-a"))).await;
    assert_eq!(claims(&poc)["sub"], "dr-a");
    let launch = server.set_context(&poc).await;

    // dr-b, signed in correctly at the same browser, is shown an error page: no redirect to
    // the app, no code.
    let verifier = verifier();
    let params = server.authorize_params("app-public", &launch, SCOPE, &verifier);
    let (status, page) = server
        .authorize_as(&params, Some(("dr-b", "pw-dr-b")))
        .await
        .unwrap_err();
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("another clinician"), "{page}");
    assert!(!page.contains("code="));

    // dr-a gets a code; the tokens and the introspection answer carry dr-a and dr-a's
    // fhirUser.
    let pairs = server
        .authorize_as(&params, Some(("dr-a", "pw-dr-a")))
        .await
        .unwrap();
    let answer = server
        .exchange("app-public", &code_of(&pairs), &verifier)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let practitioner = server.url("/Practitioner/dr-a");
    let id_token = claims(answer.body["id_token"].as_str().unwrap());
    assert_eq!(id_token["sub"], "dr-a");
    assert_eq!(id_token["fhirUser"], practitioner.as_str());
    let access = claims(answer.access_token());
    assert_eq!(access["sub"], "dr-a");
    assert_eq!(access["fhirUser"], practitioner.as_str());
    let introspection = introspect(&server, answer.access_token()).await;
    assert_eq!(introspection["active"], true);
    assert_eq!(introspection["sub"], "dr-a");
    assert_eq!(introspection["username"], "dr-a");
    assert_eq!(introspection["fhirUser"], practitioner.as_str());
    let (status, _, _) = server
        .get(
            &format!("/Patient/{}", answer.body["patient"].as_str().unwrap()),
            answer.access_token(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

// REQ: IDP-04
#[tokio::test]
async fn a_launch_set_in_userless_mode_is_nobodys_once_the_mode_is_off() {
    let server = start_with(dev_login(false)).await;
    let launch = server.launch(None, "p1").await;
    let verifier = verifier();
    let params = server.authorize_params("app-public", &launch, SCOPE, &verifier);
    let (status, _) = server
        .authorize_as(&params, Some(("dr-a", "pw-dr-a")))
        .await
        .unwrap_err();
    assert_eq!(status, StatusCode::FORBIDDEN);
}
