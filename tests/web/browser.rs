//! A real browser in the tests: Debian's headless Chromium driven through
//! chromedriver (WebDriver) with fantoccini.
//!
//! Found at `GTMD_TEST_CHROMIUM` / `GTMD_TEST_CHROMEDRIVER`, else
//! `/usr/bin/chromium` and `/usr/bin/chromedriver` (`apt-get install
//! chromium chromium-driver`, which `.ci/run` does). Without them a test
//! says "skipped: …" and passes, unless `GTMD_REQUIRE_BROWSER=1` (CI).
//!
//! Each browser gets a fresh profile directory and runs with the flags this
//! machine needs (no sandbox as root, no GPU, no background networking: the
//! network is closed). chromedriver leads a process group of its own, and
//! Chromium runs in it; dropping the [`Browser`] kills the whole group, and
//! then anything still running with its profile directory.

use fantoccini::{Client, ClientBuilder, Locator};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The browser and its driver, if both are installed.
pub struct Tools {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
}

fn find(var: &str, default: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(p) => Some(PathBuf::from(p)).filter(|p| p.is_file()),
        None => Some(PathBuf::from(default)).filter(|p| p.is_file()),
    }
}

/// The tools, or `None` after saying why the test is skipped; with
/// `GTMD_REQUIRE_BROWSER=1` a missing browser fails the test instead.
pub fn browser_or_skip(test: &str) -> Option<Tools> {
    let chromium = find("GTMD_TEST_CHROMIUM", "/usr/bin/chromium");
    let chromedriver = find("GTMD_TEST_CHROMEDRIVER", "/usr/bin/chromedriver");
    if let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) {
        return Some(Tools {
            chromium,
            chromedriver,
        });
    }
    let how = "install them with `apt-get install chromium chromium-driver` (or set GTMD_TEST_CHROMIUM and GTMD_TEST_CHROMEDRIVER)";
    if std::env::var("GTMD_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
        panic!("{test}: GTMD_REQUIRE_BROWSER=1 but Chromium or chromedriver is missing: {how}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "skipped: {test}: Chromium or chromedriver is not installed; {how}"
    );
    None
}

/// A headless Chromium session, ended with its processes when dropped.
pub struct Browser {
    pub client: Client,
    _driver: Driver,
}

/// chromedriver (and the Chromium it starts) and the profile directory:
/// killed and removed when dropped, even if the session never started.
struct Driver {
    child: Option<Child>,
    profile: tempfile::TempDir,
}

/// A port nobody listens on now (chromedriver is told to take it).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    pub async fn start(tools: &Tools, width: u32, height: u32) -> Browser {
        let profile = tempfile::Builder::new()
            .prefix("gtmd-chromium")
            .tempdir()
            .unwrap();
        let port = free_port();
        let child = Command::new(&tools.chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver {
            child: Some(child),
            profile,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on {port} within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--hide-scrollbars".into(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", driver.profile.path().display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), "chrome".into());
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "binary": tools.chromium, "args": args }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session through chromedriver");
        Browser {
            client,
            _driver: driver,
        }
    }

    /// The element's text, or "" when it is not there (yet).
    pub async fn text(&self, css: &str) -> String {
        match self.client.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Poll `check` until it is true, or panic saying what never came;
    /// returns how long it took.
    pub async fn until<F, Fut>(&self, timeout: Duration, what: &str, mut check: F) -> Duration
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let start = Instant::now();
        loop {
            if check().await {
                return start.elapsed();
            }
            if start.elapsed() > timeout {
                let page = self.client.source().await.unwrap_or_default();
                panic!("timed out after {timeout:?} waiting for {what}\npage:\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let group = child.id() as i32;
            // SAFETY: kill(2) on the process group this test started.
            unsafe {
                libc::kill(-group, libc::SIGKILL);
            }
            let _ = child.wait();
        }
        // Anything of this browser that left the group.
        let mark = self.profile.path().display().to_string();
        for pid in crate::common::pids_with_arg(&mark) {
            // SAFETY: kill(2) on a process whose command line names our profile.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}
