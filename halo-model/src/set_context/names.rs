//! The parameter names of `$set-context` and `$clear-context`, with the value type and
//! cardinality each input parameter takes (decision D-03; names are case-sensitive).

/// `$set-context` in: the app's id in the jurisdictional App Catalog.
pub const APP_ID: &str = "appID";
/// `$set-context` in: the patient in context.
pub const PATIENT: &str = "patient";
/// `$set-context` in: the encounter in context.
pub const ENCOUNTER: &str = "encounter";
/// `$set-context` in: the user (Practitioner, PractitionerRole, ...).
pub const FHIR_USER: &str = "fhirUser";
/// `$set-context` in: further resources in context (repeats).
pub const FHIR_CONTEXT: &str = "fhirContext";
/// `$set-context` in: whether the app should show a patient banner.
pub const NEED_PATIENT_BANNER: &str = "need_patient_banner";
/// `$set-context` in: the SMART launch intent.
pub const INTENT: &str = "intent";
/// `$set-context` in: the SMART style URL.
pub const SMART_STYLE_URL: &str = "smart_style_url";
/// `$set-context` in: the SMART tenant.
pub const TENANT: &str = "tenant";
/// `$set-context` in: the SetContextTransactionBundle of new resources.
pub const RESOURCES: &str = "resources";
/// `$set-context` out, `$clear-context` in: the opaque launch id.
pub const LAUNCH_ID: &str = "launchID";
/// `$set-context` out: the SetContextTransactionResponseBundle.
pub const RESOURCES_RESPONSE: &str = "resourcesResponse";
/// `$clear-context` out: one OperationOutcome per deleted group (decision D-02).
pub const OUTCOME: &str = "outcome";

/// The JSON element that carries a parameter's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// `valueString`.
    String,
    /// `valueReference`.
    Reference,
    /// `valueBoolean`.
    Boolean,
    /// `valueUrl`.
    Url,
    /// `resource` (a Bundle).
    Resource,
}

impl ValueKind {
    /// The JSON key of the value (`valueString`, ..., `resource`).
    pub fn key(self) -> &'static str {
        match self {
            ValueKind::String => "valueString",
            ValueKind::Reference => "valueReference",
            ValueKind::Boolean => "valueBoolean",
            ValueKind::Url => "valueUrl",
            ValueKind::Resource => "resource",
        }
    }
}

/// One row of the SetContextInputParameters table (D-03).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputParameter {
    /// The parameter name, case-sensitive.
    pub name: &'static str,
    /// How its value is written.
    pub kind: ValueKind,
    /// Whether it may repeat (`0..*`); every other input is `0..1`.
    pub repeats: bool,
}

/// Every `$set-context` input parameter: exactly these names are accepted (D-03).
pub const SET_CONTEXT_INPUTS: &[InputParameter] = &[
    InputParameter {
        name: APP_ID,
        kind: ValueKind::String,
        repeats: false,
    },
    InputParameter {
        name: PATIENT,
        kind: ValueKind::Reference,
        repeats: false,
    },
    InputParameter {
        name: ENCOUNTER,
        kind: ValueKind::Reference,
        repeats: false,
    },
    InputParameter {
        name: FHIR_USER,
        kind: ValueKind::Reference,
        repeats: false,
    },
    InputParameter {
        name: FHIR_CONTEXT,
        kind: ValueKind::Reference,
        repeats: true,
    },
    InputParameter {
        name: NEED_PATIENT_BANNER,
        kind: ValueKind::Boolean,
        repeats: false,
    },
    InputParameter {
        name: INTENT,
        kind: ValueKind::String,
        repeats: false,
    },
    InputParameter {
        name: SMART_STYLE_URL,
        kind: ValueKind::Url,
        repeats: false,
    },
    InputParameter {
        name: TENANT,
        kind: ValueKind::String,
        repeats: false,
    },
    InputParameter {
        name: RESOURCES,
        kind: ValueKind::Resource,
        repeats: false,
    },
];

/// The row for `name`, when it is a `$set-context` input.
pub fn set_context_input(name: &str) -> Option<&'static InputParameter> {
    SET_CONTEXT_INPUTS.iter().find(|p| p.name == name)
}

/// The resource types `fhirUser` may name (SMART App Launch 2.1).
pub const FHIR_USER_TYPES: &[&str] = &[
    "Practitioner",
    "PractitionerRole",
    "Patient",
    "RelatedPerson",
];
