//! A webhook receiver on a loopback port: it records every request (headers and body) and
//! answers as told, one planned answer per request (then 200).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the receiver answers one request.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    Status(u16),
    /// 200, after this long (longer than the server waits: a timeout there).
    Slow(Duration),
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
    /// What it answered (200 also for a slow answer the sender gave up on).
    pub status: u16,
    pub slow: bool,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

pub struct Receiver {
    pub port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    plan: Arc<Mutex<VecDeque<Answer>>>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    /// Listens on `port` (a free one the test chose), answering `plan` in order, then 200.
    pub fn start(port: u16, plan: &[Answer]) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the receiver");
        listener.set_nonblocking(true).unwrap();
        let r = Receiver {
            port,
            received: Arc::default(),
            plan: Arc::new(Mutex::new(plan.iter().copied().collect())),
            stop: Arc::default(),
        };
        let (received, answers, stop) = (
            Arc::clone(&r.received),
            Arc::clone(&r.plan),
            Arc::clone(&r.stop),
        );
        std::thread::spawn(move || {
            // Bounded by the test's life: the receiver stops when dropped.
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let received = Arc::clone(&received);
                        let answers = Arc::clone(&answers);
                        std::thread::spawn(move || handle(stream, &received, &answers));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        r
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Requests answered 200 in time, of event `kind`.
    pub fn taken(&self, kind: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.status == 200 && !r.slow && r.json()["type"] == kind)
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn handle(stream: TcpStream, received: &Mutex<Vec<Received>>, plan: &Mutex<VecDeque<Answer>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut headers = Vec::new();
    for _ in 0..100 {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end().to_string();
        if line.is_empty() {
            break;
        }
        headers.push(line);
    }
    let header = |name: &str| {
        headers
            .iter()
            .find_map(|h| {
                let (k, v) = h.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
            .unwrap_or_default()
    };
    let len: usize = header("content-length").parse().unwrap_or(0);
    let mut body = vec![0; len.min(1 << 20)];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let answer = plan.lock().unwrap().pop_front();
    let (status, slow) = match answer {
        Some(Answer::Status(s)) => (s, false),
        Some(Answer::Slow(d)) => {
            std::thread::sleep(d);
            (200, true)
        }
        None => (200, false),
    };
    received.lock().unwrap().push(Received {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: String::from_utf8_lossy(&body).into_owned(),
        status,
        slow,
    });
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
}
