//! The App Catalog (halo-catalog): JSON as a PoC downloads it.

use arbitrary::Unstructured;
use halo_catalog::analysis::{PocCapabilities, compatibility, required_context, resource_access};
use halo_catalog::{Catalog, Mode, Query};
use serde_json::Value;

use crate::structured::Vocabulary;

/// Catalog bytes: lenient and strict parsing, then everything a PoC does with an entry. An entry
/// kept by lenient parsing has no error, so the kept entries written back must parse strictly.
pub(crate) fn catalog(data: &[u8]) {
    let strict = Catalog::parse(data, Mode::Strict);
    let Ok(lenient) = Catalog::parse(data, Mode::Lenient) else {
        assert!(
            strict.is_err(),
            "strict parsing accepted what lenient refused"
        );
        return;
    };
    use_catalog(&lenient.catalog);
    let written = match serde_json::to_vec(&lenient.catalog.entries) {
        Ok(written) => written,
        Err(e) => panic!("a parsed catalog does not serialise: {e}"),
    };
    match Catalog::parse(&written, Mode::Strict) {
        Ok(again) => assert_eq!(again.catalog.len(), lenient.catalog.len()),
        Err(e) => panic!(
            "entries without errors fail strict parsing once written: {e}\n{}",
            String::from_utf8_lossy(&written)
        ),
    }
}

/// A catalog array of entries built from the catalog's field names and typical values, so most
/// inputs reach the field rules.
pub(crate) fn catalog_structured(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut entries = Vec::new();
    while !u.is_empty() && entries.len() < 8 {
        let mut entry = serde_json::Map::new();
        let fields = u.int_in_range(0..=20u8).unwrap_or(0);
        for _ in 0..fields {
            let key = VOCABULARY.arbitrary_string(&mut u);
            let key = if KEYS.contains(&key.as_str()) {
                key
            } else {
                crate::structured::pick(KEYS, u.arbitrary().unwrap_or(0)).to_owned()
            };
            entry.insert(key, VOCABULARY.arbitrary_value(&mut u));
        }
        entries.push(Value::Object(entry));
    }
    let document = Value::Array(entries);
    if let Ok(parsed) = Catalog::from_value(&document, Mode::Lenient) {
        use_catalog(&parsed.catalog);
    }
    if let Ok(bytes) = serde_json::to_vec(&document) {
        catalog(&bytes);
    }
}

fn use_catalog(catalog: &Catalog) {
    let poc = PocCapabilities::halo_default();
    for entry in catalog.iter() {
        let _ = required_context(entry);
        let _ = resource_access(entry);
        let _ = compatibility(entry, &poc);
        let _ = entry.scope_set();
        for lang in ["fr-CA", "fr-CA-x-y", "en", "", "x-é-ü", "-", "fr--CA"] {
            let _ = entry.localized(lang);
        }
        if let Some(translations) = &entry.translations {
            for (tag, _) in translations.iter() {
                let _ = entry.localized(tag);
            }
        }
    }
    for text in ["heart", "É", "", "ß"] {
        let _ = catalog.search(text);
        let _ = catalog.query(&Query::new().text(text).tag(text)).count();
    }
}

const KEYS: &[&str] = &[
    "id",
    "name",
    "description",
    "descriptionShort",
    "tags",
    "helpUrl",
    "iconUrl",
    "screenshots",
    "privacyPolicyUrl",
    "termsOfServiceUrl",
    "launchUrl",
    "eligibilityCriteria",
    "contacts",
    "publisher",
    "isEnrolling",
    "scopes",
    "translations",
    "email",
    "phone",
    "url",
    "title",
];

static VOCABULARY: Vocabulary = Vocabulary {
    keys: KEYS,
    strings: &[
        "fcf9956c-f952-40e0-8e24-a65d56118db2",
        "6b4929be-a7c0-4a38-4a8e-53338dbcb7f5",
        "Heart Health Monitor",
        "https://heart.example.com/launch",
        "https:///launch",
        "https://",
        "http://localhost:8080/launch",
        "http://127.0.0.1/launch",
        "http://[::1]/launch",
        "https://user@host/launch",
        "javascript:alert(1)",
        "ftp://example.com/x",
        "https://exa mple.com",
        "https://example.com:99999/",
        "support@example.com",
        "a@b",
        "@example.com",
        "+01 111 222 3333",
        "openid",
        "fhirUser",
        "launch",
        "launch/Patient",
        "launch/Encounter",
        "patient/Observation.rs",
        "user/*.cruds",
        "system/Patient.read",
        "patient/Observation.rs?category=laboratory",
        "offline_access",
        "online_access",
        "fr-CA",
        "fr",
        "en-CA",
        "x-private",
        "fr-CA-x-y",
        "cardiology",
        "",
        " ",
        "é",
    ],
};
