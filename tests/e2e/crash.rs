//! Killing the real agent with SIGKILL in the middle of an install: at each named step
//! (`FERRY_TEST_KILL_AT`, test only) and at random instants. After each kill the next run
//! recovers; the install root must be exactly the old or the new version, and the server must
//! end up with one report of the outcome.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{run, World};

/// The named fault points of the install, in order (docs/crash-safety.md).
const POINTS: &[&str] = &[
    "staging",
    "switching",
    "switched",
    "hooks-done",
    "committing",
    "committed-state",
];

/// A world with 1.0.0 installed and 2.0.0 triggered, checked and downloaded, in `layout`:
/// as a delta from 1.0.0 (the server builds it at the publish), so the kills land in an
/// install assembled from a delta and the installed release's files. For the overlay layout
/// the root also holds a file Ferry does not manage.
fn ready_to_install(health_check: &str, layout: &str) -> World {
    let w = World::new();
    if layout == "overlay" {
        fs::create_dir_all(w.root.join("etc")).unwrap();
        fs::write(w.root.join("etc/unmanaged.conf"), "keep\n").unwrap();
    }
    let src1 = w.payload("1.0.0", None);
    // The same in both versions: the delta takes it from the installed release. Large and
    // hard to compress, so the delta is smaller than the artifact (else none is offered).
    let logo: String = (0..16_384u32)
        .map(|i| format!("{:08x}", i.wrapping_mul(2_654_435_761)))
        .collect();
    fs::write(src1.join("static/logo.svg"), &logo).unwrap();
    w.publish(&w.build("1.0.0", &src1, &["--layout", layout]));
    let src = w.payload("2.0.0", None);
    fs::write(src.join("static/logo.svg"), &logo).unwrap();
    fs::write(src.join("static/added.css"), "body{}\n").unwrap();
    let check = if layout == "overlay" {
        format!("cd {} && {health_check}", w.root.display())
    } else {
        health_check.to_string()
    };
    let out = w.build(
        "2.0.0",
        &src,
        &[
            "--post-install",
            "echo switching",
            "--health-check",
            &check,
            "--layout",
            layout,
        ],
    );
    w.publish(&out);
    w.agent("check").ok();
    w.trigger(Some("1.0.0"));
    w.agent("once").ok();
    w.trigger(Some("2.0.0"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        w.agent("check").ok();
        let state = fs::read_to_string(w.path("agent-state/state.json")).unwrap();
        if state.contains("\"from_version\": \"1.0.0\"") {
            break;
        }
        assert!(Instant::now() < deadline, "no delta offered: {state}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let download = w.agent("download").ok();
    assert!(download.stderr.contains("downloaded a delta"), "{download}");
    w
}

fn kill_at(w: &World, point: &str) {
    let mut cmd = w.device().mode("install");
    cmd.env("FERRY_TEST_KILL_AT", point);
    let killed = run(cmd);
    assert_eq!(
        killed.code, None,
        "the agent was not killed at {point}:\n{killed}"
    );
}

/// The item's tree, without the overlay layout's work directory.
fn item_tree(w: &World) -> Vec<String> {
    World::tree(&w.root)
        .into_iter()
        .filter(|l| !l.starts_with(".ferry-web"))
        .collect()
}

/// Trees of a clean install of 1.0.0 and of 1.0.0 then 2.0.0.
fn reference_trees(health_check: &str, layout: &str) -> (Vec<String>, Vec<String>) {
    let w = ready_to_install(health_check, layout);
    let old = item_tree(&w);
    w.agent("install")
        .code(if health_check == "./bin/web" { 0 } else { 1 });
    (old, item_tree(&w))
}

fn assert_one_outcome(w: &World, point: &str) -> String {
    let entries: Vec<_> = w
        .history()
        .into_iter()
        .filter(|e| e["version"] == "2.0.0")
        .collect();
    assert_eq!(entries.len(), 1, "kill at {point}: {entries:?}");
    let status = entries[0]["status"].as_str().unwrap().to_string();
    assert!(
        status == "installed" || status == "rolled_back",
        "kill at {point}: status {status}"
    );
    status
}

#[test]
fn a_sigkill_at_each_named_step_recovers_to_one_version_and_one_report() {
    for layout in ["symlink", "overlay"] {
        named_steps(layout);
    }
}

fn named_steps(layout: &str) {
    let (old, new) = reference_trees("./bin/web", layout);
    for point in POINTS {
        let w = ready_to_install("./bin/web", layout);
        kill_at(&w, point);
        let recovered = w.agent("once");
        assert!(
            matches!(recovered.code, Some(0) | Some(1)),
            "kill at {point}:\n{recovered}"
        );
        let tree = item_tree(&w);
        let status = assert_one_outcome(&w, point);
        if tree == new {
            assert_eq!(status, "installed", "{layout}: kill at {point}");
        } else {
            assert_eq!(tree, old, "{layout}: kill at {point}: mixed tree");
            assert_eq!(status, "rolled_back", "{layout}: kill at {point}");
        }
    }
}

#[test]
fn a_sigkill_while_rolling_back_finishes_the_rollback() {
    for layout in ["symlink", "overlay"] {
        let (old, _) = reference_trees("exit 3", layout);
        for point in ["switched", "hooks-done", "rolling-back"] {
            let w = ready_to_install("exit 3", layout);
            kill_at(&w, point);
            w.agent("once").code(1);
            assert_eq!(item_tree(&w), old, "{layout}: kill at {point}");
            assert_eq!(assert_one_outcome(&w, point), "rolled_back");
        }
    }
}

fn copy_tree(from: &Path, to: &Path) {
    let _ = fs::remove_dir_all(to);
    let ok = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap()
        .success();
    assert!(ok, "cp -a {} {}", from.display(), to.display());
}

/// xorshift64*: enough randomness to spread kill instants, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Kills `--running-mode=install` at random instants, `FERRY_SOAK_KILLS` times (100 by
/// default; bench/crash-soak.sh runs 1,000), restoring the device to "1.0.0 installed, 2.0.0
/// downloaded" before each, and counts how the trees end.
#[test]
fn random_sigkills_never_leave_a_mixed_tree() {
    let kills: usize = std::env::var("FERRY_SOAK_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    // Half the kills for each layout.
    let symlink = random_kills("symlink", kills.div_ceil(2));
    let overlay = random_kills("overlay", kills / 2);
    eprintln!(
        "random kills: {kills}, ended at the old version: {}, at the new: {}, mixed trees: {}",
        symlink.0 + overlay.0,
        symlink.1 + overlay.1,
        symlink.2 + overlay.2
    );
    assert_eq!(symlink.2 + overlay.2, 0);
}

/// FERRY_SOAK_SEED replays a run (every message of a random run names its seed); else one
/// from the clock.
fn soak_seed() -> u64 {
    std::env::var("FERRY_SOAK_SEED")
        .ok()
        .map(|v| {
            v.parse::<u64>()
                .unwrap_or_else(|_| panic!("FERRY_SOAK_SEED={v:?} is not a number"))
        })
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
        | 1
}

/// Returns (ended old, ended new, mixed).
fn random_kills(layout: &str, kills: usize) -> (usize, usize, usize) {
    let (old, new) = reference_trees("./bin/web", layout);
    let w = ready_to_install("./bin/web", layout);
    let snap = w.path("snapshot");
    fs::create_dir_all(&snap).unwrap();
    copy_tree(&w.path("agent-state"), &snap.join("state"));
    copy_tree(&w.root, &snap.join("root"));
    let restore = || {
        copy_tree(&snap.join("state"), &w.path("agent-state"));
        copy_tree(&snap.join("root"), &w.root);
    };
    let device = w.device();
    let install = || {
        let mut cmd = device.mode("install");
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        cmd
    };

    // How long an uninterrupted install takes, to spread kills over it.
    let started = Instant::now();
    assert!(install().status().unwrap().success());
    let span = started.elapsed().as_micros().max(1000) as u64;

    let seed = soak_seed();
    eprintln!("{layout}: random kills with FERRY_SOAK_SEED={seed}");
    let mut rng = Rng(seed);
    let (mut ended_old, mut ended_new, mut mixed, mut mid_install) = (0, 0, 0, 0);
    for i in 0..kills {
        restore();
        let mut child = install().spawn().unwrap();
        std::thread::sleep(Duration::from_micros(rng.next() % (span + span / 5)));
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();
        // A journal left behind means the kill landed while the install was changing the
        // device, which is what this test is for.
        if fs::read_dir(w.path("agent-state/journal"))
            .map(|d| d.count() > 0)
            .unwrap_or(false)
        {
            mid_install += 1;
        }
        // A hook the killed agent had just forked may hold a copy of the lock until it
        // execs (a moment): the next run then exits 4, "another run holds the lock", as
        // documented, and a later run goes ahead. Retry as cron would, a few times.
        let mut status = install().status().unwrap();
        for _ in 0..40 {
            if status.code() != Some(4) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
            status = install().status().unwrap();
        }
        assert!(
            matches!(status.code(), Some(0) | Some(1)),
            "kill {i} (FERRY_SOAK_SEED={seed}): recovery exited with {status}"
        );
        let tree = item_tree(&w);
        let journal = fs::read_dir(w.path("agent-state/journal")).unwrap().count();
        assert_eq!(journal, 0, "kill {i} (seed {seed}): journal left behind");
        let reports: Vec<_> = fs::read_dir(w.path("agent-state/reports"))
            .unwrap()
            .flatten()
            .collect();
        assert_eq!(
            reports.len(),
            1,
            "kill {i} (seed {seed}): reports {reports:?}"
        );
        if tree == new {
            ended_new += 1;
        } else if tree == old {
            ended_old += 1;
        } else {
            mixed += 1;
            eprintln!("kill {i} (seed {seed}): mixed tree {tree:#?}");
        }
    }
    eprintln!(
        "{layout}: {kills} random kills, {mid_install} mid-install, ended at the old version: {ended_old}, at the new: {ended_new}, mixed trees: {mixed} (seed {seed}, install takes {span} µs)"
    );
    // Kills spread over 1.2 times an install's length: if none landed mid-install, the test
    // exercised nothing (say, every kill came before the install began).
    if kills >= 20 {
        assert!(
            mid_install > 0,
            "{layout}: none of {kills} kills landed mid-install (FERRY_SOAK_SEED={seed})"
        );
    }
    (ended_old, ended_new, mixed)
}
