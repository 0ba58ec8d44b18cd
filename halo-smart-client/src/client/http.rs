//! The few HTTP primitives the shell needs, with the crate's limits: a timeout on every call, no
//! redirects (a redirect could carry the bearer token elsewhere), bounded bodies.

use reqwest::header::{CONTENT_TYPE, HeaderMap};

use crate::error::{Result, SmartError};
use crate::token::TokenRequest;

/// An HTTP answer read in full (within the size limit).
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub(crate) fn content_type(&self) -> Option<&str> {
        self.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok())
    }
}

/// Maps a reqwest failure to a typed error that names the endpoint but never the request.
pub(crate) fn transport(endpoint: &str, e: &reqwest::Error) -> SmartError {
    if e.is_timeout() {
        SmartError::Timeout {
            endpoint: endpoint.to_owned(),
        }
    } else {
        let kind = if e.is_connect() {
            "connection failed"
        } else if e.is_body() || e.is_decode() {
            "the answer could not be read"
        } else {
            "the request failed"
        };
        SmartError::Transport {
            endpoint: endpoint.to_owned(),
            reason: kind.to_owned(),
        }
    }
}

/// Sends a request and reads the whole answer, refusing bodies over `max_body`.
pub(crate) async fn send(
    request: reqwest::RequestBuilder,
    endpoint: &str,
    max_body: usize,
) -> Result<Answer> {
    let mut response = request.send().await.map_err(|e| transport(endpoint, &e))?;
    let too_big = || SmartError::invalid_response(endpoint, "the answer is too large");
    if response
        .content_length()
        .is_some_and(|n| n > u64::try_from(max_body).unwrap_or(u64::MAX))
    {
        return Err(too_big());
    }
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport(endpoint, &e))?
    {
        if body.len() + chunk.len() > max_body {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// POSTs a token-endpoint form.
pub(crate) async fn post_form(
    http: &reqwest::Client,
    request: &TokenRequest,
    endpoint: &str,
    max_body: usize,
) -> Result<Answer> {
    let mut builder = http
        .post(request.url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .form(&request.form);
    if let Some(auth) = &request.authorization {
        let mut value = reqwest::header::HeaderValue::from_str(auth.expose())
            .map_err(|_| SmartError::config("the client credentials contain invalid characters"))?;
        value.set_sensitive(true);
        builder = builder.header(reqwest::header::AUTHORIZATION, value);
    }
    send(builder, endpoint, max_body).await
}

/// GETs a JSON document (discovery, JWKS, OpenID configuration).
pub(crate) async fn get_json(
    http: &reqwest::Client,
    url: &url::Url,
    endpoint: &str,
    max_body: usize,
) -> Result<Answer> {
    let builder = http
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json");
    send(builder, endpoint, max_body).await
}
