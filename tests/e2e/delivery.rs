//! Links that cost money (docs/delivery.md): a device's `max_download_rate` keeps its
//! download under the cap, and its `download_window` holds a download until the window
//! opens, telling the server why it waits.

use std::fs;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::process::Command;
use std::time::Instant;

use crate::util::World;

/// A release of `web` whose artifact is about `bytes` long (incompressible).
fn big_release(w: &World, version: &str, bytes: usize) {
    let src = w.payload(version, None);
    let mut f = fs::File::create(src.join("static/blob.bin")).unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut block = Vec::with_capacity(bytes);
    for _ in 0..bytes / 8 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        block.extend_from_slice(&x.to_le_bytes());
    }
    f.write_all(&block).unwrap();
    let out = w.build(version, &src, &[]);
    w.publish(&out);
}

#[test]
fn a_capped_download_takes_at_least_its_size_over_the_cap() {
    let w = World::with_agent_extra("max_download_rate = \"512KiB/s\"\n");
    big_release(&w, "1.0.0", 2 << 20);
    w.agent("once").ok();
    w.trigger(Some("1.0.0"));
    let began = Instant::now();
    w.agent("once").ok();
    let took = began.elapsed().as_secs_f64();
    assert_eq!(w.current().as_deref(), Some("releases/1.0.0"));
    // 2 MiB at 512 KiB/s is 4 s at least; an uncapped download on loopback takes a
    // fraction of that. (A lower bound: the cap can only make it slower.)
    assert!(
        took >= 3.8,
        "the 2 MiB download took {took:.2} s under a 512 KiB/s cap"
    );
}

/// The local time now, in minutes after midnight, as the device's clock shows it.
fn local_minute() -> u16 {
    let out = Command::new("date").arg("+%H %M").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.split_whitespace().map(|p| p.parse::<u16>().unwrap());
    parts.next().unwrap() * 60 + parts.next().unwrap()
}

fn hm(minute: u16) -> String {
    let m = minute % (24 * 60);
    format!("{:02}:{:02}", m / 60, m % 60)
}

#[test]
fn a_download_waits_for_its_window_and_the_server_hears_why() {
    let now = local_minute();
    // A window six hours away: the download waits.
    let closed = format!("{}-{}", hm(now + 6 * 60), hm(now + 7 * 60));
    let mut w = World::with_agent_extra(&format!("download_window = \"{closed}\"\n"));
    w.release("1.0.0", &[]);
    w.agent("once").ok();
    w.trigger(Some("1.0.0"));
    w.agent("once").ok();
    assert_eq!(
        w.current(),
        None,
        "downloaded and installed outside its window"
    );
    let entry = &w.history()[0];
    assert_eq!(entry["status"], "pending", "{entry}");
    let message = entry["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("outside the download window {closed}")),
        "{entry}"
    );
    // The device's own status says so too.
    let status = w.device().run("status").ok();
    assert!(
        status
            .stdout
            .contains(&format!("waiting:   outside the download window {closed}")),
        "{status}"
    );
    let json = w.device().status_json();
    let why = json["items"][0]["pending"]["waiting"]
        .as_str()
        .unwrap_or_default();
    assert!(why.starts_with("outside the download window"), "{json}");
    // And the host's page in the web UI, beside the item's status.
    let page = crate::util::http()
        .get(format!(
            "{}/hosts/{}",
            w.server.url(),
            entry["host_id"].as_str().unwrap()
        ))
        .header("cookie", w.session_cookie())
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        page.contains(&format!("waiting: outside the download window {closed}")),
        "{page}"
    );
    // Inside its window, it goes ahead.
    let open = format!("{}-{}", hm(now + 24 * 60 - 60), hm(now + 60));
    w.write_agent_config(&format!("download_window = \"{open}\"\n"));
    w.agent("once").ok();
    assert_eq!(w.current().as_deref(), Some("releases/1.0.0"));
    assert_eq!(w.history()[0]["status"], "installed");
}

