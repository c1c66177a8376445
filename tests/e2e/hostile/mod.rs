//! A hostile or broken server, as in python-tuf's repository simulator: a small HTTP server on
//! 127.0.0.1 that speaks Ferry's device protocol but serves whatever a test tells it to, so
//! each attack of the TUF/Uptane list has its own test. For every one the agent must refuse
//! with a clear message, send a report, and leave the device exactly as it was.

use std::fs;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_manifests::envelope::MANIFEST_PAYLOAD_TYPE;
use ferry_manifests::Envelope;
use sha2::{Digest, Sha256};

mod sim;

use sim::{release, signed, tarball, Body, Device, Offer};

use crate::util::signal;

#[test]
fn missing_signatures_are_refused() {
    let d = Device::new("");
    let (m, bytes) = release("1.1.0");
    let mut env = m.sign(&[&d.key]);
    env.signatures.clear();
    d.assert_refused(
        Offer {
            version: "1.1.0".into(),
            envelope: Body::Bytes(env.to_json().into_bytes()),
            artifact: Body::Bytes(bytes),
        },
        "no signatures",
    );
}

#[test]
fn an_invalid_signature_by_a_trusted_key_is_refused() {
    let d = Device::new("");
    let (m, bytes) = release("1.1.0");
    let mut env = m.sign(&[&d.key]);
    // Sign other bytes with the right key: a valid signature, over the wrong payload.
    let forged = Envelope::sign(MANIFEST_PAYLOAD_TYPE, b"{}", &[&d.key]);
    env.signatures = forged.signatures;
    d.assert_refused(
        Offer {
            version: "1.1.0".into(),
            envelope: Body::Bytes(env.to_json().into_bytes()),
            artifact: Body::Bytes(bytes),
        },
        "invalid signatures by trusted keys",
    );
}

#[test]
fn a_signature_by_an_unknown_key_is_refused() {
    let d = Device::new("");
    let (m, bytes) = release("1.1.0");
    d.assert_refused(
        Offer {
            version: "1.1.0".into(),
            envelope: Body::Bytes(m.sign(&[&d.other]).to_json().into_bytes()),
            artifact: Body::Bytes(bytes),
        },
        &d.other.id.0,
    );
}

#[test]
fn another_payload_type_inside_the_signature_is_refused() {
    let d = Device::new("");
    let (m, bytes) = release("1.1.0");
    let env = Envelope::sign(
        "application/vnd.other.document+json",
        &m.to_payload(),
        &[&d.key],
    );
    d.assert_refused(
        Offer {
            version: "1.1.0".into(),
            envelope: Body::Bytes(env.to_json().into_bytes()),
            artifact: Body::Bytes(bytes),
        },
        "payload type",
    );
}

#[test]
fn one_key_repeated_does_not_meet_a_threshold_of_two() {
    let d = Device::new("");
    // Trust both keys and require two of them.
    let cfg = d.dir.path().join("agent.toml");
    let text = fs::read_to_string(&cfg).unwrap().replace(
        "trusted_keys = [\"a.pub\"]",
        "trusted_keys = [\"a.pub\", \"b.pub\"]\nsignature_threshold = 2",
    );
    fs::write(&cfg, text).unwrap();
    // install_v1 needs two signatures now.
    let (m1, b1) = release("1.0.0");
    d.server.offer(Offer {
        version: "1.0.0".into(),
        envelope: Body::Bytes(m1.sign(&[&d.key, &d.other]).to_json().into_bytes()),
        artifact: Body::Bytes(b1),
    });
    d.agent().ok();
    let before = crate::util::World::tree(&d.root());
    let (m, bytes) = release("1.1.0");
    let mut env = m.sign(&[&d.key]);
    env.signatures.push(env.signatures[0].clone());
    d.server.offer(Offer {
        version: "1.1.0".into(),
        envelope: Body::Bytes(env.to_json().into_bytes()),
        artifact: Body::Bytes(bytes),
    });
    let run = d.agent().code(1);
    assert!(
        run.stderr
            .contains("1 valid signature(s) from trusted keys, 2 required"),
        "{run}"
    );
    assert_eq!(crate::util::World::tree(&d.root()), before);
    assert!(d
        .server
        .reports()
        .iter()
        .any(|r| r.outcome.as_str() == "refused"));
}

