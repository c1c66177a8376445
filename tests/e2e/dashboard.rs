//! `--running-mode=status --json` for a local dashboard: what is installed and available
//! (with notes and release page), the last check, the last install's outcome with its log,
//! the backup a rollback restores, and the progress of a slow download while it runs.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::util::World;

fn status(w: &World) -> serde_json::Value {
    w.device().status_json()
}

/// A mirror on 127.0.0.1 that sends `file` in 16 KiB pieces, one every 60 ms.
fn slow_mirror(file: PathBuf) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(4) {
            let Ok(mut conn) = conn else { continue };
            let mut req = [0u8; 4096];
            let _ = conn.read(&mut req);
            let body = fs::read(&file).unwrap_or_default();
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            for piece in body.chunks(16 * 1024) {
                if conn.write_all(piece).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(60));
            }
        }
    });
    port
}

#[test]
fn status_json_shows_versions_outcomes_and_download_progress() {
    // No deltas: the progress watched is that of the artifact's slow download.
    let w = World::with_server_config("delta_from_releases = 0\n");
    w.release(
        "1.0.0",
        &[
            "--notes",
            "First cut.",
            "--release-url",
            "https://example.org/web/1.0.0",
        ],
    );
    let device = w.device();
    device.run("check").ok();
    let s = status(&w);
    assert_eq!(s["last_check"]["ok"], true, "{s}");
    let web = &s["items"][0];
    assert_eq!(web["name"], "web");
    assert!(web["installed"].is_null(), "{s}");
    assert_eq!(web["update_available"], true);
    assert_eq!(web["available"]["version"], "1.0.0");
    assert_eq!(web["available"]["notes"], "First cut.");
    assert_eq!(
        web["available"]["release_url"],
        "https://example.org/web/1.0.0"
    );
    assert!(s["progress"].is_null());

    w.trigger(Some("1.0.0"));
    device.run("once").ok();
    let s = status(&w);
    let web = &s["items"][0];
    assert_eq!(web["installed"], "1.0.0", "{s}");
    assert_eq!(web["update_available"], false);
    assert_eq!(web["last_install"]["outcome"], "installed");

    // 1.1.0: big enough to take a while from a slow mirror, and a hook that logs.
    let src = w.payload("1.1.0", None);
    let noise = crate::util::noise(0x9e37_79b9_7f4a_7c15, 400 * 1024);
    fs::write(src.join("static/noise.bin"), &noise).unwrap();
    let port = slow_mirror(w.path("out-1.1.0/web-1.1.0.tar.gz"));
    let out = w.build(
        "1.1.0",
        &src,
        &[
            "--url",
            &format!("http://127.0.0.1:{port}/web-1.1.0.tar.gz"),
            "--post-install",
            "echo migrated the cache",
        ],
    );
    w.publish(&out);
    w.trigger(Some("1.1.0"));
    let mut agent = device
        .command(&["--running-mode=once"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let seen = loop {
        let s = status(&w);
        let p = &s["progress"];
        let (done, total) = (p["bytes_done"].as_u64(), p["bytes_total"].as_u64());
        if p["stage"] == "downloading" && done.is_some_and(|d| d > 0 && Some(d) < total) {
            break s;
        }
        assert!(Instant::now() < deadline, "no download progress seen: {s}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(seen["progress"]["item"], "web");
    assert_eq!(seen["progress"]["version"], "1.1.0");
    assert!(agent.wait().unwrap().success());

    let s = status(&w);
    let web = &s["items"][0];
    assert_eq!(web["installed"], "1.1.0", "{s}");
    assert_eq!(web["backup"], "1.0.0", "the version a rollback restores");
    assert_eq!(web["last_install"]["outcome"], "installed");
    assert_eq!(web["last_install"]["from_version"], "1.0.0");
    assert!(
        web["last_install"]["log"]
            .as_str()
            .unwrap()
            .contains("migrated the cache"),
        "{s}"
    );
    assert!(s["progress"].is_null(), "no stage under way: {s}");
}

/// A dashboard's Check while the service runs: the service (in `full` mode, long-polling,
/// an hour between cycles) acts on what the check found at once instead of at its next
/// cycle.
#[test]
fn a_check_by_hand_wakes_the_running_service() {
    let w = World::new();
    w.release("1.0.0", &[]);
    let device = w.add_device("kiosk", "auto_install = true\npoll_interval_secs = 3600");
    device.run("once").ok();
    assert_eq!(device.current().as_deref(), Some("releases/1.0.0"));
    let mut service = device.spawn("full");
    let deadline = Instant::now() + Duration::from_secs(20);
    while w.ctl_json(&["hosts", "list"])[0]["long_polling"] != true {
        assert!(Instant::now() < deadline, "the service never long-polled");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A new release: the server does not wake devices for it; the hand-run check sees it.
    w.release("1.1.0", &[]);
    let checked = device.run("check").ok();
    assert!(
        checked.stderr.contains("woke the running service"),
        "{checked}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while device.current().as_deref() != Some("releases/1.1.0") {
        assert!(
            Instant::now() < deadline,
            "the service did not act on the check at once"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    crate::util::signal(service.id(), "TERM", false);
    assert!(service.wait().unwrap().success());
    assert!(
        !w.path("state-kiosk/service.pid").exists(),
        "the pid file goes with the service"
    );
}
