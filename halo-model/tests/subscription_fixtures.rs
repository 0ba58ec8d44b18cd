//! Backport Subscription, status, notification and operation shapes against the IG's own R4
//! instances (`fixtures/subscriptions/r4/`), the derived examples (`derived/`) and
//! Inferno's sample Subscriptions (`inferno/`), all written by others.

// Test helpers may unwrap: a panic is a test failure with its message.
#![allow(clippy::unwrap_used)]

mod support;

use halo_model::canonical;
use halo_model::outcome::IssueType;
use halo_model::set_context::SupportedTypes;
use halo_model::subscription::{
    BindingToken, Channel, ChannelType, EventsQuery, Filter, Notification, NotificationEntry,
    NotificationEvent, NotificationType, PayloadContent, SOFA_CONTENT_UPDATE_TOPIC, StatusQuery,
    Subscription, SubscriptionPolicy, SubscriptionStatus, SubscriptionStatusParameters,
    binding_token_input, parse_bind_message, parse_binding_token_input, parse_status_bundle,
    sofa_content_update_topic, status_bundle,
};
use serde_json::{Value, json};
use support::{assert_same_shape, fixture, fixture_names};

/// Keys whose string values take part in shape comparisons: profile URLs, extension URLs,
/// parameter names, codes.
const VALUES: &[&str] = &[
    "profile",
    "url",
    "name",
    "valueCode",
    "type",
    "method",
    "status",
];

fn r4(name: &str) -> Value {
    fixture(&format!("subscriptions/r4/{name}"))
}

fn derived(name: &str) -> Value {
    fixture(&format!("subscriptions/derived/{name}"))
}

/// The IG's admission topic, allowed with its `patient` filter, and plain http endpoints.
fn admission_policy() -> SubscriptionPolicy {
    let mut policy = SubscriptionPolicy::default();
    policy.topics.insert(
        "http://hl7.org/SubscriptionTopic/admission".into(),
        vec!["patient".into(), "subject".into()],
    );
    policy
}

// REQ: SUB-02
#[test]
fn every_r4_and_derived_subscription_parses_and_writes_back_identically() {
    let mut seen = 0;
    for (dir, name) in fixture_names("subscriptions/r4")
        .into_iter()
        .map(|n| ("r4", n))
        .chain(
            fixture_names("subscriptions/derived")
                .into_iter()
                .map(|n| ("derived", n)),
        )
        .filter(|(_, n)| n.starts_with("Subscription-"))
    {
        let original = fixture(&format!("subscriptions/{dir}/{name}"));
        let subscription =
            Subscription::from_json(&original).unwrap_or_else(|e| panic!("{name}: {e}"));
        // serde_json maps compare without regard to key order.
        assert_eq!(subscription.to_json(), original, "{name}");
        seen += 1;
    }
    assert_eq!(seen, 5);
}

// REQ: SUB-02
#[test]
fn the_builder_emits_the_admission_subscription() {
    let original = r4("Subscription-subscription-admission.json");
    let mut channel = Channel::rest_hook(
        "https://example.org/Endpoints/d7dcc004-808d-452b-8030-3a3a13cd871d",
        PayloadContent::IdOnly,
    );
    channel.heartbeat_period = Some(86400);
    channel.timeout = Some(60);
    channel.max_count = Some(20);
    let mut subscription = Subscription::new(
        "http://hl7.org/SubscriptionTopic/admission",
        "R4/B Example Topic-Based Subscription for Patient Admission",
        channel,
    );
    subscription.id = Some("subscription-admission".into());
    subscription.status = SubscriptionStatus::Active;
    subscription.end = Some("2020-12-31T12:00:00Z".into());
    subscription
        .filters
        .push("Encounter?patient=Patient/123".parse().unwrap());
    let built = subscription.to_json();
    assert_same_shape(&built, &original, VALUES, &[]);
    assert_eq!(built, original);
}

