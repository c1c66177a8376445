//! Update triggers and history, with live output.

use anyhow::{bail, Context as _};
use ferry_manifests::wire::*;

use super::{path_segment, print_json, print_json_line, Client};
use crate::table;

impl Client {
    pub fn history(
        &self,
        host: Option<&str>,
        item: Option<&str>,
        json: bool,
    ) -> anyhow::Result<()> {
        let mut url = self.url("api/v1/update-history")?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(h) = host {
                q.append_pair("host", h);
            }
            if let Some(i) = item {
                q.append_pair("item", i);
            }
        }
        let resp = self.send(self.http.get(url), "listing history")?;
        let entries: Vec<HistoryView> = resp.json()?;
        if json {
            return print_json(&entries);
        }
        let rows = entries
            .iter()
            .map(|e| {
                vec![
                    e.id.clone(),
                    e.hostname.clone(),
                    e.item.clone(),
                    format!(
                        "{} -> {}",
                        e.from_version
                            .as_ref()
                            .map_or("-".into(), |v| v.to_string()),
                        e.version
                    ),
                    e.status.clone(),
                    e.actor.clone(),
                    e.created_at.clone(),
                    e.message.clone(),
                ]
            })
            .collect::<Vec<_>>();
        print!(
            "{}",
            table::render(
                &["ID", "HOST", "ITEM", "VERSION", "STATUS", "ACTOR", "CREATED", "MESSAGE"],
                &rows
            )
        );
        Ok(())
    }

    pub fn history_show(&self, id: &str, json: bool) -> anyhow::Result<()> {
        let e: HistoryView = self.get(&format!("api/v1/update-history/{id}"), "showing update")?;
        if json {
            return print_json(&e);
        }
        println!("update    {}", e.id);
        println!(
            "host      {} ({})",
            table::printable(&e.hostname),
            e.host_id
        );
        println!("item      {} {}", e.item, e.version);
        println!("status    {}", e.status);
        println!("actor     {}", e.actor);
        if let Some(c) = &e.campaign {
            println!("campaign  {c}");
        }
        println!("created   {}", e.created_at);
        println!("finished  {}", e.finished_at.as_deref().unwrap_or("-"));
        if let Some(d) = &e.device_finished_at {
            println!("          (the device's clock read {d}: it is off)");
        }
        if let Some(f) = &e.fetched {
            println!("fetched   {f}");
        }
        println!("message   {}", table::printable(&e.message));
        if !e.packages.is_empty() {
            let rows: Vec<Vec<String>> = e
                .packages
                .iter()
                .map(|p| {
                    vec![
                        table::printable(&p.name),
                        table::printable(p.from.as_deref().unwrap_or("-")),
                        table::printable(p.to.as_deref().unwrap_or("-")),
                    ]
                })
                .collect();
            print!(
                "\n{}",
                table::render(&["PACKAGE", "BEFORE", "AFTER"], &rows)
            );
        }
        if !e.output.is_empty() {
            println!("\n{}", e.output);
        }
        if !e.typed.is_empty() {
            println!("\ntyped by the operator:\n{}", e.typed);
        }
        Ok(())
    }

    pub fn trigger(&self, req: &TriggerRequest, json: bool, follow: bool) -> anyhow::Result<()> {
        let resp = self.send(
            self.http.post(self.url("api/v1/updates")?).json(req),
            "triggering update",
        )?;
        let e: HistoryView = resp.json()?;
        if json && !follow {
            return print_json(&e);
        }
        if json {
            // JSON lines: the queued update, then the output events.
            print_json_line(&serde_json::json!({"event": "queued", "update": e}))?;
        } else {
            eprintln!(
                "update {} queued: {} {} on {} (it starts at the host's next check-in)",
                e.id, e.item, e.version, e.hostname
            );
        }
        if req.interactive {
            return self.attach(&e.id);
        }
        if follow {
            return self.tail(&e.id, true, 3600, json);
        }
        Ok(())
    }

    /// Attaches this terminal to an interactive install: raw mode (restored on exit), what is
    /// typed goes to the hooks, the window size follows this terminal's, the output comes
    /// back from the live stream; exits with the update's outcome.
    pub fn cancel_update(&self, id: &str, json: bool) -> anyhow::Result<()> {
        let url = self.url(&format!(
            "api/v1/update-history/{}/cancel",
            path_segment(id)
        ))?;
        let resp = self.send(self.http.post(url), "cancelling the update")?;
        let e: ferry_manifests::wire::HistoryView = resp.json()?;
        if json {
            return print_json(&e);
        }
        println!(
            "cancelled {} ({} {} on {}); the device drops it at its next check-in",
            e.id,
            e.item,
            e.version,
            table::printable(&e.hostname)
        );
        Ok(())
    }

    pub fn attach(&self, id: &str) -> anyhow::Result<()> {
        let path = format!("api/v1/update-history/{}/terminal", path_segment(id));
        let lease: ferry_manifests::wire::TerminalLease = self
            .send(
                self.http
                    .post(self.url(&path)?)
                    .json(&serde_json::json!({})),
                "attaching to the install's terminal",
            )?
            .json()?;
        if !lease.holder {
            eprintln!("another operator holds this terminal's input: watching only");
            return self.tail(id, true, 24 * 3600, false);
        }
        eprintln!("attached to update {id}'s terminal (Ctrl-C interrupts the hook)");
        let _raw = super::terminal::RawMode::enter();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sender = {
            let (client, url, done) = (self.clone(), self.url(&path)?, done.clone());
            let lease = lease.lease.clone();
            std::thread::spawn(move || super::terminal::forward_input(&client, &url, &lease, &done))
        };
        let result = self.tail(id, true, 24 * 3600, false);
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = sender.join();
        result
    }

    /// Prints an update's output; with `follow`, from the live stream until the update ends.
    /// With `json`: the update as JSON, or with `follow` JSON lines (`{"event": "output",
    /// "text": …}` as the output comes, then `{"event": "end", "status": …}`).
    pub fn tail(
        &self,
        id: &str,
        follow: bool,
        timeout_secs: u64,
        json: bool,
    ) -> anyhow::Result<()> {
        use std::io::{BufRead, Write};
        let path = format!("api/v1/update-history/{}", path_segment(id));
        if !follow {
            let e: HistoryView = self.get(&path, "reading the update")?;
            if json {
                print_json(&e)?;
            } else {
                print!("{}", e.output);
            }
            // As with --follow: success only for an installed update.
            return match e.status.as_str() {
                "installed" => Ok(()),
                "pending" | "in_progress" => {
                    bail!(
                        "update {id} has not finished ({}); add --follow to wait for it",
                        e.status
                    )
                }
                other => bail!("update {id} ended: {other}"),
            };
        }
        let url = self.url(&format!("{path}/output/stream"))?;
        let resp = self.send(
            self.http
                .get(url)
                .timeout(std::time::Duration::from_secs(timeout_secs)),
            "following the update",
        )?;
        let mut event = String::new();
        let mut data: Vec<String> = Vec::new();
        let mut out = std::io::stdout();
        for line in std::io::BufReader::new(resp).lines() {
            let line = line.context("the stream broke off")?;
            if let Some(v) = line.strip_prefix("event:") {
                event = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push(v.strip_prefix(' ').unwrap_or(v).to_string());
            } else if line.is_empty() && !data.is_empty() {
                let joined = data.join("\n");
                data.clear();
                // An output event's data is its text as a JSON string (it may hold carriage
                // returns, which an event's data cannot); the end event's is the status.
                let text = if event == "end" {
                    joined
                } else {
                    serde_json::from_str::<String>(&joined).with_context(|| {
                        format!("the server sent output that is not a JSON string: {joined}")
                    })?
                };
                if json {
                    let kind = if event == "end" { "end" } else { "output" };
                    let field = if event == "end" { "status" } else { "text" };
                    print_json_line(&serde_json::json!({"event": kind, field: text}))?;
                }
                match event.as_str() {
                    "end" => {
                        out.flush()?;
                        if text == "installed" {
                            eprintln!("update {id}: installed");
                            return Ok(());
                        }
                        bail!("update {id} ended: {text}");
                    }
                    _ if json => {}
                    _ => {
                        write!(out, "{text}")?;
                        out.flush()?;
                    }
                }
            }
        }
        bail!("the stream of update {id} ended before the update did")
    }
}
