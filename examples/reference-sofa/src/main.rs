//! `reference-sofa`: runs the HALO reference SoFA from a TOML configuration until Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use reference_sofa::{Config, ReferenceSofa};

/// The HALO reference SoFA (SMART on FHIR Accelerator): context manager, SMART authorization
/// server, FHIR resource server, subscriptions and the App Catalog, on an embedded SQLite store.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The configuration file (see examples/reference-sofa/sofa.toml for every key).
    #[arg(long, short, default_value = "examples/reference-sofa/sofa.toml")]
    config: PathBuf,
    /// Listen here instead of the configuration's `listen` (e.g. 127.0.0.1:0).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reference-sofa: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), reference_sofa::Error> {
    let mut config = Config::from_file(&args.config)?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    let sofa = ReferenceSofa::start(config).await?;
    println!("HALO reference SoFA running:");
    for (label, url) in sofa.urls() {
        println!("  {label:<20} {url}");
    }
    println!("Ctrl-C to stop.");
    tokio::signal::ctrl_c().await?;
    sofa.shutdown().await;
    Ok(())
}
