//! The SQLite schema. Indexed columns are the ones queries filter on; the rest of each record is
//! one JSON document, so adding a field needs no migration.

/// The schema version written to `PRAGMA user_version`.
pub(super) const VERSION: i64 = 7;

pub(super) const CREATE: &str = "
CREATE TABLE IF NOT EXISTS resources (
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    last_updated TEXT NOT NULL,
    launch_id TEXT,
    json BLOB NOT NULL,
    PRIMARY KEY (resource_type, id)
);
CREATE INDEX IF NOT EXISTS resources_by_launch ON resources (launch_id);
CREATE TABLE IF NOT EXISTS resource_versions (
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    last_updated TEXT NOT NULL,
    launch_id TEXT,
    json BLOB NOT NULL,
    PRIMARY KEY (resource_type, id, version)
);
CREATE INDEX IF NOT EXISTS resource_versions_by_launch ON resource_versions (launch_id);
CREATE TABLE IF NOT EXISTS resource_refs (
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    reference TEXT NOT NULL,
    PRIMARY KEY (resource_type, id, reference)
);
CREATE INDEX IF NOT EXISTS resource_refs_by_target ON resource_refs (reference);
CREATE TABLE IF NOT EXISTS launches (
    launch_id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS launches_by_expiry ON launches (expires_at);
CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    topic TEXT NOT NULL,
    status TEXT NOT NULL,
    events_since_start INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS subscriptions_by_owner ON subscriptions (owner, topic, status);
CREATE TABLE IF NOT EXISTS events (
    subscription_id TEXT NOT NULL,
    event_number INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'committed',
    record TEXT NOT NULL,
    PRIMARY KEY (subscription_id, event_number)
);
CREATE TABLE IF NOT EXISTS authorization_codes (
    code_hash TEXT PRIMARY KEY,
    launch_id TEXT,
    consumed INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS authorization_codes_by_launch ON authorization_codes (launch_id);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family_id TEXT NOT NULL,
    launch_id TEXT,
    revoked INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS refresh_tokens_by_family ON refresh_tokens (family_id);
CREATE INDEX IF NOT EXISTS refresh_tokens_by_launch ON refresh_tokens (launch_id);
CREATE TABLE IF NOT EXISTS signing_keys (
    kid TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS revoked_families (
    family_id TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS revoked_families_by_expiry ON revoked_families (expires_at);
CREATE TABLE IF NOT EXISTS used_jtis (
    issuer TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (issuer, jti)
);
CREATE INDEX IF NOT EXISTS used_jtis_by_expiry ON used_jtis (expires_at);
CREATE TABLE IF NOT EXISTS binding_tokens (
    token_hash TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS binding_tokens_by_expiry ON binding_tokens (expires_at);
CREATE TABLE IF NOT EXISTS socket_holders (
    subscription_id TEXT NOT NULL,
    instance TEXT NOT NULL,
    lease_until INTEGER NOT NULL,
    PRIMARY KEY (subscription_id, instance)
);
CREATE TABLE IF NOT EXISTS socket_deliveries (
    subscription_id TEXT NOT NULL,
    event_number INTEGER NOT NULL,
    deadline INTEGER NOT NULL,
    delivered INTEGER NOT NULL,
    PRIMARY KEY (subscription_id, event_number)
);
CREATE TABLE IF NOT EXISTS async_jobs (
    id TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS async_jobs_by_expiry ON async_jobs (expires_at);
CREATE TABLE IF NOT EXISTS clients (
    client_id TEXT PRIMARY KEY,
    disabled INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_events_by_time ON audit_events (time, seq);
";

/// Upgrades of an existing database: `(version reached, SQL)`, applied in order to every
/// version above the database's.
pub(super) const UPGRADES: &[(i64, &str)] = &[
    (
        2,
        // Events carry their state between delivery and commit (D-09, D-16).
        "ALTER TABLE events ADD COLUMN state TEXT NOT NULL DEFAULT 'committed';",
    ),
    // Version 3 only adds tables (family revocations and `jti` records, REQ IDP-05), which
    // `CREATE` makes on any database that lacks them.
    (3, ""),
    // Version 4 only adds tables (binding tokens, socket holders, socket delivery requests
    // and asynchronous jobs, REQ CLU-02, CLU-03), which `CREATE` makes on any database that
    // lacks them.
    (4, ""),
    // Version 5 only adds tables (clients registered at run time and the audit log, REQ
    // OPS-05), which `CREATE` makes on any database that lacks them. Signing keys sealed
    // under a key-encryption key (REQ IDP-06) need no SQL: the key record is JSON, and the
    // server seals keys stored in clear on its first start with a key-encryption key.
    (5, ""),
    // Version 7 only adds the past versions of resources (vread and `_history`).
    (7, ""),
];

/// Indexes on columns an upgrade may have added, created after the upgrades.
pub(super) const INDEXES: &str = "
CREATE INDEX IF NOT EXISTS events_unsettled ON events (subscription_id, event_number)
    WHERE state IN ('pending', 'outbox');
";