// REQ: SUB-02
#[test]
fn websocket_and_header_subscriptions_are_read_with_every_element() {
    let ws = Subscription::from_json(&derived("Subscription-websocket.json")).unwrap();
    assert_eq!(ws.channel.channel_type, ChannelType::Websocket);
    assert_eq!(ws.channel.endpoint, None);
    assert_eq!(ws.channel.heartbeat_period, Some(60));
    let hook =
        Subscription::from_json(&derived("Subscription-rest-hook-with-header.json")).unwrap();
    assert_eq!(hook.channel.content, PayloadContent::FullResource);
    assert_eq!(
        hook.channel.header_pairs(),
        [
            ("Authorization", "Bearer SAMPLE_TOKEN"),
            ("X-Correlation-Id", "poc-42")
        ]
    );
    assert_eq!(
        (hook.channel.timeout, hook.channel.max_count),
        (Some(30), Some(10))
    );
    let zulip = Subscription::from_json(&r4("Subscription-subscription-zulip.json")).unwrap();
    assert_eq!(zulip.channel.custom_type.as_ref().unwrap()["code"], "zulip");
}

// REQ: SUB-02
#[test]
fn inferno_samples_parse_with_their_dotted_filter_form() {
    for content in ["empty", "id-only", "full-resource"] {
        let sample = fixture(&format!(
            "subscriptions/inferno/Subscription_{content}.json"
        ));
        let subscription = Subscription::from_json(&sample).unwrap();
        assert_eq!(subscription.channel.content.as_str(), content);
        assert_eq!(
            subscription.filters[0],
            "Encounter?patient=Patient/123".parse::<Filter>().unwrap()
        );
        assert_eq!(subscription.status, SubscriptionStatus::Requested);
    }
}

// REQ: SUB-02
#[test]
fn a_server_refuses_what_it_cannot_honour() {
    let policy = admission_policy();
    let hook = derived("Subscription-rest-hook-with-header.json");
    assert!(policy.accept(&hook).is_ok());
    assert!(
        policy
            .accept(&r4("Subscription-subscription-admission.json"))
            .is_ok()
    );

    // Inferno 6.01: a cross-version copy of the filter extension must be rejected.
    let mut cross = r4("Subscription-subscription-admission.json");
    cross["_criteria"]["extension"][0]["url"] = json!(
        "http://hl7.org/fhir/5.0/subscriptions-backport/StructureDefinition/backport-filter-criteria"
    );
    let errors = policy.accept(&cross).unwrap_err();
    assert_eq!(
        errors.locations(),
        [(
            "Subscription.criteria.extension[0].url".to_owned(),
            IssueType::Extension
        )]
    );

    // The default SoFA policy: unknown topic, custom channel.
    let errors = SubscriptionPolicy::default()
        .accept(&r4("Subscription-subscription-zulip.json"))
        .unwrap_err();
    assert_eq!(
        errors.locations(),
        [
            ("Subscription.criteria".to_owned(), IssueType::NotSupported),
            (
                "Subscription.channel.type.extension".to_owned(),
                IssueType::NotSupported
            ),
        ]
    );

    // Everything else a server must refuse, all reported at once.
    let mut bad = hook.clone();
    bad["_criteria"] = json!({"extension": [{"url": canonical::BACKPORT_FILTER_CRITERIA, "valueString": "Encounter?status=finished"}]});
    bad["channel"]["type"] = json!("email");
    bad["channel"]["payload"] = json!("application/fhir+xml");
    let errors = policy.accept(&bad).unwrap_err();
    assert_eq!(
        errors.locations(),
        [
            (
                "Subscription.criteria.extension[0].valueString".to_owned(),
                IssueType::NotSupported
            ),
            (
                "Subscription.channel.type".to_owned(),
                IssueType::NotSupported
            ),
            (
                "Subscription.channel.payload".to_owned(),
                IssueType::NotSupported
            ),
        ]
    );

    let mut plain_http = hook.clone();
    plain_http["channel"]["endpoint"] = json!("http://poc.example.org/notify");
    assert!(
        policy
            .accept(&plain_http)
            .unwrap_err()
            .has("Subscription.channel.endpoint", IssueType::Value)
    );
    let mut r5 = hook.clone();
    r5["channel"]["payload"] = json!("application/fhir+json; fhirVersion=5.0");
    assert!(
        policy
            .accept(&r5)
            .unwrap_err()
            .has("Subscription.channel.payload", IssueType::NotSupported)
    );
    let mut r4_version = hook;
    r4_version["channel"]["payload"] = json!("application/fhir+json; fhirVersion=4.0");
    assert!(policy.accept(&r4_version).is_ok());
}

