//! Shared helpers for the integration tests: a real server on 127.0.0.1
//! serving a temporary folder (in-process, or the `ioe serve` binary as a
//! child process), a raw TCP client that speaks IOE/1 byte by byte,
//! reproducible pseudo-random file contents and bounded polling.
//!
//! With `IOE_TEST_TLS=1` the same tests run over TLS (the TLS run; see
//! [`tls_run`]): [`TestServer`] and [`ServeProcess`] serve TLS with one
//! test certificate, and the ways tests reach a server —
//! [`TestServer::session`], [`TestServer::raw`], [`target`] for address
//! text in scripts and REPL input, [`run_ioe`] for `ioe` child processes
//! (which trust the certificate through `$IOE_KNOWN_HOSTS`) — speak TLS
//! with it. A test of plain-only behaviour starts its server with
//! [`TestServer::plain_with`] or [`ServeProcess::start_plain`].

#![allow(dead_code)] // each test crate uses its own subset

pub mod relay;

use ioe::Session;
use ioe::server::{Config, RunningServer, Server};
use ioe::session::{ConnectOptions, TlsOptions};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once, OnceLock};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How long a raw client waits for any reply before the test fails.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// An in-process server on `127.0.0.1:<free port>` serving `root()`, a
/// folder inside a temporary folder (`outside()`), so tests can check that
/// nothing escapes the root. Stops on drop.
pub struct TestServer {
    server: Option<RunningServer>,
    outer: TempDir,
    root: PathBuf,
    /// Whether it speaks TLS (with the test certificate).
    tls: bool,
}

impl TestServer {
    /// A server with the default configuration (quiet).
    pub fn start() -> TestServer {
        TestServer::start_with(|_| {})
    }

    /// A server whose configuration `adjust` may change (read-only, limits…).
    /// In the TLS run it serves TLS with the test certificate.
    pub fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        TestServer::start_as(tls_run(), adjust)
    }

    /// A server that speaks plain TCP even in the TLS run, for tests of
    /// plain-only behaviour (raw bytes from another thread, a legacy
    /// client).
    pub fn plain_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        TestServer::start_as(false, adjust)
    }

    fn start_as(tls: bool, adjust: impl FnOnce(&mut Config)) -> TestServer {
        count_server_panics();
        let outer = TempDir::new().expect("temporary folder");
        let root = outer.path().join("root");
        std::fs::create_dir(&root).expect("root folder");
        let mut config = Config {
            root: root.clone(),
            quiet: true,
            ..Config::default()
        };
        if tls {
            config.tls = Some(Arc::clone(&test_certificate().config));
        }
        adjust(&mut config);
        let tls = config.tls.is_some();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let server = Server::new(listener, config)
            .expect("server opens its root")
            .spawn()
            .expect("server thread starts");
        let server = TestServer {
            server: Some(server),
            outer,
            root,
            tls,
        };
        if tls {
            trust(server.addr());
        }
        server
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.as_ref().expect("running").addr()
    }

    /// The served folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder that contains the root (outside of what is served).
    pub fn outside(&self) -> &Path {
        self.outer.path()
    }

    /// The address text a client connects with: `tls://127.0.0.1:PORT`
    /// when it speaks TLS, else `127.0.0.1:PORT`.
    pub fn target(&self) -> String {
        address_text(self.addr(), self.tls)
    }

    /// A client session connected to this server (over TLS, with the test
    /// certificate pinned, when it speaks TLS).
    pub fn session(&self) -> Session {
        connect_to(self.addr(), self.tls).expect("session connects")
    }

    /// A raw client connected to this server (over TLS when it speaks
    /// TLS).
    pub fn raw(&self) -> Raw {
        Raw::connect_as(self.addr(), self.tls)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop();
        }
        // bad input must never crash a server thread, even when the client
        // sees nothing wrong
        if !std::thread::panicking() {
            assert_eq!(
                SERVER_PANICS.load(Ordering::SeqCst),
                0,
                "a server thread panicked (its message is above)"
            );
        }
    }
}

/// Panics on the server's own threads (named `ioe-…`) in this test binary.
static SERVER_PANICS: AtomicUsize = AtomicUsize::new(0);

