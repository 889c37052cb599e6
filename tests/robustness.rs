//! The server against hostile, broken and unlucky clients, and its limits:
//! garbage never stops it serving others; `--max-connections`,
//! `--idle-timeout`, `--read-only`, `--max-size` and graceful shutdown
//! behave as `docs/protocol.md` says.

mod common;

use common::{
    Raw, ServeProcess, TestServer, assert_no_temp_files, finish, run_ioe, spawn_ioe, temp_files,
    wait_until,
};
use std::io::{ErrorKind, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;
use tempfile::TempDir;

/// A file every server in these tests holds, to check it is still served.
const KEPT: &str = "kept.txt";
const KEPT_BODY: &[u8] = b"contents that must survive\n";
/// How long a test waits for a process or a condition.
const PATIENCE: Duration = Duration::from_secs(10);

fn server_with_kept_file() -> TestServer {
    legacy_server_with_kept_file(false)
}

fn legacy_server_with_kept_file(legacy: bool) -> TestServer {
    let server = TestServer::start_with(|config| config.legacy = legacy);
    std::fs::write(server.root().join(KEPT), KEPT_BODY).unwrap();
    server
}

/// A client connected (and served once) before the attack starts.
fn bystander(addr: SocketAddr) -> Raw {
    let mut client = Raw::connect(addr);
    assert!(client.list_names().contains(&KEPT.to_string()));
    client
}

/// After an attack: a fresh client can LIST and READ, the bystander's
/// session still works, and no temporary file is left behind.
fn assert_still_serving(server: &TestServer, bystander: &mut Raw) {
    let mut fresh = Raw::connect(server.addr());
    assert!(fresh.list_names().contains(&KEPT.to_string()));
    assert_eq!(fresh.read_file(KEPT), KEPT_BODY);
    assert_eq!(bystander.read_file(KEPT), KEPT_BODY);
    assert!(bystander.list_names().contains(&KEPT.to_string()));
    assert_no_temp_files(server.root());
}

/// Runs `attack` against a fresh server, then checks it is still serving.
fn survives(attack: impl FnOnce(SocketAddr, &Path)) {
    survives_in_mode(false, attack);
}

/// [`survives`], on a server in legacy mode or not.
fn survives_in_mode(legacy: bool, attack: impl FnOnce(SocketAddr, &Path)) {
    let server = legacy_server_with_kept_file(legacy);
    let mut watcher = bystander(server.addr());
    attack(server.addr(), server.root());
    assert_still_serving(&server, &mut watcher);
}

/// A small seeded generator (xorshift64*), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Sends `input` and closes the sending side, ignoring send errors (the
/// server may rightly close first). In legacy mode the input goes out in up
/// to three writes with pauses longer than the legacy gap, so the server also
/// has to cut it where the client fell silent.
fn send_all(addr: SocketAddr, input: &[u8], legacy: bool, rng: &mut Rng) -> Raw {
    let client = Raw::connect(addr);
    let mut socket = client.stream();
    let mut rest = input;
    if legacy {
        for _ in 0..rng.below(3) {
            let (now, later) = rest.split_at(rng.below(rest.len() + 1));
            let _ = socket.write_all(now);
            thread::sleep(Duration::from_millis(60));
            rest = later;
        }
    }
    let _ = socket.write_all(rest);
    let _ = socket.shutdown(Shutdown::Write);
    client
}

fn random_bytes_get_errors(legacy: bool) {
    survives_in_mode(legacy, |addr, _| {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for round in 0..24 {
            let len = 1 + rng.below(16 * 1024);
            let garbage: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let mut client = send_all(addr, &garbage, legacy, &mut rng);
            let replies = client.read_to_close();
            for line in String::from_utf8_lossy(&replies).lines() {
                assert!(
                    line.starts_with("ERROR: "),
                    "round {round}: random bytes got {line:?}"
                );
            }
        }
    });
}

#[test]
fn random_bytes_get_errors_and_the_server_goes_on() {
    random_bytes_get_errors(false);
}

#[test]
fn random_bytes_get_errors_and_a_legacy_server_goes_on() {
    random_bytes_get_errors(true);
}

fn random_protocol_fragments(legacy: bool) {
    const FRAGMENTS: &[&[u8]] = &[
        b"LIST",
        b"READ",
        b"WRITE",
        b"BYE",
        b",",
        b",",
        b"\n",
        b"\n",
        b"\r\n",
        b"a",
        b"d/e",
        b"..",
        b"/",
        b"\\",
        b"\0",
        b"0",
        b"7",
        b"99999",
        b"-",
        b"\xff",
        b"\xc3\xa9",
        b" ",
        b".ioe-tmp-x",
        b"LIST\n",
        b"READ,a\n",
        b"WRITE,a,5\n",
        b"WRITE,d/e,2\n",
        b"WRITE,f,3",
        b"WRITE,g,1h,4",
    ];
    survives_in_mode(legacy, |addr, root| {
        let mut rng = Rng(42);
        for _ in 0..24 {
            let mut input = Vec::new();
            for _ in 0..1 + rng.below(200) {
                input.extend_from_slice(FRAGMENTS[rng.below(FRAGMENTS.len())]);
            }
            send_all(addr, &input, legacy, &mut rng).read_to_close();
        }
        // the kept file was never named, so it is untouched; whatever else
        // got stored has a name the protocol allows
        assert_eq!(std::fs::read(root.join(KEPT)).unwrap(), KEPT_BODY);
        for entry in walkdir::WalkDir::new(root).min_depth(1) {
            let entry = entry.unwrap();
            let name = entry.path().strip_prefix(root).unwrap().to_str().unwrap();
            assert_eq!(ioe::protocol::validate_name(name), Ok(()), "{name:?}");
        }
    });
}

#[test]
fn random_protocol_fragments_never_break_the_server() {
    random_protocol_fragments(false);
}

#[test]
fn random_protocol_fragments_never_break_a_legacy_server() {
    random_protocol_fragments(true);
}

#[test]
fn a_megabyte_line_without_lf_gets_an_error_and_is_closed() {
    survives(|addr, _| {
        let mut client = Raw::connect(addr);
        let mut writer = client.stream().try_clone().unwrap();
        let sender = thread::spawn(move || {
            // the server stops reading at some point: errors are expected
            let _ = writer.write_all(&vec![b'A'; 1024 * 1024]);
        });
        let reply = client.line();
        assert!(
            reply.starts_with("ERROR: ") && reply.contains("longer than 4096 bytes"),
            "{reply:?}"
        );
        client.expect_closed();
        sender.join().unwrap();
    });
}

#[test]
fn the_line_limit_counts_the_lf() {
    survives(|addr, _| {
        // 4096 bytes with the LF: a request (an unknown one), and the session
        // goes on
        let mut client = Raw::connect(addr);
        let longest = format!("{}\n", "X".repeat(4095));
        client.send(longest.as_bytes());
        let reply = client.line();
        assert!(
            reply.starts_with("ERROR: unknown command `XXX"),
            "{reply:?}"
        );
        assert_eq!(client.read_file(KEPT), KEPT_BODY);
        // one byte more: too long, and closed
        let mut client = Raw::connect(addr);
        client.send(format!("X{longest}").as_bytes());
        assert_eq!(
            client.line(),
            "ERROR: request line longer than 4096 bytes; closing\n"
        );
        client.expect_closed();
    });
}

#[test]
fn invalid_utf8_is_refused_and_the_session_goes_on() {
    survives(|addr, root| {
        let mut client = Raw::connect(addr);
        client.send(b"READ,caf\xe9.txt\n");
        assert_eq!(client.line(), "ERROR: name is not valid UTF-8\n");
        client.send(b"\xc3\x28\xff\n");
        let reply = client.line();
        assert!(reply.starts_with("ERROR: unknown command"), "{reply:?}");
        client.send(b"WRITE,\xff\xfe,5\nhello");
        assert_eq!(client.line(), "ERROR: name is not valid UTF-8\n");
        // the body was skipped: the session is still in step
        assert_eq!(client.read_file(KEPT), KEPT_BODY);
        assert_eq!(std::fs::read_dir(root).unwrap().count(), 1);
    });
}

#[test]
fn unusable_write_sizes_get_an_error_then_close() {
    for size in ["123456789012345678901234567890", "-5", "+5", "12abc", ""] {
        survives(|addr, root| {
            let mut client = Raw::connect(addr);
            client.send(format!("WRITE,sized.bin,{size}\nhello").as_bytes());
            let reply = client.line();
            assert!(
                reply.starts_with("ERROR: WRITE size") && reply.contains("closing"),
                "size {size:?}: {reply:?}"
            );
            client.expect_closed();
            assert!(!root.join("sized.bin").exists());
        });
    }
    for request in ["WRITE\nhello", "WRITE,sized.bin\nhello"] {
        survives(|addr, root| {
            let mut client = Raw::connect(addr);
            client.send(request.as_bytes());
            assert_eq!(
                client.line(),
                "ERROR: WRITE needs a name and a size: WRITE,<name>,<size>; \
                 closing, since the body cannot be skipped\n"
            );
            client.expect_closed();
            assert!(!root.join("sized.bin").exists());
        });
    }
}

#[test]
fn unknown_and_lowercase_commands_are_refused_and_the_session_goes_on() {
    survives(|addr, _| {
        let mut client = Raw::connect(addr);
        for (request, reply) in [
            (
                "REMOVE,kept.txt\n",
                "unknown command `REMOVE` (expected LIST, READ, WRITE or BYE)",
            ),
            (
                "GET kept.txt\n",
                "unknown command `GET kept.txt` (expected LIST, READ, WRITE or BYE)",
            ),
            (
                "list\n",
                "unknown command `list`: commands are upper case (`LIST`)",
            ),
            (
                "read,kept.txt\n",
                "unknown command `read`: commands are upper case (`READ`)",
            ),
            (
                "Bye\n",
                "unknown command `Bye`: commands are upper case (`BYE`)",
            ),
            ("\n", "empty request (expected LIST, READ, WRITE or BYE)"),
            ("\r\n", "empty request (expected LIST, READ, WRITE or BYE)"),
        ] {
            client.send(request.as_bytes());
            assert_eq!(client.line(), format!("ERROR: {reply}\n"), "{request:?}");
        }
        assert_eq!(client.read_file(KEPT), KEPT_BODY);
    });
}

#[test]
fn clients_that_vanish_leave_nothing_behind() {
    survives(|addr, root| {
        // connects and goes
        drop(TcpStream::connect(addr).unwrap());
        // half a request line
        let mut client = Raw::connect(addr);
        client.send(b"REA");
        drop(client);
        // half an upload
        let mut client = Raw::connect(addr);
        client.send(b"WRITE,ghost.bin,1000\n");
        client.send(&[7u8; 400]);
        drop(client);
        // a download abandoned at once
        std::fs::write(root.join("big.bin"), vec![1u8; 4 * 1024 * 1024]).unwrap();
        let mut client = Raw::connect(addr);
        client.send(b"READ,big.bin\n");
        drop(client);
        assert_no_temp_files(root);
        assert!(!root.join("ghost.bin").exists());
    });
}

#[test]
fn clients_that_stall_do_not_hold_up_anyone_else() {
    let server = server_with_kept_file();
    let addr = server.addr();
    let root = server.root();
    let mut watcher = bystander(addr);
    std::fs::write(root.join("big.bin"), vec![1u8; 8 * 1024 * 1024]).unwrap();

    let mut mid_line = Raw::connect(addr);
    mid_line.send(b"READ,kep");
    let mut mid_body = Raw::connect(addr);
    mid_body.send(b"WRITE,stalled.bin,1000\n");
    mid_body.send(&[9u8; 10]);
    let mut not_reading = Raw::connect(addr);
    not_reading.send(b"READ,big.bin\n");
    assert!(
        wait_until(PATIENCE, || !temp_files(root).is_empty()),
        "the stalled upload never began"
    );

    // while all three hang, others are served, and the stalled upload is
    // neither visible nor stored
    assert_eq!(watcher.read_file(KEPT), KEPT_BODY);
    let mut fresh = Raw::connect(addr);
    assert_eq!(fresh.list_names(), ["big.bin", KEPT]);
    assert!(!root.join("stalled.bin").exists());

    // and each stalled session still works once its client goes on
    mid_line.send(b"t.txt\n");
    let size = mid_line.line();
    assert_eq!(size, format!("{}\n", KEPT_BODY.len()));
    assert_eq!(mid_line.bytes(KEPT_BODY.len()), KEPT_BODY);
    mid_body.send(&[9u8; 990]);
    assert_eq!(mid_body.line(), "OK 1000\n");
    assert_eq!(
        std::fs::read(root.join("stalled.bin")).unwrap(),
        [9u8; 1000]
    );
    assert_eq!(not_reading.line(), format!("{}\n", 8 * 1024 * 1024));
    assert!(not_reading.bytes(8 * 1024 * 1024).iter().all(|&b| b == 1));
    assert_still_serving(&server, &mut watcher);
}

/// Writes the kept file into a new temporary root.
fn root_with_kept_file() -> TempDir {
    let root = TempDir::new().unwrap();
    std::fs::write(root.path().join(KEPT), KEPT_BODY).unwrap();
    root
}

#[test]
fn max_connections_refuses_the_extra_client_until_one_leaves() {
    let root = root_with_kept_file();
    let server = ServeProcess::start(root.path(), &["--max-connections", "2"]);
    let mut first = bystander(server.addr());
    let mut second = bystander(server.addr());
    // both in a request (an idle one would give its slot to a newcomer):
    // an upload waiting for the rest of its body
    first.send(b"WRITE,one.bin,10\n12345");
    second.send(b"WRITE,two.bin,10\nabcde");
    assert!(
        wait_until(PATIENCE, || temp_files(root.path()).len() == 2),
        "the uploads never began"
    );

    let mut third = Raw::connect(server.addr());
    let reply = third.line();
    assert!(
        reply.starts_with("ERROR: server busy") && reply.contains("try again later"),
        "{reply:?}"
    );
    third.expect_closed();
    // the client library reports why, and knows the session is over
    let mut session = ioe::Session::connect(&server.addr().to_string()).unwrap();
    let error = session.list(None).unwrap_err();
    assert_eq!(error.kind, ioe::ErrorKind::ConnectionLost, "{error}");
    assert!(error.to_string().contains("server busy"), "{error}");
    assert!(!session.is_open());
    let next = session.list(None).unwrap_err();
    assert_eq!(next.kind, ioe::ErrorKind::NotConnected, "{next}");

    // a crowd of refused clients, more than linger at once, all read why
    let crowd: Vec<Raw> = (0..24).map(|_| Raw::connect(server.addr())).collect();
    for mut refused in crowd {
        assert!(refused.line().starts_with("ERROR: server busy"));
        refused.expect_closed();
    }

    // the refused clients took no slot: both sessions still work
    first.send(b"67890");
    assert_eq!(first.line(), "OK 10\n");
    second.send(b"fghij");
    assert_eq!(second.line(), "OK 10\n");
    assert_eq!(
        std::fs::read(root.path().join("one.bin")).unwrap(),
        b"1234567890"
    );
    assert_eq!(
        std::fs::read(root.path().join("two.bin")).unwrap(),
        b"abcdefghij"
    );
    assert_eq!(first.read_file(KEPT), KEPT_BODY);
    assert_eq!(second.read_file(KEPT), KEPT_BODY);

    first.send(b"BYE\n");
    assert_eq!(first.line(), "OK bye\n");
    first.expect_closed();
    let mut fourth = Raw::connect(server.addr());
    assert_eq!(fourth.read_file(KEPT), KEPT_BODY);
    assert_eq!(second.read_file(KEPT), KEPT_BODY);
}

#[test]
fn idle_connections_are_closed_and_active_ones_are_not() {
    let root = root_with_kept_file();
    let server = ServeProcess::start(root.path(), &["--idle-timeout", "1"]);
    let mut idle = Raw::connect(server.addr());
    let mut idle_session = ioe::Session::connect(&server.addr().to_string()).unwrap();
    let mut stalled_upload = Raw::connect(server.addr());
    stalled_upload.send(b"WRITE,stalled.bin,100\n");
    stalled_upload.send(&[1u8; 10]);
    let mut active = Raw::connect(server.addr());
    let mut slow_upload = Raw::connect(server.addr());
    slow_upload.send(b"WRITE,slow.bin,8\n");

    // for about 2.4 s (over twice the timeout), two clients keep talking,
    // each pause well under the timeout
    for byte in 0..8u8 {
        assert_eq!(active.read_file(KEPT), KEPT_BODY);
        slow_upload.send(&[byte]);
        thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(slow_upload.line(), "OK 8\n");
    assert_eq!(
        std::fs::read(root.path().join("slow.bin")).unwrap(),
        (0..8).collect::<Vec<u8>>()
    );
    assert_eq!(active.read_file(KEPT), KEPT_BODY);

    assert_eq!(idle.line(), "ERROR: idle for 1 s; closing\n");
    idle.expect_closed();
    // the client reads the notice as the reply to its next request, and
    // closes the session rather than sending into a closed connection
    let error = idle_session.list(None).unwrap_err();
    assert_eq!(error.kind, ioe::ErrorKind::ConnectionLost, "{error}");
    assert!(error.to_string().contains("idle for 1 s"), "{error}");
    assert!(!idle_session.is_open());
    // a stalled upload is cut off, told so, and nothing is kept
    assert_eq!(
        stalled_upload.line(),
        "ERROR: upload of `stalled.bin` stalled: nothing arrived for 1 s; \
         nothing was stored; closing\n"
    );
    stalled_upload.expect_closed();
    assert!(!root.path().join("stalled.bin").exists());
    assert_no_temp_files(root.path());
}

#[test]
fn a_client_that_stops_reading_a_download_is_let_go() {
    let root = root_with_kept_file();
    // sparse: more than any socket buffers hold, at no cost on disk
    let big = std::fs::File::create(root.path().join("big.bin")).unwrap();
    big.set_len(256 * 1024 * 1024).unwrap();
    let server = ServeProcess::start(
        root.path(),
        &["--idle-timeout", "1", "--max-connections", "1"],
    );
    let mut stuck = Raw::connect(server.addr());
    stuck.send(b"READ,big.bin\n");
    assert_eq!(stuck.line(), format!("{}\n", 256 * 1024 * 1024));
    // the only slot is taken until the server gives up on the reader
    let mut served = None;
    let freed = wait_until(PATIENCE, || {
        let mut next = Raw::connect(server.addr());
        next.send(b"LIST\n");
        if next.line().starts_with("ERROR: server busy") {
            thread::sleep(Duration::from_millis(100));
            return false;
        }
        served = Some(next);
        true
    });
    assert!(freed, "the stuck download kept its slot");
    let mut served = served.unwrap();
    assert!(served.line().ends_with(",big.bin\n"));
    assert_eq!(served.line().trim_end().rsplit(',').next(), Some(KEPT));
    drop(stuck);
}

#[test]
fn a_request_line_trickling_in_is_cut_off_at_the_idle_timeout() {
    let root = root_with_kept_file();
    let server = ServeProcess::start(root.path(), &["--idle-timeout", "1"]);
    let mut client = Raw::connect(server.addr());
    let mut socket = client.stream().try_clone().unwrap();
    // one byte every 200 ms: never idle for a second, never done either
    let trickle = thread::spawn(move || {
        for byte in b"READ,kept.txt".iter().take(12) {
            if socket.write_all(&[*byte]).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(200));
        }
    });
    assert_eq!(
        client.line(),
        "ERROR: request not complete after 1 s; closing\n"
    );
    client.expect_closed();
    trickle.join().unwrap();
    let mut other = Raw::connect(server.addr());
    assert_eq!(other.read_file(KEPT), KEPT_BODY);
}

#[test]
fn read_only_refuses_uploads_and_keeps_the_session() {
    let root = root_with_kept_file();
    let server = ServeProcess::start(root.path(), &["--read-only"]);
    let mut client = Raw::connect(server.addr());
    assert_eq!(
        client.upload("new.txt", b"hello"),
        "ERROR: server is read-only\n"
    );
    assert_eq!(
        client.upload(KEPT, b"overwritten"),
        "ERROR: server is read-only\n"
    );
    assert_eq!(client.read_file(KEPT), KEPT_BODY);
    assert_eq!(client.list_names(), [KEPT]);
    assert!(!root.path().join("new.txt").exists());
    assert_eq!(std::fs::read(root.path().join(KEPT)).unwrap(), KEPT_BODY);
}

#[test]
fn a_refused_upload_whose_body_stalls_is_closed_with_the_reason() {
    let root = TempDir::new().unwrap();
    let server = ServeProcess::start(root.path(), &["--read-only", "--idle-timeout", "1"]);
    let mut client = Raw::connect(server.addr());
    client.send(b"WRITE,new.txt,100\n");
    client.send(&[1u8; 10]);
    assert_eq!(
        client.line(),
        "ERROR: server is read-only; closing, since the upload's body stopped \
         arriving for 1 s\n"
    );
    client.expect_closed();
}

#[test]
fn max_size_refuses_larger_uploads_and_keeps_the_session() {
    let root = TempDir::new().unwrap();
    let server = ServeProcess::start(root.path(), &["--max-size", "10"]);
    let mut client = Raw::connect(server.addr());
    let reply = client.upload("eleven.txt", b"eleven byte");
    assert_eq!(
        reply,
        "ERROR: `eleven.txt` is 11 bytes, over the server's limit of 10\n"
    );
    // a large refused body is read and thrown away, not taken for requests
    let mut huge = vec![b'x'; 2 * 1024 * 1024];
    huge.extend_from_slice(b"\nLIST\n");
    let reply = client.upload("huge.txt", &huge);
    assert!(reply.contains("over the server's limit of 10"), "{reply:?}");
    assert_eq!(client.upload("ten.txt", b"ten bytes!"), "OK 10\n");
    assert_eq!(client.read_file("ten.txt"), b"ten bytes!");
    assert_eq!(client.list_names(), ["ten.txt"]);
}

#[test]
fn max_size_takes_a_size_with_a_unit() {
    let root = TempDir::new().unwrap();
    let server = ServeProcess::start(root.path(), &["--max-size", "10K"]);
    let mut client = Raw::connect(server.addr());
    let reply = client.upload("eleven.bin", &vec![b'x'; 11 * 1024]);
    assert_eq!(
        reply,
        "ERROR: `eleven.bin` is 11264 bytes, over the server's limit of 10240\n"
    );
    assert_eq!(
        client.upload("ten.bin", &vec![b'y'; 10 * 1024]),
        "OK 10240\n"
    );
    assert_eq!(client.read_file("ten.bin"), vec![b'y'; 10 * 1024]);
    assert_eq!(client.list_names(), ["ten.bin"]);
}

#[test]
fn max_size_that_is_not_a_size_is_refused_at_start() {
    let root = TempDir::new().unwrap();
    let run = run_ioe(
        root.path(),
        &["serve", "--listen", "127.0.0.1:0", "--max-size", "10X"],
        "",
    );
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains(
            "invalid value '10X' for '--max-size <SIZE>': `10X` is not a size: write a \
             number of bytes, optionally with a unit K, M, G or T (powers of 1024), \
             such as 512, 10M or 1.5G"
        ),
        "{}",
        run.stderr
    );
}

