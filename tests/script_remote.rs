//! The script functions of the IOE/1 extensions (`features`, `stat`,
//! `s.exists`, `s.walk`, `hash`, `s.mkdir`, `delete`, `set_mtime`) and the
//! options map of `read` and `write`, through the real `ioe run` binary
//! against real servers: both call styles, every documented error kind,
//! and `unsupported` against a plain IOE/1 server.

mod common;

use common::{Run, TestServer, mtime, put, run_ioe, set_mtime, temp_files};
use std::fs;
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};
use tempfile::TempDir;

/// Runs `-e CODE` in `dir`.
fn eval(dir: &Path, code: &str) -> Run {
    run_ioe(dir, &["run", "--no-progress", "-e", code], "")
}

fn ok(run: &Run) -> &str {
    assert_eq!(run.code, Some(0), "the script failed: {run:#?}");
    &run.stdout
}

/// The `#{kind, message}` of each attempt (run in turn on one session to
/// `addr`), as `kind | message` lines; `no error` when one succeeded.
fn caught(dir: &Path, addr: &str, attempts: &[&str]) -> Vec<String> {
    let mut code = format!("let s = connect(\"{addr}\");\n");
    for attempt in attempts {
        code.push_str(&format!(
            "try {{ {attempt}; print(\"no error\"); }} \
             catch (e) {{ print(`${{e.kind}} | ${{e.message}}`); }}\n"
        ));
    }
    let run = eval(dir, &code);
    ok(&run).lines().map(str::to_string).collect()
}

#[test]
fn every_extension_function_works_in_both_call_styles() {
    let server = TestServer::start_with(|c| c.max_size = Some(1 << 20));
    let root = server.root();
    put(root, "docs/a, 1.txt", b"hello\n");
    put(root, "docs/sub/b.txt", b"b");
    put(root, "old.txt", b"old");
    put(root, "older.txt", b"older");
    set_mtime(&root.join("docs/a, 1.txt"), 1_500_000_000);
    let work = TempDir::new().unwrap();
    put(work.path(), "here/local.txt", b"local");
    let code = format!(
        r#"
        let s = connect("{addr}");
        let f = s.features();
        print(`${{f.stat}} ${{f.walk}} ${{f.hash}} ${{f.range}} ${{f.settime}} ${{f.delete}} ${{f.mkdir}} ${{f.auth}} ${{f.read_only}} ${{f.max_size}}`);
        print(features().hash);
        let e = s.stat("docs/a, 1.txt");
        print(`${{e.name}}|${{e.kind}}|${{e.size}}|${{e.mtime}}`);
        let d = stat("docs/");
        print(`${{d.name}}|${{d.kind}}|${{d.size}}`);
        print(s.exists("docs/sub/b.txt"));
        print(s.exists("docs/sub/c.txt"));
        print(exists("here/local.txt"));
        print(exists("docs/sub/b.txt"));
        print(s.walk().map(|e| `${{e.kind}}:${{e.name}}`));
        print(s.walk("docs/sub/").map(|e| e.name));
        print(walk("here"));
        print(s.hash("docs/a, 1.txt"));
        print(hash("docs/a, 1.txt", "sha256"));
        print(s.hash("docs/a, 1.txt") == file_hash("{local_copy}"));
        s.mkdir("new/deep/");
        mkdir("made-here");
        s.delete("old.txt");
        delete("older.txt");
        s.set_mtime("docs/sub/b.txt", 1000000000);
        set_mtime("docs/sub/", 1100000000);
        "#,
        addr = server.target(),
        local_copy = put(work.path(), "copy.txt", b"hello\n").display(),
    );
    let run = eval(work.path(), &code);
    let lines: Vec<&str> = ok(&run).lines().collect();
    assert_eq!(
        lines,
        [
            "true true [\"blake3\", \"sha256\"] true true true true false false 1048576",
            "[\"blake3\", \"sha256\"]",
            "docs/a, 1.txt|f|6|1500000000",
            "docs|d|0",
            "true",
            "false",
            // the global exists() stays local
            "true",
            "false",
            "[\"d:docs\", \"f:docs/a, 1.txt\", \"d:docs/sub\", \"f:docs/sub/b.txt\", \
             \"f:old.txt\", \"f:older.txt\"]",
            "[\"docs/sub/b.txt\"]",
            // the global walk() stays local
            "[\"here/local.txt\"]",
            blake3::hash(b"hello\n").to_hex().as_str(),
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03",
            "true",
        ]
    );
    assert!(root.join("new/deep").is_dir());
    assert!(
        work.path().join("made-here").is_dir(),
        "mkdir(path) is local"
    );
    assert!(!root.join("made-here").exists());
    assert!(!root.join("old.txt").exists());
    assert!(!root.join("older.txt").exists());
    assert_eq!(mtime(&root.join("docs/sub/b.txt")), 1_000_000_000);
    assert_eq!(mtime(&root.join("docs/sub")), 1_100_000_000);
}

