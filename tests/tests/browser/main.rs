//! A real browser through the web examples: headless Chromium, driven over WebDriver, clicks from
//! the example EMR page to the example SMART app's patient banner, records a weight there, sees
//! the EMR file it, clears the launch, and sees the app's session end. Then the same inside the
//! EMR page's frame, where the app runs on another site (`localhost` in a `127.0.0.1` page) and
//! the browser blocks its third-party cookies. The banner pages are saved as screenshots under
//! `target/tmp/browser/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (see the README; `CHROMIUM` and `CHROMEDRIVER`
//! point elsewhere). Without them the test fails and says how to install them, unless
//! `HALO_SKIP_BROWSER_TEST=1` asks to skip it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod webdriver;

use std::path::PathBuf;
use std::time::Duration;

use halo_demo::{Demo, DemoOptions, WEB_APP_ID};
use webdriver::{Browser, Installation};

/// Long enough for a cold Chromium on a busy two-core machine; a working flow takes well under
/// a second per step.
const PATIENCE: Duration = Duration::from_secs(30);

/// Where the screenshots go: the target directory's scratch space, kept after the run.
fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser")
}

/// Width and height from a PNG's IHDR chunk, after checking the signature.
fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if png.len() < 24 || !png.starts_with(SIGNATURE) || &png[12..16] != b"IHDR" {
        return None;
    }
    let width = u32::from_be_bytes(png[16..20].try_into().ok()?);
    let height = u32::from_be_bytes(png[20..24].try_into().ok()?);
    Some((width, height))
}

/// The browser and the demo, or `None` when the test is skipped on purpose.
async fn start() -> Option<(Demo, Browser, PathBuf)> {
    start_with(serde_json::json!({})).await
}

/// [`start`] with Chromium preferences.
async fn start_with(prefs: serde_json::Value) -> Option<(Demo, Browser, PathBuf)> {
    start_demo(prefs, DemoOptions::default()).await
}

/// [`start_with`] with the demo's options.
async fn start_demo(
    prefs: serde_json::Value,
    options: DemoOptions,
) -> Option<(Demo, Browser, PathBuf)> {
    let Some(installation) = Installation::find() else {
        if std::env::var_os("HALO_SKIP_BROWSER_TEST").is_some() {
            eprintln!("browser test skipped: HALO_SKIP_BROWSER_TEST is set");
            return None;
        }
        panic!(
            "the browser test needs Chromium and ChromeDriver: `apt-get install chromium \
             chromium-driver` (or set CHROMIUM and CHROMEDRIVER), or set \
             HALO_SKIP_BROWSER_TEST=1 to skip it"
        );
    };
    let out = screenshots();
    std::fs::create_dir_all(&out).unwrap();
    let demo = Demo::start(options).await.unwrap();
    let browser = Browser::start(&installation, &out, prefs).await.unwrap();
    Some((demo, browser, out))
}

/// On the EMR page: picks `patient` and the example web app in the open-an-app form.
async fn pick(browser: &Browser, patient: &str) {
    let patient = browser
        .wait_for(
            &format!("select[name=patient] option[value='{patient}']"),
            PATIENCE,
        )
        .await
        .unwrap();
    browser.click(&patient).await.unwrap();
    let app = browser
        .wait_for(
            &format!("select[name=app_id] option[value='{WEB_APP_ID}']"),
            PATIENCE,
        )
        .await
        .unwrap();
    browser.click(&app).await.unwrap();
}

/// On the EMR page: opens the example web app for `patient` in the window; the app's
/// patient banner.
async fn open_in_window(browser: &Browser, patient: &str) -> String {
    pick(browser, patient).await;
    let open = browser
        .wait_for("form[action='/launch'] button[type=submit]", PATIENCE)
        .await
        .unwrap();
    browser.click(&open).await.unwrap();
    let banner = browser.wait_for(".banner", PATIENCE).await.unwrap();
    browser.text(&banner).await.unwrap()
}

/// On the EMR page: clicks its sign-in button (to the IdP).
async fn click_sign_in(browser: &Browser) {
    let sign_in = browser
        .wait_for("form[action='/sign-in'] button[type=submit]", PATIENCE)
        .await
        .unwrap();
    browser.click(&sign_in).await.unwrap();
}

/// Saves a screenshot of the viewport as `name`, after checking it is a real PNG.
async fn keep_screenshot(browser: &Browser, out: &std::path::Path, name: &str) {
    let png = browser.screenshot().await.unwrap();
    let (width, height) = png_size(&png).expect("the screenshot is a PNG");
    assert!(width >= 800 && height >= 600, "{width}×{height}");
    let path = out.join(name);
    std::fs::write(&path, &png).unwrap();
    eprintln!("screenshot: {}", path.display());
}

