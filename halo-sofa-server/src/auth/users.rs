//! Who is at the browser during an authorization request (REQ AS-04): a trait the host
//! implements against its own login, a development login page with configured users, and an
//! auto-approve mode for automated tests and the demo.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

use crate::pages;
use crate::store::BoxFuture;

/// An authenticated end user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedUser {
    /// The user id, compared with the owner of a launch (D-18, REQ IDP-04).
    pub id: String,
    /// The user's FHIR resource (`Practitioner/123`), when known: the `fhirUser` claim of the
    /// tokens issued to this user.
    pub fhir_user: Option<String>,
}

/// What the authenticator decided.
#[derive(Debug)]
pub enum Authentication {
    /// The user is known; authorization continues.
    User(AuthenticatedUser),
    /// Show this to the browser (a login form, a redirect to an IdP, with any cookies it
    /// sets); the request is repeated once the user acts.
    Respond(Response),
    /// The user failed to sign in or refused.
    Denied,
}

/// The authorize request as the authenticator sees it: the method, the headers (cookies
/// included), its parameters (query or form, login fields included) and the action URL to
/// post a login form back to.
#[derive(Debug, Clone)]
pub struct LoginRequest<'a> {
    /// `GET` or `POST`.
    pub method: &'a Method,
    /// The request's headers.
    pub headers: &'a HeaderMap,
    /// Every parameter of the request.
    pub params: &'a [(String, String)],
    /// Where a login form posts (the authorize endpoint).
    pub action: &'a str,
}

impl LoginRequest<'_> {
    /// The one value of parameter `name`, if it is there exactly once.
    pub fn param(&self, name: &str) -> Option<&str> {
        let mut values = self.params.iter().filter(|(k, _)| k == name);
        match (values.next(), values.next()) {
            (Some((_, v)), None) => Some(v.as_str()),
            _ => None,
        }
    }

    /// The value of cookie `name`, if the request carries it.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        cookie(self.headers, name)
    }
}

/// The value of cookie `name` among `headers`' `Cookie` headers.
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
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

/// The cookie holding the login form's CSRF token (double submit).
const CSRF_COOKIE: &str = "halo_dev_login_csrf";
/// Failed sign-ins of one user name within [`LOCK_WINDOW`] that lock it.
const MAX_FAILURES: u32 = 5;
/// How long failures are counted, and how long a locked name stays locked.
const LOCK_WINDOW: Duration = Duration::from_secs(15 * 60);
/// User names whose failures are tracked at once; beyond this the oldest records go.
const MAX_TRACKED: usize = 10_000;

struct DevUser {
    salt: [u8; 16],
    hash: [u8; 32],
    fhir_user: Option<String>,
}

/// Failed sign-ins of one user name: how many, since when, locked until when.
#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    since: Instant,
    locked_until: Option<Instant>,
}

/// What a sign-in attempt came to, decided by [`DevLogin::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attempt {
    /// Show the empty form.
    Form,
    /// Show the form again, saying why.
    Refused(&'static str),
    /// Signed in.
    User(AuthenticatedUser),
}

/// A development login page: a form of user name and password for configured users (REQ
/// IDP-07). Passwords are kept as Argon2id hashes with a random salt; credentials count only
/// when POSTed with the form's CSRF token, which must equal the one in the form's cookie
/// (double submit, so another site cannot sign a browser in); five failures of one user name
/// within fifteen minutes lock it for fifteen minutes. The form posts the authorization
/// request back (authorize-post) with the credentials. Failures are counted per process.
#[derive(Default)]
pub struct DevLogin {
    users: HashMap<String, DevUser>,
    failures: Mutex<HashMap<String, Failures>>,
    /// A hash computed for an unknown user name, so it takes as long as a known one.
    decoy: Option<DevUser>,
}

impl fmt::Debug for DevLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevLogin")
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Argon2id with the crate's default cost (19 MiB, two passes): memory-hard, so a stolen
/// configuration does not give the passwords away cheaply.
fn argon2id(password: &str, salt: &[u8; 16]) -> [u8; 32] {
    let mut out = [0u8; 32];
    // The default parameters and a 16-byte salt are always valid; a failure would leave the
    // output zero, which no presented password matches against a real hash.
    let _ = argon2::Argon2::default().hash_password_into(password.as_bytes(), salt, &mut out);
    out
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // Without randomness the salt is zero; the hash is still Argon2id.
    let _ = getrandom::fill(&mut bytes);
    bytes
}

impl DevUser {
    fn new(password: &str, fhir_user: Option<&str>) -> DevUser {
        let salt = random_bytes::<16>();
        DevUser {
            salt,
            hash: argon2id(password, &salt),
            fhir_user: fhir_user.map(str::to_string),
        }
    }

