//! The hostile request matrix: one table of requests an attacker or a broken client sends to a
//! SoFA, over real HTTP on loopback, each with the exact refusal it must get. After every case the store holds the same resources and launches, and
//! after the whole table a good token still works: no refusal had a side effect beyond the one
//! the protocol asks for (a replayed code or a reused refresh token revokes its own family).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/auth.rs"]
mod auth_support;

use auth_support::*;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};

const SCOPE: &str = "launch openid fhirUser offline_access patient/*.cruds";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// One row: a request, the status it must get, and a word its answer must carry (an RFC 6749
/// error code, an OperationOutcome issue code, or a redirect's `error`).
struct Case {
    name: &'static str,
    request: RequestBuilder,
    status: StatusCode,
    says: &'static str,
}

fn jwt(header: &Value, claims: &Value, signature: &str) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    format!("{}.{}.{signature}", part(header), part(claims))
}

/// An access-token-shaped JWT signed by a key that is not the server's, under the server's kid.
fn forged_token(server: &AuthServerUnderTest, kid: &str, launch: &str) -> String {
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        STANDARD.encode(pair.to_pkcs8v1().unwrap().as_ref())
    );
    let key = jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(kid.to_string());
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "iss": server.base, "aud": server.base, "sub": "dr-a", "client_id": "app-public",
        "scope": SCOPE, "launch": launch, "exp": now + 300, "iat": now, "jti": "forged",
    });
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

async fn fingerprint(server: &AuthServerUnderTest) -> (u64, u64) {
    let mut tx = server.store.begin_read().await.unwrap();
    let resources = tx.count_resources().await.unwrap();
    let launches = tx.count_launches().await.unwrap();
    (resources, launches)
}

fn observation(subject: &str, focus: Option<&str>) -> String {
    let mut resource = json!({"resourceType": "Observation", "status": "final",
        "code": {"text": "weight"}, "subject": {"reference": subject}});
    if let Some(focus) = focus {
        resource["focus"] = json!([{"reference": focus}]);
    }
    resource.to_string()
}

