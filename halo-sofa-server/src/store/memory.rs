//! The in-memory store, for tests and examples. One transaction at a time; a rollback puts
//! back the state as it was when the transaction first wrote.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::meta::{references_of, stamp_meta};
use super::{
    AsyncJobRecord, AuditOps, AuthOps, AuthorizationCodeRecord, BindingTokenRecord, BoxFuture,
    ClientRecord, ClusterOps, EventRecord, EventState, LaunchOps, LaunchRecord, NewResource,
    RefreshTokenRecord, ResourceOps, ResourceQuery, SigningKeyRecord, Store, StoreError,
    StoreResult, StoredResource, SubscriptionOps, SubscriptionRecord, SubscriptionStatus,
    Transaction,
};
use crate::metrics;

#[derive(Debug, Clone, Default)]
struct State {
    resources: BTreeMap<(String, String), StoredResource>,
    /// Past versions of live resources, oldest first.
    past_versions: BTreeMap<(String, String), Vec<StoredResource>>,
    launches: BTreeMap<String, LaunchRecord>,
    subscriptions: BTreeMap<String, SubscriptionRecord>,
    events: BTreeMap<(String, u64), EventRecord>,
    codes: BTreeMap<String, AuthorizationCodeRecord>,
    refresh_tokens: BTreeMap<String, RefreshTokenRecord>,
    keys: BTreeMap<String, SigningKeyRecord>,
    revoked_families: BTreeMap<String, DateTime<Utc>>,
    jtis: BTreeMap<(String, String), DateTime<Utc>>,
    binding_tokens: BTreeMap<String, BindingTokenRecord>,
    socket_holders: BTreeMap<(String, String), DateTime<Utc>>,
    /// Socket delivery requests: deadline, and whether a socket wrote the event.
    socket_requests: BTreeMap<(String, u64), (DateTime<Utc>, bool)>,
    async_jobs: BTreeMap<String, AsyncJobRecord>,
    clients: BTreeMap<String, ClientRecord>,
    audit: Vec<(DateTime<Utc>, String)>,
}

/// An in-memory [`Store`]. Transactions are serialised; each is all-or-nothing.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }
}

impl Store for MemoryStore {
    fn begin(&self) -> BoxFuture<'_, StoreResult<Box<dyn Transaction>>> {
        Box::pin(metrics::store_call("memory", "begin", async move {
            let guard = self.state.clone().lock_owned().await;
            Ok(Box::new(MemoryTransaction {
                guard,
                backup: None,
            }) as Box<dyn Transaction>)
        }))
    }
}

struct MemoryTransaction {
    guard: OwnedMutexGuard<State>,
    /// The state before the first write; put back on rollback or drop.
    backup: Option<State>,
}

impl MemoryTransaction {
    fn read(&self) -> &State {
        &self.guard
    }

    fn write(&mut self) -> &mut State {
        if self.backup.is_none() {
            self.backup = Some(self.guard.clone());
        }
        &mut self.guard
    }
}

impl Drop for MemoryTransaction {
    fn drop(&mut self) {
        if let Some(backup) = self.backup.take() {
            *self.guard = backup;
        }
    }
}

fn key(resource_type: &str, id: &str) -> (String, String) {
    (resource_type.to_string(), id.to_string())
}

fn missing_id() -> StoreError {
    StoreError::Backend("a resource to store needs an id".into())
}

impl Transaction for MemoryTransaction {
    fn commit(mut self: Box<Self>) -> BoxFuture<'static, StoreResult<()>> {
        self.backup = None;
        Box::pin(metrics::store_call("memory", "commit", async { Ok(()) }))
    }

    fn rollback(self: Box<Self>) -> BoxFuture<'static, StoreResult<()>> {
        drop(self);
        Box::pin(metrics::store_call("memory", "rollback", async { Ok(()) }))
    }
}

