//! The `halo-catalog` command-line tool: `validate` a catalog file or URL, and show the launch
//! `context` a PoC must set for one app. The binary is a thin `main` around [`run`], so the
//! whole tool is testable in-process.

use crate::analysis::{self, ContextBasis, PocCapabilities};
use crate::finding::{Code, Finding, Report, Severity};
use crate::model::Catalog;
use crate::parse::{CatalogError, Mode};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{Value, json};
use std::io::{IsTerminal, Write};
use std::time::Duration;

/// Exit status: the catalog has no error.
pub const EXIT_OK: u8 = 0;
/// Exit status: the catalog has errors (or the app asked for is missing or invalid).
pub const EXIT_INVALID: u8 = 1;
/// Exit status: the tool could not do its job (bad arguments, unreadable file, network failure).
pub const EXIT_FAILURE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "halo-catalog",
    version,
    about = "Check HALO App Catalog entries and see what a point of care must set to launch an app."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// When to colour the output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true)]
    color: ColorChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ColorChoice {
    /// Colour when writing to a terminal and `NO_COLOR` is not set.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a catalog (a JSON array of app entries, or one entry object) from a file or an
    /// http(s) URL. Exit status 1 when there are errors.
    Validate {
        /// A file path, `-` for standard input, or an http(s) URL to `GET`.
        source: String,
        /// Print the findings as JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Timeout for fetching a URL, in seconds.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Show the launch context a PoC must set with `$set-context` for one app, and the
    /// resources the app may use.
    Context {
        /// A catalog file (or `-` for standard input).
        file: String,
        /// The app entry's `id`.
        app_id: String,
        /// Print the result as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the tool with `args` (the first is the program name) and returns the exit status.
/// `stdout_is_terminal` decides colour under `--color auto`.
pub fn run<I, T>(args: I, out: &mut dyn Write, err: &mut dyn Write, stdout_is_terminal: bool) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                EXIT_FAILURE
            } else {
                EXIT_OK
            };
            let sink: &mut dyn Write = if e.use_stderr() { err } else { out };
            let _ = write!(sink, "{}", e.render());
            return code;
        }
    };
    let colour = match cli.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => stdout_is_terminal && std::env::var_os("NO_COLOR").is_none(),
    };
    let style = Style { colour };
    let result = match cli.command {
        Command::Validate {
            source,
            json,
            timeout,
        } => validate(&source, json, Duration::from_secs(timeout), style, out),
        Command::Context { file, app_id, json } => context(&file, &app_id, json, style, out),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            let _ = writeln!(err, "halo-catalog: {message}");
            EXIT_FAILURE
        }
    }
}

/// Runs the tool on the process's arguments and standard streams.
pub fn main() -> std::process::ExitCode {
    let stdout = std::io::stdout();
    let terminal = stdout.is_terminal();
    let code = run(
        std::env::args_os(),
        &mut stdout.lock(),
        &mut std::io::stderr().lock(),
        terminal,
    );
    std::process::ExitCode::from(code)
}

#[derive(Clone, Copy)]
struct Style {
    colour: bool,
}

impl Style {
    fn paint(self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
    fn severity(self, s: Severity) -> String {
        let code = match s {
            Severity::Error => "1;31",
            Severity::Warning => "1;33",
            Severity::Info => "36",
        };
        self.paint(code, &format!("{:<7}", s.as_str()))
    }
    fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }
    fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }
}

fn is_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://")
}

fn read_source(source: &str, timeout: Duration) -> Result<Vec<u8>, String> {
    if is_url(source) {
        let client = crate::client::CatalogClient::new(source)
            .map_err(|e| e.to_string())?
            .with_timeout(timeout);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("could not start the async runtime: {e}"))?;
        runtime
            .block_on(client.fetch_bytes())
            .map_err(|e| e.to_string())
    } else if source == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
            .map_err(|e| format!("could not read standard input: {e}"))?;
        Ok(buf)
    } else {
        std::fs::read(source).map_err(|e| format!("could not read `{source}`: {e}"))
    }
}

/// What `validate` found: the report, how many entries there were and how many are usable.
struct Outcome {
    report: Report,
    entries: usize,
    usable: usize,
    names: Vec<Option<(String, String)>>,
}