// REQ: HARD-02, HARD-05, HARD-06, AS-03, AS-05, AS-06, AS-08, SEC-03, SEC-05, IDP-04, IDP-08
#[tokio::test]
async fn every_hostile_request_gets_its_exact_refusal_and_changes_nothing() {
    let server = start().await;
    let launch = server.launch(Some("dr-a"), "p1").await;
    let other_launch = server.launch(Some("dr-b"), "p2").await;
    let good = server.launch_token(&launch, SCOPE).await;
    let token = good.access_token().to_string();
    let kid = {
        let jwks: Value = server.get_json("/auth/jwks").await;
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["alg"] == "ES256")
            .unwrap()["kid"]
            .as_str()
            .unwrap()
            .to_string()
    };

    // The state some rows need: a code already exchanged, a refresh token already rotated.
    let (used_code, used_verifier) = server.code("app-public", &launch, SCOPE).await;
    assert_eq!(
        server
            .exchange("app-public", &used_code, &used_verifier)
            .await
            .status,
        StatusCode::OK
    );
    let rotated = server.launch_token(&launch, SCOPE).await;
    let old_refresh = rotated.body["refresh_token"].as_str().unwrap().to_string();
    let rotation = server
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &old_refresh),
            ("client_id", "app-public"),
        ])
        .await;
    assert_eq!(rotation.status, StatusCode::OK);
    let (fresh_code, _) = server.code("app-public", &launch, SCOPE).await;
    let (redirect_code, redirect_verifier) = server.code("app-public", &launch, SCOPE).await;
    let v = verifier();
    let authorize = |name: &str, value: &str| {
        let mut params = server.authorize_params("app-public", &launch, SCOPE, &v);
        params.retain(|(k, _)| k != name);
        if !value.is_empty() {
            params.push((name.to_string(), value.to_string()));
        }
        server
            .http
            .get(server.url("/auth/authorize"))
            .query(&params)
    };
    let fhir = |method: Method, path: &str| {
        server
            .http
            .request(method, server.url(path))
            .bearer_auth(&token)
    };
    let write = |body: String, content_type: &str| {
        fhir(Method::POST, "/Observation")
            .header("content-type", content_type)
            .body(body)
    };
    let token_form =
        |form: Vec<(&str, String)>| server.http.post(server.url("/auth/token")).form(&form);
    let now = chrono::Utc::now().timestamp();
    let deep = format!(
        r#"{{"resourceType":"Observation","extension":{}1{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );

    let cases = vec![
        // Bearer tokens.
        Case { name: "no token", request: server.http.get(server.url("/Patient/p1")),
            status: StatusCode::UNAUTHORIZED, says: "login" },
        Case { name: "alg none", request: server.http.get(server.url("/Patient/p1")).bearer_auth(
                jwt(&json!({"alg": "none", "typ": "JWT"}), &json!({"iss": server.base, "aud": server.base,
                    "client_id": "app-public", "scope": SCOPE, "launch": launch, "exp": now + 300}), "")),
            status: StatusCode::UNAUTHORIZED, says: "login" },
        Case { name: "a key not the server's, under its kid",
            request: server.http.get(server.url("/Patient/p1")).bearer_auth(forged_token(&server, &kid, &launch)),
            status: StatusCode::UNAUTHORIZED, says: "login" },
        Case { name: "a Basic header on the FHIR API",
            request: server.http.get(server.url("/Patient/p1")).basic_auth("app-secret", Some(SECRET)),
            status: StatusCode::UNAUTHORIZED, says: "login" },
        // Reach.
        Case { name: "another launch's patient", request: fhir(Method::GET, "/Patient/p2"),
            status: StatusCode::NOT_FOUND, says: "not-found" },
        Case { name: "compartment escape through focus (HARD-06)",
            request: write(observation("Patient/somebody-else", Some("Patient/p1")), "application/fhir+json"),
            status: StatusCode::FORBIDDEN, says: "forbidden" },
        Case { name: "an unsupported type", request: fhir(Method::GET, "/Claim"),
            status: StatusCode::NOT_FOUND, says: "is not supported" },
        Case { name: "$set-context with an app token", request: fhir(Method::POST, "/$set-context")
                .header("content-type", "application/fhir+json")
                .body(json!({"resourceType": "Parameters"}).to_string()),
            status: StatusCode::FORBIDDEN, says: "forbidden" },
        // Numbers and parameters (HARD-05).
        Case { name: "_offset above i64", request: fhir(Method::GET, "/Observation?_offset=9223372036854775808"),
            status: StatusCode::BAD_REQUEST, says: "value" },
        Case { name: "_count above u64", request: fhir(Method::GET, "/Observation?_count=99999999999999999999"),
            status: StatusCode::BAD_REQUEST, says: "value" },
        Case { name: "a search parameter R4 does not define there", request: fhir(Method::GET, "/Practitioner?patient=p1"),
            status: StatusCode::BAD_REQUEST, says: "not-supported" },
        // Bodies.
        Case { name: "XXE", request: write(
                r#"<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><Observation xmlns="http://hl7.org/fhir"/>"#.into(),
                "application/fhir+xml"),
            status: StatusCode::BAD_REQUEST, says: "structure" },
        Case { name: "200-deep JSON", request: write(deep, "application/fhir+json"),
            status: StatusCode::BAD_REQUEST, says: "too-costly" },
        Case { name: "10 MB body", request: write(format!(r#"{{"resourceType":"Observation","x":"{}"}}"#, "x".repeat(10 << 20)), "application/fhir+json"),
            status: StatusCode::PAYLOAD_TOO_LARGE, says: "too-costly" },
        Case { name: "text/plain body", request: write(observation("Patient/p1", None), "text/plain"),
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE, says: "not-supported" },
        Case { name: "a body of another type than the URL", request: fhir(Method::POST, "/Condition")
                .header("content-type", "application/fhir+json").body(observation("Patient/p1", None)),
            status: StatusCode::BAD_REQUEST, says: "invalid" },
        Case { name: "a date with a multi-byte zone (HARD-02)", request: write(
                json!({"resourceType": "Observation", "status": "final", "code": {"text": "w"},
                    "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2024-01-01T10:00:00+1é00"}).to_string(),
                "application/fhir+json"),
            status: StatusCode::BAD_REQUEST, says: "value" },
        // Authorize.
        Case { name: "PKCE downgrade to plain", request: authorize("code_challenge_method", "plain"),
            status: StatusCode::FOUND, says: "error=invalid_request" },
        Case { name: "no PKCE", request: authorize("code_challenge", ""),
            status: StatusCode::FOUND, says: "error=invalid_request" },
        Case { name: "a redirect URI one character off", request: authorize("redirect_uri", "https://app.example.org/callbacK"),
            status: StatusCode::BAD_REQUEST, says: "redirect" },
        Case { name: "an audience of another server", request: authorize("aud", "https://other.example.org/fhir"),
            status: StatusCode::FOUND, says: "error=invalid_request" },
        Case { name: "another clinician's launch (IDP-04)", request: authorize("launch", &other_launch),
            status: StatusCode::FORBIDDEN, says: "" },
        // Token.
        Case { name: "code replay", request: token_form(vec![("grant_type", "authorization_code".into()),
                ("code", used_code.clone()), ("redirect_uri", REDIRECT.into()),
                ("code_verifier", used_verifier.clone()), ("client_id", "app-public".into())]),
            status: StatusCode::BAD_REQUEST, says: "invalid_grant" },
        Case { name: "a wrong PKCE verifier", request: token_form(vec![("grant_type", "authorization_code".into()),
                ("code", fresh_code.clone()), ("redirect_uri", REDIRECT.into()),
                ("code_verifier", verifier()), ("client_id", "app-public".into())]),
            status: StatusCode::BAD_REQUEST, says: "invalid_grant" },
        Case { name: "a redirect mismatch at the token endpoint", request: token_form(vec![("grant_type", "authorization_code".into()),
                ("code", redirect_code.clone()), ("redirect_uri", "https://app.example.org/other".into()),
                ("code_verifier", redirect_verifier.clone()), ("client_id", "app-public".into())]),
            status: StatusCode::BAD_REQUEST, says: "invalid_grant" },
        Case { name: "refresh token reuse", request: token_form(vec![("grant_type", "refresh_token".into()),
                ("refresh_token", old_refresh.clone()), ("client_id", "app-public".into())]),
            status: StatusCode::BAD_REQUEST, says: "invalid_grant" },
        Case { name: "a wrong client secret", request: server.http.post(server.url("/auth/token"))
                .basic_auth("app-secret", Some("wrong")).form(&[("grant_type", "client_credentials")]),
            status: StatusCode::UNAUTHORIZED, says: "invalid_client" },
        Case { name: "a client assertion with alg none", request: token_form(vec![("grant_type", "client_credentials".into()),
                ("client_assertion_type", JWT_BEARER.into()),
                ("client_assertion", jwt(&json!({"alg": "none"}), &json!({"iss": "app-jwt", "sub": "app-jwt",
                    "aud": server.url("/auth/token"), "exp": now + 60, "jti": "none-1"}), ""))]),
            status: StatusCode::UNAUTHORIZED, says: "invalid_client" },
        Case { name: "a client assertion for another audience", request: token_form(vec![("grant_type", "client_credentials".into()),
                ("client_assertion_type", JWT_BEARER.into()),
                ("client_assertion", client_key().0.sign(&json!({"iss": "app-jwt", "sub": "app-jwt",
                    "aud": "https://other.example.org/token", "exp": now + 60, "iat": now, "jti": "aud-1"})).unwrap())]),
            status: StatusCode::UNAUTHORIZED, says: "invalid_client" },
        Case { name: "an unknown grant type", request: token_form(vec![("grant_type", "password".into()),
                ("client_id", "app-public".into())]),
            status: StatusCode::BAD_REQUEST, says: "unsupported_grant_type" },
        Case { name: "a JSON token request", request: server.http.post(server.url("/auth/token"))
                .json(&json!({"grant_type": "client_credentials"})),
            status: StatusCode::BAD_REQUEST, says: "invalid_request" },
        Case { name: "introspection by a public client", request: server.http.post(server.url("/auth/introspect"))
                .form(&[("token", token.as_str()), ("client_id", "app-public")]),
            status: StatusCode::UNAUTHORIZED, says: "invalid_client" },
    ];

    let count = cases.len();
    let before = fingerprint(&server).await;
    for case in cases {
        let response = case.request.send().await.unwrap();
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = response.text().await.unwrap();
        assert_eq!(status, case.status, "{}: {body}", case.name);
        assert!(
            body.contains(case.says) || location.contains(case.says),
            "{}: {:?} not in {body} / {location}",
            case.name,
            case.says
        );
        if status == StatusCode::FOUND {
            assert!(!location.contains("code="), "{}: {location}", case.name);
        }
        assert_eq!(fingerprint(&server).await, before, "{}", case.name);
    }
    assert!(count >= 30, "{count} cases");
    // No refusal cost the good grant anything.
    let (status, _, _) = server.get("/Patient/p1", &token).await;
    assert_eq!(status, StatusCode::OK);
}
