//! The redirect back to the app: `code` and `state`, or an OAuth error.

use crate::binding::BrowserBinding;
use crate::error::{OAuthFailure, Result, SmartError};
use crate::secret::Secret;
use crate::store::PendingLaunch;
use crate::token::clip;

/// The query of the redirect to `redirect_uri`.
#[derive(Debug, Clone)]
pub struct Callback {
    /// `state`, if present.
    pub state: Option<String>,
    /// `code`, if present.
    pub code: Option<Secret>,
    /// The OAuth error, if the server sent one.
    pub error: Option<OAuthFailure>,
}

impl Callback {
    /// Parses the callback's query string (with or without `?`). Repeated parameters are refused:
    /// a second `state` or `code` can only come from tampering.
    pub fn from_query(query: &str) -> Result<Self> {
        let query = query.strip_prefix('?').unwrap_or(query);
        let mut state = None;
        let mut code = None;
        let mut error = None;
        let mut description = None;
        let mut uri = None;
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            let slot = match k.as_ref() {
                "state" => &mut state,
                "code" => &mut code,
                "error" => &mut error,
                "error_description" => &mut description,
                "error_uri" => &mut uri,
                _ => continue,
            };
            if slot.is_some() {
                return Err(SmartError::InvalidCallback {
                    reason: format!("\"{k}\" appears more than once"),
                });
            }
            *slot = Some(v.into_owned());
        }
        Ok(Self {
            state: state.filter(|s| !s.is_empty()),
            code: code.filter(|c| !c.is_empty()).map(Secret::new),
            error: error.map(|e| OAuthFailure {
                error: clip(&e),
                description: description.map(|d| clip(&d)),
                uri: uri.map(|u| clip(&u)),
            }),
        })
    }

    /// Checks the callback against the pending launch found under its `state` (`None` when the
    /// store had none: unknown, expired or already used) and the browser binding the browser
    /// presented, and returns the launch and the code. State and binding are checked first, so an
    /// error redirect cannot be forged for someone else's launch or browser.
    pub fn accept(
        self,
        pending: Option<PendingLaunch>,
        binding: Option<&str>,
    ) -> Result<(PendingLaunch, Secret)> {
        if self.state.is_none() {
            return Err(SmartError::InvalidState {
                reason: "the callback has no state".into(),
            });
        }
        let pending = pending.ok_or_else(|| SmartError::InvalidState {
            reason: "the state is unknown, expired or already used".into(),
        })?;
        if !BrowserBinding::matches(&pending.browser_binding, binding) {
            return Err(SmartError::BrowserMismatch {
                reason: if binding.is_some() {
                    "the browser presented another launch's binding".into()
                } else {
                    "the browser presented no binding for this launch (cookie missing)".into()
                },
            });
        }
        if let Some(failure) = self.error {
            return Err(SmartError::AuthorizationDenied(failure));
        }
        let code = self.code.ok_or_else(|| SmartError::InvalidCallback {
            reason: "the callback has neither a code nor an error".into(),
        })?;
        Ok((pending, code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> PendingLaunch {
        PendingLaunch {
            state: "s".into(),
            iss: "https://ehr/fhir".into(),
            aud: "https://ehr/fhir".into(),
            launch: None,
            client_id: "app".into(),
            redirect_uri: "https://app/cb".into(),
            code_verifier: Secret::new("v"),
            token_endpoint: "https://ehr/token".into(),
            scope: "launch".into(),
            required_context: vec![],
            expires_at: i64::MAX,
            browser_binding: BrowserBinding::digest_of(BOUND),
        }
    }

    /// The value the browser that started the launch holds.
    const BOUND: &str = "the-browser-that-started-it";

    // REQ: APP-06
    #[test]
    fn callbacks_are_checked_state_first() {
        let (p, code) = Callback::from_query("?code=abc&state=s")
            .unwrap()
            .accept(Some(pending()), Some(BOUND))
            .unwrap();
        assert_eq!((p.state.as_str(), code.expose()), ("s", "abc"));
        let missing = Callback::from_query("code=abc")
            .unwrap()
            .accept(Some(pending()), Some(BOUND));
        assert_eq!(missing.unwrap_err().code(), "state_invalid");
        let unknown = Callback::from_query("code=abc&state=zz")
            .unwrap()
            .accept(None, Some(BOUND));
        assert_eq!(unknown.unwrap_err().code(), "state_invalid");
        let denied = Callback::from_query(
            "error=access_denied&error_description=User+said+no&error_uri=https%3A%2F%2Fx&state=s",
        )
        .unwrap()
        .accept(Some(pending()), Some(BOUND))
        .unwrap_err();
        assert_eq!(denied.code(), "authorization_denied");
        assert!(denied.user_message().contains("not granted"));
        assert!(denied.to_string().contains("User said no"));
        let no_code = Callback::from_query("state=s")
            .unwrap()
            .accept(Some(pending()), Some(BOUND));
        assert_eq!(no_code.unwrap_err().code(), "callback_invalid");
        assert!(Callback::from_query("state=a&state=b").is_err());
        // Login CSRF: the right state from a browser that did not start the launch, or from
        // one whose cookie was blocked. Checked before an error redirect is believed.
        for presented in [None, Some("another-browser")] {
            let foreign = Callback::from_query("code=abc&state=s")
                .unwrap()
                .accept(Some(pending()), presented)
                .unwrap_err();
            assert_eq!(foreign.code(), "browser_mismatch");
            let foreign_error = Callback::from_query("error=access_denied&state=s")
                .unwrap()
                .accept(Some(pending()), presented)
                .unwrap_err();
            assert_eq!(foreign_error.code(), "browser_mismatch");
        }
        assert!(!format!("{:?}", Callback::from_query("code=abc").unwrap()).contains("abc"));
    }
}
