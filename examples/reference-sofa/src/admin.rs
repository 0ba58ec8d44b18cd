//! `reference-sofa admin ...`: the operator's command line (REQ OPS-05). It works on the store
//! the configuration names, like the server, so running instances see every change without a
//! restart: clients are read through a short cache, the signing keys are re-read at a short
//! interval, launches and the audit log are rows.
//!
//! Every command prints JSON (one object a line for lists and the audit export), for scripts.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use halo_sofa_server::auth::{KeyRing, KeyUse, Rotation};
use halo_sofa_server::config::{SofaConfig, url_allowed};
use halo_sofa_server::sofa::Sofa;
use halo_sofa_server::store::{ClientCredentials, ClientRecord, Store};
use serde_json::{Value, json};

use crate::registry::{check_jwks, key_protector};
use crate::{Client, Config, Error, FHIR_PATH};

/// The most rows a list prints, and the most audit events an export reads at once.
const LIST_LIMIT: u64 = 10_000;

/// What `reference-sofa admin` does.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Registered OAuth clients (in the store; the TOML's are listed too).
    #[command(subcommand)]
    Clients(ClientCommand),
    /// Token-signing keys.
    #[command(subcommand)]
    Keys(KeyCommand),
    /// Launch contexts.
    #[command(subcommand)]
    Launches(LaunchCommand),
    /// Removes what has expired now: launches with their resources and grants, revocation and
    /// `jti` records, and signing keys whose last token has expired.
    Purge,
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
}

/// `admin clients ...`.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Registers a client. A confidential client with `--secret` gets a random secret,
    /// printed once; only its hash is stored.
    Register(Register),
    /// Lists the clients (never a secret or its hash).
    List,
    /// Disables a client (registered here or in the TOML): it gets no token from then on.
    Disable {
        /// The `client_id`.
        #[arg(long)]
        id: String,
    },
}

/// `admin clients register`.
#[derive(Debug, Args)]
pub struct Register {
    /// The `client_id`.
    #[arg(long)]
    id: String,
    /// The scopes it may be granted (space-separated).
    #[arg(long)]
    scopes: String,
    /// A confidential client with a generated secret (client_secret_basic / _post).
    #[arg(long, conflicts_with_all = ["jwks_file", "jwks_url"])]
    secret: bool,
    /// A private_key_jwt client with the JWK Set in this file (public keys only).
    #[arg(long, conflicts_with = "jwks_url")]
    jwks_file: Option<std::path::PathBuf>,
    /// A private_key_jwt client with its JWK Set at this URL.
    #[arg(long)]
    jwks_url: Option<String>,
    /// An exact redirect URI (repeat for several).
    #[arg(long = "redirect-uri")]
    redirect_uris: Vec<String>,
    /// The App Catalog entry id of the app.
    #[arg(long)]
    app_id: Option<String>,
    /// The app's launch URL.
    #[arg(long)]
    launch_url: Option<String>,
}

/// `admin keys ...`.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Rotates the signing keys: the new key is published at once and signs after
    /// `lifetimes.key_activation_secs` (or `--activation-delay-secs`); the old one stays in
    /// the JWKS until its last token has expired.
    Rotate {
        /// Which keys.
        #[arg(long = "use", value_enum, default_value = "all")]
        key_use: KeysToRotate,
        /// Overrides the activation delay (0 signs with the new key at once, for a key
        /// believed leaked).
        #[arg(long)]
        activation_delay_secs: Option<u64>,
    },
    /// Lists the key ids, algorithms and rotation times (never a private key).
    List,
}

/// Which signing keys to rotate.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KeysToRotate {
    /// The ES256 access-token key.
    Access,
    /// The RS256 id_token key.
    Id,
    /// Both.
    All,
}

/// `admin launches ...`.
#[derive(Debug, Subcommand)]
pub enum LaunchCommand {
    /// Lists the launch contexts (id, client, user, patient, expiry).
    List,
    /// Removes a launch with its resources and grants, as `$clear-context` does.
    Clear {
        /// The launch id.
        #[arg(long)]
        id: String,
    },
}

