//! One scope: the [`Scope`] enum and the dispatch from text to its forms.

use std::fmt;
use std::str::FromStr;

use super::context::ContextScope;
use super::error::ScopeError;
use super::resource::{ResourceScope, split_level};

/// One SMART App Launch 2.1 scope, or one of the few other scopes HALO deployments use.
///
/// `Display` prints the scope exactly as it was parsed: `Scope::parse(s)?.to_string() == s` for
/// every valid `s` (v1 scopes stay v1, `launch/patient` keeps its case).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scope {
    /// A resource scope such as `patient/Observation.rs` or `user/*.read`.
    Resource(ResourceScope),
    /// `launch` or `launch/<type>`.
    Context(ContextScope),
    /// `openid`: ask for an OpenID Connect id_token.
    OpenId,
    /// `fhirUser`: put the user's FHIR resource URL in the id_token.
    FhirUser,
    /// `profile`: the OpenID Connect profile claims (SMART v1 used it where v2 uses `fhirUser`).
    Profile,
    /// `email`: the OpenID Connect standard scope for the email claims (OIDC Core 5.4). Not in
    /// SMART's list, but deployments grant it (HALO's public implementation does).
    Email,
    /// `address`: the OpenID Connect standard scope for the address claim (OIDC Core 5.4).
    Address,
    /// `phone`: the OpenID Connect standard scope for the phone claims (OIDC Core 5.4).
    Phone,
    /// `offline_access`: a refresh token usable while the user is offline.
    OfflineAccess,
    /// `online_access`: a refresh token usable while the user stays online.
    OnlineAccess,
    /// `Context.write`: HALO's point-of-care scope for `$set-context` and `$clear-context`, as
    /// the one public HALO implementation spells it (decision D-06).
    HaloContextWrite,
    /// An extension scope: an absolute URI or a name starting with `__`, kept as written.
    /// The URI form of a SMART scope (`http://smarthealthit.org/fhir/scopes/patient/*.r`) is
    /// read as an extension too: it round-trips but grants nothing in [`super::ScopeSet::permits`].
    Extension(String),
}

/// The `Context.write` scope text (decision D-06).
pub const HALO_CONTEXT_WRITE: &str = "Context.write";

impl Scope {
    /// Reads one scope. Anything that is not a recognised form is an error naming the text.
    pub fn parse(text: &str) -> Result<Scope, ScopeError> {
        if text.is_empty() {
            return Err(ScopeError::Empty);
        }
        check_scope_chars(text)?;
        let fixed = match text {
            "openid" => Some(Scope::OpenId),
            "fhirUser" => Some(Scope::FhirUser),
            "profile" => Some(Scope::Profile),
            "email" => Some(Scope::Email),
            "address" => Some(Scope::Address),
            "phone" => Some(Scope::Phone),
            "offline_access" => Some(Scope::OfflineAccess),
            "online_access" => Some(Scope::OnlineAccess),
            HALO_CONTEXT_WRITE => Some(Scope::HaloContextWrite),
            _ => None,
        };
        if let Some(scope) = fixed {
            return Ok(scope);
        }
        if text == "launch" || text.starts_with("launch/") || text.starts_with("launch?") {
            return ContextScope::parse(text).map(Scope::Context);
        }
        if split_level(text).is_some() {
            return ResourceScope::parse(text).map(Scope::Resource);
        }
        if (text.starts_with("__") && text.len() > 2) || is_absolute_uri(text) {
            return Ok(Scope::Extension(text.to_owned()));
        }
        Err(ScopeError::Unrecognised {
            scope: text.to_owned(),
        })
    }

    /// The resource scope, if this is one.
    pub fn as_resource(&self) -> Option<&ResourceScope> {
        match self {
            Self::Resource(r) => Some(r),
            _ => None,
        }
    }

    /// The context scope, if this is one.
    pub fn as_context(&self) -> Option<&ContextScope> {
        match self {
            Self::Context(c) => Some(c),
            _ => None,
        }
    }

    /// Whether both scopes mean the same thing however they are written: v1 `.read` and v2
    /// `.rs` are equivalent, as are `launch/patient` and `launch/Patient`.
    pub fn equivalent(&self, other: &Scope) -> bool {
        match (self, other) {
            (Self::Resource(a), Self::Resource(b)) => a.equivalent(b),
            (Self::Context(a), Self::Context(b)) => a.equivalent(b),
            _ => self == other,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Resource(r) => write!(f, "{r}"),
            Self::Context(c) => write!(f, "{c}"),
            Self::OpenId => f.write_str("openid"),
            Self::FhirUser => f.write_str("fhirUser"),
            Self::Profile => f.write_str("profile"),
            Self::Email => f.write_str("email"),
            Self::Address => f.write_str("address"),
            Self::Phone => f.write_str("phone"),
            Self::OfflineAccess => f.write_str("offline_access"),
            Self::OnlineAccess => f.write_str("online_access"),
            Self::HaloContextWrite => f.write_str(HALO_CONTEXT_WRITE),
            Self::Extension(text) => f.write_str(text),
        }
    }
}