// REQ: SUB-02
#[test]
fn malformed_subscriptions_give_findings_for_every_problem() {
    let bad = json!({
        "resourceType": "Subscription",
        "status": "on",
        "criteria": "admission",
        "_criteria": {"extension": [{"url": canonical::BACKPORT_FILTER_CRITERIA, "valueString": "nonsense"}]},
        "channel": {
            "type": "pigeon",
            "header": ["no colon here"],
            "extension": [{"url": canonical::BACKPORT_MAX_COUNT, "valuePositiveInt": 0}]
        }
    });
    let errors = Subscription::from_json(&bad).unwrap_err();
    assert_eq!(
        errors.locations(),
        [
            ("Subscription.status".to_owned(), IssueType::CodeInvalid),
            ("Subscription.reason".to_owned(), IssueType::Required),
            ("Subscription.criteria".to_owned(), IssueType::Value),
            (
                "Subscription.criteria.extension[0].valueString".to_owned(),
                IssueType::Value
            ),
            (
                "Subscription.channel.type".to_owned(),
                IssueType::CodeInvalid
            ),
            (
                "Subscription.channel.payload".to_owned(),
                IssueType::Required
            ),
            (
                "Subscription.channel.payload.extension".to_owned(),
                IssueType::Required
            ),
            (
                "Subscription.channel.header[0]".to_owned(),
                IssueType::Value
            ),
            (
                "Subscription.channel.extension[0].valuePositiveInt".to_owned(),
                IssueType::Value
            ),
        ]
    );
    for hostile in [
        json!(null),
        json!([]),
        json!({"resourceType": "Patient"}),
        json!({"resourceType": "Subscription", "channel": 3}),
    ] {
        assert!(Subscription::from_json(&hostile).is_err());
        assert!(Notification::from_json(&hostile).is_err());
        assert!(SubscriptionStatusParameters::from_json(&hostile).is_err());
    }
}

/// Every notification Bundle of the IG and the derived `$events` answer.
fn notification_fixtures() -> Vec<(String, Value)> {
    let mut all: Vec<(String, Value)> = fixture_names("subscriptions/r4")
        .into_iter()
        .filter(|n| n.starts_with("Bundle-"))
        .map(|n| (n.clone(), r4(&n)))
        .collect();
    all.push((
        "events-operation-response.json".into(),
        derived("events-operation-response.json"),
    ));
    all
}

// REQ: SUB-05
// REQ: SUB-07
#[test]
fn every_notification_bundle_parses_and_writes_back_identically() {
    let fixtures = notification_fixtures();
    assert_eq!(fixtures.len(), 12);
    for (name, original) in fixtures {
        let notification =
            Notification::from_json(&original).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(notification.to_json(), original, "{name}");
        assert!(
            notification
                .status_url
                .ends_with("Subscription/admission/$status"),
            "{name}"
        );
    }
}

