//! Peers at a site: devices behind one uplink take artifacts from each other rather than each
//! from the server. A device with `share_listen` keeps the verified artifact of each item's
//! installed release in `shared/` (named by its sha256) and serves it there, read-only, with
//! HTTP Range; it tells the server its site, where it serves and what it holds, and the server
//! offers it to the site's other devices as a peer. Whoever takes bytes from a peer checks
//! them against the signed hash as it would the server's (docs/delivery.md).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};

use ferry_manifests::wire::{Site, MAX_HELD};

use crate::agent::Agent;
use crate::error::{io_err, Error};
use crate::state::StateDir;

/// What this device tells the server of its site; `None` when it has none (no `site` and no
/// default gateway to derive one from).
pub fn site(agent: &Agent) -> Option<Site> {
    let name = agent.cfg.site.clone().or_else(derived_site)?;
    let share = agent
        .cfg
        .share_listen
        .and_then(|listen| advertised(listen, agent.cfg.server_url.as_ref()))
        .map(|addr| format!("http://{addr}"));
    let holds = if share.is_some() {
        held(&agent.dir)
    } else {
        Vec::new()
    };
    Some(Site { name, share, holds })
}

/// The site named after the default gateway: `gateway-MAC` (its hardware address, which tells
/// two sites whose routers share an address apart), else `gateway-IP`.
fn derived_site() -> Option<String> {
    let route = std::fs::read_to_string("/proc/net/route").ok()?;
    let gateway = default_gateway(&route)?;
    let arp = std::fs::read_to_string("/proc/net/arp").unwrap_or_default();
    Some(match gateway_mac(&arp, gateway) {
        Some(mac) => format!("gateway-{mac}"),
        None => format!("gateway-{gateway}"),
    })
}

/// The default route's gateway in `/proc/net/route`'s text.
pub fn default_gateway(route: &str) -> Option<Ipv4Addr> {
    const RTF_UP: u32 = 0x1;
    const RTF_GATEWAY: u32 = 0x2;
    route.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (destination, gateway, flags) = (f.get(1)?, f.get(2)?, f.get(3)?);
        let flags = u32::from_str_radix(flags, 16).ok()?;
        if *destination != "00000000" || flags & (RTF_UP | RTF_GATEWAY) != RTF_UP | RTF_GATEWAY {
            return None;
        }
        // The kernel prints the address's network-order bytes read as a native integer.
        let raw = u32::from_str_radix(gateway, 16).ok()?;
        Some(Ipv4Addr::from(raw.to_ne_bytes())).filter(|ip| !ip.is_unspecified())
    })
}

/// The hardware address of `ip` in `/proc/net/arp`'s text, when the entry is complete.
pub fn gateway_mac(arp: &str, ip: Ipv4Addr) -> Option<String> {
    arp.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let mac = f.get(3)?;
        (f.first()? == &ip.to_string() && *mac != "00:00:00:00:00:00")
            .then(|| mac.to_ascii_lowercase())
    })
}

/// The address peers reach this device's share at: `share_listen` itself, or for a wildcard
/// address the local address of the route to the server (no packet is sent to find it).
fn advertised(listen: SocketAddr, server: Option<&reqwest::Url>) -> Option<SocketAddr> {
    if !listen.ip().is_unspecified() {
        return Some(listen);
    }
    let server = server?;
    // The server's address is looked up at most every ten minutes (a long-polling device
    // checks in every half minute; a DNS query each time would cost its link for nothing).
    static KNOWN: std::sync::Mutex<Option<(std::time::Instant, SocketAddr)>> =
        std::sync::Mutex::new(None);
    let mut known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    let target = match *known {
        Some((at, addr)) if at.elapsed() < std::time::Duration::from_secs(600) => addr,
        _ => {
            let addr = server.socket_addrs(|| None).ok()?.into_iter().next()?;
            *known = Some((std::time::Instant::now(), addr));
            addr
        }
    };
    drop(known);
    let local: IpAddr = if target.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    };
    let socket = UdpSocket::bind((local, 0)).ok()?;
    socket.connect(target).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    Some(SocketAddr::new(ip, listen.port()))
}

/// The sha256 of each artifact in `shared/` (at most [`MAX_HELD`]).
pub fn held(dir: &StateDir) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir.shared()) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| ferry_manifests::invalid::is_sha256_hex(n))
        .collect();
    out.sort();
    out.truncate(MAX_HELD);
    out
}

