//! Hosts, check-now requests and tokens.

use ferry_manifests::wire::*;

use super::{path_segment, print_json, Client};
use crate::table;

impl Client {
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
                    h.facts.hostname.clone(),
                    h.friendly_name.clone().unwrap_or_default(),
                    h.tags.join(","),
                    if !h.accepted {
                        "awaiting acceptance"
                    } else if h.online {
                        "online"
                    } else {
                        "offline"
                    }
                    .to_string(),
                    format!("{} {}", h.facts.os, h.facts.os_version)
                        .trim()
                        .to_string(),
                    h.facts.arch.clone(),
                    h.facts.agent_version.clone(),
                    h.auth.clone(),
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
                    "AUTH",
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
        (tags, friendly_name, share_ok): (Option<String>, Option<String>, bool),
        json: bool,
    ) -> anyhow::Result<()> {
        let edit = ferry_manifests::wire::HostEdit {
            share_ok,
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
            table::printable(&h.facts.hostname),
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

    pub fn check_now(
        &self,
        host: Option<String>,
        item: Option<String>,
        json: bool,
    ) -> anyhow::Result<()> {
        let resp = self.send(
            self.http
                .post(self.url("api/v1/check")?)
                .json(&ferry_manifests::wire::CheckRequest { host, item }),
            "asking hosts to check in",
        )?;
        let answer: ferry_manifests::wire::CheckAnswer = resp.json()?;
        if json {
            return print_json(&answer);
        }
        println!(
            "asked {} host(s) for a check; those long-polling check within a second (refreshing what their sources know), the others at their next run",
            answer.hosts
        );
        Ok(())
    }

    pub fn show_host(&self, host: &str, json: bool) -> anyhow::Result<()> {
        let url = self.url(&format!("api/v1/hosts/{}", path_segment(host)))?;
        let resp = self.send(self.http.get(url), "reading the host")?;
        let d: HostDetail = resp.json()?;
        if json {
            return print_json(&d);
        }
        let h = &d.host;
        let line = |k: &str, v: &str| println!("{k:<12} {}", table::printable(v));
        line("host", &h.facts.hostname);
        line("id", &h.id);
        line("name", h.friendly_name.as_deref().unwrap_or("-"));
        line("tags", &h.tags.join(","));
        line(
            "state",
            if !h.accepted {
                "awaiting acceptance"
            } else if h.online {
                "online"
            } else {
                "offline"
            },
        );
        line(
            "os",
            &format!("{} {} ({})", h.facts.os, h.facts.os_version, h.facts.arch),
        );
        line("agent", &h.facts.agent_version);
        line("enrolled", &h.enrolled_at);
        line("last seen", &h.last_seen);
        line("auth", &h.auth);
        if let Some(clone) = &h.clone_seen {
            line("CLONE", clone);
        }
        if let Some(site) = &h.site {
            line("site", site);
        }
        if let Some(share) = &h.share {
            line("shares at", share);
        }
        if let Some(fault) = &h.share_fault {
            line(
                "SHARE FAULT",
                &format!("{fault}; offered to its site no more (ferryctl hosts edit HOST --share-ok offers it again)"),
            );
        }
        for i in &h.installed {
            line(
                "installed",
                &format!(
                    "{} {}",
                    i.item,
                    i.version.as_ref().map_or("-".into(), |v| v.to_string())
                ),
            );
        }
        if !d.certificates.is_empty() {
            println!();
            let rows: Vec<Vec<String>> = d
                .certificates
                .iter()
                .map(|c| {
                    vec![
                        c.source.clone(),
                        c.serial.clone(),
                        c.issued_at.clone(),
                        c.not_after.clone(),
                        c.revoked_at.clone().unwrap_or_else(|| "-".into()),
                        c.fingerprint.clone(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table::render(
                    &[
                        "CERTIFICATE",
                        "SERIAL",
                        "ISSUED",
                        "EXPIRES",
                        "REVOKED",
                        "SHA-256"
                    ],
                    &rows
                )
            );
        }
        Ok(())
    }

    pub fn remove_host(&self, host: &str, json: bool) -> anyhow::Result<()> {
        let url = self.url(&format!("api/v1/hosts/{}", path_segment(host)))?;
        self.send(self.http.delete(url), "removing the host")?;
        if json {
            return print_json(&serde_json::json!({"removed": host}));
        }
        println!("removed {host}");
        Ok(())
    }

    pub fn token_create(&self, req: &TokenRequest, json: bool) -> anyhow::Result<()> {
        let resp = self.send(
            self.http.post(self.url("api/v1/tokens")?).json(req),
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
                    t.user.clone().unwrap_or_else(|| "-".into()),
                    t.created_at.clone(),
                    t.expires_at.clone().unwrap_or_else(|| "-".into()),
                    t.uses_left.map_or("-".into(), |n| n.to_string()),
                    if t.needs_acceptance { "yes" } else { "-" }.to_string(),
                    t.revoked_at.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect::<Vec<_>>();
        print!(
            "{}",
            table::render(
                &[
                    "ID",
                    "KIND",
                    "NAME",
                    "USER",
                    "CREATED",
                    "EXPIRES",
                    "USES LEFT",
                    "ACCEPTANCE",
                    "REVOKED"
                ],
                &rows
            )
        );
        Ok(())
    }

    pub fn accept_host(&self, host: &str, json: bool) -> anyhow::Result<()> {
        let url = self.url(&format!("api/v1/hosts/{}/accept", path_segment(host)))?;
        let resp = self.send(self.http.post(url), "accepting the host")?;
        let h: HostView = resp.json()?;
        if json {
            return print_json(&h);
        }
        println!(
            "accepted {} ({}); it is given updates from its next check-in",
            table::printable(&h.facts.hostname),
            h.id
        );
        Ok(())
    }

    pub fn tenant_add(&self, name: &str, json: bool) -> anyhow::Result<()> {
        let resp = self.send(
            self.http
                .post(self.url("api/v1/tenants")?)
                .json(&ferry_manifests::wire::TenantRequest { name: name.into() }),
            "adding the tenant",
        )?;
        let t: ferry_manifests::wire::TenantView = resp.json()?;
        if json {
            return print_json(&t);
        }
        println!(
            "added tenant {} ({}); give it its first admin with `ferryctl users add NAME --role admin --tenant {}`",
            t.name, t.id, t.name
        );
        Ok(())
    }

    pub fn tenants(&self, json: bool) -> anyhow::Result<()> {
        let list: Vec<ferry_manifests::wire::TenantView> =
            self.get("api/v1/tenants", "listing tenants")?;
        if json {
            return print_json(&list);
        }
        let rows = list
            .iter()
            .map(|t| vec![t.name.clone(), t.id.clone()])
            .collect::<Vec<_>>();
        print!("{}", table::render(&["NAME", "ID"], &rows));
        Ok(())
    }

    pub fn user_add(
        &self,
        req: &ferry_manifests::wire::UserRequest,
        json: bool,
    ) -> anyhow::Result<()> {
        let resp = self.send(
            self.http.post(self.url("api/v1/users")?).json(req),
            "adding the user",
        )?;
        self.show_user(resp.json()?, json, "added")
    }

    pub fn user_edit(
        &self,
        name: &str,
        edit: &ferry_manifests::wire::UserEdit,
        json: bool,
    ) -> anyhow::Result<()> {
        let url = self.url(&format!("api/v1/users/{}", path_segment(name)))?;
        let resp = self.send(self.http.patch(url).json(edit), "changing the user")?;
        self.show_user(resp.json()?, json, "changed")
    }

    fn show_user(
        &self,
        u: ferry_manifests::wire::UserView,
        json: bool,
        done: &str,
    ) -> anyhow::Result<()> {
        if json {
            return print_json(&u);
        }
        println!(
            "{done} user {} ({}{}); give them a token with `ferryctl tokens create --user {} --name NAME`",
            u.name,
            u.role,
            u.tag.as_deref().map(|t| format!(", hosts tagged {t}")).unwrap_or_default(),
            u.name
        );
        Ok(())
    }

    pub fn users(&self, json: bool) -> anyhow::Result<()> {
        let list: Vec<ferry_manifests::wire::UserView> =
            self.get("api/v1/users", "listing users")?;
        if json {
            return print_json(&list);
        }
        let rows = list
            .iter()
            .map(|u| {
                vec![
                    u.name.clone(),
                    u.role.clone(),
                    u.tag.clone().unwrap_or_else(|| "-".into()),
                    u.tokens.to_string(),
                    match (u.password, u.single_sign_on) {
                        (_, true) => "single sign-on".to_string(),
                        (true, false) => "password".to_string(),
                        (false, false) => "-".to_string(),
                    },
                    u.created_at.clone(),
                    u.id.clone(),
                ]
            })
            .collect::<Vec<_>>();
        print!(
            "{}",
            table::render(
                &[
                    "NAME",
                    "ROLE",
                    "TAG",
                    "TOKENS",
                    "WEB SIGN-IN",
                    "CREATED",
                    "ID"
                ],
                &rows
            )
        );
        Ok(())
    }

    pub fn audit(&self, user: Option<&str>, since: Option<&str>, json: bool) -> anyhow::Result<()> {
        let mut url = self.url("api/v1/audit")?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(u) = user {
                q.append_pair("user", u);
            }
            if let Some(s) = since {
                q.append_pair("since", s);
            }
        }
        let resp = self.send(self.http.get(url), "reading the audit log")?;
        let list: Vec<ferry_manifests::wire::AuditEntry> = resp.json()?;
        if json {
            return print_json(&list);
        }
        let rows = list
            .iter()
            .map(|e| {
                vec![
                    e.at.clone(),
                    table::printable(&e.user),
                    e.method.clone(),
                    table::printable(&e.path),
                    e.status.to_string(),
                    e.address.clone().unwrap_or_else(|| "-".into()),
                    table::printable(&change_text(e.before.as_ref(), e.after.as_ref())),
                    e.request_id.clone(),
                ]
            })
            .collect::<Vec<_>>();
        print!(
            "{}",
            table::render(
                &["AT", "USER", "METHOD", "PATH", "STATUS", "FROM", "CHANGE", "REQUEST"],
                &rows
            )
        );
        Ok(())
    }

    pub fn user_remove(&self, name: &str) -> anyhow::Result<()> {
        let url = self.url(&format!("api/v1/users/{}", path_segment(name)))?;
        self.send(self.http.delete(url), "removing the user")?;
        println!("removed user {name} and their tokens");
        Ok(())
    }

    pub fn token_revoke(&self, id: &str) -> anyhow::Result<()> {
        let url = self.url(&format!("api/v1/tokens/{}", path_segment(id)))?;
        self.send(self.http.delete(url), "revoking the token")?;
        println!("revoked {id}");
        Ok(())
    }
}

/// An audit entry's change in one line: `role viewer→operator, tag -→site-a`; a removal's
/// record as `removed {…}`; `-` when the entry has none.
fn change_text(before: Option<&serde_json::Value>, after: Option<&serde_json::Value>) -> String {
    let show = |v: Option<&serde_json::Value>| match v {
        None | Some(serde_json::Value::Null) => "-".to_string(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    match (before, after) {
        (Some(serde_json::Value::Object(b)), Some(serde_json::Value::Object(a))) => {
            let fields: Vec<String> = a
                .keys()
                .map(|k| format!("{k} {}→{}", show(b.get(k)), show(a.get(k))))
                .collect();
            if fields.is_empty() {
                "-".into()
            } else {
                fields.join(", ")
            }
        }
        (Some(b), None) => format!("removed {b}"),
        (None, Some(a)) => format!("made {a}"),
        _ => "-".into(),
    }
}

#[cfg(test)]
mod change_tests {
    #[test]
    fn a_change_reads_as_field_before_and_after() {
        let b = serde_json::json!({"role": "viewer", "tag": null});
        let a = serde_json::json!({"role": "operator", "tag": "site-a"});
        assert_eq!(
            super::change_text(Some(&b), Some(&a)),
            "role viewer→operator, tag -→site-a"
        );
        assert_eq!(super::change_text(None, None), "-");
        assert!(super::change_text(Some(&b), None).starts_with("removed "));
    }
}
