//! Whole trees in one call: [`sync`] with [`Direction::Push`] (local →
//! remote) or [`Direction::Pull`] (remote → local) makes the destination
//! folder hold what the source folder holds.
//!
//! - `tree`: the two listings, one local walk and one remote `WALK`,
//!   filtered by include and exclude patterns;
//! - `plan`: a pure diff of the listings into steps (a dry run's answer);
//! - `worker`: the copies, on parallel sessions, each keeping many
//!   requests in flight, with retries of what failed for a passing reason;
//! - `counters`: what the copies have done so far, for a progress display;
//! - this module: the order of it all — folders first, then copies, then
//!   deletes, and those only when nothing failed and the safety limits hold.

mod counters;
mod plan;
mod tree;
mod worker;

pub use counters::{Counters, Snapshot};
pub use plan::{Action, Step};

use crate::digest;
use crate::error::{Error, ErrorKind, Result};
use crate::events::Events;
use crate::protocol::{EntryKind, Extension};
use crate::session::Session;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tree::{Filter, Tree};

/// Which way the files go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Local folder → remote folder.
    Push,
    /// Remote folder → local folder.
    Pull,
}

impl Direction {
    /// `push` or `pull`, as scripts, messages and events name it.
    pub fn verb(self) -> &'static str {
        match self {
            Direction::Push => "push",
            Direction::Pull => "pull",
        }
    }
}

/// What counts as unchanged (the file is then not copied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// The same size and modification time (the default).
    SizeMtime,
    /// The same size and digest (reads both files).
    Digest,
    /// The same size.
    Size,
    /// Nothing: every file is copied.
    Always,
}

/// What to do with local symbolic links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Leave them out, and say so in the report (the default).
    Skip,
    /// Copy what they point to.
    Follow,
}

/// How a sync goes about it.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// What counts as unchanged.
    pub compare: Compare,
    /// Also remove what the destination has and the source does not.
    pub delete: bool,
    /// Delete even when the source folder is empty.
    pub allow_empty_source: bool,
    /// Delete nothing if more than this many would go.
    pub max_delete: Option<u64>,
    /// Only files matching one of these take part (gitignore-like globs).
    pub include: Vec<String>,
    /// Files and folders matching one of these take no part.
    pub exclude: Vec<String>,
    /// Local symbolic links.
    pub links: Links,
    /// Connections used at once.
    pub parallel: usize,
    /// Compare every copied file's digest with the source's.
    pub verify: bool,
    /// How often a file that failed for a passing reason (lost connection,
    /// timeout, busy server) is tried again.
    pub retries: u32,
    /// The first wait before a retry; each next one doubles, plus up to
    /// half again at random.
    pub retry_delay: Duration,
    /// Do nothing; return the plan.
    pub dry_run: bool,
    /// Counters the copies update as they go, for a progress display.
    pub progress: Option<Arc<Counters>>,
    /// Where each copied file and each retry is written (`--events`).
    pub events: Option<Arc<Events>>,
}

impl Default for SyncOptions {
    fn default() -> SyncOptions {
        SyncOptions {
            compare: Compare::SizeMtime,
            delete: false,
            allow_empty_source: false,
            max_delete: None,
            include: Vec::new(),
            exclude: Vec::new(),
            links: Links::Skip,
            parallel: DEFAULT_PARALLEL,
            verify: false,
            retries: 3,
            retry_delay: Duration::from_millis(500),
            dry_run: false,
            progress: None,
            events: None,
        }
    }
}

/// Connections a sync uses by default (see docs/performance.md).
pub const DEFAULT_PARALLEL: usize = 4;
/// Most connections a sync may use.
pub const MAX_PARALLEL: usize = 32;

/// Something left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The name, relative to the folders.
    pub name: String,
    /// Why.
    pub reason: String,
}

impl Skipped {
    fn new(name: impl Into<String>, reason: impl Into<String>) -> Skipped {
        Skipped {
            name: name.into(),
            reason: reason.into(),
        }
    }
}

/// A file or folder that could not be handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// The name, relative to the folders.
    pub name: String,
    /// What went wrong, as scripts see it.
    pub kind: ErrorKind,
    /// The message.
    pub message: String,
}