#[test]
fn a_bad_rate_or_window_is_refused_with_how_to_write_it() {
    let w = World::with_agent_extra("max_download_rate = \"fast\"\n");
    let run = w.agent("once");
    assert_ne!(run.code, Some(0), "{run}");
    assert!(
        run.stderr.contains("max_download_rate") && run.stderr.contains("200KiB/s"),
        "{run}"
    );
    let w = World::with_agent_extra("download_window = \"1am-5am\"\n");
    let run = w.agent("once");
    assert_ne!(run.code, Some(0), "{run}");
    assert!(
        run.stderr.contains("download_window") && run.stderr.contains("HH:MM-HH:MM"),
        "{run}"
    );
    let w = World::with_agent_extra("max_download_rate = \"500\"\nmin_download_rate = 1024\n");
    let run = w.agent("once");
    assert!(run.stderr.contains("min_download_rate"), "{run}");
}

#[test]
fn twenty_downloads_share_the_servers_egress_cap_and_check_ins_still_answer() {
    let w = World::with_server_config("max_egress_rate = \"4MiB/s\"\n");
    big_release(&w, "1.0.0", 1 << 20);
    w.agent("once").ok();
    let releases = w.ctl_json(&["releases", "list"]);
    let name = releases[0]["artifact_name"].as_str().unwrap().to_string();
    let size = releases[0]["artifact_size"].as_u64().unwrap();
    let url = format!("{}/api/v1/artifacts/{name}", w.server.url());
    let token = w.operator_token();
    let began = Instant::now();
    let downloads: Vec<_> = (0..20)
        .map(|_| {
            let (url, token) = (url.clone(), token.clone());
            std::thread::spawn(move || {
                let body = crate::util::http()
                    .get(&url)
                    .bearer_auth(token)
                    .send()
                    .unwrap()
                    .bytes()
                    .unwrap();
                (body.len() as u64, began.elapsed().as_secs_f64())
            })
        })
        .collect();
    // While they are held, a device's check-in answers at once.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let check = Instant::now();
    w.agent("check").ok();
    let check_took = check.elapsed().as_secs_f64();
    let ends: Vec<(u64, f64)> = downloads.into_iter().map(|d| d.join().unwrap()).collect();
    let last = ends.iter().map(|e| e.1).fold(0.0, f64::max);
    let first = ends.iter().map(|e| e.1).fold(f64::MAX, f64::min);
    assert!(
        ends.iter().all(|e| e.0 == size),
        "a download came back short"
    );
    // 20 MiB at 4 MiB/s is 5 s at least.
    let total = (20 * size) as f64 / (4 << 20) as f64;
    assert!(
        last >= total * 0.95,
        "20 downloads ended after {last:.2} s, the cap allows {total:.2} s at least"
    );
    // Shared fairly: none was served first while the others waited.
    assert!(
        first >= last * 0.6,
        "the first download ended at {first:.2} s, the last at {last:.2} s"
    );
    assert!(
        check_took < last - 0.5,
        "the check-in took {check_took:.2} s while the downloads ran to {last:.2} s"
    );
}

#[test]
fn on_a_metered_link_only_an_install_allowed_there_downloads() {
    let w = World::with_agent_extra("metered = true\n");
    w.release("1.0.0", &[]);
    w.agent("once").ok();
    let queued = w.trigger(Some("1.0.0"));
    w.agent("once").ok();
    assert_eq!(w.current(), None, "downloaded over a metered link");
    let entry = &w.history()[0];
    assert_eq!(entry["status"], "pending", "{entry}");
    assert!(
        entry["message"]
            .as_str()
            .unwrap_or_default()
            .contains("the link is metered (metered = true)"),
        "{entry}"
    );
    // An urgent fix is let through.
    w.ctl(&["update", "cancel", queued["id"].as_str().unwrap()])
        .ok();
    w.ctl(&[
        "update",
        "trigger",
        "--host",
        "device-1",
        "--item",
        "web",
        "--version",
        "1.0.0",
        "--metered-allowed",
    ])
    .ok();
    w.agent("once").ok();
    assert_eq!(w.current().as_deref(), Some("releases/1.0.0"));
    // A release allowed on metered links (an urgent fix): any job of it downloads there.
    w.release("1.1.0", &[]);
    w.trigger(Some("1.1.0"));
    w.agent("once").ok();
    assert_eq!(w.current().as_deref(), Some("releases/1.0.0"));
    let allowed = w.ctl(&["release", "metered-allowed", "web", "1.1.0"]).ok();
    assert!(allowed.stdout.contains("metered links too"), "{allowed}");
    let listed = w.ctl_json(&["releases", "list"]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["version"] == "1.1.0" && r["metered_allowed"] == true),
        "{listed}"
    );
    w.agent("once").ok();
    assert_eq!(w.current().as_deref(), Some("releases/1.1.0"));
    let bad = World::with_agent_extra("metered = \"sometimes\"\n").agent("once");
    assert!(bad.stderr.contains("key `metered`"), "{bad}");
}

