//! Signing in to the web UI as a user: with a password (argon2id, a budget per name), and
//! through single sign-on with a real OpenID Connect provider; each page offers only what the
//! user's role may do; an approver approves a campaign in the browser; a session ends when
//! its user's role changes or they are removed.

use std::time::Duration;

use crate::util::browser::{block_on, Browser};
use crate::util::{eventually, World};

fn no_redirect() -> reqwest::blocking::Client {
    let _ = crate::util::http(); // installs the TLS crypto provider reqwest needs
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Writes `password` to a file and adds the user with it.
fn add_user(w: &World, name: &str, role: &str, password: &str) {
    let file = w.path(&format!("{name}.password"));
    std::fs::write(&file, format!("{password}\n")).unwrap();
    w.ctl(&[
        "users",
        "add",
        name,
        "--role",
        role,
        "--password-file",
        file.to_str().unwrap(),
    ])
    .ok();
}

/// POST /login with a name and password: the answer's Location and session cookie.
fn password_sign_in(w: &World, name: &str, password: &str) -> (u16, String, Option<String>) {
    let r = no_redirect()
        .post(format!("{}/login", w.server.url()))
        .form(&[("name", name), ("password", password), ("next", "/hosts")])
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let cookie = r
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string());
    (status, location, cookie)
}

fn page_status(w: &World, cookie: &str, path: &str) -> (u16, String) {
    let r = no_redirect()
        .get(format!("{}{path}", w.server.url()))
        .header("cookie", cookie)
        .send()
        .unwrap();
    let location = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (r.status().as_u16(), location)
}

#[test]
fn a_password_signs_a_user_in_until_their_role_changes_and_guessing_is_slowed() {
    let w = World::new();
    add_user(&w, "vera", "viewer", "a long viewer passphrase");
    let listed = w.ctl_json(&["users", "list"]);
    let vera = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "vera")
        .unwrap();
    assert_eq!(vera["password"], true, "{listed}");
    // The password is kept only as an argon2id hash.
    let db = w.server.database_bytes();
    assert!(
        !db.windows(b"a long viewer passphrase".len())
            .any(|x| x == b"a long viewer passphrase"),
        "the password is stored in the clear"
    );
    assert!(
        db.windows(10).any(|x| x == b"$argon2id$"),
        "no argon2id hash stored"
    );
    // Too short a password is refused in words.
    let short = w.path("short.password");
    std::fs::write(&short, "short\n").unwrap();
    let r = w.ctl(&[
        "users",
        "add",
        "tiny",
        "--role",
        "viewer",
        "--password-file",
        short.to_str().unwrap(),
    ]);
    assert_ne!(r.code, Some(0), "{r}");
    assert!(r.stderr.contains("at least 12 characters"), "{r}");

    // The right password signs in, to where the user was going.
    let (status, location, cookie) = password_sign_in(&w, "vera", "a long viewer passphrase");
    assert_eq!((status, location.as_str()), (303, "/hosts"));
    let cookie = cookie.expect("a session cookie");
    assert_eq!(page_status(&w, &cookie, "/hosts").0, 200);
    // The viewer may not open the admin's pages.
    assert_eq!(page_status(&w, &cookie, "/settings").0, 403);

    // A changed role ends the session at its next request.
    w.ctl(&["users", "edit", "vera", "--role", "operator"]).ok();
    let (status, location) = page_status(&w, &cookie, "/hosts");
    assert_eq!(status, 303, "the session outlived the role change");
    assert!(location.starts_with("/login"), "{location}");
    // Signing in again gives the new role; removing the user ends that session too.
    let (_, _, cookie) = password_sign_in(&w, "vera", "a long viewer passphrase");
    let cookie = cookie.unwrap();
    assert_eq!(page_status(&w, &cookie, "/hosts").0, 200);
    w.ctl(&["users", "remove", "vera"]).ok();
    assert_eq!(page_status(&w, &cookie, "/hosts").0, 303);

    // A wrong password, or a user without one, is refused alike.
    add_user(&w, "olga", "operator", "olga's own passphrase");
    let (_, location, cookie) = password_sign_in(&w, "olga", "not her passphrase");
    assert!(location.starts_with("/login?failed=password"), "{location}");
    assert!(cookie.is_none());
    let (_, location, _) = password_sign_in(&w, "admin", "the admin has no password");
    assert!(location.starts_with("/login?failed=password"), "{location}");
    // Guessing one name is slowed: after a few tries, 429 for that name, whatever the
    // password, while other names still sign in.
    let mut refused = 0;
    for _ in 0..6 {
        let (status, _, _) = password_sign_in(&w, "olga", "guess guess guess");
        if status == 429 {
            refused += 1;
        }
    }
    assert!(refused >= 2, "guessing was not slowed ({refused} refusals)");
    let (status, _, _) = password_sign_in(&w, "olga", "olga's own passphrase");
    assert_eq!(
        status, 429,
        "the name's budget is spent even for the right password"
    );
    add_user(&w, "otto", "operator", "otto's own passphrase");
    let (status, _, cookie) = password_sign_in(&w, "otto", "otto's own passphrase");
    assert_eq!(status, 303);
    assert!(cookie.is_some());
}

