//! The interactive REPL (`ioe repl`, or plain `ioe` at a terminal): the
//! original command forms and Rhai code at one prompt, sharing one script
//! [`Host`] — one scope, one current session. The original command forms
//! are translated into calls of the script API, and the forms of the IOE/1
//! extensions call the host's current session directly, so `CONNECT,…`
//! followed by `list()` or `STAT,…` uses the same session. When stdin is not a terminal the lines run as a batch
//! (see [`batch`]). `docs/repl.md` is the user's guide.
//!
//! - [`forms`]: parsing `CONNECT,host,port`, `READ,name`, …;
//! - [`continuation`]: whether Rhai code goes on with the next line;
//! - [`editor`]: completion, hints and history for `rustyline`;
//! - [`table`]: `LIST` as a table;
//! - [`batch`]: lines of piped input grouped into entries.

pub mod batch;
pub mod continuation;
pub mod editor;
pub mod forms;
pub mod table;

use crate::cancel::{CancelToken, Signal, on_signals};
use crate::error::{Error, ErrorKind};
use crate::events::{Event, Events};
use crate::progress::ProgressMode;
use crate::protocol::{Entry, EntryKind, Features};
use crate::script::push_pull;
use crate::script::{
    EXIT_INTERRUPTED, Host, HostOptions, SCRIPT, ScriptSession, ServerHandle, Stop, folder_name,
    functions,
};
use crate::session::Session;
use crate::sync::{Direction, SyncOptions};
use editor::{RemoteName, ReplHelper};
use forms::Form;
use rhai::{Dynamic, Map};
use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::{CompletionType, Config, Editor};
use std::cell::RefCell;
use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Most entries kept in the history file.
const HISTORY_SIZE: usize = 1000;
/// How long Tab completion waits for the server (to connect, and for each
/// read of a listing) before it offers no remote names.
const LISTING_TIMEOUT: Duration = Duration::from_secs(3);

/// Writes a line to stdout. A closed stdout (`ioe repl < job.txt | head`)
/// is not an error, as with `print` in scripts: the lines go on running.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// Writes a line to stderr, which may be closed just as well
/// (`ioe repl < job.txt 2>&1 | head`): the lines go on running, and the
/// exit status stays that of the batch.
macro_rules! say_err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

/// How `ioe repl` runs.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `host:port` to connect to before the first line.
    pub connect: Option<String>,
    /// Keep no history file (`--no-history`).
    pub no_history: bool,
    /// Whether transfers draw progress bars.
    pub progress: ProgressMode,
    /// In batch mode, go on after a failing line (`--keep-going`).
    pub keep_going: bool,
    /// Where to append the session's events (`--events`; `-` is stdout).
    pub events: Option<std::path::PathBuf>,
}

/// Runs the REPL on stdin — interactively when it is a terminal, as a
/// batch otherwise — and returns the process exit status.
pub fn run(options: Options) -> u8 {
    let events = options.events.as_deref().map(Events::open);
    if let Some(events) = &events {
        events.job_start("repl", None, &[]);
    }
    let status = run_with(&options, events.clone());
    if let Some(events) = &events {
        events.job_end(status);
    }
    status
}

/// [`run`] once the events log is open.
fn run_with(options: &Options, events: Option<Arc<Events>>) -> u8 {
    let cancel = CancelToken::new();
    let busy = Arc::new(AtomicBool::new(false));
    if let Err(e) = install_interrupt_handler(cancel.clone(), Arc::clone(&busy), events.clone()) {
        say_err!("ioe: warning: Ctrl-C and SIGTERM cannot stop transfers: {e}");
    }
    let host = Host::new(HostOptions {
        args: Vec::new(),
        progress: options.progress.enabled(),
        cancel: cancel.clone(),
        events,
    });
    let mut repl = Repl {
        host: Rc::new(RefCell::new(host)),
        cancel,
        busy,
        progress: options.progress.enabled(),
        place: None,
    };
    if io::stdin().is_terminal() {
        repl.interactive(options)
    } else {
        repl.batch(options)
    }
}

