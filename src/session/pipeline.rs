//! Pipelined requests, for the sync engine: the request half and the reply
//! half of each exchange as separate calls, so that one connection keeps
//! many requests in flight and small files cost bandwidth, not round
//! trips. The server answers in the order of the requests; the caller
//! reads the replies in that order (see `sync::worker`).

use super::transfer::{create_part, local_io, open_upload, parse_digest, set_mtime};
use super::{InFlight, Session};
use crate::digest::Algorithm;
use crate::error::Result;
use crate::protocol::{self, Extension, Request, Status};
use std::path::Path;

/// What went out for one upload.
pub(crate) struct Sent {
    /// The body's size.
    pub size: u64,
    /// The local file's mtime (seconds).
    pub mtime: u64,
    /// The body's digest, when asked for.
    pub digest: Option<String>,
}

/// A download that arrived whole, not yet in place.
pub(crate) struct Downloaded {
    part: tempfile::NamedTempFile,
    /// Its size.
    pub size: u64,
    /// Its digest, when asked for.
    pub digest: Option<String>,
}

impl Downloaded {
    /// Renames it over `local`, with `mtime` if given.
    pub(crate) fn keep(self, op: &str, local: &Path, mtime: Option<u64>) -> Result<()> {
        if let Some(mtime) = mtime {
            set_mtime(self.part.as_file(), mtime).map_err(|e| local_io(op, local, e))?;
        }
        self.part
            .persist(local)
            .map(drop)
            .map_err(|e| local_io(op, local, e.error))
    }
}

impl Session {
    /// Lets Ctrl-C stop this session's exchanges until the guard goes.
    pub(crate) fn cancellable(&mut self, op: &str) -> Result<InFlight> {
        self.exchange(op)
    }

    /// The token that stops this session's transfers.
    pub(crate) fn cancel_token(&self) -> crate::cancel::CancelToken {
        self.cancel.clone()
    }

    /// Whether the connection is still there (not closed after a failure).
    pub(crate) fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Sends one request line without waiting for its reply.
    pub(crate) fn send_request(&mut self, op: &str, request: Request) -> Result<()> {
        self.send(op, request.to_line().as_bytes())
    }

    /// Sends an extension's request line without waiting for its reply.
    pub(crate) fn send_extension(&mut self, op: &str, request: Extension) -> Result<()> {
        self.send_request(op, Request::Extension(request))
    }

    /// Sends an upload's header and body (hashed on the way with
    /// `algorithm`); its reply is read by [`recv_upload`](Self::recv_upload).
    pub(crate) fn send_upload(
        &mut self,
        op: &str,
        local: &Path,
        remote: &str,
        algorithm: Option<Algorithm>,
    ) -> Result<Sent> {
        let (file, size, mtime) = open_upload(op, local)?;
        let header = Request::Write {
            name: remote.to_string(),
            size,
        };
        self.send(op, header.to_line().as_bytes())?;
        let mut hasher = algorithm.map(Algorithm::hasher);
        self.send_upload_body(op, local, &file, remote, size, hasher.as_mut())?;
        Ok(Sent {
            size,
            mtime,
            digest: hasher.map(|h| h.finish_hex()),
        })
    }

    /// Reads the reply to an upload of `size` bytes.
    pub(crate) fn recv_upload(&mut self, op: &str, size: u64) -> Result<()> {
        match self.status(op)? {
            Status::Ok(text) if protocol::parse_number(text.as_bytes()) == Ok(size) => Ok(()),
            Status::Ok(text) => Err(self.broken(
                op,
                format!("it confirmed `OK {text}` for an upload of {size} bytes"),
            )),
            Status::Error(message) => Err(self.refusal(op, &message)),
            Status::Size(_) => Err(self.broken(op, "a size where `OK <size>` was expected")),
        }
    }

    /// Reads the reply to a `READ` of `remote` into a temporary file
    /// beside `local`, hashing it with `algorithm`; [`Downloaded::keep`]
    /// then puts it in place.
    pub(crate) fn recv_download(
        &mut self,
        op: &str,
        remote: &str,
        local: &Path,
        algorithm: Option<Algorithm>,
    ) -> Result<Downloaded> {
        let size = match self.status(op)? {
            Status::Size(size) => size,
            Status::Error(message) => return Err(self.refusal(op, &message)),
            Status::Ok(_) => return Err(self.broken(op, "`OK` where a size was expected")),
        };
        let part = create_part(op, local);
        let mut hasher = algorithm.map(Algorithm::hasher);
        let part = self.receive_body(op, remote, local, size, part, hasher.as_mut())?;
        Ok(Downloaded {
            part,
            size,
            digest: hasher.map(|h| h.finish_hex()),
        })
    }

    /// Reads a bare `OK` (the reply to `SETTIME`, `MKDIR`, `DELETE`).
    pub(crate) fn recv_ok(&mut self, op: &str) -> Result<()> {
        match self.status(op)? {
            Status::Ok(text) if text.is_empty() => Ok(()),
            Status::Error(message) => Err(self.refusal(op, &message)),
            _ => Err(self.broken(op, "something other than `OK` answered it")),
        }
    }

    /// Reads a `HASH` reply with `algorithm`'s digest.
    pub(crate) fn recv_digest(&mut self, op: &str, algorithm: Algorithm) -> Result<String> {
        match self.status(op)? {
            Status::Ok(text) => parse_digest(&text, algorithm)
                .ok_or_else(|| self.broken(op, format!("malformed digest reply `OK {text}`"))),
            Status::Error(message) => Err(self.refusal(op, &message)),
            Status::Size(_) => Err(self.broken(op, "a size where a digest was expected")),
        }
    }

    /// A copy of this session's settings on a new connection to the same
    /// server (for the sync engine's parallel workers).
    pub(crate) fn connect_again(&self) -> Result<Session> {
        let mut session = Session::connect_with(
            &self.addr,
            &self.options,
            super::CONNECT_TIMEOUT,
            self.io_timeout,
        )?;
        session.set_cancel(self.cancel.clone());
        session.features = self.features.clone();
        session.max_listing = self.max_listing;
        Ok(session)
    }
}
