//! The local half of the script API, kept to what a batch job plainly
//! needs: `walk`, `exists`, `file_size`, `file_info`, `file_hash`,
//! `mkdir`, `remove`, `read_text`, `write_text`, `temp_dir`, `env`, and
//! `sleep` for retry back-offs.

use super::api::to_int;
use super::report::BAD_ARGUMENT;
use super::report::throw;
use super::{Registry, State};
use crate::cancel::CancelToken;
use crate::digest::{Algorithm, hash_reader};
use crate::error::ErrorKind;
use crate::protocol::is_reserved;
use crate::session::file_in_the_way;
use rhai::{Array, Dynamic, EvalAltResult, INT, Map};
use std::cell::RefCell;
use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

type Fallible<T> = Result<T, Box<EvalAltResult>>;

/// Registers the local helpers.
pub(crate) fn register(reg: &mut Registry<'_>, state: &Rc<RefCell<State>>) {
    reg.func("walk", walk);
    reg.func("exists", |path: &str| Path::new(path).exists());
    reg.func("file_size", file_size);
    reg.func("file_info", file_info);
    reg.func("file_hash", |path: &str| {
        file_hash(path, Algorithm::Blake3.name())
    });
    reg.func("file_hash", file_hash);
    reg.func("mkdir", mkdir);
    reg.func("remove", remove);
    reg.func("read_text", read_text);
    reg.func("write_text", write_text);
    let st = Rc::clone(state);
    reg.func("temp_dir", move || temp_dir(&st));
    reg.func("env", |name: &str| {
        std::env::var(name).map_or(Dynamic::UNIT, Dynamic::from)
    });
    let cancel = state.borrow().cancel.clone();
    reg.func("sleep", move |seconds: rhai::FLOAT| sleep(seconds, &cancel));
    let cancel = state.borrow().cancel.clone();
    reg.func("sleep", move |seconds: INT| {
        sleep(seconds as rhai::FLOAT, &cancel)
    });
}

