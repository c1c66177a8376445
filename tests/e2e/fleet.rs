//! The fleet model: tags and friendly names from the device and from the operator (whose word
//! wins; only the operator's tags target campaigns), and retiring a host.

use std::fs;

use crate::util::{run, World};

#[test]
fn a_devices_tags_are_shown_as_reported_and_only_the_operators_count() {
    let w = World::with_agent_extra("tags = [\"lab\", \"eu\"]\nfriendly_name = \"Kiosk 1\"");
    w.agent("check").ok();
    let host = &w.ctl_json(&["hosts", "list"])[0];
    assert_eq!(
        host["tags"],
        serde_json::json!([]),
        "a device cannot tag itself"
    );
    assert_eq!(host["reported_tags"], serde_json::json!(["lab", "eu"]));
    assert_eq!(host["friendly_name"], "Kiosk 1");

    let edited = w.ctl_json(&[
        "hosts",
        "edit",
        "device-1",
        "--tag",
        "prod,eu-west",
        "--friendly-name",
        "Front desk",
    ]);
    assert_eq!(edited["tags"], serde_json::json!(["prod", "eu-west"]));
    // The device checking in again does not undo the operator's labels.
    w.agent("check").ok();
    let host = &w.ctl_json(&["hosts", "list"])[0];
    assert_eq!(host["tags"], serde_json::json!(["prod", "eu-west"]));
    assert_eq!(host["friendly_name"], "Front desk");
    let table = w.ctl(&["hosts", "list"]).ok();
    assert!(
        table.stdout.contains("Front desk") && table.stdout.contains("prod,eu-west"),
        "{table}"
    );

    // Clearing the operator's tags leaves none; the device's are still shown as reported.
    w.ctl_json(&["hosts", "edit", "device-1", "--tags", ""]);
    let host = &w.ctl_json(&["hosts", "list"])[0];
    assert_eq!(host["tags"], serde_json::json!([]));
    assert_eq!(host["reported_tags"], serde_json::json!(["lab", "eu"]));

    let bad = w.ctl(&["hosts", "edit", "device-1", "--tags", "Has Space"]);
    assert_eq!(bad.code, Some(1), "{bad}");
    assert!(bad.stderr.contains("tag \"Has Space\""), "{bad}");
}

#[test]
fn a_removed_host_is_gone_and_its_credential_stops_working() {
    let mut w = World::new();
    w.agent("check").ok();
    w.ctl(&["hosts", "remove", "device-1"]).ok();
    assert_eq!(w.ctl_json(&["hosts", "list"]), serde_json::json!([]));
    // Without an enrolment token the device cannot come back by itself, and says what to do.
    w.write_agent_config("");
    let cfg = std::fs::read_to_string(&w.agent_cfg)
        .unwrap()
        .replace("enrol_token_file = \"server-data/enrol.token\"\n", "");
    std::fs::write(&w.agent_cfg, cfg).unwrap();
    let run = w.agent("check").code(2);
    assert!(run.stderr.contains("does not know this device"), "{run}");
    assert!(run.stderr.contains("enrol_token"), "{run}");
    let unknown = w.ctl(&["hosts", "remove", "device-1"]);
    assert_eq!(unknown.code, Some(1));
    assert!(unknown.stderr.contains("no host"), "{unknown}");
}

