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

#[cfg(test)]
mod tests {
    use super::*;

    fn set(text: &str) -> ScopeSet {
        ScopeSet::parse(text).unwrap()
    }

    // REQ: SCP-06
    #[test]
    fn parses_whitespace_separated_strings_in_order_without_duplicates() {
        let s = set("  openid\tfhirUser\n launch  openid patient/*.rs ");
        assert_eq!(s.len(), 4);
        assert_eq!(s.to_string(), "openid fhirUser launch patient/*.rs");
        assert!(set("").is_empty());
        assert!(set(" \t ").is_empty());
        let text = "launch/patient patient/Observation.rs user/*.read offline_access";
        assert_eq!(set(text).to_string(), text);
        assert_eq!(text.parse::<ScopeSet>().unwrap(), set(text));
    }

    // REQ: SCP-06
    #[test]
    fn strict_parse_fails_on_the_first_bad_scope_lenient_keeps_the_rest() {
        let text = "openid nope patient/Observation.sr fhirUser";
        let err = ScopeSet::parse(text).unwrap_err();
        assert_eq!(err.scope(), "nope");
        let (kept, errors) = ScopeSet::parse_lenient(text);
        assert_eq!(kept.to_string(), "openid fhirUser");
        let bad: Vec<_> = errors.iter().map(ScopeError::scope).collect();
        assert_eq!(bad, ["nope", "patient/Observation.sr"]);
    }

    // REQ: SCP-05
    #[test]
    fn permits_by_type_wildcard_and_interaction() {
        let s = set("patient/Observation.rs patient/*.c user/Practitioner.read");
        assert!(s.permits(Level::Patient, "Observation", Interaction::Read));
        assert!(s.permits(Level::Patient, "Observation", Interaction::Search));
        assert!(!s.permits(Level::Patient, "Observation", Interaction::Update));
        assert!(s.permits(Level::Patient, "Condition", Interaction::Create));
        assert!(!s.permits(Level::Patient, "Condition", Interaction::Read));
        assert!(s.permits(Level::User, "Practitioner", Interaction::Search));
        assert!(!s.permits(Level::User, "Practitioner", Interaction::Delete));
        assert!(!ScopeSet::new().permits(Level::System, "Patient", Interaction::Read));
    }

    // REQ: SCP-05
    #[test]
    fn levels_do_not_grant_each_other() {
        let user = set("user/*.cruds");
        assert!(user.permits(Level::User, "Observation", Interaction::Read));
        assert!(!user.permits(Level::Patient, "Observation", Interaction::Read));
        assert!(!user.permits(Level::System, "Observation", Interaction::Read));
        let system = set("system/*.cruds");
        assert!(!system.permits(Level::Patient, "Observation", Interaction::Read));
        assert!(!system.permits(Level::User, "Observation", Interaction::Read));
        let patient = set("patient/*.cruds");
        assert!(!patient.permits(Level::User, "Observation", Interaction::Read));
        assert!(!patient.permits(Level::System, "Observation", Interaction::Read));
    }

