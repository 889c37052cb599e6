//! The IOE/1 core over real TCP: whole files in both directions, names,
//! confinement to the root, failures that keep nothing partial, concurrent
//! writers, pipelining and refused uploads.

mod common;

use common::{Raw, TestServer, pseudo_random, put, temp_files, wait_until};
use ioe::protocol::EntryKind;
use ioe::server::Config;
use ioe::{ErrorKind, Session};
use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;
use tempfile::TempDir;

/// How long the server thread may take to notice a vanished client.
const NOTICE: Duration = Duration::from_secs(10);

#[test]
fn files_of_every_size_round_trip_byte_for_byte() {
    let server = TestServer::start();
    let local = TempDir::new().unwrap();
    let mut session = server.session();
    for (seed, len) in [(1, 0), (2, 1), (3, 10 * 1024 * 1024)] {
        let name = format!("up-{len}.bin");
        let original = pseudo_random(seed, len);

        // client → server
        let source = put(local.path(), &format!("source-{len}"), &original);
        assert_eq!(session.write(&source, &name).unwrap(), len as u64);
        assert!(
            fs::read(server.root().join(&name)).unwrap() == original,
            "uploaded {name} differs"
        );

        // server → client, of the file just uploaded
        let back = local.path().join(format!("back-{len}"));
        assert_eq!(session.read(&name, &back).unwrap(), len as u64);
        assert!(
            fs::read(&back).unwrap() == original,
            "{name} came back different"
        );

        // server → client, of a file put there by someone else
        let other = pseudo_random(seed + 100, len);
        put(server.root(), &format!("down-{len}.bin"), &other);
        let down = local.path().join(format!("down-{len}"));
        assert_eq!(
            session.read(&format!("down-{len}.bin"), &down).unwrap(),
            len as u64
        );
        assert!(
            fs::read(&down).unwrap() == other,
            "download of {len} differs"
        );
    }
    assert_eq!(temp_files(server.root()), Vec::<std::path::PathBuf>::new());
    assert_eq!(temp_files(local.path()), Vec::<std::path::PathBuf>::new());
    session.bye().unwrap();
    assert!(!session.is_open());
}

#[test]
fn downloads_create_missing_local_folders_and_replace_old_files() {
    let server = TestServer::start();
    put(server.root(), "f.txt", b"new contents");
    let local = TempDir::new().unwrap();
    let target = put(local.path(), "a/b/f.txt", b"old");
    let mut session = server.session();
    session.read("f.txt", &target).unwrap();
    assert_eq!(fs::read(&target).unwrap(), b"new contents");
    let deeper = local.path().join("x/y/z.txt");
    session.read("f.txt", &deeper).unwrap();
    assert_eq!(fs::read(&deeper).unwrap(), b"new contents");
}

#[test]
fn a_download_that_cannot_be_stored_keeps_the_session_in_sync() {
    // the client sends READ before it makes its temporary file, so a local
    // failure comes with a body on its way, which must be skipped
    let server = TestServer::start();
    let body = pseudo_random(7, 3 * 256 * 1024 + 5);
    put(server.root(), "big.bin", &body);
    let local = TempDir::new().unwrap();
    let blocker = put(local.path(), "blocker", b"a file where a folder is needed");
    let mut session = server.session();
    let e = session
        .read("big.bin", &blocker.join("sub/x.bin"))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::LocalIo, "{e}");
    assert!(e.to_string().contains("blocker/sub/x.bin"), "{e}");
    assert!(session.is_open(), "{e}");
    let target = local.path().join("x.bin");
    assert_eq!(session.read("big.bin", &target).unwrap(), body.len() as u64);
    assert_eq!(fs::read(&target).unwrap(), body);
    assert_eq!(temp_files(local.path()), Vec::<std::path::PathBuf>::new());
}

#[test]
fn a_download_to_a_folder_or_to_no_name_is_refused_before_asking() {
    let server = TestServer::start();
    put(server.root(), "dir/f.txt", b"contents");
    let local = TempDir::new().unwrap();
    let mut session = server.session();
    for (target, words) in [
        (local.path().to_path_buf(), "is a folder"),
        (local.path().join("."), "is a folder"),
        (local.path().join("sub/.."), "is a folder"),
        (std::path::PathBuf::new(), "no local file name"),
    ] {
        let e = session.read("dir/f.txt", &target).unwrap_err();
        assert_eq!(e.kind, ErrorKind::LocalIo, "{e}");
        let message = e.to_string();
        assert!(message.contains(words), "{target:?}: {message}");
        assert!(!message.contains("os error"), "{target:?}: {message}");
        assert!(session.is_open(), "{message}");
    }
    // the message points at the path that would work
    let e = session.read("dir/f.txt", local.path()).unwrap_err();
    let wanted = local.path().join("f.txt");
    assert!(
        e.to_string().contains(&format!("`{}`", wanted.display())),
        "{e}"
    );
    assert_eq!(fs::read_dir(local.path()).unwrap().count(), 0);
    session.read("dir/f.txt", &wanted).unwrap();
    assert_eq!(fs::read(&wanted).unwrap(), b"contents");
}

const ODD_NAMES: [&str; 5] = [
    "a,b c.txt",
    "comma, at, end,",
    "dir/sub, x/ünï çødé 1,2.bin",
    "dir/top.txt",
    "日本語/ファイル 名,1",
];

