//! The server's side of the file system: names → files confined to one root
//! folder, listings, uploads that become visible only once complete
//! (temporary file + rename), and the sweep of temporary files that killed
//! processes left behind.
//!
//! Every access goes through a handle of the root ([`beneath`]): names are
//! resolved relative to it with links followed only while they stay inside,
//! and files are then opened, listed, created, renamed and removed relative
//! to the handle of their folder, never by path. A folder swapped for a link
//! between two steps therefore cannot redirect anything outside.

mod beneath;

use crate::partial::TempFileAt;
use crate::protocol::{Entry, EntryKind, NOT_FOUND, TEMP_PREFIX, validate_name};
use beneath::{Beneath, is_loop, is_outside};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{self as rfs, AtFlags, Dir, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Why a name cannot be served; `Display` is the text after `ERROR: `, and
/// names only what the client named (never a path on the server).
#[derive(Debug)]
pub enum FsError {
    /// Nothing has that name.
    NotFound(String),
    /// The name, or a link on its way, leads outside the root.
    Outside(String),
    /// A `READ` of something other than a regular file.
    NotAFile(String),
    /// A `LIST` of, or an upload through, something that is not a folder.
    NotAFolder(String),
    /// An upload onto a folder.
    IsAFolder(String),
    /// A symbolic link whose target does not exist.
    Dangling(String),
    /// Symbolic links that lead to each other without end.
    LinkLoop(String),
    /// Something that is neither a regular file nor a folder (a FIFO…).
    NotAFileOrFolder(String),
    /// A `DELETE` of a folder that still has entries.
    NotEmpty(String),
    /// Any other failure of the file system.
    Io(String, io::Error),
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsError::NotFound(name) => write!(f, "{NOT_FOUND}: `{name}`"),
            FsError::Outside(name) => write!(f, "`{name}` leads outside the server's root"),
            FsError::NotAFile(name) => write!(f, "`{name}` is not a regular file"),
            FsError::NotAFolder(name) => write!(f, "`{name}` is not a folder"),
            FsError::IsAFolder(name) => write!(f, "`{name}` is a folder"),
            FsError::Dangling(name) => {
                write!(f, "`{name}` is a symbolic link whose target does not exist")
            }
            FsError::LinkLoop(name) => {
                write!(
                    f,
                    "`{name}` passes through too many symbolic links (a loop?)"
                )
            }
            FsError::NotAFileOrFolder(name) => {
                write!(f, "`{name}` is neither a regular file nor a folder")
            }
            FsError::NotEmpty(name) => write!(f, "`{name}` is a folder that is not empty"),
            FsError::Io(name, e) => write!(f, "`{name}`: {}", io_text(e)),
        }
    }
}

/// When `path` — a file the server keeps for itself, such as its private
/// key or token file — lies inside the served folder `root`, where clients
/// could read or replace it: both resolved, for the message. Links are
/// followed as far as the path exists; a part not made yet counts as
/// written (so a folder about to be made inside the root counts too).
pub fn lies_inside(path: &Path, root: &Path) -> Option<(PathBuf, PathBuf)> {
    let root = root.canonicalize().ok()?;
    let path = resolved(path);
    path.starts_with(&root).then_some((path, root))
}

/// `path` with its nearest existing ancestor resolved (links followed)
/// and the rest, which does not exist yet, normalised as written.
fn resolved(path: &Path) -> PathBuf {
    for ancestor in path.ancestors() {
        let probe = if ancestor.as_os_str().is_empty() {
            Path::new(".")
        } else {
            ancestor
        };
        let Ok(mut real) = probe.canonicalize() else {
            continue;
        };
        let rest = path.strip_prefix(ancestor).unwrap_or(Path::new(""));
        for part in rest.components() {
            match part {
                Component::ParentDir => {
                    real.pop();
                }
                Component::Normal(name) => real.push(name),
                _ => {}
            }
        }
        return real;
    }
    path.to_path_buf()
}

/// An I/O error as words, without the path some libraries add to it.
fn io_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code).to_string(),
        None => e.kind().to_string(),
    }
}

/// The folder a server serves, held open from start to stop.
#[derive(Debug)]
pub struct Root {
    beneath: Beneath,
    /// Its canonical path, for the log only.
    path: PathBuf,
}

/// An upload in progress: a temporary file in its target's folder. Dropping
/// it removes the temporary file; [`Upload::commit`] renames it over the
/// target.
pub struct Upload {
    /// The temporary file the body is written to.
    pub file: File,
    temp: TempFileAt,
    name: String,
}

