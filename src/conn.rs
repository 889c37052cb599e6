//! A connection's bytes, all of them: this is the only code that reads or
//! writes a connection, client's or server's. A [`Conn`] owns the
//! `Stream` (plain TCP, or TLS over it) and one large input buffer: lines
//! (bounded, so a peer cannot make us grow without limit) and
//! exact-length bodies streamed through the same buffer with no further
//! allocation. Outgoing file bodies go from the file to the stream through
//! one buffer of at most [`BUFFER_SIZE`] ([`Conn::send_file_paced`]). The
//! server's transfers go through the `_paced` variants, which keep to a
//! [`Pace`]. Timeouts, shutdown, the lingering close and the "has the peer
//! spoken or closed?" look ([`Conn::pending`]) are here too; other threads
//! get a [`Closer`], which can shut the connection down but never read or
//! write it.

use crate::rate::Pace;
use rustls::pki_types::ServerName;
use rustls::{
    ClientConfig, ClientConnection, ConnectionCommon, ServerConfig, ServerConnection, SideData,
};
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Size of the input buffer; bodies move through it in chunks of this size.
pub const BUFFER_SIZE: usize = 256 * 1024;
/// Most bytes [`Conn::linger_close`] reads and drops.
const LINGER_BYTES: usize = 8 * 1024 * 1024;
/// How long [`Conn::linger_close`] reads at most.
const LINGER_TIME: Duration = Duration::from_secs(2);
/// How long [`Conn::linger_close`] waits for each piece.
const LINGER_WAIT: Duration = Duration::from_millis(200);

/// The result of [`Conn::read_line`].
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A whole line, without its LF.
    Complete(Vec<u8>),
    /// The peer closed the connection between lines.
    Eof,
    /// The peer closed the connection in the middle of a line.
    Truncated,
    /// No LF within the allowed length.
    TooLong,
}

/// What [`Conn::pending`] found, without waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    /// Nothing to read and the peer has not closed: it waits for us.
    Nothing,
    /// Input not read yet, in our buffer or still in the socket.
    Input,
    /// The peer closed its side, or the connection failed.
    Closed,
}

/// The byte stream under a [`Conn`]. An enum, not a trait: plain TCP, or
/// TLS (rustls over the same `TcpStream`) as a server or as a client. The
/// plain arm is the TCP socket itself, so it pays nothing for TLS.
/// Timeouts and shutdown always act on the TCP socket under it
/// ([`socket`](Stream::socket)).
enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS, this side the server.
    TlsServer(Box<Tls<ServerConnection>>),
    /// TLS, this side the client.
    TlsClient(Box<Tls<ClientConnection>>),
}

/// A TLS connection over a TCP socket. The rustls state sits behind a lock
/// only so that [`Stream::pending`] can drive it from `&self`; every other
/// use takes it with `get_mut`, which costs no locking.
struct Tls<C> {
    /// A duplicate descriptor of the socket, for timeouts and shutdown.
    socket: TcpStream,
    inner: Mutex<TlsInner<C>>,
}

/// The rustls connection, its socket, and the TLS bytes read from the
/// socket but not given to rustls yet.
///
/// rustls reads a socket itself at most 4 KiB at a time (and at most one
/// record's worth), which on a fast link is four `recv` calls per 16 KiB
/// record and most of a TLS download's extra CPU outside the cipher.
/// Reading the socket into `staged`, [`STAGE_SIZE`] at a time, and handing
/// rustls slices of it takes one `recv` for many records
/// (docs/performance.md, "TLS").
struct TlsInner<C> {
    conn: C,
    sock: TcpStream,
    staged: Box<[u8]>,
    /// `staged[start..end]` is not given to rustls yet.
    start: usize,
    end: usize,
    /// Records rustls rejected after a read had plaintext to return
    /// already: the next read fails with it.
    failed: Option<io::Error>,
}

/// How many TLS bytes [`TlsInner`] reads from the socket at a time.
const STAGE_SIZE: usize = 128 * 1024;

/// How many encrypted bytes rustls may hold for sending: one write of a
/// whole [`BUFFER_SIZE`] piece goes out in one `writev` of its records
/// rather than in pieces of rustls' default 64 KiB.
const TLS_SEND_LIMIT: usize = BUFFER_SIZE + 64 * 1024;

