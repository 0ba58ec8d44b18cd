//! `$status` (REQ SUB-08), `$events` (SUB-07) and `$get-ws-binding-token` (SUB-09).

use chrono::Duration as ChronoDuration;
use halo_model::outcome::IssueType;
use halo_model::scope::Interaction;
use halo_model::subscription::{
    BindingToken, ChannelType, EventsQuery, Notification, NotificationEvent, NotificationType,
    StatusQuery, status_bundle,
};
use serde_json::Value;

use super::Inner;
use super::delivery::{model_status, typed};
use super::notifier::EventContent;
use crate::auth::Caller;
use crate::error::SofaError;
use crate::fhir::ChangeAction;
use crate::store::meta_instant;

fn invalid(errors: halo_model::set_context::ValidationErrors) -> SofaError {
    SofaError::invalid(errors.issues)
}

impl Inner {
    /// `$status`: one `query-status` Parameters per subscription of the caller, by id (instance
    /// level passes its id) and status.
    pub(crate) async fn status(
        &self,
        caller: &Caller,
        query: &StatusQuery,
        self_url: &str,
    ) -> Result<Value, SofaError> {
        self.require_scope(caller, Interaction::Read)?;
        let mut tx = self.store.begin_read().await?;
        let records = tx.list_subscriptions(Some(&caller.client_id)).await?;
        drop(tx);
        for id in &query.ids {
            if !records.iter().any(|r| &r.id == id) {
                return Err(SofaError::not_found(format!(
                    "Subscription/{id} is not known"
                )));
            }
        }
        let statuses: Vec<_> = records
            .iter()
            .filter(|r| query.ids.is_empty() || query.ids.contains(&r.id))
            .filter(|r| {
                query.statuses.is_empty() || query.statuses.contains(&model_status(r.status))
            })
            .map(|r| self.status_parameters(r, NotificationType::QueryStatus, r.events_since_start))
            .collect();
        Ok(status_bundle(
            &statuses,
            self_url,
            &uuid::Uuid::new_v4().to_string(),
            &meta_instant(self.clock.now()),
        ))
    }

    /// `$events`: the persisted events of one subscription as a `query-event` Bundle, at the
    /// requested content level (default: the channel's). Each entry is the event as it was
    /// sent: the resource version of that moment, a delete, or a compensation (D-17, REQ
    /// SYNC-03), whatever happened to the resource since. Events logged before their content
    /// was kept give the resource as it is now, or its id when it is gone.
    pub(crate) async fn events(
        &self,
        caller: &Caller,
        id: &str,
        query: &EventsQuery,
    ) -> Result<Value, SofaError> {
        self.require_scope(caller, Interaction::Read)?;
        let record = self.owned(caller, id).await?;
        let subscription = typed(&record)
            .ok_or_else(|| SofaError::internal("the stored Subscription is unreadable"))?;
        let since = query.since.unwrap_or(1).max(1);
        let mut tx = self.store.begin_read().await?;
        let events = tx.events(id, since, query.until).await?;
        let mut status = self.status_parameters(
            &record,
            NotificationType::QueryEvent,
            record.events_since_start,
        );
        let mut notification = Notification::new(status.clone(), self.status_url(id));
        for event in &events {
            let focus = event
                .focus
                .as_ref()
                .map(|f| format!("{}/{f}", self.config.base_url));
            status.events.push(NotificationEvent::new(
                event.event_number,
                meta_instant(event.timestamp),
                focus,
            ));
            let Some(content) = EventContent::of(event) else {
                continue;
            };
            let action = content.change_action();
            let resource = match (action, content.resource) {
                (ChangeAction::Delete, _) => None,
                (_, Some(sent)) => Some(sent),
                (_, None) => tx
                    .read_resource(&content.resource_type, &content.id)
                    .await?
                    .map(|stored| stored.resource.to_value()),
            };
            notification.entries.push(self.change_entry(
                action,
                &content.resource_type,
                &content.id,
                resource,
            ));
        }
        notification.status = status;
        notification.id = Some(uuid::Uuid::new_v4().to_string());
        notification.timestamp = Some(meta_instant(self.clock.now()));
        notification.restrict_to(query.content.unwrap_or(subscription.channel.content));
        Ok(notification.to_json())
    }