/// Counts panics on server threads in [`SERVER_PANICS`], once per binary;
/// the default hook still prints them.
fn count_server_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let name = std::thread::current().name().map(str::to_owned);
            if name.is_some_and(|name| name.starts_with("ioe-")) {
                SERVER_PANICS.fetch_add(1, Ordering::SeqCst);
            }
            default(info);
        }));
    });
}

/// A client for sending exact bytes and reading exact replies, over plain
/// TCP, or over TLS for a server of the TLS run ([`TestServer::raw`],
/// [`ServeProcess::raw`]).
pub struct Raw {
    reader: BufReader<RawStream>,
    writer: RawStream,
    /// The TCP socket under it, for timeouts and shutdowns.
    socket: TcpStream,
}

/// The bytes of a [`Raw`] client: the socket itself, or TLS over it with
/// the test certificate pinned, shared by the reading and writing halves.
enum RawStream {
    Plain(TcpStream),
    Tls(Arc<Mutex<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>>),
}

impl Read for RawStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            RawStream::Plain(stream) => stream.read(buf),
            RawStream::Tls(tls) => match tls.lock().unwrap_or_else(|e| e.into_inner()).read(buf) {
                // a close without `close_notify` ends the input, as for TCP
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
        }
    }
}

impl Write for RawStream {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match self {
            RawStream::Plain(stream) => stream.write(bytes),
            RawStream::Tls(tls) => tls.lock().unwrap_or_else(|e| e.into_inner()).write(bytes),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            RawStream::Plain(stream) => stream.flush(),
            RawStream::Tls(tls) => tls.lock().unwrap_or_else(|e| e.into_inner()).flush(),
        }
    }
}

impl Raw {
    /// Connects to `addr` over plain TCP; every read fails after
    /// [`REPLY_TIMEOUT`].
    pub fn connect(addr: SocketAddr) -> Raw {
        Raw::connect_as(addr, false)
    }

    /// Connects to `addr`, over TLS with the test certificate pinned when
    /// `tls`; every read fails after [`REPLY_TIMEOUT`].
    pub fn connect_as(addr: SocketAddr, tls: bool) -> Raw {
        let stream = TcpStream::connect(addr).expect("raw client connects");
        if !tls {
            return Raw::from_stream(stream);
        }
        stream
            .set_read_timeout(Some(REPLY_TIMEOUT))
            .expect("read timeout");
        let socket = stream.try_clone().expect("clone the socket");
        let (config, _) = ioe::tls::client_config(Some(test_certificate().fingerprint.clone()));
        let name = ioe::tls::server_name("localhost").expect("a server name");
        let conn = rustls::ClientConnection::new(config, name).expect("a TLS client");
        let tls = Arc::new(Mutex::new(rustls::StreamOwned::new(conn, stream)));
        Raw {
            reader: BufReader::new(RawStream::Tls(Arc::clone(&tls))),
            writer: RawStream::Tls(tls),
            socket,
        }
    }

    /// Wraps an already connected socket (plain TCP); reads fail after
    /// [`REPLY_TIMEOUT`].
    pub fn from_stream(stream: TcpStream) -> Raw {
        stream
            .set_read_timeout(Some(REPLY_TIMEOUT))
            .expect("read timeout");
        let writer = stream.try_clone().expect("clone the socket");
        let socket = stream.try_clone().expect("clone the socket");
        Raw {
            reader: BufReader::new(RawStream::Plain(stream)),
            writer: RawStream::Plain(writer),
            socket,
        }
    }

