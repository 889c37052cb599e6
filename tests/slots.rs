//! Connection slots nobody can hold forever: a transfer below `--min-rate`
//! over `--rate-window` is cut (and an upload told why), a client at or
//! above it never is; when every slot is taken, a new client takes the slot
//! of the connection idle longest, and is told the server is busy only when
//! every connection is in a request (docs/protocol.md).

mod common;

use common::{Raw, ServeProcess, TestServer, assert_no_temp_files, temp_files, wait_until};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How long a test waits for a condition.
const PATIENCE: Duration = Duration::from_secs(10);

/// Sends `header`, then `piece` bytes of `byte` every `pause`, at most
/// `pieces` times, until the server stops taking them or `stop` is set.
fn trickle(
    addr: SocketAddr,
    header: &str,
    piece: usize,
    pause: Duration,
    pieces: usize,
) -> (Raw, Arc<AtomicBool>, thread::JoinHandle<()>) {
    let client = Raw::connect(addr);
    let mut socket = client.stream().try_clone().unwrap();
    socket.write_all(header.as_bytes()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    let thread = thread::spawn(move || {
        for _ in 0..pieces {
            if stopped.load(Ordering::SeqCst) || socket.write_all(&vec![7u8; piece]).is_err() {
                return;
            }
            thread::sleep(pause);
        }
    });
    (client, stop, thread)
}

#[test]
fn a_trickling_upload_is_cut_with_the_reason_while_a_fast_one_completes() {
    let root = TempDir::new().unwrap();
    let server = ServeProcess::start(
        root.path(),
        &[
            "--min-rate",
            "1000",
            "--rate-window",
            "1",
            "--idle-timeout",
            "30",
        ],
    );
    // 100 bytes/s, never silent for long: only the rate gives it away
    let (mut slow, stop, sender) = trickle(
        server.addr(),
        "WRITE,slow.bin,100000\n",
        10,
        Duration::from_millis(100),
        150,
    );
    let mut fast = Raw::connect(server.addr());
    let body = common::pseudo_random(1, 4 * 1024 * 1024);
    assert_eq!(fast.upload("fast.bin", &body), "OK 4194304\n");

    let reply = slow.line();
    assert!(
        reply.starts_with("ERROR: upload of `slow.bin` too slow: ")
            && reply.ends_with(
                " s, under the server's minimum of 1000 bytes/s averaged over 1 s; \
                 nothing was stored; closing\n"
            ),
        "{reply:?}"
    );
    assert!(ioe::protocol::announces_close(
        reply.trim_end().trim_start_matches("ERROR: ")
    ));
    slow.read_to_close();
    stop.store(true, Ordering::SeqCst);
    sender.join().unwrap();
    assert!(!root.path().join("slow.bin").exists());
    assert_eq!(std::fs::read(root.path().join("fast.bin")).unwrap(), body);
    assert_no_temp_files(root.path());
    // the fast client's session goes on
    assert_eq!(fast.read_file("fast.bin"), body);
}

#[test]
fn a_refused_upload_trickling_its_body_is_cut_too() {
    let server = TestServer::start_with(|config| {
        config.read_only = true;
        config.min_rate = 1000;
        config.rate_window = Duration::from_secs(1);
    });
    let (mut slow, stop, sender) = trickle(
        server.addr(),
        "WRITE,slow.bin,100000\n",
        10,
        Duration::from_millis(100),
        150,
    );
    let reply = slow.line();
    assert!(
        reply.starts_with(
            "ERROR: server is read-only; closing, since the upload's body came in too slowly ("
        ) && reply.ends_with("averaged over 1 s)\n"),
        "{reply:?}"
    );
    slow.read_to_close();
    stop.store(true, Ordering::SeqCst);
    sender.join().unwrap();
}

#[test]
fn a_floor_of_zero_cuts_nothing() {
    let root = TempDir::new().unwrap();
    let server = ServeProcess::start(
        root.path(),
        &[
            "--min-rate",
            "0",
            "--rate-window",
            "1",
            "--idle-timeout",
            "30",
        ],
    );
    // 100 bytes/s for over two windows
    let (mut slow, _stop, sender) = trickle(
        server.addr(),
        "WRITE,slow.bin,250\n",
        10,
        Duration::from_millis(100),
        25,
    );
    sender.join().unwrap();
    assert_eq!(slow.line(), "OK 250\n");
    assert_eq!(
        std::fs::read(root.path().join("slow.bin")).unwrap(),
        [7u8; 250]
    );
}

#[test]
fn a_download_read_too_slowly_is_cut_and_its_slot_freed() {
    let root = TempDir::new().unwrap();
    // sparse: more than any socket buffers hold, at no cost on disk
    let size: u64 = 256 * 1024 * 1024;
    std::fs::File::create(root.path().join("big.bin"))
        .unwrap()
        .set_len(size)
        .unwrap();
    let server = ServeProcess::start_logging(
        root.path(),
        &[
            "--min-rate",
            "200000",
            "--rate-window",
            "1",
            "--max-connections",
            "1",
            "--idle-timeout",
            "30",
        ],
    );
    // about 20 KB/s, a read every 50 ms: never stalled, far below the floor
    let mut reader = TcpStream::connect(server.addr()).unwrap();
    reader.write_all(b"READ,big.bin\n").unwrap();
    reader
        .set_read_timeout(Some(common::REPLY_TIMEOUT))
        .unwrap();
    // the download has begun once its size line is here
    let mut status = Vec::new();
    let mut byte = [0u8; 1];
    while !status.ends_with(b"\n") && status.len() < 20 {
        reader.read_exact(&mut byte).unwrap();
        status.push(byte[0]);
    }
    assert_eq!(status, format!("{size}\n").as_bytes());
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    let slow_reader = thread::spawn(move || {
        let mut received = 0u64;
        let mut piece = [0u8; 1024];
        for _ in 0..400 {
            if stopped.load(Ordering::SeqCst) {
                break;
            }
            match reader.read(&mut piece) {
                Ok(0) | Err(_) => break,
                Ok(n) => received += n as u64,
            }
            thread::sleep(Duration::from_millis(50));
        }
        (reader, received)
    });

    // the only slot is taken until the server gives up on the reader
    let freed = wait_until(PATIENCE, || {
        let mut next = Raw::connect(server.addr());
        next.send(b"LIST\n");
        let served = next.line().starts_with("OK ");
        if !served {
            thread::sleep(Duration::from_millis(100));
        }
        served
    });
    assert!(freed, "the slow download kept its slot");
    let log = server.wait_for_log(&["READ big.bin -> not finished: the client read too slowly"]);
    assert!(
        log.contains("under the server's minimum of 200000 bytes/s averaged over 1 s; closing"),
        "{log}"
    );
    stop.store(true, Ordering::SeqCst);
    let (mut reader, mut received) = slow_reader.join().unwrap();
    // what the socket buffers still hold arrives, then the connection ends
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
    received += rest.len() as u64;
    assert!(received < size, "the whole file went through");
}

#[test]
fn a_client_just_above_the_floor_is_never_cut() {
    let server = TestServer::start_with(|config| {
        config.min_rate = 1000;
        config.rate_window = Duration::from_secs(1);
    });
    // 1500 bytes/s in pieces every 100 ms, for over 4 windows
    let mut client = Raw::connect(server.addr());
    client.send(b"WRITE,steady.bin,6750\n");
    let started = Instant::now();
    for _ in 0..45 {
        client.send(&[5u8; 150]);
        thread::sleep(Duration::from_millis(100));
    }
    assert!(started.elapsed() >= Duration::from_secs(4));
    assert_eq!(client.line(), "OK 6750\n");
    assert_eq!(
        std::fs::read(server.root().join("steady.bin")).unwrap(),
        [5u8; 6750]
    );
    assert_eq!(client.read_file("steady.bin"), [5u8; 6750]);
}

#[test]
fn a_download_read_steadily_above_the_floor_is_never_cut() {
    let root = TempDir::new().unwrap();
    let size: u64 = 256 * 1024 * 1024;
    std::fs::File::create(root.path().join("big.bin"))
        .unwrap()
        .set_len(size)
        .unwrap();
    let server = ServeProcess::start_logging(
        root.path(),
        &[
            "--min-rate",
            "50000",
            "--rate-window",
            "2",
            "--idle-timeout",
            "30",
        ],
    );
    let mut reader = TcpStream::connect(server.addr()).unwrap();
    reader.write_all(b"READ,big.bin\n").unwrap();
    reader
        .set_read_timeout(Some(common::REPLY_TIMEOUT))
        .unwrap();
    // about 200 KB/s, four times the floor, for over 2 windows once the
    // socket buffers are full. (On loopback the reader's kernel opens its
    // window in steps of about 90 KiB: the floor leaves room for them.)
    let started = Instant::now();
    let mut piece = vec![0u8; 20_000];
    let mut received = 0;
    while started.elapsed() < Duration::from_millis(5500) {
        let n = reader.read(&mut piece).unwrap();
        assert!(n > 0, "the server closed the download");
        received += n;
        thread::sleep(Duration::from_millis(100));
    }
    assert!((received as u64) < size);
    // the server ends the download only because the client leaves
    drop(reader);
    let line = server.wait_for_log(&["READ big.bin -> not finished"]);
    assert!(line.contains("the client closed the connection"), "{line}");
}

/// A new client served once, then left idle. A connection whose client
/// just read its reply may still be ending its request on the server for a
/// moment: a refusal as busy is retried (bounded).
fn newcomer(addr: SocketAddr) -> Raw {
    let mut served = None;
    let in_time = wait_until(PATIENCE, || {
        let mut client = Raw::connect(addr);
        client.send(b"LIST\n");
        let status = client.line();
        if status.starts_with("ERROR: server busy") {
            return false;
        }
        assert!(status.starts_with("OK "), "{status:?}");
        let count: usize = status[3..].trim_end().parse().unwrap();
        for _ in 0..count {
            client.line();
        }
        served = Some(client);
        true
    });
    assert!(in_time, "the new client was never served");
    served.unwrap()
}

/// Asserts that `client` got the notice that its slot went to a newcomer,
/// and was closed.
fn assert_evicted(client: &mut Raw) {
    let notice = client.line();
    assert!(
        notice.starts_with("ERROR: idle for ")
            && notice.ends_with(" s, slot given to a new client; closing\n"),
        "{notice:?}"
    );
    client.expect_closed();
}

#[test]
fn a_new_client_takes_the_slot_of_the_one_idle_longest() {
    let root = TempDir::new().unwrap();
    let server = ServeProcess::start(root.path(), &["--max-connections", "2"]);
    let mut first = newcomer(server.addr());
    thread::sleep(Duration::from_millis(50));
    let mut second = ioe::Session::connect(&server.addr().to_string()).unwrap();
    assert!(second.list(None).unwrap().is_empty());

    // the third is served; the first, idle longest, is told and closed
    let mut third = newcomer(server.addr());
    assert_evicted(&mut first);
    thread::sleep(Duration::from_millis(50));
    assert!(second.list(None).unwrap().is_empty());

    // the fourth takes the slot of the third (the second worked since):
    // a client reads the notice as why its session ended
    thread::sleep(Duration::from_millis(50));
    let mut fourth = newcomer(server.addr());
    assert_evicted(&mut third);
    thread::sleep(Duration::from_millis(50));
    assert!(second.list(None).unwrap().is_empty());
    thread::sleep(Duration::from_millis(50));
    fourth.send(b"LIST\n");
    assert_eq!(fourth.line(), "OK 0\n");
    thread::sleep(Duration::from_millis(50));
    let _fifth = newcomer(server.addr());
    let error = second.list(None).unwrap_err();
    assert_eq!(error.kind, ioe::ErrorKind::ConnectionLost, "{error}");
    assert!(
        error
            .to_string()
            .contains("slot given to a new client; closing"),
        "{error}"
    );
    assert!(!second.is_open());
    assert_eq!(fourth.list_names(), Vec::<String>::new());
}

#[test]
fn a_new_client_is_told_busy_only_while_every_slot_is_in_a_request() {
    let root = TempDir::new().unwrap();
    let server = ServeProcess::start(
        root.path(),
        &["--max-connections", "2", "--idle-timeout", "30"],
    );
    // both slots in an upload, each waiting for the rest of its body
    let mut a = Raw::connect(server.addr());
    a.send(b"WRITE,a.bin,1000\n");
    a.send(&[1u8; 10]);
    let mut b = Raw::connect(server.addr());
    b.send(b"WRITE,b.bin,1000\n");
    b.send(&[2u8; 10]);
    assert!(
        wait_until(PATIENCE, || temp_files(root.path()).len() == 2),
        "the uploads never began"
    );

    let mut refused = Raw::connect(server.addr());
    let reply = refused.line();
    assert!(
        reply.starts_with("ERROR: server busy (2 connections open); closing"),
        "{reply:?}"
    );
    refused.expect_closed();

    // once an upload is done its connection is idle: a newcomer takes it,
    // and the upload in flight is left alone
    a.send(&[1u8; 990]);
    assert_eq!(a.line(), "OK 1000\n");
    let mut newcomer = newcomer(server.addr());
    assert_evicted(&mut a);
    b.send(&[2u8; 990]);
    assert_eq!(b.line(), "OK 1000\n");
    assert_eq!(
        std::fs::read(root.path().join("a.bin")).unwrap(),
        [1u8; 1000]
    );
    assert_eq!(
        std::fs::read(root.path().join("b.bin")).unwrap(),
        [2u8; 1000]
    );
    assert_eq!(newcomer.list_names(), ["a.bin", "b.bin"]);
}
