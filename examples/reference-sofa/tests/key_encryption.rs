//! The reference SoFA's key-encryption key (REQ IDP-06): named by the TOML as a file (or a
//! variable), never written in it; required outside development mode; the wrong one stops the
//! start with a message that says so. A real SQLite file, real HTTP on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use reference_sofa::{Config, ReferenceSofa};

mod support;
use support::TempDir;

const KEK_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const KEK_B: &str = "HxweHRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE=";

fn write_config(dir: &TempDir, kek: &str, development_mode: bool) -> std::path::PathBuf {
    std::fs::write(dir.0.join("kek"), format!("{kek}\n")).unwrap();
    let path = dir.0.join("sofa.toml");
    std::fs::write(
        &path,
        format!(
            r#"
listen = "127.0.0.1:0"
public_url = "https://sofa.example.org"
database = "sofa.db"
development_mode = {development_mode}
key_encryption_key_file = "kek"

[login]
mode = "auto-approve"
user = "dr-a"
"#
        ),
    )
    .unwrap();
    path
}

// REQ: IDP-06
#[tokio::test]
async fn the_key_encryption_key_comes_from_a_file_and_the_wrong_one_stops_the_start() {
    let dir = TempDir::new("kek");
    let path = write_config(&dir, KEK_A, false);
    let config = Config::from_file(&path).unwrap();
    // The file is found next to the configuration, as `database` is.
    assert_eq!(
        config.key_encryption_key_file.as_deref(),
        Some(dir.0.join("kek").as_path())
    );
    let sofa = ReferenceSofa::start(config).await.unwrap();
    let jwks: serde_json::Value =
        reqwest::get(format!("http://{}/fhir/auth/jwks", sofa.local_addr))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    sofa.shutdown().await;
    let database = std::fs::read(dir.0.join("sofa.db")).unwrap();
    assert!(!database.windows(11).any(|w| w == b"PRIVATE KEY"));

    // Another key-encryption key: refused, saying which key the signing keys need.
    let path = write_config(&dir, KEK_B, false);
    let error = ReferenceSofa::start(Config::from_file(&path).unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("key-encryption key"), "{error}");
    assert!(error.contains("key_encryption_key_file"), "{error}");

    // Outside development mode without one: refused before the store is touched.
    let mut config = Config::from_file(&path).unwrap();
    config.key_encryption_key_file = None;
    let error = ReferenceSofa::start(config).await.unwrap_err().to_string();
    assert!(error.contains("must be encrypted"), "{error}");

    // The key itself in the TOML is not a key the file may hold.
    let error = Config::from_toml(&format!("key_encryption_key = \"{KEK_A}\""))
        .unwrap_err()
        .to_string();
    assert!(error.contains("key_encryption_key"), "{error}");
}
