//! Do a client's credentials hold (REQ AS-06, SEC-02, OPS-03): which credential a token,
//! introspection or revocation request presents, whether a secret or a certificate matches the
//! client's registration, and whether a `private_key_jwt` assertion's header and claims are
//! acceptable. The assertion's signature is checked by the endpoint with the client's key; its
//! `jti` is recorded in the store there.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use halo_model::oauth::OAuthError;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::Value;

use super::single;
use crate::auth::clients::ClientAuthentication;
use crate::tls::PeerCertificate;

/// The `client_assertion_type` of `private_key_jwt` (RFC 7523).
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The credential a request presents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Presented<'a> {
    /// `client_secret_basic`: the id and secret of the `Authorization: Basic` header,
    /// form-urldecoded (RFC 6749 §2.3.1).
    Basic {
        /// The client id.
        client_id: String,
        /// The secret.
        secret: String,
    },
    /// `private_key_jwt`: the assertion, and the `client_id` the form names, if any.
    Assertion {
        /// The compact JWT.
        assertion: &'a str,
        /// `client_id` of the form; it must be the assertion's issuer.
        client_id: Option<&'a str>,
    },
    /// A `client_id` in the form, with `client_secret` (`client_secret_post`) or without
    /// (public clients, `tls_client_auth`).
    Form {
        /// The client id.
        client_id: &'a str,
        /// `client_secret`.
        secret: Option<&'a str>,
    },
}

/// The refusal of every failed client authentication: it tells no caller which part failed.
pub(crate) fn authentication_failed() -> OAuthError {
    OAuthError::invalid_client("client authentication failed")
}

fn form_urldecode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The credential of a request with the `Authorization` header value `authorization` and the
/// form `params`: Basic first, then an assertion, then the form's `client_id`.
pub(crate) fn presented<'a>(
    authorization: Option<&str>,
    params: &'a [(String, String)],
) -> Result<Presented<'a>, OAuthError> {
    let form_client = single(params, "client_id")?;
    if let Some(basic) = authorization.and_then(|v| v.strip_prefix("Basic ")) {
        let decoded = STANDARD
            .decode(basic.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(authentication_failed)?;
        let (id, secret) = decoded.split_once(':').ok_or_else(authentication_failed)?;
        let client_id = form_urldecode(id);
        if form_client.is_some_and(|f| f != client_id) {
            return Err(authentication_failed());
        }
        return Ok(Presented::Basic {
            client_id,
            secret: form_urldecode(secret),
        });
    }
    if let Some(assertion) = single(params, "client_assertion")? {
        if single(params, "client_assertion_type")? != Some(JWT_BEARER) {
            return Err(OAuthError::invalid_request(
                "client_assertion_type must be jwt-bearer",
            ));
        }
        return Ok(Presented::Assertion {
            assertion,
            client_id: form_client,
        });
    }
    Ok(Presented::Form {
        client_id: form_client.ok_or_else(authentication_failed)?,
        secret: single(params, "client_secret")?,
    })
}

/// Whether a form credential (`client_secret` or none) authenticates a client registered with
/// `authentication`, on a connection with the client certificate `peer`: a public client with
/// no secret, a `tls_client_auth` client by its certificate (REQ OPS-03), a secret client by
/// its secret compared in constant time (REQ SEC-02). Anything else is refused.
pub(crate) fn form_credential_accepted(
    authentication: &ClientAuthentication,
    secret: Option<&str>,
    peer: Option<&PeerCertificate>,
) -> bool {
    match (authentication, secret) {
        (ClientAuthentication::Public, None) => true,
        (ClientAuthentication::TlsClientAuth(identity), None) => {
            peer.is_some_and(|p| identity.matches(p))
        }
        (auth @ ClientAuthentication::Secret { .. }, Some(secret)) => auth.secret_matches(secret),
        _ => false,
    }
}

/// The claims of a client assertion that are checked.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct AssertionClaims {
    pub(crate) iss: String,
    pub(crate) sub: String,
    pub(crate) aud: Value,
    pub(crate) exp: i64,
    pub(crate) jti: String,
}

/// Whether an assertion's algorithm is one `private_key_jwt` accepts: RS384 or ES384.
pub(crate) fn assertion_algorithm_accepted(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::RS384 | Algorithm::ES384)
}

/// Whether an assertion's `aud` names this server: a single value equal to the token URL (RFC
/// 7523) or to the issuer (what current OpenID guidance and openid-client send).
pub(crate) fn audience_accepted(aud: &Value, token_url: &str, issuer: &str) -> bool {
    let single = match aud {
        Value::String(one) => Some(one.as_str()),
        Value::Array(list) if list.len() == 1 => list[0].as_str(),
        _ => None,
    };
    single.is_some_and(|aud| aud == token_url || aud == issuer)
}

/// Where this server is reached and how long an assertion may live.
#[derive(Debug, Clone)]
pub(crate) struct AssertionAudience {
    /// The token endpoint's URL.
    pub(crate) token_url: String,
    /// The issuer.
    pub(crate) issuer: String,
    /// The longest an assertion may live (REQ AS-06: five minutes).
    pub(crate) max_lifetime: std::time::Duration,
}

