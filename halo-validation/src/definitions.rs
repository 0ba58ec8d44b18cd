//! Loading StructureDefinitions, ValueSets and CodeSystems, and compiling them into element trees.
//!
//! Definitions come as JSON bytes: single resources or Bundles of them (the layout of the FHIR
//! `profiles-*.json` files), or a directory holding such files (the layout of a FHIR package's
//! `package/` folder). Base types are compiled from their snapshots; a profile is compiled by
//! overlaying its differential on its base, so a package without snapshots loads too.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::model::{Constraint, ElementDef, PartialDef, canonical_base};
use crate::terminology::Terminology;
use crate::tree::{self, Node, TypeTrees};

/// Why definitions could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    /// A file is not JSON.
    #[error("`{source_name}` is not valid JSON: {message}")]
    Json {
        /// The file or source the bytes came from.
        source_name: String,
        /// The parser's message.
        message: String,
    },
    /// A directory or file could not be read.
    #[error("cannot read `{path}`: {message}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The operating system's message.
        message: String,
    },
    /// A StructureDefinition is malformed.
    #[error("StructureDefinition `{url}` is malformed: {message}")]
    Malformed {
        /// Its canonical URL.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// Nothing usable was found.
    #[error("no StructureDefinition was found in the definitions given")]
    Empty,
}

/// `StructureDefinition.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Primitive,
    Complex,
    Resource,
    Logical,
}

/// A compiled StructureDefinition.
#[derive(Debug)]
pub(crate) struct Structure {
    /// Canonical URL.
    pub(crate) url: String,
    /// The type it defines or constrains.
    pub(crate) type_name: String,
    /// Its kind.
    pub(crate) kind: Kind,
    /// `derivation = constraint`: a profile.
    pub(crate) is_profile: bool,
    /// The element tree.
    pub(crate) tree: Node,
}

/// A set of definitions, compiled and indexed. Build once, share behind an `Arc`.
#[derive(Default)]
pub struct Definitions {
    structures: HashMap<String, Arc<Structure>>,
    base_by_type: HashMap<String, Arc<Structure>>,
    type_suffixes: HashSet<String>,
    pub(crate) terminology: Terminology,
    warnings: Vec<String>,
}

/// The definitions embedded in the crate: R4 4.0.1 and CA Baseline (see `definitions/PROVENANCE.md`).
const EMBEDDED: &[(&str, &str)] = &[
    (
        "r4/resources.json",
        include_str!("../definitions/r4/resources.json"),
    ),
    (
        "r4/types.json",
        include_str!("../definitions/r4/types.json"),
    ),
    (
        "r4/terminology.json",
        include_str!("../definitions/r4/terminology.json"),
    ),
    (
        "ca-baseline/profiles.json",
        include_str!("../definitions/ca-baseline/profiles.json"),
    ),
];

/// The shapes of the other resource types a SoFA serves, for the XML format only (see
/// `definitions/PROVENANCE.md`).
const EMBEDDED_SHAPES: (&str, &str) = (
    "r4/structure-only.json",
    include_str!("../definitions/r4/structure-only.json"),
);

impl Definitions {
    /// The R4 definitions and the structure-only shapes: every resource type the SoFA serves,
    /// without profiles or terminology. What the XML format reads.
    pub(crate) fn embedded_shapes() -> Definitions {
        let sources = EMBEDDED[..2]
            .iter()
            .chain(std::iter::once(&EMBEDDED_SHAPES))
            .map(|(name, text)| ((*name).to_owned(), text.as_bytes().to_vec()));
        // The embedded files are checked by the tests; a failure here is a build defect.
        Definitions::from_sources(sources).unwrap_or_default()
    }

    /// The R4 and CA Baseline definitions embedded in the crate.
    pub fn embedded() -> Result<Definitions, DefinitionError> {
        Definitions::from_sources(
            EMBEDDED
                .iter()
                .map(|(name, text)| ((*name).to_owned(), text.as_bytes().to_vec())),
        )
    }

