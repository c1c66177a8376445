//! The long-poll figures: every simulated device holds a check-in open, then triggers are
//! timed to a waiting device.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{cpu_ticks, Cli};

/// Every device holds a long-poll open (the server's memory is read before and while they
/// are held); then how long a trigger takes to reach a waiting device.
pub async fn longpoll_figures(
    cli: &Cli,
    http: &reqwest::Client,
    tokens: &Arc<Vec<(String, serde_json::Value)>>,
    bases: &[String],
) -> anyhow::Result<()> {
    println!("READY-FOR-RSS-BEFORE");
    tokio::time::sleep(Duration::from_secs(2)).await;
    // One client per local address: each has its own ports.
    let clients: Vec<reqwest::Client> = (1..=cli.local_addresses.max(1))
        .map(|n| {
            reqwest::Client::builder()
                .local_address(std::net::IpAddr::from([127, 0, 0, n]))
                .timeout(Duration::from_secs(600))
                .build()
        })
        .collect::<Result<_, _>>()?;
    let held = Arc::new(AtomicUsize::new(0));
    let answered_early = Arc::new(AtomicUsize::new(0));
    let mut polls = Vec::new();
    let opened = Instant::now();
    for (k, (token, body)) in tokens.iter().cloned().enumerate() {
        // Opened in steps, as a fleet's timers spread them, not all in one instant.
        if k % 2000 == 1999 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (http, base, held, early) = (
            clients[k % clients.len()].clone(),
            bases[k % bases.len()].clone(),
            Arc::clone(&held),
            Arc::clone(&answered_early),
        );
        let wait = cli.wait_secs;
        polls.push(tokio::spawn(async move {
            let mut body = body;
            body["wait_secs"] = serde_json::json!(wait);
            held.fetch_add(1, Ordering::Relaxed);
            let r = http
                .post(format!("{base}/api/v1/device/checkin"))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await;
            held.fetch_sub(1, Ordering::Relaxed);
            early.fetch_add(1, Ordering::Relaxed);
            r.map(|r| r.status().is_success()).unwrap_or(false)
        }));
    }
    wait_until_idle(cli.server_pid).await;
    println!(
        "long-poll: {} check-ins held open ({} answered or failed early), opened in {:.1} s; server RSS now: see below",
        held.load(Ordering::Relaxed),
        answered_early.load(Ordering::Relaxed),
        opened.elapsed().as_secs_f64()
    );
    println!("READY-FOR-RSS");
    tokio::time::sleep(Duration::from_secs(3)).await;
    trigger_latency(cli, http, tokens, bases).await?;
    for p in polls {
        p.abort();
    }
    Ok(())
}

/// Bounded: until the server is idle (it has taken every check-in), at most 10 minutes.
async fn wait_until_idle(server_pid: Option<u32>) {
    match server_pid {
        Some(pid) => {
            let mut last = cpu_ticks(pid);
            for _ in 0..300 {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let now = cpu_ticks(pid);
                // Idle: under 2% of one core over the last 2 s.
                if let (Some(a), Some(b)) = (last, now) {
                    if b.saturating_sub(a) <= 4 {
                        break;
                    }
                }
                last = now;
            }
        }
        None => tokio::time::sleep(Duration::from_secs(5)).await,
    }
}

/// How long a trigger takes to reach a device waiting in a long-poll, five times.
async fn trigger_latency(
    cli: &Cli,
    http: &reqwest::Client,
    tokens: &Arc<Vec<(String, serde_json::Value)>>,
    bases: &[String],
) -> anyhow::Result<()> {
    let base = bases[0].clone();
    let mut latencies = Vec::new();
    for i in 0..5usize {
        let (token, body) = tokens[i].clone();
        let mut body = body;
        body["wait_secs"] = serde_json::json!(50);
        let poll = {
            let (http, base) = (http.clone(), bases[bases.len() - 1].clone());
            tokio::spawn(async move {
                let r: serde_json::Value = http
                    .post(format!("{base}/api/v1/device/checkin"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await?
                    .json()
                    .await?;
                Ok::<_, anyhow::Error>((Instant::now(), r))
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t0 = Instant::now();
        http.post(format!("{base}/api/v1/updates"))
            .bearer_auth(cli.operator_token.as_deref().unwrap_or_default())
            .json(&serde_json::json!({"host": format!("sim-{i:05}"), "item": cli.item}))
            .send()
            .await?
            .error_for_status()?;
        let (at, r) = poll.await??;
        if r["jobs"].as_array().is_some_and(|j| !j.is_empty()) {
            latencies.push(at.duration_since(t0).as_secs_f64() * 1000.0);
        }
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    println!(
        "trigger to a long-polling device receiving the job{}: {} of 5 measured, median {:.1} ms, max {:.1} ms",
        if bases.len() > 1 {
            " (trigger on the first instance, the device on the last)"
        } else {
            ""
        },
        latencies.len(),
        latencies.get(latencies.len() / 2).copied().unwrap_or(f64::NAN),
        latencies.last().copied().unwrap_or(f64::NAN)
    );
    Ok(())
}