/// From the EMR page: opens the example web app for `patient` in the page's frame, and moves
/// into that frame.
async fn open_in_frame(browser: &Browser, demo: &Demo, patient: &str) {
    browser.goto(demo.emr_page()).await.unwrap();
    pick(browser, patient).await;
    let open = browser
        .wait_for("button[formtarget=app-frame]", PATIENCE)
        .await
        .unwrap();
    browser.click(&open).await.unwrap();
    let frame = browser
        .wait_for("iframe[name=app-frame]", PATIENCE)
        .await
        .unwrap();
    browser.enter_frame(&frame).await.unwrap();
}

/// In the app's page: types a body weight, saves it, and waits for the list to show it.
async fn record_weight(browser: &Browser, kg: &str) {
    let weight = browser
        .wait_for("input[name=weight_kg]", PATIENCE)
        .await
        .unwrap();
    browser.type_into(&weight, kg).await.unwrap();
    let save = browser
        .wait_for(
            "form[action$='/observations'] button[type=submit]",
            PATIENCE,
        )
        .await
        .unwrap();
    browser.click(&save).await.unwrap();
    let observations = browser
        .wait_for_text("table.observations", &format!("{kg} kg"), PATIENCE)
        .await
        .unwrap();
    assert!(observations.contains("Body weight"), "{observations}");
}

// REQ: EX-02
// REQ: EX-03
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clinician_clicks_from_the_emr_page_to_the_patient_banner() {
    let Some((demo, browser, out)) = start().await else {
        return;
    };

    // The EMR page: the catalog from the SoFA, the chart's patients.
    browser.goto(demo.emr_page()).await.unwrap();
    assert_eq!(browser.title().await.unwrap(), "HALO example EMR");
    let catalog = browser.wait_for("ul", PATIENCE).await.unwrap();
    let catalog = browser.text(&catalog).await.unwrap();
    assert!(
        catalog.contains("HALO Example Weight & Height"),
        "{catalog}"
    );

    // The clinician signs in at the IdP from the EMR page (the SoFA's built-in IdP here).
    click_sign_in(&browser).await;
    let signed_in = browser
        .wait_for_text(".clinician", "Signed in as dr-gagnon", PATIENCE)
        .await
        .unwrap();
    assert!(signed_in.contains("dr-gagnon"), "{signed_in}");
    keep_screenshot(&browser, &out, "clinician-signed-in.png").await;

    // Pick Jean Roy and the example app, and open it: `$set-context` with the clinician's
    // token, and the app authorized without a second sign-in.
    // Subscribe, `$set-context`, launch URL, the app's authorize, callback: its page.
    let banner = open_in_window(&browser, "Patient/p8").await;
    assert!(banner.starts_with("Jean Roy · "), "{banner}");
    assert!(banner.contains(" · born "), "{banner}");
    assert!(banner.contains("Patient/"), "{banner}");
    let app_page = browser.url().await.unwrap();
    assert!(!app_page.starts_with(demo.emr_page()), "{app_page}");
    assert!(app_page.contains("/s/"), "{app_page}");
    assert_eq!(browser.title().await.unwrap(), "Patient");

    keep_screenshot(&browser, &out, "patient-banner.png").await;

    // Record a weight: the app writes it, the EMR files it under its own id.
    record_weight(&browser, "80.2").await;

    browser
        .goto(&format!("{}notifications", demo.emr_page()))
        .await
        .unwrap();
    let filed = browser
        .wait_for_text("body", "Observation/emr-", PATIENCE)
        .await
        .unwrap();
    assert!(filed.contains("Observation/"), "{filed}");

    // Clear the launch from the EMR page; the app's page then says the session ended.
    browser.goto(demo.emr_page()).await.unwrap();
    let clear = browser
        .wait_for("form[action='/clear'] button[type=submit]", PATIENCE)
        .await
        .unwrap();
    browser.click(&clear).await.unwrap();
    browser
        .wait_for_text("body", "Open launches\nNone.", PATIENCE)
        .await
        .unwrap();
    browser.goto(&app_page).await.unwrap();
    let heading = browser
        .wait_for_text("h1", "Session ended", PATIENCE)
        .await
        .unwrap();
    assert_eq!(heading, "Session ended");

    browser.quit().await.unwrap();
    demo.shutdown().await;
}

