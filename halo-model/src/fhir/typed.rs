//! Typed FHIR resources through `fhir-model` (feature `fhir-model`).
//!
//! `fhir-model` generates R4B types; R4B and R4 4.0.1 share the JSON of every resource type HALO
//! exchanges, so the same types read and write R4 JSON. The generic serde code of those types is
//! instantiated here once, behind non-generic functions, so no other crate pays for compiling it.
//!
//! Typed views are for reading and building. `fhir-model` drops elements it does not know, so
//! never store or forward a typed resource in place of the [`RawResource`] it came from.
//!
//! ```
//! use halo_model::fhir::RawResource;
//! use halo_model::fhir::typed::TypedResource;
//!
//! let raw = RawResource::from_slice(
//!     br#"{"resourceType":"Patient","id":"p1","name":[{"family":"Tremblay"}]}"#,
//! ).unwrap();
//! let TypedResource::Patient(patient) = TypedResource::from_raw(&raw).unwrap() else {
//!     panic!("a Patient");
//! };
//! assert_eq!(patient.name[0].as_ref().and_then(|n| n.family.as_deref()), Some("Tremblay"));
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::RawResource;

/// The generated R4B resource types (`Patient`, `Observation`, ...), for building and reading.
pub use fhir_model::r4b::resources;

/// Why a resource could not be read as a typed resource.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypedError {
    /// No typed view exists for this resource type.
    #[error("resource type `{0}` has no typed view in this SDK")]
    Unsupported(String),
    /// The JSON does not fit the resource type (wrong element type, bad primitive...).
    #[error("the {resource_type} does not fit FHIR R4: {reason}")]
    Invalid {
        /// The resource type.
        resource_type: String,
        /// What did not fit.
        reason: String,
    },
}

macro_rules! typed_resources {
    ($($name:ident),* $(,)?) => {
        /// A typed resource of one of the types HALO exchanges (decision D-14's default list).
        #[derive(Debug, Clone, PartialEq)]
        #[allow(clippy::large_enum_variant)]
        pub enum TypedResource {
            $(
                #[doc = concat!("A ", stringify!($name), ".")]
                $name(resources::$name),
            )*
        }

        impl TypedResource {
            /// The resource types that have a typed view.
            pub const TYPES: &'static [&'static str] = &[$(stringify!($name)),*];

            /// The resource type.
            pub fn resource_type(&self) -> &'static str {
                match self {
                    $(TypedResource::$name(_) => stringify!($name),)*
                }
            }

            /// Reads a raw resource as its typed view.
            pub fn from_raw(raw: &RawResource) -> Result<TypedResource, TypedError> {
                let json = raw.to_value();
                let invalid = |e: serde_json::Error| TypedError::Invalid {
                    resource_type: raw.resource_type().to_string(),
                    reason: e.to_string(),
                };
                match raw.resource_type() {
                    $(stringify!($name) => resources::$name::deserialize(&json)
                        .map(TypedResource::$name)
                        .map_err(invalid),)*
                    other => Err(TypedError::Unsupported(other.to_string())),
                }
            }

            /// The FHIR JSON of this resource.
            pub fn to_value(&self) -> Value {
                let json = match self {
                    $(TypedResource::$name(r) => r.serialize(serde_json::value::Serializer),)*
                };
                // The generated types serialise to JSON without error: their keys are strings.
                json.unwrap_or(Value::Null)
            }

            /// The FHIR JSON of this resource, as a raw resource.
            pub fn to_raw(&self) -> Result<RawResource, TypedError> {
                RawResource::from_value(self.to_value()).map_err(|e| TypedError::Invalid {
                    resource_type: self.resource_type().to_string(),
                    reason: e.to_string(),
                })
            }
        }

        $(
            impl From<resources::$name> for TypedResource {
                fn from(resource: resources::$name) -> TypedResource {
                    TypedResource::$name(resource)
                }
            }
        )*
    };
}

typed_resources!(
    Patient,
    Practitioner,
    PractitionerRole,
    Organization,
    Location,
    Encounter,
    Observation,
    Condition,
    AllergyIntolerance,
    MedicationRequest,
    MedicationStatement,
    Immunization,
    Procedure,
    DiagnosticReport,
    DocumentReference,
    RelatedPerson,
    QuestionnaireResponse,
    ServiceRequest,
    CarePlan,
);

/// Parses FHIR JSON bytes into a typed resource.
pub fn parse(bytes: &[u8]) -> Result<TypedResource, TypedError> {
    let raw = RawResource::from_slice(bytes).map_err(|e| TypedError::Invalid {
        resource_type: "resource".into(),
        reason: e.to_string(),
    })?;
    TypedResource::from_raw(&raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/../fixtures/halo/third-party-zedwerks/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn every_resource_of_the_third_party_requests_reads_as_a_typed_resource() {
        let mut seen = 0;
        for size in ["XXS", "XS", "S", "M", "L", "XL"] {
            let request = fixture(&format!("set-context-input-{size}.json"));
            for parameter in request["parameter"].as_array().unwrap() {
                let Some(entries) = parameter["resource"]["entry"].as_array() else {
                    continue;
                };
                for entry in entries {
                    let raw = RawResource::from_value(entry["resource"].clone()).unwrap();
                    match TypedResource::from_raw(&raw) {
                        Ok(typed) => {
                            assert_eq!(typed.resource_type(), raw.resource_type());
                            seen += 1;
                        }
                        Err(TypedError::Unsupported(_)) => {}
                        Err(e) => panic!("{size}: {e}"),
                    }
                }
            }
        }
        assert!(seen > 10, "only {seen} typed resources read");
    }

    #[test]
    fn typed_round_trip_keeps_known_elements() {
        let input = json!({
            "resourceType": "Observation",
            "id": "o1",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2339-0"}]},
            "subject": {"reference": "Patient/p1"},
            "valueQuantity": {"value": 5.4, "unit": "mmol/L"}
        });
        let raw = RawResource::from_value(input.clone()).unwrap();
        let typed = TypedResource::from_raw(&raw).unwrap();
        assert_eq!(typed.to_value(), input);
        assert_eq!(
            typed.to_raw().unwrap().reference().as_deref(),
            Some("Observation/o1")
        );
    }

    #[test]
    fn wrong_shapes_and_unknown_types_are_typed_errors() {
        let bad =
            RawResource::from_value(json!({"resourceType": "Patient", "active": "yes"})).unwrap();
        assert!(matches!(
            TypedResource::from_raw(&bad),
            Err(TypedError::Invalid { resource_type, .. }) if resource_type == "Patient"
        ));
        let other = RawResource::from_value(json!({"resourceType": "Claim"})).unwrap();
        assert_eq!(
            TypedResource::from_raw(&other),
            Err(TypedError::Unsupported("Claim".into()))
        );
        assert!(parse(b"[]").is_err());
    }
}
