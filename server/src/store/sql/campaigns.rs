//! Campaigns and their members.

use sqlx::{AssertSqlSafe, Row};

use super::webhooks::{self, Owner};
use super::Sql;
use crate::policy::campaign::Baseline;
use crate::policy::status::CampaignStatus;
use crate::store::{Campaign, Member, PendingJob, Result, StoreError, WebhookEvent};
use ferry_manifests::wire::PackageJob;

/// The columns every campaign query reads, in the order `campaign_from` expects.
const CAMPAIGN_COLUMNS: &str = "id, name, item, version, target, require_acceptance, waves, success_threshold, max_failure_rate, \"window\", status, status_reason, created_at, baseline_finished, baseline_failed, tenant_id, observe_secs, rollback_on_regression, regression_max_share, regression_max_excess, regression_min_hosts, observing_wave, observing_since, observed_waves";

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn campaign_from(r: &sqlx::any::AnyRow) -> Result<Campaign> {
    let window: Option<String> = r.try_get("window")?;
    Ok(Campaign {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        item: r.try_get("item")?,
        version: r
            .try_get::<String, _>("version")?
            .parse()
            .map_err(corrupt)?,
        target: serde_json::from_str(&r.try_get::<String, _>("target")?).map_err(corrupt)?,
        require_acceptance: r.try_get::<i64, _>("require_acceptance")? != 0,
        waves: serde_json::from_str(&r.try_get::<String, _>("waves")?).map_err(corrupt)?,
        success_threshold: r.try_get("success_threshold")?,
        max_failure_rate: r.try_get("max_failure_rate")?,
        window: window
            .map(|w| serde_json::from_str(&w))
            .transpose()
            .map_err(corrupt)?,
        status: r.try_get::<String, _>("status")?.parse().map_err(corrupt)?,
        status_reason: r.try_get("status_reason")?,
        created_at: r.try_get("created_at")?,
        baseline: Baseline {
            finished: r.try_get::<i64, _>("baseline_finished")? as usize,
            failed: r.try_get::<i64, _>("baseline_failed")? as usize,
        },
        tenant_id: r.try_get("tenant_id")?,
        observe: crate::policy::campaign::Observe {
            secs: r.try_get::<i64, _>("observe_secs")?.max(0) as u64,
            rollback: r.try_get::<i64, _>("rollback_on_regression")? != 0,
            thresholds: crate::policy::observation::Thresholds {
                max_share: r.try_get("regression_max_share")?,
                max_excess: r.try_get("regression_max_excess")?,
                min_hosts: r.try_get::<i64, _>("regression_min_hosts")?.max(1) as usize,
            },
            watching: match (
                r.try_get::<Option<i64>, _>("observing_wave")?,
                r.try_get::<Option<String>, _>("observing_since")?,
            ) {
                (Some(w), Some(since)) => Some((w.max(0) as usize, since)),
                _ => None,
            },
            passed: r.try_get::<i64, _>("observed_waves")?.max(0) as usize,
        },
    })
}