    /// Definitions from named JSON documents (single resources or Bundles).
    pub fn from_sources(
        sources: impl IntoIterator<Item = (String, Vec<u8>)>,
    ) -> Result<Definitions, DefinitionError> {
        let mut resources = Vec::new();
        for (name, bytes) in sources {
            let json: Value =
                serde_json::from_slice(&bytes).map_err(|e| DefinitionError::Json {
                    source_name: name.clone(),
                    message: e.to_string(),
                })?;
            collect(json, &mut resources);
        }
        Definitions::from_resources(resources)
    }

    /// Every `*.json` file under `dir` (recursively; `package.json` and `.index.json` skipped).
    pub fn from_directory(dir: &Path) -> Result<Definitions, DefinitionError> {
        let mut sources = Vec::new();
        read_dir(dir, &mut sources)?;
        Definitions::from_sources(sources)
    }

    /// The embedded definitions plus every `*.json` file under each directory (e.g. a
    /// jurisdiction's package on top of the embedded R4 and CA Baseline).
    pub fn from_layers(layers: &[&Path]) -> Result<Definitions, DefinitionError> {
        let mut sources: Vec<(String, Vec<u8>)> = EMBEDDED
            .iter()
            .map(|(name, text)| ((*name).to_owned(), text.as_bytes().to_vec()))
            .collect();
        for layer in layers {
            read_dir(layer, &mut sources)?;
        }
        Definitions::from_sources(sources)
    }

    fn from_resources(resources: Vec<Value>) -> Result<Definitions, DefinitionError> {
        let mut defs = Definitions::default();
        let mut pending = Vec::new();
        for resource in resources {
            match resource.get("resourceType").and_then(Value::as_str) {
                Some("StructureDefinition") => pending.push(resource),
                Some("ValueSet" | "CodeSystem") => defs.terminology.add(&resource),
                _ => {}
            }
        }
        if pending.is_empty() {
            return Err(DefinitionError::Empty);
        }
        defs.terminology.expand_all();
        // Base types first (from snapshots), then profiles in dependency order: data-type
        // profiles and extensions before the resource profiles that use them.
        let (bases, mut profiles): (Vec<Value>, Vec<Value>) = pending
            .into_iter()
            .partition(|sd| sd.get("derivation").and_then(Value::as_str) != Some("constraint"));
        for sd in &bases {
            defs.add_base(sd)?;
        }
        profiles.sort_by_key(|sd| sd.get("kind").and_then(Value::as_str) == Some("resource"));
        loop {
            let before = profiles.len();
            let mut waiting = Vec::new();
            for sd in profiles {
                let base = sd
                    .get("baseDefinition")
                    .and_then(Value::as_str)
                    .map(canonical_base)
                    .unwrap_or_default();
                if defs.structures.contains_key(base) {
                    defs.add_profile(&sd, base)?;
                } else {
                    waiting.push(sd);
                }
            }
            profiles = waiting;
            if profiles.is_empty() || profiles.len() == before {
                break;
            }
        }
        for sd in profiles {
            let url = sd.get("url").and_then(Value::as_str).unwrap_or("?");
            let base = sd
                .get("baseDefinition")
                .and_then(Value::as_str)
                .unwrap_or("?");
            defs.warnings.push(format!(
                "profile `{url}` not loaded: its base `{base}` is not among the definitions"
            ));
        }
        Ok(defs)
    }

    fn add_base(&mut self, sd: &Value) -> Result<(), DefinitionError> {
        let url = string(sd, "url");
        let elements = elements(sd, "snapshot", &url)?;
        if elements.is_empty() {
            self.warnings.push(format!(
                "`{url}` has no snapshot and no base to derive one from; not loaded"
            ));
            return Ok(());
        }
        let tree = tree::from_snapshot(elements).map_err(|message| DefinitionError::Malformed {
            url: url.clone(),
            message,
        })?;
        let structure = Arc::new(Structure {
            type_name: string(sd, "type"),
            kind: kind(sd),
            is_profile: false,
            url: url.clone(),
            tree,
        });
        self.type_suffixes
            .insert(tree::type_suffix(&structure.type_name));
        self.base_by_type
            .insert(structure.type_name.clone(), structure.clone());
        self.structures.insert(url, structure);
        Ok(())
    }