#[test]
fn operator_tokens_are_created_listed_and_revoked() {
    let w = World::new();
    let created = w.ctl_json(&["tokens", "create", "--name", "ci"]);
    let token = created["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("fop_"));
    let id = created["id"].as_str().unwrap().to_string();

    // The new token works.
    let with_new_token = || {
        let mut cmd = w.ctl_command(&["hosts", "list", "--json"]);
        cmd.env("FERRY_TOKEN", &token);
        run(cmd)
    };
    with_new_token().ok();

    let listed = w.ctl_json(&["tokens", "list"]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t.get("token").is_none()),
        "a token was listed"
    );
    assert_eq!(
        listed.as_array().unwrap().len(),
        3,
        "initial operator, initial enrol, ci"
    );

    w.ctl(&["tokens", "revoke", &id]).ok();
    let refused = with_new_token().code(1);
    assert!(refused.stderr.contains("revoked"), "{refused}");

    // The last operator token cannot be revoked (that would lock every operator out).
    let first = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == "operator" && t["name"] == "initial")
        .unwrap();
    let last = w.ctl(&["tokens", "revoke", first["id"].as_str().unwrap()]);
    assert_eq!(last.code, Some(1), "{last}");
    assert!(last.stderr.contains("last operator token"), "{last}");

    // A new enrolment token enrols devices; the database never holds a token in clear.
    let enrol = w.ctl_json(&["tokens", "create", "--name", "batch-2", "--kind", "enrol"]);
    assert!(enrol["token"].as_str().unwrap().starts_with("fen_"));
    let db = w.server.database_bytes();
    assert!(!db.is_empty());
    for secret in [&token, enrol["token"].as_str().unwrap()] {
        let needle = secret.as_bytes();
        assert!(
            !db.windows(needle.len()).any(|w| w == needle),
            "a token is stored in clear"
        );
    }
}

#[test]
fn every_client_error_is_json_with_a_code_and_a_message() {
    let w = World::new();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::blocking::Client::new();
    let token = std::fs::read_to_string(w.server.data_dir.join("operator.token")).unwrap();
    let url = |p: &str| format!("{}{p}", w.server.url());
    let cases = [
        (
            http.post(url("/api/v1/updates"))
                .bearer_auth(token.trim())
                .header("content-type", "application/json")
                .body("{not json"),
            400,
            "bad_request",
        ),
        (
            http.post(url("/api/v1/updates"))
                .bearer_auth(token.trim())
                .json(&serde_json::json!({"host": 5})),
            422,
            "bad_request",
        ),
        (http.get(url("/api/v1/no-such-thing")), 404, "not_found"),
        (
            http.delete(url("/api/v1/releases"))
                .bearer_auth(token.trim()),
            405,
            "method_not_allowed",
        ),
        (http.get(url("/api/v1/hosts")), 401, "unauthorized"),
        (
            http.get(url("/api/v1/update-batches?status="))
                .bearer_auth(token.trim()),
            200,
            "",
        ),
    ];
    for (req, status, code) in cases {
        let resp = req.send().unwrap();
        assert_eq!(resp.status().as_u16(), status);
        if status >= 400 {
            let body: serde_json::Value = resp.json().unwrap();
            assert_eq!(body["code"], code, "{body}");
            assert!(!body["message"].as_str().unwrap().is_empty(), "{body}");
        }
    }
}

#[test]
fn items_are_featured_given_an_icon_and_deactivated() {
    let w = World::new();
    w.release("1.0.0", &[]);
    w.agent("check").ok();
    let items = w.ctl_json(&["items", "list"]);
    assert_eq!(items[0]["name"], "web");
    assert_eq!(items[0]["newest"], "1.0.0");
    let edited = w.ctl_json(&[
        "items",
        "edit",
        "web",
        "--featured",
        "true",
        "--icon-url",
        "https://cdn.example.org/web.svg",
    ]);
    assert_eq!(edited["featured"], true);
    assert_eq!(edited["icon_url"], "https://cdn.example.org/web.svg");
    let bad = w.ctl(&[
        "items",
        "edit",
        "web",
        "--icon-url",
        "http://insecure.example.org/x.png",
    ]);
    assert_eq!(bad.code, Some(1));
    assert!(bad.stderr.contains("https://"), "{bad}");

    // Deactivated: not offered, and not triggerable.
    w.ctl_json(&["items", "edit", "web", "--deactivate"]);
    let status = w.agent("check").ok();
    assert!(
        !w.agent("status").ok().stdout.contains("available: 1.0.0"),
        "{status}"
    );
    let refused = w.ctl(&["update", "trigger", "--host", "device-1", "--item", "web"]);
    assert_eq!(refused.code, Some(1));
    assert!(refused.stderr.contains("deactivated"), "{refused}");
    w.ctl_json(&["items", "edit", "web", "--activate"]);
    w.agent("check").ok();
    assert!(w.agent("status").ok().stdout.contains("available: 1.0.0"));
}

