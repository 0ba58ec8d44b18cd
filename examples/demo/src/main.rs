//! `halo-demo`: the whole HALO SoFA launch on loopback in one command; exits 0 only when every
//! step checked out.

use std::process::ExitCode;

use clap::Parser;
use halo_demo::{Demo, DemoOptions, Transport};

/// Runs the HALO SoFA launch end to end on loopback: the reference SoFA, an EMR and a SMART app,
/// with an HTTP client in place of the browser. Prints one line per step.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The EMR receives notifications over a websocket instead of a rest-hook endpoint.
    #[arg(long)]
    websocket: bool,
    /// After the flow, leave everything running for a person to click through in a browser,
    /// starting at the example EMR page (Ctrl-C to stop).
    #[arg(long)]
    serve: bool,
    /// Where the SoFA listens (default: a free loopback port).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Sign the clinician in at an OpenID provider of the jurisdiction's own (`oidc-provider`
    /// from npm; run `npm ci` in tests/oidc-provider first) instead of the SoFA's built-in IdP.
    #[arg(long)]
    oidc: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let options = DemoOptions {
        transport: if args.websocket {
            Transport::Websocket
        } else {
            Transport::RestHook
        },
        listen: args.listen,
        oidc: args.oidc,
    };
    let mut demo = match Demo::start(options).await {
        Ok(demo) => demo,
        Err(e) => {
            eprintln!("✘ could not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = demo.run(|step| println!("{step}")).await;
    let code = if report.succeeded() {
        println!("✔ the SoFA launch worked end to end");
        ExitCode::SUCCESS
    } else {
        println!("✘ the SoFA launch did not complete");
        ExitCode::FAILURE
    };
    if args.serve
        && let Some(sofa) = demo.sofa()
    {
        println!("Everything keeps running. Open the EMR page in a browser:");
        println!("  {:<20} {}", "EMR page", demo.emr_page());
        for (label, url) in sofa.urls() {
            println!("  {label:<20} {url}");
        }
        if args.oidc {
            println!(
                "  {:<20} dr-gagnon / {}",
                "clinician sign-in",
                halo_demo::CLINICIAN_PASSWORD
            );
        }
        println!("Ctrl-C to stop.");
        let _ = tokio::signal::ctrl_c().await;
    }
    demo.shutdown().await;
    code
}
