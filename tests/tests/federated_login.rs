//! Federated login at the SoFA (REQ IDP-03, D-19) against a real OpenID provider no one here
//! wrote: `oidc-provider` from npm (OpenID Certified), pinned in `tests/oidc-provider`, on a
//! loopback port with two clinicians. The EMR signs its clinician in there and sets the context
//! with that clinician's token; the app's authorization at the SoFA signs the same clinician in
//! through the same provider, without a second sign-in page; another clinician cannot redeem
//! the launch; and every id_token or cookie that is not exactly right is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod oidc;
mod support;

use std::time::{Duration, Instant};

use halo_sofa_server::auth::SESSION_COOKIE;
use oidc::{
    Browser, COOKIE_KEY, Cookie, DR_A, DR_B, Nav, OTHER_SOFA_CLIENT, Provider, SOFA_CLIENT,
    app_authorize, app_token, claims, emr_signs_in, emr_subscribes, free_port, left, page, param,
    set_context, sofa, start_provider,
};
use reference_sofa::{Login, ReferenceSofa, RunningSofa};

/// A provider and a SoFA signing users in there; the EMR already subscribed.
async fn setup() -> (Provider, RunningSofa) {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}/fhir");
    let provider = start_provider(&[&base]);
    let sofa = sofa(port, &provider.issuer, SOFA_CLIENT).await;
    assert_eq!(sofa.fhir_base, base);
    emr_subscribes(&sofa.fhir_base).await;
    (provider, sofa)
}

/// The EMR signs `user` in within `browser` and sets a context with their token: the launch.
async fn emr_launch(
    browser: &Browser,
    provider: &Provider,
    sofa: &RunningSofa,
    user: (&str, &str),
) -> String {
    let tokens = emr_signs_in(browser, provider, &sofa.fhir_base, user).await;
    let access_token = tokens["access_token"].as_str().unwrap();
    // The provider's JWT access token, issued for the FHIR base (a resource indicator).
    let at = claims(access_token);
    assert_eq!(at["aud"], sofa.fhir_base.as_str());
    assert_eq!(at["sub"], user.0);
    set_context(&sofa.fhir_base, access_token).await
}

// REQ: IDP-03, IDP-04
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clinician_signed_in_at_the_emr_launches_the_app_without_a_second_sign_in() {
    let (provider, sofa) = setup().await;
    let browser = oidc::browser();
    let launch = emr_launch(&browser, &provider, &sofa, DR_A).await;
    let mut tx = sofa.store().begin_read().await.unwrap();
    let record = tx.get_launch(&launch).await.unwrap().unwrap();
    drop(tx);
    assert_eq!(record.user.as_deref(), Some(DR_A.0));

    // The app launches in the same browser: the SoFA sends it to the provider, which knows
    // dr-a already, and back; no sign-in page on the way.
    let seen = browser.pages_seen();
    let (authorize, pkce) = app_authorize(&sofa.fhir_base, &launch);
    let back = left(browser.go(&authorize, None).await.unwrap());
    assert!(
        !browser.saw_sign_in_since(seen),
        "a second sign-in was asked"
    );
    assert_eq!(param(&back, "state").as_deref(), Some("app-state"));
    let code = param(&back, "code").expect("a code for dr-a's own launch");
    let tokens = app_token(&sofa.fhir_base, &code, &pkce).await;
    let id_claims = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id_claims["sub"], DR_A.0);
    assert_eq!(
        id_claims["fhirUser"],
        format!("{}/Practitioner/dr-a", sofa.fhir_base)
    );
    let patient = tokens["patient"].as_str().unwrap();
    let read = reqwest::Client::new()
        .get(format!("{}/Patient/{patient}", sofa.fhir_base))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);

    // The session cookie is what the SoFA remembers: HttpOnly, SameSite=Lax, bounded.
    let (authorize, _) = app_authorize(&sofa.fhir_base, &launch);
    let direct = browser
        .send(&url::Url::parse(&authorize).unwrap(), None)
        .await
        .unwrap();
    assert_eq!(
        direct.status(),
        302,
        "a live session goes straight to the code"
    );

    // dr-b, signed in at the provider in another browser, cannot redeem dr-a's launch.
    let other = oidc::browser();
    let (authorize, _) = app_authorize(&sofa.fhir_base, &launch);
    let at_provider = other.go(&authorize, None).await.unwrap();
    let (status, body) = page(other.sign_in(at_provider, DR_B).await.unwrap());
    assert_eq!(status, 403);
    assert!(body.contains("opened for another clinician"), "{body}");
    assert!(other.cookie(SESSION_COOKIE).is_some(), "dr-b is signed in");
}

