//! `read_with` and `write_with` against real servers: modification times
//! kept both ways, digests compared (a file changed between the transfer
//! and its digest is caught), and downloads resumed after a killed server
//! or Ctrl-C, fetching only the rest (counted by a relay between the two).

mod common;

use common::relay::Relay;
use common::{ServeProcess, TestServer, mtime, pseudo_random, put, set_mtime, temp_files};
use ioe::ErrorKind;
use ioe::cancel::CancelToken;
use ioe::digest::Algorithm;
use ioe::protocol::PART_PREFIX;
use ioe::session::{TransferOptions, Transferred};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, UNIX_EPOCH};
use tempfile::TempDir;

fn set_mtime_exactly(path: &Path, since_epoch: Duration) {
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(UNIX_EPOCH + since_epoch)
        .unwrap();
}

/// Overwrites the first bytes of a file in place (same inode and size).
fn overwrite_start(path: &Path, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .write_all_at(bytes, 0)
        .unwrap();
}

/// Large enough that a server cannot have sent it all into the socket
/// buffers (a few MiB on loopback) while the relay holds it back.
const BIG: usize = 32 * 1024 * 1024;

/// Whether two byte strings are equal, without printing them.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a == b
}

fn verified() -> TransferOptions {
    TransferOptions {
        verify: true,
        ..TransferOptions::default()
    }
}

fn resuming() -> TransferOptions {
    TransferOptions {
        resume: true,
        ..TransferOptions::default()
    }
}

/// The part files beside `dir`'s files.
/// Ctrl-C (`cancel`) once a part file in `dir` holds some bytes: the relay
/// counts bytes on the wire, which over TLS the client may still be
/// decrypting when it holds the rest.
fn cancel_once_bytes_are_on_disk(dir: &Path, cancel: &CancelToken) {
    let on_disk = || {
        parts(dir)
            .first()
            .is_some_and(|part| fs::metadata(part).is_ok_and(|m| m.len() > 0))
    };
    assert!(
        common::wait_until(Duration::from_secs(10), on_disk),
        "no bytes reached a part file in {}",
        dir.display()
    );
    cancel.cancel();
}

fn parts(dir: &Path) -> Vec<PathBuf> {
    let mut parts: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(PART_PREFIX)
        })
        .collect();
    parts.sort();
    parts
}

#[test]
fn modification_times_are_kept_both_ways_by_default_and_only_then() {
    let server = TestServer::start();
    let remote = put(server.root(), "old.txt", b"from the server");
    set_mtime(&remote, 1_000_000_000);
    let local = TempDir::new().unwrap();
    let mut s = server.session();

    let got = local.path().join("old.txt");
    assert_eq!(s.read("old.txt", &got).unwrap(), 15);
    assert_eq!(mtime(&got), 1_000_000_000);
    let done = s
        .read_with(
            "old.txt",
            &got,
            &TransferOptions {
                mtime: false,
                ..TransferOptions::default()
            },
        )
        .unwrap();
    assert_eq!(done.mtime, None);
    assert!(
        mtime(&got) > 1_700_000_000,
        "a fresh mtime without the option"
    );

    let source = put(local.path(), "up.txt", b"from here");
    set_mtime(&source, 1_100_000_000);
    let done = s
        .write_with(&source, "dir/up.txt", &TransferOptions::default())
        .unwrap();
    assert_eq!(done.mtime, Some(1_100_000_000));
    assert_eq!(mtime(&server.root().join("dir/up.txt")), 1_100_000_000);
    s.write_with(
        &source,
        "fresh.txt",
        &TransferOptions {
            mtime: false,
            ..TransferOptions::default()
        },
    )
    .unwrap();
    assert!(mtime(&server.root().join("fresh.txt")) > 1_700_000_000);
}

#[test]
fn a_refused_upload_does_not_retime_the_file_it_would_have_replaced() {
    let server = TestServer::start_with(|c| c.max_size = Some(4));
    let kept = put(server.root(), "kept.txt", b"old");
    set_mtime(&kept, 1_000_000_000);
    let local = TempDir::new().unwrap();
    let source = put(local.path(), "big.txt", b"too big for it");
    let mut s = server.session();
    let e = s.write(&source, "kept.txt").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Refused, "{e}");
    assert_eq!(fs::read(&kept).unwrap(), b"old");
    assert_eq!(mtime(&kept), 1_000_000_000);
    assert!(s.is_open());
}

#[test]
fn verified_transfers_return_the_digest_both_sides_agree_on() {
    let server = TestServer::start();
    let data = pseudo_random(1, 700_000);
    put(server.root(), "data.bin", &data);
    let local = TempDir::new().unwrap();
    let mut s = server.session();
    let expected = blake3::hash(&data).to_hex().to_string();

    let got = local.path().join("data.bin");
    let done = s.read_with("data.bin", &got, &verified()).unwrap();
    assert_eq!(done.digest, Some((Algorithm::Blake3, expected.clone())));
    assert_eq!(fs::read(&got).unwrap(), data);

    let done = s.write_with(&got, "copy.bin", &verified()).unwrap();
    assert_eq!(done.digest, Some((Algorithm::Blake3, expected)));
    assert_eq!(fs::read(server.root().join("copy.bin")).unwrap(), data);
}

