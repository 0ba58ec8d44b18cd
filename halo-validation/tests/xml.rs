//! FHIR XML against the JSON form: every fixture resource survives JSON → XML → JSON, XML
//! written by hand reads as the JSON the spec pairs it with, and what XML cannot carry, or
//! should not be trusted with, is refused with the element's path.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use halo_validation::xml::FhirXml;
use serde_json::{Value, json};

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures");

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json")
            && !path.to_string_lossy().ends_with(".expected.json")
        {
            out.push(path);
        }
    }
}

/// The corpus files whose JSON breaks the structure XML needs, and what is said of each.
const NOT_REPRESENTABLE: &[(&str, &str)] = &[
    (
        "10-category-not-an-array.json",
        "AllergyIntolerance.category: repeats, so it must be an array",
    ),
    (
        "05-class-as-array.json",
        "Encounter.class: occurs at most once, but is an array",
    ),
    (
        "05-longitude-as-string.json",
        "Location.position.longitude: must be a decimal number, not \"-75.69\"",
    ),
    (
        "02-misspelt-valuequantity.json",
        "Observation: `valueQuantiy` is not an element here",
    ),
    (
        "08-misspelt-choice.json",
        "Patient: `deceasedBooleen` is not an element here",
    ),
    (
        "11-name-not-an-array.json",
        "Patient.name: repeats, so it must be an array",
    ),
    (
        "14-unknown-element.json",
        "Patient: `nickname` is not an element here",
    ),
    (
        "05-active-as-string.json",
        "PractitionerRole.active: must be a boolean, not \"true\"",
    ),
];

// REQ: RS-06
#[test]
fn every_fixture_resource_round_trips_through_xml() {
    let xml = FhirXml::embedded();
    let mut files = Vec::new();
    for dir in [
        "subscriptions/r4",
        "subscriptions/derived",
        "subscriptions/inferno",
        "halo/third-party-zedwerks",
    ] {
        json_files(&Path::new(SHARED).join(dir), &mut files);
    }
    json_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus"),
        &mut files,
    );
    let mut round_trips = 0;
    let mut refused = 0;
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let resource: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        if resource.get("resourceType").is_none() {
            continue; // a token response, not a resource
        }
        match NOT_REPRESENTABLE.iter().find(|(n, _)| *n == name) {
            Some((_, expected)) => {
                let error = xml.to_xml(&resource).unwrap_err();
                assert_eq!(error.to_string(), *expected, "{name}");
                refused += 1;
            }
            None => {
                let text = xml
                    .to_xml(&resource)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                let back = xml
                    .from_xml(text.as_bytes())
                    .unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
                assert_eq!(back, resource, "{name}");
                round_trips += 1;
            }
        }
    }
    // The IG's notifications, statuses, subscriptions and CapabilityStatements, the third-party
    // `$set-context` requests and the validator corpus.
    assert!(round_trips >= 120, "{round_trips}");
    assert_eq!(refused, NOT_REPRESENTABLE.len());
}

/// A Patient as FHIR R4 §2.6 writes it: declaration, comments, whitespace, references, a
/// primitive with an `id` and an extension, repeats with extensions on some items only, a
/// contained resource and narrative.
const PATIENT_XML: &str = r##"<?xml version="1.0" encoding="UTF-8"?>
<!-- a comment before the root -->
<Patient xmlns="http://hl7.org/fhir">
  <id value="pat-1"/>
  <meta><profile value="http://fhir.infoway-inforoute.ca/io/psca/StructureDefinition/profile-patient"/></meta>
  <text>
    <status value="generated"/>
    <div xmlns="http://www.w3.org/1999/xhtml"><p>Jean <b>Roy</b> &amp; family</p></div>
  </text>
  <contained>
    <Organization><id value="org"/><name value="Clinique &#233;t&#xE9;"/></Organization>
  </contained>
  <extension url="http://example.org/ext/flag"><valueBoolean value="true"/></extension>
  <active value="true"/>
  <!-- names -->
  <name id="n1">
    <family value="Roy">
      <extension url="http://hl7.org/fhir/StructureDefinition/iso21090-EN-qualifier">
        <valueCode value="BR"/>
      </extension>
    </family>
    <given value="Jean"/>
    <given id="g2" value="Luc"/>
  </name>
  <gender value="male"/>
  <birthDate value="1951-11-20"/>
  <deceasedBoolean value="false"/>
  <multipleBirthInteger value="2"/>
  <managingOrganization><reference value="#org"/></managingOrganization>
