//! File digests, for `HASH` and verified transfers: the algorithms IOE/1
//! names (`sha256` from the `sha2` crate, `blake3` from the `blake3`
//! crate), fed piece by piece as bytes stream through, and a small bounded
//! cache of the digests of files that have not changed.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::fs::Metadata;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;

/// A digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// SHA-256, which every IOE/1 server with `HASH` has.
    Sha256,
    /// BLAKE3 (256-bit output), several times faster.
    Blake3,
}

impl Algorithm {
    /// Every algorithm this build has, the preferred one first.
    pub const ALL: [Algorithm; 2] = [Algorithm::Blake3, Algorithm::Sha256];

    /// The name on the wire (`sha256`, `blake3`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Blake3 => "blake3",
        }
    }

    /// The algorithm with that wire name, if this build has it.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.name() == name)
    }

    /// A new incremental hasher.
    pub fn hasher(self) -> Hasher {
        match self {
            Algorithm::Sha256 => Hasher::Sha256(<sha2::Sha256 as sha2::Digest>::new()),
            Algorithm::Blake3 => Hasher::Blake3(Box::new(blake3::Hasher::new())),
        }
    }
}

/// A digest being computed.
pub enum Hasher {
    /// SHA-256 state.
    Sha256(sha2::Sha256),
    /// BLAKE3 state (large, so boxed).
    Blake3(Box<blake3::Hasher>),
}

impl Hasher {
    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => sha2::Digest::update(h, bytes),
            Hasher::Blake3(h) => {
                h.update(bytes);
            }
        }
    }

    /// Adds everything `reader` yields, read in pieces of 256 KiB.
    pub fn update_from(&mut self, mut reader: impl Read) -> io::Result<()> {
        let mut buf = vec![0; PIECE];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => self.update(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The digest, as lower-case hex.
    pub fn finish_hex(self) -> String {
        match self {
            Hasher::Sha256(h) => hex(&sha2::Digest::finalize(h)),
            Hasher::Blake3(h) => h.finalize().to_hex().to_string(),
        }
    }
}

/// Bytes as lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(text, "{b:02x}");
    }
    text
}

/// Size of the pieces a file is read in.
const PIECE: usize = 256 * 1024;

/// The digest of everything `reader` yields, as lower-case hex.
pub fn hash_reader(algorithm: Algorithm, reader: impl Read) -> io::Result<String> {
    let mut hasher = algorithm.hasher();
    hasher.update_from(reader)?;
    Ok(hasher.finish_hex())
}

/// What identifies one version of a file's content: device, inode, size,
/// and the modification and change times to the nanosecond. The change
/// time matters: a client can set the mtime back (`SETTIME`), and a file
/// system reuses a deleted file's inode at once, so a new file of the same
/// size and mtime could otherwise take an old file's digest; no one can set
/// the change time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
    ctime: i64,
    ctime_nsec: i64,
}

impl FileStamp {
    /// The file's size in this version.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The stamp of a file's metadata.
    pub fn of(meta: &Metadata) -> FileStamp {
        FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
            ctime: meta.ctime(),
            ctime_nsec: meta.ctime_nsec(),
        }
    }
}

/// Digests of unchanged files, at most `capacity` of them (the oldest
/// inserted goes first). Shared by a server's connections.
pub struct DigestCache {
    capacity: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    digests: HashMap<(FileStamp, Algorithm), String>,
    order: VecDeque<(FileStamp, Algorithm)>,
}

impl DigestCache {
    /// An empty cache holding at most `capacity` digests.
    pub fn new(capacity: usize) -> DigestCache {
        DigestCache {
            capacity,
            inner: Mutex::new(CacheInner::default()),
        }
    }

    /// The digest remembered for that version of a file.
    pub fn get(&self, stamp: FileStamp, algorithm: Algorithm) -> Option<String> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.digests.get(&(stamp, algorithm)).cloned()
    }

    /// Remembers a digest, forgetting the oldest one when full.
    pub fn insert(&self, stamp: FileStamp, algorithm: Algorithm, digest: String) {
        if self.capacity == 0 {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let key = (stamp, algorithm);
        if inner.digests.insert(key, digest).is_none() {
            inner.order.push_back(key);
        }
        while inner.order.len() > self.capacity {
            if let Some(old) = inner.order.pop_front() {
                inner.digests.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        let sha = hash_reader(Algorithm::Sha256, &b"abc"[..]).unwrap();
        assert_eq!(
            sha,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let b3 = hash_reader(Algorithm::Blake3, &b""[..]).unwrap();
        assert_eq!(
            b3,
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        // piece by piece gives the same as at once
        let data = vec![5u8; 3 * PIECE + 17];
        let mut h = Algorithm::Sha256.hasher();
        for piece in data.chunks(1000) {
            h.update(piece);
        }
        assert_eq!(
            h.finish_hex(),
            hash_reader(Algorithm::Sha256, &data[..]).unwrap()
        );
    }

    #[test]
    fn names_round_trip() {
        for a in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(a.name()), Some(a));
        }
        assert_eq!(Algorithm::from_name("md5"), None);
    }

    #[test]
    fn the_cache_forgets_the_oldest_first() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let stamp = FileStamp::of(&file.as_file().metadata().unwrap());
        let other = FileStamp { size: 1, ..stamp };
        let third = FileStamp { size: 2, ..stamp };
        let cache = DigestCache::new(2);
        cache.insert(stamp, Algorithm::Sha256, "a".into());
        cache.insert(other, Algorithm::Sha256, "b".into());
        assert_eq!(cache.get(stamp, Algorithm::Sha256).as_deref(), Some("a"));
        assert_eq!(cache.get(stamp, Algorithm::Blake3), None);
        cache.insert(third, Algorithm::Sha256, "c".into());
        assert_eq!(cache.get(stamp, Algorithm::Sha256), None);
        assert_eq!(cache.get(third, Algorithm::Sha256).as_deref(), Some("c"));
    }
}
