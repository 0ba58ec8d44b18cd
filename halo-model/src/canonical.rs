//! Every canonical URL the SDK uses, in one place.
//!
//! HALO's own URLs use `http` (not `https`): they are identifiers, not addresses. Where HALO is
//! silent the project decided a value (the topic URL, decision D-01); it is one constant here so
//! a jurisdiction that publishes another URL changes one line.

/// HALO: the base of every HALO canonical URL.
pub const HALO_BASE: &str = "http://fhir.infoway-inforoute.ca/io/HALO";

/// HALO: the implementation guide's package id (for `CapabilityStatement.implementationGuide`).
pub const HALO_PACKAGE: &str = "ca.infoway.io.halo";

/// HALO: the implementation guide's canonical URL (inferred from the package's URL pattern, like D-01).
pub const HALO_IMPLEMENTATION_GUIDE: &str =
    "http://fhir.infoway-inforoute.ca/io/HALO/ImplementationGuide/ca.infoway.io.halo";

/// HALO: `OperationDefinition/set-context` (system level, `POST [base]/$set-context`).
pub const SET_CONTEXT_OPERATION: &str =
    "http://fhir.infoway-inforoute.ca/io/HALO/OperationDefinition/set-context";

/// HALO: `OperationDefinition/clear-context` (system level, `POST [base]/$clear-context`).
pub const CLEAR_CONTEXT_OPERATION: &str =
    "http://fhir.infoway-inforoute.ca/io/HALO/OperationDefinition/clear-context";

/// HALO profile: SetContextInputParameters (on Parameters).
pub const SET_CONTEXT_INPUT_PARAMETERS: &str =
    "http://fhir.infoway-inforoute.ca/io/HALO/StructureDefinition/set-context-input-parameters";

/// HALO profile: SetContextOutputParameters (on Parameters).
pub const SET_CONTEXT_OUTPUT_PARAMETERS: &str =
    "http://fhir.infoway-inforoute.ca/io/HALO/StructureDefinition/set-context-output-parameters";

/// HALO profile: SetContextTransactionBundle (on Bundle, `type` fixed `transaction`).
pub const SET_CONTEXT_TRANSACTION_BUNDLE: &str =
    "http://fhir.infoway-inforoute.ca/io/HALO/StructureDefinition/set-context-transaction-bundle";

/// HALO profile: SetContextTransactionResponseBundle (on Bundle, `type` fixed
/// `transaction-response`).
pub const SET_CONTEXT_TRANSACTION_RESPONSE_BUNDLE: &str = "http://fhir.infoway-inforoute.ca/io/HALO/StructureDefinition/set-context-transaction-response-bundle";

/// Decision D-01: the SoFA Content Update subscription topic. HALO names the topic but its
/// canonical could not be verified; this follows the package's URL pattern.
pub const SOFA_CONTENT_UPDATE_TOPIC: &str =
    "http://fhir.infoway-inforoute.ca/io/HALO/SubscriptionTopic/sofa-content-update";

/// CA Core+: the base of the profile canonicals (`<base>/<x>-ca-core`).
pub const CA_CORE_PROFILE_BASE: &str =
    "http://fhir.infoway-inforoute.ca/cacore/StructureDefinition";

/// CA Core+: the base of the extension canonicals, a different path from the profiles.
pub const CA_CORE_EXTENSION_BASE: &str =
    "http://fhir.infoway-inforoute.ca/ca-core/StructureDefinition";

/// CA Core+: the implementation guide's package id.
pub const CA_CORE_PACKAGE: &str = "ca.infoway.io.core";

/// The CA Core+ profile canonical for a resource type, for example
/// `http://fhir.infoway-inforoute.ca/cacore/StructureDefinition/patient-ca-core` for `Patient`.
///
/// The profile names are the resource type with a lower-case first letter
/// (`practitionerRole-ca-core`, `allergyIntolerance-ca-core`).
pub fn ca_core_profile(resource_type: &str) -> String {
    let mut chars = resource_type.chars();
    let name: String = match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    };
    format!("{CA_CORE_PROFILE_BASE}/{name}-ca-core")
}