    /// Sends `bytes` as they are.
    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("raw send");
        self.writer.flush().expect("raw send");
    }

    /// Reads one reply line, LF included, as bytes.
    pub fn line_bytes(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        self.reader
            .read_until(b'\n', &mut line)
            .expect("raw reply line");
        assert!(
            line.ends_with(b"\n"),
            "connection closed in the middle of a reply line: {:?}",
            String::from_utf8_lossy(&line)
        );
        line
    }

    /// Reads one reply line, LF included, as text.
    pub fn line(&mut self) -> String {
        String::from_utf8(self.line_bytes()).expect("reply line is UTF-8")
    }

    /// Reads exactly `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut body = vec![0; n];
        self.reader.read_exact(&mut body).expect("raw reply body");
        body
    }

    /// Reads whatever arrives next (at most `buf.len()` bytes); 0 at the end.
    pub fn read_some(&mut self, buf: &mut [u8]) -> usize {
        self.reader.read(buf).expect("raw read")
    }

    /// Reads a whole `LIST` reply: the `OK <n>` line, then the entry lines.
    pub fn list_reply(&mut self) -> Vec<String> {
        let status = self.line();
        let count: usize = status
            .strip_prefix("OK ")
            .and_then(|n| n.trim_end().parse().ok())
            .unwrap_or_else(|| panic!("expected `OK <n>`, got {status:?}"));
        (0..count).map(|_| self.line()).collect()
    }

    /// Asserts that the server closed the connection with nothing more to say.
    pub fn expect_closed(&mut self) {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => assert!(
                rest.is_empty(),
                "unexpected bytes before close: {:?}",
                String::from_utf8_lossy(&rest)
            ),
            Err(e) => assert_eq!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset,
                "expected the server to close"
            ),
        }
    }

    /// Closes both directions at once.
    pub fn shutdown(&self) {
        let _ = self.socket.shutdown(Shutdown::Both);
    }

    /// The socket (to clone it for a writer thread of a plain client).
    pub fn stream(&self) -> &TcpStream {
        &self.socket
    }

    /// Closes the sending side only: the server sees EOF, replies still come.
    pub fn finish_sending(&self) {
        self.socket
            .shutdown(Shutdown::Write)
            .expect("shut down sending");
    }

    /// What one `recv()` returns, as the original Python client reads it.
    pub fn recv_once(&mut self) -> Vec<u8> {
        assert!(self.reader.buffer().is_empty(), "bytes left unread");
        let mut chunk = vec![0; 64 * 1024];
        let n = self.reader.get_mut().read(&mut chunk).expect("recv");
        chunk.truncate(n);
        chunk
    }

    /// Asserts that nothing arrives within `wait` and the connection stays
    /// open.
    pub fn expect_silence(&mut self, wait: Duration) {
        assert!(self.reader.buffer().is_empty(), "bytes left unread");
        self.socket.set_read_timeout(Some(wait)).unwrap();
        let result = self.reader.fill_buf().map(|b| b.to_vec());
        self.socket.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        match result {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Ok(got) if got.is_empty() => panic!("the server closed the connection"),
            Ok(got) => panic!(
                "expected no reply yet, got {:?}",
                String::from_utf8_lossy(&got)
            ),
            Err(e) => panic!("connection failed: {e}"),
        }
    }

    /// Everything the server sends until it closes the connection (a reset
    /// counts as a close).
    pub fn read_to_close(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        if let Err(e) = self.reader.read_to_end(&mut rest) {
            assert_eq!(
                e.kind(),
                ErrorKind::ConnectionReset,
                "the server did not close the connection"
            );
        }
        rest
    }

    /// `READ,<name>` (framed); panics unless the reply is a size and a body.
    pub fn read_file(&mut self, name: &str) -> Vec<u8> {
        self.send(format!("READ,{name}\n").as_bytes());
        let status = self.line();
        let size = status
            .trim_end()
            .parse()
            .unwrap_or_else(|_| panic!("READ,{name} answered {status:?}"));
        self.bytes(size)
    }

    /// `WRITE,<name>,<size>` (framed) and the body; returns the status line.
    pub fn upload(&mut self, name: &str, body: &[u8]) -> String {
        let mut request = format!("WRITE,{name},{}\n", body.len()).into_bytes();
        request.extend_from_slice(body);
        self.send(&request);
        self.line()
    }

    /// `LIST` of the root (framed); returns the names listed.
    pub fn list_names(&mut self) -> Vec<String> {
        self.send(b"LIST\n");
        self.list_reply()
            .iter()
            .map(|line| {
                let fields: Vec<&str> = line.trim_end().splitn(4, ',').collect();
                assert_eq!(fields.len(), 4, "malformed entry line {line:?}");
                fields[3].to_string()
            })
            .collect()
    }
}

/// `ioe serve` as a child process; killed (if still running) on drop.
pub struct ServeProcess {
    child: std::process::Child,
    addr: SocketAddr,
    /// Whether it speaks TLS with the test certificate.
    tls: bool,
    /// Kept open so the server never writes to a closed pipe.
    _stdout: BufReader<ChildStdout>,
    /// Everything written on stderr so far, checked for panics on drop.
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<std::thread::JoinHandle<()>>,
}

