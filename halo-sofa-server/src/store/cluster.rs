//! What instances on one store share besides data (REQ CLU-02, CLU-03): websocket binding
//! tokens, which instance holds which subscription's socket (under a lease, so a dead
//! instance's claim runs out), the requests that ask the holder to write a logged event to its
//! socket, the wake-ups that tell it to look, and asynchronous (`202`) jobs with their results.
//!
//! A single-process store (SQLite, memory) keeps the records too (binding tokens are always in
//! the store), but has no wake-ups: [`Store::wakeups`](super::Store::wakeups) is `None`, and
//! the subscription service then never asks another instance for anything.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{BoxFuture, StoreResult};

/// A websocket binding token's grant, kept under the token's hash until it is used or expires
/// (REQ SUB-09): issued by any instance, usable once on any instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingTokenRecord {
    /// The client the token was issued to.
    pub owner_client_id: String,
    /// The subscriptions it binds.
    pub subscriptions: Vec<String>,
    /// When it stops being usable.
    pub expires_at: DateTime<Utc>,
}

/// An asynchronous request (`Prefer: respond-async`, REQ ASY-01): whose it is, and its answer
/// once it has one. Any instance answers its status URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsyncJobRecord {
    /// The job id (in the status URL).
    pub id: String,
    /// The client that submitted it: nobody else sees it.
    pub client_id: String,
    /// The launch of the submitting token: a token of another launch does not see it.
    pub launch_id: Option<String>,
    /// While it runs, the instance running it renews this; once it has passed with no
    /// result, that instance is gone and the job counts as failed.
    pub lease_until: DateTime<Utc>,
    /// When the record is purged.
    pub expires_at: DateTime<Utc>,
    /// The answer, once the request ran.
    pub result: Option<AsyncJobResult>,
}

/// The answer of an asynchronous request, as the route gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsyncJobResult {
    /// The HTTP status.
    pub status: u16,
    /// The headers worth handing back (`Content-Type`, `Location`, `ETag`, ...).
    pub headers: Vec<(String, String)>,
    /// The body, base64 (it need not be text).
    pub body_base64: String,
}

/// A wake-up from another instance (or this one) on a shared store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wakeup {
    /// The payload that was sent (a subscription id: look at its socket delivery requests).
    Payload(String),
    /// Wake-ups may have been missed (the listener connected or reconnected, or fell behind):
    /// look at everything.
    Rescan,
}

/// Binding tokens, socket holders and socket delivery requests.
pub trait ClusterOps {
    /// Stores a binding token's grant under `token_hash`. [`StoreError::AlreadyExists`]
    /// (crate::store::StoreError::AlreadyExists) if the hash is taken.
    fn insert_binding_token<'a>(
        &'a mut self,
        token_hash: &'a str,
        record: BindingTokenRecord,
    ) -> BoxFuture<'a, StoreResult<()>>;

    /// Takes a binding token: deletes it and returns its grant if it had not expired at `now`.
    /// Of two transactions taking the same token, one gets it (a second use finds nothing).
    fn take_binding_token<'a>(
        &'a mut self,
        token_hash: &'a str,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<Option<BindingTokenRecord>>>;

    /// Records (or renews) that `instance` holds a socket bound to `subscription_id`, until
    /// `lease_until`.
    fn hold_socket<'a>(
        &'a mut self,
        subscription_id: &'a str,
        instance: &'a str,
        lease_until: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<()>>;

    /// Forgets that `instance` holds a socket of `subscription_id`.
    fn release_socket<'a>(
        &'a mut self,
        subscription_id: &'a str,
        instance: &'a str,
    ) -> BoxFuture<'a, StoreResult<()>>;

    /// The instances whose lease on a socket of `subscription_id` runs past `now`, ordered.
    fn socket_holders<'a>(
        &'a mut self,
        subscription_id: &'a str,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<Vec<String>>>;

    /// Asks the holders of the subscription's socket to write event `event_number` (read from
    /// the event log) before `deadline`. Asking again re-opens the request with the new
    /// deadline.
    fn request_socket_delivery<'a>(
        &'a mut self,
        subscription_id: &'a str,
        event_number: u64,
        deadline: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<()>>;

    /// The open requests (not delivered, deadline after `now`) of the subscriptions whose
    /// socket `instance` holds: (subscription, event number), ordered. One query however many
    /// sockets the instance holds.
    fn socket_delivery_requests<'a>(
        &'a mut self,
        instance: &'a str,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<Vec<(String, u64)>>>;

    /// Records that a socket wrote the requested event; whether a request was there.
    fn confirm_socket_delivery<'a>(
        &'a mut self,
        subscription_id: &'a str,
        event_number: u64,
    ) -> BoxFuture<'a, StoreResult<bool>>;

    /// Whether the requested event was written to a socket.
    fn socket_delivered<'a>(
        &'a mut self,
        subscription_id: &'a str,
        event_number: u64,
    ) -> BoxFuture<'a, StoreResult<bool>>;

    /// Deletes binding tokens expired at `now`, leases run out by `now`, requests whose
    /// deadline passed and asynchronous jobs past their `expires_at`; how many.
    fn purge_cluster_records(&mut self, now: DateTime<Utc>) -> BoxFuture<'_, StoreResult<u64>>;

    /// Stores a new asynchronous job. [`StoreError::AlreadyExists`]
    /// (crate::store::StoreError::AlreadyExists) if the id is taken.
    fn insert_async_job(&mut self, job: AsyncJobRecord) -> BoxFuture<'_, StoreResult<()>>;

    /// Reads an asynchronous job, expired or not.
    fn get_async_job<'a>(
        &'a mut self,
        id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<AsyncJobRecord>>>;

    /// Replaces an asynchronous job; whether it was there (a cancelled job is not brought
    /// back).
    fn update_async_job(&mut self, job: AsyncJobRecord) -> BoxFuture<'_, StoreResult<bool>>;

    /// Deletes an asynchronous job; whether it was there.
    fn delete_async_job<'a>(&'a mut self, id: &'a str) -> BoxFuture<'a, StoreResult<bool>>;

    /// Whether this transaction leads `task` (a name such as `"purge"`) until it ends: of
    /// several instances asking at once, one gets `true` (REQ CLU-02, purge leadership). A
    /// store no other process shares always answers `true`. On PostgreSQL a transaction-level
    /// advisory lock, released at commit or rollback, or with the connection if the process
    /// dies.
    fn try_lead<'a>(&'a mut self, task: &'a str) -> BoxFuture<'a, StoreResult<bool>>;
}
