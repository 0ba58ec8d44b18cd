//! Launch ids (D-05): 32 bytes from the OS CSPRNG, base64url without padding (43 characters).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::SofaError;

/// The number of random bytes in a launch id (256 bits, well over SC-07's 128).
pub const LAUNCH_ID_BYTES: usize = 32;

/// A new opaque launch id.
pub fn new_launch_id() -> Result<String, SofaError> {
    let mut bytes = [0u8; LAUNCH_ID_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|e| SofaError::internal(format!("the OS random source failed: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    // REQ: SC-07
    #[test]
    fn launch_ids_are_43_url_safe_characters_and_do_not_repeat() {
        let ids: HashSet<String> = (0..1000).map(|_| new_launch_id().unwrap()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            assert_eq!(id.len(), 43);
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            assert!(halo_model::set_context::is_valid_launch_id(id));
            assert_eq!(URL_SAFE_NO_PAD.decode(id).unwrap().len(), LAUNCH_ID_BYTES);
        }
    }
}