// REQ: SUB-05
// REQ: SUB-07
#[test]
fn each_notification_meets_the_rules_of_its_content_level() {
    let level = |name: &str| match name {
        n if n.contains("empty") => PayloadContent::Empty,
        n if n.contains("full-resource") || n.contains("multi-resource") => {
            PayloadContent::FullResource
        }
        _ => PayloadContent::IdOnly,
    };
    for (name, original) in notification_fixtures() {
        let notification = Notification::from_json(&original).unwrap();
        notification
            .check_content(level(&name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // The checks bite: a full-resource notification read as empty, or without its entry.
    let full = Notification::from_json(&r4("Bundle-r4-notification-full-resource.json")).unwrap();
    let as_empty = full.check_content(PayloadContent::Empty).unwrap_err();
    assert!(as_empty.has("Bundle.entry[1]", IssueType::Invariant));
    assert!(
        full.check_content(PayloadContent::IdOnly)
            .unwrap_err()
            .has("Bundle.entry[1].resource", IssueType::Invariant)
    );
    let mut missing = full.clone();
    missing.entries.clear();
    assert!(
        missing
            .check_content(PayloadContent::FullResource)
            .unwrap_err()
            .has("Bundle.entry", IssueType::NotFound)
    );
    let heartbeat = Notification::from_json(&r4("Bundle-r4-notification-heartbeat.json")).unwrap();
    let mut no_events = heartbeat.clone();
    no_events.status.notification_type = NotificationType::EventNotification;
    assert!(no_events.check_content(PayloadContent::Empty).is_err());
}

// REQ: SUB-05
#[test]
fn history_bundles_need_request_and_response_on_every_entry_and_the_status_first() {
    let mut bundle = r4("Bundle-r4-notification-multi-resource.json");
    bundle["entry"][2]
        .as_object_mut()
        .unwrap()
        .remove("response");
    bundle["entry"][0]
        .as_object_mut()
        .unwrap()
        .remove("request");
    let errors = Notification::from_json(&bundle).unwrap_err();
    assert_eq!(
        errors.locations(),
        [
            ("Bundle.entry[0].request".to_owned(), IssueType::Required),
            ("Bundle.entry[2].response".to_owned(), IssueType::Required),
        ]
    );
    let mut first_not_status = r4("Bundle-r4-notification-full-resource.json");
    first_not_status["entry"].as_array_mut().unwrap().swap(0, 1);
    first_not_status["type"] = json!("transaction");
    let errors = Notification::from_json(&first_not_status).unwrap_err();
    assert!(errors.has("Bundle.type", IssueType::Value));
    assert!(errors.has("Bundle.entry[0].resource", IssueType::Structure));
}

fn admission_status(
    status: SubscriptionStatus,
    kind: NotificationType,
    since: u64,
) -> SubscriptionStatusParameters {
    let mut parameters = SubscriptionStatusParameters::new(
        "https://example.org/fhir/Subscription/admission",
        status,
        kind,
    );
    parameters.topic = Some("http://hl7.org/SubscriptionTopic/admission".into());
    parameters.events_since_subscription_start = Some(since);
    parameters
}

const STATUS_URL: &str = "https://example.org/fhir/Subscription/admission/$status";
const ENCOUNTER: &str = "https://example.org/fhir/Encounter/86009987-eabe-42bf-8c02-b112b18cb616";
const STAMP: &str = "2020-05-29T11:44:13.1882432-05:00";

// REQ: SUB-05
#[test]
fn built_handshake_and_heartbeat_match_the_ig_examples() {
    for (name, status, kind, since) in [
        (
            "Bundle-r4-notification-handshake.json",
            SubscriptionStatus::Requested,
            NotificationType::Handshake,
            0,
        ),
        (
            "Bundle-r4-notification-heartbeat.json",
            SubscriptionStatus::Active,
            NotificationType::Heartbeat,
            2,
        ),
    ] {
        let original = r4(name);
        let mut built = Notification::new(admission_status(status, kind, since), STATUS_URL);
        built.status.id = original["entry"][0]["resource"]["id"]
            .as_str()
            .map(str::to_owned);
        built.id = original["id"].as_str().map(str::to_owned);
        built.timestamp = Some(STAMP.into());
        assert_same_shape(&built.to_json(), &original, VALUES, &[]);
        assert_eq!(built.to_json(), original, "{name}");
    }
}

// REQ: SUB-05
#[test]
fn built_event_notifications_match_the_ig_examples_at_all_three_levels() {
    let encounter = json!({
        "resourceType": "Encounter",
        "id": "86009987-eabe-42bf-8c02-b112b18cb616",
        "status": "in-progress",
        "class": {"code": "VR", "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode"},
        "subject": {"reference": "https://example.org/fhir/Patient/1599eb66-431a-447c-a3de-6897fe9ae9a1", "display": "Example Patient"}
    });
    for (name, content) in [
        ("Bundle-r4-notification-empty.json", PayloadContent::Empty),
        (
            "Bundle-r4-notification-id-only.json",
            PayloadContent::IdOnly,
        ),
        (
            "Bundle-r4-notification-full-resource.json",
            PayloadContent::FullResource,
        ),
    ] {
        let original = r4(name);
        let mut status = admission_status(
            SubscriptionStatus::Active,
            NotificationType::EventNotification,
            2,
        );
        status.id = original["entry"][0]["resource"]["id"]
            .as_str()
            .map(str::to_owned);
        status
            .events
            .push(NotificationEvent::new(2, STAMP, Some(ENCOUNTER.into())));
        let mut built = Notification::new(status, STATUS_URL);
        built.id = original["id"].as_str().map(str::to_owned);
        built.timestamp = Some(STAMP.into());
        // The IG's id-only example lists no entries (they are optional there); the
        // full-resource one carries the Encounter.
        if content == PayloadContent::FullResource {
            built.entries.push(NotificationEntry::created(
                ENCOUNTER,
                "Encounter",
                Some(encounter.clone()),
            ));
        }
        built.restrict_to(content);
        built.check_content(content).unwrap();
        let mut expected = original.clone();
        if content == PayloadContent::Empty {
            // The IG's empty examples still carry `topic`, which the profile says SHOULD NOT be
            // there for `empty` (Inferno warns); the builder leaves it out.
            let parameters = expected["entry"][0]["resource"]["parameter"]
                .as_array_mut()
                .unwrap();
            parameters.retain(|p| p["name"] != "topic");
        }
        assert_same_shape(&built.to_json(), &expected, VALUES, &[]);
        assert_eq!(built.to_json(), expected, "{name}");
    }
    // Restricting a full-resource notification to id-only keeps the entries, without resources.
    let mut full =
        Notification::from_json(&r4("Bundle-r4-notification-full-resource.json")).unwrap();
    full.restrict_to(PayloadContent::IdOnly);
    full.check_content(PayloadContent::IdOnly).unwrap();
    let entry = &full.to_json()["entry"][1];
    assert_eq!(entry["fullUrl"], ENCOUNTER);
    assert!(
        entry.get("resource").is_none()
            && entry.get("request").is_some()
            && entry.get("response").is_some()
    );
}

// REQ: SUB-05
#[test]
fn the_status_parameters_keep_auth_and_related_query_parts_and_errors() {
    let stand_alone = r4("Parameters-r4-notification-status.json");
    let status = SubscriptionStatusParameters::from_json(&stand_alone).unwrap();
    // Parameters are sliced by name, not by position; this example lists `topic` after `type`.
    let by_name = |mut v: Value| {
        v["parameter"]
            .as_array_mut()
            .unwrap()
            .sort_by_key(|p| p["name"].as_str().unwrap_or_default().to_owned());
        v
    };
    assert_eq!(by_name(status.to_json()), by_name(stand_alone));
    let with_auth =
        Notification::from_json(&r4("Bundle-r4-notification-id-only-with-auth.json")).unwrap();
    let names: Vec<_> = with_auth.status.events[0]
        .other_parts
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["authorization-type", "authorization-value"]);
    let error = Notification::from_json(&r4("Bundle-r4-notification-error.json")).unwrap();
    assert_eq!(error.status.status, SubscriptionStatus::Error);
    assert_eq!(error.notification_type(), NotificationType::QueryStatus);
    assert_eq!(error.status.errors[0]["coding"][0]["code"], "no-response");
    let multi = Notification::from_json(&r4("Bundle-r4-notification-multi-resource.json")).unwrap();
    assert_eq!(multi.status.events[0].additional_context.len(), 1);
}

// REQ: SUB-08
#[test]
fn status_operation_answers_are_searchsets_of_query_status_parameters() {
    let original = derived("status-operation-response.json");
    let statuses = parse_status_bundle(&original).unwrap();
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].notification_type, NotificationType::QueryStatus);
    assert_eq!(statuses[0].subscription_id(), "admission");
    let built = status_bundle(
        &statuses,
        "https://sofa.example.org/fhir/Subscription/admission/$status",
        "b3f9c1de-0000-4000-8000-000000000001",
        "2024-01-15T10:00:00Z",
    );
    assert_same_shape(&built, &original, VALUES, &[]);
    assert_eq!(built, original);
    assert!(
        parse_status_bundle(&r4("Bundle-r4-notification-error.json"))
            .unwrap_err()
            .has("Bundle.type", IssueType::Value)
    );

    let query = StatusQuery::from_json(&json!({"resourceType": "Parameters", "parameter": [
        {"name": "id", "valueId": "a"}, {"name": "status", "valueCode": "active"}, {"name": "status", "valueCode": "error"}
    ]}))
    .unwrap();
    assert_eq!(
        query.statuses,
        [SubscriptionStatus::Active, SubscriptionStatus::Error]
    );
    assert_eq!(StatusQuery::from_json(&query.to_json()).unwrap(), query);
    assert!(StatusQuery::from_json(&json!({"resourceType": "Parameters", "parameter": [{"name": "status", "valueCode": "paused"}]})).is_err());
}

