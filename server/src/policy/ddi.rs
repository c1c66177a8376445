//! hawkBit's DDI API as plain code (docs/ddi.md): how a DDI client proves itself, what a
//! controller id may be, the poll interval as hawkBit writes it, and the attributes a client
//! sends (`configData`) merged as its `mode` says, what its feedback on an action means,
//! and which items a DDI device takes.

use std::collections::BTreeMap;

/// How a DDI request authenticated itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DdiAuth<'a> {
    /// A device's own token (`ferryctl ddi token HOST`).
    Target(&'a str),
    /// The tenant's token, with which any controller id joins (`ferryctl ddi gateway-token`).
    Gateway(&'a str),
}

/// Most attributes one device keeps, and their sizes.
pub const MAX_ATTRIBUTES: usize = 100;
const MAX_KEY: usize = 128;
const MAX_VALUE: usize = 512;

/// `Authorization: TargetToken T` or `GatewayToken T` (the scheme's case does not matter).
pub fn authorization(header: Option<&str>) -> Result<DdiAuth<'_>, String> {
    let hint = "DDI devices send Authorization: TargetToken … (ferryctl ddi token HOST) or GatewayToken … (ferryctl ddi gateway-token)";
    let header = header.ok_or_else(|| format!("no Authorization header: {hint}"))?;
    let (scheme, token) = header
        .trim()
        .split_once(' ')
        .ok_or_else(|| format!("the Authorization header is not SCHEME TOKEN: {hint}"))?;
    let token = token.trim();
    if token.is_empty() {
        return Err(format!("the Authorization header has no token: {hint}"));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "targettoken" => Ok(DdiAuth::Target(token)),
        "gatewaytoken" => Ok(DdiAuth::Gateway(token)),
        _ => Err(format!("unknown scheme {scheme:?}: {hint}")),
    }
}

/// A controller id: 1 to 64 of letters, digits, `.`, `_`, `-` and `:` (it becomes the host's
/// name and a segment of every DDI URL).
pub fn check_controller_id(id: &str) -> Result<(), String> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'))
    {
        return Err(format!(
            "controller id {id:?}: 1 to 64 letters, digits, '.', '_', '-' or ':'"
        ));
    }
    Ok(())
}

/// `config.polling.sleep`: `HH:MM:SS`, always present (clients read nothing else there).
pub fn sleep(secs: u64) -> String {
    let secs = secs.min(99 * 3600 + 59 * 60 + 59);
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// The attributes after a `configData` of `mode` (`merge`, the default; `replace`; `remove`)
/// with `data`, each value a string (numbers and booleans are taken as their text).
pub fn merge_attributes(
    existing: &BTreeMap<String, String>,
    mode: Option<&str>,
    data: &serde_json::Map<String, serde_json::Value>,
) -> Result<BTreeMap<String, String>, String> {
    let mut incoming = BTreeMap::new();
    for (k, v) in data {
        if k.is_empty() || k.len() > MAX_KEY {
            return Err(format!("attribute name {k:?}: 1 to {MAX_KEY} bytes"));
        }
        let text = match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            other => return Err(format!("attribute {k}: {other} is not a string")),
        };
        if text.len() > MAX_VALUE {
            return Err(format!("attribute {k}: longer than {MAX_VALUE} bytes"));
        }
        incoming.insert(k.clone(), text);
    }
    let out = match mode.unwrap_or("merge") {
        "merge" => {
            let mut all = existing.clone();
            all.extend(incoming);
            all
        }
        "replace" => incoming,
        "remove" => {
            let mut all = existing.clone();
            for k in incoming.keys() {
                all.remove(k);
            }
            all
        }
        other => return Err(format!("mode {other:?}: merge, replace or remove")),
    };
    if out.len() > MAX_ATTRIBUTES {
        return Err(format!("more than {MAX_ATTRIBUTES} attributes"));
    }
    Ok(out)
}

/// What a client's feedback on an action says (`status.execution`, `status.result`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feedback {
    /// Still at work (`proceeding`, `scheduled`, `resumed`, `download`, `downloaded`): a line
    /// for the live output.
    Progress(String),
    /// `closed`: installed unless its result is `failure` (as hawkBit takes it).
    Closed { success: bool, text: String },
    /// `rejected`: the device will not take it.
    Rejected(String),
    /// `canceled`: the device stopped it.
    Canceled(String),
}