    fn add_profile(&mut self, sd: &Value, base_url: &str) -> Result<(), DefinitionError> {
        let url = string(sd, "url");
        let Some(base) = self.structures.get(base_url).cloned() else {
            return Ok(());
        };
        let differential = elements(sd, "differential", &url)?;
        let tree = if differential.is_empty() {
            let snapshot = elements(sd, "snapshot", &url)?;
            if snapshot.is_empty() {
                base.tree.clone()
            } else {
                tree::from_snapshot(snapshot).map_err(|message| DefinitionError::Malformed {
                    url: url.clone(),
                    message,
                })?
            }
        } else {
            let (tree, warnings) = tree::apply_differential(&base.tree, &differential, self);
            self.warnings
                .extend(warnings.into_iter().map(|w| format!("{url}: {w}")));
            tree
        };
        let structure = Arc::new(Structure {
            type_name: base.type_name.clone(),
            kind: base.kind,
            is_profile: true,
            url: url.clone(),
            tree,
        });
        self.structures.insert(url, structure);
        Ok(())
    }

    /// A StructureDefinition by canonical URL (a `|version` suffix is ignored).
    pub(crate) fn structure(&self, url: &str) -> Option<&Arc<Structure>> {
        self.structures.get(canonical_base(url))
    }

    /// The base definition of a type (`Patient`, `string`, `Quantity`).
    pub(crate) fn base(&self, type_name: &str) -> Option<&Arc<Structure>> {
        self.base_by_type.get(type_name)
    }

    /// Whether a capitalised name is the JSON suffix of a known type (`Quantity`, `DateTime`).
    pub(crate) fn is_type_suffix(&self, suffix: &str) -> bool {
        self.type_suffixes.contains(suffix)
    }

    /// Whether a type is a primitive.
    pub(crate) fn is_primitive(&self, code: &str) -> bool {
        code.starts_with("http://hl7.org/fhirpath/System.")
            || self.base(code).is_some_and(|s| s.kind == Kind::Primitive)
    }

    /// The resource type a profile or base URL constrains, if known. Core URLs
    /// (`http://hl7.org/fhir/StructureDefinition/Group`) name their type even when not loaded.
    pub(crate) fn type_of_url(&self, url: &str) -> Option<String> {
        if let Some(structure) = self.structure(url) {
            return Some(structure.type_name.clone());
        }
        canonical_base(url)
            .strip_prefix("http://hl7.org/fhir/StructureDefinition/")
            .filter(|name| name.starts_with(char::is_uppercase) && !name.contains('-'))
            .map(str::to_owned)
    }

    /// Resource types with a base definition.
    pub fn resource_types(&self) -> Vec<&str> {
        let mut types: Vec<&str> = self
            .base_by_type
            .values()
            .filter(|s| s.kind == Kind::Resource)
            .map(|s| s.type_name.as_str())
            .collect();
        types.sort_unstable();
        types
    }

    /// Canonical URLs of the loaded profiles (constraints), sorted.
    pub fn profile_urls(&self) -> Vec<&str> {
        let mut urls: Vec<&str> = self
            .structures
            .values()
            .filter(|s| s.is_profile)
            .map(|s| s.url.as_str())
            .collect();
        urls.sort_unstable();
        urls
    }

    /// Problems met while loading that did not stop it (an element a profile constrains that
    /// could not be placed, a profile whose base is missing).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The first constraint with this key in any definition.
    pub(crate) fn find_constraint(&self, key: &str) -> Option<&Arc<Constraint>> {
        let mut urls: Vec<&String> = self.structures.keys().collect();
        urls.sort_unstable();
        urls.into_iter()
            .filter_map(|url| find_in(&self.structures[url].tree, key))
            .next()
    }

