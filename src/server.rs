//! `ioe serve`: IOE/1 requests → the file system under a [`Root`]. One
//! thread per connection; a bounded number of connections (when all are
//! taken, a newcomer takes the slot of the connection idle longest, and is
//! told the server is busy only when every one is in a request); an idle
//! timeout; a minimum rate for transfers; the original design's
//! unterminated requests in legacy mode; a graceful stop that lets
//! transfers finish within a grace period.

mod auth;
mod extensions;
mod log;

pub use log::LogFormat;
use log::Outcome;

use crate::auth::TokenFile;
use crate::conn::{BodyError, Closer, Conn, Line, is_timeout};
use crate::digest::{Algorithm, DigestCache, FileStamp};
use crate::protocol::{
    self, AfterError, Extension, MAX_LINE, Request, legacy_body_may_be_size, split_legacy_write,
};
use crate::rate::{Pace, RateFloor, Slow};
use crate::root::Root;
use auth::allowed_before_auth;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// In legacy mode, how long a client must send nothing before buffered bytes
/// with no LF count as a whole request; also the pause after a legacy `READ`
/// reply's size line.
pub const LEGACY_GAP: Duration = Duration::from_millis(40);
/// In legacy mode, how long the client must stay silent before an upload
/// header is split so that its body is all digits: those digits may instead
/// be the rest of the size of a header sent on its own, its body to follow.
pub const LEGACY_SETTLE: Duration = Duration::from_millis(500);
/// At the end of the grace period, how long uploads cut off get to tell
/// their clients before every socket is shut.
const CUT_OFF_NOTICE: Duration = Duration::from_millis(200);
/// Most busy refusals lingering at once (see `refuse_busy`).
const MAX_REFUSING: usize = 16;
/// How long a TLS client has to send its first byte and complete the
/// handshake, on the connection's own thread.
pub const TLS_HANDSHAKE_TIME: Duration = Duration::from_secs(5);
/// The default [`Config::auth_time`]: how long after connecting a client
/// of a server with `--auth` has to authenticate.
pub const AUTH_TIME: Duration = Duration::from_secs(5);
/// What a plain-text client of a TLS server is told, in plain text.
pub const TLS_REQUIRED: &str = "ERROR: this server requires TLS; closing\n";
/// A temporary file unchanged for this long, or for twice the idle timeout
/// if that is longer, belongs to no transfer any more (see [`sweeper`]).
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(3600);
/// How often the root is swept for such files, after the sweep at start.
const SWEEP_EVERY: Duration = Duration::from_secs(600);
/// How long a connection whose slot went to a new client may take to send
/// its notice: an evicted connection no longer counts against
/// `--max-connections`, so a client that stopped reading must not keep it
/// alive for a whole idle timeout.
const EVICTION_NOTICE: Duration = Duration::from_secs(1);
/// The default [`Config::min_rate`], in bytes per second: about a 9600 baud
/// line, so no working link is cut, while a slot held by a trickle costs
/// its holder at least this much bandwidth.
pub const DEFAULT_MIN_RATE: u64 = 1024;
/// The default [`Config::rate_window`].
pub const DEFAULT_RATE_WINDOW: Duration = Duration::from_secs(60);

/// How the server behaves.
#[derive(Debug, Clone)]
pub struct Config {
    /// The folder served.
    pub root: PathBuf,
    /// Refuse every `WRITE`.
    pub read_only: bool,
    /// Refuse uploads larger than this many bytes.
    pub max_size: Option<u64>,
    /// Connections served at once. When all are taken, a new client takes
    /// the slot of the connection idle longest; only when all are in a
    /// request is it told `ERROR: server busy`.
    pub max_connections: usize,
    /// A connection that sends nothing for this long is closed; a request
    /// line must also be complete within this long of the previous reply.
    pub idle_timeout: Duration,
    /// A transfer (upload body, download body, listing reply) must average
    /// at least this many bytes per second over each [`rate_window`]; 0
    /// means no floor.
    ///
    /// [`rate_window`]: Config::rate_window
    pub min_rate: u64,
    /// The window over which [`min_rate`](Config::min_rate) is averaged;
    /// zero means no floor.
    pub rate_window: Duration,
    /// Accept the original design's unterminated requests.
    pub legacy: bool,
    /// No log line per request.
    pub quiet: bool,
    /// How log lines look (`--log-format`).
    pub log_format: LogFormat,
    /// On shutdown, how long transfers in flight may go on.
    pub grace: Duration,
    /// Speak TLS with this configuration (`--tls`); plain TCP when `None`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Require a token of this file (`--auth`) before any request but
    /// `FEATURES`, `AUTH` and `BYE`.
    pub auth: Option<Arc<TokenFile>>,
    /// With [`auth`](Config::auth): a connection that has not
    /// authenticated this long after it was accepted is closed.
    pub auth_time: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            root: PathBuf::from("."),
            read_only: false,
            max_size: None,
            max_connections: 64,
            idle_timeout: Duration::from_secs(300),
            min_rate: DEFAULT_MIN_RATE,
            rate_window: DEFAULT_RATE_WINDOW,
            legacy: false,
            quiet: false,
            log_format: LogFormat::Text,
            grace: Duration::from_secs(5),
            tls: None,
            auth: None,
            auth_time: AUTH_TIME,
        }
    }
}

/// A bound server, ready to [`run`](Server::run) or [`spawn`](Server::spawn).
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

