//! The known-hosts file: the TLS servers a user trusts by fingerprint, one
//! line each, `host:port SHA256:<base64>` (the host lower-cased, an IPv6
//! address in brackets), with `#` comments and blank lines allowed. It lives
//! at `$IOE_KNOWN_HOSTS`, or `known_hosts` in the state folder
//! ([`crate::tls::state_dir`]). This module reads, adds and removes lines;
//! what the client does with them is [`crate::tls`]'s.

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The environment variable that names another known-hosts file.
pub const ENV: &str = "IOE_KNOWN_HOSTS";
/// The file's name in the state folder.
pub const FILE: &str = "known_hosts";
/// The largest known-hosts file read: 4 MiB (a line is under 1100 bytes).
pub const MAX_FILE: u64 = 4 * 1024 * 1024;

/// Where the known-hosts file is: `$IOE_KNOWN_HOSTS`, or `known_hosts` in
/// the state folder.
pub fn path() -> Result<PathBuf> {
    match std::env::var_os(ENV).filter(|p| !p.is_empty()) {
        Some(path) => Ok(PathBuf::from(path)),
        None => Ok(crate::tls::state_dir()
            .with_context(|| format!("no known-hosts file (set {ENV} to name one)"))?
            .join(FILE)),
    }
}

/// One trusted server: a line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    /// `host:port`, as [`key`] makes it.
    pub addr: String,
    /// `SHA256:…`.
    pub fingerprint: String,
    /// The file it was read from.
    pub file: PathBuf,
    /// Its line number (from 1).
    pub line: usize,
}

/// The key of a server in the file: `host:port` (as [`crate::addr`] makes
/// it) with the host lower-cased.
pub fn key(addr: &str) -> String {
    match addr.rsplit_once(':') {
        Some((host, port)) => format!("{}:{port}", host.to_ascii_lowercase()),
        None => addr.to_ascii_lowercase(),
    }
}

/// Whether `text` is a fingerprint as `ioe serve --tls` prints it:
/// `SHA256:` and the unpadded base64 of 32 bytes.
pub fn is_fingerprint(text: &str) -> bool {
    check_fingerprint(text).is_ok()
}

/// Base64 characters in a fingerprint after `SHA256:` (32 bytes, unpadded).
const FINGERPRINT_CHARS: usize = 43;

/// `Ok` for a fingerprint as [`is_fingerprint`] wants it; otherwise the
/// message that says what is wrong with `text` (its length, or which
/// character) and what a fingerprint is.
pub fn check_fingerprint(text: &str) -> std::result::Result<(), String> {
    let why = match text.strip_prefix("SHA256:") {
        None if text.len() >= 7 && text[..7].eq_ignore_ascii_case("SHA256:") => {
            "`SHA256:` is written in capitals".to_string()
        }
        None => "it does not start with `SHA256:`".to_string(),
        Some(b64) => match b64
            .char_indices()
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '+' || c == '/'))
        {
            Some((at, c)) => format!(
                "character {} after `SHA256:`, {c:?}, is not a base64 character \
                 (A-Z, a-z, 0-9, `+`, `/`)",
                b64[..at].chars().count() + 1
            ),
            None if b64.len() != FINGERPRINT_CHARS => format!(
                "it has {} characters after `SHA256:`, not {FINGERPRINT_CHARS}",
                b64.len()
            ),
            None if STANDARD_NO_PAD.decode(b64).is_err() => format!(
                "its last character, {:?}, cannot end one (a character is wrong)",
                b64.chars().last().unwrap_or_default()
            ),
            None => return Ok(()),
        },
    };
    Err(format!(
        "`{text}` is not a valid SHA-256 fingerprint: {why}; a fingerprint is `SHA256:` \
         and {FINGERPRINT_CHARS} base64 characters, as `ioe serve --tls` prints it"
    ))
}

/// The lines of `text` (the file `file`) that trust a server; a line that
/// is neither that, a comment nor blank is an error naming it.
pub fn parse(text: &str, file: &Path) -> Result<Vec<Known>> {
    let mut known = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| {
            anyhow::anyhow!(
                "the known-hosts file `{}` line {line_no}: {why}; each line is \
                 `host:port SHA256:…` (or a `#` comment): fix or delete that line",
                file.display()
            )
        };
        let mut words = line.split_whitespace();
        let (Some(addr), Some(fingerprint), None) = (words.next(), words.next(), words.next())
        else {
            return Err(bad("not two fields"));
        };
        let addr = crate::addr::connect_addr(addr)
            .ok()
            .filter(|normal| normal == addr && addr.rsplit_once(':').is_some())
            .ok_or_else(|| bad(&format!("`{addr}` is not host:port")))?;
        if let Err(why) = check_fingerprint(fingerprint) {
            return Err(bad(&why));
        }
        known.push(Known {
            addr: key(&addr),
            fingerprint: fingerprint.to_string(),
            file: file.to_path_buf(),
            line: line_no,
        });
    }
    Ok(known)
}

