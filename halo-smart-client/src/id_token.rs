//! id_token verification (OpenID Connect Core §3.1.3.7 as SMART uses it) and the JWKS cache.

use std::collections::HashMap;
use std::sync::Mutex;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Result, SmartError};

/// Algorithms accepted on an id_token. RS256 is the one SMART servers must support; the others are
/// common. `none` and every HMAC algorithm are refused: an HMAC "signature" keyed with a public
/// key is the classic algorithm-confusion attack.
pub const ACCEPTED_ALGORITHMS: [Algorithm; 4] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// Clock leeway for `exp` and `iat`.
pub const LEEWAY_SECS: u64 = 60;

/// The FHIR resource the `fhirUser` claim names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FhirUser {
    /// The claim as sent (absolute URL or relative reference).
    pub url: String,
    /// `Practitioner`, `PractitionerRole`, `Patient`, `RelatedPerson` or `Person`.
    pub resource_type: String,
    /// The logical id.
    pub id: String,
}

impl FhirUser {
    /// Parses `fhirUser`: `Practitioner/123` or `https://ehr/fhir/Practitioner/123`
    /// (a trailing `/_history/n` is allowed).
    ///
    /// ```
    /// # use halo_smart_client::id_token::FhirUser;
    /// let u = FhirUser::parse("https://my-ehr.org/fhir/Practitioner/123")?;
    /// assert_eq!((u.resource_type.as_str(), u.id.as_str()), ("Practitioner", "123"));
    /// # Ok::<(), halo_smart_client::SmartError>(())
    /// ```
    pub fn parse(claim: &str) -> Result<Self> {
        const TYPES: [&str; 5] = [
            "Patient",
            "Practitioner",
            "PractitionerRole",
            "RelatedPerson",
            "Person",
        ];
        let mut segments: Vec<&str> = claim.trim_end_matches('/').split('/').collect();
        if segments.len() >= 4 && segments[segments.len() - 2] == "_history" {
            segments.truncate(segments.len() - 2);
        }
        let bad = || SmartError::IdToken {
            reason: "fhirUser is not a reference to Patient, Practitioner, PractitionerRole, \
                     RelatedPerson or Person"
                .into(),
        };
        let [.., ty, id] = segments.as_slice() else {
            return Err(bad());
        };
        let id_ok = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !TYPES.contains(ty) || !id_ok {
            return Err(bad());
        }
        Ok(Self {
            url: claim.to_owned(),
            resource_type: (*ty).to_owned(),
            id: (*id).to_owned(),
        })
    }
}

/// The verified claims of an id_token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdTokenClaims {
    /// Issuer.
    pub iss: String,
    /// Subject.
    pub sub: String,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// The `fhirUser` claim, parsed, when present.
    pub fhir_user: Option<FhirUser>,
    /// Every other claim.
    pub extra: Map<String, Value>,
}

/// Why verification failed, split so the caller can re-fetch the JWKS once on an unknown key.
#[derive(Debug)]
pub enum IdTokenError {
    /// No key in the set matches the token's `kid`.
    UnknownKey,
    /// The token is invalid.
    Invalid(SmartError),
}

fn invalid(reason: impl Into<String>) -> IdTokenError {
    IdTokenError::Invalid(SmartError::IdToken {
        reason: reason.into(),
    })
}

