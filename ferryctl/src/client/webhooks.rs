//! Webhooks: list, add, remove, and their deliveries.

use anyhow::Context as _;
use ferry_manifests::wire::{
    DdiGatewayRequest, DdiTokenView, WebhookDeliveryView, WebhookRequest, WebhookView,
};

use super::{path_segment, print_json, Client};
use crate::table;

impl Client {
    pub fn webhooks(&self, json: bool) -> anyhow::Result<()> {
        let list: Vec<WebhookView> = self.get("api/v1/webhooks", "listing webhooks")?;
        if json {
            return print_json(&list);
        }
        let rows = list
            .iter()
            .map(|w| {
                vec![
                    w.id.clone(),
                    w.url.clone(),
                    w.events.join(","),
                    w.created_by.clone(),
                    w.description.clone(),
                ]
            })
            .collect::<Vec<_>>();
        print!(
            "{}",
            table::render(&["ID", "URL", "EVENTS", "ADDED BY", "DESCRIPTION"], &rows)
        );
        Ok(())
    }

    pub fn webhook_add(&self, req: &WebhookRequest, json: bool) -> anyhow::Result<()> {
        let resp = self.send(
            self.http.post(self.url("api/v1/webhooks")?).json(req),
            "adding the webhook",
        )?;
        let view: WebhookView = resp.json().context("adding the webhook")?;
        if json {
            return print_json(&view);
        }
        println!(
            "added webhook {}: {} gets {}",
            view.id,
            view.url,
            view.events.join(", ")
        );
        Ok(())
    }

    pub fn webhook_remove(&self, id: &str, json: bool) -> anyhow::Result<()> {
        let url = self.url(&format!("api/v1/webhooks/{}", path_segment(id)))?;
        self.send(self.http.delete(url), "removing the webhook")?;
        if json {
            return print_json(&serde_json::json!({ "removed": id }));
        }
        println!("removed webhook {id}");
        Ok(())
    }

    pub fn webhook_deliveries(&self, failing: bool, json: bool) -> anyhow::Result<()> {
        let path = if failing {
            "api/v1/webhooks/deliveries?failing=true"
        } else {
            "api/v1/webhooks/deliveries"
        };
        let list: Vec<WebhookDeliveryView> = self.get(path, "listing webhook deliveries")?;
        if json {
            return print_json(&list);
        }
        let rows = list
            .iter()
            .map(|d| {
                let last = match (&d.last_status, &d.last_error) {
                    (_, Some(e)) => e.clone(),
                    (Some(s), None) => s.to_string(),
                    (None, None) => String::new(),
                };
                vec![
                    d.event_id.clone(),
                    d.event.clone(),
                    d.webhook_id.clone(),
                    d.state.clone(),
                    d.attempts.to_string(),
                    d.created_at.clone(),
                    d.next_attempt_at.clone().unwrap_or_default(),
                    last,
                ]
            })
            .collect::<Vec<_>>();
        print!(
            "{}",
            table::render(
                &["EVENT", "TYPE", "WEBHOOK", "STATE", "ATTEMPTS", "AT", "NEXT", "LAST"],
                &rows
            )
        );
        Ok(())
    }

    /// `ddi token HOST`: the token alone on stdout (for scripts), what was made on stderr.
    pub fn ddi_token(&self, host: &str, json: bool) -> anyhow::Result<()> {
        let url = self.url(&format!("api/v1/ddi/tokens/{}", path_segment(host)))?;
        let resp = self.send(self.http.post(url), "getting the DDI target token")?;
        let view: DdiTokenView = resp.json().context("getting the DDI target token")?;
        if json {
            return print_json(&view);
        }
        if view.created {
            eprintln!("added DDI device {host}");
        }
        println!("{}", view.token);
        Ok(())
    }

    pub fn ddi_gateway_token(&self, rotate: bool, json: bool) -> anyhow::Result<()> {
        let resp = self.send(
            self.http
                .post(self.url("api/v1/ddi/gateway-token")?)
                .json(&DdiGatewayRequest { rotate }),
            "getting the DDI gateway token",
        )?;
        let view: DdiTokenView = resp.json().context("getting the DDI gateway token")?;
        if json {
            return print_json(&view);
        }
        if rotate {
            eprintln!("the previous gateway token is refused from now on");
        }
        println!("{}", view.token);
        Ok(())
    }
}