#[test]
fn an_older_validly_signed_release_is_refused() {
    let d = Device::new("");
    let (m, bytes) = release("0.9.0");
    d.assert_refused(
        Offer {
            version: "0.9.0".into(),
            envelope: signed(&d, &m),
            artifact: Body::Bytes(bytes),
        },
        "rollback refused",
    );
}

#[test]
fn an_expired_manifest_is_refused() {
    let d = Device::new("");
    let (mut m, bytes) = release("1.1.0");
    m.expires_at = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    d.assert_refused(
        Offer {
            version: "1.1.0".into(),
            envelope: signed(&d, &m),
            artifact: Body::Bytes(bytes),
        },
        "expired",
    );
}

#[test]
fn an_endless_manifest_is_cut_off_before_parsing() {
    let d = Device::new("");
    let (_, bytes) = release("1.1.0");
    d.assert_refused(
        Offer {
            version: "1.1.0".into(),
            envelope: Body::Endless(b"{\"payloadType\":\"".to_vec()),
            artifact: Body::Bytes(bytes),
        },
        "more than the 33554432 allowed",
    );
}

#[test]
fn an_endless_artifact_is_cut_off_at_the_signed_size() {
    let d = Device::new("");
    let (m, bytes) = release("1.1.0");
    d.assert_refused(
        Offer {
            version: "1.1.0".into(),
            envelope: signed(&d, &m),
            artifact: Body::Endless(bytes),
        },
        "more than the",
    );
}

#[test]
fn a_release_for_another_device_class_is_refused() {
    let d = Device::new("device_class = \"kiosk-x86\"");
    let (mut m, bytes) = release("1.1.0");
    m.compatible = vec!["rpi4".into()];
    d.assert_refused(
        Offer {
            version: "1.1.0".into(),
            envelope: signed(&d, &m),
            artifact: Body::Bytes(bytes),
        },
        "device classes",
    );
}

#[test]
fn a_manifest_for_another_item_is_refused() {
    let d = Device::new("");
    let (mut m, bytes) = release("1.1.0");
    m.item = "api".into();
    d.assert_refused(
        Offer {
            version: "1.1.0".into(),
            envelope: signed(&d, &m),
            artifact: Body::Bytes(bytes),
        },
        "manifest is for item",
    );
}

#[test]
fn a_tarball_with_a_file_not_in_the_manifest_is_refused() {
    let d = Device::new("");
    let (mut m, _) = release("1.1.0");
    let (bytes, _) = tarball(&[("bin/web", b"web 1.1.0\n"), ("bin/extra", b"surprise")]);
    m.artifact.size = bytes.len() as u64;
    m.artifact.sha256 = hex::encode(Sha256::digest(&bytes));
    m.files = tarball(&[("bin/web", b"web 1.1.0\n")]).1;
    d.assert_refused(
        Offer {
            version: "1.1.0".into(),
            envelope: signed(&d, &m),
            artifact: Body::Bytes(bytes),
        },
        "not listed in the signed manifest",
    );
}

/// `bin/web` and a symlink `bin/start` pointing at `target`.
fn tarball_with_link(target: &str) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(10);
    h.set_mode(0o755);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, "bin/web", &b"web 1.1.0\n"[..])
        .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    tar.append_link(&mut h, "bin/start", target).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}

