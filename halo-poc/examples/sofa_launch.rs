//! The whole SoFA launch from the EMR's side:
//!
//! 1. listen for notifications (rest-hook endpoint on the EMR's server),
//! 2. subscribe to the SoFA Content Update topic and wait for `active`,
//! 3. keep the subscription alive with the watchdog,
//! 4. launch an app from its App Catalog entry: `$set-context`, id mapping, launch URL,
//! 5. apply the app's writes as they arrive, mapped to the EMR's ids,
//! 6. `$clear-context` when the clinician closes the app.
//!
//! Run against a SoFA:
//!
//! ```text
//! SOFA_BASE=https://sofa.example.org/fhir POC_TOKEN=... \
//! POC_PUBLIC_URL=https://emr.example.org/sofa/notify POC_LISTEN=0.0.0.0:8443 \
//!   cargo run -p halo-poc --example sofa_launch
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use halo_catalog::AppEntry;
use halo_model::subscription::PayloadContent;
use halo_poc::{
    BoxFuture, Change, ChangeSink, ClinicalContext, ContextPlan, CurrentSubscription, HttpOptions,
    LocalResources, MemoryIdMap, NotificationReceiver, RestHookSecret, SofaClient, SofaLauncher,
    StaticToken, SubscriptionManager, Watchdog, rest_hook_channel,
};
use serde_json::{Value, json};

/// The EMR's chart, as FHIR JSON with local ids. A real EMR maps from its own tables here.
struct Chart(Mutex<BTreeMap<String, Value>>);

impl LocalResources for Chart {
    fn resource<'a>(
        &'a self,
        reference: &'a str,
    ) -> BoxFuture<'a, halo_poc::Result<Option<Value>>> {
        Box::pin(async move { Ok(self.0.lock().ok().and_then(|c| c.get(reference).cloned())) })
    }

    fn related<'a>(&'a self, plan: &'a ContextPlan) -> BoxFuture<'a, halo_poc::Result<Vec<Value>>> {
        // Prepopulate what the app may read: here, the patient's Observations.
        Box::pin(async move {
            let wanted = |t: &str| plan.data_types.iter().any(|d| d == t || d == "*");
            let chart = self
                .0
                .lock()
                .map_err(|_| halo_poc::PocError::Host("chart lock".into()))?;
            Ok(chart
                .iter()
                .filter(|(key, _)| key.starts_with("Observation/") && wanted("Observation"))
                .map(|(_, resource)| resource.clone())
                .collect())
        })
    }
}

impl ChangeSink for Chart {
    fn apply(&self, change: Change) -> BoxFuture<'_, halo_poc::Result<Option<String>>> {
        Box::pin(async move {
            let mut chart = self
                .0
                .lock()
                .map_err(|_| halo_poc::PocError::Host("chart lock".into()))?;
            let Some(focus) = &change.focus else {
                return Ok(None); // an `empty` payload: nothing to store
            };
            // Update the record the EMR already has, or file a new one under a local id.
            let local = match &change.local {
                Some(local) => local.clone(),
                None => format!(
                    "{}/emr-{}",
                    focus.split('/').next().unwrap_or("Basic"),
                    chart.len() + 1
                ),
            };
            if let Some(mut resource) = change.resource {
                if let (Some(object), Some(id)) =
                    (resource.as_object_mut(), local.split('/').nth(1))
                {
                    object.insert("id".into(), json!(id));
                }
                println!("event {} {focus} -> {local}", change.event_number);
                chart.insert(local.clone(), resource);
            }
            Ok(change.local.is_none().then_some(local))
        })
    }
}

fn env(name: &str) -> Result<String, Box<dyn std::error::Error>> {
    std::env::var(name).map_err(|_| format!("set {name}").into())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let chart = Arc::new(Chart(Mutex::new(BTreeMap::from([
        (
            "Patient/p7".to_owned(),
            json!({"resourceType": "Patient", "id": "p7", "gender": "female"}),
        ),
        (
            "Practitioner/dr-1".to_owned(),
            json!({"resourceType": "Practitioner", "id": "dr-1"}),
        ),
    ]))));

    // The PoC's token for the SoFA (D-06: Context.write and Subscription.cruds). With the
    // `backend-services` feature, `BackendServicesTokens` gets and renews one instead.
    let sofa = SofaClient::new(
        &env("SOFA_BASE")?,
        Arc::new(StaticToken::new(env("POC_TOKEN")?)),
        HttpOptions::default(),
    )?;
    let id_map = Arc::new(MemoryIdMap::new());

    // 1. The rest-hook endpoint, checking the secret the subscription will carry.
    let secret = RestHookSecret::generate()?;
    let receiver = NotificationReceiver::builder(sofa.clone(), id_map.clone(), chart.clone())
        .expect_header("Authorization", secret.header_value())
        .build();
    let app = axum::Router::new().nest(
        "/sofa/notify",
        halo_poc::rest_hook::router(receiver.clone()),
    );
    let listener = tokio::net::TcpListener::bind(env("POC_LISTEN")?).await?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    // 2. Subscribe (once per installation, before any $set-context: D-07).
    let manager = SubscriptionManager::new(sofa.clone());
    let channel = rest_hook_channel(
        env("POC_PUBLIC_URL")?,
        PayloadContent::FullResource,
        &secret,
        Some(60),
    );
    let subscription = manager.subscribe(channel).await?;
    let current = CurrentSubscription::new(subscription);

    // 3. The watchdog: $status after a silent heartbeat period, recreate if dead.
    let watchdog = Watchdog::new(manager, receiver, current.clone()).spawn(Duration::from_secs(30));

    // 4. Launch an app from its App Catalog entry.
    let entry: AppEntry = serde_json::from_value(json!({
        "id": "459-L", "name": "Heart Health Monitor", "description": "...", "descriptionShort": "...",
        "iconUrl": "https://app.example.org/icon.png", "privacyPolicyUrl": "https://app.example.org/privacy",
        "termsOfServiceUrl": "https://app.example.org/terms", "launchUrl": "https://app.example.org/launch",
        "contacts": [], "publisher": {"id": "pub-1", "name": "Example Health"},
        "scopes": ["launch", "launch/patient", "openid", "fhirUser", "patient/Observation.crus"]
    }))?;
    let clinical = ClinicalContext::default()
        .with("Patient/p7")
        .user("Practitioner/dr-1");
    let launcher = SofaLauncher::new(sofa, chart.clone(), id_map);
    let launch = match launcher.launch(&entry, &clinical).await {
        Ok(launch) => launch,
        Err(error) => {
            // Stable code for support, message for the clinician.
            eprintln!("[{}] {error}", error.code());
            return Ok(());
        }
    };
    println!("open in the clinician's browser: {}", launch.url);

    // 5. Notifications arrive on the endpoint while the app works. 6. Clear at the end.
    tokio::signal::ctrl_c().await?;
    let report = launcher.end(&launch).await;
    if !report.succeeded() {
        eprintln!(
            "$clear-context failed ({:?}); the SoFA will expire the context",
            report.result
        );
    }
    watchdog.abort();
    Ok(())
}