#[test]
fn names_with_commas_spaces_non_ascii_and_folders_work() {
    let server = TestServer::start();
    let local = TempDir::new().unwrap();
    let mut session = server.session();
    for (i, name) in ODD_NAMES.iter().enumerate() {
        let contents = pseudo_random(i as u64, 100 + i);
        let source = put(local.path(), &format!("src{i}"), &contents);
        session.write(&source, name).unwrap();
        assert_eq!(fs::read(server.root().join(name)).unwrap(), contents);
        let back = local.path().join(format!("back{i}"));
        session.read(name, &back).unwrap();
        assert_eq!(fs::read(&back).unwrap(), contents, "{name}");
    }

    let root: Vec<(EntryKind, u64, String)> = session
        .list(None)
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, e.size, e.name))
        .collect();
    assert_eq!(
        root,
        vec![
            (EntryKind::File, 100, "a,b c.txt".to_string()),
            (EntryKind::File, 101, "comma, at, end,".to_string()),
            (EntryKind::Dir, 0, "dir".to_string()),
            (EntryKind::Dir, 0, "日本語".to_string()),
        ]
    );
    let dir: Vec<(EntryKind, String)> = session
        .list(Some("dir"))
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, e.name))
        .collect();
    assert_eq!(
        dir,
        vec![
            (EntryKind::Dir, "dir/sub, x".to_string()),
            (EntryKind::File, "dir/top.txt".to_string()),
        ]
    );
    let sub = session.list(Some("dir/sub, x")).unwrap();
    assert_eq!(sub.len(), 1);
    assert_eq!(sub[0].name, "dir/sub, x/ünï çødé 1,2.bin");
    assert_eq!(sub[0].size, 102);

    // listed names go straight back into READ
    for entry in session.list(Some("日本語")).unwrap() {
        let back = local.path().join("listed");
        session.read(&entry.name, &back).unwrap();
        assert_eq!(fs::read(&back).unwrap(), pseudo_random(4, 104));
    }
}

#[test]
fn list_replies_are_framed_sorted_full_names() {
    let server = TestServer::start();
    put(server.root(), "b.txt", b"12345");
    put(server.root(), "a, b/inner.txt", b"x");
    put(server.root(), "a, b/deeper/z", b"");
    put(server.root(), "C", b"cc");
    fs::create_dir(server.root().join("empty")).unwrap();

    let mut raw = server.raw();
    raw.send(b"LIST\n");
    let lines = raw.list_reply();
    let shapes: Vec<(String, String, String)> = lines.iter().map(|l| shape(l)).collect();
    assert_eq!(
        shapes,
        vec![
            ("f".into(), "2".into(), "C".into()),
            ("d".into(), "0".into(), "a, b".into()),
            ("f".into(), "5".into(), "b.txt".into()),
            ("d".into(), "0".into(), "empty".into()),
        ]
    );

    raw.send(b"LIST,a, b\r\n");
    let shapes: Vec<_> = raw.list_reply().iter().map(|l| shape(l)).collect();
    assert_eq!(
        shapes,
        vec![
            ("d".into(), "0".into(), "a, b/deeper".into()),
            ("f".into(), "1".into(), "a, b/inner.txt".into()),
        ]
    );
    raw.send(b"LIST,empty\n");
    assert_eq!(raw.line(), "OK 0\n");
    raw.send(b"LIST,b.txt\n");
    assert!(raw.line().starts_with("ERROR: "), "LIST of a file");
    raw.send(b"LIST,nothing\n");
    assert_eq!(raw.line(), "ERROR: no such file or folder: `nothing`\n");
    raw.send(b"BYE\n");
    assert_eq!(raw.line(), "OK bye\n");
    raw.expect_closed();
}

/// Splits an entry line into kind, size and name, checking the mtime is a
/// plausible number of seconds.
fn shape(line: &str) -> (String, String, String) {
    let line = line.strip_suffix('\n').expect("entry line ends in LF");
    let fields: Vec<&str> = line.splitn(4, ',').collect();
    assert_eq!(fields.len(), 4, "entry line {line:?}");
    let mtime: u64 = fields[2].parse().expect("mtime is a number");
    assert!(mtime > 1_500_000_000, "mtime {mtime} is not recent");
    (fields[0].into(), fields[1].into(), fields[3].into())
}

/// Names the protocol refuses and that can be sent on one request line.
fn refused_names() -> Vec<(String, &'static str)> {
    vec![
        (String::new(), "empty"),
        ("a//b".into(), "empty component"),
        ("a/".into(), "trailing slash"),
        (".".into(), "dot"),
        ("..".into(), "dot dot"),
        ("a/./b".into(), "inner dot"),
        ("../escape".into(), "leading dot dot"),
        ("a/../../escape".into(), "inner dot dot"),
        ("/etc/passwd".into(), "leading slash"),
        ("a\\b".into(), "backslash"),
        ("..\\escape".into(), "backslash dot dot"),
        ("a\0b".into(), "NUL"),
        ("a\rb".into(), "CR"),
        ("a".repeat(1025), "too long"),
        (".ioe-tmp-x".into(), "temporary"),
    ]
}

#[test]
fn server_refuses_bad_names_and_the_session_goes_on() {
    let server = TestServer::start();
    let mut raw = server.raw();
    for (name, why) in refused_names() {
        raw.send(format!("READ,{name}\n").as_bytes());
        let reply = raw.line();
        assert!(reply.starts_with("ERROR: "), "READ {why}: {reply:?}");

        if !name.is_empty() {
            raw.send(format!("LIST,{name}\n").as_bytes());
            let reply = raw.line();
            assert!(reply.starts_with("ERROR: "), "LIST {why}: {reply:?}");
        }

        // the body is a request of its own: if the server did not skip it,
        // an extra reply would come back
        raw.send(format!("WRITE,{name},5\nLIST\n").as_bytes());
        let reply = raw.line();
        assert!(reply.starts_with("ERROR: "), "WRITE {why}: {reply:?}");

        raw.send(b"LIST\n");
        assert_eq!(raw.line(), "OK 0\n", "after {why}, nothing was created");
    }
    raw.send(b"LIST,\n");
    assert!(raw.line().starts_with("ERROR: "), "LIST with an empty name");
    raw.send(b"BYE\n");
    assert_eq!(raw.line(), "OK bye\n");
    raw.expect_closed();

    let outside: Vec<_> = fs::read_dir(server.outside())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, vec!["root"], "nothing escaped the root");
}