fn examine(bytes: &[u8]) -> Outcome {
    let doc: Value = match serde_json::from_slice(bytes) {
        Ok(doc) => doc,
        Err(e) => {
            return Outcome {
                report: Report {
                    findings: vec![Finding::new(
                        Code::InvalidJson,
                        "$",
                        format!("the catalog is not valid JSON: {e}"),
                    )],
                },
                entries: 0,
                usable: 0,
                names: Vec::new(),
            };
        }
    };
    // A publisher often has just their own entry: accept a lone object and check it as one.
    if doc.is_object() {
        let mut report = crate::validate_entry(&doc);
        for f in &mut report.findings {
            f.entry = Some(0);
        }
        let usable = usize::from(!report.has_errors());
        let text = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_owned);
        return Outcome {
            report,
            entries: 1,
            usable,
            names: vec![Some((
                text("id").unwrap_or_default(),
                text("name").unwrap_or_default(),
            ))],
        };
    }
    let names = doc
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|e| {
                    let text = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_owned);
                    match (text("id"), text("name")) {
                        (None, None) => None,
                        (id, name) => Some((id.unwrap_or_default(), name.unwrap_or_default())),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    match Catalog::from_value(&doc, Mode::Lenient) {
        Ok(parsed) => Outcome {
            entries: doc.as_array().map_or(0, Vec::len),
            usable: parsed.catalog.len(),
            report: parsed.report,
            names,
        },
        Err(CatalogError::NotAnArray { .. } | CatalogError::Json(_) | CatalogError::Invalid(_)) => {
            Outcome {
                report: crate::validate_catalog(&doc),
                entries: 0,
                usable: 0,
                names,
            }
        }
    }
}

