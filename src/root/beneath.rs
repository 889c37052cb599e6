//! Race-free name resolution under a directory handle. Every name is
//! opened relative to the root's file descriptor, never by path, so a folder
//! swapped for a symbolic link at any moment cannot make an access land
//! outside the root.
//!
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` resolves a name in one
//! call. It refuses (`EXDEV`) every absolute link, even one that points back
//! inside the root, and old kernels lack it (`ENOSYS`); in those cases a
//! walk component by component decides instead: each component is opened
//! with `O_NOFOLLOW` relative to the folder handle before it, links are read
//! from their own handle and followed by hand, and `..` pops the walk's own
//! stack of handles, so it can never climb above the root.

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{self as rfs, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Most symbolic links one name may pass through (the kernel's own limit).
const MAX_LINKS: usize = 40;

/// A folder handle that names are resolved beneath.
#[derive(Debug)]
pub(crate) struct Beneath {
    /// `O_PATH` handle of the folder.
    fd: OwnedFd,
    /// Its canonical path, to tell whether an absolute link points inside.
    path: PathBuf,
}

impl Beneath {
    /// Opens the folder at `path`, which must be canonical.
    pub(crate) fn open_dir(path: &Path) -> io::Result<Beneath> {
        let fd = rfs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Beneath {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// A folder already open (`O_PATH`) whose canonical path is `path`.
    pub(crate) fn from_fd(fd: OwnedFd, path: PathBuf) -> Beneath {
        Beneath { fd, path }
    }

    /// The handle of the folder itself.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Opens `name` (`/`-separated, relative; empty for the folder itself)
    /// with `flags`, following links as long as they stay beneath. A name
    /// that leads outside fails with `EXDEV`, a link chain too long with
    /// `ELOOP`, a missing one with `ENOENT`.
    pub(crate) fn open(&self, name: &str, flags: OFlags) -> io::Result<OwnedFd> {
        // openat2 refuses O_PATH with flags it would ignore
        let flags = if flags.contains(OFlags::PATH) {
            flags | OFlags::CLOEXEC
        } else {
            flags | OFlags::CLOEXEC | OFlags::NOCTTY
        };
        let path = if name.is_empty() { "." } else { name };
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        match rfs::openat2(&self.fd, path, flags, Mode::empty(), resolve) {
            // EAGAIN: a rename elsewhere raced the lookup of a `..`
            Err(Errno::XDEV | Errno::NOSYS | Errno::AGAIN) => self.walk(name, flags),
            other => Ok(other?),
        }
    }

    /// [`open`](Self::open) done by hand, one component at a time.
    fn walk(&self, name: &str, flags: OFlags) -> io::Result<OwnedFd> {
        // components still to resolve, the next one last
        let mut pending: Vec<OsString> = components(name.as_bytes()).rev().collect();
        // folders entered below the root, innermost last
        let mut dirs: Vec<OwnedFd> = Vec::new();
        let mut links = 0;
        while let Some(component) = pending.pop() {
            let at = dirs.last().map_or(self.fd.as_fd(), AsFd::as_fd);
            if component == ".." {
                if dirs.pop().is_none() {
                    return Err(Errno::XDEV.into());
                }
                continue;
            }
            let handle = rfs::openat(
                at,
                &component,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            let file_type = FileType::from_raw_mode(rfs::fstat(&handle)?.st_mode);
            if file_type == FileType::Symlink {
                links += 1;
                if links > MAX_LINKS {
                    return Err(Errno::LOOP.into());
                }
                // read from the link's own handle: the link just looked at
                let target = rfs::readlinkat(&handle, "", Vec::new())?.into_bytes();
                let rest = if target.starts_with(b"/") {
                    dirs.clear();
                    self.inside_part(&target).ok_or(Errno::XDEV)?
                } else {
                    &target[..]
                };
                pending.extend(components(rest).rev());
                continue;
            }
            let is_dir = file_type == FileType::Directory;
            if !pending.is_empty() {
                if !is_dir {
                    return Err(Errno::NOTDIR.into());
                }
                dirs.push(handle);
                continue;
            }
            if flags.contains(OFlags::DIRECTORY) && !is_dir {
                return Err(Errno::NOTDIR.into());
            }
            if flags.contains(OFlags::PATH) {
                return Ok(handle);
            }
            // open it as asked; O_NOFOLLOW fails if a link took its place
            // meanwhile (ELOOP, or ENOTDIR with O_DIRECTORY), and the
            // component is then looked at again
            match rfs::openat(at, &component, flags | OFlags::NOFOLLOW, Mode::empty()) {
                Err(Errno::LOOP | Errno::NOTDIR) => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(Errno::LOOP.into());
                    }
                    pending.push(component);
                }
                other => return Ok(other?),
            }
        }
        // the name was the root, or ended in `..`: reopen that folder
        let at = dirs.last().map_or(self.fd.as_fd(), AsFd::as_fd);
        Ok(rfs::openat(at, ".", flags, Mode::empty())?)
    }

    /// The part of an absolute link target below the root, or `None` when
    /// it points elsewhere (compared by name: the root's canonical path).
    fn inside_part<'a>(&self, target: &'a [u8]) -> Option<&'a [u8]> {
        let root = self.path.as_os_str().as_bytes();
        let rest = target.strip_prefix(root)?;
        if rest.is_empty() {
            Some(rest)
        } else if root == b"/" {
            Some(target)
        } else {
            rest.strip_prefix(b"/")
        }
    }
}

/// The components of a `/`-separated path, without empty ones and `.`.
fn components(path: &[u8]) -> impl DoubleEndedIterator<Item = OsString> + '_ {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(|c| OsStr::from_bytes(c).to_os_string())
}

/// Whether an error means "leads outside the root".
pub(crate) fn is_outside(e: &io::Error) -> bool {
    e.raw_os_error() == Some(Errno::XDEV.raw_os_error())
}

/// Whether an error means "too many links" (a loop).
pub(crate) fn is_loop(e: &io::Error) -> bool {
    e.raw_os_error() == Some(Errno::LOOP.raw_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::Read;
    use std::os::unix::fs::symlink;

    /// A root inside a temporary folder, with `secret.txt` beside it.
    fn tree() -> (tempfile::TempDir, Beneath) {
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().canonicalize().unwrap().join("root");
        fs::create_dir_all(root.join("dir/sub")).unwrap();
        fs::write(root.join("dir/sub/f.txt"), "inside").unwrap();
        fs::write(outer.path().join("secret.txt"), "secret").unwrap();
        symlink("sub/f.txt", root.join("dir/rel")).unwrap();
        symlink("../dir/sub", root.join("dir/up")).unwrap();
        symlink(root.join("dir/sub"), root.join("abs")).unwrap();
        symlink(outer.path().join("secret.txt"), root.join("abs_out")).unwrap();
        symlink("../secret.txt", root.join("rel_out")).unwrap();
        symlink("loop_b", root.join("loop_a")).unwrap();
        symlink("loop_a", root.join("loop_b")).unwrap();
        let beneath = Beneath::open_dir(&root).unwrap();
        (outer, beneath)
    }

    fn content(fd: OwnedFd) -> String {
        let mut text = String::new();
        fs::File::from(fd).read_to_string(&mut text).unwrap();
        text
    }

    /// Both the one-call path and the walk give the same answers.
    #[test]
    fn links_inside_are_followed_and_links_out_refused() {
        let (_outer, b) = tree();
        for open in [Beneath::open, Beneath::walk] {
            for name in ["dir/sub/f.txt", "dir/rel", "dir/up/f.txt", "abs/f.txt"] {
                let fd = open(&b, name, OFlags::RDONLY | OFlags::CLOEXEC).unwrap();
                assert_eq!(content(fd), "inside", "{name}");
            }
            for name in ["abs_out", "rel_out", "dir/../../secret.txt"] {
                let e = open(&b, name, OFlags::RDONLY).unwrap_err();
                assert!(is_outside(&e), "{name}: {e}");
            }
            let e = open(&b, "loop_a", OFlags::RDONLY).unwrap_err();
            assert!(is_loop(&e), "{e}");
            let e = open(&b, "missing/f", OFlags::RDONLY).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::NotFound);
            let e = open(&b, "dir/sub/f.txt/x", OFlags::RDONLY).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::NotADirectory);
            let dir = open(&b, "", OFlags::RDONLY | OFlags::DIRECTORY).unwrap();
            assert!(FileType::from_raw_mode(rfs::fstat(&dir).unwrap().st_mode).is_dir());
        }
    }

    #[test]
    fn an_absolute_link_must_name_the_root_itself_not_a_prefix() {
        let (outer, b) = tree();
        let sibling = outer.path().canonicalize().unwrap().join("rootling");
        fs::create_dir(&sibling).unwrap();
        fs::write(sibling.join("g"), "sibling").unwrap();
        symlink(&sibling, b.path.join("sib")).unwrap();
        let e = b.open("sib/g", OFlags::RDONLY).unwrap_err();
        assert!(is_outside(&e), "{e}");
        symlink(&b.path, b.path.join("self")).unwrap();
        let fd = b.open("self/dir/rel", OFlags::RDONLY).unwrap();
        assert_eq!(content(fd), "inside");
    }
}