impl ResourceOps for MemoryTransaction {
    fn create_resource(&mut self, new: NewResource) -> BoxFuture<'_, StoreResult<StoredResource>> {
        Box::pin(async move {
            let id = new.resource.id().ok_or_else(missing_id)?.to_string();
            let k = key(new.resource.resource_type(), &id);
            if self.read().resources.contains_key(&k) {
                return Err(StoreError::AlreadyExists(format!("{}/{}", k.0, k.1)));
            }
            let mut resource = new.resource;
            stamp_meta(&mut resource, 1, new.last_updated);
            let stored = StoredResource {
                resource,
                version: 1,
                last_updated: new.last_updated,
                launch_id: new.launch_id,
            };
            self.write().resources.insert(k, stored.clone());
            Ok(stored)
        })
    }

    fn read_resource<'a>(
        &'a mut self,
        resource_type: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<StoredResource>>> {
        Box::pin(async move { Ok(self.read().resources.get(&key(resource_type, id)).cloned()) })
    }

    fn update_resource(
        &mut self,
        new: NewResource,
        expected_version: Option<u64>,
    ) -> BoxFuture<'_, StoreResult<StoredResource>> {
        Box::pin(async move {
            let id = new.resource.id().ok_or_else(missing_id)?.to_string();
            let k = key(new.resource.resource_type(), &id);
            let Some(current) = self.read().resources.get(&k) else {
                return Err(StoreError::NotFound(format!("{}/{}", k.0, k.1)));
            };
            if let Some(expected) = expected_version
                && expected != current.version
            {
                return Err(StoreError::VersionConflict {
                    what: format!("{}/{}", k.0, k.1),
                    expected,
                    found: current.version,
                });
            }
            let version = current.version + 1;
            let launch_id = current.launch_id.clone();
            let mut resource = new.resource;
            stamp_meta(&mut resource, version, new.last_updated);
            let stored = StoredResource {
                resource,
                version,
                last_updated: new.last_updated,
                launch_id,
            };
            let state = self.write();
            if let Some(previous) = state.resources.insert(k.clone(), stored.clone()) {
                state.past_versions.entry(k).or_default().push(previous);
            }
            Ok(stored)
        })
    }

    fn delete_resource<'a>(
        &'a mut self,
        resource_type: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            let k = key(resource_type, id);
            if !self.read().resources.contains_key(&k) {
                return Ok(false);
            }
            let state = self.write();
            state.past_versions.remove(&k);
            Ok(state.resources.remove(&k).is_some())
        })
    }

    fn search_resources<'a>(
        &'a mut self,
        query: &'a ResourceQuery,
    ) -> BoxFuture<'a, StoreResult<Vec<StoredResource>>> {
        Box::pin(async move {
            let matches = self.read().resources.values().filter(|r| {
                query
                    .resource_type
                    .as_deref()
                    .is_none_or(|t| t == r.resource_type())
                    && query
                        .launch_id
                        .as_deref()
                        .is_none_or(|l| r.launch_id.as_deref() == Some(l))
                    && (query.ids.is_empty() || query.ids.iter().any(|id| id == r.id()))
                    && query
                        .references
                        .as_ref()
                        .is_none_or(|target| references_of(&r.resource).contains(target))
            });
            let limit = if query.limit == 0 {
                usize::MAX
            } else {
                usize::try_from(query.limit).unwrap_or(usize::MAX)
            };
            Ok(matches
                .skip(usize::try_from(query.offset).unwrap_or(usize::MAX))
                .take(limit)
                .cloned()
                .collect())
        })
    }

    fn delete_launch_resources<'a>(
        &'a mut self,
        launch_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<u64>> {
        Box::pin(async move {
            let before = self.read().resources.len();
            let state = self.write();
            state
                .resources
                .retain(|_, r| r.launch_id.as_deref() != Some(launch_id));
            let live = &state.resources;
            state.past_versions.retain(|k, _| live.contains_key(k));
            Ok((before - state.resources.len()) as u64)
        })
    }

    fn count_resources(&mut self) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(async move { Ok(self.read().resources.len() as u64) })
    }

    fn read_resource_version<'a>(
        &'a mut self,
        resource_type: &'a str,
        id: &'a str,
        version: u64,
    ) -> BoxFuture<'a, StoreResult<Option<StoredResource>>> {
        Box::pin(async move {
            let history = self.resource_history(resource_type, id).await?;
            Ok(history.into_iter().find(|r| r.version == version))
        })
    }

    fn resource_history<'a>(
        &'a mut self,
        resource_type: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Vec<StoredResource>>> {
        Box::pin(async move {
            let k = key(resource_type, id);
            let state = self.read();
            let Some(current) = state.resources.get(&k) else {
                return Ok(Vec::new());
            };
            let past = state.past_versions.get(&k).into_iter().flatten().rev();
            Ok(std::iter::once(current).chain(past).cloned().collect())
        })
    }
}

