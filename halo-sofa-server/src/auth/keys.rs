//! The authorization server's signing keys (REQ AS-02, D-12): ES256 for access tokens, RS256 for
//! id_tokens, generated on first start and kept in the store so every instance signs and
//! verifies alike. Rotation adds a new key and retires the old one, which keeps verifying and
//! stays in the JWKS until it is removed.

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::Serialize;
use serde_json::{Value, json};

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

    fn name(self) -> &'static str {
        match self {
            KeyUse::AccessToken => "ES256",
            KeyUse::IdToken => "RS256",
        }
    }
}

/// One key, ready to sign (when current) and verify.
#[derive(Clone)]
struct LoadedKey {
    kid: String,
    algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    public_jwk: Value,
    retired: bool,
}

/// Every signing key of the server: the current ES256 and RS256 keys and the retired ones that
/// still verify.
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
}

impl KeyRing {
    /// Loads the keys from the store, generating an ES256 and an RS256 key on first start
    /// (REQ AS-02).
    pub async fn load_or_generate(
        store: &dyn Store,
        now: DateTime<Utc>,
    ) -> Result<KeyRing, KeyError> {
        let mut tx = store.begin().await?;
        let records = tx.signing_keys().await?;
        let mut added = false;
        let mut all = records.clone();
        for key_use in [KeyUse::AccessToken, KeyUse::IdToken] {
            let has_current = records
                .iter()
                .any(|r| !r.retired && r.algorithm == key_use.name());
            if !has_current {
                let record = generate(key_use, now)?;
                tx.put_signing_key(record.clone()).await?;
                all.push(record);
                added = true;
            }
        }
        if added {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        KeyRing::from_records(&all)
    }

    /// Retires the current key for `key_use` and adds a fresh one (key rotation). The retired
    /// key keeps verifying and stays in the JWKS.
    pub async fn rotate(
        store: &dyn Store,
        key_use: KeyUse,
        now: DateTime<Utc>,
    ) -> Result<KeyRing, KeyError> {
        let mut tx = store.begin().await?;
        for mut record in tx.signing_keys().await? {
            if !record.retired && record.algorithm == key_use.name() {
                record.retired = true;
                tx.put_signing_key(record).await?;
            }
        }
        tx.put_signing_key(generate(key_use, now)?).await?;
        let all = tx.signing_keys().await?;
        tx.commit().await?;
        KeyRing::from_records(&all)
    }

    /// Reads stored keys.
    pub fn from_records(records: &[SigningKeyRecord]) -> Result<KeyRing, KeyError> {
        let keys = records.iter().map(load).collect::<Result<Vec<_>, _>>()?;
        Ok(KeyRing { keys })
    }

    fn current(&self, key_use: KeyUse) -> Result<&LoadedKey, KeyError> {
        // Newest last in the store's order: the last live key of the algorithm signs.
        self.keys
            .iter()
            .rev()
            .find(|k| !k.retired && k.algorithm == key_use.algorithm())
            .ok_or_else(|| KeyError::Key(format!("no current {} key", key_use.name())))
    }

    /// Signs `claims` with the current key for `key_use`; the header names its `kid`.
    pub fn sign<T: Serialize>(&self, key_use: KeyUse, claims: &T) -> Result<String, KeyError> {
        let key = self.current(key_use)?;
        let mut header = Header::new(key.algorithm);
        header.kid = Some(key.kid.clone());
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, claims, &key.encoding)
            .map_err(|e| KeyError::Key(format!("could not sign: {e}")))
    }

    /// The verification key for `kid` if it is of the algorithm `key_use` signs with: a token
    /// naming another algorithm for the same key is refused (algorithm confusion, SEC-05).
    pub(crate) fn verifier(&self, key_use: KeyUse, kid: &str) -> Option<&DecodingKey> {
        self.keys
            .iter()
            .find(|k| k.kid == kid && k.algorithm == key_use.algorithm())
            .map(|k| &k.decoding)
    }

    /// The public JWKS (every key, retired ones included, so tokens they signed still verify).
    pub fn jwks(&self) -> Value {
        json!({"keys": self.keys.iter().map(|k| k.public_jwk.clone()).collect::<Vec<_>>()})
    }
}

fn key_error(what: &str) -> impl Fn(aws_lc_rs::error::Unspecified) -> KeyError + '_ {
    move |_| KeyError::Key(format!("could not generate the {what} key"))
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn unpem(text: &str) -> Result<Vec<u8>, KeyError> {
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    STANDARD
        .decode(body.trim())
        .map_err(|_| KeyError::Key("a stored key is not PEM".into()))
}

