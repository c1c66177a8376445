//! Backups: `ferry-server backup` copies a live server's data directory while devices check
//! in and report, `restore` makes a fresh data directory of it, and the fleet carries on
//! against a server started on it: every host, release and history entry there, devices
//! keep their identity, and a new install downloads its artifact. Real processes, SQLite.

use std::fs;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::util::Server;
use crate::util::{bin, run, World};

fn server_cmd(args: &[&str]) -> crate::util::Run {
    let mut cmd = Command::new(bin("ferry-server"));
    cmd.args(args);
    run(cmd)
}

fn ids(v: &serde_json::Value, key: &str) -> Vec<String> {
    let mut ids: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x[key].as_str().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    ids
}

#[test]
fn a_backup_taken_under_load_restores_into_a_fleet_that_carries_on() {
    let w = World::new();
    if let Some(database) = &w.server.database {
        // On PostgreSQL the database is pg_dump's to copy: the backup holds the files and
        // says so.
        let file = w.path("files.backup");
        let made = server_cmd(&[
            "backup",
            "--data-dir",
            &w.server.data_dir.display().to_string(),
            "--database",
            database,
            "--to",
            file.to_str().unwrap(),
        ])
        .ok();
        assert!(made.stdout.contains("pg_dump"), "{made}");
        assert!(!made.stdout.contains("the database and"), "{made}");
        return;
    }
    w.release("1.0.0", &[]);
    w.release("1.1.0", &[]);
    let devices: Vec<_> = ["b1", "b2", "b3"]
        .iter()
        .map(|n| w.add_device(n, ""))
        .collect();
    for d in &devices {
        d.run("check").ok();
    }
    w.campaign("1.0.0", &["--all"]);
    for d in &devices {
        d.run("once").ok();
    }

    // Devices keep checking in and reporting while the backup is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        let cfg = devices[0].cfg.clone();
        std::thread::spawn(move || {
            let mut runs = 0;
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::SeqCst) && runs < 200 && Instant::now() < deadline {
                let mut cmd = Command::new(bin("ferry-agent"));
                cmd.arg("--config").arg(&cfg).arg("--running-mode=check");
                assert_eq!(run(cmd).code, Some(0));
                runs += 1;
            }
            runs
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let file = w.path("fleet.backup");
    let data = w.server.data_dir.display().to_string();
    let made = server_cmd(&[
        "backup",
        "--data-dir",
        &data,
        "--to",
        file.to_str().unwrap(),
    ])
    .ok();
    assert!(made.stdout.contains("the database and"), "{made}");
    stop.store(true, Ordering::SeqCst);
    assert!(load.join().unwrap() > 0);
    let mode = std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    // Restored into a fresh directory; never over one in use.
    let fresh = w.path("restored");
    let restored = server_cmd(&[
        "restore",
        "--from",
        file.to_str().unwrap(),
        "--data-dir",
        fresh.to_str().unwrap(),
    ])
    .ok();
    assert!(restored.stdout.contains("start ferry-server"), "{restored}");
    let again = server_cmd(&[
        "restore",
        "--from",
        file.to_str().unwrap(),
        "--data-dir",
        fresh.to_str().unwrap(),
    ]);
    assert_eq!(again.code, Some(1), "{again}");
    assert!(again.stderr.contains("is not empty"), "{again}");

    // A server on it has every host, release and history entry the first had at the backup.
    let before_hosts = w.ctl_json(&["hosts", "list"]);
    let before_releases = w.ctl_json(&["releases", "list"]);
    let before_history = w.ctl_json(&["history", "list"]);
    let server = Server::start_on(&fresh, None, None);
    let ctl = |args: &[&str]| {
        let mut cmd = w.ctl_command(args);
        cmd.env("FERRY_SERVER", server.url());
        cmd.env(
            "FERRY_TOKEN",
            format!("@{}", fresh.join("operator.token").display()),
        );
        let out = run(cmd).ok();
        serde_json::from_str::<serde_json::Value>(&out.stdout).unwrap()
    };
    assert_eq!(
        ids(&ctl(&["hosts", "list", "--json"]), "id"),
        ids(&before_hosts, "id")
    );
    assert_eq!(
        ids(&ctl(&["releases", "list", "--json"]), "version"),
        ids(&before_releases, "version")
    );
    let history_after = ids(&ctl(&["history", "list", "--json"]), "id");
    for id in ids(&before_history, "id") {
        assert!(history_after.contains(&id), "history entry {id} lost");
    }

    // The devices move to it and stay the hosts they were; a new install downloads its
    // artifact from the restored server.
    for d in &devices {
        let text = fs::read_to_string(&d.cfg).unwrap();
        fs::write(&d.cfg, text.replace(&w.server.url(), &server.url())).unwrap();
        d.run("check").ok();
    }
    assert_eq!(
        ids(&ctl(&["hosts", "list", "--json"]), "id"),
        ids(&before_hosts, "id")
    );
    ctl(&[
        "update",
        "trigger",
        "--host",
        "b2",
        "--item",
        "web",
        "--version",
        "1.1.0",
        "--json",
    ]);
    devices[1].run("once").ok();
    assert_eq!(devices[1].current().as_deref(), Some("releases/1.1.0"));
}