/// The EMR page opens the app in its own frame. The app is on another site than the page, so
/// Chromium blocks its ordinary cookies there; the launch's binding and the session's cookie are
/// partitioned and come back, and the page lets that one EMR frame it.
// REQ: EX-02
// REQ: EX-03
// REQ: APP-06
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emr_page_shows_the_app_in_its_frame_from_another_site() {
    let Some((demo, browser, out)) = start().await else {
        return;
    };
    // The EMR page stays; the app fills its frame: launch, authorize and callback in there.
    open_in_frame(&browser, &demo, "Patient/p7").await;
    let banner = browser.wait_for(".banner", PATIENCE).await.unwrap();
    let banner = browser.text(&banner).await.unwrap();
    assert!(banner.starts_with("Marie Gagnon · "), "{banner}");
    assert!(banner.contains(" · born 1984-03-02 · "), "{banner}");
    let inside = browser
        .execute("return [window.top !== window.self, location.origin, location.pathname];")
        .await
        .unwrap();
    assert_eq!(inside[0], serde_json::json!(true), "{inside}");
    let app_origin = inside[1].as_str().unwrap().to_string();
    assert!(app_origin.starts_with("http://localhost:"), "{inside}");
    assert!(!demo.emr_page().starts_with(&app_origin), "{inside}");
    assert!(inside[2].as_str().unwrap().starts_with("/s/"), "{inside}");

    // A write from inside the frame: the session's partitioned cookie goes along.
    record_weight(&browser, "64.3").await;

    browser.leave_frame().await.unwrap();
    assert_eq!(browser.title().await.unwrap(), "HALO example EMR");
    assert!(
        browser.url().await.unwrap().starts_with(demo.emr_page()),
        "the EMR page stayed in the window"
    );
    keep_screenshot(&browser, &out, "patient-banner-in-frame.png").await;

    browser.quit().await.unwrap();
    demo.shutdown().await;
}

/// A browser that keeps no cookies at all (a user's setting or a hospital's policy): the app in
/// the EMR's frame cannot know the callback comes from the browser that started the launch, and
/// says so in words a clinician can act on instead of failing obscurely.
// REQ: APP-06
// REQ: EX-02
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_that_refuses_cookies_gets_a_page_saying_so() {
    let Some((demo, browser, _)) = start_with(serde_json::json!({
        "profile": {"default_content_setting_values": {"cookies": 2}}
    }))
    .await
    else {
        return;
    };
    open_in_frame(&browser, &demo, "Patient/p8").await;
    let heading = browser
        .wait_for_text("h1", "Your browser blocked this app", PATIENCE)
        .await
        .unwrap();
    assert_eq!(heading, "Your browser blocked this app");
    let text = browser
        .text(&browser.wait_for("p", PATIENCE).await.unwrap())
        .await
        .unwrap();
    assert!(text.contains("Please open the app again"), "{text}");
    assert!(browser.find(".banner").await.unwrap().is_none());

    browser.quit().await.unwrap();
    demo.shutdown().await;
}

/// With the jurisdiction's own OpenID provider (`halo-demo --oidc`): the clinician signs in
/// there once, from the EMR page, and the app opened afterwards in the same browser is
/// authorized without the provider's sign-in page (the SoFA's single sign-on session, D-19).
// REQ: IDP-03
// REQ: EX-02
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_openid_provider_the_clinician_signs_in_once() {
    let options = DemoOptions {
        oidc: true,
        ..DemoOptions::default()
    };
    let Some((demo, browser, out)) = start_demo(serde_json::json!({}), options).await else {
        return;
    };
    browser.goto(demo.emr_page()).await.unwrap();
    click_sign_in(&browser).await;
    // The provider's own page: user name and password.
    let user = browser
        .wait_for("input[name=username]", PATIENCE)
        .await
        .unwrap();
    assert_eq!(browser.title().await.unwrap(), "Jurisdictional sign-in");
    browser.type_into(&user, "dr-gagnon").await.unwrap();
    let password = browser.find("input[name=password]").await.unwrap().unwrap();
    browser
        .type_into(&password, halo_demo::CLINICIAN_PASSWORD)
        .await
        .unwrap();
    let submit = browser.find("button[type=submit]").await.unwrap().unwrap();
    browser.click(&submit).await.unwrap();
    browser
        .wait_for_text(".clinician", "Signed in as dr-gagnon", PATIENCE)
        .await
        .unwrap();

    // The app, in the same browser: no second sign-in, straight to the patient banner.
    let banner = open_in_window(&browser, "Patient/p7").await;
    assert!(banner.starts_with("Marie Gagnon · "), "{banner}");
    keep_screenshot(&browser, &out, "patient-banner-openid-provider.png").await;

    browser.quit().await.unwrap();
    demo.shutdown().await;
}