</Patient>
"##;

// REQ: RS-06
#[test]
fn xml_written_by_hand_reads_as_its_json() {
    let xml = FhirXml::embedded();
    let patient = xml.from_xml(PATIENT_XML.as_bytes()).unwrap();
    assert_eq!(
        patient,
        json!({
            "resourceType": "Patient",
            "id": "pat-1",
            "meta": {"profile": ["http://fhir.infoway-inforoute.ca/io/psca/StructureDefinition/profile-patient"]},
            "text": {
                "status": "generated",
                "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Jean <b>Roy</b> &amp; family</p></div>"
            },
            "contained": [{"resourceType": "Organization", "id": "org", "name": "Clinique été"}],
            "extension": [{"url": "http://example.org/ext/flag", "valueBoolean": true}],
            "active": true,
            "name": [{
                "id": "n1",
                "family": "Roy",
                "_family": {"extension": [{
                    "url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-qualifier",
                    "valueCode": "BR"
                }]},
                "given": ["Jean", "Luc"],
                "_given": [null, {"id": "g2"}]
            }],
            "gender": "male",
            "birthDate": "1951-11-20",
            "deceasedBoolean": false,
            "multipleBirthInteger": 2,
            "managingOrganization": {"reference": "#org"}
        })
    );
    // And back: the same document, without the comments and whitespace.
    let written = xml.to_xml(&patient).unwrap();
    assert_eq!(xml.from_xml(written.as_bytes()).unwrap(), patient);
    assert!(written.contains(
        "<name id=\"n1\"><family value=\"Roy\"><extension url=\"http://hl7.org/fhir/StructureDefinition/iso21090-EN-qualifier\"><valueCode value=\"BR\"/></extension></family><given value=\"Jean\"/><given id=\"g2\" value=\"Luc\"/></name>"
    ), "{written}");
}

// REQ: RS-06
#[test]
fn json_is_written_in_the_definitions_order_with_decimals_kept_exactly() {
    let xml = FhirXml::embedded();
    // Members in an order XML does not allow; a decimal whose trailing zero matters.
    let observation: Value = serde_json::from_str(
        r#"{"valueQuantity": {"unit": "kg", "value": 80.20}, "subject": {"reference": "Patient/p"},
            "code": {"text": "Body weight <kg> \"net\"\n"}, "status": "final",
            "resourceType": "Observation"}"#,
    )
    .unwrap();
    let written = xml.to_xml(&observation).unwrap();
    assert_eq!(
        written,
        "<Observation xmlns=\"http://hl7.org/fhir\"><status value=\"final\"/>\
         <code><text value=\"Body weight &lt;kg&gt; &quot;net&quot;&#10;\"/></code>\
         <subject><reference value=\"Patient/p\"/></subject>\
         <valueQuantity><value value=\"80.20\"/><unit value=\"kg\"/></valueQuantity></Observation>"
    );
    let back = xml.from_xml(written.as_bytes()).unwrap();
    assert_eq!(back, observation);
    assert_eq!(back["valueQuantity"]["value"].to_string(), "80.20");
    assert_eq!(back["code"]["text"], "Body weight <kg> \"net\"\n");
}