/// `admin audit ...`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Prints the audit events with `from <= time < to` as JSON lines.
    Export {
        /// The start (RFC 3339); 24 hours ago when absent.
        #[arg(long)]
        from: Option<DateTime<Utc>>,
        /// The end, excluded (RFC 3339); now when absent.
        #[arg(long)]
        to: Option<DateTime<Utc>>,
    },
}

/// Runs an admin command against the store `config` names; output goes to `out`.
pub async fn run(config: Config, command: Command, out: &mut dyn Write) -> Result<(), Error> {
    let (store, _) = crate::open_store(&config).await?;
    match command {
        Command::Clients(ClientCommand::Register(register)) => {
            let line = register_client(&config, store.as_ref(), register).await?;
            print_line(out, &line)
        }
        Command::Clients(ClientCommand::List) => {
            for line in list_clients(&config, store.as_ref()).await? {
                print_line(out, &line)?;
            }
            Ok(())
        }
        Command::Clients(ClientCommand::Disable { id }) => {
            disable_client(&config, store.as_ref(), &id).await?;
            print_line(out, &json!({"client_id": id, "disabled": true}))
        }
        Command::Keys(KeyCommand::Rotate {
            key_use,
            activation_delay_secs,
        }) => {
            let line = rotate_keys(&config, store.as_ref(), key_use, activation_delay_secs).await?;
            print_line(out, &line)
        }
        Command::Keys(KeyCommand::List) => {
            let mut tx = store.begin_read().await.map_err(store_error)?;
            let keys = tx.signing_keys().await.map_err(store_error)?;
            tx.rollback().await.map_err(store_error)?;
            for key in keys {
                print_line(
                    out,
                    &json!({"kid": key.kid, "alg": key.algorithm, "created_at": key.created_at,
                        "not_before": key.not_before, "expires_at": key.expires_at,
                        "retired": key.retired, "sealed": key.sealed_private_key.is_some()}),
                )?;
            }
            Ok(())
        }
        Command::Launches(LaunchCommand::List) => {
            let mut tx = store.begin_read().await.map_err(store_error)?;
            let launches = tx.list_launches(LIST_LIMIT).await.map_err(store_error)?;
            tx.rollback().await.map_err(store_error)?;
            for launch in launches {
                print_line(
                    out,
                    &json!({"launch_id": launch.launch_id, "client_id": launch.client_id,
                        "user": launch.user, "patient": launch.patient,
                        "app_id": launch.app_id, "expires_at": launch.expires_at,
                        "expired": launch.is_expired(Utc::now())}),
                )?;
            }
            Ok(())
        }
        Command::Launches(LaunchCommand::Clear { id }) => {
            let (sofa, audit_writer) = offline_sofa(&config, store)?;
            let cleared = sofa.context_manager().clear_launch_by_operator(&id).await;
            finish_audit(sofa, audit_writer).await;
            let cleared = cleared.map_err(|e| Error::Store(e.to_string()))?;
            if !cleared {
                return Err(Error::Config(format!("no launch {id}")));
            }
            print_line(out, &json!({"launch_id": id, "cleared": true}))
        }
        Command::Purge => {
            let line = purge(&config, store).await?;
            print_line(out, &line)
        }
        Command::Audit(AuditCommand::Export { from, to }) => {
            let to = to.unwrap_or_else(Utc::now);
            let from = from.unwrap_or_else(|| to - chrono::Duration::hours(24));
            export_audit(store.as_ref(), from, to, LIST_LIMIT, out).await
        }
    }
}