/// After `item`'s install is committed: with `share_listen`, its verified full artifact
/// (`artifact`, when it is one) moves to `shared/`; whatever no installed release of any item
/// has any longer leaves it. Without `share_listen`, `shared/` is emptied.
pub fn keep(agent: &Agent, item: &str, artifact: &Path) {
    let dir = agent.dir.shared();
    let installed: Vec<String> = if agent.cfg.share_listen.is_some() {
        agent
            .cfg
            .items
            .iter()
            .filter_map(|i| agent.dir.installed_release(&i.name))
            .map(|m| m.artifact.sha256)
            .collect()
    } else {
        Vec::new()
    };
    if let Some(m) = agent
        .dir
        .installed_release(item)
        .filter(|m| installed.contains(&m.artifact.sha256))
        .filter(|m| agent.dir.artifact_path(item, &m.artifact.sha256) == artifact)
    {
        let to = dir.join(&m.artifact.sha256);
        let moved = std::fs::create_dir_all(&dir).and_then(|()| std::fs::rename(artifact, &to));
        match moved {
            Ok(()) => {
                tracing::info!(%item, sha256 = %m.artifact.sha256, "the artifact is kept for peers at this site")
            }
            Err(e) => {
                tracing::warn!(%item, path = %to.display(), "cannot keep the artifact for peers: {e}")
            }
        }
    }
    for sha in held(&agent.dir) {
        if !installed.contains(&sha) {
            let path = dir.join(&sha);
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), "cannot remove an artifact no longer shared: {e}");
            }
        }
    }
}

/// At most this many peers are served at once; more wait for a free place.
const CONNECTIONS: usize = 16;

/// Serves `shared` (the state directory's `shared/`) on `listen` until `stop` is set:
/// `GET`/`HEAD /artifacts/SHA256`, with Range; nothing else. Nothing here needs or sees a
/// credential.
pub fn serve(
    listen: SocketAddr,
    shared: PathBuf,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(io_err(&shared))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| Error::ShareListen {
                listen,
                message: e.to_string(),
            })?;
        tracing::info!(%listen, dir = %shared.display(), "sharing verified artifacts with peers at this site");
        let places = std::sync::Arc::new(tokio::sync::Semaphore::new(CONNECTIONS));
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            let accepted = tokio::time::timeout(
                std::time::Duration::from_millis(500),
                listener.accept(),
            )
            .await;
            let Ok(Ok((stream, _))) = accepted else {
                continue;
            };
            let Ok(place) = places.clone().acquire_owned().await else {
                break;
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let shared = shared.clone();
                    async move { answer(&shared, req).await }
                });
                // A peer that opens a connection and says nothing gives its place up soon.
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(std::time::Duration::from_secs(10))
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                // A peer that stalls is dropped: no transfer of one artifact takes a day.
                let _ = tokio::time::timeout(std::time::Duration::from_secs(86_400), conn).await;
                drop(place);
            });
        }
        Ok(())
    })
}

type Body = tower_http::services::fs::ServeFileSystemResponseBody;

async fn answer(
    shared: &Path,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Body>, std::convert::Infallible> {
    use tower::ServiceExt;
    // Only a file named by a sha256 is ever served; anything else asks for a name no file
    // in `shared/` has (`keep` writes sha256 names only), so it answers 404.
    let file = req
        .uri()
        .path()
        .strip_prefix("/artifacts/")
        .filter(|sha| ferry_manifests::invalid::is_sha256_hex(sha))
        .map_or_else(|| shared.join("-"), |sha| shared.join(sha));
    match tower_http::services::ServeFile::new(file)
        .oneshot(req)
        .await
    {
        Ok(resp) => Ok(resp),
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_gateway_is_read_from_the_route_table() {
        let route =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth0\t0002A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                     eth0\t00000000\t0102A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n";
        assert_eq!(default_gateway(route), Some(Ipv4Addr::new(192, 168, 2, 1)));
        // A default route without a gateway (a point-to-point link) names no site.
        let direct = "Iface\tDestination\tGateway\tFlags\n\
                      ppp0\t00000000\t00000000\t0001\n";
        assert_eq!(default_gateway(direct), None);
    }

    #[test]
    fn the_gateway_is_named_by_its_hardware_address_when_known() {
        let arp =
            "IP address       HW type     Flags       HW address            Mask     Device\n\
                   192.168.2.1      0x1         0x2         AA:bb:cc:dd:ee:01     *        eth0\n\
                   192.168.2.7      0x1         0x0         00:00:00:00:00:00     *        eth0\n";
        let gw = Ipv4Addr::new(192, 168, 2, 1);
        assert_eq!(gateway_mac(arp, gw).as_deref(), Some("aa:bb:cc:dd:ee:01"));
        assert_eq!(gateway_mac(arp, Ipv4Addr::new(192, 168, 2, 7)), None);
        assert_eq!(gateway_mac(arp, Ipv4Addr::new(10, 0, 0, 1)), None);
    }

    #[test]
    fn a_specific_listen_address_is_the_one_told() {
        let listen: SocketAddr = "127.0.0.5:8089".parse().unwrap();
        assert_eq!(advertised(listen, None), Some(listen));
        let any: SocketAddr = "0.0.0.0:8089".parse().unwrap();
        let server = reqwest::Url::parse("https://127.0.0.1:8443/").unwrap();
        let told = advertised(any, Some(&server)).unwrap();
        assert_eq!(told, "127.0.0.1:8089".parse().unwrap());
    }
}
