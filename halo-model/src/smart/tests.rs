//! Tests of the SMART documents against the specification's own examples and a deployed HALO
//! authorization server's token response (`fixtures/`).

use serde_json::{Value, json};
use url::Url;

use super::*;

macro_rules! fixture {
    ($path:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/", $path)).as_slice()
    };
}

const CONFIGURATIONS: &[(&str, &[u8])] = &[
    (
        "conformance",
        fixture!("smart/smart-configuration.conformance.json"),
    ),
    (
        "app-launch-example",
        fixture!("smart/smart-configuration.app-launch-example.json"),
    ),
    (
        "asymmetric-minimal",
        fixture!("smart/smart-configuration.asymmetric-minimal.json"),
    ),
    (
        "backend-services",
        fixture!("smart/smart-configuration.backend-services.json"),
    ),
];

/// Full token responses (with `access_token` and `token_type`).
const TOKEN_RESPONSES: &[(&str, &[u8])] = &[
    ("public", fixture!("smart/token-response.public.json")),
    (
        "public.refresh",
        fixture!("smart/token-response.public.refresh.json"),
    ),
    (
        "asymmetric",
        fixture!("smart/token-response.asymmetric.json"),
    ),
    (
        "asymmetric.refresh",
        fixture!("smart/token-response.asymmetric.refresh.json"),
    ),
    ("symmetric", fixture!("smart/token-response.symmetric.json")),
    (
        "symmetric.refresh",
        fixture!("smart/token-response.symmetric.refresh.json"),
    ),
    (
        "backend-services",
        fixture!("smart/token-response.backend-services.json"),
    ),
    (
        "v2.2 authorization_details",
        fixture!("smart/v2.2-only.token-response.authorization_details.json"),
    ),
    (
        "zedwerks",
        fixture!("halo/third-party-zedwerks/halo-smart-token-response.redacted.json"),
    ),
];

/// Launch-context snippets of token responses from the specification's context page: they carry
/// no `token_type` (and mostly no `access_token`), so they are read as launch contexts.
const CONTEXT_SNIPPETS: &[(&str, &[u8])] = &[
    (
        "launch-context-fhirContext",
        fixture!("smart/token-response.launch-context-fhirContext.json"),
    ),
    (
        "fhirContext-med-reconciliation",
        fixture!("smart/token-response.fhirContext-med-reconciliation.json"),
    ),
    (
        "v2.2 fhirContext-canonical",
        fixture!("smart/v2.2-only.token-response.fhirContext-canonical.json"),
    ),
];

const INTROSPECTION: &[u8] = fixture!("smart/introspection-response.json");
const ZEDWERKS: &[u8] =
    fixture!("halo/third-party-zedwerks/halo-smart-token-response.redacted.json");

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

fn conformance() -> SmartConfiguration {
    SmartConfiguration::from_json(CONFIGURATIONS[0].1).unwrap()
}

fn problems_of(value: Value) -> Vec<ConfigurationProblem> {
    match SmartConfiguration::from_value(value).unwrap().validate() {
        Ok(()) => Vec::new(),
        Err(problems) => problems,
    }
}

// ---------------------------------------------------------------- smart-configuration (CTX-03)

