//! IOE/1 on byte slices: requests, status lines, entry lines, names and
//! limits. Nothing here touches a socket, so every rule is unit-testable.
//! `docs/protocol.md` is the prose version of this module.

use crate::auth::Token;
use std::fmt;

/// Longest request line, LF included.
pub const MAX_LINE: usize = 4096;
/// Longest name, in bytes.
pub const MAX_NAME: usize = 1024;
/// Most digits a number may have.
pub const MAX_DIGITS: usize = 19;
/// Prefix of the server's and the client's temporary files. Such names are
/// never listed, and requests naming them are refused.
pub const TEMP_PREFIX: &str = ".ioe-tmp-";
/// Prefix of the client's resumable downloads (kept after an interruption,
/// unlike temporary files); reserved in the same way.
pub const PART_PREFIX: &str = ".ioe-part-";

/// Whether a file name (one component) is reserved for a transfer in
/// progress ([`TEMP_PREFIX`], [`PART_PREFIX`]).
pub fn is_reserved(file_name: &[u8]) -> bool {
    file_name.starts_with(TEMP_PREFIX.as_bytes()) || file_name.starts_with(PART_PREFIX.as_bytes())
}
/// Start of the server's reply when a file does not exist; the client maps it
/// to [`crate::ErrorKind::NotFound`].
pub const NOT_FOUND: &str = "no such file or folder";
/// The refusal of a request before `AUTH` succeeded (after `ERROR: `).
pub const AUTH_REQUIRED: &str = "authentication required";
/// The refusal of a wrong token (after `ERROR: `); the server then closes.
pub const AUTH_FAILED: &str = "authentication failed; closing";
/// How the server marks an `ERROR:` after which it closes the connection:
/// the message ends with it, or with it, a comma and a reason naming no file.
pub const CLOSING: &str = "; closing";

/// Whether an `ERROR:` message announces that the server closes the
/// connection (busy, idle, shutting down, an unskippable body). Names in
/// messages are always followed by a backtick, so a file name that happens
/// to contain [`CLOSING`] is not mistaken for it.
pub fn announces_close(message: &str) -> bool {
    match message.rsplit_once(CLOSING) {
        Some((_, tail)) => tail.is_empty() || (tail.starts_with(", ") && !tail.contains('`')),
        None => false,
    }
}

/// One parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `LIST` (root) or `LIST,<dir>`.
    List(Option<String>),
    /// `READ,<name>`.
    Read(String),
    /// `WRITE,<name>,<size>`; `size` body bytes follow the line.
    Write {
        /// Where to store the upload.
        name: String,
        /// Length of the body, in bytes.
        size: u64,
    },
    /// `BYE`.
    Bye,
    /// A request of the IOE/1 extensions.
    Extension(Extension),
}

/// A request of the IOE/1 extensions (none has a body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extension {
    /// `FEATURES`: what this server implements beyond IOE/1.
    Features,
    /// `STAT,<name>`: one entry line.
    Stat(String),
    /// `WALK` (root) or `WALK,<dir>`: every entry below, depth first.
    Walk(Option<String>),
    /// `SETTIME,<mtime>,<name>`.
    SetTime {
        /// Seconds since the Unix epoch.
        mtime: u64,
        /// The file or folder to re-time.
        name: String,
    },
    /// `MKDIR,<name>`: the folder and its missing parents.
    Mkdir(String),
    /// `DELETE,<name>`: a file or an empty folder.
    Delete(String),
    /// `HASH,<algorithm>,<name>`: the digest of a whole regular file.
    Hash {
        /// `sha256`, `blake3`, … (lower case).
        algorithm: String,
        /// The file.
        name: String,
    },
    /// `READAT,<offset>,<length>,<name>`: part of a regular file.
    ReadAt {
        /// First byte sent.
        offset: u64,
        /// Most bytes sent.
        length: u64,
        /// The file.
        name: String,
    },
    /// `AUTH,<token>`: authenticate this session (the token's `Debug`
    /// hides it, so a logged request never shows it).
    Auth(Token),
}

impl Extension {
    /// The request line, LF included.
    pub fn to_line(&self) -> String {
        match self {
            Extension::Features => "FEATURES\n".to_string(),
            Extension::Stat(name) => format!("STAT,{name}\n"),
            Extension::Walk(None) => "WALK\n".to_string(),
            Extension::Walk(Some(dir)) => format!("WALK,{dir}\n"),
            Extension::SetTime { mtime, name } => format!("SETTIME,{mtime},{name}\n"),
            Extension::Mkdir(name) => format!("MKDIR,{name}\n"),
            Extension::Delete(name) => format!("DELETE,{name}\n"),
            Extension::Hash { algorithm, name } => format!("HASH,{algorithm},{name}\n"),
            Extension::ReadAt {
                offset,
                length,
                name,
            } => format!("READAT,{offset},{length},{name}\n"),
            Extension::Auth(token) => format!("AUTH,{}\n", token.secret()),
        }
    }
}

