//! The server's side of the file system: names → paths confined to one root
//! folder (symbolic links followed and checked), listings, and uploads that
//! become visible only once complete (temporary file + rename).

use crate::partial;
use crate::protocol::{Entry, EntryKind, NOT_FOUND, validate_name};
use std::fmt;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;
use tempfile::NamedTempFile;

/// Why a name cannot be served; `Display` is the text after `ERROR: `.
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
            FsError::Io(name, e) => write!(f, "`{name}`: {e}"),
        }
    }
}

/// The folder a server serves, canonicalised once at start.
#[derive(Debug, Clone)]
pub struct Root {
    dir: PathBuf,
}

/// An upload in progress: a temporary file beside its target. Dropping it
/// removes the temporary file; [`Upload::commit`] renames it over the target.
pub struct Upload {
    /// The temporary file the body is written to.
    pub file: NamedTempFile,
    target: PathBuf,
    name: String,
}

impl Upload {
    /// Makes the upload visible under its name, atomically.
    pub fn commit(self) -> Result<(), FsError> {
        let name = self.name;
        self.file
            .persist(&self.target)
            .map(drop)
            .map_err(|e| FsError::Io(name, e.error))
    }
}

impl Root {
    /// Opens `dir` as a root; it must be an existing folder.
    pub fn new(dir: &Path) -> io::Result<Root> {
        let dir = dir.canonicalize().map_err(|e| {
            io::Error::new(e.kind(), format!("root folder `{}`: {e}", dir.display()))
        })?;
        if !dir.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("root `{}` is not a folder", dir.display()),
            ));
        }
        Ok(Root { dir })
    }

    /// Opens a regular file for reading, with its size at opening time.
    /// Opening never blocks: a FIFO (which would wait for a writer) or a
    /// device is refused as not a regular file.
    pub fn open_file(&self, name: &str) -> Result<(File, u64), FsError> {
        let path = self.resolve_existing(name)?;
        let file = File::options()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(&path)
            .map_err(|e| io_error(name, e))?;
        let meta = file.metadata().map_err(|e| io_error(name, e))?;
        if !meta.is_file() {
            return Err(FsError::NotAFile(name.to_string()));
        }
        Ok((file, meta.len()))
    }

    /// Lists the root or one of its folders, sorted by name. Entries that
    /// cannot be requested (temporary files, names IOE/1 refuses, links
    /// leading outside the root, sockets and the like) are left out.
    pub fn list(&self, dir: Option<&str>) -> Result<Vec<Entry>, FsError> {
        let (path, prefix) = match dir {
            Some(name) => (self.resolve_existing(name)?, format!("{name}/")),
            None => (self.dir.clone(), String::new()),
        };
        let label = dir.unwrap_or(".");
        let reader = fs::read_dir(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotADirectory => FsError::NotAFolder(label.to_string()),
            _ => io_error(label, e),
        })?;
        let mut entries = Vec::new();
        for item in reader {
            let item = item.map_err(|e| io_error(label, e))?;
            let Ok(file_name) = item.file_name().into_string() else {
                continue;
            };
            let name = format!("{prefix}{file_name}");
            if validate_name(&name).is_err() {
                continue;
            }
            let Ok(file_type) = item.file_type() else {
                continue;
            };
            if file_type.is_symlink() && !self.is_inside(&item.path()) {
                continue;
            }
            let Ok(meta) = fs::metadata(item.path()) else {
                continue;
            };
            let kind = if meta.is_file() {
                EntryKind::File
            } else if meta.is_dir() {
                EntryKind::Dir
            } else {
                continue;
            };
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            let size = if kind == EntryKind::File {
                meta.len()
            } else {
                0
            };
            entries.push(Entry {
                kind,
                size,
                mtime,
                name,
            });
        }
        entries.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Starts an upload of `name`: checks where it leads, creates missing
    /// parent folders and a temporary file beside the target.
    pub fn create_upload(&self, name: &str) -> Result<Upload, FsError> {
        self.check_upload_parents(name)?;
        let target = self.dir.join(name);
        match fs::symlink_metadata(&target) {
            Ok(meta) if meta.file_type().is_symlink() => match follow(&target, name)? {
                None => return Err(FsError::Dangling(name.to_string())),
                Some(real) if !real.starts_with(&self.dir) => {
                    return Err(FsError::Outside(name.to_string()));
                }
                // a link to a folder is listed as a folder
                Some(real) if real.is_dir() => return Err(FsError::IsAFolder(name.to_string())),
                Some(_) => {}
            },
            Ok(meta) if meta.is_dir() => return Err(FsError::IsAFolder(name.to_string())),
            _ => {}
        }
        let parent = target.parent().unwrap_or(&self.dir);
        fs::create_dir_all(parent).map_err(|e| FsError::Io(name.to_string(), e))?;
        // check again: a link could have appeared while folders were made
        let parent = parent.canonicalize().map_err(|e| io_error(name, e))?;
        if !parent.starts_with(&self.dir) {
            return Err(FsError::Outside(name.to_string()));
        }
        let file = partial::create_in(&parent).map_err(|e| io_error(name, e))?;
        let file_name = target
            .file_name()
            .expect("validated names end in a component");
        Ok(Upload {
            file,
            target: parent.join(file_name),
            name: name.to_string(),
        })
    }

    /// Checks the folders above `name` that exist already, outermost first:
    /// each must be a folder (links followed) inside the root. The first
    /// missing one ends the check; it and those below it will be made.
    fn check_upload_parents(&self, name: &str) -> Result<(), FsError> {
        let mut path = self.dir.clone();
        let mut shown = String::new();
        let mut components = name.split('/');
        components.next_back();
        for component in components {
            path.push(component);
            if !shown.is_empty() {
                shown.push('/');
            }
            shown.push_str(component);
            let meta = match fs::symlink_metadata(&path) {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(FsError::Io(name.to_string(), e)),
            };
            let is_dir = if meta.file_type().is_symlink() {
                match follow(&path, name)? {
                    None => return Err(FsError::Dangling(shown)),
                    Some(real) if !real.starts_with(&self.dir) => {
                        return Err(FsError::Outside(name.to_string()));
                    }
                    Some(real) => real.is_dir(),
                }
            } else {
                meta.is_dir()
            };
            if !is_dir {
                return Err(FsError::NotAFolder(shown));
            }
        }
        Ok(())
    }

    /// The canonical path of an existing name, if it stays inside the root.
    fn resolve_existing(&self, name: &str) -> Result<PathBuf, FsError> {
        let path = self
            .dir
            .join(name)
            .canonicalize()
            .map_err(|e| io_error(name, e))?;
        if path.starts_with(&self.dir) {
            Ok(path)
        } else {
            Err(FsError::Outside(name.to_string()))
        }
    }

    /// Whether `path`, with every link followed, exists inside the root.
    fn is_inside(&self, path: &Path) -> bool {
        path.canonicalize().is_ok_and(|p| p.starts_with(&self.dir))
    }
}

/// Where the link at `path` leads, all links followed; `None` when its
/// target does not exist.
fn follow(path: &Path, name: &str) -> Result<Option<PathBuf>, FsError> {
    match path.canonicalize() {
        Ok(real) => Ok(Some(real)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(FsError::Io(name.to_string(), e)),
    }
}

fn io_error(name: &str, e: io::Error) -> FsError {
    match e.kind() {
        // `a/b` where `a` is a file: there is no `a/b` either
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => {
            FsError::NotFound(name.to_string())
        }
        _ => FsError::Io(name.to_string(), e),
    }
}
