//! Whole-file writes: bytes go to a temporary file beside the target, which
//! is renamed over the target only when complete and removed otherwise.
//! The client's downloads use a path ([`create_in`]); the server's uploads
//! use a folder handle ([`TempFileAt`]), so that no step goes by path.

use crate::protocol::TEMP_PREFIX;
use rustix::fd::OwnedFd;
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};
use rustix::io::Errno;
use std::fs::{File, Permissions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use tempfile::NamedTempFile;

/// Creates a temporary file in `dir`, named so that servers never list it,
/// with the usual permissions (0666 less the umask) so that the renamed
/// file looks like any other.
pub fn create_in(dir: &Path) -> io::Result<NamedTempFile> {
    tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .permissions(Permissions::from_mode(0o666))
        .tempfile_in(dir)
}

/// A temporary file in the folder behind a handle; removed on drop unless
/// [`persist`](TempFileAt::persist)ed.
pub struct TempFileAt {
    folder: OwnedFd,
    name: String,
    persisted: bool,
}

/// Most names tried before giving up on creating a temporary file.
const MAX_TRIES: u32 = 100;

impl TempFileAt {
    /// Creates a new temporary file (`.ioe-tmp-<pid>-<n>`, 0666 less the
    /// umask) in `folder`, opened for writing. `O_EXCL | O_NOFOLLOW`: an
    /// existing file or link of that name is never opened; the next name is
    /// tried instead.
    pub fn create(folder: OwnedFd) -> io::Result<(TempFileAt, File)> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let flags = OFlags::WRONLY
            | OFlags::CREATE
            | OFlags::EXCL
            | OFlags::NOFOLLOW
            | OFlags::CLOEXEC
            | OFlags::NOCTTY;
        for _ in 0..MAX_TRIES {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let name = format!("{TEMP_PREFIX}{:x}-{n:x}", std::process::id());
            match rfs::openat(&folder, &name, flags, Mode::from_raw_mode(0o666)) {
                Ok(fd) => {
                    let temp = TempFileAt {
                        folder,
                        name,
                        persisted: false,
                    };
                    return Ok((temp, File::from(fd)));
                }
                Err(Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "no free name for a temporary file",
        ))
    }

    /// The temporary file's name in its folder.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Renames the temporary file over `target`, in the same folder.
    pub fn persist(mut self, target: &str) -> io::Result<()> {
        rfs::renameat(&self.folder, &self.name, &self.folder, target)?;
        self.persisted = true;
        Ok(())
    }
}

impl Drop for TempFileAt {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = rfs::unlinkat(&self.folder, &self.name, AtFlags::empty());
        }
    }
}
