//! Protocol documents (halo-model): scopes, SMART documents, `$set-context`, notifications and
//! the bounded JSON reader in front of all of them.

use arbitrary::{Arbitrary, Unstructured};
use halo_model::fhir::{JsonLimits, json_depth, parse_json};
use halo_model::scope::{Scope, ScopeSet};
use halo_model::set_context::{
    ClearContextOutput, SetContextOutput, SetContextRequest, ValidationOptions,
    parse_clear_context_input, references_in,
};
use halo_model::smart::{IntrospectionResponse, SmartConfiguration, TokenResponse};
use halo_model::subscription::{Notification, PayloadContent};
use halo_smart_client::discovery::check_discovery;
use halo_smart_client::introspection::read_introspection_response;
use halo_smart_client::launch::IssuerPolicy;
use halo_smart_client::token::{oauth_error, read_token_response};
use serde_json::{Value, json};
use url::Url;

use crate::structured::{Json, Vocabulary, pick};
use crate::text;

/// A scope string as found in a token response, a catalog entry or an authorize request. A scope
/// that parses is written back and must parse again to a scope of the same meaning.
pub(crate) fn scope(data: &[u8]) {
    let text = text(data);
    let (set, _errors) = ScopeSet::parse_lenient(&text);
    let strict = ScopeSet::parse(&text);
    if let Ok(strict) = &strict {
        assert_eq!(strict.len(), set.len());
    }
    for scope in set.iter() {
        let written = scope.to_string();
        match Scope::parse(&written) {
            Ok(again) => assert!(
                again.equivalent(scope),
                "{written:?} means something else once re-read"
            ),
            Err(e) => panic!("{written:?}, written from {text:?}, does not parse: {e}"),
        }
    }
    let written = set.to_string();
    let Ok(again) = ScopeSet::parse(&written) else {
        panic!("the set {written:?} does not parse once written");
    };
    let _ = set.context_types();
    let _ = set.has_launch();
    let _ = set.union(&again);
    let _ = set.intersection(&again);
    let _ = set.not_granted(&again);
}

/// `.well-known/smart-configuration` as a SMART app discovers it: the document, then the
/// client's discovery checks on it.
pub(crate) fn smart_configuration(data: &[u8]) {
    let _ = check_discovery(crate::smart_client::ISSUER, 200, data, &IssuerPolicy::new());
    let Ok(mut configuration) = SmartConfiguration::from_json(data) else {
        return;
    };
    let _ = configuration.validate();
    if let Ok(base) = Url::parse("https://ehr.example.org/fhir/r4/") {
        configuration.resolve_endpoints(&base);
    }
    let _ = configuration.validate();
}

/// A token endpoint's answer, with the launch context and scopes read from it, as the document
/// and as the client reads it (a success, or an OAuth error).
pub(crate) fn token_response(data: &[u8]) {
    let _ = read_token_response(200, Some("application/json"), data);
    let _ = read_token_response(400, None, data);
    let _ = oauth_error(data);
    let Ok(token) = TokenResponse::from_json(data) else {
        return;
    };
    let context = token.launch_context();
    let _ = context.patient_id();
    let _ = context.encounter_id();
    let _ = ScopeSet::parse_lenient(&token.granted_scopes().collect::<Vec<_>>().join(" "));
    let mut rewritten = token.clone();
    rewritten.set_launch_context(context);
    if let Ok(written) = serde_json::to_vec(&rewritten) {
        assert!(
            TokenResponse::from_json(&written).is_ok(),
            "a token response does not parse once written"
        );
    }
}

/// A token introspection answer (RFC 7662 with the SMART additions), as the document and as
/// the client reads it.
pub(crate) fn introspection(data: &[u8]) {
    let _ = read_introspection_response(200, data);
    let Ok(response) = IntrospectionResponse::from_json(data) else {
        return;
    };
    let context = response.launch_context();
    let _ = context.items_of_type("Patient").count();
    let _ = response.scopes().count();
    if let Ok(written) = serde_json::to_vec(&response) {
        assert!(
            IntrospectionResponse::from_json(&written).is_ok(),
            "an introspection response does not parse once written"
        );
    }
}

/// A `$set-context` body as the SoFA reads it: bounded JSON, then the Parameters and its
/// transaction Bundle. A request that parses is written back and must parse again. The same value
/// goes through the other `$set-context` and `$clear-context` readers.
pub(crate) fn set_context(data: &[u8]) {
    let Ok(body) = parse_json(data, JsonLimits::default()) else {
        return;
    };
    set_context_value(&body);
}

