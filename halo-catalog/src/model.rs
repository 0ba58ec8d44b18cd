//! The typed App Catalog: [`Catalog`], [`AppEntry`], [`Contact`], [`Publisher`] and the bilingual
//! [`Translations`] of decision D-11.
//!
//! Field names follow the HALO App Catalog tables exactly (camelCase on the wire). Fields the
//! tables do not name are kept in `extra` and written back as they came, so a catalog read and
//! written again loses nothing a jurisdiction added.

use serde::de::{DeserializeOwned, Error as _, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::fmt;

/// The App Catalog: the JSON array a catalog's `GET [base]` answers with.
///
/// Build one with [`Catalog::parse`] (which validates) or deserialize it directly when the
/// source is trusted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Catalog {
    /// The app entries, in the order the catalog listed them.
    pub entries: Vec<AppEntry>,
}

impl Catalog {
    /// The entry whose `id` is `id` (UUIDs compare without regard to case).
    pub fn get(&self, id: &str) -> Option<&AppEntry> {
        self.entries.iter().find(|e| e.id.eq_ignore_ascii_case(id))
    }

    /// The entries in catalog order.
    pub fn iter(&self) -> std::slice::Iter<'_, AppEntry> {
        self.entries.iter()
    }

    /// How many entries the catalog holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the catalog holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<'a> IntoIterator for &'a Catalog {
    type Item = &'a AppEntry;
    type IntoIter = std::slice::Iter<'a, AppEntry>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter()
    }
}

/// One application deployment in the catalog (a new version of an app is a new entry).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppEntry {
    /// RFC 4122 UUID identifying this deployment (`id`, 36 characters).
    pub id: String,
    /// Display name, 3 to 150 characters (`name`).
    pub name: String,
    /// Full description for the end user (`description`).
    pub description: String,
    /// Short description for tooltips and app lists (`descriptionShort`).
    pub description_short: String,
    /// Categories that help discovery (`tags`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// Help manual or support page (`helpUrl`, at most 2048 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help_url: Option<String>,
    /// The app's icon (`iconUrl`, at most 2048 characters).
    pub icon_url: String,
    /// Screenshot URLs (`screenshots`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screenshots: Option<Vec<String>>,
    /// Privacy policy (`privacyPolicyUrl`, at most 2048 characters).
    pub privacy_policy_url: String,
    /// Terms of service, including the licence (`termsOfServiceUrl`, at most 2048 characters).
    pub terms_of_service_url: String,
    /// The SMART launch URL (`launchUrl`, https).
    pub launch_url: String,
    /// Who the app is meant for (`eligibilityCriteria`, at most 2048 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eligibility_criteria: Option<String>,
    /// Support contacts (`contacts`): at least one with an email and one with a URL.
    pub contacts: Vec<Contact>,
    /// The organisation responsible for the app (`publisher`).
    pub publisher: Publisher,
    /// Whether the app accepts new users (`isEnrolling`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_enrolling: Option<bool>,
    /// SMART App Launch 2.1 scopes the app may request (`scopes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// Metadata in other languages (`translations`, decision D-11).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub translations: Option<Translations>,
    /// Fields HALO does not define, kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One way to reach the publisher or support team (an element of `contacts`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    /// Human-readable name of the contact, at most 150 characters (`title`).
    pub title: String,
    /// Support email, at most 150 characters (`email`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Support phone number, at most 30 characters (`phone`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Support page or chat URL, at most 2048 characters (`url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Fields HALO does not define, kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The organisation responsible for the app (`publisher`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Publisher {
    /// Publisher identifier, at most 36 characters (`id`).
    pub id: String,
    /// Publisher name, at most 150 characters (`name`).
    pub name: String,
    /// Publisher website, at most 2048 characters (`url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Fields HALO does not define, kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The text fields of an entry in one language (a value of `translations`, decision D-11).
/// A field left out falls back to a less specific language, then to the entry's base field.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Translation {
    /// Translated `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Translated `description`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Translated `descriptionShort`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description_short: Option<String>,
    /// Translated `eligibilityCriteria`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eligibility_criteria: Option<String>,
    /// Fields HALO does not define, kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `translations` object: BCP 47 language tag → [`Translation`], in the order written.
///
/// Tags are looked up without regard to case (`fr-ca` finds `fr-CA`), as BCP 47 prescribes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Translations {
    entries: Vec<(String, Translation)>,
}