#[test]
fn ferryctl_takes_its_connection_and_output_flags_before_or_after_the_subcommand() {
    let w = World::new();
    w.agent("check").ok();
    let token = fs::read_to_string(w.server.data_dir.join("operator.token")).expect("token");
    let url = w.server.url();
    // Flags before the subcommand, none from the environment.
    let mut cmd = w.ctl_command(&[
        "--server",
        &url,
        "--token",
        token.trim(),
        "--json",
        "hosts",
        "list",
    ]);
    cmd.env_remove("FERRY_SERVER").env_remove("FERRY_TOKEN");
    let before = run(cmd).ok();
    let hosts: serde_json::Value = serde_json::from_str(&before.stdout).expect("JSON");
    assert_eq!(hosts[0]["hostname"], "device-1", "{before}");
    // The same flags after it.
    let mut cmd = w.ctl_command(&[
        "hosts",
        "list",
        "--json",
        "--server",
        &url,
        "--token",
        token.trim(),
    ]);
    cmd.env_remove("FERRY_SERVER").env_remove("FERRY_TOKEN");
    let after = run(cmd).ok();
    assert_eq!(before.stdout, after.stdout);
    // --help names them and their variables.
    let help = w.ctl(&["--help"]).ok();
    for word in [
        "--server",
        "--token",
        "--json",
        "FERRY_SERVER",
        "FERRY_TOKEN",
    ] {
        assert!(
            help.stdout.contains(word),
            "{word} missing from --help:\n{help}"
        );
    }
}

#[test]
fn flags_with_fixed_values_refuse_others_and_list_them() {
    let w = World::new();
    let bad = w.ctl(&["campaigns", "list", "--status", "bogus"]).code(2);
    for value in ["running", "paused", "cancelled", "completed"] {
        assert!(bad.stderr.contains(value), "{bad}");
    }
    let help = w.ctl(&["update-batches", "list", "--help"]).ok();
    assert!(help.stdout.contains("running, completed, failed"), "{help}");
    // The API refuses them too, rather than answering an empty list.
    let token = std::fs::read_to_string(w.server.data_dir.join("operator.token")).unwrap();
    let resp = crate::util::http()
        .get(format!("{}/api/v1/campaigns?status=bogus", w.server.url()))
        .bearer_auth(token.trim())
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
}

#[test]
fn a_trigger_that_cannot_work_is_refused_unless_forced() {
    let w = World::new();
    w.release("1.0.0", &[]);
    w.agent("check").ok();
    let other = w.ctl(&[
        "update",
        "trigger",
        "--host",
        "device-1",
        "--item",
        "nothing-here",
    ]);
    assert_eq!(other.code, Some(1), "{other}");
    let src = w.payload("1.0.0", None);
    let out = w.build_with("api", "1.0.0", &src, "keys/release.key", &[]);
    w.publish(&out);
    let lacking = w
        .ctl(&["update", "trigger", "--host", "device-1", "--item", "api"])
        .code(1);
    assert!(
        lacking
            .stderr
            .contains("does not manage api (its items: web)"),
        "{lacking}"
    );
    w.trigger(Some("1.0.0"));
    w.agent("once").ok();
    let again = w
        .ctl(&["update", "trigger", "--host", "device-1", "--item", "web"])
        .code(1);
    assert!(again.stderr.contains("already has web 1.0.0"), "{again}");
    assert!(again.stderr.contains("--force"), "{again}");
    w.ctl(&[
        "update", "trigger", "--host", "device-1", "--item", "web", "--force",
    ])
    .ok();
    w.agent("once").ok();
    let last = w.history().pop().unwrap();
    assert_eq!(last["status"], "installed", "{last}");
}

