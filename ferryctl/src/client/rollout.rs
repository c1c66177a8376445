//! Campaigns and update batches: create, list, show, follow.

use anyhow::bail;
use ferry_manifests::wire::*;

use super::{path_segment, print_json, print_json_line, Client};
use crate::table;

impl Client {
    pub fn campaign_create(
        &self,
        req: &ferry_manifests::wire::CampaignRequest,
        json: bool,
    ) -> anyhow::Result<()> {
        let resp = self.send(
            self.http.post(self.url("api/v1/campaigns")?).json(req),
            "creating the campaign",
        )?;
        let c: CampaignView = resp.json()?;
        if json {
            return print_json(&c);
        }
        print_campaign(&c);
        Ok(())
    }

    pub fn campaigns(&self, status: Option<&str>, json: bool) -> anyhow::Result<()> {
        let mut url = self.url("api/v1/campaigns")?;
        if let Some(s) = status {
            url.query_pairs_mut().append_pair("status", s);
        }
        let list: Vec<CampaignView> = self.send(self.http.get(url), "listing campaigns")?.json()?;
        if json {
            return print_json(&list);
        }
        let rows = list
            .iter()
            .map(|c| {
                vec![
                    c.id.clone(),
                    c.name.clone(),
                    format!("{} {}", c.item, c.version),
                    c.status.clone(),
                    format!("{}/{}", c.open_wave + 1, c.waves),
                    c.counts
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" "),
                ]
            })
            .collect::<Vec<_>>();
        print!(
            "{}",
            table::render(&["ID", "NAME", "RELEASE", "STATUS", "WAVE", "HOSTS"], &rows)
        );
        Ok(())
    }

    /// Shows a campaign, after pausing, resuming or cancelling it when `action` says so.
    pub fn campaign_edit(
        &self,
        id: &str,
        edit: &ferry_manifests::wire::CampaignEdit,
        json: bool,
    ) -> anyhow::Result<()> {
        let path = format!("api/v1/campaigns/{}", path_segment(id));
        let c: CampaignView = self
            .send(
                self.http.patch(self.url(&path)?).json(edit),
                "editing the campaign",
            )?
            .json()?;
        if json {
            return print_json(&c);
        }
        print_campaign(&c);
        Ok(())
    }

    pub fn campaign_action(
        &self,
        id: &str,
        action: Option<&str>,
        json: bool,
    ) -> anyhow::Result<()> {
        let path = format!("api/v1/campaigns/{}", path_segment(id));
        let c: CampaignView = match action {
            Some(a) => self
                .send(
                    self.http.post(self.url(&format!("{path}/{a}"))?),
                    &format!("{a} campaign"),
                )?
                .json()?,
            None => self.get(&path, "showing the campaign")?,
        };
        if json {
            return print_json(&c);
        }
        print_campaign(&c);
        Ok(())
    }

    pub fn batch_create(
        &self,
        req: &ferry_manifests::wire::BatchRequest,
        follow: &crate::args::FollowArgs,
        json: bool,
    ) -> anyhow::Result<()> {
        let resp = self.send(
            self.http.post(self.url("api/v1/update-batches")?).json(req),
            "creating the batch",
        )?;
        let b: BatchView = resp.json()?;
        if json && !follow.follow {
            return print_json(&b);
        }
        if json {
            print_json_line(&serde_json::json!({"event": "created", "batch": b}))?;
        } else {
            print_batch(&b);
        }
        if matches!(
            req,
            ferry_manifests::wire::BatchRequest::Host {
                interactive: true,
                ..
            }
        ) {
            return self.batch_attach(&b.id, follow.timeout_secs);
        }
        if follow.follow {
            return self.batch_follow(&b.id, follow.timeout_secs, json);
        }
        Ok(())
    }

    /// An interactive batch: attaches this terminal to each install as the host starts it,
    /// one at a time, until the batch ends (or `timeout_secs`); exits with the batch's status.
    fn batch_attach(&self, id: &str, timeout_secs: u64) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(timeout_secs);
        let mut attached = std::collections::BTreeSet::new();
        loop {
            let b: BatchView =
                self.get(&format!("api/v1/update-batches/{id}"), "reading the batch")?;
            let next = b.entries.iter().find_map(|e| {
                e.update_id
                    .as_ref()
                    .filter(|u| e.status == "dispatched" && !attached.contains(*u))
            });
            if let Some(update) = next {
                attached.insert(update.clone());
                let entry = b
                    .entries
                    .iter()
                    .find(|e| e.update_id.as_ref() == Some(update));
                if let Some(e) = entry {
                    eprintln!("== {} {} on {}", e.item, e.version, e.hostname);
                }
                // One install's failure is the batch's to report; go on to the next.
                if let Err(e) = self.attach(update) {
                    eprintln!("ferryctl: {e:#}");
                }
                continue;
            }
            if b.status != "running" {
                print_batch(&b);
                if b.status == "completed" {
                    return Ok(());
                }
                anyhow::bail!("batch {id} ended: {}", b.status);
            }
            if std::time::Instant::now() >= deadline {
                anyhow::bail!("batch {id} is still running after {timeout_secs} s");
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    }

    pub fn batches(&self, status: Option<&str>, json: bool) -> anyhow::Result<()> {
        let mut url = self.url("api/v1/update-batches")?;
        if let Some(s) = status {
            url.query_pairs_mut().append_pair("status", s);
        }
        let list: Vec<BatchView> = self.send(self.http.get(url), "listing batches")?.json()?;
        if json {
            return print_json(&list);
        }
        let rows = list
            .iter()
            .map(|b| {
                vec![
                    b.id.clone(),
                    b.status.clone(),
                    b.created_at.clone(),
                    b.counts
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" "),
                    b.description.clone(),
                ]
            })
            .collect::<Vec<_>>();
        print!(
            "{}",
            table::render(
                &["ID", "STATUS", "CREATED", "ENTRIES", "DESCRIPTION"],
                &rows
            )
        );
        Ok(())
    }

    pub fn batch_show(&self, id: &str, json: bool) -> anyhow::Result<()> {
        let b: BatchView = self.get(
            &format!("api/v1/update-batches/{}", path_segment(id)),
            "showing the batch",
        )?;
        if json {
            return print_json(&b);
        }
        print_batch(&b);
        Ok(())
    }

    /// Prints each entry's changes until the batch is no longer running; fails if any
    /// install failed. With `json`, JSON lines: `{"event": "entry", …}` per change, then
    /// `{"event": "end", "status": …}`.
    pub fn batch_follow(&self, id: &str, timeout_secs: u64, json: bool) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(timeout_secs);
        let mut seen: std::collections::HashMap<(String, String), String> = Default::default();
        loop {
            let b: BatchView = self.get(
                &format!("api/v1/update-batches/{}", path_segment(id)),
                "following the batch",
            )?;
            for e in &b.entries {
                let key = (e.host_id.clone(), e.item.clone());
                if seen.get(&key) != Some(&e.status) {
                    if json {
                        print_json_line(&serde_json::json!({"event": "entry", "entry": e}))?;
                    } else {
                        println!(
                            "{} {} {}: {} {}",
                            e.hostname, e.item, e.version, e.status, e.message
                        );
                    }
                    seen.insert(key, e.status.clone());
                }
            }
            if json && b.status != "running" {
                print_json_line(&serde_json::json!({"event": "end", "status": b.status}))?;
            }
            match b.status.as_str() {
                "completed" => {
                    if !json {
                        println!("batch {} completed", b.id);
                    }
                    return Ok(());
                }
                "failed" => bail!("batch {} finished with failures", b.id),
                _ => {}
            }
            if std::time::Instant::now() > deadline {
                bail!("batch {} still running after {timeout_secs} s", b.id);
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }
}

