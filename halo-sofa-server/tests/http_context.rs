//! The real router on `127.0.0.1:0` with the SQLite store, driven over HTTP: the third-party
//! HALO requests, a table of bad inputs, authorization, `$clear-context`, expiry, metadata.

// Test helpers may unwrap: a panic is a test failure with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use chrono::{Duration, Utc};
use halo_model::canonical;
use halo_model::fhir::RawResource;
use halo_sofa_server::audit::{AuditAction, AuditOutcome, MemoryAuditSink};
use halo_sofa_server::auth::{Caller, StaticTokens};
use halo_sofa_server::clock::ManualClock;
use halo_sofa_server::config::SofaConfig;
use halo_sofa_server::sofa::Sofa;
use halo_sofa_server::store::{
    MemoryStore, NewResource, RefreshTokenRecord, SqliteStore, Store, SubscriptionRecord,
    SubscriptionStatus,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{TempDir, counts, fixture};

struct Server {
    base: String,
    store: Arc<dyn Store>,
    audit: Arc<MemoryAuditSink>,
    clock: Arc<ManualClock>,
    sofa: Sofa,
    http: reqwest::Client,
    _dir: TempDir,
}

async fn start() -> Server {
    let dir = TempDir::new("http");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.db()).await.unwrap());
    let mut tx = store.begin().await.unwrap();
    for (id, owner) in [("sub-poc", "poc"), ("sub-other", "other-poc")] {
        tx.insert_subscription(SubscriptionRecord {
            id: id.into(),
            owner_client_id: owner.into(),
            topic: canonical::SOFA_CONTENT_UPDATE_TOPIC.into(),
            status: SubscriptionStatus::Active,
            events_since_start: 0,
            resource: RawResource::from_value(json!({"resourceType": "Subscription", "id": id}))
                .unwrap(),
            updated_at: Utc::now(),
        })
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let tokens = StaticTokens::new()
        .with("poc", Caller::new("poc", Some("dr-a"), "Context.write"))
        .with(
            "poc-dr-b",
            Caller::new("poc", Some("dr-b"), "Context.write"),
        )
        .with(
            "other-poc",
            Caller::new("other-poc", Some("dr-a"), "Context.write"),
        )
        .with(
            "unsubscribed",
            Caller::new("unsubscribed", Some("dr-a"), "Context.write"),
        )
        .with(
            "no-scope",
            Caller::new("poc", Some("dr-a"), "openid fhirUser"),
        );
    let audit = Arc::new(MemoryAuditSink::new());
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/fhir", listener.local_addr().unwrap());
    let mut config = SofaConfig::new(&base).unwrap();
    config.cors_allowed_origins = vec!["https://poc.example.org".into()];
    let sofa = Sofa::builder(config)
        .store(store.clone())
        .token_validator(Arc::new(tokens))
        .audit(audit.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    let app = axum::Router::new().nest("/fhir", sofa.router());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server {
        base,
        store,
        audit,
        clock,
        sofa,
        http: reqwest::Client::new(),
        _dir: dir,
    }
}

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn issues(&self) -> Vec<(String, String)> {
        assert_eq!(
            self.body["resourceType"], "OperationOutcome",
            "{}",
            self.body
        );
        self.body["issue"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["expression"][0].as_str().unwrap_or("").to_string(),
                    i["code"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

impl Server {
    async fn post_raw(
        &self,
        operation: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> Answer {
        let mut request = self
            .http
            .post(format!("{}/{operation}", self.base))
            .header("content-type", content_type)
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn set_context(&self, token: &str, body: &Value) -> Answer {
        self.post_raw(
            "$set-context",
            Some(token),
            "application/fhir+json",
            serde_json::to_vec(body).unwrap(),
        )
        .await
    }

    async fn clear_context(&self, token: &str, launch_id: &str) -> Answer {
        let body = json!({"resourceType": "Parameters",
            "parameter": [{"name": "launchID", "valueString": launch_id}]});
        self.post_raw(
            "$clear-context",
            Some(token),
            "application/json",
            serde_json::to_vec(&body).unwrap(),
        )
        .await
    }

    async fn seed(&self, reference: &str, launch_id: Option<&str>) {
        let (resource_type, id) = reference.split_once('/').unwrap();
        let mut tx = self.store.begin().await.unwrap();
        tx.create_resource(NewResource {
            resource: RawResource::from_value(json!({"resourceType": resource_type, "id": id}))
                .unwrap(),
            launch_id: launch_id.map(str::to_string),
            last_updated: Utc::now(),
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
}

fn launch_id(answer: &Answer) -> String {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let parameter = &answer.body["parameter"][0];
    assert_eq!(parameter["name"], "launchID");
    parameter["valueString"].as_str().unwrap().to_string()
}

fn response_entries(answer: &Answer) -> Vec<Value> {
    answer.body["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "resourcesResponse")
        .map(|p| p["resource"]["entry"].as_array().unwrap().clone())
        .unwrap_or_default()
}

fn xl_fixed() -> Value {
    let mut xl = fixture("set-context-input-XL.json");
    xl["parameter"][11]["resource"]["entry"][6]["request"]["url"] = json!("MedicationStatement");
    xl
}

// REQ: SC-01
// REQ: SC-02
// REQ: SC-04
// REQ: SC-05
// REQ: SC-06
// REQ: SC-07
#[tokio::test]
async fn the_l_request_is_stored_atomically_rewritten_and_answered() {
    let server = start().await;
    let answer = server
        .set_context("poc", &fixture("set-context-input-L.json"))
        .await;
    let launch = launch_id(&answer);
    assert_eq!(launch.len(), 43);
    assert!(
        answer.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/fhir+json")
    );
    assert_eq!(
        answer.body["meta"]["profile"][0],
        canonical::SET_CONTEXT_OUTPUT_PARAMETERS
    );
    let entries = response_entries(&answer);
    let types = [
        "Patient",
        "Encounter",
        "PractitionerRole",
        "Practitioner",
        "Organization",
        "Location",
    ];
    assert_eq!(entries.len(), types.len());
    let mut ids = Vec::new();
    for (entry, resource_type) in entries.iter().zip(types) {
        assert_eq!(entry["response"]["status"], "201 Created");
        let location = entry["response"]["location"].as_str().unwrap();
        let parts: Vec<&str> = location.split('/').collect();
        assert_eq!(
            (parts[0], parts[2], parts[3]),
            (resource_type, "_history", "1")
        );
        assert_eq!(entry["response"]["etag"], "W/\"1\"");
        assert!(entry["response"]["lastModified"].is_string());
        ids.push(format!("{resource_type}/{}", parts[1]));
    }
    assert_eq!(counts(&server.store).await, (6, 1));

    let mut tx = server.store.begin_read().await.unwrap();
    let (_, encounter_id) = ids[1].split_once('/').unwrap();
    let encounter = tx
        .read_resource("Encounter", encounter_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(encounter.launch_id.as_deref(), Some(launch.as_str()));
    assert_eq!(
        encounter.resource.get("subject").unwrap()["reference"],
        ids[0]
    );
    let (_, role_id) = ids[2].split_once('/').unwrap();
    let role = tx
        .read_resource("PractitionerRole", role_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        role.resource.get("practitioner").unwrap()["reference"],
        ids[3]
    );
    assert_eq!(
        role.resource.get("location").unwrap()[0]["reference"],
        ids[5]
    );
    let record = tx.get_launch(&launch).await.unwrap().unwrap();
    assert_eq!(record.client_id, "poc");
    assert_eq!(record.user.as_deref(), Some("dr-a"));
    assert_eq!(record.patient.as_deref(), Some(ids[0].as_str()));
    assert_eq!(record.encounter.as_deref(), Some(ids[1].as_str()));
    assert_eq!(record.fhir_user.as_deref(), Some(ids[2].as_str()));
    assert_eq!(record.fhir_context, [ids[4].clone(), ids[5].clone()]);
    assert_eq!(record.intent.as_deref(), Some("medication-review"));
    assert_eq!(record.expires_at - record.created_at, Duration::hours(12));
}

// PROVENANCE defects and the XL request.url problem get the exact 400 and store nothing.
// REQ: SC-01
// REQ: SC-02
// REQ: REL-03
#[tokio::test]
async fn third_party_requests_with_known_defects_get_the_exact_400() {
    let server = start().await;
    let cases: [(&str, Vec<(&str, &str)>); 4] = [
        (
            "set-context-input-M.json",
            vec![("Parameters.parameter[1].valueReference.reference", "value")],
        ),
        (
            "set-context-input-XXS.json",
            vec![
                ("Parameters.parameter[1].valueReference.type", "value"),
                ("Parameters.parameter[1].valueReference.reference", "value"),
            ],
        ),
        (
            "set-context-input-XL.json",
            vec![(
                "Parameters.parameter[11].resource.entry[6].request.url",
                "value",
            )],
        ),
        (
            "set-context-input-XS.json",
            // Existing-resource branch on an empty SoFA: none of the three exists.
            vec![
                (
                    "Parameters.parameter[0].valueReference.reference",
                    "not-found",
                ),
                (
                    "Parameters.parameter[1].valueReference.reference",
                    "not-found",
                ),
                (
                    "Parameters.parameter[2].valueReference.reference",
                    "not-found",
                ),
            ],
        ),
    ];
    for (name, expected) in cases {
        let answer = server.set_context("poc", &fixture(name)).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{name}: {}",
            answer.body
        );
        let expected: Vec<(String, String)> = expected
            .into_iter()
            .map(|(e, c)| (e.to_string(), c.to_string()))
            .collect();
        assert_eq!(answer.issues(), expected, "{name}");
        assert_eq!(counts(&server.store).await, (0, 0), "{name}");
    }
    // The $clear-context fixture still holds its template variable.
    let answer = server
        .post_raw(
            "$clear-context",
            Some("poc"),
            "application/fhir+json",
            serde_json::to_vec(&fixture("clear-context-input.json")).unwrap(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer.issues(),
        [(
            "Parameters.parameter[0].valueString".to_string(),
            "value".to_string()
        )]
    );
}

// REQ: SC-05
// REQ: SC-06
#[tokio::test]
async fn requests_pointing_at_resources_already_in_the_sofa_succeed_once_they_exist() {
    let server = start().await;
    // XS and XXS reference existing resources: seed what XS names.
    for reference in [
        "Patient/d12004a7-5ed5-41ab-a8f2-0de5f0c98847",
        "Encounter/e753f568-6faf-4a9e-aec8-fe0d2a4f397c",
        "PractitionerRole/b3b7f021-6566-4be5-a6ec-736bc44fefb8",
        "Practitioner/1b676b4f-e646-40c6-bfff-f75b095b7e69",
    ] {
        server.seed(reference, None).await;
    }
    let answer = server
        .set_context("poc", &fixture("set-context-input-XS.json"))
        .await;
    let launch = launch_id(&answer);
    assert!(response_entries(&answer).is_empty());
    assert_eq!(answer.body["parameter"].as_array().unwrap().len(), 1);
    let mut tx = server.store.begin_read().await.unwrap();
    let record = tx.get_launch(&launch).await.unwrap().unwrap();
    assert_eq!(
        record.patient.as_deref(),
        Some("Patient/d12004a7-5ed5-41ab-a8f2-0de5f0c98847")
    );
    drop(tx);

    let answer = server
        .set_context("poc", &fixture("set-context-input-S.json"))
        .await;
    launch_id(&answer);
    assert_eq!(response_entries(&answer).len(), 2);

    for name in ["set-context-input-L.json", "set-context-input-XL.json"] {
        let body = if name.contains("XL") {
            xl_fixed()
        } else {
            fixture(name)
        };
        let answer = server.set_context("poc", &body).await;
        launch_id(&answer);
    }
    assert_eq!(counts(&server.store).await, (4 + 2 + 6 + 7, 4));
}

// A resource inside another user's launch is invisible: reported as missing.
// REQ: SC-05
// REQ: SC-09
#[tokio::test]
async fn existing_references_must_be_visible_to_the_caller() {
    let server = start().await;
    let answer = server
        .set_context("poc-dr-b", &fixture("set-context-input-L.json"))
        .await;
    launch_id(&answer);
    let patient = response_entries(&answer)[0]["response"]["location"]
        .as_str()
        .unwrap()
        .split("/_history")
        .next()
        .unwrap()
        .to_string();
    let body = json!({"resourceType": "Parameters", "parameter": [
        {"name": "patient", "valueReference": {"reference": patient, "type": "Patient"}}]});
    let before = counts(&server.store).await;
    let answer = server.set_context("poc", &body).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer.issues(),
        [(
            "Parameters.parameter[0].valueReference.reference".to_string(),
            "not-found".to_string()
        )]
    );
    assert_eq!(counts(&server.store).await, before);
    // The owner may point at it.
    launch_id(&server.set_context("poc-dr-b", &body).await);
}

fn bad_inputs() -> Vec<(
    &'static str,
    &'static str,
    Vec<u8>,
    StatusCode,
    &'static str,
)> {
    let l = fixture("set-context-input-L.json");
    let json = |v: &Value| serde_json::to_vec(v).unwrap();
    let fhir = "application/fhir+json";

    let mut wrong_type = l.clone();
    wrong_type["resourceType"] = json!("Bundle");
    let mut unknown = l.clone();
    unknown["parameter"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "launchId", "valueString": "x"}));
    let mut duplicate = l.clone();
    duplicate["parameter"][10]["resource"]["entry"][1]["fullUrl"] =
        l["parameter"][10]["resource"]["entry"][0]["fullUrl"].clone();
    let mut dangling = l.clone();
    dangling["parameter"][10]["resource"]["entry"][1]["resource"]["subject"]["reference"] =
        json!("urn:uuid:00000000-0000-4000-8000-000000000000");
    let mut unsupported = l.clone();
    unsupported["parameter"][10]["resource"]["entry"][4]["resource"] =
        json!({"resourceType": "Claim", "status": "active"});
    unsupported["parameter"][10]["resource"]["entry"][4]["request"]["url"] = json!("Claim");
    let mut invalid_patient = l.clone();
    invalid_patient["parameter"][10]["resource"]["entry"][0]["resource"]["gender"] = json!(42);
    let mut big = l.clone();
    big["parameter"][0]["valueString"] = json!("x".repeat(10 * 1024 * 1024));
    let deep = format!(
        r#"{{"resourceType":"Parameters","parameter":[{}1{}]}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );

    vec![
        (
            "not JSON",
            fhir,
            b"{not json".to_vec(),
            StatusCode::BAD_REQUEST,
            "structure",
        ),
        (
            "wrong resourceType",
            fhir,
            json(&wrong_type),
            StatusCode::BAD_REQUEST,
            "structure",
        ),
        (
            "unknown parameter",
            fhir,
            json(&unknown),
            StatusCode::BAD_REQUEST,
            "",
        ),
        (
            "duplicate fullUrl",
            fhir,
            json(&duplicate),
            StatusCode::BAD_REQUEST,
            "duplicate",
        ),
        (
            "dangling urn:uuid",
            fhir,
            json(&dangling),
            StatusCode::BAD_REQUEST,
            "not-found",
        ),
        (
            "unsupported type",
            fhir,
            json(&unsupported),
            StatusCode::BAD_REQUEST,
            "not-supported",
        ),
        (
            "invalid Patient",
            fhir,
            json(&invalid_patient),
            StatusCode::BAD_REQUEST,
            "value",
        ),
        (
            "10 MB body",
            fhir,
            json(&big),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-costly",
        ),
        (
            "200-deep JSON",
            fhir,
            deep.into_bytes(),
            StatusCode::BAD_REQUEST,
            "too-costly",
        ),
        (
            "text/plain body",
            "text/plain",
            json(&l),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not-supported",
        ),
        (
            "XML body outside the FHIR namespace",
            "application/fhir+xml",
            b"<Parameters/>".to_vec(),
            StatusCode::BAD_REQUEST,
            "structure",
        ),
        (
            "malformed XML body",
            "application/fhir+xml",
            b"<Parameters xmlns=\"http://hl7.org/fhir\"><parameter>".to_vec(),
            StatusCode::BAD_REQUEST,
            "structure",
        ),
    ]
}

// REQ: SC-01
// REQ: SC-02
// REQ: SC-03
// REQ: SC-04
// REQ: REL-03
// REQ: SEC-03
#[tokio::test]
async fn every_bad_input_gets_its_4xx_outcome_and_leaves_the_store_unchanged() {
    let server = start().await;
    launch_id(
        &server
            .set_context("poc", &fixture("set-context-input-L.json"))
            .await,
    );
    let before = counts(&server.store).await;
    for (name, content_type, body, status, code) in bad_inputs() {
        let answer = server
            .post_raw("$set-context", Some("poc"), content_type, body)
            .await;
        assert_eq!(answer.status, status, "{name}: {}", answer.body);
        let issues = answer.issues();
        assert!(!issues.is_empty(), "{name}");
        if !code.is_empty() {
            assert!(issues.iter().any(|(_, c)| c == code), "{name}: {issues:?}");
        }
        assert_eq!(counts(&server.store).await, before, "{name}");
    }
}

// Every problem of one request comes back in one OperationOutcome, resource issues included,
// each with its expression.
// REQ: SC-01
// REQ: SC-03
#[tokio::test]
async fn all_problems_are_reported_at_once() {
    let server = start().await;
    let mut body = fixture("set-context-input-L.json");
    body["parameter"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "launchId", "valueString": "x"}));
    body["parameter"][10]["resource"]["entry"][0]["resource"]["gender"] = json!(42);
    body["parameter"][10]["resource"]["entry"][3]["resource"]["active"] = json!("yes");
    let answer = server.set_context("poc", &body).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let issues = answer.issues();
    assert!(
        issues.contains(&(
            "Parameters.parameter[11].name".into(),
            "not-supported".into()
        )),
        "{issues:?}"
    );
    // The profile validator names the element itself, not just the resource.
    assert!(
        issues.contains(&(
            "Parameters.parameter[10].resource.entry[0].resource.gender".into(),
            "value".into()
        )),
        "{issues:?}"
    );
    assert!(
        issues.contains(&(
            "Parameters.parameter[10].resource.entry[3].resource.active".into(),
            "value".into()
        )),
        "{issues:?}"
    );
    assert!(answer.body.to_string().contains("launchId"));
}

// REQ: SC-08
// REQ: SC-09
// REQ: REL-03
#[tokio::test]
async fn callers_need_a_token_the_context_scope_and_an_active_subscription() {
    let server = start().await;
    let body = serde_json::to_vec(&fixture("set-context-input-L.json")).unwrap();
    let fhir = "application/fhir+json";
    let missing = server
        .post_raw("$set-context", None, fhir, body.clone())
        .await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert!(
        missing.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    assert_eq!(missing.issues()[0].1, "login");
    let wrong = server
        .post_raw("$set-context", Some("forged"), fhir, body.clone())
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let no_scope = server
        .post_raw("$set-context", Some("no-scope"), fhir, body.clone())
        .await;
    assert_eq!(no_scope.status, StatusCode::FORBIDDEN);
    assert!(no_scope.body.to_string().contains("Context.write"));
    let unsubscribed = server
        .post_raw("$set-context", Some("unsubscribed"), fhir, body.clone())
        .await;
    assert_eq!(unsubscribed.status, StatusCode::CONFLICT);
    assert_eq!(unsubscribed.issues()[0].1, "business-rule");
    assert!(unsubscribed.body.to_string().contains("Subscription"));
    assert_eq!(counts(&server.store).await, (0, 0));

    // The same client succeeds once its subscription is active.
    let mut tx = server.store.begin().await.unwrap();
    tx.insert_subscription(SubscriptionRecord {
        id: "sub-late".into(),
        owner_client_id: "unsubscribed".into(),
        topic: canonical::SOFA_CONTENT_UPDATE_TOPIC.into(),
        status: SubscriptionStatus::Active,
        events_since_start: 0,
        resource: RawResource::from_value(json!({"resourceType": "Subscription"})).unwrap(),
        updated_at: Utc::now(),
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let answer = server
        .post_raw("$set-context", Some("unsubscribed"), fhir, body)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}

// REQ: SC-11
// REQ: SC-12
// REQ: SC-09
#[tokio::test]
async fn clear_context_removes_everything_of_the_launch_for_its_owner_only() {
    let server = start().await;
    let before = counts(&server.store).await;
    let launch = launch_id(
        &server
            .set_context("poc", &fixture("set-context-input-L.json"))
            .await,
    );
    // A resource an app wrote in the launch, and a refresh token issued for it.
    let mut tx = server.store.begin().await.unwrap();
    tx.create_resource(NewResource {
        resource: RawResource::from_value(json!({"resourceType": "Observation", "id": "app-obs",
            "status": "final", "code": {"text": "x"}}))
        .unwrap(),
        launch_id: Some(launch.clone()),
        last_updated: Utc::now(),
    })
    .await
    .unwrap();
    tx.insert_refresh_token(RefreshTokenRecord {
        token_hash: "rt".into(),
        family_id: "f".into(),
        client_id: "app".into(),
        user: Some("dr-a".into()),
        scope: "launch offline_access".into(),
        launch_id: Some(launch.clone()),
        expires_at: Utc::now() + Duration::hours(1),
        revoked: false,
        details: json!({}),
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(counts(&server.store).await, (7, 1));

    for (token, id) in [
        ("poc-dr-b", launch.as_str()),
        ("other-poc", launch.as_str()),
        ("poc", "q1uXo3l2mJx0tYh3cJ5qk9n8bq0dVfZ5c3g4Zx1tPqE"),
    ] {
        let answer = server.clear_context(token, id).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{token}");
        assert_eq!(answer.issues()[0].1, "not-found");
    }
    // Unknown and someone else's answer alike.
    let unknown = server
        .clear_context("poc", "q1uXo3l2mJx0tYh3cJ5qk9n8bq0dVfZ5c3g4Zx1tPqE")
        .await;
    let foreign = server.clear_context("other-poc", &launch).await;
    assert_eq!(unknown.body, foreign.body);
    assert_eq!(counts(&server.store).await, (7, 1));

    let answer = server.clear_context("poc", &launch).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["resourceType"], "Parameters");
    let outcomes = answer.body["parameter"].as_array().unwrap();
    assert!(!outcomes.is_empty());
    for outcome in outcomes {
        assert_eq!(outcome["name"], "outcome");
        assert_eq!(outcome["resource"]["issue"][0]["severity"], "information");
    }
    assert!(answer.body.to_string().contains("7 resource(s)"));
    assert_eq!(counts(&server.store).await, before);
    let mut tx = server.store.begin_read().await.unwrap();
    assert!(tx.get_refresh_token("rt").await.unwrap().unwrap().revoked);
    drop(tx);
    assert_eq!(
        server.clear_context("poc", &launch).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        server.clear_context("no-scope", &launch).await.status,
        StatusCode::FORBIDDEN
    );
}

// REQ: SC-07
#[tokio::test]
async fn expired_contexts_are_purged_with_their_resources() {
    let server = start().await;
    let first = launch_id(
        &server
            .set_context("poc", &fixture("set-context-input-L.json"))
            .await,
    );
    server.clock.advance(Duration::hours(6));
    let second = launch_id(&server.set_context("poc", &xl_fixed()).await);
    assert_eq!(counts(&server.store).await, (13, 2));
    let manager = server.sofa.context_manager();
    assert_eq!(manager.purge_expired().await.unwrap(), 0);
    server.clock.advance(Duration::hours(6));
    assert_eq!(manager.purge_expired().await.unwrap(), 1);
    assert_eq!(counts(&server.store).await, (7, 1));
    let mut tx = server.store.begin_read().await.unwrap();
    assert!(tx.get_launch(&first).await.unwrap().is_none());
    assert!(tx.get_launch(&second).await.unwrap().is_some());
    drop(tx);
    server.clock.advance(Duration::hours(7));
    assert_eq!(manager.purge_expired().await.unwrap(), 1);
    assert_eq!(counts(&server.store).await, (0, 0));
    assert!(
        server
            .audit
            .events()
            .iter()
            .any(|e| e.action == AuditAction::PurgeContext)
    );
}

// REQ: RS-09
#[tokio::test]
async fn operations_are_audited_with_client_user_launch_and_outcome() {
    let server = start().await;
    let answer = server
        .set_context("poc", &fixture("set-context-input-S.json"))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let answer = server
        .set_context("poc", &fixture("set-context-input-L.json"))
        .await;
    let launch = launch_id(&answer);
    server.clear_context("poc", &launch).await;
    let events = server.audit.events();
    assert_eq!(events.len(), 3);
    assert_eq!(events[0].action, AuditAction::SetContext);
    assert_eq!(events[0].outcome, AuditOutcome::Failure(400));
    assert_eq!(events[1].outcome, AuditOutcome::Success);
    assert_eq!(events[1].client_id.as_deref(), Some("poc"));
    assert_eq!(events[1].user.as_deref(), Some("dr-a"));
    assert_eq!(events[1].launch_id.as_deref(), Some(launch.as_str()));
    assert_eq!(events[1].resources.len(), 6);
    assert!(events[1].resources[0].starts_with("Patient/"));
    assert_eq!(events[2].action, AuditAction::ClearContext);
    assert_eq!(events[2].outcome, AuditOutcome::Success);
}

// REQ: RS-01
// REQ: SEC-06
#[tokio::test]
async fn metadata_advertises_what_is_mounted() {
    let server = start().await;
    let response = server
        .http
        .get(format!("{}/metadata", server.base))
        .header("origin", "https://anywhere.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // SEC-06: any origin may read the CapabilityStatement.
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    let statement: Value = response.json().await.unwrap();
    assert_eq!(statement["resourceType"], "CapabilityStatement");
    assert_eq!(statement["fhirVersion"], "4.0.1");
    assert_eq!(statement["kind"], "instance");
    let rest = &statement["rest"][0];
    assert_eq!(rest["mode"], "server");
    assert_eq!(
        rest["security"]["service"][0]["coding"][0]["code"],
        "SMART-on-FHIR"
    );
    let operations: Vec<(&str, &str)> = rest["operation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["name"].as_str().unwrap(),
                o["definition"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        operations,
        [
            ("set-context", canonical::SET_CONTEXT_OPERATION),
            ("clear-context", canonical::CLEAR_CONTEXT_OPERATION)
        ]
    );
    let resources = rest["resource"].as_array().unwrap();
    assert_eq!(resources.len(), 19);
    let patient = resources.iter().find(|r| r["type"] == "Patient").unwrap();
    assert_eq!(
        patient["supportedProfile"][0],
        canonical::ca_core_profile("Patient")
    );
    // Subscriptions are not mounted yet, so they are not advertised.
    assert!(!resources.iter().any(|r| r["type"] == "Subscription"));
    assert!(
        statement["implementationGuide"]
            .as_array()
            .unwrap()
            .contains(&json!(canonical::HALO_IMPLEMENTATION_GUIDE))
    );

    let html = server
        .http
        .get(format!("{}/metadata?_format=html", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(html.status(), StatusCode::NOT_ACCEPTABLE);
}

#[tokio::test]
async fn mounted_routes_join_the_router_and_the_capability_statement() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let extra = axum::Router::new().route(
        "/Subscription/{id}/$status",
        axum::routing::get(|| async { "status" }),
    );
    let sofa = Sofa::builder(SofaConfig::new(&base).unwrap())
        .store(Arc::new(MemoryStore::new()))
        .mount(extra, |caps| {
            caps.add_subscriptions([canonical::SOFA_CONTENT_UPDATE_TOPIC]);
        })
        .build()
        .unwrap();
    let app = sofa.router();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = reqwest::Client::new();
    let status = client
        .get(format!("{base}/Subscription/s1/$status"))
        .send()
        .await
        .unwrap();
    assert_eq!(status.text().await.unwrap(), "status");
    let statement: Value = client
        .get(format!("{base}/metadata"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let resources = statement["rest"][0]["resource"].as_array().unwrap();
    assert!(resources.iter().any(|r| r["type"] == "Subscription"));
}

// REQ: REL-03
// REQ: SEC-06
#[tokio::test]
async fn unknown_routes_methods_and_foreign_origins_get_fhir_answers() {
    let server = start().await;
    let missing = server
        .http
        .get(format!("{}/Nothing/here", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["resourceType"], "OperationOutcome");
    let wrong_method = server
        .http
        .get(format!("{}/$set-context", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = wrong_method.json().await.unwrap();
    assert_eq!(body["resourceType"], "OperationOutcome");

    // SEC-06: the operations answer CORS only for registered origins.
    let preflight = |origin: &'static str| {
        server
            .http
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/$set-context", server.base),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let allowed = preflight("https://poc.example.org").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://poc.example.org"
    );
    let refused = preflight("https://evil.example.com").await.unwrap();
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let html = server
        .http
        .post(format!("{}/$set-context", server.base))
        .bearer_auth("poc")
        .header("accept", "text/html")
        .header("content-type", "application/fhir+json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(html.status(), StatusCode::NOT_ACCEPTABLE);
}

// REQ: CLU-02
#[test]
fn a_builder_missing_its_store_or_notifier_names_the_part_and_builds_nothing() {
    use halo_sofa_server::sofa::BuildError;
    let config = || SofaConfig::new("https://sofa.example.org/fhir").unwrap();
    let store = || Arc::new(MemoryStore::new());
    assert_eq!(
        Sofa::builder(config()).build().err(),
        Some(BuildError::MissingStore)
    );
    // The resource server commits app writes: never without telling the PoC, unless a test
    // says so by name.
    let missing = Sofa::builder(config())
        .store(store())
        .resource_server()
        .build()
        .err();
    assert_eq!(missing, Some(BuildError::MissingNotifier));
    assert!(missing.unwrap().to_string().contains("notifier"));
    assert!(
        Sofa::builder(config())
            .store(store())
            .resource_server()
            .commit_writes_without_notifying_the_poc_for_tests()
            .build()
            .is_ok()
    );
    assert!(Sofa::builder(config()).store(store()).build().is_ok());
}
