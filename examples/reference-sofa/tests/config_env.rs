//! Configuration from the environment, secrets out of the TOML, and the redacted print
//! (REQ OPS-04).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use reference_sofa::{Config, LogFormat, REDACTED};

mod support;
use support::TempDir;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const PRODUCTION: &str = r#"
listen = "127.0.0.1:0"
database = ":memory:"

[login]
mode = "dev-login"

[[users]]
id = "dr-a"
password_env = "DR_A_PASSWORD"

[[clients]]
id = "emr"
secret_file = "emr-secret"
scopes = "Context.write"

[lifetimes]
launch_secs = 100
"#;

// REQ: OPS-04
#[test]
fn environment_variables_override_keys_at_any_depth() {
    let dir = TempDir::new("env");
    std::fs::write(dir.path().join("emr-secret"), "s3cret\n").unwrap();
    let config = Config::from_toml_with_env(
        PRODUCTION,
        dir.path(),
        &env(&[
            ("DR_A_PASSWORD", "pw"),
            ("HALO_SOFA__LIFETIMES__LAUNCH_SECS", "600"),
            (
                "HALO_SOFA__DATABASE",
                "postgres://sofa:pw@db.example.org/sofa",
            ),
            ("HALO_SOFA__DEVELOPMENT_MODE", "false"),
            (
                "HALO_SOFA__CORS_ALLOWED_ORIGINS",
                r#"["https://emr.example.org"]"#,
            ),
            (
                "HALO_SOFA__CLIENTS__0__SCOPES",
                "Context.write system/Subscription.cruds",
            ),
            ("HALO_SOFA__LOG_FORMAT", "json"),
            ("OTHER__LISTEN", "ignored"),
        ]),
    )
    .unwrap();
    assert_eq!(config.lifetimes.launch_secs, 600);
    // Keys the variables leave alone keep the file's value or their default.
    assert_eq!(config.lifetimes.access_token_secs, 3600);
    assert_eq!(
        config.database_url(),
        Some("postgres://sofa:pw@db.example.org/sofa")
    );
    assert_eq!(config.cors_allowed_origins, ["https://emr.example.org"]);
    assert_eq!(
        config.clients[0].scopes,
        "Context.write system/Subscription.cruds"
    );
    assert_eq!(config.log_format, LogFormat::Json);

    // A misspelt variable is refused like a misspelt key.
    let error = Config::from_toml_with_env(
        "database = \":memory:\"",
        dir.path(),
        &env(&[("HALO_SOFA__LIFETIMES__LAUNCH_SEC", "600")]),
    )
    .unwrap_err();
    assert!(error.to_string().contains("launch_sec"), "{error}");
}

// REQ: OPS-04
#[test]
fn a_secret_written_in_the_toml_is_refused_outside_development_mode() {
    let with_secret =
        "[[clients]]\nid = \"emr\"\nsecret = \"in-the-file\"\nscopes = \"Context.write\"\n";
    let error = Config::from_toml(with_secret).unwrap_err().to_string();
    assert!(error.contains("clients[0].secret"), "{error}");

    let with_password = "[[users]]\nid = \"dr-a\"\npassword = \"in-the-file\"\n";
    let error = Config::from_toml(with_password).unwrap_err().to_string();
    assert!(error.contains("users[0].password"), "{error}");

    let with_url = "database = \"postgres://sofa:in-the-file@db/sofa\"\n";
    let error = Config::from_toml(with_url).unwrap_err().to_string();
    assert!(error.contains("database"), "{error}");
    assert!(!error.contains("in-the-file"), "{error}");

    // Development mode keeps the sample's inline secrets working.
    let development = format!("development_mode = true\n{with_secret}");
    assert!(Config::from_toml(&development).is_ok());
    // The same secret from the environment is accepted.
    let config = Config::from_toml_with_env(
        "[[clients]]\nid = \"emr\"\nscopes = \"Context.write\"\n",
        Path::new("."),
        &env(&[("HALO_SOFA__CLIENTS__0__SECRET", "from-env")]),
    )
    .unwrap();
    assert_eq!(config.clients[0].secret.as_deref(), Some("from-env"));
}