fn print_campaign(c: &CampaignView) {
    println!(
        "campaign {} \"{}\": {} {}, {}{}",
        c.id,
        c.name,
        c.item,
        c.version,
        c.status,
        if c.status_reason.is_empty() {
            String::new()
        } else {
            format!(" ({})", c.status_reason)
        }
    );
    println!(
        "wave {} of {} open; failures {:.0}% (pause above {:.0}%); window {}; acceptance {}",
        c.open_wave + 1,
        c.waves,
        c.failure_share * 100.0,
        c.max_failure_rate * 100.0,
        c.window.as_deref().unwrap_or("any time"),
        if c.require_acceptance {
            "required"
        } else {
            "not required"
        }
    );
    if let Some(o) = &c.observation {
        println!(
            "observation of wave {}: {}{}; {} updated host(s) failing {:.0}%, {} in the control group failing {:.0}%{}",
            o.wave + 1,
            o.verdict,
            if o.left_secs > 0 {
                format!(", {} s left", o.left_secs)
            } else {
                String::new()
            },
            o.wave_hosts,
            o.wave_share * 100.0,
            o.control_hosts,
            o.control_share * 100.0,
            if o.probes.is_empty() {
                String::new()
            } else {
                format!("; failed: {}", o.probes)
            }
        );
        for f in &o.failing {
            println!(
                "  {}: {}",
                table::printable(&f.hostname),
                f.probes.join(", ")
            );
        }
    } else if c.observe_secs > 0 {
        println!(
            "each wave is watched for {} s after its installs{}",
            c.observe_secs,
            if c.rollback_on_regression {
                "; a wave that regresses is rolled back"
            } else {
                ""
            }
        );
    }
    let rows = c
        .members
        .iter()
        .map(|m| {
            vec![
                m.hostname.clone(),
                (m.wave + 1).to_string(),
                m.status.clone(),
                m.update_id.clone().unwrap_or_default(),
            ]
        })
        .collect::<Vec<_>>();
    print!(
        "{}",
        table::render(&["HOST", "WAVE", "STATUS", "UPDATE"], &rows)
    );
}

fn print_batch(b: &BatchView) {
    println!("batch {} ({}): {}", b.id, b.status, b.description);
    let rows = b
        .entries
        .iter()
        .map(|e| {
            vec![
                e.hostname.clone(),
                e.item.clone(),
                e.version.clone(),
                e.status.clone(),
                e.message.clone(),
            ]
        })
        .collect::<Vec<_>>();
    print!(
        "{}",
        table::render(&["HOST", "ITEM", "VERSION", "STATUS", "MESSAGE"], &rows)
    );
}
