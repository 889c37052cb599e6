//! The client against a hostile or broken server, played by fake servers on
//! 127.0.0.1: a listing that never ends, a download that cannot be stored
//! while the server streams without end, reply lines trickled a byte at a
//! time. The client must give up within its limits, close the session and
//! keep nothing partial.

mod common;

use common::{Child, TestServer, finish, pseudo_random, put, temp_files};
use ioe::session::{DRAIN_LIMIT, MAX_LISTING};
use ioe::{ErrorKind, Session};
use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How long a fake server keeps streaming at most, and how long it waits
/// for a request.
const SERVER_LIMIT: Duration = Duration::from_secs(20);

/// The largest number IOE/1 allows, announced as a count or a size.
const HUGE: u64 = i64::MAX as u64;

/// A fake server on 127.0.0.1 that serves `connections` connections in
/// turn, each with `serve` (given the connection's number, from 0, a
/// reader of its requests and the stream to answer on). Returns its
/// address and what `serve` returned for each.
fn fake_server<T: Send + 'static>(
    connections: usize,
    serve: impl Fn(usize, &mut BufReader<TcpStream>, &mut TcpStream) -> T + Send + 'static,
) -> (String, thread::JoinHandle<Vec<T>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let thread = thread::spawn(move || {
        (0..connections)
            .map(|i| {
                let (stream, _) = listener.accept().unwrap();
                stream.set_read_timeout(Some(SERVER_LIMIT)).unwrap();
                stream.set_write_timeout(Some(SERVER_LIMIT)).unwrap();
                let mut writer = stream.try_clone().unwrap();
                serve(i, &mut BufReader::new(stream), &mut writer)
            })
            .collect()
    });
    (addr, thread)
}

/// The next IOE/1 request line (see [`common::plain_request`]).
fn request(reader: &mut BufReader<TcpStream>, writer: &mut TcpStream) -> String {
    common::plain_request(reader, writer)
}

/// Writes `piece` over and over until the client stops taking it, `limit`
/// bytes went out, or [`SERVER_LIMIT`] passed. Returns how many bytes went
/// out and whether the client hung up.
fn stream_until_hangup(writer: &mut TcpStream, piece: &[u8], limit: u64) -> (u64, bool) {
    let start = Instant::now();
    let mut sent = 0;
    while sent < limit && start.elapsed() < SERVER_LIMIT {
        if writer.write_all(piece).is_err() {
            return (sent, true);
        }
        sent += piece.len() as u64;
    }
    (sent, false)
}

#[test]
fn a_listing_announcing_more_entries_than_the_limit_is_refused_before_reading_them() {
    // announces 2^63 - 1 entries and streams them for as long as it can
    let (addr, fake) = fake_server(1, |_, reader, writer| {
        assert_eq!(request(reader, writer), "LIST\n");
        writer.write_all(format!("OK {HUGE}\n").as_bytes()).unwrap();
        // twice the default limit: a client that reads them all fails too
        let lines = 2 * MAX_LISTING;
        let (_, hung_up) = stream_until_hangup(writer, b"f,1,0,entry\n", lines * 12);
        hung_up
    });
    let mut session = Session::connect(&addr).unwrap();
    let e = session.list(None).unwrap_err();
    assert_eq!(e.kind, ErrorKind::ConnectionLost, "{e}");
    assert_eq!(
        e.to_string(),
        format!(
            "list: server {addr} announced {HUGE} entries, more than the 1000000 one listing \
             may hold; the session was closed (a program using the ioe library can raise the \
             limit with Session::set_max_listing)"
        )
    );
    assert!(!session.is_open());
    assert_eq!(fake.join().unwrap(), [true], "the client hung up");
}

#[test]
fn a_listing_streaming_past_a_configured_limit_is_refused_and_one_at_the_limit_is_taken() {
    let (addr, fake) = fake_server(2, |i, reader, writer| {
        let dir = request(reader, writer);
        // the first announces (and sends) 1000 entries, the second 10
        let count = if i == 0 { 1000 } else { 10 };
        let mut reply = format!("OK {count}\n");
        for n in 0..count {
            reply.push_str(&format!("f,{n},0,dir/{n:04}\n"));
        }
        let _ = writer.write_all(reply.as_bytes());
        // the next request: the second client's `bye`
        (dir, request(reader, writer))
    });
    let mut session = Session::connect(&addr).unwrap();
    session.set_max_listing(10);
    let e = session.list(Some("dir")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::ConnectionLost, "{e}");
    assert!(
        e.to_string().starts_with(&format!(
            "list `dir`: server {addr} announced 1000 entries, more than the 10 one listing may \
             hold; the session was closed"
        )),
        "{e}"
    );
    assert!(!session.is_open());

    let mut session = Session::connect(&addr).unwrap();
    session.set_max_listing(10);
    let entries = session.list(Some("dir")).unwrap();
    let names: Vec<String> = entries.iter().map(|e| e.name.clone()).collect();
    assert_eq!(
        names,
        (0..10).map(|n| format!("dir/{n:04}")).collect::<Vec<_>>()
    );
    session.bye().unwrap();
    assert_eq!(
        fake.join().unwrap(),
        [
            ("LIST,dir\n".to_string(), String::new()),
            ("LIST,dir\n".to_string(), "BYE\n".to_string()),
        ]
    );
}