/// Symlinks: only the manifest's, with its signed targets, and none leaving the item root or
/// standing where a file goes. Each case is refused and the device is left as it was.
#[test]
fn symlinks_other_than_the_signed_ones_are_refused() {
    use ferry_manifests::LinkEntry;
    let link = |path: &str, target: &str| LinkEntry {
        path: path.into(),
        target: target.into(),
    };
    let cases: Vec<(Vec<u8>, Vec<LinkEntry>, &str)> = vec![
        // A link the manifest does not list, pointing out of the root.
        (tarball_with_link("/etc/passwd"), vec![], "does not list"),
        // A listed link whose tarball entry points elsewhere.
        (
            tarball_with_link("/etc/shadow"),
            vec![link("bin/start", "web")],
            "the manifest says \"web\"",
        ),
        // A signed link that leaves the root.
        (
            tarball_with_link("../../etc/passwd"),
            vec![link("bin/start", "../../etc/passwd")],
            "leaves the release's root",
        ),
        // A signed link at a directory a file goes under (written through, it would put the
        // file wherever the link points).
        (
            tarball_with_link("web"),
            vec![link("bin", "sbin")],
            "nothing is installed through a link",
        ),
    ];
    for (bytes, links, why) in cases {
        let d = Device::new("");
        let (mut m, _) = release("1.1.0");
        m.artifact.size = bytes.len() as u64;
        m.artifact.sha256 = hex::encode(Sha256::digest(&bytes));
        m.links = links;
        d.assert_refused(
            Offer {
                version: "1.1.0".into(),
                envelope: signed(&d, &m),
                artifact: Body::Bytes(bytes),
            },
            why,
        );
    }
}

/// Slow retrieval: the first mirror trickles bytes below the minimum rate; the agent gives
/// it up and installs from the next one.
#[test]
fn a_slow_mirror_is_abandoned_for_the_next() {
    let d = Device::new("min_download_rate = 100000");
    d.install_v1();
    let (mut m, bytes) = release("1.1.0");
    m.artifact.urls = vec![
        format!("{}/slow/web-1.1.0.tar.gz", d.server.url()),
        format!("{}/api/v1/artifacts/web-1.1.0.tar.gz", d.server.url()),
    ];
    // Both URLs hit the same simulator; the trickle ends after the first connection.
    d.server.offer(Offer {
        version: "1.1.0".into(),
        envelope: signed(&d, &m),
        artifact: Body::Trickle(bytes.clone(), Duration::from_millis(50)),
    });
    let behaviour = Arc::clone(&d.server.behaviour);
    let fast = bytes.clone();
    // Switch the simulator to fast serving once the slow transfer has started.
    let switcher = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        if let Some(job) = behaviour.lock().unwrap().job.as_mut() {
            job.artifact = Body::Bytes(fast);
        }
    });
    let run = d.agent().ok();
    switcher.join().unwrap();
    assert!(run.stderr.contains("too slow"), "{run}");
    assert_eq!(
        fs::read_link(d.root().join("current")).unwrap(),
        Path::new("releases/1.1.0")
    );
    assert!(d
        .server
        .reports()
        .iter()
        .any(|r| r.version.to_string() == "1.1.0" && r.outcome.as_str() == "installed"));
}

