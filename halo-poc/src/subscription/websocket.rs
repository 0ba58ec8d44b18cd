//! The websocket consumer (REQ LI-09): `$get-ws-binding-token`, connect, `bind-with-token`,
//! receive, and reconnect with backoff.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use url::Url;

use super::manager::CurrentSubscription;
use super::receiver::{NotificationReceiver, Receipt};
use crate::error::{PocError, Result};
use crate::random::jitter;
use crate::sofa::SofaClient;

/// Timing of the websocket consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebsocketOptions {
    /// First wait before reconnecting; doubles after every failed connection.
    pub initial_backoff: Duration,
    /// Longest wait before reconnecting.
    pub max_backoff: Duration,
    /// Connection and websocket handshake.
    pub connect_timeout: Duration,
    /// Silence after which the connection is taken as dead and reopened. `None`: twice the
    /// subscription's heartbeat period, or 5 minutes without one.
    pub idle_timeout: Option<Duration>,
}

impl Default for WebsocketOptions {
    fn default() -> WebsocketOptions {
        WebsocketOptions {
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: None,
        }
    }
}

/// How one connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disconnect {
    /// The SoFA closed the connection.
    Closed,
    /// Nothing arrived within the idle timeout.
    Idle,
    /// The subscription was replaced (by the watchdog): bind the new one.
    Replaced,
}

/// Receives notifications for the current subscription over a websocket, for as long as it
/// runs.
#[derive(Debug, Clone)]
pub struct WebsocketConsumer {
    sofa: SofaClient,
    receiver: NotificationReceiver,
    current: CurrentSubscription,
    options: WebsocketOptions,
    connections: Arc<AtomicU64>,
}

impl WebsocketConsumer {
    /// A consumer for `current` (a websocket subscription), handing frames to `receiver`.
    pub fn new(
        sofa: SofaClient,
        receiver: NotificationReceiver,
        current: CurrentSubscription,
        options: WebsocketOptions,
    ) -> WebsocketConsumer {
        WebsocketConsumer {
            sofa,
            receiver,
            current,
            options,
            connections: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How many connections were bound so far (shared by clones).
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Runs until `shutdown` completes: connect, bind, receive; after any disconnect or error,
    /// wait (exponential backoff with jitter, reset after a connection that reached its
    /// handshake) and connect again with a fresh binding token.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut backoff = self.options.initial_backoff;
        loop {
            let outcome = tokio::select! {
                () = &mut shutdown => return,
                outcome = self.connect_once() => outcome,
            };
            match outcome {
                Ok((_, true)) => backoff = self.options.initial_backoff,
                Ok((reason, false)) => {
                    tracing::info!(?reason, "websocket closed before its handshake")
                }
                Err(error) => tracing::warn!(code = error.code(), %error, "websocket failed"),
            }
            // Half to one and a half times the backoff, so many PoCs do not reconnect in step.
            let wait = Duration::try_from_secs_f64(backoff.as_secs_f64() * (0.5 + jitter()))
                .unwrap_or(self.options.max_backoff);
            backoff = backoff.saturating_mul(2).min(self.options.max_backoff);
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One connection, from binding token to disconnect. Gives how it ended and whether the
    /// SoFA's handshake arrived on it.
    pub async fn connect_once(&self) -> Result<(Disconnect, bool)> {
        let mut watch = self.current.watch();
        let subscription = watch.borrow_and_update().clone();
        let id = subscription.id.clone().unwrap_or_default();
        let token = self.sofa.binding_token(&id).await?;
        let url = Url::parse(&token.websocket_url).map_err(|e| PocError::InvalidUrl {
            url: token.websocket_url.clone(),
            reason: e.to_string(),
        })?;
        check_ws_scheme(&url)?;
        let connect = tokio_tungstenite::connect_async(url.as_str());
        let (mut socket, _) = tokio::time::timeout(self.options.connect_timeout, connect)
            .await
            .map_err(|_| PocError::Timeout {
                operation: "websocket connect".into(),
                timeout: self.options.connect_timeout,
            })?
            .map_err(|e| PocError::Websocket(e.to_string()))?;
        socket
            .send(Message::text(format!("bind-with-token {}", token.token)))
            .await
            .map_err(|e| PocError::Websocket(e.to_string()))?;
        self.connections.fetch_add(1, Ordering::Relaxed);
        let idle = self.options.idle_timeout.unwrap_or_else(|| {
            subscription
                .channel
                .heartbeat_period
                .map_or(Duration::from_secs(300), |p| {
                    Duration::from_secs(u64::from(p) * 2)
                })
        });
        let mut handshaken = false;
        loop {
            let frame = tokio::select! {
                changed = watch.changed() => {
                    if changed.is_ok() {
                        let _ = socket.close(None).await;
                        return Ok((Disconnect::Replaced, handshaken));
                    }
                    // The watchdog is gone; keep receiving.
                    continue;
                }
                frame = tokio::time::timeout(idle, socket.next()) => frame,
            };
            let message = match frame {
                Err(_) => {
                    let _ = socket.close(None).await;
                    return Ok((Disconnect::Idle, handshaken));
                }
                Ok(None) => return Ok((Disconnect::Closed, handshaken)),
                Ok(Some(Err(e))) => return Err(PocError::Websocket(e.to_string())),
                Ok(Some(Ok(message))) => message,
            };
            match message {
                Message::Text(text) => match self.receiver.handle_frame(text.as_str()).await {
                    Ok(Receipt::Handshake { .. }) => handshaken = true,
                    Ok(_) => {}
                    // A websocket has no way to refuse a frame; what was not applied is
                    // recovered with $events at the next notification or heartbeat.
                    Err(error) => {
                        tracing::warn!(code = error.code(), %error, "websocket notification")
                    }
                },
                Message::Close(_) => return Ok((Disconnect::Closed, handshaken)),
                // Pings are answered by tungstenite; binary frames are not notifications.
                _ => {}
            }
        }
    }
}

/// `wss`, or `ws` on a loopback host (development).
fn check_ws_scheme(url: &Url) -> Result<()> {
    let loopback = matches!(
        url.host(),
        Some(url::Host::Domain("localhost"))
            | Some(url::Host::Ipv4(std::net::Ipv4Addr::LOCALHOST))
            | Some(url::Host::Ipv6(std::net::Ipv6Addr::LOCALHOST))
    );
    match url.scheme() {
        "wss" => Ok(()),
        "ws" if loopback => Ok(()),
        other => Err(PocError::InvalidUrl {
            url: url.to_string(),
            reason: format!("the websocket-url scheme must be wss (found '{other}')"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // REQ: LI-09
    #[test]
    fn websocket_urls_must_be_wss_except_on_loopback() {
        for (url, ok) in [
            ("wss://sofa.example.org/ws", true),
            ("ws://127.0.0.1:8080/ws", true),
            ("ws://localhost/ws", true),
            ("ws://sofa.example.org/ws", false),
            ("https://sofa.example.org/ws", false),
        ] {
            let parsed = Url::parse(url).unwrap();
            assert_eq!(check_ws_scheme(&parsed).is_ok(), ok, "{url}");
        }
    }
}
