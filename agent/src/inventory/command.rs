//! The `command` source: software a command reports as JSON (npm globals, pip, flatpak, a
//! vendor tool). The command runs with `/bin/sh -c`, stdin closed, bounded in time; it prints
//! a JSON array of `{"name", "installed", "latest"?, "category"?}` (docs/sources.md).

use ferry_manifests::manifest::Category;
use ferry_manifests::wire::{InventoryPackage, MAX_INVENTORY};
use serde::Deserialize;

use crate::config::CommandSource;
use crate::error::Error;

/// One entry of a command's output.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    installed: String,
    #[serde(default)]
    latest: Option<String>,
    #[serde(default)]
    category: Option<Category>,
}

/// Most a check may print: 50,000 entries of a few hundred bytes.
pub const MAX_OUTPUT: u64 = 32 * 1024 * 1024;

/// Runs the source's check and reads what it printed.
pub fn read(source: &CommandSource) -> Result<Vec<InventoryPackage>, Error> {
    let ran = super::run_bounded(
        std::process::Command::new("/bin/sh").args(["-c", &source.check]),
        source.timeout,
        MAX_OUTPUT,
    )
    .map_err(|e| failed(source, format!("cannot run its check: {e}")))?;
    if ran.ok && ran.len > MAX_OUTPUT {
        return Err(failed(
            source,
            format!("its check printed {} bytes; at most {MAX_OUTPUT}", ran.len),
        ));
    }
    if !ran.ok {
        return Err(failed(
            source,
            format!(
                "its check {}; it printed: {}",
                if ran.status.contains("timed out") {
                    ran.status
                } else {
                    format!("exited with {}", ran.status)
                },
                excerpt(&ran.text)
            ),
        ));
    }
    parse(&source.name, &ran.text).map_err(|why| failed(source, why))
}

fn failed(source: &CommandSource, why: String) -> Error {
    Error::Source {
        name: source.name.clone(),
        why,
    }
}

/// The start of what a command printed, on one line, for a message.
fn excerpt(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None if one_line.is_empty() => "nothing".into(),
        None => one_line,
    }
}

/// A command's output as the source's packages: an entry without an upgrade has no
/// category, one whose `latest` equals `installed` has no upgrade.
pub fn parse(source: &str, text: &str) -> Result<Vec<InventoryPackage>, String> {
    let entries: Vec<Entry> = serde_json::from_str(text).map_err(|e| {
        format!(
            "its check printed no JSON array of {{\"name\", \"installed\", \"latest\", \"category\"}} ({e}): {}",
            excerpt(text)
        )
    })?;
    if entries.len() > MAX_INVENTORY {
        return Err(format!(
            "its check printed {} entries; at most {MAX_INVENTORY}",
            entries.len()
        ));
    }
    entries
        .into_iter()
        .map(|e| {
            let ok = |s: &str| !s.is_empty() && s.len() <= 256 && !s.chars().any(char::is_control);
            if !ok(&e.name) || !ok(&e.installed) || !e.latest.as_deref().is_none_or(ok) {
                return Err(format!(
                    "entry {:?} {:?}: a name and versions are 1-256 characters without control characters",
                    e.name, e.installed
                ));
            }
            let latest = e.latest.filter(|l| *l != e.installed);
            Ok(InventoryPackage {
                source: source.to_string(),
                category: latest
                    .as_ref()
                    .map(|_| e.category.unwrap_or(Category::Unknown)),
                name: e.name,
                version: e.installed,
                latest,
                release: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_commands_json_becomes_the_sources_packages() {
        let got = parse(
            "npm",
            r#"[{"name": "typescript", "installed": "5.4.5", "latest": "5.6.2", "category": "feature"},
                {"name": "npm", "installed": "10.8.1", "latest": "10.8.1"},
                {"name": "left-pad", "installed": "1.3.0", "latest": "1.3.1"}]"#,
        )
        .unwrap();
        let view: Vec<_> = got
            .iter()
            .map(|p| {
                (
                    p.source.as_str(),
                    p.name.as_str(),
                    p.latest.as_deref(),
                    p.category,
                )
            })
            .collect();
        assert_eq!(
            view,
            [
                ("npm", "typescript", Some("5.6.2"), Some(Category::Feature)),
                // Latest is what is installed: no upgrade.
                ("npm", "npm", None, None),
                ("npm", "left-pad", Some("1.3.1"), Some(Category::Unknown)),
            ]
        );
    }

    #[test]
    fn garbage_is_refused_with_what_was_printed() {
        let e = parse("npm", "npm ERR! something broke\n").unwrap_err();
        assert!(e.contains("no JSON array"), "{e}");
        assert!(e.contains("npm ERR! something broke"), "{e}");
        let e = parse("npm", r#"[{"name": "x"}]"#).unwrap_err();
        assert!(e.contains("installed"), "{e}");
        let e = parse(
            "npm",
            r#"[{"name": "x", "installed": "1", "category": "urgent"}]"#,
        )
        .unwrap_err();
        assert!(e.contains("urgent"), "{e}");
        let e = parse("npm", r#"[{"name": "", "installed": "1"}]"#).unwrap_err();
        assert!(e.contains("1-256"), "{e}");
    }

    fn source(check: &str, timeout: Duration) -> CommandSource {
        CommandSource {
            install: None,
            name: "tool".into(),
            check: check.into(),
            timeout,
        }
    }

    #[test]
    fn a_check_that_fails_or_hangs_is_an_error_naming_the_source() {
        let e = read(&source("echo oops; exit 3", Duration::from_secs(10)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("tool"), "{e}");
        assert!(e.contains("exit status: 3"), "{e}");
        assert!(e.contains("oops"), "{e}");
        let started = Instant::now();
        let e = read(&source("sleep 30", Duration::from_millis(300)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("timed out"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let ok = read(&source(
            r#"echo '[{"name": "a", "installed": "1"}]'"#,
            Duration::from_secs(10),
        ))
        .unwrap();
        assert_eq!(ok.len(), 1);
        // Far more than a pipe or a log excerpt holds: read whole.
        let many = read(&source(
            r#"printf '['; i=0; while [ $i -lt 3000 ]; do printf '{"name": "package-number-%d", "installed": "1.0.%d"},' $i $i; i=$((i+1)); done; printf '{"name": "last", "installed": "1"}]'"#,
            Duration::from_secs(30),
        ))
        .unwrap();
        assert_eq!(many.len(), 3001);
    }
}
