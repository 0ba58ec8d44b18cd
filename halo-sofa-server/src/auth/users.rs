//! Who is at the browser during an authorization request (REQ AS-04): a trait the host
//! implements against its own login, a development login page with configured users, and an
//! auto-approve mode for automated tests and the demo.

use std::collections::HashMap;
use std::fmt;

use axum::response::{Html, IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::BoxFuture;

/// An authenticated end user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedUser {
    /// The user id, compared with the user that set a launch (REQ SC-09).
    pub id: String,
    /// The user's FHIR resource (`Practitioner/123`), when known: the `fhirUser` claim when
    /// the launch did not set one.
    pub fhir_user: Option<String>,
}

/// What the authenticator decided.
#[derive(Debug)]
pub enum Authentication {
    /// The user is known; authorization continues.
    User(AuthenticatedUser),
    /// Show this to the browser (a login form); the request is repeated once the user acts.
    Respond(Response),
    /// The user failed to sign in or refused.
    Denied,
}

/// The authorize request as the authenticator sees it: its parameters (query or form, login
/// fields included) and the action URL to post a login form back to.
#[derive(Debug, Clone)]
pub struct LoginRequest<'a> {
    /// Every parameter of the request.
    pub params: &'a [(String, String)],
    /// Where a login form posts (the authorize endpoint).
    pub action: &'a str,
}

/// Authenticates the end user of an authorization request.
pub trait UserAuthenticator: Send + Sync + 'static {
    /// Decides who is at the browser.
    fn authenticate<'a>(&'a self, request: LoginRequest<'a>) -> BoxFuture<'a, Authentication>;
}

/// Approves every request as one configured user (automated tests, the demo). Never for
/// production.
#[derive(Debug, Clone)]
pub struct AutoApprove {
    user: AuthenticatedUser,
}

impl AutoApprove {
    /// Approves as `id`, with an optional `fhirUser`.
    pub fn new(id: impl Into<String>, fhir_user: Option<&str>) -> AutoApprove {
        AutoApprove {
            user: AuthenticatedUser {
                id: id.into(),
                fhir_user: fhir_user.map(str::to_string),
            },
        }
    }
}

impl UserAuthenticator for AutoApprove {
    fn authenticate<'a>(&'a self, _: LoginRequest<'a>) -> BoxFuture<'a, Authentication> {
        let user = self.user.clone();
        Box::pin(async move { Authentication::User(user) })
    }
}

/// A development login page: a form of user name and password for configured users. The form
/// posts the authorization request back (authorize-post) with the credentials; nothing is kept
/// between requests.
#[derive(Default)]
pub struct DevLogin {
    users: HashMap<String, ([u8; 32], Option<String>)>,
}

impl fmt::Debug for DevLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevLogin")
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl DevLogin {
    /// No users yet.
    pub fn new() -> DevLogin {
        DevLogin::default()
    }

    /// Adds a user; the password is kept as its SHA-256.
    pub fn user(mut self, id: impl Into<String>, password: &str, fhir_user: Option<&str>) -> Self {
        self.users.insert(
            id.into(),
            (
                Sha256::digest(password.as_bytes()).into(),
                fhir_user.map(str::to_string),
            ),
        );
        self
    }

    fn page(request: &LoginRequest<'_>, failed: bool) -> Response {
        let hidden: String = request
            .params
            .iter()
            .filter(|(k, _)| k != "username" && k != "password")
            .map(|(k, v)| {
                format!(
                    "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                    escape(k),
                    escape(v)
                )
            })
            .collect();
        let message = if failed {
            "<p role=\"alert\">Unknown user or wrong password.</p>"
        } else {
            ""
        };
        Html(format!(
            "<!doctype html><html><head><title>Sign in</title></head><body><h1>Sign in \
             (development)</h1>{message}<form method=\"post\" action=\"{}\">{hidden}<label>User \
             <input name=\"username\"></label><label>Password <input name=\"password\" \
             type=\"password\"></label><button>Sign in</button></form></body></html>",
            escape(request.action)
        ))
        .into_response()
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl UserAuthenticator for DevLogin {
    fn authenticate<'a>(&'a self, request: LoginRequest<'a>) -> BoxFuture<'a, Authentication> {
        let get = |name: &str| {
            request
                .params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let outcome = match (get("username"), get("password")) {
            (Some(name), Some(password)) => match self.users.get(name) {
                Some((hash, fhir_user)) => {
                    let presented: [u8; 32] = Sha256::digest(password.as_bytes()).into();
                    if bool::from(presented.ct_eq(hash)) {
                        Authentication::User(AuthenticatedUser {
                            id: name.to_string(),
                            fhir_user: fhir_user.clone(),
                        })
                    } else {
                        Authentication::Respond(DevLogin::page(&request, true))
                    }
                }
                None => Authentication::Respond(DevLogin::page(&request, true)),
            },
            _ => Authentication::Respond(DevLogin::page(&request, false)),
        };
        Box::pin(async move { outcome })
    }
}
