//! The whole app side over real HTTP against the in-process SMART server in `support`.

// Helpers outside #[test] functions unwrap fixtures too; a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use halo_smart_client::BrowserBinding;
use halo_smart_client::keys::SigningKey;
use halo_smart_client::{ClientAuth, ClientOptions, LaunchRequest, Redirect, Secret};
use serde_json::json;
use support::{Behaviour, IdTokenMode, Mock, RefreshIdToken, Registered, browse};

const SCOPE: &str = "openid fhirUser patient/Patient.rs patient/Observation.rs offline_access";

async fn launch(
    mock: &Mock,
    client: &halo_smart_client::SmartClient,
    patient: &str,
) -> halo_smart_client::Result<halo_smart_client::SessionHandle> {
    let start = client
        .begin_launch_from_query(&mock.launch_query(patient))
        .await?;
    client
        .complete_launch(&browse(&start.redirect).await, Some(start.binding.value()))
        .await
}

// REQ: APP-01
// REQ: APP-03
// REQ: APP-04
// REQ: APP-07
// REQ: APP-08
// REQ: APP-09
// REQ: APP-11
#[tokio::test]
async fn public_ehr_launch_end_to_end() {
    let mock = Mock::start(Registered::Public, Behaviour::default()).await;
    let client = mock.client(ClientAuth::Public, SCOPE);
    let query = mock.launch_query("p1");
    let request = LaunchRequest::from_query(&query).unwrap();
    assert_eq!(request.iss, mock.base);
    let start = client.begin_launch(&request).await.unwrap();
    let Redirect::Get(url) = start.redirect else {
        panic!("GET expected by default");
    };
    let aud = url
        .query_pairs()
        .find(|(k, _)| k == "aud")
        .unwrap()
        .1
        .into_owned();
    assert_eq!(aud, mock.base, "aud is iss byte for byte");
    let session = client
        .complete_launch(
            &browse(&Redirect::Get(url)).await,
            Some(start.binding.value()),
        )
        .await
        .unwrap();
    let snap = session.snapshot().unwrap();
    assert_eq!(snap.patient_id(), Some("p1"));
    assert_eq!(snap.context.need_patient_banner, Some(true));
    assert!(snap.granted_scopes().has_openid());
    assert!(snap.not_granted().is_empty());
    let user = snap.fhir_user().expect("verified id_token with fhirUser");
    assert_eq!(
        (user.resource_type.as_str(), user.id.as_str()),
        ("Practitioner", "123")
    );

    let fhir = session.fhir();
    let patient = fhir.context_patient().await.unwrap();
    assert_eq!(patient["name"][0]["family"], "Family-p1");
    let all = fhir
        .search_all("Observation", &[("patient", "p1")], 10)
        .await
        .unwrap();
    assert_eq!(all.len(), 3, "two pages followed");
    let created = fhir
        .create(&json!({"resourceType": "Observation", "status": "final", "subject": {"reference": "Patient/p1"}}))
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let mut changed = created.clone();
    changed["status"] = "amended".into();
    let updated = fhir.update(&changed).await.unwrap();
    assert_eq!(updated["id"], id.as_str());
    assert_eq!(updated["meta"]["versionId"], "2");
    assert!(mock.record(|r| r.bearer_uses) >= 5);
    assert_eq!(mock.violations(), Vec::<String>::new());
    // Discovery is cached per issuer.
    launch(&mock, &client, "p2").await.unwrap();
    assert_eq!(mock.record(|r| r.discovery_requests), 1);
}

// REQ: APP-07
#[tokio::test]
async fn confidential_symmetric_basic_and_post() {
    for (registered, auth) in [
        (
            Registered::Basic("s3cret:x".into()),
            ClientAuth::ClientSecretBasic(Secret::new("s3cret:x")),
        ),
        (
            Registered::Post("s3cret".into()),
            ClientAuth::ClientSecretPost(Secret::new("s3cret")),
        ),
    ] {
        let mock = Mock::start(registered, Behaviour::default()).await;
        let client = mock.client(auth, SCOPE);
        let session = launch(&mock, &client, "p1").await.unwrap();
        session.refresh().await.unwrap();
        session.fhir().read("Patient", "p1").await.unwrap();
        assert_eq!(mock.violations(), Vec::<String>::new());
    }
    // A wrong secret is refused by the server and reported as such.
    let mock = Mock::start(Registered::Basic("right".into()), Behaviour::default()).await;
    let client = mock.client(ClientAuth::ClientSecretBasic(Secret::new("wrong")), SCOPE);
    let err = launch(&mock, &client, "p1").await.unwrap_err();
    assert_eq!(err.code(), "token_refused");
    assert!(err.to_string().contains("invalid_client"));
    assert!(!err.to_string().contains("wrong"));
}

