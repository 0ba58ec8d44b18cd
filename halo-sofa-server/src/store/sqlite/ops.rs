//! The SQL of each store operation, as plain functions over a connection inside a transaction.

use chrono::{DateTime, Utc};
use halo_model::fhir::RawResource;
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use super::super::meta::{from_json, int, references_of, stamp_meta, to_json, uint};
use super::super::{
    AuthorizationCodeRecord, ClientRecord, EventRecord, EventState, LaunchRecord, NewResource,
    RefreshTokenRecord, ResourceQuery, SigningKeyRecord, StoreError, StoreResult, StoredResource,
    SubscriptionRecord, SubscriptionStatus,
};

/// Maps an SQLite error to the backend-neutral cases.
pub(super) fn error(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Backend(e.to_string()),
    }
}

/// Runs one statement from the connection's prepared-statement cache (parsing SQL costs more
/// than running most of these); how many rows it changed.
pub(super) fn exec(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    c.prepare_cached(sql)?.execute(params)
}

/// The first row of a cached statement, mapped by `f`.
pub(super) fn query_row<T>(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    c.prepare_cached(sql)?.query_row(params, f)
}

fn insert_error(e: rusqlite::Error, what: impl Into<String>) -> StoreError {
    if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) {
        StoreError::AlreadyExists(what.into())
    } else {
        error(e)
    }
}

pub(super) fn count(c: &Connection, table: &'static str) -> StoreResult<u64> {
    let n: i64 = query_row(c, &format!("SELECT COUNT(*) FROM {table}"), [], |r| {
        r.get(0)
    })
    .map_err(error)?;
    Ok(uint(n))
}

// ---- resources ----

fn write_resource(
    c: &Connection,
    new: NewResource,
    version: u64,
    launch_id: Option<String>,
    insert: bool,
) -> StoreResult<StoredResource> {
    let mut resource = new.resource;
    let id = resource
        .id()
        .ok_or_else(|| StoreError::Backend("a resource to store needs an id".into()))?
        .to_string();
    let resource_type = resource.resource_type().to_string();
    stamp_meta(&mut resource, version, new.last_updated);
    let json = resource.to_vec();
    let last_updated = new.last_updated.to_rfc3339();
    if insert {
        exec(
            c,
            "INSERT INTO resources (resource_type, id, version, last_updated, launch_id, json)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                resource_type,
                id,
                int(version)?,
                last_updated,
                launch_id,
                json
            ],
        )
        .map_err(|e| insert_error(e, format!("{resource_type}/{id}")))?;
    } else {
        exec(
            c,
            "UPDATE resources SET version = ?3, last_updated = ?4, json = ?5
             WHERE resource_type = ?1 AND id = ?2",
            params![resource_type, id, int(version)?, last_updated, json],
        )
        .map_err(error)?;
        exec(
            c,
            "DELETE FROM resource_refs WHERE resource_type = ?1 AND id = ?2",
            params![resource_type, id],
        )
        .map_err(error)?;
    }
    let mut add_ref = c
        .prepare_cached(
            "INSERT OR IGNORE INTO resource_refs (resource_type, id, reference) VALUES (?1, ?2, ?3)",
        )
        .map_err(error)?;
    for reference in references_of(&resource) {
        add_ref
            .execute(params![resource_type, id, reference])
            .map_err(error)?;
    }
    Ok(StoredResource {
        resource,
        version,
        last_updated: new.last_updated,
        launch_id,
    })
}

pub(super) fn create_resource(c: &Connection, new: NewResource) -> StoreResult<StoredResource> {
    let launch_id = new.launch_id.clone();
    write_resource(c, new, 1, launch_id, true)
}

fn row_to_resource(
    row: &rusqlite::Row<'_>,
) -> rusqlite::Result<(i64, String, Option<String>, Vec<u8>)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

