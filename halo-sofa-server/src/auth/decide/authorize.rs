//! The authorize request (REQ AS-03, AS-05, IDP-04, D-18): which redirect URI errors go to,
//! whether the request is acceptable, whether the signed-in user may use its launch, and the
//! code it is answered with.

use chrono::{DateTime, Duration, Utc};
use halo_model::oauth::{OAuthError, OAuthErrorCode};
use halo_model::scope::ScopeSet;
use serde_json::json;

use super::scopes::grant_requested;
use super::single;
use crate::auth::clients::RegisteredClient;
use crate::auth::users::AuthenticatedUser;
use crate::store::{AuthorizationCodeRecord, LaunchRecord};

/// Where the app's errors and code go: the `redirect_uri` if it is registered for `client`,
/// compared as an exact string (no prefix, case or trailing-slash leniency), or the client's only
/// registered URI when none is given. `Err` is shown to the user, never redirected (REQ AS-03).
pub(crate) fn redirect_target(
    client: &RegisteredClient,
    params: &[(String, String)],
) -> Result<String, String> {
    match single(params, "redirect_uri") {
        Ok(Some(uri)) if client.redirect_uris.iter().any(|r| r == uri) => Ok(uri.to_string()),
        Ok(None) if client.redirect_uris.len() == 1 => Ok(client.redirect_uris[0].clone()),
        Ok(_) => Err("the redirect_uri is not registered for this client".into()),
        Err(repeated) => Err(repeated.message()),
    }
}

/// An authorize request that passed every check made before the user signs in.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Accepted {
    /// The PKCE S256 challenge the code is bound to.
    pub(crate) code_challenge: String,
    /// The scopes granted: the requested ones the client may have.
    pub(crate) granted: ScopeSet,
    /// The launch id of an EHR launch.
    pub(crate) launch: Option<String>,
    /// The OpenID `nonce`, echoed in the id_token.
    pub(crate) nonce: Option<String>,
}

/// Whether `code_challenge` is an S256 challenge: 43 base64url characters.
fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The checks of an authorize request for `client` at the server whose FHIR base is `issuer`
/// (REQ AS-03): `response_type=code`, PKCE with S256 only, `aud` naming this server, scopes the
/// client may have (the others are not granted; none at all is `invalid_scope`), and a `launch`
/// parameter when the `launch` scope is granted. Every refusal is redirected to the app.
pub(crate) fn check_request(
    client: &RegisteredClient,
    issuer: &str,
    params: &[(String, String)],
) -> Result<Accepted, OAuthError> {
    let get = |name: &str| single(params, name).map_err(OAuthError::from);
    if get("response_type")? != Some("code") {
        return Err(OAuthError::new(OAuthErrorCode::UnsupportedResponseType)
            .with_description("only response_type=code is supported"));
    }
    // PKCE S256 only: `plain` or no challenge is refused.
    if get("code_challenge_method")? != Some("S256") {
        return Err(OAuthError::invalid_request(
            "PKCE is required with code_challenge_method=S256",
        ));
    }
    let code_challenge = get("code_challenge")?
        .filter(|c| is_s256_challenge(c))
        .ok_or_else(|| OAuthError::invalid_request("code_challenge must be a S256 challenge"))?
        .to_string();
    if get("aud")?.map(|a| a.trim_end_matches('/')) != Some(issuer) {
        return Err(OAuthError::invalid_request(
            "aud must be this server's FHIR base URL",
        ));
    }
    let granted = grant_requested(get("scope")?.unwrap_or_default(), &client.allowed_scopes)?;
    let launch = get("launch")?.map(str::to_string);
    if granted.has_launch() && launch.is_none() {
        return Err(OAuthError::invalid_request(
            "the launch scope needs the launch parameter (EHR launch)",
        ));
    }
    Ok(Accepted {
        code_challenge,
        granted,
        launch,
        nonce: get("nonce")?.map(str::to_string),
    })
}

