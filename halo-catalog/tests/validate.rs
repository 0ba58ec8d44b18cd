//! The catalog rules, one requirement at a time.
// Test helpers may unwrap: a panic is a test failure (clippy.toml allows it in #[test] only).
#![allow(clippy::unwrap_used)]

mod common;

use common::{clean_entry, p, pairs, spec_example_entry, triples};
use halo_catalog::{Catalog, CatalogError, Code, Mode, Severity, validate_catalog, validate_entry};
use serde_json::{Value, json};

fn check(entry: &Value) -> Vec<(&'static str, String)> {
    pairs(&validate_entry(entry))
}

// REQ: CAT-04
#[test]
fn spec_example_has_no_error_and_one_warning_for_its_publisher_id() {
    let report = validate_catalog(&json!([spec_example_entry()]));
    assert!(!report.has_errors(), "{report:#?}");
    assert_eq!(
        triples(&report),
        vec![(
            Severity::Warning,
            "publisher-id-not-uuid",
            "$[0].publisher.id".to_owned()
        )]
    );
    assert_eq!(check(&clean_entry()), vec![]);
}

// REQ: CAT-02
#[test]
fn every_mandatory_field_missing_is_reported_with_its_path() {
    let mut entry = clean_entry();
    let obj = entry.as_object_mut().unwrap();
    for key in [
        "id",
        "name",
        "description",
        "descriptionShort",
        "iconUrl",
        "privacyPolicyUrl",
        "termsOfServiceUrl",
        "launchUrl",
        "contacts",
        "publisher",
    ] {
        obj.remove(key);
    }
    let report = validate_catalog(&json!([clean_entry(), entry]));
    let expected: Vec<_> = [
        "id",
        "name",
        "description",
        "descriptionShort",
        "iconUrl",
        "privacyPolicyUrl",
        "termsOfServiceUrl",
        "launchUrl",
        "contacts",
        "publisher",
    ]
    .iter()
    .map(|k| p(Code::MissingField, &format!("$[1].{k}")))
    .collect();
    assert_eq!(pairs(&report), expected);
    assert!(report.findings.iter().all(|f| f.entry == Some(1)));
}

// REQ: CAT-02
#[test]
fn nested_mandatory_fields_null_and_empty_values() {
    let mut e = clean_entry();
    e["publisher"] = json!({ "id": "", "url": "https://x.example" });
    e["contacts"][1] = json!({ "url": "https://heart.example.com", "title": null });
    e["name"] = json!("   ");
    e["launchUrl"] = Value::Null;
    assert_eq!(
        check(&e),
        vec![
            p(Code::EmptyField, "$.name"),
            p(Code::MissingField, "$.launchUrl"),
            p(Code::MissingField, "$.contacts[1].title"),
            p(Code::EmptyField, "$.publisher.id"),
            p(Code::MissingField, "$.publisher.name"),
        ]
    );
    let mut e = clean_entry();
    e["contacts"] = json!([]);
    assert_eq!(check(&e), vec![p(Code::EmptyField, "$.contacts")]);
}

// REQ: CAT-02
#[test]
fn wrong_types_are_errors_not_panics() {
    let mut e = clean_entry();
    e["name"] = json!(42);
    e["tags"] = json!(["ok", 7, ""]);
    e["isEnrolling"] = json!("yes");
    e["contacts"][0] = json!("support@example.com");
    e["publisher"] = json!(["Example"]);
    e["scopes"] = json!("openid launch");
    assert_eq!(
        check(&e),
        vec![
            p(Code::WrongType, "$.name"),
            p(Code::WrongType, "$.tags[1]"),
            p(Code::EmptyTag, "$.tags[2]"),
            p(Code::NotAnObject, "$.contacts[0]"),
            // contacts[0] carried the only email.
            p(Code::MissingContactEmail, "$.contacts"),
            p(Code::NotAnObject, "$.publisher"),
            p(Code::WrongType, "$.isEnrolling"),
            p(Code::WrongType, "$.scopes"),
        ]
    );
    assert_eq!(
        pairs(&validate_catalog(&json!({"entries": []}))),
        vec![p(Code::NotAnArray, "$")]
    );
    assert_eq!(
        pairs(&validate_catalog(&json!([1, null]))),
        vec![p(Code::NotAnObject, "$[0]"), p(Code::NotAnObject, "$[1]")]
    );
}

