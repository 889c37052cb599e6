//! `ioe serve --legacy` against a client of the original design: requests
//! with no LF, each sent in one write and answered before the next, and
//! `WRITE` headers glued to their bodies. Without `--legacy`, only a LF ends
//! a request.

mod common;

use common::{Raw, ServeProcess, TestServer, assert_no_temp_files};
use std::time::Duration;
use tempfile::TempDir;

const KEPT: &str = "kept.txt";
const KEPT_BODY: &[u8] = b"contents of the kept file\n";

fn legacy_server(extra: &[&str]) -> (TempDir, ServeProcess) {
    let root = TempDir::new().unwrap();
    std::fs::write(root.path().join(KEPT), KEPT_BODY).unwrap();
    let mut args = vec!["--legacy"];
    args.extend_from_slice(extra);
    let server = ServeProcess::start(root.path(), &args);
    (root, server)
}

#[test]
fn an_original_client_session_gets_correct_answers() {
    let (root, server) = legacy_server(&[]);
    let mut client = Raw::connect(server.addr());

    client.send(b"LIST");
    assert_eq!(client.line(), "OK 1\n");
    let entry = client.line();
    assert!(
        entry.starts_with(&format!("f,{},", KEPT_BODY.len())) && entry.ends_with(",kept.txt\n"),
        "{entry:?}"
    );

    // the original client reads the size with one recv(): it must hold the
    // size line and nothing else
    client.send(b"READ,kept.txt");
    let first = client.recv_once();
    assert_eq!(first, format!("{}\n", KEPT_BODY.len()).as_bytes());
    assert_eq!(client.bytes(KEPT_BODY.len()), KEPT_BODY);

    client.send(b"WRITE,upload.bin,11hello\nworld");
    assert_eq!(client.line(), "OK 11\n");
    assert_eq!(
        std::fs::read(root.path().join("upload.bin")).unwrap(),
        b"hello\nworld"
    );

    client.send(b"READ,missing.txt");
    let reply = client.line();
    assert!(
        reply.starts_with("ERROR: no such file or folder"),
        "{reply:?}"
    );
    client.send(b"list");
    let reply = client.line();
    assert!(reply.starts_with("ERROR: unknown command"), "{reply:?}");

    client.send(b"BYE");
    assert_eq!(client.line(), "OK bye\n");
    client.expect_closed();
}

