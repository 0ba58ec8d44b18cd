//! May this code be exchanged, may this refresh token be used (REQ AS-05, AS-08, SC-12,
//! IDP-05). The store reads and writes around these decisions happen in one transaction in the
//! token endpoint; what to write (spend the code, revoke a family, rotate a refresh token) is
//! what the decision says.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use halo_model::oauth::OAuthError;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::{AuthorizationCodeRecord, LaunchRecord, RefreshTokenRecord};

/// Why a code or refresh token gives no token, and what the refusal revokes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Refused {
    /// Refused; nothing else changes (beyond the code being spent).
    Plain(OAuthError),
    /// A replayed code or a reused refresh token (REQ AS-05, AS-08): refused, and every token
    /// of the grant family is revoked.
    RevokeFamily {
        /// The family to revoke (empty: none is known).
        family: String,
        /// The answer to the client.
        error: OAuthError,
    },
}

impl Refused {
    /// The answer to the client.
    pub(crate) fn error(&self) -> &OAuthError {
        match self {
            Refused::Plain(error) | Refused::RevokeFamily { error, .. } => error,
        }
    }
}

/// Whether `verifier` is the PKCE S256 verifier of `challenge` (RFC 7636 §4.6), compared in
/// constant time.
pub(crate) fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

/// A text field of a record's `details`.
pub(crate) fn detail(details: &Value, name: &str) -> Option<String> {
    details
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Whether the code whose record the store gave back when it was spent (`None`: unknown) may
/// be exchanged by `client_id` with the request's `redirect_uri` and `code_verifier` at `now`
/// (REQ AS-05): single use (a replay revokes the tokens of its first use), the same client, not
/// expired, the same redirect URI, and the PKCE verifier of its challenge. The answer is the
/// record that may be exchanged.
pub(crate) fn check_code<'r>(
    record: Option<&'r AuthorizationCodeRecord>,
    client_id: &str,
    redirect_uri: Option<&str>,
    code_verifier: Option<&str>,
    now: DateTime<Utc>,
) -> Result<&'r AuthorizationCodeRecord, Refused> {
    let plain = |why: &str| Err(Refused::Plain(OAuthError::invalid_grant(why)));
    let Some(record) = record else {
        return plain("the code is unknown");
    };
    if record.consumed {
        return Err(Refused::RevokeFamily {
            family: detail(&record.details, "family").unwrap_or_default(),
            error: OAuthError::invalid_grant(
                "the code was already used; the tokens issued from it are revoked",
            ),
        });
    }
    if record.client_id != client_id {
        return plain("the code was issued to another client");
    }
    if now >= record.expires_at {
        return plain("the code has expired");
    }
    if redirect_uri != Some(record.redirect_uri.as_str()) {
        return plain("redirect_uri differs from the authorization request's");
    }
    let Some(verifier) = code_verifier else {
        return plain("code_verifier is missing (PKCE)");
    };
    if !pkce_matches(verifier, &record.code_challenge) {
        return plain("code_verifier does not match the code_challenge");
    }
    Ok(record)
}

/// Whether the refresh token whose record the store has (`None`: unknown) may be used by
/// `client_id` at `now` (REQ AS-08): bound to its client, a rotated or revoked one is a reuse
/// that revokes its family, and not expired. The answer is the record that may be used.
pub(crate) fn check_refresh<'r>(
    record: Option<&'r RefreshTokenRecord>,
    client_id: &str,
    now: DateTime<Utc>,
) -> Result<&'r RefreshTokenRecord, Refused> {
    let plain = |why: &str| Err(Refused::Plain(OAuthError::invalid_grant(why)));
    let Some(record) = record else {
        return plain("the refresh token is unknown");
    };
    if record.client_id != client_id {
        return plain("the refresh token was issued to another client");
    }
    if record.revoked {
        return Err(Refused::RevokeFamily {
            family: record.family_id.clone(),
            error: OAuthError::invalid_grant(
                "the refresh token was already used or revoked; its family is revoked",
            ),
        });
    }
    if now >= record.expires_at {
        return plain("the refresh token has expired");
    }
    Ok(record)
}

