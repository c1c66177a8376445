//! Interactive installs: a post-install hook that asks a question, answered through
//! `ferryctl update trigger --interactive` driven by a real pseudo-terminal (Python's `pty`),
//! with the real server and agent; no operator within the timeout rolls back; and the same
//! hook in a plain install reads end-of-file at once and takes its own default.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{bin, http, signal, World};

/// Asks on its terminal (`/dev/tty`, as password and conffile prompts do), then branches on
/// the answer; the default (no terminal, end-of-file) is "no".
pub(crate) const HOOK: &str = r#"printf 'Continue? [y/N] '; read answer < /dev/tty || answer=; if [ "$answer" = y ]; then printf '\033[32manswered yes\033[0m\n'; else echo "answered no"; fi"#;

/// Runs ARGV in a pseudo-terminal, answers the first $PROMPT (default "Continue?") with
/// $REPLY (default `y` and Enter), and prints what the terminal showed and the exit code as
/// JSON. Bounded to 90 s.
pub(crate) const DRIVER: &str = r#"
import json, os, pty, select, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
out, answered, deadline = b"", False, time.time() + 90
while time.time() < deadline:
    ready, _, _ = select.select([fd], [], [], 0.2)
    if fd in ready:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        out += data
        if not answered and os.environ.get("PROMPT", "Continue?").encode() in out:
            os.write(fd, os.environ.get("REPLY", "y\r").encode())
            answered = True
_, status = os.waitpid(pid, 0)
print(json.dumps({"output": out.decode("utf-8", "replace"), "code": os.waitstatus_to_exitcode(status), "answered": answered}))
"#;

fn world(extra: &str) -> World {
    let w = World::with_agent_extra(&format!("long_poll_secs = 30\n{extra}"));
    let src = w.payload("1.0.0", None);
    let out = w.build("1.0.0", &src, &["--post-install", HOOK]);
    w.publish(&out);
    w.agent("check").ok(); // enrolled: the server knows the host
    w
}

