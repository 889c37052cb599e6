//! Script helpers that work on values alone and touch no file: sizes for
//! people (`human_size`, `parse_size`, by [`crate::units`]), path text
//! (`basename`, `dirname`, `join_path`, for local paths and remote names
//! alike, `/` between parts) and `glob_match`.

use super::Registry;
use super::report::{BAD_ARGUMENT, throw};
use crate::units;
use rhai::{Array, EvalAltResult, INT};

type Fallible<T> = Result<T, Box<EvalAltResult>>;

/// Registers the helpers of this module.
pub(crate) fn register(reg: &mut Registry<'_>) {
    reg.func("human_size", human_size);
    reg.func("parse_size", |text: &str| {
        let bytes =
            units::parse_size(text).map_err(|e| throw(BAD_ARGUMENT, format!("parse_size: {e}")))?;
        INT::try_from(bytes).map_err(|_| {
            throw(
                BAD_ARGUMENT,
                format!("parse_size: `{text}` is more bytes than a script integer holds"),
            )
        })
    });
    reg.func("basename", |path: &str| basename(path).to_string());
    reg.func("dirname", |path: &str| dirname(path).to_string());
    reg.func("join_path", |a: &str, b: &str| join_path(&[a, b]));
    reg.func("join_path", |a: &str, b: &str, c: &str| {
        join_path(&[a, b, c])
    });
    reg.func("join_path", |a: &str, b: &str, c: &str, d: &str| {
        join_path(&[a, b, c, d])
    });
    reg.func("join_path", join_array);
    reg.func("glob_match", glob_match);
}

fn human_size(bytes: INT) -> Fallible<String> {
    let bytes = u64::try_from(bytes).map_err(|_| {
        throw(
            BAD_ARGUMENT,
            format!("human_size: {bytes} is not a number of bytes (0 or more)"),
        )
    })?;
    Ok(units::human_size(bytes))
}

/// The last part of `path`, trailing `/`s ignored, as the shell's
/// `basename` gives it: `a/b/` → `b`, `/` → `/`, `` → ``.
fn basename(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return if path.is_empty() { "" } else { "/" };
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed)
}

/// All but the last part of `path`, as the shell's `dirname` gives it:
/// `a/b.txt` → `a`, `b.txt` → `.`, `/b` → `/`, `a//b/` → `a`.
fn dirname(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return if path.is_empty() { "." } else { "/" };
    }
    match trimmed.rsplit_once('/') {
        None => ".",
        Some((dir, _)) => match dir.trim_end_matches('/') {
            "" => "/",
            dir => dir,
        },
    }
}

/// `parts` joined with one `/` between them; empty parts are skipped, and
/// a part's leading `/` does not throw away the parts before it (so a name
/// from a listing cannot escape the folder it is joined to).
fn join_path(parts: &[&str]) -> String {
    let mut joined = String::new();
    for part in parts.iter().filter(|p| !p.is_empty()) {
        if joined.is_empty() {
            joined.push_str(part);
            continue;
        }
        let part = part.trim_start_matches('/');
        if !joined.ends_with('/') && !part.is_empty() {
            joined.push('/');
        }
        joined.push_str(part);
    }
    joined
}

/// `join_path(parts)`: the parts of an array, all strings.
fn join_array(parts: Array) -> Fallible<String> {
    let parts: Vec<String> = parts
        .into_iter()
        .enumerate()
        .map(|(i, part)| {
            part.into_string().map_err(|kind| {
                throw(
                    BAD_ARGUMENT,
                    format!("join_path: part {i} is {kind}, not a string"),
                )
            })
        })
        .collect::<Result<_, _>>()?;
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    Ok(join_path(&parts))
}

/// Whether `name` matches the glob `pattern`: `*` and `?` never match a
/// `/`, `**` matches across parts, `[…]` a set, `{a,b}` alternatives;
/// case matters.
fn glob_match(pattern: &str, name: &str) -> Fallible<bool> {
    let glob = globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| {
            let why = e.kind().to_string();
            throw(
                BAD_ARGUMENT,
                format!("glob_match: `{pattern}` is not a glob pattern: {why}"),
            )
        })?;
    Ok(glob.compile_matcher().is_match(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basename_and_dirname_read_paths_as_the_shell_does() {
        for (path, base, dir) in [
            ("a/b.txt", "b.txt", "a"),
            ("b.txt", "b.txt", "."),
            ("a/b/", "b", "a"),
            ("a//b", "b", "a"),
            ("/b", "b", "/"),
            ("/", "/", "/"),
            ("", "", "."),
            ("/tmp/x/y.tar.gz", "y.tar.gz", "/tmp/x"),
            ("docs/a,b.txt", "a,b.txt", "docs"),
        ] {
            assert_eq!(basename(path), base, "basename {path:?}");
            assert_eq!(dirname(path), dir, "dirname {path:?}");
        }
    }

    #[test]
    fn join_path_puts_one_slash_between_parts() {
        assert_eq!(join_path(&["out", "a.txt"]), "out/a.txt");
        assert_eq!(join_path(&["out/", "a.txt"]), "out/a.txt");
        assert_eq!(join_path(&["out", "/a.txt"]), "out/a.txt");
        assert_eq!(join_path(&["out", "", "b", "c.txt"]), "out/b/c.txt");
        assert_eq!(join_path(&["/", "etc"]), "/etc");
        assert_eq!(join_path(&["", "a"]), "a");
        assert_eq!(join_path(&["a", "b/"]), "a/b/");
        assert_eq!(join_path(&[]), "");
    }

    #[test]
    fn globs_keep_stars_within_one_part() {
        for (pattern, name, matches) in [
            ("*.csv", "a.csv", true),
            ("*.csv", "docs/a.csv", false),
            ("**/*.csv", "docs/a.csv", true),
            ("**/*.csv", "a.csv", true),
            ("docs/*", "docs/a.csv", true),
            ("docs/*", "docs/sub/a.csv", false),
            ("docs/**", "docs/sub/a.csv", true),
            ("report-??.pdf", "report-07.pdf", true),
            ("report-??.pdf", "report-7.pdf", false),
            ("[ab]*.txt", "b1.txt", true),
            ("[!ab]*.txt", "b1.txt", false),
            ("*.{jpg,png}", "x.png", true),
            ("*.CSV", "a.csv", false),
            ("\\*.txt", "*.txt", true),
            ("\\*.txt", "a.txt", false),
        ] {
            assert_eq!(
                glob_match(pattern, name).unwrap(),
                matches,
                "{pattern} {name}"
            );
        }
    }

    #[test]
    fn a_bad_glob_is_refused() {
        for pattern in ["[a", "{a,b", "a\\"] {
            assert!(glob_match(pattern, "a").is_err(), "{pattern}");
        }
    }
}
