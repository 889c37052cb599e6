//! Token authentication: the token file of `ioe serve --auth FILE` (one
//! line per token: a label, its access, the SHA-256 digest of the token,
//! and optionally a sub-folder; never the token itself), minting, revoking
//! and listing tokens (`ioe token …`), checking a presented token in
//! constant time with the file re-read when it changed, and the client's
//! [`Token`], whose `Debug` never shows the secret. `docs/protocol.md`
//! ("Authentication") says why each choice was made.

use crate::protocol::validate_name;
use sha2::{Digest, Sha256};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use subtle::ConstantTimeEq;

/// What every minted token starts with, so that one pasted in the wrong
/// place is recognisable (and secret scanners can find it).
pub const TOKEN_PREFIX: &str = "ioe_";
/// Random bytes in a minted token: 192 bits, shown as 48 hex digits.
pub const TOKEN_BYTES: usize = 24;
/// The environment variable a client takes its token from when the script
/// gives none.
pub const TOKEN_ENV: &str = "IOE_TOKEN";
/// How a digest is written in the token file: this, then 64 hex digits.
const DIGEST_PREFIX: &str = "sha256:";
/// Longest label.
const MAX_LABEL: usize = 64;
/// Longest token a client sends or a token file line may hold: far more
/// than a minted one, far less than a request line.
pub const MAX_TOKEN: usize = 512;
/// Largest token file: a line per token is under 1200 bytes.
const MAX_FILE: u64 = 4 << 20;
/// The first line of a new token file.
const HEADER: &str = "# ioe token file: label, access (ro or rw), sha256 digest of the token, \
                      optional sub-folder\n";

/// What a token grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `ro`: no `WRITE`, `DELETE`, `MKDIR` or `SETTIME`.
    ReadOnly,
    /// `rw`: everything the server allows.
    ReadWrite,
}

impl Access {
    /// `ro` or `rw`, as in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::ReadOnly => "ro",
            Access::ReadWrite => "rw",
        }
    }

    /// `read-only` or `read-write`, for people.
    pub fn describe(self) -> &'static str {
        match self {
            Access::ReadOnly => "read-only",
            Access::ReadWrite => "read-write",
        }
    }
}

/// One token of the file, without its digest: what a session that
/// presents it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Its name in the file and in the server's log (the identity the
    /// server returns).
    pub label: String,
    /// Read-only or read-write.
    pub access: Access,
    /// The sub-folder of the root that becomes the session's root.
    pub folder: Option<String>,
}

impl Grant {
    /// `read-only, folder `photos``, for the log and `ioe token list`.
    pub fn describe(&self) -> String {
        match &self.folder {
            Some(folder) => format!("{}, folder `{folder}`", self.access.describe()),
            None => self.access.describe().to_string(),
        }
    }
}

/// One line of the token file.
#[derive(Debug, Clone)]
struct Line {
    grant: Grant,
    digest: [u8; 32],
}

/// The token file's lines, parsed.
fn parse(path: &Path, text: &str) -> Result<Vec<Line>, String> {
    let mut lines: Vec<Line> = Vec::new();
    for (number, raw) in text.lines().enumerate() {
        let at = format!("{}:{}", path.display(), number + 1);
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let line = parse_line(trimmed).map_err(|why| format!("{at}: {why}"))?;
        if lines.iter().any(|l| l.grant.label == line.grant.label) {
            return Err(format!(
                "{at}: the label `{}` is used twice; labels name tokens in the log, \
                 so each must be unique",
                line.grant.label
            ));
        }
        lines.push(line);
    }
    if !text.is_empty() && !text.ends_with('\n') {
        // a file caught while being written: its last line may be cut short
        // of a sub-folder, which would grant more than it says
        return Err(format!(
            "{}:{}: the last line does not end with a newline; the file may be in the \
             middle of being written (if not, end it with a newline)",
            path.display(),
            text.lines().count()
        ));
    }
    Ok(lines)
}