#[test]
fn bad_name_replies_say_what_is_wrong() {
    let server = TestServer::start();
    let mut raw = server.raw();
    let cases: [(&[u8], &str); 5] = [
        (b"READ,../x\n", "`.` or `..`"),
        (b"READ,/x\n", "leading `/`"),
        (b"READ,a\\b\n", "backslash"),
        (b"READ,a\0b\n", "NUL, CR or LF"),
        (b"READ,\xff\n", "UTF-8"),
    ];
    for (request, words) in cases {
        raw.send(request);
        let reply = raw.line();
        assert!(
            reply.starts_with("ERROR: ") && reply.contains(words),
            "{request:?}: {reply:?}"
        );
    }
}

#[test]
fn the_client_refuses_bad_names_before_sending() {
    let server = TestServer::start();
    let local = TempDir::new().unwrap();
    let source = put(local.path(), "source", b"data");
    let mut session = server.session();
    let mut names = refused_names();
    names.push(("a\nb".into(), "LF"));
    for (name, why) in names {
        let e = session.read(&name, &local.path().join("t")).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadName, "read {why}: {e}");
        let e = session.write(&source, &name).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadName, "write {why}: {e}");
        assert!(e.to_string().contains("name"), "write {why}: {e}");
        let e = session.list(Some(&name)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadName, "list {why}: {e}");
        assert!(session.is_open(), "{why}");
    }
    assert!(session.list(None).unwrap().is_empty());
    assert!(!local.path().join("t").exists());
    assert_eq!(temp_files(local.path()), Vec::<std::path::PathBuf>::new());
}

/// A root with links out of it (to a file and to a folder), links inside
/// it, and a dangling link.
fn linked_server() -> TestServer {
    use std::os::unix::fs::symlink;
    let server = TestServer::start();
    let outside = server.outside();
    put(outside, "secret.txt", b"secret");
    put(outside, "secretdir/inner.txt", b"inner secret");
    let root = server.root();
    put(root, "real.txt", b"real");
    put(root, "realdir/r.txt", b"in realdir");
    symlink(outside.join("secret.txt"), root.join("out_file")).unwrap();
    symlink(outside.join("secretdir"), root.join("out_dir")).unwrap();
    symlink("../secret.txt", root.join("relative_out")).unwrap();
    symlink("real.txt", root.join("in_file")).unwrap();
    symlink(root.join("realdir"), root.join("in_dir")).unwrap();
    symlink("nowhere", root.join("dangling")).unwrap();
    server
}

#[test]
fn links_out_of_the_root_cannot_be_read_listed_or_written() {
    let server = linked_server();
    let mut raw = server.raw();
    for request in [
        "READ,out_file",
        "READ,relative_out",
        "READ,out_dir/inner.txt",
        "LIST,out_dir",
        "READ,dangling",
    ] {
        raw.send(format!("{request}\n").as_bytes());
        let reply = raw.line();
        assert!(reply.starts_with("ERROR: "), "{request}: {reply:?}");
        assert!(!reply.contains("secret"), "{request} leaked: {reply:?}");
    }
    for name in [
        "out_file",
        "relative_out",
        "out_dir/inner.txt",
        "out_dir/new.txt",
        "out_dir/deeper/new.txt",
        "dangling",
    ] {
        raw.send(format!("WRITE,{name},6\nLIST\n\n").as_bytes());
        let reply = raw.line();
        assert!(reply.starts_with("ERROR: "), "WRITE {name}: {reply:?}");
    }
    raw.send(b"LIST\n");
    let names: Vec<String> = raw.list_reply().iter().map(|l| shape(l).2).collect();
    assert_eq!(names, vec!["in_dir", "in_file", "real.txt", "realdir"]);

    let outside = server.outside();
    assert_eq!(fs::read(outside.join("secret.txt")).unwrap(), b"secret");
    assert_eq!(
        fs::read(outside.join("secretdir/inner.txt")).unwrap(),
        b"inner secret"
    );
    assert!(!outside.join("secretdir/new.txt").exists());
    assert!(!outside.join("secretdir/deeper").exists());
    assert!(!outside.join("root/nowhere").exists());
    assert_eq!(temp_files(outside), Vec::<std::path::PathBuf>::new());

    // the client sees the same refusals
    let local = TempDir::new().unwrap();
    let mut session = server.session();
    let e = session
        .read("out_file", &local.path().join("got"))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Refused, "{e}");
    assert!(e.to_string().contains("outside"), "{e}");
    assert!(!local.path().join("got").exists());
    assert_eq!(
        session.list(Some("out_dir")).unwrap_err().kind,
        ErrorKind::Refused
    );
    assert!(session.is_open());
}

