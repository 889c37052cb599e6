//! `ioe repl` with piped stdin: lines run as a batch against a real server,
//! with no prompt; the first failing line stops the run with its number and
//! a non-zero exit, unless `--keep-going`.

mod common;

use common::{TestServer, TrickleServer, finish, pseudo_random, put, run_ioe, spawn_ioe};
use std::fs;
use std::io::Write;
use std::time::Duration;
use tempfile::TempDir;

fn connect_line(server: &TestServer) -> String {
    let addr = server.addr();
    format!("CONNECT,{},{}\n", addr.ip(), addr.port())
}

#[test]
fn command_forms_and_rhai_share_one_session() {
    let server = TestServer::start();
    let download = pseudo_random(1, 300_000);
    let upload = pseudo_random(2, 200_001);
    put(server.root(), "data/big.bin", &download);
    put(server.root(), "a,b.txt", b"comma");
    let work = TempDir::new().unwrap();
    put(work.path(), "up.bin", &upload);

    let input = connect_line(&server)
        + "LIST\n\
           read, data/big.bin \n\
           WRITE,up.bin\n\
           let names = list().map(|f| f.name);\n\
           print(`names: ${names}`);\n\
           let n = read(\"a,b.txt\", \"copy.txt\");\n\
           n + 1\n\
           QUIT\n";
    let run = run_ioe(work.path(), &["repl"], &input);

    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        fs::read(work.path().join("data/big.bin")).unwrap(),
        download
    );
    assert_eq!(fs::read(server.root().join("up.bin")).unwrap(), upload);
    assert_eq!(fs::read(work.path().join("copy.txt")).unwrap(), b"comma");
    let out = &run.stdout;
    assert!(
        out.contains(&format!("connected to {}", server.addr())),
        "{out}"
    );
    assert!(out.contains("kind  size  modified (UTC)    name"), "{out}");
    assert!(out.contains("  a,b.txt\n"), "{out}");
    assert!(out.contains("  data/\n"), "{out}");
    assert!(
        out.contains("received `data/big.bin` (300000 bytes)"),
        "{out}"
    );
    assert!(out.contains("sent `up.bin` (200001 bytes)"), "{out}");
    // the Rhai list() saw the upload the WRITE command made on the same session
    assert!(
        out.contains("names: [\"a,b.txt\", \"data\", \"up.bin\"]"),
        "{out}"
    );
    assert!(out.contains("\n6\n"), "expression value echoed: {out}");
    assert!(
        out.contains(&format!("closed the session with {}", server.addr())),
        "{out}"
    );
    assert!(!out.contains("ioe>"), "no prompt in batch mode: {out}");
    assert_eq!(run.stderr, "");
}

#[test]
fn the_first_failing_line_stops_the_batch_with_its_number() {
    let server = TestServer::start();
    let work = TempDir::new().unwrap();
    put(work.path(), "up.txt", b"never sent");
    let input = connect_line(&server) + "\nREAD,missing.txt\nWRITE,up.txt\n";

    let run = run_ioe(work.path(), &["repl"], &input);

    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains(
            "line 3: error[not_found]: read `missing.txt`: \
             server said: no such file or folder"
        ),
        "{}",
        run.stderr
    );
    assert!(
        !server.root().join("up.txt").exists(),
        "line 4 must not run"
    );
    assert!(!work.path().join("missing.txt").exists());
}

#[test]
fn keep_going_runs_every_line_and_still_fails() {
    let server = TestServer::start();
    let work = TempDir::new().unwrap();
    put(work.path(), "up.txt", b"sent anyway");
    let input = connect_line(&server) + "READ,missing.txt\nWRITE,nope.txt\nWRITE,up.txt\n";

    let run = run_ioe(work.path(), &["repl", "--keep-going"], &input);

    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("line 2: "), "{}", run.stderr);
    assert!(run.stderr.contains("line 3: "), "{}", run.stderr);
    assert_eq!(
        fs::read(server.root().join("up.txt")).unwrap(),
        b"sent anyway"
    );
}

#[test]
fn a_command_before_connecting_says_to_connect_first() {
    let work = TempDir::new().unwrap();
    for command in ["LIST", "READ,a.txt", "list()", "write(\"x\")"] {
        let run = run_ioe(work.path(), &["repl"], &format!("{command}\n"));
        assert_eq!(run.code, Some(1), "{command}: {run:?}");
        assert!(
            run.stderr
                .starts_with("ioe: line 1: error[not_connected]: ")
                && run.stderr.contains("connect to a server first"),
            "{command}: {}",
            run.stderr
        );
    }
}