/// One line of a dry run's plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// `copy`, `mkdir` or `delete`.
    pub action: &'static str,
    /// The name, relative to the folders.
    pub name: String,
    /// The bytes a copy moves (0 otherwise).
    pub size: u64,
    /// Why.
    pub reason: String,
}

/// What a sync did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default)]
pub struct SyncReport {
    /// Files copied, with their sizes.
    pub copied: Vec<(String, u64)>,
    /// Folders made on the destination.
    pub made: Vec<String>,
    /// Files left as they were (unchanged), and entries left out.
    pub skipped: Vec<Skipped>,
    /// Names removed from the destination.
    pub deleted: Vec<String>,
    /// What failed; a failed file never stops the others.
    pub failed: Vec<Failed>,
    /// Why the deletes were held back, if they were.
    pub deletes_held: Option<String>,
    /// Bytes copied.
    pub bytes: u64,
    /// Files tried again.
    pub retries: u64,
    /// How long it took.
    pub seconds: f64,
    /// With `dry_run`: the plan, in the order a real run carries it out.
    pub plan: Vec<Planned>,
    /// Symbolic links found on the local side (kept out of a pull).
    local_links: Vec<String>,
}

/// The two folders of a sync.
struct Ends<'a> {
    local: &'a Path,
    /// The remote folder's name; empty for the root.
    remote: &'a str,
}

impl Ends<'_> {
    fn remote_name(&self, name: &str) -> String {
        if self.remote.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.remote)
        }
    }

    fn local_path(&self, name: &str) -> PathBuf {
        self.local.join(name)
    }
}