/// FHIR core: the base of core StructureDefinitions.
pub const FHIR_STRUCTURE_DEFINITION_BASE: &str = "http://hl7.org/fhir/StructureDefinition";

/// FHIR core: the R4 version this SDK speaks.
pub const FHIR_VERSION: &str = "4.0.1";

/// SMART: the `oauth-uris` extension of CapabilityStatement security (deprecated discovery, still
/// expected by some clients and test kits).
pub const SMART_OAUTH_URIS_EXTENSION: &str =
    "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris";

/// SMART: the `restful-security-service` code system, for `CapabilityStatement.rest.security`.
pub const SMART_SECURITY_SERVICE_SYSTEM: &str =
    "http://terminology.hl7.org/CodeSystem/restful-security-service";

/// SMART: the code of the SMART on FHIR security service.
pub const SMART_SECURITY_SERVICE_CODE: &str = "SMART-on-FHIR";

/// SMART: the SMART App Launch implementation guide (2.1).
pub const SMART_APP_LAUNCH_IG: &str =
    "http://hl7.org/fhir/smart-app-launch/ImplementationGuide/hl7.fhir.uv.smart-app-launch";

/// SMART: the `smart-codes` code system (for example the `launch` context role codes).
pub const SMART_CODES_SYSTEM: &str = "http://hl7.org/fhir/smart-app-launch/CodeSystem/smart-codes";

/// The well-known path of the SMART configuration document, relative to the FHIR base.
pub const SMART_CONFIGURATION_PATH: &str = ".well-known/smart-configuration";

/// The well-known path of the OpenID Connect discovery document, relative to the issuer.
pub const OPENID_CONFIGURATION_PATH: &str = ".well-known/openid-configuration";

/// Subscriptions R5 Backport: the base of every backport canonical.
pub const BACKPORT_BASE: &str = "http://hl7.org/fhir/uv/subscriptions-backport";

/// Backport profile: the R4 Subscription.
pub const BACKPORT_SUBSCRIPTION: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription";

/// Backport profile: the R4 SubscriptionStatus Parameters.
pub const BACKPORT_SUBSCRIPTION_STATUS_R4: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-status-r4";

/// Backport profile: the R4 notification Bundle.
pub const BACKPORT_SUBSCRIPTION_NOTIFICATION_R4: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-notification-r4";

/// Backport profile: the notification Bundle (version-independent).
pub const BACKPORT_SUBSCRIPTION_NOTIFICATION: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-notification";

/// Backport extension: `Subscription.criteria.extension` filter criteria.
pub const BACKPORT_FILTER_CRITERIA: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria";

/// Backport extension: `Subscription.channel.extension` heartbeat period (seconds).
pub const BACKPORT_HEARTBEAT_PERIOD: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-heartbeat-period";

/// Backport extension: `Subscription.channel.extension` timeout (seconds).
pub const BACKPORT_TIMEOUT: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-timeout";

/// Backport extension: `Subscription.channel.extension` maximum events per notification.
pub const BACKPORT_MAX_COUNT: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-max-count";

/// Backport extension: `Subscription.channel.payload.extension` payload content.
pub const BACKPORT_PAYLOAD_CONTENT: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content";

/// Backport extension: custom channel type on `Subscription.channel.type`.
pub const BACKPORT_CHANNEL_TYPE: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-channel-type";

/// Backport extension: the authorization hint of a notification event.
pub const BACKPORT_NOTIFICATION_AUTHORIZATION_HINT: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/notification-authorization-hint";

/// Backport extension: a related query of a notification event.
pub const BACKPORT_RELATED_QUERY: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-related-query";