#[test]
fn write_of_a_missing_file_names_it_and_the_folder_looked_in() {
    let server = TestServer::start();
    let work = TempDir::new().unwrap();
    let input = connect_line(&server) + "WRITE,report.pdf\n";

    let run = run_ioe(work.path(), &["repl"], &input);

    assert_eq!(run.code, Some(1), "{run:?}");
    let folder = work.path().canonicalize().unwrap();
    assert!(
        run.stderr
            .contains("local file `report.pdf` does not exist")
            && run.stderr.contains(&folder.display().to_string()),
        "{}",
        run.stderr
    );
}

#[test]
fn server_refusals_are_shown_as_the_server_worded_them() {
    let server = TestServer::start_with(|config| config.read_only = true);
    let work = TempDir::new().unwrap();
    put(work.path(), "up.txt", b"x");
    let input = connect_line(&server) + "WRITE,up.txt\n";

    let run = run_ioe(work.path(), &["repl"], &input);

    assert_eq!(run.code, Some(1), "{run:?}");
    let said = run
        .stderr
        .split("server said: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no server message: {}", run.stderr));
    assert!(said.contains("read-only"), "{}", run.stderr);
}

#[test]
fn rhai_errors_give_the_line_in_the_input() {
    let work = TempDir::new().unwrap();
    let input = "let x = 1;\n\nfn twice(v) {\n  v * 2\n}\nlet y = twice(x);\nlet z = y + nope;\n";

    let run = run_ioe(work.path(), &["repl"], input);

    assert_eq!(run.code, Some(2), "a compile error: {run:?}");
    assert!(
        run.stderr.starts_with("ioe: line 7: error: "),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("<stdin>:7:"), "{}", run.stderr);
    assert!(
        run.stderr.contains("let z = y + nope;"),
        "quotes the line: {}",
        run.stderr
    );
}

#[test]
fn errors_inside_functions_quote_the_line_that_defined_them() {
    let work = TempDir::new().unwrap();
    let input = "fn twice(v) {\n  v * 2\n}\nlet y = twice(\"a\");\n";

    let run = run_ioe(work.path(), &["repl"], input);

    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.starts_with("ioe: line 4: error: "),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("<stdin>:2:") && run.stderr.contains("2 |   v * 2"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("in `twice`, called at <stdin>:4:"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_block_left_open_at_the_end_fails_on_its_first_line() {
    let work = TempDir::new().unwrap();
    let run = run_ioe(
        work.path(),
        &["repl"],
        "print(\"ran\");\nfor i in 0..3 {\n  print(i);\n",
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(run.stdout, "ran\n");
    assert!(
        run.stderr.starts_with("ioe: line 2: ") && run.stderr.contains("not finished"),
        "{}",
        run.stderr
    );
}

#[test]
fn exit_sets_the_status_and_quit_ends_the_batch() {
    let work = TempDir::new().unwrap();
    let run = run_ioe(
        work.path(),
        &["repl"],
        "print(\"a\");\nexit(3);\nprint(\"b\");\n",
    );
    assert_eq!(run.code, Some(3), "{run:?}");
    assert_eq!(run.stdout, "a\n");

    let run = run_ioe(
        work.path(),
        &["repl"],
        "print(\"a\");\nquit\nprint(\"b\");\n",
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.stdout, "a\n");
}

#[test]
fn usage_errors_explain_the_form() {
    let work = TempDir::new().unwrap();
    let run = run_ioe(work.path(), &["repl"], "CONNECT\n");
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr
            .contains("line 1: error: usage: CONNECT,host,port"),
        "{}",
        run.stderr
    );
}

#[test]
fn connect_option_opens_the_session_first() {
    let server = TestServer::start();
    put(server.root(), "a.txt", b"hello");
    let work = TempDir::new().unwrap();
    let addr = server.addr().to_string();

    let run = run_ioe(work.path(), &["repl", "--connect", &addr], "READ,a.txt\n");
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(fs::read(work.path().join("a.txt")).unwrap(), b"hello");

    // an unreachable server stops a batch before its first line
    drop(server);
    let run = run_ioe(
        work.path(),
        &["repl", "--connect", &addr],
        "print(\"ran\");\n",
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.contains(&format!("--connect {addr}")) && run.stderr.contains("connect_failed"),
        "{}",
        run.stderr
    );
}

#[test]
fn script_values_are_echoed_as_to_string_shows_them() {
    let work = TempDir::new().unwrap();
    let run = run_ioe(
        work.path(),
        &["repl"],
        "let h = serve(\".\");\nh\nconnect(h)\nh.addr == connect(h).addr\n",
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("Server(127.0.0.1:"), "{}", run.stdout);
    assert!(
        lines[1].starts_with("Session(127.0.0.1:") && lines[1].ends_with(", open)"),
        "{}",
        run.stdout
    );
    assert_eq!(lines[2], "true");
}

/// Reads a file that trickles in over about two seconds, stderr piped.
fn slow_batch_download(args: &[&str]) -> common::Run {
    let server = TrickleServer::start(20_000, 500, Duration::from_millis(50));
    let work = TempDir::new().unwrap();
    let input = format!("CONNECT,{}\nREAD,slow.bin\n", server.addr);
    let run = run_ioe(work.path(), args, &input);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        fs::read(work.path().join("slow.bin")).unwrap(),
        pseudo_random(3, 20_000)
    );
    run
}

#[test]
fn progress_is_forced_onto_a_pipe_only_when_asked() {
    let forced = slow_batch_download(&["repl", "--progress"]);
    assert!(
        forced.stderr.contains("slow.bin [") && forced.stderr.contains("ETA"),
        "{:?}",
        forced.stderr
    );
    let quiet = slow_batch_download(&["repl"]);
    assert_eq!(quiet.stderr, "");
}

#[test]
fn plain_ioe_without_a_terminal_points_to_repl() {
    let work = TempDir::new().unwrap();
    let run = run_ioe(work.path(), &[], "LIST\n");
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("`ioe repl`"), "{}", run.stderr);
}

#[test]
fn a_folder_listed_with_a_trailing_slash_is_the_folder() {
    // Tab completes a folder as `docs/`, so LIST must take it as typed
    let server = TestServer::start();
    put(server.root(), "docs/guide.md", b"guide");
    let work = TempDir::new().unwrap();
    let input = connect_line(&server) + "LIST,docs/\n";

    let run = run_ioe(work.path(), &["repl"], &input);

    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("  docs/guide.md\n"), "{run:?}");
}