#[test]
fn links_inside_the_root_work() {
    let server = linked_server();
    let local = TempDir::new().unwrap();
    let mut session = server.session();

    let got = local.path().join("got");
    session.read("in_file", &got).unwrap();
    assert_eq!(fs::read(&got).unwrap(), b"real");
    session.read("in_dir/r.txt", &got).unwrap();
    assert_eq!(fs::read(&got).unwrap(), b"in realdir");

    let listed: Vec<(EntryKind, String)> = session
        .list(Some("in_dir"))
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, e.name))
        .collect();
    assert_eq!(listed, vec![(EntryKind::File, "in_dir/r.txt".to_string())]);
    let root = session.list(None).unwrap();
    let in_file = root.iter().find(|e| e.name == "in_file").unwrap();
    assert_eq!((in_file.kind, in_file.size), (EntryKind::File, 4));
    let in_dir = root.iter().find(|e| e.name == "in_dir").unwrap();
    assert_eq!(in_dir.kind, EntryKind::Dir);

    // writing into a linked folder lands in the folder it points to
    let source = put(local.path(), "source", b"via link");
    session.write(&source, "in_dir/new.txt").unwrap();
    assert_eq!(
        fs::read(server.root().join("realdir/new.txt")).unwrap(),
        b"via link"
    );
    // a link to a folder is a folder: writing to it is refused, as LIST
    // shows it as `d`
    let e = session.write(&source, "in_dir").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Refused, "{e}");
    assert!(e.to_string().contains("is a folder"), "{e}");
    assert!(
        fs::symlink_metadata(server.root().join("in_dir"))
            .unwrap()
            .is_symlink()
    );
    assert!(server.root().join("realdir/r.txt").exists());
    // writing to a name that is a link replaces the link (docs/protocol.md)
    session.write(&source, "in_file").unwrap();
    let in_file = server.root().join("in_file");
    assert!(!fs::symlink_metadata(&in_file).unwrap().is_symlink());
    assert_eq!(fs::read(&in_file).unwrap(), b"via link");
    assert_eq!(fs::read(server.root().join("real.txt")).unwrap(), b"real");
}

#[test]
fn uploads_blocked_by_a_dangling_link_or_a_file_say_which_part_is_wrong() {
    let server = linked_server();
    let mut raw = server.raw();
    // `dangling` is a link to a missing `nowhere` inside the root
    for (name, words) in [
        (
            "dangling",
            "`dangling` is a symbolic link whose target does not exist",
        ),
        (
            "dangling/new.txt",
            "`dangling` is a symbolic link whose target does not exist",
        ),
        ("real.txt/new.txt", "`real.txt` is not a folder"),
        ("in_file/new.txt", "`in_file` is not a folder"),
        (
            "realdir/r.txt/deeper/new.txt",
            "`realdir/r.txt` is not a folder",
        ),
    ] {
        let reply = raw.upload(name, b"abc");
        assert!(
            reply.starts_with("ERROR: ") && reply.contains(words),
            "WRITE {name}: {reply:?}"
        );
        assert!(!reply.contains("outside"), "WRITE {name}: {reply:?}");
        assert!(!reply.contains("os error"), "WRITE {name}: {reply:?}");
    }
    // still in sync, and nothing was made
    assert_eq!(
        raw.list_names(),
        vec!["in_dir", "in_file", "real.txt", "realdir"]
    );
    assert!(!server.root().join("nowhere").exists());
    assert_eq!(fs::read(server.root().join("real.txt")).unwrap(), b"real");
    assert_eq!(temp_files(server.root()), Vec::<std::path::PathBuf>::new());
}

#[test]
fn special_files_are_refused_without_blocking() {
    let server = TestServer::start();
    let fifo = server.root().join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let mut raw = server.raw();
    // opening a FIFO for reading would wait for a writer forever
    raw.send(b"READ,pipe\n");
    assert_eq!(raw.line(), "ERROR: `pipe` is not a regular file\n");
    raw.send(b"LIST\n");
    assert_eq!(raw.line(), "OK 0\n", "a FIFO is not listed");
}

#[test]
fn uploading_a_local_fifo_is_refused_without_blocking() {
    let server = TestServer::start();
    let local = TempDir::new().unwrap();
    let fifo = local.path().join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let mut session = server.session();
    let e = session.write(&fifo, "pipe").unwrap_err();
    assert_eq!(e.kind, ErrorKind::LocalIo, "{e}");
    assert!(e.to_string().contains("not a regular file"), "{e}");
    assert!(session.list(None).unwrap().is_empty());
}

/// Starts a raw upload of `name` announcing `size` bytes, sends the first
/// `sent` of `body`, waits until the server has its temporary file, then
/// vanishes.
fn abandon_upload(server: &TestServer, name: &str, body: &[u8], sent: usize) {
    let mut raw = server.raw();
    raw.send(format!("WRITE,{name},{}\n", body.len()).as_bytes());
    raw.send(&body[..sent]);
    assert!(
        wait_until(NOTICE, || !temp_files(server.root()).is_empty()),
        "the server never started the upload"
    );
    drop(raw);
    assert!(
        wait_until(NOTICE, || temp_files(server.root()).is_empty()),
        "temporary files left: {:?}",
        temp_files(server.root())
    );
}

#[test]
fn a_client_vanishing_mid_upload_leaves_nothing() {
    let server = TestServer::start();
    let body = pseudo_random(7, 1_000_000);
    abandon_upload(&server, "big.bin", &body, 300_000);
    abandon_upload(&server, "deep/er/big.bin", &body, 1);
    assert!(!server.root().join("big.bin").exists());
    assert!(!server.root().join("deep/er/big.bin").exists());

    // the server goes on serving
    let mut session = server.session();
    let names: Vec<String> = session
        .list(None)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    // the folders were made before the body arrived; no file is in them
    assert_eq!(names, vec!["deep"]);
    assert!(session.list(Some("deep/er")).unwrap().is_empty());
}

#[test]
fn a_client_vanishing_mid_overwrite_keeps_the_old_file() {
    let server = TestServer::start();
    let old = pseudo_random(8, 5000);
    put(server.root(), "keep.bin", &old);
    let body = pseudo_random(9, 1_000_000);
    abandon_upload(&server, "keep.bin", &body, 500_000);
    assert!(fs::read(server.root().join("keep.bin")).unwrap() == old);
}

