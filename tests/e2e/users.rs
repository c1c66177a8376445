//! Users and roles through ferryctl against a real server: the first start's `admin` holds
//! the operator token; an admin adds users and gives them tokens; each role is held to its
//! table, and a refusal exits non-zero with the server's words naming the role it needs.

use crate::util::{run, World};

/// ferryctl with another user's token.
fn ctl_as(w: &World, token: &str, args: &[&str]) -> crate::util::Run {
    let mut cmd = w.ctl_command(args);
    cmd.env("FERRY_TOKEN", token);
    run(cmd)
}

#[test]
fn each_user_does_what_their_role_allows() {
    let w = World::new();
    // The operator token of the first start is the admin's.
    let users = w.ctl_json(&["users", "list"]);
    assert_eq!(users[0]["name"], "admin", "{users}");
    assert_eq!(users[0]["role"], "admin", "{users}");
    assert_eq!(users[0]["tokens"], 1, "{users}");

    w.ctl(&["users", "add", "vera", "--role", "viewer"]).ok();
    w.ctl(&["users", "add", "ci", "--role", "publisher"]).ok();
    let token = |user: &str| {
        let r = w
            .ctl(&[
                "tokens",
                "create",
                "--user",
                user,
                "--name",
                &format!("{user}-laptop"),
                "--expires-in-days",
                "30",
            ])
            .ok();
        r.stdout.trim().to_string()
    };
    let vera = token("vera");
    let ci = token("ci");
    let listed = w.ctl(&["tokens", "list"]).ok();
    assert!(
        listed.stdout.contains("vera-laptop") && listed.stdout.contains("vera"),
        "{listed}"
    );

    // A viewer reads, and is refused a change in words naming the role it needs.
    let hosts = ctl_as(&w, &vera, &["hosts", "list"]);
    assert_eq!(hosts.code, Some(0), "{hosts}");
    let refused = ctl_as(
        &w,
        &vera,
        &["update", "trigger", "--host", "device-1", "--item", "web"],
    );
    assert_ne!(refused.code, Some(0), "{refused}");
    assert!(
        refused
            .stderr
            .contains("needs the operator role (or admin)")
            && refused.stderr.contains("vera is a viewer"),
        "{refused}"
    );
    let refused = ctl_as(&w, &vera, &["users", "list"]);
    assert_ne!(refused.code, Some(0), "{refused}");
    assert!(refused.stderr.contains("the admin role"), "{refused}");

    // The publisher publishes (what a CI pipeline needs) and triggers nothing.
    let src = w.payload("1.0.0", None);
    let out = w.build("1.0.0", &src, &[]);
    let published = ctl_as(&w, &ci, &["release", "publish", out.to_str().unwrap()]);
    assert_eq!(published.code, Some(0), "{published}");
    w.agent("check").ok();
    let refused = ctl_as(
        &w,
        &ci,
        &["update", "trigger", "--host", "device-1", "--item", "web"],
    );
    assert_ne!(refused.code, Some(0), "{refused}");

    // An operator change: the history names the user who asked.
    w.ctl(&["users", "edit", "vera", "--role", "operator"]).ok();
    let asked = ctl_as(
        &w,
        &vera,
        &["update", "trigger", "--host", "device-1", "--item", "web"],
    );
    assert_eq!(asked.code, Some(0), "{asked}");
    let history = w.ctl_json(&["history", "list"]);
    assert_eq!(history[0]["actor"], "user:vera", "{history}");

    // Removed: their token is refused at once.
    w.ctl(&["users", "remove", "vera"]).ok();
    let gone = ctl_as(&w, &vera, &["hosts", "list"]);
    assert_ne!(gone.code, Some(0), "{gone}");
    assert!(gone.stderr.contains("unknown or revoked"), "{gone}");
    // The last admin stays.
    let last = w.ctl(&["users", "remove", "admin"]);
    assert_ne!(last.code, Some(0), "{last}");
    assert!(last.stderr.contains("last admin"), "{last}");

    // The audit log has every change asked for, refused or not, with who and from where;
    // reads are not in it.
    let audit = w.ctl_json(&["audit", "list"]);
    let lines: Vec<String> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {} {} {}",
                e["user"].as_str().unwrap(),
                e["method"].as_str().unwrap(),
                e["path"].as_str().unwrap(),
                e["status"]
            )
        })
        .collect();
    for want in [
        "admin POST /api/v1/users 200",
        "vera POST /api/v1/updates 403",
        "ci POST /api/v1/releases 200",
        "vera POST /api/v1/updates 200",
        "admin DELETE /api/v1/users/vera 204",
        "admin DELETE /api/v1/users/admin 409",
    ] {
        assert!(
            lines.iter().any(|l| l == want),
            "{want} missing from {lines:#?}"
        );
    }
    assert!(!lines.iter().any(|l| l.contains(" GET ")), "{lines:#?}");
    // An edit keeps what it changed, before and after; a removal the record it took away.
    let entries = audit.as_array().unwrap();
    let edit = entries
        .iter()
        .find(|e| e["method"] == "PATCH" && e["path"] == "/api/v1/users/vera")
        .unwrap_or_else(|| panic!("no edit of vera: {audit}"));
    assert_eq!(
        edit["before"],
        serde_json::json!({"role": "viewer"}),
        "{edit}"
    );
    assert_eq!(
        edit["after"],
        serde_json::json!({"role": "operator"}),
        "{edit}"
    );
    let removal = entries
        .iter()
        .find(|e| e["method"] == "DELETE" && e["path"] == "/api/v1/users/vera")
        .unwrap();
    assert_eq!(removal["before"]["name"], "vera", "{removal}");
    assert!(removal.get("after").is_none(), "{removal}");
    let table = w.ctl(&["audit", "list"]).ok();
    assert!(table.stdout.contains("role viewer→operator"), "{table}");
    assert_eq!(audit[0]["address"], "127.0.0.1", "{audit}");
    let vera_only = w.ctl_json(&["audit", "list", "--user", "vera"]);
    assert!(
        vera_only
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["user"] == "vera"),
        "{vera_only}"
    );
    assert_eq!(vera_only.as_array().unwrap().len(), 2, "{vera_only}");
    let text = w.ctl(&["audit", "list"]).ok();
    assert!(text.stdout.contains("/api/v1/users/vera"), "{text}");
}

