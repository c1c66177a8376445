//! Devices that speak hawkBit's DDI API join the fleet, tested with the real client: Debian's
//! `swupdate` (its suricatta daemon) polls with its target token (`ferryctl ddi token`) and
//! sends its attributes once, and a second one joins with the tenant's gateway token
//! (`ferryctl ddi gateway-token`); a wrong, replaced or missing token is refused. A `.swu`
//! made with SWUpdate's format (a CPIO archive led by a CMS-signed `sw-description`) is
//! released with `ferryctl release build --artifact`, rolled out by a campaign and installed
//! by swupdate into a file the test reads; its feedback is the update's live output, a
//! restart confirms it, a repeat is skipped, a cancelled action is answered.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::util::{eventually, http, World};

/// A running `swupdate -u …` (suricatta), stopped with the test (its log printed if the test
/// failed).
struct Swupdate(Child, std::path::PathBuf);

impl Swupdate {
    /// Runs swupdate with `suricatta` settings (libconfig) and the device's `identify`
    /// attributes, its sockets in `dir`; `extra` goes to suricatta's command line.
    fn start(dir: &Path, name: &str, suricatta: &str) -> Swupdate {
        Swupdate::start_with(dir, name, suricatta, "")
    }

    fn start_with(dir: &Path, name: &str, suricatta: &str, extra: &str) -> Swupdate {
        let home = dir.join(format!("swupdate-{name}"));
        fs::create_dir_all(&home).unwrap();
        // Debian's swupdate accepts only signed images: it wants the signer's certificate
        // even to start.
        let signer = signer(dir);
        let cfg = home.join("swupdate.cfg");
        fs::write(
            &cfg,
            format!(
                "globals : {{ verbose = true; loglevel = 6; }};\nidentify : ( {{ name = \"board\"; value = \"pump-7\"; }}, {{ name = \"serial\"; value = \"{name}-0042\"; }} );\nsuricatta : {{ {suricatta} polldelay = 1; }};\n"
            ),
        )
        .unwrap();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(home.join("swupdate.log"))
            .unwrap();
        let child = Command::new("swupdate")
            .arg("-f")
            .arg(&cfg)
            .arg("-k")
            .arg(&signer)
            .args(["-H", "board:1.0", "-u", extra])
            .env("TMPDIR", &home)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("swupdate (Debian's package; scripts/test installs it)");
        Swupdate(child, home.join("swupdate.log"))
    }
}

impl Drop for Swupdate {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if std::thread::panicking() {
            let log = fs::read_to_string(&self.1).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let from = lines.len().saturating_sub(120);
            eprintln!("--- {} ---\n{}", self.1.display(), lines[from..].join("\n"));
        }
    }
}

/// The bundle signer's certificate (made once per test directory) for `swupdate -k`.
fn signer(dir: &Path) -> std::path::PathBuf {
    let pem = dir.join("swu-signer.pem");
    if !pem.exists() {
        let made = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=swu signer"])
            .arg("-keyout")
            .arg(dir.join("swu-signer.key"))
            .arg("-out")
            .arg(&pem)
            .args(["-addext", "extendedKeyUsage=emailProtection"])
            .output()
            .expect("openssl");
        assert!(made.status.success(), "{made:?}");
    }
    pem
}

/// A `.swu` as SWUpdate's documentation makes one: `sw-description` (writing `image` raw
/// to `target`), its CMS signature, the image, in a CPIO archive (`crc` format).
fn swu(dir: &Path, version: &str, image: &[u8], target: &Path) -> std::path::PathBuf {
    let work = dir.join(format!("swu-{version}"));
    fs::create_dir_all(&work).unwrap();
    fs::write(work.join("rootfs.img"), image).unwrap();
    let sha = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(image))
    };
    fs::write(
        work.join("sw-description"),
        format!(
            "software = {{\n  version = \"{version}\";\n  hardware-compatibility: [ \"1.0\" ];\n  images: ( {{\n    filename = \"rootfs.img\";\n    device = \"{}\";\n    type = \"raw\";\n    sha256 = \"{sha}\";\n  }} );\n}}\n",
            target.display()
        ),
    )
    .unwrap();
    let pem = signer(dir);
    let signed = Command::new("openssl")
        .args([
            "cms",
            "-sign",
            "-in",
            "sw-description",
            "-out",
            "sw-description.sig",
        ])
        .arg("-signer")
        .arg(&pem)
        .arg("-inkey")
        .arg(dir.join("swu-signer.key"))
        .args(["-outform", "DER", "-nosmimecap", "-binary"])
        .current_dir(&work)
        .output()
        .expect("openssl");
    assert!(signed.status.success(), "{signed:?}");
    let out = dir.join(format!("os-{version}.swu"));
    let mut cpio = Command::new("cpio")
        .args(["-o", "-H", "crc"])
        .current_dir(&work)
        .stdin(Stdio::piped())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("cpio (scripts/test installs it)");
    use std::io::Write as _;
    cpio.stdin
        .take()
        .unwrap()
        .write_all(b"sw-description\nsw-description.sig\nrootfs.img\n")
        .unwrap();
    assert!(cpio.wait().unwrap().success());
    out
}

