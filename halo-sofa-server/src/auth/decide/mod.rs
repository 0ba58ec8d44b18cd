//! The authorization server's decisions, with no I/O (issue: a sans-IO authorization core).
//!
//! Every rule that decides whether a grant goes ahead lives here as a plain function over plain
//! values and the clock's `now`: is this authorize request acceptable ([`authorize`]), which
//! scopes are granted ([`scopes`]), may this code be exchanged and is this refresh a reuse
//! ([`exchange`]), what the issued tokens say ([`tokens`]), and do a client's credentials and
//! assertion claims hold ([`credentials`]). Nothing here awaits, reads the store, fetches, or
//! builds an HTTP response: the endpoints ([`super::authorize`], [`super::token`],
//! [`super::client_auth`]) read what a decision needs, call it, and carry out what it returns.
//! So each rule is tested here without a server, and the HTTP tests check the shell.

pub(crate) mod authorize;
pub(crate) mod credentials;
pub(crate) mod exchange;
pub(crate) mod scopes;
pub(crate) mod tokens;

/// A form or query parameter given more than once: RFC 6749 §3.1 and §3.2 refuse it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Repeated(pub(crate) String);

impl Repeated {
    /// The sentence a refusal carries.
    pub(crate) fn message(&self) -> String {
        format!("the parameter {} is repeated", self.0)
    }
}

impl From<Repeated> for halo_model::oauth::OAuthError {
    fn from(repeated: Repeated) -> Self {
        halo_model::oauth::OAuthError::invalid_request(repeated.message())
    }
}

/// The one value of `name` among `params` (`None` when absent or empty); an error when it is
/// repeated.
pub(crate) fn single<'a>(
    params: &'a [(String, String)],
    name: &str,
) -> Result<Option<&'a str>, Repeated> {
    let mut values = params.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
    let first = values.next();
    if values.next().is_some() {
        return Err(Repeated(name.to_string()));
    }
    Ok(first.map(String::as_str).filter(|v| !v.is_empty()))
}

/// Values the decision tests share.
#[cfg(test)]
pub(crate) mod fixtures {
    use chrono::{DateTime, Duration, Utc};

    use crate::store::LaunchRecord;

    /// Form parameters from pairs.
    pub(crate) fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The launch `l1` for the app `app-1`, set by `owner`, living ten minutes from `now`.
    pub(crate) fn launch(owner: Option<&str>, now: DateTime<Utc>) -> LaunchRecord {
        LaunchRecord {
            launch_id: "l1".into(),
            client_id: "poc".into(),
            user: owner.map(str::to_string),
            owner_fhir_user: None,
            app_id: Some("app-1".into()),
            patient: Some("Patient/p1".into()),
            encounter: None,
            fhir_user: Some("Practitioner/p-owner".into()),
            fhir_context: Vec::new(),
            need_patient_banner: None,
            intent: None,
            smart_style_url: None,
            tenant: None,
            created_at: now,
            expires_at: now + Duration::minutes(10),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::params;
    use super::*;

    // REQ: AS-03
    #[test]
    fn a_repeated_parameter_is_refused_and_an_empty_one_is_absent() {
        let p = params(&[("scope", "a"), ("state", ""), ("scope", "b")]);
        assert_eq!(single(&p, "scope"), Err(Repeated("scope".into())));
        assert_eq!(single(&p, "state"), Ok(None));
        assert_eq!(single(&p, "nonce"), Ok(None));
        assert_eq!(single(&params(&[("code", "x")]), "code"), Ok(Some("x")));
    }
}
