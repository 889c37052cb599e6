//! The client's side of the IOE/1 extensions: `features`, `stat`,
//! `exists`, `walk`, `hash`, `mkdir`, `delete` and `set_mtime` on a
//! [`Session`]. A server without an extension answers `ERROR:`; the
//! session then asks `FEATURES` (once) and, if the server does not list
//! it, the call fails as [`ErrorKind::Unsupported`].

use super::transfer::parse_digest;
use super::{Session, check_name};
use crate::digest::Algorithm;
use crate::error::{Error, ErrorKind, Result};
use crate::protocol::{self, Entry, Extension, Features, Request, Status, WalkLine};

impl Session {
    /// What the server does beyond IOE/1, asked once per session. A plain
    /// IOE/1 server, which refuses `FEATURES`, has none.
    pub fn features(&mut self) -> Result<Features> {
        if let Some(features) = &self.features {
            return Ok(features.clone());
        }
        let op = "features";
        let _in_flight = self.exchange(op)?;
        self.send(op, Extension::Features.to_line().as_bytes())?;
        let features = match self.status(op)? {
            Status::Ok(text) => {
                let count = protocol::parse_number(text.as_bytes())
                    .map_err(|e| self.broken(op, format!("feature count {e}")))?;
                if count > MAX_FEATURES {
                    return Err(self.broken(op, format!("{count} feature lines")));
                }
                let mut lines = Vec::new();
                for _ in 0..count {
                    let line = self.line(op)?;
                    lines.push(String::from_utf8_lossy(&line).into_owned());
                }
                Features::parse(lines.iter().map(String::as_str))
            }
            Status::Error(message) if protocol::announces_close(&message) => {
                return Err(self.refusal(op, &message));
            }
            Status::Error(_) => Features::default(),
            Status::Size(_) => return Err(self.broken(op, "a size where `OK <n>` was expected")),
        };
        self.features = Some(features.clone());
        Ok(features)
    }

    /// [`features`](Self::features), asked on the way to operation `op`
    /// (an error is reported as `op`'s).
    pub(crate) fn features_for(&mut self, op: &str) -> Result<Features> {
        self.features().map_err(|e| e.with_op(op))
    }

    /// The entry of one remote file or folder.
    pub fn stat(&mut self, name: &str) -> Result<Entry> {
        let op = format!("stat `{name}`");
        check_name(&op, name)?;
        match self.ask(&op, "stat", Extension::Stat(name.to_string()))? {
            Status::Ok(line) => {
                let entry = Entry::parse(line.as_bytes()).map_err(|e| self.broken(&op, e))?;
                if entry.name != name {
                    let cause = format!("it answered for `{}`", entry.name);
                    return Err(self.broken(&op, cause));
                }
                Ok(entry)
            }
            _ => Err(self.broken(&op, "a size where `OK <entry>` was expected")),
        }
    }

