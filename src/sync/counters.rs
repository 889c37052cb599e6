//! What a sync has done so far, for a progress display: the totals of the
//! copies, what finished, and the files in flight. The workers update it;
//! a display reads [`Counters::snapshot`] from another thread.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Shared counters a sync updates as its copies go (see
/// [`super::SyncOptions::progress`]). Bytes count when a file is done.
#[derive(Debug, Default)]
pub struct Counters {
    files_total: AtomicU64,
    bytes_total: AtomicU64,
    files_done: AtomicU64,
    bytes_done: AtomicU64,
    in_flight: Mutex<Vec<String>>,
}

/// The counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Files to copy (0 until the plan is made).
    pub files_total: u64,
    /// Bytes to copy.
    pub bytes_total: u64,
    /// Files copied or failed.
    pub files_done: u64,
    /// Bytes of the files copied.
    pub bytes_done: u64,
    /// The files whose requests are out, oldest first.
    pub in_flight: Vec<String>,
}

impl Counters {
    /// The counters now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            files_total: self.files_total.load(Ordering::Relaxed),
            bytes_total: self.bytes_total.load(Ordering::Relaxed),
            files_done: self.files_done.load(Ordering::Relaxed),
            bytes_done: self.bytes_done.load(Ordering::Relaxed),
            in_flight: self.flight().clone(),
        }
    }

    pub(super) fn planned(&self, files: u64, bytes: u64) {
        self.files_total.store(files, Ordering::Relaxed);
        self.bytes_total.store(bytes, Ordering::Relaxed);
    }

    pub(super) fn started(&self, name: &str) {
        self.flight().push(name.to_string());
    }

    /// A file left the flight: `copied` bytes arrived, or none if it failed.
    pub(super) fn finished(&self, name: &str, copied: Option<u64>) {
        self.landed(name);
        self.files_done.fetch_add(1, Ordering::Relaxed);
        if let Some(bytes) = copied {
            self.bytes_done.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// A file left the flight to be tried again.
    pub(super) fn landed(&self, name: &str) {
        let mut flight = self.flight();
        if let Some(i) = flight.iter().position(|n| n == name) {
            flight.remove(i);
        }
    }

    fn flight(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }
}
