//! Configuration from the environment and secrets kept out of the TOML (REQ OPS-04).
//!
//! - Every key can be set by a variable `HALO_SOFA__<KEY>`, `__` between nested keys and a
//!   number for an element of an array of tables: `HALO_SOFA__LIFETIMES__LAUNCH_SECS=600`,
//!   `HALO_SOFA__CLIENTS__0__SECRET=...`. The text is read as a TOML value (`600`, `true`,
//!   `["a", "b"]`), and as a string when it is not one (`postgres://...`). Overrides apply to
//!   the file's table before it is deserialised, so an unknown key is refused like a typo in
//!   the file.
//! - A client secret or a user password comes from `secret_file` / `password_file` (a path,
//!   the file's content without its final newline), `secret_env` / `password_env` (a variable
//!   name), or an override variable. Written directly in the file (`secret`, `password`, or a
//!   password in a `postgres://` URL), it is refused unless `development_mode` is on: a TOML
//!   file is copied, committed and printed far more often than a secret should be.

use std::path::Path;

use toml::{Table, Value};

use crate::Error;

/// The prefix of the override variables.
pub const ENV_PREFIX: &str = "HALO_SOFA__";
/// What a redacted secret reads as.
pub const REDACTED: &str = "<redacted>";

/// Sets every `HALO_SOFA__...` variable of `env` into `table`.
pub(crate) fn apply_env(table: &mut Table, env: &[(String, String)]) -> Result<(), Error> {
    let mut overrides: Vec<&(String, String)> = env
        .iter()
        .filter(|(name, _)| name.starts_with(ENV_PREFIX))
        .collect();
    // Parents before children, in a stable order, whatever order the environment lists them.
    overrides.sort();
    for (name, text) in overrides {
        let path: Vec<String> = name[ENV_PREFIX.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        if path.iter().any(String::is_empty) {
            return Err(Error::Config(format!("{name}: an empty key")));
        }
        set(table, &path, parse_value(text))
            .map_err(|reason| Error::Config(format!("{name}: {reason}")))?;
    }
    Ok(())
}

/// The variable's text as a TOML value, or as a string when it is not one.
pub(crate) fn parse_value(text: &str) -> Value {
    format!("v = {text}")
        .parse::<Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(text.to_string()))
}

fn set(table: &mut Table, path: &[String], value: Value) -> Result<(), String> {
    let (key, rest) = path.split_first().ok_or("an empty key")?;
    if rest.is_empty() {
        table.insert(key.clone(), value);
        return Ok(());
    }
    let child = table
        .entry(key.clone())
        .or_insert_with(|| Value::Table(Table::new()));
    set_in(child, key, rest, value)
}

fn set_in(node: &mut Value, key: &str, rest: &[String], value: Value) -> Result<(), String> {
    match node {
        Value::Table(table) => set(table, rest, value),
        Value::Array(items) => {
            let (index, rest) = rest.split_first().ok_or("an empty key")?;
            let index: usize = index
                .parse()
                .map_err(|_| format!("`{key}` is an array: the next key must be an index"))?;
            let len = items.len();
            let item = items
                .get_mut(index)
                .ok_or_else(|| format!("`{key}` has {len} entries, no entry {index}"))?;
            if rest.is_empty() {
                *item = value;
                Ok(())
            } else {
                set_in(item, key, rest, value)
            }
        }
        _ => Err(format!("`{key}` is a plain value, not a table")),
    }
}

/// Refuses secrets written directly in the file unless development mode is on; `file` is the
/// table as read, before the overrides.
pub(crate) fn refuse_file_secrets(file: &Table, development_mode: bool) -> Result<(), Error> {
    if development_mode {
        return Ok(());
    }
    let refused = |key: String, instead: &str| {
        Error::Config(format!(
            "{key}: a secret written in the configuration file is refused outside \
             development_mode; use {instead}"
        ))
    };
    for (array, field, instead) in [
        (
            "clients",
            "secret",
            "secret_file, secret_env or HALO_SOFA__CLIENTS__<n>__SECRET",
        ),
        (
            "users",
            "password",
            "password_file, password_env or HALO_SOFA__USERS__<n>__PASSWORD",
        ),
    ] {
        for (i, entry) in entries(file, array) {
            if entry.contains_key(field) {
                return Err(refused(format!("{array}[{i}].{field}"), instead));
            }
        }
    }
    if let Some(login) = file.get("login").and_then(Value::as_table) {
        for field in LOGIN_SECRETS {
            if login.contains_key(field) {
                let upper = field.to_ascii_uppercase();
                return Err(refused(
                    format!("login.{field}"),
                    &format!("{field}_file, {field}_env or HALO_SOFA__LOGIN__{upper}"),
                ));
            }
        }
    }
    if let Some(Value::String(url)) = file.get("database")
        && url_password(url).is_some()
    {
        return Err(refused(
            "database".into(),
            "HALO_SOFA__DATABASE for a URL with a password",
        ));
    }
    Ok(())
}