impl Request {
    /// The request line, LF included.
    pub fn to_line(&self) -> String {
        match self {
            Request::List(None) => "LIST\n".to_string(),
            Request::List(Some(dir)) => format!("LIST,{dir}\n"),
            Request::Read(name) => format!("READ,{name}\n"),
            Request::Write { name, size } => format!("WRITE,{name},{size}\n"),
            Request::Bye => "BYE\n".to_string(),
            Request::Extension(extension) => extension.to_line(),
        }
    }
}

/// What the server must do after refusing a request, to stay in sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterError {
    /// Go on reading the next request.
    Continue,
    /// Read and discard this many body bytes, then go on.
    SkipBody(u64),
    /// The stream cannot be resynchronised: close the connection.
    Close,
}

/// A request the server refuses, with the `ERROR:` text to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest {
    /// Why, as sent after `ERROR: `.
    pub message: String,
    /// How the server goes on afterwards.
    pub then: AfterError,
}

impl BadRequest {
    fn new(message: impl Into<String>, then: AfterError) -> Self {
        BadRequest {
            message: message.into(),
            then,
        }
    }
}

/// The refusal of a `WRITE` without a size; the server then closes.
const WRITE_USAGE: &str = "WRITE needs a name and a size: WRITE,<name>,<size>; \
                           closing, since the body cannot be skipped";

/// Parses one request line (without its LF; a trailing CR is ignored).
pub fn parse_request(line: &[u8]) -> Result<Request, BadRequest> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let (word, rest) = match line.iter().position(|&b| b == b',') {
        Some(i) => (&line[..i], Some(&line[i + 1..])),
        None => (line, None),
    };
    match (word, rest) {
        (b"LIST", None) => Ok(Request::List(None)),
        (b"LIST", Some(dir)) => {
            let dir = checked_name(dir).map_err(|e| BadRequest::new(e, AfterError::Continue))?;
            Ok(Request::List(Some(dir)))
        }
        (b"READ", Some(name)) => {
            let name = checked_name(name).map_err(|e| BadRequest::new(e, AfterError::Continue))?;
            Ok(Request::Read(name))
        }
        (b"WRITE", Some(rest)) => parse_write(rest),
        (b"BYE", None) => Ok(Request::Bye),
        (b"READ", None) => Err(BadRequest::new(
            "READ needs a name: READ,<name>",
            AfterError::Continue,
        )),
        (b"WRITE", None) => Err(BadRequest::new(WRITE_USAGE, AfterError::Close)),
        (b"BYE", Some(_)) => Err(BadRequest::new("BYE takes no fields", AfterError::Continue)),
        _ => parse_extension(word, rest)
            .map(Request::Extension)
            .map_err(|message| BadRequest::new(message, AfterError::Continue)),
    }
}

/// Parses a request of the IOE/1 extensions; none has a body, so every
/// refusal lets the session go on. The name is always the last field and
/// takes everything after the comma before it.
fn parse_extension(word: &[u8], rest: Option<&[u8]>) -> Result<Extension, String> {
    let usage = |form: &str| format!("{} needs {form}", printable(word));
    match (word, rest) {
        (b"FEATURES", None) => Ok(Extension::Features),
        (b"FEATURES", Some(_)) => Err("FEATURES takes no fields".into()),
        // any bytes: never refused here, so a token is never logged as
        // part of a refused line; a malformed one simply matches nothing
        (b"AUTH", Some(token)) => Ok(Extension::Auth(Token::received(token))),
        (b"AUTH", None) => Err(usage("a token: AUTH,<token>")),
        (b"WALK", None) => Ok(Extension::Walk(None)),
        (b"WALK", Some(dir)) => Ok(Extension::Walk(Some(checked_name(dir)?))),
        (b"STAT", Some(name)) => Ok(Extension::Stat(checked_name(name)?)),
        (b"MKDIR", Some(name)) => Ok(Extension::Mkdir(checked_name(name)?)),
        (b"DELETE", Some(name)) => Ok(Extension::Delete(checked_name(name)?)),
        (b"SETTIME", Some(rest)) => {
            let [mtime, name] = fields(rest).ok_or_else(|| usage("SETTIME,<mtime>,<name>"))?;
            Ok(Extension::SetTime {
                mtime: parse_number(mtime).map_err(|e| format!("SETTIME mtime {e}"))?,
                name: checked_name(name)?,
            })
        }
        (b"HASH", Some(rest)) => {
            let [algorithm, name] = fields(rest).ok_or_else(|| usage("HASH,<algorithm>,<name>"))?;
            Ok(Extension::Hash {
                algorithm: checked_algorithm(algorithm)?,
                name: checked_name(name)?,
            })
        }
        (b"READAT", Some(rest)) => {
            let [offset, length, name] =
                fields(rest).ok_or_else(|| usage("READAT,<offset>,<length>,<name>"))?;
            Ok(Extension::ReadAt {
                offset: parse_number(offset).map_err(|e| format!("READAT offset {e}"))?,
                length: parse_number(length).map_err(|e| format!("READAT length {e}"))?,
                name: checked_name(name)?,
            })
        }
        (b"STAT" | b"MKDIR" | b"DELETE", None) => Err(usage("a name")),
        (b"SETTIME", None) => Err(usage("SETTIME,<mtime>,<name>")),
        (b"HASH", None) => Err(usage("HASH,<algorithm>,<name>")),
        (b"READAT", None) => Err(usage("READAT,<offset>,<length>,<name>")),
        _ => Err(unknown_command(word)),
    }
}