    /// `$get-ws-binding-token`: a single-use token for the caller's websocket subscriptions
    /// (every one when no id is given).
    pub(crate) async fn binding_token(
        &self,
        caller: &Caller,
        ids: Vec<String>,
    ) -> Result<Value, SofaError> {
        self.require_scope(caller, Interaction::Read)?;
        let mut tx = self.store.begin_read().await?;
        let records = tx.list_subscriptions(Some(&caller.client_id)).await?;
        drop(tx);
        let websocket = |id: &str| {
            records.iter().find(|r| r.id == id).is_some_and(|r| {
                typed(r).is_some_and(|s| s.channel.channel_type == ChannelType::Websocket)
            })
        };
        let ids: Vec<String> = if ids.is_empty() {
            records
                .iter()
                .filter(|r| websocket(&r.id))
                .map(|r| r.id.clone())
                .collect()
        } else {
            for id in &ids {
                if !records.iter().any(|r| &r.id == id) {
                    return Err(SofaError::not_found(format!(
                        "Subscription/{id} is not known"
                    )));
                }
                if !websocket(id) {
                    return Err(SofaError::bad_request(
                        IssueType::Invalid,
                        format!("Subscription/{id} does not use the websocket channel"),
                    ));
                }
            }
            ids
        };
        if ids.is_empty() {
            return Err(SofaError::bad_request(
                IssueType::NotFound,
                "the caller has no websocket subscription to bind",
            ));
        }
        let now = self.clock.now();
        let ttl = ChronoDuration::from_std(self.settings.binding_token_ttl)
            .unwrap_or(ChronoDuration::seconds(60));
        let expires_at = now + ttl;
        let token = self
            .issue_binding_token(&caller.client_id, ids.clone(), expires_at)
            .await?;
        Ok(BindingToken {
            token,
            expiration: meta_instant(expires_at),
            subscriptions: ids,
            websocket_url: self.websocket_url(),
        }
        .to_json())
    }

    /// The websocket URL: the FHIR base with `ws(s)` and the websocket path.
    pub(crate) fn websocket_url(&self) -> String {
        let base = &self.config.base_url;
        let base = if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            base.clone()
        };
        format!("{base}{}", self.settings.websocket_path)
    }
}

pub(crate) fn parse_events_query(items: &[(String, String)]) -> Result<EventsQuery, SofaError> {
    EventsQuery::from_query(
        items
            .iter()
            .filter(|(name, _)| name != "_format")
            .map(|(n, v)| (n.as_str(), v.as_str())),
    )
    .map_err(invalid)
}

pub(crate) fn parse_events_body(body: &Value) -> Result<EventsQuery, SofaError> {
    EventsQuery::from_json(body).map_err(invalid)
}

pub(crate) fn parse_status_items(items: &[(String, String)]) -> Result<StatusQuery, SofaError> {
    let parameters: Vec<Value> = items
        .iter()
        .filter(|(name, _)| name != "_format")
        .flat_map(|(name, value)| {
            value.split(',').map(move |v| match name.as_str() {
                "id" | "_id" => serde_json::json!({"name": "id", "valueId": v}),
                other => serde_json::json!({"name": other, "valueCode": v}),
            })
        })
        .collect();
    StatusQuery::from_json(
        &serde_json::json!({"resourceType": "Parameters", "parameter": parameters}),
    )
    .map_err(invalid)
}

pub(crate) fn parse_status_body(body: &Value) -> Result<StatusQuery, SofaError> {
    StatusQuery::from_json(body).map_err(invalid)
}
