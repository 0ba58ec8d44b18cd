//! The authorization server's signing keys (REQ AS-02, IDP-06, D-12): ES256 for access tokens,
//! RS256 for id_tokens, generated on first start and kept in the store so every instance signs
//! and verifies alike.
//!
//! Private keys are sealed before they reach the store (REQ IDP-06): a [`KeyProtector`] seals
//! and opens them. The default, [`AesGcmKek`], encrypts them with AES-256-GCM under a
//! key-encryption key the operator keeps outside the database and the configuration file; a
//! KMS implements the same trait with its encrypt and decrypt calls (envelope encryption), so
//! the key-encryption key never leaves it. Without a protector the keys are stored in clear,
//! which only development mode accepts.
//!
//! Rotation publishes first: the new key enters the JWKS at once and signs only after an
//! activation delay, so verifiers that cache the JWKS know it before they see a token signed
//! by it. The keys it replaces keep verifying until the last token they may have signed has
//! expired, then leave the JWKS and the store. Every instance re-reads the key records at a
//! short interval (and at once when a token names an unknown key id), so a rotation made by
//! one process reaches all of them without a restart.

use std::fmt;
use std::time::Duration;

use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Header};
use serde::Serialize;
use serde_json::{Value, json};

use crate::protect::{KeyProtector, ProtectError};
use crate::store::{SigningKeyRecord, Store, StoreError};

/// Which tokens a key signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    /// Access tokens: ES256 (P-256).
    AccessToken,
    /// id_tokens: RS256 (RSA 2048).
    IdToken,
}

impl KeyUse {
    fn algorithm(self) -> Algorithm {
        match self {
            KeyUse::AccessToken => Algorithm::ES256,
            KeyUse::IdToken => Algorithm::RS256,
        }
    }

    /// The JWS algorithm name (`ES256`, `RS256`).
    pub fn name(self) -> &'static str {
        match self {
            KeyUse::AccessToken => "ES256",
            KeyUse::IdToken => "RS256",
        }
    }
}

/// When a rotation's new key starts signing and how long tokens live (REQ IDP-06).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// The new key is published at once and signs from `now + activation_delay`.
    pub activation_delay: Duration,
    /// The longest lifetime of a token the keys sign: a replaced key leaves the JWKS this long
    /// after the new key starts signing.
    pub token_lifetime: Duration,
}

/// A parsed private key, kept for the life of the key: parsing and checking a key, and for RSA
/// setting up its blinding, happen once, not for every signature.
#[derive(Clone)]
enum Signer {
    /// ES256: P-256, the fixed-length `r || s` signature JWS uses (RFC 7518 §3.4).
    Es256(Arc<EcdsaKeyPair>),
    /// RS256: RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256(Arc<RsaKeyPair>),
}

impl Signer {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let failed = |_| KeyError::Key("could not sign".into());
        // aws-lc-rs draws its own randomness; the argument is for ring compatibility.
        let rng = SystemRandom::new();
        match self {
            Signer::Es256(pair) => Ok(pair.sign(&rng, message).map_err(failed)?.as_ref().to_vec()),
            Signer::Rs256(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature)
                    .map_err(failed)?;
                Ok(signature)
            }
        }
    }
}

/// One key, ready to sign (when current) and verify.
#[derive(Clone)]
struct LoadedKey {
    kid: String,
    algorithm: Algorithm,
    signer: Signer,
    /// The JWS header of its tokens (`typ`, `alg`, `kid`), base64url-encoded once.
    encoded_header: String,
    decoding: DecodingKey,
    public_jwk: Value,
    created_at: DateTime<Utc>,
    /// When it starts signing.
    not_before: DateTime<Utc>,
    /// When it stops verifying and is dropped.
    expires_at: Option<DateTime<Utc>>,
    retired: bool,
}

impl LoadedKey {
    fn live(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }
}

