//! What a job did, for machines: `ioe run --events FILE` and `ioe repl
//! --events FILE` write one JSON object per line (NDJSON) for the job's
//! start, each connection, each transfer, a sync's skips, deletes and
//! retries, each error, and the job's end with its totals. The schema is
//! docs/events.md. An [`Events`] log is shared by the script host, the sync
//! workers and the command line; writing never fails the job: the first
//! write that fails is reported once on stderr and the log goes quiet.

use crate::error::ErrorKind;
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The events file name that means standard output.
pub const STDOUT: &str = "-";

/// The `op` of a [`Event::Transfer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Op {
    /// A script's `read` (or the REPL's `READ`).
    #[serde(rename = "read")]
    Read,
    /// A script's `write` (or the REPL's `WRITE`).
    #[serde(rename = "write")]
    Write,
    /// One file a `push` uploaded.
    #[serde(rename = "push-file")]
    PushFile,
    /// One file a `pull` downloaded.
    #[serde(rename = "pull-file")]
    PullFile,
}

/// One event; every line also has `time` (see [`Events::emit`]). The
/// fields are documented in docs/events.md.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The job began.
    JobStart {
        /// `run` or `repl`.
        command: &'static str,
        /// The script as given (`-` for stdin, `-e` for code given with
        /// `-e`); absent for the REPL.
        #[serde(skip_serializing_if = "Option::is_none")]
        script: Option<String>,
        /// The script's arguments.
        args: Vec<String>,
        /// The `ioe` version.
        version: &'static str,
        /// The process id.
        pid: u32,
    },
    /// A session was opened.
    Connect {
        /// `host:port`.
        address: String,
        /// Whether it speaks TLS.
        tls: bool,
        /// The server certificate's fingerprint (`SHA256:…`), with TLS.
        #[serde(skip_serializing_if = "Option::is_none")]
        fingerprint: Option<String>,
        /// Who the server says the session is (its token's label), when
        /// it authenticated.
        #[serde(skip_serializing_if = "Option::is_none")]
        identity: Option<String>,
    },
    /// A file arrived whole (a failed transfer is an `error`).
    Transfer {
        /// What moved it.
        op: Op,
        /// The name on the server.
        remote: String,
        /// The local path.
        local: String,
        /// Body bytes that crossed the network (less than `size` after a
        /// resume).
        bytes: u64,
        /// The file's size.
        size: u64,
        /// From sending the request to the file in place.
        seconds: f64,
        /// Where a resumed download started; 0 when not resumed.
        resumed_from: u64,
        /// `algorithm:hex` both sides agreed on, when verified.
        #[serde(skip_serializing_if = "Option::is_none")]
        digest: Option<String>,
    },
    /// A sync left an entry as it was, or out.
    Skip {
        /// `push` or `pull`.
        sync: &'static str,
        /// The name, relative to the synced folders.
        name: String,
        /// Why.
        reason: String,
    },
    /// A sync removed an entry from the destination.
    Delete {
        /// `push` (removed on the server) or `pull` (removed locally).
        sync: &'static str,
        /// The name, relative to the synced folders.
        name: String,
    },
    /// A sync tries a file again after its connection broke.
    Retry {
        /// `push` or `pull`.
        sync: &'static str,
        /// The name, relative to the synced folders.
        name: String,
        /// Which retry this is: 1 for the first.
        attempt: u32,
        /// The error kind that made it necessary.
        kind: &'static str,
        /// That error's message.
        message: String,
        /// How long the worker waited before reconnecting (0 when the
        /// file went to a connection that was still open).
        delay: f64,
    },
    /// Something failed.
    Error {
        /// An [`ErrorKind`] name, `bad_argument`, or `script` for an error of
        /// the script itself (it does not compile, a type error, `throw`).
        kind: String,
        /// What a user reads.
        message: String,
        /// The script (or module) it happened in.
        #[serde(skip_serializing_if = "Option::is_none")]
        file: Option<String>,
        /// Its line there.
        #[serde(skip_serializing_if = "Option::is_none")]
        line: Option<usize>,
        /// The file a sync failed on, relative to the synced folders.
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// The job ended.
    JobEnd {
        /// The exit status.
        status: u8,
        /// Files transferred (the `transfer` events).
        files: u64,
        /// Their bytes (the sum of their `bytes`).
        bytes: u64,
        /// The `error` events.
        errors: u64,
        /// Since the job started.
        seconds: f64,
    },
}

/// A line as written: the time, then the event's fields.
#[derive(Serialize)]
struct Line<'a> {
    time: String,
    #[serde(flatten)]
    event: &'a Event,
}

/// Where the lines go.
enum Target {
    File(File),
    Stdout,
    /// Opening or writing failed (reported once); nothing more is written.
    Gone,
}

/// What was written so far, for the job's end.
#[derive(Default)]
struct Totals {
    files: u64,
    bytes: u64,
    errors: u64,
}

struct Inner {
    target: Target,
    totals: Totals,
}

/// An events log shared by everything that runs in a job.
pub struct Events {
    /// The file as given, for the one warning.
    name: String,
    started: Instant,
    /// Set by [`job_end`](Events::job_end), which writes only once.
    ended: AtomicBool,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Events({})", self.name)
    }
}

