use super::*;
use time::macros::datetime;

fn order(id: &str, until: &str) -> ObserveOrder {
    ObserveOrder {
        campaign_id: id.into(),
        item: "web".into(),
        until: until.into(),
        interval_secs: 10,
        control: false,
    }
}

#[test]
fn windows_start_follow_the_server_and_go_once_done_and_delivered() {
    let mut ws = Watches::default();
    merge(&mut ws, &[order("c1", "2026-06-01T12:10:00.000Z")]);
    assert_eq!(ws.watches.len(), 1);
    let now = datetime!(2026-06-01 12:00 UTC);
    assert!(due(&ws.watches[0], now), "a new window samples at once");
    assert_eq!(next_due(&ws, now), Some(Duration::ZERO));
    ws.watches[0].last_sample = Some("2026-06-01T12:00:00.000Z".into());
    assert!(!due(&ws.watches[0], now + time::Duration::seconds(9)));
    assert!(due(&ws.watches[0], now + time::Duration::seconds(10)));
    assert_eq!(
        next_due(&ws, now + time::Duration::seconds(4)),
        Some(Duration::from_secs(6))
    );
    // The server moves the end: the window goes on.
    ws.watches[0].done = true;
    merge(&mut ws, &[order("c1", "2026-06-01T12:20:00.000Z")]);
    assert!(!ws.watches[0].done);
    // Done with samples unsent: kept until they are delivered.
    ws.watches[0].done = true;
    ws.watches[0].unsent.push(HealthSample {
        campaign_id: "c1".into(),
        at: "2026-06-01T12:20:00.000Z".into(),
        failed: vec![],
    });
    merge(&mut ws, &[]);
    assert_eq!(ws.watches.len(), 1);
    ws.watches[0].unsent.clear();
    merge(&mut ws, &[]);
    assert!(ws.watches.is_empty());
}

#[test]
fn probes_fail_on_a_failed_check_a_stopped_or_restarted_unit_a_reboot_or_the_probe() {
    let mut w = Watch {
        campaign_id: "c".into(),
        item: "web".into(),
        until: String::new(),
        interval_secs: 10,
        control: false,
        boot_id: None,
        restarts: BTreeMap::new(),
        last_sample: None,
        unsent: vec![],
        done: false,
    };
    let look = |health, active, restarts, boot: &str, probe| Look {
        health,
        units: vec![("web.service".into(), active, Some(restarts))],
        boot_id: Some(boot.into()),
        probe,
    };
    // The first look sets the baselines and is healthy.
    assert!(failed(&mut w, &look(Some(true), true, 3, "b1", Some(true))).is_empty());
    assert_eq!(w.restarts["web.service"], 3);
    assert_eq!(
        failed(&mut w, &look(Some(false), true, 3, "b1", None)),
        vec!["health"]
    );
    assert_eq!(
        failed(&mut w, &look(None, true, 4, "b1", None)),
        vec!["unit:web.service"]
    );
    assert!(
        failed(&mut w, &look(None, true, 4, "b1", None)).is_empty(),
        "one restart counts once"
    );
    assert_eq!(
        failed(&mut w, &look(None, false, 4, "b1", None)),
        vec!["unit:web.service"]
    );
    assert_eq!(
        failed(&mut w, &look(None, true, 4, "b2", Some(false))),
        vec!["reboot", "probe"]
    );
    assert!(failed(&mut w, &look(None, true, 4, "b2", None)).is_empty());
}

#[test]
fn systemctl_show_is_read_for_state_and_restarts() {
    assert_eq!(
        unit_state("ActiveState=active\nNRestarts=2\n"),
        (true, Some(2))
    );
    assert_eq!(
        unit_state("NRestarts=0\nActiveState=failed\n"),
        (false, Some(0))
    );
    assert_eq!(unit_state("ActiveState=inactive\n"), (false, None));
}
