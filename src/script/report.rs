//! Failures as scripts and users see them: the `#{kind, message}` maps that
//! `try … catch` receives, and the report `ioe run` prints on stderr for an
//! error nobody caught (message, `file:LINE:COL`, the source line, a caret).

use super::limits;
use crate::cancel::{CancelToken, Signal};
use crate::error::{Error, ErrorKind};
use rhai::{Dynamic, EvalAltResult, Map, ParseError, ParseErrorType, Position};
use std::collections::HashMap;
use std::fmt;

/// The kind of a script-level misuse the client library cannot know about,
/// such as a port number out of range.
pub const BAD_ARGUMENT: &str = "bad_argument";

/// The `kind` of an `error` event for an error of the script itself (it
/// does not compile, a type error, `throw "text"`), which has no `e.kind`.
pub const SCRIPT: &str = "script";

/// Exit status when a script cannot be read or does not compile.
pub const EXIT_UNUSABLE: u8 = 2;
/// Exit status after Ctrl-C (128 + SIGINT, as shells report it), and after
/// a cancellation that no signal caused.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Every `e.kind` a script can see, in documentation order.
pub fn kinds() -> Vec<&'static str> {
    let mut kinds: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
    kinds.push(BAD_ARGUMENT);
    kinds
}

/// A Rhai error carrying `#{kind, message}`, which `catch (e)` receives.
pub(crate) fn throw(kind: &str, message: impl Into<String>) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(error_map(kind, message.into()), Position::NONE).into()
}

fn error_map(kind: &str, message: String) -> Dynamic {
    let mut map = Map::new();
    map.insert("kind".into(), kind.into());
    map.insert("message".into(), message.into());
    map.into()
}

/// Turns a client error into a Rhai error. A cancelled transfer (Ctrl-C)
/// terminates the script instead: `try … catch` must not swallow it.
pub(crate) fn from_client(err: Error) -> Box<EvalAltResult> {
    let map = error_map(err.kind.as_str(), err.to_string());
    if err.kind == ErrorKind::Cancelled {
        EvalAltResult::ErrorTerminated(map, Position::NONE).into()
    } else {
        EvalAltResult::ErrorRuntime(map, Position::NONE).into()
    }
}

/// Why evaluation stopped early.
#[derive(Debug)]
pub enum Stop {
    /// The script called `exit(…)`; [`Exit::code`] is the status to exit with.
    Exit(Exit),
    /// The script failed to compile, failed at run time or was interrupted.
    Failed(Box<Report>),
}

/// What `exit(…)` asked for: `exit()` and `exit(n)` give a status;
/// `exit("text")` prints the text on stderr and exits 1; any other value
/// exits 1 saying what `exit` takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// The process exit status.
    pub code: u8,
    /// Text for stderr (from `exit("text")` or an out-of-range status).
    pub message: Option<String>,
}

/// The value `exit(…)` carries out of the script. Rhai's own `exit` cannot
/// be told apart from a script's last value at top level, so `ioe`
/// registers its own, which stops the script as an uncatchable
/// termination carrying this.
#[derive(Debug, Clone)]
pub(crate) struct ExitRequest(pub Dynamic);

/// The error `exit(value)` raises.
pub(crate) fn exit_request(value: Dynamic) -> Box<EvalAltResult> {
    EvalAltResult::ErrorTerminated(Dynamic::from(ExitRequest(value)), Position::NONE).into()
}

impl Exit {
    fn from_value(value: &Dynamic) -> Exit {
        if value.is_unit() {
            return Exit {
                code: 0,
                message: None,
            };
        }
        if let Ok(n) = value.as_int() {
            return match u8::try_from(n) {
                Ok(code) => Exit {
                    code,
                    message: None,
                },
                Err(_) => Exit {
                    code: 1,
                    message: Some(format!(
                        "exit({n}): an exit status is 0 to 255; exiting with 1"
                    )),
                },
            };
        }
        let message = if value.is_string() {
            value.to_string()
        } else {
            format!(
                "exit({value}): give exit() a whole number from 0 to 255, or a text; exiting with 1"
            )
        };
        Exit {
            code: 1,
            message: Some(message),
        }
    }
}

/// At which stage a script failed; decides the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The script does not compile (exit 2); nothing ran.
    Compile,
    /// An error nobody caught (exit 1).
    Runtime,
    /// Ctrl-C or another signal (exit 128 + its number).
    Interrupted,
}

/// A place in a script's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The script's name as the user gave it (`-e` and `<stdin>` for the
    /// other sources).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// The text of that line, if the source is known.
    pub text: Option<String>,
}

