//! `LaunchSession`: what one launch yields, tokens and context, independent of every other launch.

use std::fmt;

use halo_model::scope::ScopeSet;
use halo_model::smart::{LaunchContext, TokenResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Result, SmartError};
use crate::id_token::{FhirUser, IdTokenClaims};
use crate::secret::Secret;

/// The result of one launch: tokens, granted scopes and launch context. Each launch gets its own
/// value; nothing is shared or global. It serialises (serde) so an app can keep it in its own
/// session storage, and its `Debug` output never shows a token.
#[derive(Clone, Serialize, Deserialize)]
pub struct LaunchSession {
    /// The FHIR base (`iss`) the session is bound to; the bearer token goes nowhere else.
    pub fhir_base: String,
    /// The app's `client_id` there.
    pub client_id: String,
    /// The token endpoint, for refreshes.
    pub token_endpoint: String,
    access_token: Secret,
    refresh_token: Option<Secret>,
    id_token: Option<Secret>,
    /// When the access token expires (Unix seconds), when the server said.
    pub expires_at: Option<i64>,
    /// The access token's lifetime as the server gave it (`expires_in`), which caps the refresh
    /// margin: a 15-second token is not refreshed before every request.
    #[serde(default)]
    pub lifetime_secs: Option<i64>,
    /// The granted scopes as sent (space-separated).
    pub granted_scope: String,
    /// The scopes the app asked for.
    pub requested_scope: String,
    /// The launch context (patient, encounter, fhirContext, banner, style, intent, tenant).
    pub context: LaunchContext,
    /// The verified id_token claims, when an id_token came back.
    pub id_claims: Option<IdTokenClaims>,
    /// Bumped on every token change; lets concurrent users notice that a refresh already happened.
    #[serde(default)]
    pub generation: u64,
}

impl fmt::Debug for LaunchSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LaunchSession")
            .field("fhir_base", &self.fhir_base)
            .field("client_id", &self.client_id)
            .field("access_token", &self.access_token)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .field("expires_at", &self.expires_at)
            .field("granted_scope", &self.granted_scope)
            .field("context", &self.context)
            .field("generation", &self.generation)
            .finish()
    }
}

impl LaunchSession {
    /// Builds a session from a token response. `requested_scope` is what the app asked for.
    pub fn from_token_response(
        fhir_base: impl Into<String>,
        client_id: impl Into<String>,
        token_endpoint: impl Into<String>,
        requested_scope: impl Into<String>,
        token: TokenResponse,
        now: i64,
    ) -> Self {
        let context = token.launch_context();
        Self {
            fhir_base: fhir_base.into(),
            client_id: client_id.into(),
            token_endpoint: token_endpoint.into(),
            expires_at: expires_at(&token, now),
            lifetime_secs: lifetime(&token),
            granted_scope: token.scope.clone().unwrap_or_default(),
            requested_scope: requested_scope.into(),
            context,
            id_claims: None,
            access_token: Secret::new(token.access_token),
            refresh_token: token.refresh_token.map(Secret::new),
            id_token: token.id_token.map(Secret::new),
            generation: 0,
        }
    }

    /// The access token, for the one place that sends it.
    pub fn access_token(&self) -> &Secret {
        &self.access_token
    }

    /// The refresh token, if one was granted.
    pub fn refresh_token(&self) -> Option<&Secret> {
        self.refresh_token.as_ref()
    }

    /// The raw id_token, if one came back.
    pub fn id_token(&self) -> Option<&Secret> {
        self.id_token.as_ref()
    }

    /// The patient in context.
    pub fn patient_id(&self) -> Option<&str> {
        self.context.patient_id()
    }

    /// The encounter in context.
    pub fn encounter_id(&self) -> Option<&str> {
        self.context.encounter_id()
    }

    /// The signed-in user, from a verified id_token.
    pub fn fhir_user(&self) -> Option<&FhirUser> {
        self.id_claims.as_ref()?.fhir_user.as_ref()
    }

    /// The granted scopes, parsed (v1 and v2). Scopes the grammar does not know are skipped.
    pub fn granted_scopes(&self) -> ScopeSet {
        ScopeSet::parse_lenient(&self.granted_scope).0
    }