/// Prints the audit events of `[from, to)` as JSON lines, read `page` at a time so a long
/// range never holds the whole log in memory. A page ends at some event's time; the next
/// starts at that millisecond and skips the events of it already printed (the store orders by
/// time, then by append order, so they come first again).
async fn export_audit(
    store: &dyn Store,
    mut from: DateTime<Utc>,
    to: DateTime<Utc>,
    page: u64,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let millis = |event: &str| {
        serde_json::from_str::<Value>(event)
            .ok()
            .and_then(|v| v["time"].as_str()?.parse::<DateTime<Utc>>().ok())
            .map(|t| t.timestamp_millis())
    };
    // Events at the start of the range already printed.
    let mut skip: usize = 0;
    loop {
        let limit = page.saturating_add(skip as u64);
        let mut tx = store.begin_read().await.map_err(store_error)?;
        let events = tx
            .audit_events(from, to, limit)
            .await
            .map_err(store_error)?;
        tx.rollback().await.map_err(store_error)?;
        for event in events.iter().skip(skip) {
            writeln!(out, "{event}").map_err(Error::Io)?;
        }
        if (events.len() as u64) < limit {
            return Ok(());
        }
        let Some(last) = events.last().and_then(|e| millis(e)) else {
            return Ok(());
        };
        let next = DateTime::<Utc>::from_timestamp_millis(last)
            .unwrap_or(to)
            // Never before the range asked for (a start finer than a millisecond).
            .max(from);
        skip = if next > from {
            events.iter().filter(|e| millis(e) == Some(last)).count()
        } else {
            // The whole page is within the range's first millisecond.
            events.len()
        };
        from = next;
    }
}

fn print_line(out: &mut dyn Write, value: &Value) -> Result<(), Error> {
    writeln!(out, "{value}").map_err(Error::Io)
}

fn store_error(e: halo_sofa_server::store::StoreError) -> Error {
    Error::Store(e.to_string())
}

/// A random secret: 32 bytes, base64url (256 bits; a hash of it is enough to store).
fn new_secret() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|_| Error::Config("no randomness available".into()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

async fn register_client(
    config: &Config,
    store: &dyn Store,
    register: Register,
) -> Result<Value, Error> {
    let id = register.id.trim().to_string();
    if id.is_empty() || id.len() > 128 || id.chars().any(char::is_control) {
        return Err(Error::Config(
            "the client id must be 1 to 128 printable characters".into(),
        ));
    }
    if config.clients.iter().any(|c| c.id == id) {
        return Err(Error::Config(format!(
            "client {id} is configured in the TOML"
        )));
    }
    let mut secret = None;
    let credentials = if register.secret {
        let generated = new_secret()?;
        let credentials = ClientCredentials::secret(&generated);
        secret = Some(generated);
        credentials
    } else if let Some(file) = &register.jwks_file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| Error::Config(format!("{}: {e}", file.display())))?;
        let jwks: Value = serde_json::from_str(&text)
            .map_err(|e| Error::Config(format!("{}: {e}", file.display())))?;
        check_jwks(&jwks).map_err(Error::Config)?;
        ClientCredentials::Jwks { jwks }
    } else if let Some(url) = register.jwks_url {
        if !url_allowed(&url, config.development_mode) {
            return Err(Error::Config(
                "the JWKS URL must be https (http only on loopback in development mode)".into(),
            ));
        }
        ClientCredentials::JwksUrl { jwks_url: url }
    } else {
        ClientCredentials::Public
    };
    let record = ClientRecord {
        client_id: id.clone(),
        credentials,
        redirect_uris: register.redirect_uris,
        scopes: register.scopes,
        app_id: register.app_id,
        launch_url: register.launch_url,
        disabled: false,
        updated_at: Utc::now(),
    };
    let mut tx = store.begin().await.map_err(store_error)?;
    if tx.get_client(&id).await.map_err(store_error)?.is_some() {
        return Err(Error::Config(format!("client {id} is already registered")));
    }
    tx.put_client(record).await.map_err(store_error)?;
    tx.commit().await.map_err(store_error)?;
    let mut line = json!({"client_id": id, "registered": true});
    if let Some(secret) = secret {
        // Shown this once: the store keeps only its hash.
        line["client_secret"] = Value::String(secret);
    }
    Ok(line)
}

