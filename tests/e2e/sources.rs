//! Software on the host besides Ferry's items: the agent reads this machine's real dpkg
//! database (`[[sources]] kind = "apt"`), sends it once, and the fleet can be asked which
//! hosts have a package, and which have it older than a version.

use std::process::Command;

use crate::util::World;

/// This machine's installed version of `package`, as dpkg says it.
fn dpkg_version(package: &str) -> String {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", package])
        .output()
        .expect("dpkg-query (a Debian system)");
    assert!(out.status.success(), "dpkg-query {package}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn the_hosts_debian_packages_are_searchable_fleet_wide() {
    let w = World::new();
    // The host's own lists are read as they are; refreshing them would leave loopback.
    let d = w.add_device(
        "deb-host",
        "[[sources]]\nkind = \"apt\"\nrefresh_interval_secs = 0\n",
    );
    let first = d.run("check").ok();
    assert!(
        first.stderr.contains("sent the installed software"),
        "{first}"
    );
    // Unchanged: only the digest goes again.
    let again = d.run("check").ok();
    assert!(
        !again.stderr.contains("sent the installed software"),
        "{again}"
    );

    let version = dpkg_version("dpkg");
    let hits = w.ctl_json(&["packages", "search", "dpkg"]);
    let hit = &hits[0];
    assert_eq!(hit["hostname"], "deb-host", "{hits}");
    assert_eq!(hit["source"], "apt");
    assert_eq!(hit["version"], version.as_str());
    // Older than a far newer version: listed; older than an ancient one: not.
    let newer = w.ctl_json(&["packages", "search", "dpkg", "--older-than", "999"]);
    assert_eq!(newer.as_array().unwrap().len(), 1, "{newer}");
    let older = w.ctl_json(&["packages", "search", "dpkg", "--older-than", "0.1"]);
    assert_eq!(older, serde_json::json!([]));
    let text = w.ctl(&["packages", "search", "no-such-package"]).ok();
    assert!(
        text.stdout.contains("no host has no-such-package"),
        "{text}"
    );
    // A host without sources reports none.
    w.agent("check").ok();
    assert_eq!(
        w.ctl_json(&["packages", "search", "dpkg"])
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The same question in the browser.
    let token = w.operator_token();
    crate::util::browser::block_on(async {
        let b = crate::util::browser::Browser::start(&w.server.url()).await;
        b.sign_in(&token).await;
        b.goto("/packages").await;
        b.fill("input[name=name]", "dpkg").await;
        b.click("form.filters button").await;
        b.wait_text("#packages", "deb-host").await;
        assert!(b.text("#packages").await.contains(&version));
        b.fill("input[name=older_than]", "0.1").await;
        b.click("form.filters button").await;
        b.wait_text("#no-hits", "No host has dpkg older than 0.1")
            .await;
        b.close().await;
    });
}

/// A package purged on the device (gone from its dpkg database) is gone from the server at
/// the next check: the list is replaced whole when its digest changes.
#[test]
fn a_purged_package_disappears_from_the_server() {
    let w = World::new();
    let status = w.path("dpkg-status");
    let real = std::fs::read_to_string("/var/lib/dpkg/status").expect("a Debian system");
    std::fs::write(&status, &real).unwrap();
    let d = w.add_device(
        "purging",
        &format!(
            "[[sources]]\nkind = \"apt\"\ndpkg_status = \"{}\"\nrefresh_interval_secs = 0\n",
            status.display()
        ),
    );
    d.run("check").ok();
    assert_eq!(
        w.ctl_json(&["packages", "search", "dpkg"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // dpkg's own paragraph removed, as a purge removes a package's.
    let kept: Vec<&str> = real
        .split("\n\n")
        .filter(|p| !p.lines().any(|l| l == "Package: dpkg"))
        .collect();
    std::fs::write(&status, kept.join("\n\n")).unwrap();
    let run = d.run("check").ok();
    assert!(run.stderr.contains("sent the installed software"), "{run}");
    assert_eq!(
        w.ctl_json(&["packages", "search", "dpkg"]),
        serde_json::json!([])
    );
    // The rest is still there.
    let version = dpkg_version("apt");
    let apt = w.ctl_json(&["packages", "search", "apt"]);
    assert_eq!(apt[0]["version"], version.as_str(), "{apt}");
}

/// A `command` source: what its check prints is the host's software of that source; a check
/// that prints garbage or hangs is named in the log, and the server keeps the list it had.
#[test]
fn a_command_source_reports_what_its_check_prints_and_bad_output_loses_nothing() {
    let w = World::new();
    let out = w.path("npm.json");
    std::fs::write(
        &out,
        r#"[{"name": "typescript", "installed": "5.4.5", "latest": "5.6.2", "category": "feature"},
            {"name": "npm", "installed": "10.8.1"}]"#,
    )
    .unwrap();
    let script = w.path("npm-check.sh");
    std::fs::write(&script, format!("cat {}\n", out.display())).unwrap();
    let d = w.add_device(
        "node-host",
        &format!(
            "[[sources]]\nkind = \"command\"\nname = \"npm\"\ncheck = \"sh {}\"\ntimeout_secs = 2\n",
            script.display()
        ),
    );
    d.run("check").ok();
    let ts = w.ctl_json(&["packages", "search", "typescript"]);
    assert_eq!(ts[0]["source"], "npm", "{ts}");
    assert_eq!(ts[0]["version"], "5.4.5", "{ts}");
    assert_eq!(ts[0]["latest"], "5.6.2", "{ts}");
    assert_eq!(ts[0]["category"], "feature", "{ts}");

    // Garbage: the run says which source and what it printed; nothing is lost on the server.
    std::fs::write(&out, "npm ERR! code ENOTFOUND\n").unwrap();
    let bad = d.run("check").ok();
    assert!(bad.stderr.contains("\"npm\""), "{bad}");
    assert!(bad.stderr.contains("npm ERR! code ENOTFOUND"), "{bad}");
    assert_eq!(
        w.ctl_json(&["packages", "search", "typescript"])[0]["version"],
        "5.4.5"
    );

    // A check that hangs is killed at its timeout; the run goes on and ends.
    std::fs::write(&script, "sleep 60\n").unwrap();
    let started = std::time::Instant::now();
    let hung = d.run("check").ok();
    assert!(hung.stderr.contains("timed out after 2 s"), "{hung}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_eq!(
        w.ctl_json(&["packages", "search", "npm"])[0]["version"],
        "10.8.1"
    );
}

/// A `command` source with an `install`: `batch-host` runs it once with the packages of the
/// chosen category as its arguments, and the history keeps its output and the versions its
/// check read before and after. A source without `install` is reported failed, saying so.
#[test]
fn a_command_sources_install_upgrades_the_packages_named_and_records_the_versions() {
    let w = World::new();
    let state = w.path("pip");
    std::fs::create_dir_all(&state).unwrap();
    for (name, version) in [("requests", "2.31.0"), ("flask", "3.0.0")] {
        std::fs::write(state.join(name), version).unwrap();
    }
    // The check prints what is installed, and the upgrade each package has.
    let check = w.path("pip-check.sh");
    std::fs::write(
        &check,
        format!(
            r#"cd {dir}; printf '['; sep=
for p in *; do v=$(cat "$p"); case "$p" in
  requests) l=2.32.3; c=security;; flask) l=3.1.0; c=feature;; *) l=; c=;; esac
  if [ -n "$l" ] && [ "$l" != "$v" ]; then printf '%s{{"name":"%s","installed":"%s","latest":"%s","category":"%s"}}' "$sep" "$p" "$v" "$l" "$c"
  else printf '%s{{"name":"%s","installed":"%s"}}' "$sep" "$p" "$v"; fi; sep=,
done; printf ']'
"#,
            dir = state.display()
        ),
    )
    .unwrap();
    let install = w.path("pip-install.sh");
    std::fs::write(
        &install,
        format!(
            r#"cd {dir}; for p in "$@"; do echo "upgrading $p"; case "$p" in requests) echo 2.32.3 > requests;; flask) echo 3.1.0 > flask;; esac; done
"#,
            dir = state.display()
        ),
    )
    .unwrap();
    let d = w.add_device(
        "py-host",
        &format!(
            "[[sources]]\nkind = \"command\"\nname = \"pip\"\ncheck = \"sh {}\"\ninstall = 'sh {} \"$@\"'\n",
            check.display(),
            install.display()
        ),
    );
    d.run("check").ok();
    assert_eq!(
        w.ctl_json(&["packages", "search", "requests"])[0]["latest"],
        "2.32.3"
    );
    w.ctl(&["update", "batch-host", "py-host", "--category", "security"])
        .ok();
    let run = d.run("once");
    assert_eq!(run.code, Some(0), "{run}");
    assert_eq!(
        std::fs::read_to_string(state.join("requests"))
            .unwrap()
            .trim(),
        "2.32.3"
    );
    assert_eq!(
        std::fs::read_to_string(state.join("flask")).unwrap().trim(),
        "3.0.0",
        "flask's upgrade is a feature, not security"
    );
    let history = w.ctl_json(&["history", "list", "--host", "py-host"]);
    let entry = &history[0];
    assert_eq!(entry["item"], "pip packages", "{history}");
    assert_eq!(entry["status"], "installed", "{history}");
    let shown = w.ctl_json(&["history", "show", entry["id"].as_str().unwrap()]);
    assert_eq!(
        shown["packages"],
        serde_json::json!([{"name": "requests", "from": "2.31.0", "to": "2.32.3"}]),
        "{shown}"
    );
    assert!(
        shown["output"]
            .as_str()
            .unwrap()
            .contains("upgrading requests"),
        "{shown}"
    );
    // The text view lists the versions.
    let text = w
        .ctl(&["history", "show", entry["id"].as_str().unwrap()])
        .ok();
    assert!(text.stdout.contains("requests"), "{text}");
    assert!(text.stdout.contains("2.31.0"), "{text}");

    // A source without `install`: tracked, not upgraded, and the history says why.
    let other = w.add_device(
        "py-host-2",
        &format!(
            "[[sources]]\nkind = \"command\"\nname = \"pip\"\ncheck = \"sh {}\"\n",
            check.display()
        ),
    );
    std::fs::write(state.join("requests"), "2.31.0").unwrap();
    other.run("check").ok();
    w.ctl(&[
        "update",
        "batch-host",
        "py-host-2",
        "--category",
        "security",
    ])
    .ok();
    let failed = other.run("once");
    assert_ne!(failed.code, Some(0), "{failed}");
    let history = w.ctl_json(&["history", "list", "--host", "py-host-2"]);
    assert_eq!(history[0]["status"], "failed", "{history}");
    assert!(
        history[0]["message"]
            .as_str()
            .unwrap()
            .contains("has no `install` command"),
        "{history}"
    );
}

/// `forge` sources against a server that answers as Gitea's and GitHub's release APIs do
/// (static files of their documented `releases/latest` answers; no Gitea or Forgejo can be
/// built on this machine): the newer release is reported with its page, date and the start
/// of its notes; an installed version already at the newest reports no upgrade; a repository
/// the forge does not know (404) is named in the log and reports no upgrade; a batch never
/// plans a forge's release.
#[test]
fn a_forges_newest_release_is_reported_with_its_page_and_notes() {
    let w = World::new();
    let site = w.path("forge");
    let answer = |path: &str, tag: &str, body: &str| {
        let file = site.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(
            &file,
            serde_json::json!({
                "id": 7, "tag_name": tag, "name": tag, "draft": false, "prerelease": false,
                "html_url": format!("https://git.example.org/{path}"),
                "published_at": "2026-11-30T12:00:00Z",
                "body": body,
            })
            .to_string(),
        )
        .unwrap();
    };
    answer(
        "api/v1/repos/acme/tool/releases/latest",
        "v1.5.0",
        &format!("## Fixes\n- the crash on start\n{}", "more ".repeat(200)),
    );
    answer("repos/acme/gh-tool/releases/latest", "2.0.0", "same");
    let mut server = std::process::Command::new("python3")
        .args(["-u", "-m", "http.server", "--bind", "127.0.0.1", "0"])
        .current_dir(&site)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let port = line
        .split_whitespace()
        .skip_while(|w| *w != "port")
        .nth(1)
        .unwrap()
        .to_string();
    let base = format!("http://127.0.0.1:{port}");
    let d = w.add_device(
        "forge-host",
        &format!(
            "[[sources]]\nkind = \"forge\"\nname = \"tool\"\napi = \"gitea\"\nurl = \"{base}\"\nrepo = \"acme/tool\"\ninstalled = \"echo tool version v1.4.2\"\n\n\
             [[sources]]\nkind = \"forge\"\nname = \"gh-tool\"\napi = \"github\"\nurl = \"{base}\"\nrepo = \"acme/gh-tool\"\ninstalled = \"echo 2.0.0\"\n\n\
             [[sources]]\nkind = \"forge\"\nname = \"gone\"\napi = \"forgejo\"\nurl = \"{base}\"\nrepo = \"acme/renamed\"\ninstalled = \"echo 0.9\"\n"
        ),
    );
    let run = d.run("check").ok();
    assert!(
        run.stderr.contains("404") && run.stderr.contains("acme/renamed"),
        "{run}"
    );
    let tool = w.ctl_json(&["packages", "search", "tool"]);
    assert_eq!(tool[0]["source"], "forge", "{tool}");
    assert_eq!(tool[0]["version"], "1.4.2", "{tool}");
    assert_eq!(tool[0]["latest"], "1.5.0", "{tool}");
    let release = &tool[0]["release"];
    assert_eq!(
        release["url"],
        "https://git.example.org/api/v1/repos/acme/tool/releases/latest"
    );
    assert_eq!(release["published_at"], "2026-11-30T12:00:00Z");
    let summary = release["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("## Fixes\n- the crash on start"),
        "{summary}"
    );
    assert!(summary.chars().count() <= 500, "{summary}");
    let gh = w.ctl_json(&["packages", "search", "gh-tool"]);
    assert_eq!(gh[0]["version"], "2.0.0");
    assert_eq!(gh[0].get("latest"), None, "already the newest: {gh}");
    let gone = w.ctl_json(&["packages", "search", "gone"]);
    assert_eq!(gone[0]["version"], "0.9");
    assert_eq!(gone[0].get("latest"), None, "{gone}");

    // News of upstream, not an install: a host batch has nothing to do.
    let batch = w.ctl(&["update", "batch-host", "forge-host"]);
    assert_ne!(batch.code, Some(0), "{batch}");
    assert!(batch.stderr.contains("nothing to do"), "{batch}");
    let _ = server.kill();
    let _ = server.wait();
}

/// After the first whole list, a device sends only what changed (a delta against the list the
/// server has), and the server's list is what the device has.
#[test]
fn a_changed_list_goes_as_a_delta() {
    let w = World::new();
    let out = w.path("many.json");
    let write = |changed: &str| {
        let mut entries: Vec<serde_json::Value> = (0..2000)
            .map(|i| serde_json::json!({"name": format!("pkg{i:04}"), "installed": "1.0"}))
            .collect();
        entries[7] = serde_json::json!({"name": "pkg0007", "installed": changed});
        entries.pop();
        std::fs::write(&out, serde_json::Value::Array(entries).to_string()).unwrap();
    };
    write("1.0");
    let script = w.path("many.sh");
    std::fs::write(&script, format!("cat {}\n", out.display())).unwrap();
    let d = w.add_device(
        "many-host",
        &format!(
            "[[sources]]\nkind = \"command\"\nname = \"pip\"\ncheck = \"sh {}\"\n",
            script.display()
        ),
    );
    let first = d.run("check").ok();
    assert!(
        first.stderr.contains("sent the installed software"),
        "{first}"
    );
    assert!(
        !first.stderr.contains("what changed"),
        "the first list goes whole: {first}"
    );
    // One package upgraded, one gone, one new.
    write("2.0");
    let mut list: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    list.as_array_mut().unwrap().remove(0);
    list.as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "newcomer", "installed": "0.1"}));
    std::fs::write(&out, list.to_string()).unwrap();
    let second = d.run("check").ok();
    assert!(second.stderr.contains("what changed"), "{second}");
    assert!(second.stderr.contains("changed=2"), "{second}");
    assert!(second.stderr.contains("removed=1"), "{second}");
    assert_eq!(
        w.ctl_json(&["packages", "search", "pkg0007"])[0]["version"],
        "2.0"
    );
    assert_eq!(
        w.ctl_json(&["packages", "search", "pkg0000"]),
        serde_json::json!([])
    );
    assert_eq!(
        w.ctl_json(&["packages", "search", "newcomer"])[0]["version"],
        "0.1"
    );
    let hosts = w.ctl_json(&["packages", "search", "pkg1998"]);
    assert_eq!(hosts[0]["hostname"], "many-host", "{hosts}");
    // Nothing changed: nothing is sent.
    let third = d.run("check").ok();
    assert!(
        !third.stderr.contains("sent the installed software"),
        "{third}"
    );
}

