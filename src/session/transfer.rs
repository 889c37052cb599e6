//! Whole-file transfers on a [`Session`]: `read` (download) and `write`
//! (upload), with the [`TransferOptions`]: the copy gets the source's
//! modification time, digests of both sides compared, and interrupted
//! downloads resumed (see `resume.rs`). A download goes to a temporary
//! file beside its target and is renamed only once every byte arrived (and
//! matched, when verified); an upload streams from the file in pieces.

use super::{DRAIN_LIMIT, Session, check_name};
use crate::conn::{BUFFER_SIZE, BodyError};
use crate::digest::{Algorithm, Hasher};
use crate::error::{Error, ErrorKind, Result};
use crate::partial;
use crate::progress::Meter;
use crate::protocol::{self, Entry, Extension, Request, Status};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tempfile::NamedTempFile;

/// How [`Session::read_with`] and [`Session::write_with`] go about a
/// transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferOptions {
    /// Give the copy the source's modification time (on by default):
    /// downloads ask `STAT` in the same round trip as `READ`; uploads send
    /// `SETTIME` once the server confirmed the upload.
    pub mtime: bool,
    /// Compare the digest of what arrived with the source's, computed
    /// while the bytes stream through; a mismatch fails as
    /// [`ErrorKind::Corrupt`] and keeps no file under the target name.
    pub verify: bool,
    /// Downloads: keep an interrupted download's bytes, and fetch only the
    /// rest the next time (see [`Session::read_with`]).
    pub resume: bool,
}

impl Default for TransferOptions {
    fn default() -> TransferOptions {
        TransferOptions {
            mtime: true,
            verify: false,
            resume: false,
        }
    }
}

/// What a transfer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transferred {
    /// The file's size.
    pub size: u64,
    /// Body bytes that crossed the network (less than `size` after a resume).
    pub moved: u64,
    /// Where a resumed download started; 0 when it was not resumed.
    pub resumed_from: u64,
    /// The digest both sides agreed on, when verified.
    pub digest: Option<(Algorithm, String)>,
    /// The modification time the copy was given, if any.
    pub mtime: Option<u64>,
}

impl Session {
    /// Downloads `remote` to `local` with the default options (the remote
    /// file's mtime kept), creating missing parent folders. Returns the
    /// number of bytes received.
    pub fn read(&mut self, remote: &str, local: &Path) -> Result<u64> {
        self.read_with(remote, local, &TransferOptions::default())
            .map(|t| t.size)
    }

    /// Uploads `local` as `remote` with the default options (the local
    /// file's mtime kept). Returns the number of bytes sent.
    pub fn write(&mut self, local: &Path, remote: &str) -> Result<u64> {
        self.write_with(local, remote, &TransferOptions::default())
            .map(|t| t.size)
    }

    /// Downloads `remote` to `local`, creating missing parent folders.
    /// `STAT`, `READ` and `HASH` (as the options need them) go out in one
    /// round trip. With `resume`, see [`resume`](super::resume).
    pub fn read_with(
        &mut self,
        remote: &str,
        local: &Path,
        options: &TransferOptions,
    ) -> Result<Transferred> {
        let op = format!("read `{remote}`");
        check_name(&op, remote)?;
        check_local_target(&op, remote, local)?;
        if options.resume
            && let Some(done) = self.read_resuming(&op, remote, local, options.mtime)?
        {
            return Ok(done);
        }
        let algorithm = match options.verify {
            true => Some(self.best_hash(&op)?),
            false => None,
        };
        // a server known to lack STAT is not asked
        let ask_stat = options.mtime && self.features.as_ref().is_none_or(|f| f.stat);
        // from the requests on, Ctrl-C stops the wait for the replies too
        let _in_flight = self.exchange(&op)?;
        let mut requests = String::new();
        if ask_stat {
            requests.push_str(&Extension::Stat(remote.to_string()).to_line());
        }
        requests.push_str(&Request::Read(remote.to_string()).to_line());
        if let Some(algorithm) = algorithm {
            requests.push_str(&hash_request(algorithm, remote));
        }
        self.send(&op, requests.as_bytes())?;
        // made while the server works on the request: for small files this
        // overlap is a fifth of the time. If it fails, the body is still
        // read (and dropped) so that the session stays in sync, up to
        // DRAIN_LIMIT bytes (see `receive`).
        let part = create_part(&op, local);
        let entry = match ask_stat {
            true => self.stat_reply(&op, remote)?,
            false => None,
        };
        let size = match self.status(&op)? {
            Status::Size(size) => size,
            Status::Error(message) => {
                let refused = self.refusal(&op, &message);
                return Err(self.skip_pipelined(&op, algorithm.is_some(), refused));
            }
            Status::Ok(_) => return Err(self.broken(&op, "`OK` where a size was expected")),
        };
        let mut hasher = algorithm.map(Algorithm::hasher);
        let part = match self.receive_body(&op, remote, local, size, part, hasher.as_mut()) {
            Ok(part) => part,
            Err(e) => return Err(self.skip_pipelined(&op, algorithm.is_some(), e)),
        };
        let digest = match (algorithm, hasher) {
            (Some(algorithm), Some(hasher)) => {
                Some(self.check_digest(&op, remote, algorithm, hasher.finish_hex())?)
            }
            _ => None,
        };
        // a STAT that saw another size saw another version of the file
        let mtime = entry.filter(|e| e.size == size).map(|e| e.mtime);
        if let Some(mtime) = mtime {
            set_mtime(part.as_file(), mtime).map_err(|e| local_io(&op, local, e))?;
        }
        part.persist(local)
            .map_err(|e| local_io(&op, local, e.error))?;
        Ok(Transferred {
            size,
            moved: size,
            resumed_from: 0,
            digest,
            mtime,
        })
    }