// REQ: CAT-03
#[test]
fn lengths_are_counted_in_unicode_characters() {
    // 150 two-byte characters: 300 bytes, but exactly at the limit.
    let e150 = "é".repeat(150);
    let mut e = clean_entry();
    e["name"] = json!(e150);
    e["publisher"]["name"] = json!("É".repeat(150));
    e["contacts"][0]["title"] = json!("ü".repeat(150));
    e["eligibilityCriteria"] = json!("ç".repeat(2048));
    assert_eq!(check(&e), vec![]);

    let long_url = format!("https://heart.example.com/{}", "a".repeat(2048 - 26 + 1));
    assert_eq!(long_url.chars().count(), 2049);
    let mut e = clean_entry();
    e["name"] = json!("é".repeat(151));
    e["helpUrl"] = json!(long_url);
    e["iconUrl"] = json!(long_url);
    e["privacyPolicyUrl"] = json!(long_url);
    e["termsOfServiceUrl"] = json!(long_url);
    e["eligibilityCriteria"] = json!("x".repeat(2049));
    e["contacts"][0]["title"] = json!("t".repeat(151));
    e["contacts"][0]["email"] = json!(format!("{}@example.com", "a".repeat(139)));
    e["contacts"][1]["url"] = json!(long_url);
    e["contacts"][2]["phone"] = json!("+1 ".repeat(11));
    e["publisher"]["name"] = json!("n".repeat(151));
    e["publisher"]["url"] = json!(long_url);
    assert_eq!(
        check(&e),
        vec![
            p(Code::TooLong, "$.name"),
            p(Code::TooLong, "$.helpUrl"),
            p(Code::TooLong, "$.iconUrl"),
            p(Code::TooLong, "$.privacyPolicyUrl"),
            p(Code::TooLong, "$.termsOfServiceUrl"),
            p(Code::TooLong, "$.eligibilityCriteria"),
            p(Code::TooLong, "$.contacts[0].title"),
            p(Code::TooLong, "$.contacts[0].email"),
            // 139 + 12 = 151 characters, and a local part over 64 characters.
            p(Code::InvalidEmail, "$.contacts[0].email"),
            p(Code::TooLong, "$.contacts[1].url"),
            p(Code::TooLong, "$.contacts[2].phone"),
            p(Code::TooLong, "$.publisher.name"),
            p(Code::TooLong, "$.publisher.url"),
        ]
    );
    let mut e = clean_entry();
    e["name"] = json!("Ab");
    let r = validate_entry(&e);
    assert_eq!(pairs(&r), vec![p(Code::TooShort, "$.name")]);
    assert!(r.findings[0].message.contains("2 characters"));
    // Three characters, even when they are multi-byte, are enough.
    e["name"] = json!("心電図");
    assert_eq!(check(&e), vec![]);
}

// REQ: CAT-04
#[test]
fn entry_id_must_be_rfc4122_publisher_id_only_short() {
    let mut e = clean_entry();
    e["id"] = json!("6b4929be-a7c0-4a38-4a8e-53338dbcb7f5"); // NCS variant
    assert_eq!(check(&e), vec![p(Code::InvalidUuid, "$.id")]);
    e["id"] = json!("fcf9956c-f952-40e0-8e24-a65d56118db2-extra");
    assert_eq!(
        check(&e),
        vec![p(Code::TooLong, "$.id"), p(Code::InvalidUuid, "$.id")]
    );
    e["id"] = json!("FCF9956C-F952-40E0-8E24-A65D56118DB2");
    assert_eq!(check(&e), vec![]);

    let mut e = clean_entry();
    e["publisher"]["id"] = json!("example-company");
    let r = validate_entry(&e);
    assert_eq!(
        triples(&r),
        vec![(
            Severity::Warning,
            "publisher-id-not-uuid",
            "$.publisher.id".to_owned()
        )]
    );
    e["publisher"]["id"] = json!("x".repeat(37));
    assert_eq!(check(&e), vec![p(Code::TooLong, "$.publisher.id")]);
}

// REQ: CAT-05
#[test]
fn a_launch_url_with_an_empty_host_is_an_error() {
    // Accepted before: the URL parser repairs it into https://launch/.
    let mut e = clean_entry();
    e["launchUrl"] = json!("https:///launch");
    assert_eq!(check(&e), vec![p(Code::InvalidUrl, "$.launchUrl")]);
    let fields = [
        "helpUrl",
        "iconUrl",
        "privacyPolicyUrl",
        "termsOfServiceUrl",
    ];
    for key in fields {
        let mut e = clean_entry();
        e[key] = json!("https:///x");
        assert_eq!(check(&e), vec![p(Code::InvalidUrl, &format!("$.{key}"))]);
    }
    let mut e = clean_entry();
    e["screenshots"] = json!(["https:///1.png"]);
    e["publisher"]["url"] = json!("http:///");
    assert_eq!(
        check(&e),
        vec![
            p(Code::InvalidUrl, "$.screenshots[0]"),
            p(Code::InvalidUrl, "$.publisher.url"),
        ]
    );
}

