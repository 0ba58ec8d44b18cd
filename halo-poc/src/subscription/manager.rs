//! Creating the PoC's subscription to the SoFA Content Update topic and confirming it became
//! `active` (REQ LI-05).

use std::time::{Duration, Instant};

use halo_model::subscription::{
    Channel, ChannelType, PayloadContent, SOFA_CONTENT_UPDATE_TOPIC, Subscription,
    SubscriptionStatus,
};
use tokio::sync::watch;

use crate::error::{PocError, Result};
use crate::random::random_token;
use crate::sofa::SofaClient;

/// The `Authorization` header a rest-hook subscription asks the SoFA to send with every
/// notification: a random bearer secret the PoC's receiver checks.
#[derive(Clone, PartialEq, Eq)]
pub struct RestHookSecret(String);

impl RestHookSecret {
    /// A new secret: 32 random bytes from the OS, base64url.
    pub fn generate() -> Result<RestHookSecret> {
        random_token(32).map(RestHookSecret)
    }

    /// The header value (`Bearer <secret>`).
    pub fn header_value(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// The `channel.header` string (`Authorization: Bearer <secret>`).
    pub fn channel_header(&self) -> String {
        format!("Authorization: {}", self.header_value())
    }
}

impl std::fmt::Debug for RestHookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RestHookSecret(***)")
    }
}

/// A rest-hook channel to `endpoint` carrying `secret` as its `Authorization` header, with
/// heartbeats every `heartbeat_period` seconds (the watchdog needs them).
pub fn rest_hook_channel(
    endpoint: impl Into<String>,
    content: PayloadContent,
    secret: &RestHookSecret,
    heartbeat_period: Option<u32>,
) -> Channel {
    let mut channel = Channel::rest_hook(endpoint, content);
    channel.headers.push(secret.channel_header());
    channel.heartbeat_period = heartbeat_period;
    channel
}

/// A websocket channel with heartbeats every `heartbeat_period` seconds.
pub fn websocket_channel(content: PayloadContent, heartbeat_period: Option<u32>) -> Channel {
    let mut channel = Channel::websocket(content);
    channel.heartbeat_period = heartbeat_period;
    channel
}

/// The subscription currently in use, shared by the watchdog (which replaces it when it dies)
/// and the websocket consumer (which re-binds when it changes).
#[derive(Clone)]
pub struct CurrentSubscription {
    sender: std::sync::Arc<watch::Sender<Subscription>>,
}

impl std::fmt::Debug for CurrentSubscription {
    // The channel carries the rest-hook's bearer header: only the id and status are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let subscription = self.sender.borrow();
        f.debug_struct("CurrentSubscription")
            .field("id", &subscription.id)
            .field("status", &subscription.status.to_string())
            .finish_non_exhaustive()
    }
}

impl CurrentSubscription {
    /// Starts with `subscription`.
    pub fn new(subscription: Subscription) -> CurrentSubscription {
        CurrentSubscription {
            sender: std::sync::Arc::new(watch::Sender::new(subscription)),
        }
    }

    /// The subscription now.
    pub fn get(&self) -> Subscription {
        self.sender.borrow().clone()
    }

    /// The subscription's id now (empty if the SoFA gave none).
    pub fn id(&self) -> String {
        self.sender.borrow().id.clone().unwrap_or_default()
    }

    /// Replaces it.
    pub fn set(&self, subscription: Subscription) {
        self.sender.send_replace(subscription);
    }

    /// A receiver that wakes when it is replaced.
    pub fn watch(&self) -> watch::Receiver<Subscription> {
        self.sender.subscribe()
    }
}

/// Creates and recreates the PoC's subscription.
#[derive(Debug, Clone)]
pub struct SubscriptionManager {
    sofa: SofaClient,
    reason: String,
    activation_timeout: Duration,
    poll_interval: Duration,
}

