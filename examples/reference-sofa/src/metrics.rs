//! The Prometheus endpoint (REQ OPS-02): `GET /metrics` on its own listen address
//! (`metrics_listen`), never on the public one, in the Prometheus text format.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;
use halo_sofa_server::metrics::{BUCKETS, describe};
use halo_sofa_server::store::Store;
use halo_sofa_server::store::sample_metrics;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::Error;

/// The path of the metrics endpoint on the metrics listener.
pub const METRICS_PATH: &str = "/metrics";

/// The process's one recorder (the `metrics` facade has one per process): installed by the
/// first instance that serves metrics, shared by any other in the same process.
static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();

fn recorder() -> Result<PrometheusHandle, Error> {
    if let Some(handle) = RECORDER.get() {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets(BUCKETS)
        .map_err(|e| Error::Config(format!("metrics: {e}")))?
        .build_recorder();
    let handle = recorder.handle();
    // Another recorder installed by the host wins: its metrics go there, and this endpoint
    // would stay empty, so starting is refused instead.
    ::metrics::set_global_recorder(recorder).map_err(|_| {
        Error::Config("metrics: another metrics recorder is already installed".into())
    })?;
    describe();
    Ok(RECORDER.get_or_init(|| handle).clone())
}

/// The process's recorder, installed if it is not yet: the HTTP layer records into it.
pub(crate) fn install() -> Result<(), Error> {
    recorder().map(drop)
}

/// Binds `listen` and serves `GET /metrics` there; the gauges kept in the store are sampled at
/// each scrape. Returns the bound address and the serving task.
pub(crate) async fn serve(
    listen: SocketAddr,
    store: Arc<dyn Store>,
) -> Result<(SocketAddr, Vec<JoinHandle<()>>), Error> {
    let handle = recorder()?;
    let listener = TcpListener::bind(listen).await?;
    let local = listener.local_addr()?;
    let render = handle.clone();
    let app = Router::new().route(
        METRICS_PATH,
        get(move || {
            let handle = render.clone();
            let store = store.clone();
            async move {
                if let Err(e) = sample_metrics(store.as_ref()).await {
                    tracing::warn!(error = %e, "metrics: the store could not be sampled");
                }
                (
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; version=0.0.4"),
                    )],
                    handle.render(),
                )
                    .into_response()
            }
        }),
    );
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "the metrics listener stopped");
        }
    });
    // Histogram samples are folded into their buckets here, so memory stays flat between
    // scrapes.
    let upkeep = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    });
    Ok((local, vec![server, upkeep]))
}