// REQ: CAT-05
#[test]
fn urls_are_absolute_http_and_launch_is_https() {
    let mut e = clean_entry();
    e["helpUrl"] = json!("/help");
    e["iconUrl"] = json!("ftp://heart.example.com/icon.png");
    e["screenshots"] = json!(["https://ok.example/1.png", "screen2.png", 3]);
    e["privacyPolicyUrl"] = json!("http://heart.example.com/privacy"); // http is allowed here
    e["launchUrl"] = json!("http://heart.example.com/launch");
    e["publisher"]["url"] = json!("https://");
    assert_eq!(
        check(&e),
        vec![
            p(Code::InvalidUrl, "$.helpUrl"),
            p(Code::UnsupportedUrlScheme, "$.iconUrl"),
            p(Code::InvalidUrl, "$.screenshots[1]"),
            p(Code::WrongType, "$.screenshots[2]"),
            p(Code::LaunchUrlNotHttps, "$.launchUrl"),
            p(Code::InvalidUrl, "$.publisher.url"),
        ]
    );
    for loopback in [
        "http://localhost:9000/launch",
        "http://127.0.0.1/launch",
        "http://[::1]:8080/",
    ] {
        e = clean_entry();
        e["launchUrl"] = json!(loopback);
        let r = validate_entry(&e);
        assert_eq!(
            triples(&r),
            vec![(
                Severity::Warning,
                "launch-url-loopback-http",
                "$.launchUrl".to_owned()
            )],
            "{loopback}"
        );
    }
}

// REQ: CAT-06
#[test]
fn contacts_need_an_email_and_a_url() {
    let mut e = clean_entry();
    e["contacts"] = json!([{ "title": "Phone only", "phone": "+1 555 0100" }]);
    assert_eq!(
        check(&e),
        vec![
            p(Code::MissingContactEmail, "$.contacts"),
            p(Code::MissingContactUrl, "$.contacts"),
        ]
    );
    // One contact with both satisfies the rule.
    e["contacts"] = json!([{ "title": "Help", "email": "help@example.com", "url": "https://help.example.com" }]);
    assert_eq!(check(&e), vec![]);
    // Bad email syntax, and a contact nobody can reach.
    e["contacts"] = json!([
        { "title": "Help", "email": "help at example.com", "url": "https://help.example.com" },
        { "title": "Nobody" }
    ]);
    let r = validate_entry(&e);
    assert_eq!(
        triples(&r),
        vec![
            (
                Severity::Error,
                "invalid-email",
                "$.contacts[0].email".to_owned()
            ),
            (
                Severity::Warning,
                "contact-without-channel",
                "$.contacts[1]".to_owned()
            ),
        ]
    );
}

// REQ: CAT-07
#[test]
fn scopes_follow_smart_2_1() {
    let mut e = clean_entry();
    e["scopes"] = json!([
        "openid",
        "patient/Observation.sr",
        "patient/Observation.rs?category=laboratory",
        "launch/patient",
        "launch/Patient",
        "openid",
        "read_everything",
        "user/*.read",
        "",
        "openid fhirUser",
        "patient/Observation.rs"
    ]);
    let r = validate_entry(&e);
    assert_eq!(
        triples(&r),
        vec![
            (Severity::Error, "invalid-scope", "$.scopes[1]".to_owned()),
            (
                Severity::Info,
                "scope-query-ignored",
                "$.scopes[2]".to_owned()
            ),
            (
                Severity::Warning,
                "duplicate-scope",
                "$.scopes[4]".to_owned()
            ),
            (
                Severity::Warning,
                "duplicate-scope",
                "$.scopes[5]".to_owned()
            ),
            (Severity::Error, "invalid-scope", "$.scopes[6]".to_owned()),
            (Severity::Error, "invalid-scope", "$.scopes[8]".to_owned()),
            (Severity::Error, "invalid-scope", "$.scopes[9]".to_owned()),
        ]
    );
    assert!(r.findings[0].message.contains("patient/Observation.sr"));
    assert!(r.findings[2].message.contains("launch/patient"));
    // `patient/Observation.rs` differs from the query-restricted one, so it is no duplicate.
}