impl Events {
    /// Opens `path` for appending (made if missing; `-` is stdout). A file
    /// that cannot be opened is reported once on stderr, and the job runs
    /// without events.
    pub fn open(path: &Path) -> Arc<Events> {
        let name = path.display().to_string();
        let target = if path.as_os_str() == STDOUT {
            Target::Stdout
        } else {
            match OpenOptions::new().append(true).create(true).open(path) {
                Ok(file) => Target::File(file),
                Err(e) => {
                    warn(&name, &e);
                    Target::Gone
                }
            }
        };
        Arc::new(Events {
            name,
            started: Instant::now(),
            ended: AtomicBool::new(false),
            inner: Mutex::new(Inner {
                target,
                totals: Totals::default(),
            }),
        })
    }

    /// Writes `event` as one line, with `time` (RFC 3339, UTC, in
    /// milliseconds), in one `write` call, and counts it toward the
    /// totals. A failed write is reported once on stderr; nothing after it
    /// is written.
    pub fn emit(&self, event: &Event) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        match event {
            Event::Transfer { bytes, .. } => {
                inner.totals.files += 1;
                inner.totals.bytes += bytes;
            }
            Event::Error { .. } => inner.totals.errors += 1,
            _ => {}
        }
        let line = Line { time: now(), event };
        // a line of strings and numbers always serializes
        let Ok(mut text) = serde_json::to_vec(&line) else {
            return;
        };
        text.push(b'\n');
        let written = match &mut inner.target {
            Target::File(file) => file.write_all(&text),
            Target::Stdout => {
                let mut stdout = io::stdout().lock();
                stdout.write_all(&text).and_then(|()| stdout.flush())
            }
            Target::Gone => return,
        };
        if let Err(e) = written {
            inner.target = Target::Gone;
            warn(&self.name, &e);
        }
    }

    /// The `job_start` event.
    pub fn job_start(&self, command: &'static str, script: Option<String>, args: &[String]) {
        self.emit(&Event::JobStart {
            command,
            script,
            args: args.to_vec(),
            version: env!("CARGO_PKG_VERSION"),
            pid: std::process::id(),
        });
    }

    /// The `job_end` event with exit `status` and the totals so far; only
    /// the first call writes it (a second Ctrl-C may end the process while
    /// the job ends on its own).
    pub fn job_end(&self, status: u8) {
        if self.ended.swap(true, Ordering::SeqCst) {
            return;
        }
        let (files, bytes, errors) = {
            let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            let t = &inner.totals;
            (t.files, t.bytes, t.errors)
        };
        self.emit(&Event::JobEnd {
            status,
            files,
            bytes,
            errors,
            seconds: secs(self.started.elapsed()),
        });
    }

    /// An `error` event for a client error with no place in a script.
    pub fn client_error(&self, kind: ErrorKind, message: String, name: Option<String>) {
        self.emit(&Event::Error {
            kind: kind.as_str().to_string(),
            message,
            file: None,
            line: None,
            name,
        });
    }
}

/// Emits `event` on `events`, if there is a log.
pub fn emit(events: Option<&Arc<Events>>, event: impl FnOnce() -> Event) {
    if let Some(events) = events {
        events.emit(&event());
    }
}

/// Seconds, to the microsecond (what the events show).
pub fn secs(elapsed: Duration) -> f64 {
    (elapsed.as_secs_f64() * 1e6).round() / 1e6
}

/// Now as RFC 3339 in UTC with milliseconds: `2026-11-29T21:04:05.123Z`.
pub fn now() -> String {
    format!("{:.3}", jiff::Timestamp::now())
}

/// The one warning about an events file that cannot be written.
fn warn(name: &str, e: &io::Error) {
    let _ = writeln!(
        io::stderr().lock(),
        "ioe: warning: cannot write events to `{name}`: {e}; the job goes on without them"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_is_rfc3339_utc_in_milliseconds() {
        let time = now();
        let parsed: jiff::Timestamp = time.parse().expect("RFC 3339");
        assert_eq!(time.len(), "2026-11-29T21:04:05.123Z".len(), "{time}");
        assert!(time.ends_with('Z'), "{time}");
        assert_eq!(format!("{parsed:.3}"), time);
    }

    #[test]
    fn a_line_is_the_time_the_type_then_the_fields_without_absent_ones() {
        let line = Line {
            time: "T".into(),
            event: &Event::Connect {
                address: "h:1".into(),
                tls: false,
                fingerprint: None,
                identity: None,
            },
        };
        assert_eq!(
            serde_json::to_string(&line).unwrap(),
            r#"{"time":"T","type":"connect","address":"h:1","tls":false}"#
        );
        let transfer = Event::Transfer {
            op: Op::PushFile,
            remote: "r".into(),
            local: "l".into(),
            bytes: 1,
            size: 1,
            seconds: 0.5,
            resumed_from: 0,
            digest: None,
        };
        let text = serde_json::to_string(&transfer).unwrap();
        assert!(
            text.starts_with(r#"{"type":"transfer","op":"push-file""#),
            "{text}"
        );
    }
}