#[test]
fn a_big_download_that_cannot_be_stored_closes_the_session_instead_of_draining() {
    // the temporary file cannot be made (a file where the folder should
    // be): with more than DRAIN_LIMIT bytes to come the body is not read
    let server = TestServer::start();
    let size = 2 * DRAIN_LIMIT as usize + 3;
    put(server.root(), "big.bin", &pseudo_random(5, size));
    let local = TempDir::new().unwrap();
    let blocker = put(local.path(), "blocker", b"a file where a folder is needed");
    let mut session = server.session();
    let e = session.read("big.bin", &blocker.join("x.bin")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::LocalIo, "{e}");
    let text = e.to_string();
    assert!(text.contains("blocker/x.bin"), "{text}");
    assert!(
        text.ends_with(&format!(
            "; the session was closed rather than read the {size} bytes still to come \
             (connect again to go on)"
        )),
        "{text}"
    );
    assert!(!session.is_open());
    assert_eq!(temp_files(local.path()), Vec::<PathBuf>::new());
}

/// A Rhai script that downloads each name into `dl/` on a session with
/// `addr`, printing what happened to each and whether the session is open.
fn download_script(addr: &str, names: &[&str]) -> String {
    let names: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    format!(
        r#"let s = connect("{addr}");
for name in [{}] {{
    try {{ s.read(name, "dl/" + name); print(name + ": stored"); }}
    catch (e) {{ print(name + ": " + e.kind + ": " + e.message); }}
    print("open: " + s.is_open);
}}"#,
        names.join(", ")
    )
}