// REQ: APP-07
// REQ: APP-10
#[tokio::test]
async fn private_key_jwt_rs384_and_es384_with_fresh_jti_on_refresh() {
    for (key, public) in [
        (support::app_rs384_key(), support::app_rs384_public()),
        (support::app_es384_key(), support::app_es384_public()),
    ] {
        let mock = Mock::start(Registered::Jwt(public), Behaviour::default()).await;
        let client = mock.client(ClientAuth::PrivateKeyJwt(key), SCOPE);
        let session = launch(&mock, &client, "p1").await.unwrap();
        let first_refresh = session.snapshot().unwrap().refresh_token().cloned();
        session.refresh().await.unwrap();
        session.refresh().await.unwrap();
        let snap = session.snapshot().unwrap();
        assert_ne!(
            snap.refresh_token().cloned(),
            first_refresh,
            "rotated refresh token kept"
        );
        assert_eq!(snap.generation, 2);
        assert_eq!(mock.record(|r| r.refresh_requests), 2);
        // The server rejects any reused jti, so three token requests passing proves freshness.
        assert_eq!(mock.violations(), Vec::<String>::new());
    }
}

// REQ: APP-04
#[tokio::test]
async fn authorize_by_post_form() {
    let mock = Mock::start(Registered::Public, Behaviour::default()).await;
    let options = ClientOptions {
        prefer_authorize_post: true,
        ..ClientOptions::default()
    };
    let client = mock.client_with(ClientAuth::Public, SCOPE, options);
    let start = client
        .begin_launch_from_query(&mock.launch_query("p9"))
        .await
        .unwrap();
    assert!(matches!(start.redirect, Redirect::Post(_)));
    let session = client
        .complete_launch(&browse(&start.redirect).await, Some(start.binding.value()))
        .await
        .unwrap();
    assert_eq!(session.snapshot().unwrap().patient_id(), Some("p9"));
    assert_eq!(mock.violations(), Vec::<String>::new());
}

// REQ: APP-05
// REQ: APP-06
#[tokio::test]
async fn wrong_reused_and_missing_state_are_refused() {
    let mock = Mock::start(Registered::Public, Behaviour::default()).await;
    let client = mock.client(ClientAuth::Public, SCOPE);
    let start = client
        .begin_launch_from_query(&mock.launch_query("p1"))
        .await
        .unwrap();
    let bound = Some(start.binding.value());
    let callback = browse(&start.redirect).await;
    let code = url::form_urlencoded::parse(callback.as_bytes())
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let forged = format!("code={code}&state=forged-state-value-that-was-never-issued");
    assert_eq!(
        client
            .complete_launch(&forged, bound)
            .await
            .unwrap_err()
            .code(),
        "state_invalid"
    );
    assert_eq!(
        client
            .complete_launch(&format!("code={code}"), bound)
            .await
            .unwrap_err()
            .code(),
        "state_invalid"
    );
    client.complete_launch(&callback, bound).await.unwrap();
    let replay = client.complete_launch(&callback, bound).await.unwrap_err();
    assert_eq!(replay.code(), "state_invalid");
    assert!(replay.user_message().contains("open the app again"));
    // None of the refused callbacks reached the token endpoint.
    assert_eq!(mock.record(|r| r.token_requests), 1);
}

