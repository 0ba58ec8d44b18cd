//! The PostgreSQL schema as numbered migrations (REQ CLU-05). Each is applied once, in order,
//! in its own transaction, under an advisory lock so instances starting together never race;
//! `halo_schema_migrations` records which are in. Resources and records are kept as the bytes
//! and JSON text they came as (not `jsonb`, which would reorder keys and rewrite decimals).

/// The advisory lock key that serialises migrations (`'HALO'` as an integer).
pub(super) const MIGRATION_LOCK: i64 = 0x4841_4c4f;

/// `(version, SQL)`, in order. Never edit one that has shipped: add the next.
pub(super) const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "
CREATE TABLE resources (
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    version BIGINT NOT NULL,
    last_updated TEXT NOT NULL,
    launch_id TEXT,
    json BYTEA NOT NULL,
    PRIMARY KEY (resource_type, id)
);
CREATE INDEX resources_by_launch ON resources (launch_id);
CREATE TABLE resource_refs (
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    reference TEXT NOT NULL,
    PRIMARY KEY (resource_type, id, reference)
);
CREATE INDEX resource_refs_by_target ON resource_refs (reference);
CREATE TABLE launches (
    launch_id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX launches_by_expiry ON launches (expires_at);
CREATE TABLE subscriptions (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    topic TEXT NOT NULL,
    status TEXT NOT NULL,
    events_since_start BIGINT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX subscriptions_by_owner ON subscriptions (owner, topic, status);
CREATE TABLE events (
    subscription_id TEXT NOT NULL,
    event_number BIGINT NOT NULL,
    state TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (subscription_id, event_number)
);
CREATE INDEX events_unsettled ON events (subscription_id, event_number)
    WHERE state IN ('pending', 'outbox');
CREATE TABLE authorization_codes (
    code_hash TEXT PRIMARY KEY,
    launch_id TEXT,
    consumed BOOLEAN NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX authorization_codes_by_launch ON authorization_codes (launch_id);
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family_id TEXT NOT NULL,
    launch_id TEXT,
    revoked BOOLEAN NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_by_launch ON refresh_tokens (launch_id);
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    record TEXT NOT NULL
);
",
    ),
    (
        2,
        // Family revocations and one-time token ids, shared by every instance (REQ IDP-05).
        "
CREATE TABLE revoked_families (
    family_id TEXT PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX revoked_families_by_expiry ON revoked_families (expires_at);
CREATE TABLE used_jtis (
    issuer TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (issuer, jti)
);
CREATE INDEX used_jtis_by_expiry ON used_jtis (expires_at);
",
    ),
    (
        4,
        // Websocket binding tokens, which instance holds which socket, the requests that ask
        // it to write a logged event (REQ CLU-03), and asynchronous jobs (REQ CLU-02).
        "
CREATE TABLE binding_tokens (
    token_hash TEXT PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX binding_tokens_by_expiry ON binding_tokens (expires_at);
CREATE TABLE socket_holders (
    subscription_id TEXT NOT NULL,
    instance TEXT NOT NULL,
    lease_until TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (subscription_id, instance)
);
CREATE TABLE socket_deliveries (
    subscription_id TEXT NOT NULL,
    event_number BIGINT NOT NULL,
    deadline TIMESTAMPTZ NOT NULL,
    delivered BOOLEAN NOT NULL,
    PRIMARY KEY (subscription_id, event_number)
);
CREATE TABLE async_jobs (
    id TEXT PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX async_jobs_by_expiry ON async_jobs (expires_at);
",
    ),
    (
        5,
        // Clients registered at run time and the audit log (REQ OPS-05). Signing keys sealed
        // under a key-encryption key (REQ IDP-06) need no SQL: the key record is JSON.
        "
CREATE TABLE clients (
    client_id TEXT PRIMARY KEY,
    disabled BOOLEAN NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE audit_events (
    seq BIGSERIAL PRIMARY KEY,
    time TIMESTAMPTZ NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX audit_events_by_time ON audit_events (time, seq);
",
    ),
    (
        7,
        // Past versions of resources (vread and `_history`), gone with the resource.
        "
CREATE TABLE resource_versions (
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    version BIGINT NOT NULL,
    last_updated TEXT NOT NULL,
    launch_id TEXT,
    json BYTEA NOT NULL,
    PRIMARY KEY (resource_type, id, version)
);
CREATE INDEX resource_versions_by_launch ON resource_versions (launch_id);
",
    ),
];