/// What the accept loop, the connection threads and the shutdown code
/// share.
struct Shared {
    config: Config,
    /// The whole served folder: where a connection starts, what a token's
    /// sub-folder is opened under, what the sweeper cleans. Requests go
    /// through their connection's own root (`Connection::root`), which a
    /// sub-folder token narrows, never through this one.
    served: Arc<Root>,
    stopping: AtomicBool,
    /// Set by a second shutdown request: the grace period ends at once.
    hurry: AtomicBool,
    /// Set when the grace period is over and requests in flight are cut off.
    cut_off: AtomicBool,
    live: Mutex<HashMap<u64, Live>>,
    next_id: AtomicU64,
    /// Busy refusals still lingering (see [`refuse_busy`]).
    refusing: AtomicUsize,
    /// Digests of files unchanged since they were hashed (`HASH`).
    digests: DigestCache,
}

/// A connection being served, as seen by the accept loop (which may take
/// its slot) and the shutdown code. Changed only under the `live` lock, so
/// that a connection is never both in a request and evicted.
struct Live {
    /// Shuts it down (eviction, the end of the grace period).
    closer: Closer,
    /// In a request (reading its body, sending its reply).
    busy: bool,
    /// When its last request ended (or it connected).
    idle_since: Instant,
    /// Its slot went to a new client after it had been idle this long.
    evicted: Option<Duration>,
    /// It presented a good token, or the server takes none. One that has
    /// not is evicted first, even in a request (see [`evict_idlest`]).
    authenticated: bool,
}

