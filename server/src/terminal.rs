//! Interactive installs: the terminal between an operator and a device's hooks. The device
//! stays pull-only: it streams the hooks' output as live output (`live.rs`) and long-polls
//! here for what the operator's terminal sent (keystrokes, window sizes). Exactly one operator
//! holds the input at a time (a lease); others may watch the output only. A lease not used
//! for [`LEASE_TTL`] lapses, so a dropped operator can attach again while the session lives.
//!
//! The decisions (who holds the input, which events a poll returns) are plain code over
//! [`Session`], tested without I/O; [`Terminals`] is the thin shared shell around it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_manifests::wire::TerminalEvent;

/// How long a lease holds the input without being used (operators send a keep-alive).
pub const LEASE_TTL: Duration = Duration::from_secs(15);
/// Events kept for a device that has not taken them yet.
const MAX_EVENTS: usize = 4096;

/// Why an operator's input was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Another operator holds the input.
    NotHolder,
}

/// One interactive install's terminal.
#[derive(Debug, Default)]
pub struct Session {
    events: Vec<TerminalEvent>,
    next_seq: u64,
    /// The live lease, when it was last used, and who holds it (an operator token's hash).
    holder: Option<(String, Instant, String)>,
}

impl Session {
    fn holder_live(&self, now: Instant) -> Option<&str> {
        self.holder
            .as_ref()
            .filter(|(_, used, _)| now.duration_since(*used) < LEASE_TTL)
            .map(|(lease, _, _)| lease.as_str())
    }

    /// Attaches with a fresh lease: it holds the input unless another operator's live lease
    /// does. The holder attaching again (a reload of the page) takes the input back at once.
    pub fn attach(&mut self, lease: String, owner: &str, now: Instant) -> bool {
        let mine = self.holder.as_ref().is_some_and(|(_, _, o)| o == owner);
        if self.holder_live(now).is_some() && !mine {
            return false;
        }
        self.holder = Some((lease, now, owner.to_string()));
        true
    }

    /// Who holds the input now (a live lease), if anyone.
    pub fn holder_owner(&self, now: Instant) -> Option<&str> {
        self.holder_live(now)?;
        self.holder.as_ref().map(|(_, _, owner)| owner.as_str())
    }

    /// Gives up the input of `owner` (their credential is gone).
    pub fn release(&mut self, owner: &str) {
        if self.holder.as_ref().is_some_and(|(_, _, o)| o == owner) {
            self.holder = None;
        }
    }

    /// Records what the holder sent (and keeps its lease alive); nothing from anyone else.
    pub fn input(
        &mut self,
        lease: &str,
        text: Option<String>,
        size: Option<(u16, u16)>,
        now: Instant,
    ) -> Result<(), Refused> {
        match &mut self.holder {
            Some((held, used, _)) if held == lease && now.duration_since(*used) < LEASE_TTL => {
                *used = now
            }
            _ => return Err(Refused::NotHolder),
        }
        if text.as_deref().is_some_and(|t| !t.is_empty()) || size.is_some() {
            self.next_seq += 1;
            self.events.push(TerminalEvent {
                seq: self.next_seq,
                text: text.filter(|t| !t.is_empty()),
                cols: size.map(|s| s.0),
                rows: size.map(|s| s.1),
            });
            if self.events.len() > MAX_EVENTS {
                self.events.remove(0);
            }
        }
        Ok(())
    }

    /// The events after `after` (those up to it are dropped: the device has them) and
    /// whether an operator holds the terminal.
    pub fn poll(&mut self, after: u64, now: Instant) -> (Vec<TerminalEvent>, bool) {
        self.events.retain(|e| e.seq > after);
        (self.events.clone(), self.holder_live(now).is_some())
    }
}

/// The terminals of interactive installs under way, by update id.
#[derive(Default)]
pub struct Terminals {
    sessions: Mutex<HashMap<String, (Session, Arc<tokio::sync::Notify>)>>,
}

impl Terminals {
    fn with<T>(&self, id: &str, f: impl FnOnce(&mut Session, &tokio::sync::Notify) -> T) -> T {
        let mut map = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let (session, notify) = map.entry(id.to_string()).or_default();
        f(session, notify)
    }

    /// Who holds the input of `id`'s terminal now, if anyone.
    pub fn holder(&self, id: &str) -> Option<String> {
        self.with(id, |s, _| {
            s.holder_owner(Instant::now()).map(str::to_string)
        })
    }

    /// Takes the input from `owner`, whose credential is gone.
    pub fn release(&self, id: &str, owner: &str) {
        self.with(id, |s, _| s.release(owner));
    }

    pub fn attach(&self, id: &str, owner: &str) -> (String, bool) {
        let lease = uuid::Uuid::new_v4().to_string();
        let holder = self.with(id, |s, n| {
            let holder = s.attach(lease.clone(), owner, Instant::now());
            // The device learns that someone is attached.
            n.notify_waiters();
            holder
        });
        (lease, holder)
    }