/// Every line of the file at `file` (none when it does not exist). A file
/// other users may write, anything but a regular file, and a file over
/// [`MAX_FILE`] are errors naming it.
pub fn read(file: &Path) -> Result<Vec<Known>> {
    let opened = fs::File::options()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(file);
    match opened {
        Ok(mut opened) => parse(&read_checked(file, &mut opened)?, file),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => {
            Err(e).with_context(|| format!("cannot read the known-hosts file `{}`", file.display()))
        }
    }
}

/// The text of the open known-hosts file `opened` (the file `file`), from
/// its start, once it is found fit to trust.
fn read_checked(file: &Path, opened: &mut fs::File) -> Result<String> {
    let cannot = || format!("cannot read the known-hosts file `{}`", file.display());
    let meta = opened.metadata().with_context(cannot)?;
    if meta.file_type().is_char_device() {
        // `IOE_KNOWN_HOSTS=/dev/null`, as ssh users write: no lines
        return Ok(String::new());
    }
    if !meta.is_file() {
        bail!(
            "the known-hosts file `{}` is not a regular file",
            file.display()
        );
    }
    crate::files::refuse_if_others_write(
        &meta,
        "the known-hosts file",
        file,
        "could make ioe trust their server",
    )
    .map_err(anyhow::Error::msg)?;
    if meta.len() > MAX_FILE {
        bail!(
            "the known-hosts file `{}` is larger than 4 MiB ({} bytes), far more than a line \
             per server; is it the right file?",
            file.display(),
            meta.len()
        );
    }
    let mut text = String::new();
    opened.seek(SeekFrom::Start(0)).with_context(cannot)?;
    opened
        .take(MAX_FILE + 1)
        .read_to_string(&mut text)
        .with_context(cannot)?;
    Ok(text)
}

/// The lines of the file at `file` for `addr` (`host:port`).
pub fn lookup(file: &Path, addr: &str) -> Result<Vec<Known>> {
    let addr = key(addr);
    Ok(read(file)?.into_iter().filter(|k| k.addr == addr).collect())
}

/// Opens the file at `file` for a change, creating it and its folder if
/// missing, and locks it against another `ioe trust` (or REPL) changing
/// it at the same time. A file replaced while waiting for the lock (a
/// `--forget`) is opened again.
fn open_locked(file: &Path) -> Result<fs::File> {
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the folder `{}`", dir.display()))?;
    }
    crate::files::open_locked(file, 0o644, "the known-hosts file").map_err(anyhow::Error::msg)
}

/// What [`add`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    /// The line was appended: this one.
    New(Known),
    /// The file trusts that fingerprint for that server already, there.
    Already(Known),
}

/// Trusts `fingerprint` for `addr` (`host:port`) in the file at `file`,
/// making it (and its folder) if need be, under a lock. A server the file
/// trusts with another fingerprint is refused, naming the line and how to
/// forget it; so is a host that would not read back as one line (spaces,
/// control characters, `#`).
pub fn add(file: &Path, addr: &str, fingerprint: &str) -> Result<Added> {
    check_fingerprint(fingerprint).map_err(anyhow::Error::msg)?;
    let addr = key(addr);
    let new_line = format!("{addr} {fingerprint}\n");
    if !parse(&new_line, file).is_ok_and(|read| read.len() == 1 && read[0].addr == addr) {
        bail!(
            "{addr:?} cannot be a line of the known-hosts file `{}`: a host is a name or \
             address, without spaces, control characters or `#`",
            file.display()
        );
    }
    let mut opened = open_locked(file)?;
    let before = read_checked(file, &mut opened)?;
    let existing: Vec<Known> = parse(&before, file)?
        .into_iter()
        .filter(|k| k.addr == addr)
        .collect();
    if let Some(same) = existing.iter().find(|k| k.fingerprint == fingerprint) {
        return Ok(Added::Already(same.clone()));
    }
    if let Some(other) = existing.first() {
        bail!(
            "the known-hosts file `{}` line {} trusts another fingerprint for {addr}: {}; \
             if the server's certificate was changed on purpose, run \
             `ioe trust --forget {}` first",
            file.display(),
            other.line,
            other.fingerprint,
            crate::tls::shell_word(&addr)
        );
    }
    let mut text = String::new();
    if !before.is_empty() && !before.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&new_line);
    opened
        .write_all(text.as_bytes())
        .with_context(|| format!("cannot add a line to `{}`", file.display()))?;
    Ok(Added::New(Known {
        addr,
        fingerprint: fingerprint.to_string(),
        file: file.to_path_buf(),
        line: before.lines().count() + 1,
    }))
}

