//! Just enough of the W3C WebDriver protocol to drive headless Chromium through ChromeDriver:
//! start a session, navigate, find, click, type, read, enter a frame, run a script, screenshot.
//!
//! ChromeDriver runs in its own process group so that dropping a [`Browser`], even while a test
//! unwinds from a failed assertion, stops it and every Chromium process it started.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

/// The key under which WebDriver returns an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The flags Chromium needs on a headless, offline, root-run machine: no sandbox (root), no GPU,
/// and none of the background traffic that a closed network refuses.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
];

/// Where Chromium and ChromeDriver are.
#[derive(Debug, Clone)]
pub(crate) struct Installation {
    /// The `chromium` binary.
    pub(crate) chromium: PathBuf,
    /// The `chromedriver` binary.
    pub(crate) chromedriver: PathBuf,
}

impl Installation {
    /// `CHROMIUM` and `CHROMEDRIVER` when set, else Debian's `/usr/bin/chromium` and
    /// `/usr/bin/chromedriver`; `None` when either is missing.
    pub(crate) fn find() -> Option<Installation> {
        let locate = |variable: &str, default: &str| {
            let path = std::env::var_os(variable)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(default));
            path.is_file().then_some(path)
        };
        Some(Installation {
            chromium: locate("CHROMIUM", "/usr/bin/chromium")?,
            chromedriver: locate("CHROMEDRIVER", "/usr/bin/chromedriver")?,
        })
    }
}

/// A failed WebDriver call.
pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;

/// One headless Chromium session, driven through its own ChromeDriver.
pub(crate) struct Browser {
    driver: Child,
    http: reqwest::Client,
    session: String,
    profile: PathBuf,
}

/// An element of the current page.
#[derive(Debug, Clone)]
pub(crate) struct Element(String);

