//! ferry-tlsbench: what device identity costs a ferry-server over TLS, for bench/identity.sh.
//!
//! - per check-in, each on a new connection: the server's CPU time and the wall time, with a
//!   bearer token and with a client certificate, full handshakes and resumed ones (TLS 1.3
//!   tickets), and on one kept-alive connection (no handshake) for the floor;
//! - memory per held long-poll: N devices each hold a check-in open over TLS, with a bearer
//!   token, then N others with a client certificate; the server's RSS growth per long-poll.
//!
//! Every loop is bounded by count and time; all traffic goes to 127.0.0.1.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

#[derive(Parser)]
struct Cli {
    /// The server's address (127.0.0.1:PORT), serving TLS.
    #[arg(long)]
    addr: String,
    /// PEM of the CA that signed the server's certificate.
    #[arg(long)]
    ca: std::path::PathBuf,
    #[arg(long)]
    enrol_token: String,
    /// The server's pid, for its CPU time and RSS.
    #[arg(long)]
    server_pid: u32,
    /// Check-ins measured per case.
    #[arg(long, default_value_t = 400)]
    checkins: usize,
    /// Long-polls held per case.
    #[arg(long, default_value_t = 1000)]
    held: usize,
    /// One part only: `checkins`, `held-token` or `held-certificate` (memory is best
    /// measured on a fresh server each: freed memory a server keeps would flatter the
    /// second case).
    #[arg(long)]
    only: Option<String>,
}

/// A device as the bench knows it: a bearer token or a certificate and key.
struct Device {
    token: Option<String>,
    identity: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
}

fn facts(name: &str) -> serde_json::Value {
    serde_json::json!({"hostname": name, "os": "linux", "os_version": "12", "arch": "x86_64",
                       "agent_version": "0.1.0", "installed": []})
}

fn enrol(
    http: &reqwest::blocking::Client,
    cli: &Cli,
    name: &str,
    certificate: bool,
) -> anyhow::Result<Device> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let csr = if certificate {
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "ferry-agent");
        Some(params.serialize_request(&key)?.pem()?)
    } else {
        None
    };
    let resp = http
        .post(format!("https://{}/api/v1/enrol", cli.addr))
        .json(
            &serde_json::json!({"enrol_token": cli.enrol_token, "facts": facts(name), "csr": csr}),
        )
        .send()?;
    if !resp.status().is_success() {
        bail!("enrolment of {name}: {} {}", resp.status(), resp.text()?);
    }
    let body: serde_json::Value = resp.json()?;
    if certificate {
        let pem = body["certificate"]
            .as_str()
            .context("the server issued no certificate: is TLS on and device_auth not token?")?;
        let cert = CertificateDer::from_pem_slice(pem.as_bytes())?;
        let key = PrivateKeyDer::Pkcs8(key.serialize_der().into());
        Ok(Device {
            token: None,
            identity: Some((cert, key)),
        })
    } else {
        Ok(Device {
            token: Some(
                body["device_token"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ),
            identity: None,
        })
    }
}

fn tls_config(
    roots: &rustls::RootCertStore,
    device: &Device,
    resume: bool,
) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots.clone());
    let mut config = match &device.identity {
        Some((cert, key)) => builder.with_client_auth_cert(vec![cert.clone()], key.clone_key())?,
        None => builder.with_no_client_auth(),
    };
    if !resume {
        config.resumption = Resumption::disabled();
    }
    Ok(Arc::new(config))
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn connect(addr: &str, config: &Arc<rustls::ClientConfig>) -> anyhow::Result<Tls> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(90)))?;
    tcp.set_nodelay(true)?;
    let conn = rustls::ClientConnection::new(config.clone(), ServerName::try_from("127.0.0.1")?)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

fn send_checkin(tls: &mut Tls, device: &Device, wait: u64, close: bool) -> anyhow::Result<()> {
    let body = serde_json::json!({"facts": facts("bench"), "wait_secs": wait}).to_string();
    let auth = device
        .token
        .as_deref()
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST /api/v1/device/checkin HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{auth}Connection: {}\r\n\r\n{body}",
        body.len(),
        if close { "close" } else { "keep-alive" }
    );
    tls.write_all(request.as_bytes())?;
    tls.flush()?;
    Ok(())
}

