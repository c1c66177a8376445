//! Metrics: the server's `GET /metrics` (a token on the listener, none on `metrics_listen`),
//! checked by promtool and scraped by a real Prometheus (Debian's package), which also
//! evaluates every query of the Grafana dashboard in docs/; the agent's `metrics_file` for
//! node_exporter's textfile collector, checked by promtool too.

use std::fs;
use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::util::{eventually, free_port, http, World};

/// `promtool check metrics` on `text`: its complaints, if any.
fn promtool_check(text: &str) -> Result<(), String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is needed (Debian's prometheus package; scripts/test installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A Prometheus scraping `target` every second, its data in `dir`; stopped on drop.
struct Prometheus {
    child: Child,
    url: String,
}

impl Prometheus {
    fn start(dir: &std::path::Path, target: &str) -> Prometheus {
        fs::create_dir_all(dir).unwrap();
        let config = dir.join("prometheus.yml");
        fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: ferry\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let log = fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prometheus is needed (Debian's prometheus package; scripts/test installs it)");
        Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The answer to an instant query (`data.result`), or the error Prometheus gave.
    fn query(&self, expr: &str) -> Result<serde_json::Value, String> {
        let resp = http()
            .post(format!("{}/api/v1/query", self.url))
            .form(&[("query", expr)])
            .send()
            .map_err(|e| e.to_string())?;
        let body: serde_json::Value = resp.json().map_err(|e| e.to_string())?;
        if body["status"] == "success" {
            Ok(body["data"]["result"].clone())
        } else {
            Err(body.to_string())
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the sample `line_start` (name and labels as printed) in `text`.
fn sample(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
}

#[test]
fn the_server_and_the_agent_expose_metrics_promtool_accepts_and_prometheus_scrapes() {
    let metrics_port = free_port();
    let mut w =
        World::with_server_config(&format!("metrics_listen = \"127.0.0.1:{metrics_port}\"\n"));
    let textfile = w.path("textfile/ferry.prom");
    fs::create_dir_all(textfile.parent().unwrap()).unwrap();
    w.write_agent_config(&format!("metrics_file = \"{}\"\n", textfile.display()));
    w.release("1.0.0", &[]);
    w.agent("once").ok();
    w.trigger(Some("1.0.0"));
    w.agent("once").ok();
    assert_eq!(w.current().as_deref(), Some("releases/1.0.0"));

    // On the listener: an operator's token, or nothing.
    let url = w.server.url();
    let anonymous = http().get(format!("{url}/metrics")).send().unwrap();
    assert_eq!(anonymous.status(), 401);
    let token = w.operator_token();
    let with_token = http()
        .get(format!("{url}/metrics"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(with_token.status(), 200);

    // On metrics_listen: no token, and only /metrics.
    let open = format!("http://127.0.0.1:{metrics_port}");
    let text = http()
        .get(format!("{open}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(
        http()
            .get(format!("{open}/api/v1/hosts"))
            .send()
            .unwrap()
            .status(),
        404
    );
    promtool_check(&text).unwrap_or_else(|e| panic!("promtool: {e}\n{text}"));
    let artifact = fs::read_dir(w.server.data_dir.join("artifacts"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .max()
        .unwrap();
    assert!(
        sample(&text, "ferry_checkins_total{result=\"ok\"}").unwrap() >= 2.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "ferry_installs_total{kind=\"release\",outcome=\"installed\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            "ferry_artifact_bytes_served_total{kind=\"artifact\"}"
        )
        .unwrap()
            >= artifact as f64,
        "an artifact of {artifact} bytes was sent:\n{text}"
    );
    assert_eq!(sample(&text, "ferry_hosts"), Some(1.0), "{text}");
    let credential: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(w.path("agent-state/device.json")).unwrap())
            .unwrap();
    let device_token = credential["device_token"].as_str().unwrap();
    let host_id = credential["host_id"].as_str().unwrap();
    assert!(!device_token.is_empty());
    for secret in ["device-1", token.as_str(), device_token, host_id] {
        assert!(!text.contains(secret), "{secret} in the metrics");
    }

    // The agent's file: what a person would check on the device.
    let agent_text = fs::read_to_string(&textfile).expect("the agent wrote its metrics file");
    promtool_check(&agent_text).unwrap_or_else(|e| panic!("promtool: {e}\n{agent_text}"));
    assert!(
        agent_text
            .lines()
            .any(|l| l == "ferry_agent_item_installed{item=\"web\",version=\"1.0.0\"} 1"),
        "{agent_text}"
    );
    assert!(
        agent_text
            .lines()
            .any(|l| l == "ferry_agent_last_install_success{item=\"web\"} 1"),
        "{agent_text}"
    );
    assert!(
        agent_text
            .lines()
            .any(|l| l == "ferry_agent_last_check_success 1"),
        "{agent_text}"
    );

    // A real Prometheus scrapes it, and every query of the dashboard is one it evaluates over
    // series the server has.
    let prometheus = Prometheus::start(&w.path("prometheus"), &format!("127.0.0.1:{metrics_port}"));
    eventually(
        "Prometheus scraped the server's install count",
        Duration::from_secs(60),
        || {
            prometheus
                .query("ferry_installs_total{outcome=\"installed\",kind=\"release\"}")
                .ok()
                .and_then(|r| r[0]["value"][1].as_str().map(|v| v == "1"))
                .unwrap_or(false)
        },
    );
    let up = prometheus.query("up{job=\"ferry\"}").unwrap();
    assert_eq!(up[0]["value"][1], "1", "{up}");
    let dashboard: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../docs/grafana/ferry-server.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut queries = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            queries += 1;
            prometheus
                .query(expr)
                .unwrap_or_else(|e| panic!("{}: {expr}: {e}", panel["title"]));
            // Only series the server serves.
            for name in expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("ferry_"))
            {
                let family = name
                    .trim_end_matches("_bucket")
                    .trim_end_matches("_count")
                    .trim_end_matches("_sum");
                assert!(
                    text.lines()
                        .any(|l| l.starts_with(name) || l.starts_with(family)),
                    "the dashboard's {name} is not served:\n{text}"
                );
            }
        }
    }
    assert!(queries >= 10, "only {queries} queries in the dashboard");
}
