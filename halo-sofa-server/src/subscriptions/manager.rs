//! The Subscription manager: create, read, update, delete and search for the owning client
//! (REQ SUB-02, SUB-10), the status lifecycle (SUB-11) and the handshake (SUB-03).

use std::sync::Arc;

use axum::http::StatusCode;
use halo_model::fhir::RawResource;
use halo_model::outcome::IssueType;
use halo_model::scope::{Interaction, Level};
use halo_model::set_context::ValidationErrors;
use halo_model::subscription::{ChannelType, NotificationType, Subscription};
use serde_json::{Value, json};

use super::Inner;
use super::delivery::{model_status, typed};
use crate::auth::Caller;
use crate::error::SofaError;
use crate::store::{SubscriptionRecord, SubscriptionStatus, meta_instant};

/// A refused Subscription: 422 when it is well-formed but asks for something this server does
/// not support (topic, channel, payload, filter), 400 when it is malformed.
fn refused(errors: ValidationErrors) -> SofaError {
    let status = if errors
        .issues
        .iter()
        .all(|issue| issue.code == IssueType::NotSupported)
    {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::BAD_REQUEST
    };
    SofaError::new(status, errors.to_outcome())
}

pub(crate) fn store_status_of(
    status: halo_model::subscription::SubscriptionStatus,
) -> SubscriptionStatus {
    use halo_model::subscription::SubscriptionStatus as Model;
    match status {
        Model::Requested => SubscriptionStatus::Requested,
        Model::Active => SubscriptionStatus::Active,
        Model::Error => SubscriptionStatus::Error,
        Model::Off => SubscriptionStatus::Off,
    }
}

fn raw(subscription: &Subscription) -> Result<RawResource, SofaError> {
    RawResource::from_value(subscription.to_json())
        .map_err(|_| SofaError::internal("the Subscription could not be serialised"))
}

impl Inner {
    /// D-06: managing subscriptions needs `system/` or `user/Subscription` with the interaction.
    pub(crate) fn require_scope(
        &self,
        caller: &Caller,
        interaction: Interaction,
    ) -> Result<(), SofaError> {
        let permitted = [Level::System, Level::User]
            .into_iter()
            .any(|level| caller.scopes.permits(level, "Subscription", interaction));
        if permitted {
            Ok(())
        } else {
            Err(SofaError::forbidden(
                "this needs a system/ or user/Subscription scope granting the interaction",
            ))
        }
    }