impl<C, S> Tls<C>
where
    C: DerefMut<Target = ConnectionCommon<S>> + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    /// Runs the handshake of `conn` over `socket`, failing with `TimedOut`
    /// if it is not complete by `deadline`.
    fn handshake(mut conn: C, socket: TcpStream, deadline: Instant) -> io::Result<Tls<C>> {
        let mut tcp = socket;
        while conn.is_handshaking() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the TLS handshake did not complete in time",
                ));
            }
            tcp.set_read_timeout(Some(left))?;
            tcp.set_write_timeout(Some(left))?;
            match conn.complete_io(&mut tcp) {
                Ok((0, 0)) if conn.is_handshaking() => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the peer closed during the TLS handshake",
                    ));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        conn.set_buffer_limit(Some(TLS_SEND_LIMIT));
        Ok(Tls {
            socket: tcp.try_clone()?,
            inner: Mutex::new(TlsInner {
                conn,
                sock: tcp,
                staged: vec![0; STAGE_SIZE].into_boxed_slice(),
                start: 0,
                end: 0,
                failed: None,
            }),
        })
    }

    fn get(&mut self) -> &mut TlsInner<C> {
        self.inner.get_mut().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads plaintext into `buf`; 0 at the end of the input (a
    /// `close_notify`, or a TCP close without one, as for plain TCP).
    ///
    /// Waits only while nothing has arrived; then it goes on decrypting
    /// what the socket already holds, without waiting, until `buf` is full.
    /// rustls hands out one record (16 KiB) at a time, and a body read
    /// record by record would cost its writer (a file, the hasher) a call
    /// per 16 KiB instead of one per buffer.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let inner = self.get();
        if let Some(e) = inner.failed.take() {
            return Err(e);
        }
        let mut filled = 0;
        loop {
            match inner.conn.reader().read(&mut buf[filled..]) {
                Ok(0) if filled == 0 => return Ok(0),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && filled == 0 => return Ok(0),
                Err(e) if filled == 0 => return Err(e),
                // the end or the failure shows again on the next call
                Err(_) => return Ok(filled),
            }
            if filled == buf.len() {
                return Ok(filled);
            }
            if inner.start == inner.end {
                let got = if filled == 0 {
                    inner.sock.read(&mut inner.staged)?
                } else {
                    match NoWait(&inner.sock).read(&mut inner.staged) {
                        Ok(got) if got > 0 => got,
                        // nothing more yet, the end, or a failure: the
                        // next call sees it
                        _ => return Ok(filled),
                    }
                };
                if got == 0 {
                    return Ok(0);
                }
                (inner.start, inner.end) = (0, got);
            }
            match inner.feed() {
                Ok(0) => return Ok(filled),
                Ok(_) => {}
                Err(e) if filled == 0 => return Err(e),
                Err(e) => {
                    inner.failed = Some(e);
                    return Ok(filled);
                }
            }
            if inner.conn.wants_write() {
                // a reply of the TLS layer itself (a key update's)
                inner.flush()?;
            }
        }
    }

    /// The rustls state from `&self` (see [`Conn::peer_certificate`]).
    fn locked(&self) -> std::sync::MutexGuard<'_, TlsInner<C>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends what rustls still holds (a write that timed out leaves its
    /// records there). Only writes: rustls' own `flush` may go on to read
    /// (and wait out the read timeout) when the socket takes nothing.
    fn flush(&mut self) -> io::Result<()> {
        self.get().flush()
    }

    /// Writes some of `bytes`: first what rustls still holds, then `bytes`
    /// into rustls, then as much of it to the socket as the write timeout
    /// allows (the rest waits in rustls for the next write or
    /// [`flush`](Tls::flush)). Never reads, unlike rustls' `Stream::write`,
    /// which a socket that takes nothing sends on to a blocking read.
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.flush()?;
        let TlsInner { conn, sock, .. } = self.get();
        let taken = conn.writer().write(bytes)?;
        while conn.wants_write() {
            match conn.write_tls(sock) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // the bytes were taken: the error shows again on the next call
                Err(_) => break,
            }
        }
        Ok(taken)
    }

    fn write_all(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            match self.write(bytes) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.flush()
    }

    fn has_unsent(&mut self) -> bool {
        self.get().conn.wants_write()
    }

    /// Sends a `close_notify` alert, as far as the socket takes it.
    fn close_notify(&mut self) {
        self.get().conn.send_close_notify();
        let _ = self.flush();
    }

    /// See [`Stream::pending`]: takes what the socket holds into rustls
    /// without waiting and answers from the plaintext that results.
    fn pending(&self) -> Pending {
        let mut inner = self.locked();
        // bounded: each round takes at most one read's worth from the socket
        for _ in 0..64 {
            let state = match inner.conn.process_new_packets() {
                Ok(state) => state,
                Err(_) => return Pending::Closed,
            };
            if state.plaintext_bytes_to_read() > 0 {
                return Pending::Input;
            }
            if state.peer_has_closed() {
                return Pending::Closed;
            }
            if !inner.conn.wants_read() {
                return Pending::Input;
            }
            if inner.start < inner.end {
                if inner.feed().is_err() {
                    return Pending::Closed;
                }
                continue;
            }
            let TlsInner { conn, sock, .. } = &mut *inner;
            match conn.read_tls(&mut NoWait(sock)) {
                Ok(0) => return Pending::Closed,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Pending::Nothing,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Pending::Closed,
            }
        }
        Pending::Input
    }
}

impl<C, S> TlsInner<C>
where
    C: DerefMut<Target = ConnectionCommon<S>> + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    /// Gives rustls what it takes of the staged bytes and processes the
    /// records that completes; returns how many it took. A record rustls
    /// rejects is an `InvalidData` error, after the alert that tells the
    /// peer so has been sent. rustls takes nothing more once the peer's
    /// `close_notify` came: whatever follows it is dropped, and 0 returned.
    fn feed(&mut self) -> io::Result<usize> {
        let mut staged = &self.staged[self.start..self.end];
        let took = self.conn.read_tls(&mut staged)?;
        self.start += took;
        if took == 0 {
            self.start = self.end;
        }
        if let Err(e) = self.conn.process_new_packets() {
            let _ = self.flush();
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        Ok(took)
    }

    /// See [`Tls::flush`].
    fn flush(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Reads a socket without waiting: `WouldBlock` when it holds nothing.
struct NoWait<'a>(&'a TcpStream);

impl Read for NoWait<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let flags = rustix::net::RecvFlags::DONTWAIT;
        match rustix::net::recv(self.0, buf, flags) {
            Ok((n, _)) => Ok(n),
            Err(e) => Err(io::Error::from(e)),
        }
    }
}

