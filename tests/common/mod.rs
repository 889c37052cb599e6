//! Shared helpers for the integration tests: a real server on 127.0.0.1
//! serving a temporary folder, a raw TCP client that speaks IOE/1 byte by
//! byte, reproducible pseudo-random file contents and bounded polling.

#![allow(dead_code)] // each test crate uses its own subset

use ioe::Session;
use ioe::server::{Config, RunningServer, Server};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
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
}

impl TestServer {
    /// A server with the default configuration (quiet).
    pub fn start() -> TestServer {
        TestServer::start_with(|_| {})
    }

    /// A server whose configuration `adjust` may change (read-only, limits…).
    pub fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let outer = TempDir::new().expect("temporary folder");
        let root = outer.path().join("root");
        std::fs::create_dir(&root).expect("root folder");
        let mut config = Config {
            root: root.clone(),
            quiet: true,
            ..Config::default()
        };
        adjust(&mut config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let server = Server::new(listener, config)
            .expect("server opens its root")
            .spawn()
            .expect("server thread starts");
        TestServer {
            server: Some(server),
            outer,
            root,
        }
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

    /// A client session connected to this server.
    pub fn session(&self) -> Session {
        Session::connect(&self.addr().to_string()).expect("session connects")
    }

    /// A raw TCP client connected to this server.
    pub fn raw(&self) -> Raw {
        Raw::connect(self.addr())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop();
        }
    }
}

/// A plain TCP client for sending exact bytes and reading exact replies.
pub struct Raw {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Raw {
    /// Connects to `addr`; every read fails after [`REPLY_TIMEOUT`].
    pub fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).expect("raw client connects");
        stream
            .set_read_timeout(Some(REPLY_TIMEOUT))
            .expect("read timeout");
        let writer = stream.try_clone().expect("clone the socket");
        Raw {
            reader: BufReader::new(stream),
            writer,
        }
    }

    /// Sends `bytes` as they are.
    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("raw send");
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
        let _ = self.writer.shutdown(std::net::Shutdown::Both);
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
