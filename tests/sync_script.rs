//! `push` and `pull` of whole trees through the real `ioe` binary against
//! real servers: both call styles, every option's validation, the result
//! map's fields on real runs (copied, skipped, deleted, failed, a dry run's
//! plan), the summary line, the overall progress bar, Ctrl-C, and the
//! REPL's `PUSH` and `PULL` forms.

mod common;

use common::relay::Relay;
use common::{
    Child, Run, TestServer, pseudo_random, put, run_ioe, spawn_ioe, temp_files, wait_until,
};
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tempfile::TempDir;

/// Runs `-e CODE` in `dir` with `progress` (`--progress` or
/// `--no-progress`).
fn eval_with(dir: &Path, progress: &str, code: &str) -> Run {
    run_ioe(dir, &["run", progress, "-e", code], "")
}

fn eval(dir: &Path, code: &str) -> Run {
    eval_with(dir, "--no-progress", code)
}

fn ok(run: &Run) -> &str {
    assert_eq!(run.code, Some(0), "the script failed: {run:#?}");
    &run.stdout
}

/// Every file under `dir` (name → contents) and every folder (name →
/// `None`).
fn tree(dir: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .map(|e| e.unwrap())
        .map(|e| {
            let name = e.path().strip_prefix(dir).unwrap().to_str().unwrap();
            let contents = e.file_type().is_file().then(|| fs::read(e.path()).unwrap());
            (name.to_string(), contents)
        })
        .collect()
}

/// A local tree with a sub-folder, an empty folder and names with a comma,
/// a space and non-ASCII letters.
fn make_tree(dir: &Path) {
    put(dir, "a.txt", b"alpha");
    put(dir, "sub/b, c.txt", b"bravo charlie");
    put(dir, "sub/deep/ünï d.bin", &[0, 1, 2, 255]);
    fs::create_dir_all(dir.join("empty folder")).unwrap();
}

#[test]
fn push_and_pull_carry_a_tree_in_both_call_styles_and_a_second_run_copies_nothing() {
    let server = TestServer::start();
    let work = TempDir::new().unwrap();
    make_tree(&work.path().join("src"));
    let code = format!(
        r#"
        let s = connect("{addr}");
        let r = s.push("src", "up");
        print(`push ${{r.files}} ${{r.bytes}} ${{r.made}} ${{r.failed.len()}}`);
        let r = pull("up", "back");
        print(`pull ${{r.files}} ${{r.bytes}} ${{r.made}} ${{r.failed.len()}}`);
        let r = push("src", "up");
        print(`again ${{r.files}} ${{r.skipped.len()}}`);
        let r = s.pull("up/", "back");
        print(`again ${{r.files}} ${{r.skipped.len()}}`);
        "#,
        addr = server.target()
    );
    let run = eval(work.path(), &code);
    let lines: Vec<&str> = ok(&run).lines().collect();
    assert_eq!(
        lines,
        [
            r#"push 3 22 ["empty folder", "sub", "sub/deep"] 0"#,
            r#"pull 3 22 ["empty folder", "sub", "sub/deep"] 0"#,
            // 3 unchanged files and 3 folders already there
            "again 0 6",
            "again 0 6",
        ]
    );
    let source = tree(&work.path().join("src"));
    assert_eq!(tree(&server.root().join("up")), source);
    assert_eq!(tree(&work.path().join("back")), source);
    // no summary without progress: a batch job prints what it wants
    assert_eq!(run.stderr, "");
}