impl Stream {
    /// The TCP socket under the stream.
    fn socket(&self) -> &TcpStream {
        match self {
            Stream::Plain(stream) => stream,
            Stream::TlsServer(tls) => &tls.socket,
            Stream::TlsClient(tls) => &tls.socket,
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(stream) => stream.read(buf),
            Stream::TlsServer(tls) => tls.read(buf),
            Stream::TlsClient(tls) => tls.read(buf),
        }
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(stream) => stream.write(bytes),
            Stream::TlsServer(tls) => tls.write(bytes),
            Stream::TlsClient(tls) => tls.write(bytes),
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Stream::Plain(stream) => stream.write_all(bytes),
            Stream::TlsServer(tls) => tls.write_all(bytes),
            Stream::TlsClient(tls) => tls.write_all(bytes),
        }
    }

    /// Sends what a TLS layer still holds; nothing to do for plain TCP.
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(_) => Ok(()),
            Stream::TlsServer(tls) => tls.flush(),
            Stream::TlsClient(tls) => tls.flush(),
        }
    }

    /// Whether a TLS layer holds records not sent yet.
    fn has_unsent(&mut self) -> bool {
        match self {
            Stream::Plain(_) => false,
            Stream::TlsServer(tls) => tls.has_unsent(),
            Stream::TlsClient(tls) => tls.has_unsent(),
        }
    }

    /// Tells a TLS peer we are done (`close_notify`); nothing for plain TCP.
    fn close_notify(&mut self) {
        match self {
            Stream::Plain(_) => {}
            Stream::TlsServer(tls) => tls.close_notify(),
            Stream::TlsClient(tls) => tls.close_notify(),
        }
    }

    /// Whether input waits or the peer closed, without waiting and
    /// without consuming anything.
    ///
    /// Plain TCP peeks one byte of the socket. TLS must not: after a TLS
    /// 1.3 handshake the server sends session tickets, which a raw peek
    /// would take for a reply. It reads through the TLS layer without
    /// waiting instead: what the socket holds goes into rustls, the records
    /// are processed (tickets are absorbed there), and the answer comes
    /// from what is left: plaintext to read is [`Pending::Input`], a
    /// `close_notify` or EOF is [`Pending::Closed`], no plaintext is
    /// [`Pending::Nothing`]. Decrypted bytes stay in rustls for the next
    /// [`read`](Stream::read), so nothing is lost.
    fn pending(&self) -> Pending {
        match self {
            Stream::Plain(stream) => {
                let flags = rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT;
                match rustix::net::recv(stream, &mut [0u8; 1], flags) {
                    Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => Pending::Nothing,
                    Ok((0, _)) | Err(_) => Pending::Closed,
                    Ok(_) => Pending::Input,
                }
            }
            Stream::TlsServer(tls) => tls.pending(),
            Stream::TlsClient(tls) => tls.pending(),
        }
    }
}

/// Shuts a [`Conn`] down from another thread (the server's shutdown and
/// eviction, a [`crate::cancel::CancelToken`]), so that a blocked read or
/// write returns at once. It holds its own descriptor of the socket (a
/// duplicate, made once by [`Conn::new`]) and offers no way to read or
/// write: the connection's bytes stay with the `Conn`. The socket stays
/// open until the `Conn` and every clone of its `Closer` are dropped.
#[derive(Clone)]
pub struct Closer(Arc<TcpStream>);

impl Closer {
    /// Shuts down reading, writing or both, for the `Conn` too.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.0.shutdown(how)
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.peer_addr()
    }
}