/// Most detail lines of one feedback kept, and their length.
const MAX_DETAILS: usize = 64;
const MAX_DETAIL: usize = 4096;

/// Reads a feedback body. Lenient where clients are sloppy: SWUpdate may put raw newlines
/// inside its detail strings, which strict JSON refuses.
pub fn feedback(body: &[u8]) -> Result<Feedback, String> {
    let value = lenient_json(body)?;
    let status = &value["status"];
    let execution = status["execution"]
        .as_str()
        .ok_or("the feedback has no status.execution")?;
    let finished = status["result"]["finished"].as_str().unwrap_or("none");
    let mut lines: Vec<String> = status["details"]
        .as_array()
        .map(|d| {
            d.iter()
                .take(MAX_DETAILS)
                .filter_map(|l| l.as_str())
                .map(|l| bounded(l.trim_end()))
                .collect()
        })
        .unwrap_or_default();
    let progress = &status["result"]["progress"];
    if let (Some(cnt), Some(of)) = (progress["cnt"].as_u64(), progress["of"].as_u64()) {
        lines.push(format!("({cnt} of {of})"));
    }
    let text = format!("[{execution}] {}", lines.join("\n"));
    Ok(match execution {
        "closed" => Feedback::Closed {
            success: finished != "failure",
            text,
        },
        "rejected" => Feedback::Rejected(text),
        "canceled" => Feedback::Canceled(text),
        "proceeding" | "scheduled" | "resumed" | "download" | "downloaded" => {
            Feedback::Progress(text)
        }
        other => return Err(format!(
            "unknown status.execution {other:?}: closed, proceeding, canceled, scheduled, rejected, resumed, download or downloaded"
        )),
    })
}

fn bounded(line: &str) -> String {
    let mut end = line.len().min(MAX_DETAIL);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    line[..end]
        .chars()
        .filter(|c| *c == '\n' || !c.is_control())
        .collect()
}

/// JSON, with control characters inside strings taken as their escapes.
fn lenient_json(body: &[u8]) -> Result<serde_json::Value, String> {
    let first = match serde_json::from_slice(body) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let mut fixed = Vec::with_capacity(body.len() + 16);
    let (mut in_string, mut escaped) = (false, false);
    for &b in body {
        if !in_string {
            in_string = b == b'"';
            fixed.push(b);
            continue;
        }
        match b {
            _ if escaped => {
                escaped = false;
                fixed.push(b);
            }
            b'\\' => {
                escaped = true;
                fixed.push(b);
            }
            b'"' => {
                in_string = false;
                fixed.push(b);
            }
            c if c < 0x20 => fixed.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
            _ => fixed.push(b),
        }
    }
    serde_json::from_slice(&fixed).map_err(|_| format!("the feedback is not JSON: {first}"))
}