fn host<'a>(hosts: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    hosts.as_array()?.iter().find(|h| h["hostname"] == name)
}

#[test]
fn swupdate_devices_join_with_a_target_or_a_gateway_token_and_send_their_attributes() {
    let w = World::new();
    let url = w.server.url();
    let token = target_token(&w, "ddi-1");
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

/// The history entries of `host`.
fn history_of(w: &World, host: &str) -> Vec<serde_json::Value> {
    w.history()
        .into_iter()
        .filter(|h| h["hostname"] == host)
        .collect()
}

/// The history entry of the update `queued` (as `update trigger --json` printed it).
fn entry_of(w: &World, queued: &serde_json::Value) -> Option<serde_json::Value> {
    w.history().into_iter().find(|h| h["id"] == queued["id"])
}

#[test]
fn a_campaign_installs_a_swu_bundle_through_swupdate_and_its_feedback_is_the_history() {
    // The poll's sleep is the server's to say; clients follow it over their own.
    let w = World::with_server_config("ddi_poll_secs = 1\n");
    let url = w.server.url();
    let target = w.path("target.img");
    fs::write(&target, b"").unwrap();
    let image: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let built = publish_bundle(&w, "1.1.0", &swu(w.dir.path(), "1.1.0", &image, &target));
    assert!(built.contains("swupdate bundle"), "{built}");
    let releases = w.ctl_json(&["releases", "list"]);
    let os = releases
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["item"] == "os")
        .expect("the bundle release is listed");
    assert_eq!(os["bundle"], "swupdate", "{os}");

    // An agent cannot be given it, and the DDI device cannot be given a tarball.
    w.release("1.0.0", &[]);
    w.agent("once").ok();
    let refused = w.ctl(&[
        "update",
        "trigger",
        "--host",
        "device-1",
        "--item",
        "os",
        "--version",
        "1.1.0",
    ]);
    assert_ne!(refused.code, Some(0), "{refused}");
    assert!(refused.stderr.contains("hawkBit client"), "{refused}");
    let token = target_token(&w, "ddi-1");
    let refused = w.ctl(&["update", "trigger", "--host", "ddi-1", "--item", "web"]);
    assert!(
        refused.stderr.contains("SWUpdate or RAUC bundles"),
        "{refused}"
    );

    let suricatta = format!(
        "tenant = \"default\"; id = \"ddi-1\"; url = \"{url}\"; targettoken = \"{token}\";"
    );
    let device = Swupdate::start(w.dir.path(), "ddi-1", &suricatta);
    let campaign = w.ctl_json(&[
        "campaigns",
        "create",
        "--item",
        "os",
        "--version",
        "1.1.0",
        "--all",
        "--allow-empty",
    ]);
    eventually("swupdate wrote the image", Duration::from_secs(60), || {
        fs::read(&target).is_ok_and(|t| t == image)
    });
    // Its feedback is the update's output; installed, it waits to be confirmed after the
    // device's restart, as SWUpdate does.
    eventually(
        "the feedback is in the history",
        Duration::from_secs(30),
        || {
            history_of(&w, "ddi-1").first().is_some_and(|h| {
                h["output"]
                    .as_str()
                    .is_some_and(|o| o.contains("All Chunks Installed"))
            })
        },
    );
    let entry = history_of(&w, "ddi-1")[0].clone();
    assert_eq!(entry["status"], "pending", "{entry}");
    assert!(
        entry["output"]
            .as_str()
            .unwrap()
            .contains("[proceeding] Installing Update Chunk Artifacts"),
        "{entry}"
    );
    drop(device);
    let restarted = Swupdate::start_with(w.dir.path(), "ddi-1", &suricatta, "-c 2");
    eventually("the restart confirmed it", Duration::from_secs(30), || {
        history_of(&w, "ddi-1")
            .first()
            .is_some_and(|h| h["status"] == "installed")
    });
    let entry = history_of(&w, "ddi-1")[0].clone();
    assert_eq!(entry["version"], "1.1.0", "{entry}");
    assert!(
        entry["output"].as_str().unwrap().contains("[closed]"),
        "{entry}"
    );
    let id = campaign["id"].as_str().unwrap().to_string();
    eventually("the campaign completed", Duration::from_secs(30), || {
        w.ctl_json(&["campaigns", "show", &id])["status"] == "completed"
    });
    let hosts = w.ctl_json(&["hosts", "list"]);
    let ddi = host(&hosts, "ddi-1").unwrap();
    assert!(
        ddi.to_string().contains("1.1.0"),
        "the host has os 1.1.0: {ddi}"
    );

    // Asked again for the version it has: `update: skip`, which SWUpdate closes as done
    // without installing.
    fs::write(&target, b"untouched").unwrap();
    let repeat = w.ctl_json(&[
        "update",
        "trigger",
        "--host",
        "ddi-1",
        "--item",
        "os",
        "--version",
        "1.1.0",
        "--force",
    ]);
    eventually("the repeat was skipped", Duration::from_secs(30), || {
        entry_of(&w, &repeat).is_some_and(|h| {
            h["status"] == "installed"
                && h["output"]
                    .as_str()
                    .is_some_and(|o| o.contains("Skipped Update"))
        })
    });
    assert_eq!(fs::read(&target).unwrap(), b"untouched");

    // The download as the device makes it: HEAD, a range, a range past the end (416), and
    // only with the device's token, only while the action is open.
    drop(restarted);
    let image2: Vec<u8> = (0..2_000_000u32).map(|i| (i * 13 % 241) as u8).collect();
    let bundle2 = swu(w.dir.path(), "1.2.0", &image2, &target);
    publish_bundle(&w, "1.2.0", &bundle2);
    let queued = w.ctl_json(&[
        "update",
        "trigger",
        "--host",
        "ddi-1",
        "--item",
        "os",
        "--version",
        "1.2.0",
    ]);
    let auth = format!("TargetToken {token}");
    let as_device = |path: &str| {
        http()
            .get(format!("{url}/default/controller/v1/ddi-1{path}"))
            .header("Authorization", &auth)
            .send()
            .unwrap()
    };
    let poll: serde_json::Value = as_device("").json().unwrap();
    let href = poll["_links"]["deploymentBase"]["href"]
        .as_str()
        .unwrap_or_else(|| panic!("no deploymentBase offered: {poll}"))
        .to_string();
    let action_id = href.rsplit('/').next().unwrap().to_string();
    assert!(action_id.parse::<i32>().is_ok_and(|n| n > 0), "{href}");
    let base: serde_json::Value = http()
        .get(&href)
        .header("Authorization", &auth)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(base["id"], action_id.as_str(), "{base}");
    let artifact = &base["deployment"]["chunks"][0]["artifacts"][0];
    let bytes = fs::read(&bundle2).unwrap();
    let sha1 = {
        let out = Command::new("sha1sum").arg(&bundle2).output().unwrap();
        String::from_utf8_lossy(&out.stdout)[..40].to_string()
    };
    assert_eq!(artifact["hashes"]["sha1"], sha1.as_str(), "{base}");
    assert_eq!(artifact["size"], bytes.len() as u64, "{base}");
    let download = artifact["_links"]["download-http"]["href"]
        .as_str()
        .unwrap()
        .to_string();
    let head = http()
        .head(&download)
        .header("Authorization", &auth)
        .send()
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-length"].to_str().unwrap(),
        bytes.len().to_string()
    );
    let part = http()
        .get(&download)
        .header("Authorization", &auth)
        .header("Range", "bytes=100-199")
        .send()
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().unwrap().as_ref(), &bytes[100..200]);
    let past = http()
        .get(&download)
        .header("Authorization", &auth)
        .header("Range", format!("bytes={}-", bytes.len()))
        .send()
        .unwrap();
    assert_eq!(past.status(), 416);
    let stranger = http().get(&download).send().unwrap();
    assert_eq!(stranger.status(), 401);

    // Cancelled after it was offered: the poll offers cancelAction until the device answers,
    // and the device installs nothing.
    let id = queued["id"].as_str().unwrap().to_string();
    w.ctl(&["update", "cancel", &id]).ok();
    let poll: serde_json::Value = as_device("").json().unwrap();
    assert!(poll["_links"]["deploymentBase"].is_null(), "{poll}");
    assert!(
        poll["_links"]["cancelAction"]["href"]
            .as_str()
            .is_some_and(|h| h.ends_with(&format!("/cancelAction/{action_id}"))),
        "{poll}"
    );
    assert_eq!(
        http()
            .get(&download)
            .header("Authorization", &auth)
            .send()
            .unwrap()
            .status(),
        404,
        "a cancelled action's bundle is not served"
    );
    let _again = Swupdate::start(w.dir.path(), "ddi-1", &suricatta);
    eventually(
        "the device confirmed the cancel",
        Duration::from_secs(30),
        || {
            let poll: serde_json::Value = as_device("").json().unwrap();
            poll["_links"]["cancelAction"].is_null()
        },
    );
    let entry = entry_of(&w, &queued).unwrap();
    assert_eq!(entry["status"], "cancelled", "{entry}");
    assert_eq!(fs::read(&target).unwrap(), b"untouched");
}