impl ServeProcess {
    /// Runs `ioe serve --root ROOT --listen 127.0.0.1:0 --quiet ARGS…` and
    /// reads the bound address from its first stdout line. In the TLS run
    /// it serves TLS with the test certificate (unless `ARGS` hold
    /// `--tls` or `--legacy`).
    pub fn start(root: &Path, args: &[&str]) -> ServeProcess {
        let mut all = vec!["--quiet"];
        all.extend_from_slice(args);
        ServeProcess::spawn(root, &all)
    }

    /// Like [`start`](Self::start), with the log of requests on stderr
    /// (see [`wait_for_log`](Self::wait_for_log)).
    pub fn start_logging(root: &Path, args: &[&str]) -> ServeProcess {
        ServeProcess::spawn(root, args)
    }

    /// Like [`start_logging`](Self::start_logging), with files the server
    /// writes limited to `max_file_bytes` (`RLIMIT_FSIZE`; `ioe` ignores
    /// `SIGXFSZ` itself): writes past it fail with "File too large", as on
    /// a full disk, even for root.
    pub fn start_with_file_limit(root: &Path, args: &[&str], max_file_bytes: u64) -> ServeProcess {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(env!("CARGO_BIN_EXE_ioe"));
        // SAFETY: only async-signal-safe calls between fork and exec
        unsafe {
            command.pre_exec(move || {
                let limit = libc::rlimit {
                    rlim_cur: max_file_bytes,
                    rlim_max: max_file_bytes,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        ServeProcess::spawn_command(command, root, args)
    }

    /// Like [`start`](Self::start), with environment variables set for
    /// the server (such as `XDG_STATE_HOME`).
    pub fn start_with_env(
        root: &Path,
        args: &[&str],
        env: &[(&str, &std::ffi::OsStr)],
    ) -> ServeProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ioe"));
        command.envs(env.iter().copied());
        let mut all = vec!["--quiet"];
        all.extend_from_slice(args);
        ServeProcess::spawn_command(command, root, &all)
    }

    /// Like [`start`](Self::start), plain TCP even in the TLS run.
    pub fn start_plain(root: &Path, args: &[&str]) -> ServeProcess {
        let mut all = vec!["--quiet"];
        all.extend_from_slice(args);
        ServeProcess::spawn_as(Command::new(env!("CARGO_BIN_EXE_ioe")), root, &all, false)
    }

    /// The address text a client connects with (see [`TestServer::target`]).
    pub fn target(&self) -> String {
        address_text(self.addr, self.tls)
    }

    /// A client session connected to it (see [`TestServer::session`]).
    pub fn session(&self) -> Session {
        connect_to(self.addr, self.tls).expect("session connects")
    }

    /// A raw client connected to it (see [`TestServer::raw`]).
    pub fn raw(&self) -> Raw {
        Raw::connect_as(self.addr, self.tls)
    }

    /// The next line the server prints on stdout, after its address line.
    pub fn next_stdout_line(&mut self) -> String {
        let mut line = String::new();
        let _ = self._stdout.read_line(&mut line);
        line.trim_end().to_string()
    }

    fn spawn(root: &Path, args: &[&str]) -> ServeProcess {
        ServeProcess::spawn_command(Command::new(env!("CARGO_BIN_EXE_ioe")), root, args)
    }

    fn spawn_command(command: Command, root: &Path, args: &[&str]) -> ServeProcess {
        let tls = tls_run() && !args.iter().any(|a| ["--tls", "--legacy"].contains(a));
        ServeProcess::spawn_as(command, root, args, tls)
    }

    /// Starts it, with the test certificate's `--tls` options when `tls`.
    fn spawn_as(mut command: Command, root: &Path, args: &[&str], tls: bool) -> ServeProcess {
        if tls {
            let cert = test_certificate();
            command
                .arg("serve")
                .arg("--tls")
                .arg("--tls-cert")
                .arg(&cert.cert)
                .arg("--tls-key")
                .arg(&cert.key);
        } else {
            command.arg("serve");
        }
        let mut child = command
            .arg("--root")
            .arg(root)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ioe serve");
        let stderr_pipe = child.stderr.take().expect("piped stderr");
        let stderr = Arc::new(Mutex::new(String::new()));
        let collected = Arc::clone(&stderr);
        let stderr_reader = std::thread::spawn(move || {
            let mut pipe = BufReader::new(stderr_pipe);
            let mut line = Vec::new();
            while pipe.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                let mut text = collected.lock().unwrap_or_else(|e| e.into_inner());
                text.push_str(&String::from_utf8_lossy(&line));
                line.clear();
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut first = String::new();
        let _ = stdout.read_line(&mut first);
        let addr = first
            .trim_end()
            .rsplit(' ')
            .next()
            .and_then(|a| a.parse().ok());
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ioe serve printed no address: {first:?}");
        };
        if tls {
            trust(addr);
        }
        ServeProcess {
            child,
            addr,
            tls,
            _stdout: stdout,
            stderr,
            stderr_reader: Some(stderr_reader),
        }
    }

    /// Waits (at most [`REPLY_TIMEOUT`]) for a line of the server's log
    /// that contains every one of `words`, and returns it; panics with the
    /// whole log if none comes.
    pub fn wait_for_log(&self, words: &[&str]) -> String {
        let find = || {
            let text = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
            text.lines()
                .find(|line| words.iter().all(|w| line.contains(w)))
                .map(str::to_owned)
        };
        let mut found = None;
        wait_until(REPLY_TIMEOUT, || {
            found = find();
            found.is_some()
        });
        found.unwrap_or_else(|| {
            let text = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
            panic!("no log line with {words:?}; the log:\n{text}")
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Everything the server wrote on stderr so far.
    pub fn log(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The most memory the process has held so far (`VmHWM`), in bytes.
    pub fn peak_memory(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read the server's /proc status");
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("a VmHWM line");
        kib * 1024
    }

    /// Sends a signal by name (`TERM`, `INT`) with `kill(1)`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits at most `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let mut status = None;
        wait_until(limit, || {
            status = self.child.try_wait().expect("poll the child");
            status.is_some()
        });
        status
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        let stderr = self
            .stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if std::thread::panicking() {
            eprint!("{stderr}");
        } else {
            assert!(
                !stderr.contains("panicked"),
                "ioe serve panicked:\n{stderr}"
            );
        }
    }
}

/// `len` reproducible pseudo-random bytes (xorshift64) for a seed.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Polls `condition` every 10 ms for at most `limit`; returns whether it
/// became true.
pub fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if condition() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// For fake servers that speak plain IOE/1: the next request of IOE/1
/// (`LIST`, `READ`, `WRITE`, `BYE`) read from `reader`, LF included ("" if
/// the client went away). Requests of the extensions on the way (the
/// `STAT` a download sends ahead of its `READ`, the `FEATURES` an upload
/// asks first) get the refusal a plain IOE/1 server gives.
pub fn plain_request(reader: &mut impl BufRead, writer: &mut impl Write) -> String {
    for _ in 0..100 {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            return String::new();
        }
        let word = line.split([',', '\n']).next().unwrap_or_default();
        if line.is_empty() || ["LIST", "READ", "WRITE", "BYE"].contains(&word) {
            return line;
        }
        let reply = format!("ERROR: unknown command `{word}`\n");
        if writer.write_all(reply.as_bytes()).is_err() {
            return String::new();
        }
    }
    panic!("100 requests of the extensions in a row")
}

/// A plain IOE/1 server for one connection: `LIST` answers `list_reply`
/// (`OK <n>` and its entry lines), `BYE` ends it, every request of the
/// extensions gets the refusal a plain server gives (see
/// [`plain_request`]).
pub fn plain_server(list_reply: &'static [u8]) -> (SocketAddr, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let thread = std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        stream.set_read_timeout(Some(RUN_TIMEOUT)).unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        for _ in 0..100 {
            let request = plain_request(&mut reader, &mut writer);
            let reply: &[u8] = match request.split([',', '\n']).next().unwrap_or_default() {
                "LIST" => list_reply,
                "BYE" => b"OK bye\n",
                "" => return,
                _ => b"ERROR: not in this test\n",
            };
            if writer.write_all(reply).is_err() || reply.starts_with(b"OK bye") {
                return;
            }
        }
    });
    (addr, thread)
}

/// A file's modification time, in whole seconds since the epoch.
pub fn mtime(path: &Path) -> u64 {
    std::fs::metadata(path)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Sets a file's modification time to `secs` since the epoch.
pub fn set_mtime(path: &Path, secs: u64) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap();
}

/// Every temporary file (`.ioe-tmp-…`) under `dir`, at any depth.
pub fn temp_files(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".ioe-tmp-"))
        .map(|e| e.into_path())
        .collect()
}

/// Writes `bytes` to `dir/name`, creating parent folders.
pub fn put(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create parent folders");
    }
    std::fs::write(&path, bytes).expect("write a test file");
    path
}