/// Ctrl-C (and SIGTERM/SIGHUP) while a line runs cancels it, recording
/// which signal came (after SIGTERM or SIGHUP the REPL then leaves: see
/// [`Repl::ended_by_signal`]); at any other time it ends the program with
/// 128 + the signal's number. At the prompt the terminal is in raw mode, so
/// Ctrl-C arrives as a key (clearing the line), not as a signal; a signal
/// that ends the program there first restores the terminal's settings from
/// before line editing, so the shell is not left in raw mode, and writes
/// the `job_end` event.
fn install_interrupt_handler(
    cancel: CancelToken,
    busy: Arc<AtomicBool>,
    events: Option<Arc<Events>>,
) -> io::Result<()> {
    let terminal = rustix::termios::tcgetattr(io::stdin()).ok();
    on_signals(move |signal| {
        if busy.load(Ordering::SeqCst) {
            cancel.cancel_by(signal);
            return;
        }
        if let Some(settings) = &terminal {
            let now = rustix::termios::OptionalActions::Now;
            let _ = rustix::termios::tcsetattr(io::stdin(), now, settings);
        }
        if let Some(events) = &events {
            events.job_end(signal.exit_status());
        }
        std::process::exit(i32::from(signal.exit_status()));
    })
}

/// What a line asks for next.
enum Next {
    Prompt,
    /// `QUIT`: leave with status 0.
    Quit,
    /// The script called `exit(n)`.
    Exit(u8),
}

/// A failed line, as the user reads it.
struct Failure {
    /// What to print on stderr.
    text: String,
    /// The exit status it calls for in batch mode.
    status: u8,
    /// For a failure of the line itself, its message for the `error`
    /// event (no script call wrote one).
    event: Option<String>,
}

impl Failure {
    /// A failure of the line itself, not of a script (a command form's
    /// usage, unfinished code): `error: message`, status 1.
    fn error(message: impl Into<String>) -> Failure {
        let message = message.into();
        Failure {
            text: format!("error: {message}"),
            status: 1,
            event: Some(message),
        }
    }
}

/// The REPL's state: the script host (shared with the completer, which
/// lists remote folders through it) and the Ctrl-C plumbing.
struct Repl {
    host: Rc<RefCell<Host>>,
    cancel: CancelToken,
    busy: Arc<AtomicBool>,
    /// Whether transfers draw progress bars.
    progress: bool,
    /// The input name and line of the entry running (none for
    /// `--connect`), for the `error` events of command forms.
    place: Option<(String, usize)>,
}

impl Repl {
    fn interactive(&mut self, options: &Options) -> u8 {
        let mut editor = match self.editor() {
            Ok(editor) => editor,
            Err(e) => {
                say_err!("ioe: cannot set up line editing: {e}");
                return 1;
            }
        };
        let mut history_file = if options.no_history {
            None
        } else {
            open_history(&mut editor)
        };
        say!(
            "ioe {} — IOE/1 commands and Rhai code. `help` lists them; Tab completes; Ctrl-D leaves.",
            env!("CARGO_PKG_VERSION")
        );
        self.host
            .borrow_mut()
            .set_trust_prompt(Rc::new(ask_to_trust));
        if let Some(addr) = &options.connect {
            // a typo in --connect should not cost the session: say so and go on
            if let Err(failure) = self.run_form(Form::Connect(addr.clone())) {
                say_err!("{}", failure.text);
            }
        }
        let mut entries = 0;
        loop {
            let line = match editor.readline(&self.prompt()) {
                Ok(line) => line,
                // Ctrl-C at the prompt: rustyline dropped the line; show
                // it like a shell does and start a fresh one below
                Err(ReadlineError::Interrupted) => {
                    say!("^C");
                    continue;
                }
                Err(ReadlineError::Eof) => {
                    self.quit();
                    return 0;
                }
                Err(e) => {
                    say_err!("ioe: cannot read the terminal: {e}");
                    self.quit();
                    return 1;
                }
            };
            if line.trim().is_empty() {
                continue;
            }
            record(&mut editor, &mut history_file, &line);
            let result = self.run_entered(&line, &mut entries);
            let functions = self.function_names();
            if let Some(helper) = editor.helper_mut() {
                helper.forget_listings();
                helper.set_functions(functions);
            }
            if let Some(status) = self.ended_by_signal(&result) {
                return status;
            }
            match result {
                Ok(Next::Prompt) => {}
                Ok(Next::Quit) => return 0,
                Ok(Next::Exit(status)) => return status,
                Err(failure) => say_err!("{}", failure.text),
            }
        }
    }