/// Replaces each `secret_file`/`secret_env` (clients), `password_file`/`password_env` (users)
/// and `client_secret_*`/`cookie_key_*` ([login]) by the secret it names. Relative files are
/// taken relative to `dir`.
pub(crate) fn resolve_secrets(
    table: &mut Table,
    dir: &Path,
    env: &[(String, String)],
) -> Result<(), Error> {
    for (array, field) in [("clients", "secret"), ("users", "password")] {
        let Some(Value::Array(items)) = table.get_mut(array) else {
            continue;
        };
        for (i, item) in items.iter_mut().enumerate() {
            let Value::Table(entry) = item else { continue };
            resolve_field(entry, &format!("{array}[{i}].{field}"), field, dir, env)?;
        }
    }
    if let Some(Value::Table(login)) = table.get_mut("login") {
        for field in LOGIN_SECRETS {
            resolve_field(login, &format!("login.{field}"), field, dir, env)?;
        }
    }
    Ok(())
}

/// The secrets of the `[login]` table (`mode = "oidc"`).
const LOGIN_SECRETS: [&str; 2] = ["client_secret", "cookie_key"];

/// Puts the secret `field` of `entry` in place from its `_file` or `_env` source, if it names
/// one; `key` is how errors name it.
fn resolve_field(
    entry: &mut Table,
    key: &str,
    field: &str,
    dir: &Path,
    env: &[(String, String)],
) -> Result<(), Error> {
    let from_file = entry.remove(&format!("{field}_file"));
    let from_env = entry.remove(&format!("{field}_env"));
    let sources = usize::from(entry.contains_key(field))
        + usize::from(from_file.is_some())
        + usize::from(from_env.is_some());
    if sources > 1 {
        return Err(Error::Config(format!(
            "{key}: give one of {field}, {field}_file and {field}_env"
        )));
    }
    let secret = match (from_file, from_env) {
        (Some(Value::String(file)), _) => {
            let path = dir.join(file);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Error::Config(format!("{key}_file: {}: {e}", path.display())))?;
            text.strip_suffix('\n')
                .map(|t| t.strip_suffix('\r').unwrap_or(t))
                .unwrap_or(&text)
                .to_string()
        }
        (_, Some(Value::String(name))) => env
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| Error::Config(format!("{key}_env: the variable {name} is not set")))?,
        (Some(_), _) => {
            return Err(Error::Config(format!("{key}_file: a path is expected")));
        }
        (_, Some(_)) => {
            return Err(Error::Config(format!(
                "{key}_env: a variable name is expected"
            )));
        }
        (None, None) => return Ok(()),
    };
    entry.insert(field.to_string(), Value::String(secret));
    Ok(())
}

fn entries<'a>(table: &'a Table, array: &str) -> impl Iterator<Item = (usize, &'a Table)> {
    table
        .get(array)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, v)| v.as_table().map(|t| (i, t)))
}

/// The byte range of the password in a `scheme://user:password@host/...` URL.
fn url_password(url: &str) -> Option<std::ops::Range<usize>> {
    let start = url.find("://")? + 3;
    let authority_end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let at = url[start..authority_end].rfind('@')? + start;
    let colon = url[start..at].find(':')? + start;
    Some(colon + 1..at)
}

/// `url` with its password, if it has one, replaced by [`REDACTED`].
pub fn redact_url(url: &str) -> String {
    match url_password(url) {
        Some(range) => format!("{}{REDACTED}{}", &url[..range.start], &url[range.end..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_toml_or_strings() {
        assert_eq!(parse_value("600"), Value::Integer(600));
        assert_eq!(parse_value("true"), Value::Boolean(true));
        assert_eq!(
            parse_value("postgres://a:b@h/db"),
            Value::String("postgres://a:b@h/db".into())
        );
        assert_eq!(
            parse_value("127.0.0.1:8080"),
            Value::String("127.0.0.1:8080".into())
        );
    }

    #[test]
    fn url_passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://sofa:s3cr:t@db.example.org/sofa?sslmode=require"),
            "postgres://sofa:<redacted>@db.example.org/sofa?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://sofa@db/sofa"),
            "postgres://sofa@db/sofa"
        );
        assert_eq!(redact_url("sofa.db"), "sofa.db");
    }
}
