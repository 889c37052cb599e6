//! `ioe run` end to end: the real binary runs scripts against real servers
//! over TCP on 127.0.0.1. Every API item, both call styles, every error
//! kind a script can catch, the reports of uncaught errors and the exit
//! statuses.

mod common;

use common::{Child, Run, TestServer, put, run_ioe, spawn_ioe, temp_files};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;
use tempfile::TempDir;

/// Runs `-e CODE` in `dir` with extra arguments.
fn eval(dir: &Path, code: &str, args: &[&str]) -> Run {
    let mut all = vec!["run", "--no-progress", "-e", code];
    all.extend_from_slice(args);
    run_ioe(dir, &all, "")
}

/// Runs `code` as a script file `job.rhai` in `dir`.
fn script(dir: &Path, code: &str, args: &[&str]) -> Run {
    fs::write(dir.join("job.rhai"), code).expect("write the script");
    let mut all = vec!["run", "--no-progress", "job.rhai"];
    all.extend_from_slice(args);
    run_ioe(dir, &all, "")
}

fn ok(run: &Run) -> &str {
    assert_eq!(run.code, Some(0), "the script failed: {run:#?}");
    &run.stdout
}

#[test]
fn connect_list_read_write_bye_on_a_session() {
    let server = TestServer::start();
    put(server.root(), "docs/a.txt", b"alpha");
    let work = TempDir::new().unwrap();
    put(work.path(), "up.txt", b"uploaded bytes");
    let code = format!(
        r#"
        let s = connect("{addr}");
        print(s.addr);
        print(s.is_open);
        for e in s.list() {{ print(`${{e.kind}} ${{e.name}} ${{e.size}}`); }}
        for e in s.list("docs") {{ print(`${{e.kind}} ${{e.name}} ${{e.size}} ${{type_of(e.mtime)}}`); }}
        print(s.read("docs/a.txt", "got/a.txt"));
        print(s.write("up.txt", "inbox/up.txt"));
        s.bye();
        print(s.is_open);
        "#,
        addr = server.addr()
    );
    let run = script(work.path(), &code, &[]);
    let lines: Vec<&str> = ok(&run).lines().collect();
    assert_eq!(
        lines,
        [
            server.addr().to_string().as_str(),
            "true",
            "d docs 0",
            "f docs/a.txt 5 i64",
            "5",
            "14",
            "false"
        ]
    );
    assert_eq!(fs::read(work.path().join("got/a.txt")).unwrap(), b"alpha");
    assert_eq!(
        fs::read(server.root().join("inbox/up.txt")).unwrap(),
        b"uploaded bytes"
    );
}

#[test]
fn global_functions_act_on_the_current_session() {
    let first = TestServer::start();
    let second = TestServer::start();
    put(first.root(), "one.txt", b"first server");
    put(second.root(), "two.txt", b"second server");
    let work = TempDir::new().unwrap();
    put(work.path(), "local/up.txt", b"up");
    let code = format!(
        r#"
        connect("127.0.0.1", {port1});
        print(list().map(|e| e.name));
        connect("{addr2}");
        print(list().map(|e| e.name));
        print(read("two.txt"));
        print(read("two.txt", "copy/two.txt"));
        print(write("local/up.txt"));
        print(write("local/up.txt", "renamed.txt"));
        print(list("local").map(|e| e.name));
        bye();
        "#,
        port1 = first.addr().port(),
        addr2 = second.addr()
    );
    let run = eval(work.path(), &code, &[]);
    assert_eq!(
        ok(&run),
        "[\"one.txt\"]\n[\"two.txt\"]\n13\n13\n2\n2\n[\"local/up.txt\"]\n"
    );
    assert_eq!(
        fs::read(work.path().join("two.txt")).unwrap(),
        b"second server"
    );
    assert_eq!(
        fs::read(work.path().join("copy/two.txt")).unwrap(),
        b"second server"
    );
    assert_eq!(fs::read(second.root().join("local/up.txt")).unwrap(), b"up");
    assert_eq!(fs::read(second.root().join("renamed.txt")).unwrap(), b"up");
    assert!(!first.root().join("local").exists());
}

/// The `#{kind, message}` a script caught, printed as `kind | message`.
fn caught(dir: &Path, addr: &str, attempt: &str) -> (String, String) {
    let code = format!(
        "let s = connect(\"{addr}\");\n\
         try {{ {attempt}; print(\"no error\"); }} catch (e) {{ print(e.kind); print(e.message); }}"
    );
    let run = eval(dir, &code, &[]);
    let out = ok(&run);
    let mut lines = out.lines();
    let kind = lines.next().unwrap_or_default().to_string();
    let message = lines.collect::<Vec<_>>().join("\n");
    (kind, message)
}