/// A configured client as a store record (its secret hashed).
fn record_of(client: &Client) -> ClientRecord {
    let credentials = match (&client.secret, &client.jwks, &client.jwks_url) {
        (Some(secret), _, _) => ClientCredentials::secret(secret),
        (None, Some(jwks), _) => ClientCredentials::Jwks { jwks: jwks.clone() },
        (None, None, Some(url)) => ClientCredentials::JwksUrl {
            jwks_url: url.clone(),
        },
        (None, None, None) => ClientCredentials::Public,
    };
    ClientRecord {
        client_id: client.id.clone(),
        credentials,
        redirect_uris: client.redirect_uris.clone(),
        scopes: client.scopes.clone(),
        app_id: client.app_id.clone(),
        launch_url: client.launch_url.clone(),
        disabled: false,
        updated_at: Utc::now(),
    }
}

fn describe(record: &ClientRecord, source: &str) -> Value {
    let method = match &record.credentials {
        ClientCredentials::Public => "none",
        ClientCredentials::SecretSha256 { .. } => "client_secret_basic",
        ClientCredentials::Jwks { .. } | ClientCredentials::JwksUrl { .. } => "private_key_jwt",
    };
    let mut line = json!({
        "client_id": record.client_id, "source": source, "disabled": record.disabled,
        "token_endpoint_auth_method": method, "scopes": record.scopes,
        "redirect_uris": record.redirect_uris, "app_id": record.app_id,
    });
    if let ClientCredentials::JwksUrl { jwks_url } = &record.credentials {
        line["jwks_url"] = Value::String(jwks_url.clone());
    }
    line
}

async fn list_clients(config: &Config, store: &dyn Store) -> Result<Vec<Value>, Error> {
    let mut tx = store.begin_read().await.map_err(store_error)?;
    let stored = tx.list_clients().await.map_err(store_error)?;
    tx.rollback().await.map_err(store_error)?;
    let mut lines: Vec<Value> = stored.iter().map(|r| describe(r, "store")).collect();
    // A configured client the store overrides (disabled) is listed once, as the store has it.
    for client in &config.clients {
        if !stored.iter().any(|r| r.client_id == client.id) {
            lines.push(describe(&record_of(client), "config"));
        }
    }
    Ok(lines)
}

async fn disable_client(config: &Config, store: &dyn Store, id: &str) -> Result<(), Error> {
    let mut tx = store.begin().await.map_err(store_error)?;
    let mut record = match tx.get_client(id).await.map_err(store_error)? {
        Some(record) => record,
        // A TOML client is disabled by a store record that overrides it.
        None => config
            .clients
            .iter()
            .find(|c| c.id == id)
            .map(record_of)
            .ok_or_else(|| Error::Config(format!("no client {id}")))?,
    };
    record.disabled = true;
    record.updated_at = Utc::now();
    tx.put_client(record).await.map_err(store_error)?;
    tx.commit().await.map_err(store_error)
}

async fn rotate_keys(
    config: &Config,
    store: &dyn Store,
    which: KeysToRotate,
    activation_delay_secs: Option<u64>,
) -> Result<Value, Error> {
    let protector = key_protector(config, &|name| std::env::var(name).ok())?;
    let rotation = Rotation {
        activation_delay: Duration::from_secs(
            activation_delay_secs.unwrap_or(config.lifetimes.key_activation_secs),
        ),
        token_lifetime: Duration::from_secs(config.lifetimes.access_token_secs),
    };
    let uses = match which {
        KeysToRotate::Access => vec![KeyUse::AccessToken],
        KeysToRotate::Id => vec![KeyUse::IdToken],
        KeysToRotate::All => vec![KeyUse::AccessToken, KeyUse::IdToken],
    };
    let now = Utc::now();
    let mut ring = None;
    for key_use in uses {
        ring = Some(
            KeyRing::rotate(store, protector.as_deref(), key_use, now, rotation)
                .await
                .map_err(|e| Error::Auth(e.to_string()))?,
        );
    }
    let kids = ring.map(|r| r.kids()).unwrap_or_default();
    Ok(json!({
        "rotated": true,
        "kids": kids,
        "signs_from": now + chrono::Duration::from_std(rotation.activation_delay).unwrap_or_default(),
    }))
}