    /// The requested scopes that were not granted (narrowed ones come back with the missing
    /// permissions).
    pub fn not_granted(&self) -> ScopeSet {
        ScopeSet::parse_lenient(&self.requested_scope)
            .0
            .not_granted(&self.granted_scopes())
    }

    /// Fails with [`SmartError::MissingContext`] if any of `required` (`patient`, `encounter`, or a
    /// resource type expected in `fhirContext`) is absent.
    pub fn check_required_context(&self, required: &[String]) -> Result<()> {
        for what in required {
            let present = match what.as_str() {
                "patient" => self.patient_id().is_some(),
                "encounter" => self.encounter_id().is_some(),
                other => self.context.fhir_context.iter().any(|i| {
                    i.resource_type()
                        .is_some_and(|t| t.eq_ignore_ascii_case(other))
                }),
            };
            if !present {
                return Err(SmartError::MissingContext { what: what.clone() });
            }
        }
        Ok(())
    }

    /// Checks that a resource fetched for the context is of the expected type.
    pub fn check_resource_type(expected: &str, resource: &Value) -> Result<()> {
        let found = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or("(none)");
        if found == expected {
            Ok(())
        } else {
            Err(SmartError::WrongContextType {
                expected: expected.to_owned(),
                found: crate::token::clip(found),
            })
        }
    }

    /// True when the access token expires within `margin_secs` of `now`.
    pub fn expires_within(&self, now: i64, margin_secs: i64) -> bool {
        self.expires_at.is_some_and(|at| at - margin_secs <= now)
    }

    /// True when the access token should be refreshed before use at `now`: it expires within
    /// `margin_secs`, the margin capped at a quarter of the token's lifetime. Without the cap, a
    /// token shorter than the margin would be refreshed before every request.
    pub fn refresh_due(&self, now: i64, margin_secs: i64) -> bool {
        let margin = match self.lifetime_secs {
            Some(lifetime) => margin_secs.min(lifetime / REFRESH_MARGIN_DIVISOR),
            None => margin_secs,
        };
        self.expires_within(now, margin.max(0))
    }

    /// Whether `openid` was granted: named in the granted scopes or, when the server sent no
    /// `scope`, in the request (RFC 6749 §5.1: an absent scope means the one asked for).
    pub fn openid_granted(&self) -> bool {
        let scopes = if self.granted_scope.trim().is_empty() {
            &self.requested_scope
        } else {
            &self.granted_scope
        };
        scopes.split_whitespace().any(|s| s == "openid")
    }

    /// Takes in a refresh response: the new access token, the new refresh token if one came (else
    /// the old one is kept), the new scope if sent. The launch context stays that of the launch.
    ///
    /// An id_token in the response must come with its verified claims (`verified_id`, from
    /// [`crate::id_token::verify_id_token`]), and they must name the same user: OpenID Connect
    /// Core §12.2 wants the same `iss`, `sub` and `aud` as the id_token of the launch. Otherwise
    /// nothing changes and the error says why, so a forged or swapped identity is never stored.
    pub fn apply_refresh(
        &mut self,
        token: TokenResponse,
        verified_id: Option<IdTokenClaims>,
        now: i64,
    ) -> Result<()> {
        match (&token.id_token, &verified_id) {
            (Some(_), None) => {
                return Err(SmartError::IdToken {
                    reason: "the refreshed id_token was not verified".into(),
                });
            }
            (None, Some(_)) => {
                return Err(SmartError::IdToken {
                    reason: "claims were given for a refresh response without an id_token".into(),
                });
            }
            (Some(_), Some(claims)) => self.check_same_user(claims)?,
            (None, None) => {}
        }
        self.expires_at = expires_at(&token, now);
        self.lifetime_secs = lifetime(&token);
        if let Some(scope) = &token.scope {
            self.granted_scope = scope.clone();
        }
        if let Some(refresh) = token.refresh_token {
            self.refresh_token = Some(Secret::new(refresh));
        }
        if let (Some(id), Some(claims)) = (token.id_token, verified_id) {
            self.id_token = Some(Secret::new(id));
            self.id_claims = Some(claims);
        }
        self.access_token = Secret::new(token.access_token);
        self.generation += 1;
        Ok(())
    }