#[test]
fn a_download_whose_local_writes_fail_drains_a_little_then_closes_the_session() {
    // a small body is drained to keep the session; a body announced as
    // 2^63 - 1 bytes makes the client give up and close the session
    let small = pseudo_random(9, 600 * 1024);
    let body = small.clone();
    let (addr, fake) = fake_server(1, move |_, reader, writer| {
        let mut huge_sent = None;
        loop {
            let request = request(reader, writer);
            if request == "READ,small.bin\n" {
                writer
                    .write_all(format!("{}\n", body.len()).as_bytes())
                    .unwrap();
                writer.write_all(&body).unwrap();
            } else if request == "READ,huge.bin\n" {
                writer.write_all(format!("{HUGE}\n").as_bytes()).unwrap();
                // a client that drains it all fails too, at the end
                huge_sent = Some(stream_until_hangup(writer, &[0; 64 * 1024], 1 << 30));
            } else {
                return huge_sent;
            }
        }
    });
    let local = TempDir::new().unwrap();
    std::fs::create_dir(local.path().join("dl")).unwrap();
    let script = download_script(&addr, &["small.bin", "huge.bin"]);
    // local writes past 100 blocks fail with EFBIG (`ioe` ignores SIGXFSZ,
    // which would otherwise kill it and leave its temporary file)
    let child = std::process::Command::new("sh")
        .args([
            "-c",
            r#"ulimit -f 100 && exec "$0" "$@""#,
            env!("CARGO_BIN_EXE_ioe"),
            "run",
            "-e",
            &script,
        ])
        .current_dir(local.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let run = finish(Child(child), thread::spawn(|| {}));
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{run:?}");
    assert!(
        lines[0]
            .starts_with("small.bin: local_io: read `small.bin`: `dl/small.bin`: File too large"),
        "{run:?}"
    );
    assert_eq!(lines[1], "open: true", "{run:?}");
    assert!(
        lines[2].starts_with("huge.bin: local_io: read `huge.bin`: `dl/huge.bin`: File too large"),
        "{run:?}"
    );
    assert!(
        lines[2].contains("; the session was closed rather than read the "),
        "{run:?}"
    );
    assert_eq!(lines[3], "open: false", "{run:?}");
    assert_eq!(run.code, Some(0), "{run:?}");
    // nothing partial is left, not even a temporary file
    let left: Vec<_> = std::fs::read_dir(local.path().join("dl"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let (sent, hung_up) = fake.join().unwrap()[0].expect("huge.bin was asked for");
    assert!(
        hung_up,
        "the client drained {sent} bytes without hanging up"
    );
    // what the client read, plus what the socket buffers hold
    assert!(sent < 64 << 20, "the client took {sent} bytes");
}

/// Serves one request with a reply whose last line is trickled one byte
/// every 25 ms for 10 s at most (or until the client hangs up). Returns
/// whether the client hung up.
fn trickle_reply(reader: &mut BufReader<TcpStream>, writer: &mut TcpStream) -> bool {
    let request = request(reader, writer);
    let (at_once, trickled) = if request.starts_with("LIST,entries") {
        ("OK 1\n".to_string(), format!("f,1,0,{}\n", "a".repeat(400)))
    } else {
        if request.starts_with("WRITE,") {
            let size = request.trim_end().rsplit(',').next().unwrap();
            let mut body = vec![0; size.parse().unwrap()];
            reader.read_exact(&mut body).unwrap();
        }
        (String::new(), format!("ERROR: {}\n", "x".repeat(400)))
    };
    writer.write_all(at_once.as_bytes()).unwrap();
    for byte in trickled.as_bytes() {
        if writer.write_all(&[*byte]).is_err() {
            return true;
        }
        thread::sleep(Duration::from_millis(25));
    }
    // a client that read the whole line and stays gets nothing more
    let mut rest = [0; 64];
    matches!(reader.read(&mut rest), Ok(0) | Err(_))
}

#[test]
fn a_reply_line_trickled_a_byte_at_a_time_fails_within_the_timeout() {
    let local = TempDir::new().unwrap();
    let source = put(local.path(), "source", b"abc");
    let target = local.path().join("got");
    let timeout = Duration::from_millis(300);
    for op in [
        "list status",
        "list entry",
        "read size",
        "write confirmation",
    ] {
        let (addr, fake) = fake_server(1, |_, reader, writer| trickle_reply(reader, writer));
        let mut session = Session::connect_within(&addr, timeout, timeout).unwrap();
        let start = Instant::now();
        let result = match op {
            "list status" => session.list(Some("status")).map(drop),
            "list entry" => session.list(Some("entries")).map(drop),
            "read size" => session.read("file", &target).map(drop),
            _ => session.write(&source, "file").map(drop),
        };
        let waited = start.elapsed();
        let e = result.unwrap_err();
        assert_eq!(e.kind, ErrorKind::ConnectionLost, "{op}: {e}");
        assert!(
            e.to_string()
                .contains("lost: the server sent no whole reply line within 300 ms"),
            "{op}: {e}"
        );
        // a generous bound: the trickle alone would take 10 s
        assert!(waited < Duration::from_secs(5), "{op}: waited {waited:?}");
        assert!(!session.is_open(), "{op}");
        assert_eq!(fake.join().unwrap(), [true], "{op}: the client hung up");
        assert!(!target.exists(), "{op}");
        assert_eq!(temp_files(local.path()), Vec::<PathBuf>::new(), "{op}");
    }
}

#[test]
fn a_slow_reply_line_does_not_shorten_the_stall_limit_for_the_body() {
    // the size line's last read starts 1.4 s into the 2 s allowed for the
    // line; the body's pieces then come 1.2 s apart, each within the 2 s
    // stall limit, which applies to each read of a body
    let (addr, fake) = fake_server(1, |_, reader, writer| {
        assert_eq!(request(reader, writer), "READ,slow.bin\n");
        for (byte, pause) in [(b'1', 1400), (b'2', 100), (b'\n', 0)] {
            writer.write_all(&[byte]).unwrap();
            thread::sleep(Duration::from_millis(pause));
        }
        for piece in [b"abcd", b"efgh", b"ijkl"] {
            thread::sleep(Duration::from_millis(1200));
            writer.write_all(piece).unwrap();
        }
        request(reader, writer)
    });
    let local = TempDir::new().unwrap();
    let target = local.path().join("slow.bin");
    let timeout = Duration::from_secs(2);
    let mut session = Session::connect_within(&addr, timeout, timeout).unwrap();
    assert_eq!(session.read("slow.bin", &target).unwrap(), 12);
    assert_eq!(std::fs::read(&target).unwrap(), b"abcdefghijkl");
    drop(session);
    assert_eq!(fake.join().unwrap(), ["BYE\n"]);
}
