//! `reference-sofa`: runs the HALO reference SoFA from a TOML configuration until Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use reference_sofa::{Config, LogFormat, ReferenceSofa};

/// The HALO reference SoFA (SMART on FHIR Accelerator): context manager, SMART authorization
/// server, FHIR resource server, subscriptions and the App Catalog, on an embedded SQLite store.
///
/// Every configuration key can be overridden by a variable `HALO_SOFA__<KEY>`, `__` between
/// nested keys (`HALO_SOFA__LIFETIMES__LAUNCH_SECS=600`).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The configuration file (see examples/reference-sofa/sofa.toml for every key).
    #[arg(
        long,
        short,
        global = true,
        default_value = "examples/reference-sofa/sofa.toml"
    )]
    config: PathBuf,
    /// Listen here instead of the configuration's `listen` (e.g. 127.0.0.1:0).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Log lines as `text` or `json` (instead of the configuration's `log_format`).
    #[arg(long)]
    log_format: Option<LogFormat>,
    /// Print the effective configuration (file, then environment) with every secret redacted,
    /// and exit.
    #[arg(long)]
    print_config: bool,
    /// Without a command: serve. `admin ...`: an operator's command on the configured store.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Register, list and disable clients; rotate keys; list and clear launches; purge; export
    /// the audit log. Running instances see the change without a restart.
    #[command(subcommand)]
    Admin(reference_sofa::admin::Command),
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reference-sofa: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logging starts once the configuration is read, since the configuration chooses its format;
/// an error before that goes to standard error.
fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    match format {
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).init(),
        // The span fields (request id, route) go with every line of the request.
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(filter)
            .init(),
    }
}

async fn run(args: Args) -> Result<(), reference_sofa::Error> {
    let mut config = Config::from_file(&args.config)?;
    if let Some(Command::Admin(command)) = args.command {
        return reference_sofa::admin::run(config, command, &mut std::io::stdout().lock()).await;
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(format) = args.log_format {
        config.log_format = format;
    }
    if args.print_config {
        print!("{}", config.to_redacted_toml()?);
        return Ok(());
    }
    init_logs(config.log_format);
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