    /// Receives a download's body of `size` bytes into `part`, with the
    /// progress bar, feeding `hasher` as the bytes go by.
    pub(super) fn receive_body<W: Write>(
        &mut self,
        op: &str,
        remote: &str,
        local: &Path,
        size: u64,
        part: Result<W>,
        hasher: Option<&mut Hasher>,
    ) -> Result<W> {
        if self.cancel.is_cancelled() {
            return Err(self.lost(op, "cancelled"));
        }
        // reading the status line left a shorter timeout on the socket
        let timeout = self.io_timeout;
        let reset = self.conn_mut(op)?.set_read_timeout(Some(timeout));
        reset.map_err(|e| self.lost(op, e))?;
        let mut meter = Meter::start(self.progress, remote, size);
        self.receive(op, local, size, part, &mut meter, hasher)
    }

    /// Reads a download's `size` body bytes into `part`. Once writing
    /// locally has failed (or `part` could not be made), the rest of the
    /// body is read and dropped, so that the session stays usable, if at
    /// most [`DRAIN_LIMIT`] bytes are still to come; with more, the session
    /// is closed at once. The temporary file is removed on failure.
    fn receive<W: Write>(
        &mut self,
        op: &str,
        local: &Path,
        size: u64,
        mut part: Result<W>,
        meter: &mut Meter,
        mut hasher: Option<&mut Hasher>,
    ) -> Result<W> {
        let mut left = size;
        while left > 0 {
            if let Err(e) = &part
                && left > DRAIN_LIMIT
            {
                self.conn = None;
                return Err(Error::new(
                    e.kind,
                    op,
                    format!(
                        "{}; the session was closed rather than read the {left} bytes still to come (connect again to go on)",
                        e.cause
                    ),
                ));
            }
            // in pieces, so that a failed write is noticed within one
            let piece = left.min(BUFFER_SIZE as u64);
            let received = self.conn_mut(op)?.read_body(piece, |chunk| {
                if let Ok(file) = &mut part {
                    file.write_all(chunk)?;
                }
                if let Some(hasher) = hasher.as_deref_mut() {
                    hasher.update(chunk);
                }
                meter.advance(chunk.len() as u64);
                Ok(())
            });
            match received {
                Ok(Ok(())) => {}
                // dropping the temporary file removes it
                Ok(Err(e)) => part = Err(local_io(op, local, e)),
                Err(BodyError::Eof { received }) => {
                    let received = size - left + received;
                    return Err(self.lost(op, BodyError::Eof { received }));
                }
                Err(e) => return Err(self.lost(op, e)),
            }
            left -= piece;
        }
        part
    }

