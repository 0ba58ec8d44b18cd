//! FHIR XML over real HTTP (REQ RS-06, D-13): the same resources, searches, operations and
//! errors in XML as in JSON, chosen by `Accept` or `_format`, and XML bodies accepted where
//! JSON is; bad XML is refused and changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/auth.rs"]
mod auth_support;

use auth_support::*;
use halo_validation::xml::FhirXml;
use reqwest::StatusCode;
use serde_json::{Value, json};

const PATIENT_SCOPE: &str = "launch openid fhirUser patient/*.cruds";
const XML: &str = "application/fhir+xml";

/// GETs `path` as XML; status, content type and the body read back as JSON.
async fn get_xml(
    server: &AuthServerUnderTest,
    path: &str,
    token: Option<&str>,
    accept: Option<&str>,
) -> (StatusCode, String, Value) {
    let mut request = server.http.get(server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    let body = response.text().await.unwrap();
    let json = FhirXml::embedded()
        .from_xml(body.as_bytes())
        .unwrap_or_else(|e| panic!("{path}: {e}\n{body}"));
    (status, content_type, json)
}

async fn post_xml(
    server: &AuthServerUnderTest,
    path: &str,
    token: &str,
    body: &str,
    accept: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let mut request = server
        .http
        .post(server.url(path))
        .bearer_auth(token)
        .header("content-type", "application/fhir+xml; fhirVersion=4.0")
        .body(body.to_string());
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

// REQ: RS-06
#[tokio::test]
async fn reads_searches_and_metadata_answer_xml_equal_to_their_json() {
    let server = start().await;
    let launch = server.launch(Some("dr-a"), "p1").await;
    let token = server.launch_token(&launch, PATIENT_SCOPE).await;
    let token = token.access_token();

    // CapabilityStatement: `_format=xml`, no token needed; it advertises both formats.
    let (status, content_type, metadata) =
        get_xml(&server, "/metadata?_format=xml", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/fhir+xml; fhirVersion=4.0");
    let (_, _, json_metadata) = server.get("/metadata", "").await;
    assert_eq!(metadata, json_metadata);
    let formats = metadata["format"].as_array().unwrap();
    assert!(formats.contains(&json!("xml")) && formats.contains(&json!(XML)));

    // A read, by `Accept` with weights; the ETag is the same either way.
    let (status, content_type, patient) = get_xml(
        &server,
        "/Patient/p1",
        Some(token),
        Some("application/fhir+json;q=0.5, application/fhir+xml"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with(XML));
    let (_, json_headers, json_patient) = server.get("/Patient/p1", token).await;
    assert_eq!(patient, json_patient);
    assert_eq!(
        json_headers["content-type"],
        "application/fhir+json; fhirVersion=4.0"
    );

    // A search Bundle with its entries.
    let (status, _, bundle) = get_xml(
        &server,
        "/Observation?patient=p1&_format=xml",
        Some(token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bundle["resourceType"], "Bundle");
    let (_, _, json_bundle) = server.get("/Observation?patient=p1", token).await;
    assert_eq!(bundle["entry"], json_bundle["entry"]);
    assert_eq!(bundle["entry"].as_array().map(Vec::len), Some(1));

    // Errors are OperationOutcomes in the asked format too.
    let (status, _, outcome) = get_xml(&server, "/Patient/nobody", Some(token), Some(XML)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(outcome["resourceType"], "OperationOutcome");

    // Neither JSON nor XML: 406.
    let response = server
        .http
        .get(server.url("/Patient/p1"))
        .bearer_auth(token)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_ACCEPTABLE);
}

// REQ: RS-06
#[tokio::test]
async fn xml_bodies_create_resources_and_set_contexts() {
    let server = start().await;
    let launch = server.launch(Some("dr-a"), "p1").await;
    let token = server.launch_token(&launch, PATIENT_SCOPE).await;
    let token = token.access_token();

    let observation = r#"<?xml version="1.0" encoding="UTF-8"?>
<Observation xmlns="http://hl7.org/fhir">
  <status value="final"/>
  <code><text value="Body weight"/></code>
  <subject><reference value="Patient/p1"/></subject>
  <valueQuantity><value value="80.20"/><unit value="kg"/></valueQuantity>
</Observation>"#;
    let (status, headers, body) = post_xml(&server, "/Observation", token, observation, None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/fhir+json")
    );
    let created: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(created["valueQuantity"]["value"].to_string(), "80.20");
    let id = created["id"].as_str().unwrap();
    let (_, _, stored) = server.get(&format!("/Observation/{id}"), token).await;
    assert_eq!(stored["code"]["text"], "Body weight");
    assert_eq!(stored["subject"]["reference"], "Patient/p1");

    // The answer in XML when asked: the same resource.
    let (status, headers, body) =
        post_xml(&server, "/Observation", token, observation, Some(XML)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(headers["content-type"].to_str().unwrap().starts_with(XML));
    let created = FhirXml::embedded().from_xml(body.as_bytes()).unwrap();
    assert_eq!(created["valueQuantity"]["value"].to_string(), "80.20");

    // `$set-context` from the PoC, in XML both ways.
    let poc = server.poc_token().await;
    let parameters = r#"<Parameters xmlns="http://hl7.org/fhir">
  <parameter><name value="patient"/><valueReference><reference value="urn:uuid:9d4c6b43-2c4f-4d8b-9a3e-1c0e6a7b8c9d"/></valueReference></parameter>
  <parameter><name value="resources"/><resource><Bundle><type value="transaction"/>
    <entry><fullUrl value="urn:uuid:9d4c6b43-2c4f-4d8b-9a3e-1c0e6a7b8c9d"/>
      <resource><Patient><gender value="male"/></Patient></resource>
      <request><method value="POST"/><url value="Patient"/></request></entry>
  </Bundle></resource></parameter>
</Parameters>"#;
    let (status, _, body) = post_xml(&server, "/$set-context", &poc, parameters, Some(XML)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let output = FhirXml::embedded().from_xml(body.as_bytes()).unwrap();
    let launch_id = output["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "launchID")
        .unwrap();
    assert!(launch_id["valueString"].as_str().unwrap().len() >= 22);
}

// REQ: RS-06
// REQ: REL-03
#[tokio::test]
async fn bad_xml_is_a_400_outcome_and_stores_nothing() {
    let server = start().await;
    let launch = server.launch(Some("dr-a"), "p1").await;
    let token = server.launch_token(&launch, PATIENT_SCOPE).await;
    let token = token.access_token();
    let count = |bundle: &Value| bundle["entry"].as_array().map_or(0, Vec::len);
    let (_, _, before) = server.get("/Observation?patient=p1", token).await;

    let cases = [
        (
            r#"<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><Observation xmlns="http://hl7.org/fhir"/>"#,
            "DOCTYPE",
        ),
        (
            r#"<Observation xmlns="http://hl7.org/fhir"><status value="final">"#,
            "ends inside an element",
        ),
        (
            r#"<Observation><status value="final"/></Observation>"#,
            "not in the FHIR namespace",
        ),
        (
            r#"<Observation xmlns="http://hl7.org/fhir"><status value="final"/><valueQuantiy/></Observation>"#,
            "<valueQuantiy> is not an element of <Observation>",
        ),
    ];
    for (body, expected) in cases {
        for accept in [None, Some(XML)] {
            let (status, headers, text) =
                post_xml(&server, "/Observation", token, body, accept).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {text}");
            let outcome = match accept {
                Some(_) => FhirXml::embedded().from_xml(text.as_bytes()).unwrap(),
                None => serde_json::from_str(&text).unwrap(),
            };
            assert_eq!(outcome["resourceType"], "OperationOutcome", "{text}");
            assert_eq!(outcome["issue"][0]["code"], "structure");
            let message = outcome["issue"][0]["diagnostics"]
                .as_str()
                .unwrap_or_default();
            let details = outcome["issue"][0]["details"]["text"]
                .as_str()
                .unwrap_or_default();
            assert!(
                message.contains(expected) || details.contains(expected),
                "{body}: {outcome}"
            );
            assert_eq!(
                headers["content-type"].to_str().unwrap().starts_with(XML),
                accept.is_some()
            );
        }
    }
    let (_, _, after) = server.get("/Observation?patient=p1", token).await;
    assert_eq!(count(&after), count(&before));
}