#[test]
fn remote_failures_are_caught_as_kind_and_message() {
    let server = TestServer::start();
    put(server.root(), "folder/inner.txt", b"x");
    let work = TempDir::new().unwrap();
    put(work.path(), "a-file", b"not a folder");
    let addr = server.addr().to_string();

    let (kind, message) = caught(work.path(), &addr, r#"s.read("report.pdf")"#);
    assert_eq!(kind, "not_found");
    assert_eq!(
        message,
        "read `report.pdf`: server said: no such file or folder: `report.pdf`"
    );

    let (kind, message) = caught(work.path(), &addr, r#"s.list("nowhere")"#);
    assert_eq!(kind, "not_found");
    assert!(
        message.starts_with("list `nowhere`: server said: "),
        "{message}"
    );

    let (kind, message) = caught(work.path(), &addr, r#"s.read("folder")"#);
    assert_eq!(kind, "refused");
    assert_eq!(
        message,
        "read `folder`: server said: `folder` is not a regular file"
    );

    let (kind, message) = caught(work.path(), &addr, r#"s.read("../etc/passwd")"#);
    assert_eq!(kind, "bad_name");
    assert_eq!(
        message,
        "read `../etc/passwd`: name must not contain `.` or `..` components"
    );

    let (kind, message) = caught(work.path(), &addr, r#"s.write("missing.txt")"#);
    assert_eq!(kind, "local_missing");
    assert!(
        message.starts_with("write `missing.txt`: local file `missing.txt` does not exist"),
        "{message}"
    );

    // the download's parent folder cannot be created: `a-file` is a file
    let (kind, message) = caught(
        work.path(),
        &addr,
        r#"s.read("folder/inner.txt", "a-file/inner.txt")"#,
    );
    assert_eq!(kind, "local_io");
    assert_eq!(
        message,
        "read `folder/inner.txt`: `a-file` is a file, not a folder, \
         so `a-file/inner.txt` cannot be written"
    );
    assert!(temp_files(work.path()).is_empty());
}

#[test]
fn a_refusal_leaves_the_session_usable() {
    let server = TestServer::start_with(|config| config.read_only = true);
    put(server.root(), "keep.txt", b"kept");
    let work = TempDir::new().unwrap();
    put(work.path(), "up.txt", b"refused upload");
    let code = r#"
        let s = connect("ADDR");
        try { s.write("up.txt"); } catch (e) { print(e.kind); print(e.message); }
        try { s.read("absent"); } catch (e) { print(e.kind); }
        print(s.is_open);
        print(s.read("keep.txt"));
    "#
    .replace("ADDR", &server.addr().to_string());
    let run = eval(work.path(), &code, &[]);
    let lines: Vec<&str> = ok(&run).lines().collect();
    assert_eq!(lines[0], "refused");
    assert!(
        lines[1].starts_with("write `up.txt`: server said: "),
        "{}",
        lines[1]
    );
    assert_eq!(lines[2..], ["not_found", "true", "4"]);
    assert!(!server.root().join("up.txt").exists());
    assert_eq!(fs::read(work.path().join("keep.txt")).unwrap(), b"kept");
}

#[test]
fn connect_failures_and_bad_ports_are_caught() {
    let work = TempDir::new().unwrap();
    // a port nobody listens on: bind one, then stop listening
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    common::stop_listening(listener);
    let code = r#"
        for attempt in [|| connect("127.0.0.1", PORT), || connect("127.0.0.1:PORT"),
                        || connect("127.0.0.1", 0), || connect("127.0.0.1", 65536),
                        || connect("no-such-host.invalid:7070")] {
            try { attempt.call(); print("connected?"); } catch (e) { print(`${e.kind}: ${e.message}`); }
        }
    "#
    .replace("PORT", &port.to_string());
    let run = eval(work.path(), &code, &[]);
    let lines: Vec<&str> = ok(&run).lines().collect();
    let refused = format!(
        "connect_failed: connect to `127.0.0.1:{port}`: connection refused; is `ioe serve` running there?"
    );
    assert_eq!(lines[0], refused);
    assert_eq!(lines[1], refused);
    assert_eq!(
        lines[2],
        "bad_argument: connect to `127.0.0.1`: port `0` is not a number from 1 to 65535"
    );
    assert_eq!(
        lines[3],
        "bad_argument: connect to `127.0.0.1`: port `65536` is not a number from 1 to 65535"
    );
    assert!(
        lines[4].starts_with(
            "connect_failed: connect to `no-such-host.invalid:7070`: cannot resolve it"
        ),
        "{}",
        lines[4]
    );

    // the port inside one string is checked the same way
    let code = r#"
        for addr in ["127.0.0.1:abc", "127.0.0.1:0", "127.0.0.1:70000", "127.0.0.1:", "[::1]:x"] {
            try { connect(addr); print("connected?"); } catch (e) { print(`${e.kind}: ${e.message}`); }
        }
    "#;
    let run = eval(work.path(), code, &[]);
    assert_eq!(
        ok(&run),
        "bad_argument: connect to `127.0.0.1:abc`: port `abc` is not a number from 1 to 65535\n\
         bad_argument: connect to `127.0.0.1:0`: port `0` is not a number from 1 to 65535\n\
         bad_argument: connect to `127.0.0.1:70000`: port `70000` is not a number from 1 to 65535\n\
         bad_argument: connect to `127.0.0.1:`: port `` is not a number from 1 to 65535\n\
         bad_argument: connect to `[::1]:x`: port `x` is not a number from 1 to 65535\n"
    );
}

#[test]
fn without_a_session_global_calls_fail_as_not_connected() {
    let work = TempDir::new().unwrap();
    let code = r#"
        for f in [|| list(), || list("d"), || read("a"), || read("a", "b"),
                     || write("a"), || write("a", "b"), || bye()] {
            try { f.call(); print("worked?"); } catch (e) { print(`${e.kind}: ${e.message}`); }
        }
    "#;
    let run = eval(work.path(), code, &[]);
    let lines: Vec<&str> = ok(&run).lines().collect();
    assert_eq!(
        lines,
        [
            "not_connected: list: not connected; connect to a server first",
            "not_connected: list `d`: not connected; connect to a server first",
            "not_connected: read `a`: not connected; connect to a server first",
            "not_connected: read `a`: not connected; connect to a server first",
            "not_connected: write `a`: not connected; connect to a server first",
            "not_connected: write `b`: not connected; connect to a server first",
            "not_connected: bye: not connected; connect to a server first",
        ]
    );
}

#[test]
fn after_bye_the_session_is_not_connected() {
    let server = TestServer::start();
    let work = TempDir::new().unwrap();
    let code = r#"
        let s = connect("ADDR");
        s.bye();
        s.bye();
        try { s.list(); } catch (e) { print(`${e.kind}: ${e.message}`); }
        try { list(); } catch (e) { print(e.kind); }
    "#
    .replace("ADDR", &server.addr().to_string());
    let run = eval(work.path(), &code, &[]);
    assert_eq!(
        ok(&run),
        format!(
            "not_connected: list: not connected (the session with {} was closed); \
             connect to a server first\nnot_connected\n",
            server.addr()
        )
    );
}

/// A server that answers the first request with `reply` and then either
/// closes the connection or (with `hold`) keeps it open until the test ends.
/// Sends `()` on the returned channel once `reply` went out.
struct FakeServer {
    addr: String,
    replied: mpsc::Receiver<()>,
    _release: mpsc::Sender<()>,
}

fn fake_server(reply: &'static [u8], hold: bool) -> FakeServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (replied_tx, replied) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        if common::plain_request(&mut reader, &mut writer).is_empty() {
            return;
        }
        let _ = writer.write_all(reply);
        let _ = writer.flush();
        let _ = replied_tx.send(());
        if hold {
            // keep the transfer stalled until the test is over
            let _ = release_rx.recv_timeout(Duration::from_secs(60));
        }
    });
    FakeServer {
        addr,
        replied,
        _release: release,
    }
}

#[test]
fn a_broken_transfer_is_caught_as_connection_lost_and_keeps_nothing() {
    let server = fake_server(b"100\nonly ten b", false);
    let work = TempDir::new().unwrap();
    let code = r#"
        let s = connect("ADDR");
        try { s.read("big.bin", "dl/big.bin"); } catch (e) { print(e.kind); print(e.message); }
        print(s.is_open);
        try { list(); } catch (e) { print(e.kind); }
    "#
    .replace("ADDR", &server.addr);
    let run = eval(work.path(), &code, &[]);
    let lines: Vec<&str> = ok(&run).lines().collect();
    assert_eq!(lines[0], "connection_lost");
    assert!(
        lines[1].starts_with(&format!(
            "read `big.bin`: connection to {} lost",
            server.addr
        )),
        "{}",
        lines[1]
    );
    assert_eq!(lines[2..], ["false", "not_connected"]);
    assert!(!work.path().join("dl/big.bin").exists());
    assert!(temp_files(work.path()).is_empty());
}

#[test]
fn an_upload_cut_off_by_a_busy_server_says_the_server_is_busy() {
    let server = TestServer::start_with(|config| config.max_connections = 1);
    let work = TempDir::new().unwrap();
    // sparse, and far more than the server reads before it closes
    let big = fs::File::create(work.path().join("big.bin")).unwrap();
    big.set_len(64 * 1024 * 1024).unwrap();
    // the server's only slot is in a request: an upload waiting for its body
    let mut first = server.raw();
    first.send(b"WRITE,first.bin,10\n12345");
    assert!(
        common::wait_until(Duration::from_secs(10), || temp_files(server.root()).len()
            == 1),
        "the first upload never began"
    );
    let code = r#"
        let second = connect("ADDR");
        try { second.write("big.bin"); print("no error"); }
        catch (e) { print(e.kind); print(e.message); }
        print(second.is_open);
    "#
    .replace("ADDR", &server.addr().to_string());
    let run = eval(work.path(), &code, &[]);
    assert_eq!(
        ok(&run),
        "connection_lost\n\
         write `big.bin`: server said: server busy (1 connection open); closing, try again later \
         (the session is now closed)\n\
         false\n"
    );
    assert!(!server.root().join("big.bin").exists());
    first.send(b"67890");
    assert_eq!(first.line(), "OK 10\n");
}

#[test]
fn a_session_the_server_closed_for_idleness_is_not_open() {
    let server = TestServer::start_with(|config| config.idle_timeout = Duration::from_millis(300));
    let work = TempDir::new().unwrap();
    let code = r#"
        let s = connect("ADDR");
        print(s.list().len());
        print(s.is_open);
        // wait (at most 20 s) for the server to give up on the idle session
        let started = timestamp();
        while s.is_open && started.elapsed < 20.0 { }
        print(s.is_open);
        print(s);
        try { s.list(); } catch (e) { print(`${e.kind}: ${e.message}`); }
        s.bye();
    "#
    .replace("ADDR", &server.addr().to_string());
    let run = eval(work.path(), &code, &[]);
    let lines: Vec<&str> = ok(&run).lines().collect();
    let closed = format!("Session({}, closed)", server.addr());
    assert_eq!(lines[..4], ["0", "true", "false", closed.as_str()]);
    // the server's notice is the reason the next request gives
    assert!(
        lines[4].starts_with("connection_lost: list: server said: idle for ")
            && lines[4].ends_with("; closing (the session is now closed)"),
        "{}",
        lines[4]
    );
}

fn interrupt(child: &Child) {
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -INT failed");
}

#[test]
fn ctrl_c_stops_the_transfer_in_flight_removes_the_partial_file_and_exits_130() {
    let server = fake_server(b"1000000\nthe first bytes of a long body", true);
    let work = TempDir::new().unwrap();
    // the script even tries to swallow errors and go on: Ctrl-C still wins
    let code = r#"
        let s = connect("ADDR");
        for i in 0..3 {
            try { s.read("big.bin", "dl/big.bin"); } catch (e) { print("caught " + e.kind); }
        }
        print("went on");
    "#
    .replace("ADDR", &server.addr);
    let child = spawn_ioe(work.path(), &["run", "--no-progress", "-e", &code]);
    server
        .replied
        .recv_timeout(Duration::from_secs(30))
        .expect("the script started the download");
    interrupt(&child);
    let run = common::finish(child, std::thread::spawn(|| {}));
    assert_eq!(run.code, Some(130), "{run:#?}");
    assert_eq!(run.stdout, "", "the script went on after Ctrl-C");
    assert!(run.stderr.starts_with("interrupted: "), "{}", run.stderr);
    assert!(run.stderr.contains("read `big.bin`"), "{}", run.stderr);
    assert!(!work.path().join("dl/big.bin").exists());
    assert!(
        temp_files(work.path()).is_empty(),
        "a partial file was left"
    );
}

/// A listener on 127.0.0.1 whose queue of connections waiting to be
/// accepted is full, so the kernel ignores further attempts and a client's
/// `connect` waits for its own timeout. Returns it with the queued
/// connections (keep both alive) and its address.
fn full_listener() -> (TcpListener, Vec<std::net::TcpStream>, String) {
    use std::os::fd::AsRawFd;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    // Linux lets listen() shorten the queue of a listening socket
    // SAFETY: a valid socket descriptor, owned by `listener`
    assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
    let addr = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    for _ in 0..16 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Ok(stream) => queued.push(stream),
            Err(_) => return (listener, queued, addr.to_string()),
        }
    }
    panic!("the listener's queue never filled up");
}

