//! Scope sets: the whitespace-separated OAuth `scope` value as an ordered, de-duplicated set,
//! with the access questions and set operations a client and a server ask of it.

use std::fmt;
use std::str::FromStr;

use super::error::ScopeError;
use super::permissions::{Interaction, Permissions};
use super::resource::{Level, QueryParam, ResourceScope};
use super::single::Scope;

/// An ordered set of scopes without duplicates, as in an OAuth `scope` parameter.
///
/// Order is the order of first appearance; a scope that appears again with the same text is
/// dropped. `Display` joins the scopes' original texts with single spaces.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScopeSet {
    scopes: Vec<Scope>,
}

/// What a scope set allows for one interaction on one resource type at one level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access<'a> {
    /// No scope grants the interaction.
    Denied,
    /// A scope without a query grants the interaction on every resource of the type.
    Unrestricted,
    /// Only scopes with `?` queries grant it: a resource qualifies when it matches every
    /// parameter of at least one of the listed queries.
    Restricted(Vec<&'a [QueryParam]>),
}

impl ScopeSet {
    /// An empty set (the spec allows a granted `scope` of `""`).
    pub fn new() -> ScopeSet {
        ScopeSet::default()
    }

    /// Reads a whitespace-separated scope string; the first invalid scope is the error.
    /// An empty or all-whitespace string is the empty set.
    pub fn parse(text: &str) -> Result<ScopeSet, ScopeError> {
        text.split_ascii_whitespace().map(Scope::parse).collect()
    }

    /// Reads a whitespace-separated scope string, keeping every valid scope and returning an
    /// error for each invalid one, for reading what a server granted without failing on one
    /// scope this library does not know.
    pub fn parse_lenient(text: &str) -> (ScopeSet, Vec<ScopeError>) {
        let mut set = ScopeSet::new();
        let mut errors = Vec::new();
        for token in text.split_ascii_whitespace() {
            match Scope::parse(token) {
                Ok(scope) => {
                    set.insert(scope);
                }
                Err(e) => errors.push(e),
            }
        }
        (set, errors)
    }

    /// Adds a scope at the end unless one with the same text is present; `true` if added.
    pub fn insert(&mut self, scope: Scope) -> bool {
        if self.scopes.contains(&scope) {
            false
        } else {
            self.scopes.push(scope);
            true
        }
    }