#[test]
fn an_upload_in_progress_is_invisible_until_complete() {
    let server = TestServer::start();
    put(server.root(), "dir/doc.txt", b"version 1");
    let body = pseudo_random(11, 200_000);
    let mut uploader = server.raw();
    uploader.send(format!("WRITE,dir/doc.txt,{}\n", body.len()).as_bytes());
    uploader.send(&body[..100_000]);
    assert!(wait_until(NOTICE, || !temp_files(server.root()).is_empty()));
    let temp = temp_files(server.root()).remove(0);
    let temp_name = temp.strip_prefix(server.root()).unwrap().to_str().unwrap();

    let mut other = server.raw();
    other.send(b"LIST,dir\nREAD,dir/doc.txt\n");
    let listed: Vec<_> = other.list_reply().iter().map(|l| shape(l)).collect();
    assert_eq!(listed, vec![("f".into(), "9".into(), "dir/doc.txt".into())]);
    assert_eq!(other.line(), "9\n");
    assert_eq!(other.bytes(9), b"version 1");
    // the temporary file cannot be requested by its name either
    other.send(format!("READ,{temp_name}\n").as_bytes());
    let reply = other.line();
    assert!(
        reply.contains("reserved for transfers in progress"),
        "{reply:?}"
    );

    uploader.send(&body[100_000..]);
    assert_eq!(uploader.line(), "OK 200000\n");
    other.send(b"READ,dir/doc.txt\n");
    assert_eq!(other.line(), "200000\n");
    assert!(other.bytes(200_000) == body);
    assert_eq!(temp_files(server.root()), Vec::<std::path::PathBuf>::new());
}

#[test]
fn a_file_shrinking_while_it_is_read_ends_the_connection_short() {
    const SIZE: u64 = 64 * 1024 * 1024;
    let server = TestServer::start();
    let path = server.root().join("shrinks.bin");
    fs::File::create(&path).unwrap().set_len(SIZE).unwrap();
    let mut raw = server.raw();
    raw.send(b"READ,shrinks.bin\n");
    assert_eq!(raw.line(), format!("{SIZE}\n"));
    // the socket buffers hold far less than 64 MiB: the server is still
    // sending when the file shrinks
    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(1000)
        .unwrap();
    let mut received = 0u64;
    let mut chunk = vec![0; 1 << 16];
    loop {
        match raw.read_some(&mut chunk) {
            0 => break,
            n => received += n as u64,
        }
        assert!(received <= SIZE);
    }
    assert!(received < SIZE, "the server sent {received} bytes");
}

#[test]
fn a_client_vanishing_mid_download_does_not_disturb_the_server() {
    const SIZE: usize = 32 * 1024 * 1024;
    let server = TestServer::start();
    let contents = pseudo_random(12, SIZE);
    put(server.root(), "big.bin", &contents);
    let mut raw = server.raw();
    raw.send(b"READ,big.bin\n");
    assert_eq!(raw.line(), format!("{SIZE}\n"));
    assert!(raw.bytes(1000) == contents[..1000]);
    raw.shutdown();
    drop(raw);

    let local = TempDir::new().unwrap();
    let mut session = server.session();
    session.read("big.bin", &local.path().join("big")).unwrap();
    assert!(fs::read(local.path().join("big")).unwrap() == contents);
    assert!(fs::read(server.root().join("big.bin")).unwrap() == contents);
}

/// A fake server that answers one `READ` with `announced` as its size, then
/// sends `body` and closes. Returns its address.
fn short_body_server(announced: u64, body: Vec<u8>) -> (String, thread::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let thread = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
        let request = common::plain_request(&mut reader, &mut stream);
        stream
            .write_all(format!("{announced}\n").as_bytes())
            .unwrap();
        stream.write_all(&body).unwrap();
        request.into_bytes()
    });
    (addr, thread)
}

/// A fake server that takes one request line, reports it on `arrived`,
/// then reads on until the client hangs up (at most 10 s of silence). Returns whether it did;
/// a client still there then gets `reply`, so that it is not left waiting.
fn silent_server(
    reply: &'static [u8],
) -> (
    String,
    std::sync::mpsc::Receiver<()>,
    thread::JoinHandle<bool>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (arrived, arrival) = std::sync::mpsc::channel();
    let thread = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut byte = [0];
        while stream.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {}
        arrived.send(()).unwrap();
        // whatever follows the request (an upload's body) is read first
        let hung_up = loop {
            match stream.read(&mut byte) {
                Ok(0) => break true,
                Ok(_) => {}
                Err(_) => break false,
            }
        };
        if !hung_up {
            let _ = stream.write_all(reply);
        }
        hung_up
    });
    (addr, arrival, thread)
}

#[test]
fn cancelling_while_the_server_has_not_answered_yet_stops_at_once() {
    let local = TempDir::new().unwrap();
    let source = put(local.path(), "source", b"abc");
    let target = local.path().join("got");
    for op in ["read", "write", "list"] {
        let (addr, arrival, fake) = silent_server(match op {
            "read" => b"3\nabc",
            "write" => b"OK 3\n",
            _ => b"OK 0\n",
        });
        let token = ioe::cancel::CancelToken::new();
        let mut session = Session::connect(&addr).unwrap();
        session.set_cancel(token.clone());
        let (source, into) = (source.clone(), target.clone());
        let client = thread::spawn(move || match op {
            "read" => session.read("file", &into).map(drop),
            "write" => session.write(&source, "file").map(drop),
            _ => session.list(None).map(drop),
        });
        arrival.recv_timeout(NOTICE).expect("the request arrives");
        token.cancel();
        let hung_up = fake.join().unwrap();
        let e = client.join().unwrap().unwrap_err();
        assert!(hung_up, "{op}: Ctrl-C did not stop the wait for the reply");
        assert_eq!(e.kind, ErrorKind::Cancelled, "{op}: {e}");
        assert!(!target.exists(), "{op}");
        assert_eq!(temp_files(local.path()), Vec::<std::path::PathBuf>::new());
    }
}