/// Whether `user` may launch an app with `launch` (D-18): only its owner, the clinician the
/// PoC signed in; a launch set in userless mode by anyone who signs in, and only while that
/// mode is on.
pub(crate) fn may_launch(user: &AuthenticatedUser, launch: &LaunchRecord, userless: bool) -> bool {
    match &launch.user {
        Some(owner) => *owner == user.id,
        None => userless,
    }
}

/// The `fhirUser` the tokens of an authorization carry (D-18, REQ IDP-04): the signed-in
/// user's own. When the sign-in names none and the user owns the launch, the owner's as the
/// PoC's token named it, else the launch's `fhirUser` parameter (the PoC's record of the same
/// clinician). Anyone else (userless mode) gets only their own: a launch's `fhirUser` never
/// names another person in a token.
pub(crate) fn token_fhir_user(
    user: &AuthenticatedUser,
    launch: Option<&LaunchRecord>,
) -> Option<String> {
    if user.fhir_user.is_some() {
        return user.fhir_user.clone();
    }
    let launch = launch?;
    if launch.user.as_deref() != Some(user.id.as_str()) {
        return None;
    }
    launch
        .owner_fhir_user
        .clone()
        .or_else(|| launch.fhir_user.clone())
}

/// What becomes of a signed-in user's request for a launch.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LaunchDecision {
    /// A code may be issued; its tokens carry this `fhirUser`.
    Allowed {
        /// The `fhirUser` of the tokens ([`token_fhir_user`]).
        fhir_user: Option<String>,
    },
    /// Unknown, expired or set for another app: `access_denied` to the app, which cannot tell
    /// the three apart.
    Refused(OAuthError),
    /// Someone else's launch (D-18, REQ IDP-04): an error page at the browser, no code, and
    /// the app learns nothing of it.
    NotYours,
}

/// Whether the signed-in `user` may have a code for `client` with the launch `record` (as read
/// for the request's `launch`; `None` when no launch was read), in `userless` mode or not.
pub(crate) fn decide_launch(
    client: &RegisteredClient,
    user: &AuthenticatedUser,
    requested: Option<&str>,
    record: Option<&LaunchRecord>,
    userless: bool,
    now: DateTime<Utc>,
) -> LaunchDecision {
    if requested.is_none() {
        return LaunchDecision::Allowed {
            fhir_user: user.fhir_user.clone(),
        };
    }
    let usable = record.filter(|l| {
        !l.is_expired(now)
            && match (&l.app_id, &client.app_id) {
                (Some(set_for), Some(app)) => set_for == app,
                _ => true,
            }
    });
    let Some(record) = usable else {
        return LaunchDecision::Refused(OAuthError::access_denied(
            "the launch is unknown, expired or set for another app",
        ));
    };
    if !may_launch(user, record, userless) {
        return LaunchDecision::NotYours;
    }
    LaunchDecision::Allowed {
        fhir_user: token_fhir_user(user, Some(record)),
    }
}

