//! Typed entries, lossless round trips and bilingual metadata.
// Test helpers may unwrap: a panic is a test failure (clippy.toml allows it in #[test] only).
#![allow(clippy::unwrap_used)]

mod common;

use common::{clean_entry, p, pairs, spec_example_entry};
use halo_catalog::{AppEntry, Catalog, Code, Mode, Translation, Translations, validate_entry};
use serde_json::{Value, json};

// REQ: CAT-01
#[test]
fn every_catalog_field_is_typed_under_its_camel_case_name() {
    let entry: AppEntry = serde_json::from_value(spec_example_entry()).unwrap();
    assert_eq!(entry.id, "fcf9956c-f952-40e0-8e24-a65d56118db2");
    assert_eq!(entry.name, "Heart Health Monitor");
    assert_eq!(entry.description_short, "Monitor heart health");
    assert_eq!(entry.tags.as_deref().map(<[String]>::len), Some(3));
    assert_eq!(
        entry.help_url.as_deref(),
        Some("https://heart.example.com/help-manual")
    );
    assert_eq!(
        entry.icon_url,
        "https://heart.example.com/icons/heart-health.png"
    );
    assert_eq!(entry.screenshots.as_ref().map(Vec::len), Some(3));
    assert_eq!(
        entry.privacy_policy_url,
        "https://heart.example.com/privacy/heart-health"
    );
    assert_eq!(
        entry.terms_of_service_url,
        "https://heart.example.com/terms/heart-health"
    );
    assert_eq!(
        entry.launch_url,
        "https://heart.example.com/launch/heart-health"
    );
    assert!(entry.eligibility_criteria.is_some());
    assert_eq!(entry.contacts.len(), 3);
    assert_eq!(
        entry.contacts[0].email.as_deref(),
        Some("support@example.com")
    );
    assert_eq!(
        entry.contacts[1].url.as_deref(),
        Some("https://heart.example.com")
    );
    assert_eq!(entry.contacts[2].phone.as_deref(), Some("+01 111 222 3333"));
    assert_eq!(entry.contacts[2].title, "24 Hour Emergency Line");
    assert_eq!(entry.publisher.id, "6b4929be-a7c0-4a38-4a8e-53338dbcb7f5");
    assert_eq!(entry.publisher.name, "Example Company Inc.");
    assert_eq!(
        entry.publisher.url.as_deref(),
        Some("https://heart.example.com")
    );
    assert_eq!(entry.is_enrolling, Some(true));
    assert_eq!(entry.scopes.as_ref().map(Vec::len), Some(13));
    assert!(entry.extra.is_empty());

    // Written back, the example entry is the same JSON (same keys, same values).
    assert_eq!(serde_json::to_value(&entry).unwrap(), spec_example_entry());
}

