//! Headless Chromium for the web console's tests: a chromedriver of the test's own on a free
//! loopback port, driven over WebDriver with fantoccini, and helpers that wait for what the page
//! shows rather than for a fixed time.
//!
//! # Layout
//! - [`Browser`]: one chromedriver and its Chromium, killed together on drop (even when the test
//!   panics); navigation, `execute`, clicks and typing, window sizes, screenshots.
//! - [`Viewport`]: the two sizes the console must be usable at, which also name the screenshots.
//! - [`console_url`]: where a [`TestHost`] serves the console.
//!
//! Chromium and chromedriver are Debian's (`/usr/bin/chromium`, `/usr/bin/chromedriver`);
//! `cargo xtask test` installs them when they are missing. The network here is loopback only, so
//! Chromium runs with its background services off: otherwise it keeps trying to reach Google's
//! hosts, and on a loaded machine those failures slow every page.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::{BASE, TestHost, workspace_root};

/// Debian's ChromeDriver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Debian's Chromium (a wrapper script that chromedriver starts).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// How long a helper waits for the page to show something before it fails the test: generous,
/// since a 2-core CI machine runs these next to the load tests.
pub const PAGE_TIMEOUT: Duration = Duration::from_secs(15);
/// How often a waiting helper looks at the page again.
const POLL: Duration = Duration::from_millis(100);
/// How long chromedriver may take to listen, and Chromium to start a session.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The flags of the probe that rendered pages on this kind of machine: headless, no sandbox (the
/// tests run as root), and no background networking, component updates, sync or QUIC (nothing
/// outside loopback is reachable).
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--window-size=1280,800",
];

/// The window sizes the console is checked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Viewport {
    /// 1280x800, a laptop.
    Desktop,
    /// 390x844, a phone held upright.
    Phone,
}

impl Viewport {
    /// The inner width and height in CSS pixels.
    pub fn size(self) -> (u32, u32) {
        match self {
            Viewport::Desktop => (1280, 800),
            Viewport::Phone => (390, 844),
        }
    }

    /// The suffix of its screenshots.
    pub fn name(self) -> &'static str {
        match self {
            Viewport::Desktop => "desktop",
            Viewport::Phone => "phone",
        }
    }
}

/// `http://ADDR/admin_rest/console/`: the console of `host`.
pub fn console_url(host: &TestHost) -> String {
    format!("http://{}{BASE}/console/", host.http_addr())
}

/// Where screenshots go: `target/console-screenshots/` of the workspace root.
pub fn screenshot_dir() -> PathBuf {
    workspace_root().join("target").join("console-screenshots")
}