impl Upload {
    /// Makes the upload visible under its name, atomically.
    pub fn commit(self) -> Result<(), FsError> {
        let Upload { file, temp, name } = self;
        drop(file);
        let file_name = name.rsplit('/').next().unwrap_or(&name);
        temp.persist(file_name).map_err(|e| FsError::Io(name, e))
    }

    /// The temporary file's name within the root, for the server's log.
    pub fn temp_name(&self) -> String {
        match self.name.rsplit_once('/') {
            Some((parent, _)) => format!("{parent}/{}", self.temp.name()),
            None => self.temp.name().to_string(),
        }
    }
}

/// What a [`Root::sweep`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Temporary files removed.
    pub files: u64,
    /// Their sizes, added up.
    pub bytes: u64,
}

impl Root {
    /// Opens `dir` as a root; it must be an existing folder.
    pub fn new(dir: &Path) -> io::Result<Root> {
        let path = dir.canonicalize().map_err(|e| {
            io::Error::new(e.kind(), format!("root folder `{}`: {e}", dir.display()))
        })?;
        if !path.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("root `{}` is not a folder", path.display()),
            ));
        }
        let beneath = Beneath::open_dir(&path).map_err(|e| {
            io::Error::new(e.kind(), format!("root folder `{}`: {e}", path.display()))
        })?;
        Ok(Root { beneath, path })
    }

    /// The folder `name` under this root as a root of its own (a token's
    /// sub-folder): it is opened as any name is, following links only while
    /// they stay inside, and everything through the new root is then
    /// confined to it (`..` and links cannot leave it).
    pub fn sub(&self, name: &str) -> Result<Root, FsError> {
        let fd = self.open(name, OFlags::PATH | OFlags::DIRECTORY)?;
        // where it really is, to tell whether an absolute link points inside
        let path = rfs::readlinkat(
            rustix::fs::CWD,
            format!("/proc/self/fd/{}", rustix::fd::AsRawFd::as_raw_fd(&fd)),
            Vec::new(),
        )
        .ok()
        .and_then(|target| target.into_string().ok())
        .map_or_else(|| self.path.join(name), PathBuf::from);
        Ok(Root {
            beneath: Beneath::from_fd(fd, path.clone()),
            path,
        })
    }

    /// The root's canonical path (for the server's log, never for replies).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens a regular file for reading, with its size at opening time.
    /// Opening never blocks: a FIFO (which would wait for a writer) or a
    /// device is refused as not a regular file.
    pub fn open_file(&self, name: &str) -> Result<(File, u64), FsError> {
        let flags = OFlags::RDONLY | OFlags::NONBLOCK;
        let file = File::from(self.open(name, flags)?);
        let meta = file.metadata().map_err(|e| fs_error(name, e))?;
        if !meta.is_file() {
            return Err(FsError::NotAFile(name.to_string()));
        }
        Ok((file, meta.len()))
    }

    /// Lists the root or one of its folders, sorted by name. Entries that
    /// cannot be requested (temporary files, names IOE/1 refuses, links
    /// leading outside the root or nowhere, sockets and the like) are left
    /// out.
    pub fn list(&self, dir: Option<&str>) -> Result<Vec<Entry>, FsError> {
        let folder = self.open_folder(dir)?;
        let listed = self.read_folder(&folder, dir)?;
        Ok(listed.into_iter().map(|l| l.entry).collect())
    }

    /// Sends every entry under the root or `dir` to `emit`, depth first: a
    /// folder's entry before its contents, each folder's entries sorted by
    /// name, the same filtering as [`list`](Self::list), links to folders
    /// listed but not descended into. Holds the entries of the folders on
    /// the way down to the current one, never the whole tree. Returns the
    /// number of entries sent.
    pub fn walk(
        &self,
        dir: Option<&str>,
        mut emit: impl FnMut(&Entry) -> io::Result<()>,
    ) -> Result<u64, WalkError> {
        // per level, the entries still to send, the next one last; no
        // folder stays open while its contents are walked (a deep tree
        // must not cost a descriptor per level)
        let mut levels = vec![self.entries_of(dir)?];
        let mut sent = 0;
        while let Some(level) = levels.last_mut() {
            let Some(listed) = level.pop() else {
                levels.pop();
                continue;
            };
            emit(&listed.entry).map_err(WalkError::Send)?;
            sent += 1;
            if listed.entry.kind == EntryKind::Dir && !listed.linked {
                match self.entries_of(Some(&listed.entry.name)) {
                    Ok(entries) => levels.push(entries),
                    // gone, or replaced by a file, since it was listed
                    Err(FsError::NotFound(_) | FsError::NotAFolder(_)) => {}
                    Err(e) => return Err(WalkError::Fs(e)),
                }
            }
        }
        Ok(sent)
    }

    /// The requestable entries of a folder, in reverse name order (for
    /// popping), read and closed.
    fn entries_of(&self, dir: Option<&str>) -> Result<Vec<Listed>, FsError> {
        let folder = self.open_folder(dir)?;
        let mut entries = self.read_folder(&folder, dir)?;
        entries.reverse();
        Ok(entries)
    }

    /// The entry of one file or folder (links followed while inside).
    pub fn stat(&self, name: &str) -> Result<Entry, FsError> {
        let handle = self.open(name, OFlags::PATH)?;
        let stat = rfs::fstat(&handle).map_err(|e| fs_error(name, e.into()))?;
        entry_of(name.to_string(), &stat).ok_or_else(|| FsError::NotAFileOrFolder(name.to_string()))
    }

    /// Sets the modification time of a file or folder (links followed while
    /// inside), in whole seconds since the epoch.
    pub fn set_mtime(&self, name: &str, mtime: u64) -> Result<(), FsError> {
        let handle = self.open(name, OFlags::RDONLY | OFlags::NONBLOCK)?;
        let stat = rfs::fstat(&handle).map_err(|e| fs_error(name, e.into()))?;
        if entry_of(name.to_string(), &stat).is_none() {
            return Err(FsError::NotAFileOrFolder(name.to_string()));
        }
        let times = rfs::Timestamps {
            last_access: rfs::Timespec {
                tv_sec: 0,
                tv_nsec: rfs::UTIME_OMIT,
            },
            last_modification: rfs::Timespec {
                tv_sec: i64::try_from(mtime).unwrap_or(i64::MAX),
                tv_nsec: 0,
            },
        };
        rfs::futimens(&handle, &times).map_err(|e| fs_error(name, e.into()))
    }

    /// Makes the folder `name` and its missing parents; an existing folder
    /// is fine.
    pub fn make_folder(&self, name: &str) -> Result<(), FsError> {
        self.make_folders(name, name).map(drop)
    }

    /// Removes a file or an empty folder. A link is removed itself, never
    /// its target.
    pub fn delete(&self, name: &str) -> Result<(), FsError> {
        let (parent, file_name) = split_name(name);
        let folder = self
            .beneath
            .open(parent, OFlags::PATH | OFlags::DIRECTORY)
            .map_err(|e| fs_error(name, e))?;
        let stat = rfs::statat(&folder, file_name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| fs_error(name, e.into()))?;
        let is_dir = FileType::from_raw_mode(stat.st_mode) == FileType::Directory;
        let flags = if is_dir {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        rfs::unlinkat(&folder, file_name, flags).map_err(|e| match e {
            Errno::NOTEMPTY | Errno::EXIST => FsError::NotEmpty(name.to_string()),
            e => fs_error(name, e.into()),
        })
    }

    /// Opens the root (`None`) or a folder for reading its entries.
    fn open_folder(&self, dir: Option<&str>) -> Result<OwnedFd, FsError> {
        let label = dir.unwrap_or(".");
        self.open(dir.unwrap_or(""), OFlags::RDONLY | OFlags::DIRECTORY)
            .map_err(|e| match e {
                FsError::NotFound(_) if self.is_non_folder(label) => {
                    FsError::NotAFolder(label.to_string())
                }
                e => e,
            })
    }

    /// The requestable entries of an open folder (`dir` its name, `None`
    /// for the root), sorted by name.
    fn read_folder(&self, folder: &OwnedFd, dir: Option<&str>) -> Result<Vec<Listed>, FsError> {
        let label = dir.unwrap_or(".");
        let prefix = dir.map_or_else(String::new, |d| format!("{d}/"));
        let mut reader = Dir::read_from(folder).map_err(|e| fs_error(label, e.into()))?;
        let mut entries = Vec::new();
        while let Some(item) = reader.read() {
            let item = item.map_err(|e| fs_error(label, e.into()))?;
            let Ok(file_name) = item.file_name().to_str() else {
                continue;
            };
            if file_name == "." || file_name == ".." {
                continue;
            }
            let name = format!("{prefix}{file_name}");
            if validate_name(&name).is_err() {
                continue;
            }
            if let Some(listed) = self.entry(folder.as_fd(), file_name, name) {
                entries.push(listed);
            }
        }
        entries.sort_unstable_by(|a, b| a.entry.name.cmp(&b.entry.name));
        Ok(entries)
    }

    /// The entry for `file_name` in folder `at`, if it can be requested: a
    /// link is listed as what it points to, when that is inside the root.
    fn entry(&self, at: BorrowedFd<'_>, file_name: &str, name: String) -> Option<Listed> {
        let mut stat = rfs::statat(at, file_name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
        let linked = FileType::from_raw_mode(stat.st_mode) == FileType::Symlink;
        if linked {
            let target = self.beneath.open(&name, OFlags::PATH).ok()?;
            stat = rfs::fstat(&target).ok()?;
        }
        Some(Listed {
            entry: entry_of(name, &stat)?,
            linked,
        })
    }

    /// Starts an upload of `name`: checks where it leads, creates missing
    /// parent folders and a temporary file in the target's folder.
    pub fn create_upload(&self, name: &str) -> Result<Upload, FsError> {
        let (parent, file_name) = split_name(name);
        let folder = self.make_folders(name, parent)?;
        self.check_upload_target(name, &folder, file_name)?;
        let (temp, file) = TempFileAt::create(folder).map_err(|e| fs_error(name, e))?;
        Ok(Upload {
            file,
            temp,
            name: name.to_string(),
        })
    }

    /// The folder `parent` (on the way to `name`), made with its missing
    /// parents if it does not exist. Existing parts are checked outermost first, so a
    /// refusal names the part that is wrong; each missing folder is made
    /// relative to the handle of the one above it.
    fn make_folders(&self, name: &str, parent: &str) -> Result<OwnedFd, FsError> {
        let flags = OFlags::PATH | OFlags::DIRECTORY;
        match self.beneath.open(parent, flags) {
            Ok(folder) => return Ok(folder),
            Err(e) if is_outside(&e) => return Err(FsError::Outside(name.to_string())),
            Err(_) => {}
        }
        let mut folder = self
            .beneath
            .open("", flags)
            .map_err(|e| fs_error(name, e))?;
        let mut end = 0;
        for component in parent.split('/') {
            end += component.len();
            let shown = &parent[..end];
            end += 1;
            folder = match self.beneath.open(shown, flags) {
                Ok(next) => next,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    match rfs::mkdirat(&folder, component, Mode::from_raw_mode(0o777)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(FsError::Io(name.to_string(), e.into())),
                    }
                    self.beneath
                        .open(shown, flags)
                        .map_err(|e| self.folder_error(name, shown, e))?
                }
                Err(e) => return Err(self.folder_error(name, shown, e)),
            };
        }
        Ok(folder)
    }

    /// Why the folder `shown` on the way to `name` cannot be used.
    fn folder_error(&self, name: &str, shown: &str, e: io::Error) -> FsError {
        if is_outside(&e) {
            FsError::Outside(name.to_string())
        } else if is_loop(&e) {
            FsError::LinkLoop(shown.to_string())
        } else if e.kind() == io::ErrorKind::NotFound {
            // mkdir found something there that does not resolve: a link
            FsError::Dangling(shown.to_string())
        } else if e.kind() == io::ErrorKind::NotADirectory {
            FsError::NotAFolder(shown.to_string())
        } else {
            FsError::Io(name.to_string(), e)
        }
    }

    /// Refuses an upload onto a folder, or onto a link that leads outside,
    /// nowhere or to a folder. (A link to a file inside is replaced by the
    /// upload; its target is never written through.)
    fn check_upload_target(
        &self,
        name: &str,
        folder: &OwnedFd,
        file_name: &str,
    ) -> Result<(), FsError> {
        let stat = match rfs::statat(folder, file_name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            Err(Errno::NOENT) => return Ok(()),
            Err(e) => return Err(FsError::Io(name.to_string(), e.into())),
        };
        let target_type = match FileType::from_raw_mode(stat.st_mode) {
            FileType::Symlink => match self.beneath.open(name, OFlags::PATH) {
                Ok(target) => {
                    let stat = rfs::fstat(&target).map_err(|e| fs_error(name, e.into()))?;
                    FileType::from_raw_mode(stat.st_mode)
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(FsError::Dangling(name.to_string()));
                }
                Err(e) => return Err(fs_error(name, e)),
            },
            other => other,
        };
        if target_type == FileType::Directory {
            return Err(FsError::IsAFolder(name.to_string()));
        }
        Ok(())
    }

    /// Opens `name` (empty: the root) with `flags`, confined to the root.
    fn open(&self, name: &str, flags: OFlags) -> Result<OwnedFd, FsError> {
        self.beneath
            .open(name, flags)
            .map_err(|e| fs_error(name, e))
    }

    /// Whether `name` exists and is something other than a folder.
    fn is_non_folder(&self, name: &str) -> bool {
        self.beneath
            .open(name, OFlags::PATH)
            .and_then(|fd| Ok(rfs::fstat(&fd)?))
            .is_ok_and(|stat| FileType::from_raw_mode(stat.st_mode) != FileType::Directory)
    }

    /// Removes the temporary files (`.ioe-tmp-…`) anywhere under the root
    /// that have not changed for `older_than`: no upload or download still
    /// owns one, since a transfer that stalls that long has been given up.
    /// Links are not followed; folders that cannot be read are passed over.
    /// Stops early once `stop` is set.
    pub fn sweep(&self, older_than: Duration, stop: &AtomicBool) -> Swept {
        let mut swept = Swept::default();
        let cutoff = SystemTime::now()
            .checked_sub(older_than)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let root = rfs::openat(
            self.beneath.fd(),
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        );
        if let Ok(root) = root {
            sweep_folder(root, cutoff, 0, stop, &mut swept);
        }
        swept
    }
}