/// Backport extension: the topics a server supports, on `CapabilityStatement.rest.resource`
/// (Subscription) or `CapabilityStatement.rest`.
pub const BACKPORT_CAPABILITYSTATEMENT_TOPIC_CANONICAL: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/capabilitystatement-subscriptiontopic-canonical";

/// Backport: the R4 subscription server CapabilityStatement a SoFA `instantiates`.
pub const BACKPORT_SERVER_CAPABILITY_STATEMENT_R4: &str = "http://hl7.org/fhir/uv/subscriptions-backport/CapabilityStatement/backport-subscription-server-r4";

/// Backport: the payload content code system (`empty`, `id-only`, `full-resource`).
pub const BACKPORT_CONTENT_CODE_SYSTEM: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/CodeSystem/backport-content-code-system";

/// Backport operation: `$status`.
pub const BACKPORT_STATUS_OPERATION: &str = "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-status";

/// Backport operation: `$events`.
pub const BACKPORT_EVENTS_OPERATION: &str = "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-events";

/// Backport operation: `$get-ws-binding-token`.
pub const BACKPORT_GET_WS_BINDING_TOKEN_OPERATION: &str = "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-get-ws-binding-token";

/// Backport: the base of the R5 cross-version extensions that carry SubscriptionTopic elements
/// on an R4 `Basic` resource.
pub const R5_SUBSCRIPTION_TOPIC_EXTENSION_BASE: &str =
    "http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic";

/// Backport: the R4B cross-version extensions base (`resourceTrigger`, `canFilterBy`,
/// `notificationShape`) for a topic served as `Basic`.
pub const R4B_SUBSCRIPTION_TOPIC_EXTENSION_BASE: &str =
    "http://hl7.org/fhir/4.3/StructureDefinition/extension-SubscriptionTopic";

/// Terminology: the `subscription-error` code system (for `Subscription.error`).
pub const SUBSCRIPTION_ERROR_SYSTEM: &str =
    "http://terminology.hl7.org/CodeSystem/subscription-error";

/// Terminology: the R4 `Basic.code` system for resources that stand in for a later version's type.
pub const FHIR_TYPES_SYSTEM: &str = "http://hl7.org/fhir/fhir-types";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_core_profile_names_follow_the_package_pattern() {
        assert_eq!(
            ca_core_profile("Patient"),
            "http://fhir.infoway-inforoute.ca/cacore/StructureDefinition/patient-ca-core"
        );
        assert_eq!(
            ca_core_profile("PractitionerRole"),
            "http://fhir.infoway-inforoute.ca/cacore/StructureDefinition/practitionerRole-ca-core"
        );
    }

    #[test]
    fn halo_urls_share_one_base() {
        for url in [
            SET_CONTEXT_OPERATION,
            CLEAR_CONTEXT_OPERATION,
            SET_CONTEXT_INPUT_PARAMETERS,
            SET_CONTEXT_OUTPUT_PARAMETERS,
            SET_CONTEXT_TRANSACTION_BUNDLE,
            SET_CONTEXT_TRANSACTION_RESPONSE_BUNDLE,
            SOFA_CONTENT_UPDATE_TOPIC,
        ] {
            assert!(url.starts_with(HALO_BASE), "{url}");
        }
        for url in [
            BACKPORT_SUBSCRIPTION,
            BACKPORT_SUBSCRIPTION_STATUS_R4,
            BACKPORT_SUBSCRIPTION_NOTIFICATION_R4,
            BACKPORT_FILTER_CRITERIA,
            BACKPORT_HEARTBEAT_PERIOD,
            BACKPORT_TIMEOUT,
            BACKPORT_MAX_COUNT,
            BACKPORT_PAYLOAD_CONTENT,
            BACKPORT_SERVER_CAPABILITY_STATEMENT_R4,
        ] {
            assert!(url.starts_with(BACKPORT_BASE), "{url}");
        }
    }
}
