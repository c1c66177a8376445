use super::*;

fn campaign(waves: usize, success: f64, max_failure: f64) -> Campaign {
    let mut sizes = vec![WaveSize::Count(1); waves - 1];
    sizes.push(WaveSize::Percent(100.0));
    Campaign {
        id: "c".into(),
        name: "c".into(),
        item: "web".into(),
        version: semver::Version::new(2, 0, 0),
        target: Target::All,
        require_acceptance: false,
        waves: sizes,
        success_threshold: success,
        max_failure_rate: max_failure,
        window: None,
        status: CampaignStatus::Running,
        status_reason: String::new(),
        created_at: String::new(),
        baseline: Baseline::default(),
        tenant_id: None,
        observe: Observe::default(),
    }
}

fn m(wave: usize, status: Option<&str>) -> Member {
    Member {
        host_id: format!("h{wave}"),
        hostname: format!("h{wave}"),
        seq: 0,
        wave,
        accepted: false,
        update_id: status.map(|_| "u".to_string()),
        update_status: status.map(|s| s.parse().unwrap()),
        installed: Some("1.0.0".into()),
        utc_offset_secs: 0,
    }
}

fn at(hour: u8, minute: u8) -> OffsetDateTime {
    time::macros::datetime!(2026-01-01 00:00 UTC)
        .replace_hour(hour)
        .unwrap()
        .replace_minute(minute)
        .unwrap()
}

#[test]
fn targets_match_tags_hosts_or_all() {
    let tags = vec!["eu".to_string(), "kiosk".to_string()];
    assert!(matches(&Target::All, "h", &[]));
    assert!(matches(&Target::Tags(vec!["kiosk".into()]), "h", &tags));
    assert!(!matches(&Target::Tags(vec!["us".into()]), "h", &tags));
    assert!(matches(&Target::Hosts(vec!["h".into()]), "h", &[]));
    assert!(!matches(&Target::Hosts(vec!["x".into()]), "h", &[]));
}

#[test]
fn waves_parse_and_cover_everyone() {
    assert_eq!(
        parse_waves("10%,50%").unwrap(),
        vec![
            WaveSize::Percent(10.0),
            WaveSize::Percent(50.0),
            WaveSize::Percent(100.0)
        ]
    );
    assert_eq!(parse_waves("2").unwrap().len(), 2);
    assert!(parse_waves("0%").is_err());
    assert!(parse_waves("ten").is_err());
    let waves = parse_waves("10%,50%,100%").unwrap();
    // Of 10 members: 1 in wave 0, 4 in wave 1, 5 in wave 2.
    let placed: Vec<usize> = (0..10).map(|i| wave_for(&waves, i, 10)).collect();
    assert_eq!(placed, vec![0, 1, 1, 1, 1, 2, 2, 2, 2, 2]);
    let counts = parse_waves("1,3").unwrap();
    let placed: Vec<usize> = (0..5).map(|i| wave_for(&counts, i, 5)).collect();
    assert_eq!(placed, vec![0, 1, 1, 2, 2]);
}

#[test]
fn a_wave_opens_when_the_previous_one_succeeded_enough() {
    let members = vec![m(0, Some("installed")), m(1, None), m(2, None)];
    assert_eq!(decide(&campaign(3, 0.5, 0.5), &members).open_wave, 1);
    let members = vec![
        m(0, Some("installed")),
        m(1, Some("installed")),
        m(1, Some("pending")),
        m(2, None),
    ];
    assert_eq!(decide(&campaign(3, 0.5, 0.5), &members).open_wave, 2);
    assert_eq!(decide(&campaign(3, 0.9, 0.5), &members).open_wave, 1);
    let pending = vec![m(0, Some("pending")), m(1, None)];
    assert_eq!(decide(&campaign(2, 0.5, 0.5), &pending).open_wave, 0);
}

#[test]
fn too_many_failures_pause_the_campaign() {
    let members = vec![
        m(0, Some("rolled_back")),
        m(0, Some("installed")),
        m(0, Some("failed")),
        m(1, None),
    ];
    let d = decide(&campaign(2, 0.5, 0.5), &members);
    assert!(d.pause);
    assert!((d.failure_share - 2.0 / 3.0).abs() < 1e-9);
    assert!(!decide(&campaign(2, 0.5, 0.7), &members).pause);
}

#[test]
fn the_gate_holds_a_member_for_its_wave_then_acceptance_then_the_window() {
    let mut c = campaign(2, 0.5, 0.5);
    let member = m(1, None);
    let noon = at(12, 0);
    assert_eq!(gate(&c, &member, 0, noon), MemberStatus::Waiting);
    assert_eq!(gate(&c, &member, 1, noon), MemberStatus::Dispatchable);
    c.require_acceptance = true;
    assert_eq!(gate(&c, &member, 1, noon), MemberStatus::AwaitingAcceptance);
    let accepted = Member {
        accepted: true,
        ..member.clone()
    };
    c.window = Some(parse_window("02:00-04:00").unwrap());
    assert_eq!(gate(&c, &accepted, 1, noon), MemberStatus::OutsideWindow);
    assert_eq!(gate(&c, &accepted, 1, at(3, 0)), MemberStatus::Dispatchable);
    // 01:30 UTC is 03:30 for a device at UTC+2.
    let east = Member {
        utc_offset_secs: 7200,
        ..accepted.clone()
    };
    assert_eq!(gate(&c, &east, 1, at(1, 30)), MemberStatus::Dispatchable);
    // Cancelled, nothing is held back any more: an unaccepted member reads cancelled.
    let mut cancelled = c.clone();
    cancelled.status = crate::policy::status::CampaignStatus::Cancelled;
    assert_eq!(
        gate(&cancelled, &member, 1, noon),
        MemberStatus::Update(UpdateStatus::Cancelled)
    );
    // Dispatched, or already on the version: its update's status, whatever the gate says.
    assert_eq!(
        gate(&c, &m(1, Some("pending")), 0, noon),
        MemberStatus::Update(UpdateStatus::Pending)
    );
    let already = Member {
        installed: Some("2.0.0".into()),
        ..member
    };
    assert_eq!(
        gate(&c, &already, 0, noon),
        MemberStatus::Update(UpdateStatus::Installed)
    );
}