// REQ: SUB-07
#[test]
fn events_operation_input_and_query_event_output() {
    let query = EventsQuery::from_query([
        ("eventsSinceNumber", "2"),
        ("eventsUntilNumber", "3"),
        ("content", "id-only"),
    ])
    .unwrap();
    assert_eq!(
        query,
        EventsQuery {
            since: Some(2),
            until: Some(3),
            content: Some(PayloadContent::IdOnly)
        }
    );
    assert!(query.contains(2) && query.contains(3) && !query.contains(1) && !query.contains(4));
    assert_eq!(EventsQuery::from_json(&query.to_json()).unwrap(), query);
    let errors =
        EventsQuery::from_query([("eventsSinceNumber", "five"), ("_sinceEventNumber", "1")])
            .unwrap_err();
    assert_eq!(
        errors.locations(),
        [
            (
                "Parameters.parameter[0].valueString".to_owned(),
                IssueType::Value
            ),
            (
                "Parameters.parameter[1].name".to_owned(),
                IssueType::NotSupported
            ),
        ]
    );
    assert!(
        EventsQuery::from_query([("eventsSinceNumber", "4"), ("eventsUntilNumber", "3")]).is_err()
    );

    // The answer: a history Bundle of type query-event, built like any notification.
    let original = derived("events-operation-response.json");
    let read = Notification::from_json(&original).unwrap();
    assert_eq!(read.notification_type(), NotificationType::QueryEvent);
    let numbers: Vec<u64> = read.status.events.iter().map(|e| e.event_number).collect();
    assert_eq!(numbers, [2, 3]);
    let mut status = SubscriptionStatusParameters::new(
        "https://sofa.example.org/fhir/Subscription/admission",
        SubscriptionStatus::Active,
        NotificationType::QueryEvent,
    );
    status.id = Some("5e6f7a8b-0000-4000-8000-000000000004".into());
    status.topic = Some("http://hl7.org/SubscriptionTopic/admission".into());
    status.events_since_subscription_start = Some(3);
    for (number, at, id) in [
        (2, "2024-01-15T09:58:00.000Z", "enc-2"),
        (3, "2024-01-15T09:59:30.000Z", "enc-3"),
    ] {
        status.events.push(NotificationEvent::new(
            number,
            at,
            Some(format!("https://sofa.example.org/fhir/Encounter/{id}")),
        ));
    }
    let mut built = Notification::new(
        status,
        "https://sofa.example.org/fhir/Subscription/admission/$status",
    );
    built.id = Some("c4d2e3f4-0000-4000-8000-000000000003".into());
    built.timestamp = Some("2024-01-15T10:05:00Z".into());
    built.entries.push(NotificationEntry::updated(
        "https://sofa.example.org/fhir/Encounter/enc-2",
        "Encounter",
        "enc-2",
        None,
    ));
    built.entries.push(NotificationEntry::created(
        "https://sofa.example.org/fhir/Encounter/enc-3",
        "Encounter",
        None,
    ));
    assert_same_shape(&built.to_json(), &original, VALUES, &[]);
    assert_eq!(built.to_json(), original);
}

