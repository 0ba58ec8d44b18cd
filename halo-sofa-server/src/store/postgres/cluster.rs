//! [`ClusterOps`] on PostgreSQL, and the wake-ups between instances: `NOTIFY` on a channel
//! named after the schema, received by one `LISTEN`ing connection per process outside the pool
//! (REQ CLU-03). A wake-up only says "look"; what to do is read from the tables, because
//! notifications sent while the listener reconnects are lost — so every (re)connection is
//! reported as [`Wakeup::Rescan`].

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tokio::sync::broadcast;
use tokio_postgres::AsyncMessage;

use super::super::meta::{from_json, to_json};
use super::super::meta::{int, uint};
use super::super::{
    AsyncJobRecord, BindingTokenRecord, BoxFuture, ClusterOps, StoreError, StoreResult, Wakeup,
};
use super::{PgTransaction, error};

/// How long the listener waits before connecting again after losing its connection.
const RECONNECT_WAIT: Duration = Duration::from_millis(500);
/// Wake-ups a slow receiver may fall behind by before it is told to re-scan.
const WAKEUP_BACKLOG: usize = 256;

/// What the listener needs, and the sender its receivers subscribe to.
pub(super) struct Listener {
    pub(super) config: tokio_postgres::Config,
    pub(super) tls: tokio_postgres_rustls::MakeRustlsConnect,
    pub(super) channel: String,
    sender: Mutex<Option<broadcast::Sender<Wakeup>>>,
}

impl Listener {
    pub(super) fn new(
        config: tokio_postgres::Config,
        tls: tokio_postgres_rustls::MakeRustlsConnect,
        schema: Option<&str>,
    ) -> Listener {
        Listener {
            config,
            tls,
            // Channels are per database, schemas are not: the schema keeps SoFAs (and tests)
            // sharing one database from waking each other.
            channel: format!("halo_wake_{}", schema.unwrap_or("public")),
            sender: Mutex::new(None),
        }
    }

    /// A receiver of wake-ups, starting the listening task on first use.
    pub(super) fn subscribe(self: &Arc<Self>) -> broadcast::Receiver<Wakeup> {
        let mut sender = self.sender.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = sender.as_ref() {
            return sender.subscribe();
        }
        let (tx, rx) = broadcast::channel(WAKEUP_BACKLOG);
        *sender = Some(tx.clone());
        tokio::spawn(listen(Arc::downgrade(self), tx));
        rx
    }
}

/// Listens until the store is dropped: connect, `LISTEN`, report a re-scan, forward every
/// notification; on any failure wait and connect again.
async fn listen(listener: Weak<Listener>, sender: broadcast::Sender<Wakeup>) {
    loop {
        let Some(strong) = listener.upgrade() else {
            return;
        };
        let (config, tls, channel) = (
            strong.config.clone(),
            strong.tls.clone(),
            strong.channel.clone(),
        );
        drop(strong);
        match config.connect(tls).await {
            Ok((client, mut connection)) => {
                let (messages_tx, mut messages) = tokio::sync::mpsc::unbounded_channel();
                let driver = tokio::spawn(async move {
                    let mut stream =
                        futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(Ok(message)) = stream.next().await {
                        if messages_tx.send(message).is_err() {
                            return;
                        }
                    }
                });
                if client
                    .batch_execute(&format!("LISTEN \"{channel}\""))
                    .await
                    .is_ok()
                {
                    let _ = sender.send(Wakeup::Rescan);
                    loop {
                        let message = tokio::time::timeout(Duration::from_secs(5), messages.recv());
                        match message.await {
                            Ok(Some(AsyncMessage::Notification(n))) => {
                                let _ = sender.send(Wakeup::Payload(n.payload().to_string()));
                            }
                            Ok(Some(_)) => {}
                            Ok(None) => break,
                            // Quiet: stop if the store is gone, else keep listening.
                            Err(_) if listener.strong_count() == 0 => {
                                driver.abort();
                                return;
                            }
                            Err(_) => {}
                        }
                    }
                }
                driver.abort();
                tracing::warn!("the wake-up listener lost its database connection; reconnecting");
            }
            Err(e) => tracing::warn!(error = %e, "the wake-up listener could not connect"),
        }
        tokio::time::sleep(RECONNECT_WAIT).await;
    }
}

