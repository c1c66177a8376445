//! hawkBit's DDI API as plain code (docs/ddi.md): how a DDI client proves itself, what a
//! controller id may be, the poll interval as hawkBit writes it, and the attributes a client
//! sends (`configData`) merged as its `mode` says.

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
