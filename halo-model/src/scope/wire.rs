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