/// A listed entry, and whether it was reached through a link.
struct Listed {
    entry: Entry,
    linked: bool,
}

/// Why a [`Root::walk`] stopped.
#[derive(Debug)]
pub enum WalkError {
    /// The file system failed (the client is told, the session goes on).
    Fs(FsError),
    /// Sending an entry failed (the connection is gone).
    Send(io::Error),
}

impl From<FsError> for WalkError {
    fn from(e: FsError) -> WalkError {
        WalkError::Fs(e)
    }
}

/// The entry line for `name` with metadata `stat`, if it is a regular file
/// or a folder.
fn entry_of(name: String, stat: &Stat) -> Option<Entry> {
    let kind = match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => EntryKind::File,
        FileType::Directory => EntryKind::Dir,
        _ => return None,
    };
    let size = match kind {
        EntryKind::File => u64::try_from(stat.st_size).unwrap_or(0),
        EntryKind::Dir => 0,
    };
    Some(Entry {
        kind,
        size,
        mtime: u64::try_from(stat.st_mtime).unwrap_or(0),
        name,
    })
}

/// `a/b/c` → (`a/b`, `c`); `c` → (``, `c`).
fn split_name(name: &str) -> (&str, &str) {
    name.rsplit_once('/').unwrap_or(("", name))
}