/// A connected stream with buffered input.
pub struct Conn {
    stream: Stream,
    closer: Closer,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl Conn {
    /// Wraps a connected plain TCP stream. Fails only if the socket's
    /// descriptor cannot be duplicated for its [`Closer`].
    pub fn new(stream: TcpStream) -> io::Result<Conn> {
        let closer = Closer(Arc::new(stream.try_clone()?));
        Ok(Conn {
            stream: Stream::Plain(stream),
            closer,
            buf: vec![0; BUFFER_SIZE].into_boxed_slice(),
            start: 0,
            end: 0,
        })
    }

    /// The first byte the peer sends, left unread, waiting at most until
    /// `deadline`; `None` if the peer closed first. Leaves the socket's
    /// read timeout changed.
    pub fn peek_first_byte(&self, deadline: Instant) -> io::Result<Option<u8>> {
        if let Some(&first) = self.buffered().first() {
            return Ok(Some(first));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        let socket = self.stream.socket();
        socket.set_read_timeout(Some(left))?;
        let mut byte = [0u8; 1];
        loop {
            match socket.peek(&mut byte) {
                Ok(0) => return Ok(None),
                Ok(_) => return Ok(Some(byte[0])),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Runs a TLS handshake as the server over this plain connection, done
    /// by `deadline`; from then on every byte goes through TLS. Leaves the
    /// socket's timeouts changed: the caller sets them again.
    pub fn accept_tls(self, config: Arc<ServerConfig>, deadline: Instant) -> io::Result<Conn> {
        let (tcp, conn) = self.into_plain()?;
        let server = ServerConnection::new(config).map_err(io::Error::other)?;
        let tls = Tls::handshake(server, tcp, deadline)?;
        Ok(Conn {
            stream: Stream::TlsServer(Box::new(tls)),
            ..conn
        })
    }

    /// Runs a TLS handshake as the client of `name` over this plain
    /// connection, done by `deadline`. Leaves the socket's timeouts
    /// changed: the caller sets them again.
    pub fn connect_tls(
        self,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
        deadline: Instant,
    ) -> io::Result<Conn> {
        let (tcp, conn) = self.into_plain()?;
        let client = ClientConnection::new(config, name).map_err(io::Error::other)?;
        let tls = Tls::handshake(client, tcp, deadline)?;
        Ok(Conn {
            stream: Stream::TlsClient(Box::new(tls)),
            ..conn
        })
    }

    /// The plain socket, and the rest of the `Conn` around a placeholder
    /// stream (a duplicate of the socket) that the caller replaces.
    fn into_plain(self) -> io::Result<(TcpStream, Conn)> {
        let Stream::Plain(tcp) = self.stream else {
            return Err(io::Error::other("the connection speaks TLS already"));
        };
        let placeholder = Stream::Plain(tcp.try_clone()?);
        Ok((
            tcp,
            Conn {
                stream: placeholder,
                ..self
            },
        ))
    }

    /// The DER certificate the peer showed (its first), over TLS.
    pub fn peer_certificate(&self) -> Option<Vec<u8>> {
        let first = |certs: Option<&[rustls::pki_types::CertificateDer<'_>]>| {
            certs.and_then(|c| c.first()).map(|c| c.to_vec())
        };
        match &self.stream {
            Stream::Plain(_) => None,
            Stream::TlsServer(tls) => first(tls.locked().conn.peer_certificates()),
            Stream::TlsClient(tls) => first(tls.locked().conn.peer_certificates()),
        }
    }

    /// A handle that shuts this connection down from another thread.
    pub fn closer(&self) -> Closer {
        self.closer.clone()
    }

    /// The bytes received but not consumed yet.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Marks `n` buffered bytes as consumed.
    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.end - self.start);
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Whether the buffer has no free space left.
    pub fn is_full(&self) -> bool {
        self.start == 0 && self.end == self.buf.len()
    }

    /// Reads more bytes from the socket, after those already buffered.
    /// Returns how many arrived; 0 means the peer closed its side.
    pub fn fill(&mut self) -> io::Result<usize> {
        if self.end == self.buf.len() && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            return Err(io::Error::other("input buffer is full"));
        }
        loop {
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads one LF-terminated line of at most `max` bytes, LF included.
    pub fn read_line(&mut self, max: usize) -> io::Result<Line> {
        self.read_line_until(max, None)
    }

    /// [`read_line`](Conn::read_line), failing with a `TimedOut` error if
    /// the whole line has not arrived by `deadline`, however steadily its
    /// bytes trickle in. Leaves the socket's read timeout changed: the
    /// caller sets it again.
    pub fn read_line_by(&mut self, max: usize, deadline: Instant) -> io::Result<Line> {
        self.read_line_until(max, Some(deadline))
    }

    fn read_line_until(&mut self, max: usize, deadline: Option<Instant>) -> io::Result<Line> {
        let mut scanned = 0;
        loop {
            let buffered = self.buffered();
            if let Some(i) = buffered[scanned..].iter().position(|&b| b == b'\n') {
                let lf = scanned + i;
                if lf + 1 > max {
                    return Ok(Line::TooLong);
                }
                let line = buffered[..lf].to_vec();
                self.consume(lf + 1);
                return Ok(Line::Complete(line));
            }
            scanned = buffered.len();
            if scanned >= max {
                return Ok(Line::TooLong);
            }
            if let Some(deadline) = deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                self.set_read_timeout(Some(left))?;
            }
            if self.fill()? == 0 {
                return Ok(if self.buffered().is_empty() {
                    Line::Eof
                } else {
                    Line::Truncated
                });
            }
        }
    }

    /// Passes exactly `n` body bytes to `sink`, chunk by chunk. Returns the
    /// number of bytes received when the peer closed early, or the first
    /// error of the socket. `sink` errors do not stop the reading (so the
    /// stream stays in sync): the first one is returned once all `n` bytes
    /// have been read.
    pub fn read_body(
        &mut self,
        n: u64,
        sink: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> Result<Result<(), io::Error>, BodyError> {
        self.read_body_inner(n, None, sink)
    }

    /// [`read_body`](Conn::read_body) keeping to `pace`: each read waits at
    /// most [`Pace::timeout`], and a body that stalls or falls below the
    /// floor fails with a `TimedOut` error carrying a
    /// [`Slow`](crate::rate::Slow). Leaves the socket's read timeout
    /// changed: the caller sets it again.
    pub fn read_body_paced(
        &mut self,
        n: u64,
        pace: &mut Pace,
        sink: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> Result<Result<(), io::Error>, BodyError> {
        self.read_body_inner(n, Some(pace), sink)
    }

    fn read_body_inner(
        &mut self,
        n: u64,
        mut pace: Option<&mut Pace>,
        mut sink: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> Result<Result<(), io::Error>, BodyError> {
        if let Some(pace) = pace.as_deref_mut() {
            // body bytes that came with the request line count as received now
            let early = (self.buffered().len() as u64).min(n);
            pace.record(early, Instant::now())
                .map_err(|slow| BodyError::Io(slow.into_io()))?;
        }
        let mut remaining = n;
        let mut sink_error = None;
        while remaining > 0 {
            if self.buffered().is_empty() {
                let filled = match pace.as_deref_mut() {
                    Some(pace) => self.fill_paced(pace),
                    None => self.fill(),
                };
                match filled {
                    Ok(0) => {
                        return Err(BodyError::Eof {
                            received: n - remaining,
                        });
                    }
                    Ok(_) => {}
                    Err(e) => return Err(BodyError::Io(e)),
                }
            }
            let take = self
                .buffered()
                .len()
                .min(usize::try_from(remaining).unwrap_or(usize::MAX));
            if sink_error.is_none()
                && let Err(e) = sink(&self.buffered()[..take])
            {
                sink_error = Some(e);
            }
            self.consume(take);
            remaining -= take as u64;
        }
        Ok(sink_error.map_or(Ok(()), Err))
    }

    /// [`fill`](Conn::fill), waking up when `pace` wants a check and
    /// counting what arrived.
    fn fill_paced(&mut self, pace: &mut Pace) -> io::Result<usize> {
        loop {
            self.set_read_timeout(Some(pace.timeout(Instant::now())))?;
            match self.fill() {
                Ok(0) => return Ok(0),
                Ok(got) => {
                    pace.record(got as u64, Instant::now())
                        .map_err(|slow| slow.into_io())?;
                    return Ok(got);
                }
                Err(e) if is_timeout(&e) => {
                    pace.record(0, Instant::now())
                        .map_err(|slow| slow.into_io())?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes all of `bytes`.
    pub fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Writes all of `bytes` keeping to `pace` (see `PacedWriter`).
    pub fn write_all_paced(&mut self, bytes: &[u8], pace: &mut Pace) -> io::Result<()> {
        PacedWriter::new(&mut self.stream, pace).write_all(bytes)
    }

    /// Sends `n` bytes of `file`, from its current offset, through a
    /// buffer of up to [`BUFFER_SIZE`] (no bigger than the body), keeping
    /// to `pace` (see `PacedWriter`). Returns how many bytes went out;
    /// fewer than `n` means the file ended early.
    ///
    /// Not `sendfile(2)`: it saves the sender a copy, but the receiver then
    /// reads the sender's page-cache pages, cold in the CPU caches, and on
    /// loopback the receiver is the bottleneck — a download from a
    /// `sendfile` server ran at ~2,700 MB/s against ~3,300 MB/s through
    /// this buffer, the receiver spending a quarter more CPU per byte
    /// (docs/performance.md). (`io::copy` would do the same through an
    /// 8 KiB buffer.) Each piece also goes to `observe` once sent (the
    /// server digests a file as it sends it when a `HASH` of it waits
    /// behind the `READ`).
    pub fn send_file_paced(
        &mut self,
        file: &File,
        n: u64,
        pace: &mut Pace,
        mut observe: impl FnMut(&[u8]),
    ) -> io::Result<u64> {
        let mut writer = PacedWriter::new(&mut self.stream, pace);
        send_pieces(file, n, |piece| {
            writer.write_all(piece)?;
            observe(piece);
            Ok(())
        })
    }

    /// Sets the read timeout.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.stream.socket().set_read_timeout(timeout)
    }

    /// Sets the write timeout.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.stream.socket().set_write_timeout(timeout)
    }

    /// Sends small writes at once (`TCP_NODELAY`): each request and reply
    /// line is one write, and waiting to merge it only adds latency.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.stream.socket().set_nodelay(nodelay)
    }

    /// Shuts down reading, writing or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.stream.socket().shutdown(how)
    }

    /// Whether input waits (buffered, or in the socket) or the peer
    /// closed, looking without waiting; see [`Pending`].
    pub fn pending(&self) -> Pending {
        if self.buffered().is_empty() {
            self.stream.pending()
        } else {
            Pending::Input
        }
    }

    /// Closes politely after a last reply: shuts our sending side, then
    /// reads and drops (at most 8 MiB, at most 2 s) what the peer still
    /// sends, so the reply reaches it instead of being lost to a reset.
    /// Leaves the read timeout changed.
    pub fn linger_close(&mut self) {
        self.stream.close_notify();
        let _ = self.shutdown(Shutdown::Write);
        let _ = self.set_read_timeout(Some(LINGER_WAIT));
        let start = Instant::now();
        let mut discarded = 0;
        let mut chunk = [0u8; 16 * 1024];
        while discarded < LINGER_BYTES && start.elapsed() < LINGER_TIME {
            match self.stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => discarded += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }
}

/// Reads up to `n` bytes of `file` into one buffer, piece by piece, and
/// hands each piece to `put`; returns how many bytes were read.
fn send_pieces(
    mut file: &File,
    n: u64,
    mut put: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<u64> {
    let mut buf = vec![0; usize::try_from(n).map_or(BUFFER_SIZE, |n| n.min(BUFFER_SIZE))];
    let mut sent = 0;
    while sent < n {
        let want = usize::try_from(n - sent).map_or(buf.len(), |left| left.min(buf.len()));
        let got = match file.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(got) => got,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        put(&buf[..got])?;
        sent += got as u64;
    }
    Ok(sent)
}

/// Writes to a stream keeping to a [`Pace`]: each write blocks at most
/// [`Pace::timeout`] (a write that times out returns what it got through),
/// and a peer that stops reading or reads below the floor fails the write
/// with a `TimedOut` error carrying a [`Slow`](crate::rate::Slow). Leaves
/// the socket's write timeout changed: the caller sets it again.
///
/// The pace counts the bytes the peer acknowledged (written, less those
/// still queued in our kernel), not those the kernel took: the send buffer
/// takes megabytes at once, then wakes a blocked writer only once a third
/// of it is free again, which for a reader well above the floor can take
/// longer than a whole rate window.
struct PacedWriter<'a> {
    stream: &'a mut Stream,
    pace: &'a mut Pace,
    /// Bytes written, plus those already queued when this writer began.
    written: u64,
    /// Acknowledged bytes the pace has counted.
    counted: u64,
}

impl<'a> PacedWriter<'a> {
    /// Starts writing to `stream` under `pace`.
    fn new(stream: &'a mut Stream, pace: &'a mut Pace) -> PacedWriter<'a> {
        let written = unacknowledged(stream.socket());
        PacedWriter {
            stream,
            pace,
            written,
            counted: 0,
        }
    }

    /// Writes all of `bytes`, and over TLS the records rustls still holds.
    fn write_all(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() || self.stream.has_unsent() {
            let timeout = self.pace.timeout(Instant::now());
            self.stream.socket().set_write_timeout(Some(timeout))?;
            let result = if bytes.is_empty() {
                self.stream.flush().map(|()| 0)
            } else {
                self.stream.write(bytes)
            };
            let wrote = match result {
                // a flush that sent every record reports 0 too: not a failure
                Ok(0) if !bytes.is_empty() => return Err(io::ErrorKind::WriteZero.into()),
                Ok(wrote) => wrote,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_timeout(&e) => 0,
                Err(e) => return Err(e),
            };
            bytes = &bytes[wrote..];
            self.written += wrote as u64;
            let acknowledged = self
                .written
                .saturating_sub(unacknowledged(self.stream.socket()));
            let progress = acknowledged.saturating_sub(self.counted);
            self.counted += progress;
            self.pace
                .record(progress, Instant::now())
                .map_err(|slow| slow.into_io())?;
        }
        Ok(())
    }
}

/// How many bytes written to `stream` the peer has not acknowledged yet
/// (`SIOCOUTQ`); 0 if the kernel cannot say, so that everything written
/// counts as delivered.
fn unacknowledged(stream: &TcpStream) -> u64 {
    use std::os::fd::AsRawFd;
    let mut queued: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ on a socket) writes one int through the
    // pointer, which points to a live `c_int`; the descriptor is the open
    // socket `stream` owns, borrowed for the duration of the call
    let done = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
    if done == 0 {
        u64::try_from(queued).unwrap_or(0)
    } else {
        0
    }
}

/// Why [`Conn::read_body`] stopped before the end of the body.
#[derive(Debug)]
pub enum BodyError {
    /// The peer closed the connection after `received` bytes.
    Eof {
        /// Body bytes that arrived before the close.
        received: u64,
    },
    /// The socket failed (reset, timeout, shut down by a cancel).
    Io(io::Error),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Eof { received } => {
                write!(f, "connection closed after {received} bytes of the body")
            }
            // a timeout of a `Pace` carries its own reason
            BodyError::Io(e) if is_timeout(e) && e.get_ref().is_none() => {
                write!(f, "timed out waiting for data")
            }
            BodyError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Whether an I/O error is a socket timeout (Linux says `WouldBlock`).
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    fn pair(data: Vec<Vec<u8>>) -> Conn {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            for chunk in data {
                s.write_all(&chunk).unwrap();
                thread::sleep(Duration::from_millis(5));
            }
        });
        Conn::new(listener.accept().unwrap().0).unwrap()
    }

    #[test]
    fn lines_split_across_reads_and_bodies_after_them() {
        let mut c = pair(vec![
            b"LI".to_vec(),
            b"ST\nWRITE,a,3\nab".to_vec(),
            b"cBYE\n".to_vec(),
        ]);
        assert_eq!(c.read_line(4096).unwrap(), Line::Complete(b"LIST".to_vec()));
        assert_eq!(
            c.read_line(4096).unwrap(),
            Line::Complete(b"WRITE,a,3".to_vec())
        );
        let mut body = Vec::new();
        c.read_body(3, |b| {
            body.extend_from_slice(b);
            Ok(())
        })
        .unwrap()
        .unwrap();
        assert_eq!(body, b"abc");
        assert_eq!(c.read_line(4096).unwrap(), Line::Complete(b"BYE".to_vec()));
        assert_eq!(c.read_line(4096).unwrap(), Line::Eof);
    }

    #[test]
    fn long_lines_and_truncated_input_are_reported() {
        let mut c = pair(vec![vec![b'x'; 5000]]);
        assert_eq!(c.read_line(4096).unwrap(), Line::TooLong);
        let mut c = pair(vec![b"LIS".to_vec()]);
        assert_eq!(c.read_line(4096).unwrap(), Line::Truncated);
    }

    #[test]
    fn files_are_sent_from_their_offset_exactly() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = thread::spawn(move || {
            let mut received = Vec::new();
            TcpStream::connect(addr)
                .unwrap()
                .read_to_end(&mut received)
                .unwrap();
            received
        });
        let mut conn = Conn::new(listener.accept().unwrap().0).unwrap();
        let mut file = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        file.write_all(&data).unwrap();
        use std::io::Seek;
        file.seek(io::SeekFrom::Start(1000)).unwrap();
        let now = std::time::Instant::now();
        let mut pace = Pace::new(None, Duration::from_secs(10), now);
        let mut send = |n| conn.send_file_paced(&file, n, &mut pace, |_| {}).unwrap();
        assert_eq!(send(200_000), 200_000);
        // the offset moved on; asking for more than is left sends the rest
        assert_eq!(send(500_000), 99_000);
        assert_eq!(send(10), 0);
        drop(conn);
        assert_eq!(reader.join().unwrap(), &data[1000..]);
    }

    #[test]
    fn a_line_must_be_whole_by_its_deadline() {
        let mut c = pair(vec![b"LI".to_vec(), b"ST\n".to_vec()]);
        let late = c.read_line_by(4096, std::time::Instant::now());
        assert_eq!(late.unwrap_err().kind(), io::ErrorKind::TimedOut);
        let soon = std::time::Instant::now() + Duration::from_secs(10);
        assert_eq!(
            c.read_line_by(4096, soon).unwrap(),
            Line::Complete(b"LIST".to_vec())
        );
    }

    /// A connection whose peer sends 10 bytes every 5 ms, 100 times, and
    /// stops early, with no fuss, if the connection is closed.
    fn trickling_pair() -> Conn {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            for _ in 0..100 {
                if s.write_all(&[1u8; 10]).is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(5));
            }
        });
        Conn::new(listener.accept().unwrap().0).unwrap()
    }