// REQ: CAT-08
#[test]
fn findings_carry_severity_code_path_message_and_serialise_as_such() {
    let mut e = clean_entry();
    e["id"] = json!("nope");
    e["launchUrl"] = json!("http://example.com/");
    e["publisher"]["id"] = json!("pub-1");
    e["scopes"] = json!(["patient/Observation.rs?code=1234", "bogus"]);
    let report = validate_catalog(&json!([e]));
    // Every rule ran: one error did not stop the others.
    assert_eq!(report.count(Severity::Error), 3);
    assert_eq!(report.count(Severity::Warning), 1);
    assert_eq!(report.count(Severity::Info), 1);
    let v = serde_json::to_value(&report).unwrap();
    assert_eq!(v[0]["severity"], "error");
    assert_eq!(v[0]["code"], "invalid-uuid");
    assert_eq!(v[0]["path"], "$[0].id");
    assert!(v[0]["message"].as_str().unwrap().contains("nope"));
    for f in &report.findings {
        assert_eq!(f.severity, f.code.severity());
        assert!(!f.message.is_empty());
    }
    // Codes are unique and stable kebab-case.
    let mut texts: Vec<_> = Code::ALL.iter().map(|c| c.as_str()).collect();
    texts.sort_unstable();
    texts.dedup();
    assert_eq!(texts.len(), Code::ALL.len());
    assert!(
        texts
            .iter()
            .all(|t| t.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
    );
}

// REQ: CAT-09
#[test]
fn lenient_keeps_valid_entries_strict_fails_and_ids_are_unique() {
    let mut second = clean_entry();
    second["id"] = json!("3f2b8c1e-6d4a-4f7b-9a2e-1c5d7e9f0a3b");
    let mut broken = clean_entry();
    broken["id"] = json!("3f2b8c1e-6d4a-4f7b-9a2e-1c5d7e9f0a3c");
    broken.as_object_mut().unwrap().remove("name");
    let mut dup = clean_entry();
    dup["id"] = json!("3F2B8C1E-6D4A-4F7B-9A2E-1C5D7E9F0A3B"); // same UUID, other case
    let doc = json!([clean_entry(), broken, second, dup]);
    let bytes = serde_json::to_vec(&doc).unwrap();

    let lenient = Catalog::parse(&bytes, Mode::Lenient).unwrap();
    assert_eq!(lenient.catalog.len(), 2);
    assert_eq!(lenient.source_indices, vec![0, 2]);
    assert_eq!(
        pairs(&lenient.report),
        vec![
            p(Code::MissingField, "$[1].name"),
            p(Code::DuplicateId, "$[3].id")
        ]
    );
    assert!(lenient.report.findings[1].message.contains("entry 2"));

    match Catalog::parse(&bytes, Mode::Strict) {
        Err(CatalogError::Invalid(report)) => assert_eq!(report, lenient.report),
        other => panic!("strict mode must fail the list, got {other:?}"),
    }
    // Warnings alone do not fail strict mode.
    let ok = serde_json::to_vec(&json!([spec_example_entry()])).unwrap();
    let strict = Catalog::parse(&ok, Mode::Strict).unwrap();
    assert_eq!(strict.catalog.len(), 1);
    assert_eq!(strict.report.count(Severity::Warning), 1);

    // Not JSON, not an array: typed errors.
    let e = Catalog::parse(b"[{", Mode::Lenient).unwrap_err();
    assert_eq!(e.code(), "invalid-json");
    let e = Catalog::parse(b"{}", Mode::Lenient).unwrap_err();
    assert_eq!(e.code(), "not-an-array");
    assert!(e.to_string().contains("an object"));
}

// REQ: CAT-01
#[test]
fn unknown_fields_are_info_and_kept() {
    let mut e = clean_entry();
    e["jurisdiction"] = json!("ON");
    e["publisher"]["country"] = json!("CA");
    let r = validate_entry(&e);
    assert_eq!(
        triples(&r),
        vec![
            (
                Severity::Info,
                "unknown-field",
                "$.publisher.country".to_owned()
            ),
            (Severity::Info, "unknown-field", "$.jurisdiction".to_owned()),
        ]
    );
}

#[test]
fn example_catalog_validates_without_errors() {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/catalog.json"
    ))
    .unwrap();
    let parsed = Catalog::parse(&bytes, Mode::Strict).unwrap();
    assert_eq!(parsed.catalog.len(), 3);
    assert_eq!(
        pairs(&parsed.report),
        vec![p(Code::PublisherIdNotUuid, "$[0].publisher.id")]
    );
}
