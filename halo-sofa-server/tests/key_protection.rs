//! Token-signing keys protected at rest and rotated across instances (REQ IDP-06): the keys
//! are sealed in a real SQLite file (and a PostgreSQL database), a wrong key-encryption key
//! stops the start, a rotation made by one SoFA reaches a second one on the same store without
//! a restart, and a replaced key leaves the JWKS once its last token has expired. Real HTTP on
//! loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::Utc;
use halo_sofa_server::auth::{
    AesGcmKek, AuthServer, AutoApprove, ClientAuthentication, ClientRegistry, KeyProtector, KeyUse,
    RegisteredClient,
};
use halo_sofa_server::clock::ManualClock;
use halo_sofa_server::config::{AuthConfig, SofaConfig};
use halo_sofa_server::sofa::Sofa;
use halo_sofa_server::store::{PostgresOptions, PostgresStore, SqliteStore, Store};
use reqwest::StatusCode;
use serde_json::Value;
use support::{TempDir, postgres_store, postgres_url};

const CLIENT: &str = "resource-server";
const SECRET: &str = "resource-server-secret-0123456789";

fn kek(byte: u8) -> Arc<AesGcmKek> {
    Arc::new(AesGcmKek::from_bytes(&[byte; 32]).unwrap())
}

/// One SoFA instance: the authorization server behind real HTTP.
struct Instance {
    /// Where it listens (the FHIR base on its own address).
    local: String,
    auth: AuthServer,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The settings of an instance; development mode only lets the issuer be http on loopback
/// (a key-encryption key is configured unless a test leaves it out on purpose).
fn auth_config(kek: Option<Arc<AesGcmKek>>, development_mode: bool) -> AuthConfig {
    AuthConfig {
        development_mode,
        key_protector: kek.map(|k| k as Arc<dyn KeyProtector>),
        key_activation_delay: Duration::from_secs(60),
        // Short, so the test sees another instance's rotation quickly; the point is that it
        // arrives without a restart.
        key_refresh_interval: Duration::from_millis(200),
        ..AuthConfig::default()
    }
}

/// Starts an instance on `store`. `issuer` is the public base every instance of one SoFA
/// shares (behind a load balancer); the first instance's own address when absent.
async fn instance(
    store: Arc<dyn Store>,
    issuer: Option<&str>,
    config: AuthConfig,
    clock: Arc<ManualClock>,
) -> Result<(Instance, String), String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let local = format!("http://{}/fhir", listener.local_addr().unwrap());
    let issuer = issuer.map_or_else(|| local.clone(), str::to_string);
    let mut sofa = SofaConfig::new(&issuer).unwrap();
    sofa.oauth = Some(AuthServer::oauth_uris(&issuer));
    let clients = ClientRegistry::new().with(
        RegisteredClient::new(CLIENT, ClientAuthentication::secret(SECRET))
            .scopes("system/Patient.rs"),
    );
    let auth = AuthServer::start(
        &sofa,
        config,
        store.clone(),
        clock.clone(),
        clients,
        Arc::new(AutoApprove::new("dr-a", None)),
    )
    .await
    .map_err(|e| e.to_string())?;
    let app = axum::Router::new().nest(
        "/fhir",
        Sofa::builder(sofa)
            .store(store)
            .clock(clock)
            .authorization(&auth)
            .build()
            .unwrap()
            .router(),
    );
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Ok((Instance { local, auth, task }, issuer))
}

impl Instance {
    /// A `client_credentials` access token from this instance, over HTTP.
    async fn token(&self) -> String {
        let answer: Value = reqwest::Client::new()
            .post(format!("{}/auth/token", self.local))
            .basic_auth(CLIENT, Some(SECRET))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "system/Patient.rs"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["access_token"].as_str().unwrap().to_string()
    }

    /// Whether this instance's introspection endpoint calls the token active.
    async fn active(&self, token: &str) -> bool {
        let response = reqwest::Client::new()
            .post(format!("{}/auth/introspect", self.local))
            .basic_auth(CLIENT, Some(SECRET))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json::<Value>().await.unwrap()["active"] == true
    }

    /// The key ids of the JWKS this instance serves.
    async fn jwks_kids(&self) -> Vec<String> {
        let jwks: Value = reqwest::get(format!("{}/auth/jwks", self.local))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_string())
            .collect()
    }
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