/// Makes the destination folder match the source folder: `local` and
/// `remote` (a folder name on the server; `""` or `.` for its root) in
/// `direction`, over `session` and up to `options.parallel - 1` more
/// connections to the same server. Fails as a whole only when it cannot run
/// (a folder missing, a listing failed, Ctrl-C); a file that fails is in
/// the report's `failed`, and the others go on.
pub fn sync(
    session: &mut Session,
    direction: Direction,
    local: &Path,
    remote: &str,
    options: &SyncOptions,
) -> Result<SyncReport> {
    let started = Instant::now();
    let remote = remote.trim_end_matches('/');
    let remote = if remote == "." { "" } else { remote };
    let op = match direction {
        Direction::Push => format!("push `{}` to `{remote}`", local.display()),
        Direction::Pull => format!("pull `{remote}` to `{}`", local.display()),
    };
    let filter = Filter::new(&options.include, &options.exclude)
        .map_err(|e| Error::new(ErrorKind::Refused, &op, e))?;
    let mut report = SyncReport::default();
    let (source, dest) = listings(
        session,
        direction,
        local,
        remote,
        &op,
        &filter,
        options,
        &mut report,
    )?;
    let ends = Ends { local, remote };
    let mut steps = plan::plan(&source, &dest, options);
    let (remote_tree, local_tree) = match direction {
        Direction::Push => (&dest, &source),
        Direction::Pull => (&source, &dest),
    };
    let linked = linked_remote_folders(session, &ends, &op, remote_tree, local_tree)?;
    keep_out(&mut steps, &linked, || {
        Action::Skip("under a link to a folder on the server, which a sync does not enter")
    });
    if direction == Direction::Pull {
        keep_out(&mut steps, &report.local_links, || {
            Action::Conflict("a symbolic link on the local side has this name or is on its way")
        });
    }
    let steps = resolve_checks(session, &ends, &op, steps)?;
    let deletes = steps
        .iter()
        .filter(|s| matches!(s.action, Action::Delete(_)))
        .count() as u64;
    let held = delete_hold(&source, deletes, options).or_else(|| failures_hold(&report, deletes));
    if options.dry_run {
        report.plan = planned(&steps, held.is_none());
        report.deletes_held = held;
        report.skipped.extend(skips(&steps));
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    }
    make_folders(session, direction, &ends, &op, &steps, &mut report)?;
    let jobs: Vec<worker::Job> = steps
        .iter()
        .filter_map(|step| match step.action {
            Action::Copy { size, mtime, .. } => Some(worker::Job::new(&step.name, size, mtime)),
            _ => None,
        })
        .collect();
    worker::copy_all(session, direction, &ends, &op, jobs, options, &mut report)?;
    report.skipped.extend(skips(&steps));
    for step in &steps {
        if let Action::Conflict(why) = step.action {
            report.failed.push(Failed {
                name: step.name.clone(),
                kind: ErrorKind::Refused,
                message: format!("{op}: `{}`: {why}; nothing was done with it", step.name),
            });
        }
    }
    let held = held.or_else(|| failures_hold(&report, deletes));
    match held {
        Some(why) => report.deletes_held = (deletes > 0).then_some(why),
        None => delete(session, direction, &ends, &op, &steps, &mut report)?,
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The source's and the destination's trees. A missing source folder is
/// an error; a missing destination is an empty one.
#[allow(clippy::too_many_arguments)]
fn listings(
    session: &mut Session,
    direction: Direction,
    local: &Path,
    remote: &str,
    op: &str,
    filter: &Filter,
    options: &SyncOptions,
    report: &mut SyncReport,
) -> Result<(Tree, Tree)> {
    let local_exists = local.is_dir();
    if local.exists() && !local_exists {
        return Err(Error::new(
            ErrorKind::LocalIo,
            op,
            format!("`{}` is not a folder", local.display()),
        ));
    }
    // a destination's links are never followed: a pull writes nothing
    // through them
    let links = match direction {
        Direction::Push => options.links,
        Direction::Pull => Links::Skip,
    };
    let local_tree = |report: &mut SyncReport| {
        if !local_exists {
            return Tree::new();
        }
        let mut skipped = Vec::new();
        let mut unreadable = Vec::new();
        let tree = tree::local_tree(
            local,
            links,
            filter,
            &mut skipped,
            &mut report.local_links,
            &mut unreadable,
        );
        if direction == Direction::Push {
            report.skipped.extend(skipped);
        }
        // a hole in a listing is a failure: it holds the deletes back
        report
            .failed
            .extend(unreadable.into_iter().map(|hole| Failed {
                message: format!("{op}: local `{}`: {}", hole.name, hole.reason),
                name: hole.name,
                kind: ErrorKind::LocalIo,
            }));
        tree
    };
    match direction {
        Direction::Push => {
            if !local_exists {
                return Err(Error::new(
                    ErrorKind::LocalMissing,
                    op,
                    format!("local folder `{}` does not exist", local.display()),
                ));
            }
            let source = local_tree(report);
            let dest = tree::remote_tree(session, op, remote, filter)?.unwrap_or_default();
            Ok((source, dest))
        }
        Direction::Pull => {
            let Some(source) = tree::remote_tree(session, op, remote, filter)? else {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    op,
                    format!("remote folder `{remote}` does not exist"),
                ));
            };
            Ok((source, local_tree(report)))
        }
    }
}

/// The remote folders that are links to folders: `WALK` lists a link to
/// a folder but does not enter it, so such a folder looks empty. Only one
/// that looks empty while the local side has something in it is asked
/// (`LIST`, which follows the link): a sync must neither write through it
/// nor delete what it seems to lack.
fn linked_remote_folders(
    session: &mut Session,
    ends: &Ends<'_>,
    op: &str,
    remote: &Tree,
    local: &Tree,
) -> Result<Vec<String>> {
    let mut linked = Vec::new();
    for (name, meta) in remote {
        if meta.kind != EntryKind::Dir {
            continue;
        }
        let inside = format!("{name}/");
        let has = |tree: &Tree| {
            tree.range(inside.clone()..)
                .next()
                .is_some_and(|(n, _)| n.starts_with(&inside))
        };
        if has(remote) || !has(local) {
            continue;
        }
        let listed = session
            .list(Some(&ends.remote_name(name)))
            .map_err(|e| e.with_op(op))?;
        if !listed.is_empty() {
            linked.push(name.clone());
        }
    }
    Ok(linked)
}

