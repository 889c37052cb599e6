//! The client: IOE/1 requests behind a [`Session`] API. Downloads go to a
//! temporary file beside their target and are renamed only once every byte
//! arrived; uploads stream from the file in pieces. An `ERROR:` reply
//! leaves the session usable; a broken transfer closes it. A hostile or
//! broken server cannot exhaust the client: a listing holds at most
//! [`MAX_LISTING`] entries, a failed download drains at most
//! [`DRAIN_LIMIT`] bytes, and every reply line must be whole within the
//! session's I/O timeout.

mod extensions;
mod pipeline;
mod resume;
mod transfer;

pub(crate) use pipeline::Sent;
pub use resume::part_path;
pub(crate) use transfer::file_in_the_way;
pub use transfer::{TransferOptions, Transferred};

pub use crate::auth::Token;
use crate::cancel::{CancelToken, InFlight};
use crate::conn::{self, Conn, Line, Pending};
use crate::error::{Error, ErrorKind, Result};
use crate::protocol::{
    self, AUTH_FAILED, AUTH_REQUIRED, Entry, Extension, Features, MAX_LINE, Request, Status,
};
use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// How long `connect` waits for each address of a host.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a read or write on an open session may stall, and how long
/// the client waits for the whole of each reply line (status or entry),
/// however steadily its bytes trickle in.
pub const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// Most entries one listing may hold, unless changed with
/// [`Session::set_max_listing`]: about 100 MB of entries with usual names,
/// at most about 1.1 GB with names of the longest kind (1024 bytes), and
/// far more than a folder anyone browses holds.
pub const MAX_LISTING: u64 = 1_000_000;
/// Most body bytes a download whose local write failed still reads (and
/// drops) so that the session stays usable; with more still to come the
/// session is closed instead. 1 MiB takes well under a second on
/// broadband (8 s even at 1 Mbit/s), and spares reconnecting after a
/// failed small file.
pub const DRAIN_LIMIT: u64 = 1024 * 1024;
/// The deadline used when `now + io_timeout` cannot be represented.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
/// How often [`Session::connect_cancellable`] looks at its token.
const CANCEL_POLL: Duration = Duration::from_millis(50);

pub use crate::addr::{TLS_SCHEME, split_scheme};

/// How a session speaks TLS, and whom it trusts (see [`crate::tls::Trust`]
/// for the order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// A pinned fingerprint (`SHA256:…`, as `ioe serve --tls` prints it):
    /// then that one certificate alone is accepted.
    pub fingerprint: Option<String>,
    /// A PEM file of certificate authorities to trust instead of the
    /// system's.
    pub ca_file: Option<PathBuf>,
}

/// How a session connects: TLS (and whom it trusts) and the token it
/// authenticates with. A session keeps it, so every new connection to the
/// same server (the sync engine's workers, the REPL's Tab completion)
/// speaks and authenticates the same way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectOptions {
    /// TLS, or plain TCP when `None`.
    pub tls: Option<TlsOptions>,
    /// Sent in `AUTH` right after connecting; refused in clear text to an
    /// address that is not loopback.
    pub token: Option<Token>,
    /// The servers file entry the address came from, if it did: messages
    /// then say what to change there.
    pub origin: Option<Origin>,
}

/// A named server's entry in the servers file (`[name]` in `file`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The table's name.
    pub name: String,
    /// The servers file.
    pub file: PathBuf,
}

impl ConnectOptions {
    /// TLS with default trust when `tls` is true, no token.
    pub fn with_tls(tls: bool) -> ConnectOptions {
        ConnectOptions {
            tls: tls.then(TlsOptions::default),
            token: None,
            origin: None,
        }
    }
}

/// A connection to an IOE/1 server.
pub struct Session {
    conn: Option<Conn>,
    addr: String,
    /// TLS and the token: reconnects use them again.
    options: ConnectOptions,
    /// What the server's `OK` to `AUTH` named (the token's label).
    identity: Option<String>,
    cancel: CancelToken,
    progress: bool,
    io_timeout: Duration,
    max_listing: u64,
    /// The server's `FEATURES`, once asked.
    features: Option<Features>,
}

impl Session {
    /// Connects to `addr` (`host:port`), with [`CONNECT_TIMEOUT`] per address.
    pub fn connect(addr: &str) -> Result<Session> {
        Session::connect_within(addr, CONNECT_TIMEOUT, IO_TIMEOUT)
    }

