//! Picking an entry's text in the user's language (decision D-11, REQ CAT-14).
//!
//! Lookup follows BCP 47 "lookup" (RFC 4647 §3.4): try the tag as asked, then drop its last
//! subtag, and so on (`fr-CA` → `fr`), and finally use the base fields, which are in the
//! catalog's default language. Each field falls back on its own, so a `fr-CA` translation that
//! only overrides `name` still gets its description from `fr` when there is one.

use crate::model::{AppEntry, Translation};

/// An entry's display text in one language, borrowed from the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Localized<'a> {
    /// `name` in the requested language or its fallback.
    pub name: &'a str,
    /// `description` in the requested language or its fallback.
    pub description: &'a str,
    /// `descriptionShort` in the requested language or its fallback.
    pub description_short: &'a str,
    /// `eligibilityCriteria` in the requested language or its fallback, when there is one.
    pub eligibility_criteria: Option<&'a str>,
}

impl AppEntry {
    /// The entry's text for language `lang` (a BCP 47 tag such as `fr-CA`), falling back
    /// `fr-CA` → `fr` → the base fields, field by field.
    ///
    /// ```
    /// # use halo_catalog::{AppEntry, Translation, Translations};
    /// # let json = r#"{"id":"fcf9956c-f952-40e0-8e24-a65d56118db2","name":"Heart Health Monitor",
    /// #   "description":"Monitor your heart.","descriptionShort":"Heart",
    /// #   "iconUrl":"https://e.example/i.png","privacyPolicyUrl":"https://e.example/p",
    /// #   "termsOfServiceUrl":"https://e.example/t","launchUrl":"https://e.example/launch",
    /// #   "contacts":[{"title":"Support","email":"s@e.example","url":"https://e.example"}],
    /// #   "publisher":{"id":"p1","name":"Example"},
    /// #   "translations":{"fr":{"name":"Moniteur de santé cardiaque"}}}"#;
    /// let entry: AppEntry = serde_json::from_str(json)?;
    /// let fr = entry.localized("fr-CA");
    /// assert_eq!(fr.name, "Moniteur de santé cardiaque");
    /// assert_eq!(fr.description, "Monitor your heart."); // no French description: base field
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn localized(&self, lang: &str) -> Localized<'_> {
        let chain = self.translation_chain(lang);
        let pick = |field: fn(&Translation) -> Option<&String>| {
            chain
                .iter()
                .find_map(|tr| field(tr).map(String::as_str))
                .filter(|s| !s.trim().is_empty())
        };
        Localized {
            name: pick(|t| t.name.as_ref()).unwrap_or(&self.name),
            description: pick(|t| t.description.as_ref()).unwrap_or(&self.description),
            description_short: pick(|t| t.description_short.as_ref())
                .unwrap_or(&self.description_short),
            eligibility_criteria: pick(|t| t.eligibility_criteria.as_ref())
                .or(self.eligibility_criteria.as_deref()),
        }
    }

    /// The translations that apply to `lang`, most specific first.
    fn translation_chain(&self, lang: &str) -> Vec<&Translation> {
        let Some(translations) = &self.translations else {
            return Vec::new();
        };
        let mut chain = Vec::new();
        let mut tag = lang.trim();
        while !tag.is_empty() {
            if let Some(tr) = translations.get(tag) {
                chain.push(tr);
            }
            tag = match tag.rfind('-') {
                // RFC 4647: a single-letter subtag (such as the `x` of a private use part) is
                // dropped together with the subtag after it.
                Some(cut) => {
                    let shorter = &tag[..cut];
                    match shorter.rfind('-') {
                        Some(c2) if shorter.len() - c2 == 2 => &shorter[..c2],
                        _ => shorter,
                    }
                }
                None => "",
            };
        }
        chain
    }
}
