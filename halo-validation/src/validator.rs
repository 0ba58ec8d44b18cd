//! The validator: definitions and options, shared, and the entry points.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use halo_model::fhir::RawResource;
use serde_json::Value;

use crate::definitions::{DefinitionError, Definitions};
use crate::model::Constraint;
use crate::options::ValidatorOptions;
use crate::report::ValidationReport;
use crate::walk::Walker;

/// A FHIR R4 validator driven by StructureDefinitions. Cheap to clone (an `Arc`), `Send + Sync`.
///
/// ```
/// use halo_model::fhir::RawResource;
/// use halo_validation::Validator;
///
/// let validator = Validator::with_embedded_definitions();
/// let patient = RawResource::from_slice(
///     br#"{"resourceType":"Patient","identifier":[{"system":"https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-patient-hcn"}]}"#,
/// )
/// .unwrap();
/// let report = validator.validate(&patient);
/// // CA Baseline: every identifier needs a value.
/// assert!(report.has_errors());
/// assert_eq!(report.errors().next().unwrap().expression[0], "Patient.identifier[0].value");
/// ```
#[derive(Clone)]
pub struct Validator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("Validator")
            .field("definitions", &inner.definitions)
            .field(
                "profiled_types",
                &inner
                    .options
                    .jurisdiction_profiles
                    .keys()
                    .collect::<Vec<_>>(),
            )
            .field("invariant_fixes", &inner.fixes.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

struct Inner {
    definitions: Arc<Definitions>,
    options: ValidatorOptions,
    fixes: HashMap<String, Arc<Constraint>>,
}

impl Validator {
    /// The embedded R4 and CA Baseline definitions with [`ValidatorOptions::ca_baseline`]. The
    /// definitions are compiled once per process and shared by every validator made this way.
    pub fn with_embedded_definitions() -> Validator {
        Validator::new(embedded(), ValidatorOptions::ca_baseline())
    }

    /// Definitions read from a directory (a FHIR package's `package/` folder, or files of
    /// StructureDefinitions, ValueSets and CodeSystems, single or in Bundles), on top of the
    /// embedded R4 and CA Baseline definitions (a definition with the same URL replaces the
    /// embedded one).
    pub fn from_directory(
        dir: impl AsRef<Path>,
        options: ValidatorOptions,
    ) -> Result<Validator, DefinitionError> {
        let definitions = Definitions::from_layers(&[dir.as_ref()])?;
        Ok(Validator::new(Arc::new(definitions), options))
    }

    /// A validator over loaded definitions.
    pub fn new(definitions: Arc<Definitions>, options: ValidatorOptions) -> Validator {
        let mut fixes = HashMap::new();
        for (key, expression) in &options.invariant_fixes {
            if let Some(original) = definitions.find_constraint(key) {
                fixes.insert(key.clone(), Arc::new(original.with_expression(expression)));
            }
        }
        Validator {
            inner: Arc::new(Inner {
                definitions,
                options,
                fixes,
            }),
        }
    }

    /// The same definitions with other options.
    pub fn with_options(&self, options: ValidatorOptions) -> Validator {
        Validator::new(self.inner.definitions.clone(), options)
    }

    /// The definitions.
    pub fn definitions(&self) -> &Definitions {
        &self.inner.definitions
    }

    /// The options.
    pub fn options(&self) -> &ValidatorOptions {
        &self.inner.options
    }

    /// Validates a resource: every finding at once.
    pub fn validate(&self, resource: &RawResource) -> ValidationReport {
        let inner = &*self.inner;
        let mut walker = Walker::new(&inner.definitions, &inner.options, &inner.fixes);
        walker.resource_object(resource.as_map(), resource.resource_type(), None);
        walker.finish()
    }

    /// Validates a resource given as JSON (anything: a non-object is reported, not a panic).
    pub fn validate_value(&self, resource: &Value) -> ValidationReport {
        let inner = &*self.inner;
        let mut walker = Walker::new(&inner.definitions, &inner.options, &inner.fixes);
        let path = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or("Resource")
            .to_owned();
        walker.resource(resource, &path, None);
        walker.finish()
    }
}

/// The embedded definitions, compiled on first use.
fn embedded() -> Arc<Definitions> {
    static EMBEDDED: OnceLock<Arc<Definitions>> = OnceLock::new();
    EMBEDDED
        .get_or_init(|| {
            // The embedded files are tested to load; an empty set (never expected) would report
            // every resource as "no definition" rather than crash a server.
            Arc::new(Definitions::embedded().unwrap_or_default())
        })
        .clone()
}