impl ClusterOps for PgTransaction {
    fn insert_binding_token<'a>(
        &'a mut self,
        token_hash: &'a str,
        record: BindingTokenRecord,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let json = to_json(&record)?;
            let inserted = self
                .execute(
                    "INSERT INTO binding_tokens (token_hash, expires_at, record)
                     VALUES ($1, $2, $3) ON CONFLICT (token_hash) DO NOTHING",
                    &[&token_hash, &record.expires_at, &json],
                )
                .await?;
            if inserted == 0 {
                return Err(StoreError::AlreadyExists("binding token".into()));
            }
            Ok(())
        })
    }

    fn take_binding_token<'a>(
        &'a mut self,
        token_hash: &'a str,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<Option<BindingTokenRecord>>> {
        Box::pin(async move {
            let row = self
                .query_opt(
                    "DELETE FROM binding_tokens WHERE token_hash = $1
                     RETURNING expires_at, record",
                    &[&token_hash],
                )
                .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let expires_at: DateTime<Utc> = row.get(0);
            if expires_at <= now {
                return Ok(None);
            }
            from_json(row.get::<_, &str>(1)).map(Some)
        })
    }

    fn hold_socket<'a>(
        &'a mut self,
        subscription_id: &'a str,
        instance: &'a str,
        lease_until: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            self.execute(
                "INSERT INTO socket_holders (subscription_id, instance, lease_until)
                 VALUES ($1, $2, $3)
                 ON CONFLICT (subscription_id, instance) DO UPDATE
                 SET lease_until = EXCLUDED.lease_until",
                &[&subscription_id, &instance, &lease_until],
            )
            .await
            .map(|_| ())
        })
    }

    fn release_socket<'a>(
        &'a mut self,
        subscription_id: &'a str,
        instance: &'a str,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            self.execute(
                "DELETE FROM socket_holders WHERE subscription_id = $1 AND instance = $2",
                &[&subscription_id, &instance],
            )
            .await
            .map(|_| ())
        })
    }

    fn socket_holders<'a>(
        &'a mut self,
        subscription_id: &'a str,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<Vec<String>>> {
        Box::pin(async move {
            let rows = self
                .query(
                    "SELECT instance FROM socket_holders
                     WHERE subscription_id = $1 AND lease_until > $2 ORDER BY instance",
                    &[&subscription_id, &now],
                )
                .await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn request_socket_delivery<'a>(
        &'a mut self,
        subscription_id: &'a str,
        event_number: u64,
        deadline: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let number = int(event_number)?;
            self.execute(
                "INSERT INTO socket_deliveries (subscription_id, event_number, deadline, delivered)
                 VALUES ($1, $2, $3, FALSE)
                 ON CONFLICT (subscription_id, event_number) DO UPDATE
                 SET deadline = EXCLUDED.deadline, delivered = FALSE",
                &[&subscription_id, &number, &deadline],
            )
            .await
            .map(|_| ())
        })
    }

    fn socket_delivery_requests<'a>(
        &'a mut self,
        instance: &'a str,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<Vec<(String, u64)>>> {
        Box::pin(async move {
            let rows = self
                .query(
                    "SELECT d.subscription_id, d.event_number FROM socket_deliveries d
                     JOIN socket_holders h
                       ON h.subscription_id = d.subscription_id AND h.instance = $1
                     WHERE NOT d.delivered AND d.deadline > $2
                     ORDER BY d.subscription_id, d.event_number",
                    &[&instance, &now],
                )
                .await?;
            Ok(rows.iter().map(|r| (r.get(0), uint(r.get(1)))).collect())
        })
    }

    fn confirm_socket_delivery<'a>(
        &'a mut self,
        subscription_id: &'a str,
        event_number: u64,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            let number = int(event_number)?;
            let changed = self
                .execute(
                    "UPDATE socket_deliveries SET delivered = TRUE
                     WHERE subscription_id = $1 AND event_number = $2",
                    &[&subscription_id, &number],
                )
                .await?;
            Ok(changed == 1)
        })
    }

    fn socket_delivered<'a>(
        &'a mut self,
        subscription_id: &'a str,
        event_number: u64,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            let number = int(event_number)?;
            let row = self
                .query_opt(
                    "SELECT delivered FROM socket_deliveries
                     WHERE subscription_id = $1 AND event_number = $2",
                    &[&subscription_id, &number],
                )
                .await?;
            Ok(row.is_some_and(|r| r.get::<_, bool>(0)))
        })
    }

    fn purge_cluster_records(&mut self, now: DateTime<Utc>) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(async move {
            let mut purged = 0;
            for sql in [
                "DELETE FROM binding_tokens WHERE expires_at <= $1",
                "DELETE FROM socket_holders WHERE lease_until <= $1",
                "DELETE FROM socket_deliveries WHERE deadline <= $1",
                "DELETE FROM async_jobs WHERE expires_at <= $1",
            ] {
                purged += self.execute(sql, &[&now]).await?;
            }
            Ok(purged)
        })
    }

    fn insert_async_job(&mut self, job: AsyncJobRecord) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let json = to_json(&job)?;
            let inserted = self
                .execute(
                    "INSERT INTO async_jobs (id, expires_at, record) VALUES ($1, $2, $3)
                     ON CONFLICT (id) DO NOTHING",
                    &[&job.id, &job.expires_at, &json],
                )
                .await?;
            if inserted == 0 {
                return Err(StoreError::AlreadyExists(format!("async job {}", job.id)));
            }
            Ok(())
        })
    }

    fn get_async_job<'a>(
        &'a mut self,
        id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<AsyncJobRecord>>> {
        Box::pin(async move {
            let row = self
                .query_opt("SELECT record FROM async_jobs WHERE id = $1", &[&id])
                .await?;
            row.map(|r| from_json(r.get::<_, &str>(0))).transpose()
        })
    }

    fn update_async_job(&mut self, job: AsyncJobRecord) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            let json = to_json(&job)?;
            let updated = self
                .execute(
                    "UPDATE async_jobs SET expires_at = $2, record = $3 WHERE id = $1",
                    &[&job.id, &job.expires_at, &json],
                )
                .await?;
            Ok(updated == 1)
        })
    }

    fn delete_async_job<'a>(&'a mut self, id: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            let deleted = self
                .execute("DELETE FROM async_jobs WHERE id = $1", &[&id])
                .await?;
            Ok(deleted == 1)
        })
    }

    fn try_lead<'a>(&'a mut self, task: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            // Advisory locks are per database: the schema is part of the key, so SoFAs (and
            // tests) sharing a database in their own schemas do not take turns with each other.
            let row = self
                .query_opt(
                    "SELECT pg_try_advisory_xact_lock(
                         hashtextextended(current_schema() || '.' || $1, 0))",
                    &[&task],
                )
                .await?;
            Ok(row.is_some_and(|r| r.get::<_, bool>(0)))
        })
    }
}

/// Sends a wake-up on the store's channel through a pooled connection.
pub(super) async fn notify(store: &super::PostgresStore, payload: &str) -> StoreResult<()> {
    let client = store.client().await?;
    client
        .execute(
            "SELECT pg_notify($1, $2)",
            &[&store.listener.channel, &payload],
        )
        .await
        .map(|_| ())
        .map_err(error)
}