impl Browser {
    /// Starts ChromeDriver on a free loopback port and opens a session with a fresh profile in
    /// `scratch`, with Chromium preferences `prefs` set in it as a user or an administrator's
    /// policy would set them (`{}` for none).
    pub(crate) async fn start(
        installation: &Installation,
        scratch: &Path,
        prefs: Value,
    ) -> Result<Browser, Error> {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
            probe.local_addr()?.port()
        };
        let profile = scratch.join(format!("chromium-profile-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&profile)?;
        let mut command = Command::new(&installation.chromedriver);
        command
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let driver = command.spawn()?;
        let mut browser = Browser {
            driver,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()?,
            session: String::new(),
            profile,
        };
        let base = format!("http://127.0.0.1:{port}");
        browser.wait_until_ready(&base).await?;

        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", browser.profile.display()));
        let answer = browser
            .call(
                reqwest::Method::POST,
                &format!("{base}/session"),
                Some(json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "goog:chromeOptions": {
                        "binary": installation.chromium,
                        "args": args,
                        "prefs": prefs,
                    },
                }}})),
            )
            .await?;
        let session = answer["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no sessionId in {answer}"))?;
        browser.session = format!("{base}/session/{session}");
        Ok(browser)
    }

    async fn wait_until_ready(&mut self, base: &str) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.driver.try_wait()? {
                return Err(format!("chromedriver exited at start: {status}").into());
            }
            if let Ok(response) = self.http.get(format!("{base}/status")).send().await
                && let Ok(status) = response.json::<Value>().await
                && status["value"]["ready"] == json!(true)
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err("chromedriver was not ready within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One WebDriver command; its `value`, or the WebDriver error as an `Err`.
    async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<Value>,
    ) -> Result<Value, Error> {
        let mut request = self.http.request(method.clone(), url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let mut answer: Value = response.json().await?;
        if !status.is_success() {
            return Err(format!(
                "{method} {url}: {status} {}: {}",
                answer["value"]["error"], answer["value"]["message"]
            )
            .into());
        }
        Ok(answer["value"].take())
    }

    async fn command(&self, path: &str, body: Value) -> Result<Value, Error> {
        self.call(
            reqwest::Method::POST,
            &format!("{}{path}", self.session),
            Some(body),
        )
        .await
    }

    async fn query(&self, path: &str) -> Result<Value, Error> {
        self.call(
            reqwest::Method::GET,
            &format!("{}{path}", self.session),
            None,
        )
        .await
    }

    /// Loads `url` and waits for it to finish loading.
    pub(crate) async fn goto(&self, url: &str) -> Result<(), Error> {
        self.command("/url", json!({"url": url})).await.map(drop)
    }

    /// The address of the current page.
    pub(crate) async fn url(&self) -> Result<String, Error> {
        let url = self.query("/url").await?;
        url.as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("not a URL: {url}").into())
    }

    /// The current page's title.
    pub(crate) async fn title(&self) -> Result<String, Error> {
        let title = self.query("/title").await?;
        Ok(title.as_str().unwrap_or_default().to_string())
    }

    /// The first element matching the CSS `selector`, if there is one now.
    pub(crate) async fn find(&self, selector: &str) -> Result<Option<Element>, Error> {
        let found = self
            .command(
                "/elements",
                json!({"using": "css selector", "value": selector}),
            )
            .await?;
        Ok(found
            .as_array()
            .and_then(|all| all.first())
            .and_then(|element| element[ELEMENT_KEY].as_str())
            .map(|id| Element(id.to_string())))
    }

    /// The first element matching `selector`, waiting up to `timeout` for it to appear (a click
    /// that submits a form returns before the redirects it starts have all landed).
    pub(crate) async fn wait_for(
        &self,
        selector: &str,
        timeout: Duration,
    ) -> Result<Element, Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(element) = self.find(selector).await? {
                return Ok(element);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "no `{selector}` within {timeout:?} on {} (\"{}\")",
                    self.url().await.unwrap_or_default(),
                    self.title().await.unwrap_or_default()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits up to `timeout` for the element matching `selector` to show text containing
    /// `needle` (a page that refreshes itself shows it on a later load); returns the text.
    pub(crate) async fn wait_for_text(
        &self,
        selector: &str,
        needle: &str,
        timeout: Duration,
    ) -> Result<String, Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // A refresh may replace the element between finding it and reading it.
            if let Some(element) = self.find(selector).await?
                && let Ok(text) = self.text(&element).await
                && text.contains(needle)
            {
                return Ok(text);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!("`{selector}` never showed {needle:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Clicks `element` as a user would.
    pub(crate) async fn click(&self, element: &Element) -> Result<(), Error> {
        self.command(&format!("/element/{}/click", element.0), json!({}))
            .await
            .map(drop)
    }

    /// Types `text` into `element`.
    pub(crate) async fn type_into(&self, element: &Element, text: &str) -> Result<(), Error> {
        self.command(
            &format!("/element/{}/value", element.0),
            json!({"text": text}),
        )
        .await
        .map(drop)
    }

    /// The rendered text of `element`, as a user sees it.
    pub(crate) async fn text(&self, element: &Element) -> Result<String, Error> {
        let text = self.query(&format!("/element/{}/text", element.0)).await?;
        Ok(text.as_str().unwrap_or_default().to_string())
    }

    /// Makes `frame` (an `iframe` element of the current page) the context of the commands that
    /// follow, as a user's eyes move into the embedded app.
    pub(crate) async fn enter_frame(&self, frame: &Element) -> Result<(), Error> {
        self.command("/frame", json!({"id": {ELEMENT_KEY: frame.0}}))
            .await
            .map(drop)
    }

    /// Back to the page that holds the current frame.
    pub(crate) async fn leave_frame(&self) -> Result<(), Error> {
        self.command("/frame/parent", json!({})).await.map(drop)
    }

    /// Runs `script` (a function body) in the current page or frame; what it returns.
    pub(crate) async fn execute(&self, script: &str) -> Result<Value, Error> {
        self.command("/execute/sync", json!({"script": script, "args": []}))
            .await
    }

    /// A PNG of the viewport.
    pub(crate) async fn screenshot(&self) -> Result<Vec<u8>, Error> {
        let encoded = self.query("/screenshot").await?;
        let encoded = encoded.as_str().ok_or("the screenshot is not a string")?;
        Ok(base64::engine::general_purpose::STANDARD.decode(encoded)?)
    }

    /// Ends the session (Chromium exits) and stops ChromeDriver.
    pub(crate) async fn quit(mut self) -> Result<(), Error> {
        let session = std::mem::take(&mut self.session);
        self.call(reqwest::Method::DELETE, &session, None)
            .await
            .map(drop)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: ChromeDriver and the Chromium processes it started.
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