#[test]
fn every_configuration_fixture_parses_and_round_trips() {
    // REQ: CTX-03
    for (name, bytes) in CONFIGURATIONS {
        let config = SmartConfiguration::from_json(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let written = serde_json::to_value(&config).unwrap();
        assert_eq!(written, json_of(bytes), "{name} did not round-trip");
        let via_serde: SmartConfiguration = serde_json::from_slice(bytes).unwrap();
        assert_eq!(
            via_serde, config,
            "{name}: Deserialize and from_json disagree"
        );
    }
}

#[test]
fn conformance_example_is_typed_and_valid() {
    // REQ: CTX-03
    let config = conformance();
    assert_eq!(config.issuer.as_deref(), Some("https://ehr.example.com"));
    assert_eq!(
        config.token_endpoint.as_deref(),
        Some("https://ehr.example.com/auth/token")
    );
    assert_eq!(
        config.grant_types_supported,
        ["authorization_code", "client_credentials"]
    );
    assert_eq!(
        config.capabilities,
        [
            Capability::LaunchEhr,
            Capability::PermissionPatient,
            Capability::PermissionV2,
            Capability::ClientPublic,
            Capability::ClientConfidentialSymmetric,
            Capability::ContextEhrPatient,
            Capability::SsoOpenidConnect,
        ]
    );
    assert!(config.supports(&Capability::SsoOpenidConnect));
    assert!(!config.supports(&Capability::LaunchStandalone));
    assert!(config.supports_auth_method("private_key_jwt"));
    assert!(config.extra.is_empty());
    assert_eq!(config.validate(), Ok(()));
}

#[test]
fn legacy_capability_names_are_kept_and_understood() {
    // REQ: CTX-03
    let config = SmartConfiguration::from_json(CONFIGURATIONS[1].1).unwrap();
    assert!(
        config
            .capabilities
            .contains(&Capability::Other("context-passthrough-banner".into()))
    );
    assert!(config.supports(&Capability::ContextBanner));
    assert!(config.supports(&Capability::ContextStyle));
    assert!(config.supports(&Capability::AuthorizePost));
    assert!(!config.supports(&Capability::SsoOpenidConnect));
    // Written back under the names the server used.
    let written = serde_json::to_value(&config).unwrap();
    assert!(
        written["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("context-passthrough-style"))
    );
    assert_eq!(config.validate(), Ok(()));
}

#[test]
fn every_named_capability_round_trips_through_its_string() {
    // REQ: CTX-03
    let mut count = 0;
    for capability in Capability::all_named() {
        let name = capability.as_str();
        assert!(!name.is_empty());
        assert_eq!(&Capability::from(name), capability);
        assert_eq!(serde_json::to_value(capability).unwrap(), json!(name));
        count += 1;
    }
    assert_eq!(count, 20);
    let uri = "https://infoway-inforoute.ca/halo/capability/sofa";
    assert_eq!(Capability::from(uri), Capability::Other(uri.into()));
    assert_eq!(Capability::from(uri).as_str(), uri);
}

#[test]
fn fragments_report_every_missing_requirement() {
    // REQ: CTX-03
    let minimal = problems_of(json_of(CONFIGURATIONS[2].1));
    assert_eq!(
        minimal,
        [
            ConfigurationProblem::MissingField("authorization_endpoint"),
            ConfigurationProblem::MissingField("grant_types_supported"),
            ConfigurationProblem::MissingField("capabilities"),
            ConfigurationProblem::MissingField("code_challenge_methods_supported"),
        ]
    );
    let backend = problems_of(json_of(CONFIGURATIONS[3].1));
    assert_eq!(
        backend,
        [
            ConfigurationProblem::MissingField("authorization_endpoint"),
            ConfigurationProblem::AuthorizationCodeGrantMissing,
            ConfigurationProblem::MissingField("code_challenge_methods_supported"),
        ]
    );
}

#[test]
fn validation_catches_each_missing_required_field() {
    // REQ: CTX-03
    for field in [
        "authorization_endpoint",
        "token_endpoint",
        "grant_types_supported",
        "capabilities",
        "code_challenge_methods_supported",
    ] {
        let mut doc = json_of(CONFIGURATIONS[0].1);
        doc.as_object_mut().unwrap().remove(field);
        assert_eq!(
            problems_of(doc),
            [ConfigurationProblem::MissingField(field)],
            "{field}"
        );
        // An empty array does not satisfy a required array either; null reads as absent.
        let mut doc = json_of(CONFIGURATIONS[0].1);
        let emptied = if doc[field].is_array() {
            json!([])
        } else {
            Value::Null
        };
        doc[field] = emptied;
        assert_eq!(
            problems_of(doc),
            [ConfigurationProblem::MissingField(field)],
            "{field}"
        );
    }
}

#[test]
fn validation_requires_s256_and_refuses_plain() {
    // REQ: CTX-03
    let with_methods = |methods: Value| {
        let mut doc = json_of(CONFIGURATIONS[0].1);
        doc["code_challenge_methods_supported"] = methods;
        problems_of(doc)
    };
    assert_eq!(
        with_methods(json!(["S256", "plain"])),
        [ConfigurationProblem::PlainAdvertised]
    );
    assert_eq!(
        with_methods(json!(["S256", "PLAIN"])),
        [ConfigurationProblem::PlainAdvertised]
    );
    assert_eq!(
        with_methods(json!(["plain"])),
        [
            ConfigurationProblem::S256Missing,
            ConfigurationProblem::PlainAdvertised
        ]
    );
    // Method names are case-sensitive (RFC 7636): `s256` is not `S256`.
    assert_eq!(
        with_methods(json!(["s256"])),
        [ConfigurationProblem::S256Missing]
    );
}

#[test]
fn validation_requires_authorization_code_grant() {
    // REQ: CTX-03
    let mut doc = json_of(CONFIGURATIONS[0].1);
    doc["grant_types_supported"] = json!(["client_credentials"]);
    assert_eq!(
        problems_of(doc),
        [ConfigurationProblem::AuthorizationCodeGrantMissing]
    );
}

#[test]
fn openid_connect_needs_issuer_and_jwks_uri() {
    // REQ: CTX-03
    let mut doc = json_of(CONFIGURATIONS[0].1);
    let map = doc.as_object_mut().unwrap();
    map.remove("issuer");
    map.remove("jwks_uri");
    let problems = problems_of(doc);
    assert_eq!(
        problems,
        [
            ConfigurationProblem::ConditionalFieldMissing {
                field: "issuer",
                capability: "sso-openid-connect"
            },
            ConfigurationProblem::ConditionalFieldMissing {
                field: "jwks_uri",
                capability: "sso-openid-connect"
            },
        ]
    );
    assert!(problems[0].to_string().contains("sso-openid-connect"));
}

#[test]
fn relative_endpoints_resolve_against_the_fhir_base() {
    // REQ: CTX-03
    let mut doc = json_of(CONFIGURATIONS[0].1);
    doc["authorization_endpoint"] = json!("auth/authorize");
    doc["token_endpoint"] = json!("/auth/token");
    doc["jwks_uri"] = json!("../keys.json");
    doc["associated_endpoints"] = json!([{"url": "state", "capabilities": ["smart-app-state"]}]);
    let mut config = SmartConfiguration::from_value(doc).unwrap();
    let relative = config.validate().unwrap_err();
    assert!(
        relative.contains(&ConfigurationProblem::EndpointNotAbsolute {
            field: "token_endpoint",
            value: "/auth/token".into()
        })
    );
    assert_eq!(relative.len(), 4);

    let mut with_slash = config.clone();
    config.resolve_endpoints(&Url::parse("https://ehr.example.com/fhir/r4").unwrap());
    with_slash.resolve_endpoints(&Url::parse("https://ehr.example.com/fhir/r4/").unwrap());
    assert_eq!(
        config, with_slash,
        "a trailing slash on the base changes nothing"
    );
    assert_eq!(
        config.authorization_endpoint.as_deref(),
        Some("https://ehr.example.com/fhir/r4/auth/authorize")
    );
    assert_eq!(
        config.token_endpoint.as_deref(),
        Some("https://ehr.example.com/auth/token")
    );
    assert_eq!(
        config.jwks_uri.as_deref(),
        Some("https://ehr.example.com/fhir/keys.json")
    );
    assert_eq!(
        config.associated_endpoints[0].url,
        "https://ehr.example.com/fhir/r4/state"
    );
    // Absolute URLs and the issuer identifier are left alone.
    assert_eq!(
        config.revocation_endpoint.as_deref(),
        Some("https://ehr.example.com/user/revoke")
    );
    assert_eq!(config.issuer.as_deref(), Some("https://ehr.example.com"));
    assert_eq!(config.validate(), Ok(()));
}

#[test]
fn unknown_configuration_keys_survive_a_round_trip() {
    // REQ: CTX-03
    let mut doc = json_of(CONFIGURATIONS[0].1);
    doc["x-vendor-max-age"] = json!(3600);
    doc["x-vendor-ratio"] = serde_json::from_str("1.50").unwrap();
    doc["x-vendor-nested"] = json!({"a": [1, {"b": null}]});
    doc["user_access_brand_identifier"] = json!({"system": "urn:ietf:rfc:3986", "value": "x"});
    doc["associated_endpoints"] = json!([{"url": "https://ehr.example.com/state", "capabilities": ["smart-app-state"], "x": 1}]);
    let config = SmartConfiguration::from_value(doc.clone()).unwrap();
    assert_eq!(config.extra.len(), 3);
    assert_eq!(
        config.associated_endpoints[0].capabilities,
        [Capability::SmartAppState]
    );
    let text = serde_json::to_string(&config).unwrap();
    assert!(
        text.contains("\"x-vendor-ratio\":1.50"),
        "decimal rewritten: {text}"
    );
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), doc);
    assert_eq!(
        SmartConfiguration::from_json(text.as_bytes()).unwrap(),
        config
    );
}

