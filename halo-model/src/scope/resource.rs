//! Resource scopes: `(patient|user|system)/(Type|*).<permissions>[?param=value(&param=value)*]`,
//! in SMART v2 (`cruds` letters) and v1 (`read`, `write`, `*`) syntax.

use std::fmt;

use super::error::ScopeError;
use super::permissions::{Interaction, Permissions};
use super::single::check_scope_chars;

/// The level prefix of a resource scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// `patient/`: data about the patient in context.
    Patient,
    /// `user/`: data the signed-in user may access.
    User,
    /// `system/`: data a backend client may access, with no user.
    System,
}

impl Level {
    /// Every level, in the order the spec lists them.
    pub const ALL: [Level; 3] = [Level::Patient, Level::User, Level::System];

    /// The prefix as written before the `/` (`patient`, `user`, `system`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Patient => "patient",
            Self::User => "user",
            Self::System => "system",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The resource type part of a resource scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ResourceType {
    /// `*`: every resource type, now and in future FHIR versions.
    Any,
    /// One resource type, such as `Observation`.
    Named(String),
}

impl ResourceType {
    /// Reads `*` or a FHIR resource type name (`[A-Z][A-Za-z]+`); `None` for anything else.
    pub fn parse(text: &str) -> Option<ResourceType> {
        if text == "*" {
            Some(ResourceType::Any)
        } else if is_resource_type_name(text) {
            Some(ResourceType::Named(text.to_owned()))
        } else {
            None
        }
    }