/// Splits `N - 1` leading fields at commas; the last field is the rest
/// (a name, which may contain commas). `None` when commas are missing.
fn fields<const N: usize>(rest: &[u8]) -> Option<[&[u8]; N]> {
    let mut out = [&rest[..0]; N];
    let mut tail = rest;
    for field in out.iter_mut().take(N - 1) {
        let comma = tail.iter().position(|&b| b == b',')?;
        *field = &tail[..comma];
        tail = &tail[comma + 1..];
    }
    out[N - 1] = tail;
    Some(out)
}

/// Longest hash algorithm name accepted.
const MAX_ALGORITHM: usize = 32;

/// A hash algorithm's name: lower-case letters, digits and `-`. Whether the
/// server has it is the server's business.
fn checked_algorithm(raw: &[u8]) -> Result<String, String> {
    let valid = !raw.is_empty()
        && raw.len() <= MAX_ALGORITHM
        && raw
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(String::from_utf8_lossy(raw).into_owned())
    } else {
        Err(format!("unknown hash algorithm `{}`", printable(raw)))
    }
}

/// The refusal of a command word that is not a command.
fn unknown_command(word: &[u8]) -> String {
    const COMMANDS: [&str; 12] = [
        "LIST", "READ", "WRITE", "BYE", "FEATURES", "STAT", "WALK", "SETTIME", "MKDIR", "DELETE",
        "HASH", "READAT",
    ];
    if word.is_empty() {
        return "empty request (expected LIST, READ, WRITE or BYE)".into();
    }
    let upper = word.to_ascii_uppercase();
    match COMMANDS.iter().find(|c| c.as_bytes() == upper) {
        Some(command) => format!(
            "unknown command `{}`: commands are upper case (`{command}`)",
            printable(word)
        ),
        None => format!(
            "unknown command `{}` (expected LIST, READ, WRITE or BYE)",
            printable(word)
        ),
    }
}

fn parse_write(rest: &[u8]) -> Result<Request, BadRequest> {
    let Some(comma) = rest.iter().rposition(|&b| b == b',') else {
        return Err(BadRequest::new(WRITE_USAGE, AfterError::Close));
    };
    let size = parse_number(&rest[comma + 1..]).map_err(|e| {
        BadRequest::new(
            format!("WRITE size {e}; closing, since the body cannot be skipped"),
            AfterError::Close,
        )
    })?;
    let name =
        checked_name(&rest[..comma]).map_err(|e| BadRequest::new(e, AfterError::SkipBody(size)))?;
    Ok(Request::Write { name, size })
}

/// Parses an IOE/1 number: 1 to 19 ASCII digits, at most `i64::MAX`.
pub fn parse_number(digits: &[u8]) -> Result<u64, String> {
    if digits.is_empty() {
        return Err("is missing".into());
    }
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(format!("`{}` is not a decimal number", printable(digits)));
    }
    if digits.len() > MAX_DIGITS {
        return Err(format!(
            "has {} digits (at most {MAX_DIGITS})",
            digits.len()
        ));
    }
    let value: u64 = std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| "does not fit in 64 bits".to_string())?;
    if value > i64::MAX as u64 {
        return Err("is larger than 9223372036854775807".into());
    }
    Ok(value)
}

fn checked_name(raw: &[u8]) -> Result<String, String> {
    let name = std::str::from_utf8(raw).map_err(|_| "name is not valid UTF-8".to_string())?;
    validate_name(name).map_err(|e| e.to_string())?;
    Ok(name.to_string())
}

