//! The CapabilityStatement (REQ RS-01), generated from what the router actually mounts: each
//! part of the server declares its operations and resources in [`Capabilities`] as it is
//! mounted, and `GET /metadata` renders that.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use halo_model::canonical;
use serde_json::{Value, json};

use crate::config::SofaConfig;

/// An operation the server offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationCapability {
    /// The name without `$` (`set-context`).
    pub name: String,
    /// The OperationDefinition canonical.
    pub definition: String,
}

impl OperationCapability {
    /// An operation.
    pub fn new(name: impl Into<String>, definition: impl Into<String>) -> OperationCapability {
        OperationCapability {
            name: name.into(),
            definition: definition.into(),
        }
    }
}

/// A search parameter of a resource type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchParam {
    /// The name (`patient`).
    pub name: String,
    /// The FHIR search parameter type (`reference`, `token`...).
    pub kind: String,
    /// The canonical of the SearchParameter it implements
    /// (`http://hl7.org/fhir/SearchParameter/clinical-patient`).
    pub definition: Option<String>,
}

/// What the server offers for one resource type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceCapability {
    /// Profiles the server accepts and produces for this type.
    pub supported_profiles: Vec<String>,
    /// Interactions (`read`, `search-type`, `create`, `update`, `delete`).
    pub interactions: Vec<String>,
    /// Search parameters.
    pub search_params: Vec<SearchParam>,
    /// Type- and instance-level operations.
    pub operations: Vec<OperationCapability>,
    /// Extensions on the resource entry (e.g. the subscription-topic canonical).
    pub extensions: Vec<Value>,
    /// Whether `update` requires `If-Match` / versioning is tracked.
    pub versioned: bool,
}

/// Everything the mounted parts of the server offer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Capabilities {
    /// System-level operations.
    pub operations: Vec<OperationCapability>,
    /// Resource types, by name.
    pub resources: BTreeMap<String, ResourceCapability>,
    /// CapabilityStatements this server instantiates.
    pub instantiates: Vec<String>,
    /// Implementation guides the server follows.
    pub implementation_guides: Vec<String>,
    /// Response and request formats (`json`, `application/fhir+json`, `xml`, `application/fhir+xml`).
    pub formats: Vec<String>,
}

impl Capabilities {
    /// The base every SoFA has: JSON and XML formats and the HALO and CA Core+ guides.
    pub fn base() -> Capabilities {
        Capabilities {
            formats: vec![
                "json".into(),
                canonical_media::FHIR_JSON.into(),
                "xml".into(),
                canonical_media::FHIR_XML.into(),
            ],
            implementation_guides: vec![canonical::HALO_IMPLEMENTATION_GUIDE.into()],
            ..Capabilities::default()
        }
    }

    /// The entry of a resource type, created when missing.
    pub fn resource_mut(&mut self, resource_type: &str) -> &mut ResourceCapability {
        self.resources.entry(resource_type.to_string()).or_default()
    }

    /// Adds a system-level operation once.
    pub fn add_operation(&mut self, operation: OperationCapability) {
        if !self.operations.contains(&operation) {
            self.operations.push(operation);
        }
    }