/// `label access sha256:<hex> [folder]`; the folder is the rest of the line.
fn parse_line(line: &str) -> Result<Line, String> {
    const FORM: &str = "the form is `label ro|rw sha256:<64 hex digits> [sub-folder]`";
    let mut rest = line;
    let mut field = || {
        let text = rest.trim_start();
        let end = text.find(char::is_whitespace).unwrap_or(text.len());
        let (word, tail) = text.split_at(end);
        rest = tail;
        word
    };
    let (label, access, digest) = (field(), field(), field());
    if digest.is_empty() {
        return Err(format!("too few fields; {FORM}"));
    }
    check_label(label)?;
    let access = match access {
        "ro" => Access::ReadOnly,
        "rw" => Access::ReadWrite,
        other => return Err(format!("access `{other}` is neither `ro` nor `rw`; {FORM}")),
    };
    let digest = parse_digest(digest).ok_or_else(|| {
        if holds_token(digest) {
            // never repeat a token pasted here: the message goes to the log
            format!(
                "the third field is a token, not its digest; {FORM} (the file never \
                 holds the token itself: mint tokens with `ioe token new`)"
            )
        } else {
            format!("`{digest}` is not a digest; {FORM} (the file never holds the token itself)")
        }
    })?;
    let folder = match rest.trim() {
        "" => None,
        folder => {
            validate_name(folder).map_err(|e| format!("sub-folder `{folder}`: {e}"))?;
            Some(folder.to_string())
        }
    };
    Ok(Line {
        grant: Grant {
            label: label.to_string(),
            access,
            folder,
        },
        digest,
    })
}

/// Refuses a label that is not 1 to 64 letters, digits, `.`, `_` or `-`.
pub fn check_label(label: &str) -> Result<(), String> {
    let fine = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if label.is_empty() || label.len() > MAX_LABEL || !label.chars().all(fine) {
        return Err(format!(
            "label `{label}` must be 1 to {MAX_LABEL} letters, digits, `.`, `_` or `-`"
        ));
    }
    Ok(())
}