#[test]
fn verify_catches_a_file_changed_between_the_transfer_and_its_digest() {
    let server = TestServer::start();
    let remote = put(server.root(), "moving.bin", &pseudo_random(2, BIG));
    let relay = Relay::start(server.addr());
    relay.hold_at(1024 * 1024);
    let local = TempDir::new().unwrap();
    let target = local.path().join("moving.bin");
    let client = {
        let (addr, target) = (relay.addr, target.clone());
        thread::spawn(move || {
            let mut s = common::connect(addr).unwrap();
            let result = s.read_with("moving.bin", &target, &verified());
            (result, s.is_open())
        })
    };
    // the first MiB is with the client; the file's first bytes change
    // before the server finishes sending and hashes it
    relay.wait_held();
    overwrite_start(&remote, b"CHANGED CHANGED!");
    relay.release();
    let (result, open) = client.join().unwrap();
    let e = result.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Corrupt, "{e}");
    assert!(e.to_string().contains("nothing was kept"), "{e}");
    assert!(!target.exists());
    assert_eq!(temp_files(local.path()), Vec::<PathBuf>::new());
    assert!(open, "a mismatch leaves the session usable");
}

/// Starts a resuming download of `name` through `relay`, held once
/// `cut_at` bytes went through; returns the client's thread.
fn cut_download(
    relay: &Relay,
    name: &'static str,
    target: &Path,
    cut_at: u64,
    cancel: Option<CancelToken>,
) -> thread::JoinHandle<ioe::Error> {
    relay.hold_at(cut_at);
    let (addr, target) = (relay.addr, target.to_path_buf());
    thread::spawn(move || {
        let mut s = common::connect(addr).unwrap();
        if let Some(cancel) = cancel {
            s.set_cancel(cancel);
        }
        s.read_with(name, &target, &resuming()).unwrap_err()
    })
}

/// A second, resuming download through a fresh relay to `addr`: the
/// result, and the body bytes the server sent for it.
fn resume(addr: std::net::SocketAddr, name: &str, target: &Path) -> (Transferred, u64) {
    let relay = Relay::start(addr);
    let mut s = common::connect(relay.addr).unwrap();
    let done = s.read_with(name, target, &resuming()).unwrap();
    s.bye().unwrap();
    (done, relay.forwarded())
}

/// Status lines and other replies around a body, in bytes, at most.
const REPLY_OVERHEAD: u64 = 1024;

/// The most bytes the server may send for a body of `missing` bytes: the
/// body, the replies around it and, in the TLS run, what TLS adds.
fn allowed(missing: u64) -> u64 {
    missing + REPLY_OVERHEAD + common::wire_overhead(missing)
}

#[test]
fn a_download_cut_by_a_killed_server_resumes_where_it_stopped() {
    let root = TempDir::new().unwrap();
    let size = BIG;
    let data = pseudo_random(5, size);
    put(root.path(), "big.bin", &data);
    let local = TempDir::new().unwrap();
    let target = local.path().join("big.bin");

    let server = ServeProcess::start(root.path(), &[]);
    let relay = Relay::start(server.addr());
    let client = cut_download(&relay, "big.bin", &target, 8 * 1024 * 1024, None);
    relay.wait_held();
    server.signal("KILL");
    drop(server);
    relay.release();
    let e = client.join().unwrap();
    assert_eq!(e.kind, ErrorKind::ConnectionLost, "{e}");
    assert!(!target.exists(), "nothing under the final name");
    let kept = parts(local.path());
    assert_eq!(kept.len(), 1, "{kept:?}");
    let have = fs::metadata(&kept[0]).unwrap().len();
    assert!(have > 0 && have < size as u64, "{have}");

    let server = ServeProcess::start(root.path(), &[]);
    let (done, sent) = resume(server.addr(), "big.bin", &target);
    assert!(same(&fs::read(&target).unwrap(), &data), "byte-identical");
    assert_eq!(done.resumed_from, have);
    assert_eq!(done.moved, size as u64 - have);
    assert!(
        sent <= allowed(size as u64 - have),
        "sent {sent}, only {} were missing",
        size as u64 - have
    );
    assert_eq!(
        done.digest.unwrap().1,
        blake3::hash(&data).to_hex().as_str()
    );
    assert_eq!(parts(local.path()), Vec::<PathBuf>::new());
    assert_eq!(mtime(&target), mtime(&root.path().join("big.bin")));
}

