//! `smart-app`: the example SMART on FHIR web app (REQ EX-02), served until Ctrl-C.

use std::process::ExitCode;

use clap::Parser;
use halo_smart_app_example::{AppConfig, DEFAULT_SCOPES, router};

/// Serves the example SMART app. Register `<base>/callback` as its redirect URI and
/// `<base>/launch` as its launch URL with the SoFA.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: std::net::SocketAddr,
    /// The app's `client_id` at the SoFA.
    #[arg(long, default_value = "halo-example-app")]
    client_id: String,
    /// A FHIR base (`iss`) the app trusts; repeat for several.
    #[arg(long = "iss", required = true)]
    issuers: Vec<String>,
    /// The scopes the app asks for.
    #[arg(long, default_value = DEFAULT_SCOPES)]
    scopes: String,
    /// The origin of an EMR page that may show the app in a frame (`https://emr.example.ca`);
    /// repeat for several. Without one, the app refuses to be framed.
    #[arg(long = "frame-ancestor")]
    frame_ancestors: Vec<String>,
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
    let base = match listener.local_addr() {
        Ok(addr) => format!("http://{addr}"),
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let config = match AppConfig::public(&base, &args.client_id, &args.scopes, &args.issuers)
        .and_then(|config| config.framed_by(args.frame_ancestors))
    {
        Ok(config) => config,
        Err(e) => {
            eprintln!("invalid configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("launch URL   {base}/launch");
    println!("redirect URI {base}/callback");
    if let Err(e) = axum::serve(listener, router(config)).await {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
