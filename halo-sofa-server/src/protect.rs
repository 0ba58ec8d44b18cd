//! Token-signing private keys protected at rest (REQ IDP-06): the [`KeyProtector`] seam and its
//! default, [`AesGcmKek`] (AES-256-GCM under a key-encryption key kept outside the database).

use std::fmt;
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

use crate::store::BoxFuture;

/// Why a key could not be sealed or opened: no key-encryption key where one is needed, the
/// wrong one, or a sealed key altered (REQ IDP-06).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProtectError(pub String);

/// Seals private keys before they are stored and opens them when they are loaded: the hook for
/// a KMS or HSM-backed key-encryption key (its encrypt and decrypt calls, envelope encryption).
///
/// A sealed key is bound to its key id: a sealed value copied to another key's record does
/// not open.
pub trait KeyProtector: fmt::Debug + Send + Sync + 'static {
    /// A public name of the key-encryption key (never the key): stored with each sealed key,
    /// so a start with another key-encryption key says which one the keys need.
    fn key_id(&self) -> String;

    /// Seals the PKCS#8 DER of the private key `kid`; the result is text the store keeps.
    fn seal<'a>(
        &'a self,
        kid: &'a str,
        private_key: &'a [u8],
    ) -> BoxFuture<'a, Result<String, ProtectError>>;

    /// Opens what [`seal`](Self::seal) returned for `kid`. A value sealed under another
    /// key-encryption key, for another key id, or altered, is an error that names the cause.
    fn open<'a>(
        &'a self,
        kid: &'a str,
        sealed: &'a str,
    ) -> BoxFuture<'a, Result<Vec<u8>, ProtectError>>;
}

/// The prefix of values sealed by [`AesGcmKek`] (format version 1).
const SEALED_PREFIX: &str = "halo-aes256gcm-v1";

/// AES-256-GCM under a 32-byte key-encryption key (aws-lc-rs, the workspace's one crypto
/// library). Each sealed key has its own random 96-bit nonce; the key id is the additional
/// authenticated data. The stored form is
/// `halo-aes256gcm-v1.<key-encryption key id>.<nonce>.<ciphertext and tag>` (base64url).
///
/// The key-encryption key comes from a file or an environment variable as base64 of 32 random
/// bytes (`openssl rand -base64 32`), never from the database or the configuration file.
pub struct AesGcmKek {
    key: LessSafeKey,
    id: String,
}

impl fmt::Debug for AesGcmKek {
    // The key itself never appears; its public id does (SEC-01).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AesGcmKek").field("id", &self.id).finish()
    }
}

impl AesGcmKek {
    /// The key-encryption key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<AesGcmKek, ProtectError> {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| ProtectError("the key-encryption key is unusable".into()))?;
        // The id is a hash of the key under a label of its own: it names the key without
        // revealing anything that helps to find it.
        let mut hasher = Sha256::new();
        hasher.update(b"halo key-encryption key id\0");
        hasher.update(bytes);
        let id = URL_SAFE_NO_PAD.encode(&hasher.finalize()[..9]);
        Ok(AesGcmKek {
            key: LessSafeKey::new(unbound),
            id,
        })
    }

    /// The key-encryption key from its text: base64 (standard or URL-safe, padded or not) of
    /// exactly 32 bytes, surrounding whitespace ignored.
    pub fn from_base64(text: &str) -> Result<AesGcmKek, ProtectError> {
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
            .map_err(|_| {
                ProtectError(
                    "the key-encryption key is not base64 (make one with `openssl rand -base64 32`)"
                        .into(),
                )
            })?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            ProtectError(format!(
                "the key-encryption key must be 32 bytes, not {}",
                b.len()
            ))
        })?;
        AesGcmKek::from_bytes(&bytes)
    }

    /// The key-encryption key from a file holding its base64 (a mounted secret).
    pub fn from_file(path: impl AsRef<Path>) -> Result<AesGcmKek, ProtectError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ProtectError(format!(
                "the key-encryption key file {}: {e}",
                path.display()
            ))
        })?;
        AesGcmKek::from_base64(&text).map_err(|e| ProtectError(format!("{}: {e}", path.display())))
    }

    fn seal_now(&self, kid: &str, private_key: &[u8]) -> Result<String, ProtectError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| ProtectError("no randomness".into()))?;
        let mut data = private_key.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(kid.as_bytes()),
                &mut data,
            )
            .map_err(|_| ProtectError(format!("the key {kid} could not be sealed")))?;
        Ok(format!(
            "{SEALED_PREFIX}.{}.{}.{}",
            self.id,
            URL_SAFE_NO_PAD.encode(nonce),
            URL_SAFE_NO_PAD.encode(&data)
        ))
    }

    fn open_now(&self, kid: &str, sealed: &str) -> Result<Vec<u8>, ProtectError> {
        let malformed = || ProtectError(format!("the stored key {kid} is not sealed text"));
        let mut parts = sealed.split('.');
        let (Some(SEALED_PREFIX), Some(kek_id), Some(nonce), Some(data), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(malformed());
        };
        if kek_id != self.id {
            return Err(ProtectError(format!(
                "the signing keys are encrypted under the key-encryption key {kek_id}, but the \
                 configured key-encryption key is {}",
                self.id
            )));
        }
        let nonce: [u8; NONCE_LEN] = URL_SAFE_NO_PAD
            .decode(nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or_else(malformed)?;
        let mut data = URL_SAFE_NO_PAD.decode(data).map_err(|_| malformed())?;
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(kid.as_bytes()),
                &mut data,
            )
            .map_err(|_| {
                ProtectError(format!(
                    "the stored key {kid} does not decrypt under the configured key-encryption \
                     key (altered, or sealed for another key)"
                ))
            })?;
        Ok(plain.to_vec())
    }
}