fn wait_for_end(w: &World, limit: Duration) -> serde_json::Value {
    let deadline = Instant::now() + limit;
    loop {
        let h = w.history();
        if let Some(e) = h.first().filter(|e| e["status"] != "pending") {
            return e.clone();
        }
        assert!(Instant::now() < deadline, "the update did not end: {h:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

const TRIGGER: &[&str] = &[
    "update",
    "trigger",
    "--host",
    "device-1",
    "--item",
    "web",
    "--interactive",
];

#[test]
fn an_operator_answers_a_hooks_question_through_ferryctl() {
    let entry = answered_through(&world(""), TRIGGER);
    // The history keeps what was typed, marked as such.
    let typed = entry["typed"].as_str().unwrap_or("");
    assert!(typed.contains("] y⏎"), "{entry}");
}

#[test]
fn what_the_operator_types_is_not_kept_when_asked() {
    let mut args = TRIGGER.to_vec();
    args.push("--hide-input");
    let entry = answered_through(&world(""), &args);
    assert_eq!(entry.get("typed"), None, "{entry}");
}

#[test]
fn a_host_batch_attaches_to_each_install_in_turn() {
    answered_through(
        &world(""),
        &["update", "batch-host", "device-1", "--interactive"],
    );
}

#[test]
fn an_operator_attaches_to_an_interactive_install_already_under_way() {
    // Triggered without attaching (a dropped connection looks the same to the device).
    let w = world("");
    let update = trigger_interactive(&w);
    answered_through(&w, &["update", "attach", &update]);
}

/// Queues an interactive install through the API, attaching nobody; returns its id.
fn trigger_interactive(w: &World) -> String {
    let resp = http()
        .post(format!("{}/api/v1/updates", w.server.url()))
        .bearer_auth(w.operator_token())
        .json(&serde_json::json!({"host": "device-1", "item": "web", "interactive": true}))
        .send()
        .unwrap();
    assert!(resp.status().is_success(), "{:?}", resp.text());
    resp.json::<serde_json::Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Runs ferryctl with `args` in a pseudo-terminal that answers the hook's question; checks
/// the answer reached the hook, its colours came back and the install completed.
fn answered_through(w: &World, args: &[&str]) -> serde_json::Value {
    let (result, shown) = drive(w, args, "y\r");
    assert!(
        shown.contains("\u{1b}[32manswered yes"),
        "the answer reached the hook and its colours came back: {shown:?}"
    );
    assert_eq!(result["code"], 0, "{shown}");
    assert_eq!(w.current().as_deref(), Some("releases/1.0.0"));
    let entry = wait_for_end(w, Duration::from_secs(10));
    assert_eq!(entry["status"], "installed");
    assert!(entry["output"]
        .as_str()
        .unwrap_or("")
        .contains("answered yes"));
    entry
}

#[test]
fn ctrl_c_in_the_operators_terminal_interrupts_the_hook() {
    let w = World::with_agent_extra("long_poll_secs = 30");
    let src = w.payload("1.0.0", None);
    let hook = "trap 'echo interrupted; exit 7' INT; printf 'Continue? '; sleep 60 & wait";
    let out = w.build("1.0.0", &src, &["--post-install", hook]);
    w.publish(&out);
    w.agent("check").ok();
    let (result, shown) = drive(&w, TRIGGER, "\u{3}");
    assert!(shown.contains("interrupted"), "{shown:?}");
    assert_eq!(result["code"], 1, "the update did not install: {shown}");
    let entry = wait_for_end(&w, Duration::from_secs(10));
    assert_eq!(entry["status"], "rolled_back", "{entry}");
    assert!(
        entry["typed"].as_str().unwrap_or("").contains("^C"),
        "{entry}"
    );
}

/// Runs ferryctl with `args` in a pseudo-terminal (with the world's device in `full` mode)
/// that answers the hook's question with `reply`; returns the driver's result and what the
/// terminal showed.
fn drive(w: &World, args: &[&str], reply: &str) -> (serde_json::Value, String) {
    let mut agent = w.device().spawn("full");
    let run = Command::new("python3")
        .arg("-c")
        .arg(DRIVER)
        .arg(bin("ferryctl"))
        .args(args)
        .current_dir(w.dir.path())
        .env("FERRY_SERVER", w.server.url())
        .env("FERRY_TOKEN", w.operator_token())
        .env("REPLY", reply)
        .stdin(Stdio::null())
        .output()
        .expect("python3");
    signal(agent.id(), "TERM", false);
    let _ = agent.wait();
    let text = String::from_utf8_lossy(&run.stdout);
    let result: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "driver said {text:?} ({e}); stderr {}",
            String::from_utf8_lossy(&run.stderr)
        )
    });
    let shown = result["output"].as_str().unwrap_or("").to_string();
    assert_eq!(
        result["answered"], true,
        "the question never showed: {shown}"
    );
    (result, shown)
}

#[test]
fn an_interactive_install_with_no_operator_rolls_back_after_the_timeout() {
    let w = world("interactive_timeout_secs = 2");
    let mut agent = w.device().spawn("full");
    trigger_interactive(&w);
    let entry = wait_for_end(&w, Duration::from_secs(60));
    signal(agent.id(), "TERM", false);
    let _ = agent.wait();
    assert_eq!(entry["status"], "rolled_back", "{entry}");
    assert!(
        entry["message"]
            .as_str()
            .unwrap_or("")
            .contains("no operator"),
        "{entry}"
    );
    assert_eq!(w.current(), None, "nothing stays installed");
}

#[test]
fn a_plain_install_of_the_same_hook_reads_end_of_file_and_takes_its_default() {
    // A hook that waited for input would be killed at this timeout and roll back.
    let w = world("hook_timeout_secs = 20");
    w.trigger(None);
    w.agent("once").ok();
    let entry = wait_for_end(&w, Duration::from_secs(10));
    assert_eq!(entry["status"], "installed");
    assert!(
        entry["output"]
            .as_str()
            .unwrap_or("")
            .contains("answered no"),
        "{entry}"
    );
}

/// A revoked token loses the terminal it holds at once: its keystrokes are refused, and
/// another operator who attaches takes the input without waiting for its lease to run out.
#[test]
fn a_revoked_token_loses_the_terminal_it_holds() {
    let w = world("");
    let id = trigger_interactive(&w);
    let token = w.ctl_json(&["tokens", "create", "--name", "holder"]);
    let secret = token["token"].as_str().unwrap().to_string();
    let terminal = format!("{}/api/v1/update-history/{id}/terminal", w.server.url());
    let send = |token: &str, body: serde_json::Value| {
        http()
            .post(&terminal)
            .bearer_auth(token)
            .json(&body)
            .send()
            .unwrap()
    };
    let attached: serde_json::Value = send(&secret, serde_json::json!({})).json().unwrap();
    assert_eq!(attached["holder"], true, "{attached}");
    let lease = attached["lease"].as_str().unwrap().to_string();
    let typed = send(&secret, serde_json::json!({"lease": lease, "text": "y"}));
    assert!(typed.status().is_success(), "{:?}", typed.text());

    w.ctl(&["tokens", "revoke", token["id"].as_str().unwrap()])
        .ok();
    let refused = send(&secret, serde_json::json!({"lease": lease, "text": "n"}));
    assert_eq!(refused.status().as_u16(), 401);
    let other: serde_json::Value = send(&w.operator_token(), serde_json::json!({}))
        .json()
        .unwrap();
    assert_eq!(
        other["holder"], true,
        "the revoked token still holds the input: {other}"
    );
}