/// Removes every line for `addr` (`host:port`) from the file at `file`,
/// keeping the others and the comments, under the lock [`add`] takes;
/// returns the lines removed (none: the file was left alone). Given a
/// link, the file it points to is replaced, and the link kept.
pub fn forget(file: &Path, addr: &str) -> Result<Vec<Known>> {
    let addr = key(addr);
    if lookup(file, &addr)?.is_empty() {
        return Ok(Vec::new());
    }
    let target = fs::canonicalize(file)
        .with_context(|| format!("cannot find the known-hosts file `{}`", file.display()))?;
    let mut opened = open_locked(&target)?;
    let text = read_checked(file, &mut opened)?;
    let gone: Vec<Known> = parse(&text, file)?
        .into_iter()
        .filter(|k| k.addr == addr)
        .collect();
    if gone.is_empty() {
        return Ok(gone);
    }
    let kept: String = text
        .lines()
        .enumerate()
        .filter(|(index, _)| !gone.iter().any(|k| k.line == index + 1))
        .map(|(_, line)| format!("{line}\n"))
        .collect();
    let dir = target.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write beside `{}`", target.display()))?;
    temp.write_all(kept.as_bytes())
        .and_then(|()| temp.as_file().sync_all())
        .with_context(|| format!("cannot write beside `{}`", target.display()))?;
    if let Ok(meta) = opened.metadata() {
        let _ = fs::set_permissions(temp.path(), meta.permissions());
    }
    temp.persist(&target)
        .with_context(|| format!("cannot replace `{}`", target.display()))?;
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "SHA256:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0";
    const OTHER: &str = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    #[test]
    fn lines_comments_and_keys() {
        let text = format!("# mine\n\nFiles.Example:7070 {FP}\n  [::1]:9 {OTHER}  \n");
        let known = parse(&text, Path::new("kh")).unwrap();
        let found: Vec<_> = known
            .iter()
            .map(|k| (k.addr.as_str(), k.fingerprint.as_str(), k.line))
            .collect();
        assert_eq!(
            found,
            [("files.example:7070", FP, 3), ("[::1]:9", OTHER, 4)]
        );
        assert_eq!(key("LocalHost:1"), "localhost:1");
    }

    #[test]
    fn a_wrong_fingerprint_says_what_is_wrong() {
        assert_eq!(check_fingerprint(FP), Ok(()));
        let swapped = FP.replacen("Bz", "B!", 1);
        let short = &FP[..FP.len() - 1];
        let mut last = FP.to_string();
        last.pop();
        last.push('B');
        for (text, why) in [
            (
                swapped.as_str(),
                "character 9 after `SHA256:`, '!', is not a base64 character",
            ),
            (short, "it has 42 characters after `SHA256:`, not 43"),
            ("sha256:x", "`SHA256:` is written in capitals"),
            ("MD5:x", "it does not start with `SHA256:`"),
        ] {
            let message = check_fingerprint(text).unwrap_err();
            assert!(
                message.contains("is not a valid SHA-256 fingerprint")
                    && message.contains(why)
                    && message.contains("43 base64 characters"),
                "{text}: {message}"
            );
        }
        // a last character whose low bits are not zero cannot be one
        let message = check_fingerprint(&last).unwrap_err();
        assert!(message.contains("its last character, 'B'"), "{message}");
    }

    #[test]
    fn a_bad_line_is_named() {
        for (text, why) in [
            ("host:1\n", "not two fields"),
            (&format!("host {FP}\n") as &str, "`host` is not host:port"),
            (&format!("::1:9 {FP}\n"), "`::1:9` is not host:port"),
            (
                "host:1 SHA256:abc\n",
                "`SHA256:abc` is not a valid SHA-256 fingerprint: it has 3 characters after \
                 `SHA256:`, not 43; a fingerprint is `SHA256:` and 43 base64 characters, as \
                 `ioe serve --tls` prints it",
            ),
            (&format!("host:1 {FP} extra\n"), "not two fields"),
        ] {
            let message = parse(&format!("# c\n{text}"), Path::new("/kh"))
                .unwrap_err()
                .to_string();
            assert!(
                message.starts_with(&format!("the known-hosts file `/kh` line 2: {why};")),
                "{message}"
            );
        }
    }

    #[test]
    fn add_then_forget_keeps_the_rest() {
        let dir = tempfile::TempDir::new().unwrap();
        let file = dir.path().join("sub/known_hosts");
        let added = add(&file, "Host:1", FP).unwrap();
        assert!(matches!(added, Added::New(Known { line: 1, .. })));
        assert!(matches!(
            add(&file, "host:1", FP).unwrap(),
            Added::Already(_)
        ));
        let clash = add(&file, "host:1", OTHER).unwrap_err().to_string();
        assert!(
            clash.contains("line 1 trusts another fingerprint for host:1")
                && clash.contains("ioe trust --forget host:1"),
            "{clash}"
        );
        fs::write(&file, format!("# keep\nhost:1 {FP}\nother:2 {OTHER}")).unwrap();
        assert!(matches!(
            add(&file, "third:3", FP).unwrap(),
            Added::New(Known { line: 4, .. })
        ));
        assert_eq!(forget(&file, "host:1").unwrap().len(), 1);
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            format!("# keep\nother:2 {OTHER}\nthird:3 {FP}\n")
        );
        assert!(forget(&file, "host:1").unwrap().is_empty());
    }

    #[test]
    fn concurrent_adds_for_one_server_leave_one_line() {
        let dir = tempfile::TempDir::new().unwrap();
        let file = dir.path().join("known_hosts");
        for round in 0..20 {
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
            let threads: Vec<_> = (0..8u8)
                .map(|i| {
                    let (file, barrier) = (file.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        let fp = format!("SHA256:{}", STANDARD_NO_PAD.encode([i; 32]));
                        barrier.wait();
                        add(&file, &format!("host{round}:1"), &fp)
                    })
                })
                .collect();
            let added = threads
                .into_iter()
                .map(|t| t.join().unwrap())
                .filter(Result::is_ok)
                .count();
            assert_eq!(added, 1, "round {round}");
            let lines = lookup(&file, &format!("host{round}:1")).unwrap();
            assert_eq!(lines.len(), 1, "round {round}: {lines:?}");
        }
    }

    #[test]
    fn a_host_that_cannot_be_one_line_is_refused_and_nothing_written() {
        let dir = tempfile::TempDir::new().unwrap();
        let file = dir.path().join("known_hosts");
        for addr in ["a b:1", "evil\nlocalhost:1", "#x:1", "a\tb:1"] {
            let message = add(&file, addr, FP).unwrap_err().to_string();
            assert!(
                message.contains("cannot be a line of the known-hosts file"),
                "{addr:?}: {message}"
            );
            assert!(!file.exists(), "{addr:?}");
        }
    }

    #[test]
    fn a_file_others_may_write_or_a_huge_one_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::TempDir::new().unwrap();
        let file = dir.path().join("known_hosts");
        fs::write(&file, format!("host:1 {FP}\n")).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o666)).unwrap();
        let message = read(&file).unwrap_err().to_string();
        assert!(
            message.contains("is writable by other users (mode 0666)")
                && message.contains(&format!("chmod o-w {}", file.display())),
            "{message}"
        );
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        fs::File::options()
            .append(true)
            .open(&file)
            .unwrap()
            .set_len(MAX_FILE + 1)
            .unwrap();
        let message = read(&file).unwrap_err().to_string();
        assert!(message.contains("is larger than 4 MiB"), "{message}");
        // but /dev/null (mode 0666, not a regular file) is an empty file
        assert_eq!(read(Path::new("/dev/null")).unwrap(), Vec::new());
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let message = read(&fifo).unwrap_err().to_string();
        assert!(message.contains("is not a regular file"), "{message}");
    }

    #[test]
    fn forget_through_a_link_keeps_the_link() {
        let dir = tempfile::TempDir::new().unwrap();
        let real = dir.path().join("real_known_hosts");
        let link = dir.path().join("known_hosts");
        fs::write(&real, format!("host:1 {FP}\nother:2 {OTHER}\n")).unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(forget(&link, "host:1").unwrap().len(), 1);
        assert!(fs::symlink_metadata(&link).unwrap().is_symlink());
        assert_eq!(
            fs::read_to_string(&real).unwrap(),
            format!("other:2 {OTHER}\n")
        );
    }
}
