//! A string that must never be printed: tokens, client secrets, codes, PKCE verifiers.

use std::fmt;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// A secret string. `Debug` and `Display` print `[redacted]`; the value is only reachable through
/// [`Secret::expose`], so a stray `{:?}` in a log line cannot leak it (SEC-01). It serialises as
/// the plain string so that sessions can be persisted by the app.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares with another value in constant time.
    pub fn ct_eq(&self, other: &str) -> bool {
        self.0.as_bytes().ct_eq(other.as_bytes()).into()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(&other.0)
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // REQ: SEC-01
    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("top-secret-token");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        assert_eq!(s.expose(), "top-secret-token");
        assert!(s.ct_eq("top-secret-token"));
        assert!(!s.ct_eq("top-secret-tokeN"));
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"top-secret-token\"");
    }
}
