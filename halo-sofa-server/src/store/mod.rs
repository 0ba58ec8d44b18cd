//! Storage: one [`Store`] that opens [`Transaction`]s, and the records they hold.
//!
//! Everything goes through a transaction, so a unit of work (a `$set-context`, later an app
//! write with its event numbers) commits whole or leaves nothing (REQ SC-04, REL-02). Dropping a
//! transaction without [`Transaction::commit`] rolls it back. The operations are grouped by
//! area ([`ResourceOps`], [`LaunchOps`], [`SubscriptionOps`], [`AuthOps`], [`ClusterOps`]); a
//! backend implements them all on its transaction type.
//!
//! The contracts assume nothing SQLite-specific: keys are strings, times are UTC instants,
//! counters are allocated inside the caller's transaction (a row lock or sequence in PostgreSQL),
//! and expiry is a query over `expires_at`, not a timer only one process knows.
//!
//! Backends: [`SqliteStore`] (embedded, WAL, the default), `PostgresStore` (several instances
//! on one database; feature `postgres`, on by default) and [`MemoryStore`] (tests).

mod cluster;
mod error;
mod gauges;
mod memory;
mod meta;
#[cfg(feature = "postgres")]
mod postgres;
mod records;
mod sqlite;
mod unit;

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};

pub use cluster::{AsyncJobRecord, AsyncJobResult, BindingTokenRecord, ClusterOps, Wakeup};
pub use memory::MemoryStore;
pub use meta::{instant as meta_instant, new_resource_id, references_of, stamp_meta};
#[cfg(feature = "postgres")]
pub use postgres::{PostgresOptions, PostgresStore};
pub use records::{
    AuthorizationCodeRecord, ClientCredentials, ClientRecord, EventRecord, EventState,
    LaunchRecord, NewResource, RefreshTokenRecord, ResourceQuery, SigningKeyRecord, StoredResource,
    SubscriptionRecord, SubscriptionStatus,
};
pub use sqlite::SqliteStore;

pub use error::StoreError;
pub use gauges::sample_metrics;
pub use unit::{ReadUnit, UnitOutcome, WriteUnit, read_in_transaction, run_in_transaction};

/// A boxed `Send` future: the store traits return these so they can be used as trait objects
/// (`Arc<dyn Store>`) from async handlers.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// A storage backend.
pub trait Store: Send + Sync + 'static {
    /// Opens a read-write transaction. It may wait for other writers (SQLite has one writer at a
    /// time); it never blocks the async runtime while it waits.
    fn begin(&self) -> BoxFuture<'_, StoreResult<Box<dyn Transaction>>>;

    /// Opens a transaction for reads. Writes through it are a backend error or are rolled back;
    /// backends may let it run beside writers.
    fn begin_read(&self) -> BoxFuture<'_, StoreResult<Box<dyn Transaction>>> {
        self.begin()
    }

    /// Runs a [`WriteUnit`] as one write transaction and hands back its answer; most callers
    /// use the typed `write` of `dyn Store` instead. The unit's
    /// writes commit if it keeps them; an `Err` here means they did not (the store was
    /// unavailable, or the commit failed). By default, [`run_in_transaction`]; a backend may run
    /// units nearer its connection and commit several together, each still all-or-nothing.
    fn run_unit(
        &self,
        unit: WriteUnit,
    ) -> BoxFuture<'_, StoreResult<Box<dyn std::any::Any + Send>>> {
        Box::pin(run_in_transaction(self, unit))
    }

    /// Runs a [`ReadUnit`] in one read transaction and hands back its answer; most callers use
    /// the typed `read` of `dyn Store`. By default, [`read_in_transaction`].
    fn run_read(
        &self,
        unit: ReadUnit,
    ) -> BoxFuture<'_, StoreResult<Box<dyn std::any::Any + Send>>> {
        Box::pin(read_in_transaction(self, unit))
    }

    /// Whether other live processes may use this store at the same time (a server database
    /// behind several instances). The write path then waits for another instance's unsettled
    /// events to pass their deadline before it takes them for a crash's (REQ CLU-02).
    fn shared(&self) -> bool {
        false
    }

    /// Wakes every instance listening on this store (REQ CLU-03) with `payload` (at most a
    /// few hundred bytes). A wake-up may be lost; listeners re-scan on a tick. A no-op where
    /// no other process shares the store.
    fn wake<'a>(&'a self, payload: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        let _ = payload;
        Box::pin(async { Ok(()) })
    }

    /// The wake-ups sent by the instances on this store (this one included), once this
    /// process listens; `None` where no other process shares the store.
    fn wakeups(&self) -> Option<tokio::sync::broadcast::Receiver<Wakeup>> {
        None
    }
}