/// How long one run of the `ioe` binary may take before the test fails.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// What a finished `ioe` process left behind.
#[derive(Debug)]
pub struct Run {
    /// The exit status (`None` if killed by a signal).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// A child process that is killed if the test ends before it does.
pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the `ioe` binary with `args` in folder `dir`, stdin, stdout and
/// stderr piped.
pub fn spawn_ioe(dir: &Path, args: &[&str]) -> Child {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_ioe"))
        .envs(child_env())
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the ioe binary");
    Child(child)
}

/// Runs the `ioe` binary with `args` in `dir`, feeding it `stdin`, and
/// waits at most [`RUN_TIMEOUT`] for it to finish.
pub fn run_ioe(dir: &Path, args: &[&str], stdin: &str) -> Run {
    let mut child = spawn_ioe(dir, args);
    let mut input = child.0.stdin.take().expect("stdin is piped");
    let stdin = stdin.to_string();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(stdin.as_bytes());
    });
    finish(child, feeder)
}

/// Mints a token into the token file `tokens` with `ioe token new --auth
/// TOKENS --label LABEL EXTRA…` (run in `dir`) and returns it.
pub fn mint(dir: &Path, tokens: &Path, label: &str, extra: &[&str]) -> String {
    let tokens = tokens.to_str().expect("a UTF-8 path");
    let mut args = vec!["token", "new", "--auth", tokens, "--label", label];
    args.extend_from_slice(extra);
    let run = run_ioe(dir, &args, "");
    assert_eq!(run.code, Some(0), "{run:?}");
    let token = run.stdout.trim().to_string();
    assert!(token.starts_with("ioe_"), "{run:?}");
    token
}