#[test]
fn a_closed_stdout_does_not_crash_the_batch() {
    // `ioe repl < job.txt | head -1`: the reader goes away early
    let server = TestServer::start();
    let work = TempDir::new().unwrap();
    put(work.path(), "last.txt", b"sent at the end");
    let mut child = spawn_ioe(work.path(), &["repl"]);
    drop(child.0.stdout.take());
    let mut input = child.0.stdin.take().expect("stdin is piped");
    // far more output than a pipe holds, then one more command
    let job = format!(
        "{}{}WRITE,last.txt\n",
        connect_line(&server),
        "help\n".repeat(200)
    );
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(job.as_bytes());
    });

    let run = finish(child, feeder);

    assert!(!run.stderr.contains("panicked"), "{run:?}");
    assert_eq!(run.code, Some(0), "{run:?}");
    // like `print` in scripts, later lines still run
    assert_eq!(
        fs::read(server.root().join("last.txt")).unwrap(),
        b"sent at the end"
    );
}

#[test]
fn keep_going_exits_with_the_status_of_the_last_failure_as_its_help_says() {
    let work = TempDir::new().unwrap();
    let run = run_ioe(work.path(), &["repl", "--keep-going"], "list()\n1 +* 2\n");
    assert_eq!(run.code, Some(2), "the compile error came last: {run:?}");
    let run = run_ioe(work.path(), &["repl", "--keep-going"], "1 +* 2\nlist()\n");
    assert_eq!(run.code, Some(1), "the run-time error came last: {run:?}");

    let help = run_ioe(work.path(), &["repl", "--help"], "");
    let text = help.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        text.contains("the exit status is then that of the last failing line"),
        "{text}"
    );
}

#[test]
fn input_that_is_not_utf8_is_reported_with_its_line() {
    let work = TempDir::new().unwrap();
    let mut child = spawn_ioe(work.path(), &["repl"]);
    let mut input = child.0.stdin.take().expect("stdin is piped");
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(b"print(\"first\")\nREAD,caf\xe9.txt\nprint(\"third\")\n");
    });

    let run = finish(child, feeder);

    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(run.stdout, "first\n");
    assert!(
        run.stderr.contains("line 2") && run.stderr.contains("UTF-8"),
        "{run:?}"
    );
}

#[test]
fn a_leading_dot_slash_names_the_same_file() {
    // Tab completes `WRITE,./` into `./up.txt`, which the server would refuse
    let server = TestServer::start();
    put(server.root(), "down.txt", b"from the server");
    let work = TempDir::new().unwrap();
    put(work.path(), "up.txt", b"from here");
    let input = connect_line(&server) + "WRITE,./up.txt\nREAD,./down.txt\n";

    let run = run_ioe(work.path(), &["repl"], &input);

    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        fs::read(server.root().join("up.txt")).unwrap(),
        b"from here"
    );
    assert_eq!(
        fs::read(work.path().join("down.txt")).unwrap(),
        b"from the server"
    );
}

