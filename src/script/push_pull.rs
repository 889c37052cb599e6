//! Whole trees from scripts and the REPL: `push(local_dir, remote_dir[,
//! options])` and `pull(remote_dir, local_dir[, options])` on a session or
//! the current one, over [`crate::sync`]; the options map, the result map,
//! the overall progress bar and the one-line summary.

use super::api::{ScriptSession, current, to_int};
use super::report::{BAD_ARGUMENT, from_client, throw};
use super::{Registry, State};
use crate::error::Result;
use crate::events::{Event, Events};
use crate::progress::TreeMeter;
use crate::session::Session;
use crate::sync::{
    self, Compare, Counters, Direction, Links, MAX_PARALLEL, SyncOptions, SyncReport,
};
use crate::units::human_size;
use rhai::{Array, Dynamic, EvalAltResult, INT, Map};
use std::cell::RefCell;
use std::io::Write;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

type Fallible<T> = std::result::Result<T, Box<EvalAltResult>>;

/// The option keys `push` and `pull` take, in the order the docs list them.
const OPTIONS: &[&str] = &[
    "compare",
    "delete",
    "allow_empty_source",
    "max_delete",
    "include",
    "exclude",
    "links",
    "parallel",
    "verify",
    "retries",
    "retry_delay",
    "dry_run",
];

/// The longest `retry_delay` a script may ask for, in seconds (each wait is
/// at most 30 s anyway, however often it doubles).
const MAX_RETRY_DELAY: f64 = 60.0;
/// The most `retries` a script may ask for.
const MAX_RETRIES: INT = 100;

/// Registers `push` and `pull` on a session and on the current session.
pub(crate) fn register(reg: &mut Registry<'_>, state: &Rc<RefCell<State>>) {
    for (name, direction) in [("push", Direction::Push), ("pull", Direction::Pull)] {
        let st = Rc::clone(state);
        reg.func(name, move |s: &mut ScriptSession, from: &str, to: &str| {
            call(&st, s, direction, from, to, None)
        });
        let st = Rc::clone(state);
        reg.func(
            name,
            move |s: &mut ScriptSession, from: &str, to: &str, options: Map| {
                call(&st, s, direction, from, to, Some(options))
            },
        );
        let st = Rc::clone(state);
        reg.func(name, move |from: &str, to: &str| {
            let s = current(&st, &operation(direction, from, to))?;
            call(&st, &s, direction, from, to, None)
        });
        let st = Rc::clone(state);
        reg.func(name, move |from: &str, to: &str, options: Map| {
            let s = current(&st, &operation(direction, from, to))?;
            call(&st, &s, direction, from, to, Some(options))
        });
    }
}

/// `push `from` to `to``: how failures of the call name it.
pub(crate) fn operation(direction: Direction, from: &str, to: &str) -> String {
    format!("{} `{from}` to `{to}`", direction.verb())
}

