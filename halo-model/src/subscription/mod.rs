//! Subscriptions R5 Backport on R4, as a SoFA serves them and a PoC consumes them:
//!
//! - [`Subscription`] (profile `backport-subscription`): builder ([`Subscription::to_json`]),
//!   reader ([`Subscription::from_json`]) and the server's acceptance check
//!   ([`SubscriptionPolicy`]) — REQ SUB-02.
//! - [`SubscriptionStatusParameters`] (profile `backport-subscription-status-r4`) and
//!   [`Notification`] (profile `backport-subscription-notification-r4`): handshake, heartbeat,
//!   event-notification, query-status and query-event, at the three [`PayloadContent`] levels —
//!   REQ SUB-05.
//! - Operations: [`StatusQuery`] / [`status_bundle`] (`$status`, SUB-08), [`EventsQuery`]
//!   (`$events`, SUB-07), [`BindingToken`] and [`parse_bind_message`]
//!   (`$get-ws-binding-token` and the websocket bind, SUB-09).
//! - The SoFA Content Update topic (D-01): [`SOFA_CONTENT_UPDATE_TOPIC`] and its R4 `Basic`
//!   form, [`sofa_content_update_topic`].
//!
//! ```
//! use halo_model::subscription::{
//!     Channel, Notification, NotificationEntry, NotificationEvent, NotificationType,
//!     PayloadContent, SOFA_CONTENT_UPDATE_TOPIC, Subscription, SubscriptionPolicy,
//!     SubscriptionStatus, SubscriptionStatusParameters,
//! };
//!
//! // PoC: subscribe to the SoFA Content Update topic with a rest-hook.
//! let mut channel = Channel::rest_hook("https://poc.example.org/notify", PayloadContent::FullResource);
//! channel.headers.push("Authorization: Bearer poc-secret".into());
//! channel.heartbeat_period = Some(300);
//! let request = Subscription::new(SOFA_CONTENT_UPDATE_TOPIC, "PoC content updates", channel).to_json();
//!
//! // SoFA: accept it (unknown topic, channel, payload or filter would be refused).
//! let accepted = SubscriptionPolicy::default().accept(&request)?;
//! assert_eq!(accepted.status, SubscriptionStatus::Requested);
//!
//! // SoFA: an app created an Observation; notify.
//! let mut status = SubscriptionStatusParameters::new(
//!     "https://sofa.example.org/fhir/Subscription/sub-1",
//!     SubscriptionStatus::Active,
//!     NotificationType::EventNotification,
//! );
//! status.topic = Some(SOFA_CONTENT_UPDATE_TOPIC.into());
//! status.events_since_subscription_start = Some(7);
//! let focus = "https://sofa.example.org/fhir/Observation/obs-1";
//! status.events.push(NotificationEvent::new(7, "2024-01-15T10:00:00Z", Some(focus.into())));
//! let mut notification =
//!     Notification::new(status, "https://sofa.example.org/fhir/Subscription/sub-1/$status");
//! notification.entries.push(NotificationEntry::created(
//!     focus,
//!     "Observation",
//!     Some(serde_json::json!({"resourceType": "Observation", "id": "obs-1", "status": "final"})),
//! ));
//! notification.restrict_to(accepted.channel.content);
//! let body = notification.to_json();
//!
//! // PoC: read the notification and check it.
//! let received = Notification::from_json(&body)?;
//! received.check_content(PayloadContent::FullResource)?;
//! assert_eq!(received.status.subscription_id(), "sub-1");
//! assert_eq!(received.status.events[0].event_number, 7);
//! assert_eq!(received.entries[0].resource.as_ref().unwrap()["id"], "obs-1");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod codes;
mod filter;
mod notification;
mod operations;
mod policy;
mod resource;
mod status;
mod topic;

pub use crate::canonical::SOFA_CONTENT_UPDATE_TOPIC;
pub use codes::{ChannelType, NotificationType, PayloadContent, SubscriptionStatus};
pub use filter::{Filter, FilterError};
pub use notification::{Notification, NotificationEntry};
pub use operations::{
    BindingToken, EventsQuery, StatusQuery, binding_token_input, parse_bind_message,
    parse_binding_token_input, parse_status_bundle, status_bundle,
};
pub use policy::SubscriptionPolicy;
pub use resource::{Channel, Subscription};
pub use status::{NotificationEvent, SubscriptionStatusParameters};
pub use topic::{SOFA_CONTENT_UPDATE_TOPIC_ID, sofa_content_update_topic};
