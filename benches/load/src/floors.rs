//! The floors every figure is read beside, measured in the same run on the same machine: what
//! parsing the `$set-context` body alone costs, and what the RS256 signature of every id_token
//! costs (OpenSSL's own `speed` figure, one process and two).

use std::process::Command;
use std::time::{Duration, Instant};

/// serde_json (the workspace's features: ordered maps, arbitrary precision) parsing `bytes`
/// into a `Value` on one thread for `duration`: parses per second.
pub(crate) fn json_parse_per_second(bytes: &[u8], duration: Duration) -> f64 {
    let start = Instant::now();
    let mut parses = 0u64;
    while start.elapsed() < duration {
        for _ in 0..100 {
            let value: Result<serde_json::Value, _> = serde_json::from_slice(bytes);
            std::hint::black_box(value.is_ok());
        }
        parses += 100;
    }
    parses as f64 / start.elapsed().as_secs_f64()
}

/// `openssl speed -seconds <seconds> [-multi <processes>] rsa2048`: RSA-2048 signatures per
/// second, or why there is no figure.
pub(crate) fn openssl_rsa2048_signs(seconds: u64, processes: usize) -> Result<f64, String> {
    let mut command = Command::new("openssl");
    command
        .arg("speed")
        .arg("-seconds")
        .arg(seconds.to_string());
    if processes > 1 {
        command.arg("-multi").arg(processes.to_string());
    }
    let output = command
        .arg("rsa2048")
        .output()
        .map_err(|e| format!("openssl: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    parse_speed(&text).ok_or_else(|| "no rsa 2048 line in openssl's output".to_string())
}

/// The sign/s column of the `rsa 2048 bits` result line:
/// `rsa 2048 bits 0.000838s 0.000025s   1193.4  40000.1` (sign s, verify s, sign/s, verify/s).
fn parse_speed(text: &str) -> Option<f64> {
    text.lines()
        .filter(|line| {
            let words: Vec<&str> = line.split_whitespace().take(3).collect();
            words == ["rsa", "2048", "bits"]
        })
        .filter_map(|line| {
            let numbers: Vec<&str> = line.split_whitespace().skip(3).collect();
            numbers.get(2)?.parse::<f64>().ok()
        })
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openssl_speed_output_gives_the_sign_rate() {
        let text = "Doing 2048 bits private rsa's for 3s: 3580 2048 bits private RSA's in 3.00s\n\
                    version: 3.0.19\n                  sign    verify    sign/s verify/s\n\
                    rsa 2048 bits 0.000838s 0.000025s   1193.4  40000.1\n";
        assert_eq!(parse_speed(text), Some(1193.4));
        assert_eq!(parse_speed("nothing here"), None);
    }

    #[test]
    fn the_json_floor_counts_parses() {
        let rate = json_parse_per_second(br#"{"a":[1,2,3]}"#, Duration::from_millis(20));
        assert!(rate > 0.0);
    }
}
