use super::*;
use time::macros::datetime;

const T0: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

fn at(secs: i64) -> OffsetDateTime {
    T0 + Duration::seconds(secs)
}

/// A window of 100 s sampled every 10 s (hosts fall silent after 30 s).
fn window() -> Window {
    Window {
        started_at: T0,
        length: Duration::seconds(100),
        interval: Duration::seconds(10),
    }
}

/// A host's samples: first, last, and the first failure with its probes.
fn h(id: &str, first: i64, last: i64, failed: Option<(i64, &str)>) -> HostHealth {
    HostHealth {
        host_id: id.into(),
        hostname: id.into(),
        first_at: at(first),
        last_at: at(last),
        failed_at: failed.map(|(t, _)| at(t)),
        probes: failed.map(|(_, p)| vec![p.to_string()]).unwrap_or_default(),
    }
}

fn run(
    wave: &[&str],
    control: &[&str],
    samples: Vec<HostHealth>,
    now: i64,
    t: Thresholds,
) -> Observation {
    let by_id = |id: &str| samples.iter().find(|s| s.host_id == id).cloned();
    let wave: Vec<(&str, &str)> = wave.iter().map(|w| (*w, *w)).collect();
    let control: Vec<(&str, &str)> = control.iter().map(|c| (*c, *c)).collect();
    judge(&wave, &control, &by_id, &window(), at(now), &t)
}

#[test]
fn a_wave_whose_health_check_fails_while_the_control_is_well_regresses_at_once() {
    let o = run(
        &["w1"],
        &["c1", "c2", "c3"],
        vec![
            h("w1", 5, 45, Some((40, "health"))),
            h("c1", 6, 46, None),
            h("c2", 7, 47, None),
            h("c3", 8, 48, None),
        ],
        48,
        Thresholds::default(),
    );
    assert_eq!(o.verdict, Verdict::Regressed, "{o:#?}");
    assert_eq!(o.wave.share, 1.0);
    assert_eq!(o.control.share, 0.0);
    assert_eq!(o.wave.failing, vec![("w1".into(), vec!["health".into()])]);
    assert_eq!(probe_summary(&o.wave), "health (1)");
    assert!(o.left > Duration::ZERO, "decided before the window ends");
}

#[test]
fn a_storm_over_the_whole_fleet_does_not_count_against_the_wave() {
    let samples = vec![
        h("w1", 5, 95, Some((20, "reboot"))),
        h("w2", 5, 96, None),
        h("c1", 6, 97, Some((21, "reboot"))),
        h("c2", 7, 98, Some((22, "reboot"))),
        h("c3", 8, 104, None),
    ];
    // The wave reported the reboot first; the control has not reported since: not judged yet.
    let early = run(
        &["w1", "w2"],
        &["c1", "c2", "c3"],
        vec![
            h("w1", 5, 20, Some((20, "reboot"))),
            h("w2", 5, 16, None),
            h("c1", 6, 16, None),
            h("c2", 7, 17, None),
            h("c3", 8, 18, None),
        ],
        20,
        Thresholds::default(),
    );
    assert_eq!(early.verdict, Verdict::Observing, "{early:#?}");
    assert_eq!(early.wave.share, 0.5);
    assert_eq!(early.compared_to, at(16));
    // Everyone reported the storm: half of the wave, two thirds of the control.
    let mid = run(
        &["w1", "w2"],
        &["c1", "c2", "c3"],
        samples.clone(),
        98,
        Thresholds::default(),
    );
    assert_eq!(mid.verdict, Verdict::Observing, "{mid:#?}");
    assert_eq!(mid.wave.share, 0.5);
    assert!((mid.control.share - 2.0 / 3.0).abs() < 1e-9);
    // The window ends with every host reported past it: healthy.
    let mut done = samples;
    for s in &mut done {
        s.last_at = at(105);
    }
    let end = run(
        &["w1", "w2"],
        &["c1", "c2", "c3"],
        done,
        105,
        Thresholds::default(),
    );
    assert_eq!(end.verdict, Verdict::Healthy, "{end:#?}");
    assert_eq!(end.left, Duration::ZERO);
}

