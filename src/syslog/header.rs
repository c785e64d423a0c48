//! The RFC 3164 header (4.1.2): `<PRI>Mmm dd hh:mm:ss HOSTNAME TAG: `.
//!
//! Written here rather than with the `syslog` crate's `Formatter3164`: that one pads the day
//! with a zero (`Dec 01`) where the RFC wants a space (`Dec  1`), and on Unix always stamps
//! UTC, while receivers (and IOS's `service timestamps log datetime localtime`) expect the
//! sender's local time. The local time comes from `localtime_r(3)` (the TZ variable, else
//! /etc/localtime), so no time zone database is needed here.

use std::fmt::Write as _;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The broken-down time of `unix` seconds: (month 0-11, day, hour, minute, second).
fn broken_down(unix: i64, utc: bool) -> (usize, u32, u32, u32, u32) {
    // SAFETY: tm is plain data; the _r variants write only into it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let t = unix as libc::time_t;
    let ok = unsafe {
        if utc {
            !libc::gmtime_r(&t, &mut tm).is_null()
        } else {
            !libc::localtime_r(&t, &mut tm).is_null()
        }
    };
    if !ok {
        return (0, 1, 0, 0, 0);
    }
    (
        tm.tm_mon.clamp(0, 11) as usize,
        tm.tm_mday as u32,
        tm.tm_hour as u32,
        tm.tm_min as u32,
        tm.tm_sec as u32,
    )
}

/// `Mmm dd hh:mm:ss`, the day padded with a space (RFC 3164 4.1.2).
pub fn timestamp(unix: i64, utc: bool) -> String {
    let (mon, day, h, m, s) = broken_down(unix, utc);
    format!("{} {day:>2} {h:02}:{m:02}:{s:02}", MONTHS[mon])
}

/// This host's name, for the HOSTNAME field (the local syslog daemon adds its own).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match (rc, std::str::from_utf8(&buf[..end])) {
        (0, Ok(h)) if !h.is_empty() => h.to_string(),
        _ => "localhost".into(),
    }
}

/// One message: `<PRI>TIMESTAMP [HOSTNAME ]TAG: TEXT`.
pub fn format(
    facility: u8,
    severity: u8,
    unix: i64,
    utc: bool,
    hostname: Option<&str>,
    tag: &str,
    text: &str,
) -> Vec<u8> {
    let mut out = String::with_capacity(64 + text.len());
    let _ = write!(
        out,
        "<{}>{} ",
        u32::from(facility) * 8 + u32::from(severity),
        timestamp(unix, utc)
    );
    if let Some(h) = hostname {
        out.push_str(h);
        out.push(' ');
    }
    let _ = write!(out, "{tag}: {text}");
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_day_is_padded_with_a_space_as_rfc_3164_says() {
        // 2026-12-01 07:12:01 UTC.
        let t = 1_796_109_121;
        assert_eq!(timestamp(t, true), "Dec  1 07:12:01");
        // 2026-11-30 07:12:01 UTC: two digits, no padding.
        assert_eq!(timestamp(t - 86_400, true), "Nov 30 07:12:01");
        let line = format(
            23,
            5,
            t,
            true,
            Some("gw1"),
            "vpnd[812]",
            "%CRYPTO-5-SESSION_STATUS: x",
        );
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "<189>Dec  1 07:12:01 gw1 vpnd[812]: %CRYPTO-5-SESSION_STATUS: x"
        );
    }

    #[test]
    fn local_time_follows_the_zone() {
        // In a test process TZ can't be changed safely (other threads read it); compare
        // with what the C library says the offset is.
        let t = 1_796_109_121;
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        let tt = t as libc::time_t;
        unsafe { libc::localtime_r(&tt, &mut tm) };
        let shifted = t + tm.tm_gmtoff;
        assert_eq!(timestamp(t, false), timestamp(shifted, true));
    }
}