/// `sha256:<64 lower-case hex digits>` → the 32 bytes.
fn parse_digest(text: &str) -> Option<[u8; 32]> {
    let hex = text.strip_prefix(DIGEST_PREFIX)?;
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0; 32];
    for (byte, pair) in out.iter_mut().zip(hex.as_bytes().chunks(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        if pair.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

/// The SHA-256 digest of a token.
fn digest_of(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

/// How a token's digest is written in the file.
pub fn digest_text(token: &str) -> String {
    format!(
        "{DIGEST_PREFIX}{}",
        crate::digest::hex(&digest_of(token.as_bytes()))
    )
}

/// What the file says of a presented token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// The token is in the file.
    Granted(Grant),
    /// No line has its digest.
    Refused,
    /// The file can no longer be read or parsed: every token is refused
    /// until it is fixed (the reason is for the server's log).
    Broken(String),
}

/// What identifies one version of the file: a change of any of these
/// (an edit in place, a replacement by rename) makes it read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Stamp {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// The file as last read.
#[derive(Debug)]
struct Loaded {
    stamp: Option<Stamp>,
    lines: Result<Vec<Line>, String>,
}

/// The token file of a server (`--auth FILE`), re-read whenever it changes.
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

/// Reading the file again, for the server's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// It changed and now holds this many tokens.
    Read(usize),
    /// It changed and cannot be used (why).
    Failed(String),
}

impl TokenFile {
    /// Reads and parses the file; a missing file or a malformed line is an
    /// error naming `file:line`, so the server refuses to start.
    pub fn load(path: &Path) -> Result<TokenFile, String> {
        let (stamp, text) = read(path)?;
        let lines = parse(path, &text)?;
        Ok(TokenFile {
            path: path.to_path_buf(),
            loaded: Mutex::new(Loaded {
                stamp: Some(stamp),
                lines: Ok(lines),
            }),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many tokens the file held when last read.
    pub fn len(&self) -> usize {
        let loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        loaded.lines.as_ref().map_or(0, Vec::len)
    }

    /// Whether the file held no token when last read.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks a presented token, reading the file again first if it
    /// changed. Every line's digest is compared, in constant time, whatever
    /// matches: how long it takes tells nothing about which one did.
    pub fn check(&self, token: &[u8]) -> (Check, Option<Reload>) {
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        let reload = self.refresh(&mut loaded);
        let check = match &loaded.lines {
            Err(why) => Check::Broken(why.clone()),
            Ok(lines) => {
                let presented = digest_of(token);
                let mut found = None;
                for line in lines {
                    let same = bool::from(line.digest.ct_eq(&presented));
                    if same && found.is_none() {
                        found = Some(line.grant.clone());
                    }
                }
                found.map_or(Check::Refused, Check::Granted)
            }
        };
        (check, reload)
    }

    /// Reads the file again when its [`Stamp`] changed.
    fn refresh(&self, loaded: &mut Loaded) -> Option<Reload> {
        let now = fs::metadata(&self.path).map(|meta| Stamp::of(&meta));
        if let (Ok(now), Some(then)) = (&now, loaded.stamp)
            && *now == then
        {
            return None;
        }
        let read = read(&self.path).and_then(|(stamp, text)| {
            loaded.stamp = Some(stamp);
            parse(&self.path, &text)
        });
        if read.is_err() && now.is_err() {
            // gone: read it again as soon as it is back
            loaded.stamp = None;
        }
        let reload = match &read {
            Ok(lines) => Reload::Read(lines.len()),
            Err(why) => Reload::Failed(why.clone()),
        };
        let unchanged_failure = matches!((&loaded.lines, &read), (Err(a), Err(b)) if a == b);
        loaded.lines = read;
        (!unchanged_failure).then_some(reload)
    }
}

/// The file's stamp and text. It must be a regular file (opened without
/// waiting, so a FIFO cannot hang the server) of at most [`MAX_FILE`]
/// bytes that other users cannot write (they could grant themselves a
/// token).
fn read(path: &Path) -> Result<(Stamp, String), String> {
    let shown = path.display();
    let cannot = |e: io::Error| format!("cannot read the token file `{shown}`: {e}");
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    if !meta.is_file() {
        return Err(format!("the token file `{shown}` is not a regular file"));
    }
    crate::files::refuse_if_others_write(&meta, "the token file", path, "could add a token")?;
    if meta.len() > MAX_FILE {
        return Err(format!(
            "the token file `{shown}` is {} bytes, over the 4 MiB a token file may be",
            meta.len()
        ));
    }
    let mut text = String::new();
    file.take(MAX_FILE)
        .read_to_string(&mut text)
        .map_err(cannot)?;
    Ok((Stamp::of(&meta), text))
}

/// A new token: [`TOKEN_PREFIX`] and [`TOKEN_BYTES`] random bytes from the
/// operating system (through the `ring` provider rustls already uses) as
/// lower-case hex, which no shell or environment variable needs to quote.
pub fn mint() -> Result<String, String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| "the operating system gave no random bytes for a token".to_string())?;
    Ok(format!("{TOKEN_PREFIX}{}", crate::digest::hex(&bytes)))
}

/// Opens the token file for a change, creating it (mode 0600, with a
/// header comment) if missing, and locks it against another `ioe token`
/// at the same time. A file replaced while waiting for the lock (a
/// revoke) is opened again.
fn open_locked(path: &Path) -> Result<File, String> {
    let mut file = crate::files::open_locked(path, 0o600, "the token file")?;
    let cannot = |e: io::Error| format!("cannot write the token file `{}`: {e}", path.display());
    if file.metadata().map_err(cannot)?.len() == 0 {
        file.write_all(HEADER.as_bytes()).map_err(cannot)?;
    }
    Ok(file)
}

/// The text of a locked file, which must parse.
fn read_locked(path: &Path, file: &mut File) -> Result<Vec<Line>, String> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_string(&mut text))
        .map_err(|e| format!("cannot read the token file `{}`: {e}", path.display()))?;
    parse(path, &text)
}

