//! Time in scripts, by the `jiff` crate: `now()` in whole seconds since
//! 1970 (the unit of listings' `mtime` and `file_info`), and seconds ↔ text
//! with `format_time` and `parse_time`: ISO 8601 by default, or a
//! strftime-like pattern (`%Y-%m-%d %H:%M`), in UTC, the machine's zone
//! (`"local"`, which honours `TZ`) or a named zone (`"Europe/Paris"`).

use super::Registry;
use super::report::{BAD_ARGUMENT, throw};
use crate::error::ErrorKind;
use jiff::fmt::strtime;
use jiff::tz::TimeZone;
use jiff::{Timestamp, civil};
use rhai::{EvalAltResult, INT};

type Fallible<T> = Result<T, Box<EvalAltResult>>;

/// The ISO 8601 form `format_time` writes in UTC.
const ISO_UTC: &str = "%Y-%m-%dT%H:%M:%SZ";
/// The ISO 8601 form `format_time` writes in other zones (with the offset).
const ISO_OFFSET: &str = "%Y-%m-%dT%H:%M:%S%:z";

/// Registers `now`, `format_time` and `parse_time`.
pub(crate) fn register(reg: &mut Registry<'_>) {
    reg.func("now", || Timestamp::now().as_second());
    reg.func("format_time", |seconds: INT| {
        format_time(seconds, "", "utc")
    });
    reg.func("format_time", |seconds: INT, pattern: &str| {
        format_time(seconds, pattern, "utc")
    });
    reg.func("format_time", format_time);
    reg.func("parse_time", |text: &str| parse_time(text, "", "utc"));
    reg.func("parse_time", |text: &str, pattern: &str| {
        parse_time(text, pattern, "utc")
    });
    reg.func("parse_time", parse_time);
}

/// The zone named `"utc"`, `"local"` (the machine's) or as in the tz
/// database; `op` names the call in errors.
fn zone(op: &str, name: &str) -> Fallible<TimeZone> {
    match name {
        "utc" | "UTC" => Ok(TimeZone::UTC),
        "local" => TimeZone::try_system().map_err(|e| {
            throw(
                ErrorKind::LocalIo.as_str(),
                format!("{op}: cannot tell this machine's time zone: {e}; set TZ"),
            )
        }),
        _ => TimeZone::get(name).map_err(|_| {
            throw(
                BAD_ARGUMENT,
                format!(
                    "{op}: unknown time zone `{name}`; give \"utc\", \"local\" or a name \
                     such as \"Europe/Paris\""
                ),
            )
        }),
    }
}

/// `seconds` since 1970 as text in `zone`: ISO 8601 when `pattern` is
/// empty (`2026-11-29T18:30:00Z` in UTC, `…+01:00` elsewhere).
fn format_time(seconds: INT, pattern: &str, zone_name: &str) -> Fallible<String> {
    let op = "format_time";
    let tz = zone(op, zone_name)?;
    let time = Timestamp::from_second(seconds).map_err(|_| {
        throw(
            BAD_ARGUMENT,
            format!("{op}: {seconds} seconds is outside the years -9999 to 9999"),
        )
    })?;
    let pattern = match pattern {
        "" if tz == TimeZone::UTC => ISO_UTC,
        "" => ISO_OFFSET,
        pattern => pattern,
    };
    strtime::format(pattern, &time.to_zoned_datetime(tz)).map_err(|e| {
        throw(
            BAD_ARGUMENT,
            format!("{op}: cannot format with `{pattern}`: {e}"),
        )
    })
}

