//! Serde forms: a [`Scope`] is its text; a [`ScopeSet`] is the OAuth space-separated string.
//! A set also deserialises from a JSON array of scope strings, the form of `scopes_supported`
//! in smart-configuration and of the App Catalog's `scopes`.

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::set::ScopeSet;
use super::single::Scope;

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScopeVisitor;

        impl Visitor<'_> for ScopeVisitor {
            type Value = Scope;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a SMART scope string")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scope, E> {
                Scope::parse(v).map_err(E::custom)
            }
        }

        deserializer.deserialize_str(ScopeVisitor)
    }
}

impl Serialize for ScopeSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ScopeSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SetVisitor;

        impl<'de> Visitor<'de> for SetVisitor {
            type Value = ScopeSet;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a space-separated scope string or an array of scope strings")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<ScopeSet, E> {
                ScopeSet::parse(v).map_err(E::custom)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ScopeSet, A::Error> {
                let mut set = ScopeSet::new();
                while let Some(scope) = seq.next_element::<Scope>()? {
                    set.insert(scope);
                }
                Ok(set)
            }
        }

        deserializer.deserialize_any(SetVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // REQ: SCP-06
    #[test]
    fn scope_and_set_serialise_as_their_oauth_strings() {
        let set = ScopeSet::parse("launch/patient patient/*.read openid").unwrap();
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(json, r#""launch/patient patient/*.read openid""#);
        assert_eq!(serde_json::from_str::<ScopeSet>(&json).unwrap(), set);

        let scope = Scope::parse("user/Observation.rs?category=vital-signs").unwrap();
        let json = serde_json::to_string(&scope).unwrap();
        assert_eq!(json, r#""user/Observation.rs?category=vital-signs""#);
        assert_eq!(serde_json::from_str::<Scope>(&json).unwrap(), scope);
    }

    #[test]
    fn set_also_reads_a_json_array() {
        let set: ScopeSet =
            serde_json::from_str(r#"["openid", "fhirUser", "launch", "openid"]"#).unwrap();
        assert_eq!(set.to_string(), "openid fhirUser launch");
    }

    #[test]
    fn invalid_scopes_fail_deserialisation_with_the_scope_named() {
        let err = serde_json::from_str::<ScopeSet>(r#""openid patient/Observation.sr""#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("patient/Observation.sr"), "{err}");
        assert!(serde_json::from_str::<Scope>(r#""nope""#).is_err());
        assert!(serde_json::from_str::<Scope>("42").is_err());
        assert!(serde_json::from_str::<ScopeSet>(r#"["openid", 1]"#).is_err());
    }
}