/// Waits at most [`RUN_TIMEOUT`] for `child` to exit and collects its output.
pub fn finish(mut child: Child, feeder: std::thread::JoinHandle<()>) -> Run {
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(
        child
            .0
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .0
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let mut status = None;
    let exited = wait_until(RUN_TIMEOUT, || {
        status = child.0.try_wait().expect("poll the child");
        status.is_some()
    });
    assert!(
        exited,
        "ioe {:?} did not finish within {RUN_TIMEOUT:?}",
        child.0.id()
    );
    let _ = feeder.join();
    Run {
        code: status.and_then(|s| s.code()),
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// Asserts that no temporary file is left under `dir`, allowing the server a
/// moment (bounded) to finish removing one.
pub fn assert_no_temp_files(dir: &Path) {
    wait_until(REPLY_TIMEOUT, || temp_files(dir).is_empty());
    assert_eq!(
        temp_files(dir),
        Vec::<PathBuf>::new(),
        "temporary files left"
    );
}

/// A fake IOE/1 server for one connection: it answers `READ` with a size
/// and then trickles the body (`chunk` bytes every `pause`), and takes a
/// `WRITE` body just as slowly, until all of it went through, the client
/// goes away, or [`RUN_TIMEOUT`] passes. It reports once the first body
/// bytes went through, and answers `BYE`.
pub struct TrickleServer {
    pub addr: SocketAddr,
    body_started: std::sync::mpsc::Receiver<()>,
    /// Set on drop: the trickling ends at the next piece.
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TrickleServer {
    /// Starts it on 127.0.0.1 with a free port.
    pub fn start(size: usize, chunk: usize, pause: Duration) -> TrickleServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let (started, body_started) = std::sync::mpsc::channel();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let _ = stream.set_read_timeout(Some(RUN_TIMEOUT));
            let mut writer = stream.try_clone().expect("clone the socket");
            let mut reader = BufReader::new(stream);
            let deadline = Instant::now() + RUN_TIMEOUT;
            let give_up =
                || Instant::now() > deadline || stopped.load(std::sync::atomic::Ordering::SeqCst);
            let mut request = String::new();
            while reader.read_line(&mut request).unwrap_or(0) > 0 && !give_up() {
                if request.starts_with("READ,") {
                    if writer.write_all(format!("{size}\n").as_bytes()).is_err() {
                        return;
                    }
                    let body = pseudo_random(3, size);
                    for (i, piece) in body.chunks(chunk).enumerate() {
                        if writer.write_all(piece).is_err() || give_up() {
                            return;
                        }
                        if i == 0 {
                            let _ = started.send(());
                        }
                        std::thread::sleep(pause);
                    }
                } else if let Some(header) = request.strip_prefix("WRITE,") {
                    let Some(size) = header
                        .trim_end()
                        .rsplit_once(',')
                        .and_then(|(_, n)| n.parse::<usize>().ok())
                    else {
                        return;
                    };
                    let mut piece = vec![0; chunk];
                    let mut received = 0;
                    while received < size {
                        let n = chunk.min(size - received);
                        if reader.read_exact(&mut piece[..n]).is_err() || give_up() {
                            return;
                        }
                        if received == 0 {
                            let _ = started.send(());
                        }
                        received += n;
                        std::thread::sleep(pause);
                    }
                    if writer.write_all(format!("OK {size}\n").as_bytes()).is_err() {
                        return;
                    }
                } else if request.starts_with("BYE") {
                    let _ = writer.write_all(b"OK bye\n");
                    return;
                } else {
                    // a plain IOE/1 server: no extensions
                    let word = request.trim_end().split(',').next().unwrap_or_default();
                    let reply = format!("ERROR: unknown command `{word}`\n");
                    if writer.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
                request.clear();
            }
        });
        TrickleServer {
            addr,
            body_started,
            stop,
            thread: Some(thread),
        }
    }

    /// Waits (bounded) until the first body bytes went through.
    pub fn wait_for_body(&self) {
        self.body_started
            .recv_timeout(RUN_TIMEOUT)
            .expect("the transfer started");
    }
}

impl Drop for TrickleServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            if !thread.is_finished() {
                // a test that failed before connecting: end the accept()
                let _ = TcpStream::connect(self.addr);
            }
            let _ = thread.join();
        }
    }
}