#[test]
fn a_server_vanishing_mid_download_leaves_no_local_file() {
    let (addr, fake) = short_body_server(100_000, pseudo_random(10, 4000));
    let local = TempDir::new().unwrap();
    let target = local.path().join("sub/report.pdf");
    let mut session = Session::connect(&addr).unwrap();
    let e = session.read("remote report.pdf", &target).unwrap_err();
    assert_eq!(fake.join().unwrap(), b"READ,remote report.pdf\n");

    assert_eq!(e.kind, ErrorKind::ConnectionLost, "{e}");
    let message = e.to_string();
    assert!(message.contains("remote report.pdf"), "{message}");
    assert!(message.contains("lost"), "{message}");
    assert!(!session.is_open());
    assert!(!target.exists());
    assert_eq!(temp_files(local.path()), Vec::<std::path::PathBuf>::new());
    assert_eq!(
        session.list(None).unwrap_err().kind,
        ErrorKind::NotConnected
    );
}

#[test]
fn a_server_vanishing_mid_download_keeps_the_old_local_file() {
    let (addr, fake) = short_body_server(10, b"12345".to_vec());
    let local = TempDir::new().unwrap();
    let target = put(local.path(), "kept.txt", b"old local");
    let mut session = Session::connect(&addr).unwrap();
    let e = session.read("kept.txt", &target).unwrap_err();
    fake.join().unwrap();
    assert_eq!(e.kind, ErrorKind::ConnectionLost, "{e}");
    assert_eq!(fs::read(&target).unwrap(), b"old local");
    assert_eq!(temp_files(local.path()), Vec::<std::path::PathBuf>::new());
}

#[test]
fn error_replies_leave_the_session_usable() {
    let server = TestServer::start();
    put(server.root(), "there.txt", b"here");
    fs::create_dir(server.root().join("folder")).unwrap();
    let local = TempDir::new().unwrap();
    let target = local.path().join("missing.txt");
    let mut session = server.session();

    let e = session.read("missing.txt", &target).unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("missing.txt"), "{e}");
    assert!(!target.exists());
    let e = session.list(Some("nope")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    let e = session.read("folder", &target).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Refused, "{e}");
    assert!(e.to_string().contains("not a regular file"), "{e}");
    let source = put(local.path(), "source", b"abc");
    let e = session.write(&source, "folder").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Refused, "{e}");
    let e = session.write(&source, "there.txt/below").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Refused, "{e}");
    assert_eq!(temp_files(local.path()), Vec::<std::path::PathBuf>::new());
    assert_eq!(temp_files(server.root()), Vec::<std::path::PathBuf>::new());

    assert!(session.is_open());
    session.read("there.txt", &target).unwrap();
    assert_eq!(fs::read(&target).unwrap(), b"here");
    session.write(&source, "folder/new.txt").unwrap();
    assert_eq!(session.list(Some("folder")).unwrap().len(), 1);
}

#[test]
fn concurrent_writers_leave_one_whole_version_and_readers_see_no_part() {
    const ROUNDS: usize = 6;
    const SIZE: usize = 2 * 1024 * 1024;
    let server = TestServer::start();
    let initial = pseudo_random(20, SIZE);
    put(server.root(), "shared.bin", &initial);
    let versions: Arc<Vec<Vec<u8>>> = Arc::new(vec![
        initial,
        pseudo_random(21, SIZE),
        pseudo_random(22, SIZE),
    ]);
    let local = TempDir::new().unwrap();
    let sources: Vec<_> = (1..=2)
        .map(|i| put(local.path(), &format!("v{i}"), &versions[i]))
        .collect();

    let round_start = Arc::new(Barrier::new(3));
    let round_end = Arc::new(Barrier::new(3));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = sources
        .into_iter()
        .map(|source| {
            let mut session = server.session();
            let (start, end) = (Arc::clone(&round_start), Arc::clone(&round_end));
            thread::spawn(move || {
                // no unwrap between the barriers: a panic would hang the others
                let mut failures = Vec::new();
                for _ in 0..ROUNDS {
                    start.wait();
                    if let Err(e) = session.write(&source, "shared.bin") {
                        failures.push(e.to_string());
                    }
                    end.wait();
                }
                failures
            })
        })
        .collect();
    let reader = {
        let mut session = server.session();
        let versions = Arc::clone(&versions);
        let done = Arc::clone(&done);
        let target = local.path().join("seen.bin");
        thread::spawn(move || {
            let mut reads = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) && reads < 200 {
                session.read("shared.bin", &target).unwrap();
                let seen = fs::read(&target).unwrap();
                assert!(
                    versions.contains(&seen),
                    "read {reads} saw a file that is no whole version ({} bytes)",
                    seen.len()
                );
                reads += 1;
            }
            reads
        })
    };
    for _ in 0..ROUNDS {
        round_start.wait();
        round_end.wait();
        let now = fs::read(server.root().join("shared.bin")).unwrap();
        assert!(
            now == versions[1] || now == versions[2],
            "after a round the file is no whole version"
        );
        assert_eq!(temp_files(server.root()), Vec::<std::path::PathBuf>::new());
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    for writer in writers {
        assert_eq!(writer.join().unwrap(), Vec::<String>::new());
    }
    assert!(reader.join().unwrap() > 0);
    let names: Vec<_> = fs::read_dir(server.root())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["shared.bin"]);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = TestServer::start();
    put(server.root(), "old.txt", b"old!");
    let mut raw = server.raw();
    let body = pseudo_random(30, 300_000);
    let mut requests = Vec::new();
    requests.extend_from_slice(b"LIST\nWRITE,p,1.txt,5\nhelloREAD,p,1.txt\nREAD,missing\n");
    requests.extend_from_slice(format!("WRITE,dir/big,{}\n", body.len()).as_bytes());
    requests.extend_from_slice(&body);
    requests.extend_from_slice(b"READ,old.txt\r\nLIST,dir\nWRITE,empty,0\nREAD,empty\nBYE\n");
    raw.send(&requests);

    let listed: Vec<_> = raw.list_reply().iter().map(|l| shape(l)).collect();
    assert_eq!(listed, vec![("f".into(), "4".into(), "old.txt".into())]);
    assert_eq!(raw.line(), "OK 5\n");
    assert_eq!(raw.line(), "5\n");
    assert_eq!(raw.bytes(5), b"hello");
    assert_eq!(raw.line(), "ERROR: no such file or folder: `missing`\n");
    assert_eq!(raw.line(), format!("OK {}\n", body.len()));
    assert_eq!(raw.line(), "4\n");
    assert_eq!(raw.bytes(4), b"old!");
    let listed: Vec<_> = raw.list_reply().iter().map(|l| shape(l)).collect();
    assert_eq!(
        listed,
        vec![("f".into(), body.len().to_string(), "dir/big".into())]
    );
    assert_eq!(raw.line(), "OK 0\n");
    assert_eq!(raw.line(), "0\n");
    assert_eq!(raw.line(), "OK bye\n");
    raw.expect_closed();
    assert!(fs::read(server.root().join("dir/big")).unwrap() == body);
    assert_eq!(fs::read(server.root().join("p,1.txt")).unwrap(), b"hello");
}

