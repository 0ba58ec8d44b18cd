//! Reading a catalog document into a [`Catalog`], leniently or strictly (REQ CAT-09).

use crate::finding::{Code, Finding, Report};
use crate::model::{AppEntry, Catalog};
use crate::validate::validate_items;
use halo_model::fhir::json_kind;
use serde::Deserialize;
use serde_json::Value;

/// How to treat entries that break the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Keep the valid entries, drop the invalid ones, and report why (what a PoC showing a
    /// catalog wants: one broken entry must not hide the others).
    #[default]
    Lenient,
    /// Fail the whole list when any entry has an error (what a catalog publisher wants before
    /// publishing).
    Strict,
}

/// Why a catalog could not be read at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// The bytes are not JSON.
    #[error("the catalog is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The JSON is not an array of entries.
    #[error("the catalog must be a JSON array of app entries, found {found}")]
    NotAnArray {
        /// The kind of JSON value found instead (`an object`, `a string`, …).
        found: &'static str,
    },
    /// Strict mode only: at least one entry has an error. The report holds every finding.
    #[error("the catalog has {} error(s); the first: {}", .0.count(crate::Severity::Error), first_error(.0))]
    Invalid(Report),
}

impl CatalogError {
    /// A stable machine-readable code: `invalid-json`, `not-an-array` or `invalid-entries`.
    pub fn code(&self) -> &'static str {
        match self {
            CatalogError::Json(_) => "invalid-json",
            CatalogError::NotAnArray { .. } => "not-an-array",
            CatalogError::Invalid(_) => "invalid-entries",
        }
    }
}

fn first_error(report: &Report) -> String {
    report
        .errors()
        .next()
        .map(|f| format!("{}: {}", f.path, f.message))
        .unwrap_or_default()
}

/// A catalog that was read, with what validation found on the way.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    /// The entries without errors (lenient mode) or all entries (strict mode, which succeeds
    /// only when none has an error).
    pub catalog: Catalog,
    /// Every finding, including those of the entries left out.
    pub report: Report,
    /// For each entry of `catalog`, its index in the document (so findings and entries can be
    /// matched up after invalid entries were left out).
    pub source_indices: Vec<usize>,
}

impl Catalog {
    /// Reads and validates catalog JSON.
    ///
    /// ```
    /// use halo_catalog::{Catalog, Mode};
    /// let json = br#"[{"id": "oops"}]"#;
    /// let lenient = Catalog::parse(json, Mode::Lenient)?;
    /// assert!(lenient.catalog.is_empty());           // the broken entry is left out…
    /// assert!(lenient.report.has_errors());          // …and the report says why
    /// assert!(Catalog::parse(json, Mode::Strict).is_err());
    /// # Ok::<(), halo_catalog::CatalogError>(())
    /// ```
    pub fn parse(bytes: &[u8], mode: Mode) -> Result<Parsed, CatalogError> {
        let doc: Value = serde_json::from_slice(bytes)?;
        match doc {
            // Owned items are moved into the typed entries instead of cloned.
            Value::Array(items) => build(Items::Owned(items), mode),
            other => Err(CatalogError::NotAnArray {
                found: json_kind(&other),
            }),
        }
    }

    /// Validates an already parsed catalog document and builds the typed catalog from it.
    pub fn from_value(doc: &Value, mode: Mode) -> Result<Parsed, CatalogError> {
        let Some(items) = doc.as_array() else {
            return Err(CatalogError::NotAnArray {
                found: json_kind(doc),
            });
        };
        build(Items::Borrowed(items), mode)
    }
}

enum Items<'a> {
    Borrowed(&'a [Value]),
    Owned(Vec<Value>),
}

/// Validates the items, then types the clean ones (all of them, in strict mode).
fn build(items: Items<'_>, mode: Mode) -> Result<Parsed, CatalogError> {
    let slice = match &items {
        Items::Borrowed(items) => items,
        Items::Owned(items) => items.as_slice(),
    };
    let (report, clean) = validate_items(slice);
    if mode == Mode::Strict && report.has_errors() {
        return Err(CatalogError::Invalid(report));
    }
    let mut parsed = Parsed {
        catalog: Catalog {
            entries: Vec::with_capacity(slice.len()),
        },
        report,
        source_indices: Vec::with_capacity(slice.len()),
    };
    let mut failed = false;
    match items {
        Items::Borrowed(items) => {
            for (i, item) in items.iter().enumerate().filter(|(i, _)| clean[*i]) {
                failed |= !parsed.add(i, AppEntry::deserialize(item));
            }
        }
        Items::Owned(items) => {
            for (i, item) in items.into_iter().enumerate().filter(|(i, _)| clean[*i]) {
                failed |= !parsed.add(i, serde_json::from_value(item));
            }
        }
    }
    if failed && mode == Mode::Strict {
        return Err(CatalogError::Invalid(parsed.report));
    }
    Ok(parsed)
}

impl Parsed {
    /// Adds the typed entry `i`, or reports why it could not be typed; `false` in that case.
    fn add(&mut self, i: usize, typed: Result<AppEntry, serde_json::Error>) -> bool {
        match typed {
            Ok(entry) => {
                self.catalog.entries.push(entry);
                self.source_indices.push(i);
                true
            }
            // Validation accepts exactly what the typed entry can hold, so this is a safety
            // net: should the two ever disagree, the entry is reported, never unwrapped.
            Err(e) => {
                let mut f = Finding::new(
                    Code::WrongType,
                    format!("$[{i}]"),
                    format!("the entry could not be read: {e}"),
                );
                f.entry = Some(i);
                self.report.findings.push(f);
                false
            }
        }
    }
}