    /// Like [`connect`](Self::connect) with other limits: `connect_timeout`
    /// per address, and `io_timeout` for a read or write that stalls and
    /// for the whole of each reply line.
    ///
    /// An address `tls://host:port` speaks TLS (see [`connect_with`]).
    ///
    /// [`connect_with`]: Self::connect_with
    pub fn connect_within(
        addr: &str,
        connect_timeout: Duration,
        io_timeout: Duration,
    ) -> Result<Session> {
        let (addr, tls) = split_scheme(addr).map_err(|e| bad_address(addr, e))?;
        Session::connect_with(
            addr,
            &ConnectOptions::with_tls(tls),
            connect_timeout,
            io_timeout,
        )
    }

    /// Like [`connect_within`](Self::connect_within) to `addr`
    /// (`host:port`), over TLS when `options.tls` is given (the server's
    /// certificate must be trusted, see [`crate::tls::Trust`]: a pinned
    /// fingerprint, the known-hosts file, an authority; a server met for
    /// the first time fails with [`Error::first_contact`] set; the
    /// handshake must be done within `connect_timeout`), then sending
    /// `options.token` in `AUTH` if there is one: a token goes in clear
    /// text only to a loopback address. A server that takes no tokens
    /// answers `AUTH` with an `ERROR:` that leaves the session open: the
    /// session then goes on without an [`identity`](Self::identity).
    pub fn connect_with(
        addr: &str,
        options: &ConnectOptions,
        connect_timeout: Duration,
        io_timeout: Duration,
    ) -> Result<Session> {
        let tls = options.tls.as_ref();
        let op = format!("connect to `{addr}`");
        let trust = match tls {
            Some(tls) => Some(
                crate::tls::Trust::for_server(
                    addr,
                    tls.fingerprint.as_deref(),
                    tls.ca_file.as_deref(),
                )
                .map_err(|e| Error::new(ErrorKind::ConnectFailed, &op, format!("{e:#}")))?,
            ),
            None => None,
        };
        let candidates = addr.to_socket_addrs().map_err(|e| {
            Error::new(
                ErrorKind::ConnectFailed,
                &op,
                format!("cannot resolve it: {e}"),
            )
        })?;
        let mut last = None;
        for candidate in candidates {
            if let Some(token) = &options.token
                && tls.is_none()
                && !candidate.ip().is_loopback()
            {
                return Err(Error::new(
                    ErrorKind::ConnectFailed,
                    &op,
                    format!(
                        "refusing to send {token} in clear text to {candidate}, which is \
                         not a loopback address; connect with tls://{addr} (a server \
                         started with --tls)"
                    ),
                ));
            }
            match TcpStream::connect_timeout(&candidate, connect_timeout) {
                Ok(stream) => {
                    let conn = match (Conn::new(stream), &trust) {
                        (Ok(conn), Some(trust)) => start_tls(conn, addr, trust, connect_timeout)
                            .map_err(|refused| refused.error(&op))?,
                        (conn, _) => conn.map_err(|e| {
                            Error::new(ErrorKind::ConnectFailed, &op, e.to_string())
                        })?,
                    };
                    let setup = (|| {
                        conn.set_nodelay(true)?;
                        conn.set_read_timeout(Some(io_timeout))?;
                        conn.set_write_timeout(Some(io_timeout))
                    })();
                    if let Err(e) = setup {
                        return Err(Error::new(ErrorKind::ConnectFailed, &op, e.to_string()));
                    }
                    let mut session = Session {
                        conn: Some(conn),
                        addr: addr.to_string(),
                        options: options.clone(),
                        identity: None,
                        cancel: CancelToken::new(),
                        progress: false,
                        io_timeout,
                        max_listing: MAX_LISTING,
                        features: None,
                    };
                    session.authenticate(&op)?;
                    return Ok(session);
                }
                Err(e) => last = Some(e),
            }
        }
        let cause = match last {
            Some(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                "connection refused; is `ioe serve` running there?".to_string()
            }
            Some(e) => e.to_string(),
            None => "the name resolved to no address".to_string(),
        };
        Err(Error::new(ErrorKind::ConnectFailed, op, cause))
    }