    #[test]
    fn a_paced_body_below_the_floor_fails_with_the_reason() {
        use crate::rate::{RateFloor, Slow};
        // about 2 KB/s against a floor of 1 MB/s
        let mut c = trickling_pair();
        let now = Instant::now();
        let floor = RateFloor::new(1_000_000, Duration::from_millis(50), now);
        let mut pace = Pace::new(floor, Duration::from_secs(10), now);
        match c.read_body_paced(1000, &mut pace, |_| Ok(())) {
            Err(BodyError::Io(e)) => {
                assert!(is_timeout(&e));
                assert!(matches!(Slow::of(&e), Some(Slow::TooSlow(_))), "{e}");
            }
            other => panic!("unexpected {other:?}"),
        }
        // the same body with no floor arrives whole
        let mut c = trickling_pair();
        let mut pace = Pace::new(None, Duration::from_secs(10), Instant::now());
        let mut got = 0;
        c.read_body_paced(1000, &mut pace, |chunk| {
            got += chunk.len();
            Ok(())
        })
        .unwrap()
        .unwrap();
        assert_eq!(got, 1000);
    }

    #[test]
    fn a_paced_write_to_a_peer_that_reads_nothing_stalls() {
        use crate::rate::Slow;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let mut conn = Conn::new(listener.accept().unwrap().0).unwrap();
        let stall = Duration::from_millis(200);
        let mut pace = Pace::new(None, stall, Instant::now());
        // far more than the socket buffers hold
        let bytes = vec![0u8; 64 * 1024 * 1024];
        let e = conn.write_all_paced(&bytes, &mut pace).unwrap_err();
        assert_eq!(Slow::of(&e), Some(&Slow::Stalled(stall)), "{e}");
        drop(peer);
    }

