//! Context scopes: `launch` (EHR launch) and `launch/<type>` (ask for a context resource),
//! optionally with `?role=<uri>`.

use std::fmt;

use super::error::ScopeError;
use super::fhir_types::normalise_resource_type;
use super::single::check_scope_chars;

/// A launch context scope: `launch`, or `launch/<type>` with an optional `?role=`.
///
/// The type is accepted in any case and normalised (`launch/patient` has resource type
/// `Patient`); the text as written is kept so the scope displays unchanged. Equality (`==`) is on
/// the text; [`ContextScope::equivalent`] compares meaning.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContextScope {
    target: Option<LaunchTarget>,
    role: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LaunchTarget {
    written: String,
    resource_type: String,
}

impl ContextScope {
    /// The bare `launch` scope of an EHR launch.
    pub fn launch() -> ContextScope {
        ContextScope {
            target: None,
            role: None,
        }
    }

    /// `launch/<type>` for a resource type name in any case (for example `patient`).
    pub fn launch_type(resource_type: &str) -> Result<ContextScope, ScopeError> {
        ContextScope::parse(&format!("launch/{resource_type}"))
    }

    /// Reads `launch`, `launch/<type>` or `launch/<type>?role=<value>`.
    pub fn parse(text: &str) -> Result<ContextScope, ScopeError> {
        check_scope_chars(text)?;
        if text == "launch" {
            return Ok(ContextScope::launch());
        }
        let rest = text.strip_prefix("launch/").ok_or_else(|| {
            if text.starts_with("launch?") {
                ScopeError::InvalidLaunchRole {
                    scope: text.to_owned(),
                }
            } else {
                ScopeError::Unrecognised {
                    scope: text.to_owned(),
                }
            }
        })?;
        let (type_text, role) = match rest.split_once('?') {
            None => (rest, None),
            Some((type_text, query)) => {
                let role = query
                    .strip_prefix("role=")
                    .filter(|role| !role.is_empty() && !role.contains('&'))
                    .ok_or_else(|| ScopeError::InvalidLaunchRole {
                        scope: text.to_owned(),
                    })?;
                (type_text, Some(role.to_owned()))
            }
        };
        if type_text.is_empty() || !type_text.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(ScopeError::InvalidLaunchType {
                scope: text.to_owned(),
            });
        }
        Ok(ContextScope {
            target: Some(LaunchTarget {
                written: type_text.to_owned(),
                resource_type: normalise_resource_type(type_text),
            }),
            role,
        })
    }

    /// This scope with a `?role=` value; only `launch/<type>` scopes take one.
    pub fn with_role(self, role: &str) -> Result<ContextScope, ScopeError> {
        let text = format!("{self}?role={role}");
        if self.role.is_some() {
            return Err(ScopeError::InvalidLaunchRole { scope: text });
        }
        ContextScope::parse(&text)
    }

    /// Whether this is the bare `launch` scope (EHR launch).
    pub fn is_ehr_launch(&self) -> bool {
        self.target.is_none()
    }

    /// The normalised resource type of `launch/<type>` (`Patient` for `launch/patient`).
    pub fn resource_type(&self) -> Option<&str> {
        self.target.as_ref().map(|t| t.resource_type.as_str())
    }

    /// The type as written after `launch/`.
    pub fn written_type(&self) -> Option<&str> {
        self.target.as_ref().map(|t| t.written.as_str())
    }

    /// The `?role=` value, as written.
    pub fn role(&self) -> Option<&str> {
        self.role.as_deref()
    }

    /// Whether both scopes ask for the same context: same normalised type and role.
    pub fn equivalent(&self, other: &ContextScope) -> bool {
        self.resource_type() == other.resource_type() && self.role == other.role
    }
}

impl fmt::Display for ContextScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("launch")?;
        if let Some(target) = &self.target {
            write!(f, "/{}", target.written)?;
        }
        if let Some(role) = &self.role {
            write!(f, "?role={role}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // REQ: SCP-03
    #[test]
    fn reads_launch_scopes_in_any_case() {
        let bare = ContextScope::parse("launch").unwrap();
        assert!(bare.is_ehr_launch());
        assert_eq!(bare.resource_type(), None);
        assert_eq!(bare, ContextScope::launch());

        for (text, normalised) in [
            ("launch/patient", "Patient"),
            ("launch/Patient", "Patient"),
            ("launch/encounter", "Encounter"),
            ("launch/imagingstudy", "ImagingStudy"),
            ("launch/PractitionerRole", "PractitionerRole"),
        ] {
            let scope = ContextScope::parse(text).unwrap();
            assert!(!scope.is_ehr_launch());
            assert_eq!(scope.resource_type(), Some(normalised));
            assert_eq!(scope.to_string(), text);
        }
        let lower = ContextScope::parse("launch/patient").unwrap();
        let upper = ContextScope::parse("launch/Patient").unwrap();
        assert!(lower.equivalent(&upper));
        assert_ne!(lower, upper);
        assert_eq!(lower.written_type(), Some("patient"));
    }

    // REQ: SCP-03
    #[test]
    fn reads_a_role_suffix() {
        let text = "launch/list?role=https://example.org/med-list-at-home";
        let scope = ContextScope::parse(text).unwrap();
        assert_eq!(scope.resource_type(), Some("List"));
        assert_eq!(scope.role(), Some("https://example.org/med-list-at-home"));
        assert_eq!(scope.to_string(), text);
        assert!(!scope.equivalent(&ContextScope::parse("launch/list").unwrap()));

        let built = ContextScope::launch_type("list")
            .unwrap()
            .with_role("https://example.org/med-list-at-home")
            .unwrap();
        assert_eq!(built, scope);
        assert!(scope.with_role("x").is_err());
    }

    // REQ: SCP-03
    #[test]
    fn rejects_malformed_launch_scopes() {
        for (text, code) in [
            ("launch/", "scope.invalid_launch_type"),
            ("launch/pat-ient", "scope.invalid_launch_type"),
            ("launch/patient/1", "scope.invalid_launch_type"),
            ("launch/patient?", "scope.invalid_launch_role"),
            ("launch/patient?role=", "scope.invalid_launch_role"),
            ("launch/patient?kind=x", "scope.invalid_launch_role"),
            ("launch/patient?role=a&x=b", "scope.invalid_launch_role"),
            ("launch?role=x", "scope.invalid_launch_role"),
            ("launchx", "scope.unrecognised"),
        ] {
            let err = ContextScope::parse(text).unwrap_err();
            assert_eq!(err.code(), code, "{text}");
            assert_eq!(err.scope(), text);
        }
        assert!(ContextScope::launch().with_role("x").is_err());
        let spaced = ContextScope::launch_type("list").unwrap().with_role("a b");
        assert_eq!(spaced.unwrap_err().code(), "scope.invalid_character");
    }
}