/// Mints a token for `grant`, appends its line to the file at `path`
/// (created with mode 0600 if missing) and returns the token, which is
/// nowhere else. A label already in the file is refused.
pub fn add(path: &Path, grant: &Grant) -> Result<String, String> {
    check_label(&grant.label)?;
    if let Some(folder) = &grant.folder {
        validate_name(folder).map_err(|e| format!("sub-folder `{folder}`: {e}"))?;
    }
    let mut file = open_locked(path)?;
    let lines = read_locked(path, &mut file)?;
    if lines.iter().any(|l| l.grant.label == grant.label) {
        return Err(format!(
            "the label `{}` is in `{}` already; pick another, or revoke it first \
             with `ioe token revoke --auth {} {}`",
            grant.label,
            path.display(),
            path.display(),
            grant.label
        ));
    }
    let token = mint()?;
    let mut line = format!(
        "{} {} {}",
        grant.label,
        grant.access.as_str(),
        digest_text(&token)
    );
    if let Some(folder) = &grant.folder {
        line.push(' ');
        line.push_str(folder);
    }
    line.push('\n');
    file.write_all(line.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write the token file `{}`: {e}", path.display()))?;
    Ok(token)
}

/// Removes the line of `label` from the file (written anew and renamed
/// over it, so a server never reads half a file).
pub fn revoke(path: &Path, label: &str) -> Result<(), String> {
    if !path.exists() {
        return Err(format!("there is no token file `{}`", path.display()));
    }
    let mut file = open_locked(path)?;
    let lines = read_locked(path, &mut file)?;
    if !lines.iter().any(|l| l.grant.label == label) {
        let known: Vec<&str> = lines.iter().map(|l| l.grant.label.as_str()).collect();
        return Err(format!(
            "no token labelled `{label}` in `{}` (labels: {})",
            path.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ));
    }
    let mut text = String::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_string(&mut text))
        .map_err(|e| format!("cannot read the token file `{}`: {e}", path.display()))?;
    let kept: String = text
        .split_inclusive('\n')
        .filter(|raw| {
            let trimmed = raw.trim();
            trimmed.is_empty()
                || trimmed.starts_with('#')
                || trimmed.split_whitespace().next() != Some(label)
        })
        .collect();
    let cannot = |e: io::Error| format!("cannot write the token file `{}`: {e}", path.display());
    // through a link, the file it points to is the one replaced (a server
    // may have been given either name)
    let target = fs::canonicalize(path).map_err(cannot)?;
    let dir = target.parent().unwrap_or(Path::new("/"));
    // NamedTempFile is made with mode 0600
    let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(cannot)?;
    temp.write_all(kept.as_bytes())
        .and_then(|()| temp.as_file().sync_all())
        .map_err(cannot)?;
    temp.persist(&target).map_err(|e| cannot(e.error))?;
    Ok(())
}

/// The grants in the file at `path` (no digests, no tokens).
pub fn list(path: &Path) -> Result<Vec<Grant>, String> {
    let (_, text) = read(path)?;
    Ok(parse(path, &text)?.into_iter().map(|l| l.grant).collect())
}

/// Whether `text` holds what looks like a minted token: [`TOKEN_PREFIX`]
/// and at least 32 hex digits (the REPL keeps such a line out of its
/// history).
pub fn holds_token(text: &str) -> bool {
    text.match_indices(TOKEN_PREFIX).any(|(at, prefix)| {
        text[at + prefix.len()..]
            .bytes()
            .take_while(u8::is_ascii_hexdigit)
            .count()
            >= 32
    })
}

/// Most bytes read from a client's token file: a token is at most
/// [`MAX_TOKEN`] bytes, and a file like `/dev/zero` or an endless pipe
/// must not fill the memory.
pub const MAX_TOKEN_FILE: u64 = 4096;