fn stored(raw: (i64, String, Option<String>, Vec<u8>)) -> StoreResult<StoredResource> {
    let (version, last_updated, launch_id, json) = raw;
    let value = serde_json::from_slice(&json).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let resource =
        RawResource::from_value(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let last_updated = DateTime::parse_from_rfc3339(&last_updated)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?
        .with_timezone(&Utc);
    Ok(StoredResource {
        resource,
        version: uint(version),
        last_updated,
        launch_id,
    })
}

pub(super) fn read_resource(
    c: &Connection,
    resource_type: &str,
    id: &str,
) -> StoreResult<Option<StoredResource>> {
    c.prepare_cached(
        "SELECT version, last_updated, launch_id, json FROM resources
         WHERE resource_type = ?1 AND id = ?2",
    )
    .map_err(error)?
    .query_row(params![resource_type, id], row_to_resource)
    .optional()
    .map_err(error)?
    .map(stored)
    .transpose()
}

pub(super) fn update_resource(
    c: &Connection,
    new: NewResource,
    expected_version: Option<u64>,
) -> StoreResult<StoredResource> {
    let resource_type = new.resource.resource_type().to_string();
    let id = new.resource.id().unwrap_or_default().to_string();
    let current: Option<(i64, Option<String>)> = query_row(
        c,
        "SELECT version, launch_id FROM resources WHERE resource_type = ?1 AND id = ?2",
        params![resource_type, id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
    .map_err(error)?;
    let Some((version, launch_id)) = current else {
        return Err(StoreError::NotFound(format!("{resource_type}/{id}")));
    };
    let version = uint(version);
    if let Some(expected) = expected_version
        && expected != version
    {
        return Err(StoreError::VersionConflict {
            what: format!("{resource_type}/{id}"),
            expected,
            found: version,
        });
    }
    // The version being replaced becomes a past version (vread, `_history`).
    c.prepare_cached(
        "INSERT INTO resource_versions (resource_type, id, version, last_updated, launch_id, json)
         SELECT resource_type, id, version, last_updated, launch_id, json FROM resources
         WHERE resource_type = ?1 AND id = ?2",
    )
    .map_err(error)?
    .execute(params![resource_type, id])
    .map_err(error)?;
    write_resource(c, new, version + 1, launch_id, false)
}

/// The current and past versions of a resource, newest first; one `version` or all of them.
pub(super) fn resource_versions(
    c: &Connection,
    resource_type: &str,
    id: &str,
    version: Option<u64>,
) -> StoreResult<Vec<StoredResource>> {
    let version = version.map(int).transpose()?;
    c.prepare_cached(
        "SELECT version, last_updated, launch_id, json FROM resources
           WHERE resource_type = ?1 AND id = ?2 AND (?3 IS NULL OR version = ?3)
         UNION ALL
         SELECT v.version, v.last_updated, v.launch_id, v.json FROM resource_versions v
           WHERE v.resource_type = ?1 AND v.id = ?2 AND (?3 IS NULL OR v.version = ?3)
           AND EXISTS (SELECT 1 FROM resources r WHERE r.resource_type = ?1 AND r.id = ?2)
         ORDER BY 1 DESC",
    )
    .map_err(error)?
    .query_map(params![resource_type, id, version], row_to_resource)
    .map_err(error)?
    .map(|row| row.map_err(error).and_then(stored))
    .collect()
}

pub(super) fn delete_resource(c: &Connection, resource_type: &str, id: &str) -> StoreResult<bool> {
    for table in ["resource_refs", "resource_versions"] {
        exec(
            c,
            &format!("DELETE FROM {table} WHERE resource_type = ?1 AND id = ?2"),
            params![resource_type, id],
        )
        .map_err(error)?;
    }
    let n = exec(
        c,
        "DELETE FROM resources WHERE resource_type = ?1 AND id = ?2",
        params![resource_type, id],
    )
    .map_err(error)?;
    Ok(n > 0)
}

pub(super) fn search_resources(
    c: &Connection,
    query: &ResourceQuery,
) -> StoreResult<Vec<StoredResource>> {
    let mut sql = String::from(
        "SELECT r.version, r.last_updated, r.launch_id, r.json FROM resources r WHERE 1 = 1",
    );
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    let mut arg = |sql: &mut String, clause: &str, value: rusqlite::types::Value| {
        args.push(value);
        sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
    };
    if let Some(t) = &query.resource_type {
        arg(&mut sql, " AND r.resource_type = ?", t.clone().into());
    }
    if let Some(l) = &query.launch_id {
        arg(&mut sql, " AND r.launch_id = ?", l.clone().into());
    }
    if !query.ids.is_empty() {
        sql.push_str(" AND r.id IN (");
        for (i, id) in query.ids.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            arg(&mut sql, "?", id.clone().into());
        }
        sql.push(')');
    }
    if let Some(target) = &query.references {
        arg(
            &mut sql,
            " AND EXISTS (SELECT 1 FROM resource_refs x WHERE x.resource_type = r.resource_type
               AND x.id = r.id AND x.reference = ?)",
            target.clone().into(),
        );
    }
    sql.push_str(" ORDER BY r.resource_type, r.id");
    let limit = if query.limit == 0 {
        -1
    } else {
        int(query.limit)?
    };
    arg(&mut sql, " LIMIT ?", limit.into());
    arg(&mut sql, " OFFSET ?", int(query.offset)?.into());
    let run = |statement: &mut rusqlite::Statement<'_>| {
        let rows = statement
            .query_map(rusqlite::params_from_iter(args), row_to_resource)
            .map_err(error)?;
        rows.map(|row| row.map_err(error).and_then(stored))
            .collect()
    };
    // Cached too: the shapes are few (which filters, and how many ids up to a page); a
    // longer id list is parsed for its one use rather than push common ones out of the cache.
    if query.ids.len() <= 8 {
        run(&mut *c.prepare_cached(&sql).map_err(error)?)
    } else {
        run(&mut c.prepare(&sql).map_err(error)?)
    }
}