#[test]
fn ctrl_c_stops_a_connect_that_waits_for_an_answer() {
    let (_listener, _queued, addr) = full_listener();
    let work = TempDir::new().unwrap();
    let code =
        r#"print("connecting"); connect("ADDR"); print("connected");"#.replace("ADDR", &addr);
    let mut child = spawn_ioe(work.path(), &["run", "-e", &code]);
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).expect("the script prints");
    assert_eq!(line, "connecting\n");
    interrupt(&child);
    let run = common::finish(child, std::thread::spawn(|| {}));
    assert_eq!(run.code, Some(130), "{run:#?}");
    assert_eq!(run.stdout, "");
    // Ctrl-C usually lands while connect waits; it may land just before
    let waiting = format!(
        "interrupted: connect to `{addr}`: stopped by Ctrl-C (SIGINT) before the server answered"
    );
    assert!(
        (run.stderr.starts_with(&waiting)
            || run.stderr.starts_with("interrupted: stopped by Ctrl-C"))
            && run.stderr.contains(" --> -e:1:22\n"),
        "{}",
        run.stderr
    );
}

#[test]
fn ctrl_c_stops_a_bye_that_the_server_never_answers() {
    // answers LIST, then takes BYE and says nothing until the client hangs up
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (hung_up_tx, hung_up) = mpsc::channel();
    let (bye_tx, bye_arrived) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        let mut line = String::new();
        if common::plain_request(&mut reader, &mut writer) == "LIST\n" {
            let _ = writer.write_all(b"OK 0\n");
        }
        let line_bye = common::plain_request(&mut reader, &mut writer);
        let _ = bye_tx.send(line_bye);
        line.clear();
        // Ok(0) once the client closes the connection
        let _ = hung_up_tx.send(reader.read_line(&mut line));
    });
    let work = TempDir::new().unwrap();
    let code =
        r#"let s = connect("ADDR"); s.list(); print("listed"); s.bye();"#.replace("ADDR", &addr);
    let mut child = spawn_ioe(work.path(), &["run", "-e", &code]);
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).expect("the script prints");
    assert_eq!(line, "listed\n");
    // Ctrl-C once the client waits for the reply to BYE, not before it sent it
    let bye = bye_arrived.recv_timeout(common::REPLY_TIMEOUT);
    assert_eq!(bye, Ok("BYE\n".to_string()));
    interrupt(&child);
    let closed = hung_up.recv_timeout(common::REPLY_TIMEOUT);
    assert!(
        matches!(closed, Ok(Ok(0))),
        "Ctrl-C did not end the wait for the reply to BYE: {closed:?}"
    );
    let run = common::finish(child, std::thread::spawn(|| {}));
    assert_eq!(run.code, Some(130), "{run:#?}");
    assert!(
        run.stderr.starts_with("interrupted: bye: ") && run.stderr.contains(" --> -e:1:"),
        "{}",
        run.stderr
    );
}