/// Whether a client's token file at `path`, as `meta` describes it, may be
/// read: a regular file that only its owner may read or write (as ssh
/// wants of a private key: mode 600 or 400), or a pipe (`<(pass show
/// ioe)`, a FIFO). One rule for `connect(…, #{token_file})` and the
/// servers file's `token_file`.
pub fn check_token_file(path: &Path, meta: &fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let kind = meta.file_type();
    if kind.is_fifo() {
        return Ok(());
    }
    if !kind.is_file() {
        return Err(format!(
            "the token file `{}` is not a file (nor a pipe)",
            path.display()
        ));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "the token file `{}` is open to others (mode {mode:04o}); make it private \
             with `chmod 600 {}`",
            path.display(),
            path.display()
        ));
    }
    Ok(())
}

/// A client's token. `Debug` and `Display` say where it came from, never
/// what it is.
#[derive(Clone)]
pub struct Token {
    secret: String,
    source: String,
}

impl Token {
    /// A token given as text; `source` says where it came from in error
    /// messages (`the option `token``, `IOE_TOKEN`, …). Surrounding
    /// whitespace is dropped; the token must then be 1 to [`MAX_TOKEN`]
    /// printable characters with no space or comma. The error never
    /// repeats the text.
    pub fn new(secret: &str, source: impl Into<String>) -> Result<Token, String> {
        let source = source.into();
        let secret = secret.trim();
        if secret.is_empty() {
            return Err(format!("the token from {source} is empty"));
        }
        if secret.len() > MAX_TOKEN {
            return Err(format!(
                "the token from {source} is {} bytes long, over the {MAX_TOKEN} allowed",
                secret.len()
            ));
        }
        if !secret.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
            return Err(format!(
                "the token from {source} holds a space, a comma or a character that is \
                 not printable ASCII; tokens from `ioe token new` are `{TOKEN_PREFIX}` \
                 and hex digits"
            ));
        }
        Ok(Token {
            secret: secret.to_string(),
            source,
        })
    }

    /// The token in [`TOKEN_ENV`], if it is set and not empty.
    pub fn from_env() -> Result<Option<Token>, String> {
        match std::env::var(TOKEN_ENV) {
            Ok(text) if text.trim().is_empty() => Ok(None),
            Ok(text) => {
                Token::new(&text, format!("the environment variable {TOKEN_ENV}")).map(Some)
            }
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(format!(
                "the environment variable {TOKEN_ENV} is not valid UTF-8"
            )),
        }
    }

    /// The token in a file (its first line that is not blank): a token kept
    /// out of a script and its command line. The file must pass
    /// [`check_token_file`] (private, or a pipe such as `<(pass show ioe)`)
    /// and hold at most [`MAX_TOKEN_FILE`] bytes: no more is read.
    pub fn from_file(path: &Path) -> Result<Token, String> {
        let cannot = |e: io::Error| format!("cannot read the token file `{}`: {e}", path.display());
        let file = File::open(path).map_err(cannot)?;
        check_token_file(path, &file.metadata().map_err(cannot)?)?;
        let mut bytes = Vec::new();
        file.take(MAX_TOKEN_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(cannot)?;
        if bytes.len() as u64 > MAX_TOKEN_FILE {
            return Err(format!(
                "the token file `{}` holds more than {MAX_TOKEN_FILE} bytes; it should \
                 hold the token alone, as `ioe token new` prints it",
                path.display()
            ));
        }
        let text = String::from_utf8(bytes).map_err(|_| {
            format!(
                "the token file `{}` is not text; it should hold the token alone, as \
                 `ioe token new` prints it",
                path.display()
            )
        })?;
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        Token::new(first, format!("the file `{}`", path.display()))
    }

    /// A token as the server received it in `AUTH`: any bytes, checked
    /// only against the file's digests.
    pub(crate) fn received(bytes: &[u8]) -> Token {
        Token {
            secret: String::from_utf8_lossy(bytes).into_owned(),
            source: "an AUTH request".to_string(),
        }
    }

    /// Where it came from, as error messages say it.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The secret itself, for the `AUTH` request only.
    pub(crate) fn secret(&self) -> &str {
        &self.secret
    }
}

impl PartialEq for Token {
    fn eq(&self, other: &Token) -> bool {
        self.secret == other.secret
    }
}

