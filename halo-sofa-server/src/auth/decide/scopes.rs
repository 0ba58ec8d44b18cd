//! Which of the requested scopes may be granted.

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

#[cfg(test)]
mod tests {
    use super::*;

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
