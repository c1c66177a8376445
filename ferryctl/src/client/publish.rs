//! Publishing releases and trust roots; releases and items as the server lists them.

use std::fs::File;
use std::path::Path;

use anyhow::{bail, Context as _};
use ferry_manifests::wire::*;
use ferry_manifests::{Envelope, Manifest};

use super::{path_segment, print_json, Client};
use crate::table;

impl Client {
    pub fn publish_dir(
        &self,
        outdir: &Path,
        mirrors: &[String],
        metered_allowed: bool,
        json: bool,
    ) -> anyhow::Result<()> {
        // Checked before anything is uploaded: a refused mirror must not leave a release
        // published without it.
        for m in mirrors {
            if !(m.starts_with("http://") || m.starts_with("https://")) {
                bail!("mirror {m:?} must be an http:// or https:// base URL, such as https://cdn.example.com/ferry");
            }
        }
        let mut published = Vec::new();
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
            let answer: ferry_manifests::wire::PublishResponse = self
                .send(
                    self.http
                        .post(self.url("api/v1/releases")?)
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(text),
                    &format!("publishing {} {}", manifest.item, manifest.version),
                )?
                .json()?;
            if !json {
                println!("published {} {}", answer.item, answer.version);
            }
            if !mirrors.is_empty() {
                self.record_mirrors(&manifest.item, &manifest.version.to_string(), mirrors, json)?;
            }
            if metered_allowed {
                let version = manifest.version.to_string();
                self.metered_allowed(&manifest.item, &version, true, json)?;
            }
            published.push(answer);
        }
        if json {
            return print_json(&published);
        }
        Ok(())
    }

    /// Records the release's mirrors on the server, and warns of a mirror that does not serve
    /// the artifact (yet): devices would fall back to the server's copy.
    pub fn record_mirrors(
        &self,
        item: &str,
        version: &str,
        mirrors: &[String],
        json: bool,
    ) -> anyhow::Result<()> {
        let path = format!("api/v1/releases/{item}/{version}/mirrors");
        let view: ferry_manifests::wire::ReleaseView = self
            .send(
                self.http
                    .put(self.url(&path)?)
                    .json(&ferry_manifests::wire::MirrorsRequest {
                        mirrors: mirrors.to_vec(),
                    }),
                &format!("recording the mirrors of {item} {version}"),
            )?
            .json()?;
        if json {
            print_json(&view)?;
        } else if view.mirrors.is_empty() {
            println!("{item} {version}: no mirrors; devices use the server's copy");
        }
        for base in &view.mirrors {
            let url = format!("{base}/{}", view.artifact_name);
            let served = self
                .http
                .head(&url)
                .timeout(std::time::Duration::from_secs(10))
                .send()
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if !served {
                eprintln!("warning: {url} does not answer yet; upload the artifact there (devices use the server's copy until then)");
            } else if !json {
                println!("  mirror {url}");
            }
        }
        Ok(())
    }

    /// Lets installs of a published release download over a metered link, or not.
    pub fn metered_allowed(
        &self,
        item: &str,
        version: &str,
        allowed: bool,
        json: bool,
    ) -> anyhow::Result<()> {
        let path = format!("api/v1/releases/{item}/{version}/metered-allowed");
        let view: ReleaseView = self
            .send(
                self.http
                    .put(self.url(&path)?)
                    .json(&MeteredAllowedRequest {
                        metered_allowed: allowed,
                    }),
                &format!("setting whether {item} {version} may download on metered links"),
            )?
            .json()?;
        if json {
            return print_json(&view);
        }
        if view.metered_allowed {
            println!("{item} {version}: its installs download on metered links too");
        } else {
            println!("{item} {version}: its installs wait for an unmetered link (unless triggered with --metered-allowed)");
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
                    match &r.withdrawn_at {
                        Some(at) => format!(
                            "WITHDRAWN {at}: {}",
                            r.withdrawn_reason.as_deref().unwrap_or_default()
                        ),
                        None => r.notes.lines().next().unwrap_or("").to_string(),
                    },
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

    pub fn withdraw(
        &self,
        item: &str,
        version: &semver::Version,
        reason: Option<String>,
        json: bool,
    ) -> anyhow::Result<()> {
        let url = self.url(&format!(
            "api/v1/releases/{}/{}/withdraw",
            path_segment(item),
            path_segment(&version.to_string())
        ))?;
        let resp = self.send(
            self.http
                .post(url)
                .json(&ferry_manifests::wire::WithdrawRequest { reason }),
            "withdrawing the release",
        )?;
        let r: ReleaseView = resp.json()?;
        if json {
            return print_json(&r);
        }
        println!(
            "withdrew {} {}: no longer offered; installs of it not yet started and its campaigns are cancelled",
            r.item, r.version
        );
        Ok(())
    }

    /// `packages search [NAME] [--older-than V] [--pending] [--category C]`: the hosts that
    /// have it, or every upgrade pending.
    pub fn packages_search(&self, q: &super::PackageSearch<'_>, json: bool) -> anyhow::Result<()> {
        let mut url = self.url("api/v1/packages")?;
        {
            let mut pairs = url.query_pairs_mut();
            if let Some(n) = q.name {
                pairs.append_pair("name", n);
            }
            if let Some(v) = q.older_than {
                pairs.append_pair("older_than", v);
            }
            if q.pending {
                pairs.append_pair("pending", "true");
            }
            if let Some(c) = q.category {
                pairs.append_pair("category", c);
            }
        }
        let hits: Vec<ferry_manifests::wire::PackageHit> = self
            .send(self.http.get(url), "searching packages")?
            .json()?;
        if json {
            return print_json(&hits);
        }
        if hits.is_empty() {
            println!(
                "no host has {}{}{}",
                q.name.unwrap_or("any package"),
                q.older_than
                    .map(|v| format!(" older than {v}"))
                    .unwrap_or_default(),
                match (q.category, q.pending) {
                    (Some(c), _) => format!(" with a {c} upgrade pending"),
                    (None, true) => " with an upgrade pending".to_string(),
                    (None, false) => String::new(),
                }
            );
            return Ok(());
        }
        let rows = hits
            .iter()
            .map(|h| {
                vec![
                    h.hostname.clone(),
                    h.host_id.clone(),
                    h.source.clone(),
                    h.name.clone(),
                    h.version.clone(),
                    h.latest.clone().unwrap_or_default(),
                    h.category.map(|c| c.to_string()).unwrap_or_default(),
                ]
            })
            .collect::<Vec<_>>();
        print!(
            "{}",
            table::render(
                &["HOST", "ID", "SOURCE", "NAME", "VERSION", "UPGRADE", "CATEGORY"],
                &rows
            )
        );
        Ok(())
    }

    /// `packages hosts [--category C]`: the hosts with upgrades pending, in numbers.
    pub fn packages_hosts(&self, category: Option<&str>, json: bool) -> anyhow::Result<()> {
        let mut url = self.url("api/v1/packages/hosts")?;
        if let Some(c) = category {
            url.query_pairs_mut().append_pair("category", c);
        }
        let hosts: Vec<ferry_manifests::wire::HostPending> = self
            .send(self.http.get(url), "listing hosts with upgrades pending")?
            .json()?;
        if json {
            return print_json(&hosts);
        }
        if hosts.is_empty() {
            println!("no host has {} upgrades pending", category.unwrap_or("any"));
            return Ok(());
        }
        let rows = hosts
            .iter()
            .map(|h| {
                vec![
                    h.hostname.clone(),
                    h.host_id.clone(),
                    h.pending.to_string(),
                    h.security.to_string(),
                    h.bugfix.to_string(),
                    h.feature.to_string(),
                    h.total.to_string(),
                ]
            })
            .collect::<Vec<_>>();
        print!(
            "{}",
            table::render(
                &["HOST", "ID", "PENDING", "SECURITY", "BUGFIX", "FEATURE", "PACKAGES"],
                &rows
            )
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
}