// REQ: RS-06
#[test]
fn bad_or_hostile_xml_is_refused_with_where_and_why() {
    let xml = FhirXml::embedded();
    let cases: &[(&str, &str)] = &[
        (
            r#"<?xml version="1.0"?><!DOCTYPE Patient [<!ENTITY x SYSTEM "file:///etc/passwd">]><Patient xmlns="http://hl7.org/fhir"><id value="&x;"/></Patient>"#,
            "a DOCTYPE is not allowed in FHIR XML (no entity may be declared)",
        ),
        (
            r#"<Patient xmlns="http://hl7.org/fhir"><id value="&x;"/></Patient>"#,
            "unrecognized entity `x`",
        ),
        (
            r#"<Patient xmlns="http://hl7.org/fhir"><text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml">&nbsp;</div></text></Patient>"#,
            "the entity `&nbsp;` is not defined",
        ),
        (
            r#"<Patient xmlns="http://hl7.org/fhir"><active value="true"></Patient>"#,
            "at byte",
        ),
        (
            r#"<Patient><active value="true"/></Patient>"#,
            "<Patient> is not in the FHIR namespace (http://hl7.org/fhir)",
        ),
        (
            r#"<Patient xmlns="http://hl7.org/fhir"><nickname value="JR"/></Patient>"#,
            "Patient: <nickname> is not an element of <Patient>",
        ),
        (
            r#"<Patient xmlns="http://hl7.org/fhir"><gender value="male"/><gender value="female"/></Patient>"#,
            "Patient.gender: occurs 2 times; at most once is allowed",
        ),
        (
            r#"<Patient xmlns="http://hl7.org/fhir"><active>true</active></Patient>"#,
            "Patient.active: holds text (\"true\"); a primitive's value is its `value` attribute",
        ),
        (
            r#"<Patient xmlns="http://hl7.org/fhir"><active value="yes"/></Patient>"#,
            "Patient.active: `yes` is not a boolean",
        ),
        (
            r#"<Patient xmlns="http://hl7.org/fhir"><multipleBirthInteger value="007"/></Patient>"#,
            "Patient.multipleBirthInteger: `007` is not a whole number",
        ),
        (
            r#"<Patient xmlns="http://hl7.org/fhir"><active value="true" checked="no"/></Patient>"#,
            "Patient.active: <active> has an unexpected attribute `checked`",
        ),
        (
            r#"<Patient xmlns="http://hl7.org/fhir"><name><id value="n"/></name></Patient>"#,
            "Patient.name[0]: <id> is not an element of <name>",
        ),
        (
            r#"<Patient xmlns="http://hl7.org/fhir"><active/></Patient>"#,
            "Patient.active: has neither a value nor extensions (ele-1)",
        ),
        (
            r#"<Starship xmlns="http://hl7.org/fhir"/>"#,
            "`Starship` is not a known resource type",
        ),
        ("", "the document has no element"),
        ("\u{feff}<Patient", "at byte"),
    ];
    for (document, expected) in cases {
        let error = xml.from_xml(document.as_bytes()).unwrap_err().to_string();
        assert!(error.contains(expected), "{document}\n→ {error}");
    }
    let deep = format!(
        "<Patient xmlns=\"http://hl7.org/fhir\">{}{}</Patient>",
        "<contact>".repeat(20),
        "</contact>".repeat(20)
    );
    let error = xml
        .clone()
        .with_max_depth(8)
        .from_xml(deep.as_bytes())
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "elements are nested deeper than 8 levels"
    );
}

// REQ: RS-06
#[test]
fn json_that_xml_cannot_carry_is_refused() {
    let xml = FhirXml::embedded();
    let cases = [
        (json!({"id": "x"}), "the resource has no `resourceType`"),
        (
            json!({"resourceType": "Starship"}),
            "`Starship` has no definition here, so it has no XML form",
        ),
        (
            json!({"resourceType": "Patient", "_name": [{"id": "n"}]}),
            "Patient.name[0]: `_name` is only for primitive elements",
        ),
        (
            json!({"resourceType": "Patient", "text": {"status": "generated", "div": "<div><p>unclosed</div>"}}),
            "Patient.text.div: narrative is not XHTML",
        ),
        (
            json!({"resourceType": "Patient", "name": [{"given": ["a", "b"], "_given": [null]}]}),
            "`given` has 2 items but `_given` has 1",
        ),
        (
            json!({"resourceType": "Patient", "extension": [{"valueString": "no url"}]}),
            "Patient.extension[0]: an extension needs a `url`",
        ),
    ];
    for (resource, expected) in cases {
        let error = xml.to_xml(&resource).unwrap_err().to_string();
        assert!(error.contains(expected), "{resource}\n→ {error}");
    }
    assert!(xml.supports("CapabilityStatement"));
    assert!(xml.supports("Subscription"));
    assert!(!xml.supports("Starship"));
}
