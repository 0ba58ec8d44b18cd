//! Typed errors for scope parsing. Every message quotes the offending scope text, so a developer
//! reading a log or an OAuth `invalid_scope` description sees exactly which scope was wrong.

/// Why a scope string is not a valid SMART App Launch 2.1 scope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScopeError {
    /// The scope text was empty.
    #[error("empty scope: a scope needs at least one character")]
    Empty,
    /// The scope holds a character OAuth 2.0 does not allow in a scope token.
    #[error(
        "scope `{scope}` contains {character:?}, which is not allowed in an OAuth scope \
         (RFC 6749 section 3.3 allows printable ASCII except space, `\"` and `\\`)"
    )]
    InvalidCharacter {
        /// The scope as written.
        scope: String,
        /// The first character that is not allowed.
        character: char,
    },
    /// The text matches none of the SMART scope forms.
    #[error(
        "scope `{scope}` is not a recognised scope: expected a resource scope such as \
         `patient/Observation.rs`, a launch scope (`launch`, `launch/patient`), `openid`, \
         `fhirUser`, `profile`, `offline_access`, `online_access`, or an extension scope \
         (an absolute URI or a name starting with `__`)"
    )]
    Unrecognised {
        /// The scope as written.
        scope: String,
    },
    /// A resource scope names something that is not a FHIR resource type name or `*`.
    #[error(
        "scope `{scope}` names resource type `{resource_type}`, which is neither `*` nor a FHIR \
         resource type name (an upper-case letter followed by one or more letters)"
    )]
    InvalidResourceType {
        /// The scope as written.
        scope: String,
        /// The resource type part as written.
        resource_type: String,
    },
    /// A resource scope has no `.` and so no permissions.
    #[error(
        "scope `{scope}` has no permissions: expected `.` followed by letters from `cruds` \
         (for example `patient/Observation.rs`) or v1 `.read`, `.write`, `.*`"
    )]
    MissingPermissions {
        /// The scope as written.
        scope: String,
    },
    /// A resource scope has a `.` with nothing after it.
    #[error(
        "scope `{scope}` has empty permissions after the `.`: expected letters from `cruds` in \
         that order, or v1 `read`, `write`, `*`"
    )]
    EmptyPermissions {
        /// The scope as written.
        scope: String,
    },
    /// A permission letter is not one of `c r u d s`.
    #[error(
        "scope `{scope}` has unknown permission {letter:?}: v2 permissions are the letters \
         `c`, `r`, `u`, `d`, `s`; v1 permissions are `read`, `write`, `*`"
    )]
    UnknownPermission {
        /// The scope as written.
        scope: String,
        /// The first letter that is not a permission.
        letter: char,
    },
    /// Permission letters are repeated or not in `cruds` order.
    #[error(
        "scope `{scope}` has permissions `{permissions}` out of order or repeated: SMART v2 \
         permissions are written in the order `cruds`, each at most once (for example `rs`, not `sr`)"
    )]
    PermissionsOutOfOrder {
        /// The scope as written.
        scope: String,
        /// The permission part as written.
        permissions: String,
    },
    /// A v1 scope (`.read`, `.write`, `.*`) carries a `?` query, which only v2 allows.
    #[error(
        "scope `{scope}` uses v1 permissions with a `?` query; query constraints are only \
         defined for v2 permissions (for example `.rs?category=...`)"
    )]
    QueryOnV1 {
        /// The scope as written.
        scope: String,
    },
    /// The `?param=value(&param=value)*` part of a resource scope is malformed.
    #[error("scope `{scope}` has a malformed query: {problem}")]
    InvalidQuery {
        /// The scope as written.
        scope: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A `launch/<type>` scope has a type that is not a resource type name.
    #[error(
        "scope `{scope}` is not a valid launch scope: expected `launch` or `launch/<type>` where \
         <type> is a FHIR resource type name in any case (for example `launch/patient`)"
    )]
    InvalidLaunchType {
        /// The scope as written.
        scope: String,
    },
    /// A launch scope has a suffix other than a single non-empty `?role=`.
    #[error(
        "scope `{scope}` has an invalid launch suffix: only `launch/<type>` may carry a suffix, \
         and it must be a single non-empty `?role=<uri>`"
    )]
    InvalidLaunchRole {
        /// The scope as written.
        scope: String,
    },
}

impl ScopeError {
    /// The scope text the error is about (empty for [`ScopeError::Empty`]).
    pub fn scope(&self) -> &str {
        match self {
            Self::Empty => "",
            Self::InvalidCharacter { scope, .. }
            | Self::Unrecognised { scope }
            | Self::InvalidResourceType { scope, .. }
            | Self::MissingPermissions { scope }
            | Self::EmptyPermissions { scope }
            | Self::UnknownPermission { scope, .. }
            | Self::PermissionsOutOfOrder { scope, .. }
            | Self::QueryOnV1 { scope }
            | Self::InvalidQuery { scope, .. }
            | Self::InvalidLaunchType { scope }
            | Self::InvalidLaunchRole { scope } => scope,
        }
    }

    /// A stable machine-readable code for the kind of error, for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "scope.empty",
            Self::InvalidCharacter { .. } => "scope.invalid_character",
            Self::Unrecognised { .. } => "scope.unrecognised",
            Self::InvalidResourceType { .. } => "scope.invalid_resource_type",
            Self::MissingPermissions { .. } => "scope.missing_permissions",
            Self::EmptyPermissions { .. } => "scope.empty_permissions",
            Self::UnknownPermission { .. } => "scope.unknown_permission",
            Self::PermissionsOutOfOrder { .. } => "scope.permissions_out_of_order",
            Self::QueryOnV1 { .. } => "scope.query_on_v1",
            Self::InvalidQuery { .. } => "scope.invalid_query",
            Self::InvalidLaunchType { .. } => "scope.invalid_launch_type",
            Self::InvalidLaunchRole { .. } => "scope.invalid_launch_role",
        }
    }
}
