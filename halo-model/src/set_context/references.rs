//! References inside FHIR JSON: find every one (any depth) and rewrite the temporary
//! `urn:uuid:` ones to the `Type/id` the server assigned (REQ SC-05).
//!
//! Both work on raw JSON so nothing else in the resource changes: key order, decimals written
//! as `1.50`, unknown extensions all stay as they came in.

use std::collections::BTreeMap;

use serde_json::Value;

/// One reference found in a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundReference {
    /// A FHIRPath-style location of the `reference` element, for example
    /// `PractitionerRole.location[0].reference`.
    pub path: String,
    /// The reference text as written.
    pub reference: String,
}

/// What a reference string points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReferenceKind {
    /// `urn:uuid:<uuid>`: a temporary id of an entry in the same Bundle.
    UrnUuid,
    /// `Type/id` (optionally `Type/id/_history/v`) relative to the server's base.
    Relative {
        /// The resource type.
        resource_type: String,
        /// The logical id.
        id: String,
    },
    /// `#id`: a contained resource.
    Contained,
    /// Anything else: an absolute URL, another URN, or a malformed value.
    Other,
}

/// Classifies a reference string.
///
/// ```
/// use halo_model::set_context::{ReferenceKind, classify_reference};
/// assert_eq!(
///     classify_reference("Patient/123"),
///     ReferenceKind::Relative { resource_type: "Patient".into(), id: "123".into() }
/// );
/// assert_eq!(classify_reference("urn:uuid:d12004a7-5ed5-41ab-a8f2-0de5f0c98847"), ReferenceKind::UrnUuid);
/// assert_eq!(classify_reference("https://example.org/fhir/Patient/1"), ReferenceKind::Other);
/// ```
pub fn classify_reference(reference: &str) -> ReferenceKind {
    if reference.starts_with("urn:uuid:") {
        return ReferenceKind::UrnUuid;
    }
    if reference.starts_with('#') {
        return ReferenceKind::Contained;
    }
    let mut segments = reference.split('/');
    match (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) {
        (Some(resource_type), Some(id), None, None, None)
        | (Some(resource_type), Some(id), Some("_history"), Some(_), None)
            if looks_like_type(resource_type) && is_fhir_id(id) =>
        {
            ReferenceKind::Relative {
                resource_type: resource_type.to_owned(),
                id: id.to_owned(),
            }
        }
        _ => ReferenceKind::Other,
    }
}

/// A resource type name has the shape of one (`[A-Z][A-Za-z]*`); whether it is a real R4 type
/// is checked separately, so a typo is reported as a wrong type rather than a wrong shape.
fn looks_like_type(text: &str) -> bool {
    let mut chars = text.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_alphabetic())
}