/// Verifies `token` against `jwks`: signature with an accepted algorithm, `iss` equal to
/// `expected_issuer`, `aud` containing `client_id`, `exp` and `iat` with [`LEEWAY_SECS`].
pub fn verify_id_token(
    token: &str,
    jwks: &JwkSet,
    expected_issuer: &str,
    client_id: &str,
    now: i64,
) -> std::result::Result<IdTokenClaims, IdTokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| {
        invalid("the token header is malformed or names an unsupported algorithm such as none")
    })?;
    if !ACCEPTED_ALGORITHMS.contains(&header.alg) {
        return Err(invalid(format!(
            "algorithm {:?} is not accepted for id_tokens",
            header.alg
        )));
    }
    let jwk = find_key(jwks, header.kid.as_deref()).ok_or(IdTokenError::UnknownKey)?;
    if let Some(key_alg) = &jwk.common.key_algorithm
        && format!("{key_alg:?}") != format!("{:?}", header.alg)
    {
        return Err(invalid("the token's algorithm does not match its key"));
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|_| invalid("the signing key is unusable"))?;
    let mut validation = Validation::new(header.alg);
    validation.leeway = LEEWAY_SECS;
    validation.set_issuer(&[expected_issuer]);
    validation.set_audience(&[client_id]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let data =
        jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            invalid(match e.kind() {
                K::InvalidSignature => "signature does not verify".to_owned(),
                K::ExpiredSignature => "token has expired".to_owned(),
                K::InvalidIssuer => "issuer does not match the server".to_owned(),
                K::InvalidAudience => "audience is not this app's client_id".to_owned(),
                K::MissingRequiredClaim(c) => format!("claim {c} is missing"),
                K::InvalidAlgorithm => "algorithm does not match the key".to_owned(),
                _ => "token could not be verified".to_owned(),
            })
        })?;
    let mut claims = data.claims;
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or_else(|| invalid("claim iat is missing"))?;
    if iat > now + i64::try_from(LEEWAY_SECS).unwrap_or(60) {
        return Err(invalid("token was issued in the future"));
    }
    let take_str = |claims: &mut Map<String, Value>, k: &str| -> Option<String> {
        match claims.remove(k) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        }
    };
    let iss = take_str(&mut claims, "iss").ok_or_else(|| invalid("claim iss is missing"))?;
    let sub = take_str(&mut claims, "sub").ok_or_else(|| invalid("claim sub is missing"))?;
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    claims.remove("exp");
    claims.remove("iat");
    let fhir_user = match take_str(&mut claims, "fhirUser") {
        Some(u) => Some(FhirUser::parse(&u).map_err(IdTokenError::Invalid)?),
        None => None,
    };
    Ok(IdTokenClaims {
        iss,
        sub,
        exp,
        iat,
        fhir_user,
        extra: claims,
    })
}

fn find_key<'a>(jwks: &'a JwkSet, kid: Option<&str>) -> Option<&'a Jwk> {
    match kid {
        Some(kid) => jwks.find(kid),
        // Without a kid the key is unambiguous only when the set holds one key.
        None if jwks.keys.len() == 1 => jwks.keys.first(),
        None => None,
    }
}

/// Parses a JWKS document, skipping keys this crate cannot use (so one exotic key does not make a
/// server's whole set unusable).
pub fn parse_jwks(body: &[u8]) -> Result<JwkSet> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| SmartError::invalid_response("jwks_uri", format!("not JSON: {e}")))?;
    let keys = v
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| SmartError::invalid_response("jwks_uri", "no \"keys\" array"))?;
    let keys: Vec<Jwk> = keys
        .iter()
        .filter_map(|k| serde_json::from_value(k.clone()).ok())
        .collect();
    Ok(JwkSet { keys })
}

/// Key sets by `jwks_uri`. Verification looks here first; on an unknown `kid` the caller re-fetches
/// once (keys rotate) and replaces the entry.
#[derive(Debug, Default)]
pub struct JwksCache {
    sets: Mutex<HashMap<String, JwkSet>>,
}

impl JwksCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The cached set for `jwks_uri`.
    pub fn get(&self, jwks_uri: &str) -> Option<JwkSet> {
        self.sets.lock().ok()?.get(jwks_uri).cloned()
    }

    /// Stores (or replaces) the set for `jwks_uri`.
    pub fn insert(&self, jwks_uri: &str, set: JwkSet) {
        if let Ok(mut sets) = self.sets.lock() {
            sets.insert(jwks_uri.to_owned(), set);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // REQ: APP-09
    #[test]
    fn fhir_user_absolute_relative_and_bad() {
        let claims: Value = serde_json::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/smart/id-token.claims.worked-example.json"
        )))
        .unwrap();
        let u = FhirUser::parse(claims["fhirUser"].as_str().unwrap()).unwrap();
        assert_eq!(u.resource_type, "Practitioner");
        assert_eq!(u.id, "123");
        let r = FhirUser::parse("PractitionerRole/abc-1/_history/2").unwrap();
        assert_eq!(
            (r.resource_type.as_str(), r.id.as_str()),
            ("PractitionerRole", "abc-1")
        );
        for bad in [
            "",
            "Practitioner",
            "Observation/1",
            "Patient/",
            "Patient/a b",
            "/",
        ] {
            assert!(FhirUser::parse(bad).is_err(), "{bad}");
        }
    }
}