impl KeyProtector for AesGcmKek {
    fn key_id(&self) -> String {
        self.id.clone()
    }

    fn seal<'a>(
        &'a self,
        kid: &'a str,
        private_key: &'a [u8],
    ) -> BoxFuture<'a, Result<String, ProtectError>> {
        let sealed = self.seal_now(kid, private_key);
        Box::pin(async move { sealed })
    }

    fn open<'a>(
        &'a self,
        kid: &'a str,
        sealed: &'a str,
    ) -> BoxFuture<'a, Result<Vec<u8>, ProtectError>> {
        let opened = self.open_now(kid, sealed);
        Box::pin(async move { opened })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek(byte: u8) -> AesGcmKek {
        AesGcmKek::from_bytes(&[byte; 32]).unwrap()
    }

    // REQ: IDP-06
    #[tokio::test]
    async fn sealed_keys_open_only_under_their_key_and_key_id() {
        let secret = b"-----BEGIN PRIVATE KEY----- not really".to_vec();
        let sealed = kek(1).seal("kid-1", &secret).await.unwrap();
        assert!(!sealed.contains("PRIVATE"));
        assert_eq!(kek(1).open("kid-1", &sealed).await.unwrap(), secret);
        // Another key-encryption key: named, not a generic failure.
        let wrong = kek(2).open("kid-1", &sealed).await.unwrap_err().to_string();
        assert!(wrong.contains(&kek(1).key_id()), "{wrong}");
        assert!(wrong.contains(&kek(2).key_id()), "{wrong}");
        // The same ciphertext under another key id does not open.
        let moved = kek(1).open("kid-2", &sealed).await.unwrap_err().to_string();
        assert!(moved.contains("does not decrypt"), "{moved}");
        // One flipped character of the ciphertext does not open.
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 2;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        assert!(kek(1).open("kid-1", &altered).await.is_err());
        assert!(kek(1).open("kid-1", "PEM").await.is_err());
        // Two seals of one key differ (a fresh nonce each).
        assert_ne!(kek(1).seal("kid-1", &secret).await.unwrap(), sealed);
        assert!(!format!("{:?}", kek(1)).contains("[1"));
    }

    #[test]
    fn the_key_encryption_key_is_32_bytes_of_base64() {
        let good = STANDARD.encode([7u8; 32]);
        assert!(AesGcmKek::from_base64(&format!(" {good}\n")).is_ok());
        assert!(AesGcmKek::from_base64(&URL_SAFE_NO_PAD.encode([7u8; 32])).is_ok());
        let short = AesGcmKek::from_base64(&STANDARD.encode([7u8; 16])).unwrap_err();
        assert!(short.to_string().contains("32 bytes"), "{short}");
        assert!(AesGcmKek::from_base64("not base64!").is_err());
        assert!(AesGcmKek::from_file("/nonexistent/kek").is_err());
    }
}