    /// After SIGTERM or SIGHUP stopped the line just run, the status to
    /// leave with (128 + the signal's number), once its failure is shown:
    /// those signals ask `ioe` to end, while Ctrl-C only stops the line.
    fn ended_by_signal(&self, result: &Result<Next, Failure>) -> Option<u8> {
        let signal = self.cancel.signal()?;
        if signal == Signal::Interrupt {
            return None;
        }
        if let Err(failure) = result {
            say_err!("{}", failure.text);
        }
        Some(signal.exit_status())
    }

    /// `ioe host:port> ` while a session is open, `ioe> ` otherwise.
    fn prompt(&self) -> String {
        match self.host.borrow().current_addr() {
            Some(addr) => format!("ioe {addr}> "),
            None => "ioe> ".to_string(),
        }
    }

    /// Runs what was entered at the prompt. A paste of several lines may
    /// hold several entries (command forms and Rhai code, grouped as in
    /// batch mode); they run in order and a failure skips the rest, saying
    /// so. `count` numbers the entries, naming them in reports.
    fn run_entered(&mut self, text: &str, count: &mut usize) -> Result<Next, Failure> {
        let entries: Vec<batch::Entry> = batch::entries(text.as_bytes())
            .collect::<io::Result<_>>()
            .map_err(|e| Failure::error(e.to_string()))?;
        for (i, entry) in entries.iter().enumerate() {
            *count += 1;
            let result = self.execute(&entry.text, &format!("input {count}"));
            match result {
                Ok(Next::Prompt) => {}
                Ok(leave) => return Ok(leave),
                Err(mut failure) => {
                    let skipped = entries.len() - i - 1;
                    if skipped > 0 {
                        let noun = if skipped == 1 { "entry" } else { "entries" };
                        failure.text.push_str(&format!(
                            "\nnote: the {skipped} pasted {noun} after it did not run"
                        ));
                    }
                    return Err(failure);
                }
            }
        }
        Ok(Next::Prompt)
    }

