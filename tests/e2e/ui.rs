//! The web UI in a real browser: Debian's Chromium, headless, driven through chromedriver
//! (WebDriver), against the real server and a real agent. Sign in, create a campaign that
//! needs acceptance, pause and resume it, accept it on the device, watch the install's
//! output arrive live with its colours and the campaign complete; and a failed update shown
//! red with its output. With FERRY_UI_SCREENSHOTS=DIR the main pages are saved there as PNG
//! (scripts/ui-screenshots refreshes docs/screenshots/).

use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::Locator;

use crate::util::browser::{block_on, Browser};
use crate::util::World;

/// A world whose device runs web 1.0.0.
fn world_on_1_0_0() -> (World, crate::util::Device) {
    let w = World::new();
    w.release("1.0.0", &[]);
    let device = w.device();
    device.run("check").ok();
    w.trigger(Some("1.0.0"));
    device.run("once").ok();
    (w, device)
}

/// A hook that says two things in colour, the second a while after the first.
const SLOW_COLOURFUL_HOOK: &str =
    "printf '\\033[1;32mstep one\\033[0m\\n'; sleep 3; printf '\\033[31mstep two\\033[0m\\n'";

#[test]
fn a_campaign_from_the_browser_with_acceptance_live_output_pause_and_resume() {
    let (w, device) = world_on_1_0_0();
    w.release(
        "1.1.0",
        &["--post-install", SLOW_COLOURFUL_HOOK, "--notes", "Faster."],
    );
    let token = w.operator_token();
    block_on(async {
        let b = Browser::start(&w.server.url()).await;
        b.sign_in(&token).await;
        b.screenshot("dashboard").await;

        // The token list marks the session's own token; revoking asks first and says so.
        b.goto("/settings").await;
        b.wait_text("#tokens", "this session").await;
        assert!(
            b.holds("return !document.querySelector('tr.mine details.confirm').open")
                .await
        );
        b.click("tr.mine details.confirm summary").await;
        b.wait_text("tr.mine details.confirm", "signs you out")
            .await;

        // Create the campaign with the form: no release is preselected, and the form is
        // reviewed (hosts per wave) before it is created.
        b.goto("/campaigns").await;
        assert!(
            b.holds("return document.querySelector('select[name=release]').value === ''")
                .await,
            "a release is preselected"
        );
        b.fill("input[name=name]", "web-rollout").await;
        b.click("select[name=release] option[value='web@1.1.0']")
            .await;
        b.click("input[name=target][value=all]").await;
        b.click("input[name=require_acceptance]").await;
        b.click("form.stack button[type=submit]").await;
        b.wait_text("h1", "Review the campaign").await;
        assert_eq!(b.text("#review tbody tr td:nth-child(2)").await, "1");
        assert!(
            w.ctl_json(&["campaigns", "list"])
                .as_array()
                .unwrap()
                .is_empty(),
            "created before it was confirmed"
        );
        b.click("form.stack button[type=submit]").await;
        let id = b
            .wait_path("/campaigns/")
            .await
            .trim_start_matches("/campaigns/")
            .to_string();
        assert_eq!(b.text("h1").await, "Campaign web-rollout");
        b.wait_text("#status", "running").await;
        b.wait_text("#members", "awaiting acceptance").await;
        // One wave, open, holding the one host: nothing waits for a next wave.
        assert!(!b.holds("return !!document.querySelector('#waiting')").await);
        assert_eq!(b.text("#waves tbody tr td:nth-child(1)").await, "1 (open)");
        assert_eq!(b.text("#waves tbody tr td:nth-child(2)").await, "1");

        // Pause and resume.
        b.click("form[action$='/pause'] button").await;
        b.wait_text("#status", "paused").await;
        b.wait_text(".flash", "paused").await;
        b.click("form[action$='/resume'] button").await;
        b.wait_text("#status", "running").await;
        b.screenshot("campaign").await;

        // The device accepts; its install runs while the browser follows the output.
        device
            .run_args(&["--running-mode=campaign_accept", "--campaign-id", &id])
            .ok();
        let mut agent = device
            .command(&["--running-mode=once"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let update = loop {
            let c = w.ctl_json(&["campaigns", "show", &id]);
            if let Some(u) = c["members"][0]["update_id"].as_str() {
                break u.to_string();
            }
            assert!(Instant::now() < deadline, "no update for the member: {c}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        b.goto(&format!("/history/{update}")).await;
        // The first line arrives, green, while the hook still sleeps: it is live.
        b.wait_text("#output span.b.f2", "step one").await;
        let status_meanwhile = b.text("#status").await;
        let red_yet = b.client.find(Locator::Css("#output span.f1")).await.is_ok();
        assert!(!red_yet, "step one showed only with step two: not live");
        b.wait_text("#output span.f1", "step two").await;
        b.wait_text("#status", "installed").await;
        assert!(agent.wait().unwrap().success());
        assert!(
            status_meanwhile.contains("In progress"),
            "the first line came while the update ran: {status_meanwhile}"
        );
        b.screenshot("history-entry").await;

        // The campaign page refreshes itself to completed.
        b.goto(&format!("/campaigns/{id}")).await;
        b.wait_text("#status", "completed").await;
        b.wait_text("#members", "installed").await;

        // The host page says up to date.
        b.goto("/hosts").await;
        b.screenshot("hosts").await;
        // The same page at a phone's width: each host is a card, nothing scrolls sideways,
        // not even inside the list, and its status badge is in view.
        b.client.set_window_size(390, 844).await.unwrap();
        b.goto("/hosts").await;
        assert!(
            !b.holds("return document.documentElement.scrollWidth > window.innerWidth + 1")
                .await,
            "the hosts page is wider than a phone"
        );
        assert!(
            b.holds("return Array.from(document.querySelectorAll('.table')).every(t => t.scrollWidth <= t.clientWidth + 1)")
                .await,
            "a list scrolls sideways on a phone"
        );
        assert!(
            b.holds("return Array.from(document.querySelectorAll('#hosts .badge')).every(e => e.getBoundingClientRect().right <= window.innerWidth)")
                .await,
            "a status badge is cut off"
        );
        b.screenshot("hosts-phone").await;
        // A host's page too: its Update buttons are within the screen.
        b.click("#hosts a").await;
        b.wait_path("/hosts/").await;
        assert!(
            b.holds("return Array.from(document.querySelectorAll('#items button')).every(e => e.getBoundingClientRect().right <= window.innerWidth)")
                .await,
            "an Update button is off-screen on a phone"
        );
        b.goto("/hosts").await;
        b.client.set_window_size(1280, 900).await.unwrap();
        b.click("#hosts a").await;
        b.wait_path("/hosts/").await;
        b.wait_text("#items", "Up to date").await;
        b.close().await;
    });
    assert_eq!(w.current().as_deref(), Some("releases/1.1.0"));
}

#[test]
fn a_failed_update_shows_red_with_its_output() {
    let (w, device) = world_on_1_0_0();
    w.release(
        "1.2.0",
        &[
            "--post-install",
            "echo migrating; echo 'disk on fire' >&2",
            "--health-check",
            "false",
        ],
    );
    device.run("check").ok();
    let token = w.operator_token();
    block_on(async {
        let b = Browser::start(&w.server.url()).await;
        b.sign_in(&token).await;
        b.goto("/hosts").await;
        b.click("#hosts a").await;
        b.wait_path("/hosts/").await;
        b.wait_text("#items", "Update available").await;
        // Update the item from its host page: to the update's page, which follows it.
        let host_page = b.path().await;
        b.click("#items form button").await;
        b.wait_path("/history/").await;
        b.wait_text(".flash", "Update queued").await;
        b.wait_text("#live-note", "has not started it yet").await;
        b.goto(&host_page).await;
        b.wait_text("#items", "In progress").await;
        device.run("once").code(1);
        b.goto(&host_page).await;
        let badge = b.text("#items .badge.fail").await;
        assert!(badge.contains("rolled back"), "{badge}");
        b.screenshot("host").await;
        b.click("#items .badge.fail").await;
        b.wait_path("/history/").await;
        b.wait_text("#status", "rolled back").await;
        let out = b.text("#output").await;
        assert!(
            out.contains("migrating") && out.contains("disk on fire"),
            "{out}"
        );
        // The history list marks it too.
        b.goto("/history?status=rolled_back").await;
        assert!(b
            .text("table.history .badge.fail")
            .await
            .contains("rolled back"));

        // The hosts list shows the failure (not "Update available") and filters by it.
        b.goto("/hosts?status=failed").await;
        let rows = b.text("#hosts").await;
        assert!(
            rows.contains("device-1") && rows.contains("failed"),
            "{rows}"
        );
        assert!(!rows.contains("Update available"), "{rows}");
        b.goto("/hosts?status=up_to_date").await;
        assert!(!b.text("body").await.contains("device-1"));

        // The bad release is withdrawn from the items page (two steps) and no longer offered.
        b.goto("/items").await;
        b.click("details.withdraw summary").await;
        b.fill(
            "details.withdraw input[name=reason]",
            "fails its health check",
        )
        .await;
        b.click("details.withdraw button.danger").await;
        b.wait_text(".flash", "Withdrew web 1.2.0").await;
        b.wait_text("#item-web", "withdrawn").await;
        b.goto("/hosts").await;
        b.click("#hosts a").await;
        b.wait_path("/hosts/").await;
        let items = b.text("#items").await;
        assert!(!items.contains("Update available"), "{items}");

        // A refused form says so in red, not in the colour of a success.
        b.goto("/campaigns").await;
        b.click("select[name=release] option[value='web@1.0.0']")
            .await;
        b.fill("input[name=window]", "25:00-26:00").await;
        b.click("form.stack button[type=submit]").await;
        let refused = b.wait_text(".flash.bad", "Refused").await;
        assert!(refused.contains("time of day"), "{refused}");
        // What was typed is kept, to be corrected rather than typed again.
        assert!(
            b.holds("return document.querySelector('input[name=window]').value === '25:00-26:00' && document.querySelector('select[name=release]').value === 'web@1.0.0'")
                .await,
            "the refused form lost what was typed"
        );

        // The operator tags the host from its page (campaigns target these), then removes it,
        // each behind a disclosure.
        b.goto("/hosts").await;
        b.click("#hosts a").await;
        b.wait_path("/hosts/").await;
        b.click("details.labels summary").await;
        b.fill("details.labels input[name=tags]", "prod,eu-west")
            .await;
        b.click("details.labels button").await;
        b.wait_text(".flash", "Saved the tags").await;
        assert_eq!(
            w.ctl_json(&["hosts", "list"])[0]["tags"],
            serde_json::json!(["prod", "eu-west"])
        );
        b.click("details.confirm summary").await;
        b.click("details.confirm button.danger").await;
        b.wait_text(".flash", "Host removed").await;
        assert_eq!(w.ctl_json(&["hosts", "list"]), serde_json::json!([]));
        b.close().await;
    });
}

/// What ferryctl can do the browser can too: install any published version from a host's
/// page (an older one marked), edit an open campaign, update every host with an item.
#[test]
fn any_version_campaign_edits_and_item_batches_from_the_browser() {
    let (w, device) = world_on_1_0_0();
    w.release("1.1.0", &[]);
    w.release("1.2.0", &[]);
    device.run("check").ok();
    let token = w.operator_token();
    block_on(async {
        let b = Browser::start(&w.server.url()).await;
        b.sign_in(&token).await;

        // Not the newest: 1.1.0, chosen from the host's other versions.
        b.goto("/hosts").await;
        b.click("#hosts a").await;
        b.wait_path("/hosts/").await;
        let host_page = b.path().await;
        b.click("#items details.versions summary").await;
        b.click("#items details.versions option[value='1.1.0']")
            .await;
        b.click("#items details.versions button").await;
        b.wait_path("/history/").await;
        b.wait_text(".flash", "Update queued").await;
        device.run("once").ok();
        assert_eq!(w.current().as_deref(), Some("releases/1.1.0"));
        b.goto(&host_page).await;
        b.click("#items details.versions summary").await;
        let others = b.text("#items details.versions").await;
        assert!(
            others.contains("1.0.0 (older)") && others.contains("allows a downgrade"),
            "{others}"
        );

        // An open campaign's thresholds and window, edited on its page; a bad value refused.
        let c = w.campaign("1.2.0", &["--all", "--require-acceptance"]);
        let id = c["id"].as_str().unwrap().to_string();
        b.goto(&format!("/campaigns/{id}")).await;
        b.click("details.edit summary").await;
        b.fill("details.edit input[name=success_threshold]", "50")
            .await;
        b.fill("details.edit input[name=window]", "02:00-04:00")
            .await;
        b.click("details.edit button").await;
        b.wait_text(".flash", "saved").await;
        let shown = w.ctl_json(&["campaigns", "show", &id]);
        assert_eq!(shown["success_threshold"], 0.5, "{shown}");
        assert_eq!(shown["window"], "02:00-04:00", "{shown}");
        b.click("details.edit summary").await;
        b.fill("details.edit input[name=window]", "25:00-26:00")
            .await;
        b.click("details.edit button").await;
        let refused = b.wait_text(".flash.bad", "Refused").await;
        assert!(refused.contains("time of day"), "{refused}");
        w.ctl(&["campaigns", "cancel", &id]).ok();

        // Every host with the item, to 1.2.0, from the items page (two steps).
        b.goto("/items").await;
        b.click("#item-web details.confirm summary").await;
        b.click("#item-web details.confirm button").await;
        b.wait_path("/batches/").await;
        b.wait_text(".flash", "Batch started: 1 updates").await;
        device.run("once").ok();
        assert_eq!(w.current().as_deref(), Some("releases/1.2.0"));
        let history = w.history();
        let last = history.last().unwrap();
        assert_eq!(last["version"], "1.2.0");
        assert_eq!(last["actor"], "user:admin", "{last}");

        // Times read as relative, local ones, the exact instant on hover; By names the token.
        b.goto("/history").await;
        let shown = b.text("table.history tbody tr time").await;
        assert!(
            shown.contains("ago") || shown == "just now",
            "not a relative time: {shown}"
        );
        assert!(
            b.holds("const t = document.querySelector('table.history time'); return t.title.includes(t.getAttribute('datetime'))")
                .await,
            "no exact time on hover"
        );
        assert!(b.text("table.history").await.contains("user:admin"));
        b.close().await;
    });
}

#[test]
fn pages_need_a_session_and_forms_need_their_csrf_token() {
    let w = World::new();
    let http = crate::util::http();
    let no_redirect = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // No session: to the sign-in form, remembering where.
    let r = no_redirect
        .get(format!("{}/hosts?tag=x", w.server.url()))
        .send()
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login?next=/hosts%3Ftag%3Dx");
    // A wrong token is refused.
    let r = no_redirect
        .post(format!("{}/login", w.server.url()))
        .form(&[("token", "fop_wrong"), ("next", "/")])
        .send()
        .unwrap();
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/login?failed=token"));
    // The right one gives a safe cookie.
    let r = no_redirect
        .post(format!("{}/login", w.server.url()))
        .form(&[
            ("token", w.operator_token().as_str()),
            ("next", "//elsewhere.example/"),
        ])
        .send()
        .unwrap();
    assert_eq!(r.headers()["location"], "/", "never sent off this server");
    // A tab a browser drops from the URL (`/%09/elsewhere.example/`) sends nobody away either.
    let r = no_redirect
        .post(format!("{}/login", w.server.url()))
        .form(&[
            ("token", w.operator_token().as_str()),
            ("next", "/\t/elsewhere.example/"),
        ])
        .send()
        .unwrap();
    assert_eq!(r.headers()["location"], "/", "never sent off this server");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    let session = cookie.split(';').next().unwrap().to_string();
    // A form without the CSRF token is refused, and nothing is created.
    let r = http
        .post(format!("{}/settings/tokens", w.server.url()))
        .header("cookie", &session)
        .form(&[("name", "sneaky"), ("kind", "operator"), ("csrf", "nope")])
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(!w.ctl(&["tokens", "list"]).stdout.contains("sneaky"));
    // A page (it shows tokens and hook output) runs no script but this server's, cannot be
    // framed, sniffed or cached.
    let r = http
        .get(format!("{}/settings", w.server.url()))
        .header("cookie", &session)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let csp = header("content-security-policy");
    let directive = |name: &str| {
        csp.split(';')
            .map(str::trim)
            .find(|d| d.starts_with(name))
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(directive("script-src"), "script-src 'self'", "{csp}");
    assert_eq!(
        directive("frame-ancestors"),
        "frame-ancestors 'none'",
        "{csp}"
    );
    assert_eq!(directive("object-src"), "object-src 'none'", "{csp}");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("cache-control"), "no-store");
    assert!(!header("referrer-policy").is_empty());
    // The session reads the API (the live output needs it) but cannot change it.
    let r = http
        .get(format!("{}/api/v1/hosts", w.server.url()))
        .header("cookie", &session)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{}/api/v1/tokens", w.server.url()))
        .header("cookie", &session)
        .json(&serde_json::json!({"name": "sneaky"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[test]
fn the_hosts_page_searches_filters_by_tag_and_status() {
    let w = World::new();
    w.release("1.0.0", &[]);
    let alpha = w.add_device("alpha", "tags = [\"lab\"]\nfriendly_name = \"Kitchen Pi\"");
    let beta = w.add_device("beta", "tags = [\"lab\", \"edge\"]");
    let gamma = w.add_device("gamma", "tags = [\"edge\"]");
    for d in [&alpha, &beta, &gamma] {
        d.run("check").ok();
    }
    // alpha gets 1.0.0; the others still lack it.
    w.ctl_json(&[
        "update",
        "trigger",
        "--host",
        "alpha",
        "--item",
        "web",
        "--version",
        "1.0.0",
    ]);
    alpha.run("once").ok();
    let cookie = w.session_cookie();
    let http = crate::util::http();
    let page = |query: &str| {
        let body = http
            .get(format!("{}/hosts{query}", w.server.url()))
            .header("cookie", &cookie)
            .send()
            .unwrap()
            .text()
            .unwrap();
        let rows = body
            .split("<table id=\"hosts\"")
            .nth(1)
            .unwrap_or_default()
            .to_string();
        ["alpha", "beta", "gamma"]
            .into_iter()
            .filter(|h| rows.contains(&format!(">{h}</a>")))
            .collect::<Vec<_>>()
    };
    assert_eq!(page(""), ["alpha", "beta", "gamma"]);
    assert_eq!(
        page("?q=kitchen"),
        ["alpha"],
        "the friendly name is searched"
    );
    assert_eq!(page("?q=GAM"), ["gamma"], "in any case");
    assert_eq!(page("?tag=lab"), ["alpha", "beta"]);
    assert_eq!(page("?tag=edge&q=beta"), ["beta"]);
    assert_eq!(page("?status=available"), ["beta", "gamma"]);
    // The dashboard's per-category cards lead to the hosts with an update of that category.
    assert_eq!(page("?status=available_unknown"), ["beta", "gamma"]);
    assert!(page("?status=available_security").is_empty());
    assert_eq!(page("?status=up_to_date"), ["alpha"]);
    assert_eq!(page("?tag=edge&status=available"), ["beta", "gamma"]);
    assert_eq!(page("?status=online"), ["alpha", "beta", "gamma"]);
    assert!(page("?status=offline").is_empty());
    // In progress: a queued update.
    w.ctl_json(&[
        "update",
        "trigger",
        "--host",
        "beta",
        "--item",
        "web",
        "--version",
        "1.0.0",
    ]);
    assert_eq!(page("?status=in_progress"), ["beta"]);
}

#[test]
fn an_interactive_update_is_answered_in_the_browsers_terminal() {
    let w = World::with_agent_extra("long_poll_secs = 30");
    let src = w.payload("1.0.0", None);
    let out = w.build("1.0.0", &src, &["--post-install", crate::interactive::HOOK]);
    w.publish(&out);
    let device = w.device();
    device.run("check").ok();
    let mut agent = device.spawn("full");
    let token = w.operator_token();
    block_on(async {
        let b = Browser::start(&w.server.url()).await;
        b.sign_in(&token).await;
        b.goto("/hosts").await;
        b.click("#hosts a").await;
        b.wait_path("/hosts/").await;
        // The update dialog's Interactive choice.
        b.click("#items tr[data-item=web] input[name=interactive]")
            .await;
        b.click("#items tr[data-item=web] button[type=submit]")
            .await;
        let entry = b.wait_path("/history/").await;
        b.wait_text("#terminal .xterm-rows", "Continue? [y/N]")
            .await;
        // A reload by the operator who holds the terminal takes it back at once.
        assert!(
            b.comes_to_hold("return document.querySelector('#terminal').getAttribute('data-attached') === 'yes'")
                .await
        );
        b.goto(&entry).await;
        assert!(
            b.comes_to_hold("return document.querySelector('#terminal').getAttribute('data-attached') === 'yes'")
                .await,
            "after a reload the holder only watches"
        );
        b.wait_text("#terminal .xterm-rows", "Continue? [y/N]")
            .await;
        // Type the answer into the terminal, as a person would: click it, press y, Enter.
        b.click("#terminal .xterm-screen").await;
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        let mut keys = KeyActions::new("keyboard".into());
        for key in ['y', '\u{E007}'] {
            keys = keys
                .then(KeyAction::Down { value: key })
                .then(KeyAction::Up { value: key });
        }
        b.client
            .perform_actions(keys)
            .await
            .expect("typing into the terminal");
        b.wait_text("#terminal .xterm-rows", "answered yes").await;
        b.wait_text("#status", "installed").await;
        // The answer came back in colour, at the start of its row (the terminal's carriage
        // returns reached it): xterm.js draws it green (once it has drawn it).
        let green = b
            .comes_to_hold(
                "return Array.from(document.querySelectorAll('#terminal .xterm-rows > div'))
                    .some(row => row.textContent.startsWith('answered yes')
                        && Array.from(row.querySelectorAll('span'))
                            .some(s => /xterm-fg-2\\b/.test(s.className) && s.textContent.includes('answer')))",
            )
            .await;
        if !green {
            let rows = b
                .client
                .execute(
                    "return document.querySelector('#terminal .xterm-rows').innerHTML",
                    vec![],
                )
                .await;
            panic!("the hook's colour did not reach the browser; the terminal's rows: {rows:?}");
        }
        b.screenshot("terminal").await;
        b.close().await;
    });
    crate::util::signal(agent.id(), "TERM", false);
    let _ = agent.wait();
    assert_eq!(w.current().as_deref(), Some("releases/1.0.0"));
    // What was typed is not kept unless the operator asked for it.
    let entry = &w.history()[0];
    assert!(entry.get("typed").is_none_or(|t| t == ""), "{entry}");
}

/// A campaign that watches its waves, created in the browser: its page shows the wave's
/// regression against the control group, the failing host and the chart of the two shares.
#[test]
fn a_watched_campaign_shows_its_regression_and_chart_in_the_browser() {
    let (w, device) = world_on_1_0_0();
    let other = w.add_device("h2", "");
    other.run("check").ok();
    w.ctl_json(&[
        "update",
        "trigger",
        "--host",
        "h2",
        "--item",
        "web",
        "--version",
        "1.0.0",
    ]);
    other.run("once").ok();
    crate::observation::failing_after(&w, "1.1.0", 2);
    let token = w.operator_token();
    block_on(async {
        let b = Browser::start(&w.server.url()).await;
        b.sign_in(&token).await;
        b.goto("/campaigns").await;
        b.fill("input[name=name]", "watched").await;
        b.click("select[name=release] option[value='web@1.1.0']")
            .await;
        b.click("input[name=target][value=all]").await;
        b.fill("input[name=waves]", "1,100%").await;
        b.fill("input[name=observe]", "6s").await;
        b.click("input[name=rollback_on_regression]").await;
        b.click("form.stack button[type=submit]").await;
        b.wait_text("h1", "Review the campaign").await;
        b.click("form.stack button[type=submit]").await;
        let id = b
            .wait_path("/campaigns/")
            .await
            .trim_start_matches("/campaigns/")
            .to_string();
        b.wait_text("#observation", "watched for 6 s").await;
        let copy = |d: &crate::util::Device| crate::util::Device {
            name: d.name.clone(),
            cfg: d.cfg.clone(),
            root: d.root.clone(),
        };
        let devices = [copy(&device), copy(&other)];
        crate::observation::rounds(
            &w,
            &devices,
            "once",
            std::time::Duration::from_secs(60),
            || crate::observation::show(&w, &id)["status"] == "paused",
        );
        b.goto(&format!("/campaigns/{id}")).await;
        b.wait_text("#observation", "regressed").await;
        let failing = b.text("#failing").await;
        assert!(failing.contains("health"), "{failing}");
        assert!(
            b.holds("return document.querySelector('#observation-chart polyline.wave').getAttribute('points').split(' ').length >= 2")
                .await,
            "no chart"
        );
        b.screenshot("campaign-observation").await;
        b.close().await;
    });
}