#[test]
fn ctrl_c_stops_a_script_that_is_busy_computing_or_sleeping() {
    for code in [
        r#"print("ready"); let n = 0; loop { n += 1; }"#,
        r#"print("ready"); sleep(3600); print("slept")"#,
    ] {
        let work = TempDir::new().unwrap();
        let mut child = spawn_ioe(work.path(), &["run", "-e", code]);
        let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).expect("the script prints");
        assert_eq!(line, "ready\n");
        interrupt(&child);
        let run = common::finish(child, std::thread::spawn(|| {}));
        assert_eq!(run.code, Some(130), "{code}: {run:#?}");
        assert!(
            run.stderr.starts_with("interrupted: stopped by Ctrl-C"),
            "{code}: {}",
            run.stderr
        );
    }
}

#[test]
fn sleep_waits_and_refuses_what_is_not_a_duration() {
    let work = TempDir::new().unwrap();
    let code = r#"
        let started = timestamp();
        sleep(0.2);
        sleep(0);
        print(started.elapsed >= 0.2);
        for bad in [|| sleep(-1), || sleep(-0.5), || sleep(1.0 / 0.0)] {
            try { bad.call(); print("slept?"); } catch (e) { print(`${e.kind}: ${e.message}`); }
        }
    "#;
    let run = eval(work.path(), code, &[]);
    assert_eq!(
        ok(&run),
        "true\n\
         bad_argument: sleep: -1 is not a number of seconds (0 or more)\n\
         bad_argument: sleep: -0.5 is not a number of seconds (0 or more)\n\
         bad_argument: sleep: inf is not a number of seconds (0 or more)\n"
    );
}

#[test]
fn serve_runs_an_embedded_server_for_the_rest_of_the_script() {
    let work = TempDir::new().unwrap();
    put(work.path(), "shared/hello.txt", b"hello from serve");
    let code = r#"
        let h = serve("shared");
        print(h.addr);
        print(h.root);
        let s = connect(h);
        print(s.addr == h.addr);
        print(s.read("hello.txt", "copy.txt"));
        s.write("copy.txt", "again/copy.txt");
        let other = connect(h.addr);
        print(other.list("again").map(|e| e.name));
        try { serve("no-such-folder"); } catch (e) { print(`${e.kind}: ${e.message}`); }
    "#;
    let run = eval(work.path(), code, &[]);
    let lines: Vec<&str> = ok(&run).lines().collect();
    let addr: std::net::SocketAddr = lines[0].parse().expect("handle.addr is host:port");
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
    assert_eq!(
        lines[1..],
        [
            "shared",
            "true",
            "16",
            "[\"again/copy.txt\"]",
            "local_missing: serve `no-such-folder`: folder `no-such-folder` does not exist"
        ]
    );
    assert_eq!(
        fs::read(work.path().join("shared/again/copy.txt")).unwrap(),
        b"hello from serve"
    );
    // the server ended with the script
    assert!(std::net::TcpStream::connect(addr).is_err(), "still serving");
}

#[test]
fn local_helpers_walk_and_inspect_files() {
    let work = TempDir::new().unwrap();
    put(work.path(), "tree/b.txt", b"bb");
    put(work.path(), "tree/a/z.txt", b"z");
    put(work.path(), "tree/a.txt", b"a");
    put(work.path(), "tree/a/deeper/x.bin", b"12345");
    // a download in progress (or cut off by a kill): not a file to upload
    put(work.path(), "tree/a/.ioe-tmp-Xy12ab", b"part");
    fs::create_dir_all(work.path().join("tree/empty")).unwrap();
    std::os::unix::fs::symlink(
        work.path().join("tree/b.txt"),
        work.path().join("tree/link.txt"),
    )
    .unwrap();
    let code = r#"
        print(walk("tree"));
        print(walk("tree/")[0]);
        print(exists("tree/a.txt"));
        print(exists("tree/nope"));
        print(file_size("tree/a/deeper/x.bin"));
        mkdir("made/deep/er");
        print(exists("made/deep/er"));
        print(write_text("notes/n.txt", "héllo\n"));
        print(read_text("notes/n.txt"));
        remove("notes/n.txt");
        remove("notes");
        print(exists("notes"));
        for f in [|| walk("nope"), || file_size("nope"), || remove("nope"), || read_text("nope"),
                     || remove("tree"), || file_size("tree"), || mkdir("tree/a.txt/x"),
                     || walk("tree/a.txt")] {
            try { f.call(); print("worked?"); } catch (e) { print(`${e.kind}: ${e.message}`); }
        }
    "#;
    let run = eval(work.path(), code, &[]);
    let lines: Vec<&str> = ok(&run).lines().collect();
    assert_eq!(
        lines[..11],
        [
            r#"["tree/a.txt", "tree/a/deeper/x.bin", "tree/a/z.txt", "tree/b.txt", "tree/link.txt"]"#,
            "tree/a.txt",
            "true",
            "false",
            "5",
            "true",
            "7",
            "héllo",
            "",
            "false",
            "local_missing: walk `nope`: `nope` does not exist",
        ]
    );
    assert_eq!(lines[11], "local_missing: file_size: `nope` does not exist");
    assert_eq!(lines[12], "local_missing: remove: `nope` does not exist");
    assert_eq!(lines[13], "local_missing: read_text: `nope` does not exist");
    assert_eq!(
        lines[14],
        "local_io: remove: `tree` is a folder that is not empty; remove its files first"
    );
    assert_eq!(lines[15], "local_io: file_size: `tree` is a folder");
    assert_eq!(
        lines[16],
        "local_io: mkdir: `tree/a.txt` is a file, not a folder, so `tree/a.txt/x` cannot be made"
    );
    assert_eq!(
        lines[17],
        "local_io: walk `tree/a.txt`: `tree/a.txt` is not a folder"
    );
    assert!(
        work.path().join("tree/b.txt").exists(),
        "remove took a tree"
    );
}