/// Why a name is refused by the lexical rules of IOE/1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    /// The name is empty.
    Empty,
    /// Longer than [`MAX_NAME`] bytes (its length).
    TooLong(usize),
    /// It starts with `/`.
    Absolute,
    /// It contains a `\`.
    Backslash,
    /// It contains NUL, CR or LF.
    ControlChar,
    /// `//`, or a `/` at the end.
    EmptyComponent,
    /// A `.` or `..` component.
    DotComponent,
    /// A component starts with [`TEMP_PREFIX`] or [`PART_PREFIX`].
    Temporary,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => write!(f, "name is empty"),
            NameError::TooLong(n) => write!(f, "name is {n} bytes long (at most {MAX_NAME})"),
            NameError::Absolute => write!(f, "name must be relative (no leading `/`)"),
            NameError::Backslash => write!(f, "name must not contain a backslash"),
            NameError::ControlChar => write!(f, "name must not contain NUL, CR or LF"),
            NameError::EmptyComponent => {
                write!(f, "name has an empty component (`//` or a trailing `/`)")
            }
            NameError::DotComponent => write!(f, "name must not contain `.` or `..` components"),
            NameError::Temporary => write!(
                f,
                "names starting with `{TEMP_PREFIX}` or `{PART_PREFIX}` are reserved for \
                 transfers in progress"
            ),
        }
    }
}

impl std::error::Error for NameError {}

/// Checks a name against the lexical rules of IOE/1 (the server also checks
/// where symbolic links lead).
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME {
        return Err(NameError::TooLong(name.len()));
    }
    if name.starts_with('/') {
        return Err(NameError::Absolute);
    }
    if name.contains('\\') {
        return Err(NameError::Backslash);
    }
    if name.contains(['\0', '\r', '\n']) {
        return Err(NameError::ControlChar);
    }
    for component in name.split('/') {
        match component {
            "" => return Err(NameError::EmptyComponent),
            "." | ".." => return Err(NameError::DotComponent),
            c if is_reserved(c.as_bytes()) => return Err(NameError::Temporary),
            _ => {}
        }
    }
    Ok(())
}

/// A status line as the client reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// `OK` or `OK <text>`.
    Ok(String),
    /// `ERROR: <message>`.
    Error(String),
    /// The bare size that answers a `READ`.
    Size(u64),
}

/// Parses a status line (without its LF; a trailing CR is ignored).
pub fn parse_status(line: &[u8]) -> Result<Status, String> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text =
        std::str::from_utf8(line).map_err(|_| "status line is not valid UTF-8".to_string())?;
    if text == "OK" {
        return Ok(Status::Ok(String::new()));
    }
    if let Some(rest) = text.strip_prefix("OK ") {
        return Ok(Status::Ok(rest.to_string()));
    }
    if let Some(rest) = text.strip_prefix("ERROR:") {
        return Ok(Status::Error(rest.trim_start().to_string()));
    }
    parse_number(line)
        .map(Status::Size)
        .map_err(|_| format!("unexpected status line `{}`", printable(line)))
}

/// The kind of a listed entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file (`f`).
    File,
    /// A folder (`d`).
    Dir,
}

impl EntryKind {
    /// The one-letter wire form, `f` or `d`.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::File => "f",
            EntryKind::Dir => "d",
        }
    }
}

/// One line of a `LIST` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// File or folder.
    pub kind: EntryKind,
    /// Size in bytes (0 for a folder).
    pub size: u64,
    /// Modification time, in seconds since the Unix epoch.
    pub mtime: u64,
    /// Full name relative to the server's root.
    pub name: String,
}

impl Entry {
    /// The entry line, LF included.
    pub fn to_line(&self) -> String {
        format!(
            "{},{},{},{}\n",
            self.kind.as_str(),
            self.size,
            self.mtime,
            self.name
        )
    }

    /// Parses an entry line (without its LF). The name must pass
    /// [`validate_name`], so a hostile server cannot steer a download outside
    /// the folder it is meant for.
    pub fn parse(line: &[u8]) -> Result<Entry, String> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let bad = || format!("malformed entry line `{}`", printable(line));
        let mut fields = line.splitn(4, |&b| b == b',');
        let kind = match fields.next() {
            Some(b"f") => EntryKind::File,
            Some(b"d") => EntryKind::Dir,
            _ => return Err(bad()),
        };
        let size = parse_number(fields.next().ok_or_else(bad)?).map_err(|_| bad())?;
        let mtime = parse_number(fields.next().ok_or_else(bad)?).map_err(|_| bad())?;
        let name = std::str::from_utf8(fields.next().ok_or_else(bad)?).map_err(|_| bad())?;
        validate_name(name).map_err(|e| {
            format!(
                "server listed an unsafe name `{}`: {e}",
                printable(name.as_bytes())
            )
        })?;
        Ok(Entry {
            kind,
            size,
            mtime,
            name: name.to_string(),
        })
    }
}

