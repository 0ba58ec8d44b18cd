//! From the configuration to the authorization server: the registered clients, with the keys
//! of `private_key_jwt` clients (an inline `jwks` or a `jwks_url`), and the key-encryption key
//! that seals the token-signing keys (REQ IDP-06).

use std::path::Path;
use std::sync::Arc;

use halo_sofa_server::auth::{
    AesGcmKek, ClientAuthentication, ClientRegistry, KeyProtector, RegisteredClient,
};
use halo_sofa_server::config::url_allowed;
use halo_sofa_server::tls::TlsClientIdentity;
use serde_json::Value;

use crate::{Client, Config, Error};

/// The registry of the configured clients; a client whose registration is inconsistent stops
/// the start, naming it.
pub(crate) fn client_registry(
    clients: &[Client],
    development_mode: bool,
    mutual_tls: bool,
) -> Result<ClientRegistry, Error> {
    clients
        .iter()
        .try_fold(ClientRegistry::new(), |registry, c| {
            Ok(registry.with(client_with(c, development_mode, mutual_tls)?))
        })
}

/// One configured client as the authorization server registers it, on a server without
/// mutual TLS.
pub fn registered_client(c: &Client, development_mode: bool) -> Result<RegisteredClient, Error> {
    client_with(c, development_mode, false)
}

/// One configured client; `mutual_tls` says whether the server asks for client certificates
/// (`tls.client_ca_file`), which `tls_client_auth` clients need (REQ OPS-03).
fn client_with(
    c: &Client,
    development_mode: bool,
    mutual_tls: bool,
) -> Result<RegisteredClient, Error> {
    let problem = |what: &str| Error::Config(format!("client {}: {what}", c.id));
    let certificate: Vec<TlsClientIdentity> = [
        c.tls_client_auth_subject_dn
            .clone()
            .map(TlsClientIdentity::SubjectDn),
        c.tls_client_auth_san_dns
            .clone()
            .map(TlsClientIdentity::SanDns),
        c.tls_client_auth_san_uri
            .clone()
            .map(TlsClientIdentity::SanUri),
    ]
    .into_iter()
    .flatten()
    .collect();
    let credentials = usize::from(c.secret.is_some())
        + usize::from(c.jwks.is_some())
        + usize::from(c.jwks_url.is_some())
        + certificate.len();
    if credentials > 1 {
        return Err(problem(
            "give at most one of secret, jwks, jwks_url and the tls_client_auth_* keys",
        ));
    }
    let authentication = match (
        &c.secret,
        &c.jwks,
        &c.jwks_url,
        certificate.into_iter().next(),
    ) {
        (None, None, None, None) => ClientAuthentication::Public,
        (None, None, None, Some(identity)) if mutual_tls => {
            ClientAuthentication::TlsClientAuth(identity)
        }
        (None, None, None, Some(_)) => {
            return Err(problem("tls_client_auth needs tls.client_ca_file"));
        }
        (Some(secret), _, _, _) => ClientAuthentication::secret(secret),
        (None, Some(jwks), _, _) => {
            check_jwks(jwks).map_err(|e| problem(&e))?;
            ClientAuthentication::PrivateKeyJwt { jwks: jwks.clone() }
        }
        (None, None, Some(url), _) => {
            // The same rule as every other URL the server fetches (REQ SEC-04).
            if !url_allowed(url, development_mode) {
                return Err(problem(
                    "jwks_url must be https (http only on loopback in development mode)",
                ));
            }
            ClientAuthentication::PrivateKeyJwtUrl {
                jwks_url: url.to_string(),
            }
        }
    };
    let mut client = RegisteredClient::new(c.id.clone(), authentication).scopes(&c.scopes);
    for uri in &c.redirect_uris {
        client = client.redirect_uri(uri.clone());
    }
    if let Some(app_id) = &c.app_id {
        client = client.app_id(app_id.clone());
    }
    if let Some(url) = &c.launch_url {
        client = client.launch_url(url.clone());
    }
    Ok(client)
}

/// A JWK Set with at least one public key of a type `private_key_jwt` verifies (RS384 is RSA,
/// ES384 is EC P-384) and no private part: a registration that carries a private key has
/// leaked it.
pub(crate) fn check_jwks(jwks: &Value) -> Result<(), String> {
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .filter(|k| !k.is_empty())
        .ok_or("jwks must be a JWK Set: {\"keys\": [...]} with at least one key")?;
    for key in keys {
        match key.get("kty").and_then(Value::as_str) {
            Some("RSA" | "EC") => {}
            _ => return Err("every key of jwks must have kty RSA or EC".into()),
        }
        if key.get("d").is_some() {
            return Err("jwks holds a private key (\"d\"): register the public keys only".into());
        }
    }
    Ok(())
}

/// The key-encryption key the configuration names: a file (`key_encryption_key_file`) or an
/// environment variable (`key_encryption_key_env`), never a value in the file itself.
pub(crate) fn key_protector(
    config: &Config,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Arc<dyn KeyProtector>>, Error> {
    let kek = match (
        &config.key_encryption_key_file,
        &config.key_encryption_key_env,
    ) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(Error::Config(
                "give one of key_encryption_key_file and key_encryption_key_env".into(),
            ));
        }
        (Some(file), None) => AesGcmKek::from_file(Path::new(file)),
        (None, Some(name)) => {
            let text = env(name).ok_or_else(|| {
                Error::Config(format!(
                    "key_encryption_key_env: the variable {name} is not set"
                ))
            })?;
            AesGcmKek::from_base64(&text).map_err(|e| {
                halo_sofa_server::protect::ProtectError(format!("the variable {name}: {e}"))
            })
        }
    }
    .map_err(|e| Error::Config(e.to_string()))?;
    Ok(Some(Arc::new(kek)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn client() -> Client {
        Client::point_of_care("emr", "s", "Context.write")
    }

    // REQ: AS-11
    #[test]
    fn a_client_names_one_way_to_authenticate_and_only_public_keys() {
        let mut both = client();
        both.jwks_url = Some("https://emr.example.org/jwks.json".into());
        assert!(registered_client(&both, false).is_err());
        let mut url = client();
        url.secret = None;
        url.jwks_url = Some("http://emr.example.org/jwks.json".into());
        let error = registered_client(&url, true).unwrap_err().to_string();
        assert!(error.contains("jwks_url"), "{error}");
        url.jwks_url = Some("https://emr.example.org/jwks.json".into());
        assert!(registered_client(&url, false).is_ok());
        let mut inline = client();
        inline.secret = None;
        inline.jwks = Some(json!({"keys": [{"kty": "EC", "crv": "P-384", "d": "x"}]}));
        let error = registered_client(&inline, true).unwrap_err().to_string();
        assert!(error.contains("private key"), "{error}");
        inline.jwks = Some(json!({"keys": []}));
        assert!(registered_client(&inline, true).is_err());
    }
}