#[test]
fn walk_skips_what_it_cannot_return_and_names_each_on_stderr() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::symlink;
    let work = TempDir::new().unwrap();
    let tree = work.path().join("tree");
    put(work.path(), "tree/a.txt", b"a");
    put(work.path(), "tree/sub/b.txt", b"b");
    // a link to nothing, and a link back to a folder above it (a loop)
    symlink("nowhere", tree.join("broken")).unwrap();
    symlink("..", tree.join("sub/up")).unwrap();
    // names no script can hold: a file, and a folder (skipped once, whole)
    fs::write(tree.join(OsStr::from_bytes(b"bad\xff.txt")), b"x").unwrap();
    let odd_folder = tree.join(OsStr::from_bytes(b"dir\xfe"));
    fs::create_dir(&odd_folder).unwrap();
    fs::write(odd_folder.join("c.txt"), b"c").unwrap();

    let run = eval(work.path(), "for f in walk(\"tree\") { print(f); }", &[]);
    assert_eq!(ok(&run), "tree/a.txt\ntree/sub/b.txt\n", "{run:#?}");
    assert_eq!(
        run.stderr.lines().collect::<Vec<_>>(),
        [
            "ioe: walk: skipped `tree/bad\\xFF.txt`: its name is not valid UTF-8, \
             so scripts cannot name it",
            "ioe: walk: skipped `tree/broken`: a symbolic link to `nowhere`, \
             which does not exist",
            "ioe: walk: skipped `tree/dir\\xFE`: its name is not valid UTF-8, \
             so scripts cannot name it or anything in it",
            "ioe: walk: skipped `tree/sub/up`: a symbolic link to `tree`, \
             a folder it is in (a loop)",
        ],
        "{run:#?}"
    );
}

#[test]
fn read_text_of_a_file_too_big_for_a_string_is_a_catchable_local_io() {
    let work = TempDir::new().unwrap();
    // sparse: 64 MiB + 1 zero bytes (valid UTF-8) without writing them
    let big = fs::File::create(work.path().join("big.txt")).unwrap();
    big.set_len(64 * 1024 * 1024 + 1).unwrap();
    put(work.path(), "small.txt", b"fits");
    let code = r#"
        try { read_text("big.txt"); print("no error"); }
        catch (e) { print(e.kind); print(e.message); }
        print(read_text("small.txt"));
    "#;
    let run = eval(work.path(), code, &[]);
    assert_eq!(
        ok(&run),
        "local_io\n\
         read_text: `big.txt` is over 64 MiB, the longest string a script holds; \
         move big files with read and write\n\
         fits\n"
    );
}

#[test]
fn a_file_where_a_folder_should_be_is_named() {
    let server = TestServer::start();
    put(server.root(), "a.txt", b"alpha");
    let work = TempDir::new().unwrap();
    put(work.path(), "notes.txt", b"not a folder");
    let code = r#"
        let s = connect("ADDR");
        for f in [|| s.read("a.txt", "notes.txt/deeper/a.txt"), || write_text("notes.txt/n.txt", "x"),
                  || mkdir("notes.txt")] {
            try { f.call(); print("worked?"); } catch (e) { print(`${e.kind}: ${e.message}`); }
        }
        print(s.read("a.txt", "fine/a.txt"));
    "#
    .replace("ADDR", &server.addr().to_string());
    let run = eval(work.path(), &code, &[]);
    assert_eq!(
        ok(&run),
        "local_io: read `a.txt`: `notes.txt` is a file, not a folder, \
         so `notes.txt/deeper/a.txt` cannot be written\n\
         local_io: write_text: `notes.txt` is a file, not a folder, \
         so `notes.txt/n.txt` cannot be written\n\
         local_io: mkdir: `notes.txt` is a file, not a folder\n\
         5\n"
    );
    assert_eq!(
        fs::read(work.path().join("notes.txt")).unwrap(),
        b"not a folder"
    );
    assert!(temp_files(work.path()).is_empty());
}

#[test]
fn temp_dir_is_fresh_and_removed_when_the_script_ends() {
    let work = TempDir::new().unwrap();
    let code = r#"
        let t = temp_dir();
        let u = temp_dir();
        print(t);
        print(t != u && walk(t).is_empty());
        write_text(t + "/f.txt", "x");
        print(exists(t + "/f.txt"));
    "#;
    let run = eval(work.path(), code, &[]);
    let lines: Vec<&str> = ok(&run).lines().collect();
    assert_eq!(lines[1..], ["true", "true"]);
    assert!(!Path::new(lines[0]).exists(), "temp_dir was left behind");
}

#[test]
fn env_reads_variables_and_gives_unit_when_unset() {
    let work = TempDir::new().unwrap();
    let run = eval(
        work.path(),
        r#"print(env("PATH")); print(env("IOE_TEST_SURELY_UNSET") ?? "unset");"#,
        &[],
    );
    assert_eq!(
        ok(&run),
        format!("{}\nunset\n", std::env::var("PATH").unwrap())
    );
}

#[test]
fn an_uncaught_error_reports_message_position_and_line_and_exits_1() {
    let server = TestServer::start();
    let work = TempDir::new().unwrap();
    let code = "let s = connect(\"ADDR\");\nprint(\"before\");\nlet n = s.read(\"report.pdf\");\nprint(\"after\");\n"
        .replace("ADDR", &server.addr().to_string());
    let run = script(work.path(), &code, &[]);
    assert_eq!(run.code, Some(1));
    assert_eq!(run.stdout, "before\n");
    assert_eq!(
        run.stderr,
        "error[not_found]: read `report.pdf`: server said: no such file or folder: `report.pdf`\n \
         --> job.rhai:3:11\n  |\n3 | let n = s.read(\"report.pdf\");\n  |           ^\n"
    );
}

#[test]
fn an_error_inside_a_function_shows_where_and_the_call_chain() {
    let work = TempDir::new().unwrap();
    let code = "fn fetch(name) {\n    read(name)\n}\nfn all() {\n    fetch(\"a\");\n}\nall();\n";
    let run = script(work.path(), code, &[]);
    assert_eq!(run.code, Some(1));
    assert_eq!(
        run.stderr,
        "error[not_connected]: read `a`: not connected; connect to a server first\n \
         --> job.rhai:2:5\n  |\n2 |     read(name)\n  |     ^\n  \
         in `fetch`, called at job.rhai:5:5\n  in `all`, called at job.rhai:7:1\n"
    );
}