/// Reads one response; its status must be 200.
fn read_response(tls: &mut Tls) -> anyhow::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if tls.read(&mut byte)? == 0 {
            bail!("the server closed the connection mid-response");
        }
        head.push(byte[0]);
        if head.len() > 16 * 1024 {
            bail!("response headers too long");
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    tls.read_exact(&mut body)?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!(
            "check-in answered {}: {}",
            head.lines().next().unwrap_or(""),
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}

/// The server's CPU time so far (user + system).
fn cpu(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').context("odd /proc stat")?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>()? + f[12].parse::<u64>()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)?.unwrap_or(100) as u64;
    Ok(Duration::from_micros(ticks * 1_000_000 / hz))
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmRSS")
}

/// `n` check-ins, each on a new connection (or all on one with `keep_alive`).
fn per_checkin(
    cli: &Cli,
    roots: &rustls::RootCertStore,
    device: &Device,
    resume: bool,
    keep_alive: bool,
) -> anyhow::Result<(f64, f64, usize)> {
    let config = tls_config(roots, device, resume)?;
    // One check-in first, so a resumed case starts with a ticket and every case warm.
    let mut tls = connect(&cli.addr, &config)?;
    send_checkin(&mut tls, device, 0, !keep_alive)?;
    read_response(&mut tls)?;
    let (cpu0, t0) = (cpu(cli.server_pid)?, Instant::now());
    let deadline = t0 + Duration::from_secs(300);
    let mut resumed = 0;
    for _ in 0..cli.checkins {
        if Instant::now() > deadline {
            bail!("the case took over 300 s");
        }
        if !keep_alive {
            tls = connect(&cli.addr, &config)?;
            if tls.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
                resumed += 1;
            }
        }
        send_checkin(&mut tls, device, 0, !keep_alive)?;
        read_response(&mut tls)?;
    }
    let wall = t0.elapsed().as_secs_f64() * 1e3 / cli.checkins as f64;
    let server = (cpu(cli.server_pid)? - cpu0).as_secs_f64() * 1e6 / cli.checkins as f64;
    Ok((wall, server, resumed))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca_pem = std::fs::read(&cli.ca).with_context(|| format!("{}", cli.ca.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&ca_pem) {
        roots.add(c?)?;
    }
    let http = reqwest::blocking::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca_pem)?])
        .timeout(Duration::from_secs(30))
        .build()?;

    let part = |p: &str| cli.only.as_deref().is_none_or(|o| o == p);
    if part("checkins") {
        checkins(&cli, &http, &roots)?;
    }
    for (certificate, p) in [(false, "held-token"), (true, "held-certificate")] {
        if part(p) {
            held(&cli, &http, &roots, certificate)?;
        }
    }
    Ok(())
}

fn checkins(
    cli: &Cli,
    http: &reqwest::blocking::Client,
    roots: &rustls::RootCertStore,
) -> anyhow::Result<()> {
    println!(
        "== per check-in ({} each, server CPU and wall time)",
        cli.checkins
    );
    let token = enrol(http, cli, "bench-token", false)?;
    let cert = enrol(http, cli, "bench-cert", true)?;
    println!(
        "{:<44} {:>14} {:>12} {:>8}",
        "case", "server CPU µs", "wall ms", "resumed"
    );
    for (name, device, resume, keep) in [
        ("bearer token, kept-alive connection", &token, true, true),
        (
            "client certificate, kept-alive connection",
            &cert,
            true,
            true,
        ),
        (
            "bearer token, new connection, full handshake",
            &token,
            false,
            false,
        ),
        ("bearer token, new connection, resumed", &token, true, false),
        (
            "client certificate, new connection, full",
            &cert,
            false,
            false,
        ),
        (
            "client certificate, new connection, resumed",
            &cert,
            true,
            false,
        ),
    ] {
        let (wall, server, resumed) =
            per_checkin(cli, roots, device, resume, keep).with_context(|| name.to_string())?;
        println!("{name:<44} {server:>14.0} {wall:>12.2} {resumed:>8}");
    }
    Ok(())
}

/// Memory per held long-poll: `cli.held` devices each hold a check-in open.
fn held(
    cli: &Cli,
    http: &reqwest::blocking::Client,
    roots: &rustls::RootCertStore,
    certificate: bool,
) -> anyhow::Result<()> {
    {
        let what = if certificate {
            "client certificate"
        } else {
            "bearer token"
        };
        let devices = (0..cli.held)
            .map(|i| enrol(http, cli, &format!("held-{certificate}-{i}"), certificate))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let configs = devices
            .iter()
            .map(|d| tls_config(roots, d, false))
            .collect::<anyhow::Result<Vec<_>>>()?;
        std::thread::sleep(Duration::from_secs(1));
        let before = rss_kib(cli.server_pid)?;
        let mut open = Vec::with_capacity(cli.held);
        for (d, c) in devices.iter().zip(&configs) {
            let mut tls = connect(&cli.addr, c)?;
            send_checkin(&mut tls, d, 50, true)?;
            open.push(tls);
        }
        std::thread::sleep(Duration::from_secs(2));
        let held = rss_kib(cli.server_pid)?;
        // Held: nothing answered yet on any of them.
        let mut answered = 0;
        for tls in &mut open {
            tls.sock.set_nonblocking(true)?;
            let mut buf = [0u8; 1];
            match tls.read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                _ => answered += 1,
            }
        }
        if answered > 0 {
            bail!(
                "{answered} of {} long-polls were answered instead of held",
                cli.held
            );
        }
        println!(
            "{what}: server RSS {} → {} MiB, {} bytes per held long-poll",
            before / 1024,
            held / 1024,
            (held.saturating_sub(before)) * 1024 / cli.held as u64
        );
        drop(open);
        std::thread::sleep(Duration::from_secs(2));
    }
    Ok(())
}
