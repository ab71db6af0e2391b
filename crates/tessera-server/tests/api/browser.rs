//! The demo page in a real browser: `tests/browser/demo_page.mjs` (playwright-core driving
//! Debian's Chromium, headless) clicks through every flow of the page against a server started
//! here, and fails with node's output if any step fails. Screenshots go to
//! `target/browser-artifacts/`.
//!
//! Needs `node`, `npm ci` done in `tests/browser` and `/usr/bin/chromium`: `scripts/test`
//! installs them; without them this test fails and says what is missing (it never skips).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::*;

/// Debian's `chromium` package (`scripts/test` installs it when missing).
const CHROMIUM: &str = "/usr/bin/chromium";
/// The node project of the browser tests.
const BROWSER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser");
const SCRIPT: &str = "demo_page.mjs";
/// The script gives up by itself after 150 s; past this, it and its browser are killed.
const TIME_LIMIT: Duration = Duration::from_secs(240);

/// Fails (never skips) without node, the npm packages or Chromium.
fn assert_tools_installed() {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "`node` not found: the browser tests need Node.js 20 or later ({node:?})"
    );
    let playwright = Path::new(BROWSER_DIR).join("node_modules/playwright-core/package.json");
    assert!(
        playwright.exists(),
        "{} is missing: run `npm ci --prefix crates/tessera-server/tests/browser` \
         (scripts/test does it when node_modules is missing or stale)",
        playwright.display()
    );
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} not found: the browser tests need Debian's chromium package \
         (`apt-get install chromium`; scripts/test installs it when missing)"
    );
}

/// `target/browser-artifacts` of this workspace (or of `CARGO_TARGET_DIR`).
fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"), PathBuf::from);
    target.join("browser-artifacts")
}

/// Runs `command` in a process group of its own, killing the whole group (node and the
/// browser it started) if it has not finished within `limit`.
fn run_bounded(mut command: Command, limit: Duration) -> Output {
    use std::os::unix::process::CommandExt;
    command.process_group(0).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("node starts");
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for node") {
            break status;
        }
        if Instant::now() >= deadline {
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = child.wait();
            let out = String::from_utf8_lossy(&stdout.join().unwrap_or_default()).into_owned();
            panic!("{command:?} did not finish within {limit:?}; killed. Its output:\n{out}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: stdout.join().expect("the stdout reader"),
        stderr: stderr.join().expect("the stderr reader"),
    }
}

/// Runs the browser tests against `app`, with screenshots in `artifacts`.
async fn click_through(app: &TestApp, artifacts: PathBuf) {
    assert_tools_installed();
    let _ = std::fs::remove_file(artifacts.join("demo-page.png"));
    let mut command = Command::new("node");
    command.arg(SCRIPT).arg(&app.base).arg(&artifacts).current_dir(BROWSER_DIR);
    // The server runs on this runtime; the wait for node must not block it.
    let output = tokio::task::spawn_blocking(move || run_bounded(command, TIME_LIMIT))
        .await
        .expect("the node runner");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser tests failed ({}); screenshots in {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status,
        artifacts.display()
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    assert!(artifacts.join("demo-page.png").exists());
}

/// Cookie security off, as for plain-HTTP development (API.md): `tessera_session` without
/// `Secure`. This run takes the README's screenshot.
#[tokio::test]
async fn the_demo_page_works_in_chromium() {
    // A long retry grace, so the page's "replay within the grace" step never depends on speed.
    let app = spawn_app_with(|c| c.token.refresh_reuse_grace = secs(300)).await;
    click_through(&app, artifacts_dir()).await;
}

/// The default cookies (`__Host-` names, `Secure`), which Chromium accepts over plain HTTP
/// from a loopback address: what `tessera serve` with no configuration gives a developer.
#[tokio::test]
async fn the_demo_page_works_in_chromium_with_secure_cookies() {
    let app = spawn_app_with(|c| {
        c.cookie.secure = Some(true);
        c.token.refresh_reuse_grace = secs(300);
    })
    .await;
    assert!(app.cookie_secure);
    click_through(&app, artifacts_dir().join("secure-cookies")).await;
}