#[test]
fn every_option_is_checked_and_a_bad_one_does_nothing() {
    let server = TestServer::start();
    let work = TempDir::new().unwrap();
    put(work.path(), "src/a.txt", b"a");
    let op = "push `src` to `up`";
    let cases = [
        ("#{bogus: 1}", "unknown option `bogus`; the options are `compare`, `delete`, `allow_empty_source`, `max_delete`, `include`, `exclude`, `links`, `parallel`, `verify`, `retries`, `retry_delay`, `dry_run`".to_string()),
        ("#{compare: \"mtime\"}", "option `compare` takes \"size_mtime\", \"digest\", \"size\" or \"always\", not \"mtime\"".into()),
        ("#{compare: 1}", "option `compare` takes \"size_mtime\", \"digest\", \"size\" or \"always\", not 1".into()),
        ("#{delete: \"yes\"}", "option `delete` takes true or false, not \"yes\"".into()),
        ("#{allow_empty_source: 1}", "option `allow_empty_source` takes true or false, not 1".into()),
        ("#{verify: ()}", "option `verify` takes true or false, not ()".into()),
        ("#{dry_run: 0}", "option `dry_run` takes true or false, not 0".into()),
        ("#{max_delete: -1}", "option `max_delete` takes a whole number, 0 or more, not -1".into()),
        ("#{max_delete: 1.5}", "option `max_delete` takes a whole number, 0 or more, not 1.5".into()),
        ("#{include: 3}", "option `include` takes a pattern or an array of patterns, such as [\"*.tmp\", \"cache/\"], not 3".into()),
        ("#{exclude: [\"*.tmp\", 2]}", "option `exclude` takes a pattern or an array of patterns, such as [\"*.tmp\", \"cache/\"], not [\"*.tmp\", 2]".into()),
        ("#{links: \"copy\"}", "option `links` takes \"skip\" or \"follow\", not \"copy\"".into()),
        ("#{parallel: 0}", "option `parallel` takes a whole number from 1 to 32, not 0".into()),
        ("#{parallel: 33}", "option `parallel` takes a whole number from 1 to 32, not 33".into()),
        ("#{parallel: \"4\"}", "option `parallel` takes a whole number from 1 to 32, not \"4\"".into()),
        ("#{retries: -1}", "option `retries` takes a whole number from 0 to 100, not -1".into()),
        ("#{retries: true}", "option `retries` takes a whole number from 0 to 100, not true".into()),
        ("#{retry_delay: -0.5}", "option `retry_delay` takes seconds from 0 to 60, such as 0.5, not -0.5".into()),
        ("#{retry_delay: 61}", "option `retry_delay` takes seconds from 0 to 60, such as 0.5, not 61".into()),
        ("#{retry_delay: \"1s\"}", "option `retry_delay` takes seconds from 0 to 60, such as 0.5, not \"1s\"".into()),
    ];
    let mut code = format!("let s = connect(\"{}\");\n", server.target());
    for (options, _) in &cases {
        for call in [
            format!("s.push(\"src\", \"up\", {options})"),
            format!("push(\"src\", \"up\", {options})"),
        ] {
            code.push_str(&format!(
                "try {{ {call}; print(\"no error\"); }} \
                 catch (e) {{ print(`${{e.kind}} | ${{e.message}}`); }}\n"
            ));
        }
    }
    let run = eval(work.path(), &code);
    let lines: Vec<&str> = ok(&run).lines().collect();
    let expected: Vec<String> = cases
        .iter()
        .flat_map(|(_, message)| {
            let line = format!("bad_argument | {op}: {message}");
            [line.clone(), line]
        })
        .collect();
    assert_eq!(lines, expected);
    // nothing was done
    assert!(!server.root().join("up").exists());
}

#[test]
fn good_options_of_every_type_are_taken() {
    let server = TestServer::start();
    let work = TempDir::new().unwrap();
    put(work.path(), "src/keep.txt", b"keep");
    put(work.path(), "src/skip.tmp", b"tmp");
    put(work.path(), "src/cache/x.txt", b"x");
    let code = format!(
        r#"
        let r = connect("{addr}").push("src", "up", #{{
            compare: "digest", delete: true, allow_empty_source: false, max_delete: 10,
            include: ["*.txt"], exclude: "cache/", links: "follow", parallel: 2,
            verify: true, retries: 0, retry_delay: 1, dry_run: false
        }});
        print(r.copied);
        let r = pull("up", "back", #{{retry_delay: 0.25, compare: "size", include: "*.txt"}});
        print(r.copied);
        "#,
        addr = server.target()
    );
    let run = eval(work.path(), &code);
    assert_eq!(
        ok(&run),
        "[#{\"name\": \"keep.txt\", \"size\": 4}]\n[#{\"name\": \"keep.txt\", \"size\": 4}]\n"
    );
    assert_eq!(
        fs::read(server.root().join("up/keep.txt")).unwrap(),
        b"keep"
    );
    assert!(!server.root().join("up/skip.tmp").exists());
    assert!(!server.root().join("up/cache").exists());
}

