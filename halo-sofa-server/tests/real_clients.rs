//! Requests exactly as real third-party clients send them, each once refused or mis-answered
//! (client-js 2.6.3, openid-client 6.9, a browser SMART app, a client trusting the
//! CapabilityStatement), over real HTTP on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/auth.rs"]
mod auth_support;

use auth_support::*;
use chrono::Utc;
use reqwest::StatusCode;
use serde_json::{Value, json};

const SCOPE: &str = "launch openid fhirUser offline_access patient/*.rs";

// REQ: AS-08
/// client-js `client.refresh()` for a public client posts only the grant and the refresh token
/// (RFC 6749 §6 lets it): the token already says whose it is.
#[tokio::test]
async fn a_public_client_refreshes_without_naming_itself() {
    let server = start().await;
    let launch = server.launch(Some("dr-a"), "p1").await;
    let first = server.launch_token(&launch, SCOPE).await;
    let refresh = first.body["refresh_token"].as_str().unwrap();
    let answer = server
        .token(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(answer.body["access_token"].is_string());

    // A confidential client's refresh token still needs the client's credentials.
    let (code, verifier) = server.code("app-secret", &launch, SCOPE).await;
    let confidential = server
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
            ("client_id", "app-secret"),
            ("client_secret", SECRET),
        ])
        .await;
    assert_eq!(confidential.status, StatusCode::OK, "{}", confidential.body);
    let refresh = confidential.body["refresh_token"].as_str().unwrap();
    let anonymous = server
        .token(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.error(), "invalid_client");
    // An unknown refresh token without a client is the client's failure, not a lookup oracle.
    let unknown = server
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "not-a-token"),
        ])
        .await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
}

fn assertion_with(aud: Value, jti: &str) -> String {
    let now = Utc::now().timestamp();
    client_key()
        .0
        .sign(&json!({
            "iss": "app-jwt", "sub": "app-jwt", "aud": aud,
            "exp": now + 240, "iat": now, "jti": jti,
        }))
        .unwrap()
}

async fn assertion_grant(server: &AuthServerUnderTest, assertion: &str) -> TokenAnswer {
    let patient = format!("p-{}", uuid::Uuid::new_v4().simple());
    let launch = server.launch(Some("dr-a"), &patient).await;
    let (code, verifier) = server.code("app-jwt", &launch, SCOPE).await;
    server
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
        ])
        .await
}

// REQ: AS-06
/// openid-client signs client assertions with `aud` = the issuer; RFC 7523 names the token URL.
/// Either is accepted as the single audience; several audiences are not. A refused assertion
/// gets no `Basic` challenge: the client did not try Basic.
#[tokio::test]
async fn a_client_assertion_may_name_the_issuer_as_its_one_audience() {
    let server = start().await;
    for (aud, accepted) in [
        (json!(server.base), true),
        (json!(server.url("/auth/token")), true),
        (json!([server.base]), true),
        (json!([server.base, "https://other.example.org"]), false),
        (json!("https://other.example.org"), false),
    ] {
        let jti = uuid::Uuid::new_v4().to_string();
        let answer = assertion_grant(&server, &assertion_with(aud.clone(), &jti)).await;
        if accepted {
            assert_eq!(answer.status, StatusCode::OK, "{aud}: {}", answer.body);
        } else {
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{aud}");
            assert_eq!(answer.error(), "invalid_client");
            assert!(
                answer.body["error_description"]
                    .as_str()
                    .unwrap()
                    .contains("aud"),
                "{}",
                answer.body
            );
            assert!(answer.headers.get("www-authenticate").is_none(), "{aud}");
        }
    }
    // A client that did try Basic is challenged (RFC 6749 §5.2).
    let basic = server
        .token_with(
            server
                .http
                .post(server.url("/auth/token"))
                .basic_auth("app-secret", Some("wrong"))
                .form(&[("grant_type", "client_credentials")]),
        )
        .await;
    assert_eq!(basic.status, StatusCode::UNAUTHORIZED);
    assert!(
        basic.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
}

async fn preflight(server: &AuthServerUnderTest, path: &str, origin: &str) -> reqwest::Response {
    server
        .http
        .request(reqwest::Method::OPTIONS, server.url(path))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "authorization")
        .send()
        .await
        .unwrap()
}