fn set_context_value(body: &Value) {
    let options = ValidationOptions::default();
    if let Ok(request) = SetContextRequest::parse(body, &options) {
        let written = request.to_json();
        if let Err(e) = SetContextRequest::parse(&written, &options) {
            panic!("a valid request fails once written: {e:?}\n{written}");
        }
        let _ = request.context_references();
        let _ = request.existing_references();
        for entry in &request.resources {
            let _ = references_in(&entry.resource);
        }
    }
    let _ = SetContextOutput::parse(body);
    let _ = parse_clear_context_input(body);
    let _ = ClearContextOutput::parse(body);
    let _ = references_in(body);
}

/// One `$set-context` input parameter, shaped like the profile's.
#[derive(Debug, Arbitrary)]
struct Parameter {
    name: u16,
    value: ParameterValue,
}

#[derive(Debug, Arbitrary)]
enum ParameterValue {
    Reference { reference: u16, kind: Option<u16> },
    String(u16),
    Boolean(bool),
    Resources(Vec<Entry>),
    Other(Json),
}

/// One transaction Bundle entry.
#[derive(Debug, Arbitrary)]
struct Entry {
    full_url: u16,
    resource_type: u16,
    members: Vec<(u16, Json)>,
    method: u16,
    url: u16,
}

/// A Parameters body made of the profile's parameter names, references to bundled and existing
/// resources, and a transaction Bundle of resources, so most inputs reach the cross-checks.
pub(crate) fn set_context_structured(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(parameters) = Vec::<Parameter>::arbitrary(&mut u) else {
        return;
    };
    let parameters: Vec<Value> = parameters.iter().map(parameter_json).collect();
    let body = json!({
        "resourceType": "Parameters",
        "meta": {"profile": [
            "http://fhir.infoway-inforoute.ca/io/HALO/StructureDefinition/set-context-input-parameters"
        ]},
        "parameter": parameters,
    });
    set_context_value(&body);
}

fn parameter_json(parameter: &Parameter) -> Value {
    let name = pick(PARAMETER_NAMES, parameter.name);
    match &parameter.value {
        ParameterValue::Reference { reference, kind } => {
            let mut value = json!({"reference": pick(REFERENCES, *reference)});
            if let Some(kind) = kind {
                value["type"] = json!(pick(RESOURCE_TYPES, *kind));
            }
            json!({"name": name, "valueReference": value})
        }
        ParameterValue::String(s) => json!({"name": name, "valueString": pick(STRINGS, *s)}),
        ParameterValue::Boolean(b) => json!({"name": name, "valueBoolean": b}),
        ParameterValue::Resources(entries) => json!({
            "name": name,
            "resource": {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": entries.iter().map(entry_json).collect::<Vec<_>>(),
            }
        }),
        ParameterValue::Other(value) => {
            let mut object = serde_json::Map::new();
            object.insert("name".into(), json!(name));
            object.insert(
                pick(VALUE_KEYS, parameter.name.rotate_left(8)).to_owned(),
                FHIR.value(value),
            );
            Value::Object(object)
        }
    }
}

fn entry_json(entry: &Entry) -> Value {
    let mut resource = serde_json::Map::new();
    resource.insert(
        "resourceType".into(),
        json!(pick(RESOURCE_TYPES, entry.resource_type)),
    );
    for (key, value) in &entry.members {
        resource.insert(pick(FHIR.keys, *key).to_owned(), FHIR.value(value));
    }
    json!({
        "fullUrl": pick(REFERENCES, entry.full_url),
        "resource": resource,
        "request": {"method": pick(&["POST", "PUT", "GET", "DELETE", ""], entry.method),
                    "url": pick(REFERENCES, entry.url)},
    })
}

const PARAMETER_NAMES: &[&str] = &[
    "appID",
    "patient",
    "encounter",
    "fhirUser",
    "fhirContext",
    "need_patient_banner",
    "intent",
    "smart_style_url",
    "tenant",
    "resources",
    "launchID",
    "Patient",
    "",
];

const VALUE_KEYS: &[&str] = &[
    "valueString",
    "valueReference",
    "valueBoolean",
    "valueUrl",
    "valueUri",
    "resource",
    "part",
    "valueCode",
];

pub(crate) const RESOURCE_TYPES: &[&str] = &[
    "Patient",
    "Encounter",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Location",
    "Observation",
    "Condition",
    "MedicationRequest",
    "AllergyIntolerance",
    "Immunization",
    "DocumentReference",
    "ServiceRequest",
    "Bundle",
    "Parameters",
    "Binary",
    "Basic",
    "Subscription",
    "patient",
    "",
];

