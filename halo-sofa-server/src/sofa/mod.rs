//! One SoFA assembled: [`Sofa`] and its [`SofaBuilder`], the top of the crate. The builder takes
//! each part once and hands it to every service that needs it; the router puts the services'
//! routes behind one set of layers (limits, CORS, XML, timeouts, panics, tracing). Handlers
//! only authenticate, read the body within limits, call the service and render its answer;
//! every error is an OperationOutcome with its status (REQ REL-03).

mod build_error;
mod handlers;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use halo_model::canonical;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::RequestBodyDeadlineLayer;
use tower_http::trace::TraceLayer;

pub use build_error::BuildError;

use crate::asynchronous::AsyncJobs;
use crate::audit::{AuditSink, TracingAuditSink};
use crate::auth::{AuthServer, StaticTokens, TokenValidator};
use crate::clock::{Clock, SystemClock};
use crate::config::SofaConfig;
use crate::context::ContextManager;
use crate::fhir::{Capabilities, OperationCapability, ProfileValidator, ResourceValidator};
use crate::fhir::{ChangeNotifier, CommitDirectly};
use crate::resources::ResourceServer;
use crate::store::Store;
use crate::subscriptions::{SubscriptionSettings, Subscriptions};

/// The shared state of the handlers.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) context: Arc<ContextManager>,
    pub(crate) tokens: Arc<dyn TokenValidator>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: Arc<SofaConfig>,
    pub(crate) capabilities: Arc<Capabilities>,
}

/// Assembles a [`Sofa`] from the host's seams. The store is required, and so is a change
/// notifier once the resource server is on: [`build`](Self::build) names what is missing
/// rather than fall back to something that loses data or skips the PoC. The other seams have
/// defaults.
pub struct SofaBuilder {
    config: SofaConfig,
    store: Option<Arc<dyn Store>>,
    tokens: Option<Arc<dyn TokenValidator>>,
    validator: Option<Arc<dyn ResourceValidator>>,
    audit: Arc<dyn AuditSink>,
    clock: Arc<dyn Clock>,
    mounted: Vec<(Router, Capabilities)>,
    resources: bool,
    notifier: Option<Arc<dyn ChangeNotifier>>,
    subscriptions: Option<SubscriptionSettings>,
    async_jobs: bool,
}

impl SofaBuilder {
    /// Serves the FHIR resource API (`/{type}`, `/{type}/{id}`) for the supported types with the
    /// builder's store, token validator, validator and notifier (REQ RS-02..RS-05, RS-07).
    pub fn resource_server(mut self) -> SofaBuilder {
        self.resources = true;
        self
    }

    /// The write path's notification step: the subscriptions' notifier, which delivers every
    /// app write to the PoC before it commits (D-08). Required with
    /// [`resource_server`](Self::resource_server).
    pub fn notifier(mut self, notifier: Arc<dyn ChangeNotifier>) -> SofaBuilder {
        self.notifier = Some(notifier);
        self
    }

    /// **Tests only**: the resource server commits app writes without telling the PoC
    /// ([`CommitDirectly`]), which breaks deliver-before-commit (D-08). For tests of the
    /// resource API that have no subscriptions; a SoFA passes [`notifier`](Self::notifier).
    pub fn commit_writes_without_notifying_the_poc_for_tests(mut self) -> SofaBuilder {
        self.notifier = Some(Arc::new(CommitDirectly));
        self
    }

    /// The store (required): a [`SqliteStore`](crate::store::SqliteStore), a
    /// `PostgresStore`, a [`MemoryStore`](crate::store::MemoryStore) in tests, or the host's
    /// own.
    pub fn store(mut self, store: Arc<dyn Store>) -> SofaBuilder {
        self.store = Some(store);
        self
    }

    /// The bearer-token check (default: [`StaticTokens`] with no tokens, refusing everyone).
    pub fn token_validator(mut self, tokens: Arc<dyn TokenValidator>) -> SofaBuilder {
        self.tokens = Some(tokens);
        self
    }

    /// The resource validator (default: [`ProfileValidator`] over the configured types: FHIR R4
    /// and the embedded jurisdiction profiles).
    pub fn validator(mut self, validator: Arc<dyn ResourceValidator>) -> SofaBuilder {
        self.validator = Some(validator);
        self
    }

    /// The audit sink (default: [`TracingAuditSink`]).
    pub fn audit(mut self, audit: Arc<dyn AuditSink>) -> SofaBuilder {
        self.audit = audit;
        self
    }