impl SubscriptionManager {
    /// A manager for `sofa`; it waits up to 30 s for a new subscription to become `active`.
    pub fn new(sofa: SofaClient) -> SubscriptionManager {
        SubscriptionManager {
            sofa,
            reason: "PoC content updates from the SoFA".into(),
            activation_timeout: Duration::from_secs(30),
            poll_interval: Duration::from_millis(250),
        }
    }

    /// How long to wait for `active` and how often to look.
    pub fn activation(mut self, timeout: Duration, poll_interval: Duration) -> Self {
        self.activation_timeout = timeout;
        self.poll_interval = poll_interval;
        self
    }

    /// The SoFA client.
    pub fn sofa(&self) -> &SofaClient {
        &self.sofa
    }

    /// Creates a subscription to the SoFA Content Update topic on `channel`.
    ///
    /// Rest-hook: waits until the SoFA reports it `active`, which happens after the handshake
    /// reached the PoC, so the receiver must already be listening. Websocket: returns the
    /// created subscription at once, because a SoFA may keep it `requested` until a socket binds
    /// to it; start a `WebsocketConsumer` with it, and the SoFA's
    /// handshake on bind confirms it. An `error` or `off` status is an error on both channels.
    pub async fn subscribe(&self, channel: Channel) -> Result<Subscription> {
        let websocket = channel.channel_type == ChannelType::Websocket;
        let request = Subscription::new(SOFA_CONTENT_UPDATE_TOPIC, self.reason.clone(), channel);
        let created = self.sofa.create_subscription(&request).await?;
        if websocket && created.status == SubscriptionStatus::Requested {
            return Ok(created);
        }
        self.wait_active(created).await
    }

    async fn wait_active(&self, mut subscription: Subscription) -> Result<Subscription> {
        let id = subscription.id.clone().unwrap_or_default();
        let deadline = Instant::now() + self.activation_timeout;
        loop {
            match subscription.status {
                SubscriptionStatus::Active => return Ok(subscription),
                SubscriptionStatus::Error | SubscriptionStatus::Off => {
                    return Err(PocError::SubscriptionNotActive {
                        id,
                        status: subscription.status.to_string(),
                        error: subscription.error,
                    });
                }
                SubscriptionStatus::Requested if Instant::now() >= deadline => {
                    return Err(PocError::SubscriptionNotActive {
                        id,
                        status: subscription.status.to_string(),
                        error: Some(format!(
                            "still requested after {:?}; is the notification endpoint reachable from the SoFA?",
                            self.activation_timeout
                        )),
                    });
                }
                SubscriptionStatus::Requested => {
                    tokio::time::sleep(self.poll_interval).await;
                    subscription = self.sofa.read_subscription(&id).await?;
                }
            }
        }
    }

    /// Replaces a dead subscription: the old one is deleted (a failure is only logged, it may
    /// be gone already) and a new one with the same channel is created.
    pub async fn recreate(&self, old: &Subscription) -> Result<Subscription> {
        if let Some(id) = &old.id
            && let Err(error) = self.sofa.delete_subscription(id).await
        {
            tracing::info!(code = error.code(), %error, "old subscription not deleted");
        }
        self.subscribe(old.channel.clone()).await
    }
}

#[cfg(test)]
mod debug_tests {
    use super::*;

    #[test]
    fn a_current_subscription_prints_without_its_bearer_header() {
        let secret = RestHookSecret::generate().unwrap();
        let channel = rest_hook_channel(
            "https://emr.example.org/notify",
            halo_model::subscription::PayloadContent::IdOnly,
            &secret,
            None,
        );
        let mut subscription = Subscription::new("topic", "reason", channel);
        subscription.id = Some("s1".into());
        let printed = format!("{:?}", CurrentSubscription::new(subscription));
        assert!(printed.contains("s1"));
        assert!(!printed.contains(&secret.header_value()), "{printed}");
        assert!(!printed.contains("Bearer"), "{printed}");
    }
}