impl FromStr for Scope {
    type Err = ScopeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::parse(s)
    }
}

impl From<ResourceScope> for Scope {
    fn from(scope: ResourceScope) -> Self {
        Scope::Resource(scope)
    }
}

impl From<ContextScope> for Scope {
    fn from(scope: ContextScope) -> Self {
        Scope::Context(scope)
    }
}

/// Fails on the first character RFC 6749 section 3.3 does not allow in a scope token
/// (`NQCHAR`: `%x21 / %x23-5B / %x5D-7E`), which also rules out whitespace inside one scope.
pub(crate) fn check_scope_chars(text: &str) -> Result<(), ScopeError> {
    match text
        .chars()
        .find(|c| !matches!(c, '\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E'))
    {
        Some(character) => Err(ScopeError::InvalidCharacter {
            scope: text.to_owned(),
            character,
        }),
        None => Ok(()),
    }
}

/// RFC 3986 absolute URI shape: `scheme ":" rest`, scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" /
/// "." ), with something after the colon. The characters were already checked by the caller.
fn is_absolute_uri(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    // REQ: SCP-04
    #[test]
    fn reads_identity_refresh_and_halo_scopes() {
        for (text, scope) in [
            ("openid", Scope::OpenId),
            ("fhirUser", Scope::FhirUser),
            ("profile", Scope::Profile),
            ("email", Scope::Email),
            ("address", Scope::Address),
            ("phone", Scope::Phone),
            ("offline_access", Scope::OfflineAccess),
            ("online_access", Scope::OnlineAccess),
            ("Context.write", Scope::HaloContextWrite),
        ] {
            assert_eq!(Scope::parse(text).unwrap(), scope);
            assert_eq!(scope.to_string(), text);
            assert_eq!(text.parse::<Scope>().unwrap(), scope);
        }
    }

    // REQ: SCP-04
    #[test]
    fn reads_extension_scopes() {
        for text in [
            "__profilePhoto.manage",
            "__x",
            "http://smarthealthit.org/fhir/scopes/patient/*.r",
            "http://openid.net/specs/openid-connect-core-1_0#openid",
            "urn:example:scope",
            "https://example.org/scopes/read?x=1",
        ] {
            assert_eq!(
                Scope::parse(text).unwrap(),
                Scope::Extension(text.to_owned())
            );
        }
    }

    // REQ: SCP-04
    #[test]
    fn anything_else_is_an_error_naming_it() {
        for text in [
            "OpenID",
            "fhiruser",
            "FHIRUser",
            "offline",
            "Context.read",
            "__",
            "_x",
            "patients/Observation.rs",
            "Patient/Observation.rs",
            "Observation.rs",
            "1http://x",
            "http:",
            "launch-patient",
        ] {
            let err = Scope::parse(text).unwrap_err();
            assert_eq!(err.code(), "scope.unrecognised", "{text}");
            assert!(err.to_string().contains(&format!("`{text}`")), "{err}");
        }
    }

    #[test]
    fn rejects_characters_oauth_forbids() {
        assert_eq!(Scope::parse("").unwrap_err(), ScopeError::Empty);
        for (text, bad) in [
            ("open id", ' '),
            ("openid\n", '\n'),
            ("patient/Observation.rs?a=\"b\"", '"'),
            ("__a\\b", '\\'),
            ("__é", 'é'),
        ] {
            assert_eq!(
                Scope::parse(text).unwrap_err(),
                ScopeError::InvalidCharacter {
                    scope: text.to_owned(),
                    character: bad
                }
            );
        }
    }

    // REQ: SCP-01
    #[test]
    fn dispatches_resource_and_context_scopes() {
        let r = Scope::parse("patient/Observation.rs").unwrap();
        assert!(r.as_resource().is_some());
        assert!(r.as_context().is_none());
        let c = Scope::parse("launch/patient").unwrap();
        assert_eq!(
            c.as_context().and_then(|c| c.resource_type()),
            Some("Patient")
        );
        // Errors from the specific grammars come through, not a generic "unrecognised".
        assert_eq!(
            Scope::parse("patient/Observation.sr").unwrap_err().code(),
            "scope.permissions_out_of_order"
        );
        assert_eq!(
            Scope::parse("launch/pa7ient").unwrap_err().code(),
            "scope.invalid_launch_type"
        );
    }

    // REQ: SCP-02
    #[test]
    fn equivalence_ignores_spelling_only() {
        let v1 = Scope::parse("patient/*.read").unwrap();
        let v2 = Scope::parse("patient/*.rs").unwrap();
        assert!(v1.equivalent(&v2));
        assert!(!v1.equivalent(&Scope::parse("user/*.rs").unwrap()));
        assert!(Scope::OpenId.equivalent(&Scope::OpenId));
        assert!(!Scope::OpenId.equivalent(&Scope::Profile));
    }
}
