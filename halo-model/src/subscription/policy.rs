//! What a Subscription Manager supports, and the check that turns a well-formed Subscription
//! it cannot honour into a rejection (REQ SUB-02: unknown topic, unsupported channel or payload,
//! unknown filter).

use std::collections::BTreeMap;

use super::codes::{ChannelType, PayloadContent};
use super::resource::Subscription;
use crate::canonical::SOFA_CONTENT_UPDATE_TOPIC;
use crate::outcome::IssueType;
use crate::set_context::{Findings, ValidationErrors};

/// The topics, filters, channels and payloads a server accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionPolicy {
    /// Topic canonical → the filter parameters it can filter by (its `canFilterBy`).
    pub topics: BTreeMap<String, Vec<String>>,
    /// Accepted channel types.
    pub channel_types: Vec<ChannelType>,
    /// Accepted payload MIME types (without parameters).
    pub mime_types: Vec<String>,
    /// Accepted payload content levels.
    pub contents: Vec<PayloadContent>,
    /// Whether a rest-hook endpoint must use `https` (the IG strongly recommends it).
    pub require_https: bool,
}

impl Default for SubscriptionPolicy {
    /// A SoFA's policy: the SoFA Content Update topic (D-01) with no filters, rest-hook and
    /// websocket, FHIR JSON, every content level, https endpoints only.
    fn default() -> SubscriptionPolicy {
        SubscriptionPolicy {
            topics: BTreeMap::from([(SOFA_CONTENT_UPDATE_TOPIC.to_owned(), Vec::new())]),
            channel_types: vec![ChannelType::RestHook, ChannelType::Websocket],
            mime_types: vec!["application/fhir+json".into(), "application/json".into()],
            contents: PayloadContent::ALL.to_vec(),
            require_https: true,
        }
    }
}

impl SubscriptionPolicy {
    /// Checks a well-formed Subscription against what this server supports; every reason to
    /// reject comes back at once.
    pub fn check(&self, subscription: &Subscription) -> Result<(), ValidationErrors> {
        let mut findings = Findings::default();
        match self.topics.get(&subscription.topic) {
            None => findings.error(
                IssueType::NotSupported,
                "Subscription.criteria",
                format!("topic {} is not supported here", subscription.topic),
            ),
            Some(filter_parameters) => {
                for (index, filter) in subscription.filters.iter().enumerate() {
                    if !filter_parameters.contains(&filter.parameter) {
                        findings.error(
                            IssueType::NotSupported,
                            format!("Subscription.criteria.extension[{index}].valueString"),
                            format!("the topic cannot filter by {}", filter.parameter),
                        );
                    }
                }
            }
        }
        let channel = &subscription.channel;
        if !self.channel_types.contains(&channel.channel_type) {
            findings.error(
                IssueType::NotSupported,
                "Subscription.channel.type",
                format!("channel type {} is not supported", channel.channel_type),
            );
        }
        if channel.custom_type.is_some() {
            findings.error(
                IssueType::NotSupported,
                "Subscription.channel.type.extension",
                "custom channel types are not supported",
            );
        }
        if channel.channel_type == ChannelType::RestHook {
            match channel.endpoint.as_deref().map(url::Url::parse) {
                Some(Ok(url))
                    if url.scheme() == "https"
                        || (!self.require_https && url.scheme() == "http") => {}
                Some(_) => findings.error(
                    IssueType::Value,
                    "Subscription.channel.endpoint",
                    if self.require_https {
                        "a rest-hook endpoint must be an absolute https URL"
                    } else {
                        "a rest-hook endpoint must be an absolute http(s) URL"
                    },
                ),
                None => findings.error(
                    IssueType::Required,
                    "Subscription.channel.endpoint",
                    "a rest-hook channel needs an endpoint",
                ),
            }
        }
        let mut mime = channel.payload.split(';');
        let base = mime.next().unwrap_or_default().trim();
        if !self.mime_types.iter().any(|m| m.eq_ignore_ascii_case(base)) {
            findings.error(
                IssueType::NotSupported,
                "Subscription.channel.payload",
                format!("payload type {base} is not supported"),
            );
        }
        // The IG: servers SHALL look for fhirVersion and SHALL NOT accept versions they cannot
        // support; this SDK speaks R4 only.
        for parameter in mime {
            if let Some((name, value)) = parameter.split_once('=')
                && name.trim().eq_ignore_ascii_case("fhirVersion")
                && !value.trim().starts_with("4.0")
            {
                findings.error(
                    IssueType::NotSupported,
                    "Subscription.channel.payload",
                    format!(
                        "fhirVersion {} is not supported (R4 4.0 only)",
                        value.trim()
                    ),
                );
            }
        }
        if !self.contents.contains(&channel.content) {
            findings.error(
                IssueType::NotSupported,
                "Subscription.channel.payload.extension",
                format!("payload content {} is not supported", channel.content),
            );
        }
        findings.finish(())
    }

    /// Reads a Subscription and checks it against this policy: what a server runs on
    /// `POST [base]/Subscription`.
    pub fn accept(&self, json: &serde_json::Value) -> Result<Subscription, ValidationErrors> {
        let subscription = Subscription::from_json(json)?;
        self.check(&subscription)?;
        Ok(subscription)
    }
}
