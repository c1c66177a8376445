//! MQTT broker connections: list, add, edit, remove, test.

use std::path::Path;

use anyhow::Context as _;
use ferry_manifests::wire::{MqttConnectionRequest, MqttConnectionView};

use super::{path_segment, print_json, Client};
use crate::args::MqttSettings;
use crate::table;

/// A secret read from a file, with one trailing newline dropped (as `echo` writes it).
pub fn read_secret(path: &Path, what: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the {what} file {}", path.display()))?;
    let text = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    Ok(text.to_string())
}

/// The request for `settings`; `name`/`url` are set by the caller.
pub fn request(settings: &MqttSettings) -> anyhow::Result<MqttConnectionRequest> {
    Ok(MqttConnectionRequest {
        username: settings.username.clone(),
        password: settings
            .password_file
            .as_deref()
            .map(|p| read_secret(p, "password"))
            .transpose()?,
        ca_pem: settings
            .ca_file
            .as_deref()
            .map(|p| read_secret(p, "CA"))
            .transpose()?,
        client_id: settings.client_id.clone(),
        topic_prefix: settings.topic_prefix.clone(),
        discovery: settings.discovery,
        discovery_prefix: settings.discovery_prefix.clone(),
        ..Default::default()
    })
}

fn state_word(c: &MqttConnectionView) -> &'static str {
    if c.connected {
        "connected"
    } else {
        "not connected"
    }
}

fn print_one(c: &MqttConnectionView, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(c);
    }
    println!("{} {} {}", c.name, c.url, state_word(c));
    if let Some(e) = &c.last_error {
        println!("last error: {e}");
    }
    Ok(())
}

impl Client {
    pub fn mqtt(&self, json: bool) -> anyhow::Result<()> {
        let list: Vec<MqttConnectionView> = self.get("api/v1/mqtt", "listing MQTT connections")?;
        if json {
            return print_json(&list);
        }
        let rows = list
            .iter()
            .map(|c| {
                vec![
                    c.name.clone(),
                    c.url.clone(),
                    state_word(c).to_string(),
                    c.published.to_string(),
                    c.source.clone(),
                    c.last_error.clone().unwrap_or_default(),
                ]
            })
            .collect::<Vec<_>>();
        print!(
            "{}",
            table::render(
                &["NAME", "URL", "STATE", "PUBLISHED", "FROM", "LAST ERROR"],
                &rows
            )
        );
        Ok(())
    }

    pub fn mqtt_add(&self, req: &MqttConnectionRequest, json: bool) -> anyhow::Result<()> {
        let resp = self.send(
            self.http.post(self.url("api/v1/mqtt")?).json(req),
            "adding the MQTT connection",
        )?;
        let view: MqttConnectionView = resp.json().context("adding the MQTT connection")?;
        print_one(&view, json)
    }

    pub fn mqtt_edit(
        &self,
        name: &str,
        req: &MqttConnectionRequest,
        json: bool,
    ) -> anyhow::Result<()> {
        let url = self.url(&format!("api/v1/mqtt/{}", path_segment(name)))?;
        let resp = self.send(
            self.http.patch(url).json(req),
            "changing the MQTT connection",
        )?;
        let view: MqttConnectionView = resp.json().context("changing the MQTT connection")?;
        print_one(&view, json)
    }

    pub fn mqtt_remove(&self, name: &str, json: bool) -> anyhow::Result<()> {
        let url = self.url(&format!("api/v1/mqtt/{}", path_segment(name)))?;
        self.send(self.http.delete(url), "removing the MQTT connection")?;
        if json {
            return print_json(&serde_json::json!({ "removed": name }));
        }
        println!("removed {name}");
        Ok(())
    }

    /// Exit status 1 (an error) when the connection is not up after the server's wait.
    pub fn mqtt_test(&self, name: &str, json: bool) -> anyhow::Result<()> {
        let url = self.url(&format!("api/v1/mqtt/{}/test", path_segment(name)))?;
        let resp = self.send(self.http.post(url), "testing the MQTT connection")?;
        let view: MqttConnectionView = resp.json().context("testing the MQTT connection")?;
        print_one(&view, json)?;
        if !view.connected {
            anyhow::bail!(
                "{name} is not connected to {}: {}",
                view.url,
                view.last_error
                    .as_deref()
                    .unwrap_or("no answer from the broker yet")
            );
        }
        Ok(())
    }
}