/// Checks that a refused upload of `len` bytes keeps the raw session in sync.
fn refused_raw_upload_stays_in_sync(raw: &mut Raw, len: usize, words: &str) {
    let mut request = format!("WRITE,x.bin,{len}\n").into_bytes();
    // a body full of requests: any not skipped would be answered
    request.extend(b"LIST\n".iter().cycle().take(len));
    raw.send(&request);
    let reply = raw.line();
    assert!(
        reply.starts_with("ERROR: ") && reply.contains(words),
        "{reply:?}"
    );
    raw.send(b"LIST\n");
    assert_eq!(raw.line(), "OK 0\n");
}

#[test]
fn a_read_only_server_refuses_uploads_and_stays_in_sync() {
    let server = TestServer::start_with(|c: &mut Config| c.read_only = true);
    let local = TempDir::new().unwrap();
    let source = put(local.path(), "source", &pseudo_random(40, 1_000_000));
    let mut session = server.session();
    let e = session.write(&source, "x.bin").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Refused, "{e}");
    assert!(e.to_string().contains("read-only"), "{e}");
    assert!(e.to_string().contains("x.bin"), "{e}");
    assert!(session.is_open());
    assert!(session.list(None).unwrap().is_empty());

    let mut raw = server.raw();
    refused_raw_upload_stays_in_sync(&mut raw, 100_000, "read-only");
    refused_raw_upload_stays_in_sync(&mut raw, 0, "read-only");
    assert!(fs::read_dir(server.root()).unwrap().next().is_none());
}

#[test]
fn uploads_over_the_size_limit_are_refused_and_the_session_stays_in_sync() {
    let server = TestServer::start_with(|c: &mut Config| c.max_size = Some(1000));
    let local = TempDir::new().unwrap();
    let too_big = put(local.path(), "big", &pseudo_random(41, 1001));
    let just_fits = put(local.path(), "fits", &pseudo_random(42, 1000));
    let mut session = server.session();
    let e = session.write(&too_big, "big.bin").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Refused, "{e}");
    let message = e.to_string();
    assert!(
        message.contains("1001") && message.contains("1000") && message.contains("big.bin"),
        "{message}"
    );
    assert!(!server.root().join("big.bin").exists());
    assert_eq!(session.write(&just_fits, "fits.bin").unwrap(), 1000);
    assert_eq!(session.list(None).unwrap().len(), 1);

    let mut raw = server.raw();
    let mut request = b"WRITE,x.bin,5000\n".to_vec();
    request.extend(b"LIST\n".iter().cycle().take(5000));
    raw.send(&request);
    let reply = raw.line();
    assert!(reply.contains("limit of 1000"), "{reply:?}");
    raw.send(b"READ,fits.bin\n");
    assert_eq!(raw.line(), "1000\n");
    assert!(raw.bytes(1000) == pseudo_random(42, 1000));
    assert!(!server.root().join("x.bin").exists());
    assert_eq!(temp_files(server.root()), Vec::<std::path::PathBuf>::new());
}

#[test]
fn uploading_a_missing_local_file_sends_nothing() {
    let server = TestServer::start();
    let local = TempDir::new().unwrap();
    let mut session = server.session();
    let e = session
        .write(&local.path().join("absent.txt"), "absent.txt")
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::LocalMissing, "{e}");
    assert!(e.to_string().contains("absent.txt"), "{e}");
    assert!(session.is_open());
    assert!(session.list(None).unwrap().is_empty());
    let e = session.write(local.path(), "folder").unwrap_err();
    assert_eq!(e.kind, ErrorKind::LocalIo, "{e}");
    let e = session.write(Path::new(""), "empty").unwrap_err();
    assert_eq!(e.kind, ErrorKind::LocalMissing, "{e}");
    assert_eq!(
        e.to_string(),
        "write `empty`: the local path is empty; give the file to upload"
    );
    assert!(session.list(None).unwrap().is_empty());
    assert!(!Path::new(&server.root().join("absent.txt")).exists());
}