pub(crate) const REFERENCES: &[&str] = &[
    "urn:uuid:d12004a7-5ed5-41ab-a8f2-0de5f0c98847",
    "urn:uuid:e753f568-6faf-4a9e-aec8-fe0d2a4f397c",
    "urn:uuid:D12004A7-5ed5-41ab-a8f2-0de5f0c98847",
    "urn:uuid:",
    "Patient/d12004a7-5ed5-41ab-a8f2-0de5f0c98847",
    "Patient/123",
    "Encounter/e1",
    "PractitionerRole/pr-1",
    "Practitioner/1/_history/2",
    "https://sofa.example.org/fhir/Patient/1",
    "Patient",
    "Patient?identifier=x",
    "#p1",
    "Patient/é",
    "/Patient/1",
    "Patient/",
    "",
];

const STRINGS: &[&str] = &[
    "459-L",
    "reconcile-medications",
    "https://ehr.example.org/styles/smart_v1.json",
    "javascript:alert(1)",
    "http://localhost/style.json",
    "https:///style.json",
    "data:text/css,x",
    "tenant-1",
    "",
    "é",
];

/// FHIR element names and values, for the resources inside generated Bundles.
pub(crate) static FHIR: Vocabulary = Vocabulary {
    keys: &[
        "resourceType",
        "id",
        "meta",
        "profile",
        "extension",
        "url",
        "valueString",
        "valueCode",
        "valueReference",
        "status",
        "code",
        "coding",
        "system",
        "display",
        "text",
        "subject",
        "patient",
        "reference",
        "type",
        "birthDate",
        "deceasedDateTime",
        "deceasedBoolean",
        "gender",
        "name",
        "family",
        "given",
        "identifier",
        "value",
        "telecom",
        "contained",
        "class",
        "period",
        "start",
        "end",
        "effectiveDateTime",
        "valueQuantity",
        "unit",
        "category",
        "intent",
        "medicationCodeableConcept",
        "clinicalStatus",
        "verificationStatus",
        "div",
        "active",
        "_birthDate",
        "entry",
        "resource",
        "fullUrl",
        "request",
        "method",
        "parameter",
    ],
    strings: &[
        "Patient",
        "Encounter",
        "Observation",
        "final",
        "in-progress",
        "female",
        "woman",
        "2024-01-01",
        "2024-02-30",
        "2024-01-01T10:00:00+1é00",
        "2024-01-01T10:00:00Z",
        "2024-01-01T10:00:00",
        "10:00:00",
        "1é:00",
        "20245",
        "2024é",
        "http://loinc.org",
        "8867-4",
        "http://terminology.hl7.org/CodeSystem/v3-ActCode",
        "IMP",
        "Patient/123",
        "#p1",
        "urn:uuid:d12004a7-5ed5-41ab-a8f2-0de5f0c98847",
        "urn:oid:2.16.840.1",
        "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>",
        "http://hl7.org/fhir/StructureDefinition/Patient",
        "http://hl7.org/fhir/ca/baseline/StructureDefinition/profile-patient",
        "",
        " ",
        "é",
    ],
};

/// A notification Bundle as `halo-poc` reads it from a rest-hook POST or a websocket frame:
/// bounded JSON, then the R4 Backport notification, then what the receiver looks at.
pub(crate) fn notification(data: &[u8]) {
    let Ok(json) = parse_json(data, JsonLimits::default()) else {
        return;
    };
    let Ok(notification) = Notification::from_json(&json) else {
        return;
    };
    let _ = notification.status.subscription_id();
    let _ = notification.notification_type();
    for content in [
        PayloadContent::Empty,
        PayloadContent::IdOnly,
        PayloadContent::FullResource,
    ] {
        let _ = notification.check_content(content);
    }
    let written = notification.to_json();
    if let Err(e) = Notification::from_json(&written) {
        panic!("a notification fails once written: {e:?}\n{written}");
    }
}

/// The bounded JSON reader every network body goes through: whatever it accepts is within the
/// limits, and it never recurses deeper than its depth limit.
pub(crate) fn json_limits(data: &[u8]) {
    let (limits_byte, body) = data.split_first().unwrap_or((&0, &[]));
    let limits = JsonLimits {
        max_bytes: 64 + usize::from(limits_byte & 0x0f) * 256,
        max_depth: 1 + usize::from(limits_byte >> 4) * 4,
    };
    let depth = json_depth(body);
    if parse_json(body, limits).is_ok() {
        assert!(body.len() <= limits.max_bytes, "a body over the size limit");
        assert!(depth <= limits.max_depth, "a body over the depth limit");
    }
    let _ = parse_json(body, JsonLimits::default());
}