    fn batch(&mut self, options: &Options) -> u8 {
        if let Some(addr) = &options.connect
            && let Err(failure) = self.run_form(Form::Connect(addr.clone()))
        {
            say_err!("ioe: --connect {addr}: {}", failure.text);
            return failure.status;
        }
        let mut status = 0;
        let mut entries = batch::entries(io::stdin().lock());
        while let Some(entry) = entries.next() {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    let failure = Failure::error(format!("cannot read standard input: {e}"));
                    self.line_failed(&failure, "<stdin>", entries.line());
                    say_err!("ioe: cannot read standard input: {e}");
                    self.quit();
                    return 1;
                }
            };
            let result = if entry.unfinished {
                let failure = Failure::error(
                    "this code is not finished when the input ends \
                     (an open bracket, backtick string or comment)",
                );
                self.line_failed(&failure, "<stdin>", entry.line);
                Err(failure)
            } else {
                // pad with blank lines so reports give the line in the input
                let source = format!("{}{}", "\n".repeat(entry.line - 1), entry.text);
                self.execute(&source, "<stdin>")
            };
            match result {
                Ok(Next::Prompt) => {}
                Ok(Next::Quit) => return status,
                Ok(Next::Exit(code)) => return code,
                Err(failure) => {
                    say_err!("ioe: line {}: {}", entry.line, failure.text);
                    status = failure.status;
                    // a signal ends the batch whatever --keep-going says
                    if !options.keep_going || self.cancel.is_cancelled() {
                        self.quit();
                        return status;
                    }
                }
            }
        }
        self.quit();
        status
    }

    fn editor(&self) -> rustyline::Result<Editor<ReplHelper, FileHistory>> {
        let config = Config::builder()
            .completion_type(CompletionType::List)
            .max_history_size(HISTORY_SIZE)?
            .history_ignore_dups(true)?
            .history_ignore_space(true)
            .auto_add_history(false)
            .build();
        let mut editor = Editor::with_config(config)?;
        let host = Rc::clone(&self.host);
        let lister = Box::new(move |dir: Option<&str>| remote_names(&host.borrow(), dir));
        let properties = self
            .host
            .borrow()
            .property_names()
            .iter()
            .map(|p| p.to_string())
            .collect();
        editor.set_helper(Some(ReplHelper::new(
            self.function_names(),
            properties,
            lister,
        )));
        Ok(editor)
    }

    /// Runs one entry (a command form or Rhai code) named `name` in reports.
    fn execute(&mut self, text: &str, name: &str) -> Result<Next, Failure> {
        self.cancel.reset();
        self.busy.store(true, Ordering::SeqCst);
        // batch entries are padded with blank lines to their place
        let line = text.chars().take_while(|&c| c == '\n').count() + 1;
        self.place = Some((name.to_string(), line));
        let result = match forms::parse(text) {
            Some(Ok(form)) => self.run_form(form),
            Some(Err(usage)) => Err(Failure::error(usage.0)),
            None => self.run_code(text, name),
        };
        self.busy.store(false, Ordering::SeqCst);
        self.place = None;
        if let Err(failure) = &result {
            self.line_failed(failure, name, line);
        }
        result
    }

    /// The `error` event of a failure of the line itself (a command form's
    /// usage, unfinished code), which no script call wrote.
    fn line_failed(&self, failure: &Failure, file: &str, line: usize) {
        let Some(message) = &failure.event else {
            return;
        };
        let events = self.host.borrow().events();
        crate::events::emit(events.as_ref(), || Event::Error {
            kind: SCRIPT.to_string(),
            message: message.clone(),
            file: Some(file.to_string()),
            line: Some(line),
            name: None,
        });
    }

    fn run_code(&mut self, text: &str, name: &str) -> Result<Next, Failure> {
        let value = self.host.borrow_mut().eval(name, text);
        match value {
            Ok(value) => {
                if let Some(shown) = show(&value) {
                    say!("{shown}");
                }
                Ok(Next::Prompt)
            }
            Err(Stop::Exit(exit)) => {
                if let Some(message) = &exit.message {
                    say_err!("{message}");
                }
                Ok(Next::Exit(exit.code))
            }
            Err(Stop::Failed(report)) => Err(Failure {
                text: report.to_string(),
                status: report.exit_code(&self.cancel),
                event: None,
            }),
        }
    }

    fn run_form(&mut self, form: Form) -> Result<Next, Failure> {
        match form {
            Form::Help => {
                say!("{}", self.help().trim_end());
                Ok(Next::Prompt)
            }
            Form::Quit => {
                self.quit();
                Ok(Next::Quit)
            }
            Form::Connect(target) => {
                let _session = self.call(&format!("connect({})", rhai_string(&target)))?;
                let host = self.host.borrow();
                let addr = host.current_addr().unwrap_or(target);
                let tls = if host.current_options().is_some_and(|o| o.tls.is_some()) {
                    " over TLS"
                } else {
                    ""
                };
                // the token's label, as the server named it in `OK <label>`
                let identity = host
                    .current_session()
                    .and_then(|s| s.identity())
                    .map(|label| format!(" as {label}"))
                    .unwrap_or_default();
                say!("connected to {addr}{tls}{identity}");
                Ok(Next::Prompt)
            }
            Form::List(dir) => {
                let call = match &dir {
                    Some(dir) => format!("list({})", rhai_string(dir)),
                    None => "list()".to_string(),
                };
                let entries = self.call(&call)?;
                say!("{}", table::render(&entries_of(&entries)).trim_end());
                Ok(Next::Prompt)
            }
            Form::Read(name) => {
                let bytes = self.call(&format!("read({})", rhai_string(&name)))?;
                say!("received `{name}` ({} bytes) into {name}", show_int(&bytes));
                Ok(Next::Prompt)
            }
            Form::Write(name) => {
                if let Some((local, remote)) = local_and_remote(&name) {
                    return Err(Failure::error(format!(
                        "WRITE takes one name; to upload {local} as {remote} use \
                         write({}, {})",
                        rhai_string(local),
                        rhai_string(remote)
                    )));
                }
                let bytes = self.call(&format!("write({})", rhai_string(&name)))?;
                say!("sent `{name}` ({} bytes)", show_int(&bytes));
                Ok(Next::Prompt)
            }
            Form::Stat(name) => {
                let name = folder_name(&name);
                let entry = self.on_session(&format!("stat `{name}`"), |s| s.stat(name))?;
                say!("{}", table::rows(&[entry]).trim_end());
                Ok(Next::Prompt)
            }
            Form::Walk(dir) => {
                let op = match &dir {
                    Some(dir) => format!("walk `{dir}`"),
                    None => "walk".to_string(),
                };
                let entries = self.on_session(&op, |s| s.walk(dir.as_deref()))?;
                say!("{}", table::render(&entries).trim_end());
                Ok(Next::Prompt)
            }
            Form::Hash(name) => {
                let (algorithm, hex) =
                    self.on_session(&format!("hash `{name}`"), |s| s.hash(&name, None))?;
                say!("{} {hex}  {name}", algorithm.name());
                Ok(Next::Prompt)
            }
            Form::Mkdir(name) => {
                let name = folder_name(&name);
                self.on_session(&format!("mkdir `{name}`"), |s| s.mkdir(name))?;
                say!("made the folder `{name}`");
                Ok(Next::Prompt)
            }
            Form::Delete(name) => {
                let name = folder_name(&name);
                self.on_session(&format!("delete `{name}`"), |s| s.delete(name))?;
                say!("deleted `{name}`");
                Ok(Next::Prompt)
            }
            Form::SetTime(seconds, name) => {
                let name = folder_name(&name);
                let op = format!("set_mtime `{name}`");
                self.on_session(&op, |s| s.set_mtime(name, seconds))?;
                say!(
                    "set the modification time of `{name}` to {seconds} ({} UTC)",
                    table::utc_minute(seconds)
                );
                Ok(Next::Prompt)
            }
            Form::Features => {
                let features = self.on_session("features", |s| s.features())?;
                if features == Features::default() {
                    say!("none: the server speaks plain IOE/1");
                } else {
                    say!("{}", features.to_lines().join("\n"));
                }
                Ok(Next::Prompt)
            }
            Form::Push { local, remote } => self.sync(Direction::Push, &local, &remote),
            Form::Pull { remote, local } => self.sync(Direction::Pull, &remote, &local),
            Form::Bye => {
                let Some(addr) = self.host.borrow().current_addr() else {
                    say!("no session is open");
                    return Ok(Next::Prompt);
                };
                let _closed = self.call("bye()")?;
                say!("closed the session with {addr}");
                Ok(Next::Prompt)
            }
        }
    }

    /// `PUSH` and `PULL`: the sync with the default options and the
    /// progress bar, then the summary; a line with failures fails, listing
    /// each (the files that could be copied were).
    fn sync(&mut self, direction: Direction, from: &str, to: &str) -> Result<Next, Failure> {
        let (local, remote) = match direction {
            Direction::Push => (from, to),
            Direction::Pull => (to, from),
        };
        let op = push_pull::operation(direction, from, to);
        let progress = self.progress;
        let options = SyncOptions {
            events: self.host.borrow().events(),
            ..SyncOptions::default()
        };
        let report = self.on_session(&op, |s| {
            push_pull::run(s, direction, Path::new(local), remote, options, progress)
        })?;
        say!("{}", push_pull::summary(direction, false, &report));
        for left_out in push_pull::left_out(&report) {
            say!("  skipped `{}`: {}", left_out.name, left_out.reason);
        }
        if report.failed.is_empty() {
            return Ok(Next::Prompt);
        }
        let mut text = format!(
            "error: {op}: {} of {} failed:",
            report.failed.len(),
            report.failed.len() + report.copied.len()
        );
        for failed in &report.failed {
            text.push_str(&format!(
                "\n  [{}] {}",
                failed.kind.as_str(),
                failed.message
            ));
        }
        Err(Failure {
            text,
            status: 1,
            event: None,
        })
    }

    /// Evaluates the script call a command form stands for. Failures show
    /// the message alone: the user typed no Rhai, so no source position.
    fn call(&mut self, code: &str) -> Result<Dynamic, Failure> {
        // under the entry's name, on its line, so that its `error` event
        // names the place in the input
        let result = match &self.place {
            Some((name, line)) => {
                let code = format!("{}{code}", "\n".repeat(line - 1));
                self.host.borrow_mut().eval(name, &code)
            }
            None => self.host.borrow_mut().eval("<command>", code),
        };
        result.map_err(|stop| match stop {
            Stop::Failed(report) => {
                let mut text = report.headline();
                if report.kind.as_deref() == Some("not_connected") {
                    text.push_str(" with CONNECT,host,port");
                }
                Failure {
                    text,
                    status: report.exit_code(&self.cancel),
                    event: None,
                }
            }
            // the calls commands stand for never call exit()
            Stop::Exit(exit) => Failure {
                text: exit.message.unwrap_or_default(),
                status: exit.code,
                event: None,
            },
        })
    }

    /// Runs `f` on the current session: the forms of the extensions call
    /// the client directly rather than through generated Rhai. Failures
    /// read as the script calls' do (`error[kind]: message`).
    fn on_session<R>(
        &self,
        op: &str,
        f: impl FnOnce(&mut Session) -> crate::error::Result<R>,
    ) -> Result<R, Failure> {
        let session = self.host.borrow().current_session();
        let result = match session {
            Some(session) => session.with(f),
            None => Err(Error::new(
                ErrorKind::NotConnected,
                op,
                "not connected; connect to a server first",
            )),
        };
        result.map_err(|e| {
            let events = self.host.borrow().events();
            crate::events::emit(events.as_ref(), || Event::Error {
                kind: e.kind.as_str().to_string(),
                message: e.to_string(),
                file: self.place.as_ref().map(|(name, _)| name.clone()),
                line: self.place.as_ref().map(|&(_, line)| line),
                name: None,
            });
            self.client_failure(&e)
        })
    }

    /// A client error as a failed line: `error[kind]: message` (status 1),
    /// or `interrupted[cancelled]: …` with 128 + the signal's number.
    fn client_failure(&self, e: &Error) -> Failure {
        let (label, status) = match e.kind {
            ErrorKind::Cancelled => (
                "interrupted",
                self.cancel
                    .signal()
                    .map_or(EXIT_INTERRUPTED, Signal::exit_status),
            ),
            _ => ("error", 1),
        };
        let mut text = format!("{label}[{}]: {e}", e.kind.as_str());
        if e.kind == ErrorKind::NotConnected {
            text.push_str(" with CONNECT,host,port");
        }
        Failure {
            text,
            status,
            event: None,
        }
    }

    /// Closes the current session politely (BYE), if one is open,
    /// reporting the outcome as `BYE` does.
    fn quit(&mut self) {
        if self.host.borrow().current_addr().is_none() {
            return;
        }
        if let Err(failure) = self.run_form(Form::Bye) {
            say_err!("{}", failure.text);
        }
    }

    /// The script functions worth offering: the `ioe` API, Rhai's `print`
    /// and `debug`, and the functions defined at the prompt so far —
    /// without the conversions Rhai calls itself.
    fn function_names(&self) -> Vec<String> {
        let host = self.host.borrow();
        let mut names: Vec<String> = host
            .function_names()
            .iter()
            .filter(|name| !matches!(**name, "to_string" | "to_debug"))
            .map(|name| name.to_string())
            .chain(["print".to_string(), "debug".to_string()])
            .chain(host.script_function_names())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The commands, every script function and property (from their
    /// declaration, [`crate::script::functions`]), the functions defined
    /// at the prompt, and the keys.
    fn help(&self) -> String {
        let defined = self.host.borrow().script_function_names();
        let defined = if defined.is_empty() {
            String::new()
        } else {
            format!("Defined here: {}\n", defined.join(" "))
        };
        format!(
            "Commands (the original client's forms; the words in any case):\n\
             \x20 CONNECT,host,port   open a session (also CONNECT,host:port; no port: 7070)\n\
             \x20 LIST[,folder]       list the server's root or a folder\n\
             \x20 READ,name           download `name` to the same path here\n\
             \x20 WRITE,file          upload a local file under the same name\n\
             \x20                     (under another: write(\"file\", \"remote\"))\n\
             \x20 STAT,name           one remote file's or folder's entry\n\
             \x20 WALK[,folder]       every remote file and folder under the root or a folder\n\
             \x20 HASH,name           a remote file's digest (blake3 if the server has it,\n\
             \x20                     else sha256; another: hash(\"name\", \"sha256\"))\n\
             \x20 MKDIR,name          make a remote folder and its missing parents\n\
             \x20 DELETE,name         remove a remote file or empty folder\n\
             \x20 SETTIME,secs,name   set a remote modification time (seconds since 1970)\n\
             \x20 FEATURES            what the server does beyond IOE/1\n\
             \x20 PUSH,local,remote   make a remote folder hold what a local folder holds\n\
             \x20 PULL,remote,local   make a local folder hold what a remote folder holds\n\
             \x20                     (unchanged files skipped; `.` is the server's root;\n\
             \x20                     one comma between the folders: for options or\n\
             \x20                     names with commas, push(\"local\", \"remote\", #{{…}}))\n\
             \x20 BYE                 close the session, stay here\n\
             \x20 QUIT                close the session and leave (also Ctrl-D)\n\
             \x20 help                this text\n\
             Anything else is Rhai code; variables and functions stay defined\n\
             and commands act on the same session as the script functions:\n\
             \x20 let n = read(\"a.txt\", \"copy.txt\");   for f in list() {{ print(f.name) }}\n\
             Script functions (docs/scripting.md), by the side they act on:\n\
             {api}{defined}\
             Keys: Tab completes commands, functions, remote names after READ, STAT,\n\
             HASH, DELETE, MKDIR, WALK, SETTIME,secs, or read(\" and local paths\n\
             after WRITE, or write(\"; PUSH and PULL complete their local and\n\
             remote folders; an unfinished block or\n\
             string goes on with the next line; Ctrl-C clears the line or stops a\n\
             transfer (closing its session); Ctrl-D leaves.\n",
            api = functions::help_text(),
        )
    }
}

/// Loads the history file if there is one; `None` when history cannot be
/// kept (no home folder).
fn open_history(editor: &mut Editor<ReplHelper, FileHistory>) -> Option<PathBuf> {
    let Some(path) = editor::history_path() else {
        say_err!("ioe: note: no HOME or XDG_STATE_HOME, so no history is kept");
        return None;
    };
    if path.exists()
        && let Err(e) = editor.load_history(&path)
    {
        say_err!(
            "ioe: warning: cannot read the history in {}: {e}",
            path.display()
        );
    }
    Some(path)
}

/// Keeps `line` for Up: in the history file while there is one that can
/// be written (forgetting the file once it cannot), and for this run only
/// otherwise. A line holding a token (`connect(…, #{token: "ioe_…"})`) is
/// not kept at all, so no secret lands in the history file.
fn record(
    editor: &mut Editor<ReplHelper, FileHistory>,
    history_file: &mut Option<PathBuf>,
    line: &str,
) {
    if crate::auth::holds_token(line) {
        return;
    }
    if let Some(path) = history_file
        && !remember(editor, path, line)
    {
        *history_file = None;
    }
    if history_file.is_none() {
        let _ = editor.add_history_entry(line);
    }
}

/// Adds `line` to the history and writes it out to `path` at once, so a
/// crash or a closed terminal loses nothing. `false` (after a warning)
/// when the file cannot be written: the caller stops trying, so the
/// warning is not repeated after every line.
fn remember(editor: &mut Editor<ReplHelper, FileHistory>, path: &PathBuf, line: &str) -> bool {
    if !matches!(editor.add_history_entry(line), Ok(true)) {
        return true;
    }
    let saved = match path.parent() {
        Some(dir) => std::fs::create_dir_all(dir).map_err(ReadlineError::from),
        None => Ok(()),
    }
    .and_then(|()| editor.append_history(path));
    if let Err(e) = saved {
        say_err!(
            "ioe: warning: cannot save the history in {}: {e}; \
             lines are recalled with Up for the rest of this run only",
            path.display()
        );
        return false;
    }
    true
}

/// Asks on the terminal whether to trust the TLS server at `addr`, met for
/// the first time, with a line editor of its own (Ctrl-C or Ctrl-D: no).
/// Only the REPL at a terminal asks; piped input fails as a script does.
fn ask_to_trust(addr: &str, fingerprint: &str, known_hosts: &Path) -> bool {
    say!(
        "The TLS server {addr} is not known: no certificate authority vouches for its \
         certificate, and the known-hosts file {} has no line for it.",
        known_hosts.display()
    );
    say!("Its fingerprint is {fingerprint}");
    say!("Compare it with the one `ioe serve --tls` printed on the server.");
    let Ok(mut editor) = rustyline::DefaultEditor::new() else {
        return false;
    };
    let answer = editor.readline(&format!(
        "Trust it (adds a line to {}) and connect? (y/N) ",
        known_hosts.display()
    ));
    matches!(answer, Ok(text) if matches!(text.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

/// Remote names for completion: a listing of `dir` over a short-lived
/// connection of its own to the current session's server. A stalled server
/// holds the prompt for at most [`LISTING_TIMEOUT`] (Ctrl-C cannot
/// interrupt Tab), and a failed listing never closes the session itself,
/// so its next command reports what really happened.
fn remote_names(host: &Host, dir: Option<&str>) -> Vec<RemoteName> {
    let (Some(addr), Some(options)) = (host.current_addr(), host.current_options()) else {
        return Vec::new();
    };
    Session::connect_with(&addr, &options, LISTING_TIMEOUT, LISTING_TIMEOUT)
        .and_then(|mut lister| lister.list(dir))
        .unwrap_or_default()
        .into_iter()
        .map(|entry| RemoteName {
            is_dir: entry.kind == EntryKind::Dir,
            name: entry.name,
        })
        .collect()
}

/// `WRITE,photo.jpg,reports/photo.jpg` as sftp's `put local remote`: when
/// `name` is no local file but the part before one of its commas is, that
/// part and the rest. `None` when `name` exists as a whole (names may hold
/// commas) or no such split does.
fn local_and_remote(name: &str) -> Option<(&str, &str)> {
    if std::fs::symlink_metadata(name).is_ok() {
        return None;
    }
    name.match_indices(',').find_map(|(i, _)| {
        let (local, remote) = (name[..i].trim(), name[i + 1..].trim());
        let is_file = Path::new(local).is_file();
        (is_file && !remote.is_empty()).then_some((local, remote))
    })
}

/// How an expression's value is echoed; `None` for `()`.
fn show(value: &Dynamic) -> Option<String> {
    if value.is_unit() {
        return None;
    }
    if let Some(session) = value.read_lock::<ScriptSession>() {
        return Some(session.describe());
    }
    if let Some(server) = value.read_lock::<ServerHandle>() {
        return Some(server.describe());
    }
    Some(format!("{value:?}"))
}

fn show_int(value: &Dynamic) -> String {
    value
        .as_int()
        .map_or_else(|_| value.to_string(), |n| n.to_string())
}

/// `text` as a Rhai string literal.
fn rhai_string(text: &str) -> String {
    format!("\"{}\"", escaped(text))
}

/// `text` as written between the quotes of a Rhai string: `"` and `\`
/// escaped.
fn escaped(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The entries of a `list()` result (an array of `#{name, kind, size, mtime}`).
fn entries_of(value: &Dynamic) -> Vec<Entry> {
    let Some(array) = value.read_lock::<rhai::Array>() else {
        return Vec::new();
    };
    array
        .iter()
        .filter_map(|item| {
            let map = item.read_lock::<Map>()?;
            let text = |key: &str| map.get(key).map(|v| v.to_string());
            let number = |key: &str| {
                map.get(key)
                    .and_then(|v| v.as_int().ok())
                    .and_then(|n| u64::try_from(n).ok())
            };
            Some(Entry {
                kind: if text("kind")? == "d" {
                    EntryKind::Dir
                } else {
                    EntryKind::File
                },
                size: number("size")?,
                mtime: number("mtime")?,
                name: text("name")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_rhai_string_literals() {
        assert_eq!(rhai_string("a b,c.txt"), "\"a b,c.txt\"");
        assert_eq!(rhai_string("say \"hi\"\\"), "\"say \\\"hi\\\"\\\\\"");
    }

    #[test]
    fn values_are_echoed_except_unit() {
        assert_eq!(show(&Dynamic::UNIT), None);
        assert_eq!(show(&Dynamic::from(3_i64)).as_deref(), Some("3"));
        assert_eq!(show(&Dynamic::from("x")).as_deref(), Some("\"x\""));
    }
}