impl Shared {
    fn live(&self) -> MutexGuard<'_, HashMap<u64, Live>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks connection `id` as in a request, unless its slot was given
    /// away: then returns how long it had been idle.
    fn begin_request(&self, id: u64) -> Result<(), Duration> {
        match self.live().get_mut(&id) {
            Some(Live {
                evicted: Some(idle),
                ..
            }) => Err(*idle),
            Some(live) => {
                live.busy = true;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Marks connection `id` as idle from now on.
    fn end_request(&self, id: u64) {
        if let Some(live) = self.live().get_mut(&id) {
            live.busy = false;
            live.idle_since = Instant::now();
        }
    }

    /// Marks connection `id` as authenticated.
    fn authenticated(&self, id: u64) {
        if let Some(live) = self.live().get_mut(&id) {
            live.authenticated = true;
        }
    }

    /// How long connection `id` had been idle when its slot was given away.
    fn evicted(&self, id: u64) -> Option<Duration> {
        self.live().get(&id).and_then(|live| live.evicted)
    }

    /// One line on stderr, unless quiet. A log that cannot be written (its
    /// reader went away) is skipped: serving matters more than logging.
    fn log(&self, args: std::fmt::Arguments<'_>) {
        self.log_line(|format| log::message(format, None, &args.to_string()));
    }

    /// One line about the client at `peer` (its `peer` field in the JSON
    /// log), before the connection has a thread of its own.
    fn log_peer(&self, peer: &str, args: std::fmt::Arguments<'_>) {
        let who = log::Who {
            peer,
            identity: None,
        };
        self.log_line(|format| log::message(format, Some(who), &args.to_string()));
    }

    /// A line already formatted (see [`log`]), unless quiet.
    fn log_line(&self, line: impl FnOnce(LogFormat) -> String) {
        if !self.config.quiet {
            let _ = writeln!(io::stderr().lock(), "{}", line(self.config.log_format));
        }
    }
}

/// Stops a server from another thread (a signal handler, a test).
#[derive(Clone)]
pub struct ShutdownHandle {
    shared: Arc<Shared>,
    wake: SocketAddr,
}

impl ShutdownHandle {
    /// Stops accepting; connections finish within the grace period. A
    /// second call (a second Ctrl-C) ends the grace period at once.
    pub fn shutdown(&self) {
        if self.shared.stopping.swap(true, Ordering::SeqCst) {
            self.shared.hurry.store(true, Ordering::SeqCst);
        } else {
            // wake the accept loop
            let _ = TcpStream::connect_timeout(&self.wake, Duration::from_secs(1));
        }
    }
}

impl Server {
    /// Binds `addr` and opens the root.
    pub fn bind(addr: impl ToSocketAddrs, config: Config) -> io::Result<Server> {
        Server::new(TcpListener::bind(addr)?, config)
    }

    /// Serves on an already bound listener (tests bind `127.0.0.1:0` first).
    /// Legacy mode with a token file is refused: the original design's
    /// clients cannot authenticate.
    pub fn new(listener: TcpListener, config: Config) -> io::Result<Server> {
        if config.legacy && config.auth.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "legacy mode and a token file cannot go together: the original design's \
                 clients cannot authenticate",
            ));
        }
        let root = Arc::new(Root::new(&config.root)?);
        Ok(Server {
            listener,
            shared: Arc::new(Shared {
                config,
                served: root,
                stopping: AtomicBool::new(false),
                hurry: AtomicBool::new(false),
                cut_off: AtomicBool::new(false),
                live: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(0),
                refusing: AtomicUsize::new(0),
                digests: DigestCache::new(extensions::DIGEST_CACHE_SIZE),
            }),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle that stops this server.
    pub fn shutdown_handle(&self) -> io::Result<ShutdownHandle> {
        let mut wake = self.local_addr()?;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        Ok(ShutdownHandle {
            shared: Arc::clone(&self.shared),
            wake,
        })
    }

    /// Serves until shut down, then lets connections finish (see
    /// [`Config::grace`]).
    pub fn run(self) -> io::Result<()> {
        let shared = &self.shared;
        let sweeper = sweeper(Arc::clone(shared));
        for incoming in self.listener.incoming() {
            if shared.stopping.load(Ordering::SeqCst) {
                break;
            }
            match incoming {
                Ok(stream) => accept(shared, stream),
                Err(e) => {
                    shared.log(format_args!("accept failed: {e}"));
                    // out of file descriptors and the like: do not spin
                    thread::sleep(Duration::from_millis(50));
                }
            }
        }
        // refuse new connections now, even if a child process this one is
        // spawning still holds a copy of the descriptor until its exec
        let _ = rustix::net::shutdown(&self.listener, rustix::net::Shutdown::Both);
        drop(self.listener);
        drain(shared);
        if let Ok(sweeper) = sweeper {
            let _ = sweeper.join();
        }
        Ok(())
    }

    /// Runs the server on its own thread; dropping the result stops it.
    pub fn spawn(self) -> io::Result<RunningServer> {
        let addr = self.local_addr()?;
        let handle = self.shutdown_handle()?;
        let thread = thread::Builder::new()
            .name("ioe-serve".into())
            .spawn(move || self.run())?;
        Ok(RunningServer {
            addr,
            handle,
            thread: Some(thread),
        })
    }
}

/// A server running on a background thread.
pub struct RunningServer {
    addr: SocketAddr,
    handle: ShutdownHandle,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl RunningServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops it and waits for it to finish.
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.handle.shutdown();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Serves a new connection on a thread of its own. When `--max-connections`
/// are open already, it takes the slot of the connection idle longest, or
/// is refused as busy if every one is in a request.
fn accept(shared: &Arc<Shared>, stream: TcpStream) {
    let peer = stream
        .peer_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    let conn = match Conn::new(stream) {
        Ok(conn) => conn,
        Err(e) => {
            shared.log_peer(&peer, format_args!("dropped: {e}"));
            return;
        }
    };
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    {
        let mut live = shared.live();
        let open = live.values().filter(|l| l.evicted.is_none()).count();
        if open >= shared.config.max_connections {
            let Some(idle) = evict_idlest(&mut live) else {
                drop(live);
                shared.log_peer(&peer, format_args!("refused: {}", connections_open(open)));
                refuse_busy(shared, conn, open);
                return;
            };
            shared.log_peer(
                &idle.peer,
                format_args!("slot given to {peer}: idle for {} s", idle.secs),
            );
        }
        live.insert(
            id,
            Live {
                closer: conn.closer(),
                busy: false,
                idle_since: Instant::now(),
                evicted: None,
                authenticated: shared.config.auth.is_none(),
            },
        );
    }
    let thread_shared = Arc::clone(shared);
    let spawned = thread::Builder::new()
        .name("ioe-conn".into())
        .spawn(move || {
            let _registered = Registered {
                shared: &thread_shared,
                id,
            };
            let accepted = Instant::now();
            let conn = match &thread_shared.config.tls {
                Some(tls) => match start_tls(&thread_shared, conn, tls, &peer) {
                    Some(conn) => conn,
                    None => return,
                },
                None => conn,
            };
            let config = &thread_shared.config;
            let mut connection = Connection {
                shared: &thread_shared,
                conn,
                peer,
                id,
                root: Arc::clone(&thread_shared.served),
                read_only: config.read_only,
                label: None,
                auth_by: config
                    .auth
                    .as_ref()
                    .map(|_| accepted.checked_add(config.auth_time).unwrap_or(accepted)),
                request_started: Instant::now(),
            };
            if let Err(e) = connection.serve() {
                let why = connection.failure(&e);
                connection.log(&format!("connection lost: {why}"));
            }
        });
    if let Err(e) = spawned {
        shared.log(format_args!("cannot start a thread for a connection: {e}"));
        shared.live().remove(&id);
    }
}

/// Runs the TLS handshake of a new connection within
/// [`TLS_HANDSHAKE_TIME`]. A client whose first byte is not a TLS
/// handshake record (0x16) is told [`TLS_REQUIRED`] in plain text and
/// closed. `None` when the connection is over.
fn start_tls(
    shared: &Shared,
    mut conn: Conn,
    tls: &Arc<rustls::ServerConfig>,
    peer: &str,
) -> Option<Conn> {
    let deadline = Instant::now() + TLS_HANDSHAKE_TIME;
    match conn.peek_first_byte(deadline) {
        Ok(Some(0x16)) => {}
        Ok(Some(_)) => {
            shared.log_peer(
                peer,
                format_args!("closed: plain text sent to a TLS server"),
            );
            let _ = conn.set_write_timeout(Some(TLS_HANDSHAKE_TIME));
            if conn.write_all(TLS_REQUIRED.as_bytes()).is_ok() {
                conn.linger_close();
            }
            return None;
        }
        Ok(None) => return None,
        Err(e) => {
            let why = if is_timeout(&e) {
                format!("no TLS handshake within {} s", TLS_HANDSHAKE_TIME.as_secs())
            } else {
                e.to_string()
            };
            shared.log_peer(peer, format_args!("closed: {why}"));
            return None;
        }
    }
    match conn.accept_tls(Arc::clone(tls), deadline) {
        Ok(conn) => Some(conn),
        Err(e) => {
            shared.log_peer(peer, format_args!("closed: TLS handshake failed: {e}"));
            None
        }
    }
}

/// A connection whose slot was given to a new client, for the log.
struct Evicted {
    peer: String,
    secs: u64,
}

/// Marks the connection idle longest (not in a request, not evicted
/// already) as evicted and shuts its reading side, so its thread wakes up,
/// tells its client and ends; `None` when every connection is in a request.
/// Connections that have not authenticated go first, in a request or not
/// (before `AUTH` a request touches no file): clients without a token
/// cannot push out those with one while any of their own is left.
fn evict_idlest(live: &mut HashMap<u64, Live>) -> Option<Evicted> {
    let victim = live
        .values_mut()
        .filter(|l| (!l.busy || !l.authenticated) && l.evicted.is_none())
        .min_by_key(|l| (l.authenticated, l.idle_since))?;
    let idle = victim.idle_since.elapsed();
    victim.evicted = Some(idle);
    let _ = victim.closer.shutdown(Shutdown::Read);
    let peer = victim
        .closer
        .peer_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    Some(Evicted {
        peer,
        secs: idle.as_secs(),
    })
}

/// "1 connection open", "2 connections open".
fn connections_open(open: usize) -> String {
    let plural = if open == 1 { "" } else { "s" };
    format!("{open} connection{plural} open")
}

/// Tells a client beyond `--max-connections` that the server is busy. A client
/// usually sends its first request at once; closing with that request unread
/// would reset the connection and lose the error line, so the close lingers
/// on a short-lived thread of its own (at most [`MAX_REFUSING`] at a time;
/// beyond that, the error is sent and the socket closed at once).
fn refuse_busy(shared: &Arc<Shared>, mut conn: Conn, open: usize) {
    let message = format!(
        "ERROR: server busy ({}); closing, try again later\n",
        connections_open(open)
    );
    if conn.write_all(message.as_bytes()).is_err() {
        return;
    }
    if shared.refusing.fetch_add(1, Ordering::SeqCst) >= MAX_REFUSING {
        shared.refusing.fetch_sub(1, Ordering::SeqCst);
        return;
    }
    let thread_shared = Arc::clone(shared);
    let spawned = thread::Builder::new()
        .name("ioe-refuse".into())
        .spawn(move || {
            conn.linger_close();
            thread_shared.refusing.fetch_sub(1, Ordering::SeqCst);
        });
    if spawned.is_err() {
        shared.refusing.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Removes a connection from the live set when its thread ends, panics
/// included.
struct Registered<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.shared.live().remove(&self.id);
    }
}

/// Removes the temporary files that killed processes left under the root
/// (see [`Root::sweep`]): at start, then every [`SWEEP_EVERY`] until the
/// server stops. A transfer that makes no progress for the idle timeout is
/// given up, so a file older than twice that, and than [`STALE_TEMP_AGE`]
/// (for other servers and clients using the folder), has no owner left.
fn sweeper(shared: Arc<Shared>) -> io::Result<JoinHandle<()>> {
    let older_than = shared
        .config
        .idle_timeout
        .saturating_mul(2)
        .max(STALE_TEMP_AGE);
    thread::Builder::new()
        .name("ioe-sweep".into())
        .spawn(move || {
            while !shared.stopping.load(Ordering::SeqCst) {
                let swept = shared.served.sweep(older_than, &shared.stopping);
                if swept.files > 0 {
                    let plural = if swept.files == 1 { "" } else { "s" };
                    shared.log(format_args!(
                        "removed {} temporary file{plural} ({} bytes) unchanged for over {} s, \
                         left by interrupted transfers",
                        swept.files,
                        swept.bytes,
                        older_than.as_secs()
                    ));
                }
                let next = Instant::now() + SWEEP_EVERY;
                while Instant::now() < next && !shared.stopping.load(Ordering::SeqCst) {
                    thread::sleep(Duration::from_millis(100));
                }
            }
        })
}

/// After the accept loop stops: idle connections are closed now, busy ones
/// get the grace period, then every socket is shut down so each thread
/// unwinds (removing its temporary file): the reading sides first, so that
/// a thread waiting for an upload's body can still tell its client why,
/// then, [`CUT_OFF_NOTICE`] later, both sides.
fn drain(shared: &Shared) {
    for live in shared.live().values() {
        if !live.busy {
            let _ = live.closer.shutdown(Shutdown::Read);
        }
    }
    wait_until_idle(shared, shared.config.grace, &shared.hurry);
    shared.cut_off.store(true, Ordering::SeqCst);
    for live in shared.live().values() {
        let _ = live.closer.shutdown(Shutdown::Read);
    }
    wait_until_idle(shared, CUT_OFF_NOTICE, &AtomicBool::new(false));
    for live in shared.live().values() {
        let _ = live.closer.shutdown(Shutdown::Both);
    }
    wait_until_idle(shared, Duration::from_secs(2), &AtomicBool::new(false));
}

/// Waits until no connection is left, at most `limit` or until `cut_short`.
fn wait_until_idle(shared: &Shared, limit: Duration, cut_short: &AtomicBool) {
    let start = Instant::now();
    while !shared.live().is_empty() && start.elapsed() < limit && !cut_short.load(Ordering::SeqCst)
    {
        thread::sleep(Duration::from_millis(10));
    }
}

/// What to do after a request.
enum Flow {
    Continue,
    Close,
}

/// A request as it came off the wire, or why none came.
enum Incoming {
    /// A request line; `terminated` is false for a legacy request that ended
    /// with an idle gap instead of a LF.
    Line { line: Vec<u8>, terminated: bool },
    /// No request will come: the connection is to be closed.
    End(End),
}

/// Why no request came.
enum End {
    /// The client closed the connection between requests.
    Eof,
    /// The client closed the connection in the middle of a request.
    Truncated,
    /// A request line longer than [`MAX_LINE`].
    TooLong,
    /// Nothing, or no whole request, within the idle timeout.
    IdleTimeout,
}

/// One client connection on the server.
struct Connection<'a> {
    shared: &'a Shared,
    conn: Conn,
    peer: String,
    /// Its key in the live set.
    id: u64,
    /// The folder this session sees: the server's root, or the sub-folder
    /// its token grants.
    root: Arc<Root>,
    /// Refuse every change (`--read-only`, or a read-only token).
    read_only: bool,
    /// The label of the token it authenticated with, shown in its log lines.
    label: Option<String>,
    /// While a token is required and none was accepted yet: when the
    /// connection is closed if still without one.
    auth_by: Option<Instant>,
    /// When the request being served arrived (for the log's duration).
    request_started: Instant,
}

impl Connection<'_> {
    /// Serves requests until the client leaves, the connection fails, or
    /// the server stops.
    fn serve(&mut self) -> io::Result<()> {
        let config = &self.shared.config;
        self.conn.set_nodelay(true)?;
        self.conn.set_read_timeout(Some(config.idle_timeout))?;
        self.conn.set_write_timeout(Some(config.idle_timeout))?;
        loop {
            if self.stopping() {
                self.say_shutting_down();
                return Ok(());
            }
            let incoming = if config.legacy {
                self.read_legacy_request()?
            } else {
                self.read_request()?
            };
            let flow = match incoming {
                Incoming::Line { line, terminated } => {
                    if let Err(idle) = self.shared.begin_request(self.id) {
                        self.say_evicted(idle);
                        return Ok(());
                    }
                    self.request_started = Instant::now();
                    let flow = self.handle(&line, terminated);
                    self.shared.end_request(self.id);
                    flow?
                }
                Incoming::End(end) => {
                    match self.shared.evicted(self.id) {
                        Some(idle) => self.say_evicted(idle),
                        None => self.close_on(end),
                    }
                    Flow::Close
                }
            };
            if let Flow::Close = flow {
                return Ok(());
            }
        }
    }

    /// Reads one LF-terminated request, which must be whole within the
    /// idle timeout.
    fn read_request(&mut self) -> io::Result<Incoming> {
        let idle_timeout = self.shared.config.idle_timeout;
        let deadline = deadline_after(idle_timeout);
        let deadline = self.auth_by.map_or(deadline, |by| by.min(deadline));
        let line = self.conn.read_line_by(MAX_LINE, deadline);
        self.conn.set_read_timeout(Some(idle_timeout))?;
        Ok(match line {
            Ok(Line::Complete(line)) => Incoming::Line {
                line,
                terminated: true,
            },
            Ok(Line::Eof) => Incoming::End(End::Eof),
            Ok(Line::Truncated) => Incoming::End(End::Truncated),
            Ok(Line::TooLong) => Incoming::End(End::TooLong),
            Err(e) if is_timeout(&e) => Incoming::End(End::IdleTimeout),
            Err(e) => return Err(e),
        })
    }

    /// Ends the connection when no request came, telling the client why
    /// where it may still be listening.
    fn close_on(&mut self, end: End) {
        let idle_secs = self.shared.config.idle_timeout.as_secs();
        match end {
            // the drain shut our reading side: say why we close
            End::Eof | End::Truncated if self.stopping() => self.say_shutting_down(),
            End::Eof => {}
            End::Truncated => self.log("sent an incomplete request and closed"),
            End::TooLong => {
                self.log("request line too long");
                self.close_with_error(&format!(
                    "request line longer than {MAX_LINE} bytes; closing"
                ));
            }
            End::IdleTimeout if self.auth_by.is_some_and(|by| Instant::now() >= by) => {
                self.say_no_auth();
            }
            End::IdleTimeout if self.conn.buffered().is_empty() => {
                self.log("idle timeout");
                let _ = self
                    .conn
                    .write_all(format!("ERROR: idle for {idle_secs} s; closing\n").as_bytes());
            }
            End::IdleTimeout => {
                self.log("request too slow");
                self.close_with_error(&format!(
                    "request not complete after {idle_secs} s; closing"
                ));
            }
        }
    }

    /// Handles one request line.
    fn handle(&mut self, line: &[u8], terminated: bool) -> io::Result<Flow> {
        let request = match protocol::parse_request(line) {
            Ok(request) => request,
            Err(bad) => {
                // a token in the line is kept out by the log itself
                let shown = protocol::printable(line);
                let refused = format!("refused: {}", bad.message);
                return Ok(match bad.then {
                    AfterError::Continue => {
                        self.log_error(&shown, &refused);
                        self.reply_error(&bad.message)?;
                        Flow::Continue
                    }
                    AfterError::SkipBody(size) => self.refuse_upload(&shown, size, &bad.message)?,
                    AfterError::Close => {
                        self.log_error(&shown, &refused);
                        self.close_with_error(&bad.message);
                        Flow::Close
                    }
                });
            }
        };
        if self.auth_by.is_some() && !allowed_before_auth(&request) {
            return self.refuse_unauthenticated(&request);
        }
        match request {
            Request::List(dir) => self.list(dir.as_deref()),
            Request::Read(name) => self.read(&name, terminated),
            Request::Write { name, size } => self.write(&name, size),
            Request::Bye => {
                self.logged(
                    "BYE",
                    Outcome::Ok {
                        text: "OK bye",
                        bytes: 0,
                    },
                );
                self.conn.write_all(b"OK bye\n")?;
                Ok(Flow::Close)
            }
            Request::Extension(Extension::Auth(token)) => self.authenticate(&token),
            Request::Extension(extension) => self.extension(extension),
        }
    }

    fn list(&mut self, dir: Option<&str>) -> io::Result<Flow> {
        let shown = dir.unwrap_or(".");
        match self.root.list(dir) {
            Ok(entries) => {
                let mut reply = format!("OK {}\n", entries.len());
                for entry in &entries {
                    reply.push_str(&entry.to_line());
                }
                let mut pace = self.pace();
                if let Err(e) = self.conn.write_all_paced(reply.as_bytes(), &mut pace) {
                    let why = self.failure(&e);
                    self.log_error(
                        &format!("LIST {shown}"),
                        &format!("not finished: {why}; closing"),
                    );
                    return Ok(Flow::Close);
                }
                self.restore_write_timeout()?;
                let text = format!("{} entries", entries.len());
                self.logged(
                    &format!("LIST {shown}"),
                    Outcome::Ok {
                        text: &text,
                        bytes: 0,
                    },
                );
            }
            Err(e) => {
                self.log_error(&format!("LIST {shown}"), &e.to_string());
                self.reply_error(&e.to_string())?;
            }
        }
        Ok(Flow::Continue)
    }

    fn read(&mut self, name: &str, terminated: bool) -> io::Result<Flow> {
        let (file, size) = match self.root.open_file(name) {
            Ok(opened) => opened,
            Err(e) => {
                self.log_error(&format!("READ {name}"), &e.to_string());
                self.reply_error(&e.to_string())?;
                return Ok(Flow::Continue);
            }
        };
        self.conn.write_all(format!("{size}\n").as_bytes())?;
        if !terminated {
            // the original client reads the size with one recv()
            thread::sleep(LEGACY_GAP);
        }
        let request = format!("READ {name}");
        match self.hash_waiting_for(name) {
            Some(algorithm) => self.send_body_hashing(&request, &file, size, algorithm),
            None => self.send_body(&request, &file, size, |_| {}),
        }
    }

    /// The algorithm of a `HASH` of `name` that the client already sent
    /// behind its `READ` (a verified download pipelines them).
    fn hash_waiting_for(&self, name: &str) -> Option<Algorithm> {
        let buffered = self.conn.buffered();
        let line = &buffered[..buffered.iter().position(|&b| b == b'\n')?];
        match protocol::parse_request(line) {
            Ok(Request::Extension(Extension::Hash {
                algorithm,
                name: hashed,
            })) if hashed == name => Algorithm::from_name(&algorithm),
            _ => None,
        }
    }

    /// [`send_body`](Self::send_body), digesting the file as it goes out:
    /// if it did not change meanwhile, the digest goes in the cache, where
    /// the `HASH` behind finds it instead of reading the file again.
    fn send_body_hashing(
        &mut self,
        request: &str,
        file: &File,
        size: u64,
        algorithm: Algorithm,
    ) -> io::Result<Flow> {
        let before = file.metadata().map(|meta| FileStamp::of(&meta));
        let mut hasher = algorithm.hasher();
        let flow = self.send_body(request, file, size, |piece| hasher.update(piece))?;
        let after = file.metadata().map(|meta| FileStamp::of(&meta));
        if let (Ok(before), Ok(after)) = (before, after)
            && before == after
            && before.size() == size
        {
            self.shared
                .digests
                .insert(before, algorithm, hasher.finish_hex());
        }
        Ok(flow)
    }

    /// Sends `size` bytes of `file` from its offset as a reply's body, at
    /// the minimum rate, and logs `request` with the outcome; a file that
    /// shrank closes the connection (the client then knows the body is
    /// short).
    fn send_body(
        &mut self,
        request: &str,
        file: &File,
        size: u64,
        observe: impl FnMut(&[u8]),
    ) -> io::Result<Flow> {
        let mut pace = self.pace();
        let sent = match self.conn.send_file_paced(file, size, &mut pace, observe) {
            Ok(sent) => sent,
            Err(e) => {
                let why = self.failure(&e);
                self.log_error(request, &format!("not finished: {why}; closing"));
                return Ok(Flow::Close);
            }
        };
        if sent < size {
            let why = format!("file shrank to {sent} of {size} bytes; closing");
            self.log_error(request, &why);
            return Ok(Flow::Close);
        }
        self.restore_write_timeout()?;
        let text = format!("{size} bytes");
        self.logged(
            request,
            Outcome::Ok {
                text: &text,
                bytes: size,
            },
        );
        Ok(Flow::Continue)
    }

    fn write(&mut self, name: &str, size: u64) -> io::Result<Flow> {
        let config = &self.shared.config;
        let request = format!("WRITE {name}");
        if self.read_only {
            return self.refuse_upload(&request, size, &self.read_only_reason());
        }
        if let Some(max) = config.max_size.filter(|&max| size > max) {
            return self.refuse_upload(
                &request,
                size,
                &format!("`{name}` is {size} bytes, over the server's limit of {max}"),
            );
        }
        let mut upload = match self.root.create_upload(name) {
            Ok(upload) => upload,
            Err(e) => return self.refuse_upload(&request, size, &e.to_string()),
        };
        let mut pace = self.pace();
        match self
            .conn
            .read_body_paced(size, &mut pace, |chunk| upload.file.write_all(chunk))
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                // the reply names the file as the client did; the log says
                // where on this machine it failed
                let temp = self.root.path().join(upload.temp_name());
                drop(upload);
                let message = format!("cannot store `{name}`: {e}");
                let why = format!("{message} (writing {})", temp.display());
                self.log_error(&format!("WRITE {name}"), &why);
                self.reply_error(&message)?;
                return Ok(Flow::Continue);
            }
            Err(e) => {
                // the temporary file goes before the client is told
                drop(upload);
                self.upload_stopped(name, &e);
                return Ok(Flow::Close);
            }
        }
        match upload.commit() {
            Ok(()) => {
                let text = format!("{size} bytes");
                self.logged(
                    &format!("WRITE {name}"),
                    Outcome::Ok {
                        text: &text,
                        bytes: size,
                    },
                );
                self.conn.write_all(format!("OK {size}\n").as_bytes())?;
            }
            Err(e) => {
                self.log_error(&format!("WRITE {name}"), &e.to_string());
                self.reply_error(&e.to_string())?;
            }
        }
        Ok(Flow::Continue)
    }