    /// A conn and the peer's end of it.
    fn conn_and_peer() -> (Conn, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        (Conn::new(listener.accept().unwrap().0).unwrap(), peer)
    }

    /// Waits (at most 2 s) until `c` finds `wanted`, and returns what it found.
    fn pending_within(c: &Conn, wanted: Pending) -> Pending {
        for _ in 0..400 {
            if c.pending() == wanted {
                break;
            }
            thread::sleep(Duration::from_millis(5));
        }
        c.pending()
    }

    #[test]
    fn pending_tells_unread_input_from_a_quiet_or_closed_peer() {
        let (mut c, mut peer) = conn_and_peer();
        assert_eq!(c.pending(), Pending::Nothing);
        peer.write_all(b"OK\nNOTICE\n").unwrap();
        assert_eq!(pending_within(&c, Pending::Input), Pending::Input);
        assert_eq!(c.read_line(64).unwrap(), Line::Complete(b"OK".to_vec()));
        // the second line is unread, whether buffered or still in the socket
        assert_eq!(c.pending(), Pending::Input);
        assert_eq!(c.read_line(64).unwrap(), Line::Complete(b"NOTICE".to_vec()));
        assert_eq!(c.pending(), Pending::Nothing);
        drop(peer);
        assert_eq!(pending_within(&c, Pending::Closed), Pending::Closed);
    }