    /// Declares the types stored through `$set-context` (and later app writes) with their CA
    /// Core+ profile where CA Core+ has one.
    pub fn add_supported_types<'a>(&mut self, types: impl IntoIterator<Item = &'a str>) {
        for resource_type in types {
            let entry = self.resource_mut(resource_type);
            if CA_CORE_PROFILED.contains(&resource_type) {
                let profile = canonical::ca_core_profile(resource_type);
                if !entry.supported_profiles.contains(&profile) {
                    entry.supported_profiles.push(profile);
                }
            }
        }
    }

    /// Declares the backport Subscription support a subscriptions module mounts: the
    /// Subscription type with its operations, the topic canonical extension per topic, the
    /// backport profile and server CapabilityStatement (REQ RS-01, SUB-01).
    pub fn add_subscriptions<'a>(&mut self, topics: impl IntoIterator<Item = &'a str>) {
        let entry = self.resource_mut("Subscription");
        entry.supported_profiles = vec![canonical::BACKPORT_SUBSCRIPTION.into()];
        entry.interactions = ["read", "create", "update", "delete", "search-type"]
            .map(String::from)
            .to_vec();
        entry.operations = vec![
            OperationCapability::new("status", canonical::BACKPORT_STATUS_OPERATION),
            OperationCapability::new("events", canonical::BACKPORT_EVENTS_OPERATION),
            OperationCapability::new(
                "get-ws-binding-token",
                canonical::BACKPORT_GET_WS_BINDING_TOKEN_OPERATION,
            ),
        ];
        entry.extensions = topics
            .into_iter()
            .map(|topic| {
                json!({
                    "url": canonical::BACKPORT_CAPABILITYSTATEMENT_TOPIC_CANONICAL,
                    "valueCanonical": topic,
                })
            })
            .collect();
        let server = format!(
            "{}|1.1.0",
            canonical::BACKPORT_SERVER_CAPABILITY_STATEMENT_R4
        );
        if !self.instantiates.contains(&server) {
            self.instantiates.push(server);
        }
    }

    /// The CapabilityStatement JSON.
    pub fn to_capability_statement(&self, config: &SofaConfig, date: DateTime<Utc>) -> Value {
        let mut implementation_guides = self.implementation_guides.clone();
        if self.resources.values().any(|r| {
            r.supported_profiles
                .iter()
                .any(|p| p.starts_with(canonical::CA_CORE_PROFILE_BASE))
        }) {
            implementation_guides.push(ca_core_guide());
        }
        let mut rest = json!({
            "mode": "server",
            "security": security(config),
            "resource": self.resources.iter().map(|(t, r)| resource_entry(t, r)).collect::<Vec<_>>(),
            "operation": self.operations.iter().map(operation_entry).collect::<Vec<_>>(),
        });
        if self.operations.is_empty()
            && let Some(rest) = rest.as_object_mut()
        {
            rest.remove("operation");
        }
        let mut statement = json!({
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": date.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "kind": "instance",
            "software": {"name": config.software_name, "version": env!("CARGO_PKG_VERSION")},
            "implementation": {"description": "HALO SMART on FHIR Accelerator", "url": config.base_url},
            "fhirVersion": canonical::FHIR_VERSION,
            "format": self.formats,
            "implementationGuide": implementation_guides,
            "rest": [rest],
        });
        if !self.instantiates.is_empty()
            && let Some(object) = statement.as_object_mut()
        {
            object.insert("instantiates".into(), json!(self.instantiates));
        }
        statement
    }
}

/// The D-14 types CA Core+ profiles (spec notes, CA-CORE); the others are plain R4.
const CA_CORE_PROFILED: &[&str] = &[
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Location",
    "Encounter",
    "Observation",
    "Condition",
    "AllergyIntolerance",
    "MedicationRequest",
    "MedicationStatement",
    "Immunization",
];

mod canonical_media {
    pub(super) use halo_model::fhir::media::{FHIR_JSON, FHIR_XML};
}

fn ca_core_guide() -> String {
    // The CA Core+ guide canonical: the profile base without `StructureDefinition/`.
    let base = canonical::CA_CORE_PROFILE_BASE.trim_end_matches('/');
    let guide_base = base.strip_suffix("/StructureDefinition").unwrap_or(base);
    format!(
        "{guide_base}/ImplementationGuide/{}",
        canonical::CA_CORE_PACKAGE
    )
}

fn security(config: &SofaConfig) -> Value {
    let mut security = json!({
        "cors": true,
        "service": [{
            "coding": [{
                "system": canonical::SMART_SECURITY_SERVICE_SYSTEM,
                "code": canonical::SMART_SECURITY_SERVICE_CODE,
            }],
            "text": "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)",
        }],
    });
    if let Some(oauth) = &config.oauth {
        let mut uris = vec![
            json!({"url": "authorize", "valueUri": oauth.authorize}),
            json!({"url": "token", "valueUri": oauth.token}),
        ];
        if let Some(introspect) = &oauth.introspect {
            uris.push(json!({"url": "introspect", "valueUri": introspect}));
        }
        if let Some(revoke) = &oauth.revoke {
            uris.push(json!({"url": "revoke", "valueUri": revoke}));
        }
        if let Some(object) = security.as_object_mut() {
            object.insert(
                "extension".into(),
                json!([{"url": canonical::SMART_OAUTH_URIS_EXTENSION, "extension": uris}]),
            );
        }
    }
    security
}

