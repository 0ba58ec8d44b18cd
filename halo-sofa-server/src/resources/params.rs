//! The search parameters the resource server implements (REQ RS-04): `_id` on every type, and
//! the R4 reference parameters `patient` and `subject` exactly where R4 defines them, matched on
//! the elements R4's expression names (`data/search-parameters.json`, provenance beside it).
//! The CapabilityStatement lists these and nothing else, so a client that trusts it never gets
//! silently empty results; a parameter outside them is refused (400), as HAPI does by default.

use std::collections::HashMap;
use std::sync::OnceLock;

use halo_model::fhir::RawResource;

use super::access::values_at;

/// The canonical of `_id` (R4 `Resource-id`).
pub(crate) const ID_DEFINITION: &str = "http://hl7.org/fhir/SearchParameter/Resource-id";

/// Parameters that shape the result rather than select resources.
const RESULT_PARAMETERS: [&str; 3] = ["_count", "_offset", "_format"];

/// An R4 reference search parameter on one resource type.
#[derive(Debug)]
pub(crate) struct ReferenceParam {
    /// Its canonical (`http://hl7.org/fhir/SearchParameter/clinical-patient`).
    pub(crate) url: String,
    /// The element paths its expression selects for the type (`subject`).
    paths: Vec<Vec<String>>,
}

/// `type → code → parameter`, read once from the shipped R4 data.
fn definitions() -> &'static HashMap<String, HashMap<String, ReferenceParam>> {
    static DEFINITIONS: OnceLock<HashMap<String, HashMap<String, ReferenceParam>>> =
        OnceLock::new();
    DEFINITIONS.get_or_init(|| {
        let data: serde_json::Value =
            serde_json::from_str(include_str!("../../data/search-parameters.json"))
                .unwrap_or_default();
        let mut types = HashMap::new();
        let entries = data.get("types").and_then(serde_json::Value::as_object);
        for (kind, codes) in entries.into_iter().flatten() {
            let mut params = HashMap::new();
            for (code, definition) in codes.as_object().into_iter().flatten() {
                let url = definition["url"].as_str().unwrap_or_default().to_string();
                let paths = definition["paths"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(serde_json::Value::as_str)
                    .map(|p| p.split('.').map(str::to_string).collect())
                    .collect();
                params.insert(code.clone(), ReferenceParam { url, paths });
            }
            types.insert(kind.clone(), params);
        }
        types
    })
}

/// The reference parameter `code` of `resource_type`, if R4 defines it and the server
/// implements it.
pub(crate) fn reference_param(resource_type: &str, code: &str) -> Option<&'static ReferenceParam> {
    definitions().get(resource_type)?.get(code)
}

/// The reference parameters of `resource_type`, sorted by code.
pub(crate) fn reference_params(
    resource_type: &str,
) -> Vec<(&'static str, &'static ReferenceParam)> {
    let mut params: Vec<_> = definitions()
        .get(resource_type)
        .into_iter()
        .flatten()
        .map(|(code, param)| (code.as_str(), param))
        .collect();
    params.sort_by_key(|(code, _)| *code);
    params
}

/// A reference criterion of a search: the parameter and the reference it asks for.
#[derive(Debug)]
pub(crate) struct ReferenceCriterion {
    param: &'static ReferenceParam,
    /// `Type/id`; a bare id is read as `Patient/id`, the type both parameters mostly name.
    pub(crate) reference: String,
    /// `/Type/id`, which an absolute reference to the same resource ends with; made once, not
    /// per resource compared.
    suffix: String,
}

impl ReferenceCriterion {
    /// Whether the resource's elements named by the parameter reference the target.
    pub(crate) fn matches(&self, resource: &RawResource) -> bool {
        let suffix = self.suffix.as_str();
        self.param.paths.iter().any(|path| {
            values_at(resource, path).into_iter().any(|value| {
                value
                    .get("reference")
                    .and_then(serde_json::Value::as_str)
                    .is_some_and(|r| r == self.reference || r.ends_with(suffix))
            })
        })
    }
}

/// What a search asks for, once its parameters are read.
#[derive(Debug, Default)]
pub(crate) struct Criteria {
    /// `_id` values (any of them).
    pub(crate) ids: Vec<String>,
    /// Reference criteria (all of them).
    pub(crate) references: Vec<ReferenceCriterion>,
}

/// Reads the selection parameters of a search on `resource_type`, or says which parameter the
/// server does not implement there.
pub(crate) fn criteria(
    resource_type: &str,
    params: &[(String, String)],
) -> Result<Criteria, String> {
    let mut criteria = Criteria::default();
    for (name, value) in params {
        if name == "_id" {
            criteria.ids.extend(value.split(',').map(str::to_string));
        } else if let Some(param) = reference_param(resource_type, name) {
            let reference = if value.contains('/') {
                value.clone()
            } else {
                format!("Patient/{value}")
            };
            criteria.references.push(ReferenceCriterion {
                param,
                suffix: format!("/{reference}"),
                reference,
            });
        } else if !RESULT_PARAMETERS.contains(&name.as_str()) {
            let mut supported = vec!["_id"];
            supported.extend(reference_params(resource_type).into_iter().map(|(c, _)| c));
            supported.extend(RESULT_PARAMETERS);
            return Err(format!(
                "the search parameter {name:?} is not supported on {resource_type}; \
                 supported: {}",
                supported.join(", ")
            ));
        }
    }
    Ok(criteria)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    // REQ: RS-04
    #[test]
    fn only_the_parameters_r4_defines_for_the_type_are_accepted() {
        for kind in [
            "Patient",
            "Practitioner",
            "PractitionerRole",
            "Organization",
            "Location",
        ] {
            assert!(reference_params(kind).is_empty(), "{kind}");
            assert!(
                criteria(kind, &pairs(&[("patient", "p1")])).is_err(),
                "{kind}"
            );
        }
        for kind in ["AllergyIntolerance", "Immunization", "RelatedPerson"] {
            assert!(reference_param(kind, "patient").is_some(), "{kind}");
            assert!(reference_param(kind, "subject").is_none(), "{kind}");
        }
        let observation = reference_params("Observation");
        assert_eq!(
            observation
                .iter()
                .map(|(code, p)| (*code, p.url.as_str()))
                .collect::<Vec<_>>(),
            [
                (
                    "patient",
                    "http://hl7.org/fhir/SearchParameter/clinical-patient"
                ),
                (
                    "subject",
                    "http://hl7.org/fhir/SearchParameter/Observation-subject"
                ),
            ]
        );
        let error = criteria("Observation", &pairs(&[("code", "x")])).unwrap_err();
        assert!(error.contains("_id, patient, subject, _count"), "{error}");
    }

    #[test]
    fn a_reference_criterion_looks_only_at_the_parameters_elements() {
        let found = criteria("Observation", &pairs(&[("patient", "p1"), ("_count", "5")])).unwrap();
        let criterion = &found.references[0];
        let about = |value| RawResource::from_value(value).unwrap();
        assert!(criterion.matches(&about(json!({
            "resourceType": "Observation", "subject": {"reference": "Patient/p1"}}))));
        assert!(!criterion.matches(&about(json!({
            "resourceType": "Observation", "subject": {"reference": "Patient/p2"},
            "focus": [{"reference": "Patient/p1"}]}))));
    }
}
