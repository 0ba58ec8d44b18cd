//! One reference SoFA under test: a process started from a built binary, on loopback, with a
//! fresh database and a generated configuration in a temporary directory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The PoCs (EMRs) registered in the generated configuration: `poc-0` .. `poc-9`.
pub(crate) const EMRS: usize = 10;
/// Every PoC's client secret (development mode accepts it inline).
pub(crate) const POC_SECRET: &str = "load-poc-secret-0123456789";
/// The public app's redirect URI; nothing listens there, the code is read from the redirect.
pub(crate) const APP_REDIRECT: &str = "http://127.0.0.1:9/callback";
/// The app's scopes: `openid fhirUser` make every exchange sign an RS256 id_token,
/// `offline_access` a refresh token, as a SMART app launched from an EMR asks.
pub(crate) const APP_SCOPES: &str =
    "launch openid fhirUser offline_access patient/Patient.r patient/Observation.cru";

/// A running server process and where it answers.
pub(crate) struct Server {
    /// The name the tables show.
    pub(crate) label: String,
    /// The FHIR base, e.g. `http://127.0.0.1:41234/fhir`.
    pub(crate) fhir_base: String,
    child: Child,
    dir: PathBuf,
}

/// The configuration every measured server gets: SQLite in `dir`, an auto-approving login
/// (no page, as the tests drive the authorize endpoint), userless launches so a PoC's
/// `client_credentials` token can set them, ten PoCs and one public app. Rate limits are off:
/// one address sending thousands of requests a second is the point of the measure.
fn config(dir: &Path) -> String {
    let mut toml = format!(
        r#"listen = "127.0.0.1:0"
database = "{}"
development_mode = true
userless_launches = true

[login]
mode = "auto-approve"
user = "dr-a"
fhir_user = "Practitioner/dr-a"

[limits]
per_address_per_second = 0
per_address_burst = 0
per_client_per_second = 0
per_client_burst = 0

[[clients]]
id = "app"
redirect_uris = ["{APP_REDIRECT}"]
scopes = "{APP_SCOPES}"
"#,
        dir.join("sofa.db").display()
    );
    for i in 0..EMRS {
        toml.push_str(&format!(
            "\n[[clients]]\nid = \"poc-{i}\"\nsecret = \"{POC_SECRET}\"\n\
             scopes = \"Context.write system/Subscription.cruds\"\n"
        ));
    }
    toml
}

impl Server {
    /// Starts `binary` and waits (up to a minute) for it to print its FHIR base.
    pub(crate) fn start(label: &str, binary: &Path, log_level: &str) -> Result<Server, String> {
        let dir = std::env::temp_dir().join(format!(
            "halo-load-{}-{}",
            std::process::id(),
            label
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect::<String>()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let config_file = dir.join("sofa.toml");
        std::fs::write(&config_file, config(&dir)).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.join("server.log")).map_err(|e| e.to_string())?;
        let mut child = Command::new(binary)
            .arg("--config")
            .arg(&config_file)
            .env("RUST_LOG", log_level)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: {e}", binary.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (found, wait) = mpsc::channel();
        // The reader keeps draining the pipe after the base is found, so the server never
        // blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.trim_start().starts_with("FHIR base (iss)")
                    && let Some(url) = line.split_whitespace().last()
                {
                    let _ = found.send(url.to_string());
                }
            }
        });
        let mut server = Server {
            label: label.to_string(),
            fhir_base: String::new(),
            child,
            dir,
        };
        match wait.recv_timeout(Duration::from_secs(60)) {
            Ok(base) => server.fhir_base = base,
            Err(_) => {
                let log =
                    std::fs::read_to_string(server.dir.join("server.log")).unwrap_or_default();
                return Err(format!(
                    "{} did not print its FHIR base within 60 s; its log:\n{log}",
                    binary.display()
                ));
            }
        }
        Ok(server)
    }

    /// The process id, for its CPU time.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`, 100 on Linux).
pub(crate) fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// User plus system CPU time of a process (every thread), in clock ticks, from
/// `/proc/<pid>/stat` (`self` for this process).
pub(crate) fn cpu_ticks(pid: &str) -> Option<u64> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// `utime` and `stime` are fields 14 and 15; the command name (field 2) may hold spaces and
/// parentheses, so the fields are counted from the last `)`.
fn parse_stat(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_times_are_counted_after_the_command_name() {
        let stat = "4242 (reference sofa) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    250 75 0 0 20 0 9 0 12345 1000000 500 18446744073709551615";
        assert_eq!(parse_stat(stat), Some(325));
        assert_eq!(parse_stat("4242 (x) S 1"), None);
    }

    #[test]
    fn the_configuration_registers_every_poc_and_turns_limits_off() {
        let toml = config(Path::new("/tmp/x"));
        assert!(toml.contains("id = \"poc-9\""));
        assert!(toml.contains("per_client_per_second = 0"));
        assert!(toml.contains("database = \"/tmp/x/sofa.db\""));
    }
}