// REQ: SEC-06
/// A browser SMART app on a registered origin reads FHIR data (preflight, then the read with
/// the headers it must see); another origin gets nothing; the token endpoint no longer answers
/// every origin (`*`).
#[tokio::test]
async fn the_fhir_api_answers_cors_for_registered_origins_only() {
    let server = start().await;
    let launch = server.launch(Some("dr-a"), "p1").await;
    let token = server.launch_token(&launch, SCOPE).await;

    let allowed = preflight(&server, "/Observation?patient=p1", APP_ORIGIN).await;
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(allowed.headers()["access-control-allow-origin"], APP_ORIGIN);
    let headers = allowed.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(headers.contains("authorization"), "{headers}");
    let read = server
        .http
        .get(server.url("/Patient/p1"))
        .header("Origin", APP_ORIGIN)
        .bearer_auth(token.access_token())
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(read.headers()["access-control-allow-origin"], APP_ORIGIN);
    assert!(
        read.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("etag")
    );

    let foreign = preflight(&server, "/Observation", "https://evil.example.com").await;
    assert!(
        foreign
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    for (origin, expected) in [
        (APP_ORIGIN, Some(APP_ORIGIN)),
        ("https://evil.example.com", None),
    ] {
        let answer = server
            .http
            .post(server.url("/auth/token"))
            .header("Origin", origin)
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(
            answer
                .headers()
                .get("access-control-allow-origin")
                .map(|v| v.to_str().unwrap()),
            expected,
            "{origin}"
        );
    }
}

fn search_params(capability: &Value, kind: &str) -> Vec<(String, String)> {
    let resources = capability["rest"][0]["resource"].as_array().unwrap();
    let entry = resources.iter().find(|r| r["type"] == kind).unwrap();
    entry["searchParam"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["definition"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

// REQ: RS-01, RS-04
/// The CapabilityStatement lists exactly the search parameters the server implements, each with
/// its R4 definition; a parameter R4 does not define for the type is refused, not answered with
/// a silently empty Bundle.
#[tokio::test]
async fn the_capability_statement_lists_only_the_search_parameters_r4_defines() {
    let server = start().await;
    let capability: Value = server.get_json("/metadata").await;
    let id = (
        "_id".to_string(),
        "http://hl7.org/fhir/SearchParameter/Resource-id".to_string(),
    );
    for kind in ["Patient", "Practitioner"] {
        assert_eq!(search_params(&capability, kind), vec![id.clone()], "{kind}");
    }
    assert_eq!(
        search_params(&capability, "Observation"),
        [
            id.clone(),
            (
                "patient".into(),
                "http://hl7.org/fhir/SearchParameter/clinical-patient".into()
            ),
            (
                "subject".into(),
                "http://hl7.org/fhir/SearchParameter/Observation-subject".into()
            ),
        ]
    );
    assert_eq!(
        search_params(&capability, "AllergyIntolerance"),
        [
            id,
            (
                "patient".into(),
                "http://hl7.org/fhir/SearchParameter/clinical-patient".into()
            ),
        ]
    );

    let launch = server.launch(Some("dr-a"), "p1").await;
    let token = server
        .launch_token(&launch, "launch openid fhirUser user/*.rs")
        .await;
    let token = token.access_token();
    let (status, _, bundle) = server.get("/Observation?patient=p1", token).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["obs-p1"]);
    for path in [
        "/Practitioner?patient=p1",
        "/Patient?subject=p1",
        "/Observation?code=weight",
    ] {
        let (status, _, outcome) = server.get(path, token).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(outcome["issue"][0]["code"], "not-supported", "{path}");
    }
}