impl LaunchOps for MemoryTransaction {
    fn insert_launch(&mut self, launch: LaunchRecord) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            if self.read().launches.contains_key(&launch.launch_id) {
                return Err(StoreError::AlreadyExists("launch".into()));
            }
            self.write()
                .launches
                .insert(launch.launch_id.clone(), launch);
            Ok(())
        })
    }

    fn get_launch<'a>(
        &'a mut self,
        launch_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<LaunchRecord>>> {
        Box::pin(async move { Ok(self.read().launches.get(launch_id).cloned()) })
    }

    fn delete_launch<'a>(&'a mut self, launch_id: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            if !self.read().launches.contains_key(launch_id) {
                return Ok(false);
            }
            Ok(self.write().launches.remove(launch_id).is_some())
        })
    }

    fn expired_launches(
        &mut self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        Box::pin(async move {
            let mut expired: Vec<&LaunchRecord> = self
                .read()
                .launches
                .values()
                .filter(|l| l.is_expired(now))
                .collect();
            expired.sort_by_key(|l| l.expires_at);
            Ok(expired
                .into_iter()
                .take(usize::try_from(limit).unwrap_or(usize::MAX))
                .map(|l| l.launch_id.clone())
                .collect())
        })
    }

    fn count_launches(&mut self) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(async move { Ok(self.read().launches.len() as u64) })
    }

    fn list_launches(&mut self, limit: u64) -> BoxFuture<'_, StoreResult<Vec<LaunchRecord>>> {
        Box::pin(async move {
            Ok(self
                .read()
                .launches
                .values()
                .take(usize::try_from(limit).unwrap_or(usize::MAX))
                .cloned()
                .collect())
        })
    }
}

impl SubscriptionOps for MemoryTransaction {
    fn insert_subscription(
        &mut self,
        subscription: SubscriptionRecord,
    ) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            if self.read().subscriptions.contains_key(&subscription.id) {
                return Err(StoreError::AlreadyExists(format!(
                    "Subscription/{}",
                    subscription.id
                )));
            }
            self.write()
                .subscriptions
                .insert(subscription.id.clone(), subscription);
            Ok(())
        })
    }

    fn get_subscription<'a>(
        &'a mut self,
        id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<SubscriptionRecord>>> {
        Box::pin(async move { Ok(self.read().subscriptions.get(id).cloned()) })
    }

    fn update_subscription(
        &mut self,
        mut subscription: SubscriptionRecord,
    ) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let Some(stored) = self.read().subscriptions.get(&subscription.id) else {
                return Err(StoreError::NotFound(format!(
                    "Subscription/{}",
                    subscription.id
                )));
            };
            subscription.events_since_start = stored.events_since_start;
            self.write()
                .subscriptions
                .insert(subscription.id.clone(), subscription);
            Ok(())
        })
    }

    fn delete_subscription<'a>(&'a mut self, id: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            if !self.read().subscriptions.contains_key(id) {
                return Ok(false);
            }
            let state = self.write();
            state.events.retain(|(s, _), _| s != id);
            Ok(state.subscriptions.remove(id).is_some())
        })
    }

    fn list_subscriptions<'a>(
        &'a mut self,
        owner_client_id: Option<&'a str>,
    ) -> BoxFuture<'a, StoreResult<Vec<SubscriptionRecord>>> {
        Box::pin(async move {
            Ok(self
                .read()
                .subscriptions
                .values()
                .filter(|s| owner_client_id.is_none_or(|o| o == s.owner_client_id))
                .cloned()
                .collect())
        })
    }

    fn has_active_subscription<'a>(
        &'a mut self,
        owner_client_id: &'a str,
        topic: &'a str,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            Ok(self.read().subscriptions.values().any(|s| {
                s.owner_client_id == owner_client_id
                    && s.topic == topic
                    && s.status == SubscriptionStatus::Active
            }))
        })
    }

    fn allocate_event_number<'a>(
        &'a mut self,
        subscription_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<u64>> {
        Box::pin(async move {
            if !self.read().subscriptions.contains_key(subscription_id) {
                return Err(StoreError::NotFound(format!(
                    "Subscription/{subscription_id}"
                )));
            }
            let subscription = self
                .write()
                .subscriptions
                .get_mut(subscription_id)
                .ok_or_else(|| StoreError::NotFound(format!("Subscription/{subscription_id}")))?;
            subscription.events_since_start += 1;
            Ok(subscription.events_since_start)
        })
    }

    fn append_event(&mut self, event: EventRecord) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let k = (event.subscription_id.clone(), event.event_number);
            if self.read().events.contains_key(&k) {
                return Err(StoreError::AlreadyExists(format!(
                    "event {} of Subscription/{}",
                    k.1, k.0
                )));
            }
            self.write().events.insert(k, event);
            Ok(())
        })
    }

    fn events<'a>(
        &'a mut self,
        subscription_id: &'a str,
        since: u64,
        until: Option<u64>,
    ) -> BoxFuture<'a, StoreResult<Vec<EventRecord>>> {
        Box::pin(async move {
            let upper = until.unwrap_or(u64::MAX);
            Ok(self
                .read()
                .events
                .range((subscription_id.to_string(), since)..=(subscription_id.to_string(), upper))
                .map(|(_, e)| e.clone())
                .collect())
        })
    }

    fn transition_event<'a>(
        &'a mut self,
        subscription_id: &'a str,
        event_number: u64,
        from: EventState,
        to: EventState,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            let k = (subscription_id.to_string(), event_number);
            if self.read().events.get(&k).is_none_or(|e| e.state != from) {
                return Ok(false);
            }
            if let Some(event) = self.write().events.get_mut(&k) {
                event.state = to;
            }
            Ok(true)
        })
    }

    fn unsettled_events<'a>(
        &'a mut self,
        subscription_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Vec<EventRecord>>> {
        Box::pin(async move {
            Ok(self
                .read()
                .events
                .range((subscription_id.to_string(), 0)..=(subscription_id.to_string(), u64::MAX))
                .map(|(_, e)| e)
                .filter(|e| e.state.is_unsettled())
                .cloned()
                .collect())
        })
    }

    fn subscriptions_with_unsettled_events(&mut self) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        Box::pin(async move {
            let mut ids: Vec<String> = self
                .read()
                .events
                .values()
                .filter(|e| e.state.is_unsettled())
                .map(|e| e.subscription_id.clone())
                .collect();
            ids.dedup();
            Ok(ids)
        })
    }
}