    /// Whether a remote file or folder of that name exists.
    pub fn exists(&mut self, name: &str) -> Result<bool> {
        match self.stat(name) {
            Ok(_) => Ok(true),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.with_op(format!("exists `{name}`"))),
        }
    }

    /// Every entry under the root (`None`) or a folder, depth first, each
    /// passed to `each` as it arrives; returns how many there were. At
    /// most [`Session::set_max_listing`] entries are taken.
    pub fn walk_each(&mut self, dir: Option<&str>, mut each: impl FnMut(Entry)) -> Result<u64> {
        let op = match dir {
            Some(dir) => format!("walk `{dir}`"),
            None => "walk".to_string(),
        };
        if let Some(dir) = dir {
            check_name(&op, dir)?;
        }
        match self.ask(&op, "walk", Extension::Walk(dir.map(str::to_string)))? {
            Status::Ok(text) if text.is_empty() => {}
            _ => return Err(self.broken(&op, "something other than `OK` began the walk")),
        }
        let prefix = dir.map(|d| format!("{d}/"));
        let mut count = 0;
        loop {
            let line = self.line(&op)?;
            match WalkLine::parse(&line).map_err(|e| self.broken(&op, e))? {
                WalkLine::Entry(entry) => {
                    if prefix.as_ref().is_some_and(|p| !entry.name.starts_with(p)) {
                        let cause = format!("it walked into `{}`", entry.name);
                        return Err(self.broken(&op, cause));
                    }
                    count += 1;
                    if count > self.max_listing {
                        return Err(self.listing_too_long(&op, count));
                    }
                    each(entry);
                }
                WalkLine::End(sent) if sent == count => return Ok(count),
                WalkLine::End(sent) => {
                    let cause = format!("it counted {sent} entries but sent {count}");
                    return Err(self.broken(&op, cause));
                }
                WalkLine::Error(message) => {
                    return Err(
                        self.refusal(&op, &format!("{message} (the walk stopped part way)"))
                    );
                }
            }
        }
    }

    /// Every entry under the root (`None`) or a folder, depth first.
    pub fn walk(&mut self, dir: Option<&str>) -> Result<Vec<Entry>> {
        let mut entries = Vec::new();
        self.walk_each(dir, |entry| entries.push(entry))?;
        Ok(entries)
    }

    /// The digest of a remote file with `algorithm`, or, with `None`, with
    /// the best one both sides have (`blake3`, else `sha256`).
    pub fn hash(
        &mut self,
        name: &str,
        algorithm: Option<Algorithm>,
    ) -> Result<(Algorithm, String)> {
        let op = format!("hash `{name}`");
        check_name(&op, name)?;
        let algorithm = match algorithm {
            Some(algorithm) => algorithm,
            None => self.best_hash(&op)?,
        };
        let request = Extension::Hash {
            algorithm: algorithm.name().to_string(),
            name: name.to_string(),
        };
        let Status::Ok(text) = self.ask(&op, "hash", request)? else {
            return Err(self.broken(&op, "a size where `OK <algorithm> <digest>` was expected"));
        };
        match parse_digest(&text, algorithm) {
            Some(hex) => Ok((algorithm, hex)),
            None => Err(self.broken(&op, format!("malformed digest reply `OK {text}`"))),
        }
    }

    /// The best algorithm the server and this client both have.
    pub(crate) fn best_hash(&mut self, op: &str) -> Result<Algorithm> {
        let features = self.features_for(op)?;
        Algorithm::ALL
            .into_iter()
            .find(|a| features.hash.iter().any(|h| h == a.name()))
            .ok_or_else(|| unsupported(op, &self.addr, "hash"))
    }

    /// Makes a remote folder and its missing parents (an existing folder is
    /// fine).
    pub fn mkdir(&mut self, name: &str) -> Result<()> {
        self.change(
            &format!("mkdir `{name}`"),
            "mkdir",
            name,
            Extension::Mkdir(name.to_string()),
        )
    }

    /// Removes a remote file or empty folder.
    pub fn delete(&mut self, name: &str) -> Result<()> {
        self.change(
            &format!("delete `{name}`"),
            "delete",
            name,
            Extension::Delete(name.to_string()),
        )
    }

    /// Sets a remote file's or folder's modification time (seconds since
    /// the epoch).
    pub fn set_mtime(&mut self, name: &str, mtime: u64) -> Result<()> {
        let request = Extension::SetTime {
            mtime,
            name: name.to_string(),
        };
        self.change(&format!("set_mtime `{name}`"), "settime", name, request)
    }

    /// A request whose success is a bare `OK`.
    fn change(&mut self, op: &str, feature: &str, name: &str, request: Extension) -> Result<()> {
        check_name(op, name)?;
        match self.ask(op, feature, request)? {
            Status::Ok(text) if text.is_empty() => Ok(()),
            _ => Err(self.broken(op, "something other than `OK` answered it")),
        }
    }

    /// Sends an extension request and reads its status line; an `ERROR:`
    /// from a server without `feature` is [`ErrorKind::Unsupported`].
    fn ask(&mut self, op: &str, feature: &str, request: Extension) -> Result<Status> {
        let status = {
            let _in_flight = self.exchange(op)?;
            self.send(op, Request::Extension(request).to_line().as_bytes())?;
            self.status(op)?
        };
        match status {
            Status::Error(message) if protocol::announces_close(&message) => {
                Err(self.refusal(op, &message))
            }
            Status::Error(message) => {
                if !self.features_for(op)?.has(feature) {
                    return Err(unsupported(op, &self.addr, feature));
                }
                Err(self.refusal(op, &message))
            }
            other => Ok(other),
        }
    }
}

/// Most lines a `FEATURES` reply may have.
const MAX_FEATURES: u64 = 1000;

fn unsupported(op: &str, addr: &str, feature: &str) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        op,
        format!("server {addr} does not have the `{feature}` extension (it speaks plain IOE/1)"),
    )
}