    pub fn input(
        &self,
        id: &str,
        lease: &str,
        text: Option<String>,
        size: Option<(u16, u16)>,
    ) -> Result<(), Refused> {
        self.with(id, |s, n| {
            let r = s.input(lease, text, size, Instant::now());
            if r.is_ok() {
                n.notify_waiters();
            }
            r
        })
    }

    /// What the device has not taken yet, waiting up to `wait` for something new.
    pub async fn poll(&self, id: &str, after: u64, wait: Duration) -> (Vec<TerminalEvent>, bool) {
        let deadline = tokio::time::Instant::now() + wait;
        let notify = {
            let mut map = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(id.to_string()).or_default().1.clone()
        };
        loop {
            // Registered before looking, so nothing sent in between is missed.
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (events, attached) = self.with(id, |s, _| s.poll(after, Instant::now()));
            if !events.is_empty() || tokio::time::Instant::now() >= deadline {
                return (events, attached);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.with(id, |s, _| s.poll(after, Instant::now()));
            }
        }
    }

    /// The install ended: its terminal goes.
    pub fn close(&self, id: &str) {
        let mut map = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, notify)) = map.remove(id) {
            notify.notify_waiters();
        }
    }
}

/// One piece of what the operator typed, as the history shows it: when, then the text with
/// control keys made visible (`⏎` for Enter, `^C` for Ctrl-C, `^[` for Escape…); empty for
/// no text.
pub fn transcript_line(text: &str) -> String {
    if text.is_empty() {
        return String::new();
    }
    let mut shown = String::new();
    for c in text.chars() {
        match c {
            '\r' | '\n' => shown.push('⏎'),
            '\t' => shown.push('⇥'),
            c if (c as u32) < 0x20 => {
                shown.push('^');
                shown.push(char::from(b'@' + c as u8));
            }
            '\u{7f}' => shown.push_str("^?"),
            c => shown.push(c),
        }
    }
    let now = time::OffsetDateTime::now_utc();
    format!(
        "[{:02}:{:02}:{:02}] {shown}\n",
        now.hour(),
        now.minute(),
        now.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_keys_are_shown_with_their_control_keys_visible() {
        let line = transcript_line("y\r\u{3}\u{1b}[A");
        assert!(line.ends_with("] y⏎^C^[[A\n"), "{line:?}");
        assert!(line.starts_with('['));
        assert_eq!(transcript_line(""), "");
    }

    #[test]
    fn one_operator_holds_the_input_until_its_lease_lapses() {
        let t0 = Instant::now();
        let mut s = Session::default();
        assert!(s.attach("a".into(), "alice", t0));
        assert!(!s.attach("b".into(), "bob", t0), "alice holds it");
        assert_eq!(
            s.input("b", Some("x".into()), None, t0),
            Err(Refused::NotHolder),
            "a watcher cannot type"
        );
        s.input("a", Some("y\r".into()), None, t0).unwrap();
        s.input("a", None, Some((120, 40)), t0).unwrap();
        let (events, attached) = s.poll(0, t0);
        assert!(attached);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].text.as_deref(), Some("y\r"));
        assert_eq!((events[1].cols, events[1].rows), (Some(120), Some(40)));
        // The device took them: they are not returned again.
        assert!(s.poll(events[1].seq, t0).0.is_empty());
        // a goes quiet: its lease lapses, b attaches, a can no longer type.
        let later = t0 + LEASE_TTL + Duration::from_secs(1);
        assert!(!s.poll(0, later).1, "nobody attached");
        assert!(s.attach("b".into(), "bob", later));
        assert_eq!(
            s.input("a", Some("z".into()), None, later),
            Err(Refused::NotHolder)
        );
        // A keep-alive records nothing.
        s.input("b", None, None, later).unwrap();
        assert!(s.poll(2, later).0.is_empty());
    }

    #[test]
    fn the_holder_attaching_again_takes_the_input_back_at_once() {
        let t0 = Instant::now();
        let mut s = Session::default();
        assert!(s.attach("first".into(), "alice", t0));
        // Alice reloads her page: a new lease, hers at once; the old one types no more.
        assert!(s.attach("second".into(), "alice", t0));
        assert_eq!(
            s.input("first", Some("x".into()), None, t0),
            Err(Refused::NotHolder)
        );
        s.input("second", Some("y".into()), None, t0).unwrap();
        assert!(
            !s.attach("third".into(), "bob", t0),
            "bob still only watches"
        );
        // Alice's credential goes: releasing it as someone else's does nothing; as hers,
        // bob takes the input.
        assert_eq!(s.holder_owner(t0), Some("alice"));
        s.release("bob");
        assert_eq!(s.holder_owner(t0), Some("alice"));
        s.release("alice");
        assert_eq!(s.holder_owner(t0), None);
        assert!(s.attach("fourth".into(), "bob", t0));
        assert_eq!(
            s.input("second", Some("z".into()), None, t0),
            Err(Refused::NotHolder)
        );
    }
}