pub(super) fn delete_launch_resources(c: &Connection, launch_id: &str) -> StoreResult<u64> {
    exec(
        c,
        "DELETE FROM resource_refs WHERE (resource_type, id) IN
           (SELECT resource_type, id FROM resources WHERE launch_id = ?1)",
        params![launch_id],
    )
    .map_err(error)?;
    exec(
        c,
        "DELETE FROM resource_versions WHERE launch_id = ?1",
        params![launch_id],
    )
    .map_err(error)?;
    let n = exec(
        c,
        "DELETE FROM resources WHERE launch_id = ?1",
        params![launch_id],
    )
    .map_err(error)?;
    Ok(n as u64)
}

// ---- launches ----

pub(super) fn insert_launch(c: &Connection, launch: &LaunchRecord) -> StoreResult<()> {
    exec(
        c,
        "INSERT INTO launches (launch_id, client_id, expires_at, record) VALUES (?1, ?2, ?3, ?4)",
        params![
            launch.launch_id,
            launch.client_id,
            launch.expires_at.timestamp_millis(),
            to_json(launch)?
        ],
    )
    .map_err(|e| insert_error(e, "launch"))?;
    Ok(())
}

/// The JSON record of the one row `sql` selects, if any.
fn record_opt<T: serde::de::DeserializeOwned>(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> StoreResult<Option<T>> {
    let text: Option<String> = c
        .prepare_cached(sql)
        .map_err(error)?
        .query_row(params, |r| r.get(0))
        .optional()
        .map_err(error)?;
    text.as_deref().map(from_json).transpose()
}

/// The JSON records of the rows `sql` selects, in its order.
fn records<T: serde::de::DeserializeOwned>(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> StoreResult<Vec<T>> {
    let mut statement = c.prepare_cached(sql).map_err(error)?;
    let rows = statement
        .query_map(params, |r| r.get::<_, String>(0))
        .map_err(error)?;
    rows.map(|r| r.map_err(error).and_then(|t| from_json(&t)))
        .collect()
}

pub(super) fn get_launch(c: &Connection, launch_id: &str) -> StoreResult<Option<LaunchRecord>> {
    record_opt(
        c,
        "SELECT record FROM launches WHERE launch_id = ?1",
        params![launch_id],
    )
}

pub(super) fn delete_launch(c: &Connection, launch_id: &str) -> StoreResult<bool> {
    let n = exec(
        c,
        "DELETE FROM launches WHERE launch_id = ?1",
        params![launch_id],
    )
    .map_err(error)?;
    Ok(n > 0)
}

pub(super) fn expired_launches(
    c: &Connection,
    now: DateTime<Utc>,
    limit: u64,
) -> StoreResult<Vec<String>> {
    let mut statement = c
        .prepare_cached(
            "SELECT launch_id FROM launches WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2",
        )
        .map_err(error)?;
    let rows = statement
        .query_map(params![now.timestamp_millis(), int(limit)?], |r| r.get(0))
        .map_err(error)?;
    rows.map(|r| r.map_err(error)).collect()
}

pub(super) fn list_launches(c: &Connection, limit: u64) -> StoreResult<Vec<LaunchRecord>> {
    records(
        c,
        "SELECT record FROM launches ORDER BY launch_id LIMIT ?1",
        params![int(limit)?],
    )
}

// ---- subscriptions and events ----

fn subscription_params(s: &SubscriptionRecord) -> StoreResult<(String, i64, String)> {
    Ok((
        s.status.as_str().to_string(),
        int(s.events_since_start)?,
        to_json(s)?,
    ))
}

pub(super) fn insert_subscription(c: &Connection, s: &SubscriptionRecord) -> StoreResult<()> {
    let (status, events, record) = subscription_params(s)?;
    exec(
        c,
        "INSERT INTO subscriptions (id, owner, topic, status, events_since_start, record)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![s.id, s.owner_client_id, s.topic, status, events, record],
    )
    .map_err(|e| insert_error(e, format!("Subscription/{}", s.id)))?;
    Ok(())
}

fn read_subscription(row: &rusqlite::Row<'_>) -> rusqlite::Result<(String, i64, String)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
}

/// The indexed columns are authoritative: the event counter changes without the JSON.
fn subscription(raw: (String, i64, String)) -> StoreResult<SubscriptionRecord> {
    let (status, events, record) = raw;
    let mut s: SubscriptionRecord = from_json(&record)?;
    s.status = serde_json::from_value(serde_json::Value::String(status))
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    s.events_since_start = uint(events);
    Ok(s)
}

pub(super) fn get_subscription(
    c: &Connection,
    id: &str,
) -> StoreResult<Option<SubscriptionRecord>> {
    c.prepare_cached("SELECT status, events_since_start, record FROM subscriptions WHERE id = ?1")
        .map_err(error)?
        .query_row(params![id], read_subscription)
        .optional()
        .map_err(error)?
        .map(subscription)
        .transpose()
}

pub(super) fn update_subscription(c: &Connection, s: &SubscriptionRecord) -> StoreResult<()> {
    let (status, _, record) = subscription_params(s)?;
    let n = exec(
        c,
        "UPDATE subscriptions SET owner = ?2, topic = ?3, status = ?4, record = ?5
             WHERE id = ?1",
        params![s.id, s.owner_client_id, s.topic, status, record],
    )
    .map_err(error)?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("Subscription/{}", s.id)));
    }
    Ok(())
}