/// Software a host's source found, featured by an operator, is an update entity of its own in
/// Home Assistant (installed, the upgrade offered); Install on it upgrades that package
/// through the source; when the host no longer has it, its entity is cleared from the broker.
#[test]
fn featured_software_is_an_entity_of_its_own_with_install() {
    let dir = tempfile::tempdir().unwrap();
    let broker = crate::util::broker::Broker::start(dir.path());
    let w = World::with_server_config(&format!(
        "[[mqtt]]\nname = \"test\"\nurl = \"mqtt://127.0.0.1:{}\"\ntopic_prefix = \"ferry\"\n",
        broker.port
    ));
    let watcher = crate::util::broker::Watcher::start(broker.port, "featured-watcher");
    let state = w.path("npm");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("typescript"), "5.4.5").unwrap();
    let check = w.path("npm-check.sh");
    std::fs::write(
        &check,
        format!(
            "cd {}; [ -e typescript ] || {{ echo '[]'; exit 0; }}; v=$(cat typescript); if [ \"$v\" = 5.6.2 ]; then echo '[{{\"name\":\"typescript\",\"installed\":\"5.6.2\"}}]'; else echo \"[{{\\\"name\\\":\\\"typescript\\\",\\\"installed\\\":\\\"$v\\\",\\\"latest\\\":\\\"5.6.2\\\",\\\"category\\\":\\\"feature\\\"}}]\"; fi\n",
            state.display()
        ),
    )
    .unwrap();
    let install = w.path("npm-install.sh");
    std::fs::write(
        &install,
        format!(
            "cd {}; echo \"installing $*\"; echo 5.6.2 > typescript\n",
            state.display()
        ),
    )
    .unwrap();
    let d = w.add_device(
        "node-host",
        &format!(
            "[[sources]]\nkind = \"command\"\nname = \"npm\"\ncheck = \"sh {}\"\ninstall = 'sh {} \"$@\"'\n",
            check.display(),
            install.display()
        ),
    );
    d.run("check").ok();
    w.ctl(&["items", "edit", "typescript", "--featured", "true"])
        .ok();
    let host = w.ctl_json(&["packages", "search", "typescript"])[0]["host_id"]
        .as_str()
        .unwrap()
        .to_string();
    let item = format!("ferry/hosts/{host}/items/typescript");
    watcher.wait_for(&format!("{item}/state"), "5.4.5");
    watcher.wait_for(&format!("{item}/latest_version"), "5.6.2");
    let tenant = w.ctl_json(&["tenants", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let hh = format!("{tenant}_{}", host.replace('-', ""));
    let hex: String = "typescript".bytes().map(|b| format!("{b:02x}")).collect();
    let config_topic = format!("homeassistant/update/ferry_{hh}_{hex}/config");
    let config = watcher.json(&config_topic);
    assert_eq!(config["command_topic"], format!("{item}/set"), "{config}");

    // Install pressed: an upgrade of that one package, run by the device's source.
    watcher
        .client
        .publish(
            format!("{item}/set"),
            rumqttc::QoS::AtLeastOnce,
            false,
            "install",
        )
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let entry = loop {
        let history = w.ctl_json(&["history", "list", "--host", "node-host"]);
        if let Some(e) = history.as_array().unwrap().first() {
            break e.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no upgrade queued");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(entry["item"], "npm packages", "{entry}");
    assert_eq!(entry["actor"], "mqtt:test", "{entry}");
    let ran = d.run("once");
    assert_eq!(ran.code, Some(0), "{ran}");
    watcher.wait_for(&format!("{item}/state"), "5.6.2");
    watcher.wait_for(&format!("{item}/latest_version"), "5.6.2");

    // Gone from the host: its entity is cleared.
    std::fs::remove_file(state.join("typescript")).unwrap();
    d.run("check").ok();
    watcher.wait_for(&config_topic, "");
}