/// How the test's relay to the server treats answers.
#[derive(Clone, Copy)]
enum Link {
    /// Cuts, once, the connection whose answer passes this many bytes (a download: polls and
    /// feedback are small), as a flaky uplink would.
    CutAfter(usize),
    /// Passes this many bytes a second on each connection, as a slow uplink would.
    Slow(usize),
}

/// A relay on a free loopback port to the server, behaving as `link` says.
fn relay(server: &str, link: Link) -> String {
    use std::io::{Read as _, Write as _};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = server.trim_start_matches("http://").to_string();
    let cut = Arc::new(AtomicBool::new(false));
    std::thread::spawn(move || {
        for client in listener.incoming().flatten().take(10_000) {
            let Ok(upstream) = TcpStream::connect(&server) else {
                continue;
            };
            let (mut c_in, mut u_out) =
                (client.try_clone().unwrap(), upstream.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_in, &mut u_out);
                let _ = u_out.shutdown(Shutdown::Write);
            });
            let cut = Arc::clone(&cut);
            let (mut u_in, mut c_out) = (upstream, client);
            std::thread::spawn(move || {
                let (mut sent, mut buf) = (0usize, vec![0u8; 16 * 1024]);
                loop {
                    let n = match u_in.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    sent += n;
                    match link {
                        Link::CutAfter(limit)
                            if sent > limit && !cut.swap(true, Ordering::SeqCst) =>
                        {
                            let _ = c_out.shutdown(Shutdown::Both);
                            let _ = u_in.shutdown(Shutdown::Both);
                            return;
                        }
                        Link::Slow(rate) => {
                            std::thread::sleep(Duration::from_secs_f64(n as f64 / rate as f64))
                        }
                        _ => {}
                    }
                    if c_out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = c_out.shutdown(Shutdown::Write);
            });
        }
    });
    format!("http://{addr}")
}

