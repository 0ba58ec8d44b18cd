//! [`ClusterOps`] on SQLite. One process uses the database, so socket holders and requests
//! are never consulted by the service; they are kept all the same so the contract is one.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::super::meta::{from_json, to_json};
use super::super::meta::{int, uint};
use super::super::{
    AsyncJobRecord, BindingTokenRecord, BoxFuture, ClusterOps, StoreError, StoreResult,
};
use super::SqliteTransaction;
use super::ops::{error, exec, query_row};

fn millis(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

fn insert_binding_token(
    c: &Connection,
    hash: &str,
    record: &BindingTokenRecord,
) -> StoreResult<()> {
    let json = to_json(record)?;
    let inserted = exec(
        c,
        "INSERT INTO binding_tokens (token_hash, expires_at, record) VALUES (?1, ?2, ?3)
             ON CONFLICT (token_hash) DO NOTHING",
        params![hash, millis(record.expires_at), json],
    )
    .map_err(error)?;
    if inserted == 0 {
        return Err(StoreError::AlreadyExists("binding token".into()));
    }
    Ok(())
}

fn take_binding_token(
    c: &Connection,
    hash: &str,
    now: DateTime<Utc>,
) -> StoreResult<Option<BindingTokenRecord>> {
    let row: Option<(i64, String)> = query_row(
        c,
        "DELETE FROM binding_tokens WHERE token_hash = ?1 RETURNING expires_at, record",
        params![hash],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
    .map_err(error)?;
    match row {
        Some((expires_at, record)) if expires_at > millis(now) => from_json(&record).map(Some),
        _ => Ok(None),
    }
}

/// Inserts (`insert`) or replaces an asynchronous job; whether a row was written.
fn write_async_job(c: &Connection, job: &AsyncJobRecord, insert: bool) -> StoreResult<bool> {
    let sql = if insert {
        "INSERT INTO async_jobs (id, expires_at, record) VALUES (?1, ?2, ?3)
         ON CONFLICT (id) DO NOTHING"
    } else {
        "UPDATE async_jobs SET expires_at = ?2, record = ?3 WHERE id = ?1"
    };
    let written = exec(
        c,
        sql,
        params![job.id, millis(job.expires_at), to_json(job)?],
    )
    .map_err(error)?;
    if insert && written == 0 {
        return Err(StoreError::AlreadyExists(format!("async job {}", job.id)));
    }
    Ok(written == 1)
}

fn purge(c: &Connection, now: DateTime<Utc>) -> StoreResult<u64> {
    let now = millis(now);
    let mut purged = 0;
    for sql in [
        "DELETE FROM binding_tokens WHERE expires_at <= ?1",
        "DELETE FROM socket_holders WHERE lease_until <= ?1",
        "DELETE FROM socket_deliveries WHERE deadline <= ?1",
        "DELETE FROM async_jobs WHERE expires_at <= ?1",
    ] {
        purged += exec(c, sql, params![now]).map_err(error)? as u64;
    }
    Ok(purged)
}

impl ClusterOps for SqliteTransaction {
    fn insert_binding_token<'a>(
        &'a mut self,
        token_hash: &'a str,
        record: BindingTokenRecord,
    ) -> BoxFuture<'a, StoreResult<()>> {
        let hash = token_hash.to_owned();
        Box::pin(self.call(move |c| insert_binding_token(c, &hash, &record)))
    }

    fn take_binding_token<'a>(
        &'a mut self,
        token_hash: &'a str,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<Option<BindingTokenRecord>>> {
        let hash = token_hash.to_owned();
        Box::pin(self.call(move |c| take_binding_token(c, &hash, now)))
    }

    fn hold_socket<'a>(
        &'a mut self,
        subscription_id: &'a str,
        instance: &'a str,
        lease_until: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<()>> {
        let (id, instance) = (subscription_id.to_owned(), instance.to_owned());
        Box::pin(self.call(move |c| {
            exec(
                c,
                "INSERT INTO socket_holders (subscription_id, instance, lease_until)
                 VALUES (?1, ?2, ?3)
                 ON CONFLICT (subscription_id, instance) DO UPDATE
                 SET lease_until = excluded.lease_until",
                params![id, instance, millis(lease_until)],
            )
            .map(|_| ())
            .map_err(error)
        }))
    }

    fn release_socket<'a>(
        &'a mut self,
        subscription_id: &'a str,
        instance: &'a str,
    ) -> BoxFuture<'a, StoreResult<()>> {
        let (id, instance) = (subscription_id.to_owned(), instance.to_owned());
        Box::pin(self.call(move |c| {
            exec(
                c,
                "DELETE FROM socket_holders WHERE subscription_id = ?1 AND instance = ?2",
                params![id, instance],
            )
            .map(|_| ())
            .map_err(error)
        }))
    }

    fn socket_holders<'a>(
        &'a mut self,
        subscription_id: &'a str,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<Vec<String>>> {
        let id = subscription_id.to_owned();
        Box::pin(self.call(move |c| {
            let mut statement = c
                .prepare_cached(
                    "SELECT instance FROM socket_holders
                     WHERE subscription_id = ?1 AND lease_until > ?2 ORDER BY instance",
                )
                .map_err(error)?;
            let rows = statement
                .query_map(params![id, millis(now)], |r| r.get(0))
                .map_err(error)?;
            rows.collect::<Result<Vec<String>, _>>().map_err(error)
        }))
    }

    fn request_socket_delivery<'a>(
        &'a mut self,
        subscription_id: &'a str,
        event_number: u64,
        deadline: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<()>> {
        let id = subscription_id.to_owned();
        Box::pin(self.call(move |c| {
            exec(
                c,
                "INSERT INTO socket_deliveries (subscription_id, event_number, deadline, delivered)
                 VALUES (?1, ?2, ?3, 0)
                 ON CONFLICT (subscription_id, event_number) DO UPDATE
                 SET deadline = excluded.deadline, delivered = 0",
                params![id, int(event_number)?, millis(deadline)],
            )
            .map(|_| ())
            .map_err(error)
        }))
    }

    fn socket_delivery_requests<'a>(
        &'a mut self,
        instance: &'a str,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<Vec<(String, u64)>>> {
        let instance = instance.to_owned();
        Box::pin(self.call(move |c| {
            let mut statement = c
                .prepare_cached(
                    "SELECT d.subscription_id, d.event_number FROM socket_deliveries d
                     JOIN socket_holders h
                       ON h.subscription_id = d.subscription_id AND h.instance = ?1
                     WHERE d.delivered = 0 AND d.deadline > ?2
                     ORDER BY d.subscription_id, d.event_number",
                )
                .map_err(error)?;
            let rows = statement
                .query_map(params![instance, millis(now)], |r| {
                    Ok((r.get::<_, String>(0)?, uint(r.get::<_, i64>(1)?)))
                })
                .map_err(error)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(error)
        }))
    }

    fn confirm_socket_delivery<'a>(
        &'a mut self,
        subscription_id: &'a str,
        event_number: u64,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        let id = subscription_id.to_owned();
        Box::pin(self.call(move |c| {
            exec(
                c,
                "UPDATE socket_deliveries SET delivered = 1
                 WHERE subscription_id = ?1 AND event_number = ?2",
                params![id, int(event_number)?],
            )
            .map(|n| n == 1)
            .map_err(error)
        }))
    }

    fn socket_delivered<'a>(
        &'a mut self,
        subscription_id: &'a str,
        event_number: u64,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        let id = subscription_id.to_owned();
        Box::pin(self.call(move |c| {
            let delivered: Option<i64> = query_row(
                c,
                "SELECT delivered FROM socket_deliveries
                     WHERE subscription_id = ?1 AND event_number = ?2",
                params![id, int(event_number)?],
                |r| r.get(0),
            )
            .optional()
            .map_err(error)?;
            Ok(delivered == Some(1))
        }))
    }

    fn purge_cluster_records(&mut self, now: DateTime<Utc>) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(self.call(move |c| purge(c, now)))
    }

    fn insert_async_job(&mut self, job: AsyncJobRecord) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(self.call(move |c| write_async_job(c, &job, true).map(|_| ())))
    }

    fn get_async_job<'a>(
        &'a mut self,
        id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<AsyncJobRecord>>> {
        let id = id.to_owned();
        Box::pin(self.call(move |c| {
            let record: Option<String> = query_row(
                c,
                "SELECT record FROM async_jobs WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()
            .map_err(error)?;
            record.as_deref().map(from_json).transpose()
        }))
    }

    fn update_async_job(&mut self, job: AsyncJobRecord) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(self.call(move |c| write_async_job(c, &job, false)))
    }

    fn delete_async_job<'a>(&'a mut self, id: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        let id = id.to_owned();
        Box::pin(self.call(move |c| {
            exec(c, "DELETE FROM async_jobs WHERE id = ?1", params![id])
                .map(|n| n == 1)
                .map_err(error)
        }))
    }

    fn try_lead<'a>(&'a mut self, task: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        // One process owns the database: it leads every task.
        let _ = task;
        Box::pin(async { Ok(true) })
    }
}