/// FHIR `id`: 1 to 64 of `[A-Za-z0-9\-\.]`.
pub(crate) fn is_fhir_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// Whether `full_url` is `urn:uuid:` followed by a UUID in its 8-4-4-4-12 hex form.
///
/// ```
/// use halo_model::set_context::is_urn_uuid;
/// assert!(is_urn_uuid("urn:uuid:d12004a7-5ed5-41ab-a8f2-0de5f0c98847"));
/// assert!(!is_urn_uuid("urn:uuid:not-a-uuid"));
/// ```
pub fn is_urn_uuid(full_url: &str) -> bool {
    let Some(uuid) = full_url.strip_prefix("urn:uuid:") else {
        return false;
    };
    let groups: Vec<&str> = uuid.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Lists every reference in `resource`, at any depth (contained resources, extensions,
/// backbone elements), in document order.
///
/// A reference is a string under a key `reference` inside an object, which is how the FHIR
/// `Reference` datatype is written in JSON; no other R4 element is named `reference`.
///
/// ```
/// use halo_model::set_context::references_in;
/// use serde_json::json;
///
/// let role = json!({
///     "resourceType": "PractitionerRole",
///     "practitioner": {"reference": "urn:uuid:1ba55e38-715b-4072-8608-f5739245e6d8"},
///     "location": [{"reference": "Location/1"}]
/// });
/// let found = references_in(&role);
/// assert_eq!(found[1].path, "PractitionerRole.location[0].reference");
/// assert_eq!(found[1].reference, "Location/1");
/// ```
pub fn references_in(resource: &Value) -> Vec<FoundReference> {
    let mut found = Vec::new();
    let root = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or("Resource")
        .to_owned();
    collect(resource, &mut root.clone(), &mut found);
    found
}

fn collect(value: &Value, path: &mut String, found: &mut Vec<FoundReference>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let len = path.len();
                path.push('.');
                path.push_str(key);
                if let ("reference", Value::String(text)) = (key.as_str(), child) {
                    found.push(FoundReference {
                        path: path.clone(),
                        reference: text.clone(),
                    });
                } else {
                    collect(child, path, found);
                }
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{index}]"));
                collect(child, path, found);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// What [`rewrite_urn_uuid_references`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rewrite {
    /// How many references were rewritten.
    pub rewritten: usize,
    /// `urn:uuid:` references the map did not know; left as they were.
    pub unresolved: Vec<FoundReference>,
}

/// Rewrites every `urn:uuid:` reference in `resource` (any depth) that `map` knows to the
/// `Type/id` it maps to (REQ SC-05). Only those strings change; everything else is left
/// byte-for-byte as it was.
///
/// `map` goes from the Bundle entry's `fullUrl` to the assigned `Type/id`.
///
/// ```
/// use std::collections::BTreeMap;
/// use halo_model::set_context::rewrite_urn_uuid_references;
///
/// let mut encounter: serde_json::Value = serde_json::from_str(r#"{
///     "resourceType": "Encounter",
///     "subject": {"reference": "urn:uuid:d12004a7-5ed5-41ab-a8f2-0de5f0c98847", "type": "Patient"},
///     "length": {"value": 1.50}
/// }"#)?;
/// let map = BTreeMap::from([(
///     "urn:uuid:d12004a7-5ed5-41ab-a8f2-0de5f0c98847".to_owned(),
///     "Patient/p1".to_owned(),
/// )]);
/// let done = rewrite_urn_uuid_references(&mut encounter, &map);
/// assert_eq!(done.rewritten, 1);
/// assert_eq!(encounter["subject"]["reference"], "Patient/p1");
/// assert_eq!(encounter["length"]["value"].to_string(), "1.50");
/// # Ok::<(), serde_json::Error>(())
/// ```
pub fn rewrite_urn_uuid_references(
    resource: &mut Value,
    map: &BTreeMap<String, String>,
) -> Rewrite {
    let mut rewrite = Rewrite::default();
    let root = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or("Resource")
        .to_owned();
    rewrite_in(resource, &mut root.clone(), map, &mut rewrite);
    rewrite
}

fn rewrite_in(
    value: &mut Value,
    path: &mut String,
    map: &BTreeMap<String, String>,
    rewrite: &mut Rewrite,
) {
    match value {
        Value::Object(object) => {
            for (key, child) in object.iter_mut() {
                let len = path.len();
                path.push('.');
                path.push_str(key);
                if key == "reference" {
                    if let Value::String(text) = child
                        && text.starts_with("urn:uuid:")
                    {
                        match map.get(text.as_str()) {
                            Some(target) => {
                                *text = target.clone();
                                rewrite.rewritten += 1;
                            }
                            None => rewrite.unresolved.push(FoundReference {
                                path: path.clone(),
                                reference: text.clone(),
                            }),
                        }
                    }
                } else {
                    rewrite_in(child, path, map, rewrite);
                }
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{index}]"));
                rewrite_in(child, path, map, rewrite);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn classify_recognises_history_references_and_rejects_absolute_ones() {
        assert_eq!(
            classify_reference("Patient/1/_history/2"),
            ReferenceKind::Relative {
                resource_type: "Patient".into(),
                id: "1".into()
            }
        );
        assert_eq!(classify_reference("#c1"), ReferenceKind::Contained);
        assert_eq!(classify_reference("patient/1"), ReferenceKind::Other);
        assert_eq!(classify_reference("Patient/"), ReferenceKind::Other);
        assert_eq!(classify_reference(""), ReferenceKind::Other);
        // The shape is right; whether the type exists is checked elsewhere.
        assert!(matches!(
            classify_reference("Provider/9"),
            ReferenceKind::Relative { .. }
        ));
    }

    // REQ: SC-05
    #[test]
    fn references_are_found_at_any_depth_including_contained_and_extensions() {
        let resource = json!({
            "resourceType": "Observation",
            "contained": [{"resourceType": "Device", "owner": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000001"}}],
            "extension": [{"url": "x", "extension": [{"url": "y", "valueReference": {"reference": "Patient/1"}}]}],
            "component": [{"code": {"text": "reference"}}],
            "subject": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000002"}
        });
        let found: Vec<_> = references_in(&resource)
            .into_iter()
            .map(|f| f.path)
            .collect();
        assert_eq!(
            found,
            [
                "Observation.contained[0].owner.reference",
                "Observation.extension[0].extension[0].valueReference.reference",
                "Observation.subject.reference",
            ]
        );
    }

    // REQ: SC-05
    #[test]
    fn rewrite_changes_only_known_urn_uuid_strings() {
        let mut resource = json!({
            "resourceType": "Encounter",
            "subject": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000001"},
            "participant": [{"individual": {"reference": "urn:uuid:00000000-0000-4000-8000-00000000000f"}}],
            "serviceProvider": {"reference": "Organization/o1"},
            "note": [{"text": "urn:uuid:00000000-0000-4000-8000-000000000001"}]
        });
        let before = resource.clone();
        let map = BTreeMap::from([(
            "urn:uuid:00000000-0000-4000-8000-000000000001".to_owned(),
            "Patient/p1".to_owned(),
        )]);
        let done = rewrite_urn_uuid_references(&mut resource, &map);
        assert_eq!(done.rewritten, 1);
        assert_eq!(done.unresolved.len(), 1);
        assert_eq!(
            done.unresolved[0].path,
            "Encounter.participant[0].individual.reference"
        );
        assert_eq!(resource["subject"]["reference"], "Patient/p1");
        assert_eq!(resource["note"], before["note"]);
        assert_eq!(resource["serviceProvider"], before["serviceProvider"]);
    }

    #[test]
    fn urn_uuid_syntax_is_checked() {
        assert!(is_urn_uuid("urn:uuid:6F1B7B32-4e9c-4c92-8f3e-8b2c5c3c9e01"));
        assert!(!is_urn_uuid("urn:uuid:6f1b7b32-4e9c-4c92-8f3e-8b2c5c3c9e0"));
        assert!(!is_urn_uuid("urn:oid:1.2.3"));
    }
}