#[test]
fn windows_use_the_devices_local_time_and_may_wrap_midnight() {
    let w = parse_window("02:00-04:00").unwrap();
    assert!(w.contains(3 * 60, 0));
    assert!(!w.contains(5 * 60, 0));
    // 01:30 UTC is 03:30 at UTC+2.
    assert!(w.contains(90, 2 * 3600));
    let night = parse_window("22:00-04:00").unwrap();
    assert!(night.contains(23 * 60, 0));
    assert!(night.contains(60, 0));
    assert!(!night.contains(12 * 60, 0));
    assert!(parse_window("25:00-01:00").is_err());
    assert!(parse_window("0200").is_err());
}

#[test]
fn waves_must_grow_and_percentages_round_to_the_nearest_host() {
    assert!(parse_waves("50%,10%").unwrap_err().contains("must grow"));
    assert!(parse_waves("10%,10%").is_err());
    assert!(parse_waves("5,3").unwrap_err().contains("must grow"));
    assert!(parse_waves("10%,5").unwrap_err().contains("cannot follow"));
    assert!(parse_waves("5,50%").is_ok());
    // 34%,67%,100% of 3 hosts: one each (not two in the first).
    let waves = parse_waves("34%,67%,100%").unwrap();
    let placed: Vec<usize> = (0..3).map(|i| wave_for(&waves, i, 3)).collect();
    assert_eq!(placed, vec![0, 1, 2]);
    // A wave that would round to nobody still takes one host while hosts remain.
    let waves = parse_waves("10%,20%").unwrap();
    let placed: Vec<usize> = (0..3).map(|i| wave_for(&waves, i, 3)).collect();
    assert_eq!(placed, vec![0, 1, 2]);
}

#[test]
fn a_campaign_completes_when_every_member_has_a_final_outcome() {
    let c = campaign(2, 0.5, 0.9);
    let going = vec![m(0, Some("installed")), m(1, Some("pending"))];
    assert_eq!(decide(&c, &going).complete, None);
    let done = vec![m(0, Some("installed")), m(1, Some("rolled_back"))];
    assert_eq!(decide(&c, &done).complete, Some(true));
    let bad = vec![m(0, Some("failed")), m(1, Some("rolled_back"))];
    let d = decide(&c, &bad);
    assert_eq!(d.complete, Some(false));
    assert!(!d.pause, "a finished campaign completes rather than pauses");
    assert_eq!(decide(&c, &[]).complete, None, "no members yet: not done");
}

#[test]
fn after_a_resume_only_new_failures_count() {
    let mut c = campaign(3, 0.5, 0.4);
    let members = vec![
        m(0, Some("failed")),
        m(0, Some("installed")),
        m(1, None),
        m(2, None),
    ];
    assert!(decide(&c, &members).pause);
    c.baseline = baseline(&c, &members);
    assert_eq!(
        c.baseline,
        Baseline {
            finished: 2,
            failed: 1
        }
    );
    let d = decide(&c, &members);
    assert!(!d.pause);
    assert_eq!(d.failure_share, 0.0);
    // One more failure out of one new finish passes 40% again.
    let mut later = members.clone();
    later[2] = m(1, Some("failed"));
    assert!(decide(&c, &later).pause);
}

#[test]
fn an_edit_changes_thresholds_and_only_waves_not_yet_open() {
    let c = campaign(3, 0.5, 0.5);
    let members = vec![m(0, Some("installed")), m(1, None), m(2, None)];
    let e = Edit {
        max_failure_rate: Some(0.9),
        window: Some(Some(parse_window("01:00-02:00").unwrap())),
        ..Default::default()
    };
    let (next, moved) = edit(&c, &members, 0, &e).unwrap();
    assert_eq!(next.max_failure_rate, 0.9);
    assert!(next.window.is_some());
    assert!(moved.is_empty());
    assert!(edit(
        &c,
        &members,
        0,
        &Edit {
            success_threshold: Some(1.5),
            ..Default::default()
        }
    )
    .is_err());
    // Wave 1 is open: it must stay; the later waves may change.
    let changed_open = Edit {
        waves: Some(parse_waves("2,100%").unwrap()),
        ..Default::default()
    };
    assert!(edit(&c, &members, 0, &changed_open)
        .unwrap_err()
        .contains("opened"));
    let one_wave_less = Edit {
        waves: Some(vec![WaveSize::Count(1), WaveSize::Percent(100.0)]),
        ..Default::default()
    };
    let mut seqd = members.clone();
    for (i, m) in seqd.iter_mut().enumerate() {
        m.seq = i as i64;
        m.host_id = format!("h{i}");
    }
    let (next, moved) = edit(&c, &seqd, 0, &one_wave_less).unwrap();
    assert_eq!(next.waves.len(), 2);
    assert_eq!(moved, vec![("h2".to_string(), 1)]);
}
