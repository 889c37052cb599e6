//! The IOE/1 extensions on a real server, byte for byte: every request's
//! success, every refusal the protocol page names, and what a read-only
//! server refuses.

mod common;

use common::{Raw, TestServer, put};
use sha2::{Digest, Sha256};
use std::fs;
use std::os::unix::fs::symlink;

/// A server with `a/f.txt` (`hello\n`), `a/b/g` (`x`), an empty folder `e`,
/// a link `la` to `a`, a link `out` to a file outside, a FIFO, and a
/// temporary file that must never show.
fn server_with(adjust: impl FnOnce(&mut ioe::server::Config)) -> TestServer {
    let server = TestServer::start_with(adjust);
    let root = server.root();
    put(root, "a/f.txt", b"hello\n");
    put(root, "a/b/g", b"x");
    put(root, "a/.ioe-tmp-hidden", b"half");
    fs::create_dir(root.join("e")).unwrap();
    symlink("a", root.join("la")).unwrap();
    put(server.outside(), "secret", b"secret");
    symlink(server.outside().join("secret"), root.join("out")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    server
}

fn server() -> TestServer {
    server_with(|_| {})
}

/// Sends one request line and returns the first reply line (no LF).
fn ask(raw: &mut Raw, request: &str) -> String {
    raw.send(format!("{request}\n").as_bytes());
    raw.line().trim_end().to_string()
}

#[test]
fn features_say_exactly_what_the_server_does() {
    let server = server();
    let mut raw = server.raw();
    assert_eq!(ask(&mut raw, "FEATURES"), "OK 8");
    let lines: Vec<String> = (0..8).map(|_| raw.line().trim_end().to_string()).collect();
    assert_eq!(
        lines,
        [
            "stat",
            "walk",
            "hash blake3 sha256",
            "range",
            "settime",
            "delete",
            "mkdir",
            "limits read-only=0"
        ]
    );
    let read_only = server_with(|c| {
        c.read_only = true;
        c.max_size = Some(1_048_576);
    });
    let mut raw = read_only.raw();
    assert_eq!(ask(&mut raw, "FEATURES"), "OK 8");
    let last = (0..8).map(|_| raw.line()).last().unwrap();
    assert_eq!(last, "limits read-only=1 max-size=1048576\n");
}

#[test]
fn stat_gives_one_entry_line_or_says_why_not() {
    let server = server();
    let mut raw = server.raw();
    let mtime = |name: &str| {
        fs::metadata(server.root().join(name))
            .unwrap()
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    assert_eq!(
        ask(&mut raw, "STAT,a/f.txt"),
        format!("OK f,6,{},a/f.txt", mtime("a/f.txt"))
    );
    assert_eq!(ask(&mut raw, "STAT,a"), format!("OK d,0,{},a", mtime("a")));
    // a link is what it points to, under its own name
    assert_eq!(
        ask(&mut raw, "STAT,la/f.txt"),
        format!("OK f,6,{},la/f.txt", mtime("a/f.txt"))
    );
    assert_eq!(
        ask(&mut raw, "STAT,nope"),
        "ERROR: no such file or folder: `nope`"
    );
    assert_eq!(
        ask(&mut raw, "STAT,out"),
        "ERROR: `out` leads outside the server's root"
    );
    assert_eq!(
        ask(&mut raw, "STAT,fifo"),
        "ERROR: `fifo` is neither a regular file nor a folder"
    );
    assert!(ask(&mut raw, "STAT,a/.ioe-tmp-hidden").starts_with("ERROR: names starting with"));
    assert_eq!(ask(&mut raw, "STAT"), "ERROR: STAT needs a name");
}

/// Reads a `WALK` reply after its `OK`: the entry lines and the last line.
fn walk_reply(raw: &mut Raw) -> (Vec<String>, String) {
    let mut entries = Vec::new();
    for _ in 0..10_000 {
        let line = raw.line().trim_end().to_string();
        if line.starts_with("END ") || line.starts_with("ERROR: ") {
            return (entries, line);
        }
        entries.push(line.splitn(4, ',').nth(3).unwrap().to_string());
    }
    panic!("no END after 10000 lines");
}

#[test]
fn walk_streams_every_entry_depth_first_and_ends_with_the_count() {
    let server = server();
    let mut raw = server.raw();
    assert_eq!(ask(&mut raw, "WALK"), "OK");
    let (names, end) = walk_reply(&mut raw);
    // a folder before its contents, sorted; the link to a folder listed but
    // not entered; no temporary file, FIFO or link out
    assert_eq!(names, ["a", "a/b", "a/b/g", "a/f.txt", "e", "la"]);
    assert_eq!(end, "END 6");
    assert_eq!(ask(&mut raw, "WALK,a"), "OK");
    assert_eq!(
        walk_reply(&mut raw),
        (
            vec!["a/b".into(), "a/b/g".into(), "a/f.txt".into()],
            "END 3".into()
        )
    );
    assert_eq!(ask(&mut raw, "WALK,e"), "OK");
    assert_eq!(walk_reply(&mut raw), (vec![], "END 0".into()));
    // through a link, as LIST does
    assert_eq!(ask(&mut raw, "WALK,la"), "OK");
    assert_eq!(walk_reply(&mut raw).1, "END 3");
    assert_eq!(
        ask(&mut raw, "WALK,nope"),
        "ERROR: no such file or folder: `nope`"
    );
    assert_eq!(
        ask(&mut raw, "WALK,a/f.txt"),
        "ERROR: `a/f.txt` is not a folder"
    );
    assert_eq!(
        ask(&mut raw, "WALK,out"),
        "ERROR: `out` leads outside the server's root"
    );
    // the session goes on
    assert_eq!(raw.read_file("a/b/g"), b"x");
}

#[test]
fn a_walk_of_a_large_tree_arrives_whole() {
    let server = server();
    for i in 0..30 {
        for j in 0..100 {
            put(server.root(), &format!("big/d{i:02}/f{j:03}"), b"");
        }
    }
    let mut raw = server.raw();
    assert_eq!(ask(&mut raw, "WALK,big"), "OK");
    let (names, end) = walk_reply(&mut raw);
    assert_eq!(end, "END 3030");
    assert_eq!(names.len(), 3030);
    assert_eq!(names[0], "big/d00");
    assert_eq!(names[1], "big/d00/f000");
    assert_eq!(names[3029], "big/d29/f099");
}

#[test]
fn settime_mkdir_and_delete_change_the_tree() {
    let server = server();
    let root = server.root();
    let mut raw = server.raw();
    let mtime = |name: &str| {
        fs::metadata(root.join(name))
            .unwrap()
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    assert_eq!(ask(&mut raw, "SETTIME,1000000000,a/f.txt"), "OK");
    assert_eq!(mtime("a/f.txt"), 1_000_000_000);
    assert_eq!(ask(&mut raw, "SETTIME,1234567890,a"), "OK");
    assert_eq!(mtime("a"), 1_234_567_890);
    assert_eq!(
        ask(&mut raw, "SETTIME,1,nope"),
        "ERROR: no such file or folder: `nope`"
    );
    assert_eq!(
        ask(&mut raw, "SETTIME,1,out"),
        "ERROR: `out` leads outside the server's root"
    );

    assert_eq!(ask(&mut raw, "MKDIR,n/m, with comma"), "OK");
    assert!(root.join("n/m, with comma").is_dir());
    assert_eq!(
        ask(&mut raw, "MKDIR,n/m, with comma"),
        "OK",
        "existing is fine"
    );
    assert_eq!(
        ask(&mut raw, "MKDIR,a/f.txt"),
        "ERROR: `a/f.txt` is not a folder"
    );
    assert_eq!(
        ask(&mut raw, "MKDIR,a/f.txt/x"),
        "ERROR: `a/f.txt` is not a folder"
    );

    assert_eq!(
        ask(&mut raw, "DELETE,n"),
        "ERROR: `n` is a folder that is not empty"
    );
    assert_eq!(ask(&mut raw, "DELETE,n/m, with comma"), "OK");
    assert_eq!(ask(&mut raw, "DELETE,n"), "OK");
    assert!(!root.join("n").exists());
    assert_eq!(ask(&mut raw, "DELETE,a/b/g"), "OK");
    assert!(!root.join("a/b/g").exists());
    // a link goes, what it points to stays
    assert_eq!(ask(&mut raw, "DELETE,out"), "OK");
    assert!(fs::symlink_metadata(root.join("out")).is_err());
    assert_eq!(
        fs::read(server.outside().join("secret")).unwrap(),
        b"secret"
    );
    assert_eq!(ask(&mut raw, "DELETE,la"), "OK");
    assert!(root.join("a/f.txt").exists());
    assert_eq!(
        ask(&mut raw, "DELETE,nope"),
        "ERROR: no such file or folder: `nope`"
    );
    assert_eq!(
        ask(&mut raw, "DELETE,a/.ioe-tmp-hidden"),
        "ERROR: names starting with `.ioe-tmp-` or `.ioe-part-` are reserved for transfers in progress"
    );
}

#[test]
fn a_read_only_server_refuses_every_change_and_answers_the_rest() {
    let server = server_with(|c| c.read_only = true);
    let mut raw = server.raw();
    for request in [
        "SETTIME,1,a/f.txt",
        "MKDIR,new",
        "DELETE,a/f.txt",
        "DELETE,e",
    ] {
        assert_eq!(
            ask(&mut raw, request),
            "ERROR: server is read-only",
            "{request}"
        );
    }
    assert!(server.root().join("a/f.txt").exists());
    assert!(server.root().join("e").is_dir());
    assert!(!server.root().join("new").exists());
    assert!(ask(&mut raw, "STAT,a/f.txt").starts_with("OK f,6,"));
    assert!(ask(&mut raw, "HASH,sha256,a/f.txt").starts_with("OK sha256 "));
}

#[test]
fn hash_gives_the_digest_of_the_file_as_it_is_now() {
    let server = server();
    let mut raw = server.raw();
    let sha = |bytes: &[u8]| {
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    assert_eq!(
        ask(&mut raw, "HASH,sha256,a/f.txt"),
        format!("OK sha256 {}", sha(b"hello\n"))
    );
    assert_eq!(
        ask(&mut raw, "HASH,blake3,a/f.txt"),
        format!("OK blake3 {}", blake3::hash(b"hello\n").to_hex())
    );
    // the same size, new content: the cached digest is not used
    fs::write(server.root().join("a/f.txt"), b"HELLO\n").unwrap();
    assert_eq!(
        ask(&mut raw, "HASH,sha256,a/f.txt"),
        format!("OK sha256 {}", sha(b"HELLO\n"))
    );
    // larger than one read
    let big = common::pseudo_random(3, 3 * 256 * 1024 + 5);
    put(server.root(), "big.bin", &big);
    assert_eq!(
        ask(&mut raw, "HASH,sha256,big.bin"),
        format!("OK sha256 {}", sha(&big))
    );
    assert_eq!(
        ask(&mut raw, "HASH,md5,a/f.txt"),
        "ERROR: unknown hash algorithm `md5` (this server has blake3, sha256)"
    );
    assert_eq!(
        ask(&mut raw, "HASH,sha256,a"),
        "ERROR: `a` is not a regular file"
    );
    assert_eq!(
        ask(&mut raw, "HASH,sha256,nope"),
        "ERROR: no such file or folder: `nope`"
    );
    assert_eq!(
        ask(&mut raw, "HASH,sha256,out"),
        "ERROR: `out` leads outside the server's root"
    );
    assert_eq!(
        ask(&mut raw, "HASH,sha256"),
        "ERROR: HASH needs HASH,<algorithm>,<name>"
    );
}

#[test]
fn readat_sends_the_part_asked_for_and_no_more() {
    let server = server();
    let data = common::pseudo_random(9, 300_000);
    put(server.root(), "r, 1.bin", &data);
    let mut raw = server.raw();
    assert_eq!(ask(&mut raw, "READAT,1000,5000,r, 1.bin"), "5000");
    assert_eq!(raw.bytes(5000), &data[1000..6000]);
    // past the end, the rest; at the end, nothing
    assert_eq!(ask(&mut raw, "READAT,299990,100,r, 1.bin"), "10");
    assert_eq!(raw.bytes(10), &data[299_990..]);
    assert_eq!(ask(&mut raw, "READAT,300000,100,r, 1.bin"), "0");
    assert_eq!(ask(&mut raw, "READAT,0,0,r, 1.bin"), "0");
    assert_eq!(
        ask(&mut raw, "READAT,300001,1,r, 1.bin"),
        "ERROR: offset 300001 is past the end of `r, 1.bin` (300000 bytes)"
    );
    assert_eq!(
        ask(&mut raw, "READAT,0,3,a"),
        "ERROR: `a` is not a regular file"
    );
    assert_eq!(
        ask(&mut raw, "READAT,0,3,out"),
        "ERROR: `out` leads outside the server's root"
    );
    assert_eq!(
        ask(&mut raw, "READAT,x,3,a/f.txt"),
        "ERROR: READAT offset `x` is not a decimal number"
    );
    // and the session is in step
    assert_eq!(raw.read_file("a/f.txt"), b"hello\n");
}

/// Sends `WALK` and reads the reply as it streams, keeping nothing but the
/// count; returns the count and the last line.
fn count_walk(raw: &mut Raw) -> (u64, String) {
    raw.send(b"WALK\n");
    assert_eq!(raw.line(), "OK\n");
    for count in 0..10_000_000u64 {
        let line = raw.line();
        if !line.starts_with("f,") && !line.starts_with("d,") {
            return (count, line.trim_end().to_string());
        }
    }
    panic!("no end after ten million lines");
}

#[test]
fn a_walk_of_a_hundred_thousand_entries_keeps_the_servers_memory_flat() {
    let root = tempfile::TempDir::new().unwrap();
    // long names, so that a server holding the whole tree would need
    // several times the allowance below
    let pad = "n".repeat(80);
    put(root.path(), &format!("small/{pad}"), b"");
    for folder in 0..100 {
        let dir = root.path().join(format!("tree/{folder:03}-{pad}"));
        fs::create_dir_all(&dir).unwrap();
        for file in 0..1000 {
            fs::File::create(dir.join(format!("{file:04}-{pad}"))).unwrap();
        }
    }
    let server = common::ServeProcess::start(root.path(), &[]);
    let mut raw = Raw::connect(server.addr());
    raw.send(b"WALK,small\n");
    assert_eq!(raw.line(), "OK\n");
    assert!(raw.line().starts_with("f,0,"));
    assert_eq!(raw.line(), "END 1\n");
    let before = server.peak_memory();
    let (count, end) = count_walk(&mut raw);
    // 2 + 100 folders + 100,000 files
    assert_eq!((count, end.as_str()), (100_103, "END 100103"));
    let growth = server.peak_memory().saturating_sub(before);
    assert!(
        growth < 6 * 1024 * 1024,
        "the server grew by {growth} bytes walking 100,103 entries"
    );
}

#[test]
fn a_new_file_with_an_old_files_inode_size_and_mtime_gets_its_own_digest() {
    let server = server();
    let mut raw = server.raw();
    // the file system reuses a deleted file's inode at once; SETTIME puts
    // the mtime back: only the change time tells the two files apart
    for round in 0..5u8 {
        let old = [b'a' + round; 64];
        let new = [b'A' + round; 64];
        assert_eq!(raw.upload("reused.bin", &old), "OK 64\n");
        assert_eq!(ask(&mut raw, "SETTIME,1000000000,reused.bin"), "OK");
        assert_eq!(
            ask(&mut raw, "HASH,blake3,reused.bin"),
            format!("OK blake3 {}", blake3::hash(&old).to_hex())
        );
        assert_eq!(ask(&mut raw, "DELETE,reused.bin"), "OK");
        assert_eq!(raw.upload("reused.bin", &new), "OK 64\n");
        assert_eq!(ask(&mut raw, "SETTIME,1000000000,reused.bin"), "OK");
        assert_eq!(
            ask(&mut raw, "HASH,blake3,reused.bin"),
            format!("OK blake3 {}", blake3::hash(&new).to_hex()),
            "round {round}"
        );
        assert_eq!(ask(&mut raw, "DELETE,reused.bin"), "OK");
    }
}
