//! ferry-loadgen: simulates a fleet against a ferry-server on loopback, for bench/load.sh.
//!
//! - `enrol`: enrols N devices (their credentials are kept in memory for the other phases);
//! - the cold pass: every device checks in once with facts that changed since it enrolled
//!   (its agent was upgraded), so each check-in writes; prints these check-ins (writes)/s;
//! - `checkin`: C workers check in as those devices for S seconds; prints check-ins/s and
//!   p50/p99 latency; then the same load runs against a trivial axum handler, for the
//!   loopback ceiling: once in this process, once in a process of its own (`--serve-trivial`);
//! - `longpoll`: N devices hold long-poll check-ins open; prints how many are held; then
//!   measures, a few times, how long a trigger takes to reach a waiting device.
//!
//! Every loop is bounded by count and time; all traffic goes to 127.0.0.1.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use ferry_manifests::wire::{DeviceFacts, InstalledItem};

mod longpoll;

#[derive(Parser)]
struct Cli {
    /// Server URL (loopback only); repeat it for several instances of one fleet: workers
    /// spread over them, and the trigger measurement waits on the last one.
    #[arg(long, required_unless_present = "serve_trivial")]
    server: Vec<String>,
    /// Fleet enrolment token.
    #[arg(long, required_unless_present = "serve_trivial")]
    enrol_token: Option<String>,
    /// Operator token (for the trigger-latency measurement).
    #[arg(long, required_unless_present = "serve_trivial")]
    operator_token: Option<String>,
    /// Only serve the trivial handler on a free loopback port, print its address and run
    /// until killed: the ceiling in a process of its own, as the server is.
    #[arg(long)]
    serve_trivial: bool,
    #[arg(long, default_value_t = 10_000)]
    devices: usize,
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Item every simulated device has (a release of it must be published for the trigger
    /// measurement).
    #[arg(long, default_value = "bench")]
    item: String,
    /// Warm runs, each followed by the trivial handler's (their ratio is what counts).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Stop after the check-in figures (no long-poll or trigger measurement).
    #[arg(long)]
    checkins_only: bool,
    /// Only the long-poll and trigger measurements (no check-in figures).
    #[arg(long)]
    longpoll_only: bool,
    /// How long each long-poll asks the server to hold it (the server caps it at its
    /// `long_poll_max_secs`).
    #[arg(long, default_value_t = 50)]
    wait_secs: u64,
    /// Spread the long-polls over local addresses 127.0.0.1 … 127.0.0.N (more connections
    /// than one address has ports; inside a network namespace of the bench's own).
    #[arg(long, default_value_t = 1)]
    local_addresses: u8,
    /// The server's process id: the long-polls count as held once its CPU time stops
    /// growing (it has taken every check-in); without it, 5 s after the last is sent.
    #[arg(long)]
    server_pid: Option<u32>,
}

/// The CPU time (user + system, in clock ticks) of a process, from /proc.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces), from its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn facts(i: usize, item: &str) -> DeviceFacts {
    DeviceFacts {
        hostname: format!("sim-{i:05}"),
        os: "Debian GNU/Linux".into(),
        os_version: "12".into(),
        arch: "x86_64".into(),
        agent_version: "0.1.0".into(),
        device_class: None,
        newest_manifest_at: None,
        tags: vec![],
        friendly_name: None,
        utc_offset_secs: Some(0),
        installed: vec![InstalledItem {
            item: item.to_string(),
            version: Some(semver::Version::new(0, 1, 0)),
        }],
        site: None,
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx] as f64 / 1000.0
}

