//! Which of the requested scopes may be granted (REQ AS-03, AS-08, D-06).

use halo_model::oauth::OAuthError;
use halo_model::scope::{Scope, ScopeSet};

/// Whether `within` grants everything `scope` asks: the same scope, or for a resource scope
/// every interaction it names at its level and type.
pub(crate) fn covered(scope: &Scope, within: &ScopeSet) -> bool {
    if within.contains_equivalent(scope) {
        return true;
    }
    match scope.as_resource() {
        Some(resource) if !resource.has_query() => {
            let permissions = resource.permissions();
            !permissions.is_empty()
                && permissions.iter().all(|interaction| {
                    within.permits(
                        resource.level(),
                        resource.resource_type().as_str(),
                        interaction,
                    )
                })
        }
        _ => false,
    }
}

/// The requested scopes `allowed` covers; the others are not granted (RFC 6749 §3.3 lets the
/// server grant less than asked, and the token response says what was granted).
pub(crate) fn narrow(requested: &ScopeSet, allowed: &ScopeSet) -> ScopeSet {
    let mut granted = ScopeSet::new();
    for scope in requested.iter() {
        if covered(scope, allowed) {
            granted.insert(scope.clone());
        }
    }
    granted
}

/// The scopes granted for the space-separated `requested` to a client that may have `allowed`
/// (REQ AS-03): unparsable text, or nothing that may be granted, is `invalid_scope`.
pub(crate) fn grant_requested(requested: &str, allowed: &ScopeSet) -> Result<ScopeSet, OAuthError> {
    let requested =
        ScopeSet::parse(requested).map_err(|e| OAuthError::invalid_scope(format!("{e}")))?;
    non_empty(narrow(&requested, allowed))
}

fn non_empty(granted: ScopeSet) -> Result<ScopeSet, OAuthError> {
    if granted.is_empty() {
        return Err(OAuthError::invalid_scope(
            "none of the requested scopes may be granted to this client",
        ));
    }
    Ok(granted)
}

/// The scopes of a `client_credentials` token (D-06): the requested ones the client may have,
/// or all it may have when it asks for none.
pub(crate) fn client_credentials_scope(
    requested: Option<&str>,
    allowed: &ScopeSet,
) -> Result<ScopeSet, OAuthError> {
    match requested {
        Some(text) => grant_requested(text, allowed),
        None => non_empty(allowed.clone()),
    }
}

/// The access token scope of a refresh (REQ AS-08): the grant's own when none is asked; a
/// narrower set may be asked, a scope outside the grant is `invalid_scope`. `None` keeps the
/// grant's scopes.
pub(crate) fn refresh_scope(
    requested: Option<&str>,
    original: &ScopeSet,
) -> Result<Option<ScopeSet>, OAuthError> {
    let Some(text) = requested else {
        return Ok(None);
    };
    let requested = ScopeSet::parse(text).map_err(|e| OAuthError::invalid_scope(format!("{e}")))?;
    if let Some(extra) = requested.iter().find(|s| !covered(s, original)) {
        return Err(OAuthError::invalid_scope(format!(
            "{extra} was not granted; a refresh may only narrow the scopes"
        )));
    }
    Ok(Some(requested))
}

/// Whether a grant of `scope` carries a refresh token (REQ AS-07): `offline_access` or
/// `online_access`.
pub(crate) fn wants_refresh(scope: &ScopeSet) -> bool {
    scope
        .iter()
        .any(|s| matches!(s, Scope::OfflineAccess | Scope::OnlineAccess))
}

#[cfg(test)]
mod tests {
    use super::*;

    // REQ: AS-08
    #[test]
    fn a_refresh_may_only_narrow_the_scopes() {
        let original = ScopeSet::parse("openid offline_access patient/*.rs").unwrap();
        assert_eq!(refresh_scope(None, &original).unwrap(), None);
        assert_eq!(
            refresh_scope(Some("patient/Observation.r"), &original)
                .unwrap()
                .unwrap()
                .to_string(),
            "patient/Observation.r"
        );
        for wider in ["patient/*.cruds", "user/*.rs", "launch", "%%"] {
            let refused = refresh_scope(Some(wider), &original).unwrap_err();
            assert_eq!(refused.error.as_str(), "invalid_scope", "{wider}");
        }
    }

    // REQ: AS-06, AS-03
    #[test]
    fn client_credentials_get_what_the_client_may_have() {
        let allowed = ScopeSet::parse("system/*.rs Context.write").unwrap();
        assert_eq!(
            client_credentials_scope(None, &allowed)
                .unwrap()
                .to_string(),
            allowed.to_string()
        );
        assert_eq!(
            client_credentials_scope(Some("Context.write user/*.rs"), &allowed)
                .unwrap()
                .to_string(),
            "Context.write"
        );
        assert!(client_credentials_scope(Some("user/*.rs"), &allowed).is_err());
        assert!(client_credentials_scope(None, &ScopeSet::new()).is_err());
    }

    // REQ: AS-07
    #[test]
    fn only_offline_or_online_access_brings_a_refresh_token() {
        assert!(wants_refresh(
            &ScopeSet::parse("openid offline_access").unwrap()
        ));
        assert!(wants_refresh(&ScopeSet::parse("online_access").unwrap()));
        assert!(!wants_refresh(
            &ScopeSet::parse("openid patient/*.rs").unwrap()
        ));
    }

    // REQ: AS-03
    #[test]
    fn only_allowed_scopes_are_granted() {
        let allowed = ScopeSet::parse("launch openid fhirUser patient/*.rs").unwrap();
        let requested =
            ScopeSet::parse("launch openid patient/Observation.rs patient/*.c user/*.rs").unwrap();
        assert_eq!(
            narrow(&requested, &allowed).to_string(),
            "launch openid patient/Observation.rs"
        );
    }
}