    /// OpenID Connect Core §12.2: a refreshed id_token names the same issuer, subject and
    /// audience as the launch's.
    fn check_same_user(&self, refreshed: &IdTokenClaims) -> Result<()> {
        let Some(original) = &self.id_claims else {
            return Ok(());
        };
        let differs = |what: &str| SmartError::IdToken {
            reason: format!("the refreshed id_token names another {what} than the launch's"),
        };
        if refreshed.iss != original.iss {
            return Err(differs("issuer"));
        }
        if refreshed.sub != original.sub {
            return Err(differs("subject"));
        }
        if refreshed.extra.get("aud") != original.extra.get("aud") {
            return Err(differs("audience"));
        }
        Ok(())
    }
}

/// The refresh margin is at most the token's lifetime divided by this.
pub const REFRESH_MARGIN_DIVISOR: i64 = 4;

fn lifetime(token: &TokenResponse) -> Option<i64> {
    token
        .expires_in
        .map(|s| i64::try_from(s).unwrap_or(i64::MAX))
}

fn expires_at(token: &TokenResponse, now: i64) -> Option<i64> {
    token
        .expires_in
        .map(|s| now.saturating_add(i64::try_from(s).unwrap_or(i64::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> TokenResponse {
        let path = format!("{}/../fixtures/smart/{name}", env!("CARGO_MANIFEST_DIR"));
        TokenResponse::from_json(&std::fs::read(path).unwrap()).unwrap()
    }

    fn session(name: &str, requested: &str) -> LaunchSession {
        LaunchSession::from_token_response(
            "https://ehr/fhir",
            "app",
            "https://ehr/token",
            requested,
            fixture(name),
            1000,
        )
    }

    // REQ: APP-08
    #[test]
    fn spec_token_responses_become_sessions_with_context_and_scopes() {
        let s = session(
            "token-response.public.json",
            "launch/patient patient/Observation.rs patient/Patient.rs patient/Condition.rs openid",
        );
        assert_eq!(s.patient_id(), Some("87a339d0-8cae-418e-89c7-8651e6aab3c6"));
        assert_eq!(s.context.need_patient_banner, Some(true));
        assert_eq!(s.expires_at, Some(4600));
        assert_eq!(s.granted_scopes().len(), 3);
        let missing = s.not_granted().to_string();
        assert!(missing.contains("patient/Condition.rs") && missing.contains("openid"));
        assert!(!missing.contains("Observation"));
        let path = format!(
            "{}/../fixtures/smart/token-response.fhirContext-med-reconciliation.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        v["access_token"] = "t".into();
        v["token_type"] = "bearer".into();
        let t = TokenResponse::from_value(v).unwrap();
        let s = LaunchSession::from_token_response("b", "c", "t", "launch", t, 0);
        s.check_required_context(&["patient".into(), "List".into()])
            .unwrap();
        assert_eq!(
            s.context.fhir_context[1].role.as_deref(),
            Some("https://example.org/med-list-at-hospital")
        );
    }

    // REQ: APP-13
    #[test]
    fn sessions_serialise_and_never_debug_print_tokens() {
        let s = session("token-response.symmetric.json", "launch/patient");
        let shown = format!("{s:?}");
        assert!(!shown.contains(s.access_token().expose()));
        assert!(!shown.contains(s.refresh_token().unwrap().expose()));
        let json = serde_json::to_string(&s).unwrap();
        let back: LaunchSession = serde_json::from_str(&json).unwrap();
        assert_eq!(back.access_token(), s.access_token());
        assert_eq!(back.context, s.context);
        assert_eq!(back.expires_at, s.expires_at);
    }

    // REQ: APP-10
    #[test]
    fn refresh_replaces_or_keeps_the_refresh_token() {
        let mut s = session("token-response.asymmetric.json", "launch/patient");
        let old_refresh = s.refresh_token().unwrap().clone();
        let mut r = fixture("token-response.asymmetric.refresh.json");
        r.refresh_token = None;
        r.access_token = "new-access".into();
        s.apply_refresh(r, None, 5000).unwrap();
        assert_eq!(s.access_token().expose(), "new-access");
        assert_eq!(s.refresh_token(), Some(&old_refresh));
        assert!(s.granted_scope.contains("offline_access"));
        let mut r = fixture("token-response.public.refresh.json");
        r.refresh_token = Some("rotated".into());
        s.apply_refresh(r, None, 5000).unwrap();
        assert_eq!(s.refresh_token().unwrap().expose(), "rotated");
        assert_eq!(s.generation, 2);
        assert!(s.expires_within(8500, 120));
        assert!(!s.expires_within(8000, 120));
    }

    // REQ: APP-14
    #[test]
    fn missing_context_and_wrong_types_are_typed_errors() {
        let s = session("token-response.backend-services.json", "system/*.rs");
        let err = s.check_required_context(&["patient".into()]).unwrap_err();
        assert_eq!(err.code(), "context_missing");
        assert!(err.user_message().contains("patient"));
        let p = session("token-response.public.json", "launch/patient");
        p.check_required_context(&["patient".into()]).unwrap();
        assert_eq!(
            p.check_required_context(&["encounter".into()])
                .unwrap_err()
                .code(),
            "context_missing"
        );
        let wrong = LaunchSession::check_resource_type(
            "Patient",
            &serde_json::json!({"resourceType": "Group"}),
        )
        .unwrap_err();
        assert_eq!(wrong.code(), "context_wrong_type");
        LaunchSession::check_resource_type(
            "Patient",
            &serde_json::json!({"resourceType": "Patient"}),
        )
        .unwrap();
    }

    fn claims(sub: &str, fhir_user: &str) -> IdTokenClaims {
        IdTokenClaims {
            iss: "https://ehr/fhir".into(),
            sub: sub.into(),
            exp: 9999,
            iat: 1000,
            fhir_user: Some(FhirUser::parse(fhir_user).unwrap()),
            extra: serde_json::from_value(serde_json::json!({"aud": "app"})).unwrap(),
        }
    }

    // REQ: APP-09
    #[test]
    fn a_refreshed_id_token_is_stored_only_verified_and_for_the_same_user() {
        let mut s = session(
            "token-response.public.json",
            "launch/patient openid fhirUser",
        );
        s.id_claims = Some(claims("alice", "Practitioner/123"));
        let before = format!("{:?}", (s.access_token(), s.id_token(), s.generation));
        let mut r = fixture("token-response.public.refresh.json");
        r.id_token = Some("eyJhbGciOiJSUzI1NiJ9.forged.sig".into());
        let unverified = s.apply_refresh(r.clone(), None, 5000).unwrap_err();
        assert_eq!(unverified.code(), "id_token_invalid");
        let swapped = s
            .apply_refresh(
                r.clone(),
                Some(claims("mallory", "Practitioner/evil")),
                5000,
            )
            .unwrap_err();
        assert!(swapped.to_string().contains("subject"), "{swapped}");
        let mut other_iss = claims("alice", "Practitioner/123");
        other_iss.iss = "https://evil/fhir".into();
        assert!(s.apply_refresh(r.clone(), Some(other_iss), 5000).is_err());
        let mut other_aud = claims("alice", "Practitioner/123");
        other_aud.extra.insert("aud".into(), "other-app".into());
        assert!(s.apply_refresh(r.clone(), Some(other_aud), 5000).is_err());
        // Nothing of a refused response was kept.
        assert_eq!(
            before,
            format!("{:?}", (s.access_token(), s.id_token(), s.generation))
        );
        assert_eq!(s.fhir_user().unwrap().id, "123");
        s.apply_refresh(r, Some(claims("alice", "PractitionerRole/123-r")), 5000)
            .unwrap();
        assert_eq!(s.fhir_user().unwrap().resource_type, "PractitionerRole");
        assert_eq!(s.generation, 1);
    }

    /// 15-second tokens with the default 60-second margin: every request refreshed.
    // REQ: APP-10
    #[test]
    fn the_refresh_margin_is_capped_by_the_token_lifetime() {
        let mut r = fixture("token-response.public.json");
        r.expires_in = Some(15);
        let s = LaunchSession::from_token_response("b", "c", "t", "launch", r, 1000);
        assert_eq!(s.lifetime_secs, Some(15));
        assert!(!s.refresh_due(1000, 60));
        assert!(!s.refresh_due(1011, 60));
        assert!(s.refresh_due(1012, 60));
        let hour = session("token-response.public.json", "launch");
        assert!(!hour.refresh_due(1000 + 3600 - 61, 60));
        assert!(hour.refresh_due(1000 + 3600 - 60, 60));
        // A session saved before the lifetime was kept refreshes as before.
        let mut old = hour.clone();
        old.lifetime_secs = None;
        assert!(old.refresh_due(1000 + 3600 - 60, 60));
    }
}