pub(super) fn delete_subscription(c: &Connection, id: &str) -> StoreResult<bool> {
    exec(
        c,
        "DELETE FROM events WHERE subscription_id = ?1",
        params![id],
    )
    .map_err(error)?;
    let n = exec(c, "DELETE FROM subscriptions WHERE id = ?1", params![id]).map_err(error)?;
    Ok(n > 0)
}

pub(super) fn list_subscriptions(
    c: &Connection,
    owner: Option<&str>,
) -> StoreResult<Vec<SubscriptionRecord>> {
    let mut statement = c
        .prepare_cached(
            "SELECT status, events_since_start, record FROM subscriptions
             WHERE ?1 IS NULL OR owner = ?1 ORDER BY id",
        )
        .map_err(error)?;
    let rows = statement
        .query_map(params![owner], read_subscription)
        .map_err(error)?;
    rows.map(|r| r.map_err(error).and_then(subscription))
        .collect()
}

pub(super) fn has_active_subscription(
    c: &Connection,
    owner: &str,
    topic: &str,
) -> StoreResult<bool> {
    let found: Option<i64> = c
        .prepare_cached(
            "SELECT 1 FROM subscriptions WHERE owner = ?1 AND topic = ?2 AND status = ?3 LIMIT 1",
        )
        .map_err(error)?
        .query_row(
            params![owner, topic, SubscriptionStatus::Active.as_str()],
            |r| r.get(0),
        )
        .optional()
        .map_err(error)?;
    Ok(found.is_some())
}

