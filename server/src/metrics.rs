//! The server's metrics (`GET /metrics`, docs/operations.md): counters the request paths bump,
//! gauges set from plain data when scraped, and the OpenMetrics text they are served as.
//!
//! Labels name kinds, never hosts, users, tokens or anything a device sent: every label value
//! here is one of a fixed set, so a fleet of any size makes the same few series.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// One label, both parts fixed strings.
type Label = [(&'static str, &'static str); 1];

/// The content type of the answer (OpenMetrics 1.0, which Prometheus asks for and reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

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

pub struct Metrics {
    registry: Registry,
    checkins: Family<Label, Counter>,
    installs: Family<[(&'static str, &'static str); 2], Counter>,
    reports: Histogram,
    artifact_bytes: Family<Label, Counter>,
    long_polls: Gauge,
    hosts: Gauge,
    campaigns: Family<Label, Gauge>,
    batches: Family<Label, Gauge>,
    mqtt: Family<Label, Gauge>,
    mqtt_published: Counter,
}

impl Metrics {
    /// The server's metrics; `database` is the store's latency histogram, `backend` which
    /// database it is (`sqlite`, `postgresql`).
    pub fn new(database: Histogram, backend: &'static str) -> Metrics {
        let mut registry = Registry::with_prefix("ferry");
        registry.register(
            "build",
            "The server's version and database",
            Info::new([
                ("version", env!("CARGO_PKG_VERSION")),
                ("database", backend),
            ]),
        );
        let checkins = Family::<Label, Counter>::default();
        registry.register(
            "checkins",
            "Device check-ins answered, by result (ok, refused: unknown or revoked credential, invalid, busy: over budget, error)",
            checkins.clone(),
        );
        for r in CHECKIN_RESULTS {
            let _ = checkins.get_or_create(&[("result", r)]);
        }
        let installs = Family::default();
        registry.register(
            "installs",
            "Installs reported by devices, by outcome and kind (release, packages)",
            installs.clone(),
        );
        let reports = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        registry.register(
            "report_duration_seconds",
            "Time to store one batch of device reports",
            reports.clone(),
        );
        registry.register(
            "database_query_duration_seconds",
            "Time of each database call the server makes",
            database,
        );
        let artifact_bytes = Family::<Label, Counter>::default();
        registry.register(
            "artifact_bytes_served",
            "Bytes of artifacts and deltas sent to devices, by kind (artifact, delta)",
            artifact_bytes.clone(),
        );
        for k in ["artifact", "delta"] {
            let _ = artifact_bytes.get_or_create(&[("kind", k)]);
        }
        let long_polls = Gauge::default();
        registry.register(
            "long_polls_held",
            "Device long-polls this instance holds open",
            long_polls.clone(),
        );
        let hosts = Gauge::default();
        registry.register("hosts", "Hosts in the fleet, every tenant", hosts.clone());
        let campaigns = Family::<Label, Gauge>::default();
        registry.register("campaigns", "Campaigns by state", campaigns.clone());
        let batches = Family::<Label, Gauge>::default();
        registry.register("batches", "Update batches by state", batches.clone());
        let mqtt = Family::<Label, Gauge>::default();
        registry.register(
            "mqtt_connections",
            "MQTT broker connections of this instance by state",
            mqtt.clone(),
        );
        let mqtt_published = Counter::default();
        registry.register(
            "mqtt_messages_published",
            "MQTT messages this instance published",
            mqtt_published.clone(),
        );
        Metrics {
            registry,
            checkins,
            installs,
            reports,
            artifact_bytes,
            long_polls,
            hosts,
            campaigns,
            batches,
            mqtt,
            mqtt_published,
        }
    }

    /// A check-in answered with `status`.
    pub fn checkin(&self, status: u16) {
        self.checkins
            .get_or_create(&[("result", checkin_result(status))])
            .inc();
    }

    /// An install a device reported, `outcome` one of the wire's outcomes.
    pub fn install(&self, outcome: &'static str, kind: &'static str) {
        self.installs
            .get_or_create(&[("outcome", outcome), ("kind", kind)])
            .inc();
    }

    /// A batch of reports stored in `seconds`.
    pub fn report(&self, seconds: f64) {
        self.reports.observe(seconds);
    }

    /// The counter of bytes sent of `kind` (`artifact`, `delta`), for a body to bump as it
    /// streams.
    pub fn served(&self, kind: &'static str) -> Counter {
        self.artifact_bytes.get_or_create_owned(&[("kind", kind)])
    }

    /// What is read when scraped.
    pub fn set(&self, now: &Scraped) {
        self.long_polls.set(now.long_polls as i64);
        self.hosts.set(now.hosts as i64);
        set_states(&self.campaigns, &CAMPAIGN_STATES, &now.campaigns);
        set_states(&self.batches, &BATCH_STATES, &now.batches);
        set_states(&self.mqtt, &MQTT_STATES, &now.mqtt);
        let published = self.mqtt_published.get();
        if now.mqtt_published > published {
            self.mqtt_published.inc_by(now.mqtt_published - published);
        }
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// The figures read from the store and memory when scraped.
#[derive(Debug, Default, Clone)]
pub struct Scraped {
    pub long_polls: u64,
    pub hosts: u64,
    /// States by name, each counted; a name outside the known set is dropped.
    pub campaigns: Vec<&'static str>,
    pub batches: Vec<&'static str>,
    pub mqtt: Vec<&'static str>,
    pub mqtt_published: u64,
}

/// Every known state set to how often it occurs in `seen` (zero included, so a dashboard's
/// series never vanish).
fn set_states(family: &Family<Label, Gauge>, known: &[&'static str], seen: &[&'static str]) {
    for k in known {
        let n = seen.iter().filter(|s| *s == k).count();
        family.get_or_create(&[("state", *k)]).set(n as i64);
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

/// The histogram the store times its calls with: 100 µs to about 6.5 s.
pub fn database_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
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

    #[test]
    fn the_text_has_every_family_with_zeroes_and_only_known_states() {
        let m = Metrics::new(database_histogram(), "sqlite");
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
            "ferry_build_info{version=\"",
            "ferry_checkins_total{result=\"ok\"} 1",
            "ferry_checkins_total{result=\"refused\"} 1",
            "ferry_checkins_total{result=\"error\"} 0",
            "ferry_installs_total{outcome=\"installed\",kind=\"release\"} 1",
            "ferry_report_duration_seconds_count 1",
            "ferry_artifact_bytes_served_total{kind=\"artifact\"} 1000",
            "ferry_artifact_bytes_served_total{kind=\"delta\"} 0",
            "ferry_long_polls_held 3",
            "ferry_hosts 7",
            "ferry_campaigns{state=\"running\"} 2",
            "ferry_campaigns{state=\"cancelled\"} 0",
            "ferry_batches{state=\"completed\"} 1",
            "ferry_mqtt_connections{state=\"connected\"} 1",
            "ferry_mqtt_messages_published_total 12",
            "# EOF",
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
