//! How revisions and times are shown to people, the same in the CLI, the dashboard and
//! notifications.

/// A commit id's first 12 characters; a folder's revision (`dir:HASH`) whole. Cleaned for
/// terminals: a revision may come from labels anyone could have set.
pub fn short_revision(rev: &str) -> String {
    let short: String = if rev.starts_with("dir:") { rev.to_string() } else { rev.chars().take(12).collect() };
    crate::terminal::clean_line(&short).into_owned()
}

/// `2026-11-23 19:27:21` (UTC) from seconds since the epoch, without a calendar crate (civil
/// from days, Howard Hinnant's algorithm).
pub fn utc(unix: f64) -> String {
    let secs = unix.max(0.0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Now, in seconds since the Unix epoch.
pub fn now_unix() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// RFC 3339 in UTC: `2026-11-23T19:27:21Z`.
pub fn rfc3339(unix: f64) -> String {
    utc(unix).replace(' ', "T") + "Z"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_revisions_read_as_people_say_them() {
        assert_eq!(utc(0.0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_795_545_341.0), "2026-11-24 18:35:41");
        assert_eq!(rfc3339(1_795_545_341.0), "2026-11-24T18:35:41Z");
        assert_eq!(short_revision(&"a".repeat(40)), "a".repeat(12));
        assert_eq!(short_revision("dir:0123456789abcdef"), "dir:0123456789abcdef");
    }
}
