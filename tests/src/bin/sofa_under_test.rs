//! The reference SoFA as a child process the fault-injection tests can SIGKILL and restart on
//! the same database: `halo-sofa-under-test <config.toml>`. It prints `ready` once it serves.

use std::process::ExitCode;

use reference_sofa::{Config, ReferenceSofa};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: halo-sofa-under-test <config.toml>");
        return ExitCode::FAILURE;
    };
    let sofa = match Config::from_file(&path) {
        Ok(config) => ReferenceSofa::start(config).await,
        Err(e) => Err(e),
    };
    let sofa = match sofa {
        Ok(sofa) => sofa,
        Err(e) => {
            eprintln!("halo-sofa-under-test: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("ready {}", sofa.fhir_base);
    // Runs until killed; a clean stop is not what this binary is for.
    std::future::pending::<()>().await;
    ExitCode::SUCCESS
}
