//! The HTTP client for the SoFA's FHIR endpoints the PoC calls: `$set-context`,
//! `$clear-context`, Subscription create/read/delete, `$status`, `$events`,
//! `$get-ws-binding-token`, and plain reads. Every call has a timeout and a body limit and sends
//! the PoC's bearer token.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use halo_model::fhir::{JsonLimits, media, parse_json};
use halo_model::outcome::OperationOutcome;
use halo_model::set_context::{ClearContextOutput, SetContextOutput, clear_context_input};
use halo_model::subscription::{
    BindingToken, EventsQuery, Notification, Subscription, SubscriptionStatusParameters,
    binding_token_input, parse_status_bundle,
};
use reqwest::Method;
use serde_json::Value;
use url::Url;

use crate::error::{PocError, Result};
use crate::launch_url::check_scheme;
use crate::token::TokenSource;

/// Limits of every call to the SoFA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpOptions {
    /// The whole call, connection to last body byte.
    pub timeout: Duration,
    /// Connection set-up alone.
    pub connect_timeout: Duration,
    /// Size and depth limits of an answer.
    pub limits: JsonLimits,
}

impl Default for HttpOptions {
    fn default() -> HttpOptions {
        HttpOptions {
            timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            limits: JsonLimits::default(),
        }
    }
}

/// A client for one SoFA, cheap to clone.
#[derive(Clone)]
pub struct SofaClient {
    base: Url,
    http: reqwest::Client,
    tokens: Arc<dyn TokenSource>,
    options: HttpOptions,
}

impl fmt::Debug for SofaClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SofaClient")
            .field("base", &self.base.as_str())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// A subscription id as it may appear in a path: FHIR `id` characters only, so a value read
/// from a notification can never change which URL is called.
fn checked_id(id: &str) -> Result<&str> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if ok {
        Ok(id)
    } else {
        Err(PocError::InvalidResponse {
            operation: "Subscription".into(),
            detail: format!("'{id}' is not a FHIR id"),
        })
    }
}