#[test]
fn extension_functions_fail_with_their_documented_kinds() {
    let server = TestServer::start();
    put(server.root(), "docs/a.txt", b"a");
    put(server.root(), "file.txt", b"f");
    let work = TempDir::new().unwrap();
    let got = caught(
        work.path(),
        &server.target(),
        &[
            r#"s.stat("nope.txt")"#,
            r#"stat("nope.txt")"#,
            r#"s.stat("../etc/passwd")"#,
            r#"s.walk("nope")"#,
            r#"s.hash("docs")"#,
            r#"hash("nope.txt")"#,
            r#"s.hash("docs/a.txt", "md5")"#,
            r#"hash("docs/a.txt", "SHA256")"#,
            r#"s.delete("docs")"#,
            r#"delete("nope.txt")"#,
            r#"s.set_mtime("nope.txt", 5)"#,
            r#"set_mtime("docs/a.txt", -1)"#,
            r#"s.mkdir("file.txt/sub")"#,
            r#"s.exists("/abs")"#,
            r#"s.delete("")"#,
        ],
    );
    let expected = [
        "not_found | stat `nope.txt`: server said: no such file or folder: `nope.txt`",
        "not_found | stat `nope.txt`: server said: no such file or folder: `nope.txt`",
        "bad_name | stat `../etc/passwd`: name must not contain `.` or `..` components",
        "not_found | walk `nope`: server said: no such file or folder: `nope`",
        "refused | hash `docs`: server said: ",
        "not_found | hash `nope.txt`: server said: no such file or folder: `nope.txt`",
        "bad_argument | hash `docs/a.txt`: unknown hash algorithm `md5`; use \"blake3\" or \"sha256\"",
        "bad_argument | hash `docs/a.txt`: unknown hash algorithm `SHA256`; use \"blake3\" or \"sha256\"",
        "refused | delete `docs`: server said: ",
        "not_found | delete `nope.txt`: server said: no such file or folder: `nope.txt`",
        "not_found | set_mtime `nope.txt`: server said: no such file or folder: `nope.txt`",
        "bad_argument | set_mtime `docs/a.txt`: -1 is not a time; give whole seconds since 1970 (0 or more)",
        "refused | mkdir `file.txt/sub`: server said: ",
        "bad_name | exists `/abs`: name must be relative",
        "bad_name | delete ``: ",
    ];
    assert_eq!(got.len(), expected.len(), "{got:#?}");
    for (line, want) in got.iter().zip(expected) {
        assert!(
            line.starts_with(want),
            "{line:?} should start with {want:?}"
        );
    }
    assert!(got[8].contains("not empty"), "{}", got[8]);
    // nothing was changed by the failures
    assert_eq!(fs::read(server.root().join("docs/a.txt")).unwrap(), b"a");
    assert!(server.root().join("file.txt").is_file());
}

#[test]
fn a_read_only_server_refuses_the_changing_calls_and_answers_the_others() {
    let server = TestServer::start_with(|c| c.read_only = true);
    put(server.root(), "a.txt", b"a");
    let work = TempDir::new().unwrap();
    let got = caught(
        work.path(),
        &server.target(),
        &[
            r#"s.mkdir("new")"#,
            r#"delete("a.txt")"#,
            r#"set_mtime("a.txt", 7)"#,
            r#"if !features().read_only { throw "not read-only" }"#,
            r#"s.stat("a.txt")"#,
        ],
    );
    for line in &got[..3] {
        assert!(line.starts_with("refused | "), "{line}");
        assert!(line.contains("read-only"), "{line}");
    }
    assert_eq!(got[3..], ["no error", "no error"]);
    assert!(server.root().join("a.txt").exists());
    assert!(!server.root().join("new").exists());
}

