//! `ioe run`: loads a script (a file, stdin or `-e` text), runs it in a
//! [`Host`] with Ctrl-C, SIGTERM and SIGHUP wired to cancellation, prints an
//! uncaught error's report on stderr, and decides the exit status: 0 when
//! the script ends, `n` after `exit(n)`, 1 for an uncaught error, 2 when
//! the script cannot be read or does not compile, 128 + the signal's number
//! after a signal (130 for Ctrl-C, 143 for SIGTERM). With `--events`, the
//! job's start and end (with that status) go to the events log.

use super::report::SCRIPT;
use super::{EXIT_UNUSABLE, Host, HostOptions, Stop};
use crate::cancel::{CancelToken, on_signals};
use crate::events::{Event, Events};
use crate::progress::ProgressMode;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

/// Where the script comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptSource {
    /// A file; `-` means stdin.
    File(PathBuf),
    /// The text given with `-e`.
    Inline(String),
}

/// What `ioe run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The script.
    pub source: ScriptSource,
    /// Its arguments, the `ARGS` array.
    pub args: Vec<String>,
    /// Progress bars for long transfers.
    pub progress: ProgressMode,
    /// Where to append the job's events (`--events`; `-` is stdout).
    pub events: Option<PathBuf>,
}

/// Runs `ioe run` and returns its exit status.
pub fn run(options: RunOptions) -> u8 {
    let events = options.events.as_deref().map(Events::open);
    if let Some(events) = &events {
        let script = match &options.source {
            ScriptSource::File(path) => path.display().to_string(),
            ScriptSource::Inline(_) => "-e".to_string(),
        };
        events.job_start("run", Some(script), &options.args);
    }
    let status = run_with(options, events.clone());
    if let Some(events) = &events {
        events.job_end(status);
    }
    status
}

/// [`run`] once the events log is open.
fn run_with(options: RunOptions, events: Option<Arc<Events>>) -> u8 {
    let (name, text) = match load(&options.source) {
        Ok(loaded) => loaded,
        Err(message) => {
            diagnose(format_args!("ioe: {message}"));
            crate::events::emit(events.as_ref(), || Event::Error {
                kind: SCRIPT.to_string(),
                message,
                file: None,
                line: None,
                name: None,
            });
            return EXIT_UNUSABLE;
        }
    };
    let cancel = CancelToken::new();
    let handler_token = cancel.clone();
    let handler_events = events.clone();
    let installed = on_signals(move |signal| {
        if handler_token.is_cancelled() {
            // the second signal: the user does not want to wait
            if let Some(events) = &handler_events {
                events.job_end(signal.exit_status());
            }
            std::process::exit(i32::from(signal.exit_status()));
        }
        handler_token.cancel_by(signal);
    });
    if let Err(e) = installed {
        diagnose(format_args!(
            "ioe: warning: Ctrl-C and SIGTERM will not stop transfers cleanly: {e}"
        ));
    }
    let mut host = Host::new(HostOptions {
        args: options.args,
        progress: options.progress.enabled(),
        cancel: cancel.clone(),
        events,
    });
    let status = match host.eval(&name, &without_shebang(&text)) {
        Ok(_) => 0,
        Err(Stop::Exit(exit)) => {
            if let Some(message) = exit.message {
                diagnose(&message);
            }
            exit.code
        }
        Err(Stop::Failed(report)) => {
            diagnose(&report);
            report.exit_code(&cancel)
        }
    };
    drop(host);
    status
}

/// Writes a line on stderr; a closed stderr (`2>&1 | head`) is ignored
/// rather than a panic that would change the exit status.
fn diagnose(text: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// The script's name for reports, and its text.
fn load(source: &ScriptSource) -> Result<(String, String), String> {
    match source {
        ScriptSource::Inline(text) => Ok(("-e".to_string(), text.clone())),
        ScriptSource::File(path) if path.as_os_str() == "-" => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| format!("cannot read the script from stdin: {e}"))?;
            Ok(("<stdin>".to_string(), text))
        }
        ScriptSource::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                let name = path.display().to_string();
                let missing = e.kind() == std::io::ErrorKind::NotFound;
                // the script's place also takes misspelt options (`--progres`)
                if missing && name.starts_with('-') {
                    format!(
                        "`{name}` is not an option of `ioe run` (it takes -e CODE, --events FILE, \
                         --progress and --no-progress, before the script) nor a script file"
                    )
                } else {
                    format!("cannot read script `{name}`: {e}")
                }
            })?;
            Ok((path.display().to_string(), text))
        }
    }
}

/// Drops a byte order mark (some Windows editors write one) and blanks a
/// `#!` first line (so scripts can be executable), keeping line numbers.
fn without_shebang(text: &str) -> std::borrow::Cow<'_, str> {
    let text = super::without_bom(text);
    if text.starts_with("#!") {
        let rest = text.find('\n').map_or("", |i| &text[i..]);
        rest.to_string().into()
    } else {
        text.into()
    }
}
