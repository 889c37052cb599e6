//! What a server leaves on disk and says when storing fails: temporary
//! files of killed servers are swept at the next start (and only stale
//! ones), and a failed upload's reply names the file as the client did,
//! never a path on the server.

mod common;

use common::{Raw, ServeProcess, put, temp_files, wait_until};
use std::fs::{self, File};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use tempfile::TempDir;

#[test]
fn a_killed_upload_is_swept_at_the_next_start_and_a_fresh_one_is_kept() {
    let root = TempDir::new().unwrap();
    let server = ServeProcess::start(root.path(), &[]);
    let mut raw = Raw::connect(server.addr());
    // an upload of 10 MiB, cut off after 1 MiB by a kill -9 of the server
    raw.send(b"WRITE,folder/big.bin,10485760\n");
    raw.send(&vec![7; 1024 * 1024]);
    let written = || {
        temp_files(root.path())
            .into_iter()
            .find(|p| fs::metadata(p).is_ok_and(|m| m.len() == 1024 * 1024))
    };
    assert!(wait_until(Duration::from_secs(10), || written().is_some()));
    let leftover = written().unwrap();
    server.signal("KILL");
    drop(server);
    assert!(
        leftover.exists(),
        "a killed server leaves its temporary file"
    );

    // an hour and more unchanged: no transfer owns it any more; another
    // one, just written, may belong to a live upload of another server
    let two_hours_ago = SystemTime::now() - Duration::from_secs(2 * 3600);
    File::options()
        .write(true)
        .open(&leftover)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    let fresh = put(root.path(), "folder/.ioe-tmp-live", b"in progress");

    let server = ServeProcess::start_logging(root.path(), &[]);
    assert!(
        wait_until(Duration::from_secs(10), || !leftover.exists()),
        "the stale temporary file is still there"
    );
    let line = server.wait_for_log(&["removed 1 temporary file", "1048576 bytes"]);
    assert!(line.contains("interrupted"), "{line}");
    assert!(fresh.exists(), "a recent temporary file was removed");
    assert_eq!(temp_files(root.path()), vec![fresh]);
    assert!(!root.path().join("folder/big.bin").exists());
}

#[test]
fn a_failed_upload_names_no_path_of_the_server_and_leaves_nothing() {
    let root = TempDir::new().unwrap();
    let root_path = root.path().canonicalize().unwrap();
    let server = ServeProcess::start_with_file_limit(root.path(), &[], 64 * 1024);
    let mut raw = Raw::connect(server.addr());
    let reply = raw.upload("sub/big.bin", &vec![1; 1024 * 1024]);
    assert!(
        reply.starts_with("ERROR: cannot store `sub/big.bin`: File too large"),
        "{reply:?}"
    );
    let root_text = root_path.to_str().unwrap();
    assert!(
        !reply.contains(root_text),
        "the reply shows a server path: {reply:?}"
    );
    assert!(!reply.contains(".ioe-tmp"), "{reply:?}");
    // the server's log has the whole path, for its operator
    let line = server.wait_for_log(&["WRITE sub/big.bin", "File too large"]);
    assert!(
        line.contains(&format!("{root_text}/sub/.ioe-tmp-")),
        "{line}"
    );
    // nothing is left, and the session goes on
    assert_eq!(temp_files(root.path()), Vec::<PathBuf>::new());
    assert!(!root.path().join("sub/big.bin").exists());
    assert_eq!(raw.upload("small.txt", b"fits"), "OK 4\n");
    assert_eq!(fs::read(root.path().join("small.txt")).unwrap(), b"fits");
}
