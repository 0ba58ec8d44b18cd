//! FHIR resources (halo-validation): the validator with its primitive checks and FHIRPath
//! invariants, and the FHIR XML format.

use std::sync::LazyLock;

use arbitrary::{Arbitrary, Unstructured};
use halo_model::fhir::RawResource;
use halo_validation::Validator;
use halo_validation::fuzzing::{check_primitive, evaluate_fhirpath, parse_fhirpath};
use halo_validation::xml::FhirXml;
use serde_json::{Map, Value, json};

use crate::model::{FHIR, RESOURCE_TYPES};
use crate::structured::{Json, pick};
use crate::text;

static VALIDATOR: LazyLock<Validator> = LazyLock::new(Validator::with_embedded_definitions);
static XML: LazyLock<FhirXml> = LazyLock::new(FhirXml::embedded);

/// A resource body as a SoFA receives it: bounded JSON, then full validation and the outcome.
pub(crate) fn validate(data: &[u8]) {
    let Ok(resource) = RawResource::from_slice(data) else {
        return;
    };
    let report = VALIDATOR.validate(&resource);
    let _ = report.to_outcome();
}

/// A resource of a known type made of FHIR element names and values, so the validator's walk,
/// slicing, bindings and invariants see most inputs.
pub(crate) fn validate_structured(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let resource_type = pick(RESOURCE_TYPES, u.arbitrary().unwrap_or(0));
    let Ok(members) = Vec::<(u16, Json)>::arbitrary(&mut u) else {
        return;
    };
    let mut resource = Map::new();
    resource.insert("resourceType".into(), json!(resource_type));
    for (key, value) in &members {
        resource.insert(pick(FHIR.keys, *key).to_owned(), FHIR.value(value));
    }
    let resource = Value::Object(resource);
    let _ = VALIDATOR.validate_value(&resource).to_outcome();
    if let Ok(raw) = RawResource::from_value(resource) {
        let _ = VALIDATOR.validate(&raw);
    }
}

/// Every FHIR primitive type the validator checks.
const PRIMITIVE_TYPES: &[&str] = &[
    "boolean",
    "integer",
    "positiveInt",
    "unsignedInt",
    "decimal",
    "string",
    "code",
    "id",
    "uri",
    "url",
    "canonical",
    "oid",
    "uuid",
    "base64Binary",
    "date",
    "dateTime",
    "instant",
    "time",
    "xhtml",
    "markdown",
    "http://hl7.org/fhirpath/System.String",
    "http://hl7.org/fhirpath/System.DateTime",
    "http://hl7.org/fhirpath/System.Date",
    "http://hl7.org/fhirpath/System.Time",
    "http://hl7.org/fhirpath/System.Integer",
    "http://hl7.org/fhirpath/System.Decimal",
    "http://hl7.org/fhirpath/System.Boolean",
];

/// One primitive value, as a JSON string and (when the bytes are JSON) as that JSON value,
/// against every primitive type. The date types nest: an instant is a dateTime, a date is a
/// dateTime.
pub(crate) fn primitives(data: &[u8]) {
    let as_string = Value::String(text(data).into_owned());
    let as_json = serde_json::from_slice::<Value>(data).ok();
    for value in std::iter::once(&as_string).chain(as_json.as_ref()) {
        for type_code in PRIMITIVE_TYPES {
            let _ = check_primitive(type_code, value);
        }
        if check_primitive("instant", value).is_ok() {
            assert!(
                check_primitive("dateTime", value).is_ok(),
                "an instant that is no dateTime: {value}"
            );
        }
        if check_primitive("date", value).is_ok() {
            assert!(
                check_primitive("dateTime", value).is_ok(),
                "a date that is no dateTime: {value}"
            );
        }
    }
}

/// A Patient with the values FHIRPath invariants compare and navigate.
static FOCUS: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "resourceType": "Patient",
        "id": "p1",
        "active": true,
        "gender": "female",
        "birthDate": "1970-01-01",
        "deceasedDateTime": "2024-01-01T10:00:00+01:00",
        "name": [{"family": "Ébert", "given": ["Zoë", "A"], "period": {"start": "2024-01", "end": "2024-01-15T10:00:00Z"}}],
        "telecom": [{"system": "phone", "value": "555"}],
        "contained": [{"resourceType": "Organization", "id": "o1", "name": "Clinic"}],
        "managingOrganization": {"reference": "#o1"},
        "extension": [{"url": "http://example.org/x", "valueQuantity": {"value": 1.50, "unit": "kg", "code": "kg"}}],
        "multipleBirthInteger": 2,
        "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">é</div>"}
    })
});

/// A FHIRPath expression: parsed, then evaluated as an invariant on a Patient.
pub(crate) fn fhirpath(data: &[u8]) {
    let expression = text(data);
    if parse_fhirpath(&expression).is_ok() {
        let _ = evaluate_fhirpath(&expression, &FOCUS);
        let _ = evaluate_fhirpath(&expression, &json!({}));
    }
}

/// An `application/fhir+xml` body: read, written back and read again, which must give the same
/// JSON (the second round trip is exact; the first may normalise).
pub(crate) fn xml(data: &[u8]) {
    let Ok(json) = XML.from_xml(data) else {
        return;
    };
    round_trip(&json);
}

/// A JSON resource written as XML and read back: when it can be written, the JSON that comes back
/// is a fixed point of the round trip.
pub(crate) fn xml_write(data: &[u8]) {
    let Ok(resource) = RawResource::from_slice(data) else {
        return;
    };
    let Ok(value) = serde_json::to_value(&resource) else {
        return;
    };
    let Ok(written) = XML.to_xml(&value) else {
        return;
    };
    match XML.from_xml(written.as_bytes()) {
        Ok(json) => round_trip(&json),
        Err(e) => panic!("written XML does not read back: {e}\n{written}"),
    }
}

fn round_trip(json: &Value) {
    let written = match XML.to_xml(json) {
        Ok(written) => written,
        Err(e) => panic!("JSON read from XML does not write back: {e}\n{json}"),
    };
    match XML.from_xml(written.as_bytes()) {
        Ok(again) => assert_eq!(&again, json, "the XML round trip changed the resource"),
        Err(e) => panic!("written XML does not read back: {e}\n{written}"),
    }
}
