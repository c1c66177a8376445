//! Logs for log shippers: with `log_format = "json"` every line is one JSON object, and the
//! lines of a request carry its id, which the answer gives back in `x-request-id` and, for an
//! error, in its body; an operator's change is audited under the same id.

use crate::util::{http, World};

#[test]
fn json_log_lines_carry_the_request_id_the_answer_and_the_audit_log_give_back() {
    let w = World::with_server_config("log_format = \"json\"\n");
    w.release("1.0.0", &[]);
    let token = w.operator_token();
    let url = w.server.url();

    // An error answer names its request.
    let missing = http()
        .get(format!("{url}/api/v1/releases/web/9.9.9/manifest"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(missing.status(), 404);
    let header = missing.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let body: serde_json::Value = missing.json().unwrap();
    assert_eq!(body["request_id"], header.as_str(), "{body}");
    assert_eq!(body["code"], "not_found", "{body}");

    // A change: audited, logged, and answered under one id.
    let made = http()
        .post(format!("{url}/api/v1/tokens"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "ci", "kind": "operator"}))
        .send()
        .unwrap();
    assert!(made.status().is_success(), "{made:?}");
    let id = made.headers()["x-request-id"].to_str().unwrap().to_string();
    let audit = w.ctl_json(&["audit", "list"]);
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["request_id"] == id.as_str()),
        "{audit:#}"
    );
    let log = w.server.log_text();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["target"] == "ferry_audit"
            && l["span"]["name"] == "request"
            && l["span"]["id"] == id.as_str()),
        "no audit line under request {id}:\n{log}"
    );
}