fn operation_entry(operation: &OperationCapability) -> Value {
    json!({"name": operation.name, "definition": operation.definition})
}

fn resource_entry(resource_type: &str, capability: &ResourceCapability) -> Value {
    let mut entry = serde_json::Map::new();
    if !capability.extensions.is_empty() {
        entry.insert("extension".into(), json!(capability.extensions));
    }
    entry.insert("type".into(), json!(resource_type));
    if !capability.supported_profiles.is_empty() {
        entry.insert(
            "supportedProfile".into(),
            json!(capability.supported_profiles),
        );
    }
    if !capability.interactions.is_empty() {
        entry.insert(
            "interaction".into(),
            capability
                .interactions
                .iter()
                .map(|code| json!({"code": code}))
                .collect(),
        );
    }
    if capability.versioned {
        entry.insert("versioning".into(), json!("versioned-update"));
    }
    if !capability.search_params.is_empty() {
        entry.insert(
            "searchParam".into(),
            capability
                .search_params
                .iter()
                .map(|p| {
                    let mut param = json!({"name": p.name});
                    if let Some(definition) = &p.definition {
                        param["definition"] = json!(definition);
                    }
                    param["type"] = json!(p.kind);
                    param
                })
                .collect(),
        );
    }
    if !capability.operations.is_empty() {
        entry.insert(
            "operation".into(),
            capability.operations.iter().map(operation_entry).collect(),
        );
    }
    Value::Object(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SofaConfig {
        SofaConfig::new("https://sofa.example.org/fhir").unwrap()
    }

    // REQ: RS-01
    #[test]
    fn subscriptions_when_mounted_bring_their_operations_topic_and_backport_statement() {
        let mut caps = Capabilities::base();
        let without = caps.to_capability_statement(&config(), Utc::now());
        assert!(without.get("instantiates").is_none());
        assert!(
            !without["rest"][0]["resource"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["type"] == "Subscription")
        );
        caps.add_subscriptions([canonical::SOFA_CONTENT_UPDATE_TOPIC]);
        let with = caps.to_capability_statement(&config(), Utc::now());
        let subscription = with["rest"][0]["resource"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == "Subscription")
            .unwrap();
        assert_eq!(
            subscription["supportedProfile"][0],
            canonical::BACKPORT_SUBSCRIPTION
        );
        assert_eq!(
            subscription["extension"][0]["valueCanonical"],
            canonical::SOFA_CONTENT_UPDATE_TOPIC
        );
        let ops: Vec<_> = subscription["operation"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap())
            .collect();
        assert_eq!(ops, ["status", "events", "get-ws-binding-token"]);
        assert!(
            with["instantiates"][0]
                .as_str()
                .unwrap()
                .starts_with(canonical::BACKPORT_SERVER_CAPABILITY_STATEMENT_R4)
        );
    }

    // REQ: RS-01
    #[test]
    fn oauth_uris_are_advertised_when_configured() {
        let mut config = config();
        let caps = Capabilities::base();
        assert!(
            caps.to_capability_statement(&config, Utc::now())["rest"][0]["security"]
                .get("extension")
                .is_none()
        );
        config.oauth = Some(crate::config::OAuthUris {
            authorize: "https://sofa.example.org/auth/authorize".into(),
            token: "https://sofa.example.org/auth/token".into(),
            ..Default::default()
        });
        let statement = caps.to_capability_statement(&config, Utc::now());
        let extension = &statement["rest"][0]["security"]["extension"][0];
        assert_eq!(extension["url"], canonical::SMART_OAUTH_URIS_EXTENSION);
        assert_eq!(extension["extension"][1]["url"], "token");
    }
}