/// Once the server has told an idle client it is stopping, it has closed
/// its listener: a new connection is refused, not queued or served.
fn assert_stopped_accepting(idle: &mut Raw, addr: SocketAddr) {
    assert_eq!(idle.line(), "ERROR: server is shutting down; closing\n");
    idle.expect_closed();
    let refused = TcpStream::connect(addr).expect_err("connected while stopping");
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused, "{refused}");
}

/// The stopping server exits with status 0, closing `cut_off`, whose
/// upload of `name` leaves neither the file nor a temporary file.
fn assert_exits_leaving_nothing_of(
    server: &mut ServeProcess,
    cut_off: &mut Raw,
    root: &Path,
    name: &str,
) {
    let status = server.wait_exit(PATIENCE).expect("server exits");
    assert_eq!(status.code(), Some(0));
    cut_off.read_to_close();
    assert!(!root.join(name).exists());
    assert_eq!(temp_files(root), Vec::<PathBuf>::new());
}

#[test]
fn sigterm_finishes_uploads_in_flight_then_exits_cleanly() {
    let root = root_with_kept_file();
    let mut server = ServeProcess::start(root.path(), &[]);
    let addr = server.addr();
    let mut idle = bystander(addr);
    let mut finishing = Raw::connect(addr);
    finishing.send(b"WRITE,finished.bin,2000\n");
    finishing.send(&[5u8; 1000]);
    let mut abandoned = Raw::connect(addr);
    abandoned.send(b"WRITE,abandoned.bin,2000\n");
    abandoned.send(&[6u8; 1000]);
    assert!(
        wait_until(PATIENCE, || temp_files(root.path()).len() == 2),
        "the uploads never began"
    );

    server.signal("TERM");
    // the idle client is let go at once, and told why
    assert_stopped_accepting(&mut idle, addr);
    // an upload that completes within the grace period is stored
    finishing.send(&[5u8; 1000]);
    assert_eq!(finishing.line(), "OK 2000\n");
    assert_eq!(
        finishing.line(),
        "ERROR: server is shutting down; closing\n"
    );
    finishing.expect_closed();
    assert_eq!(
        std::fs::read(root.path().join("finished.bin")).unwrap(),
        [5u8; 2000]
    );
    // one that does not is cut off at the end of it and leaves nothing
    assert_exits_leaving_nothing_of(&mut server, &mut abandoned, root.path(), "abandoned.bin");
}

