//! The closed-loop runner: `concurrency` workers, each on its own kept-alive connection, send
//! one operation after another until the count or the time is reached; every operation's
//! latency is kept, and the server's CPU time is read before and after.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::server::cpu_ticks;

/// Limits of one measured run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// Stop starting operations after this long.
    pub(crate) duration: Duration,
    /// Stop after this many operations started.
    pub(crate) count: u64,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub(crate) concurrency: usize,
    /// Operations that succeeded.
    pub(crate) ok: u64,
    /// Operations that failed (status or transport), with the first failure's text.
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    /// From the first operation started to the last one finished.
    pub(crate) elapsed: Duration,
    /// Sorted latencies of the successful operations.
    pub(crate) latencies: Vec<Duration>,
    /// Server CPU seconds (user + system, every thread) over the run.
    pub(crate) server_cpu: f64,
    /// This process's CPU seconds over the run (load client and rest-hook receivers).
    pub(crate) client_cpu: f64,
}

impl Outcome {
    pub(crate) fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `p`-quantile (0..=1) by the nearest-rank method.
    pub(crate) fn quantile(&self, p: f64) -> Duration {
        quantile(&self.latencies, p)
    }

    pub(crate) fn max(&self) -> Duration {
        self.latencies.last().copied().unwrap_or_default()
    }
}

pub(crate) fn quantile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs `op(worker, sequence)` with `concurrency` workers within `bounds`, reading the CPU time
/// of process `pid` (when known) around it.
pub(crate) async fn run<F, Fut>(
    concurrency: usize,
    bounds: Bounds,
    pid: Option<u32>,
    ticks_per_second: f64,
    op: F,
) -> Outcome
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let op = Arc::new(op);
    let started_ops = Arc::new(AtomicU64::new(0));
    let server_cpu = move || pid.and_then(|pid| cpu_ticks(&pid.to_string()));
    let server_before = server_cpu();
    let client_before = cpu_ticks("self");
    let start = Instant::now();
    let deadline = start + bounds.duration;
    let mut workers = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let op = op.clone();
        let started_ops = started_ops.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let (mut errors, mut first_error) = (0u64, None);
            loop {
                let sequence = started_ops.fetch_add(1, Ordering::Relaxed);
                if sequence >= bounds.count || Instant::now() >= deadline {
                    break;
                }
                let began = Instant::now();
                match op(worker, sequence).await {
                    Ok(()) => latencies.push(began.elapsed()),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (latencies, errors, first_error)
        }));
    }
    let mut outcome = Outcome {
        concurrency,
        ok: 0,
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
        server_cpu: 0.0,
        client_cpu: 0.0,
    };
    for worker in workers {
        match worker.await {
            Ok((latencies, errors, first_error)) => {
                outcome.latencies.extend(latencies);
                outcome.errors += errors;
                if outcome.first_error.is_none() {
                    outcome.first_error = first_error;
                }
            }
            Err(e) => {
                outcome.errors += 1;
                outcome.first_error.get_or_insert(format!("worker: {e}"));
            }
        }
    }
    outcome.elapsed = start.elapsed();
    let seconds = |before: Option<u64>, after: Option<u64>| match (before, after) {
        (Some(b), Some(a)) => a.saturating_sub(b) as f64 / ticks_per_second,
        _ => f64::NAN,
    };
    outcome.server_cpu = seconds(server_before, server_cpu());
    outcome.client_cpu = seconds(client_before, cpu_ticks("self"));
    outcome.ok = outcome.latencies.len() as u64;
    outcome.latencies.sort_unstable();
    outcome
}

/// A duration as a person reads it in a table: µs under 1 ms, ms under 1 s, s above.
pub(crate) fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1e-3 {
        format!("{:.0} µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

/// CPU seconds per operation, as µs.
fn per_op(cpu: f64, ops: u64) -> String {
    if ops == 0 || cpu.is_nan() {
        "—".into()
    } else {
        format!("{:.0} µs", cpu / ops as f64 * 1e6)
    }
}

/// The Markdown header of a measure's table.
pub(crate) fn table_header() -> String {
    "| server | c | ops | ops/s | p50 | p99 | max | errors | server CPU/op | server cores | client CPU/op |\n\
     |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        .to_string()
}

/// One row of a measure's table.
pub(crate) fn table_row(server: &str, outcome: &Outcome) -> String {
    let errors = match &outcome.first_error {
        Some(first) if outcome.errors > 0 => format!("{} ({})", outcome.errors, truncate(first)),
        _ => outcome.errors.to_string(),
    };
    format!(
        "| {server} | {} | {} | {:.0} | {} | {} | {} | {errors} | {} | {:.2} | {} |",
        outcome.concurrency,
        outcome.ok,
        outcome.per_second(),
        human(outcome.quantile(0.50)),
        human(outcome.quantile(0.99)),
        human(outcome.max()),
        per_op(outcome.server_cpu, outcome.ok),
        outcome.server_cpu / outcome.elapsed.as_secs_f64().max(1e-9),
        per_op(outcome.client_cpu, outcome.ok),
    )
}

/// The first error's text, short and without table-breaking characters.
fn truncate(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c == '|' || c.is_control() { ' ' } else { c })
        .take(80)
        .collect();
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&sorted, 0.5), Duration::from_millis(50));
        assert_eq!(quantile(&sorted, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&sorted, 1.0), Duration::from_millis(100));
        assert_eq!(quantile(&sorted[..1], 0.99), Duration::from_millis(1));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }

    #[tokio::test]
    async fn the_runner_stops_at_its_count_and_counts_errors() {
        let bounds = Bounds {
            duration: Duration::from_secs(10),
            count: 10,
        };
        let outcome = run(
            3,
            bounds,
            Some(std::process::id()),
            100.0,
            |_, sequence| async move {
                if sequence % 5 == 0 {
                    Err(format!("op {sequence}"))
                } else {
                    Ok(())
                }
            },
        )
        .await;
        assert_eq!(outcome.ok + outcome.errors, 10);
        assert_eq!(outcome.errors, 2);
        assert!(outcome.first_error.is_some());
    }
}
