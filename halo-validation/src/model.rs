//! The parts of a FHIR `ElementDefinition` the validator reads, parsed once at load time.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::fhirpath::{self, Expr};

/// `max` of an element: a number or `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Max {
    /// At most this many.
    Bounded(u32),
    /// `*`.
    Unbounded,
}

impl Max {
    fn parse(text: &str) -> Option<Max> {
        if text == "*" {
            Some(Max::Unbounded)
        } else {
            text.parse().ok().map(Max::Bounded)
        }
    }

    /// Whether `count` items exceed it.
    pub(crate) fn exceeded_by(self, count: usize) -> bool {
        match self {
            Max::Bounded(max) => count > max as usize,
            Max::Unbounded => false,
        }
    }

    /// Whether the element repeats (JSON array).
    pub(crate) fn repeats(self) -> bool {
        !matches!(self, Max::Bounded(0 | 1))
    }
}

impl std::fmt::Display for Max {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Max::Bounded(n) => write!(f, "{n}"),
            Max::Unbounded => f.write_str("*"),
        }
    }
}

/// One `ElementDefinition.type`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TypeRef {
    /// The type code (`string`, `Reference`, `http://hl7.org/fhirpath/System.String`...).
    pub(crate) code: String,
    /// `profile`: profiles the value must conform to.
    pub(crate) profiles: Vec<String>,
    /// `targetProfile`: what a Reference may point at.
    pub(crate) target_profiles: Vec<String>,
}

/// `ElementDefinition.binding`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Binding {
    /// `required`, `extensible`, `preferred` or `example`.
    pub(crate) strength: String,
    /// The ValueSet canonical, without its `|version`.
    pub(crate) value_set: String,
}

/// One invariant (`ElementDefinition.constraint`).
#[derive(Debug, Clone)]
pub(crate) struct Constraint {
    /// The key, e.g. `pat-1`.
    pub(crate) key: String,
    /// `error` or `warning`.
    pub(crate) severity: String,
    /// The rule in words.
    pub(crate) human: String,
    /// The FHIRPath text as written in the definition.
    pub(crate) expression: String,
    /// The parsed expression, or why it could not be parsed.
    pub(crate) parsed: Result<Expr, String>,
    /// Marked as a best-practice rule: reported as information.
    pub(crate) best_practice: bool,
    /// The StructureDefinition that declared it.
    pub(crate) source: String,
}

impl Constraint {
    /// A constraint whose expression is replaced (a known defect in a definition).
    pub(crate) fn with_expression(&self, expression: &str) -> Constraint {
        Constraint {
            expression: expression.to_owned(),
            parsed: fhirpath::parse(expression),
            ..self.clone()
        }
    }
}

/// `ElementDefinition.slicing.discriminator`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Discriminator {
    /// `value`, `pattern`, `type`, `exists` or `profile`.
    pub(crate) kind: String,
    /// A FHIRPath restricted to member names (`url`, `coding.system`, `$this`).
    pub(crate) path: String,
}

/// `ElementDefinition.slicing`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Slicing {
    /// How slices are told apart.
    pub(crate) discriminators: Vec<Discriminator>,
    /// `closed` slicing rejects items that match no slice.
    pub(crate) closed: bool,
}

/// An element definition, reduced to what validation reads.
#[derive(Debug, Clone)]
pub(crate) struct ElementDef {
    /// `ElementDefinition.id` (`Patient.identifier:JHN.system`).
    pub(crate) id: String,
    /// `sliceName`.
    pub(crate) slice_name: Option<String>,
    /// `min`.
    pub(crate) min: u32,
    /// `max`.
    pub(crate) max: Max,
    /// `type`.
    pub(crate) types: Vec<TypeRef>,
    /// `contentReference` without its `#`.
    pub(crate) content_reference: Option<String>,
    /// `fixed[x]`.
    pub(crate) fixed: Option<Value>,
    /// `pattern[x]`.
    pub(crate) pattern: Option<Value>,
    /// `binding`.
    pub(crate) binding: Option<Binding>,
    /// `constraint`.
    pub(crate) constraints: Vec<Arc<Constraint>>,
    /// `slicing`.
    pub(crate) slicing: Option<Slicing>,
    /// `maxLength`.
    pub(crate) max_length: Option<usize>,
}