#[test]
fn a_download_stopped_by_ctrl_c_keeps_its_bytes_and_resumes() {
    let server = TestServer::start();
    let size = BIG;
    let data = pseudo_random(6, size);
    put(server.root(), "c.bin", &data);
    let local = TempDir::new().unwrap();
    let target = local.path().join("c.bin");
    let relay = Relay::start(server.addr());
    let cancel = CancelToken::new();
    let client = cut_download(
        &relay,
        "c.bin",
        &target,
        2 * 1024 * 1024,
        Some(cancel.clone()),
    );
    relay.wait_held();
    cancel_once_bytes_are_on_disk(local.path(), &cancel);
    let e = client.join().unwrap();
    assert_eq!(e.kind, ErrorKind::Cancelled, "{e}");
    assert!(
        e.to_string().contains("the bytes that arrived are kept in"),
        "{e}"
    );
    drop(relay);
    let kept = parts(local.path());
    assert_eq!(kept.len(), 1, "{kept:?}");
    let have = fs::metadata(&kept[0]).unwrap().len();
    assert!(have > 0, "the bytes that arrived are kept");

    let (done, sent) = resume(server.addr(), "c.bin", &target);
    assert!(same(&fs::read(&target).unwrap(), &data));
    assert_eq!(done.resumed_from, have);
    assert!(sent <= allowed(size as u64 - have), "sent {sent}");
}

#[test]
fn a_resume_starts_over_when_the_remote_file_changed_meanwhile() {
    let server = TestServer::start();
    let size = BIG;
    let remote = put(server.root(), "v.bin", &pseudo_random(7, size));
    set_mtime(&remote, 1_000_000_000);
    let local = TempDir::new().unwrap();
    let target = local.path().join("v.bin");
    let relay = Relay::start(server.addr());
    let cancel = CancelToken::new();
    let client = cut_download(&relay, "v.bin", &target, 1024 * 1024, Some(cancel.clone()));
    relay.wait_held();
    cancel_once_bytes_are_on_disk(local.path(), &cancel);
    client.join().unwrap();
    drop(relay);
    assert_eq!(parts(local.path()).len(), 1);

    // a new version, same size: its mtime tells it apart
    let new = pseudo_random(8, size);
    fs::write(&remote, &new).unwrap();
    set_mtime(&remote, 1_000_000_500);
    let (done, sent) = resume(server.addr(), "v.bin", &target);
    assert!(same(&fs::read(&target).unwrap(), &new));
    assert_eq!(done.resumed_from, 0, "the old part was not used");
    assert!(sent >= size as u64, "the whole file came again: {sent}");
    assert_eq!(
        parts(local.path()),
        Vec::<PathBuf>::new(),
        "the old part is gone"
    );
    assert_eq!(mtime(&target), 1_000_000_500);
}

#[test]
fn a_resume_whose_kept_bytes_do_not_match_starts_again_from_zero_once() {
    let server = TestServer::start();
    let remote = put(server.root(), "same.bin", &pseudo_random(9, BIG));
    set_mtime(&remote, 1_200_000_000);
    let local = TempDir::new().unwrap();
    let target = local.path().join("same.bin");
    let relay = Relay::start(server.addr());
    let cancel = CancelToken::new();
    let client = cut_download(
        &relay,
        "same.bin",
        &target,
        1024 * 1024,
        Some(cancel.clone()),
    );
    relay.wait_held();
    cancel_once_bytes_are_on_disk(local.path(), &cancel);
    client.join().unwrap();
    drop(relay);
    assert_eq!(parts(local.path()).len(), 1);

    // rewritten within the same second, same size: the part's name still
    // fits, only the digest can tell, after the rest was fetched
    overwrite_start(&remote, b"REWRITE!");
    set_mtime_exactly(&remote, Duration::from_millis(1_200_000_000_500));
    let new = fs::read(&remote).unwrap();
    let (done, _) = resume(server.addr(), "same.bin", &target);
    assert!(same(&fs::read(&target).unwrap(), &new));
    assert_eq!(done.resumed_from, 0, "started again from zero");
    assert_eq!(parts(local.path()), Vec::<PathBuf>::new());
}

#[test]
fn a_link_planted_as_the_part_file_is_refused_and_its_target_untouched() {
    let server = TestServer::start();
    let remote = put(server.root(), "r.bin", b"remote content");
    set_mtime(&remote, 1_300_000_000);
    let local = TempDir::new().unwrap();
    let victim = put(local.path(), "precious", b"precious\n");
    let part = ioe::session::part_path(&local.path().join("r.bin"), 14, 1_300_000_000);
    std::os::unix::fs::symlink(&victim, &part).unwrap();
    let mut s = server.session();
    let e = s
        .read_with("r.bin", &local.path().join("r.bin"), &resuming())
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::LocalIo, "{e}");
    assert_eq!(fs::read(&victim).unwrap(), b"precious\n");
    assert!(!local.path().join("r.bin").exists());
    assert!(s.is_open());
}
