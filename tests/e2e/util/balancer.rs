//! A load balancer for the scale-out tests: a TCP relay on a free loopback port that hands
//! each connection to the next instance that accepts it, round robin, as a real balancer
//! with health checks would after an instance dies.

use std::io::copy;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct Balancer {
    pub addr: String,
}

impl Balancer {
    /// Relays to `backends` (`HOST:PORT`) until the test process ends.
    pub fn start(backends: Vec<String>) -> Balancer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("balancer port");
        let addr = listener.local_addr().expect("balancer address").to_string();
        let next = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let start = next.fetch_add(1, Ordering::SeqCst);
                // The first instance, from this one on, that takes the connection.
                let upstream = (0..backends.len()).find_map(|i| {
                    let b = &backends[(start + i) % backends.len()];
                    TcpStream::connect_timeout(&b.parse().ok()?, Duration::from_secs(1)).ok()
                });
                let Some(upstream) = upstream else { continue };
                relay(client, upstream);
            }
        });
        Balancer { addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Copies both ways until either side closes.
fn relay(client: TcpStream, upstream: TcpStream) {
    let (Ok(mut c2), Ok(mut u2)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let (mut c1, mut u1) = (client, upstream);
    std::thread::spawn(move || {
        let _ = copy(&mut c1, &mut u1);
        let _ = u1.shutdown(Shutdown::Write);
    });
    std::thread::spawn(move || {
        let _ = copy(&mut u2, &mut c2);
        let _ = c2.shutdown(Shutdown::Write);
    });
}
