//! The plain SMART on FHIR launch (REQ LI-02): the PoC has its own FHIR server and
//! authorization server, so it only needs an opaque launch id and a way to hand the context to
//! its authorization server.

use std::fmt;

use halo_catalog::AppEntry;
use halo_model::smart::LaunchContext;
use url::Url;

use crate::BoxFuture;
use crate::error::Result;
use crate::launch_url::launch_url;
use crate::random::random_token;

/// Random bytes in a launch id: 256 bits (decision D-05), twice the 128 bits LI-02 asks for.
pub const LAUNCH_ID_BYTES: usize = 32;

/// An opaque launch id from the OS CSPRNG: 32 bytes, base64url without padding (43 characters).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LaunchId(String);

impl LaunchId {
    /// A new random launch id.
    pub fn generate() -> Result<LaunchId> {
        random_token(LAUNCH_ID_BYTES).map(LaunchId)
    }

    /// The id as sent in the `launch` parameter.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The id is a bearer secret until the app redeems it: keep it out of logs.
impl fmt::Debug for LaunchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LaunchId({}…)", self.0.get(..4).unwrap_or(""))
    }
}

/// What the host's authorization server needs to answer the app's token request: the launch
/// context plus the app and user it was made for.
#[derive(Debug, Clone, PartialEq)]
pub struct PlainLaunchContext {
    /// The App Catalog id of the app.
    pub app_id: String,
    /// The app's `client_id`, when the PoC knows it (to bind the launch to that client).
    pub client_id: Option<String>,
    /// The user's FHIR resource (`Practitioner/123`) for the `fhirUser` claim.
    pub fhir_user: Option<String>,
    /// The SMART launch context (`patient`, `encounter`, `fhirContext`, ...).
    pub context: LaunchContext,
}

/// The host's authorization server, which stores a launch's context under its launch id and
/// returns it in the token response when the app redeems the id.
pub trait LaunchContextSink: Send + Sync {
    /// Stores `context` under `launch_id`. The launch URL is only handed out after this
    /// succeeded, so an app never arrives with an id the server does not know.
    fn register<'a>(
        &'a self,
        launch_id: &'a LaunchId,
        context: &'a PlainLaunchContext,
    ) -> BoxFuture<'a, Result<()>>;
}

/// Launches apps against the PoC's own FHIR server (`iss`).
pub struct PlainLauncher<S> {
    iss: String,
    sink: S,
}

impl<S: LaunchContextSink> PlainLauncher<S> {
    /// A launcher whose apps use `iss` as their FHIR server.
    pub fn new(iss: impl Into<String>, sink: S) -> PlainLauncher<S> {
        PlainLauncher {
            iss: iss.into(),
            sink,
        }
    }

    /// Makes a launch id, registers the context with the authorization server and gives the URL
    /// that opens the app.
    pub async fn launch(
        &self,
        app: &AppEntry,
        context: PlainLaunchContext,
    ) -> Result<(LaunchId, Url)> {
        let launch_id = LaunchId::generate()?;
        // Check the URL before the authorization server stores anything.
        let url = launch_url(&app.launch_url, &self.iss, launch_id.as_str())?;
        self.sink.register(&launch_id, &context).await?;
        Ok((launch_id, url))
    }
}

impl<S> fmt::Debug for PlainLauncher<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainLauncher")
            .field("iss", &self.iss)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Mutex;

    use base64::Engine;

    use super::*;

    // REQ: LI-02
    #[test]
    fn launch_ids_are_256_random_bits_in_base64url() {
        let ids: BTreeSet<String> = (0..1000)
            .map(|_| LaunchId::generate().unwrap().as_str().to_owned())
            .collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            assert_eq!(id.len(), 43);
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(id)
                .unwrap();
            assert_eq!(bytes.len(), 32);
        }
        // Debug shows only a prefix.
        let id = LaunchId::generate().unwrap();
        assert!(!format!("{id:?}").contains(id.as_str()));
    }

    #[derive(Default)]
    struct Recorder(Mutex<Vec<(String, PlainLaunchContext)>>);

    impl LaunchContextSink for Recorder {
        fn register<'a>(
            &'a self,
            launch_id: &'a LaunchId,
            context: &'a PlainLaunchContext,
        ) -> BoxFuture<'a, Result<()>> {
            Box::pin(async move {
                self.0
                    .lock()
                    .unwrap()
                    .push((launch_id.as_str().to_owned(), context.clone()));
                Ok(())
            })
        }
    }

    fn app(launch_url: &str) -> AppEntry {
        let json = serde_json::json!({
            "id": "app-1", "name": "A", "description": "d", "descriptionShort": "d",
            "iconUrl": "https://a.example/i.png", "privacyPolicyUrl": "https://a.example/p",
            "termsOfServiceUrl": "https://a.example/t", "launchUrl": launch_url,
            "contacts": [], "publisher": {"id": "p", "name": "P"}
        });
        serde_json::from_value(json).unwrap()
    }

    // REQ: LI-02
    #[tokio::test]
    async fn plain_launch_hands_the_context_to_the_authorization_server() {
        let launcher = PlainLauncher::new("https://ehr.example.org/fhir", Recorder::default());
        let context = PlainLaunchContext {
            app_id: "app-1".into(),
            client_id: None,
            fhir_user: Some("Practitioner/7".into()),
            context: LaunchContext {
                patient: Some("123".into()),
                ..LaunchContext::default()
            },
        };
        let (id, url) = launcher
            .launch(&app("https://a.example/launch?site=2"), context.clone())
            .await
            .unwrap();
        let stored = launcher.sink.0.lock().unwrap().clone();
        assert_eq!(stored, [(id.as_str().to_owned(), context.clone())]);
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(pairs[0], ("site".into(), "2".into()));
        assert_eq!(pairs[2], ("launch".into(), id.as_str().to_owned()));

        // A bad launch URL fails before anything is registered.
        let error = launcher
            .launch(&app("ftp://a.example/"), context)
            .await
            .unwrap_err();
        assert_eq!(error.code(), "poc.invalid-url");
        assert_eq!(launcher.sink.0.lock().unwrap().len(), 1);
    }
}