    /// Like [`connect`](Self::connect), but gives up at once, as
    /// [`ErrorKind::Cancelled`], when `cancel` is cancelled while it waits
    /// for the name to resolve or the server to answer (the attempt goes on
    /// on a thread of its own until its timeout, and is then dropped). The
    /// session uses `cancel` for its transfers.
    pub fn connect_cancellable(addr: &str, cancel: &CancelToken) -> Result<Session> {
        let (addr, tls) = split_scheme(addr).map_err(|e| bad_address(addr, e))?;
        Session::connect_cancellable_with(addr, ConnectOptions::with_tls(tls), cancel)
    }

    /// [`connect_cancellable`](Self::connect_cancellable) to `addr`
    /// (`host:port`) with `options` (see [`connect_with`](Self::connect_with)).
    pub fn connect_cancellable_with(
        addr: &str,
        options: ConnectOptions,
        cancel: &CancelToken,
    ) -> Result<Session> {
        let op = format!("connect to `{addr}`");
        let cancelled = || {
            Error::new(
                ErrorKind::Cancelled,
                &op,
                format!("{} before the server answered", cancel.cause()),
            )
        };
        if cancel.is_cancelled() {
            return Err(cancelled());
        }
        let (sender, receiver) = mpsc::channel();
        let target = addr.to_string();
        thread::Builder::new()
            .name("ioe-connect".into())
            .spawn(move || {
                let _ = sender.send(Session::connect_with(
                    &target,
                    &options,
                    CONNECT_TIMEOUT,
                    IO_TIMEOUT,
                ));
            })
            .map_err(|e| Error::new(ErrorKind::ConnectFailed, &op, e.to_string()))?;
        loop {
            match receiver.recv_timeout(CANCEL_POLL) {
                Ok(result) => {
                    let mut session = result?;
                    session.set_cancel(cancel.clone());
                    return Ok(session);
                }
                Err(RecvTimeoutError::Timeout) if cancel.is_cancelled() => {
                    return Err(cancelled());
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Error::new(
                        ErrorKind::ConnectFailed,
                        &op,
                        "the connecting thread stopped",
                    ));
                }
            }
        }
    }

    /// The TLS options this session was opened with; `None` for plain TCP.
    pub fn tls(&self) -> Option<&TlsOptions> {
        self.options.tls.as_ref()
    }

    /// How this session connected (TLS, token): a new connection made with
    /// them speaks and authenticates as this one did.
    pub fn options(&self) -> &ConnectOptions {
        &self.options
    }

    /// Who the server says this session is: the label of the token it
    /// accepted in `AUTH`; `None` without a token or when the server takes
    /// none.
    pub fn identity(&self) -> Option<&str> {
        self.identity.as_deref()
    }

    /// Sends the token, if there is one, in `AUTH` and keeps the identity
    /// the server names. A refused token closes the session (the server
    /// closes the connection); a server that takes no tokens answers with
    /// an `ERROR:` that leaves it open, and the session goes on.
    fn authenticate(&mut self, op: &str) -> Result<()> {
        let Some(token) = self.options.token.clone() else {
            return Ok(());
        };
        let line = Request::Extension(Extension::Auth(token.clone())).to_line();
        self.send(op, line.as_bytes())?;
        match self.status(op)? {
            Status::Ok(identity) => {
                self.identity = Some(identity);
                Ok(())
            }
            Status::Error(message) if message == AUTH_FAILED => {
                self.conn = None;
                Err(Error::new(
                    ErrorKind::ConnectFailed,
                    op,
                    format!(
                        "the server refused {token} and closed the connection; check that \
                         it is the whole token `ioe token new` printed and that it was not \
                         revoked (`ioe token list` on the server shows the labels)"
                    ),
                ))
            }
            Status::Error(message) if protocol::announces_close(&message) => {
                // the refusal of any request, as a failed connect
                let mut refused = self.refusal(op, &message);
                refused.kind = ErrorKind::ConnectFailed;
                Err(refused)
            }
            Status::Error(_) => Ok(()),
            Status::Size(_) => Err(self.broken(op, "a size where `OK <identity>` was expected")),
        }
    }

    /// The fingerprint (`SHA256:…`) of the certificate the server showed,
    /// over TLS while connected.
    pub fn server_fingerprint(&self) -> Option<String> {
        let der = self.conn.as_ref()?.peer_certificate()?;
        Some(crate::tls::fingerprint(&der))
    }

    /// Makes transfers fail promptly when `token` is cancelled.
    pub fn set_cancel(&mut self, token: CancelToken) {
        self.cancel = token;
    }

    /// Shows a progress bar for long transfers (see [`crate::progress`]).
    pub fn set_progress(&mut self, enabled: bool) {
        self.progress = enabled;
    }

    /// Sets the most entries one listing may hold (by default
    /// [`MAX_LISTING`]). A server that announces more is not read any
    /// further: the listing fails as `connection_lost` and the session is
    /// closed.
    pub fn set_max_listing(&mut self, entries: u64) {
        self.max_listing = entries;
    }

    /// The `host:port` this session was opened with.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether the session can still send requests: false after `bye`, a
    /// lost connection, or once the server has hung up or sent a notice
    /// unasked (it only does so when it closes the connection: idle too
    /// long, shutting down). Looks at the connection without waiting.
    pub fn is_open(&self) -> bool {
        // nothing to read yet: the server is waiting for a request
        self.conn
            .as_ref()
            .is_some_and(|conn| conn.pending() == Pending::Nothing)
    }

    /// Lists the root (`None`) or a folder, sorted by name.
    pub fn list(&mut self, dir: Option<&str>) -> Result<Vec<Entry>> {
        let op = match dir {
            Some(dir) => format!("list `{dir}`"),
            None => "list".to_string(),
        };
        if let Some(dir) = dir {
            check_name(&op, dir)?;
        }
        let _in_flight = self.exchange(&op)?;
        self.send(
            &op,
            Request::List(dir.map(str::to_string)).to_line().as_bytes(),
        )?;
        let count = match self.status(&op)? {
            Status::Ok(text) => protocol::parse_number(text.as_bytes())
                .map_err(|e| self.broken(&op, format!("entry count {e}")))?,
            Status::Error(message) => return Err(self.refusal(&op, &message)),
            Status::Size(_) => return Err(self.broken(&op, "a size where `OK <n>` was expected")),
        };
        if count > self.max_listing {
            return Err(self.listing_too_long(&op, count));
        }
        let mut entries = Vec::with_capacity(count.min(4096) as usize);
        for _ in 0..count {
            let line = self.line(&op)?;
            let entry = Entry::parse(&line).map_err(|e| self.broken(&op, e))?;
            entries.push(entry);
        }
        Ok(entries)
    }

    /// Ends the session politely. Closing a closed session does nothing;
    /// so does closing one that the server closed already (idle timeout,
    /// shutdown) or that was lost: the session ends either way, with
    /// nothing left pending.
    pub fn bye(&mut self) -> Result<()> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        let op = "bye";
        // Ctrl-C stops the wait for the reply too
        let _in_flight = self.cancel.guard(conn.closer());
        if conn.write_all(Request::Bye.to_line().as_bytes()).is_err() {
            self.conn = None;
            return Ok(());
        }
        let status = self.status(op);
        self.conn = None;
        match status {
            Ok(Status::Ok(_)) => Ok(()),
            Ok(Status::Error(message)) if protocol::announces_close(&message) => Ok(()),
            Err(e) if e.kind == ErrorKind::ConnectionLost => Ok(()),
            Err(e) => Err(e),
            Ok(Status::Error(message)) => Err(self.refusal(op, &message)),
            Ok(Status::Size(_)) => Err(self.broken(op, "a size where `OK` was expected")),
        }
    }

    /// Lets Ctrl-C end the exchange that starts now (request, reply and
    /// body) until the returned guard is dropped.
    fn exchange(&mut self, op: &str) -> Result<InFlight> {
        let closer = self.conn_mut(op)?.closer();
        Ok(self.cancel.guard(closer))
    }

    fn conn_mut(&mut self, op: &str) -> Result<&mut Conn> {
        let addr = &self.addr;
        self.conn.as_mut().ok_or_else(|| {
            Error::new(
                ErrorKind::NotConnected,
                op,
                format!(
                    "not connected (the session with {addr} was closed); connect to a server first"
                ),
            )
        })
    }

    fn send(&mut self, op: &str, bytes: &[u8]) -> Result<()> {
        let result = self.conn_mut(op)?.write_all(bytes);
        result.map_err(|e| self.lost(op, e.to_string()))
    }

    /// The next reply line, which must be whole within the I/O timeout.
    fn line(&mut self, op: &str) -> Result<Vec<u8>> {
        let deadline = self.reply_deadline();
        let line = self.conn_mut(op)?.read_line_by(MAX_LINE, deadline);
        match line {
            Ok(Line::Complete(line)) => Ok(line),
            Ok(Line::Eof | Line::Truncated) => {
                Err(self.lost(op, "the server closed the connection"))
            }
            Ok(Line::TooLong) => Err(self.broken(op, "reply line too long")),
            Err(e) if conn::is_timeout(&e) => {
                let waited = describe(self.io_timeout);
                Err(self.lost(
                    op,
                    format!("the server sent no whole reply line within {waited}"),
                ))
            }
            Err(e) => Err(self.lost(op, e.to_string())),
        }
    }

    /// When a reply line that starts to be awaited now must be whole.
    fn reply_deadline(&self) -> Instant {
        let now = Instant::now();
        now.checked_add(self.io_timeout)
            .unwrap_or_else(|| now + FAR_FUTURE)
    }

    fn status(&mut self, op: &str) -> Result<Status> {
        let line = self.line(op)?;
        protocol::parse_status(&line).map_err(|e| self.broken(op, e))
    }

    /// Closes the session after a transport failure.
    fn lost(&mut self, op: &str, cause: impl std::fmt::Display) -> Error {
        self.conn = None;
        if self.cancel.is_cancelled() {
            Error::new(
                ErrorKind::Cancelled,
                op,
                format!(
                    "{}; nothing partial was kept and the session was closed",
                    self.cancel.cause()
                ),
            )
        } else {
            Error::new(
                ErrorKind::ConnectionLost,
                op,
                format!(
                    "connection to {} lost: {cause}; nothing partial was kept, reconnect to go on",
                    self.addr
                ),
            )
        }
    }

    /// An upload body the server stopped taking. A server that closes a
    /// connection it refuses (busy, shutting down) says why first, and that
    /// line is still readable after the reset: report it, not "broken pipe".
    fn send_failed(&mut self, op: &str, e: &io::Error) -> Error {
        let closed_by_server = matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        );
        if closed_by_server && !self.cancel.is_cancelled() {
            // the connection is closed, so this read does not wait long
            let deadline = self.reply_deadline();
            let line = self
                .conn
                .as_mut()
                .map(|conn| conn.read_line_by(MAX_LINE, deadline));
            if let Some(Ok(Line::Complete(line))) = line
                && let Ok(Status::Error(message)) = protocol::parse_status(&line)
                && protocol::announces_close(&message)
            {
                return self.refusal(op, &message);
            }
        }
        self.lost(op, e)
    }

    /// The server's `ERROR:` reply. The session stays usable unless the
    /// message says the server is closing the connection.
    fn refusal(&mut self, op: &str, message: &str) -> Error {
        if protocol::announces_close(message) {
            self.conn = None;
            return Error::new(
                ErrorKind::ConnectionLost,
                op,
                format!(
                    "server said: {message} (the session is now closed){}",
                    self.tls_hint(message)
                ),
            );
        }
        if message == AUTH_REQUIRED {
            let addr = &self.addr;
            let what = match &self.options.origin {
                Some(origin) => format!(
                    "add `token_file = \"…\"` to `[{}]` in {} (a server from the servers \
                     file takes only its `token_file`, never the {} environment variable)",
                    origin.name,
                    origin.file.display(),
                    crate::auth::TOKEN_ENV
                ),
                None => format!(
                    "connect with connect(\"tls://{addr}\", #{{token: \"…\"}}) or set the \
                     {} environment variable (a server from the servers file takes only \
                     its `token_file`)",
                    crate::auth::TOKEN_ENV
                ),
            };
            let named = match &self.options.origin {
                Some(origin) => format!("`{}` ({addr})", origin.name),
                None => addr.to_string(),
            };
            return Error::new(
                ErrorKind::Refused,
                op,
                format!(
                    "server said: {message}: {named} takes tokens and this session gave \
                     none; {what}; `ioe token new` on the server mints a token"
                ),
            );
        }
        // `the token `LABEL` is read-only` (and older servers' wording)
        let read_only_token = message == "this session's token is read-only"
            || (message.starts_with("the token `") && message.ends_with("` is read-only"));
        if read_only_token {
            return Error::new(
                ErrorKind::Refused,
                op,
                format!(
                    "server said: {message}; use a read-write token (`ioe token new` \
                     without --read-only)"
                ),
            );
        }
        let kind = if message.starts_with(protocol::NOT_FOUND) {
            ErrorKind::NotFound
        } else {
            ErrorKind::Refused
        };
        Error::new(kind, op, format!("server said: {message}"))
    }

    /// After the server's [`TLS_REQUIRED`](crate::server::TLS_REQUIRED)
    /// refusal of a plain connection: how to ask for TLS (`tls://` before
    /// the address, or in the servers file's `address`). Empty otherwise.
    fn tls_hint(&self, message: &str) -> String {
        let required = crate::server::TLS_REQUIRED
            .trim_end()
            .trim_start_matches("ERROR: ");
        if message != required || self.options.tls.is_some() {
            return String::new();
        }
        let addr = &self.addr;
        match &self.options.origin {
            Some(origin) => format!(
                "; add `tls://` to the `address` of `[{}]` in {} (`address = \"tls://{addr}\"`)",
                origin.name,
                origin.file.display()
            ),
            None => format!("; connect with tls://{addr}"),
        }
    }

    /// Closes the session after the server announced a listing of `count`
    /// entries, more than it may hold; none of them is read.
    fn listing_too_long(&mut self, op: &str, count: u64) -> Error {
        self.conn = None;
        Error::new(
            ErrorKind::ConnectionLost,
            op,
            format!(
                "server {} announced {count} entries, more than the {} one listing may hold; \
                 the session was closed (a program using the ioe library can raise the \
                 limit with Session::set_max_listing)",
                self.addr, self.max_listing
            ),
        )
    }

    /// Closes the session after the server broke the protocol.
    fn broken(&mut self, op: &str, cause: impl std::fmt::Display) -> Error {
        self.conn = None;
        Error::new(
            ErrorKind::ConnectionLost,
            op,
            format!(
                "server {} broke the protocol ({cause}); the session was closed",
                self.addr
            ),
        )
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            let _ = conn.write_all(Request::Bye.to_line().as_bytes());
        }
    }
}