/// Closes `listener` so that connecting to its port is refused from now on.
/// Dropping it is not enough: a child process another test is spawning at
/// that moment holds a copy of the descriptor until it execs, and the
/// socket keeps queueing connections until then (which are then reset).
/// Shutting the socket down stops the listening for every copy at once.
pub fn stop_listening(listener: TcpListener) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid socket descriptor, owned by `listener` until the end
    let stopped = unsafe { libc::shutdown(listener.as_raw_fd(), libc::SHUT_RDWR) };
    assert_eq!(stopped, 0, "shutdown of the listener failed");
}

/// Whether this is the TLS run (`IOE_TEST_TLS=1`): every server of
/// [`TestServer`] and [`ServeProcess`] speaks TLS unless a test asks for
/// plain TCP.
pub fn tls_run() -> bool {
    static TLS: OnceLock<bool> = OnceLock::new();
    *TLS.get_or_init(|| std::env::var_os("IOE_TEST_TLS").is_some_and(|v| v == "1"))
}

/// The certificate every TLS server of a test binary serves.
pub struct TestCertificate {
    /// The PEM files, for `ioe serve --tls-cert/--tls-key`.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Its fingerprint (`SHA256:…`).
    pub fingerprint: String,
    /// What an in-process server serves with.
    pub config: Arc<rustls::ServerConfig>,
}