/// A unit of work. Nothing it wrote is visible to others before [`commit`](Self::commit);
/// dropped without commit, it leaves nothing.
pub trait Transaction:
    ResourceOps + LaunchOps + SubscriptionOps + AuthOps + ClusterOps + AuditOps + Send
{
    /// Makes every write of the transaction durable and visible, all at once.
    fn commit(self: Box<Self>) -> BoxFuture<'static, StoreResult<()>>;

    /// Discards every write of the transaction.
    fn rollback(self: Box<Self>) -> BoxFuture<'static, StoreResult<()>>;
}

/// FHIR resources, kept as the JSON they came in (lossless).
pub trait ResourceOps {
    /// Stores a new resource at version 1. [`StoreError::AlreadyExists`] if its type and id are
    /// taken.
    fn create_resource(&mut self, new: NewResource) -> BoxFuture<'_, StoreResult<StoredResource>>;

    /// Reads the current version.
    fn read_resource<'a>(
        &'a mut self,
        resource_type: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<StoredResource>>>;

    /// Replaces a resource with its next version. With `expected_version`, a different stored
    /// version is [`StoreError::VersionConflict`] (`If-Match`); a missing resource is
    /// [`StoreError::NotFound`]. The launch stays the one that created it.
    fn update_resource(
        &mut self,
        new: NewResource,
        expected_version: Option<u64>,
    ) -> BoxFuture<'_, StoreResult<StoredResource>>;

    /// Deletes a resource; whether it existed.
    fn delete_resource<'a>(
        &'a mut self,
        resource_type: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, StoreResult<bool>>;

    /// Finds resources.
    fn search_resources<'a>(
        &'a mut self,
        query: &'a ResourceQuery,
    ) -> BoxFuture<'a, StoreResult<Vec<StoredResource>>>;

    /// Deletes every resource of a launch (set through `$set-context` or written by its apps);
    /// how many.
    fn delete_launch_resources<'a>(
        &'a mut self,
        launch_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<u64>>;

    /// How many resources are stored.
    fn count_resources(&mut self) -> BoxFuture<'_, StoreResult<u64>>;

    /// One version of a resource, current or past (`vread`). Past versions live as long as the
    /// resource: deleting it, or its launch, deletes them too.
    fn read_resource_version<'a>(
        &'a mut self,
        resource_type: &'a str,
        id: &'a str,
        version: u64,
    ) -> BoxFuture<'a, StoreResult<Option<StoredResource>>>;

    /// Every version of a live resource, the newest first (instance `_history`).
    fn resource_history<'a>(
        &'a mut self,
        resource_type: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Vec<StoredResource>>>;

    /// Creates `new` in order, all or none with the transaction: the same as
    /// [`create_resource`](Self::create_resource) for each, in one call, so a backend may hand
    /// them to its database together (`$set-context` stores its whole Bundle with it).
    fn create_resources(
        &mut self,
        new: Vec<NewResource>,
    ) -> BoxFuture<'_, StoreResult<Vec<StoredResource>>>
    where
        Self: Send,
    {
        Box::pin(async move {
            let mut stored = Vec::with_capacity(new.len());
            for resource in new {
                stored.push(self.create_resource(resource).await?);
            }
            Ok(stored)
        })
    }
}

/// Launch contexts (`$set-context`).
pub trait LaunchOps {
    /// Stores a new launch context. [`StoreError::AlreadyExists`] if the id is taken.
    fn insert_launch(&mut self, launch: LaunchRecord) -> BoxFuture<'_, StoreResult<()>>;

    /// Reads a launch context, expired or not (the caller decides what expiry means). In a
    /// read-write transaction the launch stays as read until the transaction ends: a
    /// `$clear-context` waits for it, or went first and the launch is gone (`SELECT ... FOR
    /// UPDATE` on a server database). The write path relies on this fence (REQ SYNC-05).
    fn get_launch<'a>(
        &'a mut self,
        launch_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<LaunchRecord>>>;

    /// Deletes a launch context (not its resources); whether it existed.
    fn delete_launch<'a>(&'a mut self, launch_id: &'a str) -> BoxFuture<'a, StoreResult<bool>>;