    /// Logs an upload whose body stopped arriving, and tells the client why
    /// where it may still be listening (a shutdown, a stall); the
    /// connection is then closed.
    fn upload_stopped(&mut self, name: &str, e: &BodyError) {
        if self.cut_off() {
            self.log_error(
                &format!("WRITE {name}"),
                "cut off: the server is shutting down; nothing was kept",
            );
            self.close_with_error(&format!(
                "upload of `{name}` cut off: the server is shutting down; \
                 nothing was stored; closing"
            ));
            return;
        }
        self.log_error(
            &format!("WRITE {name}"),
            &format!("aborted: {e}; nothing was kept"),
        );
        let BodyError::Io(e) = e else { return };
        if let Some(Slow::TooSlow(too_slow)) = Slow::of(e) {
            self.close_with_error(&format!(
                "upload of `{name}` too slow: {too_slow}; nothing was stored; closing"
            ));
        } else if is_timeout(e) {
            self.close_with_error(&format!(
                "upload of `{name}` stalled: nothing arrived for {} s; \
                 nothing was stored; closing",
                self.shared.config.idle_timeout.as_secs()
            ));
        }
    }

    /// Refuses an upload after reading and discarding its body; `request`
    /// says in the log what was refused.
    fn refuse_upload(&mut self, request: &str, size: u64, message: &str) -> io::Result<Flow> {
        self.log_error(request, &format!("refused: {message}"));
        let mut pace = self.pace();
        if let Some(by) = self.auth_by {
            // before AUTH, dropping a body never outlasts the deadline
            pace = pace.until(by);
        }
        match self.conn.read_body_paced(size, &mut pace, |_| Ok(())) {
            Ok(_) => {
                self.reply_error(message)?;
                Ok(Flow::Continue)
            }
            Err(BodyError::Eof { .. }) if self.cut_off() => {
                self.close_with_error(&format!(
                    "{message}; closing, since the server is shutting down"
                ));
                Ok(Flow::Close)
            }
            Err(BodyError::Eof { .. }) => Ok(Flow::Close),
            Err(BodyError::Io(e)) if is_timeout(&e) => {
                let why = match Slow::of(&e) {
                    Some(Slow::TooSlow(too_slow)) => {
                        format!("the upload's body came in too slowly ({too_slow})")
                    }
                    Some(Slow::Late) => format!(
                        "no authentication came within {} s",
                        self.shared.config.auth_time.as_secs_f64()
                    ),
                    _ => format!(
                        "the upload's body stopped arriving for {} s",
                        self.shared.config.idle_timeout.as_secs()
                    ),
                };
                self.close_with_error(&format!("{message}; closing, since {why}"));
                Ok(Flow::Close)
            }
            Err(BodyError::Io(e)) => Err(e),
        }
    }