/// The target token of DDI device `name` (`ferryctl ddi token`).
fn target_token(w: &World, name: &str) -> String {
    w.ctl(&["ddi", "token", name])
        .ok()
        .stdout
        .trim()
        .to_string()
}

/// Builds and publishes `os` `version` from the bundle at `bundle`; what the build said.
fn publish_bundle(w: &World, version: &str, bundle: &Path) -> String {
    let out = w.path(&format!("out-os-{version}"));
    let built = w
        .ctl(&[
            "release",
            "build",
            "--item",
            "os",
            "--version",
            version,
            "--artifact",
            bundle.to_str().unwrap(),
            "--key",
            "keys/release.key",
            "--out",
            out.to_str().unwrap(),
        ])
        .ok();
    w.publish(&out);
    built.stdout
}

/// A DDI device `name` behind a relay that treats its link as `link`, with a pending install
/// of a 4 MB `.swu` of `version` it writes to `target`: the world, the image, the queued
/// update and the running swupdate.
struct Behind {
    w: World,
    target: std::path::PathBuf,
    image: Vec<u8>,
    queued: serde_json::Value,
    _device: Swupdate,
}

fn device_behind(name: &str, version: &str, link: Link, seed: u32) -> Behind {
    let w = World::with_server_config("ddi_poll_secs = 1\n");
    let target = w.path("target.img");
    fs::write(&target, b"before").unwrap();
    let image: Vec<u8> = (0..4_000_000u32).map(|i| (i * seed % 227) as u8).collect();
    publish_bundle(&w, version, &swu(w.dir.path(), version, &image, &target));
    let token = target_token(&w, name);
    let queued = w.ctl_json(&["update", "trigger", "--host", name, "--item", "os"]);
    let relay = relay(&w.server.url(), link);
    let device = Swupdate::start(
        w.dir.path(),
        name,
        &format!(
            "tenant = \"default\"; id = \"{name}\"; url = \"{relay}\"; targettoken = \"{token}\"; retrywait = 1;"
        ),
    );
    Behind {
        w,
        target,
        image,
        queued,
        _device: device,
    }
}

