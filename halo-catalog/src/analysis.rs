//! What an entry's `scopes` mean for a point of care (REQ CAT-10, CAT-11, CAT-12).
//!
//! - [`required_context`]: the launch context the PoC must send in `$set-context`.
//! - [`resource_access`]: the resource types (and interactions) the app may use, so the PoC
//!   knows what to prepopulate in the SoFA FHIR server.
//! - [`compatibility`]: which scopes a given PoC cannot satisfy.
//!
//! Scopes that do not parse are skipped here; validation reports them.

use crate::model::AppEntry;
use halo_model::scope::{Level, Permissions, ResourceType, Scope, ScopeSet};
use std::collections::BTreeSet;
use std::fmt;

/// The context a PoC sends when an app asks for `launch` and nothing more specific (HALO App
/// Catalog, Context Scopes): patient, practitioner, organization and location, each when the
/// user's current context has one.
pub const DEFAULT_LAUNCH_CONTEXT: [&str; 4] =
    ["Patient", "Practitioner", "Organization", "Location"];

impl AppEntry {
    /// The entry's scopes that parse, in order and without duplicates.
    pub fn scope_set(&self) -> ScopeSet {
        self.scopes
            .iter()
            .flatten()
            .filter_map(|s| Scope::parse(s).ok())
            .collect()
    }
}

/// Why [`RequiredContext::types`] holds what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextBasis {
    /// The entry lists `launch/<Type>` scopes; they name the minimum context.
    Explicit,
    /// The entry lists `launch` alone: the minimum is [`DEFAULT_LAUNCH_CONTEXT`], each type only
    /// when it is present in the user's current context.
    LaunchOnly,
    /// The entry lists no launch scope: the app does not expect an EHR launch context.
    NoLaunch,
}

/// The launch context a PoC must set with `$set-context` before launching an app (CAT-10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequiredContext {
    /// Resource types, normalised (`launch/patient` gives `Patient`), in scope order.
    pub types: Vec<String>,
    /// Where the list comes from.
    pub basis: ContextBasis,
    /// The app asks for the user's identity (`openid` and `fhirUser`): the SoFA must know the
    /// user's FHIR resource (a Practitioner) to fill the id_token's `fhirUser` claim.
    pub user_identity: bool,
    /// The app asks for `offline_access`: it may keep writing after the user closes it, so the
    /// PoC must keep its `$set-context` id mappings (decision D-15).
    pub offline_access: bool,
}

impl RequiredContext {
    /// Whether each type is needed only when present in the user's context (`launch` alone).
    pub fn only_if_present(&self) -> bool {
        self.basis == ContextBasis::LaunchOnly
    }
}

/// The minimum launch context for `entry` (CAT-10).
///
/// ```
/// # use halo_catalog::{Catalog, Mode, analysis::{required_context, ContextBasis}};
/// # let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/catalog.json"))?;
/// # let catalog = Catalog::parse(&bytes, Mode::Lenient)?.catalog;
/// let heart = catalog.get("fcf9956c-f952-40e0-8e24-a65d56118db2").ok_or("missing")?;
/// let ctx = required_context(heart);
/// assert_eq!(ctx.types, ["Patient", "Organization", "Location"]);
/// assert_eq!(ctx.basis, ContextBasis::Explicit);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn required_context(entry: &AppEntry) -> RequiredContext {
    let set = entry.scope_set();
    let explicit: Vec<String> = set.context_types().into_iter().map(str::to_owned).collect();
    let (types, basis) = if !explicit.is_empty() {
        (explicit, ContextBasis::Explicit)
    } else if set.has_launch() {
        (
            DEFAULT_LAUNCH_CONTEXT
                .iter()
                .map(|t| (*t).to_owned())
                .collect(),
            ContextBasis::LaunchOnly,
        )
    } else {
        (Vec::new(), ContextBasis::NoLaunch)
    };
    RequiredContext {
        types,
        basis,
        user_identity: set.has_openid() && set.has_fhir_user(),
        offline_access: set.iter().any(|s| matches!(s, Scope::OfflineAccess)),
    }
}

/// What the app may do with one resource type at one level (CAT-11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceAccess {
    /// `patient`, `user` or `system`.
    pub level: Level,
    /// A named type or `*` (every type).
    pub resource_type: ResourceType,
    /// The union of the interactions every scope for this level and type grants.
    pub permissions: Permissions,
    /// Some scope for this level and type narrows it with a `?` query (which PoCs may ignore).
    pub query_restricted: bool,
}

impl fmt::Display for ResourceAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}.{}",
            self.level, self.resource_type, self.permissions
        )?;
        if self.query_restricted {
            f.write_str(" (query-restricted)")?;
        }
        Ok(())
    }
}

/// The resource types and interactions `entry`'s resource scopes allow, one item per level and
/// type, in the order they first appear (CAT-11).
pub fn resource_access(entry: &AppEntry) -> Vec<ResourceAccess> {
    let mut out: Vec<ResourceAccess> = Vec::new();
    for r in entry.scope_set().resource_scopes() {
        match out
            .iter_mut()
            .find(|a| a.level == r.level() && &a.resource_type == r.resource_type())
        {
            Some(a) => {
                a.permissions = a.permissions.union(r.permissions());
                a.query_restricted |= r.has_query();
            }
            None => out.push(ResourceAccess {
                level: r.level(),
                resource_type: r.resource_type().clone(),
                permissions: r.permissions(),
                query_restricted: r.has_query(),
            }),
        }
    }
    out
}

