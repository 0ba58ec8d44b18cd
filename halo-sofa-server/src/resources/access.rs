//! Who may touch what (REQ RS-03, RS-05, D-10): the interaction and type must be granted, a
//! `patient/` grant reaches only the launch patient's compartment, and a token sees only its
//! launch's resources.

use std::collections::HashMap;
use std::sync::OnceLock;

use halo_model::scope::{Interaction, Level};

use crate::auth::Caller;
use crate::error::SofaError;
use crate::store::{LaunchRecord, StoredResource};

/// How far a granted interaction reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reach {
    /// Every resource of the type visible to the launch (`user/` or `system/` grant).
    Launch,
    /// Only the compartment of this patient (`Patient/id`), from a `patient/` grant.
    Compartment(String),
}

/// The reach of `interaction` on `resource_type`, or 403.
pub(crate) fn reach(
    caller: &Caller,
    launch: Option<&LaunchRecord>,
    resource_type: &str,
    interaction: Interaction,
) -> Result<Reach, SofaError> {
    let scopes = &caller.scopes;
    if scopes.permits(Level::User, resource_type, interaction)
        || scopes.permits(Level::System, resource_type, interaction)
    {
        return Ok(Reach::Launch);
    }
    if scopes.permits(Level::Patient, resource_type, interaction) {
        return match launch.and_then(|l| l.patient.clone()) {
            Some(patient) => Ok(Reach::Compartment(patient)),
            None => Err(SofaError::forbidden(
                "a patient/ scope needs a launch with a patient in context",
            )),
        };
    }
    Err(SofaError::forbidden(format!(
        "the token's scopes do not grant {interaction:?} on {resource_type}"
    )))
}

/// Whether the resource belongs to the caller's launch (D-10): a token of launch A never sees
/// launch B's data, and a token without a launch sees only data loaded outside any launch.
pub(crate) fn visible(caller: &Caller, stored: &StoredResource) -> bool {
    stored.launch_id == caller.launch_id
}

/// The R4 Patient CompartmentDefinition as element paths per resource type
/// (`data/patient-compartment.json`, provenance beside it), read once.
fn compartment_paths() -> &'static HashMap<String, Vec<Vec<String>>> {
    static PATHS: OnceLock<HashMap<String, Vec<Vec<String>>>> = OnceLock::new();
    PATHS.get_or_init(|| {
        let data: serde_json::Value =
            serde_json::from_str(include_str!("../../data/patient-compartment.json"))
                .unwrap_or_default();
        let mut paths = HashMap::new();
        if let Some(types) = data.get("paths").and_then(serde_json::Value::as_object) {
            for (kind, list) in types {
                let list = list
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(serde_json::Value::as_str)
                    .map(|path| path.split('.').map(str::to_string).collect())
                    .collect();
                paths.insert(kind.clone(), list);
            }
        }
        paths
    })
}

/// A value, or the items of an array.
fn items(value: &serde_json::Value) -> Vec<&serde_json::Value> {
    match value.as_array() {
        Some(items) => items.iter().collect(),
        None => vec![value],
    }
}

/// The values at `path` under the resource, arrays flattened at every step; the resource's
/// JSON is walked where it lies, not copied.
pub(crate) fn values_at<'a>(
    resource: &'a halo_model::fhir::RawResource,
    path: &[String],
) -> Vec<&'a serde_json::Value> {
    let Some((first, rest)) = path.split_first() else {
        return Vec::new();
    };
    let mut current = resource.get(first).map(items).unwrap_or_default();
    for segment in rest {
        current = current
            .into_iter()
            .filter_map(|v| v.get(segment))
            .flat_map(items)
            .collect();
    }
    current
}

/// Whether `resource` is in the compartment of `patient` (`Patient/id`), as the R4 Patient
/// CompartmentDefinition says (REQ HARD-06): the Patient itself, or a resource whose listed
/// elements (`Observation.subject` and `.performer`, ...) reference the patient. Any other
/// reference (`Observation.focus`, say) does not bring a resource in; a type the definition
/// does not list is not in the compartment.
pub(crate) fn in_compartment(resource: &halo_model::fhir::RawResource, patient: &str) -> bool {
    let kind = resource.resource_type();
    if kind == "Patient"
        && resource
            .id()
            .is_some_and(|id| patient.strip_prefix("Patient/") == Some(id))
    {
        return true;
    }
    let Some(paths) = compartment_paths().get(kind) else {
        return false;
    };
    let suffix = format!("/{patient}");
    paths.iter().any(|path| {
        values_at(resource, path).into_iter().any(|reference| {
            reference
                .get("reference")
                .and_then(serde_json::Value::as_str)
                .is_some_and(|r| r == patient || r.ends_with(&suffix))
        })
    })
}

/// Whether the caller may see this stored resource with this reach.
pub(crate) fn may_see(caller: &Caller, reach: &Reach, stored: &StoredResource) -> bool {
    visible(caller, stored)
        && match reach {
            Reach::Launch => true,
            Reach::Compartment(patient) => in_compartment(&stored.resource, patient),
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(value: serde_json::Value) -> halo_model::fhir::RawResource {
        halo_model::fhir::RawResource::from_value(value).unwrap()
    }

    // REQ: HARD-06
    #[test]
    fn the_compartment_follows_the_r4_compartment_definition() {
        let me = "Patient/p1";
        let other = json!({"reference": "Patient/p2"});
        let mine = json!({"reference": "Patient/p1"});
        // A reference elsewhere (focus) does not bring another patient's Observation in.
        let focus = raw(json!({"resourceType": "Observation", "status": "final",
            "code": {"text": "x"}, "subject": other, "focus": [mine]}));
        assert!(!in_compartment(&focus, me));
        let subject = raw(json!({"resourceType": "Observation", "subject": mine}));
        assert!(in_compartment(&subject, me));
        let performer = raw(json!({"resourceType": "Observation", "subject": other,
            "performer": [{"reference": "Practitioner/x"}, mine]}));
        assert!(in_compartment(&performer, me));
        // Nested paths and absolute references.
        let procedure = raw(json!({"resourceType": "Procedure", "subject": other,
            "performer": [{"actor": {"reference": "https://sofa.example.org/fhir/Patient/p1"}}]}));
        assert!(in_compartment(&procedure, me));
        let condition = raw(json!({"resourceType": "Condition", "subject": other,
            "asserter": mine}));
        assert!(in_compartment(&condition, me));
        let note = raw(json!({"resourceType": "Condition", "subject": other,
            "note": [{"authorReference": mine}]}));
        assert!(!in_compartment(&note, me));
        // The patient itself, and types the definition does not list.
        assert!(in_compartment(
            &raw(json!({"resourceType": "Patient", "id": "p1"})),
            me
        ));
        assert!(!in_compartment(
            &raw(json!({"resourceType": "Patient", "id": "p2"})),
            me
        ));
        let practitioner = raw(json!({"resourceType": "Practitioner", "id": "x",
            "extension": [{"url": "u", "valueReference": mine}]}));
        assert!(!in_compartment(&practitioner, me));
        assert!(compartment_paths().len() > 100);
    }
}
