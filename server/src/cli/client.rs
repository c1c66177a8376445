//! ferryctl's API client and the output of its server commands.

use std::fs::File;
use std::path::Path;

use anyhow::{bail, Context as _};
use ferry_manifests::wire::{
    ApiError, BatchView, CampaignView, HistoryView, HostView, ReleaseView, TriggerRequest,
};
use ferry_manifests::{Envelope, Manifest};
use reqwest::blocking::{RequestBuilder, Response};
use serde::de::DeserializeOwned;

use super::table;
use super::ServerArgs;

pub struct Client {
    base: reqwest::Url,
    token: String,
    http: reqwest::blocking::Client,
}

impl Client {
    pub fn new(args: &ServerArgs) -> anyhow::Result<Client> {
        let mut base = reqwest::Url::parse(&args.server)
            .with_context(|| format!("--server {:?} is not a URL", args.server))?;
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        let token = match &args.token {
            Some(t) if t.starts_with('@') => std::fs::read_to_string(&t[1..])
                .with_context(|| format!("cannot read token file {}", &t[1..]))?,
            Some(t) => t.clone(),
            None => bail!(
                "no operator token: pass --token or set FERRY_TOKEN (the server wrote one to DATA_DIR/operator.token)"
            ),
        };
        let mut builder = reqwest::blocking::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(None);
        if let Some(path) = &args.ca_cert {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read --ca-cert {}", path.display()))?;
            let ca = reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("{} is not a PEM certificate", path.display()))?;
            builder = builder.tls_certs_only([ca]);
        }
        Ok(Client {
            base,
            token: token.trim().to_string(),
            http: builder.build()?,
        })
    }

    fn url(&self, path: &str) -> anyhow::Result<reqwest::Url> {
        Ok(self.base.join(path)?)
    }

    fn send(&self, req: RequestBuilder, what: &str) -> anyhow::Result<Response> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .with_context(|| format!("cannot reach the server at {} ({what})", self.base))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        match resp.json::<ApiError>() {
            Ok(e) => bail!("{what}: {} ({status})", e.message),
            Err(_) => bail!("{what}: server answered {status}"),
        }
    }

    fn get<T: DeserializeOwned>(&self, path: &str, what: &str) -> anyhow::Result<T> {
        let resp = self.send(self.http.get(self.url(path)?), what)?;
        resp.json()
            .with_context(|| format!("{what}: unexpected answer"))
    }

    pub fn publish_dir(&self, outdir: &Path) -> anyhow::Result<()> {
        let mut manifests: Vec<_> = std::fs::read_dir(outdir)
            .with_context(|| format!("cannot read {}", outdir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with(".manifest.json"))
            .collect();
        manifests.sort();
        if manifests.is_empty() {
            bail!(
                "{} holds no *.manifest.json; run `ferryctl release build --out {}` first",
                outdir.display(),
                outdir.display()
            );
        }
        for path in manifests {
            let text =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let envelope = Envelope::parse(&text)
                .with_context(|| format!("{} is not a signed manifest", path.display()))?;
            let manifest = Manifest::parse_unverified(&envelope)
                .with_context(|| format!("{} holds an invalid manifest", path.display()))?;
            let artifact = outdir.join(&manifest.artifact.name);
            let file = File::open(&artifact)
                .with_context(|| format!("cannot open {}", artifact.display()))?;
            let url = self.url(&format!("api/v1/artifacts/{}", manifest.artifact.name))?;
            self.send(
                self.http.put(url).body(file),
                &format!("uploading {}", manifest.artifact.name),
            )?;
            self.send(
                self.http
                    .post(self.url("api/v1/releases")?)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(text),
                &format!("publishing {} {}", manifest.item, manifest.version),
            )?;
            println!("published {} {}", manifest.item, manifest.version);
        }
        Ok(())
    }

    pub fn publish_root(&self, file: &Path) -> anyhow::Result<()> {
        let text =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let resp = self.send(
            self.http
                .post(self.url("api/v1/trust-roots")?)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(text),
            "publishing the trust root",
        )?;
        let v: serde_json::Value = resp.json()?;
        println!("published trust root version {}", v["version"]);
        Ok(())
    }

    pub fn hosts(&self, json: bool) -> anyhow::Result<()> {
        let hosts: Vec<HostView> = self.get("api/v1/hosts", "listing hosts")?;
        if json {
            return print_json(&hosts);
        }
        let rows = hosts
            .iter()
            .map(|h| {
                vec![
                    h.id.clone(),
                    h.hostname.clone(),
                    h.friendly_name.clone().unwrap_or_default(),
                    h.tags.join(","),
                    if h.online { "online" } else { "offline" }.to_string(),
                    format!("{} {}", h.os, h.os_version).trim().to_string(),
                    h.arch.clone(),
                    h.agent_version.clone(),
                    h.last_seen.clone(),
                    h.installed
                        .iter()
                        .map(|i| {
                            format!(
                                "{}={}",
                                i.item,
                                i.version.as_ref().map_or("-".into(), |v| v.to_string())
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(","),
                ]
            })
            .collect::<Vec<_>>();
        print!(
            "{}",
            table::render(
                &[
                    "ID",
                    "HOSTNAME",
                    "NAME",
                    "TAGS",
                    "STATE",
                    "OS",
                    "ARCH",
                    "AGENT",
                    "LAST SEEN",
                    "INSTALLED"
                ],
                &rows
            )
        );
        Ok(())
    }

    pub fn edit_host(
        &self,
        host: &str,
        tags: Option<String>,
        friendly_name: Option<String>,
        json: bool,
    ) -> anyhow::Result<()> {
        let edit = ferry_manifests::wire::HostEdit {
            tags: tags.map(|t| {
                t.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect()
            }),
            friendly_name,
        };
        let url = self.url(&format!("api/v1/hosts/{}", path_segment(host)))?;
        let resp = self.send(self.http.patch(url).json(&edit), "editing the host")?;
        let h: HostView = resp.json()?;
        if json {
            return print_json(&h);
        }
        println!(
            "{} ({}): tags {}, friendly name {}",
            h.hostname,
            h.id,
            if h.tags.is_empty() {
                "-".to_string()
            } else {
                h.tags.join(",")
            },
            h.friendly_name.as_deref().unwrap_or("-")
        );
        Ok(())
    }

    pub fn check_now(&self, host: Option<String>, item: Option<String>) -> anyhow::Result<()> {
        let resp = self.send(
            self.http
                .post(self.url("api/v1/check")?)
                .json(&ferry_manifests::wire::CheckRequest { host, item }),
            "asking hosts to check in",
        )?;
        let answer: ferry_manifests::wire::CheckAnswer = resp.json()?;
        println!(
            "asked {} host(s) to check in; those long-polling answer at once, the others at their next poll",
            answer.hosts
        );
        Ok(())
    }

    pub fn items(&self, json: bool) -> anyhow::Result<()> {
        let list: Vec<ferry_manifests::wire::ItemView> =
            self.get("api/v1/items", "listing items")?;
        if json {
            return print_json(&list);
        }
        let rows = list
            .iter()
            .map(|i| {
                vec![
                    i.name.clone(),
                    i.releases.to_string(),
                    i.newest.as_ref().map_or("-".into(), |v| v.to_string()),
                    if i.featured { "yes" } else { "" }.to_string(),
                    if i.deactivated {
                        "deactivated"
                    } else {
                        "active"
                    }
                    .to_string(),
                    i.icon_url.clone().unwrap_or_default(),
                ]
            })
            .collect::<Vec<_>>();
        print!(
            "{}",
            table::render(
                &["ITEM", "RELEASES", "NEWEST", "FEATURED", "STATE", "ICON"],
                &rows
            )
        );
        Ok(())
    }

    pub fn item_edit(
        &self,
        name: &str,
        edit: &ferry_manifests::wire::ItemEdit,
        json: bool,
    ) -> anyhow::Result<()> {
        let url = self.url(&format!("api/v1/items/{}", path_segment(name)))?;
        let item: ferry_manifests::wire::ItemView = self
            .send(self.http.patch(url).json(edit), "editing the item")?
            .json()?;
        if json {
            return print_json(&item);
        }
        println!(
            "{}: {}{}",
            item.name,
            if item.deactivated {
                "deactivated"
            } else {
                "active"
            },
            if item.featured { ", featured" } else { "" }
        );
        Ok(())
    }

    pub fn token_create(&self, name: &str, kind: &str, json: bool) -> anyhow::Result<()> {
        let resp = self.send(
            self.http
                .post(self.url("api/v1/tokens")?)
                .json(&ferry_manifests::wire::TokenRequest {
                    name: name.to_string(),
                    kind: Some(kind.to_string()),
                }),
            "creating the token",
        )?;
        let t: ferry_manifests::wire::TokenView = resp.json()?;
        if json {
            return print_json(&t);
        }
        println!("{}", t.token.as_deref().unwrap_or_default());
        eprintln!(
            "{} token {} ({}) created; it is shown only now",
            t.kind, t.id, t.name
        );
        Ok(())
    }

    pub fn tokens(&self, json: bool) -> anyhow::Result<()> {
        let list: Vec<ferry_manifests::wire::TokenView> =
            self.get("api/v1/tokens", "listing tokens")?;
        if json {
            return print_json(&list);
        }
        let rows = list
            .iter()
            .map(|t| {
                vec![
                    t.id.clone(),
                    t.kind.clone(),
                    t.name.clone(),
                    t.created_at.clone(),
                    t.revoked_at.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect::<Vec<_>>();
        print!(
            "{}",
            table::render(&["ID", "KIND", "NAME", "CREATED", "REVOKED"], &rows)
        );
        Ok(())
    }

    pub fn token_revoke(&self, id: &str) -> anyhow::Result<()> {
        let url = self.url(&format!("api/v1/tokens/{}", path_segment(id)))?;
        self.send(self.http.delete(url), "revoking the token")?;
        println!("revoked {id}");
        Ok(())
    }

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
        follow: &super::FollowArgs,
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
        print_batch(&b);
        if follow.follow {
            return self.batch_follow(&b.id, follow.timeout_secs);
        }
        Ok(())
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
    /// install failed.
    pub fn batch_follow(&self, id: &str, timeout_secs: u64) -> anyhow::Result<()> {
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
                    println!(
                        "{} {} {}: {} {}",
                        e.hostname, e.item, e.version, e.status, e.message
                    );
                    seen.insert(key, e.status.clone());
                }
            }
            match b.status.as_str() {
                "completed" => {
                    println!("batch {} completed", b.id);
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

    pub fn remove_host(&self, host: &str) -> anyhow::Result<()> {
        let url = self.url(&format!("api/v1/hosts/{}", path_segment(host)))?;
        self.send(self.http.delete(url), "removing the host")?;
        println!("removed {host}");
        Ok(())
    }

    pub fn releases(&self, json: bool) -> anyhow::Result<()> {
        let releases: Vec<ReleaseView> = self.get("api/v1/releases", "listing releases")?;
        if json {
            return print_json(&releases);
        }
        let rows = releases
            .iter()
            .map(|r| {
                vec![
                    r.item.clone(),
                    r.version.to_string(),
                    r.category.clone(),
                    r.layout.clone(),
                    r.artifact_size.to_string(),
                    r.expires_at.clone(),
                    r.notes.lines().next().unwrap_or("").to_string(),
                ]
            })
            .collect::<Vec<_>>();
        print!(
            "{}",
            table::render(
                &["ITEM", "VERSION", "CATEGORY", "LAYOUT", "BYTES", "EXPIRES", "NOTES"],
                &rows
            )
        );
        Ok(())
    }

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
        println!("host      {} ({})", e.hostname, e.host_id);
        println!("item      {} {}", e.item, e.version);
        println!("status    {}", e.status);
        println!("actor     {}", e.actor);
        println!("created   {}", e.created_at);
        println!("finished  {}", e.finished_at.as_deref().unwrap_or("-"));
        println!("message   {}", e.message);
        if !e.output.is_empty() {
            println!("\n{}", e.output);
        }
        Ok(())
    }

    pub fn trigger(
        &self,
        host: &str,
        item: &str,
        version: Option<semver::Version>,
        json: bool,
        follow: bool,
    ) -> anyhow::Result<()> {
        let resp = self.send(
            self.http
                .post(self.url("api/v1/updates")?)
                .json(&TriggerRequest {
                    host: host.to_string(),
                    item: item.to_string(),
                    version,
                }),
            "triggering update",
        )?;
        let e: HistoryView = resp.json()?;
        if json && !follow {
            return print_json(&e);
        }
        eprintln!(
            "update {} queued: {} {} on {} (it starts at the host's next check-in)",
            e.id, e.item, e.version, e.hostname
        );
        if follow {
            return self.tail(&e.id, true, 3600);
        }
        Ok(())
    }

    /// Prints an update's output; with `follow`, from the live stream until the update ends.
    pub fn tail(&self, id: &str, follow: bool, timeout_secs: u64) -> anyhow::Result<()> {
        use std::io::{BufRead, Write};
        let path = format!("api/v1/update-history/{}", path_segment(id));
        if !follow {
            let e: HistoryView = self.get(&path, "reading the update")?;
            print!("{}", e.output);
            return Ok(());
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
                let text = data.join("\n");
                data.clear();
                match event.as_str() {
                    "end" => {
                        out.flush()?;
                        if text == "installed" {
                            eprintln!("update {id}: installed");
                            return Ok(());
                        }
                        bail!("update {id} ended: {text}");
                    }
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

/// Percent-encodes a value for use as one path segment.
fn path_segment(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