    /// Uploads `local` as `remote`. `HASH` goes out right behind the body
    /// when verifying; `SETTIME` only once the upload is confirmed, since
    /// on a refused upload it would re-time the old file under that name.
    pub fn write_with(
        &mut self,
        local: &Path,
        remote: &str,
        options: &TransferOptions,
    ) -> Result<Transferred> {
        let op = format!("write `{remote}`");
        check_name(&op, remote)?;
        self.conn_mut(&op)?;
        let (file, size, local_mtime) = open_upload(&op, local)?;
        let algorithm = match options.verify {
            true => Some(self.best_hash(&op)?),
            false => None,
        };
        let set_time = options.mtime && self.features_for(&op)?.settime;
        let _in_flight = self.exchange(&op)?;
        let header = Request::Write {
            name: remote.to_string(),
            size,
        };
        self.send(&op, header.to_line().as_bytes())?;
        let mut hasher = algorithm.map(Algorithm::hasher);
        self.send_upload_body(&op, local, &file, remote, size, hasher.as_mut())?;
        if let Some(algorithm) = algorithm {
            self.send(&op, hash_request(algorithm, remote).as_bytes())?;
        }
        let stored = match self.status(&op)? {
            Status::Ok(text) if protocol::parse_number(text.as_bytes()) == Ok(size) => Ok(()),
            Status::Ok(text) => Err(self.broken(
                &op,
                format!("it confirmed `OK {text}` for an upload of {size} bytes"),
            )),
            Status::Error(message) => Err(self.refusal(&op, &message)),
            Status::Size(_) => Err(self.broken(&op, "a size where `OK <size>` was expected")),
        };
        if let Err(e) = stored {
            return Err(self.skip_pipelined(&op, algorithm.is_some(), e));
        }
        let digest = match (algorithm, hasher) {
            (Some(algorithm), Some(hasher)) => {
                let checked = self.check_digest(&op, remote, algorithm, hasher.finish_hex());
                Some(checked.map_err(|e| self.remove_corrupt_upload(remote, e))?)
            }
            _ => None,
        };
        let mtime = set_time.then_some(local_mtime);
        if let Some(mtime) = mtime {
            self.set_mtime(remote, mtime).map_err(|e| {
                let cause = format!(
                    "`{remote}` was stored, but its modification time was not set: {}",
                    e.cause
                );
                Error::new(e.kind, &op, cause)
            })?;
        }
        Ok(Transferred {
            size,
            moved: size,
            resumed_from: 0,
            digest,
            mtime,
        })
    }