#[test]
fn the_window_ends_when_everyone_reported_past_it_or_laggards_fell_silent() {
    let samples = vec![h("w1", 5, 95, None), h("c1", 6, 99, None)];
    // 101 s: the window ended but neither host has reported since.
    let o = run(
        &["w1"],
        &["c1"],
        samples.clone(),
        101,
        Thresholds::default(),
    );
    assert_eq!(o.verdict, Verdict::Observing, "{o:#?}");
    // 131 s: no one reported past the end; they fell silent, and silence is failure.
    let o = run(&["w1"], &["c1"], samples, 131, Thresholds::default());
    assert_eq!(o.wave.failing, vec![("w1".into(), vec![SILENT.into()])]);
    assert_eq!(o.control.failing, vec![("c1".into(), vec![SILENT.into()])]);
    assert_eq!(
        o.verdict,
        Verdict::Healthy,
        "silent on both sides is no regression"
    );
}

#[test]
fn a_host_that_stops_reporting_mid_window_counts_as_failing() {
    let o = run(
        &["w1", "w2"],
        &["c1", "c2"],
        vec![
            h("w1", 5, 12, None), // went quiet after 12 s
            h("w2", 5, 55, None),
            h("c1", 6, 56, None),
            h("c2", 7, 57, None),
        ],
        57,
        Thresholds::default(),
    );
    assert_eq!(o.wave.failing, vec![("w1".into(), vec![SILENT.into()])]);
    assert_eq!(o.verdict, Verdict::Regressed, "{o:#?}");
    // An updated host that never reported is silent once its first samples are due.
    let o = run(
        &["w1"],
        &["c1"],
        vec![h("c1", 6, 25, None)],
        25,
        Thresholds::default(),
    );
    assert_eq!(o.wave.counted, 0, "not due yet");
    assert_eq!(o.verdict, Verdict::Observing);
    let o = run(
        &["w1"],
        &["c1"],
        vec![h("c1", 6, 35, None)],
        35,
        Thresholds::default(),
    );
    assert_eq!(o.wave.failing, vec![("w1".into(), vec![SILENT.into()])]);
    assert_eq!(o.verdict, Verdict::Regressed);
    // A control host that never reported does not count at all.
    assert_eq!(
        run(
            &["w1"],
            &["c1", "c9"],
            vec![h("w1", 5, 35, None), h("c1", 6, 35, None)],
            35,
            Thresholds::default()
        )
        .control
        .counted,
        1
    );
}

#[test]
fn too_few_hosts_to_judge_is_said_when_the_window_ends() {
    let t = Thresholds {
        min_hosts: 3,
        ..Thresholds::default()
    };
    let samples = vec![h("w1", 5, 105, Some((50, "health"))), h("w2", 5, 105, None)];
    let o = run(&["w1", "w2"], &[], samples.clone(), 60, t);
    assert_eq!(o.verdict, Verdict::Observing, "{o:#?}");
    let o = run(&["w1", "w2"], &[], samples, 105, t);
    assert_eq!(o.verdict, Verdict::TooFew, "{o:#?}");
}

#[test]
fn thresholds_decide_how_much_worse_than_the_control_is_too_much() {
    // 1 of 4 updated hosts fails (25%), 0 of 4 in the control.
    let samples = vec![
        h("w1", 5, 50, Some((30, "unit:web.service"))),
        h("w2", 5, 50, None),
        h("w3", 5, 50, None),
        h("w4", 5, 50, None),
        h("c1", 5, 50, None),
        h("c2", 5, 50, None),
        h("c3", 5, 50, None),
        h("c4", 5, 50, None),
    ];
    let wave = ["w1", "w2", "w3", "w4"];
    let control = ["c1", "c2", "c3", "c4"];
    let loose = Thresholds {
        max_share: 0.3,
        ..Thresholds::default()
    };
    assert_eq!(
        run(&wave, &control, samples.clone(), 50, loose).verdict,
        Verdict::Observing
    );
    let strict = Thresholds {
        max_share: 0.1,
        max_excess: 0.1,
        min_hosts: 1,
    };
    assert_eq!(
        run(&wave, &control, samples, 50, strict).verdict,
        Verdict::Regressed
    );
}

