//! The websocket channel (REQ SUB-09): single-use, expiring binding tokens, the socket that
//! binds with them, and the hub that writes notification frames to bound sockets.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use halo_model::outcome::{IssueType, OperationOutcome};
use halo_model::subscription::{ChannelType, NotificationType, parse_bind_message};
use tokio::sync::{mpsc, oneshot};

use super::Inner;
use super::delivery::typed;
use chrono::{DateTime, Utc};

use crate::auth::hash_secret;
use crate::error::SofaError;
use crate::store::{BindingTokenRecord, SubscriptionRecord, SubscriptionStatus};

/// A frame to write, and where to say whether it was written.
pub(crate) struct Outgoing {
    text: String,
    written: oneshot::Sender<bool>,
}

/// The sockets bound to one subscription: connection id and its frame queue.
type BoundSockets = Vec<(u64, mpsc::Sender<Outgoing>)>;

/// The sockets bound in this process, per subscription. Binding tokens live in the store, so
/// a token issued by one instance binds on any (REQ CLU-03).
#[derive(Default)]
pub(crate) struct Hub {
    bound: Mutex<HashMap<String, BoundSockets>>,
    next_connection: AtomicU64,
    /// Sockets open now, bound or not.
    open: Arc<AtomicUsize>,
    /// Bound sockets per owning client.
    per_client: Mutex<HashMap<String, usize>>,
}

/// The most a client frame may hold: a bind message is `bind-with-token` and a token.
pub(crate) const MAX_CLIENT_MESSAGE: usize = 4096;

/// One open socket's place in the count; given back when the socket ends.
pub(crate) struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Hub {
    /// A place for one more socket, unless `max` are open.
    pub(crate) fn open_slot(&self, max: usize) -> Option<Slot> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(self.open.clone()))
    }

    /// Counts a bound socket of `client`, unless it has `max` already.
    fn admit(&self, client: &str, max: usize) -> bool {
        let mut counts = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(client.to_string()).or_default();
        if *count >= max {
            return false;
        }
        *count += 1;
        true
    }

    fn release(&self, client: &str) {
        let mut counts = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(client);
            }
        }
    }

    fn register(&self, subscription_id: &str, connection: u64, sender: mpsc::Sender<Outgoing>) {
        let mut bound = self.bound.lock().unwrap_or_else(|p| p.into_inner());
        bound
            .entry(subscription_id.to_string())
            .or_default()
            .push((connection, sender));
    }

    /// Forgets the connection's sockets; the subscriptions left with no socket here.
    fn unregister(&self, connection: u64) -> Vec<String> {
        let mut bound = self.bound.lock().unwrap_or_else(|p| p.into_inner());
        let mut left = Vec::new();
        for (id, senders) in bound.iter_mut() {
            let before = senders.len();
            senders.retain(|(id, _)| *id != connection);
            if senders.is_empty() && before > 0 {
                left.push(id.clone());
            }
        }
        bound.retain(|_, senders| !senders.is_empty());
        left
    }

    /// The subscriptions with a socket bound here.
    pub(crate) fn bound_ids(&self) -> Vec<String> {
        let bound = self.bound.lock().unwrap_or_else(|p| p.into_inner());
        bound.keys().cloned().collect()
    }

    /// Whether a socket is bound to the subscription.
    pub(crate) fn is_bound(&self, subscription_id: &str) -> bool {
        let bound = self.bound.lock().unwrap_or_else(|p| p.into_inner());
        bound.get(subscription_id).is_some_and(|s| !s.is_empty())
    }

    /// Writes `text` to every socket bound to the subscription; delivered when at least one
    /// socket wrote the frame within `timeout` (D-08).
    pub(crate) async fn send(
        &self,
        subscription_id: &str,
        text: String,
        timeout: Duration,
    ) -> Result<(), String> {
        let senders: Vec<_> = {
            let bound = self.bound.lock().unwrap_or_else(|p| p.into_inner());
            bound.get(subscription_id).cloned().unwrap_or_default()
        };
        if senders.is_empty() {
            return Err("no websocket is bound to the subscription".to_string());
        }
        let mut delivered = false;
        for (_, sender) in senders {
            let (written, ack) = oneshot::channel();
            let outgoing = Outgoing {
                text: text.clone(),
                written,
            };
            let attempt = async {
                sender.send(outgoing).await.ok()?;
                ack.await.ok()
            };
            if let Ok(Some(true)) = tokio::time::timeout(timeout, attempt).await {
                delivered = true;
            }
        }
        if delivered {
            Ok(())
        } else {
            Err("the bound websocket could not be written".to_string())
        }
    }
}

pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    if getrandom::fill(&mut bytes).is_err() {
        // getrandom failing means no OS randomness at all; a v4 UUID pair is the fallback.
        return format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
    }
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Serves one socket until it closes: binds on `bind-with-token`, sends a handshake per bound
/// subscription, then writes whatever the hub routes to it. A socket that has not bound within
/// the bind timeout, or stays silent both ways past the idle timeout, is closed; a client with
/// its most sockets bound is refused another (REQ HARD-04).
pub(crate) async fn serve(inner: Arc<Inner>, socket: WebSocket, _slot: Slot) {
    let (mut sink, mut stream) = socket.split();
    let (sender, mut outgoing) = mpsc::channel::<Outgoing>(16);
    let connection = inner.hub.next_connection.fetch_add(1, Ordering::Relaxed);
    let settings = &inner.settings;
    let bind_deadline = tokio::time::Instant::now() + settings.websocket_bind_timeout;
    let mut owner: Option<String> = None;
    let mut last_activity = tokio::time::Instant::now();
    loop {
        let deadline = match owner {
            None => bind_deadline.min(last_activity + settings.websocket_idle_timeout),
            Some(_) => last_activity + settings.websocket_idle_timeout,
        };
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {
                let why = if owner.is_none() { "no binding in time" } else { "idle" };
                let outcome = OperationOutcome::error(IssueType::Timeout, format!("closed: {why}"));
                let text = String::from_utf8_lossy(&outcome.to_vec()).into_owned();
                let _ = sink.send(Message::Text(text.into())).await;
                break;
            }
            frame = outgoing.recv() => {
                let Some(frame) = frame else { break };
                last_activity = tokio::time::Instant::now();
                let written = sink.send(Message::Text(frame.text.into())).await.is_ok();
                let _ = frame.written.send(written);
                if !written {
                    break;
                }
            }
            message = stream.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    last_activity = tokio::time::Instant::now();
                    let Some(token) = parse_bind_message(text.as_str()) else {
                        let outcome = OperationOutcome::error(
                            IssueType::Invalid,
                            "expected `bind-with-token <token>`",
                        );
                        let text = String::from_utf8_lossy(&outcome.to_vec()).into_owned();
                        if sink.send(Message::Text(text.into())).await.is_err() {
                            break;
                        }
                        continue;
                    };
                    match bind(&inner, &token).await {
                        Ok((client, records)) => {
                            if owner.is_none() {
                                if !inner.hub.admit(&client, settings.websocket_max_per_client) {
                                    let outcome = OperationOutcome::error(
                                        IssueType::Throttled,
                                        "this client has its most websockets bound",
                                    );
                                    let text =
                                        String::from_utf8_lossy(&outcome.to_vec()).into_owned();
                                    let _ = sink.send(Message::Text(text.into())).await;
                                    break;
                                }
                                owner = Some(client);
                            }
                            let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
                            // Other instances learn where the socket is (REQ CLU-03) before the
                            // subscription turns active and writes start to need it.
                            inner.hold_sockets(&ids).await;
                            let mut failed = false;
                            for record in records {
                                let Some(subscription) = typed(&record) else { continue };
                                let handshake = inner.bare_notification(
                                    &record,
                                    &subscription,
                                    NotificationType::Handshake,
                                );
                                let text = handshake.to_string();
                                if sink.send(Message::Text(text.into())).await.is_err() {
                                    failed = true;
                                    break;
                                }
                                inner.hub.register(&record.id, connection, sender.clone());
                                let inner = inner.clone();
                                // Activation takes the PoC's lock, which a delivery waiting on
                                // this very socket may hold: never await it here.
                                tokio::spawn(async move {
                                    let _ = inner
                                        .set_status(&record.id, SubscriptionStatus::Active, None)
                                        .await;
                                });
                            }
                            if failed {
                                break;
                            }
                        }
                        Err(message) => {
                            let outcome = OperationOutcome::error(IssueType::Security, message);
                            let text = String::from_utf8_lossy(&outcome.to_vec()).into_owned();
                            let _ = sink.send(Message::Text(text.into())).await;
                            break;
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => last_activity = tokio::time::Instant::now(),
            },
        }
    }
    if let Some(client) = &owner {
        inner.hub.release(client);
    }
    let left = inner.hub.unregister(connection);
    inner.release_sockets(&left).await;
}

/// The client and the subscriptions a binding token grants, checked against the store.
async fn bind(inner: &Inner, token: &str) -> Result<(String, Vec<SubscriptionRecord>), String> {
    let pending = inner
        .take_binding_token(token)
        .await?
        .ok_or("the binding token is unknown, used or expired")?;
    let mut tx = inner
        .store
        .begin_read()
        .await
        .map_err(|_| "the store is unavailable")?;
    let mut records = Vec::new();
    for id in &pending.subscriptions {
        let record = tx
            .get_subscription(id)
            .await
            .map_err(|_| "the store is unavailable")?
            .filter(|r| {
                r.owner_client_id == pending.owner_client_id && r.status != SubscriptionStatus::Off
            })
            .filter(|r| typed(r).is_some_and(|s| s.channel.channel_type == ChannelType::Websocket))
            .ok_or_else(|| format!("Subscription/{id} cannot be bound"))?;
        records.push(record);
    }
    Ok((pending.owner_client_id, records))
}

impl Inner {
    /// Issues a token binding `subscriptions` of `owner`, usable once until `expires_at`, on
    /// any instance of the store (only its hash is kept).
    pub(crate) async fn issue_binding_token(
        &self,
        owner: &str,
        subscriptions: Vec<String>,
        expires_at: DateTime<Utc>,
    ) -> Result<String, SofaError> {
        let token = random_token();
        let record = BindingTokenRecord {
            owner_client_id: owner.to_string(),
            subscriptions,
            expires_at,
        };
        let mut tx = self.store.begin().await?;
        tx.insert_binding_token(&hash_secret(&token), record)
            .await?;
        tx.commit().await?;
        Ok(token)
    }

    /// Takes a binding token: a second use, on this instance or another, or a use after
    /// expiry, finds nothing.
    async fn take_binding_token(&self, token: &str) -> Result<Option<BindingTokenRecord>, String> {
        let unavailable = |_| "the store is unavailable".to_string();
        let mut tx = self.store.begin().await.map_err(unavailable)?;
        let taken = tx
            .take_binding_token(&hash_secret(token), self.clock.now())
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(taken)
    }
}