pub(super) fn allocate_event_number(c: &Connection, id: &str) -> StoreResult<u64> {
    let number: Option<i64> = query_row(
        c,
        "UPDATE subscriptions SET events_since_start = events_since_start + 1 WHERE id = ?1
             RETURNING events_since_start",
        params![id],
        |r| r.get(0),
    )
    .optional()
    .map_err(error)?;
    number
        .map(uint)
        .ok_or_else(|| StoreError::NotFound(format!("Subscription/{id}")))
}

pub(super) fn append_event(c: &Connection, event: &EventRecord) -> StoreResult<()> {
    exec(
        c,
        "INSERT INTO events (subscription_id, event_number, state, record) VALUES (?1, ?2, ?3, ?4)",
        params![
            event.subscription_id,
            int(event.event_number)?,
            event.state.as_str(),
            to_json(event)?
        ],
    )
    .map_err(|e| {
        insert_error(
            e,
            format!(
                "event {} of Subscription/{}",
                event.event_number, event.subscription_id
            ),
        )
    })?;
    Ok(())
}

pub(super) fn events(
    c: &Connection,
    id: &str,
    since: u64,
    until: Option<u64>,
) -> StoreResult<Vec<EventRecord>> {
    let until = until.map(int).transpose()?.unwrap_or(i64::MAX);
    let mut statement = c
        .prepare_cached(
            "SELECT state, record FROM events WHERE subscription_id = ?1 AND event_number >= ?2
             AND event_number <= ?3 ORDER BY event_number",
        )
        .map_err(error)?;
    let rows = statement
        .query_map(params![id, int(since)?, until], read_event)
        .map_err(error)?;
    rows.map(|r| r.map_err(error).and_then(event)).collect()
}

fn read_event(row: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String)> {
    Ok((row.get(0)?, row.get(1)?))
}

/// The state column is the truth; the JSON keeps the state the event was logged with.
fn event(raw: (String, String)) -> StoreResult<EventRecord> {
    let (state, record) = raw;
    let mut event: EventRecord = from_json(&record)?;
    event.state = EventState::from_code(&state)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown event state `{state}`")))?;
    Ok(event)
}

pub(super) fn transition_event(
    c: &Connection,
    id: &str,
    number: u64,
    from: EventState,
    to: EventState,
) -> StoreResult<bool> {
    let changed = c
        .prepare_cached(
            "UPDATE events SET state = ?4 WHERE subscription_id = ?1 AND event_number = ?2
             AND state = ?3",
        )
        .map_err(error)?
        .execute(params![id, int(number)?, from.as_str(), to.as_str()])
        .map_err(error)?;
    Ok(changed == 1)
}

pub(super) fn unsettled_events(c: &Connection, id: &str) -> StoreResult<Vec<EventRecord>> {
    let mut statement = c
        .prepare_cached(
            "SELECT state, record FROM events WHERE subscription_id = ?1
             AND state IN ('pending', 'outbox') ORDER BY event_number",
        )
        .map_err(error)?;
    let rows = statement
        .query_map(params![id], read_event)
        .map_err(error)?;
    rows.map(|r| r.map_err(error).and_then(event)).collect()
}

