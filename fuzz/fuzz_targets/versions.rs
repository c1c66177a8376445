//! Version and expiry comparison: the anti-rollback and upgrade rules hold for any versions.
#![no_main]
use ferry_agent::policy::is_upgrade;
use ferry_agent::state::ItemState;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('|');
    let (Some(a), Some(b), Some(c)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let (Ok(offered), Ok(installed)) = (a.parse::<semver::Version>(), b.parse::<semver::Version>())
    else {
        return;
    };
    let highest = c.parse::<semver::Version>().ok();
    let state = ItemState {
        installed: Some(installed.clone()),
        highest: highest.clone(),
        ..Default::default()
    };
    if is_upgrade(&offered, &state) {
        let floor = highest.unwrap_or(installed);
        assert!(offered > floor, "{offered} is not above {floor}");
    }
    // Expiry comparison goes through the wire timestamp format: text order is time order.
    if let (Ok(x), Ok(y)) = (
        time::OffsetDateTime::from_unix_timestamp(offered.major as i64 % 253_402_300_799),
        time::OffsetDateTime::from_unix_timestamp(offered.minor as i64 % 253_402_300_799),
    ) {
        let (tx, ty) = (
            ferry_manifests::wire::timestamp(x),
            ferry_manifests::wire::timestamp(y),
        );
        assert_eq!(x.cmp(&y), tx.cmp(&ty), "{tx} vs {ty}");
    }
});