#[test]
fn the_server_log_names_the_file_of_every_request_that_fails() {
    let root = TempDir::new().unwrap();
    // more than the socket buffers on both sides hold
    let big = pseudo_random(21, 48 << 20);
    put(root.path(), "big.bin", &big);
    let server =
        common::ServeProcess::start_logging(root.path(), &["--read-only", "--idle-timeout", "1"]);

    // a client that vanishes mid-download
    let mut raw = server.raw();
    raw.send(b"READ,big.bin\n");
    assert_eq!(raw.line(), format!("{}\n", big.len()));
    assert!(raw.bytes(1000) == big[..1000]);
    drop(raw);
    let line = server.wait_for_log(&["READ big.bin", "not finished"]);
    assert!(line.contains("closed the connection"), "{line}");

    // a client that stops reading a download
    let mut raw = server.raw();
    raw.send(b"READ,big.bin\n");
    assert_eq!(raw.line(), format!("{}\n", big.len()));
    let line = server.wait_for_log(&["READ big.bin", "stopped reading"]);
    assert!(line.contains("for 1 s"), "{line}");
    drop(raw);

    // refused uploads name what was refused
    let mut raw = server.raw();
    assert_eq!(
        raw.upload("notes.txt", b"abc"),
        "ERROR: server is read-only\n"
    );
    server.wait_for_log(&["WRITE notes.txt -> refused: server is read-only"]);
    assert!(raw.upload("a//b", b"abc").starts_with("ERROR: "));
    server.wait_for_log(&["WRITE,a//b,3 -> refused: name has an empty component"]);
}

#[test]
fn an_upload_cut_off_by_the_shutdown_is_told_so_and_leaves_nothing() {
    let root = TempDir::new().unwrap();
    let mut server = common::ServeProcess::start_logging(root.path(), &["--grace", "1"]);
    let mut raw = server.raw();
    raw.send(b"WRITE,sub/slow.bin,2000\n");
    raw.send(&[7u8; 100]);
    assert!(
        wait_until(NOTICE, || temp_files(root.path()).len() == 1),
        "the upload never began"
    );
    server.signal("TERM");
    // after the grace period, the client reads why its upload failed
    let reply = raw.read_to_close();
    assert_eq!(
        String::from_utf8_lossy(&reply),
        "ERROR: upload of `sub/slow.bin` cut off: the server is shutting down; \
         nothing was stored; closing\n"
    );
    let line = server.wait_for_log(&["WRITE sub/slow.bin"]);
    assert!(line.contains("server is shutting down"), "{line}");
    assert!(server.wait_exit(NOTICE).is_some(), "the server exits");
    assert!(!root.path().join("sub/slow.bin").exists());
    assert_eq!(temp_files(root.path()), Vec::<std::path::PathBuf>::new());
}

#[test]
fn a_server_whose_log_cannot_be_written_goes_on_serving() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let root = TempDir::new().unwrap();
    put(root.path(), "f.txt", b"contents");
    let mut child = common::Child(
        Command::new(env!("CARGO_BIN_EXE_ioe"))
            .args(["serve", "--listen", "127.0.0.1:0", "--root"])
            .arg(root.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // whoever read the log went away (`ioe serve 2>&1 | head`)
    drop(child.0.stderr.take());
    let mut first = String::new();
    std::io::BufReader::new(child.0.stdout.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr: std::net::SocketAddr = first
        .trim_end()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    for _ in 0..2 {
        let mut raw = Raw::connect(addr);
        raw.send(b"LIST\n");
        assert_eq!(raw.list_reply().len(), 1);
        assert_eq!(raw.read_file("f.txt"), b"contents");
    }
    assert!(child.0.try_wait().unwrap().is_none(), "the server stopped");
}

#[test]
fn the_server_log_says_in_words_when_a_client_leaves_without_its_replies() {
    let root = TempDir::new().unwrap();
    let server = common::ServeProcess::start_logging(root.path(), &[]);
    let mut raw = server.raw();
    // many requests, then gone before reading a reply: a write fails
    raw.send(&b"NOPE\n".repeat(2000));
    raw.shutdown();
    drop(raw);
    let line = server.wait_for_log(&["connection lost"]);
    assert!(line.contains("the client closed the connection"), "{line}");
    assert!(!line.contains("os error"), "{line}");
}

#[test]
fn bye_after_the_server_closed_the_session_is_not_an_error() {
    let root = TempDir::new().unwrap();
    let mut server = common::ServeProcess::start(root.path(), &[]);
    let mut session = server.session();
    assert_eq!(session.list(None).unwrap(), vec![]);
    // the server stops: an idle session is closed at once, with a reason
    server.signal("TERM");
    assert!(server.wait_exit(NOTICE).is_some(), "the server exits");
    // the goal of bye() is reached already: a job that ends with it must
    // not fail for that
    session.bye().unwrap();
    assert!(!session.is_open());
    session.bye().unwrap();
}

#[test]
fn an_upload_confirmed_with_another_size_is_not_taken_as_stored() {
    let local = TempDir::new().unwrap();
    let source = put(local.path(), "source", b"abc");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let fake = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
        let header = common::plain_request(&mut reader, &mut (&stream));
        let mut body = [0; 3];
        reader.read_exact(&mut body).unwrap();
        (&stream).write_all(b"OK 5\n").unwrap();
        header
    });
    let mut session = Session::connect(&addr).unwrap();
    let error = session.write(&source, "up.txt").unwrap_err();
    assert_eq!(fake.join().unwrap(), "WRITE,up.txt,3\n");
    assert_eq!(error.kind, ErrorKind::ConnectionLost, "{error}");
    assert!(
        error
            .to_string()
            .contains("it confirmed `OK 5` for an upload of 3 bytes"),
        "{error}"
    );
    assert!(!session.is_open());
}

#[test]
fn the_servers_of_this_run_speak_the_transport_it_names() {
    // `IOE_TEST_TLS=1` runs every test here over TLS: check that it does
    let server = TestServer::start();
    let tls = common::tls_run();
    assert_eq!(
        server.target().starts_with("tls://"),
        tls,
        "{}",
        server.target()
    );
    let plain = Session::connect(&server.addr().to_string()).and_then(|mut s| s.list(None));
    assert_eq!(plain.is_err(), tls, "a plain client: {plain:?}");
    let mut raw = server.raw();
    raw.send(b"LIST\n");
    assert_eq!(raw.list_reply(), Vec::<String>::new());
    assert_eq!(server.session().list(None).unwrap(), vec![]);
}