#[test]
fn a_download_cancelled_midway_stops_and_the_device_confirms() {
    // 4 MB at 200 kB/s: about 20 s to download, time enough to cancel it on the way.
    let b = device_behind("slow-1", "3.0.0", Link::Slow(200_000), 3);
    let w = &b.w;
    eventually("the download began", Duration::from_secs(30), || {
        w.server
            .log_text()
            .lines()
            .any(|l| l.contains("softwaremodules") && l.contains("started processing"))
    });
    std::thread::sleep(Duration::from_secs(2));
    w.ctl(&["update", "cancel", b.queued["id"].as_str().unwrap()])
        .ok();
    eventually(
        "the device confirmed the cancel",
        Duration::from_secs(30),
        || {
            entry_of(w, &b.queued).is_some_and(|h| {
                h["output"]
                    .as_str()
                    .is_some_and(|o| o.contains("cancellation confirmed by the device"))
            })
        },
    );
    let entry = entry_of(w, &b.queued).unwrap();
    assert_eq!(entry["status"], "cancelled", "{entry}");
    std::thread::sleep(Duration::from_secs(2));
    assert_ne!(
        fs::read(&b.target).unwrap(),
        b.image,
        "the cancelled image was installed"
    );
}

#[test]
fn a_download_cut_midway_is_resumed_and_the_bundle_installs() {
    let b = device_behind("cut-1", "2.0.0", Link::CutAfter(1_000_000), 11);
    let w = &b.w;
    eventually(
        "swupdate wrote the whole image",
        Duration::from_secs(60),
        || fs::read(&b.target).is_ok_and(|t| t == b.image),
    );
    eventually("its feedback arrived", Duration::from_secs(30), || {
        entry_of(w, &b.queued).is_some_and(|h| {
            h["output"]
                .as_str()
                .is_some_and(|o| o.contains("All Chunks Installed"))
        })
    });
    // It went on from where the cut left it: a range of the bundle was asked for.
    let log = w.server.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("softwaremodules") && l.contains("status=206")),
        "no resumed (206) download in the server log"
    );
}

