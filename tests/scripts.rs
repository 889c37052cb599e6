//! The example scripts in `scripts/`, run by the real `ioe` binary against
//! real servers, checking the files they move.

mod common;

use common::{ServeProcess, TestServer, put, run_ioe, temp_files};
use std::fs;
use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

fn example(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
        .display()
        .to_string()
}

/// Runs `scripts/NAME` in `dir` with `args`.
fn run_example(dir: &Path, name: &str, args: &[&str]) -> common::Run {
    let script = example(name);
    let mut all = vec!["run", "--no-progress", script.as_str()];
    all.extend_from_slice(args);
    run_ioe(dir, &all, "")
}

#[test]
fn demo_moves_real_files_with_no_setup_and_cleans_up() {
    let cwd = TempDir::new().unwrap();
    let run = run_example(cwd.path(), "demo.rhai", &[]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("ioe demo: serving a temporary folder on 127.0.0.1:"));
    assert_eq!(lines[1], "uploaded   5 files, 262240 bytes");
    assert_eq!(lines[2], "listed     5 files under demo/");
    let checked: Vec<&str> = lines[3..8].to_vec();
    assert_eq!(
        checked,
        [
            "  ok    262144 bytes  demo/data/big.txt",
            "  ok        37 bytes  demo/data/deeper/notes, with a comma.txt",
            "  ok        21 bytes  demo/data/numbers.csv",
            "  ok         0 bytes  demo/empty.txt",
            "  ok        38 bytes  demo/readme.txt",
        ]
    );
    assert_eq!(lines[8], "downloaded 5 files, 262240 bytes");
    assert_eq!(
        lines[9],
        "mirrored   5 files, 262240 bytes, verified; a second run copied 0"
    );
    assert_eq!(lines[10], "ioe demo: all 5 files came back intact");
    assert_eq!(run.stderr, "");
    // nothing was left in the folder it ran from
    assert_eq!(fs::read_dir(cwd.path()).unwrap().count(), 0);
}

