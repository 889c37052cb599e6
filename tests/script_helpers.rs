//! The scripts' helpers for local files, time, sizes, path text and globs,
//! through the real `ioe run -e` binary: each function as a script calls
//! it, its results, and the error kinds a script catches.

mod common;

use common::{Child, Run, TestServer, finish, put, run_ioe};
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tempfile::TempDir;

/// `blake3("abc")` and `sha256("abc")`, from the algorithms' test vectors.
const BLAKE3_ABC: &str = "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85";
const SHA256_ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

/// Runs `-e CODE` in `dir`.
fn eval(dir: &Path, code: &str) -> Run {
    run_ioe(dir, &["run", "--no-progress", "-e", code], "")
}

/// The lines a script printed; fails the test if the script failed.
fn printed(dir: &Path, code: &str) -> Vec<String> {
    let run = eval(dir, code);
    assert_eq!(run.code, Some(0), "the script failed: {run:#?}");
    run.stdout.lines().map(str::to_string).collect()
}

/// The `kind | message` of the error `attempt` throws, as a script catches it.
fn caught(dir: &Path, attempt: &str) -> String {
    let code = format!(
        "try {{ {attempt}; print(\"no error\"); }} catch (e) {{ print(`${{e.kind}} | ${{e.message}}`); }}"
    );
    printed(dir, &code).join("\n")
}

