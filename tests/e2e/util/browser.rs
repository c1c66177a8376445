//! A real headless Chromium for the web UI's tests, driven through chromedriver (WebDriver):
//! one chromedriver and browser session per test, in a process group of their own that ends
//! with the test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

use super::free_port;

/// chromedriver for one test, and the browser session it runs.
pub struct Browser {
    driver: Child,
    pub client: Client,
    _profile: tempfile::TempDir,
    base: String,
}

fn find_binary(names: &[&str]) -> PathBuf {
    names
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("none of {names:?} is installed (apt-get install chromium chromium-driver)")
        })
}

impl Drop for Browser {
    /// A test that panicked never reached `close`: end chromedriver and Chromium with it.
    fn drop(&mut self) {
        if let Ok(None) = self.driver.try_wait() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.driver.id())])
                .status();
            let _ = self.driver.wait();
        }
    }
}

impl Browser {
    pub async fn start(base: &str) -> Browser {
        let port = free_port();
        // In a process group of its own with the browser it starts: a test that fails
        // mid-way leaves neither running (see Drop).
        use std::os::unix::process::CommandExt as _;
        let driver = Command::new(find_binary(&["/usr/bin/chromedriver"]))
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": find_binary(&["/usr/bin/chromium"]),
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session through chromedriver");
        Browser {
            driver,
            client,
            _profile: profile,
            base: base.to_string(),
        }
    }

    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    pub async fn text(&self, css: &str) -> String {
        match self.client.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(e) => panic!("no {css} on {}: {e}", self.path().await),
        }
    }

    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    pub async fn fill(&self, css: &str, value: &str) {
        let e = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"));
        e.clear().await.ok();
        e.send_keys(value)
            .await
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Waits (bounded) until the text of `css` contains `want`, following page changes made
    /// by the page's own script (no reload).
    pub async fn wait_text(&self, css: &str, want: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let now = match self.client.find(Locator::Css(css)).await {
                Ok(e) => e.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if now.contains(want) {
                return now;
            }
            assert!(
                Instant::now() < deadline,
                "{css} never showed {want:?}; it shows {now:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether the page's script `js` (which returns a boolean) holds.
    pub async fn holds(&self, js: &str) -> bool {
        self.client
            .execute(js, vec![])
            .await
            .unwrap_or_else(|e| panic!("run {js}: {e}"))
            == serde_json::json!(true)
    }

    /// Whether `js` comes to return true within 10 s (the page may still be drawing).
    pub async fn comes_to_hold(&self, js: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.holds(js).await {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|u| u.path().to_string())
            .unwrap_or_default()
    }

    /// Waits (bounded) until the browser is on a page whose path starts with `prefix` and
    /// whose `h1` is there (a form's answer has loaded).
    pub async fn wait_path(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let p = self.path().await;
            if p.starts_with(prefix) && self.client.find(Locator::Css("h1")).await.is_ok() {
                return p;
            }
            assert!(Instant::now() < deadline, "never reached {prefix}; at {p}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Signs in with an operator token (the sign-in page's folded second form).
    pub async fn sign_in(&self, token: &str) {
        self.goto("/login?next=/").await;
        self.click("details summary").await;
        self.fill("#token-form input[name=token]", token).await;
        self.click("#token-form button[type=submit]").await;
        self.wait_text("h1", "Dashboard").await;
        assert_eq!(self.path().await, "/", "signing in lands on the dashboard");
    }

    /// Signs in as a user with their password; lands on `next`.
    pub async fn sign_in_password(&self, name: &str, password: &str, next: &str) {
        self.goto(&format!("/login?next={next}")).await;
        self.fill("#password-form input[name=name]", name).await;
        self.fill("#password-form input[name=password]", password)
            .await;
        self.click("#password-form button[type=submit]").await;
        self.wait_path(next).await;
    }

    /// Signs out (the header's button).
    pub async fn sign_out(&self) {
        self.click("header form[action='/logout'] button").await;
        self.wait_path("/login").await;
    }

    /// The `action` of every form on the page that posts.
    pub async fn post_forms(&self) -> Vec<String> {
        let v = self
            .client
            .execute(
                "return [...document.querySelectorAll('form')].filter(f => f.method === 'post').map(f => f.getAttribute('action'))",
                vec![],
            )
            .await
            .unwrap_or_else(|e| panic!("list forms: {e}"));
        serde_json::from_value(v).unwrap_or_default()
    }

    /// Saves a screenshot of the page when FERRY_UI_SCREENSHOTS names a directory.
    pub async fn screenshot(&self, name: &str) {
        if let Some(dir) = std::env::var_os("FERRY_UI_SCREENSHOTS") {
            let png = self.client.screenshot().await.expect("screenshot");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).unwrap();
        }
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}