/// What a server says it does beyond IOE/1 (the `FEATURES` reply).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Features {
    /// `stat`.
    pub stat: bool,
    /// `walk`.
    pub walk: bool,
    /// `hash <algorithms…>`: the algorithms (empty: no `HASH`).
    pub hash: Vec<String>,
    /// `range` (`READAT`).
    pub range: bool,
    /// `settime`.
    pub settime: bool,
    /// `delete`.
    pub delete: bool,
    /// `mkdir`.
    pub mkdir: bool,
    /// `auth`.
    pub auth: bool,
    /// `limits read-only=1`.
    pub read_only: bool,
    /// `limits max-size=<bytes>`.
    pub max_size: Option<u64>,
}

impl Features {
    /// The feature lines of a `FEATURES` reply, without LFs.
    pub fn to_lines(&self) -> Vec<String> {
        let flags = [
            (self.stat, "stat"),
            (self.walk, "walk"),
            (!self.hash.is_empty(), "hash"),
            (self.range, "range"),
            (self.settime, "settime"),
            (self.delete, "delete"),
            (self.mkdir, "mkdir"),
            (self.auth, "auth"),
        ];
        let mut lines = Vec::new();
        for (on, word) in flags {
            match (on, word) {
                (true, "hash") => lines.push(format!("hash {}", self.hash.join(" "))),
                (true, word) => lines.push(word.to_string()),
                (false, _) => {}
            }
        }
        let mut limits = format!("limits read-only={}", u8::from(self.read_only));
        if let Some(max) = self.max_size {
            limits.push_str(&format!(" max-size={max}"));
        }
        lines.push(limits);
        lines
    }

