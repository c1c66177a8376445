//! Live hook output: devices post pieces of a running job's output; operators watch them as a
//! Server-Sent Events stream. One broadcast channel per update that someone watches or writes.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::broadcast;

/// Pieces buffered per update for slow watchers; a watcher that falls further behind is told
/// to re-read the stored output.
const CHANNEL: usize = 256;

#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// `text` starts at character `offset` of the stored output.
    Chunk { offset: i64, text: String },
    /// The update finished with this status.
    End { status: String },
}

#[derive(Default)]
pub struct Live {
    channels: Mutex<HashMap<String, broadcast::Sender<LiveEvent>>>,
}

impl Live {
    fn sender(&self, update_id: &str) -> broadcast::Sender<LiveEvent> {
        let mut map = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(update_id.to_string())
            .or_insert_with(|| broadcast::channel(CHANNEL).0)
            .clone()
    }

    pub fn subscribe(&self, update_id: &str) -> broadcast::Receiver<LiveEvent> {
        self.sender(update_id).subscribe()
    }

    /// Whether anyone here watches the update's output.
    pub fn watched(&self, update_id: &str) -> bool {
        let map = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        map.get(update_id).is_some_and(|s| s.receiver_count() > 0)
    }

    pub fn publish(&self, update_id: &str, event: LiveEvent) {
        let end = matches!(event, LiveEvent::End { .. });
        // No watcher is fine: the output is stored anyway.
        let _ = self.sender(update_id).send(event);
        if end {
            let mut map = self.channels.lock().unwrap_or_else(|e| e.into_inner());
            map.remove(update_id);
        }
    }
}

/// The part of a chunk a watcher has not seen, given it read the first `seen` characters from
/// the store.
pub fn unseen(offset: i64, text: &str, seen: i64) -> Option<String> {
    let skip = (seen - offset).max(0) as usize;
    let rest: String = text.chars().skip(skip).collect();
    (!rest.is_empty()).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_already_read_from_the_store_are_not_repeated() {
        assert_eq!(unseen(0, "abc", 0).as_deref(), Some("abc"));
        assert_eq!(unseen(0, "abc", 2).as_deref(), Some("c"));
        assert_eq!(unseen(0, "abc", 3), None);
        assert_eq!(unseen(5, "xy", 3).as_deref(), Some("xy"));
    }
}