#[test]
fn ambiguous_uploads_are_split_as_documented() {
    let (root, server) = legacy_server(&[]);
    let mut client = Raw::connect(server.addr());
    let stored = |name: &str| std::fs::read(root.path().join(name)).unwrap();

    // a body that begins with digits: the split that accounts for every byte
    client.send(b"WRITE,digits.txt,3123");
    assert_eq!(client.line(), "OK 3\n");
    assert_eq!(stored("digits.txt"), b"123");

    // a name with commas and digits
    client.send(b"WRITE,a,1b,5hello");
    assert_eq!(client.line(), "OK 5\n");
    assert_eq!(stored("a,1b"), b"hello");

    // both at once: name `v2,3`, size 4, body `5678`
    client.send(b"WRITE,v2,3,45678");
    assert_eq!(client.line(), "OK 4\n");
    assert_eq!(stored("v2,3"), b"5678");

    // an empty upload
    client.send(b"WRITE,empty.txt,0");
    assert_eq!(client.line(), "OK 0\n");
    assert_eq!(stored("empty.txt"), b"");

    // a body larger than the server's buffer, not starting with a digit
    let big: Vec<u8> = (0..1_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut request = format!("WRITE,big.bin,{}", big.len()).into_bytes();
    request.extend_from_slice(&big);
    client.send(&request);
    assert_eq!(client.line(), format!("OK {}\n", big.len()));
    assert_eq!(stored("big.bin"), big);

    assert_eq!(
        client.list_names(),
        ["a,1b", "big.bin", "digits.txt", "empty.txt", KEPT, "v2,3"]
    );
    assert_no_temp_files(root.path());
}

#[test]
fn a_header_sent_apart_from_its_body_still_works() {
    let (root, server) = legacy_server(&[]);
    let mut client = Raw::connect(server.addr());
    // sizes whose digits could be cut into a smaller size and a body of
    // digits (11 = 1 + "1", 250 = 2 + "50") and one that could not
    for size in [11, 250, 1000] {
        let name = format!("late-{size}.txt");
        client.send(format!("WRITE,{name},{size}").as_bytes());
        // longer than the legacy gap, shorter than the settling time
        std::thread::sleep(Duration::from_millis(200));
        let body = vec![b'x'; size];
        client.send(&body);
        assert_eq!(client.line(), format!("OK {size}\n"));
        assert_eq!(std::fs::read(root.path().join(&name)).unwrap(), body);
    }
}

#[test]
fn a_large_upload_whose_body_begins_with_digits_is_lost_not_corrupted() {
    let (root, server) = legacy_server(&["--idle-timeout", "1"]);
    let mut client = Raw::connect(server.addr());
    // more than the server's buffer, so no split can account for every byte:
    // the body's leading digits are read as part of the size
    let mut body = b"2024 report\n".to_vec();
    body.resize(600_000, b'.');
    let mut request = format!("WRITE,report.txt,{}", body.len()).into_bytes();
    request.extend_from_slice(&body);
    client.send(&request);
    let reply = client.line();
    assert!(
        reply.starts_with("ERROR: ") && reply.contains("report.txt"),
        "{reply:?}"
    );
    client.expect_closed();
    assert!(!root.path().join("report.txt").exists());
    assert_no_temp_files(root.path());
}

#[test]
fn framed_requests_still_work_in_legacy_mode() {
    let (root, server) = legacy_server(&[]);
    let mut client = Raw::connect(server.addr());
    assert_eq!(client.list_names(), [KEPT]);
    assert_eq!(client.read_file(KEPT), KEPT_BODY);
    // a framed header followed by a body of digits is taken as framed
    assert_eq!(client.upload("framed.txt", b"123"), "OK 3\n");
    assert_eq!(
        std::fs::read(root.path().join("framed.txt")).unwrap(),
        b"123"
    );
    // pipelined framed requests
    client.send(b"READ,framed.txt\nLIST\nBYE\n");
    assert_eq!(client.line(), "3\n");
    assert_eq!(client.bytes(3), b"123");
    assert_eq!(client.line(), "OK 2\n");
    client.line();
    client.line();
    assert_eq!(client.line(), "OK bye\n");
    client.expect_closed();
}

#[test]
fn without_legacy_a_request_is_complete_only_at_its_lf() {
    let server = TestServer::start();
    std::fs::write(server.root().join(KEPT), KEPT_BODY).unwrap();
    let mut client = Raw::connect(server.addr());

    client.send(b"LIST");
    client.expect_silence(Duration::from_millis(300));
    client.send(b"\n");
    assert_eq!(client.line(), "OK 1\n");
    client.line();

    client.send(b"READ,kept.txt");
    client.expect_silence(Duration::from_millis(300));
    client.send(b"\n");
    assert_eq!(client.line(), format!("{}\n", KEPT_BODY.len()));
    assert_eq!(client.bytes(KEPT_BODY.len()), KEPT_BODY);

    // a legacy upload is not a request either: its bytes are still waiting
    // for a LF, and with one they are a request with a bad size
    client.send(b"WRITE,up.txt,5hello");
    client.expect_silence(Duration::from_millis(300));
    client.send(b"\n");
    let reply = client.line();
    assert!(reply.starts_with("ERROR: WRITE size"), "{reply:?}");
    client.expect_closed();
    assert!(!server.root().join("up.txt").exists());
}

#[test]
fn a_client_that_closes_its_sending_side_still_gets_its_answer() {
    // as `printf 'LIST' | nc host port` does
    let (root, server) = legacy_server(&[]);
    let mut client = Raw::connect(server.addr());
    client.send(b"LIST");
    client.finish_sending();
    assert_eq!(client.line(), "OK 1\n");
    assert!(client.line().ends_with(",kept.txt\n"));
    client.expect_closed();

    let mut client = Raw::connect(server.addr());
    client.send(b"WRITE,piped.txt,5hello");
    client.finish_sending();
    assert_eq!(client.line(), "OK 5\n");
    client.expect_closed();
    assert_eq!(
        std::fs::read(root.path().join("piped.txt")).unwrap(),
        b"hello"
    );

    // a body cut short is still not stored
    let mut client = Raw::connect(server.addr());
    client.send(b"WRITE,short.txt,50hello");
    client.finish_sending();
    client.expect_closed();
    assert!(!root.path().join("short.txt").exists());
    assert_no_temp_files(root.path());
}

#[test]
fn overlong_legacy_requests_are_refused_and_closed() {
    let (root, server) = legacy_server(&[]);
    let mut client = Raw::connect(server.addr());
    client.send(&[b'A'; 5000]);
    assert_eq!(
        client.line(),
        "ERROR: request line longer than 4096 bytes; closing\n"
    );
    client.expect_closed();

    // an upload header with no size, and far more bytes than a header holds
    let mut client = Raw::connect(server.addr());
    let mut request = b"WRITE,name.txt".to_vec();
    request.extend_from_slice(&[b'x'; 300 * 1024]);
    let mut socket = client.stream().try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let _ = std::io::Write::write_all(&mut socket, &request);
    });
    let reply = client.line();
    assert!(
        reply.starts_with("ERROR: WRITE") && reply.contains("; closing"),
        "{reply:?}"
    );
    client.expect_closed();
    sender.join().unwrap();
    assert!(!root.path().join("name.txt").exists());
    assert_eq!(client_list(&server), [KEPT]);
}

fn client_list(server: &ServeProcess) -> Vec<String> {
    Raw::connect(server.addr()).list_names()
}