impl Translations {
    /// An empty set of translations.
    pub fn new() -> Self {
        Self::default()
    }

    /// The translation for exactly `tag` (no fallback; see [`AppEntry::localized`] for that).
    pub fn get(&self, tag: &str) -> Option<&Translation> {
        self.entries
            .iter()
            .find(|(t, _)| t.eq_ignore_ascii_case(tag))
            .map(|(_, tr)| tr)
    }

    /// Sets the translation for `tag`, replacing one with the same tag.
    pub fn insert(&mut self, tag: impl Into<String>, translation: Translation) {
        let tag = tag.into();
        match self
            .entries
            .iter_mut()
            .find(|(t, _)| t.eq_ignore_ascii_case(&tag))
        {
            Some(slot) => slot.1 = translation,
            None => self.entries.push((tag, translation)),
        }
    }

    /// The language tags and their translations, in the order written.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Translation)> {
        self.entries.iter().map(|(t, tr)| (t.as_str(), tr))
    }

    /// How many languages are present.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no language is present.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Serialize for Translations {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.entries.len()))?;
        for (tag, tr) in &self.entries {
            map.serialize_entry(tag, tr)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Translations {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TranslationsVisitor;
        impl<'de> Visitor<'de> for TranslationsVisitor {
            type Value = Translations;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object keyed by language tag")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Translations, A::Error> {
                let mut out = Translations::new();
                while let Some((tag, tr)) = map.next_entry::<String, Translation>()? {
                    // A repeated key replaces the earlier one, as it does in `serde_json::Value`.
                    out.insert(tag, tr);
                }
                Ok(out)
            }
        }
        deserializer.deserialize_map(TranslationsVisitor)
    }
}

// Deserialisation goes through a `Map<String, Value>` rather than `#[serde(flatten)]`: flatten
// buffers values in serde's private `Content`, which cannot hold the big integers and exact
// decimals `arbitrary_precision` keeps, so unknown fields like `"rating": 1.50` or a 30-digit
// number would fail or change. Reading the map keeps every unknown value exactly, in order.

fn field<T: DeserializeOwned, E: serde::de::Error>(key: &str, value: Value) -> Result<T, E> {
    serde_json::from_value(value).map_err(|e| E::custom(format!("field `{key}`: {e}")))
}

fn optional<T: DeserializeOwned, E: serde::de::Error>(
    key: &str,
    value: Value,
) -> Result<Option<T>, E> {
    if value.is_null() {
        Ok(None)
    } else {
        field(key, value).map(Some)
    }
}

macro_rules! deserialize_object {
    ($ty:ident { required: [$($rf:ident = $rk:literal),* $(,)?], optional: [$($of:ident = $ok:literal),* $(,)?] }) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let map = Map::<String, Value>::deserialize(deserializer)?;
                $(let mut $rf = None;)*
                $(let mut $of = None;)*
                let mut extra = Map::new();
                for (key, value) in map {
                    match key.as_str() {
                        $($rk => $rf = Some(field::<_, D::Error>($rk, value)?),)*
                        $($ok => $of = optional::<_, D::Error>($ok, value)?,)*
                        _ => {
                            extra.insert(key, value);
                        }
                    }
                }
                Ok($ty {
                    $($rf: $rf.ok_or_else(|| D::Error::missing_field($rk))?,)*
                    $($of,)*
                    extra,
                })
            }
        }
    };
}

deserialize_object!(AppEntry {
    required: [
        id = "id",
        name = "name",
        description = "description",
        description_short = "descriptionShort",
        icon_url = "iconUrl",
        privacy_policy_url = "privacyPolicyUrl",
        terms_of_service_url = "termsOfServiceUrl",
        launch_url = "launchUrl",
        contacts = "contacts",
        publisher = "publisher",
    ],
    optional: [
        tags = "tags",
        help_url = "helpUrl",
        screenshots = "screenshots",
        eligibility_criteria = "eligibilityCriteria",
        is_enrolling = "isEnrolling",
        scopes = "scopes",
        translations = "translations",
    ]
});

deserialize_object!(Contact {
    required: [title = "title"],
    optional: [email = "email", phone = "phone", url = "url"]
});

deserialize_object!(Publisher {
    required: [id = "id", name = "name"],
    optional: [url = "url"]
});

deserialize_object!(Translation {
    required: [],
    optional: [
        name = "name",
        description = "description",
        description_short = "descriptionShort",
        eligibility_criteria = "eligibilityCriteria",
    ]
});
