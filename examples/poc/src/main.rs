//! `poc`: the example EMR simulator web page (REQ EX-03), served until Ctrl-C.

use std::process::ExitCode;

use clap::Parser;
use halo_poc_example::{EmrConfig, router};

/// Serves the example EMR. Register its `client_id` with the SoFA (scopes
/// `Context.write system/Subscription.cruds`); the SoFA must reach `<listen>/sofa/notify`.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8091")]
    listen: std::net::SocketAddr,
    /// The SoFA's FHIR base.
    #[arg(long)]
    fhir_base: String,
    /// The App Catalog's URL.
    #[arg(long)]
    catalog: String,
    /// The EMR's `client_id` at the SoFA.
    #[arg(long, default_value = "halo-example-emr")]
    client_id: String,
    /// Its client secret.
    #[arg(long)]
    client_secret: String,
    /// The clinician opening apps.
    #[arg(long, default_value = "Practitioner/dr-1")]
    user: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let base_url = match listener.local_addr() {
        Ok(addr) => format!("http://{addr}"),
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let config = EmrConfig {
        fhir_base: args.fhir_base,
        catalog_url: args.catalog,
        client_id: args.client_id,
        client_secret: args.client_secret,
        base_url: base_url.clone(),
        user: args.user,
    };
    let router = match router(config) {
        Ok(router) => router,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    println!("EMR at {base_url}/");
    if let Err(e) = axum::serve(listener, router).await {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