#[test]
fn an_error_inside_an_imported_module_quotes_the_module() {
    let work = TempDir::new().unwrap();
    put(
        work.path(),
        "jobs/lib.rhai",
        b"fn hello(x) { print(`hi ${x}`); }\nfn boom() { read(\"nope\") }\n",
    );
    put(
        work.path(),
        "jobs/main.rhai",
        b"import \"lib\" as lib;\nlib::hello(\"a\");\nlib::boom();\n",
    );
    let run = run_ioe(work.path(), &["run", "jobs/main.rhai"], "");
    assert_eq!(run.code, Some(1));
    assert_eq!(run.stdout, "hi a\n");
    assert_eq!(
        run.stderr,
        "error[not_connected]: read `nope`: not connected; connect to a server first\n \
         --> jobs/lib.rhai:2:13\n  |\n2 | fn boom() { read(\"nope\") }\n  |             ^\n  \
         in `boom`, called at jobs/main.rhai:3:6\n"
    );

    // a module that does not compile, and one that is not there
    put(work.path(), "jobs/broken.rhai", b"fn f( {\n");
    put(
        work.path(),
        "jobs/uses_broken.rhai",
        b"print(\"ran\");\nimport \"broken\" as b;\n",
    );
    let run = run_ioe(work.path(), &["run", "jobs/uses_broken.rhai"], "");
    assert_eq!((run.code, run.stdout.as_str()), (Some(1), "ran\n"));
    assert_eq!(
        run.stderr,
        "error: the module does not compile: \
         Expecting ')' to close the parameters list of function 'f'\n \
         --> jobs/broken.rhai:1:7\n  |\n1 | fn f( {\n  |       ^\n  \
         in module `jobs/broken.rhai`, imported at jobs/uses_broken.rhai:2:8\n"
    );
    put(
        work.path(),
        "jobs/uses_missing.rhai",
        b"import \"util\" as u;\n",
    );
    let run = run_ioe(work.path(), &["run", "jobs/uses_missing.rhai"], "");
    assert_eq!(run.code, Some(1));
    assert_eq!(
        run.stderr.lines().next(),
        Some("error: module `util` not found: there is no file `jobs/util.rhai`")
    );

    // modules that import each other are an error, not a stack overflow
    put(work.path(), "jobs/ping.rhai", b"import \"pong\" as pong;\n");
    put(work.path(), "jobs/pong.rhai", b"import \"ping\" as ping;\n");
    put(
        work.path(),
        "jobs/cycle.rhai",
        b"import \"ping\" as ping;\n",
    );
    let run = run_ioe(work.path(), &["run", "jobs/cycle.rhai"], "");
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert_eq!(
        run.stderr,
        "error: modules import each other: \
         `jobs/ping.rhai` imports `jobs/pong.rhai` imports `jobs/ping.rhai`\n \
         --> jobs/pong.rhai:1:8\n  |\n1 | import \"ping\" as ping;\n  |        ^\n  \
         in module `jobs/pong.rhai`, imported at jobs/ping.rhai:1:8\n  \
         in module `jobs/ping.rhai`, imported at jobs/cycle.rhai:1:8\n"
    );
}

#[test]
fn an_error_inside_a_closure_says_so() {
    let work = TempDir::new().unwrap();
    let run = script(
        work.path(),
        "let f = |name| read(name);\n[\"a\"].map(f);\n",
        &[],
    );
    assert_eq!(run.code, Some(1));
    assert_eq!(
        run.stderr,
        "error[not_connected]: read `a`: not connected; connect to a server first\n \
         --> job.rhai:1:16\n  |\n1 | let f = |name| read(name);\n  |                ^\n  \
         in a closure, called at job.rhai:2:7\n  in `map`, called at job.rhai:2:7\n"
    );
}