impl AuthOps for MemoryTransaction {
    fn insert_authorization_code(
        &mut self,
        code: AuthorizationCodeRecord,
    ) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            if self.read().codes.contains_key(&code.code_hash) {
                return Err(StoreError::AlreadyExists("authorization code".into()));
            }
            self.write().codes.insert(code.code_hash.clone(), code);
            Ok(())
        })
    }

    fn consume_authorization_code<'a>(
        &'a mut self,
        code_hash: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<AuthorizationCodeRecord>>> {
        Box::pin(async move {
            let Some(before) = self.read().codes.get(code_hash).cloned() else {
                return Ok(None);
            };
            if let Some(code) = self.write().codes.get_mut(code_hash) {
                code.consumed = true;
            }
            Ok(Some(before))
        })
    }

    fn insert_refresh_token(
        &mut self,
        token: RefreshTokenRecord,
    ) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            if self.read().refresh_tokens.contains_key(&token.token_hash) {
                return Err(StoreError::AlreadyExists("refresh token".into()));
            }
            self.write()
                .refresh_tokens
                .insert(token.token_hash.clone(), token);
            Ok(())
        })
    }

    fn get_refresh_token<'a>(
        &'a mut self,
        token_hash: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<RefreshTokenRecord>>> {
        Box::pin(async move { Ok(self.read().refresh_tokens.get(token_hash).cloned()) })
    }

    fn revoke_refresh_token<'a>(
        &'a mut self,
        token_hash: &'a str,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            let live = self
                .read()
                .refresh_tokens
                .get(token_hash)
                .is_some_and(|t| !t.revoked);
            if live && let Some(token) = self.write().refresh_tokens.get_mut(token_hash) {
                token.revoked = true;
            }
            Ok(live)
        })
    }

    fn revoke_token_family<'a>(
        &'a mut self,
        family_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<u64>> {
        Box::pin(async move {
            let mut count = 0;
            for token in self.write().refresh_tokens.values_mut() {
                if token.family_id == family_id && !token.revoked {
                    token.revoked = true;
                    count += 1;
                }
            }
            Ok(count)
        })
    }

    fn revoke_launch_grants<'a>(
        &'a mut self,
        launch_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<u64>> {
        Box::pin(async move {
            let state = self.write();
            let codes_before = state.codes.len();
            state
                .codes
                .retain(|_, c| c.launch_id.as_deref() != Some(launch_id));
            let mut count = (codes_before - state.codes.len()) as u64;
            for token in state.refresh_tokens.values_mut() {
                if token.launch_id.as_deref() == Some(launch_id) && !token.revoked {
                    token.revoked = true;
                    count += 1;
                }
            }
            Ok(count)
        })
    }

    fn revoke_access_family<'a>(
        &'a mut self,
        family_id: &'a str,
        expires_at: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let until = self
                .write()
                .revoked_families
                .entry(family_id.to_string())
                .or_insert(expires_at);
            *until = (*until).max(expires_at);
            Ok(())
        })
    }

    fn access_family_revoked<'a>(
        &'a mut self,
        family_id: &'a str,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            Ok(self
                .read()
                .revoked_families
                .get(family_id)
                .is_some_and(|until| *until > now))
        })
    }

    fn record_jti<'a>(
        &'a mut self,
        issuer: &'a str,
        jti: &'a str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            let key = (issuer.to_string(), jti.to_string());
            if self.read().jtis.get(&key).is_some_and(|until| *until > now) {
                return Ok(false);
            }
            self.write().jtis.insert(key, expires_at);
            Ok(true)
        })
    }

    fn purge_expired_auth_records(
        &mut self,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(async move {
            let state = self.read();
            let stale = state
                .revoked_families
                .values()
                .filter(|u| **u <= now)
                .count()
                + state.jtis.values().filter(|u| **u <= now).count();
            if stale > 0 {
                let state = self.write();
                state.revoked_families.retain(|_, until| *until > now);
                state.jtis.retain(|_, until| *until > now);
            }
            Ok(stale as u64)
        })
    }

    fn put_signing_key(&mut self, key: SigningKeyRecord) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            self.write().keys.insert(key.kid.clone(), key);
            Ok(())
        })
    }

    fn signing_keys(&mut self) -> BoxFuture<'_, StoreResult<Vec<SigningKeyRecord>>> {
        Box::pin(async move {
            let mut keys: Vec<SigningKeyRecord> = self.read().keys.values().cloned().collect();
            keys.sort_by_key(|k| k.created_at);
            Ok(keys)
        })
    }

    fn delete_signing_key<'a>(&'a mut self, kid: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move { Ok(self.write().keys.remove(kid).is_some()) })
    }

    fn put_client(&mut self, client: ClientRecord) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            self.write()
                .clients
                .insert(client.client_id.clone(), client);
            Ok(())
        })
    }

    fn get_client<'a>(
        &'a mut self,
        client_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<ClientRecord>>> {
        Box::pin(async move { Ok(self.read().clients.get(client_id).cloned()) })
    }

    fn list_clients(&mut self) -> BoxFuture<'_, StoreResult<Vec<ClientRecord>>> {
        Box::pin(async move { Ok(self.read().clients.values().cloned().collect()) })
    }
}