/// `connect_failed` for an address `text` that is no address.
fn bad_address(text: &str, e: crate::addr::AddrError) -> Error {
    Error::new(
        ErrorKind::ConnectFailed,
        format!("connect to `{text}`"),
        e.to_string(),
    )
}

/// A timeout as people read it: `60 s`, `250 ms`.
fn describe(timeout: Duration) -> String {
    if timeout.subsec_nanos() == 0 {
        format!("{} s", timeout.as_secs())
    } else {
        format!("{} ms", timeout.as_millis())
    }
}

/// Refuses, before anything is sent, a name IOE/1 does not allow.
fn check_name(op: &str, name: &str) -> Result<()> {
    protocol::validate_name(name).map_err(|e| Error::new(ErrorKind::BadName, op, e.to_string()))
}

/// Why a TLS handshake failed: the cause a user reads, and the
/// fingerprint of a server met for the first time.
struct TlsRefused {
    cause: String,
    first_contact: Option<String>,
}

impl TlsRefused {
    fn error(self, op: &str) -> Error {
        let mut error = Error::new(ErrorKind::ConnectFailed, op, self.cause);
        error.first_contact = self
            .first_contact
            .map(|fingerprint| Box::new(crate::error::FirstContact { fingerprint }));
        error
    }
}

/// Runs the TLS handshake of a new connection to `addr` within `limit`,
/// trusting what `trust` trusts; the error says why the server was
/// refused and how to go on.
fn start_tls(
    conn: Conn,
    addr: &str,
    trust: &crate::tls::Trust,
    limit: Duration,
) -> std::result::Result<Conn, TlsRefused> {
    let plain = |cause: String| TlsRefused {
        cause,
        first_contact: None,
    };
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    let name = crate::tls::server_name(host).map_err(|e| plain(e.to_string()))?;
    let (config, seen) = crate::tls::trusting_config(trust.clone());
    let deadline = Instant::now()
        .checked_add(limit)
        .unwrap_or_else(Instant::now);
    match conn.connect_tls(config, name, deadline) {
        Ok(conn) => Ok(conn),
        Err(e) => {
            let refusal = seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            match refusal {
                Some(refusal) => Err(TlsRefused {
                    cause: refusal.message(addr, trust.known_file.as_deref()),
                    first_contact: matches!(refusal, crate::tls::Refusal::Unknown { .. })
                        .then(|| refusal.shown().to_string()),
                }),
                None if conn::is_timeout(&e) => Err(plain(format!(
                    "the TLS handshake did not complete within {} s",
                    limit.as_secs()
                ))),
                None => Err(plain(format!(
                    "TLS handshake failed: {e} (is the server started with `--tls`?)"
                ))),
            }
        }
    }
}