    #[test]
    fn a_closer_ends_a_blocked_read_from_another_thread() {
        let (mut c, peer) = conn_and_peer();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let closer = c.closer();
        let reader = thread::spawn(move || c.read_line(64));
        thread::sleep(Duration::from_millis(20));
        closer.shutdown(Shutdown::Both).unwrap();
        assert_eq!(reader.join().unwrap().unwrap(), Line::Eof);
        assert_eq!(closer.peer_addr().unwrap(), peer.local_addr().unwrap());
    }

    /// A TLS server `Conn` and the TLS client `Conn` connected to it.
    fn tls_pair() -> (Conn, Conn) {
        let dir = tempfile::tempdir().unwrap();
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cert, made.cert.pem()).unwrap();
        std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();
        let identity = crate::tls::server_identity(Some((&cert, &key)), dir.path()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let client = thread::spawn(move || {
            let (config, _) = crate::tls::client_config(Some(identity.fingerprint));
            let name = crate::tls::server_name("localhost").unwrap();
            Conn::new(TcpStream::connect(addr).unwrap())
                .unwrap()
                .connect_tls(config, name, deadline)
                .unwrap()
        });
        let server = Conn::new(listener.accept().unwrap().0)
            .unwrap()
            .accept_tls(identity.config, deadline)
            .unwrap();
        (server, client.join().unwrap())
    }