/// Turns every step on a name in `fenced` or below one into `action()`.
fn keep_out(steps: &mut [Step], fenced: &[String], action: impl Fn() -> Action) {
    if fenced.is_empty() {
        return;
    }
    for step in steps {
        let inside = fenced.iter().any(|f| {
            step.name == *f
                || step
                    .name
                    .strip_prefix(f.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        });
        if inside {
            step.action = action();
        }
    }
}

/// Why the deletes may not happen, before anything ran: an empty source
/// (unless allowed), or more deletes than `max_delete`.
fn delete_hold(source: &Tree, deletes: u64, options: &SyncOptions) -> Option<String> {
    if deletes == 0 {
        return None;
    }
    if source.is_empty() && !options.allow_empty_source {
        return Some(format!(
            "the source folder is empty, so the {} on the destination were kept \
             (allow_empty_source: true deletes them)",
            plural(deletes, "entry")
        ));
    }
    match options.max_delete {
        Some(max) if deletes > max => Some(format!(
            "{} would be deleted, more than max_delete ({max}), so none was",
            plural(deletes, "entry")
        )),
        _ => None,
    }
}

/// Why the deletes may not happen after failures (a hole in a listing, a
/// file that could not be copied): nothing is deleted then.
fn failures_hold(report: &SyncReport, deletes: u64) -> Option<String> {
    (!report.failed.is_empty() && deletes > 0).then(|| {
        format!(
            "{} failed during the run, so nothing was deleted",
            plural(report.failed.len() as u64, "file")
        )
    })
}

/// `1 file`, `2 files`; `1 entry`, `2 entries`.
fn plural(n: u64, word: &str) -> String {
    match (n, word.strip_suffix('y')) {
        (1, _) => format!("1 {word}"),
        (_, Some(stem)) => format!("{n} {stem}ies"),
        (_, None) => format!("{n} {word}s"),
    }
}

/// Turns each `Check` (same size, `compare: "digest"`) into a copy or a
/// skip, comparing the local file's digest with the server's. The `HASH`
/// requests go out together.
fn resolve_checks(
    session: &mut Session,
    ends: &Ends<'_>,
    op: &str,
    mut steps: Vec<Step>,
) -> Result<Vec<Step>> {
    let checks: Vec<usize> = (0..steps.len())
        .filter(|&i| matches!(steps[i].action, Action::Check { .. }))
        .collect();
    if checks.is_empty() {
        return Ok(steps);
    }
    let algorithm = session.best_hash(op)?;
    let _guard = session.cancellable(op)?;
    for window in checks.chunks(worker::WINDOW) {
        for &i in window {
            let name = ends.remote_name(&steps[i].name);
            session.send_extension(
                op,
                Extension::Hash {
                    algorithm: algorithm.name().to_string(),
                    name,
                },
            )?;
        }
        for &i in window {
            let remote_digest = session.recv_digest(op, algorithm);
            let local = ends.local_path(&steps[i].name);
            let local_digest =
                std::fs::File::open(&local).and_then(|f| digest::hash_reader(algorithm, f));
            let Action::Check { size, mtime } = steps[i].action else {
                continue;
            };
            steps[i].action = match (remote_digest, local_digest) {
                (Ok(a), Ok(b)) if a == b => Action::Skip("same digest"),
                (Ok(_), Ok(_)) => Action::Copy {
                    size,
                    mtime,
                    reason: "digest differs",
                },
                // cannot tell: copy, which settles it
                (Err(e), _) if !session.is_connected() => return Err(e),
                _ => Action::Copy {
                    size,
                    mtime,
                    reason: "digest unknown",
                },
            };
        }
    }
    Ok(steps)
}

/// The plan as a dry run shows it: folders made, files copied, and the
/// deletes if they would happen.
fn planned(steps: &[Step], deletes_allowed: bool) -> Vec<Planned> {
    steps
        .iter()
        .filter_map(|step| {
            let (action, size, reason) = match &step.action {
                Action::Mkdir => ("mkdir", 0, "missing".to_string()),
                Action::Copy { size, reason, .. } => ("copy", *size, reason.to_string()),
                Action::Delete(kind) if deletes_allowed => {
                    let what = if *kind == EntryKind::Dir {
                        "folder"
                    } else {
                        "file"
                    };
                    ("delete", 0, format!("{what} not in the source"))
                }
                _ => return None,
            };
            Some(Planned {
                action,
                name: step.name.clone(),
                size,
                reason,
            })
        })
        .collect()
}

/// The steps that leave a name as it is.
fn skips(steps: &[Step]) -> impl Iterator<Item = Skipped> + '_ {
    steps.iter().filter_map(|step| match step.action {
        Action::Skip(reason) => Some(Skipped::new(&step.name, reason)),
        _ => None,
    })
}