#[test]
fn file_info_gives_size_mtime_and_kind_of_files_and_folders() {
    let work = TempDir::new().unwrap();
    let file = put(work.path(), "data/a.csv", b"12345");
    let stamp = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(stamp)
        .unwrap();
    let lines = printed(
        work.path(),
        r#"let i = file_info("data/a.csv");
           print(`${i.size} ${i.mtime} ${i.kind} ${type_of(i.mtime)}`);
           let d = file_info("data");
           print(`${d.size} ${d.kind}`);
           print(file_info("data/a.csv").keys());"#,
    );
    assert_eq!(
        lines,
        ["5 1700000000 f i64", "0 d", r#"["kind", "mtime", "size"]"#]
    );
    assert_eq!(
        caught(work.path(), r#"file_info("data/missing.csv")"#),
        "local_missing | file_info: `data/missing.csv` does not exist"
    );
}

#[test]
fn file_hash_matches_the_servers_hash_with_either_algorithm() {
    let server = TestServer::start();
    put(server.root(), "abc.txt", b"abc");
    let work = TempDir::new().unwrap();
    put(work.path(), "abc.txt", b"abc");
    let lines = printed(
        work.path(),
        r#"print(file_hash("abc.txt"));
           print(file_hash("abc.txt", "blake3"));
           print(file_hash("abc.txt", "sha256"));"#,
    );
    assert_eq!(lines, [BLAKE3_ABC, BLAKE3_ABC, SHA256_ABC]);
    // the same digests as the server's, so a script can compare them
    let mut raw = server.raw();
    raw.send(b"HASH,blake3,abc.txt\n");
    assert_eq!(raw.line(), format!("OK blake3 {BLAKE3_ABC}\n"));
    raw.send(b"HASH,sha256,abc.txt\n");
    assert_eq!(raw.line(), format!("OK sha256 {SHA256_ABC}\n"));
}

#[test]
fn file_hash_failures_have_their_kinds() {
    let work = TempDir::new().unwrap();
    put(work.path(), "abc.txt", b"abc");
    fs::create_dir(work.path().join("folder")).unwrap();
    assert_eq!(
        caught(work.path(), r#"file_hash("abc.txt", "md5")"#),
        "bad_argument | file_hash: unknown hash algorithm `md5`; use \"blake3\" or \"sha256\""
    );
    assert_eq!(
        caught(work.path(), r#"file_hash("nothing.bin")"#),
        "local_missing | file_hash: `nothing.bin` does not exist"
    );
    assert_eq!(
        caught(work.path(), r#"file_hash("folder")"#),
        "local_io | file_hash: `folder` is a folder"
    );
}

#[test]
fn now_is_the_current_second() {
    let work = TempDir::new().unwrap();
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let lines = printed(work.path(), "print(now()); print(type_of(now()));");
    let after = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let now: u64 = lines[0].parse().expect("an integer");
    assert!(before <= now && now <= after, "{before} {now} {after}");
    assert_eq!(lines[1], "i64");
}

#[test]
fn times_format_and_parse_in_utc_and_named_zones() {
    let work = TempDir::new().unwrap();
    // 2026-11-29T18:30:05Z
    let lines = printed(
        work.path(),
        r#"let t = 1795977005;
           print(format_time(t));
           print(format_time(t, "%d/%m/%Y %H:%M"));
           print(format_time(t, "", "Europe/Paris"));
           print(format_time(t, "%H:%M %Z", "America/New_York"));
           print(parse_time("2026-11-29T18:30:05Z"));
           print(parse_time("2026-11-29T19:30:05+01:00"));
           print(parse_time("2026-11-29 18:30:05"));
           print(parse_time("29/11/2026 19:30", "%d/%m/%Y %H:%M", "Europe/Paris"));
           print(parse_time(format_time(t, "%Y%m%d-%H%M%S"), "%Y%m%d-%H%M%S") == t);"#,
    );
    assert_eq!(
        lines,
        [
            "2026-11-29T18:30:05Z",
            "29/11/2026 18:30",
            "2026-11-29T19:30:05+01:00",
            "13:30 EST",
            "1795977005",
            "1795977005",
            "1795977005",
            "1795977000",
            "true",
        ]
    );
}

#[test]
fn bad_times_patterns_and_zones_are_bad_arguments() {
    let work = TempDir::new().unwrap();
    let message = caught(work.path(), r#"parse_time("next tuesday")"#);
    assert!(
        message.starts_with(
            "bad_argument | parse_time: `next tuesday` is not an ISO 8601 date and time \
             such as 2026-11-29T18:30:00Z: "
        ),
        "{message}"
    );
    let message = caught(work.path(), r#"parse_time("2026", "%d/%m/%Y")"#);
    assert!(
        message.starts_with("bad_argument | parse_time: `2026` is not a time as `%d/%m/%Y`: "),
        "{message}"
    );
    assert_eq!(
        caught(work.path(), r#"format_time(0, "", "Mars/Olympus")"#),
        "bad_argument | format_time: unknown time zone `Mars/Olympus`; give \"utc\", \
         \"local\" or a name such as \"Europe/Paris\""
    );
    assert_eq!(
        caught(work.path(), r#"format_time(0, "%J")"#),
        "bad_argument | format_time: cannot format with `%J`: strftime formatting failed: \
         found unrecognized specifier directive `J`"
    );
}

/// Runs `-e CODE` with the time zone `TZ` set to `zone`.
fn eval_in_zone(dir: &Path, zone: &str, code: &str) -> Run {
    let child = Command::new(env!("CARGO_BIN_EXE_ioe"))
        .args(["run", "--no-progress", "-e", code])
        .env("TZ", zone)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the ioe binary");
    let mut child = Child(child);
    drop(child.0.stdin.take());
    finish(child, std::thread::spawn(|| {}))
}

#[test]
fn local_times_use_the_machines_zone() {
    let work = TempDir::new().unwrap();
    let code = r#"print(format_time(0, "", "local"));
                  print(format_time(0, "%H:%M", "local"));
                  print(parse_time("1970-01-01T05:30:00", "", "local"));
                  print(parse_time("01/01/1970 05:30", "%d/%m/%Y %H:%M", "local"));
                  print(format_time(0));"#;
    let run = eval_in_zone(work.path(), "Asia/Kolkata", code);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(
        run.stdout,
        "1970-01-01T05:30:00+05:30\n05:30\n0\n0\n1970-01-01T00:00:00Z\n"
    );
    let run = eval_in_zone(work.path(), "America/New_York", code);
    assert_eq!(
        run.stdout,
        "1969-12-31T19:00:00-05:00\n19:00\n37800\n37800\n1970-01-01T00:00:00Z\n"
    );
}

#[test]
fn sizes_read_and_write_for_people() {
    let work = TempDir::new().unwrap();
    let lines = printed(
        work.path(),
        r#"print(human_size(0));
           print(human_size(1536));
           print(human_size(10485760));
           print(parse_size("10M"));
           print(parse_size("1.5 KiB"));
           print(parse_size("512"));
           print(human_size(parse_size("3G")));"#,
    );
    assert_eq!(
        lines,
        [
            "0 B", "1.5 KiB", "10 MiB", "10485760", "1536", "512", "3 GiB"
        ]
    );
    assert_eq!(
        caught(work.path(), r#"parse_size("10X")"#),
        "bad_argument | parse_size: `10X` is not a size: write a number of bytes, \
         optionally with a unit K, M, G or T (powers of 1024), such as 512, 10M or 1.5G"
    );
    assert_eq!(
        caught(work.path(), "human_size(-1)"),
        "bad_argument | human_size: -1 is not a number of bytes (0 or more)"
    );
    assert_eq!(
        caught(work.path(), r#"parse_size("9E")"#),
        "bad_argument | parse_size: `9E` is more bytes than a script integer holds"
    );
}

#[test]
fn path_text_helpers_split_and_join_with_slashes() {
    let work = TempDir::new().unwrap();
    let lines = printed(
        work.path(),
        r#"print(basename("out/2026/report.pdf"));
           print(dirname("out/2026/report.pdf"));
           print(dirname("report.pdf"));
           print(basename("out/2026/"));
           print(join_path("out", "a.txt"));
           print(join_path("out/", "/2026", "a.txt"));
           print(join_path("a", "", "c", "d.txt"));
           print(join_path(["in", "x", "y.csv"]));
           let p = join_path("data", "a.csv");
           write_text(p, "1,2");
           print(file_size(p));"#,
    );
    assert_eq!(
        lines,
        [
            "report.pdf",
            "out/2026",
            ".",
            "2026",
            "out/a.txt",
            "out/2026/a.txt",
            "a/c/d.txt",
            "in/x/y.csv",
            "3"
        ]
    );
    assert_eq!(
        caught(work.path(), r#"join_path(["a", 1])"#),
        "bad_argument | join_path: part 1 is i64, not a string"
    );
}

#[test]
fn glob_match_filters_names_and_refuses_bad_patterns() {
    let work = TempDir::new().unwrap();
    let lines = printed(
        work.path(),
        r#"let names = ["a.csv", "b.txt", "docs/c.csv", "docs/sub/d.csv"];
           print(names.filter(|n| glob_match("*.csv", n)));
           print(names.filter(|n| glob_match("**/*.csv", n)));
           print(names.filter(|n| glob_match("docs/*", n)));
           print(glob_match("*.{txt,md}", "b.txt"));"#,
    );
    assert_eq!(
        lines,
        [
            r#"["a.csv"]"#,
            r#"["a.csv", "docs/c.csv", "docs/sub/d.csv"]"#,
            r#"["docs/c.csv"]"#,
            "true"
        ]
    );
    let message = caught(work.path(), r#"glob_match("[a", "a")"#);
    assert!(
        message.starts_with("bad_argument | glob_match: `[a` is not a glob pattern: "),
        "{message}"
    );
}

#[test]
fn a_misused_helper_says_how_to_call_it() {
    let work = TempDir::new().unwrap();
    for (code, first_line) in [
        (
            "file_hash(1)",
            "error: Function not found: file_hash (int); call it as file_hash(path) or \
             file_hash(path, algorithm); algorithm is \"blake3\" (the default) or \"sha256\"",
        ),
        (
            "format_time(\"now\")",
            "error: Function not found: format_time (string); call it as \
             format_time(seconds), format_time(seconds, pattern) or \
             format_time(seconds, pattern, zone); seconds is an integer, zone is \"utc\", \
             \"local\" or a name such as \"Europe/Paris\"",
        ),
    ] {
        let run = eval(work.path(), code);
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
fn the_repls_help_lists_every_declared_function_and_those_defined_there() {
    let work = TempDir::new().unwrap();
    let run = run_ioe(
        work.path(),
        &["repl", "--no-history"],
        "fn twice(x) { x * 2 }\nhelp\n",
    );
    assert_eq!(run.code, Some(0), "{run:#?}");
    for doc in ioe::script::functions::API {
        let calls = format!("  {}\n      {}\n", doc.calls.join("  "), doc.doc);
        assert!(run.stdout.contains(&calls), "{calls}\n{}", run.stdout);
    }
    assert!(
        run.stdout
            .contains("\n  file_hash(path)  file_hash(path, algorithm)\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("\nDefined here: twice\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("\n  s.is_open     whether a session"),
        "{}",
        run.stdout
    );
}