#[test]
fn ids_may_be_given_as_unique_prefixes() {
    let w = World::new();
    w.release("1.0.0", &[]);
    w.agent("check").ok();
    let job = w.trigger(Some("1.0.0"));
    let id = job["id"].as_str().unwrap().to_string();
    let shown = w.ctl_json(&["history", "show", &id[..8]]);
    assert_eq!(shown["id"], id.as_str());
    let host = w.ctl_json(&["hosts", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let c = w.campaign("1.0.0", &["--host", &host[..6]]);
    let cid = c["id"].as_str().unwrap().to_string();
    let paused = w.ctl_json(&["campaigns", "pause", &cid[..5]]);
    assert_eq!(paused["status"], "paused");
    let short = w.ctl(&["campaigns", "show", &cid[..2]]).code(1);
    assert!(short.stderr.contains("at least 4"), "{short}");
}

#[test]
fn a_release_of_thirty_thousand_files_publishes_and_a_too_large_body_is_json() {
    let w = World::new();
    let src = w.payload("1.0.0", None);
    let many = src.join("many");
    for d in 0..30 {
        let dir = many.join(format!("d{d:02}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..1000 {
            fs::write(dir.join(format!("f{f:04}")), format!("{d}-{f}")).unwrap();
        }
    }
    let out = w.build("1.0.0", &src, &[]);
    let envelope = fs::metadata(out.join("web-1.0.0.manifest.json"))
        .unwrap()
        .len();
    assert!(
        envelope > 4 * 1024 * 1024,
        "the test wants a large envelope, not {envelope} bytes"
    );
    w.publish(&out);
    assert_eq!(
        w.ctl_json(&["releases", "list"]).as_array().unwrap().len(),
        1
    );

    let token = fs::read_to_string(w.server.data_dir.join("operator.token")).unwrap();
    let resp = crate::util::http()
        .post(format!("{}/api/v1/releases", w.server.url()))
        .bearer_auth(token.trim())
        .header("content-type", "application/json")
        .body(vec![b' '; 32 * 1024 * 1024 + 1])
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    let body: serde_json::Value = resp.json().unwrap();
    assert_eq!(body["code"], "too_large", "{body}");
}

/// What a device reports is shown escaped: a report whose message holds terminal escapes
/// (a clipboard write, a cleared screen, a forged line) reaches `ferryctl history` as text.
#[test]
fn escapes_in_what_a_device_reports_are_shown_as_text() {
    let w = World::new();
    w.agent("check").ok();
    let cred: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(w.path("agent-state/device.json")).unwrap())
            .unwrap();
    let message = "done\u{1b}]52;c;ZXZpbA==\u{7}\u{1b}[2J\r\nforged line";
    let report = serde_json::json!({"reports": [{
        "report_id": "escapes-1", "item": "web", "version": "1.0.0", "outcome": "installed",
        "message": message, "output": "",
        "started_at": "2026-01-01T00:00:00.000Z", "finished_at": "2026-01-01T00:00:01.000Z"
    }]});
    let status = crate::util::http()
        .post(format!("{}/api/v1/device/reports", w.server.url()))
        .bearer_auth(cred["device_token"].as_str().unwrap())
        .json(&report)
        .send()
        .unwrap()
        .status();
    assert!(status.is_success(), "{status}");
    let id = w.history()[0]["id"].as_str().unwrap().to_string();
    for shown in [
        w.ctl(&["history", "list"]).ok(),
        w.ctl(&["history", "show", &id]).ok(),
    ] {
        assert!(
            !shown.stdout.contains('\u{1b}') && !shown.stdout.contains('\u{7}'),
            "{shown}"
        );
        assert!(
            shown.stdout.contains("done\\u{1b}]52;c;ZXZpbA=="),
            "{shown}"
        );
    }
}

/// The database (hook output, terminal transcripts) is the server's alone even in a data
/// directory others may read, which the server warns about.
#[test]
fn the_database_is_private_in_a_data_directory_others_can_read() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).unwrap();
    let server = crate::util::Server::start_on(&data, None, None);
    let status = crate::util::http()
        .get(format!("{}/healthz", server.url()))
        .send()
        .unwrap()
        .status();
    assert!(status.is_success());
    for name in ["ferry.db", "ferry.db-wal"] {
        let path = data.join(name);
        if name == "ferry.db" || path.exists() {
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name} is {mode:o}");
        }
    }
    assert!(
        server.log_text().contains("readable by others"),
        "{}",
        server.log_text()
    );
}
