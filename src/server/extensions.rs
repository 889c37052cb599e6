//! The IOE/1 extensions on the server: `FEATURES`, `STAT`, `WALK`,
//! `SETTIME`, `MKDIR`, `DELETE`, `HASH` and `READAT` (see
//! `docs/protocol.md`). None has a body, so every refusal is a plain
//! `ERROR:` and the session goes on.

use super::{Connection, Flow, Outcome};
use crate::digest::{self, Algorithm, FileStamp};
use crate::protocol::{Extension, Features};
use crate::root::{FsError, Root, WalkError};
use std::io::{self, Seek, SeekFrom};
use std::sync::Arc;

/// Most digests a server remembers (of files unchanged since).
pub(super) const DIGEST_CACHE_SIZE: usize = 4096;
/// A `WALK` reply goes out in pieces of about this many bytes.
const WALK_PIECE: usize = 64 * 1024;

impl Connection<'_> {
    /// Handles one request of the extensions.
    pub(super) fn extension(&mut self, request: Extension) -> io::Result<Flow> {
        match request {
            Extension::Features => {
                let reply = self.features();
                self.answer("FEATURES", Ok(reply))
            }
            Extension::Stat(name) => {
                let entry = self.root.stat(&name);
                let reply = entry.map(|e| format!("OK {}", e.to_line()));
                self.answer(&format!("STAT {name}"), reply.map_err(|e| e.to_string()))
            }
            Extension::Walk(dir) => self.walk(dir.as_deref()),
            Extension::SetTime { mtime, name } => self
                .change(&format!("SETTIME {mtime} {name}"), |root| {
                    root.set_mtime(&name, mtime)
                }),
            Extension::Mkdir(name) => {
                self.change(&format!("MKDIR {name}"), |root| root.make_folder(&name))
            }
            Extension::Delete(name) => {
                self.change(&format!("DELETE {name}"), |root| root.delete(&name))
            }
            Extension::Hash { algorithm, name } => {
                let reply = self.hash(&algorithm, &name);
                self.answer(&format!("HASH {algorithm} {name}"), reply)
            }
            Extension::ReadAt {
                offset,
                length,
                name,
            } => self.read_at(offset, length, &name),
            Extension::Auth(token) => self.authenticate(&token),
        }
    }

    /// The `FEATURES` reply: exactly what this server does.
    fn features(&self) -> String {
        let config = &self.shared.config;
        let features = Features {
            stat: true,
            walk: true,
            hash: Algorithm::ALL
                .iter()
                .map(|a| a.name().to_string())
                .collect(),
            range: true,
            settime: true,
            delete: true,
            mkdir: true,
            read_only: self.read_only,
            auth: config.auth.is_some(),
            max_size: config.max_size,
        };
        let lines = features.to_lines();
        let mut reply = format!("OK {}\n", lines.len());
        for line in lines {
            reply.push_str(&line);
            reply.push('\n');
        }
        reply
    }

    /// Sends `reply` (whole lines) or the `ERROR:` for `refusal`, and logs
    /// `request` with the outcome.
    fn answer(&mut self, request: &str, result: Result<String, String>) -> io::Result<Flow> {
        match result {
            Ok(reply) => {
                let first = reply.lines().next().unwrap_or_default();
                self.logged(
                    request,
                    Outcome::Ok {
                        text: first,
                        bytes: 0,
                    },
                );
                self.conn.write_all(reply.as_bytes())?;
            }
            Err(refusal) => {
                self.log_error(request, &refusal);
                self.reply_error(&refusal)?;
            }
        }
        Ok(Flow::Continue)
    }

    /// A request that changes the tree: refused on a read-only server.
    fn change(
        &mut self,
        request: &str,
        act: impl FnOnce(&Root) -> Result<(), FsError>,
    ) -> io::Result<Flow> {
        let result = if self.read_only {
            Err(self.read_only_reason())
        } else {
            act(&self.root)
                .map(|()| "OK\n".to_string())
                .map_err(|e| e.to_string())
        };
        self.answer(request, result)
    }

    /// The `HASH` reply for a file: from the cache when the file has not
    /// changed since it was last hashed (same device, inode, size and
    /// mtime to the nanosecond).
    fn hash(&self, algorithm: &str, name: &str) -> Result<String, String> {
        let Some(chosen) = Algorithm::from_name(algorithm) else {
            let known: Vec<&str> = Algorithm::ALL.iter().map(|a| a.name()).collect();
            return Err(format!(
                "unknown hash algorithm `{algorithm}` (this server has {})",
                known.join(", ")
            ));
        };
        let (file, _) = self.root.open_file(name).map_err(|e| e.to_string())?;
        let stamp = |file: &std::fs::File| {
            file.metadata()
                .map(|meta| FileStamp::of(&meta))
                .map_err(|e| FsError::Io(name.to_string(), e).to_string())
        };
        let before = stamp(&file)?;
        let cache = &self.shared.digests;
        let hex = match cache.get(before, chosen) {
            Some(hex) => hex,
            None => {
                let hex = digest::hash_reader(chosen, &file)
                    .map_err(|e| FsError::Io(name.to_string(), e).to_string())?;
                if stamp(&file)? != before {
                    return Err(format!(
                        "`{name}` changed while it was being hashed; ask again"
                    ));
                }
                cache.insert(before, chosen, hex.clone());
                hex
            }
        };
        Ok(format!("OK {algorithm} {hex}\n"))
    }

    /// `READAT`: `min(length, size - offset)` bytes from `offset`.
    fn read_at(&mut self, offset: u64, length: u64, name: &str) -> io::Result<Flow> {
        let request = format!("READAT {offset} {length} {name}");
        let (mut file, size) = match self.root.open_file(name) {
            Ok(opened) => opened,
            Err(e) => return self.answer(&request, Err(e.to_string())),
        };
        if offset > size {
            let refusal = format!("offset {offset} is past the end of `{name}` ({size} bytes)");
            return self.answer(&request, Err(refusal));
        }
        if let Err(e) = file.seek(SeekFrom::Start(offset)) {
            let refusal = FsError::Io(name.to_string(), e).to_string();
            return self.answer(&request, Err(refusal));
        }
        let count = length.min(size - offset);
        self.conn.write_all(format!("{count}\n").as_bytes())?;
        self.send_body(&request, &file, count, |_| {})
    }

    /// `WALK`: `OK`, the entries as they are found, then `END <n>`, sent in
    /// pieces of about [`WALK_PIECE`]; a failure part way is sent as
    /// `ERROR:` in place of `END`.
    fn walk(&mut self, dir: Option<&str>) -> io::Result<Flow> {
        let request = format!("WALK {}", dir.unwrap_or("."));
        let root = Arc::clone(&self.root);
        let mut piece = Vec::with_capacity(WALK_PIECE + 2048);
        let mut started = false;
        let walked = root.walk(dir, |entry| {
            if !started {
                piece.extend_from_slice(b"OK\n");
                started = true;
            }
            piece.extend_from_slice(entry.to_line().as_bytes());
            if piece.len() >= WALK_PIECE {
                // each piece at the minimum rate: the time the walk itself
                // takes on disk is not held against the client
                let mut pace = self.pace();
                self.conn.write_all_paced(&piece, &mut pace)?;
                piece.clear();
            }
            Ok(())
        });
        let end = match walked {
            Ok(sent) => {
                if !started {
                    piece.extend_from_slice(b"OK\n");
                }
                format!("END {sent}\n")
            }
            Err(WalkError::Fs(e)) if !started => {
                return self.answer(&request, Err(e.to_string()));
            }
            Err(WalkError::Fs(e)) => format!("ERROR: {e}\n"),
            Err(WalkError::Send(e)) => {
                let why = self.failure(&e);
                self.log_error(&request, &format!("not finished: {why}; closing"));
                return Ok(Flow::Close);
            }
        };
        piece.extend_from_slice(end.as_bytes());
        let mut pace = self.pace();
        if let Err(e) = self.conn.write_all_paced(&piece, &mut pace) {
            let why = self.failure(&e);
            self.log_error(&request, &format!("not finished: {why}; closing"));
            return Ok(Flow::Close);
        }
        self.restore_write_timeout()?;
        let text = end.trim_end();
        self.logged(&request, Outcome::Ok { text, bytes: 0 });
        Ok(Flow::Continue)
    }
}
