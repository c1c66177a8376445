//! Peers at a site, decided over data (docs/delivery.md): whether a device's job is offered
//! with the site's peers, fetched from the server, or held while one of the site's sharing
//! devices fetches the release first; and which peers come first.

use std::net::IpAddr;
use std::time::Duration;

/// A place to fetch from the server is held this long at most: a device that took one and
/// neither finished nor gave up in an hour lets the next one go.
pub const FETCH_HOLD: Duration = Duration::from_secs(3600);

/// At most this many peers are offered for one job.
pub const PEERS_OFFERED: usize = 4;

/// What is known of a job's release at the device's site.
#[derive(Debug, Clone, Default)]
pub struct SiteNow {
    /// Devices at the site that hold the artifact (share addresses).
    pub peers: Vec<String>,
    /// The device itself shares (`share_listen`), so others can follow it.
    pub shares: bool,
    /// The job already holds a place to fetch from the server.
    pub mine: bool,
    /// Other devices at the site holding such a place for this release.
    pub others: i64,
    /// `site_max_downloads` (0: no limit).
    pub cap: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// Offer the job with these peers (and the server after them).
    Peers(Vec<String>),
    /// Offer the job; the device fetches from the server. `take` a place for it first.
    Server { take: bool },
    /// Hold the job back for now, saying why.
    Wait(String),
}

/// The decision for one job of a device at `site`.
pub fn offer(site: &str, now: &SiteNow) -> Offer {
    if !now.peers.is_empty() {
        return Offer::Peers(now.peers.clone());
    }
    if now.mine || now.cap == 0 {
        return Offer::Server { take: false };
    }
    let fetching = now.others.max(0) as u64;
    if now.shares {
        if fetching < u64::from(now.cap) {
            return Offer::Server { take: true };
        }
        return Offer::Wait(format!(
            "waiting: {fetching} device(s) at site {site} are fetching this release first; this one will take it from them (site_max_downloads = {})",
            now.cap
        ));
    }
    // A device that does not share waits only while a sharing one is fetching: it never
    // waits for a peer that may never come.
    if fetching > 0 {
        return Offer::Wait(format!(
            "waiting: a device at site {site} that shares is fetching this release first; this one will take it from it"
        ));
    }
    Offer::Server { take: false }
}

/// Peers ordered nearest to `own` first (the longest run of leading address bits in common),
/// keeping the given order among equals; at most [`PEERS_OFFERED`].
pub fn nearest_first(own: Option<IpAddr>, mut peers: Vec<String>) -> Vec<String> {
    if let Some(own) = own {
        let shared_bits = |url: &String| {
            ferry_manifests::wire::share_address(url).map_or(0, |a| common_bits(own, a.ip()))
        };
        // Stable: peers as near as each other stay newest seen first.
        peers.sort_by_key(|p| std::cmp::Reverse(shared_bits(p)));
    }
    peers.truncate(PEERS_OFFERED);
    peers
}

fn common_bits(a: IpAddr, b: IpAddr) -> u32 {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) ^ u32::from(b)).leading_zeros(),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a) ^ u128::from(b)).leading_zeros(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now(peers: &[&str], shares: bool, mine: bool, others: i64, cap: u32) -> SiteNow {
        SiteNow {
            peers: peers.iter().map(|p| p.to_string()).collect(),
            shares,
            mine,
            others,
            cap,
        }
    }

    #[test]
    fn a_peer_holding_the_release_is_offered_before_anything_else() {
        let offer = offer("shop", &now(&["http://10.0.0.2:8089"], true, false, 3, 1));
        assert_eq!(offer, Offer::Peers(vec!["http://10.0.0.2:8089".into()]));
    }

    #[test]
    fn sharing_devices_fetch_from_the_server_up_to_the_cap_and_the_rest_wait() {
        assert_eq!(
            offer("shop", &now(&[], true, false, 0, 1)),
            Offer::Server { take: true }
        );
        let Offer::Wait(why) = offer("shop", &now(&[], true, false, 1, 1)) else {
            panic!("a second sharing device should wait under a cap of 1");
        };
        assert!(
            why.contains("site shop") && why.contains("site_max_downloads = 1"),
            "{why}"
        );
        assert_eq!(
            offer("shop", &now(&[], true, false, 1, 2)),
            Offer::Server { take: true }
        );
        // One that holds a place keeps it; no cap, no waiting.
        assert_eq!(
            offer("shop", &now(&[], true, true, 5, 1)),
            Offer::Server { take: false }
        );
        assert_eq!(
            offer("shop", &now(&[], true, false, 5, 0)),
            Offer::Server { take: false }
        );
    }

    #[test]
    fn a_device_that_does_not_share_waits_only_while_a_sharing_one_fetches() {
        assert!(matches!(
            offer("shop", &now(&[], false, false, 1, 1)),
            Offer::Wait(_)
        ));
        assert_eq!(
            offer("shop", &now(&[], false, false, 0, 1)),
            Offer::Server { take: false }
        );
    }

    #[test]
    fn the_nearest_peers_come_first_and_few_are_offered() {
        let peers: Vec<String> = [
            "http://10.1.0.9:8089",
            "http://192.168.7.30:8089",
            "http://192.168.7.3:8089",
            "http://10.1.0.8:8089",
            "http://10.2.0.1:8089",
            "http://10.3.0.1:8089",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let own: IpAddr = "192.168.7.2".parse().unwrap();
        let ordered = nearest_first(Some(own), peers.clone());
        assert_eq!(
            ordered,
            vec![
                "http://192.168.7.3:8089",
                "http://192.168.7.30:8089",
                "http://10.1.0.9:8089",
                "http://10.1.0.8:8089"
            ]
        );
        // Without an own address the order given (newest seen first) stays.
        assert_eq!(nearest_first(None, peers.clone()), peers[..4].to_vec());
    }
}
