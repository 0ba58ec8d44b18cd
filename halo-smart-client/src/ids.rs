//! Typed values of an app's registration, in the manner of oauth2-rs: a [`ClientId`] and a
//! [`RedirectUrl`] are distinct types, so a [`ClientConfig`](crate::ClientConfig) cannot be
//! built with its strings swapped, and a redirect URI is checked once, when it is made.

use std::fmt;

use url::Url;

use crate::error::{Result, SmartError};

/// Longest accepted client id or redirect URI: registrations are short, and a bound keeps a
/// misconfiguration from growing every request.
const MAX_LEN: usize = 2048;

/// The `client_id` an authorization server issued to the app (RFC 6749 §2.2).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ClientId(String);

impl ClientId {
    /// A client id as the authorization server issued it. Fails when it is empty, longer than
    /// 2048 bytes or holds a control character (none of which a server issues).
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        if id.is_empty() {
            return Err(SmartError::config("the client id is empty"));
        }
        if id.len() > MAX_LEN {
            return Err(SmartError::config(format!(
                "the client id is longer than {MAX_LEN} bytes"
            )));
        }
        if id.chars().any(char::is_control) {
            return Err(SmartError::config(
                "the client id holds a control character",
            ));
        }
        Ok(Self(id))
    }

    /// The id, as sent on authorize and token requests.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ClientId").field(&self.0).finish()
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ClientId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for ClientId {
    type Error = SmartError;

    fn try_from(id: &str) -> Result<Self> {
        Self::new(id)
    }
}

impl TryFrom<String> for ClientId {
    type Error = SmartError;

    fn try_from(id: String) -> Result<Self> {
        Self::new(id)
    }
}

impl From<ClientId> for String {
    fn from(id: ClientId) -> String {
        id.0
    }
}

/// The app's registered `redirect_uri`: an absolute URL without a fragment (RFC 6749 §3.1.2).
/// It keeps the text it was made from, because authorize and token requests must send the
/// registered URI byte for byte, and a parsed URL may be written back differently.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RedirectUrl {
    text: String,
    url: Url,
}

impl RedirectUrl {
    /// A redirect URI. Fails when it is not an absolute URL, has a fragment, or is longer than
    /// 2048 bytes.
    pub fn new(uri: impl Into<String>) -> Result<Self> {
        let text = uri.into();
        let bad = |why: &str| SmartError::config(format!("the redirect URI {why}"));
        if text.len() > MAX_LEN {
            return Err(bad(&format!("is longer than {MAX_LEN} bytes")));
        }
        let url = Url::parse(&text).map_err(|e| bad(&format!("is not an absolute URL ({e})")))?;
        if url.cannot_be_a_base() {
            return Err(bad("is not a hierarchical URL"));
        }
        if url.fragment().is_some() {
            return Err(bad("must not have a fragment"));
        }
        Ok(Self { text, url })
    }

    /// The URI exactly as it was given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The URI, parsed.
    pub fn url(&self) -> &Url {
        &self.url
    }
}

impl fmt::Debug for RedirectUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RedirectUrl").field(&self.text).finish()
    }
}

impl fmt::Display for RedirectUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl AsRef<str> for RedirectUrl {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl TryFrom<&str> for RedirectUrl {
    type Error = SmartError;

    fn try_from(uri: &str) -> Result<Self> {
        Self::new(uri)
    }
}

impl TryFrom<String> for RedirectUrl {
    type Error = SmartError;

    fn try_from(uri: String) -> Result<Self> {
        Self::new(uri)
    }
}

impl TryFrom<Url> for RedirectUrl {
    type Error = SmartError;

    fn try_from(uri: Url) -> Result<Self> {
        Self::new(String::from(uri))
    }
}

impl From<RedirectUrl> for String {
    fn from(uri: RedirectUrl) -> String {
        uri.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientAuth, ClientConfig};

    // REQ: APP-04
    #[test]
    fn redirect_urls_are_checked_and_kept_byte_for_byte() {
        let uri = RedirectUrl::new("https://app.example/cb?x=1&y=%41").unwrap();
        assert_eq!(uri.as_str(), "https://app.example/cb?x=1&y=%41");
        assert_eq!(uri.url().host_str(), Some("app.example"));
        for bad in ["", "/cb", "app/cb", "https://app/cb#frag", "mailto:a@b"] {
            let err = RedirectUrl::new(bad).unwrap_err();
            assert_eq!(err.code(), "config_invalid", "{bad}");
            assert!(err.to_string().contains("redirect URI"), "{bad}: {err}");
        }
        assert!(RedirectUrl::new(format!("https://a/{}", "x".repeat(MAX_LEN))).is_err());
    }

    #[test]
    fn client_ids_are_non_empty_bounded_and_printable() {
        assert_eq!(ClientId::new("app-1").unwrap().as_str(), "app-1");
        for bad in [String::new(), "a\nb".into(), "x".repeat(MAX_LEN + 1)] {
            let err = ClientId::new(bad.clone()).unwrap_err();
            assert!(err.to_string().contains("client id"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn a_config_holds_the_typed_values() {
        let config = ClientConfig::new(
            ClientId::try_from("app").unwrap(),
            RedirectUrl::try_from("https://app/cb").unwrap(),
            "launch",
            ClientAuth::Public,
        );
        assert_eq!(config.client_id.as_str(), "app");
        assert_eq!(config.redirect_uri.as_str(), "https://app/cb");
    }
}