#[test]
fn a_second_signal_ends_the_grace_period_at_once() {
    let root = root_with_kept_file();
    let mut server = ServeProcess::start(root.path(), &["--grace", "3600"]);
    let mut idle = bystander(server.addr());
    let mut stalled = Raw::connect(server.addr());
    stalled.send(b"WRITE,stalled.bin,2000\n");
    stalled.send(&[1u8; 100]);
    assert!(
        wait_until(PATIENCE, || temp_files(root.path()).len() == 1),
        "the upload never began"
    );
    server.signal("TERM");
    assert_stopped_accepting(&mut idle, server.addr());
    server.signal("INT");
    assert_exits_leaving_nothing_of(&mut server, &mut stalled, root.path(), "stalled.bin");
}

#[test]
fn sigint_stops_the_server_with_status_zero() {
    let root = root_with_kept_file();
    let mut server = ServeProcess::start(root.path(), &[]);
    let mut client = bystander(server.addr());
    server.signal("INT");
    assert_eq!(client.line(), "ERROR: server is shutting down; closing\n");
    client.expect_closed();
    let status = server.wait_exit(PATIENCE).expect("server exits");
    assert_eq!(status.code(), Some(0));
    let refused = TcpStream::connect(server.addr()).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
}

#[test]
fn limits_of_zero_are_refused_on_the_command_line() {
    let root = TempDir::new().unwrap();
    let root_arg = root.path().to_str().expect("a UTF-8 temporary path");
    for flag in ["--max-connections", "--idle-timeout"] {
        let args = [
            "serve",
            "--listen",
            "127.0.0.1:0",
            flag,
            "0",
            "--root",
            root_arg,
        ];
        let run = run_ioe(root.path(), &args, "");
        assert_eq!(run.code, Some(2), "{flag} 0: {run:?}");
        assert!(run.stderr.contains(flag), "{flag} 0: {}", run.stderr);
    }
}

