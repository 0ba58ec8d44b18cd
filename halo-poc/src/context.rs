//! Which launch context an app gets (REQ LI-03, from the App Catalog's scope analysis) and
//! where the EMR's own resources come from.

use halo_catalog::AppEntry;
use halo_catalog::analysis::{ContextBasis, required_context, resource_types};
use halo_model::scope::ResourceType;
use serde_json::Value;

use crate::BoxFuture;
use crate::error::{PocError, Result};

/// What the clinician has open in the EMR, as local `Type/id` references.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClinicalContext {
    /// The open resources (`Patient/p7`, `Encounter/e3`, `Location/ward-4`, ...), at most one
    /// per type is used for a launch context type.
    pub open: Vec<String>,
    /// The signed-in user's own resource (`Practitioner/dr-1` or `PractitionerRole/...`).
    pub user: Option<String>,
    /// `need_patient_banner`: false when the EMR already shows the patient.
    pub need_patient_banner: Option<bool>,
    /// `intent`, when the EMR launches the app for a particular task.
    pub intent: Option<String>,
    /// `smart_style_url`, for apps that follow the EMR's styling.
    pub smart_style_url: Option<String>,
    /// `tenant`.
    pub tenant: Option<String>,
}

impl ClinicalContext {
    /// A context with `reference` open.
    pub fn with(mut self, reference: impl Into<String>) -> ClinicalContext {
        self.open.push(reference.into());
        self
    }

    /// A context with `reference` as the signed-in user.
    pub fn user(mut self, reference: impl Into<String>) -> ClinicalContext {
        self.user = Some(reference.into());
        self
    }

    fn open_of(&self, resource_type: &str) -> Option<&str> {
        self.open
            .iter()
            .map(String::as_str)
            .find(|r| type_of(r) == Some(resource_type))
    }
}

/// The resource type of a `Type/id` reference.
pub(crate) fn type_of(reference: &str) -> Option<&str> {
    let (kind, id) = reference.split_once('/')?;
    (!kind.is_empty() && !id.is_empty() && !id.contains('/')).then_some(kind)
}

/// The launch context decided for one app: local references, before any id exists in the
/// SoFA.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContextPlan {
    /// `patient`.
    pub patient: Option<String>,
    /// `encounter`.
    pub encounter: Option<String>,
    /// `fhirUser`.
    pub fhir_user: Option<String>,
    /// `fhirContext`, in scope order.
    pub fhir_context: Vec<String>,
    /// The resource types the app may read or write beyond its context (`*` for any): what the
    /// EMR may prepopulate (CAT-11).
    pub data_types: Vec<String>,
    /// The app has `offline_access`: keep id mappings after the session (D-15).
    pub offline_access: bool,
}

impl ContextPlan {
    /// Every local reference the plan puts in context, in parameter order.
    pub fn references(&self) -> Vec<&str> {
        self.patient
            .iter()
            .chain(&self.encounter)
            .chain(&self.fhir_user)
            .chain(&self.fhir_context)
            .map(String::as_str)
            .collect()
    }
}

/// Decides the launch context for `app` from its scopes (`halo_catalog::analysis`):
///
/// - `launch/<Type>` scopes name the minimum; each type must be open, else
///   [`PocError::MissingContext`].
/// - `launch` alone: Patient, Practitioner, Organization and Location, each when open.
/// - `openid fhirUser`: the user must be known; the user is sent as `fhirUser` whenever known.
///
/// Patient and Encounter go to `patient` and `encounter`; every other type to `fhirContext`.
pub fn plan_context(app: &AppEntry, clinical: &ClinicalContext) -> Result<ContextPlan> {
    let required = required_context(app);
    let mut plan = ContextPlan {
        offline_access: required.offline_access,
        ..ContextPlan::default()
    };
    for resource_type in &required.types {
        let Some(reference) = clinical.open_of(resource_type) else {
            if required.basis == ContextBasis::Explicit {
                return Err(PocError::MissingContext {
                    what: resource_type.clone(),
                });
            }
            continue;
        };
        let reference = reference.to_owned();
        match resource_type.as_str() {
            "Patient" => plan.patient = Some(reference),
            "Encounter" => plan.encounter = Some(reference),
            _ if !plan.fhir_context.contains(&reference) => plan.fhir_context.push(reference),
            _ => {}
        }
    }
    match &clinical.user {
        Some(user) => plan.fhir_user = Some(user.clone()),
        None if required.user_identity => {
            return Err(PocError::MissingContext {
                what: "fhirUser (the signed-in clinician's Practitioner)".into(),
            });
        }
        None => {}
    }
    for resource_type in resource_types(app) {
        let name = match resource_type {
            ResourceType::Any => "*".to_owned(),
            ResourceType::Named(name) => name,
        };
        if !plan.data_types.contains(&name) {
            plan.data_types.push(name);
        }
    }
    Ok(plan)
}

