//! Signature times: calendar conversion for presentation and messages,
//! and RFC 1982 serial arithmetic for the validity window.

/// Seconds since the epoch at 00:00 UTC of `year-month-day` (proleptic
/// Gregorian; the days-from-civil algorithm of H. Hinnant).
pub(crate) fn unix_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) * 86_400
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) for an error message.
pub(crate) fn format_utc(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// Where `now` stands against a signature's window, comparing 32-bit
/// serials as RFC 4034 §3.1.5 requires (RFC 1982: the field wraps in
/// 2106, and "before"/"after" mean within 2^31 seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Window {
    /// Inception ≤ now ≤ expiration.
    Inside,
    /// now < inception.
    NotYet,
    /// now > expiration.
    Expired,
}

/// Checks `now_s` against `[inception, expiration]` in serial arithmetic.
pub(crate) fn window(inception: u32, expiration: u32, now_s: u64) -> Window {
    let now = now_s as u32; // mod 2^32, as on the wire
    if (now.wrapping_sub(inception) as i32) < 0 {
        Window::NotYet
    } else if (expiration.wrapping_sub(now) as i32) < 0 {
        Window::Expired
    } else {
        Window::Inside
    }
}

/// The unix time a 32-bit serial stands for, taken as the one nearest to
/// `now_s` (for messages).
pub(crate) fn serial_to_unix(serial: u32, now_s: u64) -> i64 {
    let now = now_s as i64;
    now + i64::from(serial.wrapping_sub(now_s as u32) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        assert_eq!(unix_from_civil(1970, 1, 1), 0);
        assert_eq!(unix_from_civil(2024, 1, 1), 1_704_067_200);
        assert_eq!(format_utc(1_704_067_200), "2024-01-01 00:00:00");
        assert_eq!(format_utc(2_082_758_400 + 3661), "2036-01-01 01:01:01");
    }

    #[test]
    fn window_uses_serial_arithmetic() {
        assert_eq!(window(100, 200, 150), Window::Inside);
        assert_eq!(window(100, 200, 99), Window::NotYet);
        assert_eq!(window(100, 200, 201), Window::Expired);
        // A window spanning the 2106 wrap of the 32-bit field.
        let now = (1u64 << 32) + 10;
        assert_eq!(window(u32::MAX - 100, 1000, now), Window::Inside);
        assert_eq!(serial_to_unix(1000, now), (1i64 << 32) + 1000);
    }
}