#[test]
fn the_longest_idle_timeout_still_serves() {
    let root = root_with_kept_file();
    let server = ServeProcess::start(root.path(), &["--idle-timeout", &u64::MAX.to_string()]);
    let mut client = Raw::connect(server.addr());
    assert_eq!(client.read_file(KEPT), KEPT_BODY);
    client.send(b"LIST");
    client.expect_silence(Duration::from_millis(100));
    client.send(b"\n");
    assert_eq!(client.line(), "OK 1\n");
}

#[test]
fn a_failure_to_start_keeps_its_status_when_stderr_is_closed() {
    // `ioe serve … 2>&1 | head -0`: nobody reads why it failed, but a
    // supervisor still sees status 1, not a panic's 101
    let outer = TempDir::new().unwrap();
    let missing = outer.path().join("missing");
    let missing = missing.to_str().expect("a UTF-8 temporary path");
    let mut child = spawn_ioe(
        outer.path(),
        &["serve", "--listen", "127.0.0.1:0", "--root", missing],
    );
    drop(child.0.stderr.take());
    let feeder = thread::spawn(|| {});

    let run = finish(child, feeder);

    assert_eq!(run.code, Some(1), "{run:?}");
}

#[test]
fn a_port_in_use_is_refused_with_what_to_do() {
    let root = TempDir::new().unwrap();
    let root_arg = root.path().to_str().expect("a UTF-8 temporary path");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let run = run_ioe(
        root.path(),
        &["serve", "--listen", &addr, "--root", root_arg],
        "",
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr
            .contains(&format!("cannot serve `{root_arg}` on {addr}"))
            && run.stderr.contains("is another server running there?"),
        "{}",
        run.stderr
    );
}

#[test]
fn listen_on_a_host_alone_uses_port_7070() {
    let root = TempDir::new().unwrap();
    let root_arg = root.path().to_str().expect("a UTF-8 temporary path");
    // held here (or by someone else), so `ioe serve` cannot take it either
    // way and says which address it tried
    let _taken = std::net::TcpListener::bind("127.0.0.1:7070");
    let run = run_ioe(
        root.path(),
        &["serve", "--listen", "127.0.0.1", "--root", root_arg],
        "",
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr
            .contains(&format!("cannot serve `{root_arg}` on 127.0.0.1:7070"))
            && run.stderr.contains("is another server running there?"),
        "{}",
        run.stderr
    );
    // a port that is not one is a command-line error
    let run = run_ioe(
        root.path(),
        &["serve", "--listen", "127.0.0.1:http", "--root", root_arg],
        "",
    );
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr
            .contains("port `http` is not a number from 0 to 65535"),
        "{}",
        run.stderr
    );
}