#[test]
fn the_result_map_lists_deleted_and_failed_files_and_failures_hold_deletes_back() {
    // the server refuses uploads over 100 bytes
    let server = TestServer::start_with(|c| c.max_size = Some(100));
    let work = TempDir::new().unwrap();
    put(work.path(), "src/small.txt", b"small");
    put(server.root(), "up/stale.txt", b"stale");
    let first = format!(
        r#"
        let r = connect("{addr}").push("src", "up", #{{delete: true}});
        print(`${{r.copied}} ${{r.deleted}} ${{r.failed}} ${{r.deletes_held}}`);
        "#,
        addr = server.target()
    );
    let run = eval(work.path(), &first);
    let mut lines: Vec<String> = ok(&run).lines().map(str::to_string).collect();
    put(work.path(), "src/big.bin", &[b'x'; 200]);
    put(work.path(), "src/stale2.txt", b"new");
    put(server.root(), "up/gone.txt", b"new");
    let code = format!(
        r#"
        let r = connect("{addr}").push("src", "up", #{{delete: true}});
        print(`${{r.files}} ${{r.copied}} ${{r.deleted}}`);
        for f in r.failed {{ print(`${{f.name}} | ${{f.kind}} | ${{f.message}}`); }}
        print(r.deletes_held);
        print(r.skipped);
        print(type_of(r.seconds));
        "#,
        addr = server.target()
    );
    let run = eval(work.path(), &code);
    lines.extend(ok(&run).lines().map(str::to_string));
    assert_eq!(
        lines[0],
        r#"[#{"name": "small.txt", "size": 5}] ["stale.txt"] [] "#
    );
    assert_eq!(lines[1], r#"1 [#{"name": "stale2.txt", "size": 3}] []"#);
    assert!(
        lines[2].starts_with("big.bin | refused | write `up/big.bin`: "),
        "{}",
        lines[2]
    );
    assert_eq!(
        lines[3],
        "1 file failed during the run, so nothing was deleted"
    );
    assert_eq!(
        lines[4],
        r#"[#{"name": "small.txt", "reason": "same size and mtime"}]"#
    );
    assert_eq!(lines[5], "f64");
    assert!(!server.root().join("up/stale.txt").exists());
    // held back: the file the source lacks is still there
    assert_eq!(fs::read(server.root().join("up/gone.txt")).unwrap(), b"new");
    assert!(!server.root().join("up/big.bin").exists());
}

#[test]
fn a_dry_run_changes_nothing_and_plans_exactly_what_the_real_run_does() {
    let server = TestServer::start();
    let work = TempDir::new().unwrap();
    put(work.path(), "src/new.txt", b"new!");
    put(work.path(), "src/d/e.txt", b"e");
    put(server.root(), "up/old.txt", b"old");
    let before = tree(server.root());
    let code = format!(
        r#"
        let s = connect("{addr}");
        let r = s.push("src", "up", #{{delete: true, dry_run: true}});
        for p in r.plan {{ print(`${{p.action}} | ${{p.name}} | ${{p.size}} | ${{p.reason}}`); }}
        print(`${{r.files}} ${{r.copied}} ${{r.made}} ${{r.deleted}}`);
        "#,
        addr = server.target()
    );
    let run = eval(work.path(), &code);
    assert_eq!(
        ok(&run),
        "mkdir | d | 0 | missing\n\
         copy | d/e.txt | 1 | new\n\
         copy | new.txt | 4 | new\n\
         delete | old.txt | 0 | file not in the source\n\
         0 [] [] []\n"
    );
    assert_eq!(tree(server.root()), before);
    let code = format!(
        r#"
        let r = connect("{addr}").push("src", "up", #{{delete: true}});
        print(`${{r.made}} ${{r.copied.map(|c| c.name)}} ${{r.deleted}} ${{r.plan}}`);
        "#,
        addr = server.target()
    );
    let run = eval(work.path(), &code);
    assert_eq!(
        ok(&run),
        "[\"d\"] [\"d/e.txt\", \"new.txt\"] [\"old.txt\"] []\n"
    );
}

#[test]
fn the_call_throws_only_when_the_sync_cannot_run() {
    let server = TestServer::start();
    let work = TempDir::new().unwrap();
    put(work.path(), "file.txt", b"f");
    let code = format!(
        r#"
        try {{ push("src", "up"); }} catch (e) {{ print(`${{e.kind}} | ${{e.message}}`); }}
        let s = connect("{addr}");
        for f in [|| s.push("nope", "up"), || s.pull("nope", "back"), || pull(".", "file.txt"),
                  || s.push("file.txt", "up", #{{exclude: "a[b"}})] {{
            try {{ f.call(); print("no error"); }} catch (e) {{ print(`${{e.kind}} | ${{e.message}}`); }}
        }}
        "#,
        addr = server.target()
    );
    let run = eval(work.path(), &code);
    assert_eq!(
        ok(&run),
        "not_connected | push `src` to `up`: not connected; connect to a server first\n\
         local_missing | push `nope` to `up`: local folder `nope` does not exist\n\
         not_found | pull `nope` to `back`: remote folder `nope` does not exist\n\
         local_io | pull `` to `file.txt`: `file.txt` is not a folder\n\
         refused | push `file.txt` to `up`: pattern `a[b`: error parsing glob '**/a[b': \
         unclosed character class; missing ']'\n"
    );
    assert!(!work.path().join("back").exists());
}

#[test]
fn with_progress_on_the_call_prints_a_summary_on_stderr() {
    let server = TestServer::start();
    let work = TempDir::new().unwrap();
    make_tree(&work.path().join("src"));
    let code = format!(
        "connect(\"{}\"); push(\"src\", \"up\"); push(\"src\", \"up\", #{{dry_run: true}});",
        server.target()
    );
    let run = eval_with(work.path(), "--progress", &code);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.stderr);
    assert!(
        lines[0].starts_with(
            "push: copied 3 files (22 B), made 3 folders, deleted 0, skipped 0, 0 failed, in "
        ),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines[1],
        "push (dry run, nothing done): would copy 0 files (0 B), make 0 folders, delete 0; skip 6"
    );
    // by default, progress follows the terminal: stderr is a pipe here
    let run = run_ioe(work.path(), &["run", "-e", &code], "");
    assert_eq!((run.code, run.stderr.as_str()), (Some(0), ""), "{run:#?}");
}

fn connect_line(server: &TestServer) -> String {
    common::connect_line(&server.target())
}

#[test]
fn the_repl_forms_push_and_pull_and_print_a_summary() {
    let server = TestServer::start();
    let work = TempDir::new().unwrap();
    make_tree(&work.path().join("src"));
    let input = connect_line(&server)
        + "PUSH, src , up\n\
           push,src,up\n\
           PULL,up,back\n\
           let r = pull(\"up\", \"back\"); print(`script ${r.files}`);\n\
           QUIT\n";
    let run = run_ioe(work.path(), &["repl", "--no-progress"], &input);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{}", run.stdout);
    assert!(
        lines[1].starts_with(
            "push: copied 3 files (22 B), made 3 folders, deleted 0, skipped 0, 0 failed, in "
        ),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with(
            "push: copied 0 files (0 B), made 0 folders, deleted 0, skipped 6, 0 failed, in "
        ),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].starts_with(
            "pull: copied 3 files (22 B), made 3 folders, deleted 0, skipped 0, 0 failed, in "
        ),
        "{}",
        lines[3]
    );
    assert_eq!(lines[4], "script 0");
    let source = tree(&work.path().join("src"));
    assert_eq!(tree(&server.root().join("up")), source);
    assert_eq!(tree(&work.path().join("back")), source);
}

#[test]
fn a_repl_push_with_failures_lists_them_and_fails_the_line() {
    let server = TestServer::start_with(|c| c.max_size = Some(100));
    let work = TempDir::new().unwrap();
    put(work.path(), "src/small.txt", b"small");
    put(work.path(), "src/big.bin", &[b'x'; 200]);
    std::os::unix::fs::symlink("small.txt", work.path().join("src/link")).unwrap();
    let input = connect_line(&server) + "PUSH,src,up\nprint(\"not reached\")\n";
    let run = run_ioe(work.path(), &["repl"], &input);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(
        run.stdout.contains(
            "push: copied 1 file (5 B), made 0 folders, deleted 0, skipped 1, 1 failed, in "
        ),
        "{}",
        run.stdout
    );
    // a link left out is said; unchanged files are only counted
    assert!(
        run.stdout.contains(
            "\n  skipped `link`: a symbolic link (links: \"follow\" copies what it points to)\n"
        ),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("not reached"), "{}", run.stdout);
    assert!(
        run.stderr.starts_with(
            "ioe: line 2: error: push `src` to `up`: 1 of 2 failed:\n  [refused] write `up/big.bin`: "
        ),
        "{}",
        run.stderr
    );
    assert_eq!(
        fs::read(server.root().join("up/small.txt")).unwrap(),
        b"small"
    );
    assert!(!server.root().join("up/big.bin").exists());
}

#[test]
fn repl_forms_with_more_than_one_comma_point_to_the_script_call() {
    let work = TempDir::new().unwrap();
    let run = run_ioe(work.path(), &["repl"], "PUSH,a,b,c\n");
    assert_eq!(run.code, Some(1));
    assert_eq!(
        run.stderr,
        "ioe: line 1: error: PUSH takes two folders separated by one comma, not 2; \
         for names with commas use push(\"local-folder\", \"remote-folder\")\n"
    );
    let run = run_ioe(work.path(), &["repl"], "PULL,up,back\n");
    assert_eq!(run.code, Some(1));
    assert_eq!(
        run.stderr,
        "ioe: line 1: error[not_connected]: pull `up` to `back`: not connected; \
         connect to a server first with CONNECT,host,port\n"
    );
}

/// Collects what `child` writes on stderr as it comes; the thread ends
/// with the pipe.
fn stderr_so_far(child: &mut Child) -> (Arc<Mutex<String>>, std::thread::JoinHandle<()>) {
    let text = Arc::new(Mutex::new(String::new()));
    let mut pipe = child.0.stderr.take().expect("stderr is piped");
    let into = Arc::clone(&text);
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = pipe.read(&mut buf) {
            into.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    (text, reader)
}

/// Waits (at most 30 s) for `child` to exit; its status code.
fn exit_code(child: &mut Child) -> Option<i32> {
    let mut status = None;
    wait_until(Duration::from_secs(30), || {
        status = child.0.try_wait().unwrap();
        status.is_some()
    });
    status.expect("ioe exited").code()
}

/// A pull of one 2 MiB file through a relay that holds the server's bytes
/// after 1 MiB, started with `progress`; the relay, once it holds.
fn held_pull(work: &Path, server: &TestServer, progress: &str) -> (Relay, Child) {
    put(server.root(), "t/big.bin", &pseudo_random(5, 2 << 20));
    let relay = Relay::start(server.addr());
    relay.hold_at(1 << 20);
    let code = format!(
        "connect(\"{}\"); \
         try {{ pull(\"t\", \"back\", #{{parallel: 1}}); }} catch (e) {{ print(`caught ${{e.kind}}`); }} \
         print(\"went on\");",
        common::target(relay.addr)
    );
    let child = spawn_ioe(work, &["run", progress, "-e", &code]);
    relay.wait_held();
    (relay, child)
}

#[test]
fn a_long_pull_draws_one_overall_bar_and_ends_with_the_summary() {
    let server = TestServer::start();
    let work = TempDir::new().unwrap();
    let (relay, mut child) = held_pull(work.path(), &server, "--progress");
    let (stderr, reader) = stderr_so_far(&mut child);
    // the bar appears once the copy has run about a second (bounded wait)
    let drawn = wait_until(Duration::from_secs(20), || {
        stderr.lock().unwrap().contains("pull 0/1 files (big.bin)")
    });
    relay.release();
    assert_eq!(exit_code(&mut child), Some(0));
    reader.join().unwrap();
    let text = stderr.lock().unwrap().clone();
    assert!(drawn, "no bar: {text:?}");
    assert!(text.contains(" 0 B/2.00 MiB "), "{text:?}");
    // the bar is cleared, then the summary is the last line
    assert!(
        text.contains(
            "pull: copied 1 file (2 MiB), made 0 folders, deleted 0, skipped 0, 0 failed, in "
        ) && text.ends_with(" s\n"),
        "{text:?}"
    );
    assert_eq!(
        fs::read(work.path().join("back/big.bin")).unwrap(),
        pseudo_random(5, 2 << 20)
    );
}

#[test]
fn ctrl_c_during_a_pull_ends_the_script_with_130_and_leaves_no_partial_file() {
    let server = TestServer::start();
    let work = TempDir::new().unwrap();
    let (relay, child) = held_pull(work.path(), &server, "--no-progress");
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let run = common::finish(child, std::thread::spawn(|| {}));
    drop(relay);
    // the script's catch did not swallow it, nor did it go on
    assert_eq!((run.code, run.stdout.as_str()), (Some(130), ""), "{run:#?}");
    assert!(
        run.stderr.contains("stopped by Ctrl-C (SIGINT)"),
        "{run:#?}"
    );
    assert_eq!(temp_files(work.path()), Vec::<std::path::PathBuf>::new());
    assert!(!work.path().join("back/big.bin").exists());
}