    /// Ids of contexts expired at `now`, oldest first, at most `limit`.
    fn expired_launches(
        &mut self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> BoxFuture<'_, StoreResult<Vec<String>>>;

    /// How many launch contexts are stored.
    fn count_launches(&mut self) -> BoxFuture<'_, StoreResult<u64>>;

    /// Launch contexts, expired or not, ordered by id, at most `limit` (the admin command
    /// line, REQ OPS-05).
    fn list_launches(&mut self, limit: u64) -> BoxFuture<'_, StoreResult<Vec<LaunchRecord>>>;
}

/// Subscriptions and their event log (the subscriptions service builds on these).
pub trait SubscriptionOps {
    /// Stores a new subscription. [`StoreError::AlreadyExists`] if the id is taken.
    fn insert_subscription(
        &mut self,
        subscription: SubscriptionRecord,
    ) -> BoxFuture<'_, StoreResult<()>>;

    /// Reads a subscription.
    fn get_subscription<'a>(
        &'a mut self,
        id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<SubscriptionRecord>>>;

    /// Replaces a subscription, except its event counter, which only
    /// [`allocate_event_number`](Self::allocate_event_number) moves: a status change read
    /// before an allocation on another instance must not put the counter back (D-09).
    /// [`StoreError::NotFound`] if it does not exist.
    fn update_subscription(
        &mut self,
        subscription: SubscriptionRecord,
    ) -> BoxFuture<'_, StoreResult<()>>;

    /// Deletes a subscription and its events; whether it existed.
    fn delete_subscription<'a>(&'a mut self, id: &'a str) -> BoxFuture<'a, StoreResult<bool>>;

    /// Subscriptions, of one owner or all, ordered by id.
    fn list_subscriptions<'a>(
        &'a mut self,
        owner_client_id: Option<&'a str>,
    ) -> BoxFuture<'a, StoreResult<Vec<SubscriptionRecord>>>;

    /// Whether `owner_client_id` has an `active` subscription to `topic` (REQ SC-08, D-07).
    fn has_active_subscription<'a>(
        &'a mut self,
        owner_client_id: &'a str,
        topic: &'a str,
    ) -> BoxFuture<'a, StoreResult<bool>>;

    /// Allocates the subscription's next event number inside this transaction.
    /// [`StoreError::NotFound`] if the subscription does not exist. Like every write, a rollback
    /// undoes it; the write path therefore allocates in a transaction of its own that commits
    /// before any notification leaves, so a number is never given to two events (D-09).
    fn allocate_event_number<'a>(
        &'a mut self,
        subscription_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<u64>>;

    /// Persists an event (REQ SUB-07). [`StoreError::AlreadyExists`] for a number already used.
    fn append_event(&mut self, event: EventRecord) -> BoxFuture<'_, StoreResult<()>>;

    /// Events of a subscription with `since <= event_number <= until`, in order.
    fn events<'a>(
        &'a mut self,
        subscription_id: &'a str,
        since: u64,
        until: Option<u64>,
    ) -> BoxFuture<'a, StoreResult<Vec<EventRecord>>>;

    /// Moves event `event_number` of `subscription_id` from state `from` to `to`; whether it
    /// was in `from` (nothing changes otherwise). In a read-write transaction the event stays
    /// locked until the transaction ends, so a commit and a compensation racing for the same
    /// pending event cannot both win.
    fn transition_event<'a>(
        &'a mut self,
        subscription_id: &'a str,
        event_number: u64,
        from: EventState,
        to: EventState,
    ) -> BoxFuture<'a, StoreResult<bool>>;

    /// The subscription's unsettled events (pending or in the outbox, see
    /// [`EventState::is_unsettled`]), in order.
    fn unsettled_events<'a>(
        &'a mut self,
        subscription_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Vec<EventRecord>>>;

    /// The ids of the subscriptions that have unsettled events, ordered.
    fn subscriptions_with_unsettled_events(&mut self) -> BoxFuture<'_, StoreResult<Vec<String>>>;
}

/// Authorization codes, refresh tokens and signing keys (the authorization server builds on
/// these). Codes and tokens are looked up by hash; the secrets themselves are never stored.
pub trait AuthOps {
    /// Stores a new authorization code.
    fn insert_authorization_code(
        &mut self,
        code: AuthorizationCodeRecord,
    ) -> BoxFuture<'_, StoreResult<()>>;