    /// The clock (default: [`SystemClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> SofaBuilder {
        self.clock = clock;
        self
    }

    /// The SoFA's own authorization server (REQ AS-01..AS-11): mounts its routes, and its
    /// tokens become the bearer-token check unless [`token_validator`](Self::token_validator)
    /// names another (a chain with an external provider's, a rate-limited wrapper).
    pub fn authorization(mut self, auth: &AuthServer) -> SofaBuilder {
        if self.tokens.is_none() {
            self.tokens = Some(auth.token_validator());
        }
        self.mount(auth.router(), |_| {})
    }

    /// Subscriptions (R5 Backport, HALO CA:FSub) built from this builder's store, token check,
    /// clock and configuration: their routes are mounted and advertised, and, with the resource
    /// server, their notifier delivers every app write to the PoC before it commits (D-08).
    /// [`Sofa::subscriptions`] hands the service back for its background tasks and shutdown.
    pub fn subscriptions(mut self, settings: SubscriptionSettings) -> SofaBuilder {
        self.subscriptions = Some(settings);
        self
    }

    /// `Prefer: respond-async` on every route (REQ ASY-01): jobs kept in the builder's store,
    /// submitters identified by its token check.
    pub fn async_jobs(mut self) -> SofaBuilder {
        self.async_jobs = true;
        self
    }

    /// Mounts more routes (the authorization server, subscriptions...) next to the core ones,
    /// with what they offer, so `GET /metadata` advertises exactly what is mounted.
    pub fn mount(mut self, routes: Router, offers: impl FnOnce(&mut Capabilities)) -> SofaBuilder {
        let mut capabilities = Capabilities::default();
        offers(&mut capabilities);
        self.mounted.push((routes, capabilities));
        self
    }

    /// Builds the server; [`BuildError`] names a required part that was not given.
    pub fn build(self) -> Result<Sofa, BuildError> {
        let config = Arc::new(self.config);
        let store = self.store.ok_or(BuildError::MissingStore)?;
        let tokens = self
            .tokens
            .unwrap_or_else(|| Arc::new(StaticTokens::new()) as Arc<dyn TokenValidator>);
        let subscriptions = self.subscriptions.map(|settings| {
            Subscriptions::new(
                store.clone(),
                tokens.clone(),
                self.clock.clone(),
                config.clone(),
                settings,
            )
        });
        let mut mounted = self.mounted;
        let mut notifier = self.notifier;
        if let Some(subscriptions) = &subscriptions {
            let mut offered = Capabilities::default();
            subscriptions.offers(&mut offered);
            mounted.push((subscriptions.routes(), offered));
            notifier = notifier.or_else(|| Some(subscriptions.notifier()));
        }
        // Without the resource server nothing writes, so nothing needs notifying.
        let notifier = match (self.resources, notifier) {
            (false, _) => None,
            (true, None) => return Err(BuildError::MissingNotifier),
            (true, Some(notifier)) => Some(notifier),
        };
        let validator = self.validator.unwrap_or_else(|| {
            Arc::new(ProfileValidator::new(config.supported_types.clone()))
                as Arc<dyn ResourceValidator>
        });
        let resource_server = notifier.map(|notifier| {
            ResourceServer::new(
                store.clone(),
                tokens.clone(),
                validator.clone(),
                notifier,
                self.clock.clone(),
                config.clone(),
            )
        });
        let async_jobs = self.async_jobs.then(|| {
            AsyncJobs::new(
                config.base_url.clone(),
                tokens.clone(),
                store.clone(),
                config.json_limits.max_bytes,
            )
        });
        let context = Arc::new(ContextManager::new(
            store,
            validator,
            self.audit,
            self.clock.clone(),
            config.clone(),
        ));

        let mut capabilities = Capabilities::base();
        capabilities.add_operation(OperationCapability::new(
            "set-context",
            canonical::SET_CONTEXT_OPERATION,
        ));
        capabilities.add_operation(OperationCapability::new(
            "clear-context",
            canonical::CLEAR_CONTEXT_OPERATION,
        ));
        capabilities.add_supported_types(config.supported_types.iter());
        let mut extra = Router::new();
        if let Some(resources) = resource_server {
            resources.offers(&mut capabilities);
            extra = extra.merge(resources.router());
        }
        for (routes, offered) in mounted {
            merge(&mut capabilities, offered);
            extra = extra.merge(routes);
        }
        Ok(Sofa {
            state: AppState {
                context,
                tokens,
                clock: self.clock,
                config,
                capabilities: Arc::new(capabilities),
            },
            extra,
            subscriptions,
            async_jobs,
        })
    }
}

fn merge(into: &mut Capabilities, from: Capabilities) {
    for operation in from.operations {
        into.add_operation(operation);
    }
    for (resource_type, offered) in from.resources {
        let entry = into.resource_mut(&resource_type);
        for profile in offered.supported_profiles {
            if !entry.supported_profiles.contains(&profile) {
                entry.supported_profiles.push(profile);
            }
        }
        entry.interactions.extend(offered.interactions);
        entry.search_params.extend(offered.search_params);
        entry.operations.extend(offered.operations);
        entry.extensions.extend(offered.extensions);
        entry.versioned |= offered.versioned;
    }
    for item in from.instantiates {
        if !into.instantiates.contains(&item) {
            into.instantiates.push(item);
        }
    }
    for guide in from.implementation_guides {
        if !into.implementation_guides.contains(&guide) {
            into.implementation_guides.push(guide);
        }
    }
    for format in from.formats {
        if !into.formats.contains(&format) {
            into.formats.push(format);
        }
    }
}