    /// Reads the feature lines of a `FEATURES` reply. Words and parameters
    /// this client does not know are passed over (a newer server may have
    /// more).
    pub fn parse<'a>(lines: impl IntoIterator<Item = &'a str>) -> Features {
        let mut features = Features::default();
        for line in lines {
            let mut words = line.split(' ').filter(|w| !w.is_empty());
            match words.next() {
                Some("stat") => features.stat = true,
                Some("walk") => features.walk = true,
                Some("hash") => features.hash = words.map(str::to_string).collect(),
                Some("range") => features.range = true,
                Some("settime") => features.settime = true,
                Some("delete") => features.delete = true,
                Some("mkdir") => features.mkdir = true,
                Some("auth") => features.auth = true,
                Some("limits") => {
                    for pair in words {
                        match pair.split_once('=') {
                            Some(("read-only", value)) => features.read_only = value == "1",
                            Some(("max-size", value)) => {
                                features.max_size = parse_number(value.as_bytes()).ok();
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        features
    }

    /// Whether the server has the feature named by `word` (`stat`, `walk`,
    /// `hash`, `range`, …).
    pub fn has(&self, word: &str) -> bool {
        match word {
            "stat" => self.stat,
            "walk" => self.walk,
            "hash" => !self.hash.is_empty(),
            "range" => self.range,
            "settime" => self.settime,
            "delete" => self.delete,
            "mkdir" => self.mkdir,
            "auth" => self.auth,
            _ => false,
        }
    }
}

/// One line of a `WALK` reply after its `OK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalkLine {
    /// An entry.
    Entry(Entry),
    /// `END <n>`: the walk is complete, `n` entries were sent.
    End(u64),
    /// `ERROR: <message>`: the walk failed part way.
    Error(String),
}

impl WalkLine {
    /// Parses a line of a `WALK` reply (without its LF).
    pub fn parse(line: &[u8]) -> Result<WalkLine, String> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(count) = line.strip_prefix(b"END ") {
            return parse_number(count)
                .map(WalkLine::End)
                .map_err(|e| format!("WALK end count {e}"));
        }
        if line.starts_with(b"ERROR:") {
            return match parse_status(line)? {
                Status::Error(message) => Ok(WalkLine::Error(message)),
                _ => Err(format!("malformed line `{}`", printable(line))),
            };
        }
        Entry::parse(line).map(WalkLine::Entry)
    }
}

/// Where a legacy (unterminated) `WRITE,<name>,<size>` header ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegacyWriteHeader {
    /// Bytes of the header; the body starts right after them.
    pub len: usize,
    /// The upload's size that the header gives.
    pub size: u64,
}

/// Finds the end of a legacy `WRITE` header at the start of `buffered`, which
/// holds everything the client sent so far. The original design sends the
/// header and its body back to back, so the split is a guess, resolved so:
/// 1. a split after which exactly `size` bytes follow (the client sent the
///    whole upload and is waiting for the reply) wins; among several, the one
///    with the longest name;
/// 2. otherwise (the body is still arriving) the header ends with the digits
///    after the first comma that is followed by a digit.
///
/// Returns `None` when no comma is followed by a digit.
pub fn split_legacy_write(buffered: &[u8]) -> Option<LegacyWriteHeader> {
    const WORD: &[u8] = b"WRITE,";
    if !buffered.starts_with(WORD) {
        return None;
    }
    let search_end = buffered.len().min(WORD.len() + MAX_NAME + 1);
    let mut first = None;
    let mut exact = None;
    for comma in WORD.len() + 1..search_end {
        if buffered[comma] != b',' {
            continue;
        }
        let digits = buffered[comma + 1..]
            .iter()
            .take(MAX_DIGITS)
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 {
            continue;
        }
        if first.is_none() {
            let len = comma + 1 + digits;
            let size = parse_number(&buffered[comma + 1..len]).ok()?;
            first = Some(LegacyWriteHeader { len, size });
        }
        for k in 1..=digits {
            let len = comma + 1 + k;
            if let Ok(size) = parse_number(&buffered[comma + 1..len])
                && (len as u64).checked_add(size) == Some(buffered.len() as u64)
            {
                exact = Some(LegacyWriteHeader { len, size });
            }
        }
    }
    exact.or(first)
}

/// Whether the split [`split_legacy_write`] makes of `buffered` leaves a
/// body of digits only. Such a body may equally be the rest of the size of a
/// header sent on its own (`WRITE,n,250` is `n`, 2 bytes, body `50` — or the
/// header of a 250-byte upload still to come), so the server waits longer
/// before it believes the split.
pub fn legacy_body_may_be_size(buffered: &[u8]) -> bool {
    split_legacy_write(buffered).is_some_and(|header| {
        let body = &buffered[header.len..];
        !body.is_empty() && body.iter().all(u8::is_ascii_digit)
    })
}

/// A byte string shown to a person: invalid UTF-8 becomes U+FFFD, control
/// characters and quotes are escaped, and it is cut at 80 characters.
pub fn printable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text.chars().take(80).flat_map(char::escape_debug).collect();
    if text.chars().count() > 80 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_errors_are_told_apart_from_refusals() {
        assert!(announces_close("server is shutting down; closing"));
        assert!(announces_close("idle for 300 s; closing"));
        assert!(announces_close(
            "server busy (64 connections open); closing, try again later"
        ));
        assert!(announces_close(
            "WRITE size is not a number; closing, since the body cannot be skipped"
        ));
        assert!(!announces_close("no such file or folder: `a; closing`"));
        assert!(!announces_close("`b; closing, x` is a folder, not a file"));
        assert!(!announces_close("the server is read-only"));
    }

    #[test]
    fn parses_every_request_form() {
        assert_eq!(parse_request(b"LIST"), Ok(Request::List(None)));
        assert_eq!(parse_request(b"LIST\r"), Ok(Request::List(None)));
        assert_eq!(
            parse_request(b"LIST,a/b"),
            Ok(Request::List(Some("a/b".into())))
        );
        assert_eq!(
            parse_request(b"READ,a, b.txt"),
            Ok(Request::Read("a, b.txt".into()))
        );
        assert_eq!(
            parse_request(b"WRITE,x,y,12"),
            Ok(Request::Write {
                name: "x,y".into(),
                size: 12
            })
        );
        assert_eq!(parse_request(b"BYE"), Ok(Request::Bye));
    }

    #[test]
    fn request_lines_round_trip() {
        for request in [
            Request::List(None),
            Request::List(Some("d".into())),
            Request::Read("a,b c/é".into()),
            Request::Write {
                name: "w,1".into(),
                size: 0,
            },
            Request::Bye,
            Request::Extension(Extension::Features),
            Request::Extension(Extension::Stat("s,t".into())),
            Request::Extension(Extension::Walk(None)),
            Request::Extension(Extension::Walk(Some("d/e".into()))),
            Request::Extension(Extension::SetTime {
                mtime: 1_700_000_000,
                name: "a,1,2".into(),
            }),
            Request::Extension(Extension::Mkdir("m/n".into())),
            Request::Extension(Extension::Delete("x, y".into())),
            Request::Extension(Extension::Hash {
                algorithm: "blake3".into(),
                name: "h,sha256,1".into(),
            }),
            Request::Extension(Extension::ReadAt {
                offset: 5,
                length: 0,
                name: "r,1,2".into(),
            }),
            Request::Extension(Extension::Auth(Token::new("ioe_01ab", "t").unwrap())),
        ] {
            let line = request.to_line();
            assert_eq!(
                parse_request(line.trim_end_matches('\n').as_bytes()),
                Ok(request)
            );
        }
    }

    #[test]
    fn extension_requests_take_the_name_last_and_refuse_bad_fields() {
        let refused = |line: &[u8]| {
            let bad = parse_request(line).unwrap_err();
            assert_eq!(bad.then, AfterError::Continue, "{}", bad.message);
            bad.message
        };
        assert_eq!(refused(b"STAT"), "STAT needs a name");
        assert_eq!(refused(b"FEATURES,x"), "FEATURES takes no fields");
        assert_eq!(
            refused(b"SETTIME,abc"),
            "SETTIME needs SETTIME,<mtime>,<name>"
        );
        assert_eq!(
            refused(b"SETTIME,-1,a"),
            "SETTIME mtime `-1` is not a decimal number"
        );
        assert_eq!(refused(b"HASH,MD5,a"), "unknown hash algorithm `MD5`");
        assert_eq!(
            refused(b"READAT,1,a"),
            "READAT needs READAT,<offset>,<length>,<name>"
        );
        assert_eq!(
            refused(b"READAT,1,2,../a"),
            NameError::DotComponent.to_string()
        );
        assert_eq!(refused(b"MKDIR,a/"), NameError::EmptyComponent.to_string());
        assert_eq!(
            refused(b"delete,a"),
            "unknown command `delete`: commands are upper case (`DELETE`)"
        );
    }

    #[test]
    fn features_round_trip_and_unknown_words_are_passed_over() {
        let features = Features {
            stat: true,
            walk: true,
            hash: vec!["blake3".into(), "sha256".into()],
            range: true,
            read_only: true,
            max_size: Some(10),
            ..Features::default()
        };
        let lines = features.to_lines();
        assert_eq!(
            lines,
            [
                "stat",
                "walk",
                "hash blake3 sha256",
                "range",
                "limits read-only=1 max-size=10"
            ]
        );
        assert_eq!(Features::parse(lines.iter().map(String::as_str)), features);
        let newer = Features::parse(["teleport now", "stat", "limits read-only=0 speed=9"]);
        assert!(newer.stat && !newer.walk && !newer.read_only && newer.max_size.is_none());
        assert!(newer.has("stat") && !newer.has("teleport"));
    }

    #[test]
    fn walk_lines() {
        assert_eq!(WalkLine::parse(b"END 3"), Ok(WalkLine::End(3)));
        assert_eq!(
            WalkLine::parse(b"ERROR: gone"),
            Ok(WalkLine::Error("gone".into()))
        );
        assert!(matches!(
            WalkLine::parse(b"f,1,2,a/b"),
            Ok(WalkLine::Entry(_))
        ));
        assert!(WalkLine::parse(b"END x").is_err());
        assert!(WalkLine::parse(b"f,1,2,../b").is_err());
    }

    #[test]
    fn refusals_say_how_to_resync() {
        let then = |line: &[u8]| parse_request(line).unwrap_err().then;
        assert_eq!(then(b"NOPE"), AfterError::Continue);
        assert_eq!(then(b"list"), AfterError::Continue);
        assert_eq!(then(b"READ,../x"), AfterError::Continue);
        assert_eq!(then(b"READ,\xff"), AfterError::Continue);
        assert_eq!(then(b"WRITE,../x,5"), AfterError::SkipBody(5));
        assert_eq!(then(b"WRITE,\xfe,7"), AfterError::SkipBody(7));
        assert_eq!(then(b"WRITE,x,-5"), AfterError::Close);
        assert_eq!(then(b"WRITE,x,+5"), AfterError::Close);
        assert_eq!(
            then(b"WRITE,x,123456789012345678901234567890"),
            AfterError::Close
        );
        assert_eq!(then(b"WRITE,x,9223372036854775808"), AfterError::Close);
        assert_eq!(then(b"WRITE,x"), AfterError::Close);
        assert_eq!(then(b"WRITE"), AfterError::Close);
    }

    #[test]
    fn names_follow_the_protocol_rules() {
        for good in ["a", "a b,c.txt", "dir/sub/ä.bin", ".hidden", "x..y"] {
            assert_eq!(validate_name(good), Ok(()), "{good}");
        }
        let long = "a".repeat(MAX_NAME + 1);
        for bad in [
            "",
            "/etc/passwd",
            "a//b",
            "a/",
            "./a",
            "a/../b",
            "..",
            "a\\b",
            "a\0b",
            "a\rb",
            "a\nb",
            &long,
            ".ioe-tmp-x",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn numbers_are_strict() {
        assert_eq!(parse_number(b"0"), Ok(0));
        assert_eq!(parse_number(b"9223372036854775807"), Ok(i64::MAX as u64));
        for bad in [
            &b""[..],
            b"-1",
            b"+1",
            b" 1",
            b"1.0",
            b"9999999999999999999",
            b"00000000000000000001",
        ] {
            assert!(parse_number(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status(b"OK"), Ok(Status::Ok(String::new())));
        assert_eq!(parse_status(b"OK 3"), Ok(Status::Ok("3".into())));
        assert_eq!(
            parse_status(b"ERROR: nope"),
            Ok(Status::Error("nope".into()))
        );
        assert_eq!(parse_status(b"42\r"), Ok(Status::Size(42)));
        assert!(parse_status(b"what").is_err());
    }

    #[test]
    fn entries_round_trip_and_refuse_unsafe_names() {
        let entry = Entry {
            kind: EntryKind::File,
            size: 5,
            mtime: 17,
            name: "a,b/c d".into(),
        };
        let line = entry.to_line();
        assert_eq!(Entry::parse(line.trim_end().as_bytes()), Ok(entry));
        assert!(Entry::parse(b"f,1,2,../escape").is_err());
        assert!(Entry::parse(b"f,1,2,/abs").is_err());
        assert!(Entry::parse(b"x,1,2,a").is_err());
        assert!(Entry::parse(b"f,1,a").is_err());
    }

    #[test]
    fn legacy_write_prefers_the_split_that_accounts_for_every_byte() {
        // name with a comma and a digit: only the last split fits the length
        let h = split_legacy_write(b"WRITE,a,1b,5hello").unwrap();
        assert_eq!((h.len, h.size), (12, 5));
        // a body that begins with digits
        let h = split_legacy_write(b"WRITE,n,3123").unwrap();
        assert_eq!((h.len, h.size), (9, 3));
        // header alone, body not there yet: the whole digit run
        let h = split_legacy_write(b"WRITE,n,25").unwrap();
        assert_eq!((h.len, h.size), (10, 25));
        // ambiguous by design: "1" + body "0" accounts for every byte
        let h = split_legacy_write(b"WRITE,n,10").unwrap();
        assert_eq!((h.len, h.size), (9, 1));
        // body still arriving: first comma with digits, whole digit run
        let h = split_legacy_write(b"WRITE,n,100abc").unwrap();
        assert_eq!((h.len, h.size), (11, 100));
        assert_eq!(split_legacy_write(b"WRITE,name"), None);
        assert_eq!(split_legacy_write(b"READ,x,1"), None);
    }

    /// A stream of valid requests cut at every byte offset, as a reader
    /// would see it: the whole lines before the cut parse exactly as whole
    /// requests do, and the partial line after it never panics the parser.
    #[test]
    fn requests_cut_at_every_offset_parse_the_same() {
        let requests = [
            Request::List(None),
            Request::List(Some("d/é, x".into())),
            Request::Read("a,b c/é.txt".into()),
            Request::Write {
                name: "w,1,2".into(),
                size: 3,
            },
            Request::Read("r".into()),
            Request::Bye,
        ];
        let (mut stream, mut line_ends) = (Vec::new(), Vec::new());
        for request in &requests {
            stream.extend_from_slice(request.to_line().as_bytes());
            line_ends.push(stream.len());
            if let Request::Write { size, .. } = request {
                stream.extend(std::iter::repeat_n(b'\n', *size as usize));
            }
        }
        for cut in 0..=stream.len() {
            let (mut parsed, mut rest) = (Vec::new(), &stream[..cut]);
            while let Some(lf) = rest.iter().position(|&b| b == b'\n') {
                let request = parse_request(&rest[..lf]).unwrap();
                let body = match request {
                    Request::Write { size, .. } => size as usize,
                    _ => 0,
                };
                parsed.push(request);
                rest = &rest[(lf + 1 + body).min(rest.len())..];
            }
            // the unterminated tail: any result, no panic
            let _ = parse_request(rest);
            let _ = split_legacy_write(rest);
            assert_eq!(parsed, requests[..parsed.len()], "cut at {cut}");
            let complete = line_ends.iter().filter(|&&end| end <= cut).count();
            assert_eq!(parsed.len(), complete, "cut at {cut}");
        }
    }

    #[test]
    fn legacy_splits_with_an_all_digit_body_are_doubtful() {
        assert!(legacy_body_may_be_size(b"WRITE,n,10"));
        assert!(legacy_body_may_be_size(b"WRITE,n,250"));
        assert!(legacy_body_may_be_size(b"WRITE,n,3123"));
        assert!(!legacy_body_may_be_size(b"WRITE,n,5hello"));
        assert!(!legacy_body_may_be_size(b"WRITE,n,3a23"));
        assert!(!legacy_body_may_be_size(b"WRITE,n,25"));
        assert!(!legacy_body_may_be_size(b"WRITE,n,0"));
        assert!(!legacy_body_may_be_size(b"WRITE,n"));
    }

    #[test]
    fn legacy_split_never_panics_on_any_prefix() {
        let input = b"WRITE,a,1,22,333\n4444,55555";
        for end in 0..=input.len() {
            let _ = split_legacy_write(&input[..end]);
            let _ = parse_request(&input[..end]);
        }
    }
}