impl Eq for Token {}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(from {}, hidden)", self.source)
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the token from {}", self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn grant(label: &str, access: Access, folder: Option<&str>) -> Grant {
        Grant {
            label: label.into(),
            access,
            folder: folder.map(str::to_string),
        }
    }

    #[test]
    fn minted_tokens_are_prefixed_hex_and_differ() {
        let a = mint().unwrap();
        let b = mint().unwrap();
        assert_ne!(a, b);
        let hex = a.strip_prefix(TOKEN_PREFIX).unwrap();
        assert_eq!(hex.len(), TOKEN_BYTES * 2);
        assert!(
            hex.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }

    #[test]
    fn lines_parse_with_comments_blank_lines_and_folders_with_spaces() {
        let digest = digest_text("ioe_x");
        let text =
            format!("# comment\n\n  alice rw {digest}\nbob ro {digest} photos/summer 2024  \n");
        let lines = parse(Path::new("t"), &text).unwrap();
        assert_eq!(lines[0].grant, grant("alice", Access::ReadWrite, None));
        assert_eq!(
            lines[1].grant,
            grant("bob", Access::ReadOnly, Some("photos/summer 2024"))
        );
    }

    #[test]
    fn a_malformed_line_is_named_by_file_and_line() {
        let digest = digest_text("ioe_x");
        let cases = [
            (
                format!("a rw {digest}\nb xx {digest}\n"),
                "t:2: access `xx`",
            ),
            ("a rw\n".to_string(), "t:1: too few fields"),
            (
                "a rw ioe_0123\n".to_string(),
                "t:1: `ioe_0123` is not a digest",
            ),
            (format!("a rw {digest} ../up\n"), "t:1: sub-folder `../up`"),
            (format!("a rw {digest} /etc\n"), "t:1: sub-folder `/etc`"),
            (format!("a/b rw {digest}\n"), "t:1: label `a/b`"),
            (
                format!("a rw {digest}\na ro {digest}\n"),
                "t:2: the label `a` is used twice",
            ),
            (
                format!("a rw {}\n", digest.to_uppercase()),
                "is not a digest",
            ),
            (
                "a rw ioe_0123456789abcdef0123456789abcdef\n".to_string(),
                "t:1: the third field is a token, not its digest",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(Path::new("t"), &text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
            assert!(!err.contains("0123456789abcdef"), "{err}");
        }
    }

    #[test]
    fn the_file_holds_digests_and_a_token_is_checked_against_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        let token = add(&path, &grant("cron", Access::ReadOnly, Some("backups"))).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&token[TOKEN_PREFIX.len()..]), "{text}");
        assert!(text.contains(&digest_text(&token)), "{text}");
        let mode = fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let file = TokenFile::load(&path).unwrap();
        let (check, _) = file.check(token.as_bytes());
        assert_eq!(
            check,
            Check::Granted(grant("cron", Access::ReadOnly, Some("backups")))
        );
        assert_eq!(file.check(b"ioe_wrong").0, Check::Refused);
        let again = add(&path, &grant("cron", Access::ReadWrite, None)).unwrap_err();
        assert!(again.contains("`cron` is in"), "{again}");
    }

    #[test]
    fn a_revoked_token_is_refused_without_a_restart_and_a_broken_file_refuses_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        let one = add(&path, &grant("one", Access::ReadWrite, None)).unwrap();
        let two = add(&path, &grant("two", Access::ReadWrite, None)).unwrap();
        let file = TokenFile::load(&path).unwrap();
        assert!(matches!(file.check(one.as_bytes()).0, Check::Granted(_)));
        revoke(&path, "one").unwrap();
        let (check, reload) = file.check(one.as_bytes());
        assert_eq!(check, Check::Refused);
        assert_eq!(reload, Some(Reload::Read(1)));
        assert!(matches!(file.check(two.as_bytes()).0, Check::Granted(_)));
        let labels: Vec<String> = list(&path).unwrap().into_iter().map(|g| g.label).collect();
        assert_eq!(labels, ["two"]);
        let mut text = fs::read_to_string(&path).unwrap();
        text.push_str("broken line\n");
        fs::write(&path, text).unwrap();
        let (check, reload) = file.check(two.as_bytes());
        assert!(
            matches!(check, Check::Broken(ref why) if why.contains(":3:")),
            "{check:?}"
        );
        assert!(matches!(reload, Some(Reload::Failed(_))));
        // the same failure is not reported on every attempt
        assert_eq!(file.check(two.as_bytes()).1, None);
    }

    #[test]
    fn a_last_line_without_its_newline_is_refused_not_read_short() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        let alice = digest_text("ioe_alice");
        fs::write(&path, format!("alice rw {alice}\n")).unwrap();
        let file = TokenFile::load(&path).unwrap();
        // caught while being written: `bob`'s line cut before its folder
        // would grant him the whole root
        let bob = digest_text("ioe_bob");
        fs::write(&path, format!("alice rw {alice}\nbob ro {bob}")).unwrap();
        let (check, reload) = file.check(b"ioe_bob");
        let expected = "tokens:2: the last line does not end with a newline";
        assert!(
            matches!(check, Check::Broken(ref why) if why.contains(expected)),
            "{check:?}"
        );
        assert!(matches!(reload, Some(Reload::Failed(_))));
        let err = TokenFile::load(&path).unwrap_err();
        assert!(err.contains(expected), "{err}");
        // and `ioe token new` does not glue its line onto the cut one
        let err = add(&path, &grant("carol", Access::ReadWrite, None)).unwrap_err();
        assert!(err.contains(expected), "{err}");
        fs::write(&path, format!("alice rw {alice}\nbob ro {bob} photos\n")).unwrap();
        assert_eq!(
            file.check(b"ioe_bob").0,
            Check::Granted(grant("bob", Access::ReadOnly, Some("photos")))
        );
    }

    #[test]
    fn revoking_through_a_link_changes_the_file_it_points_to() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("real")).unwrap();
        let real = dir.path().join("real/tokens");
        let link = dir.path().join("tokens");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        add(&link, &grant("one", Access::ReadWrite, None)).unwrap();
        add(&link, &grant("two", Access::ReadWrite, None)).unwrap();
        revoke(&link, "one").unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().is_symlink());
        let labels: Vec<String> = list(&real).unwrap().into_iter().map(|g| g.label).collect();
        assert_eq!(labels, ["two"]);
        assert_eq!(fs::metadata(&real).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_token_file_others_may_write_or_that_is_no_regular_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        add(&path, &grant("one", Access::ReadWrite, None)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        let err = TokenFile::load(&path).unwrap_err();
        assert!(
            err.contains("is writable by other users (mode 0666)") && err.contains("chmod o-w"),
            "{err}"
        );
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        // opened without waiting for a writer, and refused
        let err = TokenFile::load(&fifo).unwrap_err();
        assert!(err.contains("is not a regular file"), "{err}");
        let huge = dir.path().join("huge");
        let file = File::create(&huge).unwrap();
        file.set_len(MAX_FILE + 1).unwrap();
        let err = TokenFile::load(&huge).unwrap_err();
        assert!(err.contains("over the 4 MiB"), "{err}");
    }

    #[test]
    fn lines_holding_a_minted_token_are_recognised() {
        let token = mint().unwrap();
        assert!(holds_token(&format!(
            "connect(\"h\", #{{token: \"{token}\"}})"
        )));
        assert!(!holds_token("connect(\"h\", #{token_file: \"ioe_token\"})"));
        assert!(!holds_token("print(\"ioe_0123\")"));
    }

    #[test]
    fn a_token_never_shows_in_debug_display_or_errors() {
        let token = Token::new(" ioe_abc123 \n", "the option `token`").unwrap();
        assert_eq!(token.secret(), "ioe_abc123");
        let shown = format!("{token:?} {token}");
        assert!(!shown.contains("abc123"), "{shown}");
        for bad in ["ioe_a,b", "ioe a", "ioe_\u{e9}"] {
            let err = Token::new(bad, "x").unwrap_err();
            assert!(!err.contains(bad), "{err}");
        }
    }
}