    #[test]
    fn a_paced_tls_write_to_a_peer_that_reads_nothing_stalls_without_reading() {
        use crate::rate::Slow;
        let (mut server, client) = tls_pair();
        // a read would wait this long: the stall must be found well before
        server
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let stall = Duration::from_millis(200);
        let (done, result) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let mut pace = Pace::new(None, stall, Instant::now());
            let bytes = vec![0u8; 64 * 1024 * 1024];
            let _ = done.send(server.write_all_paced(&bytes, &mut pace));
        });
        let e = result
            .recv_timeout(Duration::from_secs(20))
            .expect("the stalled write ends by its pace, not the read timeout")
            .unwrap_err();
        assert_eq!(Slow::of(&e), Some(&Slow::Stalled(stall)), "{e}");
        drop(client);
    }

    #[test]
    fn tls_pending_absorbs_session_tickets_and_sees_lines_and_closes() {
        let (mut server, mut client) = tls_pair();
        // the server's TLS 1.3 session tickets are on their way or arrived
        thread::sleep(Duration::from_millis(50));
        assert_eq!(client.pending(), Pending::Nothing);
        server.write_all(b"OK\n").unwrap();
        assert_eq!(pending_within(&client, Pending::Input), Pending::Input);
        assert_eq!(
            client.read_line(64).unwrap(),
            Line::Complete(b"OK".to_vec())
        );
        assert_eq!(client.pending(), Pending::Nothing);
        server.linger_close();
        assert_eq!(pending_within(&client, Pending::Closed), Pending::Closed);
    }

    #[test]
    fn tls_bodies_larger_than_the_stage_arrive_whole_with_the_line_after() {
        let (mut server, mut client) = tls_pair();
        let body: Vec<u8> = (0..3 * STAGE_SIZE + 1234)
            .map(|i| (i % 251) as u8)
            .collect();
        let sent = body.clone();
        let writer = thread::spawn(move || {
            // pieces of odd sizes, so records and reads cut anywhere
            for piece in sent.chunks(70_001) {
                server.write_all(piece).unwrap();
            }
            server.write_all(b"OK done\n").unwrap();
            server
        });
        let mut got = Vec::new();
        client
            .read_body(body.len() as u64, |chunk| {
                got.extend_from_slice(chunk);
                Ok(())
            })
            .unwrap()
            .unwrap();
        assert!(got == body, "the body arrived changed");
        assert_eq!(
            client.read_line(64).unwrap(),
            Line::Complete(b"OK done".to_vec())
        );
        writer.join().unwrap().linger_close();
        assert_eq!(client.read_line(64).unwrap(), Line::Eof);
    }

    #[test]
    fn a_tls_read_takes_every_record_that_has_arrived_not_one() {
        let (mut server, mut client) = tls_pair();
        server.write_all(&[7u8; 100_000]).unwrap();
        assert_eq!(pending_within(&client, Pending::Input), Pending::Input);
        // written whole, so on loopback all of it is in the client's socket
        thread::sleep(Duration::from_millis(50));
        let got = client.fill().unwrap();
        assert!(got > 32 * 1024, "one read took {got} bytes");
        assert_eq!(client.buffered(), &[7u8; 100_000][..got]);
    }

    #[test]
    fn bytes_after_a_close_notify_end_the_input_instead_of_hanging_a_read() {
        let (mut server, mut client) = tls_pair();
        server.write_all(&[5u8; 16 * 1024]).unwrap();
        server.stream.close_notify();
        // more than rustls' record buffer takes, after the close
        server.stream.socket().write_all(&[0u8; 40 * 1024]).unwrap();
        thread::sleep(Duration::from_millis(50));
        let (done, result) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let first = client.fill().map(|n| (n, client.buffered().to_vec()));
            let second = client.fill();
            let _ = done.send((first, second));
        });
        let (first, second) = result
            .recv_timeout(Duration::from_secs(10))
            .expect("the reads return");
        let (n, bytes) = first.unwrap();
        assert_eq!((n, bytes), (16 * 1024, vec![5u8; 16 * 1024]));
        assert_eq!(second.unwrap(), 0, "the input ended at the close_notify");
        drop(server);
    }

    #[test]
    fn short_bodies_report_what_arrived() {
        let mut c = pair(vec![b"abc".to_vec()]);
        match c.read_body(10, |_| Ok(())) {
            Err(BodyError::Eof { received }) => assert_eq!(received, 3),
            other => panic!("unexpected {other:?}"),
        }
    }
}
