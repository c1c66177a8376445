//! Links that cost money, as plain code (docs/delivery.md): a download rate cap
//! (`max_download_rate = "200KiB/s"`), the pace that keeps a transfer under it, and a
//! download window in local time (`download_window = "01:00-05:00"`).

use std::fmt;
use std::time::Duration;

pub use ferry_manifests::rate::Rate;

/// How long to wait before going on, `done` bytes after a transfer began `elapsed` ago, so
/// it averages no more than `rate`.
pub fn pause(rate: Rate, done: u64, elapsed: Duration) -> Duration {
    let due = Duration::from_secs_f64(done as f64 / rate.0 as f64);
    due.saturating_sub(elapsed)
}

/// A read size that keeps each pause short (about a tenth of a second), between 1 KiB and
/// `most`.
pub fn read_size(rate: Rate, most: usize) -> usize {
    usize::try_from(rate.0 / 10)
        .unwrap_or(most)
        .clamp(1024, most.max(1024))
}

/// Whether the device's link costs money (`metered = "auto" | true | false`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Metered {
    /// NetworkManager's view where it runs (its `Metered` property over D-Bus), else not.
    #[default]
    Auto,
    Fixed(bool),
}

impl Metered {
    /// `metered` as the config file has it: `true`, `false` or `"auto"`.
    pub fn from_toml(value: &toml::Value) -> Result<Metered, String> {
        match value {
            toml::Value::Boolean(b) => Ok(Metered::Fixed(*b)),
            toml::Value::String(s) if s == "auto" => Ok(Metered::Auto),
            other => Err(format!(
                "{other} is not true, false or \"auto\" (NetworkManager's view where it runs)"
            )),
        }
    }
}

/// NetworkManager's `Metered` property as `busctl get-property` prints it (`u 1`): yes (1)
/// and guess-yes (3) are metered; no (2), guess-no (4) and unknown (0) are not.
pub fn networkmanager_metered(busctl: &str) -> Option<bool> {
    let value: u32 = busctl.trim().strip_prefix("u ")?.trim().parse().ok()?;
    Some(matches!(value, 1 | 3))
}

/// A daily window of local time, `HH:MM-HH:MM`; one that ends before it starts runs past
/// midnight (`22:00-06:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Minutes after midnight.
    start: u16,
    end: u16,
}

impl std::str::FromStr for Window {
    type Err = String;
    fn from_str(text: &str) -> Result<Window, String> {
        let hint = || {
            format!("{text:?} is not a window: write \"HH:MM-HH:MM\" in local time, e.g. \"01:00-05:00\" (or \"22:00-06:00\" across midnight)")
        };
        let (a, b) = text.trim().split_once('-').ok_or_else(hint)?;
        let minutes = |s: &str| -> Option<u16> {
            let (h, m) = s.trim().split_once(':')?;
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            (h < 24 && m < 60).then_some(h * 60 + m)
        };
        let (start, end) = (minutes(a).ok_or_else(hint)?, minutes(b).ok_or_else(hint)?);
        if start == end {
            return Err(format!(
                "{text:?}: the window is empty (it starts where it ends)"
            ));
        }
        Ok(Window { start, end })
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
        write!(f, "{}-{}", hm(self.start), hm(self.end))
    }
}

impl Window {
    /// Whether `minute` (after local midnight) is inside; the end is not.
    pub fn contains(self, minute: u16) -> bool {
        if self.start < self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        }
    }

    /// Minutes from `minute` until the window opens (0 inside it).
    pub fn opens_in(self, minute: u16) -> u16 {
        if self.contains(minute) {
            0
        } else {
            (self.start + 24 * 60 - minute) % (24 * 60)
        }
    }
}

/// The minute of the local day at `now`, with the device's offset from UTC (UTC when it is
/// not known).
pub fn local_minute(now: time::OffsetDateTime, utc_offset_secs: Option<i32>) -> u16 {
    let offset = time::UtcOffset::from_whole_seconds(utc_offset_secs.unwrap_or(0))
        .unwrap_or(time::UtcOffset::UTC);
    let local = now.to_offset(offset);
    u16::from(local.hour()) * 60 + u16::from(local.minute())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pace_keeps_the_average_under_the_cap() {
        let r = Rate(100_000);
        // 50 kB after 0.2 s at 100 kB/s: 0.3 s early.
        assert_eq!(
            pause(r, 50_000, Duration::from_millis(200)),
            Duration::from_millis(300)
        );
        // Behind the pace already: no pause.
        assert_eq!(pause(r, 50_000, Duration::from_secs(1)), Duration::ZERO);
        // Every pause stays short.
        assert_eq!(read_size(Rate(204_800), 128 * 1024), 20_480);
        assert_eq!(read_size(Rate(100), 128 * 1024), 1024);
        assert_eq!(read_size(Rate(1 << 30), 128 * 1024), 128 * 1024);
    }

    #[test]
    fn windows_hold_their_minutes_and_may_cross_midnight() {
        let night: Window = "01:00-05:00".parse().unwrap();
        assert!(night.contains(60) && night.contains(4 * 60 + 59));
        assert!(!night.contains(5 * 60) && !night.contains(0));
        assert_eq!(night.opens_in(23 * 60), 120);
        assert_eq!(night.opens_in(2 * 60), 0);
        let across: Window = "22:00-06:00".parse().unwrap();
        assert!(across.contains(23 * 60) && across.contains(0) && across.contains(5 * 60));
        assert!(!across.contains(12 * 60));
        assert_eq!(across.to_string(), "22:00-06:00");
        for bad in ["1-5", "25:00-01:00", "01:00-01:00", "01:00", "01:60-02:00"] {
            assert!(bad.parse::<Window>().is_err(), "{bad}");
        }
    }

    #[test]
    fn metered_is_read_from_the_config_and_networkmanager() {
        assert_eq!(
            Metered::from_toml(&toml::Value::Boolean(true)),
            Ok(Metered::Fixed(true))
        );
        assert_eq!(
            Metered::from_toml(&toml::Value::String("auto".into())),
            Ok(Metered::Auto)
        );
        assert!(Metered::from_toml(&toml::Value::String("yes".into())).is_err());
        assert_eq!(networkmanager_metered("u 1\n"), Some(true));
        assert_eq!(networkmanager_metered("u 3"), Some(true));
        assert_eq!(networkmanager_metered("u 4"), Some(false));
        assert_eq!(networkmanager_metered("u 0"), Some(false));
        assert_eq!(networkmanager_metered("Failed to get property"), None);
    }

    #[test]
    fn the_local_minute_uses_the_devices_offset() {
        let noon = time::macros::datetime!(2026-12-06 12:30 UTC);
        assert_eq!(local_minute(noon, None), 12 * 60 + 30);
        assert_eq!(local_minute(noon, Some(3600)), 13 * 60 + 30);
        assert_eq!(local_minute(noon, Some(-13 * 3600)), 23 * 60 + 30);
    }
}
