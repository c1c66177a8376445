//! Progress on a terminal: plain lines, and a byte counter for downloads redrawn at most a
//! few times a second. Only used when stderr is a terminal; journald gets tracing lines.

use std::io::Write;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Progress;

impl Progress {
    pub fn line(&self, text: &str) {
        eprintln!("{text}");
    }

    pub fn bytes(&self, label: &str, total: u64) -> ByteProgress {
        ByteProgress {
            label: label.to_string(),
            total,
            last: Instant::now() - Duration::from_secs(1),
        }
    }
}

pub struct ByteProgress {
    label: String,
    total: u64,
    last: Instant,
}

impl ByteProgress {
    pub fn update(&mut self, done: u64) {
        if self.last.elapsed() < Duration::from_millis(250) && done < self.total {
            return;
        }
        self.last = Instant::now();
        let pct = done
            .saturating_mul(100)
            .checked_div(self.total)
            .unwrap_or(100);
        eprint!(
            "\r{}: {:>5.1} / {:.1} MiB ({pct}%)",
            self.label,
            done as f64 / 1048576.0,
            self.total as f64 / 1048576.0
        );
        let _ = std::io::stderr().flush();
        if done >= self.total {
            eprintln!();
        }
    }
}