#[test]
fn going_past_a_limit_says_which_limit_and_keeps_the_report_short() {
    let work = TempDir::new().unwrap();
    // a runaway recursion through a closure: 3 calls per level
    let run = script(
        work.path(),
        "fn dig(n) {\n    [n].map(|x| dig(x + 1))\n}\ndig(0);\n",
        &[],
    );
    assert_eq!(run.code, Some(1));
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(
        lines[..5],
        [
            "error: too many nested function calls: more than 64 \
             (does a function call itself without end?)",
            " --> job.rhai:2:9",
            "  |",
            "2 |     [n].map(|x| dig(x + 1))",
            "  |         ^",
        ],
        "{}",
        run.stderr
    );
    assert_eq!(
        lines[5..],
        [
            "  in `map`, called at job.rhai:2:9",
            "  in `dig`, called at job.rhai:2:17",
            "  in a closure, called at job.rhai:2:9",
            "  in `map`, called at job.rhai:2:9",
            "  in `dig`, called at job.rhai:2:17",
            "  … 55 more calls …",
            "  in `map`, called at job.rhai:2:9",
            "  in `dig`, called at job.rhai:2:17",
            "  in a closure, called at job.rhai:2:9",
            "  in `map`, called at job.rhai:2:9",
            "  in `dig`, called at job.rhai:4:1",
        ],
        "{}",
        run.stderr
    );

    let nested = format!("let x = {}1{};", "(".repeat(70), ")".repeat(70));
    let run = eval(work.path(), &nested, &[]);
    assert_eq!(run.code, Some(2));
    assert_eq!(
        run.stderr.lines().next(),
        Some(
            "error: the script does not compile: an expression is nested more than 64 deep, \
             the limit for scripts"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn a_call_with_the_wrong_arguments_shows_how_to_call_it() {
    let work = TempDir::new().unwrap();
    for (code, first_line) in [
        (
            // ARGS are strings, so this is the likeliest slip
            "connect(\"127.0.0.1\", ARGS[0])",
            "error: Function not found: connect (string, string); \
             call it as connect(host, port), connect(\"host:port\"), connect(\"name\"), \
             connect(\"tls://host:port\", #{fingerprint: \"SHA256:…\", ca_file: \"ca.pem\"}) \
             or connect(server); \
             port is a number (`parse_int(ARGS[1])` makes one of an argument)",
        ),
        (
            "let s = connect(serve(\".\")); s.read(1)",
            "error: Function not found: read (Session, int); \
             call it as read(remote), read(remote, local), read(remote, options) or \
             read(remote, local, options), on a session or on the current one; \
             options is a map such as #{mtime: true, verify: false, resume: false}",
        ),
        (
            "write_text(\"a.txt\")",
            "error: Function not found: write_text (string); \
             call it as write_text(path, text)",
        ),
        (
            "frobnicate(1)",
            "error: Function not found: frobnicate (int)",
        ),
    ] {
        let run = eval(work.path(), code, &["7070"]);
        assert_eq!(run.code, Some(1), "{code}");
        assert_eq!(
            run.stderr.lines().next(),
            Some(first_line),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn a_script_that_does_not_compile_exits_2_before_anything_runs() {
    let work = TempDir::new().unwrap();
    let code = "write_text(\"ran.txt\", \"it ran\");\nprint(\"hello\");\nlet x = (1 + ;\n";
    let run = script(work.path(), code, &[]);
    assert_eq!(run.code, Some(2));
    assert_eq!(run.stdout, "");
    assert!(
        !work.path().join("ran.txt").exists(),
        "part of the script ran"
    );
    assert!(
        run.stderr
            .starts_with("error: the script does not compile: "),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(" --> job.rhai:3:") && run.stderr.contains("3 | let x = (1 + ;\n"),
        "{}",
        run.stderr
    );

    // an undefined variable is caught at compile time too
    let run = eval(work.path(), "print(1);\nprint(nmae);", &[]);
    assert_eq!(run.code, Some(2));
    assert_eq!(
        run.stderr,
        "error: the script does not compile: Undefined variable: nmae\n --> -e:2:7\n  |\n2 | print(nmae);\n  |       ^\n"
    );
}

#[test]
fn exit_sets_the_status() {
    let work = TempDir::new().unwrap();
    let cases: [(&str, i32, &str, &str); 9] = [
        ("print(1);", 0, "1\n", ""),
        ("print(1); exit(); print(2);", 0, "1\n", ""),
        ("exit(0); print(2);", 0, "", ""),
        ("exit(7); print(2);", 7, "", ""),
        (
            "fn f() { try { exit(3); } catch { print(\"caught\"); } } f(); print(2);",
            3,
            "",
            "",
        ),
        ("exit(\"no input files\");", 1, "", "no input files\n"),
        (
            "exit(256);",
            1,
            "",
            "exit(256): an exit status is 0 to 255; exiting with 1\n",
        ),
        (
            "exit(3.5);",
            1,
            "",
            "exit(3.5): give exit() a whole number from 0 to 255, or a text; exiting with 1\n",
        ),
        (
            "exit(ARGS.is_empty());",
            1,
            "",
            "exit(true): give exit() a whole number from 0 to 255, or a text; exiting with 1\n",
        ),
    ];
    for (code, status, stdout, stderr) in cases {
        let run = eval(work.path(), code, &[]);
        assert_eq!(
            (run.code, run.stdout.as_str(), run.stderr.as_str()),
            (Some(status), stdout, stderr),
            "{code}"
        );
    }
    // a script whose last value is a number still exits 0
    assert_eq!(eval(work.path(), "42", &[]).code, Some(0));
    // an uncaught `throw` exits 1
    let run = eval(work.path(), "throw \"boom\";", &[]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.starts_with("error: boom\n --> -e:1:1\n"),
        "{}",
        run.stderr
    );
}

#[test]
fn args_reach_the_script_from_a_file_from_stdin_and_from_e() {
    let work = TempDir::new().unwrap();
    let printer = "print(ARGS.len()); for a in ARGS { print(a); }";
    let run = script(work.path(), printer, &["one", "two words", "--flag", "-x"]);
    assert_eq!(ok(&run), "4\none\ntwo words\n--flag\n-x\n");

    let run = run_ioe(work.path(), &["run", "-", "from", "stdin"], printer);
    assert_eq!(ok(&run), "2\nfrom\nstdin\n");

    let run = eval(work.path(), printer, &["a", "b"]);
    assert_eq!(ok(&run), "2\na\nb\n");

    let run = eval(work.path(), printer, &[]);
    assert_eq!(ok(&run), "0\n");

    // `--` after a script is an argument; right after `-e CODE` it is not
    let run = script(work.path(), printer, &["--", "-x"]);
    assert_eq!(ok(&run), "2\n--\n-x\n");
    let run = eval(work.path(), printer, &["--", "-x", "--"]);
    assert_eq!(ok(&run), "2\n-x\n--\n");
}

#[test]
fn stdin_scripts_report_as_stdin_and_shebang_lines_are_skipped() {
    let work = TempDir::new().unwrap();
    let run = run_ioe(work.path(), &["run", "-"], "print(\"ok\");\nlist();\n");
    assert_eq!(run.code, Some(1));
    assert_eq!(run.stdout, "ok\n");
    assert!(run.stderr.contains(" --> <stdin>:2:1\n"), "{}", run.stderr);

    let run = script(
        work.path(),
        "#!/usr/bin/env -S ioe run\nprint(\"ran\");\nlist();",
        &[],
    );
    assert_eq!(run.stdout, "ran\n");
    assert!(run.stderr.contains(" --> job.rhai:3:1\n"), "{}", run.stderr);
}

#[test]
fn a_byte_order_mark_from_a_windows_editor_is_ignored() {
    let work = TempDir::new().unwrap();
    put(
        work.path(),
        "lib.rhai",
        b"\xef\xbb\xbffn greet(x) { `hello ${x}` }\r\n",
    );
    let code = "\u{feff}import \"lib\" as lib;\r\nprint(lib::greet(\"bom\"));\r\nlist();\r\n";
    let run = script(work.path(), code, &[]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert_eq!(run.stdout, "hello bom\n");
    assert!(
        run.stderr.contains(" --> job.rhai:3:1\n  |\n3 | list();\n"),
        "{}",
        run.stderr
    );
}

#[test]
fn print_goes_to_stdout_and_debug_to_stderr() {
    let work = TempDir::new().unwrap();
    let run = eval(work.path(), "print(\"out\"); debug(\"diagnostic\");", &[]);
    assert_eq!(ok(&run), "out\n");
    assert_eq!(run.stderr, "-e:1: \"diagnostic\"\n");
}

#[test]
fn a_closed_stderr_stops_neither_debug_nor_the_report() {
    let work = TempDir::new().unwrap();
    for (code, status) in [
        // far more than a pipe holds, so writes fail once it is closed
        ("for i in 0..20000 { debug(i); } print(\"went on\");", 0),
        (
            "for i in 0..20000 { debug(i); } print(\"went on\"); throw \"x\";",
            1,
        ),
        (
            "for i in 0..20000 { debug(i); } print(\"went on\"); exit(\"bye\");",
            1,
        ),
    ] {
        let mut child = spawn_ioe(work.path(), &["run", "-e", code]);
        drop(child.0.stderr.take());
        let run = common::finish(child, std::thread::spawn(|| {}));
        assert_eq!(
            (run.code, run.stdout.as_str()),
            (Some(status), "went on\n"),
            "{code}"
        );
    }
}

#[test]
fn sessions_and_servers_print_readably() {
    let work = TempDir::new().unwrap();
    fs::create_dir(work.path().join("d")).unwrap();
    let run = eval(
        work.path(),
        "let h = serve(\"d\"); let s = connect(h); print(`${h}`); print(s); s.bye(); print(s);",
        &[],
    );
    let out = ok(&run);
    let lines: Vec<&str> = out.lines().collect();
    let addr = lines[0]
        .strip_prefix("Server(")
        .and_then(|l| l.strip_suffix(')'))
        .expect("Server(addr)");
    assert_eq!(lines[1], format!("Session({addr}, open)"));
    assert_eq!(lines[2], format!("Session({addr}, closed)"));
}

#[test]
fn unreadable_scripts_and_bad_command_lines_exit_2() {
    let work = TempDir::new().unwrap();
    let run = run_ioe(work.path(), &["run", "missing.rhai"], "");
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr
            .starts_with("ioe: cannot read script `missing.rhai`: "),
        "{}",
        run.stderr
    );
    // a misspelt option is not taken for a script file that does not exist
    let run = run_ioe(work.path(), &["run", "--progres", "job.rhai"], "");
    assert_eq!(run.code, Some(2));
    assert_eq!(
        run.stderr,
        "ioe: `--progres` is not an option of `ioe run` (it takes -e CODE, \
         --events FILE, --progress and --no-progress, before the script) nor a script file\n"
    );
    let run = run_ioe(work.path(), &["run"], "");
    assert_eq!(run.code, Some(2));
    let run = run_ioe(
        work.path(),
        &["run", "--progress", "--no-progress", "-e", "1"],
        "",
    );
    assert_eq!(run.code, Some(2));
    // --progress with nothing long to show still runs the script
    let run = run_ioe(work.path(), &["run", "--progress", "-e", "print(1)"], "");
    assert_eq!(ok(&run), "1\n");
}

#[test]
fn the_docs_cover_every_function_and_error_kind() {
    let docs = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/scripting.md"))
        .expect("docs/scripting.md");
    let host = ioe::script::Host::new(ioe::script::HostOptions::default());
    for name in host.function_names() {
        assert!(
            docs.contains(&format!("`{name}(")) || docs.contains(&format!(".{name}`")),
            "docs/scripting.md does not document `{name}`"
        );
    }
    for name in host.property_names() {
        assert!(
            docs.contains(&format!(".{name}`")),
            "docs/scripting.md does not document the property `{name}`"
        );
    }
    for kind in ioe::script::kinds() {
        assert!(
            docs.contains(&format!("| `{kind}` |")),
            "docs/scripting.md does not list the error kind `{kind}`"
        );
    }
}

#[test]
fn every_word_after_e_code_goes_to_args_even_options_of_ioe_run() {
    let work = TempDir::new().unwrap();
    let code = "print(ARGS)";
    let run = run_ioe(
        work.path(),
        &["run", "-e", code, "--progress", "-e", "x", "--help"],
        "",
    );
    assert_eq!(ok(&run), "[\"--progress\", \"-e\", \"x\", \"--help\"]\n");
    assert_eq!(run.stderr, "", "--progress after the code drew a bar?");

    // the other spellings of -e, and options before it
    let (short, long) = (format!("-e{code}"), format!("--eval={code}"));
    for args in [
        &["run", "--no-progress", "--eval", code, "--no-progress"][..],
        &["run", "--progress", &short, "--no-progress"],
        &["run", "--no-progress", &long, "--no-progress"],
    ] {
        let run = run_ioe(work.path(), args, "");
        assert_eq!(ok(&run), "[\"--no-progress\"]\n", "{args:?}");
    }
    // after a script file just the same
    fs::write(work.path().join("job.rhai"), code).unwrap();
    let run = run_ioe(work.path(), &["run", "job.rhai", "-e", "x", "--help"], "");
    assert_eq!(ok(&run), "[\"-e\", \"x\", \"--help\"]\n");
    // before the code, --help is still ioe's
    let run = run_ioe(work.path(), &["run", "--help"], "");
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("Usage: ioe run"), "{}", run.stdout);
}

#[test]
fn the_root_and_folders_with_a_trailing_slash_list_as_completion_offers_them() {
    let server = TestServer::start();
    put(server.root(), "inbox/a.txt", b"a");
    put(server.root(), "top.txt", b"top");
    let work = TempDir::new().unwrap();
    let code = r#"
        let s = connect("ADDR");
        fn names(entries) { entries.map(|e| e.name) }
        print(names(list("")));
        print(names(list(".")));
        print(names(list("./")));
        print(names(s.list("")));
        print(names(list("inbox/")));
        print(names(s.list("inbox/")));
        try { list("/"); } catch (e) { print(e.kind); }
        try { list("nowhere/"); } catch (e) { print(e.message); }
    "#
    .replace("ADDR", &server.addr().to_string());
    let run = eval(work.path(), &code, &[]);
    let root = "[\"inbox\", \"top.txt\"]";
    let inbox = "[\"inbox/a.txt\"]";
    assert_eq!(
        ok(&run).lines().collect::<Vec<_>>(),
        [
            root,
            root,
            root,
            root,
            inbox,
            inbox,
            "bad_name",
            "list `nowhere`: server said: no such file or folder: `nowhere`"
        ]
    );
}

fn terminate(child: &Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM failed");
}

#[test]
fn sigterm_is_reported_as_sigterm_with_its_own_status() {
    // a transfer in flight: stopped, nothing partial kept, the signal named
    let server = fake_server(b"1000000\nthe first bytes of a long body", true);
    let work = TempDir::new().unwrap();
    let code = r#"let s = connect("ADDR"); s.read("big.bin", "dl/big.bin");"#
        .replace("ADDR", &server.addr);
    let child = spawn_ioe(work.path(), &["run", "--no-progress", "-e", &code]);
    server
        .replied
        .recv_timeout(Duration::from_secs(30))
        .expect("the script started the download");
    terminate(&child);
    let run = common::finish(child, std::thread::spawn(|| {}));
    assert_eq!(run.code, Some(143), "{run:#?}");
    assert!(
        run.stderr.starts_with(
            "interrupted: read `big.bin`: stopped by SIGTERM; \
             nothing partial was kept and the session was closed\n"
        ),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("Ctrl-C"), "{}", run.stderr);
    assert!(
        temp_files(work.path()).is_empty(),
        "a partial file was left"
    );

    // a script busy computing, and Ctrl-C named as what it is
    for (signal, status, message) in [
        (
            terminate as fn(&Child),
            143,
            "interrupted: stopped by SIGTERM\n",
        ),
        (interrupt, 130, "interrupted: stopped by Ctrl-C (SIGINT)\n"),
    ] {
        let mut child = spawn_ioe(work.path(), &["run", "-e", r#"print("ready"); loop { }"#]);
        let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).expect("the script prints");
        signal(&child);
        let run = common::finish(child, std::thread::spawn(|| {}));
        assert_eq!(run.code, Some(status), "{run:#?}");
        assert!(run.stderr.starts_with(message), "{}", run.stderr);
    }
}