#[test]
fn malformed_configuration_gives_typed_errors() {
    // REQ: CTX-03
    let err = SmartConfiguration::from_json(b"{\"token_endpoint\": ").unwrap_err();
    assert!(
        matches!(err, SmartDocumentError::InvalidJson { .. }),
        "{err}"
    );
    assert_eq!(err.code(), "smart.invalid-json");

    let err = SmartConfiguration::from_json(b"[]").unwrap_err();
    assert_eq!(
        err.to_string(),
        "the smart-configuration document must be a JSON object, but it is an array"
    );

    let err = SmartConfiguration::from_json(br#"{"capabilities": "launch-ehr"}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`capabilities` in the smart-configuration document must be an array of strings, but it is a string"
    );
    let err = SmartConfiguration::from_json(br#"{"capabilities": ["launch-ehr", 7]}"#).unwrap_err();
    assert!(
        matches!(&err, SmartDocumentError::InvalidField { field, .. } if field == "capabilities[1]")
    );
    let err = SmartConfiguration::from_json(br#"{"token_endpoint": 7}"#).unwrap_err();
    assert_eq!(err.code(), "smart.invalid-field");
    let err = SmartConfiguration::from_json(br#"{"associated_endpoints": [{"capabilities": []}]}"#)
        .unwrap_err();
    assert!(err.to_string().contains("associated_endpoints[0]"), "{err}");
}

// ------------------------------------------------------------------- token response (CTX-01)

#[test]
fn every_token_response_fixture_parses_and_round_trips() {
    // REQ: CTX-01
    for (name, bytes) in TOKEN_RESPONSES {
        let token = TokenResponse::from_json(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(token.is_bearer(), "{name}");
        assert!(token.expires_in.is_some(), "{name}");
        let mut original = json_of(bytes);
        // The deployed server quotes the boolean; it is written back as a JSON boolean.
        if original["need_patient_banner"] == json!("true") {
            original["need_patient_banner"] = json!(true);
        }
        assert_eq!(
            serde_json::to_value(&token).unwrap(),
            original,
            "{name} did not round-trip"
        );
        let via_serde: TokenResponse = serde_json::from_slice(bytes).unwrap();
        assert_eq!(via_serde, token, "{name}");
    }
}

#[test]
fn spec_token_response_is_typed() {
    // REQ: CTX-01
    let token = TokenResponse::from_json(TOKEN_RESPONSES[0].1).unwrap();
    assert_eq!(token.token_type, "Bearer");
    assert_eq!(token.expires_in, Some(3600));
    assert_eq!(
        token.granted_scopes().collect::<Vec<_>>(),
        [
            "launch/patient",
            "patient/Observation.rs",
            "patient/Patient.rs"
        ]
    );
    assert!(token.access_token.starts_with("eyJhbGciOiJIUzI1NiIs"));
    assert!(token.refresh_token.is_some());
    assert_eq!(token.id_token, None);
    let context = token.launch_context();
    assert_eq!(
        context.patient_id(),
        Some("87a339d0-8cae-418e-89c7-8651e6aab3c6")
    );
    assert_eq!(context.need_patient_banner, Some(true));
    assert_eq!(
        context.smart_style_url.as_deref(),
        Some("https://smart.argo.run/smart-style.json")
    );
    assert!(context.fhir_context.is_empty());
    assert!(token.extra.is_empty());
}

#[test]
fn deployed_halo_token_response_is_read_leniently() {
    // REQ: CTX-01
    let token = TokenResponse::from_json(ZEDWERKS).unwrap();
    assert_eq!(token.need_patient_banner, Some(true));
    assert_eq!(token.id_token.as_deref(), Some("<redacted-jwt>"));
    assert_eq!(token.intent.as_deref(), Some("medication-review"));
    let context = token.launch_context();
    assert_eq!(
        context.patient.as_deref(),
        Some("Patient/85cbce29-3e93-4740-9ef9-ed33b37a47fc")
    );
    assert_eq!(
        context.patient_id(),
        Some("85cbce29-3e93-4740-9ef9-ed33b37a47fc")
    );
    assert_eq!(
        context.encounter_id(),
        Some("ed869eee-62c4-4ea0-a586-3e07c6394d1b")
    );
    assert_eq!(context.fhir_context.len(), 4);
    assert_eq!(context.items_of_type("Location").count(), 1);
    assert_eq!(context.items_with_role("launch").count(), 4);
    // Keycloak's own keys are kept on the response but are not launch context.
    assert_eq!(
        token.extra.keys().collect::<Vec<_>>(),
        ["refresh_expires_in", "not-before-policy", "session_state"]
    );
    assert!(context.extra.is_empty());
}

#[test]
fn token_type_is_compared_without_case_and_kept_as_sent() {
    // REQ: CTX-01
    for (token_type, bearer) in [
        ("Bearer", true),
        ("bearer", true),
        ("BEARER", true),
        ("DPoP", false),
    ] {
        let body = json!({"access_token": "a", "token_type": token_type, "scope": "openid"});
        let token = TokenResponse::from_value(body).unwrap();
        assert_eq!(token.is_bearer(), bearer, "{token_type}");
        assert_eq!(
            serde_json::to_value(&token).unwrap()["token_type"],
            token_type
        );
    }
}

#[test]
fn v2_2_authorization_details_are_kept() {
    // REQ: CTX-01
    let token = TokenResponse::from_json(TOKEN_RESPONSES[7].1).unwrap();
    let details = token.extra["authorization_details"].as_array().unwrap();
    assert_eq!(details.len(), 2);
    assert_eq!(details[1]["patient"], "r2-456-id");
}

#[test]
fn token_response_requires_access_token_and_token_type() {
    // REQ: CTX-01
    let err = TokenResponse::from_json(br#"{"token_type": "Bearer"}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the token response has no `access_token`, which is required"
    );
    let err = TokenResponse::from_json(br#"{"access_token": "a"}"#).unwrap_err();
    assert!(matches!(
        err,
        SmartDocumentError::MissingField {
            field: "token_type",
            ..
        }
    ));
    let err =
        TokenResponse::from_json(br#"{"access_token": null, "token_type": "Bearer"}"#).unwrap_err();
    assert!(matches!(
        err,
        SmartDocumentError::MissingField {
            field: "access_token",
            ..
        }
    ));
}

#[test]
fn token_response_fields_with_the_wrong_shape_are_typed_errors() {
    // REQ: CTX-01
    let base = json!({"access_token": "sekrit-value", "token_type": "Bearer"});
    let with = |key: &str, value: Value| {
        let mut body = base.clone();
        body[key] = value;
        TokenResponse::from_value(body)
    };
    assert_eq!(
        with("expires_in", json!("300")).unwrap().expires_in,
        Some(300)
    );
    assert_eq!(
        with("need_patient_banner", json!("false"))
            .unwrap()
            .need_patient_banner,
        Some(false)
    );
    for (key, value, expected) in [
        ("expires_in", json!(-1), "a non-negative integer"),
        ("expires_in", json!(1.5), "a non-negative integer"),
        ("expires_in", json!("soon"), "a non-negative integer"),
        ("need_patient_banner", json!("yes"), "a boolean"),
        ("patient", json!(123), "a string"),
        ("fhirContext", json!({"reference": "List/1"}), "an array"),
    ] {
        let err = with(key, value).unwrap_err();
        match &err {
            SmartDocumentError::InvalidField {
                field, expected: e, ..
            } => {
                assert_eq!((field.as_str(), *e), (key, expected));
            }
            other => panic!("{key}: {other}"),
        }
    }
    let err = with("access_token", json!(42)).unwrap_err();
    assert!(!err.to_string().contains("42"));
    let err = with("refresh_token", json!(["sekrit-refresh"])).unwrap_err();
    assert!(!err.to_string().contains("sekrit"), "{err}");
}

#[test]
fn debug_output_redacts_tokens() {
    // REQ: CTX-01
    let mut token = TokenResponse::from_json(ZEDWERKS).unwrap();
    token.access_token = "AT-value-123".into();
    token.refresh_token = Some("RT-value-456".into());
    token.id_token = Some("IT-value-789".into());
    token
        .extra
        .insert("vendor_secret".into(), json!("XS-value-000"));
    let debug = format!("{token:?}");
    for secret in [
        "AT-value-123",
        "RT-value-456",
        "IT-value-789",
        "XS-value-000",
    ] {
        assert!(!debug.contains(secret), "{secret} leaked: {debug}");
    }
    assert!(debug.contains("<redacted>"));
    assert!(
        debug.contains("medication-review"),
        "non-secret fields still shown"
    );
    assert!(debug.contains("vendor_secret"), "unknown keys named");
    let pretty = format!("{token:#?}");
    assert!(!pretty.contains("AT-value-123"));
    // Fixture tokens never show either.
    let spec = TokenResponse::from_json(TOKEN_RESPONSES[0].1).unwrap();
    assert!(!format!("{spec:?}").contains(&spec.access_token));
}

#[test]
fn context_snippets_are_launch_contexts_not_token_responses() {
    // REQ: CTX-01
    for (name, bytes) in CONTEXT_SNIPPETS {
        let err = TokenResponse::from_json(bytes).unwrap_err();
        assert!(
            matches!(err, SmartDocumentError::MissingField { .. }),
            "{name}: {err}"
        );
        let context = LaunchContext::from_json(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(context.patient.as_deref(), Some("123"), "{name}");
        assert!(!context.fhir_context.is_empty(), "{name}");
    }
}

#[test]
fn server_written_context_reads_back_the_same() {
    // REQ: CTX-01
    let context = LaunchContext {
        patient: Some("p1".into()),
        encounter: Some("e1".into()),
        fhir_context: vec![
            FhirContextItem::reference("PractitionerRole/r1"),
            FhirContextItem::reference("List/1").with_role("https://example.org/med-list-at-home"),
        ],
        need_patient_banner: Some(false),
        smart_style_url: Some("https://sofa.example.ca/style.json".into()),
        intent: Some("reconcile-medications".into()),
        tenant: Some("org-7".into()),
        extra: [("__darkMode".to_owned(), json!(true))]
            .into_iter()
            .collect(),
    };
    let mut token = TokenResponse::bearer("opaque").with_launch_context(context.clone());
    token.expires_in = Some(300);
    token.scope = Some("launch openid fhirUser patient/*.rs".into());
    token.extra.insert("session_state".into(), json!("abc"));
    let written = serde_json::to_vec(&token).unwrap();
    let read = TokenResponse::from_json(&written).unwrap();
    assert_eq!(read, token);
    // Extension context (`__` and URI keys) comes back with the context; other keys do not.
    assert_eq!(read.launch_context(), context);
    assert!(LaunchContext::default().is_empty());
    assert!(!context.is_empty());
}

// ---------------------------------------------------------------------- fhirContext (CTX-02)

#[test]
fn fhir_context_accepts_every_published_form() {
    // REQ: CTX-02
    let token = TokenResponse::from_value(json!({
        "access_token": "a", "token_type": "Bearer",
        "fhirContext": [
            "Appointment/123",
            {"reference": "List/123", "role": "https://example.org/med-list-at-home"},
            {"canonical": "https://example.org/Questionnaire/123|v2023-05-03", "type": "Questionnaire"},
            {"identifier": {"system": "https://example.org/ids", "value": "42"}, "type": "ImagingStudy"}
        ]
    }))
    .unwrap();
    let items = &token.fhir_context;
    assert_eq!(items[0], FhirContextItem::reference("Appointment/123"));
    assert_eq!(items[0].effective_role(), "launch");
    assert_eq!(
        items[1].role.as_deref(),
        Some("https://example.org/med-list-at-home")
    );
    assert_eq!(items[1].resource_type(), Some("List"));
    assert_eq!(
        items[2],
        FhirContextItem::canonical(
            "https://example.org/Questionnaire/123|v2023-05-03",
            "Questionnaire"
        )
    );
    assert_eq!(items[3].identifier.as_ref().unwrap()["value"], "42");
    assert_eq!(items[3].resource_type(), Some("ImagingStudy"));
}

#[test]
fn fhir_context_is_written_in_the_object_form() {
    // REQ: CTX-02
    let context =
        LaunchContext::from_json(br#"{"fhirContext": ["Appointment/123", "Encounter/9"]}"#)
            .unwrap();
    let written = serde_json::to_value(&context).unwrap();
    assert_eq!(
        written,
        json!({"fhirContext": [{"reference": "Appointment/123"}, {"reference": "Encounter/9"}]})
    );
    let canonical = LaunchContext::from_json(CONTEXT_SNIPPETS[2].1).unwrap();
    assert_eq!(
        serde_json::to_value(&canonical).unwrap(),
        json_of(CONTEXT_SNIPPETS[2].1)
    );
    let item: FhirContextItem = serde_json::from_str(r#""Patient/1""#).unwrap();
    assert_eq!(
        serde_json::to_string(&item).unwrap(),
        r#"{"reference":"Patient/1"}"#
    );
}

#[test]
fn fhir_context_fixture_snippets_keep_roles() {
    // REQ: CTX-02
    let context = LaunchContext::from_json(CONTEXT_SNIPPETS[1].1).unwrap();
    let home: Vec<_> = context
        .items_with_role("https://example.org/med-list-at-home")
        .map(|i| i.reference.as_deref())
        .collect();
    assert_eq!(home, [Some("List/123")]);
    assert_eq!(context.items_of_type("List").count(), 2);
    assert_eq!(
        serde_json::to_value(&context).unwrap(),
        json_of(CONTEXT_SNIPPETS[1].1)
    );

    let plain = LaunchContext::from_json(CONTEXT_SNIPPETS[0].1).unwrap();
    assert_eq!(plain.items_with_role(context::DEFAULT_ROLE).count(), 2);
    // Read on its own, a snippet's unknown keys (here the access token) stay in `extra`.
    assert_eq!(plain.extra["access_token"], "secret-xyz");
}

#[test]
fn fhir_context_items_unknown_keys_survive() {
    // REQ: CTX-02
    let text =
        r#"{"fhirContext":[{"reference":"List/1","__label":"home","x":1.50}],"__darkMode":true}"#;
    let context = LaunchContext::from_json(text.as_bytes()).unwrap();
    assert_eq!(context.fhir_context[0].extra["__label"], "home");
    assert_eq!(serde_json::to_string(&context).unwrap(), text);
}

#[test]
fn malformed_fhir_context_items_name_their_position() {
    // REQ: CTX-02
    for (items, path) in [
        (json!(["List/1", 7]), "fhirContext[1]"),
        (json!([""]), "fhirContext[0]"),
        (json!([{"role": "https://example.org/r"}]), "fhirContext[0]"),
        (json!([{"reference": 5}]), "fhirContext[0].reference"),
        (
            json!([{"canonical": "https://x", "identifier": "42"}]),
            "fhirContext[0].identifier",
        ),
    ] {
        let err = TokenResponse::from_value(
            json!({"access_token": "a", "token_type": "Bearer", "fhirContext": items}),
        )
        .unwrap_err();
        match &err {
            SmartDocumentError::InvalidField { field, .. } => assert_eq!(field, path, "{err}"),
            other => panic!("{path}: {other}"),
        }
    }
    assert!(FhirContextItem::from_value(json!({"type": "List"})).is_err());
    assert!(serde_json::from_str::<FhirContextItem>("null").is_err());
}

// -------------------------------------------------------------------- introspection (CTX-04)

#[test]
fn introspection_fixture_parses_and_round_trips() {
    // REQ: CTX-04
    let response = IntrospectionResponse::from_json(INTROSPECTION).unwrap();
    assert!(response.active);
    assert_eq!(
        response.client_id.as_deref(),
        Some("07a89bd2-52ce-4576-8b85-71698efa8328")
    );
    assert_eq!(
        response.scopes().collect::<Vec<_>>(),
        ["patient/*.read", "openid", "fhirUser"]
    );
    assert_eq!(
        response.sub.as_deref(),
        Some("c91dfe96-731d-4e66-b4f9-01f8f8a4b7b2")
    );
    assert_eq!(
        response.fhir_user.as_deref(),
        Some("https://ehr.example.org/fhir/Patient/123")
    );
    assert_eq!(response.exp, Some(1_597_678_964));
    assert_eq!(response.launch_context().patient.as_deref(), Some("456"));
    assert!(response.extra.is_empty());
    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        json_of(INTROSPECTION)
    );
    assert_eq!(
        serde_json::from_slice::<IntrospectionResponse>(INTROSPECTION).unwrap(),
        response
    );
}

#[test]
fn inactive_token_is_exactly_active_false() {
    // REQ: CTX-04
    assert_eq!(
        serde_json::to_string(&IntrospectionResponse::inactive()).unwrap(),
        r#"{"active":false}"#
    );
    let read = IntrospectionResponse::from_json(br#"{"active": false}"#).unwrap();
    assert_eq!(read, IntrospectionResponse::inactive());
}

#[test]
fn introspection_carries_the_launch_context_and_jwt_claims() {
    // REQ: CTX-04
    let mut response = IntrospectionResponse::active("launch patient/*.rs", "app-1", 1_700_000_300);
    response.iat = Some(1_700_000_000);
    response.nbf = Some(1_700_000_000);
    response.iss = Some("https://sofa.example.ca".into());
    response.aud = Some(Audience::Many(vec![
        "https://sofa.example.ca/fhir".into(),
        "app-1".into(),
    ]));
    response.token_type = Some("Bearer".into());
    response.username = Some("dr.who".into());
    response.jti = Some("j-1".into());
    response
        .extra
        .insert("x-halo-launch".into(), json!({"n": 1}));
    response.set_launch_context(LaunchContext {
        patient: Some("p1".into()),
        fhir_context: vec![FhirContextItem::reference("Encounter/e1")],
        need_patient_banner: Some(true),
        ..LaunchContext::default()
    });
    let written = serde_json::to_value(&response).unwrap();
    assert_eq!(
        written["aud"],
        json!(["https://sofa.example.ca/fhir", "app-1"])
    );
    assert_eq!(
        written["fhirContext"],
        json!([{"reference": "Encounter/e1"}])
    );
    let read = IntrospectionResponse::from_value(written).unwrap();
    assert_eq!(read, response);
    assert!(read.aud.as_ref().unwrap().contains("app-1"));
    assert_eq!(read.launch_context().fhir_context.len(), 1);

    let single =
        IntrospectionResponse::from_value(json!({"active": true, "aud": "https://a"})).unwrap();
    assert_eq!(single.aud, Some(Audience::One("https://a".into())));
    assert_eq!(
        serde_json::to_value(&single).unwrap(),
        json!({"active": true, "aud": "https://a"})
    );
    let many: Audience = serde_json::from_str(r#"["a", "b"]"#).unwrap();
    assert!(many.contains("b") && !many.contains("c"));
    assert!(serde_json::from_str::<Audience>("[1]").is_err());
}

#[test]
fn malformed_introspection_gives_typed_errors() {
    // REQ: CTX-04
    let err = IntrospectionResponse::from_json(b"{}").unwrap_err();
    assert_eq!(
        err.to_string(),
        "the introspection response has no `active`, which is required"
    );
    // RFC 7662 says `active` is a boolean; a string is refused rather than guessed.
    let err = IntrospectionResponse::from_json(br#"{"active": "true"}"#).unwrap_err();
    assert!(matches!(err, SmartDocumentError::InvalidField { .. }));
    let err = IntrospectionResponse::from_json(br#"{"active": true, "exp": "soon"}"#).unwrap_err();
    assert!(err.to_string().contains("`exp`"), "{err}");
    let err =
        IntrospectionResponse::from_json(br#"{"active": true, "aud": ["a", 1]}"#).unwrap_err();
    assert!(err.to_string().contains("aud[1]"), "{err}");
}

// ------------------------------------------------------------------ hostile input never panics

mod hostile {
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    use super::super::*;

    /// Arbitrary JSON, biased towards the keys the documents know so the typed paths are hit.
    fn json() -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            Just("access_token".to_owned()),
            Just("token_type".to_owned()),
            Just("expires_in".to_owned()),
            Just("fhirContext".to_owned()),
            Just("need_patient_banner".to_owned()),
            Just("capabilities".to_owned()),
            Just("associated_endpoints".to_owned()),
            Just("active".to_owned()),
            Just("aud".to_owned()),
            Just("reference".to_owned()),
            Just("identifier".to_owned()),
            "[a-z_]{1,8}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..8)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_json_gives_a_document_or_a_typed_error(value in json()) {
            // REQ: CTX-01
            let bytes = value.to_string().into_bytes();
            if let Ok(token) = TokenResponse::from_json(&bytes) {
                // Whatever was read writes out and reads back the same.
                let again = TokenResponse::from_json(&serde_json::to_vec(&token).unwrap()).unwrap();
                prop_assert_eq!(again, token);
            }
            if let Ok(config) = SmartConfiguration::from_json(&bytes) {
                let _ = config.validate();
                let again = SmartConfiguration::from_json(&serde_json::to_vec(&config).unwrap()).unwrap();
                prop_assert_eq!(again, config);
            }
            if let Ok(response) = IntrospectionResponse::from_json(&bytes) {
                let again = IntrospectionResponse::from_json(&serde_json::to_vec(&response).unwrap()).unwrap();
                prop_assert_eq!(again, response);
            }
            let _ = LaunchContext::from_json(&bytes);
            let _ = crate::oauth::OAuthError::from_json(&bytes);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            // REQ: CTX-03
            let _ = SmartConfiguration::from_json(&bytes);
            let _ = TokenResponse::from_json(&bytes);
            let _ = IntrospectionResponse::from_json(&bytes);
        }
    }
}
