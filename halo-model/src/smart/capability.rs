//! SMART capability strings (SMART App Launch 2.1 §"Capabilities").

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A capability a SMART server advertises in `capabilities`.
///
/// Written and read as the specification's strings (`launch-ehr`, …). Any other string, such as
/// a full-URI extension capability, is kept as [`Other`](Self::Other) unchanged.
///
/// The legacy names in the specification's own worked examples,
/// `context-passthrough-banner` and `context-passthrough-style`, are kept as `Other` so the
/// document round-trips exactly; [`SmartConfiguration::supports`](super::SmartConfiguration::supports)
/// reads them as [`ContextBanner`](Self::ContextBanner) and [`ContextStyle`](Self::ContextStyle).
///
/// ```
/// use halo_model::smart::Capability;
///
/// assert_eq!("launch-ehr".parse::<Capability>(), Ok(Capability::LaunchEhr));
/// assert_eq!(Capability::PermissionV2.as_str(), "permission-v2");
/// assert_eq!(
///     "context-passthrough-banner".parse::<Capability>(),
///     Ok(Capability::Other("context-passthrough-banner".into()))
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Capability {
    /// `launch-ehr`: EHR launch.
    LaunchEhr,
    /// `launch-standalone`: standalone launch.
    LaunchStandalone,
    /// `authorize-post`: the authorize endpoint accepts POST.
    AuthorizePost,
    /// `client-public`: public clients.
    ClientPublic,
    /// `client-confidential-symmetric`: client secret authentication.
    ClientConfidentialSymmetric,
    /// `client-confidential-asymmetric`: `private_key_jwt` authentication.
    ClientConfidentialAsymmetric,
    /// `sso-openid-connect`: OpenID Connect single sign-on.
    SsoOpenidConnect,
    /// `context-banner`: `need_patient_banner`.
    ContextBanner,
    /// `context-style`: `smart_style_url`.
    ContextStyle,
    /// `context-ehr-patient`: patient context in EHR launch.
    ContextEhrPatient,
    /// `context-ehr-encounter`: encounter context in EHR launch.
    ContextEhrEncounter,
    /// `context-standalone-patient`: patient context in standalone launch.
    ContextStandalonePatient,
    /// `context-standalone-encounter`: encounter context in standalone launch.
    ContextStandaloneEncounter,
    /// `permission-offline`: `offline_access`.
    PermissionOffline,
    /// `permission-online`: `online_access`.
    PermissionOnline,
    /// `permission-patient`: `patient/` scopes.
    PermissionPatient,
    /// `permission-user`: `user/` scopes.
    PermissionUser,
    /// `permission-v1`: SMART v1 scope syntax.
    PermissionV1,
    /// `permission-v2`: SMART v2 scope syntax.
    PermissionV2,
    /// `smart-app-state`: the experimental app state endpoint.
    SmartAppState,
    /// Any other capability string, kept as sent.
    Other(String),
}

/// Every named capability and its string, in the specification's order.
const NAMES: &[(Capability, &str)] = &[
    (Capability::LaunchEhr, "launch-ehr"),
    (Capability::LaunchStandalone, "launch-standalone"),
    (Capability::AuthorizePost, "authorize-post"),
    (Capability::ClientPublic, "client-public"),
    (
        Capability::ClientConfidentialSymmetric,
        "client-confidential-symmetric",
    ),
    (
        Capability::ClientConfidentialAsymmetric,
        "client-confidential-asymmetric",
    ),
    (Capability::SsoOpenidConnect, "sso-openid-connect"),
    (Capability::ContextBanner, "context-banner"),
    (Capability::ContextStyle, "context-style"),
    (Capability::ContextEhrPatient, "context-ehr-patient"),
    (Capability::ContextEhrEncounter, "context-ehr-encounter"),
    (
        Capability::ContextStandalonePatient,
        "context-standalone-patient",
    ),
    (
        Capability::ContextStandaloneEncounter,
        "context-standalone-encounter",
    ),
    (Capability::PermissionOffline, "permission-offline"),
    (Capability::PermissionOnline, "permission-online"),
    (Capability::PermissionPatient, "permission-patient"),
    (Capability::PermissionUser, "permission-user"),
    (Capability::PermissionV1, "permission-v1"),
    (Capability::PermissionV2, "permission-v2"),
    (Capability::SmartAppState, "smart-app-state"),
];

/// Legacy names from the specification's worked examples and what they mean.
const LEGACY: &[(&str, Capability)] = &[
    ("context-passthrough-banner", Capability::ContextBanner),
    ("context-passthrough-style", Capability::ContextStyle),
];

impl Capability {
    /// The capability's string.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Other(s) => s,
            named => NAMES
                .iter()
                .find(|(c, _)| c == named)
                .map_or("", |(_, name)| name),
        }
    }

    /// For a legacy name (`context-passthrough-banner`, `context-passthrough-style`), the
    /// capability it stands for; `None` for anything else.
    pub fn legacy_meaning(&self) -> Option<&'static Capability> {
        match self {
            Self::Other(s) => LEGACY.iter().find(|(name, _)| name == s).map(|(_, c)| c),
            _ => None,
        }
    }

    /// Every capability SMART 2.1 names (without `Other`).
    pub fn all_named() -> impl Iterator<Item = &'static Capability> {
        NAMES.iter().map(|(c, _)| c)
    }
}

impl From<&str> for Capability {
    fn from(s: &str) -> Self {
        NAMES
            .iter()
            .find(|(_, name)| *name == s)
            .map_or_else(|| Self::Other(s.to_owned()), |(c, _)| c.clone())
    }
}

impl FromStr for Capability {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::from(s))
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Capability {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Capability {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Ok(Self::from(s.as_str()))
    }
}