/// Deepest folder a sweep goes into (a name has at most 512 components).
const MAX_SWEEP_DEPTH: usize = 512;

/// Sweeps one folder (open for reading) and, depth first, those below it.
fn sweep_folder(folder: OwnedFd, cutoff: u64, depth: usize, stop: &AtomicBool, swept: &mut Swept) {
    if stop.load(Ordering::Relaxed) {
        return;
    }
    let Ok(mut reader) = Dir::new(folder) else {
        return;
    };
    let mut subfolders = Vec::new();
    while let Some(Ok(item)) = reader.read() {
        let name = item.file_name().to_owned();
        let bytes = name.to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        let Ok(at) = reader.fd() else { return };
        let Ok(stat) = rfs::statat(at, &name, AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        let file_type = FileType::from_raw_mode(stat.st_mode);
        if file_type == FileType::Directory {
            subfolders.push(name);
            continue;
        }
        let stale_temp = file_type == FileType::RegularFile
            && bytes.starts_with(TEMP_PREFIX.as_bytes())
            && is_stale(&stat, cutoff);
        if stale_temp && rfs::unlinkat(at, &name, AtFlags::empty()).is_ok() {
            swept.files += 1;
            swept.bytes += u64::try_from(stat.st_size).unwrap_or(0);
        }
    }
    if depth >= MAX_SWEEP_DEPTH {
        return;
    }
    let Ok(at) = reader.fd() else { return };
    for name in subfolders {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        if let Ok(sub) = rfs::openat(at.as_fd(), &name, flags, Mode::empty()) {
            sweep_folder(sub, cutoff, depth + 1, stop, swept);
        }
    }
}

/// Whether a file last changed before `cutoff` (seconds since the epoch).
fn is_stale(stat: &Stat, cutoff: u64) -> bool {
    u64::try_from(stat.st_mtime).is_ok_and(|mtime| mtime < cutoff)
}

fn fs_error(name: &str, e: io::Error) -> FsError {
    if is_outside(&e) {
        return FsError::Outside(name.to_string());
    }
    if is_loop(&e) {
        return FsError::LinkLoop(name.to_string());
    }
    match e.kind() {
        // `a/b` where `a` is a file: there is no `a/b` either
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => {
            FsError::NotFound(name.to_string())
        }
        _ => FsError::Io(name.to_string(), e),
    }
}
