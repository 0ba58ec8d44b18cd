//! The app's private signing key for `private_key_jwt` (RS384 or ES384).
//!
//! Keys usually come as JWKs (the SMART spec publishes its example keys that way). `jsonwebtoken`
//! takes DER, so a JWK is converted here to PKCS#1 DER (RSA) or PKCS#8 DER (EC P-384) with a few
//! lines of DER writing rather than pulling in a second crypto or ASN.1 crate.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;

use crate::error::{Result, SmartError};

/// The two client-assertion algorithms SMART requires clients to support.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// ECDSA on P-384 with SHA-384.
    Es384,
}

impl SigningAlgorithm {
    /// The JOSE name (`RS384`, `ES384`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rs384 => "RS384",
            Self::Es384 => "ES384",
        }
    }

    pub(crate) fn jwt(self) -> Algorithm {
        match self {
            Self::Rs384 => Algorithm::RS384,
            Self::Es384 => Algorithm::ES384,
        }
    }
}

/// A private key with its `kid`, ready to sign client assertions. `Debug` shows only the algorithm
/// and `kid`, never key material.
#[derive(Clone)]
pub struct SigningKey {
    alg: SigningAlgorithm,
    kid: String,
    key: EncodingKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Loads a private JWK (`kty` `RSA` with `n`,`e`,`d`,`p`,`q`,`dp`,`dq`,`qi`, or `kty` `EC`
    /// with `crv` `P-384`,`x`,`y`,`d`). The `kid` is required: SMART servers pick the
    /// verification key by it.
    ///
    /// ```
    /// # use halo_smart_client::keys::SigningKey;
    /// let jwk = r#"{"kty":"EC","crv":"P-384","kid":"k1",
    ///   "x":"wcE8O55ro6aOuTf5Ty1k_IG4mTcuLiVercHouge1G5Ri-leevhev4uJzlHpi3U8r",
    ///   "y":"mLRgz8Giu6XA_AqG8bywqbygShmd8jowflrdx0KQtM5X4s4aqDeCRfcpexykp3aI",
    ///   "d":"WcrTiYk8jbI-Sd1sKNpqGmELWGG08bf_y9SSlnC4cpAl5GRdHHN9gKYlPvMFqiJ5"}"#;
    /// let key = SigningKey::from_jwk_str(jwk)?;
    /// assert_eq!(key.kid(), "k1");
    /// # Ok::<(), halo_smart_client::SmartError>(())
    /// ```
    pub fn from_jwk(jwk: &Value) -> Result<Self> {
        let kid = str_field(jwk, "kid")?.to_owned();
        let (alg, key) = match str_field(jwk, "kty")? {
            "RSA" => {
                let mut parts = Vec::with_capacity(9);
                parts.push(der_uint(&[0]));
                for name in ["n", "e", "d", "p", "q", "dp", "dq", "qi"] {
                    parts.push(der_uint(&b64_field(jwk, name)?));
                }
                let der = der_tlv(0x30, &parts.concat());
                (SigningAlgorithm::Rs384, EncodingKey::from_rsa_der(&der))
            }
            "EC" => {
                if str_field(jwk, "crv")? != "P-384" {
                    return Err(SmartError::config(
                        "EC signing keys must be on curve P-384 (ES384)",
                    ));
                }
                let der = ec_p384_pkcs8(
                    &b64_field(jwk, "d")?,
                    &b64_field(jwk, "x")?,
                    &b64_field(jwk, "y")?,
                )?;
                (SigningAlgorithm::Es384, EncodingKey::from_ec_der(&der))
            }
            other => {
                return Err(SmartError::config(format!(
                    "unsupported JWK key type {other:?} (expected RSA or EC)"
                )));
            }
        };
        if let Some(declared) = jwk.get("alg").and_then(Value::as_str)
            && declared != alg.as_str()
        {
            return Err(SmartError::config(format!(
                "JWK declares alg {declared}, but only {} is usable with this key",
                alg.as_str()
            )));
        }
        Self::checked(alg, kid, key)
    }

    /// Loads a private JWK from its JSON text.
    pub fn from_jwk_str(json: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(json)
            .map_err(|e| SmartError::config(format!("signing key is not JSON: {e}")))?;
        Self::from_jwk(&value)
    }

    /// Picks the private key with this `kid` out of a JWKS (`{"keys": [...]}`) text.
    pub fn from_jwks_str(json: &str, kid: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(json)
            .map_err(|e| SmartError::config(format!("key set is not JSON: {e}")))?;
        let keys = value
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| SmartError::config("key set has no \"keys\" array"))?;
        let jwk = keys
            .iter()
            .find(|k| {
                k.get("kid").and_then(Value::as_str) == Some(kid)
                    && k.get("d").is_some_and(Value::is_string)
            })
            .ok_or_else(|| SmartError::config(format!("no private key with kid {kid:?}")))?;
        Self::from_jwk(jwk)
    }

    /// Loads a PEM private key (PKCS#1 or PKCS#8 RSA for RS384, PKCS#8 EC P-384 for ES384).
    pub fn from_pem(alg: SigningAlgorithm, kid: impl Into<String>, pem: &[u8]) -> Result<Self> {
        let key = match alg {
            SigningAlgorithm::Rs384 => EncodingKey::from_rsa_pem(pem),
            SigningAlgorithm::Es384 => EncodingKey::from_ec_pem(pem),
        }
        .map_err(|e| SmartError::config(format!("unreadable PEM key: {e}")))?;
        Self::checked(alg, kid.into(), key)
    }

