//! ValueSets and CodeSystems: enumerating a ValueSet so a required binding can be checked.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::model::canonical_base;

/// The codes of an enumerable ValueSet.
#[derive(Debug, Default)]
pub(crate) struct Codes {
    pairs: HashSet<(String, String)>,
    codes: HashSet<String>,
}

impl Codes {
    /// Whether `system|code` is in the set (`system` `None`: a bare `code` element).
    pub(crate) fn contains(&self, system: Option<&str>, code: &str) -> bool {
        match system {
            Some(system) => self.pairs.contains(&(system.to_owned(), code.to_owned())),
            None => self.codes.contains(code),
        }
    }

    /// A few of the codes, for messages.
    pub(crate) fn sample(&self, limit: usize) -> Vec<&str> {
        let mut codes: Vec<&str> = self.codes.iter().map(String::as_str).collect();
        codes.sort_unstable();
        codes.truncate(limit);
        codes
    }

    /// How many codes.
    pub(crate) fn len(&self) -> usize {
        self.codes.len()
    }
}

/// The ValueSets and CodeSystems known to a validator.
#[derive(Debug, Default)]
pub(crate) struct Terminology {
    code_systems: HashMap<String, Value>,
    value_sets: HashMap<String, Value>,
    expanded: HashMap<String, Option<Codes>>,
}

impl Terminology {
    /// Adds a ValueSet or CodeSystem resource.
    pub(crate) fn add(&mut self, resource: &Value) {
        let Some(url) = resource.get("url").and_then(Value::as_str) else {
            return;
        };
        match resource.get("resourceType").and_then(Value::as_str) {
            Some("CodeSystem") => {
                self.code_systems.insert(url.to_owned(), resource.clone());
            }
            Some("ValueSet") => {
                self.value_sets.insert(url.to_owned(), resource.clone());
            }
            _ => {}
        }
    }

    /// Enumerates every ValueSet once; those that cannot be enumerated (filters, an unknown code
    /// system, a code system that is not complete) are kept as `None`.
    pub(crate) fn expand_all(&mut self) {
        let urls: Vec<String> = self.value_sets.keys().cloned().collect();
        for url in urls {
            let codes = self.expand(&url, 0);
            self.expanded.insert(url, codes);
        }
        self.value_sets.clear();
        self.code_systems.clear();
    }

    fn expand(&self, url: &str, depth: usize) -> Option<Codes> {
        let value_set = self.value_sets.get(canonical_base(url))?;
        if depth > 8 {
            return None;
        }
        let mut codes = Codes::default();
        let includes = value_set.get("compose")?.get("include")?.as_array()?;
        for include in includes {
            if include.get("filter").is_some() {
                return None;
            }
            if let Some(imports) = include.get("valueSet").and_then(Value::as_array) {
                for import in imports.iter().filter_map(Value::as_str) {
                    let imported = self.expand(import, depth + 1)?;
                    codes.pairs.extend(imported.pairs);
                    codes.codes.extend(imported.codes);
                }
            }
            let Some(system) = include.get("system").and_then(Value::as_str) else {
                continue;
            };
            let mut add = |code: &str| {
                codes.pairs.insert((system.to_owned(), code.to_owned()));
                codes.codes.insert(code.to_owned());
            };
            if let Some(concepts) = include.get("concept").and_then(Value::as_array) {
                for concept in concepts {
                    if let Some(code) = concept.get("code").and_then(Value::as_str) {
                        add(code);
                    }
                }
            } else {
                let code_system = self.code_systems.get(system)?;
                if code_system.get("content").and_then(Value::as_str) != Some("complete") {
                    return None;
                }
                let mut stack: Vec<&Value> = code_system
                    .get("concept")
                    .and_then(Value::as_array)
                    .map(|c| c.iter().collect())
                    .unwrap_or_default();
                while let Some(concept) = stack.pop() {
                    if let Some(code) = concept.get("code").and_then(Value::as_str) {
                        add(code);
                    }
                    if let Some(children) = concept.get("concept").and_then(Value::as_array) {
                        stack.extend(children);
                    }
                }
            }
        }
        if value_set
            .get("compose")
            .and_then(|c| c.get("exclude"))
            .is_some()
        {
            return None;
        }
        Some(codes)
    }

    /// The codes of a ValueSet: `None` when it is unknown or cannot be enumerated.
    pub(crate) fn codes(&self, url: &str) -> Option<&Codes> {
        self.expanded.get(canonical_base(url))?.as_ref()
    }

    /// How many ValueSets are known, and how many of them are enumerable.
    pub(crate) fn counts(&self) -> (usize, usize) {
        (
            self.expanded.len(),
            self.expanded.values().filter(|c| c.is_some()).count(),
        )
    }
}