/// The stored record of a new code (REQ AS-05): kept by its hash, bound to the client, the
/// redirect URI and the PKCE challenge, living `ttl` from `now`; `family` names the grant
/// whose tokens a replay of the code revokes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn code_record(
    code_hash: String,
    client: &RegisteredClient,
    redirect_uri: &str,
    accepted: Accepted,
    user: &AuthenticatedUser,
    fhir_user: Option<String>,
    family: String,
    now: DateTime<Utc>,
    ttl: std::time::Duration,
) -> AuthorizationCodeRecord {
    let ttl = Duration::from_std(ttl).unwrap_or_else(|_| Duration::seconds(60));
    AuthorizationCodeRecord {
        code_hash,
        client_id: client.client_id.clone(),
        redirect_uri: redirect_uri.to_string(),
        code_challenge: accepted.code_challenge,
        scope: accepted.granted.to_string(),
        user: Some(user.id.clone()),
        launch_id: accepted.launch,
        expires_at: now + ttl,
        consumed: false,
        details: json!({
            "nonce": accepted.nonce,
            "fhir_user": fhir_user,
            "family": family,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::clients::ClientAuthentication;
    use crate::auth::decide::fixtures::{launch, params};

    const ISSUER: &str = "https://sofa.example.org/fhir";
    const REDIRECT: &str = "https://app.example.org/cb";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn client() -> RegisteredClient {
        RegisteredClient::new("app", ClientAuthentication::Public)
            .redirect_uri(REDIRECT)
            .scopes("launch openid fhirUser patient/*.rs")
            .app_id("app-1")
    }

    fn good() -> Vec<(String, String)> {
        params(&[
            ("response_type", "code"),
            ("client_id", "app"),
            ("redirect_uri", REDIRECT),
            ("scope", "launch openid patient/Observation.rs user/*.rs"),
            ("aud", ISSUER),
            ("launch", "l1"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
            ("nonce", "n-1"),
        ])
    }

    fn with(
        mut p: Vec<(String, String)>,
        name: &str,
        value: Option<&str>,
    ) -> Vec<(String, String)> {
        p.retain(|(k, _)| k != name);
        if let Some(value) = value {
            p.push((name.into(), value.into()));
        }
        p
    }

    fn user(id: &str) -> AuthenticatedUser {
        AuthenticatedUser {
            id: id.into(),
            fhir_user: None,
        }
    }

    // REQ: AS-03
    #[test]
    fn redirect_uris_match_exactly_or_are_shown_to_the_user() {
        let c = client();
        assert_eq!(redirect_target(&c, &good()).unwrap(), REDIRECT);
        // The only registered URI stands in for a missing one.
        assert_eq!(
            redirect_target(&c, &with(good(), "redirect_uri", None)).unwrap(),
            REDIRECT
        );
        for near in [
            "https://app.example.org/cb/",
            "https://APP.example.org/cb",
            "https://app.example.org/cb?x=1",
            "https://app.example.org/c",
        ] {
            assert!(redirect_target(&c, &with(good(), "redirect_uri", Some(near))).is_err());
        }
        let mut twice = good();
        twice.push(("redirect_uri".into(), REDIRECT.into()));
        assert!(
            redirect_target(&c, &twice)
                .unwrap_err()
                .contains("repeated")
        );
        let two = client().redirect_uri("https://app.example.org/other");
        assert!(redirect_target(&two, &with(good(), "redirect_uri", None)).is_err());
    }

    // REQ: AS-03
    #[test]
    fn an_acceptable_request_grants_only_the_clients_scopes() {
        let accepted = check_request(&client(), ISSUER, &good()).unwrap();
        assert_eq!(
            accepted.granted.to_string(),
            "launch openid patient/Observation.rs"
        );
        assert_eq!(accepted.code_challenge, CHALLENGE);
        assert_eq!(accepted.launch.as_deref(), Some("l1"));
        assert_eq!(accepted.nonce.as_deref(), Some("n-1"));
        // `aud` with a trailing slash names the same base.
        let slash = with(good(), "aud", Some(&format!("{ISSUER}/")));
        assert!(check_request(&client(), ISSUER, &slash).is_ok());
    }

    // REQ: AS-03
    #[test]
    fn hostile_authorize_requests_are_refused_with_the_right_error() {
        let code = |p: Vec<(String, String)>| {
            check_request(&client(), ISSUER, &p)
                .unwrap_err()
                .error
                .as_str()
                .to_string()
        };
        assert_eq!(
            code(with(good(), "response_type", Some("token"))),
            "unsupported_response_type"
        );
        assert_eq!(
            code(with(good(), "code_challenge_method", Some("plain"))),
            "invalid_request"
        );
        assert_eq!(
            code(with(good(), "code_challenge_method", None)),
            "invalid_request"
        );
        assert_eq!(
            code(with(good(), "code_challenge", None)),
            "invalid_request"
        );
        assert_eq!(
            code(with(good(), "code_challenge", Some("short"))),
            "invalid_request"
        );
        let bad_char = format!("{}+", &CHALLENGE[..42]);
        assert_eq!(
            code(with(good(), "code_challenge", Some(&bad_char))),
            "invalid_request"
        );
        assert_eq!(
            code(with(good(), "aud", Some("https://other.example.org/fhir"))),
            "invalid_request"
        );
        assert_eq!(code(with(good(), "aud", None)), "invalid_request");
        assert_eq!(
            code(with(good(), "scope", Some("user/*.cruds"))),
            "invalid_scope"
        );
        assert_eq!(
            code(with(good(), "scope", Some("not a scope!"))),
            "invalid_scope"
        );
        assert_eq!(code(with(good(), "launch", None)), "invalid_request");
        let mut twice = good();
        twice.push(("scope".into(), "openid".into()));
        assert_eq!(code(twice), "invalid_request");
        // Without the launch scope, no launch parameter is needed.
        let standalone = with(with(good(), "launch", None), "scope", Some("openid"));
        assert!(check_request(&client(), ISSUER, &standalone).is_ok());
    }

    // REQ: IDP-04, AS-03
    #[test]
    fn only_the_launch_owner_gets_a_code() {
        let now = Utc::now();
        let c = client();
        let owned = launch(Some("dr-a"), now);
        assert_eq!(
            decide_launch(&c, &user("dr-a"), Some("l1"), Some(&owned), false, now),
            LaunchDecision::Allowed {
                fhir_user: Some("Practitioner/p-owner".into())
            }
        );
        assert_eq!(
            decide_launch(&c, &user("dr-b"), Some("l1"), Some(&owned), false, now),
            LaunchDecision::NotYours
        );
        // Userless launches: anyone signed in, only while the mode is on, and with only their
        // own fhirUser.
        let userless = launch(None, now);
        assert_eq!(
            decide_launch(&c, &user("dr-b"), Some("l1"), Some(&userless), true, now),
            LaunchDecision::Allowed { fhir_user: None }
        );
        assert_eq!(
            decide_launch(&c, &user("dr-b"), Some("l1"), Some(&userless), false, now),
            LaunchDecision::NotYours
        );
    }

    // REQ: AS-03, SC-12
    #[test]
    fn unknown_expired_and_other_apps_launches_look_the_same() {
        let now = Utc::now();
        let c = client();
        let owned = launch(Some("dr-a"), now);
        let refused = |d: LaunchDecision| matches!(d, LaunchDecision::Refused(e) if e.error.as_str() == "access_denied");
        assert!(refused(decide_launch(
            &c,
            &user("dr-a"),
            Some("l1"),
            None,
            false,
            now
        )));
        let later = owned.expires_at;
        assert!(refused(decide_launch(
            &c,
            &user("dr-a"),
            Some("l1"),
            Some(&owned),
            false,
            later
        )));
        let other_app = client().app_id("app-2");
        assert!(refused(decide_launch(
            &other_app,
            &user("dr-a"),
            Some("l1"),
            Some(&owned),
            false,
            now
        )));
        // No launch asked: the user's own fhirUser.
        let signed = AuthenticatedUser {
            id: "dr-a".into(),
            fhir_user: Some("Practitioner/own".into()),
        };
        assert_eq!(
            decide_launch(&c, &signed, None, None, false, now),
            LaunchDecision::Allowed {
                fhir_user: Some("Practitioner/own".into())
            }
        );
    }

    // REQ: AS-05
    #[test]
    fn a_code_is_bound_to_client_redirect_challenge_and_lives_its_ttl() {
        let now = Utc::now();
        let accepted = check_request(&client(), ISSUER, &good()).unwrap();
        let record = code_record(
            "hash".into(),
            &client(),
            REDIRECT,
            accepted,
            &user("dr-a"),
            Some("Practitioner/p".into()),
            "fam".into(),
            now,
            std::time::Duration::from_secs(60),
        );
        assert_eq!(record.client_id, "app");
        assert_eq!(record.redirect_uri, REDIRECT);
        assert_eq!(record.code_challenge, CHALLENGE);
        assert_eq!(record.expires_at, now + Duration::seconds(60));
        assert!(!record.consumed);
        assert_eq!(record.details["family"], "fam");
        assert_eq!(record.details["nonce"], "n-1");
    }
}
