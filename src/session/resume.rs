//! Resumable downloads (`read` with `resume`). The bytes go to a part file
//! beside the target, `.ioe-part-<size>-<mtime>-<tag>-<name>`, named
//! after the remote file's size and mtime (the tag, a digest of the whole
//! name, tells apart names cut to their first 180 bytes), and are kept when the download is cut off
//! (Ctrl-C, a lost connection). The next resuming `read` of the same remote
//! version fetches only the rest with `READAT`, and renames the part into
//! place only when the digest of the whole file matches the server's
//! `HASH`; otherwise it starts again from zero, once. A part of another
//! version of the file is removed.

use super::Session;
use super::transfer::{Transferred, local_io, make_folder_of, set_mtime};
use crate::digest::Algorithm;
use crate::error::{Error, ErrorKind, Result};
use crate::protocol::{EntryKind, Extension, PART_PREFIX, Status};
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Longest part of the target's file name kept in the part file's name
/// (names are at most 255 bytes on most file systems).
const MAX_NAME_IN_PART: usize = 180;

impl Session {
    /// A download with `resume`: `None` when the server lacks what resuming
    /// needs (`STAT`, `READAT` and `HASH`) or `remote` is no regular file,
    /// and the caller downloads as usual.
    pub(super) fn read_resuming(
        &mut self,
        op: &str,
        remote: &str,
        local: &Path,
        mtime: bool,
    ) -> Result<Option<Transferred>> {
        let features = self.features_for(op)?;
        if !(features.stat && features.range && !features.hash.is_empty()) {
            return Ok(None);
        }
        let algorithm = self.best_hash(op)?;
        let entry = self.stat(remote).map_err(|e| e.with_op(op))?;
        if entry.kind != EntryKind::File {
            return Ok(None);
        }
        make_folder_of(op, local)?;
        let part_path = part_path(local, entry.size, entry.mtime);
        remove_other_parts(local, &part_path);
        let first = self.fetch_rest(op, remote, local, &part_path, entry.size, algorithm);
        let fetched = match first {
            Err(e) if e.kind == ErrorKind::Corrupt => {
                // the kept bytes were not the server's: once more from zero
                let _ = fs::remove_file(&part_path);
                self.fetch_rest(op, remote, local, &part_path, entry.size, algorithm)
            }
            other => other,
        };
        let fetched = match fetched {
            Ok(fetched) => fetched,
            Err(e) => {
                if e.kind == ErrorKind::Corrupt {
                    let _ = fs::remove_file(&part_path);
                }
                return Err(e);
            }
        };
        if mtime {
            set_mtime(&fetched.part, entry.mtime).map_err(|e| local_io(op, local, e))?;
        }
        // the name must still be the file written, not something put in
        // its place meanwhile
        let still = fs::symlink_metadata(&part_path)
            .ok()
            .zip(fetched.part.metadata().ok())
            .is_some_and(|(named, held)| named.dev() == held.dev() && named.ino() == held.ino());
        if !still {
            let cause = format!(
                "`{}` was replaced while the download ran; nothing was kept",
                part_path.display()
            );
            return Err(Error::new(ErrorKind::LocalIo, op, cause));
        }
        fs::rename(&part_path, local).map_err(|e| local_io(op, local, e))?;
        Ok(Some(Transferred {
            size: entry.size,
            moved: fetched.moved,
            resumed_from: fetched.resumed_from,
            digest: Some((algorithm, fetched.digest)),
            mtime: mtime.then_some(entry.mtime),
        }))
    }

