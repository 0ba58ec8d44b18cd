//! `halo-load`: measures built reference SoFA binaries over real HTTP on loopback and prints a
//! Markdown table per measure (docs/performance.md).
//!
//! Each `--server` is started as its own process with a fresh SQLite database and a generated
//! configuration; the measures alternate between the servers at each concurrency, so a change
//! of load on the machine touches every server alike. Every run is bounded by a time and a
//! count, runs after a discarded warm-up at the same concurrency, and reports throughput, p50,
//! p99, max, errors and the server's CPU time per operation (`/proc/<pid>/stat`).

mod floors;
mod run;
mod scenario;
mod server;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Parser;

use crate::run::{Bounds, table_header, table_row};
use crate::scenario::{Measure, OpContext, Target};
use crate::server::{EMRS, Server};

/// Load measures of the reference SoFA: `$set-context`, token exchange, write with rest-hook
/// delivery, FHIR read, beside the JSON-parse and RS256 floors measured in the same run.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// A server binary to measure, as `PATH` or `LABEL=PATH` (repeat for before/after).
    #[arg(long = "server", required = true)]
    servers: Vec<String>,
    /// A peer SMART server already running, as `LABEL=FHIR_BASE`, measured in the token
    /// exchange and the read only (endpoints from its smart-configuration).
    #[arg(long = "peer")]
    peers: Vec<String>,
    /// The `launch` value sent to the peers' authorize endpoint (one that signs in and
    /// approves without a page, with a patient in context).
    #[arg(long, default_value = "")]
    peer_launch: String,
    /// The process ids of the peers, in `--peer` order, for their CPU time.
    #[arg(long = "peer-pid", value_delimiter = ',')]
    peer_pids: Vec<u32>,
    /// A few seconds per measure: to check that everything works, not to quote.
    #[arg(long)]
    quick: bool,
    /// Seconds each measured run lasts at most (default 10, 2 with --quick).
    #[arg(long)]
    duration: Option<f64>,
    /// Seconds of discarded warm-up before each measured run (default 2, 0.5 with --quick).
    #[arg(long)]
    warmup: Option<f64>,
    /// Operations each measured run sends at most.
    #[arg(long, default_value_t = 1_000_000)]
    count: u64,
    /// Concurrencies of `$set-context`.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 8, 32])]
    set_context_c: Vec<usize>,
    /// Concurrencies of the token exchange.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 8, 32])]
    token_c: Vec<usize>,
    /// Concurrencies of the write measure with one EMR.
    #[arg(long, value_delimiter = ',', default_values_t = [1])]
    write_c: Vec<usize>,
    /// Concurrencies of the write measure with every EMR (ten).
    #[arg(long, value_delimiter = ',', default_values_t = [80])]
    write_many_c: Vec<usize>,
    /// Concurrencies of the FHIR read.
    #[arg(long, value_delimiter = ',', default_values_t = [8, 32])]
    read_c: Vec<usize>,
    /// The measures to run, of: set-context, token, write, write-many, read.
    #[arg(long, value_delimiter = ',', default_values_t = ["set-context".to_string(),
        "token".to_string(), "write".to_string(), "write-many".to_string(), "read".to_string()])]
    measures: Vec<String>,
    /// Leave out the floors (JSON parse, openssl speed).
    #[arg(long)]
    no_floors: bool,
    /// RUST_LOG of the servers (their log goes to a file in their temporary directory).
    #[arg(long, default_value = "info")]
    server_log: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match measure(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("halo-load: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints a line of the report at once (the tables are read while the run goes on).
fn out(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn parse_server(arg: &str) -> (String, PathBuf) {
    match arg.split_once('=') {
        Some((label, path)) if !label.is_empty() => (label.to_string(), PathBuf::from(path)),
        _ => (arg.to_string(), PathBuf::from(arg)),
    }
}

async fn measure(args: Args) -> Result<(), String> {
    let seconds = |given: Option<f64>, normal: f64, quick: f64| {
        Duration::from_secs_f64(
            given
                .unwrap_or(if args.quick { quick } else { normal })
                .max(0.0),
        )
    };
    let bounds = Bounds {
        duration: seconds(args.duration, 10.0, 2.0),
        count: args.count,
    };
    let warmup = Bounds {
        duration: seconds(args.warmup, 2.0, 0.5),
        count: args.count,
    };
    let ticks = server::clock_ticks();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());

    out("# HALO reference SoFA load measures\n");
    out(&format!(
        "{cores} cores, load average at start {}; each run at most {:.1} s or {} operations after a {:.1} s warm-up; \
         HTTP/1.1 on loopback, one kept-alive connection per worker; latencies of successful operations; \
         CPU from /proc/<pid>/stat (server: the SoFA process; client: this tool with its rest-hook receivers).\n",
        loadavg(),
        bounds.duration.as_secs_f64(),
        bounds.count,
        warmup.duration.as_secs_f64()
    ));

    let xl = scenario::xl_request()?;
    if !args.no_floors {
        out("## Floors (same machine, same run)\n");
        out("| floor | figure |\n|---|---:|");
        let parse_for = if args.quick { 1.0 } else { 3.0 };
        let rate = floors::json_parse_per_second(&xl, Duration::from_secs_f64(parse_for));
        out(&format!(
            "| serde_json parse of the XL request ({} bytes) into a Value, one thread | {rate:.0}/s ({:.1} µs each) |",
            xl.len(),
            1e6 / rate
        ));
        let openssl_seconds = if args.quick { 1 } else { 3 };
        for processes in [1, 2] {
            let figure = match floors::openssl_rsa2048_signs(openssl_seconds, processes) {
                Ok(signs) => format!("{signs:.0} sign/s"),
                Err(e) => format!("not measured ({e})"),
            };
            out(&format!(
                "| `openssl speed -seconds {openssl_seconds}{} rsa2048`, RSA-2048 signatures | {figure} |",
                if processes > 1 {
                    format!(" -multi {processes}")
                } else {
                    String::new()
                }
            ));
        }
        out("");
    }

    let max_c = [
        &args.set_context_c,
        &args.token_c,
        &args.write_c,
        &args.write_many_c,
        &args.read_c,
    ]
    .iter()
    .flat_map(|c| c.iter().copied())
    .max()
    .unwrap_or(1);
    let mut targets = Vec::new();
    for arg in &args.servers {
        let (label, path) = parse_server(arg);
        eprintln!("starting {label} ({})", path.display());
        let server = Server::start(&label, &path, &args.server_log)?;
        eprintln!("  {} at {}; preparing {EMRS} EMRs", label, server.fhir_base);
        targets.push(Target::prepare(server, max_c).await?);
    }
    for (i, arg) in args.peers.iter().enumerate() {
        let (label, base) = arg
            .split_once('=')
            .ok_or_else(|| format!("--peer {arg}: LABEL=FHIR_BASE"))?;
        let pid = args.peer_pids.get(i).copied();
        eprintln!("peer {label} at {base}");
        targets.push(Target::peer(label, base, &args.peer_launch, pid, max_c).await?);
    }

    let mut plan: Vec<(Measure, &Vec<usize>)> = Vec::new();
    for name in &args.measures {
        plan.push(match name.as_str() {
            "set-context" => (Measure::SetContext, &args.set_context_c),
            "token" => (Measure::Token, &args.token_c),
            "write" => (Measure::Write { emrs: 1 }, &args.write_c),
            "write-many" => (Measure::Write { emrs: EMRS }, &args.write_many_c),
            "read" => (Measure::Read, &args.read_c),
            other => return Err(format!("unknown measure {other}")),
        });
    }

    for (measure, concurrencies) in plan {
        out(&format!("## {}\n", measure.title()));
        out(&table_header());
        let notified_before: Vec<u64> = targets.iter().map(notifications).collect();
        for &c in concurrencies {
            for target in targets.iter().filter(|t| t.supports(measure)) {
                let ops = OpContext::new(target);
                let pid = target.pid;
                eprintln!("{} c={c} on {}", measure.title(), target.label);
                for (bounds, keep) in [(warmup, false), (bounds, true)] {
                    let ops = ops.clone();
                    let outcome = run::run(c.max(1), bounds, pid, ticks, move |worker, _| {
                        let ops = ops.clone();
                        async move { ops.call(measure, worker).await }
                    })
                    .await;
                    if keep {
                        out(&table_row(&target.label, &outcome));
                    }
                }
            }
        }
        if let Measure::Write { .. } = measure {
            let counts: Vec<String> = targets
                .iter()
                .zip(notified_before)
                .filter(|(t, _)| t.supports(measure))
                .map(|(t, before)| {
                    format!("{}: {}", t.label, notifications(t).saturating_sub(before))
                })
                .collect();
            out(&format!(
                "\nRest-hook notifications acknowledged by the EMR receivers during this measure (warm-ups included): {}.",
                counts.join("; ")
            ));
        }
        out("");
    }
    out(&format!("Load average at the end: {}.", loadavg()));
    Ok(())
}

fn notifications(target: &Target) -> u64 {
    target
        .emrs
        .iter()
        .map(|e| e.received.load(Ordering::Relaxed))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_argument_may_carry_a_label() {
        assert_eq!(
            parse_server("before=/tmp/a/reference-sofa"),
            ("before".into(), PathBuf::from("/tmp/a/reference-sofa"))
        );
        assert_eq!(
            parse_server("/tmp/b"),
            ("/tmp/b".into(), PathBuf::from("/tmp/b"))
        );
    }
}