/// `text` as seconds since 1970. With an empty `pattern`, `text` is ISO
/// 8601: a date, a date and time (`T` or a space between), with an offset
/// (`Z`, `+01:00`) or without one; with a pattern, as the pattern says. A
/// time without an offset is one in `zone`; a date without a time is
/// midnight.
fn parse_time(text: &str, pattern: &str, zone_name: &str) -> Fallible<INT> {
    let op = "parse_time";
    let tz = zone(op, zone_name)?;
    let bad = |e: jiff::Error| {
        let expected = if pattern.is_empty() {
            "an ISO 8601 date and time such as 2026-11-29T18:30:00Z".to_string()
        } else {
            format!("a time as `{pattern}`")
        };
        throw(
            BAD_ARGUMENT,
            format!("{op}: `{text}` is not {expected}: {e}"),
        )
    };
    let time = if pattern.is_empty() {
        match text.trim().parse::<Timestamp>() {
            Ok(time) => time,
            Err(_) => text
                .trim()
                .parse::<civil::DateTime>()
                .and_then(|dt| dt.to_zoned_datetime(tz))
                .map_err(bad)?
                .timestamp(),
        }
    } else {
        let parsed = strtime::parse(pattern, text).map_err(bad)?;
        if parsed.offset().is_some() {
            parsed.to_timestamp().map_err(bad)?
        } else {
            let mut parsed = parsed;
            // a pattern without a time of day means midnight
            if parsed.hour().is_none() {
                parsed.set_hour(Some(0)).map_err(bad)?;
            }
            parsed
                .to_datetime()
                .and_then(|dt| dt.to_zoned_datetime(tz))
                .map_err(bad)?
                .timestamp()
        }
    };
    Ok(time.as_second())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-29T18:30:05Z.
    const T: INT = 1_795_977_005;

    fn message(err: Box<EvalAltResult>) -> String {
        err.to_string()
    }

    #[test]
    fn utc_times_format_as_iso_8601_or_a_pattern() {
        assert_eq!(format_time(T, "", "utc").unwrap(), "2026-11-29T18:30:05Z");
        assert_eq!(format_time(0, "", "UTC").unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_time(T, "%Y%m%d-%H%M", "utc").unwrap(),
            "20261129-1830"
        );
        assert_eq!(
            format_time(T, "%a %d %b %Y", "utc").unwrap(),
            "Sun 29 Nov 2026"
        );
        assert_eq!(format_time(-1, "", "utc").unwrap(), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn named_zones_format_with_their_offset() {
        assert_eq!(
            format_time(T, "", "Europe/Paris").unwrap(),
            "2026-11-29T19:30:05+01:00"
        );
        assert_eq!(
            format_time(T, "%H:%M %Z", "America/New_York").unwrap(),
            "13:30 EST"
        );
    }

    #[test]
    fn iso_text_parses_with_and_without_an_offset() {
        for text in [
            "2026-11-29T18:30:05Z",
            "2026-11-29T19:30:05+01:00",
            "2026-11-29T18:30:05",
            "2026-11-29 18:30:05",
            " 2026-11-29T18:30:05Z\n",
        ] {
            assert_eq!(parse_time(text, "", "utc").unwrap(), T, "{text:?}");
        }
        assert_eq!(
            parse_time("2026-11-29T19:30:05", "", "Europe/Paris").unwrap(),
            T
        );
        assert_eq!(
            parse_time("2026-11-29", "", "utc").unwrap(),
            T - (18 * 3600 + 30 * 60 + 5)
        );
    }

    #[test]
    fn patterns_parse_in_the_zone_given_unless_the_text_has_an_offset() {
        assert_eq!(
            parse_time("29/11/2026 18:30:05", "%d/%m/%Y %H:%M:%S", "utc").unwrap(),
            T
        );
        assert_eq!(
            parse_time("29/11/2026 19:30:05", "%d/%m/%Y %H:%M:%S", "Europe/Paris").unwrap(),
            T
        );
        assert_eq!(
            parse_time("29/11/2026 13:30:05 -0500", "%d/%m/%Y %H:%M:%S %z", "utc").unwrap(),
            T
        );
        assert_eq!(
            parse_time("2026-11-29", "%Y-%m-%d", "utc").unwrap(),
            T - (18 * 3600 + 30 * 60 + 5)
        );
    }

    #[test]
    fn formatting_and_parsing_give_back_the_same_second() {
        for zone in ["utc", "Europe/Paris", "Asia/Kolkata"] {
            for t in [0, T, -86_400 * 365, 4_102_444_800] {
                let text = format_time(t, "", zone).unwrap();
                assert_eq!(parse_time(&text, "", "utc").unwrap(), t, "{text}");
            }
        }
    }

    #[test]
    fn bad_text_zones_and_times_say_what_was_expected() {
        let e = message(parse_time("yesterday", "", "utc").unwrap_err());
        assert!(
            e.contains(
                "parse_time: `yesterday` is not an ISO 8601 date and time such as \
                 2026-11-29T18:30:00Z"
            ),
            "{e}"
        );
        let e = message(parse_time("2026", "%d/%m/%Y", "utc").unwrap_err());
        assert!(e.contains("`2026` is not a time as `%d/%m/%Y`"), "{e}");
        let e = message(format_time(T, "", "Mars/Olympus").unwrap_err());
        assert!(e.contains("unknown time zone `Mars/Olympus`"), "{e}");
        let e = message(format_time(INT::MAX, "", "utc").unwrap_err());
        assert!(e.contains("outside the years -9999 to 9999"), "{e}");
    }
}