#[test]
fn global_extension_calls_without_a_session_say_connect_first() {
    let work = TempDir::new().unwrap();
    for call in [
        "features()",
        "stat(\"a\")",
        "hash(\"a\")",
        "hash(\"a\", \"sha256\")",
        "delete(\"a\")",
        "set_mtime(\"a\", 1)",
    ] {
        let code = format!("try {{ {call}; }} catch (e) {{ print(e.kind); print(e.message); }}");
        let run = eval(work.path(), &code);
        let out = ok(&run);
        assert!(out.starts_with("not_connected\n"), "{call}: {out}");
        assert!(
            out.contains("not connected; connect to a server first"),
            "{call}: {out}"
        );
    }
}

#[test]
fn a_plain_ioe1_server_makes_each_extension_call_unsupported_and_the_session_goes_on() {
    let (addr, server) = common::plain_server(b"OK 1\nf,5,1700000000,plain.txt\n");
    let work = TempDir::new().unwrap();
    let got = caught(
        work.path(),
        &addr.to_string(),
        &[
            r#"s.stat("plain.txt")"#,
            r#"s.exists("plain.txt")"#,
            r#"s.walk()"#,
            r#"hash("plain.txt")"#,
            r#"s.hash("plain.txt", "sha256")"#,
            r#"s.mkdir("d")"#,
            r#"delete("plain.txt")"#,
            r#"s.set_mtime("plain.txt", 9)"#,
            r#"read("plain.txt", #{verify: true})"#,
            r#"let f = features(); if f.stat || f.walk || f.hash.len() > 0 || f.max_size != () { throw "features" }"#,
            r#"if list()[0].name != "plain.txt" { throw "list" }"#,
            r#"bye()"#,
        ],
    );
    let features = [
        "stat", "stat", "walk", "hash", "hash", "mkdir", "delete", "settime", "hash",
    ];
    for (line, feature) in got.iter().zip(features) {
        assert!(line.starts_with("unsupported | "), "{line}");
        assert!(
            line.contains(&format!("does not have the `{feature}` extension")),
            "{line}"
        );
    }
    assert!(
        got[1].starts_with("unsupported | exists `plain.txt`: "),
        "{}",
        got[1]
    );
    assert_eq!(got[9..], ["no error", "no error", "no error"], "{got:#?}");
    assert!(!work.path().join("plain.txt").exists());
    server.join().unwrap();
}