// REQ: IDP-03
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_is_sealed_http_only_lax_and_bounded() {
    let (_provider, sofa) = setup().await;
    let browser = oidc::browser();
    let (authorize, _) = app_authorize(&sofa.fhir_base, "no-such-launch");
    let first = browser
        .send(&url::Url::parse(&authorize).unwrap(), None)
        .await
        .unwrap();
    assert_eq!(first.status(), 303);
    let login_cookie = first.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(login_cookie.contains("HttpOnly"), "{login_cookie}");
    assert!(login_cookie.contains("SameSite=Lax"), "{login_cookie}");
    assert!(login_cookie.contains("Max-Age=600"), "{login_cookie}");
    assert!(
        login_cookie.contains("Path=/fhir/auth/oidc/callback"),
        "{login_cookie}"
    );
    let to = url::Url::parse(first.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(param(&to, "code_challenge_method").as_deref(), Some("S256"));
    assert!(param(&to, "nonce").is_some() && param(&to, "state").is_some());
    // The login cookie holds the PKCE verifier and nonce sealed: neither shows.
    let nonce = param(&to, "nonce").unwrap();
    assert!(!login_cookie.contains(&nonce));
}

/// A browser that signs dr-a in at the SoFA (through the provider), for `provider` to alter
/// the id_token with `how` first: the callback's answer.
async fn sign_in_with_altered_id_token(how: &str) -> (Nav, Browser, RunningSofa) {
    let (provider, sofa) = setup().await;
    let browser = oidc::browser();
    provider.alter_next_id_token(how).await.unwrap();
    let (authorize, _) = app_authorize(&sofa.fhir_base, "unknown-launch");
    let at_provider = browser.go(&authorize, None).await.unwrap();
    let nav = browser.sign_in(at_provider, DR_A).await.unwrap();
    drop(provider);
    (nav, browser, sofa)
}

async fn assert_refused(how: &str) {
    let (nav, browser, _sofa) = sign_in_with_altered_id_token(how).await;
    let (status, body) = page(nav);
    assert_eq!(status, 403, "{how}: {body}");
    assert!(body.contains("could not be verified"), "{how}: {body}");
    assert!(
        browser.cookie(SESSION_COOKIE).is_none(),
        "{how}: a session was set"
    );
}

// REQ: IDP-03
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_with_a_bad_signature_signs_nobody_in() {
    assert_refused("bad-signature").await;
}

// REQ: IDP-03
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_for_another_audience_signs_nobody_in() {
    assert_refused("wrong-aud").await;
}

// REQ: IDP-03
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_with_another_nonce_signs_nobody_in() {
    assert_refused("wrong-nonce").await;
}

// REQ: IDP-03
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_id_token_signs_nobody_in() {
    assert_refused("expired").await;
}

// REQ: IDP-03
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unaltered_id_token_from_the_same_provider_signs_in() {
    // The control of the four above: the same path with the provider's token as issued.
    let (nav, browser, _sofa) = sign_in_with_altered_id_token("none").await;
    // Signed in, and back at the authorize request, which answers the app (here: the launch
    // is unknown).
    let back = left(nav);
    assert_eq!(param(&back, "error").as_deref(), Some("access_denied"));
    assert!(browser.cookie(SESSION_COOKIE).is_some());
}

// REQ: IDP-03
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_callback_is_refused() {
    let (_provider, sofa) = setup().await;
    let browser = oidc::browser();
    let (authorize, _) = app_authorize(&sofa.fhir_base, "unknown-launch");
    // Walk to the provider's answer by hand, to keep the callback URL and its login cookie.
    let to_provider = browser
        .send(&url::Url::parse(&authorize).unwrap(), None)
        .await
        .unwrap();
    let login_cookie = browser
        .jar
        .lock()
        .unwrap()
        .iter()
        .find(|c| c.name.starts_with("halo_oidc_"))
        .cloned()
        .unwrap();
    let at_provider = browser
        .go(to_provider.headers()["location"].to_str().unwrap(), None)
        .await
        .unwrap();
    let Nav::Page { url, body, .. } = at_provider else {
        panic!("no sign-in page");
    };
    let action = body
        .split("action=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let mut response = browser
        .send(
            &url.join(action).unwrap(),
            Some(&[("username", DR_A.0), ("password", DR_A.1)]),
        )
        .await
        .unwrap();
    let mut at = url.clone();
    let callback = loop {
        assert!(response.status().is_redirection());
        at = at
            .join(response.headers()["location"].to_str().unwrap())
            .unwrap();
        if at.path().ends_with("/auth/oidc/callback") {
            break at.clone();
        }
        response = browser.send(&at, None).await.unwrap();
    };
    let first = browser.send(&callback, None).await.unwrap();
    assert_eq!(first.status(), 303, "the first use signs in");
    assert!(browser.cookie(SESSION_COOKIE).is_some());

    // The same answer again, with the login cookie put back: refused, and no new session.
    let replayer = oidc::browser();
    replayer.set_cookie(login_cookie);
    let replay = replayer.send(&callback, None).await.unwrap();
    assert_eq!(replay.status(), 400);
    assert!(replay.text().await.unwrap().contains("already used"));
    assert!(replayer.cookie(SESSION_COOKIE).is_none());

    // And the answer without its login cookie (another browser): refused too.
    let stranger = oidc::browser();
    let answer = stranger.send(&callback, None).await.unwrap();
    assert_eq!(answer.status(), 400);
    assert!(stranger.cookie(SESSION_COOKIE).is_none());
}

/// Signs dr-a in at `sofa` in a fresh browser: the browser, with the session cookie.
async fn signed_in(sofa: &RunningSofa) -> Browser {
    let browser = oidc::browser();
    let (authorize, _) = app_authorize(&sofa.fhir_base, "unknown-launch");
    let at_provider = browser.go(&authorize, None).await.unwrap();
    let _ = browser.sign_in(at_provider, DR_A).await.unwrap();
    assert!(browser.cookie(SESSION_COOKIE).is_some());
    browser
}

/// Whether an authorize request with `cookie` as the session is signed in (no redirect to the
/// provider).
async fn accepted(sofa: &RunningSofa, cookie: &str) -> bool {
    let browser = oidc::browser();
    browser.set_cookie(Cookie {
        name: SESSION_COOKIE.into(),
        value: cookie.into(),
        path: "/fhir".into(),
    });
    let (authorize, _) = app_authorize(&sofa.fhir_base, "unknown-launch");
    let response = browser
        .send(&url::Url::parse(&authorize).unwrap(), None)
        .await
        .unwrap();
    let location = response.headers()["location"].to_str().unwrap().to_string();
    !location.contains("/auth?")
}

// REQ: IDP-03
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_session_cookie_is_not_a_session() {
    let (_provider, sofa) = setup().await;
    let browser = signed_in(&sofa).await;
    let cookie = browser.cookie(SESSION_COOKIE).unwrap();
    assert!(
        accepted(&sofa, &cookie).await,
        "the control: the cookie as set"
    );
    // Flip one character of the sealed value, at several places.
    for at in [0, cookie.len() / 2, cookie.len() - 1] {
        let mut bytes = cookie.clone().into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(!accepted(&sofa, &tampered).await, "tampered at {at}");
    }
    assert!(!accepted(&sofa, "").await);
    assert!(!accepted(&sofa, &"x".repeat(5000)).await);
}

// REQ: IDP-03
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_cookie_from_another_client_is_not_a_session() {
    let (port_1, port_2) = (free_port(), free_port());
    let base_1 = format!("http://127.0.0.1:{port_1}/fhir");
    let base_2 = format!("http://127.0.0.1:{port_2}/fhir");
    let provider = start_provider(&[&base_1, &base_2]);
    let sofa_1 = sofa(port_1, &provider.issuer, SOFA_CLIENT).await;
    // Another relying party of the same provider, sharing the cookie key (the case a key
    // alone does not separate).
    let sofa_2 = sofa(port_2, &provider.issuer, OTHER_SOFA_CLIENT).await;
    let browser = signed_in(&sofa_1).await;
    let cookie = browser.cookie(SESSION_COOKIE).unwrap();
    assert!(accepted(&sofa_1, &cookie).await);
    assert!(!accepted(&sofa_2, &cookie).await);
    // The control: sofa-2 accepts its own sessions.
    let own = signed_in(&sofa_2).await.cookie(SESSION_COOKIE).unwrap();
    assert!(accepted(&sofa_2, &own).await);
    let _ = COOKIE_KEY;
}

// REQ: IDP-03
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_ends_the_session_and_goes_to_the_provider() {
    let (provider, sofa) = setup().await;
    let browser = signed_in(&sofa).await;
    let response = browser
        .send(
            &url::Url::parse(&format!("{}/auth/oidc/logout", sofa.fhir_base)).unwrap(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let to = response.headers()["location"].to_str().unwrap();
    assert!(
        to.starts_with(&format!("{}/session/end", provider.issuer)),
        "{to}"
    );
    assert!(
        browser.cookie(SESSION_COOKIE).is_none(),
        "the session cookie is cleared"
    );
}

// REQ: IDP-03
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_naming_another_issuer_stops_the_start() {
    let port = free_port();
    let provider = start_provider(&[&format!("http://127.0.0.1:{port}/fhir")]);
    let mut config = oidc::sofa_config(port, &format!("{}/", provider.issuer), SOFA_CLIENT);
    if let Login::Oidc { issuer, .. } = &mut config.login {
        // The provider's document names its issuer; a configured one that differs is refused.
        *issuer = issuer.replace("127.0.0.1", "localhost");
    }
    let error = ReferenceSofa::start(config).await.unwrap_err();
    assert!(error.to_string().contains("another issuer"), "{error}");
}

/// The cost federated login adds to the app's authorize step: the authorize request with a
/// live single sign-on session, against the same request at a SoFA that auto-approves, and
/// the whole first sign-in through the provider. `cargo test -p halo-tests --test
/// federated_login -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check: run it by name"]
async fn federated_authorize_cost() {
    const RUNS: usize = 50;
    let (provider, sofa) = setup().await;
    let auto_port = free_port();
    let mut auto_config = oidc::sofa_config(auto_port, &provider.issuer, SOFA_CLIENT);
    auto_config.login = Login::AutoApprove {
        user: DR_A.0.into(),
        fhir_user: None,
    };
    let auto = ReferenceSofa::start(auto_config).await.unwrap();

    async fn time_authorize(browser: &Browser, base: &str) -> Duration {
        let (authorize, _) = app_authorize(base, "unknown-launch");
        let url = url::Url::parse(&authorize).unwrap();
        let start = Instant::now();
        let response = browser.send(&url, None).await.unwrap();
        let took = start.elapsed();
        assert_eq!(response.status(), 302);
        took
    }
    fn summary(name: &str, mut times: Vec<Duration>) {
        times.sort();
        let mean = times.iter().sum::<Duration>() / times.len() as u32;
        println!(
            "{name}: n={} median={:?} mean={mean:?} p90={:?}",
            times.len(),
            times[times.len() / 2],
            times[times.len() * 9 / 10]
        );
    }

    let session = signed_in(&sofa).await;
    let plain = oidc::browser();
    let (mut federated, mut approve, mut first) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        time_authorize(&session, &sofa.fhir_base).await;
        time_authorize(&plain, &auto.fhir_base).await;
    }
    for _ in 0..RUNS {
        federated.push(time_authorize(&session, &sofa.fhir_base).await);
        approve.push(time_authorize(&plain, &auto.fhir_base).await);
    }
    // The first authorize of a browser the provider knows: SoFA → provider → callback (code
    // redeemed, id_token verified) → SoFA.
    let at_provider = oidc::browser();
    let _ = emr_signs_in(&at_provider, &provider, &sofa.fhir_base, DR_A).await;
    for _ in 0..RUNS / 5 {
        at_provider
            .jar
            .lock()
            .unwrap()
            .retain(|c| c.name != SESSION_COOKIE);
        let (authorize, _) = app_authorize(&sofa.fhir_base, "unknown-launch");
        let start = Instant::now();
        let nav = at_provider.go(&authorize, None).await.unwrap();
        first.push(start.elapsed());
        assert!(matches!(nav, Nav::Left(_)));
    }
    summary("authorize, auto-approve", approve);
    summary("authorize, live SoFA session (federated)", federated);
    summary(
        "authorize, first in the browser, provider session live",
        first,
    );
}
