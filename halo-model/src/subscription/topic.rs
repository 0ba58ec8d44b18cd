//! The SoFA Content Update topic (decision D-01) as an R4 `Basic` resource, the backport IG's
//! recommended form for serving a SubscriptionTopic on R4.

use serde_json::{Value, json};

use crate::canonical::{
    FHIR_STRUCTURE_DEFINITION_BASE, FHIR_TYPES_SYSTEM, R4B_SUBSCRIPTION_TOPIC_EXTENSION_BASE,
    R5_SUBSCRIPTION_TOPIC_EXTENSION_BASE, SOFA_CONTENT_UPDATE_TOPIC,
};
use crate::set_context::SupportedTypes;

/// The `Basic.id` under which a SoFA serves the topic.
pub const SOFA_CONTENT_UPDATE_TOPIC_ID: &str = "sofa-content-update";

/// The SoFA Content Update topic as `Basic`: a trigger on create and update of every
/// supported resource type, each with a notification shape of its own type.
///
/// ```
/// use halo_model::canonical::SOFA_CONTENT_UPDATE_TOPIC;
/// use halo_model::set_context::SupportedTypes;
/// use halo_model::subscription::sofa_content_update_topic;
///
/// let basic = sofa_content_update_topic(&SupportedTypes::default(), "2024-01-15");
/// assert_eq!(basic["code"]["coding"][0]["code"], "SubscriptionTopic");
/// assert_eq!(basic["extension"][0]["valueUri"], SOFA_CONTENT_UPDATE_TOPIC);
/// ```
pub fn sofa_content_update_topic(types: &SupportedTypes, date: &str) -> Value {
    let r5 = |element: &str| format!("{R5_SUBSCRIPTION_TOPIC_EXTENSION_BASE}.{element}");
    let r4b = |element: &str| format!("{R4B_SUBSCRIPTION_TOPIC_EXTENSION_BASE}.{element}");
    let mut extensions = vec![
        json!({"url": r5("url"), "valueUri": SOFA_CONTENT_UPDATE_TOPIC}),
        json!({"url": r5("version"), "valueString": env!("CARGO_PKG_VERSION")}),
        json!({"url": r5("name"), "valueString": "SofaContentUpdate"}),
        json!({"url": r5("title"), "valueString": "SoFA Content Update"}),
        json!({"url": r5("date"), "valueDateTime": date}),
        json!({"url": r5("description"), "valueMarkdown": "A resource of a SoFA launch context was created or updated (by a SMART app or by the SoFA)."}),
    ];
    for resource_type in types.iter() {
        extensions.push(json!({
            "url": r4b("resourceTrigger"),
            "extension": [
                {"url": "description", "valueMarkdown": format!("A {resource_type} of a launch context was created or updated.")},
                {"url": "resource", "valueUri": format!("{FHIR_STRUCTURE_DEFINITION_BASE}/{resource_type}")},
                {"url": "supportedInteraction", "valueCode": "create"},
                {"url": "supportedInteraction", "valueCode": "update"}
            ]
        }));
    }
    for resource_type in types.iter() {
        extensions.push(json!({
            "url": r4b("notificationShape"),
            "extension": [{"url": "resource", "valueUri": resource_type}]
        }));
    }
    json!({
        "resourceType": "Basic",
        "id": SOFA_CONTENT_UPDATE_TOPIC_ID,
        "modifierExtension": [{"url": r5("status"), "valueCode": "active"}],
        "extension": extensions,
        "code": {"coding": [{"system": FHIR_TYPES_SYSTEM, "code": "SubscriptionTopic"}]},
    })
}