#[test]
fn read_and_write_keep_mtimes_both_ways_unless_told_not_to() {
    let server = TestServer::start();
    let remote = put(server.root(), "r.txt", b"remote bytes");
    set_mtime(&remote, 1_200_000_000);
    let work = TempDir::new().unwrap();
    let local = put(work.path(), "l.txt", b"local bytes");
    set_mtime(&local, 1_300_000_000);
    let code = format!(
        r#"
        let s = connect("{}");
        print(s.read("r.txt", "kept.txt"));
        print(read("r.txt", "fresh.txt", #{{mtime: false}}));
        print(read("r.txt", #{{mtime: true}}));
        print(s.write("l.txt", "up/kept.txt"));
        print(write("l.txt", "up/fresh.txt", #{{mtime: false}}));
        print(s.write("l.txt", #{{mtime: true}}));
        "#,
        server.target()
    );
    let run = eval(work.path(), &code);
    assert_eq!(ok(&run), "12\n12\n12\n11\n11\n11\n");
    let recent = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 3600;
    let w = work.path();
    let root = server.root();
    assert_eq!(fs::read(w.join("kept.txt")).unwrap(), b"remote bytes");
    assert_eq!(mtime(&w.join("kept.txt")), mtime(&remote));
    assert_eq!(mtime(&w.join("r.txt")), 1_200_000_000);
    assert!(mtime(&w.join("fresh.txt")) > recent);
    assert_eq!(fs::read(root.join("up/kept.txt")).unwrap(), b"local bytes");
    assert_eq!(mtime(&root.join("up/kept.txt")), mtime(&local));
    assert_eq!(mtime(&root.join("l.txt")), 1_300_000_000);
    assert!(mtime(&root.join("up/fresh.txt")) > recent);
}

#[test]
fn verified_and_resumable_transfers_return_the_size_and_keep_the_bytes() {
    let server = TestServer::start();
    let body = common::pseudo_random(7, 300_000);
    put(server.root(), "big.bin", &body);
    let work = TempDir::new().unwrap();
    put(work.path(), "up.bin", &body[..1000]);
    let code = format!(
        r#"
        connect("{}");
        print(read("big.bin", "v.bin", #{{verify: true}}));
        print(read("big.bin", "r.bin", #{{resume: true, verify: false, mtime: true}}));
        print(write("up.bin", "v-up.bin", #{{verify: true}}));
        "#,
        server.target()
    );
    let run = eval(work.path(), &code);
    assert_eq!(ok(&run), "300000\n300000\n1000\n");
    assert_eq!(fs::read(work.path().join("v.bin")).unwrap(), body);
    assert_eq!(fs::read(work.path().join("r.bin")).unwrap(), body);
    assert_eq!(
        fs::read(server.root().join("v-up.bin")).unwrap(),
        &body[..1000]
    );
    assert!(temp_files(work.path()).is_empty());
}

#[test]
fn bad_options_are_bad_arguments_naming_the_key_and_nothing_moves() {
    let server = TestServer::start();
    put(server.root(), "a.txt", b"a");
    let work = TempDir::new().unwrap();
    put(work.path(), "up.txt", b"up");
    let got = caught(
        work.path(),
        &server.target(),
        &[
            r#"s.read("a.txt", "got.txt", #{verfy: true})"#,
            r#"read("a.txt", #{mtime: 1})"#,
            r#"write("up.txt", "x.txt", #{resume: true})"#,
            r#"s.write("up.txt", #{verify: "yes"})"#,
        ],
    );
    assert_eq!(
        got,
        [
            "bad_argument | read `a.txt`: unknown option `verfy`; the options are \
             `mtime`, `verify`, `resume`",
            "bad_argument | read `a.txt`: option `mtime` takes true or false, not 1",
            "bad_argument | write `x.txt`: unknown option `resume` (`resume` is for \
             downloads, `read`); the options are `mtime`, `verify`",
            "bad_argument | write `up.txt`: option `verify` takes true or false, not \"yes\"",
        ]
    );
    assert!(!work.path().join("got.txt").exists());
    assert!(!work.path().join("a.txt").exists());
    assert!(!server.root().join("x.txt").exists());
    assert!(!server.root().join("up.txt").exists());
}

/// A server for one connection that has `hash sha256` but answers every
/// `HASH` with a digest of other bytes: `READ` sends `hello`.
fn lying_server() -> (SocketAddr, std::thread::JoinHandle<Vec<String>>) {
    use std::io::BufRead;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let thread = std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("the script connects");
        stream.set_read_timeout(Some(common::RUN_TIMEOUT)).unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        let mut requests = Vec::new();
        for _ in 0..100 {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            let word = line
                .split([',', '\n'])
                .next()
                .unwrap_or_default()
                .to_string();
            requests.push(word.clone());
            let reply = match word.as_str() {
                "FEATURES" => "OK 2\nhash sha256\nlimits read-only=0\n".to_string(),
                "READ" => "5\nhello".to_string(),
                "HASH" => format!("OK sha256 {}\n", "0".repeat(64)),
                "BYE" => "OK bye\n".to_string(),
                _ => "ERROR: not in this test\n".to_string(),
            };
            if writer.write_all(reply.as_bytes()).is_err() || word == "BYE" {
                break;
            }
        }
        requests
    });
    (addr, thread)
}

#[test]
fn a_verified_read_whose_digests_differ_is_corrupt_and_keeps_nothing() {
    let (addr, server) = lying_server();
    let work = TempDir::new().unwrap();
    let got = caught(
        work.path(),
        &addr.to_string(),
        &[
            r#"read("a.txt", "got.txt", #{verify: true})"#,
            r#"if exists("got.txt") { throw "kept" }"#,
            r#"read("a.txt", "plain.txt")"#,
            r#"bye()"#,
        ],
    );
    assert!(got[0].starts_with("corrupt | read `a.txt`: "), "{got:#?}");
    assert_eq!(got[1..], ["no error", "no error", "no error"], "{got:#?}");
    assert!(!work.path().join("got.txt").exists());
    assert_eq!(fs::read(work.path().join("plain.txt")).unwrap(), b"hello");
    assert!(temp_files(work.path()).is_empty());
    let requests = server.join().unwrap();
    assert_eq!(requests, ["FEATURES", "READ", "HASH", "READ", "BYE"]);
}