impl ElementDef {
    /// Reads one element of a snapshot or differential. `source` names the StructureDefinition.
    /// Elements of a differential omit what they do not change: the `Option`s say what was given.
    pub(crate) fn parse(json: &Map<String, Value>, source: &str) -> Result<PartialDef, String> {
        let id = json
            .get("id")
            .or_else(|| json.get("path"))
            .and_then(Value::as_str)
            .ok_or("an element has neither `id` nor `path`")?
            .to_owned();
        let min = match json.get("min") {
            Some(value) => Some(
                value
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| format!("{id}: `min` is not a whole number"))?,
            ),
            None => None,
        };
        let max = match json.get("max") {
            Some(value) => Some(
                value
                    .as_str()
                    .and_then(Max::parse)
                    .ok_or_else(|| format!("{id}: `max` is neither a number nor `*`"))?,
            ),
            None => None,
        };
        let types = json.get("type").and_then(Value::as_array).map(|types| {
            types
                .iter()
                .filter_map(|t| {
                    let code = t.get("code")?.as_str()?.to_owned();
                    Some(TypeRef {
                        code,
                        profiles: strings(t.get("profile")),
                        target_profiles: strings(t.get("targetProfile")),
                    })
                })
                .collect()
        });
        let mut fixed = None;
        let mut pattern = None;
        for (key, value) in json {
            if key.starts_with("fixed") {
                fixed = Some(value.clone());
            } else if key.starts_with("pattern") {
                pattern = Some(value.clone());
            }
        }
        let binding = json.get("binding").and_then(|b| {
            Some(Binding {
                strength: b.get("strength")?.as_str()?.to_owned(),
                value_set: canonical_base(b.get("valueSet")?.as_str()?).to_owned(),
            })
        });
        let constraints = json.get("constraint").and_then(Value::as_array).map(|cs| {
            cs.iter()
                .filter_map(|c| parse_constraint(c, source))
                .map(Arc::new)
                .collect()
        });
        let slicing = json.get("slicing").map(|s| Slicing {
            discriminators: s
                .get("discriminator")
                .and_then(Value::as_array)
                .map(|ds| {
                    ds.iter()
                        .filter_map(|d| {
                            Some(Discriminator {
                                kind: d.get("type")?.as_str()?.to_owned(),
                                path: d.get("path")?.as_str()?.to_owned(),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default(),
            closed: s.get("rules").and_then(Value::as_str) == Some("closed"),
        });
        Ok(PartialDef {
            id,
            slice_name: json
                .get("sliceName")
                .and_then(Value::as_str)
                .map(str::to_owned),
            min,
            max,
            types,
            content_reference: json
                .get("contentReference")
                .and_then(Value::as_str)
                .map(|r| r.trim_start_matches('#').to_owned()),
            fixed,
            pattern,
            binding,
            constraints,
            slicing,
            max_length: json
                .get("maxLength")
                .and_then(Value::as_u64)
                .and_then(|n| usize::try_from(n).ok()),
        })
    }
}

/// An element as written in a snapshot or a differential: `None` is "not stated".
#[derive(Debug, Clone)]
pub(crate) struct PartialDef {
    pub(crate) id: String,
    pub(crate) slice_name: Option<String>,
    pub(crate) min: Option<u32>,
    pub(crate) max: Option<Max>,
    pub(crate) types: Option<Vec<TypeRef>>,
    pub(crate) content_reference: Option<String>,
    pub(crate) fixed: Option<Value>,
    pub(crate) pattern: Option<Value>,
    pub(crate) binding: Option<Binding>,
    pub(crate) constraints: Option<Vec<Arc<Constraint>>>,
    pub(crate) slicing: Option<Slicing>,
    pub(crate) max_length: Option<usize>,
}

impl PartialDef {
    /// A complete definition from a snapshot element (unstated `min`/`max` default to 0..*).
    pub(crate) fn into_def(self) -> ElementDef {
        ElementDef {
            id: self.id,
            slice_name: self.slice_name,
            min: self.min.unwrap_or(0),
            max: self.max.unwrap_or(Max::Unbounded),
            types: self.types.unwrap_or_default(),
            content_reference: self.content_reference,
            fixed: self.fixed,
            pattern: self.pattern,
            binding: self.binding,
            constraints: self.constraints.unwrap_or_default(),
            slicing: self.slicing,
            max_length: self.max_length,
        }
    }

    /// Overlays a differential element on the definition it constrains.
    pub(crate) fn apply_to(&self, def: &mut ElementDef) {
        if let Some(min) = self.min {
            def.min = min;
        }
        if let Some(max) = self.max {
            def.max = max;
        }
        if let Some(types) = &self.types {
            def.types = types.clone();
        }
        if self.content_reference.is_some() {
            def.content_reference = self.content_reference.clone();
        }
        if self.fixed.is_some() {
            def.fixed = self.fixed.clone();
        }
        if self.pattern.is_some() {
            def.pattern = self.pattern.clone();
        }
        if self.binding.is_some() {
            def.binding = self.binding.clone();
        }
        if let Some(constraints) = &self.constraints {
            for constraint in constraints {
                // A differential may repeat an inherited constraint; keep one of each key.
                if !def.constraints.iter().any(|c| c.key == constraint.key) {
                    def.constraints.push(constraint.clone());
                }
            }
        }
        if self.slicing.is_some() {
            def.slicing = self.slicing.clone();
        }
        if self.max_length.is_some() {
            def.max_length = self.max_length;
        }
    }
}

fn parse_constraint(json: &Value, source: &str) -> Option<Constraint> {
    let key = json.get("key")?.as_str()?.to_owned();
    let expression = json.get("expression")?.as_str()?.to_owned();
    let best_practice = json
        .get("extension")
        .and_then(Value::as_array)
        .is_some_and(|exts| {
            exts.iter().any(|e| {
                e.get("url").and_then(Value::as_str)
                    == Some(
                        "http://hl7.org/fhir/StructureDefinition/elementdefinition-bestpractice",
                    )
                    && e.get("valueBoolean") == Some(&Value::Bool(true))
            })
        });
    Some(Constraint {
        severity: json
            .get("severity")
            .and_then(Value::as_str)
            .unwrap_or("error")
            .to_owned(),
        human: json
            .get("human")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        parsed: fhirpath::parse(&expression),
        expression,
        key,
        best_practice,
        source: source.to_owned(),
    })
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(|s| canonical_base(s).to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A canonical URL without its `|version` suffix.
pub(crate) fn canonical_base(url: &str) -> &str {
    url.split('|').next().unwrap_or(url)
}
