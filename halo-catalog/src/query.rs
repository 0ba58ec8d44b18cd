//! Finding entries: by tag, by words in the name and descriptions, by enrolment (REQ CAT-15).
//!
//! Comparisons ignore case and accents (`Médication` matches `medication`), because catalogs in
//! Canada mix English and French and people type tags both ways.

use crate::model::{AppEntry, Catalog};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// `text` lower-cased with accents removed (NFD, then combining marks dropped), for comparing.
///
/// ```
/// assert_eq!(halo_catalog::fold("Médication Œdème"), "medication œdeme");
/// ```
pub fn fold(text: &str) -> String {
    text.nfd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// A filter over catalog entries; every condition set must hold.
///
/// ```
/// # use halo_catalog::{Catalog, Mode, Query};
/// # let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/catalog.json"))?;
/// # let catalog = Catalog::parse(&bytes, Mode::Lenient)?.catalog;
/// let q = Query::new().tag("medication").text("diabète").enrolling(true);
/// let names: Vec<_> = catalog.query(&q).map(|e| e.name.as_str()).collect();
/// assert_eq!(names, ["Diabetes Care Companion"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    tags: Vec<String>,
    terms: Vec<String>,
    enrolling: Option<bool>,
}

impl Query {
    /// A query that matches every entry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only entries carrying this tag (case and accents ignored). Several calls: all tags.
    #[must_use]
    pub fn tag(mut self, tag: &str) -> Self {
        self.tags.push(fold(tag.trim()));
        self
    }

    /// Only entries whose name, description or short description, in any language, contain
    /// every word of `text` (case and accents ignored).
    #[must_use]
    pub fn text(mut self, text: &str) -> Self {
        self.terms
            .extend(fold(text).split_whitespace().map(str::to_owned));
        self
    }

    /// Only entries whose `isEnrolling` is `enrolling` (an entry without the field is not
    /// enrolling).
    #[must_use]
    pub fn enrolling(mut self, enrolling: bool) -> Self {
        self.enrolling = Some(enrolling);
        self
    }

    /// Whether `entry` meets every condition.
    pub fn matches(&self, entry: &AppEntry) -> bool {
        if let Some(want) = self.enrolling
            && entry.is_enrolling.unwrap_or(false) != want
        {
            return false;
        }
        if !self.tags.is_empty() {
            let tags: Vec<String> = entry
                .tags
                .iter()
                .flatten()
                .map(|t| fold(t.trim()))
                .collect();
            if !self.tags.iter().all(|want| tags.contains(want)) {
                return false;
            }
        }
        if !self.terms.is_empty() {
            let haystack = fold(&searchable_text(entry));
            if !self.terms.iter().all(|t| haystack.contains(t.as_str())) {
                return false;
            }
        }
        true
    }
}

/// Name and descriptions in every language, one per line.
fn searchable_text(entry: &AppEntry) -> String {
    let mut text = format!(
        "{}\n{}\n{}",
        entry.name, entry.description, entry.description_short
    );
    for (_, tr) in entry.translations.iter().flat_map(|t| t.iter()) {
        for field in [&tr.name, &tr.description, &tr.description_short]
            .into_iter()
            .flatten()
        {
            text.push('\n');
            text.push_str(field);
        }
    }
    text
}

impl Catalog {
    /// The entries `query` matches, in catalog order.
    pub fn query<'a>(&'a self, query: &'a Query) -> impl Iterator<Item = &'a AppEntry> + 'a {
        self.entries.iter().filter(move |e| query.matches(e))
    }

    /// The entries carrying `tag` (case and accents ignored).
    pub fn with_tag(&self, tag: &str) -> Vec<&AppEntry> {
        let q = Query::new().tag(tag);
        self.entries.iter().filter(|e| q.matches(e)).collect()
    }

    /// The entries whose name or descriptions contain every word of `text`.
    pub fn search(&self, text: &str) -> Vec<&AppEntry> {
        let q = Query::new().text(text);
        self.entries.iter().filter(|e| q.matches(e)).collect()
    }

    /// The entries that accept new users (`isEnrolling: true`).
    pub fn enrolling(&self) -> Vec<&AppEntry> {
        self.entries
            .iter()
            .filter(|e| e.is_enrolling == Some(true))
            .collect()
    }
}