    #[cfg(test)]
    fn matches(&self, password: &str) -> bool {
        bool::from(argon2id(password, &self.salt).ct_eq(&self.hash))
    }
}

impl DevLogin {
    /// No users yet.
    pub fn new() -> DevLogin {
        DevLogin::default()
    }

    /// Adds a user; the password is kept only as its Argon2id hash.
    pub fn user(mut self, id: impl Into<String>, password: &str, fhir_user: Option<&str>) -> Self {
        self.users
            .insert(id.into(), DevUser::new(password, fhir_user));
        if self.decoy.is_none() {
            self.decoy = Some(DevUser::new("", None));
        }
        self
    }

    /// The sign-in rules before any password is hashed: what to answer now, or the user
    /// name and password to verify.
    fn precheck<'r>(
        &self,
        request: &'r LoginRequest<'_>,
        now: Instant,
    ) -> Result<(&'r str, &'r str), Attempt> {
        let (Some(name), Some(password)) = (request.param("username"), request.param("password"))
        else {
            return Err(Attempt::Form);
        };
        if request.method != Method::POST {
            return Err(Attempt::Refused(
                "Send the sign-in form; credentials in a link are ignored.",
            ));
        }
        let csrf_ok = match (request.param("csrf"), request.cookie(CSRF_COOKIE)) {
            (Some(form), Some(cookie)) => bool::from(form.as_bytes().ct_eq(cookie.as_bytes())),
            _ => false,
        };
        if !csrf_ok {
            return Err(Attempt::Refused(
                "The sign-in form has expired; sign in again.",
            ));
        }
        if self.locked(name, now) {
            return Err(Attempt::Refused(
                "Too many failed sign-ins; try again in fifteen minutes.",
            ));
        }
        Ok((name, password))
    }

    /// The salt and hash to compare a password of `name` with: the user's, or for an unknown
    /// name a decoy's, so both take the same time.
    fn stored(&self, name: &str) -> Option<([u8; 16], [u8; 32])> {
        self.users
            .get(name)
            .or(self.decoy.as_ref())
            .map(|u| (u.salt, u.hash))
    }

    /// The outcome once the password was compared (`matched`).
    fn settle(&self, name: &str, matched: bool, now: Instant) -> Attempt {
        match self.users.get(name).filter(|_| matched) {
            Some(user) => {
                self.failures_mut().remove(name);
                Attempt::User(AuthenticatedUser {
                    id: name.to_string(),
                    fhir_user: user.fhir_user.clone(),
                })
            }
            None => {
                self.fail(name, now);
                Attempt::Refused("Unknown user or wrong password.")
            }
        }
    }

    /// The sign-in rules as a plain decision over the request and the clock.
    #[cfg(test)]
    fn check(&self, request: &LoginRequest<'_>, now: Instant) -> Attempt {
        match self.precheck(request, now) {
            Err(answer) => answer,
            Ok((name, password)) => {
                let matched = self
                    .stored(name)
                    .is_some_and(|(salt, hash)| bool::from(argon2id(password, &salt).ct_eq(&hash)));
                self.settle(name, matched, now)
            }
        }
    }

    fn failures_mut(&self) -> std::sync::MutexGuard<'_, HashMap<String, Failures>> {
        self.failures.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn locked(&self, name: &str, now: Instant) -> bool {
        self.failures_mut()
            .get(name)
            .and_then(|f| f.locked_until)
            .is_some_and(|until| now < until)
    }

    fn fail(&self, name: &str, now: Instant) {
        let mut failures = self.failures_mut();
        failures.retain(|_, f| {
            now.duration_since(f.since) < LOCK_WINDOW || f.locked_until.is_some_and(|u| now < u)
        });
        if failures.len() >= MAX_TRACKED && !failures.contains_key(name) {
            let oldest = failures
                .iter()
                .min_by_key(|(_, f)| f.since)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                failures.remove(&oldest);
            }
        }
        let entry = failures.entry(name.to_string()).or_insert(Failures {
            count: 0,
            since: now,
            locked_until: None,
        });
        if now.duration_since(entry.since) >= LOCK_WINDOW {
            *entry = Failures {
                count: 0,
                since: now,
                locked_until: None,
            };
        }
        entry.count += 1;
        if entry.count >= MAX_FAILURES {
            entry.locked_until = Some(now + LOCK_WINDOW);
        }
    }

    fn page(request: &LoginRequest<'_>, message: Option<&str>) -> Response {
        let csrf = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
        let hidden = request
            .params
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "username" | "password" | "csrf"))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(std::iter::once(("csrf", csrf.as_str())));
        let mut response = pages::dev_login(request.action, hidden, message).into_response();
        let path = url::Url::parse(request.action)
            .map(|u| u.path().to_string())
            .unwrap_or_else(|_| "/".into());
        let secure = if request.action.starts_with("https://") {
            "; Secure"
        } else {
            ""
        };
        if let Ok(cookie) = HeaderValue::from_str(&format!(
            "{CSRF_COOKIE}={csrf}; Path={path}; HttpOnly; SameSite=Strict; Max-Age=900{secure}"
        )) {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

impl UserAuthenticator for DevLogin {
    fn authenticate<'a>(&'a self, request: LoginRequest<'a>) -> BoxFuture<'a, Authentication> {
        Box::pin(async move {
            let now = Instant::now();
            let outcome = match self.precheck(&request, now) {
                Err(answer) => answer,
                Ok((name, password)) => {
                    let stored = self.stored(name);
                    let password = password.to_string();
                    // Argon2 takes tens of milliseconds of CPU: off the async workers.
                    let matched = tokio::task::spawn_blocking(move || {
                        stored.is_some_and(|(salt, hash)| {
                            bool::from(argon2id(&password, &salt).ct_eq(&hash))
                        })
                    })
                    .await
                    .unwrap_or(false);
                    self.settle(name, matched, now)
                }
            };
            match outcome {
                Attempt::User(user) => Authentication::User(user),
                Attempt::Form => Authentication::Respond(DevLogin::page(&request, None)),
                Attempt::Refused(why) => {
                    Authentication::Respond(DevLogin::page(&request, Some(why)))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(
        method: &'a Method,
        headers: &'a HeaderMap,
        params: &'a [(String, String)],
    ) -> LoginRequest<'a> {
        LoginRequest {
            method,
            headers,
            params,
            action: "https://sofa.example.org/fhir/auth/authorize",
        }
    }

    fn form(user: &str, password: &str, csrf: &str) -> Vec<(String, String)> {
        vec![
            ("username".into(), user.into()),
            ("password".into(), password.into()),
            ("csrf".into(), csrf.into()),
        ]
    }

    fn cookie(csrf: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {CSRF_COOKIE}={csrf}")).unwrap(),
        );
        headers
    }

    // REQ: IDP-07
    #[test]
    fn passwords_are_kept_as_salted_argon2id_hashes() {
        let login = DevLogin::new()
            .user("dr-a", "pw", None)
            .user("dr-b", "pw", None);
        let a = &login.users["dr-a"];
        let b = &login.users["dr-b"];
        assert_eq!(a.hash, argon2id("pw", &a.salt));
        // The same password, another salt: another hash.
        assert_ne!(a.hash, b.hash);
        let sha256: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(b"pw").into();
        assert_ne!(a.hash, sha256);
        assert!(a.matches("pw") && !a.matches("pw "));
    }

    // REQ: IDP-07
    #[test]
    fn credentials_count_only_when_posted_with_the_forms_csrf_token() {
        let login = DevLogin::new().user("dr-a", "pw", Some("Practitioner/a"));
        let now = Instant::now();
        let (post, get) = (Method::POST, Method::GET);
        let good = form("dr-a", "pw", "t0k3n");
        let with_cookie = cookie("t0k3n");
        let none = HeaderMap::new();
        assert!(matches!(
            login.check(&request(&get, &with_cookie, &good), now),
            Attempt::Refused(_)
        ));
        assert!(matches!(
            login.check(&request(&post, &none, &good), now),
            Attempt::Refused(_)
        ));
        let other = cookie("another");
        assert!(matches!(
            login.check(&request(&post, &other, &good), now),
            Attempt::Refused(_)
        ));
        assert_eq!(
            login.check(&request(&post, &with_cookie, &good), now),
            Attempt::User(AuthenticatedUser {
                id: "dr-a".into(),
                fhir_user: Some("Practitioner/a".into())
            })
        );
    }

    // REQ: IDP-07
    #[test]
    fn five_failures_lock_the_name_for_fifteen_minutes() {
        let login = DevLogin::new().user("dr-a", "pw", None);
        let start = Instant::now();
        let headers = cookie("t");
        let post = Method::POST;
        let wrong = form("dr-a", "nope", "t");
        let right = form("dr-a", "pw", "t");
        for _ in 0..MAX_FAILURES {
            assert!(matches!(
                login.check(&request(&post, &headers, &wrong), start),
                Attempt::Refused("Unknown user or wrong password.")
            ));
        }
        // Locked: even the right password is refused.
        assert!(matches!(
            login.check(&request(&post, &headers, &right), start + Duration::from_secs(60)),
            Attempt::Refused(why) if why.contains("Too many")
        ));
        // Once the lock has passed, the right password works.
        assert!(matches!(
            login.check(&request(&post, &headers, &right), start + LOCK_WINDOW),
            Attempt::User(_)
        ));
    }
}