/// A random key id: 16 bytes, base64url.
fn new_kid() -> Result<String, KeyError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|_| KeyError::Key("no randomness".into()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn generate(key_use: KeyUse, now: DateTime<Utc>) -> Result<SigningKeyRecord, KeyError> {
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
    Ok(SigningKeyRecord {
        kid,
        algorithm: key_use.name().into(),
        private_key_pem: pem("PRIVATE KEY", &pkcs8),
        public_jwk,
        created_at: now,
        retired: false,
    })
}

fn load(record: &SigningKeyRecord) -> Result<LoadedKey, KeyError> {
    let der = unpem(&record.private_key_pem)?;
    let field = |name: &str| {
        record
            .public_jwk
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| KeyError::Key(format!("stored key {} lacks {name}", record.kid)))
    };
    let bad = |_| KeyError::Key(format!("stored key {} is unreadable", record.kid));
    let (algorithm, encoding, decoding) = match record.algorithm.as_str() {
        "ES256" => (
            Algorithm::ES256,
            EncodingKey::from_ec_der(&der),
            DecodingKey::from_ec_components(field("x")?, field("y")?).map_err(bad)?,
        ),
        "RS256" => (
            Algorithm::RS256,
            EncodingKey::from_rsa_der(&pkcs1_of_pkcs8(&der)?),
            DecodingKey::from_rsa_components(field("n")?, field("e")?).map_err(bad)?,
        ),
        other => return Err(KeyError::Key(format!("unsupported key algorithm {other}"))),
    };
    Ok(LoadedKey {
        kid: record.kid.clone(),
        algorithm,
        encoding,
        decoding,
        public_jwk: record.public_jwk.clone(),
        retired: record.retired,
    })
}

/// The RSAPrivateKey (PKCS#1) inside a PKCS#8 PrivateKeyInfo: jsonwebtoken's RSA signer takes
/// PKCS#1, aws-lc-rs exports PKCS#8. PrivateKeyInfo is SEQUENCE { INTEGER version,
/// SEQUENCE algorithm, OCTET STRING privateKey, ... }.
fn pkcs1_of_pkcs8(der: &[u8]) -> Result<Vec<u8>, KeyError> {
    let bad = || KeyError::Key("a stored RSA key is not PKCS#8".into());
    let (tag, outer, _) = der_item(der).ok_or_else(bad)?;
    if tag != 0x30 {
        return Err(bad());
    }
    let (_, _, rest) = der_item(outer).ok_or_else(bad)?; // version
    let (_, _, rest) = der_item(rest).ok_or_else(bad)?; // algorithm
    let (tag, key, _) = der_item(rest).ok_or_else(bad)?;
    if tag != 0x04 {
        return Err(bad());
    }
    Ok(key.to_vec())
}

/// One DER item: tag, content, the bytes after it.
fn der_item(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *input.first()?;
    let first = *input.get(1)? as usize;
    let (len, header) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *input.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    Some((tag, input.get(header..end)?, input.get(end..)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    // REQ: AS-02, SEC-01
    #[tokio::test]
    async fn keys_are_generated_once_and_rotation_keeps_old_keys_in_the_jwks() {
        let store = MemoryStore::new();
        let first = KeyRing::load_or_generate(&store, Utc::now()).await.unwrap();
        assert_eq!(first.jwks()["keys"].as_array().unwrap().len(), 2);
        let again = KeyRing::load_or_generate(&store, Utc::now()).await.unwrap();
        let kids = |ring: &KeyRing| {
            let mut kids: Vec<String> = ring.keys.iter().map(|k| k.kid.clone()).collect();
            kids.sort();
            kids
        };
        assert_eq!(kids(&again), kids(&first));
        let token = first.sign(KeyUse::AccessToken, &json!({"a": 1})).unwrap();
        let rotated = KeyRing::rotate(&store, KeyUse::AccessToken, Utc::now())
            .await
            .unwrap();
        assert_eq!(rotated.jwks()["keys"].as_array().unwrap().len(), 3);
        let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
        assert!(rotated.verifier(KeyUse::AccessToken, &kid).is_some());
        let newer = rotated.sign(KeyUse::AccessToken, &json!({"a": 1})).unwrap();
        assert_ne!(
            jsonwebtoken::decode_header(&newer).unwrap().kid.unwrap(),
            kid
        );
        assert!(rotated.sign(KeyUse::IdToken, &json!({"a": 1})).is_ok());
        // SEC-01: no key material in Debug output.
        assert!(!format!("{rotated:?}").contains("PRIVATE"));
    }
}