#[test]
fn a_closed_stderr_does_not_crash_the_batch() {
    // `ioe repl --keep-going < job.txt 2>&1 | head -1`: the reader of the
    // error messages goes away early
    let work = TempDir::new().unwrap();
    let mut child = spawn_ioe(work.path(), &["repl", "--keep-going"]);
    drop(child.0.stderr.take());
    let mut input = child.0.stdin.take().expect("stdin is piped");
    let job = format!(
        "{}write_text(\"done.txt\", \"ran to the end\");\n",
        "READ,a.txt\n".repeat(20)
    );
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(job.as_bytes());
    });

    let run = finish(child, feeder);

    // the status of the last failing line (not_connected), not a panic's 101
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(
        fs::read_to_string(work.path().join("done.txt")).unwrap(),
        "ran to the end"
    );
}

#[test]
fn list_of_the_root_by_name_lists_the_root() {
    let server = TestServer::start();
    put(server.root(), "docs/guide.md", b"guide");
    let work = TempDir::new().unwrap();
    for form in ["LIST,.", "LIST,./", "list, . "] {
        let input = connect_line(&server) + form + "\n";
        let run = run_ioe(work.path(), &["repl"], &input);
        assert_eq!(run.code, Some(0), "{form}: {run:?}");
        assert!(run.stdout.contains("  docs/\n"), "{form}: {run:?}");
    }
}

#[test]
fn write_into_a_missing_folder_names_the_folder_that_is_missing() {
    let server = TestServer::start();
    let work = TempDir::new().unwrap();
    put(work.path(), "have/file.txt", b"x");
    let folder = work.path().canonicalize().unwrap();
    for (name, missing, looked_in) in [
        ("nodir/file.txt", "nodir", folder.clone()),
        ("nodir/deeper/file.txt", "nodir", folder.clone()),
        ("have/not/file.txt", "have/not", folder.join("have")),
    ] {
        let input = connect_line(&server) + "WRITE," + name + "\n";
        let run = run_ioe(work.path(), &["repl"], &input);
        assert_eq!(run.code, Some(1), "{run:?}");
        let expected = format!(
            "line 2: error[local_missing]: write `{name}`: local file `{name}` does not exist: \
             there is no folder `{missing}` (looked in {})\n",
            looked_in.display()
        );
        assert!(run.stderr.ends_with(&expected), "{}", run.stderr);
    }
    assert_eq!(fs::read_dir(server.root()).unwrap().count(), 0);
}

#[test]
fn write_with_a_local_and_a_remote_name_points_to_write_local_remote() {
    let server = TestServer::start();
    let work = TempDir::new().unwrap();
    put(work.path(), "photo.jpg", b"jpeg");
    put(work.path(), "a,b.txt", b"comma");

    let input = connect_line(&server) + "WRITE,photo.jpg,reports/photo.jpg\n";
    let run = run_ioe(work.path(), &["repl"], &input);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.ends_with(
            "line 2: error: WRITE takes one name; to upload photo.jpg as reports/photo.jpg \
             use write(\"photo.jpg\", \"reports/photo.jpg\")\n"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(fs::read_dir(server.root()).unwrap().count(), 0);

    // a name with a comma that exists as a whole is that file
    let input = connect_line(&server) + "WRITE,a,b.txt\n";
    let run = run_ioe(work.path(), &["repl"], &input);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(fs::read(server.root().join("a,b.txt")).unwrap(), b"comma");
}

#[test]
fn a_host_without_a_port_means_port_7070_everywhere() {
    let work = TempDir::new().unwrap();
    // whatever runs on 127.0.0.1:7070 (usually nothing), the address used
    // is that one, in CONNECT and in --connect
    let reached = |run: &common::Run| {
        run.stdout.contains("connected to 127.0.0.1:7070")
            || run.stderr.contains("connect to `127.0.0.1:7070`")
    };
    let run = run_ioe(work.path(), &["repl"], "CONNECT,127.0.0.1\n");
    assert!(reached(&run), "{run:?}");
    let run = run_ioe(work.path(), &["repl", "--connect", "127.0.0.1"], "");
    assert!(reached(&run), "{run:?}");
    // a port that is not one is still refused, before connecting
    let run = run_ioe(work.path(), &["repl"], "CONNECT,127.0.0.1:http\n");
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr
            .contains("line 1: error: port `http` is not a number from 1 to 65535"),
        "{}",
        run.stderr
    );
    let run = run_ioe(work.path(), &["repl", "--connect", "127.0.0.1:0"], "");
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr
            .contains("port `0` is not a number from 1 to 65535"),
        "{}",
        run.stderr
    );
}