    /// The subscription `id` if the caller owns it; 404 otherwise, so other clients cannot
    /// even learn that it exists (REQ SUB-10).
    pub(crate) async fn owned(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<SubscriptionRecord, SofaError> {
        let mut tx = self.store.begin_read().await?;
        tx.get_subscription(id)
            .await?
            .filter(|record| record.owner_client_id == caller.client_id)
            .ok_or_else(|| SofaError::not_found(format!("Subscription/{id} is not known")))
    }

    /// The Subscription JSON a client reads: the stored resource with the current status.
    pub(crate) fn render(&self, record: &SubscriptionRecord) -> Value {
        match typed(record) {
            Some(subscription) => {
                let mut json = subscription.to_json();
                json["meta"]["lastUpdated"] = json!(meta_instant(record.updated_at));
                json
            }
            None => record.resource.to_value(),
        }
    }

    /// `POST /Subscription` (REQ SUB-02): 201 with status `requested`, then the handshake.
    pub(crate) async fn create(
        self: &Arc<Self>,
        caller: &Caller,
        body: &Value,
    ) -> Result<SubscriptionRecord, SofaError> {
        self.require_scope(caller, Interaction::Create)?;
        let mut subscription = self.policy.accept(body).map_err(refused)?;
        let id = uuid::Uuid::new_v4().to_string();
        subscription.id = Some(id.clone());
        subscription.status = halo_model::subscription::SubscriptionStatus::Requested;
        subscription.error = None;
        let record = SubscriptionRecord {
            id,
            owner_client_id: caller.client_id.clone(),
            topic: subscription.topic.clone(),
            status: SubscriptionStatus::Requested,
            events_since_start: 0,
            resource: raw(&subscription)?,
            updated_at: self.clock.now(),
        };
        {
            let _poc = self.locks.lock(&caller.client_id).await;
            let mut tx = self.store.begin().await?;
            tx.insert_subscription(record.clone()).await?;
            tx.commit().await?;
        }
        self.start_handshake(&record, &subscription);
        Ok(record)
    }

    /// `PUT /Subscription/[id]`: replaces the channel and settings, keeps the event counter;
    /// any status but `off` asks for reactivation (`requested`, then the handshake) (SUB-11).
    pub(crate) async fn update(
        self: &Arc<Self>,
        caller: &Caller,
        id: &str,
        body: &Value,
    ) -> Result<SubscriptionRecord, SofaError> {
        self.require_scope(caller, Interaction::Update)?;
        if let Some(body_id) = body.get("id").and_then(Value::as_str)
            && body_id != id
        {
            return Err(SofaError::bad_request(
                IssueType::Invalid,
                format!("the body's id {body_id} is not the id in the URL ({id})"),
            ));
        }
        let mut subscription = self.policy.accept(body).map_err(refused)?;
        self.owned(caller, id).await?;
        let status = match store_status_of(subscription.status) {
            SubscriptionStatus::Off => SubscriptionStatus::Off,
            _ => SubscriptionStatus::Requested,
        };
        subscription.id = Some(id.to_string());
        subscription.status = model_status(status);
        subscription.error = None;
        let record = {
            let _poc = self.locks.lock(&caller.client_id).await;
            let mut tx = self.store.begin().await?;
            let current = tx
                .get_subscription(id)
                .await?
                .filter(|r| r.owner_client_id == caller.client_id)
                .ok_or_else(|| SofaError::not_found(format!("Subscription/{id} is not known")))?;
            let record = SubscriptionRecord {
                topic: subscription.topic.clone(),
                status,
                resource: raw(&subscription)?,
                updated_at: self.clock.now(),
                ..current
            };
            tx.update_subscription(record.clone()).await?;
            tx.commit().await?;
            record
        };
        if status == SubscriptionStatus::Requested {
            self.start_handshake(&record, &subscription);
        }
        Ok(record)
    }

    /// `DELETE /Subscription/[id]`.
    pub(crate) async fn delete(&self, caller: &Caller, id: &str) -> Result<(), SofaError> {
        self.require_scope(caller, Interaction::Delete)?;
        self.owned(caller, id).await?;
        let _poc = self.locks.lock(&caller.client_id).await;
        let mut tx = self.store.begin().await?;
        tx.delete_subscription(id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// `GET /Subscription`: the caller's subscriptions, optionally by `status`.
    pub(crate) async fn search(
        &self,
        caller: &Caller,
        statuses: &[SubscriptionStatus],
    ) -> Result<Vec<SubscriptionRecord>, SofaError> {
        self.require_scope(caller, Interaction::Search)?;
        let mut tx = self.store.begin_read().await?;
        let mut records = tx.list_subscriptions(Some(&caller.client_id)).await?;
        if !statuses.is_empty() {
            records.retain(|r| statuses.contains(&r.status));
        }
        Ok(records)
    }

    /// Moves a subscription to `status` (with `Subscription.error` when given), under its
    /// owner's lock. A subscription the client switched `off` stays off.
    pub(crate) async fn set_status(
        &self,
        id: &str,
        status: SubscriptionStatus,
        error: Option<String>,
    ) -> Result<(), SofaError> {
        let owner = {
            let mut tx = self.store.begin_read().await?;
            match tx.get_subscription(id).await? {
                Some(record) => record.owner_client_id,
                None => return Ok(()),
            }
        };
        let _poc = self.locks.lock(&owner).await;
        let mut tx = self.store.begin().await?;
        let Some(mut record) = tx.get_subscription(id).await? else {
            return Ok(());
        };
        if record.status == SubscriptionStatus::Off && status != SubscriptionStatus::Off {
            return Ok(());
        }
        if let Some(mut subscription) = typed(&record) {
            subscription.status = model_status(status);
            subscription.error = error;
            record.resource = raw(&subscription)?;
        }
        record.status = status;
        record.updated_at = self.clock.now();
        tx.update_subscription(record).await?;
        tx.commit().await?;
        Ok(())
    }

    /// REQ SUB-03: the handshake runs after the 201, in the background (tracked, so shutdown
    /// waits for it). A websocket handshakes on bind, or now if a socket is already bound.
    fn start_handshake(self: &Arc<Self>, record: &SubscriptionRecord, subscription: &Subscription) {
        if subscription.channel.channel_type == ChannelType::Websocket
            && !self.hub.is_bound(&record.id)
        {
            return;
        }
        let Some(guard) = self.tracker.enter() else {
            return;
        };
        let inner = self.clone();
        let record = record.clone();
        let subscription = subscription.clone();
        tokio::spawn(async move {
            let _guard = guard;
            let body = inner.bare_notification(&record, &subscription, NotificationType::Handshake);
            let outcome = inner.deliver(&record.id, &subscription, &body, None).await;
            let result = match outcome {
                Ok(()) => {
                    inner
                        .set_status(&record.id, SubscriptionStatus::Active, None)
                        .await
                }
                Err(reason) => {
                    tracing::info!(subscription = %record.id, %reason, "handshake failed");
                    inner
                        .set_status(
                            &record.id,
                            SubscriptionStatus::Error,
                            // What the endpoint answered stays in the log: the error
                            // must not turn the SoFA into a port scanner (REQ HARD-03).
                            Some(format!(
                                "handshake failed: the endpoint could not be reached at {}",
                                meta_instant(inner.clock.now())
                            )),
                        )
                        .await
                }
            };
            if let Err(e) = result {
                tracing::warn!(subscription = %record.id, error = %e, "status not recorded");
            }
        });
    }
}