    /// Sends an upload's body from `file`, with the progress bar, feeding
    /// `hasher`; Ctrl-C is checked between pieces.
    pub(super) fn send_upload_body(
        &mut self,
        op: &str,
        local: &Path,
        mut file: &File,
        remote: &str,
        size: u64,
        mut hasher: Option<&mut Hasher>,
    ) -> Result<()> {
        let mut meter = Meter::start(self.progress, remote, size);
        let mut buf = vec![0; usize::try_from(size).map_or(BUFFER_SIZE, |n| n.min(BUFFER_SIZE))];
        let mut sent = 0;
        while sent < size {
            if self.cancel.is_cancelled() {
                return Err(self.lost(op, "cancelled"));
            }
            let want = usize::try_from(size - sent).map_or(buf.len(), |left| left.min(buf.len()));
            let got = match file.read(&mut buf[..want]) {
                Ok(0) => break,
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // the server waits for bytes that will not come
                    self.conn = None;
                    let cause = format!(
                        "cannot read `{}`: {e}; the session was closed",
                        local.display()
                    );
                    return Err(Error::new(ErrorKind::LocalIo, op, cause));
                }
            };
            let written = self.conn_mut(op)?.write_all(&buf[..got]);
            if let Err(e) = written {
                return Err(self.send_failed(op, &e));
            }
            if let Some(hasher) = hasher.as_deref_mut() {
                hasher.update(&buf[..got]);
            }
            meter.advance(got as u64);
            sent += got as u64;
        }
        if sent < size {
            self.conn = None;
            return Err(Error::new(
                ErrorKind::LocalIo,
                op,
                format!(
                    "`{}` shrank while being sent ({sent} of {size} bytes); the session was closed",
                    local.display()
                ),
            ));
        }
        Ok(())
    }

    /// The reply to a `STAT` sent ahead of a `READ`: the entry, or `None`
    /// when the server refused it (the `READ` says why, if it matters).
    fn stat_reply(&mut self, op: &str, remote: &str) -> Result<Option<Entry>> {
        match self.status(op)? {
            Status::Ok(line) => {
                let entry = Entry::parse(line.as_bytes()).map_err(|e| self.broken(op, e))?;
                Ok((entry.name == remote).then_some(entry))
            }
            Status::Error(message) if protocol::announces_close(&message) => {
                Err(self.refusal(op, &message))
            }
            Status::Error(_) => Ok(None),
            Status::Size(_) => Err(self.broken(op, "a size where `OK <entry>` was expected")),
        }
    }

    /// After `error`, reads and drops the reply to the `HASH` sent behind
    /// the failed request (`pipelined`), so that the session stays in
    /// step; returns `error`.
    pub(super) fn skip_pipelined(&mut self, op: &str, pipelined: bool, error: Error) -> Error {
        if pipelined
            && self.conn.is_some()
            && let Err(e) = self.status(op)
        {
            return e;
        }
        error
    }

    /// Reads the `HASH` reply for `remote` and compares it with `ours`.
    pub(super) fn check_digest(
        &mut self,
        op: &str,
        remote: &str,
        algorithm: Algorithm,
        ours: String,
    ) -> Result<(Algorithm, String)> {
        let theirs = match self.status(op)? {
            Status::Ok(text) => parse_digest(&text, algorithm)
                .ok_or_else(|| self.broken(op, format!("malformed digest reply `OK {text}`")))?,
            Status::Error(message) => {
                let e = self.refusal(op, &message);
                let cause = format!("cannot verify `{remote}`: {}; nothing was kept", e.cause);
                return Err(Error::new(e.kind, op, cause));
            }
            Status::Size(_) => return Err(self.broken(op, "a size where a digest was expected")),
        };
        if theirs != ours {
            let name = algorithm.name();
            return Err(Error::new(
                ErrorKind::Corrupt,
                op,
                format!(
                    "the {name} digest of what arrived ({}…) is not the server's ({}…): \
                     the file changed during the transfer or was damaged on the way; \
                     nothing was kept",
                    &ours[..12],
                    &theirs[..12]
                ),
            ));
        }
        Ok((algorithm, ours))
    }

    /// After an upload whose digest did not match, removes the damaged
    /// remote copy (where the server allows it) and says so in `error`.
    fn remove_corrupt_upload(&mut self, remote: &str, mut error: Error) -> Error {
        if error.kind != ErrorKind::Corrupt {
            return error;
        }
        error.cause = error.cause.replace("what arrived", "what was sent");
        match self.delete(remote) {
            Ok(()) => error.cause.push_str(&format!(
                " (the damaged `{remote}` was deleted on the server)"
            )),
            Err(e) => error.cause.push_str(&format!(
                " (the damaged `{remote}` is still on the server: {})",
                e.cause
            )),
        }
        error
    }
}

/// `HASH,<algorithm>,<name>` with its LF.
fn hash_request(algorithm: Algorithm, name: &str) -> String {
    Extension::Hash {
        algorithm: algorithm.name().to_string(),
        name: name.to_string(),
    }
    .to_line()
}

