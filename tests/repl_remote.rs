//! `ioe repl` with piped stdin: the command forms of the IOE/1 extensions
//! (`STAT`, `WALK`, `HASH`, `MKDIR`, `DELETE`, `SETTIME`, `FEATURES`)
//! against a real server and a plain IOE/1 one, sharing the session with
//! Rhai code.

mod common;

use common::{TestServer, connect_line, mtime, put, run_ioe};
use std::fs;
use std::time::{Duration, UNIX_EPOCH};
use tempfile::TempDir;

#[test]
fn the_extension_forms_act_on_the_session_rhai_uses() {
    let server = TestServer::start_with(|c| c.max_size = Some(4096));
    let root = server.root();
    put(root, "docs/a, 1.txt", b"hello\n");
    put(root, "docs/sub/b.txt", b"bb");
    put(root, "old.txt", b"old");
    let file = fs::File::options()
        .write(true)
        .open(root.join("docs/sub/b.txt"))
        .unwrap();
    file.set_modified(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        .unwrap();
    let work = TempDir::new().unwrap();

    let input = connect_line(&server.target())
        + "STAT,docs/sub/b.txt\n\
           stat,docs/\n\
           WALK\n\
           WALK,docs/sub/\n\
           HASH,docs/a, 1.txt\n\
           MKDIR,new/deep/\n\
           SETTIME,1000000000,docs/a, 1.txt\n\
           stat(\"docs/a, 1.txt\").mtime\n\
           DELETE,old.txt\n\
           FEATURES\n\
           QUIT\n";
    let run = run_ioe(work.path(), &["repl"], &input);

    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.stderr, "");
    let out = &run.stdout;
    let expected = [
        // STAT: LIST's table, one row
        "kind  size  modified (UTC)    name\n\
         file     2  2023-11-14 22:13  docs/sub/b.txt\n",
        "kind  size  modified (UTC)    name\ndir      -  ",
        "  docs/\n",
        // WALK: the whole tree, depth first, with LIST's summary
        "  docs/\n",
        "  docs/a, 1.txt\n",
        "  docs/sub/b.txt\n",
        "  old.txt\n3 files, 2 folders\n",
        "file     2  2023-11-14 22:13  docs/sub/b.txt\n1 file, 0 folders\n",
        &format!(
            "blake3 {}  docs/a, 1.txt\n",
            blake3::hash(b"hello\n").to_hex()
        ),
        "made the folder `new/deep`\n",
        "set the modification time of `docs/a, 1.txt` to 1000000000 (2001-09-09 01:46 UTC)\n",
        // Rhai on the same session sees the new time
        "1000000000\n",
        "deleted `old.txt`\n",
        "stat\nwalk\nhash blake3 sha256\nrange\nsettime\ndelete\nmkdir\n\
         limits read-only=0 max-size=4096\n",
    ];
    let mut rest = out.as_str();
    for piece in expected {
        let at = rest
            .find(piece)
            .unwrap_or_else(|| panic!("{piece:?} missing (in order) from:\n{out}"));
        rest = &rest[at + piece.len()..];
    }
    assert!(root.join("new/deep").is_dir());
    assert!(!root.join("old.txt").exists());
    assert_eq!(mtime(&root.join("docs/a, 1.txt")), 1_000_000_000);
}

#[test]
fn failing_extension_forms_say_what_failed_with_the_error_kind() {
    let server = TestServer::start_with(|c| c.read_only = true);
    put(server.root(), "docs/a.txt", b"a");
    let work = TempDir::new().unwrap();
    let input = "HASH,docs/a.txt\n".to_string()
        + connect_line(&server.target()).as_str()
        + "STAT,nope.txt\n\
           DELETE,docs/a.txt\n\
           SETTIME,soon,docs/a.txt\n\
           MKDIR,../up\n\
           WALK,nope\n\
           HASH,docs\n\
           STAT,docs/a.txt\n";
    let run = run_ioe(work.path(), &["repl", "--keep-going"], &input);

    assert_eq!(run.code, Some(1), "{run:?}");
    let err = &run.stderr;
    for line in [
        "line 1: error[not_connected]: hash `docs/a.txt`: not connected; connect to a server \
         first with CONNECT,host,port\n",
        "line 3: error[not_found]: stat `nope.txt`: server said: no such file or folder: \
         `nope.txt`\n",
        "line 4: error[refused]: delete `docs/a.txt`: server said: ",
        "line 5: error: usage: SETTIME,seconds,name (seconds since 1970, such as 1700000000)\n",
        "line 6: error[bad_name]: mkdir `../up`: ",
        "line 7: error[not_found]: walk `nope`: ",
        "line 8: error[refused]: hash `docs`: ",
    ] {
        assert!(err.contains(line), "{line:?} missing from:\n{err}");
    }
    assert!(err.contains("read-only"), "{err}");
    // the session stayed usable after every refusal
    assert!(run.stdout.contains("  docs/a.txt\n"), "{}", run.stdout);
    assert!(server.root().join("docs/a.txt").exists());
}

#[test]
fn against_a_plain_ioe1_server_the_forms_are_unsupported_and_features_says_so() {
    let (addr, server) = common::plain_server(b"OK 0\n");
    let work = TempDir::new().unwrap();
    let input = connect_line(&addr.to_string()) + "FEATURES\nSTAT,a.txt\nMKDIR,d\nLIST\nQUIT\n";
    let run = run_ioe(work.path(), &["repl", "--keep-going"], &input);

    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stdout.contains("none: the server speaks plain IOE/1\n"),
        "{}",
        run.stdout
    );
    for line in [
        "line 3: error[unsupported]: stat `a.txt`: server 127.0.0.1:",
        "line 4: error[unsupported]: mkdir `d`: ",
    ] {
        assert!(run.stderr.contains(line), "{line:?} in:\n{}", run.stderr);
    }
    assert!(
        run.stderr
            .contains("does not have the `mkdir` extension (it speaks plain IOE/1)"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("(empty folder)"), "{}", run.stdout);
    server.join().unwrap();
}

#[test]
fn help_lists_the_extension_forms() {
    let work = TempDir::new().unwrap();
    let run = run_ioe(work.path(), &["repl"], "help\n");
    assert_eq!(run.code, Some(0), "{run:?}");
    for form in [
        "  STAT,name ",
        "  WALK[,folder] ",
        "  HASH,name ",
        "  MKDIR,name ",
        "  DELETE,name ",
        "  SETTIME,secs,name ",
        "  FEATURES ",
        "  s.walk()  s.walk(dir)\n",
        "  set_mtime(name, seconds)\n",
    ] {
        assert!(run.stdout.contains(form), "{form:?} in:\n{}", run.stdout);
    }
}
