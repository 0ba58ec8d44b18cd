//! Revocations and `jti` records live in the store (REQ IDP-05): a SoFA restarted on the same
//! SQLite file, or a second instance on it, refuses what the first revoked. Real HTTP on
//! loopback, a real SQLite file closed and reopened.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/auth.rs"]
mod auth_support;

use std::sync::Arc;

use auth_support::*;
use halo_sofa_server::auth::{AuthServer, AutoApprove, ClientRegistry, TokenError};
use halo_sofa_server::clock::SystemClock;
use halo_sofa_server::config::{AuthConfig, SofaConfig};
use halo_sofa_server::store::{SqliteStore, Store};
use reqwest::StatusCode;

const SCOPE: &str = "launch openid fhirUser offline_access patient/*.rs";

struct Dir(std::path::PathBuf);

impl Dir {
    fn new() -> Dir {
        let path = std::env::temp_dir().join(format!(
            "halo-sofa-revocations-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&path).unwrap();
        Dir(path)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn on_file(dir: &Dir, listen: Option<std::net::SocketAddr>) -> AuthServerUnderTest {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.0.join("sofa.db")).await.unwrap());
    start_with(Options {
        store: Some(store),
        listen,
        ..Options::default()
    })
    .await
}

// REQ: IDP-05, AS-05, AS-08
#[tokio::test]
async fn revoked_tokens_stay_revoked_after_a_restart() {
    let dir = Dir::new();
    let server = on_file(&dir, None).await;
    let launch = server.launch(Some("dr-a"), "p1").await;
    // A code replayed: the tokens of its first exchange are revoked.
    let (code, verifier) = server.code("app-public", &launch, SCOPE).await;
    let replayed = server.exchange("app-public", &code, &verifier).await;
    assert_eq!(replayed.status, StatusCode::OK);
    assert_eq!(
        server
            .exchange("app-public", &code, &verifier)
            .await
            .error(),
        "invalid_grant"
    );
    // A refresh token reused: its family is revoked.
    let reused = server.launch_token(&launch, SCOPE).await;
    let refresh = reused.body["refresh_token"].as_str().unwrap().to_string();
    let rotate = || async {
        server
            .token(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("client_id", "app-public"),
            ])
            .await
    };
    let rotated = rotate().await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    assert_eq!(rotate().await.error(), "invalid_grant");
    // A live token from neither family.
    let live = server.launch_token(&launch, SCOPE).await;
    for token in [replayed.access_token(), rotated.access_token()] {
        let (status, _, _) = server.get("/Patient/p1", token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    // The process goes away; a new one opens the same file at the same address.
    let addr = server.stop().await;
    let restarted = on_file(&dir, Some(addr)).await;
    for token in [replayed.access_token(), rotated.access_token()] {
        let (status, _, _) = restarted.get("/Patient/p1", token).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "revoked before the restart"
        );
    }
    let (status, _, _) = restarted.get("/Patient/p1", live.access_token()).await;
    assert_eq!(status, StatusCode::OK, "the restart revoked nothing else");
}

// REQ: IDP-05, AS-06
#[tokio::test]
async fn a_client_assertion_used_before_a_restart_is_refused_after_it() {
    let dir = Dir::new();
    let server = on_file(&dir, None).await;
    let launch = server.launch(Some("dr-a"), "p1").await;
    let assertion = server.assertion("jti-before-restart");
    let form = |code: String, verifier: String| {
        vec![
            ("grant_type".to_string(), "authorization_code".to_string()),
            ("code".into(), code),
            ("redirect_uri".into(), REDIRECT.into()),
            ("code_verifier".into(), verifier),
            (
                "client_assertion_type".into(),
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
            ),
            ("client_assertion".into(), assertion.clone()),
        ]
    };
    let (code, verifier) = server.code("app-jwt", &launch, SCOPE).await;
    let first = server
        .token_with(
            server
                .http
                .post(server.url("/auth/token"))
                .form(&form(code, verifier)),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let addr = server.stop().await;

    let restarted = on_file(&dir, Some(addr)).await;
    let (code, verifier) = restarted.code("app-jwt", &launch, SCOPE).await;
    let replayed = restarted
        .token_with(
            restarted
                .http
                .post(restarted.url("/auth/token"))
                .form(&form(code, verifier)),
        )
        .await;
    assert_eq!(
        (replayed.status, replayed.error()),
        (StatusCode::UNAUTHORIZED, "invalid_client")
    );
}

// REQ: IDP-05
#[tokio::test]
async fn a_second_instance_on_the_same_store_sees_a_revocation_at_once() {
    let dir = Dir::new();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.0.join("sofa.db")).await.unwrap());
    let first = start_with(Options {
        store: Some(store.clone()),
        ..Options::default()
    })
    .await;
    // The second instance: its own store handle on the same file, the same issuer.
    let mut config = SofaConfig::new(&first.base).unwrap();
    config.oauth = Some(AuthServer::oauth_uris(&first.base));
    let second = AuthServer::start(
        &config,
        AuthConfig {
            development_mode: true,
            ..AuthConfig::default()
        },
        Arc::new(SqliteStore::open(dir.0.join("sofa.db")).await.unwrap()),
        Arc::new(SystemClock),
        ClientRegistry::new(),
        Arc::new(AutoApprove::new("dr-a", None)),
    )
    .await
    .unwrap()
    .token_validator();

    let launch = first.launch(Some("dr-a"), "p1").await;
    let (code, verifier) = first.code("app-public", &launch, SCOPE).await;
    let answer = first.exchange("app-public", &code, &verifier).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(second.validate(answer.access_token()).await.is_ok());
    // The first instance sees the code replayed and revokes the family; the second refuses
    // the token from then on, without a restart.
    assert_eq!(
        first.exchange("app-public", &code, &verifier).await.error(),
        "invalid_grant"
    );
    assert_eq!(
        second.validate(answer.access_token()).await.unwrap_err(),
        TokenError::Invalid
    );
}

async fn revoke(server: &AuthServerUnderTest, form: &[(&str, &str)]) -> TokenAnswer {
    server
        .token_with(server.http.post(server.url("/auth/revoke")).form(form))
        .await
}

// REQ: IDP-05
/// An app signs out through RFC 7009 revocation (advertised in discovery): its refresh token
/// takes the grant's access tokens with it, and the revocation outlives a restart. Another
/// client's token, or a token that does not exist, is answered the same and changes nothing.
#[tokio::test]
async fn an_app_signs_out_by_revoking_its_refresh_token() {
    let dir = Dir::new();
    let server = on_file(&dir, None).await;
    let config: serde_json::Value = server.get_json("/.well-known/smart-configuration").await;
    assert_eq!(config["revocation_endpoint"], server.url("/auth/revoke"));

    let launch = server.launch(Some("dr-a"), "p1").await;
    let signed_out = server.launch_token(&launch, SCOPE).await;
    let kept = server.launch_token(&launch, SCOPE).await;
    let refresh = signed_out.body["refresh_token"].as_str().unwrap();

    // A confidential client cannot revoke the public app's grant, and learns nothing.
    for form in [
        vec![
            ("token", refresh),
            ("client_id", "app-secret"),
            ("client_secret", SECRET),
        ],
        vec![
            ("token", "no-such-token"),
            ("token_type_hint", "refresh_token"),
            ("client_id", "app-public"),
        ],
    ] {
        let answer = revoke(&server, &form).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }
    let (status, _, _) = server.get("/Patient/p1", signed_out.access_token()).await;
    assert_eq!(status, StatusCode::OK, "nothing was revoked yet");
    // Without client authentication, nothing is revoked at all.
    let anonymous = revoke(&server, &[("token", refresh)]).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    let answer = revoke(
        &server,
        &[
            ("token", refresh),
            ("token_type_hint", "refresh_token"),
            ("client_id", "app-public"),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["cache-control"], "no-store");
    let (status, _, _) = server.get("/Patient/p1", signed_out.access_token()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let refreshed = server
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", "app-public"),
        ])
        .await;
    assert_eq!(refreshed.error(), "invalid_grant");

    // An access token revokes its grant too.
    let by_access = server.launch_token(&launch, SCOPE).await;
    let answer = revoke(
        &server,
        &[
            ("token", by_access.access_token()),
            ("client_id", "app-public"),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let (status, _, _) = server.get("/Patient/p1", by_access.access_token()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let addr = server.stop().await;
    let restarted = on_file(&dir, Some(addr)).await;
    let (status, _, _) = restarted
        .get("/Patient/p1", signed_out.access_token())
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "revoked before the restart"
    );
    let (status, _, _) = restarted.get("/Patient/p1", kept.access_token()).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "another grant of the same launch stays"
    );
}
