//! The development login over real HTTP (REQ IDP-07) and who may introspect (REQ IDP-08).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/auth.rs"]
mod auth_support;

use auth_support::*;
use reqwest::StatusCode;

const SCOPE: &str = "launch openid fhirUser patient/*.rs";

async fn dev_login() -> AuthServerUnderTest {
    start_with(Options {
        dev_login: true,
        ..Options::default()
    })
    .await
}

// REQ: IDP-07
#[tokio::test]
async fn credentials_in_a_link_or_without_the_forms_token_sign_nobody_in() {
    let server = dev_login().await;
    let launch = server.launch(Some("dr-a"), "p1").await;
    let verifier = verifier();
    let mut params = server.authorize_params("app-public", &launch, SCOPE, &verifier);
    params.push(("username".into(), "dr-a".into()));
    params.push(("password".into(), "pw-dr-a".into()));
    // GET with the right credentials: the form, no code.
    let got = server.authorize_page(&params).await;
    assert!(got.contains("credentials in a link"));
    // POST without the form's token (a cross-site form): the form, no code.
    let posted = server
        .http
        .post(server.url("/auth/authorize"))
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), StatusCode::OK);
    // The form's token without its cookie, or the cookie of another form: refused too.
    let (csrf, cookie) = server.login_form(&params[..params.len() - 2]).await;
    let (_, other_cookie) = server.login_form(&params[..params.len() - 2]).await;
    let mut form = params.clone();
    form.push(("csrf".into(), csrf));
    for cookie in [None, Some(other_cookie)] {
        let mut request = server.http.post(server.url("/auth/authorize")).form(&form);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        assert!(answer.text().await.unwrap().contains("expired"));
    }
    // With both: a code.
    let signed_in = server
        .http
        .post(server.url("/auth/authorize"))
        .header("cookie", cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::FOUND);
    assert!(
        signed_in.headers()["location"]
            .to_str()
            .unwrap()
            .contains("code=")
    );
}

// REQ: IDP-07
#[tokio::test]
async fn repeated_failures_lock_the_user_name() {
    let server = dev_login().await;
    let launch = server.launch(Some("dr-a"), "p1").await;
    let verifier = verifier();
    let params = server.authorize_params("app-public", &launch, SCOPE, &verifier);
    for _ in 0..5 {
        let (status, page) = server
            .authorize_as(&params, Some(("dr-a", "guess")))
            .await
            .unwrap_err();
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("wrong password"));
    }
    let (status, page) = server
        .authorize_as(&params, Some(("dr-a", "pw-dr-a")))
        .await
        .unwrap_err();
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Too many"), "{page}");
    // Another user is not locked.
    let launch_b = server.launch(Some("dr-b"), "p2").await;
    let params_b = server.authorize_params("app-public", &launch_b, SCOPE, &verifier);
    assert!(
        server
            .authorize_as(&params_b, Some(("dr-b", "pw-dr-b")))
            .await
            .is_ok()
    );
}

// REQ: IDP-08, AS-09
#[tokio::test]
async fn introspection_is_for_confidential_clients_only() {
    let server = start().await;
    let launch = server.launch(Some("dr-a"), "p1").await;
    let answer = server.launch_token(&launch, SCOPE).await;
    // A public client names itself: 401, nothing about the token.
    let public = server
        .token_with(server.http.post(server.url("/auth/introspect")).form(&[
            ("token", answer.access_token()),
            ("client_id", "app-public"),
        ]))
        .await;
    assert!(public.body.get("sub").is_none(), "{}", public.body);
    let public = public.status;
    assert_eq!(public, StatusCode::UNAUTHORIZED);
    // The PoC, a confidential client, learns whose it is.
    let poc = server
        .token_with(
            server
                .http
                .post(server.url("/auth/introspect"))
                .basic_auth("poc", Some(POC_SECRET))
                .form(&[("token", answer.access_token())]),
        )
        .await;
    assert_eq!(poc.status, StatusCode::OK);
    assert_eq!(poc.body["active"], true);
    assert_eq!(poc.body["sub"], "dr-a");
}

/// The sign-in form echoes the authorize request's parameters into hidden fields: hostile ones
/// come out escaped over real HTTP, and a browser posting the form back sends the originals.
#[tokio::test]
async fn hostile_authorize_parameters_are_escaped_in_the_sign_in_form() {
    let server = dev_login().await;
    let launch = server.launch(Some("dr-a"), "p1").await;
    let verifier = verifier();
    let hostile = "\"><script>alert('x')</script>&amp;";
    let mut params = server.authorize_params("app-public", &launch, SCOPE, &verifier);
    for (name, value) in params.iter_mut() {
        if name == "state" {
            *value = hostile.to_string();
        }
    }
    params.push(("x<b>\"".into(), "1".into()));
    let html = server.authorize_page(&params).await;
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("<b>"), "{html}");
    assert!(
        html.contains(
            "name=\"state\" value=\"&quot;&gt;&lt;script&gt;alert('x')&lt;/script&gt;&amp;amp;\""
        ),
        "{html}"
    );
    assert!(
        html.contains("name=\"x&lt;b&gt;&quot;\" value=\"1\""),
        "{html}"
    );
    // The original values, as a browser decodes and posts them: the user is signed in and the
    // app gets its `state` back unchanged.
    let pairs = server
        .authorize_as(&params, Some(("dr-a", "pw-dr-a")))
        .await
        .unwrap();
    let state = &pairs.iter().find(|(k, _)| k == "state").unwrap().1;
    assert_eq!(state, hostile);
}