    // REQ: SCP-05
    #[test]
    fn query_scopes_grant_only_matching_resources() {
        let s = set("patient/Observation.rs?category=laboratory \
             patient/Observation.rs?category=vital-signs patient/Condition.rs");
        assert!(!s.permits(Level::Patient, "Observation", Interaction::Read));
        match s.access(Level::Patient, "Observation", Interaction::Read) {
            Access::Restricted(queries) => {
                let values: Vec<_> = queries.iter().map(|q| q[0].value()).collect();
                assert_eq!(values, ["laboratory", "vital-signs"]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            s.access(Level::Patient, "Observation", Interaction::Create),
            Access::Denied
        );
        assert_eq!(
            s.access(Level::Patient, "Condition", Interaction::Read),
            Access::Unrestricted
        );
        // An unrestricted scope for the same access wins over restricted ones.
        let both = s.union(&set("patient/*.r"));
        assert!(both.permits(Level::Patient, "Observation", Interaction::Read));
    }

    // REQ: SCP-05
    #[test]
    fn union_keeps_order_and_drops_repeats() {
        let a = set("openid patient/Observation.rs");
        let b = set("patient/Observation.rs fhirUser patient/Observation.read");
        assert_eq!(
            a.union(&b).to_string(),
            "openid patient/Observation.rs fhirUser patient/Observation.read"
        );
        assert_eq!(a.union(&ScopeSet::new()), a);
    }

    // REQ: SCP-05
    #[test]
    fn intersection_narrows_to_what_both_allow() {
        let requested = set(
            "launch/patient openid fhirUser patient/*.cruds patient/Observation.read \
             user/Practitioner.rs offline_access",
        );
        let policy = set(
            "launch/Patient openid patient/Observation.rs patient/Condition.r \
             user/*.r online_access",
        );
        let granted = requested.intersection(&policy);
        assert_eq!(
            granted.to_string(),
            // `patient/*.cruds` meets two policy scopes; the v1 request keeps its text because
            // the policy allows all of it.
            "launch/patient openid patient/Observation.rs patient/Condition.r \
             patient/Observation.read user/Practitioner.r"
        );
        assert_eq!(requested.intersection(&ScopeSet::new()), ScopeSet::new());
    }

    // REQ: SCP-05
    #[test]
    fn intersection_combines_query_constraints() {
        let a = set("patient/Observation.rs?category=laboratory");
        let b = set("patient/*.r?status=final");
        assert_eq!(
            a.intersection(&b).to_string(),
            "patient/Observation.r?category=laboratory&status=final"
        );
        let unrestricted = set("patient/Observation.rs");
        assert_eq!(a.intersection(&unrestricted), a);
        assert_eq!(unrestricted.intersection(&a), a);
        assert!(a.intersection(&set("user/Observation.rs")).is_empty());
    }

    // REQ: SCP-05
    #[test]
    fn not_granted_reports_missing_and_narrowed_access() {
        let requested = set(
            "launch/patient openid fhirUser patient/Observation.cruds patient/Condition.rs \
             patient/*.read user/Practitioner.read offline_access",
        );
        let granted = set(
            "launch/Patient openid patient/Observation.r patient/Observation.s \
             patient/Condition.rs?category=problem-list-item user/*.rs",
        );
        assert_eq!(
            requested.not_granted(&granted).to_string(),
            "fhirUser patient/Observation.cud patient/Condition.rs patient/*.read offline_access"
        );
        assert!(requested.not_granted(&requested).is_empty());
        assert_eq!(requested.not_granted(&ScopeSet::new()), requested);
    }

    // REQ: SCP-05
    #[test]
    fn narrower_granted_queries_do_not_cover_wider_requests() {
        let requested = set("patient/Observation.rs?category=laboratory&status=final");
        assert!(
            requested
                .not_granted(&set("patient/Observation.rs?category=laboratory"))
                .is_empty()
        );
        assert_eq!(
            set("patient/Observation.rs")
                .not_granted(&set("patient/Observation.rs?category=laboratory"))
                .to_string(),
            "patient/Observation.rs"
        );
        assert_eq!(
            set("patient/*.rs")
                .not_granted(&set("patient/Observation.rs"))
                .to_string(),
            "patient/*.rs"
        );
    }

    #[test]
    fn launch_and_identity_questions() {
        let s = set("launch launch/patient launch/Patient launch/encounter openid fhirUser");
        assert!(s.has_launch());
        assert_eq!(s.context_types(), ["Patient", "Encounter"]);
        assert!(s.has_openid());
        assert!(s.has_fhir_user());
        assert!(!s.has_refresh_scope());
        assert!(set("online_access").has_refresh_scope());
        assert!(!set("launch/patient").has_launch());
        assert!(s.contains(&Scope::parse("launch/Patient").unwrap()));
        assert!(!s.contains(&Scope::parse("launch/PATIENT").unwrap()));
        assert!(s.contains_equivalent(&Scope::parse("launch/PATIENT").unwrap()));
    }

    #[test]
    fn collects_and_iterates() {
        let s: ScopeSet = ["openid", "profile", "openid"]
            .into_iter()
            .map(|t| Scope::parse(t).unwrap())
            .collect();
        assert_eq!(s.iter().count(), 2);
        assert_eq!((&s).into_iter().count(), 2);
        let mut t = s.clone();
        assert!(!t.insert(Scope::OpenId));
        t.extend([Scope::FhirUser]);
        assert_eq!(t.into_iter().last(), Some(Scope::FhirUser));
    }
}