/// A campaign that needs approval waits, paused, until a user with the approver role other
/// than its creator approves it; then it runs and the device installs. The creator cannot
/// approve it (not even as an admin), an operator cannot, and resuming it does not bypass it.
#[test]
fn a_campaign_waits_for_a_second_users_approval() {
    let w = World::new();
    w.release("1.0.0", &[]);
    w.agent("check").ok();
    w.ctl(&["users", "add", "abe", "--role", "approver"]).ok();
    w.ctl(&["users", "add", "olga", "--role", "operator"]).ok();
    let token = |user: &str| {
        w.ctl(&["tokens", "create", "--user", user, "--name", user])
            .ok()
            .stdout
            .trim()
            .to_string()
    };
    let abe = token("abe");
    let olga = token("olga");

    // The admin creates it: paused, waiting, and the device is given nothing.
    let c = w.campaign("1.0.0", &["--all", "--require-approval"]);
    let id = c["id"].as_str().unwrap().to_string();
    assert_eq!(c["status"], "paused", "{c}");
    assert!(
        c["status_reason"]
            .as_str()
            .unwrap()
            .contains("waits for approval"),
        "{c}"
    );
    assert_eq!(c["approval"]["created_by"], "admin", "{c}");
    w.agent("once").ok();
    assert_eq!(w.current(), None, "nothing installs before approval");

    let resumed = w.ctl(&["campaigns", "resume", &id]);
    assert_ne!(resumed.code, Some(0), "{resumed}");
    assert!(resumed.stderr.contains("waits for approval"), "{resumed}");
    let own = w.ctl(&["campaigns", "approve", &id]);
    assert_ne!(own.code, Some(0), "{own}");
    assert!(own.stderr.contains("cannot approve it"), "{own}");
    let operator = ctl_as(&w, &olga, &["campaigns", "approve", &id]);
    assert_ne!(operator.code, Some(0), "{operator}");
    assert!(
        operator
            .stderr
            .contains("needs the approver role (or admin)"),
        "{operator}"
    );

    let approved = ctl_as(&w, &abe, &["campaigns", "approve", &id, "--json"]);
    assert_eq!(approved.code, Some(0), "{approved}");
    let shown = w.ctl_json(&["campaigns", "show", &id]);
    assert_eq!(shown["status"], "running", "{shown}");
    assert_eq!(shown["approval"]["approved_by"], "abe", "{shown}");
    w.agent("once").ok();
    assert_eq!(w.current().as_deref(), Some("releases/1.0.0"));
    let again = ctl_as(&w, &abe, &["campaigns", "approve", &id]);
    assert_ne!(again.code, Some(0), "{again}");
}