/// Waits `seconds` (a retry's back-off); Ctrl-C or SIGTERM ends the wait
/// and the script.
fn sleep(seconds: rhai::FLOAT, cancel: &CancelToken) -> Fallible<()> {
    let length = Duration::try_from_secs_f64(seconds).map_err(|_| {
        throw(
            BAD_ARGUMENT,
            format!("sleep: {seconds} is not a number of seconds (0 or more)"),
        )
    })?;
    let end = Instant::now() + length;
    loop {
        if cancel.is_cancelled() {
            return Err(EvalAltResult::ErrorTerminated(
                Dynamic::from(cancel.cause()),
                rhai::Position::NONE,
            )
            .into());
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// A Rhai error for a failed local operation: `local_missing` when the path
/// does not exist, `local_io` otherwise.
fn local_error(op: &str, path: &str, e: &io::Error) -> Box<EvalAltResult> {
    if e.kind() == io::ErrorKind::NotFound {
        throw(
            ErrorKind::LocalMissing.as_str(),
            format!("{op}: `{path}` does not exist"),
        )
    } else {
        throw(ErrorKind::LocalIo.as_str(), format!("{op}: `{path}`: {e}"))
    }
}

/// Most files `walk` returns; a bigger tree fails rather than fill memory
/// with paths (`docs/scripting.md`, Limits).
const WALK_MAX_FILES: usize = 10_000_000;

/// Longest file `read_text` reads: a bigger one fails before it is read.
const READ_TEXT_MAX_BYTES: usize = 64 * 1024 * 1024;

/// Every file under `dir` (following symbolic links), sorted, each path
/// beginning with `dir` as given. What it cannot return (a link to
/// nothing, a link loop, a name that is not UTF-8, a folder it cannot
/// read) is skipped with one line on stderr each, so one bad entry does
/// not stop a backup of everything else.
fn walk(dir: &str) -> Fallible<Array> {
    let op = format!("walk `{dir}`");
    let meta = fs::metadata(dir).map_err(|e| local_error(&op, dir, &e))?;
    if !meta.is_dir() {
        return Err(throw(
            ErrorKind::LocalIo.as_str(),
            format!("{op}: `{dir}` is not a folder"),
        ));
    }
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    let mut entries = walkdir::WalkDir::new(dir).follow_links(true).into_iter();
    while let Some(entry) = entries.next() {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                skipped.push(why_unwalkable(&e));
                continue;
            }
        };
        let partial_download = is_reserved(entry.file_name().as_encoded_bytes());
        let is_folder = entry.file_type().is_dir();
        if partial_download || !(is_folder || entry.file_type().is_file()) {
            continue;
        }
        let Some(path) = entry.path().to_str() else {
            let what = if is_folder {
                // everything under it has the same name in its path
                entries.skip_current_dir();
                "its name is not valid UTF-8, so scripts cannot name it or anything in it"
            } else {
                "its name is not valid UTF-8, so scripts cannot name it"
            };
            skipped.push((escaped(entry.path()), what.to_string()));
            continue;
        };
        if is_folder {
            continue;
        }
        if files.len() == WALK_MAX_FILES {
            return Err(throw(
                ErrorKind::LocalIo.as_str(),
                format!(
                    "{op}: more than {WALK_MAX_FILES} files, the most a walk returns; \
                     walk its folders one at a time"
                ),
            ));
        }
        files.push(path.to_string());
    }
    files.sort();
    skipped.sort();
    let mut stderr = io::stderr().lock();
    for (path, why) in skipped {
        // a closed stderr must not stop the walk's caller
        let _ = writeln!(stderr, "ioe: walk: skipped `{path}`: {why}");
    }
    Ok(files.into_iter().map(Dynamic::from).collect())
}

/// The path (escaped) and the reason of an entry `walk` skips.
fn why_unwalkable(e: &walkdir::Error) -> (String, String) {
    let path = e.path().map(escaped).unwrap_or_default();
    if let Some(ancestor) = e.loop_ancestor() {
        let why = format!(
            "a symbolic link to `{}`, a folder it is in (a loop)",
            escaped(ancestor)
        );
        return (path, why);
    }
    let dangling = e.io_error().map(io::Error::kind) == Some(io::ErrorKind::NotFound);
    let target = e.path().and_then(|p| fs::read_link(p).ok());
    let why = match (dangling, target) {
        (true, Some(target)) => format!(
            "a symbolic link to `{}`, which does not exist",
            escaped(&target)
        ),
        _ => match e.io_error() {
            Some(io) => format!("cannot read it: {io}"),
            None => e.to_string(),
        },
    };
    (path, why)
}

/// `path` as text, with each byte that is not UTF-8 written `\xNN`.
fn escaped(path: &Path) -> String {
    let mut text = String::new();
    for chunk in path.as_os_str().as_encoded_bytes().utf8_chunks() {
        text.push_str(chunk.valid());
        for byte in chunk.invalid() {
            text.push_str(&format!("\\x{byte:02X}"));
        }
    }
    text
}

fn file_size(path: &str) -> Fallible<INT> {
    let op = "file_size";
    let meta = fs::metadata(path).map_err(|e| local_error(op, path, &e))?;
    if meta.is_dir() {
        return Err(throw(
            ErrorKind::LocalIo.as_str(),
            format!("{op}: `{path}` is a folder"),
        ));
    }
    Ok(to_int(meta.len()))
}

/// `#{size, mtime, kind}` of a file or folder (links followed): `kind`
/// `"f"` or `"d"` and `size` 0 for a folder, as in a listing; `mtime` in
/// whole seconds since 1970.
fn file_info(path: &str) -> Fallible<Map> {
    let op = "file_info";
    let meta = fs::metadata(path).map_err(|e| local_error(op, path, &e))?;
    let kind = if meta.is_dir() {
        "d"
    } else if meta.is_file() {
        "f"
    } else {
        return Err(throw(
            ErrorKind::LocalIo.as_str(),
            format!("{op}: `{path}` is neither a file nor a folder"),
        ));
    };
    let size = if meta.is_dir() { 0 } else { to_int(meta.len()) };
    let mtime = std::os::unix::fs::MetadataExt::mtime(&meta);
    let mut map = Map::new();
    map.insert("size".into(), size.into());
    map.insert("mtime".into(), mtime.into());
    map.insert("kind".into(), kind.into());
    Ok(map)
}

/// A file's digest with `algorithm` (`blake3` or `sha256`, the remote
/// `hash`'s), in lower-case hex.
fn file_hash(path: &str, algorithm: &str) -> Fallible<String> {
    let op = "file_hash";
    let Some(algorithm) = Algorithm::from_name(algorithm) else {
        return Err(throw(
            BAD_ARGUMENT,
            format!("{op}: unknown hash algorithm `{algorithm}`; use \"blake3\" or \"sha256\""),
        ));
    };
    // looked at before opening: opening a FIFO would wait for a writer
    let meta = fs::metadata(path).map_err(|e| local_error(op, path, &e))?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a folder"
        } else {
            "not a regular file"
        };
        return Err(throw(
            ErrorKind::LocalIo.as_str(),
            format!("{op}: `{path}` is {what}"),
        ));
    }
    let file = fs::File::open(path).map_err(|e| local_error(op, path, &e))?;
    hash_reader(algorithm, file).map_err(|e| local_error(op, path, &e))
}