async fn stored_keys(store: &dyn Store) -> Vec<halo_sofa_server::store::SigningKeyRecord> {
    let mut tx = store.begin_read().await.unwrap();
    let keys = tx.signing_keys().await.unwrap();
    tx.rollback().await.unwrap();
    keys
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The private key `sealed` holds, opened with `kek`, appears nowhere in `stored`: not as
/// bytes, not as base64 of either kind (PEM is base64). 32 bytes (or characters) from inside
/// the key suffice to find any copy.
async fn assert_key_not_in(stored: &[u8], kek: &AesGcmKek, kid: &str, sealed: &str) {
    let der = kek.open(kid, sealed).await.unwrap();
    assert!(der.len() > 64);
    assert!(!contains(stored, b"PRIVATE KEY"));
    let inner = &der[der.len() - 48..der.len() - 16];
    assert!(!contains(stored, inner), "key bytes of {kid} in clear");
    for encoded in [STANDARD.encode(&der), URL_SAFE_NO_PAD.encode(&der)] {
        assert!(
            !contains(stored, &encoded.as_bytes()[8..40]),
            "{kid} as base64"
        );
    }
}

// REQ: IDP-06
#[tokio::test]
async fn the_sqlite_file_holds_no_pem_and_no_private_key_bytes_in_clear() {
    let dir = TempDir::new("sealed-keys");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.db()).await.unwrap());
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let (sofa, _) = instance(store.clone(), None, auth_config(Some(kek(1)), true), clock)
        .await
        .unwrap();
    // The keys sign: a token over HTTP verifies at the introspection endpoint.
    let token = sofa.token().await;
    assert!(sofa.active(&token).await);

    let records = stored_keys(store.as_ref()).await;
    assert_eq!(records.len(), 2);
    let mut file = std::fs::read(dir.db()).unwrap();
    if let Ok(wal) = std::fs::read(dir.0.join("sofa.db-wal")) {
        file.extend(wal);
    }
    assert!(!contains(&file, b"PRIVATE KEY"));
    for record in &records {
        assert!(record.private_key_pem.is_empty());
        let sealed = record.sealed_private_key.as_deref().unwrap();
        assert!(
            contains(&file, sealed.as_bytes()),
            "the sealed key is stored"
        );
        assert_key_not_in(&file, &kek(1), &record.kid, sealed).await;
    }
}

// REQ: IDP-06
#[tokio::test]
async fn a_wrong_or_missing_key_encryption_key_stops_the_start_with_a_clear_error() {
    let dir = TempDir::new("wrong-kek");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.db()).await.unwrap());
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let first = instance(
        store.clone(),
        None,
        auth_config(Some(kek(1)), true),
        clock.clone(),
    )
    .await
    .unwrap();
    drop(first);
    let reopened: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.db()).await.unwrap());
    let Err(wrong) = instance(
        reopened.clone(),
        None,
        auth_config(Some(kek(2)), true),
        clock.clone(),
    )
    .await
    else {
        panic!("a wrong key-encryption key was accepted");
    };
    assert!(wrong.contains("key-encryption key"), "{wrong}");
    assert!(
        wrong.contains(&kek(1).key_id()),
        "names the key needed: {wrong}"
    );
    // No key-encryption key outside development mode: refused before any key is touched.
    let Err(missing) = instance(
        reopened.clone(),
        None,
        auth_config(None, false),
        clock.clone(),
    )
    .await
    else {
        panic!("keys in clear outside development mode");
    };
    assert!(missing.contains("key-encryption key"), "{missing}");
    // In development mode without one: the sealed keys cannot be read, said as much.
    let Err(development) = instance(reopened, None, auth_config(None, true), clock).await else {
        panic!("sealed keys loaded without their key-encryption key");
    };
    assert!(development.contains("encrypted"), "{development}");
}

/// Two instances on one store: a rotation at the first is published by both, signs at the
/// first after the activation delay, and its tokens verify at the second.
async fn rotation_reaches_the_other_instance(first_store: Arc<dyn Store>, second: Arc<dyn Store>) {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let (a, issuer) = instance(
        first_store.clone(),
        None,
        auth_config(Some(kek(5)), true),
        clock.clone(),
    )
    .await
    .unwrap();
    let (b, _) = instance(
        second,
        Some(&issuer),
        auth_config(Some(kek(5)), true),
        clock.clone(),
    )
    .await
    .unwrap();
    let before = a.token().await;
    assert!(b.active(&before).await);
    let old = kid(&before);

    a.auth.rotate_keys(KeyUse::AccessToken).await.unwrap();
    let new = a
        .jwks_kids()
        .await
        .into_iter()
        .find(|k| !b.auth.jwks().to_string().contains(k.as_str()))
        .expect("the first instance publishes the new key at once");
    // The second publishes it too, without a restart, within its refresh interval.
    let mut seen = false;
    for _ in 0..50 {
        if b.jwks_kids().await.contains(&new) {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        seen,
        "the second instance never published the rotated-in key"
    );
    // Published, not yet signing.
    assert_eq!(kid(&a.token().await), old);
    clock.advance(chrono::Duration::seconds(61));
    let after = a.token().await;
    assert_eq!(kid(&after), new);
    assert!(
        b.active(&after).await,
        "the new key's token verifies at the second"
    );
    assert!(b.active(&before).await, "the old key still verifies");
    // The second signs with the new key too.
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(kid(&b.token().await), new);

    // Once the last token the old key may have signed has expired, it leaves both JWKS and
    // the store, and its tokens are refused.
    clock.advance(chrono::Duration::seconds(3600));
    tokio::time::sleep(Duration::from_millis(250)).await;
    for instance in [&a, &b] {
        let kids = instance.jwks_kids().await;
        assert!(!kids.contains(&old), "{kids:?}");
        assert!(kids.contains(&new));
        assert!(!instance.active(&before).await);
    }
    let stored = stored_keys(first_store.as_ref()).await;
    assert!(stored.iter().all(|r| r.kid != old));
    assert_eq!(stored.len(), 2);
}

// REQ: IDP-06
#[tokio::test]
async fn a_rotation_by_one_sofa_reaches_a_second_on_the_same_sqlite_file() {
    let dir = TempDir::new("rotation");
    let first: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.db()).await.unwrap());
    let second: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.db()).await.unwrap());
    rotation_reaches_the_other_instance(first, second).await;
}