/// The site's share processes (`--running-mode=share`), stopped with the test.
struct Sharing(Vec<(String, std::process::Child)>);

impl Sharing {
    fn stop(&mut self, name: &str) {
        for (n, child) in &mut self.0 {
            if n == name {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for Sharing {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The history entry of `host`'s install of `version`.
fn entry_of(w: &World, host: &str, version: &str) -> serde_json::Value {
    let history = w.ctl_json(&["history", "list", "--host", host]);
    history
        .as_array()
        .and_then(|a| a.iter().find(|e| e["version"] == version).cloned())
        .unwrap_or_else(|| panic!("no {version} in the history of {host}: {history}"))
}

fn trigger_on(w: &World, host: &str, version: &str) {
    w.ctl(&[
        "update",
        "trigger",
        "--host",
        host,
        "--item",
        "web",
        "--version",
        version,
    ])
    .ok();
}

/// Where `device` is in `devices`.
fn first_index(devices: &[crate::util::Device], device: &crate::util::Device) -> usize {
    devices.iter().position(|d| d.name == device.name).unwrap()
}

/// The artifact size of `web` `version`, as the server lists it.
fn artifact_size(w: &World, version: &str) -> u64 {
    let releases = w.ctl_json(&["releases", "list"]);
    releases
        .as_array()
        .and_then(|a| a.iter().find(|r| r["version"] == version))
        .and_then(|r| r["artifact_size"].as_u64())
        .unwrap_or_else(|| panic!("no web {version} in {releases}"))
}

/// Runs each device's agent once, all at the same time.
fn once_together(devices: &[&crate::util::Device]) {
    std::thread::scope(|s| {
        for d in devices {
            s.spawn(move || d.run("once"));
        }
    });
}

#[test]
fn a_site_of_ten_takes_a_release_from_the_server_about_once_and_survives_bad_and_dying_peers() {
    const SIZE: usize = 4 << 20;
    let w = World::with_server_config("site_max_downloads = 1\n");
    big_release(&w, "1.0.0", SIZE);
    let share = |i: usize| format!("127.0.0.{}:{}", 20 + i, crate::util::free_port());
    let addresses: Vec<String> = (0..10).map(share).collect();
    let extra = |i: usize| format!("site = \"shop-12\"\nshare_listen = \"{}\"\n", addresses[i]);
    let devices: Vec<crate::util::Device> = (0..10)
        .map(|i| w.add_device(&format!("site-{i}"), &extra(i)))
        .collect();
    let mut sharing = Sharing(
        devices
            .iter()
            .map(|d| (d.name.clone(), d.spawn("share")))
            .collect(),
    );
    for d in &devices {
        d.run("check").ok();
        trigger_on(&w, &d.name, "1.0.0");
    }
    let served = || w.metric("ferry_artifact_bytes_served_total{kind=\"artifact\"}");
    let artifact = artifact_size(&w, "1.0.0");
    let before = served();

    // A wave over the site: one device fetches from the server, the others wait for it.
    let all: Vec<&crate::util::Device> = devices.iter().collect();
    once_together(&all);
    let first: Vec<&crate::util::Device> = devices
        .iter()
        .filter(|d| d.current().as_deref() == Some("releases/1.0.0"))
        .collect();
    assert!(
        (1..=2).contains(&first.len()),
        "{} of 10 fetched from the server at once under site_max_downloads = 1",
        first.len()
    );
    let waiting = devices
        .iter()
        .find(|d| d.current().is_none())
        .expect("a device that waited");
    let entry = entry_of(&w, &waiting.name, "1.0.0");
    assert_eq!(entry["status"], "pending", "{entry}");
    assert!(
        entry["message"].as_str().is_some_and(
            |m| m.contains("site shop-12") && m.contains("fetching this release first")
        ),
        "{entry}"
    );
    // The first ones tell the server what they hold at their next check-in; the rest take it
    // from them.
    for d in &first {
        d.run("check").ok();
    }
    once_together(&all);
    for d in &devices {
        assert_eq!(d.current().as_deref(), Some("releases/1.0.0"), "{}", d.name);
    }
    let from_server = served() - before;
    assert!(
        from_server <= (first.len() as u64 * artifact) as f64,
        "the server sent {from_server} bytes of a {artifact}-byte artifact to a site of 10"
    );
    let from_peers = devices
        .iter()
        .filter(|d| entry_of(&w, &d.name, "1.0.0")["fetched"]["from_peers"] == artifact)
        .count();
    assert_eq!(from_peers, 10 - first.len(), "took the release from peers");
    assert_eq!(
        w.metric("ferry_peer_bytes_total"),
        (from_peers as u64 * artifact) as f64
    );

    // What a peer serves: the artifact by its sha256, with Range; nothing else.
    let releases = w.ctl_json(&["releases", "list"]);
    let sha = releases[0]["artifact_sha256"].as_str().unwrap().to_string();
    let peer = format!("http://{}", addresses[first_index(&devices, first[0])]);
    let http = crate::util::http();
    let part = http
        .get(format!("{peer}/artifacts/{sha}"))
        .header("range", "bytes=10-19")
        .send()
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().unwrap().len(), 10);
    for path in [
        format!("/artifacts/{}", "0".repeat(64)),
        "/artifacts/..%2Fstate.json".to_string(),
        "/state.json".to_string(),
    ] {
        let r = http.get(format!("{peer}{path}")).send().unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    let r = http.post(format!("{peer}/artifacts/{sha}")).send().unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());

    // A peer serving tampered bytes: the device falls back, installs the right release and
    // names the peer, which is offered no more.
    // Larger than what the kernel's socket buffers hold on loopback (a peer killed mid-way
    // must leave bytes untaken).
    big_release(&w, "2.0.0", 4 * SIZE);
    let (a, b, c, d) = (&devices[0], &devices[1], &devices[2], &devices[3]);
    trigger_on(&w, &a.name, "2.0.0");
    a.run("once").ok();
    a.run("check").ok();
    // Only the installed release's artifact is kept: 1.0.0's left at the 2.0.0 install.
    let kept: Vec<_> = fs::read_dir(w.path("state-site-0/shared"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let file = &kept[0];
    let mut bytes = fs::read(file).unwrap();
    let keep = bytes.clone();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(file, &bytes).unwrap();
    trigger_on(&w, &b.name, "2.0.0");
    b.run("once").ok();
    assert_eq!(b.current().as_deref(), Some("releases/2.0.0"));
    let entry = entry_of(&w, &b.name, "2.0.0");
    assert_eq!(
        entry["fetched"]["bad_peers"],
        serde_json::json!([format!("http://{}", addresses[0])]),
        "{entry}"
    );
    fs::write(file, &keep).unwrap();
    let shown = w.ctl_json(&["hosts", "show", &a.name]);
    assert_eq!(shown["site"], "shop-12", "{shown}");
    assert_eq!(
        shown["share"],
        format!("http://{}", addresses[0]),
        "{shown}"
    );
    let fault = shown["share_fault"].as_str().unwrap_or_default();
    assert!(fault.contains("failed the signed hash"), "{shown}");
    b.run("check").ok();
    // The next device is offered b, not a.
    trigger_on(&w, &c.name, "2.0.0");
    c.run("once").ok();
    assert_eq!(c.current().as_deref(), Some("releases/2.0.0"));
    let entry = entry_of(&w, &c.name, "2.0.0");
    assert_eq!(
        entry["fetched"]["from_peers"],
        artifact_size(&w, "2.0.0"),
        "{entry}"
    );
    assert!(entry["fetched"].get("bad_peers").is_none(), "{entry}");

    // A peer that dies mid-transfer: the download resumes from the next source.
    sharing.stop(&c.name);
    let slow = w.add_device(
        &d.name,
        &format!("{}max_download_rate = \"4MiB/s\"\n", extra(3)),
    );
    trigger_on(&w, &slow.name, "2.0.0");
    let run = slow.spawn("once");
    std::thread::sleep(std::time::Duration::from_millis(1000));
    sharing.stop(&b.name);
    let out = run.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert_eq!(slow.current().as_deref(), Some("releases/2.0.0"), "{log}");
    let entry = entry_of(&w, &slow.name, "2.0.0");
    let peer_bytes = entry["fetched"]["from_peers"].as_u64().unwrap_or(0);
    assert!(
        peer_bytes > 0 && peer_bytes < artifact_size(&w, "2.0.0"),
        "{entry}: part from the peer that died, the rest from the server\n{log}"
    );
    // Looked into, the operator offers the faulted peer again.
    w.ctl(&["hosts", "edit", &a.name, "--share-ok"]).ok();
    let shown = w.ctl_json(&["hosts", "show", &a.name]);
    assert!(shown.get("share_fault").is_none(), "{shown}");
}

#[test]
fn a_device_waiting_for_its_site_is_woken_when_a_neighbour_starts_sharing() {
    let w = World::with_server_config("site_max_downloads = 1\n");
    big_release(&w, "1.0.0", 2 << 20);
    let size = artifact_size(&w, "1.0.0");
    let extra = |i: usize| {
        format!(
            "site = \"deck-3\"\nshare_listen = \"127.0.0.{}:{}\"\nlong_poll_secs = 300\nmax_download_rate = \"512KiB/s\"\n",
            60 + i,
            crate::util::free_port()
        )
    };
    let devices: Vec<crate::util::Device> = (0..2)
        .map(|i| w.add_device(&format!("deck-{i}"), &extra(i)))
        .collect();
    for d in &devices {
        d.run("check").ok();
        trigger_on(&w, &d.name, "1.0.0");
    }
    // Both run the service (`full`, long-polls of 5 minutes between cycles, the server's
    // 55 s at most): the first downloads for 4 s at its 512 KiB/s while the other holds a
    // long-poll; that one is woken by its neighbour's first check-in holding the release,
    // well within the 40 s given here (unwoken, it would hear only when its long-poll ends).
    // Their logs go to files, shown if the test fails.
    let log = |d: &crate::util::Device| w.path(&format!("{}.log", d.name));
    let mut running = Sharing(
        devices
            .iter()
            .map(|d| {
                let file = fs::File::create(log(d)).unwrap();
                let child = d
                    .mode("full")
                    .process_group(0)
                    .stdout(std::process::Stdio::null())
                    .stderr(file)
                    .spawn()
                    .unwrap();
                (d.name.clone(), child)
            })
            .collect(),
    );
    let logs = || {
        devices
            .iter()
            .map(|d| {
                format!(
                    "{}:\n{}",
                    d.name,
                    fs::read_to_string(log(d)).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    // Until both installed and said so (the report follows the switch of `current`).
    let reported = || {
        let history = w.ctl_json(&["history", "list"]);
        history.as_array().is_some_and(|a| {
            a.iter()
                .filter(|e| e["version"] == "1.0.0" && e["status"] == "installed")
                .count()
                == 2
        })
    };
    let began = Instant::now();
    while began.elapsed().as_secs() < 40 && !reported() {
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let took = began.elapsed().as_secs_f64();
    running.stop("deck-0");
    running.stop("deck-1");
    for d in &devices {
        assert_eq!(
            d.current().as_deref(),
            Some("releases/1.0.0"),
            "{} after {took:.1} s\n{}",
            d.name,
            logs()
        );
    }
    let from_peers: Vec<u64> = devices
        .iter()
        .map(|d| {
            entry_of(&w, &d.name, "1.0.0")["fetched"]["from_peers"]
                .as_u64()
                .unwrap_or(0)
        })
        .collect();
    assert!(
        from_peers.contains(&0) && from_peers.contains(&size),
        "bytes from peers {from_peers:?} of {size}\n{}\n{}",
        w.ctl(&["history", "list"]).stdout,
        logs()
    );
}

#[test]
fn a_peer_is_asked_with_no_credential_and_a_peer_that_fails_costs_only_a_fallback() {
    let w = World::with_server_config("site_max_downloads = 1\n");
    big_release(&w, "1.0.0", 1 << 20);
    let sha = w.ctl_json(&["releases", "list"])[0]["artifact_sha256"]
        .as_str()
        .unwrap()
        .to_string();
    // A device that says it holds the artifact, whose share address is the test's listener:
    // it records what a peer is sent, and has nothing to give.
    let listener = std::net::TcpListener::bind("127.0.0.70:0").unwrap();
    let fake = listener.local_addr().unwrap();
    let holder = w.add_device(
        "holder",
        &format!("site = \"quay-9\"\nshare_listen = \"{fake}\"\n"),
    );
    fs::create_dir_all(w.path("state-holder/shared")).unwrap();
    fs::write(w.path(&format!("state-holder/shared/{sha}")), b"not it").unwrap();
    // What it said at enrolment is kept (its first check-in, the same, writes nothing).
    holder.run("check").ok();
    let shown = w.ctl_json(&["hosts", "show", "holder"]);
    assert_eq!(shown["site"], "quay-9", "{shown}");
    let asked = std::thread::spawn(move || {
        use std::io::{BufRead, BufReader};
        // Bounded: no ask within 30 s is an empty head (and a failed assertion).
        listener.set_nonblocking(true).unwrap();
        let mut accepted = None;
        for _ in 0..300 {
            if let Ok((stream, _)) = listener.accept() {
                accepted = Some(stream);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let Some(stream) = accepted else {
            return Vec::new();
        };
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut head = Vec::new();
        for _ in 0..100 {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
            head.push(line.trim_end().to_string());
        }
        let mut out = stream;
        let _ = out.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
        head
    });
    let taker = w.add_device("taker", "site = \"quay-9\"\n");
    taker.run("check").ok();
    trigger_on(&w, "taker", "1.0.0");
    taker.run("once").ok();
    assert_eq!(taker.current().as_deref(), Some("releases/1.0.0"));
    let head = asked.join().unwrap();
    assert!(!head.is_empty(), "the peer was never asked");
    assert_eq!(
        head[0],
        format!("GET /artifacts/{sha} HTTP/1.1"),
        "{head:?}"
    );
    assert!(
        !head
            .iter()
            .any(|h| h.to_ascii_lowercase().starts_with("authorization")),
        "a peer was sent a credential: {head:?}"
    );
    let entry = entry_of(&w, "taker", "1.0.0");
    assert!(entry["fetched"].get("from_peers").is_none(), "{entry}");
}

#[test]
fn an_upgrade_a_device_takes_by_itself_comes_from_its_sites_peers() {
    let w = World::with_server_config("site_max_downloads = 1\n");
    big_release(&w, "1.0.0", 1 << 20);
    let size = artifact_size(&w, "1.0.0");
    let share = format!("127.0.0.72:{}", crate::util::free_port());
    let holder = w.add_device(
        "holder",
        &format!("site = \"quay-7\"\nshare_listen = \"{share}\"\n"),
    );
    holder.run("check").ok();
    trigger_on(&w, "holder", "1.0.0");
    holder.run("once").ok();
    assert_eq!(holder.current().as_deref(), Some("releases/1.0.0"));
    // It serves what it keeps (the timer's companion service) and says it holds it.
    let _serving = Sharing(vec![("holder".into(), holder.spawn("share"))]);
    for _ in 0..100 {
        if std::net::TcpStream::connect(&share).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    holder.run("check").ok();
    // A device with no job that takes upgrades by itself (`auto_install`) and shares nothing.
    let taker = w.add_device("taker", "site = \"quay-7\"\nauto_install = true\n");
    taker.run("once").ok();
    assert_eq!(taker.current().as_deref(), Some("releases/1.0.0"));
    let entry = entry_of(&w, "taker", "1.0.0");
    assert_eq!(entry["fetched"]["from_peers"], size, "{entry}");
    assert_eq!(entry["fetched"]["bytes"], size, "{entry}");
}
