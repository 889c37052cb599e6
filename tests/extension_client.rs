//! The client's extension calls (`Session::features`, `stat`, `exists`,
//! `walk`, `hash`, `mkdir`, `delete`, `set_mtime`) against a real server,
//! and against a plain IOE/1 server that has none of them.

mod common;

use common::{TestServer, mtime, put};
use ioe::digest::Algorithm;
use ioe::protocol::EntryKind;
use ioe::{ErrorKind, Session};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::thread;
use std::time::Duration;

#[test]
fn every_extension_call_does_what_it_says() {
    let server = TestServer::start_with(|c| c.max_size = Some(1 << 20));
    let root = server.root();
    put(root, "docs/a, 1.txt", b"hello\n");
    put(root, "docs/sub/b.txt", b"b");
    let mut s = server.session();

    let features = s.features().unwrap();
    assert!(features.stat && features.walk && features.range && features.mkdir);
    assert_eq!(features.hash, ["blake3", "sha256"]);
    assert_eq!(
        (features.read_only, features.max_size),
        (false, Some(1 << 20))
    );

    let entry = s.stat("docs/a, 1.txt").unwrap();
    assert_eq!((entry.kind, entry.size), (EntryKind::File, 6));
    assert_eq!(entry.mtime, mtime(&root.join("docs/a, 1.txt")));
    assert_eq!(s.stat("docs").unwrap().kind, EntryKind::Dir);
    let e = s.stat("nope").unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    assert!(s.exists("docs/sub/b.txt").unwrap());
    assert!(!s.exists("docs/sub/c.txt").unwrap());

    let names: Vec<String> = s.walk(None).unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(
        names,
        ["docs", "docs/a, 1.txt", "docs/sub", "docs/sub/b.txt"]
    );
    let names: Vec<String> = s
        .walk(Some("docs/sub"))
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["docs/sub/b.txt"]);
    assert_eq!(s.walk(Some("nope")).unwrap_err().kind, ErrorKind::NotFound);

    let (algorithm, digest) = s.hash("docs/a, 1.txt", None).unwrap();
    assert_eq!(algorithm, Algorithm::Blake3, "the best both sides have");
    assert_eq!(digest, blake3::hash(b"hello\n").to_hex().as_str());
    let (_, sha) = s.hash("docs/a, 1.txt", Some(Algorithm::Sha256)).unwrap();
    assert_eq!(
        sha,
        "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
    );
    assert_eq!(s.hash("docs", None).unwrap_err().kind, ErrorKind::Refused);

    s.mkdir("new/deep").unwrap();
    assert!(root.join("new/deep").is_dir());
    s.set_mtime("docs/a, 1.txt", 1_000_000_000).unwrap();
    assert_eq!(mtime(&root.join("docs/a, 1.txt")), 1_000_000_000);
    s.delete("new/deep").unwrap();
    assert!(!root.join("new/deep").exists());
    let e = s.delete("docs").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Refused);
    assert!(e.to_string().contains("not empty"), "{e}");
    assert_eq!(s.delete("nope").unwrap_err().kind, ErrorKind::NotFound);
    assert_eq!(
        s.mkdir("../x").unwrap_err().kind,
        ErrorKind::BadName,
        "checked before sending"
    );
    assert!(s.is_open());
}

#[test]
fn a_read_only_server_refuses_changes_as_refused() {
    let server = TestServer::start_with(|c| c.read_only = true);
    put(server.root(), "f", b"f");
    let mut s = server.session();
    assert!(s.features().unwrap().read_only);
    for e in [
        s.mkdir("d").unwrap_err(),
        s.delete("f").unwrap_err(),
        s.set_mtime("f", 5).unwrap_err(),
    ] {
        assert_eq!(e.kind, ErrorKind::Refused, "{e}");
        assert!(e.to_string().contains("read-only"), "{e}");
    }
    assert!(server.root().join("f").exists());
}

/// A plain IOE/1 server: `LIST` of an empty root, and the refusal of an
/// unknown command for anything else, for up to `requests` requests.
fn plain_server(requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        for _ in 0..requests {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let word = line.trim_end().split(',').next().unwrap().to_string();
            let reply = match word.as_str() {
                "LIST" => "OK 0\n".to_string(),
                "BYE" => "OK bye\n".to_string(),
                _ => {
                    format!("ERROR: unknown command `{word}` (expected LIST, READ, WRITE or BYE)\n")
                }
            };
            if writer.write_all(reply.as_bytes()).is_err() {
                return;
            }
        }
    });
    addr
}

#[test]
fn a_plain_server_makes_each_extension_call_unsupported_and_the_session_goes_on() {
    let addr = plain_server(50);
    let mut s = Session::connect(&addr).unwrap();
    assert_eq!(s.features().unwrap(), Default::default());
    let failures = [
        s.stat("a").unwrap_err(),
        s.exists("a").unwrap_err(),
        s.walk(None).unwrap_err(),
        s.hash("a", Some(Algorithm::Sha256)).unwrap_err(),
        s.hash("a", None).unwrap_err(),
        s.mkdir("a").unwrap_err(),
        s.delete("a").unwrap_err(),
        s.set_mtime("a", 1).unwrap_err(),
    ];
    for e in failures {
        assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
        assert!(e.to_string().contains("extension"), "{e}");
    }
    assert!(s.list(None).unwrap().is_empty(), "the session is in step");
    s.bye().unwrap();
}

/// A server that answers `WALK` with `lines`, then stops.
fn walk_server(lines: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut line = String::new();
        let _ = BufReader::new(stream.try_clone().unwrap()).read_line(&mut line);
        let _ = stream.write_all(lines.as_bytes());
        thread::sleep(Duration::from_millis(500));
    });
    addr
}

#[test]
fn a_walk_that_breaks_its_promises_closes_the_session() {
    for (reply, words) in [
        ("OK\nf,1,1,a\nEND 2\n", "counted 2 entries but sent 1"),
        ("OK\nf,1,1,../a\nEND 1\n", "unsafe name"),
        (
            "OK\nf,1,1,elsewhere/a\nEND 1\n",
            "walked into `elsewhere/a`",
        ),
    ] {
        let mut s = Session::connect(&walk_server(reply)).unwrap();
        let dir = if words.contains("elsewhere") {
            Some("d")
        } else {
            None
        };
        let e = s.walk(dir).unwrap_err();
        assert_eq!(e.kind, ErrorKind::ConnectionLost, "{e}");
        assert!(e.to_string().contains(words), "{e}");
        assert!(!s.is_open());
    }
}