/// The test certificate: made once (for `localhost`) and kept in cargo's
/// folder for test files (`target/tmp/ioe-test-tls/`), where every test
/// binary and `ioe serve` child finds it.
pub fn test_certificate() -> &'static TestCertificate {
    static CERT: OnceLock<TestCertificate> = OnceLock::new();
    CERT.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ioe-test-tls");
        if !dir.join("key.pem").exists() {
            // made beside it and renamed, so that a binary running at the
            // same time sees both files or neither
            let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
                .expect("make the test certificate");
            let fresh = dir.with_extension(format!("new-{}", std::process::id()));
            std::fs::create_dir_all(&fresh).expect("a folder for the test certificate");
            std::fs::write(fresh.join("cert.pem"), made.cert.pem()).expect("write it");
            std::fs::write(fresh.join("key.pem"), made.key_pair.serialize_pem()).expect("write it");
            if std::fs::rename(&fresh, &dir).is_err() {
                // another binary's made it first
                let _ = std::fs::remove_dir_all(&fresh);
            }
        }
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let identity = ioe::tls::server_identity(Some((&cert, &key)), &dir)
            .expect("load the test certificate");
        TestCertificate {
            cert,
            key,
            fingerprint: identity.fingerprint,
            config: identity.config,
        }
    })
}

/// The known-hosts file the `ioe` children of a TLS run trust servers
/// through (`$IOE_KNOWN_HOSTS`): a line `127.0.0.1:PORT SHA256:…` for each
/// server and relay of this test binary ([`trust`]).
pub fn known_hosts() -> PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        // not in `ioe-test-tls`: made first, that folder would stop
        // test_certificate() from renaming the certificate into place
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ioe-test-known-hosts");
        std::fs::create_dir_all(&dir).expect("a folder for the known-hosts file");
        let path = dir.join(format!("known_hosts-{}", std::process::id()));
        std::fs::write(&path, "").expect("start the known-hosts file");
        path
    })
    .clone()
}

/// The environment an `ioe` child process of this run needs: in the TLS
/// run, `IOE_KNOWN_HOSTS` naming [`known_hosts`].
pub fn child_env() -> Vec<(&'static str, PathBuf)> {
    if tls_run() {
        vec![("IOE_KNOWN_HOSTS", known_hosts())]
    } else {
        Vec::new()
    }
}

/// Adds `addr` to [`known_hosts`] with the test certificate's fingerprint
/// (a TLS server, or a relay in front of one).
pub fn trust(addr: SocketAddr) {
    static LOCK: Mutex<()> = Mutex::new(());
    let _one_at_a_time = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(known_hosts())
        .expect("open the known-hosts file");
    writeln!(file, "{addr} {}", test_certificate().fingerprint).expect("add a known host");
}

/// The most bytes a connection of this run adds on the wire to `payload`
/// bytes it carries: none over plain TCP; over TLS, 22 bytes per record
/// (counted as if each held only 8 KiB: a write's last record is short),
/// and 8 KiB for the handshake and the session tickets.
pub fn wire_overhead(payload: u64) -> u64 {
    if tls_run() {
        (payload.div_ceil(8 * 1024) + 64) * 22 + 8 * 1024
    } else {
        0
    }
}

/// The address text for `addr`, with `tls://` when `tls`.
fn address_text(addr: SocketAddr, tls: bool) -> String {
    if tls {
        format!("{}{addr}", ioe::session::TLS_SCHEME)
    } else {
        addr.to_string()
    }
}

/// The address text of a server of this run at `addr` (a relay in front
/// of one, say): `tls://…` in the TLS run.
pub fn target(addr: SocketAddr) -> String {
    address_text(addr, tls_run())
}

/// The REPL's `CONNECT` line for address text `target` (as
/// [`TestServer::target`] gives it): `CONNECT,tls://127.0.0.1,PORT` for
/// TLS, `CONNECT,127.0.0.1,PORT` for plain TCP.
pub fn connect_line(target: &str) -> String {
    let (host, port) = target.rsplit_once(':').expect("host:port");
    format!("CONNECT,{host},{port}\n")
}

/// A session to a server of this run at `addr` (a relay in front of one,
/// say): over TLS with the test certificate pinned in the TLS run.
pub fn connect(addr: SocketAddr) -> ioe::error::Result<Session> {
    connect_to(addr, tls_run())
}

fn connect_to(addr: SocketAddr, tls: bool) -> ioe::error::Result<Session> {
    let pinned = TlsOptions {
        fingerprint: Some(test_certificate().fingerprint.clone()),
        ..TlsOptions::default()
    };
    let options = ConnectOptions {
        tls: tls.then_some(pinned),
        ..ConnectOptions::default()
    };
    Session::connect_with(
        &addr.to_string(),
        &options,
        ioe::session::CONNECT_TIMEOUT,
        ioe::session::IO_TIMEOUT,
    )
}