    /// The text as written in a scope (`*` or the name).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Any => "*",
            Self::Named(name) => name,
        }
    }

    /// Whether this part of a scope applies to resources of type `name`.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Named(own) => own == name,
        }
    }

    /// Whether this part applies to every type `other` applies to (`*` covers everything, a name
    /// covers only itself; a name never covers `*`, which includes future types).
    pub fn covers(&self, other: &ResourceType) -> bool {
        match (self, other) {
            (Self::Any, _) => true,
            (Self::Named(_), Self::Any) => false,
            (Self::Named(a), Self::Named(b)) => a == b,
        }
    }

    /// The types both parts apply to, if any.
    pub fn intersection(&self, other: &ResourceType) -> Option<ResourceType> {
        match (self, other) {
            (Self::Any, t) | (t, Self::Any) => Some(t.clone()),
            (Self::Named(a), Self::Named(b)) => (a == b).then(|| self.clone()),
        }
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[A-Z][A-Za-z]+`, the shape of every FHIR resource type name.
pub(crate) fn is_resource_type_name(text: &str) -> bool {
    let mut chars = text.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_uppercase())
        && text.len() >= 2
        && chars.all(|c| c.is_ascii_alphabetic())
}

/// SMART v1 permission words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum V1Permission {
    /// `read`, the same as v2 `rs`.
    Read,
    /// `write`, the same as v2 `cud`.
    Write,
    /// `*`, the same as v2 `cruds`.
    All,
}

impl V1Permission {
    /// The word as written after the `.`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::All => "*",
        }
    }

    /// The v2 permissions this v1 word stands for (SMART 2.1, "Scope equivalence").
    pub fn permissions(self) -> Permissions {
        match self {
            Self::Read => Permissions::v1_read(),
            Self::Write => Permissions::v1_write(),
            Self::All => Permissions::all(),
        }
    }

    fn parse(text: &str) -> Option<V1Permission> {
        match text {
            "read" => Some(Self::Read),
            "write" => Some(Self::Write),
            "*" => Some(Self::All),
            _ => None,
        }
    }
}

/// How the permissions of a resource scope were written, so the scope displays as it came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PermissionSyntax {
    /// SMART v2 letters (`.rs`, `.cruds`).
    V2,
    /// SMART v1 words (`.read`, `.write`, `.*`).
    V1(V1Permission),
}

/// One `param=value` constraint of a v2 resource scope's query.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QueryParam {
    name: String,
    value: String,
}

impl QueryParam {
    /// The search parameter name, possibly with a modifier or chain (`code:in`, `patient.birthdate`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value, as written (not percent-decoded).
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for QueryParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.value)
    }
}

/// A resource scope such as `patient/Observation.rs` or v1 `user/*.read`.
///
/// Equality (`==`) is on the text: `patient/Observation.read` and `patient/Observation.rs` are
/// different values that grant the same access; [`ResourceScope::equivalent`] compares access.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceScope {
    level: Level,
    resource_type: ResourceType,
    permissions: Permissions,
    syntax: PermissionSyntax,
    query: Vec<QueryParam>,
}

impl ResourceScope {
    /// A v2 scope with no query. Fails on empty permissions or a bad resource type name.
    pub fn new(
        level: Level,
        resource_type: ResourceType,
        permissions: Permissions,
    ) -> Result<ResourceScope, ScopeError> {
        let scope = ResourceScope {
            level,
            resource_type,
            permissions,
            syntax: PermissionSyntax::V2,
            query: Vec::new(),
        };
        scope.check_built()?;
        Ok(scope)
    }

    /// A v1 scope such as `patient/Observation.read`. Fails on a bad resource type name.
    pub fn v1(
        level: Level,
        resource_type: ResourceType,
        permission: V1Permission,
    ) -> Result<ResourceScope, ScopeError> {
        let scope = ResourceScope {
            level,
            resource_type,
            permissions: permission.permissions(),
            syntax: PermissionSyntax::V1(permission),
            query: Vec::new(),
        };
        scope.check_built()?;
        Ok(scope)
    }

    /// This scope with one more `name=value` query constraint (v2 scopes only).
    pub fn with_query_param(
        mut self,
        name: &str,
        value: &str,
    ) -> Result<ResourceScope, ScopeError> {
        self.query.push(QueryParam {
            name: name.to_owned(),
            value: value.to_owned(),
        });
        // Re-parse the text so a value built in code obeys exactly the grammar parsed values do.
        let text = self.to_string();
        let reparsed = ResourceScope::parse(&text)?;
        if reparsed != self {
            return Err(ScopeError::InvalidQuery {
                scope: text,
                problem: "a parameter name or value contains `=`, `&` or `?` in a way that does \
                          not read back as the same parameters",
            });
        }
        Ok(self)
    }

    /// Reads a resource scope. `text` must start with `patient/`, `user/` or `system/`.
    pub fn parse(text: &str) -> Result<ResourceScope, ScopeError> {
        check_scope_chars(text)?;
        let err_text = || text.to_owned();
        let (level, rest) =
            split_level(text).ok_or_else(|| ScopeError::Unrecognised { scope: err_text() })?;
        let (head, query_text) = match rest.split_once('?') {
            Some((head, query)) => (head, Some(query)),
            None => (rest, None),
        };
        let (type_text, perm_text) = head
            .split_once('.')
            .ok_or_else(|| ScopeError::MissingPermissions { scope: err_text() })?;
        let resource_type =
            ResourceType::parse(type_text).ok_or_else(|| ScopeError::InvalidResourceType {
                scope: err_text(),
                resource_type: type_text.to_owned(),
            })?;
        let (permissions, syntax) = parse_permissions(text, perm_text)?;
        let query = match query_text {
            None => Vec::new(),
            Some(_) if matches!(syntax, PermissionSyntax::V1(_)) => {
                return Err(ScopeError::QueryOnV1 { scope: err_text() });
            }
            Some(q) => parse_query(text, q)?,
        };
        Ok(ResourceScope {
            level,
            resource_type,
            permissions,
            syntax,
            query,
        })
    }

    fn check_built(&self) -> Result<(), ScopeError> {
        if let ResourceType::Named(name) = &self.resource_type
            && !is_resource_type_name(name)
        {
            return Err(ScopeError::InvalidResourceType {
                scope: self.to_string(),
                resource_type: name.clone(),
            });
        }
        if self.permissions.is_empty() {
            return Err(ScopeError::EmptyPermissions {
                scope: self.to_string(),
            });
        }
        Ok(())
    }

    /// The level (`patient`, `user`, `system`).
    pub fn level(&self) -> Level {
        self.level
    }

    /// The resource type, or `*`.
    pub fn resource_type(&self) -> &ResourceType {
        &self.resource_type
    }

    /// The interactions granted (v1 words already mapped to their v2 equivalents).
    pub fn permissions(&self) -> Permissions {
        self.permissions
    }

    /// Whether the permissions were written in v1 or v2 syntax.
    pub fn syntax(&self) -> PermissionSyntax {
        self.syntax
    }

    /// Whether the permissions were written in v1 syntax.
    pub fn is_v1(&self) -> bool {
        matches!(self.syntax, PermissionSyntax::V1(_))
    }

    /// The query constraints, in the order written; empty when there is no `?`.
    pub fn query(&self) -> &[QueryParam] {
        &self.query
    }

    /// Whether the scope carries a `?` query, which limits it to matching resources.
    pub fn has_query(&self) -> bool {
        !self.query.is_empty()
    }

    /// Whether this scope applies to `interaction` on `resource_type` at `level`, ignoring any
    /// query constraint (see [`super::ScopeSet::access`] for how queries are treated).
    pub fn applies_to(&self, level: Level, resource_type: &str, interaction: Interaction) -> bool {
        self.level == level
            && self.resource_type.matches(resource_type)
            && self.permissions.contains(interaction)
    }

    /// Whether both scopes grant the same access (same level, type, permissions and query
    /// constraints), however they are written.
    pub fn equivalent(&self, other: &ResourceScope) -> bool {
        self.level == other.level
            && self.resource_type == other.resource_type
            && self.permissions == other.permissions
            && same_params(&self.query, &other.query)
    }

    /// Whether this scope's query constraints are all among `narrower`'s, so that every resource
    /// `narrower` reaches is also reached by this scope.
    pub(crate) fn query_covers(&self, narrower: &[QueryParam]) -> bool {
        self.query.iter().all(|p| narrower.contains(p))
    }

    /// A v2 copy of this scope with other permissions and query (used by set operations).
    pub(crate) fn reshaped(
        &self,
        resource_type: ResourceType,
        permissions: Permissions,
        query: Vec<QueryParam>,
    ) -> ResourceScope {
        ResourceScope {
            level: self.level,
            resource_type,
            permissions,
            syntax: PermissionSyntax::V2,
            query,
        }
    }
}

/// Query constraints are AND-ed search parameters, so their order does not change what they allow.
fn same_params(a: &[QueryParam], b: &[QueryParam]) -> bool {
    a.iter().all(|p| b.contains(p)) && b.iter().all(|p| a.contains(p))
}

impl fmt::Display for ResourceScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}.", self.level, self.resource_type)?;
        match self.syntax {
            PermissionSyntax::V1(word) => f.write_str(word.as_str())?,
            PermissionSyntax::V2 => write!(f, "{}", self.permissions)?,
        }
        for (i, param) in self.query.iter().enumerate() {
            f.write_str(if i == 0 { "?" } else { "&" })?;
            write!(f, "{param}")?;
        }
        Ok(())
    }
}

/// Splits `patient/`, `user/` or `system/` off the front.
pub(crate) fn split_level(text: &str) -> Option<(Level, &str)> {
    Level::ALL.into_iter().find_map(|level| {
        text.strip_prefix(level.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .map(|rest| (level, rest))
    })
}

fn parse_permissions(
    scope: &str,
    text: &str,
) -> Result<(Permissions, PermissionSyntax), ScopeError> {
    if text.is_empty() {
        return Err(ScopeError::EmptyPermissions {
            scope: scope.to_owned(),
        });
    }
    if let Some(word) = V1Permission::parse(text) {
        return Ok((word.permissions(), PermissionSyntax::V1(word)));
    }
    let mut permissions = Permissions::empty();
    let mut last: Option<Interaction> = None;
    for letter in text.chars() {
        let interaction =
            Interaction::from_letter(letter).ok_or_else(|| ScopeError::UnknownPermission {
                scope: scope.to_owned(),
                letter,
            })?;
        // Strictly increasing in `cruds` order rules out both reordering and repeats.
        if last.is_some_and(|prev| prev >= interaction) {
            return Err(ScopeError::PermissionsOutOfOrder {
                scope: scope.to_owned(),
                permissions: text.to_owned(),
            });
        }
        last = Some(interaction);
        permissions = permissions.with(interaction);
    }
    Ok((permissions, PermissionSyntax::V2))
}

fn parse_query(scope: &str, text: &str) -> Result<Vec<QueryParam>, ScopeError> {
    let bad = |problem| ScopeError::InvalidQuery {
        scope: scope.to_owned(),
        problem,
    };
    if text.is_empty() {
        return Err(bad("nothing follows the `?`"));
    }
    text.split('&')
        .map(|pair| {
            if pair.is_empty() {
                return Err(bad("an empty parameter between `&` separators"));
            }
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| bad("a parameter without `=`, expected `param=value`"))?;
            if name.is_empty() {
                return Err(bad("a parameter with an empty name"));
            }
            if value.is_empty() {
                return Err(bad("a parameter with an empty value"));
            }
            Ok(QueryParam {
                name: name.to_owned(),
                value: value.to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ResourceScope {
        ResourceScope::parse(text).unwrap()
    }

    // REQ: SCP-01
    #[test]
    fn reads_v2_scopes_of_every_level() {
        let s = parse("patient/Observation.rs");
        assert_eq!(s.level(), Level::Patient);
        assert_eq!(
            s.resource_type(),
            &ResourceType::Named("Observation".into())
        );
        assert_eq!(s.permissions().to_string(), "rs");
        assert_eq!(s.syntax(), PermissionSyntax::V2);
        assert!(!s.has_query());

        let s = parse("user/*.cruds");
        assert_eq!(s.level(), Level::User);
        assert_eq!(s.resource_type(), &ResourceType::Any);
        assert_eq!(s.permissions(), Permissions::all());

        let s = parse("system/Subscription.cu");
        assert_eq!(s.level(), Level::System);
        assert!(s.permissions().contains(Interaction::Create));
        assert!(s.permissions().contains(Interaction::Update));
        assert!(!s.permissions().contains(Interaction::Read));
    }

    // REQ: SCP-01
    #[test]
    fn reads_query_constraints_in_order() {
        let text = "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/\
                    observation-category|laboratory&code:in=http://example.org/vs?x=1";
        let s = parse(text);
        let names: Vec<_> = s.query().iter().map(QueryParam::name).collect();
        assert_eq!(names, ["category", "code:in"]);
        assert_eq!(s.query()[1].value(), "http://example.org/vs?x=1");
        assert_eq!(s.to_string(), text);
    }

    // REQ: SCP-01
    #[test]
    fn rejects_bad_permissions_with_the_scope_named() {
        for (text, code) in [
            ("patient/Observation.sr", "scope.permissions_out_of_order"),
            ("patient/Observation.dus", "scope.permissions_out_of_order"),
            ("patient/Observation.rrs", "scope.permissions_out_of_order"),
            ("patient/Observation.rx", "scope.unknown_permission"),
            ("patient/Observation.R", "scope.unknown_permission"),
            ("patient/Observation.Read", "scope.unknown_permission"),
            ("patient/Observation.", "scope.empty_permissions"),
            ("patient/Observation.?a=b", "scope.empty_permissions"),
            ("patient/Observation", "scope.missing_permissions"),
        ] {
            let err = ResourceScope::parse(text).unwrap_err();
            assert_eq!(err.code(), code, "{text}");
            assert_eq!(err.scope(), text);
            assert!(err.to_string().contains(text), "{err}");
        }
    }

    // REQ: SCP-01
    #[test]
    fn rejects_bad_resource_type_names() {
        for (text, bad) in [
            ("patient/observation.rs", "observation"),
            ("patient/O.rs", "O"),
            ("patient/Obs3rvation.rs", "Obs3rvation"),
            ("patient/.rs", ""),
            ("patient/**.rs", "**"),
            ("patient/Observation/x.rs", "Observation/x"),
        ] {
            match ResourceScope::parse(text) {
                Err(ScopeError::InvalidResourceType {
                    scope,
                    resource_type,
                }) => {
                    assert_eq!(scope, text);
                    assert_eq!(resource_type, bad);
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    // REQ: SCP-01
    #[test]
    fn rejects_malformed_queries() {
        for text in [
            "patient/Observation.rs?",
            "patient/Observation.rs?category",
            "patient/Observation.rs?=x",
            "patient/Observation.rs?category=",
            "patient/Observation.rs?a=1&&b=2",
            "patient/Observation.rs?a=1&",
        ] {
            let err = ResourceScope::parse(text).unwrap_err();
            assert_eq!(err.code(), "scope.invalid_query", "{text}");
            assert!(err.to_string().contains(text));
        }
    }

    // REQ: SCP-02
    #[test]
    fn v1_words_map_to_v2_and_keep_their_text() {
        for (text, v2) in [
            ("patient/*.read", "rs"),
            ("user/Observation.write", "cud"),
            ("system/Patient.*", "cruds"),
            ("patient/*.*", "cruds"),
        ] {
            let s = parse(text);
            assert!(s.is_v1());
            assert_eq!(s.permissions().to_string(), v2);
            assert_eq!(s.to_string(), text);
            let as_v2 = parse(&format!(
                "{}/{}.{v2}",
                s.level(),
                s.resource_type().as_str()
            ));
            assert!(s.equivalent(&as_v2));
            assert_ne!(s, as_v2, "equality is on the text");
        }
    }

    // REQ: SCP-02
    #[test]
    fn v1_scopes_take_no_query() {
        let err = ResourceScope::parse("patient/Observation.read?category=x").unwrap_err();
        assert_eq!(err.code(), "scope.query_on_v1");
    }

    #[test]
    fn built_scopes_are_checked_like_parsed_ones() {
        let s = ResourceScope::new(
            Level::Patient,
            ResourceType::Named("Observation".into()),
            Permissions::v1_read(),
        )
        .unwrap()
        .with_query_param("category", "laboratory")
        .unwrap();
        assert_eq!(s.to_string(), "patient/Observation.rs?category=laboratory");
        assert_eq!(parse(&s.to_string()), s);

        let v1 = ResourceScope::v1(Level::User, ResourceType::Any, V1Permission::Write).unwrap();
        assert_eq!(v1.to_string(), "user/*.write");
        assert!(v1.clone().with_query_param("a", "b").is_err());

        assert!(ResourceScope::new(Level::User, ResourceType::Any, Permissions::empty()).is_err());
        assert!(
            ResourceScope::new(
                Level::User,
                ResourceType::Named("bad".into()),
                Permissions::all()
            )
            .is_err()
        );
        let s = ResourceScope::new(Level::User, ResourceType::Any, Permissions::all()).unwrap();
        assert!(s.clone().with_query_param("a=b", "c").is_err());
        assert!(s.clone().with_query_param("a", "b&c=d").is_err());
        assert!(s.clone().with_query_param("a", "").is_err());
        assert_eq!(
            s.with_query_param("a", "b c").unwrap_err().code(),
            "scope.invalid_character"
        );
    }

    #[test]
    fn query_order_does_not_change_meaning() {
        let a = parse("patient/Observation.rs?a=1&b=2");
        let b = parse("patient/Observation.rs?b=2&a=1");
        assert!(a.equivalent(&b));
        assert_ne!(a, b);
        assert!(!a.equivalent(&parse("patient/Observation.rs?a=1")));
    }
}
