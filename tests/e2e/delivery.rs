//! Links that cost money (docs/delivery.md): a device's `max_download_rate` keeps its
//! download under the cap, and its `download_window` holds a download until the window
//! opens, telling the server why it waits.

use std::fs;
use std::io::Write as _;
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
    let bad = World::with_agent_extra("metered = \"sometimes\"\n").agent("once");
    assert!(bad.stderr.contains("key `metered`"), "{bad}");
}
