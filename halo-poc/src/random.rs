//! Secrets from the operating system's CSPRNG.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{PocError, Result};

/// `bytes` random bytes from the OS, base64url without padding.
pub(crate) fn random_token(bytes: usize) -> Result<String> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).map_err(|_| PocError::Randomness)?;
    Ok(URL_SAFE_NO_PAD.encode(buffer))
}

/// A random version 4 UUID from the OS (for `urn:uuid:` full URLs).
pub(crate) fn random_uuid() -> Result<uuid::Uuid> {
    let mut buffer = [0u8; 16];
    getrandom::fill(&mut buffer).map_err(|_| PocError::Randomness)?;
    Ok(uuid::Builder::from_random_bytes(buffer).into_uuid())
}

/// A random fraction in `[0, 1)` for backoff jitter; 0.5 if the OS has no randomness to give.
#[cfg(feature = "websocket")]
pub(crate) fn jitter() -> f64 {
    let mut buffer = [0u8; 2];
    match getrandom::fill(&mut buffer) {
        Ok(()) => f64::from(u16::from_le_bytes(buffer)) / 65536.0,
        Err(_) => 0.5,
    }
}
