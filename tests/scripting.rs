//! `ioe run` end to end: the real binary runs scripts against real servers
//! over TCP on 127.0.0.1. Every API item, both call styles, every error
//! kind a script can catch, the reports of uncaught errors and the exit
//! statuses.

mod common;

use common::{Run, TestServer, put, run_ioe};
use std::fs;
use std::path::Path;
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
