//! The small files `ioe` takes trust from — the token file, the
//! known-hosts file, the servers file, a CA file: one check refuses the same
//! careless set-up of each with the same words, and one lock guards the two
//! that `ioe` itself changes.

use std::fs::{self, File, Metadata};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Refuses `what` (`the token file`) at `path` when other users may write
/// it, saying what they could then do (`could add a token`) and the
/// command that fixes it. Group-writable is left to the admin (umask 002
/// is common).
pub fn refuse_if_others_write(
    meta: &Metadata,
    what: &str,
    path: &Path,
    they_could: &str,
) -> Result<(), String> {
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o002 == 0 {
        return Ok(());
    }
    let shown = path.display();
    Err(format!(
        "{what} `{shown}` is writable by other users (mode {mode:04o}): anyone on this \
         machine {they_could}; `chmod o-w {shown}`"
    ))
}

/// Opens `what` (`the token file`) at `path` for reading and appending,
/// made with `mode` if missing, under an exclusive `flock`; opened again
/// (up to 10 times) when another process replaced the file by a rename
/// while this one waited for the lock, since the lock of a replaced file
/// guards nothing. Never waits to open (a FIFO cannot hang it).
pub fn open_locked(path: &Path, mode: u32, what: &str) -> Result<File, String> {
    let cannot = |e: std::io::Error| format!("cannot open {what} `{}`: {e}", path.display());
    for _ in 0..10 {
        let file = File::options()
            .read(true)
            .append(true)
            .create(true)
            .mode(mode)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(path)
            .map_err(cannot)?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| cannot(e.into()))?;
        let held = file.metadata().map_err(cannot)?;
        if fs::metadata(path).is_ok_and(|now| now.dev() == held.dev() && now.ino() == held.ino()) {
            return Ok(file);
        }
    }
    Err(format!(
        "{what} `{}` keeps being replaced; try again",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_file_others_may_write_is_refused() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "x").unwrap();
        for (mode, refused) in [(0o600, false), (0o664, false), (0o666, true), (0o602, true)] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let meta = std::fs::metadata(&path).unwrap();
            let result = refuse_if_others_write(&meta, "the f file", &path, "could do harm");
            assert_eq!(result.is_err(), refused, "{mode:o}: {result:?}");
            if let Err(message) = result {
                assert_eq!(
                    message,
                    format!(
                        "the f file `{0}` is writable by other users (mode {mode:04o}): anyone \
                         on this machine could do harm; `chmod o-w {0}`",
                        path.display()
                    )
                );
            }
        }
    }
}
