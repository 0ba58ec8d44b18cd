//! The SMART app side (halo-smart-client): id_tokens, the launch and callback queries, and the
//! token and introspection answers as the client reads them.

use std::sync::LazyLock;

use arbitrary::Unstructured;
use halo_smart_client::callback::Callback;
use halo_smart_client::id_token::{FhirUser, parse_jwks, verify_id_token};
use halo_smart_client::keys::SigningKey;
use halo_smart_client::launch::LaunchRequest;
use jsonwebtoken::jwk::JwkSet;
use serde_json::{Map, Value, json};

use crate::structured::Vocabulary;
use crate::text;

/// The SMART specification's ES384 example keys (`fixtures/smart`): the test vectors are public,
/// so the tokens the structured target signs verify against a real key set.
const PRIVATE_JWKS: &str = include_str!("../../../fixtures/smart/spec-jwks.ES384.private.json");
const PUBLIC_JWKS: &str = include_str!("../../../fixtures/smart/spec-jwks.ES384.public.json");
const KID: &str = "cd520211e5661dbba2256f67f6d53f97";
pub(crate) const ISSUER: &str = "https://ehr.example.org/fhir";
const CLIENT_ID: &str = "app-1";
const NOW: i64 = 1_700_000_000;

static KEYS: LazyLock<Option<(SigningKey, JwkSet)>> = LazyLock::new(|| {
    let signing = SigningKey::from_jwks_str(PRIVATE_JWKS, KID).ok()?;
    let public = parse_jwks(PUBLIC_JWKS.as_bytes()).ok()?;
    Some((signing, public))
});

/// An id_token as received: header and claims decoded and checked against a fixed key set. The
/// input is also read as a `fhirUser` claim and as a JWKS document.
pub(crate) fn jwt(data: &[u8]) {
    let token = text(data);
    if let Some((_, jwks)) = KEYS.as_ref() {
        let _ = verify_id_token(&token, jwks, ISSUER, CLIENT_ID, NOW);
    }
    let _ = FhirUser::parse(&token);
    let _ = parse_jwks(data);
}

/// Claims built from the id_token vocabulary, signed with the example key and verified, so the
/// claim checks after the signature (issuer, audience, times, `fhirUser`) see hostile values.
pub(crate) fn jwt_claims_structured(data: &[u8]) {
    let Some((signing, jwks)) = KEYS.as_ref() else {
        return;
    };
    let mut u = Unstructured::new(data);
    let mut claims = Map::new();
    let count = u.int_in_range(0..=10u8).unwrap_or(0);
    for _ in 0..count {
        let key = CLAIMS.arbitrary_string(&mut u);
        claims.insert(key, CLAIMS.arbitrary_value(&mut u));
    }
    // Mostly-valid defaults for the claims the generator left out.
    for (key, value) in [
        ("iss", json!(ISSUER)),
        ("aud", json!(CLIENT_ID)),
        ("sub", json!("user-1")),
        ("exp", json!(NOW + 300)),
        ("iat", json!(NOW)),
    ] {
        if u.arbitrary::<bool>().unwrap_or(true) {
            claims.entry(key).or_insert(value);
        }
    }
    let Ok(token) = signing.sign(&Value::Object(claims)) else {
        return;
    };
    let _ = verify_id_token(&token, jwks, ISSUER, CLIENT_ID, NOW);
}

static CLAIMS: Vocabulary = Vocabulary {
    keys: &[],
    strings: &[
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "nbf",
        "fhirUser",
        "nonce",
        "profile",
        "https://ehr.example.org/fhir",
        "https://ehr.example.org/fhir/",
        "app-1",
        "Practitioner/123",
        "https://ehr.example.org/fhir/Practitioner/123/_history/2",
        "Patient/",
        "/_history/1",
        "Device/1",
        "",
        "é",
    ],
};

/// The query strings a SMART app parses: the launch URL's (`iss`, `launch`) and the redirect's
/// (`code`, `state`, or an OAuth error), with or without `?`, and as a whole launch URL.
pub(crate) fn form(data: &[u8]) {
    let query = text(data);
    let _ = LaunchRequest::from_query(&query);
    let _ = LaunchRequest::from_url(&format!("https://app.example.org/launch?{query}"));
    let _ = LaunchRequest::from_url(&query);
    let _ = Callback::from_query(&query);
}