#[test]
fn a_viewer_sees_no_button_they_may_not_press_and_an_approver_approves_a_campaign() {
    let w = World::new();
    w.release("1.0.0", &[]);
    let device = w.device();
    device.run("check").ok();
    w.release("1.1.0", &[]);
    device.run("check").ok();
    add_user(&w, "vera", "viewer", "a long viewer passphrase");
    add_user(&w, "alma", "approver", "a long approver passphrase");
    add_user(&w, "olga", "operator", "a long operator passphrase");
    let host = w.ctl_json(&["hosts", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    block_on(async {
        let b = Browser::start(&w.server.url()).await;
        // The operator creates a campaign that needs approval, in the browser.
        b.sign_in_password("olga", "a long operator passphrase", "/campaigns")
            .await;
        b.wait_text("#who", "olga (operator)").await;
        b.click("#new-campaign select[name=release] option[value='web@1.1.0']")
            .await;
        b.click("#new-campaign input[name=target][value=all]").await;
        b.click("#new-campaign input[name=require_approval]").await;
        b.click("#new-campaign button[type=submit]").await;
        b.wait_text("h1", "Review the campaign").await;
        b.click("form.stack button[type=submit]").await;
        let campaign = b.wait_path("/campaigns/").await;
        b.wait_text("#approval", "Waits for approval").await;
        assert!(campaign.starts_with("/campaigns/"), "{campaign}");
        // Its creator is offered no approval, and it does not start.
        assert!(!b.holds("return !!document.querySelector('#approve')").await);
        assert!(b.text("#status").await.contains("paused"));
        b.sign_out().await;

        // A viewer: every page, and no form that changes anything but signing out.
        b.sign_in_password("vera", "a long viewer passphrase", "/")
            .await;
        b.wait_text("#who", "vera (viewer)").await;
        let nav = b.text("header nav").await;
        assert!(
            nav.contains("Hosts") && !nav.contains("Settings") && !nav.contains("Audit"),
            "{nav}"
        );
        for page in [
            "/".to_string(),
            "/hosts".into(),
            format!("/hosts/{host}"),
            "/campaigns".into(),
            campaign.clone(),
            "/items".into(),
            "/batches".into(),
            "/history".into(),
            "/packages".into(),
        ] {
            b.goto(&page).await;
            b.wait_path(page.split('?').next().unwrap()).await;
            let forms = b.post_forms().await;
            assert_eq!(
                forms,
                vec!["/logout".to_string()],
                "on {page} a viewer is offered {forms:?}"
            );
        }
        b.screenshot("viewer-host").await;
        b.sign_out().await;

        // The approver approves: the first wave opens.
        b.sign_in_password("alma", "a long approver passphrase", &campaign)
            .await;
        b.click("#approve button").await;
        b.wait_text(".flash", "approved").await;
        b.wait_text("#approval", "Approved by alma").await;
        b.wait_text("#status", "running").await;
        b.close().await;
    });
    let c = w.ctl_json(&["campaigns", "list"]);
    assert_eq!(c[0]["approval"]["approved_by"], "alma", "{c}");
    assert_eq!(c[0]["status"], "running", "{c}");
}

/// The server's config for single sign-on through `issuer`, back to `server`.
fn oidc_config(issuer: &str, server: &str, secret_file: &std::path::Path) -> String {
    format!(
        r#"[oidc]
issuer = "{issuer}"
client_id = "ferry"
client_secret_file = "{}"
redirect_url = "{server}/login/sso/callback"

[[oidc.roles]]
group = "ferry-admins"
role = "admin"

[[oidc.roles]]
group = "ferry-operators"
role = "operator"

[[oidc.roles]]
group = "ferry-viewers"
role = "viewer"
"#,
        secret_file.display()
    )
}

#[test]
fn single_sign_on_through_a_real_provider_gives_the_role_of_the_users_groups() {
    let mut w = World::with_server_config("");
    let server = w.server.url();
    let secret = w.path("oidc-secret");
    std::fs::write(&secret, "a-client-secret-for-tests\n").unwrap();
    let provider = crate::util::oidc::Provider::start(
        &format!("{server}/login/sso/callback"),
        "a-client-secret-for-tests",
    );
    std::fs::write(
        w.dir.path().join("server.toml"),
        oidc_config(&provider.issuer, &server, &secret),
    )
    .unwrap();
    w.server.kill();
    w.server.restart_same_port();

    block_on(async {
        let b = Browser::start(&server).await;
        let provider_sign_in = |login: &'static str| {
            let b = &b;
            async move {
                b.goto("/login?next=/hosts").await;
                b.click("#sso").await;
                // The provider's own sign-in page, then its consent page.
                b.fill("input[name=login]", login).await;
                b.fill("input[name=password]", "anything").await;
                b.click("button[type=submit]").await;
                b.wait_text("button[type=submit]", "Continue").await;
                b.click("button[type=submit]").await;
            }
        };
        // olga is in `staff` and `ferry-operators`: an operator.
        provider_sign_in("olga").await;
        b.wait_path("/hosts").await;
        b.wait_text("#who", "olga (operator)").await;
        b.screenshot("sso-signed-in").await;
        b.sign_out().await;
        // Signing out of Ferry leaves the provider's own session: forget it (the cookies of
        // 127.0.0.1, both ports), so that the next sign-in is someone else's.
        b.client.delete_all_cookies().await.unwrap();
        // Someone in no group the server names is not let in.
        provider_sign_in("nobody").await;
        b.wait_path("/login").await;
        b.wait_text("[role=alert]", "Single sign-on did not complete")
            .await;
        b.close().await;
    });
    let users = w.ctl_json(&["users", "list"]);
    let olga = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "olga")
        .unwrap_or_else(|| panic!("no user olga: {users}"));
    assert_eq!(olga["role"], "operator", "{users}");
    assert_eq!(olga["single_sign_on"], true, "{users}");
    assert!(
        !users
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["name"] == "nobody"),
        "{users}"
    );
    eventually(
        "the refusal logged with its reason",
        Duration::from_secs(5),
        || {
            w.server
                .log_text()
                .contains("is in none of the groups [[oidc.roles]] names")
        },
    );
    drop(provider);
}
