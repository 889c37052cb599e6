//! `LIST`, `WALK` and `STAT` output for people: one aligned row per entry with its kind, size
//! in bytes, modification time (UTC, to the minute) and name; folders end
//! in `/`.

use crate::protocol::{Entry, EntryKind};
use std::fmt::Write;

/// Renders a listing as a table with a header, or a note when it is empty.
pub fn render(entries: &[Entry]) -> String {
    if entries.is_empty() {
        return "(empty folder)\n".to_string();
    }
    let mut out = rows(entries);
    let files = entries.iter().filter(|e| e.kind == EntryKind::File).count();
    let dirs = entries.len() - files;
    let _ = writeln!(
        out,
        "{} file{}, {} folder{}",
        files,
        if files == 1 { "" } else { "s" },
        dirs,
        if dirs == 1 { "" } else { "s" }
    );
    out
}

/// The header and one aligned row per entry (`STAT` shows one).
pub fn rows(entries: &[Entry]) -> String {
    let sizes: Vec<String> = entries
        .iter()
        .map(|e| match e.kind {
            EntryKind::File => e.size.to_string(),
            EntryKind::Dir => "-".to_string(),
        })
        .collect();
    let width = sizes.iter().map(String::len).max().unwrap_or(0).max(4);
    let mut out = format!("kind  {:>width$}  modified (UTC)    name\n", "size");
    for (entry, size) in entries.iter().zip(&sizes) {
        let (kind, slash) = match entry.kind {
            EntryKind::File => ("file", ""),
            EntryKind::Dir => ("dir ", "/"),
        };
        let _ = writeln!(
            out,
            "{kind}  {size:>width$}  {}  {}{slash}",
            utc_minute(entry.mtime),
            entry.name
        );
    }
    out
}

/// `YYYY-MM-DD HH:MM` in UTC for seconds since the Unix epoch.
pub fn utc_minute(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let minutes = (secs % 86_400) / 60;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        minutes / 60,
        minutes % 60
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: EntryKind, size: u64, mtime: u64, name: &str) -> Entry {
        Entry {
            kind,
            size,
            mtime,
            name: name.to_string(),
        }
    }

    #[test]
    fn dates_are_utc_to_the_minute() {
        assert_eq!(utc_minute(0), "1970-01-01 00:00");
        assert_eq!(utc_minute(951_782_400), "2000-02-29 00:00");
        assert_eq!(utc_minute(1_700_000_000), "2023-11-14 22:13");
        assert_eq!(utc_minute(4_102_444_799), "2099-12-31 23:59");
    }

    #[test]
    fn rows_align_and_folders_end_in_a_slash() {
        let table = render(&[
            entry(EntryKind::Dir, 0, 1_700_000_000, "docs"),
            entry(EntryKind::File, 1_234_567, 0, "big, file.bin"),
            entry(EntryKind::File, 5, 1_700_000_000, "a"),
        ]);
        assert_eq!(
            table,
            "kind     size  modified (UTC)    name\n\
             dir         -  2023-11-14 22:13  docs/\n\
             file  1234567  1970-01-01 00:00  big, file.bin\n\
             file        5  2023-11-14 22:13  a\n\
             2 files, 1 folder\n"
        );
    }

    #[test]
    fn an_empty_listing_says_so() {
        assert_eq!(render(&[]), "(empty folder)\n");
    }
}