impl Location {
    fn find(sources: &HashMap<String, String>, file: &str, pos: Position) -> Option<Location> {
        let line = pos.line()?;
        let column = pos.position().unwrap_or(1);
        // an imported module's text is read from its file
        let text = match sources.get(file) {
            Some(source) => source.lines().nth(line - 1).map(str::to_string),
            None => std::fs::read_to_string(file)
                .ok()
                .and_then(|source| source.lines().nth(line - 1).map(str::to_string)),
        };
        Some(Location {
            file: file.to_string(),
            line,
            column,
            text,
        })
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A failure described for a person: printed by `ioe run` on stderr and by
/// the REPL after a failed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Compile, run time or interrupted.
    pub phase: Phase,
    /// The `e.kind` word, for errors raised by the `ioe` functions.
    pub kind: Option<String>,
    /// What failed and why, e.g. ``read `a.txt`: server said: …``.
    pub message: String,
    /// Where it failed (the innermost place, inside a script function if
    /// it failed there).
    pub location: Option<Location>,
    /// The calls that led there, innermost first: "in `f`, called at …".
    pub trace: Vec<String>,
}

impl Report {
    /// 2 for a script that does not compile, 1 for an error; after an
    /// interruption 128 + the number of the signal that `cancel` says
    /// caused it (130 for Ctrl-C, 143 for SIGTERM), 130 if none did.
    pub fn exit_code(&self, cancel: &CancelToken) -> u8 {
        match self.phase {
            Phase::Compile => EXIT_UNUSABLE,
            Phase::Runtime => 1,
            Phase::Interrupted => cancel
                .signal()
                .map_or(EXIT_INTERRUPTED, Signal::exit_status),
        }
    }

    /// The `error` event of this failure: its kind (`cancelled` after
    /// Ctrl-C, `script` for the script's own errors), message and place.
    pub fn event(&self) -> crate::events::Event {
        let kind = match (&self.kind, self.phase) {
            (Some(kind), _) => kind.clone(),
            (None, Phase::Interrupted) => ErrorKind::Cancelled.as_str().to_string(),
            (None, _) => SCRIPT.to_string(),
        };
        crate::events::Event::Error {
            kind,
            message: self.message.clone(),
            file: self.location.as_ref().map(|l| l.file.clone()),
            line: self.location.as_ref().map(|l| l.line),
            name: None,
        }
    }

    /// The first line of the report: `error[kind]: message` (`error:
    /// message` without a kind, `interrupted: …` after Ctrl-C).
    pub fn headline(&self) -> String {
        let label = match self.phase {
            Phase::Interrupted => "interrupted",
            Phase::Compile | Phase::Runtime => "error",
        };
        match &self.kind {
            Some(kind) => format!("{label}[{kind}]: {}", self.message),
            None => format!("{label}: {}", self.message),
        }
    }

    pub(crate) fn compile(
        err: &ParseError,
        file: &str,
        sources: &HashMap<String, String>,
    ) -> Report {
        Report {
            phase: Phase::Compile,
            kind: None,
            message: match err.err_type() {
                ParseErrorType::ExprTooDeep => format!(
                    "the script does not compile: an expression is nested more than {} deep, \
                     the limit for scripts",
                    limits::EXPR_DEPTH
                ),
                other => format!("the script does not compile: {other}"),
            },
            location: Location::find(sources, file, err.position()),
            trace: Vec::new(),
        }
    }