/// Makes the folders the destination lacks (empty ones too; folders of
/// copied files would appear anyway), on the server in one round trip.
fn make_folders(
    session: &mut Session,
    direction: Direction,
    ends: &Ends<'_>,
    op: &str,
    steps: &[Step],
    report: &mut SyncReport,
) -> Result<()> {
    let folders: Vec<&str> = steps
        .iter()
        .filter(|s| s.action == Action::Mkdir)
        .map(|s| s.name.as_str())
        .collect();
    match direction {
        Direction::Pull => {
            for name in folders {
                match std::fs::create_dir_all(ends.local_path(name)) {
                    Ok(()) => report.made.push(name.to_string()),
                    Err(e) => report.failed.push(Failed {
                        name: name.to_string(),
                        kind: ErrorKind::LocalIo,
                        message: format!("{op}: cannot make folder `{name}`: {e}"),
                    }),
                }
            }
        }
        Direction::Push => {
            let mkdir = |name: &str| Extension::Mkdir(ends.remote_name(name));
            each_ok(session, op, &folders, mkdir, |name, done| match done {
                Ok(()) => report.made.push(name.to_string()),
                Err(e) => report.failed.push(Failed {
                    name: name.to_string(),
                    kind: e.kind,
                    message: e.to_string(),
                }),
            })?;
        }
    }
    Ok(())
}

/// Removes what the destination has and the source does not, files first,
/// then folders deepest first; on the server in one round trip per window.
fn delete(
    session: &mut Session,
    direction: Direction,
    ends: &Ends<'_>,
    op: &str,
    steps: &[Step],
    report: &mut SyncReport,
) -> Result<()> {
    let gone: Vec<(&str, EntryKind)> = steps
        .iter()
        .filter_map(|s| match s.action {
            Action::Delete(kind) => Some((s.name.as_str(), kind)),
            _ => None,
        })
        .collect();
    let mut failed = |name: &str, kind, message: String| {
        report.failed.push(Failed {
            name: name.to_string(),
            kind,
            message,
        })
    };
    match direction {
        Direction::Pull => {
            for (name, kind) in gone {
                let path = ends.local_path(name);
                let removed = match kind {
                    EntryKind::Dir => std::fs::remove_dir(&path),
                    EntryKind::File => std::fs::remove_file(&path),
                };
                match removed {
                    Ok(()) => report.deleted.push(name.to_string()),
                    Err(e) => failed(
                        name,
                        ErrorKind::LocalIo,
                        format!("{op}: cannot delete `{name}`: {e}"),
                    ),
                }
            }
        }
        Direction::Push => {
            let names: Vec<&str> = gone.iter().map(|(name, _)| *name).collect();
            let delete = |name: &str| Extension::Delete(ends.remote_name(name));
            each_ok(session, op, &names, delete, |name, done| match done {
                Ok(()) => report.deleted.push(name.to_string()),
                Err(e) => failed(name, e.kind, e.to_string()),
            })?;
        }
    }
    Ok(())
}

/// Sends `request(name)` for each of `names`, a window at a time, and
/// hands each bare-`OK` reply (or the server's refusal) to `done` with its
/// name: one round trip per window. Fails only if the connection breaks.
fn each_ok(
    session: &mut Session,
    op: &str,
    names: &[&str],
    request: impl Fn(&str) -> Extension,
    mut done: impl FnMut(&str, Result<()>),
) -> Result<()> {
    let _guard = session.cancellable(op)?;
    for window in names.chunks(worker::WINDOW) {
        for name in window {
            session.send_extension(op, request(name))?;
        }
        for name in window {
            match session.recv_ok(op) {
                Err(e) if !session.is_connected() => return Err(e),
                reply => done(name, reply),
            }
        }
    }
    Ok(())
}