/// One script call: the options read, the sync run with the progress bar,
/// the summary on stderr when progress is on, the result map returned.
fn call(
    state: &Rc<RefCell<State>>,
    s: &ScriptSession,
    direction: Direction,
    from: &str,
    to: &str,
    options: Option<Map>,
) -> Fallible<Map> {
    let op = operation(direction, from, to);
    let mut options = sync_options(&op, options.unwrap_or_default())?;
    options.events = state.borrow().events.clone();
    let dry_run = options.dry_run;
    let (local, remote) = match direction {
        Direction::Push => (from, to),
        Direction::Pull => (to, from),
    };
    let progress = state.borrow().progress;
    let report = s
        .with(|s| run(s, direction, Path::new(local), remote, options, progress))
        .map_err(from_client)?;
    if progress {
        // a closed stderr must not stop the script
        let line = summary(direction, dry_run, &report);
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
    Ok(result_map(&report))
}

/// Runs a sync with one overall progress bar when `progress` is on (the
/// session's own per-file bars are off meanwhile): the REPL's `PUSH` and
/// `PULL` call it too.
pub(crate) fn run(
    session: &mut Session,
    direction: Direction,
    local: &Path,
    remote: &str,
    mut options: SyncOptions,
    progress: bool,
) -> Result<SyncReport> {
    let counters = Arc::new(Counters::default());
    options.progress = Some(Arc::clone(&counters));
    let meter = TreeMeter::start(progress && !options.dry_run, direction.verb(), counters);
    session.set_progress(false);
    let report = sync::sync(session, direction, local, remote, &options);
    session.set_progress(progress);
    drop(meter);
    if let (Some(events), Ok(report)) = (&options.events, &report)
        && !options.dry_run
    {
        report_events(events, direction, report);
    }
    report
}

/// The `skip`, `delete` and `error` events of a sync that ran (the copies
/// and retries were written as they happened).
fn report_events(events: &Events, direction: Direction, report: &SyncReport) {
    let sync = direction.verb();
    for skipped in &report.skipped {
        events.emit(&Event::Skip {
            sync,
            name: skipped.name.clone(),
            reason: skipped.reason.clone(),
        });
    }
    for name in &report.deleted {
        events.emit(&Event::Delete {
            sync,
            name: name.clone(),
        });
    }
    for failed in &report.failed {
        let (message, name) = (failed.message.clone(), Some(failed.name.clone()));
        events.client_error(failed.kind, message, name);
    }
}

/// The [`SyncOptions`] a script's options map asks for; an unknown key or a
/// value of the wrong type or range is `bad_argument` naming the key.
fn sync_options(op: &str, map: Map) -> Fallible<SyncOptions> {
    let mut options = SyncOptions::default();
    for (key, value) in map {
        let bad = |wanted: &str| {
            throw(
                BAD_ARGUMENT,
                format!("{op}: option `{key}` takes {wanted}, not {value:?}"),
            )
        };
        let flag = || value.as_bool().map_err(|_| bad("true or false"));
        match key.as_str() {
            "compare" => {
                options.compare = match value.clone().into_string().as_deref() {
                    Ok("size_mtime") => Compare::SizeMtime,
                    Ok("digest") => Compare::Digest,
                    Ok("size") => Compare::Size,
                    Ok("always") => Compare::Always,
                    _ => return Err(bad("\"size_mtime\", \"digest\", \"size\" or \"always\"")),
                }
            }
            "delete" => options.delete = flag()?,
            "allow_empty_source" => options.allow_empty_source = flag()?,
            "verify" => options.verify = flag()?,
            "dry_run" => options.dry_run = flag()?,
            "max_delete" => {
                let n =
                    whole(&value, 0, INT::MAX).ok_or_else(|| bad("a whole number, 0 or more"))?;
                options.max_delete = Some(n as u64);
            }
            "include" => options.include = patterns(&value).ok_or_else(|| bad(PATTERNS))?,
            "exclude" => options.exclude = patterns(&value).ok_or_else(|| bad(PATTERNS))?,
            "links" => {
                options.links = match value.clone().into_string().as_deref() {
                    Ok("skip") => Links::Skip,
                    Ok("follow") => Links::Follow,
                    _ => return Err(bad("\"skip\" or \"follow\"")),
                }
            }
            "parallel" => {
                let n = whole(&value, 1, MAX_PARALLEL as INT)
                    .ok_or_else(|| bad(&format!("a whole number from 1 to {MAX_PARALLEL}")))?;
                options.parallel = n as usize;
            }
            "retries" => {
                let n = whole(&value, 0, MAX_RETRIES)
                    .ok_or_else(|| bad(&format!("a whole number from 0 to {MAX_RETRIES}")))?;
                options.retries = n as u32;
            }
            "retry_delay" => {
                let seconds = value
                    .as_float()
                    .ok()
                    .or_else(|| value.as_int().ok().map(|n| n as f64))
                    .filter(|s| (0.0..=MAX_RETRY_DELAY).contains(s))
                    .ok_or_else(|| {
                        bad(&format!("seconds from 0 to {MAX_RETRY_DELAY}, such as 0.5"))
                    })?;
                options.retry_delay = Duration::from_secs_f64(seconds);
            }
            _ => {
                let keys: Vec<String> = OPTIONS.iter().map(|k| format!("`{k}`")).collect();
                return Err(throw(
                    BAD_ARGUMENT,
                    format!(
                        "{op}: unknown option `{key}`; the options are {}",
                        keys.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(options)
}

const PATTERNS: &str = "a pattern or an array of patterns, such as [\"*.tmp\", \"cache/\"]";

/// An integer value from `low` to `high`.
fn whole(value: &Dynamic, low: INT, high: INT) -> Option<INT> {
    value.as_int().ok().filter(|n| (low..=high).contains(n))
}

/// One pattern, or an array of them: every element a string.
fn patterns(value: &Dynamic) -> Option<Vec<String>> {
    if let Ok(one) = value.clone().into_string() {
        return Some(vec![one]);
    }
    let array = value.clone().try_cast::<Array>()?;
    array.into_iter().map(|v| v.into_string().ok()).collect()
}

/// The result map: `#{copied: [#{name, size}], made: [names], skipped:
/// [#{name, reason}], deleted: [names], failed: [#{name, kind, message}],
/// deletes_held: text or (), files, bytes, retries, seconds, plan:
/// [#{action, name, size, reason}]}`.
fn result_map(report: &SyncReport) -> Map {
    let record = |pairs: Vec<(&str, Dynamic)>| -> Dynamic {
        let map: Map = pairs.into_iter().map(|(k, v)| (k.into(), v)).collect();
        map.into()
    };
    let names = |names: &[String]| -> Array { names.iter().map(|n| n.as_str().into()).collect() };
    let copied: Array = report
        .copied
        .iter()
        .map(|(name, size)| {
            record(vec![
                ("name", name.as_str().into()),
                ("size", to_int(*size).into()),
            ])
        })
        .collect();
    let skipped: Array = report
        .skipped
        .iter()
        .map(|s| {
            record(vec![
                ("name", s.name.as_str().into()),
                ("reason", s.reason.as_str().into()),
            ])
        })
        .collect();
    let failed: Array = report
        .failed
        .iter()
        .map(|f| {
            record(vec![
                ("name", f.name.as_str().into()),
                ("kind", f.kind.as_str().into()),
                ("message", f.message.as_str().into()),
            ])
        })
        .collect();
    let plan: Array = report
        .plan
        .iter()
        .map(|p| {
            record(vec![
                ("action", p.action.into()),
                ("name", p.name.as_str().into()),
                ("size", to_int(p.size).into()),
                ("reason", p.reason.as_str().into()),
            ])
        })
        .collect();
    let held = report
        .deletes_held
        .as_deref()
        .map_or(Dynamic::UNIT, |why| why.into());
    let mut map = Map::new();
    map.insert("copied".into(), copied.into());
    map.insert("made".into(), names(&report.made).into());
    map.insert("skipped".into(), skipped.into());
    map.insert("deleted".into(), names(&report.deleted).into());
    map.insert("failed".into(), failed.into());
    map.insert("deletes_held".into(), held);
    map.insert("files".into(), to_int(report.copied.len() as u64).into());
    map.insert("bytes".into(), to_int(report.bytes).into());
    map.insert("retries".into(), to_int(report.retries).into());
    map.insert("seconds".into(), (report.seconds as rhai::FLOAT).into());
    map.insert("plan".into(), plan.into());
    map
}

/// One line saying what a sync did: `push: copied 3 files (1.2 MiB),
/// made 1 folder, deleted 2, skipped 10, 0 failed, in 0.4 s`, and why
/// deletes were held back if they were; a dry run says what it would do.
pub(crate) fn summary(direction: Direction, dry_run: bool, report: &SyncReport) -> String {
    let verb = direction.verb();
    let count = |n: usize, one: &str, many: &str| match n {
        1 => format!("1 {one}"),
        n => format!("{n} {many}"),
    };
    let mut text = if dry_run {
        let planned = |action: &'static str| report.plan.iter().filter(move |p| p.action == action);
        let bytes: u64 = planned("copy").map(|p| p.size).sum();
        format!(
            "{verb} (dry run, nothing done): would copy {} ({}), make {}, delete {}; skip {}",
            count(planned("copy").count(), "file", "files"),
            human_size(bytes),
            count(planned("mkdir").count(), "folder", "folders"),
            planned("delete").count(),
            report.skipped.len()
        )
    } else {
        let mut text = format!(
            "{verb}: copied {} ({}), made {}, deleted {}, skipped {}, {} failed",
            count(report.copied.len(), "file", "files"),
            human_size(report.bytes),
            count(report.made.len(), "folder", "folders"),
            report.deleted.len(),
            report.skipped.len(),
            report.failed.len()
        );
        if report.retries > 0 {
            text.push_str(&format!(", {} retried", report.retries));
        }
        text.push_str(&format!(", in {:.1} s", report.seconds));
        text
    };
    if let Some(why) = &report.deletes_held {
        text.push_str(&format!("; deletes held back: {why}"));
    }
    text
}

/// What a sync left out on purpose (a symbolic link, a name IOE/1 cannot
/// carry…), as opposed to what it found unchanged: the entries worth
/// telling a person about.
pub(crate) fn left_out(report: &SyncReport) -> impl Iterator<Item = &sync::Skipped> {
    report
        .skipped
        .iter()
        .filter(|s| !UNCHANGED.contains(&s.reason.as_str()))
}

/// The reasons of the skips that mean "already there and the same".
const UNCHANGED: &[&str] = &["same size and mtime", "same size", "same digest", "exists"];
