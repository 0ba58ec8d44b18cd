//! Token revocation, RFC 7009: how an app signs out. The client authenticates as at the token
//! endpoint (a public client names itself with `client_id`). A refresh token or an access
//! token issued to that client revokes its whole grant: every refresh token and access token
//! of the family, as rows of the store that every instance consults (REQ IDP-05).
//!
//! An unknown, expired or already revoked token, or a token of another client, changes nothing
//! and is answered 200 like a revoked one (§2.2): the endpoint tells no caller whether a token
//! exists.

use std::sync::Arc;

use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Form};
use halo_model::oauth::OAuthError;

use super::answers::{no_store, oauth_error};
use super::builtin::TokenVerifier;
use super::client_auth::ClientAuthenticator;
use super::clients::RegisteredClient;
use super::decide::single;
use super::families::Families;
use crate::tls::PeerCertificate;

/// What revocation needs: who may ask, how tokens are checked, and the families to revoke.
pub(crate) struct Revocation {
    pub(crate) clients: Arc<ClientAuthenticator>,
    pub(crate) verifier: Arc<TokenVerifier>,
    pub(crate) families: Families,
}

pub(super) async fn revoke(
    State(service): State<Arc<Revocation>>,
    headers: HeaderMap,
    peer: Option<Extension<PeerCertificate>>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let Ok(Form(params)) = form else {
        return oauth_error(&headers, &OAuthError::invalid_request("send a form"));
    };
    let result = async {
        let client = service
            .clients
            .authenticate(&headers, &params, peer.as_deref())
            .await?;
        let token = single(&params, "token")?
            .ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
        // `token_type_hint` only says where to look first (§2.1); both kinds are looked up.
        if let Some(family) = family_of(&service, &client, token).await? {
            service.families.revoke(&family).await?;
        }
        Ok::<(), OAuthError>(())
    };
    match result.await {
        Ok(()) => no_store(StatusCode::OK, String::new()),
        Err(error) => oauth_error(&headers, &error),
    }
}

/// The grant family of `token` (a refresh token, else an access token), if it was issued to
/// `client`.
async fn family_of(
    service: &Revocation,
    client: &RegisteredClient,
    token: &str,
) -> Result<Option<String>, OAuthError> {
    let refresh = service.families.find_refresh(token).await?;
    if let Some(record) = refresh {
        return Ok((record.client_id == client.client_id).then_some(record.family_id));
    }
    Ok(match service.verifier.verify(token).await {
        Ok(verified) if verified.claims.client_id == client.client_id => verified.claims.fam,
        _ => None,
    })
}