/// A SoFA server: the context manager and the FHIR endpoints mounted so far.
#[derive(Clone)]
pub struct Sofa {
    state: AppState,
    extra: Router,
    subscriptions: Option<Subscriptions>,
    async_jobs: Option<AsyncJobs>,
}

impl std::fmt::Debug for Sofa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sofa")
            .field("base_url", &self.state.config.base_url)
            .finish_non_exhaustive()
    }
}

impl Sofa {
    /// A builder: give it a store (and, with the resource server, a notifier); the other
    /// seams have defaults.
    pub fn builder(config: SofaConfig) -> SofaBuilder {
        SofaBuilder {
            config,
            store: None,
            tokens: None,
            validator: None,
            audit: Arc::new(TracingAuditSink),
            clock: Arc::new(SystemClock),
            mounted: Vec::new(),
            resources: false,
            notifier: None,
            subscriptions: None,
            async_jobs: false,
        }
    }

    /// The context manager, for hosts that drive it without HTTP.
    pub fn context_manager(&self) -> &Arc<ContextManager> {
        &self.state.context
    }

    /// What `GET /metadata` advertises.
    pub fn capabilities(&self) -> &Capabilities {
        &self.state.capabilities
    }

    /// Starts the background purge of expired contexts (D-05).
    pub fn spawn_purge_task(&self) -> tokio::task::JoinHandle<()> {
        self.state.context.spawn_purge_task()
    }

    /// The subscription service, when [`SofaBuilder::subscriptions`] was given.
    pub fn subscriptions(&self) -> Option<&Subscriptions> {
        self.subscriptions.as_ref()
    }

    /// Starts every background task the assembled parts need: the purge of expired contexts
    /// (D-05) and, with subscriptions, the heartbeats (REQ SUB-04) and the outbox worker
    /// (D-16). Abort the handles at exit, after [`shutdown`](Self::shutdown).
    pub fn spawn_tasks(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = vec![self.spawn_purge_task()];
        if let Some(subscriptions) = &self.subscriptions {
            tasks.push(subscriptions.spawn_heartbeats());
            tasks.push(subscriptions.spawn_outbox());
        }
        tasks
    }

    /// Graceful shutdown (REQ REL-05): waits for in-flight deliveries to finish.
    pub async fn shutdown(&self) {
        if let Some(subscriptions) = &self.subscriptions {
            subscriptions.shutdown().await;
        }
    }

    /// The router, relative to the FHIR base: `GET /metadata`, `POST /$set-context`,
    /// `POST /$clear-context` and whatever was mounted. Nest it under the base path.
    ///
    /// CORS ([`crate::cors`], SEC-06): any origin on `metadata`; only the configured origins
    /// on everything else.
    /// Every FHIR endpoint speaks JSON and XML (RS-06): XML bodies are read as JSON, and FHIR
    /// JSON answers are written as XML when `_format` or `Accept` asks for it.
    pub fn router(&self) -> Router {
        let discovery = Router::new()
            .route("/metadata", get(handlers::metadata))
            .method_not_allowed_fallback(handlers::method_not_allowed)
            .layer(crate::cors::open())
            .with_state(self.state.clone());
        // Every route that takes a token: the context operations and whatever was mounted (the
        // FHIR API, Subscriptions, the token endpoint), for the registered origins only.
        let api = Router::new()
            .route("/$set-context", post(handlers::set_context))
            .route("/$clear-context", post(handlers::clear_context))
            // Set before the CORS layer so preflight requests still reach it.
            .method_not_allowed_fallback(handlers::method_not_allowed)
            .with_state(self.state.clone())
            .merge(self.extra.clone())
            .layer(crate::cors::registered(
                &self.state.config.cors_allowed_origins,
            ));
        let router = Router::new()
            .merge(discovery)
            .merge(api)
            .fallback(handlers::not_found)
            .layer(axum::middleware::from_fn(crate::http::xml_convert))
            // Before anything reads the request: an address over its budget costs nothing more.
            .layer(axum::middleware::from_fn_with_state(
                crate::limits::AddressLimit::new(
                    &self.state.config.rate_limits,
                    crate::auth::paths::AUTHORIZE,
                ),
                crate::limits::by_address,
            ))
            .layer(RequestBodyDeadlineLayer::new(
                self.state.config.body_read_timeout,
            ))
            // The span names the route template, never the path: paths hold launch and resource
            // ids, and the query the authorize `state`.
            .layer(TraceLayer::new_for_http().make_span_with(request_span))
            .layer(CatchPanicLayer::custom(crate::http::panic_answer));
        // Outermost, so a job runs the whole stack later (XML answers included) and its status
        // route is answered beside it.
        match &self.async_jobs {
            Some(jobs) => jobs.apply(router),
            None => router,
        }
    }
}

/// The tracing span of a request: its method and route template.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", axum::extract::MatchedPath::as_str);
    tracing::debug_span!("request", method = %request.method(), route)
}
