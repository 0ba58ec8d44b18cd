//! A real browser through the web examples: headless Chromium, driven over WebDriver, clicks from
//! the example EMR page to the example SMART app's patient banner, records a weight there, sees
//! the EMR file it, clears the launch, and sees the app lose access. The banner page is saved as
//! a screenshot under `target/tmp/browser/`.
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

// REQ: EX-02
// REQ: EX-03
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clinician_clicks_from_the_emr_page_to_the_patient_banner() {
    let Some(installation) = Installation::find() else {
        if std::env::var_os("HALO_SKIP_BROWSER_TEST").is_some() {
            eprintln!("browser test skipped: HALO_SKIP_BROWSER_TEST is set");
            return;
        }
        panic!(
            "the browser test needs Chromium and ChromeDriver: `apt-get install chromium \
             chromium-driver` (or set CHROMIUM and CHROMEDRIVER), or set \
             HALO_SKIP_BROWSER_TEST=1 to skip it"
        );
    };
    let out = screenshots();
    std::fs::create_dir_all(&out).unwrap();
    let demo = Demo::start(DemoOptions::default()).await.unwrap();
    let browser = Browser::start(&installation, &out).await.unwrap();

    // The EMR page: the catalog from the SoFA, the chart's patients.
    browser.goto(demo.emr_page()).await.unwrap();
    assert_eq!(browser.title().await.unwrap(), "HALO example EMR");
    let catalog = browser.wait_for("ul", PATIENCE).await.unwrap();
    let catalog = browser.text(&catalog).await.unwrap();
    assert!(
        catalog.contains("HALO Example Weight & Height"),
        "{catalog}"
    );

    // Pick Jean Roy and the example app, and open it.
    let patient = browser
        .wait_for("select[name=patient] option[value='Patient/p8']", PATIENCE)
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
    let open = browser
        .wait_for("form[action='/launch'] button[type=submit]", PATIENCE)
        .await
        .unwrap();
    browser.click(&open).await.unwrap();

    // Subscribe, `$set-context`, launch URL, the app's authorize, callback: its page.
    let banner = browser.wait_for(".banner", PATIENCE).await.unwrap();
    let banner = browser.text(&banner).await.unwrap();
    assert!(banner.starts_with("Jean Roy · "), "{banner}");
    assert!(banner.contains(" · born "), "{banner}");
    assert!(banner.contains("Patient/"), "{banner}");
    let app_page = browser.url().await.unwrap();
    assert!(!app_page.starts_with(demo.emr_page()), "{app_page}");
    assert!(app_page.contains("/s/"), "{app_page}");
    assert_eq!(browser.title().await.unwrap(), "Patient");

    let png = browser.screenshot().await.unwrap();
    let (width, height) = png_size(&png).expect("the screenshot is a PNG");
    assert!(width >= 800 && height >= 600, "{width}×{height}");
    let path = out.join("patient-banner.png");
    std::fs::write(&path, &png).unwrap();
    eprintln!("screenshot: {}", path.display());

    // Record a weight: the app writes it, the EMR files it under its own id.
    let weight = browser
        .wait_for("input[name=weight_kg]", PATIENCE)
        .await
        .unwrap();
    browser.type_into(&weight, "80.2").await.unwrap();
    let save = browser
        .wait_for(
            "form[action$='/observations'] button[type=submit]",
            PATIENCE,
        )
        .await
        .unwrap();
    browser.click(&save).await.unwrap();
    let observations = browser
        .wait_for_text("table.observations", "80.2 kg", PATIENCE)
        .await
        .unwrap();
    assert!(observations.contains("Body weight"), "{observations}");

    browser
        .goto(&format!("{}notifications", demo.emr_page()))
        .await
        .unwrap();
    let filed = browser
        .wait_for_text("body", "Observation/emr-", PATIENCE)
        .await
        .unwrap();
    assert!(filed.contains("Observation/"), "{filed}");

    // Clear the launch from the EMR page; the app's page then reports the refusal.
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
        .wait_for_text("h1", "Access refused", PATIENCE)
        .await
        .unwrap();
    assert_eq!(heading, "Access refused");

    browser.quit().await.unwrap();
    demo.shutdown().await;
}