    /// Why talking to the client failed, in words for the log. (Read
    /// timeouts are handled where they happen, so a timeout here is one of
    /// writing.)
    fn failure(&self, e: &io::Error) -> String {
        if self.cut_off() {
            "the server is shutting down".to_string()
        } else if let Some(Slow::TooSlow(too_slow)) = Slow::of(e) {
            format!("the client read too slowly: {too_slow}")
        } else if is_timeout(e) {
            format!(
                "the client stopped reading for {} s",
                self.shared.config.idle_timeout.as_secs()
            )
        } else if matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
        ) {
            "the client closed the connection".to_string()
        } else {
            e.to_string()
        }
    }

    /// Watches a transfer starting now: the idle timeout bounds each stall,
    /// and `--min-rate` over `--rate-window` its average.
    fn pace(&self) -> Pace {
        let config = &self.shared.config;
        let now = Instant::now();
        let floor = RateFloor::new(config.min_rate, config.rate_window, now);
        Pace::new(floor, config.idle_timeout, now)
    }

    /// Sets the socket's write timeout back to the idle timeout after a
    /// paced write changed it. (Every read of a request line sets its own
    /// read timeout.)
    fn restore_write_timeout(&self) -> io::Result<()> {
        let idle_timeout = self.shared.config.idle_timeout;
        self.conn.set_write_timeout(Some(idle_timeout))
    }

    /// Tells the client, best effort, that its slot went to a new client
    /// (sent between requests only, so it reads as the reply to its next
    /// request) and closes.
    fn say_evicted(&mut self, idle: Duration) {
        let secs = idle.as_secs();
        self.log(&format!(
            "closed: idle for {secs} s, slot given to a new client"
        ));
        let _ = self.conn.set_write_timeout(Some(EVICTION_NOTICE));
        self.close_with_error(&format!(
            "idle for {secs} s, slot given to a new client; closing"
        ));
    }

    /// Whether the grace period of a shutdown is over.
    fn cut_off(&self) -> bool {
        self.shared.cut_off.load(Ordering::SeqCst)
    }

    fn stopping(&self) -> bool {
        self.shared.stopping.load(Ordering::SeqCst)
    }

    /// Tells the client, best effort, that the server is stopping; sent
    /// between requests only, so it reads as the reply to its next request.
    fn say_shutting_down(&mut self) {
        self.log("closed: server shutting down");
        let _ = self
            .conn
            .write_all(b"ERROR: server is shutting down; closing\n");
    }

    fn reply_error(&mut self, message: &str) -> io::Result<()> {
        self.conn
            .write_all(format!("ERROR: {message}\n").as_bytes())
    }

    /// Sends a last `ERROR:` and closes politely: our side first, then we
    /// read (bounded) what the client still sends, so the error is not lost
    /// to a reset.
    fn close_with_error(&mut self, message: &str) {
        if self.reply_error(message).is_ok() {
            self.conn.linger_close();
        }
    }

    /// Reads one request in legacy mode: a LF ends it as usual; bytes with
    /// no LF end it after [`LEGACY_GAP`] of silence or when the client closes
    /// its sending side; a `WRITE` header with no LF ends where its size
    /// digits end.
    fn read_legacy_request(&mut self) -> io::Result<Incoming> {
        let config = &self.shared.config;
        let deadline = deadline_after(config.idle_timeout);
        // an upload split whose body is all digits waits longer (see
        // `LEGACY_SETTLE`)
        let mut settling = false;
        let incoming = loop {
            let buffered = self.conn.buffered();
            let lf = buffered.iter().take(MAX_LINE).position(|&b| b == b'\n');
            if let Some(lf) = lf {
                let line = &buffered[..lf];
                if !line.starts_with(b"WRITE,") || is_framed_write(line) {
                    let line = line.to_vec();
                    self.conn.consume(lf + 1);
                    break Incoming::Line {
                        line,
                        terminated: true,
                    };
                }
            }
            let is_write = buffered.starts_with(b"WRITE,");
            let left = deadline.saturating_duration_since(Instant::now());
            let silence = if settling { LEGACY_SETTLE } else { LEGACY_GAP };
            let waited_for_gap = !buffered.is_empty() && left >= silence;
            if buffered.is_empty() {
                if left.is_zero() {
                    break Incoming::End(End::IdleTimeout);
                }
                self.conn.set_read_timeout(Some(left))?;
            } else if (!is_write && buffered.len() >= MAX_LINE) || self.conn.is_full() {
                break self.take_legacy_request();
            } else if left.is_zero() {
                // out of time: an upload's header is taken as it stands (its
                // body may go on arriving); any other request is too slow
                if is_write {
                    break self.take_legacy_request();
                }
                break Incoming::End(End::IdleTimeout);
            } else {
                self.conn.set_read_timeout(Some(silence.min(left)))?;
            }
            match self.conn.fill() {
                // the client closed its sending side: it has said all it will
                Ok(0) if self.conn.buffered().is_empty() => break Incoming::End(End::Eof),
                Ok(0) if self.stopping() => break Incoming::End(End::Truncated),
                Ok(0) => break self.take_legacy_request(),
                Ok(_) => settling = false,
                Err(e) if is_timeout(&e) && waited_for_gap => {
                    if settling || !legacy_body_may_be_size(self.conn.buffered()) {
                        break self.take_legacy_request();
                    }
                    settling = true;
                }
                // the deadline: decided at the top of the loop
                Err(e) if is_timeout(&e) => {}
                Err(e) => return Err(e),
            }
        };
        self.conn.set_read_timeout(Some(config.idle_timeout))?;
        Ok(incoming)
    }

    /// Takes everything buffered as one unterminated legacy request.
    fn take_legacy_request(&mut self) -> Incoming {
        let buffered = self.conn.buffered();
        if buffered.starts_with(b"WRITE,") {
            if let Some(header) = split_legacy_write(buffered) {
                let line = buffered[..header.len].to_vec();
                self.conn.consume(header.len);
                return Incoming::Line {
                    line,
                    terminated: false,
                };
            }
            // no size: parse_request refuses it and closes
            let line = buffered[..buffered.len().min(MAX_LINE)].to_vec();
            self.conn.consume(buffered.len());
            return Incoming::Line {
                line,
                terminated: false,
            };
        }
        if buffered.len() >= MAX_LINE {
            return Incoming::End(End::TooLong);
        }
        let mut line = buffered.to_vec();
        self.conn.consume(line.len());
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Incoming::Line {
            line,
            terminated: false,
        }
    }

    /// Logs one line for this connection: its peer, its token's label
    /// once authenticated, and `what`.
    fn log(&self, what: &str) {
        self.shared
            .log_line(|format| log::message(format, Some(self.who()), what));
    }

    /// The peer and, once it authenticated, its token's label.
    fn who(&self) -> log::Who<'_> {
        log::Who {
            peer: &self.peer,
            identity: self.label.as_deref(),
        }
    }

    /// Logs `request` with how it ended, its bytes and its duration.
    fn logged(&self, request: &str, outcome: Outcome<'_>) {
        let took = self.request_started.elapsed();
        self.shared
            .log_line(|format| log::request(format, self.who(), request, &outcome, took));
    }

    /// Logs `request` as refused or failed: `why`.
    fn log_error(&self, request: &str, why: &str) {
        self.logged(request, Outcome::Error(why));
    }
}

/// The instant `limit` from now, or a century from now for a limit too far
/// out to represent (`--idle-timeout` accepts any number of seconds).
fn deadline_after(limit: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(limit)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// Whether a line is a whole framed header `WRITE,<name>,<digits>`.
fn is_framed_write(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.iter()
        .rposition(|&b| b == b',')
        .filter(|&comma| comma > "WRITE".len())
        .is_some_and(|comma| protocol::parse_number(&line[comma + 1..]).is_ok())
}