/// A headless Chromium driven through a chromedriver of its own. Dropping it kills both.
pub struct Browser {
    client: Client,
    /// chromedriver, leader of a process group of its own that also holds the Chromium it
    /// starts, so that one `kill(-pgid)` ends everything this browser started.
    driver: Child,
    viewport: Viewport,
    /// Chromium's `--user-data-dir`: a fresh profile per browser; removed on drop, after the
    /// processes are killed (fields drop after `Drop::drop`).
    _profile: TempDir,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and a Chromium session at the desktop size.
    pub async fn start() -> Browser {
        for binary in [CHROMEDRIVER, CHROMIUM] {
            assert!(
                std::path::Path::new(binary).exists(),
                "{binary} is missing: `cargo xtask test` installs it (apt-get install chromium chromium-driver)"
            );
        }
        let profile = tempfile::Builder::new().prefix("plughost-chromium-").tempdir().expect("a temp dir");
        // A port picked free can be taken again before chromedriver binds it; then it exits, and
        // another port is tried.
        let mut attempts = 0;
        let (driver, port) = loop {
            attempts += 1;
            match spawn_driver() {
                Ok(started) => break started,
                Err(why) if attempts < 3 => eprintln!("chromedriver did not start ({why}); trying again"),
                Err(why) => panic!("chromedriver did not start: {why}"),
            }
        };
        // Owned by the Browser before the session starts, so that a failed start kills it too.
        let mut browser = PendingDriver(Some(driver));

        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|flag| flag.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let mut capabilities = Capabilities::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert("goog:chromeOptions".into(), json!({"binary": CHROMIUM, "args": args}));
        // The console log, read for Content-Security-Policy violations and uncaught errors.
        capabilities.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities);
        let webdriver = format!("http://127.0.0.1:{port}");
        let connect = builder.connect(&webdriver);
        let client = match tokio::time::timeout(START_TIMEOUT, connect).await {
            Ok(Ok(client)) => client,
            Ok(Err(error)) => panic!("Chromium did not start a WebDriver session: {error}"),
            Err(_) => panic!("Chromium did not start a WebDriver session within {START_TIMEOUT:?}"),
        };
        let driver = browser.0.take().expect("the driver");
        let mut browser = Browser { client, driver, viewport: Viewport::Desktop, _profile: profile };
        browser.set_viewport(Viewport::Desktop).await;
        browser
    }

    /// The fantoccini client, for what the helpers do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Loads `url` (a full URL) and waits until the document has loaded.
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("loading {url}: {e}"));
    }

    /// Sets `location.hash` (`#/users`), as following a link of the page's own would.
    pub async fn go_hash(&self, hash: &str) {
        self.js("location.hash = arguments[0]; return null;", vec![json!(hash)]).await;
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) in the page; returns what it
    /// returned.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client.execute(script, args).await.unwrap_or_else(|e| panic!("running {script:?}: {e}"))
    }

    /// Polls `script` until it returns something truthy (not null, false, 0 or ""), and returns
    /// that. Fails after [`PAGE_TIMEOUT`] naming `what`, with a screenshot of the page then.
    pub async fn wait_js(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
        let start = Instant::now();
        loop {
            // A page replacing its content can make one run fail (a stale node); that is not the
            // verdict, the timeout is.
            let last = self.client.execute(script, args.clone()).await;
            match &last {
                Ok(value) if truthy(value) => return value.clone(),
                _ if start.elapsed() > PAGE_TIMEOUT => {
                    let shot = self.failure_screenshot(what).await;
                    panic!(
                        "timed out after {PAGE_TIMEOUT:?} waiting for {what}; last result {last:?}; \
                         #notice says {:?}; screenshot {shot}",
                        self.notice_text().await
                    );
                }
                _ => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// Waits until `selector` matches an element that is displayed (no `hidden` ancestor, a box).
    pub async fn wait_visible(&self, selector: &str) {
        self.wait_js(
            &format!("{selector} to be visible"),
            &format!("return {VISIBLE_JS}(document.querySelector(arguments[0]));"),
            vec![json!(selector)],
        )
        .await;
    }

    /// Waits until nothing displayed matches `selector` (removed, or hidden).
    pub async fn wait_hidden(&self, selector: &str) {
        self.wait_js(
            &format!("{selector} to be gone or hidden"),
            &format!("return ![...document.querySelectorAll(arguments[0])].some({VISIBLE_JS});"),
            vec![json!(selector)],
        )
        .await;
    }

    /// Whether `selector` matches a displayed element now.
    pub async fn is_visible(&self, selector: &str) -> bool {
        let script = format!("return {VISIBLE_JS}(document.querySelector(arguments[0]));");
        truthy(&self.js(&script, vec![json!(selector)]).await)
    }

    /// The `textContent` of the first match of `selector`, trimmed; none when nothing matches.
    pub async fn try_text(&self, selector: &str) -> Option<String> {
        let script = "const e = document.querySelector(arguments[0]); return e && e.textContent.trim();";
        self.js(script, vec![json!(selector)]).await.as_str().map(str::to_owned)
    }

    /// The `textContent` of the first match of `selector`, trimmed; fails when nothing matches.
    pub async fn text(&self, selector: &str) -> String {
        self.try_text(selector).await.unwrap_or_else(|| panic!("nothing matches {selector}"))
    }

    /// Waits until the text of `selector` satisfies `check` (see [`Browser::wait_text_is`] and
    /// [`Browser::wait_text_contains`]); returns that text.
    async fn wait_text_where(&self, what: &str, selector: &str, check: &str, needle: &str) -> String {
        let script = format!(
            "const e = document.querySelector(arguments[0]); \
             if (!e) return null; const t = e.textContent.trim(); return ({check}) ? t : null;"
        );
        let found = self.wait_js(what, &script, vec![json!(selector), json!(needle)]).await;
        found.as_str().unwrap_or_default().to_owned()
    }

    /// Waits until the trimmed text of `selector` is `expected`.
    pub async fn wait_text_is(&self, selector: &str, expected: &str) -> String {
        let what = format!("{selector} to read {expected:?}");
        self.wait_text_where(&what, selector, "t === arguments[1]", expected).await
    }

    /// Waits until the text of `selector` contains `needle`; returns the whole text.
    pub async fn wait_text_contains(&self, selector: &str, needle: &str) -> String {
        let what = format!("{selector} to contain {needle:?}");
        self.wait_text_where(&what, selector, "t.includes(arguments[1])", needle).await
    }

    /// How many elements match `selector`.
    pub async fn count(&self, selector: &str) -> usize {
        let count =
            self.js("return document.querySelectorAll(arguments[0]).length;", vec![json!(selector)]).await;
        count.as_u64().unwrap_or_default() as usize
    }

    /// Waits until `selector` is visible and enabled, then clicks it as a user would (scrolled
    /// into view, a real pointer event).
    pub async fn click(&self, selector: &str) {
        self.wait_js(
            &format!("{selector} to be clickable"),
            &format!(
                "const e = document.querySelector(arguments[0]); return {VISIBLE_JS}(e) && !e.disabled;"
            ),
            vec![json!(selector)],
        )
        .await;
        self.on_element(
            &format!("clicking {selector}"),
            selector,
            |element| async move { element.click().await },
        )
        .await;
    }

    /// Waits until `selector` is visible, empties it and types `text` into it.
    pub async fn fill(&self, selector: &str, text: &str) {
        self.wait_visible(selector).await;
        self.on_element(&format!("typing into {selector}"), selector, |element| async move {
            element.clear().await?;
            if text.is_empty() { Ok(()) } else { element.send_keys(text).await }
        })
        .await;
    }

    /// Runs `action` on the element `selector` finds, finding it again while the action fails
    /// for up to [`PAGE_TIMEOUT`]: the page rebuilds its tables when their data changes (a
    /// stale element), and a row may move while a poll lands (a click intercepted).
    async fn on_element<F, Fut>(&self, what: &str, selector: &str, action: F)
    where
        F: Fn(fantoccini::elements::Element) -> Fut,
        Fut: Future<Output = Result<(), fantoccini::error::CmdError>>,
    {
        let start = Instant::now();
        loop {
            let error = match self.client.find(Locator::Css(selector)).await {
                Ok(element) => match action(element).await {
                    Ok(()) => return,
                    Err(error) => error,
                },
                Err(error) => error,
            };
            if start.elapsed() > PAGE_TIMEOUT {
                let shot = self.failure_screenshot(what).await;
                panic!("{what}: {error}; screenshot {shot}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Chooses the option with `value` of the `<select>` `selector`.
    pub async fn select(&self, selector: &str, value: &str) {
        self.wait_visible(selector).await;
        self.on_element(&format!("choosing {value} in {selector}"), selector, |element| async move {
            element.select_by_value(value).await
        })
        .await;
    }

    /// Presses Enter in `selector` (which has the focus afterwards).
    pub async fn press_enter(&self, selector: &str) {
        self.on_element(&format!("pressing Enter in {selector}"), selector, |element| async move {
            element.send_keys("\u{E007}").await
        })
        .await;
    }

    /// Answers the open confirmation dialog (`dialog#confirm`) with yes or no; returns its text.
    pub async fn confirm(&self, yes: bool) -> String {
        self.wait_js(
            "the confirmation dialog to open",
            "return document.querySelector('dialog#confirm').open;",
            vec![],
        )
        .await;
        let text = self.text("#confirm-text").await;
        self.click(if yes { "#confirm-yes" } else { "#confirm-no" }).await;
        self.wait_js(
            "the confirmation dialog to close",
            "return !document.querySelector('dialog#confirm').open;",
            vec![],
        )
        .await;
        text
    }

    /// The text of `#notice`, if the page has one.
    pub async fn notice_text(&self) -> Option<String> {
        let script = "const e = document.querySelector('#notice'); return e && e.textContent.trim();";
        self.client.execute(script, vec![]).await.ok().and_then(|value| value.as_str().map(str::to_owned))
    }

    /// Waits until `#notice` has class `ok` (or `error` when `ok` is false) and contains `needle`;
    /// returns its text.
    pub async fn wait_notice(&self, ok: bool, needle: &str) -> String {
        let class = if ok { "ok" } else { "error" };
        let found = self
            .wait_js(
                &format!("#notice.{class} to contain {needle:?}"),
                "const e = document.querySelector('#notice'); \
                 return e && e.classList.contains(arguments[0]) && e.textContent.includes(arguments[1]) \
                     ? e.textContent.trim() : null;",
                vec![json!(class), json!(needle)],
            )
            .await;
        found.as_str().unwrap_or_default().to_owned()
    }

    /// The current window size.
    pub fn viewport(&self) -> Viewport {
        self.viewport
    }

    /// Resizes the window so that the page's viewport (`innerWidth` x `innerHeight`) is
    /// `viewport`'s size; in headless mode the window has no frame, but the size is checked
    /// rather than assumed.
    pub async fn set_viewport(&mut self, viewport: Viewport) {
        let (width, height) = viewport.size();
        let (mut outer_width, mut outer_height) = (width, height);
        for _ in 0..3 {
            self.client
                .set_window_size(outer_width, outer_height)
                .await
                .unwrap_or_else(|e| panic!("resizing to {outer_width}x{outer_height}: {e}"));
            let inner = self.js("return [innerWidth, innerHeight];", vec![]).await;
            let (inner_width, inner_height) = (as_u32(&inner[0]), as_u32(&inner[1]));
            if (inner_width, inner_height) == (width, height) {
                self.viewport = viewport;
                return;
            }
            outer_width = (outer_width + width).saturating_sub(inner_width);
            outer_height = (outer_height + height).saturating_sub(inner_height);
        }
        panic!("could not make the viewport {width}x{height}");
    }

    /// How far the whole page scrolls sideways beyond the viewport, in CSS pixels (0: not at all).
    pub async fn horizontal_overflow(&self) -> i64 {
        let overflow = self.js("return document.documentElement.scrollWidth - innerWidth;", vec![]).await;
        overflow.as_i64().unwrap_or_default()
    }

    /// Saves a PNG of the viewport as `target/console-screenshots/NAME-{desktop,phone}.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let path = dir.join(format!("{name}-{}.png", self.viewport.name()));
        crate::write_atomically(&path, &png);
        path
    }

    /// Screenshots at both sizes, checking at the phone size that the page does not scroll
    /// sideways; ends at the size it started with.
    pub async fn screenshots(&mut self, name: &str) {
        let started = self.viewport;
        for viewport in [Viewport::Desktop, Viewport::Phone] {
            self.set_viewport(viewport).await;
            if viewport == Viewport::Phone {
                let overflow = self.horizontal_overflow().await;
                assert!(overflow <= 0, "{name} scrolls sideways by {overflow}px at 390x844");
            }
            self.screenshot(name).await;
        }
        self.set_viewport(started).await;
    }

    /// A screenshot named after a failed wait; its path as text (or why there is none).
    async fn failure_screenshot(&self, what: &str) -> String {
        let name: String =
            what.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).take(60).collect();
        match self.client.screenshot().await {
            Ok(png) => {
                let path = screenshot_dir().join(format!("FAILED-{name}.png"));
                let _ = std::fs::create_dir_all(screenshot_dir());
                match std::fs::write(&path, png) {
                    Ok(()) => path.display().to_string(),
                    Err(error) => format!("not written: {error}"),
                }
            }
            Err(error) => format!("not taken: {error}"),
        }
    }

    /// The console log entries since the last call (Chromium's log is read destructively), as
    /// `LEVEL message` lines.
    pub async fn console_log(&self) -> Vec<String> {
        let entries = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .unwrap_or_else(|e| panic!("reading the console log: {e}"));
        entries
            .as_array()
            .into_iter()
            .flatten()
            .map(|entry| {
                format!(
                    "{} {}",
                    entry["level"].as_str().unwrap_or("?"),
                    entry["message"].as_str().unwrap_or("")
                )
            })
            .collect()
    }

    /// Asserts that the console log holds no Content-Security-Policy violation (an inline
    /// script or style, an outside request) and no uncaught exception.
    pub async fn assert_clean_console(&self) {
        let bad: Vec<String> = self
            .console_log()
            .await
            .into_iter()
            .filter(|line| line.contains("Content Security Policy") || line.contains("Uncaught"))
            .collect();
        assert!(bad.is_empty(), "the console logged:\n{}", bad.join("\n"));
    }

    /// Opens the console of `host` and signs in as `user`; returns when the shell is shown.
    pub async fn sign_in(&self, host: &TestHost, user: &str, password: &str) {
        self.goto(&console_url(host)).await;
        self.fill("#signin-user", user).await;
        self.fill("#signin-password", password).await;
        self.click("#signin-submit").await;
        self.wait_visible("#app").await;
        self.wait_hidden("#signin").await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.driver);
    }
}

/// A chromedriver not yet handed to a [`Browser`]: killed if the session never starts.
struct PendingDriver(Option<Child>);

impl Drop for PendingDriver {
    fn drop(&mut self) {
        if let Some(driver) = &mut self.0 {
            kill_group(driver);
        }
    }
}

/// Kills the process group led by `leader` (chromedriver and every Chromium process it started)
/// and reaps the leader.
fn kill_group(leader: &mut Child) {
    // SAFETY: kill(2) on the group whose leader is our child, not yet reaped, so its id is still
    // that group's.
    unsafe { libc::kill(-(leader.id() as libc::pid_t), libc::SIGKILL) };
    let _ = leader.wait();
}

/// Starts chromedriver on a port that was free a moment ago, in a process group of its own, and
/// waits until it says it listens. Returns it and its port.
fn spawn_driver() -> Result<(Child, u16), String> {
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map_err(|e| format!("finding a free port: {e}"))?
        .port();
    let mut driver = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("starting {CHROMEDRIVER}: {e}"))?;
    // chromedriver prints one line when it listens, and exits when the port is taken.
    let stdout = driver.stdout.take().expect("piped stdout");
    let (said, heard) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains("started successfully") {
                let _ = said.send(());
            }
        }
    });
    let listening = heard.recv_timeout(START_TIMEOUT).is_ok()
        && TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), START_TIMEOUT).is_ok();
    if listening {
        Ok((driver, port))
    } else {
        kill_group(&mut driver);
        Err(format!("chromedriver did not listen on port {port}"))
    }
}

/// A JS function of an element: whether it is displayed (it exists, no ancestor is `hidden`,
/// and it has a box).
const VISIBLE_JS: &str = "(e => !!e && !e.closest('[hidden]') && e.getClientRects().length > 0)";

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(yes) => *yes,
        Value::Number(number) => number.as_f64().is_some_and(|n| n != 0.0),
        Value::String(text) => !text.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

fn as_u32(value: &Value) -> u32 {
    value.as_u64().and_then(|n| u32::try_from(n).ok()).unwrap_or_else(|| panic!("not a size: {value}"))
}

/// chromedriver's `POST /session/ID/se/log` for the `browser` log: the page's console messages
/// since the last read (a Selenium extension, outside the W3C protocol, so fantoccini has no
/// method for it).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base_url: &url::Url, session_id: Option<&str>) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!("session/{}/se/log", session_id.unwrap_or_default()))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (hyper::Method, Option<String>) {
        (hyper::Method::POST, Some(json!({"type": "browser"}).to_string()))
    }
}