    /// Signs once at load time so that a malformed key fails at startup with a clear message
    /// rather than at the first token request.
    fn checked(alg: SigningAlgorithm, kid: String, key: EncodingKey) -> Result<Self> {
        if kid.is_empty() {
            return Err(SmartError::config("signing key needs a non-empty kid"));
        }
        jsonwebtoken::encode(&Header::new(alg.jwt()), &serde_json::json!({}), &key).map_err(
            |_| SmartError::config(format!("the {} private key is not valid", alg.as_str())),
        )?;
        Ok(Self { alg, kid, key })
    }

    /// The signing algorithm.
    pub fn algorithm(&self) -> SigningAlgorithm {
        self.alg
    }

    /// The key id sent in the JWT header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Signs a JWS signing input (`base64url(header) "." base64url(payload)`) and returns the
    /// base64url signature. For checking against published vectors; apps use [`sign`](Self::sign).
    pub fn sign_input(&self, signing_input: &[u8]) -> Result<String> {
        jsonwebtoken::crypto::sign(signing_input, &self.key, self.alg.jwt()).map_err(|e| {
            SmartError::Crypto {
                reason: format!("could not sign: {e}"),
            }
        })
    }

    /// Signs `claims` as a compact JWS with header `alg`, `kid` and `typ: JWT`.
    pub fn sign(&self, claims: &Value) -> Result<String> {
        let mut header = Header::new(self.alg.jwt());
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, claims, &self.key).map_err(|e| SmartError::Crypto {
            reason: format!("could not sign the client assertion: {e}"),
        })
    }
}

fn str_field<'a>(jwk: &'a Value, name: &str) -> Result<&'a str> {
    jwk.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| SmartError::config(format!("signing key JWK lacks \"{name}\"")))
}

fn b64_field(jwk: &Value, name: &str) -> Result<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(str_field(jwk, name)?.trim_end_matches('='))
        .map_err(|_| SmartError::config(format!("JWK member \"{name}\" is not base64url")))
}

fn der_len(len: usize) -> Vec<u8> {
    if len < 0x80 {
        // A single length byte; `len` fits by the branch condition.
        vec![u8::try_from(len).unwrap_or(0)]
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        let mut out = vec![0x80 | u8::try_from(bytes.len()).unwrap_or(0)];
        out.extend(bytes);
        out
    }
}

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(der_len(content.len()));
    out.extend_from_slice(content);
    out
}

/// A DER INTEGER from an unsigned big-endian magnitude.
fn der_uint(magnitude: &[u8]) -> Vec<u8> {
    let trimmed: Vec<u8> = magnitude.iter().copied().skip_while(|b| *b == 0).collect();
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend(trimmed);
    der_tlv(0x02, &content)
}

/// PKCS#8 `PrivateKeyInfo` wrapping an RFC 5915 `ECPrivateKey` on secp384r1.
fn ec_p384_pkcs8(d: &[u8], x: &[u8], y: &[u8]) -> Result<Vec<u8>> {
    const FIELD: usize = 48;
    if d.len() > FIELD || x.len() > FIELD || y.len() > FIELD {
        return Err(SmartError::config("EC P-384 key members are too long"));
    }
    let pad = |v: &[u8]| {
        let mut out = vec![0u8; FIELD - v.len()];
        out.extend_from_slice(v);
        out
    };
    // id-ecPublicKey (1.2.840.10045.2.1) and secp384r1 (1.3.132.0.34).
    const EC_PUBLIC_KEY: [u8; 9] = [0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
    const SECP384R1: [u8; 7] = [0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22];
    let mut point = vec![0x00, 0x04];
    point.extend(pad(x));
    point.extend(pad(y));
    let ec_private_key = der_tlv(
        0x30,
        &[
            der_uint(&[1]),
            der_tlv(0x04, &pad(d)),
            der_tlv(0xA1, &der_tlv(0x03, &point)),
        ]
        .concat(),
    );
    let algorithm = der_tlv(0x30, &[EC_PUBLIC_KEY.as_slice(), &SECP384R1].concat());
    Ok(der_tlv(
        0x30,
        &[der_uint(&[0]), algorithm, der_tlv(0x04, &ec_private_key)].concat(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_integers_are_minimal_and_positive() {
        assert_eq!(der_uint(&[0]), [0x02, 0x01, 0x00]);
        assert_eq!(der_uint(&[0, 0, 0x7f]), [0x02, 0x01, 0x7f]);
        assert_eq!(der_uint(&[0x80]), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(der_len(300), [0x82, 0x01, 0x2c]);
    }

    #[test]
    fn bad_jwks_are_config_errors_not_panics() {
        for bad in [
            "{}",
            "[]",
            r#"{"kty":"oct","kid":"a","k":"AAAA"}"#,
            r#"{"kty":"RSA","kid":"a","n":"AQAB","e":"AQAB"}"#,
            r#"{"kty":"EC","kid":"a","crv":"P-256","x":"AA","y":"AA","d":"AA"}"#,
            r#"{"kty":"EC","kid":"a","crv":"P-384","x":"AA","y":"AA","d":"AA"}"#,
            r#"{"kty":"RSA","kid":"a","n":"!!","e":"AQAB"}"#,
        ] {
            let err = SigningKey::from_jwk_str(bad).unwrap_err();
            assert_eq!(err.code(), "config_invalid", "{bad}");
        }
    }
}
