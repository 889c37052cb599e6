//! Sizes as people write them: `10M`, `1.5 GiB`, `512` ↔ byte counts, for
//! `ioe serve --max-size` and the scripts' `parse_size` and `human_size`.
//! Every unit is a power of 1024 (`K`, `KB` and `KiB` all mean 1024 bytes),
//! so `parse_size(human_size(n))` gives back about `n`.

use std::fmt;

/// The unit letters after `B`, each 1024 times the one before.
const PREFIXES: [char; 6] = ['K', 'M', 'G', 'T', 'P', 'E'];

/// Why a size could not be read; its text says what a size looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeError(String);

impl fmt::Display for SizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SizeError {}

/// Reads a size: a whole or decimal number of bytes, optionally followed
/// (spaces allowed) by a unit `B`, `K`, `M`, `G`, `T`, `P` or `E`, each
/// optionally followed by `B` or `iB`, in any case. Fractions of a byte are
/// dropped (`1.5K` is 1536, `0.1K` is 102).
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let bad = |why: &str| {
        SizeError(format!(
            "`{text}` is not a size{why}: write a number of bytes, optionally with a \
             unit K, M, G or T (powers of 1024), such as 512, 10M or 1.5G"
        ))
    };
    let trimmed = text.trim();
    let number_end = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(number_end);
    let multiplier = unit_multiplier(unit.trim_start()).ok_or_else(|| bad(""))?;
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty() || !digits(whole) || !digits(fraction) {
        return Err(bad(""));
    }
    let too_big = || bad(&format!(" that fits in {} bytes", u64::MAX));
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_big())?
    };
    // at most 19 fraction digits matter below one exbibyte
    let fraction = &fraction[..fraction.len().min(19)];
    let scale = 10u128.pow(fraction.len() as u32);
    let fraction: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().map_err(|_| bad(""))?
    };
    let bytes = whole
        .checked_mul(multiplier)
        .and_then(|n| n.checked_add(fraction * multiplier / scale))
        .ok_or_else(too_big)?;
    u64::try_from(bytes).map_err(|_| too_big())
}

/// The number of bytes a unit stands for; `None` for an unknown unit.
fn unit_multiplier(unit: &str) -> Option<u128> {
    let upper = unit.to_ascii_uppercase();
    if upper.is_empty() || upper == "B" {
        return Some(1);
    }
    let mut chars = upper.chars();
    let prefix = chars.next()?;
    let power = PREFIXES.iter().position(|&p| p == prefix)? + 1;
    match chars.as_str() {
        "" | "B" | "IB" => Some(1024u128.pow(power as u32)),
        _ => None,
    }
}

/// A byte count for people: `512 B`, `1.5 KiB`, `10 MiB`, `3.2 GiB` (one
/// decimal, dropped when it is 0; the value is rounded down so `1023 KiB`
/// and a bit is never shown as `1024 KiB`).
pub fn human_size(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut unit = 0;
    let mut scale: u128 = 1024;
    while unit + 1 < PREFIXES.len() && u128::from(bytes) >= scale * 1024 {
        unit += 1;
        scale *= 1024;
    }
    // tenths, rounded down
    let tenths = u128::from(bytes) * 10 / scale;
    let (whole, tenth) = (tenths / 10, tenths % 10);
    let prefix = PREFIXES[unit];
    if tenth == 0 {
        format!("{whole} {prefix}iB")
    } else {
        format!("{whole}.{tenth} {prefix}iB")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_with_and_without_units() {
        for (text, bytes) in [
            ("0", 0),
            ("512", 512),
            ("512B", 512),
            ("10K", 10 * 1024),
            ("10k", 10 * 1024),
            ("10KB", 10 * 1024),
            ("10KiB", 10 * 1024),
            ("10 M", 10 << 20),
            (" 10M ", 10 << 20),
            ("1.5G", 3 << 29),
            ("1.5 GiB", 3 << 29),
            ("0.1K", 102),
            (".5K", 512),
            ("2T", 2 << 40),
            ("1P", 1 << 50),
            ("15E", 15 << 60),
            ("18446744073709551615", u64::MAX),
        ] {
            assert_eq!(parse_size(text), Ok(bytes), "{text:?}");
        }
    }

    #[test]
    fn what_is_not_a_size_says_what_one_looks_like() {
        for text in [
            "", "M", "-1", "1.2.3", "10X", "10MM", "10 Mo", "1e6", ".", "ten",
        ] {
            let err = parse_size(text).expect_err(text).to_string();
            assert!(
                err.starts_with(&format!("`{text}` is not a size: write a number of bytes")),
                "{text:?}: {err}"
            );
            assert!(err.ends_with("such as 512, 10M or 1.5G"), "{err}");
        }
        for text in [
            "16E",
            "18446744073709551616",
            "99999999999999999999999999999999999999999",
        ] {
            let err = parse_size(text).expect_err(text).to_string();
            assert!(
                err.starts_with(&format!(
                    "`{text}` is not a size that fits in 18446744073709551615 bytes"
                )),
                "{text:?}: {err}"
            );
        }
    }

    #[test]
    fn human_sizes_use_binary_units_and_one_decimal() {
        for (bytes, text) in [
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1 KiB"),
            (1536, "1.5 KiB"),
            (1024 * 1024 - 1, "1023.9 KiB"),
            (10 << 20, "10 MiB"),
            (3 << 29, "1.5 GiB"),
            (1 << 40, "1 TiB"),
            (1 << 50, "1 PiB"),
            (u64::MAX, "15.9 EiB"),
        ] {
            assert_eq!(human_size(bytes), text, "{bytes}");
        }
    }

    #[test]
    fn a_human_size_reads_back_as_about_the_same_size() {
        for bytes in [0, 1, 1023, 1024, 1536, 10 << 20, 3 << 29, 123_456_789] {
            let back = parse_size(&human_size(bytes)).unwrap();
            assert!(
                back <= bytes && bytes - back <= bytes / 10,
                "{bytes} → {back}"
            );
        }
    }
}
