//! A real OpenID Connect provider for a test: panva/node-oidc-provider (tests/oidc), on a
//! free loopback port, ending with the test. `scripts/test` installs it (`npm ci`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

pub struct Provider {
    child: Child,
    /// Its issuer URL (`http://127.0.0.1:PORT`).
    pub issuer: String,
}

impl Provider {
    /// Starts it with one client, `ferry`, whose secret is `secret` and whose only redirect
    /// URI is `redirect`.
    pub fn start(redirect: &str, secret: &str) -> Provider {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("oidc");
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "the test OpenID Connect provider is not installed: npm ci --prefix {} (scripts/test does)",
            dir.display()
        );
        let port = free_port();
        let child = Command::new("node")
            .current_dir(&dir)
            .arg("provider.mjs")
            .arg(port.to_string())
            .arg(redirect)
            .arg(secret)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node (apt-get install nodejs)");
        let issuer = format!("http://127.0.0.1:{port}");
        let provider = Provider { child, issuer };
        let deadline = Instant::now() + Duration::from_secs(30);
        let http = super::http();
        loop {
            let up = http
                .get(format!(
                    "{}/.well-known/openid-configuration",
                    provider.issuer
                ))
                .send()
                .is_ok_and(|r| r.status().is_success());
            if up {
                return provider;
            }
            assert!(
                Instant::now() < deadline,
                "the OpenID Connect provider did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