impl Sql {
    pub async fn create_campaign(&self, c: &Campaign) -> Result<()> {
        sqlx::query(
            "INSERT INTO campaigns (id, name, item, version, target, require_acceptance, waves, success_threshold,
                max_failure_rate, \"window\", status, status_reason, created_at, tenant_id,
                observe_secs, rollback_on_regression, regression_max_share, regression_max_excess, regression_min_hosts)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
                     COALESCE($14, (SELECT id FROM tenants WHERE name = 'default')), $15, $16, $17, $18, $19)",
        )
        .bind(&c.id)
        .bind(&c.name)
        .bind(&c.item)
        .bind(c.version.to_string())
        .bind(serde_json::to_string(&c.target).map_err(corrupt)?)
        .bind(c.require_acceptance as i64)
        .bind(serde_json::to_string(&c.waves).map_err(corrupt)?)
        .bind(c.success_threshold)
        .bind(c.max_failure_rate)
        .bind(c.window.map(|w| serde_json::to_string(&w)).transpose().map_err(corrupt)?)
        .bind(c.status.as_str())
        .bind(&c.status_reason)
        .bind(&c.created_at)
        .bind(&c.tenant_id)
        .bind(c.observe.secs as i64)
        .bind(i64::from(c.observe.rollback))
        .bind(c.observe.thresholds.max_share)
        .bind(c.observe.thresholds.max_excess)
        .bind(c.observe.thresholds.min_hosts as i64)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// The wave a campaign watches now (and since when), and how many passed.
    pub async fn set_observation(
        &self,
        id: &str,
        watching: Option<(usize, &str)>,
        passed: usize,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE campaigns SET observing_wave = $1, observing_since = $2, observed_waves = $3 WHERE id = $4",
        )
        .bind(watching.map(|(w, _)| w as i64))
        .bind(watching.map(|(_, since)| since.to_string()))
        .bind(passed as i64)
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Adds a host's health sample to what its campaign's window over `wave` knows.
    pub async fn record_health(
        &self,
        campaign_id: &str,
        wave: usize,
        host_id: &str,
        at: &str,
        failed: &[String],
    ) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        let row = sqlx::query(
            "SELECT first_at, last_at, failed_at, probes FROM campaign_health
             WHERE campaign_id = $1 AND wave = $2 AND host_id = $3",
        )
        .bind(campaign_id)
        .bind(wave as i64)
        .bind(host_id)
        .fetch_optional(&mut *tx)
        .await?;
        let failed_at = (!failed.is_empty()).then(|| at.to_string());
        match row {
            None => {
                sqlx::query(
                    "INSERT INTO campaign_health (campaign_id, wave, host_id, first_at, last_at, failed_at, probes, samples)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 1)",
                )
                .bind(campaign_id)
                .bind(wave as i64)
                .bind(host_id)
                .bind(at)
                .bind(at)
                .bind(&failed_at)
                .bind(failed.join(","))
                .execute(&mut *tx)
                .await?;
            }
            Some(r) => {
                let first: String = r.try_get("first_at")?;
                let last: String = r.try_get("last_at")?;
                let was_failed: Option<String> = r.try_get("failed_at")?;
                let mut probes: Vec<String> = r
                    .try_get::<String, _>("probes")?
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect();
                for p in failed {
                    if !probes.contains(p) && probes.len() < 20 {
                        probes.push(p.clone());
                    }
                }
                // RFC 3339 in UTC with fixed digits: text order is time order.
                let first = first.min(at.to_string());
                let last = last.max(at.to_string());
                let failed_at = match (was_failed, failed_at) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                sqlx::query(
                    "UPDATE campaign_health SET first_at = $1, last_at = $2, failed_at = $3, probes = $4,
                        samples = samples + 1
                     WHERE campaign_id = $5 AND wave = $6 AND host_id = $7",
                )
                .bind(first)
                .bind(last)
                .bind(failed_at)
                .bind(probes.join(","))
                .bind(campaign_id)
                .bind(wave as i64)
                .bind(host_id)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// What the hosts' samples said during a campaign's window over `wave`.
    pub async fn campaign_health(
        &self,
        campaign_id: &str,
        wave: usize,
    ) -> Result<Vec<crate::policy::observation::HostHealth>> {
        let rows = sqlx::query(
            "SELECT g.host_id, h.hostname, g.first_at, g.last_at, g.failed_at, g.probes
             FROM campaign_health g JOIN hosts h ON h.id = g.host_id
             WHERE g.campaign_id = $1 AND g.wave = $2",
        )
        .bind(campaign_id)
        .bind(wave as i64)
        .fetch_all(&self.pool)
        .await?;
        let time = |t: String| {
            time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339)
                .map_err(corrupt)
        };
        rows.iter()
            .map(|r| {
                Ok(crate::policy::observation::HostHealth {
                    host_id: r.try_get("host_id")?,
                    hostname: r.try_get("hostname")?,
                    first_at: time(r.try_get("first_at")?)?,
                    last_at: time(r.try_get("last_at")?)?,
                    failed_at: r
                        .try_get::<Option<String>, _>("failed_at")?
                        .map(time)
                        .transpose()?,
                    probes: r
                        .try_get::<String, _>("probes")?
                        .split(',')
                        .filter(|p| !p.is_empty())
                        .map(str::to_string)
                        .collect(),
                })
            })
            .collect()
    }

    pub async fn campaigns(&self) -> Result<Vec<Campaign>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM campaigns ORDER BY created_at, id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(campaign_from).collect()
    }

    pub async fn campaign(&self, id: &str) -> Result<Option<Campaign>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(campaign_from).transpose()
    }

    pub async fn set_campaign_status(
        &self,
        id: &str,
        status: CampaignStatus,
        reason: &str,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let changed = sqlx::query(
            "UPDATE campaigns SET status = $1, status_reason = $2 WHERE id = $3 AND status <> $4",
        )
        .bind(status.as_str())
        .bind(reason)
        .bind(id)
        .bind(status.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            // Already so (or gone): its reason may still change; no event.
            sqlx::query("UPDATE campaigns SET status_reason = $1 WHERE id = $2")
                .bind(reason)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        } else {
            let kind = match status {
                CampaignStatus::Running => "campaign.resumed",
                CampaignStatus::Paused => "campaign.paused",
                CampaignStatus::Completed => "campaign.completed",
                CampaignStatus::Cancelled => "campaign.cancelled",
            };
            let tenant = webhooks::tenant_of(&mut tx, Owner::Campaign(id)).await?;
            if webhooks::wanted(&mut tx, tenant.as_deref(), kind).await? {
                let (name, item, version): (String, String, String) =
                    sqlx::query_as("SELECT name, item, version FROM campaigns WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?
                        .unwrap_or_default();
                let event = WebhookEvent {
                    kind,
                    data: serde_json::json!({
                        "campaign_id": id,
                        "name": name,
                        "item": item,
                        "version": version,
                        "status": status.as_str(),
                        "reason": reason,
                        "regressed": reason.starts_with("regressed"),
                    }),
                };
                webhooks::emit(&mut tx, tenant.as_deref(), &event).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stores what an operator may change of a campaign under way, and its baseline.
    pub async fn update_campaign(&self, c: &Campaign) -> Result<()> {
        sqlx::query(
            "UPDATE campaigns SET waves = $1, success_threshold = $2, max_failure_rate = $3, \"window\" = $4,
                baseline_finished = $5, baseline_failed = $6 WHERE id = $7",
        )
        .bind(serde_json::to_string(&c.waves).map_err(corrupt)?)
        .bind(c.success_threshold)
        .bind(c.max_failure_rate)
        .bind(c.window.map(|w| serde_json::to_string(&w)).transpose().map_err(corrupt)?)
        .bind(c.baseline.finished as i64)
        .bind(c.baseline.failed as i64)
        .bind(&c.id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    pub async fn set_member_wave(
        &self,
        campaign_id: &str,
        host_id: &str,
        wave: usize,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE campaign_members SET wave = $1 WHERE campaign_id = $2 AND host_id = $3",
        )
        .bind(wave as i64)
        .bind(campaign_id)
        .bind(host_id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Marks the campaign's pending updates cancelled; the devices hear of it at check-in.
    pub async fn cancel_campaign_updates(&self, id: &str) -> Result<()> {
        sqlx::query(
            "UPDATE updates SET status = 'cancelled', message = 'campaign cancelled', finished_at = $1
             WHERE status = 'pending' AND id IN (SELECT update_id FROM campaign_members WHERE campaign_id = $2)",
        )
        .bind(ferry_manifests::wire::now())
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    pub async fn members(&self, campaign_id: &str) -> Result<Vec<Member>> {
        self.members_where(campaign_id, None).await
    }

    /// One host's membership, if any.
    pub async fn member(&self, campaign_id: &str, host_id: &str) -> Result<Option<Member>> {
        Ok(self.members_where(campaign_id, Some(host_id)).await?.pop())
    }

    async fn members_where(&self, campaign_id: &str, host_id: Option<&str>) -> Result<Vec<Member>> {
        let rows = sqlx::query(
            "SELECT m.host_id, h.hostname, m.seq, m.wave, m.accepted_at, m.update_id, u.status AS update_status,
                    i.version AS installed, h.utc_offset_secs
             FROM campaign_members m
             JOIN campaigns c ON c.id = m.campaign_id
             JOIN hosts h ON h.id = m.host_id
             LEFT JOIN updates u ON u.id = m.update_id
             LEFT JOIN installed i ON i.host_id = m.host_id AND i.item = c.item
             WHERE m.campaign_id = $1 AND ($2 IS NULL OR m.host_id = $3) ORDER BY m.seq",
        )
        .bind(campaign_id)
        .bind(host_id)
        .bind(host_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Member {
                    host_id: r.try_get("host_id")?,
                    hostname: r.try_get("hostname")?,
                    seq: r.try_get("seq")?,
                    wave: r.try_get::<i64, _>("wave")? as usize,
                    accepted: r.try_get::<Option<String>, _>("accepted_at")?.is_some(),
                    update_id: r.try_get("update_id")?,
                    update_status: r
                        .try_get::<Option<String>, _>("update_status")?
                        .map(|s| s.parse())
                        .transpose()
                        .map_err(corrupt)?,
                    installed: r.try_get("installed")?,
                    utc_offset_secs: r.try_get::<i64, _>("utc_offset_secs")? as i32,
                })
            })
            .collect()
    }

    pub async fn member_count(&self, campaign_id: &str) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM campaign_members WHERE campaign_id = $1")
                .bind(campaign_id)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Adds a member; returns false if it already was one.
    pub async fn add_member(
        &self,
        campaign_id: &str,
        host_id: &str,
        seq: i64,
        wave: usize,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO campaign_members (campaign_id, host_id, seq, wave, joined_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (campaign_id, host_id) DO NOTHING",
        )
        .bind(campaign_id)
        .bind(host_id)
        .bind(seq)
        .bind(wave as i64)
        .bind(ferry_manifests::wire::now())
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn set_member_update(
        &self,
        campaign_id: &str,
        host_id: &str,
        update_id: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE campaign_members SET update_id = $1 WHERE campaign_id = $2 AND host_id = $3",
        )
        .bind(update_id)
        .bind(campaign_id)
        .bind(host_id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Records the device's acceptance; false if it is not a member.
    pub async fn accept(&self, campaign_id: &str, host_id: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE campaign_members SET accepted_at = COALESCE(accepted_at, $1) WHERE campaign_id = $2 AND host_id = $3",
        )
        .bind(ferry_manifests::wire::now())
        .bind(campaign_id)
        .bind(host_id)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Campaigns an update belongs to.
    pub async fn campaigns_of_update(&self, update_id: &str) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT campaign_id FROM campaign_members WHERE update_id = $1")
                .bind(update_id)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// A host's pending jobs and its recently cancelled ones, in one read: what a check-in
    /// of a host that may have work needs.
    pub async fn host_work(
        &self,
        host_id: &str,
    ) -> Result<(Vec<String>, Vec<PendingJob>, Vec<PackageJob>)> {
        let rows = sqlx::query(
            "SELECT id, item, version, interactive, status, packages, rollback_reason, metered_allowed FROM updates
             WHERE host_id = $1 AND (status = 'pending' OR (status = 'cancelled' AND finished_at > $2))
             ORDER BY created_at",
        )
        .bind(host_id)
        .bind(crate::policy::fleet::cancelled_told_since(time::OffsetDateTime::now_utc()))
        .fetch_all(&self.pool)
        .await?;
        let (mut cancelled, mut pending, mut packages) = (Vec::new(), Vec::new(), Vec::new());
        for r in rows {
            let id: String = r.try_get("id")?;
            if r.try_get::<String, _>("status")? != "pending" {
                cancelled.push(id);
                continue;
            }
            let item: String = r.try_get("item")?;
            let interactive = r.try_get::<i64, _>("interactive")? != 0;
            match r.try_get::<Option<String>, _>("packages")? {
                Some(text) => {
                    let planned: Vec<ferry_manifests::wire::PackageChange> =
                        serde_json::from_str(&text)
                            .map_err(|e| StoreError::Corrupt(format!("packages: {e}")))?;
                    packages.push(PackageJob {
                        job_id: id,
                        source: item.trim_end_matches(" packages").to_string(),
                        packages: planned.into_iter().map(|p| p.name).collect(),
                        interactive,
                    });
                }
                None => pending.push(PendingJob {
                    id,
                    item,
                    version: super::parse_version(&r.try_get::<String, _>("version")?)?,
                    interactive,
                    rollback: r.try_get("rollback_reason")?,
                    metered_allowed: r.try_get::<i64, _>("metered_allowed")? != 0,
                }),
            }
        }
        Ok((cancelled, pending, packages))
    }

    pub async fn busy_hosts(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT host_id FROM updates
             WHERE status = 'pending' OR (status = 'cancelled' AND finished_at > $1)",
        )
        .bind(crate::policy::fleet::cancelled_told_since(
            time::OffsetDateTime::now_utc(),
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records that campaign `id` waits for approval; `created_by` may not give it.
    pub async fn require_approval(&self, id: &str, created_by: &str) -> Result<()> {
        sqlx::query("INSERT INTO campaign_approvals (campaign_id, created_by) VALUES ($1, $2)")
            .bind(id)
            .bind(created_by)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// (created by, approved by, approved at) of a campaign that needs approval.
    pub async fn approval(
        &self,
        id: &str,
    ) -> Result<Option<(String, Option<String>, Option<String>)>> {
        let row = sqlx::query(
            "SELECT created_by, approved_by, approved_at FROM campaign_approvals WHERE campaign_id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok((
                r.try_get("created_by")?,
                r.try_get("approved_by")?,
                r.try_get("approved_at")?,
            ))
        })
        .transpose()
    }

    /// Approves a campaign waiting for it, once; false when it was approved already.
    pub async fn approve(&self, id: &str, by: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE campaign_approvals SET approved_by = $1, approved_at = $2
             WHERE campaign_id = $3 AND approved_by IS NULL",
        )
        .bind(by)
        .bind(ferry_manifests::wire::now())
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
