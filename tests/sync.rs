//! Whole-tree push and pull (`ioe::sync`) against real servers: trees with
//! sub-folders, empty folders and awkward names arrive byte-identical with
//! their mtimes; a second run copies nothing; the compare modes; every
//! safety rule that holds deletes back; retries through a relay that cuts
//! every third connection, and none for a refused file; a dry run that
//! lists exactly what the real run does; parallel and serial runs alike;
//! Ctrl-C leaving no partial file.

mod common;

use common::relay::Relay;
use common::{TestServer, mtime, put, set_mtime, temp_files, wait_until};
use ioe::sync::{Compare, Direction, SyncOptions, SyncReport, sync};
use ioe::{ErrorKind, Session};
use std::collections::BTreeMap;
use std::fs::{self};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tempfile::TempDir;

/// Every file and folder under `dir`: name → (contents or `None` for a
/// folder, mtime for a file).
fn snapshot(dir: &Path) -> BTreeMap<String, (Option<Vec<u8>>, u64)> {
    walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .map(|e| e.unwrap())
        .map(|e| {
            let name = e
                .path()
                .strip_prefix(dir)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            let value = if e.file_type().is_dir() {
                (None, 0)
            } else {
                (Some(fs::read(e.path()).unwrap()), mtime(e.path()))
            };
            (name, value)
        })
        .collect()
}

/// A tree with sub-folders, an empty folder and names with commas, spaces
/// and non-ASCII letters, files of old and varied mtimes.
fn make_tree(dir: &Path) {
    let files = [
        ("a.txt", &b"alpha"[..]),
        ("sub/b, with comma.txt", b"bravo"),
        ("sub/deeper/c d.txt", b"charlie delta"),
        ("sub/deeper/ünïcödé.bin", &[0, 1, 2, 255]),
        ("big.bin", &vec![7u8; 300_000]),
        ("empty-file", b""),
    ];
    for (i, (name, bytes)) in files.iter().enumerate() {
        let path = put(dir, name, bytes);
        set_mtime(&path, 1_500_000_000 + i as u64 * 1000);
    }
    fs::create_dir_all(dir.join("empty folder/inside too")).unwrap();
}

fn run(
    session: &mut Session,
    direction: Direction,
    local: &Path,
    remote: &str,
    options: &SyncOptions,
) -> SyncReport {
    sync(session, direction, local, remote, options).unwrap()
}