/// The context manager alone, on the store, for the commands that remove launches (no
/// listener, no authorization server), with its audit events going to the store.
fn offline_sofa(
    config: &Config,
    store: Arc<dyn Store>,
) -> Result<(Sofa, tokio::task::JoinHandle<()>), Error> {
    let root = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listen));
    let mut sofa_config = SofaConfig::new(format!("{}{FHIR_PATH}", root.trim_end_matches('/')))
        .map_err(|e| Error::Config(e.to_string()))?;
    sofa_config.launch_ttl = Duration::from_secs(config.lifetimes.launch_secs);
    let (audit, writer) = halo_sofa_server::audit::StoreAuditSink::spawn(store.clone());
    let sofa = Sofa::builder(sofa_config)
        .store(store)
        .audit(Arc::new(audit))
        .build()
        .map_err(|e| Error::Config(e.to_string()))?;
    Ok((sofa, writer))
}

/// Lets the audit writer store what the command recorded before the process ends: it stops
/// once the sofa (the last holder of its queue) is gone.
async fn finish_audit(sofa: Sofa, writer: tokio::task::JoinHandle<()>) {
    drop(sofa);
    if tokio::time::timeout(Duration::from_secs(10), writer)
        .await
        .is_err()
    {
        tracing::warn!("audit events of this command may not be stored");
    }
}

async fn purge(config: &Config, store: Arc<dyn Store>) -> Result<Value, Error> {
    let (sofa, audit_writer) = offline_sofa(config, store.clone())?;
    let launches = sofa.context_manager().purge_expired().await;
    finish_audit(sofa, audit_writer).await;
    let launches = launches.map_err(|e| Error::Store(e.to_string()))?;
    // Reading the keys deletes those whose last token has expired; opening them needs the
    // key-encryption key, as the server does.
    let protector = key_protector(config, &|name| std::env::var(name).ok())?;
    let mut tx = store.begin_read().await.map_err(store_error)?;
    let before = tx.signing_keys().await.map_err(store_error)?;
    tx.rollback().await.map_err(store_error)?;
    let held = KeyRing::from_records(&before, protector.as_deref(), None)
        .await
        .map_err(|e| Error::Auth(e.to_string()))?;
    let after = held
        .reload(store.as_ref(), protector.as_deref(), Utc::now())
        .await
        .map_err(|e| Error::Auth(e.to_string()))?;
    Ok(json!({
        "launches": launches,
        "signing_keys": before.len() - after.kids().len(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use halo_sofa_server::store::MemoryStore;

    // REQ: OPS-05
    #[tokio::test]
    async fn the_audit_export_pages_through_events_of_the_same_millisecond_once_each() {
        let store = MemoryStore::new();
        let t0 = DateTime::<Utc>::from_timestamp_millis(1_800_000_000_000).unwrap();
        let at = |ms: i64, micros: i64| {
            t0 + chrono::Duration::milliseconds(ms) + chrono::Duration::microseconds(micros)
        };
        // Three events within one millisecond straddle the page boundary.
        let times = [at(0, 0), at(1, 100), at(1, 200), at(1, 300), at(2, 0)];
        let mut tx = store.begin().await.unwrap();
        for (n, time) in times.iter().enumerate() {
            let event = json!({"time": time, "n": n}).to_string();
            tx.append_audit_event(*time, event).await.unwrap();
        }
        tx.commit().await.unwrap();
        let export = |from, page| {
            let store = store.clone();
            async move {
                let mut out = Vec::new();
                export_audit(&store, from, at(3, 0), page, &mut out)
                    .await
                    .unwrap();
                String::from_utf8(out)
                    .unwrap()
                    .lines()
                    .map(|l| {
                        serde_json::from_str::<Value>(l).unwrap()["n"]
                            .as_u64()
                            .unwrap()
                    })
                    .collect::<Vec<u64>>()
            }
        };
        assert_eq!(export(t0, 2).await, [0, 1, 2, 3, 4]);
        assert_eq!(export(t0, 1).await, [0, 1, 2, 3, 4]);
        // Starting inside the crowded millisecond: each once, none before the start.
        assert_eq!(export(at(1, 0), 1).await, [1, 2, 3, 4]);
        assert_eq!(export(at(1, 150), 1).await, [2, 3, 4]);
    }
}