#[test]
fn upload_tree_uploads_a_whole_folder_keeping_its_layout() {
    let server = TestServer::start();
    let work = TempDir::new().unwrap();
    put(
        work.path(),
        "photos/2024/a.jpg",
        &common::pseudo_random(1, 70_000),
    );
    put(
        work.path(),
        "photos/2024/b, c.jpg",
        &common::pseudo_random(2, 10),
    );
    put(work.path(), "photos/index.txt", b"index");
    let addr = server.target();

    let run = run_example(work.path(), "upload_tree.rhai", &[&addr, "photos/"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(
        run.stdout,
        format!(
            "uploaded photos/2024/a.jpg\nuploaded photos/2024/b, c.jpg\nuploaded photos/index.txt\n\
             3 files, 70015 bytes uploaded to {} under photos/\n",
            server.addr()
        )
    );
    for name in ["2024/a.jpg", "2024/b, c.jpg", "index.txt"] {
        assert_eq!(
            fs::read(server.root().join("photos").join(name)).unwrap(),
            fs::read(work.path().join("photos").join(name)).unwrap(),
            "{name}"
        );
    }

    // to another remote folder
    let run = run_example(
        work.path(),
        "upload_tree.rhai",
        &[&addr, "photos", "backup/p"],
    );
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(
        fs::read(server.root().join("backup/p/index.txt")).unwrap(),
        b"index"
    );

    // one file is one file, not "1 files"
    fs::create_dir(work.path().join("single")).unwrap();
    fs::write(work.path().join("single/only.txt"), b"only").unwrap();
    let run = run_example(work.path(), "upload_tree.rhai", &[&addr, "single"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(
        run.stdout,
        format!(
            "uploaded single/only.txt\n1 file, 4 bytes uploaded to {} under single/\n",
            server.addr()
        )
    );

    // usage and failures exit non-zero
    let run = run_example(work.path(), "upload_tree.rhai", &[&addr]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.starts_with("usage: "), "{}", run.stderr);
    let run = run_example(work.path(), "upload_tree.rhai", &[&addr, "nope"]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr
            .starts_with("error[local_missing]: walk `nope`: `nope` does not exist"),
        "{}",
        run.stderr
    );
}

#[test]
fn upload_tree_uploads_everything_but_a_dangling_link_and_names_it() {
    let server = TestServer::start();
    let work = TempDir::new().unwrap();
    put(work.path(), "photos/a.jpg", b"a photo");
    put(work.path(), "photos/2024/b.jpg", b"another");
    // the photo it pointed to was deleted
    std::os::unix::fs::symlink("gone.jpg", work.path().join("photos/old.jpg")).unwrap();
    let addr = server.target();

    let run = run_example(work.path(), "upload_tree.rhai", &[&addr, "photos"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(
        run.stderr,
        "ioe: walk: skipped `photos/old.jpg`: a symbolic link to `gone.jpg`, \
         which does not exist\n"
    );
    assert_eq!(
        run.stdout,
        format!(
            "uploaded photos/2024/b.jpg\nuploaded photos/a.jpg\n\
             2 files, 14 bytes uploaded to {} under photos/\n",
            server.addr()
        )
    );
    assert_eq!(
        fs::read(server.root().join("photos/a.jpg")).unwrap(),
        b"a photo"
    );
    assert_eq!(
        fs::read(server.root().join("photos/2024/b.jpg")).unwrap(),
        b"another"
    );
    assert!(!server.root().join("photos/old.jpg").exists());
}

#[test]
fn download_matching_fetches_exactly_the_matching_files() {
    let server = TestServer::start();
    put(server.root(), "q1.csv", b"1");
    put(server.root(), "reports/2024-01-a.csv", b"jan");
    put(server.root(), "reports/2024-02-b.txt", b"feb");
    put(server.root(), "reports/old/2023-12.csv", b"dec");
    put(server.root(), "readme.md", b"no");
    let work = TempDir::new().unwrap();
    let addr = server.target();

    let run = run_example(
        work.path(),
        "download_matching.rhai",
        &[&addr, "*.csv", "got"],
    );
    assert_eq!(run.code, Some(0), "{run:#?}");
    let mut got: Vec<String> = walkdir::WalkDir::new(work.path().join("got"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            e.path()
                .strip_prefix(work.path().join("got"))
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        ["q1.csv", "reports/2024-01-a.csv", "reports/old/2023-12.csv"]
    );
    assert_eq!(
        fs::read(work.path().join("got/reports/old/2023-12.csv")).unwrap(),
        b"dec"
    );
    assert!(
        run.stdout
            .ends_with("3 files matching \"*.csv\", 7 bytes, downloaded into got\n"),
        "{}",
        run.stdout
    );

    let run = run_example(
        work.path(),
        "download_matching.rhai",
        &[&addr, "reports/2024-0?-*"],
    );
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(
        fs::read(work.path().join("reports/2024-01-a.csv")).unwrap(),
        b"jan"
    );
    assert_eq!(
        fs::read(work.path().join("reports/2024-02-b.txt")).unwrap(),
        b"feb"
    );
    assert!(!work.path().join("reports/old").exists());

    // one match is one file, not "1 files"
    let run = run_example(
        work.path(),
        "download_matching.rhai",
        &[&addr, "readme.md", "one"],
    );
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(
        run.stdout
            .ends_with("1 file matching \"readme.md\", 2 bytes, downloaded into one\n"),
        "{}",
        run.stdout
    );

    let run = run_example(
        work.path(),
        "download_matching.rhai",
        &[&addr, "*.pdf", "none"],
    );
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(!work.path().join("none").exists());
}

#[test]
fn batch_keep_going_downloads_what_it_can_and_exits_1_with_a_summary() {
    let server = TestServer::start();
    put(server.root(), "a.txt", b"aaa");
    put(server.root(), "dir/c.txt", b"cc");
    let work = TempDir::new().unwrap();
    let addr = server.target();

    let run = run_example(
        work.path(),
        "batch_keep_going.rhai",
        &[
            &addr,
            "out",
            "a.txt",
            "missing.txt",
            "../escape",
            "dir/c.txt",
        ],
    );
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert_eq!(
        run.stdout,
        "ok      a.txt (3 bytes)\n\
         FAILED  missing.txt [not_found]\n\
         FAILED  ../escape [bad_name]\n\
         ok      dir/c.txt (2 bytes)\n\
         2 of 4 files downloaded into out\n\
         2 failed:\n  \
         missing.txt: read `missing.txt`: server said: no such file or folder: `missing.txt` [not_found]\n  \
         ../escape: read `../escape`: name must not contain `.` or `..` components [bad_name]\n"
    );
    assert_eq!(fs::read(work.path().join("out/a.txt")).unwrap(), b"aaa");
    assert_eq!(fs::read(work.path().join("out/dir/c.txt")).unwrap(), b"cc");
    assert!(!work.path().join("out/missing.txt").exists());
    assert!(temp_files(work.path()).is_empty());

    let run = run_example(
        work.path(),
        "batch_keep_going.rhai",
        &[&addr, "again", "a.txt"],
    );
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(run.stdout.ends_with("1 of 1 files downloaded into again\n"));
}

/// A server whose first connection breaks in the middle of a download and
/// whose second one serves `a.txt` properly.
fn server_that_breaks_once() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for (i, stream) in listener.incoming().take(2).enumerate() {
            let Ok(stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut writer = stream;
            let line = common::plain_request(&mut reader, &mut writer);
            if line.is_empty() {
                return;
            }
            if i == 0 {
                let _ = writer.write_all(b"10\nhalf");
                continue; // dropping the stream breaks the transfer
            }
            assert_eq!(line, "READ,a.txt\n");
            let _ = writer.write_all(b"5\nhello");
            if common::plain_request(&mut reader, &mut writer) == "BYE\n" {
                let _ = writer.write_all(b"OK bye\n");
            }
        }
    });
    addr
}

#[test]
fn batch_keep_going_reconnects_after_a_lost_connection() {
    let addr = server_that_breaks_once();
    let work = TempDir::new().unwrap();
    let run = run_example(
        work.path(),
        "batch_keep_going.rhai",
        &[&addr, "out", "a.txt"],
    );
    assert_eq!(run.code, Some(0), "{run:#?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].starts_with(&format!(
            "retry   a.txt: read `a.txt`: connection to {addr} lost"
        )),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines[1..],
        [
            "ok      a.txt (5 bytes)",
            "1 of 1 files downloaded into out"
        ]
    );
    assert_eq!(fs::read(work.path().join("out/a.txt")).unwrap(), b"hello");
    assert!(temp_files(work.path()).is_empty());
}

/// A server whose only connection breaks in the middle of a download; it
/// stops listening first, so reconnecting is refused.
fn server_that_breaks_and_goes_away() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        common::stop_listening(listener);
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        if !common::plain_request(&mut reader, &mut writer).is_empty() {
            let _ = writer.write_all(b"10\nhalf");
        }
    });
    addr
}