/// The checks of a verified assertion's claims for `client_id` at `now` (REQ AS-06): `iss` =
/// `sub` = the client, `aud` this server, not expired, `exp` at most `max_lifetime` ahead, a
/// `jti`. The answer is when the `jti` may be forgotten; `Err` says why it is refused.
pub(crate) fn check_assertion_claims(
    claims: &AssertionClaims,
    client_id: &str,
    audience: &AssertionAudience,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, &'static str> {
    if claims.iss != client_id {
        return Err("the issuer is not the client");
    }
    if !audience_accepted(&claims.aud, &audience.token_url, &audience.issuer) {
        return Err("aud must be one value: the token endpoint URL or the issuer");
    }
    let now = now.timestamp();
    let max = i64::try_from(audience.max_lifetime.as_secs()).unwrap_or(i64::MAX);
    if claims.exp <= now {
        return Err("expired");
    }
    if claims.exp > now.saturating_add(max) {
        return Err("exp is more than five minutes ahead");
    }
    if claims.sub != client_id || claims.jti.is_empty() {
        return Err("sub or jti");
    }
    DateTime::from_timestamp(claims.exp, 0).ok_or("exp")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::decide::fixtures::params;
    use serde_json::json;

    fn basic(id: &str, secret: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
    }

    // REQ: AS-06
    #[test]
    fn the_presented_credential_is_basic_then_assertion_then_form() {
        let form = params(&[("client_id", "app"), ("client_secret", "s")]);
        assert_eq!(
            presented(None, &form).unwrap(),
            Presented::Form {
                client_id: "app",
                secret: Some("s")
            }
        );
        // Basic credentials are form-urldecoded (RFC 6749 §2.3.1).
        assert_eq!(
            presented(Some(&basic("my%20app", "p%3As")), &[]).unwrap(),
            Presented::Basic {
                client_id: "my app".into(),
                secret: "p:s".into()
            }
        );
        // A form client_id that is not the Basic one, or a broken header: refused alike.
        for refused in [
            presented(Some(&basic("other", "s")), &form).unwrap_err(),
            presented(Some("Basic !!!"), &[]).unwrap_err(),
            presented(Some(&format!("Basic {}", STANDARD.encode("no-colon"))), &[]).unwrap_err(),
            presented(None, &[]).unwrap_err(),
        ] {
            assert_eq!(refused, authentication_failed());
        }
        let jwt = params(&[
            ("client_assertion", "a.b.c"),
            ("client_assertion_type", JWT_BEARER),
        ]);
        assert_eq!(
            presented(None, &jwt).unwrap(),
            Presented::Assertion {
                assertion: "a.b.c",
                client_id: None
            }
        );
        let wrong_type = params(&[
            ("client_assertion", "a.b.c"),
            ("client_assertion_type", "x"),
        ]);
        assert_eq!(
            presented(None, &wrong_type).unwrap_err().error.as_str(),
            "invalid_request"
        );
        let twice = params(&[("client_id", "a"), ("client_id", "b")]);
        assert_eq!(
            presented(None, &twice).unwrap_err().error.as_str(),
            "invalid_request"
        );
    }

    // REQ: AS-06, SEC-02
    #[test]
    fn form_credentials_match_the_registration() {
        let secret = ClientAuthentication::secret("s3cret");
        assert!(form_credential_accepted(&secret, Some("s3cret"), None));
        assert!(!form_credential_accepted(&secret, Some("s3cre"), None));
        assert!(!form_credential_accepted(&secret, None, None));
        assert!(form_credential_accepted(
            &ClientAuthentication::Public,
            None,
            None
        ));
        // A public client sending a secret is not a public client's request.
        assert!(!form_credential_accepted(
            &ClientAuthentication::Public,
            Some("x"),
            None
        ));
        let jwks = ClientAuthentication::PrivateKeyJwt {
            jwks: json!({"keys": []}),
        };
        assert!(!form_credential_accepted(&jwks, None, None));
    }

    // REQ: AS-06, SEC-05
    #[test]
    fn assertion_claims_name_the_client_and_this_server_and_live_briefly() {
        let now = Utc::now();
        let audience = AssertionAudience {
            token_url: "https://sofa.example.org/fhir/auth/token".into(),
            issuer: "https://sofa.example.org/fhir".into(),
            max_lifetime: std::time::Duration::from_secs(300),
        };
        let good = AssertionClaims {
            iss: "poc".into(),
            sub: "poc".into(),
            aud: json!(audience.token_url),
            exp: now.timestamp() + 60,
            jti: "j-1".into(),
        };
        assert_eq!(
            check_assertion_claims(&good, "poc", &audience, now)
                .unwrap()
                .timestamp(),
            good.exp
        );
        let with = |f: &dyn Fn(&mut AssertionClaims)| {
            let mut claims = good.clone();
            f(&mut claims);
            check_assertion_claims(&claims, "poc", &audience, now)
        };
        assert!(with(&|c| c.aud = json!(audience.issuer)).is_ok());
        assert!(with(&|c| c.aud = json!([audience.token_url])).is_ok());
        assert!(with(&|c| c.aud = json!([audience.token_url, audience.issuer])).is_err());
        assert!(with(&|c| c.aud = json!("https://other.example.org/token")).is_err());
        assert_eq!(with(&|c| c.exp = now.timestamp()), Err("expired"));
        assert!(with(&|c| c.exp = now.timestamp() + 301).is_err());
        assert!(with(&|c| c.exp = now.timestamp() + 300).is_ok());
        assert!(with(&|c| c.sub = "other".into()).is_err());
        assert!(with(&|c| c.iss = "other".into()).is_err());
        assert!(with(&|c| c.jti = String::new()).is_err());
        assert!(assertion_algorithm_accepted(Algorithm::RS384));
        assert!(assertion_algorithm_accepted(Algorithm::ES384));
        for alg in [
            Algorithm::RS256,
            Algorithm::HS384,
            Algorithm::ES256,
            Algorithm::PS384,
        ] {
            assert!(!assertion_algorithm_accepted(alg));
        }
    }
}