/// Every signing key of the server: the ones that sign, the published ones that will, and the
/// replaced ones that still verify.
#[derive(Clone)]
pub struct KeyRing {
    keys: Vec<LoadedKey>,
}

impl fmt::Debug for KeyRing {
    // Private keys stay out of Debug output (SEC-01): only the key ids are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field(
                "kids",
                &self.keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Why keys could not be generated, loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored key is unreadable, or generation failed.
    #[error("signing key problem: {0}")]
    Key(String),
    /// The keys cannot be sealed or opened: no key-encryption key where one is needed, the
    /// wrong one, or a sealed key altered (REQ IDP-06).
    #[error("signing key protection: {0}")]
    Protection(String),
}

impl From<ProtectError> for KeyError {
    fn from(error: ProtectError) -> KeyError {
        KeyError::Protection(error.0)
    }
}

impl KeyRing {
    /// Loads the keys from the store, generating an ES256 and an RS256 key on first start
    /// (REQ AS-02). With a `protector`, new keys are stored sealed and keys stored in clear by
    /// an earlier version are sealed now (REQ IDP-06); without one, keys are stored in clear
    /// and sealed keys are refused.
    pub async fn load_or_generate(
        store: &dyn Store,
        protector: Option<&dyn KeyProtector>,
        now: DateTime<Utc>,
    ) -> Result<KeyRing, KeyError> {
        let mut tx = store.begin().await?;
        let mut all = Vec::new();
        let mut changed = false;
        for mut record in tx.signing_keys().await? {
            if record.expires_at.is_some_and(|at| at <= now) {
                tx.delete_signing_key(&record.kid).await?;
                changed = true;
                continue;
            }
            if let Some(protector) = protector
                && record.sealed_private_key.is_none()
            {
                // A key from before keys were sealed: seal it, and the clear text leaves the
                // record (a backup taken before still holds it: rotate after this start).
                let der = unpem(&record.private_key_pem)?;
                record.sealed_private_key = Some(protector.seal(&record.kid, &der).await?);
                record.private_key_pem = String::new();
                tx.put_signing_key(record.clone()).await?;
                tracing::warn!(
                    kid = %record.kid,
                    "a signing key stored in clear is now encrypted; rotate the keys, since \
                     earlier backups hold it in clear"
                );
                changed = true;
            }
            all.push(record);
        }
        for key_use in [KeyUse::AccessToken, KeyUse::IdToken] {
            let has_current = all
                .iter()
                .any(|r| !r.retired && r.algorithm == key_use.name());
            if !has_current {
                let record = generate(key_use, protector, now).await?;
                tx.put_signing_key(record.clone()).await?;
                all.push(record);
                changed = true;
            }
        }
        if changed {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        KeyRing::from_records(&all, protector, None).await
    }

    /// Rotates the key for `key_use` (REQ IDP-06): adds a new key that is published now and
    /// signs from `now + activation_delay`; the keys it replaces keep signing until then and
    /// verifying until `token_lifetime` after it, and are dropped then.
    pub async fn rotate(
        store: &dyn Store,
        protector: Option<&dyn KeyProtector>,
        key_use: KeyUse,
        now: DateTime<Utc>,
        rotation: Rotation,
    ) -> Result<KeyRing, KeyError> {
        let activation = later(now, rotation.activation_delay);
        let drop_at = later(activation, rotation.token_lifetime);
        let mut new = generate(key_use, protector, now).await?;
        new.not_before = Some(activation);
        let mut tx = store.begin().await?;
        for mut record in tx.signing_keys().await? {
            if record.algorithm == key_use.name() && record.expires_at.is_none() {
                record.retired = true;
                record.expires_at = Some(drop_at);
                tx.put_signing_key(record).await?;
            }
        }
        tx.put_signing_key(new).await?;
        let all = tx.signing_keys().await?;
        tx.commit().await?;
        KeyRing::from_records(&all, protector, None).await
    }

    /// Reads the keys again (another process may have rotated them): keys this ring already
    /// holds are reused, so only a new key is decrypted; keys past their expiry are left out
    /// and deleted from the store.
    pub async fn reload(
        &self,
        store: &dyn Store,
        protector: Option<&dyn KeyProtector>,
        now: DateTime<Utc>,
    ) -> Result<KeyRing, KeyError> {
        let records = {
            let mut tx = store.begin_read().await?;
            let records = tx.signing_keys().await?;
            tx.rollback().await?;
            records
        };
        let (expired, live): (Vec<_>, Vec<_>) = records
            .into_iter()
            .partition(|r| r.expires_at.is_some_and(|at| at <= now));
        if !expired.is_empty() {
            let mut tx = store.begin().await?;
            for record in &expired {
                tx.delete_signing_key(&record.kid).await?;
            }
            tx.commit().await?;
        }
        KeyRing::from_records(&live, protector, Some(self)).await
    }

    /// Reads stored keys, opening sealed ones with `protector`; keys `previous` holds are
    /// taken from it rather than opened again.
    pub async fn from_records(
        records: &[SigningKeyRecord],
        protector: Option<&dyn KeyProtector>,
        previous: Option<&KeyRing>,
    ) -> Result<KeyRing, KeyError> {
        let mut keys = Vec::with_capacity(records.len());
        for record in records {
            let known = previous.and_then(|p| p.keys.iter().find(|k| k.kid == record.kid));
            let mut key = match known {
                Some(key) => key.clone(),
                None => load(record, protector).await?,
            };
            key.retired = record.retired;
            key.not_before = record.not_before.unwrap_or(record.created_at);
            key.expires_at = record.expires_at;
            keys.push(key);
        }
        Ok(KeyRing { keys })
    }

    fn current(&self, key_use: KeyUse, now: DateTime<Utc>) -> Result<&LoadedKey, KeyError> {
        // The most recently activated key signs; a published key waits for its activation.
        self.keys
            .iter()
            .filter(|k| k.algorithm == key_use.algorithm() && k.not_before <= now && k.live(now))
            .max_by_key(|k| (k.not_before, k.created_at))
            .ok_or_else(|| KeyError::Key(format!("no current {} key", key_use.name())))
    }

    /// Signs `claims` with the key for `key_use` that is current now; the header names its
    /// `kid`.
    pub fn sign<T: Serialize>(&self, key_use: KeyUse, claims: &T) -> Result<String, KeyError> {
        self.sign_at(key_use, Utc::now(), claims)
    }

    /// Signs `claims` with the key for `key_use` that is current at `now`.
    pub fn sign_at<T: Serialize>(
        &self,
        key_use: KeyUse,
        now: DateTime<Utc>,
        claims: &T,
    ) -> Result<String, KeyError> {
        let key = self.current(key_use, now)?;
        // The JWS compact serialization (RFC 7515 §7.1), signed with the parsed key: what
        // jsonwebtoken::encode does, without parsing the private key again for each token.
        let payload = serde_json::to_vec(claims)
            .map_err(|e| KeyError::Key(format!("could not encode the claims: {e}")))?;
        let mut token =
            String::with_capacity(key.encoded_header.len() + payload.len() * 4 / 3 + 360);
        token.push_str(&key.encoded_header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = key.signer.sign(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok(token)
    }

    /// The verification key for `kid` if it is of the algorithm `key_use` signs with and not
    /// dropped at `now`: a token naming another algorithm for the same key is refused
    /// (algorithm confusion, SEC-05).
    pub(crate) fn verifier(
        &self,
        key_use: KeyUse,
        kid: &str,
        now: DateTime<Utc>,
    ) -> Option<&DecodingKey> {
        self.keys
            .iter()
            .find(|k| k.kid == kid && k.algorithm == key_use.algorithm() && k.live(now))
            .map(|k| &k.decoding)
    }

    /// The public JWKS at `now`: the keys that sign, the published ones that will, and the
    /// replaced ones whose tokens may still be live.
    pub fn jwks(&self, now: DateTime<Utc>) -> Value {
        json!({"keys": self
            .keys
            .iter()
            .filter(|k| k.live(now))
            .map(|k| k.public_jwk.clone())
            .collect::<Vec<_>>()})
    }

    /// The key ids, sorted.
    pub fn kids(&self) -> Vec<String> {
        let mut kids: Vec<String> = self.keys.iter().map(|k| k.kid.clone()).collect();
        kids.sort();
        kids
    }
}

/// `time + duration`, saturating: a configured duration never overflows into a panic.
fn later(time: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(duration)
        .ok()
        .and_then(|d| time.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn key_error(what: &str) -> impl Fn(aws_lc_rs::error::Unspecified) -> KeyError + '_ {
    move |_| KeyError::Key(format!("could not generate the {what} key"))
}

/// The PKCS#8 key `der` as PEM (`PRIVATE KEY`): how a key is stored in clear (development
/// mode only).
fn pem(der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new("PRIVATE KEY", der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// The DER inside a stored PEM key.
fn unpem(text: &str) -> Result<Vec<u8>, KeyError> {
    pem::parse(text)
        .map(pem::Pem::into_contents)
        .map_err(|_| KeyError::Key("a stored key is not PEM".into()))
}

/// A random key id: 16 bytes, base64url.
fn new_kid() -> Result<String, KeyError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|_| KeyError::Key("no randomness".into()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

async fn generate(
    key_use: KeyUse,
    protector: Option<&dyn KeyProtector>,
    now: DateTime<Utc>,
) -> Result<SigningKeyRecord, KeyError> {
    let kid = new_kid()?;
    let (pkcs8, public_jwk) = match key_use {
        KeyUse::AccessToken => {
            let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .map_err(key_error("ES256"))?;
            let pkcs8 = pair.to_pkcs8v1().map_err(key_error("ES256"))?;
            // The public key is the uncompressed point 0x04 || x || y.
            let point = pair.public_key().as_ref();
            if point.len() != 65 {
                return Err(KeyError::Key("unexpected P-256 public key length".into()));
            }
            let jwk = json!({
                "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            });
            (pkcs8.as_ref().to_vec(), jwk)
        }
        KeyUse::IdToken => {
            let pair =
                aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048).map_err(key_error("RS256"))?;
            let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair)
                .map_err(key_error("RS256"))?;
            let public = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
            let jwk = json!({
                "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                "n": URL_SAFE_NO_PAD.encode(&public.n),
                "e": URL_SAFE_NO_PAD.encode(&public.e),
            });
            (pkcs8.as_ref().to_vec(), jwk)
        }
    };
    // Sealed before it reaches the store: the clear key exists only in this process.
    let (private_key_pem, sealed_private_key) = match protector {
        Some(protector) => (String::new(), Some(protector.seal(&kid, &pkcs8).await?)),
        None => (pem(&pkcs8), None),
    };
    Ok(SigningKeyRecord {
        kid,
        algorithm: key_use.name().into(),
        private_key_pem,
        sealed_private_key,
        public_jwk,
        created_at: now,
        retired: false,
        not_before: None,
        expires_at: None,
    })
}

async fn load(
    record: &SigningKeyRecord,
    protector: Option<&dyn KeyProtector>,
) -> Result<LoadedKey, KeyError> {
    let der = match (&record.sealed_private_key, protector) {
        (Some(sealed), Some(protector)) => protector.open(&record.kid, sealed).await?,
        (Some(_), None) => {
            return Err(KeyError::Protection(
                "the signing keys are encrypted: configure the key-encryption key".into(),
            ));
        }
        (None, _) => unpem(&record.private_key_pem)?,
    };
    let field = |name: &str| {
        record
            .public_jwk
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| KeyError::Key(format!("stored key {} lacks {name}", record.kid)))
    };
    let bad = |_| KeyError::Key(format!("stored key {} is unreadable", record.kid));
    let unreadable = |_| KeyError::Key(format!("stored key {} is unreadable", record.kid));
    // aws-lc-rs reads the PKCS#8 it wrote, and checks the key once, here.
    let (algorithm, signer, decoding) = match record.algorithm.as_str() {
        "ES256" => (
            Algorithm::ES256,
            Signer::Es256(Arc::new(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                    .map_err(unreadable)?,
            )),
            DecodingKey::from_ec_components(field("x")?, field("y")?).map_err(bad)?,
        ),
        "RS256" => (
            Algorithm::RS256,
            Signer::Rs256(Arc::new(RsaKeyPair::from_pkcs8(&der).map_err(unreadable)?)),
            DecodingKey::from_rsa_components(field("n")?, field("e")?).map_err(bad)?,
        ),
        other => return Err(KeyError::Key(format!("unsupported key algorithm {other}"))),
    };
    let mut header = Header::new(algorithm);
    header.kid = Some(record.kid.clone());
    header.typ = Some("JWT".into());
    let header = serde_json::to_vec(&header)
        .map_err(|_| KeyError::Key(format!("stored key {} has no header", record.kid)))?;
    Ok(LoadedKey {
        kid: record.kid.clone(),
        algorithm,
        signer,
        encoded_header: URL_SAFE_NO_PAD.encode(header),
        decoding,
        public_jwk: record.public_jwk.clone(),
        created_at: record.created_at,
        not_before: record.not_before.unwrap_or(record.created_at),
        expires_at: record.expires_at,
        retired: record.retired,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AesGcmKek;
    use crate::store::MemoryStore;

    const HOUR: Duration = Duration::from_secs(3600);

    // REQ: AS-02, SEC-01, IDP-06
    #[tokio::test]
    async fn rotation_publishes_first_signs_later_and_drops_the_old_key_after_its_tokens() {
        let store = MemoryStore::new();
        let kek = AesGcmKek::from_bytes(&[9; 32]).unwrap();
        let kek: Option<&dyn KeyProtector> = Some(&kek);
        let t0 = Utc::now();
        let first = KeyRing::load_or_generate(&store, kek, t0).await.unwrap();
        assert_eq!(first.jwks(t0)["keys"].as_array().unwrap().len(), 2);
        let again = KeyRing::load_or_generate(&store, kek, t0).await.unwrap();
        assert_eq!(again.kids(), first.kids());
        let kid_of = |t: &str| jsonwebtoken::decode_header(t).unwrap().kid.unwrap();
        let old = kid_of(
            &first
                .sign_at(KeyUse::AccessToken, t0, &json!({"a": 1}))
                .unwrap(),
        );

        let rotation = Rotation {
            activation_delay: Duration::from_secs(60),
            token_lifetime: HOUR,
        };
        let rotated = KeyRing::rotate(&store, kek, KeyUse::AccessToken, t0, rotation)
            .await
            .unwrap();
        let new = rotated
            .kids()
            .into_iter()
            .find(|k| !first.kids().contains(k))
            .unwrap();
        // Published at once, not signing yet.
        assert_eq!(rotated.jwks(t0)["keys"].as_array().unwrap().len(), 3);
        let sign = |at| {
            kid_of(
                &rotated
                    .sign_at(KeyUse::AccessToken, at, &json!({}))
                    .unwrap(),
            )
        };
        assert_eq!(sign(t0), old);
        let active = t0 + chrono::Duration::seconds(60);
        assert_eq!(sign(active), new);
        // The old key verifies until its last token (signed at `active`) has expired.
        let last_token = active + chrono::Duration::seconds(3599);
        assert!(
            rotated
                .verifier(KeyUse::AccessToken, &old, last_token)
                .is_some()
        );
        let gone = active + chrono::Duration::seconds(3600);
        assert!(rotated.verifier(KeyUse::AccessToken, &old, gone).is_none());
        assert!(!rotated.jwks(gone).to_string().contains(&old));
        // A reload then deletes it from the store.
        let reloaded = rotated.reload(&store, kek, gone).await.unwrap();
        assert!(!reloaded.kids().contains(&old));
        let mut tx = store.begin().await.unwrap();
        let stored = tx.signing_keys().await.unwrap();
        assert_eq!(stored.len(), 2);
        assert!(stored.iter().all(|r| r.private_key_pem.is_empty()));
        assert!(rotated.sign(KeyUse::IdToken, &json!({"a": 1})).is_ok());
        // SEC-01: no key material in Debug output.
        assert!(!format!("{rotated:?}").contains("PRIVATE"));
        assert!(!format!("{stored:?}").contains("halo-aes256gcm"));
    }

    // REQ: AS-02, AS-07, SEC-05
    #[tokio::test]
    async fn tokens_signed_with_the_parsed_keys_verify_with_jsonwebtoken() {
        let store = MemoryStore::new();
        let now = Utc::now();
        KeyRing::load_or_generate(&store, None, now).await.unwrap();
        // Read back from the store: the clear keys are PEM, parsed once.
        let ring = KeyRing::from_records(
            &store.begin().await.unwrap().signing_keys().await.unwrap(),
            None,
            None,
        )
        .await
        .unwrap();
        let claims = json!({"iss": "https://sofa.example.org/fhir", "sub": "dr-a", "n": 1});
        for (key_use, alg) in [
            (KeyUse::AccessToken, Algorithm::ES256),
            (KeyUse::IdToken, Algorithm::RS256),
        ] {
            let token = ring.sign_at(key_use, now, &claims).unwrap();
            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!(header.alg, alg);
            assert_eq!(header.typ.as_deref(), Some("JWT"));
            let kid = header.kid.unwrap();
            let key = ring.verifier(key_use, &kid, now).unwrap();
            let mut validation = jsonwebtoken::Validation::new(alg);
            validation.required_spec_claims.clear();
            validation.validate_exp = false;
            let decoded: Value = jsonwebtoken::decode(&token, key, &validation)
                .unwrap()
                .claims;
            assert_eq!(decoded, claims);
            // A changed payload no longer verifies: the signature covers header and payload.
            let mut parts: Vec<&str> = token.split('.').collect();
            let forged = URL_SAFE_NO_PAD
                .encode(br#"{"iss":"https://sofa.example.org/fhir","sub":"dr-b","n":1}"#);
            parts[1] = &forged;
            assert!(jsonwebtoken::decode::<Value>(&parts.join("."), key, &validation).is_err());
            // And the other algorithm's key does not verify it (SEC-05).
            let other = if key_use == KeyUse::AccessToken {
                KeyUse::IdToken
            } else {
                KeyUse::AccessToken
            };
            assert!(ring.verifier(other, &kid, now).is_none());
        }
    }

    // REQ: IDP-06
    #[tokio::test]
    async fn clear_keys_are_sealed_on_the_first_start_with_a_key_encryption_key() {
        let store = MemoryStore::new();
        let now = Utc::now();
        let clear = KeyRing::load_or_generate(&store, None, now).await.unwrap();
        let kek = AesGcmKek::from_bytes(&[3; 32]).unwrap();
        let sealed = KeyRing::load_or_generate(&store, Some(&kek), now)
            .await
            .unwrap();
        assert_eq!(sealed.kids(), clear.kids());
        let mut tx = store.begin().await.unwrap();
        for record in tx.signing_keys().await.unwrap() {
            assert!(record.private_key_pem.is_empty());
            assert!(record.sealed_private_key.is_some());
        }
        drop(tx);
        // Sealed keys and no key-encryption key: a clear refusal.
        let refused = KeyRing::load_or_generate(&store, None, now)
            .await
            .unwrap_err();
        assert!(
            refused.to_string().contains("key-encryption key"),
            "{refused}"
        );
    }
}
