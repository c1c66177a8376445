//! Devices that speak hawkBit's DDI API join the fleet, tested with the real client: Debian's
//! `swupdate` (its suricatta daemon) polls with its target token (`ferryctl ddi token`) and
//! sends its attributes once, and a second one joins with the tenant's gateway token
//! (`ferryctl ddi gateway-token`); a wrong, replaced or missing token is refused.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::util::{eventually, http, World};

/// A running `swupdate -u …` (suricatta), stopped with the test.
struct Swupdate(Child);

impl Swupdate {
    /// Runs swupdate with `suricatta` settings (libconfig) and the device's `identify`
    /// attributes, its sockets in `dir`.
    fn start(dir: &Path, name: &str, suricatta: &str) -> Swupdate {
        let home = dir.join(format!("swupdate-{name}"));
        fs::create_dir_all(&home).unwrap();
        // Debian's swupdate accepts only signed images: it wants the signer's certificate
        // even to start.
        let signer = home.join("signer.pem");
        let made = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=swu signer"])
            .arg("-keyout")
            .arg(home.join("signer.key"))
            .arg("-out")
            .arg(&signer)
            .args(["-addext", "extendedKeyUsage=emailProtection"])
            .output()
            .expect("openssl");
        assert!(made.status.success(), "{made:?}");
        let cfg = home.join("swupdate.cfg");
        fs::write(
            &cfg,
            format!(
                "globals : {{ verbose = true; loglevel = 6; }};\nidentify : ( {{ name = \"board\"; value = \"pump-7\"; }}, {{ name = \"serial\"; value = \"{name}-0042\"; }} );\nsuricatta : {{ {suricatta} polldelay = 1; }};\n"
            ),
        )
        .unwrap();
        let log = fs::File::create(home.join("swupdate.log")).unwrap();
        let child = Command::new("swupdate")
            .arg("-f")
            .arg(&cfg)
            .arg("-k")
            .arg(&signer)
            .args(["-H", "board:1.0", "-u", ""])
            .env("TMPDIR", &home)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("swupdate (Debian's package; scripts/test installs it)");
        Swupdate(child)
    }
}

impl Drop for Swupdate {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn host<'a>(hosts: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    hosts.as_array()?.iter().find(|h| h["hostname"] == name)
}

#[test]
fn swupdate_devices_join_with_a_target_or_a_gateway_token_and_send_their_attributes() {
    let w = World::new();
    let url = w.server.url();
    let token = w
        .ctl(&["ddi", "token", "ddi-1"])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert!(token.starts_with("fdt_"), "{token}");
    // Asked again: the same token, the same host.
    assert_eq!(w.ctl(&["ddi", "token", "ddi-1"]).ok().stdout.trim(), token);
    let hosts = w.ctl_json(&["hosts", "list"]);
    let added = host(&hosts, "ddi-1").expect("the host is added with its token");
    assert_eq!(added["kind"], "ddi", "{added}");

    let _one = Swupdate::start(
        w.dir.path(),
        "ddi-1",
        &format!(
            "tenant = \"default\"; id = \"ddi-1\"; url = \"{url}\"; targettoken = \"{token}\";"
        ),
    );
    eventually(
        "swupdate sent its attributes",
        Duration::from_secs(30),
        || {
            let hosts = w.ctl_json(&["hosts", "list"]);
            host(&hosts, "ddi-1").is_some_and(|h| h["attributes"]["board"] == "pump-7")
        },
    );
    let hosts = w.ctl_json(&["hosts", "list"]);
    let one = host(&hosts, "ddi-1").unwrap();
    assert_eq!(one["attributes"]["serial"], "ddi-1-0042", "{one}");
    assert_eq!(one["online"], true, "{one}");
    // Once they are in, the poll no longer asks for them (SWUpdate installs nothing while it
    // does), and always says how long to sleep.
    let poll: serde_json::Value = http()
        .get(format!("{url}/default/controller/v1/ddi-1"))
        .header("Authorization", format!("TargetToken {token}"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(poll["_links"]["configData"].is_null(), "{poll}");
    assert!(
        poll["config"]["polling"]["sleep"]
            .as_str()
            .is_some_and(|s| s.len() == 8 && s.matches(':').count() == 2),
        "{poll}"
    );

    // With the tenant's gateway token, a device joins under its own controller id.
    let gateway = w
        .ctl(&["ddi", "gateway-token"])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert!(gateway.starts_with("fdg_"), "{gateway}");
    let _two = Swupdate::start(
        w.dir.path(),
        "ddi-gw-2",
        &format!(
            "tenant = \"default\"; id = \"ddi-gw-2\"; url = \"{url}\"; gatewaytoken = \"{gateway}\";"
        ),
    );
    eventually("the gateway device joined", Duration::from_secs(30), || {
        let hosts = w.ctl_json(&["hosts", "list"]);
        host(&hosts, "ddi-gw-2")
            .is_some_and(|h| h["kind"] == "ddi" && h["attributes"]["serial"] == "ddi-gw-2-0042")
    });

    // Refused: no token, another device's, a wrong one, an agent's name, a replaced gateway
    // token.
    let status = |path: &str, auth: Option<String>| {
        let mut req = http().get(format!("{url}/default/controller/v1/{path}"));
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        req.send().unwrap().status().as_u16()
    };
    assert_eq!(status("ddi-1", None), 401);
    assert_eq!(
        status("ddi-gw-2", Some(format!("TargetToken {token}"))),
        401
    );
    assert_eq!(status("ddi-1", Some("TargetToken fdt_wrong".into())), 401);
    assert_eq!(status("ddi-1", Some(format!("Bearer {token}"))), 401);
    assert_eq!(status("ddi-1", Some(format!("TargetToken {token}"))), 200);
    assert_eq!(status("../x", Some(format!("TargetToken {token}"))), 404);
    w.agent("once").ok();
    let agent = w.ctl(&["ddi", "token", "device-1"]).code(1);
    assert!(agent.stderr.contains("Ferry agent"), "{agent}");
    let rotated = w
        .ctl(&["ddi", "gateway-token", "--rotate"])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert_ne!(rotated, gateway);
    assert_eq!(
        status("ddi-gw-3", Some(format!("GatewayToken {gateway}"))),
        401
    );
    assert_eq!(
        status("ddi-gw-3", Some(format!("GatewayToken {rotated}"))),
        200
    );
    assert_eq!(status("ddi-1", Some(format!("TargetToken {token}"))), 200);
}
