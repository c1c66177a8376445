//! A transfer rate as people write it in config files (`"200KiB/s"`), shared by the agent's
//! `max_download_rate` and the server's egress caps.

use std::fmt;

/// A rate in bytes per second, written as `NUMBER[UNIT][/s]`: `B`, `KB` (1000), `KiB`
/// (1024), `MB`, `MiB`, `GB`, `GiB`; no unit means bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate(pub u64);

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(text: &str) -> Result<Rate, String> {
        let hint = || {
            format!("{text:?} is not a rate: write e.g. \"200KiB/s\", \"1MB/s\" or \"50000\" (bytes per second)")
        };
        let t = text.trim();
        let t = t.strip_suffix("/s").unwrap_or(t).trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let number: u64 = number.parse().map_err(|_| hint())?;
        let scale: u64 = match unit.trim() {
            "" | "B" => 1,
            "KB" | "kB" => 1_000,
            "KiB" => 1 << 10,
            "MB" => 1_000_000,
            "MiB" => 1 << 20,
            "GB" => 1_000_000_000,
            "GiB" => 1 << 30,
            _ => return Err(hint()),
        };
        match number.checked_mul(scale) {
            Some(0) | None => Err(format!("{text:?}: a rate is at least 1 byte per second")),
            Some(r) => Ok(Rate(r)),
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes/s", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_read_with_their_units() {
        assert_eq!("200KiB/s".parse(), Ok(Rate(204_800)));
        assert_eq!("1MB/s".parse(), Ok(Rate(1_000_000)));
        assert_eq!("2 MiB".parse(), Ok(Rate(2 << 20)));
        assert_eq!("50000".parse(), Ok(Rate(50_000)));
        assert!("0KiB/s".parse::<Rate>().is_err());
        assert!("fast".parse::<Rate>().unwrap_err().contains("200KiB/s"));
        assert!("10 furlongs/s".parse::<Rate>().is_err());
    }
}