/// SIGTERM during a download stops it at once, keeps the partial file, exits 6; the next run
/// finishes the job.
#[test]
fn sigterm_during_a_download_stops_cleanly_and_the_next_run_finishes() {
    let d = Device::new("min_download_rate = 0");
    d.install_v1();
    let (m, bytes) = release("1.1.0");
    d.server.offer(Offer {
        version: "1.1.0".into(),
        envelope: signed(&d, &m),
        artifact: Body::Trickle(bytes.clone(), Duration::from_millis(20)),
    });
    let mut child = d.device().spawn("once");
    let part_exists = || {
        fs::read_dir(d.dir.path().join("state/downloads"))
            .unwrap()
            .flatten()
            .any(|e| {
                e.file_name().to_string_lossy().ends_with(".part")
                    && e.metadata().unwrap().len() > 0
            })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !part_exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let signalled = Instant::now();
    signal(child.id(), "TERM", false);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(10),
            "did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(6), "{stderr}");
    assert!(stderr.contains("stopped by a signal"), "{stderr}");
    assert!(part_exists(), "the partial download was not kept");
    assert_eq!(
        fs::read_link(d.root().join("current")).unwrap(),
        Path::new("releases/1.0.0")
    );

    d.server
        .behaviour
        .lock()
        .unwrap()
        .job
        .as_mut()
        .unwrap()
        .artifact = Body::Bytes(bytes);
    d.agent().ok();
    assert_eq!(
        fs::read_link(d.root().join("current")).unwrap(),
        Path::new("releases/1.1.0")
    );
}

/// A server that fails to store reports (500) does not stall the device: the reports stay
/// queued, the device checks in and installs as usual, and the reports go once it can.
#[test]
fn a_5xx_for_reports_does_not_stop_the_device_checking_in() {
    let d = Device::new("");
    d.install_v1();
    let delivered = d.server.reports().len();
    d.server.behaviour.lock().unwrap().fail_reports = usize::MAX;
    let (m, bytes) = release("1.1.0");
    d.server.offer(Offer {
        version: "1.1.0".into(),
        envelope: signed(&d, &m),
        artifact: Body::Bytes(bytes),
    });
    // Installed, its report queued: exit 3, try again later (nothing was lost).
    let run = d.agent().code(3);
    assert!(run.stderr.contains("stay queued"), "{run}");
    assert_eq!(
        fs::read_link(d.root().join("current")).unwrap(),
        Path::new("releases/1.1.0")
    );
    // The next run still checks in (and installs what is offered) while reports fail.
    let (m, bytes) = release("1.2.0");
    d.server.offer(Offer {
        version: "1.2.0".into(),
        envelope: signed(&d, &m),
        artifact: Body::Bytes(bytes),
    });
    let checkins = d.server.behaviour.lock().unwrap().checkins;
    d.agent().code(3);
    assert!(d.server.behaviour.lock().unwrap().checkins > checkins);
    assert_eq!(
        fs::read_link(d.root().join("current")).unwrap(),
        Path::new("releases/1.2.0")
    );
    // Once the server stores reports again, both arrive.
    d.server.behaviour.lock().unwrap().fail_reports = 0;
    d.server.behaviour.lock().unwrap().job = None;
    d.agent().ok();
    let versions: Vec<String> = d.server.reports()[delivered..]
        .iter()
        .map(|r| r.version.to_string())
        .collect();
    assert_eq!(versions, vec!["1.1.0", "1.2.0"], "{versions:?}");
}

/// A check-in answer cut off mid-body is the network's doing: exit 3 (try again), not 5
/// (investigate), and the next run goes on.
#[test]
fn an_answer_cut_off_mid_body_is_a_network_error() {
    let d = Device::new("");
    d.install_v1();
    d.server.behaviour.lock().unwrap().cut_checkins = 1;
    let run = d.agent().code(3);
    assert!(run.stderr.contains("cut off"), "{run}");
    d.agent().ok();
}

/// A device whose clock is two years behind (no RTC, a dead battery) still refuses a
/// manifest that expired yesterday: it never trusts a time earlier than the newest signed
/// date it has verified.
#[test]
fn a_clock_behind_does_not_revive_an_expired_manifest() {
    let d = Device::new("");
    let before = d.install_v1();
    let (mut m, bytes) = release("1.1.0");
    let now = time::OffsetDateTime::now_utc();
    m.released_at = now - time::Duration::days(10);
    m.expires_at = now - time::Duration::days(1);
    d.server.offer(Offer {
        version: "1.1.0".into(),
        envelope: signed(&d, &m),
        artifact: Body::Bytes(bytes),
    });
    let run = d.device().run_at("-730d", "once").code(1);
    assert!(run.stderr.contains("expired"), "{run}");
    assert_eq!(crate::util::World::tree(&d.root()), before, "{run}");
}
