//! Token introspection, RFC 7662 (REQ AS-09, IDP-08): the caller authenticates as a registered
//! confidential client;
//! an invalid, expired or revoked token is only `{"active": false}`.

use std::sync::Arc;

use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Form};
use halo_model::oauth::OAuthError;
use halo_model::smart::IntrospectionResponse;
use serde_json::json;

use super::answers::{no_store, oauth_error};
use super::builtin::TokenVerifier;
use super::client_auth::ClientAuthenticator;
use super::decide::single;
use crate::tls::PeerCertificate;

/// What introspection needs: who may ask, and how tokens are checked.
pub(crate) struct Introspection {
    pub(crate) clients: Arc<ClientAuthenticator>,
    pub(crate) verifier: Arc<TokenVerifier>,
}

pub(super) async fn introspect(
    State(service): State<Arc<Introspection>>,
    headers: HeaderMap,
    peer: Option<Extension<PeerCertificate>>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let Ok(Form(params)) = form else {
        return oauth_error(&headers, &OAuthError::invalid_request("send a form"));
    };
    match service
        .clients
        .authenticate(&headers, &params, peer.as_deref())
        .await
    {
        // REQ IDP-08: only resource servers and PoCs, which can keep a credential, may learn
        // whose a token is; a public client proves nothing by naming its client_id.
        Ok(client) if client.authentication.is_confidential() => {}
        Ok(_) => {
            return oauth_error(
                &headers,
                &OAuthError::invalid_client(
                    "introspection is for authenticated confidential clients",
                ),
            );
        }
        Err(error) => return oauth_error(&headers, &error),
    }
    let token = match single(&params, "token").map_err(OAuthError::from) {
        Ok(Some(token)) => token,
        Ok(None) => return oauth_error(&headers, &OAuthError::invalid_request("token is missing")),
        Err(error) => return oauth_error(&headers, &error),
    };
    let Ok(verified) = service.verifier.verify(token).await else {
        return no_store(StatusCode::OK, json!({"active": false}).to_string());
    };
    let claims = verified.claims;
    let mut response = IntrospectionResponse::active(claims.scope, claims.client_id, claims.exp);
    response.iat = Some(claims.iat);
    response.token_type = Some("Bearer".into());
    response.iss = Some(claims.iss);
    response.sub = Some(claims.sub);
    response.jti = Some(claims.jti);
    response.username = claims.user;
    response.fhir_user = claims.fhir_user;
    // RFC 8705 §3.2: a resource server relying on introspection checks the binding itself.
    if let Some(cnf) = claims.cnf {
        response.extra.insert("cnf".into(), cnf);
    }
    if let Some(launch) = &verified.launch {
        response.set_launch_context(launch.launch_context());
    }
    match serde_json::to_string(&response) {
        Ok(body) => no_store(StatusCode::OK, body),
        Err(_) => oauth_error(&headers, &OAuthError::server_error("encoding failed")),
    }
}