// REQ: APP-06
#[tokio::test]
async fn expired_pending_launch_is_refused() {
    let mock = Mock::start(Registered::Public, Behaviour::default()).await;
    let options = ClientOptions {
        pending_launch_ttl: Duration::ZERO,
        ..ClientOptions::default()
    };
    let client = mock.client_with(ClientAuth::Public, SCOPE, options);
    let start = client
        .begin_launch_from_query(&mock.launch_query("p1"))
        .await
        .unwrap();
    let err = client
        .complete_launch(&browse(&start.redirect).await, Some(start.binding.value()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "state_invalid");
}

// REQ: APP-05
// REQ: APP-13
#[tokio::test]
async fn many_launches_in_flight_stay_isolated() {
    let mock = Mock::start(Registered::Public, Behaviour::default()).await;
    let client = mock.client(ClientAuth::Public, SCOPE);
    let mut pending = Vec::new();
    for i in 0..8 {
        let start = client
            .begin_launch_from_query(&mock.launch_query(&format!("p{i}")))
            .await
            .unwrap();
        let binding = start.binding.value().to_owned();
        pending.push((i, browse(&start.redirect).await, binding));
    }
    // Complete them concurrently and in reverse order.
    let tasks: Vec<_> = pending
        .into_iter()
        .rev()
        .map(|(i, cb, binding)| {
            let client = client.clone();
            tokio::spawn(async move { (i, client.complete_launch(&cb, Some(&binding)).await) })
        })
        .collect();
    let mut tokens = std::collections::HashSet::new();
    for t in tasks {
        let (i, session) = t.await.unwrap();
        let snap = session.unwrap().snapshot().unwrap();
        assert_eq!(snap.patient_id(), Some(format!("p{i}").as_str()));
        assert!(tokens.insert(snap.access_token().expose().to_owned()));
    }
    assert_eq!(mock.violations(), Vec::<String>::new());
}

// REQ: APP-09
// REQ: SEC-05
#[tokio::test]
async fn alg_none_and_unknown_key_id_tokens_are_rejected() {
    let mock = Mock::start(
        Registered::Public,
        Behaviour {
            id_token: IdTokenMode::AlgNone,
            ..Behaviour::default()
        },
    )
    .await;
    let client = mock.client(ClientAuth::Public, SCOPE);
    let err = launch(&mock, &client, "p1").await.unwrap_err();
    assert_eq!(err.code(), "id_token_invalid");

    mock.set_behaviour(|b| b.id_token = IdTokenMode::Good);
    launch(&mock, &client, "p1").await.unwrap();
    assert_eq!(mock.record(|r| r.jwks_requests), 1);
    mock.set_behaviour(|b| b.id_token = IdTokenMode::UnknownKey);
    let err = launch(&mock, &client, "p1").await.unwrap_err();
    assert_eq!(err.code(), "id_token_invalid");
    assert!(err.to_string().contains("key"));
    // The cached set did not know the kid, so it was fetched again exactly once.
    assert_eq!(mock.record(|r| r.jwks_requests), 2);
}

// REQ: APP-17
#[tokio::test]
async fn token_endpoint_500_and_html_are_typed_errors() {
    for (status, ct, body, code) in [
        (500, "text/plain", "boom".to_owned(), "http_status"),
        (
            200,
            "text/html",
            "<html><body>Sign in</body></html>".to_owned(),
            "response_invalid",
        ),
        (
            200,
            "application/json",
            "{\"access_token\": 5}".to_owned(),
            "response_invalid",
        ),
        (
            400,
            "application/json",
            "{\"error\":\"invalid_grant\"}".to_owned(),
            "token_refused",
        ),
    ] {
        let mock = Mock::start(
            Registered::Public,
            Behaviour {
                token_override: Some((status, ct, body)),
                ..Behaviour::default()
            },
        )
        .await;
        let client = mock.client(ClientAuth::Public, SCOPE);
        let err = launch(&mock, &client, "p1").await.unwrap_err();
        assert_eq!(err.code(), code);
        assert!(!err.user_message().is_empty());
    }
}

// REQ: APP-02
// REQ: APP-03
#[tokio::test]
async fn plain_only_discovery_and_unknown_issuer_never_authorize() {
    let mock = Mock::start(
        Registered::Public,
        Behaviour {
            plain_only: true,
            ..Behaviour::default()
        },
    )
    .await;
    let client = mock.client(ClientAuth::Public, SCOPE);
    let err = client
        .begin_launch_from_query(&mock.launch_query("p1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "discovery_invalid");
    assert!(err.to_string().contains("plain"));

    let other = Mock::start(Registered::Public, Behaviour::default()).await;
    let err = client
        .begin_launch_from_query(&other.launch_query("p1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "issuer_not_allowed");
    assert_eq!(
        other.record(|r| r.discovery_requests),
        0,
        "no network call for an unknown iss"
    );
    assert_eq!(mock.record(|r| r.authorize_requests), 0);
}

// REQ: APP-10
#[tokio::test]
async fn concurrent_refreshes_before_expiry_make_one_request() {
    let mock = Mock::start(
        Registered::Public,
        Behaviour {
            // Expired on arrival, so every request finds it due.
            access_lifetime: 0,
            refresh_delay: Duration::from_millis(200),
            ..Behaviour::default()
        },
    )
    .await;
    let client = mock.client(ClientAuth::Public, SCOPE);
    let session = launch(&mock, &client, "p1").await.unwrap();
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let fhir = session.fhir();
            tokio::spawn(async move { fhir.read("Patient", "p1").await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(mock.record(|r| r.refresh_requests), 1);
    assert_eq!(session.snapshot().unwrap().generation, 1);
    assert_eq!(mock.violations(), Vec::<String>::new());
}

// REQ: APP-10
#[tokio::test]
async fn a_401_refreshes_once_then_retries() {
    let mock = Mock::start(Registered::Public, Behaviour::default()).await;
    let client = mock.client(ClientAuth::Public, SCOPE);
    let session = launch(&mock, &client, "p1").await.unwrap();
    mock.revoke_access_tokens();
    session.fhir().read("Patient", "p1").await.unwrap();
    assert_eq!(
        mock.record(|r| (r.unauthorized, r.refresh_requests)),
        (1, 1)
    );
    // When the refresh token is gone too, the app learns the session is over.
    mock.revoke_access_tokens();
    mock.revoke_refresh_tokens();
    let err = session.fhir().read("Patient", "p1").await.unwrap_err();
    assert_eq!(err.code(), "session_expired");
}

// REQ: APP-12
// REQ: ASY-02
#[tokio::test]
async fn asynchronous_writes_are_polled_to_the_final_result() {
    let mock = Mock::start(
        Registered::Public,
        Behaviour {
            retry_after: "1",
            ..Behaviour::default()
        },
    )
    .await;
    let options = ClientOptions {
        initial_poll_interval: Duration::from_millis(20),
        ..ClientOptions::default()
    };
    let client = mock.client_with(ClientAuth::Public, SCOPE, options);
    let session = launch(&mock, &client, "p1").await.unwrap();
    let started = std::time::Instant::now();
    let created = session
        .fhir()
        .prefer_async(true)
        .create(&json!({"resourceType": "Observation", "subject": {"reference": "Patient/p1"}}))
        .await
        .unwrap();
    assert_eq!(created["resourceType"], "Observation");
    assert!(created["id"].as_str().unwrap().starts_with("obs-"));
    assert_eq!(mock.record(|r| (r.prefer_async_seen, r.polls)), (1, 3));
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After: 1 honoured twice"
    );
    // A job that never finishes runs into the deadline.
    mock.set_behaviour(|b| {
        b.async_polls = usize::MAX;
        b.retry_after = "0";
    });
    let options = ClientOptions {
        initial_poll_interval: Duration::from_millis(20),
        async_deadline: Duration::from_millis(300),
        ..ClientOptions::default()
    };
    let client = mock.client_with(ClientAuth::Public, SCOPE, options);
    let session = launch(&mock, &client, "p1").await.unwrap();
    let err = session
        .fhir()
        .prefer_async(true)
        .create(&json!({"resourceType": "Observation", "subject": {"reference": "Patient/p1"}}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "async_deadline");
    // A synchronous server answer comes back the same way, errors as OperationOutcome summaries.
    let err = session
        .fhir()
        .create(&json!({"resourceType": "Observation"}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "fhir_error");
    assert!(err.to_string().contains("Observation.subject is required"));
}

// REQ: APP-11
// REQ: SEC-03
#[tokio::test]
async fn bearer_goes_to_the_session_base_only_and_bodies_are_bounded() {
    let mock = Mock::start(Registered::Public, Behaviour::default()).await;
    let other = Mock::start(Registered::Public, Behaviour::default()).await;
    let options = ClientOptions {
        max_body_bytes: 2048,
        ..ClientOptions::default()
    };
    let client = mock.client_with(ClientAuth::Public, SCOPE, options);
    let session = launch(&mock, &client, "p1").await.unwrap();
    let foreign = format!("{}/Patient/p1", other.base);
    let err = session
        .fhir()
        .request(reqwest::Method::GET, &foreign, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "foreign_url");
    let bundle = json!({"link": [{"relation": "next", "url": format!("{}/Observation?_page=2", other.base)}]});
    assert_eq!(
        session.fhir().next_page(&bundle).await.unwrap_err().code(),
        "foreign_url"
    );
    assert_eq!(other.record(|r| r.bearer_uses + r.unauthorized), 0);
    let err = session
        .fhir()
        .search("Observation", &[("big", "1")])
        .await
        .unwrap_err();
    assert_eq!(err.code(), "response_invalid");
    // A context resource of the wrong type is caught.
    let err = session
        .fhir()
        .read("Patient", "not-a-patient")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "context_wrong_type");
}

// REQ: APP-14
#[tokio::test]
async fn missing_patient_context_fails_the_launch() {
    let mock = Mock::start(
        Registered::Public,
        Behaviour {
            omit_patient: true,
            ..Behaviour::default()
        },
    )
    .await;
    let client = mock.client(ClientAuth::Public, SCOPE);
    let err = launch(&mock, &client, "p1").await.unwrap_err();
    assert_eq!(err.code(), "context_missing");
    assert!(err.user_message().contains("patient"));
}

// REQ: APP-15
#[tokio::test]
async fn backend_services_client_credentials() {
    let key: SigningKey = support::app_es384_key();
    let mock = Mock::start(
        Registered::Jwt(support::app_es384_public()),
        Behaviour::default(),
    )
    .await;
    let client = mock.client(ClientAuth::Public, SCOPE);
    let url = url::Url::parse(&mock.token_url()).unwrap();
    let t1 = client
        .backend_token(&url, support::CLIENT_ID, &key, "system/Patient.rs")
        .await
        .unwrap();
    let t2 = client
        .backend_token(&url, support::CLIENT_ID, &key, "system/Patient.rs")
        .await
        .unwrap();
    assert_eq!(t1.access_token, t2.access_token, "reused while fresh");
    assert_eq!(t1.scope, "system/Patient.rs");
    assert_eq!(mock.record(|r| r.token_requests), 1);
    assert_eq!(mock.violations(), Vec::<String>::new());
}

// REQ: APP-16
#[tokio::test]
async fn introspection_of_live_and_unknown_tokens() {
    let mock = Mock::start(Registered::Post("pw".into()), Behaviour::default()).await;
    let auth = ClientAuth::ClientSecretPost(Secret::new("pw"));
    let client = mock.client(auth.clone(), SCOPE);
    let session = launch(&mock, &client, "p7").await.unwrap();
    let url = url::Url::parse(&format!("{}/auth/introspect", mock.origin)).unwrap();
    let token = session.snapshot().unwrap().access_token().clone();
    let live = client
        .introspect(&url, support::CLIENT_ID, &auth, &token)
        .await
        .unwrap();
    assert!(live.active);
    assert_eq!(live.launch_context().patient.as_deref(), Some("p7"));
    let dead = client
        .introspect(&url, support::CLIENT_ID, &auth, &Secret::new("nope"))
        .await
        .unwrap();
    assert!(!dead.active);
    assert_eq!(mock.violations(), Vec::<String>::new());
}

// REQ: APP-13
#[tokio::test]
async fn sessions_persist_and_resume_without_leaking_in_debug() {
    let mock = Mock::start(Registered::Public, Behaviour::default()).await;
    let client = mock.client(ClientAuth::Public, SCOPE);
    let session = launch(&mock, &client, "p1").await.unwrap();
    let snap = session.snapshot().unwrap();
    let shown = format!("{session:?} {client:?}");
    assert!(!shown.contains(snap.access_token().expose()));
    assert!(!shown.contains(snap.refresh_token().unwrap().expose()));
    let stored = serde_json::to_string(&snap).unwrap();
    let resumed = client.resume(serde_json::from_str(&stored).unwrap());
    resumed.fhir().read("Patient", "p1").await.unwrap();
}

/// The launcher's answer that exposed a stored forgery: a refresh response whose id_token says
/// `fhirUser = Practitioner/evil` under the launch's signature. Then a validly signed id_token
/// for another subject. Neither may replace the launch's identity (OpenID Connect Core §12.2).
// REQ: APP-09
// REQ: APP-10
// REQ: SEC-05
#[tokio::test]
async fn a_refreshed_id_token_is_verified_and_must_name_the_same_user() {
    let mock = Mock::start(
        Registered::Public,
        Behaviour {
            rotate_refresh: false,
            refresh_id_token: RefreshIdToken::Forged,
            ..Behaviour::default()
        },
    )
    .await;
    let client = mock.client(ClientAuth::Public, SCOPE);
    let session = launch(&mock, &client, "p1").await.unwrap();
    let before = session.snapshot().unwrap();
    let original = before.id_token().unwrap().clone();

    let forged = session.refresh().await.unwrap_err();
    assert_eq!(forged.code(), "id_token_invalid");
    assert!(forged.to_string().contains("signature"), "{forged}");
    mock.set_behaviour(|b| b.refresh_id_token = RefreshIdToken::OtherUser);
    let swapped = session.refresh().await.unwrap_err();
    assert_eq!(swapped.code(), "id_token_invalid");
    assert!(swapped.to_string().contains("subject"), "{swapped}");

    let after = session.snapshot().unwrap();
    assert_eq!(after.id_token(), Some(&original));
    assert_eq!(after.fhir_user().unwrap().id, "123");
    assert_eq!(after.access_token(), before.access_token());
    assert_eq!(after.generation, before.generation);

    mock.set_behaviour(|b| b.refresh_id_token = RefreshIdToken::Good);
    session.refresh().await.unwrap();
    let refreshed = session.snapshot().unwrap();
    assert_eq!(refreshed.generation, before.generation + 1);
    assert_eq!(refreshed.fhir_user().unwrap().id, "123");
    assert_eq!(mock.record(|r| r.refresh_requests), 3);
}

/// The launcher's answer to an expired token, with no refresh token granted: `401` and
/// `Invalid token: jwt expired` as plain text. The clinician was told they lacked permission.
// REQ: APP-10
// REQ: APP-17
#[tokio::test]
async fn a_401_without_a_refresh_token_is_a_session_that_ended() {
    let mock = Mock::start(
        Registered::Public,
        Behaviour {
            grant_refresh: false,
            ..Behaviour::default()
        },
    )
    .await;
    let client = mock.client(ClientAuth::Public, SCOPE);
    let session = launch(&mock, &client, "p1").await.unwrap();
    assert!(session.snapshot().unwrap().refresh_token().is_none());
    mock.revoke_access_tokens();
    let err = session.fhir().read("Patient", "p1").await.unwrap_err();
    assert_eq!(err.code(), "session_expired");
    assert_eq!(
        err.user_message(),
        "Your session has ended. Please open the app again from your clinical system."
    );
    assert!(err.to_string().contains("401"), "{err}");
    assert_eq!(
        mock.record(|r| (r.unauthorized, r.refresh_requests)),
        (1, 0)
    );
}

/// A gateway in front of the launcher answering 502 with its own HTML page.
// REQ: APP-17
#[tokio::test]
async fn a_gateway_502_tells_the_clinician_to_try_again_without_jargon() {
    let nginx = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
                 <center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n\
                 </body>\r\n</html>\r\n";
    let mock = Mock::start(
        Registered::Public,
        Behaviour {
            fhir_answer: Some((502, "text/html", nginx.to_owned())),
            ..Behaviour::default()
        },
    )
    .await;
    let client = mock.client(ClientAuth::Public, SCOPE);
    let session = launch(&mock, &client, "p1").await.unwrap();
    let err = session.fhir().read("Patient", "p1").await.unwrap_err();
    assert_eq!(err.code(), "fhir_error");
    let message = err.user_message();
    assert!(
        !message.contains("HTTP") && !message.contains("502") && !message.contains("Gateway"),
        "{message}"
    );
    assert!(message.contains("try again"), "{message}");
    assert!(err.to_string().contains("HTTP 502"), "{err}");
}

/// 15-second tokens against the 60-second margin: 3 reads made 3 refresh grants.
// REQ: APP-10
#[tokio::test]
async fn short_lived_tokens_are_not_refreshed_before_every_request() {
    let mock = Mock::start(
        Registered::Public,
        Behaviour {
            access_lifetime: 15,
            ..Behaviour::default()
        },
    )
    .await;
    let client = mock.client(ClientAuth::Public, SCOPE);
    let session = launch(&mock, &client, "p1").await.unwrap();
    for _ in 0..3 {
        session.fhir().read("Patient", "p1").await.unwrap();
    }
    assert_eq!(mock.record(|r| (r.bearer_uses, r.refresh_requests)), (3, 0));
}

/// "The app needs a encounter".
// REQ: APP-14
#[tokio::test]
async fn a_launch_without_its_encounter_asks_for_an_encounter() {
    let mock = Mock::start(Registered::Public, Behaviour::default()).await;
    let client = mock.client(ClientAuth::Public, &format!("launch/encounter {SCOPE}"));
    let err = launch(&mock, &client, "p1").await.unwrap_err();
    assert_eq!(err.code(), "context_missing");
    assert!(
        err.user_message()
            .starts_with("The app needs an encounter to be selected."),
        "{}",
        err.user_message()
    );
}

/// `openid` granted, no id_token: the launch completed with no user identity.
// REQ: APP-09
#[tokio::test]
async fn openid_granted_without_an_id_token_is_a_typed_error_unless_allowed() {
    let mock = Mock::start(
        Registered::Public,
        Behaviour {
            id_token: IdTokenMode::None,
            ..Behaviour::default()
        },
    )
    .await;
    let client = mock.client(ClientAuth::Public, SCOPE);
    let err = launch(&mock, &client, "p1").await.unwrap_err();
    assert_eq!(err.code(), "id_token_missing");
    assert!(err.user_message().contains("open the app again"));
    // Without openid there is no identity to expect.
    let no_openid = mock.client(ClientAuth::Public, "launch/patient patient/Patient.rs");
    let session = launch(&mock, &no_openid, "p1").await.unwrap();
    assert!(session.snapshot().unwrap().fhir_user().is_none());
    // A server known to omit it: configured, accepted.
    let tolerant = mock.client_configured(
        |config| config.allow_missing_id_token = true,
        ClientAuth::Public,
        SCOPE,
    );
    let session = launch(&mock, &tolerant, "p1").await.unwrap();
    assert!(session.snapshot().unwrap().id_claims.is_none());
}

/// Login CSRF: a callback with a valid state, from a browser that did not start the launch.
// REQ: APP-06
#[tokio::test]
async fn a_callback_from_another_browser_never_reaches_the_token_endpoint() {
    let mock = Mock::start(Registered::Public, Behaviour::default()).await;
    let client = mock.client(ClientAuth::Public, SCOPE);
    let attacker = client
        .begin_launch_from_query(&mock.launch_query("p1"))
        .await
        .unwrap();
    let victim = client
        .begin_launch_from_query(&mock.launch_query("p2"))
        .await
        .unwrap();
    let attacker_callback = browse(&attacker.redirect).await;
    // The victim's browser holds its own binding only.
    let victim_cookie = victim.binding.set_cookie(Duration::from_secs(600));
    let victim_cookie = victim_cookie.split(';').next().unwrap();
    let presented = BrowserBinding::from_callback(&attacker_callback, Some(victim_cookie));
    assert_eq!(presented, None);
    let err = client
        .complete_launch(&attacker_callback, presented.as_deref())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "browser_mismatch");
    assert!(err.user_message().contains("open the app again"));
    // Another launch's value is no better than none.
    let victim_callback = browse(&victim.redirect).await;
    let err = client
        .complete_launch(&victim_callback, Some(attacker.binding.value()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "browser_mismatch");
    assert_eq!(mock.record(|r| r.token_requests), 0);

    // The browser that started a launch gets it back from its cookie.
    let start = client
        .begin_launch_from_query(&mock.launch_query("p3"))
        .await
        .unwrap();
    let callback = browse(&start.redirect).await;
    let cookie = start.binding.set_cookie(Duration::from_secs(600));
    let header = format!("other=1; {}", cookie.split(';').next().unwrap());
    let presented = BrowserBinding::from_callback(&callback, Some(&header));
    let session = client
        .complete_launch(&callback, presented.as_deref())
        .await
        .unwrap();
    assert_eq!(session.snapshot().unwrap().patient_id(), Some("p3"));
}