    /// Describes a run-time error of the script named `file`; `exit(…)`
    /// comes back as [`Stop::Exit`]. `fn_sources` names the source that
    /// defined each script function (REPL entries define them one by one).
    pub(crate) fn runtime(
        err: EvalAltResult,
        file: &str,
        sources: &HashMap<String, String>,
        fn_sources: &HashMap<String, String>,
    ) -> Stop {
        let (err, file, trace) = unwind(err, file, sources, fn_sources);
        let pos = err.position();
        let (phase, kind, message) = match describe(err, &file) {
            Ok(described) => described,
            Err(exit) => return Stop::Exit(exit),
        };
        Stop::Failed(Box::new(Report {
            phase,
            kind,
            message,
            location: Location::find(sources, &file, pos),
            trace,
        }))
    }
}

/// Walks into the script function calls and imports that `err` happened
/// in: the innermost error, the source it happened in, and the calls that
/// led there, innermost first (shortened when long).
fn unwind(
    err: EvalAltResult,
    file: &str,
    sources: &HashMap<String, String>,
    fn_sources: &HashMap<String, String>,
) -> (EvalAltResult, String, Vec<String>) {
    let mut trace = Vec::new();
    let mut file = file.to_string();
    let mut err = err;
    let err = loop {
        let site = |file: &str, pos| {
            Location::find(sources, file, pos).map_or_else(|| file.to_string(), |l| l.to_string())
        };
        err = match err {
            EvalAltResult::ErrorInFunctionCall(name, source, inner, pos) => {
                let site = site(&file, pos);
                // Rhai names closures `anon$<hash>`
                if name.starts_with("anon$") {
                    trace.push(format!("in a closure, called at {site}"));
                } else {
                    trace.push(format!("in `{name}`, called at {site}"));
                }
                if !source.is_empty() && !sources.contains_key(&source) {
                    // a function of a module the script imported: its file
                    file = source;
                } else if let Some(defined_in) = fn_sources.get(&name) {
                    file.clone_from(defined_in);
                }
                *inner
            }
            // `import` names a module by its file (see `import`)
            EvalAltResult::ErrorInModule(module, inner, pos) => {
                trace.push(format!(
                    "in module `{module}`, imported at {}",
                    site(&file, pos)
                ));
                file = module;
                *inner
            }
            other => break other,
        };
    };
    trace.reverse();
    shorten_trace(&mut trace);
    (err, file, trace)
}

/// The phase, `e.kind` and message of an error raised in the source named
/// `file`, or what `exit(…)` asked for.
fn describe(err: EvalAltResult, file: &str) -> Result<(Phase, Option<String>, String), Exit> {
    Ok(match err {
        EvalAltResult::ErrorTerminated(value, _) if value.is::<ExitRequest>() => {
            let ExitRequest(value) = value.cast::<ExitRequest>();
            return Err(Exit::from_value(&value));
        }
        EvalAltResult::ErrorTerminated(value, _) => {
            // a cancelled transfer's error map, or the cause of a stop
            // between operations (`stopped by SIGTERM`)
            let message = match value.read_lock::<Map>() {
                Some(map) => map.get("message").map(|v| v.to_string()),
                None => value.clone().into_string().ok(),
            };
            let message = message.unwrap_or_else(|| "stopped".to_string());
            (Phase::Interrupted, None, message)
        }
        EvalAltResult::ErrorRuntime(value, _) => match kind_and_message(&value) {
            Some((kind, message)) => (Phase::Runtime, Some(kind), message),
            None => (Phase::Runtime, None, value.to_string()),
        },
        EvalAltResult::ErrorModuleNotFound(module, _) => (
            Phase::Runtime,
            None,
            format!(
                "module `{module}` not found: there is no file `{}`",
                super::import::module_file(&module, file).display()
            ),
        ),
        EvalAltResult::ErrorParsing(error, _) => (
            Phase::Runtime,
            None,
            format!("the module does not compile: {error}"),
        ),
        EvalAltResult::ErrorStackOverflow(_) => (
            Phase::Runtime,
            None,
            format!(
                "too many nested function calls: more than {} \
                 (does a function call itself without end?)",
                limits::CALL_LEVELS
            ),
        ),
        EvalAltResult::ErrorFunctionNotFound(signature, _) => {
            (Phase::Runtime, None, not_found_message(&signature))
        }
        mut other => {
            other.clear_position();
            (Phase::Runtime, None, other.to_string())
        }
    })
}

/// Calls shown at each end of a long chain (a runaway recursion).
const TRACE_ENDS: usize = 5;

/// Keeps the innermost and outermost [`TRACE_ENDS`] calls of a long chain
/// and says how many were left out.
fn shorten_trace(trace: &mut Vec<String>) {
    // hiding a single call would not make the report any shorter
    if trace.len() > 2 * TRACE_ENDS + 1 {
        let hidden = trace.len() - 2 * TRACE_ENDS;
        trace.splice(
            TRACE_ENDS..TRACE_ENDS + hidden,
            [format!("… {hidden} more calls …")],
        );
    }
}

/// Rhai's "Function not found: read (Session, i64)" in the words of
/// `docs/scripting.md`, with the ways to call an `ioe` function.
fn not_found_message(signature: &str) -> String {
    let readable = signature
        .replace("&str | ImmutableString | String", "string")
        .replace("i64", "int")
        .replace("f64", "float");
    let name = signature.split(" (").next().unwrap_or(signature);
    match super::functions::usage(name) {
        Some(forms) => format!("Function not found: {readable}; call it as {forms}"),
        None => format!("Function not found: {readable}"),
    }
}

/// The `kind` and `message` of a thrown `#{kind, message}` map.
fn kind_and_message(value: &Dynamic) -> Option<(String, String)> {
    let map = value.read_lock::<Map>()?;
    let kind = map.get("kind")?.clone().into_string().ok()?;
    let message = map.get("message")?.clone().into_string().ok()?;
    Some((kind, message))
}

impl fmt::Display for Report {
    /// ```text
    /// error[not_found]: read `a.txt`: server said: no such file or folder: `a.txt`
    ///   --> job.rhai:3:7
    ///    |
    ///  3 | let n = s.read("a.txt");
    ///    |          ^
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.headline())?;
        if let Some(location) = &self.location {
            let number = location.line.to_string();
            let pad = " ".repeat(number.len());
            write!(f, "\n{pad}--> {location}")?;
            if let Some(text) = &location.text {
                // keep tabs so that the caret lines up under the same glyph
                let lead: String = text
                    .chars()
                    .take(location.column.saturating_sub(1))
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                write!(f, "\n{pad} |\n{number} | {text}\n{pad} | {lead}^")?;
            }
        }
        for call in &self.trace {
            write!(f, "\n  {call}")?;
        }
        Ok(())
    }
}