pub(super) fn subscriptions_with_unsettled_events(c: &Connection) -> StoreResult<Vec<String>> {
    let mut statement = c
        .prepare_cached(
            "SELECT DISTINCT subscription_id FROM events WHERE state IN ('pending', 'outbox')
             ORDER BY subscription_id",
        )
        .map_err(error)?;
    let rows = statement
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(error)?;
    rows.map(|r| r.map_err(error)).collect()
}

// ---- authorization codes, refresh tokens, keys ----

pub(super) fn insert_code(c: &Connection, code: &AuthorizationCodeRecord) -> StoreResult<()> {
    exec(
        c,
        "INSERT INTO authorization_codes (code_hash, launch_id, consumed, record)
         VALUES (?1, ?2, ?3, ?4)",
        params![
            code.code_hash,
            code.launch_id,
            code.consumed,
            to_json(code)?
        ],
    )
    .map_err(|e| insert_error(e, "authorization code"))?;
    Ok(())
}

pub(super) fn consume_code(
    c: &Connection,
    hash: &str,
) -> StoreResult<Option<AuthorizationCodeRecord>> {
    let found: Option<(bool, String)> = query_row(
        c,
        "SELECT consumed, record FROM authorization_codes WHERE code_hash = ?1",
        params![hash],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
    .map_err(error)?;
    let Some((consumed, record)) = found else {
        return Ok(None);
    };
    let mut code: AuthorizationCodeRecord = from_json(&record)?;
    code.consumed = consumed;
    exec(
        c,
        "UPDATE authorization_codes SET consumed = 1 WHERE code_hash = ?1",
        params![hash],
    )
    .map_err(error)?;
    Ok(Some(code))
}

pub(super) fn insert_refresh_token(c: &Connection, t: &RefreshTokenRecord) -> StoreResult<()> {
    exec(
        c,
        "INSERT INTO refresh_tokens (token_hash, family_id, launch_id, revoked, record)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            t.token_hash,
            t.family_id,
            t.launch_id,
            t.revoked,
            to_json(t)?
        ],
    )
    .map_err(|e| insert_error(e, "refresh token"))?;
    Ok(())
}

