//! Binding a launch to the browser that started it.
//!
//! `state` proves that a callback answers a launch this app started; it does not prove that the
//! browser presenting it is the one that started it. Without more, an attacker can start a launch
//! in their own browser, stop before the callback, and get a clinician's browser to open the
//! callback link: the clinician is then signed in to the attacker's session and records data
//! against it (login CSRF, RFC 9700 §4.7). So [`crate::SmartClient::begin_launch`] also returns a
//! [`BrowserBinding`]: a random value the app stores in the browser (an HttpOnly cookie) while
//! the pending launch keeps only its digest. [`crate::SmartClient::complete_launch`] refuses a
//! callback whose browser does not present the same value.
//!
//! The cookie is built to survive an EMR's frame: HALO apps are often shown in an iframe of the
//! EMR's page, on another site, where browsers block third-party cookies. A `Partitioned` cookie
//! (CHIPS) is not a third-party cookie in that sense: it is kept per top-level site, so the frame
//! that set it gets it back, and nothing else does. `Partitioned` needs `Secure`, and `Secure`
//! needs a secure context: https, or plain http on loopback during development.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::authorize::random_token;
use crate::error::Result;
use crate::secret::Secret;

/// The start of every binding cookie's name. `__Host-` makes the browser refuse the cookie
/// unless it is `Secure`, has `Path=/` and no `Domain`, so no other host can plant one.
pub const COOKIE_PREFIX: &str = "__Host-halo-bind-";

/// How long a launch's binding cookie lives: the default lifetime of a pending launch.
pub const LAUNCH_COOKIE_MAX_AGE: Duration = Duration::from_secs(600);

/// A random value stored in the browser for one key (a launch's `state`, or an app's own session
/// id). Its `Debug` output never shows the value.
#[derive(Clone)]
pub struct BrowserBinding {
    key: String,
    value: Secret,
}

impl std::fmt::Debug for BrowserBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserBinding")
            .field("cookie", &Self::cookie_name(&self.key))
            .field("value", &self.value)
            .finish()
    }
}

impl BrowserBinding {
    /// A fresh binding for `key`: 256 bits from the OS random generator.
    pub fn generate(key: &str) -> Result<Self> {
        Ok(Self {
            key: key.to_owned(),
            value: Secret::new(random_token(32)?),
        })
    }

    /// The value to store in the browser.
    pub fn value(&self) -> &str {
        self.value.expose()
    }

    /// What the server keeps instead of the value: its SHA-256, base64url. A leaked store then
    /// does not let anyone complete the launches in it.
    pub fn digest(&self) -> String {
        Self::digest_of(self.value.expose())
    }

    /// The digest of a presented value.
    pub fn digest_of(value: &str) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(value.as_bytes()))
    }

    /// Whether `presented` is the value whose digest is `digest`, compared in constant time. An
    /// empty digest (a pending launch stored before bindings existed) matches nothing.
    pub fn matches(digest: &str, presented: Option<&str>) -> bool {
        match presented {
            Some(value) if !digest.is_empty() => {
                let presented = Self::digest_of(value);
                presented.as_bytes().ct_eq(digest.as_bytes()).into()
            }
            _ => false,
        }
    }

    /// The cookie name for `key`. Each key gets its own cookie, so two launches in flight in one
    /// browser (two tabs, two frames) do not overwrite each other's binding. The key is hashed so
    /// the name has a fixed length and only cookie-safe characters.
    pub fn cookie_name(key: &str) -> String {
        let tag = URL_SAFE_NO_PAD.encode(Sha256::digest(key.as_bytes()));
        format!("{COOKIE_PREFIX}{}", &tag[..16])
    }

    /// A `Set-Cookie` value storing this binding for `max_age`: `HttpOnly` (no script reads it),
    /// `Secure`, `SameSite=None` (the callback arrives from the authorization server's site, in a
    /// frame of the EMR's site) and `Partitioned` (kept inside an EMR frame that blocks
    /// third-party cookies).
    pub fn set_cookie(&self, max_age: Duration) -> String {
        format!(
            "{}={}; Path=/; Max-Age={}; HttpOnly; Secure; SameSite=None; Partitioned",
            Self::cookie_name(&self.key),
            self.value.expose(),
            max_age.as_secs()
        )
    }

    /// A `Set-Cookie` value that removes the cookie of `key` (after the callback used it).
    pub fn clear_cookie(key: &str) -> String {
        format!(
            "{}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=None; Partitioned",
            Self::cookie_name(key)
        )
    }

    /// The value stored for `key` in a request's `Cookie` header, if any.
    pub fn from_cookie_header(key: &str, cookie_header: &str) -> Option<String> {
        let name = Self::cookie_name(key);
        cookie_header
            .split(';')
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The launch binding a callback's browser presents: the cookie named after the callback's
    /// `state`. `None` when the callback has no state or the browser sent no such cookie.
    pub fn from_callback(callback_query: &str, cookie_header: Option<&str>) -> Option<String> {
        let query = callback_query.strip_prefix('?').unwrap_or(callback_query);
        let state = url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned())?;
        Self::from_cookie_header(&state, cookie_header?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // REQ: APP-06
    // REQ: SEC-01
    #[test]
    fn a_binding_round_trips_through_its_cookie_and_nothing_else_matches() {
        let a = BrowserBinding::generate("state-a").unwrap();
        let b = BrowserBinding::generate("state-b").unwrap();
        assert_eq!(a.value().len(), 43);
        assert_ne!(a.value(), b.value());
        let set = a.set_cookie(LAUNCH_COOKIE_MAX_AGE);
        assert!(set.starts_with("__Host-halo-bind-"), "{set}");
        for attribute in [
            "Path=/",
            "Max-Age=600",
            "HttpOnly",
            "Secure",
            "SameSite=None",
            "Partitioned",
        ] {
            assert!(set.contains(&format!("; {attribute}")), "{set}");
        }
        // What a browser sends back: its name=value pairs, other cookies around it.
        let (pair, _) = set.split_once(';').unwrap();
        let set_b = b.set_cookie(LAUNCH_COOKIE_MAX_AGE);
        let (pair_b, _) = set_b.split_once(';').unwrap();
        let header = format!("theme=dark; {pair_b}; {pair}");
        let presented = BrowserBinding::from_callback("code=c&state=state-a", Some(&header));
        assert_eq!(presented.as_deref(), Some(a.value()));
        assert!(BrowserBinding::matches(&a.digest(), presented.as_deref()));
        assert!(!BrowserBinding::matches(&b.digest(), presented.as_deref()));
        assert!(!BrowserBinding::matches(&a.digest(), None));
        assert!(!BrowserBinding::matches("", presented.as_deref()));
        assert_eq!(
            BrowserBinding::from_callback("code=c&state=other", Some(&header)),
            None
        );
        assert_eq!(BrowserBinding::from_callback("code=c", Some(&header)), None);
        assert_eq!(BrowserBinding::from_callback("state=state-a", None), None);
        assert!(BrowserBinding::clear_cookie("state-a").contains("Max-Age=0"));
        assert!(!format!("{a:?}").contains(a.value()));
    }
}