#[test]
fn batch_keep_going_still_ends_with_a_summary_when_reconnecting_fails() {
    let addr = server_that_breaks_and_goes_away();
    let work = TempDir::new().unwrap();
    let run = run_example(
        work.path(),
        "batch_keep_going.rhai",
        &[&addr, "out", "a.txt", "b.txt"],
    );
    assert_eq!(run.code, Some(1), "{run:#?}");
    let refused = format!(
        "connect to `{addr}`: connection refused; is `ioe serve` running there? [connect_failed]"
    );
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("retry   a.txt: read `a.txt`: connection to "));
    assert_eq!(
        lines[1..],
        [
            "FAILED  a.txt [connect_failed]",
            "FAILED  b.txt [connect_failed]",
            "0 of 2 files downloaded into out",
            "2 failed:",
            &format!("  a.txt: {refused}"),
            &format!("  b.txt: {refused}"),
        ],
        "{run:#?}"
    );
    assert_eq!(run.stderr, "");
    assert!(!work.path().join("out/a.txt").exists());
    assert!(temp_files(work.path()).is_empty());
}

/// Every file under `dir` by name, with its contents.
fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let name = e.path().strip_prefix(dir).unwrap().to_str().unwrap();
            (name.to_string(), fs::read(e.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn nightly_backup_mirrors_a_folder_to_a_real_server_and_a_second_run_copies_nothing() {
    let served = TempDir::new().unwrap();
    // the server refuses uploads over 64 KiB
    let server = ServeProcess::start(served.path(), &["--max-size", "64K"]);
    let addr = server.target();
    put(served.path(), "backup/removed locally.txt", b"old");
    let work = TempDir::new().unwrap();
    let home = work.path().join("home");
    put(&home, "notes, 2026.txt", b"notes");
    put(&home, "photos/ünï.jpg", &[1, 2, 3, 255]);
    put(&home, "draft.tmp", b"temporary");
    put(&home, ".git/config", b"[core]");
    put(&home, "src/.cache/blob", b"cache");
    fs::create_dir_all(home.join("empty")).unwrap();
    let args = [addr.as_str(), "home", "backup"];

    let run = run_example(work.path(), "nightly_backup.rhai", &args);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[..3],
        [
            "copied   notes, 2026.txt (5 B)",
            "copied   photos/ünï.jpg (4 B)",
            "deleted  removed locally.txt",
        ]
    );
    assert!(
        lines[3].starts_with(&format!(
            "backup of home to {addr} backup: 2 copied (9 B), 1 deleted, 0 unchanged, 0 left out, \
             0 failed, 0 retried, in "
        )),
        "{}",
        lines[3]
    );
    assert_eq!(lines.len(), 4, "{}", run.stdout);
    assert_eq!(
        files_under(&served.path().join("backup")),
        [
            ("notes, 2026.txt".to_string(), b"notes".to_vec()),
            ("photos/ünï.jpg".to_string(), vec![1, 2, 3, 255]),
        ]
    );
    assert!(served.path().join("backup/empty").is_dir());
    assert!(served.path().join("backup/src").is_dir());
    assert!(!served.path().join("backup/src/.cache").exists());

    // nothing changed: nothing is sent
    let run = run_example(work.path(), "nightly_backup.rhai", &args);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(
        run.stdout.starts_with(&format!(
            "backup of home to {addr} backup: 0 copied (0 B), 0 deleted, 5 unchanged, 0 left out, "
        )),
        "{}",
        run.stdout
    );
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);

    // a file the server refuses fails the night, and so nothing is deleted
    put(&home, "video.bin", &vec![7; 100 * 1024]);
    fs::remove_file(home.join("notes, 2026.txt")).unwrap();
    let run = run_example(work.path(), "nightly_backup.rhai", &args);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(
        run.stdout
            .starts_with("FAILED   video.bin [refused]: write `backup/video.bin`: "),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("\nHELD     deletes: 1 file failed during the run, so nothing was deleted\n"),
        "{}",
        run.stdout
    );
    assert!(served.path().join("backup/notes, 2026.txt").exists());
    assert!(!served.path().join("backup/video.bin").exists());

    // more deletes than MAX_DELETE allows: none, and the night fails
    fs::remove_file(home.join("video.bin")).unwrap();
    fs::remove_dir_all(home.join("photos")).unwrap();
    let run = run_example(
        work.path(),
        "nightly_backup.rhai",
        &[&addr, "home", "backup", "2"],
    );
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(
        run.stdout.starts_with(
            "HELD     deletes: 3 entries would be deleted, more than max_delete (2), so none was\n"
        ),
        "{}",
        run.stdout
    );
    assert!(served.path().join("backup/photos/ünï.jpg").exists());
}