/// The launch of a grant, when it has one (`launch_id`), as the store has it (`record`): it
/// must still live (REQ SC-12), or the grant gives no more tokens.
pub(crate) fn live_launch(
    launch_id: Option<&str>,
    record: Option<LaunchRecord>,
    now: DateTime<Utc>,
) -> Result<Option<LaunchRecord>, OAuthError> {
    if launch_id.is_none() {
        return Ok(None);
    }
    match record {
        Some(launch) if !launch.is_expired(now) => Ok(Some(launch)),
        _ => Err(OAuthError::invalid_grant(
            "the launch context was cleared or has expired",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::decide::fixtures;
    use chrono::Duration;
    use serde_json::json;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    const REDIRECT: &str = "https://app.example.org/cb";

    fn code(now: DateTime<Utc>) -> AuthorizationCodeRecord {
        AuthorizationCodeRecord {
            code_hash: "h".into(),
            client_id: "app".into(),
            redirect_uri: REDIRECT.into(),
            code_challenge: CHALLENGE.into(),
            scope: "openid".into(),
            user: Some("dr-a".into()),
            launch_id: None,
            expires_at: now + Duration::seconds(60),
            consumed: false,
            details: json!({"family": "fam-1"}),
        }
    }

    fn refresh(now: DateTime<Utc>) -> RefreshTokenRecord {
        RefreshTokenRecord {
            token_hash: "h".into(),
            family_id: "fam-1".into(),
            client_id: "app".into(),
            user: Some("dr-a".into()),
            scope: "openid offline_access".into(),
            launch_id: None,
            expires_at: now + Duration::hours(1),
            revoked: false,
            details: json!({}),
        }
    }

    fn why(refused: Refused) -> String {
        refused
            .error()
            .error_description
            .clone()
            .unwrap_or_default()
    }

    // REQ: AS-05
    #[test]
    fn pkce_s256_is_the_rfc_7636_example() {
        assert!(pkce_matches(VERIFIER, CHALLENGE));
        assert!(!pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK",
            CHALLENGE
        ));
        assert!(!pkce_matches(CHALLENGE, CHALLENGE));
    }

    // REQ: AS-05
    #[test]
    fn a_code_is_exchanged_only_by_its_client_redirect_and_verifier_in_time() {
        let now = Utc::now();
        let record = code(now);
        let check = |client: &str, redirect: Option<&str>, verifier: Option<&str>, at| {
            check_code(Some(&record), client, redirect, verifier, at).map(|_| ())
        };
        assert_eq!(check("app", Some(REDIRECT), Some(VERIFIER), now), Ok(()));
        assert!(
            why(check("other", Some(REDIRECT), Some(VERIFIER), now).unwrap_err())
                .contains("another client")
        );
        let expiry = record.expires_at;
        assert!(
            why(check("app", Some(REDIRECT), Some(VERIFIER), expiry).unwrap_err())
                .contains("expired")
        );
        assert!(
            why(check(
                "app",
                Some("https://app.example.org/cb/"),
                Some(VERIFIER),
                now
            )
            .unwrap_err())
            .contains("redirect_uri")
        );
        assert!(why(check("app", None, Some(VERIFIER), now).unwrap_err()).contains("redirect_uri"));
        assert!(why(check("app", Some(REDIRECT), None, now).unwrap_err()).contains("missing"));
        assert!(
            why(check("app", Some(REDIRECT), Some("wrong"), now).unwrap_err())
                .contains("does not match")
        );
        for refused in [
            check_code(None, "app", Some(REDIRECT), Some(VERIFIER), now).unwrap_err(),
            check("other", Some(REDIRECT), Some(VERIFIER), now).unwrap_err(),
        ] {
            assert!(matches!(refused, Refused::Plain(_)));
            assert_eq!(refused.error().error.as_str(), "invalid_grant");
        }
    }

    // REQ: AS-05
    #[test]
    fn a_replayed_code_revokes_its_family_whoever_presents_it() {
        let now = Utc::now();
        let mut record = code(now);
        record.consumed = true;
        for client in ["app", "other"] {
            let refused =
                check_code(Some(&record), client, Some(REDIRECT), Some(VERIFIER), now).unwrap_err();
            assert_eq!(
                refused,
                Refused::RevokeFamily {
                    family: "fam-1".into(),
                    error: OAuthError::invalid_grant(
                        "the code was already used; the tokens issued from it are revoked"
                    ),
                }
            );
        }
    }

    // REQ: AS-08
    #[test]
    fn a_refresh_token_is_bound_to_its_client_and_a_reuse_revokes_the_family() {
        let now = Utc::now();
        let mut record = refresh(now);
        assert_eq!(check_refresh(Some(&record), "app", now), Ok(&record));
        assert!(matches!(
            check_refresh(None, "app", now),
            Err(Refused::Plain(_))
        ));
        // Another client learns nothing and revokes nothing, even with a rotated token.
        assert!(matches!(
            check_refresh(Some(&record), "other", now),
            Err(Refused::Plain(_))
        ));
        let expiry = record.expires_at;
        assert!(why(check_refresh(Some(&record), "app", expiry).unwrap_err()).contains("expired"));
        record.revoked = true;
        assert!(matches!(
            check_refresh(Some(&record), "other", now),
            Err(Refused::Plain(_))
        ));
        assert!(matches!(
            check_refresh(Some(&record), "app", now),
            Err(Refused::RevokeFamily { family, .. }) if family == "fam-1"
        ));
    }

    // REQ: SC-12
    #[test]
    fn a_cleared_or_expired_launch_ends_the_grant() {
        let now = Utc::now();
        assert_eq!(live_launch(None, None, now), Ok(None));
        assert!(live_launch(Some("l1"), None, now).is_err());
        let launch = fixtures::launch(None, now);
        assert!(
            live_launch(Some("l1"), Some(launch.clone()), now)
                .unwrap()
                .is_some()
        );
        let at = launch.expires_at;
        assert!(live_launch(Some("l1"), Some(launch), at).is_err());
    }
}
