//! This terminal, attached to an interactive install (`ferryctl update trigger
//! --interactive`): raw mode while attached (restored on exit, whatever the outcome), and
//! what is typed forwarded as it comes, with the window size and a keep-alive that holds the
//! terminal's input lease.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::Client;

/// How often the window size is looked at, and the longest typed bytes wait to be sent.
const TICK: Duration = Duration::from_millis(50);
/// A keep-alive at least this often holds the lease (the server lets it lapse after 15 s).
const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// The terminal in raw mode (no echo, no line editing, Ctrl-C as a byte) until dropped. Output
/// processing stays on, so this program's own lines still end where they should. Nothing
/// happens when stdin is not a terminal.
pub struct RawMode(Option<rustix::termios::Termios>);

impl RawMode {
    pub fn enter() -> RawMode {
        let stdin = std::io::stdin();
        if !rustix::termios::isatty(&stdin) {
            return RawMode(None);
        }
        let Ok(saved) = rustix::termios::tcgetattr(&stdin) else {
            return RawMode(None);
        };
        let mut raw = saved.clone();
        raw.make_raw();
        raw.output_modes |=
            rustix::termios::OutputModes::OPOST | rustix::termios::OutputModes::ONLCR;
        match rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw) {
            Ok(()) => RawMode(Some(saved)),
            Err(_) => RawMode(None),
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = rustix::termios::tcsetattr(
                std::io::stdin(),
                rustix::termios::OptionalActions::Now,
                saved,
            );
        }
    }
}

fn window_size() -> Option<(u16, u16)> {
    let size = rustix::termios::tcgetwinsize(std::io::stdout()).ok()?;
    (size.ws_col > 0 && size.ws_row > 0).then_some((size.ws_col, size.ws_row))
}

/// Forwards stdin, the window size and keep-alives to the terminal at `url` until `done`.
pub fn forward_input(client: &Client, url: &reqwest::Url, lease: &str, done: &AtomicBool) {
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    // Reads block; the thread ends with the process.
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut size = None;
    let mut last_sent = Instant::now() - KEEP_ALIVE;
    let mut typed: Vec<u8> = Vec::new();
    while !done.load(Ordering::SeqCst) {
        match rx.recv_timeout(TICK) {
            Ok(bytes) => {
                typed.extend(bytes);
                // Whatever else is already there goes in the same request.
                while let Ok(more) = rx.try_recv() {
                    typed.extend(more);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // stdin ended (not a terminal): keep the lease and the window size going.
            Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(TICK),
        }
        let now_size = window_size();
        let resized = now_size.is_some() && now_size != size;
        if typed.is_empty() && !resized && last_sent.elapsed() < KEEP_ALIVE {
            continue;
        }
        let text = (!typed.is_empty()).then(|| String::from_utf8_lossy(&typed).into_owned());
        match client.terminal_input(url, lease, text, if resized { now_size } else { None }) {
            Ok(()) => {
                typed.clear();
                size = now_size.or(size);
                last_sent = Instant::now();
            }
            Err(e) => {
                if !done.load(Ordering::SeqCst) {
                    eprintln!("\nferryctl: {e}; what you type no longer reaches the install");
                }
                return;
            }
        }
    }
}