/// The hex digest in a `HASH` reply's `<algorithm> <hex>`, if well formed.
pub(super) fn parse_digest(text: &str, algorithm: Algorithm) -> Option<String> {
    text.strip_prefix(algorithm.name())
        .and_then(|rest| rest.strip_prefix(' '))
        .filter(|hex| {
            hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
        .map(str::to_string)
}

/// Gives a local file a modification time (seconds since the epoch).
pub(super) fn set_mtime(file: &File, mtime: u64) -> io::Result<()> {
    file.set_modified(UNIX_EPOCH + Duration::from_secs(mtime))
}

/// A file's modification time in whole seconds since the epoch (0 before).
fn mtime_of(meta: &std::fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

/// Opens the local file to upload, with its size and mtime; anything but a
/// regular file is refused.
pub(super) fn open_upload(op: &str, local: &Path) -> Result<(File, u64, u64)> {
    // O_NONBLOCK: opening a FIFO must not wait for a writer (it is then
    // refused below as not a regular file)
    let file = File::options()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(local)
        .map_err(|e| local_open_error(op, local, e))?;
    let meta = file.metadata().map_err(|e| local_io(op, local, e))?;
    if !meta.is_file() {
        return Err(Error::new(
            ErrorKind::LocalIo,
            op,
            format!(
                "`{}` is not a regular file (use walk() to upload a folder)",
                local.display()
            ),
        ));
    }
    Ok((file, meta.len(), mtime_of(&meta)))
}

/// A temporary file beside `local`, to be renamed over it once the whole
/// body arrived. Missing folders are made only when the file cannot be
/// created (two system calls a download in the usual case, where the
/// folder is there).
pub(super) fn create_part(op: &str, local: &Path) -> Result<NamedTempFile> {
    let error = match partial::create_in(folder_of(local)) {
        Ok(part) => return Ok(part),
        Err(e) => e,
    };
    // go on only if a folder is missing, or a file stands in its place
    let kind = error.kind();
    if kind != io::ErrorKind::NotFound && kind != io::ErrorKind::NotADirectory {
        return Err(local_io(op, local, error));
    }
    make_folder_of(op, local)?;
    partial::create_in(folder_of(local)).map_err(|e| local_io(op, local, e))
}

/// The folder `local` is in (`.` for a bare file name).
pub(super) fn folder_of(local: &Path) -> &Path {
    match local.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes the folder `local` goes in, with its missing parents.
pub(super) fn make_folder_of(op: &str, local: &Path) -> Result<()> {
    let folder = folder_of(local);
    std::fs::create_dir_all(folder).map_err(|e| match file_in_the_way(folder) {
        Some(file) => Error::new(
            ErrorKind::LocalIo,
            op,
            format!(
                "`{}` is a file, not a folder, so `{}` cannot be written",
                file.display(),
                local.display()
            ),
        ),
        None => local_io(op, local, e),
    })
}

/// A local file that could not be read or written, for operation `op`.
pub(super) fn local_io(op: &str, local: &Path, e: io::Error) -> Error {
    Error::new(
        ErrorKind::LocalIo,
        op,
        format!("`{}`: {e}", local.display()),
    )
}

/// Refuses, before anything is sent, a download target that cannot be a
/// file: an empty path, or a folder (which would only fail after the whole
/// body had arrived).
fn check_local_target(op: &str, remote: &str, local: &Path) -> Result<()> {
    if local.as_os_str().is_empty() {
        return Err(Error::new(
            ErrorKind::LocalIo,
            op,
            "no local file name given; say where to write the file",
        ));
    }
    if local.file_name().is_none() || local.is_dir() {
        let base = remote.rsplit('/').next().unwrap_or(remote);
        return Err(Error::new(
            ErrorKind::LocalIo,
            op,
            format!(
                "`{}` is a folder; give the path of the file to write, such as `{}`",
                local.display(),
                local.join(base).display()
            ),
        ));
    }
    Ok(())
}

/// The part of `dir` (itself or a parent) that is a file or other
/// non-folder, which is why `dir` cannot be made; asked only after making
/// it failed.
pub(crate) fn file_in_the_way(dir: &Path) -> Option<&Path> {
    let mut parts: Vec<&Path> = dir
        .ancestors()
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    parts.reverse();
    parts.into_iter().find(|p| p.exists() && !p.is_dir())
}

/// Why the local file of an upload could not be opened; a missing one is
/// `local_missing`, naming the folder it was looked for in — or, when a
/// folder on its path is missing, the first such folder and where that was
/// looked for.
fn local_open_error(op: &str, local: &Path, e: io::Error) -> Error {
    if local.as_os_str().is_empty() {
        return Error::new(
            ErrorKind::LocalMissing,
            op,
            "the local path is empty; give the file to upload",
        );
    }
    if e.kind() == io::ErrorKind::NotFound {
        let looked_in = |path: &Path| {
            std::env::current_dir()
                .map(|d| {
                    d.join(path)
                        .parent()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                })
                .unwrap_or_default()
        };
        let missing_folder = local
            .ancestors()
            .skip(1)
            .filter(|p| !p.as_os_str().is_empty())
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .find(|p| !p.exists());
        let cause = match missing_folder {
            Some(folder) => format!(
                "local file `{}` does not exist: there is no folder `{}` (looked in {})",
                local.display(),
                folder.display(),
                looked_in(folder)
            ),
            None => format!(
                "local file `{}` does not exist (looked in {})",
                local.display(),
                looked_in(local)
            ),
        };
        Error::new(ErrorKind::LocalMissing, op, cause)
    } else {
        Error::new(
            ErrorKind::LocalIo,
            op,
            format!("cannot open `{}`: {e}", local.display()),
        )
    }
}