/// Runs `concurrency` workers posting check-ins (worker k to `urls[k % urls.len()]`) for
/// `seconds`, or with `once` until every device checked in exactly once; returns
/// (requests/s, p50 ms, p99 ms, errors).
async fn hammer(
    http: reqwest::Client,
    urls: Vec<String>,
    tokens: Arc<Vec<(String, serde_json::Value)>>,
    concurrency: usize,
    seconds: u64,
    once: bool,
) -> (f64, f64, f64, usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for k in 0..concurrency {
        let (http, url, tokens, stop, next, errors) = (
            http.clone(),
            urls[k % urls.len()].clone(),
            Arc::clone(&tokens),
            Arc::clone(&stop),
            Arc::clone(&next),
            Arc::clone(&errors),
        );
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(100_000);
            // Bounded: stops at the deadline or after 10 million requests.
            for _ in 0..10_000_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if once && i >= tokens.len() {
                    break;
                }
                let i = i % tokens.len();
                let (token, body) = &tokens[i];
                let t = Instant::now();
                match http.post(&url).bearer_auth(token).json(body).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            lat
        }));
    }
    if !once {
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        stop.store(true, Ordering::Relaxed);
    }
    let mut all = Vec::new();
    for w in workers {
        if let Ok(l) = w.await {
            all.extend(l);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    (
        all.len() as f64 / elapsed,
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        errors.load(Ordering::Relaxed),
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.serve_trivial {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("{}", listener.local_addr()?);
        serve_trivial(listener).await;
        return Ok(());
    }
    for s in &cli.server {
        if !(s.starts_with("http://127.0.0.1:") || s.starts_with("http://[::1]:")) {
            bail!("the load generator only talks to loopback");
        }
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(cli.concurrency)
        .timeout(Duration::from_secs(600))
        .build()?;
    let bases: Vec<String> = cli
        .server
        .iter()
        .map(|s| s.trim_end_matches('/').to_string())
        .collect();
    let base = bases[0].clone();
    let checkin_urls: Vec<String> = bases
        .iter()
        .map(|b| format!("{b}/api/v1/device/checkin"))
        .collect();

    // Enrol the fleet.
    let t = Instant::now();
    let mut tokens: Vec<(String, serde_json::Value)> = Vec::with_capacity(cli.devices);
    for chunk in (0..cli.devices).collect::<Vec<_>>().chunks(cli.concurrency) {
        let mut tasks = Vec::new();
        for &i in chunk {
            let (http, base, token, item) = (
                http.clone(),
                base.clone(),
                cli.enrol_token.clone().unwrap_or_default(),
                cli.item.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let f = facts(i, &item);
                let resp: serde_json::Value = http
                    .post(format!("{base}/api/v1/enrol"))
                    .json(&serde_json::json!({"enrol_token": token, "facts": f}))
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                let device = resp["device_token"]
                    .as_str()
                    .context("no device token")?
                    .to_string();
                Ok::<_, anyhow::Error>((device, serde_json::json!({ "facts": f })))
            }));
        }
        for task in tasks {
            tokens.push(task.await??);
        }
    }
    println!(
        "enrolled {} devices in {:.1} s",
        tokens.len(),
        t.elapsed().as_secs_f64()
    );
    // The fleet's agents were upgraded since they enrolled: every first check-in brings new
    // facts, so the cold pass writes every device (as after a fleet-wide agent update).
    for (_, body) in &mut tokens {
        body["facts"]["agent_version"] = serde_json::json!("0.1.1");
    }
    let tokens = Arc::new(tokens);

    if !cli.longpoll_only {
        checkin_figures(&cli, &http, &checkin_urls, &tokens, &bases).await?;
    }
    if cli.checkins_only {
        return Ok(());
    }
    longpoll::longpoll_figures(&cli, &http, &tokens, &bases).await
}

/// The cold pass, the warm run and the trivial handler's ceiling.
async fn checkin_figures(
    cli: &Cli,
    http: &reqwest::Client,
    checkin_urls: &[String],
    tokens: &Arc<Vec<(String, serde_json::Value)>>,
    bases: &[String],
) -> anyhow::Result<()> {
    // The cold pass: every device's first contact, each once (their facts are written).
    let (cold, cp50, cp99, cerrors) = hammer(
        http.clone(),
        checkin_urls.to_vec(),
        Arc::clone(tokens),
        cli.concurrency,
        cli.seconds,
        true,
    )
    .await;
    println!(
        "cold pass (each device's first check-in with new facts, written): {cold:.0}/s, p50 {cp50:.2} ms, p99 {cp99:.2} ms, errors {cerrors}"
    );
    // The loopback ceiling: a trivial axum handler under the same load, in this process
    // (its client and server tasks share one runtime) and in a process of its own (it pays
    // the switches between processes, as the server does).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let trivial = format!("http://{}/checkin", listener.local_addr()?);
    tokio::spawn(serve_trivial(listener));
    let mut own = TrivialProcess::start()?;
    let trivial_own = own.url.clone();
    // Warm (every device has checked in once), in turns with the ceiling: the machine's
    // speed drifts, so each pair is compared and the median pair reported.
    let (mut shares, mut own_shares) = (Vec::new(), Vec::new());
    for round in 1..=cli.rounds.max(1) {
        let (rate, p50, p99, errors) = hammer(
            http.clone(),
            checkin_urls.to_vec(),
            Arc::clone(tokens),
            cli.concurrency,
            cli.seconds,
            false,
        )
        .await;
        println!(
            "ferry-server check-in (warm): {rate:.0}/s, p50 {p50:.2} ms, p99 {p99:.2} ms, errors {errors} ({} devices, {} concurrent, {} instance(s))",
            tokens.len(),
            cli.concurrency,
            bases.len()
        );
        let ceilings = [
            ("same process as the load", &trivial, &mut shares),
            ("a process of its own", &trivial_own, &mut own_shares),
        ];
        for (what, url, shares) in ceilings {
            let (brate, bp50, bp99, berrors) = hammer(
                http.clone(),
                vec![url.clone()],
                Arc::clone(tokens),
                cli.concurrency,
                cli.seconds,
                false,
            )
            .await;
            let share = 100.0 * rate / brate.max(1.0);
            println!(
                "trivial axum handler ({what}): {brate:.0}/s, p50 {bp50:.2} ms, p99 {bp99:.2} ms, errors {berrors}; round {round}: ferry reaches {share:.0}% of it"
            );
            shares.push(share);
        }
    }
    own.stop();
    println!(
        "ferry-server as a share of the trivial handler: median {} (in the load's process), median {} (in a process of its own)",
        median_of(&mut shares),
        median_of(&mut own_shares)
    );
    Ok(())
}

/// "M% of N rounds (each A%, B%, …)".
fn median_of(shares: &mut [f64]) -> String {
    shares.sort_by(|a, b| a.total_cmp(b));
    format!(
        "{:.0}% of {} rounds (each {}%)",
        shares.get(shares.len() / 2).copied().unwrap_or(0.0),
        shares.len(),
        shares
            .iter()
            .map(|s| format!("{s:.0}"))
            .collect::<Vec<_>>()
            .join("%, ")
    )
}

/// The trivial handler: a fixed small JSON answer, nothing read.
async fn serve_trivial(listener: tokio::net::TcpListener) {
    let app = axum::Router::new().route(
        "/checkin",
        axum::routing::post(|| async {
            axum::Json(serde_json::json!({"host_id": "x", "available": [], "jobs": []}))
        }),
    );
    let _ = axum::serve(listener, app).await;
}

/// This program again with `--serve-trivial`, killed when dropped.
struct TrivialProcess {
    child: std::process::Child,
    url: String,
}

impl TrivialProcess {
    fn start() -> anyhow::Result<Self> {
        use std::io::BufRead as _;
        let mut child = std::process::Command::new(std::env::current_exe()?)
            .arg("--serve-trivial")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .context("starting the trivial handler's process")?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            std::io::BufReader::new(out).read_line(&mut line)?;
        }
        let addr = line.trim().to_string();
        let mut p = TrivialProcess {
            child,
            url: format!("http://{addr}/checkin"),
        };
        if !addr.starts_with("127.0.0.1:") {
            p.stop();
            bail!("the trivial handler's process did not say where it listens");
        }
        Ok(p)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TrivialProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
