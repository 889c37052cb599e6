//! The server's confinement under attack: a local user who can write into
//! the served folder swaps a folder for a symbolic link out of the root, as
//! fast as the kernel lets them, while clients read, list and write through
//! that folder. Nothing outside may ever be read, listed or written.

mod common;

use common::{Raw, TestServer, put, temp_files};
use rustix::fs::{CWD, RenameFlags, renameat_with};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// How long each kind of request is raced against the swapper.
const RACE_FOR: Duration = Duration::from_millis(1500);
/// Most requests of one kind per race, whatever the machine's speed.
const MAX_REQUESTS: usize = 20_000;

/// A root holding folder `d` (with `f.txt` = `inside`) and, beside it, a
/// link `x` to a folder outside the root that has the same file names with
/// other contents, plus one name only it has. A thread swaps `d` and `x`
/// (`renameat2(RENAME_EXCHANGE)`) until dropped.
struct Swapped {
    server: TestServer,
    outside: PathBuf,
    stop: Arc<AtomicBool>,
    swaps: Arc<AtomicUsize>,
    swapper: Option<thread::JoinHandle<()>>,
}

impl Swapped {
    fn start() -> Swapped {
        let server = TestServer::start();
        let outside = server.outside().join("secret");
        put(&outside, "f.txt", b"OUTSIDE");
        put(&outside, "only-outside.txt", b"OUTSIDE");
        put(server.root(), "d/f.txt", b"inside");
        std::os::unix::fs::symlink(&outside, server.root().join("x")).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let swaps = Arc::new(AtomicUsize::new(0));
        let (d, x) = (server.root().join("d"), server.root().join("x"));
        let swapper = {
            let (stop, swaps) = (Arc::clone(&stop), Arc::clone(&swaps));
            thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(120);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    renameat_with(CWD, &d, CWD, &x, RenameFlags::EXCHANGE).unwrap();
                    swaps.fetch_add(1, Ordering::Relaxed);
                }
                // leave `d` the real folder
                if fs::symlink_metadata(&d).unwrap().is_symlink() {
                    renameat_with(CWD, &d, CWD, &x, RenameFlags::EXCHANGE).unwrap();
                }
            })
        };
        Swapped {
            server,
            outside,
            stop,
            swaps,
            swapper: Some(swapper),
        }
    }

    /// Sends requests made by `request(i)` for [`RACE_FOR`], checking each
    /// reply with `check`; returns how many went through.
    fn race(&self, mut request: impl FnMut(&mut Raw, usize) -> Result<(), String>) -> usize {
        let mut raw = self.server.raw();
        let start = Instant::now();
        let mut sent = 0;
        while start.elapsed() < RACE_FOR && sent < MAX_REQUESTS {
            if let Err(leak) = request(&mut raw, sent) {
                panic!("request {sent} escaped the root: {leak}");
            }
            sent += 1;
        }
        sent
    }

    /// The outside folder is exactly as it was made.
    fn assert_outside_untouched(&self) {
        let mut names: Vec<String> = fs::read_dir(&self.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["f.txt", "only-outside.txt"], "written outside");
        assert_eq!(fs::read(self.outside.join("f.txt")).unwrap(), b"OUTSIDE");
        assert_eq!(temp_files(&self.outside), Vec::<PathBuf>::new());
    }
}

impl Drop for Swapped {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(swapper) = self.swapper.take() {
            let _ = swapper.join();
        }
    }
}

/// `READ` through the swapped folder returns the inside file or a refusal,
/// never the outside file.
#[test]
fn reads_never_return_a_file_outside_the_root() {
    let race = Swapped::start();
    let mut served = 0;
    let sent = race.race(|raw, _| {
        raw.send(b"READ,d/f.txt\n");
        let line = raw.line().trim_end().to_string();
        if line.starts_with("ERROR: ") {
            return Ok(());
        }
        let size: usize = line.parse().map_err(|_| format!("reply {line:?}"))?;
        let body = raw.bytes(size);
        served += 1;
        match body.as_slice() {
            b"inside" => Ok(()),
            other => Err(String::from_utf8_lossy(other).into_owned()),
        }
    });
    assert!(race.swaps.load(Ordering::Relaxed) > 100, "the swapper ran");
    assert!(served > 0, "none of {sent} reads was served");
    race.assert_outside_untouched();
}

/// `LIST` of the swapped folder lists the inside folder or is refused.
#[test]
fn listings_never_show_a_folder_outside_the_root() {
    let race = Swapped::start();
    let sent = race.race(|raw, _| {
        raw.send(b"LIST,d\n");
        let line = raw.line().trim_end().to_string();
        if line.starts_with("ERROR: ") {
            return Ok(());
        }
        let count: usize = line
            .strip_prefix("OK ")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("reply {line:?}"))?;
        let entries: Vec<String> = (0..count).map(|_| raw.line()).collect();
        if entries.iter().any(|e| e.contains("only-outside")) {
            return Err(format!("listed {entries:?}"));
        }
        Ok(())
    });
    assert!(sent > 0);
    race.assert_outside_untouched();
}

/// `WRITE` into the swapped folder lands inside or is refused; nothing is
/// created outside, not even a temporary file.
#[test]
fn uploads_never_land_outside_the_root() {
    let race = Swapped::start();
    let mut stored = 0;
    let sent = race.race(|raw, i| {
        let reply = raw.upload(&format!("d/new-{i}.txt"), b"upload");
        let reply = reply.trim_end();
        stored += usize::from(reply == "OK 6");
        if reply == "OK 6" || reply.starts_with("ERROR: ") {
            Ok(())
        } else {
            Err(format!("reply {reply:?}"))
        }
    });
    assert!(stored > 0, "none of {sent} uploads was stored");
    race.assert_outside_untouched();
    // and into a new folder below it, created by the upload
    let mut stored = 0;
    let sent = race.race(|raw, i| {
        let reply = raw.upload(&format!("d/sub{i}/new.txt"), b"upload");
        let reply = reply.trim_end();
        stored += usize::from(reply == "OK 6");
        if reply == "OK 6" || reply.starts_with("ERROR: ") {
            Ok(())
        } else {
            Err(format!("reply {reply:?}"))
        }
    });
    assert!(stored > 0, "none of {sent} uploads was stored");
    race.assert_outside_untouched();
    assert_no_folder_outside(&race.outside);
}

fn assert_no_folder_outside(outside: &Path) {
    let folders: Vec<PathBuf> = fs::read_dir(outside)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(folders, Vec::<PathBuf>::new());
}