    /// Every distinct invariant of the loaded definitions: `(key, severity, expression, parses)`,
    /// sorted by key.
    pub fn invariants(&self) -> Vec<InvariantInfo> {
        let mut all: Vec<InvariantInfo> = Vec::new();
        for structure in self.structures.values() {
            let mut stack = vec![&structure.tree];
            while let Some(node) = stack.pop() {
                for c in &node.def.constraints {
                    if !all
                        .iter()
                        .any(|i| i.key == c.key && i.expression == c.expression)
                    {
                        all.push(InvariantInfo {
                            key: c.key.clone(),
                            severity: c.severity.clone(),
                            expression: c.expression.clone(),
                            parse_error: c.parsed.as_ref().err().cloned(),
                            outside_subset: c
                                .parsed
                                .as_ref()
                                .map(crate::fhirpath::unsupported_features)
                                .unwrap_or_default(),
                            source: c.source.clone(),
                        });
                    }
                }
                stack.extend(node.children.iter().chain(&node.slices));
            }
        }
        all.sort_by(|a, b| a.key.cmp(&b.key).then(a.expression.cmp(&b.expression)));
        all
    }

    /// `(value sets known, value sets that could be enumerated)`.
    pub fn value_set_counts(&self) -> (usize, usize) {
        self.terminology.counts()
    }
}

impl std::fmt::Debug for Definitions {
    // The compiled trees run to megabytes: a log line shows what is loaded, not the trees.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Definitions")
            .field("structures", &self.structures.len())
            .field("profiles", &self.profile_urls().len())
            .field("value_sets", &self.terminology.counts())
            .field("warnings", &self.warnings.len())
            .finish_non_exhaustive()
    }
}

impl TypeTrees for Definitions {
    fn type_tree(&self, code: &str, profiles: &[String]) -> Option<&Node> {
        profiles
            .iter()
            .find_map(|p| self.structure(p))
            .or_else(|| self.base(code))
            .map(|s| &s.tree)
    }
}

/// One invariant of the loaded definitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvariantInfo {
    /// Its key (`pat-1`).
    pub key: String,
    /// `error` or `warning`.
    pub severity: String,
    /// The FHIRPath expression.
    pub expression: String,
    /// Why the expression does not parse, if it does not.
    pub parse_error: Option<String>,
    /// What in the expression is outside the supported FHIRPath subset (empty: fully
    /// supported). Invariants with such features are reported as "not evaluated" where they
    /// apply, never as passed.
    pub outside_subset: Vec<String>,
    /// The StructureDefinition that declares it (first seen).
    pub source: String,
}

fn find_in<'n>(node: &'n Node, key: &str) -> Option<&'n Arc<Constraint>> {
    node.def
        .constraints
        .iter()
        .find(|c| c.key == key)
        .or_else(|| {
            node.children
                .iter()
                .chain(&node.slices)
                .find_map(|child| find_in(child, key))
        })
}

fn collect(json: Value, out: &mut Vec<Value>) {
    if json.get("resourceType").and_then(Value::as_str) == Some("Bundle") {
        if let Some(Value::Array(entries)) = json.get("entry") {
            for entry in entries {
                if let Some(resource) = entry.get("resource") {
                    collect(resource.clone(), out);
                }
            }
        }
    } else if json.get("resourceType").is_some() {
        out.push(json);
    }
}

fn read_dir(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) -> Result<(), DefinitionError> {
    let io = |path: &Path, e: std::io::Error| DefinitionError::Io {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io(dir, e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            read_dir(&path, out)?;
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if !name.ends_with(".json") || name == "package.json" || name.starts_with('.') {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
        out.push((path.display().to_string(), bytes));
    }
    Ok(())
}

fn string(sd: &Value, key: &str) -> String {
    sd.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn kind(sd: &Value) -> Kind {
    match sd.get("kind").and_then(Value::as_str) {
        Some("primitive-type") => Kind::Primitive,
        Some("complex-type") => Kind::Complex,
        Some("resource") => Kind::Resource,
        _ => Kind::Logical,
    }
}

fn elements(sd: &Value, part: &str, url: &str) -> Result<Vec<PartialDef>, DefinitionError> {
    let Some(list) = sd
        .get(part)
        .and_then(|p| p.get("element"))
        .and_then(Value::as_array)
    else {
        return Ok(Vec::new());
    };
    list.iter()
        .map(|element| {
            element
                .as_object()
                .ok_or_else(|| "an element is not an object".to_owned())
                .and_then(|e| ElementDef::parse(e, url))
                .map_err(|message| DefinitionError::Malformed {
                    url: url.to_owned(),
                    message,
                })
        })
        .collect()
}
