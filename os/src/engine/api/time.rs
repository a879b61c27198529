//! Times as Docker shows them: RFC 3339 in inspect (`0001-01-01T00:00:00Z` for never), and
//! human durations in `ps` (`Up 3 minutes`, `Exited (0) 2 seconds ago`). No date crate: a
//! days-to-civil conversion is a dozen lines.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Docker's "zero time".
pub const ZERO: &str = "0001-01-01T00:00:00Z";

/// `2026-11-29T11:42:07.123456789Z`; [`ZERO`] for `None`.
pub fn rfc3339(t: Option<SystemTime>) -> String {
    let Some(d) = t.and_then(|t| t.duration_since(UNIX_EPOCH).ok()) else {
        return ZERO.to_string();
    };
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// Unix seconds of `t` (0 for `None` or before the epoch).
pub fn unix(t: Option<SystemTime>) -> i64 {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64)
}

/// Unix seconds of an RFC 3339 time (`2026-11-29T11:42:07.5Z`, `…+01:00`), as image configs
/// carry them; None if it does not parse.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if s.get(4..5)? != "-" || !matches!(s.get(10..11)?, "T" | "t" | " ") {
        return None;
    }
    let rest = s.get(19..)?;
    let zone = rest.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    let offset = match zone {
        "Z" | "z" => 0,
        z if z.len() == 6 && (z.starts_with('+') || z.starts_with('-')) => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let oh: i64 = z.get(1..3)?.parse().ok()?;
            let om: i64 = z.get(4..6)?.parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

/// Howard Hinnant's `days_from_civil`: (year, month, day) to days since 1970-01-01.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Docker's `units.HumanDuration`: `Less than a second`, `5 seconds`, `About a minute`, …
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "Less than a second".into(),
        1..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".into(),
        120..=3599 => format!("{} minutes", s / 60),
        3600..=7199 => "About an hour".into(),
        7200..=172_799 => format!("{} hours", s / 3600),
        172_800..=1_209_599 => format!("{} days", s / 86_400),
        _ => format!("{} weeks", s / 604_800),
    }
}

/// How long ago `t` was (zero if in the future or unknown).
pub fn since(t: Option<SystemTime>) -> Duration {
    t.and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_dates() {
        let t = UNIX_EPOCH + Duration::new(1_764_416_527, 5);
        assert_eq!(rfc3339(Some(t)), "2025-11-29T11:42:07.000000005Z");
        assert_eq!(rfc3339(Some(UNIX_EPOCH)), "1970-01-01T00:00:00.000000000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert!(rfc3339(Some(leap)).starts_with("2000-02-29T00:00:00"));
        assert_eq!(rfc3339(None), ZERO);
    }

    #[test]
    fn rfc3339_parses_back() {
        assert_eq!(parse_rfc3339("2025-11-29T11:42:07Z"), Some(1_764_416_527));
        assert_eq!(
            parse_rfc3339("2025-11-29T11:42:07.123456Z"),
            Some(1_764_416_527)
        );
        assert_eq!(
            parse_rfc3339("2025-11-29T12:42:07+01:00"),
            Some(1_764_416_527)
        );
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2000-03-01T00:00:00Z"), Some(951_868_800));
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("2025-11-29T11:42:07"), None);
    }

    #[test]
    fn durations_read_like_dockers() {
        assert_eq!(human(Duration::from_millis(300)), "Less than a second");
        assert_eq!(human(Duration::from_secs(5)), "5 seconds");
        assert_eq!(human(Duration::from_secs(90)), "About a minute");
        assert_eq!(human(Duration::from_secs(600)), "10 minutes");
        assert_eq!(human(Duration::from_secs(3 * 3600)), "3 hours");
    }
}