fn names(report: &SyncReport) -> Vec<&str> {
    report.copied.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn push_and_pull_move_a_whole_tree_with_mtimes_and_a_second_run_copies_nothing() {
    let server = TestServer::start();
    let source = TempDir::new().unwrap();
    make_tree(source.path());
    let mut s = server.session();
    let options = SyncOptions::default();

    let pushed = run(
        &mut s,
        Direction::Push,
        source.path(),
        "backup/today",
        &options,
    );
    assert_eq!(pushed.copied.len(), 6, "{pushed:?}");
    assert!(pushed.failed.is_empty(), "{:?}", pushed.failed);
    assert_eq!(pushed.bytes, 300_000 + 5 + 5 + 13 + 4);
    assert_eq!(
        snapshot(&server.root().join("backup/today")),
        snapshot(source.path())
    );

    let again = run(
        &mut s,
        Direction::Push,
        source.path(),
        "backup/today",
        &options,
    );
    assert_eq!(
        names(&again),
        Vec::<&str>::new(),
        "a second push copies nothing"
    );
    assert!(again.made.is_empty());

    let copy = TempDir::new().unwrap();
    let target = copy.path().join("restored");
    let pulled = run(&mut s, Direction::Pull, &target, "backup/today", &options);
    assert_eq!(pulled.copied.len(), 6);
    assert_eq!(
        snapshot(&target),
        snapshot(source.path()),
        "byte-identical, mtimes too"
    );
    let again = run(&mut s, Direction::Pull, &target, "backup/today", &options);
    assert_eq!(
        names(&again),
        Vec::<&str>::new(),
        "a second pull copies nothing"
    );
    assert!(s.is_open());
}

#[test]
fn a_changed_file_of_the_same_size_and_mtime_is_caught_only_by_digest() {
    let server = TestServer::start();
    let source = TempDir::new().unwrap();
    make_tree(source.path());
    let mut s = server.session();
    run(
        &mut s,
        Direction::Push,
        source.path(),
        "",
        &SyncOptions::default(),
    );
    // the same size and mtime, other bytes
    let changed = source.path().join("a.txt");
    fs::write(&changed, b"ALPHA").unwrap();
    set_mtime(&changed, 1_500_000_000);

    let default = run(
        &mut s,
        Direction::Push,
        source.path(),
        "",
        &SyncOptions::default(),
    );
    assert_eq!(names(&default), Vec::<&str>::new());
    let digest = SyncOptions {
        compare: Compare::Digest,
        ..SyncOptions::default()
    };
    let caught = run(&mut s, Direction::Push, source.path(), "", &digest);
    assert_eq!(names(&caught), ["a.txt"]);
    assert_eq!(fs::read(server.root().join("a.txt")).unwrap(), b"ALPHA");
    let always = SyncOptions {
        compare: Compare::Always,
        ..SyncOptions::default()
    };
    assert_eq!(
        run(&mut s, Direction::Push, source.path(), "", &always)
            .copied
            .len(),
        6
    );
}

#[test]
fn deletes_happen_only_when_asked_and_safe() {
    let server = TestServer::start_with(|c| c.max_size = Some(100_000));
    let source = TempDir::new().unwrap();
    put(source.path(), "keep.txt", b"keep");
    put(server.root(), "keep.txt", b"old");
    put(server.root(), "extra.txt", b"extra");
    put(server.root(), "old/deep/gone.txt", b"gone");
    let mut s = server.session();

    // not asked: nothing deleted
    let plain = run(
        &mut s,
        Direction::Push,
        source.path(),
        "",
        &SyncOptions::default(),
    );
    assert!(plain.deleted.is_empty() && server.root().join("extra.txt").exists());

    // a failure during the run holds every delete back
    put(source.path(), "too big.bin", &vec![1; 200_000]);
    let delete = SyncOptions {
        delete: true,
        ..SyncOptions::default()
    };
    let failed = run(&mut s, Direction::Push, source.path(), "", &delete);
    assert_eq!(failed.failed.len(), 1, "{:?}", failed.failed);
    assert_eq!(failed.failed[0].kind, ErrorKind::Refused);
    assert!(failed.deleted.is_empty());
    assert!(
        failed
            .deletes_held
            .as_deref()
            .unwrap()
            .contains("1 file failed")
    );
    assert!(server.root().join("extra.txt").exists());
    fs::remove_file(source.path().join("too big.bin")).unwrap();

    // more deletes than max_delete: none
    let limited = SyncOptions {
        max_delete: Some(2),
        ..delete.clone()
    };
    let held = run(&mut s, Direction::Push, source.path(), "", &limited);
    assert!(held.deleted.is_empty());
    assert!(
        held.deletes_held
            .as_deref()
            .unwrap()
            .contains("max_delete (2)"),
        "{:?}",
        held.deletes_held
    );

    // an empty source deletes nothing unless allowed
    let empty = TempDir::new().unwrap();
    let held = run(&mut s, Direction::Push, empty.path(), "", &delete);
    assert!(held.deleted.is_empty());
    assert!(
        held.deletes_held
            .as_deref()
            .unwrap()
            .contains("source folder is empty")
    );
    assert!(server.root().join("keep.txt").exists());

    // safe: files first, then folders deepest first
    let done = run(&mut s, Direction::Push, source.path(), "", &delete);
    assert_eq!(
        done.deleted,
        ["extra.txt", "old/deep/gone.txt", "old/deep", "old"]
    );
    assert_eq!(
        snapshot(server.root()).keys().collect::<Vec<_>>(),
        ["keep.txt"]
    );
    let allowed = SyncOptions {
        allow_empty_source: true,
        ..delete
    };
    let emptied = run(&mut s, Direction::Push, empty.path(), "", &allowed);
    assert_eq!(emptied.deleted, ["keep.txt"]);
}

#[test]
fn a_dry_run_changes_nothing_and_lists_exactly_what_the_real_run_does() {
    let server = TestServer::start();
    let source = TempDir::new().unwrap();
    make_tree(source.path());
    put(server.root(), "a.txt", b"older");
    put(server.root(), "stale.txt", b"x");
    let before = snapshot(server.root());
    let mut s = server.session();
    let options = SyncOptions {
        delete: true,
        ..SyncOptions::default()
    };
    let dry = run(
        &mut s,
        Direction::Push,
        source.path(),
        "",
        &SyncOptions {
            dry_run: true,
            ..options.clone()
        },
    );
    assert_eq!(snapshot(server.root()), before, "a dry run changes nothing");
    let planned = |action: &str| -> Vec<String> {
        dry.plan
            .iter()
            .filter(|p| p.action == action)
            .map(|p| p.name.clone())
            .collect()
    };
    let real = run(&mut s, Direction::Push, source.path(), "", &options);
    assert_eq!(planned("copy"), names(&real));
    assert_eq!(planned("mkdir"), real.made);
    assert_eq!(planned("delete"), real.deleted);
    let a = dry.plan.iter().find(|p| p.name == "a.txt").unwrap();
    assert_eq!((a.size, a.reason.as_str()), (5, "mtime differs"));
}

#[test]
fn parallel_and_pipelined_runs_give_the_same_result_as_a_serial_one() {
    let server = TestServer::start();
    let tree = server.root().join("many");
    for i in 0..300 {
        let body = common::pseudo_random(i, (i as usize * 37) % 5000);
        let path = put(&tree, &format!("d{}/f{i:03}", i % 7), &body);
        set_mtime(&path, 1_600_000_000 + i);
    }
    put(&tree, "large.bin", &common::pseudo_random(1, 3_000_000));
    let mut s = server.session();
    let serial = TempDir::new().unwrap();
    let parallel = TempDir::new().unwrap();
    let one = SyncOptions {
        parallel: 1,
        ..SyncOptions::default()
    };
    let eight = SyncOptions {
        parallel: 8,
        ..SyncOptions::default()
    };
    let a = run(&mut s, Direction::Pull, serial.path(), "many", &one);
    let b = run(&mut s, Direction::Pull, parallel.path(), "many", &eight);
    assert_eq!(a.copied, b.copied);
    assert_eq!(snapshot(serial.path()), snapshot(&tree));
    assert_eq!(snapshot(parallel.path()), snapshot(&tree));
    // and back up, in parallel
    let c = run(&mut s, Direction::Push, parallel.path(), "copy", &eight);
    assert_eq!(c.copied.len(), 301);
    assert_eq!(snapshot(&server.root().join("copy")), snapshot(&tree));
}

#[test]
fn retries_get_through_a_relay_that_cuts_every_third_connection_and_never_retry_a_refusal() {
    let server = TestServer::start_with(|c| c.max_size = Some(500_000));
    let tree = server.root().join("t");
    for i in 0..40 {
        put(
            &tree,
            &format!("f{i:02}"),
            &common::pseudo_random(i, 60_000),
        );
    }
    let relay = Relay::start(server.addr());
    relay.cut_every(3, 100_000);
    let mut s = common::connect(relay.addr).unwrap();
    let options = SyncOptions {
        parallel: 3,
        retries: 10,
        retry_delay: Duration::from_millis(5),
        ..SyncOptions::default()
    };
    let local = TempDir::new().unwrap();
    let pulled = sync(&mut s, Direction::Pull, local.path(), "t", &options).unwrap();
    assert!(pulled.failed.is_empty(), "{:?}", pulled.failed);
    assert_eq!(snapshot(local.path()), snapshot(&tree));
    assert!(
        relay.cuts() > 0 && pulled.retries > 0,
        "cuts {} retries {}",
        relay.cuts(),
        pulled.retries
    );
    assert_eq!(temp_files(local.path()), Vec::<PathBuf>::new());

    // a refusal is final: tried once
    put(local.path(), "too big", &vec![0; 600_000]);
    let mut s = server.session();
    let pushed = sync(&mut s, Direction::Push, local.path(), "t", &options).unwrap();
    assert_eq!(pushed.failed.len(), 1);
    assert_eq!(pushed.failed[0].name, "too big");
    assert_eq!(pushed.failed[0].kind, ErrorKind::Refused);
    assert_eq!(pushed.retries, 0);
}

#[test]
fn ctrl_c_stops_every_transfer_in_flight_and_leaves_no_partial_file() {
    let server = TestServer::start();
    let tree = server.root().join("t");
    for i in 0..8 {
        put(
            &tree,
            &format!("f{i}"),
            &common::pseudo_random(i, 8 * 1024 * 1024),
        );
    }
    let relay = Relay::start(server.addr());
    relay.hold_at(20 * 1024 * 1024);
    let cancel = ioe::cancel::CancelToken::new();
    let local = TempDir::new().unwrap();
    let client = {
        let (addr, cancel, dest) = (relay.addr, cancel.clone(), local.path().to_path_buf());
        std::thread::spawn(move || {
            let mut s = common::connect(addr).unwrap();
            s.set_cancel(cancel);
            sync(&mut s, Direction::Pull, &dest, "t", &SyncOptions::default())
        })
    };
    relay.wait_held();
    cancel.cancel();
    let e = client.join().unwrap().unwrap_err();
    assert_eq!(e.kind, ErrorKind::Cancelled, "{e}");
    drop(relay);
    assert_eq!(temp_files(local.path()), Vec::<PathBuf>::new());
    // whatever arrived whole is whole
    for (name, (bytes, _)) in snapshot(local.path()) {
        if let Some(bytes) = bytes {
            assert_eq!(bytes, fs::read(tree.join(&name)).unwrap(), "{name}");
        }
    }
    // and the server throws away nothing of its own
    assert!(wait_until(Duration::from_secs(5), || temp_files(
        server.root()
    )
    .is_empty()));
}

#[test]
fn a_missing_source_fails_the_call_and_links_are_skipped_and_said() {
    let server = TestServer::start();
    let mut s = server.session();
    let nowhere = Path::new("/nonexistent/ioe-test");
    let e = sync(
        &mut s,
        Direction::Push,
        nowhere,
        "x",
        &SyncOptions::default(),
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::LocalMissing, "{e}");
    let local = TempDir::new().unwrap();
    let e = sync(
        &mut s,
        Direction::Pull,
        local.path(),
        "nope",
        &SyncOptions::default(),
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");

    put(local.path(), "real.txt", b"real");
    std::os::unix::fs::symlink("real.txt", local.path().join("link.txt")).unwrap();
    let report = run(
        &mut s,
        Direction::Push,
        local.path(),
        "up",
        &SyncOptions::default(),
    );
    assert_eq!(names(&report), ["real.txt"]);
    let skipped = report
        .skipped
        .iter()
        .find(|k| k.name == "link.txt")
        .unwrap();
    assert!(
        skipped.reason.contains("symbolic link"),
        "{}",
        skipped.reason
    );
    let follow = SyncOptions {
        links: ioe::sync::Links::Follow,
        ..SyncOptions::default()
    };
    let report = run(&mut s, Direction::Push, local.path(), "up", &follow);
    assert_eq!(names(&report), ["link.txt"]);
    assert_eq!(
        fs::read(server.root().join("up/link.txt")).unwrap(),
        b"real"
    );
}

#[test]
fn one_files_local_failure_does_not_fail_the_others_in_its_batch() {
    let server = TestServer::start();
    let tree = server.root().join("t");
    put(&tree, "big", &vec![9; 3 * 1024 * 1024]);
    for i in 0..5 {
        put(&tree, &format!("s{i}"), b"small");
    }
    let work = TempDir::new().unwrap();
    let script = format!(
        r#"let s = connect("{}");
let r = s.pull("t", "dl", #{{parallel: 1, retry_delay: 0.01}});
for f in r.failed {{ print("failed " + f.name + " " + f.kind); }}
print("copied " + r.files);"#,
        server.target()
    );
    // local files past 1 MB fail with "File too large"
    let out = std::process::Command::new("sh")
        .envs(common::child_env())
        .args(["-c", r#"ulimit -f 2000 && exec "$0" "$@""#])
        .arg(env!("CARGO_BIN_EXE_ioe"))
        .args(["run", "--no-progress", "-e", &script])
        .current_dir(work.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout, "failed big local_io\ncopied 5\n", "{out:?}");
    assert_eq!(temp_files(work.path()), Vec::<PathBuf>::new());
}

#[test]
fn a_pull_writes_nothing_through_a_local_link() {
    let server = TestServer::start();
    put(server.root(), "t/a/evil", b"evil");
    put(server.root(), "t/ok.txt", b"ok");
    let local = TempDir::new().unwrap();
    let elsewhere = TempDir::new().unwrap();
    fs::create_dir(local.path().join("dl")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), local.path().join("dl/a")).unwrap();
    let mut s = server.session();
    let report = run(
        &mut s,
        Direction::Pull,
        &local.path().join("dl"),
        "t",
        &SyncOptions::default(),
    );
    assert_eq!(names(&report), ["ok.txt"]);
    assert!(
        !elsewhere.path().join("evil").exists(),
        "written through the link"
    );
    let failed: Vec<&str> = report.failed.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(failed, ["a", "a/evil"]);
    assert!(
        report.failed[0].message.contains("symbolic link"),
        "{}",
        report.failed[0].message
    );
}

#[test]
fn a_remote_link_to_a_folder_is_neither_written_through_nor_emptied() {
    let server = TestServer::start();
    put(server.root(), "t/data/f", b"data");
    std::os::unix::fs::symlink("data", server.root().join("t/alias")).unwrap();
    let local = TempDir::new().unwrap();
    put(local.path(), "data/f", b"data");
    put(local.path(), "alias/f", b"data");
    let mut s = server.session();
    let delete = SyncOptions {
        delete: true,
        ..SyncOptions::default()
    };
    // WALK shows `alias` as an empty folder: a pull must not delete alias/f
    let pulled = run(&mut s, Direction::Pull, local.path(), "t", &delete);
    assert!(
        local.path().join("alias/f").exists(),
        "{:?}",
        pulled.deleted
    );
    let skipped = pulled.skipped.iter().find(|k| k.name == "alias/f").unwrap();
    assert!(
        skipped.reason.contains("link to a folder on the server"),
        "{}",
        skipped.reason
    );
    // nor a push write through it, and then delete data/g as extra
    put(local.path(), "alias/g", b"new");
    let pushed = run(&mut s, Direction::Push, local.path(), "t", &delete);
    assert!(pushed.failed.is_empty(), "{:?}", pushed.failed);
    assert!(!server.root().join("t/data/g").exists());
    assert_eq!(fs::read(server.root().join("t/data/f")).unwrap(), b"data");
    assert!(pushed.deleted.is_empty(), "{:?}", pushed.deleted);
}

#[test]
fn a_source_folder_with_a_hole_in_its_listing_holds_every_delete_back() {
    let server = TestServer::start();
    put(server.root(), "b/kept.txt", b"kept");
    put(server.root(), "b/gone.txt", b"gone");
    let source = TempDir::new().unwrap();
    put(source.path(), "kept.txt", b"kept");
    // a link followed into nothing: the walk cannot read it (as a folder
    // without permission, which root cannot be shown here)
    std::os::unix::fs::symlink("nowhere", source.path().join("hole")).unwrap();
    let options = SyncOptions {
        delete: true,
        links: ioe::sync::Links::Follow,
        ..SyncOptions::default()
    };
    let mut s = server.session();
    let dry = run(
        &mut s,
        Direction::Push,
        source.path(),
        "b",
        &SyncOptions {
            dry_run: true,
            ..options.clone()
        },
    );
    assert!(
        dry.plan.iter().all(|p| p.action != "delete"),
        "{:?}",
        dry.plan
    );
    let report = run(&mut s, Direction::Push, source.path(), "b", &options);
    assert_eq!(report.failed.len(), 1, "{:?}", report.failed);
    assert_eq!(
        (report.failed[0].name.as_str(), report.failed[0].kind),
        ("hole", ErrorKind::LocalIo)
    );
    assert!(report.deleted.is_empty());
    assert!(
        report
            .deletes_held
            .as_deref()
            .unwrap()
            .contains("1 file failed")
    );
    assert!(server.root().join("b/gone.txt").exists());
}