/// Creates a folder and its missing parents; an existing folder is fine.
fn mkdir(path: &str) -> Fallible<()> {
    create_folders("mkdir", Path::new(path), path, "made")
}

/// Makes `dir` and its missing parents for `op`, on the way to `target`
/// (`dir` itself or a file in it). When a file stands where a folder must
/// be, says which one, and that `target` cannot be `made_how`.
fn create_folders(op: &str, dir: &Path, target: &str, made_how: &str) -> Fallible<()> {
    fs::create_dir_all(dir).map_err(|e| match file_in_the_way(dir) {
        Some(file) if file == Path::new(target) => throw(
            ErrorKind::LocalIo.as_str(),
            format!("{op}: `{target}` is a file, not a folder"),
        ),
        Some(file) => throw(
            ErrorKind::LocalIo.as_str(),
            format!(
                "{op}: `{}` is a file, not a folder, so `{target}` cannot be {made_how}",
                file.display()
            ),
        ),
        None => local_error(op, target, &e),
    })
}

/// Removes a file or an empty folder (never a whole tree, by design).
fn remove(path: &str) -> Fallible<()> {
    let op = "remove";
    let meta = fs::symlink_metadata(path).map_err(|e| local_error(op, path, &e))?;
    if !meta.is_dir() {
        return fs::remove_file(path).map_err(|e| local_error(op, path, &e));
    }
    fs::remove_dir(path).map_err(|e| {
        if e.kind() == io::ErrorKind::DirectoryNotEmpty {
            throw(
                ErrorKind::LocalIo.as_str(),
                format!("{op}: `{path}` is a folder that is not empty; remove its files first"),
            )
        } else {
            local_error(op, path, &e)
        }
    })
}

/// A UTF-8 text file's content; a file longer than a script string may be
/// fails with `local_io` before it is read whole.
fn read_text(path: &str) -> Fallible<String> {
    let op = "read_text";
    let limit = READ_TEXT_MAX_BYTES;
    let file = fs::File::open(path).map_err(|e| local_error(op, path, &e))?;
    let mut bytes = Vec::new();
    // one byte more than the limit tells a file that is too big
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| local_error(op, path, &e))?;
    if bytes.len() > limit {
        return Err(throw(
            ErrorKind::LocalIo.as_str(),
            format!(
                "{op}: `{path}` is over {} MiB, the longest string a script holds; \
                 move big files with read and write",
                limit / (1024 * 1024)
            ),
        ));
    }
    String::from_utf8(bytes).map_err(|_| {
        throw(
            ErrorKind::LocalIo.as_str(),
            format!("{op}: `{path}` is not UTF-8 text"),
        )
    })
}

/// Writes `text` to `path` (replacing it), creating missing parent folders.
fn write_text(path: &str, text: &str) -> Fallible<INT> {
    let op = "write_text";
    if let Some(parent) = Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        create_folders(op, parent, path, "written")?;
    }
    fs::write(path, text).map_err(|e| local_error(op, path, &e))?;
    Ok(to_int(text.len() as u64))
}

/// A new empty folder under the system's temporary folder, removed with
/// everything in it when the script ends.
fn temp_dir(state: &Rc<RefCell<State>>) -> Fallible<String> {
    let dir = tempfile::Builder::new()
        .prefix("ioe-script-")
        .tempdir()
        .map_err(|e| throw(ErrorKind::LocalIo.as_str(), format!("temp_dir: {e}")))?;
    let path = dir.path().to_str().map(str::to_string).ok_or_else(|| {
        throw(
            ErrorKind::LocalIo.as_str(),
            "temp_dir: the temporary folder's path is not valid UTF-8",
        )
    })?;
    state.borrow_mut().temp_dirs.push(dir);
    Ok(path)
}