fn validate(
    source: &str,
    json_out: bool,
    timeout: Duration,
    style: Style,
    out: &mut dyn Write,
) -> Result<u8, String> {
    let bytes = read_source(source, timeout)?;
    let outcome = examine(&bytes);
    let report = &outcome.report;
    let code = if report.has_errors() {
        EXIT_INVALID
    } else {
        EXIT_OK
    };
    let io = |e: std::io::Error| format!("could not write the output: {e}");
    if json_out {
        let doc = json!({
            "source": source,
            "entries": outcome.entries,
            "validEntries": outcome.usable,
            "errors": report.count(Severity::Error),
            "warnings": report.count(Severity::Warning),
            "info": report.count(Severity::Info),
            "findings": report,
        });
        let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
        writeln!(out, "{text}").map_err(io)?;
        return Ok(code);
    }
    write_text_report(source, &outcome, style, out).map_err(io)?;
    Ok(code)
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn write_text_report(
    source: &str,
    outcome: &Outcome,
    style: Style,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let report = &outcome.report;
    writeln!(
        out,
        "{}: {}, {}, {}, {}",
        style.bold(source),
        plural(outcome.entries, "entry", "entries"),
        plural(report.count(Severity::Error), "error", "errors"),
        plural(report.count(Severity::Warning), "warning", "warnings"),
        plural(report.count(Severity::Info), "info", "info"),
    )?;
    // Group by entry, in document order; catalog-wide findings (no entry) come first.
    let mut groups: Vec<(Option<usize>, Vec<&Finding>)> = Vec::new();
    for f in &report.findings {
        match groups.iter_mut().find(|(e, _)| *e == f.entry) {
            Some((_, list)) => list.push(f),
            None => groups.push((f.entry, vec![f])),
        }
    }
    for (entry, findings) in groups {
        writeln!(out)?;
        match entry {
            Some(i) => {
                let label = match outcome.names.get(i).cloned().flatten() {
                    Some((id, name)) if !name.is_empty() => format!("{name} ({id})"),
                    Some((id, _)) => id,
                    None => "(no id or name)".to_owned(),
                };
                writeln!(out, "{} {}", style.bold(&format!("entry {i}")), label)?;
            }
            None => writeln!(out, "{}", style.bold("catalog"))?,
        }
        for f in findings {
            writeln!(
                out,
                "  {} {}  {}",
                style.severity(f.severity),
                f.path,
                style.dim(&format!("[{}]", f.code))
            )?;
            writeln!(out, "          {}", f.message)?;
        }
    }
    writeln!(out)?;
    if report.has_errors() {
        writeln!(
            out,
            "{} {} of {} usable; fix the errors above",
            style.paint("1;31", "INVALID:"),
            outcome.usable,
            plural(outcome.entries, "entry", "entries")
        )
    } else {
        let what = match outcome.entries {
            1 => "the entry is valid".to_owned(),
            n => format!("all {n} entries valid"),
        };
        writeln!(out, "{} {what}", style.paint("1;32", "OK:"))
    }
}

fn context(
    file: &str,
    app_id: &str,
    json_out: bool,
    style: Style,
    out: &mut dyn Write,
) -> Result<u8, String> {
    let bytes = read_source(file, Duration::from_secs(30))?;
    let parsed = Catalog::parse(&bytes, Mode::Lenient).map_err(|e| e.to_string())?;
    let io = |e: std::io::Error| format!("could not write the output: {e}");
    let Some(entry) = parsed.catalog.get(app_id) else {
        // Say whether the entry exists but is invalid, or does not exist at all.
        let doc: Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let index = doc.as_array().and_then(|items| {
            items.iter().position(|e| {
                e.get("id")
                    .and_then(Value::as_str)
                    .is_some_and(|id| id.eq_ignore_ascii_case(app_id))
            })
        });
        match index {
            Some(i) => {
                writeln!(
                    out,
                    "entry {i} ({app_id}) has errors; run `halo-catalog validate {file}` to see them"
                )
                .map_err(io)?;
            }
            None => writeln!(out, "no entry with id `{app_id}` in {file}").map_err(io)?,
        }
        return Ok(EXIT_INVALID);
    };
    let ctx = analysis::required_context(entry);
    let access = analysis::resource_access(entry);
    let compat = analysis::compatibility(entry, &PocCapabilities::halo_default());
    if json_out {
        let doc = json!({
            "id": entry.id,
            "name": entry.name,
            "launchUrl": entry.launch_url,
            "context": {
                "types": ctx.types,
                "basis": match ctx.basis {
                    ContextBasis::Explicit => "explicit",
                    ContextBasis::LaunchOnly => "launch-only",
                    ContextBasis::NoLaunch => "no-launch",
                },
                "onlyIfPresent": ctx.only_if_present(),
                "userIdentity": ctx.user_identity,
                "offlineAccess": ctx.offline_access,
            },
            "resources": access.iter().map(|a| json!({
                "level": a.level.as_str(),
                "type": a.resource_type.as_str(),
                "interactions": a.permissions.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
                "queryRestricted": a.query_restricted,
            })).collect::<Vec<_>>(),
            "compatibility": {
                "against": "HALO default PoC capabilities (decision D-14)",
                "compatible": compat.is_compatible(),
                "unsatisfied": compat.unsatisfied.iter().map(|g| json!({"scope": g.scope, "reason": g.gap.to_string()})).collect::<Vec<_>>(),
                "partial": compat.partial.iter().map(|g| json!({"scope": g.scope, "reason": g.gap.to_string()})).collect::<Vec<_>>(),
            }
        });
        let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
        writeln!(out, "{text}").map_err(io)?;
        return Ok(EXIT_OK);
    }
    write_context(entry, &ctx, &access, &compat, style, out).map_err(io)?;
    Ok(EXIT_OK)
}

fn write_context(
    entry: &crate::AppEntry,
    ctx: &analysis::RequiredContext,
    access: &[analysis::ResourceAccess],
    compat: &analysis::Compatibility,
    style: Style,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    writeln!(out, "{} ({})", style.bold(&entry.name), entry.id)?;
    writeln!(out, "launch URL: {}", entry.launch_url)?;
    writeln!(out)?;
    writeln!(
        out,
        "{}",
        style.bold("Launch context to set with $set-context")
    )?;
    match ctx.basis {
        ContextBasis::Explicit => {
            writeln!(out, "  {}", ctx.types.join(", "))?;
            writeln!(
                out,
                "  (named by the app's launch/<type> scopes: the minimum to send)"
            )?;
        }
        ContextBasis::LaunchOnly => {
            writeln!(out, "  {}", ctx.types.join(", "))?;
            writeln!(
                out,
                "  (the app lists only `launch`: send each of these that the user's current context has)"
            )?;
        }
        ContextBasis::NoLaunch => writeln!(
            out,
            "  none: the app lists no launch scope, so it expects no launch context"
        )?,
    }
    if ctx.user_identity {
        writeln!(
            out,
            "  user: openid + fhirUser, so include the current user's Practitioner (the id_token's fhirUser)"
        )?;
    }
    if ctx.offline_access {
        writeln!(
            out,
            "  offline_access: the app may write after it is closed; keep the $set-context id mappings until the context ends"
        )?;
    }
    writeln!(out)?;
    writeln!(out, "{}", style.bold("Resources the app may use"))?;
    if access.is_empty() {
        writeln!(out, "  none (no patient/, user/ or system/ scopes)")?;
    }
    let width = access
        .iter()
        .map(|a| a.level.as_str().len() + 1 + a.resource_type.as_str().len())
        .max()
        .unwrap_or(0);
    for a in access {
        let what: Vec<String> = a.permissions.iter().map(|i| i.to_string()).collect();
        let scope = format!("{}/{}", a.level, a.resource_type);
        let note = if a.query_restricted {
            "  (query-restricted; may be ignored)"
        } else {
            ""
        };
        writeln!(out, "  {scope:<width$}  {}{note}", what.join(", "))?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "{}",
        style.bold("Against the SDK's default PoC capabilities (decision D-14)")
    )?;
    if compat.is_compatible() && compat.partial.is_empty() {
        writeln!(out, "  every scope can be satisfied")?;
    }
    for g in &compat.unsatisfied {
        writeln!(
            out,
            "  {} {}: {}",
            style.severity(Severity::Error),
            g.scope,
            g.gap
        )?;
    }
    for g in &compat.partial {
        writeln!(
            out,
            "  {} {}: {}",
            style.severity(Severity::Warning),
            g.scope,
            g.gap
        )?;
    }
    Ok(())
}