    /// The scopes in order.
    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.scopes.iter()
    }

    /// The resource scopes in order.
    pub fn resource_scopes(&self) -> impl Iterator<Item = &ResourceScope> {
        self.scopes.iter().filter_map(Scope::as_resource)
    }

    /// How many scopes the set holds.
    pub fn len(&self) -> usize {
        self.scopes.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty()
    }

    /// Whether the set holds this exact scope (same text). See [`ScopeSet::contains_equivalent`]
    /// to ignore v1/v2 spelling and launch type case.
    pub fn contains(&self, scope: &Scope) -> bool {
        self.scopes.contains(scope)
    }

    /// Whether the set holds a scope equivalent to `scope` (see [`Scope::equivalent`]).
    pub fn contains_equivalent(&self, scope: &Scope) -> bool {
        self.scopes.iter().any(|s| s.equivalent(scope))
    }

    /// Whether the set holds the bare `launch` scope (EHR launch).
    pub fn has_launch(&self) -> bool {
        self.scopes
            .iter()
            .any(|s| s.as_context().is_some_and(|c| c.is_ehr_launch()))
    }

    /// The normalised resource types of the `launch/<type>` scopes (`Patient` for
    /// `launch/patient`), in order, each once.
    pub fn context_types(&self) -> Vec<&str> {
        let mut types: Vec<&str> = Vec::new();
        for t in self
            .scopes
            .iter()
            .filter_map(|s| s.as_context().and_then(|c| c.resource_type()))
        {
            if !types.contains(&t) {
                types.push(t);
            }
        }
        types
    }

    /// Whether the set asks for (or grants) an id_token: `openid` is present.
    pub fn has_openid(&self) -> bool {
        self.contains(&Scope::OpenId)
    }

    /// Whether the set holds `fhirUser`.
    pub fn has_fhir_user(&self) -> bool {
        self.contains(&Scope::FhirUser)
    }

    /// Whether the set holds `offline_access` or `online_access`, so a refresh token is expected.
    pub fn has_refresh_scope(&self) -> bool {
        self.contains(&Scope::OfflineAccess) || self.contains(&Scope::OnlineAccess)
    }

    /// Whether the set grants `interaction` on every resource of `resource_type` at `level`.
    ///
    /// Levels are separate: a `user/` or `system/` scope never answers a `patient/` question and
    /// the reverse, because SMART defines them as different grants (data about the patient in
    /// context, data the user may see, data a backend may see) and the resource server picks the
    /// level from how the token was issued. `*` matches every type. A scope with a `?` query
    /// does not count here, since it grants only matching resources; use [`ScopeSet::access`]
    /// to see those.
    pub fn permits(&self, level: Level, resource_type: &str, interaction: Interaction) -> bool {
        matches!(
            self.access(level, resource_type, interaction),
            Access::Unrestricted
        )
    }

    /// What the set allows for `interaction` on `resource_type` at `level`, including the
    /// query-restricted grants [`ScopeSet::permits`] leaves out.
    pub fn access(
        &self,
        level: Level,
        resource_type: &str,
        interaction: Interaction,
    ) -> Access<'_> {
        let mut queries = Vec::new();
        for scope in self.resource_scopes() {
            if scope.applies_to(level, resource_type, interaction) {
                if !scope.has_query() {
                    return Access::Unrestricted;
                }
                queries.push(scope.query());
            }
        }
        if queries.is_empty() {
            Access::Denied
        } else {
            Access::Restricted(queries)
        }
    }

    /// Every scope of either set: this set's, then `other`'s not already present (same text).
    #[must_use]
    pub fn union(&self, other: &ScopeSet) -> ScopeSet {
        let mut out = self.clone();
        for scope in &other.scopes {
            out.insert(scope.clone());
        }
        out
    }

    /// The access both sets grant, as a set: what a server can grant when a client requests
    /// `self` and its policy allows `other`.
    ///
    /// Resource scopes meet pairwise at the same level: the narrower type, the common
    /// permissions, and the query constraints of both. A result that means the same as one of
    /// the inputs keeps that input's text (so a v1 request stays v1); other results are written
    /// in v2. Any other scope is kept when `other` holds an equivalent one.
    #[must_use]
    pub fn intersection(&self, other: &ScopeSet) -> ScopeSet {
        let mut out = ScopeSet::new();
        for scope in &self.scopes {
            match scope {
                Scope::Resource(mine) => {
                    for theirs in other.resource_scopes() {
                        if let Some(both) = meet(mine, theirs) {
                            out.insert(Scope::Resource(both));
                        }
                    }
                }
                _ => {
                    if other.contains_equivalent(scope) {
                        out.insert(scope.clone());
                    }
                }
            }
        }
        out
    }

    /// What `self` (requested) asked for that `granted` does not give: for a client to tell its
    /// user which access was refused or narrowed.
    ///
    /// A resource scope counts as given as far as granted scopes at the same level cover it: a
    /// granted type that covers the requested one (`*` covers every type), with no query
    /// constraint beyond the request's own. Permissions may be split over several granted scopes
    /// (`.r` plus `.s` cover `.rs`). A partly given scope comes back as a v2 scope holding the
    /// missing permissions; a scope not given at all comes back as requested. Any other scope
    /// comes back unless `granted` holds an equivalent one.
    #[must_use]
    pub fn not_granted(&self, granted: &ScopeSet) -> ScopeSet {
        let mut out = ScopeSet::new();
        for scope in &self.scopes {
            match scope {
                Scope::Resource(requested) => {
                    let given = granted
                        .resource_scopes()
                        .filter(|g| {
                            g.level() == requested.level()
                                && g.resource_type().covers(requested.resource_type())
                                && g.query_covers(requested.query())
                        })
                        .fold(Permissions::empty(), |acc, g| acc.union(g.permissions()));
                    let missing = requested.permissions().difference(given);
                    if missing == requested.permissions() {
                        out.insert(scope.clone());
                    } else if !missing.is_empty() {
                        out.insert(Scope::Resource(requested.reshaped(
                            requested.resource_type().clone(),
                            missing,
                            requested.query().to_vec(),
                        )));
                    }
                }
                _ => {
                    if !granted.contains_equivalent(scope) {
                        out.insert(scope.clone());
                    }
                }
            }
        }
        out
    }
}

/// The access two resource scopes both grant, if any.
fn meet(a: &ResourceScope, b: &ResourceScope) -> Option<ResourceScope> {
    if a.level() != b.level() {
        return None;
    }
    let resource_type = a.resource_type().intersection(b.resource_type())?;
    let permissions = a.permissions().intersection(b.permissions());
    if permissions.is_empty() {
        return None;
    }
    // Query parameters are AND-ed, so meeting two queries keeps the parameters of both.
    let mut query = a.query().to_vec();
    for param in b.query() {
        if !query.contains(param) {
            query.push(param.clone());
        }
    }
    let both = a.reshaped(resource_type, permissions, query);
    if both.equivalent(a) {
        Some(a.clone())
    } else if both.equivalent(b) {
        Some(b.clone())
    } else {
        Some(both)
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.scopes.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{scope}")?;
        }
        Ok(())
    }
}

impl FromStr for ScopeSet {
    type Err = ScopeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ScopeSet::parse(s)
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<T: IntoIterator<Item = Scope>>(iter: T) -> Self {
        let mut set = ScopeSet::new();
        set.extend(iter);
        set
    }
}

impl Extend<Scope> for ScopeSet {
    fn extend<T: IntoIterator<Item = Scope>>(&mut self, iter: T) {
        for scope in iter {
            self.insert(scope);
        }
    }
}

impl IntoIterator for ScopeSet {
    type Item = Scope;
    type IntoIter = std::vec::IntoIter<Scope>;

    fn into_iter(self) -> Self::IntoIter {
        self.scopes.into_iter()
    }
}

impl<'a> IntoIterator for &'a ScopeSet {
    type Item = &'a Scope;
    type IntoIter = std::slice::Iter<'a, Scope>;

    fn into_iter(self) -> Self::IntoIter {
        self.scopes.iter()
    }
}