// REQ: IDP-06
#[tokio::test]
async fn a_rotation_by_one_sofa_reaches_a_second_on_the_same_postgres_database() {
    let Some(url) = postgres_url() else {
        return;
    };
    // Two pools on one schema: two processes.
    let schema = format!("t_key_rotation_{}", uuid::Uuid::new_v4().simple());
    let mut pools: Vec<Arc<dyn Store>> = Vec::new();
    for _ in 0..2 {
        let options = PostgresOptions {
            schema: Some(schema.clone()),
            max_connections: 4,
            ..PostgresOptions::default()
        };
        pools.push(Arc::new(
            PostgresStore::connect_with(&url, options).await.unwrap(),
        ));
    }
    let second = pools.pop().unwrap();
    rotation_reaches_the_other_instance(pools.pop().unwrap(), second).await;
}

// REQ: IDP-06
#[tokio::test]
async fn postgres_keeps_the_keys_sealed() {
    let Some(store) = postgres_store("sealed_keys").await else {
        return;
    };
    let store: Arc<dyn Store> = Arc::new(store);
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let (sofa, _) = instance(store.clone(), None, auth_config(Some(kek(7)), true), clock)
        .await
        .unwrap();
    assert!(sofa.active(&sofa.token().await).await);
    for record in stored_keys(store.as_ref()).await {
        // The record column holds this JSON text.
        let column = serde_json::to_string(&record).unwrap();
        assert!(record.private_key_pem.is_empty());
        let sealed = record.sealed_private_key.as_deref().unwrap();
        assert!(sealed.starts_with("halo-aes256gcm-v1."));
        assert_key_not_in(column.as_bytes(), &kek(7), &record.kid, sealed).await;
    }
}

// REQ: IDP-06
#[tokio::test]
async fn keys_stored_in_clear_are_sealed_on_the_first_start_with_a_key_encryption_key() {
    let dir = TempDir::new("migrate-keys");
    let clock = Arc::new(ManualClock::new(Utc::now()));
    // An earlier start without a key-encryption key (development mode) left the keys in clear.
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.db()).await.unwrap());
    let (clear, issuer) = instance(store.clone(), None, auth_config(None, true), clock.clone())
        .await
        .unwrap();
    let before = clear.token().await;
    let mut kids = clear.jwks_kids().await;
    kids.sort();
    assert!(
        stored_keys(store.as_ref())
            .await
            .iter()
            .all(|r| r.private_key_pem.contains("PRIVATE KEY"))
    );
    drop(clear);

    // The first start with one seals them: same keys, same JWKS, earlier tokens still verify.
    let reopened: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.db()).await.unwrap());
    let (sealed, _) = instance(
        reopened.clone(),
        Some(&issuer),
        auth_config(Some(kek(4)), true),
        clock,
    )
    .await
    .unwrap();
    let mut after = sealed.jwks_kids().await;
    after.sort();
    assert_eq!(after, kids);
    assert!(sealed.active(&before).await);
    assert!(sealed.active(&sealed.token().await).await);
    for record in stored_keys(reopened.as_ref()).await {
        assert!(record.private_key_pem.is_empty());
        let stored = serde_json::to_string(&record).unwrap();
        let sealed_key = record.sealed_private_key.as_deref().unwrap();
        assert_key_not_in(stored.as_bytes(), &kek(4), &record.kid, sealed_key).await;
    }
}

// REQ: IDP-06, RS-02
#[tokio::test]
async fn a_token_that_verified_before_is_refused_once_its_key_has_left_the_store() {
    let dir = TempDir::new("key-removed");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.db()).await.unwrap());
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let (sofa, _) = instance(store.clone(), None, auth_config(Some(kek(3)), true), clock)
        .await
        .unwrap();
    let token = sofa.token().await;
    // Verified, and its signature remembered.
    assert!(sofa.active(&token).await);
    assert!(sofa.active(&token).await);
    // The key is removed out of band (an operator answering a compromise): the same text,
    // unexpired, is refused once the ring is re-read (the refresh interval, 200 ms here).
    let old = kid(&token);
    let mut tx = store.begin().await.unwrap();
    assert!(tx.delete_signing_key(&old).await.unwrap());
    tx.commit().await.unwrap();
    let mut refused = false;
    for _ in 0..50 {
        if !sofa.active(&token).await {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "a remembered signature outlived its key");
}
