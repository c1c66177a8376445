//! `metrics_file`: the agent's state as Prometheus text, for node_exporter's textfile
//! collector (docs/operations.md, Metrics). Rendered from the status `--json` prints (plain
//! code over that data) and written atomically after every run, so the collector never reads
//! half a file.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use crate::agent::Agent;

/// Rewrites the metrics file, if configured. A failure to write is logged, never fails the
/// run: the metrics describe the run, they are not part of it.
pub fn write(agent: &Agent) {
    let Some(path) = &agent.cfg.metrics_file else {
        return;
    };
    let result = crate::status::json(agent)
        .map_err(|e| e.to_string())
        .and_then(|status| {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            replace(path, &render(&status, now)).map_err(|e| e.to_string())
        });
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), "cannot write the metrics file (metrics_file): {e}");
    }
}

/// Writes `text` beside `path` and renames it into place, readable by the collector.
fn replace(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The Prometheus text (format 0.0.4) of the agent's `status` (as `status --json` prints it)
/// at `now` (Unix seconds). Labels are the item's name and versions: this device's own.
pub fn render(status: &Value, now: i64) -> String {
    let mut out = String::new();
    let mut family = |name: &str, help: &str, samples: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP ferry_agent_{name} {help}");
        let _ = writeln!(out, "# TYPE ferry_agent_{name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(out, "ferry_agent_{name}{labels} {value}");
        }
    };
    family(
        "info",
        "The agent's version.",
        vec![(labels(&[("version", env!("CARGO_PKG_VERSION"))]), 1.0)],
    );
    family(
        "metrics_written_timestamp_seconds",
        "When this file was written.",
        vec![(String::new(), now as f64)],
    );
    let last_check = &status["last_check"];
    if let Some(at) = last_check["at"].as_str().and_then(unix) {
        family(
            "last_check_timestamp_seconds",
            "When the agent last checked for updates.",
            vec![(String::new(), at)],
        );
        family(
            "last_check_success",
            "1 if the last check reached its server or repository.",
            vec![(String::new(), bool_value(&last_check["ok"]))],
        );
    }
    family(
        "queued_reports",
        "Install reports waiting for the server.",
        vec![(
            String::new(),
            status["queued_reports"].as_u64().unwrap_or(0) as f64,
        )],
    );
    let items = status["items"].as_array().cloned().unwrap_or_default();
    let per_item = |f: &dyn Fn(&Value) -> Option<Sample>| {
        items
            .iter()
            .filter_map(|i| {
                let name = i["name"].as_str()?;
                let (extra, value) = f(i)?;
                let mut pairs = vec![("item", name.to_string())];
                pairs.extend(extra);
                let pairs: Vec<(&str, &str)> =
                    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
                Some((labels(&pairs), value))
            })
            .collect::<Vec<_>>()
    };
    family(
        "item_installed",
        "The version installed of each item (1 per item; none installed: no sample).",
        per_item(&|i| Some((vec![("version", i["installed"].as_str()?.to_string())], 1.0))),
    );
    family(
        "update_available",
        "1 if a newer release of the item is offered.",
        per_item(&|i| Some((vec![], bool_value(&i["update_available"])))),
    );
    family(
        "update_pending",
        "1 if a release of the item waits to be installed.",
        per_item(&|i| Some((vec![], f64::from(u8::from(!i["pending"].is_null()))))),
    );
    family(
        "install_under_way",
        "1 while an install of the item is under way (or was interrupted).",
        per_item(&|i| {
            Some((
                vec![],
                f64::from(u8::from(!i["install_under_way"].is_null())),
            ))
        }),
    );
    family(
        "last_install_timestamp_seconds",
        "When the item's last install finished.",
        per_item(&|i| Some((vec![], unix(i["last_install"]["finished_at"].as_str()?)?))),
    );
    family(
        "last_install_success",
        "1 if the item's last install succeeded.",
        per_item(&|i| {
            let outcome = i["last_install"]["outcome"].as_str()?;
            Some((vec![], f64::from(u8::from(outcome == "installed"))))
        }),
    );
    out
}

/// Labels beside the item's name, and the value, of one item's sample.
type Sample = (Vec<(&'static str, String)>, f64);

fn bool_value(v: &Value) -> f64 {
    f64::from(u8::from(v.as_bool().unwrap_or(false)))
}

fn unix(rfc3339: &str) -> Option<f64> {
    ferry_manifests::wire::parse_timestamp(rfc3339).map(|t| t.unix_timestamp() as f64)
}

/// `{k="v",…}` with the values escaped as the text format asks.
fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{k}=\"{v}\"")
        })
        .collect();
    format!("{{{}}}", inner.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_state_reads_as_one_sample_per_item_and_figure() {
        let status = json!({
            "last_check": {"at": "2026-12-06T10:00:00Z", "ok": false, "error": "server down"},
            "queued_reports": 2,
            "items": [
                {"name": "web", "installed": "1.2.0", "update_available": true,
                 "pending": {"version": "1.3.0"}, "install_under_way": null,
                 "last_install": {"outcome": "rolled_back", "finished_at": "2026-12-06T09:00:00Z"}},
                {"name": "fresh", "installed": null, "update_available": false,
                 "pending": null, "install_under_way": null, "last_install": null},
            ],
        });
        let text = render(&status, 1_700_000_000);
        for line in [
            "ferry_agent_metrics_written_timestamp_seconds 1700000000",
            "ferry_agent_last_check_timestamp_seconds 1796551200",
            "ferry_agent_last_check_success 0",
            "ferry_agent_queued_reports 2",
            "ferry_agent_item_installed{item=\"web\",version=\"1.2.0\"} 1",
            "ferry_agent_update_available{item=\"web\"} 1",
            "ferry_agent_update_available{item=\"fresh\"} 0",
            "ferry_agent_update_pending{item=\"web\"} 1",
            "ferry_agent_update_pending{item=\"fresh\"} 0",
            "ferry_agent_install_under_way{item=\"web\"} 0",
            "ferry_agent_last_install_timestamp_seconds{item=\"web\"} 1796547600",
            "ferry_agent_last_install_success{item=\"web\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        // Nothing installed, nothing installed-at: no sample rather than a made-up one.
        assert!(!text.contains("item_installed{item=\"fresh\""), "{text}");
        assert!(!text.contains("last_install_success{item=\"fresh\""));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(labels(&[("a", "x\"y\\z\nw")]), "{a=\"x\\\"y\\\\z\\nw\"}");
        assert_eq!(labels(&[]), "");
    }

    #[test]
    fn the_file_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferry.prom");
        replace(&path, "a 1\n").unwrap();
        replace(&path, "b 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "b 2\n");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left");
    }
}
