//! Entry points for the fuzz targets (`fuzz/`) and their corpus replay on stable Rust: the
//! primitive checker and the FHIRPath engine are internal, so they are reached here rather than
//! through the validator, where a primitive or an expression is only one small part of each run.
//!
//! Built only with the `fuzzing` feature; not part of the supported API.

use std::sync::LazyLock;

use serde_json::Value;

use crate::Validator;
use crate::fhirpath::{self, Env, Item};

/// The validator whose definitions answer "is this a FHIR type name" during evaluation.
static VALIDATOR: LazyLock<Validator> = LazyLock::new(Validator::with_embedded_definitions);

/// Checks `value` against the FHIR primitive type `type_code` (`dateTime`, `id`, `integer`,
/// ...), exactly as the validator does for every primitive element.
pub fn check_primitive(type_code: &str, value: &Value) -> Result<(), String> {
    crate::primitives::check(type_code, value)
}

/// Parses a FHIRPath expression with the validator's parser; `Err` says why it does not parse.
pub fn parse_fhirpath(expression: &str) -> Result<(), String> {
    fhirpath::parse(expression).map(|_| ())
}

/// Parses `expression` and evaluates it as an invariant on `resource` (the focus, `%resource` and
/// `%rootResource`): `Ok(None)` for an empty result, `Err` when it does not parse or uses what the
/// engine does not support.
pub fn evaluate_fhirpath(expression: &str, resource: &Value) -> Result<Option<bool>, String> {
    let expr = fhirpath::parse(expression)?;
    let empty = serde_json::Map::new();
    let object = resource.as_object().unwrap_or(&empty);
    let definitions = VALIDATOR.definitions();
    let is_type = |suffix: &str| definitions.is_type_suffix(suffix);
    let env = Env {
        resource: object,
        root: object,
        is_type: &is_type,
    };
    fhirpath::evaluate(&expr, Item::Node(resource, None), &env)
        .and_then(|items| fhirpath::to_bool(&items))
        .map_err(|e| e.0)
}
