//! Who may touch what (REQ RS-03, RS-05, D-10): the interaction and type must be granted, a
//! `patient/` grant reaches only the launch patient's compartment, and a token sees only its
//! launch's resources.

use halo_model::scope::{Interaction, Level};

use crate::auth::Caller;
use crate::error::SofaError;
use crate::store::{LaunchRecord, StoredResource, references_of};

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

/// Whether `resource` is in the compartment of `patient` (`Patient/id`): the Patient itself, or
/// a resource referring to it.
pub(crate) fn in_compartment(resource: &halo_model::fhir::RawResource, patient: &str) -> bool {
    if resource.resource_type() == "Patient" {
        return resource
            .id()
            .is_some_and(|id| patient.strip_prefix("Patient/") == Some(id));
    }
    references_of(resource).iter().any(|r| r == patient)
}

/// Whether the caller may see this stored resource with this reach.
pub(crate) fn may_see(caller: &Caller, reach: &Reach, stored: &StoredResource) -> bool {
    visible(caller, stored)
        && match reach {
            Reach::Launch => true,
            Reach::Compartment(patient) => in_compartment(&stored.resource, patient),
        }
}