#[test]
fn a_user_limited_to_a_tag_sees_and_acts_on_those_hosts_only() {
    let w = World::new();
    w.release("1.0.0", &[]);
    let mine = w.add_device("kiosk-a", "");
    let theirs = w.add_device("kiosk-b", "");
    mine.run("check").ok();
    theirs.run("check").ok();
    w.ctl(&["hosts", "edit", "kiosk-a", "--tag", "site-a"]).ok();
    w.ctl(&[
        "users", "add", "sam", "--role", "operator", "--tag", "site-a",
    ])
    .ok();
    let sam = w
        .ctl(&["tokens", "create", "--user", "sam", "--name", "sam-laptop"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let theirs_id = w
        .ctl_json(&["hosts", "list"])
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["hostname"] == "kiosk-b")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Sam sees the hosts tagged site-a, and nothing of the others: not in lists, not by id.
    let mut cmd = w.ctl_command(&["hosts", "list", "--json"]);
    cmd.env("FERRY_TOKEN", &sam);
    let listed = run(cmd);
    assert_eq!(listed.code, Some(0), "{listed}");
    let hosts: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    let names: Vec<_> = hosts
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["hostname"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["kiosk-a"], "{hosts}");
    for args in [
        vec!["hosts", "edit", "kiosk-b", "--tag", "site-a"],
        vec!["hosts", "edit", theirs_id.as_str(), "--tag", "site-a"],
        vec!["update", "trigger", "--host", "kiosk-b", "--item", "web"],
        vec!["hosts", "remove", "kiosk-b"],
    ] {
        let refused = ctl_as(&w, &sam, &args);
        assert_ne!(refused.code, Some(0), "{args:?}: {refused}");
        assert!(refused.stderr.contains("no host"), "{args:?}: {refused}");
    }
    // kiosk-b is untouched.
    let b = w
        .ctl_json(&["hosts", "list"])
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["id"] == theirs_id.as_str())
        .cloned()
        .unwrap();
    assert!(b["tags"].as_array().unwrap().is_empty(), "{b}");

    // Sam acts on their own host; the history sam reads holds only it.
    let asked = ctl_as(
        &w,
        &sam,
        &["update", "trigger", "--host", "kiosk-a", "--item", "web"],
    );
    assert_eq!(asked.code, Some(0), "{asked}");
    w.ctl(&["update", "trigger", "--host", "kiosk-b", "--item", "web"])
        .ok();
    let mut cmd = w.ctl_command(&["history", "list", "--json"]);
    cmd.env("FERRY_TOKEN", &sam);
    let history: serde_json::Value = serde_json::from_str(&run(cmd).ok().stdout).unwrap();
    assert!(
        history
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["hostname"] == "kiosk-a"),
        "{history}"
    );
    assert!(!history.as_array().unwrap().is_empty(), "{history}");

    // Campaigns: only of site-a; the admin's campaign of every host is not sam's to see.
    w.campaign("1.0.0", &["--all", "--allow-empty"]);
    let campaign_as_sam = |target: &[&str]| {
        let mut args = vec!["campaigns", "create", "--item", "web", "--version", "1.0.0"];
        args.extend_from_slice(target);
        ctl_as(&w, &sam, &args)
    };
    let refused = campaign_as_sam(&["--all"]);
    assert_ne!(refused.code, Some(0), "{refused}");
    assert!(
        refused
            .stderr
            .contains("user sam is limited to hosts tagged site-a"),
        "{refused}"
    );
    let made = campaign_as_sam(&["--tag", "site-a"]);
    assert_eq!(made.code, Some(0), "{made}");
    let mut cmd = w.ctl_command(&["campaigns", "list", "--json"]);
    cmd.env("FERRY_TOKEN", &sam);
    let campaigns: serde_json::Value = serde_json::from_str(&run(cmd).ok().stdout).unwrap();
    assert_eq!(campaigns.as_array().unwrap().len(), 1, "{campaigns}");
    assert_eq!(campaigns[0]["target"]["values"][0], "site-a", "{campaigns}");
    // An item's settings reach every host: refused in words.
    let refused = ctl_as(&w, &sam, &["items", "edit", "web", "--featured", "true"]);
    assert_ne!(refused.code, Some(0), "{refused}");
    assert!(
        refused.stderr.contains("limited to hosts tagged site-a"),
        "{refused}"
    );
}