    /// Appends to the part file what it lacks of the `size` bytes, and
    /// checks the whole file's digest against the server's. Returns the
    /// bytes fetched, the offset they started at, and the digest.
    fn fetch_rest(
        &mut self,
        op: &str,
        remote: &str,
        local: &Path,
        part_path: &Path,
        size: u64,
        algorithm: Algorithm,
    ) -> Result<Fetched> {
        let part = open_part(op, local, part_path)?;
        lock(&part).map_err(|e| {
            let cause = format!(
                "another download into `{}` is in progress ({e})",
                local.display()
            );
            Error::new(ErrorKind::LocalIo, op, cause)
        })?;
        let mut have = part.metadata().map_err(|e| local_io(op, local, e))?.len();
        if have > size {
            part.set_len(0).map_err(|e| local_io(op, local, e))?;
            have = 0;
        }
        // the kept bytes go through the digest once
        let mut hasher = algorithm.hasher();
        hasher
            .update_from((&part).take(have))
            .map_err(|e| local_io(op, local, e))?;
        let _in_flight = self.exchange(op)?;
        let mut requests = Extension::ReadAt {
            offset: have,
            length: size - have,
            name: remote.to_string(),
        }
        .to_line();
        requests.push_str(
            &Extension::Hash {
                algorithm: algorithm.name().to_string(),
                name: remote.to_string(),
            }
            .to_line(),
        );
        self.send(op, requests.as_bytes())?;
        let count = match self.status(op)? {
            Status::Size(count) if count == size - have => count,
            Status::Size(count) => {
                let cause = format!(
                    "it offered {count} bytes where {} were missing",
                    size - have
                );
                return Err(self.broken(op, cause));
            }
            Status::Error(message) => {
                let refused = self.refusal(op, &message);
                return Err(self.skip_pipelined(op, true, refused));
            }
            Status::Ok(_) => return Err(self.broken(op, "`OK` where a size was expected")),
        };
        let part = self.receive_body(op, remote, local, count, Ok(part), Some(&mut hasher));
        let part = part.map_err(|e| {
            let e = self.skip_pipelined(op, true, e);
            kept_for_later(e, part_path)
        })?;
        let (_, digest) = self.check_digest(op, remote, algorithm, hasher.finish_hex())?;
        Ok(Fetched {
            part,
            moved: count,
            resumed_from: have,
            digest,
        })
    }
}

/// A resumable download's failure says where the bytes that arrived wait
/// for the next `read` with `resume` (the session's words say nothing was
/// kept, which is true of other downloads).
fn kept_for_later(mut error: Error, part_path: &Path) -> Error {
    let kept = format!(
        "the bytes that arrived are kept in `{}` for a `read` with `resume`",
        part_path.display()
    );
    error.cause = error.cause.replace("nothing partial was kept", &kept);
    error
}

/// A part file complete and verified, still open.
struct Fetched {
    part: File,
    moved: u64,
    resumed_from: u64,
    digest: String,
}

/// Opens (or creates) the part file without following a link, and only if
/// it is a regular file with no other name: whoever can write to the
/// download folder must not make the download append to, or cut short, a
/// file elsewhere.
fn open_part(op: &str, local: &Path, part_path: &Path) -> Result<File> {
    let part = File::options()
        .read(true)
        .append(true)
        .create(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(part_path)
        .map_err(|e| local_io(op, local, e))?;
    let meta = part.metadata().map_err(|e| local_io(op, local, e))?;
    if !meta.is_file() || meta.nlink() != 1 {
        let cause = format!(
            "`{}` is not a plain file of its own (a link?); remove it to download again",
            part_path.display()
        );
        return Err(Error::new(ErrorKind::LocalIo, op, cause));
    }
    Ok(part)
}

/// The part file that keeps a resumable download into `local` of the
/// remote version of `size` bytes last changed at `mtime`.
pub fn part_path(local: &Path, size: u64, mtime: u64) -> PathBuf {
    let name = local
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut end = name.len().min(MAX_NAME_IN_PART);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    // a long name is cut; a digest of the whole name tells such apart
    let tag = &blake3::hash(name.as_bytes()).to_hex()[..8];
    local.with_file_name(format!(
        "{PART_PREFIX}{size}-{mtime}-{tag}-{}",
        &name[..end]
    ))
}

/// Removes the part files of other versions of the same target (a part
/// whose remote file has changed can never be resumed).
fn remove_other_parts(local: &Path, keep: &Path) {
    let Some(keep_name) = keep.file_name().and_then(|n| n.to_str()) else {
        return;
    };
    // `<size>-<mtime>-<tag>-<name>`: the same tag and name after the two
    // numbers
    let Some(suffix) = keep_name
        .strip_prefix(PART_PREFIX)
        .and_then(|rest| rest.splitn(3, '-').nth(2))
    else {
        return;
    };
    let folder = match local.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Ok(entries) = fs::read_dir(folder) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let other_version = name
            .strip_prefix(PART_PREFIX)
            .and_then(|rest| rest.splitn(3, '-').nth(2))
            .is_some_and(|rest| rest == suffix)
            && name != keep_name;
        if other_version {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Locks the part file for this process, without waiting: two downloads
/// appending to one part would interleave their bytes.
fn lock(part: &File) -> io::Result<()> {
    use rustix::fs::{FlockOperation, flock};
    flock(part, FlockOperation::NonBlockingLockExclusive).map_err(io::Error::from)
}
