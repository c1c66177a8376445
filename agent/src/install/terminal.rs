//! The terminal of an interactive install: its hooks run on a pseudo-terminal, their output
//! goes to the server as live output, and what the operator types comes back through a
//! long-poll the agent makes itself (`GET /api/v1/device/terminal/{job}`), so the device
//! stays pull-only. Only the job's own terminal feeds the hooks.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use ferry_manifests::wire::TerminalEvent;

use crate::client::Api;

/// Window size until the operator's terminal says otherwise.
pub const DEFAULT_SIZE: (u16, u16) = (80, 24);

/// What the hook runner needs of an interactive session.
pub struct Terminal {
    pub events: mpsc::Receiver<TerminalEvent>,
    /// Whether an operator holds the terminal (from the last poll).
    pub attached: Arc<AtomicBool>,
    /// With nobody attached for this long, the hook is killed (and the install rolls back).
    pub unattended: Duration,
    done: Arc<AtomicBool>,
}

impl Terminal {
    /// Starts polling the server for `job`'s terminal input on a thread of its own.
    pub fn open(api: &Api, job: &str, unattended: Duration) -> Terminal {
        let (tx, events) = mpsc::channel();
        let attached = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let (api, job) = (api.clone(), job.to_string());
        let (flag, stop) = (Arc::clone(&attached), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut after = 0;
            while !stop.load(Ordering::SeqCst) {
                match api.terminal_poll(&job, after) {
                    Ok(poll) => {
                        flag.store(poll.attached, Ordering::SeqCst);
                        for e in poll.events {
                            after = after.max(e.seq);
                            if tx.send(e).is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(%job, "cannot read the operator's terminal input: {e}");
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            }
        });
        Terminal {
            events,
            attached,
            unattended,
            done,
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        // The poller ends after its current request (at most the server's 20 s wait).
        self.done.store(true, Ordering::SeqCst);
    }
}

/// A pseudo-terminal: the master side the agent reads and writes, the slave side the hook's
/// stdin and stdout.
pub struct Pty {
    pub master: File,
    pub slave: OwnedFd,
}

impl Pty {
    pub fn open((cols, rows): (u16, u16)) -> std::io::Result<Pty> {
        use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
        grantpt(&master)?;
        unlockpt(&master)?;
        let name = ptsname(&master, Vec::new())?;
        let slave = rustix::fs::open(
            name.as_c_str(),
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        let pty = Pty {
            master: File::from(master),
            slave,
        };
        pty.resize(cols, rows)?;
        Ok(pty)
    }

    pub fn resize(&self, cols: u16, rows: u16) -> std::io::Result<()> {
        rustix::termios::tcsetwinsize(
            &self.master,
            rustix::termios::Winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            },
        )?;
        Ok(())
    }
}

/// What the hook runner does with one event from the operator's terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Bytes for the hook's stdin.
    Write(Vec<u8>),
    /// Ctrl-C: interrupt the hook (its process group gets SIGINT).
    Interrupt,
    Resize(u16, u16),
}

/// The actions an event asks for, in order: the hook has no controlling terminal, so a
/// Ctrl-C in the text becomes an interrupt of its own.
pub fn actions(event: &TerminalEvent) -> Vec<Action> {
    let mut out = Vec::new();
    if let (Some(cols), Some(rows)) = (event.cols, event.rows) {
        out.push(Action::Resize(cols, rows));
    }
    if let Some(text) = &event.text {
        for (i, part) in text.split('\u{3}').enumerate() {
            if i > 0 {
                out.push(Action::Interrupt);
            }
            if !part.is_empty() {
                out.push(Action::Write(part.as_bytes().to_vec()));
            }
        }
    }
    out
}

/// Whether nobody has held the terminal for longer than allowed.
pub fn unattended_too_long(last_attached: Instant, now: Instant, allowed: Duration) -> bool {
    now.duration_since(last_attached) > allowed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(text: Option<&str>, size: Option<(u16, u16)>) -> TerminalEvent {
        TerminalEvent {
            seq: 1,
            text: text.map(str::to_string),
            cols: size.map(|s| s.0),
            rows: size.map(|s| s.1),
        }
    }

    #[test]
    fn ctrl_c_interrupts_and_the_rest_is_typed() {
        assert_eq!(
            actions(&ev(Some("ab\u{3}c"), None)),
            vec![
                Action::Write(b"ab".to_vec()),
                Action::Interrupt,
                Action::Write(b"c".to_vec())
            ]
        );
        assert_eq!(actions(&ev(Some("\u{3}"), None)), vec![Action::Interrupt]);
        assert_eq!(
            actions(&ev(None, Some((100, 30)))),
            vec![Action::Resize(100, 30)]
        );
    }

    #[test]
    fn a_pty_reads_back_what_its_slave_writes() {
        use std::io::{Read, Write};
        let pty = Pty::open((90, 30)).unwrap();
        let size = rustix::termios::tcgetwinsize(&pty.slave).unwrap();
        assert_eq!((size.ws_col, size.ws_row), (90, 30));
        let mut slave = File::from(pty.slave.try_clone().unwrap());
        slave.write_all(b"hi\n").unwrap();
        let mut buf = [0u8; 16];
        let n = (&pty.master).read(&mut buf).unwrap();
        // The line discipline turns \n into \r\n, as a terminal shows it.
        assert_eq!(&buf[..n], b"hi\r\n");
        let t0 = Instant::now();
        assert!(!unattended_too_long(t0, t0, Duration::from_secs(1)));
        assert!(unattended_too_long(
            t0,
            t0 + Duration::from_secs(2),
            Duration::from_secs(1)
        ));
    }
}