impl AuditOps for MemoryTransaction {
    fn append_audit_event(
        &mut self,
        time: DateTime<Utc>,
        event_json: String,
    ) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            self.write().audit.push((time, event_json));
            Ok(())
        })
    }

    fn audit_events(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u64,
    ) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        Box::pin(async move {
            let mut events: Vec<&(DateTime<Utc>, String)> = self
                .read()
                .audit
                .iter()
                .filter(|(time, _)| from <= *time && *time < to)
                .collect();
            // Stable: events of the same time stay in the order appended.
            events.sort_by_key(|(time, _)| *time);
            Ok(events
                .into_iter()
                .take(usize::try_from(limit).unwrap_or(usize::MAX))
                .map(|(_, event)| event.clone())
                .collect())
        })
    }
}

impl ClusterOps for MemoryTransaction {
    fn insert_binding_token<'a>(
        &'a mut self,
        token_hash: &'a str,
        record: BindingTokenRecord,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            if self.read().binding_tokens.contains_key(token_hash) {
                return Err(StoreError::AlreadyExists("binding token".into()));
            }
            self.write()
                .binding_tokens
                .insert(token_hash.to_string(), record);
            Ok(())
        })
    }

    fn take_binding_token<'a>(
        &'a mut self,
        token_hash: &'a str,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<Option<BindingTokenRecord>>> {
        Box::pin(async move {
            if !self.read().binding_tokens.contains_key(token_hash) {
                return Ok(None);
            }
            Ok(self
                .write()
                .binding_tokens
                .remove(token_hash)
                .filter(|record| record.expires_at > now))
        })
    }

    fn hold_socket<'a>(
        &'a mut self,
        subscription_id: &'a str,
        instance: &'a str,
        lease_until: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            self.write().socket_holders.insert(
                (subscription_id.to_string(), instance.to_string()),
                lease_until,
            );
            Ok(())
        })
    }

    fn release_socket<'a>(
        &'a mut self,
        subscription_id: &'a str,
        instance: &'a str,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let key = (subscription_id.to_string(), instance.to_string());
            if self.read().socket_holders.contains_key(&key) {
                self.write().socket_holders.remove(&key);
            }
            Ok(())
        })
    }

    fn socket_holders<'a>(
        &'a mut self,
        subscription_id: &'a str,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<Vec<String>>> {
        Box::pin(async move {
            Ok(self
                .read()
                .socket_holders
                .iter()
                .filter(|((id, _), until)| id == subscription_id && **until > now)
                .map(|((_, instance), _)| instance.clone())
                .collect())
        })
    }

    fn request_socket_delivery<'a>(
        &'a mut self,
        subscription_id: &'a str,
        event_number: u64,
        deadline: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            self.write().socket_requests.insert(
                (subscription_id.to_string(), event_number),
                (deadline, false),
            );
            Ok(())
        })
    }

    fn socket_delivery_requests<'a>(
        &'a mut self,
        instance: &'a str,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<Vec<(String, u64)>>> {
        Box::pin(async move {
            let state = self.read();
            let held = |id: &str| {
                state
                    .socket_holders
                    .contains_key(&(id.to_string(), instance.to_string()))
            };
            Ok(state
                .socket_requests
                .iter()
                .filter(|((id, _), (deadline, delivered))| {
                    held(id) && !*delivered && *deadline > now
                })
                .map(|(key, _)| key.clone())
                .collect())
        })
    }

    fn confirm_socket_delivery<'a>(
        &'a mut self,
        subscription_id: &'a str,
        event_number: u64,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            let key = (subscription_id.to_string(), event_number);
            if !self.read().socket_requests.contains_key(&key) {
                return Ok(false);
            }
            if let Some(request) = self.write().socket_requests.get_mut(&key) {
                request.1 = true;
            }
            Ok(true)
        })
    }

    fn socket_delivered<'a>(
        &'a mut self,
        subscription_id: &'a str,
        event_number: u64,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            Ok(self
                .read()
                .socket_requests
                .get(&(subscription_id.to_string(), event_number))
                .is_some_and(|(_, delivered)| *delivered))
        })
    }

    fn purge_cluster_records(&mut self, now: DateTime<Utc>) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(async move {
            let state = self.read();
            let stale = state
                .binding_tokens
                .values()
                .filter(|r| r.expires_at <= now)
                .count()
                + state.socket_holders.values().filter(|u| **u <= now).count()
                + state
                    .socket_requests
                    .values()
                    .filter(|(deadline, _)| *deadline <= now)
                    .count()
                + state
                    .async_jobs
                    .values()
                    .filter(|j| j.expires_at <= now)
                    .count();
            if stale > 0 {
                let state = self.write();
                state.binding_tokens.retain(|_, r| r.expires_at > now);
                state.socket_holders.retain(|_, u| *u > now);
                state
                    .socket_requests
                    .retain(|_, (deadline, _)| *deadline > now);
                state.async_jobs.retain(|_, j| j.expires_at > now);
            }
            Ok(stale as u64)
        })
    }

    fn insert_async_job(&mut self, job: AsyncJobRecord) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            if self.read().async_jobs.contains_key(&job.id) {
                return Err(StoreError::AlreadyExists(format!("async job {}", job.id)));
            }
            self.write().async_jobs.insert(job.id.clone(), job);
            Ok(())
        })
    }

    fn get_async_job<'a>(
        &'a mut self,
        id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<AsyncJobRecord>>> {
        Box::pin(async move { Ok(self.read().async_jobs.get(id).cloned()) })
    }

    fn update_async_job(&mut self, job: AsyncJobRecord) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            if !self.read().async_jobs.contains_key(&job.id) {
                return Ok(false);
            }
            self.write().async_jobs.insert(job.id.clone(), job);
            Ok(true)
        })
    }

    fn delete_async_job<'a>(&'a mut self, id: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            if !self.read().async_jobs.contains_key(id) {
                return Ok(false);
            }
            Ok(self.write().async_jobs.remove(id).is_some())
        })
    }

    fn try_lead<'a>(&'a mut self, task: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        // Transactions are serialised: the one asking leads.
        let _ = task;
        Box::pin(async { Ok(true) })
    }
}
