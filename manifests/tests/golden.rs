//! Golden files for the device wire format: what an agent sends at check-in and with its
//! reports, and what the server answers. A change to these types that changes the JSON shows
//! up here as a diff to review like code; `FERRY_BLESS=1 cargo test -p ferry-manifests --test
//! golden` rewrites the files after an intended change.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use ferry_manifests::wire::{
    Available, CampaignOffer, CheckInRequest, CheckInResponse, DeviceFacts, HealthSample,
    InstalledItem, Job, ObserveOrder, Outcome, PackageChange, PackageJob, PackageReport, Report,
    ReportBatch, Site,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

fn v(s: &str) -> semver::Version {
    s.parse().unwrap()
}

/// Serialises `value` and compares it with `tests/data/NAME`; then parses the file back and
/// checks it serialises the same (nothing lost on the way in).
fn golden<T: Serialize + DeserializeOwned>(name: &str, value: &T) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let text = serde_json::to_string_pretty(value).unwrap() + "\n";
    if std::env::var_os("FERRY_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let stored = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (FERRY_BLESS=1 writes it)", path.display()));
    assert_eq!(
        stored,
        text,
        "{} differs from what the types serialise to; review, then FERRY_BLESS=1",
        path.display()
    );
    let back: T = serde_json::from_str(&stored).unwrap();
    assert_eq!(serde_json::to_string_pretty(&back).unwrap() + "\n", stored);
}

#[test]
fn check_in_request() {
    golden(
        "checkin-request.json",
        &CheckInRequest {
            facts: DeviceFacts {
                hostname: "kiosk-7".into(),
                os: "Debian GNU/Linux".into(),
                os_version: "12".into(),
                arch: "aarch64".into(),
                agent_version: "0.1.0".into(),
                device_class: Some("kiosk-v2".into()),
                newest_manifest_at: Some("2026-11-01T10:00:00Z".into()),
                tags: vec!["lab".into(), "eu".into()],
                friendly_name: Some("Kiosk 7".into()),
                utc_offset_secs: Some(3600),
                installed: vec![
                    InstalledItem {
                        item: "web".into(),
                        version: Some(v("1.2.0")),
                    },
                    InstalledItem {
                        item: "db".into(),
                        version: None,
                    },
                ],
                site: Some(Site {
                    name: "shop-12".into(),
                    share: Some("http://192.168.7.20:8089".into()),
                    holds: vec!["ab".repeat(32)],
                }),
            },
            wait_secs: 30,
            inventory_digest: None,
            health: vec![HealthSample {
                campaign_id: "6f1c2a9e-0000-4000-8000-000000000009".into(),
                at: "2026-11-01T10:05:00.000Z".into(),
                failed: vec!["unit:web.service".into()],
            }],
        },
    );
}

#[test]
fn check_in_response() {
    golden(
        "checkin-response.json",
        &CheckInResponse {
            host_id: "6f1c2a9e-0000-4000-8000-000000000001".into(),
            available: vec![Available {
                item: "web".into(),
                version: v("1.3.0"),
                category: "security".into(),
                manifest_path: "api/v1/releases/web/1.3.0/manifest".into(),
                notes: "Fixes CVE-2026-0001.".into(),
                release_url: Some("https://example.org/web/1.3.0".into()),
                delta: None,
                mirrors: vec![],
                peers: vec![],
            }],
            jobs: vec![Job {
                job_id: "6f1c2a9e-0000-4000-8000-000000000002".into(),
                item: "web".into(),
                version: v("1.3.0"),
                manifest_path: "api/v1/releases/web/1.3.0/manifest".into(),
                interactive: false,
                delta: None,
                mirrors: vec![],
                rollback: None,
                metered_allowed: false,
                peers: vec![format!(
                    "http://192.168.7.21:8089/artifacts/{}",
                    "ab".repeat(32)
                )],
            }],
            acked_reports: vec![],
            trust_root_version: Some(2),
            poll_interval_secs: Some(300),
            campaigns: vec![CampaignOffer {
                campaign_id: "6f1c2a9e-0000-4000-8000-000000000003".into(),
                name: "db 2.0.0".into(),
                item: "db".into(),
                version: v("2.0.0"),
                accepted: false,
            }],
            cancelled_jobs: vec!["6f1c2a9e-0000-4000-8000-000000000004".into()],
            awaiting_acceptance: false,
            server_time: Some("2026-12-05T10:00:00.000Z".into()),
            inventory_wanted: false,
            inventory_base: None,
            check_requested: false,
            package_jobs: vec![PackageJob {
                job_id: "6f1c2a9e-0000-4000-8000-000000000005".into(),
                source: "apt".into(),
                packages: vec!["openssl".into(), "libssl3".into()],
                interactive: false,
            }],
            issues_certificates: true,
            observe: vec![ObserveOrder {
                campaign_id: "6f1c2a9e-0000-4000-8000-000000000009".into(),
                item: "web".into(),
                until: "2026-11-01T10:30:00.000Z".into(),
                interval_secs: 180,
                control: false,
            }],
        },
    );
}

#[test]
fn report_batch() {
    golden(
        "report-batch.json",
        &ReportBatch {
            reports: vec![
                Report {
                    report_id: "r-1".into(),
                    job_id: Some("6f1c2a9e-0000-4000-8000-000000000002".into()),
                    item: "web".into(),
                    version: v("1.3.0"),
                    from_version: Some(v("1.2.0")),
                    outcome: Outcome::Installed,
                    message: "web 1.3.0 installed".into(),
                    output: "post-install: ok\n".into(),
                    started_at: "2026-11-01T10:00:01Z".into(),
                    finished_at: "2026-11-01T10:00:04Z".into(),
                    fetched: None,
                },
                Report {
                    report_id: "r-2".into(),
                    job_id: None,
                    item: "db".into(),
                    version: v("2.0.0"),
                    from_version: None,
                    outcome: Outcome::RolledBack,
                    message: "health check failed; rolled back".into(),
                    output: String::new(),
                    started_at: "2026-11-01T10:01:00Z".into(),
                    finished_at: "2026-11-01T10:01:09Z".into(),
                    fetched: None,
                },
            ],
            package_reports: vec![PackageReport {
                report_id: "r-3".into(),
                job_id: "6f1c2a9e-0000-4000-8000-000000000005".into(),
                source: "apt".into(),
                outcome: Outcome::Installed,
                message: "upgraded openssl 3.0.14-1~deb12u1 → 3.0.15-1~deb12u1".into(),
                output: "Setting up openssl (3.0.15-1~deb12u1) ...\n".into(),
                changes: vec![PackageChange {
                    name: "openssl".into(),
                    from: Some("3.0.14-1~deb12u1".into()),
                    to: Some("3.0.15-1~deb12u1".into()),
                }],
                started_at: "2026-11-01T10:02:00Z".into(),
                finished_at: "2026-11-01T10:02:40Z".into(),
            }],
            sent_at: Some("2026-11-01T10:02:00.000Z".into()),
        },
    );
}
