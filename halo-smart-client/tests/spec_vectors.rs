//! The SMART specification's own keys and signed assertions, read from the shared fixtures.

// Helpers outside #[test] functions unwrap fixtures too; a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use halo_smart_client::keys::{SigningAlgorithm, SigningKey};
use halo_smart_client::token::client_assertion;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

fn fixture(name: &str) -> String {
    let path = format!("{}/../fixtures/smart/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap()
}

fn json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap()
}

/// The private scalar of the app-launch example's ES384 key, given in the page text
/// (see PROVENANCE.md, `client-jwk.es384.public.json`).
const EXAMPLE_ES384_D: &str = "WcrTiYk8jbI-Sd1sKNpqGmELWGG08bf_y9SSlnC4cpAl5GRdHHN9gKYlPvMFqiJ5";

fn example_es384_key() -> SigningKey {
    let mut jwk = json("client-jwk.es384.public.json");
    jwk["d"] = EXAMPLE_ES384_D.into();
    SigningKey::from_jwk(&jwk).unwrap()
}

fn verify(compact: &str, public_jwk: &Value, alg: Algorithm) -> Value {
    let jwk: Jwk = serde_json::from_value(public_jwk.clone()).unwrap();
    let key = DecodingKey::from_jwk(&jwk).unwrap();
    let mut v = Validation::new(alg);
    // The spec's assertions expired years ago; the signature is what is checked here.
    v.validate_exp = false;
    v.validate_aud = false;
    v.set_required_spec_claims::<&str>(&[]);
    jsonwebtoken::decode::<Value>(compact, &key, &v)
        .unwrap()
        .claims
}

// REQ: APP-07
#[test]
fn the_spec_rs384_assertion_verifies_and_our_key_reproduces_it() {
    let vector = json("client-assertion.rs384.signed.verified.json");
    let compact = vector["compact"].as_str().unwrap();
    let public = &json("spec-jwks.RS384.public.json")["keys"][0];
    let claims = verify(compact, public, Algorithm::RS384);
    assert_eq!(claims, json("client-assertion.rs384.payload.json"));
    // RS384 (PKCS#1 v1.5) is deterministic: the private JWK, converted to DER by this crate, must
    // give the very signature the spec published.
    let key = SigningKey::from_jwks_str(
        &fixture("spec-jwks.RS384.private.json"),
        "eee9f17a3b598fd86417a980b591fbe6",
    )
    .unwrap();
    assert_eq!(key.algorithm(), SigningAlgorithm::Rs384);
    let (input, signature) = compact.rsplit_once('.').unwrap();
    assert_eq!(key.sign_input(input.as_bytes()).unwrap(), signature);
}

// REQ: APP-07
#[test]
fn the_spec_es384_assertions_verify_with_the_registered_key() {
    let vectors = json("client-assertion.es384.signed.verified.json");
    let public = json("client-jwk.es384.public.json");
    let decoded = json("client-assertion.es384.decoded.json");
    let mut jtis = Vec::new();
    for a in vectors["assertions"].as_array().unwrap() {
        let claims = verify(a["compact"].as_str().unwrap(), &public, Algorithm::ES384);
        assert_eq!(claims["iss"], decoded["payload"]["iss"]);
        assert_eq!(claims["sub"], claims["iss"]);
        assert_eq!(claims["aud"], decoded["payload"]["aud"]);
        jtis.push(claims["jti"].as_str().unwrap().to_owned());
    }
    assert_ne!(
        jtis[0], jtis[1],
        "the exchange and the refresh use distinct jti"
    );
}

// REQ: APP-07
#[test]
fn assertions_we_sign_have_the_spec_shape_and_verify() {
    let decoded = json("client-assertion.es384.decoded.json");
    let client_id = decoded["payload"]["iss"].as_str().unwrap();
    let aud = decoded["payload"]["aud"].as_str().unwrap();
    let now = chrono::Utc::now().timestamp();
    let cases = [
        (
            example_es384_key(),
            json("client-jwk.es384.public.json"),
            Algorithm::ES384,
        ),
        (
            SigningKey::from_jwks_str(
                &fixture("spec-jwks.ES384.private.json"),
                "cd520211e5661dbba2256f67f6d53f97",
            )
            .unwrap(),
            json("spec-jwks.ES384.public.json")["keys"][0].clone(),
            Algorithm::ES384,
        ),
        (
            SigningKey::from_jwks_str(
                &fixture("spec-jwks.RS384.private.json"),
                "eee9f17a3b598fd86417a980b591fbe6",
            )
            .unwrap(),
            json("spec-jwks.RS384.public.json")["keys"][0].clone(),
            Algorithm::RS384,
        ),
    ];
    for (key, public, alg) in cases {
        let a = client_assertion(client_id, aud, &key, now).unwrap();
        let b = client_assertion(client_id, aud, &key, now).unwrap();
        let header = jsonwebtoken::decode_header(&a).unwrap();
        assert_eq!(header.alg, alg);
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        assert_eq!(header.kid.as_deref(), Some(key.kid()));
        let ca = verify(&a, &public, alg);
        let cb = verify(&b, &public, alg);
        assert_eq!(ca["iss"], client_id);
        assert_eq!(ca["sub"], client_id);
        assert_eq!(ca["aud"], aud);
        let exp = ca["exp"].as_i64().unwrap();
        assert!(
            exp > now && exp <= now + 300,
            "exp at most five minutes ahead"
        );
        assert_ne!(ca["jti"], cb["jti"], "a fresh jti every time");
        assert!(ca["jti"].as_str().unwrap().len() >= 32);
        // Debug never shows key material.
        let shown = format!("{key:?}");
        assert_eq!(
            shown,
            format!(
                "SigningKey {{ alg: {:?}, kid: {:?}, .. }}",
                key.algorithm(),
                key.kid()
            )
        );
    }
}