/// The distinct resource types `entry` may touch, `*` included, in first-appearance order.
pub fn resource_types(entry: &AppEntry) -> Vec<ResourceType> {
    let mut types: Vec<ResourceType> = Vec::new();
    for a in resource_access(entry) {
        if !types.contains(&a.resource_type) {
            types.push(a.resource_type);
        }
    }
    types
}

/// What a PoC can map to FHIR: the resource types it can prepopulate and read back, and the
/// types it can put in a launch context.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PocCapabilities {
    /// Resource types the PoC can map (for prepopulation and for reading app writes).
    pub resource_types: BTreeSet<String>,
    /// Resource types the PoC can name as launch context.
    pub context_types: BTreeSet<String>,
}

impl PocCapabilities {
    /// Capabilities from two lists of resource type names.
    pub fn new<R, C>(resource_types: R, context_types: C) -> Self
    where
        R: IntoIterator,
        R::Item: Into<String>,
        C: IntoIterator,
        C::Item: Into<String>,
    {
        Self {
            resource_types: resource_types.into_iter().map(Into::into).collect(),
            context_types: context_types.into_iter().map(Into::into).collect(),
        }
    }

    /// The SDK's default: every resource type of decision D-14, and as context the types a PoC's
    /// launch context holds (Patient, Practitioner, PractitionerRole, Organization, Location,
    /// Encounter).
    pub fn halo_default() -> Self {
        Self::new(
            halo_model::set_context::D14_SUPPORTED_TYPES.iter().copied(),
            [
                "Patient",
                "Practitioner",
                "PractitionerRole",
                "Organization",
                "Location",
                "Encounter",
            ],
        )
    }
}

/// Why a scope is not (fully) satisfied.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Gap {
    /// A resource scope names a type the PoC cannot map.
    ResourceType(String),
    /// A `launch/<Type>` scope (or `fhirUser`, which needs the user's Practitioner) asks for
    /// context the PoC cannot provide.
    ContextType(String),
    /// A `*` scope: the PoC can serve only the types it maps.
    Wildcard,
    /// `launch` alone asks for this default context type, which the PoC cannot provide; allowed
    /// (the rule says "when present"), but the app will launch without it.
    DefaultContextType(String),
    /// An extension scope, whose meaning the PoC cannot judge.
    Extension,
}

impl fmt::Display for Gap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gap::ResourceType(t) => write!(f, "the PoC cannot map {t} resources"),
            Gap::ContextType(t) => write!(f, "the PoC cannot provide a {t} as launch context"),
            Gap::Wildcard => f.write_str(
                "`*` asks for every resource type; the PoC can prepopulate only the types it maps",
            ),
            Gap::DefaultContextType(t) => write!(
                f,
                "`launch` alone asks for the current {t} when there is one; the PoC cannot provide it"
            ),
            Gap::Extension => f.write_str("an extension scope; the PoC cannot tell what it needs"),
        }
    }
}

/// One scope and why it is a problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeGap {
    /// The scope as the entry lists it.
    pub scope: String,
    /// Why.
    pub gap: Gap,
}

/// Which of an entry's scopes a PoC cannot satisfy (CAT-12).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compatibility {
    /// Scopes the PoC cannot satisfy: the app will not work as intended.
    pub unsatisfied: Vec<ScopeGap>,
    /// Scopes the PoC can satisfy only in part: the app may work with less.
    pub partial: Vec<ScopeGap>,
}

impl Compatibility {
    /// Whether no scope is unsatisfied (partial ones allowed).
    pub fn is_compatible(&self) -> bool {
        self.unsatisfied.is_empty()
    }
}

/// Checks `entry`'s scopes against what a PoC can provide (CAT-12).
pub fn compatibility(entry: &AppEntry, poc: &PocCapabilities) -> Compatibility {
    let set = entry.scope_set();
    let mut report = Compatibility::default();
    let launch_only = set.context_types().is_empty();
    for scope in set.iter() {
        let text = scope.to_string();
        let mut gap = |gap: Gap, partial: bool| {
            let item = ScopeGap {
                scope: text.clone(),
                gap,
            };
            if partial {
                report.partial.push(item);
            } else {
                report.unsatisfied.push(item);
            }
        };
        match scope {
            Scope::Resource(r) => match r.resource_type() {
                ResourceType::Any => gap(Gap::Wildcard, true),
                ResourceType::Named(t) if !poc.resource_types.contains(t) => {
                    gap(Gap::ResourceType(t.clone()), false)
                }
                ResourceType::Named(_) => {}
            },
            Scope::Context(c) => match c.resource_type() {
                Some(t) if !poc.context_types.contains(t) => {
                    gap(Gap::ContextType(t.to_owned()), false)
                }
                Some(_) => {}
                None if launch_only => {
                    for t in DEFAULT_LAUNCH_CONTEXT {
                        if !poc.context_types.contains(t) {
                            gap(Gap::DefaultContextType(t.to_owned()), true);
                        }
                    }
                }
                None => {}
            },
            Scope::FhirUser if !poc.context_types.contains("Practitioner") => {
                gap(Gap::ContextType("Practitioner".to_owned()), false);
            }
            Scope::Extension(_) => gap(Gap::Extension, true),
            _ => {}
        }
    }
    report
}