#[test]
fn samples_come_ten_times_a_window_within_bounds() {
    assert_eq!(sample_interval(Duration::minutes(30)), Duration::minutes(3));
    assert_eq!(sample_interval(Duration::seconds(20)), Duration::seconds(2));
    assert_eq!(sample_interval(Duration::seconds(5)), Duration::seconds(1));
    assert_eq!(sample_interval(Duration::days(1)), Duration::minutes(5));
}

#[test]
fn the_series_follows_failures_as_they_came() {
    let wave = vec![h("w1", 5, 90, Some((40, "health"))), h("w2", 5, 90, None)];
    let control = vec![h("c1", 5, 90, None)];
    let s = series(&wave, &control, at(0), at(80), 5);
    let shares: Vec<(f64, f64)> = s.iter().map(|(_, w, c)| (*w, *c)).collect();
    assert_eq!(
        shares,
        vec![(0.0, 0.0), (0.0, 0.0), (0.5, 0.0), (0.5, 0.0), (0.5, 0.0)]
    );
    assert_eq!(s[0].0, at(0));
    assert_eq!(s[4].0, at(80));
}

#[test]
fn nothing_is_judged_before_the_control_group_had_its_chance_to_report() {
    // The wave's host fails at once; two control hosts have not reported yet.
    let samples = vec![h("w1", 2, 5, Some((5, "reboot"))), h("c1", 3, 4, None)];
    let o = run(
        &["w1"],
        &["c1", "c2"],
        samples.clone(),
        6,
        Thresholds::default(),
    );
    assert_eq!(o.verdict, Verdict::Observing, "{o:#?}");
    assert_eq!(
        o.compared_to,
        at(0),
        "not compared while c2 may still report"
    );
    // Three intervals in, c2 never reported: it does not count, and the wave is judged.
    let mut later = samples;
    later[0].last_at = at(31);
    later[1].last_at = at(31);
    let o = run(&["w1"], &["c1", "c2"], later, 31, Thresholds::default());
    assert_eq!(o.verdict, Verdict::Regressed, "{o:#?}");
    assert_eq!(o.control.counted, 1);
}

#[test]
fn a_storm_the_control_reports_after_the_wave_is_judged_with_it() {
    // The wave's host reports the reboot first; the control hosts report theirs after it.
    let samples = |c2_last: i64, c2_failed: Option<(i64, &'static str)>| {
        vec![
            h("w1", 5, 20, Some((20, "reboot"))),
            h("c1", 6, 21, Some((21, "reboot"))),
            h("c2", 7, c2_last, c2_failed),
        ]
    };
    let waiting = run(
        &["w1"],
        &["c1", "c2"],
        samples(18, None),
        21,
        Thresholds::default(),
    );
    assert_eq!(
        waiting.verdict,
        Verdict::Observing,
        "c2 has not reported since: {waiting:#?}"
    );
    let storm = run(
        &["w1"],
        &["c1", "c2"],
        samples(22, Some((22, "reboot"))),
        22,
        Thresholds::default(),
    );
    assert_eq!(storm.verdict, Verdict::Observing, "{storm:#?}");
    assert_eq!((storm.wave.share, storm.control.share), (1.0, 1.0));
    let alone = run(
        &["w1"],
        &["c1", "c2"],
        vec![
            h("w1", 5, 20, Some((20, "health"))),
            h("c1", 6, 21, None),
            h("c2", 7, 22, None),
        ],
        22,
        Thresholds::default(),
    );
    assert_eq!(alone.verdict, Verdict::Regressed, "{alone:#?}");
}

#[test]
fn a_probe_name_is_kept_only_when_it_looks_like_one() {
    for ok in ["health", "unit:web@1.service", "reboot", "probe"] {
        assert_eq!(probe_name(ok), ok);
    }
    for bad in ["", "x\u{1b}[2J", "a b", &"p".repeat(129), "<script>"] {
        assert_eq!(probe_name(bad), "unknown", "{bad:?}");
    }
}
