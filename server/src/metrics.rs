//! The server's metrics (`GET /metrics`, docs/operations.md): counters the request paths bump,
//! gauges set from plain data when scraped, and the Prometheus text they are served as.
//!
//! Labels name kinds, never hosts, users, tokens or anything a device sent: every label value
//! here is one of a fixed set, so a fleet of any size makes the same few series.

use prometheus::{
    exponential_buckets, Encoder as _, Histogram, HistogramOpts, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The content type of the answer: Prometheus's text format, version 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What a check-in's answer status counts as.
pub const CHECKIN_RESULTS: [&str; 5] = ["ok", "refused", "invalid", "busy", "error"];
/// Campaign states as `ferryctl campaigns list` and MQTT name them.
pub const CAMPAIGN_STATES: [&str; 6] = [
    "running",
    "observing",
    "paused",
    "regressed",
    "completed",
    "cancelled",
];
/// Batch states.
pub const BATCH_STATES: [&str; 3] = ["running", "completed", "failed"];
/// How an MQTT connection is doing.
pub const MQTT_STATES: [&str; 3] = ["connected", "disconnected", "standby"];
/// Install outcomes as devices report them.
pub const OUTCOMES: [&str; 4] = ["installed", "failed", "rolled_back", "refused"];

pub struct Metrics {
    registry: Registry,
    checkins: IntCounterVec,
    installs: IntCounterVec,
    reports: Histogram,
    artifact_bytes: IntCounterVec,
    peer_bytes: IntCounter,
    long_polls: IntGauge,
    hosts: IntGauge,
    campaigns: IntGaugeVec,
    batches: IntGaugeVec,
    mqtt: IntGaugeVec,
    mqtt_published: IntCounter,
    webhooks: IntCounterVec,
}

impl Metrics {
    /// The server's metrics, `backend` the database (`sqlite`, `postgresql`); the store's calls
    /// are timed into `ferry_database_query_duration_seconds` from now on.
    pub fn new(store: &crate::store::Store, backend: &str) -> prometheus::Result<Metrics> {
        let registry = Registry::new_custom(Some("ferry".into()), None)?;
        let add = |c: Box<dyn prometheus::core::Collector>| registry.register(c);
        let build = IntGaugeVec::new(
            Opts::new("build_info", "The server's version and database (always 1)"),
            &["version", "database"],
        )?;
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION"), backend])
            .set(1);
        add(Box::new(build))?;
        let checkins = IntCounterVec::new(
            Opts::new(
                "checkins_total",
                "Device check-ins answered, by result (ok; refused: unknown or revoked credential; invalid; busy: over budget; error)",
            ),
            &["result"],
        )?;
        for r in CHECKIN_RESULTS {
            checkins.with_label_values(&[r]);
        }
        add(Box::new(checkins.clone()))?;
        let installs = IntCounterVec::new(
            Opts::new(
                "installs_total",
                "Installs devices reported, by outcome and kind (release, packages)",
            ),
            &["outcome", "kind"],
        )?;
        for o in OUTCOMES {
            installs.with_label_values(&[o, "release"]);
        }
        add(Box::new(installs.clone()))?;
        let reports = Histogram::with_opts(
            HistogramOpts::new(
                "report_duration_seconds",
                "Time to store one batch of device reports",
            )
            .buckets(exponential_buckets(0.001, 2.0, 14)?),
        )?;
        add(Box::new(reports.clone()))?;
        let database = Histogram::with_opts(
            HistogramOpts::new(
                "database_query_duration_seconds",
                "Time of each database call the server makes",
            )
            .buckets(exponential_buckets(0.0001, 2.0, 17)?),
        )?;
        add(Box::new(database.clone()))?;
        store.time_into(database);
        let artifact_bytes = IntCounterVec::new(
            Opts::new(
                "artifact_bytes_served_total",
                "Bytes of artifacts and deltas sent to devices, by kind (artifact, delta)",
            ),
            &["kind"],
        )?;
        for k in ["artifact", "delta"] {
            artifact_bytes.with_label_values(&[k]);
        }
        add(Box::new(artifact_bytes.clone()))?;
        let peer_bytes = IntCounter::new(
            "peer_bytes_total",
            "Artifact bytes devices reported taking from peers at their site instead of a server",
        )?;
        add(Box::new(peer_bytes.clone()))?;
        let long_polls = IntGauge::new(
            "long_polls_held",
            "Device long-polls this instance holds open",
        )?;
        add(Box::new(long_polls.clone()))?;
        let hosts = IntGauge::new("hosts", "Hosts in the fleet, every tenant")?;
        add(Box::new(hosts.clone()))?;
        let states = |name: &str, help: &str| IntGaugeVec::new(Opts::new(name, help), &["state"]);
        let campaigns = states("campaigns", "Campaigns by state")?;
        add(Box::new(campaigns.clone()))?;
        let batches = states("batches", "Update batches by state")?;
        add(Box::new(batches.clone()))?;
        let mqtt = states(
            "mqtt_connections",
            "MQTT broker connections of this instance by state",
        )?;
        add(Box::new(mqtt.clone()))?;
        let mqtt_published = IntCounter::new(
            "mqtt_messages_published_total",
            "MQTT messages this instance published",
        )?;
        add(Box::new(mqtt_published.clone()))?;
        let webhooks = IntCounterVec::new(
            Opts::new(
                "webhook_attempts_total",
                "Webhook delivery attempts this instance made, by result (delivered, failed)",
            ),
            &["result"],
        )?;
        for r in ["delivered", "failed"] {
            webhooks.with_label_values(&[r]);
        }
        add(Box::new(webhooks.clone()))?;
        Ok(Metrics {
            registry,
            checkins,
            installs,
            reports,
            artifact_bytes,
            peer_bytes,
            long_polls,
            hosts,
            campaigns,
            batches,
            mqtt,
            mqtt_published,
            webhooks,
        })
    }

    /// A check-in answered with `status`.
    pub fn checkin(&self, status: u16) {
        self.checkins
            .with_label_values(&[checkin_result(status)])
            .inc();
    }

    /// An install a device reported, `outcome` one of the wire's outcomes.
    pub fn install(&self, outcome: &'static str, kind: &'static str) {
        self.installs.with_label_values(&[outcome, kind]).inc();
    }

    /// A webhook delivery attempt.
    pub fn webhook(&self, delivered: bool) {
        let result = if delivered { "delivered" } else { "failed" };
        self.webhooks.with_label_values(&[result]).inc();
    }

    /// A batch of reports stored in `seconds`.
    pub fn report(&self, seconds: f64) {
        self.reports.observe(seconds);
    }

    /// A device reported taking `bytes` from peers at its site.
    pub fn from_peers(&self, bytes: u64) {
        self.peer_bytes.inc_by(bytes);
    }

    /// The counter of bytes sent of `kind` (`artifact`, `delta`), for a body to bump as it
    /// streams.
    pub fn served(&self, kind: &'static str) -> IntCounter {
        self.artifact_bytes.with_label_values(&[kind])
    }

    /// What is read when scraped.
    pub fn set(&self, now: &Scraped) {
        self.long_polls
            .set(i64::try_from(now.long_polls).unwrap_or(i64::MAX));
        self.hosts.set(i64::try_from(now.hosts).unwrap_or(i64::MAX));
        set_states(&self.campaigns, &CAMPAIGN_STATES, &now.campaigns);
        set_states(&self.batches, &BATCH_STATES, &now.batches);
        set_states(&self.mqtt, &MQTT_STATES, &now.mqtt);
        let published = self.mqtt_published.get();
        if now.mqtt_published > published {
            self.mqtt_published.inc_by(now.mqtt_published - published);
        }
    }

    /// The text of every metric.
    pub fn encode(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!("cannot encode the metrics: {e}");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// The figures read from the store and memory when scraped.
#[derive(Debug, Default, Clone)]
pub struct Scraped {
    pub long_polls: u64,
    pub hosts: u64,
    /// States, one entry per campaign (batch, connection).
    pub campaigns: Vec<&'static str>,
    pub batches: Vec<&'static str>,
    pub mqtt: Vec<&'static str>,
    pub mqtt_published: u64,
}

/// Every known state set to how often it occurs in `seen` (zero included, so a dashboard's
/// series never vanish).
fn set_states(family: &IntGaugeVec, known: &[&'static str], seen: &[&'static str]) {
    for k in known {
        let n = seen.iter().filter(|s| *s == k).count();
        family
            .with_label_values(&[*k])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

/// The known name equal to `s`, as a `'static` label value.
pub fn known(set: &[&'static str], s: &str) -> Option<&'static str> {
    set.iter().copied().find(|k| *k == s)
}

/// What a check-in's answer status counts as.
pub fn checkin_result(status: u16) -> &'static str {
    match status {
        200..=299 => "ok",
        401 | 403 => "refused",
        429 | 503 => "busy",
        400..=499 => "invalid",
        _ => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_count_as_what_an_operator_would_call_them() {
        assert_eq!(checkin_result(200), "ok");
        assert_eq!(checkin_result(401), "refused");
        assert_eq!(checkin_result(403), "refused");
        assert_eq!(checkin_result(429), "busy");
        assert_eq!(checkin_result(503), "busy");
        assert_eq!(checkin_result(422), "invalid");
        assert_eq!(checkin_result(500), "error");
    }

    #[tokio::test]
    async fn the_text_has_every_family_with_zeroes_and_only_known_states() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open_sqlite(&dir.path().join("m.db"))
            .await
            .unwrap();
        let m = Metrics::new(&store, "sqlite").unwrap();
        store.ping().await.unwrap();
        m.checkin(200);
        m.checkin(401);
        m.install("installed", "release");
        m.report(0.004);
        m.served("artifact").inc_by(1000);
        m.set(&Scraped {
            long_polls: 3,
            hosts: 7,
            campaigns: vec!["running", "paused", "running"],
            batches: vec!["completed"],
            mqtt: vec!["connected"],
            mqtt_published: 12,
        });
        let text = m.encode();
        for line in [
            "ferry_build_info{database=\"sqlite\",version=\"",
            "ferry_checkins_total{result=\"ok\"} 1",
            "ferry_checkins_total{result=\"refused\"} 1",
            "ferry_checkins_total{result=\"error\"} 0",
            "ferry_installs_total{kind=\"release\",outcome=\"installed\"} 1",
            "ferry_installs_total{kind=\"release\",outcome=\"refused\"} 0",
            "ferry_report_duration_seconds_count 1",
            "ferry_artifact_bytes_served_total{kind=\"artifact\"} 1000",
            "ferry_artifact_bytes_served_total{kind=\"delta\"} 0",
            "ferry_long_polls_held 3",
            "ferry_hosts 7",
            "ferry_database_query_duration_seconds_count 1",
            "ferry_campaigns{state=\"running\"} 2",
            "ferry_campaigns{state=\"cancelled\"} 0",
            "ferry_batches{state=\"completed\"} 1",
            "ferry_mqtt_connections{state=\"connected\"} 1",
            "ferry_mqtt_messages_published_total 12",
            "# TYPE ferry_checkins_total counter",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        // Counters never go back, even if a scrape reads a smaller figure.
        m.set(&Scraped {
            mqtt_published: 5,
            ..Default::default()
        });
        assert!(m
            .encode()
            .contains("ferry_mqtt_messages_published_total 12"));
        assert_eq!(known(&CAMPAIGN_STATES, "paused"), Some("paused"));
        assert_eq!(known(&CAMPAIGN_STATES, "<script>"), None);
    }
}