    /// Marks a code consumed and returns it as it was before (so `consumed: true` reveals a
    /// replay); `None` if unknown.
    fn consume_authorization_code<'a>(
        &'a mut self,
        code_hash: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<AuthorizationCodeRecord>>>;

    /// Stores a new refresh token.
    fn insert_refresh_token(&mut self, token: RefreshTokenRecord)
    -> BoxFuture<'_, StoreResult<()>>;

    /// Reads a refresh token by hash.
    fn get_refresh_token<'a>(
        &'a mut self,
        token_hash: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<RefreshTokenRecord>>>;

    /// Revokes one refresh token; whether it was live.
    fn revoke_refresh_token<'a>(
        &'a mut self,
        token_hash: &'a str,
    ) -> BoxFuture<'a, StoreResult<bool>>;

    /// Revokes every token of a rotation family; how many were live.
    fn revoke_token_family<'a>(&'a mut self, family_id: &'a str)
    -> BoxFuture<'a, StoreResult<u64>>;

    /// Deletes the launch's codes and revokes its refresh tokens (REQ SC-12); how many grants.
    fn revoke_launch_grants<'a>(
        &'a mut self,
        launch_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<u64>>;

    /// Records that the access tokens of token family `family_id` are revoked (a replayed code,
    /// a reused refresh token; REQ IDP-05) until `expires_at`, when the last access token of
    /// the family has expired anyway. Recording a revoked family again keeps the later of the
    /// two expiries. The record is seen by every instance on the store and outlives a restart.
    fn revoke_access_family<'a>(
        &'a mut self,
        family_id: &'a str,
        expires_at: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<()>>;

    /// Whether `family_id` has a revocation record with `expires_at > now` (an expired record
    /// no longer counts, purged or not).
    fn access_family_revoked<'a>(
        &'a mut self,
        family_id: &'a str,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<bool>>;

    /// Records the one-time token id `jti` of `issuer` (a client assertion's, REQ AS-06,
    /// IDP-05) until `expires_at`; whether it was new. A record of the same `(issuer, jti)`
    /// with `expires_at > now` makes this a replay: nothing changes and the answer is `false`.
    /// An expired record is replaced. Two transactions recording the same id cannot both get
    /// `true` (the primary key, or a row lock, decides).
    fn record_jti<'a>(
        &'a mut self,
        issuer: &'a str,
        jti: &'a str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<bool>>;

    /// Deletes the family revocation and `jti` records with `expires_at <= now`; how many.
    fn purge_expired_auth_records(&mut self, now: DateTime<Utc>)
    -> BoxFuture<'_, StoreResult<u64>>;

    /// Stores or replaces a signing key.
    fn put_signing_key(&mut self, key: SigningKeyRecord) -> BoxFuture<'_, StoreResult<()>>;

    /// Every signing key, oldest first.
    fn signing_keys(&mut self) -> BoxFuture<'_, StoreResult<Vec<SigningKeyRecord>>>;

    /// Deletes a signing key (one whose last token has expired, REQ IDP-06); whether it
    /// existed.
    fn delete_signing_key<'a>(&'a mut self, kid: &'a str) -> BoxFuture<'a, StoreResult<bool>>;

    /// Stores or replaces a client registered at run time (REQ OPS-05).
    fn put_client(&mut self, client: ClientRecord) -> BoxFuture<'_, StoreResult<()>>;

    /// The client registered at run time with this id, disabled or not.
    fn get_client<'a>(
        &'a mut self,
        client_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<ClientRecord>>>;

    /// Every client registered at run time, ordered by id.
    fn list_clients(&mut self) -> BoxFuture<'_, StoreResult<Vec<ClientRecord>>>;
}

/// The audit log kept in the store (REQ RS-09, OPS-05), so it can be exported for a time
/// range. Each event is the JSON text of an [`AuditEvent`](crate::audit::AuditEvent).
pub trait AuditOps {
    /// Appends one audit event that happened at `time`.
    fn append_audit_event(
        &mut self,
        time: DateTime<Utc>,
        event_json: String,
    ) -> BoxFuture<'_, StoreResult<()>>;

    /// The events with `from <= time < to`, by time (to the millisecond at least) and, at the
    /// same time, in the order they were appended; at most `limit`. A caller reads a long range
    /// in pages by starting the next page at the last event's time.
    fn audit_events(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u64,
    ) -> BoxFuture<'_, StoreResult<Vec<String>>>;
}