/// The EMR's own data, as FHIR R4 JSON with the EMR's local ids.
pub trait LocalResources: Send + Sync {
    /// The resource a local `Type/id` reference names; `None` when the EMR has no such
    /// resource.
    fn resource<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Option<Value>>>;

    /// Further resources to prepopulate in the SoFA for this launch (for example the patient's
    /// recent Observations when the app may read `Observation`), each with its local `id`.
    /// The default sends none.
    fn related<'a>(&'a self, plan: &'a ContextPlan) -> BoxFuture<'a, Result<Vec<Value>>> {
        let _ = plan;
        Box::pin(async { Ok(Vec::new()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(scopes: &[&str]) -> AppEntry {
        serde_json::from_value(serde_json::json!({
            "id": "app-1", "name": "A", "description": "d", "descriptionShort": "d",
            "iconUrl": "https://a.example/i.png", "privacyPolicyUrl": "https://a.example/p",
            "termsOfServiceUrl": "https://a.example/t", "launchUrl": "https://a.example/l",
            "contacts": [], "publisher": {"id": "p", "name": "P"}, "scopes": scopes
        }))
        .unwrap()
    }

    fn clinical() -> ClinicalContext {
        ClinicalContext::default()
            .with("Patient/p7")
            .with("Encounter/e3")
            .with("Location/ward-4")
            .user("Practitioner/dr-1")
    }

    // REQ: LI-03
    #[test]
    fn explicit_launch_scopes_name_the_minimum_context() {
        let plan = plan_context(
            &app(&[
                "launch",
                "launch/patient",
                "launch/encounter",
                "openid",
                "fhirUser",
                "patient/Observation.cru",
                "offline_access",
            ]),
            &clinical(),
        )
        .unwrap();
        assert_eq!(plan.patient.as_deref(), Some("Patient/p7"));
        assert_eq!(plan.encounter.as_deref(), Some("Encounter/e3"));
        assert_eq!(plan.fhir_user.as_deref(), Some("Practitioner/dr-1"));
        assert!(plan.fhir_context.is_empty());
        assert_eq!(plan.data_types, ["Observation"]);
        assert!(plan.offline_access);

        let error = plan_context(
            &app(&["launch/encounter"]),
            &ClinicalContext::default().with("Patient/p7"),
        )
        .unwrap_err();
        assert_eq!(error.code(), "poc.missing-context");
        assert!(error.to_string().contains("Encounter"));
    }

    // REQ: LI-03
    #[test]
    fn launch_alone_takes_the_default_types_that_are_open() {
        let plan = plan_context(&app(&["launch", "user/*.rs"]), &clinical()).unwrap();
        assert_eq!(plan.patient.as_deref(), Some("Patient/p7"));
        assert_eq!(plan.encounter, None);
        assert_eq!(plan.fhir_context, ["Location/ward-4"]);
        assert_eq!(plan.data_types, ["*"]);

        // openid + fhirUser with nobody signed in.
        let mut anonymous = clinical();
        anonymous.user = None;
        let error = plan_context(&app(&["launch", "openid", "fhirUser"]), &anonymous).unwrap_err();
        assert_eq!(error.code(), "poc.missing-context");
        // No launch scope: no context, no error.
        let plan = plan_context(&app(&["patient/Patient.r"]), &anonymous).unwrap();
        assert!(plan.references().is_empty());
    }
}