/// A RAUC bundle made with Debian's `rauc` goes out the same way. rauc-hawkbit-updater cannot
/// be built here (its source is on GitHub, and Debian has it only in unstable, whose pool this
/// machine cannot reach), so the test makes the calls it makes, in its order
/// (`src/hawkbit-client.c`): poll, `deploymentBase`, download resumed after a cut with a
/// range, a range past the end (416, taken as complete), then `rauc info --keyring` checks
/// the bundle's CMS signature as `rauc install` would, and `closed` feedback ends the update.
#[test]
fn a_rauc_bundle_goes_to_a_ddi_device_and_verifies_with_raucs_own_keyring() {
    let w = World::new();
    let url = w.server.url();
    let dir = w.path("rauc");
    fs::create_dir_all(dir.join("in")).unwrap();
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=rauc signer",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
        ])
        .current_dir(&dir)
        .output()
        .expect("openssl");
    assert!(made.status.success(), "{made:?}");
    let image: Vec<u8> = (0..500_000u32).map(|i| (i * 5 % 233) as u8).collect();
    fs::write(dir.join("in/rootfs.img"), &image).unwrap();
    fs::write(
        dir.join("in/manifest.raucm"),
        "[update]\ncompatible=pump\nversion=3.0.0\n\n[image.rootfs]\nfilename=rootfs.img\n",
    )
    .unwrap();
    let bundled = Command::new("rauc")
        .args([
            "bundle",
            "--cert",
            "cert.pem",
            "--key",
            "key.pem",
            "in",
            "pump.raucb",
        ])
        .current_dir(&dir)
        .output()
        .expect("rauc (scripts/test installs it)");
    assert!(bundled.status.success(), "{bundled:?}");
    let out = w.path("out-pump-3.0.0");
    let built = w
        .ctl(&[
            "release",
            "build",
            "--item",
            "pump-os",
            "--version",
            "3.0.0",
            "--artifact",
            dir.join("pump.raucb").to_str().unwrap(),
            "--key",
            "keys/release.key",
            "--out",
            out.to_str().unwrap(),
        ])
        .ok();
    assert!(built.stdout.contains("rauc bundle"), "{built}");
    w.publish(&out);
    let token = target_token(&w, "pump-1");
    let queued = w.ctl_json(&["update", "trigger", "--host", "pump-1", "--item", "pump-os"]);
    let auth = format!("TargetToken {token}");
    let get = |u: &str, range: Option<String>| {
        let mut r = http().get(u).header("Authorization", &auth);
        if let Some(range) = range {
            r = r.header("Range", range);
        }
        r.send().unwrap()
    };
    let poll: serde_json::Value = get(&format!("{url}/default/controller/v1/pump-1"), None)
        .json()
        .unwrap();
    let base_url = poll["_links"]["deploymentBase"]["href"]
        .as_str()
        .unwrap_or_else(|| panic!("{poll}"))
        .to_string();
    let base: serde_json::Value = get(&base_url, None).json().unwrap();
    // rauc-hawkbit-updater wants the id as a string, and checks sha1 before installing.
    assert!(base["id"].is_string(), "{base}");
    let artifact = &base["deployment"]["chunks"][0]["artifacts"][0];
    assert_eq!(artifact["filename"], "pump-os-3.0.0.raucb", "{base}");
    let size = artifact["size"].as_u64().unwrap() as usize;
    let href = artifact["_links"]["download"]["href"]
        .as_str()
        .unwrap()
        .to_string();
    // The first half, then the rest from where it stopped, then past the end.
    let mut bundle = get(&href, Some(format!("bytes=0-{}", size / 2 - 1)))
        .bytes()
        .unwrap()
        .to_vec();
    let rest = get(&href, Some(format!("bytes={}-", bundle.len())));
    assert_eq!(rest.status(), 206);
    bundle.extend_from_slice(&rest.bytes().unwrap());
    assert_eq!(bundle.len(), size);
    assert_eq!(get(&href, Some(format!("bytes={size}-"))).status(), 416);
    let fetched = dir.join("fetched.raucb");
    fs::write(&fetched, &bundle).unwrap();
    let sha1 = Command::new("sha1sum").arg(&fetched).output().unwrap();
    assert_eq!(
        artifact["hashes"]["sha1"],
        &String::from_utf8_lossy(&sha1.stdout)[..40],
        "{base}"
    );
    let info = Command::new("rauc")
        .args(["info", "--keyring", "cert.pem", "fetched.raucb"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(info.status.success(), "RAUC refused the bundle: {info:?}");
    assert!(
        String::from_utf8_lossy(&info.stdout).contains("3.0.0"),
        "{info:?}"
    );
    // A bundle whose bytes changed on the way is refused by RAUC itself.
    let mut bad = bundle.clone();
    bad[100] ^= 0xff;
    fs::write(dir.join("bad.raucb"), &bad).unwrap();
    let refused = Command::new("rauc")
        .args(["info", "--keyring", "cert.pem", "bad.raucb"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(!refused.status.success(), "RAUC took a tampered bundle");

    let feedback = |execution: &str, finished: &str, detail: &str| {
        http()
            .post(format!("{base_url}/feedback"))
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .body(format!(
                "{{\"id\":\"{}\",\"status\":{{\"execution\":\"{execution}\",\"result\":{{\"finished\":\"{finished}\"}},\"details\":[\"{detail}\"]}}}}",
                base["id"].as_str().unwrap()
            ))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(feedback("proceeding", "none", "Installing: 50%"), 200);
    assert_eq!(
        feedback(
            "closed",
            "success",
            "Software bundle installed successfully."
        ),
        200
    );
    let entry = entry_of(&w, &queued).unwrap();
    assert_eq!(entry["status"], "installed", "{entry}");
    assert!(
        entry["output"]
            .as_str()
            .unwrap()
            .contains("[proceeding] Installing: 50%"),
        "{entry}"
    );
    // The action is closed: nothing more is offered or served, feedback again changes nothing.
    let poll: serde_json::Value = get(&format!("{url}/default/controller/v1/pump-1"), None)
        .json()
        .unwrap();
    assert!(poll["_links"]["deploymentBase"].is_null(), "{poll}");
    assert_eq!(get(&href, None).status(), 404);
    assert_eq!(feedback("closed", "failure", "again"), 200);
    assert_eq!(entry_of(&w, &queued).unwrap()["status"], "installed");
}