impl SofaClient {
    /// A client for the SoFA whose FHIR base is `fhir_base` (the `iss` apps are launched with).
    pub fn new(
        fhir_base: &str,
        tokens: Arc<dyn TokenSource>,
        options: HttpOptions,
    ) -> Result<SofaClient> {
        let mut base = Url::parse(fhir_base).map_err(|e| PocError::InvalidUrl {
            url: fhir_base.to_owned(),
            reason: e.to_string(),
        })?;
        check_scheme(&base, fhir_base)?;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.connect_timeout)
            // A redirect would carry the bearer token somewhere the PoC did not choose.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| PocError::Network {
                operation: "client set-up".into(),
                detail: e.to_string(),
            })?;
        Ok(SofaClient {
            base,
            http,
            tokens,
            options,
        })
    }

    /// The FHIR base as apps see it (`iss`), without the trailing `/`.
    pub fn fhir_base(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// The options the client was made with.
    pub fn options(&self) -> &HttpOptions {
        &self.options
    }

    fn url(&self, path: &str) -> Result<Url> {
        self.base.join(path).map_err(|e| PocError::InvalidUrl {
            url: format!("{}{path}", self.base),
            reason: e.to_string(),
        })
    }

    /// Sends one request; gives the status and the parsed JSON body (`Null` when empty).
    async fn call(
        &self,
        method: Method,
        path: &str,
        operation: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value)> {
        let url = self.url(path)?;
        let token = self.tokens.access_token().await?;
        let mut request = self
            .http
            .request(method, url)
            .bearer_auth(token)
            .header(reqwest::header::ACCEPT, media::FHIR_JSON);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, media::FHIR_JSON)
                .body(body.to_string());
        }
        let network = |e: reqwest::Error| {
            if e.is_timeout() {
                PocError::Timeout {
                    operation: operation.to_owned(),
                    timeout: self.options.timeout,
                }
            } else {
                PocError::Network {
                    operation: operation.to_owned(),
                    detail: e.to_string(),
                }
            }
        };
        let mut response = request.send().await.map_err(network)?;
        let status = response.status().as_u16();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(network)? {
            if bytes.len() + chunk.len() > self.options.limits.max_bytes {
                return Err(PocError::InvalidResponse {
                    operation: operation.to_owned(),
                    detail: format!(
                        "the answer is larger than {} bytes",
                        self.options.limits.max_bytes
                    ),
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        let json = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            match parse_json(&bytes, self.options.limits) {
                Ok(json) => json,
                Err(_) if !(200..300).contains(&status) => Value::Null,
                Err(e) => {
                    return Err(PocError::InvalidResponse {
                        operation: operation.to_owned(),
                        detail: e.to_string(),
                    });
                }
            }
        };
        if !(200..300).contains(&status) {
            return Err(PocError::Rejected {
                operation: operation.to_owned(),
                status,
                detail: outcome_text(&json, &bytes),
            });
        }
        Ok((status, json))
    }

    /// `POST [base]/$set-context` with a SetContextInputParameters body.
    pub async fn set_context(&self, parameters: &Value) -> Result<SetContextOutput> {
        let (_, json) = self
            .call(
                Method::POST,
                "$set-context",
                "$set-context",
                Some(parameters),
            )
            .await?;
        SetContextOutput::parse(&json).map_err(|e| PocError::InvalidResponse {
            operation: "$set-context".into(),
            detail: e.to_string(),
        })
    }

    /// `POST [base]/$clear-context`; either answer shape of decision D-02 is read.
    pub async fn clear_context(&self, launch_id: &str) -> Result<ClearContextOutput> {
        let (_, json) = self
            .call(
                Method::POST,
                "$clear-context",
                "$clear-context",
                Some(&clear_context_input(launch_id)),
            )
            .await?;
        ClearContextOutput::parse(&json).map_err(|e| PocError::InvalidResponse {
            operation: "$clear-context".into(),
            detail: e.to_string(),
        })
    }

    /// `POST [base]/Subscription`: gives the subscription as the SoFA stored it.
    pub async fn create_subscription(&self, subscription: &Subscription) -> Result<Subscription> {
        let (_, json) = self
            .call(
                Method::POST,
                "Subscription",
                "Subscription create",
                Some(&subscription.to_json()),
            )
            .await?;
        let created = read_subscription(&json, "Subscription create")?;
        if created.id.is_none() {
            return Err(PocError::InvalidResponse {
                operation: "Subscription create".into(),
                detail: "the created Subscription has no id".into(),
            });
        }
        Ok(created)
    }

    /// `GET [base]/Subscription/[id]`.
    pub async fn read_subscription(&self, id: &str) -> Result<Subscription> {
        let path = format!("Subscription/{}", checked_id(id)?);
        let (_, json) = self
            .call(Method::GET, &path, "Subscription read", None)
            .await?;
        read_subscription(&json, "Subscription read")
    }

    /// `DELETE [base]/Subscription/[id]`.
    pub async fn delete_subscription(&self, id: &str) -> Result<()> {
        let path = format!("Subscription/{}", checked_id(id)?);
        self.call(Method::DELETE, &path, "Subscription delete", None)
            .await
            .map(drop)
    }

    /// `GET [base]/Subscription/[id]/$status`: the subscription's status Parameters.
    pub async fn status(&self, id: &str) -> Result<SubscriptionStatusParameters> {
        let path = format!("Subscription/{}/$status", checked_id(id)?);
        let (_, json) = self.call(Method::GET, &path, "$status", None).await?;
        let statuses = parse_status_bundle(&json).map_err(|e| PocError::InvalidResponse {
            operation: "$status".into(),
            detail: e.to_string(),
        })?;
        statuses
            .into_iter()
            .find(|s| s.subscription_id() == id)
            .ok_or_else(|| PocError::InvalidResponse {
                operation: "$status".into(),
                detail: format!("the answer has no status for subscription {id}"),
            })
    }

    /// `POST [base]/Subscription/[id]/$events`: the events in `query`'s range as a
    /// notification Bundle.
    pub async fn events(&self, id: &str, query: &EventsQuery) -> Result<Notification> {
        let path = format!("Subscription/{}/$events", checked_id(id)?);
        let (_, json) = self
            .call(Method::POST, &path, "$events", Some(&query.to_json()))
            .await?;
        Notification::from_json(&json).map_err(|e| PocError::InvalidResponse {
            operation: "$events".into(),
            detail: e.to_string(),
        })
    }

    /// `POST [base]/Subscription/[id]/$get-ws-binding-token`.
    pub async fn binding_token(&self, id: &str) -> Result<BindingToken> {
        let path = format!("Subscription/{}/$get-ws-binding-token", checked_id(id)?);
        let (_, json) = self
            .call(
                Method::POST,
                &path,
                "$get-ws-binding-token",
                Some(&binding_token_input(&[id])),
            )
            .await?;
        BindingToken::from_json(&json).map_err(|e| PocError::InvalidResponse {
            operation: "$get-ws-binding-token".into(),
            detail: e.to_string(),
        })
    }

    /// `GET [base]/[Type]/[id]`: for id-only notifications, the resource itself.
    pub async fn read(&self, reference: &str) -> Result<Value> {
        let mut parts = reference.split('/');
        let (Some(kind), Some(id), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(PocError::InvalidUrl {
                url: reference.to_owned(),
                reason: "a read needs a Type/id reference".into(),
            });
        };
        if !halo_model::set_context::is_r4_resource_type(kind) {
            return Err(PocError::InvalidUrl {
                url: reference.to_owned(),
                reason: format!("'{kind}' is not a FHIR R4 resource type"),
            });
        }
        let path = format!("{kind}/{}", checked_id(id)?);
        self.call(Method::GET, &path, "read", None)
            .await
            .map(|(_, json)| json)
    }
}

fn read_subscription(json: &Value, operation: &str) -> Result<Subscription> {
    Subscription::from_json(json).map_err(|e| PocError::InvalidResponse {
        operation: operation.to_owned(),
        detail: e.to_string(),
    })
}

/// A person-readable summary of an error answer: the OperationOutcome's messages, else the
/// start of the body.
fn outcome_text(json: &Value, bytes: &[u8]) -> String {
    if let Ok(outcome) = OperationOutcome::from_json(json) {
        let messages: Vec<&str> = outcome.issues.iter().map(|i| i.message()).collect();
        if !messages.is_empty() {
            return messages.join("; ");
        }
    }
    let text = String::from_utf8_lossy(bytes);
    let text: String = text.chars().take(200).collect();
    if text.trim().is_empty() {
        "no details given".into()
    } else {
        text
    }
}