// REQ: OPS-04
#[test]
fn secrets_are_read_from_files_and_variables() {
    let dir = TempDir::new("secrets");
    std::fs::write(dir.path().join("emr-secret"), "s3cret\n").unwrap();
    let config = Config::from_toml_with_env(
        PRODUCTION,
        dir.path(),
        &env(&[("DR_A_PASSWORD", "pw-from-env")]),
    )
    .unwrap();
    // The file's final newline is not part of the secret.
    assert_eq!(config.clients[0].secret.as_deref(), Some("s3cret"));
    assert_eq!(config.users[0].password, "pw-from-env");

    // A missing file or variable stops the start, naming the key.
    let error = Config::from_toml_with_env(PRODUCTION, dir.path(), &[])
        .unwrap_err()
        .to_string();
    assert!(error.contains("users[0].password_env"), "{error}");
    std::fs::remove_file(dir.path().join("emr-secret")).unwrap();
    let error =
        Config::from_toml_with_env(PRODUCTION, dir.path(), &env(&[("DR_A_PASSWORD", "pw")]))
            .unwrap_err()
            .to_string();
    assert!(error.contains("clients[0].secret_file"), "{error}");
}

// REQ: OPS-04
#[test]
fn the_printed_configuration_redacts_every_secret() {
    let dir = TempDir::new("print");
    std::fs::write(dir.path().join("emr-secret"), "s3cret-file").unwrap();
    let config = Config::from_toml_with_env(
        PRODUCTION,
        dir.path(),
        &env(&[
            ("DR_A_PASSWORD", "pw-from-env"),
            (
                "HALO_SOFA__DATABASE",
                "postgres://sofa:db-pw@db.example.org/sofa",
            ),
        ]),
    )
    .unwrap();
    let printed = config.to_redacted_toml().unwrap();
    for secret in ["s3cret-file", "pw-from-env", "db-pw"] {
        assert!(!printed.contains(secret), "{secret} in {printed}");
    }
    assert!(printed.contains("postgres://sofa:<redacted>@db.example.org/sofa"));
    assert!(printed.contains(REDACTED));
    // What is printed reads back as the same configuration, secrets aside.
    let reread = Config::from_toml_with_env(&printed, dir.path(), &[]);
    assert!(
        reread.is_err(),
        "a redacted secret is still refused in production"
    );
    assert!(printed.contains("launch_secs = 100"), "{printed}");
    // Debug output, which a log line may carry, shows no secret either: not the whole
    // configuration, not a client, not a user.
    let debugged = format!("{config:?} {:?} {:?}", config.clients, config.users);
    for secret in ["s3cret-file", "pw-from-env", "db-pw"] {
        assert!(!debugged.contains(secret), "{secret} in {debugged}");
    }
}

const OIDC: &str = r#"
listen = "127.0.0.1:0"
database = ":memory:"

[login]
mode = "oidc"
issuer = "https://idp.example.org"
client_id = "sofa"
client_secret_env = "SOFA_OIDC_SECRET"
cookie_key_file = "cookie-key"
"#;

// REQ: OPS-04, IDP-03
#[test]
fn the_federated_logins_secrets_come_from_files_or_variables_and_never_print() {
    let dir = TempDir::new("oidc");
    std::fs::write(dir.path().join("cookie-key"), "a-cookie-key\n").unwrap();
    let config = Config::from_toml_with_env(
        OIDC,
        dir.path(),
        &env(&[("SOFA_OIDC_SECRET", "oidc-s3cret")]),
    )
    .unwrap();
    let reference_sofa::Login::Oidc {
        client_secret,
        cookie_key,
        accept_access_tokens,
        ..
    } = &config.login
    else {
        panic!("{:?}", config.login);
    };
    assert_eq!(client_secret, "oidc-s3cret");
    assert_eq!(cookie_key.as_deref(), Some("a-cookie-key"));
    assert!(accept_access_tokens);
    let printed = config.to_redacted_toml().unwrap();
    let debug = format!("{config:?} {:?}", config.login);
    for shown in [&printed, &debug] {
        assert!(
            !shown.contains("oidc-s3cret") && !shown.contains("a-cookie-key"),
            "{shown}"
        );
    }
    assert!(printed.contains(REDACTED));

    // Written in the file, outside development: refused, naming where to put it instead.
    let inline = OIDC.replace(
        "client_secret_env = \"SOFA_OIDC_SECRET\"",
        "client_secret = \"x\"",
    );
    let error = Config::from_toml_with_env(&inline, dir.path(), &[]).unwrap_err();
    assert!(error.to_string().contains("login.client_secret"), "{error}");
    let inline = OIDC.replace("cookie_key_file = \"cookie-key\"", "cookie_key = \"x\"");
    let error = Config::from_toml_with_env(&inline, dir.path(), &env(&[("SOFA_OIDC_SECRET", "s")]))
        .unwrap_err();
    assert!(error.to_string().contains("login.cookie_key"), "{error}");
}