/// What a DDI device takes: every bundle item of its catalog (`releases`), at the version it
/// last installed through this server (none before). Tarball items are the agent's.
pub fn managed(
    installed: &[ferry_manifests::wire::InstalledItem],
    releases: &[ferry_manifests::wire::ReleaseView],
) -> Vec<ferry_manifests::wire::InstalledItem> {
    let mut items: Vec<&str> = releases
        .iter()
        .filter(|r| r.bundle.is_some())
        .map(|r| r.item.as_str())
        .collect();
    items.sort_unstable();
    items.dedup();
    items
        .into_iter()
        .map(|item| ferry_manifests::wire::InstalledItem {
            item: item.to_string(),
            version: installed
                .iter()
                .find(|i| i.item == item)
                .and_then(|i| i.version.clone()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn feedback_is_read_as_clients_send_it() {
        // SWUpdate's detail with a raw newline inside the string.
        let raw = b"{\"id\":\"3\",\"status\":{\"result\":{\"finished\":\"none\",\"progress\":{\"cnt\":0,\"of\":1}},\"execution\":\"proceeding\",\"details\":[\"Installing\nchunk\"]}}";
        assert_eq!(
            feedback(raw),
            Ok(Feedback::Progress(
                "[proceeding] Installing\nchunk\n(0 of 1)".into()
            ))
        );
        let closed = |finished: &str| {
            feedback(
                json!({"status": {"execution": "closed", "result": {"finished": finished}, "details": ["done"]}})
                    .to_string()
                    .as_bytes(),
            )
        };
        assert_eq!(
            closed("success"),
            Ok(Feedback::Closed {
                success: true,
                text: "[closed] done".into()
            })
        );
        assert!(matches!(
            closed("failure"),
            Ok(Feedback::Closed { success: false, .. })
        ));
        // hawkBit takes `closed` without a result as finished.
        assert!(matches!(
            closed("none"),
            Ok(Feedback::Closed { success: true, .. })
        ));
        let rejected = json!({"status": {"execution": "rejected", "result": {"finished": "none"}}});
        assert!(matches!(
            feedback(rejected.to_string().as_bytes()),
            Ok(Feedback::Rejected(_))
        ));
        assert!(feedback(b"{\"status\":{}}").is_err());
        assert!(feedback(b"{\"status\":{\"execution\":\"exploded\"}}").is_err());
        assert!(feedback(b"not json").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn a_ddi_device_takes_the_bundle_items_of_its_catalog() {
        let release = |item: &str, bundle: Option<&str>| ferry_manifests::wire::ReleaseView {
            category: "unknown".into(),
            artifact_name: format!("{item}-1.0.0.swu"),
            artifact_size: 1,
            bundle: bundle.map(str::to_string),
            ..crate::policy::testing::release(item, "1.0.0")
        };
        let releases = [
            release("os", Some("swupdate")),
            release("os", Some("swupdate")),
            release("web", None),
        ];
        let had = [ferry_manifests::wire::InstalledItem {
            item: "os".into(),
            version: Some(semver::Version::new(1, 0, 0)),
        }];
        let managed_now = managed(&had, &releases);
        assert_eq!(managed_now.len(), 1);
        assert_eq!(managed_now[0].item, "os");
        assert_eq!(managed_now[0].version, Some(semver::Version::new(1, 0, 0)));
        assert_eq!(managed(&[], &releases)[0].version, None);
    }

    #[test]
    fn the_two_token_schemes_are_read_and_anything_else_is_refused_with_the_way_in() {
        assert_eq!(
            authorization(Some("TargetToken abc")),
            Ok(DdiAuth::Target("abc"))
        );
        assert_eq!(
            authorization(Some("gatewaytoken  xyz ")),
            Ok(DdiAuth::Gateway("xyz"))
        );
        for bad in [
            None,
            Some("Bearer abc"),
            Some("TargetToken"),
            Some("TargetToken  "),
        ] {
            let e = authorization(bad).unwrap_err();
            assert!(e.contains("ferryctl ddi token"), "{e}");
        }
    }

    #[test]
    fn sleep_is_hawkbits_hh_mm_ss() {
        assert_eq!(sleep(300), "00:05:00");
        assert_eq!(sleep(3661), "01:01:01");
        assert_eq!(sleep(5), "00:00:05");
        assert_eq!(sleep(u64::MAX), "99:59:59");
    }

    #[test]
    fn controller_ids_are_names_safe_in_a_path() {
        assert!(check_controller_id("pump-7.site_a:01").is_ok());
        for bad in ["", "a/b", "a b", "é", &"x".repeat(65)] {
            assert!(check_controller_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn attributes_merge_replace_and_remove() {
        let existing: BTreeMap<String, String> = [
            ("board".to_string(), "v1".to_string()),
            ("serial".into(), "42".into()),
        ]
        .into();
        let data = |v: serde_json::Value| v.as_object().unwrap().clone();
        let merged =
            merge_attributes(&existing, None, &data(json!({"board": "v2", "rev": 3}))).unwrap();
        assert_eq!(merged["board"], "v2");
        assert_eq!(merged["serial"], "42");
        assert_eq!(merged["rev"], "3");
        let replaced =
            merge_attributes(&existing, Some("replace"), &data(json!({"only": true}))).unwrap();
        assert_eq!(replaced.len(), 1);
        assert_eq!(replaced["only"], "true");
        let removed =
            merge_attributes(&existing, Some("remove"), &data(json!({"board": ""}))).unwrap();
        assert_eq!(removed.keys().collect::<Vec<_>>(), ["serial"]);
        assert!(merge_attributes(&existing, Some("append"), &data(json!({}))).is_err());
        assert!(merge_attributes(&existing, None, &data(json!({"x": {"y": 1}}))).is_err());
        assert!(merge_attributes(&existing, None, &data(json!({"x": "y".repeat(600)}))).is_err());
    }
}