pub(super) fn get_refresh_token(
    c: &Connection,
    hash: &str,
) -> StoreResult<Option<RefreshTokenRecord>> {
    let found: Option<(bool, String)> = query_row(
        c,
        "SELECT revoked, record FROM refresh_tokens WHERE token_hash = ?1",
        params![hash],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
    .map_err(error)?;
    found
        .map(|(revoked, record)| {
            let mut token: RefreshTokenRecord = from_json(&record)?;
            token.revoked = revoked;
            Ok(token)
        })
        .transpose()
}

/// `column` is one of the fixed key columns, never caller text.
pub(super) fn revoke_refresh_tokens(
    c: &Connection,
    column: &'static str,
    value: &str,
) -> StoreResult<u64> {
    let n = exec(
        c,
        &format!("UPDATE refresh_tokens SET revoked = 1 WHERE {column} = ?1 AND revoked = 0"),
        params![value],
    )
    .map_err(error)?;
    Ok(n as u64)
}

pub(super) fn revoke_launch_grants(c: &Connection, launch_id: &str) -> StoreResult<u64> {
    let codes = exec(
        c,
        "DELETE FROM authorization_codes WHERE launch_id = ?1",
        params![launch_id],
    )
    .map_err(error)?;
    let tokens = revoke_refresh_tokens(c, "launch_id", launch_id)?;
    Ok(codes as u64 + tokens)
}

pub(super) fn put_signing_key(c: &Connection, key: &SigningKeyRecord) -> StoreResult<()> {
    exec(
        c,
        "INSERT OR REPLACE INTO signing_keys (kid, created_at, record) VALUES (?1, ?2, ?3)",
        params![key.kid, key.created_at.to_rfc3339(), to_json(key)?],
    )
    .map_err(error)?;
    Ok(())
}

pub(super) fn signing_keys(c: &Connection) -> StoreResult<Vec<SigningKeyRecord>> {
    records(
        c,
        "SELECT record FROM signing_keys ORDER BY created_at, kid",
        [],
    )
}

pub(super) fn delete_signing_key(c: &Connection, kid: &str) -> StoreResult<bool> {
    let deleted =
        exec(c, "DELETE FROM signing_keys WHERE kid = ?1", params![kid]).map_err(error)?;
    Ok(deleted > 0)
}

// ---- clients registered at run time and the audit log (REQ OPS-05) ----

pub(super) fn put_client(c: &Connection, client: &ClientRecord) -> StoreResult<()> {
    exec(
        c,
        "INSERT OR REPLACE INTO clients (client_id, disabled, record) VALUES (?1, ?2, ?3)",
        params![client.client_id, client.disabled, to_json(client)?],
    )
    .map_err(error)?;
    Ok(())
}

pub(super) fn get_client(c: &Connection, client_id: &str) -> StoreResult<Option<ClientRecord>> {
    record_opt(
        c,
        "SELECT record FROM clients WHERE client_id = ?1",
        params![client_id],
    )
}

pub(super) fn list_clients(c: &Connection) -> StoreResult<Vec<ClientRecord>> {
    records(c, "SELECT record FROM clients ORDER BY client_id", [])
}

pub(super) fn append_audit_event(
    c: &Connection,
    time: DateTime<Utc>,
    event_json: &str,
) -> StoreResult<()> {
    exec(
        c,
        "INSERT INTO audit_events (time, record) VALUES (?1, ?2)",
        params![time.timestamp_millis(), event_json],
    )
    .map_err(error)?;
    Ok(())
}

pub(super) fn audit_events(
    c: &Connection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: u64,
) -> StoreResult<Vec<String>> {
    let mut statement = c
        .prepare_cached(
            "SELECT record FROM audit_events WHERE time >= ?1 AND time < ?2
             ORDER BY time, seq LIMIT ?3",
        )
        .map_err(error)?;
    let rows = statement
        .query_map(
            params![from.timestamp_millis(), to.timestamp_millis(), int(limit)?],
            |r| r.get::<_, String>(0),
        )
        .map_err(error)?;
    rows.map(|r| r.map_err(error)).collect()
}

// ---- revoked token families and one-time `jti`s (REQ IDP-05) ----

pub(super) fn revoke_access_family(
    c: &Connection,
    family_id: &str,
    expires_at: DateTime<Utc>,
) -> StoreResult<()> {
    exec(
        c,
        "INSERT INTO revoked_families (family_id, expires_at) VALUES (?1, ?2)
         ON CONFLICT (family_id) DO UPDATE SET expires_at = MAX(expires_at, excluded.expires_at)",
        params![family_id, expires_at.timestamp_millis()],
    )
    .map_err(error)?;
    Ok(())
}

pub(super) fn access_family_revoked(
    c: &Connection,
    family_id: &str,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    query_row(
        c,
        "SELECT EXISTS (SELECT 1 FROM revoked_families WHERE family_id = ?1 AND expires_at > ?2)",
        params![family_id, now.timestamp_millis()],
        |r| r.get(0),
    )
    .map_err(error)
}

pub(super) fn record_jti(
    c: &Connection,
    issuer: &str,
    jti: &str,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    // One statement: a live record leaves the row as it is and changes nothing.
    let changed = exec(
        c,
        "INSERT INTO used_jtis (issuer, jti, expires_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (issuer, jti) DO UPDATE SET expires_at = excluded.expires_at
             WHERE used_jtis.expires_at <= ?4",
        params![
            issuer,
            jti,
            expires_at.timestamp_millis(),
            now.timestamp_millis()
        ],
    )
    .map_err(error)?;
    Ok(changed == 1)
}

pub(super) fn purge_expired_auth_records(c: &Connection, now: DateTime<Utc>) -> StoreResult<u64> {
    let now = now.timestamp_millis();
    let families = exec(
        c,
        "DELETE FROM revoked_families WHERE expires_at <= ?1",
        params![now],
    )
    .map_err(error)?;
    let jtis = exec(
        c,
        "DELETE FROM used_jtis WHERE expires_at <= ?1",
        params![now],
    )
    .map_err(error)?;
    Ok((families + jtis) as u64)
}