/// ferryctl as `token`, its JSON answer.
fn json_as(w: &World, token: &str, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let r = ctl_as(w, token, &all);
    assert_eq!(r.code, Some(0), "{r}");
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r}"))
}

fn names(list: &serde_json::Value, key: &str) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|x| x[key].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn tenants_keep_their_hosts_users_tokens_campaigns_and_audit_apart() {
    let w = World::new();
    w.release("1.0.0", &[]);
    let home = w.device();
    home.run("check").ok();
    // A single-tenant install names no tenant anywhere; its users are the default tenant's.
    assert_eq!(w.ctl_json(&["users", "list"])[0]["tenant"], "default");

    // Ada's enrolment token enrols into acme.
    let (ada, acme) = w.second_tenant("acme", "ada", "acme-1");

    // Each sees their own tenant's hosts, users, tokens and tenants only.
    assert_eq!(
        names(&w.ctl_json(&["hosts", "list"]), "hostname"),
        vec!["device-1"]
    );
    assert_eq!(
        names(&json_as(&w, &ada, &["hosts", "list"]), "hostname"),
        vec!["acme-1"]
    );
    assert_eq!(
        names(&json_as(&w, &ada, &["users", "list"]), "name"),
        vec!["ada"]
    );
    assert!(!names(&w.ctl_json(&["users", "list"]), "name").contains(&"ada".to_string()));
    let ada_tokens = names(&json_as(&w, &ada, &["tokens", "list"]), "name");
    assert_eq!(
        ada_tokens,
        vec!["ada-laptop", "acme-fleet"],
        "{ada_tokens:?}"
    );
    assert!(!names(&w.ctl_json(&["tokens", "list"]), "name").contains(&"acme-fleet".to_string()));
    assert_eq!(
        names(&json_as(&w, &ada, &["tenants", "list"]), "name"),
        vec!["acme"]
    );
    assert_eq!(
        names(&w.ctl_json(&["tenants", "list"]), "name"),
        vec!["acme", "default"]
    );

    // Another tenant's host does not exist for ada, by name or by id.
    let home_id = w.ctl_json(&["hosts", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    for args in [
        vec!["hosts", "edit", "device-1", "--tag", "x"],
        vec!["hosts", "edit", home_id.as_str(), "--tag", "x"],
        vec!["update", "trigger", "--host", "device-1", "--item", "web"],
    ] {
        let refused = ctl_as(&w, &ada, &args);
        assert_ne!(refused.code, Some(0), "{args:?}: {refused}");
        assert!(refused.stderr.contains("no host"), "{args:?}: {refused}");
    }
    // Each tenant has its own trust root chain: the install's, over another release key,
    // does not judge acme's releases; acme publishes its own version 1.
    let root_of = |name: &str, release_pub: &str| {
        w.ctl(&["keygen", "--out", &format!("keys/{name}")]).ok();
        w.ctl(&[
            "root",
            "init",
            "--root-key",
            &format!("keys/{name}.key"),
            "--release-key",
            release_pub,
            "--out",
            &format!("{name}.json"),
        ])
        .ok();
        format!("{name}.json")
    };
    w.ctl(&["keygen", "--out", "keys/other-release"]).ok();
    let install_root = root_of("install-root", "keys/other-release.pub");
    w.ctl(&["root", "publish", &install_root]).ok();
    let acme_root = root_of("acme-root", "keys/release.pub");
    let rooted = ctl_as(&w, &ada, &["root", "publish", &acme_root]);
    assert_eq!(rooted.code, Some(0), "{rooted}");

    // Each tenant publishes its own items; another tenant's item is not theirs to publish,
    // and tenants are the install admin's to add.
    let src = w.payload("1.0.0", None);
    let own = w.build_with("acme-app", "1.0.0", &src, "keys/release.key", &[]);
    let published = ctl_as(&w, &ada, &["release", "publish", own.to_str().unwrap()]);
    assert_eq!(published.code, Some(0), "{published}");
    let src = w.payload("1.1.0", None);
    let out = w.build("1.1.0", &src, &[]);
    let refused = ctl_as(&w, &ada, &["release", "publish", out.to_str().unwrap()]);
    assert_ne!(refused.code, Some(0), "{refused}");
    assert!(
        refused.stderr.contains("the item web is another tenant's"),
        "{refused}"
    );
    let refused = ctl_as(&w, &ada, &["tenants", "add", "evil"]);
    assert_ne!(refused.code, Some(0), "{refused}");
    // Its own items' settings are its own; another tenant's item is not there for it.
    let featured = ctl_as(
        &w,
        &ada,
        &["items", "edit", "acme-app", "--featured", "true"],
    );
    assert_eq!(featured.code, Some(0), "{featured}");
    let refused = ctl_as(&w, &ada, &["items", "edit", "web", "--deactivate"]);
    assert_ne!(refused.code, Some(0), "{refused}");
    assert!(refused.stderr.contains("no release of web"), "{refused}");
    // Each sees its own catalog; a host is offered its tenant's releases only.
    assert_eq!(
        names(&json_as(&w, &ada, &["releases", "list"]), "item"),
        vec!["acme-app"]
    );
    assert_eq!(
        names(&w.ctl_json(&["releases", "list"]), "item"),
        vec!["web"]
    );
    acme.run("check").ok();
    let acme_host = &json_as(&w, &ada, &["hosts", "list"])[0];
    assert!(
        acme_host["available"].as_array().unwrap().is_empty(),
        "{acme_host}"
    );
    let home_host = &w.ctl_json(&["hosts", "list"])[0];
    assert_eq!(home_host["available"][0]["item"], "web", "{home_host}");
    let refused = ctl_as(
        &w,
        &ada,
        &[
            "campaigns",
            "create",
            "--item",
            "web",
            "--version",
            "1.0.0",
            "--all",
        ],
    );
    assert_ne!(refused.code, Some(0), "{refused}");
    assert!(refused.stderr.contains("no release of web"), "{refused}");

    // A tenant's campaign is its own: the other tenant neither lists nor finds it.
    let made = json_as(
        &w,
        &ada,
        &[
            "campaigns",
            "create",
            "--item",
            "acme-app",
            "--version",
            "1.0.0",
            "--all",
            "--allow-empty",
        ],
    );
    let seen = w.ctl_json(&["campaigns", "list"]);
    assert!(seen.as_array().unwrap().is_empty(), "{seen}");
    let theirs = w.ctl(&["campaigns", "show", made["id"].as_str().unwrap()]);
    assert_ne!(theirs.code, Some(0), "{theirs}");
    assert!(w
        .ctl_json(&["history", "list"])
        .as_array()
        .unwrap()
        .is_empty());

    // Each tenant's audit log holds its own users' changes.
    let audit = json_as(&w, &ada, &["audit", "list"]);
    assert!(names(&audit, "user").iter().all(|u| u == "ada"), "{audit}");
    assert!(!audit.as_array().unwrap().is_empty());
    let home_audit = w.ctl_json(&["audit", "list"]);
    assert!(
        !names(&home_audit, "user").contains(&"ada".to_string()),
        "{home_audit}"
    );
}