// REQ: SUB-09
#[test]
fn websocket_binding_token_and_bind_messages() {
    let original = derived("get-ws-binding-token-response.json");
    let token = BindingToken::from_json(&original).unwrap();
    assert_eq!(token.subscriptions, ["admission-ws"]);
    assert_eq!(
        token.websocket_url,
        "wss://sofa.example.org/fhir/ws/subscriptions"
    );
    assert_same_shape(&token.to_json(), &original, VALUES, &[]);
    assert_eq!(token.to_json(), original);
    // Some servers send `subscription` as a Reference; the id is still read.
    let mut as_reference = original.clone();
    as_reference["parameter"][2] = json!({"name": "subscription", "valueReference": {"reference": "Subscription/admission-ws"}});
    assert_eq!(
        BindingToken::from_json(&as_reference)
            .unwrap()
            .subscriptions,
        ["admission-ws"]
    );
    let mut no_url = original;
    no_url["parameter"].as_array_mut().unwrap().pop();
    assert!(
        BindingToken::from_json(&no_url)
            .unwrap_err()
            .has("Parameters.parameter", IssueType::Required)
    );

    assert_eq!(
        parse_binding_token_input(&binding_token_input(&["a", "b"])).unwrap(),
        ["a", "b"]
    );
    let token = "5b1c0d2e-9f8a-4b7c-8d6e-5f4a3b2c1d0e";
    for frame in [
        format!("bind-with-token {token}"),
        format!("bind-with-token: {token}"),
        format!("bind-with-token:{token}\n"),
        format!(r#"{{"type": "bind-with-token", "payload": {{"token": "{token}"}}}}"#),
    ] {
        assert_eq!(
            parse_bind_message(&frame).as_deref(),
            Some(token),
            "{frame}"
        );
    }
    for frame in [
        "bind-with-token",
        "bind-with-tokenabc",
        "bind abc",
        "bind-with-token a b",
        r#"{"type":"ping"}"#,
        "{",
    ] {
        assert_eq!(parse_bind_message(frame), None, "{frame}");
    }
}

#[test]
fn the_sofa_topic_has_the_shape_of_the_igs_basic_topic() {
    let topic = sofa_content_update_topic(&SupportedTypes::default(), "2024-01-15");
    let example = r4("Basic-r4-encounter-complete.json");
    // Every element the SoFA topic uses appears in the IG's Basic form (indices and values
    // aside), and the identifying extensions carry the D-01 URL.
    let shape = |v: &Value| -> std::collections::BTreeSet<String> {
        support::paths(v, &["url"], &[])
            .into_iter()
            .map(|p| {
                p.split('[')
                    .map(|s| s.split_once(']').map_or(s, |(_, rest)| rest))
                    .collect::<Vec<_>>()
                    .join("[]")
            })
            .collect()
    };
    let ours = shape(&topic);
    let theirs = shape(&example);
    let extra: Vec<_> = ours.difference(&theirs).collect();
    assert!(extra.is_empty(), "{extra:#?}");
    assert_eq!(topic["extension"][0]["valueUri"], SOFA_CONTENT_UPDATE_TOPIC);
    assert_eq!(topic["code"], example["code"]);
    let triggers = topic["extension"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["url"].as_str().unwrap().ends_with("resourceTrigger"))
        .count();
    assert_eq!(triggers, 19);
}
