//! The client's typed error: a [`ErrorKind`] that callers (and scripts)
//! branch on, plus a message that names the operation, the file and the
//! cause.

use std::fmt;

/// What went wrong, as a short word scripts can compare against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No session is open (never connected, or closed by `bye` or a failure).
    NotConnected,
    /// The server could not be reached.
    ConnectFailed,
    /// The connection broke, timed out, or the server broke the protocol;
    /// the session is closed.
    ConnectionLost,
    /// The server does not have that file or folder.
    NotFound,
    /// The server refused the request for another reason (bad name,
    /// read-only, too large, …); the session stays usable.
    Refused,
    /// The local file to upload does not exist.
    LocalMissing,
    /// Reading or writing a local file failed (permissions, disk full, …).
    LocalIo,
    /// A name is not valid in IOE/1 (checked before anything is sent).
    BadName,
    /// The user interrupted the transfer; the session is closed.
    Cancelled,
    /// A verified transfer's digests differ: the file changed during the
    /// transfer or was damaged on the way; nothing was kept.
    Corrupt,
    /// The server does not have the extension a request needs (a plain
    /// IOE/1 server asked for `STAT`, `HASH`, …); the session stays usable.
    Unsupported,
}

impl ErrorKind {
    /// The word scripts see as `e.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotConnected => "not_connected",
            ErrorKind::ConnectFailed => "connect_failed",
            ErrorKind::ConnectionLost => "connection_lost",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Refused => "refused",
            ErrorKind::LocalMissing => "local_missing",
            ErrorKind::LocalIo => "local_io",
            ErrorKind::BadName => "bad_name",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Unsupported => "unsupported",
        }
    }

    /// Every kind, in documentation order.
    pub const ALL: [ErrorKind; 11] = [
        ErrorKind::NotConnected,
        ErrorKind::ConnectFailed,
        ErrorKind::ConnectionLost,
        ErrorKind::NotFound,
        ErrorKind::Refused,
        ErrorKind::LocalMissing,
        ErrorKind::LocalIo,
        ErrorKind::BadName,
        ErrorKind::Cancelled,
        ErrorKind::Corrupt,
        ErrorKind::Unsupported,
    ];
}

/// A failed client operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What went wrong, for callers to branch on.
    pub kind: ErrorKind,
    /// The operation and its subject, e.g. ``read `report.pdf` ``.
    pub op: String,
    /// What happened, e.g. `server said: no such file or folder`.
    pub cause: String,
    /// Set when connecting failed only because a TLS server was met for
    /// the first time: a caller that can ask the user may trust it
    /// ([`crate::known_hosts::add`]) and connect again.
    pub first_contact: Option<Box<FirstContact>>,
}

/// A TLS server that no authority vouches for and the known-hosts file
/// does not name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstContact {
    /// Its certificate's fingerprint, `SHA256:…`.
    pub fingerprint: String,
}

impl Error {
    /// Builds an error for operation `op`.
    pub fn new(kind: ErrorKind, op: impl Into<String>, cause: impl Into<String>) -> Error {
        Error {
            kind,
            op: op.into(),
            cause: cause.into(),
            first_contact: None,
        }
    }
}

impl Error {
    /// The same error, reported as part of operation `op`.
    pub fn with_op(self, op: impl Into<String>) -> Error {
        Error {
            op: op.into(),
            ..self
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.op, self.cause)
    }
}

impl std::error::Error for Error {}

/// The client's result type.
pub type Result<T> = std::result::Result<T, Error>;
