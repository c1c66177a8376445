//! The server's egress caps (docs/delivery.md): artifact and delta bytes leave at most at
//! `max_egress_rate` in all, shared fairly between the downloads under way, and each
//! download at most at `max_egress_rate_per_device`. Check-ins and other answers are not
//! paced: a held download waits on a timer, never on a thread or the database.

use std::time::Duration;

use axum::body::{Body, Bytes};
use futures_util::StreamExt as _;
use tokio::time::Instant;

/// Largest piece of a body sent at once under a cap: small pieces share the link fairly.
const PIECE: usize = 16 * 1024;

/// A rate's schedule: each piece reserves the next slot in turn (a fair queue, since the
/// lock serves waiters in order, and a download reserves its next piece only once its last
/// one went), then waits for it outside the lock.
#[derive(Debug)]
struct Schedule {
    rate: u64,
    next: tokio::sync::Mutex<Instant>,
}

impl Schedule {
    fn new(rate: u64) -> Schedule {
        Schedule {
            rate,
            next: tokio::sync::Mutex::new(Instant::now()),
        }
    }

    /// Waits until `bytes` more may go: the end of the next free slot as long as they take
    /// at the rate.
    async fn take(&self, bytes: usize) {
        let until = {
            let mut next = self.next.lock().await;
            *next = (*next).max(Instant::now()) + cost(bytes, self.rate);
            *next
        };
        tokio::time::sleep_until(until).await;
    }
}

/// How long `bytes` take at `rate` bytes a second.
pub fn cost(bytes: usize, rate: u64) -> Duration {
    Duration::from_secs_f64(bytes as f64 / rate.max(1) as f64)
}

/// The caps, from the server's config.
#[derive(Debug, Default)]
pub struct Egress {
    all: Option<std::sync::Arc<Schedule>>,
    per_device: Option<u64>,
}

impl Egress {
    pub fn new(all: Option<u64>, per_device: Option<u64>) -> Egress {
        Egress {
            all: all.map(|r| std::sync::Arc::new(Schedule::new(r))),
            per_device,
        }
    }

    /// `body` as it may leave: in pieces, each waiting its turn under the caps. Without caps,
    /// the body as it is.
    pub fn shape(&self, body: Body) -> Body {
        if self.all.is_none() && self.per_device.is_none() {
            return body;
        }
        let all = self.all.clone();
        let own = self
            .per_device
            .map(|r| std::sync::Arc::new(Schedule::new(r)));
        let pieces = body.into_data_stream().flat_map(|chunk| {
            let parts: Vec<Result<Bytes, axum::Error>> = match chunk {
                Ok(mut bytes) => {
                    let mut parts = Vec::with_capacity(bytes.len() / PIECE + 1);
                    while bytes.len() > PIECE {
                        parts.push(Ok(bytes.split_to(PIECE)));
                    }
                    parts.push(Ok(bytes));
                    parts
                }
                Err(e) => vec![Err(e)],
            };
            futures_util::stream::iter(parts)
        });
        let paced = pieces.then(move |piece| {
            let (all, own) = (all.clone(), own.clone());
            async move {
                if let Ok(bytes) = &piece {
                    if let Some(own) = &own {
                        own.take(bytes.len()).await;
                    }
                    if let Some(all) = &all {
                        all.take(bytes.len()).await;
                    }
                }
                piece
            }
        });
        Body::from_stream(paced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn downloads_share_the_cap_fairly_and_the_sum_stays_under_it() {
        // 4 downloads of 64 KiB under 64 KiB/s in all: 4 s for the lot, and each finishes
        // in the last quarter (none is served first while the others wait).
        let egress = Egress::new(Some(64 * 1024), None);
        let began = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let body = egress.shape(Body::from(vec![7u8; 64 * 1024]));
            tasks.push(tokio::spawn(async move {
                let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
                (bytes.len(), began.elapsed())
            }));
        }
        let mut ends = Vec::new();
        for t in tasks {
            let (len, took) = t.await.unwrap();
            assert_eq!(len, 64 * 1024);
            ends.push(took);
        }
        let last = ends.iter().max().unwrap();
        assert!(*last >= Duration::from_millis(3_700), "{ends:?}");
        assert!(*last <= Duration::from_millis(4_300), "{ends:?}");
        let first = ends.iter().min().unwrap();
        assert!(*first >= Duration::from_secs(3), "{ends:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_download_keeps_to_its_own_cap() {
        let egress = Egress::new(None, Some(32 * 1024));
        let began = Instant::now();
        let body = egress.shape(Body::from(vec![1u8; 96 * 1024]));
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        assert_eq!(bytes.len(), 96 * 1024);
        let took = began.elapsed();
        assert!(took >= Duration::from_millis(2_900), "{took:?}");
        // Without caps the body is untouched.
        let free = Egress::new(None, None).shape(Body::from("x"));
        assert_eq!(axum::body::to_bytes(free, 10).await.unwrap(), "x");
    }
}