// REQ: CAT-01
#[test]
fn unknown_fields_survive_a_round_trip_exactly() {
    let text = r#"[{"id":"fcf9956c-f952-40e0-8e24-a65d56118db2","name":"Heart Health Monitor",
      "description":"d","descriptionShort":"s","iconUrl":"https://e.example/i.png",
      "privacyPolicyUrl":"https://e.example/p","termsOfServiceUrl":"https://e.example/t",
      "launchUrl":"https://e.example/l",
      "contacts":[{"title":"Help","email":"h@e.example","url":"https://e.example","hours":"9-5"}],
      "publisher":{"id":"p","name":"P","registry":{"number":1.50,"big":123456789012345678901234567890}},
      "jurisdiction":"ON","rating":4.10,"flags":[true,null,{"x":[]}]}]"#;
    let catalog: Catalog = serde_json::from_str(text).unwrap();
    let e = &catalog.entries[0];
    assert_eq!(e.extra["jurisdiction"], "ON");
    assert_eq!(e.contacts[0].extra["hours"], "9-5");
    let out = serde_json::to_string(&catalog).unwrap();
    // Decimals keep their spelling, big integers their digits.
    assert!(out.contains(r#""number":1.50"#), "{out}");
    assert!(out.contains(r#""rating":4.10"#), "{out}");
    assert!(out.contains("123456789012345678901234567890"), "{out}");
    let again: Value = serde_json::from_str(&out).unwrap();
    let original: Value = serde_json::from_str(text).unwrap();
    assert_eq!(again, original);

    // The validated path gives the same typed catalog.
    let parsed = Catalog::parse(text.as_bytes(), Mode::Strict).unwrap();
    assert_eq!(parsed.catalog, catalog);
}

// REQ: CAT-01
#[test]
fn typed_deserialisation_rejects_broken_entries_with_a_message() {
    let mut e = spec_example_entry();
    e.as_object_mut().unwrap().remove("launchUrl");
    let err = serde_json::from_value::<AppEntry>(e).unwrap_err();
    assert!(err.to_string().contains("launchUrl"), "{err}");
}

fn bilingual() -> AppEntry {
    let mut e = clean_entry();
    e["translations"] = json!({
        "fr": {
            "name": "Moniteur de santé cardiaque",
            "description": "Une application complète pour suivre et gérer la santé du cœur.",
            "descriptionShort": "Suivi cardiaque"
        },
        "fr-CA": {
            "descriptionShort": "Suivi du cœur",
            "eligibilityCriteria": "Pour les médecins de famille et le personnel infirmier."
        }
    });
    serde_json::from_value(e).unwrap()
}

// REQ: CAT-14
#[test]
fn localized_falls_back_fr_ca_then_fr_then_base_field_by_field() {
    let e = bilingual();
    let ca = e.localized("fr-CA");
    assert_eq!(ca.name, "Moniteur de santé cardiaque"); // from fr
    assert_eq!(ca.description_short, "Suivi du cœur"); // from fr-CA
    assert_eq!(
        ca.eligibility_criteria,
        Some("Pour les médecins de famille et le personnel infirmier.")
    );
    let fr = e.localized("fr");
    assert_eq!(fr.description_short, "Suivi cardiaque");
    assert_eq!(
        fr.eligibility_criteria,
        Some("The audience for this app is General Practitioners and Nurses.")
    );
    // Tags compare without case; more specific tags fall back too.
    assert_eq!(e.localized("FR-ca").description_short, "Suivi du cœur");
    assert_eq!(
        e.localized("fr-CA-x-quebec").description_short,
        "Suivi du cœur"
    );
    assert_eq!(e.localized("fr-BE").name, "Moniteur de santé cardiaque");
    // Another language, or none: the base fields.
    let en = e.localized("en-CA");
    assert_eq!(en.name, "Heart Health Monitor");
    assert_eq!(en.description_short, "Monitor heart health");
    assert_eq!(e.localized("").name, "Heart Health Monitor");
    let plain: AppEntry = serde_json::from_value(clean_entry()).unwrap();
    assert_eq!(plain.localized("fr").name, "Heart Health Monitor");
}

// REQ: CAT-14
#[test]
fn translations_keep_their_order_and_round_trip() {
    let e = bilingual();
    let tags: Vec<&str> = e
        .translations
        .as_ref()
        .unwrap()
        .iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(tags, ["fr", "fr-CA"]);
    let v = serde_json::to_value(&e).unwrap();
    let back: AppEntry = serde_json::from_value(v).unwrap();
    assert_eq!(back, e);

    let mut t = Translations::new();
    t.insert(
        "fr",
        Translation {
            name: Some("Un".into()),
            ..Translation::default()
        },
    );
    t.insert(
        "FR",
        Translation {
            name: Some("Deux".into()),
            ..Translation::default()
        },
    );
    assert_eq!(t.len(), 1);
    assert_eq!(t.get("fr").and_then(|x| x.name.as_deref()), Some("Deux"));
}

// REQ: CAT-14
#[test]
fn translations_obey_the_base_length_rules() {
    let mut e = clean_entry();
    e["translations"] = json!({
        "fr": { "name": "Ab", "eligibilityCriteria": "é".repeat(2049) },
        "fr-CA": { "name": "n".repeat(151), "description": "" },
        "français": { "descriptionShort": 5 },
        "en": "Heart"
    });
    assert_eq!(
        pairs(&validate_entry(&e)),
        vec![
            p(Code::TooShort, "$.translations.fr.name"),
            p(Code::TooLong, "$.translations.fr.eligibilityCriteria"),
            p(Code::TooLong, "$.translations['fr-CA'].name"),
            p(Code::EmptyField, "$.translations['fr-CA'].description"),
            p(Code::InvalidLanguageTag, "$.translations['français']"),
            p(
                Code::WrongType,
                "$.translations['français'].descriptionShort"
            ),
            p(Code::NotAnObject, "$.translations.en"),
        ]
    );
    // A well-formed bilingual entry has no finding.
    let ok = serde_json::to_value(bilingual()).unwrap();
    assert_eq!(pairs(&validate_entry(&ok)), vec![]);
}
